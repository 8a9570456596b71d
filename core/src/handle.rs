//! The handle the server gives each call: the key of every per-call table, the pacing queue's
//! entries and the control API.

/// A call's handle: stable for the life of the server, never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallHandle(pub u64);

impl std::fmt::Display for CallHandle {
    /// `slot.generation`: short in logs, and a reused slot still reads differently.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0 & 0xFFFF_FFFF, self.0 >> 32)
    }
}

impl std::str::FromStr for CallHandle {
    type Err = ();

    /// The `slot.generation` form [`Display`](std::fmt::Display) writes.
    fn from_str(s: &str) -> Result<CallHandle, ()> {
        let (slot, generation) = s.split_once('.').ok_or(())?;
        let slot: u32 = slot.parse().map_err(|_| ())?;
        let generation: u32 = generation.parse().map_err(|_| ())?;
        Ok(CallHandle(u64::from(generation) << 32 | u64::from(slot)))
    }
}
