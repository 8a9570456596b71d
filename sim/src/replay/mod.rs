//! The caller side of a capture, replayed against our core.
//!
//! The caller is the address that sends the first INVITE. Its SIP requests are played at their
//! captured times, rewritten to the dialog our core built (To-tag, Request-URI from our Contact,
//! Route from our Record-Route). Its captured responses are dropped: instead it answers what
//! our core actually asks (BYE, OPTIONS, …) with 200, like a phone would. Where the core's
//! answer differs from the original callee's, the caller does what a real UA would do and notes
//! why: a 2xx to an INVITE the original callee challenged is ACKed at once and the retry is not
//! sent; a CANCEL that comes after our 2xx becomes ACK + BYE (RFC 3261 §9.1, §15).
//! Like a real UAC it retransmits its requests on the RFC 3261 §17.1 timers over a lossy link.
//!
//! Beyond the capture's SIP, a [`CallerPlan`] has it send RTP (from any address, for a stretch of
//! virtual time, to the media address our core answered with) and vanish: a phone behind a NAT,
//! a forger, a phone that goes quiet or is unplugged.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

mod rewrite;

use onhold_probe::msg::{uri_addr, Message};

use crate::pcap::Datagram;
use crate::sdp::Sdp;
use rewrite::{answer_to, build_ack, replace_branch, uri_of_request};
pub use rewrite::{rewrite_in_dialog, with_tag};

const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);
/// The caller's packet interval: 20 ms of 8 kHz audio per packet.
const RTP_PTIME: Duration = Duration::from_millis(20);
const RTP_SAMPLES: u32 = 160;

/// An RTP stream the caller sends: a packet of `payload_type` every 20 ms from `from`, at
/// `start`, `start` + 20 ms, … while before `stop` (virtual time), to the media address in our
/// core's latest 2xx to an INVITE. Packets fall due before that 2xx are not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpStream {
    pub from: SocketAddr,
    pub start: Duration,
    pub stop: Duration,
    pub payload_type: u8,
}

/// What the caller does besides replaying its capture's SIP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallerPlan {
    pub rtp: Vec<RtpStream>,
    /// From this time on the caller sends nothing and answers nothing, as an unplugged phone.
    pub gone_at: Option<Duration>,
}

/// A stream's progress: its next packet's time and sequence number.
#[derive(Debug, Clone)]
struct Stream {
    plan: RtpStream,
    next: Duration,
    seq: u16,
}

impl Stream {
    fn due(&self) -> Option<Duration> {
        (self.next < self.plan.stop).then_some(self.next)
    }

    /// The next packet: the PCMU silence byte as payload, the timestamp counting samples from
    /// 0, the SSRC from the source port so two streams differ.
    fn packet(&mut self) -> Vec<u8> {
        let mut b = vec![0x80, self.plan.payload_type & 0x7f];
        b.extend_from_slice(&self.seq.to_be_bytes());
        b.extend_from_slice(&(self.seq as u32 * RTP_SAMPLES).to_be_bytes());
        b.extend_from_slice(&(0x5eed_0000 | self.plan.from.port() as u32).to_be_bytes());
        b.resize(12 + RTP_SAMPLES as usize, 0xff);
        self.seq = self.seq.wrapping_add(1);
        self.next += RTP_PTIME;
        b
    }
}

/// A datagram the caller sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Send {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub bytes: Vec<u8>,
}

/// What the caller did differently from the capture, and why (shown in the report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub at: Duration,
    pub text: String,
}

#[derive(Debug, Clone)]
struct Step {
    at: Duration,
    src: SocketAddr,
    dst: SocketAddr,
    bytes: Vec<u8>,
}

/// What the capture says happened to one of the caller's INVITEs.
#[derive(Debug, Clone, Default)]
struct CapturedOutcome {
    final_code: Option<u16>,
    final_at: Option<Duration>,
    /// The original callee's To-tag on its final response.
    to_tag: Option<String>,
    /// The caller's ACK to the 2xx: its step index and its delay after the 2xx.
    ack: Option<(usize, Duration)>,
}

#[derive(Debug, Clone, Default)]
struct Invite {
    src: Option<SocketAddr>,
    dst: Option<SocketAddr>,
    bytes: Vec<u8>,
    provisional: bool,
    final_code: Option<u16>,
    /// Our core's dialog (its To-tag) when it answered 2xx.
    core_tag: Option<String>,
    contact: Option<String>,
    routes: Vec<String>,
    ack_sent: Option<Send>,
    bye_sent: bool,
    /// A re-INVITE inside another INVITE's dialog.
    reinvite: bool,
    captured: CapturedOutcome,
}

/// A request waiting for its response, retransmitted per RFC 3261 §17.1.1.2 / §17.1.2.2.
#[derive(Debug, Clone)]
struct Outstanding {
    send: Send,
    is_invite: bool,
    interval: Duration,
    started: Duration,
}

pub struct Caller {
    steps: Vec<Step>,
    next_step: usize,
    /// (Call-ID, INVITE CSeq) → state.
    invites: BTreeMap<(String, u32), Invite>,
    /// Steps played by the ACK logic rather than at their captured time.
    anchored: Vec<bool>,
    /// (Call-ID, CSeq, method) → retransmission state.
    outstanding: BTreeMap<(String, u32, String), (Duration, Outstanding)>,
    /// Sends due at a time (deferred ACKs).
    timed: BTreeMap<(Duration, u64), Send>,
    /// In-dialog steps waiting for the INVITE's final response.
    waiting: Vec<usize>,
    /// Call-IDs of dialogs our core ended with BYE.
    ended_by_core: Vec<String>,
    queue: Vec<Send>,
    seq: u64,
    streams: Vec<Stream>,
    /// Where our core's latest 2xx to an INVITE said to send media.
    core_media: Option<SocketAddr>,
    gone_at: Option<Duration>,
    gone: bool,
    pub notes: Vec<Note>,
    pub caller_addrs: Vec<SocketAddr>,
    pub core_addrs: Vec<SocketAddr>,
}

impl Caller {
    /// Build the caller from a capture's datagrams. Without an INVITE (an RTP-only capture) the
    /// caller is the first datagram's sender and plays its datagrams as they are: stray media
    /// that our core must not answer.
    pub fn from_capture(datagrams: &[Datagram]) -> Caller {
        let first_invite = datagrams
            .iter()
            .find(|d| Message::parse(&d.payload).is_some_and(|m| m.method() == Some("INVITE")));
        let raw = first_invite.is_none();
        let Some(first) = first_invite.or(datagrams.first()) else {
            return Caller::new(Vec::new(), BTreeMap::new(), Vec::new(), Vec::new());
        };
        let (caller_ip, callee_ip) = (first.src.ip(), first.dst.ip());
        let mut steps = Vec::new();
        let mut caller_addrs = Vec::new();
        let mut core_addrs = Vec::new();
        let mut outcomes: BTreeMap<(String, u32), CapturedOutcome> = BTreeMap::new();
        for d in datagrams {
            let from_caller = d.src.ip() == caller_ip && d.dst.ip() == callee_ip;
            let to_caller = d.dst.ip() == caller_ip && d.src.ip() == callee_ip;
            let m = Message::parse(&d.payload);
            let request = m.as_ref().is_some_and(|m| m.method().is_some());
            if from_caller && (request || raw && m.is_none()) {
                if !caller_addrs.contains(&d.src) {
                    caller_addrs.push(d.src);
                }
                if !core_addrs.contains(&d.dst) {
                    core_addrs.push(d.dst);
                }
            }
            let Some(m) = m else {
                if raw && from_caller {
                    steps.push(Step {
                        at: d.at,
                        src: d.src,
                        dst: d.dst,
                        bytes: d.payload.clone(),
                    });
                }
                continue;
            };
            let (cseq, cmethod) = m.cseq().unwrap_or_default();
            if to_caller && m.code().is_some_and(|c| c >= 200) && cmethod == "INVITE" {
                let o = outcomes
                    .entry((m.call_id().unwrap_or_default().to_string(), cseq))
                    .or_default();
                if o.final_code.is_none() {
                    o.final_code = m.code();
                    o.final_at = Some(d.at);
                    o.to_tag = m.to_tag().map(str::to_string);
                }
            }
            if from_caller && request {
                if m.method() == Some("ACK") {
                    if let Some(o) =
                        outcomes.get_mut(&(m.call_id().unwrap_or_default().to_string(), cseq))
                    {
                        if o.final_code.is_some_and(|c| c < 300) && o.ack.is_none() {
                            let delay = d.at.saturating_sub(o.final_at.unwrap_or(d.at));
                            o.ack = Some((steps.len(), delay));
                        }
                    }
                }
                steps.push(Step {
                    at: d.at,
                    src: d.src,
                    dst: d.dst,
                    bytes: d.payload.clone(),
                });
            }
        }
        // Captures are chronological, but merged ones may not be: play in time order.
        let mut order: Vec<usize> = (0..steps.len()).collect();
        order.sort_by_key(|&i| steps[i].at);
        if order.iter().enumerate().any(|(n, &i)| n != i) {
            let mut remap = vec![0; steps.len()];
            for (n, &i) in order.iter().enumerate() {
                remap[i] = n;
            }
            for o in outcomes.values_mut() {
                if let Some((i, d)) = o.ack {
                    o.ack = Some((remap[i], d));
                }
            }
            let old = std::mem::take(&mut steps);
            let mut slots: Vec<Option<Step>> = old.into_iter().map(Some).collect();
            steps = order
                .iter()
                .map(|&i| slots[i].take().expect("each step once"))
                .collect();
        }
        let t0 = steps.first().map(|s| s.at).unwrap_or_default();
        for s in &mut steps {
            s.at -= t0;
        }
        let mut caller = Caller::new(steps, BTreeMap::new(), caller_addrs, core_addrs);
        for (k, o) in outcomes {
            if let Some((i, _)) = o.ack {
                caller.anchored[i] = true;
            }
            caller.invites.insert(
                k,
                Invite {
                    captured: o,
                    ..Invite::default()
                },
            );
        }
        caller
    }

    fn new(
        steps: Vec<Step>,
        invites: BTreeMap<(String, u32), Invite>,
        caller_addrs: Vec<SocketAddr>,
        core_addrs: Vec<SocketAddr>,
    ) -> Caller {
        Caller {
            anchored: vec![false; steps.len()],
            steps,
            next_step: 0,
            invites,
            outstanding: BTreeMap::new(),
            timed: BTreeMap::new(),
            waiting: Vec::new(),
            ended_by_core: Vec::new(),
            queue: Vec::new(),
            seq: 0,
            streams: Vec::new(),
            core_media: None,
            gone_at: None,
            gone: false,
            notes: Vec::new(),
            caller_addrs,
            core_addrs,
        }
    }

    /// The caller's plan besides the capture: its RTP streams and when it vanishes.
    pub fn with_plan(mut self, plan: &CallerPlan) -> Caller {
        self.streams = plan
            .rtp
            .iter()
            .map(|p| Stream {
                plan: p.clone(),
                next: p.start,
                seq: 0,
            })
            .collect();
        self.gone_at = plan.gone_at;
        self
    }

    /// Time of the caller's last act: its last captured step (relative to the first) or the end
    /// of its last RTP stream.
    pub fn script_end(&self) -> Duration {
        let steps = self.steps.last().map(|s| s.at).unwrap_or_default();
        let media = self.streams.iter().map(|s| s.plan.stop).max();
        media.map_or(steps, |m| m.max(steps))
    }

    pub fn is_caller(&self, addr: SocketAddr) -> bool {
        self.caller_addrs.contains(&addr)
    }

    pub fn poll_timeout(&self) -> Option<Duration> {
        if self.gone {
            return None;
        }
        let step = self.steps.get(self.next_step).map(|s| s.at);
        let timed = self.timed.keys().next().map(|k| k.0);
        let retx = self.outstanding.values().map(|v| v.0).min();
        let media = self.streams.iter().filter_map(Stream::due).min();
        [step, timed, retx, media, self.gone_at]
            .into_iter()
            .flatten()
            .min()
    }

    fn is_gone(&self, now: Duration) -> bool {
        self.gone_at.is_some_and(|g| now >= g)
    }

    pub fn poll_send(&mut self) -> Option<Send> {
        if self.queue.is_empty() {
            None
        } else {
            Some(self.queue.remove(0))
        }
    }

    fn note(&mut self, at: Duration, text: String) {
        self.notes.push(Note { at, text });
    }

    pub fn handle_timeout(&mut self, now: Duration) {
        if self.is_gone(now) {
            if !self.gone {
                self.gone = true;
                self.note(
                    now,
                    "the caller is gone: it sends and answers nothing from here".into(),
                );
            }
            return;
        }
        while let Some(&key) = self.timed.keys().next() {
            if key.0 > now {
                break;
            }
            let s = self.timed.remove(&key).expect("key present");
            self.queue.push(s);
        }
        let due: Vec<_> = self
            .outstanding
            .iter()
            .filter(|(_, v)| v.0 <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in due {
            let (_, mut o) = self.outstanding.remove(&k).expect("key present");
            if now.saturating_sub(o.started) >= T1 * 64 {
                continue; // Timer B / F: the transaction has timed out
            }
            self.queue.push(o.send.clone());
            o.interval = if o.is_invite {
                o.interval * 2
            } else {
                (o.interval * 2).min(T2)
            };
            self.outstanding.insert(k, (now + o.interval, o));
        }
        while let Some(step) = self.steps.get(self.next_step) {
            if step.at > now {
                break;
            }
            let i = self.next_step;
            self.next_step += 1;
            if !self.anchored[i] {
                self.play(now, i);
            }
        }
        for i in 0..self.streams.len() {
            while self.streams[i].due().is_some_and(|t| t <= now) {
                let bytes = self.streams[i].packet();
                if let Some(dst) = self.core_media {
                    let src = self.streams[i].plan.from;
                    self.queue.push(Send { src, dst, bytes });
                }
            }
        }
    }

    fn send_request(&mut self, now: Duration, send: Send, key: (String, u32, String)) {
        let is_invite = key.2 == "INVITE";
        if key.2 != "ACK" {
            let o = Outstanding {
                send: send.clone(),
                is_invite,
                interval: T1,
                started: now,
            };
            self.outstanding.insert(key, (now + T1, o));
        }
        self.queue.push(send);
    }

    fn play(&mut self, now: Duration, i: usize) {
        let step = self.steps[i].clone();
        let Some(m) = Message::parse(&step.bytes) else {
            // Only RTP-only captures have non-SIP steps: play them as they are.
            self.queue.push(Send {
                src: step.src,
                dst: step.dst,
                bytes: step.bytes,
            });
            return;
        };
        let method = m.method().unwrap_or("").to_string();
        let call_id = m.call_id().unwrap_or_default().to_string();
        let (cseq, _) = m.cseq().unwrap_or_default();
        let key = (call_id.clone(), cseq, method.clone());
        let in_dialog = m.to_tag().is_some();
        if self.ended_by_core.contains(&call_id) && in_dialog && method != "ACK" {
            self.note(
                now,
                format!(
                    "{method} (CSeq {cseq}) not sent: our core already ended {call_id} with BYE"
                ),
            );
            return;
        }
        match method.as_str() {
            "INVITE" if !in_dialog => {
                // An earlier INVITE of this Call-ID that the original callee refused but our
                // core accepted: a real UA would not retry (no challenge came).
                let accepted = self.invites.iter().any(|((c, n), inv)| {
                    c == &call_id
                        && *n < cseq
                        && inv.final_code.is_some_and(|c| c < 300)
                        && inv.captured.final_code.is_some_and(|c| c >= 300)
                });
                if accepted {
                    self.note(now, format!("INVITE (CSeq {cseq}) of {call_id} not sent: it retried a refused INVITE, and our core accepted the first"));
                    return;
                }
                let inv = self.invites.entry((call_id.clone(), cseq)).or_default();
                inv.src = Some(step.src);
                inv.dst = Some(step.dst);
                inv.bytes = step.bytes.clone();
                self.send_request(
                    now,
                    Send {
                        src: step.src,
                        dst: step.dst,
                        bytes: step.bytes,
                    },
                    key,
                );
            }
            "ACK" => {
                // ACKs to non-2xx are sent by the transaction layer (on_response); unanchored
                // ACKs to a 2xx belong to an INVITE our core did not accept.
                if !in_dialog
                    || self
                        .invites
                        .get(&(call_id.clone(), cseq))
                        .is_none_or(|inv| inv.captured.final_code.is_some_and(|c| c >= 300))
                {
                    return;
                }
                self.note(now, format!("ACK (CSeq {cseq}) of {call_id} not sent: our core's answer to that INVITE was not a 2xx"));
            }
            "CANCEL" => {
                let Some(inv) = self.invites.get(&(call_id.clone(), cseq)) else {
                    self.note(
                        now,
                        format!("CANCEL (CSeq {cseq}) not sent: its INVITE was not sent"),
                    );
                    return;
                };
                match inv.final_code {
                    None => {
                        self.send_request(
                            now,
                            Send {
                                src: step.src,
                                dst: step.dst,
                                bytes: step.bytes,
                            },
                            key,
                        );
                    }
                    Some(c) if c < 300 => {
                        self.note(now, format!("CANCEL (CSeq {cseq}) of {call_id} became BYE: our core had answered 2xx (RFC 3261 §9.1, §15)"));
                        self.send_bye(now, &call_id, cseq);
                    }
                    Some(_) => {}
                }
            }
            _ if in_dialog => {
                let captured_tag = m.to_tag().unwrap_or("").to_string();
                match self.dialog_for(&call_id, &captured_tag) {
                    Dialog::Up(inv_key) => self.send_in_dialog(now, i, inv_key),
                    Dialog::Pending => self.waiting.push(i),
                    Dialog::Failed => {
                        self.note(now, format!("{method} (CSeq {cseq}) of {call_id} not sent: our core did not accept the dialog"));
                    }
                }
            }
            _ => {
                // Out-of-dialog requests (REGISTER, SUBSCRIBE, OPTIONS, MESSAGE, …) go as captured.
                self.send_request(
                    now,
                    Send {
                        src: step.src,
                        dst: step.dst,
                        bytes: step.bytes,
                    },
                    key,
                );
            }
        }
    }

    fn dialog_for(&self, call_id: &str, captured_tag: &str) -> Dialog {
        let mine: Vec<_> = self
            .invites
            .iter()
            .filter(|((c, _), inv)| c == call_id && inv.src.is_some() && !inv.reinvite)
            .collect();
        let by_tag = mine
            .iter()
            .find(|(_, inv)| inv.captured.to_tag.as_deref() == Some(captured_tag));
        let pick = by_tag
            .or_else(|| {
                mine.iter()
                    .find(|(_, inv)| inv.final_code.is_some_and(|c| c < 300))
            })
            .or(mine.first());
        match pick {
            Some((k, inv)) => match inv.final_code {
                Some(c) if c < 300 => Dialog::Up((*k).clone()),
                None => Dialog::Pending,
                Some(_) => Dialog::Failed,
            },
            None => Dialog::Failed,
        }
    }

    fn send_in_dialog(&mut self, now: Duration, i: usize, inv_key: (String, u32)) {
        let step = self.steps[i].clone();
        let Some(m) = Message::parse(&step.bytes) else {
            return;
        };
        let inv = &self.invites[&inv_key];
        let tag = inv.core_tag.clone().unwrap_or_default();
        let target = inv.contact.clone().unwrap_or_else(|| uri_of_request(&m));
        let dst = uri_addr(&target)
            .filter(|_| inv.routes.is_empty())
            .unwrap_or(inv.dst.unwrap_or(step.dst));
        let bytes = rewrite_in_dialog(&step.bytes, &tag, &target, &inv.routes);
        let method = m.method().unwrap_or("").to_string();
        let (cseq, _) = m.cseq().unwrap_or_default();
        if method == "BYE" {
            if let Some(inv) = self.invites.get_mut(&inv_key) {
                inv.bye_sent = true;
            }
        }
        if method == "INVITE" {
            // A re-INVITE: its own transaction, inside the parent's dialog.
            let parent = self.invites[&inv_key].clone();
            let re = self
                .invites
                .entry((m.call_id().unwrap_or_default().to_string(), cseq))
                .or_default();
            re.reinvite = true;
            re.src = Some(step.src);
            re.dst = Some(dst);
            re.bytes = bytes.clone();
            re.core_tag = parent.core_tag;
            re.contact = parent.contact;
            re.routes = parent.routes;
        }
        self.send_request(
            now,
            Send {
                src: step.src,
                dst,
                bytes,
            },
            (m.call_id().unwrap_or_default().to_string(), cseq, method),
        );
    }

    fn send_bye(&mut self, now: Duration, call_id: &str, cseq: u32) {
        let Some(inv) = self.invites.get_mut(&(call_id.to_string(), cseq)) else {
            return;
        };
        if inv.bye_sent {
            return;
        }
        inv.bye_sent = true;
        let Some(m) = Message::parse(&inv.bytes) else {
            return;
        };
        let target = inv.contact.clone().unwrap_or_else(|| uri_of_request(&m));
        let bye_cseq = cseq + 1;
        let mut out = format!("BYE {target} SIP/2.0\r\n");
        let branch = format!("{}b{}", m.top_via_branch().unwrap_or("z9hG4bK"), bye_cseq);
        if let Some(via) = m.header("via") {
            out.push_str(&format!("Via: {}\r\n", replace_branch(via, &branch)));
        }
        for r in &inv.routes {
            out.push_str(&format!("Route: {r}\r\n"));
        }
        out.push_str(&format!("From: {}\r\n", m.header("from").unwrap_or("")));
        out.push_str(&format!(
            "To: {}\r\n",
            with_tag(
                m.header("to").unwrap_or(""),
                inv.core_tag.as_deref().unwrap_or("")
            )
        ));
        out.push_str(&format!("Call-ID: {call_id}\r\nCSeq: {bye_cseq} BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"));
        let dst = uri_addr(&target)
            .filter(|_| inv.routes.is_empty())
            .or(inv.dst);
        let (Some(dst), Some(src)) = (dst, inv.src) else {
            return;
        };
        self.send_request(
            now,
            Send {
                src,
                dst,
                bytes: out.into_bytes(),
            },
            (call_id.to_string(), bye_cseq, "BYE".into()),
        );
    }

    /// A datagram from our core arrived at the caller.
    pub fn handle_datagram(
        &mut self,
        now: Duration,
        src: SocketAddr,
        dst: SocketAddr,
        data: &[u8],
    ) {
        if self.is_gone(now) {
            return;
        }
        let Some(m) = Message::parse(data) else {
            return;
        };
        match m.code() {
            Some(code) => self.on_response(now, &m, code),
            None => self.on_request(now, &m, src, dst),
        }
    }

    fn on_request(&mut self, now: Duration, m: &Message<'_>, core: SocketAddr, me: SocketAddr) {
        let method = m.method().unwrap_or("");
        if method == "ACK" {
            return;
        }
        if method == "BYE"
            && !self
                .ended_by_core
                .iter()
                .any(|c| c == m.call_id().unwrap_or_default())
        {
            self.ended_by_core
                .push(m.call_id().unwrap_or_default().to_string());
            let call_id = m.call_id().unwrap_or_default().to_string();
            self.outstanding.retain(|k, _| k.0 != call_id);
        }
        // RFC 3261 §8.2.6: copy Via, From, To (adding our tag if it has none), Call-ID, CSeq.
        let mut out = String::from("SIP/2.0 200 OK\r\n");
        for v in m.headers_named("via") {
            out.push_str(&format!("Via: {v}\r\n"));
        }
        out.push_str(&format!("From: {}\r\n", m.header("from").unwrap_or("")));
        let to = m.header("to").unwrap_or("");
        if m.to_tag().is_some() {
            out.push_str(&format!("To: {to}\r\n"));
        } else {
            out.push_str(&format!("To: {}\r\n", with_tag(to, "replay")));
        }
        out.push_str(&format!(
            "Call-ID: {}\r\nCSeq: {}\r\n",
            m.call_id().unwrap_or_default(),
            m.header("cseq").unwrap_or("")
        ));
        let body = if method == "INVITE" {
            // A re-INVITE from the core: answer with the caller's original offer, if any.
            self.invites
                .values()
                .find(|i| {
                    !i.bytes.is_empty()
                        && Message::parse(&i.bytes).is_some_and(|x| x.call_id() == m.call_id())
                })
                .and_then(|i| Message::parse(&i.bytes).map(|x| x.body.to_vec()))
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        if let Some(c) = self.caller_addrs.first() {
            out.push_str(&format!("Contact: <sip:caller@{c}>\r\n"));
        }
        if !body.is_empty() {
            out.push_str("Content-Type: application/sdp\r\n");
        }
        out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&body);
        self.queue.push(Send {
            src: me,
            dst: core,
            bytes,
        });
        let _ = now;
    }

    fn on_response(&mut self, now: Duration, m: &Message<'_>, code: u16) {
        let (cseq, cmethod) = m.cseq().unwrap_or_default();
        let call_id = m.call_id().unwrap_or_default().to_string();
        let key = (call_id.clone(), cseq, cmethod.to_string());
        if cmethod == "INVITE" {
            if code >= 100 {
                self.outstanding.remove(&key); // Timer A stops on any response (§17.1.1.2)
            }
        } else if code >= 200 {
            self.outstanding.remove(&key);
        }
        if cmethod != "INVITE" {
            return;
        }
        if !self.invites.contains_key(&(call_id.clone(), cseq)) {
            return;
        }
        if (200..300).contains(&code) {
            if let Some(media) = Sdp::of(m).and_then(|s| s.rtp_target()) {
                self.core_media = Some(media);
            }
        }
        let Some(inv) = self.invites.get_mut(&(call_id.clone(), cseq)) else {
            return;
        };
        if code < 200 {
            inv.provisional = true;
            return;
        }
        if let Some(ack) = inv.ack_sent.clone() {
            // A retransmitted final: answer it with the same ACK (§13.2.2.4, §17.1.1.2).
            self.queue.push(ack);
            return;
        }
        inv.final_code = Some(code);
        inv.core_tag = m.to_tag().map(str::to_string);
        let Some(orig) = Message::parse(&inv.bytes) else {
            return;
        };
        let (Some(src), Some(dst)) = (inv.src, inv.dst) else {
            return;
        };
        if code >= 300 {
            // §17.1.1.3: the ACK to a non-2xx is built by the transaction, same branch.
            let mut out = format!("ACK {} SIP/2.0\r\n", uri_of_request(&orig));
            if let Some(via) = orig.header("via") {
                out.push_str(&format!("Via: {via}\r\n"));
            }
            out.push_str(&format!("From: {}\r\n", orig.header("from").unwrap_or("")));
            out.push_str(&format!("To: {}\r\n", m.header("to").unwrap_or("")));
            out.push_str(&format!("Call-ID: {call_id}\r\nCSeq: {cseq} ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"));
            let ack = Send {
                src,
                dst,
                bytes: out.into_bytes(),
            };
            inv.ack_sent = Some(ack.clone());
            self.queue.push(ack);
            if !inv.reinvite && inv.captured.final_code.is_some_and(|c| c < 300) {
                self.note(now, format!("INVITE (CSeq {cseq}) of {call_id}: our core answered {code}; the dialog's later requests are not sent"));
            }
            self.release_waiting(now);
            return;
        }
        if let Some(c) = m.contact_uri() {
            inv.contact = Some(c.to_string());
        }
        if !inv.reinvite {
            // The route set is fixed by the dialog-creating 2xx (RFC 3261 §12.1.2).
            inv.routes = m
                .record_routes()
                .into_iter()
                .rev()
                .map(str::to_string)
                .collect();
        }
        let target = inv.contact.clone().unwrap_or_else(|| uri_of_request(&orig));
        let ack_dst = uri_addr(&target)
            .filter(|_| inv.routes.is_empty())
            .unwrap_or(dst);
        let (ack_bytes, delay) = match inv.captured.ack {
            Some((i, delay)) => (
                rewrite_in_dialog(
                    &self.steps[i].bytes,
                    inv.core_tag.as_deref().unwrap_or(""),
                    &target,
                    &inv.routes,
                ),
                delay,
            ),
            None => {
                // The capture has no ACK for a 2xx here (the callee refused, or the caller
                // cancelled): a real UA ACKs our 2xx at once.
                if inv.captured.final_code.is_some_and(|c| c >= 300) {
                    self.notes.push(Note { at: now, text: format!("INVITE (CSeq {cseq}) of {call_id}: the original callee answered {}, our core 2xx: ACK at once", inv.captured.final_code.unwrap_or(0)) });
                }
                let cancelled = self.steps.iter().any(|s| {
                    Message::parse(&s.bytes).is_some_and(|x| {
                        x.method() == Some("CANCEL") && x.call_id().unwrap_or_default() == call_id
                    })
                });
                let refused = inv.captured.final_code.is_some_and(|c| c >= 300);
                if !refused && !cancelled {
                    // The original got a 2xx (or nothing) and the caller never ACKed: replay
                    // that (the lost-ACK scenario).
                    self.release_waiting(now);
                    return;
                }
                // A late offer (no SDP in the INVITE) needs its answer in this ACK.
                let answer = if orig.has_sdp() {
                    None
                } else {
                    Sdp::of(m).map(|offer| answer_to(&offer, src))
                };
                (
                    build_ack(
                        &orig,
                        inv.core_tag.as_deref().unwrap_or(""),
                        &target,
                        &inv.routes,
                        cseq,
                        answer.as_deref(),
                    ),
                    Duration::ZERO,
                )
            }
        };
        let ack = Send {
            src,
            dst: ack_dst,
            bytes: ack_bytes,
        };
        inv.ack_sent = Some(ack.clone());
        self.seq += 1;
        self.timed.insert((now + delay, self.seq), ack);
        self.release_waiting(now);
    }

    /// In-dialog steps that waited for a final response: send or drop them now.
    fn release_waiting(&mut self, now: Duration) {
        let waiting = std::mem::take(&mut self.waiting);
        for i in waiting {
            let Some(m) = Message::parse(&self.steps[i].bytes) else {
                continue;
            };
            let call_id = m.call_id().unwrap_or_default().to_string();
            let tag = m.to_tag().unwrap_or("").to_string();
            match self.dialog_for(&call_id, &tag) {
                Dialog::Up(k) => self.send_in_dialog(now, i, k),
                Dialog::Pending => self.waiting.push(i),
                Dialog::Failed => {}
            }
        }
    }
}

enum Dialog {
    Up((String, u32)),
    Pending,
    Failed,
}
