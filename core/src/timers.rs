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
//! (exactly: `Instant` ± a whole number of nanoseconds), so an entry holds no `Instant`.
//!
//! A timer is nearly always armed at `now` plus an interval, and one input arms several (a
//! 2xx: timer L, the 2xx retransmission, the ACK timeout): [`TimerHeap::push_after`] packs
//! `now` once per input and adds each interval as nanoseconds, instead of measuring every
//! deadline from the origin again.
//!
//! Most timers are armed at `now` plus a fixed interval (T1, 64·T1, T4), so they are pushed in
//! deadline order: entries are kept in [`Lanes`], which take such pushes and pops in O(1); only
//! entries that fit no lane (randomised RTCP intervals, out-of-order arming) go to its heap.

use std::cmp::Ordering;
use std::time::{Duration, Instant};

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
    /// The `now` of the last [`push_after`](Self::push_after) and its packed value.
    base: Option<(Instant, u64)>,
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
            base: None,
        }
    }
}

impl<K: Ord> TimerHeap<K> {
    pub fn push(&mut self, at: Instant, key: K) {
        let order = self.order(at);
        self.queue.push(Entry { order, key });
    }

    /// [`push`](Self::push) at `now + delay`.
    pub fn push_after(&mut self, now: Instant, delay: Duration, key: K) {
        let order = self.order_after(now, delay);
        self.queue.push(Entry { order, key });
    }

    /// [`push_after`](Self::push_after) for a delay with a random part (RTCP intervals):
    /// straight to the heap. In a lane the entry would sit in the middle of deadlines armed at
    /// fixed intervals and push the next of those out of the lanes, into the heap; the pop
    /// order is the same.
    pub fn push_random_after(&mut self, now: Instant, delay: Duration, key: K) {
        let order = self.order_after(now, delay);
        self.queue.push_heap(Entry { order, key });
    }

    /// The next sequence number and `at`, packed (see the module docs).
    fn order(&mut self, at: Instant) -> u128 {
        self.seq += 1;
        ((self.packed(at) as u128) << 64) | self.seq as u128
    }

    /// [`order`](Self::order) of `now + delay`: `now` packed once for every push at that
    /// `now`, and `delay` added to it. The same value exactly: the packed deadline is `MID`
    /// plus the nanoseconds from the origin, and `now + delay` lies `delay` after `now`, so
    /// both saturate at the same sum; only a `now` itself saturated (292 years from the
    /// origin) is measured the long way.
    fn order_after(&mut self, now: Instant, delay: Duration) -> u128 {
        let base = match self.base {
            Some((t, p)) if t == now => p,
            _ => {
                let p = self.packed(now);
                self.base = Some((now, p));
                p
            }
        };
        if base == 0 || base == u64::MAX {
            return self.order(now + delay);
        }
        self.seq += 1;
        let deadline = base.saturating_add(nanos(delay));
        ((deadline as u128) << 64) | self.seq as u128
    }

    /// `at` as nanoseconds from the origin plus `MID`: ±2^63 ns (292 years) around the
    /// origin; anything farther saturates (and would pop at the saturated deadline), which no
    /// SIP or RTP timer comes near.
    fn packed(&mut self, at: Instant) -> u64 {
        let origin = *self.origin.get_or_insert(at);
        match at.checked_duration_since(origin) {
            Some(after) => MID.saturating_add(nanos(after)),
            None => MID.saturating_sub(nanos(origin - at)),
        }
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

/// A duration in nanoseconds, saturating at `u64::MAX` (584 years).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
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
                // Deadlines after `now` are pushed as `now` and a delay half the time.
                let delay = match rng.below(6) {
                    0 => Some(Duration::from_millis(500)),
                    1 | 2 => Some(Duration::from_secs(32)),
                    3 => Some(Duration::from_millis(2500 + rng.below(5000))),
                    4 => Some(Duration::ZERO),
                    _ => None,
                };
                let at = match delay {
                    Some(d) => now + d,
                    None => t0 + Duration::from_millis(rng.below(200_000)),
                };
                match (delay, rng.below(8)) {
                    (Some(d), 0) => h.push_random_after(now, d, n),
                    (Some(d), 1..4) => h.push_after(now, d, n),
                    (_, 0 | 4) => h.push_random_after(t0, at - t0, n),
                    _ => h.push(at, n),
                }
                model.push((at, n));
            }
        }
    }

    /// `now` and a delay pack exactly as their sum does, on either side of the origin, down
    /// to the nanosecond, and with the same saturation far away.
    #[test]
    #[allow(clippy::disallowed_methods)] // any instant will do as the test's origin
    fn a_delay_after_now_packs_as_the_deadline() {
        let t0 = Instant::now() + Duration::from_secs(1_000_000);
        let mut rng = crate::rng::Rng::new(11);
        let mut h: TimerHeap<()> = TimerHeap::default();
        h.push(t0, ());
        let mut now = t0 - Duration::from_secs(500);
        for _ in 0..5000 {
            if rng.below(3) == 0 {
                now = t0 - Duration::from_secs(500) + Duration::from_nanos(rng.below(1 << 40));
            }
            let delay = match rng.below(5) {
                0 => Duration::ZERO,
                1 => Duration::from_nanos(rng.below(1 << 42)),
                2 => Duration::from_secs(32),
                3 => Duration::from_secs(300 * 365 * 86_400),
                _ => Duration::from_nanos(rng.next_u64()),
            };
            let direct = h.order(now + delay) >> 64;
            assert_eq!(h.order_after(now, delay) >> 64, direct, "{delay:?}");
        }
    }
}
