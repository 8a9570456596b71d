//! Calls and server transactions live in slabs: O(1) lookup by id on the per-packet path, no
//! hashing, and a deterministic iteration order (slot order). An id carries its slot's
//! generation, so a stale id (a call or transaction that ended, its slot reused) never finds
//! the new occupant.

use crate::handle::CallHandle;

/// Values by id (slot index and generation), held in their slots: storing or removing one
/// allocates nothing. (A call is big and long-lived, so [`CallSlab`] holds boxes: a free slot
/// costs 16 bytes, and the Vec's doubling growth does not multiply the size of a whole call.)
///
/// A slab made [`IdSlab::releasing`] (transactions) lets its room go once it holds nothing,
/// if that room is for more than [`KEEP_SLOTS`] values (a burst of transactions, all ended
/// 32 s later, does not keep it for good), and reserves as much at once when it fills again
/// (no doubling and copying on the way up). Its slots then start above every generation given
/// out before, so an old id still matches nothing. (Calls keep their slots: a call's handle
/// is public, and numbers its slot as before.)
#[derive(Debug)]
pub(crate) struct IdSlab<T> {
    slots: Vec<IdSlot<T>>,
    free: Vec<u32>,
    len: usize,
    /// The highest generation any slot has had, and the generation new slots start from.
    top: u32,
    base: u32,
    /// Slots in use when the slab last let its room go.
    peak: usize,
    release: bool,
}

/// Room a slab keeps when it empties.
const KEEP_SLOTS: usize = 64;

#[derive(Debug)]
struct IdSlot<T> {
    generation: u32,
    value: Option<T>,
}

impl<T> Default for IdSlab<T> {
    fn default() -> Self {
        IdSlab {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
            top: 0,
            base: 0,
            peak: 0,
            release: false,
        }
    }
}

fn split_id(id: u64) -> (usize, u32) {
    ((id & 0xFFFF_FFFF) as usize, (id >> 32) as u32)
}

impl<T> IdSlab<T> {
    /// A slab that lets its room go when it empties (see the type's docs).
    pub fn releasing() -> Self {
        IdSlab {
            release: true,
            ..IdSlab::default()
        }
    }

    /// An id for a value about to be stored with [`IdSlab::fill`] (never equal to any id given
    /// out before).
    pub fn vacant(&mut self) -> u64 {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                if self.slots.capacity() == 0 {
                    self.slots.reserve(self.peak);
                }
                self.slots.push(IdSlot {
                    generation: self.base,
                    value: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.generation = slot.generation.wrapping_add(1);
        self.top = self.top.max(slot.generation);
        ((slot.generation as u64) << 32) | index as u64
    }

    /// Store `value` under `id` from [`IdSlab::vacant`]. Written straight into the slot (a
    /// transaction is a few hundred bytes: no copy of it goes in or out on the way).
    pub fn fill(&mut self, id: u64, value: T) {
        let (i, g) = split_id(id);
        let slot = &mut self.slots[i];
        debug_assert_eq!(slot.generation, g);
        // By case: into an empty slot there is nothing to drop first, so the value is copied
        // in once (an assignment of `Some(value)` builds it aside, drops, then copies again).
        match &mut slot.value {
            Some(old) => *old = value,
            empty => {
                self.len += 1;
                *empty = Some(value);
            }
        }
    }

    /// Store `value` under a new id.
    pub fn insert(&mut self, value: T) -> u64 {
        let id = self.vacant();
        self.fill(id, value);
        id
    }

    pub fn get(&self, id: &u64) -> Option<&T> {
        let (i, g) = split_id(*id);
        let slot = self.slots.get(i)?;
        if slot.generation != g {
            return None;
        }
        slot.value.as_ref()
    }

    pub fn get_mut(&mut self, id: &u64) -> Option<&mut T> {
        let (i, g) = split_id(*id);
        let slot = self.slots.get_mut(i)?;
        if slot.generation != g {
            return None;
        }
        slot.value.as_mut()
    }

    pub fn remove(&mut self, id: &u64) -> Option<T> {
        let value = self.get_mut_slot(id).and_then(Option::take)?;
        self.vacated(id);
        Some(value)
    }

    /// Drop the value under `id` where it lies (no copy out). True when there was one.
    pub fn discard(&mut self, id: &u64) -> bool {
        let Some(slot) = self.get_mut_slot(id) else {
            return false;
        };
        if slot.is_none() {
            return false;
        }
        *slot = None;
        self.vacated(id);
        true
    }

    fn get_mut_slot(&mut self, id: &u64) -> Option<&mut Option<T>> {
        let (i, g) = split_id(*id);
        let slot = self.slots.get_mut(i)?;
        (slot.generation == g).then_some(&mut slot.value)
    }

    /// The slot of `id` was just emptied.
    fn vacated(&mut self, id: &u64) {
        self.free.push(split_id(*id).0 as u32);
        self.len -= 1;
        if self.release && self.len == 0 && self.slots.len() > KEEP_SLOTS {
            self.peak = self.slots.len();
            self.base = self.top;
            self.slots = Vec::new();
            self.free = Vec::new();
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The ids of the stored values, in slot order.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.value.is_some())
            .map(|(i, s)| ((s.generation as u64) << 32) | i as u64)
    }
}

/// Per-call state by [`CallHandle`]: an [`IdSlab`] of boxed values.
#[derive(Debug)]
pub(crate) struct CallSlab<T> {
    slab: IdSlab<Box<T>>,
}

impl<T> Default for CallSlab<T> {
    fn default() -> Self {
        CallSlab {
            slab: IdSlab::default(),
        }
    }
}

impl<T> CallSlab<T> {
    /// A handle for a call about to be inserted (never equal to any handle given out before).
    pub fn vacant(&mut self) -> CallHandle {
        CallHandle(self.slab.vacant())
    }

    pub fn insert(&mut self, h: CallHandle, value: Box<T>) {
        self.slab.fill(h.0, value);
    }

    pub fn get(&self, h: &CallHandle) -> Option<&T> {
        self.slab.get(&h.0).map(|c| &**c)
    }

    pub fn get_mut(&mut self, h: &CallHandle) -> Option<&mut T> {
        self.slab.get_mut(&h.0).map(|c| &mut **c)
    }

    /// The value, still boxed: moving it out would copy the whole struct just to drop it.
    pub fn remove(&mut self, h: &CallHandle) -> Option<Box<T>> {
        self.slab.remove(&h.0)
    }

    pub fn len(&self) -> usize {
        self.slab.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slab.len() == 0
    }

    pub fn keys(&self) -> impl Iterator<Item = CallHandle> + '_ {
        self.slab.ids().map(CallHandle)
    }
}

/// Per-call values kept beside a [`CallSlab`], by the same handles: a vector indexed by the
/// handle's slot, each entry checked against the whole handle (its generation included), so a
/// stale handle finds nothing.
#[derive(Debug)]
pub(crate) struct CallMap<T> {
    slots: Vec<Option<(CallHandle, T)>>,
}

impl<T> Default for CallMap<T> {
    fn default() -> Self {
        CallMap { slots: Vec::new() }
    }
}

impl<T> CallMap<T> {
    fn slot(h: CallHandle) -> usize {
        split_id(h.0).0
    }

    /// Store `value` for `h`, replacing what a call of the same slot left.
    pub fn insert(&mut self, h: CallHandle, value: T) {
        let i = Self::slot(h);
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, || None);
        }
        self.slots[i] = Some((h, value));
    }

    pub fn get(&self, h: CallHandle) -> Option<&T> {
        match self.slots.get(Self::slot(h))? {
            Some((k, v)) if *k == h => Some(v),
            _ => None,
        }
    }

    pub fn get_mut(&mut self, h: CallHandle) -> Option<&mut T> {
        match self.slots.get_mut(Self::slot(h))? {
            Some((k, v)) if *k == h => Some(v),
            _ => None,
        }
    }

    pub fn remove(&mut self, h: CallHandle) -> Option<T> {
        let slot = self.slots.get_mut(Self::slot(h))?;
        match slot {
            Some((k, _)) if *k == h => slot.take().map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = (CallHandle, &mut T)> {
        self.slots
            .iter_mut()
            .filter_map(|s| s.as_mut().map(|(k, v)| (*k, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::{CallHandle, CallMap, CallSlab, IdSlab, KEEP_SLOTS};

    /// A value kept beside a slab is found by its call's handle only: not by the handle of a
    /// call that had the same slot before, nor after it is removed.
    #[test]
    fn call_map_entries_follow_the_whole_handle() {
        let mut calls: CallSlab<u32> = CallSlab::default();
        let mut map = CallMap::default();
        let a = calls.vacant();
        calls.insert(a, Box::new(1));
        map.insert(a, "a");
        assert_eq!(map.get(a), Some(&"a"));
        calls.remove(&a);
        assert_eq!(map.remove(a), Some("a"));
        let b = calls.vacant();
        assert_eq!(b.0 & 0xFFFF_FFFF, a.0 & 0xFFFF_FFFF, "the slot is reused");
        map.insert(b, "b");
        assert_eq!(map.get(a), None);
        assert_eq!(map.remove(a), None);
        *map.get_mut(b).unwrap() = "b2";
        assert_eq!(
            map.values_mut().map(|(h, v)| (h, *v)).collect::<Vec<_>>(),
            [(b, "b2")]
        );
        assert_eq!(map.get(CallHandle(b.0 + 5)), None);
    }

    #[test]
    fn ids_are_never_reused() {
        let mut s = IdSlab::default();
        let a = s.insert(1);
        assert_eq!(s.get(&a), Some(&1));
        assert_eq!(s.remove(&a), Some(1));
        assert_eq!(s.get(&a), None);
        let b = s.insert(2);
        assert_ne!(a, b);
        assert_eq!(s.get(&a), None);
        assert_eq!(s.remove(&a), None);
        *s.get_mut(&b).unwrap() += 1;
        assert_eq!(s.get(&b), Some(&3));
        assert_eq!(s.get(&(b + 7)), None);
    }

    /// A slab that lets its room go when it empties still never gives out an old id again,
    /// and no old id finds a new value.
    #[test]
    fn ids_stay_unique_when_the_room_goes() {
        let mut s = IdSlab::releasing();
        let mut seen = std::collections::BTreeSet::new();
        let mut old = Vec::new();
        for round in 0..5u64 {
            let ids: Vec<u64> = (0..(KEEP_SLOTS as u64 + 10) * (round + 1))
                .map(|n| s.insert(n))
                .collect();
            for &id in &ids {
                assert!(seen.insert(id), "id {id:#x} given out twice");
            }
            for &id in &old {
                assert_eq!(s.get(&id), None);
            }
            for (n, id) in ids.iter().enumerate() {
                assert_eq!(s.remove(id), Some(n as u64));
            }
            assert_eq!(s.len(), 0);
            assert!(s.slots.is_empty(), "room let go in round {round}");
            old.extend(ids);
        }
    }
}
