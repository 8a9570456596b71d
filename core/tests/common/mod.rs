//! A virtual-time harness for `Server`: feed datagrams, step time, and render the exchange as
//! readable text (`+0.000 → INVITE …` / `+0.000 ← 100 Trying`) for snapshots.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use onhold_core::media::Library;
use onhold_core::{
    Command, Event, Server, ServerConfig, Transmit, TransmitKind, Transport, MAX_DATAGRAM,
};

pub const PHONE: &str = "192.168.1.50:5060";
pub const SERVER: &str = "192.168.1.100:5060";

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// One datagram the server sent.
#[derive(Clone, Debug)]
pub struct Sent {
    pub at: Duration,
    pub t: Transmit,
    pub bytes: Vec<u8>,
}

impl Sent {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
    pub fn start_line(&self) -> String {
        self.text().lines().next().unwrap_or("").to_string()
    }
    pub fn header(&self, name: &str) -> Option<String> {
        let text = self.text();
        let head = text.split("\r\n\r\n").next().unwrap_or("");
        head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
    pub fn body(&self) -> String {
        let text = self.text();
        text.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default()
    }
    /// The caller's response to this request of ours (BYE, UPDATE): its Via, From, To, Call-ID
    /// and CSeq copied back, as RFC 3261 §8.2.6.2 asks.
    pub fn reply(&self, status: &str) -> String {
        let h = |n: &str| self.header(n).unwrap_or_default();
        format!(
            "SIP/2.0 {status}\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
            h("Via"),
            h("From"),
            h("To"),
            h("Call-ID"),
            h("CSeq")
        )
    }

    /// The tag parameter of the To header.
    pub fn to_tag(&self) -> Option<String> {
        let to = self.header("To")?;
        let i = to.find(";tag=")?;
        Some(to[i + 5..].split(';').next()?.to_string())
    }
    pub fn rtp_seq(&self) -> u16 {
        u16::from_be_bytes([self.bytes[2], self.bytes[3]])
    }
    pub fn rtp_ts(&self) -> u32 {
        u32::from_be_bytes([self.bytes[4], self.bytes[5], self.bytes[6], self.bytes[7]])
    }
    pub fn rtp_ssrc(&self) -> u32 {
        u32::from_be_bytes([self.bytes[8], self.bytes[9], self.bytes[10], self.bytes[11]])
    }
    pub fn rtp_marker(&self) -> bool {
        self.bytes[1] & 0x80 != 0
    }
    pub fn rtp_pt(&self) -> u8 {
        self.bytes[1] & 0x7f
    }
}

pub struct Harness {
    pub server: Server,
    pub t0: Instant,
    pub now: Instant,
    pub sent: Vec<Sent>,
    pub events: Vec<(Duration, Event)>,
    pub commands: Vec<(Duration, Command)>,
    /// Transcript: one line per SIP message in or out, RTP summarised.
    pub log: String,
    /// Refuse the next N BindRtp commands (simulates ports taken by other programs).
    pub refuse_binds: u32,
    /// Leave BindRtp unanswered until `release_binds` (an INVITE stays unanswered meanwhile).
    pub hold_binds: bool,
    /// The transport datagrams arrive on (`send`, `send_bytes`).
    pub transport: Transport,
    /// The resolver `Command::Resolve` is answered from (host name → IP); other names resolve
    /// to nothing. With `hold_resolves`, answers wait for `release_resolves`.
    pub hosts: std::collections::BTreeMap<String, std::net::IpAddr>,
    pub hold_resolves: bool,
    held_resolves: Vec<(String, Option<u16>, Transport)>,
    held: Vec<u16>,
    /// RTP since the last SIP line, per destination in order of appearance: (dest, packets).
    pending_rtp: Vec<(SocketAddr, u64)>,
}

/// Any instant will do: the harness only ever adds to it.
#[allow(clippy::disallowed_methods)]
fn origin() -> Instant {
    Instant::now()
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with(ServerConfig::default(), Library::silence())
    }

    pub fn with(config: ServerConfig, library: Library) -> Harness {
        let t0 = origin();
        let server = Server::new(
            config,
            Arc::new(library),
            42,
            t0,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        );
        Harness {
            server,
            t0,
            now: t0,
            sent: Vec::new(),
            events: Vec::new(),
            commands: Vec::new(),
            log: String::new(),
            refuse_binds: 0,
            hold_binds: false,
            transport: Transport::Udp,
            hosts: Default::default(),
            hold_resolves: false,
            held_resolves: Vec::new(),
            held: Vec::new(),
            pending_rtp: Vec::new(),
        }
    }

    /// The harness's virtual time now.
    pub fn now(&self) -> Instant {
        self.now
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    fn stamp(d: Duration) -> String {
        format!("+{}.{:03}", d.as_secs(), d.subsec_millis())
    }

    /// Deliver a SIP datagram from `from` to the server's SIP address.
    pub fn send(&mut self, from: &str, text: &str) {
        self.send_bytes(from, text.as_bytes());
    }

    pub fn send_bytes(&mut self, from: &str, bytes: &[u8]) {
        self.send_to(SERVER, from, bytes);
    }

    /// Deliver a SIP datagram from `from` to our address `local` (one of several listeners, or
    /// the local IP a wildcard listener was reached at).
    pub fn send_to(&mut self, local: &str, from: &str, bytes: &[u8]) {
        self.flush_rtp();
        let first = String::from_utf8_lossy(bytes)
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
        let _ = writeln!(self.log, "{} → {first}", Self::stamp(self.elapsed()));
        self.server
            .handle_datagram(self.now, self.transport, addr(local), addr(from), bytes);
        self.drain();
    }

    /// The network reports `remote` unreachable from our socket `local` (an ICMP error).
    pub fn unreachable(&mut self, local: SocketAddr, remote: SocketAddr) {
        self.server.unreachable(self.now, local, remote);
        self.drain();
    }

    /// An RTP packet from `from` to our socket `local`.
    pub fn rtp_in(&mut self, from: SocketAddr, local: SocketAddr) {
        let packet = [0x80, 0, 0, 1, 0, 0, 0, 160, 1, 2, 3, 4];
        self.server
            .handle_datagram(self.now, Transport::Udp, local, from, &packet);
        self.drain();
    }

    /// Drain commands (binding every port), transmissions and events at the current time.
    pub fn drain(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(cmd) = self.server.poll_command() {
                progressed = true;
                self.commands.push((self.elapsed(), cmd.clone()));
                match cmd {
                    Command::BindRtp { port, .. } => {
                        if self.hold_binds {
                            self.held.push(port);
                            continue;
                        }
                        let ok = if self.refuse_binds > 0 {
                            self.refuse_binds -= 1;
                            false
                        } else {
                            true
                        };
                        self.server.rtp_bind_result(self.now, port, ok);
                    }
                    Command::Resolve {
                        host,
                        port,
                        transport,
                    } => {
                        if self.hold_resolves {
                            self.held_resolves.push((host, port, transport));
                        } else {
                            self.answer_resolve(&host, port, transport);
                        }
                    }
                    Command::UnbindRtp { .. } => {}
                }
            }
            let mut buf = vec![0u8; MAX_DATAGRAM];
            while let Some(t) = self.server.poll_transmit(self.now, &mut buf) {
                progressed = true;
                let s = Sent {
                    at: self.elapsed(),
                    t,
                    bytes: buf[..t.len].to_vec(),
                };
                self.record(&s);
                self.sent.push(s);
            }
            while let Some(ev) = self.server.poll_event() {
                progressed = true;
                self.events.push((self.elapsed(), ev));
            }
            if !progressed {
                break;
            }
        }
    }

    fn record(&mut self, s: &Sent) {
        match s.t.kind {
            TransmitKind::Sip => {
                self.flush_rtp();
                let _ = writeln!(
                    self.log,
                    "{} ← {}  (to {})",
                    Self::stamp(s.at),
                    s.start_line(),
                    s.t.remote
                );
            }
            TransmitKind::Rtp => {
                match self.pending_rtp.iter_mut().find(|(d, _)| *d == s.t.remote) {
                    Some((_, n)) => *n += 1,
                    None => {
                        self.pending_rtp.push((s.t.remote, 1));
                        let _ = writeln!(
                            self.log,
                            "{} ← RTP PT {} to {}{}",
                            Self::stamp(s.at),
                            s.rtp_pt(),
                            s.t.remote,
                            if s.rtp_marker() { " (marker)" } else { "" }
                        );
                    }
                }
            }
            TransmitKind::Rtcp => {
                self.flush_rtp();
                let bye = s.bytes.windows(2).any(|w| w == [0x81, 203]);
                let _ = writeln!(
                    self.log,
                    "{} ← RTCP SR{} to {}",
                    Self::stamp(s.at),
                    if bye { "+BYE" } else { "" },
                    s.t.remote
                );
            }
        }
    }

    fn flush_rtp(&mut self) {
        for (dest, n) in std::mem::take(&mut self.pending_rtp) {
            let _ = writeln!(self.log, "        … {n} RTP packets to {dest}");
        }
    }

    /// Advance virtual time by `d`, waking exactly at every deadline the server asks for.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            match self.server.poll_timeout() {
                Some(t) if t <= end => {
                    if t > self.now {
                        self.now = t;
                    }
                    self.server.handle_timeout(self.now);
                    self.drain();
                }
                _ => break,
            }
        }
        self.now = end;
        self.server.handle_timeout(self.now);
        self.drain();
    }

    fn answer_resolve(&mut self, host: &str, port: Option<u16>, transport: Transport) {
        let found: Vec<SocketAddr> = self
            .hosts
            .get(host)
            .map(|ip| SocketAddr::new(*ip, port.unwrap_or(5060)))
            .into_iter()
            .collect();
        self.server
            .resolved(self.now, host, port, transport, &found);
    }

    /// Answer every held `Command::Resolve` from `hosts`.
    pub fn release_resolves(&mut self) {
        self.hold_resolves = false;
        for (host, port, transport) in std::mem::take(&mut self.held_resolves) {
            self.answer_resolve(&host, port, transport);
        }
        self.drain();
    }

    /// Answer every held BindRtp with success.
    pub fn release_binds(&mut self) {
        self.hold_binds = false;
        for port in std::mem::take(&mut self.held) {
            self.server.rtp_bind_result(self.now, port, true);
        }
        self.drain();
    }

    pub fn transcript(&mut self) -> String {
        self.flush_rtp();
        self.log.clone()
    }

    pub fn sip(&self) -> Vec<&Sent> {
        self.sent
            .iter()
            .filter(|s| s.t.kind == TransmitKind::Sip)
            .collect()
    }

    pub fn rtp(&self) -> Vec<&Sent> {
        self.sent
            .iter()
            .filter(|s| s.t.kind == TransmitKind::Rtp)
            .collect()
    }

    /// The first call whose media started (`Event::CallStarted`).
    pub fn started_call(&self) -> Option<onhold_core::CallHandle> {
        self.events.iter().find_map(|(_, e)| match e {
            Event::CallStarted { call, .. } => Some(*call),
            _ => None,
        })
    }

    pub fn last_sip(&self) -> &Sent {
        self.sip().last().copied().expect("the server sent no SIP")
    }

    /// The last response whose status line starts with `prefix` (e.g. "SIP/2.0 200").
    pub fn response(&self, prefix: &str) -> &Sent {
        self.sip()
            .into_iter()
            .rev()
            .find(|s| s.start_line().starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} sent; transcript:\n{}", self.log))
    }
}

/// SDP as a DP750 writes it (see shared/dp750/): `o=<user> 8000 8000`, `s=SIP Call`, direction
/// before the rtpmaps, ptime after the first rtpmap.
pub fn dp750_sdp(ip: &str, port: u16, direction: &str) -> String {
    format!(
        "v=0\r\no=201 8000 8000 IN IP4 {ip}\r\ns=SIP Call\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 8 9 18 101\r\na={direction}\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:9 G722/8000\r\na=rtpmap:18 G729/8000\r\na=fmtp:18 annexb=no\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
    )
}

/// A DP750-shaped request (header order, User-Agent, padded Content-Length).
pub struct Dp750 {
    pub call_id: String,
    pub from_tag: String,
    pub to_tag: Option<String>,
    pub cseq: u32,
    pub branch: String,
    pub user: String,
    /// The Via's transport (`UDP`, `TCP`).
    pub transport: &'static str,
}

impl Dp750 {
    pub fn new(n: u32) -> Dp750 {
        Dp750 {
            call_id: format!("{}-5060-7@BJC.BGI.B.FA", 914337310 + n),
            from_tag: format!("{}", 402719332 + n),
            to_tag: None,
            cseq: 21,
            branch: format!("z9hG4bK{}", 1603442871u64 + n as u64),
            user: "123".into(),
            transport: "UDP",
        }
    }

    pub fn next_branch(&mut self) {
        let n: u64 = self.branch[7..].parse().unwrap();
        self.branch = format!("z9hG4bK{}", n + 1000);
    }

    pub fn request(&self, method: &str, body: Option<&str>, extra: &[&str]) -> String {
        let to_tag = self
            .to_tag
            .as_ref()
            .map(|t| format!(";tag={t}"))
            .unwrap_or_default();
        let mut m = format!(
            "{method} sip:{user}@192.168.1.100:5060 SIP/2.0\r\nVia: SIP/2.0/{transport} 192.168.1.50:5060;branch={branch};rport\r\nFrom: \"Reception\" <sip:201@192.168.1.10>;tag={from_tag}\r\nTo: <sip:{user}@192.168.1.100:5060>{to_tag}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {cseq_method}\r\nContact: \"Reception\" <sip:201@192.168.1.50:5060>\r\nMax-Forwards: 70\r\nUser-Agent: Grandstream DP750 1.0.3.37\r\n",
            user = self.user,
            branch = self.branch,
            from_tag = self.from_tag,
            call_id = self.call_id,
            cseq = self.cseq,
            cseq_method = method,
            transport = self.transport,
        );
        if method == "INVITE" {
            m.push_str("Privacy: none\r\nP-Preferred-Identity: \"Reception\" <sip:201@192.168.1.10>\r\nSupported: replaces, path, timer, eventlist\r\nAllow: INVITE, ACK, OPTIONS, CANCEL, BYE, SUBSCRIBE, NOTIFY, INFO, REFER, UPDATE, MESSAGE\r\n");
        }
        for e in extra {
            m.push_str(e);
            m.push_str("\r\n");
        }
        match body {
            Some(b) => {
                if b.starts_with("v=0") {
                    m.push_str("Content-Type: application/sdp\r\n");
                }
                m.push_str("Accept: application/sdp, application/dtmf-relay\r\n");
                let _ = write!(m, "Content-Length:   {}\r\n\r\n{b}", b.len());
            }
            None => m.push_str("Content-Length:   0\r\n\r\n"),
        }
        m
    }

    /// The ACK for a 2xx: a new transaction, so a new branch (RFC 3261 §13.2.2.4).
    pub fn ack(&mut self, body: Option<&str>) -> String {
        self.next_branch();
        self.request("ACK", body, &[])
    }
}

/// A mono 16-bit PCM WAV file around `samples` at `rate` Hz (test music, no encoder needed).
pub fn wav(rate: u32, samples: &[i16]) -> Vec<u8> {
    let data_len = samples.len() as u32 * 2;
    let mut w = Vec::with_capacity(44 + data_len as usize);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data_len).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    w.extend_from_slice(&1u16.to_le_bytes()); // PCM
    w.extend_from_slice(&1u16.to_le_bytes()); // mono
    w.extend_from_slice(&rate.to_le_bytes());
    w.extend_from_slice(&(rate * 2).to_le_bytes()); // byte rate
    w.extend_from_slice(&2u16.to_le_bytes()); // block align
    w.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        w.extend_from_slice(&s.to_le_bytes());
    }
    w
}
