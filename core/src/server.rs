//! The `Server` state machine: the one object a runtime (or the simulator) drives.
//!
//! ```text
//! server.handle_datagram(now, transport, local, remote, &bytes);
//! server.handle_timeout(now);
//! server.control(now, Control::Hangup(call));
//! while let Some(cmd) = server.poll_command() { /* BindRtp / UnbindRtp, then rtp_bind_result */ }
//! while let Some(t) = server.poll_transmit(now, &mut buf) { /* send buf[..t.len] */ }
//! while let Some(ev) = server.poll_event() { /* log, API */ }
//! let next = server.poll_timeout();
//! ```
//! Drain commands before transmits: a call's 200 OK names an RTP port that the runtime must have
//! bound first, so the core holds the answer until `rtp_bind_result` says the port is ready.
//!
//! Inside, `Server` composes parts that each own their state: `transactions` (RFC 3261 §17),
//! `dialogs` (calls), `ports` (RTP ports), `media` (streams, pacing, RTCP) and the `outbox`;
//! one timer heap serves them all. `request` reads each datagram once and `messages` writes
//! every message we send. `Server` itself only routes each input to the part that handles it
//! (see ARCHITECTURE.md).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

pub use crate::handle::CallHandle;
use crate::media::Library;
use crate::rng::Rng;
pub use crate::sdp::Direction;
use crate::timers::TimerHeap;

mod api;
pub use api::*;
mod dialogs;
mod digest;
mod limits;
pub use limits::Limits;
mod live;
mod media;
mod messages;
mod outbox;
mod policy;
pub use policy::{DenyAction, InDialogFrom, Latching, MediaTo, Network};
mod ports;
mod register;
mod register_client;
mod request;
mod transactions;

use dialogs::Dialogs;
use media::Media;
use outbox::{Outbox, Path};
use ports::Ports;
use register_client::Registrations;
use request::{Parsed, Request, Response};
use transactions::{ClientOutcome, ClientPurpose, MergeKey, ServerState, Transactions, TxnKey};

/// What a timer entry is for. The part that armed it remembers the deadline; an entry whose
/// deadline its owner no longer expects is stale and skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    ServerTxn(transactions::TxnId),
    ClientTxn(u64),
    Call(CallHandle, CallTimer),
    Rtcp(CallHandle),
    /// The caller's silence (`media_timeout`).
    Silence(CallHandle),
    Drain,
    /// An account's next REGISTER (the account's id, see `register_client`).
    Register(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum CallTimer {
    Retransmit2xx,
    AckTimeout,
    SessionExpiry,
    SessionRefresh,
    MaxDuration,
    KeepAlive,
}

type Timers = TimerHeap<Timer>;

/// The time of the input being handled, the timer heap and the outbox: what every part acts
/// through.
struct Io<'a> {
    now: Instant,
    timers: &'a mut Timers,
    out: &'a mut Outbox,
}

/// What a dialog handler may use besides the calls, for one input: each part by its own API,
/// and what it reads (settings, music, whether the server is draining).
struct Cx<'a> {
    io: Io<'a>,
    config: &'a ServerConfig,
    library: &'a Library,
    rng: &'a mut Rng,
    stats: &'a mut Stats,
    txns: &'a mut Transactions,
    ports: &'a mut Ports,
    media: &'a mut Media,
    draining: bool,
}

impl Cx<'_> {
    /// Answer `req` with a final response on a transaction of its own, or with one stateless
    /// 503 when the transaction caps are reached.
    fn respond_final(&mut self, req: &Request<'_>, key: TxnKey, code: u16, extra: &[(&str, &str)]) {
        if !self.admits(req) {
            return;
        }
        self.txns
            .respond_final(&mut self.io, self.rng, req, key, code, extra);
    }

    /// May `req` open a transaction? If not, it is answered once with 503 and counted.
    fn admits(&mut self, req: &Request<'_>) -> bool {
        if self.txns.admits(&self.config.limits, req.remote.ip()) {
            return true;
        }
        self.stats.refused_transactions += 1;
        self.limit_hit(req, Limit::Transactions);
        self.respond_stateless(req, 503, "5");
        false
    }

    fn limit_hit(&mut self, req: &Request<'_>, limit: Limit) {
        let remote = req.remote;
        self.io.out.event(Event::LimitHit { remote, limit });
    }

    /// One final response kept nowhere: a refusal for a limit, each retransmission answered
    /// again (so nothing is stored for a flood).
    fn respond_stateless(&mut self, req: &Request<'_>, code: u16, retry_after: &str) {
        self.txns.respond_stateless(
            &mut self.io,
            self.rng,
            req,
            code,
            &[("Retry-After", retry_after)],
        );
    }

    /// Answer `req` on its transaction `id`.
    fn reply(
        &mut self,
        id: transactions::TxnId,
        req: &Request<'_>,
        code: u16,
        to_tag: Option<&str>,
        extra: &[(&str, &str)],
    ) {
        self.txns.reply(&mut self.io, id, req, code, to_tag, extra);
    }
}

/// A Request-URI we can act on: `sip:`, `sips:` or `tel:` (RFC 3966, which a phone may dial).
fn known_scheme(uri: &str) -> bool {
    let starts = |p: &str| {
        uri.get(..p.len())
            .is_some_and(|h| h.eq_ignore_ascii_case(p))
    };
    starts("sip:") || starts("sips:") || starts("tel:")
}

/// The sans-IO Music On Hold server. See the module docs for the drive loop.
pub struct Server {
    config: ServerConfig,
    library: Arc<Library>,
    rng: Rng,
    epoch: Instant,
    stats: Stats,
    txns: Transactions,
    dialogs: Dialogs,
    ports: Ports,
    media: Media,
    registrations: Registrations,
    timers: Timers,
    out: Outbox,
    /// After `Control::Shutdown`: the grace deadline, and whether `Event::Drained` went out.
    draining: Option<Instant>,
    drained: bool,
    /// Report every SIP message as `Event::Sip`.
    sip_trace: bool,
}

impl Server {
    /// `epoch` is any instant at or before the first `now`; `epoch_wall` is the wall-clock time
    /// at `epoch` (for RTCP NTP timestamps). `seed` drives every random choice: 32 bytes from
    /// the OS in production, a number in tests and the simulator.
    pub fn new(
        config: ServerConfig,
        library: Arc<Library>,
        seed: impl Into<crate::rng::Seed>,
        epoch: Instant,
        epoch_wall: SystemTime,
    ) -> Server {
        let mut rng = Rng::new(seed);
        let ports = Ports::new(config.rtp_ports, config.rtp_shared_port, &mut rng);
        let mut timers = TimerHeap::default();
        let registrations = Registrations::new(&config, &mut rng, &mut timers, epoch);
        let mut media = Media::new(epoch, epoch_wall, &config);
        media.relink_live(&library);
        Server {
            txns: Transactions::new(&config),
            dialogs: Dialogs::default(),
            ports,
            media,
            registrations,
            timers,
            out: Outbox::default(),
            stats: Stats::default(),
            draining: None,
            drained: false,
            sip_trace: false,
            config,
            library,
            rng,
            epoch,
        }
    }

    /// The dialogs, and everything else they act through, for one input at `now`.
    fn parts(&mut self, now: Instant) -> (&mut Dialogs, Cx<'_>) {
        let (dialogs, _, cx) = self.split(now);
        (dialogs, cx)
    }

    /// The registrations, and the parts they act through, for one input at `now`.
    fn registration_parts(&mut self, now: Instant) -> (&mut Registrations, Cx<'_>) {
        let (_, registrations, cx) = self.split(now);
        (registrations, cx)
    }

    /// The dialogs and the registrations beside what they act through.
    #[inline]
    fn split(&mut self, now: Instant) -> (&mut Dialogs, &mut Registrations, Cx<'_>) {
        let cx = Cx {
            io: Io {
                now,
                timers: &mut self.timers,
                out: &mut self.out,
            },
            config: &self.config,
            library: &self.library,
            rng: &mut self.rng,
            stats: &mut self.stats,
            txns: &mut self.txns,
            ports: &mut self.ports,
            media: &mut self.media,
            draining: self.draining.is_some(),
        };
        (&mut self.dialogs, &mut self.registrations, cx)
    }

    /// Is `p` a response to a client transaction of ours that went to `remote`?
    #[cold]
    fn awaited(&self, p: &Parsed<'_>, remote: SocketAddr) -> bool {
        matches!(p, Parsed::Response(r) if self.txns.sent_to(r.branch, remote))
    }

    /// The final outcome of a request we sent, to the part that sent it.
    fn on_outcome(
        &mut self,
        now: Instant,
        outcome: ClientOutcome,
        response: Option<&Response<'_>>,
    ) {
        match outcome.purpose {
            ClientPurpose::Register(i) if !outcome.repeat => {
                let (registrations, mut cx) = self.registration_parts(now);
                registrations.on_outcome(&mut cx, i, outcome.code, response);
            }
            _ => {
                let (dialogs, mut cx) = self.parts(now);
                dialogs.on_outcome(&mut cx, outcome, response);
            }
        }
    }

    /// A datagram (or one framed TCP message) arrived on `local` from `remote`.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) {
        // The first-byte test first: a SIP message fails it, and skips the port lookup.
        if crate::rtp::is_rtp_or_rtcp(data) {
            let owner = self.media_owner(local, remote);
            if owner.is_none() && self.ports.is_shared(local.port()) {
                // On the shared port, media from an address no call streams to: no call to
                // give it to (a NATed caller's RTP comes from elsewhere than its SDP says).
                self.stats.rtp_unmatched += 1;
                return;
            }
            if let Some(call) = owner {
                // RTP/RTCP from the caller (or DTMF events): we only send, but it says where
                // the caller is and that it is alive.
                self.stats.rtp_in += 1;
                let mut io = Io {
                    now,
                    timers: &mut self.timers,
                    out: &mut self.out,
                };
                let silence = self.config.media_timeout;
                self.media.heard(&mut io, call, remote, data, silence);
                return;
            }
        }
        self.stats.sip_in += 1;
        if self.sip_trace {
            self.trace(true, transport, local, remote, data);
        }
        let denied = !policy::allowed(&self.config.allow, remote.ip());
        if denied {
            self.stats.denied += 1;
            // A response is read on: it may answer a request of ours (see `awaited`).
            if self.config.deny_action == DenyAction::Drop && !data.starts_with(b"SIP/2.0 ") {
                return;
            }
        }
        // Matched by reference: moving the (large) `Request` out of the enum would copy it.
        match &request::parse(data, transport, local, remote) {
            Parsed::Request(req) if denied => {
                if req.method != "ACK" {
                    let key = TxnKey::of(req);
                    let (_, mut cx) = self.parts(now);
                    match cx.txns.find(&key) {
                        Some(id) => cx.txns.absorb(&mut cx.io, id, false),
                        None => cx.respond_final(req, key, 403, &[]),
                    }
                }
            }
            // A response to a request of ours from where we sent it (a registrar outside
            // `allow`) is still read: its branch is ours and random.
            p if denied && !self.awaited(p, remote) => {}
            Parsed::KeepAlive => {
                // RFC 5626 §4.4.1: answer a double-CRLF ping on a stream with a single CRLF.
                if transport == Transport::Tcp && data.starts_with(b"\r\n\r\n") {
                    let path = Path {
                        transport,
                        local,
                        dest: remote,
                    };
                    self.out.sip(path, b"\r\n".to_vec());
                }
            }
            Parsed::Response(r) => {
                self.stats.sip.responses_in.add(r.code);
                let mut io = Io {
                    now,
                    timers: &mut self.timers,
                    out: &mut self.out,
                };
                if let Some(outcome) =
                    self.txns
                        .on_response(&mut io, r.branch, r.cseq_method, r.code)
                {
                    self.on_outcome(now, outcome, Some(r));
                }
                self.finish_drain(now, false);
            }
            Parsed::Request(req) => {
                self.stats.sip.requests_in[SipCounts::method_index(req.method)] += 1;
                self.on_request(now, req)
            }
            Parsed::Bad {
                request: Some(req),
                reason,
                code,
            } => {
                self.stats.sip.requests_in[SipCounts::method_index(req.method)] += 1;
                // Enough of the request survived to answer it (RFC 3261 §8.2: 400 for malformed).
                if req.method == "ACK" {
                    self.stats.dropped += 1;
                    return;
                }
                if messages::too_large(req) {
                    return self.too_large(now, req);
                }
                let key = TxnKey::of(req);
                let (_, mut cx) = self.parts(now);
                match cx.txns.find(&key) {
                    Some(id) => cx.txns.absorb(&mut cx.io, id, false),
                    None => {
                        cx.stats.bad_requests += u64::from(*code == 400);
                        let why = format!("SIP;cause={code};text=\"{reason}\"");
                        cx.respond_final(req, key, *code, &[("Reason", &why)]);
                    }
                }
            }
            Parsed::Bad {
                request: None,
                reason,
                ..
            } => {
                self.stats.dropped += 1;
                self.out.event(Event::Dropped {
                    remote,
                    why: reason,
                });
            }
        }
    }

    /// A request: to its transaction if it has one (a retransmission, or the ACK of a non-2xx
    /// final), else checked (RFC 3261 §8.2) and routed by method.
    fn on_request(&mut self, now: Instant, req: &Request<'_>) {
        if messages::too_large(req) {
            return self.too_large(now, req);
        }
        let (dialogs, mut cx) = self.parts(now);
        if req.method == "ACK" {
            if let Some(id) = cx.txns.find_ack(req) {
                // The ACK for a non-2xx final (same branch as the INVITE), or its retransmission.
                if cx.txns.state(id) != Some(ServerState::Accepted) {
                    return cx.txns.absorb(&mut cx.io, id, true);
                }
            }
            dialogs.on_ack(&mut cx, req);
            return self.finish_drain(now, false);
        }
        let key = TxnKey::of(req);
        if let Some(id) = cx.txns.find(&key) {
            return cx.txns.absorb(&mut cx.io, id, false); // a retransmission
        }
        if !cx.admits(req) {
            return;
        }
        if req.method == "CANCEL" {
            dialogs.on_cancel(&mut cx, req, key);
            return self.finish_drain(now, false);
        }
        // RFC 3261 §8.2.2.2: the same request arriving by two paths is a loop, not a new call.
        // The key is built once: a new call's transaction keeps it.
        let merge = MergeKey::of(req);
        if merge.as_ref().is_some_and(|m| cx.txns.is_merged(m)) {
            return cx.respond_final(req, key, 482, &[]);
        }
        if req.max_forwards == Some(0) {
            return cx.respond_final(req, key, 483, &[]);
        }
        if !req.method.eq(req.cseq_method) {
            let why = "SIP;cause=400;text=\"CSeq method mismatch\"";
            return cx.respond_final(req, key, 400, &[("Reason", why)]);
        }
        if !req.require.is_empty() {
            if let Some(list) = dialogs::unsupported(req) {
                return cx.respond_final(req, key, 420, &[("Unsupported", &list)]);
            }
        }
        // RFC 3261 §8.2.2.1: a Request-URI scheme we do not handle gets 416.
        if !known_scheme(req.uri) {
            return cx.respond_final(req, key, 416, &[]);
        }
        match req.method {
            "INVITE" if req.to_tag.is_empty() => dialogs.on_invite(&mut cx, req, key, merge),
            "INVITE" | "UPDATE" => dialogs.on_offer_in_dialog(&mut cx, req, key),
            "BYE" => dialogs.on_bye(&mut cx, req, key),
            "INFO" => match dialogs.find(&mut cx, req) {
                Some(h) => {
                    if dialogs.in_order(&mut cx, req, &key, h) {
                        cx.respond_final(req, key, 200, &[]);
                    }
                }
                None => cx.respond_final(req, key, 481, &[]),
            },
            "OPTIONS" => {
                let code = if cx.draining { 503 } else { 200 };
                let extra = [
                    ("Allow", messages::ALLOW),
                    ("Accept", messages::ACCEPT),
                    ("Supported", messages::SUPPORTED),
                ];
                cx.respond_final(req, key, code, &extra)
            }
            "REGISTER" if cx.config.accept_register => register::on_register(&mut cx, req, key),
            _ => cx.respond_final(req, key, 405, &[("Allow", messages::ALLOW)]),
        }
        self.finish_drain(now, false);
    }

    /// A request whose headers would make our answer (or our requests in its call) larger than
    /// a datagram: 513 with only the top Via (RFC 3261 §21.5.14), or nothing when even that
    /// would not fit. Never a message cut short.
    #[cold]
    fn too_large(&mut self, now: Instant, req: &Request<'_>) {
        self.stats.oversized += 1;
        if req.method == "ACK" || messages::copied_len_trimmed(req) > messages::COPY_LIMIT {
            return;
        }
        let key = TxnKey::of(req);
        let (_, mut cx) = self.parts(now);
        match cx.txns.find(&key) {
            Some(id) => cx.txns.absorb(&mut cx.io, id, false),
            None if cx.txns.admits(&cx.config.limits, req.remote.ip()) => {
                cx.respond_final(req, key, 513, &[])
            }
            // Over the transaction caps as well: the stateless 503 would copy every Via.
            None => cx.stats.refused_transactions += 1,
        }
    }

    /// The deadline from `poll_timeout` passed (calling it early or often is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((at, timer)) = self.timers.pop_due(now) {
            let (dialogs, mut cx) = self.parts(now);
            match timer {
                Timer::ServerTxn(id) => cx.txns.on_server_timer(&mut cx.io, at, id),
                Timer::ClientTxn(id) => {
                    if let Some(outcome) = cx.txns.on_client_timer(&mut cx.io, at, id) {
                        self.on_outcome(now, outcome, None);
                    }
                }
                Timer::Register(i) => {
                    let (registrations, mut cx) = self.registration_parts(now);
                    registrations.on_timer(&mut cx, at, i);
                }
                Timer::Call(call, what) => dialogs.on_timer(&mut cx, at, call, what),
                Timer::Rtcp(call) => cx.media.on_rtcp_timer(&mut cx.io, cx.rng, at, call),
                Timer::Silence(call) => {
                    let silence = cx.config.media_timeout;
                    if cx.media.on_silence_timer(&mut cx.io, at, call, silence) {
                        dialogs.hangup(&mut cx, call, EndReason::MediaTimeout);
                    }
                }
                Timer::Drain => {
                    self.finish_drain(now, true);
                    continue;
                }
            }
            self.finish_drain(now, false);
        }
    }

    pub fn control(&mut self, now: Instant, control: Control) {
        match control {
            Control::Hangup(call) => {
                let (dialogs, mut cx) = self.parts(now);
                dialogs.hangup(&mut cx, call, EndReason::Operator);
            }
            Control::Source { call, source } => {
                let class = match &source {
                    Source::Class(name) => self.library.class_for(name),
                    Source::Music { library, .. } => library.default_class(),
                };
                self.media.switch(call, class, source);
            }
            Control::Shutdown { grace } => {
                if self.draining.is_none() {
                    self.draining = Some(now + grace);
                    self.timers.push(now + grace, Timer::Drain);
                    let (dialogs, mut cx) = self.parts(now);
                    for h in dialogs.handles() {
                        dialogs.hangup(&mut cx, h, EndReason::Control);
                    }
                    let (registrations, mut cx) = self.registration_parts(now);
                    registrations.shutdown(&mut cx);
                }
            }
            Control::Reload(library) => {
                self.library = library;
                self.media.relink_live(&self.library);
                let (library, dialogs) = (&self.library, &self.dialogs);
                self.media
                    .reload(|h| dialogs.user(h).map(|user| library.class_for(user)));
            }
            Control::Reconfigure(mut config) => {
                // The shared RTP port is bound by the runtime at start: it stays.
                config.rtp_shared_port = self.config.rtp_shared_port;
                // Accounts still named carry on; others are removed and new ones register.
                if self.draining.is_none() {
                    let (registrations, mut cx) = self.registration_parts(now);
                    registrations.reconfigure(&mut cx, &config.registrations);
                }
                self.ports.reconfigure(config.rtp_ports);
                self.txns.reconfigure(&config);
                self.media.reconfigure(&config);
                self.config = *config;
            }
        }
        self.finish_drain(now, false);
    }

    /// Audio from a live class's source as it arrived at `now`: mono PCM at 8 kHz and, when
    /// G.722 is among the codecs, the same audio at 16 kHz (twice as many samples). It is
    /// encoded once per G.711 codec into the class's jitter buffer, which plays to every caller
    /// of the class once it holds the class's `live_buffer`; a class that is not live ignores it.
    pub fn live_audio(&mut self, now: Instant, class: &str, pcm8: &[i16], pcm16: &[i16]) {
        self.media
            .live_audio(now, &mut self.out, class, pcm8, pcm16);
    }

    /// A live class's source is connected (`Ok`), or went down (`Err`, why): each outage is
    /// counted once, however many reconnections fail. Callers hear the buffered audio to its
    /// end and then the fallback, whatever the source does.
    pub fn live_source(&mut self, class: &str, state: Result<(), String>) {
        self.media.live_source(&mut self.out, class, state);
    }

    /// Every live class of the library in use, as it stands at `now`.
    pub fn live_info(&self, now: Instant) -> Vec<LiveInfo> {
        self.media.live_info(now)
    }

    /// Place a call: an INVITE to `o.uri` once its RTP port is bound; the answer starts the
    /// music. The call is reported as incoming ones are (`Invited`, `CallStarted`, `CallEnded`
    /// with `EndReason::Rejected` when refused) and ended with `Control::Hangup` (CANCEL
    /// before the answer, BYE after).
    pub fn originate(&mut self, now: Instant, o: Originate) -> Result<CallHandle, OriginateError> {
        let (dialogs, registrations, mut cx) = self.split(now);
        let placed = dialogs.originate(&mut cx, registrations, o);
        self.finish_drain(now, false);
        placed
    }

    /// Answer to `Command::BindRtp`: `ok == false` makes the core try another port.
    pub fn rtp_bind_result(&mut self, now: Instant, port: u16, ok: bool) {
        let (dialogs, mut cx) = self.parts(now);
        dialogs.on_port_bound(&mut cx, port, ok);
        self.finish_drain(now, false);
    }

    /// Answer to `Command::Resolve` (the same `host`, `port` and `transport`): the addresses
    /// found, most preferred first, or none. Requests that waited for the name go out.
    pub fn resolved(
        &mut self,
        now: Instant,
        host: &str,
        port: Option<u16>,
        transport: Transport,
        addrs: &[SocketAddr],
    ) {
        let (dialogs, mut cx) = self.parts(now);
        dialogs.on_resolved(&mut cx, host, port, transport, addrs);
        if !self.registrations.is_empty() {
            let (registrations, mut cx) = self.registration_parts(now);
            registrations.on_resolved(&mut cx, host, port, addrs);
        }
        self.finish_drain(now, false);
    }

    /// The network says `remote` cannot be reached from our UDP socket `local` (an ICMP or
    /// ICMPv6 port or host unreachable, read from the socket's error queue). For a call's
    /// stream that goes on for 2 s with nothing heard from the caller, the call ends with BYE
    /// (`EndReason::Unreachable`); for anything else it is only counted.
    pub fn unreachable(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr) {
        self.stats.unreachable += 1;
        let Some(call) = self.media_owner(local, remote) else {
            return;
        };
        if self.media.unreachable(now, call, remote) {
            let (dialogs, mut cx) = self.parts(now);
            dialogs.hangup(&mut cx, call, EndReason::Unreachable);
            self.finish_drain(now, false);
        }
    }

    /// The runtime could not deliver to `remote` on a stream transport: no connection was open
    /// and opening one failed (RFC 3261 §18.1.1), or the connection broke. Requests we sent
    /// that way end as if they had timed out (§8.1.3.1).
    pub fn transport_error(&mut self, now: Instant, transport: Transport, remote: SocketAddr) {
        let failed = self.txns.fail_path(transport, remote);
        for outcome in failed {
            self.on_outcome(now, outcome, None);
        }
        self.finish_drain(now, false);
    }

    /// The call whose media port `local` is and that streams to `remote`: by the port, or by
    /// `remote` on the shared port.
    fn media_owner(&self, local: SocketAddr, remote: SocketAddr) -> Option<CallHandle> {
        if self.ports.is_shared(local.port()) {
            self.media.by_remote(remote)
        } else {
            self.ports.owner(local.port())
        }
    }

    /// After Shutdown: emit `Drained` once every call is gone and every BYE answered (or at the
    /// grace deadline, whatever is left). Checked after every input that may end a call or
    /// answer a BYE.
    #[inline]
    fn finish_drain(&mut self, now: Instant, deadline: bool) {
        if self.draining.is_some() && !self.drained {
            self.drain(now, deadline);
        }
    }

    #[cold]
    fn drain(&mut self, now: Instant, deadline: bool) {
        let pending = self.txns.byes_pending()
            || self.dialogs.holds_requests()
            || self.registrations.removing();
        if deadline || (self.dialogs.is_empty() && !pending) {
            let (dialogs, mut cx) = self.parts(now);
            for h in dialogs.handles() {
                dialogs.forget(&mut cx, h, EndReason::Control);
            }
            self.drained = true;
            self.out.event(Event::Drained);
        }
    }

    /// Write the next due datagram into `buf` (at least [`MAX_DATAGRAM`] bytes).
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        let t = match self.out.pop_transmit(buf) {
            Some(t) => t,
            None => self
                .media
                .poll_rtp(now, buf, &self.library, &mut self.stats, &mut self.out)?,
        };
        match t.kind {
            TransmitKind::Sip => {
                self.stats.sip_out += 1;
                let message = &buf[..t.len];
                self.stats.sip.count_sent(message);
                if self.sip_trace {
                    self.trace(false, t.transport, t.local, t.remote, message);
                }
            }
            TransmitKind::Rtcp => self.stats.rtcp_out += 1,
            TransmitKind::Rtp => self.stats.rtp_out += 1,
        }
        Some(t)
    }

    /// When `handle_timeout`/`poll_transmit` next have work. A datagram or command still queued
    /// is work now: the answer is then the epoch (long past), so a runtime that returns to its
    /// wait with something undrained wakes at once instead of stalling a call.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.out.has_work() {
            return Some(self.epoch);
        }
        match (self.timers.next_deadline(), self.media.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.out.pop_event()
    }

    #[must_use]
    pub fn poll_command(&mut self) -> Option<Command> {
        self.out.pop_command()
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// How full the tables are (for the control API, tests and the fuzzer's cap checks).
    pub fn occupancy(&self) -> Occupancy {
        let (server_transactions, client_transactions, transaction_bytes, transaction_sources) =
            self.txns.occupancy();
        Occupancy {
            server_transactions,
            client_transactions,
            transaction_bytes,
            transaction_sources,
            calls: self.dialogs.len(),
            call_sources: self.dialogs.sources(),
            queued: self.out.queued(),
        }
    }

    /// Report every SIP message in and out as `Event::Sip` (off by default: it copies each one).
    pub fn set_sip_trace(&mut self, on: bool) {
        self.sip_trace = on;
    }

    #[cold]
    fn trace(
        &mut self,
        inbound: bool,
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) {
        self.out.event(Event::Sip(SipTrace {
            inbound,
            transport,
            local,
            remote,
            text: String::from_utf8_lossy(data).into_owned(),
        }));
    }

    /// Report what the caller of `call` sends, decoded, as `Event::Heard` (or stop). False if
    /// the call has no media yet or is gone.
    pub fn set_tap(&mut self, call: CallHandle, on: bool) -> bool {
        self.media.set_tap(call, on)
    }

    /// What is known about one call, while it lasts.
    pub fn call_info(&self, call: CallHandle) -> Option<CallInfo> {
        let media = self.media.info(call, &self.library);
        self.dialogs.info(call, media)
    }

    /// Every call, oldest first.
    pub fn calls(&self) -> Vec<CallInfo> {
        let mut calls: Vec<CallInfo> = self
            .dialogs
            .handles()
            .into_iter()
            .filter_map(|h| self.call_info(h))
            .collect();
        calls.sort_by_key(|c| (c.created, c.call));
        calls
    }

    /// The music library in use.
    pub fn library(&self) -> &Arc<Library> {
        &self.library
    }

    /// Every `[[register]]` account as it stands, in configuration order.
    pub fn registrations(&self) -> Vec<RegistrationInfo> {
        self.registrations.info()
    }

    /// Is the server refusing new calls (after `Control::Shutdown`)?
    pub fn is_draining(&self) -> bool {
        self.draining.is_some()
    }
}
