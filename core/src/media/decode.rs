//! Decoding music files from bytes with symphonia, down-mixed to mono `f32`.
//!
//! The runtime reads the file; this module only sees its bytes and its name (for messages and as
//! a format hint). Everything that can go wrong with untrusted input becomes a [`MediaError`].

use std::io::Cursor;

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use super::MediaError;

/// Highest input sample rate accepted (768 kHz is the top of what studio gear writes).
pub const MAX_SAMPLE_RATE: u32 = 768_000;
/// Longest track accepted, in seconds: a bound on memory for hostile or mistaken input.
pub const MAX_SECONDS: u64 = 3 * 3600;

/// A decoded track: mono samples in [-1, 1] at `rate` Hz.
#[derive(Clone, Debug)]
pub struct Pcm {
    pub rate: u32,
    pub samples: Vec<f32>,
}

/// Decode a whole file to mono. `name` is the file's path, used in errors and as a format hint.
pub fn decode(name: &str, bytes: &[u8]) -> Result<Pcm, MediaError> {
    if bytes.is_empty() {
        return Err(MediaError::new(name, "empty file"));
    }
    check_wav_header(name, bytes)?;
    // Symphonia 0.5 can still panic on some malformed streams; a bad file must not take the
    // server down, so a panic inside the decoder is reported like any other decoding error.
    let owned = bytes.to_vec();
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode_inner(name, owned))) {
        Ok(result) => result,
        Err(_) => Err(MediaError::new(
            name,
            "the decoder failed on malformed data (internal panic caught)",
        )),
    }
}

fn decode_inner(name: &str, bytes: Vec<u8>) -> Result<Pcm, MediaError> {
    let mss = MediaSourceStream::new(
        Box::new(Cursor::new(bytes)),
        MediaSourceStreamOptions::default(),
    );
    let mut hint = Hint::new();
    if let Some(ext) = extension(name) {
        hint.with_extension(ext);
    }
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            mss,
            // Gapless: trim encoder delay and padding (LAME/iTunes tags) so playlist items join
            // without the few tens of milliseconds of silence MP3 and AAC add at each end.
            &FormatOptions {
                enable_gapless: true,
                ..FormatOptions::default()
            },
            &MetadataOptions::default(),
        )
        .map_err(|e| {
            MediaError::new(
                name,
                format!("not a supported audio format ({})", describe(&e)),
            )
        })?;
    let mut format = probed.format;

    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| MediaError::new(name, "no audio track"))?;
    let track_id = track.id;
    if let Some(rate) = track.codec_params.sample_rate {
        check_rate(name, rate)?;
    }
    if let Some(ch) = track.codec_params.channels {
        if ch.count() == 0 {
            return Err(MediaError::new(name, "zero channels"));
        }
    }
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| MediaError::new(name, format!("unsupported codec ({})", describe(&e))))?;

    let mut rate: Option<u32> = None;
    let mut samples: Vec<f32> = Vec::new();
    let mut buf: Option<SampleBuffer<f32>> = None;
    let mut skipped = 0usize;
    let mut last_error: Option<String> = None;

    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            // End of stream (symphonia reports it as an unexpected EOF).
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(SymError::ResetRequired) => break,
            Err(e) => {
                // A broken container after some good audio: keep what decoded.
                last_error = Some(describe(&e));
                break;
            }
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(d) => d,
            Err(SymError::DecodeError(e)) => {
                // A corrupt packet: skip it, as players do.
                skipped += 1;
                last_error = Some(e.to_string());
                continue;
            }
            Err(SymError::IoError(e)) => {
                skipped += 1;
                last_error = Some(e.to_string());
                continue;
            }
            Err(e) => {
                return Err(MediaError::new(
                    name,
                    format!("decoding failed ({})", describe(&e)),
                ))
            }
        };
        let spec = *decoded.spec();
        let channels = spec.channels.count();
        if channels == 0 {
            return Err(MediaError::new(name, "zero channels"));
        }
        match rate {
            None => {
                check_rate(name, spec.rate)?;
                rate = Some(spec.rate);
            }
            // A stream that changes rate mid-way (rare; chained streams): skip the odd part
            // rather than play it at the wrong speed.
            Some(r) if r != spec.rate => {
                skipped += 1;
                continue;
            }
            Some(_) => {}
        }
        let frames = decoded.frames();
        if frames == 0 {
            continue;
        }
        let need = decoded.capacity() as u64;
        let fits = buf
            .as_ref()
            .is_some_and(|b| b.capacity() >= decoded.capacity() * channels);
        if !fits {
            buf = Some(SampleBuffer::new(need, spec));
        }
        let Some(sb) = buf.as_mut() else { continue };
        sb.copy_interleaved_ref(decoded);
        let inter = sb.samples();
        if channels == 1 {
            samples.extend_from_slice(&inter[..frames.min(inter.len())]);
        } else {
            let scale = 1.0 / channels as f32;
            samples.extend(
                inter
                    .chunks_exact(channels)
                    .map(|f| f.iter().sum::<f32>() * scale),
            );
        }
        if let Some(r) = rate {
            if samples.len() as u64 > MAX_SECONDS * r as u64 {
                return Err(MediaError::new(
                    name,
                    format!("longer than {} hours", MAX_SECONDS / 3600),
                ));
            }
        }
    }

    let Some(rate) = rate.filter(|_| !samples.is_empty()) else {
        let why = match last_error {
            Some(e) => format!("no audio could be decoded ({skipped} bad packets; last: {e})"),
            None => "no audio could be decoded (empty or truncated stream)".to_string(),
        };
        return Err(MediaError::new(name, why));
    };
    // Guard against NaN/inf from float WAVs: they would poison normalisation and resampling.
    for s in samples.iter_mut() {
        if !s.is_finite() {
            *s = 0.0;
        }
    }
    Ok(Pcm { rate, samples })
}

/// Symphonia 0.5 panics on a WAV `fmt ` chunk with a zero sample rate (a zero time base);
/// catch that and zero channels here, with a clear message, before it gets the file.
fn check_wav_header(name: &str, bytes: &[u8]) -> Result<(), MediaError> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Ok(());
    }
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]]);
        let body = &bytes[at + 8..];
        if id == b"fmt " {
            if body.len() < 8 {
                break;
            }
            let channels = u16::from_le_bytes([body[2], body[3]]);
            let rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
            if channels == 0 {
                return Err(MediaError::new(name, "zero channels"));
            }
            return check_rate(name, rate);
        }
        // Chunks are word-aligned.
        at = at
            .saturating_add(8)
            .saturating_add(len as usize + (len as usize & 1));
    }
    Ok(())
}

fn check_rate(name: &str, rate: u32) -> Result<(), MediaError> {
    if rate == 0 || rate > MAX_SAMPLE_RATE {
        return Err(MediaError::new(
            name,
            format!("absurd sample rate {rate} Hz (accepted: 1 to {MAX_SAMPLE_RATE})"),
        ));
    }
    Ok(())
}

fn extension(name: &str) -> Option<&str> {
    let file = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let (_, ext) = file.rsplit_once('.')?;
    (!ext.is_empty()).then_some(ext)
}

fn describe(e: &SymError) -> String {
    match e {
        SymError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "truncated".to_string()
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_hint_is_taken_from_the_file_name_only() {
        assert_eq!(extension("music/a.MP3"), Some("MP3"));
        assert_eq!(extension("dir.d/track"), None);
        assert_eq!(extension("x."), None);
    }
}
