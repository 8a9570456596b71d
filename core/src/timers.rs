//! One deadline heap for every SIP timer in the server.
//!
//! Entries are `(deadline, insertion seq, key)`: equal deadlines pop in insertion order, so runs
//! are deterministic. Cancelling is lazy: the owner of a timer remembers the deadline it armed,
//! and a popped entry whose owner no longer expects it is skipped (cheaper than a removable heap
//! and exactly as correct).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

#[derive(Debug)]
pub(crate) struct TimerHeap<K: Ord> {
    heap: BinaryHeap<Reverse<(Instant, u64, K)>>,
    seq: u64,
}

impl<K: Ord> Default for TimerHeap<K> {
    fn default() -> Self {
        TimerHeap {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }
}

impl<K: Ord> TimerHeap<K> {
    pub fn push(&mut self, at: Instant, key: K) {
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, key)));
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Pop the earliest entry if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, K)> {
        match self.heap.peek() {
            Some(Reverse((at, _, _))) if *at <= now => {
                let Reverse((at, _, key)) = self.heap.pop()?;
                Some((at, key))
            }
            _ => None,
        }
    }
}
