//! The local address a datagram arrived on, and sending from a chosen one (IP_PKTINFO,
//! IPV6_RECVPKTINFO / IPV6_PKTINFO). A SIP socket bound to `0.0.0.0` or `[::]` answers for
//! every address of the host: the core writes the address a request was sent to into SDP `c=`
//! and Contact (`advertised_address = auto`), and our answers leave from it, so a multi-homed
//! host answers from the address it was called on.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::RawFd;

use crate::sockaddr::{from_sockaddr, to_sockaddr};

/// Control buffer for one datagram's packet info (aligned for `cmsghdr`): room for one
/// `in6_pktinfo` message, the larger of the two.
pub type Control = [u64; 8];

/// Ask for each datagram's destination address on `socket` (a wildcard-bound SIP socket).
pub fn enable(socket: &UdpSocket) -> io::Result<()> {
    let v4 = (libc::IPPROTO_IP, libc::IP_PKTINFO);
    crate::net::enable_for_family(socket, v4, (libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO))
}

/// The destination address in the control messages `recvmsg` left in `msg` (a received
/// message whose `msg_control` points at a buffer of `msg_controllen` bytes).
fn dest_of(msg: &libc::msghdr) -> Option<IpAddr> {
    // SAFETY: CMSG_FIRSTHDR/CMSG_NXTHDR stay within msg_control..+msg_controllen, which the
    // caller's msghdr describes; each message is read by its level and type.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            let (level, kind) = ((*cmsg).cmsg_level, (*cmsg).cmsg_type);
            if level == libc::IPPROTO_IP && kind == libc::IP_PKTINFO {
                let info: libc::in_pktinfo = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                return Some(IpAddr::V4(Ipv4Addr::from(
                    info.ipi_addr.s_addr.to_ne_bytes(),
                )));
            }
            if level == libc::IPPROTO_IPV6 && kind == libc::IPV6_PKTINFO {
                let info: libc::in6_pktinfo =
                    std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                let ip = Ipv6Addr::from(info.ipi6_addr.s6_addr);
                return Some(ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4));
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    None
}

/// The destination address recorded in `control` (`len` bytes of it filled by `recvmsg` or
/// `recvmmsg`).
pub fn dest_in(control: &mut Control, len: usize) -> Option<IpAddr> {
    // SAFETY: plain data; only the control fields are used by `dest_of`.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = len.min(size_of::<Control>()) as _;
    dest_of(&msg)
}

/// Write a control message into `control` that makes the kernel send from `from`; its length.
pub fn write_source(control: &mut Control, from: IpAddr) -> usize {
    *control = [0; 8];
    // SAFETY: plain data; CMSG_FIRSTHDR of a msghdr whose control buffer is `control` (large
    // enough for CMSG_SPACE of either pktinfo) is its start, and the writes stay inside it.
    unsafe {
        let mut msg: libc::msghdr = zeroed();
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = size_of::<Control>() as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        match from {
            IpAddr::V4(ip) => {
                let info = libc::in_pktinfo {
                    ipi_ifindex: 0,
                    ipi_spec_dst: libc::in_addr {
                        s_addr: u32::from_ne_bytes(ip.octets()),
                    },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                };
                (*cmsg).cmsg_level = libc::IPPROTO_IP;
                (*cmsg).cmsg_type = libc::IP_PKTINFO;
                (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<libc::in_pktinfo>() as u32) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast(), info);
                libc::CMSG_SPACE(size_of::<libc::in_pktinfo>() as u32) as usize
            }
            IpAddr::V6(ip) => {
                let info = libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: ip.octets(),
                    },
                    ipi6_ifindex: 0,
                };
                (*cmsg).cmsg_level = libc::IPPROTO_IPV6;
                (*cmsg).cmsg_type = libc::IPV6_PKTINFO;
                (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<libc::in6_pktinfo>() as u32) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast(), info);
                libc::CMSG_SPACE(size_of::<libc::in6_pktinfo>() as u32) as usize
            }
        }
    }
}

/// One datagram received on `fd` into `buf`: its length, its source, its destination address
/// (if the socket reports it), and whether it was cut short (longer than `buf`).
pub struct Received {
    pub len: usize,
    pub from: SocketAddr,
    pub dest: Option<IpAddr>,
    pub truncated: bool,
}

/// `recvmsg` on a non-blocking `fd`.
pub fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<Received> {
    // SAFETY: plain data, filled by recvmsg.
    let mut name: libc::sockaddr_storage = unsafe { zeroed() };
    let mut control: Control = [0; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: plain data; every pointer set below outlives the call.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of::<Control>() as _;
    // SAFETY: recvmsg writes only into the buffers `msg` points at, within their lengths.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let from = from_sockaddr(&name)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unaddressed datagram"))?;
    Ok(Received {
        len: n as usize,
        from,
        dest: dest_of(&msg),
        truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
    })
}

/// `sendmsg` of `data` to `to` from the local address `from` (the kernel picks one for `None`).
pub fn send(fd: RawFd, data: &[u8], to: SocketAddr, from: Option<IpAddr>) -> io::Result<usize> {
    let (mut name, name_len) = to_sockaddr(&to);
    let mut control: Control = [0; 8];
    let control_len = from.map_or(0, |ip| write_source(&mut control, ip));
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: plain data; every pointer set below outlives the call.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = name_len;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if control_len > 0 {
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = control_len as _;
    }
    // SAFETY: sendmsg reads only the buffers `msg` points at, within their lengths.
    let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// The address to send from when the socket bound to `bound` sends for the core's `local`:
/// the core's IP when the socket is a wildcard one and the core named a specific address.
pub fn source_for(bound: SocketAddr, local: SocketAddr) -> Option<IpAddr> {
    (bound.ip().is_unspecified() && !local.ip().is_unspecified()).then_some(local.ip())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// On a wildcard socket the destination each datagram was sent to is reported, and a reply
    /// sent from a chosen address leaves from it.
    #[test]
    fn the_address_called_is_reported_and_answered_from() {
        let server = UdpSocket::bind("0.0.0.0:0").unwrap();
        enable(&server).unwrap();
        let port = server.local_addr().unwrap().port();
        for ip in ["127.0.0.1", "127.0.0.2"] {
            let dest: SocketAddr = format!("{ip}:{port}").parse().unwrap();
            let client = UdpSocket::bind("127.0.0.1:0").unwrap();
            client.send_to(b"hello", dest).unwrap();
            server
                .set_read_timeout(Some(std::time::Duration::from_secs(2)))
                .unwrap();
            let mut buf = [0u8; 64];
            let got = loop {
                match recv(server.as_raw_fd(), &mut buf) {
                    Ok(r) => break r,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(std::time::Duration::from_millis(5))
                    }
                    Err(e) => panic!("{e}"),
                }
            };
            assert_eq!(&buf[..got.len], b"hello");
            assert_eq!(got.dest, Some(dest.ip()));
            assert_eq!(got.from, client.local_addr().unwrap());
            let source = source_for(server.local_addr().unwrap(), dest);
            send(server.as_raw_fd(), b"back", got.from, source).unwrap();
            let (n, replied_from) = client.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"back");
            assert_eq!(
                replied_from, dest,
                "the answer leaves from the address called"
            );
        }
    }
}
