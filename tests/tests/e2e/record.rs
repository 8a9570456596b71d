//! Recording against the real binaries: a class with `record = true` and a call recorded on
//! request through the control API; the WAV files hold what the caller sent (a 1 kHz tone,
//! checked by its zero crossings) for as long as it sent it, with a header that says so.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use onhold_tests::caller::Caller;
use onhold_tests::http::{get, request};
use onhold_tests::{both_runtimes, wait_for, RtpReceiver, Runtime, Server, ServerOptions, TempDir};

both_runtimes!(
    a_recorded_class_records_what_each_caller_sends,
    a_call_is_recorded_on_request
);

/// Sends `packets` PCMU packets of a 1 kHz square wave (20 ms each, paced) to `to`, from
/// timestamp `ts0`.
fn send_tone(to: SocketAddr, ts0: u32, packets: u32) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let payload: Vec<u8> = (0..160)
        .map(|i| if i % 8 < 4 { 0x80 } else { 0x00 })
        .collect();
    for k in 0..packets {
        let mut p = vec![0x80, 0, (k >> 8) as u8, k as u8];
        p.extend_from_slice(&(ts0 + k * 160).to_be_bytes());
        p.extend_from_slice(&[5, 6, 7, 8]);
        p.extend_from_slice(&payload);
        sock.send_to(&p, to).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The call's id, its Call-ID and our server's RTP address for it, from the control API.
fn call_of(server: &Server) -> (String, String, SocketAddr) {
    let calls = get(server.control, "/api/calls").json();
    let c = &calls["calls"][0];
    (
        c["id"].as_str().unwrap().to_string(),
        c["call_id"].as_str().unwrap().to_string(),
        c["local_rtp"].as_str().unwrap().parse().unwrap(),
    )
}

/// The one WAV file in `dir` once its header gives its length (finished), within 5 s.
fn finished_wav(dir: &Path) -> (PathBuf, Vec<i16>) {
    wait_for(Duration::from_secs(5), || {
        let path = std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "wav"))?;
        let bytes = std::fs::read(&path).ok()?;
        let data = u32::from_le_bytes(bytes.get(40..44)?.try_into().ok()?) as usize;
        (data > 0 && bytes.len() == 44 + data).then(|| {
            assert_eq!(&bytes[..4], b"RIFF");
            assert_eq!(u32::from_le_bytes(bytes[24..28].try_into().unwrap()), 8000);
            let pcm = bytes[44..]
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect();
            (path.clone(), pcm)
        })
    })
    .unwrap_or_else(|| panic!("no finished WAV in {}", dir.display()))
}

fn assert_tone(pcm: &[i16], seconds: f64) {
    let got = pcm.len() as f64 / 8000.0;
    assert!(
        (seconds * 0.8..seconds * 1.2).contains(&got),
        "{got} s recorded, {seconds} s sent"
    );
    let crossings = pcm.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
    let per_second = crossings as f64 / got;
    assert!(
        (1800.0..2200.0).contains(&per_second),
        "{per_second} crossings a second: a 1 kHz tone makes 2,000"
    );
}

fn a_recorded_class_records_what_each_caller_sends(rt: Runtime) {
    let dir = TempDir::new("record-class");
    let records = dir.join("calls");
    let config = dir.join("onhold.toml");
    std::fs::write(
        &config,
        format!(
            "record_dir = {:?}\n[classes.default]\nrecord = true\n",
            records.display().to_string()
        ),
    )
    .unwrap();
    let server = Server::start_with(rt, ServerOptions::default().config(config));
    let rx = RtpReceiver::bind();
    let caller = Caller::call(server.sip, rx.addr());
    assert!(rx.wait_packets(5, Duration::from_secs(3)));
    let (_, call_id, ours) = call_of(&server);
    send_tone(ours, 0, 50);
    assert_eq!(caller.bye(), 200);
    let (path, pcm) = finished_wav(&records);
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    // `20261206T174825Z-<Call-ID>.wav`, the Call-ID's other characters (`@`) made `_`.
    let safe: String = call_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    assert!(name.ends_with(&format!("Z-{safe}.wav")), "{name}");
    assert_eq!(name.find('Z'), Some(15), "{name}");
    assert_tone(&pcm, 1.0);
}

fn a_call_is_recorded_on_request(rt: Runtime) {
    let dir = TempDir::new("record-api");
    let records = dir.join("calls");
    let server = Server::start_with(
        rt,
        ServerOptions::default()
            .arg("--record-dir")
            .arg(records.display().to_string()),
    );
    let rx = RtpReceiver::bind();
    let caller = Caller::call(server.sip, rx.addr());
    assert!(rx.wait_packets(5, Duration::from_secs(3)));
    let (id, _, ours) = call_of(&server);
    send_tone(ours, 0, 25); // not recorded yet
    let r = request(
        server.control,
        "POST",
        &format!("/api/calls/{id}/record"),
        "",
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["file"].as_str().unwrap().ends_with(".wav"));
    send_tone(ours, 25 * 160, 25);
    let r = request(
        server.control,
        "POST",
        &format!("/api/calls/{id}/record"),
        "",
        br#"{"on": false}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let (_, pcm) = finished_wav(&records);
    assert_tone(&pcm, 0.5);
    let again = request(
        server.control,
        "POST",
        &format!("/api/calls/{id}/record"),
        "",
        br#"{"on": false}"#,
    );
    assert_eq!(again.status, 409, "not recording: {}", again.body);
    assert_eq!(caller.bye(), 200);
}
