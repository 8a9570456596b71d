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
//! is in, and two encoders fed the same music from different states never meet (see the tests
//! in `media::g722`): any hand-over from one pre-encoded stream to another is a seam, where the
//! decoder decodes distortion for about 0.3 s. So each G.722 call has its own encoder, carried
//! across the loop point, holds and shared-mode jumps; the tests check that what the caller gets
//! is byte for byte the live encoder's stream, and print the figures:
//! `cargo test -p onhold-core --release --test server_g722 -- --nocapture --test-threads 1`.

mod common;
#[path = "g722_reference/mod.rs"]
mod g722_reference;

use std::time::Duration;

use common::*;
use g722_reference::ReferenceDecoder;
use onhold_core::media::{g722, ClassSpec, Library, LibrarySpec, MusicSource, Order, PlayMode};
use onhold_core::ServerConfig;

/// 16 kHz samples per RTP timestamp unit (one G.722 octet).
const UP: usize = 2;
/// The codec's delay, analysis plus synthesis QMF (see `media_codecs.rs`).
const DELAY: usize = 22;
/// Scoring window: 20 ms at 16 kHz.
const WINDOW: usize = 320;
/// How long after a seam the windows are scored: 400 ms at 16 kHz.
const AFTER: usize = 6400;

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
    library_with(pcm16, mode, None)
}

/// A library of `pcm16` with `announcement` (16 kHz) after every second of music.
fn library_with(pcm16: &[i16], mode: PlayMode, announcement: Option<&[i16]>) -> Library {
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
            announcement: announcement.map(|a| {
                let source = MusicSource {
                    name: "announcement.wav".into(),
                    bytes: wav(16000, a),
                };
                (source, Duration::from_secs(1))
            }),
            live: None,
        }],
        normalize: false,
        gain_db: 0.0,
        g722: true,
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
    heard_programme(h, pcm16, &[], mode)
}

/// [`heard`] of a programme that is `pcm16` looped with cuts into an announcement at `cuts`
/// (positions in the programme, in RTP timestamp units).
fn heard_programme(h: &Harness, pcm16: &[i16], cuts: &[usize], mode: PlayMode) -> Heard {
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
            if cuts.contains(&((pos + k) % loop_len)) {
                out.seams.push(("cut", here + UP * k));
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

/// Every seam of the call within 1 dB of the live encoder in every window, and the bytes the
/// live encoder's.
fn assert_clean(heard: &Heard, scores: &[Score]) {
    for s in scores {
        assert!(
            s.shortfall <= 1.0,
            "{} at {:.3} s: {:.1} dB below a live encoder",
            s.name,
            s.at as f64 / 16000.0,
            s.shortfall
        );
    }
    assert!(heard.bytes == live(&heard.music), "not the live encoding");
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
    // The caller hears one encoding from the zero state, the music pausing and resuming where
    // it was, which is exactly what the live encoder sends.
    assert_clean(&heard, &scores);
}

/// A G.722 call to a one-second loop of music placed `joins` after the server starts, with a
/// hold of `[playing, held, after]` ms: it meets four loop points and a resume, every one clean.
fn looping_call_sounds_like_a_live_encoder(
    mode: PlayMode,
    joins: Duration,
    times: [u64; 3],
    label: &str,
) {
    let pcm = music(1.0);
    let pcm16 = as_the_library_reads_it(&pcm);
    let h = call(library(&pcm, mode), joins, times.map(Duration::from_millis));
    let heard = heard(&h, &pcm16, mode);
    let scores = score(&heard, label);
    let names: Vec<&str> = scores.iter().map(|s| s.name).collect();
    let four_loops_and_a_resume = [
        "call start",
        "loop point",
        "loop point",
        "resume",
        "loop point",
        "loop point",
    ];
    assert_eq!(names, four_loops_and_a_resume);
    assert_clean(&heard, &scores);
}

#[test]
fn per_call_g722_loop_points_and_resume_sound_like_a_live_encoder() {
    // Loop points at 1, 2 and 3 s of music; a hold at 2.5 s (the music pauses there).
    looping_call_sounds_like_a_live_encoder(
        PlayMode::PerCall,
        Duration::ZERO,
        [2500, 700, 1500],
        "per-call G.722, looping",
    );
}

#[test]
fn shared_g722_join_and_resume_sound_like_a_live_encoder() {
    // Radio: the caller joins 0.31 s into the programme, holds 2.31 s later and resumes 0.73 s
    // after that: it joins mid-programme and the resume jumps ahead in it.
    looping_call_sounds_like_a_live_encoder(
        PlayMode::Shared,
        Duration::from_millis(310),
        [2310, 730, 2000],
        "shared G.722",
    );
}

#[test]
fn per_call_g722_announcements_sound_like_a_live_encoder() {
    // A second of music, then a quarter second of a quieter, lower announcement, looped: the
    // cut into the announcement and the loop point back into the music are both seams.
    let pcm = music(1.0);
    let tau = 2.0 * std::f64::consts::PI;
    let announcement: Vec<i16> = (0..4000)
        .map(|i| (9000.0 * (tau * 300.0 * i as f64 / 16000.0).sin()) as i16)
        .collect();
    let mut programme = as_the_library_reads_it(&pcm);
    programme.extend(as_the_library_reads_it(&announcement));
    let h = call(
        library_with(&pcm, PlayMode::PerCall, Some(&announcement)),
        Duration::ZERO,
        [2000, 500, 1000].map(Duration::from_millis),
    );
    let heard = heard_programme(&h, &programme, &[8000], PlayMode::PerCall);
    let scores = score(&heard, "per-call G.722, announcements");
    let names: Vec<&str> = scores.iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        [
            "call start",
            "cut",
            "loop point",
            "resume",
            "cut",
            "loop point"
        ]
    );
    assert_clean(&heard, &scores);
}
