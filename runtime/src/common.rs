//! What both runtimes do the same way around the [`Server`]: start-up (configuration,
//! `--check-config`, logging, file-descriptor limit, music, seed, clock epoch), signals, the
//! shutdown/reload lifecycle and event logging. Sockets are in [`crate::net`]; only waiting and
//! socket syscalls differ between `onhold` (smol) and `onhold-mio`, so only those live in the
//! binaries.

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use onhold_core::config::{config_path, Config, ConfigError, RunArgs};
use onhold_core::media::Library;
use onhold_core::{Control, Event, Server, ServerConfig, Stats, Transport};
use tracing::{debug, error, info, warn};

use crate::{logging, music};

/// Exit code for a configuration (or music) the server cannot start with.
pub const EXIT_CONFIG: u8 = 2;

/// What a signal asks of the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignalAction {
    /// SIGINT, SIGTERM: stop taking calls, BYE every call, exit when drained.
    Shutdown,
    /// SIGHUP: re-read the configuration and the music; calls keep running.
    Reload,
}

/// The signals the runtimes catch.
pub const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

pub fn signal_action(signo: libc::c_int) -> Option<SignalAction> {
    match signo {
        libc::SIGINT | libc::SIGTERM => Some(SignalAction::Shutdown),
        libc::SIGHUP => Some(SignalAction::Reload),
        _ => None,
    }
}

pub fn signal_name(signo: libc::c_int) -> &'static str {
    match signo {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "signal",
    }
}

/// Start a helper thread (logging, reloads) that never takes a signal: every signal is blocked
/// in it from its first instruction, so process-directed signals reach the thread that waits
/// for them (onhold-mio's signalfd needs every other thread to block them, or a SIGTERM would
/// be delivered to a helper and kill the process with the default action).
pub fn spawn_helper<F>(name: &str, f: F) -> io::Result<std::thread::JoinHandle<()>>
where
    F: FnOnce() + Send + 'static,
{
    // SAFETY: sigset_t is plain data, initialised by sigfillset/pthread_sigmask before use; the
    // calling thread's mask is restored right after the spawn, which inherits the full block.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
        let spawned = std::thread::Builder::new().name(name.to_string()).spawn(f);
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        spawned
    }
}

/// The `ONHOLD_*` environment, the only variables the configuration looks at.
pub fn onhold_env() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("ONHOLD_"))
        .collect()
}

/// Read the file (if one is named) and merge it with the environment and the flags.
/// `Err` is the one line to print before exiting with [`EXIT_CONFIG`].
pub fn load_config(args: &RunArgs) -> Result<Config, String> {
    let env = onhold_env();
    let path: Option<PathBuf> = config_path(args, &env);
    let text = match &path {
        Some(p) => Some(std::fs::read_to_string(p).map_err(|e| {
            ConfigError {
                key: "config".into(),
                value: p.display().to_string(),
                allowed: format!("cannot read the file: {e}"),
                origin: None,
            }
            .to_string()
        })?),
        None => None,
    };
    let file = path.as_deref().zip(text.as_deref());
    Config::load(args, &env, file).map_err(|e| e.to_string())
}

/// File descriptors the server may need: two sockets (RTP, RTCP) per concurrent call, bounded by
/// the RTP port range, plus listeners and a little slack for epoll, timers, signals and files.
pub fn fds_needed(config: &Config) -> u64 {
    let (lo, hi) = config.server.rtp_ports;
    let range = u64::from(hi - lo) + 1;
    let per_calls = (config.server.max_calls as u64).saturating_mul(2);
    range.min(per_calls) + config.listen.len() as u64 + 64
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit when the soft one is below `needed`.
/// Returns the limit now in force; `Err` only when the syscalls fail.
pub fn raise_nofile_limit(needed: u64) -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the rlimit we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur >= needed as libc::rlim_t || lim.rlim_cur >= lim.rlim_max {
        return Ok(rlim_to_u64(lim.rlim_cur));
    }
    let raised = libc::rlimit {
        rlim_cur: lim.rlim_max,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: setrlimit reads the rlimit we own; raising the soft limit up to the hard one needs
    // no privilege.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rlim_to_u64(raised.rlim_cur))
}

// rlim_t is u64 on the targets we build for today, but not by definition.
#[allow(clippy::unnecessary_cast)]
fn rlim_to_u64(v: libc::rlim_t) -> u64 {
    v as u64
}

/// Everything a runtime needs to create its [`Server`] and sockets.
pub struct Startup {
    pub args: RunArgs,
    pub config: Config,
    pub library: Arc<Library>,
    pub music_summary: String,
    pub seed: u64,
    /// Read once, here: the core's times are all relative to it.
    pub epoch: Instant,
    pub epoch_wall: SystemTime,
    /// Flushes queued log lines when the server is done (the last field: dropped last).
    pub log: logging::LogGuard,
}

impl Startup {
    pub fn new_server(&self) -> Server {
        Server::new(
            self.config.server.clone(),
            Arc::clone(&self.library),
            self.seed,
            self.epoch,
            self.epoch_wall,
        )
    }

    /// The one start-up line: where we listen, RTP, advertised address, music, codecs.
    pub fn summary(&self, runtime: &str, bound: &[(Transport, SocketAddr)]) -> String {
        let s = &self.config.server;
        let listen: Vec<String> = bound
            .iter()
            .map(|(t, a)| match t {
                Transport::Udp => format!("udp:{a}"),
                Transport::Tcp => format!("tcp:{a}"),
            })
            .collect();
        let codecs: Vec<&str> = s.codecs.iter().map(|c| c.encoding_name()).collect();
        format!(
            "onhold {} ({runtime}) listening {}; rtp {}; advertised {}; music: {}; codecs {}; \
             ptime {} ms; max_calls {}; seed {}",
            env!("CARGO_PKG_VERSION"),
            listen.join(" "),
            rtp_range(s.rtp_ip, s.rtp_ports),
            s.advertised.map_or("auto".to_string(), |a| a.to_string()),
            self.music_summary,
            if codecs.is_empty() {
                "any (offer order)".to_string()
            } else {
                codecs.join(",")
            },
            s.ptime_ms,
            s.max_calls,
            self.seed,
        )
    }
}

/// `0.0.0.0:10000-20000`, `[::]:10000-20000`.
fn rtp_range(ip: IpAddr, (lo, hi): (u16, u16)) -> String {
    match ip {
        IpAddr::V6(v6) => format!("[{v6}]:{lo}-{hi}"),
        IpAddr::V4(v4) => format!("{v4}:{lo}-{hi}"),
    }
}

/// Configuration, `--check-config`, logging, fd limit, music, seed, epoch. `Err` is the exit
/// code to leave with (the reason has been printed).
pub fn start(args: RunArgs) -> Result<Startup, ExitCode> {
    let config = load_config(&args).map_err(|line| {
        eprintln!("{line}");
        ExitCode::from(EXIT_CONFIG)
    })?;
    let seed = config.seed.unwrap_or_else(clock_seed);
    if args.check_config {
        // Also read and decode the music: a path that does not exist is a configuration error.
        return Err(match music::load(&config.music, seed) {
            Ok((_, summary, warnings)) => {
                for w in config.warnings.iter().chain(&warnings) {
                    eprintln!("warning: {w}");
                }
                // A closed pipe (`| head`) is not an error worth a panic.
                use std::io::Write as _;
                let _ = writeln!(
                    io::stdout().lock(),
                    "{}# music: {summary}",
                    config.to_toml()
                );
                ExitCode::SUCCESS
            }
            Err(line) => {
                eprintln!("{line}");
                ExitCode::from(EXIT_CONFIG)
            }
        });
    }
    let log = logging::init_logging(&config.log_level, config.log_format);
    for w in &config.warnings {
        warn!("{w}");
    }
    let needed = fds_needed(&config);
    match raise_nofile_limit(needed) {
        Ok(limit) if limit < needed => warn!(
            limit,
            needed, "RLIMIT_NOFILE is below what the RTP port range and max_calls need"
        ),
        Ok(limit) => debug!(limit, "RLIMIT_NOFILE"),
        Err(e) => warn!("cannot raise RLIMIT_NOFILE: {e}"),
    }
    // Bad music is like bad config: exactly one line on stderr, naming the file, and exit 2.
    let (library, music_summary, warnings) = music::load(&config.music, seed).map_err(|line| {
        eprintln!("{line}");
        ExitCode::from(EXIT_CONFIG)
    })?;
    for w in warnings {
        warn!("{w}");
    }
    Ok(Startup {
        args,
        config,
        library: Arc::new(library),
        music_summary,
        seed,
        epoch: Instant::now(),
        epoch_wall: SystemTime::now(),
        log,
    })
}

/// A seed from the wall clock and the process id, for `seed = "clock"`.
fn clock_seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// SIGHUP's work, meant for a helper thread (decoding takes a while and must not stall pacing):
/// re-read the configuration and the music. `Err` is one line; the old music stays.
pub fn reload_music(args: &RunArgs, seed: u64) -> ReloadResult {
    let config = load_config(args)?;
    let (library, summary, warnings) = music::load(&config.music, seed)?;
    for w in warnings {
        warn!("reload: {w}");
    }
    Ok(Reloaded {
        library: Arc::new(library),
        summary,
        log_level: config.log_level,
        server: config.server,
    })
}

/// What a successful SIGHUP produced.
pub struct Reloaded {
    pub library: Arc<Library>,
    pub summary: String,
    pub log_level: String,
    /// Settings for new calls (codecs, ptime, limits, timers); listen addresses need a restart.
    pub server: ServerConfig,
}

/// A reload's outcome: `Err` is one line, and the old music stays.
pub type ReloadResult = Result<Reloaded, String>;

/// What the loop should do after a signal.
#[derive(Debug, PartialEq)]
pub enum AfterSignal {
    Continue,
    /// Run [`reload_music`] off the loop thread, then call [`Lifecycle::reload_done`].
    StartReload {
        seed: u64,
    },
    Exit(ExitCode),
}

/// Shutdown and reload around the server, the same for both runtimes.
pub struct Lifecycle {
    grace: Duration,
    base_seed: u64,
    reloads: u64,
    reloading: bool,
    /// Set by the first SIGINT/SIGTERM: the latest we wait for `Event::Drained`.
    hard_deadline: Option<Instant>,
    late: LateReport,
    /// Counters as last reported, and when the next report is due.
    stats: (Stats, Option<Instant>),
}

/// How often the counters are logged while they change.
const STATS_EVERY: Duration = Duration::from_secs(60);

/// Late wake-ups summed into at most one warning per second: an overloaded host makes every
/// call late at once, and a line per call would only add to the load.
#[derive(Default)]
struct LateReport {
    since: Option<Instant>,
    frames: u64,
    calls: BTreeSet<u64>,
}

impl LateReport {
    const EVERY: Duration = Duration::from_secs(1);

    fn add(&mut self, now: Instant, call: u64, skipped: u32) {
        self.since.get_or_insert(now);
        self.frames += u64::from(skipped);
        self.calls.insert(call);
    }

    fn flush(&mut self, now: Instant, force: bool) {
        let Some(since) = self.since else {
            return;
        };
        if force || now.saturating_duration_since(since) >= Self::EVERY {
            warn!(
                frames = self.frames,
                calls = self.calls.len(),
                "woke late: skipped frames to stay on the pacing grid"
            );
            *self = LateReport::default();
        }
    }
}

impl Lifecycle {
    pub fn new(startup: &Startup) -> Lifecycle {
        Lifecycle {
            grace: startup.config.shutdown_grace,
            base_seed: startup.seed,
            reloads: 0,
            reloading: false,
            hard_deadline: None,
            late: LateReport::default(),
            stats: (Stats::default(), None),
        }
    }

    pub fn on_signal(&mut self, server: &mut Server, now: Instant, signo: i32) -> AfterSignal {
        let name = signal_name(signo);
        match signal_action(signo) {
            Some(SignalAction::Shutdown) if self.hard_deadline.is_some() => {
                warn!("{name} again: exiting without waiting for the calls to end");
                AfterSignal::Exit(ExitCode::from(1))
            }
            Some(SignalAction::Shutdown) => {
                info!(grace = ?self.grace, "{name}: refusing new calls, hanging up every call");
                // The core bounds its own wait by `grace`; ours adds a margin for the BYEs'
                // answers so a core that never reports Drained cannot keep us alive.
                self.hard_deadline = Some(now + self.grace + Duration::from_secs(1));
                server.control(now, Control::Shutdown { grace: self.grace });
                AfterSignal::Continue
            }
            Some(SignalAction::Reload) if self.reloading => {
                info!("{name}: a reload is already running");
                AfterSignal::Continue
            }
            Some(SignalAction::Reload) => {
                info!("{name}: reloading configuration and music");
                self.reloading = true;
                self.reloads += 1;
                AfterSignal::StartReload {
                    seed: self.base_seed.wrapping_add(self.reloads),
                }
            }
            None => AfterSignal::Continue,
        }
    }

    pub fn reload_done(&mut self, server: &mut Server, now: Instant, result: ReloadResult) {
        self.reloading = false;
        match result {
            Ok(r) => {
                logging::set_level(&r.log_level);
                info!(
                    "reload: music: {}; settings apply to new calls (listen addresses need a \
                     restart)",
                    r.summary
                );
                server.control(now, Control::Reconfigure(Box::new(r.server)));
                server.control(now, Control::Reload(r.library));
            }
            Err(line) => error!("reload failed, keeping the old music: {line}"),
        }
    }

    /// The next time the loop must wake: the core's deadline, or the shutdown bound.
    pub fn next_wake(&self, server: &Server) -> Option<Instant> {
        match (server.poll_timeout(), self.hard_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Call the core's timer if due, and log its events. `Some` when the process should exit.
    pub fn service(&mut self, server: &mut Server, now: Instant) -> Option<ExitCode> {
        if server.poll_timeout().is_some_and(|t| t <= now) {
            server.handle_timeout(now);
        }
        self.check(server, now)
    }

    /// Log the core's events; `Some` when the process should exit.
    pub fn check(&mut self, server: &mut Server, now: Instant) -> Option<ExitCode> {
        let mut drained = false;
        while let Some(ev) = server.poll_event() {
            match ev {
                Event::Late { call, skipped } => self.late.add(now, call.0, skipped),
                Event::Drained => {
                    drained = true;
                    log_event(&ev);
                }
                ev => log_event(&ev),
            }
        }
        self.late.flush(now, drained);
        self.report_stats(server, now);
        if drained && self.hard_deadline.is_some() {
            info!("every call has ended: exiting");
            return Some(ExitCode::SUCCESS);
        }
        if self.hard_deadline.is_some_and(|d| now >= d) {
            warn!(
                calls = server.stats().calls_active,
                "shutdown grace elapsed: exiting with calls still up"
            );
            return Some(ExitCode::SUCCESS);
        }
        None
    }
}

impl Lifecycle {
    /// One line of counters a minute, only while something changes (an idle server stays quiet).
    fn report_stats(&mut self, server: &Server, now: Instant) {
        let due = *self.stats.1.get_or_insert(now + STATS_EVERY);
        if now < due {
            return;
        }
        self.stats.1 = Some(now + STATS_EVERY);
        let s = server.stats();
        if *s == self.stats.0 {
            return;
        }
        info!(
            calls_active = s.calls_active,
            calls_total = s.calls_total,
            sip_in = s.sip_in,
            sip_out = s.sip_out,
            rtp_out = s.rtp_out,
            rtcp_out = s.rtcp_out,
            rtp_in = s.rtp_in,
            dropped = s.dropped,
            late_skipped_frames = s.late_skipped_frames,
            "stats"
        );
        self.stats.0 = s.clone();
    }
}

/// One log line per event: calls at info, refusals and drops at debug (a scanner can send
/// thousands), late wake-ups at warn (the loops sum those up per second instead).
pub fn log_event(ev: &Event) {
    match ev {
        Event::CallStarted {
            call,
            call_id,
            user,
            remote_sip,
            remote_rtp,
            local_rtp,
            codec,
            payload_type,
            ptime_ms,
            direction,
        } => info!(
            call = %call,
            call_id = %call_id,
            user = %user,
            remote_sip = %remote_sip,
            remote_rtp = %remote_rtp,
            local_rtp = %local_rtp,
            codec = %codec,
            pt = payload_type,
            ptime_ms,
            direction = ?direction,
            "call started"
        ),
        Event::MediaChanged {
            call,
            remote_rtp,
            direction,
        } => {
            info!(call = %call, remote_rtp = %remote_rtp, direction = ?direction, "media changed")
        }
        Event::CallEnded {
            call,
            reason,
            duration,
            rtp_packets_sent,
        } => info!(
            call = %call,
            reason = ?reason,
            duration = ?duration,
            rtp_packets_sent,
            "call ended"
        ),
        Event::Rejected {
            remote,
            method,
            code,
            reason,
        } => debug!(remote = %remote, method = %method, code, reason = %reason, "rejected"),
        Event::Dropped { remote, why } => debug!(remote = %remote, why, "dropped datagram"),
        Event::Late { call, skipped } => {
            warn!(call = %call, skipped, "woke late: skipped frames")
        }
        Event::Drained => info!("drained"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_wakeups_are_summed_per_second() {
        let t0 = Instant::now();
        let mut r = LateReport::default();
        r.add(t0, 1, 2);
        r.add(t0 + Duration::from_millis(10), 2, 3);
        r.add(t0 + Duration::from_millis(20), 1, 1);
        r.flush(t0 + Duration::from_millis(500), false);
        assert_eq!(
            (r.frames, r.calls.len()),
            (6, 2),
            "kept until a second has passed"
        );
        r.flush(t0 + Duration::from_secs(1), false);
        assert_eq!(
            (r.frames, r.calls.len(), r.since),
            (0, 0, None),
            "reported and reset"
        );
        r.add(t0, 3, 1);
        r.flush(t0, true);
        assert_eq!(r.frames, 0, "forced at shutdown");
    }

    #[test]
    fn rtp_range_brackets_ipv6() {
        assert_eq!(
            rtp_range(IpAddr::from([0, 0, 0, 0]), (10000, 20000)),
            "0.0.0.0:10000-20000"
        );
        assert_eq!(
            rtp_range("::1".parse().unwrap(), (10000, 10001)),
            "[::1]:10000-10001"
        );
    }

    #[test]
    fn signals_map_to_actions() {
        assert_eq!(signal_action(libc::SIGTERM), Some(SignalAction::Shutdown));
        assert_eq!(signal_action(libc::SIGINT), Some(SignalAction::Shutdown));
        assert_eq!(signal_action(libc::SIGHUP), Some(SignalAction::Reload));
        assert_eq!(signal_action(libc::SIGUSR1), None);
    }

    #[test]
    fn fd_budget_follows_range_and_calls() {
        let args = RunArgs {
            rtp_ports: Some("10000-10099".into()),
            max_calls: Some("1000".into()),
            ..RunArgs::default()
        };
        let c = Config::load(&args, &[], None).unwrap();
        assert_eq!(fds_needed(&c), 100 + 1 + 64);
        let args = RunArgs {
            max_calls: Some("10".into()),
            ..RunArgs::default()
        };
        let c = Config::load(&args, &[], None).unwrap();
        assert_eq!(fds_needed(&c), 20 + 1 + 64);
        let limit = raise_nofile_limit(64).unwrap();
        assert!(limit >= 64);
    }
}
