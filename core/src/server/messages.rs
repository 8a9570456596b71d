//! Every SIP message the server sends is written here: the response head each response copies
//! from its request (RFC 3261 §8.2.6.2), the lines a 2xx that creates or refreshes a dialog
//! carries, and the requests we send inside a dialog. One function writes each part, whatever
//! the path that sends it, so the 100, the 2xx to an INVITE, to a re-INVITE and to an UPDATE
//! cannot drift apart.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::request::Request;
use super::Transport;
use crate::ascii;
use crate::sip::{self, clean_written, push_value, Lines, MessageWriter, Method, Prefix};

/// Methods we implement; sent in `Allow` (RFC 3261 §20.5).
pub(crate) const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE";
/// Option tags we understand (RFC 4028 session timers).
pub(crate) const SUPPORTED: &str = "timer";
pub(crate) const ACCEPT: &str = "application/sdp";

/// `Allow: {ALLOW}` and `Supported: {SUPPORTED}` (a test checks they agree).
const ALLOW_SUPPORTED: Lines =
    Lines::new("Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE\r\nSupported: timer\r\n");

const RECORD_ROUTE: Prefix = Prefix::new("Record-Route: ");

/// `Content-Type` of our SDP bodies.
pub(crate) const SDP_TYPE: Lines = Lines::new("Content-Type: application/sdp\r\n");

/// The top Via of a response: `received` and `rport` filled in (RFC 3261 §18.2.1, RFC 3581 §4).
/// `src_ip` is the request's source address as text.
fn push_response_top_via(out: &mut Vec<u8>, req: &Request<'_>, src_ip: &[u8]) {
    let raw = req.vias.first().copied().unwrap_or("");
    let has_received = sip::push_response_via(out, raw, req.remote.port(), src_ip);
    if !has_received && (req.top_via.rport || via_host(req).as_bytes() != src_ip) {
        out.extend_from_slice(b";received=");
        out.extend_from_slice(src_ip);
    }
}

/// The Via's sent-by host without IPv6 brackets.
fn via_host<'a>(req: &Request<'a>) -> &'a str {
    ascii::unbracketed(req.top_via.host)
}

/// Where a response goes (RFC 3261 §18.2.2, RFC 3581 §4): the source address when `rport` asks
/// for it or on a stream; otherwise the source IP and the Via's sent-by port.
pub(crate) fn response_destination(req: &Request<'_>) -> SocketAddr {
    if req.top_via.rport || req.transport == Transport::Tcp {
        req.remote
    } else {
        SocketAddr::new(req.remote.ip(), req.top_via.port.unwrap_or(5060))
    }
}

/// The header lines every response to one request copies from it (RFC 3261 §8.2.6.2): the Vias
/// (the top one with `received` and `rport` filled in), From, To, Call-ID and CSeq, then our
/// Server header. Kept while a request waits for its responses (an INVITE for its port).
#[derive(Debug)]
pub(crate) struct ResponseHead {
    lines: Vec<u8>,
    /// Where the To value ends in `lines`: our tag goes there.
    to_end: usize,
    /// The request's To has no tag, so every response but a 100 adds ours (§8.2.6.2).
    tag: bool,
}

impl ResponseHead {
    pub fn new(req: &Request<'_>, server: &str) -> ResponseHead {
        let mut lines = Vec::with_capacity(512);
        let mut ip_buf = [0; 48];
        let src_ip = ascii::ip_bytes(req.remote.ip(), &mut ip_buf);
        let to_end = push_response_headers(&mut lines, req, src_ip, None, server, true);
        ResponseHead {
            lines,
            to_end,
            tag: req.to_tag.is_empty(),
        }
    }

    /// Start a response in `out` (cleared first): the status line and these lines, `local_tag`
    /// in the To of every response but a 100. The caller adds its own lines and finishes it.
    pub fn start<'o>(&self, out: &'o mut Vec<u8>, code: u16, local_tag: &str) -> MessageWriter<'o> {
        out.clear();
        MessageWriter::standard_response(out, code);
        if self.tag && code > 100 {
            out.extend_from_slice(&self.lines[..self.to_end]);
            out.extend_from_slice(b";tag=");
            out.extend_from_slice(local_tag.as_bytes());
            out.extend_from_slice(&self.lines[self.to_end..]);
        } else {
            out.extend_from_slice(&self.lines);
        }
        MessageWriter::block(out)
    }
}

/// A complete response to `req` without a body into `out` (cleared first): the response head,
/// `to_tag` in the To when the request's has none and this is not a 100, then `extra`.
///
/// Never larger than the request when that can be helped: a response to a small request goes
/// without its Server line, then without the extras the RFC does not require, so a spoofed
/// source cannot make us send more than it sent (RFC 3261 §26.3.2.4 on amplification).
pub(crate) fn write_reply(
    out: &mut Vec<u8>,
    req: &Request<'_>,
    code: u16,
    to_tag: Option<&str>,
    extra: &[(&str, &str)],
    server: &str,
) {
    let tag = to_tag.filter(|_| req.to_tag.is_empty() && code > 100);
    let all = |_: &str| true;
    write_reply_lines(out, req, code, tag, extra, server, all);
    if out.len() > req.size {
        write_reply_lines(out, req, code, tag, extra, "", all);
    }
    if out.len() > req.size {
        let required = |name: &str| required_extra(code, name);
        write_reply_lines(out, req, code, tag, extra, "", required);
    }
}

/// The header lines a response with `code` must carry (RFC 3261 §21.4.6, §21.4.13, §21.4.15,
/// RFC 4028 §6), and the binding a 200 to REGISTER names (§10.3).
fn required_extra(code: u16, name: &str) -> bool {
    matches!(
        (code, name),
        (405, "Allow")
            | (415, "Accept")
            | (420, "Unsupported")
            | (422, "Min-SE")
            | (200, "Contact")
    )
}

fn write_reply_lines(
    out: &mut Vec<u8>,
    req: &Request<'_>,
    code: u16,
    tag: Option<&str>,
    extra: &[(&str, &str)],
    server: &str,
    keep: impl Fn(&str) -> bool,
) {
    out.clear();
    MessageWriter::standard_response(out, code);
    let mut ip_buf = [0; 48];
    let src_ip = ascii::ip_bytes(req.remote.ip(), &mut ip_buf);
    // A 513 says the request was too large to answer in full: it names only the top Via, the
    // hop it goes back to, so it fits (RFC 3261 §21.5.14).
    push_response_headers(out, req, src_ip, tag, server, code != 513);
    let mut w = MessageWriter::block(out);
    for (name, value) in extra.iter().filter(|(n, _)| keep(n)) {
        w.header(name, value);
    }
    w.finish(None);
}

/// The bytes of [`push_response_headers`]' lines besides the values: the names, line ends, the
/// top Via's `;received=` and `=port` and the To's `;tag=`.
const HEAD_OVERHEAD: usize = "Via: \r\nFrom: \r\nTo: ;tag=\r\nCall-ID: \r\nCSeq: 4294967295 \r\n\
    Server: \r\n;received==65535"
    .len();

/// The bytes a request makes us copy into what we send: the response head (Vias, From, To,
/// Call-ID, CSeq), and for a call, the Record-Route and Contact our own requests repeat.
fn copied_len(req: &Request<'_>) -> usize {
    // Each Via and Record-Route value is a line of its own, with its name, in what we write.
    let vias: usize = req.vias.iter().map(|v| v.len() + "Via: \r\n".len()).sum();
    let routes: usize = req
        .record_route
        .iter()
        .map(|r| r.len() + "Record-Route: \r\n".len())
        .sum();
    // A 420 names the Require tokens we do not support (the request's, at most).
    let required: usize = req.require.iter().map(|r| r.len() + 2).sum();
    vias + routes
        + required
        + req.from.len()
        + req.to.len()
        + req.call_id.len()
        + req.cseq_method.len()
        + req.contact.map_or(0, |c| c.len())
}

/// Would our answer to `req` (or our requests in its call) not fit in a datagram, or hold
/// more header lines than a parser takes? Each Via and Record-Route value is a line of its own
/// in what we write, however the request combined them; [`COPY_LINES`] leaves room for ours.
pub(crate) fn too_large(req: &Request<'_>) -> bool {
    copied_len(req) > COPY_LIMIT || req.vias.len() + req.record_route.len() > COPY_LINES
}

/// The most Via and Record-Route lines a request may make us write: our own lines (From, To,
/// Call-ID, CSeq, Server, Contact, Allow, Supported, Require, Session-Expires, the body's two)
/// fit in the rest of [`crate::sip::MAX_HEADERS`], which any parser of ours would take.
const COPY_LINES: usize = crate::sip::MAX_HEADERS - 16;

/// What the head of a 513 copies: the top Via only, From, To, Call-ID, the CSeq method.
pub(crate) fn copied_len_trimmed(req: &Request<'_>) -> usize {
    req.vias.first().map_or(0, |v| v.len())
        + req.from.len()
        + req.to.len()
        + req.call_id.len()
        + req.cseq_method.len()
}

/// The most a request may make us copy: what we add (a Contact, our SDP, a Warning) fits in the
/// rest of a datagram of [`super::MAX_DATAGRAM`] bytes.
pub(crate) const COPY_LIMIT: usize = super::MAX_DATAGRAM - 2048;

/// The lines of a [`ResponseHead`], `tag` appended to the To, written into `out` (no Server
/// line when `server` is empty); where the To value ends (before the tag). The values copied from the request that may hold a CR or LF (a
/// folded Via, From or To, or the configured Server) are cleaned as [`MessageWriter`] cleans
/// them; the others cannot hold one: the Call-ID was read as a word without white space or
/// control bytes, the CSeq method as a token, and the numbers and our tag are written here.
/// `src_ip` is the request's source address as text ([`ascii::ip_bytes`]).
fn push_response_headers(
    out: &mut Vec<u8>,
    req: &Request<'_>,
    src_ip: &[u8],
    tag: Option<&str>,
    server: &str,
    every_via: bool,
) -> usize {
    let vias: usize = req.vias.iter().map(|v| v.len() + "Via: \r\n".len()).sum();
    out.reserve(
        HEAD_OVERHEAD
            + vias
            + src_ip.len()
            + req.from.len()
            + req.to.len()
            + tag.map_or(0, str::len)
            + req.call_id.len()
            + req.cseq_method.len()
            + server.len(),
    );
    // Each line's CRLF is written with the next line's name, as one piece.
    out.extend_from_slice(b"Via: ");
    let start = out.len();
    push_response_top_via(out, req, src_ip);
    clean_written(out, start);
    for via in req.vias.iter().skip(1).filter(|_| every_via) {
        out.extend_from_slice(b"\r\nVia: ");
        push_value(out, via.as_bytes());
    }
    if !req.from.is_empty() {
        out.extend_from_slice(b"\r\nFrom: ");
        push_value(out, req.from.as_bytes());
    }
    out.extend_from_slice(b"\r\nTo: ");
    let start = out.len();
    out.extend_from_slice(req.to.as_bytes());
    let to_end = out.len();
    if let Some(tag) = tag {
        out.extend_from_slice(b";tag=");
        out.extend_from_slice(tag.as_bytes());
    }
    // The tag is cleaned with the To, as one value.
    clean_written(out, start);
    if !req.call_id.is_empty() {
        out.extend_from_slice(b"\r\nCall-ID: ");
        out.extend_from_slice(req.call_id.as_bytes());
    }
    if req.cseq > 0 {
        out.extend_from_slice(b"\r\nCSeq: ");
        ascii::push_decimal(out, req.cseq as u64);
        out.push(b' ');
        out.extend_from_slice(req.cseq_method.as_bytes());
    }
    if !server.is_empty() {
        out.extend_from_slice(b"\r\nServer: ");
        push_value(out, server.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    to_end
}

/// A dialog's session timer (RFC 4028): its interval and who refreshes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SessionExpires {
    pub interval: Duration,
    /// `refresher=uas`: we refresh.
    pub we_refresh: bool,
}

/// Our Contact: `<sip:{user}@{host}:{port}[;transport=tcp]>`, the remote target the peer
/// sends its in-dialog requests to (RFC 3261 §12.1.1, §12.2.1.1).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Contact<'a> {
    pub user: &'a str,
    pub host: IpAddr,
    pub port: u16,
    pub tcp: bool,
}

/// `Contact: …` CRLF. The user was read as a Request-URI user (or is ours) and the rest is
/// written here: the line holds no CR or LF.
fn push_contact(out: &mut Vec<u8>, c: &Contact<'_>) {
    out.extend_from_slice(b"Contact: <sip:");
    out.extend_from_slice(c.user.as_bytes());
    out.push(b'@');
    push_host_bytes(out, c.host);
    out.push(b':');
    ascii::push_decimal(out, c.port as u64);
    if c.tcp {
        out.extend_from_slice(b";transport=tcp");
    }
    out.extend_from_slice(b">\r\n");
}

/// What a 2xx to an INVITE or UPDATE says besides the response head.
pub(crate) struct OkLines<'a> {
    pub contact: Contact<'a>,
    /// The request's Record-Route values, copied into a 2xx that creates a dialog (§12.1.1).
    pub record_route: &'a [&'a str],
    pub session: Option<SessionExpires>,
    /// The 2xx with Session-Expires requires the extension (RFC 4028 §9: when the caller
    /// refreshes, or when it says `Supported: timer`).
    pub require_timer: bool,
}

/// The lines [`OkLines`] describes, appended to `out`: Contact, Record-Route, Allow, Supported,
/// then Session-Expires and Require when a session timer runs.
pub(crate) fn push_ok_lines(out: &mut Vec<u8>, ok: &OkLines<'_>) {
    push_contact(out, &ok.contact);
    let mut w = MessageWriter::block(out);
    for rr in ok.record_route {
        w.line(RECORD_ROUTE, rr);
    }
    w.lines(ALLOW_SUPPORTED);
    if let Some(t) = ok.session {
        // In our response, `uas` is us (RFC 4028 §9).
        push_session_expires(out, t.interval, t.we_refresh);
        if ok.require_timer {
            MessageWriter::block(out).header("Require", "timer");
        }
    }
}

/// `Session-Expires: <secs>;refresher=<uas|uac>` (RFC 4028 §4): `uas` when the receiver of the
/// request this message is in or answers refreshes.
fn push_session_expires(out: &mut Vec<u8>, interval: Duration, uas_refreshes: bool) {
    MessageWriter::block(out).header_with("Session-Expires", |out| {
        ascii::push_decimal(out, interval.as_secs());
        out.extend_from_slice(if uas_refreshes {
            b";refresher=uas"
        } else {
            b";refresher=uac"
        });
    });
}

/// A request we send inside a dialog (RFC 3261 §12.2.1.1): BYE; UPDATE or re-INVITE to refresh
/// the session (RFC 4028 §7.4, RFC 3311); ACK for the 2xx or a final error to our re-INVITE
/// (RFC 3261 §13.2.2.4, §17.1.1.3). Also the INVITE of a call we place, its CANCEL and ACKs:
/// the same headers, the To without a tag until the callee answers.
pub(crate) struct InDialogRequest<'a> {
    pub method: &'static str,
    /// The Request-URI: the remote target, or a strict router's URI (§12.2.1.1).
    pub target: &'a str,
    pub transport: Transport,
    /// Our sent-by in the Via.
    pub host: IpAddr,
    pub port: u16,
    pub branch: &'a str,
    /// Our From (their To with our tag) and our To (their From).
    pub from: &'a str,
    pub to: &'a str,
    pub call_id: &'a str,
    pub cseq: u32,
    pub route_set: &'a [String],
    pub user_agent: &'a str,
    /// A target refresh (UPDATE, re-INVITE) carries our Contact.
    pub contact: Option<Contact<'a>>,
    /// A session refresh we make: `Session-Expires: N;refresher=uac`, we being its sender.
    pub session: Option<Duration>,
    /// An offer (re-INVITE): our SDP.
    pub sdp: Option<&'a [u8]>,
    /// A BYE's `Reason` value (RFC 3326).
    pub reason: Option<&'a str>,
    /// `(Authorization or Proxy-Authorization, credentials)` answering a challenge.
    pub credentials: Option<(&'a str, &'a str)>,
}

/// The request [`InDialogRequest`] describes, into `out` (cleared first). Every request but ACK
/// says `Supported: timer` (RFC 4028 §7.1); a re-INVITE also says what it allows.
pub(crate) fn write_in_dialog_request(out: &mut Vec<u8>, r: &InDialogRequest<'_>) {
    out.clear();
    let mut w = MessageWriter::request(out, Method::from_token(r.method), r.target);
    push_via(&mut w, r.transport, r.host, r.port, r.branch);
    w.header("Max-Forwards", "70");
    w.header("From", r.from);
    w.header("To", r.to);
    w.header("Call-ID", r.call_id);
    w.header_fmt("CSeq", format_args!("{} {}", r.cseq, r.method));
    for route in r.route_set {
        w.header("Route", route);
    }
    w.header("User-Agent", r.user_agent);
    if let Some((name, value)) = r.credentials {
        w.header(name, value);
    }
    if let Some(c) = &r.contact {
        push_contact(out, c);
    }
    let mut w = MessageWriter::block(out);
    if r.method == "INVITE" {
        w.lines(ALLOW_SUPPORTED);
    } else if r.method != "ACK" {
        w.header("Supported", SUPPORTED);
    }
    if let Some(interval) = r.session {
        push_session_expires(out, interval, false);
    }
    let mut w = MessageWriter::block(out);
    if let Some(reason) = r.reason {
        w.header("Reason", reason);
    }
    match r.sdp {
        Some(sdp) => w.finish(Some(("application/sdp", sdp))),
        None => w.finish(None),
    }
}

/// Our Via for a request we send, asking for `rport` (RFC 3581).
#[inline]
fn push_via(
    w: &mut MessageWriter<'_>,
    transport: Transport,
    host: IpAddr,
    port: u16,
    branch: &str,
) {
    let proto = if transport == Transport::Tcp {
        "TCP"
    } else {
        "UDP"
    };
    w.header_fmt(
        "Via",
        format_args!(
            "SIP/2.0/{proto} {}:{port};branch={branch};rport",
            host_str(host)
        ),
    );
}

/// One REGISTER of ours (RFC 3261 §10.2): for an account of `[[register]]`.
pub(crate) struct RegisterRequest<'a> {
    pub registrar: &'a str,
    pub transport: Transport,
    /// Our sent-by in the Via.
    pub host: IpAddr,
    pub port: u16,
    pub branch: &'a str,
    /// The address of record: our To and From.
    pub aor: &'a str,
    pub from_tag: &'a str,
    pub call_id: &'a str,
    pub cseq: u32,
    pub contact: &'a str,
    /// 0 removes the binding.
    pub expires: u32,
    /// `(Authorization or Proxy-Authorization, credentials)` answering a challenge.
    pub credentials: Option<(&'a str, &'a str)>,
    pub user_agent: &'a str,
}

/// The REGISTER [`RegisterRequest`] describes, into `out` (cleared first).
pub(crate) fn write_register(out: &mut Vec<u8>, r: &RegisterRequest<'_>) {
    out.clear();
    let mut w = MessageWriter::request(out, Method::Register, r.registrar);
    push_via(&mut w, r.transport, r.host, r.port, r.branch);
    w.header("Max-Forwards", "70");
    w.header_fmt("From", format_args!("<{}>;tag={}", r.aor, r.from_tag));
    w.header_fmt("To", format_args!("<{}>", r.aor));
    w.header("Call-ID", r.call_id);
    w.header_fmt("CSeq", format_args!("{} REGISTER", r.cseq));
    w.header_fmt(
        "Contact",
        format_args!("<{}>;expires={}", r.contact, r.expires),
    );
    w.header_fmt("Expires", format_args!("{}", r.expires));
    if let Some((name, value)) = r.credentials {
        w.header(name, value);
    }
    w.header("Allow", ALLOW);
    w.header("User-Agent", r.user_agent);
    w.finish(None);
}

/// `host` for a URI or Via: IPv6 in brackets.
pub(crate) fn host_str(ip: IpAddr) -> String {
    let mut out = String::with_capacity(48);
    let mut buf = [0; 48];
    let text = ascii::ip(ip, &mut buf);
    if ip.is_ipv6() {
        out.push('[');
        out.push_str(text);
        out.push(']');
    } else {
        out.push_str(text);
    }
    out
}

/// [`host_str`] appended to a byte buffer.
fn push_host_bytes(out: &mut Vec<u8>, ip: IpAddr) {
    let mut buf = [0; 48];
    let text = ascii::ip_bytes(ip, &mut buf);
    if ip.is_ipv6() {
        out.push(b'[');
        out.extend_from_slice(text);
        out.push(b']');
    } else {
        out.extend_from_slice(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_and_supported_lines_match_the_constants() {
        let mut lines = Vec::new();
        MessageWriter::block(&mut lines)
            .header("Allow", ALLOW)
            .header("Supported", SUPPORTED);
        let mut block = Vec::new();
        MessageWriter::block(&mut block).lines(ALLOW_SUPPORTED);
        assert_eq!(block, lines);
    }
}
