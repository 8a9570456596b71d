//! Typed readers for the headers the server acts on (RFC 3261 §20, RFC 3581, RFC 4028).
//!
//! Parsed on demand from the borrowed header values; nothing is cached. Accessors for headers a
//! request cannot do without (Via, From, To, Call-ID, CSeq) return `Result<T, InvalidHeader>`
//! with "missing" as an error; optional ones return `Result<Option<T>, InvalidHeader>`.

use std::borrow::Cow;
use std::fmt;

use super::lex::{
    find_ascii, is_lws, is_token, is_token_byte, parse_u32, port_at, trim_lws, unescape_quoted,
    Cursor, SplitTop,
};
use super::message::{Message, Method};
use super::names::HeaderName;
use super::params::Params;
use super::uri::{host_port, Uri};
use crate::scan::{eq_word, has_space_or_control, run_of, run_of_host, run_of_qtext};

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
    NameAddr::parse(v).map(|a| a.tag())
}

/// Byte classes for the one-pass readers [`name_addr_tag_fast`] and
/// [`top_via_branch_rport_fast`], as bit flags in one table.
const TOKEN: u8 = 1;
/// Bytes of RFC 3261 `user` that are neither `%` (escapes) nor `;` `?` `/` (which could be
/// read as parameters or headers): alphanumerics, `mark` and `& = + $ ,`.
const USER: u8 = 2;
/// SP, which may separate the words of an unquoted display name.
const SP: u8 = 4;
// Hosts (`scan::is_host_byte`) and the inside of a quoted display name without escapes (any
// byte but DQUOTE and `\`) have scans of their own: `run_of_host` and `run_of_qtext`.

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let alnum = b.is_ascii_alphanumeric();
        let mut f = 0;
        if alnum
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            )
        {
            f |= TOKEN;
        }
        if alnum
            || matches!(
                b,
                b'-' | b'_'
                    | b'.'
                    | b'!'
                    | b'~'
                    | b'*'
                    | b'\''
                    | b'('
                    | b')'
                    | b'&'
                    | b'='
                    | b'+'
                    | b'$'
                    | b','
            )
        {
            f |= USER;
        }
        if b == b' ' {
            f |= SP;
        }
        t[i] = f;
        i += 1;
    }
    t
};

/// The end of the run of `class` bytes ([`CLASS`]) in `b` from `from`.
#[inline(always)]
fn run_of_class(b: &[u8], from: usize, class: u8) -> usize {
    run_of(b, from, |c| CLASS[c as usize] & class != 0)
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
        call_id_value(v)
    }

    /// CSeq `number method` (RFC 3261 §20.16); the number must fit 32 bits (RFC 4475
    /// §3.1.2.4 `scalar02`) and the method is case-sensitive like the Request-Line's.
    pub fn cseq(&self) -> Result<(u32, Method<'a>), InvalidHeader> {
        let v = self.single(HeaderName::CSeq).ok_or(missing!("CSeq"))?;
        cseq_value(v)
    }

    /// Max-Forwards (0..=255, RFC 3261 §8.1.1.6, §20.22).
    pub fn max_forwards(&self) -> Result<Option<u8>, InvalidHeader> {
        self.single(HeaderName::MaxForwards)
            .map(max_forwards_value)
            .transpose()
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
        self.single(HeaderName::SessionExpires)
            .map(session_expires_value)
            .transpose()
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

/// The headers the server reads on every request, one value at a time: the [`Message`]
/// accessors find the line and call these, and the server's request reader, which finds all
/// its lines in one walk, calls them directly.
///
/// Call-ID = `word ["@" word]`: any non-whitespace.
pub(crate) fn call_id_value(v: &str) -> Result<&str, InvalidHeader> {
    // `is_lws(b) || b < b' '` is `b <= b' '`.
    if v.is_empty() || has_space_or_control(v.as_bytes()) {
        return Err(bad!("Call-ID"));
    }
    Ok(v)
}

/// CSeq `number LWS method [LWS]`.
pub(crate) fn cseq_value(v: &str) -> Result<(u32, Method<'_>), InvalidHeader> {
    let (n, method) = cseq_parts(v)?;
    Ok((n, Method::from_token(method)))
}

/// [`cseq_value`] with the method as written: the server compares it with the request's and
/// copies it, and `Method::from_token(m).as_str()` is `m`.
pub(crate) fn cseq_parts(v: &str) -> Result<(u32, &str), InvalidHeader> {
    let b = v.as_bytes();
    // `parse_u32` of the leading digits, summed as they are read: ten digits fit a u64, and
    // more are an error either way.
    let mut n = 0u64;
    let mut digits = 0;
    while let Some(d) = b.get(digits).filter(|d| d.is_ascii_digit()) {
        if digits == 10 {
            return Err(bad!("CSeq"));
        }
        n = n * 10 + u64::from(d - b'0');
        digits += 1;
    }
    let mut i = digits;
    while b.get(i).is_some_and(|&c| is_lws(c)) {
        i += 1;
    }
    let method_at = i;
    i = run_of(b, i, is_token_byte);
    let method = &v[method_at..i];
    while b.get(i).is_some_and(|&c| is_lws(c)) {
        i += 1;
    }
    if digits == 0 || method_at == digits || method.is_empty() || i != b.len() {
        return Err(bad!("CSeq"));
    }
    let n = u32::try_from(n).map_err(|_| bad!("CSeq"))?;
    Ok((n, method))
}

/// The topmost Via of the first Via line, as [`Message::top_via`] reads it.
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

/// The URI of the first value on a Contact line that is an address, skipping `*` and
/// malformed values, as `contacts().find_map(..)` does over the lines in order.
pub(crate) fn first_contact_uri(line: &str) -> Option<Uri<'_>> {
    SplitTop::new(line, b',').find_map(|v| match v {
        "*" => None,
        v => NameAddr::parse(v).ok().map(|a| a.uri),
    })
}

/// Max-Forwards 0..=255.
pub(crate) fn max_forwards_value(v: &str) -> Result<u8, InvalidHeader> {
    parse_u32(v)
        .and_then(|n| u8::try_from(n).ok())
        .ok_or(bad!("Max-Forwards"))
}

/// Session-Expires `delta-seconds *(;se-params)`.
pub(crate) fn session_expires_value(v: &str) -> Result<SessionExpires<'_>, InvalidHeader> {
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
    Ok(SessionExpires {
        delta,
        refresher,
        params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::byte_edits;
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

    /// `;name` or `;name=value`, each part from its regex.
    fn param(name: &'static str, value: &'static str) -> impl Strategy<Value = String> {
        (name, prop::option::of(value)).prop_map(|(n, v)| match v {
            Some(v) => format!(";{n}={v}"),
            None => format!(";{n}"),
        })
    }

    /// `good` values with zero to two bytes from `bytes` inserted, removed or replaced.
    fn mutated(
        good: impl Strategy<Value = String>,
        bytes: &'static [u8],
    ) -> impl Strategy<Value = String> {
        byte_edits(good.prop_map(String::into_bytes), bytes, 2)
            .prop_map(|b| String::from_utf8(b).expect("ASCII edits of ASCII"))
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

    #[test]
    fn first_contact_uri_reads_the_usual_contact() {
        let v = "\"Reception\" <sip:201@192.168.1.50:5060>";
        let uri = first_contact_uri(v).unwrap();
        assert_eq!(
            (uri.user, uri.host, uri.port),
            (Some("201"), "192.168.1.50", Some(5060))
        );
        assert_eq!(uri.raw, "sip:201@192.168.1.50:5060");
        assert_eq!(
            first_contact_uri("*, <sip:a@b>;q=1"),
            Uri::parse("sip:a@b").ok()
        );
        assert_eq!(first_contact_uri("<sip:a@b c>, x"), None);
    }

    /// The CSeq read as it was written before digits were summed as they are read: count the
    /// digits, LWS, a token, LWS, then `parse_u32` of the digits.
    fn cseq_reference(v: &str) -> Option<(u32, &str)> {
        let b = v.as_bytes();
        let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
        let mut i = digits;
        while b.get(i).is_some_and(|&c| is_lws(c)) {
            i += 1;
        }
        let method_at = i;
        while b.get(i).is_some_and(|&c| is_token_byte(c)) {
            i += 1;
        }
        let method = &v[method_at..i];
        while b.get(i).is_some_and(|&c| is_lws(c)) {
            i += 1;
        }
        if method_at == digits || method.is_empty() || i != b.len() {
            return None;
        }
        Some((parse_u32(&v[..digits])?, method))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        #[test]
        fn cseq_parts_matches_reference(v in "[0-9]{0,12}[ \t\r\n]{0,2}[A-Za-z0-9!~ .,;-]{0,8}[ \t]{0,2}") {
            prop_assert_eq!(cseq_parts(&v).ok(), cseq_reference(&v), "{:?}", v);
        }

        #[test]
        fn cseq_parts_matches_reference_near_the_limit(n in 4_294_967_290u64..4_294_967_300u64, z in 0..3usize) {
            let v = format!("{}{n} INVITE", "0".repeat(z));
            prop_assert_eq!(cseq_parts(&v).ok(), cseq_reference(&v), "{:?}", v);
        }
    }

    proptest! {
        #[test]
        fn call_id_checks_every_byte(v in "[a-z@.\t\r\n \x00-\x1f\x7f-é]{0,40}") {
            let want = !v.is_empty() && !v.bytes().any(|b| is_lws(b) || b < b' ');
            prop_assert_eq!(call_id_value(&v).is_ok(), want, "{:?}", v);
        }
    }

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
