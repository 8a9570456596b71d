//! Where our own in-dialog requests go (RFC 3261 §12.2.1.1, §8.1.2, RFC 3263): through a
//! record-routing proxy named by host name (resolved by the runtime), through a strict router,
//! to the source address when a name does not resolve, held while it resolves, and ended like
//! a timeout when the transport to the next hop fails.

mod common;

use std::time::Duration;

use common::*;
use onhold_core::{Control, EndReason, Event, Transport};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// INVITE (with `extra` headers) → 200 → ACK; the call's handle.
fn establish(h: &mut Harness, extra: &[&str]) -> (Dp750, onhold_core::CallHandle) {
    let mut c = Dp750::new(0);
    let sdp = dp750_sdp("192.168.1.50", 5004, "sendrecv");
    h.send(PHONE, &c.request("INVITE", Some(&sdp), extra));
    c.to_tag = h.response("SIP/2.0 200").to_tag();
    h.send(PHONE, &c.ack(None));
    let call = h.started_call().expect("the call started");
    (c, call)
}

fn hang_up(h: &mut Harness, call: onhold_core::CallHandle) -> Sent {
    h.server.control(h.now, Control::Hangup(call));
    h.drain();
    let bye = h.last_sip().clone();
    assert!(bye.start_line().starts_with("BYE "), "{}", h.transcript());
    bye
}

/// A Record-Route naming the proxy by host name: our BYE goes to the address the runtime
/// resolved it to, Request-URI the caller's Contact, Route the proxy.
#[test]
fn bye_goes_through_a_proxy_named_by_host_name() {
    let mut h = Harness::new();
    h.hosts
        .insert("proxy.example".into(), "10.0.0.7".parse().unwrap());
    let (_, call) = establish(&mut h, &["Record-Route: <sip:proxy.example:5076;lr>"]);
    let resolves = |h: &Harness| {
        h.commands
            .iter()
            .filter(|(_, c)| matches!(c, onhold_core::Command::Resolve { .. }))
            .count()
    };
    assert_eq!(resolves(&h), 0, "looked up when a request first needs it");
    let bye = hang_up(&mut h, call);
    assert_eq!(resolves(&h), 1);
    assert_eq!(bye.t.remote, addr("10.0.0.7:5076"));
    assert_eq!(
        bye.start_line(),
        "BYE sip:201@192.168.1.50:5060 SIP/2.0",
        "loose routing keeps the remote target"
    );
    assert_eq!(
        bye.header("Route").as_deref(),
        Some("<sip:proxy.example:5076;lr>")
    );
}

/// RFC 3261 §12.2.1.1: a first route without `;lr` is a strict router: it takes the
/// Request-URI, and the remote target goes last in the Route headers.
#[test]
fn a_strict_router_gets_the_request_uri() {
    let mut h = Harness::new();
    let (_, call) = establish(
        &mut h,
        &["Record-Route: <sip:10.0.0.7:5070>, <sip:10.0.0.8;lr>"],
    );
    let bye = hang_up(&mut h, call);
    assert_eq!(bye.start_line(), "BYE sip:10.0.0.7:5070 SIP/2.0");
    assert_eq!(bye.t.remote, addr("10.0.0.7:5070"));
    let text = bye.text();
    let routes: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("Route: "))
        .collect();
    assert_eq!(routes, ["<sip:10.0.0.8;lr>", "<sip:201@192.168.1.50:5060>"]);
}

/// A BYE needed while the proxy's name is still being looked up waits for the answer, then
/// goes to the resolved address; the call is reported ended at once.
#[test]
fn a_request_waits_for_its_next_hop_to_resolve() {
    let mut h = Harness::new();
    h.hold_resolves = true;
    h.hosts
        .insert("proxy.example".into(), "10.0.0.7".parse().unwrap());
    let (_, call) = establish(&mut h, &["Record-Route: <sip:proxy.example;lr>"]);
    let before = h.sip().len();
    h.server.control(h.now, Control::Hangup(call));
    h.drain();
    assert_eq!(
        h.sip().len(),
        before,
        "nothing sent before the name resolves"
    );
    assert!(h.events.iter().any(|(_, e)| matches!(
        e,
        Event::CallEnded {
            reason: EndReason::Operator,
            ..
        }
    )));
    h.advance(ms(200));
    h.release_resolves();
    let bye = h.last_sip().clone();
    assert!(bye.start_line().starts_with("BYE "), "{}", h.transcript());
    assert_eq!(bye.t.remote, addr("10.0.0.7:5060"));
}

/// A name that resolves to nothing: the BYE goes to where the caller's requests came from.
#[test]
fn an_unresolved_name_falls_back_to_the_source_address() {
    let mut h = Harness::new();
    let (_, call) = establish(&mut h, &["Record-Route: <sip:nowhere.example;lr>"]);
    let bye = hang_up(&mut h, call);
    assert_eq!(bye.t.remote, addr(PHONE));
}

/// A shutdown waits for a BYE held for a name, and drains once it is answered.
#[test]
fn shutdown_waits_for_a_held_bye() {
    let mut h = Harness::new();
    h.hold_resolves = true;
    h.hosts
        .insert("proxy.example".into(), "10.0.0.7".parse().unwrap());
    establish(&mut h, &["Record-Route: <sip:proxy.example;lr>"]);
    h.server.control(
        h.now,
        Control::Shutdown {
            grace: Duration::from_secs(5),
        },
    );
    h.drain();
    let drained = |h: &Harness| h.events.iter().any(|(_, e)| *e == Event::Drained);
    assert!(!drained(&h), "the BYE has not even left");
    h.release_resolves();
    let bye = h.last_sip().clone();
    h.send_bytes("10.0.0.7:5060", bye.reply("200 OK").as_bytes());
    assert!(drained(&h), "{}", h.transcript());
}

/// Over TCP, a session refresh whose connection cannot be opened ends like a timeout: the
/// call ends with SessionExpired (RFC 4028 §10), without waiting 64·T1.
#[test]
fn a_transport_error_fails_the_refresh_like_a_timeout() {
    let mut h = Harness::new();
    h.transport = Transport::Tcp;
    let mut c = Dp750::new(0);
    c.transport = "TCP";
    let sdp = dp750_sdp("192.168.1.50", 5004, "sendrecv");
    let extra = ["Session-Expires: 90;refresher=uas"];
    h.send(PHONE, &c.request("INVITE", Some(&sdp), &extra));
    c.to_tag = h.response("SIP/2.0 200").to_tag();
    h.send(PHONE, &c.ack(None));
    h.advance(Duration::from_secs(45));
    let update = h.last_sip().clone();
    assert!(
        update.start_line().starts_with("UPDATE "),
        "{}",
        h.transcript()
    );
    h.server
        .transport_error(h.now, Transport::Tcp, update.t.remote);
    h.drain();
    assert!(
        h.events.iter().any(|(_, e)| matches!(
            e,
            Event::CallEnded {
                reason: EndReason::SessionExpired,
                ..
            }
        )),
        "{}",
        h.transcript()
    );
}
