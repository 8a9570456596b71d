//! Our own requests over TCP (RFC 3261 §18.1.1): the BYE at `max_call_duration` to a caller
//! that called over TCP goes on the caller's connection while it is open, on a connection the
//! server opens to the caller's Contact once the caller has closed its own, and, when nothing
//! listens there, fails without holding anything up: the call ends and the server goes on.
//!
//! The caller (`onhold_tests::tcp::TcpCaller`) names its connection's own address in its
//! Contact (`;transport=tcp`), so the same destination is reached by the open connection or,
//! after the close, by a new one to the port the test then listens on.

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use onhold_probe::msg::Message;
use onhold_tests::server::options;
use onhold_tests::tcp::{accept, ok_to, TcpCaller};
use onhold_tests::{both_runtimes, wait_for, RtpReceiver, Runtime, Server, ServerOptions};

use crate::common::STOP_SLACK;

both_runtimes!(
    tcp_bye_goes_on_the_callers_open_connection,
    tcp_bye_opens_a_connection_once_the_caller_closed_its_own,
    tcp_bye_to_a_closed_port_fails_and_the_call_ends,
);

/// The server's `max_call_duration`: the BYE comes this long after the call started.
const MAX_CALL: Duration = Duration::from_secs(3);

/// The server's `shutdown_grace`: SIGTERM waits this long only for a BYE still unanswered.
const GRACE: Duration = Duration::from_secs(10);

/// A server listening on TCP too (logging at debug, which shows its connections), hanging up
/// after [`MAX_CALL`]; its TCP address.
fn server(rt: Runtime) -> (Server, SocketAddr) {
    let opts = ServerOptions::default()
        .arg("--max-call-duration")
        .arg(format!("{}s", MAX_CALL.as_secs()))
        .arg("--shutdown-grace")
        .arg(format!("{}s", GRACE.as_secs()));
    crate::common::with_tcp(rt, opts)
}

/// `bye` is our call's BYE, sent over TCP to our Contact, about [`MAX_CALL`] after the 200.
fn assert_bye(bye: &str, caller: &TcpCaller, after_answer: Duration) {
    let m = Message::parse(bye.as_bytes()).expect("a SIP message");
    assert_eq!(m.method(), Some("BYE"), "expected BYE:\n{bye}");
    assert_eq!(m.call_id(), Some(caller.call_id.as_str()), "{bye}");
    let uri = bye.split(' ').nth(1).unwrap_or("");
    assert_eq!(
        uri,
        format!("sip:201@{};transport=tcp", caller.local),
        "BYE's Request-URI is not our Contact:\n{bye}"
    );
    assert!(
        m.header("Via")
            .is_some_and(|v| v.starts_with("SIP/2.0/TCP")),
        "BYE's Via: {:?}",
        m.header("Via")
    );
    assert!(
        after_answer + Duration::from_millis(500) >= MAX_CALL
            && after_answer <= MAX_CALL + Duration::from_secs(2),
        "BYE {after_answer:?} after the 200; max_call_duration is {MAX_CALL:?}"
    );
}

/// The server logged the call's end by max_call_duration (bounded wait: the line follows the
/// 200 to its BYE, or the BYE's failure).
fn assert_ended(server: &Server, reason: &str) {
    let want = format!("reason={reason}");
    let logged = wait_for(Duration::from_secs(10), || {
        let log = server.stderr();
        log.lines()
            .any(|l| l.contains("call ended") && l.contains(&want))
            .then_some(())
    });
    assert!(
        logged.is_some(),
        "no 'call ended … {want}' in the server's log:\n{}",
        server.stderr()
    );
}

/// The BYE's transaction is over (answered, or failed): SIGTERM finds no BYE to wait for, so
/// the server exits at once rather than after the [`GRACE`] it gives an unanswered one (the
/// BYE's own timeout, 64·T1 = 32 s, is longer still).
fn assert_no_bye_pending(server: &mut Server) {
    server.signal(libc::SIGTERM);
    let signalled = Instant::now();
    let status = server
        .wait_exit(GRACE + Duration::from_secs(3))
        .expect("server still running after SIGTERM and its grace");
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(
        took < Duration::from_secs(3),
        "SIGTERM took {took:?}: the server was still waiting for its BYE"
    );
}

/// Music stops once the call has ended: nothing arrives over a 300 ms window.
fn assert_media_stopped(rx: &RtpReceiver) {
    std::thread::sleep(STOP_SLACK);
    let before = rx.count();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(rx.count(), before, "RTP still flowing after the call ended");
}

/// (a) The caller keeps its connection: the BYE arrives on it. Had the server opened a
/// connection to the Contact instead, nothing would be listening there (the connection holds
/// the port) and no BYE would come on ours.
fn tcp_bye_goes_on_the_callers_open_connection(rt: Runtime) {
    let (mut server, tcp) = server(rt);
    let rx = RtpReceiver::bind();
    let mut caller = TcpCaller::call(tcp, rx.addr());
    let answered = Instant::now();
    assert!(rx.wait_packets(25, Duration::from_secs(5)), "no music");
    let bye = caller
        .recv_request(MAX_CALL + Duration::from_secs(5))
        .unwrap_or_else(|| {
            panic!("no BYE on the caller's open connection within {MAX_CALL:?} + 5 s")
        });
    assert_bye(&bye, &caller, answered.elapsed());
    caller.answer_ok(&bye);
    assert_ended(&server, "MaxDuration");
    assert_media_stopped(&rx);
    assert_no_bye_pending(&mut server);
}

/// (b) The caller closes its connection after the ACK and listens on the port its Contact
/// names: the call goes on (music keeps flowing), and the BYE comes on a new connection the
/// server opens to that port.
fn tcp_bye_opens_a_connection_once_the_caller_closed_its_own(rt: Runtime) {
    let (mut server, tcp) = server(rt);
    let rx = RtpReceiver::bind();
    let mut caller = TcpCaller::call(tcp, rx.addr());
    let answered = Instant::now();
    assert!(rx.wait_packets(10, Duration::from_secs(5)), "no music");
    caller.close();
    let listener = TcpListener::bind(caller.local)
        .unwrap_or_else(|e| panic!("listen on our Contact {}: {e}", caller.local));
    // Closing the connection is not hanging up.
    let before = rx.count();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        rx.count() > before,
        "music stopped when the caller closed its connection"
    );
    let mut conn = accept(&listener, MAX_CALL + Duration::from_secs(5)).unwrap_or_else(|| {
        panic!(
            "the server opened no connection to our Contact {} within {MAX_CALL:?} + 5 s",
            caller.local
        )
    });
    let bye = conn
        .recv_request(Duration::from_secs(5))
        .expect("no request on the connection the server opened");
    assert_bye(&bye, &caller, answered.elapsed());
    conn.send(&ok_to(&bye)).expect("send 200 to the BYE");
    assert_ended(&server, "MaxDuration");
    assert_media_stopped(&rx);
    // The 200 came back on the server's own connection and ended the BYE's transaction.
    assert_no_bye_pending(&mut server);
}

/// The caller closes its connection and nothing listens on its Contact: the call ends at
/// max_call_duration (logged), the connect for its BYE is refused (logged), the BYE fails at
/// once like a timeout rather than waiting out its 32 s, and the server goes on answering.
fn tcp_bye_to_a_closed_port_fails_and_the_call_ends(rt: Runtime) {
    let (mut server, tcp) = server(rt);
    let rx = RtpReceiver::bind();
    let mut caller = TcpCaller::call(tcp, rx.addr());
    let answered = Instant::now();
    assert!(rx.wait_packets(10, Duration::from_secs(5)), "no music");
    caller.close();
    assert_ended(&server, "MaxDuration");
    let took = answered.elapsed();
    assert!(
        took <= MAX_CALL + Duration::from_secs(6),
        "the call ended {took:?} after the 200; max_call_duration is {MAX_CALL:?}"
    );
    assert_media_stopped(&rx);
    let refused = wait_for(Duration::from_secs(7), || {
        let log = server.stderr();
        log.lines()
            .any(|l| l.contains("tcp connect") && l.contains(&format!("remote={}", caller.local)))
            .then_some(())
    });
    assert!(
        refused.is_some(),
        "no 'tcp connect: … remote={}' in the server's log:\n{}",
        caller.local,
        server.stderr()
    );
    let pong = options(server.sip, Duration::from_secs(2)).expect("no answer to OPTIONS");
    assert!(
        pong.starts_with("SIP/2.0 200"),
        "{}",
        pong.lines().next().unwrap_or("")
    );
    let pong = onhold_tests::tcp::request(tcp, "OPTIONS", Duration::from_secs(2))
        .expect("no answer to OPTIONS over TCP");
    assert!(
        pong.starts_with("SIP/2.0 200"),
        "{}",
        pong.lines().next().unwrap_or("")
    );
    assert_no_bye_pending(&mut server);
}
