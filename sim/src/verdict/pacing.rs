//! Pacing verdict: per call, every RTP packet sits exactly on `start + k·ptime` of virtual time
//! (a skipped slot is allowed only when the core counted it as `Event::Late`), sequence numbers
//! are contiguous, the timestamp steps by the samples of the slots passed, the marker bit is set
//! on the first packet and on the first after each resume, one SSRC; no RTP before the ACK, while
//! on hold (our answer `inactive`) or after a BYE; RTP goes to the caller's SDP address, or from
//! the instant the core reports `Event::Latched` to the caller's RTP source, the first packet
//! there with the marker bit (a new receiver); RTCP sender reports come every 0.5–1.5 × the
//! interval (RFC 3550 §6.2, §6.3.1).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use onhold_core::Event;

use super::{fmt_time, sip_messages, Finding, Rules};
use crate::engine::{Kind, Trace, Way};
use crate::sdp::{Dir, Sdp};

fn finding(
    call_id: &str,
    at: Duration,
    subject: String,
    expected: impl Into<String>,
    got: impl Into<String>,
) -> Finding {
    Finding {
        verdict: "pacing",
        call_id: call_id.to_string(),
        at: Some(at),
        subject,
        expected: expected.into(),
        got: got.into(),
    }
}

/// Why sending is (not) allowed from a point in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    Ack,
    Resume,
    Hold,
    Bye,
}

/// One call's media as negotiated in SIP.
#[derive(Debug, Clone)]
struct Session {
    call_id: String,
    tag: String,
    port: u16,
    answered_at: Duration,
    ptime: u32,
    target: Option<SocketAddr>,
    /// Negotiated: do we send (our SDP direction sendonly/sendrecv and theirs lets us)?
    sending: bool,
    acked: bool,
    ended: bool,
    /// (wire position, time, what): positions order events that share an instant.
    gates: Vec<(usize, Duration, Gate)>,
}

/// What a call's media looked like, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSummary {
    pub call_id: String,
    pub local_port: u16,
    pub remote: Option<SocketAddr>,
    pub ptime_ms: u32,
    pub payload_type: Option<u8>,
    pub packets: u64,
    pub segments: u32,
    pub first: Option<Duration>,
    pub last: Option<Duration>,
    pub sender_reports: u32,
    pub late_skipped: u64,
}

fn sends(d: Dir) -> bool {
    matches!(d, Dir::SendOnly | Dir::SendRecv)
}

/// Media sessions from the SIP exchange, in order of our answers.
fn sessions(trace: &Trace) -> Vec<Session> {
    let msgs = sip_messages(trace);
    let mut out: Vec<Session> = Vec::new();
    // The caller's latest SDP per Call-ID and CSeq (offer in a request).
    let mut offers: BTreeMap<(String, u32), Sdp> = BTreeMap::new();
    for s in &msgs {
        let call_id = s.call_id.to_string();
        let (cseq, cmethod) = s.msg.cseq().unwrap_or_default();
        match (s.way, s.msg.method(), s.msg.code()) {
            (Way::In, Some("INVITE" | "UPDATE"), _) => {
                if let Some(sdp) = Sdp::of(&s.msg) {
                    offers.insert((call_id, cseq), sdp);
                }
            }
            (Way::Out, None, Some(code))
                if (200..300).contains(&code) && (cmethod == "INVITE" || cmethod == "UPDATE") =>
            {
                let Some(ours) = Sdp::of(&s.msg) else {
                    continue;
                };
                let tag = s.msg.to_tag().unwrap_or("").to_string();
                let theirs = offers.get(&(call_id.clone(), cseq));
                let idx = out
                    .iter()
                    .position(|x| x.call_id == call_id && x.tag == tag);
                let allowed = sends(ours.dir)
                    && theirs.is_none_or(|t| t.dir != Dir::SendOnly && t.dir != Dir::Inactive);
                match idx {
                    None if cmethod == "INVITE" => {
                        // Retransmitted 2xx: same session. A new one starts at its first 2xx.
                        let ptime = theirs.and_then(|t| t.ptime).or(ours.ptime).unwrap_or(20);
                        out.push(Session {
                            call_id,
                            tag,
                            port: ours.port,
                            answered_at: s.at,
                            ptime,
                            target: theirs.and_then(Sdp::rtp_target),
                            sending: allowed,
                            acked: false,
                            ended: false,
                            gates: Vec::new(),
                        });
                    }
                    Some(i) => {
                        let sess = &mut out[i];
                        if sess.ended || theirs.is_none() {
                            continue;
                        }
                        if let Some(t) = theirs.and_then(Sdp::rtp_target) {
                            sess.target = Some(t);
                        }
                        if sess.acked && sess.sending != allowed {
                            sess.gates.push((
                                s.idx,
                                s.at,
                                if allowed { Gate::Resume } else { Gate::Hold },
                            ));
                        }
                        sess.sending = allowed;
                    }
                    None => {}
                }
            }
            (Way::In, Some("ACK"), _) => {
                let tag = s.msg.to_tag().unwrap_or("");
                let answer = Sdp::of(&s.msg);
                if let Some(sess) = out
                    .iter_mut()
                    .find(|x| x.call_id == call_id && x.tag == tag)
                {
                    if let Some(a) = &answer {
                        // Late offer: the answer rides in the ACK.
                        if let Some(t) = a.rtp_target() {
                            sess.target = Some(t);
                        }
                        if let Some(p) = a.ptime {
                            sess.ptime = p;
                        }
                        sess.sending =
                            sess.sending && a.dir != Dir::SendOnly && a.dir != Dir::Inactive;
                    }
                    if !sess.acked && !sess.ended {
                        sess.acked = true;
                        if sess.sending {
                            sess.gates.push((s.idx, s.at, Gate::Ack));
                        }
                    }
                }
            }
            (_, Some("BYE"), _) => {
                for sess in out.iter_mut().filter(|x| x.call_id == call_id && !x.ended) {
                    let ours = s.way == Way::Out && s.msg.from_tag() == Some(sess.tag.as_str());
                    let theirs = s.way == Way::In && s.msg.to_tag() == Some(sess.tag.as_str());
                    if ours || theirs {
                        sess.ended = true;
                        sess.gates.push((s.idx, s.at, Gate::Bye));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

struct Rtp {
    marker: bool,
    pt: u8,
    seq: u16,
    ts: u32,
    ssrc: u32,
}

fn rtp_header(b: &[u8]) -> Option<Rtp> {
    if b.len() < 12 || b[0] >> 6 != 2 {
        return None;
    }
    Some(Rtp {
        marker: b[1] & 0x80 != 0,
        pt: b[1] & 0x7f,
        seq: u16::from_be_bytes([b[2], b[3]]),
        ts: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
    })
}

/// Does an RTCP compound packet carry a BYE (PT 203)?
fn rtcp_has_bye(mut b: &[u8]) -> bool {
    while b.len() >= 4 {
        if b[1] == 203 {
            return true;
        }
        let len = (u16::from_be_bytes([b[2], b[3]]) as usize + 1) * 4;
        b = b.get(len..).unwrap_or(&[]);
    }
    false
}

pub fn check(trace: &Trace, rules: &Rules) -> Vec<Finding> {
    check_with_summary(trace, rules).0
}

pub fn check_with_summary(trace: &Trace, rules: &Rules) -> (Vec<Finding>, Vec<MediaSummary>) {
    let sessions = sessions(trace);
    let mut out = Vec::new();
    let mut summaries = Vec::new();
    // Late counts per local RTP port: Call-IDs may be shared by several dialogs (forked or
    // repeated INVITEs), ports are not.
    let mut late: BTreeMap<u16, u64> = BTreeMap::new();
    let mut handle_port: BTreeMap<u64, u16> = BTreeMap::new();
    // (local RTP port, when, the address the stream follows from then on).
    let mut latches: Vec<(u16, Duration, SocketAddr)> = Vec::new();
    for (at, ev) in &trace.events {
        match ev {
            Event::Latched {
                call, remote_rtp, ..
            } => {
                if let Some(port) = handle_port.get(&call.0) {
                    latches.push((*port, *at, *remote_rtp));
                }
            }
            Event::CallStarted {
                call, local_rtp, ..
            } => {
                handle_port.insert(call.0, local_rtp.port());
            }
            Event::Late { call, skipped } => {
                if let Some(port) = handle_port.get(&call.0) {
                    *late.entry(*port).or_default() += *skipped as u64;
                }
            }
            _ => {}
        }
    }
    // Which session a packet from a local port belongs to: the latest answered before it.
    let session_of = |port: u16, at: Duration| {
        sessions
            .iter()
            .enumerate()
            .filter(|(_, s)| s.port == port && s.answered_at <= at)
            .map(|(i, _)| i)
            .next_back()
    };
    let mut per_session: Vec<Vec<usize>> = vec![Vec::new(); sessions.len()];
    let mut rtcp_per_session: Vec<Vec<usize>> = vec![Vec::new(); sessions.len()];
    for (i, p) in trace.wire.iter().enumerate() {
        if p.way != Way::Out {
            continue;
        }
        match p.kind {
            Kind::Rtp => match session_of(p.local.port(), p.at) {
                Some(s) => per_session[s].push(i),
                None => out.push(finding(
                    "?",
                    p.at,
                    format!("RTP from {} to {}", p.local, p.remote),
                    "RTP only on a port our SDP announced",
                    "a port no 2xx of ours named",
                )),
            },
            Kind::Rtcp => {
                let port = p.local.port();
                if let Some(s) =
                    session_of(port, p.at).or_else(|| session_of(port.wrapping_sub(1), p.at))
                {
                    rtcp_per_session[s].push(i);
                }
            }
            Kind::Sip => {}
        }
    }
    for (si, sess) in sessions.iter().enumerate() {
        let call = sess.call_id.as_str();
        let samples = sess.ptime * 8;
        let ptime = Duration::from_millis(sess.ptime as u64);
        let gate_at = |i: usize| {
            sess.gates
                .iter()
                .rfind(|(g, _, _)| *g < i)
                .map(|&(_, _, g)| g)
        };
        let segment_of = |i: usize| {
            sess.gates
                .iter()
                .filter(|(g, _, k)| *g < i && matches!(k, Gate::Ack | Gate::Resume))
                .count()
        };
        let mut summary = MediaSummary {
            call_id: sess.call_id.clone(),
            local_port: sess.port,
            remote: sess.target,
            ptime_ms: sess.ptime,
            payload_type: None,
            packets: 0,
            segments: 0,
            first: None,
            last: None,
            sender_reports: 0,
            late_skipped: late.get(&sess.port).copied().unwrap_or(0),
        };
        let mut prev: Option<(Duration, Rtp, usize, Duration, u64)> = None; // at, hdr, segment, seg start, slot
        let mut ssrc = None;
        let mut skipped = 0u64;
        let mut burst: Option<(Duration, u32)> = None;
        let mut failed = false;
        // Where RTP goes at a time: the latest latch of this session's port by then (at equal
        // times the caller's packet is delivered before the core's timers fire), else the SDP's.
        let latched_at = |at: Duration| {
            latches
                .iter()
                .filter(|(port, t, _)| *port == sess.port && *t >= sess.answered_at && *t <= at)
                .map(|&(_, _, a)| a)
                .next_back()
        };
        let mut prev_dest: Option<SocketAddr> = None;
        for &i in &per_session[si] {
            let p = &trace.wire[i];
            let Some(h) = rtp_header(&p.bytes) else {
                out.push(finding(
                    call,
                    p.at,
                    format!("RTP to {}", p.remote),
                    "an RTP v2 header",
                    format!("{} bytes that are not RTP", p.bytes.len()),
                ));
                continue;
            };
            let what = format!("RTP seq {} ts {}", h.seq, h.ts);
            summary.packets += 1;
            summary.first.get_or_insert(p.at);
            summary.last = Some(p.at);
            summary.payload_type.get_or_insert(h.pt);
            if failed {
                continue; // one finding per rule break, not one per packet after it
            }
            match gate_at(i) {
                Some(Gate::Ack) | Some(Gate::Resume) => {}
                g => {
                    let why = match g {
                        None => "before the ACK of our 2xx arrived",
                        Some(Gate::Hold) => "while on hold (our answer was inactive)",
                        _ => "after the BYE",
                    };
                    out.push(finding(call, p.at, what, "no RTP", format!("RTP {why}")));
                    failed = true;
                    continue;
                }
            }
            let latched = latched_at(p.at);
            if let Some(t) = latched.or(sess.target) {
                if p.remote != t {
                    let whose = if latched.is_some() {
                        "the caller's RTP source (latched)"
                    } else {
                        "the SDP address"
                    };
                    out.push(finding(
                        call,
                        p.at,
                        what.clone(),
                        format!("RTP to {whose} {t}"),
                        format!("to {}", p.remote),
                    ));
                    failed = true;
                    continue;
                }
            }
            // A receiver's first packet carries the marker: the stream's first, the first after
            // a resume, and the first to an address latched onto.
            let new_receiver = latched.is_some() && prev_dest.is_some_and(|d| d != p.remote);
            prev_dest = Some(p.remote);
            if *ssrc.get_or_insert(h.ssrc) != h.ssrc {
                out.push(finding(
                    call,
                    p.at,
                    what,
                    format!("SSRC {:#010x} all call long", ssrc.unwrap_or(0)),
                    format!("SSRC {:#010x}", h.ssrc),
                ));
                failed = true;
                continue;
            }
            let seg = segment_of(i);
            let new_segment = prev.as_ref().is_none_or(|x| x.2 != seg);
            if new_segment {
                summary.segments += 1;
            }
            if let Some((_, ph, _, _, _)) = &prev {
                if h.seq != ph.seq.wrapping_add(1) {
                    out.push(finding(
                        call,
                        p.at,
                        what,
                        format!("seq {}", ph.seq.wrapping_add(1)),
                        format!("seq {} (a gap or reorder)", h.seq),
                    ));
                    failed = true;
                    continue;
                }
            }
            if h.marker != (new_segment || new_receiver) {
                let exp = if new_segment || new_receiver {
                    "the marker bit set (first packet, first after a resume, or first to a \
                     latched address)"
                } else {
                    "the marker bit clear"
                };
                out.push(finding(
                    call,
                    p.at,
                    what,
                    exp,
                    if h.marker {
                        "marker set"
                    } else {
                        "marker clear"
                    },
                ));
                failed = true;
                continue;
            }
            let (seg_start, slot) = if new_segment {
                (p.at, 0)
            } else {
                let (_, ph, _, start, pslot) = prev.as_ref().expect("not a new segment");
                let since = p.at - *start;
                let exact = since.as_nanos() % ptime.as_nanos() == 0;
                let time_slot = (since.as_nanos() / ptime.as_nanos()) as u64;
                // After a runtime stall (a late wake-up) the core may send the frames that fell
                // due at once (bounded catch-up): such a packet's slot comes from its timestamp,
                // and it must go out between its due time and the wake-up.
                let ts_step = h.ts.wrapping_sub(ph.ts);
                let caught_up = (ts_step % samples == 0 && ts_step >= samples)
                    .then(|| *pslot + (ts_step / samples) as u64)
                    .filter(|slot| {
                        let due = *start + ptime * *slot as u32;
                        p.at > due && trace.stalls.iter().any(|&(a, b)| a <= due && p.at <= b)
                    });
                let slot = match caught_up {
                    Some(slot) => {
                        burst = match burst {
                            Some((at, n)) if at == p.at => Some((at, n + 1)),
                            _ => Some((p.at, 1)),
                        };
                        let limit = rules.max_catchup_frames + 1;
                        if burst.is_some_and(|(_, n)| n > limit) {
                            out.push(finding(
                                call,
                                p.at,
                                what,
                                format!("at most {limit} overdue frames sent at one wake-up (bounded catch-up; older ones skipped)"),
                                format!("{} overdue frames at {}", limit + 1, fmt_time(p.at)),
                            ));
                            failed = true;
                            continue;
                        }
                        slot
                    }
                    None if !exact || time_slot <= *pslot => {
                        let due = *start + ptime * (*pslot as u32 + 1);
                        let how = if p.at > due {
                            format!("late by {:?}", p.at - due)
                        } else {
                            format!("early by {:?}", due - p.at)
                        };
                        out.push(finding(
                            call,
                            p.at,
                            what,
                            format!(
                                "at {} (slot {} of the {} ms grid from {})",
                                fmt_time(due),
                                pslot + 1,
                                sess.ptime,
                                fmt_time(*start)
                            ),
                            format!("at {} ({how})", fmt_time(p.at)),
                        ));
                        failed = true;
                        continue;
                    }
                    None => time_slot,
                };
                skipped += slot - pslot - 1;
                let want_ts = ph.ts.wrapping_add(samples * (slot - pslot) as u32);
                if h.ts != want_ts {
                    out.push(finding(
                        call,
                        p.at,
                        what,
                        format!(
                            "timestamp {want_ts} ({} samples per {} ms slot)",
                            samples, sess.ptime
                        ),
                        format!("timestamp {} (step {})", h.ts, h.ts.wrapping_sub(ph.ts)),
                    ));
                    failed = true;
                    continue;
                }
                (*start, slot)
            };
            if p.bytes.len() > 12
                && matches!(h.pt, 0 | 8 | 9)
                && p.bytes.len() - 12 != samples as usize
            {
                out.push(finding(
                    call,
                    p.at,
                    what,
                    format!("{} payload bytes ({} ms of 8000 Hz)", samples, sess.ptime),
                    format!("{} bytes", p.bytes.len() - 12),
                ));
                failed = true;
                continue;
            }
            prev = Some((p.at, h, seg, seg_start, slot));
        }
        if skipped > summary.late_skipped {
            out.push(finding(
                call,
                summary.last.unwrap_or_default(),
                "RTP stream".into(),
                format!(
                    "no skipped slots beyond the {} counted as Late",
                    summary.late_skipped
                ),
                format!("{skipped} slots skipped"),
            ));
        }
        // RTCP sender reports.
        let mut last_sr: Option<Duration> = None;
        let mut sr_times: Vec<Duration> = Vec::new();
        for &i in &rtcp_per_session[si] {
            let p = &trace.wire[i];
            let b = &p.bytes;
            if b.len() < 8 || b[0] >> 6 != 2 {
                out.push(finding(
                    call,
                    p.at,
                    "RTCP".into(),
                    "an RTCP v2 packet",
                    format!("{} bytes that are not RTCP", b.len()),
                ));
                continue;
            }
            if b[1] != 200 {
                continue; // BYE or RR-only compound at the end of the call
            }
            if rtcp_has_bye(b) {
                continue; // the SR riding with the BYE goes when the call ends, off cadence
            }
            summary.sender_reports += 1;
            let sr_ssrc = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
            if ssrc.is_some_and(|s| s != sr_ssrc) {
                out.push(finding(
                    call,
                    p.at,
                    "RTCP SR".into(),
                    format!("SSRC {:#010x} of the RTP stream", ssrc.unwrap_or(0)),
                    format!("SSRC {sr_ssrc:#010x}"),
                ));
            }
            if let Some(prev) = last_sr {
                let gap = p.at - prev;
                let quiet = sess.gates.iter().any(|(_, g, k)| {
                    *g > prev && *g <= p.at && matches!(k, Gate::Hold | Gate::Resume)
                });
                let (lo, hi) = (rules.rtcp_interval / 2, rules.rtcp_interval * 3 / 2);
                // A runtime stall may hold back the report that fell due while it slept.
                let stalled = trace
                    .stalls
                    .iter()
                    .any(|&(a, b)| a <= prev + hi && p.at <= b);
                if !quiet && (gap < lo || (gap > hi && !stalled)) {
                    out.push(finding(
                        call,
                        p.at,
                        "RTCP SR".into(),
                        format!("{:?}–{:?} after the previous SR (RFC 3550 §6.3.1)", lo, hi),
                        format!("{gap:?}"),
                    ));
                }
            }
            last_sr = Some(p.at);
            sr_times.push(p.at);
        }
        // Each stretch of sending (from the ACK or a resume to a hold or BYE) that lasts longer
        // than 1.5 intervals must carry a sender report within its first 1.5 intervals.
        let limit = rules.rtcp_interval * 3 / 2;
        let mut spans: Vec<(usize, Duration, Duration)> = Vec::new();
        for &i in &per_session[si] {
            let (seg, at) = (segment_of(i), trace.wire[i].at);
            match spans.last_mut() {
                Some(last) if last.0 == seg => last.2 = at,
                _ => spans.push((seg, at, at)),
            }
        }
        for &(_, first, last) in &spans {
            // … or by the end of a runtime stall that covered that deadline.
            let deadline = sr_times.iter().any(|t| *t >= first && *t <= first + limit)
                || trace.stalls.iter().any(|&(a, b)| {
                    a <= first + limit
                        && first + limit <= b
                        && sr_times.iter().any(|t| *t >= first && *t <= b)
                });
            let covered = deadline;
            if last - first > limit + ptime && !covered {
                out.push(finding(
                    call,
                    first + limit,
                    "RTCP".into(),
                    format!(
                        "a sender report within {limit:?} of media starting at {}",
                        fmt_time(first)
                    ),
                    "none",
                ));
            }
        }
        summaries.push(summary);
    }
    (out, summaries)
}
