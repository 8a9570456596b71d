//! The audio codecs onhold streams. All three carry 8000 payload bytes per second (64 kbit/s)
//! and use an 8000 Hz RTP clock, so one payload byte is exactly one RTP timestamp unit: a frame of
//! `ptime` ms is `ptime * 8` bytes of any codec, and a position in the music is one number.

/// A codec we can encode and send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Codec {
    /// G.711 µ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
    /// G.722 at 16 kHz, signalled `G722/8000` with an 8000 Hz RTP clock (RFC 3551 §4.5.2), PT 9.
    G722,
}

impl Codec {
    pub const ALL: [Codec; 3] = [Codec::Pcmu, Codec::Pcma, Codec::G722];

    /// RFC 3551 static payload type.
    pub fn static_pt(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
            Codec::G722 => 9,
        }
    }

    /// Encoding name as written in `a=rtpmap` (matched case-insensitively).
    pub fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::G722 => "G722",
        }
    }

    /// Audio samples per second: 16 kHz for G.722, which runs on an 8 kHz RTP clock all the
    /// same (RFC 3551 §4.5.2).
    pub fn sample_rate(self) -> u32 {
        match self {
            Codec::G722 => 16_000,
            Codec::Pcmu | Codec::Pcma => 8_000,
        }
    }

    /// RTP clock rate as signalled (G.722 is 8000 by RFC 3551's historical error).
    pub const RTP_CLOCK: u32 = 8000;

    /// Payload bytes per RTP timestamp unit: one for all three codecs.
    pub fn bytes_for_ms(ms: u32) -> usize {
        ms as usize * 8
    }

    pub fn from_name(name: &str) -> Option<Codec> {
        Codec::ALL
            .into_iter()
            .find(|c| c.encoding_name().eq_ignore_ascii_case(name))
    }

    pub fn from_static_pt(pt: u8) -> Option<Codec> {
        Codec::ALL.into_iter().find(|c| c.static_pt() == pt)
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.encoding_name())
    }
}
