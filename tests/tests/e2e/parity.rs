//! Both runtimes drive the same core, so the same caller must see the same SIP exchange from
//! either: same messages, same order, same CSeqs, same headers in the same order, same SDP
//! choices (tags, branches, ports and times aside). And both must hand the core the same
//! datagrams: the largest they take is the same.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use onhold_tests::{RtpReceiver, Runtime, Server, Sipp, SippRun};

/// `onhold_runtime::net::MAX_RECV`: the largest UDP payload over IPv4.
const MAX_RECV: usize = 65_507;

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

/// A valid OPTIONS of exactly `size` bytes: a `X-Padding` header fills it out.
fn options_of_size(size: usize, to: SocketAddr, me: SocketAddr) -> Vec<u8> {
    let port = me.port();
    let head = format!(
        "OPTIONS sip:ping@{to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bK{port}big{size};rport\r\n\
         From: <sip:probe@{me}>;tag={port}\r\n\
         To: <sip:ping@{to}>\r\n\
         Call-ID: big-{size}-{port}@127.0.0.1\r\n\
         CSeq: 1 OPTIONS\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\
         X-Padding: "
    );
    let tail = "\r\n\r\n";
    let pad = size - head.len() - tail.len();
    let mut msg = head.into_bytes();
    msg.resize(msg.len() + pad, b'a');
    msg.extend_from_slice(tail.as_bytes());
    assert_eq!(msg.len(), size);
    msg
}

/// The first line of the answer to a `size`-byte OPTIONS over UDP, or `None` within 3 s.
fn answer_to_datagram(server: &Server, size: usize) -> Option<String> {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let msg = options_of_size(size, server.sip, sock.local_addr().expect("local"));
    sock.send_to(&msg, server.sip).expect("send");
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf[..n]);
    text.lines().next().map(str::to_owned)
}

/// Datagrams of 60,000 bytes and of the largest IPv4 payload, each a valid OPTIONS: the same
/// answer from both runtimes, and that answer is 200 (the core reads a header section up to
/// 64 KiB).
#[test]
fn a_large_datagram_gets_the_same_answer_from_both_runtimes() {
    let servers = Runtime::ALL.map(Server::start);
    for size in [60_000, MAX_RECV] {
        let answers = servers
            .each_ref()
            .map(|s| (s.runtime, answer_to_datagram(s, size)));
        assert_eq!(
            answers[0].1, answers[1].1,
            "a {size}-byte OPTIONS: {answers:?}"
        );
        assert_eq!(
            answers[0].1.as_deref(),
            Some("SIP/2.0 200 OK"),
            "a {size}-byte OPTIONS: {answers:?}"
        );
    }
}
