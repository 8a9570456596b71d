//! What a runtime exchanges with the [`Server`](super::Server): the types of its inputs and
//! outputs (datagrams, events, commands, controls), its settings and its counters.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{DenyAction, InDialogFrom, Latching, Limits, MediaTo, Network};
use crate::codec::Codec;
use crate::handle::CallHandle;
use crate::media::Library;
use crate::sdp::Direction;

/// A buffer passed to [`Server::poll_transmit`] must hold at least this many bytes.
pub const MAX_DATAGRAM: usize = 8192;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    /// `udp` or `tcp`, as listen addresses, logs and the control API write it.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

/// What kind of datagram a [`Transmit`] carries (for counters and socket choice).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransmitKind {
    Sip,
    Rtp,
    Rtcp,
}

/// Header of a datagram written into the caller's buffer by [`Server::poll_transmit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub transport: Transport,
    /// The local address to send from: a SIP listen address, or a call's RTP/RTCP socket.
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub len: usize,
    pub kind: TransmitKind,
}

/// Why a call ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// The caller sent BYE.
    RemoteBye,
    /// The caller cancelled before we answered.
    Cancelled,
    /// No ACK arrived for our 2xx within 64·T1 (we sent BYE).
    AckTimeout,
    /// No session refresh arrived before the session timer expired (we sent BYE).
    SessionExpired,
    /// The configured maximum call duration elapsed (we sent BYE).
    MaxDuration,
    /// `Control::Shutdown`, or no RTP port could be bound for the call.
    Control,
    /// Our BYE's transaction timed out or the peer rejected it; the call is gone anyway.
    ByeFailed,
    /// The answer in the caller's ACK (after an INVITE without offer) was unusable or named an
    /// address media may not go to (we sent BYE).
    MediaRefused,
    /// `Control::Hangup`: an operator hung up (the BYE carries `Reason: Q.850;cause=16;text="hung
    /// up by operator"`).
    Operator,
    /// The stream's destination answered ICMP unreachable for 2 s with nothing heard from the
    /// caller (we sent BYE): nobody was listening, or the address was not the caller's.
    Unreachable,
    /// The caller had been sending RTP or RTCP and sent nothing for `media_timeout` while we
    /// streamed to it (we sent BYE).
    MediaTimeout,
    /// Our in-dialog OPTIONS keep-alive got 408 or 481, or no answer (we sent BYE).
    KeepAliveFailed,
    /// A call we placed was refused with this final status code (408 when no final response
    /// came, or the transport failed).
    Rejected(u16),
}

impl EndReason {
    /// The name used in events and metric labels.
    pub fn name(&self) -> &'static str {
        match self {
            EndReason::RemoteBye => "remote_bye",
            EndReason::Cancelled => "cancelled",
            EndReason::AckTimeout => "ack_timeout",
            EndReason::SessionExpired => "session_expired",
            EndReason::MaxDuration => "max_duration",
            EndReason::Control => "shutdown",
            EndReason::Operator => "operator",
            EndReason::ByeFailed => "bye_failed",
            EndReason::MediaRefused => "media_refused",
            EndReason::Unreachable => "unreachable",
            EndReason::MediaTimeout => "media_timeout",
            EndReason::KeepAliveFailed => "keepalive_failed",
            EndReason::Rejected(_) => "rejected",
        }
    }
}

/// What happened, for logs, counters and the control API.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A new INVITE made a dialog (answered, or waiting for its RTP port). What the call is
    /// (Call-ID, From, To) is in [`Server::call_info`](super::Server::call_info) while it lasts.
    Invited { call: CallHandle },
    /// The caller's ACK arrived and media is set up (it may be on hold: see `direction`).
    CallStarted {
        call: CallHandle,
        call_id: String,
        /// Request-URI user part (selects the music class).
        user: String,
        remote_sip: SocketAddr,
        remote_rtp: SocketAddr,
        local_rtp: SocketAddr,
        codec: Codec,
        payload_type: u8,
        ptime_ms: u32,
        direction: Direction,
    },
    /// The caller's RTP came from another address than its SDP named (a NAT): the stream now
    /// goes there (symmetric RTP, `rtp_latching`).
    Latched {
        call: CallHandle,
        sdp_rtp: SocketAddr,
        remote_rtp: SocketAddr,
    },
    /// Hold/unhold or a new media address by re-INVITE or UPDATE.
    MediaChanged {
        call: CallHandle,
        remote_rtp: SocketAddr,
        direction: Direction,
    },
    CallEnded {
        call: CallHandle,
        reason: EndReason,
        duration: Duration,
        rtp_packets_sent: u64,
    },
    /// A request was refused with a final error response.
    Rejected {
        remote: SocketAddr,
        method: String,
        code: u16,
        reason: String,
    },
    /// A request was refused for a cap (503 with Retry-After): which one.
    LimitHit { remote: SocketAddr, limit: Limit },
    /// A datagram was dropped without an answer (unparseable, or a stray response/ACK).
    Dropped {
        remote: SocketAddr,
        why: &'static str,
    },
    /// The runtime woke late: `skipped` frames were dropped for this call (seq stays contiguous,
    /// the timestamp jumps by the skipped samples).
    Late { call: CallHandle, skipped: u32 },
    /// Every call is gone after `Control::Shutdown`: the runtime may exit.
    Drained,
    /// What the caller sent, decoded to 16-bit PCM at `rate` Hz (one RTP packet's worth, after
    /// silence for any gap before it), while the call is tapped
    /// ([`Server::set_tap`](super::Server::set_tap)): for recording and listening in.
    Heard {
        call: CallHandle,
        rate: u32,
        pcm: Vec<i16>,
    },
    /// A registration (`ServerConfig::registrations`) changed state: `reason` says why it is
    /// not registered (the registrar's status line, or that it did not answer).
    Registration {
        aor: String,
        state: RegistrationState,
        reason: Option<String>,
    },
    /// A SIP message in or out, whole, while [`Server::set_sip_trace`](super::Server::set_sip_trace)
    /// is on (the control API's SIP message hook).
    Sip(SipTrace),
    /// A live class's source or buffer changed state (see [`LiveState`]); `reason` says why a
    /// source went down.
    Live {
        class: String,
        state: LiveState,
        reason: Option<String>,
    },
}

/// The caps a request can hit (`Event::LimitHit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// `max_calls` calls were up.
    MaxCalls,
    /// The source's INVITE rate (`limits.invite_rate`, `limits.invite_burst`).
    InviteRate,
    /// The source held `limits.calls_per_source` calls.
    CallsPerSource,
    /// Server transactions in flight, or the bytes they keep, over all or for the source.
    Transactions,
    /// The runtime is not keeping up with the calls it has (`limits.overload_lateness`).
    Overload,
}

impl Limit {
    /// The name used in logs, events and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Limit::MaxCalls => "max_calls",
            Limit::InviteRate => "invite_rate",
            Limit::CallsPerSource => "calls_per_source",
            Limit::Transactions => "transactions",
            Limit::Overload => "overload",
        }
    }
}

/// One SIP message as it crossed the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipTrace {
    /// Received (true) or sent.
    pub inbound: bool,
    pub transport: Transport,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// The message as sent or received (invalid UTF-8 replaced).
    pub text: String,
}

/// Resources the core asks the runtime for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Bind UDP `port` (and `port + 1` for RTCP unless `rtcp_mux`) on the RTP address, then call
    /// [`Server::rtp_bind_result`].
    BindRtp { port: u16, rtcp_mux: bool },
    /// The call using this port is over: close its sockets.
    UnbindRtp { port: u16, rtcp_mux: bool },
    /// Look up a host name our in-dialog requests go to (a Record-Route or Contact that names a
    /// host, RFC 3263), then call [`Server::resolved`] with what was found, within a bounded
    /// time: an empty list when nothing was (the core then sends to the caller's source
    /// address). `port` is the URI's; without one the runtime may use SRV records, else the
    /// transport's default port. The core asks once per name at a time; requests for it wait.
    Resolve {
        host: String,
        port: Option<u16>,
        transport: Transport,
    },
}

/// Instructions from the runtime, the control API or a signal.
#[derive(Clone, Debug)]
pub enum Control {
    /// Hang up one call with BYE (`EndReason::Operator`).
    Hangup(CallHandle),
    /// Play another source to one call from its next packet: the marker bit is set, seq and
    /// timestamp run on, and the new music starts at its beginning.
    Source { call: CallHandle, source: Source },
    /// Stop taking calls (503 to new INVITEs and OPTIONS), BYE every call; `Event::Drained`
    /// follows when the last one is gone or `grace` has passed.
    Shutdown { grace: Duration },
    /// Swap the music while calls run: each call continues at its next frame boundary with the
    /// marker bit set, seq and timestamp continuous.
    Reload(Arc<Library>),
    /// New settings (SIGHUP): they apply to what happens next — new calls, new offers, new
    /// timers. Calls already up keep their port, codec and ptime. Listen addresses are the
    /// runtime's business (sockets), not the core's.
    Reconfigure(Box<ServerConfig>),
}

/// A call we place ([`Server::originate`](super::Server::originate)).
#[derive(Clone, Debug)]
pub struct Originate {
    /// The callee: our INVITE's Request-URI and To (`sip:`).
    pub uri: String,
    /// Where the INVITE goes: the URI's host, resolved by the runtime. The core sends it to the
    /// outbound proxy of the `[[register]]` account for that host instead, if it has one.
    pub dest: SocketAddr,
    pub transport: Transport,
    /// The listen socket the INVITE goes out from (its port is in our Via and Contact).
    pub local: SocketAddr,
    /// Our IP in Via, Contact and SDP when no advertised address applies and `local` is a
    /// wildcard (the runtime finds the address it would send to `dest` from).
    pub contact_ip: Option<IpAddr>,
    /// Our From: a whole `sip:` URI, or a user written at our address. `None`: the matching
    /// account's AOR, else `sip:onhold@` our address.
    pub from: Option<String>,
    /// What the callee hears (`None`: the default class).
    pub source: Option<Source>,
    /// BYE this long after the answer (`None`: `max_call_duration`).
    pub max_duration: Option<Duration>,
}

/// Why [`Server::originate`](super::Server::originate) placed no call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OriginateError {
    /// The server is shutting down.
    Draining,
    /// `max_calls` calls are up, or no RTP port is free.
    Full,
    /// The URI is not a `sip:` URI with a host.
    BadUri,
}

impl std::fmt::Display for OriginateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OriginateError::Draining => "the server is shutting down",
            OriginateError::Full => "no room for another call (max_calls or RTP ports)",
            OriginateError::BadUri => "not a sip: URI with a host",
        })
    }
}

impl std::error::Error for OriginateError {}

/// What a call hears.
#[derive(Clone, Debug)]
pub enum Source {
    /// A class of the server's music library, by name (an unknown name plays the default
    /// class, as for a caller).
    Class(String),
    /// Music built for this call alone (e.g. one file): its default class, kept across music
    /// reloads.
    Music { name: String, library: Arc<Library> },
}

/// What [`Server::call_info`](super::Server::call_info) reports about one call.
#[derive(Clone, Debug, PartialEq)]
pub struct CallInfo {
    pub call: CallHandle,
    pub call_id: String,
    /// The caller's From and To as it wrote them (our tag added to To).
    pub from: String,
    pub to: String,
    /// The Request-URI user part.
    pub user: String,
    pub transport: Transport,
    pub local_sip: SocketAddr,
    pub remote_sip: SocketAddr,
    /// When the INVITE arrived, and when media started (the ACK).
    pub created: Instant,
    pub started: Option<Instant>,
    /// The media once it started.
    pub media: Option<MediaInfo>,
    /// We placed the call (`from` is then ours, `to` the callee's).
    pub outbound: bool,
}

/// A call's stream.
#[derive(Clone, Debug, PartialEq)]
pub struct MediaInfo {
    /// The class name, or the name of the music played by `Control::Source`.
    pub source: String,
    pub codec: Codec,
    pub payload_type: u8,
    pub ptime_ms: u32,
    pub direction: Direction,
    /// A sending run is active (answered and not on hold).
    pub sending: bool,
    pub local_rtp: SocketAddr,
    pub remote_rtp: SocketAddr,
    /// RTP follows the caller's source instead of its SDP (`Event::Latched`).
    pub latched: bool,
    pub packets: u64,
    /// Payload bytes sent (RTP headers not included), as RTCP reports them.
    pub octets: u64,
}

/// Everything the core needs to know about its deployment. The runtime builds it from the
/// configuration file, flags and environment.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Address written into SDP `c=` and our Contact. `None`: the Request-URI host when it is an
    /// IP literal, else the local address the request arrived on. A listener in `listeners` with
    /// an address of its own overrides it for what arrives there.
    pub advertised: Option<IpAddr>,
    /// Listen sockets that advertise an address of their own (see [`ServerConfig::advertised_for`]).
    pub listeners: Vec<ListenerAdvertised>,
    /// Local IP the runtime binds RTP sockets on (reported in `Transmit::local`).
    pub rtp_ip: IpAddr,
    /// Inclusive RTP port range; even ports are used for RTP, the odd one above for RTCP.
    pub rtp_ports: (u16, u16),
    /// One even port for every call's media instead of a port per call (RTCP on the odd one
    /// above): the runtime binds it at start and sends all RTP from that one socket, so one
    /// `sendmmsg` carries many calls' packets. What arrives there finds its call by its source
    /// address, so a caller's RTP must come from the address its SDP names (no latching).
    /// Fixed at start: a reload does not move it.
    pub rtp_shared_port: Option<u16>,
    /// The codecs we may answer with, most preferred first: a filter and an order. Empty: any
    /// codec we support, the offer's order decides (the caller's first supported codec).
    pub codecs: Vec<Codec>,
    /// ptime when the offer has no `a=ptime` (10–60 ms).
    pub ptime_ms: u32,
    pub max_calls: usize,
    /// Hang up calls older than this (a hold that long is a stuck call).
    pub max_call_duration: Option<Duration>,
    /// Hang up a call whose caller had been sending RTP or RTCP and stopped for this long
    /// (never while the call is on hold).
    pub media_timeout: Option<Duration>,
    /// Send an OPTIONS inside each call this often; 408, 481 or no answer ends the call.
    pub keepalive_interval: Option<Duration>,
    /// Symmetric RTP: follow the caller's RTP source when it looks NATed.
    pub rtp_latching: Latching,
    /// RFC 3261 timers.
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
    /// Send `180 Ringing` before the 200.
    pub send_ringing: bool,
    /// Answer REGISTER with 200 (the Contact echoed with the granted expiry, nothing stored), so
    /// a softphone with an account on this server shows it registered; `false`: 405.
    pub accept_register: bool,
    /// RFC 4028: the smallest Session-Expires we accept (Min-SE); 90 s minimum by the RFC.
    pub min_se: Duration,
    /// Written into `Server`/`User-Agent`.
    pub user_agent: String,
    /// Frames a late wake-up may still send at once before skipping (bounded catch-up).
    pub max_catchup_frames: u32,
    /// Seconds between RTCP sender reports (randomised 0.5–1.5× per RFC 3550 §6.3.1).
    pub rtcp_interval: Duration,
    /// Where requests inside a dialog (ACK, re-INVITE, UPDATE, BYE, INFO) may come from.
    pub in_dialog_from: InDialogFrom,
    /// Where RTP goes: the SDP's address, or the SIP source's IP with the SDP's port.
    pub media_to: MediaTo,
    /// The networks SIP is taken from; anything else is refused as `deny_action` says.
    pub allow: Vec<Network>,
    pub deny_action: DenyAction,
    /// How long a new call's 2xx waits for its ACK before the call ends (BYE) and its RTP port
    /// goes back to the pool; at most 64·T1 (RFC 3261 §13.3.1.4).
    pub ack_wait: Duration,
    /// What one source may hold, and the caps on transactions.
    pub limits: Limits,
    /// Accounts we register at a PBX or trunk (RFC 3261 §10), so calls to them reach us.
    pub registrations: Vec<Registration>,
    /// The classes with SDP settings of their own.
    pub class_sdp: Vec<ClassSdp>,
}

/// A next hop: an address, or a host name the runtime looks up (`Command::Resolve`), with its
/// port if one was given. An outbound proxy in the configuration; where our in-dialog requests
/// go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hop {
    Addr(SocketAddr),
    Name { host: String, port: Option<u16> },
}

impl std::fmt::Display for Hop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Hop::Addr(a) => write!(f, "{a}"),
            Hop::Name {
                host,
                port: Some(p),
            } => write!(f, "{host}:{p}"),
            Hop::Name { host, port: None } => f.write_str(host),
        }
    }
}

/// A music class's own SDP settings (`codecs`, `ptime` and `sdp_*` in `[classes.NAME]`), for
/// the calls whose Request-URI user selects that class.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClassSdp {
    pub class: String,
    /// In place of `ServerConfig::codecs` for this class's calls (empty: those).
    pub codecs: Vec<Codec>,
    /// In place of `ServerConfig::ptime_ms`.
    pub ptime_ms: Option<u32>,
    pub extras: crate::sdp::Extras,
}

/// One `[[register]]` account. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Registration {
    /// The registrar's URI (`sip:pbx.example.com`): the Request-URI of each REGISTER.
    pub registrar: String,
    /// The address of record we register (`sip:moh@pbx.example.com`): our To and From.
    pub aor: String,
    /// The user name for digest authentication (RFC 7616 `username`).
    pub auth_user: String,
    pub password: String,
    /// The binding time we ask for; the registrar may grant less.
    pub expires: Duration,
    /// Where REGISTERs (and INVITEs of calls placed with this account) go instead of the
    /// registrar URI's host.
    pub outbound_proxy: Option<Hop>,
    pub transport: Transport,
    /// The listen socket REGISTERs are sent from (its port is in our Contact).
    pub local: SocketAddr,
    /// The IP in our Contact and Via when neither `advertised_address` nor `local` names one
    /// (the runtime finds the address it would send to the registrar from).
    pub contact_ip: Option<IpAddr>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("registrar", &self.registrar)
            .field("aor", &self.aor)
            .field("auth_user", &self.auth_user)
            .field("password", &"(hidden)")
            .field("expires", &self.expires)
            .field("outbound_proxy", &self.outbound_proxy)
            .field("transport", &self.transport)
            .field("local", &self.local)
            .field("contact_ip", &self.contact_ip)
            .finish()
    }
}

/// Where a registration stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistrationState {
    /// Not yet answered (at start, or after `Resolve` / a challenge).
    Pending,
    Registered,
    /// Refused or unanswered; retried with back-off.
    Failed,
    /// Removed (`Expires: 0`) at shutdown.
    Unregistered,
}

impl RegistrationState {
    /// The name used in logs, events and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            RegistrationState::Pending => "pending",
            RegistrationState::Registered => "registered",
            RegistrationState::Failed => "failed",
            RegistrationState::Unregistered => "unregistered",
        }
    }
}

/// What a live class is doing, as [`Event::Live`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiveState {
    /// The runtime reached the source and audio is coming.
    Connected,
    /// The source dropped, stalled or refused: an outage (the runtime reconnects with back-off).
    Down,
    /// The buffer has filled: callers hear the source.
    Playing,
    /// The buffer ran dry: callers hear the class's fallback until it has refilled.
    Fallback,
}

impl LiveState {
    /// The name used in logs, events and the control API.
    pub fn name(self) -> &'static str {
        match self {
            LiveState::Connected => "connected",
            LiveState::Down => "down",
            LiveState::Playing => "playing",
            LiveState::Fallback => "fallback",
        }
    }
}

/// One live class as it stands (for `/health`, `/metrics` and `/api/music`).
#[derive(Clone, Debug, PartialEq)]
pub struct LiveInfo {
    pub class: String,
    pub url: String,
    /// The runtime has the source connected and audio arriving.
    pub connected: bool,
    /// Callers hear the source (else the fallback).
    pub playing: bool,
    /// Times the source went down (connection refused, dropped or stalled).
    pub outages: u64,
    /// Times the buffer ran dry while playing.
    pub underruns: u64,
    /// Audio waiting to be played.
    pub buffered: Duration,
    /// The delay the buffer plays at.
    pub target: Duration,
    /// Seconds of audio received since start.
    pub received: Duration,
    /// Why the source last went down.
    pub last_error: Option<String>,
}

/// One registration as it stands (for `/health`, `/metrics` and tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrationInfo {
    pub aor: String,
    pub registrar: String,
    pub state: RegistrationState,
    /// When the binding the registrar granted runs out.
    pub expires_at: Option<Instant>,
    /// Why the last attempt did not register (status line, or no answer).
    pub last_error: Option<String>,
    /// REGISTER requests sent (retransmissions not counted).
    pub sent: u64,
}

impl ServerConfig {
    /// May a call be answered with `codec`?
    pub fn allows(&self, codec: Codec) -> bool {
        self.codecs.is_empty() || self.codecs.contains(&codec)
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            advertised: None,
            listeners: Vec::new(),
            rtp_ip: IpAddr::from([0, 0, 0, 0]),
            rtp_ports: (10000, 20000),
            rtp_shared_port: None,
            codecs: Vec::new(),
            ptime_ms: 20,
            max_calls: 1000,
            max_call_duration: Some(Duration::from_secs(4 * 3600)),
            media_timeout: Some(Duration::from_secs(60)),
            keepalive_interval: None,
            rtp_latching: Latching::Auto,
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            send_ringing: false,
            accept_register: true,
            min_se: Duration::from_secs(90),
            user_agent: concat!("onhold/", env!("CARGO_PKG_VERSION")).to_string(),
            max_catchup_frames: 3,
            rtcp_interval: Duration::from_secs(5),
            in_dialog_from: InDialogFrom::Peer,
            media_to: MediaTo::Sdp,
            ack_wait: Duration::from_secs(8),
            allow: Network::private(),
            deny_action: DenyAction::Drop,
            limits: Limits::default(),
            registrations: Vec::new(),
            class_sdp: Vec::new(),
        }
    }
}

/// A listen socket with an advertised address of its own: a request that arrived on it gets
/// `advertised` in our Contact and SDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenerAdvertised {
    pub transport: Transport,
    /// The listen address as configured: an unspecified IP stands for every local address of its
    /// family (`[::]` for both, as a dual-stack socket takes IPv4 too), port 0 for whichever port
    /// the runtime was given.
    pub listen: SocketAddr,
    pub advertised: IpAddr,
}

impl ListenerAdvertised {
    /// Whether a request that arrived at `local` over `transport` came through this listener.
    fn takes(&self, transport: Transport, local: SocketAddr) -> bool {
        let ip = self.listen.ip();
        let ip_fits =
            ip == local.ip() || (ip.is_unspecified() && (ip.is_ipv6() || local.is_ipv4()));
        let port_fits = self.listen.port() == 0 || self.listen.port() == local.port();
        self.transport == transport && ip_fits && port_fits
    }
}

impl ServerConfig {
    /// The configured address to advertise for a request that arrived at `local`: the address of
    /// the listener it came through, else the global one; `None` means work it out from the
    /// request (`auto`). When several listeners could have taken it (a wildcard beside a
    /// specific address), the one naming the IP, then the port, is the socket the kernel
    /// delivered to.
    pub fn advertised_for(&self, transport: Transport, local: SocketAddr) -> Option<IpAddr> {
        self.listeners
            .iter()
            .filter(|l| l.takes(transport, local))
            .max_by_key(|l| (!l.listen.ip().is_unspecified(), l.listen.port() != 0))
            .map(|l| l.advertised)
            .or(self.advertised)
    }
}

/// Counters for the start-up summary, logs and benchmarks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub calls_active: usize,
    pub calls_total: u64,
    pub sip_in: u64,
    pub sip_out: u64,
    pub rtp_out: u64,
    pub rtcp_out: u64,
    pub rtp_in: u64,
    /// RTP or RTCP on the shared port from an address no call streams to.
    pub rtp_unmatched: u64,
    pub dropped: u64,
    pub late_skipped_frames: u64,
    /// Requests that matched a dialog's Call-ID and tags but came from outside its peer.
    pub foreign_in_dialog: u64,
    /// Offers refused for where their media would go (broadcast, loopback from afar, …).
    pub media_refused: u64,
    /// Calls whose media moved to a new address by re-INVITE or UPDATE.
    pub media_moved: u64,
    /// INVITEs refused because `max_calls` calls were up.
    pub refused_full: u64,
    /// SIP datagrams from outside `allow`.
    pub denied: u64,
    /// Requests too large to answer in full (513, or dropped).
    pub oversized: u64,
    /// INVITEs refused (503) for their source's INVITE rate.
    pub refused_rate: u64,
    /// INVITEs refused (503) because their source held `limits.calls_per_source` calls.
    pub refused_source_calls: u64,
    /// Requests answered statelessly (503) because the transaction caps were reached.
    pub refused_transactions: u64,
    /// ICMP unreachable errors reported for our RTP/RTCP destinations.
    pub unreachable: u64,
    /// INVITEs refused (503) while the runtime was not keeping up (`limits.overload_lateness`).
    pub refused_overload: u64,
    /// Requests answered 400 (malformed, RFC 3261 §8.2).
    pub bad_requests: u64,
    /// RTP payload bytes sent (headers not included).
    pub rtp_octets_out: u64,
    /// SIP requests and responses, in and out.
    pub sip: SipCounts,
    /// How late each RTP packet was written, against its place on the call's grid.
    pub lateness: Lateness,
}

/// The SIP methods counted by name, in the order of [`SipCounts::method_index`]; anything else
/// counts as [`OTHER_METHOD`].
pub const SIP_METHODS: [&str; 14] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "REGISTER",
    "UPDATE",
    "INFO",
    "PRACK",
    "SUBSCRIBE",
    "NOTIFY",
    "REFER",
    "MESSAGE",
    "PUBLISH",
];
/// The index of methods not in [`SIP_METHODS`] (label `other`).
pub const OTHER_METHOD: usize = SIP_METHODS.len();

/// SIP messages by method (requests) and status code (responses).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SipCounts {
    /// Indexed as [`SIP_METHODS`], then other.
    pub requests_in: [u64; OTHER_METHOD + 1],
    pub requests_out: [u64; OTHER_METHOD + 1],
    pub responses_in: CodeCounts,
    pub responses_out: CodeCounts,
}

impl SipCounts {
    /// The index of `method` in the request counters.
    pub fn method_index(method: &str) -> usize {
        // A match, not a search of SIP_METHODS: it runs for every message, and the compiler
        // turns it into a switch on the length before comparing bytes.
        match method {
            "INVITE" => 0,
            "ACK" => 1,
            "BYE" => 2,
            "CANCEL" => 3,
            "OPTIONS" => 4,
            "REGISTER" => 5,
            "UPDATE" => 6,
            "INFO" => 7,
            "PRACK" => 8,
            "SUBSCRIBE" => 9,
            "NOTIFY" => 10,
            "REFER" => 11,
            "MESSAGE" => 12,
            "PUBLISH" => 13,
            _ => OTHER_METHOD,
        }
    }

    /// Count a message we send, read from its first line.
    pub(crate) fn count_sent(&mut self, message: &[u8]) {
        match message.strip_prefix(b"SIP/2.0 ") {
            Some(&[a, b, c, ..]) if [a, b, c].iter().all(u8::is_ascii_digit) => {
                let digit = |d: u8| u16::from(d - b'0');
                self.responses_out
                    .add(digit(a) * 100 + digit(b) * 10 + digit(c));
            }
            Some(_) => {}
            None => {
                let end = message.iter().position(|&b| b == b' ').unwrap_or(0);
                let method = std::str::from_utf8(&message[..end]).unwrap_or("");
                self.requests_out[SipCounts::method_index(method)] += 1;
            }
        }
    }
}

/// Counts of status codes 100–699.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CodeCounts(Vec<u64>);

impl CodeCounts {
    pub fn add(&mut self, code: u16) {
        if !(100..700).contains(&code) {
            return;
        }
        if self.0.is_empty() {
            self.0 = vec![0; 600];
        }
        self.0[usize::from(code - 100)] += 1;
    }

    /// The codes seen, with their counts, in code order.
    pub fn iter(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        self.0
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| (i as u16 + 100, *n))
    }
}

/// A histogram of RTP send lateness: how long after its due time on the call's grid each
/// packet was written (the runtime's wake-up delay).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lateness {
    /// Packets at most `LATENESS_BOUNDS_US[i]` late and more than the bound before it (not
    /// cumulative); later than the last bound: `count` minus their sum.
    pub buckets: [u64; LATENESS_BOUNDS_US.len()],
    pub count: u64,
    pub sum_ns: u64,
}

/// Upper bounds of the lateness buckets, in microseconds.
pub const LATENESS_BOUNDS_US: [u64; 10] =
    [50, 100, 250, 500, 1000, 2500, 5000, 10000, 20000, 50000];

impl Lateness {
    #[inline]
    pub(crate) fn observe(&mut self, late: Duration) {
        let ns = late.as_nanos().min(u128::from(u64::MAX)) as u64;
        self.count += 1;
        self.sum_ns = self.sum_ns.saturating_add(ns);
        if let Some(i) = LATENESS_BOUNDS_US.iter().position(|&b| ns <= b * 1000) {
            self.buckets[i] += 1;
        }
    }
}

/// How full the server's tables are: what the caps in [`Limits`] and `max_calls` bound.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Occupancy {
    pub server_transactions: usize,
    pub client_transactions: usize,
    /// Bytes the server transactions keep (keys and last responses).
    pub transaction_bytes: usize,
    /// Source addresses with a server transaction in flight.
    pub transaction_sources: usize,
    pub calls: usize,
    /// Source addresses the INVITE-rate table holds.
    pub call_sources: usize,
    /// Datagrams queued for `poll_transmit`.
    pub queued: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_indexes_follow_the_method_list() {
        for (i, m) in SIP_METHODS.iter().enumerate() {
            assert_eq!(SipCounts::method_index(m), i, "{m}");
        }
        assert_eq!(SipCounts::method_index("invite"), OTHER_METHOD);
        assert_eq!(SipCounts::method_index("FOO"), OTHER_METHOD);
    }

    #[test]
    fn sent_messages_are_counted_by_method_and_code() {
        let mut c = SipCounts::default();
        c.count_sent(b"SIP/2.0 200 OK\r\n");
        c.count_sent(b"SIP/2.0 100 Trying\r\n");
        c.count_sent(b"SIP/2.0 200 OK\r\n");
        c.count_sent(b"BYE sip:a@b SIP/2.0\r\n");
        c.count_sent(b"SIP/2.0 x");
        assert_eq!(
            c.responses_out.iter().collect::<Vec<_>>(),
            [(100, 1), (200, 2)]
        );
        assert_eq!(c.requests_out[2], 1);
    }

    #[test]
    fn lateness_lands_in_its_bucket() {
        let mut l = Lateness::default();
        l.observe(Duration::from_micros(50));
        l.observe(Duration::from_nanos(50_001));
        l.observe(Duration::from_secs(1));
        assert_eq!(l.buckets[0], 1);
        assert_eq!(l.buckets[1], 1);
        assert_eq!(l.count, 3, "the one past every bound counts only in count");
        assert_eq!(l.buckets.iter().sum::<u64>(), 2);
    }
}
