//! Decoding every supported container from bytes, down-mixing, resampling, and rejecting bad
//! input with a one-line error that names the file.

use onhold_core::media::decode::{decode, Pcm};
use onhold_core::media::resample::{output_len, resample};

/// A RIFF/WAVE file written by hand: `tag` 1 = integer PCM, 3 = IEEE float.
fn wav(tag: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
    let block = channels as u32 * bits as u32 / 8;
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(4 + 8 + 16 + 8 + data.len() as u32).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&tag.to_le_bytes());
    w.extend_from_slice(&channels.to_le_bytes());
    w.extend_from_slice(&rate.to_le_bytes());
    w.extend_from_slice(&(rate * block).to_le_bytes());
    w.extend_from_slice(&(block as u16).to_le_bytes());
    w.extend_from_slice(&bits.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&(data.len() as u32).to_le_bytes());
    w.extend_from_slice(data);
    w
}

fn sine(freq: f64, rate: u32, n: usize, amp: f64) -> Vec<f64> {
    (0..n)
        .map(|i| amp * (2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64).sin())
        .collect()
}

/// Frequency estimate from rising zero crossings over the middle of the signal.
fn zero_crossing_freq(x: &[f32], rate: u32) -> f64 {
    let mid = &x[x.len() / 5..x.len() * 4 / 5];
    let crossings = mid.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count();
    crossings as f64 * rate as f64 / mid.len() as f64
}

/// Power of `freq` relative to the total power (Goertzel), over the middle of the signal.
fn tone_share(x: &[f32], rate: u32, freq: f64) -> f64 {
    let mid = &x[x.len() / 5..x.len() * 4 / 5];
    let w = 2.0 * std::f64::consts::PI * freq / rate as f64;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &v in mid {
        let s0 = v as f64 + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    let total: f64 = mid.iter().map(|&v| (v as f64) * (v as f64)).sum();
    // A pure tone of N samples gives power = total · N / 2.
    power / (total * mid.len() as f64 / 2.0)
}

fn peak(x: &[f32]) -> f32 {
    x.iter().fold(0.0, |m, &v| m.max(v.abs()))
}

fn check_tone(name: &str, pcm: &Pcm, rate: u32, seconds: f64, amp: f32) {
    assert_eq!(pcm.rate, rate, "{name}");
    let dur = pcm.samples.len() as f64 / rate as f64;
    assert!(
        (dur - seconds).abs() < 0.06,
        "{name}: {dur} s, want {seconds}"
    );
    let f = zero_crossing_freq(&pcm.samples, rate);
    assert!((f - 1000.0).abs() < 5.0, "{name}: {f} Hz");
    assert!(tone_share(&pcm.samples, rate, 1000.0) > 0.95, "{name}");
    let a = amplitude(&pcm.samples);
    // Lossy codecs may shift the level a little (LAME: -0.45 dB here, as ffmpeg decodes too).
    assert!(
        (a - amp).abs() < amp * 0.1,
        "{name}: amplitude {a}, want {amp}"
    );
}

/// Amplitude of a sine from its RMS over the middle of the signal (sample peaks depend on
/// where the samples fall on the waveform).
fn amplitude(x: &[f32]) -> f32 {
    let mid = &x[x.len() / 5..x.len() * 4 / 5];
    let ms: f64 = mid.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / mid.len() as f64;
    (2.0 * ms).sqrt() as f32
}

#[test]
fn wav_integer_and_float_variants_decode() {
    let rate = 44100;
    let x = sine(1000.0, rate, rate as usize / 2, 0.5);
    let u8_data: Vec<u8> = x
        .iter()
        .map(|&v| (128.0 + v * 127.0).round() as u8)
        .collect();
    let s16: Vec<u8> = x
        .iter()
        .flat_map(|&v| ((v * 32767.0).round() as i16).to_le_bytes())
        .collect();
    let s24: Vec<u8> = x
        .iter()
        .flat_map(|&v| {
            let b = ((v * 8_388_607.0).round() as i32).to_le_bytes();
            [b[0], b[1], b[2]]
        })
        .collect();
    let s32: Vec<u8> = x
        .iter()
        .flat_map(|&v| ((v * 2_147_483_647.0).round() as i32).to_le_bytes())
        .collect();
    let f32_data: Vec<u8> = x.iter().flat_map(|&v| (v as f32).to_le_bytes()).collect();
    for (name, bytes) in [
        ("u8.wav", wav(1, 1, rate, 8, &u8_data)),
        ("s16.wav", wav(1, 1, rate, 16, &s16)),
        ("s24.wav", wav(1, 1, rate, 24, &s24)),
        ("s32.wav", wav(1, 1, rate, 32, &s32)),
        ("f32.wav", wav(3, 1, rate, 32, &f32_data)),
    ] {
        let pcm = decode(name, &bytes).unwrap_or_else(|e| panic!("{e}"));
        check_tone(name, &pcm, rate, 0.5, 0.5);
    }
}

#[test]
fn stereo_is_averaged_to_mono() {
    let rate = 8000;
    let x = sine(1000.0, rate, 4000, 0.5);
    let frame = |l: f64, r: f64| {
        let mut v = ((l * 32767.0) as i16).to_le_bytes().to_vec();
        v.extend_from_slice(&((r * 32767.0) as i16).to_le_bytes());
        v
    };
    let opposite: Vec<u8> = x.iter().flat_map(|&v| frame(v, -v)).collect();
    let pcm = decode("opposite.wav", &wav(1, 2, rate, 16, &opposite)).unwrap();
    assert_eq!(pcm.samples.len(), 4000);
    assert!(peak(&pcm.samples) < 1e-3, "L = -R cancels");
    let left_only: Vec<u8> = x.iter().flat_map(|&v| frame(v, 0.0)).collect();
    let pcm = decode("left.wav", &wav(1, 2, rate, 16, &left_only)).unwrap();
    assert!(
        (peak(&pcm.samples) - 0.25).abs() < 0.01,
        "one channel at half level"
    );
}

#[test]
fn compressed_containers_decode() {
    // 1 kHz sine at 1/8 full scale (ffmpeg's lavfi `sine`), see fixtures/README.md; ffmpeg
    // up-mixes mono to stereo at -3 dB, so the stereo files carry 0.125/√2 in each channel.
    let stereo = 0.125 * std::f32::consts::FRAC_1_SQRT_2;
    for (name, bytes, rate, seconds, amp) in [
        (
            "sine1k.mp3",
            &include_bytes!("fixtures/sine1k.mp3")[..],
            44100,
            1.0,
            stereo,
        ),
        (
            "sine1k.flac",
            &include_bytes!("fixtures/sine1k.flac")[..],
            48000,
            0.75,
            0.125,
        ),
        (
            "sine1k.ogg",
            &include_bytes!("fixtures/sine1k.ogg")[..],
            44100,
            1.0,
            stereo,
        ),
        (
            "sine1k.m4a",
            &include_bytes!("fixtures/sine1k.m4a")[..],
            44100,
            1.0,
            stereo,
        ),
    ] {
        let pcm = decode(&format!("music/{name}"), bytes).unwrap_or_else(|e| panic!("{e}"));
        check_tone(name, &pcm, rate, seconds, amp);
    }
}

#[test]
fn mp3_encoder_delay_and_padding_are_trimmed() {
    // LAME adds ~1100 samples of delay and pads to whole frames (46 080 samples in all);
    // gapless decoding gives back exactly the second that was encoded, so playlist items join
    // without gaps.
    let pcm = decode("sine1k.mp3", include_bytes!("fixtures/sine1k.mp3")).unwrap();
    assert_eq!(pcm.samples.len(), 44100);
}

#[test]
fn format_is_found_without_a_telling_extension() {
    let pcm = decode("noext", include_bytes!("fixtures/sine1k.ogg")).unwrap();
    assert_eq!(pcm.rate, 44100);
}

fn error_of(name: &str, bytes: &[u8]) -> String {
    match decode(name, bytes) {
        Ok(p) => panic!("{name} decoded to {} samples", p.samples.len()),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with(&format!("{name}: ")), "{msg}");
            assert!(!msg.contains('\n'), "{msg}");
            msg
        }
    }
}

#[test]
fn bad_input_is_an_error_naming_the_file() {
    let s16 = vec![0u8; 200];
    let msg = error_of("music/empty.mp3", b"");
    assert!(msg.contains("empty"), "{msg}");
    let msg = error_of(
        "music/a.mp3",
        b"this is not audio at all, just some text bytes....",
    );
    assert!(msg.contains("not a supported audio format"), "{msg}");
    let garbage: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    error_of("music/noise.bin", &garbage);
    // A WAV header cut off in the middle.
    error_of("music/cut.wav", &wav(1, 1, 8000, 16, &s16)[..30]);
    // Zero channels, absurd rates, no samples.
    error_of("music/nochan.wav", &wav(1, 0, 8000, 16, &s16));
    let msg = error_of("music/rate0.wav", &wav(1, 1, 0, 16, &s16));
    assert!(msg.contains("rate") || msg.contains("format"), "{msg}");
    let msg = error_of("music/fast.wav", &wav(1, 1, 1_000_000, 16, &s16));
    assert!(msg.contains("sample rate"), "{msg}");
    let msg = error_of("music/nothing.wav", &wav(1, 1, 8000, 16, &[]));
    assert!(msg.contains("no audio"), "{msg}");
    // The first kilobyte of an MP3 alone does not hold a full frame of audio... or if it does,
    // it must decode to something sane; either way no panic.
    let mp3 = include_bytes!("fixtures/sine1k.mp3");
    if let Ok(p) = decode("music/head.mp3", &mp3[..300]) {
        assert!(p.samples.len() < 44100);
    }
}

#[test]
fn truncated_streams_keep_what_decoded() {
    for (name, bytes) in [
        ("half.mp3", &include_bytes!("fixtures/sine1k.mp3")[..]),
        ("half.ogg", &include_bytes!("fixtures/sine1k.ogg")[..]),
        ("half.flac", &include_bytes!("fixtures/sine1k.flac")[..]),
    ] {
        let half = &bytes[..bytes.len() / 2];
        match decode(name, half) {
            Ok(pcm) => {
                let secs = pcm.samples.len() as f64 / pcm.rate as f64;
                assert!(secs > 0.2 && secs < 0.7, "{name}: {secs} s");
            }
            Err(e) => assert!(e.to_string().starts_with(name), "{e}"),
        }
    }
}

#[test]
fn corrupted_packets_do_not_panic() {
    // Flip bytes all through each compressed fixture: decoding either fails cleanly or skips
    // the broken packets.
    for (name, bytes) in [
        ("x.mp3", &include_bytes!("fixtures/sine1k.mp3")[..]),
        ("x.ogg", &include_bytes!("fixtures/sine1k.ogg")[..]),
        ("x.flac", &include_bytes!("fixtures/sine1k.flac")[..]),
        ("x.m4a", &include_bytes!("fixtures/sine1k.m4a")[..]),
    ] {
        for stride in [97usize, 331, 1009] {
            let mut b = bytes.to_vec();
            for i in (400..b.len()).step_by(stride) {
                b[i] ^= 0x5A;
            }
            if let Err(e) = decode(name, &b) {
                assert!(e.to_string().starts_with(name), "{e}");
            }
        }
    }
}

#[test]
fn resampling_keeps_length_and_pitch() {
    for (rate_in, n) in [
        (44100u32, 44100usize),
        (48000, 30000),
        (22050, 12345),
        (11025, 5000),
    ] {
        let x: Vec<f32> = sine(1000.0, rate_in, n, 0.5)
            .iter()
            .map(|&v| v as f32)
            .collect();
        for rate_out in [8000u32, 16000] {
            let want = output_len(n, rate_in, rate_out);
            let exact = n as f64 * rate_out as f64 / rate_in as f64;
            assert!((want as f64 - exact).abs() <= 0.5);
            let y = resample(&x, rate_in, rate_out, want).unwrap();
            assert_eq!(y.len(), want);
            let f = zero_crossing_freq(&y, rate_out);
            assert!((f - 1000.0).abs() < 5.0, "{rate_in}->{rate_out}: {f} Hz");
            assert!(
                tone_share(&y, rate_out, 1000.0) > 0.99,
                "{rate_in}->{rate_out}"
            );
            let a = amplitude(&y);
            assert!(
                (a - 0.5).abs() < 0.005,
                "{rate_in}->{rate_out}: amplitude {a}"
            );
        }
    }
}

#[test]
fn resampling_is_aligned_in_time() {
    // A click at 0.5 s comes out at 0.5 s: the resampler's delay is trimmed.
    let mut x = vec![0f32; 44100];
    x[22050] = 1.0;
    let y = resample(&x, 44100, 8000, 8000).unwrap();
    let (argmax, _) = y
        .iter()
        .enumerate()
        .fold((0, 0f32), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
    assert!((argmax as i64 - 4000).abs() <= 1, "click at {argmax}");
}

#[test]
fn resampling_removes_what_the_target_cannot_carry() {
    // 6 kHz is above 8 kHz's Nyquist limit: it must be filtered, not folded to 2 kHz.
    let x: Vec<f32> = sine(6000.0, 44100, 44100, 0.5)
        .iter()
        .map(|&v| v as f32)
        .collect();
    let y = resample(&x, 44100, 8000, 8000).unwrap();
    let p = peak(&y[1000..7000]);
    println!(
        "6 kHz through 44.1k->8k: residual peak {p:.2e} ({:.0} dB)",
        20.0 * (p / 0.5).log10()
    );
    assert!(p < 0.5 * 0.01, "at least 40 dB down, got peak {p}");
}
