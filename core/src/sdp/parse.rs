//! The tolerant SDP reader. Refuses only what would make an answer wrong (no `v=` line, an
//! m-line without port or protocol, too many m-lines); everything else unknown or malformed is
//! skipped, as RFC 8866 §5 asks of unknown attributes.
//!
//! Fields are borrowed from the body: a description allocates its lists (m-lines, rtpmaps,
//! fmtps), never a field.

use std::borrow::Cow;

use super::Direction;
use super::{
    Connection, Fmtp, Formats, MediaDescription, Origin, RtcpAttr, RtpMap, SdpError,
    SessionDescription, MAX_MEDIA,
};
use crate::ascii::parse_ip;
use crate::scan::find_byte;

/// Parse an SDP body. Lines may end in CRLF or LF, the last one may lack it, and lines that are
/// not `<letter>=<value>` are ignored. Bytes that are not UTF-8 are read as U+FFFD.
pub fn parse(body: &[u8]) -> Result<SessionDescription<'_>, SdpError> {
    match std::str::from_utf8(body) {
        // Every SDP a phone sends: read in place.
        Ok(text) => parse_text(text),
        // Replacing invalid bytes in the whole body reads the same lines as replacing them line
        // by line: a line end is ASCII, so never part of an invalid sequence. The replaced text
        // is gone when this returns, so the description takes copies.
        Err(_) => parse_text(&String::from_utf8_lossy(body)).map(SessionDescription::into_owned),
    }
}

fn parse_text(text: &str) -> Result<SessionDescription<'_>, SdpError> {
    let mut reader = Reader::default();
    let mut rest = text;
    loop {
        // Cut at the line end (an ASCII byte, so a char boundary).
        let (raw, next) = match find_byte(rest.as_bytes(), b'\n') {
            Some(end) => (&rest[..end], Some(&rest[end + 1..])),
            None => (rest, None),
        };
        let raw = match raw.as_bytes().last() {
            Some(b'\r') => &raw[..raw.len() - 1],
            _ => raw,
        };
        reader.line(raw)?;
        match next {
            Some(next) => rest = next,
            None => break,
        }
    }
    if reader.seen_version {
        Ok(reader.sd)
    } else {
        Err(SdpError::NotSdp)
    }
}

#[derive(Default)]
struct Reader<'a> {
    sd: SessionDescription<'a>,
    seen_version: bool,
}

impl<'a> Reader<'a> {
    fn line(&mut self, line: &'a str) -> Result<(), SdpError> {
        let sd = &mut self.sd;
        let Some((kind, value)) = split_type(line) else {
            return Ok(());
        };
        if !self.seen_version {
            // RFC 8866 §5: v= comes first. Anything else means this body is not SDP.
            if kind != b'v' || value.trim() != "0" {
                return Err(SdpError::NotSdp);
            }
            self.seen_version = true;
            return Ok(());
        }
        match kind {
            b'o' if sd.media.is_empty() => sd.origin = parse_origin(value),
            b'c' => {
                let conn = parse_connection(value);
                match sd.media.last_mut() {
                    Some(m) => m.connection = Some(conn),
                    None => sd.connection = Some(conn),
                }
            }
            b'm' => {
                if sd.media.len() == MAX_MEDIA {
                    return Err(SdpError::TooManyMedia);
                }
                let index = sd.media.len();
                let media = parse_media(value).ok_or(SdpError::BadMediaLine { index })?;
                if sd.media.capacity() == 0 {
                    // Nearly every offer has one m-line: one exact allocation, not `push`'s
                    // grow path (which would reserve four).
                    sd.media.reserve_exact(1);
                }
                sd.media.push(media);
            }
            b'a' => {
                let (name, rest) = split_attribute(value);
                let attr = attribute(name);
                match sd.media.last_mut() {
                    Some(m) => media_attribute(m, attr, rest),
                    None => session_attribute(sd, attr, rest),
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// The type letter (lower-cased) and value of a `<letter>=<value>` line, after trimming it;
/// `None` for an empty line or any other shape.
fn split_type(line: &str) -> Option<(u8, &str)> {
    let trimmed = line.trim();
    let bytes = trimmed.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b'=' {
        Some((bytes[0].to_ascii_lowercase(), &trimmed[2..]))
    } else {
        None
    }
}

fn parse_origin(value: &str) -> Option<Origin<'_>> {
    let mut f = value.split_ascii_whitespace();
    let username = f.next()?;
    let session_id = f.next()?;
    let session_version = f.next()?;
    let _nettype = f.next()?;
    let _addrtype = f.next()?;
    let address = f.next()?;
    Some(Origin {
        username: Cow::Borrowed(username),
        session_id: Cow::Borrowed(session_id),
        session_version: Cow::Borrowed(session_version),
        address: Cow::Borrowed(address),
    })
}

/// `IN IP4 <addr>[/ttl[/count]]`. The address type is not checked against the address: the
/// address itself says which family it is.
fn parse_connection(value: &str) -> Connection<'_> {
    let mut f = value.split_ascii_whitespace();
    let (Some(_nettype), Some(_addrtype), Some(addr)) = (f.next(), f.next(), f.next()) else {
        return Connection::Unusable(Cow::Borrowed(value));
    };
    let host = addr.split('/').next().unwrap_or(addr);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match parse_ip(host) {
        Ok(ip) => Connection::Ip(ip),
        Err(_) => Connection::Unusable(Cow::Borrowed(addr)),
    }
}

/// `<media> <port>[/<count>] <proto> <fmt> …`
fn parse_media(value: &str) -> Option<MediaDescription<'_>> {
    let (media, rest) = field(value)?;
    let (port, rest) = field(rest)?;
    let port = number::<u16>(port.split('/').next()?)?;
    let (proto, formats_text) = field(rest)?;
    let formats = Formats::new(formats_text);
    // One rtpmap per format is the common shape (some phones send them for static types too),
    // so this is usually the only allocation the list needs. One more than the spaces counts
    // the formats closely enough for a capacity (one fewer left a grow for the last rtpmap).
    let expected_rtpmaps = (formats_text.bytes().filter(|&b| b == b' ').count() + 1).min(16);
    Some(MediaDescription {
        media: Cow::Borrowed(media),
        port,
        proto: Cow::Borrowed(proto),
        formats,
        connection: None,
        rtpmaps: Vec::with_capacity(expected_rtpmaps),
        fmtps: Vec::new(),
        ptime: None,
        maxptime: None,
        direction: None,
        rtcp: None,
        rtcp_mux: false,
        crypto: false,
    })
}

/// The first field of `s` (fields are separated by runs of ASCII white space, as
/// `split_ascii_whitespace` has them) and the text after it, where the next field starts.
fn field(s: &str) -> Option<(&str, &str)> {
    let b = s.as_bytes();
    let start = b.iter().position(|c| !c.is_ascii_whitespace())?;
    let end = b[start..]
        .iter()
        .position(u8::is_ascii_whitespace)
        .map_or(b.len(), |n| start + n);
    // Both cuts are next to ASCII bytes (or the ends), so on char boundaries.
    Some((&s[start..end], &s[end..]))
}

fn split_attribute(value: &str) -> (&str, &str) {
    match value.as_bytes().iter().position(|&b| b == b':') {
        Some(colon) => (value[..colon].trim(), value[colon + 1..].trim()),
        None => (value.trim(), ""),
    }
}

/// The attributes we act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Attribute {
    Direction(Direction),
    Ptime,
    MaxPtime,
    RtpMap,
    Fmtp,
    Rtcp,
    RtcpMux,
    Crypto,
    Other,
}

/// What an attribute name stands for, compared case-insensitively. A name of at most eight
/// bytes is read as one word and compared with each known name in one step: setting bit 5
/// (`| 0x20`) of a byte lower-cases an ASCII letter, and it is set only where the known name
/// has a letter, so `x | mask == name` holds exactly when `x.eq_ignore_ascii_case(name)` does
/// (where the name has `-`, only `-` matches). Ten string comparisons per line were a tenth
/// of reading an offer.
fn attribute(name: &str) -> Attribute {
    attribute_bytes(name.as_bytes())
}

/// [`attribute`] of a name given as bytes.
pub(super) fn attribute_bytes(b: &[u8]) -> Attribute {
    /// `name` (lower case, at most 8 bytes) as a little-endian word, and the mask of its letters.
    const fn key(name: &str) -> (usize, u64, u64) {
        let b = name.as_bytes();
        let (mut word, mut mask, mut i) = (0u64, 0u64, 0);
        while i < b.len() {
            word |= (b[i] as u64) << (8 * i);
            if b[i].is_ascii_lowercase() {
                mask |= 0x20 << (8 * i);
            }
            i += 1;
        }
        (b.len(), word, mask)
    }
    const KNOWN: [((usize, u64, u64), Attribute); 11] = [
        (key("rtpmap"), Attribute::RtpMap),
        (key("fmtp"), Attribute::Fmtp),
        (key("ptime"), Attribute::Ptime),
        (key("sendrecv"), Attribute::Direction(Direction::SendRecv)),
        (key("sendonly"), Attribute::Direction(Direction::SendOnly)),
        (key("recvonly"), Attribute::Direction(Direction::RecvOnly)),
        (key("inactive"), Attribute::Direction(Direction::Inactive)),
        (key("maxptime"), Attribute::MaxPtime),
        (key("rtcp"), Attribute::Rtcp),
        (key("rtcp-mux"), Attribute::RtcpMux),
        (key("crypto"), Attribute::Crypto),
    ];
    // Every known name has four to eight bytes.
    if !(4..=8).contains(&b.len()) {
        return Attribute::Other;
    }
    // The name as a word from two overlapping four-byte loads (the overlap ORs bytes with
    // themselves), each of a fixed size.
    let four = |at: usize| u64::from(u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]));
    let x = four(0) | four(b.len() - 4) << (8 * (b.len() - 4));
    KNOWN
        .iter()
        .find(|((len, word, mask), _)| *len == b.len() && x | mask == *word)
        .map_or(Attribute::Other, |(_, attr)| *attr)
}

fn session_attribute(sd: &mut SessionDescription<'_>, attr: Attribute, rest: &str) {
    match attr {
        Attribute::Direction(d) => sd.direction = Some(d),
        Attribute::Ptime => sd.ptime = leading_number(rest).or(sd.ptime),
        _ => {}
    }
}

fn media_attribute<'a>(m: &mut MediaDescription<'a>, attr: Attribute, rest: &'a str) {
    match attr {
        Attribute::Direction(d) => m.direction = Some(d),
        Attribute::RtpMap => {
            if let Some(map) = parse_rtpmap(rest) {
                m.rtpmaps.push(map);
            }
        }
        Attribute::Fmtp => {
            if let Some((pt, params)) = split_at_space(rest) {
                if let Some(payload_type) = payload_type(pt) {
                    m.fmtps.push(Fmtp {
                        payload_type,
                        params: Cow::Borrowed(params.trim()),
                    });
                }
            }
        }
        Attribute::Ptime => m.ptime = leading_number(rest).or(m.ptime),
        Attribute::MaxPtime => m.maxptime = leading_number(rest).or(m.maxptime),
        Attribute::Rtcp => m.rtcp = parse_rtcp(rest).or(m.rtcp),
        Attribute::RtcpMux => m.rtcp_mux = true,
        Attribute::Crypto => m.crypto = true,
        Attribute::Other => {}
    }
}

/// A format as an RTP payload type number (`str::parse::<u8>`; the caller checks < 128).
pub(super) fn payload_type_number(s: &str) -> Option<u8> {
    number::<u8>(s)
}

fn payload_type(s: &str) -> Option<u8> {
    number::<u8>(s).filter(|pt| *pt < 128)
}

/// `<pt> <name>/<clock>[/<channels>]`
fn parse_rtpmap(rest: &str) -> Option<RtpMap<'_>> {
    let (pt, enc) = split_at_space(rest)?;
    let payload_type = payload_type(pt)?;
    // `<name>/<clock>[/<channels>[/…]]`: anything after a third `/` is ignored.
    let (encoding, clock) = enc.trim().split_once('/')?;
    let (clock, channels) = match clock.split_once('/') {
        Some((clock, more)) => (clock, Some(more.split_once('/').map_or(more, |c| c.0))),
        None => (clock, None),
    };
    let clock_rate = number(clock.trim())?;
    let channels = match channels {
        Some(c) => Some(number(c.trim())?),
        None => None,
    };
    let encoding = Cow::Borrowed(encoding);
    Some(RtpMap {
        payload_type,
        encoding,
        clock_rate,
        channels,
    })
}

/// `<port> [IN IP4 <addr>]` (RFC 3605 §2.1).
fn parse_rtcp(rest: &str) -> Option<RtcpAttr> {
    let mut f = rest.split_ascii_whitespace();
    let port = number(f.next()?)?;
    let addr = match (f.next(), f.next(), f.next()) {
        (Some(_), Some(_), Some(a)) => a.parse().ok(),
        _ => None,
    };
    Some(RtcpAttr { port, addr })
}

/// An unsigned integer as SDP carries it: an optional `+`, then decimal digits, no overflow
/// (`str::parse` of an unsigned type).
fn number<T: std::str::FromStr>(s: &str) -> Option<T> {
    s.parse().ok()
}

/// `s` split at its first ASCII white space.
fn split_at_space(s: &str) -> Option<(&str, &str)> {
    s.split_once(|c: char| c.is_ascii_whitespace())
}

/// The integer at the start of `s`: `20`, and also `20.0` or `20 ms` as some phones write it.
fn leading_number(s: &str) -> Option<u32> {
    let end = s
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(s.len());
    number(&s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> SessionDescription<'_> {
        parse(s.as_bytes()).expect("parses")
    }

    #[test]
    fn rejects_bodies_that_are_not_sdp() {
        assert_eq!(parse(b""), Err(SdpError::NotSdp));
        assert_eq!(parse(b"hello\r\n"), Err(SdpError::NotSdp));
        assert_eq!(
            parse(b"o=x 1 1 IN IP4 1.2.3.4\r\nv=0\r\n"),
            Err(SdpError::NotSdp)
        );
        assert_eq!(parse(b"v=1\r\n"), Err(SdpError::NotSdp));
    }

    #[test]
    fn malformed_m_line_names_its_index() {
        let r = parse(b"v=0\r\nm=audio 5004 RTP/AVP 0\r\nm=video x RTP/AVP 96\r\n");
        assert_eq!(r, Err(SdpError::BadMediaLine { index: 1 }));
        let r = parse(b"v=0\r\nm=audio 5004\r\n");
        assert_eq!(r, Err(SdpError::BadMediaLine { index: 0 }));
    }

    #[test]
    fn too_many_m_lines_are_refused() {
        let mut s = String::from("v=0\r\n");
        for _ in 0..=MAX_MEDIA {
            s.push_str("m=audio 0 RTP/AVP 0\r\n");
        }
        assert_eq!(parse(s.as_bytes()), Err(SdpError::TooManyMedia));
    }

    #[test]
    fn attribute_words_match_eq_ignore_ascii_case() {
        let names = [
            ("rtpmap", Attribute::RtpMap),
            ("fmtp", Attribute::Fmtp),
            ("ptime", Attribute::Ptime),
            ("sendrecv", Attribute::Direction(Direction::SendRecv)),
            ("sendonly", Attribute::Direction(Direction::SendOnly)),
            ("recvonly", Attribute::Direction(Direction::RecvOnly)),
            ("inactive", Attribute::Direction(Direction::Inactive)),
            ("maxptime", Attribute::MaxPtime),
            ("rtcp", Attribute::Rtcp),
            ("rtcp-mux", Attribute::RtcpMux),
            ("crypto", Attribute::Crypto),
        ];
        let reference = |s: &str| {
            names
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(s))
                .map_or(Attribute::Other, |(_, a)| *a)
        };
        let mut tried = vec![
            String::new(),
            "rtcp\rmux".into(),
            "rtcp\u{d}mux".into(),
            "rtcp mux".into(),
            "rtcpmux".into(),
            "rtpmap\0".into(),
            "rtpmapx".into(),
            "rtpma".into(),
            "ptime\u{e9}".into(),
            "PTIMÉ".into(),
            "sendrecvsendrecv".into(),
        ];
        for (n, _) in names {
            tried.push(n.into());
            tried.push(n.to_ascii_uppercase());
            // Every byte flipped in bit 5, one at a time (letters change case, `-` becomes `\r`).
            for i in 0..n.len() {
                let mut b = n.as_bytes().to_vec();
                b[i] ^= 0x20;
                b[i] ^= 0x40;
                tried.push(String::from_utf8_lossy(&b).into_owned());
                b[i] ^= 0x40;
                tried.push(String::from_utf8_lossy(&b).into_owned());
            }
        }
        for s in &tried {
            assert_eq!(attribute(s), reference(s), "{s:?}");
        }
    }

    #[test]
    fn connection_forms() {
        assert_eq!(
            parse_connection("IN IP4 224.2.1.1/127/3"),
            Connection::Ip("224.2.1.1".parse().unwrap())
        );
        assert_eq!(
            parse_connection("IN IP6 ::1"),
            Connection::Ip("::1".parse().unwrap())
        );
        assert_eq!(
            parse_connection("IN IP4 media.example.com"),
            Connection::Unusable("media.example.com".into())
        );
        assert_eq!(parse_connection("IN"), Connection::Unusable("IN".into()));
    }

    #[test]
    fn attributes_land_at_their_level() {
        let sd = p("v=0\na=recvonly\na=ptime:30\nm=audio 4000 RTP/AVP 0 96\n\
                    a=rtpmap:96 telephone-event/8000\na=fmtp:96 0-16\na=maxptime:40\n\
                    a=rtcp:4011 IN IP4 10.0.0.9\na=rtcp-mux\na=crypto:1 AES_CM_128_HMAC_SHA1_80 \
                    inline:abc\na=sendonly\na=x-unknown:1\nm=video 0 RTP/AVP 31");
        assert_eq!(sd.direction, Some(Direction::RecvOnly));
        assert_eq!(sd.ptime, Some(30));
        let a = &sd.media[0];
        assert_eq!(a.direction, Some(Direction::SendOnly));
        assert_eq!(a.maxptime, Some(40));
        assert_eq!(a.ptime, None);
        assert_eq!(sd.ptime_for(0), Some(30));
        assert_eq!(
            a.rtpmap(96),
            Some(&RtpMap {
                payload_type: 96,
                encoding: "telephone-event".into(),
                clock_rate: 8000,
                channels: None
            })
        );
        assert_eq!(a.fmtps[0].params, "0-16");
        assert_eq!(
            a.rtcp,
            Some(RtcpAttr {
                port: 4011,
                addr: Some("10.0.0.9".parse().unwrap())
            })
        );
        assert!(a.rtcp_mux && a.crypto);
        assert_eq!(sd.media[1].formats, vec!["31".to_string()]);
        assert_eq!(sd.media[1].direction, None);
        assert_eq!(sd.direction_for(1), Direction::RecvOnly);
    }

    #[test]
    fn odd_numbers_and_malformed_attributes_are_tolerated() {
        let sd = p(
            "v=0\r\nm=audio 4000/2 RTP/AVP 0 xyz 200\r\na=ptime:20.0\r\n\
                    a=rtpmap:200 FOO/8000\r\na=rtpmap:9\r\na=rtpmap:97 opus/48000/2\r\n\
                    a=rtcp:\r\n  \r\ngarbage line\r\n",
        );
        let a = &sd.media[0];
        assert_eq!(a.port, 4000);
        assert_eq!(a.ptime, Some(20));
        assert_eq!(a.payload_types().collect::<Vec<_>>(), vec![0]);
        assert_eq!(a.rtpmaps.len(), 1);
        assert_eq!(a.rtpmaps[0].channels, Some(2));
        assert_eq!(a.rtcp, None);
    }
}
