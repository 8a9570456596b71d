//! The built-in hold music: a small, deterministic synthesiser.
//!
//! Thirty seconds in F major at 96 bpm: twelve bars of I–vi–IV–V (F, Dm, B♭, C) played three
//! times. A soft pad holds the chords with slow swells, a round bass plays the roots on beats 1
//! and 3, a bell-like arpeggio runs in eighths, and a flute-ish lead sings a melody in the second
//! and third passes, resolving into the F chord where the loop starts again. Notes are rendered
//! into a circular buffer, so release tails that run past the end ring on at the start: the loop
//! point is seamless.
//!
//! `core/examples/make_default_music.rs` writes [`render_wav`] to
//! `core/assets/default_music.wav`; a test checks the committed file is byte-identical. To keep
//! that true on every platform the synthesiser uses only IEEE-exact arithmetic (+ − × ÷, floor):
//! its sine and exponential are polynomials here, not the platform's libm.

use super::g711::linear_to_ulaw;

/// Sample rate of the rendered music (wideband, so G.722 callers hear the full 7 kHz).
pub const RATE: u32 = 16_000;
const BPM: u32 = 96;
const BEAT: usize = (RATE * 60 / BPM) as usize; // 10 000 samples
const BAR: usize = 4 * BEAT;
const BARS: usize = 12;
/// Length of the loop in samples: 30 s.
pub const LEN: usize = BARS * BAR;

const PI: f64 = std::f64::consts::PI;
const TAU: f64 = 2.0 * PI;

/// sin(x) for any finite x: range-reduced to [-π/2, π/2], then a Taylor polynomial (error
/// below 1e-9, far under 16-bit resolution).
fn sin(x: f64) -> f64 {
    let mut r = x - TAU * (x / TAU).floor(); // [0, 2π)
    if r > PI {
        r -= TAU; // (-π, π]
    }
    if r > PI / 2.0 {
        r = PI - r;
    } else if r < -PI / 2.0 {
        r = -PI - r;
    }
    let r2 = r * r;
    let mut term = r;
    let mut sum = r;
    for k in 1..=9 {
        term *= -r2 / ((2 * k) as f64 * (2 * k + 1) as f64);
        sum += term;
    }
    sum
}

/// e^x for x <= 0 (envelope decays): halve until small, Taylor, then square back.
fn exp_neg(x: f64) -> f64 {
    if x >= 0.0 {
        return 1.0;
    }
    if x < -40.0 {
        return 0.0;
    }
    let mut y = x;
    let mut squarings = 0;
    while y < -0.125 {
        y /= 2.0;
        squarings += 1;
    }
    let mut term = 1.0;
    let mut sum = 1.0;
    for k in 1..=10 {
        term *= y / k as f64;
        sum += term;
    }
    for _ in 0..squarings {
        sum *= sum;
    }
    sum
}

/// Equal-tempered frequency of a MIDI note (A4 = 69 = 440 Hz), from exact semitone ratios.
fn freq(midi: i32) -> f64 {
    const SEMITONE: [f64; 12] = [
        1.0,
        1.059_463_094_359_295_3,
        1.122_462_048_309_373,
        1.189_207_115_002_721,
        1.259_921_049_894_873_2,
        1.334_839_854_170_034_4,
        std::f64::consts::SQRT_2,
        1.498_307_076_876_681_5,
        1.587_401_051_968_199_4,
        1.681_792_830_507_429,
        1.781_797_436_280_678_5,
        1.887_748_625_363_386_8,
    ];
    let n = midi - 69;
    let octave = n.div_euclid(12);
    let mut f = 440.0 * SEMITONE[n.rem_euclid(12) as usize];
    for _ in 0..octave.max(0) {
        f *= 2.0;
    }
    for _ in 0..(-octave).max(0) {
        f /= 2.0;
    }
    f
}

#[derive(Clone, Copy)]
enum Voice {
    Pad,
    Bass,
    Bell,
    Lead,
}

struct Note {
    /// Start and length in beats from the top of the loop.
    start: f64,
    beats: f64,
    midi: i32,
    velocity: f64,
    voice: Voice,
}

impl Voice {
    /// Harmonic amplitudes (1st, 2nd, 3rd, 4th partial): a few, gently falling, for warmth.
    fn partials(self) -> &'static [f64] {
        match self {
            Voice::Pad => &[1.0, 0.32, 0.14, 0.05],
            Voice::Bass => &[1.0, 0.45, 0.12],
            Voice::Bell => &[1.0, 0.22, 0.0, 0.07],
            Voice::Lead => &[1.0, 0.18, 0.07, 0.03],
        }
    }

    fn level(self) -> f64 {
        match self {
            Voice::Pad => 0.075,
            Voice::Bass => 0.20,
            Voice::Bell => 0.075,
            Voice::Lead => 0.15,
        }
    }

    /// Seconds the note rings after its written length.
    fn release(self) -> f64 {
        match self {
            Voice::Pad => 0.9,
            Voice::Bass => 0.25,
            Voice::Bell => 0.9,
            Voice::Lead => 0.3,
        }
    }

    /// Amplitude envelope at `t` seconds into a note held for `held` seconds.
    fn envelope(self, t: f64, held: f64) -> f64 {
        let rise = |t: f64, attack: f64| {
            if t >= attack {
                1.0
            } else {
                // Raised cosine: no click, no corner.
                0.5 - 0.5 * sin(PI * t / attack + PI / 2.0)
            }
        };
        let body = match self {
            Voice::Pad => rise(t, 0.7),
            Voice::Bass => rise(t, 0.012) * (0.55 + 0.45 * exp_neg(-t / 0.35)),
            Voice::Bell => rise(t, 0.004) * exp_neg(-t / 0.45),
            Voice::Lead => rise(t, 0.07) * (0.85 + 0.15 * exp_neg(-t / 0.3)),
        };
        if t <= held {
            body
        } else {
            // Release: a cosine fade to zero over the voice's release time.
            let r = (t - held) / self.release();
            if r >= 1.0 {
                0.0
            } else {
                body * (0.5 + 0.5 * sin(PI * r + PI / 2.0))
            }
        }
    }
}

fn score() -> Vec<Note> {
    // I–vi–IV–V in F, voiced for smooth leading: roots for the bass, close triads for the pad,
    // root-third-fifth-octave for the arpeggio.
    const BASS: [i32; 4] = [41, 38, 46, 48]; // F2 D2 B♭2 C3
    const PAD: [[i32; 3]; 4] = [[57, 60, 65], [57, 62, 65], [58, 62, 65], [55, 60, 64]];
    const ARP: [[i32; 4]; 4] = [
        [65, 69, 72, 77],
        [62, 65, 69, 74],
        [62, 65, 70, 74],
        [60, 64, 67, 72],
    ];
    const ARP_PATTERN: [usize; 8] = [0, 1, 2, 1, 3, 2, 1, 2];
    // The melody of passes two and three: (beat in pass, beats, MIDI note).
    const MELODY: [(f64, f64, i32); 26] = [
        // pass two: a question...
        (0.0, 1.5, 72),
        (1.5, 0.5, 69),
        (2.0, 1.0, 72),
        (3.0, 1.0, 74),
        (4.0, 2.0, 77),
        (6.0, 1.0, 76),
        (7.0, 1.0, 74),
        (8.0, 1.5, 74),
        (9.5, 0.5, 72),
        (10.0, 1.0, 70),
        (11.0, 1.0, 74),
        (12.0, 3.0, 72),
        // ...pass three: an answer that climbs and settles on the leading chord.
        (16.0, 1.0, 77),
        (17.0, 0.5, 76),
        (17.5, 0.5, 74),
        (18.0, 2.0, 72),
        (20.0, 1.0, 74),
        (21.0, 1.0, 77),
        (22.0, 2.0, 81),
        (24.0, 1.0, 79),
        (25.0, 1.0, 77),
        (26.0, 1.0, 74),
        (27.0, 1.0, 77),
        (28.0, 2.0, 76),
        (30.0, 1.0, 79),
        (31.0, 1.0, 76),
    ];

    let mut notes = Vec::new();
    for bar in 0..BARS {
        let chord = bar % 4;
        let pass = bar / 4;
        let b0 = (bar * 4) as f64;
        for &m in &PAD[chord] {
            notes.push(Note {
                start: b0,
                beats: 4.0,
                midi: m,
                velocity: 1.0,
                voice: Voice::Pad,
            });
        }
        for (beat, vel) in [(0.0, 1.0), (2.0, 0.8)] {
            notes.push(Note {
                start: b0 + beat,
                beats: 1.75,
                midi: BASS[chord],
                velocity: vel,
                voice: Voice::Bass,
            });
        }
        // The arpeggio steps back a little while the melody sings.
        let arp_level = if pass == 0 { 1.0 } else { 0.6 };
        for (i, &idx) in ARP_PATTERN.iter().enumerate() {
            let accent = if i % 2 == 0 { 1.0 } else { 0.75 };
            notes.push(Note {
                start: b0 + i as f64 * 0.5,
                beats: 0.5,
                midi: ARP[chord][idx],
                velocity: arp_level * accent,
                voice: Voice::Bell,
            });
        }
    }
    for &(beat, beats, midi) in &MELODY {
        notes.push(Note {
            start: 16.0 + beat,
            beats,
            midi,
            velocity: if beats >= 2.0 { 1.0 } else { 0.9 },
            voice: Voice::Lead,
        });
    }
    notes
}

/// Σ a_k·sin(k·φ), with the multiples from the Chebyshev recurrence
/// sin((k+1)φ) = 2·cos φ·sin kφ − sin((k−1)φ): two polynomial evaluations per call, not one per
/// partial.
fn harmonics(phase: f64, partials: &[f64]) -> f64 {
    let s1 = sin(phase);
    let two_c = 2.0 * sin(phase + PI / 2.0);
    let (mut prev, mut cur) = (0.0, s1);
    let mut sum = 0.0;
    for &a in partials {
        sum += a * cur;
        (prev, cur) = (cur, two_c * cur - prev);
    }
    sum
}

/// Render the loop: `LEN` samples at [`RATE`], peak at −3 dBFS.
pub fn render() -> Vec<i16> {
    let mut mix = vec![0f64; LEN];
    let dt = 1.0 / RATE as f64;
    for note in score() {
        let f = freq(note.midi);
        let start = (note.start * BEAT as f64) as usize;
        let held = note.beats * BEAT as f64 * dt;
        let total = ((held + note.voice.release()) * RATE as f64) as usize;
        let partials = note.voice.partials();
        let amp = note.voice.level() * note.velocity;
        for i in 0..total {
            let t = i as f64 * dt;
            let env = note.voice.envelope(t, held);
            if env == 0.0 {
                continue;
            }
            // The phase of the fundamental; the lead gets a delayed, gentle vibrato and the pad a
            // slow chorus from a second, slightly detuned copy.
            let phase = match note.voice {
                Voice::Lead => {
                    let depth = if t < 0.25 { t / 0.25 } else { 1.0 };
                    TAU * f * t + depth * 0.0035 * f / 5.0 * sin(TAU * 5.0 * t)
                }
                _ => TAU * f * t,
            };
            let mut s = harmonics(phase, partials);
            if let Voice::Pad = note.voice {
                s = (s + 0.6 * harmonics(TAU * f * 1.003 * t, partials)) / 1.6;
            }
            // Circular buffer: tails past the end ring on at the start.
            mix[(start + i) % LEN] += amp * env * s;
        }
    }
    let peak = mix.iter().fold(0f64, |m, &s| m.max(s.abs()));
    let scale = if peak > 0.0 { 0.707 / peak } else { 0.0 };
    mix.iter()
        .map(|&s| {
            let v = s * scale * 32767.0;
            let r = if v >= 0.0 {
                (v + 0.5).floor()
            } else {
                (v - 0.5).ceil()
            };
            r.clamp(-32768.0, 32767.0) as i16
        })
        .collect()
}

/// The loop as a mono 8-bit µ-law WAV at [`RATE`] (what `core/assets/default_music.wav` holds).
pub fn render_wav() -> Vec<u8> {
    mulaw_wav(&render(), RATE)
}

/// A mono µ-law WAV file (format tag 7, 18-byte `fmt ` chunk, `fact` chunk) of 16-bit samples.
pub fn mulaw_wav(samples: &[i16], rate: u32) -> Vec<u8> {
    let n = samples.len() as u32;
    let mut w = Vec::with_capacity(58 + samples.len() + 1);
    w.extend_from_slice(b"RIFF");
    let riff_len = 4 + (8 + 18) + (8 + 4) + 8 + n + (n & 1);
    w.extend_from_slice(&riff_len.to_le_bytes());
    w.extend_from_slice(b"WAVE");
    w.extend_from_slice(b"fmt ");
    w.extend_from_slice(&18u32.to_le_bytes());
    w.extend_from_slice(&7u16.to_le_bytes()); // WAVE_FORMAT_MULAW
    w.extend_from_slice(&1u16.to_le_bytes()); // mono
    w.extend_from_slice(&rate.to_le_bytes());
    w.extend_from_slice(&rate.to_le_bytes()); // bytes per second
    w.extend_from_slice(&1u16.to_le_bytes()); // block align
    w.extend_from_slice(&8u16.to_le_bytes()); // bits per sample
    w.extend_from_slice(&0u16.to_le_bytes()); // no extension
    w.extend_from_slice(b"fact");
    w.extend_from_slice(&4u32.to_le_bytes());
    w.extend_from_slice(&n.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&n.to_le_bytes());
    w.extend(samples.iter().map(|&s| linear_to_ulaw(s)));
    if n & 1 == 1 {
        w.push(0); // RIFF chunks are word-aligned
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polynomial_sine_and_exp_are_accurate() {
        for i in -2000..2000 {
            let x = i as f64 * 0.0123;
            assert!((sin(x) - x.sin()).abs() < 1e-8, "sin({x})");
        }
        for i in 0..400 {
            let x = -(i as f64) * 0.05;
            assert!((exp_neg(x) - x.exp()).abs() < 1e-9, "exp({x})");
        }
        assert!((freq(69) - 440.0).abs() < 1e-9);
        assert!((freq(60) - 261.625_565_300_598_6).abs() < 1e-6);
    }
}
