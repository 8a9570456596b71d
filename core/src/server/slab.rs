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

    pub fn remove(&mut self, h: &CallHandle) -> Option<Call> {
        let (i, g) = split(*h);
        let slot = self.slots.get_mut(i)?;
        if slot.generation != g {
            return None;
        }
        let call = *slot.call.take()?;
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
