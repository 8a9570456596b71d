//! What the caller sends to our RTP and RTCP ports. We only send media, but what arrives says
//! three things: where the caller really is (symmetric RTP: behind a NAT, its packets come from
//! the NAT's address, not the private one in its SDP), that its host is alive (no ICMP error
//! stands against a host that sends to us), and, when it stops, that it may be gone.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::super::{CallHandle, Event, Io, Timer};
use super::Media;
use crate::codec::Codec;
use crate::media::{g711, g722};
use crate::sdp::Negotiated;

/// Comfort noise (RFC 3389): a caller may send it instead of its codec while silent.
const COMFORT_NOISE_PT: u8 = 13;

/// One stream's view of what arrives.
#[derive(Debug, Default)]
pub(super) struct Inbound {
    /// Latch to RTP from this address (the caller's SIP source IP), once.
    latch_from: Option<IpAddr>,
    /// The SDP's RTP address and where we latched instead.
    latched: Option<(SocketAddr, SocketAddr)>,
    /// When the caller last sent us anything, since media was last negotiated.
    heard_at: Option<Instant>,
    /// The armed silence timer.
    silence_at: Option<Instant>,
    /// Report what the caller sends, decoded (`Server::set_tap`).
    tap: Option<Box<Tap>>,
}

/// A call's inbound audio being decoded for the runtime (recording, listening in).
#[derive(Debug, Default)]
struct Tap {
    /// G.722 is adaptive: one decoder follows the call's packets.
    g722: Option<g722::Decoder>,
    /// The RTP timestamp the next packet should carry: a later one means packets were lost
    /// (or the caller paused) and the gap is filled with silence; an earlier one is a late
    /// or repeated packet and is dropped.
    next_ts: Option<u32>,
}

/// The longest gap filled with silence (1 s at 8 kHz): a longer pause is not time to keep.
const MAX_GAP: u32 = 8000;

impl Inbound {
    /// The media a new offer or answer agreed, with the latched address kept while the SDP still
    /// names the address we latched away from (a refresh re-INVITE repeats the private one).
    pub fn keep_latched(&mut self, mut neg: Negotiated) -> Negotiated {
        if let Some((sdp, to)) = self.latched {
            if neg.remote_rtp == sdp {
                neg.remote_rtp = to;
                neg.remote_rtcp = rtcp_of(to, &neg);
            } else {
                self.latched = None;
            }
        }
        neg
    }

    /// Does RTP follow the caller's source instead of its SDP?
    pub fn is_latched(&self) -> bool {
        self.latched.is_some()
    }

    /// Media was negotiated again (a re-INVITE or UPDATE, maybe a hold): the silence watch
    /// starts over from the caller's next packet.
    pub fn renegotiated(&mut self) {
        self.heard_at = None;
    }
}

/// Where RTCP goes for RTP at `rtp`: the same port when muxed, else the one above.
fn rtcp_of(rtp: SocketAddr, neg: &Negotiated) -> SocketAddr {
    if neg.rtcp_mux {
        rtp
    } else {
        SocketAddr::new(rtp.ip(), rtp.port().wrapping_add(1))
    }
}

impl Tap {
    /// The audio of one RTP packet of the call's codec (payload type `pt`), with silence
    /// before it for a gap; `None` for anything else (DTMF events, comfort noise, a late
    /// packet).
    #[cold]
    fn decode(&mut self, call: CallHandle, packet: &[u8], pt: u8, codec: Codec) -> Option<Event> {
        let (got_pt, ts, payload) = crate::rtp::payload(packet)?;
        if got_pt != pt || payload.is_empty() {
            return None;
        }
        let rate = codec.sample_rate();
        let per_unit = rate / Codec::RTP_CLOCK;
        let gap = match self.next_ts {
            Some(next) => {
                let ahead = ts.wrapping_sub(next);
                if ahead > u32::MAX / 2 {
                    return None; // earlier than expected: late or repeated
                }
                ahead.min(MAX_GAP)
            }
            None => 0,
        };
        // One octet per timestamp unit for all three (G.722: 64 kbit/s on the 8 kHz clock).
        self.next_ts = Some(ts.wrapping_add(payload.len() as u32));
        let mut pcm = vec![0i16; (gap * per_unit) as usize];
        match codec {
            Codec::Pcmu => pcm.extend(payload.iter().map(|&b| g711::ulaw_to_linear(b))),
            Codec::Pcma => pcm.extend(payload.iter().map(|&b| g711::alaw_to_linear(b))),
            Codec::G722 => self
                .g722
                .get_or_insert_with(g722::Decoder::new)
                .decode(payload, &mut pcm),
        }
        Some(Event::Heard { call, rate, pcm })
    }
}

/// RTCP by RFC 5761's rule: packet types 192–223 in the second byte.
fn is_rtcp(packet: &[u8]) -> bool {
    packet.get(1).is_some_and(|b| (192..=223).contains(b))
}

impl Media {
    /// Decode what the caller of `call` sends and report it as `Event::Heard` (`on`), or stop.
    /// False if the call has no media (yet, or any more).
    pub fn set_tap(&mut self, call: CallHandle, on: bool) -> bool {
        let Some(s) = self.streams.get_mut(call) else {
            return false;
        };
        match (on, s.inbound.tap.is_some()) {
            (true, false) => s.inbound.tap = Some(Box::default()),
            (false, true) => s.inbound.tap = None,
            _ => {}
        }
        true
    }

    /// Latch the stream of `call` to RTP from `from` (the caller's SIP source), or not (`None`).
    pub fn latch_from(&mut self, call: CallHandle, from: Option<IpAddr>) {
        if let Some(s) = self.streams.get_mut(call) {
            s.inbound.latch_from = from.filter(|_| s.inbound.latched.is_none());
        }
    }

    /// `packet` (RTP or RTCP) from `from` reached the ports of `call`. Its host is there (an
    /// ICMP error count against it starts over); the silence timer is armed by the first
    /// packet; and an RTP packet of the call's media from the latching address but another
    /// port or address than the SDP's moves the stream there, once (`Event::Latched`).
    pub fn heard(
        &mut self,
        io: &mut Io<'_>,
        call: CallHandle,
        from: SocketAddr,
        packet: &[u8],
        silence: Option<Duration>,
    ) {
        let Some(s) = self.streams.get_mut(call) else {
            return;
        };
        if s.neg.remote_rtp.ip() == from.ip() {
            s.unreachable = None;
        }
        let first = s.inbound.heard_at.is_none();
        s.inbound.heard_at = Some(io.now);
        if let (true, Some(wait), None) = (first, silence, s.inbound.silence_at) {
            s.inbound.silence_at = Some(io.now + wait);
            io.timers.push_after(io.now, wait, Timer::Silence(call));
        }
        let media_pt = |pt: u8| {
            pt == s.neg.payload_type || Some(pt) == s.neg.dtmf_pt || pt == COMFORT_NOISE_PT
        };
        let latch = s.inbound.latch_from == Some(from.ip())
            && from != s.neg.remote_rtp
            && !is_rtcp(packet)
            && packet.get(1).is_some_and(|b| media_pt(b & 0x7f));
        if latch {
            let sdp = s.neg.remote_rtp;
            s.inbound.latched = Some((sdp, from));
            s.inbound.latch_from = None;
            let was = s.neg;
            s.neg.remote_rtp = from;
            s.neg.remote_rtcp = rtcp_of(from, &s.neg);
            super::reindex(&mut self.by_remote, call, Some(&was), Some(&s.neg));
            s.unreachable = None;
            // For the receiver this is where its stream begins (what went to the SDP's
            // address never reached it): the next packet carries the marker bit.
            s.playout.marker = true;
            io.out.event(Event::Latched {
                call,
                sdp_rtp: sdp,
                remote_rtp: from,
            });
        }
        if let Some(tap) = s.inbound.tap.as_deref_mut() {
            if !is_rtcp(packet) {
                let (pt, codec) = (s.neg.payload_type, s.neg.codec);
                if let Some(ev) = tap.decode(call, packet, pt, codec) {
                    io.out.event(ev);
                }
            }
        }
    }

    /// The silence timer of `call`: true when the caller, which had been sending, has sent
    /// nothing for `silence` while we stream to it (a caller on hold sends nothing by design,
    /// and one that renegotiated is watched again from its next packet).
    pub fn on_silence_timer(
        &mut self,
        io: &mut Io<'_>,
        at: Instant,
        call: CallHandle,
        silence: Option<Duration>,
    ) -> bool {
        let Some(s) = self.streams.get_mut(call) else {
            return false;
        };
        if s.inbound.silence_at != Some(at) {
            return false;
        }
        s.inbound.silence_at = None;
        let (Some(wait), Some(heard)) = (silence, s.inbound.heard_at) else {
            return false; // watched again from the next packet
        };
        if !s.neg.sends() {
            // On hold: watched again from the caller's next packet.
            s.inbound.heard_at = None;
            return false;
        }
        let quiet_until = heard + wait;
        if quiet_until <= io.now {
            return true;
        }
        s.inbound.silence_at = Some(quiet_until);
        io.timers.push(quiet_until, Timer::Silence(call));
        false
    }
}
