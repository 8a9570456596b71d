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

            fn from_known(lower: &[u8]) -> Option<HeaderName<'static>> {
                // A length compare rejects almost every candidate before any byte is read.
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
    pub fn parse(name: &'a str) -> HeaderName<'a> {
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
        match Self::from_known(b) {
            Some(h) => h,
            None => HeaderName::Other(name),
        }
    }

    /// Same header? Known names compare by variant, extension names case-insensitively.
    pub fn is(&self, other: &HeaderName<'_>) -> bool {
        match (self, other) {
            (HeaderName::Other(a), HeaderName::Other(b)) => a.eq_ignore_ascii_case(b),
            (HeaderName::Other(_), _) | (_, HeaderName::Other(_)) => false,
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

impl PartialEq for HeaderName<'_> {
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
    fn equality() {
        assert_eq!(HeaderName::parse("v"), HeaderName::Via);
        assert_eq!(HeaderName::parse("x-foo"), HeaderName::parse("X-FOO"));
        assert_ne!(HeaderName::parse("x-foo"), HeaderName::Via);
        assert_ne!(HeaderName::From, HeaderName::To);
    }
}
