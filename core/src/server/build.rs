//! Writing the responses and requests the server sends. Every SIP message leaves through here.

use std::net::{IpAddr, SocketAddr};

use super::incoming::Request;
use crate::ascii;
use crate::sip::{clean_written, find_byte, push_value, MessageWriter, Method};

/// Methods we implement; sent in `Allow` (RFC 3261 §20.5).
pub(crate) const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE";
/// Option tags we understand (RFC 4028 session timers).
pub(crate) const SUPPORTED: &str = "timer";
pub(crate) const ACCEPT: &str = "application/sdp";

/// The server writes every message with the one SIP serializer, [`MessageWriter`]; these start
/// it on a cleared buffer (buffers are reused between messages).
pub(crate) type Writer<'o> = MessageWriter<'o>;

pub(crate) fn response<'o>(out: &'o mut Vec<u8>, code: u16, reason: &str) -> Writer<'o> {
    out.clear();
    MessageWriter::response(out, code, reason)
}

/// [`response`] with the standard reason phrase.
pub(crate) fn standard_response(out: &mut Vec<u8>, code: u16) -> Writer<'_> {
    out.clear();
    MessageWriter::standard_response(out, code)
}

pub(crate) fn request<'o>(out: &'o mut Vec<u8>, method: &str, uri: &str) -> Writer<'o> {
    out.clear();
    MessageWriter::request(out, Method::from_token(method), uri)
}

/// `name: value` CRLF, for header blocks kept outside a writer (CR/LF cleaned like
/// [`MessageWriter::header`] does).
pub(crate) fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    MessageWriter::block(out).header(name, value);
}

/// The top Via of a response: `received` and `rport` filled in (RFC 3261 §18.2.1, RFC 3581 §4).
/// `src_ip` is the request's source address as text.
fn push_response_top_via(out: &mut Vec<u8>, req: &Request<'_>, src_ip: &[u8]) {
    let raw = req.vias.first().copied().unwrap_or("");
    let start = out.len();
    let port = req.remote.port();
    let has_received = match top_via_params(out, raw, port, src_ip) {
        Some(has_received) => has_received,
        None => {
            out.truncate(start);
            top_via_params_slow(out, raw, port, src_ip)
        }
    };
    if !has_received && (req.top_via.rport || via_host(req).as_bytes() != src_ip) {
        out.extend_from_slice(b";received=");
        out.extend_from_slice(src_ip);
    }
}

/// The Via's sent-by host without IPv6 brackets.
fn via_host<'a>(req: &Request<'a>) -> &'a str {
    ascii::unbracketed(req.top_via.host)
}

/// [`top_via_params_slow`] for a Via whose `;`-separated parts need no trimming (each starts
/// and ends with a printable ASCII byte, or is empty): the text between the `rport` and
/// `received` parameters is then copied as it is, in runs, instead of part by part. `None`
/// (with `out` half written) for any other Via: the caller cuts `out` back and takes the slow
/// path. Whether a part is `rport` or `received` is decided by the same test as there.
fn top_via_params(out: &mut Vec<u8>, raw: &str, port: u16, src_ip: &[u8]) -> Option<bool> {
    let bytes = raw.as_bytes();
    let printable = |i: usize| bytes.get(i).is_none_or(u8::is_ascii_graphic);
    if bytes.is_empty() || !printable(0) || !printable(bytes.len() - 1) {
        return None;
    }
    let mut has_received = false;
    // `raw[..copied]` is in `out` already.
    let mut copied = 0;
    let mut from = 0;
    while let Some(semi) = find_byte(&bytes[from..], b';').map(|p| from + p) {
        // The parts on both sides of this ';' must not need trimming.
        if semi == 0 || !printable(semi - 1) || !printable(semi + 1) {
            return None;
        }
        let part_start = semi + 1;
        from = part_start;
        let Some((rport, part_end)) = rport_or_received(raw, part_start) else {
            continue;
        };
        out.extend_from_slice(&bytes[copied..part_start]);
        if rport {
            out.extend_from_slice(b"rport=");
            ascii::push_decimal(out, port as u64);
        } else {
            has_received = true;
            out.extend_from_slice(b"received=");
            out.extend_from_slice(src_ip);
        }
        copied = part_end;
    }
    out.extend_from_slice(&bytes[copied..]);
    Some(has_received)
}

/// Whether the Via part at `start` (which starts with a printable byte, so its name is not
/// trimmed at the start) is named `rport` (`true`) or `received` (`false`) as
/// [`top_via_params_slow`] tells, and where the part ends; `None` for any other name. The
/// name is read from the first bytes: a part starting with neither name cannot have either,
/// and one starting with a name followed by its end, `;` or `=` has it. Only a name followed
/// by white space or a byte outside printable ASCII, which trimming might remove, is split
/// and trimmed as there.
fn rport_or_received(raw: &str, start: usize) -> Option<(bool, usize)> {
    let rest = &raw.as_bytes()[start..];
    // `byte | 0x20` is the lower-case letter exactly for that letter in either case.
    let lower = |word: &[u8], name: &[u8]| word.iter().zip(name).all(|(b, n)| b | 0x20 == *n);
    let (rport, len) = match rest {
        [b'r' | b'R', b'p' | b'P', ..] if rest.len() >= 5 && lower(&rest[..5], b"rport") => {
            (true, 5)
        }
        [b'r' | b'R', b'e' | b'E', ..] if rest.len() >= 8 && lower(&rest[..8], b"received") => {
            (false, 8)
        }
        _ => return None,
    };
    let end = |from: usize| find_byte(&rest[from..], b';').map_or(raw.len(), |p| start + from + p);
    match rest.get(len) {
        None | Some(b';') => Some((rport, start + len)),
        Some(b'=') => Some((rport, end(len + 1))),
        Some(b) if b.is_ascii_graphic() => None,
        Some(_) => named_slow(raw, start),
    }
}

/// [`rport_or_received`] for a name followed by white space or a byte outside printable ASCII:
/// the part split at its `=` and the name trimmed, as [`top_via_params_slow`] does.
#[cold]
#[inline(never)]
fn named_slow(raw: &str, start: usize) -> Option<(bool, usize)> {
    let bytes = raw.as_bytes();
    let end = find_byte(&bytes[start..], b';').map_or(bytes.len(), |p| start + p);
    let part = &raw[start..end];
    let name = match part.as_bytes().iter().position(|&b| b == b'=') {
        Some(eq) => trim(&part[..eq]),
        None => part,
    };
    if name.eq_ignore_ascii_case("rport") {
        Some((true, end))
    } else if name.eq_ignore_ascii_case("received") {
        Some((false, end))
    } else {
        None
    }
}

/// The top Via's text rewritten part by part: split at every ';', each part trimmed, `rport`
/// given the source port and `received` the source address. Whether it wrote `received`.
fn top_via_params_slow(out: &mut Vec<u8>, raw: &str, port: u16, src_ip: &[u8]) -> bool {
    let mut has_received = false;
    // Split at every ';' by bytes (an ASCII byte, so every piece is a `str` slice), one plain
    // search per parameter: the char-pattern `split` costs several times more per parameter.
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
            ascii::push_decimal(out, port as u64);
        } else if !first && name.eq_ignore_ascii_case("received") {
            has_received = true;
            out.extend_from_slice(b"received=");
            out.extend_from_slice(src_ip);
        } else {
            out.extend_from_slice(part.as_bytes());
        }
        if end == bytes.len() {
            break;
        }
        first = false;
        start = end + 1;
    }
    has_received
}

/// `str::trim`, returning at once when both ends are ASCII and not whitespace (the usual
/// Via parameter): an ASCII last byte is a whole char, so nothing could be trimmed there.
fn trim(s: &str) -> &str {
    match (s.as_bytes().first(), s.as_bytes().last()) {
        (Some(&a), Some(&z)) if a.is_ascii_graphic() && z.is_ascii_graphic() => s,
        _ => s.trim(),
    }
}

/// Where a response goes (RFC 3261 §18.2.2, RFC 3581 §4): the source address when `rport` asks
/// for it or on a stream; otherwise the source IP and the Via's sent-by port.
pub(crate) fn response_destination(req: &Request<'_>) -> SocketAddr {
    if req.top_via.rport || req.transport == super::Transport::Tcp {
        req.remote
    } else {
        SocketAddr::new(req.remote.ip(), req.top_via.port.unwrap_or(5060))
    }
}

/// Start a response to `req`: status line, Vias, From, To (with `to_tag` if the To has none
/// and this is not a 100), Call-ID, CSeq, Server. The caller adds headers and finishes it.
pub(crate) fn start_response<'o>(
    out: &'o mut Vec<u8>,
    req: &Request<'_>,
    code: u16,
    reason: Option<&str>,
    to_tag: Option<&str>,
    server: &str,
) -> Writer<'o> {
    match reason {
        Some(reason) => response(out, code, reason),
        None => standard_response(out, code),
    };
    let mut ip_buf = [0; 48];
    let src_ip = ascii::ip_bytes(req.remote.ip(), &mut ip_buf);
    push_response_headers(out, req, src_ip, code, to_tag, server);
    MessageWriter::block(out)
}

/// The header lines of [`start_response`] (no status line), appended to `out`; with them, where
/// `;tag=…` begins in `out` when the To got our tag. An INVITE's 100 and 2xx differ only in that
/// tag, so the 100 is cut from the 2xx's block instead of being written again. `src_ip` is the
/// request's source address as text ([`ascii::ip_bytes`]).
pub(crate) fn response_head(
    out: &mut Vec<u8>,
    req: &Request<'_>,
    src_ip: &[u8],
    code: u16,
    to_tag: Option<&str>,
    server: &str,
) -> Option<usize> {
    push_response_headers(out, req, src_ip, code, to_tag, server)
}

/// The bytes of [`push_response_headers`]' lines besides the values: the names, line ends, the
/// top Via's `;received=` and `=port` and the To's `;tag=`.
const HEAD_OVERHEAD: usize = "Via: \r\nFrom: \r\nTo: ;tag=\r\nCall-ID: \r\nCSeq: 4294967295 \r\n\
    Server: \r\n;received==65535"
    .len();

/// The lines of [`response_head`], written as bytes into room reserved once. The values copied
/// from the request that may hold a CR or LF (a folded Via, From or To, or the config's
/// Server) are cleaned as [`MessageWriter`] cleans them; the others cannot hold one: the
/// Call-ID was read as a word without white space or control bytes, the CSeq method as a token,
/// and the numbers and our tag are written here.
fn push_response_headers(
    out: &mut Vec<u8>,
    req: &Request<'_>,
    src_ip: &[u8],
    code: u16,
    to_tag: Option<&str>,
    server: &str,
) -> Option<usize> {
    let tag = to_tag.filter(|_| req.to_tag.is_empty() && code > 100);
    let vias: usize = req.vias.iter().map(|v| v.len() + "Via: \r\n".len()).sum();
    out.reserve(
        HEAD_OVERHEAD
            + vias
            + src_ip.len()
            + req.from.len()
            + req.to.len()
            + tag.map_or(0, str::len)
            + req.call_id.len()
            + req.cseq_method.len()
            + server.len(),
    );
    // Each line's CRLF is written with the next line's name, as one piece.
    out.extend_from_slice(b"Via: ");
    let start = out.len();
    push_response_top_via(out, req, src_ip);
    clean_written(out, start);
    for via in req.vias.iter().skip(1) {
        out.extend_from_slice(b"\r\nVia: ");
        push_value(out, via.as_bytes());
    }
    if !req.from.is_empty() {
        out.extend_from_slice(b"\r\nFrom: ");
        push_value(out, req.from.as_bytes());
    }
    out.extend_from_slice(b"\r\nTo: ");
    let mut tag_at = None;
    match tag {
        Some(tag) => {
            // The tag is cleaned with the To, as one value.
            let start = out.len();
            out.extend_from_slice(req.to.as_bytes());
            tag_at = Some(out.len());
            out.extend_from_slice(b";tag=");
            out.extend_from_slice(tag.as_bytes());
            clean_written(out, start);
        }
        None => push_value(out, req.to.as_bytes()),
    }
    if !req.call_id.is_empty() {
        out.extend_from_slice(b"\r\nCall-ID: ");
        out.extend_from_slice(req.call_id.as_bytes());
    }
    if req.cseq > 0 {
        out.extend_from_slice(b"\r\nCSeq: ");
        ascii::push_decimal(out, req.cseq as u64);
        out.push(b' ');
        out.extend_from_slice(req.cseq_method.as_bytes());
    }
    out.extend_from_slice(b"\r\nServer: ");
    push_value(out, server.as_bytes());
    out.extend_from_slice(b"\r\n");
    tag_at
}

/// `host` for a URI or Via: IPv6 in brackets.
pub(crate) fn host_str(ip: IpAddr) -> String {
    let mut out = String::with_capacity(48);
    push_host(&mut out, ip);
    out
}

/// [`host_str`] appended to a byte buffer.
pub(crate) fn push_host_bytes(out: &mut Vec<u8>, ip: IpAddr) {
    let mut buf = [0; 48];
    let text = ascii::ip_bytes(ip, &mut buf);
    if ip.is_ipv6() {
        out.push(b'[');
        out.extend_from_slice(text);
        out.push(b']');
    } else {
        out.extend_from_slice(text);
    }
}

/// [`host_str`] appended to `out`.
pub(crate) fn push_host(out: &mut String, ip: IpAddr) {
    let mut buf = [0; 48];
    let text = ascii::ip(ip, &mut buf);
    if ip.is_ipv6() {
        out.push('[');
        out.push_str(text);
        out.push(']');
    } else {
        out.push_str(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The fast rewrite, where it answers, writes what the part-by-part one writes.
    fn check(raw: &str) {
        let (mut fast, mut slow) = (b"x".to_vec(), b"x".to_vec());
        let slow_received = top_via_params_slow(&mut slow, raw, 5062, b"10.0.0.9");
        if let Some(fast_received) = top_via_params(&mut fast, raw, 5062, b"10.0.0.9") {
            assert_eq!(
                (String::from_utf8_lossy(&fast), fast_received),
                (String::from_utf8_lossy(&slow), slow_received),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn top_via_fast_path_matches_the_slow_one() {
        for raw in [
            "SIP/2.0/UDP 192.168.1.50:5060;branch=z9hG4bK123;rport",
            "SIP/2.0/UDP 192.168.1.50:5060;rport;branch=z9hG4bK123",
            "SIP/2.0/UDP h;RPORT=1;Received=1.2.3.4;branch=z9hG4bK1",
            "SIP/2.0/UDP h;rport =1;received = x;r;rp;receivedx;rportx=1",
            "SIP/2.0/UDP h ; rport",
            "SIP/2.0/UDP h;;rport;;",
            ";rport",
            "rport;x",
            "SIP/2.0/UDP h;rport\t",
            "SIP/2.0/UDP h;rport=\u{a0}",
            "SIP/2.0/UDP h;r\u{e9};rport",
            "",
            ";",
            "a;",
            "SIP/2.0/UDP [::1]:5060;branch=z9hG4bKabcdefabcdefabcdef;received=::1;rport=5060",
        ] {
            check(raw);
        }
        // The usual Via takes the fast path.
        let mut out = Vec::new();
        let raw = "SIP/2.0/UDP 192.168.1.50:5060;branch=z9hG4bK123;rport";
        assert_eq!(top_via_params(&mut out, raw, 5060, b"1.2.3.4"), Some(false));
        assert_eq!(
            out,
            b"SIP/2.0/UDP 192.168.1.50:5060;branch=z9hG4bK123;rport=5060"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        #[test]
        fn top_via_fast_path_matches_on_any_text(raw in "[rRpPoOtTeEcCiIvVdD=; \t.a-z0-9\u{a0}\u{85}é]{0,40}") {
            check(&raw);
        }

        #[test]
        fn top_via_fast_path_matches_on_vias(
            params in proptest::collection::vec(
                "(rport|received|RPort|branch|r|x|maddr)( ?= ?[a-z0-9.]{0,5})?",
                0..5,
            ),
            seps in proptest::collection::vec("(;| ;|; |;;)", 5),
        ) {
            let mut raw = String::from("SIP/2.0/UDP 192.168.1.50:5060");
            for (p, sep) in params.iter().zip(&seps) {
                raw.push_str(sep);
                raw.push_str(p);
            }
            check(&raw);
        }
    }
}
