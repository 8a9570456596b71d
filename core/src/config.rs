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
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::codec::Codec;
use crate::media::PlayMode;
use crate::server::{ServerConfig, Transport};

/// The flags shared by `onhold` and `onhold-mio` (`[run]` is the default subcommand of both).
///
/// Every setting is optional here: an absent flag falls through to `ONHOLD_<KEY>`, then to the
/// file, then to the default shown in `--help`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct RunArgs {
    /// Configuration file (TOML; see onhold.example.toml). [env: ONHOLD_CONFIG]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Validate the configuration, print the effective settings (every key) and exit.
    #[arg(long)]
    pub check_config: bool,
    /// SIP listen address, repeatable: [udp:|tcp:]IP:PORT (port 0 picks a free one).
    /// [default: udp:0.0.0.0:5060] [env: ONHOLD_LISTEN, comma-separated]
    #[arg(long, value_name = "ADDR")]
    pub listen: Vec<String>,
    /// Inclusive UDP port range for RTP (even ports) and RTCP (the odd port above).
    /// [default: 10000-20000] [env: ONHOLD_RTP_PORTS]
    #[arg(long, value_name = "LOW-HIGH")]
    pub rtp_ports: Option<String>,
    /// Local IP the RTP sockets bind to. [default: 0.0.0.0] [env: ONHOLD_RTP_IP]
    #[arg(long, value_name = "IP")]
    pub rtp_ip: Option<String>,
    /// IP written into SDP c= and Contact; "auto": the Request-URI host if it is an IP, else the
    /// address the request arrived on. [default: auto] [env: ONHOLD_ADVERTISED_ADDRESS]
    #[arg(long, value_name = "IP")]
    pub advertised_address: Option<String>,
    /// Music of the default class: an audio file, or a directory played in name order ("" =
    /// the built-in music). [default: ""] [env: ONHOLD_MUSIC]
    #[arg(long, value_name = "PATH")]
    pub music: Option<String>,
    /// Normalize the loudness of every track. [default: true] [env: ONHOLD_NORMALIZE]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub normalize: Option<String>,
    /// Gain applied to all music after normalization, -40 to 20 dB. [default: 0]
    /// [env: ONHOLD_GAIN_DB]
    #[arg(long, value_name = "DB", allow_negative_numbers = true)]
    pub gain_db: Option<String>,
    /// Codecs we may answer with, most preferred first, comma-separated: PCMU, PCMA, G722.
    /// Empty: all three, the offer's order decides. [default: ""] [env: ONHOLD_CODECS]
    #[arg(long, value_name = "LIST")]
    pub codecs: Option<String>,
    /// Packet time when the offer has no a=ptime: 10–60 ms in steps of 10. [default: 20]
    /// [env: ONHOLD_PTIME]
    #[arg(long, value_name = "MS")]
    pub ptime: Option<String>,
    /// Concurrent calls; INVITEs beyond it are refused. [default: 1000] [env: ONHOLD_MAX_CALLS]
    #[arg(long, value_name = "N")]
    pub max_calls: Option<String>,
    /// Hang up (BYE) calls older than this, e.g. 1h, 90s, 1h30m; "off" = never.
    /// [default: off] [env: ONHOLD_MAX_CALL_DURATION]
    #[arg(long, value_name = "DURATION")]
    pub max_call_duration: Option<String>,
    /// Send 180 Ringing before 200 OK. [default: false] [env: ONHOLD_SEND_RINGING]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub send_ringing: Option<String>,
    /// trace, debug, info, warn or error (RUST_LOG, when set, overrides it). [default: info]
    /// [env: ONHOLD_LOG_LEVEL]
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Log format on stderr: human or json. [default: human] [env: ONHOLD_LOG_FORMAT]
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Seed of every random choice (tags, SSRCs, shuffles); "clock" = from the clock at start.
    /// [default: clock] [env: ONHOLD_SEED]
    #[arg(long, value_name = "N")]
    pub seed: Option<String>,
    /// On SIGINT/SIGTERM: refuse new calls, BYE every call and wait this long for the answers.
    /// [default: 5s] [env: ONHOLD_SHUTDOWN_GRACE]
    #[arg(long, value_name = "DURATION")]
    pub shutdown_grace: Option<String>,
}

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

/// A SIP listen socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListenAddr {
    pub transport: Transport,
    pub addr: SocketAddr,
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = match self.transport {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        };
        write!(f, "{t}:{}", self.addr)
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
    /// `None`: the runtime seeds from the clock.
    pub seed: Option<u64>,
    pub shutdown_grace: Duration,
    /// The file it was read from, if any.
    pub file: Option<PathBuf>,
    /// Things worth a log line that are not errors (unknown `ONHOLD_*` variables).
    pub warnings: Vec<String>,
    origins: BTreeMap<&'static str, Origin>,
}

/// Every top-level key, in the order `--check-config` prints them.
pub const KEYS: [&str; 17] = [
    "listen",
    "rtp_ports",
    "rtp_ip",
    "advertised_address",
    "music",
    "normalize",
    "gain_db",
    "codecs",
    "ptime",
    "max_calls",
    "max_call_duration",
    "send_ringing",
    "log_level",
    "log_format",
    "seed",
    "shutdown_grace",
    "classes",
];

const CLASS_KEYS: [&str; 5] = [
    "music",
    "mode",
    "order",
    "announcement",
    "announcement_every",
];

/// The file named by `--config`, else by `ONHOLD_CONFIG`; the runtime reads it and calls
/// [`Config::load`].
pub fn config_path(args: &RunArgs, env: &[(String, String)]) -> Option<PathBuf> {
    args.config.clone().or_else(|| {
        env.iter()
            .find(|(k, v)| k == "ONHOLD_CONFIG" && !v.is_empty())
            .map(|(_, v)| PathBuf::from(v))
    })
}

/// A value before validation: TOML from the file, plain text from the environment and flags.
#[derive(Clone, Debug)]
enum Raw {
    Toml(toml::Value),
    Text(String),
}

#[derive(Clone, Debug)]
struct Setting {
    raw: Raw,
    origin: Origin,
}

impl Config {
    /// Merge the layers and validate. `file` is the configuration file's path (as given, for
    /// messages and to resolve relative music paths against its directory) and text; `env` holds
    /// the `ONHOLD_*` variables (others are ignored).
    pub fn load(
        args: &RunArgs,
        env: &[(String, String)],
        file: Option<(&Path, &str)>,
    ) -> Result<Config, ConfigError> {
        let mut layers: BTreeMap<&'static str, Setting> = BTreeMap::new();
        let mut class_tables = toml::Table::new();
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
            match KEYS.iter().find(|k| **k == key && **k != "classes") {
                Some(&known) => {
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

        let flags: [(&'static str, Option<&String>); 15] = [
            ("rtp_ports", args.rtp_ports.as_ref()),
            ("rtp_ip", args.rtp_ip.as_ref()),
            ("advertised_address", args.advertised_address.as_ref()),
            ("music", args.music.as_ref()),
            ("normalize", args.normalize.as_ref()),
            ("gain_db", args.gain_db.as_ref()),
            ("codecs", args.codecs.as_ref()),
            ("ptime", args.ptime.as_ref()),
            ("max_calls", args.max_calls.as_ref()),
            ("max_call_duration", args.max_call_duration.as_ref()),
            ("send_ringing", args.send_ringing.as_ref()),
            ("log_level", args.log_level.as_ref()),
            ("log_format", args.log_format.as_ref()),
            ("seed", args.seed.as_ref()),
            ("shutdown_grace", args.shutdown_grace.as_ref()),
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
        for key in KEYS {
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
            }],
        };
        if let Some(s) = get("rtp_ports") {
            server.rtp_ports = parse_port_range(s)?;
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
            let allowed = "must be 10–60 ms in steps of 10";
            let v = int(s, "ptime", allowed)?;
            if !(10..=60).contains(&v) || v % 10 != 0 {
                return Err(err("ptime", s, allowed));
            }
            server.ptime_ms = v as u32;
        }
        if let Some(s) = get("max_calls") {
            let allowed = "must be a whole number from 1 to 1000000";
            let v = int(s, "max_calls", allowed)?;
            if !(1..=1_000_000).contains(&v) {
                return Err(err("max_calls", s, allowed));
            }
            server.max_calls = v as usize;
        }
        if let Some(s) = get("max_call_duration") {
            let allowed = "must be a duration of at least 1s (e.g. 90s, 1h, 1h30m) or \"off\"";
            server.max_call_duration = match &s.raw {
                Raw::Toml(toml::Value::String(t)) | Raw::Text(t)
                    if matches!(t.as_str(), "off" | "none" | "0") =>
                {
                    None
                }
                _ => {
                    let d = duration(s, "max_call_duration", allowed)?;
                    if d < Duration::from_secs(1) {
                        return Err(err("max_call_duration", s, allowed));
                    }
                    Some(d)
                }
            };
        }
        if let Some(s) = get("send_ringing") {
            server.send_ringing = boolean(s, "send_ringing")?;
        }

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
                let allowed = "must be a whole number from 0 to 18446744073709551615 or \"clock\"";
                match &s.raw {
                    Raw::Toml(toml::Value::Integer(i)) => {
                        Some(u64::try_from(*i).map_err(|_| err("seed", s, allowed))?)
                    }
                    Raw::Toml(toml::Value::String(t)) | Raw::Text(t) => match t.trim() {
                        "clock" => None,
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
            let allowed = "must be a path to a file or a directory";
            let t = text(s, "music", allowed)?;
            let path = (!t.is_empty()).then(|| resolve(&t, &s.origin, base_dir.as_deref()));
            match classes.iter_mut().find(|c| c.name == "default") {
                Some(c) => c.music = path,
                None if path.is_some() => classes.push(ClassConfig {
                    music: path,
                    ..ClassConfig::new("default")
                }),
                None => {}
            }
            classes.sort_by(|a, b| a.name.cmp(&b.name));
        }

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
            ("send_ringing", s.send_ringing.to_string()),
            ("log_level", quote(&self.log_level)),
            (
                "log_format",
                quote(match self.log_format {
                    LogFormat::Human => "human",
                    LogFormat::Json => "json",
                }),
            ),
            ("seed", self.seed.map_or(quote("clock"), |n| n.to_string())),
            (
                "shutdown_grace",
                quote(&format_duration(self.shutdown_grace)),
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
        for (key, value) in lines.drain(..) {
            let pad = width - key.len() - value.len();
            out.push_str(&format!(
                "{key} = {value}{:pad$}  # {}\n",
                "",
                self.origin(key)
            ));
        }
        for c in &self.music.classes {
            out.push_str(&format!("\n[classes.{}]\n", quote_key(&c.name)));
            if c.name != "default" {
                let m = c
                    .music
                    .as_ref()
                    .map_or(String::new(), |p| p.display().to_string());
                out.push_str(&format!("music = {}\n", quote(&m)));
            }
            out.push_str(&format!(
                "mode = {}\norder = {}\nannouncement = {}\nannouncement_every = {}\n",
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
            ));
        }
        out
    }
}

impl ClassConfig {
    fn new(name: &str) -> ClassConfig {
        ClassConfig {
            name: name.to_string(),
            music: None,
            mode: PlayMode::PerCall,
            order: MusicOrder::Sorted,
            announcement: None,
            announcement_every: Duration::from_secs(60),
        }
    }
}

fn err(key: &str, s: &Setting, allowed: &str) -> ConfigError {
    ConfigError {
        key: key.to_string(),
        value: render(&s.raw),
        allowed: allowed.to_string(),
        origin: Some(s.origin.clone()),
    }
}

/// A value as the user wrote it: TOML syntax for file values, verbatim for text.
fn render(raw: &Raw) -> String {
    fn toml_value(v: &toml::Value) -> String {
        match v {
            toml::Value::String(s) => quote(s),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Datetime(d) => d.to_string(),
            toml::Value::Array(a) => format!(
                "[{}]",
                a.iter().map(toml_value).collect::<Vec<_>>().join(", ")
            ),
            toml::Value::Table(_) => "{…}".to_string(),
        }
    }
    match raw {
        Raw::Toml(v) => toml_value(v),
        Raw::Text(t) => t.clone(),
    }
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn quote_key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_string()
    } else {
        quote(k)
    }
}

fn text(s: &Setting, key: &str, allowed: &str) -> Result<String, ConfigError> {
    match &s.raw {
        Raw::Toml(toml::Value::String(t)) | Raw::Text(t) => Ok(t.trim().to_string()),
        _ => Err(err(key, s, allowed)),
    }
}

fn int(s: &Setting, key: &str, allowed: &str) -> Result<i64, ConfigError> {
    match &s.raw {
        Raw::Toml(toml::Value::Integer(i)) => Ok(*i),
        Raw::Toml(toml::Value::String(t)) | Raw::Text(t) => {
            t.trim().parse().map_err(|_| err(key, s, allowed))
        }
        _ => Err(err(key, s, allowed)),
    }
}

fn float(s: &Setting, key: &str, allowed: &str) -> Result<f64, ConfigError> {
    let v = match &s.raw {
        Raw::Toml(toml::Value::Integer(i)) => *i as f64,
        Raw::Toml(toml::Value::Float(f)) => *f,
        Raw::Toml(toml::Value::String(t)) | Raw::Text(t) => {
            t.trim().parse().map_err(|_| err(key, s, allowed))?
        }
        _ => return Err(err(key, s, allowed)),
    };
    if v.is_finite() {
        Ok(v)
    } else {
        Err(err(key, s, allowed))
    }
}

fn boolean(s: &Setting, key: &str) -> Result<bool, ConfigError> {
    let allowed = "must be true or false";
    match &s.raw {
        Raw::Toml(toml::Value::Boolean(b)) => Ok(*b),
        Raw::Toml(toml::Value::String(t)) | Raw::Text(t) => {
            match t.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => Ok(true),
                "false" | "no" | "off" | "0" => Ok(false),
                _ => Err(err(key, s, allowed)),
            }
        }
        _ => Err(err(key, s, allowed)),
    }
}

/// `"90s"`, `"1h30m"`, `"500ms"`, `"2m"`, or a whole number of seconds (TOML integer or text).
fn duration(s: &Setting, key: &str, allowed: &str) -> Result<Duration, ConfigError> {
    match &s.raw {
        Raw::Toml(toml::Value::Integer(i)) if *i >= 0 => Ok(Duration::from_secs(*i as u64)),
        Raw::Toml(toml::Value::String(t)) | Raw::Text(t) => {
            parse_duration(t.trim()).ok_or_else(|| err(key, s, allowed))
        }
        _ => Err(err(key, s, allowed)),
    }
}

/// Parse `1h30m`, `90s`, `250ms`, `2d`; a bare number is seconds.
pub fn parse_duration(t: &str) -> Option<Duration> {
    if t.is_empty() {
        return None;
    }
    if let Ok(secs) = t.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut total_ms: u64 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let ms_per = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1000,
            "m" | "min" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total_ms = total_ms.checked_add(n.checked_mul(ms_per)?)?;
    }
    Some(Duration::from_millis(total_ms))
}

/// The shortest exact spelling: `1h`, `90s`, `1h30m`, `500ms`.
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, per) in [("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)] {
        // Whole seconds are written as seconds below a minute's remainder: "90s", not "1m30s".
        if unit == "m" && ms % 60_000 != 0 && ms < 3_600_000 && out.is_empty() {
            continue;
        }
        if ms >= per {
            out.push_str(&format!("{}{unit}", ms / per));
            ms %= per;
        }
    }
    out
}

fn parse_listen(s: &Setting) -> Result<Vec<ListenAddr>, ConfigError> {
    let allowed =
        "must be a list of [udp:|tcp:]IP:PORT, e.g. [\"0.0.0.0:5060\", \"tcp:[::]:5060\"]";
    let items = list(s, "listen", allowed)?;
    if items.is_empty() {
        return Err(err("listen", s, allowed));
    }
    let mut out: Vec<ListenAddr> = Vec::new();
    for item in items {
        let (transport, addr) = if let Some(a) = item.strip_prefix("udp:") {
            (Transport::Udp, a)
        } else if let Some(a) = item.strip_prefix("tcp:") {
            (Transport::Tcp, a)
        } else {
            (Transport::Udp, item.as_str())
        };
        let addr: SocketAddr = addr.parse().map_err(|_| ConfigError {
            value: quote(&item),
            ..err("listen", s, allowed)
        })?;
        let l = ListenAddr { transport, addr };
        if out.contains(&l) {
            return Err(ConfigError {
                value: quote(&item),
                ..err("listen", s, "each address may be listed once")
            });
        }
        out.push(l);
    }
    Ok(out)
}

fn list(s: &Setting, key: &str, allowed: &str) -> Result<Vec<String>, ConfigError> {
    match &s.raw {
        Raw::Toml(toml::Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                toml::Value::String(t) => Ok(t.trim().to_string()),
                _ => Err(err(key, s, allowed)),
            })
            .collect(),
        Raw::Toml(toml::Value::String(t)) | Raw::Text(t) => Ok(t
            .split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect()),
        _ => Err(err(key, s, allowed)),
    }
}

fn parse_port_range(s: &Setting) -> Result<(u16, u16), ConfigError> {
    let allowed = "must be \"LOW-HIGH\" with 1024 ≤ LOW < HIGH ≤ 65535";
    let t = text(s, "rtp_ports", allowed)?;
    let (lo, hi) = t
        .split_once('-')
        .ok_or_else(|| err("rtp_ports", s, allowed))?;
    let lo: u16 = lo
        .trim()
        .parse()
        .map_err(|_| err("rtp_ports", s, allowed))?;
    let hi: u16 = hi
        .trim()
        .parse()
        .map_err(|_| err("rtp_ports", s, allowed))?;
    if lo < 1024 || hi <= lo {
        return Err(err("rtp_ports", s, allowed));
    }
    // One call needs an even RTP port and the odd RTCP port above it, both inside the range.
    let first_even = lo + lo % 2;
    if first_even >= hi {
        return Err(err(
            "rtp_ports",
            s,
            "must hold an even port and the odd one above it",
        ));
    }
    Ok((lo, hi))
}

fn parse_codecs(s: &Setting) -> Result<Vec<Codec>, ConfigError> {
    let allowed = "must be a list of PCMU, PCMA, G722 (each at most once; empty: all)";
    let names = list(s, "codecs", allowed)?;
    let mut out: Vec<Codec> = Vec::new();
    for name in names {
        match Codec::from_name(&name) {
            Some(c) if !out.contains(&c) => out.push(c),
            _ => {
                return Err(ConfigError {
                    value: quote(&name),
                    ..err("codecs", s, allowed)
                })
            }
        }
    }
    Ok(out)
}

/// Relative paths from the file are relative to the file's directory; from flags and the
/// environment, to the working directory.
fn resolve(path: &str, origin: &Origin, base: Option<&Path>) -> PathBuf {
    let p = PathBuf::from(path);
    match (origin, base) {
        (Origin::File(_), Some(dir)) if p.is_relative() && !dir.as_os_str().is_empty() => {
            dir.join(p)
        }
        _ => p,
    }
}

fn parse_classes(
    tables: toml::Table,
    origin: Option<Origin>,
    base: Option<&Path>,
) -> Result<Vec<ClassConfig>, ConfigError> {
    let origin = origin.unwrap_or(Origin::Default);
    let mut out = Vec::new();
    for (name, value) in tables {
        let key = format!("classes.{}", quote_key(&name));
        let setting = |raw: toml::Value| Setting {
            raw: Raw::Toml(raw),
            origin: origin.clone(),
        };
        if name.is_empty()
            || name
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '@' | ':' | ';'))
        {
            return Err(err(
                &key,
                &setting(value),
                "a class name is a Request-URI user part: no spaces, '@', ':' or ';'",
            ));
        }
        let toml::Value::Table(table) = value else {
            return Err(err(
                &key,
                &setting(value),
                "must be a table of music, mode, order, announcement, announcement_every",
            ));
        };
        let mut class = ClassConfig::new(&name);
        for (k, v) in table {
            let full = format!("{key}.{k}");
            let s = setting(v);
            match k.as_str() {
                "music" | "announcement" => {
                    let t = text(&s, &full, "must be a path")?;
                    let path = (!t.is_empty()).then(|| resolve(&t, &origin, base));
                    if k == "music" {
                        class.music = path;
                    } else {
                        class.announcement = path;
                    }
                }
                "mode" => {
                    let allowed = "must be \"per-call\" or \"shared\"";
                    class.mode = match text(&s, &full, allowed)?.as_str() {
                        "per-call" => PlayMode::PerCall,
                        "shared" => PlayMode::Shared,
                        _ => return Err(err(&full, &s, allowed)),
                    };
                }
                "order" => {
                    let allowed = "must be \"sorted\" or \"shuffle\"";
                    class.order = match text(&s, &full, allowed)?.as_str() {
                        "sorted" => MusicOrder::Sorted,
                        "shuffle" => MusicOrder::Shuffle,
                        _ => return Err(err(&full, &s, allowed)),
                    };
                }
                "announcement_every" => {
                    let allowed = "must be a duration from 1s to 24h (e.g. 60s, 5m)";
                    let d = duration(&s, &full, allowed)?;
                    if d < Duration::from_secs(1) || d > Duration::from_secs(86_400) {
                        return Err(err(&full, &s, allowed));
                    }
                    class.announcement_every = d;
                }
                _ => {
                    return Err(err(
                        &full,
                        &s,
                        &format!("unknown key; known keys: {}", CLASS_KEYS.join(", ")),
                    ))
                }
            }
        }
        if class.music.is_none() && name != "default" {
            return Err(ConfigError {
                key: format!("{key}.music"),
                value: String::new(),
                allowed: "missing: every class but default needs a file or directory".into(),
                origin: Some(origin.clone()),
            });
        }
        out.push(class);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn file(text: &str) -> Result<Config, ConfigError> {
        Config::load(
            &RunArgs::default(),
            &[],
            Some((Path::new("/etc/onhold/onhold.toml"), text)),
        )
    }

    fn flags(argv: &[&str]) -> RunArgs {
        use clap::{Args, FromArgMatches};
        let cmd = RunArgs::augment_args(clap::Command::new("onhold"));
        let m = cmd
            .try_get_matches_from(std::iter::once("onhold").chain(argv.iter().copied()))
            .unwrap();
        RunArgs::from_arg_matches(&m).unwrap()
    }

    fn error_line(r: Result<Config, ConfigError>) -> String {
        let e = r.unwrap_err().to_string();
        assert!(!e.contains('\n'), "error must be one line: {e}");
        e
    }

    #[test]
    fn defaults() {
        let c = Config::load(&RunArgs::default(), &[], None).unwrap();
        assert_eq!(c.listen.len(), 1);
        assert_eq!(c.listen[0].to_string(), "udp:0.0.0.0:5060");
        assert_eq!(c.server.rtp_ports, (10000, 20000));
        assert_eq!(c.server.rtp_ip, IpAddr::from([0, 0, 0, 0]));
        assert_eq!(c.server.advertised, None);
        assert!(c.server.codecs.is_empty(), "offer order decides");
        assert_eq!(c.server.ptime_ms, 20);
        assert_eq!(c.server.max_calls, 1000);
        assert_eq!(c.server.max_call_duration, None);
        assert!(!c.server.send_ringing);
        assert!(c.music.classes.is_empty());
        assert!(c.music.normalize);
        assert_eq!(c.music.gain_db, 0.0);
        assert_eq!(c.log_level, "info");
        assert_eq!(c.log_format, LogFormat::Human);
        assert_eq!(c.seed, None);
        assert_eq!(c.shutdown_grace, Duration::from_secs(5));
        assert_eq!(c.origin("ptime"), &Origin::Default);
    }

    #[test]
    fn precedence_flags_over_env_over_file_over_defaults() {
        let text = "ptime = 30\nmax_calls = 7\nlog_level = \"debug\"\nsend_ringing = true\n";
        let path = Path::new("onhold.toml");
        let e = env(&[("ONHOLD_PTIME", "40"), ("ONHOLD_MAX_CALLS", "8")]);
        let args = flags(&["--ptime", "50"]);
        let c = Config::load(&args, &e, Some((path, text))).unwrap();
        assert_eq!(c.server.ptime_ms, 50, "flag wins");
        assert_eq!(c.origin("ptime"), &Origin::Flag("--ptime".into()));
        assert_eq!(c.server.max_calls, 8, "env beats the file");
        assert_eq!(
            c.origin("max_calls"),
            &Origin::Env("ONHOLD_MAX_CALLS".into())
        );
        assert_eq!(c.log_level, "debug", "file beats the default");
        assert_eq!(c.origin("log_level"), &Origin::File("onhold.toml".into()));
        assert!(c.server.send_ringing);
        assert_eq!(c.shutdown_grace, Duration::from_secs(5), "default");
        assert_eq!(c.origin("shutdown_grace"), &Origin::Default);
    }

    #[test]
    fn config_path_flag_then_env() {
        let e = env(&[("ONHOLD_CONFIG", "/env.toml")]);
        assert_eq!(
            config_path(&RunArgs::default(), &e),
            Some("/env.toml".into())
        );
        let args = flags(&["--config", "/flag.toml"]);
        assert_eq!(config_path(&args, &e), Some("/flag.toml".into()));
        assert_eq!(config_path(&RunArgs::default(), &[]), None);
    }

    #[test]
    fn unknown_env_is_a_warning_and_other_variables_are_ignored() {
        let e = env(&[
            ("ONHOLD_PTIM", "20"),
            ("HOME", "/root"),
            ("ONHOLD_CONFIG", "x"),
        ]);
        let c = Config::load(&RunArgs::default(), &e, None).unwrap();
        assert_eq!(
            c.warnings,
            vec!["ignoring unknown environment variable ONHOLD_PTIM"]
        );
    }

    #[test]
    fn listen_forms() {
        let c =
            file(r#"listen = ["127.0.0.1:5070", "udp:[::1]:5060", "tcp:0.0.0.0:5060"]"#).unwrap();
        let got: Vec<String> = c.listen.iter().map(|l| l.to_string()).collect();
        assert_eq!(
            got,
            ["udp:127.0.0.1:5070", "udp:[::1]:5060", "tcp:0.0.0.0:5060"]
        );
        let args = flags(&["--listen", "127.0.0.1:0", "--listen", "tcp:127.0.0.1:0"]);
        let c = Config::load(&args, &[], None).unwrap();
        assert_eq!(c.listen[1].transport, Transport::Tcp);
        let c = Config::load(
            &RunArgs::default(),
            &env(&[("ONHOLD_LISTEN", "1.2.3.4:1, 1.2.3.4:2")]),
            None,
        )
        .unwrap();
        assert_eq!(c.listen.len(), 2);
        assert_eq!(
            error_line(file(r#"listen = ["sctp:1.2.3.4:5060"]"#)),
            "config: listen = \"sctp:1.2.3.4:5060\": must be a list of [udp:|tcp:]IP:PORT, e.g. \
             [\"0.0.0.0:5060\", \"tcp:[::]:5060\"] (in /etc/onhold/onhold.toml)"
        );
        assert!(error_line(file("listen = []")).starts_with("config: listen = []: must be"));
        assert!(error_line(file("listen = 5060")).starts_with("config: listen = 5060: must be"));
        assert!(
            error_line(file(r#"listen = ["1.2.3.4:1", "udp:1.2.3.4:1"]"#))
                .contains("each address may be listed once")
        );
    }

    #[test]
    fn rtp_ports() {
        assert_eq!(
            file(r#"rtp_ports = "20000-20001""#)
                .unwrap()
                .server
                .rtp_ports,
            (20000, 20001)
        );
        for bad in [
            "\"20000\"",
            "\"20000-19999\"",
            "\"80-1000\"",
            "\"x-y\"",
            "\"20001-20002\"",
            "5",
        ] {
            let e = error_line(file(&format!("rtp_ports = {bad}")));
            assert!(
                e.starts_with(&format!("config: rtp_ports = {bad}: must ")),
                "{e}"
            );
        }
        assert_eq!(
            error_line(Config::load(&flags(&["--rtp-ports", "9-8"]), &[], None)),
            "config: rtp_ports = 9-8: must be \"LOW-HIGH\" with 1024 ≤ LOW < HIGH ≤ 65535 \
             (from --rtp-ports)"
        );
    }

    #[test]
    fn addresses() {
        let c = file("rtp_ip = \"192.0.2.1\"\nadvertised_address = \"203.0.113.5\"").unwrap();
        assert_eq!(c.server.rtp_ip, IpAddr::from([192, 0, 2, 1]));
        assert_eq!(c.server.advertised, Some(IpAddr::from([203, 0, 113, 5])));
        assert_eq!(
            file("advertised_address = \"auto\"")
                .unwrap()
                .server
                .advertised,
            None
        );
        assert_eq!(
            error_line(file("rtp_ip = \"localhost\"")),
            "config: rtp_ip = \"localhost\": must be an IP address, e.g. 0.0.0.0 or :: \
             (in /etc/onhold/onhold.toml)"
        );
        assert!(error_line(file("advertised_address = \"pbx.example\""))
            .starts_with("config: advertised_address = \"pbx.example\": must be an IP address"));
    }

    #[test]
    fn codecs() {
        let c = file(r#"codecs = ["g722", "PCMA"]"#).unwrap();
        assert_eq!(c.server.codecs, vec![Codec::G722, Codec::Pcma]);
        let c = Config::load(
            &RunArgs::default(),
            &env(&[("ONHOLD_CODECS", "PCMU")]),
            None,
        )
        .unwrap();
        assert_eq!(c.server.codecs, vec![Codec::Pcmu]);
        assert_eq!(
            error_line(file(r#"codecs = ["PCMU", "G729"]"#)),
            "config: codecs = \"G729\": must be a list of PCMU, PCMA, G722 (each at most once; \
             empty: all) \
             (in /etc/onhold/onhold.toml)"
        );
        assert!(error_line(file(r#"codecs = ["PCMU", "pcmu"]"#)).contains("at most once"));
        assert!(file("codecs = []").unwrap().server.codecs.is_empty());
        assert!(error_line(file("codecs = [20]")).starts_with("config: codecs = [20]: must be"));
    }

    #[test]
    fn ptime() {
        for ok in [10, 20, 30, 60] {
            assert_eq!(file(&format!("ptime = {ok}")).unwrap().server.ptime_ms, ok);
        }
        assert_eq!(
            error_line(Config::load(&flags(&["--ptime", "7"]), &[], None)),
            "config: ptime = 7: must be 10–60 ms in steps of 10 (from --ptime)"
        );
        assert_eq!(
            error_line(file("ptime = 70")),
            "config: ptime = 70: must be 10–60 ms in steps of 10 (in /etc/onhold/onhold.toml)"
        );
        assert!(error_line(file("ptime = 25")).contains("steps of 10"));
        assert!(error_line(file("ptime = 2.5")).starts_with("config: ptime = 2.5: must"));
    }

    #[test]
    fn max_calls_and_durations() {
        assert_eq!(file("max_calls = 1").unwrap().server.max_calls, 1);
        assert_eq!(
            error_line(Config::load(&RunArgs::default(), &env(&[("ONHOLD_MAX_CALLS", "0")]), None)),
            "config: max_calls = 0: must be a whole number from 1 to 1000000 (from ONHOLD_MAX_CALLS)"
        );
        let c = file("max_call_duration = \"1h30m\"\nshutdown_grace = \"500ms\"").unwrap();
        assert_eq!(c.server.max_call_duration, Some(Duration::from_secs(5400)));
        assert_eq!(c.shutdown_grace, Duration::from_millis(500));
        assert_eq!(
            file("max_call_duration = 90")
                .unwrap()
                .server
                .max_call_duration,
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            file("max_call_duration = \"off\"")
                .unwrap()
                .server
                .max_call_duration,
            None
        );
        assert!(error_line(file("max_call_duration = \"500ms\"")).contains("at least 1s"));
        assert_eq!(
            error_line(file("max_call_duration = \"1 hour\"")),
            "config: max_call_duration = \"1 hour\": must be a duration of at least 1s \
             (e.g. 90s, 1h, 1h30m) or \"off\" (in /etc/onhold/onhold.toml)"
        );
        assert!(error_line(file("shutdown_grace = \"2h\"")).contains("from 0s to 1h"));
        assert_eq!(
            file("shutdown_grace = \"0s\"").unwrap().shutdown_grace,
            Duration::ZERO
        );
    }

    #[test]
    fn durations_parse_and_print() {
        for (text, ms) in [
            ("90s", 90_000),
            ("1h", 3_600_000),
            ("1h30m", 5_400_000),
            ("250ms", 250),
            ("2m", 120_000),
            ("15", 15_000),
            ("1d", 86_400_000),
        ] {
            let d = parse_duration(text).unwrap();
            assert_eq!(d, Duration::from_millis(ms), "{text}");
            assert_eq!(
                parse_duration(&format_duration(d)),
                Some(d),
                "{text} round trip"
            );
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        for bad in ["", "s", "5x", "1.5h", "-3s", "h1"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn booleans_levels_formats_seed() {
        let a = flags(&["--send-ringing", "--normalize", "false"]);
        let c = Config::load(&a, &[], None).unwrap();
        assert!(c.server.send_ringing, "a bare --send-ringing means true");
        assert!(!c.music.normalize);
        assert_eq!(
            error_line(Config::load(
                &RunArgs::default(),
                &env(&[("ONHOLD_SEND_RINGING", "maybe")]),
                None
            )),
            "config: send_ringing = maybe: must be true or false (from ONHOLD_SEND_RINGING)"
        );
        assert!(error_line(file("normalize = 1"))
            .starts_with("config: normalize = 1: must be true or false"));
        assert_eq!(file("log_level = \"WARN\"").unwrap().log_level, "warn");
        assert_eq!(
            error_line(file("log_level = \"verbose\"")),
            "config: log_level = \"verbose\": must be trace, debug, info, warn or error \
             (in /etc/onhold/onhold.toml)"
        );
        assert_eq!(
            file("log_format = \"json\"").unwrap().log_format,
            LogFormat::Json
        );
        assert!(error_line(file("log_format = \"xml\"")).contains("must be human or json"));
        assert_eq!(file("seed = 42").unwrap().seed, Some(42));
        assert_eq!(file("seed = \"clock\"").unwrap().seed, None);
        let c = Config::load(&flags(&["--seed", "18446744073709551615"]), &[], None).unwrap();
        assert_eq!(c.seed, Some(u64::MAX));
        assert!(
            error_line(file("seed = -1")).starts_with("config: seed = -1: must be a whole number")
        );
    }

    #[test]
    fn gain() {
        assert_eq!(file("gain_db = -6").unwrap().music.gain_db, -6.0);
        assert_eq!(
            Config::load(&flags(&["--gain-db", "-3.5"]), &[], None)
                .unwrap()
                .music
                .gain_db,
            -3.5
        );
        assert_eq!(
            error_line(file("gain_db = 30.0")),
            "config: gain_db = 30: must be a number of dB from -40 to 20 (in /etc/onhold/onhold.toml)"
        );
        assert!(error_line(file("gain_db = \"loud\"")).contains("from -40 to 20"));
    }

    #[test]
    fn music_and_classes() {
        let c = file(
            r#"
music = "music/default"
[classes.sales]
music = "/srv/sales.wav"
mode = "shared"
order = "shuffle"
announcement = "ann/wait.wav"
announcement_every = "45s"
[classes.default]
mode = "shared"
"#,
        )
        .unwrap();
        let names: Vec<&str> = c.music.classes.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["default", "sales"]);
        let d = &c.music.classes[0];
        assert_eq!(
            d.music,
            Some(PathBuf::from("/etc/onhold/music/default")),
            "relative to the file"
        );
        assert_eq!(d.mode, PlayMode::Shared);
        let s = &c.music.classes[1];
        assert_eq!(s.music, Some(PathBuf::from("/srv/sales.wav")));
        assert_eq!(s.order, MusicOrder::Shuffle);
        assert_eq!(
            s.announcement,
            Some(PathBuf::from("/etc/onhold/ann/wait.wav"))
        );
        assert_eq!(s.announcement_every, Duration::from_secs(45));

        // A flag names a path relative to the working directory and overrides the file's.
        let c = Config::load(
            &flags(&["--music", "here.mp3"]),
            &[],
            Some((
                Path::new("/etc/onhold/onhold.toml"),
                "music = \"there.mp3\"",
            )),
        )
        .unwrap();
        assert_eq!(c.music.classes[0].music, Some(PathBuf::from("here.mp3")));

        assert_eq!(
            error_line(file("[classes.sales]\nmode = \"radio\"\nmusic = \"x\"")),
            "config: classes.sales.mode = \"radio\": must be \"per-call\" or \"shared\" \
             (in /etc/onhold/onhold.toml)"
        );
        assert!(
            error_line(file("[classes.sales]\norder = \"random\"\nmusic = \"x\"")).starts_with(
                "config: classes.sales.order = \"random\": must be \"sorted\" or \"shuffle\""
            )
        );
        assert_eq!(
            error_line(file("[classes.sales]\nmode = \"shared\"")),
            "config: classes.sales.music: missing: every class but default needs a file or \
             directory (in /etc/onhold/onhold.toml)"
        );
        assert!(error_line(file("[classes.a]\nmusic = \"x\"\nvolume = 3"))
            .starts_with("config: classes.a.volume = 3: unknown key; known keys: music, mode"));
        assert!(error_line(file(
            "[classes.a]\nmusic = \"x\"\nannouncement_every = \"0s\""
        ))
        .contains("from 1s to 24h"));
        assert!(
            error_line(file("[classes.\"a b\"]\nmusic = \"x\"")).contains("Request-URI user part")
        );
        assert!(error_line(file("classes = 3")).starts_with("config: classes = 3: must be tables"));
    }

    #[test]
    fn unknown_key_and_syntax_errors_are_one_line() {
        assert_eq!(
            error_line(file("ptim = 20")),
            format!(
                "config: ptim = 20: unknown key; known keys: {} (in /etc/onhold/onhold.toml)",
                KEYS.join(", ")
            )
        );
        let e = error_line(file("ptime = 20\nmax_calls = = 3\n"));
        assert!(
            e.starts_with("config: /etc/onhold/onhold.toml:2: not valid TOML: "),
            "{e}"
        );
    }

    #[test]
    fn check_config_output_names_every_key_and_parses_back() {
        let text = r#"
listen = ["127.0.0.1:5070", "tcp:127.0.0.1:5070"]
rtp_ports = "30000-30999"
music = "/srv/moh"
codecs = ["PCMA"]
max_call_duration = "1h"
seed = 7
[classes."sales-1"]
music = "/srv/sales"
announcement = "/srv/a.wav"
"#;
        let c = Config::load(
            &flags(&["--ptime", "30"]),
            &env(&[("ONHOLD_LOG_FORMAT", "json")]),
            Some((Path::new("/etc/onhold.toml"), text)),
        )
        .unwrap();
        let out = c.to_toml();
        for key in KEYS.iter().filter(|k| **k != "classes") {
            assert!(
                out.lines().any(|l| l.starts_with(&format!("{key} = "))),
                "{key} missing:\n{out}"
            );
        }
        assert!(out.contains("# --ptime"), "{out}");
        assert!(out.contains("# ONHOLD_LOG_FORMAT"), "{out}");
        assert!(out.contains("# /etc/onhold.toml"), "{out}");
        assert!(out.contains("[classes.sales-1]"), "{out}");
        let back = file(&out).unwrap();
        assert_eq!(
            back.to_toml()
                .lines()
                .skip(1)
                .map(|l| l.split('#').next().unwrap().trim_end())
                .collect::<Vec<_>>(),
            out.lines()
                .skip(1)
                .map(|l| l.split('#').next().unwrap().trim_end())
                .collect::<Vec<_>>()
        );
        assert_eq!(back.server.ptime_ms, 30);
        assert_eq!(back.music, c.music);
        assert_eq!(back.listen, c.listen);
        assert_eq!(back.seed, Some(7));
    }

    #[test]
    fn example_file_shows_the_defaults_and_its_class_examples_parse() {
        let example = include_str!("../../onhold.example.toml");
        let strip = |t: &str| -> Vec<String> {
            t.lines()
                .skip(1)
                .map(|l| l.split("  #").next().unwrap().trim_end().to_string())
                .collect()
        };
        let from_file = file(example).unwrap();
        let defaults = Config::load(&RunArgs::default(), &[], None).unwrap();
        assert_eq!(strip(&from_file.to_toml()), strip(&defaults.to_toml()));
        for key in KEYS.iter().filter(|k| **k != "classes") {
            assert_ne!(
                from_file.origin(key),
                &Origin::Default,
                "{key} missing from the example"
            );
        }
        // The commented class tables are valid once uncommented.
        let start = example.find("# [classes.default]").unwrap();
        let tables: String = example[start..]
            .lines()
            .map(|l| l.trim_start_matches('#').trim_start())
            .collect::<Vec<_>>()
            .join("\n");
        let c = file(&tables).unwrap();
        let names: Vec<&str> = c.music.classes.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["default", "sales"]);
    }

    #[test]
    fn help_explains_every_flag_with_its_default() {
        use clap::Args;
        let mut cmd = RunArgs::augment_args(clap::Command::new("onhold"));
        let help = cmd.render_long_help().to_string();
        let defaults = Config::load(&RunArgs::default(), &[], None)
            .unwrap()
            .to_toml();
        for key in KEYS.iter().filter(|k| **k != "classes") {
            let flag = format!("--{}", key.replace('_', "-"));
            assert!(help.contains(&flag), "{flag} missing from --help");
            assert!(
                help.contains(&format!("ONHOLD_{}", key.to_ascii_uppercase())),
                "{key} env"
            );
            // The default written in the help is the effective default.
            let line = defaults
                .lines()
                .find(|l| l.starts_with(&format!("{key} = ")))
                .unwrap();
            let value = line[key.len() + 3..]
                .split("  #")
                .next()
                .unwrap()
                .trim()
                .trim_matches('"');
            let shown = match *key {
                "listen" => "udp:0.0.0.0:5060".to_string(),
                "codecs" => "\"\"".to_string(),
                "gain_db" => "0".to_string(),
                "music" => "\"\"".to_string(),
                _ => value.to_string(),
            };
            assert!(
                help.contains(&format!("[default: {shown}]")),
                "{key}: [default: {shown}] not in help"
            );
        }
    }
}
