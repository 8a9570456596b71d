//! Media behaviour of the whole Server: RTCP cadence and BYE, incoming RTP counted and dropped,
//! music reload mid-call, and shared (radio) mode.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use onhold_core::media::{ClassSpec, Library, LibrarySpec, MusicSource, Order, PlayMode};
use onhold_core::{Control, ServerConfig, TransmitKind, Transport};

/// `secs` of a `freq` Hz tone as 8 kHz 16-bit mono WAV, its amplitude rising over the file so
/// that no two points of it sound alike.
fn tone_wav(freq: f64, secs: f64) -> Vec<u8> {
    let rate = 8000u32;
    let n = (rate as f64 * secs) as u32;
    let samples: Vec<i16> = (0..n)
        .map(|i| {
            let amplitude = 1000.0 + 8000.0 * i as f64 / n as f64;
            ((i as f64 * freq * 2.0 * std::f64::consts::PI / rate as f64).sin() * amplitude) as i16
        })
        .collect();
    wav(rate, &samples)
}

fn library(freq: f64, secs: f64, mode: PlayMode) -> Library {
    let spec = LibrarySpec {
        classes: vec![ClassSpec {
            name: "default".into(),
            sources: vec![MusicSource {
                name: format!("{freq}.wav"),
                bytes: tone_wav(freq, secs),
            }],
            from_directory: false,
            order: Order::Sorted,
            mode,
            announcement: None,
            live: None,
        }],
        normalize: false,
        gain_db: 0.0,
        g722: true,
    };
    Library::build(&spec, 1).expect("tone builds").0
}

fn call(h: &mut Harness, n: u32, port: u16) -> Dp750 {
    let mut c = Dp750::new(n);
    h.send(
        PHONE,
        &c.request(
            "INVITE",
            Some(&dp750_sdp("192.168.1.50", port, "sendrecv")),
            &[],
        ),
    );
    c.to_tag = h.response("SIP/2.0 200").to_tag();
    h.send(PHONE, &c.ack(None));
    c
}

#[test]
fn rtcp_sender_reports_every_five_seconds_randomised_and_bye_at_the_end() {
    let mut h = Harness::new();
    let mut c = call(&mut h, 0, 5004);
    h.advance(Duration::from_secs(60));
    c.cseq += 1;
    c.next_branch();
    h.send(PHONE, &c.request("BYE", None, &[]));
    let rtcp: Vec<_> = h
        .sent
        .iter()
        .filter(|s| s.t.kind == TransmitKind::Rtcp)
        .collect();
    assert!(
        (8..=24).contains(&rtcp.len()),
        "about one SR per 5 s over 60 s: {}",
        rtcp.len()
    );
    for w in rtcp.windows(2).take(rtcp.len() - 2) {
        let gap = w[1].at - w[0].at;
        assert!(
            gap >= Duration::from_millis(2500) && gap <= Duration::from_millis(7500),
            "RFC 3550 §6.3.1: 0.5–1.5 × 5 s, got {gap:?}"
        );
    }
    let gaps: std::collections::BTreeSet<Duration> =
        rtcp.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(gaps.len() > 3, "intervals are randomised, not fixed");
    assert!(
        rtcp.iter()
            .all(|s| s.t.remote == addr("192.168.1.50:5005") && s.bytes[1] == 200),
        "SRs to RTP port + 1"
    );
    let last = rtcp.last().unwrap();
    assert!(
        last.bytes.windows(2).any(|w| w == [0x81, 203]),
        "RTCP BYE when the call ends"
    );
    let ssrc = h.rtp()[0].rtp_ssrc().to_be_bytes();
    assert!(
        rtcp.iter().all(|s| s.bytes[4..8] == ssrc),
        "SR carries the stream's SSRC"
    );
}

#[test]
fn incoming_rtp_and_dtmf_are_counted_and_dropped() {
    let mut h = Harness::new();
    call(&mut h, 1, 5004);
    let port = h.rtp()[0].t.local.port();
    let before = h.sent.len();
    let mut dtmf = vec![0x80, 101, 0, 1, 0, 0, 0, 160, 1, 2, 3, 4];
    dtmf.extend_from_slice(&[5, 0x80, 0, 160]);
    for _ in 0..5 {
        h.server.handle_datagram(
            h.now,
            Transport::Udp,
            std::net::SocketAddr::new("0.0.0.0".parse().unwrap(), port),
            addr("192.168.1.50:5004"),
            &dtmf,
        );
    }
    h.drain();
    assert_eq!(h.server.stats().rtp_in, 5);
    assert!(
        h.sent[before..]
            .iter()
            .all(|s| s.t.kind != TransmitKind::Sip),
        "no SIP answer to media"
    );
}

#[test]
fn reload_swaps_music_at_the_next_frame_with_marker_and_continuity() {
    let mut h = Harness::with(
        ServerConfig::default(),
        library(400.0, 1.0, PlayMode::PerCall),
    );
    call(&mut h, 2, 5004);
    h.advance(Duration::from_millis(200));
    let n = h.rtp().len();
    h.server.control(
        h.now,
        Control::Reload(Arc::new(library(1000.0, 1.0, PlayMode::PerCall))),
    );
    h.advance(Duration::from_millis(100));
    let rtp = h.rtp();
    let (old, new) = (rtp[n - 1], rtp[n]);
    assert!(
        new.rtp_marker(),
        "marker on the first packet of the new music"
    );
    assert_eq!(new.rtp_seq(), old.rtp_seq().wrapping_add(1));
    assert_eq!(new.rtp_ts(), old.rtp_ts().wrapping_add(160));
    assert_eq!(
        new.at - old.at,
        Duration::from_millis(20),
        "no gap in pacing"
    );
    assert!(!rtp[n + 1].rtp_marker());
    // a 1000 Hz tone crosses zero more often than a 400 Hz one: count µ-law sign flips
    let flips = |p: &Sent| {
        p.bytes[12..]
            .windows(2)
            .filter(|w| (w[0] ^ w[1]) & 0x80 != 0)
            .count()
    };
    assert!(
        flips(rtp[n + 1]) > flips(rtp[n - 2]) * 2,
        "new music plays: {} vs {}",
        flips(rtp[n + 1]),
        flips(rtp[n - 2])
    );
}

#[test]
fn shared_mode_callers_hear_the_same_point() {
    let mut h = Harness::with(
        ServerConfig::default(),
        library(300.0, 2.0, PlayMode::Shared),
    );
    call(&mut h, 3, 5004);
    h.advance(Duration::from_millis(740));
    call(&mut h, 4, 5006);
    h.advance(Duration::from_millis(200));
    let to = |port: u16| {
        h.rtp()
            .into_iter()
            .filter(move |p| p.t.remote.port() == port)
            .collect::<Vec<_>>()
    };
    let (a, b) = (to(5004), to(5006));
    // both calls send at the same instants (the second joined on its own grid) — compare
    // packets by the global time their music was taken from
    let mut matched = 0;
    for pb in &b {
        if let Some(pa) = a.iter().find(|pa| pa.at == pb.at) {
            assert_eq!(pa.bytes[12..], pb.bytes[12..], "same instant, same music");
            matched += 1;
        }
    }
    // the grids differ by 740 ms = a whole number of frames, so every packet of b has a twin
    assert_eq!(matched, b.len());
    assert!(matched >= 10);
    // per-call mode, by contrast, starts each caller at the beginning
    assert_ne!(
        a[0].bytes[12..],
        b[0].bytes[12..],
        "b joined mid-programme, not at its start"
    );
}

#[test]
fn grids_start_on_whole_milliseconds_so_calls_share_wakeups() {
    let mut h = Harness::new();
    let mut a = Dp750::new(10);
    let mut b = Dp750::new(11);
    for (c, port) in [(&mut a, 5004), (&mut b, 5006)] {
        h.send(
            PHONE,
            &c.request(
                "INVITE",
                Some(&dp750_sdp("192.168.1.50", port, "sendrecv")),
                &[],
            ),
        );
        c.to_tag = h.response("SIP/2.0 200").to_tag();
    }
    h.now += Duration::from_micros(10_400);
    h.send(PHONE, &a.ack(None));
    assert!(h.rtp().is_empty(), "not before the grid start");
    h.now += Duration::from_micros(300);
    h.send(PHONE, &b.ack(None));
    h.advance(Duration::from_millis(60));
    let rtp = h.rtp();
    assert_eq!(
        rtp[0].at,
        Duration::from_millis(11),
        "first packet at the next whole ms after the ACK"
    );
    // both calls send at the same instants: one wake-up serves both
    let instants: std::collections::BTreeSet<Duration> = rtp.iter().map(|p| p.at).collect();
    assert_eq!(instants.len() * 2, rtp.len());
    for w in rtp
        .iter()
        .filter(|p| p.t.remote.port() == 5004)
        .collect::<Vec<_>>()
        .windows(2)
    {
        assert_eq!(w[1].at - w[0].at, Duration::from_millis(20));
    }
}
