//! G.711 against an independent formula-based reference, and G.722 against ffmpeg's
//! implementation (fixtures in `tests/fixtures/`, see the README there) and by round-trip SNR.

use onhold_core::media::g711::{alaw_to_linear, linear_to_alaw, linear_to_ulaw, ulaw_to_linear};
use onhold_core::media::g722;

/// µ-law as the textbook states it: fold negatives by one's complement, take the top 14 bits,
/// then find which of the 8 segments × 16 uniform steps the magnitude falls in. Segment `s`
/// covers magnitudes [32·2^s − 33, 64·2^s − 33) in steps of 2^(s+1) (the decision values of
/// G.711 Table 2a: 1, 3, …, 31, 35, …, 95, 103, …, 8159).
fn reference_ulaw(x: i16) -> u8 {
    let negative = x < 0;
    let m = if negative { -(x as i32) - 1 } else { x as i32 } / 4; // 0..=8191
    let mut index = 127; // clip to the top level
    for s in 0..8 {
        let lo = (32 << s) - 33;
        let hi = (64 << s) - 33;
        if m >= lo && m < hi {
            index = 16 * s + (m - lo) / (1 << (s + 1));
            break;
        }
    }
    // Polarity bit 1 for positive; the seven magnitude bits go on the line inverted.
    let polarity = if negative { 0 } else { 128 };
    (polarity + 127 - index) as u8
}

/// A-law as the textbook states it: 13-bit magnitude, segment 0 and 1 share a step of 2, then
/// each segment doubles the step. Segment s >= 1 covers [16·2^s, 32·2^s).
fn reference_alaw(x: i16) -> u8 {
    let negative = x < 0;
    let m = if negative { -(x as i32) - 1 } else { x as i32 } / 8; // 0..=4095
    let index = if m < 32 {
        m / 2
    } else {
        let mut s = 1;
        while m >= 32 << s {
            s += 1;
        }
        16 * s + (m - (16 << s)) / (1 << s)
    };
    let code = if negative { index } else { 128 + index };
    // Even bits inverted on the line (G.711 Table 1a, "0x55").
    (code as u8) ^ 0x55
}

#[test]
fn ulaw_matches_reference_for_every_input() {
    for x in i16::MIN..=i16::MAX {
        assert_eq!(linear_to_ulaw(x), reference_ulaw(x), "x = {x}");
    }
}

#[test]
fn alaw_matches_reference_for_every_input() {
    for x in i16::MIN..=i16::MAX {
        assert_eq!(linear_to_alaw(x), reference_alaw(x), "x = {x}");
    }
}

#[test]
fn ulaw_decode_encode_is_identity_except_negative_zero() {
    for code in 0..=255u8 {
        let back = linear_to_ulaw(ulaw_to_linear(code));
        if code == 0x7F {
            // −0 decodes to 0, which encodes as +0.
            assert_eq!(back, 0xFF);
        } else {
            assert_eq!(back, code, "code {code:#04x}");
        }
    }
    assert_eq!(ulaw_to_linear(0xFF), 0);
    assert_eq!(ulaw_to_linear(0x80), 32124);
    assert_eq!(ulaw_to_linear(0x00), -32124);
}

#[test]
fn alaw_decode_encode_is_identity() {
    for code in 0..=255u8 {
        assert_eq!(
            linear_to_alaw(alaw_to_linear(code)),
            code,
            "code {code:#04x}"
        );
    }
    assert_eq!(alaw_to_linear(0xD5), 8);
    assert_eq!(alaw_to_linear(0x55), -8);
    assert_eq!(alaw_to_linear(0xAA), 32256);
}

#[test]
fn g711_is_monotonic_and_odd_symmetric() {
    let mut last_u = ulaw_to_linear(linear_to_ulaw(i16::MIN));
    let mut last_a = alaw_to_linear(linear_to_alaw(i16::MIN));
    for x in i16::MIN..=i16::MAX {
        let u = ulaw_to_linear(linear_to_ulaw(x));
        let a = alaw_to_linear(linear_to_alaw(x));
        assert!(u >= last_u && a >= last_a, "x = {x}");
        (last_u, last_a) = (u, a);
        // x and !x (= −x−1) encode to mirror codes.
        assert_eq!(linear_to_ulaw(x) ^ 0x80, linear_to_ulaw(!x));
        assert_eq!(linear_to_alaw(x) ^ 0x80, linear_to_alaw(!x));
    }
}

fn read_s16(bytes: &[u8]) -> Vec<i16> {
    bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

const G722_IN: &[u8] = include_bytes!("fixtures/g722_in.s16");
const G722_FFMPEG: &[u8] = include_bytes!("fixtures/g722_ffmpeg.g722");
const G722_FFMPEG_DEC: &[u8] = include_bytes!("fixtures/g722_ffmpeg_dec.s16");

#[test]
fn g722_decoder_matches_ffmpeg_bit_for_bit() {
    let mut dec = g722::Decoder::new();
    let mut out = Vec::new();
    dec.decode(G722_FFMPEG, &mut out);
    let want = read_s16(G722_FFMPEG_DEC);
    assert_eq!(out.len(), want.len());
    let diffs = out.iter().zip(&want).filter(|(a, b)| a != b).count();
    assert_eq!(diffs, 0, "samples differing from ffmpeg's decoder");
}

#[test]
fn g722_encoder_matches_ffmpeg_bit_for_bit() {
    let pcm = read_s16(G722_IN);
    let mut enc = g722::Encoder::new();
    let mut out = Vec::new();
    enc.encode(&pcm, &mut out);
    assert_eq!(out.len(), G722_FFMPEG.len());
    let diffs = out.iter().zip(G722_FFMPEG).filter(|(a, b)| a != b).count();
    assert_eq!(diffs, 0, "octets differing from ffmpeg's encoder");
}

/// SNR in dB of `got` against `want` after the best integer delay in 0..64 samples.
fn aligned_snr(want: &[f64], got: &[i16]) -> (f64, usize) {
    let mut best = (f64::MIN, 0);
    for delay in 0..64 {
        let n = want.len() - 64;
        let (mut sig, mut err) = (0.0, 0.0);
        for i in 0..n {
            let e = got[i + delay] as f64 - want[i];
            sig += want[i] * want[i];
            err += e * e;
        }
        let snr = 10.0 * (sig / err).log10();
        if snr > best.0 {
            best = (snr, delay);
        }
    }
    best
}

#[test]
fn g722_round_trip_of_a_1khz_sine_has_good_snr() {
    let n = 16000;
    let want: Vec<f64> = (0..n)
        .map(|i| 10000.0 * (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / 16000.0).sin())
        .collect();
    let pcm: Vec<i16> = want.iter().map(|&v| v.round() as i16).collect();
    let mut bytes = Vec::new();
    g722::Encoder::new().encode(&pcm, &mut bytes);
    assert_eq!(bytes.len(), n / 2);
    let mut out = Vec::new();
    g722::Decoder::new().decode(&bytes, &mut out);
    // Skip the first 100 ms while the ADPCM adapts.
    let (snr, delay) = aligned_snr(&want[1600..], &out[1600..]);
    println!("G.722 1 kHz round trip: SNR {snr:.1} dB at a delay of {delay} samples (mod 16)");
    assert_eq!(delay % 16, CODEC_DELAY % 16);
    assert!(snr > 20.0, "SNR {snr:.1} dB");
}

/// Analysis plus synthesis QMF: two 24-tap filters, 23 samples minus the pair alignment.
const CODEC_DELAY: usize = 22;

#[test]
fn g722_round_trip_of_a_sweep_is_delayed_by_the_qmf_only() {
    // The sweep (100 Hz to 7 kHz) is not periodic, so the best alignment is unambiguous.
    let pcm = read_s16(G722_IN);
    let want: Vec<f64> = pcm.iter().map(|&s| s as f64).collect();
    let mut bytes = Vec::new();
    g722::Encoder::new().encode(&pcm, &mut bytes);
    let mut out = Vec::new();
    g722::Decoder::new().decode(&bytes, &mut out);
    let (snr, delay) = aligned_snr(&want[800..], &out[800..]);
    println!("G.722 sweep round trip: SNR {snr:.1} dB at a delay of {delay} samples");
    assert_eq!(delay, CODEC_DELAY);
    // Above 4 kHz only the 2-bit upper band carries the signal, so a full-band sweep scores far
    // lower than a 1 kHz tone; this only guards against gross errors.
    assert!(snr > 8.0, "SNR {snr:.1} dB");
}

#[path = "g722_reference/mod.rs"]
mod g722_reference;

#[test]
fn g722_reference_decoder_matches_ffmpeg_bit_for_bit() {
    let mut out = Vec::new();
    g722_reference::ReferenceDecoder::new().decode(G722_FFMPEG, &mut out);
    let want = read_s16(G722_FFMPEG_DEC);
    assert_eq!(out.len(), want.len());
    let diffs = out.iter().zip(&want).filter(|(a, b)| a != b).count();
    assert_eq!(diffs, 0, "samples differing from ffmpeg's decoder");
}
