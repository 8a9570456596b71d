//! Same capture, same link settings, same seed ⇒ the same report, byte for byte.

use std::time::Duration;

use onhold_sim::engine::RunConfig;
use onhold_sim::replay::{CallerPlan, RtpStream};
use onhold_sim::{fault_profiles, generate, pcap, replay, report, wire_pcap};

fn capture(name: &str) -> Vec<pcap::Datagram> {
    let (_, bytes) = generate::all()
        .into_iter()
        .find(|(n, _)| n == name)
        .expect("synthetic capture");
    pcap::read_bytes(&bytes).expect("readable")
}

#[test]
fn same_seed_same_report_bytes() {
    let d = capture("dp750-hold-unhold.pcap");
    let mut runs = vec![RunConfig::default()];
    runs.extend(fault_profiles());
    for cfg in runs {
        let a = replay("hold", &d, &cfg);
        let b = replay("hold", &d, &cfg);
        assert_eq!(
            report::text(&a),
            report::text(&b),
            "text report differs for {}",
            cfg.faults.describe()
        );
        assert_eq!(
            report::json(&a),
            report::json(&b),
            "JSON report differs for {}",
            cfg.faults.describe()
        );
        assert_eq!(
            wire_pcap(&a.trace),
            wire_pcap(&b.trace),
            "pcap output differs for {}",
            cfg.faults.describe()
        );
    }
}

/// The caller's own RTP (over the faulty link too) and its vanishing are part of the input.
#[test]
fn a_caller_plan_replays_the_same() {
    let d = capture("dp750-behind-nat.pcap");
    let plan = CallerPlan {
        rtp: vec![RtpStream {
            from: "203.0.113.5:40000".parse().unwrap(),
            start: Duration::from_secs(1),
            stop: Duration::from_secs(8),
            payload_type: 0,
        }],
        gone_at: Some(Duration::from_secs(9)),
    };
    let mut runs = vec![RunConfig::default()];
    runs.extend(fault_profiles());
    for cfg in runs {
        let cfg = RunConfig {
            caller: plan.clone(),
            ..cfg
        };
        let a = replay("nat", &d, &cfg);
        let b = replay("nat", &d, &cfg);
        assert_eq!(report::text(&a), report::text(&b));
        assert_eq!(report::json(&a), report::json(&b));
        assert_eq!(wire_pcap(&a.trace), wire_pcap(&b.trace));
    }
}

#[test]
fn the_seed_drives_the_faults() {
    let d = capture("dp750-a-own-address-bye-30s.pcap");
    let profile = fault_profiles().pop().expect("a harsh profile");
    let a = replay("a", &d, &profile);
    let b = replay(
        "a",
        &d,
        &RunConfig {
            seed: profile.seed + 1,
            ..profile
        },
    );
    assert_ne!(
        report::text(&a),
        report::text(&b),
        "a different seed should change the faulty run"
    );
}
