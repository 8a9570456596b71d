//! The RTP pacing queue: every sending call's next packet deadline, earliest first.
//!
//! Almost every operation is "the earliest packet is due: send it and re-arm the same call one
//! ptime later", so the queue offers `replace_top` (one sift-down) instead of pop + push (a
//! sift-down and a sift-up). Entries are one `u128` — deadline in nanoseconds since the epoch in
//! the high half, the call handle in the low half — so ordering is a single integer compare and
//! an entry is 16 bytes, half the size of `(Instant, seq, handle)`. Equal deadlines pop in
//! handle order: deterministic, as handles are. Stale entries (a call on hold, ended, or
//! re-armed) are left in place and skipped by the caller, which checks the call's own deadline.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use crate::server::CallHandle;

#[derive(Debug)]
pub(crate) struct PacingQueue {
    epoch: Instant,
    heap: BinaryHeap<Reverse<u128>>,
}

impl PacingQueue {
    pub fn new(epoch: Instant) -> PacingQueue {
        PacingQueue {
            epoch,
            heap: BinaryHeap::new(),
        }
    }

    fn key(&self, at: Instant, h: CallHandle) -> u128 {
        let ns = at
            .saturating_duration_since(self.epoch)
            .as_nanos()
            .min(u64::MAX as u128);
        (ns << 64) | h.0 as u128
    }

    fn unkey(&self, key: u128) -> (Instant, CallHandle) {
        let at = self.epoch + Duration::from_nanos((key >> 64) as u64);
        (at, CallHandle(key as u64))
    }

    pub fn push(&mut self, at: Instant, h: CallHandle) {
        let key = self.key(at, h);
        self.heap.push(Reverse(key));
    }

    /// The earliest entry, if it is due at `now`.
    pub fn peek_due(&self, now: Instant) -> Option<(Instant, CallHandle)> {
        let Reverse(key) = *self.heap.peek()?;
        let (at, h) = self.unkey(key);
        (at <= now).then_some((at, h))
    }

    /// Re-arm the earliest entry (just sent) for its next deadline.
    pub fn replace_top(&mut self, at: Instant, h: CallHandle) {
        let key = self.key(at, h);
        if self.heap.is_empty() {
            self.heap.push(Reverse(key));
        } else if let Some(mut top) = self.heap.peek_mut() {
            *top = Reverse(key);
        }
    }

    /// Drop the earliest entry (stale).
    pub fn pop(&mut self) {
        self.heap.pop();
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(k)| self.unkey(*k).0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::disallowed_methods)] // any instant will do as the epoch
    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn earliest_first_ties_by_handle_and_replace_top_reorders() {
        let t = t0();
        let ms = |n| t + Duration::from_millis(n);
        let mut q = PacingQueue::new(t);
        q.push(ms(20), CallHandle(7));
        q.push(ms(10), CallHandle(9));
        q.push(ms(10), CallHandle(3));
        assert_eq!(q.peek_due(ms(5)), None, "nothing due before 10 ms");
        assert_eq!(q.peek_due(ms(10)), Some((ms(10), CallHandle(3))));
        q.replace_top(ms(30), CallHandle(3));
        assert_eq!(q.peek_due(ms(10)), Some((ms(10), CallHandle(9))));
        q.pop();
        assert_eq!(q.next_deadline(), Some(ms(20)));
        q.pop();
        assert_eq!(q.peek_due(ms(100)), Some((ms(30), CallHandle(3))));
        q.pop();
        assert_eq!(q.next_deadline(), None);
        // sub-microsecond deadlines survive the round trip exactly
        let odd = t + Duration::from_nanos(123_456_789);
        q.push(odd, CallHandle(1));
        assert_eq!(q.next_deadline(), Some(odd));
    }
}
