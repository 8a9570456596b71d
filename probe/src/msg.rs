//! A lenient SIP reader for judging what a server sends: the probe, the simulator's verdicts
//! and the end-to-end tests all read SIP through it.
//!
//! It is deliberately not the server's parser (`onhold_core::sip`): a judge that shares the
//! server's parser shares its bugs. It is forgiving where a peer may differ (bare LF line ends,
//! compact header names, any case, padded values, folded lines, a missing blank line) and reads
//! only what a judge asks about. Values borrow from the datagram unless a folded header had to
//! be joined; [`Message::into_owned`] keeps a message beyond its buffer.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

/// A received SIP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    pub start: Start<'a>,
    /// Header names as written (compact forms included), values trimmed, folded lines joined
    /// with one space (RFC 3261 §7.3.1).
    pub headers: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// Up to Content-Length, or everything after the blank line when it is absent or too large.
    pub body: Cow<'a, [u8]>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start<'a> {
    Request {
        method: Cow<'a, str>,
        uri: Cow<'a, str>,
    },
    Response {
        code: u16,
        reason: Cow<'a, str>,
    },
}

/// The long name of a header (RFC 3261 §7.3.3 compact forms, RFC 4028's `x`); any other name
/// as given. Compare the result case-insensitively.
pub fn canonical_name(name: &str) -> &str {
    const NAMES: [(&str, &str); 11] = [
        ("v", "Via"),
        ("f", "From"),
        ("t", "To"),
        ("i", "Call-ID"),
        ("m", "Contact"),
        ("l", "Content-Length"),
        ("c", "Content-Type"),
        ("e", "Content-Encoding"),
        ("k", "Supported"),
        ("s", "Subject"),
        ("x", "Session-Expires"),
    ];
    for (short, long) in NAMES {
        if name.eq_ignore_ascii_case(short) {
            return long;
        }
    }
    name
}

impl<'a> Message<'a> {
    /// Parse a datagram (or one message cut from a stream). `None` for anything whose first
    /// line is not a SIP request or status line: RTP, keep-alives, junk.
    pub fn parse(data: &'a [u8]) -> Option<Message<'a>> {
        let (head, body) = match find(data, b"\r\n\r\n") {
            Some(i) => (&data[..i], &data[i + 4..]),
            None => match find(data, b"\n\n") {
                Some(i) => (&data[..i], &data[i + 2..]),
                None => (data, &[][..]),
            },
        };
        let head = std::str::from_utf8(head).ok()?;
        let mut lines = head.split('\n').map(|l| l.trim_end_matches('\r'));
        let first = lines.next()?.trim();
        let start = if let Some(rest) = first.strip_prefix("SIP/2.0 ") {
            let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
            let code: u16 = code.parse().ok().filter(|c| (100..700).contains(c))?;
            Start::Response {
                code,
                reason: Cow::Borrowed(reason.trim()),
            }
        } else {
            let mut f = first.split_ascii_whitespace();
            let (method, uri, version) = (f.next()?, f.next()?, f.next()?);
            if version != "SIP/2.0" || !method.bytes().all(|b| b.is_ascii_uppercase()) {
                return None;
            }
            Start::Request {
                method: Cow::Borrowed(method),
                uri: Cow::Borrowed(uri),
            }
        };
        let mut headers: Vec<(Cow<'a, str>, Cow<'a, str>)> = Vec::new();
        for line in lines {
            if line.starts_with([' ', '\t']) {
                if let Some((_, v)) = headers.last_mut() {
                    let v = v.to_mut();
                    v.push(' ');
                    v.push_str(line.trim());
                }
                continue;
            }
            // A line without a colon is not a header: skipped, like an unknown one.
            if let Some((name, value)) = line.split_once(':') {
                headers.push((Cow::Borrowed(name.trim()), Cow::Borrowed(value.trim())));
            }
        }
        let mut msg = Message {
            start,
            headers,
            body: Cow::Borrowed(body),
        };
        let len = msg
            .header("Content-Length")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(body.len())
            .min(body.len());
        msg.body = Cow::Borrowed(&body[..len]);
        Some(msg)
    }

    /// The same message, owning its text.
    pub fn into_owned(self) -> Message<'static> {
        let own = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
        Message {
            start: match self.start {
                Start::Request { method, uri } => Start::Request {
                    method: own(method),
                    uri: own(uri),
                },
                Start::Response { code, reason } => Start::Response {
                    code,
                    reason: own(reason),
                },
            },
            headers: self
                .headers
                .into_iter()
                .map(|(n, v)| (own(n), own(v)))
                .collect(),
            body: Cow::Owned(self.body.into_owned()),
        }
    }

    /// The first header with this name (case-insensitive; compact forms match their long names).
    pub fn header(&self, name: &str) -> Option<&str> {
        let want = canonical_name(name);
        self.headers
            .iter()
            .find(|(n, _)| same_name(n, want))
            .map(|(_, v)| &**v)
    }

    /// Header names in message order, as written: the shape of a message without its values.
    pub fn header_names(&self) -> Vec<&str> {
        self.headers.iter().map(|(n, _)| &**n).collect()
    }

    /// Every header with this name, in message order.
    pub fn headers_named<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s str> + 's {
        let want = canonical_name(name);
        self.headers
            .iter()
            .filter(move |(n, _)| same_name(n, want))
            .map(|(_, v)| &**v)
    }

    pub fn code(&self) -> Option<u16> {
        match self.start {
            Start::Response { code, .. } => Some(code),
            Start::Request { .. } => None,
        }
    }

    pub fn method(&self) -> Option<&str> {
        match &self.start {
            Start::Request { method, .. } => Some(method),
            Start::Response { .. } => None,
        }
    }

    pub fn call_id(&self) -> Option<&str> {
        self.header("Call-ID")
    }

    /// `CSeq: 21 INVITE` → (21, "INVITE").
    pub fn cseq(&self) -> Option<(u32, &str)> {
        let mut f = self.header("CSeq")?.split_whitespace();
        Some((f.next()?.parse().ok()?, f.next()?))
    }

    /// The `tag` parameter of `To` (outside the `<…>` URI).
    pub fn to_tag(&self) -> Option<&str> {
        param(self.header("To")?, "tag").filter(|t| !t.is_empty())
    }

    /// The `tag` parameter of `From`.
    pub fn from_tag(&self) -> Option<&str> {
        param(self.header("From")?, "tag").filter(|t| !t.is_empty())
    }

    /// The `branch` parameter of the top Via.
    pub fn top_via_branch(&self) -> Option<&str> {
        let top = self.header("Via")?.split(',').next()?;
        param(top, "branch").filter(|b| !b.is_empty())
    }

    /// The URI of the first Contact: `"Name" <sip:x@h>;p` or `sip:x@h;p`.
    pub fn contact_uri(&self) -> Option<&str> {
        uri_of(self.header("Contact")?)
    }

    /// Every Record-Route entry, top first (several headers or comma-separated in one).
    pub fn record_routes(&self) -> Vec<&str> {
        self.headers_named("Record-Route")
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect()
    }

    /// A body that is SDP: Content-Type `application/sdp`, or none given.
    pub fn has_sdp(&self) -> bool {
        !self.body.is_empty()
            && self
                .header("Content-Type")
                .is_none_or(|t| t.to_ascii_lowercase().starts_with("application/sdp"))
    }
}

/// Whether a header name as written is `long` (a canonical name).
fn same_name(written: &str, long: &str) -> bool {
    canonical_name(written).eq_ignore_ascii_case(long)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The URI of a name-addr or addr-spec header value (`"x" <sip:a@b>;tag=1` → `sip:a@b`);
/// `None` for an empty one or `*`.
pub fn uri_of(value: &str) -> Option<&str> {
    let uri = match value.find('<') {
        Some(open) => {
            let rest = &value[open + 1..];
            &rest[..rest.find('>')?]
        }
        None => value.split(';').next()?.trim(),
    };
    (!uri.is_empty() && uri != "*").then_some(uri)
}

/// A header parameter outside any `<…>` (so URI parameters do not count): `Some("")` for a
/// parameter without a value (`;rport`).
pub fn param<'v>(value: &'v str, name: &str) -> Option<&'v str> {
    let after_uri = match value.rfind('>') {
        Some(i) => &value[i + 1..],
        None => value,
    };
    after_uri.split(';').skip(1).find_map(|p| {
        let (n, v) = p.split_once('=').unwrap_or((p, ""));
        n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// host:port of a SIP URI whose host is an IP literal (5060 when no port is given).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_read_forgivingly() {
        let raw = b"SIP/2.0 200 OK\nv: SIP/2.0/UDP 1.2.3.4:5060;branch=z9hG4bK77;rport=5060, SIP/2.0/UDP x\n\
                    To: <sip:123@h;tag=uri-param>;tag=abc\nm: <sip:moh@10.0.0.1:5060;transport=udp>;expires=60\n\
                    CSeq:   21   INVITE\nSubject: folded\n  line\nContent-Length:   5  \n\nv=0\r\nJUNK";
        let m = Message::parse(raw).unwrap();
        assert_eq!(m.code(), Some(200));
        assert_eq!(m.to_tag(), Some("abc"));
        assert_eq!(m.top_via_branch(), Some("z9hG4bK77"));
        assert_eq!(m.contact_uri(), Some("sip:moh@10.0.0.1:5060;transport=udp"));
        assert_eq!(m.cseq(), Some((21, "INVITE")));
        assert_eq!(m.header("subject"), Some("folded line"));
        assert_eq!(&*m.body, b"v=0\r\n");
        let bare =
            Message::parse(b"SIP/2.0 200 OK\r\nContact: sip:a@b;x=y\r\nTo: <sip:a@b>\r\n\r\n")
                .unwrap();
        assert_eq!(bare.contact_uri(), Some("sip:a@b"));
        assert_eq!(bare.to_tag(), None);
    }

    #[test]
    fn non_sip_is_none() {
        assert!(Message::parse(&[0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]).is_none());
        assert!(Message::parse(b"\r\n\r\n").is_none());
        assert!(Message::parse(b"\r\n").is_none());
        assert!(Message::parse(b"SIP/2.0 999 Weird\r\n\r\n").is_none());
        assert!(Message::parse(b"hello world\r\n").is_none());
    }

    /// A DP750 INVITE with a compact Call-ID and an SDP whose last line lacks CRLF.
    const INVITE: &[u8] = b"INVITE sip:123@192.168.1.100:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.168.1.50:5060;branch=z9hG4bK1;rport\r\n\
From: \"Reception\" <sip:201@192.168.1.10>;tag=402719332\r\n\
To: <sip:123@192.168.1.100:5060>\r\n\
i: 91@BJC\r\n\
CSeq: 21 INVITE\r\n\
Contact: \"Reception\" <sip:201@192.168.1.50:5060>\r\n\
Record-Route: <sip:p1;lr>, <sip:p2;lr>\r\n\
Record-Route: <sip:p3;lr>\r\n\
x: 1800;refresher=uac\r\n\
Content-Type: application/sdp\r\n\
Content-Length:   78\r\n\r\n\
v=0\r\nc=IN IP4 203.0.113.7\r\nm=audio 18232 RTP/AVP 0 101\r\na=recvonly\r\na=ptime:30";

    #[test]
    fn requests_are_read_with_their_dialog_identifiers() {
        let m = Message::parse(INVITE).unwrap();
        assert_eq!(m.method(), Some("INVITE"));
        assert_eq!(m.code(), None);
        assert_eq!(m.call_id(), Some("91@BJC"));
        assert_eq!(m.cseq(), Some((21, "INVITE")));
        assert_eq!(m.from_tag(), Some("402719332"));
        assert_eq!(m.to_tag(), None);
        assert_eq!(m.top_via_branch(), Some("z9hG4bK1"));
        assert_eq!(param(m.header("Via").unwrap(), "rport"), Some(""));
        assert_eq!(m.contact_uri(), Some("sip:201@192.168.1.50:5060"));
        assert_eq!(
            m.record_routes(),
            ["<sip:p1;lr>", "<sip:p2;lr>", "<sip:p3;lr>"]
        );
        assert_eq!(m.header("session-expires"), Some("1800;refresher=uac"));
        assert_eq!(m.header_names()[..5], ["Via", "From", "To", "i", "CSeq"]);
        assert!(m.has_sdp());
        assert!(
            m.body.ends_with(b"a=ptime:30"),
            "the last line may lack CRLF"
        );
        assert_eq!(
            uri_addr("sip:201@192.168.1.50:5060"),
            Some("192.168.1.50:5060".parse().unwrap())
        );
        assert_eq!(
            uri_addr("sip:[::1];transport=udp"),
            Some("[::1]:5060".parse().unwrap())
        );
        assert_eq!(uri_addr("sip:moh@example.com"), None);
    }

    #[test]
    fn a_message_outlives_its_datagram_when_owned() {
        let folded = b"SIP/2.0 200 OK\r\nSubject: folded\r\n line\r\nCall-ID: x\r\n\r\n".to_vec();
        let borrowed = Message::parse(&folded).unwrap();
        assert!(matches!(borrowed.headers[0].1, Cow::Owned(_)), "joined");
        assert!(matches!(borrowed.headers[1].1, Cow::Borrowed(_)));
        let owned: Message<'static> = borrowed.clone().into_owned();
        drop(folded);
        assert_eq!(owned.header("Subject"), Some("folded line"));
        assert_eq!(owned.call_id(), Some("x"));
        assert_eq!(owned.code(), Some(200));
    }

    #[test]
    fn a_body_that_is_not_sdp_is_not_read_as_sdp() {
        let m = Message::parse(
            b"INFO sip:a@b SIP/2.0\r\nContent-Type: application/dtmf-relay\r\n\
              Content-Length: 10\r\n\r\nSignal=1\r\n",
        )
        .unwrap();
        assert!(!m.has_sdp());
        let empty = Message::parse(b"ACK sip:a@b SIP/2.0\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert!(!empty.has_sdp());
    }
}
