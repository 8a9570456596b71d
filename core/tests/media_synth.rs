//! The committed built-in music is exactly what the synthesiser renders.

use std::sync::OnceLock;

use onhold_core::media::{synth, DEFAULT_MUSIC_WAV};

/// Rendering takes a few seconds in a debug build: do it once for all tests.
fn rendered() -> &'static [i16] {
    static PCM: OnceLock<Vec<i16>> = OnceLock::new();
    PCM.get_or_init(synth::render)
}

#[test]
fn committed_default_music_is_what_the_synthesiser_renders() {
    let wav = synth::mulaw_wav(rendered(), synth::RATE);
    assert_eq!(
        wav.len(),
        DEFAULT_MUSIC_WAV.len(),
        "run `cargo run -p onhold-core --example make_default_music` and commit the asset"
    );
    assert!(
        wav == DEFAULT_MUSIC_WAV,
        "core/assets/default_music.wav is stale: run `cargo run -p onhold-core --example make_default_music`"
    );
    assert!(wav.len() <= 500_000);
}

#[test]
fn the_loop_is_seamless_and_not_clipped() {
    let pcm = rendered();
    assert_eq!(pcm.len(), synth::LEN);
    let peak = pcm.iter().map(|&s| (s as i32).abs()).max().unwrap();
    // Normalised to -3 dBFS: well clear of clipping.
    assert!((23000..=23200).contains(&peak), "peak {peak}");
    // The step across the loop point is no bigger than the steps inside the music.
    let step = |a: i16, b: i16| (a as i32 - b as i32).abs();
    let max_step = pcm.windows(2).map(|w| step(w[0], w[1])).max().unwrap();
    let wrap = step(pcm[pcm.len() - 1], pcm[0]);
    assert!(
        wrap <= max_step / 2,
        "wrap step {wrap}, largest step {max_step}"
    );
    // And the level just before the loop point matches the level just after (no gap, no bump).
    let rms =
        |x: &[i16]| (x.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / x.len() as f64).sqrt();
    let before = rms(&pcm[pcm.len() - 1600..]);
    let after = rms(&pcm[..1600]);
    assert!(before > 1000.0 && after > 1000.0, "{before} {after}");
    assert!((before / after - 1.0).abs() < 0.5, "{before} {after}");
}
