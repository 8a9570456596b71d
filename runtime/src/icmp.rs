//! ICMP errors for a UDP socket's destinations: with `IP_RECVERR` (and `IPV6_RECVERR`) the
//! kernel queues each port or host unreachable that comes back for a datagram we sent, with the
//! address we had sent it to, and marks the socket readable with an error. Both runtimes turn
//! each into [`onhold_core::Server::unreachable`]; the core decides what it means.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::RawFd;

use crate::sockaddr::from_sockaddr;

/// Queue the ICMP errors for `socket`'s destinations (see the module docs).
pub fn report_errors(socket: &UdpSocket) -> io::Result<()> {
    let v4 = (libc::SOL_IP, libc::IP_RECVERR);
    crate::net::enable_for_family(socket, v4, (libc::SOL_IPV6, libc::IPV6_RECVERR))
}

/// Take every error queued on `socket`; `each(destination)` for those that say the destination
/// cannot be reached (port, host or network unreachable). Returns how many were read.
pub fn take_unreachable(fd: RawFd, mut each: impl FnMut(SocketAddr)) -> usize {
    let mut taken = 0;
    loop {
        // SAFETY: plain data, filled by recvmsg below.
        let mut name: libc::sockaddr_storage = unsafe { zeroed() };
        let mut control = [0u64; 64]; // 512 bytes, aligned for cmsghdr
        let mut data = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: data.as_mut_ptr().cast(),
            iov_len: data.len(),
        };
        // SAFETY: msghdr is plain data; every pointer set below outlives the call.
        let mut msg: libc::msghdr = unsafe { zeroed() };
        msg.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
        msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = size_of::<[u64; 64]>() as _;
        // SAFETY: recvmsg writes only into the buffers `msg` points at, within their lengths.
        let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
        if n < 0 {
            return taken; // EAGAIN: the queue is empty
        }
        taken += 1;
        let Some(dest) = from_sockaddr(&name) else {
            continue;
        };
        // SAFETY: CMSG_FIRSTHDR/CMSG_NXTHDR walk the control buffer recvmsg filled, within
        // `msg_controllen`; each IP(V6)_RECVERR message carries a sock_extended_err.
        let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        while !cmsg.is_null() {
            let (level, kind) = unsafe { ((*cmsg).cmsg_level, (*cmsg).cmsg_type) };
            let recverr = (level == libc::SOL_IP && kind == libc::IP_RECVERR)
                || (level == libc::SOL_IPV6 && kind == libc::IPV6_RECVERR);
            if recverr {
                let err: libc::sock_extended_err =
                    unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast()) };
                let errno = err.ee_errno as libc::c_int;
                if matches!(
                    errno,
                    libc::ECONNREFUSED | libc::EHOSTUNREACH | libc::ENETUNREACH
                ) {
                    each(dest);
                }
            }
            cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// A datagram to a closed port on loopback comes back as port unreachable, queued with the
    /// address it was sent to.
    #[test]
    fn a_closed_port_is_reported_with_its_address() {
        let closed = UdpSocket::bind("127.0.0.1:0").unwrap();
        let dest = closed.local_addr().unwrap();
        drop(closed);
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        report_errors(&s).unwrap();
        s.send_to(b"x", dest).unwrap();
        let mut seen = Vec::new();
        for _ in 0..100 {
            take_unreachable(s.as_raw_fd(), |d| seen.push(d));
            if !seen.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(seen, vec![dest]);
        // Taken: the queue is empty now.
        assert_eq!(take_unreachable(s.as_raw_fd(), |_| {}), 0);
    }
}
