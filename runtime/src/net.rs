//! Sockets as both runtimes use them: binding SIP and RTP sockets, finding the socket for a
//! transmit, holding datagrams a socket would not take yet, cutting SIP messages out of a TCP
//! stream, and the order in which the core's socket commands are applied.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};

use onhold_core::{Command, Server};
use tracing::debug;

/// This turn's resource commands from the core, in the order to apply them: binds before the
/// transmit pass (a 200 OK names its RTP port, which must be open first), unbinds after it (a
/// call's last RTCP BYE still leaves from the socket being closed).
pub fn take_commands(server: &mut Server) -> (Vec<Command>, Vec<Command>) {
    let (mut before, mut after) = (Vec::new(), Vec::new());
    while let Some(cmd) = server.poll_command() {
        match cmd {
            Command::UnbindRtp { .. } => after.push(cmd),
            cmd => before.push(cmd),
        }
    }
    (before, after)
}

/// Bind a UDP socket, non-blocking (both runtimes register it with their poller).
pub fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = UdpSocket::bind(addr)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// The largest datagram either runtime takes on a SIP socket: the largest UDP payload over
/// IPv4 (65,535 − 20 − 8). Both drop a longer one, so they take exactly the same datagrams
/// (smol reads into a buffer one byte longer and drops a datagram that fills it; mio's
/// `recvmmsg` flags one cut short). A longer one comes only over IPv6 (up to 65,527 B), and
/// no SIP sender comes near either (RFC 3261 §18.1.1 moves a request within 200 bytes of the
/// path MTU to TCP). The core's header section limit (64 KiB) is above it, so the core judges
/// everything that arrives.
pub const MAX_RECV: usize = 65_507;
/// The largest datagram either runtime takes on an RTP or RTCP socket: a packet of an
/// Ethernet MTU with room to spare. We only send media, so what arrives there is counted and
/// dropped by the core; a longer one is dropped by the runtime (as on a SIP socket, in both).
pub const MAX_RTP_RECV: usize = 2048;

/// Kernel buffer asked for on SIP sockets (capped by net.core.rmem_max / wmem_max).
pub const SIP_SOCKET_BUFFER: usize = 4 << 20;

/// A SIP listen socket: like [`bind_udp`], with large kernel buffers. The default (~200 KB)
/// holds only a hundred or so small datagrams on Linux (each costs a whole buffer), so a burst
/// of INVITEs would be dropped by the kernel before the loop ever saw it. A wildcard socket
/// reports each datagram's destination address ([`crate::pktinfo`]).
pub fn bind_sip_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = bind_udp(addr)?;
    if addr.ip().is_unspecified() {
        if let Err(e) = crate::pktinfo::enable(&socket) {
            debug!("IP_PKTINFO on {addr}: {e}");
        }
    }
    for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        // A value above the system maximum is capped by the kernel, not refused.
        let size = SIP_SOCKET_BUFFER as libc::c_int;
        if let Err(e) = set_int_option(&socket, libc::SOL_SOCKET, opt, size) {
            debug!("setsockopt on {addr}: {e}");
        }
    }
    Ok(socket)
}

/// `setsockopt` of an `int` option on `socket`.
pub(crate) fn set_int_option(
    socket: &UdpSocket,
    level: libc::c_int,
    opt: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a c_int we own, on a socket
    // we own.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            opt,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Turn on the IPv4 option `v4` (level, name) of an IPv4 socket, or the IPv6 one `v6` of an
/// IPv6 socket, and `v4` as well where it applies: a dual-stack socket's IPv4 datagrams follow
/// the IPv4 options.
pub(crate) fn enable_for_family(
    socket: &UdpSocket,
    v4: (libc::c_int, libc::c_int),
    v6: (libc::c_int, libc::c_int),
) -> io::Result<()> {
    match socket.local_addr()? {
        SocketAddr::V4(_) => set_int_option(socket, v4.0, v4.1, 1),
        SocketAddr::V6(_) => {
            set_int_option(socket, v6.0, v6.1, 1)?;
            let _ = set_int_option(socket, v4.0, v4.1, 1);
            Ok(())
        }
    }
}

/// The sockets of `Command::BindRtp`: RTP on `port`, RTCP on `port + 1` unless muxed. Both or
/// neither: a half-bound pair is closed again.
/// Each reports the ICMP errors for its destinations ([`crate::icmp`]).
pub fn bind_rtp(ip: IpAddr, port: u16, rtcp_mux: bool) -> io::Result<Vec<UdpSocket>> {
    let mut out = vec![bind_udp(SocketAddr::new(ip, port))?];
    if !rtcp_mux {
        let rtcp = port
            .checked_add(1)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no port above 65535"))?;
        out.push(bind_udp(SocketAddr::new(ip, rtcp))?);
    }
    for s in &out {
        if let Err(e) = crate::icmp::report_errors(s) {
            debug!(port, "IP_RECVERR: {e}");
        }
    }
    Ok(out)
}

/// The shared RTP port's sockets (`rtp_shared_port`): RTP and the RTCP port above, bound at
/// start, with the SIP sockets' buffers, as every call's media passes through them.
pub fn bind_shared_rtp(ip: IpAddr, port: u16) -> io::Result<Vec<UdpSocket>> {
    let sockets = bind_rtp(ip, port, false).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot bind the shared RTP port {}: {e}",
                SocketAddr::new(ip, port)
            ),
        )
    })?;
    for s in &sockets {
        for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
            if let Err(e) = set_int_option(s, libc::SOL_SOCKET, opt, SIP_SOCKET_BUFFER as _) {
                debug!(port, "setsockopt: {e}");
            }
        }
    }
    Ok(sockets)
}

/// The local addresses `Command::UnbindRtp` names.
pub fn rtp_addrs(ip: IpAddr, port: u16, rtcp_mux: bool) -> Vec<SocketAddr> {
    let mut v = vec![SocketAddr::new(ip, port)];
    if !rtcp_mux {
        v.push(SocketAddr::new(ip, port.wrapping_add(1)));
    }
    v
}

/// One unit cut from a SIP byte stream (TCP).
#[derive(Debug, PartialEq, Eq)]
pub enum StreamUnit<'a> {
    /// A whole message, body included: hand it to the core like a datagram.
    Message(&'a [u8]),
    /// A CRLFCRLF keep-alive ping: answer CRLF (RFC 5626 §3.5.1).
    Ping,
}

/// Cut every whole message and keep-alive off the front of `buf` with the core's framer, in
/// order, leaving a partial message for the next read. `false` when the stream cannot be
/// framed: the connection must be closed.
pub fn cut_stream(buf: &mut Vec<u8>, mut each: impl FnMut(StreamUnit<'_>)) -> bool {
    use onhold_core::sip::{frame, Frame};
    let mut pos = 0;
    let result = loop {
        match frame(&buf[pos..]) {
            Frame::Complete { len } => {
                each(StreamUnit::Message(&buf[pos..pos + len]));
                pos += len;
            }
            Frame::KeepAlive { len } => {
                if buf[pos..pos + len].windows(4).any(|w| w == b"\r\n\r\n") {
                    each(StreamUnit::Ping);
                }
                pos += len;
            }
            Frame::NeedMore => break true,
            Frame::Invalid => break false,
        }
    };
    buf.drain(..pos);
    result
}

/// Sockets by the local address the core knows them by (`Transmit::local`).
#[derive(Debug)]
pub struct SocketTable<S> {
    by_addr: BTreeMap<SocketAddr, S>,
}

impl<S> Default for SocketTable<S> {
    fn default() -> Self {
        SocketTable {
            by_addr: BTreeMap::new(),
        }
    }
}

impl<S> SocketTable<S> {
    pub fn insert(&mut self, addr: SocketAddr, socket: S) -> Option<S> {
        self.by_addr.insert(addr, socket)
    }

    pub fn remove(&mut self, addr: &SocketAddr) -> Option<S> {
        self.by_addr.remove(addr)
    }

    pub fn len(&self) -> usize {
        self.by_addr.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_addr.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&SocketAddr, &S)> {
        self.by_addr.iter()
    }

    pub fn get(&self, addr: &SocketAddr) -> Option<&S> {
        self.by_addr.get(addr)
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut S> {
        self.by_addr.values_mut()
    }

    pub fn get_mut(&mut self, addr: &SocketAddr) -> Option<&mut S> {
        self.by_addr.get_mut(addr)
    }

    /// The socket to send from: the exact address, else a wildcard socket on that port (a
    /// `0.0.0.0:5060` listener answers for whatever local IP a request named).
    pub fn lookup_key(&self, local: &SocketAddr) -> Option<SocketAddr> {
        if self.by_addr.contains_key(local) {
            return Some(*local);
        }
        let wildcard = SocketAddr::new(
            match local.ip() {
                IpAddr::V4(_) => IpAddr::from([0, 0, 0, 0]),
                IpAddr::V6(_) => IpAddr::from([0u16; 8]),
            },
            local.port(),
        );
        if self.by_addr.contains_key(&wildcard) {
            return Some(wildcard);
        }
        self.by_addr
            .keys()
            .find(|a| a.port() == local.port() && a.is_ipv4() == local.is_ipv4())
            .copied()
    }
}

/// Datagrams a socket could not take yet (`WouldBlock`), oldest first. Bounded: a peer that
/// stops draining must not grow memory; beyond the bound datagrams are dropped and counted, and
/// the core's pacing sees them as lost packets, not as a reason to speed up.
#[derive(Debug)]
pub struct SendQueue {
    queue: VecDeque<(SocketAddr, Box<[u8]>)>,
    capacity: usize,
    pub dropped: u64,
}

impl SendQueue {
    pub fn new(capacity: usize) -> SendQueue {
        SendQueue {
            queue: VecDeque::new(),
            capacity,
            dropped: 0,
        }
    }

    /// `false` when the queue is full and the datagram was dropped.
    pub fn push(&mut self, remote: SocketAddr, data: &[u8]) -> bool {
        if self.queue.len() >= self.capacity {
            self.dropped += 1;
            return false;
        }
        self.queue.push_back((remote, data.into()));
        true
    }

    pub fn front(&self) -> Option<(SocketAddr, &[u8])> {
        self.queue.front().map(|(a, d)| (*a, &d[..]))
    }

    pub fn pop_front(&mut self) {
        self.queue.pop_front();
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Send oldest first until the socket would block (`Ok(false)`) or the queue is empty
    /// (`Ok(true)`). Other send errors drop that datagram (an unreachable caller must not stall
    /// the others) and are logged at debug.
    pub fn flush(&mut self, mut send: impl FnMut(SocketAddr, &[u8]) -> io::Result<usize>) -> bool {
        while let Some((remote, data)) = self.front() {
            match send(remote, data) {
                Ok(_) => self.pop_front(),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) => {
                    debug!(remote = %remote, "send failed: {e}");
                    self.pop_front();
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_cutting_keeps_partial_messages_and_answers_pings() {
        let msg = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 2\r\n\r\nok";
        let mut buf = b"\r\n\r\n".to_vec();
        buf.extend_from_slice(msg);
        buf.extend_from_slice(&msg[..10]);
        let mut got = Vec::new();
        assert!(cut_stream(&mut buf, |u| {
            got.push(match u {
                StreamUnit::Message(m) => String::from_utf8_lossy(m).into_owned(),
                StreamUnit::Ping => "PING".to_string(),
            })
        }));
        assert_eq!(
            got,
            [
                "PING".to_string(),
                String::from_utf8_lossy(msg).into_owned()
            ]
        );
        assert_eq!(buf, &msg[..10], "the partial message waits for more bytes");
        let mut pong_only = b"\r\n".to_vec();
        let mut units = 0;
        assert!(cut_stream(&mut pong_only, |_| units += 1));
        assert_eq!(
            (units, pong_only.len()),
            (0, 0),
            "a CRLF pong is consumed silently"
        );
        let mut bad = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: x\r\n\r\n".to_vec();
        assert!(!cut_stream(&mut bad, |_| {}));
    }

    #[test]
    fn socket_table_falls_back_to_the_wildcard_listener() {
        let mut t = SocketTable::default();
        t.insert("0.0.0.0:5060".parse().unwrap(), 1);
        t.insert("127.0.0.1:10000".parse().unwrap(), 2);
        assert_eq!(
            t.lookup_key(&"192.0.2.7:5060".parse().unwrap()),
            Some("0.0.0.0:5060".parse().unwrap())
        );
        assert_eq!(
            t.lookup_key(&"127.0.0.1:10000".parse().unwrap()),
            Some("127.0.0.1:10000".parse().unwrap())
        );
        assert_eq!(
            t.lookup_key(&"0.0.0.0:10000".parse().unwrap()),
            Some("127.0.0.1:10000".parse().unwrap()),
            "the core may report RTP from the wildcard rtp_ip"
        );
        assert_eq!(t.lookup_key(&"127.0.0.1:9".parse().unwrap()), None);
    }

    #[test]
    fn send_queue_is_bounded_and_flushes_in_order() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut q = SendQueue::new(2);
        assert!(q.push(a, b"one"));
        assert!(q.push(a, b"two"));
        assert!(!q.push(a, b"three"));
        assert_eq!(q.dropped, 1);
        let mut sent = Vec::new();
        let mut calls = 0;
        let done = q.flush(|_, d| {
            calls += 1;
            if calls == 2 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            sent.push(d.to_vec());
            Ok(d.len())
        });
        assert!(!done);
        assert_eq!(sent, [b"one".to_vec()]);
        assert_eq!(q.len(), 1);
        let done = q.flush(|_, _| Err(io::ErrorKind::ConnectionRefused.into()));
        assert!(done, "other errors drop the datagram instead of stalling");
        assert!(q.is_empty());
    }

    #[test]
    fn sip_sockets_get_bigger_buffers_than_the_default() {
        use std::os::fd::AsRawFd;
        let get = |s: &UdpSocket| {
            let mut v: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: getsockopt writes at most `len` bytes into the c_int we own.
            let rc = unsafe {
                libc::getsockopt(
                    s.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUF,
                    (&mut v as *mut libc::c_int).cast(),
                    &mut len,
                )
            };
            assert_eq!(rc, 0);
            v
        };
        let plain = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let sip = bind_sip_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        // Equal only where the system maximum is no larger than the default.
        assert!(get(&sip) >= get(&plain));
    }

    #[test]
    fn rtp_pair_binds_both_ports_or_neither() {
        let ip = IpAddr::from([127, 0, 0, 1]);
        // Find two adjacent free ports by letting the OS choose one and trying its pair.
        for _ in 0..20 {
            let probe = UdpSocket::bind((ip, 0)).unwrap();
            let port = probe.local_addr().unwrap().port() & !1;
            drop(probe);
            if let Ok(pair) = bind_rtp(ip, port, false) {
                assert_eq!(pair.len(), 2);
                assert_eq!(pair[1].local_addr().unwrap().port(), port + 1);
                // With the pair held, binding it again fails.
                assert!(bind_rtp(ip, port, false).is_err());
                assert_eq!(rtp_addrs(ip, port, true), vec![SocketAddr::new(ip, port)]);
                return;
            }
        }
        panic!("no free adjacent port pair on loopback");
    }
}
