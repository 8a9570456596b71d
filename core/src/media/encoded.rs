//! Audio encoded once per codec into shared buffers, and the builder that streams a playlist in.

use std::sync::Arc;

use super::{g711, g722};
use crate::codec::Codec;

/// The same audio encoded in every codec: 8000 bytes per second each, equal lengths.
#[derive(Clone, Debug)]
pub struct Encoded {
    pcmu: Arc<[u8]>,
    pcma: Arc<[u8]>,
    g722: Arc<[u8]>,
    /// With a looping stream: the G.722 start as encoded from the zero state, for the first
    /// pass (`g722` starts instead with the same audio encoded from the end's state).
    g722_first: Arc<[u8]>,
}

impl Encoded {
    /// Encode mono audio given at 8 kHz (G.711) and 16 kHz (G.722, twice as long). With
    /// `loops`, the G.722 start is encoded for a decoder arriving from the end (see
    /// [`EncodedBuilder::finish`]).
    pub fn encode(pcm8: &[i16], pcm16: &[i16], loops: bool) -> Encoded {
        let mut b = EncodedBuilder::new();
        b.push(pcm8, pcm16);
        b.finish(loops)
    }

    /// The encoded bytes of `codec` as they play once the stream has looped (for G.722, see
    /// [`first_pass_start`](Self::first_pass_start)).
    pub fn get(&self, codec: Codec) -> &Arc<[u8]> {
        match codec {
            Codec::Pcmu => &self.pcmu,
            Codec::Pcma => &self.pcma,
            Codec::G722 => &self.g722,
        }
    }

    /// The bytes that start the first pass instead of `get(codec)`'s: for a looping G.722
    /// stream, its start encoded from the zero state a decoder begins in. Empty for G.711 (it
    /// has no state) and for a stream that does not loop (its start already is that).
    pub fn first_pass_start(&self, codec: Codec) -> &[u8] {
        match codec {
            Codec::G722 => &self.g722_first,
            Codec::Pcmu | Codec::Pcma => &[],
        }
    }

    /// Length in RTP timestamp units (bytes of any codec).
    pub fn len(&self) -> u64 {
        self.pcmu.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.pcmu.is_empty()
    }

    /// Bytes held, all codecs.
    pub fn memory_bytes(&self) -> usize {
        self.pcmu.len() + self.pcma.len() + self.g722.len() + self.g722_first.len()
    }
}

/// Samples of the 16 kHz start of a looping stream re-encoded from the end's state (a quarter
/// second): the G.722 decoder of a caller who reaches the loop point is exactly in step for
/// this long (see [`EncodedBuilder::finish`]).
const G722_HEAD: usize = 4000;

/// The G.722 encoder as it was at a position of the stream, with the 16 kHz input that
/// follows: enough to re-encode what follows for a decoder that arrives from elsewhere.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub encoder: g722::Encoder,
    pub next: Vec<i16>,
}

/// Encodes a stream piece by piece (a playlist, track after track), so a class never holds its
/// whole playlist as PCM: only the encoded bytes grow.
#[derive(Debug, Default)]
pub struct EncodedBuilder {
    pcmu: Vec<u8>,
    pcma: Vec<u8>,
    g722: Vec<u8>,
    enc: g722::Encoder,
    head: Vec<i16>,
    /// With `Some((every, keep))`: snapshot the G.722 encoder at every multiple of `every`
    /// bytes and keep the next `keep` 16 kHz samples with it.
    snapshot_plan: Option<(usize, usize)>,
    snapshots: Vec<Snapshot>,
}

impl EncodedBuilder {
    pub fn new() -> EncodedBuilder {
        EncodedBuilder::default()
    }

    /// A builder that also takes a [`Snapshot`] every `every` bytes (from 0), keeping `keep`
    /// 16 kHz samples (at most `2 · every`) after each.
    pub fn with_snapshots(every: usize, keep: usize) -> EncodedBuilder {
        EncodedBuilder {
            snapshot_plan: Some((every.max(1), keep.min(2 * every.max(1)))),
            ..EncodedBuilder::default()
        }
    }

    /// Bytes so far (of any codec).
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
        if self.head.len() < G722_HEAD {
            let take = (G722_HEAD - self.head.len()).min(pcm16.len() & !1);
            self.head.extend_from_slice(&pcm16[..take]);
        }
        match self.snapshot_plan {
            None => self.enc.encode(pcm16, &mut self.g722),
            Some((every, keep)) => {
                self.g722.reserve(pcm16.len() / 2);
                for pair in pcm16.chunks_exact(2) {
                    if self.g722.len() % every == 0 {
                        self.snapshots.push(Snapshot {
                            encoder: self.enc.clone(),
                            next: Vec::with_capacity(keep),
                        });
                    }
                    if let Some(s) = self.snapshots.last_mut() {
                        if s.next.len() < keep {
                            s.next.extend_from_slice(pair);
                        }
                    }
                    self.g722.push(self.enc.encode_pair(pair[0], pair[1]));
                }
            }
        }
        // Positions index every codec alike: the lengths must agree even if a caller passed a
        // 16 kHz signal of the wrong length (pad with encoded silence, or cut).
        while self.g722.len() < self.pcmu.len() {
            self.g722.push(self.enc.encode_pair(0, 0));
        }
        self.g722.truncate(self.pcmu.len());
    }

    /// The encoded stream. G.711 is stateless: any byte may follow any other. A G.722 decoder
    /// is in step only with bytes encoded from the state it is in; fed bytes encoded from
    /// another state, it decodes distortion, up to full scale, for the 0.3–0.7 s it takes to
    /// fall in step with them (decoders fed the same bytes end in exactly the same state, while
    /// two encoders fed the same audio from different states never do). So, with `loops`:
    /// - the first quarter second is encoded again from the encoder's state at the end, the
    ///   state a caller's decoder is in when the music wraps, and the stream ([`Encoded::get`])
    ///   starts with that: the loop point itself is as clean as any other point;
    /// - the start as first encoded, from the zero state, is kept for the first pass
    ///   ([`Encoded::first_pass_start`]): a caller who starts with the music hears one
    ///   encoding from the zero state, byte for byte what a live encoder sends, until it loops.
    ///
    /// Where the re-encoded start hands back to the first encoding, a quarter second after each
    /// loop point, the caller's decoder is out of step until it falls in step again. A
    /// pre-encoded loop has such a seam somewhere: an encoding of the music does not end in the
    /// state it started from, and one started from its end state never meets it again.
    pub fn finish(self, loops: bool) -> Encoded {
        self.finish_with_state(loops).0
    }

    /// [`finish`](Self::finish), also returning the snapshots taken and the encoder's final
    /// state (where a decoder is after the last byte).
    pub fn finish_with_state(mut self, loops: bool) -> (Encoded, Vec<Snapshot>, g722::Encoder) {
        let mut first = Vec::new();
        if loops && !self.head.is_empty() {
            let mut redo = Vec::with_capacity(self.head.len() / 2);
            self.enc.clone().encode(&self.head, &mut redo);
            let n = redo.len().min(self.g722.len());
            first.extend_from_slice(&self.g722[..n]);
            self.g722[..n].copy_from_slice(&redo[..n]);
        }
        (
            Encoded {
                pcmu: self.pcmu.into(),
                pcma: self.pcma.into(),
                g722: self.g722.into(),
                g722_first: first.into(),
            },
            self.snapshots,
            self.enc,
        )
    }
}
