//! The SIP side of a run: every call of the run driven from one UDP socket by one event loop
//! (no thread per call). It sends INVITEs at the given rate, retransmits them on RFC 3261's
//! timer A, ACKs every final response, holds the calls, then sends the BYEs at the same rate
//! and waits for their answers. Times are kernel receive stamps of the responses against the
//! clock read just before each request left.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::media::Windows;
use super::rx::{self, Batch};
use super::stats;
use crate::msg::{Message, Start};

/// RFC 3261's T1 and T2.
const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);
/// How long after the last BYE answer the receivers keep listening for stray RTP.
const DRAIN: Duration = Duration::from_millis(500);

#[derive(Clone, Debug)]
pub struct LoadConfig {
    pub server: SocketAddrV4,
    pub user: String,
    pub local_ip: Ipv4Addr,
    pub calls: usize,
    pub cps: f64,
    pub hold: Duration,
    /// Timer B and F: how long a request waits for its final response.
    pub timeout: Duration,
    /// The receiving RTP ports; call `i`'s SDP names `rtp_ports[i % len]`.
    pub rtp_ports: Vec<u16>,
    /// The server process, for its CPU and RSS.
    pub pid: Option<u32>,
    /// A tag for Call-IDs, unique per run.
    pub run_tag: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Pending,
    Inviting,
    Up,
    Refused,
    Failed,
    TimedOut,
    Byeing,
    Ended,
}

#[derive(Debug)]
struct Call {
    state: State,
    invite_sent_ns: u64,
    /// When this call's next timer fires (a retransmission or the timeout); a heap entry with
    /// another instant is stale.
    timer: Option<Instant>,
    interval: Duration,
    deadline: Instant,
    provisional: bool,
    to_tag: String,
    remote_target: Option<String>,
    media: Option<SocketAddrV4>,
    bye_sent_ns: u64,
    bye_answered_ns: Option<u64>,
    ended_by_server: bool,
}

/// What one call ended as, for matching its RTP.
#[derive(Clone, Debug)]
pub struct CallMedia {
    /// Where the answer's SDP said the media comes from (its `c=` and `m=` port).
    pub media: Option<SocketAddrV4>,
    /// When our BYE was answered, or given up on after the timeout.
    pub bye_answered_ns: Option<u64>,
}

/// The figures of one run's signalling and the server's process.
#[derive(Clone, Debug, Default)]
pub struct LoadResult {
    pub offered: usize,
    pub up: usize,
    pub refused_503: usize,
    pub refused_503_retry_after: usize,
    pub failed_other: usize,
    pub timed_out: usize,
    pub invite_retransmissions: u64,
    /// INVITE → 200, µs.
    pub setup_us: Vec<u64>,
    /// INVITE → any final response, µs.
    pub answer_us: Vec<u64>,
    /// BYE → its final response, µs.
    pub bye_us: Vec<u64>,
    pub bye_unanswered: usize,
    pub ended_by_server: usize,
    /// From the first INVITE sent to the last 200 received.
    pub setup_span_s: f64,
    pub last_200_ns: Option<u64>,
    pub hold_s: f64,
    pub cpu_ticks_hold: Option<u64>,
    pub rss_before_kib: Option<u64>,
    pub rss_after_kib: Option<u64>,
    pub calls: Vec<CallMedia>,
    pub last_bye_answered_ns: Option<u64>,
}

/// The body of our offer: PCMU at 20 ms to `port`.
pub fn offer(ip: Ipv4Addr, port: u16, session: u64) -> String {
    format!(
        "v=0\r\no=bench {session} 1 IN IP4 {ip}\r\ns=onhold bench\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n"
    )
}

/// The media address of an SDP answer: the session or media `c=` address and the first audio
/// `m=` port. `None` without both (or for a non-IPv4 address).
pub fn answer_media(sdp: &str) -> Option<SocketAddrV4> {
    let mut ip: Option<Ipv4Addr> = None;
    let mut port: Option<u16> = None;
    for line in sdp.lines().map(str::trim) {
        if let Some(c) = line.strip_prefix("c=IN IP4 ") {
            if ip.is_none() || port.is_some() {
                ip = c.split('/').next().and_then(|a| a.trim().parse().ok());
            }
        } else if let Some(m) = line.strip_prefix("m=audio ") {
            if port.is_none() {
                port = m.split_whitespace().next().and_then(|p| p.parse().ok());
            }
        }
    }
    Some(SocketAddrV4::new(ip?, port?))
}

/// The call index at the start of a Call-ID of ours (`INDEX.TAG@onhold-bench`).
pub fn call_index(call_id: &str, run_tag: u64) -> Option<usize> {
    let (index, rest) = call_id.split_once('.')?;
    let (tag, host) = rest.split_once('@')?;
    if host != "onhold-bench" || tag.parse::<u64>().ok()? != run_tag {
        return None;
    }
    index.parse().ok()
}

/// The tag parameter of a From or To value.
fn tag_of(value: &str) -> Option<&str> {
    let after = value.rsplit_once('>').map_or(value, |(_, p)| p);
    after
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("tag"))
        .map(|(_, v)| v.trim())
}

/// The URI inside a Contact value's angle brackets (or the bare value up to a parameter).
fn contact_uri(value: &str) -> Option<String> {
    if let Some(start) = value.find('<') {
        let end = value[start..].find('>')? + start;
        return Some(value[start + 1..end].to_owned());
    }
    Some(value.split(';').next()?.trim().to_owned())
}

struct Engine<'a> {
    cfg: &'a LoadConfig,
    sock: UdpSocket,
    local: SocketAddrV4,
    calls: Vec<Call>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    result: LoadResult,
    branch: u64,
}

impl Engine<'_> {
    fn target_uri(&self) -> String {
        format!("sip:{}@{}", self.cfg.user, self.cfg.server)
    }

    fn call_id(&self, i: usize) -> String {
        format!("{i}.{}@onhold-bench", self.cfg.run_tag)
    }

    fn send(&self, text: &str) {
        // A lost datagram is what retransmission is for.
        let _ = self.sock.send_to(text.as_bytes(), self.cfg.server);
    }

    fn set_timer(&mut self, i: usize, at: Instant) {
        self.calls[i].timer = Some(at);
        self.timers.push(Reverse((at, i)));
    }

    fn invite_text(&self, i: usize) -> String {
        let port = self.cfg.rtp_ports[i % self.cfg.rtp_ports.len()];
        let body = offer(self.cfg.local_ip, port, i as u64);
        let (local, target) = (self.local, self.target_uri());
        format!(
            "INVITE {target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-i{i}-{tag};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:bench@{local}>;tag=b{i}\r\nTo: <{target}>\r\n\
             Call-ID: {cid}\r\nCSeq: 1 INVITE\r\nContact: <sip:bench@{local}>\r\n\
             User-Agent: onhold-bench\r\nContent-Type: application/sdp\r\n\
             Content-Length: {len}\r\n\r\n{body}",
            tag = self.cfg.run_tag,
            cid = self.call_id(i),
            len = body.len()
        )
    }

    fn send_invite(&mut self, i: usize, first: bool) {
        let text = self.invite_text(i);
        if first {
            self.calls[i].invite_sent_ns = rx::now_ns();
        } else {
            self.result.invite_retransmissions += 1;
        }
        self.send(&text);
    }

    /// ACK: for a 2xx a new transaction to the remote target; for an error response, part of
    /// the INVITE transaction (its branch, the INVITE's Request-URI).
    fn send_ack(&mut self, i: usize, success: bool) {
        let local = self.local;
        let call = &self.calls[i];
        let (uri, branch) = if success {
            self.branch += 1;
            (
                call.remote_target
                    .clone()
                    .unwrap_or_else(|| self.target_uri()),
                format!("z9hG4bK-a{i}-{}-{}", self.cfg.run_tag, self.branch),
            )
        } else {
            (
                self.target_uri(),
                format!("z9hG4bK-i{i}-{}", self.cfg.run_tag),
            )
        };
        let text = format!(
            "ACK {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:bench@{local}>;tag=b{i}\r\nTo: <{target}>;tag={to}\r\n\
             Call-ID: {cid}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
            target = self.target_uri(),
            to = call.to_tag,
            cid = self.call_id(i),
        );
        self.send(&text);
    }

    fn send_bye(&mut self, i: usize) {
        let local = self.local;
        let call = &self.calls[i];
        let text = format!(
            "BYE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-b{i}-{tag};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:bench@{local}>;tag=b{i}\r\nTo: <{target}>;tag={to}\r\n\
             Call-ID: {cid}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
            uri = call
                .remote_target
                .clone()
                .unwrap_or_else(|| self.target_uri()),
            tag = self.cfg.run_tag,
            target = self.target_uri(),
            to = call.to_tag,
            cid = self.call_id(i),
        );
        self.send(&text);
    }

    /// Answer a request from the server (its BYE, an OPTIONS) with 200, headers copied.
    fn answer_request(&mut self, msg: &Message<'_>, from: SocketAddrV4, method: &str) {
        let mut text = String::from("SIP/2.0 200 OK\r\n");
        for (name, value) in &msg.headers {
            let canon = crate::msg::canonical_name(name);
            if ["Via", "From", "To", "Call-ID", "CSeq"]
                .iter()
                .any(|h| h.eq_ignore_ascii_case(canon))
            {
                text.push_str(&format!("{canon}: {value}\r\n"));
            }
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        let _ = self.sock.send_to(text.as_bytes(), from);
        if method == "BYE" {
            if let Some(i) = msg
                .header("Call-ID")
                .and_then(|c| call_index(c, self.cfg.run_tag))
                .filter(|&i| i < self.calls.len())
            {
                let c = &mut self.calls[i];
                if matches!(c.state, State::Up | State::Byeing) {
                    c.ended_by_server = true;
                    c.state = State::Ended;
                    c.timer = None;
                }
            }
        }
    }

    fn on_datagram(&mut self, data: &[u8], from: Option<SocketAddrV4>, at_ns: u64) {
        let Some(msg) = Message::parse(data) else {
            return;
        };
        let code = match &msg.start {
            Start::Request { method, .. } => {
                if let Some(from) = from {
                    let method = method.to_string();
                    self.answer_request(&msg, from, &method);
                }
                return;
            }
            Start::Response { code, .. } => *code,
        };
        let Some(i) = msg
            .header("Call-ID")
            .and_then(|c| call_index(c, self.cfg.run_tag))
            .filter(|&i| i < self.calls.len())
        else {
            return;
        };
        let method = msg
            .header("CSeq")
            .and_then(|c| c.split_whitespace().nth(1))
            .unwrap_or("")
            .to_ascii_uppercase();
        let latency_us = |sent: u64| at_ns.saturating_sub(sent) / 1000;
        match method.as_str() {
            "INVITE" => {
                let state = self.calls[i].state;
                if code < 200 {
                    if state == State::Inviting && !self.calls[i].provisional {
                        // A provisional response stops retransmission (RFC 3261 §17.1.1.2);
                        // the final response still has until timer B.
                        self.calls[i].provisional = true;
                        let deadline = self.calls[i].deadline;
                        self.set_timer(i, deadline);
                    }
                    return;
                }
                if state != State::Inviting {
                    // A retransmitted final response: our ACK was lost or is on its way.
                    if (200..300).contains(&code)
                        && matches!(state, State::Up | State::Byeing | State::Ended)
                    {
                        self.send_ack(i, true);
                    } else if code >= 300 {
                        self.send_ack(i, false);
                    }
                    return;
                }
                let c = &mut self.calls[i];
                c.timer = None;
                c.to_tag = msg
                    .header("To")
                    .and_then(tag_of)
                    .unwrap_or_default()
                    .to_owned();
                self.result.answer_us.push(latency_us(c.invite_sent_ns));
                if (200..300).contains(&code) {
                    c.remote_target = msg.header("Contact").and_then(contact_uri);
                    c.media = std::str::from_utf8(&msg.body).ok().and_then(answer_media);
                    c.state = State::Up;
                    self.result.setup_us.push(latency_us(c.invite_sent_ns));
                    self.result.up += 1;
                    let last = self.result.last_200_ns.unwrap_or(0);
                    self.result.last_200_ns = Some(last.max(at_ns));
                    self.send_ack(i, true);
                } else {
                    if code == 503 {
                        c.state = State::Refused;
                        self.result.refused_503 += 1;
                        if msg.header("Retry-After").is_some() {
                            self.result.refused_503_retry_after += 1;
                        }
                    } else {
                        c.state = State::Failed;
                        self.result.failed_other += 1;
                    }
                    self.send_ack(i, false);
                }
            }
            "BYE" if code >= 200 => {
                let c = &mut self.calls[i];
                if c.state == State::Byeing {
                    c.state = State::Ended;
                    c.timer = None;
                    c.bye_answered_ns = Some(at_ns);
                    self.result.bye_us.push(latency_us(c.bye_sent_ns));
                    let last = self.result.last_bye_answered_ns.unwrap_or(0);
                    self.result.last_bye_answered_ns = Some(last.max(at_ns));
                }
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, i: usize, now: Instant) {
        let c = &self.calls[i];
        match c.state {
            State::Inviting => {
                if now >= c.deadline {
                    self.calls[i].state = State::TimedOut;
                    self.calls[i].timer = None;
                    self.result.timed_out += 1;
                } else if !c.provisional {
                    self.send_invite(i, false);
                    let c = &mut self.calls[i];
                    c.interval *= 2;
                    let at = (now + c.interval).min(c.deadline);
                    self.set_timer(i, at);
                }
            }
            State::Byeing => {
                if now >= c.deadline {
                    // Given up on: from here on its RTP counts as after the BYE too.
                    let at = rx::now_ns();
                    self.calls[i].state = State::Ended;
                    self.calls[i].timer = None;
                    self.calls[i].bye_answered_ns = Some(at);
                    self.result.bye_unanswered += 1;
                    let last = self.result.last_bye_answered_ns.unwrap_or(0);
                    self.result.last_bye_answered_ns = Some(last.max(at));
                } else {
                    self.send_bye(i);
                    let c = &mut self.calls[i];
                    c.interval = (c.interval * 2).min(T2);
                    let at = (now + c.interval).min(c.deadline);
                    self.set_timer(i, at);
                }
            }
            _ => self.calls[i].timer = None,
        }
    }

    /// Read what is queued, fire due timers, then wait until `until` or a datagram.
    fn turn(&mut self, batch: &mut Batch, until: Instant) {
        loop {
            match batch.recv(&self.sock) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    for k in 0..n {
                        let d = batch.get(k);
                        let (data, from, at) = (d.data.to_vec(), d.from, d.at_ns);
                        self.on_datagram(&data, from, at);
                    }
                }
            }
        }
        let now = Instant::now();
        while let Some(&Reverse((at, i))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            if self.calls[i].timer == Some(at) {
                self.on_timer(i, now);
            }
        }
        let next_timer = self.timers.peek().map_or(until, |r| r.0 .0);
        let wake = until.min(next_timer);
        let wait = wake.saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            wait_readable(&self.sock, wait);
        }
    }

    fn busy(&self, state: State) -> bool {
        self.calls.iter().any(|c| c.state == state)
    }
}

/// Wait until the socket has a datagram or `wait` passes (`ppoll`, nanosecond timeout).
fn wait_readable(sock: &UdpSocket, wait: Duration) {
    let mut pfd = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = libc::timespec {
        // `time_t`, whose width musl's libc crate is about to change.
        tv_sec: wait.as_secs() as _,
        tv_nsec: wait.subsec_nanos() as libc::c_long,
    };
    // SAFETY: one valid pollfd, a valid timespec, no signal mask.
    unsafe {
        libc::ppoll(&mut pfd, 1, &ts, std::ptr::null());
    }
}

/// Run the calls: ramp, hold, teardown. `windows` is stamped as the phases change.
pub fn run(cfg: &LoadConfig, windows: &Arc<Windows>) -> Result<LoadResult, String> {
    let sock = UdpSocket::bind((cfg.local_ip, 0)).map_err(|e| format!("SIP socket: {e}"))?;
    rx::prepare(&sock, 8 << 20, Duration::from_millis(1)).map_err(|e| e.to_string())?;
    sock.set_nonblocking(true).map_err(|e| e.to_string())?;
    let local = rx::v4(sock.local_addr().map_err(|e| e.to_string())?)
        .ok_or("the SIP socket is not IPv4")?;
    let now = Instant::now();
    let mut e = Engine {
        cfg,
        sock,
        local,
        calls: (0..cfg.calls)
            .map(|_| Call {
                state: State::Pending,
                invite_sent_ns: 0,
                timer: None,
                interval: T1,
                deadline: now,
                provisional: false,
                to_tag: String::new(),
                remote_target: None,
                media: None,
                bye_sent_ns: 0,
                bye_answered_ns: None,
                ended_by_server: false,
            })
            .collect(),
        timers: BinaryHeap::new(),
        result: LoadResult {
            offered: cfg.calls,
            ..LoadResult::default()
        },
        branch: 0,
    };
    let mut batch = Batch::new();
    let pid_stat = cfg.pid.map(|p| format!("/proc/{p}/stat"));
    e.result.rss_before_kib = cfg.pid.and_then(stats::rss_kib);

    // Ramp: INVITE number i is due at start + i / cps.
    let spacing = Duration::from_secs_f64(1.0 / cfg.cps);
    let start = Instant::now();
    let first_ns = rx::now_ns();
    let mut next = 0;
    while next < cfg.calls {
        let now = Instant::now();
        while next < cfg.calls && start + spacing.mul_f64(next as f64) <= now {
            let c = &mut e.calls[next];
            c.state = State::Inviting;
            c.deadline = now + cfg.timeout;
            c.interval = T1;
            e.send_invite(next, true);
            e.set_timer(next, now + T1);
            next += 1;
        }
        let due = start + spacing.mul_f64(next as f64);
        e.turn(&mut batch, due);
    }
    // Every INVITE answered or timed out.
    while e.busy(State::Inviting) {
        e.turn(&mut batch, Instant::now() + Duration::from_millis(5));
    }
    if let Some(last) = e.result.last_200_ns {
        e.result.setup_span_s = last.saturating_sub(first_ns) as f64 / 1e9;
    }

    // Hold.
    e.result.rss_after_kib = cfg.pid.and_then(stats::rss_kib);
    let hold_start = Instant::now();
    Windows::set(&windows.hold_from, rx::now_ns());
    let cpu0 = pid_stat.as_deref().and_then(stats::cpu_ticks);
    while hold_start.elapsed() < cfg.hold {
        e.turn(&mut batch, hold_start + cfg.hold);
    }
    let cpu1 = pid_stat.as_deref().and_then(stats::cpu_ticks);
    Windows::set(&windows.hold_until, rx::now_ns());
    e.result.hold_s = hold_start.elapsed().as_secs_f64();
    e.result.cpu_ticks_hold = cpu0.zip(cpu1).map(|(a, b)| b.saturating_sub(a));

    // Teardown: BYEs at the same rate.
    Windows::set(&windows.teardown_from, rx::now_ns());
    let up: Vec<usize> = (0..e.calls.len())
        .filter(|&i| e.calls[i].state == State::Up)
        .collect();
    let start = Instant::now();
    let mut next = 0;
    while next < up.len() {
        let now = Instant::now();
        while next < up.len() && start + spacing.mul_f64(next as f64) <= now {
            let i = up[next];
            next += 1;
            if e.calls[i].state != State::Up {
                continue;
            }
            let c = &mut e.calls[i];
            c.state = State::Byeing;
            c.deadline = now + cfg.timeout;
            c.interval = T1;
            c.bye_sent_ns = rx::now_ns();
            e.send_bye(i);
            e.set_timer(i, now + T1);
        }
        let due = start + spacing.mul_f64(next as f64);
        e.turn(&mut batch, due);
    }
    while e.busy(State::Byeing) {
        e.turn(&mut batch, Instant::now() + Duration::from_millis(5));
    }
    let drain = Instant::now() + DRAIN;
    while Instant::now() < drain {
        e.turn(&mut batch, drain);
    }
    e.result.ended_by_server = e.calls.iter().filter(|c| c.ended_by_server).count();
    e.result.calls = e
        .calls
        .iter()
        .map(|c| CallMedia {
            media: c.media,
            bye_answered_ns: c.bye_answered_ns,
        })
        .collect();
    Ok(e.result)
}

/// Send OPTIONS until a 200 comes back (the server is up) or `within` passes.
pub fn wait_ready(server: SocketAddr, within: Duration) -> bool {
    let Ok(sock) = UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    let _ = sock.set_read_timeout(Some(Duration::from_millis(100)));
    let local = sock.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let deadline = Instant::now() + within;
    let mut n = 0;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        n += 1;
        let text = format!(
            "OPTIONS sip:ping@{server} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-o{n}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:bench@{local}>;tag=o{n}\r\nTo: <sip:ping@{server}>\r\n\
             Call-ID: ready-{n}@onhold-bench\r\nCSeq: {n} OPTIONS\r\nContent-Length: 0\r\n\r\n"
        );
        let _ = sock.send_to(text.as_bytes(), server);
        let until = Instant::now() + Duration::from_millis(100);
        while Instant::now() < until {
            if let Ok((len, _)) = sock.recv_from(&mut buf) {
                if let Some(Message {
                    start: Start::Response { code, .. },
                    ..
                }) = Message::parse(&buf[..len])
                {
                    // Any final answer means it is reading SIP (SIPp answers OPTIONS with
                    // nothing unless scripted, so its readiness is judged elsewhere).
                    if code >= 200 {
                        return true;
                    }
                }
            } else {
                break;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_media_is_its_connection_address_and_audio_port() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                   m=audio 20002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
        assert_eq!(answer_media(sdp), Some("127.0.0.1:20002".parse().unwrap()));
        // A media-level c= wins over the session's.
        let sdp = "v=0\nc=IN IP4 10.0.0.1\nm=audio 4000 RTP/AVP 0\nc=IN IP4 127.0.0.5\n";
        assert_eq!(answer_media(sdp), Some("127.0.0.5:4000".parse().unwrap()));
        assert_eq!(answer_media("v=0\r\nm=audio 4000 RTP/AVP 0\r\n"), None);
        let ours = offer(Ipv4Addr::LOCALHOST, 30000, 1);
        assert_eq!(
            answer_media(&ours),
            Some("127.0.0.1:30000".parse().unwrap())
        );
    }

    #[test]
    fn call_ids_carry_the_index_and_the_run() {
        assert_eq!(call_index("17.99@onhold-bench", 99), Some(17));
        assert_eq!(call_index("17.98@onhold-bench", 99), None);
        assert_eq!(call_index("17.99@elsewhere", 99), None);
        assert_eq!(call_index("x.99@onhold-bench", 99), None);
    }

    #[test]
    fn tags_and_contacts_are_read_from_header_values() {
        assert_eq!(tag_of("<sip:moh@h;x=1>;tag=abc ;foo"), Some("abc"));
        assert_eq!(tag_of("sip:moh@h;tag=z"), Some("z"));
        assert_eq!(tag_of("<sip:moh@h;tag=inside>"), None);
        assert_eq!(
            contact_uri("\"x\" <sip:moh@127.0.0.1:5060;transport=udp>;expires=5").as_deref(),
            Some("sip:moh@127.0.0.1:5060;transport=udp")
        );
        assert_eq!(
            contact_uri("sip:moh@127.0.0.1;lr").as_deref(),
            Some("sip:moh@127.0.0.1")
        );
    }
}
