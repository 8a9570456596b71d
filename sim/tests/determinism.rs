//! Same capture, same link settings, same seed ⇒ the same report, byte for byte.

use onhold_sim::engine::RunConfig;
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
