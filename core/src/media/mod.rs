//! Music: decoding from bytes, resampling, G.711/G.722 encoding, libraries and classes.
//!
//! CONTRACT (the server depends on exactly this; the media work fills it in):
//! - every codec stream is 8000 bytes per second, so a position in a class's looping program is
//!   one `u64` in RTP timestamp units (1/8000 s), the same for PCMU, PCMA and G.722;
//! - `Library::fill` copies `out.len()` bytes of the program starting at `pos`, wrapping at the
//!   end of the loop; it never allocates and never fails.

use crate::codec::Codec;

/// Index of a music class inside a [`Library`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClassId(pub u16);

/// How callers of a class share the music.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlayMode {
    /// Each caller starts at the beginning of the program.
    PerCall,
    /// Radio: every caller hears the same point, derived from the global pacing grid.
    Shared,
}

/// Decoded, encoded, immutable music for every class.
#[derive(Debug)]
pub struct Library {
    silence_len: u64,
}

impl Library {
    /// Placeholder until the media work lands: one class of one second of silence.
    pub fn silence() -> Library {
        Library { silence_len: 8000 }
    }

    /// The class for a Request-URI user part (the default class for anything unknown).
    pub fn class_for(&self, _user: &str) -> ClassId {
        ClassId(0)
    }

    pub fn mode(&self, _class: ClassId) -> PlayMode {
        PlayMode::PerCall
    }

    /// Length of the class's looping program in RTP timestamp units (bytes of any codec).
    pub fn program_len(&self, _class: ClassId) -> u64 {
        self.silence_len
    }

    /// Copy `out.len()` bytes of `codec` from position `pos` (wrapping) of the class's program.
    pub fn fill(&self, _class: ClassId, codec: Codec, _pos: u64, out: &mut [u8]) {
        let silence = match codec {
            Codec::Pcmu => 0xFF,
            Codec::Pcma => 0xD5,
            Codec::G722 => 0xFA,
        };
        out.fill(silence);
    }
}
