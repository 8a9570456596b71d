//! Calls we place (RFC 3261 §13.2): an INVITE with our offer, digest credentials when the
//! callee or a proxy challenges (the `[[register]]` account for the callee's host, RFC 3261
//! §22.2), the 2xx acknowledged (§13.2.2.4) and its answer starting the music, any other final
//! response ending the call with its code.
//!
//! Hanging up before the answer sends CANCEL once a provisional response has come (§9.1: not
//! before); the INVITE's 487 then ends the call. A 2xx that crosses the CANCEL is acknowledged
//! and the call ended with BYE at once. Once answered, the call is a dialog like any other: the
//! callee's BYE, re-INVITE and UPDATE, our keep-alives, session refreshes and BYE work the same
//! way, with our From and their To in place of their From and our To.

use std::sync::Arc;
use std::time::Duration;

use super::super::digest::{self, Challenge};
use super::super::messages::{self, InDialogRequest};
use super::super::outbox::Path;
use super::super::register_client::Registrations;
use super::super::request::Response;
use super::super::transactions::{ClientOutcome, ClientPurpose, TxnId};
use super::super::{
    CallHandle, Cx, EndReason, Event, Originate, OriginateError, ServerConfig, Source,
};
use super::session::{lists_method, session_timer_answer};
use super::{next_local_media, write_local_sdp, Call, CallState, Dialogs, LOCAL_TAG_LEN};
use crate::ascii;
use crate::hash_index::HashedKey;
use crate::sdp;
use crate::sip::{self, Scheme, SplitTop, Uri};

/// A call we placed has no server transaction for its INVITE: its `invite_txn` is this, which
/// no transaction ever gets.
pub(super) const NO_TXN: TxnId = TxnId::MAX;

/// Challenges answered for one call: a first one, and a second when the first answer's nonce
/// was stale or a proxy and the callee both ask. More is a refusal.
const MAX_AUTH_TRIES: u32 = 2;

/// What a call we placed keeps besides its dialog, until it is answered and after.
#[derive(Debug)]
pub(crate) struct Outbound {
    /// The INVITE's Request-URI.
    uri: String,
    /// Where the INVITE, its CANCEL and the ACK of a final error go.
    path: Path,
    /// The branch of the INVITE in progress.
    branch: String,
    /// Our offer: sent again unchanged with credentials.
    offer: Vec<u8>,
    /// The `[[register]]` account whose credentials answer a challenge.
    account: Option<usize>,
    /// The challenge being answered, and whether a proxy sent it (407).
    auth: Option<(Challenge, bool)>,
    nc: u32,
    auth_tries: u32,
    /// A provisional response came: a CANCEL may go (RFC 3261 §9.1).
    provisional: bool,
    /// Hung up before the answer: why, and whether the CANCEL went.
    ending: Option<EndReason>,
    cancel_sent: bool,
    /// The ACK of the 2xx, sent again for each retransmission of it (§13.2.2.4).
    ack: Option<(Arc<[u8]>, Path)>,
    pub max_duration: Option<Duration>,
    /// Played from the answer on, when it is not the class named by the call's user.
    pub source: Option<Source>,
}

impl Dialogs {
    /// Place a call: the RTP port first (`Command::BindRtp`), then the INVITE. The call is
    /// reported like an incoming one: `Invited` now, `CallStarted` at the answer, `CallEnded`.
    pub fn originate(
        &mut self,
        cx: &mut Cx<'_>,
        registrations: &Registrations,
        o: Originate,
    ) -> Result<CallHandle, OriginateError> {
        if cx.draining {
            return Err(OriginateError::Draining);
        }
        if self.calls.len() >= cx.config.max_calls {
            return Err(OriginateError::Full);
        }
        let uri = Uri::parse(&o.uri).map_err(|_| OriginateError::BadUri)?;
        if uri.scheme != Scheme::Sip || uri.host.is_empty() {
            return Err(OriginateError::BadUri);
        }
        let account = account_for(cx.config, uri.host_unbracketed());
        let proxy = account.and_then(|i| registrations.proxy_addr(&cx.config.registrations[i]));
        let path = Path {
            transport: o.transport,
            local: o.local,
            dest: proxy.unwrap_or(o.dest),
        };
        let advertised = cx
            .config
            .advertised_for(o.transport, o.local)
            .or(o.contact_ip.filter(|_| o.local.ip().is_unspecified()))
            .unwrap_or(o.local.ip());
        let mut tag_buf = [0; LOCAL_TAG_LEN];
        let local_tag = ascii::hex16(cx.rng.next_u64(), &mut tag_buf).to_string();
        let call_id = format!("{}{}@onhold", cx.rng.token(), cx.rng.token());
        let host = messages::host_str(advertised);
        let from_uri = match (&o.from, account) {
            (Some(f), _) if f.contains(':') => f.trim_matches(['<', '>']).to_string(),
            (Some(user), _) => format!("sip:{user}@{host}"),
            (None, Some(i)) => cx.config.registrations[i].aor.clone(),
            (None, None) => format!("sip:onhold@{host}"),
        };
        if Uri::parse(&from_uri).is_err() {
            return Err(OriginateError::BadUri);
        }
        let (user, source) = match o.source {
            Some(Source::Class(class)) => (class, None),
            other => (String::new(), other),
        };
        let now = cx.io.now;
        let sdp_session = (cx.rng.next_u32() >> 1) as u64;
        let handle = self.calls.vacant();
        let call = Box::new(Call {
            dialog: HashedKey::dialog(&call_id, &local_tag, ""),
            call_id_len: call_id.len(),
            user,
            their_from: format!("<{}>", uri.without_headers()),
            our_from: format!("<{from_uri}>;tag={local_tag}"),
            remote_target: uri.without_headers().to_string(),
            route_set: Vec::new(),
            natted: false,
            route: None,
            remote_cseq: 0,
            local_cseq: 1,
            transport: o.transport,
            local_sip: o.local,
            remote_sip: path.dest,
            advertised,
            state: CallState::AwaitingPort,
            invite_txn: NO_TXN,
            invite_cseq: 1,
            invite_head: None,
            ok_lines: Vec::new(),
            offer: None,
            port: 0,
            port_tries: 0,
            pending: None,
            sdp_session,
            sdp_version: sdp_session,
            ok_bytes: None,
            retransmit_at: None,
            retransmit_interval: cx.config.t1,
            ack_deadline: None,
            session: None,
            peer_allows_update: false,
            max_at: None,
            keepalive_at: None,
            created: now,
            started: None,
            outbound: Some(Box::new(Outbound {
                uri: uri.without_headers().to_string(),
                path,
                branch: String::new(),
                offer: Vec::new(),
                account,
                auth: None,
                nc: 0,
                auth_tries: 0,
                provisional: false,
                ending: None,
                cancel_sent: false,
                ack: None,
                max_duration: o.max_duration,
                source,
            })),
        });
        self.calls.insert(handle, call);
        if !self.ask_for_port(cx, handle, false) {
            self.calls.remove(&handle);
            return Err(OriginateError::Full);
        }
        cx.stats.calls_total += 1;
        cx.stats.calls_active = self.calls.len();
        cx.io.out.event(Event::Invited { call: handle });
        Ok(handle)
    }

    /// The port is bound: send the INVITE (again with credentials after a challenge, on a
    /// new branch and CSeq, RFC 3261 §22.2).
    pub(super) fn send_invite(&mut self, cx: &mut Cx<'_>, h: CallHandle) {
        let branch = format!("z9hG4bK{}", cx.rng.token());
        let cnonce = cx.rng.token();
        let Some(call) = self.calls.get_mut(&h) else {
            return;
        };
        if call.outbound.as_ref().is_some_and(|o| o.offer.is_empty()) {
            let Some(local) = next_local_media(cx.config, Some(call)) else {
                return;
            };
            let mut offer = Vec::with_capacity(400);
            write_local_sdp(cx, call, &local, &mut offer);
            if let Some(o) = call.outbound.as_mut() {
                o.offer = offer;
            }
        }
        let Some(o) = call.outbound.as_mut() else {
            return;
        };
        let credentials = match (&o.auth, o.account) {
            (Some((challenge, proxy)), Some(i)) => {
                let reg = &cx.config.registrations[i];
                o.nc += 1;
                let value = challenge.answer(
                    &reg.auth_user,
                    &reg.password,
                    "INVITE",
                    &o.uri,
                    o.nc,
                    &cnonce,
                );
                Some((digest::credentials_header(*proxy), value))
            }
            _ => None,
        };
        o.branch = branch;
        o.provisional = false;
        call.invite_cseq = call.local_cseq;
        call.state = CallState::Calling;
        let call = &*call;
        let Some(o) = call.outbound.as_deref() else {
            return;
        };
        let r = InDialogRequest {
            contact: Some(call.contact()),
            sdp: Some(&o.offer),
            credentials: credentials.as_ref().map(|(n, v)| (*n, v.as_str())),
            ..call.request(
                "INVITE",
                &o.uri,
                &o.branch,
                call.local_cseq,
                &cx.config.user_agent,
            )
        };
        let mut bytes = Vec::with_capacity(1200);
        messages::write_in_dialog_request(&mut bytes, &r);
        let purpose = ClientPurpose::Invite(h);
        let (branch, path) = (o.branch.clone(), o.path);
        cx.txns
            .send_request(&mut cx.io, "INVITE", purpose, branch, bytes, None, path);
    }

    /// A response to our INVITE: provisional, the 2xx (or a retransmission of it), or final.
    pub(super) fn on_placed_outcome(
        &mut self,
        cx: &mut Cx<'_>,
        h: CallHandle,
        outcome: ClientOutcome,
        response: Option<&Response<'_>>,
    ) {
        let Some(o) = self.calls.get_mut(&h).and_then(|c| c.outbound.as_mut()) else {
            return;
        };
        if outcome.repeat {
            if let Some((ack, path)) = &o.ack {
                cx.io.out.sip(*path, ack.clone());
            }
            return;
        }
        let code = outcome.code;
        match code {
            100..=199 => {
                o.provisional = true;
                if o.ending.is_some() && !o.cancel_sent {
                    self.send_cancel(cx, h);
                }
            }
            200..=299 => self.placed_answered(cx, h, response),
            _ => {
                let msg = response.and_then(|r| sip::parse(r.message).ok());
                if let Some(m) = &msg {
                    self.acknowledge_error(cx, h, m);
                }
                let challenge = msg.as_ref().and_then(|m| digest::best_challenge(m, code));
                let Some(o) = self.calls.get_mut(&h).and_then(|c| c.outbound.as_mut()) else {
                    return;
                };
                let answerable = matches!(code, 401 | 407)
                    && o.account.is_some()
                    && o.ending.is_none()
                    && o.auth_tries < MAX_AUTH_TRIES;
                match challenge.filter(|_| answerable) {
                    Some(c) => {
                        // The same nonce refused a second time is a wrong password, not a
                        // stale nonce: no retry.
                        let repeated = o
                            .auth
                            .as_ref()
                            .is_some_and(|(old, _)| old.nonce == c.nonce && !c.stale);
                        if repeated {
                            return self.forget(cx, h, EndReason::Rejected(code));
                        }
                        o.auth_tries += 1;
                        o.auth = Some((c, code == 407));
                        o.nc = 0;
                        if let Some(call) = self.calls.get_mut(&h) {
                            call.local_cseq += 1;
                        }
                        self.send_invite(cx, h);
                    }
                    None => {
                        let reason = o.ending.clone().unwrap_or(EndReason::Rejected(code));
                        if response.is_none() && o.provisional && !o.cancel_sent {
                            // Rang too long: the callee is told to stop ringing.
                            self.send_cancel(cx, h);
                        }
                        self.forget(cx, h, reason);
                    }
                }
            }
        }
    }

    /// The 2xx to our INVITE: the dialog exists (the callee's tag, Contact and Record-Route),
    /// the ACK goes, and the answer starts the music — or, after a hang-up that crossed it, a
    /// BYE ends the call.
    fn placed_answered(&mut self, cx: &mut Cx<'_>, h: CallHandle, response: Option<&Response<'_>>) {
        let now = cx.io.now;
        let msg = response.and_then(|r| sip::parse(r.message).ok());
        let Some(call) = self.calls.get_mut(&h) else {
            return;
        };
        let to = msg.as_ref().and_then(|m| m.header("To"));
        let tag = msg
            .as_ref()
            .and_then(|m| m.to().ok())
            .and_then(|t| t.tag())
            .unwrap_or("");
        if let Some(to) = to {
            call.their_from = to.trim().to_string();
        }
        if let Some(target) = msg.as_ref().and_then(contact_uri) {
            call.remote_target = target;
        }
        // RFC 3261 §12.1.2: the UAC's route set is the 2xx's Record-Route in reverse.
        call.route_set = msg
            .as_ref()
            .map(|m| {
                let mut rr: Vec<String> = m
                    .headers("Record-Route")
                    .flat_map(|v| SplitTop::new(v, b','))
                    .map(str::to_string)
                    .collect();
                rr.reverse();
                rr
            })
            .unwrap_or_default();
        call.route = None;
        call.peer_allows_update = msg
            .as_ref()
            .is_some_and(|m| lists_method(m.headers("Allow"), "UPDATE"));
        call.session = response
            .and_then(|r| session_timer_answer(r, now))
            .map(Box::new);
        let call_id = call.call_id().to_string();
        let local_tag = call.local_tag().to_string();
        call.dialog = HashedKey::dialog(&call_id, &local_tag, tag);
        call.state = CallState::Confirmed;
        self.index_call(h);
        self.send_ack(cx, h);
        let ending = self
            .calls
            .get(&h)
            .and_then(|c| c.outbound.as_ref())
            .and_then(|o| o.ending.clone());
        if let Some(reason) = ending {
            return self.hangup(cx, h, reason);
        }
        let answer = response
            .filter(|r| !r.body.is_empty())
            .and_then(|r| sdp::parse(r.body).ok());
        let remote = self.calls.get(&h).map(|c| c.remote_sip.ip());
        let user = self.calls.get(&h).map_or("", |c| c.user.as_str());
        let prefs = super::prefs(cx, user);
        let neg = answer.and_then(|a| sdp::accept_answer(&a, &prefs).ok());
        let (Some(mut neg), Some(source)) = (neg, remote) else {
            return self.hangup(cx, h, EndReason::MediaRefused);
        };
        if super::policy::media_address_refusal(neg.remote_rtp.ip(), source).is_some() {
            cx.stats.media_refused += 1;
            return self.hangup(cx, h, EndReason::MediaRefused);
        }
        super::policy::aim(&mut neg, cx.config.media_to, source);
        if let Some(call) = self.calls.get_mut(&h) {
            call.pending = Some(Box::new(neg));
        }
        self.apply_pending(cx, h);
        let source = self
            .calls
            .get_mut(&h)
            .and_then(|c| c.outbound.as_mut())
            .and_then(|o| o.source.take());
        if let Some(source) = source {
            let class = match &source {
                Source::Class(name) => cx.library.class_for(name),
                Source::Music { library, .. } => library.default_class(),
            };
            cx.media.switch(h, class, source);
        }
    }

    /// The ACK of the 2xx (RFC 3261 §13.2.2.4): a request of its own, on a new branch, with
    /// the INVITE's CSeq number, along the dialog's route; kept for the 2xx's retransmissions.
    fn send_ack(&mut self, cx: &mut Cx<'_>, h: CallHandle) {
        let branch = format!("z9hG4bK{}", cx.rng.token());
        let Some(call) = self.calls.get_mut(&h) else {
            return;
        };
        let route = super::route_call(&mut self.lookups, cx, call);
        // A next hop named by host is being looked up for the BYE to come; the ACK goes where
        // the INVITE went.
        let dest = match route.dest {
            super::Dest::Addr(a) => a,
            super::Dest::Lookup(_) => call.remote_sip,
        };
        let (ack, path) = call.write_2xx_ack(
            &route.plan,
            dest,
            &branch,
            call.invite_cseq,
            &cx.config.user_agent,
        );
        let ack: Arc<[u8]> = Arc::from(ack);
        cx.io.out.sip(path, ack.clone());
        call.route = Some(Box::new(route));
        if let Some(o) = call.outbound.as_mut() {
            o.ack = Some((ack, path));
        }
    }

    /// The ACK of a final error to our INVITE (RFC 3261 §17.1.1.3): the INVITE's branch and
    /// CSeq number, the response's To; the transaction sends it again for each retransmission.
    fn acknowledge_error(&mut self, cx: &mut Cx<'_>, h: CallHandle, m: &sip::Message<'_>) {
        let Some(call) = self.calls.get(&h) else {
            return;
        };
        let Some(o) = call.outbound.as_ref() else {
            return;
        };
        let to = m.header("To").map_or(call.their_from.as_str(), str::trim);
        let r = InDialogRequest {
            to,
            ..call.request(
                "ACK",
                &o.uri,
                &o.branch,
                call.invite_cseq,
                &cx.config.user_agent,
            )
        };
        let mut ack = Vec::with_capacity(500);
        messages::write_in_dialog_request(&mut ack, &r);
        cx.txns.acknowledge_error(&mut cx.io, &o.branch, ack);
    }

    /// Hang up a call we placed that is not answered yet: CANCEL once a provisional response
    /// came (else when one comes); the INVITE's final response then ends it. Before the
    /// INVITE went (waiting for the port) it just ends.
    pub(super) fn hangup_placed(&mut self, cx: &mut Cx<'_>, h: CallHandle, reason: EndReason) {
        let Some(call) = self.calls.get_mut(&h) else {
            return;
        };
        let Some(o) = call.outbound.as_mut() else {
            return;
        };
        if call.state == CallState::AwaitingPort {
            return self.forget(cx, h, reason);
        }
        if o.ending.is_some() {
            return;
        }
        o.ending = Some(reason);
        if o.provisional {
            self.send_cancel(cx, h);
        }
    }

    /// CANCEL our INVITE (RFC 3261 §9.1): its Request-URI, Call-ID, From, To, branch and CSeq
    /// number, to where it went.
    fn send_cancel(&mut self, cx: &mut Cx<'_>, h: CallHandle) {
        let Some(call) = self.calls.get_mut(&h) else {
            return;
        };
        let Some(o) = call.outbound.as_mut() else {
            return;
        };
        o.cancel_sent = true;
        let call = &*call;
        let Some(o) = call.outbound.as_deref() else {
            return;
        };
        let r = call.request(
            "CANCEL",
            &o.uri,
            &o.branch,
            call.invite_cseq,
            &cx.config.user_agent,
        );
        let mut bytes = Vec::with_capacity(500);
        messages::write_in_dialog_request(&mut bytes, &r);
        let purpose = ClientPurpose::Cancel(h);
        let (branch, path) = (o.branch.clone(), o.path);
        cx.txns
            .send_request(&mut cx.io, "CANCEL", purpose, branch, bytes, None, path);
    }
}

/// The `[[register]]` account for calls to `host`: the first whose registrar, else whose AOR,
/// names that host.
fn account_for(config: &ServerConfig, host: &str) -> Option<usize> {
    let host_of = |uri: &str| {
        Uri::parse(uri)
            .ok()
            .map(|u| u.host_unbracketed().to_string())
    };
    let regs = &config.registrations;
    let is = |h: Option<String>| h.is_some_and(|h| h.eq_ignore_ascii_case(host));
    regs.iter()
        .position(|r| is(host_of(&r.registrar)))
        .or_else(|| regs.iter().position(|r| is(host_of(&r.aor))))
}

/// The URI of a 2xx's Contact: the callee's remote target (RFC 3261 §12.1.2).
fn contact_uri(m: &sip::Message<'_>) -> Option<String> {
    m.contacts().find_map(|c| match c {
        Ok(sip::ContactValue::Addr(a)) => Some(a.uri.without_headers().to_string()),
        _ => None,
    })
}
