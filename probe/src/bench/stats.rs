//! The arithmetic of `onhold bench`: a histogram of pacing deviations, percentiles of set-up
//! latencies, loss from RTP sequence numbers, and the `/proc` readings (CPU ticks, RSS) that
//! the per-stream costs come from.

/// Width of one deviation bucket, in nanoseconds (10 µs: the figures of interest are tenths
/// of a millisecond and up).
const BUCKET_NS: u64 = 10_000;
/// Buckets up to 200 ms; a larger deviation lands in the last one (its exact value is in `max`).
const BUCKETS: usize = 20_000;

/// |inter-arrival gap − ptime| of consecutive packets, counted in 10 µs buckets.
#[derive(Clone, Debug)]
pub struct DeviationHist {
    counts: Vec<u64>,
    pub samples: u64,
    pub max_ns: u64,
    /// Sum of the gaps themselves (not their deviation), for the mean gap.
    pub gap_sum_ns: u64,
}

impl Default for DeviationHist {
    fn default() -> Self {
        DeviationHist {
            counts: vec![0; BUCKETS],
            samples: 0,
            max_ns: 0,
            gap_sum_ns: 0,
        }
    }
}

impl DeviationHist {
    /// Record one gap between consecutive packets of a stream paced every `ptime_ns`.
    pub fn add_gap(&mut self, gap_ns: u64, ptime_ns: u64) {
        let dev = gap_ns.abs_diff(ptime_ns);
        let bucket = ((dev / BUCKET_NS) as usize).min(BUCKETS - 1);
        self.counts[bucket] += 1;
        self.samples += 1;
        self.max_ns = self.max_ns.max(dev);
        self.gap_sum_ns += gap_ns;
    }

    pub fn merge(&mut self, other: &DeviationHist) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.samples += other.samples;
        self.max_ns = self.max_ns.max(other.max_ns);
        self.gap_sum_ns += other.gap_sum_ns;
    }

    /// The deviation below which a share `q` (0–1) of the samples fall, in ms: the upper edge of
    /// the bucket holding that sample, capped at the maximum seen. `None` with no samples.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        if self.samples == 0 {
            return None;
        }
        let rank = ((q * self.samples as f64).ceil() as u64).clamp(1, self.samples);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank && i + 1 < BUCKETS {
                let edge = (i as u64 + 1) * BUCKET_NS;
                return Some(edge.min(self.max_ns) as f64 / 1e6);
            }
        }
        Some(self.max_ns as f64 / 1e6)
    }

    pub fn max_ms(&self) -> Option<f64> {
        (self.samples > 0).then(|| self.max_ns as f64 / 1e6)
    }

    pub fn mean_gap_ms(&self) -> Option<f64> {
        (self.samples > 0).then(|| self.gap_sum_ns as f64 / self.samples as f64 / 1e6)
    }
}

/// The nearest-rank percentile `q` (0–1) of unsorted values; `None` when empty.
pub fn percentile(values: &[u64], q: f64) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}

/// One RTP stream's sequence numbers, extended past the 16-bit wrap (RFC 3550 A.1, without
/// the probation).
#[derive(Clone, Copy, Debug)]
pub struct SeqTrack {
    first: i64,
    highest: i64,
    last: i64,
    pub received: u64,
}

impl SeqTrack {
    pub fn new(seq: u16) -> SeqTrack {
        let s = i64::from(seq);
        SeqTrack {
            first: s,
            highest: s,
            last: s,
            received: 1,
        }
    }

    /// Record the next packet; the difference to the previous packet's extended number (1 for
    /// the next in order, 0 for a duplicate, negative for one reordered).
    pub fn add(&mut self, seq: u16) -> i64 {
        let delta = i64::from(seq.wrapping_sub(self.last as u16) as i16);
        self.last += delta;
        self.highest = self.highest.max(self.last);
        self.first = self.first.min(self.last);
        self.received += 1;
        delta
    }

    /// Packets missing between the first and the highest sequence number seen (duplicates can
    /// make the count negative; it is reported as 0).
    pub fn lost(&self) -> u64 {
        let expected = (self.highest - self.first + 1) as u64;
        expected.saturating_sub(self.received)
    }
}

/// utime + stime of a process (field 14 and 15 of `/proc/PID/stat`), in clock ticks. The
/// command name (field 2) may hold spaces and parentheses, so fields are counted after the last
/// `)`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // After ")": state is field 3, so utime (14) is the 12th and stime (15) the 13th.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// `VmRSS` of `/proc/PID/status`, in KiB.
pub fn parse_vmrss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// CPU ticks of a process (`/proc/PID/stat`) or of one thread (`/proc/PID/task/TID/stat`).
pub fn cpu_ticks(path: &str) -> Option<u64> {
    parse_stat_ticks(&std::fs::read_to_string(path).ok()?)
}

pub fn rss_kib(pid: u32) -> Option<u64> {
    parse_vmrss_kib(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// Milliseconds per clock tick (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
pub fn ms_per_tick() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        1000.0 / hz as f64
    } else {
        10.0
    }
}

/// CPU milliseconds per stream-second: `ticks` spent while `streams` streams ran for `secs`.
pub fn cpu_ms_per_stream_second(ticks: u64, ms_per_tick: f64, streams: u64, secs: f64) -> f64 {
    if streams == 0 || secs <= 0.0 {
        return 0.0;
    }
    ticks as f64 * ms_per_tick / (streams as f64 * secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PTIME: u64 = 20_000_000;

    #[test]
    fn deviation_quantiles_come_from_the_bucket_holding_the_rank() {
        let mut h = DeviationHist::default();
        // 98 gaps on time, one 0.5 ms late, one 3 ms early.
        for _ in 0..98 {
            h.add_gap(PTIME, PTIME);
        }
        h.add_gap(PTIME + 500_000, PTIME);
        h.add_gap(PTIME - 3_000_000, PTIME);
        assert_eq!(h.samples, 100);
        // On time is the first bucket: under 10 µs.
        assert_eq!(h.quantile_ms(0.5), Some(0.01));
        assert_eq!(h.quantile_ms(0.98), Some(0.01));
        // The 99th sample is the 0.5 ms one: its bucket's upper edge is 0.51 ms.
        assert_eq!(h.quantile_ms(0.99), Some(0.51));
        assert_eq!(h.quantile_ms(1.0), Some(3.0));
        assert_eq!(h.max_ms(), Some(3.0));
        let mean = h.mean_gap_ms().unwrap();
        assert!((mean - (20.0 - 2.5 / 100.0)).abs() < 1e-9, "{mean}");
    }

    #[test]
    fn a_deviation_beyond_the_buckets_is_kept_as_the_maximum() {
        let mut h = DeviationHist::default();
        h.add_gap(PTIME + 900_000_000, PTIME);
        assert_eq!(h.quantile_ms(0.99), Some(900.0));
        let mut merged = DeviationHist::default();
        merged.add_gap(PTIME + 5_000, PTIME);
        merged.merge(&h);
        assert_eq!(merged.samples, 2);
        assert_eq!(merged.quantile_ms(0.5), Some(0.01));
        assert_eq!(merged.max_ms(), Some(900.0));
        assert_eq!(DeviationHist::default().quantile_ms(0.5), None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(percentile(&v, 0.5), Some(50));
        assert_eq!(percentile(&v, 0.99), Some(99));
        assert_eq!(percentile(&v, 1.0), Some(100));
        assert_eq!(percentile(&[7], 0.99), Some(7));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn loss_counts_holes_across_the_sequence_wrap() {
        let mut t = SeqTrack::new(65_530);
        for s in [65_531u16, 65_532, 65_535, 0, 1, 4] {
            t.add(s);
        }
        // 65530..=4 extended is 11 numbers; 7 arrived.
        assert_eq!(t.received, 7);
        assert_eq!(t.lost(), 4);
        assert_eq!(t.add(4), 0, "a duplicate");
        assert_eq!(t.add(3), -1, "a late one");
        assert_eq!(
            t.lost(),
            2,
            "the late one fills a hole; a duplicate counts as received"
        );
    }

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "4242 (on hold) (x)) S 1 4242 4242 0 -1 4194560 812 0 0 0 \
                    1234 567 0 0 20 0 3 0 100 1000000 500 18446744073709551615";
        assert_eq!(parse_stat_ticks(stat), Some(1234 + 567));
        assert_eq!(parse_stat_ticks("garbage"), None);
        let status = "Name:\tonhold\nVmPeak:\t  9000 kB\nVmRSS:\t    5120 kB\nThreads:\t2\n";
        assert_eq!(parse_vmrss_kib(status), Some(5120));
        assert_eq!(parse_vmrss_kib("Name: x\n"), None);
    }

    #[test]
    fn cpu_per_stream_second_divides_by_streams_and_time() {
        // 250 ticks of 10 ms over 1,000 streams for 10 s: 2.5 s / 10,000 stream-s.
        assert!((cpu_ms_per_stream_second(250, 10.0, 1000, 10.0) - 0.25).abs() < 1e-12);
        assert_eq!(cpu_ms_per_stream_second(250, 10.0, 0, 10.0), 0.0);
    }
}
