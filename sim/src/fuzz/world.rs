//! The world around the server: phones that place calls and act in them, attackers that aim
//! at those calls, everyone else sending seeds and damaged or random datagrams, now and then a
//! burst or a flood; and the phones' answers to what the server sends. Everything it does is
//! drawn from its seed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use onhold_core::sip::{self, Method};
use onhold_core::{CallHandle, Transport};

use super::generate::{self, token, Leg};
use super::msg::Msg;
use super::rig::{self, Rig, Step};
use super::{corpus, mutate, Dice};
use crate::rng::Rng;

/// Calls the fuzzer keeps placing and attacking at a time.
const CALLS: usize = 8;

/// Where a call the fuzzer placed stands.
#[derive(Clone, Debug)]
enum State {
    /// INVITE sent, no final response yet.
    Inviting {
        cseq: u32,
        branch: String,
        offerless: bool,
        since: Instant,
    },
    /// The 2xx was ACKed; waiting for `CallStarted`.
    Acking {
        since: Instant,
    },
    Up(CallHandle),
    /// A re-INVITE of ours is unanswered.
    Reinviting {
        call: CallHandle,
        cseq: u32,
        offerless: bool,
        since: Instant,
    },
    /// BYE sent.
    Ending {
        call: CallHandle,
        since: Instant,
    },
    /// Failed or abandoned: dropped from the model.
    Gone,
}

#[derive(Clone, Debug)]
struct Call {
    leg: Leg,
    state: State,
    on_hold: bool,
}

impl Call {
    fn handle(&self) -> Option<CallHandle> {
        match self.state {
            State::Up(h) | State::Reinviting { call: h, .. } | State::Ending { call: h, .. } => {
                Some(h)
            }
            _ => None,
        }
    }
}

pub struct World {
    rng: Rng,
    pub seeds: Vec<Msg>,
    peers: Vec<SocketAddr>,
    public: Vec<SocketAddr>,
    /// The fuzzer's own calls: the model of which dialogs exist, with whom, under which tags.
    calls: Vec<Call>,
    /// Answers to what the server sent, fed before new traffic.
    reactions: VecDeque<Step>,
    /// Every call that started, by when it is hung up (BYE or `Control::Hangup`).
    deadlines: BTreeSet<(Instant, CallHandle)>,
    deadline_of: BTreeMap<CallHandle, Instant>,
    /// Numbers Call-IDs.
    n: u64,
    pub established: u64,
}

impl World {
    pub fn new(seed: u64) -> World {
        let mut rng = Rng::new(seed);
        let seeds = corpus::load(&mut rng);
        World {
            rng,
            seeds,
            peers: generate::peers(),
            public: generate::public(),
            calls: Vec::new(),
            reactions: VecDeque::new(),
            deadlines: BTreeSet::new(),
            deadline_of: BTreeMap::new(),
            n: 0,
            established: 0,
        }
    }

    fn id(&mut self) -> u64 {
        self.n += 1;
        self.n
    }

    /// Virtual time between two rounds: mostly under a millisecond, now and then long enough
    /// for transactions, ACK waits and session timers to expire.
    fn pause(&mut self) -> Duration {
        let r = &mut self.rng;
        let ns = match r.below(2000) {
            0..1600 => r.below(1_000_000),
            1600..1960 => r.between(1_000_000, 10_000_000),
            1960..1999 => r.between(10_000_000, 300_000_000),
            _ => r.between(300_000_000, 35_000_000_000),
        };
        Duration::from_nanos(ns)
    }

    /// How long a call that started lives before the fuzzer hangs it up.
    fn lifetime(&mut self) -> Duration {
        if self.rng.one_in(20) {
            Duration::from_millis(self.rng.between(30_000, 120_000))
        } else {
            Duration::from_millis(self.rng.between(200, 8_000))
        }
    }

    fn source(&mut self) -> SocketAddr {
        match self.rng.below(100) {
            0..60 => *self.rng.pick(&self.peers),
            60..75 => *self.rng.pick(&self.public),
            75..85 => generate::attacker(&mut self.rng),
            _ => generate::spoofed(&mut self.rng),
        }
    }

    fn transport(&mut self) -> Transport {
        if self.rng.one_in(7) {
            Transport::Tcp
        } else {
            Transport::Udp
        }
    }

    fn datagram(transport: Transport, remote: SocketAddr, bytes: Vec<u8>, hostile: bool) -> Step {
        Step::Datagram {
            transport,
            local: generate::server_for(remote),
            remote,
            bytes,
            hostile,
        }
    }

    /// The steps of one round: time passes, pending answers go out, then one action (now and
    /// then an episode: a burst, a flood, a reconfiguration, a long quiet).
    pub fn next(&mut self, now: Instant, round: u64, left: u64, out: &mut Vec<Step>) {
        out.push(Step::Advance {
            by: self.pause(),
            late: self.rng.one_in(300),
        });
        for _ in 0..4 {
            let Some(r) = self.reactions.pop_front() else {
                break;
            };
            out.push(Step::Advance {
                by: Duration::from_micros(self.rng.below(2000)),
                late: false,
            });
            out.push(r);
        }
        self.expire(now, out);
        // Each episode once early in a run, then at random.
        if round == 2_000 || self.rng.one_in(40_000) {
            return self.invite_burst(left, out);
        }
        if round == 4_000 || self.rng.one_in(150_000) {
            return self.options_flood(left, out);
        }
        if round == 6_000 || self.rng.one_in(250_000) {
            return self.call_flood(left, out);
        }
        if self.rng.one_in(5_000) {
            out.push(Step::Reconfigure);
        }
        if self.rng.one_in(20_000) {
            let by = Duration::from_millis(self.rng.between(33_000, 70_000));
            out.push(Step::Advance { by, late: false });
        }
        match self.rng.below(1000) {
            0..250 => self.legit(now, out),
            250..320 => self.hostile(out),
            320..380 => self.peer_mutated(out),
            380..630 => self.seed(out),
            630..880 => self.generated(out),
            880..930 => self.garbage(out),
            _ => self.stray(out),
        }
    }

    /// Hang up calls past their time; give up on calls stuck waiting for an answer.
    fn expire(&mut self, now: Instant, out: &mut Vec<Step>) {
        while let Some(&(at, h)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            self.deadline_of.remove(&h);
            match self
                .calls
                .iter()
                .position(|c| matches!(c.state, State::Up(x) if x == h))
            {
                Some(i) => self.bye(i, now, out),
                None => out.push(Step::Hangup(h)),
            }
        }
        let stale = |s: &State| match *s {
            State::Gone => true,
            State::Inviting { since, .. } => now - since > Duration::from_secs(40),
            State::Acking { since } => now - since > Duration::from_secs(5),
            State::Ending { since, .. } => now - since > Duration::from_secs(40),
            _ => false,
        };
        self.calls.retain(|c| !stale(&c.state));
        for c in &mut self.calls {
            if let State::Reinviting { call, since, .. } = c.state {
                if now - since > Duration::from_secs(40) {
                    c.state = State::Up(call);
                }
            }
        }
    }

    fn bye(&mut self, i: usize, now: Instant, out: &mut Vec<Step>) {
        let c = &mut self.calls[i];
        let Some(call) = c.handle() else {
            return;
        };
        let (m, _, _) = c.leg.next("BYE", None);
        c.state = State::Ending { call, since: now };
        out.push(Self::datagram(
            c.leg.transport,
            c.leg.peer,
            m.to_bytes(),
            false,
        ));
    }

    fn up(&self) -> Vec<usize> {
        (0..self.calls.len())
            .filter(|&i| matches!(self.calls[i].state, State::Up(_)))
            .collect()
    }

    /// What a phone does: place a call, cancel one, or act inside one.
    fn legit(&mut self, now: Instant, out: &mut Vec<Step>) {
        let up = self.up();
        if self.calls.len() < CALLS && (up.is_empty() || self.rng.one_in(3)) {
            return self.place(now, out);
        }
        let inviting: Vec<usize> = (0..self.calls.len())
            .filter(|&i| matches!(self.calls[i].state, State::Inviting { .. }))
            .collect();
        if !inviting.is_empty() && self.rng.one_in(8) {
            let i = *self.rng.pick(&inviting);
            let leg = &self.calls[i].leg;
            // CANCEL repeats the INVITE's branch and CSeq number (RFC 3261 §9.1).
            if let State::Inviting { cseq, branch, .. } = &self.calls[i].state {
                let m = leg.request("CANCEL", *cseq, branch, None);
                out.push(Self::datagram(leg.transport, leg.peer, m.to_bytes(), false));
            }
            return;
        }
        if up.is_empty() {
            return self.place(now, out);
        }
        let i = *self.rng.pick(&up);
        let State::Up(call) = self.calls[i].state else {
            return;
        };
        let r = self.rng.below(100);
        let c = &mut self.calls[i];
        let (m, next) = match r {
            0..30 => {
                // re-INVITE: hold, unhold, or the media moved; sometimes without an offer.
                if self.rng.one_in(5) {
                    c.leg
                        .media
                        .set_port(c.leg.media.port().wrapping_add(2).max(1024));
                }
                let offerless = self.rng.one_in(8);
                let dir = if c.on_hold {
                    "sendrecv"
                } else {
                    *self.rng.pick(&["sendonly", "inactive"])
                };
                c.on_hold = !c.on_hold;
                let body = (!offerless).then(|| c.leg.sdp(dir));
                let (m, cseq, _) = c.leg.next("INVITE", body);
                let state = State::Reinviting {
                    call,
                    cseq,
                    offerless,
                    since: now,
                };
                (m, Some(state))
            }
            30..45 => {
                let body = (!self.rng.one_in(3)).then(|| {
                    c.on_hold = !c.on_hold;
                    c.leg.sdp(if c.on_hold { "sendonly" } else { "sendrecv" })
                });
                (c.leg.next("UPDATE", body).0, None)
            }
            45..60 => {
                let dtmf = format!("Signal={}\r\nDuration=160\r\n", self.rng.below(10));
                (c.leg.next("INFO", Some(dtmf.into_bytes())).0, None)
            }
            60..70 => (c.leg.next("OPTIONS", None).0, None),
            70..78 => {
                // A retransmitted ACK, or a CANCEL for an INVITE long answered.
                let method = *self.rng.pick(&["ACK", "CANCEL"]);
                let branch = c.leg.next_branch();
                (c.leg.request(method, c.leg.cseq, &branch, None), None)
            }
            _ => return self.bye(i, now, out),
        };
        if let Some(s) = next {
            c.state = s;
        }
        out.push(Self::datagram(
            c.leg.transport,
            c.leg.peer,
            m.to_bytes(),
            false,
        ));
    }

    /// A new call from a phone: INVITE with an offer (sometimes without).
    fn place(&mut self, now: Instant, out: &mut Vec<Step>) {
        let peer = *self.rng.pick(&self.peers);
        let transport = self.transport();
        let n = self.id();
        let mut leg = Leg::new(&mut self.rng, n, peer, transport);
        let offerless = self.rng.one_in(10);
        let dir = if self.rng.one_in(10) {
            "sendonly"
        } else {
            "sendrecv"
        };
        let body = (!offerless).then(|| leg.sdp(dir));
        let (m, cseq, branch) = leg.next("INVITE", body);
        out.push(Self::datagram(transport, peer, m.to_bytes(), false));
        self.calls.push(Call {
            leg,
            state: State::Inviting {
                cseq,
                branch,
                offerless,
                since: now,
            },
            on_hold: dir == "sendonly",
        });
    }

    /// A request against a call that is up, with the dialog's wrong tags, or its right tags
    /// from outside its peer: it must leave the call as it is.
    fn hostile(&mut self, out: &mut Vec<Step>) {
        let up = self.up();
        if up.is_empty() {
            return self.generated(out);
        }
        let i = *self.rng.pick(&up);
        let r = &mut self.rng;
        let leg = &self.calls[i].leg;
        let method = *r.pick(&[
            "BYE", "INVITE", "INVITE", "UPDATE", "INFO", "ACK", "CANCEL", "OPTIONS",
        ]);
        let body = match method {
            "INVITE" | "UPDATE" if !r.one_in(4) => {
                // Aim the stream elsewhere, or put the call on hold.
                let to: SocketAddr = *r.pick(&[
                    "203.0.113.50:4000".parse().unwrap_or(leg.media),
                    "192.168.1.77:30000".parse().unwrap_or(leg.media),
                    leg.media,
                ]);
                let dir = *r.pick(generate::DIRECTIONS);
                Some(generate::sdp(to, dir, r.next_u64() >> 8, r.next_u64()))
            }
            _ => None,
        };
        let (from_tag, to_tag, remote) = match r.below(4) {
            0 => (token(r), leg.to_tag.clone(), leg.peer),
            1 => (leg.from_tag.clone(), token(r), leg.peer),
            2 => (token(r), token(r), leg.peer),
            _ => {
                let from = if r.one_in(4) {
                    *r.pick(&self.public)
                } else {
                    generate::attacker(r)
                };
                (leg.from_tag.clone(), leg.to_tag.clone(), from)
            }
        };
        let branch = format!("z9hG4bK{}", token(r));
        let m = leg.request_tagged(method, leg.cseq + 1, &branch, &from_tag, &to_tag, body);
        let transport = leg.transport;
        let bytes = if self.rng.one_in(3) {
            mutate::mutate(&mut self.rng, m, &self.seeds)
        } else {
            m.to_bytes()
        };
        out.push(Self::datagram(transport, remote, bytes, true));
    }

    /// A request of a call that is up, from its phone with the right tags, damaged.
    fn peer_mutated(&mut self, out: &mut Vec<Step>) {
        let up = self.up();
        if up.is_empty() {
            return self.seed(out);
        }
        let i = *self.rng.pick(&up);
        let method = *self
            .rng
            .pick(&["INVITE", "INVITE", "UPDATE", "BYE", "INFO", "ACK"]);
        let c = &mut self.calls[i];
        let body = matches!(method, "INVITE" | "UPDATE").then(|| c.leg.sdp("sendrecv"));
        let (m, _, _) = c.leg.next(method, body);
        let (transport, peer) = (c.leg.transport, c.leg.peer);
        let bytes = mutate::mutate(&mut self.rng, m, &self.seeds);
        out.push(Self::datagram(transport, peer, bytes, false));
    }

    /// A seed message, usually damaged, from anywhere.
    fn seed(&mut self, out: &mut Vec<Step>) {
        let m = self.rng.pick(&self.seeds).clone();
        let remote = self.source();
        let transport = self.transport();
        let bytes = if self.rng.one_in(4) {
            m.to_bytes()
        } else {
            mutate::mutate(&mut self.rng, m, &self.seeds)
        };
        out.push(Self::datagram(transport, remote, bytes, false));
    }

    /// A fresh request of any method, often damaged, from anywhere.
    fn generated(&mut self, out: &mut Vec<Step>) {
        let remote = self.source();
        let transport = self.transport();
        let n = self.id();
        let m = generate::random_request(&mut self.rng, remote, transport, n);
        let bytes = if self.rng.below(5) < 2 {
            m.to_bytes()
        } else {
            mutate::mutate(&mut self.rng, m, &self.seeds)
        };
        out.push(Self::datagram(transport, remote, bytes, false));
    }

    /// Not SIP: random bytes, keep-alives, empty or maximal datagrams, RTP to our ports.
    fn garbage(&mut self, out: &mut Vec<Step>) {
        let remote = self.source();
        let transport = self.transport();
        let r = &mut self.rng;
        let bytes: Vec<u8> = match r.below(6) {
            0 => {
                let n = r.below(1500) as usize;
                mutate::noise(r, n)
            }
            1 => r
                .pick(&[&b"\r\n\r\n"[..], b"\r\n", b"\n", b"\r\n\r\n\r\n"])
                .to_vec(),
            2 => Vec::new(),
            3 => mutate::noise(r, mutate::MAX_UDP),
            _ => {
                // RTP or RTCP from a phone to one of our RTP ports.
                let port = 10_000 + 2 * r.below(5_000) as u16 + r.below(2) as u16;
                let mut p = vec![0x80, if r.one_in(2) { 0 } else { 200 }];
                let n = r.below(200) as usize + 10;
                p.extend(mutate::noise(r, n));
                let local = SocketAddr::new(generate::server_for(remote).ip(), port);
                out.push(Step::Datagram {
                    transport: Transport::Udp,
                    local,
                    remote,
                    bytes: p,
                    hostile: false,
                });
                return;
            }
        };
        out.push(Self::datagram(transport, remote, bytes, false));
    }

    fn stray(&mut self, out: &mut Vec<Step>) {
        let remote = self.source();
        let n = self.id();
        let m = generate::stray_response(&mut self.rng, remote, n);
        let bytes = if self.rng.one_in(2) {
            m.to_bytes()
        } else {
            mutate::mutate(&mut self.rng, m, &self.seeds)
        };
        out.push(Self::datagram(Transport::Udp, remote, bytes, false));
    }

    /// One phone sends more INVITEs at once than its rate allows (→ 503 for the rest).
    fn invite_burst(&mut self, left: u64, out: &mut Vec<Step>) {
        let peer = *self.rng.pick(&self.peers);
        let count = self.rng.between(120, 200).min(left);
        for _ in 0..count {
            let n = self.id();
            let mut leg = Leg::new(&mut self.rng, n, peer, Transport::Udp);
            let sdp = leg.sdp("sendrecv");
            let m = leg.next("INVITE", Some(sdp)).0;
            out.push(Self::datagram(Transport::Udp, peer, m.to_bytes(), false));
        }
    }

    /// One source opens more transactions than it may hold (→ 503 for the rest).
    fn options_flood(&mut self, left: u64, out: &mut Vec<Step>) {
        let from = generate::attacker(&mut self.rng);
        let count = self.rng.between(4_200, 5_000).min(left);
        for _ in 0..count {
            let n = self.id();
            let mut leg = Leg::new(&mut self.rng, n, from, Transport::Udp);
            let m = leg.next("OPTIONS", None).0;
            out.push(Self::datagram(Transport::Udp, from, m.to_bytes(), false));
        }
    }

    /// More calls from many sources than `max_calls` allows (→ 503 for the rest).
    fn call_flood(&mut self, left: u64, out: &mut Vec<Step>) {
        let count = 1_100.min(left);
        for k in 0..count {
            let from = SocketAddr::new(
                std::net::Ipv4Addr::from(0x0a40_0000u32 + k as u32).into(),
                5060,
            );
            let n = self.id();
            let mut leg = Leg::new(&mut self.rng, n, from, Transport::Udp);
            let sdp = leg.sdp("sendrecv");
            let m = leg.next("INVITE", Some(sdp)).0;
            out.push(Self::datagram(Transport::Udp, from, m.to_bytes(), false));
        }
    }

    /// Take in what the last round caused: calls started and ended, and the server's SIP,
    /// which phones answer (ACKs for its final responses, responses to its requests).
    pub fn observe(&mut self, rig: &mut Rig) {
        let now = rig.now;
        for (h, call_id) in std::mem::take(&mut rig.check.started) {
            let at = now + self.lifetime();
            self.deadlines.insert((at, h));
            self.deadline_of.insert(h, at);
            if let Some(c) = self.calls.iter_mut().find(|c| {
                c.leg.call_id == call_id
                    && matches!(c.state, State::Acking { .. } | State::Inviting { .. })
            }) {
                c.state = State::Up(h);
                self.established += 1;
            }
        }
        for h in std::mem::take(&mut rig.check.ended) {
            if let Some(at) = self.deadline_of.remove(&h) {
                self.deadlines.remove(&(at, h));
            }
            self.calls.retain(|c| c.handle() != Some(h));
        }
        for s in std::mem::take(&mut rig.sent) {
            self.react(&s, now);
        }
    }

    fn react(&mut self, s: &rig::Sent, now: Instant) {
        let Ok(msg) = sip::parse(&s.bytes) else {
            return;
        };
        let Ok(call_id) = msg.call_id() else {
            return;
        };
        let ours = self.calls.iter().position(|c| c.leg.call_id == call_id);
        let Some(code) = msg.status() else {
            return self.answer(s, &msg, ours);
        };
        let Ok((cseq, Method::Invite)) = msg.cseq() else {
            return;
        };
        if code < 200 {
            return;
        }
        if let Some(i) = ours {
            return self.react_ours(i, &msg, code, cseq, now);
        }
        // Someone else's INVITE: its phone ACKs now and then, so such calls start too.
        let ack = if code < 300 {
            self.rng.one_in(3)
        } else {
            self.rng.one_in(2)
        };
        if ack {
            let branch = format!("z9hG4bK{}", token(&mut self.rng));
            if let Some(m) = generate::ack_for(&msg, s.transport, s.remote, &branch) {
                self.reactions.push_back(Step::Datagram {
                    transport: s.transport,
                    local: s.local,
                    remote: s.remote,
                    bytes: m.to_bytes(),
                    hostile: false,
                });
            }
        }
    }

    /// A final response to an INVITE of one of our calls: ACK it.
    fn react_ours(&mut self, i: usize, msg: &sip::Message<'_>, code: u16, cseq: u32, now: Instant) {
        let c = &mut self.calls[i];
        let to_tag = msg
            .to()
            .ok()
            .and_then(|t| t.tag())
            .unwrap_or_default()
            .to_string();
        let ok = code < 300;
        let mut offerless_ack = false;
        match c.state {
            State::Inviting {
                cseq: sent,
                offerless,
                ..
            } if sent == cseq => {
                if !ok {
                    // The INVITE failed: the ACK below, and the call is gone.
                    c.state = State::Gone;
                } else if self.rng.one_in(40) {
                    // The phone never ACKs: the server gives up after its ACK wait.
                    c.state = State::Gone;
                    return;
                } else {
                    c.leg.to_tag = to_tag;
                    c.state = State::Acking { since: now };
                    offerless_ack = offerless;
                }
            }
            State::Reinviting {
                call,
                cseq: sent,
                offerless,
                ..
            } if sent == cseq => {
                c.state = State::Up(call);
                offerless_ack = ok && offerless;
            }
            // A 2xx again (or for a damaged re-INVITE that was taken): ACK it again.
            _ if ok => {}
            _ => return,
        }
        let (transport, peer) = (c.leg.transport, c.leg.peer);
        let m = if ok {
            let body = offerless_ack.then(|| c.leg.sdp("sendrecv"));
            let branch = c.leg.next_branch();
            c.leg.request("ACK", cseq, &branch, body)
        } else {
            match generate::ack_for(msg, transport, peer, "") {
                Some(m) => m,
                None => return,
            }
        };
        self.reactions
            .push_back(Self::datagram(transport, peer, m.to_bytes(), false));
    }

    /// A request of the server's (BYE, re-INVITE, UPDATE, OPTIONS): the phone answers it,
    /// mostly with 200 (with an SDP answer to an offer), now and then with an error or not at
    /// all.
    fn answer(&mut self, s: &rig::Sent, msg: &sip::Message<'_>, ours: Option<usize>) {
        let method = msg.method();
        if matches!(method, Some(Method::Ack) | None) {
            return;
        }
        let code = match self.rng.below(100) {
            0..85 => 200,
            85..90 => 481,
            90..93 => 500,
            93..95 => *self.rng.pick(&[408, 486, 488, 491]),
            _ => return,
        };
        let offer =
            !msg.body.is_empty() && matches!(method, Some(Method::Invite) | Some(Method::Update));
        let sdp = (code == 200 && offer).then(|| match ours {
            Some(i) => {
                let leg = &mut self.calls[i].leg;
                leg.sdp("sendrecv")
            }
            None => generate::sdp(
                SocketAddr::new(s.remote.ip(), 30_000),
                "sendrecv",
                self.rng.next_u64() >> 8,
                self.rng.next_u64(),
            ),
        });
        let m = generate::response_to(msg, code, s.remote, sdp);
        self.reactions.push_back(Step::Datagram {
            transport: s.transport,
            local: s.local,
            remote: s.remote,
            bytes: m.to_bytes(),
            hostile: false,
        });
    }
}
