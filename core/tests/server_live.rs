//! A live class through the whole Server on virtual time: callers hear the fallback until the
//! jitter buffer has filled, then the source; when the source stops they hear the fallback
//! again once the buffer has run dry, and the source again when it is back. Seq and timestamp
//! run on across every change, and the marker bit flags each one.

mod common;

use std::time::Duration;

use common::*;
use onhold_core::media::g711::linear_to_ulaw;
use onhold_core::media::{ClassSpec, Library, LibrarySpec, LiveSpec, MusicSource, Order, PlayMode};
use onhold_core::{Event, LiveState, ServerConfig};

/// The fallback: a 400 Hz tone, so no payload of it is one byte repeated.
fn fallback_wav() -> Vec<u8> {
    let samples: Vec<i16> = (0..16000)
        .map(|i| ((i as f64 * 400.0 * 2.0 * std::f64::consts::PI / 8000.0).sin() * 8000.0) as i16)
        .collect();
    wav(8000, &samples)
}

fn live_library() -> Library {
    let spec = LibrarySpec {
        classes: vec![ClassSpec {
            name: "default".into(),
            sources: vec![MusicSource {
                name: "fallback.wav".into(),
                bytes: fallback_wav(),
            }],
            from_directory: false,
            order: Order::Sorted,
            mode: PlayMode::PerCall,
            announcement: None,
            live: Some(LiveSpec {
                url: "http://127.0.0.1:8000/live.mp3".into(),
                buffer: Duration::from_millis(300),
            }),
        }],
        normalize: false,
        gain_db: 0.0,
        g722: true,
    };
    Library::build(&spec, 1).expect("builds").0
}

fn call(h: &mut Harness, n: u32, port: u16) {
    let mut c = Dp750::new(n);
    let sdp = dp750_sdp("192.168.1.50", port, "sendrecv");
    h.send(PHONE, &c.request("INVITE", Some(&sdp), &[]));
    c.to_tag = h.response("SIP/2.0 200").to_tag();
    h.send(PHONE, &c.ack(None));
}

/// The source's level: its every PCMU byte is this.
const LIVE: i16 = 3000;

/// `ms` of virtual time, the source sending 20 ms of audio every 20 ms (or nothing).
fn run(h: &mut Harness, ms: u64, sending: bool) {
    for _ in 0..ms / 20 {
        if sending {
            let now = h.now;
            h.server.live_audio(now, "default", &[LIVE; 160], &[]);
        }
        h.advance(Duration::from_millis(20));
    }
}

fn live_states(h: &Harness) -> Vec<(Duration, LiveState)> {
    h.events
        .iter()
        .filter_map(|(at, e)| match e {
            Event::Live { state, .. } => Some((*at, *state)),
            _ => None,
        })
        .collect()
}

#[test]
fn fallback_until_buffered_then_live_then_fallback_on_a_stall_and_back() {
    let mut h = Harness::with(ServerConfig::default(), live_library());
    call(&mut h, 1, 5004);
    call(&mut h, 2, 5006);
    run(&mut h, 200, false);
    run(&mut h, 1000, true);
    run(&mut h, 1000, false);
    run(&mut h, 1000, true);

    let live_byte = linear_to_ulaw(LIVE);
    for port in [5004, 5006] {
        let rtp: Vec<_> = h
            .rtp()
            .into_iter()
            .filter(|p| p.t.remote.port() == port)
            .collect();
        assert!(rtp.len() >= 150, "{}", rtp.len());
        let live: Vec<bool> = rtp
            .iter()
            .map(|p| p.bytes[12..].iter().all(|&b| b == live_byte))
            .collect();
        // Seq and timestamp continuous through every change: no gap in RTP.
        for w in rtp.windows(2) {
            assert_eq!(w[1].rtp_seq(), w[0].rtp_seq().wrapping_add(1));
            assert_eq!(w[1].rtp_ts(), w[0].rtp_ts().wrapping_add(160));
            assert_eq!(w[1].at - w[0].at, Duration::from_millis(20));
        }
        // Fallback, live, fallback, live: exactly three changes, each with the marker bit.
        let changes: Vec<usize> = (1..rtp.len()).filter(|&i| live[i] != live[i - 1]).collect();
        assert_eq!(changes.len(), 3, "{live:?}");
        assert!(!live[0] && live[changes[0]] && !live[changes[1]] && live[changes[2]]);
        for (i, p) in rtp.iter().enumerate().skip(1) {
            assert_eq!(p.rtp_marker(), changes.contains(&i), "packet {i}");
        }
        // The source started at 200 ms and is heard 300 ms later (within a packet); it stopped
        // at 1200 ms and its last audio, 300 ms of it, plays out before the fallback.
        let at = |i: usize| rtp[i].at.as_millis() as i64;
        assert!((at(changes[0]) - 500).abs() <= 20, "{}", at(changes[0]));
        assert!((at(changes[1]) - 1500).abs() <= 20, "{}", at(changes[1]));
        assert!((at(changes[2]) - 2500).abs() <= 20, "{}", at(changes[2]));
    }

    let states: Vec<LiveState> = live_states(&h).into_iter().map(|(_, s)| s).collect();
    assert_eq!(
        states,
        [LiveState::Playing, LiveState::Fallback, LiveState::Playing],
        "one event per change of the class, not per caller"
    );
    let info = h.server.live_info(h.now);
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].class, "default");
    assert!(info[0].playing);
    assert_eq!(info[0].underruns, 1);
    assert_eq!(info[0].target, Duration::from_millis(300));
    assert_eq!(info[0].received, Duration::from_millis(2000));
}

#[test]
fn outages_are_counted_once_each_however_many_retries_fail() {
    let mut h = Harness::with(ServerConfig::default(), live_library());
    let down = |h: &mut Harness| h.server.live_source("default", Err("refused".into()));
    down(&mut h);
    down(&mut h);
    h.server.live_source("default", Ok(()));
    h.server.live_source("default", Ok(()));
    down(&mut h);
    down(&mut h);
    h.server.live_source("nosuch", Err("ignored".into()));
    h.advance(Duration::from_millis(1));
    let info = &h.server.live_info(h.now)[0];
    assert_eq!(
        info.outages, 2,
        "failing at start, and the drop after connecting"
    );
    assert!(!info.connected);
    assert_eq!(info.last_error.as_deref(), Some("refused"));
    let states: Vec<LiveState> = live_states(&h).into_iter().map(|(_, s)| s).collect();
    assert_eq!(
        states,
        [LiveState::Down, LiveState::Connected, LiveState::Down]
    );
}

#[test]
fn a_live_class_is_shared_and_survives_a_reload() {
    let library = live_library();
    let class = library.default_class();
    assert_eq!(
        library.mode(class),
        PlayMode::Shared,
        "per-call is overridden"
    );
    assert!(library
        .summary()
        .contains("live http://127.0.0.1:8000/live.mp3"));
    let mut h = Harness::with(ServerConfig::default(), library);
    call(&mut h, 1, 5004);
    run(&mut h, 400, true);
    h.server.control(
        h.now,
        onhold_core::Control::Reload(std::sync::Arc::new(live_library())),
    );
    let before = h.rtp().len();
    run(&mut h, 200, true);
    let live_byte = linear_to_ulaw(LIVE);
    assert!(
        h.rtp()[before..]
            .iter()
            .all(|p| p.bytes[12..].iter().all(|&b| b == live_byte)),
        "the buffer is kept by class name across the reload"
    );
}
