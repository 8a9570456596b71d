//! The little SIP and SDP the simulator needs to read: start line, a few headers, the SDP
//! media line. Deliberately small and forgiving; it goes away when `onhold_core::sip` lands.
//!
//! Everything here borrows from the datagram; nothing allocates except the header index.

use std::net::{IpAddr, SocketAddr};

/// A SIP message split into start line, headers and body.
#[derive(Debug, Clone)]
pub struct SipMsg<'a> {
    pub start: Start<'a>,
    /// (name, value) in message order, names as written.
    pub headers: Vec<(&'a str, &'a str)>,
    pub body: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start<'a> {
    Request { method: &'a str, uri: &'a str },
    Response { code: u16, reason: &'a str },
}

/// RFC 3261 §7.3.3 compact forms of the headers we read.
fn canonical(name: &str) -> &str {
    match name {
        "i" | "I" => "call-id",
        "v" | "V" => "via",
        "f" | "F" => "from",
        "t" | "T" => "to",
        "m" | "M" => "contact",
        "l" | "L" => "content-length",
        "c" | "C" => "content-type",
        "x" | "X" => "session-expires",
        _ => name,
    }
}

impl<'a> SipMsg<'a> {
    /// Parse a datagram; `None` if it is not a SIP message (RTP, keep-alive CRLFs, junk).
    pub fn parse(data: &'a [u8]) -> Option<SipMsg<'a>> {
        let head_end = find(data, b"\r\n\r\n")
            .map(|i| (i, i + 4))
            .or_else(|| find(data, b"\n\n").map(|i| (i, i + 2)))?;
        let head = std::str::from_utf8(&data[..head_end.0]).ok()?;
        let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let first = lines.next()?;
        let start = if let Some(rest) = first.strip_prefix("SIP/2.0 ") {
            let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
            Start::Response {
                code: code.parse().ok()?,
                reason,
            }
        } else {
            let mut parts = first.split(' ');
            let method = parts.next()?;
            let uri = parts.next()?;
            if parts.next()? != "SIP/2.0"
                || method.is_empty()
                || !method.bytes().all(|b| b.is_ascii_uppercase())
            {
                return None;
            }
            Start::Request { method, uri }
        };
        let mut headers: Vec<(&str, &str)> = Vec::new();
        for line in lines {
            if line.starts_with([' ', '\t']) {
                // RFC 3261 §7.3.1 line folding: rare; keep the first line's value only.
                continue;
            }
            let (name, value) = line.split_once(':')?;
            headers.push((name.trim(), value.trim()));
        }
        let mut body = &data[head_end.1..];
        let msg = SipMsg {
            start,
            headers,
            body,
        };
        if let Some(len) = msg
            .header("content-length")
            .and_then(|v| v.trim().parse::<usize>().ok())
        {
            if len <= body.len() {
                body = &body[..len];
            }
        }
        Some(SipMsg { body, ..msg })
    }

    /// First value of a header (case-insensitive, compact forms understood).
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers_named(name).next()
    }

    pub fn headers_named<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a str> + 's {
        self.headers
            .iter()
            .filter(move |(n, _)| canonical(n).eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    pub fn method(&self) -> Option<&'a str> {
        match self.start {
            Start::Request { method, .. } => Some(method),
            Start::Response { .. } => None,
        }
    }

    pub fn code(&self) -> Option<u16> {
        match self.start {
            Start::Response { code, .. } => Some(code),
            Start::Request { .. } => None,
        }
    }

    pub fn call_id(&self) -> &'a str {
        self.header("call-id").unwrap_or("")
    }

    /// CSeq number and method.
    pub fn cseq(&self) -> (u32, &'a str) {
        let v = self.header("cseq").unwrap_or("");
        let mut it = v.split_whitespace();
        let n = it.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        (n, it.next().unwrap_or(""))
    }

    pub fn to_tag(&self) -> Option<&'a str> {
        self.header("to").and_then(tag_param)
    }

    pub fn from_tag(&self) -> Option<&'a str> {
        self.header("from").and_then(tag_param)
    }

    pub fn top_via_branch(&self) -> Option<&'a str> {
        self.header("via")
            .and_then(|v| param(v.split(',').next().unwrap_or(v), "branch"))
    }

    /// The URI inside the first Contact header.
    pub fn contact_uri(&self) -> Option<&'a str> {
        self.header("contact").map(uri_of)
    }

    pub fn record_routes(&self) -> Vec<&'a str> {
        self.headers_named("record-route")
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect()
    }

    pub fn has_sdp(&self) -> bool {
        !self.body.is_empty()
            && self
                .header("content-type")
                .is_none_or(|t| t.to_ascii_lowercase().starts_with("application/sdp"))
    }

    pub fn sdp(&self) -> Option<Sdp> {
        if self.has_sdp() {
            Sdp::parse(self.body)
        } else {
            None
        }
    }
}

/// The URI of a name-addr or addr-spec header value (`"x" <sip:a@b>;tag=1` → `sip:a@b`).
pub fn uri_of(v: &str) -> &str {
    if let (Some(a), Some(b)) = (v.find('<'), v.find('>')) {
        if a < b {
            return &v[a + 1..b];
        }
    }
    v.split(';').next().unwrap_or(v).trim()
}

fn tag_param(v: &str) -> Option<&str> {
    let after = v.rfind('>').map(|i| &v[i..]).unwrap_or(v);
    param(after, "tag")
}

/// A `;name=value` parameter of a header value.
pub fn param<'a>(v: &'a str, name: &str) -> Option<&'a str> {
    v.split(';').skip(1).find_map(|p| {
        let (n, val) = p.split_once('=').unwrap_or((p, ""));
        n.trim().eq_ignore_ascii_case(name).then_some(val.trim())
    })
}

/// host:port of a SIP URI when the host is an IP literal.
pub fn uri_addr(uri: &str) -> Option<SocketAddr> {
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))?;
    let hostport = rest.rsplit_once('@').map(|(_, h)| h).unwrap_or(rest);
    let hostport = hostport.split([';', '?']).next()?;
    if let Some(v6) = hostport.strip_prefix('[') {
        let (ip, port) = v6.split_once(']')?;
        let port = port
            .strip_prefix(':')
            .and_then(|p| p.parse().ok())
            .unwrap_or(5060);
        return Some(SocketAddr::new(ip.parse().ok()?, port));
    }
    let (host, port) = match hostport.split_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (hostport, 5060),
    };
    Some(SocketAddr::new(host.parse::<IpAddr>().ok()?, port))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

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
From: \"Reception\" <sip:201@192.168.1.10>;tag=402719332\r\n\
To: <sip:123@192.168.1.100:5060>\r\n\
i: 91@BJC\r\n\
CSeq: 21 INVITE\r\n\
Contact: \"Reception\" <sip:201@192.168.1.50:5060>\r\n\
Content-Type: application/sdp\r\n\
Content-Length:   78\r\n\r\n\
v=0\r\nc=IN IP4 203.0.113.7\r\nm=audio 18232 RTP/AVP 0 101\r\na=recvonly\r\na=ptime:30";

    #[test]
    fn reads_the_headers_the_simulator_needs() {
        let m = SipMsg::parse(INVITE).unwrap();
        assert_eq!(m.method(), Some("INVITE"));
        assert_eq!(m.call_id(), "91@BJC");
        assert_eq!(m.cseq(), (21, "INVITE"));
        assert_eq!(m.from_tag(), Some("402719332"));
        assert_eq!(m.to_tag(), None);
        assert_eq!(m.top_via_branch(), Some("z9hG4bK1"));
        assert_eq!(m.contact_uri(), Some("sip:201@192.168.1.50:5060"));
        assert_eq!(
            uri_addr("sip:201@192.168.1.50:5060"),
            Some("192.168.1.50:5060".parse().unwrap())
        );
        let sdp = m.sdp().unwrap();
        assert_eq!(sdp.rtp_target(), Some("203.0.113.7:18232".parse().unwrap()));
        assert_eq!(sdp.dir, Dir::RecvOnly);
        assert_eq!(sdp.ptime, Some(30), "the last line may lack CRLF");
        assert!(sdp.has_moh_codec());
    }

    #[test]
    fn rtp_and_keepalives_are_not_sip() {
        assert!(SipMsg::parse(b"\r\n").is_none());
        assert!(SipMsg::parse(&[0x80, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4]).is_none());
    }
}
