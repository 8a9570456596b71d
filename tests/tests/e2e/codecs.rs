//! What the answer and the stream look like for the offers a DP750 can make: the first
//! offered codec we support wins with the offer's PT, G.722 runs an 8000 Hz RTP clock,
//! `a=ptime` is honoured, and SRTP-only offers are refused.

use std::time::{Duration, Instant};

use onhold_tests::caller::{dp750_offer, Caller};
use onhold_tests::rtp::check_stream;
use onhold_tests::{both_runtimes, RtpReceiver, Runtime, Server};

use crate::common::ON_TIME;

both_runtimes!(
    pcma_first_in_offer_is_answered_pcma,
    g722_is_sent_with_an_8000_hz_clock,
    ptime_30_is_honoured,
    savp_offer_is_refused_with_488,
);

/// Offers `fmts`/`ptime`, listens for ~1.5 s, hangs up; returns the answer's m= formats and
/// the stream judged for `bytes`-byte payloads and `samples` timestamp steps.
fn call_and_judge(
    rt: Runtime,
    fmts: &str,
    ptime: u32,
    samples: u32,
    bytes: usize,
) -> (Vec<String>, u8) {
    let server = Server::start(rt);
    let rx = RtpReceiver::bind();
    let c = Caller::invite(
        server.sip,
        &dp750_offer(rx.addr(), "RTP/AVP", fmts, ptime, "sendrecv"),
    );
    assert_eq!(c.status(), 200, "{}", c.answer);
    let acked = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(c.bye(), 200, "BYE not answered 200");
    let talk = acked.elapsed();
    let formats: Vec<String> = c
        .answer_sdp()
        .lines()
        .find_map(|l| l.trim().strip_prefix("m=audio "))
        .map(|m| m.split(' ').skip(2).map(str::to_owned).collect())
        .unwrap_or_default();
    assert!(
        c.answer_sdp()
            .lines()
            .any(|l| l.trim() == format!("a=ptime:{ptime}")),
        "answer does not carry a=ptime:{ptime}:\n{}",
        c.answer
    );
    let packets = rx.packets();
    let report = check_stream(&packets, samples, bytes).unwrap_or_else(|e| panic!("{fmts}: {e}"));
    let expected = talk.as_millis() as usize / ptime as usize;
    assert!(
        report.packets >= expected * 8 / 10 && report.packets <= expected + 3,
        "{} packets in {talk:?} at {ptime} ms",
        report.packets
    );
    assert!(
        report.on_time >= ON_TIME,
        "only {:.1} % on time",
        report.on_time * 100.0
    );
    (formats, report.pt)
}

fn pcma_first_in_offer_is_answered_pcma(rt: Runtime) {
    let (formats, pt) = call_and_judge(rt, "8 0 101", 20, 160, 160);
    assert_eq!(formats, ["8", "101"]);
    assert_eq!(pt, 8);
}

fn g722_is_sent_with_an_8000_hz_clock(rt: Runtime) {
    // RFC 3551 §4.5.2: G.722 samples at 16 kHz but its RTP clock is 8000 Hz, so 20 ms is
    // 160 timestamp units and (64 kbit/s) 160 bytes.
    let (formats, pt) = call_and_judge(rt, "9 18 101", 20, 160, 160);
    assert_eq!(formats, ["9", "101"]);
    assert_eq!(pt, 9);
}

fn ptime_30_is_honoured(rt: Runtime) {
    let (formats, pt) = call_and_judge(rt, "0 101", 30, 240, 240);
    assert_eq!(formats, ["0", "101"]);
    assert_eq!(pt, 0);
}

fn savp_offer_is_refused_with_488(rt: Runtime) {
    let server = Server::start(rt);
    let rx = RtpReceiver::bind();
    let c = Caller::invite(
        server.sip,
        &dp750_offer(rx.addr(), "RTP/SAVP", "0 8 101", 20, "sendrecv"),
    );
    assert_eq!(c.status(), 488, "{}", c.answer);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(rx.count(), 0, "RTP for a refused call");
}
