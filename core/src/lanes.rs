//! A min-queue for entries that mostly arrive in order: a few sorted FIFO lanes before a heap.
//!
//! Both of the server's deadline queues (SIP timers, RTP pacing) are pushed mostly in deadline
//! order: a timer is armed at `now` plus a fixed interval, and a call re-armed one ptime after
//! the packet just sent nearly always has the latest deadline so far. Such an entry joins the
//! lane whose last entry is the latest one before it (keeping lanes tight), appended in O(1),
//! and leaves from the front in O(1); only an entry that fits no lane goes to the binary heap.
//! The least entry is the least of the lane fronts and the heap top, so entries come out in
//! exactly the order one heap would give.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// An entry's place in the queue: unique per entry, and never 0 (0 marks an empty lane).
pub(crate) trait Ordered: Ord {
    fn order(&self) -> u128;
}

impl Ordered for u128 {
    fn order(&self) -> u128 {
        *self
    }
}

#[derive(Debug)]
pub(crate) struct Lanes<T, const N: usize> {
    heap: BinaryHeap<Reverse<T>>,
    /// Each lane is sorted, front least.
    lanes: [VecDeque<T>; N],
    /// The order of each lane's front entry (`u128::MAX`: empty) and of its last entry (0:
    /// empty), beside the lanes so choosing one reads one small array.
    fronts: [u128; N],
    backs: [u128; N],
}

/// Where the least entry is: a lane (`Some(i)`) or the heap (`None`), and its order.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Least {
    from: Option<usize>,
    pub order: u128,
}

impl<T: Ordered, const N: usize> Default for Lanes<T, N> {
    fn default() -> Self {
        Lanes {
            heap: BinaryHeap::new(),
            lanes: std::array::from_fn(|_| VecDeque::new()),
            fronts: [u128::MAX; N],
            backs: [0; N],
        }
    }
}

impl<T: Ordered, const N: usize> Lanes<T, N> {
    /// Into the lane whose last entry is the latest one before `entry`, else an empty lane
    /// (back 0, the least of all), else the heap.
    pub fn push(&mut self, entry: T) {
        let order = entry.order();
        let mut best: Option<usize> = None;
        for (i, &back) in self.backs.iter().enumerate() {
            if back < order && best.is_none_or(|b| back > self.backs[b]) {
                best = Some(i);
            }
        }
        match best {
            Some(i) => {
                if self.backs[i] == 0 {
                    self.fronts[i] = order;
                }
                self.backs[i] = order;
                self.lanes[i].push_back(entry);
            }
            None => self.heap.push(Reverse(entry)),
        }
    }

    /// Straight into the heap: for an entry that would sit in the middle of a lane's in-order
    /// run and push the next of those into the heap (the order it comes out in is the same).
    pub fn push_heap(&mut self, entry: T) {
        self.heap.push(Reverse(entry));
    }

    pub fn least(&self) -> Option<Least> {
        let mut lane = 0;
        for i in 1..N {
            if self.fronts[i] < self.fronts[lane] {
                lane = i;
            }
        }
        let front = self.fronts[lane];
        match self.heap.peek() {
            Some(Reverse(top)) if top.order() < front => Some(Least {
                from: None,
                order: top.order(),
            }),
            _ if front != u128::MAX => Some(Least {
                from: Some(lane),
                order: front,
            }),
            _ => None,
        }
    }

    /// Take the entry `least` (just read from [`least`](Self::least)) found.
    pub fn take(&mut self, least: Least) -> Option<T> {
        match least.from {
            Some(i) => {
                let entry = self.lanes[i].pop_front()?;
                match self.lanes[i].front() {
                    Some(next) => self.fronts[i] = next.order(),
                    None => {
                        self.fronts[i] = u128::MAX;
                        self.backs[i] = 0;
                    }
                }
                Some(entry)
            }
            None => self.heap.pop().map(|Reverse(e)| e),
        }
    }

    pub fn pop(&mut self) -> Option<T> {
        let least = self.least()?;
        self.take(least)
    }
}
