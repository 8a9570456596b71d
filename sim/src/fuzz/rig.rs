//! The server under test on virtual time, driven as a runtime drives it, with the checker
//! watching everything that comes out.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use onhold_core::media::Library;
use onhold_core::{
    CallHandle, Command, Control, Event, Server, ServerConfig, TransmitKind, Transport,
    MAX_DATAGRAM,
};

use super::check::{Checker, Violation};
use super::generate;
use crate::rng::Rng;

/// One input to the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Virtual time passes, each deadline served at its time; `late`: the runtime oversleeps
    /// and serves every deadline at the end.
    Advance {
        by: Duration,
        late: bool,
    },
    /// A datagram (or, on TCP, one framed message). `hostile`: it carries a dialog's wrong
    /// tags, or its right tags from outside its peer, so it must not start, move or end a call.
    Datagram {
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: Vec<u8>,
        hostile: bool,
    },
    Hangup(CallHandle),
    /// `Control::Reconfigure` with the same settings.
    Reconfigure,
    /// Not an input: what the server made up in answer to the steps before (its tags and
    /// branches, `#handle` of each call that started). A replay's server makes up others;
    /// the replay pairs them and writes its own into later datagrams (and hangups), so that a
    /// recorded dialog still matches.
    Issued(Vec<String>),
}

/// How the simulated runtime answers the server's commands.
#[derive(Clone, Debug)]
pub struct Runtime {
    rng: Rng,
    /// Ports another program holds: binding one (or the RTCP port above it) always fails.
    taken: BTreeSet<u16>,
    /// Per 100,000 binds: failed for no lasting reason (the server never offers such a port
    /// again, so these are kept rare). Per 1,000: binds answered late (0.1–3 s), names
    /// resolved (to a private address; the rest resolve to nothing).
    refuse: u64,
    slow: u64,
    resolve: u64,
}

impl Runtime {
    /// Every bind succeeds at once, every name resolves to nothing (replays).
    pub fn plain() -> Runtime {
        Runtime {
            rng: Rng::new(0),
            taken: BTreeSet::new(),
            refuse: 0,
            slow: 0,
            resolve: 0,
        }
    }

    pub fn fuzzing(seed: u64) -> Runtime {
        let mut rng = Rng::new(seed ^ 0x0072_756e_7469_6d65);
        let taken = (0..48).map(|_| 10_000 + rng.below(10_001) as u16).collect();
        Runtime {
            rng,
            taken,
            refuse: 3,
            slow: 40,
            resolve: 500,
        }
    }
}

/// A SIP datagram the server sent.
#[derive(Clone, Debug)]
pub struct Sent {
    pub transport: Transport,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub bytes: Vec<u8>,
}

pub struct Rig {
    pub server: Server,
    config: ServerConfig,
    pub base: Instant,
    pub now: Instant,
    buf: Vec<u8>,
    pub check: Checker,
    runtime: Runtime,
    /// Binds the runtime answers later: (when, port, ok).
    late_binds: Vec<(Instant, u16, bool)>,
    /// The SIP sent since the fuzzer last looked (kept only with `keep_sent`).
    pub sent: Vec<Sent>,
    pub keep_sent: bool,
    pub datagrams: u64,
    pub hostile: u64,
    /// Tokens the server made up since they were last taken (see [`Step::Issued`]).
    pub issued: Vec<String>,
    /// Replays only: a recorded token → the one this server made up in its place.
    translate: Option<Translation>,
}

impl Rig {
    pub fn new(seed: u64, runtime: Runtime) -> Rig {
        let config = ServerConfig::default();
        // Virtual time is this instant plus offsets; the instant itself never matters.
        let base = Instant::now();
        // A fixed wall-clock epoch: RTCP NTP timestamps must not depend on the day of the run.
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        // Encoded once: replays make many servers.
        static MUSIC: OnceLock<Arc<Library>> = OnceLock::new();
        let music = MUSIC.get_or_init(|| Arc::new(Library::silence())).clone();
        let server = Server::new(config.clone(), music, seed, base, wall);
        Rig {
            server,
            check: Checker::new(&config),
            config,
            base,
            now: base,
            buf: vec![0; MAX_DATAGRAM],
            runtime,
            late_binds: Vec::new(),
            sent: Vec::new(),
            keep_sent: false,
            datagrams: 0,
            hostile: 0,
            issued: Vec::new(),
            translate: None,
        }
    }

    /// A rig that replays recorded steps: tokens the recording's server made up are replaced
    /// by this server's.
    pub fn replaying(seed: u64) -> Rig {
        let mut rig = Rig::new(seed, Runtime::plain());
        rig.translate = Some(Translation::default());
        rig
    }

    /// Apply one step; a panic inside the server is caught and reported as a violation.
    pub fn step(&mut self, step: &Step) -> Result<(), Violation> {
        match catch_unwind(AssertUnwindSafe(|| self.apply(step))) {
            Ok(()) => match self.check.violation.take() {
                Some(v) => Err(v),
                None => Ok(()),
            },
            Err(payload) => {
                let msg = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(no message)".into());
                Err(Violation {
                    kind: "panic".into(),
                    detail: format!("panic: {msg}"),
                })
            }
        }
    }

    /// The checks that cost a walk over every counter: after a batch.
    pub fn check_batch(&mut self) -> Result<(), Violation> {
        let calls = self.server.occupancy().calls;
        self.check.stats(self.server.stats(), calls);
        match self.check.violation.take() {
            Some(v) => Err(v),
            None => Ok(()),
        }
    }

    fn apply(&mut self, step: &Step) {
        match step {
            Step::Advance { by, late } => self.advance(*by, *late),
            Step::Datagram {
                transport,
                local,
                remote,
                bytes,
                hostile,
            } => {
                self.datagrams += 1;
                self.hostile += *hostile as u64;
                let bytes = match &self.translate {
                    Some(t) if !t.map.is_empty() => translate(bytes, &t.map),
                    _ => Cow::Borrowed(&bytes[..]),
                };
                self.check
                    .begin_datagram(self.now, remote.ip(), *hostile, &bytes);
                self.server
                    .handle_datagram(self.now, *transport, *local, *remote, &bytes);
                self.drain();
                self.check.end_datagram();
                self.check.occupancy(&self.server.occupancy());
            }
            Step::Hangup(call) => {
                // A replay hangs up the call its own server started in the recorded one's
                // place, and nothing when the recorded call started before the recording.
                let call = match &self.translate {
                    Some(t) => t
                        .map
                        .get(&format!("#{}", call.0))
                        .and_then(|h| h[1..].parse().ok())
                        .map(CallHandle),
                    None => Some(*call),
                };
                if let Some(call) = call {
                    self.server.control(self.now, Control::Hangup(call));
                    self.drain();
                }
            }
            Step::Reconfigure => {
                let config = Box::new(self.config.clone());
                self.server.control(self.now, Control::Reconfigure(config));
                self.drain();
            }
            Step::Issued(recorded) => {
                let mine = std::mem::take(&mut self.issued);
                if let Some(t) = &mut self.translate {
                    t.pair(recorded, &mine);
                }
            }
        }
    }

    fn advance(&mut self, by: Duration, late: bool) {
        let end = self.now + by;
        if late {
            self.now = end;
        }
        let mut spins = 0u32;
        loop {
            let bind = self.late_binds.iter().map(|b| b.0).min();
            let next = match (self.server.poll_timeout(), bind) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let Some(t) = next.filter(|t| *t <= end) else {
                break;
            };
            if t > self.now {
                self.now = t;
                spins = 0;
            } else {
                spins += 1;
                if spins > 100_000 {
                    let at = self.now - self.base;
                    self.check.fail(
                        "no progress",
                        format!("the server keeps asking for a deadline at {at:?} that handle_timeout does not clear"),
                    );
                    return;
                }
            }
            let now = self.now;
            let due: Vec<(Instant, u16, bool)> = self
                .late_binds
                .iter()
                .copied()
                .filter(|b| b.0 <= now)
                .collect();
            self.late_binds.retain(|b| b.0 > now);
            for (_, port, ok) in due {
                self.server.rtp_bind_result(now, port, ok);
            }
            self.server.handle_timeout(now);
            self.drain();
        }
        self.now = end;
        self.check.occupancy(&self.server.occupancy());
    }

    /// Answer commands, take events and transmits until the server has nothing more now.
    fn drain(&mut self) {
        let now = self.now;
        loop {
            let mut progressed = false;
            while let Some(cmd) = self.server.poll_command() {
                progressed = true;
                self.command(cmd);
            }
            while let Some(ev) = self.server.poll_event() {
                progressed = true;
                if let Event::CallStarted { call, .. } = &ev {
                    self.issued.push(format!("#{}", call.0));
                }
                self.check.event(&ev);
            }
            while let Some(t) = self.server.poll_transmit(now, &mut self.buf) {
                progressed = true;
                let bytes = &self.buf[..t.len.min(self.buf.len())];
                self.check.transmit(&t, bytes);
                if t.kind == TransmitKind::Sip {
                    made_up(bytes, &mut self.issued);
                }
                if self.keep_sent && t.kind == TransmitKind::Sip {
                    self.sent.push(Sent {
                        transport: t.transport,
                        local: t.local,
                        remote: t.remote,
                        bytes: bytes.to_vec(),
                    });
                }
            }
            if !progressed {
                break;
            }
        }
    }

    fn command(&mut self, cmd: Command) {
        let now = self.now;
        let r = &mut self.runtime;
        match cmd {
            Command::BindRtp { port, rtcp_mux } => {
                let taken = r.taken.contains(&port)
                    || (!rtcp_mux && r.taken.contains(&port.saturating_add(1)));
                let ok = !taken && r.rng.below(100_000) >= r.refuse;
                if r.rng.below(1000) < r.slow {
                    let delay = Duration::from_millis(100 + r.rng.below(2900));
                    self.late_binds.push((now + delay, port, ok));
                } else {
                    self.server.rtp_bind_result(now, port, ok);
                }
            }
            Command::Resolve {
                host,
                port,
                transport,
            } => {
                let found: Vec<SocketAddr> = if r.rng.below(1000) < r.resolve {
                    let ip: IpAddr = generate::resolved(&mut r.rng);
                    vec![SocketAddr::new(ip, port.unwrap_or(5060))]
                } else {
                    Vec::new()
                };
                self.server.resolved(now, &host, port, transport, &found);
            }
            Command::UnbindRtp { .. } => {}
        }
    }
}

/// How the server writes a token it made up: 16 lower-case hex digits, after `tag=` or
/// `branch=z9hG4bK`.
const TOKEN_LEN: usize = 16;
const TOKEN_AFTER: [&[u8]; 2] = [b"tag=", b"branch=z9hG4bK"];

/// Each place in `bytes` where a token of the server's shape starts.
fn token_spans(bytes: &[u8]) -> Vec<usize> {
    let mut at = Vec::new();
    for prefix in TOKEN_AFTER {
        let mut i = 0;
        while let Some(p) = super::msg::find(&bytes[i..], prefix) {
            let start = i + p + prefix.len();
            let end = start + TOKEN_LEN;
            let shaped = bytes.get(start..end).is_some_and(|t| {
                t.iter()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
            }) && !bytes.get(end).is_some_and(|b| b.is_ascii_alphanumeric());
            if shaped {
                at.push(start);
            }
            i = start;
        }
    }
    at
}

/// Add the tokens of the server's shape in a message it sent to `out`, each once.
fn made_up(bytes: &[u8], out: &mut Vec<String>) {
    for start in token_spans(bytes) {
        let t = String::from_utf8_lossy(&bytes[start..start + TOKEN_LEN]);
        if !out.iter().any(|o| *o == t) {
            out.push(t.into_owned());
        }
    }
}

/// `bytes` with every recorded token replaced by this server's (same length: Content-Length
/// stays right).
fn translate<'a>(bytes: &'a [u8], map: &BTreeMap<String, String>) -> Cow<'a, [u8]> {
    let mut out = Cow::Borrowed(bytes);
    for start in token_spans(bytes) {
        let t = String::from_utf8_lossy(&bytes[start..start + TOKEN_LEN]);
        if let Some(new) = map.get(t.as_ref()) {
            out.to_mut()[start..start + TOKEN_LEN].copy_from_slice(new.as_bytes());
        }
    }
    out
}

/// A replay's map from the tokens a recording's server made up to its own server's.
#[derive(Debug, Default)]
struct Translation {
    map: BTreeMap<String, String>,
    /// The map's values.
    used: BTreeSet<String>,
}

impl Translation {
    /// Pair the tokens a recording's server made up at one point with those this server made
    /// up since the last such point, handles with handles, from the last back (a minimised
    /// recording may have dropped earlier points, whose tokens no later step used). Tokens
    /// already paired (a dialog's tag, echoed in every response of the dialog) and those both
    /// made up (echoes of the input) are left aside.
    fn pair(&mut self, recorded: &[String], mine: &[String]) {
        let theirs_all: BTreeSet<&String> = recorded.iter().collect();
        let mine_all: BTreeSet<&String> = mine.iter().collect();
        for handles in [true, false] {
            let theirs: Vec<&String> = recorded
                .iter()
                .filter(|t| t.starts_with('#') == handles && !mine_all.contains(t))
                .filter(|t| !self.map.contains_key(*t))
                .collect();
            let ours: Vec<&String> = mine
                .iter()
                .filter(|t| t.starts_with('#') == handles && !theirs_all.contains(t))
                .filter(|t| !self.used.contains(*t))
                .collect();
            for (a, b) in theirs.into_iter().rev().zip(ours.into_iter().rev()) {
                self.map.insert(a.clone(), b.clone());
                self.used.insert(b.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_tokens_are_replaced_by_the_replays() {
        let sent = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK0123456789abcdef\r\nTo: <sip:x>;tag=fedcba9876543210\r\nFrom: <sip:y>;tag=fz12\r\n\r\n";
        let mut tokens = Vec::new();
        made_up(sent, &mut tokens);
        assert_eq!(tokens, ["fedcba9876543210", "0123456789abcdef"]);
        let mut t = Translation::default();
        t.pair(
            &["fedcba9876543210".into(), "#7".into()],
            &["1111111111111111".into(), "#9".into()],
        );
        assert_eq!(t.map.get("#7").map(String::as_str), Some("#9"));
        // A token once paired keeps its partner.
        t.pair(&["fedcba9876543210".into()], &["2222222222222222".into()]);
        let ack = b"ACK sip:x SIP/2.0\r\nTo: <sip:x>;tag=fedcba9876543210\r\n\r\n";
        let out = translate(ack, &t.map);
        assert_eq!(
            &out[..],
            &b"ACK sip:x SIP/2.0\r\nTo: <sip:x>;tag=1111111111111111\r\n\r\n"[..]
        );
    }
}
