//! A class's looping program as a pure function of position.
//!
//! Without an announcement the program is the playlist's music, looped. With one, it is cycles
//! of `every` units of music followed by the announcement; the music resumes where it paused, so
//! cycle `k` plays music from `k · every` (mod the music's length). The whole pattern repeats
//! after `music_len / gcd(music_len, every)` cycles: that period is the program length, which
//! keeps `fill(pos)` a pure function of `pos` (shared-mode callers all agree on what `pos` means).
//! [`ProgramBuilder`] places the cuts on a one-second grid: it rounds the interval and pads the
//! playlist with under a second of silence.
//!
//! G.711 is stateless: `fill` copies the shared bytes. G.722 is adaptive, and a caller's decoder
//! is in step only with bytes encoded from the state it is in, so each G.722 caller has an
//! encoder of its own ([`G722Cursor`]) fed from the program's 16 kHz PCM ([`Program::fill_pcm16`]).
//! Up to the program's first seam (the loop point, or the first announcement) every caller who
//! starts with the program would send the same bytes, so those are encoded once from the zero
//! state a caller's decoder starts in, with the encoder's state where they end: a per-call
//! caller plays them, then goes on live from that state, and no seam ever reaches its decoder.

use std::sync::Arc;

use super::encoded::EncodedBuilder;
use super::{g722, Encoded};
use crate::codec::Codec;

/// Music positions where an announcement may cut in are multiples of this (one second).
pub const CUT_GRID: u64 = 8000;

/// G.722 octets encoded per step of a live encoding: 20 ms, so the 16 kHz input is a small
/// buffer on the stack.
const LIVE_STEP: usize = 160;

/// The announcement interval actually used for `every` (RTP timestamp units, > 0): the
/// nearest whole number of [`CUT_GRID`] seconds, at least one.
pub fn announcement_interval(every: u64) -> u64 {
    ((every + CUT_GRID / 2) / CUT_GRID).max(1) * CUT_GRID
}

/// Builds a class's program: the playlist track by track, then the announcement.
#[derive(Debug)]
pub struct ProgramBuilder {
    music: EncodedBuilder,
    every: Option<u64>,
    with_g722: bool,
}

impl ProgramBuilder {
    /// `every`: the announcement interval if the class has one, already on the grid (see
    /// [`announcement_interval`]). `with_g722`: callers may use G.722, so keep the 16 kHz PCM.
    pub fn new(every: Option<u64>, with_g722: bool) -> ProgramBuilder {
        ProgramBuilder {
            music: EncodedBuilder::new(with_g722),
            every,
            with_g722,
        }
    }

    /// Append a track at 8 kHz and 16 kHz (twice as long).
    pub fn push(&mut self, pcm8: &[i16], pcm16: &[i16]) {
        self.music.push(pcm8, pcm16);
    }

    /// Music so far, in RTP timestamp units.
    pub fn len(&self) -> u64 {
        self.music.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.music.is_empty()
    }

    /// The program, with the announcement (8 kHz and 16 kHz PCM) if the builder was made with
    /// an interval. `None` if there is no music, or if the period would not fit in a u64.
    pub fn finish(mut self, announcement: Option<(&[i16], &[i16])>) -> Option<Program> {
        if self.music.is_empty() {
            return None;
        }
        let (Some(every), Some((a8, a16))) = (self.every, announcement) else {
            return Some(Program::music_only(self.music.finish()));
        };
        if a8.is_empty() {
            return Some(Program::music_only(self.music.finish()));
        }
        // Pad the playlist to the grid, so that the music resumes on whole seconds too.
        let short = (CUT_GRID - self.len() % CUT_GRID) % CUT_GRID;
        if short > 0 {
            self.music
                .push(&vec![0; short as usize], &vec![0; 2 * short as usize]);
        }
        let audio = Encoded::encode(a8, a16, self.with_g722);
        Program::with_announcement(self.music.finish(), audio, every)
    }
}

#[derive(Clone, Debug)]
pub struct Program {
    music: Encoded,
    announcement: Option<Announcement>,
    len: u64,
    /// With G.722: the program up to its first seam, encoded from the zero state.
    g722_start: Option<G722Start>,
}

#[derive(Clone, Debug)]
struct Announcement {
    audio: Encoded,
    /// Music played between announcements, in RTP timestamp units.
    every: u64,
}

/// The G.722 bytes every caller who starts with the program is sent up to its first seam, and
/// the encoder's state after them.
#[derive(Clone, Debug)]
struct G722Start {
    bytes: Arc<[u8]>,
    after: g722::Encoder,
}

/// One caller's G.722 encoding: the encoder whose state the caller's decoder follows.
///
/// A caller that starts with the program ([`at_start`](Self::at_start)) is sent the program's
/// pre-encoded start, the same bytes its own encoder would produce, and at the start's end takes
/// over the encoder state they end in. From then on, and from the first packet for any other
/// caller ([`live`](Self::live)), the caller's own encoder encodes the program's 16 kHz PCM from
/// wherever the caller is: across the loop point, announcements, a hold or a shared-mode jump,
/// the decoder only ever gets bytes encoded from its own state.
#[derive(Clone, Debug)]
pub struct G722Cursor {
    encoder: g722::Encoder,
    /// False while the caller plays the pre-encoded start.
    live: bool,
}

impl G722Cursor {
    /// A caller whose decoder starts with the program at position 0 (per-call mode).
    pub fn at_start() -> G722Cursor {
        G722Cursor {
            encoder: g722::Encoder::new(),
            live: false,
        }
    }

    /// A caller whose decoder starts wherever the program is (a shared-mode join, a switch to
    /// G.722 mid-call): an encoder from the zero state.
    pub fn live() -> G722Cursor {
        G722Cursor {
            encoder: g722::Encoder::new(),
            live: true,
        }
    }

    /// Encoding live (past the pre-encoded start)?
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// Encode 16 kHz `pcm` (two samples per octet of `out`) with this caller's encoder, which
    /// then encodes live: audio that is no program's, a live source's.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) {
        self.live = true;
        self.encoder.encode_into(pcm, out);
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Program {
    /// The playlist alone, looped. `music` must not be empty.
    pub fn music_only(music: Encoded) -> Program {
        let len = music.len();
        assert!(len > 0, "a program needs audio");
        Program {
            music,
            announcement: None,
            len,
            g722_start: None,
        }
        .with_g722_start()
    }

    /// Music with `audio` inserted after every `every` units of music. `None` if the period
    /// does not fit in a u64 (absurd inputs only). An empty announcement is ignored.
    pub fn with_announcement(music: Encoded, audio: Encoded, every: u64) -> Option<Program> {
        if audio.is_empty() {
            return Some(Program::music_only(music));
        }
        let music_len = music.len();
        assert!(music_len > 0 && every > 0, "a program needs audio");
        let cycles = music_len / gcd(music_len, every);
        let len = cycles.checked_mul(every.checked_add(audio.len())?)?;
        let program = Program {
            music,
            announcement: Some(Announcement { audio, every }),
            len,
            g722_start: None,
        };
        Some(program.with_g722_start())
    }

    /// With the 16 kHz PCM kept: encode the program up to its first seam (the loop point, or
    /// the first announcement) from the zero state.
    fn with_g722_start(mut self) -> Program {
        if self.music.pcm16().is_none() {
            return self;
        }
        let end = match &self.announcement {
            None => self.music.len(),
            Some(a) => a.every.min(self.music.len()),
        } as usize;
        let mut cursor = G722Cursor::live();
        let mut bytes = vec![0; end];
        self.fill_g722(&mut cursor, 0, &mut bytes);
        self.g722_start = Some(G722Start {
            bytes: bytes.into(),
            after: cursor.encoder,
        });
        self
    }

    /// Period of the program in RTP timestamp units (never zero).
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// Length of the music (the playlist once through).
    pub fn music_len(&self) -> u64 {
        self.music.len()
    }

    /// `(every, announcement length)` if there is an announcement.
    pub fn announcement(&self) -> Option<(u64, u64)> {
        self.announcement.as_ref().map(|a| (a.every, a.audio.len()))
    }

    /// Distinct audio held, in RTP timestamp units.
    pub fn audio_len(&self) -> u64 {
        self.music.len() + self.announcement.as_ref().map_or(0, |a| a.audio.len())
    }

    /// Does the program keep the 16 kHz PCM that G.722 callers are encoded from?
    pub fn has_g722(&self) -> bool {
        self.music.pcm16().is_some()
    }

    /// Bytes held: the G.711 encodings, the 16 kHz PCM and the pre-encoded G.722 start.
    pub fn memory_bytes(&self) -> usize {
        self.music.memory_bytes()
            + self
                .announcement
                .as_ref()
                .map_or(0, |a| a.audio.memory_bytes())
            + self.g722_start.as_ref().map_or(0, |s| s.bytes.len())
    }

    /// Where position `pos` (within the period) plays from: the music or the announcement, the
    /// offset into it, and how many positions from there play contiguously (at least one).
    fn locate(&self, pos: u64) -> (&Encoded, usize, usize) {
        let music_len = self.music.len();
        match &self.announcement {
            None => (&self.music, pos as usize, (music_len - pos) as usize),
            Some(a) => {
                let cycle = a.every + a.audio.len();
                let (k, r) = (pos / cycle, pos % cycle);
                if r < a.every {
                    // Cycle k resumes the music at k·every mod its length (u128: no overflow).
                    let resume = ((k as u128 * a.every as u128) % music_len as u128) as u64;
                    let m = (resume + r) % music_len;
                    let n = (a.every - r).min(music_len - m);
                    (&self.music, m as usize, n as usize)
                } else {
                    let off = r - a.every;
                    (&a.audio, off as usize, (a.audio.len() - off) as usize)
                }
            }
        }
    }

    /// The contiguous bytes of a G.711 codec from `pos` up to the next boundary (end of music,
    /// start or end of an announcement), at most `max_len` long, never empty unless `max_len` is
    /// 0. For G.722, the pre-encoded start from `pos` (empty past it: G.722 callers are encoded
    /// one by one, see [`fill_g722`](Self::fill_g722)).
    pub fn run(&self, codec: Codec, pos: u64, max_len: usize) -> &[u8] {
        let run = match codec {
            Codec::G722 => {
                let start = self.g722_start.as_ref().map_or(&[][..], |s| &s.bytes[..]);
                start
                    .get(pos.min(start.len() as u64) as usize..)
                    .unwrap_or(&[])
            }
            Codec::Pcmu | Codec::Pcma => return self.run_g711(codec, pos % self.len, max_len),
        };
        &run[..run.len().min(max_len)]
    }

    /// [`run`](Self::run) of a G.711 codec at `pos` within the period.
    fn run_g711(&self, codec: Codec, pos: u64, max_len: usize) -> &[u8] {
        let (audio, off, n) = self.locate(pos);
        &audio.get(codec)[off..off + n.min(max_len)]
    }

    /// Copy `out.len()` bytes from `pos`, wrapping; no allocation, no panic. G.722 is what a
    /// caller who started with the program at 0 and jumped to `pos` is sent (see
    /// [`fill_g722`](Self::fill_g722)).
    pub fn fill(&self, codec: Codec, pos: u64, out: &mut [u8]) {
        if codec == Codec::G722 {
            return self.fill_g722(&mut G722Cursor::at_start(), pos, out);
        }
        let mut pos = pos % self.len;
        let mut done = 0;
        while done < out.len() {
            let run = self.run_g711(codec, pos, out.len() - done);
            out[done..done + run.len()].copy_from_slice(run);
            done += run.len();
            pos = (pos + run.len() as u64) % self.len;
        }
    }

    /// Copy the 16 kHz PCM of `out.len() / 2` positions from `pos`, wrapping: silence if the
    /// program keeps no PCM (G.722 was not among the codecs when it was built).
    pub fn fill_pcm16(&self, pos: u64, out: &mut [i16]) {
        let mut pos = pos % self.len;
        let mut done = 0;
        while done + 2 <= out.len() {
            let (audio, off, n) = self.locate(pos);
            let n = n.min((out.len() - done) / 2);
            match audio.pcm16() {
                Some(pcm) => out[done..done + 2 * n].copy_from_slice(&pcm[2 * off..2 * (off + n)]),
                None => out[done..done + 2 * n].fill(0),
            }
            done += 2 * n;
            pos = (pos + n as u64) % self.len;
        }
    }

    /// Write the G.722 bytes of `out.len()` positions from `pos` for the caller whose encoder
    /// is `cursor`: the pre-encoded start while the caller plays it, then the caller's own
    /// encoding of [`fill_pcm16`](Self::fill_pcm16). No allocation.
    pub fn fill_g722(&self, cursor: &mut G722Cursor, pos: u64, out: &mut [u8]) {
        let mut done = 0;
        if !cursor.live {
            if let Some(start) = &self.g722_start {
                let run = usize::try_from(pos)
                    .ok()
                    .and_then(|p| start.bytes.get(p..))
                    .unwrap_or(&[]);
                done = run.len().min(out.len());
                out[..done].copy_from_slice(&run[..done]);
                if done < out.len() {
                    cursor.encoder = start.after.clone();
                }
            }
            cursor.live = done < out.len();
        }
        let mut pcm = [0i16; 2 * LIVE_STEP];
        while done < out.len() {
            let n = (out.len() - done).min(LIVE_STEP);
            self.fill_pcm16(pos % self.len + done as u64, &mut pcm[..2 * n]);
            cursor
                .encoder
                .encode_into(&pcm[..2 * n], &mut out[done..done + n]);
            done += n;
        }
    }
}
