//! The RTP pacing queue: every sending call's next packet deadline, earliest first.
//!
//! Almost every operation is "the earliest packet is due: send it and re-arm the same call one
//! ptime later" (`replace_top`). Entries are one `u128` — deadline in nanoseconds since the
//! epoch in the high half, the call handle in the low half — so ordering is a single integer
//! compare and an entry is 16 bytes, half the size of `(Instant, seq, handle)`. Equal deadlines
//! pop in handle order: deterministic, as handles are. Stale entries (a call on hold, ended, or
//! re-armed) are left in place and skipped by the caller, which checks the call's own
//! deadline.
//!
//! Calls of one ptime re-arm in the order they send, so entries are kept in [`Lanes`]: a
//! re-armed call is appended to a sorted lane and taken from its front in O(1), and only a call
//! starting (or one of another ptime) goes to the heap.

use std::time::{Duration, Instant};

use crate::handle::CallHandle;
use crate::lanes::Lanes;

#[derive(Debug)]
pub(crate) struct PacingQueue {
    epoch: Instant,
    queue: Lanes<u128, LANES>,
}

/// How many sorted lanes take in-order entries before the heap does (one per ptime in use).
const LANES: usize = 2;

impl PacingQueue {
    pub fn new(epoch: Instant) -> PacingQueue {
        PacingQueue {
            epoch,
            queue: Lanes::default(),
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
        self.queue.push(key);
    }

    /// The earliest entry, if it is due at `now`.
    pub fn peek_due(&self, now: Instant) -> Option<(Instant, CallHandle)> {
        let (at, h) = self.unkey(self.queue.least()?.order);
        (at <= now).then_some((at, h))
    }

    /// Re-arm the earliest entry (just sent) for its next deadline.
    pub fn replace_top(&mut self, at: Instant, h: CallHandle) {
        let key = self.key(at, h);
        self.queue.pop();
        self.queue.push(key);
    }

    /// Drop the earliest entry (stale).
    pub fn pop(&mut self) {
        self.queue.pop();
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.queue.least().map(|l| self.unkey(l.order).0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

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

    /// Lanes and heap together give exactly the entries one heap would, in its order, whatever
    /// the pattern: re-arms one ptime on (two ptimes at once), new calls, stale entries dropped.
    #[test]
    fn lanes_and_heap_order_as_one_heap() {
        let t = t0();
        let mut rng = crate::rng::Rng::new(11);
        for round in 0..40 {
            let mut q = PacingQueue::new(t);
            let mut model: BinaryHeap<Reverse<(Instant, CallHandle)>> = BinaryHeap::new();
            let mut now = t + Duration::from_millis(rng.below(50));
            for n in 0..600u64 {
                let top = model.peek().map(|Reverse(e)| *e);
                assert_eq!(q.next_deadline(), top.map(|e| e.0), "round {round}");
                assert_eq!(q.peek_due(now), top.filter(|e| e.0 <= now), "round {round}");
                match rng.below(8) {
                    0 | 1 => {
                        let at = now + Duration::from_micros(rng.below(3000));
                        let h = CallHandle(1 + rng.below(40) + (rng.below(3) << 32));
                        q.push(at, h);
                        model.push(Reverse((at, h)));
                    }
                    2..=4 => {
                        if let Some(Reverse((at, h))) = model.pop() {
                            let ptime = [20, 30][(h.0 % 2) as usize];
                            let next = at + Duration::from_millis(ptime);
                            q.replace_top(next, h);
                            model.push(Reverse((next, h)));
                        }
                    }
                    5 => {
                        q.pop();
                        model.pop();
                    }
                    _ => now += Duration::from_micros(rng.below(25_000) + n % 3),
                }
            }
        }
    }
}
