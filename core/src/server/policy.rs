//! Who may talk to us, and where a call's RTP may go.
//!
//! SIP is taken from the networks in `allow` only (by default the private ones: a MOH server
//! serves a PBX on its own network, and the internet scans every SIP port).
//!
//! A Music On Hold server sends 50 packets a second, for as long as the call lasts, to whatever
//! address an SDP names: without rules, anyone who can send an INVITE can aim a stream at a
//! victim. The stream goes only to a unicast address, and to a loopback or link-local one only
//! when the SIP request came from that scope too.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::sdp::Negotiated;

/// Which sources a dialog takes requests from, besides matching its Call-ID and both tags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InDialogFrom {
    /// The dialog's peer: the IP its INVITE came from, our next hop, or a proxy named by IP in
    /// its route set.
    #[default]
    Peer,
    /// Any address (deployments where re-INVITEs or BYEs arrive by another path). A request
    /// from elsewhere still may not move the media to a new address.
    Any,
}

/// What SIP from outside `allow` gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DenyAction {
    /// Nothing: a scanner learns nothing, and nothing is reflected to a spoofed source.
    #[default]
    Drop,
    /// 403 Forbidden to each request (never to an ACK or a response).
    Forbidden,
}

/// Where a call's RTP is sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MediaTo {
    /// The address in the SDP, unicast only, loopback or link-local only for a caller in that scope.
    #[default]
    Sdp,
    /// The IP the SIP request came from, with the SDP's port: the stream can reach no one but
    /// the caller's SIP host.
    SipSource,
}

/// An IP network, `address/prefix` (CIDR), held as the masked address and its mask over 128
/// bits (IPv4 in the low 32), so a match is one AND and one compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Network {
    bits: u128,
    mask: u128,
    v4: bool,
    prefix: u8,
}

impl Network {
    /// `192.168.0.0/16`, `fc00::/7`, or a bare address (a /32 or /128). The address is masked
    /// to its prefix. `None` for anything else.
    pub fn parse(text: &str) -> Option<Network> {
        let (ip, prefix) = match text.trim().split_once('/') {
            Some((ip, p)) => (ip.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (text.trim().parse::<IpAddr>().ok()?, None),
        };
        let (bits, v4) = as_bits(ip);
        let width: u8 = if v4 { 32 } else { 128 };
        let prefix = prefix.unwrap_or(width);
        if prefix > width {
            return None;
        }
        // The top `prefix` bits of the address's own width.
        let ones = u128::MAX.checked_shl(128 - prefix as u32).unwrap_or(0);
        let mask = if v4 { ones >> 96 } else { ones };
        Some(Network {
            bits: bits & mask,
            mask,
            v4,
            prefix,
        })
    }

    /// Does the network hold `ip`? An IPv4-mapped IPv6 address counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (bits, v4) = as_bits(ip);
        self.holds(bits, v4)
    }

    fn holds(&self, bits: u128, v4: bool) -> bool {
        v4 == self.v4 && bits & self.mask == self.bits
    }

    /// Every address of its family (`0.0.0.0/0`, `::/0`).
    pub fn is_everything(&self) -> bool {
        self.prefix == 0
    }

    /// The default `allow`: loopback, RFC 1918, CGNAT (RFC 6598), link-local, IPv6 ULA.
    pub fn private() -> Vec<Network> {
        [
            "127.0.0.0/8",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "100.64.0.0/10",
            "169.254.0.0/16",
            "::1/128",
            "fc00::/7",
            "fe80::/10",
        ]
        .iter()
        .filter_map(|n| Network::parse(n))
        .collect()
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ip = if self.v4 {
            IpAddr::V4(Ipv4Addr::from(self.bits as u32))
        } else {
            IpAddr::V6(Ipv6Addr::from(self.bits))
        };
        write!(f, "{ip}/{}", self.prefix)
    }
}

/// Symmetric RTP (latching): whether a call's stream follows where the caller's RTP comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Latching {
    /// When the caller looks NATed: its SDP names a private address and its SIP comes from a
    /// public one, or its top Via names another address than the one it came from.
    Auto,
    Off,
    /// For every call.
    Always,
}

/// The address a call's stream may latch to RTP from (the SIP source's IP), or `None`.
pub(crate) fn latch_from(
    latching: Latching,
    sdp_rtp: IpAddr,
    sip_source: IpAddr,
    via_natted: bool,
) -> Option<IpAddr> {
    let private = |ip: IpAddr| PRIVATE.iter().any(|n| n.contains(ip));
    let latch = match latching {
        Latching::Off => false,
        Latching::Always => true,
        Latching::Auto => via_natted || (private(sdp_rtp) && !private(sip_source)),
    };
    latch.then_some(sip_source)
}

/// The private networks (as [`Network::private`]), for the latching rule.
static PRIVATE: std::sync::LazyLock<Vec<Network>> = std::sync::LazyLock::new(Network::private);

/// The address as 128 bits (IPv4, and IPv4-mapped IPv6, in the low 32) and whether it is IPv4.
fn as_bits(ip: IpAddr) -> (u128, bool) {
    match canonical(ip) {
        IpAddr::V4(v4) => (u32::from(v4) as u128, true),
        IpAddr::V6(v6) => (u128::from(v6), false),
    }
}

/// Is `ip` in one of `allow`?
pub(crate) fn allowed(allow: &[Network], ip: IpAddr) -> bool {
    let (bits, v4) = as_bits(ip);
    allow.iter().any(|n| n.holds(bits, v4))
}

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
/// ports (a held stream, `c=0.0.0.0`, stays where it is: nothing is sent). RTCP goes only to
/// the RTP host, whichever: an `a=rtcp` naming another address (RFC 3605) keeps its port, not
/// its address, which the media rules never judged.
pub(crate) fn aim(neg: &mut Negotiated, media_to: MediaTo, sip_source: IpAddr) {
    if media_to == MediaTo::SipSource && !neg.remote_rtp.ip().is_unspecified() {
        neg.remote_rtp = SocketAddr::new(sip_source, neg.remote_rtp.port());
    }
    neg.remote_rtcp = SocketAddr::new(neg.remote_rtp.ip(), neg.remote_rtcp.port());
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
    fn networks_parse_mask_and_match() {
        let n = Network::parse("192.168.1.77/16").unwrap();
        assert_eq!(n.to_string(), "192.168.0.0/16");
        assert!(n.contains("192.168.200.1".parse().unwrap()));
        assert!(n.contains("::ffff:192.168.3.4".parse().unwrap()));
        assert!(!n.contains("192.169.0.1".parse().unwrap()));
        assert!(!n.contains("::1".parse().unwrap()));
        let host = Network::parse("2001:db8::5").unwrap();
        assert_eq!(host.to_string(), "2001:db8::5/128");
        assert!(host.contains("2001:db8::5".parse().unwrap()));
        assert!(!host.contains("2001:db8::6".parse().unwrap()));
        let all = Network::parse("0.0.0.0/0").unwrap();
        assert!(all.is_everything() && all.contains("203.0.113.1".parse().unwrap()));
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "host/8",
            "10.0.0.0/x",
        ] {
            assert_eq!(Network::parse(bad), None, "{bad}");
        }
        let private = Network::private();
        for ip in [
            "127.0.0.1",
            "10.1.1.1",
            "172.31.0.1",
            "192.168.0.1",
            "100.127.0.1",
            "fd00::1",
            "fe80::1",
            "::1",
        ] {
            assert!(allowed(&private, ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "203.0.113.1",
            "172.32.0.1",
            "100.128.0.1",
            "2001:db8::1",
            "8.8.8.8",
        ] {
            assert!(!allowed(&private, ip.parse().unwrap()), "{ip}");
        }
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

    /// PCMU at 20 ms, streamed to `rtp`, reports to `rtcp`.
    fn negotiated(rtp: &str, rtcp: &str) -> Negotiated {
        use crate::{sdp::Direction, Codec};
        Negotiated {
            codec: Codec::Pcmu,
            payload_type: 0,
            dtmf_pt: None,
            ptime_ms: 20,
            remote_rtp: rtp.parse().unwrap(),
            remote_rtcp: rtcp.parse().unwrap(),
            rtcp_mux: false,
            direction: Direction::SendOnly,
            media_index: 0,
            media_count: 1,
        }
    }

    #[test]
    fn sip_source_mode_keeps_the_ports_and_a_held_stream() {
        let mut neg = negotiated("192.0.2.7:4000", "192.0.2.7:4001");
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
        assert_eq!(
            held.remote_rtp, before.remote_rtp,
            "a held stream stays held"
        );
        assert_eq!(
            held.remote_rtcp,
            "0.0.0.0:4001".parse().unwrap(),
            "and so does its RTCP"
        );
    }

    #[test]
    fn rtcp_goes_only_to_the_rtp_host() {
        let mut neg = negotiated("192.0.2.7:4000", "255.255.255.255:7000");
        aim(&mut neg, MediaTo::Sdp, "192.0.2.7".parse().unwrap());
        assert_eq!(neg.remote_rtcp, "192.0.2.7:7000".parse().unwrap());
    }
}
