//! SIP, SIPS and tel URIs, borrowed (RFC 3261 §19.1, §25.1; RFC 3966 for `tel:`).

use std::borrow::Cow;
use std::fmt;

use super::lex::{find_ascii, hex, percent_decode, port_at};
use super::params::Params;
use crate::scan::run_of_host;

/// A URI scheme. Schemes compare case-insensitively (RFC 3261 §19.1.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme<'a> {
    Sip,
    Sips,
    Tel,
    /// Any other absolute URI scheme: kept opaque (the server answers 416).
    Other(&'a str),
}

impl<'a> Scheme<'a> {
    pub fn as_str(&self) -> &'a str {
        match self {
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
            Scheme::Tel => "tel",
            Scheme::Other(s) => s,
        }
    }
}

/// A parsed URI. For `sip:`/`sips:` all parts are filled as present. For `tel:` the number is
/// in `user` and `host` is empty (RFC 3966 has no host). For other schemes only `scheme` and
/// `raw` are meaningful.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uri<'a> {
    pub scheme: Scheme<'a>,
    /// The user part as sent, %-escapes not decoded (see [`Uri::user_unescaped`]).
    pub user: Option<&'a str>,
    pub password: Option<&'a str>,
    /// Host name, IPv4 address, or IPv6 reference *with* its brackets (`[2001:db8::1]`), so
    /// that it can be written back as is.
    pub host: &'a str,
    pub port: Option<u16>,
    /// `;name[=value]` URI parameters (`transport`, `user`, `lr`, ...).
    pub params: Params<'a>,
    /// The `?h=v&...` part without the `?`.
    pub headers: Option<&'a str>,
    /// The whole URI as sent.
    pub raw: &'a str,
}

/// A URI that does not follow RFC 3261 §25.1 (the server answers 400, or 416 for a scheme it
/// does not support — that case parses as [`Scheme::Other`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidUri;

impl fmt::Display for InvalidUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid URI")
    }
}

impl std::error::Error for InvalidUri {}

impl<'a> Uri<'a> {
    /// The URI as sent without its `?headers` part: what a request sent to it carries as its
    /// Request-URI, where headers are not allowed (RFC 3261 §19.1.1, table 1; our own parser
    /// refuses them there, as RFC 4475 `escruri` asks).
    pub fn without_headers(&self) -> &'a str {
        match self.headers {
            Some(h) => self
                .raw
                .strip_suffix(h)
                .and_then(|r| r.strip_suffix('?'))
                .unwrap_or(self.raw),
            None => self.raw,
        }
    }

    /// Parses an absolute URI. No surrounding LWS or `<>` is accepted: a Request-URI with
    /// either is malformed (RFC 4475 §3.1.2.7 `ltgtruri`, §3.1.2.8 `lwsruri`).
    pub fn parse(s: &'a str) -> Result<Uri<'a>, InvalidUri> {
        // Nearly every URI a phone sends starts `sip:`: take that scheme without the general
        // search and character checks below (which would find the same colon and accept it).
        if let Some(p) = s.as_bytes().get(..4) {
            if p.eq_ignore_ascii_case(b"sip:") {
                return parse_sip(s, Scheme::Sip, &s[4..]);
            }
        }
        let colon = find_ascii(s, b':').ok_or(InvalidUri)?;
        let scheme_str = &s[..colon];
        // scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )  (RFC 3261 §25.1)
        let mut sb = scheme_str.bytes();
        if !sb.next().is_some_and(|b| b.is_ascii_alphabetic())
            || !sb.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        {
            return Err(InvalidUri);
        }
        let rest = &s[colon + 1..];
        let scheme = if scheme_str.eq_ignore_ascii_case("sip") {
            Scheme::Sip
        } else if scheme_str.eq_ignore_ascii_case("sips") {
            Scheme::Sips
        } else if scheme_str.eq_ignore_ascii_case("tel") {
            Scheme::Tel
        } else {
            // An absoluteURI: opaque, but still no whitespace or angle brackets in it.
            if rest.is_empty()
                || rest
                    .bytes()
                    .any(|b| b <= b' ' || matches!(b, b'<' | b'>' | b'"'))
            {
                return Err(InvalidUri);
            }
            return Ok(Uri {
                scheme: Scheme::Other(scheme_str),
                user: None,
                password: None,
                host: "",
                port: None,
                params: Params::default(),
                headers: None,
                raw: s,
            });
        };
        if scheme == Scheme::Tel {
            return parse_tel(s, rest);
        }
        parse_sip(s, scheme, rest)
    }

    /// The user part with %-escapes decoded (RFC 3261 §19.1.2; `sip:%61lice@` is `alice`).
    pub fn user_unescaped(&self) -> Option<Cow<'a, str>> {
        self.user.map(percent_decode)
    }

    /// The host without IPv6 brackets, ready for `IpAddr::from_str`.
    pub fn host_unbracketed(&self) -> &'a str {
        self.host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(self.host)
    }

    /// The `transport` URI parameter, if any.
    pub fn transport(&self) -> Option<&'a str> {
        self.params.value("transport")
    }
}

impl fmt::Display for Uri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.raw)
    }
}

fn parse_tel<'a>(raw: &'a str, rest: &'a str) -> Result<Uri<'a>, InvalidUri> {
    let (number, params) = match find_ascii(rest, b';') {
        Some(i) => (&rest[..i], Params::new(&rest[i + 1..])),
        None => (rest, Params::default()),
    };
    // RFC 3966 §3: digits, visual separators, `*#`, hex for local numbers, a leading `+`.
    let ok = |b: u8| {
        b.is_ascii_hexdigit() || matches!(b, b'+' | b'-' | b'.' | b'(' | b')' | b'*' | b'#')
    };
    if number.is_empty() || !number.bytes().all(ok) || !params.well_formed() {
        return Err(InvalidUri);
    }
    Ok(Uri {
        scheme: Scheme::Tel,
        user: Some(number),
        password: None,
        host: "",
        port: None,
        params,
        headers: None,
        raw,
    })
}

/// A 256-entry membership table built at compile time: the URI character classes are checked
/// on every byte of every URI the server reads.
macro_rules! byte_class {
    ($b:ident => $e:expr) => {{
        let mut t = [false; 256];
        let mut i = 0;
        while i < 256 {
            let $b = i as u8;
            t[i] = $e;
            i += 1;
        }
        t
    }};
}

/// `unreserved / escaped / user-unreserved` (RFC 3261 §25.1); `:` only in the password.
static USER: [bool; 256] = byte_class!(b => b.is_ascii_alphanumeric()
|| matches!(
    b,
    b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')' // mark
        | b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/' // user-unreserved
        | b'%'
));

/// password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
static PASSWORD: [bool; 256] = byte_class!(b => b.is_ascii_alphanumeric()
|| matches!(
    b,
    b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')' | b'&' | b'=' | b'+'
        | b'$' | b',' | b'%'
));

/// Every `%` must start a `%HH` escape.
fn escapes_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if i + 2 >= b.len() {
                return false;
            }
            if hex(b[i + 1]).is_none() || hex(b[i + 2]).is_none() {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

/// Splits `host[:port]` at the start of `s`; returns (host, port, bytes consumed).
pub(crate) fn host_port(s: &str) -> Result<(&str, Option<u16>, usize), InvalidUri> {
    let b = s.as_bytes();
    let host_end = if b.first() == Some(&b'[') {
        // IPv6reference = "[" IPv6address "]"
        let close = find_ascii(s, b']').ok_or(InvalidUri)?;
        let inner = &s[1..close];
        if inner.is_empty()
            || !inner
                .bytes()
                .all(|c| c.is_ascii_hexdigit() || c == b':' || c == b'.')
        {
            return Err(InvalidUri);
        }
        close + 1
    } else {
        // Sixteen bytes at once where there are as many (`run_of_host`): a
        // `take_while(..).count()` went byte by byte with the end check and the count kept
        // apart.
        let n = run_of_host(b, 0);
        if n == 0 {
            return Err(InvalidUri);
        }
        n
    };
    let host = &s[..host_end];
    if b.get(host_end) != Some(&b':') {
        return Ok((host, None, host_end));
    }
    // 1..=5 ASCII digits, summed as they are read: `str::parse` re-checks sign and digits.
    let (port, end) = port_at(b, host_end + 1).ok_or(InvalidUri)?;
    Ok((host, Some(port), end))
}

fn parse_sip<'a>(raw: &'a str, scheme: Scheme<'a>, rest: &'a str) -> Result<Uri<'a>, InvalidUri> {
    // userinfo ends at the first '@': neither hostport, parameters nor headers may hold an
    // unescaped '@' (RFC 3261 §25.1).
    let (user, password, hostpart) = match find_ascii(rest, b'@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let (user, password) = match find_ascii(userinfo, b':') {
                Some(c) => (&userinfo[..c], Some(&userinfo[c + 1..])),
                None => (userinfo, None),
            };
            if user.is_empty() || !user.bytes().all(|b| USER[b as usize]) || !escapes_ok(user) {
                return Err(InvalidUri);
            }
            if let Some(p) = password {
                if !p.bytes().all(|b| PASSWORD[b as usize]) || !escapes_ok(p) {
                    return Err(InvalidUri);
                }
            }
            (Some(user), password, &rest[at + 1..])
        }
        None => (None, None, rest),
    };
    let (host, port, used) = host_port(hostpart)?;
    let after = &hostpart[used..];
    let (params_str, headers) = match find_ascii(after, b'?') {
        Some(q) => (&after[..q], Some(&after[q + 1..])),
        None => (after, None),
    };
    let params = match params_str.as_bytes().first() {
        None => Params::default(),
        Some(b';') => Params::new(&params_str[1..]),
        Some(_) => return Err(InvalidUri),
    };
    // URI parameters: `pname[=pvalue]`, no whitespace or quotes (RFC 3261 §25.1 uri-parameter).
    if params_str
        .bytes()
        .any(|b| b <= b' ' || matches!(b, b'"' | b'<' | b'>'))
        || !params.well_formed()
    {
        return Err(InvalidUri);
    }
    if let Some(h) = headers {
        if h.bytes()
            .any(|b| b <= b' ' || matches!(b, b'"' | b'<' | b'>'))
            || !escapes_ok(h)
        {
            return Err(InvalidUri);
        }
    }
    Ok(Uri {
        scheme,
        user,
        password,
        host,
        port,
        params,
        headers,
        raw,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_full() {
        let u =
            Uri::parse("sip:alice:secret@atlanta.com:5061;transport=tcp;lr?subject=x&h=y").unwrap();
        assert_eq!(u.scheme, Scheme::Sip);
        assert_eq!(u.user, Some("alice"));
        assert_eq!(u.password, Some("secret"));
        assert_eq!(u.host, "atlanta.com");
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.transport(), Some("tcp"));
        assert_eq!(u.params.get("lr"), Some(None));
        assert_eq!(u.headers, Some("subject=x&h=y"));
    }

    #[test]
    fn host_only_and_ipv4_ipv6() {
        let u = Uri::parse("sip:192.168.1.100").unwrap();
        assert_eq!((u.user, u.host, u.port), (None, "192.168.1.100", None));
        let u = Uri::parse("SIPS:[2001:db8::10]:5061").unwrap();
        assert_eq!(u.scheme, Scheme::Sips);
        assert_eq!(u.host, "[2001:db8::10]");
        assert_eq!(u.host_unbracketed(), "2001:db8::10");
        assert_eq!(u.port, Some(5061));
        let u = Uri::parse("sip:123@192.168.1.100:5060").unwrap();
        assert_eq!((u.user, u.port), (Some("123"), Some(5060)));
    }

    #[test]
    fn escapes_in_user() {
        let u = Uri::parse("sip:%61lice%20b@example.com").unwrap();
        assert_eq!(u.user, Some("%61lice%20b"));
        assert_eq!(u.user_unescaped().unwrap(), "alice b");
        assert!(Uri::parse("sip:al%zzice@example.com").is_err());
        assert!(Uri::parse("sip:al%2@example.com").is_err());
        // RFC 3261 §19.1.3 examples: a password, and ';' inside the user part.
        let u = Uri::parse("sip:+1-212-555-1212:1234@gateway.com;user=phone").unwrap();
        assert_eq!(
            (u.user, u.password),
            (Some("+1-212-555-1212"), Some("1234"))
        );
        assert_eq!(u.params.value("user"), Some("phone"));
        let u = Uri::parse("sip:alice;day=tuesday@atlanta.com").unwrap();
        assert_eq!((u.user, u.host), (Some("alice;day=tuesday"), "atlanta.com"));
    }

    #[test]
    fn tel_and_other() {
        let u = Uri::parse("tel:+1-201-555-0123;phone-context=example.com").unwrap();
        assert_eq!(u.scheme, Scheme::Tel);
        assert_eq!(u.user, Some("+1-201-555-0123"));
        assert_eq!(u.params.value("phone-context"), Some("example.com"));
        let u = Uri::parse("http://example.com/x").unwrap();
        assert_eq!(u.scheme, Scheme::Other("http"));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "sip:",
            "<sip:a@b>",
            "sip:a@b c",
            "sip:a@",
            "sip:a@b:99999",
            "sip:a@b:",
            "sip:a@b>",
            "sip:[::1",
            "sip:a b@c",
            "1sip:a@b",
            "sip:@host",
        ] {
            assert!(Uri::parse(bad).is_err(), "{bad:?}");
        }
    }
}
