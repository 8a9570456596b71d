//! Many calls at once: every caller gets every packet, in order, on the 20 ms grid.

use std::process::{Command, Stdio};
use std::time::Duration;

use onhold_tests::rtp::{by_ssrc, check_stream};
use onhold_tests::{
    binary, both_runtimes, wait_for, RtpReceiver, Runtime, Server, ServerOptions, Sipp, SippRun,
};

use crate::common::{sent_at, PAYLOAD, SAMPLES, STOP_SLACK};

both_runtimes!(
    fifty_calls_via_probe_no_loss,
    fifty_calls_via_sipp_no_loss,
    twenty_calls_on_a_shared_port
);

const CALLS: u32 = 50;

/// `onhold probe` places 50 DP750 calls for 10 s and judges them: exit 0 and its JSON says no
/// loss and no sequence, timestamp, marker or SSRC errors. (Its `packets_before_ack` is not
/// judged here: the probe stamps the ACK after `send` returns, so under load a packet answering
/// the ACK can be stamped earlier; the SIPp tests check "no RTP before ACK" against SIPp's log.)
fn fifty_calls_via_probe_no_loss(rt: Runtime) {
    let server = Server::start(rt);
    let out_path = std::env::temp_dir().join(format!(
        "onhold-e2e-probe-{}-{}.json",
        std::process::id(),
        rt.bin_name()
    ));
    let mut child = Command::new(binary(Runtime::Smol))
        .args(["probe", &server.uri("moh")])
        .args([
            "--calls",
            &CALLS.to_string(),
            "--rate",
            "50",
            "--duration",
            "10s",
        ])
        .args(["--json", "--timeout", "5s"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn onhold probe");
    let status = wait_for(Duration::from_secs(60), || child.try_wait().ok().flatten());
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("onhold probe still running after 60 s");
    };
    let json = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    assert!(status.success(), "probe exited {status}:\n{json}");
    let report: serde_json::Value =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("probe JSON: {e}\n{json}"));
    let num = |key: &str| -> f64 {
        report[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} is not a number in {json}"))
    };
    assert_eq!(num("calls_ok"), f64::from(CALLS), "{json}");
    for zero in [
        "calls_failed",
        "packets_lost",
        "seq_errors",
        "ts_errors",
        "marker_errors",
        "ssrc_changes",
        "pt_errors",
        "packets_after_bye",
        "misdirected_packets",
    ] {
        assert_eq!(num(zero), 0.0, "{zero} in {json}");
    }
    // 10 s at 20 ms is 500 packets per call.
    let received = num("packets_received");
    assert!(
        received >= f64::from(CALLS) * 500.0 * 0.95,
        "only {received} packets for {CALLS} calls of 10 s: {json}"
    );
}

/// `calls` SIPp calls of 5 s (`long_call.xml`) at `rate` a second, all sending RTP to `rx`;
/// SIPp must succeed. The run, once the last call's media has had time to stop, and when the
/// last BYE left.
fn long_calls(
    server: &Server,
    rx: &RtpReceiver,
    calls: u32,
    rate: u32,
) -> (SippRun, std::time::SystemTime) {
    let run = Sipp::new("long_call.xml", server.sip)
        .set("rtp_port", rx.port())
        .calls(calls, calls)
        .rate(rate)
        .run();
    run.assert_success();
    std::thread::sleep(STOP_SLACK + Duration::from_millis(100));
    let last_bye = run
        .messages
        .iter()
        .filter(|m| m.sent && m.method() == Some("BYE"))
        .map(|m| m.wall)
        .max()
        .expect("BYEs sent");
    (run, last_bye)
}

/// The same load judged by our own receiver: 50 SIPp calls (5 s each) all send RTP to one
/// port; streams are told apart by SSRC.
fn fifty_calls_via_sipp_no_loss(rt: Runtime) {
    let server = Server::start(rt);
    let rx = RtpReceiver::bind();
    let (run, last_bye) = long_calls(&server, &rx, CALLS, 100);
    assert_eq!(
        run.messages
            .iter()
            .filter(|m| m.sent && m.method() == Some("BYE"))
            .count(),
        CALLS as usize
    );
    let first_ack = sent_at(&run, "ACK");
    let packets = rx.packets();
    let streams = by_ssrc(&packets);
    assert_eq!(streams.len(), CALLS as usize, "one SSRC per call");
    let mut on_time = Vec::new();
    for (ssrc, s) in &streams {
        let r = check_stream(s, SAMPLES, PAYLOAD)
            .unwrap_or_else(|e| panic!("call with SSRC {ssrc:#x}: {e}"));
        assert_eq!(
            r.markers,
            vec![0],
            "SSRC {ssrc:#x}: marker only on the first packet"
        );
        // 5 s at 20 ms is 250 packets.
        assert!(
            (230..=255).contains(&r.packets),
            "SSRC {ssrc:#x}: {} packets in a 5 s call",
            r.packets
        );
        on_time.push(r.on_time);
    }
    assert!(packets
        .iter()
        .all(|p| p.wall + Duration::from_millis(5) >= first_ack));
    assert!(
        packets.iter().all(|p| p.wall <= last_bye + STOP_SLACK),
        "RTP after the last BYE"
    );
    let mean = on_time.iter().sum::<f64>() / on_time.len() as f64;
    assert!(mean >= 0.95, "mean on-time fraction {mean:.3}");
}

/// `--rtp-shared-port`: twenty SIPp calls all get their RTP from the one shared port (the
/// answer names it, every packet comes from it), sent by two media threads, with no loss and
/// on the grid, and none after their BYE.
fn twenty_calls_on_a_shared_port(rt: Runtime) {
    const SHARED_CALLS: u32 = 20;
    let (shared, _) = onhold_tests::ports::rtp_range();
    let opts = ServerOptions::default()
        .arg(format!("--rtp-shared-port={shared}"))
        .arg("--media-threads=2");
    let server = Server::start_with(rt, opts);
    let rx = RtpReceiver::bind();
    let (run, last_bye) = long_calls(&server, &rx, SHARED_CALLS, 50);
    let answers: Vec<_> = run
        .messages
        .iter()
        .filter(|m| !m.sent && m.text.starts_with("SIP/2.0 200") && m.text.contains("m=audio"))
        .collect();
    assert_eq!(answers.len(), SHARED_CALLS as usize);
    for a in answers {
        assert!(
            a.text.contains(&format!("m=audio {shared} ")),
            "the answer names the shared port:\n{}",
            a.text
        );
    }
    let packets = rx.packets();
    assert!(
        packets.iter().all(|p| p.from.port() == shared),
        "every packet from the shared port {shared}"
    );
    let streams = by_ssrc(&packets);
    assert_eq!(streams.len(), SHARED_CALLS as usize, "one SSRC per call");
    for (ssrc, s) in &streams {
        let r = check_stream(s, SAMPLES, PAYLOAD)
            .unwrap_or_else(|e| panic!("call with SSRC {ssrc:#x}: {e}"));
        assert!(
            (230..=255).contains(&r.packets),
            "SSRC {ssrc:#x}: {} packets in a 5 s call",
            r.packets
        );
    }
    assert!(
        packets.iter().all(|p| p.wall <= last_bye + STOP_SLACK),
        "RTP after the last BYE"
    );
}
