//! onhold-sim: replay captures against onhold-core on virtual time, judge what it sends,
//! generate the synthetic DP750 captures.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use onhold_sim::engine::{LinkFaults, RunConfig};
use onhold_sim::{report, RunResult};

#[derive(Parser)]
#[command(
    name = "onhold-sim",
    about = "Discrete-event simulator for onhold-core"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Replay the caller side of captures against the core and judge the result.
    Replay {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Datagrams lost, e.g. `1%`.
        #[arg(long, value_parser = parse_ppm, default_value = "0%")]
        loss: u32,
        /// Extra delay uniform in 0..=jitter, e.g. `5ms`.
        #[arg(long, value_parser = parse_duration, default_value = "0ms")]
        jitter: Duration,
        #[arg(long, value_parser = parse_duration, default_value = "0ms")]
        delay: Duration,
        /// Datagrams delivered twice, e.g. `0.1%`.
        #[arg(long, value_parser = parse_ppm, default_value = "0%")]
        dup: u32,
        /// Datagrams held back so later ones overtake, e.g. `0.5%`.
        #[arg(long, value_parser = parse_ppm, default_value = "0%")]
        reorder: u32,
        /// Keep simulating this long after the caller's last message.
        #[arg(long, value_parser = parse_duration, default_value = "40s")]
        tail: Duration,
        /// How long binding an RTP port takes (the core holds its 200 until then).
        #[arg(long, value_parser = parse_duration, default_value = "0ms")]
        bind_delay: Duration,
        /// Share of the core's timer wake-ups the runtime oversleeps, e.g. `2%`.
        #[arg(long, value_parser = parse_ppm, default_value = "0%")]
        stall_rate: u32,
        /// How long an overslept wake-up is late, e.g. `70ms`.
        #[arg(long, value_parser = parse_duration, default_value = "0ms")]
        stall: Duration,
        /// Write the JSON report here (an array, one entry per file).
        #[arg(long)]
        json: Option<PathBuf>,
        /// Write the core's side of the wire as pcap (one input file only).
        #[arg(long)]
        pcap_out: Option<PathBuf>,
        /// A host name the simulated resolver knows, `NAME=IP` (repeatable); other names
        /// resolve to nothing.
        #[arg(long = "host", value_parser = parse_host)]
        hosts: Vec<(String, std::net::IpAddr)>,
    },
    /// Write the synthetic DP750 captures.
    Generate {
        /// The folder to write them to, relative to the working directory (run it from the
        /// repository root to rewrite the committed ones).
        #[arg(long, default_value = "tests/captures")]
        out: PathBuf,
    },
    /// Replay every capture in tests/captures and shared/captures, clean and under three
    /// seeded fault profiles.
    RunAll {
        /// Write every JSON report here (an array).
        #[arg(long)]
        json: Option<PathBuf>,
        /// Print the full text report of passing runs too.
        #[arg(long)]
        verbose: bool,
    },
}

/// `proxy.example=192.0.2.7` → the name (lower case) and its address.
fn parse_host(s: &str) -> Result<(String, std::net::IpAddr), String> {
    let (name, ip) = s
        .split_once('=')
        .ok_or_else(|| format!("{s}: expected NAME=IP"))?;
    let ip = ip.parse().map_err(|e| format!("{s}: {e}"))?;
    Ok((name.to_ascii_lowercase(), ip))
}

/// `1%`, `0.1%`, `0.005` → parts per million.
fn parse_ppm(s: &str) -> Result<u32, String> {
    let (num, scale) = match s.strip_suffix('%') {
        Some(n) => (n, 10_000.0),
        None => (s, 1_000_000.0),
    };
    let v: f64 = num.trim().parse().map_err(|_| format!("not a rate: {s}"))?;
    let ppm = (v * scale).round();
    if !(0.0..=1_000_000.0).contains(&ppm) {
        return Err(format!("rate out of range: {s}"));
    }
    Ok(ppm as u32)
}

/// `5ms`, `1.5s`, `250us`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| s.split_at(i))
        .unwrap_or((s, "ms"));
    let v: f64 = num.parse().map_err(|_| format!("not a duration: {s}"))?;
    let secs = match unit {
        "s" => v,
        "ms" => v / 1e3,
        "us" => v / 1e6,
        _ => return Err(format!("unknown unit in {s} (s, ms, us)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s}: {e}"))
}

fn load(path: &Path) -> Result<Vec<onhold_sim::pcap::Datagram>, String> {
    onhold_sim::pcap::read_file(path).map_err(|e| e.to_string())
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn write_json(path: &Path, results: &[RunResult]) -> Result<(), String> {
    let body: Vec<String> = results.iter().map(report::json).collect();
    std::fs::write(path, format!("[{}]\n", body.join(",\n")))
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("onhold-sim: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<bool, String> {
    match cli.command {
        Cmd::Replay {
            files,
            seed,
            loss,
            jitter,
            delay,
            dup,
            reorder,
            tail,
            bind_delay,
            stall_rate,
            stall,
            json,
            pcap_out,
            hosts,
        } => {
            if pcap_out.is_some() && files.len() != 1 {
                return Err("--pcap-out takes exactly one input file".into());
            }
            let cfg = RunConfig {
                seed,
                faults: LinkFaults {
                    loss_ppm: loss,
                    dup_ppm: dup,
                    reorder_ppm: reorder,
                    delay,
                    jitter,
                },
                tail,
                keep_rtp_payload: true,
                record_media: true,
                bind_delay,
                stalls: (stall_rate, stall),
                hosts: hosts.into_iter().collect(),
                // A capture's caller as captured: no extra RTP, present throughout.
                caller: Default::default(),
                keepalive_interval: None,
            };
            let mut results = Vec::new();
            for f in &files {
                let r = onhold_sim::replay(&name_of(f), &load(f)?, &cfg);
                print!("{}", report::text(&r));
                results.push(r);
            }
            if let (Some(out), Some(r)) = (pcap_out, results.first()) {
                std::fs::write(&out, onhold_sim::wire_pcap(&r.trace))
                    .map_err(|e| format!("{}: {e}", out.display()))?;
            }
            if let Some(out) = json {
                write_json(&out, &results)?;
            }
            Ok(results.iter().all(RunResult::passed))
        }
        Cmd::Generate { out } => {
            std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
            for (name, bytes) in onhold_sim::generate::all() {
                let path = out.join(&name);
                std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
                println!("wrote {}", path.display());
            }
            Ok(true)
        }
        Cmd::RunAll { json, verbose } => {
            let mut files = Vec::new();
            for dir in [
                onhold_sim::synthetic_captures_dir(),
                onhold_sim::shared_captures_dir(),
            ] {
                let found = onhold_sim::captures_in(&dir).map_err(|e| format!("captures expected in {}: {e} (set ONHOLD_SHARED to the folder holding captures/)", dir.display()))?;
                files.extend(found);
            }
            let mut profiles = vec![RunConfig::default()];
            profiles.extend(onhold_sim::fault_profiles());
            let mut results = Vec::new();
            let mut all_pass = true;
            for f in &files {
                let datagrams = load(f)?;
                for p in &profiles {
                    let r = onhold_sim::replay(&name_of(f), &datagrams, p);
                    if verbose || !r.passed() {
                        print!("{}", report::text(&r));
                    }
                    println!(
                        "{} {} | seed {} | {} | {} finding(s)",
                        if r.passed() { "PASS" } else { "FAIL" },
                        r.name,
                        r.seed,
                        r.link,
                        r.findings.len()
                    );
                    all_pass &= r.passed();
                    results.push(r);
                }
            }
            if let Some(out) = json {
                write_json(&out, &results)?;
            }
            println!(
                "{} of {} runs passed",
                results.iter().filter(|r| r.passed()).count(),
                results.len()
            );
            Ok(all_pass)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_durations_parse() {
        assert_eq!(parse_ppm("1%"), Ok(10_000));
        assert_eq!(parse_ppm("0.1%"), Ok(1_000));
        assert!(parse_ppm("200%").is_err());
        assert_eq!(parse_duration("5ms"), Ok(Duration::from_millis(5)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("3h").is_err());
    }
}
