//! Judging one call's media against the SIP exchange that framed it.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use onhold_tests::rtp::{check_stream, StreamReport};
use onhold_tests::{ports, RtpPacket, Runtime, Server, ServerOptions, SippRun};

/// `rt` listening on TCP too, with `opts`, logging at debug (which shows its connections); its
/// TCP address.
pub fn with_tcp(rt: Runtime, opts: ServerOptions) -> (Server, SocketAddr) {
    let tcp: SocketAddr = ([127, 0, 0, 1], ports::free_tcp_port()).into();
    let opts = opts.arg("--listen").arg(format!("tcp:{tcp}"));
    (Server::start_with(rt, opts.log_level("debug")), tcp)
}

/// The share of inter-arrival gaps a call's stream must have within ±15 ms of its ptime. A
/// pacing fault (bursts, a wrong ptime) puts most gaps outside; what remains is the receiving
/// test thread's own scheduling on a shared 2-core machine that runs a proxy, SIPp and both
/// servers at once, which moves a few. Pacing itself is judged by the simulator and the
/// benches, on virtual time or side by side.
pub const ON_TIME: f64 = 0.90;

/// PCMU at 20 ms: 160 samples and 160 bytes per packet.
pub const SAMPLES: u32 = 160;
pub const PAYLOAD: usize = 160;

/// After the BYE (or hold) is sent, packets already in flight may still land; beyond this,
/// any packet is a bug.
pub const STOP_SLACK: Duration = Duration::from_millis(200);

/// `→ INVITE (21 INVITE)` lines without SDP: the order of methods, statuses and CSeqs.
pub fn flow(run: &SippRun) -> Vec<String> {
    run.messages
        .iter()
        .map(|m| {
            let s = m.summary();
            s.split(" sdp[").next().unwrap_or("").to_owned()
        })
        .collect()
}

pub fn assert_flow(run: &SippRun, expected: &[&str]) {
    let got = flow(run);
    assert_eq!(
        got,
        expected,
        "SIP exchange differs; full transcript:\n{}",
        run.transcript()
    );
}

/// The wall time SIPp logged for the first sent request of `method`.
pub fn sent_at(run: &SippRun, method: &str) -> SystemTime {
    run.sent(method)
        .unwrap_or_else(|| panic!("no {method} sent:\n{}", run.transcript()))
        .wall
}

/// Checks a whole call's stream: the contiguity rules of [`check_stream`], nothing before the
/// ACK left SIPp (5 ms slack for SIPp logging after sending), nothing after BYE + 200 ms, and
/// roughly one packet per 20 ms in between.
pub fn assert_call_media(run: &SippRun, packets: &[RtpPacket]) -> StreamReport {
    let ack = sent_at(run, "ACK");
    let bye = sent_at(run, "BYE");
    let report = check_stream(packets, SAMPLES, PAYLOAD)
        .unwrap_or_else(|e| panic!("bad stream: {e}\n{}", run.transcript()));
    let first = &packets[0];
    assert!(
        first.wall + Duration::from_millis(5) >= ack,
        "RTP arrived {:?} before the ACK was sent",
        ack.duration_since(first.wall).unwrap_or_default()
    );
    let late: Vec<&RtpPacket> = packets
        .iter()
        .filter(|p| p.wall > bye + STOP_SLACK)
        .collect();
    assert!(
        late.is_empty(),
        "{} RTP packets more than {STOP_SLACK:?} after BYE (first seq {})",
        late.len(),
        late[0].seq
    );
    let talk = bye.duration_since(ack).expect("BYE after ACK");
    let expected = talk.as_millis() as usize / 20;
    assert!(
        report.packets >= expected * 8 / 10 && report.packets <= expected + 3,
        "{} packets in {talk:?} of call, expected about {expected}",
        report.packets
    );
    assert!(
        report.on_time >= ON_TIME,
        "only {:.1} % of inter-arrival gaps within 20 ± 15 ms",
        report.on_time * 100.0
    );
    report
}
