//! RTP and RTCP packet writing (RFC 3550) and the per-call playout cursor.
//!
//! A call's media state is a [`Playout`]: a cursor into shared, pre-encoded music plus the RTP
//! header fields. Packet k of a sending run is due at exactly `start + k·ptime` (an absolute grid,
//! so pacing never drifts however late the runtime wakes).

use std::time::{Duration, Instant};

pub const RTP_HEADER_LEN: usize = 12;

/// Write a 12-byte RTP header (V=2, no padding, no extension, no CSRC).
pub fn write_rtp_header(buf: &mut [u8], marker: bool, pt: u8, seq: u16, ts: u32, ssrc: u32) {
    buf[0] = 0x80;
    buf[1] = (u8::from(marker) << 7) | (pt & 0x7F);
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[4..8].copy_from_slice(&ts.to_be_bytes());
    buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
}

/// Does this look like RTP or RTCP (version 2)? Used to count and drop what callers send us.
pub fn is_rtp_or_rtcp(data: &[u8]) -> bool {
    data.len() >= 8 && data[0] >> 6 == 2
}

/// 64-bit NTP timestamp (RFC 3550 §4) for a wall-clock time given as seconds and nanoseconds
/// since the Unix epoch.
/// An RTP packet's payload type, timestamp and payload (RFC 3550 §5.1: after the CSRC list
/// and a header extension, without padding); `None` if it is not a well-formed RTP packet.
pub fn payload(packet: &[u8]) -> Option<(u8, u32, &[u8])> {
    let (&first, rest) = packet.split_first()?;
    if first >> 6 != 2 || packet.len() < RTP_HEADER_LEN {
        return None;
    }
    let pt = packet[1] & 0x7f;
    let ts = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
    let mut start = RTP_HEADER_LEN + 4 * usize::from(first & 0x0f);
    if first & 0x10 != 0 {
        let ext = packet.get(start + 2..start + 4)?;
        start += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    let mut end = packet.len();
    if first & 0x20 != 0 {
        end = end.checked_sub(usize::from(*rest.last()?))?;
    }
    Some((pt, ts, packet.get(start..end)?))
}

pub fn ntp_timestamp(unix: Duration) -> u64 {
    const UNIX_TO_NTP: u64 = 2_208_988_800;
    let secs = unix.as_secs() + UNIX_TO_NTP;
    let frac = ((unix.subsec_nanos() as u64) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// The sender-info block of an RTCP SR (RFC 3550 §6.4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenderInfo {
    pub ssrc: u32,
    pub ntp: u64,
    pub rtp_ts: u32,
    pub packets: u32,
    pub octets: u32,
}

/// RTCP sender report (RFC 3550 §6.4.1) with no report blocks, plus an SDES CNAME (§6.5: every
/// compound packet carries one), optionally followed by BYE (§6.6). Returns the length written.
pub fn write_rtcp_sr(buf: &mut [u8], info: SenderInfo, cname: &[u8], bye: bool) -> usize {
    let SenderInfo {
        ssrc,
        ntp,
        rtp_ts,
        packets,
        octets,
    } = info;
    // SR: header(4) + ssrc(4) + ntp(8) + rtp ts(4) + counts(8) = 28 bytes.
    buf[0] = 0x80;
    buf[1] = 200;
    buf[2..4].copy_from_slice(&6u16.to_be_bytes());
    buf[4..8].copy_from_slice(&ssrc.to_be_bytes());
    buf[8..16].copy_from_slice(&ntp.to_be_bytes());
    buf[16..20].copy_from_slice(&rtp_ts.to_be_bytes());
    buf[20..24].copy_from_slice(&packets.to_be_bytes());
    buf[24..28].copy_from_slice(&octets.to_be_bytes());
    let mut n = 28;
    // SDES: header(4) + ssrc(4) + CNAME item(2 + len) + terminating zero, padded to 32 bits.
    let cname = &cname[..cname.len().min(255)];
    let chunk = 4 + 2 + cname.len() + 1;
    let chunk_padded = chunk.div_ceil(4) * 4;
    let words = (4 + chunk_padded) / 4 - 1;
    buf[n] = 0x81;
    buf[n + 1] = 202;
    buf[n + 2..n + 4].copy_from_slice(&(words as u16).to_be_bytes());
    buf[n + 4..n + 8].copy_from_slice(&ssrc.to_be_bytes());
    buf[n + 8] = 1; // CNAME
    buf[n + 9] = cname.len() as u8;
    buf[n + 10..n + 10 + cname.len()].copy_from_slice(cname);
    let end = n + 4 + chunk_padded;
    buf[n + 10 + cname.len()..end].fill(0);
    n = end;
    if bye {
        buf[n] = 0x81;
        buf[n + 1] = 203;
        buf[n + 2..n + 4].copy_from_slice(&1u16.to_be_bytes());
        buf[n + 4..n + 8].copy_from_slice(&ssrc.to_be_bytes());
        n += 8;
    }
    n
}

/// A call's position in the music and its RTP header state. Tens of bytes: the music itself is
/// shared by every call.
#[derive(Clone, Debug)]
pub struct Playout {
    pub ssrc: u32,
    pub pt: u8,
    /// Sequence number of the next packet.
    pub seq: u16,
    /// RTP timestamp of the next packet.
    pub ts: u32,
    /// Position in the class's program (RTP timestamp units) of the next packet (per-call mode).
    pub pos: u64,
    /// Samples (= payload bytes) per packet.
    pub frame: u32,
    pub ptime: Duration,
    /// Grid origin of the current sending run and the index of the next packet on it.
    pub start: Instant,
    pub k: u64,
    /// `start + k·ptime`, kept with `k` so the per-packet path does not redo the arithmetic.
    next_due: Instant,
    /// Set the marker bit on the next packet (first packet, resume after hold, music reload).
    pub marker: bool,
    /// Is a sending run active (ACKed and not on hold)?
    pub running: bool,
    /// When the last packet of the previous run was due (to advance the timestamp on resume).
    pub last_due: Option<Instant>,
    pub packets: u64,
    pub octets: u64,
}

impl Playout {
    pub fn new(ssrc: u32, pt: u8, seq: u16, ts: u32, ptime_ms: u32, now: Instant) -> Playout {
        Playout {
            ssrc,
            pt,
            seq,
            ts,
            pos: 0,
            frame: ptime_ms * 8,
            ptime: Duration::from_millis(ptime_ms as u64),
            start: now,
            k: 0,
            next_due: now,
            marker: true,
            running: false,
            last_due: None,
            packets: 0,
            octets: 0,
        }
    }

    /// When the next packet is due on the grid.
    pub fn due(&self) -> Instant {
        self.next_due
    }

    /// Recompute the deadline from the grid (never by adding ptimes up: no drift).
    fn regrid(&mut self) {
        self.next_due = self.start
            + Duration::from_nanos((self.ptime.as_nanos() as u64).saturating_mul(self.k));
    }

    /// Start (or resume) sending at `now`: a new grid, marker bit on the first packet, and the
    /// timestamp advanced by the time spent silent so receivers see the pause (RFC 3550 §5.1).
    pub fn begin(&mut self, now: Instant) {
        if self.running {
            return;
        }
        if let Some(last) = self.last_due {
            let silent = now.saturating_duration_since(last + self.ptime);
            let samples = (silent.as_nanos() * 8000 / 1_000_000_000) as u32;
            self.ts = self.ts.wrapping_add(samples);
        }
        self.start = now;
        self.k = 0;
        self.regrid();
        self.marker = true;
        self.running = true;
    }

    /// Stop sending (hold, BYE). Returns false if it was not running.
    pub fn stop(&mut self) -> bool {
        if !self.running {
            return false;
        }
        self.running = false;
        if self.k > 0 {
            self.last_due = Some(self.due() - self.ptime);
        }
        true
    }

    /// Frames to skip before sending the packet due now, when the runtime woke so late that
    /// more than `max_catchup` further frames are overdue. Skipping keeps seq contiguous and
    /// advances the timestamp and music position by the skipped samples.
    pub fn skip_overdue(&mut self, now: Instant, max_catchup: u32) -> u32 {
        let due = self.due();
        if now <= due {
            return 0;
        }
        let behind = (now - due).as_nanos() / self.ptime.as_nanos();
        if behind <= max_catchup as u128 {
            return 0;
        }
        let skip = (behind - max_catchup as u128).min(u32::MAX as u128) as u32;
        self.k += skip as u64;
        self.regrid();
        self.ts = self.ts.wrapping_add(skip.wrapping_mul(self.frame));
        self.pos += skip as u64 * self.frame as u64;
        skip
    }

    /// Write the header of the packet due now into `buf` and advance the cursor; the caller
    /// fills `buf[12..12 + frame]` with music from position `pos` (returned).
    pub fn write_next(&mut self, buf: &mut [u8]) -> (usize, u64) {
        write_rtp_header(buf, self.marker, self.pt, self.seq, self.ts, self.ssrc);
        let pos = self.pos;
        self.marker = false;
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(self.frame);
        self.pos += self.frame as u64;
        self.k += 1;
        self.regrid();
        self.packets += 1;
        self.octets += self.frame as u64;
        (RTP_HEADER_LEN + self.frame as usize, pos)
    }

    /// The RTP timestamp that corresponds to `now` (for RTCP SR, RFC 3550 §6.4.1).
    pub fn ts_at(&self, now: Instant) -> u32 {
        let due = self.due();
        if now >= due {
            let ahead = ((now - due).as_nanos() * 8000 / 1_000_000_000) as u32;
            self.ts.wrapping_add(ahead)
        } else {
            let behind = ((due - now).as_nanos() * 8000 / 1_000_000_000) as u32;
            self.ts.wrapping_sub(behind)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Any instant will do as a grid origin; tests never compare against the real clock.
    #[allow(clippy::disallowed_methods)]
    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn header_fields_land_where_rfc3550_puts_them() {
        let mut b = [0u8; 12];
        write_rtp_header(&mut b, true, 9, 0xBEEF, 0x0102_0304, 0xCAFE_BABE);
        assert_eq!(
            b,
            [0x80, 0x89, 0xBE, 0xEF, 1, 2, 3, 4, 0xCA, 0xFE, 0xBA, 0xBE]
        );
    }

    #[test]
    fn sr_with_bye_is_a_valid_compound_packet() {
        let mut b = [0u8; 128];
        let n = write_rtcp_sr(
            &mut b,
            SenderInfo {
                ssrc: 7,
                ntp: 1 << 32,
                rtp_ts: 160,
                packets: 3,
                octets: 480,
            },
            b"onhold",
            true,
        );
        // SR 28 + SDES (4 + 4 + 2 + 6 + 1 = 17 → 20) + BYE 8
        assert_eq!(n, 28 + 20 + 8);
        assert_eq!(b[1], 200);
        assert_eq!(u16::from_be_bytes([b[2], b[3]]), 6);
        assert_eq!(b[29], 202);
        assert_eq!(u16::from_be_bytes([b[30], b[31]]) as usize, (20 / 4) - 1);
        assert_eq!(&b[38..44], b"onhold");
        assert_eq!(b[49], 203);
        // every sub-packet length field covers exactly what follows it
        let mut off = 0;
        while off < n {
            off += (u16::from_be_bytes([b[off + 2], b[off + 3]]) as usize + 1) * 4;
        }
        assert_eq!(off, n);
    }

    #[test]
    fn grid_is_absolute_and_catchup_is_bounded() {
        let t0 = t0();
        let mut p = Playout::new(1, 0, 65534, u32::MAX - 100, 20, t0);
        p.begin(t0);
        let mut buf = [0u8; 512];
        p.write_next(&mut buf);
        assert_eq!(buf[1] & 0x80, 0x80, "first packet carries the marker");
        assert_eq!(p.due(), t0 + Duration::from_millis(20));
        // wake 1 s late: 50 frames overdue, keep 3, skip the rest
        let late = t0 + Duration::from_millis(1020);
        let skipped = p.skip_overdue(late, 3);
        assert_eq!(skipped, 47);
        assert_eq!(p.seq, 65535, "seq does not jump over skipped frames");
        assert_eq!(p.ts, (u32::MAX - 100).wrapping_add(160 * 48));
        assert_eq!(p.due(), t0 + Duration::from_millis(20 * 48));
        p.write_next(&mut buf);
        assert_eq!(buf[1] & 0x80, 0, "no marker on a catch-up packet");
        assert_eq!(p.seq, 0, "seq wraps");
    }

    #[test]
    fn resume_after_hold_sets_marker_and_advances_timestamp_by_the_silence() {
        let t0 = t0();
        let mut p = Playout::new(1, 0, 10, 1000, 20, t0);
        p.begin(t0);
        let mut buf = [0u8; 512];
        p.write_next(&mut buf); // ts 1000, due t0
        p.write_next(&mut buf); // ts 1160, due t0+20ms
        assert!(p.stop());
        let resume = t0 + Duration::from_millis(20 + 20 + 500);
        p.begin(resume);
        assert_eq!(p.ts, 1320 + 4000, "500 ms of silence is 4000 samples");
        p.write_next(&mut buf);
        assert_eq!(buf[1] & 0x80, 0x80);
        assert_eq!(p.seq, 13);
    }
}
