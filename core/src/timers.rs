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
//!
//! Most timers are armed at `now` plus a fixed interval (T1, 64·T1, T4), so they are pushed in
//! deadline order: entries are kept in [`Lanes`], which take such pushes and pops in O(1); only
//! entries that fit no lane (randomised RTCP intervals, out-of-order arming) go to its heap.

use std::cmp::Ordering;
use std::time::Instant;

use crate::lanes::{Lanes, Ordered};

/// How many sorted FIFO lanes take in-order pushes before the heap does.
const LANES: usize = 4;

#[derive(Debug)]
pub(crate) struct TimerHeap<K: Ord> {
    /// No entry's order is 0: it holds a sequence number of at least 1.
    queue: Lanes<Entry<K>, LANES>,
    seq: u64,
    /// The first deadline pushed: the origin of the packed order.
    origin: Option<Instant>,
    /// The packed deadline last popped and its `Instant` (the exact decoding): entries armed
    /// for one instant (a call's timer L and ACK timeout; with a coarse clock, the timers of a
    /// whole burst) pop one after another, and each but the first skips decoding.
    last: Option<(Instant, u64)>,
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

impl<K> Ordered for Entry<K> {
    fn order(&self) -> u128 {
        self.order
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
            queue: Lanes::default(),
            seq: 0,
            origin: None,
            last: None,
        }
    }
}

impl<K: Ord> TimerHeap<K> {
    pub fn push(&mut self, at: Instant, key: K) {
        let order = self.order(at);
        self.queue.push(Entry { order, key });
    }

    /// [`push`](Self::push) for a deadline with a random part (RTCP intervals): straight to the
    /// heap. In a lane it would sit in the middle of deadlines armed at fixed intervals and
    /// push the next of those out of the lanes, into the heap; the pop order is the same.
    pub fn push_random(&mut self, at: Instant, key: K) {
        let order = self.order(at);
        self.queue.push_heap(Entry { order, key });
    }

    /// The next sequence number and `at`, packed (see the module docs).
    fn order(&mut self, at: Instant) -> u128 {
        self.seq += 1;
        let origin = *self.origin.get_or_insert(at);
        // ±2^63 ns (292 years) around the origin; anything farther saturates (and would pop
        // at the saturated deadline), which no SIP or RTP timer comes near.
        let nanos = |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let deadline = match at.checked_duration_since(origin) {
            Some(after) => MID.saturating_add(nanos(after)),
            None => MID.saturating_sub(nanos(origin - at)),
        };
        ((deadline as u128) << 64) | self.seq as u128
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
        self.deadline(self.queue.least()?.order)
    }

    /// Pop the earliest entry if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, K)> {
        let least = self.queue.least()?;
        let packed = (least.order >> 64) as u64;
        let at = match self.last {
            Some((last, p)) if p == packed => last,
            _ => {
                let at = self.deadline(least.order)?;
                self.last = Some((at, packed));
                at
            }
        };
        if at > now {
            return None;
        }
        let e = self.queue.take(least)?;
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

    /// Lanes and heap together pop exactly as one heap ordered by (deadline, push order) would,
    /// whatever the push pattern: in order, fixed offsets from a moving `now`, random, and some
    /// entries pushed straight to the heap.
    #[test]
    #[allow(clippy::disallowed_methods)] // any instant will do as the test's origin
    fn pops_like_a_single_heap() {
        let t0 = Instant::now();
        let mut rng = crate::rng::Rng::new(7);
        for round in 0..50 {
            let mut h = TimerHeap::default();
            let mut model: Vec<(Instant, u32)> = Vec::new();
            let mut now = t0 + Duration::from_secs(100);
            for n in 0..400u32 {
                if rng.below(10) == 0 {
                    now += Duration::from_millis(rng.below(3000));
                    let mut got = Vec::new();
                    while let Some(e) = h.pop_due(now) {
                        got.push(e);
                    }
                    // the model: stable sort by deadline keeps push order among ties
                    model.sort_by_key(|&(at, _)| at);
                    let due = model.iter().take_while(|&&(at, _)| at <= now).count();
                    let want: Vec<_> = model.drain(..due).collect();
                    assert_eq!(got, want, "round {round}");
                    assert_eq!(h.next_deadline(), model.iter().map(|&(at, _)| at).min());
                }
                let at = match rng.below(6) {
                    0 => now + Duration::from_millis(500),
                    1 | 2 => now + Duration::from_secs(32),
                    3 => now + Duration::from_millis(2500 + rng.below(5000)),
                    4 => now,
                    _ => t0 + Duration::from_millis(rng.below(200_000)),
                };
                if rng.below(4) == 0 {
                    h.push_random(at, n);
                } else {
                    h.push(at, n);
                }
                model.push((at, n));
            }
        }
    }
}
