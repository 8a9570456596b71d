//! What a runtime exchanges with the [`Server`](super::Server): the types of its inputs and
//! outputs (datagrams, events, commands, controls), its settings and its counters.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

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
    /// `Control::Hangup` or `Control::Shutdown`.
    Control,
    /// Our BYE's transaction timed out or the peer rejected it; the call is gone anyway.
    ByeFailed,
    /// The answer in the caller's ACK (after an INVITE without offer) was unusable or named an
    /// address media may not go to (we sent BYE).
    MediaRefused,
    /// The stream's destination answered ICMP unreachable for 2 s with nothing heard from the
    /// caller (we sent BYE): nobody was listening, or the address was not the caller's.
    Unreachable,
    /// The caller had been sending RTP or RTCP and sent nothing for `media_timeout` while we
    /// streamed to it (we sent BYE).
    MediaTimeout,
    /// Our in-dialog OPTIONS keep-alive got 408 or 481, or no answer (we sent BYE).
    KeepAliveFailed,
}

/// What happened, for logs, counters and the control API.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
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
    /// Hang up one call with BYE.
    Hangup(CallHandle),
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

/// Everything the core needs to know about its deployment. The runtime builds it from the
/// configuration file, flags and environment.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Address written into SDP `c=` and our Contact. `None`: the Request-URI host when it is an
    /// IP literal, else the local address the request arrived on.
    pub advertised: Option<IpAddr>,
    /// Local IP the runtime binds RTP sockets on (reported in `Transmit::local`).
    pub rtp_ip: IpAddr,
    /// Inclusive RTP port range; even ports are used for RTP, the odd one above for RTCP.
    pub rtp_ports: (u16, u16),
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
            rtp_ip: IpAddr::from([0, 0, 0, 0]),
            rtp_ports: (10000, 20000),
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
        }
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
