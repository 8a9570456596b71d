//! The invariants: what must hold of everything the server sends, of its tables and of its
//! counters, whatever it was fed.
//!
//! The [`Checker`] sees every event, every transmit and the occupancy after every input; the
//! first violation an input causes is kept for the driver.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use onhold_core::server::Occupancy;
use onhold_core::{
    sip, CallHandle, Event, ServerConfig, Stats, Transmit, TransmitKind, Transport, MAX_DATAGRAM,
};

/// Slack over `limits.transaction_bytes`: the cap is checked before a transaction opens, and
/// the transaction then keeps up to one datagram's key and response.
const TRANSACTION_BYTES_SLACK: usize = 3 * 65_536;

/// How long an INVITE keeps its source in the per-source rate table at most: a full bucket
/// (burst 100 at 20/s) refills in 5 s.
const RATE_MEMORY: Duration = Duration::from_secs(10);

/// A call's media, as far as the checker needs it: the scopes its stream may go to.
#[derive(Clone, Debug)]
struct CallMedia {
    /// The SIP sources that set the call's media (its INVITE, and each request that changed
    /// the media): a loopback or link-local media address is allowed when one of them was in
    /// that scope too.
    sources: Vec<IpAddr>,
    /// Where its RTP goes now (RTCP goes to the same address unless the SDP said otherwise).
    rtp: SocketAddr,
}

/// A violated invariant: which one, and what was seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The invariant (`panic` for a panic): what tells two failures apart.
    pub kind: String,
    pub detail: String,
}

/// What the checker saw, for the report.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// Status codes of every response the server sent, with their counts.
    pub codes: BTreeMap<u16, u64>,
    /// Every kind of SIP message the server sent: a status code or a request method.
    pub kinds: BTreeSet<String>,
    pub rtp: u64,
    pub rtcp: u64,
    pub sip: u64,
    pub calls_started: u64,
    pub calls_ended: u64,
    /// The largest value of each table over the run.
    pub max: Occupancy,
}

#[derive(Debug)]
pub struct Checker {
    config: ServerConfig,
    pub seen: Seen,
    /// By local RTP port: the scopes of the call last started on it (kept after the call ends:
    /// an RTCP BYE may follow its `CallEnded`).
    media: BTreeMap<u16, CallMedia>,
    /// Live calls and their RTP port.
    ports: BTreeMap<CallHandle, u16>,
    /// The input being handled: its source, and whether it must leave every dialog as it is.
    source: Option<IpAddr>,
    hostile: bool,
    /// When recent INVITEs arrived (bounds the per-source rate table).
    invites: VecDeque<Instant>,
    stats: Stats,
    pub violation: Option<Violation>,
    /// Calls started and ended since the fuzzer last looked: (handle, Call-ID).
    pub started: Vec<(CallHandle, String)>,
    pub ended: Vec<CallHandle>,
}

impl Checker {
    pub fn new(config: &ServerConfig) -> Checker {
        Checker {
            config: config.clone(),
            seen: Seen::default(),
            media: BTreeMap::new(),
            ports: BTreeMap::new(),
            source: None,
            hostile: false,
            invites: VecDeque::new(),
            stats: Stats::default(),
            violation: None,
            started: Vec::new(),
            ended: Vec::new(),
        }
    }

    /// Keep the first violation: `kind` names the invariant (the same for every input that
    /// breaks it the same way), `detail` what was seen.
    pub fn fail(&mut self, kind: impl Into<String>, detail: String) {
        if self.violation.is_none() {
            let kind = kind.into();
            let detail = format!("{kind}: {detail}");
            self.violation = Some(Violation { kind, detail });
        }
    }

    /// A datagram from `source` is about to be handled; `hostile`: it carries wrong tags or
    /// comes from outside its dialog's peer, so it must not start, move or end any call.
    pub fn begin_datagram(&mut self, now: Instant, source: IpAddr, hostile: bool, data: &[u8]) {
        self.source = Some(source);
        self.hostile = hostile;
        if data.starts_with(b"INVITE") {
            self.invites.push_back(now);
        }
        while self
            .invites
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) > RATE_MEMORY)
        {
            self.invites.pop_front();
        }
    }

    /// The datagram and everything it caused at its instant have been drained.
    pub fn end_datagram(&mut self) {
        self.source = None;
        self.hostile = false;
    }

    pub fn event(&mut self, ev: &Event) {
        match ev {
            Event::CallStarted {
                call,
                call_id,
                remote_sip,
                remote_rtp,
                local_rtp,
                ..
            } => {
                self.seen.calls_started += 1;
                if self.hostile {
                    self.fail(
                        "a hostile request started a call",
                        format!("call {call} ({call_id})"),
                    );
                }
                let mut sources = vec![remote_sip.ip()];
                sources.extend(self.source.filter(|s| *s != remote_sip.ip()));
                self.check_media_address("CallStarted", *call, *remote_rtp, &sources);
                let media = CallMedia {
                    sources,
                    rtp: *remote_rtp,
                };
                self.media.insert(local_rtp.port(), media);
                self.ports.insert(*call, local_rtp.port());
                self.started.push((*call, call_id.clone()));
            }
            Event::MediaChanged {
                call, remote_rtp, ..
            } => {
                if self.hostile {
                    self.fail(
                        "a hostile request changed a call's media",
                        format!("call {call} now sends to {remote_rtp}"),
                    );
                }
                let Some(&port) = self.ports.get(call) else {
                    return self.fail(
                        "MediaChanged for a call that is not up",
                        format!("call {call}"),
                    );
                };
                let mut sources = self
                    .media
                    .get(&port)
                    .map(|m| m.sources.clone())
                    .unwrap_or_default();
                if let Some(s) = self.source {
                    if !sources.contains(&s) {
                        sources.push(s);
                    }
                }
                self.check_media_address("MediaChanged", *call, *remote_rtp, &sources);
                let media = CallMedia {
                    sources,
                    rtp: *remote_rtp,
                };
                self.media.insert(port, media);
            }
            Event::CallEnded { call, reason, .. } => {
                self.seen.calls_ended += 1;
                if self.hostile && self.ports.contains_key(call) {
                    self.fail(
                        "a hostile request ended a call",
                        format!("call {call} ({reason:?})"),
                    );
                }
                self.ports.remove(call);
                self.ended.push(*call);
            }
            _ => {}
        }
    }

    /// A media address the server agreed to: unicast, and in the scope of one of the sources
    /// that set it (0.0.0.0 is hold: nothing is sent).
    fn check_media_address(
        &mut self,
        what: &str,
        call: CallHandle,
        rtp: SocketAddr,
        sources: &[IpAddr],
    ) {
        if canonical(rtp.ip()).is_unspecified() {
            return;
        }
        if let Some(why) = refusal_for_all(rtp.ip(), sources) {
            self.fail(
                format!("media address refused by policy ({why})"),
                format!("{what} for call {call} names {rtp}; its SIP came from {sources:?}"),
            );
        }
    }

    pub fn transmit(&mut self, t: &Transmit, bytes: &[u8]) {
        if t.len > MAX_DATAGRAM {
            return self.fail(
                "datagram over MAX_DATAGRAM",
                format!(
                    "{:?} of {} bytes to {} (MAX_DATAGRAM {MAX_DATAGRAM})",
                    t.kind, t.len, t.remote
                ),
            );
        }
        match t.kind {
            TransmitKind::Sip => self.sip(t, bytes),
            TransmitKind::Rtp | TransmitKind::Rtcp => self.media_packet(t),
        }
    }

    fn sip(&mut self, t: &Transmit, bytes: &[u8]) {
        self.seen.sip += 1;
        // The pong to a CRLF CRLF keep-alive on a stream (RFC 5626 §4.4.1).
        if t.transport == Transport::Tcp && bytes == b"\r\n" {
            return;
        }
        let kind = match sip_kind(bytes) {
            Kind::Status(code) => code.to_string(),
            Kind::Method(m) => m,
        };
        if bytes.len() == MAX_DATAGRAM {
            // The server keeps what it writes well under a datagram; a message that fills the
            // buffer was cut to it.
            let head = String::from_utf8_lossy(&bytes[..400]).into_owned();
            return self.fail(
                format!("SIP cut at MAX_DATAGRAM ({kind})"),
                format!("to {}:\n{head}", t.remote),
            );
        }
        if let Err(why) = sip_well_formed(bytes) {
            let head = String::from_utf8_lossy(&bytes[..bytes.len().min(400)]).into_owned();
            return self.fail(
                format!(
                    "malformed SIP sent ({})",
                    why.split(':').next().unwrap_or("")
                ),
                format!("to {}: {why}\n{head}", t.remote),
            );
        }
        if let Kind::Status(code) = sip_kind(bytes) {
            *self.seen.codes.entry(code).or_default() += 1;
        }
        if !self.seen.kinds.contains(&kind) {
            self.seen.kinds.insert(kind);
        }
    }

    fn media_packet(&mut self, t: &Transmit) {
        match t.kind {
            TransmitKind::Rtcp => self.seen.rtcp += 1,
            _ => self.seen.rtp += 1,
        }
        let port = t.local.port();
        // RTCP goes from the RTP port, or the odd one above it without rtcp-mux.
        let call = match self.media.get(&port) {
            Some(m) => m,
            None => match self.media.get(&port.wrapping_sub(1)) {
                Some(m) if t.kind == TransmitKind::Rtcp && port % 2 == 1 => m,
                _ => {
                    return self.fail(
                        "media from a port no call started on",
                        format!("{:?} from {} to {}", t.kind, t.local, t.remote),
                    )
                }
            },
        };
        let dest = t.remote.ip();
        let why = if canonical(dest).is_unspecified() {
            Some("unspecified")
        } else {
            refusal_for_all(dest, &call.sources)
        };
        if let Some(why) = why {
            let sources = call.sources.clone();
            // RTCP to an address of its own: an `a=rtcp` attribute (RFC 3605) named it.
            let what = match t.kind {
                TransmitKind::Rtcp if canonical(dest) != canonical(call.rtp.ip()) => {
                    "RTCP to a forbidden address apart from the RTP one"
                }
                TransmitKind::Rtcp => "RTCP to a forbidden address",
                _ => "RTP to a forbidden address",
            };
            let rtp = call.rtp;
            self.fail(
                format!("{what} ({why})"),
                format!(
                    "to {} (RTP to {rtp}); the call's SIP came from {sources:?}",
                    t.remote
                ),
            );
        }
    }

    /// After an input is handled and drained: every table within its cap.
    pub fn occupancy(&mut self, o: &Occupancy) {
        let m = &mut self.seen.max;
        m.server_transactions = m.server_transactions.max(o.server_transactions);
        m.client_transactions = m.client_transactions.max(o.client_transactions);
        m.transaction_bytes = m.transaction_bytes.max(o.transaction_bytes);
        m.transaction_sources = m.transaction_sources.max(o.transaction_sources);
        m.calls = m.calls.max(o.calls);
        m.call_sources = m.call_sources.max(o.call_sources);
        m.queued = m.queued.max(o.queued);
        let limits = &self.config.limits;
        let source_cap = 2 * (1024 + self.config.max_calls + self.invites.len());
        let broken = [
            (
                o.server_transactions > limits.transactions,
                "server transactions",
                o.server_transactions,
                limits.transactions,
            ),
            (
                o.transaction_bytes
                    > limits
                        .transaction_bytes
                        .saturating_add(TRANSACTION_BYTES_SLACK),
                "transaction bytes",
                o.transaction_bytes,
                limits
                    .transaction_bytes
                    .saturating_add(TRANSACTION_BYTES_SLACK),
            ),
            (
                o.transaction_sources > o.server_transactions,
                "transaction sources (more than transactions)",
                o.transaction_sources,
                o.server_transactions,
            ),
            (
                o.calls > self.config.max_calls,
                "calls",
                o.calls,
                self.config.max_calls,
            ),
            (
                o.call_sources > source_cap,
                "call sources",
                o.call_sources,
                source_cap,
            ),
            (o.queued > 0, "datagrams queued after draining", o.queued, 0),
        ];
        if let Some((_, what, n, cap)) = broken.into_iter().find(|b| b.0) {
            self.fail(
                format!("table over its cap ({what})"),
                format!("{n} over the bound {cap} ({o:?})"),
            );
        }
    }

    /// Counters never go down; `calls_active`, a gauge, is the number of calls held.
    pub fn stats(&mut self, now: &Stats, calls: usize) {
        let was = &self.stats;
        let pairs = [
            ("calls_total", was.calls_total, now.calls_total),
            ("sip_in", was.sip_in, now.sip_in),
            ("sip_out", was.sip_out, now.sip_out),
            ("rtp_out", was.rtp_out, now.rtp_out),
            ("rtcp_out", was.rtcp_out, now.rtcp_out),
            ("rtp_in", was.rtp_in, now.rtp_in),
            ("dropped", was.dropped, now.dropped),
            (
                "late_skipped_frames",
                was.late_skipped_frames,
                now.late_skipped_frames,
            ),
            (
                "foreign_in_dialog",
                was.foreign_in_dialog,
                now.foreign_in_dialog,
            ),
            ("media_refused", was.media_refused, now.media_refused),
            ("media_moved", was.media_moved, now.media_moved),
            ("refused_full", was.refused_full, now.refused_full),
            ("denied", was.denied, now.denied),
            ("oversized", was.oversized, now.oversized),
            ("refused_rate", was.refused_rate, now.refused_rate),
            (
                "refused_source_calls",
                was.refused_source_calls,
                now.refused_source_calls,
            ),
            (
                "refused_transactions",
                was.refused_transactions,
                now.refused_transactions,
            ),
            (
                "refused_overload",
                was.refused_overload,
                now.refused_overload,
            ),
            ("bad_requests", was.bad_requests, now.bad_requests),
            ("rtp_octets_out", was.rtp_octets_out, now.rtp_octets_out),
        ];
        if let Some((name, a, b)) = pairs.into_iter().find(|p| p.2 < p.1) {
            self.fail(
                format!("counter went down (Stats::{name})"),
                format!("from {a} to {b}"),
            );
        }
        if now.calls_active != calls {
            self.fail(
                "Stats::calls_active is not the calls held",
                format!("{} but the server holds {calls} calls", now.calls_active),
            );
        }
        self.stats = now.clone();
    }
}

enum Kind {
    Status(u16),
    Method(String),
}

fn sip_kind(bytes: &[u8]) -> Kind {
    if let Some(code) = bytes
        .strip_prefix(b"SIP/2.0 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| std::str::from_utf8(c).ok())
        .and_then(|c| c.parse().ok())
    {
        return Kind::Status(code);
    }
    let end = bytes.iter().position(|&b| b == b' ').unwrap_or(0);
    Kind::Method(String::from_utf8_lossy(&bytes[..end]).into_owned())
}

/// A SIP message we send: a status line or a request line, parseable, and a Content-Length
/// equal to the bytes after the empty line.
pub fn sip_well_formed(bytes: &[u8]) -> Result<(), String> {
    let status = bytes.starts_with(b"SIP/2.0 ");
    let method_len = bytes.iter().take_while(|b| b.is_ascii_uppercase()).count();
    if !status && (method_len == 0 || bytes.get(method_len) != Some(&b' ')) {
        return Err("starts with neither `SIP/2.0 ` nor a method".into());
    }
    let msg = sip::parse(bytes).map_err(|e| format!("does not parse: {e}"))?;
    let Some(head_end) = super::msg::find(bytes, b"\r\n\r\n") else {
        return Err("no empty line after the headers".into());
    };
    let body = bytes.len() - head_end - 4;
    match msg.content_length() {
        Ok(Some(n)) if n as usize == body => Ok(()),
        Ok(Some(n)) => Err(format!("Content-Length {n} but a body of {body} bytes")),
        Ok(None) => Err("no Content-Length".into()),
        Err(e) => Err(format!("bad Content-Length: {}", e.reason)),
    }
}

/// Why no source in `sources` may aim a stream at `media`, or `None` if one may.
fn refusal_for_all(media: IpAddr, sources: &[IpAddr]) -> Option<&'static str> {
    let mut why = Some("no SIP source");
    for s in sources {
        why = media_refusal(media, *s);
        if why.is_none() {
            break;
        }
    }
    why
}

/// The shipped media-address rule (`core/src/server/policy.rs`), restated: a stream goes only to
/// a unicast address that reaches a host, and to loopback or link-local only when the SIP came
/// from that scope (or, for link-local, from loopback).
pub fn media_refusal(media: IpAddr, sip_source: IpAddr) -> Option<&'static str> {
    let media = canonical(media);
    let source = canonical(sip_source);
    if media.is_unspecified() {
        return None;
    }
    if media.is_multicast() {
        return Some("multicast");
    }
    if let IpAddr::V4(v4) = media {
        if v4.is_broadcast() {
            return Some("broadcast");
        }
        if v4.octets()[0] == 0 || v4.octets()[0] >= 240 {
            return Some("reserved");
        }
    }
    if media.is_loopback() && !source.is_loopback() {
        return Some("loopback, the call is not");
    }
    if link_local(media) && !(link_local(source) || source.is_loopback()) {
        return Some("link-local, the call is not");
    }
    None
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(media: &str, source: &str) -> bool {
        media_refusal(media.parse().unwrap(), source.parse().unwrap()).is_some()
    }

    #[test]
    fn the_media_rule_matches_the_shipped_one() {
        let far = "192.168.1.50";
        for bad in [
            "255.255.255.255",
            "224.0.0.1",
            "239.1.2.3",
            "ff02::1",
            "127.0.0.1",
            "::1",
            "::ffff:127.0.0.1",
            "169.254.1.1",
            "fe80::1",
            "0.1.2.3",
            "250.0.0.1",
        ] {
            assert!(refused(bad, far), "{bad}");
        }
        for ok in ["192.168.1.50", "10.0.0.1", "203.0.113.9", "0.0.0.0", "::"] {
            assert!(!refused(ok, far), "{ok}");
        }
        assert!(!refused("127.0.0.2", "127.0.0.1"));
        assert!(!refused("169.254.0.9", "127.0.0.1"));
        assert!(!refused("169.254.0.9", "169.254.3.3"));
        assert!(refused("127.0.0.1", "169.254.3.3"));
    }

    #[test]
    fn sent_sip_must_frame_its_body() {
        let ok = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 2\r\n\r\nab";
        assert_eq!(sip_well_formed(ok), Ok(()));
        let mut long = ok.to_vec();
        long.push(b'c');
        assert!(sip_well_formed(&long).is_err());
        assert!(sip_well_formed(b"hello").is_err());
    }
}
