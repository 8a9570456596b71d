//! SIP transactions (RFC 3261 §17): the server INVITE and non-INVITE machines for requests we
//! receive, and the client machines for the requests we send (BYE, UPDATE, and a re-INVITE
//! that refreshes a session).
//!
//! A transaction owns its retransmissions and absorbs retransmitted requests; the dialogs
//! decide what to answer. For INVITE we follow RFC 6026: after a 2xx the transaction waits in
//! `Accepted` (timer L = 64·T1) absorbing retransmitted INVITEs, while the dialog retransmits
//! the 2xx until the ACK arrives (RFC 3261 §13.3.1.4).

mod keys;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) use keys::{MergeKey, TxnKey};

use super::limits::{Limits, TxnSources};
use super::messages;
use super::outbox::Path;
use super::request::Request;
use super::{CallHandle, Event, Io, ServerConfig, Timer, Transport};
use crate::hash_index::{HashIndex, HashedKey};
use crate::rng::Rng;
use crate::slab::IdSlab;

/// A server transaction's id: stable for its life, never reused.
pub(crate) type TxnId = u64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ServerState {
    /// Request received, no final response yet.
    Proceeding,
    /// Non-2xx final sent (INVITE: waiting for the ACK; non-INVITE: absorbing retransmissions).
    Completed,
    /// INVITE: the ACK for a non-2xx arrived; absorbing ACK retransmissions for T4 (timer I).
    Confirmed,
    /// INVITE: 2xx sent (RFC 6026); retransmitted INVITEs get the 2xx again.
    Accepted,
}

#[derive(Debug)]
struct ServerTxn {
    key: TxnKey,
    invite: bool,
    state: ServerState,
    /// The last response sent, for retransmitted requests.
    last: Option<Arc<[u8]>>,
    /// Where responses go (RFC 3261 §18.2.2).
    path: Path,
    call: Option<CallHandle>,
    /// (Call-ID, From tag, CSeq) of an INVITE without To tag: merged-request detection (§8.2.2.2).
    merge: Option<MergeKey>,
    /// Timer G (non-2xx retransmission), armed deadline and current interval.
    retransmit_at: Option<Instant>,
    interval: Duration,
    /// Timer H / I / J / L: when the transaction ends (state-dependent).
    end_at: Option<Instant>,
    /// The request's source address and its slot in [`TxnSources`], and the bytes this
    /// transaction keeps as those count them.
    source: IpAddr,
    slot: u32,
    kept: usize,
}

impl ServerTxn {
    /// Its bytes: itself, its keys' text on the heap and its last response.
    fn kept(&self) -> usize {
        std::mem::size_of::<ServerTxn>()
            + self.key.hashed().heap_len()
            + self.merge.as_ref().map_or(0, |m| m.hashed().heap_len())
            + self.last.as_ref().map_or(0, |l| l.len())
    }
}

/// What a client transaction is for, so its outcome reaches the right place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClientPurpose {
    /// `confirmed`: the caller ACKed our 2xx. A BYE for a call it never confirmed goes once, not
    /// on timer E: that caller never showed it receives at its address, and to a spoofed one
    /// eleven BYEs would be eleven datagrams of reflection for one INVITE.
    Bye { confirmed: bool },
    /// A session refresh (RFC 4028 §7.4) by UPDATE or by re-INVITE.
    Refresh(CallHandle, RefreshBy),
    /// An in-dialog OPTIONS asking whether the caller is still there (`keepalive_interval`).
    KeepAlive(CallHandle),
    /// A REGISTER for the account at this index of `ServerConfig::registrations`.
    Register(usize),
    /// The INVITE of a call we place (its provisional responses are outcomes too).
    Invite(CallHandle),
    /// The CANCEL of a call we place that is not answered yet.
    Cancel(CallHandle),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RefreshBy {
    Update,
    Invite,
}

#[derive(Debug)]
struct ClientTxn {
    branch: String,
    method: &'static str,
    purpose: ClientPurpose,
    bytes: Vec<u8>,
    /// An INVITE's ACK for a final error, sent by the transaction (RFC 3261 §17.1.1.3).
    ack: Option<Vec<u8>>,
    path: Path,
    /// Timer E (A for an INVITE): next retransmission and interval; `None` once a response
    /// arrived that stops them.
    retransmit_at: Option<Instant>,
    interval: Duration,
    /// Timer F (B) to give up, then after the final response timer K (D for an INVITE's error,
    /// M for its 2xx, RFC 6026) to forget.
    end_at: Instant,
    done: bool,
    /// An INVITE's final response was a 2xx: retransmissions of it go to the dialog, which
    /// acknowledges each (RFC 3261 §13.2.2.4).
    accepted: bool,
}

/// The outcome of a request we sent: its purpose and the final status code (408 when no final
/// response came, RFC 3261 §17.1.1.2, §17.1.2.2), or a 2xx to an INVITE come again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ClientOutcome {
    pub purpose: ClientPurpose,
    pub code: u16,
    pub repeat: bool,
}

/// Every transaction, server and client, and the indexes that find them.
#[derive(Debug)]
pub(crate) struct Transactions {
    /// Server transactions by id (see `IdSlab`).
    server: IdSlab<ServerTxn>,
    /// Transaction key → transaction, and merge key → INVITE transaction (see `HashIndex`).
    index: HashIndex<TxnId>,
    merge_index: HashIndex<TxnId>,
    /// Server transactions and their bytes per source address, for the caps in [`Limits`].
    sources: TxnSources,
    client: BTreeMap<u64, ClientTxn>,
    client_index: BTreeMap<String, u64>,
    next_client: u64,
    t1: Duration,
    t2: Duration,
    t4: Duration,
    /// Our Server header.
    server_header: String,
    /// Reused for writing responses.
    scratch: Vec<u8>,
}

impl Transactions {
    pub fn new(config: &ServerConfig) -> Transactions {
        Transactions {
            server: IdSlab::releasing(),
            index: HashIndex::default(),
            merge_index: HashIndex::default(),
            sources: TxnSources::default(),
            client: BTreeMap::new(),
            client_index: BTreeMap::new(),
            next_client: 1,
            t1: config.t1,
            t2: config.t2,
            t4: config.t4,
            server_header: config.user_agent.clone(),
            scratch: Vec::with_capacity(2048),
        }
    }

    /// New RFC 3261 timers and Server header apply to what happens next.
    pub fn reconfigure(&mut self, config: &ServerConfig) {
        (self.t1, self.t2, self.t4) = (config.t1, config.t2, config.t4);
        self.server_header.clone_from(&config.user_agent);
    }

    // ----- server transactions -----

    /// May a request from `ip` open a server transaction within the caps?
    pub fn admits(&self, limits: &Limits, ip: IpAddr) -> bool {
        self.sources.admits(limits, ip)
    }

    /// Server and client transactions, the bytes the server ones keep, and their sources.
    pub fn occupancy(&self) -> (usize, usize, usize, usize) {
        (
            self.server.len(),
            self.client.len(),
            self.sources.bytes(),
            self.sources.sources(),
        )
    }

    pub fn find(&self, key: &TxnKey) -> Option<TxnId> {
        let server = &self.server;
        self.index
            .get(key.hashed(), |id| server.get(&id).map(|t| t.key.hashed()))
    }

    /// The INVITE transaction an ACK belongs to (RFC 3261 §17.2.3), found without writing the
    /// ACK's key out (it is never kept), unless it is an RFC 2543 peer's.
    pub fn find_ack(&self, req: &Request<'_>) -> Option<TxnId> {
        let via = &req.top_via;
        if !via.branch.starts_with("z9hG4bK") {
            return self.find(&TxnKey::of(req));
        }
        let key = ("INVITE", via.host, via.sent_by_port, via.branch);
        TxnKey::find(&self.index, key, |id| {
            self.server.get(&id).map(|t| t.key.hashed())
        })
    }

    /// Is an INVITE with this merge key already in progress (a merged request, §8.2.2.2)?
    pub fn is_merged(&self, merge: &MergeKey) -> bool {
        let server = &self.server;
        self.merge_index
            .get(merge.hashed(), |id| merge_key_of(server, id))
            .is_some()
    }

    pub fn state(&self, id: TxnId) -> Option<ServerState> {
        self.server.get(&id).map(|t| t.state)
    }

    /// The call a server transaction belongs to, and its state.
    pub fn call_and_state(&self, id: TxnId) -> Option<(Option<CallHandle>, ServerState)> {
        self.server.get(&id).map(|t| (t.call, t.state))
    }

    /// Where the responses of a transaction go.
    pub fn response_path(&self, id: TxnId) -> Option<Path> {
        self.server.get(&id).map(|t| t.path)
    }

    /// Start a server transaction for `req`. `merge` is its merge key: `Some` exactly for an
    /// INVITE without To tag ([`MergeKey::of`]).
    pub fn open(
        &mut self,
        req: &Request<'_>,
        key: TxnKey,
        merge: Option<MergeKey>,
        call: Option<CallHandle>,
    ) -> TxnId {
        let invite = req.method == "INVITE";
        debug_assert_eq!(merge.is_some(), invite && req.to_tag.is_empty());
        let id = self.server.insert(ServerTxn {
            key,
            invite,
            state: ServerState::Proceeding,
            last: None,
            path: Path {
                transport: req.transport,
                local: req.local,
                dest: messages::response_destination(req),
            },
            call,
            merge,
            retransmit_at: None,
            interval: self.t1,
            end_at: None,
            source: req.remote.ip(),
            slot: 0,
            kept: 0,
        });
        if let Some(txn) = self.server.get_mut(&id) {
            txn.kept = txn.kept();
            txn.slot = self.sources.opened(txn.source, txn.kept);
        }
        let server = &self.server;
        if let Some(txn) = server.get(&id) {
            if let Some(m) = &txn.merge {
                self.merge_index
                    .insert(m.hashed(), id, |v| merge_key_of(server, v));
            }
            self.index.insert(txn.key.hashed(), id, |v| {
                server.get(&v).map(|t| t.key.hashed())
            });
        }
        id
    }

    /// Send a response on a server transaction and move it along (RFC 3261 §17.2.1, §17.2.2).
    pub fn respond(&mut self, io: &mut Io<'_>, id: TxnId, bytes: Arc<[u8]>, code: u16) {
        let (now, t1) = (io.now, self.t1);
        let Some(txn) = self.server.get_mut(&id) else {
            return;
        };
        // A client that has had no provisional response is still retransmitting its INVITE on
        // timer A (RFC 3261 §17.1.1.2), and each retransmission gets our final again.
        let caller_retransmits = txn.last.is_none();
        let kept = txn.kept - txn.last.as_ref().map_or(0, |l| l.len()) + bytes.len();
        txn.last = Some(bytes.clone());
        self.sources.resized(txn.slot, txn.kept, kept);
        txn.kept = kept;
        let reliable = txn.path.transport == Transport::Tcp;
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
                // Timer G only when the caller has stopped retransmitting (it had a 1xx): for an
                // INVITE refused at once, our retransmissions would add nothing the caller's do
                // not, and to a spoofed source they would be 11 datagrams for one.
                if !reliable && !caller_retransmits {
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
        if let Some(delay) = arm {
            io.timers.push_after(now, delay, Timer::ServerTxn(id));
        }
        io.out.sip(txn.path, bytes);
    }

    /// A request matched an existing server transaction: a retransmission (or an ACK for a
    /// non-2xx final). Absorb it, answering with the last response where the RFC says so.
    pub fn absorb(&mut self, io: &mut Io<'_>, id: TxnId, is_ack: bool) {
        let Some(txn) = self.server.get_mut(&id) else {
            return;
        };
        if is_ack {
            if txn.invite && txn.state == ServerState::Completed {
                txn.state = ServerState::Confirmed;
                txn.retransmit_at = None;
                let end = if txn.path.transport == Transport::Tcp {
                    io.now
                } else {
                    io.now + self.t4
                };
                txn.end_at = Some(end); // timer I
                io.timers.push(end, Timer::ServerTxn(id));
            }
            return;
        }
        if txn.state == ServerState::Confirmed {
            return;
        }
        if let Some(last) = txn.last.clone() {
            io.out.sip(txn.path, last);
        }
    }

    pub fn on_server_timer(&mut self, io: &mut Io<'_>, at: Instant, id: TxnId) {
        let now = io.now;
        let Some(txn) = self.server.get_mut(&id) else {
            return;
        };
        if txn.retransmit_at == Some(at) && txn.state == ServerState::Completed {
            // Timer G: retransmit the non-2xx final, doubling to T2.
            txn.interval = (txn.interval * 2).min(self.t2);
            let next = now + txn.interval;
            let end = txn.end_at.unwrap_or(next);
            txn.retransmit_at = (next < end).then_some(next);
            io.timers
                .push(txn.retransmit_at.unwrap_or(end), Timer::ServerTxn(id));
            if let Some(last) = txn.last.clone() {
                io.out.sip(txn.path, last);
            }
            return;
        }
        if txn.end_at == Some(at)
            || txn
                .end_at
                .is_some_and(|e| e <= now && txn.retransmit_at.is_none())
        {
            // Timer H (no ACK for a non-2xx: give up), I, J or L: the transaction is over.
            self.close(id);
        }
    }

    fn close(&mut self, id: TxnId) {
        // Out of the indexes first, while the transaction still holds the keys they check.
        if let Some(txn) = self.server.get(&id) {
            self.index.remove(txn.key.hashed(), id);
            if let Some(m) = &txn.merge {
                // Only if still ours: a merged request's 482 took the key over.
                self.merge_index.remove(m.hashed(), id);
            }
            self.sources.closed(txn.source, txn.slot, txn.kept);
        }
        self.server.discard(&id);
    }

    /// Write a complete response to `req` (no body) and send it on transaction `id`; a final
    /// error is reported as [`Event::Rejected`].
    pub fn reply(
        &mut self,
        io: &mut Io<'_>,
        id: TxnId,
        req: &Request<'_>,
        code: u16,
        to_tag: Option<&str>,
        extra: &[(&str, &str)],
    ) {
        // Written into the reused scratch buffer, then copied once into the shared bytes the
        // transaction keeps and the queue sends.
        let mut scratch = std::mem::take(&mut self.scratch);
        messages::write_reply(&mut scratch, req, code, to_tag, extra, &self.server_header);
        let bytes = Arc::from(&scratch[..]);
        self.scratch = scratch;
        if code >= 300 {
            rejected(io, req, code);
        }
        self.respond(io, id, bytes, code);
    }

    /// Answer a request with a final response kept nowhere (see `Cx::respond_stateless`).
    pub fn respond_stateless(
        &mut self,
        io: &mut Io<'_>,
        rng: &mut Rng,
        req: &Request<'_>,
        code: u16,
        extra: &[(&str, &str)],
    ) {
        let tag = req.to_tag.is_empty().then(|| rng.token());
        let mut scratch = std::mem::take(&mut self.scratch);
        messages::write_reply(
            &mut scratch,
            req,
            code,
            tag.as_deref(),
            extra,
            &self.server_header,
        );
        let path = Path {
            transport: req.transport,
            local: req.local,
            dest: messages::response_destination(req),
        };
        io.out.sip(path, Arc::from(&scratch[..]));
        self.scratch = scratch;
        rejected(io, req, code);
    }

    /// Answer a request with a final response on a transaction of its own (which absorbs its
    /// retransmissions), with a To tag of ours if it has none.
    pub fn respond_final(
        &mut self,
        io: &mut Io<'_>,
        rng: &mut Rng,
        req: &Request<'_>,
        key: TxnKey,
        code: u16,
        extra: &[(&str, &str)],
    ) {
        let id = self.open(req, key, MergeKey::of(req), None);
        let tag = req.to_tag.is_empty().then(|| rng.token());
        self.reply(io, id, req, code, tag.as_deref(), extra);
    }

    // ----- client transactions (requests we send) -----

    /// Send a request on a client transaction of its own. `ack`: for an INVITE, the ACK the
    /// transaction sends if the answer is a final error (same branch, RFC 3261 §17.1.1.3).
    #[allow(clippy::too_many_arguments)]
    pub fn send_request(
        &mut self,
        io: &mut Io<'_>,
        method: &'static str,
        purpose: ClientPurpose,
        branch: String,
        bytes: Vec<u8>,
        ack: Option<Vec<u8>>,
        path: Path,
    ) {
        let now = io.now;
        let id = self.next_client;
        self.next_client += 1;
        let t1 = self.t1;
        let reliable = path.transport == Transport::Tcp;
        let once = purpose == ClientPurpose::Bye { confirmed: false };
        let retransmit_at = (!reliable && !once).then_some(now + t1);
        let end_at = now + 64 * t1;
        if let Some(r) = retransmit_at {
            io.timers.push(r, Timer::ClientTxn(id));
        }
        io.timers.push(end_at, Timer::ClientTxn(id));
        self.client_index
            .insert(index_key(&branch, method).into_owned(), id);
        io.out.sip(path, bytes.clone());
        self.client.insert(
            id,
            ClientTxn {
                branch,
                method,
                purpose,
                bytes,
                ack,
                path,
                retransmit_at,
                interval: t1,
                end_at,
                done: false,
                accepted: false,
            },
        );
    }

    /// Timer E or A (retransmit), F or B (no final response: the outcome is a 408), or K, D or
    /// M (forget).
    pub fn on_client_timer(
        &mut self,
        io: &mut Io<'_>,
        at: Instant,
        id: u64,
    ) -> Option<ClientOutcome> {
        let now = io.now;
        let txn = self.client.get_mut(&id)?;
        if txn.retransmit_at == Some(at) && !txn.done {
            // Timer E doubles up to T2; an INVITE's timer A doubles without a cap.
            txn.interval = if txn.method == "INVITE" {
                txn.interval * 2
            } else {
                (txn.interval * 2).min(self.t2)
            };
            let next = now + txn.interval;
            txn.retransmit_at = (next < txn.end_at).then_some(next);
            if let Some(r) = txn.retransmit_at {
                io.timers.push(r, Timer::ClientTxn(id));
            }
            io.out.sip(txn.path, txn.bytes.clone());
            return None;
        }
        if at != txn.end_at {
            return None;
        }
        let txn = self.client.remove(&id)?;
        self.client_index
            .remove(&*index_key(&txn.branch, txn.method));
        (!txn.done).then_some(ClientOutcome {
            purpose: txn.purpose,
            code: 408,
            repeat: false,
        })
    }

    /// A response to one of our requests (matched by branch, RFC 3261 §17.1.3): the outcome
    /// when it is the first final one, or a 2xx to an INVITE come again.
    pub fn on_response(
        &mut self,
        io: &mut Io<'_>,
        branch: &str,
        method: &str,
        code: u16,
    ) -> Option<ClientOutcome> {
        let id = *self.client_index.get(&*index_key(branch, method))?;
        let txn = self.client.get_mut(&id)?;
        if txn.method != method {
            return None;
        }
        let invite = txn.method == "INVITE";
        if code < 200 {
            if invite {
                // Proceeding: an INVITE is no longer retransmitted (§17.1.1.2), and timer B
                // no longer runs: a callee may ring for minutes. The wait is bounded anyway,
                // as a proxy's timer C bounds it (§16.6: above 3 minutes after the last
                // provisional response).
                txn.retransmit_at = None;
                if !txn.done {
                    txn.end_at = io.now + RINGING_LIMIT;
                    io.timers.push(txn.end_at, Timer::ClientTxn(id));
                }
                if matches!(txn.purpose, ClientPurpose::Invite(_)) && !txn.done {
                    // A call we place may now be cancelled (RFC 3261 §9.1).
                    return Some(ClientOutcome {
                        purpose: txn.purpose,
                        code,
                        repeat: false,
                    });
                }
            } else {
                // Proceeding: keep retransmitting at T2 (§17.1.2.2).
                txn.interval = self.t2;
            }
            return None;
        }
        if txn.done {
            if txn.accepted && code < 300 {
                return Some(ClientOutcome {
                    purpose: txn.purpose,
                    code,
                    repeat: true,
                });
            }
            if let Some(ack) = &txn.ack {
                // A final error come again: the ACK again (§17.1.1.2).
                io.out.sip(txn.path, ack.clone());
            }
            return None;
        }
        txn.done = true;
        txn.retransmit_at = None;
        let reliable = txn.path.transport == Transport::Tcp;
        txn.end_at = if invite && code < 300 {
            // RFC 6026 timer M: the 2xx's retransmissions still reach the dialog.
            txn.accepted = true;
            txn.ack = None;
            io.now + 64 * self.t1
        } else if invite {
            if let Some(ack) = &txn.ack {
                io.out.sip(txn.path, ack.clone());
            }
            // Timer D: absorb retransmitted finals, 32 s on UDP.
            io.now
                + if reliable {
                    Duration::ZERO
                } else {
                    Duration::from_secs(32)
                }
        } else if reliable {
            io.now
        } else {
            // Timer K: absorb retransmitted responses for T4 on UDP.
            io.now + self.t4
        };
        io.timers.push(txn.end_at, Timer::ClientTxn(id));
        Some(ClientOutcome {
            purpose: txn.purpose,
            code,
            repeat: false,
        })
    }

    /// End every client transaction still waiting on `transport` to `dest`: the transport
    /// failed. Their outcomes are 408s (RFC 3261 §8.1.3.1 treats a transport error like a
    /// timeout for a request that was never answered).
    pub fn fail_path(
        &mut self,
        transport: Transport,
        dest: std::net::SocketAddr,
    ) -> Vec<ClientOutcome> {
        let failed: Vec<u64> = self
            .client
            .iter()
            .filter(|(_, t)| !t.done && t.path.transport == transport && t.path.dest == dest)
            .map(|(id, _)| *id)
            .collect();
        let mut outcomes = Vec::with_capacity(failed.len());
        for id in failed {
            if let Some(txn) = self.client.remove(&id) {
                self.client_index
                    .remove(&*index_key(&txn.branch, txn.method));
                outcomes.push(ClientOutcome {
                    purpose: txn.purpose,
                    code: 408,
                    repeat: false,
                });
            }
        }
        outcomes
    }

    /// Send the ACK of a final error to the INVITE on `branch` (RFC 3261 §17.1.1.3), and again
    /// for each retransmission of that response: for an INVITE that makes a dialog, whose ACK
    /// takes the To of the response, so it is written once the response came.
    pub fn acknowledge_error(&mut self, io: &mut Io<'_>, branch: &str, ack: Vec<u8>) {
        let Some(txn) = self
            .client_index
            .get(branch)
            .and_then(|id| self.client.get_mut(id))
        else {
            return;
        };
        io.out.sip(txn.path, ack.clone());
        txn.ack = Some(ack);
    }

    /// Did the client transaction `branch` send its request to `remote`?
    pub fn sent_to(&self, branch: &str, remote: std::net::SocketAddr) -> bool {
        self.client_index
            .get(branch)
            .and_then(|id| self.client.get(id))
            .is_some_and(|t| t.path.dest == remote)
    }

    /// Is a BYE of ours still waiting for its final response?
    pub fn byes_pending(&self) -> bool {
        self.client
            .values()
            .any(|t| matches!(t.purpose, ClientPurpose::Bye { .. }) && !t.done)
    }
}

/// How long an INVITE of ours waits for its final response after the last provisional one.
const RINGING_LIMIT: Duration = Duration::from_secs(181);

/// A client transaction's key in `client_index`: its branch, except a CANCEL's, which shares
/// the branch of the INVITE it cancels (RFC 3261 §9.1) and is told apart by its method.
fn index_key<'a>(branch: &'a str, method: &str) -> std::borrow::Cow<'a, str> {
    if method == "CANCEL" {
        format!("{branch} CANCEL").into()
    } else {
        branch.into()
    }
}

/// Report a final error to `req`.
fn rejected(io: &mut Io<'_>, req: &Request<'_>, code: u16) {
    io.out.event(Event::Rejected {
        remote: req.remote,
        method: req.method.to_string(),
        code,
        reason: crate::sip::reason_phrase(code).to_string(),
    });
}

/// The merge key the transaction `id` holds (for [`HashIndex`] lookups).
fn merge_key_of(server: &IdSlab<ServerTxn>, id: TxnId) -> Option<&HashedKey> {
    server.get(&id)?.merge.as_ref().map(|m| m.hashed())
}
