//! A flood of large requests cannot grow the server's memory past its transaction caps: every
//! transaction keeps its last response for 64·T1 (to answer retransmissions), and responses
//! copy the request's Vias, From and To, so without a cap a flood of large OPTIONS holds about
//! 6 KB each for 32 s: at 3,000 a second, gigabytes. Live heap bytes are counted by this test binary's allocator (one test
//! in the file, so nothing else allocates meanwhile).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::*;
use onhold_core::media::Library;
use onhold_core::{Server, ServerConfig, Transport, MAX_DATAGRAM};

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

const MIB: isize = 1 << 20;

/// An OPTIONS of about 30 KB whose answer copies about 6 KB (a long Via branch and From), the
/// most a request may make us keep; the rest is a header we do not copy.
fn large_options(n: u32, pad: &str, subject: &str) -> Vec<u8> {
    format!(
        "OPTIONS sip:123@192.168.1.100 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK{n}{pad}\r\n\
         From: <sip:flood@10.0.0.1>;tag={n}{pad}\r\n\
         To: <sip:123@192.168.1.100>\r\n\
         Call-ID: flood-{n}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Max-Forwards: 70\r\n\
         Subject: {subject}\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

#[test]
fn a_flood_of_large_requests_holds_no_more_than_the_transaction_caps() {
    #[allow(clippy::disallowed_methods)] // any instant will do as the test's origin
    let t0 = std::time::Instant::now();
    let config = ServerConfig::default();
    let limits = config.limits.clone();
    let mut server = Server::new(
        config,
        Arc::new(Library::silence()),
        7,
        t0,
        SystemTime::UNIX_EPOCH,
    );
    let local: SocketAddr = SERVER.parse().unwrap();
    let mut buf = vec![0; MAX_DATAGRAM];
    let mut drain = |server: &mut Server, now| {
        let mut sent = Vec::new();
        while let Some(c) = server.poll_command() {
            if let onhold_core::Command::BindRtp { port, .. } = c {
                server.rtp_bind_result(now, port, true);
            }
        }
        while let Some(t) = server.poll_transmit(now, &mut buf) {
            sent.push(buf[..t.len].to_vec());
        }
        while server.poll_event().is_some() {}
        sent
    };
    let base = live();
    let mut peak = 0;
    let (pad, subject) = ("x".repeat(2_900), "s".repeat(24_000));
    // 8,000 in 2.7 s: more than the 32 MiB cap holds.
    for n in 0..8_000u32 {
        let now = t0 + Duration::from_micros(333 * n as u64);
        server.handle_timeout(now);
        // Spoofed sources across 10/8, a hundred datagrams each (under the per-source caps).
        let ip = [10, 1, (n / 100 / 256) as u8, (n / 100 % 256) as u8];
        let from = SocketAddr::from((ip, 5060));
        server.handle_datagram(
            now,
            Transport::Udp,
            local,
            from,
            &large_options(n, &pad, &subject),
        );
        drain(&mut server, now);
        peak = peak.max(live() - base);
    }
    let occupancy = server.occupancy();
    let stats = server.stats().clone();
    println!(
        "peak {:.1} MiB over the start, {} transactions keeping {:.1} MiB, {} refused",
        peak as f64 / MIB as f64,
        occupancy.server_transactions,
        occupancy.transaction_bytes as f64 / MIB as f64,
        stats.refused_transactions
    );
    assert!(
        occupancy.transaction_bytes <= limits.transaction_bytes + MAX_DATAGRAM * 2,
        "{occupancy:?}"
    );
    assert!(stats.refused_transactions > 0, "the caps were reached");
    // The cap (32 MiB) and the tables that index what it holds.
    assert!(peak < 40 * MIB, "peak {peak} bytes");

    // Afterwards the memory comes back and a caller is answered.
    let later = t0 + Duration::from_secs(45);
    server.handle_timeout(later);
    drain(&mut server, later);
    assert_eq!(server.occupancy().server_transactions, 0);
    assert_eq!(server.occupancy().transaction_bytes, 0);
    assert!(live() - base < MIB, "{} bytes still held", live() - base);
    let options = Dp750::new(1).request("OPTIONS", None, &[]);
    server.handle_datagram(
        later,
        Transport::Udp,
        local,
        PHONE.parse().unwrap(),
        options.as_bytes(),
    );
    let sent = drain(&mut server, later);
    assert!(sent.iter().any(|s| s.starts_with(b"SIP/2.0 200")));
}
