//! Judgements of what our core transmitted, read at its side of the wire (before link faults).
//!
//! Both checkers take a [`Trace`] and return [`Finding`]s; an empty list is a pass. They read
//! nothing but the trace, so tests build traces by hand to prove each rule fails when broken.

pub mod dialog;
pub mod pacing;

use std::fmt;
use std::time::Duration;

use onhold_probe::msg::{Message, Start};

use crate::engine::{Kind, Trace, Way, WirePacket};

/// Timer settings the verdicts hold the core to (RFC 3261 §17, RFC 3550 §6.2).
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub t1: Duration,
    pub t2: Duration,
    pub rtcp_interval: Duration,
    /// After a late wake-up the core sends the oldest overdue frame plus at most this many
    /// further ones at once, and skips the rest (`ServerConfig::max_catchup_frames`).
    pub max_catchup_frames: u32,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            rtcp_interval: Duration::from_secs(5),
            max_catchup_frames: 3,
        }
    }
}

/// One broken rule: which call, which packet or message, what was expected, what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub verdict: &'static str,
    pub call_id: String,
    pub at: Option<Duration>,
    pub subject: String,
    pub expected: String,
    pub got: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.at.map(fmt_time).unwrap_or_else(|| "   -   ".into());
        write!(
            f,
            "FAIL {} {at} [{}] {}: expected {}; got {}",
            self.verdict, self.call_id, self.subject, self.expected, self.got
        )
    }
}

/// `+1.234567` (seconds, microseconds).
pub fn fmt_time(d: Duration) -> String {
    format!("+{}.{:06}", d.as_secs(), d.subsec_micros())
}

/// A SIP message on the wire, parsed once.
pub struct SipAt<'a> {
    /// Position on the wire: orders events that share a virtual instant.
    pub idx: usize,
    pub at: Duration,
    pub way: Way,
    pub pkt: &'a WirePacket,
    pub msg: Message<'a>,
    /// `msg.call_id()` (empty when absent), looked up once: the verdicts match on it constantly.
    pub call_id: String,
}

pub fn sip_messages(trace: &Trace) -> Vec<SipAt<'_>> {
    trace
        .wire
        .iter()
        .enumerate()
        .filter(|(_, p)| p.kind == Kind::Sip)
        .filter_map(|(idx, p)| {
            Message::parse(&p.bytes).map(|msg| SipAt {
                idx,
                at: p.at,
                way: p.way,
                pkt: p,
                call_id: msg.call_id().unwrap_or_default().to_owned(),
                msg,
            })
        })
        .collect()
}

/// Short name of a message: `INVITE (CSeq 21)` or `200 OK (CSeq 21 INVITE)`.
pub fn label(m: &Message<'_>) -> String {
    let (n, method) = m.cseq().unwrap_or_default();
    match &m.start {
        Start::Request { method, .. } => format!("{method} (CSeq {n})"),
        Start::Response { code, reason } => {
            format!("{code} {reason} (CSeq {n} {method})")
        }
    }
}

/// Run every verdict.
pub fn judge(trace: &Trace, rules: &Rules) -> Vec<Finding> {
    let mut f = dialog::check(trace, rules);
    f.extend(pacing::check(trace, rules));
    f
}
