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

    /// Same header? Known names compare by variant, extension names case-insensitively.
    /// Inlined: every header lookup runs it once per line, and it is a few instructions.
    #[inline]
    pub fn is(&self, other: &HeaderName<'_>) -> bool {
        match (self, other) {
            (HeaderName::Other(a), HeaderName::Other(b)) => a.eq_ignore_ascii_case(b),
            (HeaderName::Other(_), _) | (_, HeaderName::Other(_)) => false,
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

/// Known long header names, bucketed by (length, lower-case first letter) so that a lookup
/// compares against one or two candidates instead of the whole list.
fn lookup_known(b: &[u8]) -> Option<HeaderName<'static>> {
    type Bucket = &'static [(&'static [u8], HeaderName<'static>)];
    let first = b.first()?.to_ascii_lowercase();
    let bucket: Bucket = match (b.len(), first) {
        (2, b't') => &[(b"to", HeaderName::To)],
        (3, b'v') => &[(b"via", HeaderName::Via)],
        (4, b'c') => &[(b"cseq", HeaderName::CSeq)],
        (4, b'd') => &[(b"date", HeaderName::Date)],
        (4, b'f') => &[(b"from", HeaderName::From)],
        (4, b'r') => &[(b"rack", HeaderName::RAck), (b"rseq", HeaderName::RSeq)],
        (5, b'a') => &[(b"allow", HeaderName::Allow)],
        (5, b'e') => &[(b"event", HeaderName::Event)],
        (5, b'r') => &[(b"route", HeaderName::Route)],
        (6, b'a') => &[(b"accept", HeaderName::Accept)],
        (6, b'm') => &[(b"min-se", HeaderName::MinSe)],
        (6, b's') => &[(b"server", HeaderName::Server)],
        (7, b'c') => &[
            (b"call-id", HeaderName::CallId),
            (b"contact", HeaderName::Contact),
        ],
        (7, b'e') => &[(b"expires", HeaderName::Expires)],
        (7, b'r') => &[(b"require", HeaderName::Require)],
        (7, b's') => &[(b"subject", HeaderName::Subject)],
        (7, b'w') => &[(b"warning", HeaderName::Warning)],
        (8, b'p') => &[(b"priority", HeaderName::Priority)],
        (8, b'r') => &[
            (b"refer-to", HeaderName::ReferTo),
            (b"reply-to", HeaderName::ReplyTo),
        ],
        (9, b'c') => &[(b"call-info", HeaderName::CallInfo)],
        (9, b's') => &[(b"supported", HeaderName::Supported)],
        (9, b't') => &[(b"timestamp", HeaderName::Timestamp)],
        (10, b'a') => &[(b"alert-info", HeaderName::AlertInfo)],
        (10, b'e') => &[(b"error-info", HeaderName::ErrorInfo)],
        (10, b'u') => &[(b"user-agent", HeaderName::UserAgent)],
        (11, b'i') => &[(b"in-reply-to", HeaderName::InReplyTo)],
        (11, b'm') => &[(b"min-expires", HeaderName::MinExpires)],
        (11, b'r') => &[
            (b"referred-by", HeaderName::ReferredBy),
            (b"retry-after", HeaderName::RetryAfter),
        ],
        (11, b'u') => &[(b"unsupported", HeaderName::Unsupported)],
        (12, b'a') => &[(b"allow-events", HeaderName::AllowEvents)],
        (12, b'c') => &[(b"content-type", HeaderName::ContentType)],
        (12, b'm') => &[
            (b"max-forwards", HeaderName::MaxForwards),
            (b"mime-version", HeaderName::MimeVersion),
        ],
        (12, b'o') => &[(b"organization", HeaderName::Organization)],
        (12, b'r') => &[(b"record-route", HeaderName::RecordRoute)],
        (13, b'a') => &[(b"authorization", HeaderName::Authorization)],
        (13, b'p') => &[(b"proxy-require", HeaderName::ProxyRequire)],
        (14, b'a') => &[(b"accept-contact", HeaderName::AcceptContact)],
        (14, b'c') => &[(b"content-length", HeaderName::ContentLength)],
        (14, b'r') => &[(b"reject-contact", HeaderName::RejectContact)],
        (15, b'a') => &[
            (b"accept-encoding", HeaderName::AcceptEncoding),
            (b"accept-language", HeaderName::AcceptLanguage),
        ],
        (15, b's') => &[(b"session-expires", HeaderName::SessionExpires)],
        (16, b'c') => &[
            (b"content-encoding", HeaderName::ContentEncoding),
            (b"content-language", HeaderName::ContentLanguage),
        ],
        (16, b'w') => &[(b"www-authenticate", HeaderName::WwwAuthenticate)],
        (18, b'p') => &[(b"proxy-authenticate", HeaderName::ProxyAuthenticate)],
        (19, b'a') => &[(b"authentication-info", HeaderName::AuthenticationInfo)],
        (19, b'c') => &[(b"content-disposition", HeaderName::ContentDisposition)],
        (19, b'p') => &[(b"proxy-authorization", HeaderName::ProxyAuthorization)],
        (19, b'r') => &[(b"request-disposition", HeaderName::RequestDisposition)],
        _ => return None,
    };
    bucket
        .iter()
        .find(|(name, _)| eq_lower(b, name))
        .map(|&(_, h)| h)
}

/// `token.eq_ignore_ascii_case(lower)` for a `token` (RFC 3261 §25.1) against a lower-case
/// header name, eight bytes at a time. Setting bit 0x20 lower-cases letters and leaves `-` and
/// digits alone; no other token byte becomes a letter, `-` or digit that way, so the compare is
/// exact for token input (the parser validates names before classifying them).
fn eq_lower(token: &[u8], lower: &[u8]) -> bool {
    if token.len() != lower.len() {
        return false;
    }
    let mut a = token.chunks_exact(8);
    let mut b = lower.chunks_exact(8);
    for (x, y) in (&mut a).zip(&mut b) {
        let (mut wx, mut wy) = ([0u8; 8], [0u8; 8]);
        wx.copy_from_slice(x);
        wy.copy_from_slice(y);
        if u64::from_le_bytes(wx) | 0x2020_2020_2020_2020 != u64::from_le_bytes(wy) {
            return false;
        }
    }
    if token.len() >= 8 && !a.remainder().is_empty() {
        // The tail as one more word, overlapping bytes already compared: no byte loop.
        let tail = token.len() - 8;
        return word_at(token, tail) | 0x2020_2020_2020_2020 == word_at(lower, tail);
    }
    a.remainder()
        .iter()
        .zip(b.remainder())
        .all(|(&x, &y)| x | 0x20 == y)
}

/// The eight bytes at `at` as a little-endian word (`at + 8 <= bytes.len()`).
#[inline]
fn word_at(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[at..at + 8]);
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
    fn non_tokens_are_never_known() {
        assert_eq!(HeaderName::parse("Call\rID"), HeaderName::Other("Call\rID"));
        assert_eq!(HeaderName::parse("Via "), HeaderName::Other("Via "));
        // eq_lower alone would take CR for '-': why parse() checks for a token first.
        assert!(eq_lower(b"call\rid", b"call-id"));
    }

    #[test]
    fn equality() {
        assert_eq!(HeaderName::parse("v"), HeaderName::Via);
        assert_eq!(HeaderName::parse("x-foo"), HeaderName::parse("X-FOO"));
        assert_ne!(HeaderName::parse("x-foo"), HeaderName::Via);
        assert_ne!(HeaderName::From, HeaderName::To);
    }
}
