//! onhold-sim: drives onhold-core on virtual time.
//!
//! - [`pcap`]: captures in and out;
//! - [`sdp`]: the little SDP the simulator reads (SIP it reads with `onhold_probe::msg`);
//! - [`engine`]: the discrete-event loop, the virtual network link, the observed wire;
//! - [`replay`]: the caller side of a capture, played against the core;
//! - [`verdict`]: pacing and dialog judgements of what the core sent;
//! - [`generate`]: synthetic DP750 captures;
//! - [`fuzz`]: a structure-aware fuzzer of the core, with invariants checked throughout;
//! - [`report`]: text and JSON reports.

pub mod engine;
pub mod fuzz;
pub mod generate;
pub mod pcap;
pub mod replay;
pub mod report;
pub mod rng;
pub mod sdp;
pub mod verdict;

use std::path::{Path, PathBuf};
use std::time::Duration;

use engine::{RunConfig, Sim, Trace};
use onhold_core::ServerConfig;
use pcap::Datagram;
use replay::{Caller, Note};
use verdict::pacing::MediaSummary;
use verdict::{Finding, Rules};

/// Everything one replay produced.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub name: String,
    pub seed: u64,
    pub link: String,
    pub trace: Trace,
    pub notes: Vec<Note>,
    pub media: Vec<MediaSummary>,
    pub findings: Vec<Finding>,
}

impl RunResult {
    pub fn passed(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Replay the caller side of a capture against a fresh core and judge the result.
pub fn replay(name: &str, datagrams: &[Datagram], run: &RunConfig) -> RunResult {
    let (trace, caller) = simulate(datagrams, run);
    judge(name, run, trace, caller.notes)
}

/// Run the caller side of a capture against a fresh core; no verdicts.
pub fn simulate(datagrams: &[Datagram], run: &RunConfig) -> (Trace, Caller) {
    let caller = Caller::from_capture(datagrams).with_plan(&run.caller);
    let core_ip = caller
        .core_addrs
        .first()
        .map(|a| a.ip())
        .unwrap_or([127, 0, 0, 1].into());
    let until = caller.script_end() + run.tail;
    let config = ServerConfig {
        keepalive_interval: run.keepalive_interval,
        ..engine::server_config(core_ip)
    };
    let sim = Sim::new(caller, config, run);
    sim.run(until)
}

/// Judge a trace: dialog and pacing verdicts, media summaries.
pub fn judge(name: &str, run: &RunConfig, trace: Trace, notes: Vec<Note>) -> RunResult {
    let rules = Rules::default();
    let mut findings = verdict::dialog::check(&trace, &rules);
    let (pacing, media) = verdict::pacing::check_with_summary(&trace, &rules);
    findings.extend(pacing);
    RunResult {
        name: name.to_string(),
        seed: run.seed,
        link: if run.bind_delay.is_zero() {
            run.faults.describe()
        } else {
            format!(
                "{} | RTP bind {}ms",
                run.faults.describe(),
                run.bind_delay.as_millis()
            )
        },
        trace,
        notes,
        media,
        findings,
    }
}

/// The public captures: `$ONHOLD_SHARED/captures`, else `shared/captures` beside the clone.
pub fn shared_captures_dir() -> PathBuf {
    match std::env::var_os("ONHOLD_SHARED") {
        Some(s) if !s.is_empty() => Path::new(&s).join("captures"),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/captures"),
    }
}

/// The synthetic captures committed in the repository, found from where this crate was built
/// (for the tests and `run-all`; `generate` writes relative to the working directory).
pub fn synthetic_captures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/captures")
}

/// `*.pcap`, `*.pcapng` and `*.cap` files of a directory, sorted by name.
pub fn captures_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "pcap" || e == "pcapng" || e == "cap")
        })
        .collect();
    v.sort();
    Ok(v)
}

/// The profiles `run-all` uses besides a clean link: three of seeded network faults, one of a
/// slow RTP bind, one of a runtime that wakes late.
pub fn fault_profiles() -> Vec<RunConfig> {
    use engine::LinkFaults;
    let ms = Duration::from_millis;
    vec![
        RunConfig {
            seed: 1,
            faults: LinkFaults {
                loss_ppm: 10_000,
                delay: ms(20),
                jitter: ms(5),
                ..LinkFaults::default()
            },
            ..RunConfig::default()
        },
        RunConfig {
            seed: 2,
            faults: LinkFaults {
                dup_ppm: 10_000,
                reorder_ppm: 20_000,
                delay: ms(10),
                jitter: ms(10),
                ..LinkFaults::default()
            },
            ..RunConfig::default()
        },
        RunConfig {
            seed: 3,
            faults: LinkFaults {
                loss_ppm: 50_000,
                dup_ppm: 10_000,
                reorder_ppm: 10_000,
                delay: ms(50),
                jitter: ms(20),
            },
            ..RunConfig::default()
        },
        // A slow runtime: binding the RTP port takes 2.5 s, so the core holds its 200 and a
        // CANCEL can overtake it (→ 487).
        RunConfig {
            seed: 4,
            faults: LinkFaults {
                loss_ppm: 10_000,
                delay: ms(20),
                jitter: ms(5),
                ..LinkFaults::default()
            },
            bind_delay: ms(2500),
            ..RunConfig::default()
        },
        // A runtime that oversleeps 1 % of the core's deadlines by 150 ms: bounded catch-up,
        // skipped frames, Event::Late.
        RunConfig {
            seed: 5,
            faults: LinkFaults {
                loss_ppm: 10_000,
                delay: ms(20),
                jitter: ms(5),
                ..LinkFaults::default()
            },
            stalls: (10_000, ms(150)),
            ..RunConfig::default()
        },
    ]
}

/// The core's side of the wire as a pcap file (opens in Wireshark).
pub fn wire_pcap(trace: &Trace) -> Vec<u8> {
    let mut w = pcap::PcapWriter::new();
    for p in &trace.wire {
        let (src, dst) = match p.way {
            engine::Way::In => (p.remote, p.local),
            engine::Way::Out => (p.local, p.remote),
        };
        w.push(p.at, src, dst, &p.bytes);
    }
    w.into_bytes()
}
