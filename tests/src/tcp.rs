//! SIP over TCP from the test's side: messages framed by Content-Length (RFC 3261 §18.3), a
//! DP750-shaped caller on its own connection, and one-shot requests for readiness checks.
//!
//! The caller names its connection's own address in its Via and Contact
//! (`<sip:201@127.0.0.1:PORT;transport=tcp>`), as a phone that sends from the port it listens on
//! does: while that connection is open, a request to the Contact belongs on it (RFC 3261
//! §18.1.1 reuses an open connection to the destination); once the caller closes it, the
//! server has to open a new one to the same address, where the test may then listen. That
//! connection's socket has SO_REUSEADDR, as a listener's has: without it, the port it leaves in
//! TIME_WAIT could not be listened on again for a minute.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::FromRawFd;
use std::time::{Duration, Instant};

use onhold_probe::msg::Message;

use crate::caller::dp750_offer;

/// One TCP connection carrying SIP, read a whole message at a time.
pub struct SipStream {
    stream: TcpStream,
    buf: Vec<u8>,
    /// The peer closed its side.
    eof: bool,
    /// Requests sent with [`SipStream::request`], for their branches and Call-IDs.
    requests: u32,
}

impl SipStream {
    /// Connects to `to` (bounded by `timeout`).
    pub fn connect(to: SocketAddr, timeout: Duration) -> io::Result<SipStream> {
        Ok(SipStream::from(TcpStream::connect_timeout(&to, timeout)?))
    }

    /// Connects to `to` (an IPv4 address) from a socket with SO_REUSEADDR, so that once this
    /// connection is closed its local port can be listened on at once (a listener may then
    /// share the port with the connection's TIME_WAIT only if both set the option). The
    /// connect blocks: on loopback it succeeds or is refused at once.
    pub fn connect_reusable(to: SocketAddr) -> io::Result<SipStream> {
        raw_connect(to, None, true)
    }

    /// Connects to `to` (an IPv4 address) from `from` (any port): a second loopback address
    /// such as 127.0.0.2 is a second client host as far as the server can tell.
    pub fn connect_from(from: Ipv4Addr, to: SocketAddr) -> io::Result<SipStream> {
        raw_connect(to, Some(from), false)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().expect("local_addr")
    }

    pub fn peer_addr(&self) -> SocketAddr {
        self.stream.peer_addr().expect("peer_addr")
    }

    pub fn send(&mut self, msg: &str) -> io::Result<()> {
        self.stream.write_all(msg.as_bytes())
    }

    /// The next whole message within `timeout`; `None` on timeout or once the peer closed.
    /// Keep-alive CRLFs between messages (RFC 5626 §3.5.1) are skipped.
    pub fn recv(&mut self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(m) = take_message(&mut self.buf) {
                return Some(m);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if self.eof || left.is_zero() {
                return None;
            }
            self.stream.set_read_timeout(Some(left)).ok()?;
            let mut chunk = [0u8; 8192];
            match self.stream.read(&mut chunk) {
                Ok(0) => self.eof = true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return None
                }
                Err(_) => self.eof = true,
            }
        }
    }

    /// The next request within `timeout` (responses, e.g. to our requests, are skipped).
    pub fn recv_request(&mut self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.recv(deadline.saturating_duration_since(Instant::now()))?;
            if Message::parse(m.as_bytes()).is_some_and(|m| m.method().is_some()) {
                return Some(m);
            }
        }
    }

    /// Whether the peer has closed its side (checked without waiting long).
    pub fn peer_closed(&mut self) -> bool {
        let _ = self.recv(Duration::from_millis(1));
        self.eof
    }

    /// Closes both directions; the socket goes when `self` drops.
    pub fn close(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

impl From<TcpStream> for SipStream {
    fn from(stream: TcpStream) -> SipStream {
        SipStream {
            stream,
            buf: Vec::new(),
            eof: false,
            requests: 0,
        }
    }
}

/// A blocking IPv4 connect to `to`, bound first to `from` (port chosen by the kernel) when
/// given, with SO_REUSEADDR when `reuse`.
fn raw_connect(to: SocketAddr, from: Option<Ipv4Addr>, reuse: bool) -> io::Result<SipStream> {
    let SocketAddr::V4(to) = to else {
        return Err(io::Error::new(io::ErrorKind::Unsupported, "IPv4 only"));
    };
    // SAFETY: socket(2) with constant arguments; the descriptor is checked, then owned by
    // the TcpStream, which closes it on every path below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh socket nothing else owns.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    if reuse {
        let one: libc::c_int = 1;
        // SAFETY: setsockopt(2) on our socket with a pointer to a live c_int and its size.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_REUSEADDR,
                std::ptr::from_ref(&one).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let sin = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(ip.octets()),
        },
        sin_zero: [0; 8],
    };
    if let Some(ip) = from {
        let local = sin(ip, 0);
        // SAFETY: bind(2) on our socket with a pointer to a live sockaddr_in and its size.
        let r = unsafe {
            libc::bind(
                fd,
                std::ptr::from_ref(&local).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let remote = sin(*to.ip(), to.port());
    // SAFETY: connect(2) on our socket with a pointer to a live sockaddr_in and its size.
    let r = unsafe {
        libc::connect(
            fd,
            std::ptr::from_ref(&remote).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(SipStream::from(stream))
}

/// Removes one whole message from the front of `buf`: its head up to the blank line, then
/// Content-Length bytes of body (0 when the header is missing, which RFC 3261 §18.3 does not
/// allow on TCP, so nothing of ours or the server's relies on it).
fn take_message(buf: &mut Vec<u8>) -> Option<String> {
    let skip = buf
        .iter()
        .take_while(|b| matches!(b, b'\r' | b'\n'))
        .count();
    buf.drain(..skip);
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let len = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            let name = name.trim();
            (name.eq_ignore_ascii_case("Content-Length") || name.eq_ignore_ascii_case("l"))
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    if buf.len() < head_end + len {
        return None;
    }
    let msg: Vec<u8> = buf.drain(..head_end + len).collect();
    Some(String::from_utf8_lossy(&msg).into_owned())
}

/// Accepts one connection on `listener` within `timeout`.
pub fn accept(listener: &TcpListener, timeout: Duration) -> Option<SipStream> {
    listener.set_nonblocking(true).ok()?;
    let (stream, _) = crate::wait_for(timeout, || listener.accept().ok())?;
    stream.set_nonblocking(false).ok()?;
    Some(SipStream::from(stream))
}

/// Sends one out-of-dialog request of `method` over a new connection to `to` and returns the
/// first response, if one came within `timeout`.
pub fn request(to: SocketAddr, method: &str, timeout: Duration) -> Option<String> {
    SipStream::connect(to, timeout)
        .ok()?
        .request(method, timeout)
}

impl SipStream {
    /// Sends one out-of-dialog request of `method` on this connection and returns the final
    /// response, if one came within `timeout`. Each call is a new transaction (its branch and
    /// Call-ID name the connection's port and a counter).
    pub fn request(&mut self, method: &str, timeout: Duration) -> Option<String> {
        self.requests += 1;
        let (me, to, n) = (self.local_addr(), self.peer_addr(), self.requests);
        let msg = format!(
            "{method} sip:ping@{to};transport=tcp SIP/2.0\r\n\
             Via: SIP/2.0/TCP {me};branch=z9hG4bK{port}tcpping{n};rport\r\n\
             From: <sip:probe@{me}>;tag={port}\r\n\
             To: <sip:ping@{to}>\r\n\
             Call-ID: ready-tcp-{port}-{n}@{ip}\r\n\
             CSeq: 1 {method}\r\n\
             Max-Forwards: 70\r\n\
             User-Agent: onhold-tests\r\n\
             Content-Length: 0\r\n\r\n",
            port = me.port(),
            ip = me.ip(),
        );
        self.send(&msg).ok()?;
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.recv(deadline.saturating_duration_since(Instant::now()))?;
            if Message::parse(m.as_bytes()).is_some_and(|m| m.code().is_some_and(|c| c >= 200)) {
                return Some(m);
            }
        }
    }

    /// Waits up to `timeout` for the peer to close the connection (skipping whatever it
    /// sends meanwhile); whether it did.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.eof {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let _ = self.recv(left);
        }
        true
    }
}

/// A 200 OK to `req`, echoing its Via, From, To, Call-ID and CSeq (RFC 3261 §8.2.6.2).
pub fn ok_to(req: &str) -> String {
    let m = Message::parse(req.as_bytes()).expect("a SIP request");
    let mut out = String::from("SIP/2.0 200 OK\r\n");
    for v in m.headers_named("Via") {
        out.push_str(&format!("Via: {v}\r\n"));
    }
    for name in ["From", "To", "Call-ID", "CSeq"] {
        let v = m.header(name).unwrap_or("");
        out.push_str(&format!("{name}: {v}\r\n"));
    }
    out.push_str("User-Agent: onhold-tests\r\nContent-Length: 0\r\n\r\n");
    out
}

/// A DP750-shaped caller over TCP whose Via and Contact name its connection's own address.
pub struct TcpCaller {
    /// The connection the call was made on, until [`TcpCaller::close`].
    pub conn: Option<SipStream>,
    /// The connection's local address: the caller's Contact.
    pub local: SocketAddr,
    pub call_id: String,
    /// The final response to the INVITE.
    pub answer: String,
}

impl TcpCaller {
    /// Connects to `server` (IPv4) from a port it may listen on later, INVITEs it with a shape (a) offer naming `rtp` (PCMU,
    /// telephone-event) and ACKs the 200 on the same connection. Panics unless the call is
    /// answered 200 within 5 s.
    pub fn call(server: SocketAddr, rtp: SocketAddr) -> TcpCaller {
        let mut conn = SipStream::connect_reusable(server)
            .unwrap_or_else(|e| panic!("connect to {server}: {e}"));
        let local = conn.local_addr();
        let port = local.port();
        let ip = local.ip();
        let (call_id, tag) = (format!("{port}-tcp@127.0.0.1"), format!("40{port}"));
        let sdp = dp750_offer(rtp, "RTP/AVP", "0 101", 20, "sendrecv");
        let invite = format!(
            "INVITE sip:123@{server};transport=tcp SIP/2.0\r\n\
             Via: SIP/2.0/TCP {local};branch=z9hG4bK{port}1;rport\r\n\
             From: \"Reception\" <sip:201@{ip}>;tag={tag}\r\n\
             To: <sip:123@{server}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 21 INVITE\r\n\
             Contact: \"Reception\" <sip:201@{local};transport=tcp>\r\n\
             Max-Forwards: 70\r\n\
             User-Agent: Grandstream DP750 1.0.3.37\r\n\
             Allow: INVITE, ACK, OPTIONS, CANCEL, BYE, INFO\r\n\
             Content-Type: application/sdp\r\n\
             Content-Length: {len}\r\n\r\n{sdp}",
            len = sdp.len()
        );
        conn.send(&invite).expect("send INVITE");
        let deadline = Instant::now() + Duration::from_secs(5);
        let answer = loop {
            let m = conn
                .recv(deadline.saturating_duration_since(Instant::now()))
                .expect("no final response to the INVITE within 5 s");
            if Message::parse(m.as_bytes()).is_some_and(|m| m.code() >= Some(200)) {
                break m;
            }
        };
        let msg = Message::parse(answer.as_bytes()).expect("a SIP response");
        assert_eq!(msg.code(), Some(200), "INVITE answered:\n{answer}");
        let to = msg.header("To").expect("200 without To");
        let target = msg.contact_uri().expect("200 without Contact");
        let ack = format!(
            "ACK {target} SIP/2.0\r\n\
             Via: SIP/2.0/TCP {local};branch=z9hG4bK{port}2;rport\r\n\
             From: \"Reception\" <sip:201@{ip}>;tag={tag}\r\n\
             To: {to}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 21 ACK\r\n\
             Max-Forwards: 70\r\n\
             User-Agent: Grandstream DP750 1.0.3.37\r\n\
             Content-Length: 0\r\n\r\n"
        );
        conn.send(&ack).expect("send ACK");
        TcpCaller {
            conn: Some(conn),
            local,
            call_id,
            answer,
        }
    }

    /// The next request on the call's connection within `timeout`.
    pub fn recv_request(&mut self, timeout: Duration) -> Option<String> {
        self.conn.as_mut()?.recv_request(timeout)
    }

    /// Answers `req` with 200 on the call's connection.
    pub fn answer_ok(&mut self, req: &str) {
        let conn = self.conn.as_mut().expect("connection closed");
        conn.send(&ok_to(req)).expect("send 200");
    }

    /// Closes the call's connection (the call itself goes on).
    pub fn close(&mut self) {
        if let Some(c) = self.conn.take() {
            c.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_framed_by_content_length() {
        let mut buf = b"\r\n\r\nBYE sip:a SIP/2.0\r\nl: 3\r\n\r\nabcSIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\nINV"
            .to_vec();
        assert_eq!(
            take_message(&mut buf).as_deref(),
            Some("BYE sip:a SIP/2.0\r\nl: 3\r\n\r\nabc")
        );
        assert_eq!(
            take_message(&mut buf).as_deref(),
            Some("SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n")
        );
        assert_eq!(take_message(&mut buf), None);
        assert_eq!(buf, b"INV");
    }
}
