//! Datagrams in batches: `recvmmsg`/`sendmmsg` over fixed slots ([`Batch`]), and the transmit
//! path both binaries share: what the core has due is written straight into the slots
//! ([`fill`]), and each run of datagrams leaving the same socket goes out in one `sendmmsg`
//! ([`send_run`]). With `rtp_shared_port` every call's RTP leaves one socket, so one call
//! carries a whole batch of calls' packets.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::os::fd::RawFd;
use std::time::Instant;

use onhold_core::{Server, Transmit, Transport};
use tracing::{debug, warn};

use crate::net::{SendQueue, SocketTable};
use crate::pktinfo;
use crate::sockaddr::{from_sockaddr, to_sockaddr};

/// Fixed slots for one `recvmmsg`/`sendmmsg` call: `BATCH` datagrams of up to `SLOT` bytes.
pub struct Batch {
    slots: Vec<u8>,
    slot: usize,
    addrs: Vec<libc::sockaddr_storage>,
    addr_lens: Vec<libc::socklen_t>,
    /// Each datagram's packet info: its destination when received, the address to send from
    /// when sent (`pktinfo`); and how many bytes of it are used.
    controls: Vec<pktinfo::Control>,
    control_lens: Vec<usize>,
    lens: Vec<usize>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers in `iovs` and `hdrs` point into this batch's own buffers; they are
// rebuilt by `prepare` before every system call and never read otherwise, so moving the batch
// to another thread (a media sender's lane, `crate::senders`) leaves nothing dangling in use.
unsafe impl Send for Batch {}

impl Batch {
    pub fn new(batch: usize, slot: usize) -> Batch {
        Batch {
            slots: vec![0; batch * slot],
            slot,
            // SAFETY: sockaddr_storage is plain data.
            addrs: vec![unsafe { zeroed() }; batch],
            addr_lens: vec![0; batch],
            controls: vec![[0; 8]; batch],
            control_lens: vec![0; batch],
            lens: vec![0; batch],
            iovs: Vec::with_capacity(batch),
            hdrs: Vec::with_capacity(batch),
        }
    }

    pub fn capacity(&self) -> usize {
        self.lens.len()
    }

    /// The whole slot `i`, to write an outgoing datagram into.
    pub fn slot_mut(&mut self, i: usize) -> &mut [u8] {
        &mut self.slots[i * self.slot..(i + 1) * self.slot]
    }

    /// Datagram `i`'s bytes after `recv`, or as set by `set_outgoing`.
    pub fn data(&self, i: usize) -> &[u8] {
        &self.slots[i * self.slot..i * self.slot + self.lens[i]]
    }

    /// Datagram `i`'s peer after `recv`.
    pub fn peer(&self, i: usize) -> Option<SocketAddr> {
        from_sockaddr(&self.addrs[i])
    }

    /// The address datagram `i` was sent to, after `recv` on a socket that reports it.
    pub fn dest(&mut self, i: usize) -> Option<IpAddr> {
        pktinfo::dest_in(&mut self.controls[i], self.control_lens[i])
    }

    /// Mark slot `i` as holding `len` bytes for `remote`, sent from `source` when given (for
    /// `send`).
    pub fn set_outgoing(
        &mut self,
        i: usize,
        remote: SocketAddr,
        len: usize,
        source: Option<IpAddr>,
    ) {
        let (storage, addr_len) = to_sockaddr(&remote);
        self.addrs[i] = storage;
        self.addr_lens[i] = addr_len;
        self.lens[i] = len;
        self.control_lens[i] =
            source.map_or(0, |ip| pktinfo::write_source(&mut self.controls[i], ip));
    }

    /// Copy datagram `j` of `from` (its bytes, destination and packet info) into slot `i`.
    pub fn copy_slot(&mut self, i: usize, from: &Batch, j: usize) {
        let data = from.data(j);
        self.slot_mut(i)[..data.len()].copy_from_slice(data);
        self.lens[i] = data.len();
        self.addrs[i] = from.addrs[j];
        self.addr_lens[i] = from.addr_lens[j];
        self.controls[i] = from.controls[j];
        self.control_lens[i] = from.control_lens[j];
    }

    /// Point the headers at slots `range`: for receiving, each iovec covers the whole slot.
    fn prepare(&mut self, range: Range<usize>, receiving: bool) {
        self.iovs.clear();
        self.hdrs.clear();
        let base = self.slots.as_mut_ptr();
        for i in range.clone() {
            let len = if receiving { self.slot } else { self.lens[i] };
            self.iovs.push(libc::iovec {
                // SAFETY: i < capacity, so the slot lies inside `slots`.
                iov_base: unsafe { base.add(i * self.slot) }.cast(),
                iov_len: len,
            });
            if receiving {
                self.addr_lens[i] = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                self.control_lens[i] = size_of::<pktinfo::Control>();
            }
        }
        for (k, i) in range.enumerate() {
            // SAFETY: msghdr is plain data; the fields we need are set below.
            let mut msg: libc::msghdr = unsafe { zeroed() };
            msg.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            msg.msg_namelen = self.addr_lens[i];
            msg.msg_iov = &mut self.iovs[k];
            msg.msg_iovlen = 1;
            if self.control_lens[i] > 0 {
                msg.msg_control = self.controls[i].as_mut_ptr().cast();
                msg.msg_controllen = self.control_lens[i] as _;
            }
            self.hdrs.push(libc::mmsghdr {
                msg_hdr: msg,
                msg_len: 0,
            });
        }
    }

    /// Receive up to the whole batch from `fd` without blocking. Returns how many arrived (0 when
    /// none was waiting). Truncated datagrams (larger than a slot) get length 0.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        let n = self.capacity();
        self.prepare(0..n, true);
        // SAFETY: every header points at a slot and an address inside `self`, which outlives the
        // call; vlen matches the headers' count.
        let got = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                n as libc::c_uint,
                // musl's recvmmsg/sendmmsg take the flags unsigned, glibc's signed.
                libc::MSG_DONTWAIT as _,
                std::ptr::null_mut(),
            )
        };
        if got < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock {
                Ok(0)
            } else {
                Err(e)
            };
        }
        let got = got as usize;
        for i in 0..got {
            let h = &self.hdrs[i];
            let truncated = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            self.lens[i] = if truncated { 0 } else { h.msg_len as usize };
            // `socklen_t` on musl, `size_t` on glibc.
            self.control_lens[i] = h.msg_hdr.msg_controllen as _;
        }
        Ok(got)
    }

    /// Send slots `range` (each set by `set_outgoing`) from `fd` in one call. Returns how many
    /// the kernel took, from the start of the range; `Err` if it took none.
    pub fn send(&mut self, fd: RawFd, range: Range<usize>) -> io::Result<usize> {
        let n = range.len();
        self.prepare(range, false);
        // SAFETY: as in `recv`; the slots hold `lens[i]` initialised bytes each.
        let sent = unsafe {
            libc::sendmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT as _,
            )
        };
        if sent < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(sent as usize)
        }
    }
}

/// Full batches a runtime sends per turn of its loop before it reads what arrived again: SIP
/// (which the core writes ahead of media) is answered between runs of at most this many
/// batches, however far behind media has fallen. A turn's media at 1 ms quanta stays within
/// it up to about 5,000 calls of 20 ms.
pub const BATCHES_PER_TURN: usize = 8;

/// Pull what the core has due now into `batch` until it is full. Each UDP datagram is set for
/// sending and its socket's table key pushed on `from` (slot `i` leaves `from[i]`); a TCP message
/// goes to `tcp` at once. True when the batch filled (more may be due).
pub fn fill<T>(
    server: &mut Server,
    batch: &mut Batch,
    table: &SocketTable<T>,
    from: &mut Vec<SocketAddr>,
    mut tcp: impl FnMut(&Transmit, &[u8]),
) -> bool {
    from.clear();
    // The last datagram's local address and its socket: runs from one socket (the shared RTP
    // port, or one call's packets) skip the table search.
    let mut last: Option<(SocketAddr, SocketAddr)> = None;
    while from.len() < batch.capacity() {
        let i = from.len();
        let Some(t) = server.poll_transmit(Instant::now(), batch.slot_mut(i)) else {
            return false;
        };
        if t.transport == Transport::Tcp {
            tcp(&t, &batch.slot_mut(i)[..t.len]);
            continue;
        }
        let key = match last {
            Some((local, key)) if local == t.local => key,
            _ => match table.lookup_key(&t.local) {
                Some(key) => {
                    last = Some((t.local, key));
                    key
                }
                None => {
                    debug!(local = %t.local, "no socket for transmit; dropped");
                    continue;
                }
            },
        };
        // From the address the core names when the socket answers for every address.
        let source = pktinfo::source_for(key, t.local);
        batch.set_outgoing(i, t.remote, t.len, source);
        from.push(key);
    }
    true
}

/// The runs of `from` (as `fill` left it): each stretch of slots leaving the same socket.
pub fn runs(from: &[SocketAddr]) -> impl Iterator<Item = (SocketAddr, Range<usize>)> + '_ {
    let mut start = 0;
    std::iter::from_fn(move || {
        let key = *from.get(start)?;
        let end = from[start..]
            .iter()
            .position(|k| *k != key)
            .map_or(from.len(), |n| start + n);
        let run = start..end;
        start = end;
        Some((key, run))
    })
}

/// Send slots `run` from the socket `fd` (bound to `local`) with `sendmmsg`, in order behind
/// whatever waits in its `queue`: what the socket will not take now joins the queue. True when
/// the queue was empty and is not any more (the caller waits for writability).
pub fn send_run(
    batch: &mut Batch,
    fd: RawFd,
    local: SocketAddr,
    run: Range<usize>,
    queue: &mut SendQueue,
) -> bool {
    let mut next = run.start;
    while next < run.end && queue.is_empty() {
        match batch.send(fd, next..run.end) {
            Ok(n) => next += n.clamp(1, run.end - next),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => {
                debug!(local = %local, "send: {e}");
                next += 1;
            }
        }
    }
    let was_empty = queue.is_empty();
    for i in next..run.end {
        let remote = batch.peer(i).unwrap_or(local);
        if !queue.push(remote, batch.data(i)) && queue.dropped.is_power_of_two() {
            warn!(local = %local, dropped = queue.dropped, "send queue full: dropping");
        }
    }
    was_empty && !queue.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    #[test]
    fn batch_moves_datagrams_both_ways() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        b.set_nonblocking(true).unwrap();
        let to = b.local_addr().unwrap();
        let mut batch = Batch::new(4, 64);
        for (i, msg) in [&b"one"[..], b"two", b"three"].into_iter().enumerate() {
            batch.slot_mut(i)[..msg.len()].copy_from_slice(msg);
            batch.set_outgoing(i, to, msg.len(), None);
        }
        assert_eq!(batch.send(a.as_raw_fd(), 0..3).unwrap(), 3);
        let mut rx = Batch::new(4, 64);
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(2);
        while got.len() < 3 && Instant::now() < deadline {
            let n = rx.recv(b.as_raw_fd()).unwrap();
            for i in 0..n {
                assert_eq!(rx.peer(i), Some(a.local_addr().unwrap()));
                got.push(rx.data(i).to_vec());
            }
        }
        assert_eq!(got, [b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]);
        assert_eq!(
            rx.recv(b.as_raw_fd()).unwrap(),
            0,
            "nothing left: no blocking"
        );
    }

    #[test]
    fn runs_split_where_the_socket_changes() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let got: Vec<_> = runs(&[a, a, b, a]).collect();
        assert_eq!(got, [(a, 0..2), (b, 2..3), (a, 3..4)]);
        assert_eq!(runs(&[]).count(), 0);
    }
}
