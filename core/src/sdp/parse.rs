//! The tolerant SDP reader. Refuses only what would make an answer wrong (no `v=` line, an
//! m-line without port or protocol, too many m-lines); everything else unknown or malformed is
//! skipped, as RFC 8866 §5 asks of unknown attributes.

use super::{
    Connection, Fmtp, MediaDescription, Origin, RtcpAttr, RtpMap, SdpError, SessionDescription,
    MAX_MEDIA,
};
use crate::server::ascii::parse_ip;
use crate::server::Direction;

/// Parse an SDP body. Lines may end in CRLF or LF, the last one may lack it, and lines that are
/// not `<letter>=<value>` are ignored.
pub fn parse(body: &[u8]) -> Result<SessionDescription, SdpError> {
    let mut reader = Reader::default();
    match std::str::from_utf8(body) {
        // Every SDP a phone sends: read in place, line by line.
        Ok(text) => {
            for raw in split_ascii(text, b'\n') {
                reader.line(raw.strip_suffix('\r').unwrap_or(raw))?;
            }
        }
        // Invalid bytes become U+FFFD, line by line, as before.
        Err(_) => {
            for raw in body.split(|&b| b == b'\n') {
                let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
                reader.line(&String::from_utf8_lossy(raw))?;
            }
        }
    }
    if reader.seen_version {
        Ok(reader.sd)
    } else {
        Err(SdpError::NotSdp)
    }
}

#[derive(Default)]
struct Reader {
    sd: SessionDescription,
    seen_version: bool,
}

impl Reader {
    fn line(&mut self, line: &str) -> Result<(), SdpError> {
        let sd = &mut self.sd;
        let line = trim(line);
        if line.is_empty() {
            return Ok(());
        }
        let Some((kind, value)) = split_type(line) else {
            return Ok(());
        };
        if !self.seen_version {
            // RFC 8866 §5: v= comes first. Anything else means this body is not SDP.
            if kind != b'v' || trim(value) != "0" {
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
                sd.media.push(media);
            }
            b'a' => match sd.media.last_mut() {
                Some(m) => media_attribute(m, value),
                None => session_attribute(sd, value),
            },
            _ => {}
        }
        Ok(())
    }
}

/// `str::trim`, returning at once when both ends are ASCII and not whitespace (nearly every
/// SDP line and field): an ASCII last byte is a whole char, so nothing could be trimmed there.
fn trim(s: &str) -> &str {
    match (s.as_bytes().first(), s.as_bytes().last()) {
        (Some(&a), Some(&z)) if a.is_ascii_graphic() && z.is_ascii_graphic() => s,
        _ => s.trim(),
    }
}

/// `s.split(sep)` for an ASCII separator, walking bytes: the `char` searcher behind
/// `str::split` costs several times more on these short lines and fields. Slicing at an ASCII
/// byte always lands on a char boundary.
fn split_ascii(s: &str, sep: u8) -> impl Iterator<Item = &str> {
    let mut next = Some(0);
    std::iter::from_fn(move || {
        let from = next?;
        match s.as_bytes()[from..].iter().position(|&b| b == sep) {
            Some(p) => {
                next = Some(from + p + 1);
                Some(&s[from..from + p])
            }
            None => {
                next = None;
                Some(&s[from..])
            }
        }
    })
}

fn split_type(line: &str) -> Option<(u8, &str)> {
    let bytes = line.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b'=' {
        Some((bytes[0].to_ascii_lowercase(), &line[2..]))
    } else {
        None
    }
}

fn parse_origin(value: &str) -> Option<Origin> {
    let mut f = value.split_ascii_whitespace();
    let username = f.next()?.to_owned();
    let session_id = f.next()?.to_owned();
    let session_version = f.next()?.to_owned();
    let _nettype = f.next()?;
    let _addrtype = f.next()?;
    let address = f.next()?.to_owned();
    Some(Origin {
        username,
        session_id,
        session_version,
        address,
    })
}

/// `IN IP4 <addr>[/ttl[/count]]`. The address type is not checked against the address: the
/// address itself says which family it is.
fn parse_connection(value: &str) -> Connection {
    let mut f = value.split_ascii_whitespace();
    let (Some(_nettype), Some(_addrtype), Some(addr)) = (f.next(), f.next(), f.next()) else {
        return Connection::Unusable(value.to_owned());
    };
    let host = split_ascii(addr, b'/').next().unwrap_or(addr);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match parse_ip(host) {
        Ok(ip) => Connection::Ip(ip),
        Err(_) => Connection::Unusable(addr.to_owned()),
    }
}

/// `<media> <port>[/<count>] <proto> <fmt> …`
fn parse_media(value: &str) -> Option<MediaDescription> {
    let mut f = value.split_ascii_whitespace();
    let media = f.next()?.to_owned();
    let port = f.next()?;
    let port = number::<u16>(split_ascii(port, b'/').next()?)?;
    let proto = f.next()?.to_owned();
    // Sized up front: one allocation for the list instead of a grow per few formats.
    let mut formats = Vec::with_capacity(f.clone().count());
    formats.extend(f.map(str::to_owned));
    let expected_rtpmaps = formats.len().min(16);
    Some(MediaDescription {
        media,
        port,
        proto,
        formats,
        connection: None,
        // One rtpmap per format is the common shape (some phones send them for static types
        // too), so this is usually the only allocation the list needs.
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

fn split_attribute(value: &str) -> (&str, &str) {
    match value.as_bytes().iter().position(|&b| b == b':') {
        Some(colon) => (trim(&value[..colon]), trim(&value[colon + 1..])),
        None => (trim(value), ""),
    }
}

fn direction(name: &str) -> Option<Direction> {
    const TABLE: [(&str, Direction); 4] = [
        ("sendrecv", Direction::SendRecv),
        ("sendonly", Direction::SendOnly),
        ("recvonly", Direction::RecvOnly),
        ("inactive", Direction::Inactive),
    ];
    TABLE
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, d)| *d)
}

fn session_attribute(sd: &mut SessionDescription, value: &str) {
    let (name, rest) = split_attribute(value);
    if let Some(d) = direction(name) {
        sd.direction = Some(d);
    } else if name.eq_ignore_ascii_case("ptime") {
        sd.ptime = leading_number(rest).or(sd.ptime);
    }
}

fn media_attribute(m: &mut MediaDescription, value: &str) {
    let (name, rest) = split_attribute(value);
    if let Some(d) = direction(name) {
        m.direction = Some(d);
        return;
    }
    // Attribute names compare case-insensitively without a lower-cased copy per line.
    let is = |n: &str| name.eq_ignore_ascii_case(n);
    if is("rtpmap") {
        if let Some(map) = parse_rtpmap(rest) {
            m.rtpmaps.push(map);
        }
    } else if is("fmtp") {
        if let Some((pt, params)) = split_at_space(rest) {
            if let Some(payload_type) = payload_type(pt) {
                m.fmtps.push(Fmtp {
                    payload_type,
                    params: trim(params).to_owned(),
                });
            }
        }
    } else if is("ptime") {
        m.ptime = leading_number(rest).or(m.ptime);
    } else if is("maxptime") {
        m.maxptime = leading_number(rest).or(m.maxptime);
    } else if is("rtcp") {
        m.rtcp = parse_rtcp(rest).or(m.rtcp);
    } else if is("rtcp-mux") {
        m.rtcp_mux = true;
    } else if is("crypto") {
        m.crypto = true;
    }
}

fn payload_type(s: &str) -> Option<u8> {
    number::<u8>(s).filter(|pt| *pt < 128)
}

/// `<pt> <name>/<clock>[/<channels>]`
fn parse_rtpmap(rest: &str) -> Option<RtpMap> {
    let (pt, enc) = split_at_space(rest)?;
    let payload_type = payload_type(pt)?;
    let mut parts = split_ascii(trim(enc), b'/');
    let encoding = parts.next()?.to_owned();
    let clock_rate = number(trim(parts.next()?))?;
    let channels = match parts.next() {
        Some(c) => Some(number(trim(c))?),
        None => None,
    };
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

/// `s.parse::<T>()` for the unsigned integers SDP carries (an optional `+`, then decimal
/// digits, no overflow), without the generic `from_str_radix` machinery: it was ~1k
/// instructions per offer in the server benchmark.
fn number<T: TryFrom<u32>>(s: &str) -> Option<T> {
    let digits = s.strip_prefix('+').unwrap_or(s);
    if digits.is_empty() {
        return None;
    }
    let mut n: u32 = 0;
    for b in digits.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u32::from(b - b'0'))?;
    }
    T::try_from(n).ok()
}

/// `s.split_once(|c: char| c.is_ascii_whitespace())`, by bytes: ASCII whitespace is one byte,
/// so the cut is a char boundary, and the `char` pattern machinery is skipped.
fn split_at_space(s: &str) -> Option<(&str, &str)> {
    let i = s.bytes().position(|b| b.is_ascii_whitespace())?;
    Some((&s[..i], &s[i + 1..]))
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

    fn p(s: &str) -> SessionDescription {
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
    fn trim_matches_str_trim() {
        for s in [
            "", " ", "a", " a", "a ", "\u{a0}a", "a\u{a0}", "é", " é ", "a b", "\t0\r",
        ] {
            assert_eq!(trim(s), s.trim(), "{s:?}");
        }
    }

    #[test]
    fn split_ascii_matches_str_split() {
        for text in ["", "a", "/", "a/b", "a//b/", "/a/", "é/ü/"] {
            let ours: Vec<&str> = split_ascii(text, b'/').collect();
            let std: Vec<&str> = text.split('/').collect();
            assert_eq!(ours, std, "{text:?}");
        }
    }

    #[test]
    fn number_matches_str_parse() {
        for s in [
            "",
            "+",
            "-",
            "0",
            "+7",
            "-7",
            "++7",
            "127",
            "128",
            "255",
            "256",
            "65535",
            "65536",
            "4294967295",
            "4294967296",
            "00000000000000000042",
            " 1",
            "1 ",
            "1a",
            "é",
        ] {
            assert_eq!(number::<u8>(s), s.parse::<u8>().ok(), "{s:?}");
            assert_eq!(number::<u16>(s), s.parse::<u16>().ok(), "{s:?}");
            assert_eq!(number::<u32>(s), s.parse::<u32>().ok(), "{s:?}");
        }
        for s in ["", "a", " a", "a b", "a\tb c", "é b", "ab\r"] {
            let std = s.split_once(|c: char| c.is_ascii_whitespace());
            assert_eq!(split_at_space(s), std, "{s:?}");
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
