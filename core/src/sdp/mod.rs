//! SDP (RFC 8866) parsing and offer/answer (RFC 3264).
//!
//! Three steps, all pure functions over bytes:
//! - [`parse`] turns a body into a [`SessionDescription`]: owned and small (this runs once per
//!   offer, not per packet), tolerant of what real phones send (LF-only or missing final line
//!   ending, unknown lines and attributes, `a=crypto` on plain RTP).
//! - [`answer`] picks the stream, codec, ptime and direction for an offer ([`Negotiated`]), or
//!   says why we must refuse it ([`Rejection`], always 488); [`accept_answer`] does the same for
//!   the answer to our own offer (late offer: INVITE without SDP, answer in the ACK).
//! - [`write_answer`] and [`write_offer`] serialise our side into a caller-owned buffer.

mod negotiate;
mod parse;
mod write;

use std::net::IpAddr;

use crate::server::Direction;

pub use negotiate::{accept_answer, answer, AnswerPrefs, Negotiated, Rejection};
pub use parse::parse;
pub use write::{write_answer, write_offer, LocalMedia};

/// Most m-lines we accept in one description. A real offer has one to four; the cap bounds the
/// work and memory an untrusted body can cause.
pub const MAX_MEDIA: usize = 32;

/// The payload type we use for telephone-event (RFC 4733) in our own offers.
pub const OFFER_DTMF_PT: u8 = 101;

/// A parsed session description: what offer/answer needs, nothing more.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SessionDescription {
    /// `o=`, if present and well-formed.
    pub origin: Option<Origin>,
    /// Session-level `c=`: the default for media sections without their own.
    pub connection: Option<Connection>,
    /// Session-level direction attribute; media-level ones override it.
    pub direction: Option<Direction>,
    /// Session-level `a=ptime` (not where RFC 8866 puts it, but some phones do).
    pub ptime: Option<u32>,
    /// The m-lines in order: answers must keep this order and count (RFC 3264 §6).
    pub media: Vec<MediaDescription>,
}

/// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub username: String,
    /// Kept as text: RFC 8866 only says "numeric", and some stacks exceed 64 bits.
    pub session_id: String,
    pub session_version: String,
    /// The address as written; may be a host name (seen in the field).
    pub address: String,
}

/// The address of a `c=` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Connection {
    /// `c=IN IP4 192.0.2.1` or `c=IN IP6 ::1` (a multicast `/ttl` suffix is dropped).
    Ip(IpAddr),
    /// A host name or anything else we cannot use without a resolver: kept so that a stream
    /// that relies on it is refused rather than sent to a wrong address.
    Unusable(String),
}

/// One `m=` section with the attributes we act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaDescription {
    /// `audio`, `video`, `application`, …
    pub media: String,
    /// 0 means the stream is disabled (offered as rejected, RFC 3264 §5.1).
    pub port: u16,
    /// `RTP/AVP`, `RTP/SAVP`, `UDP/TLS/RTP/SAVPF`, … as written.
    pub proto: String,
    /// The format list as written (RTP payload type numbers for RTP protocols).
    pub formats: Vec<String>,
    /// Media-level `c=`; overrides the session-level one.
    pub connection: Option<Connection>,
    pub rtpmaps: Vec<RtpMap>,
    pub fmtps: Vec<Fmtp>,
    pub ptime: Option<u32>,
    pub maxptime: Option<u32>,
    pub direction: Option<Direction>,
    /// `a=rtcp:<port> [IN IP4 <addr>]` (RFC 3605).
    pub rtcp: Option<RtcpAttr>,
    /// `a=rtcp-mux` (RFC 5761).
    pub rtcp_mux: bool,
    /// `a=crypto` seen (RFC 4568). Meaningless on RTP/AVP, so only noted.
    pub crypto: bool,
}

/// `a=rtpmap:<pt> <name>/<clock>[/<channels>]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpMap {
    pub payload_type: u8,
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: Option<u16>,
}

/// `a=fmtp:<pt> <parameters>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fmtp {
    pub payload_type: u8,
    pub params: String,
}

/// `a=rtcp:<port> [IN IP4 <addr>]` (RFC 3605).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtcpAttr {
    pub port: u16,
    pub addr: Option<IpAddr>,
}

/// Why a body is not a session description we can work with. A SIP server answers these with
/// 400 (or 488); the RFC 3264 refusals of a well-formed offer are [`Rejection`]s instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SdpError {
    /// The first line is not `v=0`: not SDP at all.
    NotSdp,
    /// The m-line with this index (0-based) lacks its port or protocol.
    BadMediaLine { index: usize },
    /// More than [`MAX_MEDIA`] m-lines.
    TooManyMedia,
}

impl std::fmt::Display for SdpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SdpError::NotSdp => f.write_str("body does not start with v=0"),
            SdpError::BadMediaLine { index } => write!(f, "m-line {index} is malformed"),
            SdpError::TooManyMedia => write!(f, "more than {MAX_MEDIA} m-lines"),
        }
    }
}

impl std::error::Error for SdpError {}

impl SessionDescription {
    /// The `c=` address that applies to media section `index` (media level wins).
    pub fn connection_for(&self, index: usize) -> Option<&Connection> {
        self.media
            .get(index)
            .and_then(|m| m.connection.as_ref())
            .or(self.connection.as_ref())
    }

    /// The direction that applies to media section `index`: media level, else session level,
    /// else sendrecv (RFC 8866 §6.7). A `c=` of 0.0.0.0 (RFC 2543 hold, still sent by old
    /// phones; RFC 3264 §8.4) counts as inactive.
    pub fn direction_for(&self, index: usize) -> Direction {
        if let Some(Connection::Ip(ip)) = self.connection_for(index) {
            if ip.is_unspecified() {
                return Direction::Inactive;
            }
        }
        self.media
            .get(index)
            .and_then(|m| m.direction)
            .or(self.direction)
            .unwrap_or(Direction::SendRecv)
    }

    /// The ptime that applies to media section `index` (media level wins).
    pub fn ptime_for(&self, index: usize) -> Option<u32> {
        self.media.get(index).and_then(|m| m.ptime).or(self.ptime)
    }
}

impl MediaDescription {
    pub fn is_audio(&self) -> bool {
        self.media.eq_ignore_ascii_case("audio")
    }

    /// Plain RTP: `RTP/AVP` or `RTP/AVPF` (feedback profile; we send no feedback, which RFC
    /// 4585 permits).
    pub fn is_plain_rtp(&self) -> bool {
        self.proto.eq_ignore_ascii_case("RTP/AVP") || self.proto.eq_ignore_ascii_case("RTP/AVPF")
    }

    /// Any SRTP profile: `RTP/SAVP`, `RTP/SAVPF`, `UDP/TLS/RTP/SAVP(F)` (DTLS-SRTP), …
    pub fn is_secure_rtp(&self) -> bool {
        let p = self.proto.to_ascii_uppercase();
        p.contains("RTP/SAVP")
    }

    /// The rtpmap for `pt`, if any (the first one wins on duplicates).
    pub fn rtpmap(&self, pt: u8) -> Option<&RtpMap> {
        self.rtpmaps.iter().find(|r| r.payload_type == pt)
    }

    /// The offered payload types in offer order; formats that are not RTP payload type
    /// numbers (0–127) are skipped.
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats
            .iter()
            .filter_map(|f| f.parse::<u8>().ok())
            .filter(|pt| *pt < 128)
    }
}

/// The attribute name of a direction (RFC 8866 §6.7).
pub fn direction_attribute(d: Direction) -> &'static str {
    match d {
        Direction::SendRecv => "sendrecv",
        Direction::SendOnly => "sendonly",
        Direction::RecvOnly => "recvonly",
        Direction::Inactive => "inactive",
    }
}
