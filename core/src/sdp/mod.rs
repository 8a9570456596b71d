//! SDP (RFC 8866) parsing and offer/answer (RFC 3264).
//!
//! Three steps, all pure functions over bytes:
//! - [`parse()`] turns a body into a [`SessionDescription`] that borrows its text from the body
//!   (this runs for every INVITE, so it allocates only its lists, never a field), tolerant of
//!   what real phones send (LF-only or missing final line ending, unknown lines and attributes,
//!   `a=crypto` on plain RTP).
//! - [`answer`] picks the stream, codec, ptime and direction for an offer ([`Negotiated`]), or
//!   says why we must refuse it ([`Rejection`], always 488); [`accept_answer`] does the same for
//!   the answer to our own offer (late offer: INVITE without SDP, answer in the ACK).
//! - [`answer_body`] does the first two for an INVITE's offer at once: in one strict pass over
//!   the body for the usual offer of one audio line (the fast path, `fast.rs`), else through
//!   [`parse()`] and [`answer`].
//! - [`write_answer`] and [`write_offer`] serialise our side into a caller-owned buffer. An
//!   answer written later than the offer was read (the server binds its RTP port in between)
//!   keeps only an [`AnswerLayout`] of the offer, not the offer.

mod fast;
mod negotiate;
mod parse;
mod write;

use std::borrow::Cow;
use std::net::IpAddr;

pub use negotiate::{accept_answer, answer, AnswerPrefs, Negotiated, OfferError, Rejection};
pub use parse::parse;
pub use write::{write_answer, write_offer, write_offer_with, AnswerLayout, Extras, LocalMedia};

/// Answer the offer in `body`: [`parse()`], then [`answer`], then [`AnswerLayout::new`], with
/// their errors. An INVITE's offer is answered on every call, so the usual offer of one plainly
/// written m-line is answered in one pass over the body without building the description
/// (`sdp/fast.rs`); with the `reference` feature, every offer takes the reference path.
pub fn answer_body(
    body: &[u8],
    prefs: &AnswerPrefs,
) -> Result<(Negotiated, AnswerLayout), OfferError> {
    if !cfg!(feature = "reference") {
        if let Some(answered) = fast::answer_body_fast(body, prefs) {
            return Ok(answered);
        }
    }
    negotiate::answer_body_reference(body, prefs)
}

/// Media direction as seen from our side (RFC 3264 §5.1, §6.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    /// Whether RTP flows from us.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendOnly | Direction::SendRecv)
    }
}

/// Most m-lines we accept in one description. A real offer has one to four; the cap bounds the
/// work and memory an untrusted body can cause.
pub const MAX_MEDIA: usize = 32;

/// The payload type we use for telephone-event (RFC 4733) in our own offers.
pub const OFFER_DTMF_PT: u8 = 101;

/// A parsed session description: what offer/answer needs, nothing more.
///
/// Its text fields borrow from the body; they are owned only when the body was not UTF-8 and
/// its invalid bytes had to be replaced (see [`parse()`]). [`SessionDescription::into_owned`]
/// detaches a description from its body.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SessionDescription<'a> {
    /// `o=`, if present and well-formed.
    pub origin: Option<Origin<'a>>,
    /// Session-level `c=`: the default for media sections without their own.
    pub connection: Option<Connection<'a>>,
    /// Session-level direction attribute; media-level ones override it.
    pub direction: Option<Direction>,
    /// Session-level `a=ptime` (not where RFC 8866 puts it, but some phones do).
    pub ptime: Option<u32>,
    /// The m-lines in order: answers must keep this order and count (RFC 3264 §6).
    pub media: Vec<MediaDescription<'a>>,
}

/// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin<'a> {
    pub username: Cow<'a, str>,
    /// Kept as text: RFC 8866 only says "numeric", and some stacks exceed 64 bits.
    pub session_id: Cow<'a, str>,
    pub session_version: Cow<'a, str>,
    /// The address as written; may be a host name (seen in the field).
    pub address: Cow<'a, str>,
}

/// The address of a `c=` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Connection<'a> {
    /// `c=IN IP4 192.0.2.1` or `c=IN IP6 ::1` (a multicast `/ttl` suffix is dropped).
    Ip(IpAddr),
    /// A host name or anything else we cannot use without a resolver: kept so that a stream
    /// that relies on it is refused rather than sent to a wrong address.
    Unusable(Cow<'a, str>),
}

/// One `m=` section with the attributes we act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaDescription<'a> {
    /// `audio`, `video`, `application`, …
    pub media: Cow<'a, str>,
    /// 0 means the stream is disabled (offered as rejected, RFC 3264 §5.1).
    pub port: u16,
    /// `RTP/AVP`, `RTP/SAVP`, `UDP/TLS/RTP/SAVPF`, … as written.
    pub proto: Cow<'a, str>,
    /// The format list as written (RTP payload type numbers for RTP protocols).
    pub formats: Formats<'a>,
    /// Media-level `c=`; overrides the session-level one.
    pub connection: Option<Connection<'a>>,
    pub rtpmaps: Vec<RtpMap<'a>>,
    pub fmtps: Vec<Fmtp<'a>>,
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

/// The format list of an m-line, kept as the text after the protocol: one string instead of
/// one per format. [`Formats::iter`] yields the formats; lists compare equal when their formats
/// are equal, however they were spaced.
#[derive(Clone, Debug, Default)]
pub struct Formats<'a>(Cow<'a, str>);

/// `a=rtpmap:<pt> <name>/<clock>[/<channels>]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpMap<'a> {
    pub payload_type: u8,
    pub encoding: Cow<'a, str>,
    pub clock_rate: u32,
    pub channels: Option<u16>,
}

/// `a=fmtp:<pt> <parameters>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fmtp<'a> {
    pub payload_type: u8,
    pub params: Cow<'a, str>,
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

impl SessionDescription<'_> {
    /// The same description with every text field owned: no longer tied to the body.
    pub fn into_owned(self) -> SessionDescription<'static> {
        SessionDescription {
            origin: self.origin.map(|o| Origin {
                username: owned(o.username),
                session_id: owned(o.session_id),
                session_version: owned(o.session_version),
                address: owned(o.address),
            }),
            connection: self.connection.map(Connection::into_owned),
            direction: self.direction,
            ptime: self.ptime,
            media: self
                .media
                .into_iter()
                .map(MediaDescription::into_owned)
                .collect(),
        }
    }

    /// The `c=` address that applies to media section `index` (media level wins).
    pub fn connection_for(&self, index: usize) -> Option<&Connection<'_>> {
        self.media
            .get(index)
            .and_then(|m| m.connection.as_ref())
            .or(self.connection.as_ref())
    }

    /// The direction that applies to media section `index`: media level, else session level,
    /// else sendrecv (RFC 8866 §6.7). A `c=` of 0.0.0.0 (RFC 2543 hold, still sent by old
    /// phones; RFC 3264 §8.4) counts as inactive.
    pub fn direction_for(&self, index: usize) -> Direction {
        let media = self.media.get(index).and_then(|m| m.direction);
        direction_in_force(self.connection_for(index), media, self.direction)
    }

    /// The ptime that applies to media section `index` (media level wins).
    pub fn ptime_for(&self, index: usize) -> Option<u32> {
        self.media.get(index).and_then(|m| m.ptime).or(self.ptime)
    }
}

/// The direction of a stream with `c=` `conn` and direction attributes `media` and `session`
/// ([`SessionDescription::direction_for`]).
fn direction_in_force(
    conn: Option<&Connection<'_>>,
    media: Option<Direction>,
    session: Option<Direction>,
) -> Direction {
    if let Some(Connection::Ip(ip)) = conn {
        if ip.is_unspecified() {
            return Direction::Inactive;
        }
    }
    media.or(session).unwrap_or(Direction::SendRecv)
}

fn owned(s: Cow<'_, str>) -> Cow<'static, str> {
    Cow::Owned(s.into_owned())
}

impl Connection<'_> {
    fn into_owned(self) -> Connection<'static> {
        match self {
            Connection::Ip(ip) => Connection::Ip(ip),
            Connection::Unusable(s) => Connection::Unusable(owned(s)),
        }
    }
}

impl<'a> MediaDescription<'a> {
    fn into_owned(self) -> MediaDescription<'static> {
        MediaDescription {
            media: owned(self.media),
            port: self.port,
            proto: owned(self.proto),
            formats: Formats(owned(self.formats.0)),
            connection: self.connection.map(Connection::into_owned),
            rtpmaps: (self.rtpmaps.into_iter())
                .map(|r| RtpMap {
                    encoding: owned(r.encoding),
                    payload_type: r.payload_type,
                    clock_rate: r.clock_rate,
                    channels: r.channels,
                })
                .collect(),
            fmtps: (self.fmtps.into_iter())
                .map(|f| Fmtp {
                    payload_type: f.payload_type,
                    params: owned(f.params),
                })
                .collect(),
            ptime: self.ptime,
            maxptime: self.maxptime,
            direction: self.direction,
            rtcp: self.rtcp,
            rtcp_mux: self.rtcp_mux,
            crypto: self.crypto,
        }
    }

    pub fn is_audio(&self) -> bool {
        is_audio(self.media.as_bytes())
    }

    /// Plain RTP: `RTP/AVP` or `RTP/AVPF` (feedback profile; we send no feedback, which RFC
    /// 4585 permits).
    pub fn is_plain_rtp(&self) -> bool {
        is_plain_rtp(self.proto.as_bytes())
    }

    /// Any SRTP profile: `RTP/SAVP`, `RTP/SAVPF`, `UDP/TLS/RTP/SAVP(F)` (DTLS-SRTP), …
    pub fn is_secure_rtp(&self) -> bool {
        // `contains` on an upper-cased copy, without the copy.
        (self.proto.as_bytes())
            .windows(b"RTP/SAVP".len())
            .any(|w| w.eq_ignore_ascii_case(b"RTP/SAVP"))
    }

    /// The rtpmap for `pt`, if any (the first one wins on duplicates).
    pub fn rtpmap(&self, pt: u8) -> Option<&RtpMap<'a>> {
        self.rtpmaps.iter().find(|r| r.payload_type == pt)
    }

    /// The offered payload types in offer order; formats that are not RTP payload type
    /// numbers (0–127) are skipped.
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats
            .iter()
            .filter_map(parse::payload_type_number)
            .filter(|pt| *pt < 128)
    }
}

impl<'a> Formats<'a> {
    /// The list as written after the protocol (formats separated by ASCII white space).
    pub fn new(text: impl Into<Cow<'a, str>>) -> Self {
        Formats(text.into())
    }

    /// The formats in order.
    pub fn iter(&self) -> std::str::SplitAsciiWhitespace<'_> {
        self.0.split_ascii_whitespace()
    }

    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    pub fn len(&self) -> usize {
        self.iter().count()
    }
}

impl PartialEq for Formats<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Formats<'_> {}

impl<S: AsRef<str>> PartialEq<[S]> for Formats<'_> {
    fn eq(&self, other: &[S]) -> bool {
        self.iter().eq(other.iter().map(AsRef::as_ref))
    }
}

impl<S: AsRef<str>, const N: usize> PartialEq<[S; N]> for Formats<'_> {
    fn eq(&self, other: &[S; N]) -> bool {
        *self == other[..]
    }
}

impl<S: AsRef<str>> PartialEq<Vec<S>> for Formats<'_> {
    fn eq(&self, other: &Vec<S>) -> bool {
        *self == other[..]
    }
}

/// [`MediaDescription::is_audio`] of an m-line's media.
fn is_audio(media: &[u8]) -> bool {
    media.eq_ignore_ascii_case(b"audio")
}

/// [`MediaDescription::is_plain_rtp`] of an m-line's protocol.
fn is_plain_rtp(proto: &[u8]) -> bool {
    proto.eq_ignore_ascii_case(b"RTP/AVP") || proto.eq_ignore_ascii_case(b"RTP/AVPF")
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
