//! Per-run figures from the per-call results, as text for people or one JSON object for scripts.

use std::fmt::Write as _;

use serde::Serialize;

use super::call::CallResult;

/// The run's figures. Percentiles are nearest-rank over all calls (setup) or all packet pairs
/// of all calls (inter-arrival).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    pub target: String,
    pub shape: &'static str,
    pub duration_ms: u64,
    /// The OPTIONS status code, if any response came.
    pub options_code: Option<u16>,
    pub calls: u64,
    pub calls_ok: u64,
    pub calls_failed: u64,
    pub setup_p50_us: Option<u64>,
    pub setup_p99_us: Option<u64>,
    pub packets_received: u64,
    pub packets_expected: u64,
    pub packets_lost: u64,
    pub loss_pct: f64,
    pub interarrival_p50_us: Option<u64>,
    pub interarrival_p99_us: Option<u64>,
    pub interarrival_max_us: Option<u64>,
    pub first_packet_p50_us: Option<u64>,
    pub seq_errors: u64,
    pub ts_errors: u64,
    pub marker_errors: u64,
    pub ssrc_changes: u64,
    pub pt_errors: u64,
    pub packets_after_bye: u64,
    pub misdirected_packets: u64,
    pub packets_before_ack: u64,
    pub invite_retransmits: u64,
    /// `(call index, problems)` for every unhealthy call.
    pub failures: Vec<(usize, String)>,
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

impl Summary {
    pub fn new(
        target: &str,
        shape: &'static str,
        duration_ms: u64,
        options_code: Option<u16>,
        results: &[CallResult],
    ) -> Summary {
        let mut s = Summary {
            target: target.to_owned(),
            shape,
            duration_ms,
            options_code,
            calls: results.len() as u64,
            ..Summary::default()
        };
        let mut setup: Vec<u64> = results.iter().filter_map(|r| r.setup_us).collect();
        setup.sort_unstable();
        s.setup_p50_us = percentile(&setup, 50.0);
        s.setup_p99_us = percentile(&setup, 99.0);
        let mut dev: Vec<u64> = Vec::new();
        let mut first: Vec<u64> = Vec::new();
        for r in results {
            let m = &r.media;
            if r.healthy() {
                s.calls_ok += 1;
            } else {
                s.calls_failed += 1;
                s.failures.push((r.index, r.problems.join("; ")));
            }
            s.packets_received += m.received;
            s.packets_expected += m.expected;
            s.packets_lost += m.lost;
            s.seq_errors += m.seq_errors;
            s.ts_errors += m.ts_errors;
            s.marker_errors += m.marker_errors;
            s.ssrc_changes += m.ssrc_changes;
            s.pt_errors += m.pt_errors;
            s.packets_after_bye += m.after_bye;
            s.misdirected_packets += r.misdirected;
            s.packets_before_ack += r.before_ack;
            s.invite_retransmits += u64::from(r.invite_retransmits);
            dev.extend_from_slice(&m.deviations_us);
            first.extend(m.first_packet_us);
        }
        s.loss_pct = if s.packets_expected == 0 {
            0.0
        } else {
            s.packets_lost as f64 * 100.0 / s.packets_expected as f64
        };
        dev.sort_unstable();
        s.interarrival_p50_us = percentile(&dev, 50.0);
        s.interarrival_p99_us = percentile(&dev, 99.0);
        s.interarrival_max_us = dev.last().copied();
        first.sort_unstable();
        s.first_packet_p50_us = percentile(&first, 50.0);
        s
    }

    pub fn options_ok(&self) -> bool {
        self.options_code == Some(200)
    }

    /// Exit 0 only for this: OPTIONS answered 200, every call healthy, and no RTP at a shared
    /// SIP socket either.
    pub fn healthy(&self) -> bool {
        self.options_ok()
            && self.calls_failed == 0
            && self.calls > 0
            && self.misdirected_packets == 0
    }

    pub fn text(&self) -> String {
        let ms = |us: Option<u64>| match us {
            Some(us) => format!("{:.1} ms", us as f64 / 1000.0),
            None => "-".into(),
        };
        let us = |v: Option<u64>| v.map_or("-".into(), |v| format!("{v} µs"));
        let mut t = String::new();
        let _ = writeln!(
            t,
            "onhold probe {} (shape {}, calls {}, {} ms each)",
            self.target, self.shape, self.calls, self.duration_ms
        );
        let options = self
            .options_code
            .map_or("no response".to_string(), |c| c.to_string());
        let _ = writeln!(t, "OPTIONS        {options}");
        let _ = writeln!(
            t,
            "calls          {} ok, {} failed",
            self.calls_ok, self.calls_failed
        );
        let _ = writeln!(
            t,
            "setup          p50 {}  p99 {}  (INVITE retransmissions {})",
            ms(self.setup_p50_us),
            ms(self.setup_p99_us),
            self.invite_retransmits
        );
        let _ = writeln!(
            t,
            "packets        {} received / {} expected, {} lost ({:.2} %), first after ACK p50 {}",
            self.packets_received,
            self.packets_expected,
            self.packets_lost,
            self.loss_pct,
            ms(self.first_packet_p50_us)
        );
        let _ = writeln!(
            t,
            "inter-arrival  |gap - ptime| p50 {}  p99 {}  max {}",
            us(self.interarrival_p50_us),
            us(self.interarrival_p99_us),
            us(self.interarrival_max_us)
        );
        let _ = writeln!(
            t,
            "errors         seq {}  ts {}  marker {}  ssrc {}  pt {}",
            self.seq_errors, self.ts_errors, self.marker_errors, self.ssrc_changes, self.pt_errors
        );
        let _ = writeln!(
            t,
            "stray RTP      after BYE {}  at SIP socket {}  before ACK {}",
            self.packets_after_bye, self.misdirected_packets, self.packets_before_ack
        );
        for (i, why) in &self.failures {
            let _ = writeln!(t, "call {i}: {why}");
        }
        let _ = writeln!(
            t,
            "verdict        {}",
            if self.healthy() {
                "healthy"
            } else {
                "UNHEALTHY"
            }
        );
        t
    }

    /// One JSON object (RFC 8259) with every figure; absent figures are `null`.
    pub fn json(&self) -> String {
        let failures = self
            .failures
            .iter()
            .map(|(call, why)| Failure {
                call: *call,
                problems: why,
            })
            .collect();
        let report = Report {
            target: &self.target,
            shape: self.shape,
            duration_ms: self.duration_ms,
            options_status: self.options_code,
            calls: self.calls,
            calls_ok: self.calls_ok,
            calls_failed: self.calls_failed,
            setup_p50_us: self.setup_p50_us,
            setup_p99_us: self.setup_p99_us,
            invite_retransmits: self.invite_retransmits,
            packets_received: self.packets_received,
            packets_expected: self.packets_expected,
            packets_lost: self.packets_lost,
            // To a thousandth of a percent: finer digits are noise.
            loss_pct: (self.loss_pct * 1000.0).round() / 1000.0,
            interarrival_p50_us: self.interarrival_p50_us,
            interarrival_p99_us: self.interarrival_p99_us,
            interarrival_max_us: self.interarrival_max_us,
            first_packet_p50_us: self.first_packet_p50_us,
            seq_errors: self.seq_errors,
            ts_errors: self.ts_errors,
            marker_errors: self.marker_errors,
            ssrc_changes: self.ssrc_changes,
            pt_errors: self.pt_errors,
            packets_after_bye: self.packets_after_bye,
            misdirected_packets: self.misdirected_packets,
            packets_before_ack: self.packets_before_ack,
            failures,
            healthy: self.healthy(),
        };
        serde_json::to_string(&report).expect("plain data serialises")
    }
}

/// The JSON object's fields, in the order scripts have always seen them.
#[derive(Serialize)]
struct Report<'s> {
    target: &'s str,
    shape: &'s str,
    duration_ms: u64,
    options_status: Option<u16>,
    calls: u64,
    calls_ok: u64,
    calls_failed: u64,
    setup_p50_us: Option<u64>,
    setup_p99_us: Option<u64>,
    invite_retransmits: u64,
    packets_received: u64,
    packets_expected: u64,
    packets_lost: u64,
    loss_pct: f64,
    interarrival_p50_us: Option<u64>,
    interarrival_p99_us: Option<u64>,
    interarrival_max_us: Option<u64>,
    first_packet_p50_us: Option<u64>,
    seq_errors: u64,
    ts_errors: u64,
    marker_errors: u64,
    ssrc_changes: u64,
    pt_errors: u64,
    packets_after_bye: u64,
    misdirected_packets: u64,
    packets_before_ack: u64,
    failures: Vec<Failure<'s>>,
    healthy: bool,
}

#[derive(Serialize)]
struct Failure<'s> {
    call: usize,
    problems: &'s str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[1, 2], 0.0), Some(1));
    }

    #[test]
    fn json_escapes_and_nulls() {
        let mut r = CallResult {
            index: 3,
            ..CallResult::default()
        };
        r.problems.push("INVITE answered 488 \"x\"\n".into());
        let s = Summary::new("sip:a\\b", "own", 1000, None, &[r]);
        let j = s.json();
        assert!(
            j.starts_with("{\"target\":\"sip:a\\\\b\",\"shape\":\"own\""),
            "{j}"
        );
        assert!(j.contains("\"options_status\":null"), "{j}");
        assert!(
            j.contains("{\"call\":3,\"problems\":\"INVITE answered 488 \\\"x\\\"\\n\"}"),
            "{j}"
        );
        assert!(j.ends_with(",\"healthy\":false}"), "{j}");
        assert!(!s.healthy());
    }
}
