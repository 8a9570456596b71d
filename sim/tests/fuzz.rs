//! The fuzzer, briefly: a run from a fixed seed holds every invariant and reaches every part
//! of the server it is meant to reach; every saved regression holds them too (or, for an open
//! core bug in `fuzz::KNOWN`, still breaks the one it names).
//!
//! `cargo bench -p onhold-sim --bench fuzz` runs it at length.

use std::path::{Path, PathBuf};

use onhold_sim::fuzz::{self, FuzzConfig};

#[test]
fn a_short_run_holds_every_invariant_and_reaches_everywhere() {
    let cfg = FuzzConfig {
        datagrams: 80_000,
        ..FuzzConfig::default()
    };
    let report = fuzz::run(&cfg).unwrap_or_else(|f| panic!("{f}\n\n{}", f.script()));
    eprintln!("{report}");
    // The seeds: RFC 4475's 49 messages, the captures' SIP and the generated requests.
    assert!(report.seeds >= 60, "{} seeds", report.seeds);
    // Calls really happen, from the fuzzer's phones and from damaged INVITEs, and media flows.
    assert!(report.dialogs_established > 1_000, "{report}");
    assert!(
        report.calls_started > report.dialogs_established,
        "{report}"
    );
    assert!(report.rtp_packets > 100_000, "{report}");
    assert!(report.rtcp_packets > 100, "{report}");
    // Many kinds of answer: success, every class of refusal, and the server's own requests.
    assert!(report.codes.len() >= 15, "{report}");
    for code in [
        100, 200, 400, 405, 416, 420, 422, 481, 482, 483, 487, 488, 500, 503, 505, 513,
    ] {
        assert!(report.codes.contains_key(&code), "no {code}: {report}");
    }
    assert!(report.kinds.contains("BYE"), "{report}");
    // Every defence was tried: the ACL, each limit's 503, hostile in-dialog requests, media
    // addresses refused.
    let s = &report.stats;
    assert!(s.denied > 1_000, "{report}");
    assert!(s.refused_rate > 0, "{report}");
    assert!(s.refused_transactions > 0, "{report}");
    assert!(s.refused_full > 0, "{report}");
    assert!(report.max_occupancy.calls == 1_000, "{report}");
    assert!(
        report.hostile > 1_500 && s.foreign_in_dialog > 100,
        "{report}"
    );
    assert!(s.media_refused > 20 && s.oversized > 50, "{report}");
}

#[test]
fn the_same_seed_makes_the_same_run() {
    let cfg = FuzzConfig {
        datagrams: 5_000,
        seed: 7,
        ..FuzzConfig::default()
    };
    let (a, b) = (fuzz::run(&cfg), fuzz::run(&cfg));
    let (a, b) = (a.expect("run"), b.expect("run"));
    assert_eq!(
        (a.codes, a.rtp_packets, a.calls_started, a.stats),
        (b.codes, b.rtp_packets, b.calls_started, b.stats)
    );
}

fn regressions() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/fuzz-regressions")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_saved_regression_holds_the_invariants() {
    let files = regressions();
    assert!(!files.is_empty(), "no regressions found");
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let known = fuzz::KNOWN.iter().find(|k| k.regression == name);
        match (fuzz::replay(&text), known) {
            (Ok(_), None) => {}
            (Err(e), None) => panic!("{name}: {e}"),
            (Err(e), Some(k)) => {
                assert!(
                    e.contains(k.pattern),
                    "{name} breaks another invariant than the known bug's ({}): {e}",
                    k.pattern
                );
                eprintln!("{name}: open core bug still there: {e}");
            }
            (Ok(_), Some(k)) => panic!(
                "{name} now holds every invariant: the bug `{}` is fixed; remove it from fuzz::KNOWN",
                k.pattern
            ),
        }
    }
    for k in fuzz::KNOWN {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fuzz-regressions")
            .join(k.regression);
        assert!(
            path.exists(),
            "fuzz::KNOWN names {}, which is missing",
            k.regression
        );
    }
}

/// The replay checks what the fuzzer checks: a datagram marked hostile that ends a call is
/// caught.
#[test]
fn a_replay_catches_a_violation() {
    let sdp = "v=0\r\no=- 1 1 IN IP4 192.168.1.50\r\ns=-\r\nc=IN IP4 192.168.1.50\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0\r\n";
    let invite = format!(
        "INVITE sip:moh@192.168.1.100 SIP/2.0\r\nVia: SIP/2.0/UDP 192.168.1.50;branch=z9hG4bKfz1\r\nFrom: <sip:a@192.168.1.50>;tag=fza\r\nTo: <sip:moh@192.168.1.100>\r\nCall-ID: fz-replay\r\nCSeq: 1 INVITE\r\nContact: <sip:a@192.168.1.50>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    let invite = invite.as_str();
    let to_tag = |req: &str| {
        req.replace(
            "To: <sip:moh@192.168.1.100>",
            "To: <sip:moh@192.168.1.100>;tag=0123456789abcdef",
        )
    };
    let ack = to_tag(invite)
        .replace("INVITE sip", "ACK sip")
        .replace("1 INVITE", "1 ACK")
        .replace("z9hG4bKfz1", "z9hG4bKfz2");
    let bye = to_tag(invite)
        .replace("INVITE sip", "BYE sip")
        .replace("1 INVITE", "2 BYE")
        .replace("z9hG4bKfz1", "z9hG4bKfz3");
    let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    let script = |bye_mark: &str| {
        format!(
            "udp 192.168.1.50:5060 > 192.168.1.100:5060\n  {}\n= 0123456789abcdef\n+20ms\nudp 192.168.1.50:5060 > 192.168.1.100:5060\n  {}\n+100ms\nudp 192.168.1.50:5060 > 192.168.1.100:5060{bye_mark}\n  {}\n",
            hex(invite),
            hex(&ack),
            hex(&bye)
        )
    };
    let fine = fuzz::replay(&script("")).expect("a call and its BYE");
    assert_eq!(fine.calls_started, 1);
    let caught = fuzz::replay(&script(" hostile")).expect_err("a hostile BYE ended the call");
    assert!(
        caught.contains("a hostile request ended a call"),
        "{caught}"
    );
}
