//! RTP ports: which even port of the configured range each call holds, and the bind and unbind
//! requests the runtime carries out ([`Command::BindRtp`], [`Command::UnbindRtp`]). A port the
//! runtime could not bind is not offered again until the search has gone round the range.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use super::outbox::Outbox;
use super::{CallHandle, Command};
use crate::rng::Rng;

#[derive(Debug)]
pub(crate) struct Ports {
    /// Inclusive range from the settings.
    range: (u16, u16),
    /// RTP port (even) → the call holding it, from the bind request on.
    held: BTreeMap<u16, CallHandle>,
    /// Ports the runtime failed to bind (taken by another program) in this lap of the range.
    refused: BTreeSet<u16>,
    /// Where the search for a free port starts: round the range, from a random place, so a
    /// restarted server does not reuse the ports of the calls it just dropped.
    cursor: u16,
    /// Every call's port when media shares one (`ServerConfig::rtp_shared_port`): bound by the
    /// runtime at start, so never bound, refused or released per call.
    shared: Option<u16>,
}

impl Ports {
    pub fn new(range: (u16, u16), shared: Option<u16>, rng: &mut Rng) -> Ports {
        let (lo, hi) = range;
        let span = (hi.saturating_sub(lo) / 2).max(1) as u64;
        let cursor = lo.saturating_add(2 * rng.below(span) as u16) & !1;
        Ports {
            range,
            held: BTreeMap::new(),
            refused: BTreeSet::new(),
            cursor,
            shared,
        }
    }

    /// A new range applies to ports allocated from now on.
    pub fn reconfigure(&mut self, range: (u16, u16)) {
        let (lo, hi) = range;
        if !(lo..=hi).contains(&self.cursor) {
            self.cursor = lo;
        }
        self.range = range;
    }

    /// The call holding `port` (or the RTP port below it, for RTCP). None for the shared port,
    /// which every call holds: there the source address tells (`Media::by_remote`).
    pub fn owner(&self, port: u16) -> Option<CallHandle> {
        self.held.get(&(port & !1)).copied()
    }

    /// The port every call shares, if media shares one.
    pub fn shared(&self) -> Option<u16> {
        self.shared
    }

    /// Is `port` the shared RTP port or the RTCP port above it?
    pub fn is_shared(&self, port: u16) -> bool {
        self.shared == Some(port & !1)
    }

    /// Take the next free even port for `call` and ask the runtime to bind it (and the odd one
    /// above for RTCP unless `rtcp_mux`); `None` when every port is held or refused. With a
    /// shared port, that port, already bound.
    pub fn allocate(&mut self, call: CallHandle, rtcp_mux: bool, out: &mut Outbox) -> Option<u16> {
        if let Some(port) = self.shared {
            return Some(port);
        }
        let (lo, hi) = self.range;
        let lo = (lo + 1) & !1;
        if hi <= lo {
            return None;
        }
        let slots = ((hi - lo) / 2 + 1) as u32;
        for _ in 0..slots {
            let p = self.cursor.max(lo);
            let next = p.saturating_add(2);
            self.cursor = if next >= hi {
                // A lap of the range: the ports refused during it get another try, so a bind
                // that failed for a moment does not take its port away for good.
                self.refused.clear();
                lo
            } else {
                next
            };
            if self.held.contains_key(&p) || self.refused.contains(&p) {
                continue;
            }
            self.held.insert(p, call);
            out.command(Command::BindRtp { port: p, rtcp_mux });
            return Some(p);
        }
        None
    }

    /// The runtime could not bind `port`: not offered again until the search has gone round
    /// the range.
    pub fn refuse(&mut self, port: u16) {
        self.held.remove(&port);
        self.refused.insert(port);
    }

    /// `call` is over: free its port and ask the runtime to close it, unless another call holds
    /// it by now.
    pub fn release(&mut self, port: u16, call: CallHandle, rtcp_mux: bool, out: &mut Outbox) {
        match self.held.entry(port) {
            Entry::Occupied(e) if port != 0 && *e.get() == call => {
                e.remove();
                out.command(Command::UnbindRtp { port, rtcp_mux });
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refused port is skipped for the rest of the lap, then offered again: a bind that
    /// failed for a moment does not shrink the pool for good.
    #[test]
    fn a_refused_port_comes_back_after_a_lap() {
        let mut rng = Rng::new(1);
        let mut ports = Ports::new((10000, 10005), None, &mut rng); // 10000, 10002, 10004
        let mut out = Outbox::default();
        let first = ports.allocate(CallHandle(1), false, &mut out).unwrap();
        ports.refuse(first);
        let mut offered = Vec::new();
        for n in 2..5 {
            let p = ports.allocate(CallHandle(n), false, &mut out).unwrap();
            offered.push(p);
            ports.release(p, CallHandle(n), false, &mut out);
        }
        assert!(
            offered.contains(&first),
            "offered again after the lap: {offered:?}"
        );
        assert_ne!(offered[0], first, "not before");
    }
}
