//! The `Server` object: inputs, the transaction layer, timers and the output queues. The dialog
//! and media decisions live in `calls.rs`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::build;
use super::incoming::Request;
use super::txn::{ClientPurpose, ClientTxn, MergeKey, ServerState, ServerTxn, TxnKey};
use super::{
    CallHandle, Command, Control, EndReason, Event, ServerConfig, Stats, Transmit, TransmitKind,
    Transport,
};
use crate::hash_index::{HashIndex, HashedKey};
use crate::media::Library;
use crate::pacing::PacingQueue;
use crate::rng::Rng;
use crate::rtp::{write_rtcp_sr, SenderInfo};
use crate::slab::{CallSlab, IdSlab};
use crate::timers::TimerHeap;

/// What a timer entry is for. The owner remembers the deadline it armed; anything else is stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Timer {
    ServerTxn(u64),
    ClientTxn(u64),
    Call(CallHandle, CallTimer),
    Drain,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum CallTimer {
    Retransmit2xx,
    AckTimeout,
    SessionExpiry,
    SessionRefresh,
    MaxDuration,
    Rtcp,
}

/// Where a request we send travels: transport, our address, the next hop.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Path {
    pub transport: Transport,
    pub local: SocketAddr,
    pub dest: SocketAddr,
}

/// A datagram waiting in the output queue (SIP, RTCP).
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub transport: Transport,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub kind: TransmitKind,
    pub bytes: Payload,
}

/// The bytes of a queued datagram. A response a transaction or call keeps for retransmission
/// is shared with the queue, so neither keeping it nor resending it copies it. An RTCP report
/// is queued as what it says and written straight into the caller's buffer when sent: no
/// allocation and no copy for it.
#[derive(Debug)]
pub(crate) enum Payload {
    Owned(Vec<u8>),
    Shared(Arc<[u8]>),
    /// An RTCP SR with our CNAME, and BYE after it when `bye` (see [`write_rtcp_sr`]).
    Rtcp {
        info: SenderInfo,
        bye: bool,
    },
}

impl Payload {
    /// Write the datagram into `buf` (cut to its length, as a copy would be); its length.
    fn write(&self, buf: &mut [u8]) -> usize {
        let bytes: &[u8] = match self {
            Payload::Owned(v) => v,
            Payload::Shared(a) => a,
            Payload::Rtcp { info, bye } => return write_rtcp(buf, *info, *bye),
        };
        let len = bytes.len().min(buf.len());
        buf[..len].copy_from_slice(&bytes[..len]);
        len
    }
}

/// Room an RTCP report with BYE takes (56 bytes), rounded up.
const RTCP_ROOM: usize = 128;

/// [`write_rtcp_sr`] with our CNAME into `buf`, or (a buffer below the documented size) into
/// one on the stack, cut to fit.
fn write_rtcp(buf: &mut [u8], info: SenderInfo, bye: bool) -> usize {
    if buf.len() >= RTCP_ROOM {
        return write_rtcp_sr(buf, info, b"onhold", bye);
    }
    write_rtcp_short(buf, info, bye)
}

#[cold]
#[inline(never)]
fn write_rtcp_short(buf: &mut [u8], info: SenderInfo, bye: bool) -> usize {
    let mut room = [0u8; RTCP_ROOM];
    let n = write_rtcp_sr(&mut room, info, b"onhold", bye).min(buf.len());
    buf[..n].copy_from_slice(&room[..n]);
    n
}

impl From<Vec<u8>> for Payload {
    fn from(v: Vec<u8>) -> Payload {
        Payload::Owned(v)
    }
}

impl From<Arc<[u8]>> for Payload {
    fn from(a: Arc<[u8]>) -> Payload {
        Payload::Shared(a)
    }
}

/// The sans-IO Music On Hold server. See the module docs of [`crate::server`] for the drive loop.
pub struct Server {
    pub(crate) config: ServerConfig,
    pub(crate) library: Arc<Library>,
    pub(crate) rng: Rng,
    pub(crate) epoch: Instant,
    /// The wall-clock time at `epoch` as time since the Unix epoch (0 if before it), worked out
    /// once: every RTCP report starts its NTP timestamp from it.
    pub(crate) epoch_unix: Duration,
    pub(crate) stats: Stats,
    pub(crate) calls: CallSlab<super::calls::Call>,
    /// In-dialog lookup: `Call-ID SP our tag` (see `Call::dialog`) → call. A [`HashIndex`]:
    /// deterministic, and peer-chosen Call-IDs that collide fill one window and then a B-tree,
    /// never a long probe chain.
    pub(crate) dialogs: HashIndex<CallHandle>,
    /// RTP port (even) → call, for ports asked of the runtime.
    pub(crate) ports: BTreeMap<u16, CallHandle>,
    pub(crate) bad_ports: BTreeSet<u16>,
    pub(crate) port_cursor: u16,
    /// Server transactions by id (see `IdSlab`).
    pub(crate) txns: IdSlab<ServerTxn>,
    /// Transaction key → transaction, and merge key → INVITE transaction (see `HashIndex`).
    pub(crate) txn_index: HashIndex<u64>,
    pub(crate) merge_index: HashIndex<u64>,
    pub(crate) client_txns: BTreeMap<u64, ClientTxn>,
    pub(crate) client_index: BTreeMap<String, u64>,
    pub(crate) next_id: u64,
    pub(crate) timers: TimerHeap<Timer>,
    pub(crate) pacing: PacingQueue,
    pub(crate) out: VecDeque<Outgoing>,
    pub(crate) events: VecDeque<Event>,
    pub(crate) commands: VecDeque<Command>,
    pub(crate) draining: Option<Instant>,
    pub(crate) drained_sent: bool,
    pub(crate) scratch: Vec<u8>,
}

impl Server {
    /// `epoch` is any instant at or before the first `now`; `epoch_wall` is the wall-clock time
    /// at `epoch` (for RTCP NTP timestamps). `seed` drives every random choice.
    pub fn new(
        config: ServerConfig,
        library: Arc<Library>,
        seed: u64,
        epoch: Instant,
        epoch_wall: SystemTime,
    ) -> Server {
        let mut rng = Rng::new(seed);
        let (lo, hi) = config.rtp_ports;
        let span = (hi.saturating_sub(lo) / 2).max(1) as u64;
        let port_cursor = lo.saturating_add(2 * rng.below(span) as u16) & !1;
        Server {
            config,
            library,
            rng,
            epoch,
            epoch_unix: epoch_wall.duration_since(UNIX_EPOCH).unwrap_or_default(),
            stats: Stats::default(),
            calls: CallSlab::default(),
            dialogs: HashIndex::default(),
            ports: BTreeMap::new(),
            bad_ports: BTreeSet::new(),
            port_cursor,
            txns: IdSlab::releasing(),
            txn_index: HashIndex::default(),
            merge_index: HashIndex::default(),
            client_txns: BTreeMap::new(),
            client_index: BTreeMap::new(),
            next_id: 1,
            timers: TimerHeap::default(),
            pacing: PacingQueue::new(epoch),
            out: VecDeque::new(),
            events: VecDeque::new(),
            commands: VecDeque::new(),
            draining: None,
            drained_sent: false,
            scratch: Vec::with_capacity(2048),
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
        if crate::rtp::is_rtp_or_rtcp(data) && self.ports.contains_key(&(local.port() & !1)) {
            // RTP/RTCP from the caller (or DTMF events): counted and dropped; we only send.
            self.stats.rtp_in += 1;
            return;
        }
        self.stats.sip_in += 1;
        super::calls::handle_sip(self, now, transport, local, remote, data);
    }

    /// The deadline from `poll_timeout` passed (calling it early or often is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((at, timer)) = self.timers.pop_due(now) {
            match timer {
                Timer::ServerTxn(id) => self.server_txn_timer(now, at, id),
                Timer::ClientTxn(id) => self.client_txn_timer(now, at, id),
                Timer::Call(call, what) => super::calls::call_timer(self, now, at, call, what),
                Timer::Drain => self.finish_drain(now, true),
            }
        }
    }

    pub fn control(&mut self, now: Instant, control: Control) {
        match control {
            Control::Hangup(call) => super::calls::hangup(self, now, call, EndReason::Control),
            Control::Shutdown { grace } => {
                if self.draining.is_none() {
                    self.draining = Some(now + grace);
                    self.timers.push(now + grace, Timer::Drain);
                    let handles: Vec<CallHandle> = self.calls.keys().collect();
                    for h in handles {
                        super::calls::hangup(self, now, h, EndReason::Control);
                    }
                }
                self.finish_drain(now, false);
            }
            Control::Reload(library) => {
                self.library = library;
                super::calls::reload(self);
            }
            Control::Reconfigure(config) => {
                let (lo, hi) = config.rtp_ports;
                if !(lo..=hi).contains(&self.port_cursor) {
                    self.port_cursor = lo;
                }
                self.config = *config;
            }
        }
    }

    /// Answer to `Command::BindRtp`: `ok == false` makes the core try another port.
    pub fn rtp_bind_result(&mut self, now: Instant, port: u16, ok: bool) {
        super::calls::rtp_bound(self, now, port, ok);
    }

    /// Write the next due datagram into `buf` (at least [`super::MAX_DATAGRAM`] bytes).
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        if let Some(o) = self.out.pop_front() {
            let len = o.bytes.write(buf);
            match o.kind {
                TransmitKind::Sip => self.stats.sip_out += 1,
                TransmitKind::Rtcp => self.stats.rtcp_out += 1,
                TransmitKind::Rtp => self.stats.rtp_out += 1,
            }
            return Some(Transmit {
                transport: o.transport,
                local: o.local,
                remote: o.remote,
                len,
                kind: o.kind,
            });
        }
        while let Some((due, handle)) = self.pacing.peek_due(now) {
            match super::calls::next_rtp(self, now, due, handle, buf) {
                Some((t, next_due)) => {
                    self.pacing.replace_top(next_due, handle);
                    self.stats.rtp_out += 1;
                    return Some(t);
                }
                None => self.pacing.pop(),
            }
        }
        None
    }

    /// When `handle_timeout`/`poll_transmit` next have work. A datagram or command still queued
    /// is work now: the answer is then the epoch (long past), so a runtime that returns to its
    /// wait with something undrained wakes at once instead of stalling a call.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.out.is_empty() || !self.commands.is_empty() {
            return Some(self.epoch);
        }
        match (self.timers.next_deadline(), self.pacing.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    #[must_use]
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Is the server refusing new calls (after `Control::Shutdown`)?
    pub fn is_draining(&self) -> bool {
        self.draining.is_some()
    }

    // ----- helpers shared by the dialog layer -----

    /// Where a call's RTP grid starts when media begins at `now`: the next whole millisecond
    /// since the epoch. Calls then share at most `ptime` / 1 ms distinct send instants, so the
    /// runtime wakes once per instant for every call due then (one `sendmmsg`), instead of once
    /// per call at random phases; the first packet leaves at most 1 ms after the ACK, and every
    /// packet after it sits exactly on its call's grid.
    pub(crate) fn grid_start(&self, now: Instant) -> Instant {
        const QUANTUM_NS: u128 = 1_000_000;
        let since = now.saturating_duration_since(self.epoch).as_nanos();
        let aligned = since.div_ceil(QUANTUM_NS) * QUANTUM_NS;
        self.epoch + Duration::from_nanos(aligned as u64)
    }

    pub(crate) fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// A fresh token for tags and branches: 64 random bits in lower-case hex.
    pub(crate) fn token(&mut self) -> String {
        crate::ascii::hex16(self.rng.next_u64(), &mut [0; 16]).to_string()
    }

    pub(crate) fn emit(&mut self, ev: Event) {
        self.events.push_back(ev);
    }

    pub(crate) fn queue(
        &mut self,
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
        kind: TransmitKind,
        bytes: impl Into<Payload>,
    ) {
        self.out.push_back(Outgoing {
            transport,
            local,
            remote,
            kind,
            bytes: bytes.into(),
        });
    }

    /// Where our SDP and Contact say we are: configured, else the address the caller used to
    /// reach us (the Request-URI host, when it is an IP literal), else the local address.
    pub(crate) fn advertised_ip(&self, req: &Request<'_>) -> IpAddr {
        if let Some(ip) = self.config.advertised {
            return ip;
        }
        let host = req.uri_host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = crate::ascii::parse_ip(host) {
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

    // ----- server transactions -----

    pub(crate) fn find_txn(&self, key: &TxnKey) -> Option<u64> {
        self.txn_index.get(key.hashed(), |id| {
            self.txns.get(&id).map(|t| t.key.hashed())
        })
    }

    pub(crate) fn new_server_txn(
        &mut self,
        req: &Request<'_>,
        key: TxnKey,
        call: Option<CallHandle>,
    ) -> u64 {
        let merge = (req.method == "INVITE" && req.to_tag.is_empty())
            .then(|| MergeKey::new(req.call_id, req.from_tag, req.cseq));
        self.new_server_txn_merged(req, key, merge, call)
    }

    /// [`Server::new_server_txn`] with the request's merge key (RFC 3261 §8.2.2.2) already
    /// built: `Some` exactly for an INVITE without To tag.
    pub(crate) fn new_server_txn_merged(
        &mut self,
        req: &Request<'_>,
        key: TxnKey,
        merge: Option<MergeKey>,
        call: Option<CallHandle>,
    ) -> u64 {
        let invite = req.method == "INVITE";
        debug_assert_eq!(merge.is_some(), invite && req.to_tag.is_empty());
        let id = self.txns.insert(ServerTxn {
            key,
            invite,
            state: ServerState::Proceeding,
            last: None,
            last_code: 0,
            transport: req.transport,
            local: req.local,
            dest: build::response_destination(req),
            call,
            merge,
            retransmit_at: None,
            interval: self.config.t1,
            end_at: None,
        });
        let txns = &self.txns;
        if let Some(txn) = txns.get(&id) {
            if let Some(m) = &txn.merge {
                self.merge_index
                    .insert(m.hashed(), id, |v| merge_key_of(txns, v));
            }
            self.txn_index.insert(txn.key.hashed(), id, |v| {
                txns.get(&v).map(|t| t.key.hashed())
            });
        }
        id
    }

    /// Send a response on a server transaction and move it along (RFC 3261 §17.2.1, §17.2.2).
    pub(crate) fn respond(&mut self, now: Instant, id: u64, bytes: Arc<[u8]>, code: u16) {
        let t1 = self.config.t1;
        let t4 = self.config.t4;
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
        let (transport, local, dest) = (txn.transport, txn.local, txn.dest);
        txn.last = Some(bytes.clone());
        txn.last_code = code;
        let reliable = transport == Transport::Tcp;
        // The timer to arm, as its delay from `now`.
        let mut arm = None;
        if code >= 200 {
            if txn.invite && code < 300 {
                // RFC 6026 Accepted: absorb retransmitted INVITEs for 64·T1 (timer L).
                txn.state = ServerState::Accepted;
                txn.end_at = Some(now + 64 * t1);
                arm = Some(64 * t1);
            } else if txn.invite {
                txn.state = ServerState::Completed;
                txn.end_at = Some(now + 64 * t1); // timer H
                arm = Some(64 * t1);
                if !reliable {
                    txn.interval = t1;
                    txn.retransmit_at = Some(now + t1); // timer G
                    arm = Some(t1);
                }
            } else {
                txn.state = ServerState::Completed;
                // Timer J: 64·T1 on UDP to absorb retransmissions, zero on streams.
                let j = if reliable { Duration::ZERO } else { 64 * t1 };
                txn.end_at = Some(now + j);
                arm = Some(j);
            }
        }
        let _ = t4;
        if let Some(delay) = arm {
            self.timers.push_after(now, delay, Timer::ServerTxn(id));
        }
        self.queue(transport, local, dest, TransmitKind::Sip, bytes);
    }

    /// A request matched an existing server transaction: a retransmission (or an ACK for a
    /// non-2xx final). Absorb it, answering with the last response where the RFC says so.
    pub(crate) fn absorb(&mut self, now: Instant, id: u64, is_ack: bool) {
        let t4 = self.config.t4;
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
        if is_ack {
            if txn.invite && txn.state == ServerState::Completed {
                txn.state = ServerState::Confirmed;
                txn.retransmit_at = None;
                let end = if txn.transport == Transport::Tcp {
                    now
                } else {
                    now + t4
                };
                txn.end_at = Some(end); // timer I
                self.timers.push(end, Timer::ServerTxn(id));
            }
            return;
        }
        if txn.state == ServerState::Confirmed {
            return;
        }
        if let Some(last) = txn.last.clone() {
            let (transport, local, dest) = (txn.transport, txn.local, txn.dest);
            self.queue(transport, local, dest, TransmitKind::Sip, last);
        }
    }

    fn server_txn_timer(&mut self, now: Instant, at: Instant, id: u64) {
        let t2 = self.config.t2;
        let Some(txn) = self.txns.get_mut(&id) else {
            return;
        };
        if txn.retransmit_at == Some(at) && txn.state == ServerState::Completed {
            // Timer G: retransmit the non-2xx final, doubling to T2.
            txn.interval = (txn.interval * 2).min(t2);
            let next = now + txn.interval;
            let end = txn.end_at.unwrap_or(next);
            txn.retransmit_at = (next < end).then_some(next);
            if let Some(r) = txn.retransmit_at {
                self.timers.push(r, Timer::ServerTxn(id));
            } else {
                self.timers.push(end, Timer::ServerTxn(id));
            }
            if let Some(last) = txn.last.clone() {
                let (transport, local, dest) = (txn.transport, txn.local, txn.dest);
                self.queue(transport, local, dest, TransmitKind::Sip, last);
            }
            return;
        }
        if txn.end_at == Some(at)
            || txn
                .end_at
                .is_some_and(|e| e <= now && txn.retransmit_at.is_none())
        {
            // Timer H (no ACK for a non-2xx: give up), I, J or L: the transaction is over.
            self.drop_server_txn(id);
        }
    }

    pub(crate) fn drop_server_txn(&mut self, id: u64) {
        // Out of the indexes first, while the transaction still holds the keys they check.
        let txns = &self.txns;
        if let Some(txn) = txns.get(&id) {
            self.txn_index.remove(txn.key.hashed(), id);
            if let Some(m) = &txn.merge {
                // Only if still ours: a merged request's 482 took the key over.
                self.merge_index.remove(m.hashed(), id);
            }
        }
        self.txns.discard(&id);
    }

    /// Build and send a complete response to `req` on transaction `id` (no body).
    pub(crate) fn reply(
        &mut self,
        now: Instant,
        id: u64,
        req: &Request<'_>,
        code: u16,
        to_tag: Option<&str>,
        extra: &[(&str, &str)],
    ) {
        // Written into the reused scratch buffer, then copied once into the shared bytes the
        // transaction keeps and the queue sends.
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut w = build::start_response(
            &mut scratch,
            req,
            code,
            None,
            to_tag,
            &self.config.user_agent,
        );
        for (name, value) in extra {
            w.header(name, value);
        }
        w.finish(None);
        let bytes = Arc::from(&scratch[..]);
        self.scratch = scratch;
        if code >= 300 {
            self.emit(Event::Rejected {
                remote: req.remote,
                method: req.method.to_string(),
                code,
                reason: crate::sip::reason_phrase(code).to_string(),
            });
        }
        self.respond(now, id, bytes, code);
    }

    /// Answer a request statelessly-but-absorbing: create its transaction and send a final.
    pub(crate) fn respond_final(
        &mut self,
        now: Instant,
        req: &Request<'_>,
        key: TxnKey,
        code: u16,
        extra: &[(&str, &str)],
    ) {
        let id = self.new_server_txn(req, key, None);
        let tag = if req.to_tag.is_empty() {
            Some(self.token())
        } else {
            None
        };
        self.reply(now, id, req, code, tag.as_deref(), extra);
    }

    // ----- client transactions (requests we send) -----

    pub(crate) fn send_request(
        &mut self,
        now: Instant,
        method: &'static str,
        purpose: ClientPurpose,
        branch: String,
        bytes: Vec<u8>,
        path: Path,
    ) {
        let Path {
            transport,
            local,
            dest,
        } = path;
        let id = self.id();
        let t1 = self.config.t1;
        let reliable = transport == Transport::Tcp;
        let retransmit_at = (!reliable).then_some(now + t1);
        let end_at = now + 64 * t1;
        if let Some(r) = retransmit_at {
            self.timers.push(r, Timer::ClientTxn(id));
        }
        self.timers.push(end_at, Timer::ClientTxn(id));
        self.client_index.insert(branch.clone(), id);
        self.queue(transport, local, dest, TransmitKind::Sip, bytes.clone());
        self.client_txns.insert(
            id,
            ClientTxn {
                branch,
                method,
                purpose,
                bytes,
                transport,
                local,
                dest,
                retransmit_at,
                interval: t1,
                end_at,
                done: false,
            },
        );
    }

    fn client_txn_timer(&mut self, now: Instant, at: Instant, id: u64) {
        let t2 = self.config.t2;
        let Some(txn) = self.client_txns.get_mut(&id) else {
            return;
        };
        if txn.retransmit_at == Some(at) && !txn.done {
            // Timer E: retransmit, doubling to T2.
            txn.interval = (txn.interval * 2).min(t2);
            let next = now + txn.interval;
            txn.retransmit_at = (next < txn.end_at).then_some(next);
            if let Some(r) = txn.retransmit_at {
                self.timers.push(r, Timer::ClientTxn(id));
            }
            let (transport, local, dest, bytes) =
                (txn.transport, txn.local, txn.dest, txn.bytes.clone());
            self.queue(transport, local, dest, TransmitKind::Sip, bytes);
            return;
        }
        if at == txn.end_at {
            let timed_out = !txn.done;
            let purpose = txn.purpose;
            let branch = txn.branch.clone();
            self.client_txns.remove(&id);
            self.client_index.remove(&branch);
            if timed_out {
                // Timer F: no final response (408 equivalent, RFC 3261 §17.1.2.2).
                super::calls::client_outcome(self, now, purpose, 408);
            }
            self.finish_drain(now, false);
        }
    }

    /// A response to one of our requests (matched by branch, RFC 3261 §17.1.3).
    pub(crate) fn client_response(&mut self, now: Instant, branch: &str, method: &str, code: u16) {
        let Some(&id) = self.client_index.get(branch) else {
            return;
        };
        let t4 = self.config.t4;
        let Some(txn) = self.client_txns.get_mut(&id) else {
            return;
        };
        if txn.method != method {
            return;
        }
        if code < 200 {
            // Proceeding: keep retransmitting at T2 (§17.1.2.2).
            txn.interval = self.config.t2;
            return;
        }
        if txn.done {
            return;
        }
        txn.done = true;
        txn.retransmit_at = None;
        let purpose = txn.purpose;
        // Timer K: absorb retransmitted responses for T4 on UDP.
        txn.end_at = if txn.transport == Transport::Tcp {
            now
        } else {
            now + t4
        };
        let end = txn.end_at;
        self.timers.push(end, Timer::ClientTxn(id));
        super::calls::client_outcome(self, now, purpose, code);
        self.finish_drain(now, false);
    }

    /// After Shutdown: emit `Drained` once every call is gone and every BYE answered (or at the
    /// grace deadline, whatever is left).
    pub(crate) fn finish_drain(&mut self, now: Instant, deadline: bool) {
        if self.draining.is_none() || self.drained_sent {
            return;
        }
        let byes_pending = self
            .client_txns
            .values()
            .any(|t| t.purpose == ClientPurpose::Bye && !t.done);
        if deadline || (self.calls.is_empty() && !byes_pending) {
            let handles: Vec<CallHandle> = self.calls.keys().collect();
            for h in handles {
                super::calls::forget(self, now, h, EndReason::Control);
            }
            self.drained_sent = true;
            self.emit(Event::Drained);
        }
    }

    pub(crate) fn rng_u32(&mut self) -> u32 {
        self.rng.next_u32()
    }

    pub(crate) fn t1(&self) -> Duration {
        self.config.t1
    }
}

/// The merge key the transaction `id` holds (for [`HashIndex`] lookups).
pub(crate) fn merge_key_of(txns: &IdSlab<ServerTxn>, id: u64) -> Option<&HashedKey> {
    txns.get(&id)?.merge.as_ref().map(|m| m.hashed())
}
