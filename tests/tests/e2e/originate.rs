//! Calls we place (`POST /api/calls`, `onhold ctl call`) into SIPp as the callee: a callee
//! behind a proxy that challenges with 407 gets our digest credentials (the MD5 response
//! checked here), answers, and hears the file we asked for (a 1 kHz tone, decoded from the RTP
//! its SDP pointed at) until our BYE at `max_duration`; a busy callee's 486 is acknowledged and
//! ends the call with reason `rejected` and status 486.

use std::time::Duration;

use onhold_tests::http::{get, request, EventStream};
use onhold_tests::rtp::zero_crossings_per_second;
use onhold_tests::sipp::Sipp;
use onhold_tests::{
    both_runtimes, ports, wait_for, wav, RtpReceiver, Runtime, Server, ServerOptions, TempDir,
};

both_runtimes!(
    a_challenged_call_is_authenticated_and_hears_the_file,
    a_busy_callee_ends_the_call_as_rejected_486,
);

/// A configuration whose `[[register]]` account holds the credentials for calls to 127.0.0.1.
/// Its registrar is a port where nobody answers: the account exists for its credentials.
fn config(dir: &TempDir) -> std::path::PathBuf {
    let path = dir.join("onhold.toml");
    let dead = ports::free_udp_port();
    let text = format!(
        "[[register]]\nregistrar = \"sip:127.0.0.1:{dead}\"\naor = \"sip:moh@127.0.0.1\"\n\
         password = \"s3cret\"\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn a_challenged_call_is_authenticated_and_hears_the_file(rt: Runtime) {
    let dir = TempDir::new("originate");
    let tone = dir.join("tone.wav");
    wav::write_sine(&tone, 1000.0, 10.0);
    let server = Server::start_with(rt, ServerOptions::default().config(config(&dir)));
    let c = server.control;
    let events = EventStream::open(c, "/api/events");
    let rx = RtpReceiver::bind();
    let port = ports::free_udp_port();
    let callee = Sipp::new("callee_challenge.xml", server.sip)
        .port(port)
        .set("rtp_port", rx.port())
        .timeout(Duration::from_secs(20))
        .spawn();
    // SIPp listens once it has read its scenario; a call placed before would meet a closed port.
    std::thread::sleep(Duration::from_millis(500));

    let body = serde_json::json!({
        "uri": format!("sip:200@127.0.0.1:{port}"),
        "file": tone,
        "max_duration": 3,
        "from": "reception",
    });
    let r = request(c, "POST", "/api/calls", "", body.to_string().as_bytes());
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_string();

    assert!(
        rx.wait_packets(100, Duration::from_secs(5)),
        "no music at the callee's SDP address: {} packets\n{}",
        rx.count(),
        server.stderr()
    );
    let call = get(c, &format!("/api/calls/{id}")).json();
    assert_eq!(call["outbound"], true, "{call}");
    assert_eq!(call["codec"], "PCMU", "{call}");
    assert!(
        call["from"]
            .as_str()
            .unwrap()
            .starts_with("<sip:reception@"),
        "{call}"
    );

    let run = callee.wait();
    run.assert_success();
    // What SIPp received: the first INVITE, its ACK, the INVITE with credentials.
    let invites: Vec<_> = run
        .messages
        .iter()
        .filter(|m| m.method() == Some("INVITE"))
        .collect();
    assert!(invites.len() >= 2, "{}", run.transcript());
    let auth = invites[1]
        .header("Proxy-Authorization")
        .expect("credentials");
    assert!(auth.contains("username=\"moh\""), "{auth}");
    assert!(
        invites[0].body().contains("G722/8000"),
        "every codec offered"
    );

    let packets = rx.packets();
    let payload: Vec<u8> = packets
        .iter()
        .skip(10)
        .take(100)
        .flat_map(|p| p.payload.clone())
        .collect();
    let zc = zero_crossings_per_second(&payload);
    assert!(
        (1800.0..2200.0).contains(&zc),
        "{zc} crossings a second: the 1 kHz tone makes 2,000"
    );
    // BYE at 3 s: about 150 packets, and none after it.
    assert!(
        (120..=180).contains(&packets.len()),
        "{} packets in a 3 s call",
        packets.len()
    );
    let ended = events
        .wait_for(Duration::from_secs(5), |e| e.name == "call.ended")
        .expect("call.ended");
    assert_eq!(ended.data["reason"], "max_duration", "{}", ended.data);
    let count = rx.count();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(rx.count(), count, "RTP after the BYE");
}

fn a_busy_callee_ends_the_call_as_rejected_486(rt: Runtime) {
    let server = Server::start(rt);
    let c = server.control;
    let events = EventStream::open(c, "/api/events");
    let port = ports::free_udp_port();
    let callee = Sipp::new("callee_busy.xml", server.sip)
        .port(port)
        .timeout(Duration::from_secs(10))
        .spawn();
    std::thread::sleep(Duration::from_millis(500));

    // Through `onhold ctl call`, as an operator would.
    let out = std::process::Command::new(onhold_tests::binary(rt))
        .args(["ctl", "--url", &format!("http://{c}"), "call"])
        .arg(format!("sip:busy@127.0.0.1:{port}"))
        .args(["--class", "default"])
        .output()
        .expect("run onhold ctl call");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let placed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let id = placed["id"].as_str().unwrap().to_string();

    let ended = events
        .wait_for(Duration::from_secs(5), |e| e.name == "call.ended")
        .unwrap_or_else(|| panic!("no call.ended: {:?}", events.events()));
    assert_eq!(ended.data["call"], id.as_str());
    assert_eq!(ended.data["reason"], "rejected", "{}", ended.data);
    assert_eq!(ended.data["status"], 486, "{}", ended.data);
    callee.wait().assert_success();
    assert_eq!(get(c, &format!("/api/calls/{id}")).status, 404);
    assert!(wait_for(Duration::from_secs(2), || {
        let m = get(c, "/metrics").body;
        m.contains("reason=\"rejected\"").then_some(())
    })
    .is_some());
}
