//! What callers send, decoded by the core (`Event::Heard`), on its way to listeners
//! (`GET /api/calls/{id}/listen`) and to the recorder. The loop hands each chunk over without
//! waiting: a listener whose queue is full is dropped, as a slow event subscriber is.

use std::collections::BTreeMap;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};

use onhold_core::CallHandle;

/// Chunks (one RTP packet's audio, about 20 ms) a listener may fall behind by: 1.3 s.
const QUEUE: usize = 64;

/// Each call's listeners: the sending ends of their queues.
type ByCall = BTreeMap<CallHandle, Vec<SyncSender<Arc<[u8]>>>>;

/// The listeners of each call.
#[derive(Default)]
pub struct Listeners {
    by_call: Mutex<ByCall>,
}

impl Listeners {
    fn lock(&self) -> MutexGuard<'_, ByCall> {
        self.by_call.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new listener of `call`: 16-bit little-endian PCM chunks until the call ends (the
    /// channel closes) or the listener falls behind.
    pub fn add(&self, call: CallHandle) -> Receiver<Arc<[u8]>> {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        self.lock().entry(call).or_default().push(tx);
        rx
    }

    /// Is anyone listening to `call`?
    pub fn wants(&self, call: CallHandle) -> bool {
        self.lock().get(&call).is_some_and(|l| !l.is_empty())
    }

    /// The calls someone listens to.
    pub fn calls(&self) -> Vec<CallHandle> {
        self.lock()
            .iter()
            .filter(|(_, l)| !l.is_empty())
            .map(|(c, _)| *c)
            .collect()
    }

    /// Hand a chunk to every listener of `call`; those that are full or gone are dropped.
    pub fn send(&self, call: CallHandle, chunk: &Arc<[u8]>) {
        let mut by_call = self.lock();
        let Some(listeners) = by_call.get_mut(&call) else {
            return;
        };
        listeners.retain(|tx| match tx.try_send(Arc::clone(chunk)) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        });
        if listeners.is_empty() {
            by_call.remove(&call);
        }
    }

    /// The call ended: its listeners' streams end.
    pub fn end(&self, call: CallHandle) {
        self.lock().remove(&call);
    }
}

/// A WAV header for 16-bit mono PCM at `rate`, with `data_len` bytes of samples (`u32::MAX`
/// less the header for a stream of unknown length, as players expect).
pub fn wav_header(rate: u32, data_len: u32) -> [u8; 44] {
    let mut h = [0u8; 44];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&data_len.saturating_add(36).to_le_bytes());
    h[8..16].copy_from_slice(b"WAVEfmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&1u16.to_le_bytes()); // mono
    h[24..28].copy_from_slice(&rate.to_le_bytes());
    h[28..32].copy_from_slice(&(rate * 2).to_le_bytes());
    h[32..34].copy_from_slice(&2u16.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_len.to_le_bytes());
    h
}

/// 16-bit little-endian bytes of `pcm`.
pub fn le_bytes(pcm: &[i16]) -> Arc<[u8]> {
    pcm.iter().flat_map(|s| s.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_that_falls_behind_is_dropped_and_the_end_closes_the_rest() {
        let l = Listeners::default();
        let call = CallHandle(1);
        let slow = l.add(call);
        let fast = l.add(call);
        let chunk = le_bytes(&[1, -1]);
        for _ in 0..QUEUE {
            l.send(call, &chunk);
            assert!(fast.try_recv().is_ok());
        }
        assert_eq!(l.lock()[&call].len(), 2);
        l.send(call, &chunk);
        assert_eq!(l.lock()[&call].len(), 1, "the full one is dropped");
        assert_eq!(&*fast.recv().unwrap(), &[1, 0, 0xff, 0xff]);
        drop(slow);
        l.end(call);
        assert!(fast.recv().is_err(), "the call ended: the stream ends");
        assert!(!l.wants(call));
    }

    #[test]
    fn the_wav_header_describes_16_bit_mono_pcm() {
        let h = wav_header(16_000, 320);
        assert_eq!(&h[0..4], b"RIFF");
        assert_eq!(u32::from_le_bytes(h[4..8].try_into().unwrap()), 356);
        assert_eq!(u32::from_le_bytes(h[24..28].try_into().unwrap()), 16_000);
        assert_eq!(u32::from_le_bytes(h[28..32].try_into().unwrap()), 32_000);
        assert_eq!(u32::from_le_bytes(h[40..44].try_into().unwrap()), 320);
    }
}
