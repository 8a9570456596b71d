//! Typed readers for the headers the server acts on (RFC 3261 §20, RFC 4028): the [`Message`]
//! accessors, and the readers of one value that the server's request reader calls directly.
//! Via and name-addr values (From, To, Contact) are read by [`Via`] (`via.rs`) and
//! [`NameAddr`] (`name_addr.rs`).
//!
//! Parsed on demand from the borrowed header values; nothing is cached. Accessors for headers a
//! request cannot do without (Via, From, To, Call-ID, CSeq) return `Result<T, InvalidHeader>`
//! with "missing" as an error; optional ones return `Result<Option<T>, InvalidHeader>`.

use super::invalid::{bad, missing, multiple, InvalidHeader};
use super::lex::{find_ascii, is_lws, is_token, is_token_byte, parse_u32, trim_lws, SplitTop};
use super::message::{Message, Method};
use super::name_addr::NameAddr;
use super::names::HeaderName;
use super::params::Params;
use super::uri::Uri;
use super::via::Via;
use crate::scan::{has_space_or_control, run_of};

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
        self.single(HeaderName::MinSe).map(min_se_value).transpose()
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

/// The URI of the first value on a Contact line that is an address, skipping `*` and
/// malformed values, as `contacts().find_map(..)` does over the lines in order.
pub(crate) fn first_contact_uri(line: &str) -> Option<Uri<'_>> {
    SplitTop::new(line, b',').find_map(|v| match v {
        "*" => None,
        v => NameAddr::parse(v).ok().map(|a| a.uri),
    })
}

/// Max-Forwards 0..=255.
/// A Min-SE value (RFC 4028 §5): delta-seconds, parameters ignored.
pub(crate) fn min_se_value(v: &str) -> Result<u32, InvalidHeader> {
    parse_u32(split_params(v).0).ok_or(bad!("Min-SE"))
}

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
    use proptest::prelude::*;

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
}
