//! Keys the server keeps for lookups by peer-chosen text (transaction, merge and dialog keys),
//! and the index from such a key to the id of the owner that holds it.
//!
//! [`HashedKey`] is a key's text (inline when short, see [`KeyText`]) with a 64-bit hash of
//! it; [`HashIndex`] maps keys to ids without copying them, each hit confirmed against the key
//! its owner keeps.

use std::collections::BTreeMap;

/// Key → id for keys their owners keep (a transaction its `TxnKey` and `MergeKey`, a call
/// its dialog key): a table of slots holding a one-byte tag of the key's hash and the id, a
/// hit confirmed against the key the owner holds (`stored`, an O(1) slab lookup). Nothing is
/// copied into the index, and a lookup, insert or remove reads one word of tags (a window)
/// instead of searching a B-tree (and splitting and merging its nodes).
///
/// A key may sit only in the [`WINDOW`] slots from its home slot (the low bits of its hash).
/// When those are taken, it goes to `overflow`, a B-tree by full key, and its home slot is
/// marked so that lookups of keys homed there search it too. A peer who crafts keys for one
/// home (the hash is not secret: the core is deterministic) fills one window and then the
/// B-tree: every operation stays O(window + log n), never a scan of a long probe chain the
/// way open addressing degrades under flooding. Nothing iterates the index, so the placement
/// of keys is never visible.
///
/// It behaves exactly as a `BTreeMap<HashedKey, V>` (see `hash_index_matches_a_map`).
/// `stored(v)` must give the key `v` was inserted under for as long as the entry exists:
/// insert after storing the owner, remove (which needs only the key and `v`) before dropping
/// it.
#[derive(Debug)]
pub(crate) struct HashIndex<V> {
    /// Per slot: [`tag`] of the hash of the key there, 0 when vacant. The home slots come
    /// first, then `WINDOW - 1` more, so that no window wraps round.
    tags: Vec<u8>,
    /// Per slot: the id. Vacant slots hold a copy of any id (never read: their tag is 0).
    ids: Vec<V>,
    /// Per home slot: some key homed there is in `overflow`.
    spilled: Vec<bool>,
    /// Home slots − 1 (their number is a power of two).
    mask: usize,
    /// Keys in the table (not in `overflow`).
    len: usize,
    /// The most keys the table has held since it was last empty, and the home slots it starts
    /// with when the first key comes (see [`HashIndex::shrink_if_empty`]).
    most: usize,
    start_homes: usize,
    overflow: BTreeMap<HashedKey, V>,
}

/// The slots a key may take from its home slot on: one word of tags.
const WINDOW: usize = 8;

/// The fewest home slots of a table that holds any key.
const MIN_HOMES: usize = 16;

/// The tag of a hash in its slot: its top seven bits, and the high bit set (0 marks a vacant
/// slot). The home slot comes from the low bits, so the two are independent.
fn tag(hash: u64) -> u8 {
    0x80 | (hash >> 57) as u8
}

impl<V> Default for HashIndex<V> {
    fn default() -> Self {
        HashIndex {
            tags: Vec::new(),
            ids: Vec::new(),
            spilled: Vec::new(),
            mask: 0,
            len: 0,
            most: 0,
            start_homes: MIN_HOMES,
            overflow: BTreeMap::new(),
        }
    }
}

impl<V: Copy + PartialEq> HashIndex<V> {
    fn home(&self, hash: u64) -> usize {
        hash as usize & self.mask
    }

    /// The high bit of byte `i` set where slot `home + i` holds `tag` (0: where it is
    /// vacant): the eight tags compared at once, as one word.
    #[inline]
    fn window(&self, home: usize, tag: u8) -> u64 {
        const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
        let tags: [u8; WINDOW] = self.tags[home..home + WINDOW].try_into().unwrap();
        let x = u64::from_le_bytes(tags) ^ (tag as u64 * 0x0101_0101_0101_0101);
        // A byte of `x` is zero where the tag matches; adding 0x7f to its low seven bits sets
        // its high bit unless it is zero, and no carry crosses into the next byte.
        !(((x & LOW7) + LOW7) | x) & !LOW7
    }

    /// The slot a bit of [`HashIndex::window`] stands for.
    fn slot(home: usize, bits: u64) -> usize {
        home + (bits.trailing_zeros() / 8) as usize
    }

    /// The slot of `key`, if it is in the table.
    #[inline]
    fn find<'s>(
        &self,
        key: &HashedKey,
        stored: impl Fn(V) -> Option<&'s HashedKey>,
    ) -> Option<usize> {
        self.find_by(key.hash, |k| k == key, stored)
    }

    /// The slot of the key of hash `hash` that `is_key` accepts, if it is in the table.
    #[inline]
    fn find_by<'s>(
        &self,
        hash: u64,
        is_key: impl Fn(&HashedKey) -> bool,
        stored: impl Fn(V) -> Option<&'s HashedKey>,
    ) -> Option<usize> {
        if self.tags.is_empty() {
            return None;
        }
        let home = self.home(hash);
        let mut bits = self.window(home, tag(hash));
        while bits != 0 {
            let i = Self::slot(home, bits);
            if stored(self.ids[i]).is_some_and(&is_key) {
                return Some(i);
            }
            bits &= bits - 1;
        }
        None
    }

    /// Does any key sit in the overflow map?
    #[cfg(test)]
    pub(crate) fn overflowed(&self) -> bool {
        !self.overflow.is_empty()
    }

    /// Is `overflow` worth searching for `key`?
    fn may_overflow(&self, key: &HashedKey) -> bool {
        !self.overflow.is_empty() && self.spilled[self.home(key.hash)]
    }

    pub fn get<'s>(
        &self,
        key: &HashedKey,
        stored: impl Fn(V) -> Option<&'s HashedKey>,
    ) -> Option<V> {
        if let Some(i) = self.find(key, &stored) {
            return Some(self.ids[i]);
        }
        if !self.may_overflow(key) {
            return None;
        }
        self.overflow.get(key).copied()
    }

    /// [`HashIndex::get`] for the key of hash `hash` and text `parts` written one after the
    /// other: the key is written out only to search `overflow`.
    pub fn get_parts<'s>(
        &self,
        hash: u64,
        parts: &[&[u8]],
        stored: impl Fn(V) -> Option<&'s HashedKey>,
    ) -> Option<V> {
        let is_key = |k: &HashedKey| k.is_parts(parts);
        let full = || HashedKey {
            hash,
            text: KeyText::of_slice(parts, None),
        };
        self.get_by(hash, is_key, full, stored)
    }

    /// [`HashIndex::get`] for the key of hash `hash` that `is_key` accepts (by its text),
    /// written out by `full` only to search `overflow`.
    pub fn get_by<'s>(
        &self,
        hash: u64,
        is_key: impl Fn(&HashedKey) -> bool,
        full: impl FnOnce() -> HashedKey,
        stored: impl Fn(V) -> Option<&'s HashedKey>,
    ) -> Option<V> {
        let is_key = |k: &HashedKey| k.hash == hash && is_key(k);
        if let Some(i) = self.find_by(hash, is_key, &stored) {
            return Some(self.ids[i]);
        }
        if self.overflow.is_empty() || !self.spilled[self.home(hash)] {
            return None;
        }
        self.overflow_get(full())
    }

    #[cold]
    #[inline(never)]
    fn overflow_get(&self, key: HashedKey) -> Option<V> {
        self.overflow.get(&key).copied()
    }

    pub fn insert<'s>(
        &mut self,
        key: &HashedKey,
        v: V,
        stored: impl Fn(V) -> Option<&'s HashedKey>,
    ) {
        let homes = self.mask + 1;
        if self.tags.is_empty() || 2 * (self.len + 1) > homes {
            let homes = if self.tags.is_empty() {
                self.start_homes
            } else {
                2 * homes
            };
            self.rehash(homes, v, &stored);
        }
        if let Some(i) = self.find(key, &stored) {
            self.ids[i] = v; // the same key again: replaced, as a map would
            return;
        }
        if self.may_overflow(key) {
            if let Some(e) = self.overflow.get_mut(key) {
                *e = v;
                return;
            }
        }
        self.place(key, v);
    }

    /// Put `key` (in neither the table nor `overflow`) in the first vacant slot of its window,
    /// or in `overflow`.
    fn place(&mut self, key: &HashedKey, v: V) {
        let home = self.home(key.hash);
        let vacant = self.window(home, 0);
        if vacant != 0 {
            let i = Self::slot(home, vacant);
            self.tags[i] = tag(key.hash);
            self.ids[i] = v;
            self.len += 1;
            self.most = self.most.max(self.len);
        } else {
            self.spilled[home] = true;
            self.overflow.insert(key.clone(), v);
        }
    }

    /// Remove `key` if it maps to `v` (its owner, which holds `key`): an entry another owner
    /// took over since (`insert` replaces) is left alone.
    pub fn remove(&mut self, key: &HashedKey, v: V) {
        if self.tags.is_empty() {
            return;
        }
        let home = self.home(key.hash);
        let mut bits = self.window(home, tag(key.hash));
        while bits != 0 {
            let i = Self::slot(home, bits);
            if self.ids[i] == v {
                self.tags[i] = 0;
                self.len -= 1;
                self.shrink_if_empty();
                return;
            }
            bits &= bits - 1;
        }
        if self.may_overflow(key) && self.overflow.get(key) == Some(&v) {
            self.overflow.remove(key);
            self.shrink_if_empty();
        }
    }

    /// Like a `Vec`, the table keeps its room while it holds keys (a shrinking table would
    /// move every key again, each time a burst of transactions ends); once empty it lets its
    /// room go, so a burst's room is not kept for good. It remembers how many keys it held
    /// since it was last empty, and when keys come again, starts with room for as many (as
    /// `IdSlab` does): a server whose transactions come and end in waves does not grow its
    /// table by doubling, and move every key at each step, every wave. A wave of fewer keys
    /// sets the size the next one starts with, so a single burst's size does not stick.
    fn shrink_if_empty(&mut self) {
        if self.len == 0 && self.overflow.is_empty() && self.mask + 1 > MIN_HOMES {
            *self = HashIndex {
                start_homes: (2 * self.most).next_power_of_two().max(MIN_HOMES),
                ..HashIndex::default()
            };
        }
    }

    /// Move every key of the table into a new one of `homes` home slots (`filler`: any id).
    /// Keys in `overflow` stay there, their home slots marked anew.
    #[cold]
    fn rehash<'s>(
        &mut self,
        homes: usize,
        filler: V,
        stored: &impl Fn(V) -> Option<&'s HashedKey>,
    ) {
        let slots = homes + WINDOW - 1;
        let tags = std::mem::replace(&mut self.tags, vec![0; slots]);
        let ids = std::mem::replace(&mut self.ids, vec![filler; slots]);
        self.spilled = vec![false; homes];
        self.mask = homes - 1;
        self.len = 0;
        for key in self.overflow.keys() {
            let home = key.hash as usize & self.mask;
            self.spilled[home] = true;
        }
        for (t, v) in tags.into_iter().zip(ids) {
            if t == 0 {
                continue;
            }
            if let Some(key) = stored(v) {
                self.place(key, v);
            }
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
    pub(crate) hash: u64,
    pub(crate) text: KeyText,
}

impl HashedKey {
    pub fn new(text: KeyText) -> HashedKey {
        // Eight bytes per round (rotate, xor, multiply by an odd constant), the tail padded
        // with zeros and the length mixed in. A round's low bits depend only on the low bits
        // of its input, so keys differing only late in their last word (`…z9hG4bK38`,
        // `…z9hG4bK42`) would share their low bits, which `HashIndex` takes as the home slot:
        // the finish folds the high half down, multiplies, and folds again, so every bit
        // depends on every byte.
        let hash = hash_bytes(text.as_bytes());
        HashedKey { hash, text }
    }

    /// A dialog's key, `Call-ID SP local-tag SP remote-tag` (see `Call::dialog`), hashed by
    /// the local tag alone (see [`dialog_hash`]).
    pub fn dialog(call_id: &str, local_tag: &str, remote_tag: &str) -> HashedKey {
        HashedKey {
            hash: dialog_hash(local_tag.as_bytes()),
            text: KeyText::of(
                [
                    call_id.as_bytes(),
                    b" ",
                    local_tag.as_bytes(),
                    b" ",
                    remote_tag.as_bytes(),
                ],
                None,
            ),
        }
    }

    /// Is this key's text `parts` written one after the other?
    #[inline]
    pub fn is_parts(&self, parts: &[&[u8]]) -> bool {
        let mut text = self.text.as_bytes();
        if text.len() != parts.iter().map(|p| p.len()).sum::<usize>() {
            return false;
        }
        for part in parts {
            let (head, rest) = text.split_at(part.len());
            if head != *part {
                return false;
            }
            text = rest;
        }
        true
    }

    /// The key of `parts` written one after the other.
    #[cfg(test)]
    pub fn of<const N: usize>(parts: [&str; N]) -> HashedKey {
        HashedKey::new(KeyText::of(parts.map(str::as_bytes), None))
    }

    pub fn text(&self) -> &str {
        self.text.as_str()
    }

    /// Bytes the key holds on the heap (none when its text is inline).
    pub fn heap_len(&self) -> usize {
        match &self.text {
            KeyText::Inline { .. } => 0,
            KeyText::Heap(s) => s.len(),
        }
    }

    /// The bytes of `text()[range]`, as text: only that part is checked as UTF-8.
    pub fn text_at(&self, range: impl std::slice::SliceIndex<[u8], Output = [u8]>) -> &str {
        std::str::from_utf8(&self.text.as_bytes()[range]).unwrap_or("")
    }
}

/// Bytes a key holds in place; longer keys go to the heap. Sized for the usual key
/// (`INVITE 203.0.113.7:5060 z9hG4bK` and a 32-digit branch; a Call-ID and our tag), so
/// building, storing and dropping a key does not allocate.
pub(crate) const INLINE: usize = 78;

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
    pub(crate) fn of<const N: usize>(parts: [&[u8]; N], lower: Option<usize>) -> KeyText {
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

    /// `method SP host ":" port SP branch`, the host lower-cased: [`KeyText::of`] written out
    /// part by part, the host lower-cased a word at a time by [`put_lowered`] instead of a
    /// byte at a time.
    #[inline(always)]
    pub(crate) fn txn(method: &[u8], host: &[u8], port: &[u8], branch: &[u8]) -> KeyText {
        let total = method.len() + host.len() + port.len() + branch.len() + 3;
        if total > INLINE {
            return KeyText::of_slice(&[method, b" ", host, b":", port, b" ", branch], Some(2));
        }
        let mut bytes = [0; INLINE];
        let at = put(&mut bytes, 0, method);
        let at = put(&mut bytes, at, b" ");
        // Lower-cased before the parts after it are written (a step may run past it).
        put_lowered(&mut bytes, at, host);
        let at = put(&mut bytes, at + host.len(), b":");
        let at = put(&mut bytes, at, port);
        let at = put(&mut bytes, at, b" ");
        put(&mut bytes, at, branch);
        KeyText::Inline {
            len: total as u8,
            bytes,
        }
    }

    /// [`KeyText::of`] for any number of parts.
    #[inline(never)]
    pub(crate) fn of_slice(parts: &[&[u8]], lower: Option<usize>) -> KeyText {
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

/// `part` copied into `bytes` at `at`; where it ends.
#[inline(always)]
fn put(bytes: &mut [u8; INLINE], at: usize, part: &[u8]) -> usize {
    bytes[at..at + part.len()].copy_from_slice(part);
    at + part.len()
}

/// `host` copied into `bytes` at `at` and lower-cased (`make_ascii_lowercase`), eight bytes a
/// step. A step may run past the host into bytes not yet written (zeros, which lower-casing
/// leaves alone) that later parts overwrite or the key's length leaves out; steps that would
/// end past the array go one byte at a time.
#[inline(always)]
fn put_lowered(bytes: &mut [u8; INLINE], at: usize, host: &[u8]) {
    let end = put(bytes, at, host);
    let mut i = at;
    while i < end {
        let Some(chunk) = bytes.get_mut(i..i + 8) else {
            return lower_tail(&mut bytes[i..end]);
        };
        let w = lower_word(u64::from_le_bytes([
            chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7],
        ]));
        chunk.copy_from_slice(&w.to_le_bytes());
        i += 8;
    }
}

/// [`put_lowered`]'s last bytes when they end the array (a key that nearly fills it): out of
/// line, so the common path stays short.
#[cold]
#[inline(never)]
fn lower_tail(bytes: &mut [u8]) {
    bytes.make_ascii_lowercase();
}

/// Each byte of `w` ASCII-lower-cased: a byte in `A..=Z` gets its 0x20 bit, every other byte
/// (non-ASCII included) stays. Per byte, its low seven bits plus 0x3f reach the high bit when
/// they are at least `A`, plus 0x25 when they are above `Z`, and neither sum carries into the
/// next byte.
#[inline(always)]
fn lower_word(w: u64) -> u64 {
    const L: u64 = 0x0101_0101_0101_0101;
    let low7 = w & (0x7f * L);
    let at_least_a = low7 + (0x80 - b'A' as u64) * L;
    let above_z = low7 + (0x7f - b'Z' as u64) * L;
    let upper = (at_least_a ^ above_z) & !w & (0x80 * L);
    w | upper >> 2
}

/// The hash of a key's text (see [`HashedKey::new`]).
pub(crate) fn hash_bytes(bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut hash = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let word = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        hash = (hash.rotate_left(5) ^ word).wrapping_mul(K);
    }
    let tail = load(chunks.remainder());
    hash = (hash.rotate_left(5) ^ tail).wrapping_mul(K);
    hash ^= hash >> 32;
    hash = hash.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    hash ^ hash >> 29
}

/// The hash of a dialog key (`Call-ID SP tag`): the hash of its tag alone. The tag is ours,
/// 64 random bits (a peer cannot choose the keys that go into the index, so it cannot crowd
/// one window), and sixteen bytes hash in two rounds where the whole key takes six or more;
/// a lookup hashes the request's To tag where it lies, with no key written out. Every dialog
/// key is hashed this way (by [`HashedKey::dialog`] and by lookups), never by
/// [`HashedKey::new`]: equal dialog keys have equal hashes, as `HashIndex` needs.
pub(crate) fn dialog_hash(tag: &[u8]) -> u64 {
    hash_bytes(tag)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The word-wise lower-casing agrees with `make_ascii_lowercase` on every byte in every
    /// position, and a transaction key written out part by part agrees with the plain
    /// concatenation, its host lower-cased, whatever the parts' lengths.
    #[test]
    fn word_lowercase_and_txn_keys_agree_with_the_plain_ways() {
        for b in 0..=255u8 {
            for pos in 0..8 {
                let mut bytes = [b'a', b'Z', b'@', b'[', 0x80 | b'A', b'`', b'{', b'M'];
                bytes[pos] = b;
                let mut want = bytes;
                want.make_ascii_lowercase();
                assert_eq!(lower_word(u64::from_le_bytes(bytes)).to_le_bytes(), want);
            }
        }
        // Every length of method, host and port a short copy tells apart, branches short and
        // long (some keys too long to hold inline).
        let text: Vec<u8> = (0..100).map(|i| b"AbZz09:.-Q\xc3\x89"[i % 12]).collect();
        for m in 0..=17 {
            for h in 0..=34 {
                for p in 0..=5 {
                    for b in [0, 1, 7, 8, 9, 16, 17, 30, 60] {
                        let (method, host) = (&text[..m], &text[m..m + h]);
                        let (port, branch) = (&text[20..20 + p], &text[30..30 + b]);
                        let key = KeyText::txn(method, host, port, branch);
                        let parts = [method, b" ", host, b":", port, b" ", branch];
                        let plain: Vec<u8> = parts.concat();
                        let mut want = plain.clone();
                        want[m + 1..m + 1 + h].make_ascii_lowercase();
                        assert_eq!(key.as_bytes(), &want[..], "{m} {h} {p} {b}");
                        assert_eq!(KeyText::of_slice(&parts, Some(2)).as_bytes(), &want[..]);
                    }
                }
            }
        }
    }

    /// A dialog key is found by its Call-ID and tags where they lie, and only by them, in
    /// the table and in the overflow map alike.
    #[test]
    fn dialog_keys_are_found_by_their_parts() {
        let mut rng = crate::rng::Rng::new(3);
        let text = |rng: &mut crate::rng::Rng| -> String {
            (0..rng.below(40))
                .map(|_| (b'a' + rng.below(3) as u8) as char)
                .collect()
        };
        let keys: Vec<(String, String, String)> = (0..300)
            .map(|_| (text(&mut rng), text(&mut rng), text(&mut rng)))
            .collect();
        let mut owners: Vec<HashedKey> = keys
            .iter()
            .map(|(c, t, r)| HashedKey::dialog(c, t, r))
            .collect();
        // Crowd a third of them onto one hash: the overflow map takes some.
        for k in owners.iter_mut().step_by(3) {
            k.hash = 0x77;
        }
        let mut index = HashIndex::default();
        let mut model = BTreeMap::new();
        for (id, k) in owners.iter().enumerate() {
            index.insert(k, id, |v| owners.get(v));
            model.insert(k.clone(), id);
        }
        assert!(!index.overflow.is_empty());
        for (id, (c, t, r)) in keys.iter().enumerate() {
            assert_eq!(owners[id].text(), format!("{c} {t} {r}"));
            let hash = owners[id].hash;
            let get = |parts: &[&[u8]]| index.get_parts(hash, parts, |v| owners.get(v));
            let (c, t, r) = (c.as_bytes(), t.as_bytes(), r.as_bytes());
            let found = get(&[c, b" ", t, b" ", r]);
            assert_eq!(found, model.get(&owners[id]).copied());
            assert_eq!(get(&[c, b" ", t, b" ", r, b"x"]), None);
            assert_eq!(get(&[c, b" ", t, b" ", b"x", r]), None);
            assert_eq!(get(&[c, b"x", t, b" ", r]), None);
            assert_eq!(get(&[b"x", c, b" ", t, b" ", r]), None);
        }
        assert_eq!(
            dialog_hash(b"0123456789abcdef"),
            HashedKey::dialog("c", "0123456789abcdef", "r").hash
        );
    }

    /// The index answers as a `BTreeMap` by key would, colliding hashes included: keys forced
    /// onto a handful of hash values, inserted, replaced and removed at random; an owner whose
    /// key another took over since removes nothing.
    #[test]
    fn hash_index_matches_a_map() {
        check_index_against_a_map(3, 12, Some(|n| n % 3), 3000);
    }

    /// Keys crowded onto fewer homes than a window holds, many of them with one hash, and
    /// enough of them that the table grows and shrinks: the overflow map takes what the
    /// windows cannot, and the index still answers as a map.
    #[test]
    fn hash_index_overflows_and_resizes_as_a_map() {
        let (overflowed, _) = check_index_against_a_map(5, 40, Some(|n| (n % 2) << 40), 4000);
        assert!(overflowed);
        let (overflowed, _) = check_index_against_a_map(6, 300, Some(|n| n % 7), 20_000);
        assert!(overflowed);
        let (_, homes) = check_index_against_a_map(7, 2000, None, 30_000);
        assert!(homes > MIN_HOMES);
    }

    /// A flood of keys sharing one hash fills one window, and the rest go to the overflow
    /// B-tree: no probe chain grows with the flood, and each key is still found.
    #[test]
    fn a_flood_of_one_hash_fills_one_window() {
        let keys: Vec<HashedKey> = (0..10_000)
            .map(|n| {
                let mut k = HashedKey::of([&format!("flood{n}")]);
                k.hash = 0x1234_5678_9abc_def0;
                k
            })
            .collect();
        let mut index = HashIndex::default();
        for (id, k) in keys.iter().enumerate() {
            index.insert(k, id, |v| keys.get(v));
        }
        assert_eq!(index.len, WINDOW);
        assert_eq!(index.overflow.len(), keys.len() - WINDOW);
        for (id, k) in keys.iter().enumerate() {
            assert_eq!(index.get(k, |v| keys.get(v)), Some(id));
        }
        for (id, k) in keys.iter().enumerate() {
            index.remove(k, id);
        }
        assert!(index.len == 0 && index.overflow.is_empty());
    }

    /// An emptied table starts the next wave with room for as many keys as the last wave
    /// held (no doubling on the way up), and a smaller wave makes the next start smaller.
    #[test]
    fn a_refilled_index_starts_with_the_last_waves_room() {
        let keys: Vec<HashedKey> = (0..1000)
            .map(|n| HashedKey::of([&format!("w{n}")]))
            .collect();
        let mut index = HashIndex::default();
        let wave = |index: &mut HashIndex<usize>, n: usize| {
            for (id, k) in keys[..n].iter().enumerate() {
                index.insert(k, id, |v| keys.get(v));
            }
            let homes = index.mask + 1;
            for (id, k) in keys[..n].iter().enumerate() {
                assert_eq!(index.get(k, |v| keys.get(v)), Some(id));
                index.remove(k, id);
            }
            homes
        };
        assert_eq!(wave(&mut index, 1000), 2048);
        assert_eq!(index.start_homes, 2048);
        assert_eq!(wave(&mut index, 10), 2048);
        assert_eq!(index.start_homes, 32);
        assert_eq!(wave(&mut index, 10), 32);
        assert_eq!(index.start_homes, 32);
        assert_eq!(wave(&mut index, 3), 32);
        assert_eq!(index.start_homes, MIN_HOMES);
    }

    /// `rounds` random operations on `keys` keys, key `n` with the hash `force(n)` (if given),
    /// checked against a `BTreeMap`. Did anything go to `overflow`, and the most home slots?
    fn check_index_against_a_map(
        seed: u64,
        keys: u64,
        force: Option<fn(u64) -> u64>,
        rounds: u64,
    ) -> (bool, usize) {
        let mut rng = crate::rng::Rng::new(seed);
        let mut owners: std::collections::BTreeMap<u64, HashedKey> = Default::default();
        let mut index = HashIndex::default();
        let mut model: BTreeMap<HashedKey, u64> = BTreeMap::new();
        let mut replaced: Vec<(HashedKey, u64)> = Vec::new();
        let (mut overflowed, mut homes) = (false, 0);
        let key = |n: u64| {
            let mut k = HashedKey::of([&format!("k{n}")]);
            if let Some(force) = force {
                k.hash = force(n); // collisions on purpose
            }
            k
        };
        for id in 0..rounds {
            let k = key(rng.below(keys));
            // Insert more than remove while the round is young: the table grows, then shrinks.
            let insert_odds = if id < rounds / 2 { 3 } else { 1 };
            match rng.below(insert_odds + 2) {
                0 if !replaced.is_empty() => {
                    let (k, old) = replaced.swap_remove(rng.below(replaced.len() as u64) as usize);
                    index.remove(&k, old);
                }
                0 | 1 => {
                    if let Some(owner) = model.remove(&k) {
                        index.remove(&k, owner);
                    }
                }
                _ => {
                    owners.insert(id, k.clone());
                    index.insert(&k, id, |v| owners.get(&v));
                    if let Some(old) = model.insert(k.clone(), id) {
                        replaced.push((k, old));
                    }
                }
            }
            overflowed |= !index.overflow.is_empty();
            homes = homes.max(index.mask + 1);
            if keys <= 40 || id % 97 == 0 {
                for n in 0..keys {
                    let k = key(n);
                    assert_eq!(index.get(&k, |v| owners.get(&v)), model.get(&k).copied());
                }
            }
        }
        // Removing every key leaves the least table (or none).
        for (k, owner) in std::mem::take(&mut model) {
            index.remove(&k, owner);
        }
        assert!(index.len == 0 && index.overflow.is_empty() && index.mask < MIN_HOMES);
        (overflowed, homes)
    }
}
