//! One configuration model for both runtimes: a TOML file, `ONHOLD_*` environment variables and
//! command-line flags, merged with the precedence flags > environment > file > defaults.
//!
//! Parsing text is not IO: the runtime reads the file and the environment and passes the text and
//! the `(name, value)` pairs in, so this module stays as deterministic as the rest of the core.
//! Every layer goes through the same validation, so a bad value gives the same one-line
//! [`ConfigError`] (`config: ptime = 7: must be 10–60 ms in steps of 10 (from --ptime)`) whether it
//! came from the file, the environment or a flag.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::media::PlayMode;
use crate::server::{
    ClassSdp, DenyAction, InDialogFrom, Latching, ListenerAdvertised, MediaTo, Network,
    ServerConfig, Transport,
};

mod args;
mod limits;
mod register;
mod url;
mod values;

pub use args::RunArgs;
pub use limits::LIMIT_KEYS;
pub use register::RegisterConfig;
pub use url::{is_url, HttpUrl};

use values::*;

pub use values::{format_duration, parse_duration};

/// Where an effective value came from (shown by `--check-config` and in error lines).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Default,
    /// The configuration file, by its path as given.
    File(String),
    /// The environment variable of that name.
    Env(String),
    /// The flag of that name (`--ptime`).
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File(p) | Origin::Env(p) | Origin::Flag(p) => f.write_str(p),
        }
    }
}

/// A configuration that cannot be used. `Display` is one line naming the key, the value and
/// what is allowed; the binaries print it and exit with code 2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    /// The offending value as written (TOML syntax for file values), empty for syntax errors.
    pub value: String,
    /// What is allowed (or what went wrong).
    pub allowed: String,
    /// Where the value came from; `None` for defaults and whole-file errors.
    pub origin: Option<Origin>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(f, "config: {}: {}", self.key, self.allowed)?;
        } else {
            write!(f, "config: {} = {}: {}", self.key, self.value, self.allowed)?;
        }
        match &self.origin {
            Some(o @ (Origin::Env(_) | Origin::Flag(_))) => write!(f, " (from {o})"),
            Some(Origin::File(p)) => write!(f, " (in {p})"),
            _ => Ok(()),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A SIP listen socket, written `[udp:|tcp:]IP:PORT[@ADVERTISED]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListenAddr {
    pub transport: Transport,
    pub addr: SocketAddr,
    /// What requests arriving here advertise in Contact and SDP, over the global
    /// `advertised_address`.
    pub advertised: Option<IpAddr>,
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport.name(), self.addr)?;
        match self.advertised {
            Some(ip) => write!(f, "@{ip}"),
            None => Ok(()),
        }
    }
}

/// Order of the files of a directory class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MusicOrder {
    /// By file name.
    Sorted,
    /// Shuffled once per start or reload, from the seed.
    Shuffle,
}

/// One music class: callers whose Request-URI user part is `name` hear it (`default`: everyone
/// else).
#[derive(Clone, Debug, PartialEq)]
pub struct ClassConfig {
    pub name: String,
    /// A file or a directory; `None` only for the default class (the built-in music).
    pub music: Option<PathBuf>,
    pub mode: PlayMode,
    pub order: MusicOrder,
    pub announcement: Option<PathBuf>,
    pub announcement_every: Duration,
    /// Record what every caller of this class sends (into `record_dir`).
    pub record: bool,
    /// `music` is a live source's `http://` URL (then `music` itself is `None`).
    pub live: Option<HttpUrl>,
    /// What a live class plays while its source is silent (`None`: the built-in music).
    pub fallback: Option<PathBuf>,
    /// How much of a live source to buffer before playing it.
    pub live_buffer: Duration,
    /// Its own codecs, ptime and SDP lines (`class` is this class's name).
    pub sdp: ClassSdp,
}

/// What music to load; the runtime reads the files.
#[derive(Clone, Debug, PartialEq)]
pub struct MusicConfig {
    /// Sorted by name, `default` included only when it has music or a table of its own.
    pub classes: Vec<ClassConfig>,
    pub normalize: bool,
    pub gain_db: f32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

/// The effective configuration: the core's part and the runtime's part.
#[derive(Clone, Debug)]
pub struct Config {
    pub server: ServerConfig,
    pub listen: Vec<ListenAddr>,
    pub music: MusicConfig,
    /// One of trace, debug, info, warn, error.
    pub log_level: String,
    pub log_format: LogFormat,
    /// `None`: the runtime keys the generator from the OS random source.
    pub seed: Option<u64>,
    pub shutdown_grace: Duration,
    /// Threads that send the shared RTP port's packets (`None`: one per core); 0 sends them
    /// from the loop thread. Without a shared port media always leaves from the loop thread.
    pub media_threads: Option<usize>,
    /// The control API's HTTP listener (`None`: off).
    pub control_listen: Option<SocketAddr>,
    /// The bearer token every control request must carry; required for a non-loopback listener.
    pub control_token: Option<String>,
    /// Where calls are recorded (`None`: recording is off).
    pub record_dir: Option<PathBuf>,
    /// Bytes of WAV one call's recording may grow to, and all recordings together.
    pub record_max_bytes: usize,
    pub record_total_bytes: usize,
    /// The `[[register]]` accounts (also in `server.registrations`), with where each password
    /// came from.
    pub register: Vec<RegisterConfig>,
    /// The file it was read from, if any.
    pub file: Option<PathBuf>,
    /// Things worth a log line that are not errors (unknown `ONHOLD_*` variables).
    pub warnings: Vec<String>,
    origins: BTreeMap<&'static str, Origin>,
}

/// Every top-level key, in the order `--check-config` prints them.
pub const KEYS: [&str; 34] = [
    "listen",
    "rtp_ports",
    "rtp_shared_port",
    "media_threads",
    "rtp_ip",
    "advertised_address",
    "music",
    "normalize",
    "gain_db",
    "codecs",
    "ptime",
    "max_calls",
    "max_call_duration",
    "media_timeout",
    "keepalive_interval",
    "send_ringing",
    "accept_register",
    "rtp_latching",
    "in_dialog_from",
    "media_to",
    "allow",
    "deny_action",
    "log_level",
    "log_format",
    "seed",
    "shutdown_grace",
    "control_listen",
    "control_token",
    "record_dir",
    "record_max_bytes",
    "record_total_bytes",
    "limits",
    "classes",
    "register",
];

const IN_DIALOG_FROM: [(&str, InDialogFrom); 2] =
    [("peer", InDialogFrom::Peer), ("any", InDialogFrom::Any)];
const RTP_LATCHING: [(&str, Latching); 3] = [
    ("auto", Latching::Auto),
    ("off", Latching::Off),
    ("always", Latching::Always),
];
const MEDIA_TO: [(&str, MediaTo); 2] = [("sdp", MediaTo::Sdp), ("sip-source", MediaTo::SipSource)];
const DENY_ACTION: [(&str, DenyAction); 2] =
    [("drop", DenyAction::Drop), ("403", DenyAction::Forbidden)];

const CLASS_KEYS: [&str; 14] = [
    "music",
    "mode",
    "order",
    "announcement",
    "announcement_every",
    "record",
    "codecs",
    "ptime",
    "sdp_bandwidth_as",
    "sdp_bandwidth_tias",
    "sdp_session_attributes",
    "sdp_media_attributes",
    "fallback",
    "live_buffer",
];

/// A live source's jitter buffer unless `live_buffer` says otherwise.
pub const DEFAULT_LIVE_BUFFER: Duration = Duration::from_millis(300);

/// The file named by `--config`, else by `ONHOLD_CONFIG`; the runtime reads it and calls
/// [`Config::load`].
pub fn config_path(args: &RunArgs, env: &[(String, String)]) -> Option<PathBuf> {
    args.config.clone().or_else(|| {
        env.iter()
            .find(|(k, v)| k == "ONHOLD_CONFIG" && !v.is_empty())
            .map(|(_, v)| PathBuf::from(v))
    })
}

impl Config {
    /// Merge the layers and validate. `file` is the configuration file's path (as given, for
    /// messages and to resolve relative music paths against its directory) and text; `env` holds
    /// the environment: the `ONHOLD_*` variables are settings, any other is read only when a
    /// `[[register]]` account's `password_env` names it.
    pub fn load(
        args: &RunArgs,
        env: &[(String, String)],
        file: Option<(&Path, &str)>,
    ) -> Result<Config, ConfigError> {
        let mut layers: BTreeMap<&'static str, Setting> = BTreeMap::new();
        let mut class_tables = toml::Table::new();
        let mut register_value = None;
        let mut warnings = Vec::new();
        let mut base_dir = None;

        if let Some((path, text)) = file {
            let origin = Origin::File(path.display().to_string());
            base_dir = path.parent().map(Path::to_path_buf);
            let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
                let line = e
                    .span()
                    .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
                let message = e.message().replace('\n', " ");
                ConfigError {
                    key: match line {
                        Some(l) => format!("{}:{l}", path.display()),
                        None => path.display().to_string(),
                    },
                    value: String::new(),
                    allowed: format!("not valid TOML: {}", message.trim()),
                    origin: None,
                }
            })?;
            for (key, value) in table {
                let Some(&known) = KEYS.iter().find(|k| **k == key) else {
                    return Err(ConfigError {
                        key,
                        value: render(&Raw::Toml(value)),
                        allowed: format!("unknown key; known keys: {}", KEYS.join(", ")),
                        origin: Some(origin),
                    });
                };
                if known == "register" {
                    register_value = Some(value);
                    continue;
                }
                if known == "limits" {
                    limits::from_file(value, &origin, &mut layers)?;
                    continue;
                }
                if known == "classes" {
                    match value {
                        toml::Value::Table(t) => class_tables = t,
                        other => {
                            return Err(err(
                                "classes",
                                &Setting {
                                    raw: Raw::Toml(other),
                                    origin,
                                },
                                "must be tables: [classes.<user>]",
                            ))
                        }
                    }
                    continue;
                }
                layers.insert(
                    known,
                    Setting {
                        raw: Raw::Toml(value),
                        origin: origin.clone(),
                    },
                );
            }
        }

        for (name, value) in env {
            let Some(suffix) = name.strip_prefix("ONHOLD_") else {
                continue;
            };
            if suffix == "CONFIG" {
                continue;
            }
            let key = suffix.to_ascii_lowercase();
            let limit = key.strip_prefix("limits_").and_then(limits::qualified);
            let table = |k: &&str| matches!(*k, "classes" | "limits" | "register");
            match limit.or_else(|| KEYS.iter().find(|k| **k == key && !table(k)).copied()) {
                Some(known) => {
                    layers.insert(
                        known,
                        Setting {
                            raw: Raw::Text(value.clone()),
                            origin: Origin::Env(name.clone()),
                        },
                    );
                }
                None => warnings.push(format!("ignoring unknown environment variable {name}")),
            }
        }

        let flags: [(&'static str, Option<&String>); 30] = [
            ("rtp_ports", args.rtp_ports.as_ref()),
            ("rtp_shared_port", args.rtp_shared_port.as_ref()),
            ("media_threads", args.media_threads.as_ref()),
            ("rtp_ip", args.rtp_ip.as_ref()),
            ("advertised_address", args.advertised_address.as_ref()),
            ("music", args.music.as_ref()),
            ("normalize", args.normalize.as_ref()),
            ("gain_db", args.gain_db.as_ref()),
            ("codecs", args.codecs.as_ref()),
            ("ptime", args.ptime.as_ref()),
            ("max_calls", args.max_calls.as_ref()),
            ("max_call_duration", args.max_call_duration.as_ref()),
            ("media_timeout", args.media_timeout.as_ref()),
            ("keepalive_interval", args.keepalive_interval.as_ref()),
            ("send_ringing", args.send_ringing.as_ref()),
            ("accept_register", args.accept_register.as_ref()),
            ("rtp_latching", args.rtp_latching.as_ref()),
            ("in_dialog_from", args.in_dialog_from.as_ref()),
            ("media_to", args.media_to.as_ref()),
            ("allow", args.allow.as_ref()),
            ("deny_action", args.deny_action.as_ref()),
            ("log_level", args.log_level.as_ref()),
            ("log_format", args.log_format.as_ref()),
            ("seed", args.seed.as_ref()),
            ("shutdown_grace", args.shutdown_grace.as_ref()),
            ("control_listen", args.control_listen.as_ref()),
            ("control_token", args.control_token.as_ref()),
            ("record_dir", args.record_dir.as_ref()),
            ("record_max_bytes", args.record_max_bytes.as_ref()),
            ("record_total_bytes", args.record_total_bytes.as_ref()),
        ];
        for (key, value) in flags {
            if let Some(v) = value {
                layers.insert(
                    key,
                    Setting {
                        raw: Raw::Text(v.clone()),
                        origin: Origin::Flag(format!("--{}", key.replace('_', "-"))),
                    },
                );
            }
        }
        limits::from_flags(&args.limit, &mut layers)?;
        if !args.listen.is_empty() {
            layers.insert(
                "listen",
                Setting {
                    raw: Raw::Text(args.listen.join(",")),
                    origin: Origin::Flag("--listen".into()),
                },
            );
        }

        let mut origins = BTreeMap::new();
        for key in KEYS.into_iter().chain(LIMIT_KEYS) {
            let origin = layers
                .get(key)
                .map_or(Origin::Default, |s| s.origin.clone());
            origins.insert(key, origin);
        }
        let get = |key: &'static str| layers.get(key);

        let mut server = ServerConfig::default();
        let listen = match get("listen") {
            Some(s) => parse_listen(s)?,
            None => vec![ListenAddr {
                transport: Transport::Udp,
                addr: SocketAddr::from(([0, 0, 0, 0], 5060)),
                advertised: None,
            }],
        };
        server.listeners = listen
            .iter()
            .filter_map(|l| {
                Some(ListenerAdvertised {
                    transport: l.transport,
                    listen: l.addr,
                    advertised: l.advertised?,
                })
            })
            .collect();
        let register = match (register_value, &file) {
            (Some(v), Some((path, _))) => {
                register::parse(v, &Origin::File(path.display().to_string()), env, &listen)?
            }
            _ => Vec::new(),
        };
        server.registrations = register.iter().map(|r| r.registration.clone()).collect();
        if let Some(s) = get("rtp_ports") {
            server.rtp_ports = parse_port_range(s)?;
        }
        if let Some(s) = get("rtp_shared_port") {
            let allowed = "must be an even port from 2 to 65534, or \"off\"";
            server.rtp_shared_port = match &s.raw {
                Raw::Toml(toml::Value::String(t)) | Raw::Text(t) if t.trim() == "off" => None,
                _ => match int(s, "rtp_shared_port", allowed)? {
                    0 => None,
                    p if (2..=65534).contains(&p) && p % 2 == 0 => Some(p as u16),
                    _ => return Err(err("rtp_shared_port", s, allowed)),
                },
            };
        }
        if let Some(s) = get("rtp_ip") {
            server.rtp_ip = text(s, "rtp_ip", "must be an IP address")?
                .parse()
                .map_err(|_| err("rtp_ip", s, "must be an IP address, e.g. 0.0.0.0 or ::"))?;
        }
        if let Some(s) = get("advertised_address") {
            let t = text(s, "advertised_address", "must be an IP address or \"auto\"")?;
            server.advertised = match t.as_str() {
                "" | "auto" => None,
                ip => Some(ip.parse().map_err(|_| {
                    err(
                        "advertised_address",
                        s,
                        "must be an IP address (e.g. 192.0.2.10) or \"auto\"",
                    )
                })?),
            };
        }
        if let Some(s) = get("codecs") {
            server.codecs = parse_codecs(s)?;
        }
        if let Some(s) = get("ptime") {
            server.ptime_ms = parse_ptime(s, "ptime")?;
        }
        if let Some(s) = get("max_calls") {
            let allowed = "must be a whole number from 1 to 1000000";
            let v = int(s, "max_calls", allowed)?;
            if !(1..=1_000_000).contains(&v) {
                return Err(err("max_calls", s, allowed));
            }
            server.max_calls = v as usize;
        }
        let second = Duration::from_secs(1);
        if let Some(s) = get("max_call_duration") {
            server.max_call_duration = duration_or_off(s, "max_call_duration", second)?;
        }
        if let Some(s) = get("media_timeout") {
            server.media_timeout = duration_or_off(s, "media_timeout", second)?;
        }
        if let Some(s) = get("keepalive_interval") {
            server.keepalive_interval = duration_or_off(s, "keepalive_interval", 5 * second)?;
        }
        if let Some(s) = get("send_ringing") {
            server.send_ringing = boolean(s, "send_ringing")?;
        }
        if let Some(s) = get("accept_register") {
            server.accept_register = boolean(s, "accept_register")?;
        }
        if let Some(s) = get("rtp_latching") {
            server.rtp_latching = choice(s, "rtp_latching", &RTP_LATCHING)?;
        }
        if let Some(s) = get("in_dialog_from") {
            server.in_dialog_from = choice(s, "in_dialog_from", &IN_DIALOG_FROM)?;
        }
        if let Some(s) = get("media_to") {
            server.media_to = choice(s, "media_to", &MEDIA_TO)?;
        }
        if let Some(s) = get("allow") {
            let allowed = "must be a list of networks, e.g. [\"192.168.0.0/16\", \"10.0.0.0/8\"] \
                           (\"0.0.0.0/0\" and \"::/0\" for everyone)";
            server.allow = list(s, "allow", allowed)?
                .iter()
                .map(|n| Network::parse(n).ok_or_else(|| err("allow", s, allowed)))
                .collect::<Result<_, _>>()?;
        }
        if server.allow.iter().any(Network::is_everything) {
            warnings.push(
                "allow includes every address (/0): SIP is taken from the whole internet".into(),
            );
        }
        if let Some(s) = get("deny_action") {
            server.deny_action = choice(s, "deny_action", &DENY_ACTION)?;
        }
        limits::apply(&layers, &mut server)?;

        let log_level = match get("log_level") {
            Some(s) => {
                let allowed = "must be trace, debug, info, warn or error";
                let t = text(s, "log_level", allowed)?.to_ascii_lowercase();
                if !["trace", "debug", "info", "warn", "error"].contains(&t.as_str()) {
                    return Err(err("log_level", s, allowed));
                }
                t
            }
            None => "info".to_string(),
        };
        let log_format = match get("log_format") {
            Some(s) => {
                let allowed = "must be human or json";
                match text(s, "log_format", allowed)?.as_str() {
                    "human" => LogFormat::Human,
                    "json" => LogFormat::Json,
                    _ => return Err(err("log_format", s, allowed)),
                }
            }
            None => LogFormat::Human,
        };
        let seed = match get("seed") {
            None => None,
            Some(s) => {
                let allowed = "must be a whole number from 0 to 18446744073709551615 or \"random\"";
                match &s.raw {
                    Raw::Toml(toml::Value::Integer(i)) => {
                        Some(u64::try_from(*i).map_err(|_| err("seed", s, allowed))?)
                    }
                    Raw::Toml(toml::Value::String(t)) | Raw::Text(t) => match t.trim() {
                        // Either word: not fixed, keyed from the OS.
                        "random" | "clock" => None,
                        n => Some(n.parse().map_err(|_| err("seed", s, allowed))?),
                    },
                    _ => return Err(err("seed", s, allowed)),
                }
            }
        };
        let shutdown_grace = match get("shutdown_grace") {
            Some(s) => {
                let allowed = "must be a duration from 0s to 1h (e.g. 5s, 500ms)";
                let d = duration(s, "shutdown_grace", allowed)?;
                if d > Duration::from_secs(3600) {
                    return Err(err("shutdown_grace", s, allowed));
                }
                d
            }
            None => Duration::from_secs(5),
        };
        let media_threads = match get("media_threads") {
            Some(s) => {
                let allowed = "must be \"auto\" or a whole number from 0 to 64";
                match &s.raw {
                    Raw::Toml(toml::Value::String(t)) | Raw::Text(t) if t.trim() == "auto" => None,
                    _ => match int(s, "media_threads", allowed)? {
                        n @ 0..=64 => Some(n as usize),
                        _ => return Err(err("media_threads", s, allowed)),
                    },
                }
            }
            None => None,
        };
        if media_threads.is_some_and(|n| n > 0) && server.rtp_shared_port.is_none() {
            warnings.push(
                "media_threads applies to the shared RTP port only (rtp_shared_port is off): \
                 media is sent from the loop thread"
                    .into(),
            );
        }
        let control_token = match get("control_token") {
            Some(s) => {
                let allowed = "must be at least 16 characters of printable ASCII, no spaces";
                let t = text(s, "control_token", allowed)?;
                if t.len() < 16 || !t.bytes().all(|b| b.is_ascii_graphic()) {
                    // The value is a secret: never echoed.
                    return Err(ConfigError {
                        key: "control_token".into(),
                        value: "\"(hidden)\"".into(),
                        allowed: allowed.into(),
                        origin: Some(s.origin.clone()),
                    });
                }
                Some(t)
            }
            None => None,
        };
        let control_listen = match get("control_listen") {
            Some(s) => {
                let allowed = "must be IP:PORT (e.g. 127.0.0.1:8080) or \"off\"";
                let t = text(s, "control_listen", allowed)?;
                if t == "off" {
                    None
                } else {
                    let addr: SocketAddr =
                        t.parse().map_err(|_| err("control_listen", s, allowed))?;
                    if !addr.ip().is_loopback() && control_token.is_none() {
                        return Err(err(
                            "control_listen",
                            s,
                            "is not a loopback address: anyone who reaches it could hang up calls; \
                             set control_token (or ONHOLD_CONTROL_TOKEN) to listen there",
                        ));
                    }
                    Some(addr)
                }
            }
            None => Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
        };
        let record_dir = match get("record_dir") {
            Some(s) => {
                let t = text(s, "record_dir", "must be a directory path, or \"\" for off")?;
                (!t.is_empty()).then(|| resolve(&t, &s.origin, base_dir.as_deref()))
            }
            None => None,
        };
        let size = |key: &'static str, default: usize| -> Result<usize, ConfigError> {
            let Some(s) = get(key) else {
                return Ok(default);
            };
            let allowed = "must be a size from 1MiB to 16TiB, e.g. \"64MiB\"";
            let t = text(s, key, allowed)?;
            match limits::parse_size(&t) {
                Some(n) if (1 << 20..=16 << 40).contains(&n) => Ok(n),
                _ => Err(err(key, s, allowed)),
            }
        };
        let record_max_bytes = size("record_max_bytes", 64 << 20)?;
        let record_total_bytes = size("record_total_bytes", 1 << 30)?;

        let normalize = match get("normalize") {
            Some(s) => boolean(s, "normalize")?,
            None => true,
        };
        let gain_db = match get("gain_db") {
            Some(s) => {
                let allowed = "must be a number of dB from -40 to 20";
                let v = float(s, "gain_db", allowed)?;
                if !(-40.0..=20.0).contains(&v) {
                    return Err(err("gain_db", s, allowed));
                }
                v as f32
            }
            None => 0.0,
        };
        let file_origin = file.map(|(p, _)| Origin::File(p.display().to_string()));
        let mut classes = parse_classes(class_tables, file_origin, base_dir.as_deref())?;
        if let Some(s) = get("music") {
            let allowed = "must be a path to a file or a directory, or an http:// URL";
            let t = text(s, "music", allowed)?;
            let live = live_url(&t, "music", s)?;
            let path = (!t.is_empty() && live.is_none())
                .then(|| resolve(&t, &s.origin, base_dir.as_deref()));
            match classes.iter_mut().find(|c| c.name == "default") {
                Some(c) => (c.music, c.live) = (path, live),
                None if path.is_some() || live.is_some() => classes.push(ClassConfig {
                    music: path,
                    live,
                    ..ClassConfig::new("default")
                }),
                None => {}
            }
            classes.sort_by(|a, b| a.name.cmp(&b.name));
        }

        // A class's own SDP settings reach the core with the rest of its settings.
        server.class_sdp = classes
            .iter()
            .filter(|c| c.sdp != ClassConfig::new(&c.name).sdp)
            .map(|c| c.sdp.clone())
            .collect();
        Ok(Config {
            server,
            listen,
            music: MusicConfig {
                classes,
                normalize,
                gain_db,
            },
            log_level,
            log_format,
            seed,
            shutdown_grace,
            media_threads,
            control_listen,
            control_token,
            record_dir,
            record_max_bytes,
            record_total_bytes,
            register,
            file: file.map(|(p, _)| p.to_path_buf()),
            warnings,
            origins,
        })
    }

    /// Where the effective value of a top-level key came from.
    pub fn origin(&self, key: &str) -> &Origin {
        self.origins.get(key).unwrap_or(&Origin::Default)
    }

    /// The effective configuration as TOML, every key, each commented with its origin: what
    /// `--check-config` prints. It parses back to the same configuration.
    pub fn to_toml(&self) -> String {
        let s = &self.server;
        let default_music = self
            .music
            .classes
            .iter()
            .find(|c| c.name == "default")
            .and_then(|c| c.music.as_ref())
            .map_or(String::new(), |p| p.display().to_string());
        let mut lines: Vec<(&str, String)> = vec![
            (
                "listen",
                format!(
                    "[{}]",
                    self.listen
                        .iter()
                        .map(|l| quote(&l.to_string()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            (
                "rtp_ports",
                quote(&format!("{}-{}", s.rtp_ports.0, s.rtp_ports.1)),
            ),
            (
                "rtp_shared_port",
                s.rtp_shared_port
                    .map_or_else(|| quote("off"), |p| p.to_string()),
            ),
            (
                "media_threads",
                self.media_threads
                    .map_or_else(|| quote("auto"), |n| n.to_string()),
            ),
            ("rtp_ip", quote(&s.rtp_ip.to_string())),
            (
                "advertised_address",
                quote(&s.advertised.map_or("auto".into(), |ip| ip.to_string())),
            ),
            ("music", quote(&default_music)),
            ("normalize", self.music.normalize.to_string()),
            ("gain_db", format!("{:?}", self.music.gain_db)),
            (
                "codecs",
                format!(
                    "[{}]",
                    s.codecs
                        .iter()
                        .map(|c| quote(c.encoding_name()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            ("ptime", s.ptime_ms.to_string()),
            ("max_calls", s.max_calls.to_string()),
            (
                "max_call_duration",
                quote(&s.max_call_duration.map_or("off".into(), format_duration)),
            ),
            (
                "media_timeout",
                quote(&s.media_timeout.map_or("off".into(), format_duration)),
            ),
            (
                "keepalive_interval",
                quote(&s.keepalive_interval.map_or("off".into(), format_duration)),
            ),
            ("send_ringing", s.send_ringing.to_string()),
            ("accept_register", s.accept_register.to_string()),
            (
                "rtp_latching",
                quote(word_of(&RTP_LATCHING, &s.rtp_latching)),
            ),
            (
                "in_dialog_from",
                quote(word_of(&IN_DIALOG_FROM, &s.in_dialog_from)),
            ),
            ("media_to", quote(word_of(&MEDIA_TO, &s.media_to))),
            (
                "allow",
                format!(
                    "[{}]",
                    s.allow
                        .iter()
                        .map(|n| quote(&n.to_string()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            ("deny_action", quote(word_of(&DENY_ACTION, &s.deny_action))),
            ("log_level", quote(&self.log_level)),
            (
                "log_format",
                quote(match self.log_format {
                    LogFormat::Human => "human",
                    LogFormat::Json => "json",
                }),
            ),
            ("seed", self.seed.map_or(quote("random"), |n| n.to_string())),
            (
                "shutdown_grace",
                quote(&format_duration(self.shutdown_grace)),
            ),
            (
                "control_listen",
                quote(&self.control_listen.map_or("off".into(), |a| a.to_string())),
            ),
            (
                "record_dir",
                quote(
                    &self
                        .record_dir
                        .as_ref()
                        .map_or(String::new(), |p| p.display().to_string()),
                ),
            ),
            (
                "record_max_bytes",
                quote(&limits::format_size(self.record_max_bytes)),
            ),
            (
                "record_total_bytes",
                quote(&limits::format_size(self.record_total_bytes)),
            ),
        ];
        let mut out = String::from(
            "# onhold effective configuration (flags > ONHOLD_* environment > file > defaults)\n",
        );
        let width = lines
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .max()
            .unwrap_or(0);
        let limits = limits::lines(s);
        let width = limits
            .iter()
            .map(|(k, v)| k.len() - "limits.".len() + v.len())
            .fold(width, usize::max);
        let line = |key: &str, name: &str, value: &str| {
            let pad = width - name.len() - value.len();
            let origin = self.origin(key);
            format!("{name} = {value}{:pad$}  # {origin}\n", "")
        };
        for (key, value) in lines.drain(..) {
            out.push_str(&line(key, key, &value));
        }
        if self.control_token.is_some() {
            // A secret: the output says one is set and where from, never what it is.
            out.push_str(&line("control_token", "# control_token", "(set, hidden)"));
        }
        out.push_str("\n[limits]\n");
        for (key, value) in &limits {
            out.push_str(&line(key, &key["limits.".len()..], value));
        }
        for c in &self.music.classes {
            out.push_str(&format!("\n[classes.{}]\n", quote_key(&c.name)));
            if let Some(url) = &c.live {
                out.push_str(&format!(
                    "music = {}\nfallback = {}\nlive_buffer = {}\n",
                    quote(&url.to_string()),
                    quote(
                        &c.fallback
                            .as_ref()
                            .map_or(String::new(), |p| p.display().to_string())
                    ),
                    quote(&format_duration(c.live_buffer)),
                ));
            } else if c.name != "default" {
                let m = c
                    .music
                    .as_ref()
                    .map_or(String::new(), |p| p.display().to_string());
                out.push_str(&format!("music = {}\n", quote(&m)));
            }
            out.push_str(&format!(
                "mode = {}\norder = {}\nannouncement = {}\nannouncement_every = {}\nrecord = {}\n",
                quote(match c.mode {
                    PlayMode::PerCall => "per-call",
                    PlayMode::Shared => "shared",
                }),
                quote(match c.order {
                    MusicOrder::Sorted => "sorted",
                    MusicOrder::Shuffle => "shuffle",
                }),
                quote(
                    &c.announcement
                        .as_ref()
                        .map_or(String::new(), |p| p.display().to_string())
                ),
                quote(&format_duration(c.announcement_every)),
                c.record,
            ));
            out.push_str(&values::class_sdp_lines(&c.sdp));
        }
        out.push_str(&register::lines(&self.register));
        out
    }
}

impl ClassConfig {
    /// A class with music still to name, every other setting at its default.
    pub fn new(name: &str) -> ClassConfig {
        ClassConfig {
            name: name.to_string(),
            music: None,
            mode: PlayMode::PerCall,
            order: MusicOrder::Sorted,
            announcement: None,
            announcement_every: Duration::from_secs(60),
            record: false,
            live: None,
            fallback: None,
            live_buffer: DEFAULT_LIVE_BUFFER,
            sdp: ClassSdp {
                class: name.to_string(),
                ..ClassSdp::default()
            },
        }
    }
}

#[cfg(test)]
mod tests;
