//! `onhold bench`: load and measurement of Music On Hold senders, side by side in one run.
//!
//! For each number of calls N and each sender, it starts a fresh server process (or uses a
//! running one), ramps to N calls at a rate from one SIP socket driven by one event loop
//! ([`load`]), holds them, tears them down with BYE, and judges every RTP packet as a handful of
//! receiver threads saw it through `recvmmsg` with kernel receive timestamps ([`media`]).
//! Beside the servers it runs the floor ([`floor`]): one thread pacing plain `send_to` calls of
//! the same packets into the same receivers, the least any sender can spend. It prints one row
//! per sender and N, the ratios of CPU per stream-second to the floor's and to SIPp's in the
//! same run, and can draw them as SVG. Everything goes to loopback and is bounded in count and
//! time.

mod floor;
mod load;
mod media;
mod procs;
mod report;
mod rx;
mod stats;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

pub use report::Row;
pub use stats::{cpu_ticks, ms_per_tick};

use crate::parse_duration;

/// The most calls one run may place.
const MAX_CALLS: usize = 100_000;
/// PCMU at 20 ms is what every sender is asked for.
const PTIME: Duration = Duration::from_millis(20);

/// Arguments of `onhold bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// An onhold-compatible server binary to start afresh for every run (repeatable), e.g.
    /// target/release/onhold and target/release/onhold-mio
    #[arg(long = "server", value_name = "PATH")]
    pub servers: Vec<PathBuf>,
    /// A running SIP server to load as well (repeatable), e.g. sip:moh@127.0.0.1:5060; its CPU
    /// and memory are read only with --target-pid (same order)
    #[arg(long = "target", value_name = "URI")]
    pub targets: Vec<String>,
    /// The process id of each --target, for its CPU and RSS
    #[arg(long = "target-pid", value_name = "PID")]
    pub target_pids: Vec<u32>,
    /// Also run SIPp as a UAS streaming PCMU with rtp_stream (path of sipp; default
    /// /usr/bin/sipp)
    #[arg(long, value_name = "PATH", num_args = 0..=1, default_missing_value = "/usr/bin/sipp")]
    pub sipp: Option<PathBuf>,
    /// Also run the floor: one thread pacing send_to of the same packets, no SIP
    #[arg(long)]
    pub floor: bool,
    /// Numbers of calls, one run each per sender, e.g. 100,1000,2000
    #[arg(long, value_delimiter = ',', default_value = "100")]
    pub calls: Vec<usize>,
    /// How long to hold the calls once all are up
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub hold: Duration,
    /// New calls (and BYEs) per second
    #[arg(long, default_value_t = 500.0)]
    pub cps: f64,
    /// RTP receiving sockets, one thread each
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub receivers: u16,
    /// How long an INVITE or BYE waits for its final response (timer B/F)
    #[arg(long, default_value = "8s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// The RTP port range given to started onhold servers
    #[arg(long, default_value = "10000-30000")]
    pub rtp_ports: String,
    /// An extra argument for every started onhold server (repeatable), e.g.
    /// --server-arg=--limit --server-arg=overload_lateness=off
    #[arg(long = "server-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub server_args: Vec<String>,
    /// Also run each --server with all media on this one RTP port (--rtp-shared-port), as a
    /// sender of its own labelled "NAME shared"
    #[arg(long, value_name = "PORT")]
    pub shared_port: Option<u16>,
    /// Keep running a sender at larger N after it lost packets or calls or fell behind real
    /// time
    #[arg(long)]
    pub keep_going: bool,
    /// Write an SVG plot (p99 deviation and CPU per stream-second against N) here
    #[arg(long, value_name = "PATH")]
    pub svg: Option<PathBuf>,
    /// Print one JSON object instead of the table
    #[arg(long)]
    pub json: bool,
    /// Where server logs and the SIPp scenario go (default: a new directory under /tmp)
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
}

/// One sender of the comparison.
#[derive(Clone, Debug)]
enum Sender {
    Onhold {
        label: String,
        path: PathBuf,
        /// Arguments of this sender alone (the shared-port variant's).
        extra: Vec<String>,
    },
    Target {
        uri: String,
        server: SocketAddrV4,
        user: String,
        pid: Option<u32>,
    },
    Sipp {
        path: PathBuf,
    },
    Floor,
}

impl Sender {
    fn label(&self) -> String {
        match self {
            Sender::Onhold { label, .. } => label.clone(),
            Sender::Target { uri, .. } => uri.clone(),
            Sender::Sipp { .. } => "sipp".into(),
            Sender::Floor => "floor".into(),
        }
    }
}

/// `sip:user@IPv4:port` (port 5060 when absent).
fn parse_target(uri: &str) -> Result<(String, SocketAddrV4), String> {
    let rest = uri
        .strip_prefix("sip:")
        .ok_or_else(|| format!("{uri}: not a sip: URI"))?;
    let (user, host) = rest.split_once('@').unwrap_or(("moh", rest));
    let host = host.split(';').next().unwrap_or(host);
    let addr: Result<SocketAddrV4, _> = if host.contains(':') {
        host.parse()
    } else {
        format!("{host}:5060").parse()
    };
    let addr = addr.map_err(|_| format!("{uri}: the host must be an IPv4 address (and port)"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{uri}: the bench sends only to loopback (127.0.0.0/8)"
        ));
    }
    Ok((user.to_owned(), addr))
}

fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("--rtp-ports {s}: expected LOW-HIGH"))?;
    let (a, b): (u16, u16) = (
        a.trim().parse().map_err(|_| format!("--rtp-ports {s}"))?,
        b.trim().parse().map_err(|_| format!("--rtp-ports {s}"))?,
    );
    if a >= b {
        return Err(format!("--rtp-ports {s}: LOW must be below HIGH"));
    }
    Ok((a, b))
}

/// Raise the soft file-descriptor limit to the hard one (SIPp, started from here, needs one
/// socket per call); returns the new soft limit.
fn raise_nofile() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    Some(lim.rlim_cur)
}

/// Run the comparison; exit 0 when every run could be made, 2 when the bench could not run.
pub fn run(args: BenchArgs) -> ExitCode {
    match execute(&args) {
        Ok(rows) => {
            if args.json {
                println!("{}", report::json(&rows));
            } else {
                print!("{}", report::table(&rows));
                print!("{}", report::ratios(&rows));
            }
            if let Some(path) = &args.svg {
                if let Err(e) = std::fs::write(path, report::svg(&rows)) {
                    eprintln!("onhold bench: {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("onhold bench: {e}");
            ExitCode::from(2)
        }
    }
}

/// Every run, N outer and senders inner, so the senders at one N are measured side by side.
pub fn execute(args: &BenchArgs) -> Result<Vec<Row>, String> {
    if !(args.cps.is_finite() && args.cps > 0.0) {
        return Err(format!("--cps {} must be a positive number", args.cps));
    }
    if let Some(&n) = args.calls.iter().find(|&&n| n == 0 || n > MAX_CALLS) {
        return Err(format!("--calls {n}: must be 1 to {MAX_CALLS}"));
    }
    let rtp_range = parse_range(&args.rtp_ports)?;
    let mut senders = Vec::new();
    if args.floor {
        senders.push(Sender::Floor);
    }
    for path in &args.servers {
        let label = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("server")
            .to_owned();
        senders.push(Sender::Onhold {
            label: label.clone(),
            path: path.clone(),
            extra: Vec::new(),
        });
        if let Some(port) = args.shared_port {
            senders.push(Sender::Onhold {
                label: format!("{label} shared"),
                path: path.clone(),
                extra: vec![format!("--rtp-shared-port={port}")],
            });
        }
    }
    for (k, uri) in args.targets.iter().enumerate() {
        let (user, server) = parse_target(uri)?;
        senders.push(Sender::Target {
            uri: uri.clone(),
            server,
            user,
            pid: args.target_pids.get(k).copied(),
        });
    }
    if let Some(path) = &args.sipp {
        senders.push(Sender::Sipp { path: path.clone() });
    }
    if senders.is_empty() {
        return Err("nothing to measure: give --server, --target, --sipp or --floor".into());
    }
    let dir = match &args.work_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("onhold-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let _stamping = rx::keep_stamping().map_err(|e| format!("SO_TIMESTAMPNS: {e}"))?;
    let nofile = raise_nofile();
    let rmem = rx::rmem_max();
    eprintln!(
        "onhold bench: RLIMIT_NOFILE raised to {}; net.core.rmem_max {}; {} receivers; logs in {}",
        nofile.map_or("?".into(), |n| n.to_string()),
        rmem.map_or("?".into(), |n| n.to_string()),
        args.receivers,
        dir.display()
    );
    let mut rows = Vec::new();
    let mut stopped: HashMap<String, usize> = HashMap::new();
    for (k, &n) in args.calls.iter().enumerate() {
        for sender in &senders {
            let label = sender.label();
            if let Some(at) = stopped.get(&label) {
                eprintln!(
                    "onhold bench: {label} at {n} skipped (it lost packets or calls at {at})"
                );
                continue;
            }
            eprintln!("onhold bench: {label}, {n} calls …");
            let run_tag = (u64::from(std::process::id()) << 16) | k as u64;
            let row = match one_run(args, sender, n, rtp_range, &dir, run_tag) {
                Ok(row) => row,
                Err(e) => {
                    eprintln!("onhold bench: {label} at {n}: {e}");
                    stopped.insert(label, n);
                    continue;
                }
            };
            eprintln!("onhold bench:   {}", report::brief(&row));
            if !args.keep_going && !row.kept_up() {
                stopped.insert(label, n);
            }
            rows.push(row);
            // Let the previous process's sockets and queues go before the next run.
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    Ok(rows)
}

fn one_run(
    args: &BenchArgs,
    sender: &Sender,
    n: usize,
    rtp_range: (u16, u16),
    dir: &std::path::Path,
    run_tag: u64,
) -> Result<Row, String> {
    let windows = Arc::new(media::Windows::default());
    let receivers = media::Receivers::start(
        Ipv4Addr::LOCALHOST,
        usize::from(args.receivers),
        PTIME,
        windows.clone(),
    )
    .map_err(|e| format!("RTP receivers: {e}"))?;
    let ports = receivers.ports.clone();
    let rcvbuf = receivers.rcvbuf;
    let label = sender.label();
    if let Sender::Floor = sender {
        let f = floor::run(Ipv4Addr::LOCALHOST, &ports, n, args.hold, PTIME, &windows)
            .map_err(|e| format!("floor: {e}"))?;
        std::thread::sleep(Duration::from_millis(300));
        let m = receivers.finish();
        warn_unstamped(&m);
        return Ok(report::floor_row(&label, n, &f, &m, rcvbuf));
    }
    let (server, user, pid, started) = match sender {
        Sender::Onhold { path, extra, .. } => {
            let extra: Vec<String> = args.server_args.iter().chain(extra).cloned().collect();
            let s = procs::start_onhold(path, rtp_range, &extra, dir)?;
            (s.sip, "moh".to_owned(), Some(s.pid()), Some(s))
        }
        Sender::Sipp { path } => {
            let s = procs::start_sipp(path, dir)?;
            (s.sip, "moh".to_owned(), Some(s.pid()), Some(s))
        }
        Sender::Target {
            server, user, pid, ..
        } => (*server, user.clone(), *pid, None),
        Sender::Floor => unreachable!("handled above"),
    };
    let cfg = load::LoadConfig {
        server,
        user,
        local_ip: Ipv4Addr::LOCALHOST,
        calls: n,
        cps: args.cps,
        hold: args.hold,
        timeout: args.timeout,
        rtp_ports: ports,
        pid,
        run_tag,
    };
    let result = load::run(&cfg, &windows);
    let m = receivers.finish();
    warn_unstamped(&m);
    if let Some(s) = started {
        s.stop(Duration::from_secs(8));
    }
    let result = result?;
    Ok(report::load_row(&label, &result, &m, rcvbuf))
}

fn warn_unstamped(m: &media::MediaReport) {
    if m.unstamped > 0 {
        eprintln!(
            "onhold bench: {} of {} RTP packets had no kernel timestamp (timed when read)",
            m.unstamped, m.packets
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_loopback_sip_uris() {
        assert_eq!(
            parse_target("sip:123@127.0.0.1:5070").unwrap(),
            ("123".to_owned(), "127.0.0.1:5070".parse().unwrap())
        );
        assert_eq!(
            parse_target("sip:127.0.0.2").unwrap().1,
            "127.0.0.2:5060".parse().unwrap()
        );
        assert!(parse_target("sip:moh@192.0.2.1:5060").is_err());
        assert!(parse_target("http://127.0.0.1").is_err());
        assert_eq!(parse_range("10000-30000"), Ok((10000, 30000)));
        assert!(parse_range("3-1").is_err());
    }
}
