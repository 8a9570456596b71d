//! A caller on a real network, played on virtual time: behind a NAT its RTP comes from another
//! address than its SDP names (latching), it goes quiet or vanishes (media timeout, keep-alive),
//! or it simply never hangs up (maximum call duration). Each case is judged from the
//! simulator's own report: where RTP went, when our core sent BYE, and the reason it logged.

use std::time::Duration;

use onhold_sim::engine::RunConfig;
use onhold_sim::replay::{CallerPlan, RtpStream};
use onhold_sim::{generate, pcap, replay, report, RunResult};

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn secs(v: u64) -> Duration {
    Duration::from_secs(v)
}

fn run(capture: &str, cfg: &RunConfig) -> (RunResult, String) {
    let name = format!("dp750-{capture}.pcap");
    let (_, bytes) = generate::all()
        .into_iter()
        .find(|(n, _)| *n == name)
        .expect("synthetic capture");
    let r = replay(&name, &pcap::read_bytes(&bytes).expect("readable"), cfg);
    let text = report::text(&r);
    assert!(r.passed(), "the verdicts fail:\n{text}");
    (r, text)
}

/// PCMU (the call's codec) from `from`, every 20 ms in [start, stop).
fn rtp(from: &str, start: Duration, stop: Duration) -> RtpStream {
    RtpStream {
        from: from.parse().unwrap(),
        start,
        stop,
        payload_type: 0,
    }
}

/// The report's lines for RTP our core sent, as (first packet, destination).
fn rtp_out(text: &str) -> Vec<(f64, String)> {
    text.lines()
        .filter_map(|l| {
            let (at, rest) = l.split_once(" ← RTP ")?;
            let dest = rest.split(" → ").nth(1)?.split(' ').next()?;
            Some((at.trim_start_matches('+').parse().ok()?, dest.to_string()))
        })
        .collect()
}

/// When our core sent its first BYE, from the report's timeline.
fn our_bye(text: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let (at, _) = l.split_once(" ← BYE ")?;
        at.trim_start_matches('+').parse().ok()
    })
}

/// Our core sent its first BYE within `window` (seconds) and logged the call as ended for
/// `reason`.
fn assert_our_bye(text: &str, window: std::ops::RangeInclusive<f64>, reason: &str) {
    let bye = our_bye(text).unwrap_or_else(|| panic!("no BYE from our core:\n{text}"));
    assert!(
        window.contains(&bye),
        "BYE at {bye}, not in {window:?}:\n{text}"
    );
    let ended = format!("ended: {reason} after ");
    assert!(
        events(text).iter().any(|e| e.starts_with(&ended)),
        "no {ended:?} event:\n{text}"
    );
}

/// The report's `event` lines, without time and call.
fn events(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with("event "))
        .filter_map(|l| l.split_once("] ").map(|(_, e)| e.to_string()))
        .collect()
}

/// The caller's RTP comes from its NAT's address on another port than its SIP: the stream
/// moves there once; RTP forged from another IP, sent earlier and throughout, moves nothing.
#[test]
fn a_natted_callers_stream_follows_its_rtp_and_a_forgers_does_not() {
    let cfg = RunConfig {
        caller: CallerPlan {
            rtp: vec![
                rtp("198.51.100.66:40000", ms(500), secs(9)),
                rtp("203.0.113.5:40000", secs(2), secs(9)),
            ],
            gone_at: None,
        },
        ..RunConfig::default()
    };
    let (_, text) = run("behind-nat", &cfg);
    let out = rtp_out(&text);
    let dests: Vec<&str> = out.iter().map(|(_, d)| d.as_str()).collect();
    assert_eq!(
        dests,
        ["192.168.1.50:5004", "203.0.113.5:40000"],
        "the SDP's address first, then the NAT's:\n{text}"
    );
    assert!(
        (2.0..2.02).contains(&out[1].0),
        "from the first slot after the caller's first packet:\n{text}"
    );
    let latched: Vec<String> = events(&text)
        .into_iter()
        .filter(|e| e.starts_with("latched"))
        .collect();
    assert_eq!(
        latched,
        ["latched: RTP to 203.0.113.5:40000, the caller's source, not 192.168.1.50:5004"]
    );

    let forger_only = RunConfig {
        caller: CallerPlan {
            rtp: vec![rtp("198.51.100.66:40000", ms(500), secs(9))],
            gone_at: None,
        },
        ..RunConfig::default()
    };
    let (_, text) = run("behind-nat", &forger_only);
    let dests: Vec<String> = rtp_out(&text).into_iter().map(|(_, d)| d).collect();
    assert_eq!(dests, ["192.168.1.50:5004"], "{text}");
    assert!(!text.contains("latched"), "{text}");
}

/// The caller sends RTP for 5 s and then nothing, without a BYE: our core hangs up 60 s
/// (`media_timeout`'s default) after its last packet.
#[test]
fn a_caller_whose_rtp_stops_gets_a_bye_a_minute_later() {
    let cfg = RunConfig {
        caller: CallerPlan {
            rtp: vec![rtp("192.168.1.50:5004", ms(100), secs(5))],
            gone_at: None,
        },
        tail: secs(70),
        ..RunConfig::default()
    };
    let (_, text) = run("never-hangs-up", &cfg);
    let last_packet = 4.98;
    assert_our_bye(
        &text,
        last_packet + 60.0..=last_packet + 61.0,
        "MediaTimeout",
    );
}

/// On hold the caller sends no RTP by design: its stream stops with the hold, and ten minutes
/// later the call is still up.
#[test]
fn no_media_timeout_while_on_hold() {
    let cfg = RunConfig {
        caller: CallerPlan {
            rtp: vec![rtp("192.168.1.50:5004", ms(100), secs(5))],
            gone_at: None,
        },
        tail: secs(600),
        ..RunConfig::default()
    };
    let (r, text) = run("holds-never-hangs-up", &cfg);
    assert!(r.trace.end >= secs(600), "{text}");
    assert_eq!(our_bye(&text), None, "{text}");
    assert!(events(&text).is_empty(), "{text}");
}

/// With `keepalive_interval = 30s`: the first OPTIONS is answered; the caller then vanishes,
/// the next goes unanswered, times out after 64·T1 = 32 s, and our core hangs up.
#[test]
fn a_vanished_caller_fails_the_keepalive_and_gets_a_bye() {
    let cfg = RunConfig {
        caller: CallerPlan {
            rtp: Vec::new(),
            gone_at: Some(secs(40)),
        },
        keepalive_interval: Some(secs(30)),
        tail: secs(120),
        ..RunConfig::default()
    };
    let (_, text) = run("never-hangs-up", &cfg);
    assert!(
        text.contains("+30.012000 ← OPTIONS ") && text.contains("→ 200 OK (CSeq 1 OPTIONS)"),
        "the first keep-alive is answered:\n{text}"
    );
    assert!(
        text.contains("+60.012000 ← OPTIONS ") && !text.contains("(CSeq 2 OPTIONS)"),
        "the second is not:\n{text}"
    );
    assert_our_bye(&text, 92.0..=93.0, "KeepAliveFailed");
}

/// A call nobody ends (held here, so no RTP piles up over the hours) is hung up after 4 h, the
/// default `max_call_duration`.
#[test]
fn a_call_nobody_ends_gets_a_bye_after_four_hours() {
    let cfg = RunConfig {
        tail: secs(4 * 3600 + 60),
        ..RunConfig::default()
    };
    let (_, text) = run("holds-never-hangs-up", &cfg);
    assert_our_bye(&text, 4.0 * 3600.0..=4.0 * 3600.0 + 1.0, "MaxDuration");
    assert!(
        text.contains("ended: MaxDuration after 14400.000s"),
        "{text}"
    );
}
