//! A class's looping program as a pure function of position.
//!
//! Without an announcement the program is the playlist's music, looped. With one, it is cycles
//! of `every` units of music followed by the announcement; the music resumes where it paused, so
//! cycle `k` plays music from `k · every` (mod the music's length). The whole pattern repeats
//! after `music_len / gcd(music_len, every)` cycles: that period is the program length, which
//! keeps `fill(pos)` a pure function of `pos` (shared-mode callers all agree on what `pos` means).
//!
//! G.711 is stateless, so any byte can follow any other. G.722 is adaptive: a decoder that
//! jumps from the music into an announcement encoded from a fresh encoder (or back) decodes a
//! burst of noise, up to full scale, until its state falls in step with the bytes.
//! [`ProgramBuilder`] therefore places the cuts on a one-second grid (it rounds the interval and
//! pads the playlist with under a second of silence) and, for each cut the schedule reaches,
//! re-encodes the first [`BRIDGE`] bytes after it from the state the decoder is really in: the
//! announcement's start from the music's encoder state at the cut, and the music's restart from
//! the announcement's end state. `run` serves those bridges in place of the plain bytes.
//!
//! The program's first pass starts with the music's start as encoded from the zero state (the
//! state a caller's decoder starts in), later passes with it encoded for a decoder arriving
//! from the end (see `EncodedBuilder::finish`): `fill(pos)` is a pure function of `pos`, and
//! periodic from the second pass on.

use super::encoded::{EncodedBuilder, Snapshot};
use super::Encoded;
use crate::codec::Codec;

/// Music positions where an announcement may cut in are multiples of this (one second).
pub const CUT_GRID: u64 = 8000;
/// Length of the re-encoded G.722 stretch after each cut: 125 ms. Where it hands back to the
/// plain bytes the decoder is out of step until it falls in step with them (within about half
/// a second), a far smaller error than at the cut itself: both encoders had adapted to the
/// same audio.
pub const BRIDGE: usize = 1000;

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
}

impl ProgramBuilder {
    /// `every`: the announcement interval if the class has one, already on the grid (see
    /// [`announcement_interval`]).
    pub fn new(every: Option<u64>) -> ProgramBuilder {
        let music = match every {
            Some(_) => EncodedBuilder::with_snapshots(CUT_GRID as usize, 2 * BRIDGE),
            None => EncodedBuilder::new(),
        };
        ProgramBuilder { music, every }
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
            return Some(Program::music_only(self.music.finish(true)));
        };
        if a8.is_empty() {
            return Some(Program::music_only(self.music.finish(true)));
        }
        // Pad the playlist to the grid so that every cut lands on a snapshot.
        let short = (CUT_GRID - self.len() % CUT_GRID) % CUT_GRID;
        if short > 0 {
            self.music
                .push(&vec![0; short as usize], &vec![0; 2 * short as usize]);
        }
        let (music, snapshots, music_end) = self.music.finish_with_state(true);
        let mut ann_builder = EncodedBuilder::new();
        ann_builder.push(a8, a16);
        let (audio, _, ann_end) = ann_builder.finish_with_state(false);

        let music_len = music.len();
        let spacing = gcd(music_len, every);
        let cuts = (music_len / spacing) as usize;
        let into_ann_len = BRIDGE.min(a8.len());
        let into_music_len = BRIDGE;
        let mut into_ann = Vec::with_capacity(cuts * into_ann_len);
        let mut into_music = Vec::with_capacity(cuts * into_music_len);
        for i in 0..cuts {
            let at = i as u64 * spacing;
            let snap: &Snapshot = &snapshots[(at / CUT_GRID) as usize];
            // The decoder reaching this cut has played the music up to it; at 0 that means the
            // whole playlist (the end state), not a fresh start.
            let mut enc = if at == 0 {
                music_end.clone()
            } else {
                snap.encoder.clone()
            };
            let start = into_ann.len();
            enc.encode(&a16[..2 * into_ann_len], &mut into_ann);
            into_ann.resize(start + into_ann_len, 0);
            // Music resumes after the announcement's end: exactly `enc` if the bridge covered
            // the whole announcement, otherwise the plain announcement's end state (a decoder
            // falls in step with the plain bytes after the bridge within about half a second).
            let mut enc = if into_ann_len == a8.len() {
                enc
            } else {
                ann_end.clone()
            };
            let start = into_music.len();
            let next = &snap.next[..snap.next.len().min(2 * into_music_len)];
            enc.encode(next, &mut into_music);
            into_music.resize(start + into_music_len, 0);
        }
        let mut program = Program::with_announcement(music, audio, every)?;
        if let Some(a) = program.announcement.as_mut() {
            a.bridges = Some(Bridges {
                spacing,
                into_ann_len,
                into_music_len,
                into_ann,
                into_music,
            });
        }
        Some(program)
    }
}

/// G.722 bytes re-encoded at each cut the schedule reaches (cut `i` is at music position
/// `i · spacing`).
#[derive(Clone, Debug)]
struct Bridges {
    spacing: u64,
    into_ann_len: usize,
    into_music_len: usize,
    /// The announcement's first `into_ann_len` bytes, per cut, for a decoder coming from the
    /// music that paused there.
    into_ann: Vec<u8>,
    /// The music's first `into_music_len` bytes from the cut, for a decoder coming from the
    /// announcement.
    into_music: Vec<u8>,
}

impl Bridges {
    fn bytes(&self) -> usize {
        self.into_ann.len() + self.into_music.len()
    }
}

#[derive(Clone, Debug)]
pub struct Program {
    music: Encoded,
    announcement: Option<Announcement>,
    len: u64,
}

#[derive(Clone, Debug)]
struct Announcement {
    audio: Encoded,
    /// Music played between announcements, in RTP timestamp units.
    every: u64,
    bridges: Option<Bridges>,
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
        }
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
        Some(Program {
            music,
            announcement: Some(Announcement {
                audio,
                every,
                bridges: None,
            }),
            len,
        })
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

    /// Encoded bytes held for all codecs (G.722 bridges included).
    pub fn memory_bytes(&self) -> usize {
        let bridges = self
            .announcement
            .as_ref()
            .and_then(|a| a.bridges.as_ref())
            .map_or(0, Bridges::bytes);
        self.music.memory_bytes()
            + self
                .announcement
                .as_ref()
                .map_or(0, |a| a.audio.memory_bytes())
            + bridges
    }

    /// The contiguous bytes from `pos` up to the next boundary (end of music, start or end of an
    /// announcement, end of the first pass's own start), at most `max_len` long, never empty
    /// unless `max_len` is 0. The first pass may start differently (see
    /// [`Encoded::first_pass_start`]); past that start it plays what every pass plays, so any
    /// other position is taken modulo the period.
    pub fn run(&self, codec: Codec, pos: u64, max_len: usize) -> &[u8] {
        // Only the first pass has positions this low. The program starts with the music (the
        // first announcement comes after a whole interval), so this is the music's own start.
        let start = self.music.first_pass_start(codec);
        if pos < start.len() as u64 {
            let run = &start[pos as usize..];
            return &run[..run.len().min(max_len)];
        }
        self.run_periodic(codec, pos % self.len, max_len)
    }

    /// [`run`](Self::run) at `pos` within the period, as every pass but the first plays it.
    fn run_periodic(&self, codec: Codec, pos: u64, max_len: usize) -> &[u8] {
        let music = self.music.get(codec);
        let music_len = music.len() as u64;
        let run = match &self.announcement {
            None => &music[pos as usize..],
            Some(a) => {
                let cycle = a.every + a.audio.len();
                let k = pos / cycle;
                let r = pos % cycle;
                // Music position where cycle k resumes: k·every mod the music's length (u128: no
                // overflow).
                let resume = |k: u64| ((k as u128 * a.every as u128) % music_len as u128) as u64;
                let bridges = a.bridges.as_ref().filter(|_| codec == Codec::G722);
                if r < a.every {
                    let m = (resume(k) + r) % music_len;
                    let n = (a.every - r).min(music_len - m);
                    match bridges {
                        Some(b) if (r as usize) < b.into_music_len => {
                            let i = (resume(k) / b.spacing) as usize * b.into_music_len;
                            let run = &b.into_music[i + r as usize..i + b.into_music_len];
                            &run[..run.len().min(n as usize)]
                        }
                        _ => &music[m as usize..(m + n) as usize],
                    }
                } else {
                    let off = (r - a.every) as usize;
                    match bridges {
                        Some(b) if off < b.into_ann_len => {
                            // The music paused where cycle k + 1 will resume.
                            let i = (resume(k + 1) / b.spacing) as usize * b.into_ann_len;
                            &b.into_ann[i + off..i + b.into_ann_len]
                        }
                        _ => &a.audio.get(codec)[off..],
                    }
                }
            }
        };
        &run[..run.len().min(max_len)]
    }

    /// Copy `out.len()` bytes from `pos`, wrapping; no allocation, no panic.
    pub fn fill(&self, codec: Codec, pos: u64, out: &mut [u8]) {
        if pos < self.music.first_pass_start(codec).len() as u64 {
            return self.fill_first_pass(codec, pos, out);
        }
        let mut pos = pos % self.len;
        let mut done = 0;
        while done < out.len() {
            let run = self.run_periodic(codec, pos, out.len() - done);
            out[done..done + run.len()].copy_from_slice(run);
            done += run.len();
            pos = (pos + run.len() as u64) % self.len;
        }
    }

    /// [`fill`](Self::fill) from a position in the first pass's own start: that start, then
    /// the periodic program (a call's first packets only, so out of the per-packet path).
    #[cold]
    fn fill_first_pass(&self, codec: Codec, pos: u64, out: &mut [u8]) {
        let run = self.run(codec, pos, out.len());
        let n = run.len();
        out[..n].copy_from_slice(run);
        // A run is never empty while `out` is not: this recurses once at most.
        if n < out.len() {
            self.fill(codec, pos + n as u64, &mut out[n..]);
        }
    }
}
