//! Lexical helpers shared by the header and URI parsers (RFC 3261 §25.1).
//!
//! Header values are borrowed as sent, so a folded value still contains `CRLF SP`. Everything
//! here treats CR and LF like SP/HT (RFC 3261 §7.3.1: "a recipient MAY replace any linear white
//! space with a single SP before interpreting the field value").

use std::borrow::Cow;

use crate::scan::find_byte;

/// Linear white space as it appears inside a borrowed (possibly folded) header value.
#[inline]
pub(crate) fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Trims linear white space (including folding CRLFs) from both ends.
#[inline]
pub(crate) fn trim_lws(s: &str) -> &str {
    // Byte-wise: LWS is ASCII, so the cut points are always char boundaries.
    let b = s.as_bytes();
    let mut start = 0;
    while start < b.len() && is_lws(b[start]) {
        start += 1;
    }
    let mut end = b.len();
    while end > start && is_lws(b[end - 1]) {
        end -= 1;
    }
    &s[start..end]
}

/// The port of 1 to 5 ASCII digits at `b[i..]` that fits 16 bits, and where its digits end;
/// `None` for anything else (no digit, a sixth digit, a value above 65535).
#[inline(always)]
pub(crate) fn port_at(b: &[u8], i: usize) -> Option<(u16, usize)> {
    let (mut at, mut n) = (i, 0u32);
    while let Some(d) = b.get(at).filter(|d| d.is_ascii_digit()) {
        n = n * 10 + u32::from(d - b'0');
        at += 1;
        if at - i > 5 {
            return None;
        }
    }
    let n = u16::try_from(n).ok().filter(|_| at > i)?;
    Some((n, at))
}

/// Position of the first ASCII byte `b` in `s`. URIs and header values are a few dozen bytes:
/// a plain loop, without the searcher setup and `memchr` call of `str::find(char)`.
#[inline]
pub(crate) fn find_ascii(s: &str, b: u8) -> Option<usize> {
    s.bytes().position(|c| c == b)
}

/// `token` characters (RFC 3261 §25.1): alphanum and `-.!%*_+`'~`.
#[inline]
pub(crate) fn is_token_byte(b: u8) -> bool {
    TOKEN[b as usize]
}

/// [`is_token_byte`] as a table: it runs on every header-name byte.
static TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        i += 1;
    }
    t
};

/// True when `s` is a non-empty `token`.
#[inline]
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

/// Parses a string of 1..=10 ASCII digits into a u32. Anything else (sign, space, overflow)
/// is `None`: RFC 3261 scalars are `1*DIGIT` and a value that does not fit is an error, not a
/// wrap-around (RFC 4475 §3.1.2.4, scalar02).
pub(crate) fn parse_u32(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Ten digits at most fit a u64, so the sum cannot overflow before the range check.
    let v = s.bytes().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    u32::try_from(v).ok()
}

/// Splits `s` on `sep` where it is not inside a quoted string (with `\` escapes) or inside
/// `<...>`, yielding each piece trimmed of LWS. RFC 3261 §7.3.1: multi-valued headers are
/// comma-separated, but commas inside quoted display names and inside `<uri>` do not separate.
pub(crate) struct SplitTop<'a> {
    rest: Option<&'a str>,
    sep: u8,
}

impl<'a> SplitTop<'a> {
    pub(crate) fn new(s: &'a str, sep: u8) -> Self {
        SplitTop { rest: Some(s), sep }
    }
}

impl<'a> Iterator for SplitTop<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let s = self.rest?;
        let bytes = s.as_bytes();
        // Without the separator anywhere, quotes and brackets cannot matter: the rest is one
        // piece (most Via and Contact lines hold one value).
        if find_byte(bytes, self.sep).is_none() {
            self.rest = None;
            return Some(trim_lws(s));
        }
        let mut in_quote = false;
        let mut in_angle = false;
        let mut i = 0;
        while i < bytes.len() {
            // Fast path: skip bytes that cannot change the state or separate.
            if !SPLIT_SPECIAL[bytes[i] as usize] {
                i += 1;
                continue;
            }
            let b = bytes[i];
            if in_quote {
                if b == b'\\' {
                    i += 1; // the escaped byte cannot end the quote
                } else if b == b'"' {
                    in_quote = false;
                }
            } else if b == b'"' {
                in_quote = true;
            } else if b == b'<' {
                in_angle = true;
            } else if b == b'>' {
                in_angle = false;
            } else if b == self.sep && !in_angle {
                self.rest = Some(&s[i + 1..]);
                return Some(trim_lws(&s[..i]));
            }
            i += 1;
        }
        self.rest = None;
        Some(trim_lws(s))
    }
}

/// Bytes [`SplitTop`] must look at: quote, escape, angle brackets and both separators.
static SPLIT_SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t[b'<' as usize] = true;
    t[b'>' as usize] = true;
    t[b',' as usize] = true;
    t[b';' as usize] = true;
    t
};

/// A cursor over a header value for the hand-written grammars (Via, name-addr).
pub(crate) struct Cursor<'a> {
    pub(crate) s: &'a str,
    pub(crate) pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(s: &'a str) -> Self {
        Cursor { s, pos: 0 }
    }

    #[inline]
    pub(crate) fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    /// Skips LWS; returns true if any was skipped.
    pub(crate) fn skip_lws(&mut self) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(is_lws) {
            self.pos += 1;
        }
        self.pos > start
    }

    /// Consumes `b` if it is next.
    pub(crate) fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Consumes bytes while `f` holds and returns them.
    pub(crate) fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        &self.s[start..self.pos]
    }

    pub(crate) fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    /// Consumes a quoted string starting at the opening `"` and returns its inside, escapes
    /// left as sent (RFC 3261 §25.1 `quoted-string`, `quoted-pair`).
    pub(crate) fn quoted(&mut self) -> Option<&'a str> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.pos;
        let bytes = self.s.as_bytes();
        while self.pos < bytes.len() {
            match bytes[self.pos] {
                b'\\' => self.pos += 2,
                b'"' => {
                    let inner = &self.s[start..self.pos];
                    self.pos += 1;
                    return Some(inner);
                }
                _ => self.pos += 1,
            }
        }
        None
    }
}

/// Removes `quoted-pair` escapes from the inside of a quoted string.
pub fn unescape_quoted(s: &str) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Decodes `%HH` escapes (RFC 3261 §19.1.2, RFC 3986 §2.1). Invalid UTF-8 after decoding is
/// replaced, never a panic.
pub fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

#[inline]
pub(crate) fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_respects_quotes_and_angles() {
        let v: Vec<_> =
            SplitTop::new(r#""a, \"b\"" <sip:x@y;p=1,2>, sip:z@w ,  c"#, b',').collect();
        assert_eq!(v, [r#""a, \"b\"" <sip:x@y;p=1,2>"#, "sip:z@w", "c"]);
    }

    #[test]
    fn split_without_separator_is_one_trimmed_piece() {
        let v: Vec<_> = SplitTop::new(" \"a;b\" <sip:x;y> ", b',').collect();
        assert_eq!(v, [r#""a;b" <sip:x;y>"#]);
        let v: Vec<_> = SplitTop::new("\r\n ", b',').collect();
        assert_eq!(v, [""]);
    }

    #[test]
    fn split_trims_folding() {
        let v: Vec<_> = SplitTop::new("a,\r\n b", b',').collect();
        assert_eq!(v, ["a", "b"]);
    }

    #[test]
    fn unescape() {
        assert_eq!(unescape_quoted(r#"a \"b\" \\"#), r#"a "b" \"#);
        assert!(matches!(unescape_quoted("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn percent() {
        assert_eq!(percent_decode("a%20b%2"), "a b%2");
        assert_eq!(percent_decode("%41%zz"), "A%zz");
        assert_eq!(percent_decode("null-%00-null"), "null-\0-null");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(20_000))]

        /// `port_at` reads 1 to 5 digits under 65536, as counting and summing them finds.
        #[test]
        fn port_at_reads_one_to_five_digits(
            b in proptest::collection::vec(
                proptest::prop_oneof![
                    4 => proptest::sample::select(b"0123456789".to_vec()),
                    1 => proptest::sample::select(b"/:;>\x00\xff\xb0\xb9 ".to_vec()),
                    1 => proptest::prelude::any::<u8>(),
                ],
                0..9,
            ),
            i in 0usize..10,
        ) {
            let digits = b.get(i..).unwrap_or_default().iter().take_while(|d| d.is_ascii_digit());
            let len = digits.clone().count();
            let value = digits.fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            let want = (1..=5).contains(&len).then_some(value).and_then(|v| u16::try_from(v).ok());
            proptest::prop_assert_eq!(port_at(&b, i), want.map(|p| (p, i + len)));
        }
    }

    #[test]
    fn short_scalars_match_str_parse() {
        // Every one- and two-byte string against `str::parse` of `1*DIGIT`.
        let want = |b: &[u8]| {
            let s = std::str::from_utf8(b).ok()?;
            (s.bytes().all(|c| c.is_ascii_digit())).then(|| s.parse().ok())?
        };
        for a in 0..=255u8 {
            if let Ok(s) = std::str::from_utf8(&[a]) {
                assert_eq!(parse_u32(s), want(&[a]), "{a:#x}");
            }
            for b in 0..=255u8 {
                if let Ok(s) = std::str::from_utf8(&[a, b]) {
                    assert_eq!(parse_u32(s), want(&[a, b]), "{a:#x} {b:#x}");
                }
            }
        }
    }

    #[test]
    fn scalars() {
        assert_eq!(parse_u32("0"), Some(0));
        assert_eq!(parse_u32("4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32("4294967296"), None);
        assert_eq!(parse_u32("-1"), None);
        assert_eq!(parse_u32("18446744073709551616"), None);
        assert_eq!(parse_u32(""), None);
        assert_eq!(parse_u32("9999999999"), None);
        assert_eq!(parse_u32("0000000042"), Some(42));
        assert_eq!(parse_u32("+1"), None);
        assert_eq!(parse_u32("1 "), None);
    }
}
