//! A bare-bones DP750-shaped caller over UDP, for the cases a SIPp scenario cannot script
//! cleanly: a caller that receives the server's BYE and deliberately never answers it.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// One established call (INVITE, 200, ACK done).
pub struct Caller {
    sock: UdpSocket,
    pub local: SocketAddr,
}

impl Caller {
    /// Calls `server` with a DP750 shape (a) INVITE whose SDP names `rtp`, waits (bounded) for
    /// the 200 and ACKs it. Panics if no 200 comes within 5 s.
    pub fn call(server: SocketAddr, rtp: SocketAddr) -> Caller {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind caller");
        let local = sock.local_addr().expect("local_addr");
        let port = local.port();
        let (call_id, tag) = (format!("{port}-5060-7@BJC.BGI.B.FA"), format!("40{port}"));
        let sdp = format!(
            "v=0\r\no=201 8000 8000 IN IP4 {ip}\r\ns=SIP Call\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
             m=audio {rport} RTP/AVP 0 8 101\r\na=sendrecv\r\na=rtpmap:0 PCMU/8000\r\n\
             a=ptime:20\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
             a=fmtp:101 0-15\r\n",
            ip = rtp.ip(),
            rport = rtp.port()
        );
        let invite = format!(
            "INVITE sip:123@{server} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK{port}1;rport\r\n\
             From: \"Reception\" <sip:201@{ip}>;tag={tag}\r\n\
             To: <sip:123@{server}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 21 INVITE\r\n\
             Contact: \"Reception\" <sip:201@{local}>\r\n\
             Max-Forwards: 70\r\n\
             User-Agent: Grandstream DP750 1.0.3.37\r\n\
             Supported: replaces, path, timer, eventlist\r\n\
             Content-Type: application/sdp\r\n\
             Content-Length:   {len}\r\n\r\n{sdp}",
            ip = local.ip(),
            len = sdp.len()
        );
        sock.send_to(invite.as_bytes(), server)
            .expect("send INVITE");
        let deadline = Instant::now() + Duration::from_secs(5);
        let ok = loop {
            let msg = recv(&sock, deadline.saturating_duration_since(Instant::now()))
                .expect("no final response to INVITE within 5 s");
            if msg.starts_with("SIP/2.0 200") {
                break msg;
            }
            assert!(msg.starts_with("SIP/2.0 1"), "INVITE answered with {msg}");
        };
        let to = header(&ok, "To").expect("200 without To");
        let contact = header(&ok, "Contact").expect("200 without Contact");
        let target = contact
            .split_once('<')
            .and_then(|(_, r)| r.split_once('>'))
            .map_or(contact, |(uri, _)| uri);
        let ack = format!(
            "ACK {target} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK{port}2;rport\r\n\
             From: \"Reception\" <sip:201@{ip}>;tag={tag}\r\n\
             To: {to}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 21 ACK\r\n\
             Max-Forwards: 70\r\n\
             Content-Length: 0\r\n\r\n",
            ip = local.ip()
        );
        sock.send_to(ack.as_bytes(), server).expect("send ACK");
        Caller { sock, local }
    }

    /// The next SIP request the server sends us within `timeout` (responses are skipped).
    pub fn recv_request(&self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let msg = recv(&self.sock, left)?;
            if !msg.starts_with("SIP/2.0") {
                return Some(msg);
            }
        }
    }
}

fn recv(sock: &UdpSocket, timeout: Duration) -> Option<String> {
    sock.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
        .ok()?;
    let mut buf = [0u8; 8192];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// The first header of that name in a SIP message, trimmed.
pub fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
}
