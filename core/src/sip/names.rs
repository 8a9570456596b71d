//! Header field names: case-insensitive, with compact forms (RFC 3261 §7.3.1, §7.3.3, §20).
//!
//! Each header line's name is classified once at parse time so that typed accessors compare an
//! enum instead of strings, and so that `v:` and `Via:` are the same header everywhere.

use std::fmt;

macro_rules! header_names {
    ($( $variant:ident => $canon:literal ),* $(,)?) => {
        /// A header name: the known ones as variants (spelled canonically by [`HeaderName::as_str`]),
        /// anything else as sent.
        #[derive(Clone, Copy, Debug)]
        pub enum HeaderName<'a> {
            $( $variant, )*
            /// An extension header, spelled as it was sent (compare case-insensitively).
            Other(&'a str),
        }

        impl<'a> HeaderName<'a> {
            /// The canonical spelling (RFC 3261 §20), or the name as sent for `Other`.
            pub fn as_str(&self) -> &'a str {
                match self {
                    $( HeaderName::$variant => $canon, )*
                    HeaderName::Other(s) => s,
                }
            }

            /// Every known name, for the test that checks the bucketed lookup against a scan.
            #[cfg(test)]
            const ALL: &'static [HeaderName<'static>] = &[$( HeaderName::$variant, )*];

            /// The obvious linear scan: the reference for [`lookup_known`] in tests.
            #[cfg(test)]
            fn lookup_linear(lower: &[u8]) -> Option<HeaderName<'static>> {
                $( if lower.len() == $canon.len() && lower.eq_ignore_ascii_case($canon.as_bytes()) {
                    return Some(HeaderName::$variant);
                } )*
                None
            }
        }
    };
}

header_names! {
    Accept => "Accept",
    AcceptEncoding => "Accept-Encoding",
    AcceptLanguage => "Accept-Language",
    AcceptContact => "Accept-Contact",
    AlertInfo => "Alert-Info",
    Allow => "Allow",
    AllowEvents => "Allow-Events",
    AuthenticationInfo => "Authentication-Info",
    Authorization => "Authorization",
    CallId => "Call-ID",
    CallInfo => "Call-Info",
    Contact => "Contact",
    ContentDisposition => "Content-Disposition",
    ContentEncoding => "Content-Encoding",
    ContentLanguage => "Content-Language",
    ContentLength => "Content-Length",
    ContentType => "Content-Type",
    CSeq => "CSeq",
    Date => "Date",
    ErrorInfo => "Error-Info",
    Event => "Event",
    Expires => "Expires",
    From => "From",
    InReplyTo => "In-Reply-To",
    MaxForwards => "Max-Forwards",
    MimeVersion => "MIME-Version",
    MinExpires => "Min-Expires",
    MinSe => "Min-SE",
    Organization => "Organization",
    Priority => "Priority",
    ProxyAuthenticate => "Proxy-Authenticate",
    ProxyAuthorization => "Proxy-Authorization",
    ProxyRequire => "Proxy-Require",
    RAck => "RAck",
    RecordRoute => "Record-Route",
    ReferTo => "Refer-To",
    ReferredBy => "Referred-By",
    RejectContact => "Reject-Contact",
    ReplyTo => "Reply-To",
    RequestDisposition => "Request-Disposition",
    Require => "Require",
    RetryAfter => "Retry-After",
    Route => "Route",
    RSeq => "RSeq",
    Server => "Server",
    SessionExpires => "Session-Expires",
    Subject => "Subject",
    Supported => "Supported",
    Timestamp => "Timestamp",
    To => "To",
    Unsupported => "Unsupported",
    UserAgent => "User-Agent",
    Via => "Via",
    Warning => "Warning",
    WwwAuthenticate => "WWW-Authenticate",
}

impl<'a> HeaderName<'a> {
    /// Classifies a header name as sent. Compact forms per RFC 3261 §7.3.3 and the IANA SIP
    /// header registry (RFC 3265 `o`/`u`, RFC 3515 `r`, RFC 3892 `b`, RFC 4028 `x`, RFC 3841
    /// `a`/`j`/`d`).
    /// A name that is not a `token` is never a known header.
    pub fn parse(name: &'a str) -> HeaderName<'a> {
        if !name.bytes().all(super::lex::is_token_byte) {
            return HeaderName::Other(name);
        }
        Self::from_token(name)
    }

    /// [`HeaderName::parse`] for a name already checked to be a `token` (the parser's hot
    /// path; `lookup_known` relies on it).
    pub(crate) fn from_token(name: &'a str) -> HeaderName<'a> {
        let b = name.as_bytes();
        if b.len() == 1 {
            let compact = match b[0].to_ascii_lowercase() {
                b'v' => Some(HeaderName::Via),
                b'f' => Some(HeaderName::From),
                b't' => Some(HeaderName::To),
                b'i' => Some(HeaderName::CallId),
                b'm' => Some(HeaderName::Contact),
                b'l' => Some(HeaderName::ContentLength),
                b'c' => Some(HeaderName::ContentType),
                b'k' => Some(HeaderName::Supported),
                b's' => Some(HeaderName::Subject),
                b'e' => Some(HeaderName::ContentEncoding),
                b'o' => Some(HeaderName::Event),
                b'u' => Some(HeaderName::AllowEvents),
                b'r' => Some(HeaderName::ReferTo),
                b'b' => Some(HeaderName::ReferredBy),
                b'x' => Some(HeaderName::SessionExpires),
                b'a' => Some(HeaderName::AcceptContact),
                b'j' => Some(HeaderName::RejectContact),
                b'd' => Some(HeaderName::RequestDisposition),
                _ => None,
            };
            return compact.unwrap_or(HeaderName::Other(name));
        }
        match lookup_known(b) {
            Some(h) => h,
            None => HeaderName::Other(name),
        }
    }

    /// [`HeaderName::from_token`] for an ASCII name of one of the known headers of two bytes
    /// or more, `None` for any other name (which may or may not be a token): the parser can
    /// take the name up to the colon and skip the byte-by-byte token check when this knows
    /// it.
    ///
    /// A [`key`] match alone is not enough: the OR with 0x20 that makes it case-blind also
    /// turns CR into `-` and bytes 0x10 to 0x19 into digits. Those are the only impostors among
    /// ASCII bytes (every other byte that reaches a letter, digit or `-` is one), so a name with
    /// a matching key and no byte below 0x20 is the known name, and a token.
    pub(crate) fn known_ascii(name: &[u8]) -> Option<HeaderName<'static>> {
        debug_assert!(name.is_ascii());
        let known = lookup_known(name)?;
        // Below 0x20 exactly when adding 0x60 leaves bit 7 clear (no carry: bytes are ASCII).
        const ADD: u64 = 0x6060_6060_6060_6060;
        const HI: u64 = 0x8080_8080_8080_8080;
        let w = words(name);
        let (n, first) = (name.len(), if name.len() < 4 { 0x8080_8080 } else { HI });
        let printable = |w: u64, m: u64| w.wrapping_add(ADD) & m == m;
        let ok = printable(w[0], first)
            && (n < 8 || printable(w[1], HI))
            && (n <= 16 || printable(w[2], HI));
        ok.then_some(known)
    }

    /// The header a line starts with when it is one a phone sends on every request, written
    /// `name:` (no blank before the colon): the name and its length. `None` says nothing: the
    /// line may still start with a header name, known or not.
    ///
    /// One or two word compares instead of finding the colon and classifying what is before
    /// it. Letters compare case-blind (OR 0x20, which takes only `V` and `v` to `v`), every
    /// other byte exactly, so a match is the known name, a token, and its colon.
    #[inline]
    pub(crate) fn known_prefix(line: &[u8]) -> Option<(HeaderName<'static>, usize)> {
        let w0 = u64::from_le_bytes(*line.first_chunk::<8>()?);
        let candidates: &[Prefix] = match (w0 as u8) | 0x20 {
            b'v' => &PREFIX_V,
            b'f' => &PREFIX_F,
            b't' => &PREFIX_T,
            b'c' => &PREFIX_C,
            b'm' => &PREFIX_M,
            b'u' => &PREFIX_U,
            _ => return None,
        };
        let w1 = || {
            line.get(8..16)
                .and_then(|w| w.first_chunk::<8>())
                .map(|w| u64::from_le_bytes(*w))
        };
        for p in candidates {
            if (w0 | p.case[0]) & p.mask[0] != p.want[0] {
                continue;
            }
            if p.mask[1] != 0 && w1().is_none_or(|w1| (w1 | p.case[1]) & p.mask[1] != p.want[1]) {
                continue;
            }
            return Some((p.name, p.len));
        }
        None
    }

    /// Same header? Known names compare by variant, extension names case-insensitively.
    /// Inlined: every header lookup runs it once per line.
    #[inline]
    pub fn is(&self, other: &HeaderName<'_>) -> bool {
        match (self, other) {
            (HeaderName::Other(a), HeaderName::Other(b)) => a.eq_ignore_ascii_case(b),
            (HeaderName::Other(_), _) | (_, HeaderName::Other(_)) => false,
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

/// `name:` as two words to compare a line's first sixteen bytes with (see
/// [`HeaderName::known_prefix`]): `case` sets bit 0x20 on the letters, `mask` keeps the bytes
/// of `name:`, `want` is what is left when they match.
struct Prefix {
    case: [u64; 2],
    mask: [u64; 2],
    want: [u64; 2],
    len: usize,
    name: HeaderName<'static>,
}

/// `Prefix` for a lower-case name of up to 15 bytes, computed at compile time.
const fn prefix(lower: &[u8], name: HeaderName<'static>) -> Prefix {
    let mut p = Prefix {
        case: [0; 2],
        mask: [0; 2],
        want: [0; 2],
        len: lower.len(),
        name,
    };
    let mut i = 0;
    while i <= lower.len() {
        let b = if i < lower.len() { lower[i] } else { b':' };
        let (word, shift) = (i / 8, (i % 8) * 8);
        if b.is_ascii_lowercase() {
            p.case[word] |= 0x20 << shift;
        }
        p.mask[word] |= 0xff << shift;
        p.want[word] |= (b as u64) << shift;
        i += 1;
    }
    p
}

const PREFIX_V: [Prefix; 1] = [prefix(b"via", HeaderName::Via)];
const PREFIX_F: [Prefix; 1] = [prefix(b"from", HeaderName::From)];
const PREFIX_T: [Prefix; 1] = [prefix(b"to", HeaderName::To)];
/// In the order they are tried: the three every request has first.
const PREFIX_C: [Prefix; 5] = [
    prefix(b"call-id", HeaderName::CallId),
    prefix(b"cseq", HeaderName::CSeq),
    prefix(b"content-length", HeaderName::ContentLength),
    prefix(b"contact", HeaderName::Contact),
    prefix(b"content-type", HeaderName::ContentType),
];
const PREFIX_M: [Prefix; 1] = [prefix(b"max-forwards", HeaderName::MaxForwards)];
const PREFIX_U: [Prefix; 1] = [prefix(b"user-agent", HeaderName::UserAgent)];

/// Known long header names, bucketed by length; within a bucket each name is its [`key`], so
/// a lookup is a few word loads and one to six word compares.
fn lookup_known(b: &[u8]) -> Option<HeaderName<'static>> {
    let bucket: &[Known] = match b.len() {
        2 => const { &[k(b"to", HeaderName::To)] },
        3 => const { &[k(b"via", HeaderName::Via)] },
        4 => {
            const {
                &[
                    k(b"cseq", HeaderName::CSeq),
                    k(b"from", HeaderName::From),
                    k(b"date", HeaderName::Date),
                    k(b"rack", HeaderName::RAck),
                    k(b"rseq", HeaderName::RSeq),
                ]
            }
        }
        5 => {
            const {
                &[
                    k(b"allow", HeaderName::Allow),
                    k(b"event", HeaderName::Event),
                    k(b"route", HeaderName::Route),
                ]
            }
        }
        6 => {
            const {
                &[
                    k(b"accept", HeaderName::Accept),
                    k(b"min-se", HeaderName::MinSe),
                    k(b"server", HeaderName::Server),
                ]
            }
        }
        7 => {
            const {
                &[
                    k(b"call-id", HeaderName::CallId),
                    k(b"contact", HeaderName::Contact),
                    k(b"expires", HeaderName::Expires),
                    k(b"require", HeaderName::Require),
                    k(b"subject", HeaderName::Subject),
                    k(b"warning", HeaderName::Warning),
                ]
            }
        }
        8 => {
            const {
                &[
                    k(b"priority", HeaderName::Priority),
                    k(b"refer-to", HeaderName::ReferTo),
                    k(b"reply-to", HeaderName::ReplyTo),
                ]
            }
        }
        9 => {
            const {
                &[
                    k(b"supported", HeaderName::Supported),
                    k(b"call-info", HeaderName::CallInfo),
                    k(b"timestamp", HeaderName::Timestamp),
                ]
            }
        }
        10 => {
            const {
                &[
                    k(b"user-agent", HeaderName::UserAgent),
                    k(b"alert-info", HeaderName::AlertInfo),
                    k(b"error-info", HeaderName::ErrorInfo),
                ]
            }
        }
        11 => {
            const {
                &[
                    k(b"in-reply-to", HeaderName::InReplyTo),
                    k(b"min-expires", HeaderName::MinExpires),
                    k(b"referred-by", HeaderName::ReferredBy),
                    k(b"retry-after", HeaderName::RetryAfter),
                    k(b"unsupported", HeaderName::Unsupported),
                ]
            }
        }
        12 => {
            const {
                &[
                    k(b"max-forwards", HeaderName::MaxForwards),
                    k(b"content-type", HeaderName::ContentType),
                    k(b"record-route", HeaderName::RecordRoute),
                    k(b"allow-events", HeaderName::AllowEvents),
                    k(b"mime-version", HeaderName::MimeVersion),
                    k(b"organization", HeaderName::Organization),
                ]
            }
        }
        13 => {
            const {
                &[
                    k(b"authorization", HeaderName::Authorization),
                    k(b"proxy-require", HeaderName::ProxyRequire),
                ]
            }
        }
        14 => {
            const {
                &[
                    k(b"content-length", HeaderName::ContentLength),
                    k(b"accept-contact", HeaderName::AcceptContact),
                    k(b"reject-contact", HeaderName::RejectContact),
                ]
            }
        }
        15 => {
            const {
                &[
                    k(b"session-expires", HeaderName::SessionExpires),
                    k(b"accept-encoding", HeaderName::AcceptEncoding),
                    k(b"accept-language", HeaderName::AcceptLanguage),
                ]
            }
        }
        16 => {
            const {
                &[
                    k(b"content-encoding", HeaderName::ContentEncoding),
                    k(b"content-language", HeaderName::ContentLanguage),
                    k(b"www-authenticate", HeaderName::WwwAuthenticate),
                ]
            }
        }
        18 => const { &[k(b"proxy-authenticate", HeaderName::ProxyAuthenticate)] },
        19 => {
            const {
                &[
                    k(b"authentication-info", HeaderName::AuthenticationInfo),
                    k(b"content-disposition", HeaderName::ContentDisposition),
                    k(b"proxy-authorization", HeaderName::ProxyAuthorization),
                    k(b"request-disposition", HeaderName::RequestDisposition),
                ]
            }
        }
        _ => return None,
    };
    let want = key(b);
    bucket.iter().find(|c| c.key == want).map(|c| c.name)
}

/// A known name as its [`key`].
struct Known {
    key: [u64; 3],
    name: HeaderName<'static>,
}

/// `Known` for a lower-case name, computed at compile time.
const fn k(lower: &[u8], name: HeaderName<'static>) -> Known {
    Known {
        key: key(lower),
        name,
    }
}

/// A name of 2 to 24 bytes as up to three little-endian words that together cover every byte
/// (overlapping when the length is not a multiple of the word), each byte OR 0x20.
///
/// For two names of the same length, equal keys mean equal names up to that OR. Setting bit
/// 0x20 lower-cases letters and leaves `-` and digits alone; no other `token` byte (RFC 3261
/// §25.1) becomes a letter, `-` or digit that way, so for a token against a lower-case header
/// name (letters, digits, `-`) equal keys are exactly `eq_ignore_ascii_case` (the parser
/// validates names before classifying them: a CR would pass for a `-`).
const fn key(b: &[u8]) -> [u64; 3] {
    const LOW: u64 = 0x2020_2020_2020_2020;
    let w = words(b);
    let n = b.len();
    if n < 2 || n > 24 {
        return [0; 3];
    }
    if n < 4 {
        return [w[0] | 0x2020_2020, 0, 0];
    }
    if n < 8 {
        return [w[0] | LOW, 0, 0];
    }
    if n <= 16 {
        return [w[0] | LOW, w[1] | LOW, 0];
    }
    [w[0] | LOW, w[1] | LOW, w[2] | LOW]
}

/// The words of [`key`] before the OR: for 2 and 3 bytes the first two and the last two in
/// one word, for 4 to 7 the first and last four, then the first and last eight, and for 17 to
/// 24 bytes also the eight after the first eight. Zero where unused (and for other lengths).
const fn words(b: &[u8]) -> [u64; 3] {
    let n = b.len();
    if n < 2 || n > 24 {
        return [0; 3];
    }
    if n < 4 {
        return [load::<2>(b, 0) | load::<2>(b, n - 2) << 16, 0, 0];
    }
    if n < 8 {
        return [load::<4>(b, 0) | load::<4>(b, n - 4) << 32, 0, 0];
    }
    if n <= 16 {
        return [load::<8>(b, 0), load::<8>(b, n - 8), 0];
    }
    [load::<8>(b, 0), load::<8>(b, 8), load::<8>(b, n - 8)]
}

/// The `N` bytes at `at` as a little-endian number (one load; `N` is 2, 4 or 8).
#[inline]
const fn load<const N: usize>(b: &[u8], at: usize) -> u64 {
    let Some(c) = b.split_at(at).1.first_chunk::<N>() else {
        return 0;
    };
    let mut w = [0u8; 8];
    let mut i = 0;
    while i < N {
        w[i] = c[i];
        i += 1;
    }
    u64::from_le_bytes(w)
}

impl PartialEq for HeaderName<'_> {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.is(other)
    }
}

impl Eq for HeaderName<'_> {}

impl fmt::Display for HeaderName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_case() {
        for (sent, canon) in [
            ("v", "Via"),
            ("V", "Via"),
            ("via", "Via"),
            ("VIA", "Via"),
            ("f", "From"),
            ("t", "To"),
            ("i", "Call-ID"),
            ("call-id", "Call-ID"),
            ("m", "Contact"),
            ("l", "Content-Length"),
            ("c", "Content-Type"),
            ("k", "Supported"),
            ("s", "Subject"),
            ("e", "Content-Encoding"),
            ("o", "Event"),
            ("u", "Allow-Events"),
            ("x", "Session-Expires"),
            ("cseq", "CSeq"),
            ("min-se", "Min-SE"),
            ("www-authenticate", "WWW-Authenticate"),
            ("X-Custom", "X-Custom"),
            ("q", "q"),
        ] {
            assert_eq!(HeaderName::parse(sent).as_str(), canon, "{sent}");
        }
    }

    #[test]
    fn bucketed_lookup_matches_linear_scan() {
        for h in HeaderName::ALL {
            let canon = h.as_str();
            for spelling in [canon.to_owned(), canon.to_lowercase(), canon.to_uppercase()] {
                assert_eq!(lookup_known(spelling.as_bytes()), Some(*h), "{spelling}");
                assert_eq!(HeaderName::lookup_linear(spelling.as_bytes()), Some(*h));
            }
        }
        for other in [
            "X-Foo",
            "Vias",
            "Fro",
            "Contacts",
            "",
            "P-Asserted-Identity",
        ] {
            assert_eq!(lookup_known(other.as_bytes()), None, "{other}");
            assert_eq!(HeaderName::lookup_linear(other.as_bytes()), None);
        }
    }

    #[test]
    fn keyed_lookup_matches_linear_scan_one_byte_off() {
        let tokens: Vec<u8> = (0..=255u8)
            .filter(|&b| super::super::lex::is_token_byte(b))
            .collect();
        for h in HeaderName::ALL {
            let canon = h.as_str().as_bytes();
            for at in 0..canon.len() {
                for &t in &tokens {
                    let mut name = canon.to_vec();
                    name[at] = t;
                    assert_eq!(
                        lookup_known(&name),
                        HeaderName::lookup_linear(&name),
                        "{:?}",
                        String::from_utf8_lossy(&name)
                    );
                }
            }
            // One byte longer or shorter is never the name.
            assert_eq!(lookup_known(&[canon, b"s"].concat()), None);
            assert_ne!(lookup_known(&canon[1..]), Some(*h));
        }
    }

    /// Known names, case changed or one byte replaced by any ASCII byte.
    fn near_known_name() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        (
            prop::sample::select(HeaderName::ALL.to_vec()),
            any::<prop::sample::Index>(),
            0u8..0x80,
            0..3u8,
        )
            .prop_map(|(h, at, byte, op)| {
                let mut name = h.as_str().as_bytes().to_vec();
                let i = at.index(name.len());
                match op {
                    0 => name[i] = byte,
                    1 => name.make_ascii_uppercase(),
                    _ => name[i] ^= 0x20,
                }
                name
            })
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(20_000))]

        #[test]
        fn known_ascii_is_from_token_for_known_tokens(name in near_known_name()) {
            let s = std::str::from_utf8(&name).unwrap();
            let want = HeaderName::parse(s);
            let want = (s.len() >= 2 && !matches!(want, HeaderName::Other(_))).then_some(want);
            proptest::prop_assert_eq!(HeaderName::known_ascii(&name), want, "{:?}", s);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(20_000))]

        #[test]
        fn known_prefix_is_a_known_name_and_its_colon(
            name in near_known_name(),
            after in proptest::sample::select(vec![":", ": x", " :", ":value here", "", "\r\n", "x:"]),
            more in "[a-z: ]{0,12}",
        ) {
            let line = [name.as_slice(), after.as_bytes(), more.as_bytes()].concat();
            if let Some((h, n)) = HeaderName::known_prefix(&line) {
                proptest::prop_assert_eq!(line.get(n), Some(&b':'));
                proptest::prop_assert_eq!(HeaderName::known_ascii(&line[..n]), Some(h));
            }
        }
    }

    #[test]
    fn known_prefix_takes_the_usual_lines() {
        for (line, h) in [
            ("Via: SIP/2.0/UDP h", HeaderName::Via),
            ("v: SIP/2.0/UDP h", HeaderName::Via),
            ("FROM:<sip:a@b>;tag=1", HeaderName::From),
            ("To: <sip:a@b>   ", HeaderName::To),
            ("Call-ID: 1@b\r\n", HeaderName::CallId),
            ("CSeq: 1 INVITE\r\n", HeaderName::CSeq),
            ("Contact: <sip:a@b>", HeaderName::Contact),
            ("Content-Type: application/sdp", HeaderName::ContentType),
            ("content-length: 0\r\n", HeaderName::ContentLength),
            ("Max-Forwards: 70\r\n", HeaderName::MaxForwards),
            ("User-Agent: x y\r\n", HeaderName::UserAgent),
        ] {
            let got = HeaderName::known_prefix(line.as_bytes());
            if line.starts_with("v:") {
                assert_eq!(got, None, "{line:?}");
            } else {
                assert_eq!(got, Some((h, h.as_str().len())), "{line:?}");
            }
        }
        for line in [
            "Via : x",
            "Vi\ra: SIP",
            "Call\rID: x",
            "Content-Length:",
            "To:",
            "Contacts: x",
        ] {
            assert_eq!(HeaderName::known_prefix(line.as_bytes()), None, "{line:?}");
        }
    }

    #[test]
    fn known_ascii_refuses_control_impostors() {
        assert_eq!(
            HeaderName::known_ascii(b"Call-ID"),
            Some(HeaderName::CallId)
        );
        assert_eq!(HeaderName::known_ascii(b"call\rid"), None);
        assert_eq!(HeaderName::known_ascii(b"min\rse"), None);
        assert_eq!(HeaderName::known_ascii(b"To"), Some(HeaderName::To));
        assert_eq!(HeaderName::known_ascii(b"v"), None);
        assert_eq!(
            HeaderName::known_ascii(b"www-authenticate"),
            Some(HeaderName::WwwAuthenticate)
        );
        assert_eq!(HeaderName::known_ascii(b"www\rauthenticate"), None);
        assert_eq!(HeaderName::known_ascii(b"proxy-authorizatio\x11"), None);
    }

    #[test]
    fn non_tokens_are_never_known() {
        assert_eq!(HeaderName::parse("Call\rID"), HeaderName::Other("Call\rID"));
        assert_eq!(HeaderName::parse("Via "), HeaderName::Other("Via "));
        // The key alone would take CR for '-': why parse() checks for a token first.
        assert_eq!(key(b"call\rid"), key(b"call-id"));
    }

    #[test]
    fn equality() {
        assert_eq!(HeaderName::parse("v"), HeaderName::Via);
        assert_eq!(HeaderName::parse("x-foo"), HeaderName::parse("X-FOO"));
        assert_ne!(HeaderName::parse("x-foo"), HeaderName::Via);
        assert_ne!(HeaderName::From, HeaderName::To);
    }
}
