//! One deadline heap for every SIP timer in the server.
//!
//! Entries are `(deadline, insertion seq, key)`: equal deadlines pop in insertion order, so runs
//! are deterministic. Cancelling is lazy: the owner of a timer remembers the deadline it armed,
//! and a popped entry whose owner no longer expects it is skipped (cheaper than a removable heap
//! and exactly as correct).
//!
//! The heap orders entries by one `u128`: the deadline as nanoseconds from the first deadline
//! ever pushed (biased so earlier ones fit too) in the high half, the sequence number in the
//! low half. Comparing an `(Instant, u64)` tuple costs several branches per level of the heap,
//! and the pacing heap pops once per RTP packet. The deadline is decoded from the packed value
//! (exactly: `Instant` ± a whole number of nanoseconds), so an entry is no bigger than before.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::Instant;

#[derive(Debug)]
pub(crate) struct TimerHeap<K: Ord> {
    heap: BinaryHeap<Reverse<Entry<K>>>,
    seq: u64,
    /// The first deadline pushed: the origin of the packed order.
    origin: Option<Instant>,
}

#[derive(Debug)]
struct Entry<K> {
    order: u128,
    key: K,
}

/// The packed deadline of the origin itself: offsets below it are earlier deadlines.
const MID: u64 = 1 << 63;

impl<K> PartialEq for Entry<K> {
    fn eq(&self, other: &Self) -> bool {
        self.order == other.order
    }
}

impl<K> Eq for Entry<K> {}

impl<K> PartialOrd for Entry<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<K> Ord for Entry<K> {
    /// The sequence number makes every order unique, so the key never needs comparing.
    fn cmp(&self, other: &Self) -> Ordering {
        self.order.cmp(&other.order)
    }
}

impl<K: Ord> Default for TimerHeap<K> {
    fn default() -> Self {
        TimerHeap {
            heap: BinaryHeap::new(),
            seq: 0,
            origin: None,
        }
    }
}

impl<K: Ord> TimerHeap<K> {
    pub fn push(&mut self, at: Instant, key: K) {
        self.seq += 1;
        let origin = *self.origin.get_or_insert(at);
        // ±2^63 ns (292 years) around the origin; anything farther saturates (and would pop
        // at the saturated deadline), which no SIP or RTP timer comes near.
        let nanos = |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let deadline = match at.checked_duration_since(origin) {
            Some(after) => MID.saturating_add(nanos(after)),
            None => MID.saturating_sub(nanos(origin - at)),
        };
        let order = ((deadline as u128) << 64) | self.seq as u128;
        self.heap.push(Reverse(Entry { order, key }));
    }

    /// The deadline packed into `order` (an entry exists, so the origin is set).
    fn deadline(&self, order: u128) -> Option<Instant> {
        let origin = self.origin?;
        let packed = (order >> 64) as u64;
        Some(if packed >= MID {
            origin + std::time::Duration::from_nanos(packed - MID)
        } else {
            origin - std::time::Duration::from_nanos(MID - packed)
        })
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        let Reverse(e) = self.heap.peek()?;
        self.deadline(e.order)
    }

    /// Pop the earliest entry if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, K)> {
        let at = self.next_deadline()?;
        if at > now {
            return None;
        }
        let Reverse(e) = self.heap.pop()?;
        Some((at, e.key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    #[allow(clippy::disallowed_methods)] // any instant will do as the test's origin
    fn pops_by_deadline_then_insertion_order_around_the_origin() {
        let t0 = Instant::now();
        let mut h = TimerHeap::default();
        h.push(t0 + Duration::from_secs(5), 1);
        h.push(t0 + Duration::from_secs(1), 2); // before the origin
        h.push(t0 + Duration::from_secs(5), 3); // tie: after 1
        h.push(t0 + Duration::from_nanos(5_000_000_001), 4);
        h.push(t0, 5);
        assert_eq!(h.next_deadline(), Some(t0));
        let end = t0 + Duration::from_secs(10);
        let got: Vec<(Instant, i32)> = std::iter::from_fn(|| h.pop_due(end)).collect();
        let want = [
            (t0, 5),
            (t0 + Duration::from_secs(1), 2),
            (t0 + Duration::from_secs(5), 1),
            (t0 + Duration::from_secs(5), 3),
            (t0 + Duration::from_nanos(5_000_000_001), 4),
        ];
        assert_eq!(got, want);
    }
}
