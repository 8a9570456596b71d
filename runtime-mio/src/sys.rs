//! The Linux system calls the mio loop uses beyond mio itself: a `timerfd` for sub-millisecond
//! wake-ups and a `signalfd` so signals arrive as readable events (batched datagrams are in
//! `onhold_runtime::batch`).

use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

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

#[cfg(test)]
mod tests {
    use super::*;

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
