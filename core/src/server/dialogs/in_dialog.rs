//! Inside a dialog: the ACK that starts media, re-INVITE and UPDATE (hold, unhold, new
//! address, session refresh), BYE, and CANCEL of an INVITE not yet answered.

use std::sync::Arc;

use super::super::media::StreamSeed;
use super::super::messages::{self, OkLines, ResponseHead};
use super::super::policy;
use super::super::request::Request;
use super::super::transactions::{MergeKey, ServerState, TxnKey};
use super::super::{CallHandle, CallTimer, Cx, EndReason, Event, Timer};
use super::session::{allows, require_timer};
use super::{arm_session_timer, check_offer, prefs, Call, CallState, Dialogs, OfferCheck};
use crate::sdp;

impl Dialogs {
    /// The ACK for our 2xx (RFC 3261 §13.3.1.4): media agreed in it starts now. After a late
    /// offer, the ACK carries the answer to ours (§13.2.1).
    pub fn on_ack(&mut self, cx: &mut Cx<'_>, req: &Request<'_>) {
        let Some(h) = self.find(cx, req) else {
            cx.stats.dropped += 1;
            return;
        };
        let Some(call) = self.calls.get_mut(&h) else {
            return;
        };
        if call.state != CallState::Answering || req.cseq != call.invite_cseq {
            return; // a retransmitted ACK, or one for an older INVITE
        }
        call.state = CallState::Confirmed;
        // What answering needed is not needed again until the next re-INVITE: a confirmed call
        // keeps only its dialog identity and media state.
        call.invite_head = None;
        call.ok_lines = Vec::new();
        call.ok_bytes = None;
        call.retransmit_at = None;
        call.ack_deadline = None;
        if call.offer.is_none() {
            let answer = if req.body.is_empty() {
                None
            } else {
                sdp::parse(req.body).ok()
            };
            let prefs = prefs(cx, &call.user);
            match answer.map(|a| sdp::accept_answer(&a, &prefs)) {
                Some(Ok(mut neg)) => {
                    let source = req.remote.ip();
                    if policy::media_address_refusal(neg.remote_rtp.ip(), source).is_some() {
                        cx.stats.media_refused += 1;
                        return self.hangup(cx, h, EndReason::MediaRefused);
                    }
                    policy::aim(&mut neg, cx.config.media_to, source);
                    call.pending = Some(Box::new(neg));
                }
                _ => return self.hangup(cx, h, EndReason::MediaRefused),
            }
        }
        call.offer = None;
        self.apply_pending(cx, h);
    }

    /// Media agreed in a 2xx takes effect: start, resume, hold or move the stream; the first
    /// time, the call has started.
    pub(super) fn apply_pending(&mut self, cx: &mut Cx<'_>, h: CallHandle) {
        let now = cx.io.now;
        let seed = StreamSeed::draw(cx.rng);
        let Some(call) = self.calls.get_mut(&h) else {
            return;
        };
        let Some(neg) = call.pending.take() else {
            return;
        };
        let library = cx.library;
        let first = cx.media.apply(now, h, call.port, *neg, &seed, || {
            library.class_for(&call.user)
        });
        let ev = if first {
            call.started = Some(now);
            Event::CallStarted {
                call: h,
                call_id: call.call_id().to_string(),
                user: call.user.clone(),
                remote_sip: call.remote_sip,
                remote_rtp: neg.remote_rtp,
                local_rtp: cx.media.local_rtp(call.port),
                codec: neg.codec,
                payload_type: neg.payload_type,
                ptime_ms: neg.ptime_ms,
                direction: neg.direction,
            }
        } else {
            Event::MediaChanged {
                call: h,
                remote_rtp: neg.remote_rtp,
                direction: neg.direction,
            }
        };
        if first {
            let max = call.outbound.as_ref().and_then(|o| o.max_duration);
            if let Some(max) = max.or(cx.config.max_call_duration) {
                call.max_at = Some(now + max);
                let key = Timer::Call(h, CallTimer::MaxDuration);
                cx.io.timers.push_after(now, max, key);
            }
            cx.media.arm_rtcp(&mut cx.io, h, &seed);
            arm_keepalive(cx, h, call);
        }
        let latch = policy::latch_from(
            cx.config.rtp_latching,
            neg.remote_rtp.ip(),
            call.remote_sip.ip(),
            call.natted,
        );
        cx.media.latch_from(h, latch);
        arm_session_timer(cx, h, call);
        cx.io.out.event(ev);
    }

    /// An answer to our keep-alive OPTIONS: any response but 408 or 481 says the caller is
    /// there (a 405 or 501 too: RFC 3261 §11 lets it refuse OPTIONS inside a dialog); those two
    /// and no answer at all (a 408 of our own) end the call.
    pub(super) fn on_keepalive(&mut self, cx: &mut Cx<'_>, h: CallHandle, code: u16) {
        match code {
            408 | 481 => self.hangup(cx, h, EndReason::KeepAliveFailed),
            _ => {
                if let Some(call) = self.calls.get_mut(&h) {
                    arm_keepalive(cx, h, call);
                }
            }
        }
    }

    /// re-INVITE or UPDATE inside a dialog: hold, unhold, new address, session refresh.
    pub fn on_offer_in_dialog(&mut self, cx: &mut Cx<'_>, req: &Request<'_>, key: TxnKey) {
        let Some(h) = self.find(cx, req) else {
            return cx.respond_final(req, key, 481, &[]);
        };
        let Some(call) = self.calls.get_mut(&h) else {
            return cx.respond_final(req, key, 481, &[]);
        };
        if req.cseq <= call.remote_cseq {
            return cx.respond_final(req, key, 500, &[]);
        }
        let invite = req.method == "INVITE";
        if call.state != CallState::Confirmed && invite {
            // RFC 3261 §14.2: an INVITE while another is unfinished gets 500 with Retry-After.
            return cx.respond_final(req, key, 500, &[("Retry-After", "1")]);
        }
        let offers = invite || !req.body.is_empty();
        if offers && call.session.as_ref().is_some_and(|t| t.offering()) {
            // Glare: our re-INVITE's offer is outstanding (RFC 3261 §14.2, RFC 3311 §5.2).
            call.remote_cseq = req.cseq;
            return cx.respond_final(req, key, 491, &[]);
        }
        // RFC 3261 §12.2.2: the request takes its CSeq even if it is refused below.
        call.remote_cseq = req.cseq;
        let Some((
            key,
            OfferCheck {
                session,
                offer,
                neg,
            },
        )) = check_offer(cx, req, key)
        else {
            return; // refused with a final response
        };
        let Some(call) = self.calls.get_mut(&h) else {
            return;
        };
        // Only the dialog's peer may move the media (with `in_dialog_from = "any"` others may
        // refresh or hold the call, not aim its stream elsewhere).
        let current = cx.media.negotiated(h).map(|n| n.remote_rtp);
        let moves = match (&neg, current) {
            (Some(n), Some(now)) => n.remote_rtp != now && !n.remote_rtp.ip().is_unspecified(),
            _ => false,
        };
        if moves && !call.is_peer(req.remote.ip()) {
            cx.stats.media_refused += 1;
            let warn = "301 onhold \"only the caller may move the media\"";
            return cx.respond_final(req, key, 488, &[("Warning", warn)]);
        }
        if moves {
            cx.stats.media_moved += 1;
        }
        let id = cx.txns.open(req, key, MergeKey::of(req), Some(h));
        let Some(call) = self.calls.get_mut(&h) else {
            return;
        };
        if let Some(c) = req.contact.filter(|c| *c != call.remote_target) {
            call.remote_target = c.to_string(); // target refresh (RFC 3261 §12.2.2)
            call.route = None;
        }
        match (&mut call.session, session) {
            (Some(ours), Some(theirs)) => ours.refreshed_by(theirs),
            (none, Some(theirs)) => *none = Some(Box::new(theirs)),
            _ => {}
        }
        if !req.allow.is_empty() {
            call.peer_allows_update = allows(req, "UPDATE");
        }
        let head = ResponseHead::new(req, &cx.config.user_agent);
        let mut ok_lines = Vec::with_capacity(256);
        messages::push_ok_lines(
            &mut ok_lines,
            &OkLines {
                contact: call.contact(),
                record_route: &[],
                session: call.session.as_ref().map(|t| t.expires),
                require_timer: require_timer(call.session.as_deref(), req),
            },
        );
        let has_offer = offer.is_some();
        call.offer = offer;
        call.pending = if has_offer { neg.map(Box::new) } else { None };
        if invite {
            call.invite_txn = id;
            call.invite_cseq = req.cseq;
            call.invite_head = Some(head);
            call.ok_lines = ok_lines;
            return self.answer_invite(cx, h);
        }
        // UPDATE: the answer is in our 200 and takes effect now (RFC 3311 §5.2).
        let body = has_offer.then(|| self.local_sdp(cx, h));
        if let Some(call) = self.calls.get_mut(&h) {
            call.offer = None;
        }
        let mut bytes = Vec::with_capacity(800);
        let mut w = head.start(&mut bytes, 200, "");
        w.header_lines(&ok_lines);
        w.finish(body.as_deref().map(|b| ("application/sdp", b)));
        cx.txns.respond(&mut cx.io, id, Arc::from(bytes), 200);
        if has_offer {
            self.apply_pending(cx, h);
        } else if let Some(call) = self.calls.get_mut(&h) {
            arm_session_timer(cx, h, call);
        }
    }

    pub fn on_bye(&mut self, cx: &mut Cx<'_>, req: &Request<'_>, key: TxnKey) {
        let Some(h) = self.find(cx, req) else {
            return cx.respond_final(req, key, 481, &[]);
        };
        if !self.in_order(cx, req, &key, h) {
            return;
        }
        let id = cx.txns.open(req, key, MergeKey::of(req), Some(h));
        cx.reply(id, req, 200, None, &[]);
        // RFC 3261 §15.1.2: an INVITE still pending when BYE arrives gets 487.
        let pending_invite = self.calls.get(&h).and_then(|c| cx.txns.state(c.invite_txn))
            == Some(ServerState::Proceeding);
        if pending_invite {
            self.respond_to_invite(cx, h, 487);
        }
        self.forget(cx, h, EndReason::RemoteBye);
    }

    /// CANCEL (RFC 3261 §9.2): 200 to it, and 487 to the INVITE if it is not answered yet.
    /// Its retransmissions were absorbed by its transaction before this.
    pub fn on_cancel(&mut self, cx: &mut Cx<'_>, req: &Request<'_>, cancel_key: TxnKey) {
        let invite_key = cancel_key.with_method("INVITE");
        let Some((call, state)) = cx
            .txns
            .find(&invite_key)
            .and_then(|id| cx.txns.call_and_state(id))
        else {
            return cx.respond_final(req, cancel_key, 481, &[]);
        };
        let tag = call
            .and_then(|h| self.calls.get(&h))
            .map(|c| c.local_tag().to_string());
        let id = cx.txns.open(req, cancel_key, None, None);
        cx.reply(id, req, 200, tag.as_deref(), &[]);
        if state == ServerState::Proceeding {
            if let Some(h) = call {
                self.fail_unanswered(cx, h, 487, EndReason::Cancelled);
            }
        }
    }
}

/// Arm the next keep-alive OPTIONS of `call`, if they are on.
fn arm_keepalive(cx: &mut Cx<'_>, h: CallHandle, call: &mut Call) {
    if let Some(every) = cx.config.keepalive_interval {
        call.keepalive_at = Some(cx.io.now + every);
        cx.io
            .timers
            .push_after(cx.io.now, every, Timer::Call(h, CallTimer::KeepAlive));
    }
}
