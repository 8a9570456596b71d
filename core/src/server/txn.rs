//! SIP transactions (RFC 3261 §17): the server INVITE and non-INVITE machines, and the client
//! non-INVITE machine for the requests we send (BYE, UPDATE refreshes, OPTIONS).
//!
//! The machines own retransmission and absorption; the dialog layer (`calls.rs`) decides what
//! to answer. For INVITE we follow RFC 6026: after a 2xx the transaction waits in `Accepted`
//! (timer L = 64·T1) absorbing retransmitted INVITEs, while the dialog layer retransmits the 2xx
//! until the ACK arrives.

use std::collections::btree_map::{BTreeMap, Entry};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{CallHandle, Transport};

/// RFC 3261 §17.2.3 matching key: branch, sent-by, and the method (ACK and CANCEL match the
/// INVITE by branch; CANCEL has a transaction of its own).
///
/// Held as one text, `method SP sent-by SP branch`, inline when short (see [`KeyText`]). Neither
/// the method (a token) nor the sent-by (`host:port`) contains a space, so the first two spaces
/// split the key unambiguously whatever the branch holds.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TxnKey(HashedKey);

impl TxnKey {
    /// `host` is lower-cased (sent-by compares case-insensitively); `branch` is written from
    /// its parts in order.
    pub fn new(method: &str, host: &str, port: u16, branch: &[&str]) -> TxnKey {
        let mut port_buf = [0; 10];
        let port = digits(port as u32, &mut port_buf);
        let head = [method.as_bytes(), b" ", host.as_bytes(), b":", port, b" "];
        let text = match branch {
            [b] => {
                let [m, sp, h, colon, p, sp2] = head;
                KeyText::of([m, sp, h, colon, p, sp2, b.as_bytes()], Some(2))
            }
            _ => {
                let mut parts = Vec::with_capacity(6 + branch.len());
                parts.extend_from_slice(&head);
                parts.extend(branch.iter().map(|b| b.as_bytes()));
                KeyText::of_slice(&parts, Some(2))
            }
        };
        TxnKey(HashedKey::new(text))
    }

    /// The same sent-by and branch under another method (a CANCEL's INVITE).
    pub fn with_method(&self, method: &str) -> TxnKey {
        let rest = self.0.text().split_once(' ').map_or("", |(_, rest)| rest);
        let text = KeyText::of([method.as_bytes(), b" ", rest.as_bytes()], None);
        TxnKey(HashedKey::new(text))
    }
}

/// RFC 3261 §8.2.2.2 merged-request key of an INVITE without To tag: CSeq, Call-ID, From tag,
/// as `cseq SP call-id SP from-tag` (digits and a Call-ID hold no space: unambiguous).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct MergeKey(HashedKey);

impl MergeKey {
    pub fn new(call_id: &str, from_tag: &str, cseq: u32) -> MergeKey {
        let mut cseq_buf = [0; 10];
        let cseq = digits(cseq, &mut cseq_buf);
        MergeKey(HashedKey::new(KeyText::of(
            [cseq, b" ", call_id.as_bytes(), b" ", from_tag.as_bytes()],
            None,
        )))
    }
}

impl TxnKey {
    pub fn hashed(&self) -> &HashedKey {
        &self.0
    }
}

impl MergeKey {
    pub fn hashed(&self) -> &HashedKey {
        &self.0
    }
}

/// Key → id for keys their owners keep (a transaction its [`TxnKey`] and [`MergeKey`], a call
/// its dialog key): the B-tree holds only the 64-bit hash and the id, and a hit is confirmed
/// against the key the owner holds (`stored`, an O(1) slab lookup). Small entries make every
/// insert and remove cheap, and nothing is copied into the index.
///
/// It behaves exactly as a `BTreeMap<HashedKey, V>`: a key whose hash another key already
/// holds goes to `overflow`, a full map by key (only crafted or unlucky collisions get there),
/// and every key has at most one entry in either. `stored(v)` must give the key `v` was
/// inserted under for as long as the entry exists: insert after storing the owner, remove
/// before dropping it.
#[derive(Debug)]
pub(crate) struct HashIndex<V> {
    primary: BTreeMap<u64, V>,
    overflow: BTreeMap<HashedKey, V>,
}

impl<V> Default for HashIndex<V> {
    fn default() -> Self {
        HashIndex {
            primary: BTreeMap::new(),
            overflow: BTreeMap::new(),
        }
    }
}

impl<V: Copy> HashIndex<V> {
    pub fn get<'s>(
        &self,
        key: &HashedKey,
        stored: impl Fn(V) -> Option<&'s HashedKey>,
    ) -> Option<V> {
        if let Some(&v) = self.primary.get(&key.hash) {
            if stored(v).is_some_and(|k| k == key) {
                return Some(v);
            }
        }
        if self.overflow.is_empty() {
            return None;
        }
        self.overflow.get(key).copied()
    }

    pub fn insert<'s>(
        &mut self,
        key: &HashedKey,
        v: V,
        stored: impl Fn(V) -> Option<&'s HashedKey>,
    ) {
        match self.primary.entry(key.hash) {
            Entry::Vacant(e) => {
                e.insert(v);
                if !self.overflow.is_empty() {
                    self.overflow.remove(key);
                }
            }
            Entry::Occupied(mut e) => {
                if stored(*e.get()).is_some_and(|k| k == key) {
                    e.insert(v); // the same key again: replaced, as a map would
                } else {
                    self.overflow.insert(key.clone(), v);
                }
            }
        }
    }

    pub fn remove<'s>(&mut self, key: &HashedKey, stored: impl Fn(V) -> Option<&'s HashedKey>) {
        if let Entry::Occupied(e) = self.primary.entry(key.hash) {
            if stored(*e.get()).is_some_and(|k| k == key) {
                e.remove();
                return;
            }
        }
        if !self.overflow.is_empty() {
            self.overflow.remove(key);
        }
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
    text: KeyText,
}

impl HashedKey {
    pub fn new(text: KeyText) -> HashedKey {
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
        let tail = load(chunks.remainder());
        hash = (hash.rotate_left(5) ^ tail).wrapping_mul(K);
        hash ^= hash >> 29;
        HashedKey { hash, text }
    }

    /// The key of `parts` written one after the other.
    pub fn of<const N: usize>(parts: [&str; N]) -> HashedKey {
        HashedKey::new(KeyText::of(parts.map(str::as_bytes), None))
    }

    pub fn text(&self) -> &str {
        self.text.as_str()
    }
}

/// Bytes a key holds in place; longer keys go to the heap. Sized for the usual key
/// (`INVITE 203.0.113.7:5060 z9hG4bK` and a 32-digit branch; a Call-ID and our tag), so
/// building, storing and dropping a key does not allocate.
const INLINE: usize = 78;

/// The text of a map key: inline when it fits in [`INLINE`] bytes, else on the heap. Compares
/// and orders as its `str`, whichever way it is held.
#[derive(Clone)]
pub(crate) enum KeyText {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl KeyText {
    /// The text. Only whole `str`s and ASCII (digits, separators) are copied in, so the bytes
    /// are UTF-8.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    /// The text's bytes: what keys hash, compare and order by (byte order is `str` order),
    /// without re-checking UTF-8.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            KeyText::Inline { len, bytes } => &bytes[..*len as usize],
            KeyText::Heap(s) => s,
        }
    }
}

impl std::fmt::Debug for KeyText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

impl PartialEq for KeyText {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for KeyText {}

impl PartialOrd for KeyText {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for KeyText {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl KeyText {
    /// `parts` written one after the other; the part at index `lower` (if any) with its ASCII
    /// letters lower-cased (`make_ascii_lowercase`). Inlined with the number of parts known,
    /// so each part is one copy (a separator one store), not a trip round a loop.
    #[inline(always)]
    fn of<const N: usize>(parts: [&[u8]; N], lower: Option<usize>) -> KeyText {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total > INLINE {
            return KeyText::of_slice(&parts, lower);
        }
        let mut bytes = [0; INLINE];
        let mut len = 0;
        for (i, part) in parts.into_iter().enumerate() {
            let dst = &mut bytes[len..len + part.len()];
            dst.copy_from_slice(part);
            if lower == Some(i) {
                dst.make_ascii_lowercase();
            }
            len += part.len();
        }
        KeyText::Inline {
            len: len as u8,
            bytes,
        }
    }

    /// [`KeyText::of`] for any number of parts.
    #[inline(never)]
    fn of_slice(parts: &[&[u8]], lower: Option<usize>) -> KeyText {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let mut text = Vec::with_capacity(total);
        for (i, part) in parts.iter().enumerate() {
            let at = text.len();
            text.extend_from_slice(part);
            if lower == Some(i) {
                text[at..].make_ascii_lowercase();
            }
        }
        if total > INLINE {
            return KeyText::Heap(text.into_boxed_slice());
        }
        let mut bytes = [0; INLINE];
        bytes[..total].copy_from_slice(&text);
        KeyText::Inline {
            len: total as u8,
            bytes,
        }
    }
}

/// `v` in decimal, in the end of `buf` (for key text: no UTF-8 check wanted).
fn digits(mut v: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &buf[i..];
        }
    }
}

/// Up to eight bytes as a little-endian word, zero-padded: two overlapping loads (the bytes
/// both cover are the same, so or-ing them is exact) instead of a copy of variable length.
#[inline]
fn load(b: &[u8]) -> u64 {
    let n = b.len();
    debug_assert!(n <= 8);
    if n >= 4 {
        let lo = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64;
        let hi = u32::from_le_bytes([b[n - 4], b[n - 3], b[n - 2], b[n - 1]]) as u64;
        lo | hi << (8 * (n - 4))
    } else if n >= 2 {
        let lo = u16::from_le_bytes([b[0], b[1]]) as u64;
        let hi = u16::from_le_bytes([b[n - 2], b[n - 1]]) as u64;
        lo | hi << (8 * (n - 2))
    } else if n == 1 {
        b[0] as u64
    } else {
        0
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
        let x = HashedKey::of(["x"]);
        assert_eq!(x, HashedKey::of(["x"]));
        assert_ne!(x, HashedKey::of(["y"]));
        // A Call-ID holds no space, so the tag cannot move into it.
        assert_ne!(MergeKey::new("a", "b c", 1), MergeKey::new("a", "b", 1));
        assert_ne!(MergeKey::new("a", "b", 1), MergeKey::new("a", "b", 11));
    }

    /// Keys held inline and on the heap compare, order and hash as their text: a key of any
    /// length equals the same key built another way, and `with_method` round-trips.
    #[test]
    fn inline_and_heap_keys_agree() {
        for n in [
            0,
            1,
            30,
            INLINE - 30,
            INLINE - 8,
            INLINE - 7,
            INLINE - 6,
            100,
            300,
        ] {
            let branch = "b".repeat(n);
            let a = TxnKey::new("INVITE", "H.example", 5060, &["z9hG4bK", &branch]);
            let text = format!("INVITE h.example:5060 z9hG4bK{branch}");
            let whole = format!("z9hG4bK{branch}");
            assert_eq!(TxnKey::new("INVITE", "H.example", 5060, &[&whole]), a);
            assert_eq!(a.0.text(), text);
            assert_eq!(a.0, HashedKey::of([&text[..10], &text[10..]]));
            let heap = HashedKey::new(KeyText::Heap(text.clone().into_bytes().into_boxed_slice()));
            assert_eq!(a.0, heap);
            assert_eq!(a.0.cmp(&heap), std::cmp::Ordering::Equal);
            assert_eq!(a.with_method("CANCEL").with_method("INVITE"), a);
            let m = MergeKey::new(&branch, "tag", 12);
            assert_eq!(m.0.text(), format!("12 {branch} tag"));
        }
        // Texts order as `str` whichever way they are held.
        let short = KeyText::Heap(b"ab"[..].into());
        let long = HashedKey::of(["a", "c"]).text;
        assert!(short < long);
    }

    /// The index answers as a `BTreeMap` by key would, colliding hashes included: keys forced
    /// onto a handful of hash values, inserted, replaced and removed at random.
    #[test]
    fn hash_index_matches_a_map() {
        let mut rng = crate::rng::Rng::new(3);
        let mut owners: std::collections::BTreeMap<u64, HashedKey> = Default::default();
        let mut index = HashIndex::default();
        let mut model: BTreeMap<HashedKey, u64> = BTreeMap::new();
        let key = |n: u64| {
            let mut k = HashedKey::of([&format!("k{n}")]);
            k.hash = n % 3; // collisions on purpose
            k
        };
        for id in 0..3000u64 {
            let k = key(rng.below(12));
            match rng.below(3) {
                0 => {
                    owners.insert(id, k.clone());
                    index.insert(&k, id, |v| owners.get(&v));
                    model.insert(k, id);
                }
                1 => {
                    index.remove(&k, |v| owners.get(&v));
                    model.remove(&k);
                }
                _ => {}
            }
            for n in 0..12 {
                let k = key(n);
                assert_eq!(index.get(&k, |v| owners.get(&v)), model.get(&k).copied());
            }
        }
    }
}
