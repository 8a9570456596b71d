//! `onhold probe`: a SIP test client for any Music On Hold server.
//!
//! It calls the server the way a Grandstream DP750 does (shared/dp750/*.sip: header order,
//! User-Agent, branch and tag style, padded Content-Length, the three SDP shapes), listens to
//! the music and judges it: setup time, loss, pacing, RTP header rules, media after BYE, media
//! at the wrong address. Plain threads and blocking sockets with timeouts: every call is two
//! threads (SIP and RTP), and everything is bounded in count and time.

pub mod bench;
mod call;
#[cfg(test)]
mod core_tests;
mod dp750;
mod media;
pub mod msg;
mod report;
mod sipsock;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

pub use call::Shape;
use call::{CallConfig, Progress};
use dp750::Target;
pub use media::KernelClock;
use report::Summary;
use sipsock::Mux;

/// The most calls one run may place (each is two threads and two sockets).
const MAX_CALLS: u32 = 1000;

/// Arguments of `onhold probe`.
#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// The MOH URI to call, e.g. sip:123@127.0.0.1:5060
    pub target: String,
    /// How long to listen to each call (e.g. 10s, 500ms, 1m)
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// How many calls to place
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=MAX_CALLS as i64))]
    pub calls: u32,
    /// New calls per second
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Which DP750 INVITE to send: own address, held party's address, or no SDP
    #[arg(long, value_enum, default_value_t = Shape::Own)]
    pub shape: Shape,
    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,
    /// Our address: SIP and RTP sockets bind here and the SDP names it
    #[arg(long, default_value = "127.0.0.1")]
    pub local_ip: IpAddr,
    /// The held party's address (held-party shape); default 127.0.0.2 when --local-ip is
    /// 127.0.0.1 and that address can be bound, else --local-ip
    #[arg(long)]
    pub held_ip: Option<IpAddr>,
    /// How long to wait for a final response (Timer B/F)
    #[arg(long, default_value = "32s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Send every call's SIP from one socket, as a phone with several lines does
    #[arg(long)]
    pub shared_sip_port: bool,
    /// Send a PCMU packet every 20 ms from our RTP socket to the server's, as a phone does
    /// (behind a NAT, only this opens the way back; a server latching to it answers there)
    #[arg(long)]
    pub send_rtp: bool,
}

/// Run the probe; exit code 0 only when every call was healthy, 1 when any was not, 2 when the
/// probe could not run at all.
pub fn run(args: ProbeArgs) -> ExitCode {
    match execute(&args) {
        Ok(summary) => {
            if args.json {
                println!("{}", summary.json());
            } else {
                print!("{}", summary.text());
            }
            if summary.healthy() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("onhold probe: {e}");
            ExitCode::from(2)
        }
    }
}

/// `10s`, `500ms`, `1.5s`, `2m`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a duration like 10s or 500ms"))?;
    let secs = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        other => return Err(format!("{s:?}: unknown unit {other:?} (use ms, s or m)")),
    };
    if !(0.0..=3600.0).contains(&secs) {
        return Err(format!("{s:?}: must be between 0 and 1 hour"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn held_ip(args: &ProbeArgs) -> IpAddr {
    if let Some(ip) = args.held_ip {
        return ip;
    }
    // A different address than the SIP source makes "RTP goes to the SDP address, not to the
    // signalling source" observable on one host. Linux routes all of 127/8 to loopback.
    if args.local_ip == IpAddr::V4(Ipv4Addr::LOCALHOST) {
        let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        if UdpSocket::bind((other, 0)).is_ok() {
            return other;
        }
    }
    args.local_ip
}

/// Place the calls and gather the figures (no printing but the progress line).
pub fn execute(args: &ProbeArgs) -> Result<Summary, String> {
    if !(args.rate.is_finite() && args.rate > 0.0) {
        return Err(format!("--rate {} must be a positive number", args.rate));
    }
    if args.local_ip.is_unspecified() {
        // 0.0.0.0 in c= means "hold" (RFC 3264 §8.4): the server would rightly send nothing.
        return Err("--local-ip must be an address the server can send to, not 0.0.0.0/::".into());
    }
    let calls = args.calls.clamp(1, MAX_CALLS) as usize;
    let target = Target::parse(&args.target)?;
    let server = target.resolve()?;
    if server.is_ipv4() != args.local_ip.is_ipv4() {
        return Err(format!(
            "{server} and --local-ip {} are different address families",
            args.local_ip
        ));
    }
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id()).rotate_left(32);
    let cfg = CallConfig {
        target,
        server,
        local_ip: args.local_ip,
        held_ip: held_ip(args),
        shape: args.shape,
        duration: args.duration,
        timeout: args.timeout,
        seed,
        send_rtp: args.send_rtp,
        mux: if args.shared_sip_port {
            Some(Mux::bind(args.local_ip).map_err(|e| format!("SIP socket: {e}"))?)
        } else {
            None
        },
    };
    let options_code = call::options(&cfg).map_err(|e| format!("OPTIONS: {e}"))?;

    let progress = Progress::default();
    let spacing = Duration::from_secs_f64(1.0 / args.rate);
    let estimate = spacing * (calls as u32 - 1) + args.duration;
    let show_progress = estimate > Duration::from_secs(3);
    let done = AtomicBool::new(false);
    let start = Instant::now();
    let results = std::thread::scope(|scope| {
        if show_progress {
            scope.spawn(|| progress_line(&progress, &done, start, calls));
        }
        if let Some(mux) = &cfg.mux {
            scope.spawn(|| mux.run(&done));
        }
        let mut handles = Vec::with_capacity(calls);
        for index in 0..calls {
            let due = start + spacing * index as u32;
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            let (cfg, progress) = (&cfg, &progress);
            let handle = std::thread::Builder::new()
                .name(format!("probe-call-{index}"))
                .stack_size(256 * 1024)
                .spawn_scoped(scope, move || call::run(cfg, index, progress));
            match handle {
                Ok(h) => handles.push(h),
                Err(e) => {
                    eprintln!("onhold probe: cannot start call {index}: {e}");
                    break;
                }
            }
        }
        let results: Vec<_> = handles.into_iter().filter_map(|h| h.join().ok()).collect();
        done.store(true, Ordering::Relaxed);
        results
    });
    let mut summary = Summary::new(
        &args.target,
        args.shape.name(),
        args.duration.as_millis() as u64,
        options_code,
        &results,
    );
    if let Some(mux) = &cfg.mux {
        summary.misdirected_packets += mux.misdirected.load(Ordering::Relaxed);
    }
    Ok(summary)
}

fn progress_line(progress: &Progress, done: &AtomicBool, start: Instant, calls: usize) {
    let mut next = start + Duration::from_secs(1);
    while !done.load(Ordering::Relaxed) {
        if Instant::now() < next {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        next += Duration::from_secs(1);
        eprintln!(
            "probe {:>4}s  calls {}/{} started, {} done, {} failed  rtp {}",
            start.elapsed().as_secs(),
            progress.started.load(Ordering::Relaxed),
            calls,
            progress.finished.load(Ordering::Relaxed),
            progress.failed.load(Ordering::Relaxed),
            progress.rtp_packets.load(Ordering::Relaxed),
        );
    }
}
