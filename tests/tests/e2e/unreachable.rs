//! A stream aimed where nobody listens ends: the kernel answers each RTP packet to a closed
//! port with ICMP port unreachable, both binaries read those errors from the RTP socket's error
//! queue (IP_RECVERR) and hand them to the core, which hangs up with BYE after 2 s of them.
//! Otherwise an INVITE naming a dead or foreign address would buy music with no end.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use onhold_probe::msg::Message;
use onhold_tests::caller::{dp750_offer, Caller};
use onhold_tests::{both_runtimes, wait_for, Runtime, Server, ServerOptions};

both_runtimes!(a_stream_to_a_closed_port_ends_with_bye);

fn a_stream_to_a_closed_port_ends_with_bye(rt: Runtime) {
    let server = Server::start_with(rt, ServerOptions::default().log_level("debug"));
    // A port nobody listens on: bound to learn a free one, then closed.
    let closed: SocketAddr = {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    };
    let offer = dp750_offer(closed, "RTP/AVP", "0 8 101", 20, "sendrecv");
    let start = Instant::now();
    let caller = Caller::invite(server.sip, &offer);
    assert_eq!(caller.status(), 200, "{}", caller.answer);
    let bye = caller
        .recv_request(Duration::from_secs(8))
        .unwrap_or_else(|| panic!("no BYE within 8 s; server log:\n{}", server.stderr()));
    let after = start.elapsed();
    let m = Message::parse(bye.as_bytes()).expect("a SIP request");
    assert_eq!(m.method(), Some("BYE"), "{bye}");
    assert!(
        after >= Duration::from_millis(1900) && after < Duration::from_secs(6),
        "BYE after {after:?}"
    );
    // The log line is written by the logging thread: it may land just after the BYE.
    let logged = wait_for(Duration::from_secs(3), || {
        server.stderr().contains("reason=Unreachable").then_some(())
    });
    assert!(
        logged.is_some(),
        "the log names the reason:\n{}",
        server.stderr()
    );
}
