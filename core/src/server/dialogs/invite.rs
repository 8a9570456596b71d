//! A new call: the checks, the 100, an RTP port from the runtime, then the 200 with our SDP.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use super::super::limits::SourceRefusal;
use super::super::messages::{self, Contact, OkLines, ResponseHead, SDP_TYPE};
use super::super::request::Request;
use super::super::transactions::{MergeKey, TxnKey};
use super::super::{
    CallHandle, CallTimer, Cx, EndReason, Event, Limit, ServerConfig, Timer, Transport,
};
use super::session::{allows, require_timer};
use super::{check_offer, prefs, Call, CallState, Dialogs, OfferCheck, LOCAL_TAG_LEN};
use crate::ascii;
use crate::hash_index::HashedKey;
use crate::sdp::{self, Direction, LocalMedia};

impl Dialogs {
    /// An INVITE outside any dialog. `merge`: the request's merge key, built for the
    /// merged-request check.
    pub fn on_invite(
        &mut self,
        cx: &mut Cx<'_>,
        req: &Request<'_>,
        key: TxnKey,
        merge: Option<MergeKey>,
    ) {
        let now = cx.io.now;
        if cx.draining {
            return cx.respond_final(req, key, 503, &[("Retry-After", "30")]);
        }
        if self.calls.len() >= cx.config.max_calls {
            // Full: 503 with Retry-After (RFC 3261 §21.5.4), so a proxy may try another server;
            // 486 would tell the caller that the callee is busy.
            cx.stats.refused_full += 1;
            cx.limit_hit(req, Limit::MaxCalls);
            return cx.respond_final(req, key, 503, &[("Retry-After", "10")]);
        }
        if cx.media.overloaded(now) {
            // Calls already up keep the CPU there is; stateless, so refusing costs nothing kept.
            cx.stats.refused_overload += 1;
            cx.limit_hit(req, Limit::Overload);
            return cx.respond_stateless(req, 503, "5");
        }
        match self.sources.admit(&cx.config.limits, req.remote.ip(), now) {
            Ok(()) => {}
            Err(SourceRefusal::Rate(after)) => {
                cx.stats.refused_rate += 1;
                cx.limit_hit(req, Limit::InviteRate);
                let mut buf = [0; 20];
                return cx.respond_stateless(req, 503, ascii::decimal(after, &mut buf));
            }
            Err(SourceRefusal::Calls) => {
                cx.stats.refused_source_calls += 1;
                cx.limit_hit(req, Limit::CallsPerSource);
                return cx.respond_stateless(req, 503, "10");
            }
        }
        let Some((
            key,
            OfferCheck {
                session,
                offer,
                neg: pending,
            },
        )) = check_offer(cx, req, key)
        else {
            self.sources.ended(req.remote.ip());
            return; // refused with a final response
        };
        let handle = self.calls.vacant();
        let id = cx.txns.open(req, key, merge, Some(handle));
        let mut tag_buf = [0; LOCAL_TAG_LEN];
        let local_tag = ascii::hex16(cx.rng.next_u64(), &mut tag_buf);
        // RFC 3261 §8.2.6.1: a 100 at once, so the caller stops retransmitting while the
        // runtime binds the RTP port.
        let head = ResponseHead::new(req, &cx.config.user_agent);
        let mut out = std::mem::take(&mut self.scratch);
        head.start(&mut out, 100, local_tag).finish(None);
        cx.txns.respond(&mut cx.io, id, Arc::from(&out[..]), 100);
        self.scratch = out;
        let advertised = advertised_ip(cx.config, req);
        let user = if req.uri_user.is_empty() {
            "onhold"
        } else {
            req.uri_user
        };
        let mut ok_lines = Vec::with_capacity(256);
        messages::push_ok_lines(
            &mut ok_lines,
            &OkLines {
                contact: Contact {
                    user,
                    host: advertised,
                    port: req.local.port(),
                    tcp: req.transport == Transport::Tcp,
                },
                record_route: &req.record_route,
                session: session.as_ref().map(|t| t.expires),
                require_timer: require_timer(session.as_ref(), req),
            },
        );
        let rtcp_mux = pending.as_ref().is_some_and(|n| n.rtcp_mux);
        let target = req.contact.unwrap_or(req.uri);
        let sdp_session = (cx.rng.next_u32() >> 1) as u64;
        let call = Box::new(Call {
            dialog: HashedKey::dialog(req.call_id, local_tag, req.from_tag),
            call_id_len: req.call_id.len(),
            user: req.uri_user.to_string(),
            their_from: req.from.to_string(),
            our_from: format!("{};tag={local_tag}", req.to),
            remote_target: target.to_string(),
            route_set: req.record_route.iter().map(|r| r.to_string()).collect(),
            natted: natted(req),
            route: None,
            remote_cseq: req.cseq,
            local_cseq: 0,
            transport: req.transport,
            local_sip: req.local,
            remote_sip: req.remote,
            advertised,
            state: CallState::AwaitingPort,
            invite_txn: id,
            invite_cseq: req.cseq,
            invite_head: Some(head),
            ok_lines,
            offer,
            port: 0,
            port_tries: 0,
            pending: pending.map(Box::new),
            sdp_session,
            sdp_version: sdp_session,
            ok_bytes: None,
            retransmit_at: None,
            retransmit_interval: cx.config.t1,
            ack_deadline: None,
            session: session.map(Box::new),
            peer_allows_update: allows(req, "UPDATE"),
            max_at: None,
            keepalive_at: None,
            created: now,
            started: None,
            outbound: None,
        });
        self.calls.insert(handle, call);
        self.index_call(handle);
        cx.stats.calls_total += 1;
        cx.stats.calls_active = self.calls.len();
        cx.io.out.event(Event::Invited { call: handle });
        if !self.ask_for_port(cx, handle, rtcp_mux) {
            self.fail_unanswered(cx, handle, 503, EndReason::Control);
        }
    }

    /// Give call `h` an RTP port: ask the runtime to bind one, or on the shared port (bound
    /// since start) go on at once. False when no port is free.
    pub(super) fn ask_for_port(&mut self, cx: &mut Cx<'_>, h: CallHandle, rtcp_mux: bool) -> bool {
        let Some(port) = cx.ports.allocate(h, rtcp_mux, cx.io.out) else {
            return false;
        };
        if let Some(c) = self.calls.get_mut(&h) {
            c.port = port;
            c.port_tries += 1;
        }
        if cx.ports.shared() == Some(port) {
            self.port_ready(cx, h);
        }
        true
    }

    /// The runtime's answer to a port bind: answer the INVITE, or try another port (at most
    /// eight), or give up with 503.
    pub fn on_port_bound(&mut self, cx: &mut Cx<'_>, port: u16, ok: bool) {
        let Some(h) = cx.ports.owner(port) else {
            return;
        };
        let Some(call) = self.calls.get(&h) else {
            return;
        };
        if call.state != CallState::AwaitingPort || call.port != port {
            return;
        }
        if !ok {
            cx.ports.refuse(port);
            let mux = call.pending.as_ref().is_some_and(|n| n.rtcp_mux);
            if call.port_tries >= 8 || !self.ask_for_port(cx, h, mux) {
                self.fail_unanswered(cx, h, 503, EndReason::Control);
            }
            return;
        }
        self.port_ready(cx, h);
    }

    /// Call `h` has its RTP port: answer the INVITE (or send ours, for a call we place).
    fn port_ready(&mut self, cx: &mut Cx<'_>, h: CallHandle) {
        if self.calls.get(&h).is_some_and(|c| c.outbound.is_some()) {
            return self.send_invite(cx, h);
        }
        if cx.config.send_ringing {
            self.respond_to_invite(cx, h, 180);
        }
        self.answer_invite(cx, h);
    }

    /// A response without a body to the INVITE being answered (180, 487, 503).
    pub(super) fn respond_to_invite(&mut self, cx: &mut Cx<'_>, h: CallHandle, code: u16) {
        let Some(call) = self.calls.get(&h) else {
            return;
        };
        let Some(head) = &call.invite_head else {
            return;
        };
        let mut out = std::mem::take(&mut self.scratch);
        head.start(&mut out, code, call.local_tag()).finish(None);
        cx.txns
            .respond(&mut cx.io, call.invite_txn, Arc::from(&out[..]), code);
        self.scratch = out;
    }

    /// The 2xx to the INVITE being answered, with our SDP; retransmitted until the ACK.
    pub(super) fn answer_invite(&mut self, cx: &mut Cx<'_>, h: CallHandle) {
        let now = cx.io.now;
        let t1 = cx.config.t1;
        let Some(local) = next_local_media(cx.config, self.calls.get_mut(&h)) else {
            return;
        };
        let Some(call) = self.calls.get(&h) else {
            return;
        };
        let Some(head) = &call.invite_head else {
            return;
        };
        let mut out = std::mem::take(&mut self.scratch);
        let mut w = head.start(&mut out, 200, call.local_tag());
        w.header_lines(&call.ok_lines);
        // Written straight into the message: no buffer of its own, no copy.
        w.body_with(SDP_TYPE, |out| write_local_sdp(cx, call, &local, out));
        // One copy, shared by the transaction, the call (retransmission) and the queue.
        let bytes: Arc<[u8]> = Arc::from(&out[..]);
        self.scratch = out;
        cx.txns
            .respond(&mut cx.io, call.invite_txn, bytes.clone(), 200);
        let Some(call) = self.calls.get_mut(&h) else {
            return;
        };
        call.state = CallState::Answering;
        call.ok_bytes = Some(bytes);
        call.retransmit_interval = t1;
        call.retransmit_at = Some(now + t1);
        // RFC 3261 §13.3.1.4 waits 64·T1 for the ACK. A new call waits `ack_wait` at most:
        // an INVITE nobody ACKs holds an RTP port and a call slot, and a flood of them would
        // lock real callers out for 32 s each.
        let wait = match call.started {
            None => (64 * t1).min(cx.config.ack_wait),
            Some(_) => 64 * t1,
        };
        call.ack_deadline = Some(now + wait);
        let timers = &mut cx.io.timers;
        timers.push_after(now, t1, Timer::Call(h, CallTimer::Retransmit2xx));
        timers.push_after(now, wait, Timer::Call(h, CallTimer::AckTimeout));
        // A hold offer stops media at once; anything that sends waits for the ACK.
        if call.pending.as_ref().is_some_and(|n| !n.sends()) {
            cx.media.stop(h);
        }
    }

    /// Our SDP for the UPDATE being answered: the answer to its offer.
    pub(super) fn local_sdp(&mut self, cx: &Cx<'_>, h: CallHandle) -> Vec<u8> {
        let Some(local) = next_local_media(cx.config, self.calls.get_mut(&h)) else {
            return Vec::new();
        };
        let mut body = Vec::with_capacity(400);
        if let Some(call) = self.calls.get(&h) {
            write_local_sdp(cx, call, &local, &mut body);
        }
        body
    }

    /// Final error on an INVITE we had accepted but not answered, and forget the call.
    pub(super) fn fail_unanswered(
        &mut self,
        cx: &mut Cx<'_>,
        h: CallHandle,
        code: u16,
        reason: EndReason,
    ) {
        self.respond_to_invite(cx, h, code);
        self.forget(cx, h, reason);
    }
}

/// Our media endpoint for the call's next description: its version counted up (RFC 3264 §8).
pub(super) fn next_local_media(
    config: &ServerConfig,
    call: Option<&mut Call>,
) -> Option<LocalMedia<'static>> {
    let call = call?;
    call.sdp_version += 1;
    let configured = config
        .advertised_for(call.transport, call.local_sip)
        .is_some();
    let addr = if config.rtp_ip.is_unspecified() || configured {
        call.advertised
    } else {
        config.rtp_ip
    };
    Some(LocalMedia {
        addr,
        rtp_port: call.port,
        session_id: call.sdp_session,
        session_version: call.sdp_version,
        username: "onhold",
    })
}

/// Our SDP for the offer being answered, or our offer when there was none, appended to `out`,
/// with what the call's class adds.
pub(super) fn write_local_sdp(cx: &Cx<'_>, call: &Call, local: &LocalMedia<'_>, out: &mut Vec<u8>) {
    let extras = super::sdp_extras(cx.config, cx.library, &call.user);
    match (&call.offer, &call.pending) {
        (Some(layout), Some(neg)) => layout.write_with(neg, local, extras, out),
        _ => {
            let prefs = prefs(cx, &call.user);
            let ptime = prefs.default_ptime_ms;
            sdp::write_offer_with(local, &prefs, ptime, Direction::SendOnly, extras, out)
        }
    }
}

/// Where our SDP and Contact say we are: configured (for the listener the request arrived on,
/// else globally), else the address the caller used to reach us (the Request-URI host, when it is
/// an IP literal), else the local address.
fn advertised_ip(config: &ServerConfig, req: &Request<'_>) -> IpAddr {
    if let Some(ip) = config.advertised_for(req.transport, req.local) {
        return ip;
    }
    let host = req.uri_host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = ascii::parse_ip(host) {
        if !ip.is_unspecified() {
            return ip;
        }
    }
    if !req.local.ip().is_unspecified() {
        return req.local.ip();
    }
    if req.remote.ip().is_loopback() {
        return req.remote.ip();
    }
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

/// Whether the Via's host is not the address the request came from.
fn natted(req: &Request<'_>) -> bool {
    let via_host = ascii::unbracketed(req.top_via.host);
    ascii::parse_ip(via_host).map_or(true, |ip| ip != req.remote.ip())
}
