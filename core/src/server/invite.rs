//! A new call: checks, the 100, an RTP port from the runtime, then the 200 with our SDP.

use super::build;
use super::calls::*;
use super::dialog::*;
use super::incoming::{self, Request};
use super::state::{CallTimer, Server, Timer};
use super::txn::{MergeKey, TxnKey};
use super::{CallHandle, Command, Direction, EndReason, Transport};
use crate::ascii;
use crate::hash_index::HashedKey;
use crate::sdp::{self, LocalMedia};
use crate::sip::{Lines, MessageWriter, Prefix};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// `merge`: the request's merge key, built for the merged-request check.
pub(crate) fn on_invite(
    s: &mut Server,
    now: Instant,
    req: &Request<'_>,
    key: TxnKey,
    merge: Option<MergeKey>,
) {
    if s.draining.is_some() {
        return s.respond_final(now, req, key, 503, &[("Retry-After", "30")]);
    }
    if s.calls.len() >= s.config.max_calls {
        return s.respond_final(now, req, key, 486, &[]);
    }
    let Some((
        key,
        OfferCheck {
            session,
            offer,
            neg: pending,
        },
    )) = check_offer(s, now, req, key)
    else {
        return; // refused with a final response
    };
    let handle = s.calls.vacant();
    let id = s.new_server_txn_merged(req, key, merge, Some(handle));
    // Our tag goes straight into the dialog's identity string (no String of its own).
    let mut tag_buf = [0; 16];
    let local_tag = ascii::hex16(s.rng.next_u64(), &mut tag_buf);
    // The 2xx's status line and the header block every response on this transaction shares
    // (the 2xx's, with our tag), and the 100 cut from it: the same lines without the tag. The
    // room is for the whole 2xx, which is finished in this buffer.
    let mut head = Vec::with_capacity(1024);
    head.extend_from_slice(OK_LINE);
    // The source address as text, for the Via's `received` and the NAT check below.
    let mut ip_buf = [0; 48];
    let src_ip = ascii::ip_bytes(req.remote.ip(), &mut ip_buf);
    let ua = &s.config.user_agent;
    let tag_at = build::response_head(&mut head, req, src_ip, 200, Some(local_tag), ua)
        .unwrap_or(head.len());
    let tag_end = (tag_at + ";tag=".len() + local_tag.len()).min(head.len());
    send_trying(s, now, id, &head[OK_LINE.len()..tag_at], &head[tag_end..]);
    let extra_at = head.len();
    let advertised = s.advertised_ip(req);
    let user = if req.uri_user.is_empty() {
        "onhold"
    } else {
        req.uri_user
    };
    // The 200's own header lines, written once as bytes after the shared block (the 2xx is
    // built once and then retransmitted as is). First
    // `Contact: <sip:{user}@{host}:{port}[;transport=tcp]>`, which holds no CR or LF: the user
    // was read as a Request-URI user (or is ours), the rest is written here.
    let extra = &mut head;
    extra.extend_from_slice(b"Contact: <sip:");
    extra.extend_from_slice(user.as_bytes());
    extra.push(b'@');
    build::push_host_bytes(extra, advertised);
    extra.push(b':');
    ascii::push_decimal(extra, req.local.port() as u64);
    if req.transport == Transport::Tcp {
        extra.extend_from_slice(b";transport=tcp");
    }
    extra.extend_from_slice(b">\r\n");
    let mut w = MessageWriter::block(extra);
    for rr in &req.record_route {
        w.line(RECORD_ROUTE, rr);
    }
    w.lines(ALLOW_SUPPORTED);
    if let Some(t) = &session {
        push_session_expires(extra, t);
        if req
            .supported
            .iter()
            .any(|t| t.eq_ignore_ascii_case("timer"))
        {
            build::push_header(extra, "Require", "timer");
        }
    }
    let rtcp_mux = pending.as_ref().is_some_and(|n| n.rtcp_mux);
    let dialog = HashedKey::dialog(req.call_id, local_tag);
    let target = req.contact.unwrap_or(req.uri);
    let mut parties = String::with_capacity(
        req.call_id.len()
            + req.uri_user.len()
            + req.from.len()
            + req.to.len()
            + 5
            + local_tag.len()
            + target.len(),
    );
    parties.push_str(req.call_id);
    parties.push_str(req.uri_user);
    let user_end = parties.len();
    parties.push_str(req.from);
    let their_from_end = parties.len();
    parties.push_str(req.to);
    parties.push_str(";tag=");
    parties.push_str(local_tag);
    let target_at = parties.len();
    parties.push_str(target);
    let request_dest = request_destination(req, src_ip, target);
    let sdp_session = (s.rng_u32() >> 1) as u64;
    let call = Box::new(Call {
        call_id_len: req.call_id.len(),
        dialog,
        parties,
        user_end,
        their_from_end,
        target_at,
        route_set: req.record_route.iter().map(|r| r.to_string()).collect(),
        remote_cseq: req.cseq,
        local_cseq: 0,
        transport: req.transport,
        local_sip: req.local,
        remote_sip: req.remote,
        request_dest,
        advertised,
        state: CallState::AwaitingPort,
        invite_txn: id,
        invite_cseq: req.cseq,
        invite_head: head,
        invite_extra_at: extra_at,
        offer,
        port: 0,
        port_tries: 0,
        media: None,
        pending,
        sdp_session,
        sdp_version: sdp_session,
        ok_bytes: None,
        retransmit_at: None,
        retransmit_interval: s.t1(),
        ack_deadline: None,
        playout: None,
        class: s.library.class_for(req.uri_user),
        session,
        max_at: None,
        rtcp_at: None,
        created: now,
        started: None,
    });
    s.calls.insert(handle, call);
    // Indexed once the call holds its key (the index checks hits against it).
    let calls = &s.calls;
    if let Some(c) = calls.get(&handle) {
        s.dialogs
            .insert(&c.dialog, handle, |h| calls.get(&h).map(|c| &c.dialog));
    }
    s.stats.calls_total += 1;
    s.stats.calls_active = s.calls.len();
    if !ask_for_port(s, now, handle, rtcp_mux) {
        fail_unanswered(s, now, handle, 503, EndReason::Control);
    }
}

const RECORD_ROUTE: Prefix = Prefix::new("Record-Route: ");
/// `Allow: {ALLOW}` and `Supported: {SUPPORTED}` (a test checks they agree).
const ALLOW_SUPPORTED: Lines =
    Lines::new("Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE\r\nSupported: timer\r\n");

/// The status line an INVITE's header block ([`Call::invite_head`]) starts with: its 2xx is
/// finished in the block itself, and every other response copies the lines after it.
pub(crate) const OK_LINE: &[u8] = b"SIP/2.0 200 OK\r\n";

/// The 100 of a new INVITE (RFC 3261 §8.2.6.1): its header block is `before` and `after` (the
/// 2xx's block around our To tag), as [`Server::reply`] would write it with no tag.
fn send_trying(s: &mut Server, now: Instant, id: u64, before: &[u8], after: &[u8]) {
    let mut scratch = std::mem::take(&mut s.scratch);
    scratch.clear();
    let mut w = MessageWriter::standard_response(&mut scratch, 100);
    w.header_lines(before);
    w.header_lines(after);
    w.finish(None);
    let bytes: Arc<[u8]> = Arc::from(&scratch[..]);
    s.scratch = scratch;
    s.respond(now, id, bytes, 100);
}

/// `Session-Expires: <secs>;refresher=<uac|uas>` (RFC 4028 §9).
pub(crate) fn push_session_expires(out: &mut Vec<u8>, t: &SessionTimer) {
    MessageWriter::block(out).header_with("Session-Expires", |out| {
        ascii::push_decimal(out, t.interval.as_secs());
        out.extend_from_slice(if t.we_refresh {
            b";refresher=uas"
        } else {
            b";refresher=uac"
        });
    });
}

/// `start_response(...).finish(None)` of a 200 minus its Content-Length: the status line and
/// header block of a re-INVITE's responses ([`OK_LINE`] first, as [`send_on_invite`] takes it).
pub(crate) fn strip_length(mut full: Vec<u8>) -> Vec<u8> {
    full.truncate(full.len() - b"Content-Length: 0\r\n\r\n".len());
    full
}

/// `start_response(...).finish(None)` minus its status line and Content-Length: the header block
/// every later response on this INVITE transaction shares.
pub(crate) fn strip_status_and_length(full: Vec<u8>) -> Vec<u8> {
    let start = full
        .windows(2)
        .position(|w| w == b"\r\n")
        .map_or(0, |p| p + 2);
    // In place: the header block keeps the buffer it was written into.
    let mut block = strip_length(full);
    block.drain(..start);
    block
}

/// Our in-dialog requests go to the first Record-Route hop, else the remote target (`target`)
/// — unless the caller is behind a NAT (its Via names another address than the packet came
/// from), when the target is unreachable and the source address is the one that works
/// (RFC 3581 spirit). `src_ip`: the request's source address as text ([`ascii::ip_bytes`]).
pub(crate) fn request_destination(req: &Request<'_>, src_ip: &[u8], target: &str) -> SocketAddr {
    if let Some(first) = req.record_route.iter().next() {
        if let Some(a) = incoming::uri_socket_addr(first) {
            return a;
        }
    }
    if !natted(req, src_ip) {
        // The remote target is the Contact when there is one, already parsed.
        let target = match (req.contact, req.contact_addr) {
            (Some(_), Some(known)) => known,
            _ => incoming::uri_socket_addr(target),
        };
        if let Some(a) = target {
            return a;
        }
    }
    req.remote
}

/// Whether the Via's host is not the address the request came from. The Via usually names
/// it as `Display` writes it (`src_ip`), which is compared as text; any other spelling is
/// parsed.
fn natted(req: &Request<'_>, src_ip: &[u8]) -> bool {
    let via_host = ascii::unbracketed(req.top_via.host);
    if via_host.as_bytes() == src_ip {
        return false;
    }
    ascii::parse_ip(via_host).map_or(true, |ip| ip != req.remote.ip())
}

pub(crate) fn ask_for_port(
    s: &mut Server,
    _now: Instant,
    handle: CallHandle,
    rtcp_mux: bool,
) -> bool {
    let (lo, hi) = s.config.rtp_ports;
    let lo = (lo + 1) & !1;
    if hi <= lo {
        return false;
    }
    let slots = ((hi - lo) / 2 + 1) as u32;
    for _ in 0..slots {
        let p = s.port_cursor.max(lo);
        let next = p.saturating_add(2);
        s.port_cursor = if next >= hi { lo } else { next };
        if s.ports.contains_key(&p) || s.bad_ports.contains(&p) {
            continue;
        }
        s.ports.insert(p, handle);
        if let Some(c) = s.calls.get_mut(&handle) {
            c.port = p;
            c.port_tries += 1;
        }
        s.commands.push_back(Command::BindRtp { port: p, rtcp_mux });
        return true;
    }
    false
}

pub(crate) fn rtp_bound(s: &mut Server, now: Instant, port: u16, ok: bool) {
    let Some(&handle) = s.ports.get(&port) else {
        return;
    };
    let Some(call) = s.calls.get(&handle) else {
        return;
    };
    if call.state != CallState::AwaitingPort || call.port != port {
        return;
    }
    if !ok {
        s.ports.remove(&port);
        s.bad_ports.insert(port);
        let mux = call.pending.as_ref().is_some_and(|n| n.rtcp_mux);
        if call.port_tries >= 8 || !ask_for_port(s, now, handle, mux) {
            fail_unanswered(s, now, handle, 503, EndReason::Control);
        }
        return;
    }
    if s.config.send_ringing {
        send_on_invite(s, now, handle, 180, false, None);
    }
    answer_invite(s, now, handle);
}

/// A body [`send_on_invite`] writes into the response itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Body {
    /// Our SDP for the INVITE being answered ([`local_sdp`]).
    LocalSdp,
}

/// Build our SDP for the INVITE being answered: the answer to its offer, or our offer.
pub(crate) fn local_sdp(s: &mut Server, handle: CallHandle) -> Vec<u8> {
    let Some(local) = next_local_media(s, handle) else {
        return Vec::new();
    };
    let mut body = Vec::with_capacity(400);
    if let Some(call) = s.calls.get(&handle) {
        write_local_sdp(s, call, &local, &mut body);
    }
    body
}

/// Our media endpoint for the call's next description: its version counted up (RFC 3264 §8).
fn next_local_media(s: &mut Server, handle: CallHandle) -> Option<LocalMedia<'static>> {
    let rtp_ip_cfg = s.config.rtp_ip;
    let fixed = s.config.advertised.is_some();
    let call = s.calls.get_mut(&handle)?;
    call.sdp_version += 1;
    let addr = if rtp_ip_cfg.is_unspecified() || fixed {
        call.advertised
    } else {
        rtp_ip_cfg
    };
    Some(LocalMedia {
        addr,
        rtp_port: call.port,
        session_id: call.sdp_session,
        session_version: call.sdp_version,
        username: "onhold",
    })
}

/// [`local_sdp`]'s body for `local`, appended to `out`.
fn write_local_sdp(s: &Server, call: &Call, local: &LocalMedia<'_>, out: &mut Vec<u8>) {
    match (&call.offer, &call.pending) {
        (Some(layout), Some(neg)) => layout.write(neg, local, out),
        _ => sdp::write_offer(
            local,
            &prefs(s),
            s.config.ptime_ms,
            Direction::SendOnly,
            out,
        ),
    }
}

/// `Content-Type` of our SDP bodies.
const SDP_TYPE: Lines = Lines::new("Content-Type: application/sdp\r\n");

pub(crate) fn send_on_invite(
    s: &mut Server,
    now: Instant,
    handle: CallHandle,
    code: u16,
    with_extra: bool,
    body: Option<Body>,
) -> Option<Arc<[u8]>> {
    let local = match body {
        Some(Body::LocalSdp) => Some(next_local_media(s, handle)?),
        None => None,
    };
    let call = s.calls.get_mut(&handle)?;
    let id = call.invite_txn;
    let ok = code == 200 && with_extra && call.invite_head.starts_with(OK_LINE);
    // The 2xx, the last response on this transaction, is finished in the block itself (no copy
    // of the block), which it uses up; the others are written from a copy of its lines.
    let (mut out, block) = if ok {
        (std::mem::take(&mut call.invite_head), None)
    } else {
        let mut scratch = std::mem::take(&mut s.scratch);
        scratch.clear();
        (scratch, Some(code))
    };
    let call = s.calls.get(&handle)?;
    if let Some(code) = block {
        MessageWriter::standard_response(&mut out, code);
        // The shared header block, and with it the 2xx's own lines when asked.
        let start = OK_LINE.len().min(call.invite_head.len());
        let end = if with_extra {
            call.invite_head.len()
        } else {
            call.invite_extra_at.clamp(start, call.invite_head.len())
        };
        out.extend_from_slice(&call.invite_head[start..end]);
    }
    let w = MessageWriter::block(&mut out);
    match local {
        // Written straight into the message: no buffer of its own, no copy.
        Some(local) => w.body_with(SDP_TYPE, |out| write_local_sdp(s, call, &local, out)),
        None => w.finish(None),
    }
    // One copy, shared by the transaction, the call (2xx retransmission) and the queue.
    let bytes: Arc<[u8]> = Arc::from(&out[..]);
    if block.is_some() {
        s.scratch = out;
    }
    s.respond(now, id, bytes.clone(), code);
    Some(bytes)
}

pub(crate) fn answer_invite(s: &mut Server, now: Instant, handle: CallHandle) {
    let bytes = send_on_invite(s, now, handle, 200, true, Some(Body::LocalSdp));
    let t1 = s.t1();
    let Some(call) = s.calls.get_mut(&handle) else {
        return;
    };
    call.state = CallState::Answering;
    call.ok_bytes = bytes;
    call.retransmit_interval = t1;
    call.retransmit_at = Some(now + t1);
    call.ack_deadline = Some(now + 64 * t1);
    s.timers
        .push_after(now, t1, Timer::Call(handle, CallTimer::Retransmit2xx));
    s.timers
        .push_after(now, 64 * t1, Timer::Call(handle, CallTimer::AckTimeout));
    // A hold offer stops media at once; anything that sends waits for the ACK.
    let stop = s
        .calls
        .get(&handle)
        .and_then(|c| c.pending.as_ref())
        .is_some_and(|n| !sends(n.direction));
    if stop {
        stop_media(s, handle);
    }
}

pub(crate) fn sends(d: Direction) -> bool {
    matches!(d, Direction::SendOnly | Direction::SendRecv)
}

/// Final error on an INVITE we had accepted but not answered, and forget the call.
pub(crate) fn fail_unanswered(
    s: &mut Server,
    now: Instant,
    handle: CallHandle,
    code: u16,
    reason: EndReason,
) {
    send_on_invite(s, now, handle, code, false, None);
    forget(s, now, handle, reason);
}

#[cfg(test)]
mod tests {
    #[test]
    fn allow_and_supported_lines_match_the_constants() {
        let mut lines = Vec::new();
        super::build::push_header(&mut lines, "Allow", super::build::ALLOW);
        super::build::push_header(&mut lines, "Supported", super::build::SUPPORTED);
        let mut block = Vec::new();
        crate::sip::MessageWriter::block(&mut block).lines(super::ALLOW_SUPPORTED);
        assert_eq!(block, lines);
    }
}
