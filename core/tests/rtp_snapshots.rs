//! The first packets of a call, headers decoded to text, for each codec: marker on the first
//! packet and on resume after hold, seq and timestamp continuous across the hold and across the
//! loop point of a 100 ms track (five 20 ms frames), one SSRC.

mod common;

use std::fmt::Write as _;
use std::time::Duration;

use common::*;
use onhold_core::media::{ClassSpec, Library, LibrarySpec, MusicSource, Order, PlayMode};
use onhold_core::ServerConfig;

/// 100 ms of a 440 Hz tone as 16 kHz 16-bit mono WAV.
fn short_wav() -> Vec<u8> {
    let rate = 16000u32;
    let samples: Vec<i16> = (0..rate / 10)
        .map(|i| {
            ((i as f64 * 440.0 * 2.0 * std::f64::consts::PI / rate as f64).sin() * 8000.0) as i16
        })
        .collect();
    wav(rate, &samples)
}

fn library() -> Library {
    let spec = LibrarySpec {
        classes: vec![ClassSpec {
            name: "default".into(),
            sources: vec![MusicSource {
                name: "tone.wav".into(),
                bytes: short_wav(),
            }],
            from_directory: false,
            order: Order::Sorted,
            mode: PlayMode::PerCall,
            announcement: None,
            live: None,
        }],
        normalize: false,
        gain_db: 0.0,
        g722: true,
    };
    Library::build(&spec, 1).expect("tone.wav builds").0
}

fn run(pt_list: &str, codec_line: &str, stateless: bool) -> String {
    let mut h = Harness::with(ServerConfig::default(), library());
    let mut c = Dp750::new(0);
    let sdp = dp750_sdp("192.168.1.50", 5004, "sendrecv").replace("RTP/AVP 0 8 9 18 101", pt_list);
    h.send(PHONE, &c.request("INVITE", Some(&sdp), &[]));
    assert!(
        h.response("SIP/2.0 200").body().contains(codec_line),
        "answer names {codec_line}"
    );
    c.to_tag = h.response("SIP/2.0 200").to_tag();
    h.send(PHONE, &c.ack(None));
    h.advance(Duration::from_millis(120)); // 7 packets: across the 100 ms loop point
    c.cseq += 1;
    c.next_branch();
    h.send(
        PHONE,
        &c.request(
            "INVITE",
            Some(&sdp.replace("a=sendrecv", "a=inactive")),
            &[],
        ),
    );
    h.send(PHONE, &c.ack(None));
    h.advance(Duration::from_millis(500));
    c.cseq += 1;
    c.next_branch();
    h.send(PHONE, &c.request("INVITE", Some(&sdp), &[]));
    h.send(PHONE, &c.ack(None));
    h.advance(Duration::from_millis(40));

    let rtp = h.rtp();
    let (seq0, ts0, ssrc0) = (rtp[0].rtp_seq(), rtp[0].rtp_ts(), rtp[0].rtp_ssrc());
    let mut out = String::new();
    for p in &rtp {
        assert_eq!(p.rtp_ssrc(), ssrc0, "one SSRC for the call");
        let _ = writeln!(
            out,
            "+{:.3} to {} PT {:>2} seq +{:<2} ts +{:<5} {} payload {} bytes {:02x?}…",
            p.at.as_secs_f64(),
            p.t.remote,
            p.rtp_pt(),
            p.rtp_seq().wrapping_sub(seq0),
            p.rtp_ts().wrapping_sub(ts0),
            if p.rtp_marker() { "M" } else { " " },
            p.bytes.len() - 12,
            &p.bytes[12..16],
        );
    }
    // the loop point: frame 5 starts the track again. G.711 is stateless, so the bytes repeat;
    // G.722's first pass starts from the zero state and later passes from the state at the
    // end, so its bytes differ.
    let repeats = rtp[5].bytes[12..] == rtp[0].bytes[12..];
    assert_eq!(repeats, stateless, "music loops after 100 ms");
    out
}

#[test]
fn pcmu_call_with_loop_hold_and_resume() {
    insta::assert_snapshot!(run("RTP/AVP 0 101", "RTP/AVP 0 101", true));
}

#[test]
fn pcma_call_with_loop_hold_and_resume() {
    insta::assert_snapshot!(run("RTP/AVP 8 101", "RTP/AVP 8 101", true));
}

#[test]
fn g722_call_with_loop_hold_and_resume() {
    insta::assert_snapshot!(run("RTP/AVP 9 101", "RTP/AVP 9 101", false));
}
