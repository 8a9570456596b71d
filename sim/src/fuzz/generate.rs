//! Well-formed SIP the fuzzer writes: the requests of the calls it places as a phone would
//! (INVITE with SDP, ACK, re-INVITE hold and unhold, UPDATE, INFO, OPTIONS, CANCEL, BYE), its
//! answers to the server's requests and responses, and requests of every method from nobody
//! in particular. The addresses they come from are here too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use onhold_core::{sip, Transport};

use super::msg::Msg;
use super::Dice;
use crate::rng::Rng;

/// The server's SIP addresses (IPv4 and IPv6).
pub const SERVER_V4: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 100)), 5060);
pub const SERVER_V6: SocketAddr = SocketAddr::new(
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x100)),
    5060,
);

/// Phones inside the default `allow` networks: the fuzzer's calls come from these. One is on
/// loopback and one link-local, whose media may stay in that scope.
pub fn peers() -> Vec<SocketAddr> {
    [
        "192.168.1.50:5060",
        "192.168.1.51:5060",
        "192.168.1.52:5062",
        "192.168.7.9:5060",
        "10.0.0.7:5060",
        "10.20.30.40:5080",
        "172.16.5.5:5060",
        "100.64.1.1:5060",
        "127.0.0.1:5070",
        "169.254.7.7:5060",
        "[fd00::50]:5060",
    ]
    .iter()
    .filter_map(|s| s.parse().ok())
    .collect()
}

/// Sources outside `allow`: the shipped ACL drops them.
pub fn public() -> Vec<SocketAddr> {
    [
        "203.0.113.5:5060",
        "198.51.100.77:5060",
        "8.8.8.8:5060",
        "1.2.3.4:40000",
        "[2001:db8::7]:5060",
    ]
    .iter()
    .filter_map(|s| s.parse().ok())
    .collect()
}

/// Attackers inside `allow` that never appear in any message text the fuzzer writes (so no
/// Contact, Record-Route or resolved name can make one a dialog's peer): a request with a
/// dialog's right tags from one of these must not touch the dialog.
pub fn attacker(rng: &mut Rng) -> SocketAddr {
    if rng.one_in(5) {
        let ip = Ipv6Addr::new(0xfd66, 0, 0, 0, 0, 0, 0, 1 + rng.below(9) as u16);
        return SocketAddr::new(ip.into(), 5060);
    }
    let ip = Ipv4Addr::new(172, 31, 250, 1 + rng.below(9) as u8);
    SocketAddr::new(ip.into(), 5060 + rng.below(3) as u16)
}

/// Addresses the fuzzer's resolver answers with (never a source).
pub fn resolved(rng: &mut Rng) -> IpAddr {
    Ipv4Addr::new(10, 99, 0, 1 + rng.below(9) as u8).into()
}

/// A spoofed source: any address at all.
pub fn spoofed(rng: &mut Rng) -> SocketAddr {
    let ip: IpAddr = match rng.below(6) {
        0 => Ipv6Addr::from(((rng.next_u64() as u128) << 64) | rng.next_u64() as u128).into(),
        1 => Ipv6Addr::from(0xffff_0000_0000u128 | rng.next_u64() as u32 as u128).into(),
        2 => Ipv4Addr::from(0x0a00_0000 | (rng.next_u64() as u32 & 0x00ff_ffff)).into(),
        _ => Ipv4Addr::from(rng.next_u64() as u32).into(),
    };
    SocketAddr::new(ip, rng.next_u64() as u16)
}

/// The server address a source talks to (same family).
pub fn server_for(remote: SocketAddr) -> SocketAddr {
    match remote.ip() {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => SERVER_V6,
        _ => SERVER_V4,
    }
}

/// An IP as it goes in a URI host: IPv6 in brackets.
pub fn host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

pub fn via_transport(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "UDP",
        Transport::Tcp => "TCP",
    }
}

/// The Request-URI users the fuzzer dials (music classes, numbers, odd ones).
const USERS: &[&str] = &[
    "moh",
    "123",
    "hold",
    "default",
    "music",
    "*97",
    "+14155550100",
    "",
];

/// SDP as a phone offers it. `dir` is the direction attribute (`sendrecv`, `sendonly`, …).
pub fn sdp(media: SocketAddr, dir: &str, version: u64, variant: u64) -> Vec<u8> {
    let (family, addr) = match media.ip() {
        IpAddr::V4(v4) => ("IP4", v4.to_string()),
        IpAddr::V6(v6) => ("IP6", v6.to_string()),
    };
    let formats = match variant % 5 {
        0 => "0 8 9 101",
        1 => "9 0 101",
        2 => "8",
        3 => "18 0",
        _ => "0 8 9 18 101",
    };
    let mux = if variant % 7 == 3 {
        "a=rtcp-mux\r\n"
    } else {
        ""
    };
    let ptime = [20, 20, 30, 10, 40, 60][(variant % 6) as usize];
    format!(
        "v=0\r\no=fuzz 8000 {version} IN {family} {addr}\r\ns=SIP Call\r\nc=IN {family} {addr}\r\nt=0 0\r\nm=audio {port} RTP/AVP {formats}\r\na={dir}\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:9 G722/8000\r\na=rtpmap:18 G729/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:{ptime}\r\n{mux}",
        port = media.port()
    )
    .into_bytes()
}

/// The caller's side of one call the fuzzer places: the identifiers every request of the
/// dialog repeats.
#[derive(Clone, Debug)]
pub struct Leg {
    pub call_id: String,
    pub from_tag: String,
    /// The server's tag (empty until its 2xx).
    pub to_tag: String,
    pub cseq: u32,
    pub user: String,
    pub transport: Transport,
    /// The server's address and the phone's.
    pub local: SocketAddr,
    pub peer: SocketAddr,
    /// The phone's Contact host: its IP, or a name the server has to resolve.
    pub contact_host: String,
    /// Where the phone takes its RTP.
    pub media: SocketAddr,
    pub sdp_version: u64,
    pub sdp_variant: u64,
    /// `Record-Route` of the INVITE (a proxy on the phone's own address, or a name).
    pub record_route: Option<String>,
    pub session_expires: Option<u32>,
    branches: u64,
}

impl Leg {
    pub fn new(rng: &mut Rng, n: u64, peer: SocketAddr, transport: Transport) -> Leg {
        let contact_host = if rng.one_in(10) {
            format!("phone-{}.lan", rng.below(4))
        } else {
            host(peer.ip())
        };
        // Media on the phone's own address mostly, else a media gateway in the same scope.
        let media_ip = match peer.ip() {
            IpAddr::V4(v4) if !v4.is_loopback() && !v4.is_link_local() && rng.one_in(4) => {
                IpAddr::V4(Ipv4Addr::new(192, 168, 2, 1 + rng.below(200) as u8))
            }
            IpAddr::V4(v4) if v4.is_loopback() && rng.one_in(2) => {
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))
            }
            ip => ip,
        };
        let record_route = match rng.below(12) {
            0 => Some(format!("<sip:{};lr>", host(peer.ip()))),
            1 => Some("<sip:proxy.lan;lr>".to_string()),
            _ => None,
        };
        Leg {
            call_id: format!("{:016x}-{n}@fuzz", rng.next_u64()),
            from_tag: token(rng),
            to_tag: String::new(),
            cseq: 1 + rng.below(1000) as u32,
            user: USERS[rng.below(USERS.len() as u64) as usize].to_string(),
            transport,
            local: server_for(peer),
            peer,
            contact_host,
            media: SocketAddr::new(media_ip, 20_000 + 2 * rng.below(5000) as u16),
            sdp_version: 1,
            sdp_variant: rng.next_u64(),
            record_route,
            session_expires: if rng.one_in(6) {
                Some([90, 120, 1800, 30][rng.below(4) as usize])
            } else {
                None
            },
            branches: rng.next_u64() >> 16,
        }
    }

    pub fn next_branch(&mut self) -> String {
        self.branches += 1;
        format!("z9hG4bKfz{:x}", self.branches)
    }

    /// A request of this dialog with the given tags (the dialog's own, or an attacker's).
    #[allow(clippy::too_many_arguments)]
    pub fn request_tagged(
        &self,
        method: &str,
        cseq: u32,
        branch: &str,
        from_tag: &str,
        to_tag: &str,
        body: Option<Vec<u8>>,
    ) -> Msg {
        let server = host(self.local.ip());
        let port = self.local.port();
        let user = &self.user;
        let uri = if user.is_empty() {
            format!("sip:{server}:{port}")
        } else {
            format!("sip:{user}@{server}:{port}")
        };
        let to_tag = if to_tag.is_empty() {
            String::new()
        } else {
            format!(";tag={to_tag}")
        };
        let mut m = Msg::new(format!("{method} {uri} SIP/2.0"))
            .header(
                "Via",
                format!(
                    "SIP/2.0/{} {};branch={branch};rport",
                    via_transport(self.transport),
                    self.peer
                ),
            )
            .header(
                "From",
                format!("\"Fuzz\" <sip:201@{}>;tag={from_tag}", host(self.peer.ip())),
            )
            .header("To", format!("<{uri}>{to_tag}"))
            .header("Call-ID", &self.call_id)
            .header("CSeq", format!("{cseq} {method}"))
            .header(
                "Contact",
                format!("<sip:201@{}:{}>", self.contact_host, self.peer.port()),
            )
            .header("Max-Forwards", "70")
            .header("User-Agent", "onhold-fuzz");
        if method == "INVITE" || method == "UPDATE" {
            m.push("Supported", "replaces, timer");
            m.push("Allow", "INVITE, ACK, OPTIONS, CANCEL, BYE, INFO, UPDATE");
            if let Some(se) = self.session_expires {
                m.push("Session-Expires", &format!("{se};refresher=uac"));
            }
            if method == "INVITE" && self.to_tag.is_empty() {
                if let Some(rr) = &self.record_route {
                    m.push("Record-Route", rr);
                }
            }
        }
        match body {
            Some(b) if method == "INFO" => m.body("application/dtmf-relay", b),
            Some(b) => m.body("application/sdp", b),
            None => m,
        }
    }

    /// A request of this dialog with its own tags.
    pub fn request(&self, method: &str, cseq: u32, branch: &str, body: Option<Vec<u8>>) -> Msg {
        self.request_tagged(method, cseq, branch, &self.from_tag, &self.to_tag, body)
    }

    /// The next request of the dialog: a new CSeq and branch.
    pub fn next(&mut self, method: &str, body: Option<Vec<u8>>) -> (Msg, u32, String) {
        self.cseq += 1;
        let branch = self.next_branch();
        (
            self.request(method, self.cseq, &branch, body),
            self.cseq,
            branch,
        )
    }

    /// The phone's offer or answer with direction `dir`.
    pub fn sdp(&mut self, dir: &str) -> Vec<u8> {
        self.sdp_version += 1;
        sdp(self.media, dir, self.sdp_version, self.sdp_variant)
    }
}

/// The response a phone gives to a request of the server's (BYE, re-INVITE, UPDATE,
/// OPTIONS): its Via, From, To, Call-ID and CSeq copied back (RFC 3261 §8.2.6.2).
pub fn response_to(
    req: &sip::Message<'_>,
    code: u16,
    contact: SocketAddr,
    sdp: Option<Vec<u8>>,
) -> Msg {
    let mut m = Msg::new(format!("SIP/2.0 {code} {}", sip::reason_phrase(code)));
    for v in req.headers("Via") {
        m.push("Via", v);
    }
    for name in ["From", "To", "Call-ID", "CSeq"] {
        if let Some(v) = req.header(name) {
            m.push(name, v);
        }
    }
    if (200..300).contains(&code) && matches!(req.method(), Some(sip::Method::Invite)) {
        m.push("Contact", &format!("<sip:201@{contact}>"));
    }
    match sdp {
        Some(b) => m.body("application/sdp", b),
        None => m,
    }
}

/// The ACK a UA sends for the server's final response to an INVITE: for a 2xx a new
/// transaction to the Contact, for any other final the INVITE's own branch (RFC 3261 §17.1.1.3,
/// §13.2.2.4).
pub fn ack_for(
    resp: &sip::Message<'_>,
    transport: Transport,
    me: SocketAddr,
    branch: &str,
) -> Option<Msg> {
    let code = resp.status()?;
    let (cseq, _) = resp.cseq().ok()?;
    let to = resp.header("To")?;
    let from = resp.header("From")?;
    let call_id = resp.header("Call-ID")?;
    let top_via = resp.headers("Via").next()?;
    let (uri, via) = if (200..300).contains(&code) {
        let uri = resp
            .header("Contact")
            .and_then(|c| {
                let s = c.find('<')? + 1;
                let e = c[s..].find('>')? + s;
                Some(c[s..e].to_string())
            })
            .unwrap_or_else(|| format!("sip:onhold@{}", host(server_for(me).ip())));
        let via = format!(
            "SIP/2.0/{} {me};branch={branch};rport",
            via_transport(transport)
        );
        (uri, via)
    } else {
        let uri = resp
            .header("To")
            .and_then(|t| {
                let s = t.find('<')? + 1;
                let e = t[s..].find('>')? + s;
                Some(t[s..e].to_string())
            })
            .unwrap_or_else(|| "sip:onhold@invalid".into());
        (uri, top_via.to_string())
    };
    Some(
        Msg::new(format!("ACK {uri} SIP/2.0"))
            .header("Via", via)
            .header("From", from)
            .header("To", to)
            .header("Call-ID", call_id)
            .header("CSeq", format!("{cseq} ACK"))
            .header("Max-Forwards", "70"),
    )
}

/// Methods for requests from nobody in particular: the ones the server knows, ones it does
/// not, and odd spellings.
const METHODS: &[&str] = &[
    "INVITE",
    "INVITE",
    "INVITE",
    "OPTIONS",
    "OPTIONS",
    "BYE",
    "CANCEL",
    "ACK",
    "INFO",
    "UPDATE",
    "REGISTER",
    "SUBSCRIBE",
    "NOTIFY",
    "MESSAGE",
    "PRACK",
    "REFER",
    "PUBLISH",
    "invite",
    "FOO",
];

/// A request of a random method with fresh identifiers from `from`: some with a To tag (an
/// unknown dialog), INVITEs mostly with an offer.
pub fn random_request(rng: &mut Rng, from: SocketAddr, transport: Transport, n: u64) -> Msg {
    let method = *rng.pick(METHODS);
    let mut leg = Leg::new(rng, n, from, transport);
    if rng.one_in(3) {
        leg.to_tag = token(rng);
    }
    let body = match method {
        "INVITE" | "UPDATE" if !rng.one_in(6) => {
            let dir = *rng.pick(DIRECTIONS);
            Some(leg.sdp(dir))
        }
        "INFO" | "MESSAGE" if rng.one_in(2) => Some(b"Signal=5\r\nDuration=160\r\n".to_vec()),
        _ => None,
    };
    let (m, _, _) = leg.next(method, body);
    m
}

/// A response nobody asked for (or that matches a transaction by chance).
pub fn stray_response(rng: &mut Rng, from: SocketAddr, n: u64) -> Msg {
    const CODES: &[u16] = &[
        100, 180, 183, 200, 202, 302, 401, 404, 481, 487, 491, 500, 503, 603, 699, 999,
    ];
    let code = *rng.pick(CODES);
    let mut leg = Leg::new(rng, n, from, Transport::Udp);
    leg.to_tag = token(rng);
    let method = *rng.pick(&["INVITE", "BYE", "UPDATE", "OPTIONS", "CANCEL"]);
    let (req, _, _) = leg.next(method, None);
    let mut m = Msg::parse(&req.to_bytes());
    m.start = format!("SIP/2.0 {code} Whatever").into_bytes();
    m.auto_length = true;
    m
}

pub const DIRECTIONS: &[&str] = &["sendrecv", "sendrecv", "sendonly", "recvonly", "inactive"];

/// A tag or branch of the fuzzer's: `fz` and hex, never of the server's shape (16 hex digits
/// alone), so that a replay can tell the server's tokens from the fuzzer's.
pub fn token(rng: &mut Rng) -> String {
    format!("fz{:x}", rng.next_u64())
}
