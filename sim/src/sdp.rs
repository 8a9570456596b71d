//! The little SDP the simulator reads to judge media: the first audio stream's address, port,
//! formats, direction and ptime. Deliberately small and forgiving, and not the core's SDP parser:
//! the verdicts must not share the code they judge.

use std::net::{IpAddr, SocketAddr};

use onhold_probe::msg::Message;

/// SDP media direction (RFC 3264 §5.1); absent means sendrecv.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Dir {
    pub fn as_str(self) -> &'static str {
        match self {
            Dir::SendRecv => "sendrecv",
            Dir::SendOnly => "sendonly",
            Dir::RecvOnly => "recvonly",
            Dir::Inactive => "inactive",
        }
    }

    /// What a Music On Hold server answers to an offer with this direction (DESIGN.md).
    pub fn moh_answer(self) -> Dir {
        match self {
            Dir::SendRecv | Dir::RecvOnly => Dir::SendOnly,
            Dir::SendOnly | Dir::Inactive => Dir::Inactive,
        }
    }
}

/// The first audio stream of an SDP body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    pub addr: Option<IpAddr>,
    pub port: u16,
    pub proto: String,
    pub pts: Vec<u8>,
    /// (pt, encoding name) from a=rtpmap.
    pub rtpmaps: Vec<(u8, String)>,
    pub dir: Dir,
    pub ptime: Option<u32>,
}

impl Sdp {
    /// The offer or answer a SIP message carries, if its body is SDP.
    pub fn of(m: &Message<'_>) -> Option<Sdp> {
        if m.has_sdp() {
            Sdp::parse(&m.body)
        } else {
            None
        }
    }

    pub fn parse(body: &[u8]) -> Option<Sdp> {
        let text = std::str::from_utf8(body).ok()?;
        let mut session_c = None;
        let mut media_c = None;
        let mut session_dir = None;
        let mut audio: Option<Sdp> = None;
        let mut in_audio = false;
        let mut seen_audio = false;
        let mut media_dir_seen = false;
        for line in text.split('\n').map(|l| l.trim_end_matches('\r')) {
            if let Some(m) = line.strip_prefix("m=") {
                in_audio = m.starts_with("audio ") && !seen_audio;
                if in_audio {
                    seen_audio = true;
                    let mut it = m.split_whitespace().skip(1);
                    let port = it.next()?.split('/').next()?.parse().ok()?;
                    let proto = it.next()?.to_string();
                    let pts = it.filter_map(|p| p.parse().ok()).collect();
                    audio = Some(Sdp {
                        addr: None,
                        port,
                        proto,
                        pts,
                        rtpmaps: Vec::new(),
                        dir: Dir::SendRecv,
                        ptime: None,
                    });
                }
                continue;
            }
            let c = line
                .strip_prefix("c=")
                .and_then(|c| c.split_whitespace().nth(2))
                .and_then(|a| a.split('/').next()?.parse::<IpAddr>().ok());
            let dir = match line {
                "a=sendrecv" => Some(Dir::SendRecv),
                "a=sendonly" => Some(Dir::SendOnly),
                "a=recvonly" => Some(Dir::RecvOnly),
                "a=inactive" => Some(Dir::Inactive),
                _ => None,
            };
            match (&mut audio, in_audio) {
                (Some(a), true) => {
                    if c.is_some() {
                        media_c = c;
                    }
                    if let Some(d) = dir {
                        a.dir = d;
                        media_dir_seen = true;
                    }
                    if let Some(p) = line.strip_prefix("a=ptime:") {
                        a.ptime = p.trim().parse().ok();
                    }
                    if let Some(r) = line.strip_prefix("a=rtpmap:") {
                        if let Some((pt, enc)) = r.split_once(' ') {
                            if let Ok(pt) = pt.parse() {
                                a.rtpmaps
                                    .push((pt, enc.split('/').next().unwrap_or("").to_string()));
                            }
                        }
                    }
                }
                (None, _) => {
                    if c.is_some() {
                        session_c = c;
                    }
                    if dir.is_some() {
                        session_dir = dir;
                    }
                }
                _ => {}
            }
        }
        let mut a = audio?;
        a.addr = media_c.or(session_c);
        if !media_dir_seen {
            // A session-level direction applies unless the media level overrides it.
            if let Some(d) = session_dir {
                a.dir = d;
            }
        }
        Some(a)
    }

    /// Where RTP for this stream goes (port 0 = stream rejected).
    pub fn rtp_target(&self) -> Option<SocketAddr> {
        Some(SocketAddr::new(self.addr?, self.port))
    }

    /// Encoding name of a payload type: rtpmap first, then the RFC 3551 static table.
    pub fn encoding(&self, pt: u8) -> Option<String> {
        if let Some((_, n)) = self.rtpmaps.iter().find(|(p, _)| *p == pt) {
            return Some(n.clone());
        }
        match pt {
            0 => Some("PCMU".into()),
            8 => Some("PCMA".into()),
            9 => Some("G722".into()),
            18 => Some("G729".into()),
            _ => None,
        }
    }

    /// Does the offer name a codec onhold can send (PCMU, PCMA, G.722) on plain RTP/AVP?
    pub fn has_moh_codec(&self) -> bool {
        self.proto.eq_ignore_ascii_case("RTP/AVP")
            && self.port != 0
            && self.pts.iter().any(|&pt| {
                self.encoding(pt).is_some_and(|n| {
                    ["PCMU", "PCMA", "G722"]
                        .iter()
                        .any(|c| n.eq_ignore_ascii_case(c))
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:123@192.168.1.100:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.168.1.50:5060;branch=z9hG4bK1;rport\r\n\
i: 91@BJC\r\n\
CSeq: 21 INVITE\r\n\
Content-Type: application/sdp\r\n\
Content-Length:   78\r\n\r\n\
v=0\r\nc=IN IP4 203.0.113.7\r\nm=audio 18232 RTP/AVP 0 101\r\na=recvonly\r\na=ptime:30";

    #[test]
    fn reads_the_offer_the_simulator_needs() {
        let sdp = Sdp::of(&Message::parse(INVITE).unwrap()).unwrap();
        assert_eq!(sdp.rtp_target(), Some("203.0.113.7:18232".parse().unwrap()));
        assert_eq!(sdp.dir, Dir::RecvOnly);
        assert_eq!(sdp.ptime, Some(30), "the last line may lack CRLF");
        assert!(sdp.has_moh_codec());
    }
}
