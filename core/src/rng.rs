//! The one source of randomness in the core: a ChaCha8 keystream (RFC 8439's block function
//! with 8 rounds, as `rand_chacha`'s `ChaCha8Rng`; the best published attack reaches 7 rounds,
//! see Aumasson, "Too Much Crypto", 2019), keyed by a 256-bit [`Seed`].
//!
//! Tags, branches, SSRCs, initial RTP sequence numbers and timestamps come from here, so the
//! same seed gives the same bytes on the wire. RFC 3261 §19.3 wants tags and branches
//! cryptographically random: with a keystream cipher, outputs seen on the wire say nothing of
//! the ones to come (a linear generator such as xoshiro gives its whole state away after a few
//! outputs, and with it every tag and branch a peer would need to forge requests in a dialog).
//! The runtimes key it from the operating system's random source unless a seed is configured
//! for a reproducible run.

/// The key of the generator: 32 bytes from the OS, or a number expanded to them (tests, the
/// simulator, `seed = N`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Seed(pub [u8; 32]);

impl From<u64> for Seed {
    /// The number's splitmix64 stream, four words of it.
    fn from(seed: u64) -> Seed {
        let mut sm = seed;
        let mut key = [0u8; 32];
        for chunk in key.chunks_exact_mut(8) {
            sm = sm.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = sm;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        Seed(key)
    }
}

impl From<[u8; 32]> for Seed {
    fn from(key: [u8; 32]) -> Seed {
        Seed(key)
    }
}

impl std::fmt::Debug for Seed {
    /// Never printed: the key would give every tag away.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seed(..)")
    }
}

const ROUNDS: usize = 8;

/// ChaCha8 over a 256-bit key, block counter from 0, nonce 0; output taken a word at a time.
#[derive(Clone)]
pub struct Rng {
    key: [u32; 8],
    counter: u64,
    block: [u32; 16],
    /// Next unused word of `block` (16: none left).
    used: usize,
}

impl std::fmt::Debug for Rng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rng(..)")
    }
}

impl Rng {
    pub fn new(seed: impl Into<Seed>) -> Self {
        let Seed(bytes) = seed.into();
        let mut key = [0u32; 8];
        for (k, b) in key.iter_mut().zip(bytes.chunks_exact(4)) {
            *k = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        Rng {
            key,
            counter: 0,
            block: [0; 16],
            used: 16,
        }
    }

    fn next_word(&mut self) -> u32 {
        if self.used == 16 {
            self.block = chacha_block(&self.key, self.counter, [0, 0], ROUNDS);
            self.counter = self.counter.wrapping_add(1);
            self.used = 0;
        }
        self.used += 1;
        self.block[self.used - 1]
    }

    pub fn next_u64(&mut self) -> u64 {
        let low = self.next_word() as u64;
        low | (self.next_word() as u64) << 32
    }

    pub fn next_u32(&mut self) -> u32 {
        self.next_word()
    }

    /// Uniform in `0..n` (n > 0), by Lemire's multiply-shift; the tiny bias is irrelevant here.
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// A fresh token for tags and branches: 64 random bits in lower-case hex (16 characters).
    pub(crate) fn token(&mut self) -> String {
        crate::ascii::hex16(self.next_u64(), &mut [0; 16]).to_string()
    }

    /// Fisher–Yates shuffle (playlists in shuffle mode).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// The ChaCha block function (RFC 8439 §2.3) with `rounds` rounds, a 64-bit block counter and
/// a 64-bit nonce (the original layout; RFC 8439's 32-bit counter and 96-bit nonce are the same
/// words).
fn chacha_block(key: &[u32; 8], counter: u64, nonce: [u32; 2], rounds: usize) -> [u32; 16] {
    let mut input = [0u32; 16];
    input[..4].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]);
    input[4..12].copy_from_slice(key);
    input[12] = counter as u32;
    input[13] = (counter >> 32) as u32;
    input[14..].copy_from_slice(&nonce);
    let mut x = input;
    fn quarter(x: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
        x[a] = x[a].wrapping_add(x[b]);
        x[d] = (x[d] ^ x[a]).rotate_left(16);
        x[c] = x[c].wrapping_add(x[d]);
        x[b] = (x[b] ^ x[c]).rotate_left(12);
        x[a] = x[a].wrapping_add(x[b]);
        x[d] = (x[d] ^ x[a]).rotate_left(8);
        x[c] = x[c].wrapping_add(x[d]);
        x[b] = (x[b] ^ x[c]).rotate_left(7);
    }
    for _ in 0..rounds / 2 {
        quarter(&mut x, 0, 4, 8, 12);
        quarter(&mut x, 1, 5, 9, 13);
        quarter(&mut x, 2, 6, 10, 14);
        quarter(&mut x, 3, 7, 11, 15);
        quarter(&mut x, 0, 5, 10, 15);
        quarter(&mut x, 1, 6, 11, 12);
        quarter(&mut x, 2, 7, 8, 13);
        quarter(&mut x, 3, 4, 9, 14);
    }
    for (o, i) in x.iter_mut().zip(input) {
        *o = o.wrapping_add(i);
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8439 §2.3.2: key 00 01 … 1f, block counter 1, nonce 00:00:00:09:00:00:00:4a:00:00:00:00.
    #[test]
    fn block_function_matches_rfc_8439() {
        let mut key = [0u32; 8];
        for (i, k) in key.iter_mut().enumerate() {
            let b = (4 * i) as u8;
            *k = u32::from_le_bytes([b, b + 1, b + 2, b + 3]);
        }
        // RFC 8439's words 12..16 are counter 1, then the nonce 0x09000000, 0x4a000000, 0.
        let counter = 1u64 | (0x0900_0000u64 << 32);
        let out = chacha_block(&key, counter, [0x4a00_0000, 0], 20);
        let want = [
            0xe4e7_f110,
            0x1559_3bd1,
            0x1fdd_0f50,
            0xc471_20a3,
            0xc7f4_d1c7,
            0x0368_c033,
            0x9aaa_2204,
            0x4e6c_d4c3,
            0x4664_82d2,
            0x09aa_9f07,
            0x05d7_c214,
            0xa202_8bd9,
            0xd19c_12b5,
            0xb94e_16de,
            0xe883_d0cb,
            0x4e3c_50a2,
        ];
        assert_eq!(out, want);
    }

    #[test]
    fn same_seed_same_sequence_different_seed_differs() {
        let run = |seed: u64| -> Vec<u64> {
            let mut r = Rng::new(seed);
            (0..40).map(|_| r.next_u64()).collect()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let mut a = Rng::new([1u8; 32]);
        let mut b = Rng::new([2u8; 32]);
        assert_ne!(a.next_u64(), b.next_u64());
    }

    #[test]
    fn below_stays_in_range_and_shuffle_permutes() {
        let mut r = Rng::new(3);
        assert!((0..1000).all(|_| r.below(7) < 7));
        let mut v: Vec<u32> = (0..50).collect();
        r.shuffle(&mut v);
        let mut sorted = v.clone();
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_ne!(v, sorted);
    }

    #[test]
    fn the_seed_is_never_printed() {
        let seed = Seed::from(42);
        assert_eq!(format!("{seed:?}"), "Seed(..)");
        assert_eq!(format!("{:?}", Rng::new(seed)), "Rng(..)");
    }
}
