//! The Via header (RFC 3261 §20.42, §18.2.1; RFC 3581), read and rewritten: [`Via`] reads a
//! value, the request's top Via is read on every request (in one pass for the usual shape,
//! checked against the full parse), and the response's top Via is the request's with the
//! source address filled in (`received`, `rport`), so that the response finds its way back
//! through a NAT.

use super::class::{run_of_class, CLASS, SP, TOKEN};
use super::invalid::{bad, missing, InvalidHeader};
use super::lex::{is_token_byte, port_at, trim_lws, Cursor, SplitTop};
use super::params::Params;
use super::uri::host_port;
use crate::scan::{eq_word, run_of_host};

/// One Via value (RFC 3261 §20.42, §18.2.1; RFC 3581 `rport`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Via<'a> {
    /// `UDP`, `TCP`, `TLS`, ... as sent.
    pub transport: &'a str,
    /// Host name, IPv4 address, or `[IPv6]` reference with brackets.
    pub host: &'a str,
    pub port: Option<u16>,
    pub params: Params<'a>,
}

impl<'a> Via<'a> {
    /// Parses one Via value: `SIP / 2.0 / UDP host[:port] *(;param)`; LWS is allowed around
    /// the slashes and before parameters (RFC 4475 §3.1.1.1 `wsinv`).
    pub fn parse(v: &'a str) -> Result<Via<'a>, InvalidHeader> {
        let mut c = Cursor::new(trim_lws(v));
        // sent-protocol = protocol-name SLASH protocol-version SLASH transport, all tokens: a
        // `SIP/7.0/UDP` Via is grammatical, and the server needs it to answer 505 (RFC 4475
        // §3.1.2.16 `badvers`).
        let name = c.take_while(is_token_byte);
        c.skip_lws();
        let slash1 = c.eat(b'/');
        c.skip_lws();
        let version = c.take_while(is_token_byte);
        c.skip_lws();
        let slash2 = c.eat(b'/');
        c.skip_lws();
        let transport = c.take_while(is_token_byte);
        if name.is_empty()
            || version.is_empty()
            || !slash1
            || !slash2
            || transport.is_empty()
            || !c.skip_lws()
        {
            return Err(bad!("Via"));
        }
        let (host, port, used) = host_port(c.rest()).map_err(|_| bad!("Via"))?;
        c.pos += used;
        c.skip_lws();
        let params = if c.at_end() {
            Params::default()
        } else if c.eat(b';') {
            Params::new(c.rest())
        } else {
            return Err(bad!("Via"));
        };
        if !params.well_formed() {
            return Err(bad!("Via"));
        }
        Ok(Via {
            transport,
            host,
            port,
            params,
        })
    }

    pub fn branch(&self) -> Option<&'a str> {
        self.params.value("branch")
    }

    /// The sent-by host without IPv6 brackets, ready for `IpAddr::from_str`.
    pub fn host_unbracketed(&self) -> &'a str {
        self.host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(self.host)
    }

    /// RFC 3581: `None` absent, `Some(None)` valueless `;rport` (answer to the source port),
    /// `Some(Some(p))` filled in by a proxy. A non-numeric value reads as valueless.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|p| p.parse().ok()))
    }

    pub fn received(&self) -> Option<&'a str> {
        self.params.value("received")
    }
}

/// The topmost Via of the first Via line, as
/// [`Message::top_via`](super::Message::top_via) reads it.
pub(crate) fn top_via_value(line: &str) -> Result<Via<'_>, InvalidHeader> {
    SplitTop::new(line, b',')
        .next()
        .map_or(Err(missing!("Via")), Via::parse)
}

/// The topmost Via of the first Via line as [`top_via_value`] reads it, with its first
/// `branch` value (`None` when absent or valueless) and whether an `rport` parameter is
/// present (RFC 3581), as a walk of `params.iter()` finds them.
///
/// Every request's Via is read, so the usual `SIP/2.0/UDP host[:port];plain;params` is read in
/// one pass ([`top_via_branch_rport_fast`]); anything else, or everything with the `reference`
/// feature, by the full parse and walk.
pub(crate) fn top_via_branch_rport(
    line: &str,
) -> Result<(Via<'_>, Option<&str>, bool), InvalidHeader> {
    if !cfg!(feature = "reference") {
        if let Some(fast) = top_via_branch_rport_fast(line) {
            return Ok(fast);
        }
    }
    top_via_branch_rport_reference(line)
}

/// [`top_via_branch_rport`] for any line: the full Via parse, then the first `branch` and any
/// `rport` among its parameters. Out of line: the usual Via never comes here.
#[cold]
#[inline(never)]
fn top_via_branch_rport_reference(
    line: &str,
) -> Result<(Via<'_>, Option<&str>, bool), InvalidHeader> {
    let via = top_via_value(line)?;
    let mut branch: Option<Option<&str>> = None;
    let mut rport = false;
    for (name, value) in via.params.iter() {
        if branch.is_none() && name.eq_ignore_ascii_case("branch") {
            branch = Some(value);
        } else if name.eq_ignore_ascii_case("rport") {
            rport = true;
        }
    }
    Ok((via, branch.flatten(), rport))
}

/// [`top_via_branch_rport`] for a line of the shape
///
/// ```text
/// "SIP/2.0/" 1*token 1*SP 1*host [ ":" 1*5DIGIT ] *( ";" token [ "=" token ] ) [ "," ...]
/// ```
///
/// (host as in `uri.rs`, no `[IPv6]`), `None` for anything else. Such a value is what
/// `Via::parse` accepts with a parameter list it calls well formed, and with no quotes, brackets or LWS in the list `Params::iter`
/// splits it at every `;` and each name ends at its `=`. The first value of the line ends at
/// the first `,`, where `SplitTop` cuts it. `top_via_branch_rport_fast_matches_reference`
/// compares the two.
fn top_via_branch_rport_fast(line: &str) -> Option<(Via<'_>, Option<&str>, bool)> {
    let b = line.as_bytes();
    let run = |from: usize, class: u8| run_of_class(b, from, class);
    if !b.starts_with(b"SIP/2.0/") {
        return None;
    }
    // The usual transports and one SP, as written, by one compare.
    let (transport_end, host_at) = match b.get(8..13) {
        Some([b'U', b'D', b'P', b' ', c] | [b'T', b'C' | b'L', b'S' | b'P', b' ', c])
            if *c != b' ' =>
        {
            (11, 12)
        }
        _ => {
            let transport_end = run(8, TOKEN);
            (transport_end, run(transport_end, SP))
        }
    };
    if transport_end == 8 || host_at == transport_end {
        return None;
    }
    let mut i = run_of_host(b, host_at);
    if i == host_at {
        return None;
    }
    let host_end = i;
    let mut port = None;
    if b.get(i) == Some(&b':') {
        let (n, end) = port_at(b, i + 1)?;
        (port, i) = (Some(n), end);
    }
    let params_at = i + 1;
    let (mut branch, mut rport) = (None, false);
    while i < b.len() && b[i] != b',' {
        if b[i] != b';' {
            return None;
        }
        let name_at = i + 1;
        // `branch=` and a lone `rport` as written nearly always, one compare each; any other
        // name by its run (a token: `rport` ends where the next byte is none).
        let (is_branch, is_rport);
        if b.get(name_at..name_at + 7) == Some(b"branch=") {
            (i, is_branch, is_rport) = (name_at + 6, true, false);
        } else if b.get(name_at..name_at + 5) == Some(b"rport")
            && (b.get(name_at + 5)).is_none_or(|&c| CLASS[c as usize] & TOKEN == 0)
        {
            (i, is_branch, is_rport) = (name_at + 5, false, true);
        } else {
            i = run(name_at, TOKEN);
            if i == name_at {
                return None;
            }
            let name = &b[name_at..i];
            (is_branch, is_rport) = (eq_word(name, b"branch"), eq_word(name, b"rport"));
        }
        let mut value = None;
        if b.get(i) == Some(&b'=') {
            let start = i + 1;
            i = run(start, TOKEN);
            if i == start {
                return None;
            }
            value = Some(&line[start..i]);
        }
        if branch.is_none() && is_branch {
            branch = Some(value);
        } else if is_rport {
            rport = true;
        }
    }
    let params = if params_at <= i {
        Params::new(&line[params_at..i])
    } else {
        Params::default()
    };
    let via = Via {
        transport: &line[8..transport_end],
        host: &line[host_at..host_end],
        port,
        params,
    };
    Some((via, branch.flatten(), rport))
}

/// Appends the request's top Via `raw` as the response carries it: split at every `;`, each
/// part trimmed, an `rport` parameter (with or without a value) given the source `port`, and a
/// `received` parameter given the source address `src_ip` (as text). The first part, the
/// sent-protocol and sent-by, is copied trimmed. Returns whether it wrote a `received`: the
/// caller adds one when the request had none and RFC 3261 §18.2.1 or RFC 3581 §4 asks for it.
pub(crate) fn push_response_via(out: &mut Vec<u8>, raw: &str, port: u16, src_ip: &[u8]) -> bool {
    let mut has_received = false;
    // Cut at every ';' by bytes: an ASCII byte, so every piece is a `str` slice.
    let bytes = raw.as_bytes();
    let mut start = 0;
    let mut first = true;
    loop {
        let end = bytes[start..]
            .iter()
            .position(|&b| b == b';')
            .map_or(bytes.len(), |p| start + p);
        let part = trim(&raw[start..end]);
        if !first {
            out.push(b';');
        }
        let name = match part.as_bytes().iter().position(|&b| b == b'=') {
            Some(eq) => trim(&part[..eq]),
            None => part,
        };
        if !first && name.eq_ignore_ascii_case("rport") {
            out.extend_from_slice(b"rport=");
            crate::ascii::push_decimal(out, port as u64);
        } else if !first && name.eq_ignore_ascii_case("received") {
            has_received = true;
            out.extend_from_slice(b"received=");
            out.extend_from_slice(src_ip);
        } else {
            out.extend_from_slice(part.as_bytes());
        }
        if end == bytes.len() {
            return has_received;
        }
        first = false;
        start = end + 1;
    }
}

/// `str::trim`, which has nothing to cut when both ends are printable ASCII (an ASCII byte is a
/// whole char, and not white space): the usual Via parameter.
fn trim(s: &str) -> &str {
    match (s.as_bytes().first(), s.as_bytes().last()) {
        (Some(&a), Some(&z)) if a.is_ascii_graphic() && z.is_ascii_graphic() => s,
        _ => s.trim(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{mutated, param};
    use proptest::prelude::*;

    /// [`top_via_branch_rport_fast`], where it answers, reads what the reference reads, and
    /// [`top_via_branch_rport`] always does.
    fn via_fast_matches_reference(line: &str) -> Result<(), TestCaseError> {
        let reference = top_via_branch_rport_reference(line);
        if let Some(fast) = top_via_branch_rport_fast(line) {
            prop_assert_eq!(Ok(fast), reference, "{:?}", line);
        }
        prop_assert_eq!(top_via_branch_rport(line), reference, "{:?}", line);
        Ok(())
    }

    #[test]
    fn fast_via_takes_the_usual_values() {
        for (line, branch, rport) in [
            (
                "SIP/2.0/UDP 192.168.1.50:5060;branch=z9hG4bK1;rport",
                Some("z9hG4bK1"),
                true,
            ),
            ("SIP/2.0/TCP host", None, false),
            ("SIP/2.0/UDP h:1;RPORT;Branch=a;branch=b", Some("a"), true),
            ("SIP/2.0/UDP h;branch;branch=b", None, false),
            (
                "SIP/2.0/UDP a.b;branch=1,SIP/2.0/UDP c;branch=2",
                Some("1"),
                false,
            ),
        ] {
            let fast = top_via_branch_rport_fast(line).expect(line);
            assert_eq!((fast.1, fast.2), (branch, rport), "{line:?}");
            assert_eq!(Ok(fast), top_via_branch_rport_reference(line), "{line:?}");
        }
        for line in [
            "SIP/2.0/UDP [::1]:5060;branch=1",
            "SIP/2.0/UDP h ;branch=1",
            "SIP / 2.0 / UDP h",
            "SIP/2.0/UDP\th",
            "SIP/2.0/UDP h;branch=\"x\"",
            "SIP/2.0/UDP h;;rport",
            "SIP/2.0/UDP h:123456",
            "SIP/2.0/UDP h ,SIP/2.0/UDP i",
        ] {
            assert_eq!(top_via_branch_rport_fast(line), None, "{line:?}");
        }
    }

    /// Via lines of the fast shape, then zero to two bytes inserted, removed or replaced.
    fn mutated_via() -> impl Strategy<Value = String> {
        let param = param(
            "[a-zA-Z%.-]{1,5}|branch|BRANCH|rport|Rport",
            "[a-zA-Z0-9%.!-]{1,6}",
        );
        let good = (
            "UDP|TCP|TLS|[a-z]{1,3}",
            " {1,2}",
            "[a-z0-9._-]{1,8}",
            prop::sample::select(vec!["", ":5060", ":65535", ":1", ":65536"]),
            prop::collection::vec(param, 0..4),
            prop::sample::select(vec!["", "", ",SIP/2.0/UDP x", ", y"]),
        )
            .prop_map(|(t, sp, h, p, ps, more)| {
                format!("SIP/2.0/{t}{sp}{h}{p}{}{more}", ps.concat())
            });
        mutated(good, b"<>\";=:@ \\%,?a0\r\n\t[]/")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        #[test]
        fn top_via_branch_rport_fast_matches_reference(line in mutated_via()) {
            via_fast_matches_reference(&line)?;
        }

        #[test]
        fn top_via_branch_rport_fast_matches_reference_on_any_text(
            line in "SIP/2\\.0/[A-Z ;=,:.a-z0-9\\[\\]\"]{0,30}"
        ) {
            via_fast_matches_reference(&line)?;
        }
    }

    #[test]
    fn via_generator_reaches_the_fast_path() {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::TestRunner;
        let mut runner = TestRunner::deterministic();
        let (mut fast, mut branch, mut rport) = (0, 0, 0);
        for _ in 0..2000 {
            let v = mutated_via().new_tree(&mut runner).unwrap().current();
            if let Some((_, b, r)) = top_via_branch_rport_fast(&v) {
                fast += 1;
                branch += usize::from(b.is_some());
                rport += usize::from(r);
            }
        }
        assert!(
            fast > 300 && branch > 50 && rport > 50,
            "{fast} {branch} {rport}"
        );
    }

    fn rewritten(raw: &str) -> (String, bool) {
        let mut out = b"x".to_vec();
        let received = push_response_via(&mut out, raw, 5062, b"10.0.0.9");
        (String::from_utf8(out).unwrap(), received)
    }

    #[test]
    fn rport_gets_the_port_and_received_the_address() {
        for (raw, want, received) in [
            (
                "SIP/2.0/UDP 192.168.1.50:5060;branch=z9hG4bK123;rport",
                "SIP/2.0/UDP 192.168.1.50:5060;branch=z9hG4bK123;rport=5062",
                false,
            ),
            (
                "SIP/2.0/UDP 192.168.1.50:5060;rport;branch=z9hG4bK123",
                "SIP/2.0/UDP 192.168.1.50:5060;rport=5062;branch=z9hG4bK123",
                false,
            ),
            (
                "SIP/2.0/UDP h;RPORT=1;Received=1.2.3.4;branch=z9hG4bK1",
                "SIP/2.0/UDP h;rport=5062;received=10.0.0.9;branch=z9hG4bK1",
                true,
            ),
            (
                "SIP/2.0/UDP h;rport =1;received = x;r;rp;receivedx;rportx=1",
                "SIP/2.0/UDP h;rport=5062;received=10.0.0.9;r;rp;receivedx;rportx=1",
                true,
            ),
            (
                "SIP/2.0/UDP h;branch=z9hG4bK1",
                "SIP/2.0/UDP h;branch=z9hG4bK1",
                false,
            ),
        ] {
            assert_eq!(rewritten(raw), (format!("x{want}"), received), "{raw:?}");
        }
    }

    /// Each part is trimmed of white space (Unicode's, as `str::trim` has it), empty parts
    /// stay, and the first part is never a parameter.
    #[test]
    fn parts_are_trimmed_and_kept_in_place() {
        for (raw, want) in [
            ("SIP/2.0/UDP h ; rport", "SIP/2.0/UDP h;rport=5062"),
            ("SIP/2.0/UDP h;;rport;;", "SIP/2.0/UDP h;;rport=5062;;"),
            (";rport", ";rport=5062"),
            ("rport;x", "rport;x"),
            ("SIP/2.0/UDP h;rport\t", "SIP/2.0/UDP h;rport=5062"),
            ("SIP/2.0/UDP h;rport=\u{a0}", "SIP/2.0/UDP h;rport=5062"),
            ("SIP/2.0/UDP h;\u{a0}x\u{85}", "SIP/2.0/UDP h;x"),
            ("", ""),
            (";", ";"),
        ] {
            assert_eq!(rewritten(raw), (format!("x{want}"), false), "{raw:?}");
        }
    }
}
