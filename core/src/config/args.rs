//! The command-line flags of `onhold run` / `onhold-mio run`.

use std::path::PathBuf;

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
    /// SIP listen address, repeatable: [udp:|tcp:]IP:PORT[@IP] (port 0 picks a free one; @IP
    /// advertises that IP for calls arriving here, over --advertised-address).
    /// [default: udp:0.0.0.0:5060] [env: ONHOLD_LISTEN, comma-separated]
    #[arg(long, value_name = "ADDR")]
    pub listen: Vec<String>,
    /// Inclusive UDP port range for RTP (even ports) and RTCP (the odd port above).
    /// [default: 10000-20000] [env: ONHOLD_RTP_PORTS]
    #[arg(long, value_name = "LOW-HIGH")]
    pub rtp_ports: Option<String>,
    /// One even UDP port for every call's RTP (RTCP on the odd one above) instead of a port per
    /// call: all media leaves one socket in batches. Media arriving there is matched to its
    /// call by source address, so callers behind NAT need a port per call. [default: off]
    /// [env: ONHOLD_RTP_SHARED_PORT]
    #[arg(long, value_name = "PORT")]
    pub rtp_shared_port: Option<String>,
    /// Threads that send the shared RTP port's packets: "auto" (one per core) or a number; 0
    /// sends them from the loop thread. [default: auto] [env: ONHOLD_MEDIA_THREADS]
    #[arg(long, value_name = "N")]
    pub media_threads: Option<String>,
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
    /// Hang up (BYE) calls older than this, e.g. 1h, 90s, 1h30m; "off" = never (a hold that
    /// long is a stuck call). [default: 4h] [env: ONHOLD_MAX_CALL_DURATION]
    #[arg(long, value_name = "DURATION")]
    pub max_call_duration: Option<String>,
    /// Hang up a call whose caller had been sending RTP and stopped for this long (never while
    /// it holds the call); "off" = never. [default: 1m] [env: ONHOLD_MEDIA_TIMEOUT]
    #[arg(long, value_name = "DURATION")]
    pub media_timeout: Option<String>,
    /// Send an OPTIONS inside each call this often; 408, 481 or no answer ends the call;
    /// "off" = never. [default: off] [env: ONHOLD_KEEPALIVE_INTERVAL]
    #[arg(long, value_name = "DURATION")]
    pub keepalive_interval: Option<String>,
    /// Send 180 Ringing before 200 OK. [default: false] [env: ONHOLD_SEND_RINGING]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub send_ringing: Option<String>,
    /// Answer REGISTER with 200 (nothing stored, nothing checked), so a softphone with an
    /// account on this server shows it registered; false = 405. [default: true]
    /// [env: ONHOLD_ACCEPT_REGISTER]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub accept_register: Option<String>,
    /// Symmetric RTP: send to where the caller's RTP comes from. "auto" (when it looks NATed:
    /// private SDP address and public SIP source, or a Via naming another address), "always"
    /// or "off"; only RTP from the caller's SIP address is followed. [default: auto]
    /// [env: ONHOLD_RTP_LATCHING]
    #[arg(long, value_name = "MODE")]
    pub rtp_latching: Option<String>,
    /// Where requests inside a call may come from: "peer" (the caller's address, or a proxy in
    /// its route) or "any". [default: peer] [env: ONHOLD_IN_DIALOG_FROM]
    #[arg(long, value_name = "WHO")]
    pub in_dialog_from: Option<String>,
    /// Where RTP goes: "sdp" (the caller's c= address, unicast only) or "sip-source" (the IP
    /// the INVITE came from). [default: sdp] [env: ONHOLD_MEDIA_TO]
    #[arg(long, value_name = "WHERE")]
    pub media_to: Option<String>,
    /// Networks SIP is taken from, comma-separated CIDRs ("0.0.0.0/0,::/0": everyone); the
    /// private networks are 127.0.0.0/8, 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16,
    /// 100.64.0.0/10, 169.254.0.0/16, ::1/128, fc00::/7, fe80::/10.
    /// [default: private networks] [env: ONHOLD_ALLOW]
    #[arg(long, value_name = "NETS")]
    pub allow: Option<String>,
    /// What SIP from elsewhere gets: "drop" (nothing) or "403". [default: drop]
    /// [env: ONHOLD_DENY_ACTION]
    #[arg(long, value_name = "ACTION")]
    pub deny_action: Option<String>,
    /// One of the [limits] (repeatable): calls_per_source, invite_rate, invite_burst,
    /// transactions, transactions_per_source, transaction_memory,
    /// transaction_memory_per_source, ack_wait. See SECURITY.md. [env: ONHOLD_LIMITS_<KEY>]
    #[arg(long, value_name = "KEY=VALUE")]
    pub limit: Vec<String>,
    /// trace, debug, info, warn or error (RUST_LOG, when set, overrides it). [default: info]
    /// [env: ONHOLD_LOG_LEVEL]
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Log format on stderr: human or json. [default: human] [env: ONHOLD_LOG_FORMAT]
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Seed of every random choice (tags, SSRCs, shuffles), for reproducible runs only;
    /// "random" = 256 bits from the OS, never printed. [default: random] [env: ONHOLD_SEED]
    #[arg(long, value_name = "N")]
    pub seed: Option<String>,
    /// On SIGINT/SIGTERM: refuse new calls, BYE every call and wait this long for the answers.
    /// [default: 5s] [env: ONHOLD_SHUTDOWN_GRACE]
    #[arg(long, value_name = "DURATION")]
    pub shutdown_grace: Option<String>,
    /// The control API (HTTP: health, metrics, calls, events): IP:PORT or "off". A non-loopback
    /// address needs --control-token. [default: 127.0.0.1:8080] [env: ONHOLD_CONTROL_LISTEN]
    #[arg(long, value_name = "ADDR")]
    pub control_listen: Option<String>,
    /// Bearer token every control API request must carry (16+ printable characters). Prefer
    /// ONHOLD_CONTROL_TOKEN: a flag shows in `ps`. [env: ONHOLD_CONTROL_TOKEN]
    #[arg(long, value_name = "TOKEN")]
    pub control_token: Option<String>,
    /// Record calls (what the caller sends) as WAV files here: the classes with `record = true`,
    /// and calls the control API asks for. "" = off. [default: ""] [env: ONHOLD_RECORD_DIR]
    #[arg(long, value_name = "DIR")]
    pub record_dir: Option<String>,
    /// How large one call's recording may grow; it stops there, the file stays valid.
    /// [default: 64MiB] [env: ONHOLD_RECORD_MAX_BYTES]
    #[arg(long, value_name = "SIZE")]
    pub record_max_bytes: Option<String>,
    /// How much all recordings may take (those already in record_dir count); new recordings
    /// are refused past it. [default: 1GiB] [env: ONHOLD_RECORD_TOTAL_BYTES]
    #[arg(long, value_name = "SIZE")]
    pub record_total_bytes: Option<String>,
}
