//! Reports: a text timeline for people (`+0.000000 → INVITE …`, `←` for what the core sent,
//! RTP collapsed into runs) and JSON for tools. Times are virtual and relative, so the same run
//! gives the same bytes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use onhold_probe::msg::{Message, Start};

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
    for f in &r.findings {
        let _ = writeln!(s, "{f}");
    }
    let _ = writeln!(s, "{} {}", if r.passed() { "PASS" } else { "FAIL" }, r.name);
    s
}

/// A JSON string literal.
pub fn json_str(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

fn secs(d: Duration) -> String {
    format!("{}.{:06}", d.as_secs(), d.subsec_micros())
}

pub fn json(r: &RunResult) -> String {
    let mut s = String::from("{");
    let _ = write!(
        s,
        "\"capture\":{},\"seed\":{},\"link\":{},\"end\":{},\"pass\":{}",
        json_str(&r.name),
        r.seed,
        json_str(&r.link),
        secs(r.trace.end),
        r.passed()
    );
    s.push_str(",\"timeline\":[");
    for (i, (at, line)) in timeline(r).iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{{\"at\":{},\"line\":{}}}", secs(*at), json_str(line));
    }
    s.push_str("],\"notes\":[");
    for (i, n) in r.notes.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            "{{\"at\":{},\"text\":{}}}",
            secs(n.at),
            json_str(&n.text)
        );
    }
    s.push_str("],\"media\":[");
    for (i, m) in r.media.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            "{{\"call_id\":{},\"local_port\":{},\"remote\":{},\"ptime_ms\":{},\"payload_type\":{},\"packets\":{},\"segments\":{},\"sender_reports\":{},\"late_skipped\":{}}}",
            json_str(&m.call_id),
            m.local_port,
            m.remote.map(|a| json_str(&a.to_string())).unwrap_or_else(|| "null".into()),
            m.ptime_ms,
            m.payload_type.map(|p| p.to_string()).unwrap_or_else(|| "null".into()),
            m.packets,
            m.segments,
            m.sender_reports,
            m.late_skipped
        );
    }
    s.push_str("],\"findings\":[");
    for (i, f) in r.findings.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            "{{\"verdict\":{},\"call_id\":{},\"at\":{},\"subject\":{},\"expected\":{},\"got\":{}}}",
            json_str(f.verdict),
            json_str(&f.call_id),
            f.at.map(secs).unwrap_or_else(|| "null".into()),
            json_str(&f.subject),
            json_str(&f.expected),
            json_str(&f.got)
        );
    }
    s.push_str("]}");
    s
}
