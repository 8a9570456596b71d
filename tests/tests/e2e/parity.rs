//! Both runtimes drive the same core, so the same caller must see the same SIP exchange from
//! either: same messages, same order, same CSeqs, same headers in the same order, same SDP
//! choices (tags, branches, ports and times aside).

use onhold_tests::{RtpReceiver, Runtime, Server, Sipp, SippRun};

const SCENARIOS: [&str; 6] = [
    "dp750_own_address.xml",
    "dp750_held_party.xml",
    "dp750_late_offer.xml",
    "hold_unhold.xml",
    "cancel.xml",
    "options.xml",
];

fn run(scenario: &str, server: &Server, rx: &RtpReceiver) -> Sipp {
    let mut s = Sipp::new(scenario, server.sip);
    if scenario != "options.xml" {
        s = s.set("rtp_port", rx.port());
    }
    if scenario == "dp750_held_party.xml" {
        s = s.set("held_ip", "127.0.0.1");
    }
    s
}

/// The transcript, each message the server sent followed by its header names.
fn shape(run: &SippRun) -> String {
    run.messages
        .iter()
        .map(|m| {
            if m.sent {
                m.summary()
            } else {
                format!("{}\n    [{}]", m.summary(), m.header_names().join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn same_sip_sequence_on_both_runtimes() {
    let smol = Server::start(Runtime::Smol);
    let mio = Server::start(Runtime::Mio);
    let (rx_smol, rx_mio) = (RtpReceiver::bind(), RtpReceiver::bind());
    let mut differences = Vec::new();
    for scenario in SCENARIOS {
        // Both at once: half the wall time, and neither run has the machine to itself.
        let a = run(scenario, &smol, &rx_smol).spawn();
        let b = run(scenario, &mio, &rx_mio).spawn();
        let (a, b): (SippRun, SippRun) = (a.wait(), b.wait());
        a.assert_success();
        b.assert_success();
        let (ta, tb) = (shape(&a), shape(&b));
        assert!(!ta.is_empty(), "{scenario}: no messages logged");
        if ta != tb {
            differences.push(format!(
                "{scenario}:\n--- onhold ---\n{ta}\n--- onhold-mio ---\n{tb}"
            ));
        }
    }
    // The server's own requests: SIGTERM makes each side BYE its call.
    let a = run("wait_for_bye.xml", &smol, &rx_smol).spawn();
    let b = run("wait_for_bye.xml", &mio, &rx_mio).spawn();
    for (server, rx) in [(&smol, &rx_smol), (&mio, &rx_mio)] {
        let n = rx.count();
        assert!(
            rx.wait_packets(n + 5, std::time::Duration::from_secs(5)),
            "{}: no media for the call to hang up",
            server.runtime.bin_name()
        );
        server.signal(libc::SIGTERM);
    }
    let (a, b) = (a.wait(), b.wait());
    a.assert_success();
    b.assert_success();
    let (ta, tb) = (shape(&a), shape(&b));
    if ta != tb {
        differences.push(format!(
            "wait_for_bye.xml + SIGTERM:\n--- onhold ---\n{ta}\n--- onhold-mio ---\n{tb}"
        ));
    }
    assert!(
        differences.is_empty(),
        "the runtimes answered differently:\n{}",
        differences.join("\n\n")
    );
}
