//! Process behaviour: signals, and refusing to start on bad configuration or music.

use std::time::{Duration, Instant};

use onhold_tests::caller::{header, Caller};
use onhold_tests::rtp::{check_stream, zero_crossings_per_second};
use onhold_tests::server::{options, run_to_exit};
use onhold_tests::{
    both_runtimes, wav, RtpReceiver, Runtime, Server, ServerOptions, Sipp, TempDir,
};

use crate::common::{PAYLOAD, SAMPLES, STOP_SLACK};

both_runtimes!(
    sigterm_byes_every_call_and_exits_0,
    sigterm_with_unanswered_bye_drains_for_the_grace_then_exits_0,
    sighup_swaps_music_without_dropping_the_call,
    unknown_config_key_exits_2_naming_it,
    out_of_range_ptime_exits_2_naming_it,
    unreadable_music_exits_naming_the_file,
    missing_music_exits_naming_the_file,
);

fn sigterm_byes_every_call_and_exits_0(rt: Runtime) {
    const CALLS: u32 = 3;
    let mut server = Server::start_with(
        rt,
        ServerOptions::default().arg("--shutdown-grace").arg("3s"),
    );
    let rx = RtpReceiver::bind();
    let sipp = Sipp::new("wait_for_bye.xml", server.sip)
        .set("rtp_port", rx.port())
        .calls(CALLS, CALLS)
        .timeout(Duration::from_secs(20))
        .spawn();
    assert!(
        rx.wait_streams(CALLS as usize, Duration::from_secs(10)),
        "the {CALLS} calls did not all get media"
    );
    let signalled = Instant::now();
    server.signal(libc::SIGTERM);
    let status = server
        .wait_exit(Duration::from_secs(6))
        .expect("server still running 6 s after SIGTERM");
    let took = signalled.elapsed();
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status}"
    );
    let run = sipp.wait();
    run.assert_success();
    let byes = run
        .messages
        .iter()
        .filter(|m| !m.sent && m.method() == Some("BYE"))
        .count();
    assert_eq!(byes, CALLS as usize, "BYEs received:\n{}", run.transcript());
    let answered = run
        .messages
        .iter()
        .filter(|m| {
            m.sent
                && m.status() == Some(200)
                && m.header("CSeq").is_some_and(|c| c.ends_with("BYE"))
        })
        .count();
    assert_eq!(answered, CALLS as usize);
    // Every BYE was answered at once, so shutdown need not wait out the 3 s grace.
    assert!(
        took < Duration::from_secs(3),
        "exit took {took:?} though every BYE was answered"
    );
    let after = rx.count();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(rx.count(), after, "RTP after the server exited");
}

/// A caller that never answers the BYE: the server retransmits it (RFC 3261 §17.1.2, T1
/// doubling), answers OPTIONS with 503 while draining, stops the media at once, and gives up
/// after `--shutdown-grace` with exit 0.
fn sigterm_with_unanswered_bye_drains_for_the_grace_then_exits_0(rt: Runtime) {
    let grace = Duration::from_secs(2);
    let mut server = Server::start_with(
        rt,
        ServerOptions::default().arg("--shutdown-grace").arg("2s"),
    );
    let rx = RtpReceiver::bind();
    let caller = Caller::call(server.sip, rx.addr());
    assert!(rx.wait_packets(10, Duration::from_secs(5)), "no music");
    let signalled = Instant::now();
    server.signal(libc::SIGTERM);
    let bye = caller
        .recv_request(Duration::from_secs(2))
        .expect("no BYE within 2 s of SIGTERM");
    assert!(bye.starts_with("BYE "), "expected BYE, got {bye}");
    let first_bye_at = Instant::now();
    let drained = options(server.sip, Duration::from_millis(500)).expect("OPTIONS unanswered");
    assert!(
        drained.starts_with("SIP/2.0 503"),
        "OPTIONS while draining: {}",
        drained.lines().next().unwrap_or("")
    );
    let mut byes = vec![bye];
    while server.is_running() && signalled.elapsed() < grace + Duration::from_secs(3) {
        if let Some(m) = caller.recv_request(Duration::from_millis(100)) {
            byes.push(m);
        }
    }
    let status = server
        .wait_exit(Duration::from_secs(1))
        .expect("server still running 3 s past its shutdown grace");
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(
        took >= grace - Duration::from_millis(100),
        "exited after {took:?}, before the {grace:?} grace for the unanswered BYE"
    );
    // Retransmissions at +0.5 s and +1.5 s fit in 2 s: the same request each time.
    assert!(byes.len() >= 2, "BYE never retransmitted in {took:?}");
    for b in &byes {
        assert_eq!(header(b, "CSeq"), header(&byes[0], "CSeq"));
        assert_eq!(
            header(b, "Via"),
            header(&byes[0], "Via"),
            "a retransmission keeps its branch"
        );
    }
    let late = rx
        .packets()
        .iter()
        .filter(|p| p.at > first_bye_at + STOP_SLACK)
        .count();
    assert_eq!(late, 0, "RTP kept flowing after the BYE");
}

fn sighup_swaps_music_without_dropping_the_call(rt: Runtime) {
    let dir = TempDir::new("sighup");
    let (low, high) = (dir.join("low.wav"), dir.join("high.wav"));
    wav::write_sine(&low, 400.0, 1.0);
    wav::write_sine(&high, 1000.0, 1.0);
    let config = dir.join("onhold.toml");
    let write_config = |music: &std::path::Path| {
        std::fs::write(&config, format!("music = {:?}\n", music.to_str().unwrap())).unwrap();
    };
    write_config(&low);
    let server = Server::start_with(rt, ServerOptions::default().config(config.clone()));
    let rx = RtpReceiver::bind();
    let sipp = Sipp::new("long_call.xml", server.sip)
        .set("rtp_port", rx.port())
        .spawn();
    assert!(
        rx.wait_packets(75, Duration::from_secs(5)),
        "no music before reload"
    );
    write_config(&high);
    let before_reload = rx.count();
    server.signal(libc::SIGHUP);
    let run = sipp.wait();
    run.assert_success(); // the call stayed up to our BYE
    let packets = rx.packets();
    let report = check_stream(&packets, SAMPLES, PAYLOAD)
        .unwrap_or_else(|e| panic!("stream across reload: {e}"));
    assert_eq!(
        report.markers.len(),
        2,
        "marker bits at {:?}: expected the first packet and the first after reload",
        report.markers
    );
    let k = report.markers[1];
    assert!(
        k >= before_reload,
        "marker at {k} before SIGHUP was sent ({before_reload})"
    );
    assert_eq!(
        packets[k].ts,
        packets[k - 1].ts.wrapping_add(SAMPLES),
        "timestamp jumps at the reload"
    );
    let median = |ps: &[onhold_tests::RtpPacket]| {
        let mut z: Vec<f64> = ps
            .iter()
            .map(|p| zero_crossings_per_second(&p.payload))
            .collect();
        z.sort_by(f64::total_cmp);
        z[z.len() / 2] / 2.0
    };
    let (f_before, f_after) = (median(&packets[5..k]), median(&packets[k..]));
    assert!(
        (300.0..500.0).contains(&f_before),
        "before reload the music should be the 400 Hz file, measured {f_before:.0} Hz"
    );
    assert!(
        (850.0..1150.0).contains(&f_after),
        "after reload the music should be the 1000 Hz file, measured {f_after:.0} Hz"
    );
}

fn assert_one_line(stderr: &str, names: &str) {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "expected one line on stderr, got:\n{stderr}"
    );
    assert!(
        lines[0].contains(names),
        "stderr does not name {names}: {stderr}"
    );
}

fn config_run(rt: Runtime, toml: &str) -> (std::process::ExitStatus, String) {
    let dir = TempDir::new("badconfig");
    let path = dir.join("onhold.toml");
    std::fs::write(&path, toml).unwrap();
    run_to_exit(
        rt,
        &[
            "--config",
            path.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        Duration::from_secs(10),
    )
}

fn unknown_config_key_exits_2_naming_it(rt: Runtime) {
    let (status, stderr) = config_run(rt, "ptime = 20\nmusik_on_hold = \"x.wav\"\n");
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert_one_line(&stderr, "musik_on_hold");
}

fn out_of_range_ptime_exits_2_naming_it(rt: Runtime) {
    let (status, stderr) = config_run(rt, "ptime = 7\n");
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert_one_line(&stderr, "ptime");
    // The same check whichever layer the value comes from.
    let (status, stderr) = run_to_exit(
        rt,
        &["--ptime", "70", "--listen", "127.0.0.1:0"],
        Duration::from_secs(10),
    );
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert_one_line(&stderr, "ptime");
}

fn music_run(rt: Runtime, path: &std::path::Path) -> (std::process::ExitStatus, String) {
    run_to_exit(
        rt,
        &["--music", path.to_str().unwrap(), "--listen", "127.0.0.1:0"],
        Duration::from_secs(20),
    )
}

fn unreadable_music_exits_naming_the_file(rt: Runtime) {
    let dir = TempDir::new("noise");
    let path = dir.join("noise.wav");
    // Deterministic junk: an LCG, not a real WAV header anywhere.
    let mut x: u32 = 0x1234_5678;
    let junk: Vec<u8> = (0..4096)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(&path, junk).unwrap();
    let (status, stderr) = music_run(rt, &path);
    assert!(
        !status.success() && status.code().is_some(),
        "{status}: {stderr}"
    );
    assert_one_line(&stderr, path.to_str().unwrap());
}

fn missing_music_exits_naming_the_file(rt: Runtime) {
    let dir = TempDir::new("missing");
    let path = dir.join("not-there.mp3");
    let (status, stderr) = music_run(rt, &path);
    assert!(
        !status.success() && status.code().is_some(),
        "{status}: {stderr}"
    );
    assert_one_line(&stderr, path.to_str().unwrap());
}
