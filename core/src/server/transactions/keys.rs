//! The keys server transactions are found by: the RFC 3261 §17.2.3 matching key, and the
//! §8.2.2.2 merged-request key.

use super::super::request::Request;
use crate::ascii::{self, decimal_bytes};
use crate::hash_index::{hash_bytes, HashIndex, HashedKey, KeyText};

/// RFC 3261 §17.2.3 matching key: branch, sent-by, and the method (ACK and CANCEL match the
/// INVITE by branch; CANCEL has a transaction of its own).
///
/// Held as one text, `method SP sent-by SP branch`, inline when short (see [`KeyText`]). Neither
/// the method (a token) nor the sent-by (`host:port`) contains a space, so the first two spaces
/// split the key unambiguously whatever the branch holds.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TxnKey(HashedKey);

impl TxnKey {
    /// The key of the server transaction `req` belongs to: an ACK's is its INVITE's.
    pub fn of(req: &Request<'_>) -> TxnKey {
        let method = match req.method {
            "ACK" => "INVITE",
            m => m,
        };
        let via = &req.top_via;
        if via.branch.starts_with("z9hG4bK") {
            TxnKey::new(method, via.host, via.sent_by_port, &[via.branch])
        } else {
            // RFC 2543 peers: no magic cookie, so match on the request's identity (§17.2.3).
            let cseq = ascii::decimal(req.cseq as u64, &mut [0; 20]).to_owned();
            let parts = [
                "2543|",
                req.call_id,
                "|",
                req.from_tag,
                "|",
                &cseq,
                "|",
                via.branch,
            ];
            TxnKey::new(method, via.host, via.sent_by_port, &parts)
        }
    }

    /// `host` is lower-cased (sent-by compares case-insensitively); `branch` is written from
    /// its parts in order.
    pub fn new(method: &str, host: &str, port: u16, branch: &[&str]) -> TxnKey {
        let mut port_buf = [0; 20];
        let port = decimal_bytes(port as u64, &mut port_buf);
        match branch {
            [b] => {
                let text = KeyText::txn(method.as_bytes(), host.as_bytes(), port, b.as_bytes());
                let hash = hash_bytes(b.as_bytes());
                TxnKey(HashedKey { hash, text })
            }
            _ => {
                let branch_len = branch.iter().map(|b| b.len()).sum();
                TxnKey::of_text(TxnKey::pieced(method, host, port, branch), branch_len)
            }
        }
    }

    /// The key of `text` (`method SP sent-by SP branch`) whose last `branch_len` bytes are
    /// the branch, hashed by its branch alone: a lookup hashes a request's branch where it
    /// lies, with no key written out (see [`TxnKey::find`]). The branch is the peer's, but so
    /// is the whole key: a crafted branch fills one window, then the overflow map, as any
    /// crafted key would.
    fn of_text(text: KeyText, branch_len: usize) -> TxnKey {
        let bytes = text.as_bytes();
        let hash = hash_bytes(&bytes[bytes.len().saturating_sub(branch_len)..]);
        TxnKey(HashedKey { hash, text })
    }

    /// The id `index` holds for the key `TxnKey::new(method, host, port, &[branch])`, found
    /// without writing the key out: hashed by the branch, and any candidate's text compared
    /// part by part (its host lower-case, as written).
    pub fn find<'s>(
        index: &HashIndex<u64>,
        (method, host, port, branch): (&str, &str, u16, &str),
        stored: impl Fn(u64) -> Option<&'s HashedKey>,
    ) -> Option<u64> {
        let (m, h, b) = (method.as_bytes(), host.as_bytes(), branch.as_bytes());
        let is_key = |k: &HashedKey| {
            // The port written out only for a candidate (an ACK nearly never has one).
            let mut port_buf = [0; 20];
            let digits = decimal_bytes(port as u64, &mut port_buf);
            let t = k.text.as_bytes();
            t.len() == m.len() + h.len() + digits.len() + b.len() + 3
                && t.starts_with(m)
                && t.ends_with(b)
                && t[m.len()] == b' '
                && t[m.len() + 1..][..h.len()].eq_ignore_ascii_case(h)
                && t[m.len() + 1 + h.len()] == b':'
                && t[m.len() + 2 + h.len()..][..digits.len()] == *digits
                && t[t.len() - b.len() - 1] == b' '
        };
        let full = || TxnKey::new(method, host, port, &[branch]).0;
        index.get_by(hash_bytes(b), is_key, full, stored)
    }

    /// [`TxnKey::new`]'s text for a branch in several pieces (an RFC 2543 peer's): out of
    /// line, so the usual key's path stays short.
    #[cold]
    #[inline(never)]
    fn pieced(method: &str, host: &str, port: &[u8], branch: &[&str]) -> KeyText {
        let head = [method.as_bytes(), b" ", host.as_bytes(), b":", port, b" "];
        let mut parts = Vec::with_capacity(6 + branch.len());
        parts.extend_from_slice(&head);
        parts.extend(branch.iter().map(|b| b.as_bytes()));
        KeyText::of_slice(&parts, Some(2))
    }

    /// The same sent-by and branch under another method (a CANCEL's INVITE).
    pub fn with_method(&self, method: &str) -> TxnKey {
        let rest = self.0.text().split_once(' ').map_or("", |(_, rest)| rest);
        let text = KeyText::of([method.as_bytes(), b" ", rest.as_bytes()], None);
        // The same branch: the same hash.
        TxnKey(HashedKey {
            hash: self.0.hash,
            text,
        })
    }
}

/// RFC 3261 §8.2.2.2 merged-request key of an INVITE without To tag: CSeq, Call-ID, From tag,
/// as `cseq SP call-id SP from-tag` (digits and a Call-ID hold no space: unambiguous).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct MergeKey(HashedKey);

impl MergeKey {
    /// The merge key of an INVITE without To tag; `None` for any other request.
    pub fn of(req: &Request<'_>) -> Option<MergeKey> {
        (req.method == "INVITE" && req.to_tag.is_empty())
            .then(|| MergeKey::new(req.call_id, req.from_tag, req.cseq))
    }

    pub fn new(call_id: &str, from_tag: &str, cseq: u32) -> MergeKey {
        let mut cseq_buf = [0; 20];
        let cseq = decimal_bytes(cseq as u64, &mut cseq_buf);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash_index::INLINE;

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
            let pieces = [&text.as_bytes()[..10], &text.as_bytes()[10..]];
            let branch_len = whole.len();
            assert_eq!(
                a,
                TxnKey::of_text(KeyText::of_slice(&pieces, None), branch_len)
            );
            let heap = KeyText::Heap(text.clone().into_bytes().into_boxed_slice());
            let heap = TxnKey::of_text(heap, branch_len);
            assert_eq!(a, heap);
            assert_eq!(a.cmp(&heap), std::cmp::Ordering::Equal);
            assert_eq!(a.with_method("CANCEL").with_method("INVITE"), a);
            let cancel = TxnKey::new("CANCEL", "H.example", 5060, &[&whole]);
            assert_eq!(a.with_method("CANCEL"), cancel);
            let m = MergeKey::new(&branch, "tag", 12);
            assert_eq!(m.0.text(), format!("12 {branch} tag"));
        }
        // Texts order as `str` whichever way they are held.
        let short = KeyText::Heap(b"ab"[..].into());
        let long = HashedKey::of(["a", "c"]).text;
        assert!(short < long);
    }

    /// A transaction key is found by its parts as by the key written out: any case of its
    /// host, no other method, sent-by or branch, in the table and in the overflow map (many
    /// keys share a branch, so a hash).
    #[test]
    fn txn_keys_are_found_by_their_parts() {
        let mut rng = crate::rng::Rng::new(9);
        let pick = |rng: &mut crate::rng::Rng, xs: &[&'static str]| {
            xs[rng.below(xs.len() as u64) as usize]
        };
        let methods = ["INVITE", "BYE", "CANCEL", "INVIT"];
        let hosts = [
            "a.example",
            "A.Example",
            "b.example",
            "10.0.0.1",
            "a.exampl",
            "",
            "x",
        ];
        let branches = ["z9hG4bK1", "z9hG4bK12", "z9hG4bK", "z9hG4bK1 x", "", "b"];
        let key_of = |rng: &mut crate::rng::Rng| {
            let port = [5060, 5061, 0, 65535][rng.below(4) as usize];
            (
                pick(rng, &methods),
                pick(rng, &hosts),
                port,
                pick(rng, &branches),
            )
        };
        let owners: Vec<TxnKey> = (0..400)
            .map(|_| {
                let (m, h, p, b) = key_of(&mut rng);
                TxnKey::new(m, h, p, &[b])
            })
            .collect();
        let mut index = HashIndex::default();
        for (id, k) in owners.iter().enumerate() {
            index.insert(k.hashed(), id as u64, |v| {
                owners.get(v as usize).map(|k| k.hashed())
            });
        }
        assert!(index.overflowed());
        for _ in 0..3000 {
            let (m, h, p, b) = key_of(&mut rng);
            let stored = |v: u64| owners.get(v as usize).map(|k| k.hashed());
            let want = index.get(TxnKey::new(m, h, p, &[b]).hashed(), stored);
            assert_eq!(
                TxnKey::find(&index, (m, h, p, b), stored),
                want,
                "{m} {h} {p} {b}"
            );
        }
    }
}
