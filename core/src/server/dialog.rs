//! Inside a dialog: the ACK that starts media, re-INVITE and UPDATE (hold, unhold, new
//! address, session refresh), BYE and CANCEL.

use super::build::{self, ALLOW, SUPPORTED};
use super::calls::*;
use super::incoming::Request;
use super::invite::*;
use super::state::{CallTimer, Server, Timer};
use super::txn::{ServerState, TxnKey};
use super::{CallHandle, EndReason, Event};
use crate::rtp::Playout;
use crate::sdp::{self};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) fn on_ack(s: &mut Server, now: Instant, req: &Request<'_>) {
    let Some(handle) = find_dialog(s, req) else {
        s.stats.dropped += 1;
        return;
    };
    // Our codec preferences matter only for a late offer's answer (no copy of them otherwise).
    let late_offer = s.calls.get(&handle).is_some_and(|c| c.offer.is_none());
    let prefs = late_offer.then(|| prefs(s));
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
    call.invite_extra_at = 0;
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
        match answer.zip(prefs).map(|(a, p)| sdp::accept_answer(&a, &p)) {
            Some(Ok(neg)) => call.pending = Some(neg),
            _ => {
                return hangup(s, now, handle, EndReason::Control);
            }
        }
    }
    call.offer = None;
    apply_pending(s, now, handle);
}

/// Media agreed in a 2xx takes effect: start, resume, hold or move the stream.
pub(crate) fn apply_pending(s: &mut Server, now: Instant, handle: CallHandle) {
    let max = s.config.max_call_duration;
    let rtcp_interval = s.config.rtcp_interval;
    let rtp_ip = s.config.rtp_ip;
    let (ssrc, seq, ts) = (s.rng_u32(), s.rng_u32() as u16, s.rng_u32());
    let jitter = s.rng.below(1000);
    let grid_start = s.grid_start(now);
    let Some(call) = s.calls.get_mut(&handle) else {
        return;
    };
    let Some(neg) = call.pending.take() else {
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
        p.begin(grid_start);
        schedule = Some(p.due());
    } else if !send {
        p.stop();
    }
    let ev = if first {
        call.started = Some(now);
        Event::CallStarted {
            call: handle,
            call_id: call.call_id().to_string(),
            user: call.user().to_string(),
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
    // At most three timers, armed in this order (the first two as delays from `now`).
    let (mut max_in, mut rtcp_in) = (None, None);
    if first {
        if let Some(max) = max {
            call.max_at = Some(now + max);
            max_in = Some(max);
        }
        // RFC 3550 §6.3.1: randomise the report interval over [0.5, 1.5] of the nominal.
        let delay = rtcp_interval.mul_f64(0.5 + jitter as f64 / 1000.0);
        call.rtcp_at = Some(now + delay);
        rtcp_in = Some(delay);
    }
    let session = arm_session_timer(call, now);
    if let Some(due) = schedule {
        s.pacing.push(due, handle);
    }
    if let Some(max) = max_in {
        let key = Timer::Call(handle, CallTimer::MaxDuration);
        s.timers.push_after(now, max, key);
    }
    if let Some(rtcp) = rtcp_in {
        let key = Timer::Call(handle, CallTimer::Rtcp);
        s.timers.push_random_after(now, rtcp, key);
    }
    if let Some((at, what)) = session {
        s.timers.push(at, Timer::Call(handle, what));
    }
    s.emit(ev);
}

pub(crate) fn arm_session_timer(call: &mut Call, now: Instant) -> Option<(Instant, CallTimer)> {
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

pub(crate) fn stop_media(s: &mut Server, handle: CallHandle) {
    if let Some(p) = s.calls.get_mut(&handle).and_then(|c| c.playout.as_mut()) {
        p.stop();
    }
}

/// re-INVITE or UPDATE inside a dialog: hold, unhold, new address, session refresh.
pub(crate) fn on_offer_in_dialog(s: &mut Server, now: Instant, req: &Request<'_>, key: TxnKey) {
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
    // RFC 3261 §12.2.2: the request takes its CSeq even if it is refused below.
    if let Some(c) = s.calls.get_mut(&handle) {
        c.remote_cseq = req.cseq;
    }
    let Some((
        key,
        OfferCheck {
            session,
            offer,
            neg,
        },
    )) = check_offer(s, now, req, key)
    else {
        return; // refused with a final response
    };
    let id = s.new_server_txn(req, key, Some(handle));
    let ua = s.config.user_agent.clone();
    let Some(call) = s.calls.get_mut(&handle) else {
        return;
    };
    call.remote_cseq = req.cseq;
    if let Some(c) = req.contact {
        call.set_remote_target(c); // target refresh (RFC 3261 §12.2.2)
    }
    if let Some(t) = session {
        call.session = Some(t);
    }
    let mut head = Vec::with_capacity(512);
    build::start_response(&mut head, req, 200, None, None, &ua).finish(None);
    let contact = format!(
        "<sip:{}@{}:{}>",
        if call.user().is_empty() {
            "onhold"
        } else {
            call.user()
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
        let mut block = strip_length(head);
        call.invite_extra_at = block.len();
        block.extend_from_slice(&extra);
        call.invite_head = block;
        call.offer = offer;
        call.pending = neg;
        if !has_offer {
            call.pending = None;
        }
        answer_invite(s, now, handle);
    } else {
        // UPDATE: the answer is in our 200 and takes effect now (RFC 3311 §5.2).
        call.offer = offer;
        call.pending = neg;
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
        let mut w = build::response(&mut bytes, 200, "OK");
        w.header_lines(&strip_status_and_length(head));
        w.header_lines(&extra);
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

pub(crate) fn on_bye(s: &mut Server, now: Instant, req: &Request<'_>, key: TxnKey) {
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
            send_on_invite(s, now, handle, 487, false, None);
        }
    }
    forget(s, now, handle, EndReason::RemoteBye);
}

pub(crate) fn on_cancel(s: &mut Server, now: Instant, req: &Request<'_>, cancel_key: TxnKey) {
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
