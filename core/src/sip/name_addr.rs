//! Name-addr values (RFC 3261 §20.10, §25.1): From, To, Contact, Route, Refer-To. [`NameAddr`]
//! reads any of them; the From/To tag, which the server reads on every request, has a one-pass
//! reader of its own for the usual shape, checked against the full parse.

use std::borrow::Cow;
use std::fmt;

use super::class::{run_of_class, SP, TOKEN, USER};
use super::lex::{find_ascii, is_lws, is_token_byte, port_at, trim_lws, unescape_quoted, Cursor};
use super::params::Params;
use super::uri::Uri;
use crate::scan::{eq_word, run_of_host, run_of_qtext};

/// A `name-addr` or `addr-spec` with header parameters: From, To, Contact, Route, Refer-To
/// (RFC 3261 §20.10, §25.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// The display name: the inside of a quoted string with escapes left as sent (see
    /// [`NameAddr::display_unescaped`]) or the unquoted tokens.
    pub display: Option<&'a str>,
    pub uri: Uri<'a>,
    /// Header parameters (`tag`, `expires`, `q`, ...). For the addr-spec form without `<>`
    /// everything after the first `;` is a header parameter, not a URI parameter (§20.10).
    pub params: Params<'a>,
}

impl<'a> NameAddr<'a> {
    /// Parses `[display] <uri> *(;param)` or `uri *(;param)`.
    pub fn parse(v: &'a str) -> Result<NameAddr<'a>, InvalidNameAddr> {
        let v = trim_lws(v);
        let mut c = Cursor::new(v);
        let display;
        if c.peek() == Some(b'"') {
            display = Some(c.quoted().ok_or(InvalidNameAddr)?);
            c.skip_lws();
            if c.peek() != Some(b'<') {
                return Err(InvalidNameAddr);
            }
        } else if let Some(lt) = find_ascii(v, b'<') {
            // display-name = *(token LWS): no quotes, no specials (RFC 4475 §3.1.2.15 `baddn`
            // rejects the comma in `Bell, Alexander`). Non-ASCII letters are tolerated: phones
            // send `Müller <sip:..>` unquoted, and nothing is ambiguous about it.
            let d = trim_lws(&v[..lt]);
            if !d
                .bytes()
                .all(|b| is_token_byte(b) || is_lws(b) || b >= 0x80)
            {
                return Err(InvalidNameAddr);
            }
            display = (!d.is_empty()).then_some(d);
            c.pos = lt;
        } else {
            // addr-spec: the URI ends at the first ';' (header params follow) and cannot hold
            // a ',' '?' or ';' of its own here (§20.10; RFC 4475 §3.1.2.13 `regbadct`).
            let (uri, params) = match find_ascii(v, b';') {
                Some(i) => (trim_lws(&v[..i]), Params::new(&v[i + 1..])),
                None => (v, Params::default()),
            };
            let uri = Uri::parse(uri).map_err(|_| InvalidNameAddr)?;
            if uri.headers.is_some() || find_ascii(uri.raw, b',').is_some() {
                return Err(InvalidNameAddr);
            }
            if !params.well_formed() {
                return Err(InvalidNameAddr);
            }
            return Ok(NameAddr {
                display: None,
                uri,
                params,
            });
        }
        c.eat(b'<');
        // The URI runs to the first '>' (RFC 3261 §25.1 name-addr); none means no name-addr.
        let Some(len) = find_ascii(c.rest(), b'>') else {
            return Err(InvalidNameAddr);
        };
        let inner = &c.rest()[..len];
        c.pos += len + 1;
        let uri = Uri::parse(inner).map_err(|_| InvalidNameAddr)?;
        c.skip_lws();
        let params = if c.at_end() {
            Params::default()
        } else if c.eat(b';') {
            Params::new(c.rest())
        } else {
            return Err(InvalidNameAddr);
        };
        if !params.well_formed() {
            return Err(InvalidNameAddr);
        }
        Ok(NameAddr {
            display,
            uri,
            params,
        })
    }

    pub fn tag(&self) -> Option<&'a str> {
        self.params.value("tag")
    }

    /// The display name with `\"` and `\\` escapes removed.
    pub fn display_unescaped(&self) -> Option<Cow<'a, str>> {
        self.display.map(unescape_quoted)
    }
}

/// The `tag` of a From or To value: exactly `NameAddr::parse(v).map(|a| a.tag())`. The server
/// reads both tags of every request and nothing else of these headers, so a value of the shape
/// nearly every phone sends is read in one pass ([`name_addr_tag_fast`]); any other by the full
/// parse. With the `reference` feature, every value takes the full parse.
pub(crate) fn name_addr_tag(v: &str) -> Result<Option<&str>, InvalidNameAddr> {
    if !cfg!(feature = "reference") {
        if let Some(tag) = name_addr_tag_fast(v.as_bytes()) {
            return Ok(tag.map(|(start, end)| &v[start..end]));
        }
    }
    name_addr_tag_reference(v)
}

/// [`name_addr_tag`] for any value. Out of line: the usual value never comes here.
#[cold]
#[inline(never)]
fn name_addr_tag_reference(v: &str) -> Result<Option<&str>, InvalidNameAddr> {
    let tag = NameAddr::parse(v)?.tag();
    // A tag is a token (RFC 3261 §25.1, `tag-param`): a quoted or escaped value, or one with a
    // control byte such as NUL, makes the header malformed, not a tag to echo.
    match tag {
        Some(t) if !super::lex::is_token(t) => Err(InvalidNameAddr),
        _ => Ok(tag),
    }
}

/// The tag of a name-addr of the common shape, as byte offsets, or `None` when the value has
/// another shape (then only the full parse can tell). The shape:
///
/// ```text
/// [ DQUOTE *(any but DQUOTE and "\") DQUOTE *SP / *(token / SP) ]
/// "<" "sip:" 1*user "@" 1*host [ ":" 1*5DIGIT ] ">" *( ";" token [ "=" token ] )
/// ```
///
/// with no other bytes and no LWS around the parameters. Every such value is a valid
/// name-addr for [`NameAddr::parse`] (each piece is inside what it accepts there: the display
/// name, a `sip:` URI with a plain user and no URI parameters, header parameters it calls
/// well formed), and its `tag` is the value of the first parameter named `tag` (any case),
/// `None` when that one has no value or there is none, as `Params::get` finds it.
/// `name_addr_tag_fast_matches_reference` in the tests compares the two on generated values.
#[inline(always)]
fn name_addr_tag_fast(b: &[u8]) -> Option<Option<(usize, usize)>> {
    let mut i;
    if b.first() == Some(&b'"') {
        // The closing quote, with no escape before it.
        i = run_of_qtext(b, 1);
        if b.get(i) != Some(&b'"') {
            return None;
        }
        i += 1;
        while b.get(i) == Some(&b' ') {
            i += 1;
        }
    } else if b.first() == Some(&b'<') {
        // No display name, the usual To.
        i = 0;
    } else {
        i = run_of_class(b, 0, TOKEN | SP);
    }
    if b.get(i) != Some(&b'<') || !eq_word(b.get(i + 1..i + 5)?, b"sip:") {
        return None;
    }
    i += 5;
    let user = i;
    i = run_of_class(b, i, USER);
    if i == user || b.get(i) != Some(&b'@') {
        return None;
    }
    i += 1;
    let host = i;
    i = run_of_host(b, i);
    if i == host {
        return None;
    }
    if b.get(i) == Some(&b':') {
        i = port_at(b, i + 1)?.1;
    }
    if b.get(i) != Some(&b'>') {
        return None;
    }
    i += 1;
    // (found a parameter named `tag`, its value)
    let mut tag: (bool, Option<(usize, usize)>) = (false, None);
    while i < b.len() {
        if b[i] != b';' {
            return None;
        }
        i += 1;
        let name = i;
        // `tag=` as written nearly always, one compare; any other name by its run.
        let is_tag = if b.get(name..name + 4) == Some(b"tag=") {
            i += 3;
            !tag.0
        } else {
            i = run_of_class(b, i, TOKEN);
            if i == name {
                return None;
            }
            !tag.0 && eq_word(&b[name..i], b"tag")
        };
        let mut value = None;
        if b.get(i) == Some(&b'=') {
            i += 1;
            let start = i;
            i = run_of_class(b, i, TOKEN);
            if i == start {
                return None;
            }
            value = Some((start, i));
        }
        if is_tag {
            tag = (true, value);
        }
    }
    Some(tag.1)
}

/// A value that is not a `name-addr` / `addr-spec` (RFC 3261 §25.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidNameAddr;

impl fmt::Display for InvalidNameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid name-addr")
    }
}

impl std::error::Error for InvalidNameAddr {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{mutated, param};
    use proptest::prelude::*;

    /// [`name_addr_tag_fast`], where it answers, finds the tag the reference finds, and
    /// [`name_addr_tag`] always does.
    fn tag_fast_matches_reference(v: &str) -> Result<(), TestCaseError> {
        let reference = name_addr_tag_reference(v);
        if let Some(fast) = name_addr_tag_fast(v.as_bytes()) {
            prop_assert_eq!(Ok(fast.map(|(a, z)| &v[a..z])), reference, "{:?}", v);
        }
        prop_assert_eq!(name_addr_tag(v), reference, "{:?}", v);
        Ok(())
    }

    #[test]
    fn fast_tag_takes_the_usual_values() {
        for (v, tag) in [
            ("\"Reception\" <sip:201@192.168.1.10>;tag=123", Some("123")),
            ("<sip:123@192.168.1.100:5060>", None),
            ("<sip:123@192.168.1.100:5060>;TAG=a-b.c", Some("a-b.c")),
            (
                "Bob Smith <sip:bob@example.com>;x=1;tag=9;tag=10",
                Some("9"),
            ),
            ("<sip:a@b>;tag;tag=1", None),
            ("\"\" <SIP:a@b:0>;tag=%41", Some("%41")),
        ] {
            assert!(name_addr_tag_fast(v.as_bytes()).is_some(), "{v:?}");
            assert_eq!(name_addr_tag(v), Ok(tag), "{v:?}");
            assert_eq!(name_addr_tag_reference(v), Ok(tag), "{v:?}");
        }
        for v in [
            "sip:a@b;tag=1",
            "<sip:b>;tag=1",
            "<sip:a@b> ;tag=1",
            "<sip:a@b>;tag=1 ",
            "<sip:a@b>;tag=\"1\"",
            "<sip:a@b;lr>;tag=1",
            "\"a\\\"b\" <sip:a@b>",
            "<sip:a%41@b>",
            "<sip:a@b:123456>",
            "<sip:a@b>;tag=1=2",
        ] {
            assert_eq!(name_addr_tag_fast(v.as_bytes()), None, "{v:?}");
        }
    }

    /// Values near the fast shape: each piece usually fits it, sometimes not.
    fn near_name_addr() -> impl Strategy<Value = String> {
        let display = prop::sample::select(vec![
            "",
            "\"Reception\" ",
            "\"Reception\"",
            "\"a\\\"b\" ",
            "\"<x>;tag=1\"  ",
            "\"unterminated ",
            "Bob Smith ",
            "Müller ",
            " ",
            "\t",
            "a,b ",
            "\"\"",
        ]);
        let scheme = prop::sample::select(vec![
            "<sip:", "<sip:", "<sip:", "<sip:", "<SIP:", "<sips:", "<tel:", "sip:", "<",
        ]);
        let user = prop_oneof![
            3 => "[a-z0-9!'()&=+$,._~*-]{1,5}",
            1 => "[a-z0-9%;?:@!'()&=+$,._~*/ -]{0,6}",
        ];
        let at = prop::sample::select(vec!["@", "@", "@", "@", "", "@@"]);
        let host = prop_oneof![
            3 => "[a-z0-9._-]{1,8}",
            1 => "[a-z0-9._\\[\\]:;>-]{0,8}",
        ];
        let port = prop::sample::select(vec![
            "", ":5060", ":65535", ":65536", ":99999", ":", ":123456", ":0", ":00001",
        ]);
        let close = prop::sample::select(vec![">", ">", ">", ">", "", ">>", "> "]);
        let param = (
            prop::sample::select(vec![";", ";", ";", ";", ";", " ;", ";;", "", ",", "; "]),
            prop_oneof![
                2 => Just("tag".to_string()),
                1 => Just("TaG".to_string()),
                2 => "[a-z%]{1,4}",
                1 => "[a-z%=\" ]{0,4}"
            ],
            prop::option::of(prop_oneof![
                3 => "=[a-z0-9%.-]{1,4}",
                1 => "=[a-z0-9%\"= <>]{0,4}",
            ]),
        )
            .prop_map(|(sep, name, value)| format!("{sep}{name}{}", value.unwrap_or_default()));
        let params = prop::collection::vec(param, 0..4);
        let tail = prop::sample::select(vec!["", "", "", "", " ", ";", "\r\n x"]);
        (display, scheme, (user, at, host, port), close, params, tail).prop_map(
            |(d, s, (u, a, h, p), c, ps, t)| format!("{d}{s}{u}{a}{h}{p}{c}{}{t}", ps.concat()),
        )
    }

    /// Values of the fast shape, then zero to two bytes inserted, removed or replaced.
    fn mutated_name_addr() -> impl Strategy<Value = String> {
        let display = prop::sample::select(vec!["", "\"Reception\" ", "\"a b\"", "Bob Smith "]);
        let port = prop::sample::select(vec!["", ":5060", ":65535", ":1"]);
        let param = param("[a-zA-Z%.-]{1,4}|tag|TAG", "[a-z0-9%.!-]{1,5}");
        let good = (
            display,
            "[a-z0-9!'()&=+$,._~*-]{1,5}",
            "[a-z0-9._-]{1,8}",
            port,
            prop::collection::vec(param, 0..4),
        )
            .prop_map(|(d, u, h, p, ps)| format!("{d}<sip:{u}@{h}{p}>{}", ps.concat()));
        mutated(good, b"<>\";=:@ \\%,?a0\r\n\t[")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        #[test]
        fn name_addr_tag_fast_matches_reference_when_mutated(v in mutated_name_addr()) {
            tag_fast_matches_reference(&v)?;
        }

        #[test]
        fn name_addr_tag_fast_matches_reference(v in near_name_addr()) {
            tag_fast_matches_reference(&v)?;
        }

        #[test]
        fn name_addr_tag_fast_matches_reference_on_any_text(v in "[<>\"\\\\@:;=a-zA-Z0-9 %.,-]{0,40}") {
            tag_fast_matches_reference(&v)?;
        }
    }

    /// The mutating generator does reach the fast path (else the property proves nothing).
    #[test]
    fn name_addr_generator_reaches_the_fast_path() {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::TestRunner;
        let mut runner = TestRunner::deterministic();
        let (mut fast, mut tagged) = (0, 0);
        for _ in 0..2000 {
            let v = mutated_name_addr().new_tree(&mut runner).unwrap().current();
            if let Some(t) = name_addr_tag_fast(v.as_bytes()) {
                fast += 1;
                tagged += usize::from(t.is_some());
            }
        }
        assert!(fast > 100 && tagged > 30, "{fast} {tagged}");
    }
}
