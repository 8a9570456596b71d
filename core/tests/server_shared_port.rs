//! `rtp_shared_port`: every call's media on one port the runtime bound at start. Nothing is
//! bound or unbound per call, each SDP names the shared port, RTP leaves from it to each
//! caller, and what arrives on it finds its call by its source address.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use onhold_core::{Command, EndReason, Event, ServerConfig};

const SHARED: u16 = 4000;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn shared() -> Harness {
    Harness::with(
        ServerConfig {
            rtp_shared_port: Some(SHARED),
            ..ServerConfig::default()
        },
        onhold_core::media::Library::silence(),
    )
}

/// Call `n` from the phone, its SDP naming 192.168.1.50:`rtp`, answered and ACKed: the port
/// our answer names.
fn call(h: &mut Harness, n: u32, rtp: u16) -> (Dp750, u16) {
    let mut c = Dp750::new(n);
    let sdp = dp750_sdp("192.168.1.50", rtp, "sendrecv");
    h.send(PHONE, &c.request("INVITE", Some(&sdp), &[]));
    let ok = h.response("SIP/2.0 200");
    c.to_tag = ok.to_tag();
    let body = ok.body();
    let port = body
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|m| m.split(' ').next())
        .and_then(|p| p.parse().ok())
        .expect("an m=audio line");
    h.send(PHONE, &c.ack(None));
    (c, port)
}

fn ended(h: &Harness) -> Vec<(onhold_core::CallHandle, EndReason)> {
    h.events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::CallEnded { call, reason, .. } => Some((*call, reason.clone())),
            _ => None,
        })
        .collect()
}

fn handles(h: &Harness) -> Vec<onhold_core::CallHandle> {
    h.events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::CallStarted { call, .. } => Some(*call),
            _ => None,
        })
        .collect()
}

/// Four ICMP errors for `dest` on the shared port, 0.9 s apart: enough to end a call whose
/// stream goes there.
fn icmp_errors(h: &mut Harness, dest: &str) {
    for _ in 0..4 {
        h.unreachable(shared_addr(), addr(dest));
        h.advance(Duration::from_millis(900));
    }
}

fn shared_addr() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], SHARED))
}

#[test]
fn calls_share_one_port_that_is_never_bound_per_call() {
    let mut h = shared();
    let (mut a, port_a) = call(&mut h, 1, 5004);
    let (_, port_b) = call(&mut h, 2, 5006);
    assert_eq!((port_a, port_b), (SHARED, SHARED));
    h.advance(Duration::from_millis(200));
    for dest in ["192.168.1.50:5004", "192.168.1.50:5006"] {
        let to_it: Vec<_> = h
            .rtp()
            .into_iter()
            .filter(|s| s.t.remote == addr(dest))
            .collect();
        assert!(to_it.len() >= 9, "RTP to {dest}: {}", to_it.len());
        assert!(
            to_it.iter().all(|s| s.t.local == shared_addr()),
            "from the shared port"
        );
    }
    a.cseq += 1;
    a.next_branch();
    h.send(PHONE, &a.request("BYE", None, &[]));
    assert!(h.last_sip().start_line().starts_with("SIP/2.0 200"));
    let binds = h
        .commands
        .iter()
        .filter(|(_, c)| matches!(c, Command::BindRtp { .. } | Command::UnbindRtp { .. }))
        .count();
    assert_eq!(binds, 0, "no port bound or closed per call");
    // The other call streams on.
    let before = h.rtp().len();
    h.advance(Duration::from_millis(100));
    let after: Vec<_> = h.rtp()[before..].iter().map(|s| s.t.remote).collect();
    assert!(after.len() >= 4 && after.iter().all(|r| *r == addr("192.168.1.50:5006")));
}

#[test]
fn media_arriving_on_the_shared_port_finds_its_call_by_its_source() {
    let mut h = shared();
    call(&mut h, 1, 5004);
    call(&mut h, 2, 5006);
    let calls = handles(&h);
    assert_eq!(calls.len(), 2);
    // Only the second caller sends; it then stops, and only its call times out.
    for _ in 0..3 {
        h.rtp_in(addr("192.168.1.50:5006"), shared_addr());
        h.advance(secs(1));
    }
    assert_eq!(h.server.stats().rtp_in, 3);
    // From an address no call streams to: counted, not read as SIP, not given to a call.
    h.rtp_in(addr("192.168.1.50:7000"), shared_addr());
    assert_eq!(h.server.stats().rtp_unmatched, 1);
    assert_eq!(h.server.stats().rtp_in, 3);
    h.advance(secs(61));
    assert_eq!(ended(&h), vec![(calls[1], EndReason::MediaTimeout)]);
}

#[test]
fn an_unreachable_caller_on_the_shared_port_ends_only_its_call() {
    let mut h = shared();
    call(&mut h, 1, 5004);
    call(&mut h, 2, 5006);
    let calls = handles(&h);
    icmp_errors(&mut h, "192.168.1.50:5004");
    assert_eq!(ended(&h), vec![(calls[0], EndReason::Unreachable)]);
}

#[test]
fn a_reinvite_to_a_new_address_moves_the_match() {
    let mut h = shared();
    let (mut a, _) = call(&mut h, 1, 5004);
    let calls = handles(&h);
    a.cseq += 1;
    a.next_branch();
    let sdp = dp750_sdp("192.168.1.50", 6000, "sendrecv");
    h.send(PHONE, &a.request("INVITE", Some(&sdp), &[]));
    assert!(h.last_sip().start_line().starts_with("SIP/2.0 200"));
    h.send(PHONE, &a.ack(None));
    // The old address is nobody's now; the new one is the call's.
    h.rtp_in(addr("192.168.1.50:5004"), shared_addr());
    assert_eq!(h.server.stats().rtp_unmatched, 1);
    h.rtp_in(addr("192.168.1.50:6000"), shared_addr());
    assert_eq!(h.server.stats().rtp_in, 1);
    h.advance(secs(61));
    assert_eq!(ended(&h), vec![(calls[0], EndReason::MediaTimeout)]);
}

/// Two calls streaming to one address (a test tool, a relay's single port): an ICMP error or
/// a packet from there cannot be told apart, so it ends or feeds neither; once one of the two
/// has ended, the address names the other again.
#[test]
fn an_address_two_calls_stream_to_names_neither() {
    let mut h = shared();
    let (mut a, _) = call(&mut h, 1, 5004);
    call(&mut h, 2, 5004);
    let calls = handles(&h);
    icmp_errors(&mut h, "192.168.1.50:5004");
    assert_eq!(
        ended(&h),
        vec![],
        "neither call ends for an error about both"
    );
    h.rtp_in(addr("192.168.1.50:5004"), shared_addr());
    assert_eq!(h.server.stats().rtp_unmatched, 1);
    a.cseq += 1;
    a.next_branch();
    h.send(PHONE, &a.request("BYE", None, &[]));
    assert_eq!(ended(&h), vec![(calls[0], EndReason::RemoteBye)]);
    icmp_errors(&mut h, "192.168.1.50:5004");
    assert_eq!(
        ended(&h),
        vec![
            (calls[0], EndReason::RemoteBye),
            (calls[1], EndReason::Unreachable)
        ]
    );
}

/// The shared port is the runtime's from start: a reload that names another (or none) leaves
/// new calls on the one bound.
#[test]
fn a_reload_keeps_the_shared_port() {
    let mut h = shared();
    let now = h.now();
    h.server
        .control(now, onhold_core::Control::Reconfigure(Box::default()));
    let (_, port) = call(&mut h, 1, 5004);
    assert_eq!(port, SHARED);
    assert!(!h
        .commands
        .iter()
        .any(|(_, c)| matches!(c, Command::BindRtp { .. })));
}
