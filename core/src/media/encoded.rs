//! Audio encoded once per stateless codec into shared buffers, with the 16 kHz PCM every G.722
//! caller encodes from, and the builder that streams a playlist in.

use std::sync::Arc;

use super::g711;
use crate::codec::Codec;

/// The same audio in every codec's form: 8000 bytes per second of PCMU and of PCMA, and (when
/// G.722 may be negotiated) 16,000 samples per second of 16 kHz PCM.
///
/// G.711 is stateless: any byte may follow any other, so one encoding serves every caller. A
/// G.722 decoder is in step only with bytes encoded from the state it is in, and two encoders
/// fed the same audio from different states never meet, so one pre-encoded G.722 stream has a
/// seam wherever a caller's decoder arrives from elsewhere (the loop point, an announcement, a
/// shared-mode join). G.722 is therefore encoded per caller, live, from this PCM (see
/// [`G722Cursor`](super::G722Cursor)).
#[derive(Clone, Debug)]
pub struct Encoded {
    pcmu: Arc<[u8]>,
    pcma: Arc<[u8]>,
    /// Two samples per PCMU byte; `None` when no caller may use G.722.
    pcm16: Option<Arc<[i16]>>,
}

impl Encoded {
    /// Encode mono audio given at 8 kHz (G.711) and 16 kHz (G.722's input, twice as long),
    /// keeping the 16 kHz PCM only `with_g722`.
    pub fn encode(pcm8: &[i16], pcm16: &[i16], with_g722: bool) -> Encoded {
        let mut b = EncodedBuilder::new(with_g722);
        b.push(pcm8, pcm16);
        b.finish()
    }

    /// The encoded bytes of a stateless codec; empty for G.722, which each caller encodes from
    /// [`pcm16`](Self::pcm16).
    pub fn get(&self, codec: Codec) -> &[u8] {
        match codec {
            Codec::Pcmu => &self.pcmu,
            Codec::Pcma => &self.pcma,
            Codec::G722 => &[],
        }
    }

    /// The 16 kHz PCM, two samples per position; `None` when no caller may use G.722.
    pub fn pcm16(&self) -> Option<&[i16]> {
        self.pcm16.as_deref()
    }

    /// Length in RTP timestamp units (bytes of a G.711 codec).
    pub fn len(&self) -> u64 {
        self.pcmu.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.pcmu.is_empty()
    }

    /// Bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.pcmu.len() + self.pcma.len() + self.pcm16.as_ref().map_or(0, |p| 2 * p.len())
    }
}

/// Encodes a stream piece by piece (a playlist, track after track), so a class never holds more
/// than its encoded bytes and (for G.722) its 16 kHz PCM.
#[derive(Debug, Default)]
pub struct EncodedBuilder {
    pcmu: Vec<u8>,
    pcma: Vec<u8>,
    pcm16: Option<Vec<i16>>,
}

impl EncodedBuilder {
    /// A builder that keeps the 16 kHz PCM only `with_g722`.
    pub fn new(with_g722: bool) -> EncodedBuilder {
        EncodedBuilder {
            pcm16: with_g722.then(Vec::new),
            ..EncodedBuilder::default()
        }
    }

    /// Positions so far.
    pub fn len(&self) -> usize {
        self.pcmu.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pcmu.is_empty()
    }

    /// Append the same audio at 8 kHz and at 16 kHz (`pcm16` twice as long as `pcm8`).
    pub fn push(&mut self, pcm8: &[i16], pcm16: &[i16]) {
        g711::encode_ulaw(pcm8, &mut self.pcmu);
        g711::encode_alaw(pcm8, &mut self.pcma);
        if let Some(pcm) = self.pcm16.as_mut() {
            // Positions index every codec alike: the lengths must agree even if a caller passed
            // a 16 kHz signal of the wrong length (pad with silence, or cut).
            pcm.extend_from_slice(&pcm16[..pcm16.len().min(2 * pcm8.len())]);
            pcm.resize(2 * self.pcmu.len(), 0);
        }
    }

    pub fn finish(self) -> Encoded {
        Encoded {
            pcmu: self.pcmu.into(),
            pcma: self.pcma.into(),
            pcm16: self.pcm16.map(Into::into),
        }
    }
}
