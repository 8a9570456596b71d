//! A bare-bones DP750-shaped caller over UDP, for what a SIPp scenario cannot script cleanly:
//! offers built per test (codecs, ptime, profile), and a caller that receives the server's BYE
//! and deliberately never answers it.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use onhold_probe::msg::Message;

/// An SDP offer shaped like the DP750's: `fmts` on the m= line (`"0 8 9 101"`), rtpmaps for
/// the ones we know, the direction attribute before them, `a=ptime`.
pub fn dp750_offer(
    rtp: SocketAddr,
    proto: &str,
    fmts: &str,
    ptime: u32,
    direction: &str,
) -> String {
    let ip = rtp.ip();
    let mut sdp = format!(
        "v=0\r\no=201 8000 8000 IN IP4 {ip}\r\ns=SIP Call\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} {proto} {fmts}\r\na={direction}\r\n",
        port = rtp.port()
    );
    for f in fmts.split(' ') {
        let map = match f {
            "0" => "PCMU/8000",
            "8" => "PCMA/8000",
            "9" => "G722/8000",
            "18" => "G729/8000",
            "101" => "telephone-event/8000",
            _ => continue,
        };
        sdp.push_str(&format!("a=rtpmap:{f} {map}\r\n"));
        if f == "101" {
            sdp.push_str("a=fmtp:101 0-15\r\n");
        }
    }
    sdp.push_str(&format!("a=ptime:{ptime}\r\n"));
    sdp
}

/// One INVITE dialog from our side.
pub struct Caller {
    sock: UdpSocket,
    server: SocketAddr,
    pub local: SocketAddr,
    call_id: String,
    tag: String,
    /// The To header of the final response (with the server's tag).
    to: String,
    /// The server's Contact URI (Request-URI of our in-dialog requests).
    target: String,
    /// The final response to the INVITE.
    pub answer: String,
}

impl Caller {
    /// Calls `server` with a DP750 shape (a) offer naming `rtp` (PCMU, PCMA, telephone-event)
    /// and ACKs the 200. Panics unless the call is answered 200 within 5 s.
    pub fn call(server: SocketAddr, rtp: SocketAddr) -> Caller {
        let c = Caller::invite(
            server,
            &dp750_offer(rtp, "RTP/AVP", "0 8 101", 20, "sendrecv"),
        );
        assert!(c.status() == 200, "INVITE answered {}", c.answer);
        c
    }

    /// Sends a DP750-shaped INVITE with `sdp`, waits (5 s bound) for the final response and
    /// ACKs it (in-dialog for 2xx, hop-by-hop otherwise).
    pub fn invite(server: SocketAddr, sdp: &str) -> Caller {
        Caller::invite_with(server, sdp, "")
    }

    /// [`Caller::invite`] with `extra` header lines (each ending in CRLF) before Content-Type.
    pub fn invite_with(server: SocketAddr, sdp: &str, extra: &str) -> Caller {
        Caller::invite_to(server, &format!("sip:123@{server}"), sdp, extra)
    }

    /// [`Caller::invite_with`] for the Request-URI and To `uri` (through a proxy: the user it
    /// looks up), sent to `server`.
    pub fn invite_to(server: SocketAddr, uri: &str, sdp: &str, extra: &str) -> Caller {
        let (sock, local, call_id, tag, branch) = send_invite(server, uri, sdp, extra);
        let port = local.port();
        let deadline = Instant::now() + Duration::from_secs(5);
        let answer = loop {
            let text = recv(&sock, deadline.saturating_duration_since(Instant::now()))
                .expect("no final response to INVITE within 5 s");
            if Message::parse(text.as_bytes()).is_some_and(|m| m.code() >= Some(200)) {
                break text;
            }
        };
        let msg = Message::parse(answer.as_bytes()).expect("a SIP response");
        let to = msg.header("To").expect("response without To").to_owned();
        let target = msg
            .contact_uri()
            .map_or(format!("sip:123@{server}"), str::to_owned);
        let c = Caller {
            sock,
            server,
            local,
            call_id,
            tag,
            to,
            target,
            answer,
        };
        // RFC 3261 §17.1.1.3: a non-2xx is ACKed in its transaction (same branch, Request-URI
        // of the INVITE); a 2xx in the dialog, with a new branch.
        let (uri, ack_branch) = if c.status() == 200 {
            (c.target.clone(), format!("z9hG4bK{port}2"))
        } else {
            (format!("sip:123@{server}"), branch)
        };
        c.send(&c.request("ACK", &uri, &ack_branch, 21));
        c
    }

    /// The final response's status code.
    pub fn status(&self) -> u16 {
        Message::parse(self.answer.as_bytes())
            .and_then(|m| m.code())
            .unwrap_or(0)
    }

    /// The answer's SDP body.
    pub fn answer_sdp(&self) -> String {
        Message::parse(self.answer.as_bytes())
            .map(|m| String::from_utf8_lossy(&m.body).into_owned())
            .unwrap_or_default()
    }

    /// Hangs up; returns the status of the response to our BYE (0 if none within 2 s).
    pub fn bye(&self) -> u16 {
        let port = self.local.port();
        self.send(&self.request("BYE", &self.target, &format!("z9hG4bK{port}3"), 22));
        let deadline = Instant::now() + Duration::from_secs(2);
        while let Some(text) = recv(
            &self.sock,
            deadline.saturating_duration_since(Instant::now()),
        ) {
            let Some(m) = Message::parse(text.as_bytes()) else {
                continue;
            };
            if let (Some(code), Some((22, "BYE"))) = (m.code(), m.cseq()) {
                return code;
            }
        }
        0
    }

    fn request(&self, method: &str, uri: &str, branch: &str, cseq: u32) -> String {
        format!(
            "{method} {uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
             From: \"Reception\" <sip:201@{ip}>;tag={tag}\r\n\
             To: {to}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\n\
             Max-Forwards: 70\r\n\
             User-Agent: Grandstream DP750 1.0.3.37\r\n\
             Content-Length: 0\r\n\r\n",
            local = self.local,
            ip = self.local.ip(),
            tag = self.tag,
            to = self.to,
            call_id = self.call_id,
        )
    }

    fn send(&self, msg: &str) {
        self.sock
            .send_to(msg.as_bytes(), self.server)
            .expect("send to server");
    }

    /// The next SIP request the server sends us within `timeout` (responses are skipped).
    pub fn recv_request(&self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let text = recv(&self.sock, left)?;
            if Message::parse(text.as_bytes()).is_some_and(|m| m.method().is_some()) {
                return Some(text);
            }
        }
    }
}

/// Sends a DP750-shaped INVITE from a fresh socket; returns the socket, its address, the
/// Call-ID, From-tag and Via branch used.
fn send_invite(
    server: SocketAddr,
    uri: &str,
    sdp: &str,
    extra: &str,
) -> (UdpSocket, SocketAddr, String, String, String) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind caller");
    let local = sock.local_addr().expect("local_addr");
    let port = local.port();
    let (call_id, tag) = (format!("{port}-5060-7@BJC.BGI.B.FA"), format!("40{port}"));
    let branch = format!("z9hG4bK{port}1");
    let invite = format!(
        "INVITE {uri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
             From: \"Reception\" <sip:201@{ip}>;tag={tag}\r\n\
             To: <{uri}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 21 INVITE\r\n\
             Contact: \"Reception\" <sip:201@{local}>\r\n\
             Max-Forwards: 70\r\n\
             User-Agent: Grandstream DP750 1.0.3.37\r\n\
             Supported: replaces, path, timer, eventlist\r\n\
             {extra}\
             Content-Type: application/sdp\r\n\
             Accept: application/sdp, application/dtmf-relay\r\n\
             Content-Length:   {len}\r\n\r\n{sdp}",
        ip = local.ip(),
        len = sdp.len()
    );
    sock.send_to(invite.as_bytes(), server)
        .expect("send INVITE");
    (sock, local, call_id, tag, branch)
}

/// Sends an INVITE and never ACKs: every message received within `listen`, with its arrival
/// time (to watch the 200 being retransmitted).
pub fn invite_without_ack(
    server: SocketAddr,
    sdp: &str,
    listen: Duration,
) -> Vec<(Instant, String)> {
    let (sock, ..) = send_invite(server, &format!("sip:123@{server}"), sdp, "");
    let deadline = Instant::now() + listen;
    let mut got = Vec::new();
    while let Some(m) = recv(&sock, deadline.saturating_duration_since(Instant::now())) {
        got.push((Instant::now(), m));
    }
    got
}

fn recv(sock: &UdpSocket, timeout: Duration) -> Option<String> {
    if timeout.is_zero() {
        return None;
    }
    sock.set_read_timeout(Some(timeout)).ok()?;
    let mut buf = [0u8; 8192];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// The first header of that name in a SIP message, trimmed (compact forms understood).
pub fn header(msg: &str, name: &str) -> Option<String> {
    Message::parse(msg.as_bytes())?
        .header(name)
        .map(str::to_owned)
}
