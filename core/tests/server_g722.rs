//! What a G.722 caller hears through the server's seams: the call start, a resume after hold,
//! the loop points of the music, and (shared mode) joining and resuming mid-programme. The
//! server's RTP payloads are decoded with the independent decoder in `g722_reference` (checked
//! bit for bit against ffmpeg's) as a phone decodes them: one decoder from the zero state for the
//! whole call, kept across the hold.
//!
//! The yardstick is a live encoder: one `g722::Encoder` (bit-exact with ffmpeg's) encoding, from
//! the zero state and without a break, exactly the music the caller was sent. Both decodes are
//! scored against that music (delayed by the codec's 22 samples) in 20 ms windows; a seam is
//! clean when every window around it is within 1 dB of the live encoder's same window. Comparing
//! window by window, rather than with one steady-state figure, keeps what every encoder goes
//! through (the zero-state attack at the call start) out of the verdict.
//!
//! A G.722 decoder is in step with the bytes it gets only if they were encoded from the state it
//! is in. Two decoders fed the same bytes end in exactly the same state within about half a
//! second; two encoders fed the same music from different states never do (see the tests in
//! `media::g722`). So a caller who starts with the music and hears one encoding from the zero
//! state is clean, and so is a per-call resume (the music pauses and resumes where it was);
//! but a pre-encoded loop, or a shared-mode join or resume, hands the caller's decoder bytes
//! encoded from another state, and it decodes them badly until it falls in step. The last two
//! tests bound that to 0.7 s and print the figures:
//! `cargo test -p onhold-core --release --test server_g722 -- --nocapture --test-threads 1`.

mod common;
#[path = "g722_reference/mod.rs"]
mod g722_reference;

use std::time::Duration;

use common::*;
use g722_reference::ReferenceDecoder;
use onhold_core::media::{g722, ClassSpec, Library, LibrarySpec, MusicSource, Order, PlayMode};
use onhold_core::{Codec, ServerConfig};

/// 16 kHz samples per RTP timestamp unit (one G.722 octet).
const UP: usize = 2;
/// The codec's delay, analysis plus synthesis QMF (see `media_codecs.rs`).
const DELAY: usize = 22;
/// Scoring window: 20 ms at 16 kHz.
const WINDOW: usize = 320;
/// How long after a seam the windows are scored: 400 ms at 16 kHz.
const AFTER: usize = 6400;
/// Where the stream's re-encoded start hands back to the first encoding: a quarter second after
/// each loop point, in 16 kHz samples.
const HAND_OVER: usize = 4000;
/// A decoder fed bytes encoded from another state falls in step within this (16 kHz samples).
const IN_STEP: usize = 11_200;

/// `secs` of music at 16 kHz, near full scale (peaks at 0.85): a 440 Hz tone with a third
/// partial, level and balance drifting over the track, so the end sounds unlike the start and
/// the ADPCM state at the loop point is far from both the zero state and the state at the start.
fn music(secs: f64) -> Vec<i16> {
    let n = (secs * 16000.0) as usize;
    let tau = 2.0 * std::f64::consts::PI;
    (0..n)
        .map(|i| {
            let t = i as f64 / 16000.0;
            let x = t / secs;
            let a = 0.55 + 0.3 * x;
            let b = 0.3 - 0.3 * x;
            (32767.0 * (a * (tau * 440.0 * t).sin() + b * (tau * 1320.0 * t).sin())) as i16
        })
        .collect()
}

/// The 16 kHz PCM the library encodes from `pcm`, a 16-bit WAV at 16 kHz: decoded to float
/// (÷ 32768), not resampled, then back to 16 bits (× 32767, rounded half away from zero).
fn as_the_library_reads_it(pcm: &[i16]) -> Vec<i16> {
    pcm.iter()
        .map(|&s| {
            let v = s as f32 / 32768.0 * 32767.0;
            (v + 0.5f32.copysign(v)) as i16
        })
        .collect()
}

fn library(pcm16: &[i16], mode: PlayMode) -> Library {
    let spec = LibrarySpec {
        classes: vec![ClassSpec {
            name: "default".into(),
            sources: vec![MusicSource {
                name: "tone.wav".into(),
                bytes: wav(16000, pcm16),
            }],
            from_directory: false,
            order: Order::Sorted,
            mode,
            announcement: None,
        }],
        normalize: false,
        gain_db: 0.0,
    };
    Library::build(&spec, 1).expect("tone builds").0
}

fn g722_sdp(direction: &str) -> String {
    dp750_sdp("192.168.1.50", 5004, direction).replace("RTP/AVP 0 8 9 18 101", "RTP/AVP 9 101")
}

/// A G.722 call placed `joins` after the server starts: `playing` of music, a hold (re-INVITE
/// `a=inactive`) for `held`, a resume (re-INVITE `a=sendrecv`), then `after` of music.
fn call(library: Library, joins: Duration, [playing, held, after]: [Duration; 3]) -> Harness {
    let mut h = Harness::with(ServerConfig::default(), library);
    h.advance(joins);
    let mut c = Dp750::new(0);
    h.send(
        PHONE,
        &c.request("INVITE", Some(&g722_sdp("sendrecv")), &[]),
    );
    assert!(h.response("SIP/2.0 200").body().contains("RTP/AVP 9"));
    c.to_tag = h.response("SIP/2.0 200").to_tag();
    h.send(PHONE, &c.ack(None));
    h.advance(playing);
    for (direction, then) in [("inactive", held), ("sendrecv", after)] {
        c.cseq += 1;
        c.next_branch();
        h.send(PHONE, &c.request("INVITE", Some(&g722_sdp(direction)), &[]));
        h.send(PHONE, &c.ack(None));
        h.advance(then);
    }
    h
}

/// What the caller received, lined up with the music it stands for.
struct Heard {
    /// The payloads, in order.
    bytes: Vec<u8>,
    /// The 16 kHz music each octet encodes (two samples per octet).
    music: Vec<i16>,
    /// The seams, in 16 kHz samples of `music`: the call start, each loop point, each resume.
    seams: Vec<(&'static str, usize)>,
}

/// Collect the RTP the caller got. Each packet's music position is what the server plays: the
/// bytes sent before it in per-call mode (the music pauses during the hold), its send time in
/// shared mode.
fn heard(h: &Harness, pcm16: &[i16], mode: PlayMode) -> Heard {
    let loop_len = pcm16.len() / UP;
    let mut out = Heard {
        bytes: Vec::new(),
        music: Vec::new(),
        seams: vec![("call start", 0)],
    };
    for p in h.rtp() {
        let payload = &p.bytes[12..];
        assert_eq!(p.rtp_pt(), 9, "G.722 throughout");
        let pos = match mode {
            PlayMode::PerCall => out.bytes.len(),
            PlayMode::Shared => (p.at.as_nanos() * 8000 / 1_000_000_000) as usize,
        };
        let here = out.music.len();
        if p.rtp_marker() && here > 0 {
            out.seams.push(("resume", here));
        }
        for k in 0..payload.len() {
            if (pos + k) % loop_len == 0 && here + UP * k > 0 {
                out.seams.push(("loop point", here + UP * k));
            }
        }
        for k in 0..payload.len() * UP {
            out.music.push(pcm16[(UP * pos + k) % pcm16.len()]);
        }
        out.bytes.extend_from_slice(payload);
    }
    out
}

fn decode(bytes: &[u8]) -> Vec<i16> {
    let mut out = Vec::new();
    ReferenceDecoder::new().decode(bytes, &mut out);
    out
}

/// The live encoder's bytes for `music`.
fn live(music: &[i16]) -> Vec<u8> {
    let mut bytes = Vec::new();
    g722::Encoder::new().encode(music, &mut bytes);
    bytes
}

/// SNR in dB of the decode `got` against `want` delayed by the codec, over `WINDOW` samples of
/// `got` from `at`.
fn window_snr(want: &[i16], got: &[i16], at: usize) -> f64 {
    let (mut sig, mut err) = (0.0, 0.0);
    for i in at..at + WINDOW {
        let w = if i >= DELAY {
            want[i - DELAY] as f64
        } else {
            0.0
        };
        sig += w * w;
        err += (got[i] as f64 - w).powi(2);
    }
    10.0 * (sig / err.max(1e-9)).log10()
}

/// Samples at the rails: a decode that overshoots full scale.
fn clipped(x: &[i16]) -> usize {
    x.iter()
        .filter(|&&s| s == i16::MAX || s == i16::MIN)
        .count()
}

/// One seam scored over the windows from one before it to `AFTER` after it: the worst window's
/// SNR for the server and the live encoder, and the largest shortfall of a server window below
/// the live encoder's same window.
struct Score {
    name: &'static str,
    at: usize,
    server: f64,
    live: f64,
    shortfall: f64,
}

/// Decode the call and the live encoder's version of it, score every seam and print the figures.
fn score(heard: &Heard, label: &str) -> Vec<Score> {
    let server = decode(&heard.bytes);
    let live = decode(&live(&heard.music));
    let end = server.len() - WINDOW;
    // Steady state: the windows from 0.6 s after a seam (past a loop's hand-over and the
    // decoder's fall back in step) to 0.1 s before the next.
    let far = |i: usize| {
        heard
            .seams
            .iter()
            .all(|&(_, s)| i + WINDOW + 1600 <= s || i >= s + 9600)
    };
    let steady: Vec<usize> = (0..end).step_by(WINDOW).filter(|&i| far(i)).collect();
    let mean = |x: &[i16]| {
        let sum: f64 = steady.iter().map(|&i| window_snr(&heard.music, x, i)).sum();
        sum / steady.len().max(1) as f64
    };
    println!(
        "{label}: steady state {:.1} dB (live encoder {:.1} dB) over {} windows; samples at full \
         scale {} (live encoder {}) of {}",
        mean(&server),
        mean(&live),
        steady.len(),
        clipped(&server),
        clipped(&live),
        server.len()
    );
    let mut scores = Vec::new();
    for &(name, at) in &heard.seams {
        let mut s = Score {
            name,
            at,
            server: f64::MAX,
            live: f64::MAX,
            shortfall: f64::MIN,
        };
        for i in (at.saturating_sub(WINDOW)..(at + AFTER).min(end)).step_by(WINDOW / 2) {
            let (a, b) = (
                window_snr(&heard.music, &server, i),
                window_snr(&heard.music, &live, i),
            );
            s.server = s.server.min(a);
            s.live = s.live.min(b);
            s.shortfall = s.shortfall.max(b - a);
        }
        println!(
            "  {:<10} at {:.3} s: worst 20 ms window {:>5.1} dB (live encoder {:>5.1} dB), at most \
             {:>5.1} dB below the live encoder",
            s.name,
            s.at as f64 / 16000.0,
            s.server,
            s.live,
            s.shortfall
        );
        scores.push(s);
    }
    scores
}

/// Where a decoder in another state falls in step with `bytes`: the first 16 kHz sample from
/// which its decode and `in_step`'s (a decoder that decoded the same bytes from `at` on) agree
/// to the end. Both decoders must already have been fed the bytes before `at`.
fn falls_in_step(lost: &ReferenceDecoder, in_step: &ReferenceDecoder, bytes: &[u8]) -> usize {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    lost.clone().decode(bytes, &mut a);
    in_step.clone().decode(bytes, &mut b);
    a.iter()
        .zip(&b)
        .rposition(|(x, y)| x != y)
        .map_or(0, |i| i + 1)
}

#[test]
fn per_call_g722_call_start_and_resume_sound_like_a_live_encoder() {
    // 1 s of music; the call holds 0.3 s in, for half a second, and resumes for 0.6 s: 0.9 s
    // of music in all, all of it in the first pass.
    let pcm = music(1.0);
    let pcm16 = as_the_library_reads_it(&pcm);
    let h = call(
        library(&pcm, PlayMode::PerCall),
        Duration::ZERO,
        [300, 500, 590].map(Duration::from_millis),
    );
    let heard = heard(&h, &pcm16, PlayMode::PerCall);
    assert!(
        heard.bytes.len() < pcm16.len() / UP,
        "all in the first pass"
    );
    let scores = score(&heard, "per-call G.722, first pass");
    let names: Vec<&str> = scores.iter().map(|s| s.name).collect();
    assert_eq!(names, ["call start", "resume"]);
    for s in &scores {
        assert!(
            s.shortfall <= 1.0,
            "{} at {:.3} s: {:.1} dB below a live encoder",
            s.name,
            s.at as f64 / 16000.0,
            s.shortfall
        );
    }
    // Why: the caller hears one encoding from the zero state, the music pausing and resuming
    // where it was, which is exactly what the live encoder sends.
    assert!(heard.bytes == live(&heard.music), "not the live encoding");
}

#[test]
fn per_call_g722_loop_point_is_clean_until_the_hand_over_and_in_step_soon_after() {
    let pcm = music(1.0);
    let pcm16 = as_the_library_reads_it(&pcm);
    // Loop points at 1, 2 and 3 s of music; a hold at 2.5 s (the music pauses there).
    let h = call(
        library(&pcm, PlayMode::PerCall),
        Duration::ZERO,
        [2500, 700, 1500].map(Duration::from_millis),
    );
    let heard = heard(&h, &pcm16, PlayMode::PerCall);
    let scores = score(&heard, "per-call G.722, looping");
    let server = decode(&heard.bytes);
    let live = decode(&live(&heard.music));
    let loop_len = pcm16.len();
    let mut loops = 0;
    let whole = |s: &&Score| s.at + HAND_OVER + IN_STEP <= server.len();
    for s in scores
        .iter()
        .filter(|s| s.name == "loop point")
        .filter(whole)
    {
        loops += 1;
        // The loop point itself: the stream's start is encoded from the end's state, which is
        // where the caller's decoder is. The first time round the live encoder sends exactly
        // these bytes; later it has drifted onto an encoding of its own, as good but not the
        // same (its windows differ by a dB or two either way), so every loop point is compared
        // with the live encoder's windows at the first.
        for i in (s.at..s.at + HAND_OVER - WINDOW).step_by(WINDOW) {
            let (a, b) = (
                window_snr(&heard.music, &server, i),
                window_snr(
                    &heard.music,
                    &live,
                    i - (s.at / loop_len) * loop_len + loop_len,
                ),
            );
            assert!(
                a >= b - 1.0,
                "{:.3} s: {a:.1} dB, the first loop {b:.1} dB",
                i as f64 / 16000.0
            );
        }
        // Where the re-encoded start hands back to the first encoding, the caller's decoder is
        // out of step, and falls back in step within 0.7 s: from then on it decodes exactly
        // what a decoder that had been fed the first encoding all along decodes.
        // (In step there: a decoder that decoded the first pass, one encoding from the zero
        // state, up to the same point of the music.)
        let q = (s.at + HAND_OVER) / UP;
        let mut lost = ReferenceDecoder::new();
        lost.decode(&heard.bytes[..q], &mut Vec::new());
        let mut in_step = ReferenceDecoder::new();
        in_step.decode(&heard.bytes[..HAND_OVER / UP], &mut Vec::new());
        let end = (s.at / UP + loop_len / UP).min(heard.bytes.len());
        let lag = falls_in_step(&lost, &in_step, &heard.bytes[q..end]);
        println!(
            "  loop point at {:.3} s: the decoder falls back in step {:.3} s after the hand-over",
            s.at as f64 / 16000.0,
            lag as f64 / 16000.0
        );
        assert!(lag <= IN_STEP, "in step {lag} samples after the hand-over");
    }
    assert_eq!(loops, 3);
}

#[test]
fn shared_g722_join_and_resume_fall_in_step_within_0_7_s() {
    // Radio: the caller joins 0.31 s into the programme, holds 2.31 s later and resumes 0.73 s
    // after that: at the join and at the resume its decoder gets bytes encoded from another
    // state.
    let pcm = music(1.0);
    let pcm16 = as_the_library_reads_it(&pcm);
    let h = call(
        library(&pcm, PlayMode::Shared),
        Duration::from_millis(310),
        [2310, 730, 2000].map(Duration::from_millis),
    );
    let heard = heard(&h, &pcm16, PlayMode::Shared);
    score(&heard, "shared G.722");
    // The programme as every caller gets it (the library is built the same way again).
    let lib = library(&pcm, PlayMode::Shared);
    let programme = |from: u64, len: usize| {
        let mut b = vec![0u8; len];
        lib.fill(lib.default_class(), Codec::G722, from, &mut b);
        b
    };
    let loop_len = pcm16.len() / UP;
    let mut sent = 0;
    for (k, p) in h.rtp().iter().enumerate() {
        if k == 0 || p.rtp_marker() {
            let pos = (p.at.as_nanos() * 8000 / 1_000_000_000) as usize;
            // In step with the programme at `pos`: a decoder that decoded it from the start
            // (past the quarter second after a loop point, where the stream hands back to the
            // first encoding, that is the first pass's bytes from the zero state).
            let into = pos % loop_len;
            assert!(into > HAND_OVER / UP, "the seam is past the hand-over");
            let mut in_step = ReferenceDecoder::new();
            in_step.decode(&programme(0, into), &mut Vec::new());
            let mut lost = ReferenceDecoder::new();
            lost.decode(&heard.bytes[..sent], &mut Vec::new());
            let next = &heard.bytes[sent..sent + 12_000];
            assert_eq!(next[..160], programme(pos as u64, 160)[..]);
            let lag = falls_in_step(&lost, &in_step, next);
            println!(
                "  {} at {:.3} s of the programme: the decoder falls in step after {:.3} s",
                if k == 0 { "join" } else { "resume" },
                pos as f64 / 8000.0,
                lag as f64 / 16000.0
            );
            assert!(lag <= IN_STEP, "in step {lag} samples after the seam");
        }
        sent += p.bytes.len() - 12;
    }
}
