//! Small WAV files written by the tests themselves (music for reload tests).

use std::path::Path;

/// Writes `seconds` of a `freq` Hz sine, 8 kHz mono 16-bit PCM, at half full scale.
pub fn write_sine(path: &Path, freq: f64, seconds: f64) {
    let rate = 8000u32;
    let n = (seconds * f64::from(rate)) as u32;
    let mut data = Vec::with_capacity(n as usize * 2);
    for i in 0..n {
        let v = (2.0 * std::f64::consts::PI * freq * f64::from(i) / f64::from(rate)).sin();
        data.extend_from_slice(&((v * 16_000.0) as i16).to_le_bytes());
    }
    let mut f = Vec::with_capacity(44 + data.len());
    f.extend_from_slice(b"RIFF");
    f.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    f.extend_from_slice(b"WAVEfmt ");
    f.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    f.extend_from_slice(&1u16.to_le_bytes()); // PCM
    f.extend_from_slice(&1u16.to_le_bytes()); // mono
    f.extend_from_slice(&rate.to_le_bytes());
    f.extend_from_slice(&(rate * 2).to_le_bytes()); // byte rate
    f.extend_from_slice(&2u16.to_le_bytes()); // block align
    f.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    f.extend_from_slice(b"data");
    f.extend_from_slice(&(data.len() as u32).to_le_bytes());
    f.extend_from_slice(&data);
    std::fs::write(path, f).expect("write WAV");
}
