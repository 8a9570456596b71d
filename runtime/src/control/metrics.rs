//! `GET /metrics`: the core's counters and the control plane's, as OpenMetrics text
//! (`prometheus-client`), built from one snapshot per scrape on the HTTP thread.

use std::time::UNIX_EPOCH;

use onhold_core::{Lateness, RegistrationState, LATENESS_BOUNDS_US, SIP_METHODS};
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::Snapshot;

type Labels = Vec<(String, String)>;

fn label(name: &str, value: impl Into<String>) -> Labels {
    vec![(name.to_string(), value.into())]
}

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let c: Counter = Counter::default();
    c.inc_by(value);
    registry.register(name, help, c);
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: i64) {
    let g: Gauge = Gauge::default();
    g.set(value);
    registry.register(name, help, g);
}

/// A counter family from `(label value, count)` pairs.
fn family<'a>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    label_name: &str,
    values: impl IntoIterator<Item = (&'a str, u64)>,
) {
    let f = Family::<Labels, Counter>::default();
    for (value, n) in values {
        f.get_or_create(&label(label_name, value)).inc_by(n);
    }
    registry.register(name, help, f);
}

/// The lateness histogram as the core counted it (buckets are not cumulative there).
#[derive(Debug)]
struct LatenessHistogram(Lateness);

impl EncodeMetric for LatenessHistogram {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let l = &self.0;
        let mut buckets: Vec<(f64, u64)> = LATENESS_BOUNDS_US
            .iter()
            .zip(l.buckets)
            .map(|(&us, n)| (us as f64 / 1e6, n))
            .collect();
        let within: u64 = l.buckets.iter().sum();
        buckets.push((f64::INFINITY, l.count - within));
        encoder.encode_histogram::<NoLabelSet>(l.sum_ns as f64 / 1e9, l.count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// The scrape body.
pub fn render(s: &Snapshot) -> String {
    let mut r = Registry::with_prefix("onhold");
    let st = &s.stats;
    let c = &s.counters;
    gauge(
        &mut r,
        "calls_active",
        "Calls up now (answered or being answered)",
        st.calls_active as i64,
    );
    family(
        &mut r,
        "calls",
        "INVITEs that made or were refused a call, by outcome",
        "outcome",
        [
            ("answered", c.answered),
            ("unanswered", c.unanswered),
            ("rejected", c.rejected),
        ],
    );
    family(
        &mut r,
        "calls_ended",
        "Calls ended, by reason",
        "reason",
        c.ended.iter().map(|(k, v)| (*k, *v)),
    );
    let requests = Family::<Labels, Counter>::default();
    let sip = &st.sip;
    for (dir, counts) in [("in", &sip.requests_in), ("out", &sip.requests_out)] {
        for (i, n) in counts.iter().enumerate().filter(|(_, n)| **n > 0) {
            let method = SIP_METHODS.get(i).copied().unwrap_or("other");
            let labels = vec![
                ("direction".to_string(), dir.to_string()),
                ("method".to_string(), method.to_string()),
            ];
            requests.get_or_create(&labels).inc_by(*n);
        }
    }
    r.register(
        "sip_requests",
        "SIP requests, by direction and method",
        requests,
    );
    let responses = Family::<Labels, Counter>::default();
    for (dir, counts) in [("in", &sip.responses_in), ("out", &sip.responses_out)] {
        for (code, n) in counts.iter() {
            let labels = vec![
                ("direction".to_string(), dir.to_string()),
                ("code".to_string(), code.to_string()),
            ];
            responses.get_or_create(&labels).inc_by(n);
        }
    }
    r.register(
        "sip_responses",
        "SIP responses, by direction and status code",
        responses,
    );
    counter(&mut r, "rtp_sent_packets", "RTP packets sent", st.rtp_out);
    r.register_with_unit("rtp_sent", "RTP payload sent", Unit::Bytes, {
        let b: Counter = Counter::default();
        b.inc_by(st.rtp_octets_out);
        b
    });
    counter(
        &mut r,
        "rtcp_sent_packets",
        "RTCP packets sent",
        st.rtcp_out,
    );
    counter(
        &mut r,
        "rtp_received_packets",
        "RTP and RTCP packets received from callers",
        st.rtp_in,
    );
    counter(
        &mut r,
        "rtp_unmatched_packets",
        "RTP and RTCP packets on the shared RTP port from an address no call streams to",
        st.rtp_unmatched,
    );
    counter(
        &mut r,
        "rtp_skipped_frames",
        "Frames skipped to stay on the pacing grid after a late wake-up",
        st.late_skipped_frames,
    );
    r.register_with_unit(
        "rtp_send_lateness",
        "How long after its due time on the call's grid each RTP packet was sent",
        Unit::Seconds,
        LatenessHistogram(st.lateness.clone()),
    );
    family(
        &mut r,
        "refusals",
        "Requests and media refused, by reason",
        "reason",
        [
            ("max_calls", st.refused_full),
            ("invite_rate", st.refused_rate),
            ("calls_per_source", st.refused_source_calls),
            ("transactions", st.refused_transactions),
            ("overload", st.refused_overload),
            ("acl", st.denied),
            ("bad_request", st.bad_requests),
            ("oversized", st.oversized),
            ("media_address", st.media_refused),
            ("foreign_in_dialog", st.foreign_in_dialog),
        ],
    );
    counter(
        &mut r,
        "sip_dropped",
        "SIP datagrams dropped without an answer",
        st.dropped,
    );
    counter(
        &mut r,
        "icmp_unreachable",
        "ICMP unreachable errors for our RTP destinations",
        st.unreachable,
    );
    family(
        &mut r,
        "music_reloads",
        "Music and configuration reloads, by result",
        "result",
        [("ok", c.reloads), ("failed", c.reload_failures)],
    );
    let start = s
        .started_wall
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let g = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    g.set(start);
    r.register_with_unit(
        "process_start_time",
        "When the process started, since the Unix epoch",
        Unit::Seconds,
        g,
    );
    if !s.registrations.is_empty() {
        let states = Family::<Labels, Gauge>::default();
        let sent = Family::<Labels, Counter>::default();
        for reg in &s.registrations {
            for state in [
                RegistrationState::Pending,
                RegistrationState::Registered,
                RegistrationState::Failed,
                RegistrationState::Unregistered,
            ] {
                let labels = vec![
                    ("aor".to_string(), reg.aor.clone()),
                    ("state".to_string(), state.name().to_string()),
                ];
                states
                    .get_or_create(&labels)
                    .set(i64::from(reg.state == state));
            }
            sent.get_or_create(&label("aor", reg.aor.clone()))
                .inc_by(reg.sent);
        }
        r.register(
            "registrations",
            "Each [[register]] account: 1 for the state it is in",
            states,
        );
        r.register(
            "register_requests",
            "REGISTER requests sent per account (retransmissions not counted)",
            sent,
        );
    }
    if !s.live.is_empty() {
        let outages = Family::<Labels, Counter>::default();
        let underruns = Family::<Labels, Counter>::default();
        let connected = Family::<Labels, Gauge>::default();
        let playing = Family::<Labels, Gauge>::default();
        for l in &s.live {
            let class = label("class", l.class.clone());
            outages.get_or_create(&class).inc_by(l.outages);
            underruns.get_or_create(&class).inc_by(l.underruns);
            connected.get_or_create(&class).set(i64::from(l.connected));
            playing.get_or_create(&class).set(i64::from(l.playing));
        }
        r.register(
            "live_outages",
            "Times a live class's source went down (refused, dropped or stalled), each counted once",
            outages,
        );
        r.register(
            "live_underruns",
            "Times a live class's buffer ran dry while playing (its callers then hear the fallback)",
            underruns,
        );
        r.register(
            "live_connected",
            "1 while a live class's source is connected",
            connected,
        );
        r.register(
            "live_playing",
            "1 while a live class's callers hear the source, 0 while they hear the fallback",
            playing,
        );
    }
    let info = Family::<Labels, Gauge>::default();
    info.get_or_create(&label("version", crate::VERSION)).set(1);
    r.register("build_info", "The running version", info);
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &r);
    out
}
