//! SIP transactions (RFC 3261 §17): the server INVITE and non-INVITE machines, and the client
//! non-INVITE machine for the requests we send (BYE, UPDATE refreshes, OPTIONS).
//!
//! The machines own retransmission and absorption; the dialog layer (`calls.rs`) decides what
//! to answer. For INVITE we follow RFC 6026: after a 2xx the transaction waits in `Accepted`
//! (timer L = 64·T1) absorbing retransmitted INVITEs, while the dialog layer retransmits the 2xx
//! until the ACK arrives.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{CallHandle, Transport};

/// RFC 3261 §17.2.3 matching key: branch, sent-by, and the method (ACK and CANCEL match the
/// INVITE by branch; CANCEL has a transaction of its own).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TxnKey {
    pub branch: String,
    pub sent_by: String,
    pub method: String,
}

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
pub(crate) struct ServerTxn {
    pub key: TxnKey,
    pub invite: bool,
    pub state: ServerState,
    /// The last response sent, for retransmitted requests.
    pub last: Option<Vec<u8>>,
    pub last_code: u16,
    pub transport: Transport,
    pub local: SocketAddr,
    pub dest: SocketAddr,
    pub call: Option<CallHandle>,
    /// (Call-ID, From tag, CSeq) of an INVITE without To tag: merged-request detection (§8.2.2.2).
    pub merge: Option<(String, String, u32)>,
    /// Timer G (non-2xx retransmission), armed deadline and current interval.
    pub retransmit_at: Option<Instant>,
    pub interval: Duration,
    /// Timer H / I / J / L: when the transaction ends (state-dependent).
    pub end_at: Option<Instant>,
}

/// What a client transaction is for, so its outcome reaches the right place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClientPurpose {
    Bye,
    SessionRefresh(CallHandle),
}

#[derive(Debug)]
pub(crate) struct ClientTxn {
    pub branch: String,
    pub method: &'static str,
    pub purpose: ClientPurpose,
    pub bytes: Vec<u8>,
    pub transport: Transport,
    pub local: SocketAddr,
    pub dest: SocketAddr,
    /// Timer E: next retransmission and interval; `None` once a final response arrived.
    pub retransmit_at: Option<Instant>,
    pub interval: Duration,
    /// Timer F (give up) or, after the final response, timer K (forget).
    pub end_at: Instant,
    pub done: bool,
}
