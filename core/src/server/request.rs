//! The parts of a request or response the server acts on, read once from the parsed message.

use std::net::SocketAddr;

use super::Transport;
use crate::sip::{self, Header, HeaderName, Method, Refresher, StartLine, Uri};

/// What a datagram turned out to be.
pub(crate) enum Parsed<'a> {
    Request(Request<'a>),
    Response(Response<'a>),
    /// CRLF keep-alive.
    KeepAlive,
    /// Unusable. With `request`, enough survived to send an error response.
    Bad {
        request: Option<Request<'a>>,
        reason: &'static str,
        code: u16,
    },
}

/// Reads one datagram, once: the parser hands every header line to [`RawHeaders`], which keeps
/// just what the server needs, and the request or response is read from those values.
///
/// A request the server must refuse costs at most one more reading: a datagram the parser
/// refuses is answered from the values it has already seen ([`refused`]); a parsed request
/// with a bad mandatory header is parsed again, by the reference parser alone, into a
/// [`sip::Message`], whose [`sip::Message::check_request`] gives the precise reason phrase for
/// the 400 ([`bad_request_reason`]).
///
/// Not inlined: it runs once per datagram, and as its own function its cost shows as one
/// line in a profile, and changes to it do not move the inlining of the handlers around it.
#[inline(never)]
pub(crate) fn parse<'a>(
    data: &'a [u8],
    transport: Transport,
    local: SocketAddr,
    remote: SocketAddr,
) -> Parsed<'a> {
    let from = Origin {
        transport,
        local,
        remote,
        size: data.len(),
    };
    let mut raw = RawHeaders::default();
    let parts = match sip::parse_with(data, &mut raw) {
        Ok(parts) => parts,
        Err(failure) => return refused(raw, failure, from),
    };
    match parts.start {
        StartLine::Response { code, .. } => response(&raw, code, parts.body, data),
        StartLine::Request { method, uri } => {
            // The parser has checked the Request-URI: `parts.uri` is its user and host as
            // `Uri::parse` finds them.
            let fail = |_, raw| Parsed::Bad {
                request: lenient_request(raw, method, uri, parts.uri, parts.body, from),
                reason: bad_request_reason(data),
                code: 400,
            };
            request(
                raw,
                method,
                uri,
                parts.uri,
                parts.body,
                from,
                false,
                Parsed::Request,
                fail,
            )
        }
    }
}

/// A datagram the parser refused: a keep-alive, or a message to drop or answer with the
/// parser's error. When the parser salvaged a request (its start line and every header line
/// were readable, RFC 3261 §8.2.6), `raw` holds its header values, and the error response is
/// addressed from them, read leniently: a header missing or bad is left out of the response
/// rather than refusing to answer.
#[cold]
#[inline(never)]
fn refused<'a>(raw: RawHeaders<'a>, failure: sip::Failure<'a>, from: Origin) -> Parsed<'a> {
    let kind = failure.kind;
    if kind == sip::ErrorKind::KeepAlive {
        return Parsed::KeepAlive;
    }
    let (reason, code) = (kind.reason(), kind.status().unwrap_or(400));
    let request = match failure.start {
        Some(StartLine::Request { method, uri }) => {
            // The parser reports the Request-URI's parts only when it accepts the URI; an
            // INVITE's error response still names what `Uri::parse` finds in it.
            let parsed_uri = (method == Method::Invite)
                .then(|| Uri::parse(uri).ok().map(sip::UriParts::from))
                .flatten();
            lenient_request(raw, method, uri, parsed_uri, &[], from)
        }
        _ => None,
    };
    Parsed::Bad {
        request,
        reason,
        code,
    }
}

/// The 400's reason phrase for a parsed request that a mandatory header makes unusable (the
/// strict read of it failed): what [`sip::Message::check_request`] finds, which needs the
/// whole message parsed again.
#[cold]
#[inline(never)]
fn bad_request_reason(data: &[u8]) -> &'static str {
    match sip::parse_again(data).map(|msg| msg.check_request()) {
        Ok(Err(e)) => e.reason,
        _ => "Bad Request",
    }
}

/// The request to address an error response to: [`request`] read leniently, `None` when even
/// the top Via is missing or bad.
#[cold]
#[inline(never)]
fn lenient_request<'a>(
    raw: RawHeaders<'a>,
    method: Method<'a>,
    uri: &'a str,
    parsed_uri: Option<sip::UriParts<'a>>,
    body: &'a [u8],
    from: Origin,
) -> Option<Request<'a>> {
    request(
        raw,
        method,
        uri,
        parsed_uri,
        body,
        from,
        true,
        Some,
        |_, _| None,
    )
}

/// The Session-Expires value (RFC 4028 §4): the interval and the refresher, if readable.
fn session_expires_of(value: &str) -> Option<(u32, Option<&'static str>)> {
    let se = sip::session_expires_value(value).ok()?;
    let refresher = match se.refresher {
        Some(Refresher::Uac) => Some("uac"),
        Some(Refresher::Uas) => Some("uas"),
        None => None,
    };
    Some((se.delta, refresher))
}

/// Where a datagram came from and went to.
#[derive(Clone, Copy)]
struct Origin {
    transport: Transport,
    local: SocketAddr,
    remote: SocketAddr,
    /// The message's length in bytes.
    size: usize,
}

/// The top Via's branch and the CSeq method of a response: all a UAC needs to match it.
/// Without them the response is unusable. With them, what a session refresh's outcome reads:
/// its Session-Expires and Min-SE (RFC 4028 §7.2, §7.3) and its body.
/// `message` is the whole response, which a REGISTER's outcome reads again for its challenge
/// and granted expiry.
fn response<'a>(raw: &RawHeaders<'a>, code: u16, body: &'a [u8], message: &'a [u8]) -> Parsed<'a> {
    // What `Message::top_via` and `Message::cseq` read: the first Via and CSeq lines.
    let read = || {
        let via = sip::top_via_value(raw.via?).ok()?;
        let (_, method) = sip::cseq_parts(raw.cseq?).ok()?;
        Some(Response {
            code,
            branch: via.branch()?,
            cseq_method: method,
            session_expires: raw.session_expires,
            min_se: raw.min_se,
            body,
            message,
        })
    };
    match read() {
        Some(r) => Parsed::Response(r),
        None => Parsed::Bad {
            request: None,
            reason: "response without Via branch or CSeq",
            code: 0,
        },
    }
}

/// The request the header values in `raw` make (its value lists move into it), handed to
/// `ok`, or why there is none, handed to `fail` with `raw` as it came. `parsed_uri` is what
/// `Uri::parse(uri).ok()` finds; it is read for an INVITE only. A strict read (not `lenient`)
/// also refuses a CSeq method other than the request's.
///
/// Always inlined, and the `Request` handed on rather than returned: it is most of a
/// kilobyte, and passed straight to `Parsed::Request` it is built where [`parse`] returns it,
/// not copied there. `raw` is taken by value (this being inlined, nothing is copied at the
/// call): its lists move out as they are.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn request<'a, T>(
    raw: RawHeaders<'a>,
    method: Method<'a>,
    uri: &'a str,
    parsed_uri: Option<sip::UriParts<'a>>,
    body: &'a [u8],
    from: Origin,
    lenient: bool,
    ok: impl FnOnce(Request<'a>) -> T,
    fail: impl FnOnce(&'static str, RawHeaders<'a>) -> T,
) -> T {
    let method = method.as_str();
    // Only the Via is needed to address a response; for an error response (`lenient`) the
    // other mandatory headers may be missing and are copied as far as they exist.
    let Some(Ok((via, branch, rport))) = raw.via.map(sip::top_via_branch_rport) else {
        return fail("missing or bad Via", raw);
    };
    let from_tag = match raw.from.map(sip::name_addr_tag) {
        Some(Ok(tag)) => tag.unwrap_or(""),
        _ if lenient => "",
        _ => return fail("missing or bad From", raw),
    };
    let to_tag = match raw.to.map(sip::name_addr_tag) {
        Some(Ok(tag)) => tag.unwrap_or(""),
        _ if lenient => "",
        _ => return fail("missing or bad To", raw),
    };
    let call_id = match raw.call_id.map(sip::call_id_value) {
        Some(Ok(c)) => c,
        _ if lenient => "",
        _ => return fail("missing Call-ID", raw),
    };
    let (cseq, cseq_method) = match raw.cseq.map(sip::cseq_parts) {
        Some(Ok((n, m))) => (n, m),
        _ if lenient => (0, method),
        _ => return fail("missing or bad CSeq", raw),
    };
    // A strict read takes only a request whose CSeq method is its own and whose number is
    // below 2^31 (RFC 3261 §8.1.1.5), with each single-valued header once.
    if !lenient {
        if cseq_method != method || cseq >= 1 << 31 {
            return fail("bad CSeq", raw);
        }
        if raw.repeated {
            return fail("a header that may appear once appears twice", raw);
        }
    }
    // Only an initial INVITE reads the Request-URI (music class, advertised address), and
    // only INVITE and UPDATE take the Contact (remote target, RFC 3261 §12.1.1, §12.2.2).
    // Neither read can fail a request, so skipping them elsewhere changes no answer.
    let parsed_uri = parsed_uri.filter(|_| method == "INVITE");
    let contact = raw.contact;
    let session_expires = raw.session_expires.and_then(session_expires_of);
    let host = via.host;
    let sent_by_port = via
        .port
        .unwrap_or(if via.transport.eq_ignore_ascii_case("TLS") {
            5061
        } else {
            5060
        });
    ok(Request {
        method,
        uri,
        uri_user: parsed_uri.and_then(|u| u.user).unwrap_or(""),
        uri_host: parsed_uri.map_or("", |u| u.host),
        vias: raw.vias,
        top_via: TopVia {
            branch: branch.unwrap_or(""),
            sent_by_port,
            host,
            port: via.port,
            rport,
        },
        // Header values come trimmed of LWS.
        from: raw.from.unwrap_or(""),
        from_tag,
        to: raw.to.unwrap_or(""),
        to_tag,
        call_id,
        cseq,
        cseq_method,
        max_forwards: raw
            .max_forwards
            .and_then(|v| sip::max_forwards_value(v).ok())
            .map(u32::from),
        // The remote target (RFC 3261 §12.1.1): our requests in the dialog go to it, and a
        // Request-URI carries no headers.
        contact: contact.map(|u| u.without_headers()),
        record_route: raw.record_route,
        require: raw.require,
        supported: raw.supported,
        allow: raw.allow,
        accept: raw.accept,
        content_type: raw.content_type,
        session_expires,
        expires: raw.expires.and_then(|v| v.trim().parse().ok()),
        body,
        transport: from.transport,
        local: from.local,
        remote: from.remote,
        size: from.size,
    })
}

/// The header values a request is read from: the first line of each single-valued header,
/// and the lists the responses copy as written.
#[derive(Default)]
struct RawHeaders<'a> {
    via: Option<&'a str>,
    vias: Values<'a>,
    record_route: Values<'a>,
    from: Option<&'a str>,
    to: Option<&'a str>,
    call_id: Option<&'a str>,
    cseq: Option<&'a str>,
    max_forwards: Option<&'a str>,
    session_expires: Option<&'a str>,
    content_type: Option<&'a str>,
    require: Values<'a>,
    supported: Values<'a>,
    allow: Values<'a>,
    min_se: Option<&'a str>,
    expires: Option<&'a str>,
    /// The Accept lines as written: read only for an INVITE with an offer.
    accept: Values<'a>,
    /// From, To, Call-ID or CSeq appeared twice (RFC 4475 §3.3.15: 400).
    repeated: bool,
    contact: Option<Uri<'a>>,
    /// Only INVITE and UPDATE take the Contact (remote target, RFC 3261 §12.1.1, §12.2.2), and
    /// REGISTER (the binding its 200 names).
    wants_contact: bool,
    /// `start` was called: a second call (the parse starting over) empties the sink.
    started: bool,
}

/// Every header line goes by once: the first line of each single-valued header is kept (as
/// the `Message` accessors would find it), and the values the responses copy are collected;
/// the typed reads in [`request`] then parse just those values.
impl<'a> sip::Sink<'a> for RawHeaders<'a> {
    fn start(&mut self, start: &StartLine<'a>, _lines: usize) {
        // A fresh sink is already empty: writing all of it again cost as much as making it.
        if self.started {
            *self = RawHeaders::default();
        }
        self.started = true;
        self.wants_contact = matches!(
            start,
            StartLine::Request {
                method: Method::Invite | Method::Update | Method::Register,
                ..
            }
        );
    }

    /// Inlined into the parser's line loop: it runs once per header line.
    #[inline(always)]
    fn header(&mut self, h: Header<'a>) {
        let v = h.value;
        match h.name {
            HeaderName::Via => {
                self.via.get_or_insert(v);
                values(v, &mut self.vias);
            }
            HeaderName::RecordRoute => values(v, &mut self.record_route),
            HeaderName::From => first(&mut self.from, v, &mut self.repeated),
            HeaderName::To => first(&mut self.to, v, &mut self.repeated),
            HeaderName::CallId => first(&mut self.call_id, v, &mut self.repeated),
            HeaderName::CSeq => first(&mut self.cseq, v, &mut self.repeated),
            HeaderName::Accept => self.accept.push(v),
            HeaderName::MaxForwards => _ = self.max_forwards.get_or_insert(v),
            HeaderName::SessionExpires => _ = self.session_expires.get_or_insert(v),
            HeaderName::ContentType => _ = self.content_type.get_or_insert(v),
            HeaderName::Require => values(v, &mut self.require),
            HeaderName::Supported => values(v, &mut self.supported),
            // Read only when a refresh is due: kept as lines, split then.
            HeaderName::Allow => self.allow.push(v),
            HeaderName::MinSe => _ = self.min_se.get_or_insert(v),
            HeaderName::Expires => _ = self.expires.get_or_insert(v),
            // The first value that is an address wins, as in `msg.contacts().find_map(..)`.
            HeaderName::Contact if self.wants_contact && self.contact.is_none() => {
                self.contact = sip::first_contact_uri(v)
            }
            _ => {}
        }
    }
}

/// Keep the first line of a header that may appear once (RFC 3261 §7.3.1: From, To, Call-ID,
/// CSeq), noting a second.
#[inline(always)]
fn first<'a>(slot: &mut Option<&'a str>, v: &'a str, repeated: &mut bool) {
    match slot {
        Some(_) => *repeated = true,
        None => *slot = Some(v),
    }
}

/// The values of one header line, split at commas outside quotes and angle brackets
/// (RFC 3261 §7.3.1), trimmed, empty ones skipped (as `Message::tokens` reads them).
fn values<'a>(line: &'a str, out: &mut Values<'a>) {
    for t in sip::SplitTop::new(line, b',') {
        if !t.is_empty() {
            out.push(t);
        }
    }
}

/// A request's list of header values (Via, Record-Route, Require, Supported), read as a
/// slice. The first [`Values::INLINE`] live in place, since a request rarely has more than
/// two Vias: no allocation per list. Longer lists move to the heap.
#[derive(Default)]
pub(crate) struct Values<'a> {
    inline: [&'a str; Values::INLINE],
    len: usize,
    spilled: Vec<&'a str>,
}

impl<'a> Values<'a> {
    const INLINE: usize = 4;

    pub(crate) fn push(&mut self, v: &'a str) {
        if self.len < Self::INLINE {
            self.inline[self.len] = v;
            self.len += 1;
        } else {
            if self.spilled.is_empty() {
                self.spilled.extend_from_slice(&self.inline);
            }
            self.spilled.push(v);
        }
    }
}

impl<'a> std::ops::Deref for Values<'a> {
    type Target = [&'a str];

    fn deref(&self) -> &[&'a str] {
        if self.spilled.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.spilled
        }
    }
}

impl<'s, 'a> IntoIterator for &'s Values<'a> {
    type Item = &'s &'a str;
    type IntoIter = std::slice::Iter<'s, &'a str>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl std::fmt::Debug for Values<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::{request, response, Origin, Parsed, RawHeaders, Request};
    use crate::sip::{self, Message, Method, Sink, StartLine, Uri};
    use crate::testing::byte_edits;
    use proptest::prelude::*;

    /// The reference for [`super::parse`]: the datagram parsed into a whole [`Message`], the
    /// request read from it strictly, and for anything to refuse, the message checked for the
    /// reason phrase and read again leniently for the error response.
    fn parse_slowly(data: &[u8], from: Origin) -> Parsed<'_> {
        match sip::parse(data) {
            Ok(msg) => match msg.start {
                StartLine::Response { code, .. } => {
                    response(&RawHeaders::of(&msg), code, msg.body, data)
                }
                StartLine::Request { .. } => match request_of(&msg, from, false) {
                    Ok(r) => Parsed::Request(r),
                    Err(_) => {
                        let reason = match msg.check_request() {
                            Err(e) => e.reason,
                            Ok(()) => "Bad Request",
                        };
                        Parsed::Bad {
                            request: request_of(&msg, from, true).ok(),
                            reason,
                            code: 400,
                        }
                    }
                },
            },
            Err(e) if e.kind == sip::ErrorKind::KeepAlive => Parsed::KeepAlive,
            Err(e) => {
                let reason = e.kind.reason();
                let code = e.kind.status().unwrap_or(400);
                let request = e.request().and_then(|m| request_of(m, from, true).ok());
                Parsed::Bad {
                    request,
                    reason,
                    code,
                }
            }
        }
    }

    /// [`request`] from a parsed message.
    fn request_of<'a>(
        msg: &Message<'a>,
        from: Origin,
        lenient: bool,
    ) -> Result<Request<'a>, &'static str> {
        let StartLine::Request { method, uri } = msg.start else {
            return Err("not a request");
        };
        let parsed_uri = if method == Method::Invite {
            Uri::parse(uri).ok().map(sip::UriParts::from)
        } else {
            None
        };
        request(
            RawHeaders::of(msg),
            method,
            uri,
            parsed_uri,
            msg.body,
            from,
            lenient,
            Ok,
            |reason, _| Err(reason),
        )
    }

    impl<'a> RawHeaders<'a> {
        /// The values of a parsed message, as the one-pass read would find them.
        fn of(msg: &Message<'a>) -> Self {
            let mut raw = RawHeaders::default();
            raw.start(&msg.start, 0);
            for h in &msg.headers {
                raw.header(*h);
            }
            raw
        }
    }

    /// What a reader made of a datagram, as text to compare.
    fn describe(p: &super::Parsed<'_>) -> String {
        match p {
            super::Parsed::Request(r) => format!("request {r:?}"),
            super::Parsed::Response(r) => format!("response {r:?}"),
            super::Parsed::KeepAlive => "keep-alive".to_owned(),
            super::Parsed::Bad {
                request,
                reason,
                code,
            } => format!("bad {code} {reason} {request:?}"),
        }
    }

    const MESSAGES: &[&str] = &[
        "INVITE sip:123@192.168.1.100:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.168.1.50:5060;branch=z9hG4bK1;rport\r\nFrom: \"Reception\" <sip:201@192.168.1.10>;tag=1\r\nTo: <sip:123@192.168.1.100:5060>\r\nCall-ID: 1-5060-7@BJC.BGI.B.FA\r\nCSeq: 1 INVITE\r\nContact: \"Reception\" <sip:201@192.168.1.50:5060>\r\nMax-Forwards: 70\r\nSupported: timer, replaces\r\nSession-Expires: 90;refresher=uac\r\nContent-Type: application/sdp\r\nContent-Length:   10\r\n\r\nv=0\r\no=x\r\n",
        "ACK sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK2, SIP/2.0/TCP p\r\nf: <sip:a@b>;tag=2\r\nt: <sip:c@d>;tag=3\r\ni: x@y\r\nCSeq: 1 ACK\r\nRecord-Route: <sip:p;lr>\r\nl: 0\r\n\r\n",
        "BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK4\r\nFrom: <sip:a@b>;tag=2\r\nTo: <sip:c@d>;tag=3\r\nCall-ID: z\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK3\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
    ];

    /// `MESSAGES` with zero to three bytes inserted, removed or replaced.
    fn mutated_message() -> impl Strategy<Value = Vec<u8>> {
        let message = prop::sample::select(MESSAGES).prop_map(|m| m.as_bytes().to_vec());
        byte_edits(message, b"\r\n \t:;,<>\"a0\x80lL", 3)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        /// The one-pass reader and the reference (parse a `Message`, then read it) agree.
        #[test]
        fn parse_matches_parse_slowly(data in mutated_message()) {
            let (local, remote) = ("127.0.0.1:5060".parse().unwrap(), "127.0.0.2:5070".parse().unwrap());
            let t = crate::server::Transport::Udp;
            let fast = describe(&super::parse(&data, t, local, remote));
            let from = Origin { transport: t, local, remote, size: data.len() };
            let slow = describe(&parse_slowly(&data, from));
            prop_assert_eq!(fast, slow, "{:?}", String::from_utf8_lossy(&data));
        }
    }

    /// The mutations reach every way out of [`super::parse`]: requests and responses read,
    /// datagrams the parser refuses with and without a request to answer ([`super::refused`]),
    /// and parsed requests with a bad mandatory header ([`super::bad_request_reason`]).
    #[test]
    fn mutations_reach_every_outcome() {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::TestRunner;
        let (local, remote) = (
            "127.0.0.1:5060".parse().unwrap(),
            "127.0.0.2:5070".parse().unwrap(),
        );
        let mut runner = TestRunner::deterministic();
        // requests, responses, refused with a request, refused without, bad header
        let mut seen = [0; 5];
        for _ in 0..2000 {
            let data = mutated_message().new_tree(&mut runner).unwrap().current();
            let parsed = sip::parse(&data);
            let at = match super::parse(&data, crate::server::Transport::Udp, local, remote) {
                Parsed::Request(_) => 0,
                Parsed::Response(_) => 1,
                Parsed::Bad { request, .. } if parsed.is_err() => {
                    2 + usize::from(request.is_none())
                }
                Parsed::Bad { .. } if parsed.is_ok_and(|m| m.is_request()) => 4,
                _ => continue,
            };
            seen[at] += 1;
        }
        assert!(seen.iter().all(|&n| n > 20), "{seen:?}");
    }

    #[test]
    fn values_keep_quoted_and_bracketed_commas() {
        let split = |line| {
            let mut out = super::Values::default();
            super::values(line, &mut out);
            out.to_vec()
        };
        assert_eq!(split(" a "), ["a"]);
        assert_eq!(split("  "), Vec::<&str>::new());
        assert_eq!(split("a, b ,,c"), ["a", "b", "c"]);
        assert_eq!(
            split("\"x,y\" <sip:a,b>;p, c"),
            ["\"x,y\" <sip:a,b>;p", "c"]
        );
        assert_eq!(split("\"a\\\",b\", c\r\n"), ["\"a\\\",b\"", "c"]);
    }

    #[test]
    fn values_spill_past_the_inline_ones_in_order() {
        let mut v = super::Values::default();
        let all: Vec<String> = (0..11).map(|i| i.to_string()).collect();
        for (i, s) in all.iter().enumerate() {
            assert_eq!(v.len(), i);
            assert_eq!(v.to_vec(), all[..i]);
            v.push(s);
        }
        assert_eq!(v.first(), Some(&"0"));
        assert_eq!(v[10], "10");
        assert_eq!((&v).into_iter().count(), 11);
        assert_eq!(format!("{v:?}"), format!("{all:?}"));
    }
}

/// One request, with the fields the transaction and dialog layers use, borrowed from the datagram.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    pub method: &'a str,
    pub uri: &'a str,
    /// Request-URI user part (`123` in `sip:123@host`), empty when there is none.
    pub uri_user: &'a str,
    /// Request-URI host as written (IP literal or name, IPv6 without brackets).
    pub uri_host: &'a str,
    /// Every Via value, top first, as written.
    pub vias: Values<'a>,
    pub top_via: TopVia<'a>,
    pub from: &'a str,
    pub from_tag: &'a str,
    pub to: &'a str,
    pub to_tag: &'a str,
    pub call_id: &'a str,
    pub cseq: u32,
    pub cseq_method: &'a str,
    pub max_forwards: Option<u32>,
    /// First Contact URI (without `<>` and without its `?headers`), if any.
    pub contact: Option<&'a str>,
    /// Record-Route values in order, as written.
    pub record_route: Values<'a>,
    pub require: Values<'a>,
    pub supported: Values<'a>,
    /// The Allow lines: the methods the sender accepts (RFC 3261 §20.5), comma-separated;
    /// empty when it sent no Allow.
    pub allow: Values<'a>,
    /// The Accept lines (RFC 3261 §20.1), comma-separated; empty when it sent none.
    pub accept: Values<'a>,
    pub content_type: Option<&'a str>,
    pub session_expires: Option<(u32, Option<&'static str>)>,
    /// The Expires header (a REGISTER's requested binding time).
    pub expires: Option<u32>,
    pub body: &'a [u8],
    pub transport: Transport,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// The request's length in bytes: what our answers to it may not exceed (bar our SDP).
    pub size: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct TopVia<'a> {
    pub branch: &'a str,
    /// The sent-by port, defaulted by transport: with the host, part of the transaction key
    /// (RFC 3261 §17.2.3).
    pub sent_by_port: u16,
    pub host: &'a str,
    pub port: Option<u16>,
    /// `;rport` present (RFC 3581): answer to the source port.
    pub rport: bool,
}

/// One response to a request we sent (BYE, UPDATE, re-INVITE).
#[derive(Debug)]
pub(crate) struct Response<'a> {
    pub code: u16,
    pub branch: &'a str,
    pub cseq_method: &'a str,
    /// Session-Expires and Min-SE as written: read only for a session refresh's outcome.
    session_expires: Option<&'a str>,
    min_se: Option<&'a str>,
    pub body: &'a [u8],
    /// The response as it came.
    pub message: &'a [u8],
}

impl Response<'_> {
    /// The Session-Expires interval and refresher (RFC 4028 §4), if readable.
    pub fn session_expires(&self) -> Option<(u32, Option<&'static str>)> {
        session_expires_of(self.session_expires?)
    }

    /// The Min-SE of a 422 (RFC 4028 §5), if readable.
    pub fn min_se(&self) -> Option<u32> {
        sip::min_se_value(self.min_se?).ok()
    }
}
