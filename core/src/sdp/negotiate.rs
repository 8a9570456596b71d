//! Offer/answer decisions (RFC 3264): which stream, codec, payload type, ptime, addresses and
//! direction. Music On Hold only ever sends, so every accepted stream is `sendonly` or
//! `inactive` from our side.

use std::net::{IpAddr, SocketAddr};

use super::Direction;
use super::{
    parse, AnswerLayout, Connection, MediaDescription, RtcpAttr, RtpMap, SdpError,
    SessionDescription,
};
use crate::codec::Codec;

/// What we are willing to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnswerPrefs {
    /// The codecs we allow, most preferred first: the first of these that the offer carries
    /// wins. Empty means every codec we support, in the offer's order (the offerer's
    /// preference, which is what RFC 3264 §6.1 suggests following).
    pub codecs: Vec<Codec>,
    /// Packet duration when the offer has no `a=ptime` (bounded by its `a=maxptime`).
    pub default_ptime_ms: u32,
}

impl Default for AnswerPrefs {
    fn default() -> Self {
        AnswerPrefs {
            codecs: Vec::new(),
            default_ptime_ms: 20,
        }
    }
}

/// The outcome of offer/answer: everything needed to stream and to write our SDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Negotiated {
    pub codec: Codec,
    /// The payload type number as the offer (or the answer to our offer) wrote it.
    pub payload_type: u8,
    /// telephone-event/8000 payload type, if the peer offered it (RFC 4733).
    pub dtmf_pt: Option<u8>,
    /// Packet duration: a multiple of 10 in 10..=60.
    pub ptime_ms: u32,
    /// Where RTP goes: the SDP `c=` address and `m=` port, never the SIP source.
    pub remote_rtp: SocketAddr,
    /// Where RTCP goes: `a=rtcp` (RFC 3605), else the RTP port + 1, or the RTP address if muxed.
    pub remote_rtcp: SocketAddr,
    /// RTP and RTCP share one port (RFC 5761): offered, so we accept it.
    pub rtcp_mux: bool,
    /// Our direction: `SendOnly` (we stream) or `Inactive` (we send nothing).
    pub direction: Direction,
    /// Index of the chosen m-line in the peer's description.
    pub media_index: usize,
    /// How many m-lines the peer's description had (our answer must have as many).
    pub media_count: usize,
}

impl Negotiated {
    /// Whether RTP should flow from us.
    pub fn sends(&self) -> bool {
        self.direction.sends()
    }
}

/// Why a well-formed offer cannot be accepted. Every one is a 488 Not Acceptable Here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// No audio m-line with a non-zero port and an RTP protocol.
    NoAudio,
    /// Audio offered, but none of our codecs (e.g. Opus or G.729 only).
    NoCommonCodec,
    /// Only SRTP offered (`RTP/SAVP`, `RTP/SAVPF`, DTLS-SRTP): we do not do SRTP.
    SecureMediaUnsupported,
    /// The chosen stream has no `c=` line at either level.
    MissingConnection,
    /// The chosen stream's `c=` is a host name or a multicast group: we neither resolve names
    /// in the core nor stream to groups on a stranger's request.
    UnusableAddress,
}

impl Rejection {
    /// The SIP status code to answer with (RFC 3261 §21.4.26).
    pub fn status_code(self) -> u16 {
        488
    }

    /// The RFC 3261 §20.43 Warning code that best explains the refusal.
    pub fn warning_code(self) -> u16 {
        match self {
            Rejection::NoAudio => 304,
            Rejection::NoCommonCodec => 305,
            Rejection::SecureMediaUnsupported => 302,
            Rejection::MissingConnection | Rejection::UnusableAddress => 301,
        }
    }

    /// Warning text for the `Warning:` header and logs.
    pub fn warning_text(self) -> &'static str {
        match self {
            Rejection::NoAudio => "Media type not available",
            Rejection::NoCommonCodec => "Incompatible media format",
            Rejection::SecureMediaUnsupported => "Incompatible transport protocol",
            Rejection::MissingConnection => "Incompatible network address formats",
            Rejection::UnusableAddress => "Incompatible network address formats",
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.warning_text())
    }
}

impl std::error::Error for Rejection {}

/// Answer an offer. Takes the first audio m-line with a non-zero port, a plain RTP profile and a
/// codec we can send (so an SRTP line followed by its RTP/AVP twin, as "best effort SRTP"
/// phones offer, still works); every other m-line will be rejected by [`super::write_answer`].
pub fn answer(
    offer: &SessionDescription<'_>,
    prefs: &AnswerPrefs,
) -> Result<Negotiated, Rejection> {
    let (index, codec, payload_type) = choose_stream(offer, prefs, CodecOrder::Ours)?;
    let m = &offer.media[index];
    let ptime_ms = choose_ptime(offer.ptime_for(index), m.maxptime, prefs.default_ptime_ms);
    let direction = our_direction(offer.direction_for(index));
    finish(offer, index, codec, payload_type, ptime_ms, direction)
}

/// Why an offer gets no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OfferError {
    /// The body is not a session description we can read (a SIP server answers 400).
    Sdp(SdpError),
    /// Offer/answer refuses it (488).
    Rejected(Rejection),
}

/// [`super::answer_body`] for any body: [`parse()`], then [`answer`], then
/// [`AnswerLayout::new`], with their errors.
pub(super) fn answer_body_reference(
    body: &[u8],
    prefs: &AnswerPrefs,
) -> Result<(Negotiated, AnswerLayout), OfferError> {
    let offer = parse(body).map_err(OfferError::Sdp)?;
    let neg = answer(&offer, prefs).map_err(OfferError::Rejected)?;
    let layout = AnswerLayout::new(&offer, &neg);
    Ok((neg, layout))
}

/// Accept the answer to our own offer ([`super::write_offer`], late offer). The answerer picked:
/// the first of its formats that is one of ours wins. If it can receive (`recvonly`, or
/// `sendrecv` from a peer that ignored our `sendonly`) we send; otherwise we stay silent.
pub fn accept_answer(
    answer: &SessionDescription<'_>,
    prefs: &AnswerPrefs,
) -> Result<Negotiated, Rejection> {
    let (index, codec, payload_type) = choose_stream(answer, prefs, CodecOrder::Theirs)?;
    let m = &answer.media[index];
    let ptime_ms = choose_ptime(answer.ptime_for(index), m.maxptime, prefs.default_ptime_ms);
    let direction = our_direction(answer.direction_for(index));
    finish(answer, index, codec, payload_type, ptime_ms, direction)
}

/// Our direction towards a peer whose direction is `theirs`. RFC 3264 §6.1: we only send, so
/// it is theirs with the receive half removed; their sendonly/inactive leaves nothing to do.
pub(super) fn our_direction(theirs: Direction) -> Direction {
    match theirs {
        Direction::SendRecv | Direction::RecvOnly => Direction::SendOnly,
        Direction::SendOnly | Direction::Inactive => Direction::Inactive,
    }
}

/// Whose preference order decides between several common codecs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum CodecOrder {
    /// Answering: `prefs.codecs` order (offer order when it is empty).
    Ours,
    /// Accepting an answer: the answerer already chose; its order wins among our codecs.
    Theirs,
}

fn choose_stream(
    sd: &SessionDescription<'_>,
    prefs: &AnswerPrefs,
    order: CodecOrder,
) -> Result<(usize, Codec, u8), Rejection> {
    let mut secure_only = false;
    let mut saw_plain_audio = false;
    for (index, m) in sd.media.iter().enumerate() {
        if !m.is_audio() || m.port == 0 {
            continue;
        }
        if !m.is_plain_rtp() {
            secure_only |= m.is_secure_rtp();
            continue;
        }
        saw_plain_audio = true;
        if let Some((codec, pt)) = choose_codec(m, &prefs.codecs, order) {
            return Ok((index, codec, pt));
        }
    }
    Err(if saw_plain_audio {
        Rejection::NoCommonCodec
    } else if secure_only {
        Rejection::SecureMediaUnsupported
    } else {
        Rejection::NoAudio
    })
}

/// The codec a payload type stands for: its rtpmap if present (dynamic or not), else the static
/// RFC 3551 assignment. Only 8000 Hz mono maps count.
fn codec_of(m: &MediaDescription<'_>, pt: u8) -> Option<Codec> {
    match m.rtpmap(pt) {
        Some(map) => map_codec(map),
        None => static_codec(pt),
    }
}

/// The codec an rtpmap names, if it is one of ours at 8000 Hz mono.
pub(super) fn map_codec(map: &RtpMap<'_>) -> Option<Codec> {
    let mono = map.channels.is_none_or(|c| c == 1);
    if map.clock_rate == Codec::RTP_CLOCK && mono {
        Codec::from_name(&map.encoding)
    } else {
        None
    }
}

/// The codec of a payload type without an rtpmap: its static RFC 3551 assignment, if any.
pub(super) fn static_codec(pt: u8) -> Option<Codec> {
    if pt < 96 {
        Codec::from_static_pt(pt)
    } else {
        None
    }
}

/// Whether an rtpmap is telephone-event/8000 (RFC 4733).
pub(super) fn is_dtmf(map: &RtpMap<'_>) -> bool {
    map.clock_rate == Codec::RTP_CLOCK && map.encoding.eq_ignore_ascii_case("telephone-event")
}

fn choose_codec(
    m: &MediaDescription<'_>,
    prefs: &[Codec],
    order: CodecOrder,
) -> Option<(Codec, u8)> {
    pick_codec(
        || {
            m.payload_types()
                .filter_map(|pt| codec_of(m, pt).map(|c| (c, pt)))
        },
        prefs,
        order,
    )
}

/// The codec and payload type to send among `offered` (our codecs among the offered formats,
/// in offer order), by `prefs` and `order`.
pub(super) fn pick_codec<I: Iterator<Item = (Codec, u8)>>(
    offered: impl Fn() -> I,
    prefs: &[Codec],
    order: CodecOrder,
) -> Option<(Codec, u8)> {
    if prefs.is_empty() {
        offered().next()
    } else if order == CodecOrder::Theirs {
        offered().find(|(c, _)| prefs.contains(c))
    } else {
        // One pass over the offer per preference (at most three), instead of collecting it.
        prefs
            .iter()
            .find_map(|want| offered().find(|(c, _)| c == want))
    }
}

/// The first offered payload type whose rtpmap is telephone-event/8000.
fn dtmf_pt(m: &MediaDescription<'_>) -> Option<u8> {
    // An offer has one telephone-event map or none. Then the answer needs no map looked up per
    // offered format: it is that map's payload type, if the map is the one in force for it
    // (the first for its number) and the number is offered.
    let mut maps = m.rtpmaps.iter().filter(|map| is_dtmf(map));
    match (maps.next(), maps.next()) {
        (None, _) => None,
        (Some(map), None) => {
            let pt = map.payload_type;
            let in_force = m.rtpmap(pt).is_some_and(|first| std::ptr::eq(first, map));
            (in_force && m.payload_types().any(|p| p == pt)).then_some(pt)
        }
        _ => m
            .payload_types()
            .find(|&pt| m.rtpmap(pt).is_some_and(is_dtmf)),
    }
}

/// Round to the nearest multiple of 10 within 10..=60 (whole 10 ms frames keep the media
/// cache to six variants per codec), then respect maxptime (RFC 8866 §6.5) by rounding down.
pub(super) fn choose_ptime(ptime: Option<u32>, maxptime: Option<u32>, default_ms: u32) -> u32 {
    let round = |ms: u32| (ms.saturating_add(5) / 10 * 10).clamp(10, 60);
    let mut chosen = round(ptime.unwrap_or(default_ms));
    if let Some(max) = maxptime {
        chosen = chosen.min((max / 10 * 10).max(10));
    }
    chosen
}

fn finish(
    sd: &SessionDescription<'_>,
    index: usize,
    codec: Codec,
    payload_type: u8,
    ptime_ms: u32,
    direction: Direction,
) -> Result<Negotiated, Rejection> {
    let m = &sd.media[index];
    let ip = remote_ip(sd.connection_for(index))?;
    let (remote_rtp, remote_rtcp) = remote_endpoints(ip, m.port, m.rtcp_mux, m.rtcp);
    Ok(Negotiated {
        codec,
        payload_type,
        dtmf_pt: dtmf_pt(m),
        ptime_ms,
        remote_rtp,
        remote_rtcp,
        rtcp_mux: m.rtcp_mux,
        direction,
        media_index: index,
        media_count: sd.media.len(),
    })
}

/// The address to stream to, from the `c=` in force for the chosen stream.
pub(super) fn remote_ip(conn: Option<&Connection<'_>>) -> Result<IpAddr, Rejection> {
    match conn {
        None => Err(Rejection::MissingConnection),
        Some(Connection::Unusable(_)) => Err(Rejection::UnusableAddress),
        Some(Connection::Ip(ip)) if ip.is_multicast() => Err(Rejection::UnusableAddress),
        Some(Connection::Ip(ip)) => Ok(*ip),
    }
}

/// Where RTP and RTCP go for a stream at `ip`:`port`.
pub(super) fn remote_endpoints(
    ip: IpAddr,
    port: u16,
    rtcp_mux: bool,
    rtcp: Option<RtcpAttr>,
) -> (SocketAddr, SocketAddr) {
    let remote_rtp = SocketAddr::new(ip, port);
    let remote_rtcp = if rtcp_mux {
        remote_rtp
    } else if let Some(rtcp) = rtcp {
        SocketAddr::new(rtcp.addr.unwrap_or(ip), rtcp.port)
    } else {
        // RFC 3550 §11: the next (odd) port. A peer offering 65535 gets RTCP on its RTP port.
        SocketAddr::new(ip, port.checked_add(1).unwrap_or(port))
    };
    (remote_rtp, remote_rtcp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ptime_rounding_and_bounds() {
        assert_eq!(choose_ptime(None, None, 20), 20);
        assert_eq!(choose_ptime(Some(30), None, 20), 30);
        assert_eq!(choose_ptime(Some(25), None, 20), 30);
        assert_eq!(choose_ptime(Some(24), None, 20), 20);
        assert_eq!(choose_ptime(Some(5), None, 20), 10);
        assert_eq!(choose_ptime(Some(0), None, 20), 10);
        assert_eq!(choose_ptime(Some(200), None, 20), 60);
        assert_eq!(choose_ptime(Some(u32::MAX), None, 20), 60);
        assert_eq!(choose_ptime(None, Some(10), 20), 10);
        assert_eq!(choose_ptime(None, Some(15), 20), 10);
        assert_eq!(choose_ptime(None, Some(40), 20), 20);
        assert_eq!(choose_ptime(Some(40), Some(30), 20), 30);
        assert_eq!(choose_ptime(None, Some(0), 20), 10);
    }

    #[test]
    fn dtmf_pt_matches_a_lookup_per_offered_format() {
        let reference = |m: &MediaDescription<'_>| {
            m.payload_types().find(|&pt| {
                m.rtpmap(pt).is_some_and(|map| {
                    map.encoding.eq_ignore_ascii_case("telephone-event")
                        && map.clock_rate == Codec::RTP_CLOCK
                })
            })
        };
        let te = "a=rtpmap:101 telephone-event/8000\n";
        for (formats, maps) in [
            ("0 101", te.to_string()),
            ("0", te.to_string()),
            ("0 101", "a=rtpmap:101 telephone-event/16000\n".to_string()),
            ("0 101", format!("a=rtpmap:101 PCMU/8000\n{te}")),
            ("0 101", format!("{te}a=rtpmap:101 PCMU/8000\n")),
            (
                "0 100 101",
                format!("{te}a=rtpmap:100 TELEPHONE-EVENT/8000\n"),
            ),
            (
                "0 101 100",
                format!("{te}a=rtpmap:100 telephone-event/8000\n"),
            ),
            (
                "0 100",
                format!("{te}{te}a=rtpmap:100 telephone-event/8000\n"),
            ),
            ("0 8", "a=rtpmap:8 PCMA/8000\n".to_string()),
            ("101 101", te.to_string()),
            ("+101 0", te.to_string()),
        ] {
            let body = format!("v=0\nm=audio 4000 RTP/AVP {formats}\n{maps}");
            let sd = crate::sdp::parse(body.as_bytes()).unwrap();
            let m = &sd.media[0];
            assert_eq!(dtmf_pt(m), reference(m), "{body:?}");
        }
    }

    #[test]
    fn rejection_is_always_488_with_a_warning() {
        for r in [
            Rejection::NoAudio,
            Rejection::NoCommonCodec,
            Rejection::SecureMediaUnsupported,
            Rejection::MissingConnection,
            Rejection::UnusableAddress,
        ] {
            assert_eq!(r.status_code(), 488);
            assert!((300..400).contains(&r.warning_code()));
            assert!(!r.to_string().is_empty());
        }
    }
}
