//! Media out: each call's stream (a cursor into the shared music, the negotiated codec and
//! address), the pacing queue that says whose packet is due next, RTCP sender reports, and
//! music reloads. A stream exists from the ACK that starts media until the call ends.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::live::Feeds;
use super::outbox::{Outbox, Path, Payload};
use super::{
    CallHandle, Event, Io, LiveInfo, LiveState, MediaInfo, ServerConfig, Source, Stats, Timer,
    Transmit, TransmitKind, Transport,
};
use crate::codec::Codec;
use crate::media::{ClassId, G722Cursor, Library, PlayMode};
use crate::pacing::PacingQueue;
use crate::rng::Rng;
use crate::rtp::{ntp_timestamp, Playout, SenderInfo, RTP_HEADER_LEN};
use crate::sdp::Negotiated;
use crate::slab::CallMap;

mod heard;

#[derive(Debug)]
pub(crate) struct Media {
    streams: CallMap<Stream>,
    pacing: PacingQueue,
    epoch: Instant,
    /// The wall-clock time at `epoch` as time since the Unix epoch (0 if before it): every
    /// RTCP report's NTP timestamp counts from it.
    epoch_unix: Duration,
    rtp_ip: IpAddr,
    max_catchup: u32,
    rtcp_interval: Duration,
    headroom: Headroom,
    /// The live classes' buffers and sources.
    live: Feeds,
    /// With a shared RTP port, what arrives there finds its call by where it comes from: each
    /// stream's RTP and RTCP destinations, with its call. `None` with a port per call.
    by_remote: Option<BTreeSet<(SocketAddr, CallHandle)>>,
}

/// Whether the runtime keeps up with the pacing grid, judged a second at a time: the share of
/// packets that left later than `limits.overload_lateness` after their place on the grid.
#[derive(Debug)]
struct Headroom {
    threshold: Option<Duration>,
    /// The window being counted, and its counts.
    since: Instant,
    packets: u32,
    late: u32,
    /// The last whole window had more than a tenth of its packets late.
    overloaded: bool,
}

impl Headroom {
    const WINDOW: Duration = Duration::from_secs(1);

    fn new(since: Instant, threshold: Option<Duration>) -> Headroom {
        Headroom {
            threshold,
            since,
            packets: 0,
            late: 0,
            overloaded: false,
        }
    }

    #[inline]
    fn observe(&mut self, now: Instant, late: Duration) {
        let Some(threshold) = self.threshold else {
            return;
        };
        self.packets += 1;
        self.late += u32::from(late > threshold);
        if now.saturating_duration_since(self.since) >= Self::WINDOW {
            self.overloaded = self.late * 10 > self.packets;
            (self.since, self.packets, self.late) = (now, 0, 0);
        }
    }

    /// Overloaded in the last whole window, and that window is recent (no packets since means
    /// no calls to protect).
    fn overloaded(&self, now: Instant) -> bool {
        self.overloaded && now.saturating_duration_since(self.since) < 2 * Self::WINDOW
    }
}

#[derive(Debug)]
struct Stream {
    playout: Playout,
    /// The media in force.
    neg: Negotiated,
    /// Our RTP port (RTCP on the one above unless muxed).
    port: u16,
    class: ClassId,
    /// Music an operator chose for this call alone (`Control::Source`), played instead of the
    /// library's, and its name. Boxed: rare, and a stream is moved when it is stored.
    own: Option<Box<(String, Arc<Library>)>>,
    /// The armed RTCP report timer.
    rtcp_at: Option<Instant>,
    /// The network has been saying the destination is unreachable (see [`Unreachable`]).
    unreachable: Option<Unreachable>,
    /// What we hear from the caller: latching and the silence timer (`heard.rs`).
    inbound: heard::Inbound,
    /// While the codec is G.722: the encoder the caller's decoder follows (kept across holds,
    /// so a resume carries its state on).
    g722: Option<Box<G722Cursor>>,
    /// The last packet was the live source's, not the fallback's (a change sets the marker).
    on_live: bool,
}

/// ICMP unreachable errors for a stream's destination with nothing heard from the caller in
/// between: since when, the latest, and how many.
#[derive(Clone, Copy, Debug)]
struct Unreachable {
    since: Instant,
    last: Instant,
    count: u32,
}

/// A stream whose destination has answered ICMP port or host unreachable for this long (at
/// least [`UNREACHABLE_ERRORS`] times, none further apart than [`UNREACHABLE_GAP`], nothing heard
/// from the caller meanwhile) is going nowhere, or to a host that did not ask for it: its call
/// ends. Linux lets a host send one such error a second after a burst, so a dead port shows
/// within the span; a lone error (a port briefly closed during a re-INVITE) does not end a call.
pub(crate) const UNREACHABLE_FOR: Duration = Duration::from_secs(2);
const UNREACHABLE_GAP: Duration = Duration::from_millis(2500);
const UNREACHABLE_ERRORS: u32 = 3;

/// The random values a call's stream starts with (RFC 3550 §5.1: SSRC, first sequence number
/// and timestamp) and the jitter of its first RTCP interval. Drawn each time media is applied,
/// before anything else, so every call draws the same values in the same order.
pub(crate) struct StreamSeed {
    ssrc: u32,
    seq: u16,
    ts: u32,
    jitter: u64,
}

impl StreamSeed {
    /// Three words of the keystream: SSRC and timestamp, then sequence number and jitter
    /// (0–999, from 16 bits by multiply-shift).
    pub fn draw(rng: &mut Rng) -> StreamSeed {
        let (a, b) = (rng.next_u64(), rng.next_u32());
        StreamSeed {
            ssrc: a as u32,
            ts: (a >> 32) as u32,
            seq: b as u16,
            jitter: ((b >> 16) as u64 * 1000) >> 16,
        }
    }
}

/// The shared-mode position of instant `at`: RTP timestamp units since the epoch, the same for
/// every caller.
fn grid_pos(epoch: Instant, at: Instant) -> u64 {
    (at.saturating_duration_since(epoch).as_nanos() * 8000 / 1_000_000_000) as u64
}

/// Keep the shared port's index (`Media::by_remote`) in step with a stream whose destinations
/// go from `old` to `new`. On hold at 0.0.0.0 there is nothing to index.
fn reindex(
    index: &mut Option<BTreeSet<(SocketAddr, CallHandle)>>,
    call: CallHandle,
    old: Option<&Negotiated>,
    new: Option<&Negotiated>,
) {
    let Some(index) = index else {
        return;
    };
    let addrs = |n: Option<&Negotiated>| n.map(|n| [n.remote_rtp, n.remote_rtcp]);
    let (old, new) = (addrs(old), addrs(new));
    if old == new {
        return;
    }
    for a in old.into_iter().flatten() {
        index.remove(&(a, call));
    }
    for a in new.into_iter().flatten() {
        if !a.ip().to_canonical().is_unspecified() {
            index.insert((a, call));
        }
    }
}

/// What a stream had sent when its call ended.
pub(crate) struct Ended {
    pub packets: u64,
    pub rtcp_mux: bool,
}

impl Media {
    pub fn new(epoch: Instant, epoch_wall: SystemTime, config: &ServerConfig) -> Media {
        Media {
            streams: CallMap::default(),
            pacing: PacingQueue::new(epoch),
            epoch,
            epoch_unix: epoch_wall.duration_since(UNIX_EPOCH).unwrap_or_default(),
            rtp_ip: config.rtp_ip,
            max_catchup: config.max_catchup_frames,
            rtcp_interval: config.rtcp_interval,
            headroom: Headroom::new(epoch, config.limits.overload_lateness),
            live: Feeds::new(config.allows(Codec::G722)),
            by_remote: config.rtp_shared_port.map(|_| BTreeSet::new()),
        }
    }

    /// The live classes of `library` (at start and after a reload) get their feeds.
    pub fn relink_live(&mut self, library: &Library) {
        self.live.relink(library);
    }

    /// A live class's source sent audio (see `Server::live_audio`).
    pub fn live_audio(
        &mut self,
        now: Instant,
        out: &mut Outbox,
        class: &str,
        pcm8: &[i16],
        pcm16: &[i16],
    ) {
        let grid = grid_pos(self.epoch, now);
        self.live.audio(out, class, grid, pcm8, pcm16);
    }

    /// A live class's source came (`Ok`) or went (`Err`).
    pub fn live_source(&mut self, out: &mut Outbox, class: &str, state: Result<(), String>) {
        self.live.source(out, class, state);
    }

    pub fn live_info(&self, now: Instant) -> Vec<LiveInfo> {
        self.live.info(grid_pos(self.epoch, now))
    }

    /// Is the runtime falling behind the calls it has (new calls should be refused)?
    pub fn overloaded(&self, now: Instant) -> bool {
        self.headroom.overloaded(now)
    }

    /// New settings apply from the next packet and report on.
    pub fn reconfigure(&mut self, config: &ServerConfig) {
        self.rtp_ip = config.rtp_ip;
        self.max_catchup = config.max_catchup_frames;
        self.rtcp_interval = config.rtcp_interval;
        self.headroom.threshold = config.limits.overload_lateness;
    }

    /// The local RTP address of a port.
    pub fn local_rtp(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.rtp_ip, port)
    }

    /// Where a call's RTP grid starts when media begins at `now`: the next whole millisecond
    /// since the epoch. Calls then share at most `ptime` / 1 ms distinct send instants, so the
    /// runtime wakes once per instant for every call due then (one `sendmmsg`), instead of once
    /// per call at random phases; the first packet leaves at most 1 ms after the ACK, and every
    /// packet after it sits exactly on its call's grid.
    fn grid_start(&self, now: Instant) -> Instant {
        const QUANTUM_NS: u128 = 1_000_000;
        let since = now.saturating_duration_since(self.epoch).as_nanos();
        let aligned = since.div_ceil(QUANTUM_NS) * QUANTUM_NS;
        self.epoch + Duration::from_nanos(aligned as u64)
    }

    /// Media agreed in a 2xx takes effect: start the stream (the first time, when this returns
    /// true), resume, hold or move it. It sends while `neg` says we send; packets follow one
    /// grid, and a stream that starts again (or changes codec, ptime or address) starts a new
    /// grid with the marker bit set.
    pub fn apply(
        &mut self,
        now: Instant,
        call: CallHandle,
        port: u16,
        neg: Negotiated,
        seed: &StreamSeed,
        class: impl FnOnce() -> ClassId,
    ) -> bool {
        let grid_start = self.grid_start(now);
        let first = self.streams.get(call).is_none();
        if first {
            let playout = Playout::new(
                seed.ssrc,
                neg.payload_type,
                seed.seq,
                seed.ts,
                neg.ptime_ms,
                now,
            );
            let stream = Stream {
                playout,
                neg,
                port,
                class: class(),
                own: None,
                rtcp_at: None,
                unreachable: None,
                inbound: heard::Inbound::default(),
                g722: None,
                on_live: false,
            };
            self.streams.insert(call, stream);
        }
        let Some(stream) = self.streams.get_mut(call) else {
            return first;
        };
        let p = &mut stream.playout;
        if p.pt != neg.payload_type || p.frame != neg.ptime_ms * 8 {
            p.stop();
            p.pt = neg.payload_type;
            p.frame = neg.ptime_ms * 8;
            p.ptime = Duration::from_millis(neg.ptime_ms as u64);
        }
        // A latched stream keeps its address while the SDP names the same one as before.
        let neg = stream.inbound.keep_latched(neg);
        if stream.neg.remote_rtp != neg.remote_rtp {
            p.stop();
            stream.unreachable = None;
        }
        stream.inbound.renegotiated();
        if neg.codec != Codec::G722 {
            // Should G.722 come back, the caller's decoder for it starts afresh, and so does
            // our encoder.
            stream.g722 = None;
        } else if stream.g722.is_none() {
            // A stream that starts with the music plays the pre-encoded start; any other starts
            // an encoder from the zero state, as the caller's decoder is.
            stream.g722 = Some(Box::new(match p.pos {
                0 => G722Cursor::at_start(),
                _ => G722Cursor::live(),
            }));
        }
        let send = neg.sends();
        if send && !p.running {
            p.begin(grid_start);
            self.pacing.push(p.due(), call);
        } else if !send {
            p.stop();
        }
        // A new stream was stored with `neg` already: nothing indexed yet.
        let was = (!first).then_some(stream.neg);
        reindex(&mut self.by_remote, call, was.as_ref(), Some(&neg));
        stream.neg = neg;
        first
    }

    /// The call whose stream goes to `remote` (RTP or RTCP), on the shared port. An address
    /// several calls stream to (a test tool, a media relay's one port) names none of them: what
    /// comes from it, or an ICMP error about it, cannot be told apart.
    pub fn by_remote(&self, remote: SocketAddr) -> Option<CallHandle> {
        let from = (remote, CallHandle(0));
        let mut calls = self.by_remote.as_ref()?.range(from..).take(2);
        match (calls.next(), calls.next()) {
            (Some(&(a, call)), next) if a == remote && next.is_none_or(|&(b, _)| b != remote) => {
                Some(call)
            }
            _ => None,
        }
    }

    /// Arm a new stream's first RTCP report, at a random point of the first interval
    /// (RFC 3550 §6.3.1: 0.5–1.5 times the nominal interval).
    pub fn arm_rtcp(&mut self, io: &mut Io<'_>, call: CallHandle, seed: &StreamSeed) {
        let delay = self
            .rtcp_interval
            .mul_f64(0.5 + seed.jitter as f64 / 1000.0);
        if let Some(stream) = self.streams.get_mut(call) {
            stream.rtcp_at = Some(io.now + delay);
            io.timers
                .push_random_after(io.now, delay, Timer::Rtcp(call));
        }
    }

    /// The media in force for a call, once it started.
    pub fn negotiated(&self, call: CallHandle) -> Option<&Negotiated> {
        self.streams.get(call).map(|s| &s.neg)
    }

    /// The network says `remote` cannot be reached from this call's socket (ICMP port or host
    /// unreachable). True when the call should end: see [`UNREACHABLE_FOR`].
    pub fn unreachable(&mut self, now: Instant, call: CallHandle, remote: SocketAddr) -> bool {
        let Some(s) = self.streams.get_mut(call) else {
            return false;
        };
        if remote != s.neg.remote_rtp && remote != s.neg.remote_rtcp {
            return false;
        }
        let u = match s.unreachable {
            Some(u) if now.saturating_duration_since(u.last) <= UNREACHABLE_GAP => Unreachable {
                last: now,
                count: u.count + 1,
                ..u
            },
            _ => Unreachable {
                since: now,
                last: now,
                count: 1,
            },
        };
        s.unreachable = Some(u);
        u.count >= UNREACHABLE_ERRORS && now.saturating_duration_since(u.since) >= UNREACHABLE_FOR
    }

    /// Stop sending (a hold offer, before its ACK).
    pub fn stop(&mut self, call: CallHandle) {
        if let Some(stream) = self.streams.get_mut(call) {
            stream.playout.stop();
        }
    }

    /// The RTCP timer: a sender report while the stream sends, and the next one armed.
    pub fn on_rtcp_timer(&mut self, io: &mut Io<'_>, rng: &mut Rng, at: Instant, call: CallHandle) {
        let Some(stream) = self.streams.get_mut(call) else {
            return;
        };
        if stream.rtcp_at != Some(at) {
            return;
        }
        let sending = stream.playout.running;
        let interval = self
            .rtcp_interval
            .mul_f64(0.5 + rng.below(1000) as f64 / 1000.0);
        stream.rtcp_at = Some(io.now + interval);
        io.timers
            .push_random_after(io.now, interval, Timer::Rtcp(call));
        if sending {
            self.send_rtcp(io.now, call, false, io.out);
        }
    }

    /// The call is over: a last report with RTCP BYE if the stream sent anything (RFC 3550
    /// §6.6), and the stream is gone.
    pub fn end(&mut self, now: Instant, call: CallHandle, out: &mut Outbox) -> Option<Ended> {
        if self
            .streams
            .get(call)
            .is_some_and(|s| s.playout.packets > 0)
        {
            self.send_rtcp(now, call, true, out);
        }
        let stream = self.streams.remove(call)?;
        reindex(&mut self.by_remote, call, Some(&stream.neg), None);
        Some(Ended {
            packets: stream.playout.packets,
            rtcp_mux: stream.neg.rtcp_mux,
        })
    }

    fn send_rtcp(&self, now: Instant, call: CallHandle, bye: bool, out: &mut Outbox) {
        let Some(Stream {
            playout: p,
            neg,
            port,
            ..
        }) = self.streams.get(call)
        else {
            return;
        };
        // Nothing sent yet, or held at 0.0.0.0 or :: (RFC 2543 hold): no report, nowhere to go.
        if p.packets == 0 || neg.remote_rtcp.ip().to_canonical().is_unspecified() {
            return;
        }
        let wall = self.epoch_unix + (now - self.epoch);
        // Queued as its fields: the packet is written into the runtime's buffer when sent.
        let info = SenderInfo {
            ssrc: p.ssrc,
            ntp: ntp_timestamp(wall),
            rtp_ts: p.ts_at(now),
            packets: p.packets as u32,
            octets: p.octets as u32,
        };
        let local_port = if neg.rtcp_mux { *port } else { port + 1 };
        let path = Path {
            transport: Transport::Udp,
            local: SocketAddr::new(self.rtp_ip, local_port),
            dest: neg.remote_rtcp,
        };
        out.datagram(path, TransmitKind::Rtcp, Payload::Rtcp { info, bye });
    }

    /// Write the next due RTP packet into `buf`, if one is due at `now`.
    pub fn poll_rtp(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        library: &Library,
        stats: &mut Stats,
        out: &mut Outbox,
    ) -> Option<Transmit> {
        while let Some((due, call)) = self.pacing.peek_due(now) {
            match self.write_rtp(now, due, call, buf, library, stats, out) {
                Some((t, next_due)) => {
                    self.pacing.replace_top(next_due, call);
                    return Some(t);
                }
                None => self.pacing.pop(),
            }
        }
        None
    }

    /// Write the packet due for `call` into `buf`; with it, when the call's next packet is due.
    /// `None`: a stale pacing entry (hold, resume, call gone).
    #[allow(clippy::too_many_arguments)]
    fn write_rtp(
        &mut self,
        now: Instant,
        due: Instant,
        call: CallHandle,
        buf: &mut [u8],
        library: &Library,
        stats: &mut Stats,
        out: &mut Outbox,
    ) -> Option<(Transmit, Instant)> {
        let stream = self.streams.get_mut(call)?;
        let p = &mut stream.playout;
        if !p.running || p.due() != due {
            return None;
        }
        let library = stream.own.as_ref().map_or(library, |own| &own.1);
        let skipped = p.skip_overdue(now, self.max_catchup);
        let this_due = p.due();
        let shared = library.mode(stream.class) == PlayMode::Shared;
        // Radio: the position follows the global grid, so every caller hears the same point.
        let grid = if shared {
            grid_pos(self.epoch, this_due)
        } else {
            0
        };
        // A live class plays its source while the buffer holds this packet's audio, else its
        // fallback; the marker bit flags each change (seq and timestamp run on).
        let feed = match &stream.own {
            None if shared => self.live.of(stream.class),
            _ => None,
        };
        let live = match feed {
            Some(feed) => {
                let was = feed.buffer.playing();
                let ready = feed.buffer.ready(grid, p.frame as usize);
                if was && !feed.buffer.playing() {
                    feed.event(out, LiveState::Fallback, None);
                }
                ready.then_some(feed)
            }
            None => None,
        };
        if live.is_some() != stream.on_live {
            stream.on_live = live.is_some();
            p.marker = true;
        }
        let (len, pos) = p.write_next(buf);
        let pos = if shared { grid } else { pos };
        let payload = &mut buf[RTP_HEADER_LEN..len];
        match (live, stream.g722.as_deref_mut()) {
            (Some(feed), Some(cursor)) => feed.buffer.fill_g722(cursor, pos, payload),
            (Some(feed), None) => feed.buffer.fill(stream.neg.codec, pos, payload),
            (None, Some(cursor)) => library.fill_g722(stream.class, cursor, pos, payload),
            (None, None) => library.fill(stream.class, stream.neg.codec, pos, payload),
        }
        stats.rtp_octets_out += (len - RTP_HEADER_LEN) as u64;
        let late = now.saturating_duration_since(this_due);
        stats.lateness.observe(late);
        self.headroom.observe(now, late);
        let t = Transmit {
            transport: Transport::Udp,
            local: SocketAddr::new(self.rtp_ip, stream.port),
            remote: stream.neg.remote_rtp,
            len,
            kind: TransmitKind::Rtp,
        };
        if skipped > 0 {
            stats.late_skipped_frames += skipped as u64;
            out.event(Event::Late { call, skipped });
        }
        Some((t, p.due()))
    }

    /// New music: every stream picks its class again and marks its next packet (RFC 3550 §5.1:
    /// the marker flags a discontinuity a receiver should not smooth over). A stream playing
    /// music of its own keeps it.
    pub fn reload(&mut self, class_of: impl Fn(CallHandle) -> Option<ClassId>) {
        for (call, stream) in self.streams.values_mut() {
            if stream.own.is_some() {
                continue;
            }
            if let Some(class) = class_of(call) {
                stream.class = class;
            }
            stream.playout.marker = true;
        }
    }

    /// Play `source` (`class` of it) to `call` from its next packet, from the music's start:
    /// the marker bit flags the change, seq and timestamp run on. False if the call has no
    /// stream (not answered yet, or gone).
    pub fn switch(&mut self, call: CallHandle, class: ClassId, source: Source) -> bool {
        let Some(stream) = self.streams.get_mut(call) else {
            return false;
        };
        stream.class = class;
        stream.own = match source {
            Source::Class(_) => None,
            Source::Music { name, library } => Some(Box::new((name, library))),
        };
        stream.playout.pos = 0;
        stream.playout.marker = true;
        true
    }

    /// What the control API shows of a call's stream.
    pub fn info(&self, call: CallHandle, library: &Library) -> Option<MediaInfo> {
        let s = self.streams.get(call)?;
        let source = match &s.own {
            Some(own) => own.0.clone(),
            None => library.class_name(s.class).to_string(),
        };
        Some(MediaInfo {
            source,
            codec: s.neg.codec,
            payload_type: s.neg.payload_type,
            ptime_ms: s.neg.ptime_ms,
            direction: s.neg.direction,
            sending: s.playout.running,
            local_rtp: self.local_rtp(s.port),
            remote_rtp: s.neg.remote_rtp,
            latched: s.inbound.is_latched(),
            packets: s.playout.packets,
            octets: s.playout.octets,
        })
    }

    /// When the earliest packet is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pacing.next_deadline()
    }
}
