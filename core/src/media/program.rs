//! A class's looping program as a pure function of position.
//!
//! Without an announcement the program is the playlist's music, looped. With one, it is cycles
//! of `every` units of music followed by the announcement; the music resumes where it paused, so
//! cycle `k` plays music from `k · every` (mod the music's length). The whole pattern repeats
//! after `music_len / gcd(music_len, every)` cycles: that period is the program length, which
//! keeps `fill(pos)` a pure function of `pos` (shared-mode callers all agree on what `pos` means).

use super::Encoded;
use crate::codec::Codec;

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
            announcement: Some(Announcement { audio, every }),
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

    /// Encoded bytes held for all codecs.
    pub fn memory_bytes(&self) -> usize {
        3 * self.audio_len() as usize
    }

    /// The contiguous bytes from `pos` (taken modulo the period) up to the next boundary (end
    /// of music, start or end of an announcement), at most `max_len` long, never empty unless
    /// `max_len` is 0.
    pub fn run(&self, codec: Codec, pos: u64, max_len: usize) -> &[u8] {
        let pos = pos % self.len;
        let music = self.music.get(codec);
        let music_len = music.len() as u64;
        let run = match &self.announcement {
            None => &music[pos as usize..],
            Some(a) => {
                let cycle = a.every + a.audio.len();
                let k = pos / cycle;
                let r = pos % cycle;
                if r < a.every {
                    // Music position: k·every + r, modulo the music's length (u128: no overflow).
                    let m = ((k as u128 * a.every as u128 + r as u128) % music_len as u128) as u64;
                    let n = (a.every - r).min(music_len - m);
                    &music[m as usize..(m + n) as usize]
                } else {
                    &a.audio.get(codec)[(r - a.every) as usize..]
                }
            }
        };
        &run[..run.len().min(max_len)]
    }

    /// Copy `out.len()` bytes from `pos`, wrapping; no allocation, no panic.
    pub fn fill(&self, codec: Codec, pos: u64, out: &mut [u8]) {
        let mut pos = pos % self.len;
        let mut done = 0;
        while done < out.len() {
            let run = self.run(codec, pos, out.len() - done);
            out[done..done + run.len()].copy_from_slice(run);
            done += run.len();
            pos = (pos + run.len() as u64) % self.len;
        }
    }
}
