//! Loopback ports chosen at run time.
//!
//! SIP and SIPp ports come from the kernel (bind port 0, read it, release it). RTP ranges are
//! taken below the kernel's ephemeral range (32768+ on Linux), so an ephemeral port handed to
//! some other socket cannot land inside a server's RTP range; each range starts at a
//! per-process random offset and successive servers in one process get disjoint ranges.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A UDP port on 127.0.0.1 that was free a moment ago.
pub fn free_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    s.local_addr().expect("local_addr").port()
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_tcp_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

const RTP_LOW: u32 = 12_000;
const RTP_HIGH: u32 = 32_000;
/// Ports per server: 150 RTP/RTCP pairs, room for the 50-call test and then some.
pub const RTP_RANGE_LEN: u16 = 300;

/// An inclusive, even-based range of `RTP_RANGE_LEN` ports whose first pair can be bound now.
pub fn rtp_range() -> (u16, u16) {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let slots = (RTP_HIGH - RTP_LOW) / u32::from(RTP_RANGE_LEN);
    let seed = std::process::id()
        ^ SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
    for _ in 0..slots {
        let slot =
            (seed.wrapping_mul(2_654_435_761) + NEXT.fetch_add(1, Ordering::Relaxed)) % slots;
        let low = (RTP_LOW + slot * u32::from(RTP_RANGE_LEN)) as u16;
        let high = low + RTP_RANGE_LEN - 1;
        if pair_free(low) && pair_free(low + RTP_RANGE_LEN / 2) {
            return (low, high);
        }
    }
    panic!("no free RTP port range between {RTP_LOW} and {RTP_HIGH}");
}

fn pair_free(port: u16) -> bool {
    let a: SocketAddr = ([127, 0, 0, 1], port).into();
    let b: SocketAddr = ([127, 0, 0, 1], port + 1).into();
    UdpSocket::bind(a).is_ok() && UdpSocket::bind(b).is_ok()
}
