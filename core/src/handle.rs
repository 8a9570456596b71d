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
