//! A hostile sender on the same host cannot hurt the calls already up or grow the server
//! without bound: while 50 held calls stream for 10 s (judged by `onhold probe`: every packet,
//! on the 20 ms grid), a sender on another loopback address fires INVITEs it never ACKs, large
//! OPTIONS and garbage at ten times the configured limits. The server's RSS is read from /proc
//! before, during and after, and an OPTIONS is answered afterwards.

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use onhold_tests::caller::dp750_offer;
use onhold_tests::server::options;
use onhold_tests::{binary, both_runtimes, wait_for, Runtime, Server, ServerOptions};

both_runtimes!(held_calls_keep_their_music_through_a_flood_and_memory_stays_bounded);

const CALLS: u32 = 50;
/// The limits the server runs with; the flood offers ten times each. The burst lets the
/// probe's 50 calls in at once (they come from one address too).
const INVITE_RATE: u32 = 20;
const INVITE_BURST: u32 = 50;
const TRANSACTIONS_PER_SOURCE: u32 = 256;
const MEMORY_PER_SOURCE_MIB: u32 = 2;
/// How long the flood lasts, at most, and how many datagrams of each kind it may send.
const FLOOD_FOR: Duration = Duration::from_secs(10);
const MAX_EACH: u32 = 3_000;
/// The RSS the flood may add: the per-source transaction memory (2 MiB), what the sockets'
/// queues and the allocator keep, with room for both runtimes' allocation patterns (each adds
/// 2–3 MiB here).
const RSS_GROWTH_BOUND_KIB: u64 = 16 * 1024;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// Counts of what the flood sent.
#[derive(Debug, Default)]
struct Sent {
    invites: u32,
    options: u32,
    garbage: u32,
}

/// From 127.0.0.66 (its own source, so its per-source limits are its own): per 10 ms (at most;
/// fewer on a busy machine), two INVITEs (200/s, ten times `invite_rate`), three 30 KB OPTIONS
/// (about 3,000 in 10 s, over ten times the 256 transactions per source), two 60 KB datagrams
/// of garbage.
fn flood(server: SocketAddr, stop: &AtomicBool) -> Sent {
    let sock = UdpSocket::bind("127.0.0.66:0").expect("bind the flood's socket");
    let me = sock.local_addr().unwrap();
    let pad = "p".repeat(2_000);
    let subject = "s".repeat(26_000);
    let garbage: Vec<u8> = (0..60_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    let offer = dp750_offer(
        "127.0.0.66:4000".parse().unwrap(),
        "RTP/AVP",
        "0 8 101",
        20,
        "sendrecv",
    );
    let mut sent = Sent::default();
    let start = Instant::now();
    let mut n = 0u32;
    while start.elapsed() < FLOOD_FOR && !stop.load(Ordering::Relaxed) && n < MAX_EACH {
        for _ in 0..2 {
            let invite = format!(
                "INVITE sip:moh@{server} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKi{n}x{i}\r\n\
                 From: <sip:x@{me}>;tag=f{n}\r\nTo: <sip:moh@{server}>\r\nCall-ID: flood-{n}-{i}\r\n\
                 CSeq: 1 INVITE\r\nContact: <sip:x@{me}>\r\nMax-Forwards: 70\r\n\
                 Content-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{offer}",
                i = sent.invites,
                len = offer.len()
            );
            let _ = sock.send_to(invite.as_bytes(), server);
            sent.invites += 1;
        }
        for k in 0..3 {
            let options = format!(
                "OPTIONS sip:moh@{server} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKo{n}x{k}{pad}\r\n\
                 From: <sip:x@{me}>;tag=o{n}{pad}\r\nTo: <sip:moh@{server}>\r\nCall-ID: o-{n}-{k}\r\n\
                 CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nSubject: {subject}\r\nContent-Length: 0\r\n\r\n"
            );
            let _ = sock.send_to(options.as_bytes(), server);
            sent.options += 1;
        }
        for _ in 0..2 {
            let _ = sock.send_to(&garbage, server);
            sent.garbage += 1;
        }
        n += 1;
        thread::sleep(Duration::from_millis(10));
    }
    sent
}

fn held_calls_keep_their_music_through_a_flood_and_memory_stays_bounded(rt: Runtime) {
    let limit = |kv: String| ["--limit".to_string(), kv];
    let mut opts = ServerOptions::default();
    for kv in [
        format!("invite_rate={INVITE_RATE}"),
        format!("invite_burst={INVITE_BURST}"),
        format!("transactions_per_source={TRANSACTIONS_PER_SOURCE}"),
        format!("transaction_memory_per_source={MEMORY_PER_SOURCE_MIB}MiB"),
    ] {
        for a in limit(kv) {
            opts = opts.arg(a);
        }
    }
    let server = Server::start_with(rt, opts);
    let pid = server.pid();
    let before = rss_kib(pid);

    let out_path = std::env::temp_dir().join(format!(
        "onhold-e2e-flood-{}-{}.json",
        std::process::id(),
        rt.bin_name()
    ));
    let mut probe = Command::new(binary(Runtime::Smol))
        .args(["probe", &server.uri("moh")])
        .args(["--calls", &CALLS.to_string(), "--rate", "50"])
        .args(["--duration", "12s", "--json", "--timeout", "5s"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn onhold probe");
    // The calls are up after 1 s (50 at 50/s); the flood runs through the middle of them.
    thread::sleep(Duration::from_millis(1500));
    let stop = Arc::new(AtomicBool::new(false));
    let sip = server.sip;
    let sender = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || flood(sip, &stop))
    };
    let mut peak = before;
    while !sender.is_finished() {
        peak = peak.max(rss_kib(pid));
        thread::sleep(Duration::from_millis(100));
    }
    let sent = sender.join().expect("the flood thread");
    let status = wait_for(Duration::from_secs(60), || probe.try_wait().ok().flatten());
    let Some(status) = status else {
        let _ = probe.kill();
        let _ = probe.wait();
        panic!("onhold probe still running after 60 s");
    };
    let after = rss_kib(pid);
    println!(
        "{}: flood {sent:?}; RSS {before} KiB before, peak {peak} KiB, {after} KiB after",
        rt.bin_name()
    );

    let json = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    assert!(status.success(), "probe exited {status}:\n{json}");
    let report: serde_json::Value =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("probe JSON: {e}\n{json}"));
    let num = |key: &str| report[key].as_f64().unwrap_or(f64::NAN);
    assert_eq!(num("calls_ok"), f64::from(CALLS), "{json}");
    for zero in ["calls_failed", "packets_lost", "seq_errors", "ts_errors"] {
        assert_eq!(num(zero), 0.0, "{zero} in {json}");
    }
    // The probe's figure is |gap − ptime|; the tolerance of every end-to-end pacing check.
    let p99 = num("interarrival_p99_us");
    assert!(p99 <= 15_000.0, "inter-arrival p99 off by {p99} µs: {json}");
    assert!(sent.invites >= 1_000, "{sent:?}");
    assert!(
        peak.saturating_sub(before) <= RSS_GROWTH_BOUND_KIB,
        "RSS grew from {before} KiB to {peak} KiB"
    );
    let answer = options(server.sip, Duration::from_secs(2)).expect("OPTIONS answered");
    assert!(answer.starts_with("SIP/2.0 200"), "{answer}");
}
