//! What one source address may hold of the server, and the caps on the whole: the settings
//! ([`Limits`]) and the per-source table of new calls (a rate and a count).
//!
//! Every cap is counted when it refuses (see `Stats`); a refused request gets one 503 with
//! `Retry-After` and leaves nothing behind.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The caps, with defaults sized for a PBX that sends every call from one address.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Calls one source address may hold at once (INVITE to BYE).
    pub calls_per_source: usize,
    /// New calls one source may place per second, sustained (a token bucket, as Kamailio's
    /// pike): `invite_burst` at once, then one every `1 / invite_rate` s.
    pub invite_rate: f64,
    pub invite_burst: u32,
    /// Server transactions in flight (each lives 64·T1 after its final response on UDP, to
    /// absorb retransmissions), over all and per source address.
    pub transactions: usize,
    pub transactions_per_source: usize,
    /// Bytes those transactions keep (their keys and last response), over all and per source.
    pub transaction_bytes: usize,
    pub transaction_bytes_per_source: usize,
    /// Admission from measured headroom: while more than a tenth of the last second's RTP
    /// packets left later than this after their place on the grid (the runtime is not keeping
    /// up), new calls get 503; the calls already up keep what CPU there is. `None`: off.
    pub overload_lateness: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            calls_per_source: 500,
            invite_rate: 20.0,
            invite_burst: 100,
            transactions: 16_384,
            transactions_per_source: 4_096,
            transaction_bytes: 32 << 20,
            transaction_bytes_per_source: 8 << 20,
            overload_lateness: Some(Duration::from_millis(20)),
        }
    }
}

impl Limits {
    /// No caps (benchmarks, and loads that measure the server rather than its defences); the
    /// counting still runs.
    pub fn unlimited() -> Limits {
        Limits {
            calls_per_source: usize::MAX,
            invite_rate: f64::INFINITY,
            invite_burst: u32::MAX,
            transactions: usize::MAX,
            transactions_per_source: usize::MAX,
            transaction_bytes: usize::MAX,
            transaction_bytes_per_source: usize::MAX,
            overload_lateness: None,
        }
    }
}

/// Why a new call was refused by its source's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SourceRefusal {
    /// Over the INVITE rate: retry after this many seconds (at least 1).
    Rate(u64),
    /// The source holds `calls_per_source` calls.
    Calls,
}

/// A source address as a map key: IPv4 as its IPv6-mapped form (the same host either way), so
/// a lookup compares one integer.
fn key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped().to_bits(),
        IpAddr::V6(a) => a.to_bits(),
    }
}

/// Per source address: the calls it holds and its INVITE rate, as a GCRA (the token bucket
/// written as one instant: the theoretical arrival time of the next call, `tat`). The bucket is
/// full when `tat <= now`.
#[derive(Clone, Copy, Debug)]
struct Source {
    calls: u32,
    tat: Instant,
}

/// The per-source table of new calls. An entry is needed while its source holds a call or its
/// bucket is refilling; entries with neither are swept when the table has doubled since the
/// last sweep, so an attacker cycling source addresses costs amortised O(1) and bounded memory
/// (and a source that calls again finds its entry).
#[derive(Debug, Default)]
pub(crate) struct CallSources {
    by_ip: BTreeMap<u128, Source>,
    sweep_at: usize,
}

/// The table is swept no earlier than this many entries.
const SWEEP_FLOOR: usize = 1024;

impl CallSources {
    /// May `ip` place a new call at `now`? If so, takes a token and counts the call, which
    /// [`CallSources::ended`] gives back (also when the INVITE is refused after all).
    pub fn admit(
        &mut self,
        limits: &Limits,
        ip: IpAddr,
        now: Instant,
    ) -> Result<(), SourceRefusal> {
        let interval = Duration::from_secs_f64(1.0 / limits.invite_rate.max(1e-3));
        let tolerance = interval * limits.invite_burst.saturating_sub(1);
        if self.by_ip.len() >= self.sweep_at.max(SWEEP_FLOOR) {
            self.by_ip.retain(|_, s| s.calls > 0 || s.tat > now);
            self.sweep_at = 2 * self.by_ip.len();
        }
        let s = self
            .by_ip
            .entry(key(ip))
            .or_insert(Source { calls: 0, tat: now });
        if s.calls as usize >= limits.calls_per_source {
            return Err(SourceRefusal::Calls);
        }
        let tat = s.tat.max(now);
        // Conforming while the next arrival is due no further ahead than the burst allows.
        if now.checked_add(tolerance).is_some_and(|limit| tat > limit) {
            let wait = tat - tolerance - now;
            return Err(SourceRefusal::Rate(wait.as_secs() + 1));
        }
        s.tat = tat + interval;
        s.calls += 1;
        Ok(())
    }

    /// A call from `ip` admitted by [`CallSources::admit`] is gone.
    pub fn ended(&mut self, ip: IpAddr) {
        if let Some(s) = self.by_ip.get_mut(&key(ip)) {
            s.calls = s.calls.saturating_sub(1);
        }
    }

    pub fn len(&self) -> usize {
        self.by_ip.len()
    }
}

/// Server transactions held per source address, and their bytes: what the transaction caps
/// count. Each source with a transaction has a slot; a transaction keeps its slot's number, so
/// following its size as its responses change costs no lookup.
#[derive(Debug, Default)]
pub(crate) struct TxnSources {
    by_ip: BTreeMap<u128, u32>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    count: usize,
    bytes: usize,
}

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    count: usize,
    bytes: usize,
}

impl TxnSources {
    /// May `ip` open another transaction?
    pub fn admits(&self, limits: &Limits, ip: IpAddr) -> bool {
        if self.count >= limits.transactions || self.bytes >= limits.transaction_bytes {
            return false;
        }
        // No source holds more than all of them together.
        if self.count < limits.transactions_per_source
            && self.bytes < limits.transaction_bytes_per_source
        {
            return true;
        }
        let s = self.slot_of(ip);
        s.count < limits.transactions_per_source && s.bytes < limits.transaction_bytes_per_source
    }

    fn slot_of(&self, ip: IpAddr) -> Slot {
        self.by_ip
            .get(&key(ip))
            .map_or(Slot::default(), |&i| self.slots[i as usize])
    }

    /// A transaction of `ip`'s keeping `bytes` is open: its slot number.
    pub fn opened(&mut self, ip: IpAddr, bytes: usize) -> u32 {
        let slots = &mut self.slots;
        let free = &mut self.free;
        let i = *self.by_ip.entry(key(ip)).or_insert_with(|| {
            free.pop().unwrap_or_else(|| {
                slots.push(Slot::default());
                slots.len() as u32 - 1
            })
        });
        let s = &mut self.slots[i as usize];
        s.count += 1;
        s.bytes += bytes;
        self.count += 1;
        self.bytes += bytes;
        i
    }

    /// A transaction in `slot` now keeps `new` bytes instead of `old`.
    pub fn resized(&mut self, slot: u32, old: usize, new: usize) {
        let s = &mut self.slots[slot as usize];
        s.bytes = s.bytes + new - old;
        self.bytes = self.bytes + new - old;
    }

    /// A transaction of `ip`'s in `slot`, keeping `bytes`, is over.
    pub fn closed(&mut self, ip: IpAddr, slot: u32, bytes: usize) {
        let s = &mut self.slots[slot as usize];
        s.count -= 1;
        s.bytes -= bytes;
        self.count -= 1;
        self.bytes -= bytes;
        if s.count == 0 {
            self.by_ip.remove(&key(ip));
            self.free.push(slot);
        }
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn sources(&self) -> usize {
        self.by_ip.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([192, 168, 0, n])
    }

    #[allow(clippy::disallowed_methods)] // any instant will do as the test's origin
    fn origin() -> Instant {
        Instant::now()
    }

    #[test]
    fn the_bucket_takes_a_burst_then_the_rate() {
        let limits = Limits {
            invite_rate: 10.0,
            invite_burst: 5,
            ..Limits::default()
        };
        let mut s = CallSources::default();
        let t0 = origin();
        for _ in 0..5 {
            assert_eq!(s.admit(&limits, ip(1), t0), Ok(()));
        }
        assert_eq!(s.admit(&limits, ip(1), t0), Err(SourceRefusal::Rate(1)));
        // Another source has its own bucket.
        assert_eq!(s.admit(&limits, ip(2), t0), Ok(()));
        // One token back every 100 ms.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(s.admit(&limits, ip(1), t1), Ok(()));
        assert!(s.admit(&limits, ip(1), t1).is_err());
        // Each admitted call is counted until it ends.
        assert_eq!(s.by_ip[&key(ip(1))].calls, 6);
        for _ in 0..6 {
            s.ended(ip(1));
        }
        assert_eq!(s.by_ip[&key(ip(1))].calls, 0);
    }

    #[test]
    fn calls_per_source_are_capped_and_given_back() {
        let limits = Limits {
            calls_per_source: 2,
            ..Limits::default()
        };
        let mut s = CallSources::default();
        let t = origin();
        for _ in 0..2 {
            s.admit(&limits, ip(1), t).unwrap();
        }
        assert_eq!(s.admit(&limits, ip(1), t), Err(SourceRefusal::Calls));
        s.ended(ip(1));
        assert_eq!(s.admit(&limits, ip(1), t), Ok(()));
    }

    #[test]
    fn idle_sources_are_swept_when_the_table_doubles() {
        let limits = Limits::default();
        let mut s = CallSources::default();
        let t = origin();
        for i in 0..5_000u32 {
            let addr = IpAddr::from((0x0a00_0000u32 + i).to_be_bytes());
            // Each source one call, over and its bucket refilled 1 s later.
            s.admit(&limits, addr, t + Duration::from_secs(i as u64))
                .unwrap();
            s.ended(addr);
        }
        assert!(s.len() <= 2 * SWEEP_FLOOR, "{} entries", s.len());
    }

    #[test]
    fn transaction_counts_and_bytes_come_back_to_zero() {
        let limits = Limits {
            transactions_per_source: 2,
            ..Limits::default()
        };
        let mut t = TxnSources::default();
        let a = t.opened(ip(1), 100);
        let b = t.opened(ip(1), 50);
        assert_eq!(a, b, "one slot per source");
        assert!(!t.admits(&limits, ip(1)));
        assert!(t.admits(&limits, ip(2)));
        t.resized(b, 50, 500);
        assert_eq!(t.bytes(), 600);
        t.closed(ip(1), a, 100);
        t.closed(ip(1), b, 500);
        assert_eq!((t.bytes(), t.sources()), (0, 0));
        assert!(t.admits(&limits, ip(1)));
        // The slot is used again.
        assert_eq!(t.opened(ip(2), 1), a);
    }
}
