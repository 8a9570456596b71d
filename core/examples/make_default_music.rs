//! Render the built-in hold music to `core/assets/default_music.wav`.
//!
//! `cargo run -p onhold-core --example make_default_music [OUT.wav]`
//!
//! The music is synthesised by `onhold_core::media::synth` (deterministic, no external crates);
//! a test checks that the committed asset equals what this writes, so edit the synthesiser, run
//! this, and commit both.

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let out = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/default_music.wav")
        });
    let wav = onhold_core::media::synth::render_wav();
    std::fs::write(&out, &wav)?;
    println!(
        "wrote {} ({} bytes, {} s at {} Hz, mono µ-law)",
        out.display(),
        wav.len(),
        onhold_core::media::synth::LEN as u32 / onhold_core::media::synth::RATE,
        onhold_core::media::synth::RATE
    );
    Ok(())
}
