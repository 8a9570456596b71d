//! A live source's jitter buffer: audio that arrives as the source sends it (in bursts, or not
//! at all while it stalls), encoded once per G.711 codec as it arrives, and read by every
//! caller of the class at the shared-mode position.
//!
//! Positions are the shared pacing grid's, in RTP timestamp units (1/8000 s since the server's
//! epoch): the packet due at `t` reads position `(t - epoch) · 8000`, the same point for every
//! caller, as a shared file class does. The buffer maps grid positions to its own sample count
//! (`written`, the samples received so far) by one offset, `shift`, fixed when playing starts:
//! once [`target`](LiveBuffer::target) samples are buffered, the grid position of that moment
//! plays the oldest of them, so each sample is heard `target` after it arrived and a burst or a
//! stall shorter than that is absorbed.
//!
//! A read that finds its samples not yet arrived is an underrun: the buffer stops playing (every
//! caller hears the class's fallback from that packet on) and plays again once `target` new
//! samples have arrived.
//!
//! The delay can also grow: a server's burst on connect (Icecast sends seconds of audio at
//! once), or a source whose clock runs faster than ours. The lowest the buffer fell, just before
//! audio arrived, over each [`WINDOW`] is what the stalls of that window needed: whatever it
//! held above `target` + [`TRIM_MARGIN`] even then is surplus, and is dropped (the read point
//! jumps ahead). A delay that would overflow the ring goes straight back to `target`.
//!
//! G.711 is stateless, so the bytes are encoded once, here. G.722 is adaptive: the 16 kHz PCM is
//! kept and each caller's own encoder ([`G722Cursor`]) encodes it, as for file music.

use super::{g711, G722Cursor};
use crate::codec::Codec;

/// Samples (8 kHz) the ring holds: 4 s, more than the largest buffer plus [`SLACK`].
pub const RING: u64 = 4 * 8000;
/// The largest delay the ring can hold with a packet (60 ms) to spare.
pub const MAX_DELAY: u64 = RING - 480;
/// The largest target: half the ring, so bursts have room above it.
pub const MAX_TARGET: u64 = RING / 2;
/// How often the surplus is judged: 1 s of the grid.
pub const WINDOW: u64 = 8000;
/// Surplus tolerated above the target (20 ms): less is not worth a jump.
pub const TRIM_MARGIN: u64 = 160;

/// One live class's buffered audio. See the module docs.
#[derive(Debug)]
pub struct LiveBuffer {
    target: u64,
    pcmu: Vec<u8>,
    pcma: Vec<u8>,
    /// Two samples per position; empty when G.722 is not among the codecs.
    pcm16: Vec<i16>,
    /// Samples (8 kHz) received since the buffer was made.
    written: u64,
    /// While playing: the buffer's sample index of grid position `p` is `p + shift`.
    shift: Option<i128>,
    /// Where the samples not yet played start, while not playing.
    fill_from: u64,
    underruns: u64,
    /// The surplus window: where it started on the grid, and the lowest the buffer was in it
    /// just before audio arrived.
    window: (u64, u64),
    /// The grid position of the last push: pieces of one arrival (a burst read in one go)
    /// come at the same position, and only the level before the first of them counts.
    last_push: u64,
}

impl LiveBuffer {
    /// A buffer that plays once `target` samples (8 kHz) have arrived (at most
    /// [`MAX_TARGET`]); `with_g722`: keep the 16 kHz PCM.
    pub fn new(target: u64, with_g722: bool) -> LiveBuffer {
        LiveBuffer {
            target: target.clamp(1, MAX_TARGET),
            pcmu: vec![0xFF; RING as usize],
            pcma: vec![0xD5; RING as usize],
            pcm16: if with_g722 {
                vec![0; 2 * RING as usize]
            } else {
                Vec::new()
            },
            written: 0,
            shift: None,
            fill_from: 0,
            underruns: 0,
            window: (0, u64::MAX),
            last_push: u64::MAX,
        }
    }

    /// The delay the buffer plays at, in samples (8 kHz).
    pub fn target(&self) -> u64 {
        self.target
    }

    /// Audio arrived at grid position `grid_now`: `pcm8` at 8 kHz and, when G.722 is kept,
    /// `pcm16` at 16 kHz (twice as long; missing samples are taken as silence).
    pub fn push(&mut self, grid_now: u64, pcm8: &[i16], pcm16: &[i16]) {
        let before = if grid_now == self.last_push {
            u64::MAX
        } else {
            self.buffered(grid_now)
        };
        self.last_push = grid_now;
        for (i, &s) in pcm8.iter().enumerate() {
            let at = ((self.written + i as u64) % RING) as usize;
            self.pcmu[at] = g711::linear_to_ulaw(s);
            self.pcma[at] = g711::linear_to_alaw(s);
            if !self.pcm16.is_empty() {
                let pair = pcm16.get(2 * i..2 * i + 2).unwrap_or(&[0, 0]);
                self.pcm16[2 * at..2 * at + 2].copy_from_slice(pair);
            }
        }
        self.written += pcm8.len() as u64;
        // The offset that makes the delay at `grid_now` exactly the target.
        let anchored = self.written as i128 - self.target as i128 - grid_now as i128;
        let Some(shift) = self.shift else {
            if self.written - self.fill_from >= self.target {
                self.shift = Some(anchored);
                self.window = (grid_now, u64::MAX);
            }
            return;
        };
        if self.buffered(grid_now) > MAX_DELAY {
            self.shift = Some(anchored);
            self.window = (grid_now, u64::MAX);
            return;
        }
        self.window.1 = self.window.1.min(before);
        if grid_now.saturating_sub(self.window.0) >= WINDOW {
            let low = self.window.1;
            if low != u64::MAX && low > self.target + TRIM_MARGIN {
                self.shift = Some(shift + (low - self.target) as i128);
            }
            self.window = (grid_now, u64::MAX);
        }
    }

    /// Are the `len` samples from grid position `pos` here to play? If the buffer was playing
    /// and they have not arrived, that is an underrun: it stops playing until it has refilled.
    pub fn ready(&mut self, pos: u64, len: usize) -> bool {
        let Some(shift) = self.shift else {
            return false;
        };
        let start = pos as i128 + shift;
        let oldest = self.written.saturating_sub(RING) as i128;
        if start >= oldest && start + len as i128 <= self.written as i128 {
            return true;
        }
        self.shift = None;
        self.fill_from = self.written;
        self.underruns += 1;
        false
    }

    /// Is it playing (buffered enough, and no underrun since)?
    pub fn playing(&self) -> bool {
        self.shift.is_some()
    }

    /// Samples waiting to be played at grid position `grid_now`.
    pub fn buffered(&self, grid_now: u64) -> u64 {
        let from = match self.shift {
            Some(shift) => (grid_now as i128 + shift).max(0) as u64,
            None => self.fill_from,
        };
        self.written.saturating_sub(from)
    }

    /// Times it ran dry while playing.
    pub fn underruns(&self) -> u64 {
        self.underruns
    }

    /// Samples received so far.
    pub fn received(&self) -> u64 {
        self.written
    }

    /// The ring index of grid position `pos` (only meaningful after [`ready`](Self::ready)).
    fn index(&self, pos: u64) -> u64 {
        (pos as i128 + self.shift.unwrap_or(0)).rem_euclid(RING as i128) as u64
    }

    /// Copy `out.len()` G.711 bytes from grid position `pos` (checked by [`ready`](Self::ready)).
    /// G.722 is per caller: see [`fill_g722`](Self::fill_g722).
    pub fn fill(&self, codec: Codec, pos: u64, out: &mut [u8]) {
        let ring = match codec {
            Codec::Pcmu => &self.pcmu,
            Codec::Pcma => &self.pcma,
            Codec::G722 => return out.fill(0),
        };
        let mut at = self.index(pos) as usize;
        for chunk in out.chunks_mut(RING as usize) {
            let mut done = 0;
            while done < chunk.len() {
                let n = (chunk.len() - done).min(ring.len() - at);
                chunk[done..done + n].copy_from_slice(&ring[at..at + n]);
                done += n;
                at = (at + n) % ring.len();
            }
        }
    }

    /// Encode `out.len()` G.722 bytes from grid position `pos` with the caller's encoder
    /// (silence if the 16 kHz PCM is not kept).
    pub fn fill_g722(&self, cursor: &mut G722Cursor, pos: u64, out: &mut [u8]) {
        let mut at = self.index(pos) as usize;
        let mut pcm = [0i16; 320];
        for chunk in out.chunks_mut(160) {
            for (k, pair) in pcm.chunks_mut(2).take(chunk.len()).enumerate() {
                let i = (at + k) % RING as usize;
                match self.pcm16.get(2 * i..2 * i + 2) {
                    Some(s) => pair.copy_from_slice(s),
                    None => pair.fill(0),
                }
            }
            cursor.encode(&pcm[..2 * chunk.len()], chunk);
            at = (at + chunk.len()) % RING as usize;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(n: usize, level: i16) -> Vec<i16> {
        (0..n)
            .map(|i| if i % 2 == 0 { level } else { -level })
            .collect()
    }

    #[test]
    fn plays_once_the_target_has_arrived_with_that_delay() {
        let mut b = LiveBuffer::new(2400, false);
        // 100 ms blocks arriving on time from grid position 8000.
        b.push(8000, &tone(800, 1000), &[]);
        b.push(8800, &tone(800, 1000), &[]);
        assert!(!b.playing(), "200 ms buffered, 300 ms wanted");
        assert!(!b.ready(9600, 160));
        assert_eq!(b.underruns(), 0, "not playing is not an underrun");
        b.push(9600, &tone(800, 2000), &[]);
        assert!(b.playing());
        // The oldest sample plays now: each is heard 300 ms after it came.
        assert!(b.ready(9600, 160));
        let mut out = [0u8; 160];
        b.fill(Codec::Pcmu, 9600, &mut out);
        assert_eq!(out[0], g711::linear_to_ulaw(1000));
        b.fill(Codec::Pcma, 9600 + 1600, &mut out);
        assert_eq!(
            out[0],
            g711::linear_to_alaw(2000),
            "the third block, 200 ms on"
        );
        assert_eq!(b.buffered(9600), 2400);
    }

    #[test]
    fn underrun_stops_playing_until_refilled_and_is_counted_once() {
        let mut b = LiveBuffer::new(800, false);
        b.push(0, &tone(800, 1000), &[]);
        assert!(b.playing());
        // 800 samples play from 0 to 800; a packet at 800 finds nothing.
        for pos in (0..800).step_by(160) {
            assert!(b.ready(pos, 160), "{pos}");
        }
        assert!(!b.ready(800, 160));
        assert!(!b.playing());
        assert!(!b.ready(960, 160));
        assert_eq!(b.underruns(), 1);
        // The source comes back at 5000: half the target is not enough.
        b.push(5000, &tone(400, 500), &[]);
        assert!(!b.ready(5000, 160));
        b.push(5400, &tone(400, 600), &[]);
        assert!(b.ready(5400, 160), "refilled: playing again");
        let mut out = [0u8; 1];
        b.fill(Codec::Pcmu, 5400, &mut out);
        assert_eq!(
            out[0],
            g711::linear_to_ulaw(500),
            "from the oldest new sample"
        );
        assert_eq!(b.underruns(), 1);
    }

    #[test]
    fn a_burst_is_absorbed_and_a_runaway_delay_is_cut_back_to_the_target() {
        let mut b = LiveBuffer::new(2400, false);
        // Icecast's burst on connect: 3 s at once, in MP3-frame pieces.
        for k in 0..21u64 {
            b.push(0, &tone(1152, (k as i16 + 1) * 100), &[]);
        }
        assert!(b.playing());
        assert_eq!(
            b.buffered(0),
            21 * 1152 - 1056,
            "the burst is kept at first"
        );
        // Then on time: within a window the surplus goes, and every read finds its samples.
        let mut grid = 0u64;
        for _ in 0..100 {
            b.push(grid, &tone(160, 7), &[]);
            assert!(b.ready(grid, 160));
            grid += 160;
        }
        assert!(b.buffered(grid) <= 2400 + 160, "{}", b.buffered(grid));
        assert_eq!(b.underruns(), 0);
        // A source running 2 % fast builds delay and is cut back, a window at a time.
        for _ in 0..5000 {
            b.push(grid, &tone(164, 7), &[]);
            assert!(b.ready(grid, 160));
            assert!(b.buffered(grid) <= 2400 + 2 * TRIM_MARGIN + 200 + 164);
            grid += 160;
        }
        assert_eq!(b.underruns(), 0);
        // A burst larger than the ring goes straight back to the target.
        b.push(grid, &tone(RING as usize, 9), &[]);
        assert_eq!(b.buffered(grid), 2400);
        assert!(b.ready(grid, 160));
    }

    #[test]
    fn reads_wrap_around_the_ring() {
        let f = |k: u64| ((k % 251) as i16 - 125) * 200;
        let mut b = LiveBuffer::new(480, true);
        let mut g722 = G722Cursor::live();
        let mut reference = crate::media::g722::Encoder::new();
        let mut grid = 0u64;
        // Several times round the ring, with reads straddling its end.
        while grid < 3 * RING {
            let block: Vec<i16> = (grid..grid + 240).map(f).collect();
            let wide: Vec<i16> = block.iter().flat_map(|&s| [s, s / 2]).collect();
            b.push(grid, &block, &wide);
            if grid > 0 {
                assert!(b.ready(grid, 240), "{grid}");
                // The samples read are the ones that arrived 480 earlier: index p - 240.
                let mut out = [0u8; 240];
                b.fill(Codec::Pcmu, grid, &mut out);
                let want: Vec<u8> = (grid - 240..grid)
                    .map(|k| g711::linear_to_ulaw(f(k)))
                    .collect();
                assert_eq!(out.as_slice(), want.as_slice(), "{grid}");
                b.fill_g722(&mut g722, grid, &mut out);
                let pcm: Vec<i16> = (grid - 240..grid).flat_map(|k| [f(k), f(k) / 2]).collect();
                let mut want = [0u8; 240];
                reference.encode_into(&pcm, &mut want);
                assert_eq!(
                    out, want,
                    "G.722 at {grid}: the caller's encoder on the 16 kHz PCM"
                );
            }
            grid += 240;
        }
        assert_eq!(b.underruns(), 0);
    }
}
