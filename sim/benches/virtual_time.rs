//! How much faster than real time the simulator drives the core: N calls held for T of virtual
//! time (default 1,000 × 1 h; goal ≥ 360×). Media is counted, not recorded.
//!
//! `cargo bench -p onhold-sim --bench virtual_time`
//! `ONHOLD_BENCH_CALLS=100 ONHOLD_BENCH_SECS=600 cargo bench -p onhold-sim --bench virtual_time`

use std::time::{Duration, Instant};

use onhold_sim::engine::RunConfig;
use onhold_sim::{generate, judge, pcap, simulate};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this as a smoke test.
    let benching = std::env::args().any(|a| a == "--bench");
    let (calls, secs) = if benching { (1000, 3600) } else { (10, 10) };
    let calls = env_or("ONHOLD_BENCH_CALLS", calls) as usize;
    let secs = env_or("ONHOLD_BENCH_SECS", secs);
    let datagrams = pcap::read_bytes(&generate::load(calls, Duration::from_secs(secs)))
        .expect("generated load");
    let cfg = RunConfig {
        record_media: false,
        tail: Duration::from_secs(5),
        ..RunConfig::default()
    };
    let wall = Instant::now();
    let (trace, caller) = simulate(&datagrams, &cfg);
    let wall = wall.elapsed();
    let virt = trace.end;
    let packets = trace.media_packets;
    let ratio = virt.as_secs_f64() / wall.as_secs_f64();
    let judging = Instant::now();
    let r = judge("load", &cfg, trace, caller.notes);
    let judging = judging.elapsed();
    println!(
        "{calls} calls × {secs} s: virtual {:.1} s, wall {:.2} s, {packets} RTP/RTCP packets ({:.1} M/s wall), virtual/wall = {ratio:.0}× (goal ≥ 360×); SIP verdicts {:.2} s more",
        virt.as_secs_f64(),
        wall.as_secs_f64(),
        packets as f64 / wall.as_secs_f64() / 1e6,
        judging.as_secs_f64()
    );
    let sip_findings = r.findings.len();
    assert_eq!(
        sip_findings,
        0,
        "dialog verdict failed under load: {:?}",
        r.findings.first()
    );
}
