//! SIP parse throughput on one core: the DP750 INVITE (own-address shape, as in
//! `shared/dp750/invite-own-address.sip`), parsed and read through the typed accessors the
//! server uses for every request (top Via with branch and rport, From tag, To, Call-ID, CSeq).
//!
//! Run: `cargo bench -p onhold-core --bench sip_parse`. A plain `Instant` loop (no criterion):
//! several rounds, best and median reported, so a busy machine shows up as spread.

use std::hint::black_box;
use std::time::{Duration, Instant};

use onhold_core::sip::{parse, reason_phrase, write_message, MessageWriter};

const DP750_OWN: &str = r#"INVITE sip:123@192.168.1.100:5060 SIP/2.0
Via: SIP/2.0/UDP 192.168.1.50:5060;branch=z9hG4bK1748296302;rport
From: "Reception" <sip:201@192.168.1.10>;tag=1195548471
To: <sip:123@192.168.1.100:5060>
Call-ID: 1380512936-5060-7@BJC.BGI.B.FA
CSeq: 21 INVITE
Contact: "Reception" <sip:201@192.168.1.50:5060>
Max-Forwards: 70
User-Agent: Grandstream DP750 1.0.3.37
Privacy: none
P-Preferred-Identity: "Reception" <sip:201@192.168.1.10>
Supported: replaces, path, timer, eventlist
Allow: INVITE, ACK, OPTIONS, CANCEL, BYE, SUBSCRIBE, NOTIFY, INFO, REFER, UPDATE, MESSAGE
Content-Type: application/sdp
Accept: application/sdp, application/dtmf-relay
Content-Length:   305

v=0
o=201 8000 8000 IN IP4 192.168.1.50
s=SIP Call
c=IN IP4 192.168.1.50
t=0 0
m=audio 5004 RTP/AVP 0 8 9 18 101
a=sendrecv
a=rtpmap:0 PCMU/8000
a=ptime:20
a=rtpmap:8 PCMA/8000
a=rtpmap:9 G722/8000
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=no
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
"#;

const ROUNDS: usize = 15;

/// Runs `f` `iters` times per round and returns the per-round durations, sorted.
// Benches measure wall time on purpose; the core itself never reads a clock (clippy.toml).
#[allow(clippy::disallowed_methods)]
fn measure(iters: u32, mut f: impl FnMut()) -> Vec<Duration> {
    let mut rounds: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iters {
                f();
            }
            start.elapsed()
        })
        .collect();
    rounds.sort();
    rounds
}

fn report(what: &str, iters: u32, rounds: &[Duration]) {
    let per_sec = |d: Duration| f64::from(iters) / d.as_secs_f64();
    let best = rounds[0];
    let median = rounds[rounds.len() / 2];
    println!(
        "{what:<44} {:>10.0}/s best, {:>10.0}/s median ({:.0} ns/op best; {ROUNDS} rounds x {iters})",
        per_sec(best),
        per_sec(median),
        best.as_nanos() as f64 / f64::from(iters),
    );
}

fn main() {
    let buf = DP750_OWN.replace('\n', "\r\n").into_bytes();
    assert_eq!(parse(&buf).expect("DP750 INVITE parses").body.len(), 305);
    // `cargo bench -p onhold-core --bench sip_parse -- 20000` runs fewer iterations (profiling).
    let iters = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<u32>().ok())
        .unwrap_or(200_000);

    let rounds = measure(iters, || {
        let m = parse(black_box(&buf)).unwrap();
        let via = m.top_via().unwrap();
        black_box((via.host, via.port, via.branch(), via.rport()));
        black_box(m.from().unwrap().tag());
        black_box(m.to().unwrap().tag());
        black_box(m.call_id().unwrap());
        black_box(m.cseq().unwrap());
    });
    report(
        "DP750 INVITE parse + Via/From/To/Call-ID/CSeq",
        iters,
        &rounds,
    );

    let rounds = measure(iters, || {
        black_box(parse(black_box(&buf)).unwrap());
    });
    report("DP750 INVITE parse only", iters, &rounds);

    let rounds = measure(iters, || {
        black_box(parse(black_box(&buf)).unwrap().check_request().is_ok());
    });
    report("DP750 INVITE parse + check_request", iters, &rounds);

    let m = parse(&buf).unwrap();
    let mut out = Vec::with_capacity(2048);
    let rounds = measure(iters, || {
        out.clear();
        let mut w = MessageWriter::response(&mut out, 200, reason_phrase(200));
        for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
            w.header(name, m.header(name).unwrap());
        }
        w.header("Contact", "<sip:moh@192.168.1.100:5060>");
        w.body(Some("application/sdp"), black_box(m.body));
        black_box(out.len());
    });
    report("200 OK written with MessageWriter", iters, &rounds);

    let rounds = measure(iters, || {
        out.clear();
        write_message(black_box(&m), &mut out);
        black_box(out.len());
    });
    report("DP750 INVITE re-serialized (write_message)", iters, &rounds);
}
