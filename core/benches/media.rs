//! Music preparation speed: decode + resample + encode a one-minute MP3 into all three codecs.
//!
//! `cargo bench -p onhold-core --bench media`
//!
//! `… --bench media -- g722-encode` only encodes `BENCH_OCTETS` G.722 octets of the built-in
//! music (for `g722.sh`, which counts the instructions per octet under callgrind).
//!
//! The input is `tests/fixtures/one_minute.mp3`: the built-in music looped twice, up-sampled to
//! 44.1 kHz stereo and encoded at 128 kbit/s by LAME (see the fixtures README), i.e. what a
//! typical music file costs. Plain timing loop; prints the best and median of several runs.
#![allow(clippy::disallowed_methods)] // a benchmark reads the clock

use std::hint::black_box;
use std::time::{Duration, Instant};

use onhold_core::media::{
    decode, g722, resample, ClassSpec, Encoded, Library, LibrarySpec, MusicSource, Order, PlayMode,
};

const MP3: &[u8] = include_bytes!("../tests/fixtures/one_minute.mp3");
const RUNS: usize = 7;

/// CPU time consumed by this thread so far.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Run `f` RUNS times; print the best and median wall time and the best CPU time, scaled to a
/// minute of audio.
fn time<T>(label: &str, audio_seconds: f64, mut f: impl FnMut() -> T) -> T {
    let mut wall = Vec::with_capacity(RUNS);
    let mut cpu = Vec::with_capacity(RUNS);
    let mut out = None;
    for _ in 0..RUNS {
        let (t0, c0) = (Instant::now(), thread_cpu());
        out = Some(std::hint::black_box(f()));
        wall.push(t0.elapsed());
        cpu.push(thread_cpu() - c0);
    }
    wall.sort();
    cpu.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let per_min = |d: Duration| ms(d) * 60.0 / audio_seconds;
    println!(
        "{label:<38} wall best {:>7.2} ms, median {:>7.2} ms | cpu best {:>7.2} ms = {:>6.1} ms per minute of audio",
        ms(wall[0]),
        ms(wall[RUNS / 2]),
        ms(cpu[0]),
        per_min(cpu[0]),
    );
    out.unwrap()
}

/// Encode `BENCH_OCTETS` octets (default 800,000: 100 s) of the built-in music, looped.
fn g722_encode() {
    #[allow(clippy::disallowed_methods)]
    let octets: usize = std::env::var("BENCH_OCTETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(800_000);
    let pcm = decode::decode("built-in", onhold_core::media::DEFAULT_MUSIC_WAV).unwrap();
    let n8 = resample::output_len(pcm.samples.len(), pcm.rate, 8000);
    let pcm16: Vec<i16> = resample::resample(&pcm.samples, pcm.rate, 16000, 2 * n8)
        .unwrap()
        .iter()
        .map(|&s| (s * 32767.0).round().clamp(-32768.0, 32767.0) as i16)
        .collect();
    let mut enc = g722::Encoder::new();
    let mut out = Vec::with_capacity(octets);
    for pair in pcm16.chunks_exact(2).cycle().take(octets) {
        out.push(enc.encode_pair(pair[0], pair[1]));
    }
    println!(
        "{} G.722 octets, last {}",
        out.len(),
        black_box(out)[octets - 1]
    );
}

fn main() {
    if std::env::args().any(|a| a == "g722-encode") {
        return g722_encode();
    }
    let pcm = decode::decode("one_minute.mp3", MP3).expect("fixture decodes");
    let secs = pcm.samples.len() as f64 / pcm.rate as f64;
    println!(
        "input: {:.1} s of MP3, {} Hz, {} bytes",
        secs,
        pcm.rate,
        MP3.len()
    );

    time("decode MP3 (mono f32)", secs, || {
        decode::decode("one_minute.mp3", MP3).unwrap()
    });
    let n8 = resample::output_len(pcm.samples.len(), pcm.rate, 8000);
    let pcm16 = time("resample 44.1k -> 16k", secs, || {
        resample::resample(&pcm.samples, pcm.rate, 16000, 2 * n8).unwrap()
    });
    let pcm8 = time("resample 16k -> 8k", secs, || {
        resample::resample(&pcm16, 16000, 8000, n8).unwrap()
    });
    let to_i16 = |x: &[f32]| -> Vec<i16> {
        x.iter()
            .map(|&s| (s * 32767.0).round().clamp(-32768.0, 32767.0) as i16)
            .collect()
    };
    let (i8k, i16k) = (to_i16(&pcm8), to_i16(&pcm16));
    time("encode G.722 only", secs, || {
        let mut out = Vec::with_capacity(i8k.len());
        g722::Encoder::new().encode(&i16k, &mut out);
        out
    });
    time("encode PCMU + PCMA, keep 16 kHz PCM", secs, || {
        Encoded::encode(&i8k, &i16k, true)
    });

    let spec = LibrarySpec {
        classes: vec![ClassSpec {
            name: "default".into(),
            sources: vec![MusicSource {
                name: "one_minute.mp3".into(),
                bytes: MP3.to_vec(),
            }],
            from_directory: false,
            order: Order::Sorted,
            mode: PlayMode::PerCall,
            announcement: None,
            live: None,
        }],
        normalize: true,
        gain_db: 0.0,
        g722: true,
    };
    let lib = time("Library::build (all of the above)", secs, || {
        Library::build(&spec, 1).unwrap().0
    });
    println!(
        "library memory: {} bytes for {:.1} s of music = {:.0} bytes per second of music",
        lib.memory_bytes(),
        lib.audio_seconds(),
        lib.memory_bytes() as f64 / lib.audio_seconds()
    );

    let embedded = time(
        "Library::embedded_default (30 s WAV)",
        30.0,
        Library::embedded_default,
    );
    println!("{}", embedded.summary());
}
