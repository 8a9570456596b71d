//! The Linux system calls the mio loop uses beyond mio itself: a `timerfd` for sub-millisecond
//! wake-ups, a `signalfd` so signals arrive as readable events, and `recvmmsg`/`sendmmsg` to move
//! a batch of datagrams per system call.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use onhold_runtime::pktinfo;
use onhold_runtime::sockaddr::{from_sockaddr, to_sockaddr};

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn monotonic_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// A `timerfd` on CLOCK_MONOTONIC armed with absolute deadlines. mio's own poll timeout has
/// millisecond resolution; this one has the kernel's (high-resolution timers: microseconds),
/// which 10 ms RTP frames need to stay on their grid.
pub struct TimerFd {
    fd: OwnedFd,
    armed: Option<Instant>,
    /// `Instant` is opaque; these two, read back to back once, translate it to CLOCK_MONOTONIC.
    base_instant: Instant,
    base_mono: Duration,
}

impl TimerFd {
    pub fn new() -> io::Result<TimerFd> {
        // SAFETY: plain syscall; the returned descriptor is owned below.
        let fd = check(unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        })?;
        // SAFETY: fd is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let base_instant = Instant::now();
        let base_mono = monotonic_now();
        Ok(TimerFd {
            fd,
            armed: None,
            base_instant,
            base_mono,
        })
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Fire at `at` (or never, for `None`). Re-arming with the same deadline costs nothing.
    pub fn arm(&mut self, at: Option<Instant>) -> io::Result<()> {
        if at == self.armed {
            return Ok(());
        }
        let value = match at {
            // An all-zero it_value disarms, so a deadline at the base itself becomes 1 ns later.
            Some(t) => (self.base_mono + t.saturating_duration_since(self.base_instant))
                .max(Duration::from_nanos(1)),
            None => Duration::ZERO,
        };
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: value.as_secs() as libc::time_t,
                tv_nsec: value.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: the spec is a valid itimerspec we own; old_value may be null.
        check(unsafe {
            libc::timerfd_settime(
                self.fd.as_raw_fd(),
                libc::TFD_TIMER_ABSTIME,
                &spec,
                std::ptr::null_mut(),
            )
        })?;
        self.armed = at;
        Ok(())
    }

    /// After a readable event: consume the expiration so the descriptor is quiet until re-armed.
    pub fn clear(&mut self) {
        let mut expirations = 0u64;
        // SAFETY: reads at most 8 bytes into the u64 we own; EAGAIN (nothing expired) is fine.
        unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&mut expirations as *mut u64).cast(),
                size_of::<u64>(),
            )
        };
        self.armed = None;
    }
}

/// A `signalfd` for `signals`, which are blocked for normal delivery. Call before any thread is
/// started so every thread inherits the mask.
pub struct SignalFd {
    fd: OwnedFd,
}

impl SignalFd {
    pub fn new(signals: &[libc::c_int]) -> io::Result<SignalFd> {
        // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it.
        let mut mask: libc::sigset_t = unsafe { zeroed() };
        // SAFETY: mask is a valid sigset_t.
        unsafe { libc::sigemptyset(&mut mask) };
        for &s in signals {
            // SAFETY: mask is a valid sigset_t and s a signal number.
            check(unsafe { libc::sigaddset(&mut mask, s) })?;
        }
        // SAFETY: blocks the signals for this thread (and threads it starts later).
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &mask, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        // SAFETY: -1 asks for a new descriptor for the mask.
        let fd =
            check(unsafe { libc::signalfd(-1, &mask, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) })?;
        // SAFETY: fd is a fresh descriptor nobody else owns.
        Ok(SignalFd {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The next pending signal number, if any.
    pub fn next(&self) -> Option<libc::c_int> {
        // SAFETY: signalfd_siginfo is plain data.
        let mut info: libc::signalfd_siginfo = unsafe { zeroed() };
        let size = size_of::<libc::signalfd_siginfo>();
        // SAFETY: reads at most `size` bytes into the struct we own.
        let n = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                size,
            )
        };
        (n == size as isize).then_some(info.ssi_signo as libc::c_int)
    }
}

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

    /// Point the headers at slots `range`: for receiving, each iovec covers the whole slot.
    fn prepare(&mut self, range: std::ops::Range<usize>, receiving: bool) {
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
                libc::MSG_DONTWAIT,
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
            self.control_lens[i] = h.msg_hdr.msg_controllen;
        }
        Ok(got)
    }

    /// Send slots `range` (each set by `set_outgoing`) from `fd` in one call. Returns how many
    /// the kernel took, from the start of the range; `Err` if it took none.
    pub fn send(&mut self, fd: RawFd, range: std::ops::Range<usize>) -> io::Result<usize> {
        let n = range.len();
        self.prepare(range, false);
        // SAFETY: as in `recv`; the slots hold `lens[i]` initialised bytes each.
        let sent = unsafe {
            libc::sendmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if sent < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(sent as usize)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

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
    fn timerfd_fires_at_an_absolute_deadline_below_a_millisecond() {
        let mut t = TimerFd::new().unwrap();
        let start = Instant::now();
        let at = start + Duration::from_micros(300);
        t.arm(Some(at)).unwrap();
        let mut pfd = libc::pollfd {
            fd: t.raw(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, 1000) };
        let woke = Instant::now();
        assert_eq!(n, 1);
        assert!(woke >= at, "fired early by {:?}", at - woke);
        t.clear();
        t.arm(None).unwrap();
        // SAFETY: one valid pollfd.
        assert_eq!(
            unsafe { libc::poll(&mut pfd, 1, 20) },
            0,
            "disarmed timer stays quiet"
        );
    }
}
