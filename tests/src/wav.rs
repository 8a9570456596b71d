//! Small WAV files written by the tests themselves (music for reload tests), and the samples
//! of one a client recorded.

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

/// The samples of a 16-bit PCM WAV file, whatever its rate and chunk layout (the `data`
/// chunk's, after any others).
pub fn read_pcm16(path: &Path) -> Result<Vec<i16>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(format!("{}: not a WAV file", path.display()));
    }
    // Chunks after the RIFF header: id, little-endian length, body padded to an even length.
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]])
            as usize;
        let body = &bytes[at + 8..(at + 8 + len).min(bytes.len())];
        if &bytes[at..at + 4] == b"data" {
            return Ok(body
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect());
        }
        at += 8 + len + len % 2;
    }
    Err(format!("{}: no data chunk", path.display()))
}
