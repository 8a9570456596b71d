//! Captures in and out: pcap and pcapng with Ethernet (+VLAN, +PPPoE), Linux cooked (SLL and
//! SLL2) and raw IP link types; IPv4/IPv6 UDP; IPv4 fragments reassembled, IPv6 fragments
//! rejected. Output is classic pcap, Ethernet/IPv4|IPv6/UDP with valid checksums.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use pcap_parser::{create_reader, Block, PcapBlockOwned, PcapError};

/// One UDP datagram from a capture, time relative to the first packet of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    pub at: Duration,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub payload: Vec<u8>,
}

#[derive(Debug)]
pub struct CaptureError(pub String);

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CaptureError {}

fn err<T>(msg: impl Into<String>) -> Result<T, CaptureError> {
    Err(CaptureError(msg.into()))
}

const LINKTYPE_ETHERNET: i32 = 1;
const LINKTYPE_RAW: i32 = 101;
const LINKTYPE_LINUX_SLL: i32 = 113;
const LINKTYPE_IPV4: i32 = 228;
const LINKTYPE_IPV6: i32 = 229;
const LINKTYPE_LINUX_SLL2: i32 = 276;
/// BSD loopback: 4-byte host-order address family, then IP.
const LINKTYPE_NULL: i32 = 0;

pub fn read_file(path: &Path) -> Result<Vec<Datagram>, CaptureError> {
    let data = std::fs::read(path).map_err(|e| CaptureError(format!("{}: {e}", path.display())))?;
    read_bytes(&data).map_err(|e| CaptureError(format!("{}: {e}", path.display())))
}

/// Every UDP datagram of a pcap or pcapng file, in file order.
pub fn read_bytes(data: &[u8]) -> Result<Vec<Datagram>, CaptureError> {
    let mut reader = create_reader(data.len().max(65536) + 1, data)
        .map_err(|e| CaptureError(format!("not a pcap or pcapng file: {e}")))?;
    let mut legacy: Option<(i32, u64)> = None; // linktype, units per second
    let mut ifaces: Vec<(i32, u64, i64)> = Vec::new(); // linktype, resolution, offset (s)
    let mut frames: Vec<(u128, i32, Vec<u8>)> = Vec::new(); // ns since epoch, linktype, frame
    loop {
        match reader.next() {
            Ok((offset, block)) => {
                match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        legacy = Some((
                            h.network.0,
                            if h.is_nanosecond_precision() {
                                1_000_000_000
                            } else {
                                1_000_000
                            },
                        ));
                    }
                    PcapBlockOwned::Legacy(b) => {
                        let (lt, res) = legacy.unwrap_or((LINKTYPE_ETHERNET, 1_000_000));
                        let ns = b.ts_sec as u128 * 1_000_000_000
                            + b.ts_usec as u128 * 1_000_000_000 / res as u128;
                        frames.push((ns, lt, b.data.to_vec()));
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => ifaces.clear(),
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        ifaces.push((
                            idb.linktype.0,
                            idb.ts_resolution().unwrap_or(1_000_000),
                            idb.ts_offset(),
                        ));
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        let Some(&(lt, res, off)) = ifaces.get(epb.if_id as usize) else {
                            return err(format!("packet on undeclared interface {}", epb.if_id));
                        };
                        let raw = ((epb.ts_high as u64) << 32) | epb.ts_low as u64;
                        let ns = raw as u128 * 1_000_000_000 / res as u128
                            + (off.max(0) as u128) * 1_000_000_000;
                        let len = (epb.caplen as usize).min(epb.data.len());
                        frames.push((ns, lt, epb.data[..len].to_vec()));
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        let lt = ifaces.first().map(|i| i.0).unwrap_or(LINKTYPE_ETHERNET);
                        let ns = frames.last().map(|f| f.0).unwrap_or(0);
                        let len = (spb.origlen as usize).min(spb.data.len());
                        frames.push((ns, lt, spb.data[..len].to_vec()));
                    }
                    PcapBlockOwned::NG(_) => {}
                }
                reader.consume(offset);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => {
                if reader.refill().is_err() {
                    return err("truncated capture");
                }
                if reader.data().is_empty() {
                    break;
                }
            }
            Err(e) => return err(format!("bad capture block: {e}")),
        }
    }
    let first = frames.first().map(|f| f.0).unwrap_or(0);
    let mut frags = Fragments::default();
    let mut out = Vec::new();
    for (ns, lt, frame) in frames {
        let at = Duration::from_nanos(ns.saturating_sub(first) as u64);
        let Some(ip) = link_payload(lt, &frame)? else {
            continue;
        };
        if let Some((src, dst, payload)) = udp_of_ip(ip, &mut frags)? {
            out.push(Datagram {
                at,
                src,
                dst,
                payload,
            });
        }
    }
    Ok(out)
}

/// Strip the link layer; `None` for frames that carry no IP (ARP, LCP, …).
fn link_payload(linktype: i32, frame: &[u8]) -> Result<Option<&[u8]>, CaptureError> {
    let (ethertype, rest) = match linktype {
        LINKTYPE_ETHERNET => {
            if frame.len() < 14 {
                return Ok(None);
            }
            (u16::from_be_bytes([frame[12], frame[13]]), &frame[14..])
        }
        LINKTYPE_LINUX_SLL => {
            if frame.len() < 16 {
                return Ok(None);
            }
            (u16::from_be_bytes([frame[14], frame[15]]), &frame[16..])
        }
        LINKTYPE_LINUX_SLL2 => {
            if frame.len() < 20 {
                return Ok(None);
            }
            (u16::from_be_bytes([frame[0], frame[1]]), &frame[20..])
        }
        LINKTYPE_RAW | LINKTYPE_IPV4 | LINKTYPE_IPV6 => return Ok(Some(frame)),
        LINKTYPE_NULL => return Ok(frame.get(4..)),
        other => {
            return err(format!(
                "unsupported link type {other} (Ethernet, Linux cooked SLL/SLL2, raw IP are)"
            ))
        }
    };
    Ok(ether_payload(ethertype, rest))
}

/// Follow VLAN tags and PPPoE session framing down to IP.
fn ether_payload(mut ethertype: u16, mut rest: &[u8]) -> Option<&[u8]> {
    loop {
        match ethertype {
            0x0800 | 0x86DD => return Some(rest),
            // 802.1Q / 802.1ad: 2 bytes TCI, then the inner ethertype.
            0x8100 | 0x88A8 => {
                ethertype = u16::from_be_bytes([*rest.get(2)?, *rest.get(3)?]);
                rest = rest.get(4..)?;
            }
            // PPPoE session stage (RFC 2516): 6-byte header, then the PPP protocol field.
            0x8864 => {
                let proto = u16::from_be_bytes([*rest.get(6)?, *rest.get(7)?]);
                let len = u16::from_be_bytes([*rest.get(4)?, *rest.get(5)?]) as usize;
                let ppp = rest.get(8..6 + len.max(2)).or(rest.get(8..))?;
                return match proto {
                    0x0021 | 0x0057 => Some(ppp),
                    _ => None, // LCP, IPCP, …
                };
            }
            _ => return None,
        }
    }
}

/// IPv4 fragments awaiting their siblings, keyed by (src, dst, protocol, id) (RFC 791).
type FragmentKey = (IpAddr, IpAddr, u8, u16);
/// (offset in bytes, more fragments follow, data).
type FragmentPiece = (usize, bool, Vec<u8>);

#[derive(Default)]
struct Fragments {
    pending: BTreeMap<FragmentKey, Vec<FragmentPiece>>,
}

fn udp_of_ip(
    ip: &[u8],
    frags: &mut Fragments,
) -> Result<Option<(SocketAddr, SocketAddr, Vec<u8>)>, CaptureError> {
    if ip.is_empty() {
        return Ok(None);
    }
    if ip[0] >> 4 == 4 {
        let Ok(h) = etherparse::Ipv4HeaderSlice::from_slice(ip) else {
            return Ok(None);
        };
        if h.more_fragments() || h.fragments_offset().value() != 0 {
            let src = IpAddr::V4(h.source_addr());
            let dst = IpAddr::V4(h.destination_addr());
            let key = (src, dst, h.protocol().0, h.identification());
            let end = (h.total_len() as usize).min(ip.len());
            let piece = ip[h.slice().len()..end].to_vec();
            let list = frags.pending.entry(key).or_default();
            list.push((
                h.fragments_offset().value() as usize * 8,
                h.more_fragments(),
                piece,
            ));
            list.sort_by_key(|p| p.0);
            // Complete when the pieces tile [0, end) and the last has MF clear.
            let mut next = 0;
            let mut done = false;
            for (off, more, data) in list.iter() {
                if *off > next {
                    break;
                }
                next = next.max(off + data.len());
                if !more {
                    done = true;
                }
            }
            if !done {
                return Ok(None);
            }
            let list = frags.pending.remove(&key).unwrap_or_default();
            let mut whole = vec![0u8; next];
            for (off, _, data) in list {
                whole[off..off + data.len()].copy_from_slice(&data);
            }
            if h.protocol() != etherparse::IpNumber::UDP {
                return Ok(None);
            }
            if whole.len() < 8 {
                return err("reassembled IPv4 datagram shorter than a UDP header");
            }
            let sp = u16::from_be_bytes([whole[0], whole[1]]);
            let dp = u16::from_be_bytes([whole[2], whole[3]]);
            let ulen = (u16::from_be_bytes([whole[4], whole[5]]) as usize).clamp(8, whole.len());
            return Ok(Some((
                SocketAddr::new(src, sp),
                SocketAddr::new(dst, dp),
                whole[8..ulen].to_vec(),
            )));
        }
    }
    let Ok(p) = SlicedPacket::from_ip(ip) else {
        return Ok(None);
    };
    let (src, dst) = match &p.net {
        Some(NetSlice::Ipv4(v4)) => (
            IpAddr::V4(v4.header().source_addr()),
            IpAddr::V4(v4.header().destination_addr()),
        ),
        Some(NetSlice::Ipv6(v6)) => {
            if v6.is_payload_fragmented() {
                return err(format!(
                    "IPv6 fragment from {} to {}: fragmented IPv6 is not reassembled",
                    v6.header().source_addr(),
                    v6.header().destination_addr()
                ));
            }
            (
                IpAddr::V6(v6.header().source_addr()),
                IpAddr::V6(v6.header().destination_addr()),
            )
        }
        None => return Ok(None),
    };
    match &p.transport {
        Some(TransportSlice::Udp(u)) => Ok(Some((
            SocketAddr::new(src, u.source_port()),
            SocketAddr::new(dst, u.destination_port()),
            u.payload().to_vec(),
        ))),
        _ => Ok(None),
    }
}

/// A classic pcap (microsecond) writer of Ethernet/IP/UDP frames.
pub struct PcapWriter {
    buf: Vec<u8>,
}

impl Default for PcapWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl PcapWriter {
    pub fn new() -> PcapWriter {
        let mut buf = Vec::new();
        buf.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        buf.extend_from_slice(&2u16.to_le_bytes());
        buf.extend_from_slice(&4u16.to_le_bytes());
        buf.extend_from_slice(&0i32.to_le_bytes());
        buf.extend_from_slice(&0u32.to_le_bytes());
        buf.extend_from_slice(&65535u32.to_le_bytes());
        buf.extend_from_slice(&(LINKTYPE_ETHERNET as u32).to_le_bytes());
        PcapWriter { buf }
    }

    /// Append one UDP datagram. Mixed address families are written as the source's family
    /// (an IPv4 peer of an IPv6 node is mapped); the timestamp is `at` after the Unix epoch
    /// plus a fixed base, so files are deterministic.
    pub fn push(&mut self, at: Duration, src: SocketAddr, dst: SocketAddr, payload: &[u8]) {
        const BASE: u64 = 1_700_000_000; // a fixed date: output must not depend on the clock
        let mac = |a: &SocketAddr| -> [u8; 6] {
            let o = match a.ip() {
                IpAddr::V4(v) => v.octets()[3],
                IpAddr::V6(v) => v.octets()[15],
            };
            [0x02, 0, 0, 0, 0, o]
        };
        let b = PacketBuilder::ethernet2(mac(&src), mac(&dst));
        let mut frame = Vec::with_capacity(payload.len() + 62);
        let ok = match (src.ip(), dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => b
                .ipv4(s.octets(), d.octets(), 64)
                .udp(src.port(), dst.port())
                .write(&mut frame, payload),
            (s, d) => {
                let v6 = |ip: IpAddr| match ip {
                    IpAddr::V4(v) => v.to_ipv6_mapped().octets(),
                    IpAddr::V6(v) => v.octets(),
                };
                b.ipv6(v6(s), v6(d), 64)
                    .udp(src.port(), dst.port())
                    .write(&mut frame, payload)
            }
        };
        if ok.is_err() {
            return; // a payload too large for one UDP datagram cannot come from the core
        }
        let secs = BASE + at.as_secs();
        self.buf.extend_from_slice(&(secs as u32).to_le_bytes());
        self.buf
            .extend_from_slice(&at.subsec_micros().to_le_bytes());
        self.buf
            .extend_from_slice(&(frame.len() as u32).to_le_bytes());
        self.buf
            .extend_from_slice(&(frame.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(&frame);
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_pcap_reads_back() {
        let mut w = PcapWriter::new();
        let a: SocketAddr = "192.168.1.50:5060".parse().unwrap();
        let b: SocketAddr = "[2001:db8::1]:5062".parse().unwrap();
        w.push(
            Duration::from_millis(0),
            a,
            "192.168.1.100:5060".parse().unwrap(),
            b"hello",
        );
        w.push(
            Duration::from_micros(1_500_020),
            b,
            "[2001:db8::2]:5060".parse().unwrap(),
            b"v6",
        );
        let back = read_bytes(&w.into_bytes()).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].payload, b"hello");
        assert_eq!(back[1].src, b);
        assert_eq!(back[1].at, Duration::from_micros(1_500_020));
    }

    fn ipv4_udp(id: u16, frag_off: u16, more: bool, payload: &[u8]) -> Vec<u8> {
        let mut h = etherparse::Ipv4Header::new(
            payload.len() as u16,
            64,
            etherparse::IpNumber::UDP,
            [10, 0, 0, 1],
            [10, 0, 0, 2],
        )
        .unwrap();
        h.identification = id;
        h.more_fragments = more;
        h.fragment_offset = etherparse::IpFragOffset::try_new(frag_off / 8).unwrap();
        h.header_checksum = h.calc_header_checksum();
        let mut v = h.to_bytes().to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn ipv4_fragments_are_reassembled() {
        let mut udp = vec![0x13, 0xc4, 0x13, 0xc4, 0, 8 + 20, 0, 0];
        udp.extend_from_slice(b"INVITE sip:x SIP/2.0");
        let mut frags = Fragments::default();
        let second = ipv4_udp(7, 16, false, &udp[16..]);
        let first = ipv4_udp(7, 0, true, &udp[..16]);
        assert!(udp_of_ip(&second, &mut frags).unwrap().is_none());
        let (src, dst, payload) = udp_of_ip(&first, &mut frags).unwrap().unwrap();
        assert_eq!(src, "10.0.0.1:5060".parse().unwrap());
        assert_eq!(dst.port(), 5060);
        assert_eq!(payload, b"INVITE sip:x SIP/2.0");
    }

    #[test]
    fn pppoe_and_sll2_reach_ip() {
        let ip = ipv4_udp(1, 0, false, &[0, 1, 0, 2, 0, 9, 0, 0, b'x']);
        let mut pppoe = vec![0x11, 0x00, 0x12, 0x34];
        pppoe.extend_from_slice(&((ip.len() + 2) as u16).to_be_bytes());
        pppoe.extend_from_slice(&[0x00, 0x21]);
        pppoe.extend_from_slice(&ip);
        assert_eq!(ether_payload(0x8864, &pppoe), Some(&ip[..]));
        let mut sll2 = vec![0x08, 0x00];
        sll2.extend_from_slice(&[0; 18]);
        sll2.extend_from_slice(&ip);
        assert_eq!(
            link_payload(LINKTYPE_LINUX_SLL2, &sll2).unwrap(),
            Some(&ip[..])
        );
    }

    /// A minimal little-endian pcapng: SHB, IDB (given link type, µs), one EPB per frame.
    fn pcapng(linktype: u16, frames: &[(u64, Vec<u8>)]) -> Vec<u8> {
        let block = |kind: u32, body: &[u8]| {
            let len = (12 + body.len().div_ceil(4) * 4) as u32;
            let mut b = kind.to_le_bytes().to_vec();
            b.extend_from_slice(&len.to_le_bytes());
            b.extend_from_slice(body);
            b.resize(len as usize - 4, 0);
            b.extend_from_slice(&len.to_le_bytes());
            b
        };
        let mut shb = 0x1A2B_3C4Du32.to_le_bytes().to_vec();
        shb.extend_from_slice(&1u16.to_le_bytes());
        shb.extend_from_slice(&0u16.to_le_bytes());
        shb.extend_from_slice(&(-1i64).to_le_bytes());
        let mut out = block(0x0A0D_0D0A, &shb);
        let mut idb = linktype.to_le_bytes().to_vec();
        idb.extend_from_slice(&[0, 0]);
        idb.extend_from_slice(&65535u32.to_le_bytes());
        out.extend(block(1, &idb));
        for (us, frame) in frames {
            let mut epb = 0u32.to_le_bytes().to_vec();
            epb.extend_from_slice(&((us >> 32) as u32).to_le_bytes());
            epb.extend_from_slice(&(*us as u32).to_le_bytes());
            epb.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            epb.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            epb.extend_from_slice(frame);
            out.extend(block(6, &epb));
        }
        out
    }

    #[test]
    fn pcapng_with_linux_cooked_and_raw_ip_reads() {
        let ip = ipv4_udp(
            1,
            0,
            false,
            &[0x13, 0xc4, 0x13, 0xc5, 0, 11, 0, 0, b'a', b'b', b'c'],
        );
        let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(&ip);
        let file = pcapng(
            LINKTYPE_LINUX_SLL as u16,
            &[(1_000_000, sll.clone()), (1_020_000, sll)],
        );
        let d = read_bytes(&file).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].payload, b"abc");
        assert_eq!(d[0].src, "10.0.0.1:5060".parse().unwrap());
        assert_eq!(d[0].dst, "10.0.0.2:5061".parse().unwrap());
        assert_eq!(d[1].at, Duration::from_millis(20));
        let raw = pcapng(LINKTYPE_RAW as u16, &[(5, ip)]);
        assert_eq!(read_bytes(&raw).unwrap()[0].payload, b"abc");
    }

    #[test]
    fn ipv6_fragments_are_rejected_by_name() {
        let mut v6 = vec![0x60, 0, 0, 0, 0, 16, 44, 64];
        v6.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        v6.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        // Fragment header: next UDP, offset 0, M=1, id 7; then 8 bytes of payload.
        v6.extend_from_slice(&[17, 0, 0, 1, 0, 0, 0, 7]);
        v6.extend_from_slice(&[0, 1, 0, 2, 0, 16, 0, 0]);
        let e = udp_of_ip(&v6, &mut Fragments::default()).unwrap_err();
        assert!(e.to_string().contains("IPv6 fragment"), "{e}");
    }

    #[test]
    fn not_a_capture_is_a_clear_error() {
        let e = read_bytes(b"this is not a capture file at all....").unwrap_err();
        assert!(e.to_string().contains("not a pcap or pcapng file"), "{e}");
    }
}
