//! Reports: a text timeline for people (`+0.000000 → INVITE …`, `←` for what the core sent,
//! RTP collapsed into runs, then the core's events: latching and how each call ended) and JSON
//! for tools. Times are virtual and relative, so the same run gives the same bytes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use onhold_core::{CallHandle, Event};
use onhold_probe::msg::{Message, Start};
use serde::Serialize;

use crate::engine::{Kind, Way};
use crate::verdict::fmt_time;
use crate::RunResult;

fn sip_line(m: &Message<'_>) -> String {
    let (n, method) = m.cseq().unwrap_or_default();
    match &m.start {
        Start::Request { method, uri } => format!("{method} {uri} (CSeq {n})"),
        Start::Response { code, reason } => format!("{code} {reason} (CSeq {n} {method})"),
    }
}

struct Run {
    way: Way,
    kind: Kind,
    local: SocketAddr,
    remote: SocketAddr,
    first: Duration,
    last: Duration,
    count: u64,
}

/// The timeline as lines of (time, text).
fn timeline(r: &RunResult) -> Vec<(Duration, String)> {
    let mut lines = Vec::new();
    let mut open: BTreeMap<(u8, SocketAddr, SocketAddr), Run> = BTreeMap::new();
    let flush = |open: &mut BTreeMap<(u8, SocketAddr, SocketAddr), Run>,
                 lines: &mut Vec<(Duration, String)>| {
        let mut runs: Vec<Run> = std::mem::take(open).into_values().collect();
        runs.sort_by_key(|r| (r.first, r.local, r.remote));
        for run in runs {
            let what = if run.kind == Kind::Rtp { "RTP" } else { "RTCP" };
            let line = match run.way {
                Way::Out => format!(
                    "← {what} {} → {} ×{} until {}",
                    run.local,
                    run.remote,
                    run.count,
                    fmt_time(run.last)
                ),
                Way::In => format!(
                    "→ {what} {} → {} ×{} until {}",
                    run.remote,
                    run.local,
                    run.count,
                    fmt_time(run.last)
                ),
            };
            lines.push((run.first, line));
        }
    };
    for p in &r.trace.wire {
        match p.kind {
            Kind::Sip => {
                flush(&mut open, &mut lines);
                let text = Message::parse(&p.bytes)
                    .map(|m| sip_line(&m))
                    .unwrap_or_else(|| format!("{} bytes (not SIP)", p.bytes.len()));
                let line = match p.way {
                    Way::In => format!("→ {text}  from {}", p.remote),
                    Way::Out => format!("← {text}  to {}", p.remote),
                };
                lines.push((p.at, line));
            }
            Kind::Rtp | Kind::Rtcp => {
                let k = (
                    p.kind as u8 + 4 * (p.way == Way::In) as u8,
                    p.local,
                    p.remote,
                );
                let run = open.entry(k).or_insert(Run {
                    way: p.way,
                    kind: p.kind,
                    local: p.local,
                    remote: p.remote,
                    first: p.at,
                    last: p.at,
                    count: 0,
                });
                run.last = p.at;
                run.count += 1;
            }
        }
    }
    flush(&mut open, &mut lines);
    lines
}

/// The core's decisions the wire does not spell out, as (time, call, text): a stream that
/// follows the caller's RTP source (latching) and how each call ended, with the core's reason
/// (our BYE carries none). A call is named by its Call-ID once started, else by its handle.
fn events(r: &RunResult) -> Vec<(Duration, String, String)> {
    let mut call_ids: BTreeMap<u64, String> = BTreeMap::new();
    let mut out = Vec::new();
    let name = |ids: &BTreeMap<u64, String>, call: &CallHandle| {
        ids.get(&call.0)
            .cloned()
            .unwrap_or_else(|| format!("call {call}"))
    };
    for (at, ev) in &r.trace.events {
        match ev {
            Event::CallStarted { call, call_id, .. } => {
                call_ids.insert(call.0, call_id.clone());
            }
            Event::Latched {
                call,
                sdp_rtp,
                remote_rtp,
            } => out.push((
                *at,
                name(&call_ids, call),
                format!("latched: RTP to {remote_rtp}, the caller's source, not {sdp_rtp}"),
            )),
            Event::CallEnded {
                call,
                reason,
                duration,
                ..
            } => out.push((
                *at,
                name(&call_ids, call),
                format!("ended: {reason:?} after {}", fmt_span(*duration)),
            )),
            _ => {}
        }
    }
    out
}

/// `65.012s`: a duration to the millisecond.
fn fmt_span(d: Duration) -> String {
    format!("{}.{:03}s", d.as_secs(), d.subsec_millis())
}

pub fn text(r: &RunResult) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "== {} | seed {} | link {} | ran {}",
        r.name,
        r.seed,
        r.link,
        fmt_time(r.trace.end)
    );
    if !r.trace.stalls.is_empty() {
        let list: Vec<String> = r
            .trace
            .stalls
            .iter()
            .map(|(a, b)| format!("{}→{}", fmt_time(*a), fmt_time(*b)))
            .collect();
        let _ = writeln!(s, "runtime stalls: {}", list.join(" "));
    }
    for (at, line) in timeline(r) {
        let _ = writeln!(s, "{} {line}", fmt_time(at));
    }
    for n in &r.notes {
        let _ = writeln!(s, "note {} {}", fmt_time(n.at), n.text);
    }
    for m in &r.media {
        let remote = m
            .remote
            .map(|a| a.to_string())
            .unwrap_or_else(|| "?".into());
        let pt = m
            .payload_type
            .map(|p| p.to_string())
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            s,
            "media [{}] port {} → {remote} PT {pt} {} ms: {} packets, {} segment(s), {} SR, {} late-skipped",
            m.call_id, m.local_port, m.ptime_ms, m.packets, m.segments, m.sender_reports, m.late_skipped
        );
    }
    for (at, call, text) in events(r) {
        let _ = writeln!(s, "event {} [{call}] {text}", fmt_time(at));
    }
    for f in &r.findings {
        let _ = writeln!(s, "{f}");
    }
    let _ = writeln!(s, "{} {}", if r.passed() { "PASS" } else { "FAIL" }, r.name);
    s
}

/// Seconds with microseconds, as the timeline prints them.
fn secs(d: Duration) -> f64 {
    d.as_micros() as f64 / 1e6
}

/// One JSON object (RFC 8259) per run: what the text says, for tools.
pub fn json(r: &RunResult) -> String {
    let report = Report {
        capture: &r.name,
        seed: r.seed,
        link: &r.link,
        end: secs(r.trace.end),
        pass: r.passed(),
        timeline: timeline(r)
            .into_iter()
            .map(|(at, line)| Line { at: secs(at), line })
            .collect(),
        notes: r
            .notes
            .iter()
            .map(|n| NoteJson {
                at: secs(n.at),
                text: &n.text,
            })
            .collect(),
        media: r
            .media
            .iter()
            .map(|m| Media {
                call_id: &m.call_id,
                local_port: m.local_port,
                remote: m.remote.map(|a| a.to_string()),
                ptime_ms: m.ptime_ms,
                payload_type: m.payload_type,
                packets: m.packets,
                segments: m.segments,
                sender_reports: m.sender_reports,
                late_skipped: m.late_skipped,
            })
            .collect(),
        events: events(r)
            .into_iter()
            .map(|(at, call_id, text)| EventJson {
                at: secs(at),
                call_id,
                text,
            })
            .collect(),
        findings: r
            .findings
            .iter()
            .map(|f| FindingJson {
                verdict: f.verdict,
                call_id: &f.call_id,
                at: f.at.map(secs),
                subject: &f.subject,
                expected: &f.expected,
                got: &f.got,
            })
            .collect(),
    };
    serde_json::to_string(&report).expect("plain data serialises")
}

#[derive(Serialize)]
struct Report<'r> {
    capture: &'r str,
    seed: u64,
    link: &'r str,
    end: f64,
    pass: bool,
    timeline: Vec<Line>,
    notes: Vec<NoteJson<'r>>,
    media: Vec<Media<'r>>,
    events: Vec<EventJson>,
    findings: Vec<FindingJson<'r>>,
}

#[derive(Serialize)]
struct EventJson {
    at: f64,
    call_id: String,
    text: String,
}

#[derive(Serialize)]
struct Line {
    at: f64,
    line: String,
}

#[derive(Serialize)]
struct NoteJson<'r> {
    at: f64,
    text: &'r str,
}

#[derive(Serialize)]
struct Media<'r> {
    call_id: &'r str,
    local_port: u16,
    remote: Option<String>,
    ptime_ms: u32,
    payload_type: Option<u8>,
    packets: u64,
    segments: u32,
    sender_reports: u32,
    late_skipped: u64,
}

#[derive(Serialize)]
struct FindingJson<'r> {
    verdict: &'r str,
    call_id: &'r str,
    at: Option<f64>,
    subject: &'r str,
    expected: &'r str,
    got: &'r str,
}
