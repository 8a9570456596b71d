//! The simulator's own randomness (link faults, generated captures): a seeded xoshiro256**
//! generator. Not the server's (the core keys a ChaCha keystream): what the simulated network
//! and callers do must not move when the server's generator changes, and it needs speed and
//! a fixed sequence per seed, not secrecy.

use onhold_core::rng::Seed;

/// xoshiro256** seeded through splitmix64 (the seeding its authors recommend).
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// The state is the core's [`Seed`] of the number: four words of its splitmix64 stream.
    pub fn new(seed: u64) -> Self {
        let Seed(bytes) = Seed::from(seed);
        let mut s = [0u64; 4];
        for (w, b) in s.iter_mut().zip(bytes.chunks_exact(8)) {
            *w = u64::from_le_bytes(b.try_into().unwrap_or_default());
        }
        Rng { s }
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in `0..n` (n > 0), by Lemire's multiply-shift; the tiny bias is irrelevant here.
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sequence for a seed is fixed: the committed synthetic captures and every seeded
    /// link-fault run depend on it.
    #[test]
    fn the_sequence_of_a_seed_is_fixed() {
        let mut r = Rng::new(7);
        let first: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        let mut again = Rng::new(7);
        assert_eq!(first, (0..3).map(|_| again.next_u64()).collect::<Vec<_>>());
        assert_ne!(first[0], Rng::new(8).next_u64());
        assert!((0..1000).all(|_| r.below(10) < 10));
    }
}
