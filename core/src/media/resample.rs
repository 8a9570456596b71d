//! Sample-rate conversion of whole tracks with rubato.
//!
//! Music files come at 44.1/48 kHz (or anything); the codecs want 8 kHz (G.711) and 16 kHz
//! (G.722). A synchronous FFT resampler is exact for the rational ratio, band-limits properly
//! (no aliasing into the telephone band) and is fast; the track is processed in fixed chunks and
//! the resampler's delay is trimmed so that output sample `k` lines up with input time
//! `k / out_rate`.

use rubato::{FftFixedInOut, Resampler};

/// Number of output samples for `n` input samples: round(n · out / in).
pub fn output_len(n: usize, rate_in: u32, rate_out: u32) -> usize {
    ((n as u128 * rate_out as u128 + rate_in as u128 / 2) / rate_in as u128) as usize
}

/// Resample mono `input` from `rate_in` to `rate_out`, returning exactly `len` samples
/// (normally [`output_len`]; the caller may ask for a slightly different length to keep tracks
/// of two rates aligned). Returns `None` only if rubato rejects the rates.
pub fn resample(input: &[f32], rate_in: u32, rate_out: u32, len: usize) -> Option<Vec<f32>> {
    if rate_in == rate_out {
        let mut out = input.to_vec();
        out.resize(len, 0.0);
        return Some(out);
    }
    // Chunk of about 1024 input frames (rubato rounds it to a whole number of the ratio's
    // periods): long enough for a sharp filter, short enough to keep the FFTs cheap.
    let mut r = FftFixedInOut::<f32>::new(rate_in as usize, rate_out as usize, 1024, 1).ok()?;
    let chunk_in = r.input_frames_next();
    let chunk_out = r.output_frames_next();
    let delay = r.output_delay();

    let mut out = Vec::with_capacity(len + delay + chunk_out);
    let mut inbuf = vec![vec![0.0f32; chunk_in]];
    let mut outbuf = vec![vec![0.0f32; chunk_out]];
    let mut pos = 0;
    // Feed the track, then zeros until the delayed tail has come out.
    while out.len() < len + delay {
        let take = input.len().saturating_sub(pos).min(chunk_in);
        inbuf[0][..take].copy_from_slice(&input[pos..pos + take]);
        inbuf[0][take..].fill(0.0);
        pos += take;
        let (_, produced) = r.process_into_buffer(&inbuf, &mut outbuf, None).ok()?;
        out.extend_from_slice(&outbuf[0][..produced]);
    }
    out.drain(..delay);
    out.truncate(len);
    Some(out)
}

/// A resampler for audio that arrives in pieces (a live source): what comes out is what
/// [`resample`] would make of everything pushed so far, delayed by under one chunk (about 23 ms
/// at 44.1 kHz) and with the filter's delay trimmed once at the start.
pub struct Streaming {
    r: FftFixedInOut<f32>,
    input: Vec<f32>,
    outbuf: Vec<Vec<f32>>,
    /// Output samples still to drop: the filter's delay.
    trim: usize,
}

impl Streaming {
    /// `None` if rubato rejects the rates.
    pub fn new(rate_in: u32, rate_out: u32) -> Option<Streaming> {
        let r = FftFixedInOut::<f32>::new(rate_in as usize, rate_out as usize, 1024, 1).ok()?;
        Some(Streaming {
            outbuf: vec![vec![0.0; r.output_frames_next()]],
            trim: r.output_delay(),
            input: Vec::with_capacity(2 * r.input_frames_next()),
            r,
        })
    }

    /// Push `input`, appending to `out` what whole chunks it completes.
    pub fn push(&mut self, input: &[f32], out: &mut Vec<f32>) {
        self.input.extend_from_slice(input);
        let chunk = self.r.input_frames_next();
        let mut used = 0;
        while self.input.len() - used >= chunk {
            let inbuf = [&self.input[used..used + chunk]];
            let Ok((_, produced)) = self.r.process_into_buffer(&inbuf, &mut self.outbuf, None)
            else {
                break;
            };
            used += chunk;
            let skip = self.trim.min(produced);
            self.trim -= skip;
            out.extend_from_slice(&self.outbuf[0][skip..produced]);
        }
        self.input.drain(..used);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_matches_the_whole_track_resampler() {
        let input: Vec<f32> = (0..44100)
            .map(|i| (i as f32 * 440.0 * std::f32::consts::TAU / 44100.0).sin() * 0.5)
            .collect();
        let whole = resample(&input, 44100, 8000, 8000).unwrap();
        let mut s = Streaming::new(44100, 8000).unwrap();
        let mut out = Vec::new();
        // In MP3-frame pieces.
        for piece in input.chunks(1152) {
            s.push(piece, &mut out);
        }
        assert!(out.len() >= 7700 && out.len() <= 8000, "{}", out.len());
        let worst = out
            .iter()
            .zip(&whole)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-4, "{worst}");
    }

    #[test]
    fn output_len_rounds() {
        assert_eq!(output_len(44100, 44100, 8000), 8000);
        assert_eq!(output_len(1, 44100, 8000), 0);
        assert_eq!(output_len(3, 44100, 16000), 1);
        assert_eq!(output_len(48000 * 60, 48000, 16000), 16000 * 60);
    }
}
