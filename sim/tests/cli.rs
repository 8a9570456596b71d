//! The binary: exit codes and output files.

use std::process::Command;

fn sim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_onhold-sim"))
}

#[test]
fn replay_writes_json_and_pcap_and_exits_zero_on_pass() {
    let dir = std::env::temp_dir().join(format!("onhold-sim-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let capture = onhold_sim::synthetic_captures_dir().join("dp750-b-held-party.pcap");
    let (json, pcap) = (dir.join("run.json"), dir.join("run.pcap"));
    let out = sim()
        .args([
            "replay",
            capture.to_str().unwrap(),
            "--seed",
            "7",
            "--loss",
            "1%",
            "--jitter",
            "5ms",
            "--delay",
            "20ms",
            "--dup",
            "0.1%",
            "--reorder",
            "0.5%",
        ])
        .arg("--json")
        .arg(&json)
        .arg("--pcap-out")
        .arg(&pcap)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("PASS dp750-b-held-party.pcap"), "{stdout}");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v[0]["seed"], 7);
    assert_eq!(v[0]["pass"], true);
    assert!(!onhold_sim::pcap::read_file(&pcap).unwrap().is_empty());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn unreadable_input_is_an_error_not_a_pass() {
    let out = sim()
        .args(["replay", "/nonexistent/capture.pcap"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/capture.pcap"));
}

#[test]
fn two_processes_same_seed_same_json() {
    let capture = onhold_sim::synthetic_captures_dir().join("dp750-hold-unhold.pcap");
    let dir = std::env::temp_dir().join(format!("onhold-sim-det-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |name: &str| {
        let out = dir.join(name);
        let status = sim()
            .args([
                "replay",
                capture.to_str().unwrap(),
                "--seed",
                "5",
                "--loss",
                "5%",
                "--reorder",
                "1%",
                "--jitter",
                "20ms",
            ])
            .arg("--json")
            .arg(&out)
            .output()
            .unwrap();
        assert!(status.status.success());
        (std::fs::read(&out).unwrap(), status.stdout)
    };
    assert_eq!(run("a.json"), run("b.json"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn generate_writes_under_the_working_directory_by_default() {
    let dir = std::env::temp_dir().join(format!("onhold-sim-gen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = sim().arg("generate").current_dir(&dir).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = onhold_sim::captures_in(&dir.join("tests/captures")).unwrap();
    assert_eq!(written.len(), onhold_sim::generate::all().len());
    std::fs::remove_dir_all(&dir).ok();
}
