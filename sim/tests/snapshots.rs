//! The text report of every synthetic DP750 capture on a clean link, as a readable exchange:
//! `+0.000000 → INVITE …` / `+0.000000 ← 100 Trying …`. A change in what the core sends shows up
//! here line by line.

use onhold_sim::engine::RunConfig;
use onhold_sim::{generate, pcap, replay, report};

#[test]
fn synthetic_capture_reports() {
    for (name, bytes) in generate::all() {
        let r = replay(
            &name,
            &pcap::read_bytes(&bytes).unwrap(),
            &RunConfig::default(),
        );
        let snap = name.trim_end_matches(".pcap").to_string();
        insta::assert_snapshot!(snap, report::text(&r));
    }
}
