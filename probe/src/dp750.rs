//! SIP messages as a Grandstream DP750 writes them: INVITE, ACK, BYE and OPTIONS in its header
//! order and style, its SDP offer and answer, and our answers to the server's requests. Owned
//! strings throughout: this is a test client, not a hot path.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use crate::msg::{canonical_name, Message};

/// What the DP750 puts in `User-Agent`.
pub const USER_AGENT: &str = "Grandstream DP750 1.0.3.37";
const ALLOW: &str =
    "INVITE, ACK, OPTIONS, CANCEL, BYE, SUBSCRIBE, NOTIFY, INFO, REFER, UPDATE, MESSAGE";
/// Our caller identity: extension 201, display name as in the field captures.
const USER: &str = "201";
const DISPLAY: &str = "Reception";

/// A parsed `sip:` target: `sip:123@127.0.0.1:5060`, `sip:127.0.0.1`, `sip:moh@[::1]:5070`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The URI as given (used as Request-URI and in `To`).
    pub uri: String,
    pub user: Option<String>,
    pub host: String,
    pub port: u16,
}

impl Target {
    pub fn parse(s: &str) -> Result<Target, String> {
        let rest = s
            .strip_prefix("sip:")
            .ok_or_else(|| format!("{s}: only sip: URIs are supported"))?;
        let rest = rest.split([';', '?']).next().unwrap_or(rest);
        let (user, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_owned()), h),
            None => (None, rest),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{s}: unclosed ["))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(format!("{s}: junk after ]")),
            };
            (h.to_owned(), port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (hostport.to_owned(), None),
            }
        };
        if host.is_empty() {
            return Err(format!("{s}: no host"));
        }
        let port = match port {
            Some(p) => p.parse().map_err(|_| format!("{s}: bad port {p:?}"))?,
            None => 5060,
        };
        Ok(Target {
            uri: s.to_owned(),
            user,
            host,
            port,
        })
    }

    /// Resolve the host (an address literal, or a name through the system resolver).
    pub fn resolve(&self) -> Result<SocketAddr, String> {
        use std::net::ToSocketAddrs;
        (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| format!("{}: {e}", self.host))?
            .next()
            .ok_or_else(|| format!("{}: no address", self.host))
    }
}

/// `host` or `[v6]` for SIP headers.
pub fn host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

fn hostport(addr: SocketAddr) -> String {
    format!("{}:{}", host(addr.ip()), addr.port())
}

/// The DP750 writes its IP address into the Call-ID with letters: A=0 … J=9.
pub fn call_id(number: u32, local: SocketAddr) -> String {
    let letters: String = local
        .ip()
        .to_string()
        .chars()
        .map(|c| match c.to_digit(10) {
            Some(d) => char::from(b'A' + d as u8),
            None => c,
        })
        .collect();
    format!("{number}-{}-7@{letters}", local.port())
}

/// The identity of one dialog from our side.
#[derive(Clone, Debug)]
pub struct Dialog {
    pub target: Target,
    /// Our SIP socket address (Via, Contact).
    pub local: SocketAddr,
    pub call_id: String,
    pub from_tag: String,
    /// The server's To-tag, once a response carried one.
    pub to_tag: Option<String>,
    /// The server's Contact URI: Request-URI of in-dialog requests (RFC 3261 §12.2.1.1).
    pub remote_target: Option<String>,
    /// The 2xx's Record-Route values in reverse (RFC 3261 §12.1.2): the Route headers of our
    /// requests inside the dialog, so a record-routing proxy in front of the server sees them.
    pub route_set: Vec<String>,
    pub cseq: u32,
}

impl Dialog {
    fn header_from(&self) -> String {
        format!(
            "\"{DISPLAY}\" <sip:{USER}@{}>;tag={}",
            host(self.local.ip()),
            self.from_tag
        )
    }

    fn header_to(&self) -> String {
        match &self.to_tag {
            Some(tag) => format!("<{}>;tag={tag}", self.target.uri),
            None => format!("<{}>", self.target.uri),
        }
    }

    /// An INVITE in the DP750's header order (shared/dp750/*.sip), with or without an offer.
    pub fn invite(&self, branch: &str, sdp: Option<&str>) -> String {
        let mut m = self.head("INVITE", &self.target.uri, branch);
        m.push_str("Privacy: none\r\n");
        let _ = write!(
            m,
            "P-Preferred-Identity: \"{DISPLAY}\" <sip:{USER}@{}>\r\n",
            host(self.local.ip())
        );
        m.push_str("Supported: replaces, path, timer, eventlist\r\n");
        let _ = write!(m, "Allow: {ALLOW}\r\n");
        if sdp.is_some() {
            m.push_str("Content-Type: application/sdp\r\n");
        }
        m.push_str("Accept: application/sdp, application/dtmf-relay\r\n");
        finish(&mut m, sdp);
        m
    }

    /// ACK: for a 2xx a new transaction to the remote target (RFC 3261 §13.2.2.4); for an
    /// error response the INVITE's own branch and Request-URI (§17.1.1.3).
    pub fn ack(&self, branch: &str, for_2xx: bool, sdp: Option<&str>) -> String {
        let ruri = match (&self.remote_target, for_2xx) {
            (Some(t), true) => t.as_str(),
            _ => self.target.uri.as_str(),
        };
        let mut m = self.head("ACK", ruri, branch);
        if for_2xx {
            self.push_routes(&mut m);
        }
        if sdp.is_some() {
            m.push_str("Content-Type: application/sdp\r\n");
        }
        finish(&mut m, sdp);
        m
    }

    fn push_routes(&self, m: &mut String) {
        for r in &self.route_set {
            let _ = write!(m, "Route: {r}\r\n");
        }
    }

    /// Start line and the headers every request shares, through User-Agent.
    fn head(&self, method: &str, ruri: &str, branch: &str) -> String {
        let mut m = String::with_capacity(1024);
        let _ = write!(m, "{method} {ruri} SIP/2.0\r\n");
        let _ = write!(
            m,
            "Via: SIP/2.0/UDP {};branch={branch};rport\r\n",
            hostport(self.local)
        );
        let _ = write!(m, "From: {}\r\n", self.header_from());
        let _ = write!(m, "To: {}\r\n", self.header_to());
        let _ = write!(m, "Call-ID: {}\r\n", self.call_id);
        let _ = write!(m, "CSeq: {} {method}\r\n", self.cseq);
        let _ = write!(
            m,
            "Contact: \"{DISPLAY}\" <sip:{USER}@{}>\r\n",
            hostport(self.local)
        );
        m.push_str("Max-Forwards: 70\r\n");
        let _ = write!(m, "User-Agent: {USER_AGENT}\r\n");
        m
    }

    /// An in-dialog or out-of-dialog non-INVITE request (BYE, OPTIONS).
    pub fn request(&self, method: &str, branch: &str) -> String {
        let ruri = self
            .remote_target
            .as_deref()
            .unwrap_or(self.target.uri.as_str());
        let mut m = self.head(method, ruri, branch);
        if self.to_tag.is_some() {
            self.push_routes(&mut m);
        }
        if method == "OPTIONS" {
            m.push_str("Accept: application/sdp\r\n");
        }
        finish(&mut m, None);
        m
    }
}

/// Content-Length padded the Grandstream way (`Content-Length:   305`), blank line, body.
fn finish(m: &mut String, body: Option<&str>) {
    let body = body.unwrap_or("");
    let _ = write!(m, "Content-Length:   {}\r\n\r\n{body}", body.len());
}

/// Our answer to a request the server sent us inside the dialog (BYE, OPTIONS, …): copy Via,
/// From, To, Call-ID and CSeq (RFC 3261 §8.2.6.2).
pub fn response_to(req: &Message<'_>, code: u16, reason: &str) -> String {
    let mut m = format!("SIP/2.0 {code} {reason}\r\n");
    const COPIED: [&str; 5] = ["Via", "From", "To", "Call-ID", "CSeq"];
    for (name, value) in &req.headers {
        let long = canonical_name(name);
        if let Some(copied) = COPIED.iter().find(|c| c.eq_ignore_ascii_case(long)) {
            let _ = write!(m, "{copied}: {value}\r\n");
        }
    }
    let _ = write!(m, "User-Agent: {USER_AGENT}\r\n");
    finish(&mut m, None);
    m
}

/// The DP750's SDP: own address (`sendrecv`) or the held party's (`recvonly`). `o=` carries the
/// media address, as Grandstream firmware does.
pub fn offer(media: SocketAddr, direction: &str) -> String {
    let (ip, family) = sdp_addr(media.ip());
    format!(
        "v=0\r\no={USER} 8000 8000 IN {family} {ip}\r\ns=SIP Call\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0 8 9 18 101\r\na={direction}\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\n\
         a=rtpmap:8 PCMA/8000\r\na=rtpmap:9 G722/8000\r\na=rtpmap:18 G729/8000\r\n\
         a=fmtp:18 annexb=no\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n",
        media.port()
    )
}

/// Our answer in the ACK to a late-offer 200: PCMU (PT 0), telephone-event on the server's PT if
/// it offered one, the server's ptime, and the direction that mirrors the server's.
pub fn answer(media: SocketAddr, dtmf_pt: Option<u8>, ptime: u32, direction: &str) -> String {
    let (ip, family) = sdp_addr(media.ip());
    let mut s = format!(
        "v=0\r\no={USER} 8000 8001 IN {family} {ip}\r\ns=SIP Call\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0",
        media.port()
    );
    if let Some(pt) = dtmf_pt {
        let _ = write!(s, " {pt}");
    }
    let _ = write!(
        s,
        "\r\na={direction}\r\na=rtpmap:0 PCMU/8000\r\na=ptime:{ptime}\r\n"
    );
    if let Some(pt) = dtmf_pt {
        let _ = write!(
            s,
            "a=rtpmap:{pt} telephone-event/8000\r\na=fmtp:{pt} 0-15\r\n"
        );
    }
    s
}

fn sdp_addr(ip: IpAddr) -> (String, &'static str) {
    match ip {
        IpAddr::V4(v4) => (v4.to_string(), "IP4"),
        IpAddr::V6(v6) => (v6.to_string(), "IP6"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// shared/dp750/invite-own-address.sip, headers only, to check our INVITE matches it.
    const DP750_HEAD: &str = "INVITE sip:123@192.168.1.100:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.168.1.50:5060;branch=z9hG4bK1748296302;rport\r\n\
From: \"Reception\" <sip:201@192.168.1.50>;tag=1195548471\r\n\
To: <sip:123@192.168.1.100:5060>\r\n\
Call-ID: 1380512936-5060-7@BJC.BGI.B.FA\r\n\
CSeq: 21 INVITE\r\n\
Contact: \"Reception\" <sip:201@192.168.1.50:5060>\r\n\
Max-Forwards: 70\r\n\
User-Agent: Grandstream DP750 1.0.3.37\r\n\
Privacy: none\r\n\
P-Preferred-Identity: \"Reception\" <sip:201@192.168.1.50>\r\n\
Supported: replaces, path, timer, eventlist\r\n\
Allow: INVITE, ACK, OPTIONS, CANCEL, BYE, SUBSCRIBE, NOTIFY, INFO, REFER, UPDATE, MESSAGE\r\n\
Content-Type: application/sdp\r\n\
Accept: application/sdp, application/dtmf-relay\r\n\
Content-Length:   305\r\n\r\n";

    fn dialog() -> Dialog {
        let local: SocketAddr = "192.168.1.50:5060".parse().unwrap();
        Dialog {
            target: Target::parse("sip:123@192.168.1.100:5060").unwrap(),
            local,
            call_id: call_id(1380512936, local),
            from_tag: "1195548471".into(),
            to_tag: None,
            remote_target: None,
            route_set: Vec::new(),
            cseq: 21,
        }
    }

    #[test]
    fn requests_in_the_dialog_carry_the_route_set_and_the_invite_does_not() {
        let mut d = dialog();
        d.to_tag = Some("abc".into());
        d.remote_target = Some("sip:moh@127.0.0.2:5060".into());
        d.route_set = vec!["<sip:127.0.0.1:5070;lr>".into()];
        let routes = |m: &str| m.lines().filter(|l| l.starts_with("Route: ")).count();
        assert_eq!(routes(&d.ack("z9hG4bK1", true, None)), 1);
        assert_eq!(routes(&d.request("BYE", "z9hG4bK2")), 1);
        assert!(d
            .request("BYE", "z9hG4bK2")
            .starts_with("BYE sip:moh@127.0.0.2:5060 SIP/2.0\r\n"));
        // The ACK of an error goes where the INVITE went, hop by hop (RFC 3261 §17.1.1.3).
        assert_eq!(routes(&d.ack("z9hG4bK1", false, None)), 0);
        assert_eq!(routes(&d.invite("z9hG4bK3", None)), 0);
    }

    #[test]
    fn invite_is_dp750_shaped() {
        // The capture's From host is the registrar (192.168.1.10); ours is our own address,
        // otherwise every header and the SDP are the DP750's, byte for byte.
        let sdp = offer("192.168.1.50:5004".parse().unwrap(), "sendrecv");
        let inv = dialog().invite("z9hG4bK1748296302", Some(&sdp));
        let (head, body) = inv.split_once("\r\n\r\n").unwrap();
        assert_eq!(format!("{head}\r\n\r\n"), DP750_HEAD);
        assert_eq!(body.len(), 305);
        assert!(body.starts_with("v=0\r\no=201 8000 8000 IN IP4 192.168.1.50\r\ns=SIP Call\r\n"));
    }

    #[test]
    fn late_offer_invite_has_no_content_type() {
        let inv = dialog().invite("z9hG4bK1", None);
        assert!(!inv.contains("Content-Type"));
        assert!(inv.ends_with(
            "Accept: application/sdp, application/dtmf-relay\r\nContent-Length:   0\r\n\r\n"
        ));
    }

    #[test]
    fn targets() {
        let t = Target::parse("sip:123@127.0.0.1:5070").unwrap();
        assert_eq!(
            (t.user.as_deref(), t.host.as_str(), t.port),
            (Some("123"), "127.0.0.1", 5070)
        );
        let t = Target::parse("sip:127.0.0.1").unwrap();
        assert_eq!((t.user, t.port), (None, 5060));
        let t = Target::parse("sip:moh@[::1]:5062;transport=udp").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 5062));
        assert_eq!(t.resolve().unwrap(), "[::1]:5062".parse().unwrap());
        assert!(Target::parse("tel:123").is_err());
        assert!(Target::parse("sip:x@h:port").is_err());
        assert!(Target::parse("sip:x@").is_err());
    }

    #[test]
    fn answering_a_server_request_copies_the_dialog_headers() {
        let bye = Message::parse(
            b"BYE sip:201@127.0.0.1:4000 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx\r\n\
              f: <sip:123@h>;tag=s\r\nTo: <sip:201@h>;tag=c\r\nCall-ID: abc\r\nCSeq: 1 BYE\r\nMax-Forwards: 70\r\n\r\n",
        )
        .unwrap();
        let ok = response_to(&bye, 200, "OK");
        assert!(ok.starts_with("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx\r\nFrom: <sip:123@h>;tag=s\r\n"));
        assert!(ok.contains("CSeq: 1 BYE\r\n") && !ok.contains("Max-Forwards"));
    }

    #[test]
    fn call_id_letters() {
        assert_eq!(
            call_id(914337310, "192.168.1.50:5060".parse().unwrap()),
            "914337310-5060-7@BJC.BGI.B.FA"
        );
    }
}
