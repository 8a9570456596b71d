//! Typed readers for the headers the server acts on (RFC 3261 §20, RFC 3581, RFC 4028).
//!
//! Parsed on demand from the borrowed header values; nothing is cached. Accessors for headers a
//! request cannot do without (Via, From, To, Call-ID, CSeq) return `Result<T, InvalidHeader>`
//! with "missing" as an error; optional ones return `Result<Option<T>, InvalidHeader>`.

use std::borrow::Cow;
use std::fmt;

use super::lex::{
    find_ascii, is_lws, is_token, is_token_byte, parse_u32, trim_lws, unescape_quoted, Cursor,
    SplitTop,
};
use super::names::HeaderName;
use super::params::Params;
use super::parse::{Message, Method};
use super::uri::{host_port, Uri};

/// A header the server needs is missing or malformed. `reason` is a ready reason phrase for
/// the 400 (e.g. "Missing Call-ID", "Bad CSeq").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidHeader {
    /// Canonical header name.
    pub header: &'static str,
    pub missing: bool,
    pub reason: &'static str,
}

macro_rules! bad {
    ($h:literal) => {
        InvalidHeader {
            header: $h,
            missing: false,
            reason: concat!("Bad ", $h),
        }
    };
}

macro_rules! missing {
    ($h:literal) => {
        InvalidHeader {
            header: $h,
            missing: true,
            reason: concat!("Missing ", $h),
        }
    };
}

macro_rules! multiple {
    ($h:literal) => {
        InvalidHeader {
            header: $h,
            missing: false,
            reason: concat!("Multiple ", $h),
        }
    };
}

impl fmt::Display for InvalidHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason)
    }
}

impl std::error::Error for InvalidHeader {}

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
        // §3.1.2.16 `badvers`). Nearly every Via starts with a plain `SIP/2.0/`, which the
        // token-by-token read below would split the same way.
        let (name, slash1, version, slash2);
        if c.s.as_bytes().starts_with(b"SIP/2.0/") {
            (name, slash1, version, slash2) = (&c.s[..3], true, &c.s[4..7], true);
            c.pos = 8;
            c.skip_lws();
        } else {
            name = c.take_while(is_token_byte);
            c.skip_lws();
            slash1 = c.eat(b'/');
            c.skip_lws();
            version = c.take_while(is_token_byte);
            c.skip_lws();
            slash2 = c.eat(b'/');
            c.skip_lws();
        }
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

/// A value that is not a `name-addr` / `addr-spec` (RFC 3261 §25.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidNameAddr;

impl fmt::Display for InvalidNameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid name-addr")
    }
}

impl std::error::Error for InvalidNameAddr {}

/// One Contact value (RFC 3261 §20.10): `*` (REGISTER only) or an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContactValue<'a> {
    Wildcard,
    Addr(NameAddr<'a>),
}

/// Content-Type `type/subtype *(;param)` (RFC 3261 §20.15).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentType<'a> {
    pub mtype: &'a str,
    pub subtype: &'a str,
    pub params: Params<'a>,
}

impl ContentType<'_> {
    /// Case-insensitive match on `type/subtype` (RFC 2045 §5.1).
    pub fn is(&self, mtype: &str, subtype: &str) -> bool {
        self.mtype.eq_ignore_ascii_case(mtype) && self.subtype.eq_ignore_ascii_case(subtype)
    }
}

/// Who refreshes the session (RFC 4028 §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refresher {
    Uac,
    Uas,
}

/// Session-Expires (RFC 4028 §4): interval in seconds and the optional refresher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionExpires<'a> {
    pub delta: u32,
    pub refresher: Option<Refresher>,
    pub params: Params<'a>,
}

/// Splits `value` at the first top-level `;` into (value, params).
fn split_params(v: &str) -> (&str, Params<'_>) {
    match find_ascii(v, b';') {
        Some(i) => (trim_lws(&v[..i]), Params::new(&v[i + 1..])),
        None => (trim_lws(v), Params::default()),
    }
}

impl<'a> Message<'a> {
    /// Every Via value in order, multi-valued lines split at commas (RFC 3261 §7.3.1).
    pub fn vias(&self) -> impl Iterator<Item = Result<Via<'a>, InvalidHeader>> + '_ {
        self.headers_of(HeaderName::Via)
            .flat_map(|v| SplitTop::new(v, b','))
            .map(Via::parse)
    }

    /// The topmost Via: where responses go (RFC 3261 §18.2.2).
    pub fn top_via(&self) -> Result<Via<'a>, InvalidHeader> {
        self.vias().next().unwrap_or(Err(missing!("Via")))
    }

    fn single(&self, name: HeaderName<'static>) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|h| h.name == name)
            .map(|h| h.value)
    }

    pub fn from(&self) -> Result<NameAddr<'a>, InvalidHeader> {
        let v = self.single(HeaderName::From).ok_or(missing!("From"))?;
        NameAddr::parse(v).map_err(|_| bad!("From"))
    }

    pub fn to(&self) -> Result<NameAddr<'a>, InvalidHeader> {
        let v = self.single(HeaderName::To).ok_or(missing!("To"))?;
        NameAddr::parse(v).map_err(|_| bad!("To"))
    }

    /// Call-ID = `word ["@" word]`: any non-whitespace; compared byte for byte (§20.8).
    pub fn call_id(&self) -> Result<&'a str, InvalidHeader> {
        let v = self.single(HeaderName::CallId).ok_or(missing!("Call-ID"))?;
        if v.is_empty() || v.bytes().any(|b| is_lws(b) || b < b' ') {
            return Err(bad!("Call-ID"));
        }
        Ok(v)
    }

    /// CSeq `number method` (RFC 3261 §20.16); the number must fit 32 bits (RFC 4475
    /// §3.1.2.4 `scalar02`) and the method is case-sensitive like the Request-Line's.
    pub fn cseq(&self) -> Result<(u32, Method<'a>), InvalidHeader> {
        let v = self.single(HeaderName::CSeq).ok_or(missing!("CSeq"))?;
        let mut c = Cursor::new(v);
        let num = c.take_while(|b| b.is_ascii_digit());
        let had_ws = c.skip_lws();
        let method = c.take_while(is_token_byte);
        c.skip_lws();
        if !had_ws || method.is_empty() || !c.at_end() {
            return Err(bad!("CSeq"));
        }
        let n = parse_u32(num).ok_or(bad!("CSeq"))?;
        Ok((n, Method::from_token(method)))
    }

    /// Max-Forwards (0..=255, RFC 3261 §8.1.1.6, §20.22).
    pub fn max_forwards(&self) -> Result<Option<u8>, InvalidHeader> {
        match self.single(HeaderName::MaxForwards) {
            None => Ok(None),
            Some(v) => parse_u32(v)
                .and_then(|n| u8::try_from(n).ok())
                .map(Some)
                .ok_or(bad!("Max-Forwards")),
        }
    }

    /// Every Contact value across all Contact lines, in order.
    pub fn contacts(&self) -> impl Iterator<Item = Result<ContactValue<'a>, InvalidHeader>> + '_ {
        self.headers_of(HeaderName::Contact)
            .flat_map(|v| SplitTop::new(v, b','))
            .map(|v| {
                if v == "*" {
                    Ok(ContactValue::Wildcard)
                } else {
                    NameAddr::parse(v)
                        .map(ContactValue::Addr)
                        .map_err(|_| bad!("Contact"))
                }
            })
    }

    pub fn content_type(&self) -> Result<Option<ContentType<'a>>, InvalidHeader> {
        let Some(v) = self.single(HeaderName::ContentType) else {
            return Ok(None);
        };
        let (essence, params) = split_params(v);
        let (mtype, subtype) = essence.split_once('/').ok_or(bad!("Content-Type"))?;
        let (mtype, subtype) = (trim_lws(mtype), trim_lws(subtype));
        if !is_token(mtype) || !is_token(subtype) || !params.well_formed() {
            return Err(bad!("Content-Type"));
        }
        Ok(Some(ContentType {
            mtype,
            subtype,
            params,
        }))
    }

    /// Content-Length as sent (the parser has already checked it against the body).
    pub fn content_length(&self) -> Result<Option<u32>, InvalidHeader> {
        match self.single(HeaderName::ContentLength) {
            None => Ok(None),
            Some(v) => parse_u32(v).map(Some).ok_or(bad!("Content-Length")),
        }
    }

    /// Comma-separated tokens across every line of `name` (empty items skipped).
    pub fn tokens<'s>(&'s self, name: HeaderName<'s>) -> impl Iterator<Item = &'a str> + 's {
        self.headers_of(name)
            .flat_map(|v| SplitTop::new(v, b','))
            .filter(|t| !t.is_empty())
    }

    /// Require option tags (RFC 3261 §20.32).
    pub fn require(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.tokens(HeaderName::Require)
    }

    /// Supported option tags (§20.37).
    pub fn supported(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.tokens(HeaderName::Supported)
    }

    /// Allowed methods (§20.5).
    pub fn allow(&self) -> impl Iterator<Item = Method<'a>> + '_ {
        self.tokens(HeaderName::Allow).map(Method::from_token)
    }

    /// Session-Expires (RFC 4028 §4): `delta-seconds *(;se-params)`.
    pub fn session_expires(&self) -> Result<Option<SessionExpires<'a>>, InvalidHeader> {
        let Some(v) = self.single(HeaderName::SessionExpires) else {
            return Ok(None);
        };
        let (delta, params) = split_params(v);
        let delta = parse_u32(delta).ok_or(bad!("Session-Expires"))?;
        let refresher = match params.get("refresher") {
            None => None,
            Some(Some(r)) if r.eq_ignore_ascii_case("uac") => Some(Refresher::Uac),
            Some(Some(r)) if r.eq_ignore_ascii_case("uas") => Some(Refresher::Uas),
            Some(_) => return Err(bad!("Session-Expires")),
        };
        if !params.well_formed() {
            return Err(bad!("Session-Expires"));
        }
        Ok(Some(SessionExpires {
            delta,
            refresher,
            params,
        }))
    }

    /// Min-SE (RFC 4028 §5): delta-seconds, parameters ignored.
    pub fn min_se(&self) -> Result<Option<u32>, InvalidHeader> {
        match self.single(HeaderName::MinSe) {
            None => Ok(None),
            Some(v) => parse_u32(split_params(v).0).map(Some).ok_or(bad!("Min-SE")),
        }
    }

    /// Expires (§20.19): delta-seconds.
    pub fn expires(&self) -> Result<Option<u32>, InvalidHeader> {
        match self.single(HeaderName::Expires) {
            None => Ok(None),
            Some(v) => parse_u32(v).map(Some).ok_or(bad!("Expires")),
        }
    }

    /// The checks RFC 3261 §8.2 asks of a UAS before it looks at a request: the mandatory
    /// headers are present once and readable, every Via and Contact value parses, the CSeq
    /// method matches the Request-Line (RFC 4475 §3.1.2.17 `mismatch01`), and the Request-URI
    /// parses. The error's `reason` goes in the 400. Returns `Ok` for responses.
    pub fn check_request(&self) -> Result<(), InvalidHeader> {
        let Some(method) = self.method() else {
            return Ok(());
        };
        // Single-valued headers given twice (RFC 3261 §7.3.1; RFC 4475 §3.3.8 `multi01`).
        for (name, err) in [
            (HeaderName::From, multiple!("From")),
            (HeaderName::To, multiple!("To")),
            (HeaderName::CallId, multiple!("Call-ID")),
            (HeaderName::CSeq, multiple!("CSeq")),
            (HeaderName::MaxForwards, multiple!("Max-Forwards")),
        ] {
            if self.headers_of(name).nth(1).is_some() {
                return Err(err);
            }
        }
        for v in self.vias() {
            v?;
        }
        self.top_via()?;
        self.from()?;
        self.to()?;
        self.call_id()?;
        let (_, cseq_method) = self.cseq()?;
        if cseq_method != method {
            return Err(InvalidHeader {
                header: "CSeq",
                missing: false,
                reason: "CSeq Method Mismatch",
            });
        }
        self.max_forwards()?;
        self.content_length()?;
        for c in self.contacts() {
            c?;
        }
        if let Some(uri) = self.request_uri() {
            Uri::parse(uri).map_err(|_| InvalidHeader {
                header: "Request-URI",
                missing: false,
                reason: "Bad Request-URI",
            })?;
        }
        Ok(())
    }
}
