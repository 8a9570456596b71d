//! One probe call, start to finish, on its own SIP and RTP sockets: INVITE (retransmitted on
//! T1 doubling), 1xx/2xx checks, ACK (with our answer for a late offer), listening, BYE,
//! a quiet period to catch media sent after the call, then the verdict.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use onhold_core::rng::Rng;
use onhold_core::sdp::{self, SessionDescription};
use onhold_core::Direction;

use super::dp750::{self, Dialog, Target};
use super::media::{self, Expect, MediaStats, Receiver};
use super::msg::Message;
use super::sipsock::{Mux, SipSocket};

/// RFC 3261 §17.1.1.1 defaults (also the DP750's settings).
pub const T1: Duration = Duration::from_millis(500);
pub const T2: Duration = Duration::from_secs(4);
/// How long we listen after the 200 to our BYE for media that should have stopped.
pub const AFTER_BYE_WAIT: Duration = Duration::from_millis(300);

/// Which DP750 INVITE we send (shared/dp750/README.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    /// SDP with our own RTP address, `a=sendrecv`.
    Own,
    /// SDP naming another socket (the "held party"), `a=recvonly`: RTP must go there.
    HeldParty,
    /// No SDP: the server offers in its 200, we answer PCMU in the ACK.
    LateOffer,
}

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::Own => "own",
            Shape::HeldParty => "held-party",
            Shape::LateOffer => "late-offer",
        }
    }
}

/// Everything a call needs to know, shared by all calls of a run.
#[derive(Clone, Debug)]
pub struct CallConfig {
    pub target: Target,
    pub server: SocketAddr,
    pub local_ip: IpAddr,
    /// Where the held party's socket lives (held-party shape).
    pub held_ip: IpAddr,
    pub shape: Shape,
    pub duration: Duration,
    /// Timer B/F bound: how long to wait for a final response (64·T1 by default).
    pub timeout: Duration,
    pub seed: u64,
    /// One SIP socket for every call (`--shared-sip-port`), else one per call.
    pub mux: Option<Arc<Mux>>,
    /// Send RTP to the server's address from our RTP socket while the call lasts.
    pub send_rtp: bool,
}

/// Live counters for the progress line.
#[derive(Debug, Default)]
pub struct Progress {
    pub started: AtomicU64,
    pub finished: AtomicU64,
    pub failed: AtomicU64,
    /// Shared with every call's RTP receiver thread.
    pub rtp_packets: Arc<AtomicU64>,
}

/// The outcome of one call.
#[derive(Clone, Debug, Default)]
pub struct CallResult {
    pub index: usize,
    /// INVITE sent → 200 received.
    pub setup_us: Option<u64>,
    pub got_100: bool,
    pub got_180: bool,
    pub invite_retransmits: u32,
    /// The final response to the INVITE.
    pub final_code: Option<u16>,
    /// The direction attribute of the server's SDP.
    pub server_direction: Option<&'static str>,
    pub bye_code: Option<u16>,
    /// RTP that arrived at our SIP socket instead of the SDP address.
    pub misdirected: u64,
    /// RTP that arrived before our ACK (DESIGN: media starts at the ACK). Informational.
    pub before_ack: u64,
    pub media: MediaStats,
    /// Every problem found, in order; empty for a healthy call.
    pub problems: Vec<String>,
}

impl CallResult {
    pub fn healthy(&self) -> bool {
        self.problems.is_empty()
    }

    /// Turn media findings into problems (a healthy call has none).
    fn judge_media(&mut self) {
        let m = &self.media;
        let mut p = Vec::new();
        if m.lost > 0 {
            p.push(format!(
                "lost {} of {} packets ({:.1} %, {} received)",
                m.lost,
                m.expected,
                m.loss_pct(),
                m.received
            ));
        }
        for (n, what) in [
            (m.seq_errors, "sequence number errors"),
            (m.ts_errors, "timestamp errors"),
            (m.marker_errors, "first packet without marker bit"),
            (m.ssrc_changes, "SSRC changes"),
            (m.pt_errors, "packets with an unexpected payload type"),
            (m.after_bye, "packets after BYE"),
            (self.misdirected, "RTP packets at the SIP socket"),
        ] {
            if n > 0 {
                p.push(format!("{n} {what}"));
            }
        }
        self.problems.extend(p);
    }
}

/// The SIP side of a call: our socket, the dialog, and the packets we must not lose track of.
struct Leg {
    sock: SipSocket,
    server: SocketAddr,
    dialog: Dialog,
    rng: Rng,
    misdirected: u64,
    /// The ACK we sent, resent whenever the 200 is retransmitted (RFC 3261 §13.2.2.4).
    ack: Option<String>,
    /// The server sent BYE.
    remote_bye: bool,
    buf: Vec<u8>,
}

impl Leg {
    /// A fresh dialog from our SIP socket (the run's shared one if there is one).
    fn new(cfg: &CallConfig, seed: u64, cseq: u32, may_share: bool) -> std::io::Result<Leg> {
        let mut rng = Rng::new(seed);
        let (own, local) = match (&cfg.mux, may_share) {
            (Some(mux), true) => (None, mux.local),
            _ => {
                let s = bind(cfg.local_ip)?;
                let local = s.local_addr()?;
                (Some(s), local)
            }
        };
        let call_id = dp750::call_id(rng.next_u32(), local);
        let sock = match (own, &cfg.mux) {
            (Some(s), _) => SipSocket::Own(s),
            (None, Some(mux)) => mux.register(&call_id),
            (None, None) => unreachable!("a shared socket was chosen above"),
        };
        let dialog = Dialog {
            target: cfg.target.clone(),
            local,
            call_id,
            from_tag: rng.next_u32().to_string(),
            to_tag: None,
            remote_target: None,
            route_set: Vec::new(),
            cseq,
        };
        Ok(Leg {
            sock,
            server: cfg.server,
            dialog,
            rng,
            misdirected: 0,
            ack: None,
            remote_bye: false,
            buf: vec![0u8; 65536],
        })
    }

    fn send(&self, msg: &str) {
        self.sock.send_to(msg.as_bytes(), self.server);
    }

    fn branch(&mut self) -> String {
        format!("z9hG4bK{}", self.rng.next_u32())
    }

    /// Wait until `deadline` for a SIP message; RTP and garbage are counted or dropped, and
    /// requests from the server are answered here. Returns responses only.
    fn recv_response(&mut self, deadline: Instant) -> Option<Message<'static>> {
        loop {
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            let Some(data) = self.sock.recv(deadline - now, &mut self.buf) else {
                continue;
            };
            if media::looks_like_rtp(&data) {
                self.misdirected += 1;
                continue;
            }
            let Some(msg) = Message::parse(&data) else {
                continue;
            };
            if msg.header("Call-ID") != Some(self.dialog.call_id.as_str()) {
                continue;
            }
            if msg.code().is_some() {
                if msg.code().is_some_and(|c| (200..300).contains(&c))
                    && msg.cseq().is_some_and(|(_, m)| m == "INVITE")
                {
                    if let Some(ack) = &self.ack {
                        self.send(ack);
                        continue;
                    }
                }
                return Some(msg.into_owned());
            }
            self.answer_request(&msg);
        }
    }

    fn answer_request(&mut self, req: &Message<'_>) {
        let (code, reason) = match req.method() {
            Some("BYE") => {
                self.remote_bye = true;
                (200, "OK")
            }
            Some("OPTIONS" | "INFO" | "NOTIFY") => (200, "OK"),
            Some("ACK") => return,
            _ => (501, "Not Implemented"),
        };
        let resp = dp750::response_to(req, code, reason);
        self.send(&resp);
    }

    /// A non-INVITE client transaction (RFC 3261 §17.1.2): Timer E doubling to T2, Timer F.
    fn non_invite(&mut self, method: &str, timeout: Duration) -> Option<u16> {
        let branch = self.branch();
        let req = self.dialog.request(method, &branch);
        let start = Instant::now();
        let deadline = start + timeout;
        let mut interval = T1;
        let mut next = start + interval;
        self.send(&req);
        loop {
            match self.recv_response(next.min(deadline)) {
                Some(resp) => {
                    let ours = resp.top_via_branch() == Some(branch.as_str())
                        && resp.cseq().is_some_and(|(_, m)| m == method);
                    match resp.code() {
                        Some(code) if ours && code >= 200 => return Some(code),
                        _ => continue,
                    }
                }
                None if Instant::now() >= deadline => return None,
                None => {
                    self.send(&req);
                    interval = (interval * 2).min(T2);
                    next = Instant::now() + interval;
                }
            }
        }
    }

    /// Answer requests and resend ACKs until `until`, or until the server hangs up.
    fn idle(&mut self, until: Instant) {
        while Instant::now() < until && !self.remote_bye {
            // Any response here is a stray (e.g. a late retransmission): ignore it.
            let _ = self.recv_response(until);
        }
    }
}

fn bind(ip: IpAddr) -> std::io::Result<UdpSocket> {
    UdpSocket::bind(SocketAddr::new(ip, 0))
}

/// Run one call. Never panics on server behaviour; everything odd lands in `problems`.
pub fn run(cfg: &CallConfig, index: usize, progress: &Progress) -> CallResult {
    progress.started.fetch_add(1, Ordering::Relaxed);
    let mut result = CallResult {
        index,
        ..CallResult::default()
    };
    if let Err(e) = call(cfg, &mut result, progress) {
        result.problems.push(format!("local socket error: {e}"));
    }
    progress.finished.fetch_add(1, Ordering::Relaxed);
    if !result.healthy() {
        progress.failed.fetch_add(1, Ordering::Relaxed);
    }
    result
}

/// What the server's SDP told us to expect.
struct MediaPlan {
    pt: u8,
    ptime_ms: u32,
    dtmf_pt: Option<u8>,
    direction: Direction,
    /// The server's RTP address (`c=` and the audio `m=` port).
    server_rtp: Option<SocketAddr>,
}

/// The RTP address a description names for its audio stream `i`.
fn rtp_address(sd: &SessionDescription<'_>, i: usize) -> Option<SocketAddr> {
    match sd.connection_for(i)? {
        sdp::Connection::Ip(ip) => Some(SocketAddr::new(*ip, sd.media[i].port)),
        sdp::Connection::Unusable(_) => None,
    }
}

/// Until `stop`: a PCMU packet of silence every 20 ms from `sock` to `to` (sequence and
/// timestamp counting up, one SSRC), as a phone sends its own audio.
fn send_rtp(sock: UdpSocket, to: SocketAddr, stop: Arc<AtomicBool>) {
    let mut packet = [0xffu8; 12 + 160];
    packet[..2].copy_from_slice(&[0x80, 0]);
    packet[8..12].copy_from_slice(&0x7072_6f62u32.to_be_bytes());
    let (mut seq, mut ts) = (0u16, 0u32);
    let start = Instant::now();
    let mut k = 0u32;
    while !stop.load(Ordering::Relaxed) {
        packet[2..4].copy_from_slice(&seq.to_be_bytes());
        packet[4..8].copy_from_slice(&ts.to_be_bytes());
        let _ = sock.send_to(&packet, to);
        (seq, ts, k) = (seq.wrapping_add(1), ts.wrapping_add(160), k + 1);
        let next = start + Duration::from_millis(20) * k;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

fn first_audio(sd: &SessionDescription<'_>) -> Option<usize> {
    sd.media.iter().position(|m| m.is_audio() && m.port != 0)
}

fn plan_from_answer(body: &[u8]) -> Result<MediaPlan, String> {
    let sd = sdp::parse(body).map_err(|e| format!("200 SDP unreadable: {e}"))?;
    let i = first_audio(&sd).ok_or("200 SDP accepts no audio stream")?;
    let m = &sd.media[i];
    let pt = m
        .payload_types()
        .next()
        .ok_or("200 SDP audio has no payload type")?;
    Ok(MediaPlan {
        pt,
        ptime_ms: sd.ptime_for(i).unwrap_or(20).clamp(10, 200),
        dtmf_pt: None,
        direction: sd.direction_for(i),
        server_rtp: rtp_address(&sd, i),
    })
}

/// The late-offer 200 carries the server's offer: we take PCMU.
fn plan_from_offer(body: &[u8]) -> Result<MediaPlan, String> {
    let sd = sdp::parse(body).map_err(|e| format!("200 offer unreadable: {e}"))?;
    let i = first_audio(&sd).ok_or("200 offer has no audio stream")?;
    let m = &sd.media[i];
    let is = |pt: u8, name: &str| match m.rtpmap(pt) {
        Some(map) => map.encoding.eq_ignore_ascii_case(name) && map.clock_rate == 8000,
        None => pt == 0 && name == "PCMU",
    };
    let pt = m
        .payload_types()
        .find(|&pt| is(pt, "PCMU"))
        .ok_or("200 offer lacks PCMU")?;
    let dtmf_pt = m.payload_types().find(|&pt| is(pt, "telephone-event"));
    Ok(MediaPlan {
        pt,
        ptime_ms: sd.ptime_for(i).unwrap_or(20).clamp(10, 200),
        dtmf_pt,
        direction: sd.direction_for(i),
        server_rtp: rtp_address(&sd, i),
    })
}

fn call(cfg: &CallConfig, r: &mut CallResult, progress: &Progress) -> std::io::Result<()> {
    let mut leg = Leg::new(cfg, cfg.seed ^ index_mix(r.index), 21, true)?;
    let media_sock = match cfg.shape {
        Shape::HeldParty => bind(cfg.held_ip)?,
        Shape::Own | Shape::LateOffer => bind(cfg.local_ip)?,
    };
    let media_addr = media_sock.local_addr()?;
    let rtp_out = if cfg.send_rtp {
        Some(media_sock.try_clone()?)
    } else {
        None
    };
    let receiver = Receiver::start(media_sock, progress.rtp_packets.clone())?;

    let offer = match cfg.shape {
        Shape::Own => Some(dp750::offer(media_addr, "sendrecv")),
        Shape::HeldParty => Some(dp750::offer(media_addr, "recvonly")),
        Shape::LateOffer => None,
    };

    // INVITE client transaction over UDP (RFC 3261 §17.1.1.2): Timer A doubles from T1 until a
    // provisional response; Timer B ends the wait.
    let branch = leg.branch();
    let invite = leg.dialog.invite(&branch, offer.as_deref());
    let sent_at = Instant::now();
    let deadline = sent_at + cfg.timeout;
    let mut interval = T1;
    let mut next_retransmit = sent_at + interval;
    let mut provisional = false;
    leg.send(&invite);
    let ok = loop {
        let wake = if provisional {
            deadline
        } else {
            next_retransmit.min(deadline)
        };
        let Some(resp) = leg.recv_response(wake) else {
            if Instant::now() >= deadline {
                r.problems.push(format!(
                    "no final response to INVITE within {:?}",
                    cfg.timeout
                ));
                finish_media(r, receiver, None, sent_at, sent_at, leg.misdirected);
                return Ok(());
            }
            if !provisional {
                leg.send(&invite);
                r.invite_retransmits += 1;
                interval *= 2;
                next_retransmit = Instant::now() + interval;
            }
            continue;
        };
        if resp
            .cseq()
            .is_none_or(|(n, m)| n != leg.dialog.cseq || m != "INVITE")
        {
            continue;
        }
        match resp.code().unwrap_or(0) {
            100..=199 => {
                provisional = true;
                match resp.code() {
                    Some(100) => r.got_100 = true,
                    Some(180 | 183) => r.got_180 = true,
                    _ => {}
                }
            }
            200..=299 => break resp,
            code => {
                // RFC 3261 §17.1.1.3: the ACK for an error is part of the INVITE transaction.
                r.final_code = Some(code);
                leg.dialog.to_tag = resp.to_tag().map(str::to_owned);
                let ack = leg.dialog.ack(&branch, false, None);
                leg.send(&ack);
                r.problems.push(format!("INVITE answered {code}"));
                let now = Instant::now();
                finish_media(r, receiver, None, now, now, leg.misdirected);
                return Ok(());
            }
        }
    };
    let answered_at = Instant::now();
    r.final_code = ok.code();
    r.setup_us = Some(micros(answered_at - sent_at));
    match ok.to_tag() {
        Some(tag) => leg.dialog.to_tag = Some(tag.to_owned()),
        None => r.problems.push("200 without To-tag".into()),
    }
    match ok.contact_uri() {
        Some(uri) => leg.dialog.remote_target = Some(uri.to_owned()),
        None => r.problems.push("200 without Contact".into()),
    }
    leg.dialog.route_set = ok
        .record_routes()
        .into_iter()
        .rev()
        .map(str::to_owned)
        .collect();

    let plan = match cfg.shape {
        Shape::Own | Shape::HeldParty => plan_from_answer(&ok.body),
        Shape::LateOffer => plan_from_offer(&ok.body),
    };
    let ack_sdp = match (&plan, cfg.shape) {
        (Ok(p), Shape::LateOffer) => {
            // Mirror the server's direction: it sends, we receive.
            let ours = match p.direction {
                Direction::SendOnly | Direction::SendRecv => "recvonly",
                Direction::RecvOnly | Direction::Inactive => "inactive",
            };
            Some(dp750::answer(media_addr, p.dtmf_pt, p.ptime_ms, ours))
        }
        _ => None,
    };
    let ack_branch = leg.branch();
    let ack = leg.dialog.ack(&ack_branch, true, ack_sdp.as_deref());
    // Stamp before sending: a fast server's first packet can be stamped before a later clock
    // read, and would be miscounted as RTP before the ACK.
    let ack_at = Instant::now();
    leg.send(&ack);
    leg.ack = Some(ack);
    let stop_rtp = Arc::new(AtomicBool::new(false));
    if let (Some(sock), Some(to)) = (rtp_out, plan.as_ref().ok().and_then(|p| p.server_rtp)) {
        let stop = Arc::clone(&stop_rtp);
        std::thread::spawn(move || send_rtp(sock, to, stop));
    }

    let expect = match &plan {
        Ok(p) => {
            r.server_direction = Some(sdp::direction_attribute(p.direction));
            Expect {
                ptime_ms: p.ptime_ms,
                pt: Some(p.pt),
                packets: cfg.duration.as_millis() as u64 / u64::from(p.ptime_ms),
            }
        }
        Err(e) => {
            r.problems.push(e.clone());
            Expect {
                ptime_ms: 20,
                pt: None,
                packets: cfg.duration.as_millis() as u64 / 20,
            }
        }
    };

    leg.idle(ack_at + cfg.duration);
    let ended = if leg.remote_bye {
        r.problems.push("server sent BYE before the end".into());
        Instant::now()
    } else {
        leg.dialog.cseq += 1;
        r.bye_code = leg.non_invite("BYE", cfg.timeout);
        match r.bye_code {
            Some(200) => {}
            Some(code) => r.problems.push(format!("BYE answered {code}")),
            None => r.problems.push("no response to BYE".into()),
        }
        Instant::now()
    };
    stop_rtp.store(true, Ordering::Relaxed);
    leg.idle(ended + AFTER_BYE_WAIT);
    finish_media(r, receiver, Some(expect), ack_at, ended, leg.misdirected);
    Ok(())
}

fn finish_media(
    r: &mut CallResult,
    receiver: Receiver,
    expect: Option<Expect>,
    ack_at: Instant,
    ended: Instant,
    misdirected: u64,
) {
    let arrivals = receiver.finish();
    r.misdirected = misdirected;
    r.before_ack = arrivals.iter().filter(|a| a.at < ack_at).count() as u64;
    match expect {
        Some(expect) => {
            r.media = media::analyze(&arrivals, expect, ack_at, ended);
            r.judge_media();
        }
        None => {
            // No dialog: any RTP at all is media sent without a call.
            r.media.after_bye = arrivals.len() as u64;
            if !arrivals.is_empty() {
                r.problems
                    .push(format!("{} RTP packets without a call", arrivals.len()));
            }
        }
    }
}

fn index_mix(index: usize) -> u64 {
    (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// OPTIONS to the target, out of any dialog (RFC 3261 §11): the status code, or `None` when no
/// final response came within the timeout.
pub fn options(cfg: &CallConfig) -> std::io::Result<Option<u16>> {
    // Its own socket: the shared one is not being read yet.
    let mut leg = Leg::new(cfg, cfg.seed ^ 0x4f50_5449_4f4e_5321, 1, false)?;
    Ok(leg.non_invite("OPTIONS", cfg.timeout))
}
