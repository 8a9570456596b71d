//! The fuzzer at length: `FUZZ_DATAGRAMS` inputs (default 10,000,000) from seed `FUZZ_SEED`
//! through one server, every invariant checked throughout.
//!
//! `cargo bench -p onhold-sim --bench fuzz`
//! `FUZZ_DATAGRAMS=1000000 FUZZ_SEED=7 cargo bench -p onhold-sim --bench fuzz`
//!
//! It goes on after a violation (not after a panic) and, at the end, prints the first of each
//! kind and writes its inputs, in the format of `sim/tests/fuzz-regressions/`, into the
//! directory `FUZZ_OUT` (default `target/`) as `fuzz-failure-<seed>-<n>.txt`, and exits 1.

use onhold_sim::fuzz::{self, FuzzConfig};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| {
            let v = v.replace('_', "");
            match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16).ok(),
                None => v.parse().ok(),
            }
        })
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this as a smoke test.
    let benching = std::env::args().any(|a| a == "--bench");
    let defaults = FuzzConfig::default();
    let cfg = FuzzConfig {
        datagrams: env_or("FUZZ_DATAGRAMS", if benching { 10_000_000 } else { 20_000 }),
        seed: env_or("FUZZ_SEED", defaults.seed),
        keep_going: true,
        ..defaults
    };
    let out_dir = std::env::var("FUZZ_OUT")
        .unwrap_or_else(|_| format!("{}/../target", env!("CARGO_MANIFEST_DIR")));
    let save = |n: usize, failure: &fuzz::FuzzFailure| {
        let path = format!("{out_dir}/fuzz-failure-{:#x}-{n}.txt", cfg.seed);
        match std::fs::write(&path, failure.script()) {
            Ok(()) => eprintln!("{failure}\ninputs written to {path}\n"),
            Err(e) => eprintln!("{failure}\ncould not write {path}: {e}\n"),
        }
    };
    match fuzz::run(&cfg) {
        Ok(report) => {
            for (n, f) in report.failures.iter().enumerate() {
                save(n, f);
            }
            println!("{report}");
            if !report.failures.is_empty() {
                std::process::exit(1);
            }
        }
        Err(failure) => {
            save(0, &failure);
            std::process::exit(1);
        }
    }
}
