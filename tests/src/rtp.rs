//! A UDP socket that records every RTP packet it receives, and checks on the recorded stream.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// One received RTP packet, with its arrival time on both clocks (SIPp logs wall-clock times).
#[derive(Clone, Debug)]
pub struct RtpPacket {
    pub at: Instant,
    pub wall: SystemTime,
    pub from: SocketAddr,
    pub seq: u16,
    pub ts: u32,
    pub marker: bool,
    pub ssrc: u32,
    pub pt: u8,
    pub payload: Vec<u8>,
}

/// The fixed RTP header fields and the payload of one datagram.
#[derive(Clone, Copy, Debug)]
pub struct RtpView<'a> {
    pub seq: u16,
    pub ts: u32,
    pub marker: bool,
    pub ssrc: u32,
    pub pt: u8,
    pub payload: &'a [u8],
}

/// Parses an RTP packet (RFC 3550 §5.1); `None` for anything else, RTCP included.
pub fn parse_rtp(b: &[u8]) -> Option<RtpView<'_>> {
    if b.len() < 12 || b[0] >> 6 != 2 {
        return None;
    }
    let pt = b[1] & 0x7f;
    // RTCP SR/RR/SDES/BYE/APP are 200–204 in the second byte, i.e. "marker + 72..76".
    if (72..=76).contains(&pt) && b[1] & 0x80 != 0 {
        return None;
    }
    let cc = usize::from(b[0] & 0x0f);
    let mut off = 12 + 4 * cc;
    if b[0] & 0x10 != 0 {
        let ext = b.get(off + 2..off + 4)?;
        off += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    let mut end = b.len();
    if b[0] & 0x20 != 0 {
        end = end.checked_sub(usize::from(*b.last()?))?;
    }
    let payload = b.get(off..end)?;
    Some(RtpView {
        seq: u16::from_be_bytes([b[2], b[3]]),
        ts: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        marker: b[1] & 0x80 != 0,
        ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        pt,
        payload,
    })
}

/// Records RTP arriving on one UDP port until dropped.
pub struct RtpReceiver {
    addr: SocketAddr,
    packets: Arc<Mutex<Vec<RtpPacket>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RtpReceiver {
    /// A receiver on 127.0.0.1 and a kernel-chosen port.
    pub fn bind() -> RtpReceiver {
        RtpReceiver::bind_ip([127, 0, 0, 1].into())
    }

    pub fn bind_ip(ip: IpAddr) -> RtpReceiver {
        let sock = UdpSocket::bind(SocketAddr::new(ip, 0)).expect("bind RTP receiver");
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .expect("set_read_timeout");
        let addr = sock.local_addr().expect("local_addr");
        let packets = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (packets.clone(), stop.clone());
        // Arrival times from the kernel, as the probe takes them: gaps then measure the
        // server's pacing, not how late this thread was scheduled on a busy machine.
        let clock = onhold_probe::KernelClock::enable(&sock);
        let (mono0, wall0) = (Instant::now(), SystemTime::now());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !s.load(Ordering::Relaxed) {
                let Ok((n, Some(from), at)) = clock.recv_from(&sock, &mut buf) else {
                    continue;
                };
                let wall = match at.checked_duration_since(mono0) {
                    Some(d) => wall0 + d,
                    None => wall0 - mono0.duration_since(at),
                };
                if let Some(v) = parse_rtp(&buf[..n]) {
                    p.lock().unwrap().push(RtpPacket {
                        at,
                        wall,
                        from,
                        seq: v.seq,
                        ts: v.ts,
                        marker: v.marker,
                        ssrc: v.ssrc,
                        pt: v.pt,
                        payload: v.payload.to_vec(),
                    });
                }
            }
        });
        RtpReceiver {
            addr,
            packets,
            stop,
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// A copy of everything received so far, in arrival order.
    pub fn packets(&self) -> Vec<RtpPacket> {
        self.packets.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.packets.lock().unwrap().len()
    }

    /// Waits (bounded) until `n` packets have arrived; false on timeout.
    pub fn wait_packets(&self, n: usize, timeout: Duration) -> bool {
        crate::wait_for(timeout, || (self.count() >= n).then_some(())).is_some()
    }

    /// Waits (bounded) until packets from `n` different SSRCs have arrived; false on timeout.
    pub fn wait_streams(&self, n: usize, timeout: Duration) -> bool {
        crate::wait_for(timeout, || {
            (by_ssrc(&self.packets()).len() >= n).then_some(())
        })
        .is_some()
    }
}

impl Drop for RtpReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Packets grouped per SSRC, arrival order kept.
pub fn by_ssrc(packets: &[RtpPacket]) -> BTreeMap<u32, Vec<RtpPacket>> {
    let mut m: BTreeMap<u32, Vec<RtpPacket>> = BTreeMap::new();
    for p in packets {
        m.entry(p.ssrc).or_default().push(p.clone());
    }
    m
}

/// What [`check_stream`] found in one call's stream.
#[derive(Debug)]
pub struct StreamReport {
    pub packets: usize,
    pub ssrc: u32,
    pub pt: u8,
    /// Indices of packets with the marker bit.
    pub markers: Vec<usize>,
    /// Fraction of inter-arrival gaps within ±15 ms of ptime.
    pub on_time: f64,
}

/// Checks one call's stream (one SSRC, arrival order): RTP seq +1 per packet (no loss, no
/// reordering), timestamp + `samples` per packet except on marker packets (a resume after hold
/// may jump), marker bit on the first packet, every payload `payload_len` bytes, one payload
/// type. Which later packets may carry a marker is the caller's to judge from `markers`.
pub fn check_stream(
    packets: &[RtpPacket],
    samples: u32,
    payload_len: usize,
) -> Result<StreamReport, String> {
    let first = packets.first().ok_or("no RTP packets")?;
    if !first.marker {
        return Err(format!(
            "first packet (seq {}) has no marker bit",
            first.seq
        ));
    }
    let mut markers = Vec::new();
    for (i, p) in packets.iter().enumerate() {
        if p.ssrc != first.ssrc {
            return Err(format!(
                "SSRC changed at packet {i}: {:#x} → {:#x}",
                first.ssrc, p.ssrc
            ));
        }
        if p.pt != first.pt {
            return Err(format!(
                "payload type changed at packet {i}: {} → {}",
                first.pt, p.pt
            ));
        }
        if p.payload.len() != payload_len {
            return Err(format!(
                "packet {i} (seq {}) carries {} bytes, expected {payload_len}",
                p.seq,
                p.payload.len()
            ));
        }
        if p.marker {
            markers.push(i);
        }
        if i == 0 {
            continue;
        }
        let prev = &packets[i - 1];
        if p.seq != prev.seq.wrapping_add(1) {
            return Err(format!(
                "seq not contiguous at packet {i}: {} after {} (loss or reordering)",
                p.seq, prev.seq
            ));
        }
        // A marker packet starts a new talkspurt (resume): its timestamp may jump forward.
        if !p.marker && p.ts != prev.ts.wrapping_add(samples) {
            return Err(format!(
                "timestamp not contiguous at packet {i} (seq {}): {} after {}, step should be {samples}",
                p.seq, p.ts, prev.ts
            ));
        }
    }
    let ptime = Duration::from_micros(u64::from(samples) * 1_000_000 / 8000);
    let gaps: Vec<Duration> = packets.windows(2).map(|w| w[1].at - w[0].at).collect();
    let slack = Duration::from_millis(15);
    let ok = gaps
        .iter()
        .filter(|g| **g + slack >= ptime && **g <= ptime + slack)
        .count();
    Ok(StreamReport {
        packets: packets.len(),
        ssrc: first.ssrc,
        pt: first.pt,
        markers,
        on_time: if gaps.is_empty() {
            1.0
        } else {
            ok as f64 / gaps.len() as f64
        },
    })
}

/// G.711 µ-law to linear (ITU-T G.711 table logic, written out).
pub fn ulaw_to_linear(u: u8) -> i16 {
    let u = !u;
    let sign = u & 0x80;
    let exponent = (u >> 4) & 0x07;
    let mantissa = i32::from(u & 0x0f);
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    (if sign != 0 { -magnitude } else { magnitude }) as i16
}

/// Sign changes per second in a PCMU payload at 8 kHz: twice the frequency of a pure tone.
pub fn zero_crossings_per_second(payload: &[u8]) -> f64 {
    let s: Vec<i16> = payload.iter().map(|&b| ulaw_to_linear(b)).collect();
    let crossings = s.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
    crossings as f64 * 8000.0 / s.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(n: u16) -> Vec<RtpPacket> {
        let t0 = Instant::now();
        (0..n)
            .map(|k| RtpPacket {
                at: t0 + Duration::from_millis(20 * u64::from(k)),
                wall: SystemTime::UNIX_EPOCH,
                from: ([127, 0, 0, 1], 4000).into(),
                seq: 65_530u16.wrapping_add(k),
                ts: u32::MAX - 320 + 160 * u32::from(k),
                marker: k == 0,
                ssrc: 7,
                pt: 0,
                payload: vec![0xff; 160],
            })
            .collect()
    }

    #[test]
    fn a_clean_stream_passes_across_seq_and_ts_wrap() {
        let r = check_stream(&stream(20), 160, 160).unwrap();
        assert_eq!((r.packets, r.markers, r.on_time), (20, vec![0], 1.0));
    }

    #[test]
    fn each_broken_rule_is_caught() {
        let mut s = stream(20);
        s.remove(7);
        assert!(check_stream(&s, 160, 160).unwrap_err().contains("seq"));
        let mut s = stream(20);
        s[9].ts += 1;
        assert!(check_stream(&s, 160, 160)
            .unwrap_err()
            .contains("timestamp"));
        let mut s = stream(20);
        s[0].marker = false;
        assert!(check_stream(&s, 160, 160).unwrap_err().contains("marker"));
        let mut s = stream(20);
        s[3].ssrc = 8;
        assert!(check_stream(&s, 160, 160).unwrap_err().contains("SSRC"));
        let mut s = stream(20);
        s[4].payload.pop();
        assert!(check_stream(&s, 160, 160).unwrap_err().contains("bytes"));
        // A marker packet may jump in time (resume) and is reported.
        let mut s = stream(20);
        s[10].marker = true;
        for p in &mut s[10..] {
            p.ts = p.ts.wrapping_add(8000);
        }
        assert_eq!(check_stream(&s, 160, 160).unwrap().markers, vec![0, 10]);
        assert!(check_stream(&[], 160, 160).is_err());
    }

    #[test]
    fn parses_rtp_and_skips_rtcp() {
        let mut b = vec![0x80, 0x80, 0, 5, 0, 0, 1, 0, 0, 0, 0, 9];
        b.extend_from_slice(&[1, 2, 3]);
        let v = parse_rtp(&b).unwrap();
        assert_eq!(
            (v.seq, v.ts, v.marker, v.ssrc, v.pt, v.payload),
            (5, 256, true, 9, 0, &[1, 2, 3][..])
        );
        let sr = [0x80, 200, 0, 6, 0, 0, 0, 1, 0, 0, 0, 0];
        assert!(parse_rtp(&sr).is_none());
    }

    #[test]
    fn ulaw_decodes_and_tones_are_measured() {
        assert_eq!(ulaw_to_linear(0xff), 0);
        assert_eq!(ulaw_to_linear(0x80), 32_124);
        assert_eq!(ulaw_to_linear(0x00), -32_124);
        // A 1 kHz square wave at 8 kHz: 4 samples up, 4 down → 2000 sign changes per second.
        let p: Vec<u8> = (0..160)
            .map(|i| if (i / 4) % 2 == 0 { 0x90 } else { 0x10 })
            .collect();
        let z = zero_crossings_per_second(&p);
        assert!((1900.0..=2000.0).contains(&z), "{z}");
    }
}
