//! Media out: the next RTP packet of a call, RTCP sender reports, and music reloads.

use super::state::{Payload, Server};
use super::{CallHandle, Event, Transmit, TransmitKind, Transport};
use crate::media::PlayMode;
use crate::rtp::{ntp_timestamp, SenderInfo, RTP_HEADER_LEN};
use std::net::SocketAddr;
use std::time::Instant;

/// Write the packet due for `handle` into `buf`; with it, when the call's next packet is due.
/// `None`: a stale pacing entry.
pub(crate) fn next_rtp(
    s: &mut Server,
    now: Instant,
    due: Instant,
    handle: CallHandle,
    buf: &mut [u8],
) -> Option<(Transmit, Instant)> {
    let max_catchup = s.config.max_catchup_frames;
    let rtp_ip = s.config.rtp_ip;
    let epoch = s.epoch;
    let call = s.calls.get_mut(&handle)?;
    let media = call.media.as_ref()?;
    let p = call.playout.as_mut()?;
    if !p.running || p.due() != due {
        return None; // stale pacing entry (hold, resume, call gone)
    }
    let skipped = p.skip_overdue(now, max_catchup);
    let this_due = p.due();
    let (len, pos) = p.write_next(buf);
    let pos = match s.library.mode(call.class) {
        PlayMode::PerCall => pos,
        // Radio: the position follows the global grid, so every caller hears the same point.
        PlayMode::Shared => ((this_due - epoch).as_nanos() * 8000 / 1_000_000_000) as u64,
    };
    s.library
        .fill(call.class, media.codec, pos, &mut buf[RTP_HEADER_LEN..len]);
    let next = p.due();
    let t = Transmit {
        transport: Transport::Udp,
        local: SocketAddr::new(rtp_ip, call.port),
        remote: media.remote_rtp,
        len,
        kind: TransmitKind::Rtp,
    };
    if skipped > 0 {
        s.stats.late_skipped_frames += skipped as u64;
        s.emit(Event::Late {
            call: handle,
            skipped,
        });
    }
    Some((t, next))
}

pub(crate) fn send_rtcp(s: &mut Server, now: Instant, handle: CallHandle, bye: bool) {
    let rtp_ip = s.config.rtp_ip;
    let wall = s.epoch_unix + (now - s.epoch);
    let Some(call) = s.calls.get(&handle) else {
        return;
    };
    let (Some(p), Some(m)) = (call.playout.as_ref(), call.media.as_ref()) else {
        return;
    };
    if p.packets == 0 {
        return;
    }
    // Queued as its fields: `poll_transmit` writes the packet into the caller's buffer.
    let info = SenderInfo {
        ssrc: p.ssrc,
        ntp: ntp_timestamp(wall),
        rtp_ts: p.ts_at(now),
        packets: p.packets as u32,
        octets: p.octets as u32,
    };
    let local_port = if m.rtcp_mux { call.port } else { call.port + 1 };
    let (remote, transport) = (m.remote_rtcp, Transport::Udp);
    s.queue(
        transport,
        SocketAddr::new(rtp_ip, local_port),
        remote,
        TransmitKind::Rtcp,
        Payload::Rtcp { info, bye },
    );
}

/// New music: every call picks its class again and marks its next packet (RFC 3550 §5.1: the
/// marker flags a discontinuity a receiver should not smooth over).
pub(crate) fn reload(s: &mut Server) {
    let library = s.library.clone();
    for call in s.calls.values_mut() {
        call.class = library.class_for(call.user());
        if let Some(p) = call.playout.as_mut() {
            p.marker = true;
        }
    }
}
