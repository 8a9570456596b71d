//! What the caller sends to our RTP and RTCP ports. We only send media, but what arrives says
//! three things: where the caller really is (symmetric RTP: behind a NAT, its packets come from
//! the NAT's address, not the private one in its SDP), that its host is alive (no ICMP error
//! stands against a host that sends to us), and, when it stops, that it may be gone.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::super::{CallHandle, Event, Io, Timer};
use super::Media;
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
}

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

/// RTCP by RFC 5761's rule: packet types 192–223 in the second byte.
fn is_rtcp(packet: &[u8]) -> bool {
    packet.get(1).is_some_and(|b| (192..=223).contains(b))
}

impl Media {
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
            s.neg.remote_rtp = from;
            s.neg.remote_rtcp = rtcp_of(from, &s.neg);
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
