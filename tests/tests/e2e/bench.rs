//! `onhold bench` against `onhold-mio` and the floor, small and bounded (20 calls held 2 s):
//! the report is JSON that parses into its rows, every call is set up and torn down, the
//! receiver sees every stream whole, and the server stops each call's RTP when it answers the
//! BYE. The figures themselves (pacing, CPU, memory) are printed, not judged: they belong to
//! the machine.

use std::process::Command;

use onhold_probe::bench::Row;
use onhold_tests::{binary, Runtime, TempDir};

const CALLS: usize = 20;

#[test]
fn bench_loads_onhold_mio_beside_the_floor_and_reports_every_call() {
    let dir = TempDir::new("bench");
    let svg = dir.join("bench.svg");
    let out = Command::new(binary(Runtime::Smol))
        .arg("bench")
        .arg("--server")
        .arg(binary(Runtime::Mio))
        .args(["--floor", "--calls", &CALLS.to_string(), "--hold", "2s"])
        .args(["--cps", "50", "--json", "--svg"])
        .arg(&svg)
        .arg("--work-dir")
        .arg(dir.path())
        .output()
        .expect("run onhold bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "onhold bench failed: {stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    let rows: Vec<Row> = serde_json::from_value(report["rows"].clone()).expect("rows");
    eprintln!("{stderr}{rows:#?}");
    assert_eq!(rows.len(), 2, "one row per sender");

    let floor = &rows[0];
    assert_eq!(floor.sender, "floor");
    assert_eq!(
        (floor.calls, floor.up, floor.streams),
        (CALLS, CALLS, CALLS)
    );
    assert_eq!(floor.lost, 0, "the receiver keeps up with the floor");
    assert!(floor.dev_p99_ms.is_some() && floor.cpu_ms_per_stream_s.is_some());

    let mio = &rows[1];
    assert_eq!(mio.sender, "onhold-mio");
    assert_eq!((mio.calls, mio.up, mio.streams), (CALLS, CALLS, CALLS));
    assert_eq!(mio.refused_503 + mio.failed_other + mio.timed_out, 0);
    assert_eq!(mio.bye_unanswered, 0);
    assert_eq!(mio.lost, 0);
    assert_eq!(mio.rtp_after_bye, 0, "RTP after the BYE was answered");
    assert!(mio.setup_p99_ms.is_some() && mio.cpu_ms_per_stream_s.is_some());
    assert!(mio.rss_per_call_kib.is_some());
    // Two seconds of 50 packets a second per call, at the least.
    assert!(
        mio.packets >= (CALLS * 100) as u64,
        "{} packets",
        mio.packets
    );

    let plot = std::fs::read_to_string(&svg).expect("the plot");
    assert!(plot.starts_with("<svg") && plot.contains("onhold-mio") && plot.contains("floor"));
}
