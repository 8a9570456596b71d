//! One row per sender and N, and the ways of showing them: a text table, the CPU ratios to the
//! floor and to SIPp at each N, JSON, and an SVG plot.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddrV4;

use serde::{Deserialize, Serialize};

use super::floor::FloorResult;
use super::load::LoadResult;
use super::media::MediaReport;
use super::stats;

/// The ptime every sender is asked for.
const PTIME_MS: f64 = 20.0;

/// The figures of one run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub sender: String,
    /// Calls offered (streams, for the floor).
    pub calls: usize,
    /// Calls answered 200 (streams, for the floor).
    pub up: usize,
    pub refused_503: usize,
    pub refused_503_retry_after: usize,
    pub failed_other: usize,
    pub timed_out: usize,
    pub invite_retransmissions: u64,
    /// RTP streams seen (by source and SSRC).
    pub streams: usize,
    pub packets: u64,
    /// Packets missing from the streams' sequence numbers.
    pub lost: u64,
    /// Frames left out with the sequence numbers contiguous (RTP timestamp jumps).
    #[serde(default)]
    pub skipped: u64,
    /// |gap − ptime| over the hold, ms.
    pub dev_p50_ms: Option<f64>,
    pub dev_p99_ms: Option<f64>,
    pub dev_max_ms: Option<f64>,
    pub mean_gap_ms: Option<f64>,
    /// p99 |gap − ptime| while the calls were coming up, ms.
    pub ramp_dev_p99_ms: Option<f64>,
    /// INVITE → 200, ms.
    pub setup_p50_ms: Option<f64>,
    pub setup_p99_ms: Option<f64>,
    /// INVITE → any final response (200 or 503), ms.
    pub answer_p99_ms: Option<f64>,
    /// BYE → its answer, ms.
    pub bye_p99_ms: Option<f64>,
    pub bye_unanswered: usize,
    /// Calls the server ended with a BYE of its own before ours.
    #[serde(default)]
    pub ended_by_server: usize,
    /// 200s per second from the first INVITE to the last 200.
    pub achieved_cps: Option<f64>,
    /// RTP packets that arrived after the BYE of their call was answered.
    pub rtp_after_bye: u64,
    pub hold_s: f64,
    pub cpu_ms_per_stream_s: Option<f64>,
    pub rss_per_call_kib: Option<f64>,
    /// Receive buffer per RTP socket, bytes.
    pub rcvbuf: usize,
}

impl Row {
    /// No packet or call lost and the streams in real time (a mean gap within 1 % of the
    /// ptime): the sender kept up with this N.
    pub fn kept_up(&self) -> bool {
        self.lost == 0
            && self.skipped == 0
            && self.up == self.calls
            && self.streams >= self.up
            && self.mean_gap_ms.is_none_or(|g| g <= PTIME_MS * 1.01)
    }
}

fn ms(us: Option<u64>) -> Option<f64> {
    us.map(|u| u as f64 / 1000.0)
}

fn deviation(row: &mut Row, m: &MediaReport) {
    row.streams = m.streams.len();
    row.packets = m.packets;
    row.lost = m.streams.iter().map(|s| s.seq.lost()).sum();
    row.skipped = m.streams.iter().map(|s| s.skipped).sum();
    row.dev_p50_ms = m.hold.quantile_ms(0.5);
    row.dev_p99_ms = m.hold.quantile_ms(0.99);
    row.dev_max_ms = m.hold.max_ms();
    row.mean_gap_ms = m.hold.mean_gap_ms();
    row.ramp_dev_p99_ms = m.ramp.quantile_ms(0.99);
}

/// The row of a SIP server's run.
pub fn load_row(sender: &str, r: &LoadResult, m: &MediaReport, rcvbuf: usize) -> Row {
    let mut row = Row {
        sender: sender.to_owned(),
        calls: r.offered,
        up: r.up,
        refused_503: r.refused_503,
        refused_503_retry_after: r.refused_503_retry_after,
        failed_other: r.failed_other,
        timed_out: r.timed_out,
        invite_retransmissions: r.invite_retransmissions,
        setup_p50_ms: ms(stats::percentile(&r.setup_us, 0.5)),
        setup_p99_ms: ms(stats::percentile(&r.setup_us, 0.99)),
        answer_p99_ms: ms(stats::percentile(&r.answer_us, 0.99)),
        bye_p99_ms: ms(stats::percentile(&r.bye_us, 0.99)),
        bye_unanswered: r.bye_unanswered,
        ended_by_server: r.ended_by_server,
        achieved_cps: (r.setup_span_s > 0.0).then(|| r.up as f64 / r.setup_span_s),
        hold_s: r.hold_s,
        cpu_ms_per_stream_s: r.cpu_ticks_hold.map(|t| {
            stats::cpu_ms_per_stream_second(t, stats::ms_per_tick(), r.up as u64, r.hold_s)
        }),
        rss_per_call_kib: r
            .rss_before_kib
            .zip(r.rss_after_kib)
            .filter(|_| r.up > 0)
            .map(|(a, b)| b.saturating_sub(a) as f64 / r.up as f64),
        rcvbuf,
        ..Row::default()
    };
    deviation(&mut row, m);
    row.rtp_after_bye = after_bye(r, m);
    row
}

/// Packets that arrived after the BYE of their call was answered. A stream is matched to its
/// call by the media address of the call's SDP answer; a stream from elsewhere (a server that
/// sends from another port than it announced) is held to the last BYE answer of the run.
fn after_bye(r: &LoadResult, m: &MediaReport) -> u64 {
    let by_media: HashMap<SocketAddrV4, u64> = r
        .calls
        .iter()
        .filter_map(|c| Some((c.media?, c.bye_answered_ns?)))
        .collect();
    let last = r.last_bye_answered_ns.unwrap_or(u64::MAX);
    m.streams
        .iter()
        .map(|s| {
            let answered = by_media.get(&s.src).copied().unwrap_or(last);
            s.tail.iter().filter(|&&t| t > answered).count() as u64 + s.tail_dropped
        })
        .sum()
}

/// The row of the floor's run.
pub fn floor_row(sender: &str, n: usize, f: &FloorResult, m: &MediaReport, rcvbuf: usize) -> Row {
    let mut row = Row {
        sender: sender.to_owned(),
        calls: n,
        up: f.streams,
        hold_s: f.hold_s,
        cpu_ms_per_stream_s: f
            .cpu_ticks_hold
            .map(|t| stats::cpu_ms_per_stream_second(t, stats::ms_per_tick(), n as u64, f.hold_s)),
        rcvbuf,
        ..Row::default()
    };
    deviation(&mut row, m);
    row.rtp_after_bye = m
        .streams
        .iter()
        .map(|s| s.tail.iter().filter(|&&t| t > f.stopped_ns).count() as u64)
        .sum();
    row
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("—".into(), |v| format!("{v:.digits$}"))
}

/// One line for the progress output.
pub fn brief(r: &Row) -> String {
    format!(
        "up {}/{} (503 {}), lost {}, skipped {}, p99 dev {} ms, setup p99 {} ms, CPU {} ms/stream-s, RSS/call {} KiB, after BYE {}",
        r.up,
        r.calls,
        r.refused_503,
        r.lost,
        r.skipped,
        opt(r.dev_p99_ms, 2),
        opt(r.setup_p99_ms, 1),
        opt(r.cpu_ms_per_stream_s, 3),
        opt(r.rss_per_call_kib, 1),
        r.rtp_after_bye
    )
}

/// The right-aligned width of each column after the sender's.
const COLUMNS: [usize; 18] = [6, 6, 5, 5, 5, 7, 7, 6, 6, 7, 7, 7, 7, 7, 7, 6, 8, 7];

/// One line of the table: the sender column `w` wide, then each cell at its column's width.
fn table_line(out: &mut String, w: usize, sender: &str, cells: [String; 18]) {
    let _ = write!(out, "{sender:<w$}");
    for (cell, width) in cells.iter().zip(COLUMNS) {
        let _ = write!(out, " {cell:>width$}");
    }
    out.push('\n');
}

/// The table of every row.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    // The sender column as wide as its longest name ("onhold-mio shared").
    let w = rows
        .iter()
        .map(|r| r.sender.len())
        .max()
        .unwrap_or(0)
        .max(12);
    let text = |cells: [&str; 18]| cells.map(str::to_owned);
    table_line(
        &mut out,
        w,
        "sender",
        text([
            "N", "up", "503", "fail", "retx", "lost", "skip", "p50", "p99", "max", "ramp99", "gap",
            "setup99", "ans99", "cps", "afterB", "cpu", "rss/c",
        ]),
    );
    table_line(
        &mut out,
        w,
        "",
        text([
            "", "", "", "", "", "", "", "ms", "ms", "ms", "ms", "ms", "ms", "ms", "/s", "pkts",
            "ms/str-s", "KiB",
        ]),
    );
    for r in rows {
        table_line(
            &mut out,
            w,
            &r.sender,
            [
                r.calls.to_string(),
                r.up.to_string(),
                r.refused_503.to_string(),
                (r.failed_other + r.timed_out).to_string(),
                r.invite_retransmissions.to_string(),
                r.lost.to_string(),
                r.skipped.to_string(),
                opt(r.dev_p50_ms, 2),
                opt(r.dev_p99_ms, 2),
                opt(r.dev_max_ms, 1),
                opt(r.ramp_dev_p99_ms, 2),
                opt(r.mean_gap_ms, 2),
                opt(r.setup_p99_ms, 1),
                opt(r.answer_p99_ms, 1),
                opt(r.achieved_cps, 0),
                r.rtp_after_bye.to_string(),
                opt(r.cpu_ms_per_stream_s, 3),
                opt(r.rss_per_call_kib, 1),
            ],
        );
    }
    out
}

/// At each N: every sender's CPU per stream-second ÷ the floor's and ÷ SIPp's.
pub fn ratios(rows: &[Row]) -> String {
    let mut out = String::new();
    let mut ns: Vec<usize> = rows.iter().map(|r| r.calls).collect();
    ns.dedup();
    for n in ns {
        let at: Vec<&Row> = rows.iter().filter(|r| r.calls == n).collect();
        let cpu_of = |name: &str| {
            at.iter()
                .find(|r| r.sender == name)
                .and_then(|r| r.cpu_ms_per_stream_s)
                .filter(|&c| c > 0.0)
        };
        let (floor, sipp) = (cpu_of("floor"), cpu_of("sipp"));
        if floor.is_none() && sipp.is_none() {
            continue;
        }
        for r in &at {
            if r.sender == "floor" || r.sender == "sipp" {
                continue;
            }
            let Some(cpu) = r.cpu_ms_per_stream_s else {
                continue;
            };
            let _ = writeln!(
                out,
                "N={n:<6} {:<17} CPU/stream-s ÷ floor {}   ÷ sipp {}",
                r.sender,
                floor.map_or("—".into(), |f| format!("{:.2}", cpu / f)),
                sipp.map_or("—".into(), |s| format!("{:.2}", cpu / s)),
            );
        }
    }
    out
}

pub fn json(rows: &[Row]) -> String {
    serde_json::json!({ "rows": rows }).to_string()
}

/// A hand-written SVG: two panels against N, p99 |gap − ptime| and CPU ms per stream-second,
/// one line per sender.
pub fn svg(rows: &[Row]) -> String {
    const COLORS: [&str; 6] = [
        "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
    ];
    let (pw, ph, left, top, gap) = (420.0, 280.0, 60.0, 40.0, 90.0);
    let width = left + 2.0 * pw + gap + 30.0;
    let height = top + ph + 90.0;
    let mut senders: Vec<&str> = Vec::new();
    for r in rows {
        if !senders.contains(&r.sender.as_str()) {
            senders.push(&r.sender);
        }
    }
    let max_n = rows.iter().map(|r| r.calls).max().unwrap_or(1).max(1) as f64;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    type Metric = fn(&Row) -> Option<f64>;
    let panels: [(&str, Metric); 2] = [
        ("p99 |inter-arrival − ptime| (ms)", |r| r.dev_p99_ms),
        ("CPU ms per stream-second", |r| r.cpu_ms_per_stream_s),
    ];
    for (p, (title, metric)) in panels.iter().enumerate() {
        let x0 = left + p as f64 * (pw + gap);
        let max_y = rows
            .iter()
            .filter_map(metric)
            .fold(0.0f64, f64::max)
            .max(1e-3)
            * 1.1;
        let sx = |n: f64| x0 + n / max_n * pw;
        let sy = |v: f64| top + ph - v / max_y * ph;
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle" font-weight="bold">{title}</text>"#,
            x0 + pw / 2.0,
            top - 15.0
        );
        let _ = writeln!(
            out,
            r##"<rect x="{x0}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>"##
        );
        for k in 0..=4 {
            let v = max_y * f64::from(k) / 4.0;
            let y = sy(v);
            let _ = writeln!(
                out,
                r##"<line x1="{x0}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{v:.2}</text>"##,
                x0 + pw,
                x0 - 5.0,
                y + 4.0
            );
            let n = max_n * f64::from(k) / 4.0;
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{n:.0}</text>"#,
                sx(n),
                top + ph + 16.0
            );
        }
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle">calls held (N)</text>"#,
            x0 + pw / 2.0,
            top + ph + 34.0
        );
        for (k, name) in senders.iter().enumerate() {
            let color = COLORS[k % COLORS.len()];
            let pts: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| r.sender == *name)
                .filter_map(|r| Some((sx(r.calls as f64), sy(metric(r)?))))
                .collect();
            let line: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            let _ = writeln!(
                out,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
                line.join(" ")
            );
            for (x, y) in pts {
                let _ = writeln!(
                    out,
                    r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{color}"/>"#
                );
            }
        }
    }
    for (k, name) in senders.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let x = left + k as f64 * 140.0;
        let y = top + ph + 62.0;
        let _ = writeln!(
            out,
            r#"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{color}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
            x + 24.0,
            x + 30.0,
            y + 4.0,
            escape(name)
        );
    }
    out.push_str("</svg>\n");
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(sender: &str, n: usize, cpu: f64, p99: f64) -> Row {
        Row {
            sender: sender.into(),
            calls: n,
            up: n,
            streams: n,
            cpu_ms_per_stream_s: Some(cpu),
            dev_p99_ms: Some(p99),
            ..Row::default()
        }
    }

    #[test]
    fn ratios_divide_by_the_floor_and_sipp_of_the_same_n() {
        let rows = vec![
            row("floor", 100, 0.25, 0.1),
            row("onhold", 100, 0.5, 0.2),
            row("sipp", 100, 1.0, 19.0),
            row("floor", 1000, 0.2, 0.3),
            row("onhold", 1000, 0.3, 0.5),
            row("onhold", 2000, 0.3, 0.5),
        ];
        let text = ratios(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "nothing to divide by at 2000: {text}");
        assert!(lines[0].contains("N=100") && lines[0].contains("÷ floor 2.00"));
        assert!(lines[0].contains("÷ sipp 0.50"), "{}", lines[0]);
        assert!(lines[1].contains("N=1000") && lines[1].contains("÷ floor 1.50"));
        assert!(lines[1].contains("÷ sipp —"), "{}", lines[1]);
    }

    #[test]
    fn rows_survive_json_and_a_loss_means_not_kept_up() {
        let rows = vec![row("floor", 20, 0.3, 0.2), row("onhold-mio", 20, 0.4, 0.3)];
        let text = json(&rows);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let back: Vec<Row> = serde_json::from_value(v["rows"].clone()).unwrap();
        assert_eq!(back, rows);
        assert!(back[0].kept_up());
        let mut lossy = rows[1].clone();
        lossy.lost = 1;
        assert!(!lossy.kept_up());
        let mut skipping = rows[1].clone();
        skipping.skipped = 1;
        assert!(!skipping.kept_up());
        let mut refused = rows[1].clone();
        refused.up = 19;
        assert!(!refused.kept_up());
        let mut behind = rows[1].clone();
        behind.mean_gap_ms = Some(20.5);
        assert!(!behind.kept_up(), "streams behind real time");
        behind.mean_gap_ms = Some(20.1);
        assert!(behind.kept_up());
    }

    #[test]
    fn the_plot_has_a_line_per_sender_in_each_panel() {
        let rows = vec![
            row("floor", 100, 0.25, 0.1),
            row("floor", 1000, 0.2, 0.3),
            row("a<b", 100, 0.5, 0.2),
        ];
        let s = svg(&rows);
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert_eq!(s.matches("<polyline").count(), 4);
        assert_eq!(s.matches("<circle").count(), 6);
        assert!(s.contains("a&lt;b") && !s.contains(">a<b<"));
    }
}
