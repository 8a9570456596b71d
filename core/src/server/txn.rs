//! SIP transactions (RFC 3261 §17): the server INVITE and non-INVITE machines, and the client
//! non-INVITE machine for the requests we send (BYE, UPDATE refreshes, OPTIONS).
//!
//! The machines own retransmission and absorption; the dialog layer (`calls.rs`) decides what
//! to answer. For INVITE we follow RFC 6026: after a 2xx the transaction waits in `Accepted`
//! (timer L = 64·T1) absorbing retransmitted INVITEs, while the dialog layer retransmits the 2xx
//! until the ACK arrives.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{ascii, CallHandle, Transport};

/// RFC 3261 §17.2.3 matching key: branch, sent-by, and the method (ACK and CANCEL match the
/// INVITE by branch; CANCEL has a transaction of its own).
///
/// Held as one string, `method SP sent-by SP branch`: one allocation per request instead of
/// three. Neither the method (a token) nor the sent-by (`host:port`) contains a space, so the
/// first two spaces split the key unambiguously whatever the branch holds.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TxnKey(HashedKey);

impl TxnKey {
    /// `host` is lower-cased (sent-by compares case-insensitively); `branch` is written from
    /// its parts in order.
    pub fn new(method: &str, host: &str, port: u16, branch: &[&str]) -> TxnKey {
        let len = branch.iter().map(|p| p.len()).sum::<usize>();
        let mut key = String::with_capacity(method.len() + host.len() + len + 8);
        key.push_str(method);
        key.push(' ');
        let host_at = key.len();
        key.push_str(host);
        key[host_at..].make_ascii_lowercase();
        key.push(':');
        key.push_str(ascii::decimal(port as u64, &mut [0; 20]));
        key.push(' ');
        for part in branch {
            key.push_str(part);
        }
        TxnKey(HashedKey::new(key))
    }

    /// The same sent-by and branch under another method (a CANCEL's INVITE).
    pub fn with_method(&self, method: &str) -> TxnKey {
        let rest = self.0.text().split_once(' ').map_or("", |(_, rest)| rest);
        let mut key = String::with_capacity(method.len() + 1 + rest.len());
        key.push_str(method);
        key.push(' ');
        key.push_str(rest);
        TxnKey(HashedKey::new(key))
    }
}

/// RFC 3261 §8.2.2.2 merged-request key of an INVITE without To tag: CSeq, Call-ID, From tag,
/// as `cseq SP call-id SP from-tag` (digits and a Call-ID hold no space: unambiguous).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct MergeKey(HashedKey);

impl MergeKey {
    pub fn new(call_id: &str, from_tag: &str, cseq: u32) -> MergeKey {
        let mut key = String::with_capacity(call_id.len() + from_tag.len() + 12);
        key.push_str(ascii::decimal(cseq as u64, &mut [0; 20]));
        key.push(' ');
        key.push_str(call_id);
        key.push(' ');
        key.push_str(from_tag);
        MergeKey(HashedKey::new(key))
    }
}

/// A map key ordered by a 64-bit hash of its text first and by the text only when the
/// hashes tie. The keys of one map share long prefixes (`INVITE 192.0.2.1:5060 z9hG4bK…`), so
/// ordering by text costs a `memcmp` per step of a B-tree search; the hash settles nearly
/// every step with one integer compare. The text still decides ties, so crafted collisions
/// gain a peer nothing: the map stays a B-tree, deterministic and O(log n), unlike a hash map
/// under flooding. Nothing iterates these maps, so their order is never visible.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct HashedKey {
    hash: u64,
    text: String,
}

impl HashedKey {
    pub fn new(text: String) -> HashedKey {
        // Eight bytes per round (rotate, xor, multiply by an odd constant), the tail padded
        // with zeros and the length mixed in; a final xor-shift spreads the high bits down.
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let bytes = text.as_bytes();
        let mut hash = bytes.len() as u64;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let word = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            hash = (hash.rotate_left(5) ^ word).wrapping_mul(K);
        }
        let mut tail = [0u8; 8];
        tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        hash = (hash.rotate_left(5) ^ u64::from_le_bytes(tail)).wrapping_mul(K);
        hash ^= hash >> 29;
        HashedKey { hash, text }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The text back, to reuse its buffer.
    pub fn into_text(self) -> String {
        self.text
    }
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
    pub last: Option<Arc<[u8]>>,
    pub last_code: u16,
    pub transport: Transport,
    pub local: SocketAddr,
    pub dest: SocketAddr,
    pub call: Option<CallHandle>,
    /// (Call-ID, From tag, CSeq) of an INVITE without To tag: merged-request detection (§8.2.2.2).
    pub merge: Option<MergeKey>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_their_parts() {
        let a = TxnKey::new("INVITE", "Host.Example", 5060, &["z9hG4bK", "1"]);
        assert_eq!(a.0.text(), "INVITE host.example:5060 z9hG4bK1");
        assert_eq!(
            a.with_method("CANCEL").0.text(),
            "CANCEL host.example:5060 z9hG4bK1"
        );
        assert_ne!(
            a,
            TxnKey::new("INVITE", "host.example", 5061, &["z9hG4bK1"])
        );
        assert_eq!(MergeKey::new("a@b", "t 1", 7).0.text(), "7 a@b t 1");
        let x = HashedKey::new("x".into());
        assert_eq!(x, HashedKey::new("x".into()));
        assert_ne!(x, HashedKey::new("y".into()));
        // A Call-ID holds no space, so the tag cannot move into it.
        assert_ne!(MergeKey::new("a", "b c", 1), MergeKey::new("a", "b", 1));
        assert_ne!(MergeKey::new("a", "b", 1), MergeKey::new("a", "b", 11));
    }
}
