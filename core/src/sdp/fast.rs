//! Answering the usual offer straight from its body ([`answer_body_fast`]), the fast path of
//! [`super::answer_body`].
//!
//! Nearly every offer has one m-line, written plainly. For that shape the answer needs a handful
//! of values (the m-line's fields, the `c=` and direction in force, ptime, rtcp, and what each
//! offered payload type's first rtpmap names), so they are read in one pass over the bytes
//! instead of building a [`SessionDescription`] (its lists allocate) and then searching it.
//!
//! The pass is strict: it reads only lines whose every byte it understands, in the one form it
//! expects (single spaces, plain decimal numbers, a dotted-quad address), where [`parse()`](super::parse())'s
//! tolerance (trimming, `+` signs, …) cannot make a difference, and skips lines that cannot
//! change an answer (`o=`, `s=`, `t=`, fmtp, unknown attributes, …) unread, whatever they
//! hold. Anything else (a second m-line, IPv6, an offer to refuse, an odd spacing) returns
//! `None` and goes to the reference, `parse` then `answer`; every decision on the values read
//! is made by the same functions as in `answer`. A proptest checks both paths agree on
//! generated and mutated offers.

use super::negotiate::{
    choose_ptime, our_direction, pick_codec, remote_endpoints, remote_ip, static_codec, CodecOrder,
};
#[cfg(doc)]
use super::parse;
use super::parse::{attribute_bytes, Attribute};
use super::Direction;
#[cfg(doc)]
use super::SessionDescription;
use super::{
    direction_in_force, is_audio, is_plain_rtp, AnswerLayout, AnswerPrefs, Connection, Negotiated,
    RtcpAttr,
};
use crate::ascii::dotted_quad;
use crate::codec::Codec;
use crate::scan::find_byte;
use std::net::{IpAddr, Ipv4Addr};

/// What the first rtpmap of a payload type names, as far as the answer cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Map {
    /// No (well-formed) rtpmap: a static payload type names its RFC 3551 codec.
    Absent,
    Codec(Codec),
    /// telephone-event/8000.
    Dtmf,
    /// Anything else: not a codec of ours.
    Other,
}

impl Map {
    /// `negotiate::map_codec` and `negotiate::is_dtmf` of `<encoding>/<clock>[/<channels>]`.
    fn of(encoding: &[u8], clock: u32, channels: Option<u32>) -> Map {
        if clock != Codec::RTP_CLOCK {
            return Map::Other;
        }
        let codec = (Codec::ALL.into_iter())
            .find(|c| c.encoding_name().as_bytes().eq_ignore_ascii_case(encoding));
        match codec {
            Some(codec) if channels.is_none_or(|c| c == 1) => Map::Codec(codec),
            Some(_) => Map::Other,
            None if encoding.eq_ignore_ascii_case(b"telephone-event") => Map::Dtmf,
            None => Map::Other,
        }
    }
}

/// Most formats the pass keeps for one m-line; more go to the general path.
const MAX_FORMATS: usize = 16;

/// The m-line and its attributes, as [`super::MediaDescription`] has those the answer reads.
struct Stream<'a> {
    media: &'a [u8],
    port: u16,
    proto: &'a [u8],
    /// The offered payload types (`MediaDescription::payload_types`), in order.
    pts: [u8; MAX_FORMATS],
    pt_count: usize,
    connection: Option<Ipv4Addr>,
    ptime: Option<u32>,
    maxptime: Option<u32>,
    direction: Option<Direction>,
    rtcp: Option<RtcpAttr>,
    rtcp_mux: bool,
}

/// [`super::answer_body`] for an offer that the strict pass reads and that is answered: `None`
/// for every other body (the caller then takes the reference path, which also finds the error
/// to report). The comments say which part of `parse` each step stands for.
pub(super) fn answer_body_fast(
    body: &[u8],
    prefs: &AnswerPrefs,
) -> Option<(Negotiated, AnswerLayout)> {
    let mut offer = Offer {
        connection: None,
        direction: None,
        ptime: None,
        stream: None,
        maps: [Map::Absent; 128],
    };
    let mut lines = body_lines(body);
    // `v=0` first (`parse` would skip blank or odd lines before it: left to it).
    if lines.next()? != b"v=0" {
        return None;
    }
    for line in lines {
        offer.line(line)?;
    }
    offer.answer(prefs)
}

/// The lines of `body` as `parse_text` cuts them: at every LF, one CR before it (or at the
/// end) dropped.
fn body_lines(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(body);
    std::iter::from_fn(move || {
        let now = rest?;
        let raw = match find_byte(now, b'\n') {
            Some(end) => {
                rest = Some(&now[end + 1..]);
                &now[..end]
            }
            None => {
                rest = None;
                now
            }
        };
        Some(raw.strip_suffix(b"\r").unwrap_or(raw))
    })
}

/// What the pass keeps of an offer: `SessionDescription`'s session-level values, its one m-line,
/// and the first rtpmap of each payload type (the one `MediaDescription::rtpmap` finds).
struct Offer<'a> {
    connection: Option<Ipv4Addr>,
    direction: Option<Direction>,
    ptime: Option<u32>,
    stream: Option<Stream<'a>>,
    maps: [Map; 128],
}

impl<'a> Offer<'a> {
    /// `Reader::line` after `v=0`; `None` to give up.
    fn line(&mut self, line: &'a [u8]) -> Option<()> {
        // `split_type`: a line that starts with a letter keeps its first two bytes through the
        // trim, so they decide its type. An empty line is skipped; anything else not starting
        // with a letter might be a line once trimmed: left to `parse`.
        let (kind, value) = match line {
            [] => return Some(()),
            [kind, ..] if !kind.is_ascii_alphabetic() => return None,
            [kind, b'=', value @ ..] => (kind.to_ascii_lowercase(), value),
            _ => return Some(()),
        };
        match kind {
            b'c' => {
                // `parse_connection` of `<nettype> <addrtype> <dotted quad>`.
                let ip = connection(value)?;
                match &mut self.stream {
                    Some(m) => m.connection = Some(ip),
                    None => self.connection = Some(ip),
                }
            }
            b'm' => {
                if self.stream.is_some() {
                    return None;
                }
                self.stream = Some(media_line(value)?);
            }
            b'a' => self.attribute(value)?,
            // Origin, session name, timing, …: nothing an answer depends on.
            _ => {}
        }
        Some(())
    }

    /// An `a=` line (`split_attribute`, then `session_attribute` or `media_attribute`).
    fn attribute(&mut self, value: &'a [u8]) -> Option<()> {
        let (attr, rest) = if let Some(rest) = value.strip_prefix(b"rtpmap:") {
            // Most attribute lines, named as written nearly always: no name to cut out.
            (Attribute::RtpMap, Some(rest))
        } else if value.starts_with(b"fmtp:") {
            return Some(());
        } else if let Some(rest) = value.strip_prefix(b"ptime:") {
            (Attribute::Ptime, Some(rest))
        } else if let Some(d) = direction(value) {
            (Attribute::Direction(d), None)
        } else {
            // The name runs to the colon or the line end. A name with white space or other
            // bytes at either end, where `parse` trims, is left to it.
            let name_len = (value.iter())
                .position(|&b| !b.is_ascii_graphic() || b == b':')
                .unwrap_or(value.len());
            let (name, rest) = value.split_at(name_len);
            // Without a colon the value is empty, which no number, rtpmap or rtcp reads from.
            let rest = match rest {
                [] => None,
                [b':', rest @ ..] => Some(rest),
                _ => return None,
            };
            (attribute_bytes(name), rest)
        };
        let Some(m) = &mut self.stream else {
            match (attr, rest) {
                (Attribute::Direction(d), _) => self.direction = Some(d),
                (Attribute::Ptime, Some(rest)) => self.ptime = Some(leading_number(rest)?),
                _ => {}
            }
            return Some(());
        };
        match (attr, rest) {
            (Attribute::Direction(d), _) => m.direction = Some(d),
            (Attribute::RtcpMux, _) => m.rtcp_mux = true,
            (Attribute::Ptime, Some(rest)) => m.ptime = Some(leading_number(rest)?),
            (Attribute::MaxPtime, Some(rest)) => m.maxptime = Some(leading_number(rest)?),
            (Attribute::RtpMap, Some(rest)) => {
                let (pt, map) = rtpmap(rest)?;
                let first = &mut self.maps[usize::from(pt)];
                if *first == Map::Absent {
                    *first = map;
                }
            }
            (Attribute::Rtcp, Some(rest)) => {
                // `parse_rtcp` of a lone port.
                let mut c = Cursor::new(rest);
                let port = c.port()?;
                c.at_end()?;
                m.rtcp = Some(RtcpAttr { port, addr: None });
            }
            _ => {}
        }
        Some(())
    }

    /// `answer`'s steps for the one stream; any refusal is left to it.
    fn answer(&self, prefs: &AnswerPrefs) -> Option<(Negotiated, AnswerLayout)> {
        let m = self.stream.as_ref()?;
        // The usual spellings first: one comparison each instead of a case-folding one.
        let audio = m.media == b"audio" || is_audio(m.media);
        let plain = m.proto == b"RTP/AVP" || is_plain_rtp(m.proto);
        if !audio || m.port == 0 || !plain {
            return None;
        }
        let maps = &self.maps;
        let payload_types = || m.pts[..m.pt_count].iter().copied();
        let codec_of = |pt: u8| match maps[usize::from(pt)] {
            Map::Absent => static_codec(pt),
            Map::Codec(codec) => Some(codec),
            Map::Dtmf | Map::Other => None,
        };
        let (codec, payload_type) = pick_codec(
            || payload_types().filter_map(|pt| codec_of(pt).map(|c| (c, pt))),
            &prefs.codecs,
            CodecOrder::Ours,
        )?;
        let ptime_ms = choose_ptime(m.ptime.or(self.ptime), m.maxptime, prefs.default_ptime_ms);
        let conn = (m.connection.or(self.connection)).map(|ip| Connection::Ip(IpAddr::V4(ip)));
        let direction = direction_in_force(conn.as_ref(), m.direction, self.direction);
        let ip = remote_ip(conn.as_ref()).ok()?;
        let (remote_rtp, remote_rtcp) = remote_endpoints(ip, m.port, m.rtcp_mux, m.rtcp);
        let neg = Negotiated {
            codec,
            payload_type,
            dtmf_pt: payload_types().find(|&pt| maps[usize::from(pt)] == Map::Dtmf),
            ptime_ms,
            remote_rtp,
            remote_rtcp,
            rtcp_mux: m.rtcp_mux,
            direction: our_direction(direction),
            media_index: 0,
            media_count: 1,
        };
        Some((neg, AnswerLayout::single(m.proto)))
    }
}

/// The direction an attribute line names, if it is one of the four written in lower case.
fn direction(value: &[u8]) -> Option<Direction> {
    match value {
        b"sendrecv" => Some(Direction::SendRecv),
        b"sendonly" => Some(Direction::SendOnly),
        b"recvonly" => Some(Direction::RecvOnly),
        b"inactive" => Some(Direction::Inactive),
        _ => None,
    }
}

/// `leading_number` of an attribute value: one to nine digits first (no overflow), then
/// anything.
fn leading_number(rest: &[u8]) -> Option<u32> {
    // Nearly always two digits and the end (`a=ptime:20`).
    if let [tens @ b'0'..=b'9', ones @ b'0'..=b'9'] = *rest {
        return Some(u32::from(tens - b'0') * 10 + u32::from(ones - b'0'));
    }
    Cursor::new(rest).number(9)
}

/// `<nettype> <addrtype> <a.b.c.d>`: `parse_connection` reads any two fields and then the
/// address, which `ascii::parse_ip` reads as a dotted quad (1–3 digits up to 255, no leading
/// zero) with [`dotted_quad`].
fn connection(value: &[u8]) -> Option<Ipv4Addr> {
    let mut c = Cursor::new(value);
    // The usual nettype and addrtype, compared at once.
    if !value.starts_with(b"IN IP4 ") {
        c.field()?;
        c.field()?;
    } else {
        c.i = b"IN IP4 ".len();
    }
    dotted_quad(&value[c.i..])
}

/// `<media> <port> <proto> <fmt> …` with numeric formats (`parse_media`, and the formats as
/// `MediaDescription::payload_types` reads them: those up to 127).
fn media_line(value: &[u8]) -> Option<Stream<'_>> {
    let mut c = Cursor::new(value);
    // `audio ` and `RTP/AVP` (then SP or the end) as written nearly always, one compare each:
    // the runs of graphic bytes end at the same places.
    let media = match value.strip_prefix(b"audio ") {
        Some(_) => {
            c.i = b"audio ".len();
            &value[..b"audio".len()]
        }
        None => c.field()?,
    };
    let port = c.port()?;
    if !c.eat(b' ') {
        return None;
    }
    let rest = &value[c.i..];
    let proto = match rest.strip_prefix(b"RTP/AVP") {
        Some([] | [b' ', ..]) => {
            c.i += b"RTP/AVP".len();
            &rest[..b"RTP/AVP".len()]
        }
        _ => c.run(|b| b.is_ascii_graphic()),
    };
    if proto.is_empty() {
        return None;
    }
    let mut m = Stream {
        media,
        port,
        proto,
        pts: [0; MAX_FORMATS],
        pt_count: 0,
        connection: None,
        ptime: None,
        maxptime: None,
        direction: None,
        rtcp: None,
        rtcp_mux: false,
    };
    while c.at_end().is_none() {
        if !c.eat(b' ') {
            return None;
        }
        // Three digits: `payload_type_number` of anything longer is not a payload type below
        // 128 either, unless it has leading zeros (left to `parse`).
        let pt = c.number(3)?;
        if pt < 128 {
            *m.pts.get_mut(m.pt_count)? = pt as u8;
            m.pt_count += 1;
        }
    }
    Some(m)
}

/// `<pt> <encoding>/<clock>[/<channels>]` (`parse_rtpmap`), the whole value.
fn rtpmap(rest: &[u8]) -> Option<(u8, Map)> {
    let mut c = Cursor::new(rest);
    let pt = c.number(3)?;
    if pt >= 128 || !c.eat(b' ') {
        return None;
    }
    // The usual maps, whole: no field to cut out.
    let map = match &rest[c.i..] {
        b"PCMU/8000" => Some(Map::Codec(Codec::Pcmu)),
        b"PCMA/8000" => Some(Map::Codec(Codec::Pcma)),
        b"G722/8000" => Some(Map::Codec(Codec::G722)),
        b"telephone-event/8000" => Some(Map::Dtmf),
        _ => None,
    };
    if let Some(map) = map {
        return Some((pt as u8, map));
    }
    let encoding = c.run(|b| b.is_ascii_graphic() && b != b'/');
    if !c.eat(b'/') {
        return None;
    }
    let clock = c.number(9)?;
    let channels = match c.eat(b'/') {
        true => Some(u32::from(c.port()?)),
        false => None,
    };
    c.at_end()?;
    Some((pt as u8, Map::of(encoding, clock, channels)))
}

/// A position in a line's value. Its readers return `None` (or false) for anything outside
/// the one form they accept, and then the whole pass gives up.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn new(b: &'a [u8]) -> Self {
        Cursor { b, i: 0 }
    }

    /// Step over `byte` if it is next.
    fn eat(&mut self, byte: u8) -> bool {
        let next = self.b.get(self.i) == Some(&byte);
        self.i += usize::from(next);
        next
    }

    /// `Some` at the end of the value.
    fn at_end(&self) -> Option<()> {
        (self.i >= self.b.len()).then_some(())
    }

    /// The bytes from here that satisfy `keep`.
    fn run(&mut self, keep: impl Fn(u8) -> bool) -> &'a [u8] {
        let rest = &self.b[self.i.min(self.b.len())..];
        let len = rest.iter().position(|&b| !keep(b)).unwrap_or(rest.len());
        self.i += len;
        &rest[..len]
    }

    /// A decimal number of one to `max` digits (at most nine: no overflow), as `parse::number`
    /// reads it.
    fn number(&mut self, max: usize) -> Option<u32> {
        // Summed as the digits are read (one pass, not a run and then a fold over it); a
        // value of more than `max` digits, which may wrap, is thrown away.
        let start = self.i;
        let mut n = 0u32;
        while let Some(d) = self.b.get(self.i).filter(|d| d.is_ascii_digit()) {
            n = n.wrapping_mul(10).wrapping_add(u32::from(d - b'0'));
            self.i += 1;
        }
        let len = self.i - start;
        (len != 0 && len <= max).then_some(n)
    }

    fn port(&mut self) -> Option<u16> {
        u16::try_from(self.number(5)?).ok()
    }

    /// A field of `split_ascii_whitespace` followed by a single space.
    fn field(&mut self) -> Option<&'a [u8]> {
        let field = self.run(|b| b.is_ascii_graphic());
        (!field.is_empty() && self.eat(b' ')).then_some(field)
    }
}

#[cfg(test)]
mod tests {
    use super::super::answer_body;
    use super::super::negotiate::answer_body_reference as reference;
    use super::*;
    use proptest::prelude::*;

    const DP750: &str = "v=0\r\no=201 8000 8000 IN IP4 192.168.1.50\r\ns=SIP Call\r\n\
        c=IN IP4 192.168.1.50\r\nt=0 0\r\nm=audio 5004 RTP/AVP 0 8 9 18 101\r\na=sendrecv\r\n\
        a=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:9 G722/8000\r\n\
        a=rtpmap:18 G729/8000\r\na=fmtp:18 annexb=no\r\na=rtpmap:101 telephone-event/8000\r\n\
        a=fmtp:101 0-15\r\n";

    #[test]
    fn usual_offers_take_the_fast_path() {
        let lf = DP750.replace("\r\n", "\n");
        let hold = DP750.replace("sendrecv", "sendonly");
        let old_hold = DP750.replace("c=IN IP4 192.168.1.50", "c=IN IP4 0.0.0.0");
        let extras = DP750.replace(
            "a=sendrecv\r\n",
            "c=IN IP4 10.0.0.7\r\na=rtcp:5009\r\na=rtcp-mux\r\na=maxptime:40\r\na=X-nat:0\r\n",
        );
        let no_final_crlf = DP750.trim_end();
        let session_level = "v=0\nc=IN IP4 10.1.2.3\na=ptime:30\na=recvonly\n\
                             m=audio 4000 RTP/AVPF 96 0\na=rtpmap:96 pcmu/8000/1\n";
        for body in [
            DP750,
            &lf,
            &hold,
            &old_hold,
            &extras,
            no_final_crlf,
            session_level,
        ] {
            for codecs in [vec![], vec![Codec::G722, Codec::Pcmu]] {
                let prefs = AnswerPrefs {
                    codecs,
                    default_ptime_ms: 20,
                };
                let fast = answer_body_fast(body.as_bytes(), &prefs);
                assert!(fast.is_some(), "{body:?}");
                assert_eq!(
                    fast.ok_or(()),
                    reference(body.as_bytes(), &prefs).map_err(|_| ())
                );
            }
        }
    }

    fn session_line() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("o=- 1 1 IN IP4 192.0.2.9".to_string()),
            Just("s=-".to_string()),
            Just("t=0 0".to_string()),
            "c=IN IP[46] (192\\.0\\.2\\.[0-9]{1,3}|0\\.0\\.0\\.0|224\\.0\\.0\\.1|::1|host)",
            "a=(sendrecv|sendonly|recvonly|inactive|ptime:[0-9]{1,3}|rtpmap:0 PCMA/8000)",
            "[a-z]=[ -~]{0,12}",
        ]
    }

    fn media_line() -> impl Strategy<Value = String> {
        (
            prop_oneof![8 => Just("audio"), 1 => Just("AUDIO"), 1 => Just("video")],
            prop_oneof![1 => Just(0u16), 8 => 1u16..=65535],
            prop_oneof![8 => Just("RTP/AVP"), 1 => Just("RTP/AVPF"), 1 => Just("RTP/SAVP")],
            proptest::collection::vec(
                prop_oneof![
                    Just(0u16),
                    Just(8),
                    Just(9),
                    Just(18),
                    90u16..130,
                    250u16..260
                ],
                1..6,
            ),
        )
            .prop_map(|(media, port, proto, pts)| {
                let fmts: String = pts.iter().map(|pt| format!(" {pt}")).collect();
                format!("m={media} {port} {proto}{fmts}")
            })
    }

    fn media_attribute() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "a=rtpmap:(0|8|9|18|96|97|101|127|128) (PCMU|PCMA|G722|pcma|telephone-event|G729|opus)/(8000|16000|48000)(/[0-2])?",
            1 => "a=fmtp:(18|101) [ -~]{0,10}",
            1 => "a=(ptime|maxptime):[0-9]{1,3}(\\.0| ms)?",
            1 => "a=(sendrecv|sendonly|recvonly|inactive|rtcp-mux|crypto:1 x)",
            1 => "a=rtcp:[0-9]{1,5}( IN IP4 192\\.0\\.2\\.1)?",
            1 => "c=IN IP4 (198\\.51\\.100\\.[0-9]{1,3}|0\\.0\\.0\\.0)",
            1 => "a=[ -~]{0,12}",
        ]
    }

    /// A byte to insert or overwrite with: what `parse` trims, skips, reads as a sign or a
    /// separator, or replaces.
    fn odd_byte() -> impl Strategy<Value = u8> {
        proptest::sample::select(&b" \t\r\n+0:/=aAmc\x0b\x0c\xc2\xa0\xff\x80"[..])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16_384))]

        #[test]
        fn answer_body_fast_matches_reference(
            session in proptest::collection::vec(session_line(), 0..4),
            session_c in proptest::option::weighted(0.9, "c=IN IP4 192\\.0\\.2\\.[0-9]{1,3}"),
            media_count in prop_oneof![1 => Just(0), 8 => Just(1), 1 => Just(2)],
            media in media_line(),
            attributes in proptest::collection::vec(media_attribute(), 0..8),
            lf_only in any::<bool>(),
            final_line_end in any::<bool>(),
            edits in prop_oneof![
                2 => Just(Vec::new()),
                1 => proptest::collection::vec((any::<prop::sample::Index>(), odd_byte(), any::<bool>()), 1..3),
            ],
            codecs in proptest::sample::subsequence(Codec::ALL.to_vec(), 0..=3),
            default_ptime_ms in 0u32..100,
        ) {
            let sep = if lf_only { "\n" } else { "\r\n" };
            let mut lines = vec!["v=0".to_string()];
            lines.extend(session);
            lines.extend(session_c);
            for _ in 0..media_count {
                lines.push(media.clone());
                lines.extend(attributes.iter().cloned());
            }
            let mut body = lines.join(sep).into_bytes();
            if final_line_end {
                body.extend_from_slice(sep.as_bytes());
            }
            for (at, byte, insert) in edits {
                let at = at.index(body.len() + 1);
                if insert || at == body.len() {
                    body.insert(at, byte);
                } else {
                    body[at] = byte;
                }
            }
            let prefs = AnswerPrefs { codecs, default_ptime_ms };
            let expected = reference(&body, &prefs);
            if let Some(fast) = answer_body_fast(&body, &prefs) {
                prop_assert_eq!(Ok(fast), expected.clone());
            }
            prop_assert_eq!(answer_body(&body, &prefs), expected);
        }
    }
}
