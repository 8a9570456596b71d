//! Calls live in a slab: O(1) lookup by handle on the per-packet path, no hashing, and a
//! deterministic iteration order (slot order). A handle carries its slot's generation, so a
//! stale handle (a call that ended, its slot reused) never finds the new call.

use super::calls::Call;
use super::CallHandle;

#[derive(Debug, Default)]
pub(crate) struct CallSlab {
    slots: Vec<Slot>,
    free: Vec<u32>,
    len: usize,
}

#[derive(Debug, Default)]
struct Slot {
    generation: u32,
    /// Boxed: a slot costs a pointer while free, and the Vec's doubling growth does not
    /// multiply the size of a whole call.
    call: Option<Box<Call>>,
}

fn split(h: CallHandle) -> (usize, u32) {
    ((h.0 & 0xFFFF_FFFF) as usize, (h.0 >> 32) as u32)
}

impl CallSlab {
    /// A handle for a call about to be inserted (never equal to any handle given out before).
    pub fn vacant(&mut self) -> CallHandle {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot::default());
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.generation = slot.generation.wrapping_add(1);
        CallHandle(((slot.generation as u64) << 32) | index as u64)
    }

    pub fn insert(&mut self, h: CallHandle, call: Call) {
        let (i, g) = split(h);
        let slot = &mut self.slots[i];
        debug_assert_eq!(slot.generation, g);
        if slot.call.replace(Box::new(call)).is_none() {
            self.len += 1;
        }
    }

    pub fn get(&self, h: &CallHandle) -> Option<&Call> {
        let (i, g) = split(*h);
        let slot = self.slots.get(i)?;
        if slot.generation != g {
            return None;
        }
        slot.call.as_deref()
    }

    pub fn get_mut(&mut self, h: &CallHandle) -> Option<&mut Call> {
        let (i, g) = split(*h);
        let slot = self.slots.get_mut(i)?;
        if slot.generation != g {
            return None;
        }
        slot.call.as_deref_mut()
    }

    /// The call, still boxed: moving it out would copy the whole struct just to drop it.
    pub fn remove(&mut self, h: &CallHandle) -> Option<Box<Call>> {
        let (i, g) = split(*h);
        let slot = self.slots.get_mut(i)?;
        if slot.generation != g {
            return None;
        }
        let call = slot.call.take()?;
        self.len -= 1;
        self.free.push(i as u32);
        Some(call)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn keys(&self) -> impl Iterator<Item = CallHandle> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.call.is_some())
            .map(|(i, s)| CallHandle(((s.generation as u64) << 32) | i as u64))
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Call> {
        self.slots.iter_mut().filter_map(|s| s.call.as_deref_mut())
    }
}

/// Server transactions by id, the same way: O(1) on every response, retransmission and timer
/// instead of a B-tree search, and an id (slot index and generation) that never finds a later
/// transaction in the same slot. Boxed like calls: a free slot costs 16 bytes, so the slots a
/// burst of transactions leaves behind stay cheap.
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
    /// Store `value` under a new id (never equal to any id given out before).
    pub fn insert(&mut self, value: Box<T>) -> u64 {
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
        slot.value = Some(value);
        ((slot.generation as u64) << 32) | index as u64
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
