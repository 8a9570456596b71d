//! RTP reception and the per-call media verdict: every packet's arrival time and header are
//! recorded by a receiver thread, and judged after the call against the pacing rules a Music On
//! Hold stream must keep (RFC 3550 §5.1: contiguous sequence numbers, timestamps advancing by the
//! samples in a packet, marker on the first packet of a talkspurt, one SSRC).

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The fields of one received RTP packet that the verdict needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrival {
    pub at: Instant,
    pub seq: u16,
    pub ts: u32,
    pub marker: bool,
    pub ssrc: u32,
    pub pt: u8,
}

/// Parse an RTP header (RFC 3550 §5.1). RTCP (PT 200–204 as RFC 5761 §4 tells them apart) and
/// anything that is not version 2 are `None`.
pub fn parse_rtp(data: &[u8], at: Instant) -> Option<Arrival> {
    if data.len() < 12 || data[0] >> 6 != 2 {
        return None;
    }
    let pt = data[1] & 0x7f;
    if (72..=76).contains(&pt) {
        return None;
    }
    let csrc = usize::from(data[0] & 0x0f) * 4;
    if data.len() < 12 + csrc {
        return None;
    }
    Some(Arrival {
        at,
        seq: u16::from_be_bytes([data[2], data[3]]),
        ts: u32::from_be_bytes([data[4], data[5], data[6], data[7]]),
        marker: data[1] & 0x80 != 0,
        ssrc: u32::from_be_bytes([data[8], data[9], data[10], data[11]]),
        pt,
    })
}

/// Whether a datagram looks like RTP rather than SIP (for the misdirection check).
pub fn looks_like_rtp(data: &[u8]) -> bool {
    parse_rtp(data, Instant::now()).is_some()
}

/// A thread recording every RTP packet arriving on one socket until stopped.
pub struct Receiver {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Vec<Arrival>>,
}

impl Receiver {
    /// `counter` is bumped per packet for the live progress line.
    pub fn start(socket: UdpSocket, counter: Arc<AtomicU64>) -> std::io::Result<Receiver> {
        socket.set_read_timeout(Some(Duration::from_millis(20)))?;
        let clock = KernelClock::enable(&socket);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("probe-rtp".into())
            .stack_size(128 * 1024)
            .spawn(move || {
                let mut got = Vec::with_capacity(1024);
                let mut buf = [0u8; 2048];
                while !flag.load(Ordering::Relaxed) {
                    // A timeout or a transient error just checks the stop flag again.
                    let Ok((n, at)) = clock.recv(&socket, &mut buf) else {
                        continue;
                    };
                    if let Some(a) = parse_rtp(&buf[..n], at) {
                        counter.fetch_add(1, Ordering::Relaxed);
                        got.push(a);
                    }
                }
                got
            })?;
        Ok(Receiver { stop, handle })
    }

    /// Stop and return every packet seen, in arrival order.
    pub fn finish(self) -> Vec<Arrival> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

/// Arrival times from the kernel (`SO_TIMESTAMPNS`: stamped when the datagram reached the
/// socket), so inter-arrival figures measure the server and the network, not how late this
/// probe's receiver thread was scheduled. Falls back to reading the clock after `recv` where the
/// option is unavailable. The end-to-end tests' RTP receiver reads with it too.
pub struct KernelClock {
    enabled: bool,
    /// The realtime and monotonic clocks read together, to map kernel stamps onto `Instant`.
    wall0: std::time::SystemTime,
    mono0: Instant,
}

impl KernelClock {
    pub fn enable(socket: &UdpSocket) -> KernelClock {
        use std::os::fd::AsRawFd;
        let one: libc::c_int = 1;
        // SAFETY: a valid socket fd and a pointer to a c_int of the size passed.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        KernelClock {
            enabled: rc == 0,
            wall0: std::time::SystemTime::now(),
            mono0: Instant::now(),
        }
    }

    pub fn recv(&self, socket: &UdpSocket, buf: &mut [u8]) -> std::io::Result<(usize, Instant)> {
        self.recv_from(socket, buf).map(|(n, _, at)| (n, at))
    }

    /// One datagram, who sent it (`None` if the address family is neither IPv4 nor IPv6), and
    /// when it reached the socket.
    pub fn recv_from(
        &self,
        socket: &UdpSocket,
        buf: &mut [u8],
    ) -> std::io::Result<(usize, Option<std::net::SocketAddr>, Instant)> {
        if !self.enabled {
            let (n, from) = socket.recv_from(buf)?;
            return Ok((n, Some(from), Instant::now()));
        }
        use std::os::fd::AsRawFd;
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // Room for one SCM_TIMESTAMPNS control message, aligned as cmsghdr needs.
        let mut control = [0u64; 8];
        // SAFETY: sockaddr_storage and msghdr are plain old data; every pointer set below
        // outlives the call.
        let mut name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as _;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: a valid fd and a msghdr whose buffers are valid for the lengths given.
        let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, 0) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut at = None;
        // SAFETY: walking the control messages the kernel wrote into `control`, with the libc
        // macros that bound every step by msg_controllen.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                    let ts = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::timespec>());
                    let wall =
                        std::time::UNIX_EPOCH + Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
                    at = Some(match wall.duration_since(self.wall0) {
                        Ok(d) => self.mono0 + d,
                        Err(e) => self.mono0.checked_sub(e.duration()).unwrap_or(self.mono0),
                    });
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        let from = match name.ss_family as libc::c_int {
            libc::AF_INET => {
                // SAFETY: the kernel wrote a sockaddr_in for an AF_INET source.
                let a = unsafe {
                    &*(&name as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>()
                };
                let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
                Some(std::net::SocketAddr::from((ip, u16::from_be(a.sin_port))))
            }
            libc::AF_INET6 => {
                // SAFETY: the kernel wrote a sockaddr_in6 for an AF_INET6 source.
                let a = unsafe {
                    &*(&name as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
                };
                let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
                Some(std::net::SocketAddr::from((ip, u16::from_be(a.sin6_port))))
            }
            _ => None,
        };
        Ok((n as usize, from, at.unwrap_or_else(Instant::now)))
    }
}

/// What the stream should look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expect {
    pub ptime_ms: u32,
    /// The negotiated payload type; other PTs count as errors.
    pub pt: Option<u8>,
    /// How many packets the listening time should hold (`duration / ptime`).
    pub packets: u64,
}

impl Expect {
    /// RTP timestamp units per packet: 8000 Hz clock for PCMU, PCMA and G.722 alike.
    pub fn samples(&self) -> u32 {
        self.ptime_ms * 8
    }
}

/// The media verdict of one call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MediaStats {
    /// Packets that arrived before the end of the call (the 200 to our BYE, plus one ptime).
    pub received: u64,
    pub expected: u64,
    /// `expected - received` when short, or the sequence-number gaps if larger.
    pub lost: u64,
    /// Sequence numbers that did not follow the previous one by exactly 1.
    pub seq_errors: u64,
    /// Timestamp steps other than samples-per-packet × sequence step.
    pub ts_errors: u64,
    /// First packet without the marker bit.
    pub marker_errors: u64,
    pub ssrc_changes: u64,
    pub pt_errors: u64,
    /// Packets after the call ended.
    pub after_bye: u64,
    /// Time from our ACK to the first packet.
    pub first_packet_us: Option<u64>,
    /// |inter-arrival − ptime| for every consecutive pair, µs.
    pub deviations_us: Vec<u64>,
}

impl MediaStats {
    pub fn loss_pct(&self) -> f64 {
        if self.expected == 0 {
            0.0
        } else {
            self.lost as f64 * 100.0 / self.expected as f64
        }
    }

    #[cfg(test)]
    pub fn errors(&self) -> u64 {
        self.seq_errors + self.ts_errors + self.marker_errors + self.ssrc_changes + self.pt_errors
    }
}

/// Judge the packets of one call. `started` is our ACK; packets later than `ended` (the 200 to
/// our BYE, or the BYE itself if no 200 came) plus [`grace`] for packets already in
/// flight count as sent after the call.
pub fn analyze(
    arrivals: &[Arrival],
    expect: Expect,
    started: Instant,
    ended: Instant,
) -> MediaStats {
    let ptime = Duration::from_millis(u64::from(expect.ptime_ms));
    let cutoff = ended + grace(ptime);
    let (in_call, after): (Vec<&Arrival>, Vec<&Arrival>) =
        arrivals.iter().partition(|a| a.at <= cutoff);
    let mut s = MediaStats {
        received: in_call.len() as u64,
        expected: expect.packets,
        after_bye: after.len() as u64,
        ..MediaStats::default()
    };
    let Some(first) = in_call.first() else {
        s.lost = s.expected;
        return s;
    };
    s.first_packet_us = Some(micros(first.at.saturating_duration_since(started)));
    if !first.marker {
        s.marker_errors += 1;
    }
    let mut gaps = 0u64;
    let ptime_us = micros(ptime);
    for pair in in_call.windows(2) {
        let (prev, cur) = (pair[0], pair[1]);
        if expect.pt.is_some_and(|pt| pt != cur.pt) {
            s.pt_errors += 1;
        }
        if cur.ssrc != prev.ssrc {
            // A new source starts its own numbering: nothing to compare across the change.
            s.ssrc_changes += 1;
            continue;
        }
        let seq_step = cur.seq.wrapping_sub(prev.seq);
        if seq_step != 1 {
            s.seq_errors += 1;
            if (2..0x8000).contains(&seq_step) {
                gaps += u64::from(seq_step - 1);
            }
        }
        let want_ts = if (1..0x8000).contains(&seq_step) {
            expect.samples().wrapping_mul(u32::from(seq_step))
        } else {
            expect.samples()
        };
        if cur.ts.wrapping_sub(prev.ts) != want_ts {
            s.ts_errors += 1;
        }
        let gap = micros(cur.at.saturating_duration_since(prev.at));
        s.deviations_us.push(gap.abs_diff(ptime_us));
    }
    if expect.pt.is_some_and(|pt| pt != first.pt) {
        s.pt_errors += 1;
    }
    s.lost = s.expected.saturating_sub(s.received).max(gaps);
    s
}

/// How long after the end of a call a packet may still be stamped and not count as sent after
/// it: two packet times, at least 50 ms. Arrival times are taken in user space, so a receiver
/// thread descheduled on a busy host stamps packets late; the grace keeps that from looking
/// like a server fault, while a server that keeps streaming is still caught by the 300 ms wait.
pub fn grace(ptime: Duration) -> Duration {
    (ptime * 2).max(Duration::from_millis(50))
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(t0: Instant, n: u16, ptime_ms: u64) -> Vec<Arrival> {
        (0..n)
            .map(|k| Arrival {
                at: t0 + Duration::from_millis(ptime_ms * u64::from(k)),
                seq: 65530u16.wrapping_add(k),
                ts: (u32::MAX - 100).wrapping_add(u32::from(k) * (ptime_ms as u32 * 8)),
                marker: k == 0,
                ssrc: 7,
                pt: 0,
            })
            .collect()
    }

    fn expect(packets: u64) -> Expect {
        Expect {
            ptime_ms: 20,
            pt: Some(0),
            packets,
        }
    }

    #[test]
    fn a_clean_stream_across_wraparound_has_no_errors() {
        let t0 = Instant::now();
        let a = stream(t0, 50, 20);
        let s = analyze(&a, expect(50), t0, t0 + Duration::from_secs(1));
        assert_eq!((s.received, s.lost, s.errors(), s.after_bye), (50, 0, 0, 0));
        assert_eq!(s.deviations_us.len(), 49);
        assert!(s.deviations_us.iter().all(|d| *d == 0));
        assert_eq!(s.first_packet_us, Some(0));
    }

    #[test]
    fn each_rule_is_counted() {
        let t0 = Instant::now();
        let mut a = stream(t0, 50, 20);
        a[0].marker = false;
        a.remove(10); // one lost: a seq error, and the ts step over the gap is still right
        a[20].ts = a[20].ts.wrapping_add(1); // a ts error on the way in and on the way out
        a[30].pt = 8;
        for x in &mut a[40..] {
            x.ssrc = 9;
        }
        let s = analyze(&a, expect(50), t0, t0 + Duration::from_secs(1));
        assert_eq!(s.marker_errors, 1);
        assert_eq!(s.seq_errors, 1);
        assert_eq!(s.ts_errors, 2);
        assert_eq!(s.pt_errors, 1);
        assert_eq!(s.ssrc_changes, 1);
        assert_eq!(s.lost, 1);
        assert!((s.loss_pct() - 2.0).abs() < 1e-9);
    }

    #[test]
    fn packets_after_the_end_are_counted_apart() {
        let t0 = Instant::now();
        let a = stream(t0, 60, 20);
        // The call ended at packet 44's time; 45 to 46 are within the 50 ms grace.
        let s = analyze(&a, expect(40), t0, t0 + Duration::from_millis(20 * 44));
        assert_eq!(s.received, 47);
        assert_eq!(s.after_bye, 13);
        assert_eq!(s.lost, 0);
    }

    #[test]
    fn silence_is_total_loss() {
        let t0 = Instant::now();
        let s = analyze(&[], expect(50), t0, t0);
        assert_eq!((s.received, s.lost), (0, 50));
        assert_eq!(s.loss_pct(), 100.0);
    }

    #[test]
    fn rtp_parsing() {
        let now = Instant::now();
        let mut p = [0u8; 172];
        p[0] = 0x80;
        p[1] = 0x80; // marker, PT 0
        p[2..4].copy_from_slice(&513u16.to_be_bytes());
        p[4..8].copy_from_slice(&160u32.to_be_bytes());
        p[8..12].copy_from_slice(&0xdead_beefu32.to_be_bytes());
        let a = parse_rtp(&p, now).unwrap();
        assert_eq!(
            (a.seq, a.ts, a.marker, a.ssrc, a.pt),
            (513, 160, true, 0xdead_beef, 0)
        );
        p[1] = 200; // RTCP SR
        assert!(parse_rtp(&p, now).is_none());
        assert!(parse_rtp(b"SIP/2.0 200 OK\r\n", now).is_none());
        assert!(parse_rtp(&p[..11], now).is_none());
        p[1] = 0;
        p[0] = 0x8f; // 15 CSRCs need 72 bytes: present
        assert!(parse_rtp(&p, now).is_some());
        assert!(parse_rtp(&p[..60], now).is_none());
    }
}
