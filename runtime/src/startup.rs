//! Start-up, the same for both runtimes: configuration (`--check-config` included), logging,
//! the file-descriptor limit, music, seed and clock epoch; and SIGHUP's re-reading of the
//! configuration and the music.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use onhold_core::config::{config_path, Config, ConfigError, RunArgs};
use onhold_core::media::Library;
use onhold_core::rng::Seed;
use onhold_core::{Codec, Server, ServerConfig, Transport};
use tracing::{debug, warn};

use crate::{logging, music};

/// Exit code for a configuration (or music) the server cannot start with.
pub const EXIT_CONFIG: u8 = 2;

/// The environment as text: the `ONHOLD_*` variables are settings, and a `[[register]]`
/// account's `password_env` may name any other. Variables that are not UTF-8 are left out.
pub fn process_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// Read the file (if one is named) and merge it with the environment and the flags.
/// `Err` is the one line to print before exiting with [`EXIT_CONFIG`].
pub fn load_config(args: &RunArgs) -> Result<Config, String> {
    let env = process_env();
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
    let mut config = Config::load(args, &env, file).map_err(|e| e.to_string())?;
    contact_ips(&mut config.server);
    Ok(config)
}

/// For an account sending from a wildcard listener with no address to advertise: the local
/// IP the kernel would send to its registrar (or outbound proxy) from, for Contact and Via.
fn contact_ips(server: &mut ServerConfig) {
    let advertised = server.advertised;
    for r in &mut server.registrations {
        if !r.local.ip().is_unspecified() || advertised.is_some() {
            continue;
        }
        // The proxy, else the registrar URI's host: an address, or a name looked up here.
        let lookup = |host: &str, port: Option<u16>| {
            use std::net::ToSocketAddrs as _;
            (host, port.unwrap_or(5060)).to_socket_addrs().ok()?.next()
        };
        let dest = match &r.outbound_proxy {
            Some(onhold_core::Hop::Addr(a)) => Some(*a),
            Some(onhold_core::Hop::Name { host, port }) => lookup(host, *port),
            None => onhold_core::sip::Uri::parse(&r.registrar)
                .ok()
                .and_then(|u| lookup(u.host_unbracketed(), u.port)),
        };
        let Some(dest) = dest else { continue };
        match local_ip_toward(dest) {
            Ok(ip) => r.contact_ip = Some(ip),
            Err(e) => warn!(aor = %r.aor, "cannot find a local address toward the registrar: {e}"),
        }
    }
}

/// The local IP the kernel would send to `dest` from. Nothing is sent: connecting a UDP
/// socket only picks the route.
pub(crate) fn local_ip_toward(dest: std::net::SocketAddr) -> io::Result<IpAddr> {
    let any: std::net::SocketAddr = if dest.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let s = std::net::UdpSocket::bind(any)?;
    s.connect(dest)?;
    Ok(s.local_addr()?.ip())
}

/// File descriptors the server may need: two sockets (RTP, RTCP) per concurrent call, bounded by
/// the RTP port range (two in all on a shared port), plus listeners and a little slack for
/// epoll, timers, signals and files.
pub fn fds_needed(config: &Config) -> u64 {
    let (lo, hi) = config.server.rtp_ports;
    let range = u64::from(hi - lo) + 1;
    let per_calls = (config.server.max_calls as u64).saturating_mul(2);
    let media = match config.server.rtp_shared_port {
        Some(_) => 2,
        None => range.min(per_calls),
    };
    media + config.listen.len() as u64 + 64
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
    /// The configured `seed`, or `None`: the generator is keyed from the OS (`key`).
    pub seed: Option<u64>,
    pub key: Seed,
    /// The seed of playlist shuffles (reloads add their count to it).
    pub shuffle_seed: u64,
    /// Read once, here: the core's times are all relative to it.
    pub epoch: Instant,
    pub epoch_wall: SystemTime,
    /// Flushes queued log lines when the server is done (the last field: dropped last).
    pub log: logging::LogGuard,
}

/// The global advertised address, then each listener's own: `auto, udp:10.0.0.2:5060 as
/// 203.0.113.5`.
fn advertised_summary(s: &ServerConfig) -> String {
    let mut out = s.advertised.map_or("auto".to_string(), |a| a.to_string());
    for l in &s.listeners {
        let t = l.transport.name();
        out.push_str(&format!(", {t}:{} as {}", l.listen, l.advertised));
    }
    out
}

impl Startup {
    pub fn new_server(&self) -> Server {
        Server::new(
            self.config.server.clone(),
            Arc::clone(&self.library),
            self.key,
            self.epoch,
            self.epoch_wall,
        )
    }

    /// The one start-up line: where we listen, RTP, advertised address, music, codecs.
    pub fn summary(&self, runtime: &str, bound: &[(Transport, SocketAddr)]) -> String {
        let s = &self.config.server;
        let listen: Vec<String> = bound
            .iter()
            .map(|(t, a)| format!("{}:{a}", t.name()))
            .collect();
        let codecs: Vec<&str> = s.codecs.iter().map(|c| c.encoding_name()).collect();
        format!(
            "onhold {} ({runtime}) listening {}; rtp {}; advertised {}; music: {}; codecs {}; \
             ptime {} ms; max_calls {}; seed {}",
            env!("CARGO_PKG_VERSION"),
            listen.join(" "),
            match s.rtp_shared_port {
                Some(p) => format!(
                    "{} shared, {} media threads",
                    SocketAddr::new(s.rtp_ip, p),
                    crate::senders::threads(&self.config)
                ),
                None => rtp_range(s.rtp_ip, s.rtp_ports),
            },
            advertised_summary(s),
            self.music_summary,
            if codecs.is_empty() {
                "any (offer order)".to_string()
            } else {
                codecs.join(",")
            },
            s.ptime_ms,
            s.max_calls,
            // A random key is never printed: it would give every tag and branch away.
            self.seed.map_or("random".to_string(), |n| n.to_string()),
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
    let key = match config.seed {
        Some(n) => Seed::from(n),
        None => os_random_key().map_err(|e| {
            eprintln!("cannot read /dev/urandom for the random seed: {e}");
            ExitCode::from(EXIT_CONFIG)
        })?,
    };
    // The playlist shuffle's seed: the configured one, else drawn from the key.
    let seed = config
        .seed
        .unwrap_or_else(|| onhold_core::rng::Rng::new(key).next_u64());
    // The 16 kHz audio G.722 calls are encoded from is kept only if they may happen.
    let g722 = config.server.allows(Codec::G722);
    if args.check_config {
        // Also read and decode the music: a path that does not exist is a configuration error.
        return Err(match music::load(&config.music, g722, seed) {
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
    let (library, music_summary, warnings) =
        music::load(&config.music, g722, seed).map_err(|line| {
            eprintln!("{line}");
            ExitCode::from(EXIT_CONFIG)
        })?;
    for w in warnings {
        warn!("{w}");
    }
    Ok(Startup {
        args,
        seed: config.seed,
        config,
        library: Arc::new(library),
        music_summary,
        key,
        shuffle_seed: seed,
        epoch: Instant::now(),
        epoch_wall: SystemTime::now(),
        log,
    })
}

/// 32 bytes from the kernel's random source, the key of the core's generator when no `seed`
/// is configured.
fn os_random_key() -> io::Result<Seed> {
    use std::io::Read as _;
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
    Ok(Seed(key))
}

/// SIGHUP's work, meant for a helper thread (decoding takes a while and must not stall pacing):
/// re-read the configuration and the music. `Err` is one line; the old music stays.
pub fn reload_music(args: &RunArgs, seed: u64) -> ReloadResult {
    let config = load_config(args)?;
    let g722 = config.server.allows(Codec::G722);
    let (library, summary, warnings) = music::load(&config.music, g722, seed)?;
    for w in warnings {
        warn!("reload: {w}");
    }
    Ok(Reloaded {
        library: Arc::new(library),
        summary,
        log_level: config.log_level,
        server: Box::new(config.server),
    })
}

/// What a successful SIGHUP produced.
pub struct Reloaded {
    pub library: Arc<Library>,
    pub summary: String,
    pub log_level: String,
    /// Settings for new calls (codecs, ptime, limits, timers); listen addresses need a restart.
    /// Boxed: the result crosses a channel to the loop, and is the largest thing that does.
    pub server: Box<ServerConfig>,
}

/// A reload's outcome: `Err` is one line, and the old music stays.
pub type ReloadResult = Result<Reloaded, String>;

#[cfg(test)]
mod tests {
    use super::*;

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
