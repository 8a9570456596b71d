//! Dialogs (RFC 3261 §12–15, RFC 4028): every call's SIP state — its identity and route set,
//! CSeq numbers, the INVITE being answered, the offer/answer in progress and its session timer —
//! and the decisions made on them. A new call is answered in `invite.rs`; requests inside a
//! dialog are handled in `in_dialog.rs`; this file holds the calls, their timers and how a
//! call ends.
//!
//! A handler acts on the rest of the server only through [`Cx`]: transactions to answer and
//! send on, ports to hold, media to start and stop, the outbox.

mod in_dialog;
mod invite;
mod outbound;
mod route;
mod session;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use invite::{next_local_media, write_local_sdp};
use outbound::Outbound;
use route::{Hop, Plan};
pub(crate) use session::SessionTimer;
use session::{arm_session_timer, session_timer_request};

use super::limits::CallSources;
use super::messages::{self, Contact, InDialogRequest, ResponseHead, ACCEPT, SUPPORTED};
use super::outbox::Path;
use super::policy;
use super::request::Request;
use super::transactions::{ClientPurpose, TxnId, TxnKey};
use super::{
    CallHandle, CallInfo, CallTimer, ClassSdp, Command, Cx, EndReason, Event, InDialogFrom,
    MediaInfo, ServerConfig, Timer, Transport,
};
use crate::hash_index::{dialog_hash, HashIndex, HashedKey};
use crate::media::Library;
use crate::sdp::{self, AnswerLayout, AnswerPrefs, Negotiated, OfferError};
use crate::slab::CallSlab;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CallState {
    /// INVITE accepted, waiting for the runtime to bind the RTP port before the 200.
    AwaitingPort,
    /// A call we place: our INVITE is out, no final response yet.
    Calling,
    /// 2xx sent (initial or re-INVITE); retransmitting it until the ACK.
    Answering,
    Confirmed,
}

/// One dialog.
#[derive(Debug)]
pub(crate) struct Call {
    /// `Call-ID SP our tag SP their tag` (a Call-ID holds no space, our tag is
    /// [`LOCAL_TAG_LEN`] hex digits): the dialog's identity (RFC 3261 §12), and its key in
    /// [`Dialogs::index`] (inserted and removed as is, never rebuilt).
    pub dialog: HashedKey,
    pub call_id_len: usize,
    /// The INVITE's Request-URI user (its music class, our Contact's user).
    pub user: String,
    /// Their From as written: our To in requests we send.
    pub their_from: String,
    /// Their To with our tag: our From.
    pub our_from: String,
    /// Their Contact (else the Request-URI): the remote target our requests go to.
    pub remote_target: String,
    /// The Record-Route values of the request that made the dialog, in order (RFC 3261
    /// §12.1.1): fixed for the dialog's life.
    pub route_set: Vec<String>,
    /// The caller's Via named another address than its requests come from (a NAT).
    pub natted: bool,
    /// Where our in-dialog requests (BYE, UPDATE) go: worked out when we first send one (most
    /// calls end with the caller's BYE and never need it), again after a target refresh.
    pub route: Option<Box<Route>>,
    pub remote_cseq: u32,
    pub local_cseq: u32,
    pub transport: Transport,
    pub local_sip: SocketAddr,
    pub remote_sip: SocketAddr,
    pub advertised: IpAddr,
    pub state: CallState,
    /// The INVITE being (or last) answered: its transaction and CSeq, and until its ACK the
    /// response head every response to it copies and the lines only its 2xx carries.
    pub invite_txn: TxnId,
    pub invite_cseq: u32,
    pub invite_head: Option<ResponseHead>,
    pub ok_lines: Vec<u8>,
    /// What our answer repeats of the offer of the INVITE being answered (None: there was no
    /// offer; we offer in the 2xx, answer in the ACK).
    pub offer: Option<AnswerLayout>,
    /// Our RTP port (0 until one is allocated) and how many we tried.
    pub port: u16,
    pub port_tries: u32,
    /// Media agreed in a 2xx that takes effect at the ACK.
    pub pending: Option<Box<Negotiated>>,
    pub sdp_session: u64,
    pub sdp_version: u64,
    /// The 2xx, retransmitted on T1 doubling until the ACK (RFC 3261 §13.3.1.4).
    pub ok_bytes: Option<Arc<[u8]>>,
    pub retransmit_at: Option<Instant>,
    pub retransmit_interval: Duration,
    pub ack_deadline: Option<Instant>,
    /// Boxed, as `route` and `pending` are: most calls never have one, and a call's state is
    /// kept for as long as it is on hold.
    pub session: Option<Box<SessionTimer>>,
    /// The peer's Allow lists UPDATE (RFC 3311 §5.1): our refreshes may use it.
    pub peer_allows_update: bool,
    pub max_at: Option<Instant>,
    /// The armed keep-alive timer (`keepalive_interval`).
    pub keepalive_at: Option<Instant>,
    pub created: Instant,
    pub started: Option<Instant>,
    /// A call we placed: what it keeps besides the dialog (boxed: most calls come in).
    pub outbound: Option<Box<Outbound>>,
}

impl Call {
    pub fn call_id(&self) -> &str {
        self.dialog.text_at(..self.call_id_len)
    }

    pub fn local_tag(&self) -> &str {
        let at = self.call_id_len + 1;
        self.dialog.text_at(at..at + LOCAL_TAG_LEN)
    }

    /// Is `ip` this dialog's peer: where the INVITE came from, our next hop, or a proxy named by
    /// address in the route set?
    fn is_peer(&self, ip: IpAddr) -> bool {
        let next_hop = self.route.as_ref().map(|r| &r.dest);
        if ip == self.remote_sip.ip() || matches!(next_hop, Some(Dest::Addr(a)) if a.ip() == ip) {
            return true;
        }
        self.route_set
            .iter()
            .any(|r| matches!(route::hop_of_route(r), Some(Hop::Addr(a)) if a.ip() == ip))
    }

    /// A request of ours in this dialog, `method` to `target` on `branch`, with CSeq number
    /// `cseq`: our Via, our From and their To, and nothing else yet (the caller adds what the
    /// method needs).
    fn request<'a>(
        &'a self,
        method: &'static str,
        target: &'a str,
        branch: &'a str,
        cseq: u32,
        user_agent: &'a str,
    ) -> InDialogRequest<'a> {
        InDialogRequest {
            method,
            target,
            transport: self.transport,
            host: self.advertised,
            port: self.local_sip.port(),
            branch,
            from: &self.our_from,
            to: &self.their_from,
            call_id: self.call_id(),
            cseq,
            route_set: &[],
            user_agent,
            contact: None,
            session: None,
            sdp: None,
            reason: None,
            credentials: None,
        }
    }

    /// The ACK of a 2xx to one of our INVITEs (RFC 3261 §13.2.2.4): a request of its own on
    /// `branch`, with the INVITE's CSeq number `cseq`, along `plan`'s route to `dest`.
    fn write_2xx_ack(
        &self,
        plan: &Plan,
        dest: SocketAddr,
        branch: &str,
        cseq: u32,
        user_agent: &str,
    ) -> (Vec<u8>, Path) {
        let r = InDialogRequest {
            route_set: &plan.routes,
            ..self.request("ACK", &plan.request_uri, branch, cseq, user_agent)
        };
        let mut ack = Vec::with_capacity(500);
        messages::write_in_dialog_request(&mut ack, &r);
        let path = Path {
            transport: self.transport,
            local: self.local_sip,
            dest,
        };
        (ack, path)
    }

    /// Our Contact in this dialog.
    fn contact(&self) -> Contact<'_> {
        Contact {
            user: if self.user.is_empty() {
                "onhold"
            } else {
                &self.user
            },
            host: self.advertised,
            port: self.local_sip.port(),
            tcp: self.transport == Transport::Tcp,
        }
    }
}

/// The Request-URI, Route headers and next hop of our in-dialog requests, and where the next
/// hop is.
#[derive(Debug)]
pub(crate) struct Route {
    plan: Plan,
    dest: Dest,
}

/// Where our in-dialog requests go: an address, or a host name the runtime is looking up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Dest {
    Addr(SocketAddr),
    Lookup(Lookup),
}

/// A host name asked of the runtime (`Command::Resolve`), for one transport.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Lookup {
    host: String,
    port: Option<u16>,
    transport: Transport,
}

/// A request we wrote while its next hop's name was being looked up: sent when the answer
/// comes (to the caller's source address, `fallback`, if the name did not resolve).
#[derive(Debug)]
struct Held {
    lookup: Lookup,
    fallback: SocketAddr,
    local: SocketAddr,
    method: &'static str,
    purpose: ClientPurpose,
    branch: String,
    bytes: Vec<u8>,
    ack: Option<Vec<u8>>,
}

/// What a request we send adds to the dialog's usual headers.
#[derive(Default)]
struct Extras<'a> {
    /// A target refresh (UPDATE, re-INVITE): our Contact goes with it.
    refresh: bool,
    /// A session refresh: its Session-Expires interval.
    session: Option<Duration>,
    /// An offer: our SDP.
    sdp: Option<&'a [u8]>,
    /// A BYE's Reason header (RFC 3326).
    reason: Option<&'a str>,
}

/// The Reason of a BYE an operator asked for (RFC 3326; Q.850 cause 16, normal call clearing).
const OPERATOR_REASON: &str = "Q.850;cause=16;text=\"hung up by operator\"";

/// Our tags: 16 hex digits of 64 random bits.
pub(crate) const LOCAL_TAG_LEN: usize = 16;

/// Every call, and the index that finds a call by its dialog identity.
#[derive(Debug, Default)]
pub(crate) struct Dialogs {
    calls: CallSlab<Call>,
    /// `Call-ID SP our tag` (see [`Call::dialog`]) → call. A [`HashIndex`]: deterministic, and
    /// peer-chosen Call-IDs that collide fill one window and then a B-tree, never a long probe
    /// chain.
    index: HashIndex<CallHandle>,
    /// Names the runtime is looking up, and the requests waiting for them.
    lookups: BTreeSet<Lookup>,
    held: Vec<Held>,
    /// The calls each source holds and its INVITE rate.
    sources: CallSources,
    /// Reused for writing responses.
    scratch: Vec<u8>,
}

impl Dialogs {
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// Source addresses the INVITE-rate table holds.
    pub fn sources(&self) -> usize {
        self.sources.len()
    }

    pub fn handles(&self) -> Vec<CallHandle> {
        self.calls.keys().collect()
    }

    /// What the control API shows of a call; `media` as the media part reports it.
    pub fn info(&self, h: CallHandle, media: Option<MediaInfo>) -> Option<CallInfo> {
        let c = self.calls.get(&h)?;
        let (from, to) = match c.outbound {
            Some(_) => (&c.our_from, &c.their_from),
            None => (&c.their_from, &c.our_from),
        };
        Some(CallInfo {
            call: h,
            call_id: c.call_id().to_string(),
            from: from.clone(),
            to: to.clone(),
            user: c.user.clone(),
            transport: c.transport,
            local_sip: c.local_sip,
            remote_sip: c.remote_sip,
            created: c.created,
            started: c.started,
            media,
            outbound: c.outbound.is_some(),
        })
    }

    /// Index `h` by its dialog key, once the call holds it (the index checks hits against it).
    fn index_call(&mut self, h: CallHandle) {
        let calls = &self.calls;
        if let Some(c) = calls.get(&h) {
            self.index
                .insert(&c.dialog, h, |h| calls.get(&h).map(|c| &c.dialog));
        }
    }

    /// The Request-URI user a call was placed to.
    pub fn user(&self, call: CallHandle) -> Option<&str> {
        self.calls.get(&call).map(|c| c.user.as_str())
    }

    /// The dialog a request belongs to (RFC 3261 §12.2.2: its Call-ID, our tag in its To and
    /// the peer's in its From), when it comes from the dialog's peer (unless the settings
    /// take in-dialog requests from any address). A request from elsewhere is counted and
    /// belongs to no dialog: whoever has seen the tags cannot end, move or restart the call.
    pub fn find(&self, cx: &mut Cx<'_>, req: &Request<'_>) -> Option<CallHandle> {
        if req.to_tag.is_empty() {
            return None;
        }
        // Looked up by its parts (see `dialog_hash`): the key is not written out.
        let hash = dialog_hash(req.to_tag.as_bytes());
        let key = [
            req.call_id.as_bytes(),
            b" ",
            req.to_tag.as_bytes(),
            b" ",
            req.from_tag.as_bytes(),
        ];
        let h = self
            .index
            .get_parts(hash, &key, |h| self.calls.get(&h).map(|c| &c.dialog))?;
        let call = self.calls.get(&h)?;
        if cx.config.in_dialog_from == InDialogFrom::Peer && !call.is_peer(req.remote.ip()) {
            cx.stats.foreign_in_dialog += 1;
            return None;
        }
        Some(h)
    }

    /// RFC 3261 §12.2.2: a request with a CSeq lower than the last one in the dialog is out of
    /// order and gets 500; otherwise its CSeq is the dialog's. Returns false when it was
    /// refused.
    pub fn in_order(
        &mut self,
        cx: &mut Cx<'_>,
        req: &Request<'_>,
        key: &TxnKey,
        call: CallHandle,
    ) -> bool {
        let last = self.calls.get(&call).map_or(0, |c| c.remote_cseq);
        if req.cseq <= last {
            cx.respond_final(req, key.clone(), 500, &[]);
            return false;
        }
        if let Some(c) = self.calls.get_mut(&call) {
            c.remote_cseq = req.cseq;
        }
        true
    }

    // ----- timers and endings -----

    pub fn on_timer(&mut self, cx: &mut Cx<'_>, at: Instant, h: CallHandle, what: CallTimer) {
        let now = cx.io.now;
        let Some(call) = self.calls.get_mut(&h) else {
            return;
        };
        match what {
            CallTimer::Retransmit2xx => {
                if call.state != CallState::Answering || call.retransmit_at != Some(at) {
                    return;
                }
                // RFC 3261 §13.3.1.4: T1, 2·T1, … capped at T2 until the ACK.
                call.retransmit_interval = (call.retransmit_interval * 2).min(cx.config.t2);
                let next = now + call.retransmit_interval;
                if call.ack_deadline.is_some_and(|d| next < d) {
                    call.retransmit_at = Some(next);
                    cx.io
                        .timers
                        .push(next, Timer::Call(h, CallTimer::Retransmit2xx));
                } else {
                    call.retransmit_at = None;
                }
                let path = Path {
                    transport: call.transport,
                    local: call.local_sip,
                    dest: cx
                        .txns
                        .response_path(call.invite_txn)
                        .map_or(call.remote_sip, |p| p.dest),
                };
                if let Some(b) = call.ok_bytes.clone() {
                    cx.io.out.sip(path, b);
                }
            }
            CallTimer::AckTimeout => {
                if call.state == CallState::Answering && call.ack_deadline == Some(at) {
                    self.hangup(cx, h, EndReason::AckTimeout);
                }
            }
            CallTimer::SessionExpiry => {
                if call.session.as_ref().is_some_and(|t| t.at == Some(at)) {
                    self.hangup(cx, h, EndReason::SessionExpired);
                }
            }
            CallTimer::SessionRefresh => {
                if call.session.as_ref().is_some_and(|t| t.at == Some(at)) {
                    self.refresh(cx, h);
                }
            }
            CallTimer::MaxDuration => {
                if call.max_at == Some(at) {
                    self.hangup(cx, h, EndReason::MaxDuration);
                }
            }
            CallTimer::KeepAlive => {
                if call.keepalive_at == Some(at) {
                    call.keepalive_at = None;
                    let purpose = ClientPurpose::KeepAlive(h);
                    self.send_request(cx, h, "OPTIONS", purpose, Extras::default());
                }
            }
        }
    }

    /// End a call from our side: BYE once the dialog exists, a final error while it does not.
    pub fn hangup(&mut self, cx: &mut Cx<'_>, h: CallHandle, reason: EndReason) {
        let Some(call) = self.calls.get(&h) else {
            return;
        };
        match call.state {
            CallState::AwaitingPort | CallState::Calling if call.outbound.is_some() => {
                self.hangup_placed(cx, h, reason)
            }
            CallState::AwaitingPort | CallState::Calling => {
                self.fail_unanswered(cx, h, 503, reason)
            }
            CallState::Answering | CallState::Confirmed => {
                let bye = Extras {
                    reason: (reason == EndReason::Operator).then_some(OPERATOR_REASON),
                    ..Extras::default()
                };
                let confirmed = call.state == CallState::Confirmed;
                let purpose = ClientPurpose::Bye { confirmed };
                self.send_request(cx, h, "BYE", purpose, bye);
                self.forget(cx, h, reason);
            }
        }
    }

    /// Send a request inside the dialog (RFC 3261 §12.2.1.1): now, or once the next hop's name
    /// is resolved. `extras`: what a target or session refresh adds to it.
    fn send_request(
        &mut self,
        cx: &mut Cx<'_>,
        h: CallHandle,
        method: &'static str,
        purpose: ClientPurpose,
        extras: Extras<'_>,
    ) {
        let branch = format!("z9hG4bK{}", cx.rng.token());
        let Some(call) = self.calls.get_mut(&h) else {
            return;
        };
        if call.route.is_none() {
            call.route = Some(Box::new(route_call(&mut self.lookups, cx, call)));
        }
        let Some(Route { plan, dest }) = call.route.as_deref() else {
            return;
        };
        call.local_cseq += 1;
        let mut r = InDialogRequest {
            route_set: &plan.routes,
            contact: extras.refresh.then(|| call.contact()),
            session: extras.session,
            sdp: extras.sdp,
            reason: extras.reason,
            ..call.request(
                method,
                &plan.request_uri,
                &branch,
                call.local_cseq,
                &cx.config.user_agent,
            )
        };
        let mut bytes = Vec::with_capacity(600);
        messages::write_in_dialog_request(&mut bytes, &r);
        // An INVITE's transaction acknowledges a final error itself, on its own branch and
        // CSeq (RFC 3261 §17.1.1.3).
        let ack = (method == "INVITE").then(|| {
            r.method = "ACK";
            (r.contact, r.session, r.sdp, r.reason) = (None, None, None, None);
            let mut ack = Vec::with_capacity(400);
            messages::write_in_dialog_request(&mut ack, &r);
            ack
        });
        let dest = match dest {
            Dest::Addr(a) => *a,
            Dest::Lookup(lookup) => {
                self.held.push(Held {
                    lookup: lookup.clone(),
                    fallback: call.remote_sip,
                    local: call.local_sip,
                    method,
                    purpose,
                    branch,
                    bytes,
                    ack,
                });
                return;
            }
        };
        let path = Path {
            transport: call.transport,
            local: call.local_sip,
            dest,
        };
        cx.txns
            .send_request(&mut cx.io, method, purpose, branch, bytes, ack, path);
    }

    /// The ACK for the 2xx to our last re-INVITE (its CSeq number, a new `branch`), and where it
    /// goes: the next hop of the re-INVITE, known since the re-INVITE went out.
    fn write_ack(&self, cx: &Cx<'_>, h: CallHandle, branch: &str) -> Option<(Vec<u8>, Path)> {
        let call = self.calls.get(&h)?;
        let cseq = call.session.as_ref()?.invite_cseq();
        let Some(Route {
            plan,
            dest: Dest::Addr(dest),
        }) = call.route.as_deref()
        else {
            return None;
        };
        Some(call.write_2xx_ack(plan, *dest, branch, cseq, &cx.config.user_agent))
    }

    /// The runtime's answer to `Command::Resolve`: calls waiting for the name take its first
    /// address (or the caller's source address when there is none), and held requests go.
    pub fn on_resolved(
        &mut self,
        cx: &mut Cx<'_>,
        host: &str,
        port: Option<u16>,
        transport: Transport,
        addrs: &[SocketAddr],
    ) {
        let lookup = Lookup {
            host: host.to_ascii_lowercase(),
            port,
            transport,
        };
        if !self.lookups.remove(&lookup) {
            return;
        }
        let found = addrs.first().copied();
        for h in self.calls.keys().collect::<Vec<_>>() {
            if let Some(call) = self.calls.get_mut(&h) {
                let fallback = call.remote_sip;
                if let Some(route) = &mut call.route {
                    if route.dest == Dest::Lookup(lookup.clone()) {
                        route.dest = Dest::Addr(found.unwrap_or(fallback));
                    }
                }
            }
        }
        let (ready, waiting) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|r| r.lookup == lookup);
        self.held = waiting;
        for r in ready {
            let path = Path {
                transport,
                local: r.local,
                dest: found.unwrap_or(r.fallback),
            };
            cx.txns.send_request(
                &mut cx.io, r.method, r.purpose, r.branch, r.bytes, r.ack, path,
            );
        }
    }

    /// Is a request of ours waiting for a name to resolve?
    pub fn holds_requests(&self) -> bool {
        !self.held.is_empty()
    }

    /// Remove a call: end its media (RTCP BYE if it sent any), free its port, report it.
    pub fn forget(&mut self, cx: &mut Cx<'_>, h: CallHandle, reason: EndReason) {
        let now = cx.io.now;
        let ended = cx.media.end(now, h, cx.io.out);
        let Some(call) = self.calls.remove(&h) else {
            return;
        };
        self.index.remove(&call.dialog, h);
        if call.outbound.is_none() {
            self.sources.ended(call.remote_sip.ip());
        }
        let rtcp_mux = match &ended {
            Some(e) => e.rtcp_mux,
            None => call.pending.as_ref().is_some_and(|m| m.rtcp_mux),
        };
        cx.ports.release(call.port, h, rtcp_mux, cx.io.out);
        cx.stats.calls_active = self.calls.len();
        cx.io.out.event(Event::CallEnded {
            call: h,
            reason,
            duration: now - call.started.unwrap_or(call.created),
            rtp_packets_sent: ended.map_or(0, |e| e.packets),
        });
    }
}

/// Work out where a call's in-dialog requests go from its route set and remote target, and ask
/// the runtime to resolve a host name there unless it is already being looked up.
fn route_call(lookups: &mut BTreeSet<Lookup>, cx: &mut Cx<'_>, call: &Call) -> Route {
    let plan = Plan::new(
        &call.route_set,
        &call.remote_target,
        call.natted,
        call.remote_sip,
    );
    let dest = match &plan.hop {
        Hop::Addr(a) => Dest::Addr(*a),
        Hop::Name { host, port } => {
            let lookup = Lookup {
                host: host.clone(),
                port: *port,
                transport: call.transport,
            };
            if lookups.insert(lookup.clone()) {
                cx.io.out.command(Command::Resolve {
                    host: host.clone(),
                    port: *port,
                    transport: call.transport,
                });
            }
            Dest::Lookup(lookup)
        }
    };
    Route { plan, dest }
}

/// What an INVITE or UPDATE brings: its session timer, and its offer with our answer to it
/// (what the answer repeats of the offer, and what we agreed).
struct OfferCheck {
    session: Option<SessionTimer>,
    offer: Option<AnswerLayout>,
    neg: Option<Negotiated>,
}

/// Read the session timer (RFC 4028) and the offer of an INVITE or UPDATE and answer the offer,
/// or refuse the request with the right final response (422 with Min-SE, 415 with Accept, 400,
/// 488 with Warning) and return `None`.
fn check_offer(cx: &mut Cx<'_>, req: &Request<'_>, key: TxnKey) -> Option<(TxnKey, OfferCheck)> {
    let session = match session_timer_request(cx.config, req, cx.io.now) {
        Ok(t) => t,
        Err(code) => {
            let min = cx.config.min_se.as_secs().to_string();
            cx.respond_final(req, key, code, &[("Min-SE", &min)]);
            return None;
        }
    };
    // Our 2xx to an INVITE carries SDP (an answer or our offer): refused when the caller's
    // Accept lists neither it nor a wildcard that covers it (RFC 3261 §21.4.7, RFC 4475 §3.3.16).
    if req.method == "INVITE" && !req.accept.is_empty() && !accepts_sdp(&req.accept) {
        cx.respond_final(req, key, 406, &[("Accept", ACCEPT)]);
        return None;
    }
    let offer = if req.body.is_empty() {
        None
    } else {
        let ct = req.content_type.unwrap_or("application/sdp");
        let media_type = ct.split(';').next().unwrap_or("").trim();
        if !media_type.eq_ignore_ascii_case("application/sdp") {
            cx.respond_final(req, key, 415, &[("Accept", ACCEPT)]);
            return None;
        }
        Some(req.body)
    };
    let (offer, neg) = match offer {
        Some(body) => match sdp::answer_body(body, &prefs(cx, req.uri_user)) {
            Ok((mut n, layout)) => {
                if let Some(why) = policy::media_address_refusal(n.remote_rtp.ip(), req.remote.ip())
                {
                    cx.stats.media_refused += 1;
                    let warn = format!("301 onhold \"{why}\"");
                    cx.respond_final(req, key, 488, &[("Warning", &warn)]);
                    return None;
                }
                policy::aim(&mut n, cx.config.media_to, req.remote.ip());
                (Some(layout), Some(n))
            }
            Err(OfferError::Sdp(e)) => {
                let why = format!("Bad SDP: {e}");
                cx.respond_final(req, key, 400, &[("Warning", &why)]);
                return None;
            }
            Err(OfferError::Rejected(rej)) => {
                // RFC 3261 §20.43: the 3xx warn-code says which part failed.
                let warn = format!("{} onhold \"{}\"", rej.warning_code(), rej.warning_text());
                cx.respond_final(req, key, rej.status_code(), &[("Warning", &warn)]);
                return None;
            }
        },
        None => (None, None),
    };
    Some((
        key,
        OfferCheck {
            session,
            offer,
            neg,
        },
    ))
}

/// Does one of the Accept lines take `application/sdp` (or `application/*`, `*/*`)?
fn accepts_sdp(lines: &[&str]) -> bool {
    let ranges = lines
        .iter()
        .flat_map(|l| l.as_bytes().split(|&b| b == b','));
    ranges
        .map(|r| r.split(|&b| b == b';').next().unwrap_or(r))
        .any(|media| {
            let media = media.trim_ascii();
            [&b"application/sdp"[..], b"application/*", b"*/*"]
                .iter()
                .any(|m| m.eq_ignore_ascii_case(media))
        })
}

/// What we answer with for a call to `user`: its class's codecs and ptime, else the global ones.
fn prefs(cx: &Cx<'_>, user: &str) -> AnswerPrefs {
    let own = class_sdp(cx.config, cx.library, user);
    let codecs = own.map_or(&[][..], |c| &c.codecs[..]);
    AnswerPrefs {
        codecs: if codecs.is_empty() {
            cx.config.codecs.clone()
        } else {
            codecs.to_vec()
        },
        default_ptime_ms: own.and_then(|c| c.ptime_ms).unwrap_or(cx.config.ptime_ms),
    }
}

/// The SDP settings of the class `user` selects, when it has its own.
fn class_sdp<'a>(config: &'a ServerConfig, library: &Library, user: &str) -> Option<&'a ClassSdp> {
    if config.class_sdp.is_empty() {
        return None;
    }
    let name = library.class_name(library.class_for(user));
    config.class_sdp.iter().find(|c| c.class == name)
}

/// The lines the class of `user` adds to our SDP.
fn sdp_extras<'a>(config: &'a ServerConfig, library: &Library, user: &str) -> &'a sdp::Extras {
    class_sdp(config, library, user).map_or(&NO_EXTRAS, |c| &c.extras)
}

static NO_EXTRAS: sdp::Extras = sdp::Extras::NONE;

/// The option tags of `req`'s Require that we do not support, listed for a 420's Unsupported
/// (`None`: we support them all).
pub(crate) fn unsupported(req: &Request<'_>) -> Option<String> {
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
    (!unsupported.is_empty()).then(|| unsupported.join(", "))
}
