//! Calls and server transactions live in slabs: O(1) lookup by id on the per-packet path, no
//! hashing, and a deterministic iteration order (slot order). An id carries its slot's
//! generation, so a stale id (a call or transaction that ended, its slot reused) never finds
//! the new occupant.

use super::calls::Call;
use super::CallHandle;

/// Values by id (slot index and generation). Boxed: a free slot costs 16 bytes, so the slots a
/// burst leaves behind stay cheap, and the Vec's doubling growth does not multiply the size of
/// a whole call.
#[derive(Debug)]
pub(crate) struct IdSlab<T> {
    slots: Vec<IdSlot<T>>,
    free: Vec<u32>,
}

#[derive(Debug)]
struct IdSlot<T> {
    generation: u32,
    value: Option<Box<T>>,
}

impl<T> Default for IdSlab<T> {
    fn default() -> Self {
        IdSlab {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }
}

fn split_id(id: u64) -> (usize, u32) {
    ((id & 0xFFFF_FFFF) as usize, (id >> 32) as u32)
}

impl<T> IdSlab<T> {
    /// An id for a value about to be stored with [`IdSlab::fill`] (never equal to any id given
    /// out before).
    pub fn vacant(&mut self) -> u64 {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(IdSlot {
                    generation: 0,
                    value: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.generation = slot.generation.wrapping_add(1);
        ((slot.generation as u64) << 32) | index as u64
    }

    /// Store `value` under `id` from [`IdSlab::vacant`]; true when the slot was empty.
    pub fn fill(&mut self, id: u64, value: Box<T>) -> bool {
        let (i, g) = split_id(id);
        let slot = &mut self.slots[i];
        debug_assert_eq!(slot.generation, g);
        slot.value.replace(value).is_none()
    }

    /// Store `value` under a new id.
    pub fn insert(&mut self, value: Box<T>) -> u64 {
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
        slot.value.as_deref()
    }

    pub fn get_mut(&mut self, id: &u64) -> Option<&mut T> {
        let (i, g) = split_id(*id);
        let slot = self.slots.get_mut(i)?;
        if slot.generation != g {
            return None;
        }
        slot.value.as_deref_mut()
    }

    /// The value, still boxed: moving it out would copy the whole struct just to drop it.
    pub fn remove(&mut self, id: &u64) -> Option<Box<T>> {
        let (i, g) = split_id(*id);
        let slot = self.slots.get_mut(i)?;
        if slot.generation != g {
            return None;
        }
        let value = slot.value.take()?;
        self.free.push(i as u32);
        Some(value)
    }

    /// The ids of the stored values, in slot order.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.value.is_some())
            .map(|(i, s)| ((s.generation as u64) << 32) | i as u64)
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.slots.iter_mut().filter_map(|s| s.value.as_deref_mut())
    }
}

/// Calls by [`CallHandle`]: an [`IdSlab`] that also counts its calls.
#[derive(Debug, Default)]
pub(crate) struct CallSlab {
    slab: IdSlab<Call>,
    len: usize,
}

impl CallSlab {
    /// A handle for a call about to be inserted (never equal to any handle given out before).
    pub fn vacant(&mut self) -> CallHandle {
        CallHandle(self.slab.vacant())
    }

    pub fn insert(&mut self, h: CallHandle, call: Call) {
        if self.slab.fill(h.0, Box::new(call)) {
            self.len += 1;
        }
    }

    pub fn get(&self, h: &CallHandle) -> Option<&Call> {
        self.slab.get(&h.0)
    }

    pub fn get_mut(&mut self, h: &CallHandle) -> Option<&mut Call> {
        self.slab.get_mut(&h.0)
    }

    /// The call, still boxed: moving it out would copy the whole struct just to drop it.
    pub fn remove(&mut self, h: &CallHandle) -> Option<Box<Call>> {
        let call = self.slab.remove(&h.0)?;
        self.len -= 1;
        Some(call)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn keys(&self) -> impl Iterator<Item = CallHandle> + '_ {
        self.slab.ids().map(CallHandle)
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Call> {
        self.slab.values_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::IdSlab;

    #[test]
    fn ids_are_never_reused() {
        let mut s = IdSlab::default();
        let a = s.insert(Box::new(1));
        assert_eq!(s.get(&a), Some(&1));
        assert_eq!(s.remove(&a).as_deref(), Some(&1));
        assert_eq!(s.get(&a), None);
        let b = s.insert(Box::new(2));
        assert_ne!(a, b);
        assert_eq!(s.get(&a), None);
        assert_eq!(s.remove(&a), None);
        *s.get_mut(&b).unwrap() += 1;
        assert_eq!(s.get(&b), Some(&3));
        assert_eq!(s.get(&(b + 7)), None);
    }
}
