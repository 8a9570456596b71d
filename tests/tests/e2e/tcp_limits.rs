//! What one peer can make the server hold over TCP, the same on both runtimes: a connection
//! must send a whole message within 30 s of its accept and finish each message within 10 s of
//! its first byte (slowloris), and one source address gets at most 64 connections while other
//! addresses still get in.
//!
//! The figures are the runtime's own (`onhold_runtime::stream`), repeated here: the test runs
//! the real defaults, with the three checks in parallel threads (about 32 s in all, each on
//! its own server, so no check's connections count against another's cap). Its name sorts
//! after the proxy test's, so on two test threads it runs beside that one rather than before.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use onhold_tests::tcp::SipStream;
use onhold_tests::{both_runtimes, Runtime, Server, ServerOptions};

both_runtimes!(tcp_connections_are_bounded_in_time_and_per_source);

/// `onhold_runtime::stream::FIRST_MESSAGE_TIMEOUT`.
const FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// `onhold_runtime::stream::MESSAGE_TIMEOUT`.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);
/// `onhold_runtime::stream::MAX_PER_SOURCE`.
const MAX_PER_SOURCE: usize = 64;
/// How late a close may come after its deadline on a busy 2-core machine (the runtimes check
/// deadlines to within a fraction of a second).
const SLACK: Duration = Duration::from_secs(4);

/// A server that also listens on TCP, logging its connections (debug); its TCP address.
fn server(rt: Runtime) -> (Server, SocketAddr) {
    crate::common::with_tcp(rt, ServerOptions::default())
}

fn connect(tcp: SocketAddr) -> SipStream {
    SipStream::connect(tcp, Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("connect to {tcp}: {e}"))
}

fn assert_ok(answer: Option<String>, what: &str) {
    let answer = answer.unwrap_or_else(|| panic!("{what}: no answer"));
    assert!(
        answer.starts_with("SIP/2.0 200"),
        "{what}: {}",
        answer.lines().next().unwrap_or("")
    );
}

fn tcp_connections_are_bounded_in_time_and_per_source(rt: Runtime) {
    std::thread::scope(|s| {
        s.spawn(|| slowloris_is_closed_at_the_message_deadline(rt));
        s.spawn(|| a_silent_connection_is_closed_and_a_served_one_kept(rt));
        s.spawn(|| one_source_gets_at_most_its_share_of_connections(rt));
    });
}

/// (a) A request head sent a byte a second never completes: the server closes the connection
/// [`MESSAGE_TIMEOUT`] after its first byte.
fn slowloris_is_closed_at_the_message_deadline(rt: Runtime) {
    let (_server, tcp) = server(rt);
    let mut conn = connect(tcp);
    let me = conn.local_addr();
    let started = Instant::now();
    conn.send(&format!(
        "OPTIONS sip:slow@{tcp};transport=tcp SIP/2.0\r\n\
         Via: SIP/2.0/TCP {me};branch=z9hG4bKslowloris\r\n\
         X-Slow: "
    ))
    .expect("send the first bytes");
    loop {
        if conn.closed_within(Duration::from_secs(1)) {
            break;
        }
        let took = started.elapsed();
        assert!(
            took <= MESSAGE_TIMEOUT + SLACK,
            "{rt:?}: a message begun {took:?} ago, a byte a second, is still open; the deadline \
             is {MESSAGE_TIMEOUT:?}"
        );
        // A write may fail once the server has closed; the read above then sees it.
        let _ = conn.send("a");
    }
    let took = started.elapsed();
    assert!(
        took + Duration::from_secs(1) >= MESSAGE_TIMEOUT,
        "{rt:?}: closed {took:?} after the message began, before its {MESSAGE_TIMEOUT:?}"
    );
}

/// (b) A connection that sends nothing is closed [`FIRST_MESSAGE_TIMEOUT`] after its accept;
/// one that was served a request and then fell silent is kept (its idle time is far longer:
/// it may carry a call).
fn a_silent_connection_is_closed_and_a_served_one_kept(rt: Runtime) {
    let (_server, tcp) = server(rt);
    let mut silent = connect(tcp);
    let opened = Instant::now();
    let mut served = connect(tcp);
    assert_ok(
        served.request("OPTIONS", Duration::from_secs(2)),
        "OPTIONS on a new connection",
    );
    let closed = silent.closed_within(FIRST_MESSAGE_TIMEOUT + SLACK);
    let took = opened.elapsed();
    assert!(
        closed,
        "{rt:?}: a connection that sent nothing is still open after {took:?}; the deadline is \
         {FIRST_MESSAGE_TIMEOUT:?}"
    );
    assert!(
        took + Duration::from_secs(1) >= FIRST_MESSAGE_TIMEOUT,
        "{rt:?}: the silent connection was closed after {took:?}, before {FIRST_MESSAGE_TIMEOUT:?}"
    );
    assert_ok(
        served.request("OPTIONS", Duration::from_secs(2)),
        "OPTIONS again on the connection served before, silent since",
    );
}

/// (c) One source address opens more than [`MAX_PER_SOURCE`] connections: the ones beyond
/// are closed at accept, the rest are served, another address (127.0.0.2) still gets in, and
/// once one of the first closes, the first address gets a connection again.
fn one_source_gets_at_most_its_share_of_connections(rt: Runtime) {
    const EXTRA: usize = 4;
    let (_server, tcp) = server(rt);
    let mut conns: Vec<SipStream> = (0..MAX_PER_SOURCE + EXTRA).map(|_| connect(tcp)).collect();
    let mut answered = Vec::new();
    let mut closed = Vec::new();
    for (i, c) in conns.iter_mut().enumerate() {
        if c.request("OPTIONS", Duration::from_secs(2)).is_some() {
            answered.push(i);
        } else if c.closed_within(Duration::from_secs(2)) {
            closed.push(i);
        }
    }
    assert_eq!(
        (answered.len(), closed.len()),
        (MAX_PER_SOURCE, EXTRA),
        "{rt:?}: of {} connections from 127.0.0.1, answered {answered:?}, closed {closed:?}",
        conns.len()
    );
    assert_eq!(
        closed,
        (MAX_PER_SOURCE..MAX_PER_SOURCE + EXTRA).collect::<Vec<_>>(),
        "{rt:?}: the connections beyond the first {MAX_PER_SOURCE} are the ones closed"
    );
    let mut other = SipStream::connect_from(Ipv4Addr::new(127, 0, 0, 2), tcp)
        .unwrap_or_else(|e| panic!("connect from 127.0.0.2: {e}"));
    assert_ok(
        other.request("OPTIONS", Duration::from_secs(2)),
        "OPTIONS from 127.0.0.2 with 127.0.0.1 at its cap",
    );
    conns.swap_remove(0).close();
    let again = onhold_tests::wait_for(Duration::from_secs(3), || {
        onhold_tests::tcp::request(tcp, "OPTIONS", Duration::from_millis(500))
    });
    assert_ok(
        again,
        "OPTIONS from 127.0.0.1 once one of its connections closed",
    );
}
