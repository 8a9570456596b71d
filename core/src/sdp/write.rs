//! Our side of offer/answer, serialised with CRLF line endings into a caller-owned buffer.

use std::io::Write;
use std::net::IpAddr;

use super::{direction_attribute, AnswerPrefs, Negotiated, SessionDescription, OFFER_DTMF_PT};
use crate::codec::Codec;
use crate::server::Direction;

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

/// Write the answer to `offer` as negotiated in `neg`: one m-line per offered m-line, in order,
/// every one but the chosen one rejected with port 0 (RFC 3264 §6).
pub fn write_answer(
    offer: &SessionDescription,
    neg: &Negotiated,
    local: &LocalMedia<'_>,
    out: &mut Vec<u8>,
) {
    write_session(local, out);
    for (index, m) in offer.media.iter().enumerate() {
        if index == neg.media_index {
            // RFC 3264 §6.1: the answer's proto matches the offer's. RTP/AVPF only adds
            // feedback, which we may leave unused (RFC 4585 §3.2).
            let proto = if m.is_plain_rtp() {
                m.proto.as_str()
            } else {
                "RTP/AVP"
            };
            write_audio(
                out,
                local.rtp_port,
                proto,
                &[(neg.codec, neg.payload_type)],
                neg.dtmf_pt,
                neg.ptime_ms,
                neg.direction,
            );
            if neg.rtcp_mux {
                line(out, format_args!("a=rtcp-mux"));
            }
        } else {
            let _ = write!(out, "m={} 0 {}", m.media, m.proto);
            if m.formats.is_empty() {
                // RFC 8866 §5.14 wants at least one format, even on a rejected stream.
                out.extend_from_slice(b" 0");
            }
            for f in &m.formats {
                let _ = write!(out, " {f}");
            }
            out.extend_from_slice(b"\r\n");
        }
    }
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
    write_audio(
        out,
        local.rtp_port,
        "RTP/AVP",
        &codecs,
        Some(OFFER_DTMF_PT),
        ptime_ms,
        direction,
    );
}

fn line(out: &mut Vec<u8>, args: std::fmt::Arguments<'_>) {
    // Writing into a Vec cannot fail.
    let _ = out.write_fmt(args);
    out.extend_from_slice(b"\r\n");
}

fn write_session(local: &LocalMedia<'_>, out: &mut Vec<u8>) {
    let family = match local.addr {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    };
    let user = local.username;
    let user = if user.is_empty() || user.chars().any(|c| c.is_whitespace() || c.is_control()) {
        "-"
    } else {
        user
    };
    line(out, format_args!("v=0"));
    line(
        out,
        format_args!(
            "o={user} {} {} IN {family} {}",
            local.session_id, local.session_version, local.addr
        ),
    );
    line(out, format_args!("s=onhold"));
    line(out, format_args!("c=IN {family} {}", local.addr));
    line(out, format_args!("t=0 0"));
}

fn write_audio(
    out: &mut Vec<u8>,
    port: u16,
    proto: &str,
    codecs: &[(Codec, u8)],
    dtmf_pt: Option<u8>,
    ptime_ms: u32,
    direction: Direction,
) {
    let _ = write!(out, "m=audio {port} {proto}");
    for (_, pt) in codecs {
        let _ = write!(out, " {pt}");
    }
    if let Some(pt) = dtmf_pt {
        let _ = write!(out, " {pt}");
    }
    out.extend_from_slice(b"\r\n");
    for (codec, pt) in codecs {
        line(
            out,
            format_args!("a=rtpmap:{pt} {codec}/{}", Codec::RTP_CLOCK),
        );
    }
    if let Some(pt) = dtmf_pt {
        line(out, format_args!("a=rtpmap:{pt} telephone-event/8000"));
        line(out, format_args!("a=fmtp:{pt} 0-15"));
    }
    line(out, format_args!("a=ptime:{ptime_ms}"));
    line(out, format_args!("a={}", direction_attribute(direction)));
}
