//! Writing the responses and requests the server sends. Every SIP message leaves through here.

use std::net::{IpAddr, SocketAddr};

use super::ascii;
use super::incoming::Request;
use crate::sip::{reason_phrase, MessageWriter, Method};

/// Methods we implement; sent in `Allow` (RFC 3261 §20.5).
pub(crate) const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE";
/// Option tags we understand (RFC 4028 session timers).
pub(crate) const SUPPORTED: &str = "timer";
pub(crate) const ACCEPT: &str = "application/sdp";

/// The server writes every message with the one SIP serializer, [`MessageWriter`]; these start
/// it on a cleared buffer (buffers are reused between messages).
pub(crate) type Writer<'o> = MessageWriter<'o>;

pub(crate) fn response<'o>(out: &'o mut Vec<u8>, code: u16, reason: &str) -> Writer<'o> {
    out.clear();
    MessageWriter::response(out, code, reason)
}

pub(crate) fn request<'o>(out: &'o mut Vec<u8>, method: &str, uri: &str) -> Writer<'o> {
    out.clear();
    MessageWriter::request(out, Method::from_token(method), uri)
}

/// `name: value` CRLF, for header blocks kept outside a writer (CR/LF cleaned like
/// [`MessageWriter::header`] does).
pub(crate) fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    MessageWriter::block(out).header(name, value);
}

/// The top Via of a response: `received` and `rport` filled in (RFC 3261 §18.2.1, RFC 3581 §4).
fn push_response_top_via(out: &mut Vec<u8>, req: &Request<'_>) {
    let raw = req.vias.first().copied().unwrap_or("");
    let mut ip_buf = [0; 48];
    let src_ip = ascii::ip(req.remote.ip(), &mut ip_buf);
    let mut has_received = false;
    // Split at every ';' by bytes (an ASCII byte, so every piece is a `str` slice), one plain
    // search per parameter: the char-pattern `split` costs several times more per parameter.
    let bytes = raw.as_bytes();
    let mut start = 0;
    let mut first = true;
    loop {
        let end = bytes[start..]
            .iter()
            .position(|&b| b == b';')
            .map_or(bytes.len(), |p| start + p);
        let part = trim(&raw[start..end]);
        if !first {
            out.push(b';');
        }
        let name = match part.as_bytes().iter().position(|&b| b == b'=') {
            Some(eq) => trim(&part[..eq]),
            None => part,
        };
        if !first && name.eq_ignore_ascii_case("rport") {
            out.extend_from_slice(b"rport=");
            ascii::push_decimal(out, req.remote.port() as u64);
        } else if !first && name.eq_ignore_ascii_case("received") {
            has_received = true;
            out.extend_from_slice(b"received=");
            out.extend_from_slice(src_ip.as_bytes());
        } else {
            out.extend_from_slice(part.as_bytes());
        }
        if end == bytes.len() {
            break;
        }
        first = false;
        start = end + 1;
    }
    let host = req
        .top_via
        .host
        .trim_start_matches('[')
        .trim_end_matches(']');
    if !has_received && (req.top_via.rport || host != src_ip) {
        out.extend_from_slice(b";received=");
        out.extend_from_slice(src_ip.as_bytes());
    }
}

/// `str::trim`, returning at once when both ends are ASCII and not whitespace (the usual
/// Via parameter): an ASCII last byte is a whole char, so nothing could be trimmed there.
fn trim(s: &str) -> &str {
    match (s.as_bytes().first(), s.as_bytes().last()) {
        (Some(&a), Some(&z)) if a.is_ascii_graphic() && z.is_ascii_graphic() => s,
        _ => s.trim(),
    }
}

/// Where a response goes (RFC 3261 §18.2.2, RFC 3581 §4): the source address when `rport` asks
/// for it or on a stream; otherwise the source IP and the Via's sent-by port.
pub(crate) fn response_destination(req: &Request<'_>) -> SocketAddr {
    if req.top_via.rport || req.transport == super::Transport::Tcp {
        req.remote
    } else {
        SocketAddr::new(req.remote.ip(), req.top_via.port.unwrap_or(5060))
    }
}

/// Start a response to `req`: status line, Vias, From, To (with `to_tag` if the To has none
/// and this is not a 100), Call-ID, CSeq, Server. The caller adds headers and finishes it.
pub(crate) fn start_response<'o>(
    out: &'o mut Vec<u8>,
    req: &Request<'_>,
    code: u16,
    reason: Option<&str>,
    to_tag: Option<&str>,
    server: &str,
) -> Writer<'o> {
    let mut w = response(out, code, reason.unwrap_or_else(|| reason_phrase(code)));
    push_response_headers(&mut w, req, code, to_tag, server);
    w
}

/// The header lines of [`start_response`] (no status line), appended to `out`; with them, where
/// `;tag=…` begins in `out` when the To got our tag. An INVITE's 100 and 2xx differ only in that
/// tag, so the 100 is cut from the 2xx's block instead of being written again.
pub(crate) fn response_head(
    out: &mut Vec<u8>,
    req: &Request<'_>,
    code: u16,
    to_tag: Option<&str>,
    server: &str,
) -> Option<usize> {
    push_response_headers(&mut MessageWriter::block(out), req, code, to_tag, server)
}

fn push_response_headers(
    w: &mut Writer<'_>,
    req: &Request<'_>,
    code: u16,
    to_tag: Option<&str>,
    server: &str,
) -> Option<usize> {
    w.header_with("Via", |out| push_response_top_via(out, req));
    for via in req.vias.iter().skip(1) {
        w.header("Via", via);
    }
    if !req.from.is_empty() {
        w.header("From", req.from);
    }
    let mut tag_at = None;
    match to_tag {
        Some(tag) if req.to_tag.is_empty() && code > 100 => {
            w.header_with("To", |out| {
                out.extend_from_slice(req.to.as_bytes());
                tag_at = Some(out.len());
                out.extend_from_slice(b";tag=");
                out.extend_from_slice(tag.as_bytes());
            });
        }
        _ => {
            w.header("To", req.to);
        }
    }
    if !req.call_id.is_empty() {
        w.header("Call-ID", req.call_id);
    }
    if req.cseq > 0 {
        w.header_with("CSeq", |out| {
            ascii::push_decimal(out, req.cseq as u64);
            out.push(b' ');
            out.extend_from_slice(req.cseq_method.as_bytes());
        });
    }
    w.header("Server", server);
    tag_at
}

/// `host` for a URI or Via: IPv6 in brackets.
pub(crate) fn host_str(ip: IpAddr) -> String {
    let mut out = String::with_capacity(48);
    push_host(&mut out, ip);
    out
}

/// [`host_str`] appended to a byte buffer.
pub(crate) fn push_host_bytes(out: &mut Vec<u8>, ip: IpAddr) {
    let mut buf = [0; 48];
    let text = ascii::ip(ip, &mut buf);
    if ip.is_ipv6() {
        out.push(b'[');
        out.extend_from_slice(text.as_bytes());
        out.push(b']');
    } else {
        out.extend_from_slice(text.as_bytes());
    }
}

/// [`host_str`] appended to `out`.
pub(crate) fn push_host(out: &mut String, ip: IpAddr) {
    let mut buf = [0; 48];
    let text = ascii::ip(ip, &mut buf);
    if ip.is_ipv6() {
        out.push('[');
        out.push_str(text);
        out.push(']');
    } else {
        out.push_str(text);
    }
}
