//! Where a call's RTP may go. A Music On Hold server sends 50 packets a second, for as long as
//! the call lasts, to whatever address an SDP names: without rules, anyone who can send an
//! INVITE can aim a stream at a victim. The stream goes only to a unicast address, and to a
//! loopback or link-local one only when the SIP request came from that scope too.

use std::net::{IpAddr, SocketAddr};

use super::MediaTo;
use crate::sdp::Negotiated;

/// Why an SDP's media address is refused (the text of a 488's Warning, RFC 3261 §20.43 code 301).
pub(crate) fn media_address_refusal(media: IpAddr, sip_source: IpAddr) -> Option<&'static str> {
    let media = canonical(media);
    let source = canonical(sip_source);
    // 0.0.0.0 and :: are RFC 2543 hold: nothing is sent there.
    if media.is_unspecified() {
        return None;
    }
    if media.is_multicast() {
        return Some("media address is multicast");
    }
    match media {
        IpAddr::V4(v4) => {
            if v4.is_broadcast() {
                return Some("media address is broadcast");
            }
            // 0/8 ("this network") and 240/4 (reserved) reach no host.
            if v4.octets()[0] == 0 || v4.octets()[0] >= 240 {
                return Some("media address is reserved");
            }
        }
        IpAddr::V6(_) => {}
    }
    if media.is_loopback() && !source.is_loopback() {
        return Some("media address is loopback but the call is not");
    }
    if is_link_local(media) && !(is_link_local(source) || source.is_loopback()) {
        return Some("media address is link-local but the call is not");
    }
    None
}

/// Apply `media_to`: with `SipSource`, the stream goes to the SIP source's IP at the SDP's
/// ports (a held stream, `c=0.0.0.0`, stays where it is: nothing is sent).
pub(crate) fn aim(neg: &mut Negotiated, media_to: MediaTo, sip_source: IpAddr) {
    if media_to == MediaTo::SipSource && !neg.remote_rtp.ip().is_unspecified() {
        neg.remote_rtp = SocketAddr::new(sip_source, neg.remote_rtp.port());
        neg.remote_rtcp = SocketAddr::new(sip_source, neg.remote_rtcp.port());
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack socket reports) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(media: &str, source: &str) -> Option<&'static str> {
        media_address_refusal(media.parse().unwrap(), source.parse().unwrap())
    }

    #[test]
    fn unicast_goes_anywhere_and_scoped_addresses_only_within_their_scope() {
        for ok in ["192.0.2.7", "10.1.2.3", "2001:db8::1", "0.0.0.0", "::"] {
            assert_eq!(refusal(ok, "198.51.100.1"), None, "{ok}");
        }
        let far = "198.51.100.1";
        assert!(refusal("255.255.255.255", far)
            .unwrap()
            .contains("broadcast"));
        assert!(refusal("224.0.0.1", far).unwrap().contains("multicast"));
        assert!(refusal("ff02::1", far).unwrap().contains("multicast"));
        assert!(refusal("0.1.2.3", far).unwrap().contains("reserved"));
        assert!(refusal("250.1.2.3", far).unwrap().contains("reserved"));
        for scoped in ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"] {
            assert!(
                refusal(scoped, far).unwrap().contains("loopback"),
                "{scoped}"
            );
            assert_eq!(refusal(scoped, "127.0.0.1"), None, "{scoped}");
            assert_eq!(refusal(scoped, "::1"), None, "{scoped}");
        }
        for scoped in ["169.254.1.1", "fe80::1"] {
            assert!(
                refusal(scoped, far).unwrap().contains("link-local"),
                "{scoped}"
            );
            assert_eq!(refusal(scoped, "169.254.9.9"), None);
            assert_eq!(refusal(scoped, "fe80::2"), None);
            assert_eq!(refusal(scoped, "127.0.0.1"), None);
        }
        assert_eq!(
            refusal("192.0.2.7", "::ffff:198.51.100.1"),
            None,
            "a dual-stack socket's mapped source"
        );
    }

    #[test]
    fn sip_source_mode_keeps_the_ports_and_a_held_stream() {
        use crate::{sdp::Direction, Codec};
        let mut neg = Negotiated {
            codec: Codec::Pcmu,
            payload_type: 0,
            dtmf_pt: None,
            ptime_ms: 20,
            remote_rtp: "192.0.2.7:4000".parse().unwrap(),
            remote_rtcp: "192.0.2.7:4001".parse().unwrap(),
            rtcp_mux: false,
            direction: Direction::SendOnly,
            media_index: 0,
            media_count: 1,
        };
        let source: IpAddr = "198.51.100.1".parse().unwrap();
        let mut sdp_mode = neg;
        aim(&mut sdp_mode, MediaTo::Sdp, source);
        assert_eq!(sdp_mode, neg);
        aim(&mut neg, MediaTo::SipSource, source);
        assert_eq!(neg.remote_rtp, "198.51.100.1:4000".parse().unwrap());
        assert_eq!(neg.remote_rtcp, "198.51.100.1:4001".parse().unwrap());
        let mut held = neg;
        held.remote_rtp = "0.0.0.0:4000".parse().unwrap();
        let before = held;
        aim(&mut held, MediaTo::SipSource, source);
        assert_eq!(held, before);
    }
}
