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

/// Per source address: the calls it holds and its INVITE rate, as a GCRA (the token bucket
/// written as one instant: the theoretical arrival time of the next call, `tat`). The bucket is
/// full when `tat <= now`.
#[derive(Clone, Copy, Debug)]
struct Source {
    calls: u32,
    tat: Instant,
}

/// The per-source table of new calls. An entry lives while its source holds a call or its
/// bucket is refilling; entries with neither are swept when the table has doubled since the
/// last sweep, so an attacker cycling source addresses costs amortised O(1) and bounded memory.
#[derive(Debug, Default)]
pub(crate) struct CallSources {
    by_ip: BTreeMap<IpAddr, Source>,
    sweep_at: usize,
}

/// The table is swept no earlier than this many entries.
const SWEEP_FLOOR: usize = 1024;

impl CallSources {
    /// May `ip` place a new call at `now`? Takes a token if so; the call itself is counted by
    /// [`CallSources::started`] once it exists.
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
            .entry(ip)
            .or_insert(Source { calls: 0, tat: now });
        if s.calls as usize >= limits.calls_per_source {
            return Err(SourceRefusal::Calls);
        }
        let tat = s.tat.max(now);
        // Conforming while the next arrival is due no further ahead than the burst allows.
        if tat > now + tolerance {
            let wait = tat - tolerance - now;
            return Err(SourceRefusal::Rate(wait.as_secs() + 1));
        }
        s.tat = tat + interval;
        Ok(())
    }

    /// A call from `ip` exists.
    pub fn started(&mut self, ip: IpAddr, now: Instant) {
        self.by_ip
            .entry(ip)
            .or_insert(Source { calls: 0, tat: now })
            .calls += 1;
    }

    /// A call from `ip` is gone; its source is forgotten once it holds none and its bucket is
    /// full again.
    pub fn ended(&mut self, ip: IpAddr, now: Instant) {
        if let Some(s) = self.by_ip.get_mut(&ip) {
            s.calls = s.calls.saturating_sub(1);
            if s.calls == 0 && s.tat <= now {
                self.by_ip.remove(&ip);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.by_ip.len()
    }
}

/// Server transactions held per source address, and their bytes: what the transaction caps
/// count.
#[derive(Debug, Default)]
pub(crate) struct TxnSources {
    by_ip: BTreeMap<IpAddr, (usize, usize)>,
    count: usize,
    bytes: usize,
}

impl TxnSources {
    /// May `ip` open another transaction?
    pub fn admits(&self, limits: &Limits, ip: IpAddr) -> bool {
        let (n, bytes) = self.by_ip.get(&ip).copied().unwrap_or_default();
        self.count < limits.transactions
            && self.bytes < limits.transaction_bytes
            && n < limits.transactions_per_source
            && bytes < limits.transaction_bytes_per_source
    }

    pub fn opened(&mut self, ip: IpAddr, bytes: usize) {
        let e = self.by_ip.entry(ip).or_default();
        e.0 += 1;
        e.1 += bytes;
        self.count += 1;
        self.bytes += bytes;
    }

    /// A transaction of `ip`'s now keeps `new` bytes instead of `old`.
    pub fn resized(&mut self, ip: IpAddr, old: usize, new: usize) {
        if let Some(e) = self.by_ip.get_mut(&ip) {
            e.1 = e.1 + new - old;
            self.bytes = self.bytes + new - old;
        }
    }

    pub fn closed(&mut self, ip: IpAddr, bytes: usize) {
        if let Some(e) = self.by_ip.get_mut(&ip) {
            e.0 -= 1;
            e.1 -= bytes;
            self.count -= 1;
            self.bytes -= bytes;
            if e.0 == 0 {
                self.by_ip.remove(&ip);
            }
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
        // Full again after the burst's worth of time: its entry goes with its last call.
        let t2 = t1 + Duration::from_secs(1);
        s.started(ip(1), t1);
        s.ended(ip(1), t2);
        assert_eq!(
            s.len(),
            1,
            "only the other source's refilling bucket is left"
        );
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
            s.started(ip(1), t);
        }
        assert_eq!(s.admit(&limits, ip(1), t), Err(SourceRefusal::Calls));
        s.ended(ip(1), t);
        assert_eq!(s.admit(&limits, ip(1), t), Ok(()));
    }

    #[test]
    fn idle_sources_are_swept_when_the_table_doubles() {
        let limits = Limits::default();
        let mut s = CallSources::default();
        let t = origin();
        for i in 0..5_000u32 {
            let addr = IpAddr::from((0x0a00_0000u32 + i).to_be_bytes());
            // Each source one INVITE, its bucket refilled 1 s later.
            s.admit(&limits, addr, t + Duration::from_secs(i as u64))
                .unwrap();
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
        t.opened(ip(1), 100);
        t.opened(ip(1), 50);
        assert!(!t.admits(&limits, ip(1)));
        assert!(t.admits(&limits, ip(2)));
        t.resized(ip(1), 50, 500);
        assert_eq!(t.bytes(), 600);
        t.closed(ip(1), 100);
        t.closed(ip(1), 500);
        assert_eq!((t.bytes(), t.sources()), (0, 0));
        assert!(t.admits(&limits, ip(1)));
    }
}
