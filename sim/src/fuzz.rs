//! A structure-aware fuzzer for `onhold_core::Server`, on virtual time and stable Rust.
//!
//! It places calls as a phone would and then attacks them, replays RFC 4475's torture
//! messages and the SIP of the DP750 captures, writes requests of every method, and damages all
//! of it (lines swapped, duplicated, deleted, folded; huge values and numbers; CRLF and NUL
//! injection; wrong Content-Length; hostile SDP addresses; bytes flipped, cut, padded), from
//! phones, from outside the ACL and from spoofed sources, over UDP and TCP. It answers the
//! server as a runtime and as phones do (binds, lookups, ACKs, responses to its BYEs and
//! re-INVITEs), so calls really start and RTP flows. Everything follows from the seed.
//!
//! After every input the [`check`]er has seen every event and transmit and the tables'
//! occupancy; after every batch, the counters:
//! - no panic;
//! - every table within its cap, nothing left queued after draining;
//! - every SIP message sent parses, starts with a status or request line and has a
//!   Content-Length equal to its body; no datagram is larger than `MAX_DATAGRAM`;
//! - no RTP or RTCP to a broadcast, multicast, reserved or unspecified address, nor to
//!   loopback or link-local unless the SIP that set it came from that scope;
//! - a request with a dialog's wrong tags, or with its right tags from outside its peer,
//!   starts, moves and ends no call;
//! - counters never go down.
//!
//! Parts: `world` (who sends what, and the model of the calls it placed), `generate` (the SIP
//! it writes), `mutate` (the damage), `corpus` (the seeds), [`msg`] (a message as lines),
//! [`check`] (the invariants), `rig` (the server driven on virtual time), `minimise` and
//! [`script`] (inputs as text, for `sim/tests/fuzz-regressions/`).
//!
//! A violation ends the run with its inputs, minimised when they reproduce it on a fresh
//! server; [`replay`] feeds such inputs again.

pub mod check;
mod corpus;
mod generate;
mod minimise;
pub mod msg;
mod mutate;
mod rig;
pub mod script;
mod world;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use onhold_core::server::Occupancy;
use onhold_core::Stats;

use crate::rng::Rng;
pub use check::Violation;
pub use rig::Step;
use rig::{Rig, Runtime};
use world::World;

/// The server's own seed (its tags, branches and ports), the same in runs and replays.
pub(crate) const SERVER_SEED: u64 = 42;

#[derive(Clone, Debug)]
pub struct FuzzConfig {
    /// Datagrams to feed (a flood may overshoot by its length).
    pub datagrams: u64,
    pub seed: u64,
    /// Datagrams between the checks of the counters.
    pub batch: usize,
    /// Violations of open core bugs, counted instead of ending the run.
    pub known: Vec<Known>,
    /// Collect the first violation of each kind and go on (a panic still ends the run).
    pub keep_going: bool,
}

/// An open core bug the fuzzer finds: a violation whose text contains `pattern`, reproduced by
/// `regression` in `sim/tests/fuzz-regressions/`.
#[derive(Clone, Copy, Debug)]
pub struct Known {
    pub pattern: &'static str,
    pub regression: &'static str,
}

/// The open core bugs, each with a regression file that the tests expect to break the named
/// invariant until the bug is fixed (then the entry goes and the file must pass). Every bug
/// found so far is fixed; `sim/tests/fuzz-regressions/` keeps their inputs.
pub const KNOWN: &[Known] = &[];

impl Default for FuzzConfig {
    fn default() -> Self {
        FuzzConfig {
            datagrams: 100_000,
            seed: 0x6f6e_686f_6c64,
            batch: 1000,
            known: KNOWN.to_vec(),
            keep_going: false,
        }
    }
}

/// What a run exercised.
#[derive(Clone, Debug)]
pub struct FuzzReport {
    pub seed: u64,
    pub datagrams: u64,
    /// Datagrams with a dialog's wrong tags or from outside its peer.
    pub hostile: u64,
    /// Seed messages loaded (torture tests, captures, generated).
    pub seeds: usize,
    /// Status codes of the responses sent, with their counts.
    pub codes: BTreeMap<u16, u64>,
    /// Kinds of SIP sent: status codes and request methods.
    pub kinds: BTreeSet<String>,
    pub sip_sent: u64,
    pub rtp_packets: u64,
    pub rtcp_packets: u64,
    pub calls_started: u64,
    /// Calls the fuzzer placed as a phone that got to `CallStarted`.
    pub dialogs_established: u64,
    pub max_occupancy: Occupancy,
    pub stats: Stats,
    pub virtual_time: Duration,
    pub wall: Duration,
    /// Hits of each known violation (see [`FuzzConfig::known`]).
    pub known: BTreeMap<String, u64>,
    /// With `keep_going`: the first violation of each kind, and how often each kind occurred.
    pub failures: Vec<FuzzFailure>,
    pub repeats: BTreeMap<String, u64>,
}

impl fmt::Display for FuzzReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.wall.as_secs_f64();
        writeln!(f, "seed {:#x}, {} seed messages", self.seed, self.seeds)?;
        writeln!(
            f,
            "datagrams fed {} ({} hostile) in {:.2} s wall, {:.0} datagrams/s; virtual time {:.0} s",
            self.datagrams,
            self.hostile,
            secs,
            self.datagrams as f64 / secs.max(1e-9),
            self.virtual_time.as_secs_f64()
        )?;
        writeln!(
            f,
            "sent: {} SIP, {} RTP, {} RTCP; distinct response kinds {}: {}",
            self.sip_sent,
            self.rtp_packets,
            self.rtcp_packets,
            self.kinds.len(),
            self.kinds.iter().cloned().collect::<Vec<_>>().join(" ")
        )?;
        writeln!(
            f,
            "calls started {} ({} placed by the fuzzer as a phone)",
            self.calls_started, self.dialogs_established
        )?;
        let s = &self.stats;
        writeln!(
            f,
            "refused: {} denied by ACL, {} rate, {} per-source calls, {} full, {} transactions, {} oversized, {} media, {} foreign in-dialog",
            s.denied,
            s.refused_rate,
            s.refused_source_calls,
            s.refused_full,
            s.refused_transactions,
            s.oversized,
            s.media_refused,
            s.foreign_in_dialog
        )?;
        let m = &self.max_occupancy;
        writeln!(
            f,
            "max occupancy: {} server / {} client transactions, {} transaction bytes, {} transaction sources, {} calls, {} call sources, {} queued",
            m.server_transactions,
            m.client_transactions,
            m.transaction_bytes,
            m.transaction_sources,
            m.calls,
            m.call_sources,
            m.queued
        )?;
        for (pattern, n) in &self.known {
            writeln!(f, "known core bug hit {n} times: {pattern}")?;
        }
        for (kind, n) in &self.repeats {
            writeln!(f, "VIOLATED {n} times: {kind}")?;
        }
        if self.failures.is_empty() {
            write!(f, "panics 0, invariants held")
        } else {
            write!(f, "panics 0, {} kinds of violation", self.failures.len())
        }
    }
}

/// A violated invariant and the inputs that led to it.
#[derive(Clone, Debug)]
pub struct FuzzFailure {
    pub violation: Violation,
    pub seed: u64,
    /// Datagrams fed when it happened (the last one included).
    pub datagram: u64,
    /// The inputs: minimised when `reproduced`, else the run's last [`WINDOW`] of them.
    pub steps: Vec<Step>,
    /// The steps alone violate the invariant again on a fresh server.
    pub reproduced: bool,
}

impl FuzzFailure {
    /// The inputs in the regression format (see [`script`]), with a header saying what broke.
    pub fn script(&self) -> String {
        let mut out = String::new();
        for line in self.violation.detail.lines() {
            out.push_str("# ");
            out.push_str(line);
            out.push('\n');
        }
        out.push_str(&format!(
            "# fuzz seed {:#x}, datagram {}; {}\n",
            self.seed,
            self.datagram,
            if self.reproduced {
                "minimised: these steps alone reproduce it on a fresh server"
            } else {
                "the last inputs before it (alone they do not reproduce it: rerun the seed)"
            }
        ));
        out.push_str(&script::write(&self.steps));
        out
    }
}

impl fmt::Display for FuzzFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invariant violated at datagram {} (seed {:#x}): {}",
            self.datagram, self.seed, self.violation.detail
        )?;
        let last = self.steps.iter().rev().find_map(|s| match s {
            Step::Datagram { bytes, .. } => Some(bytes),
            _ => None,
        });
        if let Some(b) = last {
            let shown = &b[..b.len().min(2000)];
            writeln!(
                f,
                "last datagram ({} bytes):\n{}",
                b.len(),
                String::from_utf8_lossy(shown)
            )?;
        }
        write!(
            f,
            "{} steps{}",
            self.steps.len(),
            if self.reproduced { ", minimised" } else { "" }
        )
    }
}

/// Small helpers over the simulator's generator.
pub(crate) trait Dice {
    fn one_in(&mut self, n: u64) -> bool;
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T;
    /// Uniform in `lo..hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64;
}

impl Dice for Rng {
    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }

    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo)
    }
}

/// Run the fuzzer: `cfg.datagrams` inputs, the invariants checked throughout. A violation
/// ends the run with its inputs (minimised when they reproduce it alone), unless it is one of
/// `cfg.known`, or `cfg.keep_going` asks to collect every kind of violation (a panic always ends
/// the run: the server's state is then suspect).
pub fn run(cfg: &FuzzConfig) -> Result<FuzzReport, FuzzFailure> {
    // Wall time of the run, for the report only.
    let started = Instant::now();
    let mut world = World::new(cfg.seed);
    let mut rig = Rig::new(SERVER_SEED, Runtime::fuzzing(cfg.seed));
    rig.keep_sent = true;
    let mut outcomes = Outcomes::default();
    let mut history = History::default();
    let mut batch_start = 0;
    let mut steps = Vec::new();
    let mut round = 0u64;
    while rig.datagrams < cfg.datagrams {
        world.next(rig.now, round, cfg.datagrams - rig.datagrams, &mut steps);
        round += 1;
        for s in steps.drain(..) {
            let r = rig.step(&s);
            history.push(rig.now, s);
            if !rig.issued.is_empty() {
                history.push(rig.now, Step::Issued(std::mem::take(&mut rig.issued)));
            }
            if let Err(v) = r {
                let window = || history.window();
                if let Some(f) = outcomes.violation(cfg, v, rig.datagrams, window) {
                    return Err(f);
                }
            }
        }
        world.observe(&mut rig);
        if rig.datagrams - batch_start >= cfg.batch as u64 {
            if let Err(v) = rig.check_batch() {
                let window = || history.window();
                if let Some(f) = outcomes.violation(cfg, v, rig.datagrams, window) {
                    return Err(f);
                }
            }
            batch_start = rig.datagrams;
        }
    }
    if let Err(v) = rig.check_batch() {
        let window = || history.window();
        if let Some(f) = outcomes.violation(cfg, v, rig.datagrams, window) {
            return Err(f);
        }
    }
    let seen = &rig.check.seen;
    Ok(FuzzReport {
        seed: cfg.seed,
        datagrams: rig.datagrams,
        hostile: rig.hostile,
        seeds: world.seeds.len(),
        codes: seen.codes.clone(),
        kinds: seen.kinds.clone(),
        sip_sent: seen.sip,
        rtp_packets: seen.rtp,
        rtcp_packets: seen.rtcp,
        calls_started: seen.calls_started,
        dialogs_established: world.established,
        max_occupancy: seen.max,
        stats: rig.server.stats().clone(),
        virtual_time: rig.now - rig.base,
        wall: started.elapsed(),
        known: outcomes.known,
        failures: outcomes.failures,
        repeats: outcomes.repeats,
    })
}

/// The violations of a run that did not end it.
#[derive(Default)]
struct Outcomes {
    known: BTreeMap<String, u64>,
    failures: Vec<FuzzFailure>,
    repeats: BTreeMap<String, u64>,
}

impl Outcomes {
    /// Count a known violation, or keep the first of its kind (with `keep_going`); else the
    /// failure that ends the run.
    fn violation(
        &mut self,
        cfg: &FuzzConfig,
        v: Violation,
        datagram: u64,
        window: impl FnOnce() -> Vec<Step>,
    ) -> Option<FuzzFailure> {
        if let Some(k) = cfg.known.iter().find(|k| v.detail.contains(k.pattern)) {
            *self.known.entry(k.pattern.to_string()).or_default() += 1;
            return None;
        }
        if cfg.keep_going && v.kind != "panic" {
            let n = self.repeats.entry(v.kind.clone()).or_default();
            *n += 1;
            if *n == 1 {
                self.failures.push(failure(cfg.seed, v, datagram, window()));
            }
            return None;
        }
        Some(failure(cfg.seed, v, datagram, window()))
    }
}

/// What a replay saw.
#[derive(Clone, Debug)]
pub struct ReplayReport {
    pub datagrams: u64,
    pub calls_started: u64,
    pub codes: BTreeMap<u16, u64>,
}

/// Feed steps in the regression format (see [`script`]) to a fresh server, checking every
/// invariant the fuzzer checks (a step marked `hostile` must touch no call).
pub fn replay(text: &str) -> Result<ReplayReport, String> {
    let steps = script::parse(text)?;
    let mut rig = Rig::replaying(SERVER_SEED);
    for (i, s) in steps.iter().enumerate() {
        if let Err(v) = rig.step(s) {
            return Err(format!("step {}: {}", i + 1, v.detail));
        }
    }
    rig.check_batch().map_err(|v| v.detail)?;
    Ok(ReplayReport {
        datagrams: rig.datagrams,
        calls_started: rig.check.seen.calls_started,
        codes: rig.check.seen.codes.clone(),
    })
}

/// The failure with its inputs minimised, when a part of them reproduces it on its own: the
/// last datagram alone, else the whole window, cut down by removing ever smaller runs of steps.
fn failure(seed: u64, violation: Violation, datagram: u64, window: Vec<Step>) -> FuzzFailure {
    // Panics while minimising are expected: keep them off stderr.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let last: Vec<Step> = window
        .iter()
        .rev()
        .find(|s| matches!(s, Step::Datagram { .. }))
        .cloned()
        .into_iter()
        .collect();
    let found = [last, window.clone()]
        .into_iter()
        .find(|c| !c.is_empty() && minimise::reproduces(c, &violation.kind));
    let result = match found {
        Some(steps) => FuzzFailure {
            steps: minimise::minimise(steps, &violation.kind),
            violation,
            seed,
            datagram,
            reproduced: true,
        },
        None => FuzzFailure {
            violation,
            seed,
            datagram,
            steps: window,
            reproduced: false,
        },
    };
    std::panic::set_hook(hook);
    result
}

/// How far back a failure's inputs reach: longer than a call the fuzzer lets live, plus its
/// ACK wait, and at most so many steps.
pub const WINDOW: Duration = Duration::from_secs(150);
const WINDOW_STEPS: usize = 40_000;

/// The steps of the last [`WINDOW`] of virtual time.
#[derive(Default)]
struct History {
    steps: VecDeque<(Instant, Step)>,
}

impl History {
    fn push(&mut self, now: Instant, step: Step) {
        self.steps.push_back((now, step));
        while self.steps.len() > WINDOW_STEPS
            || self
                .steps
                .front()
                .is_some_and(|(at, _)| now.saturating_duration_since(*at) > WINDOW)
        {
            self.steps.pop_front();
        }
    }

    fn window(&self) -> Vec<Step> {
        self.steps.iter().map(|(_, s)| s.clone()).collect()
    }
}
