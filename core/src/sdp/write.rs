//! Our side of offer/answer, serialised with CRLF line endings into a caller-owned buffer.

use std::net::IpAddr;

#[cfg(test)]
use super::direction_attribute;
use super::Direction;
use super::{AnswerPrefs, MediaDescription, Negotiated, SessionDescription, OFFER_DTMF_PT};
use crate::ascii::{ip_bytes, push_decimal, push_octet, push_octet_after, IpBuf};
use crate::codec::Codec;

/// Our media endpoint and `o=` identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalMedia<'a> {
    /// The address written in `o=` and `c=`; its family picks `IP4`/`IP6`.
    pub addr: IpAddr,
    pub rtp_port: u16,
    pub session_id: u64,
    /// RFC 3264 §8: the server increments this for every changed description in a dialog.
    pub session_version: u64,
    /// `o=` username; anything empty or with whitespace is written as `-`.
    pub username: &'a str,
}

/// What a music class adds to our SDP, offer or answer: bandwidth lines on our audio stream
/// and attributes of its own. The lines offer/answer depends on (rtpmap, fmtp, ptime,
/// direction, rtcp-mux) stay ours: the configuration refuses them here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extras {
    /// `b=AS:<kbit/s>` (RFC 8866 §5.8).
    pub bandwidth_as: Option<u32>,
    /// `b=TIAS:<bit/s>` (RFC 3890).
    pub bandwidth_tias: Option<u32>,
    /// `a=` lines after `t=` (each value without the `a=`).
    pub session_attributes: Vec<String>,
    /// `a=` lines at the end of our audio stream's lines.
    pub media_attributes: Vec<String>,
}

impl Extras {
    pub const NONE: Extras = Extras {
        bandwidth_as: None,
        bandwidth_tias: None,
        session_attributes: Vec::new(),
        media_attributes: Vec::new(),
    };

    /// After `t=`: the session attributes.
    fn write_session(&self, out: &mut Vec<u8>) {
        for a in &self.session_attributes {
            push_attribute(out, a);
        }
    }

    /// Right after our `m=` line (RFC 8866 §5: `b=` comes before `a=`; our stream has no
    /// `c=` of its own).
    fn write_bandwidth(&self, out: &mut Vec<u8>) {
        if let Some(kbps) = self.bandwidth_as {
            out.extend_from_slice(b"b=AS:");
            push_decimal(out, u64::from(kbps));
            out.extend_from_slice(b"\r\n");
        }
        if let Some(bps) = self.bandwidth_tias {
            out.extend_from_slice(b"b=TIAS:");
            push_decimal(out, u64::from(bps));
            out.extend_from_slice(b"\r\n");
        }
    }

    fn write_media(&self, out: &mut Vec<u8>) {
        for a in &self.media_attributes {
            push_attribute(out, a);
        }
    }
}

fn push_attribute(out: &mut Vec<u8>, value: &str) {
    out.extend_from_slice(b"a=");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Write the answer to `offer` as negotiated in `neg`: one m-line per offered m-line, in order,
/// every one but the chosen one rejected with port 0 (RFC 3264 §6).
pub fn write_answer(
    offer: &SessionDescription<'_>,
    neg: &Negotiated,
    local: &LocalMedia<'_>,
    out: &mut Vec<u8>,
) {
    AnswerLayout::new(offer, neg).write(neg, local, out);
}

/// What an answer repeats of its offer: the m-lines it rejects, already written as rejected
/// lines, and the protocol of the one it accepts. The server keeps this instead of the offer
/// while the runtime binds the RTP port the answer names; for the usual offer of one audio line
/// it holds nothing on the heap.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnswerLayout {
    /// The rejected m-lines (`m=video 0 RTP/AVP 96` CRLF) in offer order.
    rejected: Box<[u8]>,
    /// How many bytes of `rejected` come before the accepted m-line (u32: the layout is kept
    /// in every answering call).
    before: u32,
    /// The accepted m-line's protocol (at most `RTP/AVPF`, 8 bytes), as `proto_len` bytes;
    /// none when `neg` named no m-line of the offer.
    proto: [u8; 8],
    proto_len: u8,
}

impl AnswerLayout {
    /// The layout of the answer to `offer` as negotiated in `neg`.
    pub fn new(offer: &SessionDescription<'_>, neg: &Negotiated) -> AnswerLayout {
        let mut layout = AnswerLayout::default();
        let mut rejected = Vec::new();
        for (index, m) in offer.media.iter().enumerate() {
            if index == neg.media_index {
                // RFC 3264 §6.1: the answer's proto matches the offer's. RTP/AVPF only adds
                // feedback, which we may leave unused (RFC 4585 §3.2).
                let proto = if m.is_plain_rtp() {
                    m.proto.as_bytes()
                } else {
                    b"RTP/AVP"
                };
                // A plain RTP proto equals an ASCII name of at most 8 bytes, so it fits.
                layout.proto[..proto.len()].copy_from_slice(proto);
                layout.proto_len = proto.len() as u8;
                // Rejected lines are at most a few bytes longer than in the body they came from.
                layout.before = rejected.len() as u32;
            } else {
                write_rejected(m, &mut rejected);
            }
        }
        layout.rejected = rejected.into_boxed_slice();
        layout
    }

    /// The layout of the answer to an offer of one m-line, accepted with its protocol `proto`
    /// (plain RTP, [`MediaDescription::is_plain_rtp`]): what [`AnswerLayout::new`] makes of
    /// such an offer, without the offer.
    pub(super) fn single(proto: &[u8]) -> AnswerLayout {
        let mut layout = AnswerLayout::default();
        layout.proto[..proto.len()].copy_from_slice(proto);
        layout.proto_len = proto.len() as u8;
        layout
    }

    /// Write the answer: our session lines, then the offer's m-lines with ours in its place.
    pub fn write(&self, neg: &Negotiated, local: &LocalMedia<'_>, out: &mut Vec<u8>) {
        self.write_with(neg, local, &Extras::NONE, out);
    }

    /// [`AnswerLayout::write`] with a class's `extras`.
    pub fn write_with(
        &self,
        neg: &Negotiated,
        local: &LocalMedia<'_>,
        extras: &Extras,
        out: &mut Vec<u8>,
    ) {
        write_session(local, out);
        extras.write_session(out);
        let before = self.before as usize;
        out.extend_from_slice(&self.rejected[..before]);
        if self.proto_len > 0 {
            write_audio(
                out,
                local.rtp_port,
                (&self.proto, self.proto_len as usize),
                &[(neg.codec, neg.payload_type)],
                neg.dtmf_pt,
                neg.ptime_ms,
                neg.direction,
                extras,
            );
            if neg.rtcp_mux {
                out.extend_from_slice(b"a=rtcp-mux\r\n");
            }
            extras.write_media(out);
        }
        out.extend_from_slice(&self.rejected[before..]);
    }
}

/// An offered m-line as rejected in the answer: port 0, everything else as offered.
fn write_rejected(m: &MediaDescription<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"m=");
    out.extend_from_slice(m.media.as_bytes());
    out.extend_from_slice(b" 0 ");
    out.extend_from_slice(m.proto.as_bytes());
    if m.formats.is_empty() {
        // RFC 8866 §5.14 wants at least one format, even on a rejected stream.
        out.extend_from_slice(b" 0");
    }
    for f in m.formats.iter() {
        out.push(b' ');
        out.extend_from_slice(f.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// Write our offer for a late-offer INVITE (no SDP: our offer goes in the 200 OK and the answer
/// comes in the ACK): every codec in `prefs` (all we support when empty) with its static payload
/// type, plus telephone-event on [`OFFER_DTMF_PT`].
pub fn write_offer(
    local: &LocalMedia<'_>,
    prefs: &AnswerPrefs,
    ptime_ms: u32,
    direction: Direction,
    out: &mut Vec<u8>,
) {
    write_offer_with(local, prefs, ptime_ms, direction, &Extras::NONE, out);
}

/// [`write_offer`] with a class's `extras`.
pub fn write_offer_with(
    local: &LocalMedia<'_>,
    prefs: &AnswerPrefs,
    ptime_ms: u32,
    direction: Direction,
    extras: &Extras,
    out: &mut Vec<u8>,
) {
    let mut codecs: Vec<(Codec, u8)> = Vec::with_capacity(Codec::ALL.len());
    let wanted: &[Codec] = if prefs.codecs.is_empty() {
        &Codec::ALL
    } else {
        &prefs.codecs
    };
    for &c in wanted {
        if !codecs.iter().any(|(have, _)| *have == c) {
            codecs.push((c, c.static_pt()));
        }
    }
    write_session(local, out);
    extras.write_session(out);
    write_audio(
        out,
        local.rtp_port,
        (b"RTP/AVP\0", 7),
        &codecs,
        Some(OFFER_DTMF_PT),
        ptime_ms,
        direction,
        extras,
    );
    extras.write_media(out);
}

// Written with plain byte pushes, not through `fmt`: a body is written for every call.

fn write_session(local: &LocalMedia<'_>, out: &mut Vec<u8>) {
    // The address family's spelling, with the text around it in each of its two places.
    let (in_family, c_in_family): (&[u8; 8], &[u8; 21]) = match local.addr {
        IpAddr::V4(_) => (b" IN IP4 ", b"\r\ns=onhold\r\nc=IN IP4 "),
        IpAddr::V6(_) => (b" IN IP6 ", b"\r\ns=onhold\r\nc=IN IP6 "),
    };
    let user = local.username;
    // Printable ASCII (always, in practice) has no white space or control character; only
    // anything else needs the char-by-char test.
    let plain = !user.is_empty() && user.bytes().all(|b| b.is_ascii_graphic());
    let user = if plain { user } else { other_username(user) };
    out.extend_from_slice(b"v=0\r\no=");
    out.extend_from_slice(user.as_bytes());
    out.push(b' ');
    push_decimal(out, local.session_id);
    out.push(b' ');
    push_decimal(out, local.session_version);
    out.extend_from_slice(in_family);
    // The address is written once and copied for `c=`.
    let mut ip_buf: IpBuf = [0; 48];
    let ip = ip_bytes(local.addr, &mut ip_buf);
    out.extend_from_slice(ip);
    out.extend_from_slice(c_in_family);
    out.extend_from_slice(ip);
    out.extend_from_slice(b"\r\nt=0 0\r\n");
}

/// The `o=` username for one that is not all printable ASCII: `-` for an empty one or one
/// with white space or a control character (apart: Unicode's white space test is long code
/// that the usual name never needs).
#[cold]
#[inline(never)]
fn other_username(user: &str) -> &str {
    if user.is_empty() || user.chars().any(|c| c.is_whitespace() || c.is_control()) {
        "-"
    } else {
        user
    }
}

/// `proto` is the m-line's protocol as its first `.1` bytes of eight (copied as one piece).
#[allow(clippy::too_many_arguments)]
fn write_audio(
    out: &mut Vec<u8>,
    port: u16,
    proto: (&[u8; 8], usize),
    codecs: &[(Codec, u8)],
    dtmf_pt: Option<u8>,
    ptime_ms: u32,
    direction: Direction,
    extras: &Extras,
) {
    out.extend_from_slice(b"m=audio ");
    push_decimal(out, port as u64);
    out.push(b' ');
    out.extend_from_slice(proto.0);
    out.truncate(out.len() - 8 + proto.1);
    for (_, pt) in codecs {
        push_octet_after(out, b' ', *pt);
    }
    if let Some(pt) = dtmf_pt {
        push_octet_after(out, b' ', pt);
    }
    out.extend_from_slice(b"\r\n");
    extras.write_bandwidth(out);
    for (codec, pt) in codecs {
        out.extend_from_slice(b"a=rtpmap:");
        push_octet(out, *pt);
        out.extend_from_slice(rtpmap_tail(*codec));
    }
    if let Some(pt) = dtmf_pt {
        out.extend_from_slice(b"a=rtpmap:");
        push_octet(out, pt);
        out.extend_from_slice(b" telephone-event/8000\r\na=fmtp:");
        push_octet(out, pt);
        out.extend_from_slice(b" 0-15\r\n");
    }
    out.extend_from_slice(b"a=ptime:");
    push_decimal(out, u64::from(ptime_ms));
    out.extend_from_slice(direction_line(direction));
}

/// What follows the payload type in a codec's rtpmap line: ` <encoding name>/8000` CRLF, as
/// one fixed-size piece.
fn rtpmap_tail(codec: Codec) -> &'static [u8; 12] {
    match codec {
        Codec::Pcmu => b" PCMU/8000\r\n",
        Codec::Pcma => b" PCMA/8000\r\n",
        Codec::G722 => b" G722/8000\r\n",
    }
}

/// `a=<direction_attribute>` CRLF after the CRLF of the line before it, as one fixed-size
/// piece.
fn direction_line(d: Direction) -> &'static [u8; 14] {
    match d {
        Direction::SendRecv => b"\r\na=sendrecv\r\n",
        Direction::SendOnly => b"\r\na=sendonly\r\n",
        Direction::RecvOnly => b"\r\na=recvonly\r\n",
        Direction::Inactive => b"\r\na=inactive\r\n",
    }
}

// The clock rate written as text in every rtpmap above.
const _: () = assert!(Codec::RTP_CLOCK == 8000);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_pieces_match_their_names() {
        for codec in Codec::ALL {
            let tail = format!(" {}/{}\r\n", codec.encoding_name(), Codec::RTP_CLOCK);
            assert_eq!(&rtpmap_tail(codec)[..], tail.as_bytes());
        }
        for d in [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ] {
            let line = format!("\r\na={}\r\n", direction_attribute(d));
            assert_eq!(&direction_line(d)[..], line.as_bytes());
        }
    }
}
