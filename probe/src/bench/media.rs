//! The RTP side of a run: a handful of receiving sockets, one thread each, that every call's
//! SDP points at in turn. A stream is told apart by its source address and SSRC; per stream the
//! thread keeps the sequence numbers (loss), the last kernel arrival time (pacing), and from
//! the teardown on every arrival time (RTP after BYE).

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::rx::{self, Batch};
use super::stats::{DeviationHist, SeqTrack};

/// Arrival times kept per stream after the teardown starts; a sender that keeps streaming
/// past this is counted by `tail_dropped`.
const TAIL_CAP: usize = 4096;
/// How long a receiver sleeps once its socket is drained.
const POLL: Duration = Duration::from_millis(1);

/// The phases of a run as kernel-clock instants (ns since the epoch; `u64::MAX` until set),
/// written by the load and read by the receivers to file each gap.
#[derive(Debug)]
pub struct Windows {
    pub hold_from: AtomicU64,
    pub hold_until: AtomicU64,
    pub teardown_from: AtomicU64,
}

impl Default for Windows {
    fn default() -> Self {
        Windows {
            hold_from: AtomicU64::new(u64::MAX),
            hold_until: AtomicU64::new(u64::MAX),
            teardown_from: AtomicU64::new(u64::MAX),
        }
    }
}

impl Windows {
    pub fn set(field: &AtomicU64, ns: u64) {
        field.store(ns, Ordering::Relaxed);
    }
}

/// One stream as one receiver saw it.
#[derive(Clone, Debug)]
pub struct Stream {
    pub src: SocketAddrV4,
    /// Told apart by the tests; the key's other half.
    #[cfg_attr(not(test), allow(dead_code))]
    pub ssrc: u32,
    pub seq: SeqTrack,
    pub last_ns: u64,
    /// The RTP timestamp of the last packet in order.
    pub last_ts: u32,
    /// Frames left out of the stream with its sequence numbers contiguous: what a sender that
    /// woke late and skipped ahead on the grid (RFC 3550 allows it) shows as a timestamp jump
    /// of more than one packet's samples between consecutive sequence numbers.
    pub skipped: u64,
    /// Arrival times from the teardown's start on (at most [`TAIL_CAP`]).
    pub tail: Vec<u64>,
    pub tail_dropped: u64,
}

/// What all receivers saw.
#[derive(Debug, Default)]
pub struct MediaReport {
    pub streams: Vec<Stream>,
    /// Gaps while the calls were coming up (before the hold).
    pub ramp: DeviationHist,
    /// Gaps during the hold, the steady state.
    pub hold: DeviationHist,
    pub packets: u64,
    /// Datagrams that were not RTP.
    pub other: u64,
    /// Packets without a kernel stamp (timed when read instead).
    pub unstamped: u64,
}

/// The receiving sockets and their threads.
pub struct Receivers {
    pub ports: Vec<u16>,
    /// The receive buffer each socket got (as the kernel reports it).
    pub rcvbuf: usize,
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<MediaReport>>,
    /// The RTCP sockets, kept bound (and never read: RTCP is not judged) until the end.
    _rtcp: Vec<UdpSocket>,
}

impl Receivers {
    pub fn start(
        ip: Ipv4Addr,
        count: usize,
        ptime: Duration,
        windows: Arc<Windows>,
    ) -> std::io::Result<Receivers> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut ports = Vec::new();
        let mut handles = Vec::new();
        let mut rtcps = Vec::new();
        let want = rx::WANT_RCVBUF;
        let mut rcvbuf = 0;
        for i in 0..count.max(1) {
            let (sock, rtcp) = rx::bind_pair(ip)?;
            rcvbuf = rx::prepare(&sock, want, Duration::from_millis(20))?;
            ports.push(sock.local_addr()?.port());
            rtcps.push(rtcp);
            let (stop, windows) = (stop.clone(), windows.clone());
            let ptime_ns = ptime.as_nanos() as u64;
            handles.push(
                std::thread::Builder::new()
                    .name(format!("bench-rx-{i}"))
                    .spawn(move || receive(&sock, &stop, &windows, ptime_ns))?,
            );
        }
        Ok(Receivers {
            ports,
            rcvbuf,
            stop,
            handles,
            _rtcp: rtcps,
        })
    }

    /// Stop every thread and merge what they saw.
    pub fn finish(self) -> MediaReport {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = MediaReport::default();
        for h in self.handles {
            let Ok(r) = h.join() else { continue };
            all.streams.extend(r.streams);
            all.ramp.merge(&r.ramp);
            all.hold.merge(&r.hold);
            all.packets += r.packets;
            all.other += r.other;
            all.unstamped += r.unstamped;
        }
        all
    }
}

/// The RTP fields a receiver needs: sequence number, timestamp and SSRC (RFC 3550 §5.1);
/// `None` for what is not RTP version 2 with a media payload type.
fn rtp_fields(data: &[u8]) -> Option<(u16, u32, u32)> {
    if data.len() < 12 || data[0] >> 6 != 2 || (72..=76).contains(&(data[1] & 0x7f)) {
        return None;
    }
    Some((
        u16::from_be_bytes([data[2], data[3]]),
        u32::from_be_bytes([data[4], data[5], data[6], data[7]]),
        u32::from_be_bytes([data[8], data[9], data[10], data[11]]),
    ))
}

/// Frames skipped between two consecutive packets whose timestamps differ by `delta`, with
/// `samples` per packet: 0 on the grid, 0 for a timestamp that went back or stood still.
pub fn frames_skipped(delta: u32, samples: u32) -> u64 {
    if samples == 0 || delta > u32::MAX / 2 {
        return 0;
    }
    u64::from((delta / samples).saturating_sub(1))
}

fn receive(sock: &UdpSocket, stop: &AtomicBool, windows: &Windows, ptime_ns: u64) -> MediaReport {
    // PCMU: 8 samples a millisecond.
    let samples = (ptime_ns / 125_000) as u32;
    let mut report = MediaReport::default();
    let mut table: HashMap<(SocketAddrV4, u32), Stream> = HashMap::new();
    let mut batch = Batch::new();
    while !stop.load(Ordering::Relaxed) {
        let n = match batch.recv_queued(sock) {
            // Drained: sleep rather than block. A thread blocked in recv must be woken for the
            // first packet after each wait, and on loopback that wake-up is done (and its CPU
            // charged) inside the sender's send call; a sleeping thread costs the sender
            // nothing, the kernel stamps keep the arrival times, and the receive buffer holds
            // far more than a millisecond of packets.
            Ok(n) if n < rx::BATCH => {
                std::thread::sleep(POLL);
                n
            }
            Ok(n) => n,
            Err(e) => {
                eprintln!("onhold bench: receiving RTP: {e}");
                break;
            }
        };
        let hold_from = windows.hold_from.load(Ordering::Relaxed);
        let hold_until = windows.hold_until.load(Ordering::Relaxed);
        let teardown = windows.teardown_from.load(Ordering::Relaxed);
        for i in 0..n {
            let d = batch.get(i);
            let (Some(src), Some((seq, ts, ssrc))) = (d.from, rtp_fields(d.data)) else {
                report.other += 1;
                continue;
            };
            report.packets += 1;
            report.unstamped += u64::from(!d.kernel_time);
            let at = d.at_ns;
            let s = match table.entry((src, ssrc)) {
                Entry::Vacant(v) => v.insert(Stream {
                    src,
                    ssrc,
                    seq: SeqTrack::new(seq),
                    last_ns: at,
                    last_ts: ts,
                    skipped: 0,
                    tail: Vec::new(),
                    tail_dropped: 0,
                }),
                Entry::Occupied(o) => {
                    let s = o.into_mut();
                    let step = s.seq.add(seq);
                    // Only the gap to the next packet in order is pacing; a hole is loss.
                    if step >= 1 {
                        // Across a hole the jump is the loss's, not a skip.
                        if step == 1 {
                            s.skipped += frames_skipped(ts.wrapping_sub(s.last_ts), samples);
                        }
                        s.last_ts = ts;
                    }
                    if step == 1 && at >= s.last_ns && at < teardown {
                        let gap = at - s.last_ns;
                        if at >= hold_from && at < hold_until {
                            report.hold.add_gap(gap, ptime_ns);
                        } else if at < hold_from {
                            report.ramp.add_gap(gap, ptime_ns);
                        }
                    }
                    s.last_ns = s.last_ns.max(at);
                    s
                }
            };
            if at >= teardown {
                if s.tail.len() < TAIL_CAP {
                    s.tail.push(at);
                } else {
                    s.tail_dropped += 1;
                }
            }
        }
    }
    report.streams = table.into_values().collect();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(seq: u16, ssrc: u32) -> Vec<u8> {
        rtp_at(seq, u32::from(seq) * 160, ssrc)
    }

    fn rtp_at(seq: u16, ts: u32, ssrc: u32) -> Vec<u8> {
        let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p[4..8].copy_from_slice(&ts.to_be_bytes());
        p[8..12].copy_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&[0xff; 160]);
        p
    }

    #[test]
    fn rtp_is_told_from_rtcp_and_sip() {
        assert_eq!(rtp_fields(&rtp(7, 99)), Some((7, 7 * 160, 99)));
        let mut rtcp = rtp(7, 99);
        rtcp[1] = 200; // SR
        assert_eq!(rtp_fields(&rtcp), None);
        assert_eq!(rtp_fields(b"SIP/2.0 200 OK\r\n\r\n"), None);
    }

    #[test]
    fn a_timestamp_jump_of_whole_packets_is_frames_skipped() {
        assert_eq!(frames_skipped(160, 160), 0);
        assert_eq!(frames_skipped(4 * 160, 160), 3);
        assert_eq!(
            frames_skipped(200, 160),
            0,
            "a jitter of samples is not a frame"
        );
        assert_eq!(frames_skipped(0u32.wrapping_sub(160), 160), 0, "backwards");
        assert_eq!(frames_skipped(0, 160), 0);
    }

    #[test]
    fn streams_are_told_apart_by_source_and_ssrc_and_holes_are_loss() {
        let windows = Arc::new(Windows::default());
        let r = Receivers::start(
            Ipv4Addr::LOCALHOST,
            1,
            Duration::from_millis(20),
            windows.clone(),
        )
        .unwrap();
        let to = SocketAddrV4::new(Ipv4Addr::LOCALHOST, r.ports[0]);
        // The kernel turns receive stamping on in deferred work (rx::keep_stamping says more).
        std::thread::sleep(Duration::from_millis(100));
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        for seq in [1u16, 2, 3, 5, 6] {
            a.send_to(&rtp(seq, 1), to).unwrap();
        }
        for seq in 10..20u16 {
            a.send_to(&rtp(seq, 2), to).unwrap();
            // b skips 3 frames after seq 14, its sequence numbers contiguous.
            let late = if seq > 14 { 3 * 160 } else { 0 };
            b.send_to(&rtp_at(seq, u32::from(seq) * 160 + late, 1), to)
                .unwrap();
        }
        // Everything from here on counts as after the teardown began.
        Windows::set(&windows.teardown_from, rx::now_ns());
        a.send_to(&rtp(7, 1), to).unwrap();
        a.send_to(b"not rtp", to).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let report = r.finish();
        assert_eq!(report.packets, 26);
        assert_eq!(report.other, 1);
        let mut streams: Vec<_> = report
            .streams
            .iter()
            .map(|s| {
                (
                    s.src.port(),
                    s.ssrc,
                    s.seq.received,
                    s.seq.lost(),
                    s.skipped,
                    s.tail.len(),
                )
            })
            .collect();
        streams.sort();
        let (pa, pb) = (
            a.local_addr().unwrap().port(),
            b.local_addr().unwrap().port(),
        );
        let mut want = vec![
            (pa, 1, 6, 1, 0, 1),
            (pa, 2, 10, 0, 0, 0),
            (pb, 1, 10, 0, 3, 0),
        ];
        want.sort();
        assert_eq!(streams, want);
        // Gaps in order before any window: the ramp's.
        assert_eq!(report.ramp.samples, 3 + 9 + 9);
        assert_eq!(report.hold.samples, 0);
    }
}
