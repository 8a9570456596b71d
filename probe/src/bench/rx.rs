//! Batched receiving with kernel timestamps: `recvmmsg(2)` takes up to [`BATCH`] datagrams per
//! system call, each with the time the kernel queued it (`SO_TIMESTAMPNS`, CLOCK_REALTIME), so
//! a receiver thread that is scheduled late still sees when each packet really arrived. Used
//! for RTP (several sockets, one thread each) and for the load's SIP socket.

use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Datagrams per `recvmmsg` call.
pub const BATCH: usize = 64;
/// Largest datagram kept whole (SIP with SDP fits; RTP is 172 bytes).
const BUF: usize = 4096;
/// What a receive buffer is asked to be: a second of 5,000 PCMU streams is 250,000 packets, of
/// which the kernel charges about 1 KiB each to the buffer, so a quarter-second stall of one
/// thread over four sockets needs about 16 MiB per socket; `net.core.rmem_max` caps what an
/// unprivileged socket gets, and root may go beyond it with SO_RCVBUFFORCE.
pub const WANT_RCVBUF: usize = 16 << 20;

/// Nanoseconds since the Unix epoch, the clock `SO_TIMESTAMPNS` stamps with.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// `net.core.rmem_max`, if readable.
pub fn rmem_max() -> Option<usize> {
    std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn setsockopt_int(sock: &UdpSocket, level: i32, name: i32, value: i32) -> std::io::Result<()> {
    // SAFETY: a valid fd and a pointer to an int of the given length.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Ask for `want` bytes of receive buffer (forced past `rmem_max` when we may), turn on kernel
/// timestamps and a read timeout; returns the buffer size the kernel granted (it reports
/// double what was asked, the bookkeeping share included).
pub fn prepare(sock: &UdpSocket, want: usize, timeout: Duration) -> std::io::Result<usize> {
    let want = want.min(i32::MAX as usize / 2) as i32;
    if setsockopt_int(sock, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, want).is_err() {
        setsockopt_int(sock, libc::SOL_SOCKET, libc::SO_RCVBUF, want)?;
    }
    setsockopt_int(sock, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)?;
    sock.set_read_timeout(Some(timeout))?;
    let mut got: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: a valid fd and an int-sized out buffer with its length.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&mut got as *mut i32).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(got.max(0) as usize)
}

/// A socket with `SO_TIMESTAMPNS` on for the life of the process. The kernel stamps packets as
/// they arrive only while some socket asks for stamps, and turns that on in deferred work: a
/// packet that arrives before then is stamped when it is read instead. Holding one socket
/// keeps stamping on across runs, whose receivers come and go.
pub fn keep_stamping() -> std::io::Result<UdpSocket> {
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    setsockopt_int(&sock, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)?;
    std::thread::sleep(Duration::from_millis(100));
    Ok(sock)
}

/// One received datagram: its bytes, its IPv4 source and its kernel arrival time.
pub struct Datagram<'a> {
    pub data: &'a [u8],
    pub from: Option<SocketAddrV4>,
    pub at_ns: u64,
    /// Whether `at_ns` is the kernel's stamp (else the time it was read).
    pub kernel_time: bool,
}

/// Buffers for one socket's `recvmmsg` calls, allocated once.
pub struct Batch {
    bufs: Vec<[u8; BUF]>,
    addrs: Vec<libc::sockaddr_in>,
    ctrl: Vec<[u64; 8]>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    len: usize,
}

impl Default for Batch {
    fn default() -> Self {
        Batch::new()
    }
}

impl Batch {
    pub fn new() -> Batch {
        // SAFETY: these C structs are plain data for which all-zero bytes are a valid value.
        let zero_addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        let zero_hdr: libc::mmsghdr = unsafe { std::mem::zeroed() };
        Batch {
            bufs: vec![[0; BUF]; BATCH],
            addrs: vec![zero_addr; BATCH],
            ctrl: vec![[0; 8]; BATCH],
            iovs: vec![
                libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0
                };
                BATCH
            ],
            hdrs: vec![zero_hdr; BATCH],
            len: 0,
        }
    }

    /// Wait (up to the socket's read timeout) for at least one datagram and take what else is
    /// queued, up to [`BATCH`]. Returns how many; 0 on timeout.
    pub fn recv(&mut self, sock: &UdpSocket) -> std::io::Result<usize> {
        self.recv_with(sock, libc::MSG_WAITFORONE)
    }

    /// Take what is queued, up to [`BATCH`], without waiting; 0 when nothing is.
    pub fn recv_queued(&mut self, sock: &UdpSocket) -> std::io::Result<usize> {
        self.recv_with(sock, libc::MSG_DONTWAIT)
    }

    fn recv_with(&mut self, sock: &UdpSocket, flags: libc::c_int) -> std::io::Result<usize> {
        for i in 0..BATCH {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: BUF,
            };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_in).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = self.ctrl[i].as_mut_ptr().cast();
            h.msg_controllen = std::mem::size_of::<[u64; 8]>() as _;
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
        // SAFETY: every header points into buffers owned by `self` that outlive the call, with
        // their true lengths.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                self.hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                // `c_int` in glibc, `c_uint` in musl.
                flags as _,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            self.len = 0;
            return match e.kind() {
                std::io::ErrorKind::WouldBlock
                | std::io::ErrorKind::TimedOut
                | std::io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        self.len = n as usize;
        Ok(self.len)
    }

    /// The `i`th datagram of the last [`Batch::recv`].
    pub fn get(&self, i: usize) -> Datagram<'_> {
        let h = &self.hdrs[i];
        let len = (h.msg_len as usize).min(BUF);
        let from = (h.msg_hdr.msg_namelen as usize >= std::mem::size_of::<libc::sockaddr_in>()
            && self.addrs[i].sin_family == libc::AF_INET as libc::sa_family_t)
            .then(|| {
                let a = &self.addrs[i];
                SocketAddrV4::new(
                    u32::from_be(a.sin_addr.s_addr).into(),
                    u16::from_be(a.sin_port),
                )
            });
        let stamp = timestamp_ns(&h.msg_hdr);
        Datagram {
            data: &self.bufs[i][..len],
            from,
            at_ns: stamp.unwrap_or_else(now_ns),
            kernel_time: stamp.is_some(),
        }
    }
}

/// The `SCM_TIMESTAMPNS` control message of a received message, in ns since the epoch.
fn timestamp_ns(h: &libc::msghdr) -> Option<u64> {
    // SAFETY: `h` was filled by recvmmsg; the CMSG macros walk the control buffer within
    // `msg_controllen`, and the payload of an SCM_TIMESTAMPNS message is a timespec (read
    // unaligned, as the macros promise no alignment for it).
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                return Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    None
}

/// A UDP socket bound on `ip` at an even port whose odd neighbour is bound too (RTP and RTCP,
/// RFC 3550 §11), so a sender's RTCP finds a socket rather than an ICMP port-unreachable.
pub fn bind_pair(ip: std::net::Ipv4Addr) -> std::io::Result<(UdpSocket, UdpSocket)> {
    for _ in 0..200 {
        let probe = UdpSocket::bind((ip, 0))?;
        let port = probe.local_addr()?.port() & !1;
        drop(probe);
        if port == 0 {
            continue;
        }
        let Ok(rtp) = UdpSocket::bind((ip, port)) else {
            continue;
        };
        if let Ok(rtcp) = UdpSocket::bind((ip, port + 1)) {
            return Ok((rtp, rtcp));
        }
    }
    Err(std::io::Error::other("no free even/odd port pair"))
}

pub fn v4(addr: SocketAddr) -> Option<SocketAddrV4> {
    match addr {
        SocketAddr::V4(a) => Some(a),
        SocketAddr::V6(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_carries_every_queued_datagram_with_its_source_and_kernel_time() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        prepare(&rx, 1 << 20, Duration::from_millis(200)).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let before = now_ns();
        for i in 0..5u8 {
            tx.send_to(&[i; 12], rx.local_addr().unwrap()).unwrap();
        }
        let mut batch = Batch::new();
        let mut got = Vec::new();
        while got.len() < 5 {
            let n = batch.recv(&rx).unwrap();
            assert!(n > 0, "timed out after {} datagrams", got.len());
            for i in 0..n {
                let d = batch.get(i);
                assert_eq!(d.from, v4(tx.local_addr().unwrap()));
                assert!(d.kernel_time, "no SCM_TIMESTAMPNS");
                assert!(
                    d.at_ns >= before && d.at_ns <= now_ns(),
                    "kernel time out of order"
                );
                got.push(d.data.to_vec());
            }
        }
        assert_eq!(got, (0..5u8).map(|i| vec![i; 12]).collect::<Vec<_>>());
        assert_eq!(batch.recv(&rx).unwrap(), 0, "nothing more: the timeout");
    }

    #[test]
    fn an_rtp_port_comes_with_its_rtcp_neighbour() {
        let (rtp, rtcp) = bind_pair(std::net::Ipv4Addr::LOCALHOST).unwrap();
        let p = rtp.local_addr().unwrap().port();
        assert_eq!(p % 2, 0);
        assert_eq!(rtcp.local_addr().unwrap().port(), p + 1);
    }
}
