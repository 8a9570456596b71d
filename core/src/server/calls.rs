//! The dialog layer (RFC 3261 §12–15, RFC 4028) and each call's media: what to answer, when
//! media starts and stops, and how a call ends.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use super::ascii;
use super::build::{self, ACCEPT, ALLOW, SUPPORTED};
use super::incoming::{self, Parsed, Request};
use super::state::{CallTimer, Path, Server, Timer};
use super::txn::{ClientPurpose, HashedKey, MergeKey, ServerState, TxnKey};
use super::{CallHandle, Command, Direction, EndReason, Event, Transmit, TransmitKind, Transport};
use crate::media::{ClassId, PlayMode};
use crate::rtp::{ntp_timestamp, write_rtcp_sr, Playout, SenderInfo, RTP_HEADER_LEN};
use crate::sdp::{self, AnswerPrefs, LocalMedia, Negotiated, SessionDescription};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CallState {
    /// INVITE accepted, waiting for the runtime to bind the RTP port before the 200.
    AwaitingPort,
    /// 2xx sent (initial or re-INVITE); retransmitting it until the ACK.
    Answering,
    Confirmed,
}

#[derive(Debug)]
pub(crate) struct SessionTimer {
    pub interval: Duration,
    /// We are the refresher (`refresher=uas`): we send UPDATE at half the interval.
    pub we_refresh: bool,
    pub at: Option<Instant>,
}

/// One dialog and its media.
#[derive(Debug)]
pub(crate) struct Call {
    /// `Call-ID SP our tag` (see [`dialog_key`]): the dialog's identity, and its key in
    /// `Server::dialogs`. One string instead of two, sliced by the accessors.
    pub dialog: String,
    pub call_id_len: usize,
    pub user: String,
    /// Their From as written (our To in requests we send) and their To with our tag (our From).
    pub their_from: String,
    pub our_from: String,
    pub remote_target: String,
    pub route_set: Vec<String>,
    pub remote_cseq: u32,
    pub local_cseq: u32,
    pub transport: Transport,
    pub local_sip: SocketAddr,
    pub remote_sip: SocketAddr,
    /// Where our in-dialog requests (BYE, UPDATE) go.
    pub request_dest: SocketAddr,
    pub advertised: IpAddr,
    pub state: CallState,
    /// The INVITE transaction being answered and the header block of its responses.
    pub invite_txn: u64,
    pub invite_cseq: u32,
    pub invite_head: Vec<u8>,
    /// Header lines only the 2xx carries (Contact, Record-Route, Allow, ...), CRLF-terminated.
    pub invite_extra: Vec<u8>,
    /// The offer of the INVITE being answered (None: we offer in the 2xx, answer in the ACK).
    pub offer: Option<Box<SessionDescription>>,
    pub port: u16,
    pub port_tries: u32,
    /// Negotiated media in force, and media agreed in a 2xx that takes effect at the ACK.
    pub media: Option<Negotiated>,
    pub pending: Option<Box<Negotiated>>,
    pub sdp_session: u64,
    pub sdp_version: u64,
    pub ok_bytes: Option<Arc<[u8]>>,
    pub retransmit_at: Option<Instant>,
    pub retransmit_interval: Duration,
    pub ack_deadline: Option<Instant>,
    pub playout: Option<Playout>,
    pub class: ClassId,
    pub session: Option<SessionTimer>,
    pub max_at: Option<Instant>,
    pub rtcp_at: Option<Instant>,
    pub created: Instant,
    pub started: Option<Instant>,
}

impl Call {
    pub fn call_id(&self) -> &str {
        &self.dialog[..self.call_id_len]
    }

    pub fn local_tag(&self) -> &str {
        &self.dialog[self.call_id_len + 1..]
    }

    fn sending(&self) -> bool {
        self.playout.as_ref().is_some_and(|p| p.running)
    }

    fn local_rtp(&self, rtp_ip: IpAddr) -> SocketAddr {
        SocketAddr::new(rtp_ip, self.port)
    }
}

// ---------------------------------------------------------------------------------------------
// Input

pub(crate) fn handle_sip(
    s: &mut Server,
    now: Instant,
    transport: Transport,
    local: SocketAddr,
    remote: SocketAddr,
    data: &[u8],
) {
    match incoming::parse(data, transport, local, remote) {
        Parsed::KeepAlive => {
            // RFC 5626 §4.4.1: answer a double-CRLF ping on a stream with a single CRLF.
            if transport == Transport::Tcp && data.starts_with(b"\r\n\r\n") {
                s.queue(
                    transport,
                    local,
                    remote,
                    TransmitKind::Sip,
                    b"\r\n".to_vec(),
                );
            }
        }
        Parsed::Response(r) => s.client_response(now, r.branch, r.cseq_method, r.code),
        Parsed::Request(req) => handle_request(s, now, &req),
        Parsed::Bad {
            request: Some(req),
            reason,
            code,
        } => {
            // Enough of the request survived to answer it (RFC 3261 §8.2: 400 for malformed).
            if req.method != "ACK" {
                let key = txn_key(&req);
                if let Some(id) = s.find_txn(&key) {
                    s.absorb(now, id, false);
                } else {
                    let reason_header = format!("SIP;cause=400;text=\"{reason}\"");
                    let reason_header = reason_header.replace("400", &code.to_string());
                    s.respond_final(now, &req, key, code, &[("Reason", &reason_header)]);
                }
            } else {
                s.stats.dropped += 1;
            }
        }
        Parsed::Bad {
            request: None,
            reason,
            ..
        } => {
            s.stats.dropped += 1;
            s.emit(Event::Dropped {
                remote,
                why: reason,
            });
        }
    }
}

fn txn_key(req: &Request<'_>) -> TxnKey {
    let method = match req.method {
        "ACK" => "INVITE",
        m => m,
    };
    let via = &req.top_via;
    if via.branch.starts_with("z9hG4bK") {
        TxnKey::new(method, via.host, via.sent_by_port, &[via.branch])
    } else {
        // RFC 2543 peers: no magic cookie, so match on the request's identity (§17.2.3).
        let cseq = ascii::decimal(req.cseq as u64, &mut [0; 20]).to_owned();
        let parts = [
            "2543|",
            req.call_id,
            "|",
            req.from_tag,
            "|",
            &cseq,
            "|",
            via.branch,
        ];
        TxnKey::new(method, via.host, via.sent_by_port, &parts)
    }
}

/// The `dialogs` key of a dialog: `Call-ID SP our tag` (a Call-ID holds no space).
pub(crate) fn dialog_key(out: &mut String, call_id: &str, local_tag: &str) {
    out.clear();
    out.reserve(call_id.len() + 1 + local_tag.len());
    out.push_str(call_id);
    out.push(' ');
    out.push_str(local_tag);
}

fn handle_request(s: &mut Server, now: Instant, req: &Request<'_>) {
    let key = txn_key(req);
    let is_ack = req.method == "ACK";
    if req.method == "CANCEL" {
        return on_cancel(s, now, req, key);
    }
    if let Some(id) = s.find_txn(&key) {
        // A retransmission, or the ACK for a non-2xx final (same branch as the INVITE).
        let ack_for_2xx = is_ack
            && s.txns
                .get(&id)
                .is_some_and(|t| t.state == ServerState::Accepted);
        if !ack_for_2xx {
            return s.absorb(now, id, is_ack);
        }
    }
    if is_ack {
        return on_ack(s, now, req);
    }
    // RFC 3261 §8.2.2.2: the same request arriving by two paths is a loop, not a new call.
    if req.method == "INVITE"
        && req.to_tag.is_empty()
        && s.merge_index
            .contains_key(&MergeKey::new(req.call_id, req.from_tag, req.cseq))
    {
        return s.respond_final(now, req, key, 482, &[]);
    }
    if req.max_forwards == Some(0) {
        return s.respond_final(now, req, key, 483, &[]);
    }
    if !req.method.eq(req.cseq_method) {
        return s.respond_final(
            now,
            req,
            key,
            400,
            &[("Reason", "SIP;cause=400;text=\"CSeq method mismatch\"")],
        );
    }
    let unsupported: Vec<&str> = req
        .require
        .iter()
        .copied()
        .filter(|t| {
            !SUPPORTED
                .split(", ")
                .any(|ours| ours.eq_ignore_ascii_case(t))
        })
        .collect();
    if !unsupported.is_empty() && req.method != "CANCEL" {
        let list = unsupported.join(", ");
        return s.respond_final(now, req, key, 420, &[("Unsupported", &list)]);
    }
    match req.method {
        "INVITE" if req.to_tag.is_empty() => on_invite(s, now, req, key),
        "INVITE" | "UPDATE" => on_offer_in_dialog(s, now, req, key),
        "BYE" => on_bye(s, now, req, key),
        "INFO" => match find_dialog(s, req) {
            Some(h) => {
                if in_order(s, now, req, &key, h) {
                    s.respond_final(now, req, key, 200, &[]);
                }
            }
            None => s.respond_final(now, req, key, 481, &[]),
        },
        "OPTIONS" => {
            let code = if s.draining.is_some() { 503 } else { 200 };
            s.respond_final(
                now,
                req,
                key,
                code,
                &[
                    ("Allow", ALLOW),
                    ("Accept", ACCEPT),
                    ("Supported", SUPPORTED),
                ],
            )
        }
        _ => s.respond_final(now, req, key, 405, &[("Allow", ALLOW)]),
    }
}

fn find_dialog(s: &mut Server, req: &Request<'_>) -> Option<CallHandle> {
    if req.to_tag.is_empty() {
        return None;
    }
    // Looked up through a reused buffer: no allocation per in-dialog request.
    let mut key = std::mem::take(&mut s.key_scratch);
    dialog_key(&mut key, req.call_id, req.to_tag);
    let key = HashedKey::new(key);
    let found = s.dialogs.get(&key).copied();
    s.key_scratch = key.into_text();
    found
}

/// The INVITE's offer (or `None` for a late offer), or the final error response to send.
fn read_offer(req: &Request<'_>) -> Result<Option<Box<SessionDescription>>, (u16, String)> {
    if req.body.is_empty() {
        return Ok(None);
    }
    let ct = req.content_type.unwrap_or("application/sdp");
    let media_type = ct.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/sdp") {
        return Err((415, String::new()));
    }
    sdp::parse(req.body)
        .map(|o| Some(Box::new(o)))
        .map_err(|e| (400, format!("Bad SDP: {e}")))
}

/// RFC 3261 §20.43 Warning for a refused offer: the 3xx warn-code says which part failed.
fn warning(rej: sdp::Rejection) -> String {
    format!("{} onhold \"{}\"", rej.warning_code(), rej.warning_text())
}

fn prefs(s: &Server) -> AnswerPrefs {
    AnswerPrefs {
        codecs: s.config.codecs.clone(),
        default_ptime_ms: s.config.ptime_ms,
    }
}

fn session_timer_request(s: &Server, req: &Request<'_>) -> Result<Option<SessionTimer>, u16> {
    let Some((secs, refresher)) = req.session_expires else {
        return Ok(None);
    };
    if (secs as u64) < s.config.min_se.as_secs() {
        return Err(422);
    }
    let uac_supports = req
        .supported
        .iter()
        .any(|t| t.eq_ignore_ascii_case("timer"));
    // RFC 4028 §9: keep the refresher the UAC chose; if it chose none, let it refresh when it can.
    let we_refresh = match refresher {
        Some(r) => r.eq_ignore_ascii_case("uas"),
        None => !uac_supports,
    };
    Ok(Some(SessionTimer {
        interval: Duration::from_secs(secs as u64),
        we_refresh,
        at: None,
    }))
}

fn on_invite(s: &mut Server, now: Instant, req: &Request<'_>, key: TxnKey) {
    if s.draining.is_some() {
        return s.respond_final(now, req, key, 503, &[("Retry-After", "30")]);
    }
    if s.calls.len() >= s.config.max_calls {
        return s.respond_final(now, req, key, 486, &[]);
    }
    let session = match session_timer_request(s, req) {
        Ok(t) => t,
        Err(code) => {
            let min = s.config.min_se.as_secs().to_string();
            return s.respond_final(now, req, key, code, &[("Min-SE", &min)]);
        }
    };
    let offer = match read_offer(req) {
        Ok(o) => o,
        Err((code, why)) => {
            let extra: Vec<(&str, &str)> = if code == 415 {
                vec![("Accept", ACCEPT)]
            } else {
                vec![("Warning", &why)]
            };
            return s.respond_final(now, req, key, code, &extra);
        }
    };
    let pending = match &offer {
        Some(o) => match sdp::answer(o, &prefs(s)) {
            Ok(n) => Some(n),
            Err(rej) => {
                let warn = warning(rej);
                return s.respond_final(now, req, key, rej.status_code(), &[("Warning", &warn)]);
            }
        },
        None => None,
    };
    let handle = s.calls.vacant();
    let id = s.new_server_txn(req, key, Some(handle));
    s.reply(now, id, req, 100, None, &[]);
    // Our tag goes straight into the dialog's identity string (no String of its own).
    let mut tag_buf = [0; 16];
    let local_tag = ascii::hex16(s.rng.next_u64(), &mut tag_buf);
    let advertised = s.advertised_ip(req);
    let mut head = Vec::with_capacity(512);
    build::start_response(
        &mut head,
        req,
        200,
        None,
        Some(local_tag),
        &s.config.user_agent,
    )
    .finish(None);
    let head = strip_status_and_length(head);
    let transport_param = if req.transport == Transport::Tcp {
        ";transport=tcp"
    } else {
        ""
    };
    let user = if req.uri_user.is_empty() {
        "onhold"
    } else {
        req.uri_user
    };
    // The 200's own header lines, written once as bytes (the 2xx is built once and then
    // retransmitted as is). First `Contact: <sip:{user}@{host}:{port}{transport_param}>`.
    let mut extra = Vec::with_capacity(256);
    extra.extend_from_slice(b"Contact: <sip:");
    extra.extend_from_slice(user.as_bytes());
    extra.push(b'@');
    build::push_host_bytes(&mut extra, advertised);
    extra.push(b':');
    ascii::push_decimal(&mut extra, req.local.port() as u64);
    extra.extend_from_slice(transport_param.as_bytes());
    extra.extend_from_slice(b">\r\n");
    for rr in &req.record_route {
        build::push_header(&mut extra, "Record-Route", rr);
    }
    build::push_header(&mut extra, "Allow", ALLOW);
    build::push_header(&mut extra, "Supported", SUPPORTED);
    if let Some(t) = &session {
        push_session_expires(&mut extra, t);
        if req
            .supported
            .iter()
            .any(|t| t.eq_ignore_ascii_case("timer"))
        {
            build::push_header(&mut extra, "Require", "timer");
        }
    }
    let rtcp_mux = pending.as_ref().is_some_and(|n| n.rtcp_mux);
    let mut dialog = String::new();
    dialog_key(&mut dialog, req.call_id, local_tag);
    let mut our_from = String::with_capacity(req.to.len() + 5 + local_tag.len());
    our_from.push_str(req.to);
    our_from.push_str(";tag=");
    our_from.push_str(local_tag);
    let mut call = Call {
        call_id_len: req.call_id.len(),
        dialog,
        user: req.uri_user.to_string(),
        their_from: req.from.to_string(),
        our_from,
        remote_target: req.contact.unwrap_or(req.uri).to_string(),
        route_set: req.record_route.iter().map(|r| r.to_string()).collect(),
        remote_cseq: req.cseq,
        local_cseq: 0,
        transport: req.transport,
        local_sip: req.local,
        remote_sip: req.remote,
        request_dest: req.remote,
        advertised,
        state: CallState::AwaitingPort,
        invite_txn: id,
        invite_cseq: req.cseq,
        invite_head: head,
        invite_extra: extra,
        offer,
        port: 0,
        port_tries: 0,
        media: None,
        pending: pending.map(Box::new),
        sdp_session: (s.rng_u32() >> 1) as u64,
        sdp_version: 0,
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
    };
    call.sdp_version = call.sdp_session;
    call.request_dest = request_destination(&call, req);
    s.dialogs
        .insert(HashedKey::new(call.dialog.clone()), handle);
    s.calls.insert(handle, call);
    s.stats.calls_total += 1;
    s.stats.calls_active = s.calls.len();
    if !ask_for_port(s, now, handle, rtcp_mux) {
        fail_unanswered(s, now, handle, 503, EndReason::Control);
    }
}

/// `Session-Expires: <secs>;refresher=<uac|uas>` (RFC 4028 §9).
fn push_session_expires(out: &mut Vec<u8>, t: &SessionTimer) {
    out.extend_from_slice(b"Session-Expires: ");
    ascii::push_decimal(out, t.interval.as_secs());
    out.extend_from_slice(if t.we_refresh {
        b";refresher=uas\r\n"
    } else {
        b";refresher=uac\r\n"
    });
}

/// `start_response(...).finish(None)` minus its status line and Content-Length: the header block
/// every later response on this INVITE transaction shares.
fn strip_status_and_length(mut full: Vec<u8>) -> Vec<u8> {
    let start = full
        .windows(2)
        .position(|w| w == b"\r\n")
        .map_or(0, |p| p + 2);
    let end = full.len() - b"Content-Length: 0\r\n\r\n".len();
    // In place: the header block keeps the buffer it was written into.
    full.truncate(end);
    full.drain(..start);
    full
}

/// Our in-dialog requests go to the first Record-Route hop, else the remote target — unless
/// the caller is behind a NAT (its Via names another address than the packet came from), when
/// the target is unreachable and the source address is the one that works (RFC 3581 spirit).
fn request_destination(call: &Call, req: &Request<'_>) -> SocketAddr {
    let via_host = req
        .top_via
        .host
        .trim_start_matches('[')
        .trim_end_matches(']');
    let natted = ascii::parse_ip(via_host).map_or(true, |ip| ip != req.remote.ip());
    if let Some(first) = call.route_set.first() {
        if let Some(a) = incoming::uri_socket_addr(first) {
            return a;
        }
    }
    if !natted {
        // The remote target is the Contact when there is one, already parsed.
        let target = match (req.contact, req.contact_addr) {
            (Some(_), Some(known)) => known,
            _ => incoming::uri_socket_addr(&call.remote_target),
        };
        if let Some(a) = target {
            return a;
        }
    }
    req.remote
}

fn ask_for_port(s: &mut Server, _now: Instant, handle: CallHandle, rtcp_mux: bool) -> bool {
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
        send_on_invite(s, now, handle, 180, &[], None);
    }
    answer_invite(s, now, handle);
}

/// Build our SDP for the INVITE being answered: the answer to its offer, or our offer.
fn local_sdp(s: &mut Server, handle: CallHandle) -> Vec<u8> {
    let rtp_ip_cfg = s.config.rtp_ip;
    let ptime = s.config.ptime_ms;
    let prefs = prefs(s);
    let Some(call) = s.calls.get_mut(&handle) else {
        return Vec::new();
    };
    call.sdp_version += 1;
    let addr = if rtp_ip_cfg.is_unspecified() || s.config.advertised.is_some() {
        call.advertised
    } else {
        rtp_ip_cfg
    };
    let local = LocalMedia {
        addr,
        rtp_port: call.port,
        session_id: call.sdp_session,
        session_version: call.sdp_version,
        username: "onhold",
    };
    let mut body = Vec::with_capacity(400);
    match (&call.offer, &call.pending) {
        (Some(offer), Some(neg)) => sdp::write_answer(offer, neg, &local, &mut body),
        _ => sdp::write_offer(&local, &prefs, ptime, Direction::SendOnly, &mut body),
    }
    body
}

fn send_on_invite(
    s: &mut Server,
    now: Instant,
    handle: CallHandle,
    code: u16,
    extra: &[u8],
    body: Option<&[u8]>,
) -> Option<Arc<[u8]>> {
    let call = s.calls.get(&handle)?;
    let mut scratch = std::mem::take(&mut s.scratch);
    let mut w = build::Writer::response(&mut scratch, code, crate::sip::reason_phrase(code));
    w.raw(&call.invite_head);
    w.raw(extra);
    w.finish(body.map(|b| ("application/sdp", b)));
    let id = call.invite_txn;
    // One copy, shared by the transaction, the call (2xx retransmission) and the queue.
    let bytes: Arc<[u8]> = Arc::from(&scratch[..]);
    s.scratch = scratch;
    s.respond(now, id, bytes.clone(), code);
    Some(bytes)
}

fn answer_invite(s: &mut Server, now: Instant, handle: CallHandle) {
    let body = local_sdp(s, handle);
    // Taken out for the call and put back: no copy of the header lines.
    let extra = s
        .calls
        .get_mut(&handle)
        .map(|c| std::mem::take(&mut c.invite_extra))
        .unwrap_or_default();
    let bytes = send_on_invite(s, now, handle, 200, &extra, Some(&body));
    let t1 = s.t1();
    let Some(call) = s.calls.get_mut(&handle) else {
        return;
    };
    call.invite_extra = extra;
    call.state = CallState::Answering;
    call.ok_bytes = bytes;
    call.retransmit_interval = t1;
    call.retransmit_at = Some(now + t1);
    call.ack_deadline = Some(now + 64 * t1);
    s.timers
        .push(now + t1, Timer::Call(handle, CallTimer::Retransmit2xx));
    s.timers
        .push(now + 64 * t1, Timer::Call(handle, CallTimer::AckTimeout));
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

fn sends(d: Direction) -> bool {
    matches!(d, Direction::SendOnly | Direction::SendRecv)
}

/// Final error on an INVITE we had accepted but not answered, and forget the call.
fn fail_unanswered(s: &mut Server, now: Instant, handle: CallHandle, code: u16, reason: EndReason) {
    send_on_invite(s, now, handle, code, &[], None);
    forget(s, now, handle, reason);
}

fn on_ack(s: &mut Server, now: Instant, req: &Request<'_>) {
    let Some(handle) = find_dialog(s, req) else {
        s.stats.dropped += 1;
        return;
    };
    let prefs = prefs(s);
    let Some(call) = s.calls.get_mut(&handle) else {
        return;
    };
    if call.state != CallState::Answering || req.cseq != call.invite_cseq {
        return; // a retransmitted ACK, or one for an older INVITE
    }
    call.state = CallState::Confirmed;
    // What answering needed is not needed again until the next re-INVITE: a confirmed call
    // keeps only its dialog identity and media cursor.
    call.invite_head = Vec::new();
    call.invite_extra = Vec::new();
    call.ok_bytes = None;
    call.retransmit_at = None;
    call.ack_deadline = None;
    if call.offer.is_none() {
        // Late offer: the answer to the offer in our 2xx travels in the ACK (RFC 3261 §13.2.1).
        let answer = if req.body.is_empty() {
            None
        } else {
            sdp::parse(req.body).ok()
        };
        match answer.map(|a| sdp::accept_answer(&a, &prefs)) {
            Some(Ok(neg)) => call.pending = Some(Box::new(neg)),
            _ => {
                return hangup(s, now, handle, EndReason::Control);
            }
        }
    }
    call.offer = None;
    apply_pending(s, now, handle);
}

/// Media agreed in a 2xx takes effect: start, resume, hold or move the stream.
fn apply_pending(s: &mut Server, now: Instant, handle: CallHandle) {
    let max = s.config.max_call_duration;
    let rtcp_interval = s.config.rtcp_interval;
    let rtp_ip = s.config.rtp_ip;
    let (ssrc, seq, ts) = (s.rng_u32(), s.rng_u32() as u16, s.rng_u32());
    let jitter = s.rng.below(1000);
    let Some(call) = s.calls.get_mut(&handle) else {
        return;
    };
    let Some(neg) = call.pending.take().map(|b| *b) else {
        return;
    };
    let first = call.started.is_none();
    let send = sends(neg.direction);
    let p = call
        .playout
        .get_or_insert_with(|| Playout::new(ssrc, neg.payload_type, seq, ts, neg.ptime_ms, now));
    if p.pt != neg.payload_type || p.frame != neg.ptime_ms * 8 {
        p.stop();
        p.pt = neg.payload_type;
        p.frame = neg.ptime_ms * 8;
        p.ptime = Duration::from_millis(neg.ptime_ms as u64);
    }
    let moved = call
        .media
        .as_ref()
        .is_some_and(|m| m.remote_rtp != neg.remote_rtp);
    if moved {
        p.stop();
    }
    let mut schedule = None;
    if send && !p.running {
        p.begin(now);
        schedule = Some(p.due());
    } else if !send {
        p.stop();
    }
    let ev = if first {
        call.started = Some(now);
        Event::CallStarted {
            call: handle,
            call_id: call.call_id().to_string(),
            user: call.user.clone(),
            remote_sip: call.remote_sip,
            remote_rtp: neg.remote_rtp,
            local_rtp: call.local_rtp(rtp_ip),
            codec: neg.codec,
            payload_type: neg.payload_type,
            ptime_ms: neg.ptime_ms,
            direction: neg.direction,
        }
    } else {
        Event::MediaChanged {
            call: handle,
            remote_rtp: neg.remote_rtp,
            direction: neg.direction,
        }
    };
    call.media = Some(neg);
    let mut timers = Vec::new();
    if first {
        if let Some(max) = max {
            call.max_at = Some(now + max);
            timers.push((now + max, CallTimer::MaxDuration));
        }
        // RFC 3550 §6.3.1: randomise the report interval over [0.5, 1.5] of the nominal.
        let at = now + rtcp_interval.mul_f64(0.5 + jitter as f64 / 1000.0);
        call.rtcp_at = Some(at);
        timers.push((at, CallTimer::Rtcp));
    }
    if let Some(t) = arm_session_timer(call, now) {
        timers.push(t);
    }
    if let Some(due) = schedule {
        s.pacing.push(due, handle);
    }
    for (at, what) in timers {
        s.timers.push(at, Timer::Call(handle, what));
    }
    s.emit(ev);
}

fn arm_session_timer(call: &mut Call, now: Instant) -> Option<(Instant, CallTimer)> {
    let t = call.session.as_mut()?;
    let (at, what) = if t.we_refresh {
        (now + t.interval / 2, CallTimer::SessionRefresh)
    } else {
        // RFC 4028 §10: BYE at the expiry minus min(32 s, interval/3) if no refresh arrived.
        let margin = Duration::from_secs(32).min(t.interval / 3);
        (now + t.interval - margin, CallTimer::SessionExpiry)
    };
    t.at = Some(at);
    Some((at, what))
}

fn stop_media(s: &mut Server, handle: CallHandle) {
    if let Some(p) = s.calls.get_mut(&handle).and_then(|c| c.playout.as_mut()) {
        p.stop();
    }
}

/// re-INVITE or UPDATE inside a dialog: hold, unhold, new address, session refresh.
fn on_offer_in_dialog(s: &mut Server, now: Instant, req: &Request<'_>, key: TxnKey) {
    let Some(handle) = find_dialog(s, req) else {
        return s.respond_final(now, req, key, 481, &[]);
    };
    let (remote_cseq, state) = match s.calls.get(&handle) {
        Some(c) => (c.remote_cseq, c.state),
        None => return s.respond_final(now, req, key, 481, &[]),
    };
    if req.cseq <= remote_cseq {
        return s.respond_final(now, req, key, 500, &[]);
    }
    let invite = req.method == "INVITE";
    if state != CallState::Confirmed && invite {
        // RFC 3261 §14.2: an INVITE while another is unfinished gets 500 with Retry-After.
        return s.respond_final(now, req, key, 500, &[("Retry-After", "1")]);
    }
    let session = match session_timer_request(s, req) {
        Ok(t) => t,
        Err(code) => {
            let min = s.config.min_se.as_secs().to_string();
            return s.respond_final(now, req, key, code, &[("Min-SE", &min)]);
        }
    };
    let offer = match read_offer(req) {
        Ok(o) => o,
        Err((code, why)) => return s.respond_final(now, req, key, code, &[("Warning", &why)]),
    };
    let neg = match &offer {
        Some(o) => match sdp::answer(o, &prefs(s)) {
            Ok(n) => Some(n),
            Err(rej) => {
                if let Some(c) = s.calls.get_mut(&handle) {
                    c.remote_cseq = req.cseq;
                }
                let warn = warning(rej);
                return s.respond_final(now, req, key, rej.status_code(), &[("Warning", &warn)]);
            }
        },
        None => None,
    };
    let id = s.new_server_txn(req, key, Some(handle));
    let ua = s.config.user_agent.clone();
    let Some(call) = s.calls.get_mut(&handle) else {
        return;
    };
    call.remote_cseq = req.cseq;
    if let Some(c) = req.contact {
        call.remote_target = c.to_string(); // target refresh (RFC 3261 §12.2.2)
    }
    if let Some(t) = session {
        call.session = Some(t);
    }
    let mut head = Vec::with_capacity(512);
    build::start_response(&mut head, req, 200, None, None, &ua).finish(None);
    let contact = format!(
        "<sip:{}@{}:{}>",
        if call.user.is_empty() {
            "onhold"
        } else {
            &call.user
        },
        build::host_str(call.advertised),
        call.local_sip.port()
    );
    let mut extra = Vec::with_capacity(256);
    build::push_header(&mut extra, "Contact", &contact);
    build::push_header(&mut extra, "Allow", ALLOW);
    build::push_header(&mut extra, "Supported", SUPPORTED);
    if let Some(t) = &call.session {
        push_session_expires(&mut extra, t);
    }
    let has_offer = offer.is_some();
    if invite {
        call.invite_txn = id;
        call.invite_cseq = req.cseq;
        call.invite_head = strip_status_and_length(head);
        call.invite_extra = extra;
        call.offer = offer;
        call.pending = neg.map(Box::new);
        if !has_offer {
            call.pending = None;
        }
        answer_invite(s, now, handle);
    } else {
        // UPDATE: the answer is in our 200 and takes effect now (RFC 3311 §5.2).
        call.offer = offer;
        call.pending = neg.map(Box::new);
        let body = if has_offer {
            Some(local_sdp(s, handle))
        } else {
            None
        };
        let Some(call) = s.calls.get_mut(&handle) else {
            return;
        };
        call.offer = None;
        let mut bytes = Vec::with_capacity(800);
        let mut w = build::Writer::response(&mut bytes, 200, "OK");
        w.raw(&strip_status_and_length(head));
        w.raw(&extra);
        w.finish(body.as_deref().map(|b| ("application/sdp", b)));
        s.respond(now, id, Arc::from(bytes), 200);
        if has_offer {
            apply_pending(s, now, handle);
        } else if let Some(call) = s.calls.get_mut(&handle) {
            if let Some((at, what)) = arm_session_timer(call, now) {
                s.timers.push(at, Timer::Call(handle, what));
            }
        }
    }
}

/// RFC 3261 §12.2.2: a request with a CSeq lower than the last one in the dialog is out of
/// order and gets 500. Returns false when it was rejected.
fn in_order(
    s: &mut Server,
    now: Instant,
    req: &Request<'_>,
    key: &TxnKey,
    handle: CallHandle,
) -> bool {
    let last = s.calls.get(&handle).map_or(0, |c| c.remote_cseq);
    if req.cseq <= last {
        s.respond_final(now, req, key.clone(), 500, &[]);
        return false;
    }
    if let Some(c) = s.calls.get_mut(&handle) {
        c.remote_cseq = req.cseq;
    }
    true
}

fn on_bye(s: &mut Server, now: Instant, req: &Request<'_>, key: TxnKey) {
    let Some(handle) = find_dialog(s, req) else {
        return s.respond_final(now, req, key, 481, &[]);
    };
    if !in_order(s, now, req, &key, handle) {
        return;
    }
    let id = s.new_server_txn(req, key, Some(handle));
    s.reply(now, id, req, 200, None, &[]);
    // RFC 3261 §15.1.2: an INVITE still pending when BYE arrives gets 487.
    if let Some(call) = s.calls.get(&handle) {
        let txn = call.invite_txn;
        if s.txns
            .get(&txn)
            .is_some_and(|t| t.state == ServerState::Proceeding)
        {
            send_on_invite(s, now, handle, 487, &[], None);
        }
    }
    forget(s, now, handle, EndReason::RemoteBye);
}

fn on_cancel(s: &mut Server, now: Instant, req: &Request<'_>, cancel_key: TxnKey) {
    if let Some(id) = s.find_txn(&cancel_key) {
        return s.absorb(now, id, false);
    }
    let invite_key = cancel_key.with_method("INVITE");
    let Some(invite_id) = s.find_txn(&invite_key) else {
        return s.respond_final(now, req, cancel_key, 481, &[]); // RFC 3261 §9.2
    };
    let (call, state) = match s.txns.get(&invite_id) {
        Some(t) => (t.call, t.state),
        None => return s.respond_final(now, req, cancel_key, 481, &[]),
    };
    let tag = call
        .and_then(|h| s.calls.get(&h))
        .map(|c| c.local_tag().to_string());
    let id = s.new_server_txn(req, cancel_key, None);
    s.reply(now, id, req, 200, tag.as_deref(), &[]);
    if state == ServerState::Proceeding {
        if let Some(h) = call {
            fail_unanswered(s, now, h, 487, EndReason::Cancelled);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Output: RTP

/// Write the packet due for `handle` into `buf`; with it, when the call's next packet is due.
/// `None`: a stale pacing entry.
pub(crate) fn next_rtp(
    s: &mut Server,
    now: Instant,
    due: Instant,
    handle: CallHandle,
    buf: &mut [u8],
) -> Option<(Transmit, Instant)> {
    let max_catchup = s.config.max_catchup_frames;
    let rtp_ip = s.config.rtp_ip;
    let epoch = s.epoch;
    let call = s.calls.get_mut(&handle)?;
    let media = call.media.as_ref()?;
    let p = call.playout.as_mut()?;
    if !p.running || p.due() != due {
        return None; // stale pacing entry (hold, resume, call gone)
    }
    let skipped = p.skip_overdue(now, max_catchup);
    let this_due = p.due();
    let (len, pos) = p.write_next(buf);
    let pos = match s.library.mode(call.class) {
        PlayMode::PerCall => pos,
        // Radio: the position follows the global grid, so every caller hears the same point.
        PlayMode::Shared => ((this_due - epoch).as_nanos() * 8000 / 1_000_000_000) as u64,
    };
    s.library
        .fill(call.class, media.codec, pos, &mut buf[RTP_HEADER_LEN..len]);
    let next = p.due();
    let t = Transmit {
        transport: Transport::Udp,
        local: SocketAddr::new(rtp_ip, call.port),
        remote: media.remote_rtp,
        len,
        kind: TransmitKind::Rtp,
    };
    if skipped > 0 {
        s.stats.late_skipped_frames += skipped as u64;
        s.emit(Event::Late {
            call: handle,
            skipped,
        });
    }
    Some((t, next))
}

fn send_rtcp(s: &mut Server, now: Instant, handle: CallHandle, bye: bool) {
    let rtp_ip = s.config.rtp_ip;
    let wall = s.epoch_wall.duration_since(UNIX_EPOCH).unwrap_or_default() + (now - s.epoch);
    let Some(call) = s.calls.get(&handle) else {
        return;
    };
    let (Some(p), Some(m)) = (call.playout.as_ref(), call.media.as_ref()) else {
        return;
    };
    if p.packets == 0 {
        return;
    }
    let mut buf = vec![0u8; 128];
    let info = SenderInfo {
        ssrc: p.ssrc,
        ntp: ntp_timestamp(wall),
        rtp_ts: p.ts_at(now),
        packets: p.packets as u32,
        octets: p.octets as u32,
    };
    let n = write_rtcp_sr(&mut buf, info, b"onhold", bye);
    buf.truncate(n);
    let local_port = if m.rtcp_mux { call.port } else { call.port + 1 };
    let (remote, transport) = (m.remote_rtcp, Transport::Udp);
    s.queue(
        transport,
        SocketAddr::new(rtp_ip, local_port),
        remote,
        TransmitKind::Rtcp,
        buf,
    );
}

// ---------------------------------------------------------------------------------------------
// Timers and endings

pub(crate) fn call_timer(
    s: &mut Server,
    now: Instant,
    at: Instant,
    handle: CallHandle,
    what: CallTimer,
) {
    let t2 = s.config.t2;
    let Some(call) = s.calls.get_mut(&handle) else {
        return;
    };
    match what {
        CallTimer::Retransmit2xx => {
            if call.state != CallState::Answering || call.retransmit_at != Some(at) {
                return;
            }
            // RFC 3261 §13.3.1.4: T1, 2·T1, … capped at T2 until the ACK.
            call.retransmit_interval = (call.retransmit_interval * 2).min(t2);
            let next = now + call.retransmit_interval;
            let bytes = call.ok_bytes.clone();
            if call.ack_deadline.is_some_and(|d| next < d) {
                call.retransmit_at = Some(next);
                s.timers
                    .push(next, Timer::Call(handle, CallTimer::Retransmit2xx));
            } else {
                call.retransmit_at = None;
            }
            let (t, l, r) = (call.transport, call.local_sip, call.remote_sip);
            let dest = s.txns.get(&call.invite_txn).map_or(r, |x| x.dest);
            if let Some(b) = bytes {
                s.queue(t, l, dest, TransmitKind::Sip, b);
            }
        }
        CallTimer::AckTimeout => {
            if call.state == CallState::Answering && call.ack_deadline == Some(at) {
                hangup(s, now, handle, EndReason::AckTimeout);
            }
        }
        CallTimer::SessionExpiry => {
            if call.session.as_ref().is_some_and(|t| t.at == Some(at)) {
                hangup(s, now, handle, EndReason::SessionExpired);
            }
        }
        CallTimer::SessionRefresh => {
            if call.session.as_ref().is_some_and(|t| t.at == Some(at)) {
                send_in_dialog(s, now, handle, "UPDATE");
            }
        }
        CallTimer::MaxDuration => {
            if call.max_at == Some(at) {
                hangup(s, now, handle, EndReason::MaxDuration);
            }
        }
        CallTimer::Rtcp => {
            if call.rtcp_at != Some(at) {
                return;
            }
            let sending = call.sending();
            let interval = s
                .config
                .rtcp_interval
                .mul_f64(0.5 + s.rng.below(1000) as f64 / 1000.0);
            if let Some(call) = s.calls.get_mut(&handle) {
                call.rtcp_at = Some(now + interval);
            }
            s.timers
                .push(now + interval, Timer::Call(handle, CallTimer::Rtcp));
            if sending {
                send_rtcp(s, now, handle, false);
            }
        }
    }
}

/// Send BYE or UPDATE inside the dialog (RFC 3261 §12.2.1.1).
fn send_in_dialog(s: &mut Server, now: Instant, handle: CallHandle, method: &'static str) {
    let branch = format!("z9hG4bK{}", s.token());
    let ua = s.config.user_agent.clone();
    let Some(call) = s.calls.get_mut(&handle) else {
        return;
    };
    call.local_cseq += 1;
    let mut bytes = Vec::with_capacity(600);
    let mut w = Server::writer(&mut bytes, method, &call.remote_target);
    let proto = if call.transport == Transport::Tcp {
        "TCP"
    } else {
        "UDP"
    };
    w.header_fmt(
        "Via",
        format_args!(
            "SIP/2.0/{proto} {}:{};branch={branch};rport",
            build::host_str(call.advertised),
            call.local_sip.port()
        ),
    );
    w.header("Max-Forwards", "70");
    w.header("From", &call.our_from);
    w.header("To", &call.their_from);
    w.header("Call-ID", call.call_id());
    w.header_fmt("CSeq", format_args!("{} {method}", call.local_cseq));
    for r in &call.route_set {
        w.header("Route", r);
    }
    w.header("User-Agent", &ua);
    let purpose = if method == "BYE" {
        ClientPurpose::Bye
    } else {
        if let Some(t) = &call.session {
            w.header_fmt(
                "Session-Expires",
                format_args!("{};refresher=uas", t.interval.as_secs()),
            );
            w.header("Supported", SUPPORTED);
        }
        ClientPurpose::SessionRefresh(handle)
    };
    w.finish(None);
    let path = Path {
        transport: call.transport,
        local: call.local_sip,
        dest: call.request_dest,
    };
    s.send_request(now, method, purpose, branch, bytes, path);
}

pub(crate) fn client_outcome(s: &mut Server, now: Instant, purpose: ClientPurpose, code: u16) {
    if let ClientPurpose::SessionRefresh(handle) = purpose {
        if (200..300).contains(&code) {
            if let Some(call) = s.calls.get_mut(&handle) {
                if let Some((at, what)) = arm_session_timer(call, now) {
                    s.timers.push(at, Timer::Call(handle, what));
                }
            }
        } else {
            hangup(s, now, handle, EndReason::SessionExpired);
        }
    }
}

/// End a call from our side: BYE once the dialog exists, a final error while it does not.
pub(crate) fn hangup(s: &mut Server, now: Instant, handle: CallHandle, reason: EndReason) {
    let Some(call) = s.calls.get(&handle) else {
        return;
    };
    match call.state {
        CallState::AwaitingPort => fail_unanswered(s, now, handle, 503, reason),
        CallState::Answering | CallState::Confirmed => {
            send_in_dialog(s, now, handle, "BYE");
            forget(s, now, handle, reason);
        }
    }
}

/// Remove a call: stop its media (RTCP BYE if it sent any), free its port, report it.
pub(crate) fn forget(s: &mut Server, now: Instant, handle: CallHandle, reason: EndReason) {
    let sent_any = s
        .calls
        .get(&handle)
        .and_then(|c| c.playout.as_ref())
        .is_some_and(|p| p.packets > 0);
    if sent_any {
        send_rtcp(s, now, handle, true);
    }
    let Some(call) = s.calls.remove(&handle) else {
        return;
    };
    let mut key = std::mem::take(&mut s.key_scratch);
    key.clear();
    key.push_str(&call.dialog);
    let key = HashedKey::new(key);
    s.dialogs.remove(&key);
    s.key_scratch = key.into_text();
    if call.port != 0 && s.ports.get(&call.port) == Some(&handle) {
        s.ports.remove(&call.port);
        let rtcp_mux = call
            .media
            .as_ref()
            .or(call.pending.as_deref())
            .is_some_and(|m| m.rtcp_mux);
        s.commands.push_back(Command::UnbindRtp {
            port: call.port,
            rtcp_mux,
        });
    }
    s.stats.calls_active = s.calls.len();
    s.emit(Event::CallEnded {
        call: handle,
        reason,
        duration: now - call.started.unwrap_or(call.created),
        rtp_packets_sent: call.playout.as_ref().map_or(0, |p| p.packets),
    });
    s.finish_drain(now, false);
}

/// New music: every call picks its class again and marks its next packet (RFC 3550 §5.1: the
/// marker flags a discontinuity a receiver should not smooth over).
pub(crate) fn reload(s: &mut Server) {
    let library = s.library.clone();
    for call in s.calls.values_mut() {
        call.class = library.class_for(&call.user);
        if let Some(p) = call.playout.as_mut() {
            p.marker = true;
        }
    }
}
