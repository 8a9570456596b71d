//! The discrete-event loop: virtual time, the core, one caller, a faulty link, and the wire as
//! our core sees it.
//!
//! Time is an `Instant` base taken once plus a `Duration` offset; everything reported is the
//! offset, so output never depends on when the run happened. Events sit in a `BinaryHeap` keyed
//! by (time, insertion sequence): equal times keep insertion order, so a run is a pure function
//! of the capture, the link settings and the seed.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::rng::Rng;
use onhold_core::media::Library;
use onhold_core::server::Network;
use onhold_core::{Command, Event, Server, ServerConfig, TransmitKind, Transport, MAX_DATAGRAM};

use crate::replay::{Caller, CallerPlan};

/// Seeded network faults applied to SIP between the caller and our core, both ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkFaults {
    /// Parts per million of datagrams dropped.
    pub loss_ppm: u32,
    /// Parts per million delivered twice.
    pub dup_ppm: u32,
    /// Parts per million held back long enough for later ones to overtake.
    pub reorder_ppm: u32,
    pub delay: Duration,
    /// Extra delay, uniform in 0..=jitter.
    pub jitter: Duration,
}

impl LinkFaults {
    pub fn is_clean(&self) -> bool {
        *self == LinkFaults::default()
    }

    /// `loss 1% dup 0.1% …` for reports.
    pub fn describe(&self) -> String {
        if self.is_clean() {
            return "clean".into();
        }
        let pct = |ppm: u32| format!("{}%", ppm as f64 / 10_000.0);
        format!(
            "loss {} dup {} reorder {} delay {}ms jitter {}ms",
            pct(self.loss_ppm),
            pct(self.dup_ppm),
            pct(self.reorder_ppm),
            self.delay.as_millis(),
            self.jitter.as_millis()
        )
    }
}

/// Which way a datagram crossed our core's edge of the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// Delivered to the core (after link faults).
    In,
    /// Transmitted by the core (before link faults).
    Out,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sip,
    Rtp,
    Rtcp,
}

/// One datagram at our core's side of the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WirePacket {
    pub at: Duration,
    pub way: Way,
    pub kind: Kind,
    /// The core's address.
    pub local: SocketAddr,
    /// The peer's address.
    pub remote: SocketAddr,
    pub bytes: Vec<u8>,
}

/// What a run produced: the wire at the core's side and the core's events.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    pub wire: Vec<WirePacket>,
    pub events: Vec<(Duration, Event)>,
    /// When the run stopped (virtual).
    pub end: Duration,
    /// RTP/RTCP packets sent but not recorded (`RunConfig::record_media` off).
    pub media_packets: u64,
    /// Runtime stalls injected by `RunConfig::stalls`: (deadline missed, actual wake-up).
    pub stalls: Vec<(Duration, Duration)>,
}

enum Queued {
    /// The runtime finished binding an RTP port (after `RunConfig::bind_delay`).
    Bound(u16),
    ToCore {
        local: SocketAddr,
        remote: SocketAddr,
        bytes: Vec<u8>,
    },
    ToCaller {
        src: SocketAddr,
        dst: SocketAddr,
        bytes: Vec<u8>,
    },
}

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub seed: u64,
    pub faults: LinkFaults,
    /// How long to keep running after the caller's last captured message (our core may still
    /// retransmit, time out an ACK and send BYE: 64·T1 = 32 s, plus its retransmissions).
    pub tail: Duration,
    /// Record RTP payloads in the trace (the pacing verdict needs headers only; the pcap output
    /// needs the bytes).
    pub keep_rtp_payload: bool,
    /// Record RTP/RTCP at all (off: only counted, for the throughput bench; no pacing verdict).
    pub record_media: bool,
    /// How long the runtime takes to bind an RTP port (0: at once). The core holds its 2xx
    /// until then, which opens the window for CANCEL → 487.
    pub bind_delay: Duration,
    /// A runtime that sometimes wakes late: (parts per million of the core's timer wake-ups,
    /// how late). Exercises the core's bounded catch-up and `Event::Late`.
    pub stalls: (u32, Duration),
    /// The simulated resolver: host name (lower case) → address, answered at once. A name
    /// not here resolves to nothing (the core then sends to the caller's source address).
    pub hosts: BTreeMap<String, IpAddr>,
    /// What the caller does besides replaying the capture: RTP it sends, when it vanishes.
    pub caller: CallerPlan,
    /// The core's in-dialog OPTIONS keep-alive (`ServerConfig::keepalive_interval`; off by
    /// default, as in the core).
    pub keepalive_interval: Option<Duration>,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            seed: 1,
            faults: LinkFaults::default(),
            tail: Duration::from_secs(40),
            keep_rtp_payload: true,
            record_media: true,
            bind_delay: Duration::ZERO,
            stalls: (0, Duration::ZERO),
            hosts: BTreeMap::new(),
            caller: CallerPlan::default(),
            keepalive_interval: None,
        }
    }
}

/// The core configuration the simulator runs: defaults, with RTP on the callee's address, and
/// SIP taken from every address: a capture's callers are wherever they were (public hosts in
/// the public captures), and the captured server answered them.
pub fn server_config(core_ip: IpAddr) -> ServerConfig {
    ServerConfig {
        rtp_ip: core_ip,
        allow: ["0.0.0.0/0", "::/0"]
            .iter()
            .filter_map(|n| Network::parse(n))
            .collect(),
        ..ServerConfig::default()
    }
}

pub struct Sim {
    base: Instant,
    now: Duration,
    heap: BinaryHeap<Reverse<(Duration, u64)>>,
    queued: BTreeMap<u64, Queued>,
    seq: u64,
    link: Rng,
    faults: LinkFaults,
    pub server: Server,
    pub caller: Caller,
    trace: Trace,
    buf: Vec<u8>,
    keep_rtp_payload: bool,
    record_media: bool,
    bind_delay: Duration,
    stalls: (u32, Duration),
    hosts: BTreeMap<String, IpAddr>,
    /// The core's timers are not served before this (a stall in progress).
    stalled_until: Duration,
}

impl Sim {
    pub fn new(caller: Caller, config: ServerConfig, run: &RunConfig) -> Sim {
        let base = Instant::now();
        // A fixed wall-clock epoch: RTCP NTP timestamps must not depend on the day of the run.
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let server = Server::new(config, Arc::new(Library::silence()), run.seed, base, wall);
        Sim {
            base,
            now: Duration::ZERO,
            heap: BinaryHeap::new(),
            queued: BTreeMap::new(),
            seq: 0,
            // The link draws from its own stream so faults do not shift the core's randomness.
            link: Rng::new(run.seed ^ 0x6c69_6e6b),
            faults: run.faults,
            server,
            caller,
            trace: Trace::default(),
            buf: vec![0; MAX_DATAGRAM],
            keep_rtp_payload: run.keep_rtp_payload,
            record_media: run.record_media,
            bind_delay: run.bind_delay,
            stalls: run.stalls,
            hosts: run.hosts.clone(),
            stalled_until: Duration::ZERO,
        }
    }

    fn push(&mut self, at: Duration, q: Queued) {
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq)));
        self.queued.insert(self.seq, q);
    }

    /// Put a datagram on the faulty link: zero, one or two deliveries.
    fn send_over_link(&mut self, make: impl Fn() -> Queued) {
        let f = self.faults;
        if f.is_clean() {
            self.push(self.now, make());
            return;
        }
        let chance = |rng: &mut Rng, ppm: u32| ppm > 0 && rng.below(1_000_000) < ppm as u64;
        if chance(&mut self.link, f.loss_ppm) {
            return;
        }
        let copies = if chance(&mut self.link, f.dup_ppm) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let jitter = if f.jitter.is_zero() {
                Duration::ZERO
            } else {
                Duration::from_nanos(self.link.below(f.jitter.as_nanos() as u64 + 1))
            };
            let mut delay = f.delay + jitter;
            if chance(&mut self.link, f.reorder_ppm) {
                delay += f.jitter * 2 + Duration::from_millis(10);
            }
            self.push(self.now + delay, make());
        }
    }

    /// Run until `until` or until nothing is left to do.
    pub fn run(mut self, until: Duration) -> (Trace, Caller) {
        let mut stuck = 0u32;
        loop {
            self.drain_core();
            self.drain_caller();
            let next_q = self.heap.peek().map(|r| r.0 .0);
            let next_core = self.server.poll_timeout().map(|t| {
                t.saturating_duration_since(self.base)
                    .max(self.stalled_until)
            });
            let next_caller = self.caller.poll_timeout();
            let Some(next) = [next_q, next_core, next_caller].into_iter().flatten().min() else {
                break;
            };
            if next > until {
                break;
            }
            if next <= self.now
                && next_q.is_none_or(|q| q > self.now)
                && next_caller.is_none_or(|c| c > self.now)
            {
                stuck += 1;
                assert!(
                    stuck < 100_000,
                    "the core keeps asking for a timeout at {:?} without progress",
                    self.now
                );
            } else {
                stuck = 0;
            }
            self.now = self.now.max(next);
            // Equal times: deliveries first (insertion order), then the caller's script, then
            // the core's timers.
            while let Some(&Reverse((at, id))) = self.heap.peek() {
                if at > self.now {
                    break;
                }
                self.heap.pop();
                let q = self.queued.remove(&id).expect("queued entry");
                self.deliver(q);
                self.drain_core();
            }
            if next_caller.is_some_and(|c| c <= self.now) {
                self.caller.handle_timeout(self.now);
            }
            if next_core.is_some_and(|c| c <= self.now) {
                let (ppm, late) = self.stalls;
                // Not at the very wake-up that ends a stall: that one is served.
                if self.now > self.stalled_until
                    && ppm > 0
                    && self.link.below(1_000_000) < ppm as u64
                {
                    // The runtime oversleeps this deadline.
                    self.stalled_until = self.now + late;
                    self.trace.stalls.push((self.now, self.stalled_until));
                } else {
                    self.server.handle_timeout(self.base + self.now);
                }
            }
        }
        self.trace.end = self.now;
        (self.trace, self.caller)
    }

    fn deliver(&mut self, q: Queued) {
        match q {
            Queued::ToCore {
                local,
                remote,
                bytes,
            } => {
                self.server.handle_datagram(
                    self.base + self.now,
                    Transport::Udp,
                    local,
                    remote,
                    &bytes,
                );
                // Stray media (an RTP-only capture) is recorded as such, not as SIP.
                let kind = if onhold_probe::msg::Message::parse(&bytes).is_some() {
                    Kind::Sip
                } else {
                    Kind::Rtp
                };
                self.trace.wire.push(WirePacket {
                    at: self.now,
                    way: Way::In,
                    kind,
                    local,
                    remote,
                    bytes,
                });
            }
            Queued::Bound(port) => self
                .server
                .rtp_bind_result(self.base + self.now, port, true),
            Queued::ToCaller { src, dst, bytes } => {
                self.caller.handle_datagram(self.now, src, dst, &bytes)
            }
        }
    }

    fn drain_caller(&mut self) {
        while let Some(s) = self.caller.poll_send() {
            self.send_over_link(|| Queued::ToCore {
                local: s.dst,
                remote: s.src,
                bytes: s.bytes.clone(),
            });
        }
    }

    fn drain_core(&mut self) {
        let now = self.base + self.now;
        loop {
            let mut progressed = false;
            while let Some(cmd) = self.server.poll_command() {
                progressed = true;
                match cmd {
                    Command::BindRtp { port, .. } => {
                        if self.bind_delay.is_zero() {
                            self.server.rtp_bind_result(now, port, true);
                        } else {
                            self.push(self.now + self.bind_delay, Queued::Bound(port));
                        }
                    }
                    Command::Resolve {
                        host,
                        port,
                        transport,
                    } => {
                        let found: Vec<SocketAddr> = self
                            .hosts
                            .get(&host.to_ascii_lowercase())
                            .map(|ip| SocketAddr::new(*ip, port.unwrap_or(5060)))
                            .into_iter()
                            .collect();
                        self.server.resolved(now, &host, port, transport, &found);
                    }
                    Command::UnbindRtp { .. } => {}
                }
            }
            while let Some(t) = self.server.poll_transmit(now, &mut self.buf) {
                progressed = true;
                let kind = match t.kind {
                    TransmitKind::Sip => Kind::Sip,
                    TransmitKind::Rtp => Kind::Rtp,
                    TransmitKind::Rtcp => Kind::Rtcp,
                };
                if kind != Kind::Sip && !self.record_media {
                    self.trace.media_packets += 1;
                    continue;
                }
                let bytes = self.buf[..t.len].to_vec();
                if kind == Kind::Sip {
                    let (src, dst) = (t.local, t.remote);
                    let b = bytes.clone();
                    self.send_over_link(move || Queued::ToCaller {
                        src,
                        dst,
                        bytes: b.clone(),
                    });
                }
                let bytes = if kind == Kind::Rtp && !self.keep_rtp_payload {
                    bytes[..bytes.len().min(12)].to_vec()
                } else {
                    bytes
                };
                self.trace.wire.push(WirePacket {
                    at: self.now,
                    way: Way::Out,
                    kind,
                    local: t.local,
                    remote: t.remote,
                    bytes,
                });
            }
            while let Some(ev) = self.server.poll_event() {
                progressed = true;
                self.trace.events.push((self.now, ev));
            }
            if !progressed {
                break;
            }
        }
    }
}
