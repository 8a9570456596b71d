//! Session timers (RFC 4028): who refreshes, when, by which method, and what each outcome of a
//! refresh means.
//!
//! The caller's choice of refresher stands; when it made none, it refreshes if it supports the
//! extension and we do otherwise (§9). We refresh at half the interval (§10) by UPDATE when the
//! peer's Allow lists it (RFC 3311 §5.1), else by re-INVITE with our current media as the
//! offer. A refresh that times out or gets 408 or 481 ends the call (§10); 501 or 405 to an
//! UPDATE means: refresh by re-INVITE instead; 491 (glare) is retried after a random wait
//! (RFC 3261 §14.1); 422 is retried with the interval it asks for (§7.3); any other refusal
//! leaves the session to expire, and we send BYE shortly before it does (§10). When the peer
//! refreshes, we send BYE if no refresh came by then.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::super::messages::SessionExpires;
use super::super::outbox::Path;
use super::super::request::{Request, Response};
use super::super::transactions::{ClientOutcome, ClientPurpose, RefreshBy};
use super::super::{CallHandle, CallTimer, Cx, EndReason, ServerConfig, Timer};
use super::{next_local_media, Call, CallState, Dialogs, Extras};
use crate::sdp::{self, AnswerPrefs};

#[derive(Debug)]
pub(crate) struct SessionTimer {
    pub expires: SessionExpires,
    /// The armed refresh (we refresh) or expiry (they do) deadline.
    pub at: Option<Instant>,
    /// When the session was last refreshed, by either side: it expires an interval later.
    refreshed: Instant,
    /// Our refresh in progress, if any.
    pending: Option<RefreshBy>,
    /// Our last refresh by re-INVITE: its CSeq, and once its 2xx came, the ACK sent for it,
    /// sent again for each retransmission of the 2xx (RFC 3261 §13.2.2.4).
    invite_cseq: u32,
    ack: Option<(Arc<[u8]>, Path)>,
}

impl SessionTimer {
    fn new(interval: Duration, we_refresh: bool, now: Instant) -> SessionTimer {
        SessionTimer {
            expires: SessionExpires {
                interval,
                we_refresh,
            },
            at: None,
            refreshed: now,
            pending: None,
            invite_cseq: 0,
            ack: None,
        }
    }

    /// A request from the peer's side refreshed the session: take its timer, keep ours.
    pub fn refreshed_by(&mut self, theirs: SessionTimer) {
        self.expires = theirs.expires;
        self.refreshed = theirs.refreshed;
    }

    /// Our re-INVITE is in progress: an offer of ours is outstanding, and one of theirs now
    /// would be glare (RFC 3261 §14.2, RFC 3311 §5.2).
    pub fn offering(&self) -> bool {
        self.pending == Some(RefreshBy::Invite)
    }

    /// The CSeq of our last re-INVITE.
    pub fn invite_cseq(&self) -> u32 {
        self.invite_cseq
    }
}

/// The session timer a request asks for (RFC 4028 §9), or 422 when its interval is below our
/// Min-SE.
pub(super) fn session_timer_request(
    config: &ServerConfig,
    req: &Request<'_>,
    now: Instant,
) -> Result<Option<SessionTimer>, u16> {
    let Some((secs, refresher)) = req.session_expires else {
        return Ok(None);
    };
    if (secs as u64) < config.min_se.as_secs() {
        return Err(422);
    }
    // RFC 4028 §9: keep the refresher the UAC chose; if it chose none, let it refresh when it can.
    let we_refresh = match refresher {
        Some(r) => r.eq_ignore_ascii_case("uas"),
        None => !supports_timer(req),
    };
    let interval = Duration::from_secs(secs as u64);
    Ok(Some(SessionTimer::new(interval, we_refresh, now)))
}

/// The session timer the 2xx to an INVITE of ours sets (RFC 4028 §7.2): in a response to our
/// request `uac` is us, and without a refresher we refresh.
pub(super) fn session_timer_answer(r: &Response<'_>, now: Instant) -> Option<SessionTimer> {
    let (secs, refresher) = r.session_expires()?;
    let we_refresh = refresher.is_none_or(|r| r == "uac");
    let interval = Duration::from_secs(u64::from(secs));
    Some(SessionTimer::new(interval, we_refresh, now))
}

/// The request's Supported lists `timer` (RFC 4028).
pub(super) fn supports_timer(req: &Request<'_>) -> bool {
    req.supported
        .iter()
        .any(|t| t.eq_ignore_ascii_case("timer"))
}

/// Whether a 2xx carrying this session timer requires the extension (RFC 4028 §9): always when
/// the caller refreshes, and when it says it supports timers.
pub(super) fn require_timer(session: Option<&SessionTimer>, req: &Request<'_>) -> bool {
    session.is_some_and(|t| !t.expires.we_refresh || supports_timer(req))
}

/// The request's Allow lists `method`.
pub(super) fn allows(req: &Request<'_>, method: &str) -> bool {
    lists_method(req.allow.iter().copied(), method)
}

/// Allow header lines (each a comma-separated list) name `method`.
pub(super) fn lists_method<'a>(lines: impl Iterator<Item = &'a str>, method: &str) -> bool {
    lines
        .flat_map(|line| line.split(','))
        .any(|m| m.trim().eq_ignore_ascii_case(method))
}

/// The session was refreshed now: arm our refresh at half the interval when we refresh, else
/// the expiry (RFC 4028 §10: BYE at the expiry minus min(32 s, interval/3) if no refresh came).
pub(super) fn arm_session_timer(cx: &mut Cx<'_>, h: CallHandle, call: &mut Call) {
    let now = cx.io.now;
    let Some(t) = call.session.as_mut() else {
        return;
    };
    t.refreshed = now;
    t.pending = None;
    let interval = t.expires.interval;
    let (at, what) = if t.expires.we_refresh {
        (now + interval / 2, CallTimer::SessionRefresh)
    } else {
        (
            now + interval - expiry_margin(interval),
            CallTimer::SessionExpiry,
        )
    };
    t.at = Some(at);
    cx.io.timers.push(at, Timer::Call(h, what));
}

/// How long before a session expires we end it (RFC 4028 §10).
fn expiry_margin(interval: Duration) -> Duration {
    Duration::from_secs(32).min(interval / 3)
}

/// Arm `what` at `at` in place of whatever the session timer had armed.
fn rearm(cx: &mut Cx<'_>, h: CallHandle, t: &mut SessionTimer, at: Instant, what: CallTimer) {
    t.at = Some(at);
    cx.io.timers.push(at, Timer::Call(h, what));
}

impl Dialogs {
    /// Our refresh is due: by UPDATE when the peer allows it, else by re-INVITE offering the
    /// media in force. Not while an INVITE transaction is in progress either way (RFC 3261
    /// §14.1): then a second later.
    pub(super) fn refresh(&mut self, cx: &mut Cx<'_>, h: CallHandle) {
        let now = cx.io.now;
        let Some(call) = self.calls.get_mut(&h) else {
            return;
        };
        let Some(t) = call.session.as_mut() else {
            return;
        };
        if call.state != CallState::Confirmed || t.pending.is_some() {
            let retry = now + Duration::from_secs(1);
            return rearm(cx, h, t, retry, CallTimer::SessionRefresh);
        }
        let interval = t.expires.interval;
        if call.peer_allows_update {
            t.pending = Some(RefreshBy::Update);
            let extras = Extras {
                refresh: true,
                session: Some(interval),
                sdp: None,
                reason: None,
            };
            let purpose = ClientPurpose::Refresh(h, RefreshBy::Update);
            return self.send_request(cx, h, "UPDATE", purpose, extras);
        }
        // The offer: the media in force (its codec, ptime and direction), a new version.
        let Some(neg) = cx.media.negotiated(h).copied() else {
            return;
        };
        let Some(local) = next_local_media(cx.config, self.calls.get_mut(&h)) else {
            return;
        };
        let mut offer = Vec::with_capacity(400);
        let only = AnswerPrefs {
            codecs: vec![neg.codec],
            default_ptime_ms: neg.ptime_ms,
        };
        let user = self.calls.get(&h).map_or("", |c| c.user.as_str());
        let extras = super::sdp_extras(cx.config, cx.library, user);
        let direction = neg.direction;
        sdp::write_offer_with(&local, &only, neg.ptime_ms, direction, extras, &mut offer);
        let Some(call) = self.calls.get_mut(&h) else {
            return;
        };
        if let Some(t) = call.session.as_mut() {
            t.pending = Some(RefreshBy::Invite);
            t.invite_cseq = call.local_cseq + 1;
        }
        let extras = Extras {
            refresh: true,
            session: Some(interval),
            sdp: Some(&offer),
            reason: None,
        };
        let purpose = ClientPurpose::Refresh(h, RefreshBy::Invite);
        self.send_request(cx, h, "INVITE", purpose, extras);
    }

    /// The outcome of a request we sent in a dialog (see the module docs), with the response
    /// when one came.
    pub fn on_outcome(
        &mut self,
        cx: &mut Cx<'_>,
        outcome: ClientOutcome,
        response: Option<&Response<'_>>,
    ) {
        let (h, by) = match outcome.purpose {
            ClientPurpose::Refresh(h, by) => (h, by),
            ClientPurpose::Invite(h) => return self.on_placed_outcome(cx, h, outcome, response),
            ClientPurpose::KeepAlive(h) if !outcome.repeat => {
                return self.on_keepalive(cx, h, outcome.code)
            }
            _ => return,
        };
        let now = cx.io.now;
        let Some(call) = self.calls.get_mut(&h) else {
            return;
        };
        let Some(t) = call.session.as_mut() else {
            return;
        };
        if outcome.repeat {
            if let Some((ack, path)) = &t.ack {
                cx.io.out.sip(*path, ack.clone());
            }
            return;
        }
        match outcome.code {
            200..=299 => {
                if let Some((secs, refresher)) = response.and_then(|r| r.session_expires()) {
                    // In the answer to our request, `uac` is us (RFC 4028 §7.2).
                    t.expires = SessionExpires {
                        interval: Duration::from_secs(secs as u64),
                        we_refresh: refresher.is_none_or(|r| r == "uac"),
                    };
                }
                // Media the answer changes is applied, which re-arms the timer; else arm it here.
                let applied = by == RefreshBy::Invite && self.acknowledge(cx, h, response);
                if !applied {
                    if let Some(call) = self.calls.get_mut(&h) {
                        arm_session_timer(cx, h, call);
                    }
                }
            }
            408 | 481 => self.hangup(cx, h, EndReason::SessionExpired),
            405 | 501 if by == RefreshBy::Update => {
                // The peer does not take UPDATE after all: refresh by re-INVITE.
                call.peer_allows_update = false;
                t.pending = None;
                self.refresh(cx, h);
            }
            491 => {
                // RFC 3261 §14.1: we did not make the Call-ID, so 0–2 s, in 10 ms steps.
                t.pending = None;
                let wait = Duration::from_millis(10 * cx.rng.below(201));
                rearm(cx, h, t, now + wait, CallTimer::SessionRefresh);
            }
            422 => {
                t.pending = None;
                if let Some(min) = response.and_then(|r| r.min_se()) {
                    let min = Duration::from_secs(min as u64);
                    t.expires.interval = t.expires.interval.max(min);
                }
                self.refresh(cx, h);
            }
            _ => {
                // Not refreshed: the session runs out an interval after its last refresh.
                t.pending = None;
                let interval = t.expires.interval;
                let expiry = t.refreshed + interval - expiry_margin(interval);
                rearm(cx, h, t, expiry.max(now), CallTimer::SessionExpiry);
            }
        }
    }

    /// ACK the 2xx to our re-INVITE (RFC 3261 §13.2.2.4: a request of its own, on a new branch,
    /// with the INVITE's CSeq number), and take the answer in it (RFC 3264 §5): media moves,
    /// holds or resumes as it says. A 2xx without a usable answer leaves the media as it is.
    /// Whether an answer was applied.
    fn acknowledge(
        &mut self,
        cx: &mut Cx<'_>,
        h: CallHandle,
        response: Option<&Response<'_>>,
    ) -> bool {
        let branch = format!("z9hG4bK{}", cx.rng.token());
        let Some((ack, path)) = self.write_ack(cx, h, &branch) else {
            return false;
        };
        let ack: Arc<[u8]> = Arc::from(ack);
        cx.io.out.sip(path, ack.clone());
        if let Some(t) = self.calls.get_mut(&h).and_then(|c| c.session.as_mut()) {
            t.ack = Some((ack, path));
        }
        let answer = response
            .filter(|r| !r.body.is_empty())
            .and_then(|r| sdp::parse(r.body).ok());
        let Some(neg) = cx.media.negotiated(h).copied() else {
            return false;
        };
        let only = AnswerPrefs {
            codecs: vec![neg.codec],
            default_ptime_ms: neg.ptime_ms,
        };
        let Some(Ok(answered)) = answer.map(|a| sdp::accept_answer(&a, &only)) else {
            return false;
        };
        if let Some(call) = self.calls.get_mut(&h) {
            call.pending = Some(Box::new(answered));
        }
        self.apply_pending(cx, h);
        true
    }
}
