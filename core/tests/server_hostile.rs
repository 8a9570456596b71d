//! What an attacker on the network can do to a call it did not place: requests that carry a
//! live dialog's Call-ID and our tag but the wrong From tag or come from another host (RFC 3261
//! §12: a dialog is the Call-ID and both tags; we also take them only from the dialog's peer),
//! and SDP that aims the stream at an address no caller should name.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use onhold_core::server::{InDialogFrom, Limits, MediaTo};
use onhold_core::{Event, ServerConfig};

/// Inside the allowed networks (an attacker outside them is dropped before any of this).
const ATTACKER: &str = "192.168.1.66:5060";
const VICTIM: &str = "198.51.100.9";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// INVITE → 200 (the 200's To tag kept in `c`); no ACK yet.
fn answered(h: &mut Harness) -> Dp750 {
    let mut c = Dp750::new(0);
    let sdp = dp750_sdp("192.168.1.50", 5004, "sendrecv");
    h.send(PHONE, &c.request("INVITE", Some(&sdp), &[]));
    c.to_tag = h.response("SIP/2.0 200").to_tag();
    c
}

fn ended(h: &Harness) -> bool {
    h.events
        .iter()
        .any(|(_, e)| matches!(e, Event::CallEnded { .. }))
}

/// RTP packets sent to `ip` so far.
fn rtp_to(h: &Harness, ip: &str) -> usize {
    let ip: std::net::IpAddr = ip.parse().unwrap();
    h.rtp().iter().filter(|p| p.t.remote.ip() == ip).count()
}

fn established(h: &mut Harness) -> Dp750 {
    let mut c = answered(h);
    h.send(PHONE, &c.ack(None));
    assert!(h.started_call().is_some(), "{}", h.transcript());
    c
}

/// The request `c` would send next, with a new branch and CSeq.
fn next(c: &mut Dp750, method: &str, body: Option<&str>) -> String {
    c.next_branch();
    c.cseq += 1;
    c.request(method, body, &[])
}

#[test]
fn an_ack_with_the_wrong_from_tag_starts_nothing() {
    let mut h = Harness::new();
    let mut c = answered(&mut h);
    let real_tag = c.from_tag.clone();
    c.from_tag = "forged".into();
    h.send(PHONE, &c.ack(None));
    assert_eq!(h.started_call(), None, "{}", h.transcript());
    h.advance(ms(200));
    assert_eq!(rtp_to(&h, "192.168.1.50"), 0);
    // The caller's own ACK still works.
    c.from_tag = real_tag;
    h.send(PHONE, &c.ack(None));
    assert!(h.started_call().is_some(), "{}", h.transcript());
}

#[test]
fn an_ack_from_another_host_starts_nothing() {
    let mut h = Harness::new();
    let mut c = answered(&mut h);
    h.send(ATTACKER, &c.ack(None));
    assert_eq!(h.started_call(), None, "{}", h.transcript());
    assert_eq!(h.server.stats().foreign_in_dialog, 1);
}

#[test]
fn a_re_invite_from_another_host_cannot_move_the_media() {
    let mut h = Harness::new();
    let mut c = established(&mut h);
    let sdp = dp750_sdp(VICTIM, 4000, "sendrecv");
    h.send(ATTACKER, &next(&mut c, "INVITE", Some(&sdp)));
    assert!(
        h.last_sip().start_line().starts_with("SIP/2.0 481"),
        "{}",
        h.transcript()
    );
    h.advance(Duration::from_secs(3));
    assert_eq!(rtp_to(&h, VICTIM), 0);
    assert!(rtp_to(&h, "192.168.1.50") >= 140, "{}", h.transcript());
}

#[test]
fn with_any_source_allowed_a_stranger_still_cannot_move_the_media() {
    let config = ServerConfig {
        in_dialog_from: InDialogFrom::Any,
        ..ServerConfig::default()
    };
    let mut h = Harness::with(config, onhold_core::media::Library::silence());
    let mut c = established(&mut h);
    let sdp = dp750_sdp(VICTIM, 4000, "sendrecv");
    h.send(ATTACKER, &next(&mut c, "INVITE", Some(&sdp)));
    let refusal = h.last_sip().clone();
    assert!(
        refusal.start_line().starts_with("SIP/2.0 488"),
        "{}",
        h.transcript()
    );
    assert!(refusal.header("Warning").unwrap().starts_with("301 "));
    h.advance(Duration::from_secs(1));
    assert_eq!(rtp_to(&h, VICTIM), 0);
    // The caller itself may move it.
    let sdp = dp750_sdp("192.168.1.51", 4000, "sendrecv");
    h.send(PHONE, &next(&mut c, "INVITE", Some(&sdp)));
    assert!(h.last_sip().start_line().starts_with("SIP/2.0 200"));
    h.send(PHONE, &c.ack(None));
    h.advance(Duration::from_secs(1));
    assert!(rtp_to(&h, "192.168.1.51") > 40, "{}", h.transcript());
    assert_eq!(h.server.stats().media_moved, 1);
}

#[test]
fn a_bye_with_the_wrong_from_tag_or_from_another_host_ends_nothing() {
    let mut h = Harness::new();
    let mut c = established(&mut h);
    let real_tag = c.from_tag.clone();
    c.from_tag = "forged".into();
    h.send(PHONE, &next(&mut c, "BYE", None));
    assert!(h.last_sip().start_line().starts_with("SIP/2.0 481"));
    c.from_tag = real_tag;
    h.send(ATTACKER, &next(&mut c, "BYE", None));
    assert!(h.last_sip().start_line().starts_with("SIP/2.0 481"));
    h.advance(ms(500));
    assert!(!ended(&h), "{}", h.transcript());
    h.send(PHONE, &next(&mut c, "BYE", None));
    assert!(h.last_sip().start_line().starts_with("SIP/2.0 200"));
    assert!(ended(&h));
}

/// A caller behind a proxy: its requests come from the proxy's address, which is the INVITE's
/// source, so they are taken.
#[test]
fn requests_through_the_record_routing_proxy_are_taken() {
    let mut h = Harness::new();
    let proxy = "10.0.0.7:5060";
    let mut c = Dp750::new(0);
    let sdp = dp750_sdp("192.168.1.50", 5004, "sendrecv");
    let rr = ["Record-Route: <sip:10.0.0.7;lr>"];
    h.send(proxy, &c.request("INVITE", Some(&sdp), &rr));
    c.to_tag = h.response("SIP/2.0 200").to_tag();
    h.send(proxy, &c.ack(None));
    assert!(h.started_call().is_some(), "{}", h.transcript());
    h.send(proxy, &next(&mut c, "BYE", None));
    assert!(h.last_sip().start_line().starts_with("SIP/2.0 200"));
    assert!(ended(&h));
}

fn offer_answer(h: &mut Harness, from: &str, media_ip: &str) -> Sent {
    let c = Dp750::new(0);
    h.send(
        from,
        &c.request("INVITE", Some(&dp750_sdp(media_ip, 4000, "sendrecv")), &[]),
    );
    h.sip()
        .into_iter()
        .rev()
        .find(|s| s.start_line().starts_with("SIP/2.0") && !s.start_line().contains(" 100 "))
        .expect("a final response")
        .clone()
}

#[test]
fn media_may_not_go_to_broadcast_reserved_or_another_hosts_loopback() {
    for (media, from, why) in [
        ("255.255.255.255", PHONE, "broadcast"),
        ("0.1.2.3", PHONE, "reserved"),
        ("127.0.0.1", PHONE, "loopback"),
        ("169.254.0.1", PHONE, "link-local"),
    ] {
        let mut h = Harness::new();
        let answer = offer_answer(&mut h, from, media);
        assert!(
            answer.start_line().starts_with("SIP/2.0 488"),
            "{media}: {}",
            h.transcript()
        );
        let warning = answer.header("Warning").unwrap();
        assert!(
            warning.starts_with("301 ") && warning.contains(why),
            "{warning}"
        );
        assert_eq!(h.server.stats().media_refused, 1);
    }
    // A caller on loopback may name loopback (a local test client, a PBX on the same host).
    let mut h = Harness::new();
    let answer = offer_answer(&mut h, "127.0.0.1:5070", "127.0.0.1");
    assert!(
        answer.start_line().starts_with("SIP/2.0 200"),
        "{}",
        h.transcript()
    );
}

#[test]
fn sip_source_mode_streams_to_the_caller_whatever_its_sdp_says() {
    let config = ServerConfig {
        media_to: MediaTo::SipSource,
        ..ServerConfig::default()
    };
    let mut h = Harness::with(config, onhold_core::media::Library::silence());
    let mut c = Dp750::new(0);
    h.send(
        PHONE,
        &c.request("INVITE", Some(&dp750_sdp(VICTIM, 4000, "sendrecv")), &[]),
    );
    c.to_tag = h.response("SIP/2.0 200").to_tag();
    h.send(PHONE, &c.ack(None));
    h.advance(ms(500));
    assert_eq!(rtp_to(&h, VICTIM), 0);
    let to_caller: Vec<SocketAddr> = h.rtp().iter().map(|p| p.t.remote).collect();
    assert!(to_caller.len() > 20, "{}", h.transcript());
    assert!(to_caller.iter().all(|a| *a == addr("192.168.1.50:4000")));
}

/// RFC 3261 §8.1.1.5: a CSeq number must be below 2^31; §25.1: a tag is a token, so a NUL
/// (or any control byte) in one makes the request malformed.
#[test]
fn out_of_range_cseq_and_control_bytes_in_tags_get_400() {
    let sdp = dp750_sdp("192.168.1.50", 5004, "sendrecv");
    let mut c = Dp750::new(0);
    c.cseq = 1 << 31;
    let mut h = Harness::new();
    h.send(PHONE, &c.request("INVITE", Some(&sdp), &[]));
    assert!(
        h.last_sip().start_line().starts_with("SIP/2.0 400"),
        "{}",
        h.transcript()
    );
    c.cseq = (1 << 31) - 1;
    let mut h = Harness::new();
    h.send(PHONE, &c.request("INVITE", Some(&sdp), &[]));
    assert!(h.response("SIP/2.0 200").start_line().contains("200"));

    let mut c = Dp750::new(1);
    c.from_tag = "ab\0cd".into();
    let mut h = Harness::new();
    h.send(PHONE, &c.request("INVITE", Some(&sdp), &[]));
    assert!(
        h.last_sip().start_line().starts_with("SIP/2.0 400"),
        "{}",
        h.transcript()
    );
    assert_eq!(h.started_call(), None);
}

/// An INVITE refused at once earns one response per datagram it sends: the caller, with no
/// provisional response yet, retransmits on timer A and each copy is answered, so timer G
/// would only multiply what a spoofed source reflects at its victim.
#[test]
fn a_refusal_is_sent_once_per_request_not_on_timer_g() {
    let mut h = Harness::new();
    let c = Dp750::new(0);
    let invite = c.request("INVITE", Some(&dp750_sdp(VICTIM, 4000, "sendrecv")), &[]);
    let invite = invite.replace(VICTIM, "255.255.255.255");
    h.send(PHONE, &invite);
    h.advance(Duration::from_secs(40));
    let refusals = |h: &Harness| {
        h.sip()
            .iter()
            .filter(|s| s.start_line().starts_with("SIP/2.0 488"))
            .count()
    };
    assert_eq!(refusals(&h), 1, "{}", h.transcript());
    let mut h = Harness::new();
    h.send(PHONE, &invite);
    h.advance(ms(500));
    h.send(PHONE, &invite);
    h.advance(ms(1000));
    h.send(PHONE, &invite);
    assert_eq!(
        refusals(&h),
        3,
        "each retransmission answered: {}",
        h.transcript()
    );
}

/// After a 100 the caller has stopped retransmitting: a final error then is retransmitted on
/// timer G until the ACK (RFC 3261 §17.2.1), as before.
#[test]
fn a_final_error_after_a_provisional_still_goes_on_timer_g() {
    let mut h = Harness::new();
    h.refuse_binds = 1000; // every RTP port refused: 503 after the 100
    let c = Dp750::new(0);
    h.send(
        PHONE,
        &c.request(
            "INVITE",
            Some(&dp750_sdp("192.168.1.50", 4000, "sendrecv")),
            &[],
        ),
    );
    h.advance(Duration::from_secs(8));
    let finals = h
        .sip()
        .iter()
        .filter(|s| s.start_line().starts_with("SIP/2.0 5"))
        .count();
    assert!(finals >= 4, "{}", h.transcript());
}

#[test]
fn a_full_server_answers_503_with_retry_after() {
    let config = ServerConfig {
        max_calls: 1,
        ..ServerConfig::default()
    };
    let mut h = Harness::with(config, onhold_core::media::Library::silence());
    established(&mut h);
    let c = Dp750::new(1);
    h.send(
        PHONE,
        &c.request(
            "INVITE",
            Some(&dp750_sdp("192.168.1.50", 4002, "sendrecv")),
            &[],
        ),
    );
    let full = h.last_sip().clone();
    assert!(
        full.start_line().starts_with("SIP/2.0 503"),
        "{}",
        h.transcript()
    );
    assert_eq!(full.header("Retry-After").as_deref(), Some("10"));
    assert_eq!(h.server.stats().refused_full, 1);
}

/// INVITEs nobody ACKs hold the RTP port pool only for `ack_wait` (8 s), not 64·T1 (32 s):
/// a sender of INVITEs without ACKs cannot keep real callers out.
#[test]
fn unacknowledged_invites_give_their_ports_back_after_ack_wait() {
    let config = ServerConfig {
        rtp_ports: (10000, 10007), // four calls
        ..ServerConfig::default()
    };
    let mut h = Harness::with(config, onhold_core::media::Library::silence());
    let sdp = dp750_sdp("192.168.1.50", 5004, "sendrecv");
    for n in 0..4 {
        h.send(PHONE, &Dp750::new(n).request("INVITE", Some(&sdp), &[]));
        assert!(
            h.last_sip().start_line().starts_with("SIP/2.0 200"),
            "{}",
            h.transcript()
        );
    }
    h.send(PHONE, &Dp750::new(4).request("INVITE", Some(&sdp), &[]));
    assert!(
        h.last_sip().start_line().starts_with("SIP/2.0 503"),
        "the pool is full: {}",
        h.transcript()
    );
    h.advance(Duration::from_secs(9));
    let mut c = Dp750::new(5);
    h.send(PHONE, &c.request("INVITE", Some(&sdp), &[]));
    c.to_tag = h.response("SIP/2.0 200").to_tag();
    h.send(PHONE, &c.ack(None));
    assert!(h.started_call().is_some(), "{}", h.transcript());
}

/// SIP from outside `allow` (by default the private networks) is dropped unanswered, or
/// answered 403 when so configured; OPTIONS from inside is answered.
#[test]
fn sip_from_outside_the_allowed_networks_is_dropped_or_forbidden() {
    use onhold_core::server::DenyAction;
    let options = |n: u32| Dp750::new(n).request("OPTIONS", None, &[]);
    let mut h = Harness::new();
    h.send("203.0.113.9:5060", &options(0));
    h.send("[2001:db8::9]:5060", &options(1));
    let mut c = Dp750::new(2);
    c.to_tag = None;
    h.send(
        "203.0.113.9:5060",
        &c.request(
            "INVITE",
            Some(&dp750_sdp("203.0.113.9", 4000, "sendrecv")),
            &[],
        ),
    );
    assert!(h.sip().is_empty(), "{}", h.transcript());
    assert_eq!(h.server.stats().denied, 3);
    h.send("10.9.9.9:5060", &options(3));
    assert!(h.last_sip().start_line().starts_with("SIP/2.0 200"));

    let config = ServerConfig {
        deny_action: DenyAction::Forbidden,
        ..ServerConfig::default()
    };
    let mut h = Harness::with(config, onhold_core::media::Library::silence());
    h.send("203.0.113.9:5060", &options(4));
    assert!(
        h.last_sip().start_line().starts_with("SIP/2.0 403"),
        "{}",
        h.transcript()
    );

    let config = ServerConfig {
        allow: vec![onhold_core::server::Network::parse("0.0.0.0/0").unwrap()],
        ..ServerConfig::default()
    };
    let mut h = Harness::with(config, onhold_core::media::Library::silence());
    h.send("203.0.113.9:5060", &options(5));
    assert!(h.last_sip().start_line().starts_with("SIP/2.0 200"));
}

/// A request whose headers would make our answer larger than a datagram gets 513 with only
/// its top Via, or nothing when even that would not fit; nothing is ever sent cut short.
#[test]
fn requests_too_large_to_answer_get_a_trimmed_513_or_nothing() {
    let mut h = Harness::new();
    let c = Dp750::new(0);
    let options = c.request("OPTIONS", None, &[]);
    // 1,000 Vias on 100 lines (a message may have at most 128 header lines).
    let extra: String = (0..100)
        .map(|line| {
            let vias: Vec<String> = (0..10)
                .map(|n| format!("SIP/2.0/UDP 10.0.{line}.{n}:5060;branch=z9hG4bK{line:04}{n:04}"))
                .collect();
            format!("Via: {}\r\n", vias.join(", "))
        })
        .collect();
    let many_vias = options.replacen("From:", &format!("{extra}From:"), 1);
    assert!(
        many_vias.len() > 40_000 && many_vias.len() < 65_507,
        "{}",
        many_vias.len()
    );
    h.send(PHONE, &many_vias);
    let answer = h.last_sip().clone();
    assert!(
        answer.start_line().starts_with("SIP/2.0 513"),
        "{}",
        h.transcript()
    );
    assert_eq!(
        answer.text().matches("\r\nVia: ").count(),
        1,
        "{}",
        answer.text()
    );
    assert!(answer.text().ends_with("Content-Length: 0\r\n\r\n"));

    let huge_from = options.replacen(
        "From: \"Reception\"",
        &format!("From: \"{}\"", "R".repeat(20_000)),
        1,
    );
    let before = h.sip().len();
    h.send(PHONE, &huge_from);
    assert_eq!(h.sip().len(), before, "nothing fits: nothing is sent");
    assert_eq!(h.server.stats().oversized, 2);
    for s in h.sip() {
        assert!(s.bytes.len() <= onhold_core::MAX_DATAGRAM);
    }
}

fn invite(n: u32) -> String {
    let sdp = dp750_sdp("192.168.1.50", 4000 + 2 * n as u16, "sendrecv");
    Dp750::new(n).request("INVITE", Some(&sdp), &[])
}

fn limited(limits: Limits) -> Harness {
    let config = ServerConfig {
        limits,
        ..ServerConfig::default()
    };
    Harness::with(config, onhold_core::media::Library::silence())
}

/// A source placing calls faster than `invite_rate` (after its burst) gets a 503 that says
/// when to come back, and no state is kept for it; other sources still get in, and it gets in
/// again once its bucket has a token.
#[test]
fn a_source_over_its_invite_rate_gets_503_and_leaves_nothing_behind() {
    let mut h = limited(Limits {
        invite_rate: 10.0,
        invite_burst: 5,
        ..Limits::default()
    });
    for n in 0..5 {
        h.send(PHONE, &invite(n));
        assert!(h.last_sip().start_line().starts_with("SIP/2.0 200"));
    }
    let before = h.server.occupancy();
    h.send(PHONE, &invite(5));
    let refused = h.last_sip().clone();
    assert!(
        refused.start_line().starts_with("SIP/2.0 503"),
        "{}",
        h.transcript()
    );
    assert_eq!(refused.header("Retry-After").as_deref(), Some("1"));
    assert!(refused.to_tag().is_some(), "a final response has a To tag");
    assert_eq!(h.server.occupancy(), before, "the refusal keeps nothing");
    assert_eq!(h.server.stats().refused_rate, 1);
    // Its retransmission is refused again, once.
    let sent = h.sip().len();
    h.send(PHONE, &invite(5));
    assert_eq!(h.sip().len(), sent + 1);
    h.send("192.168.1.51:5060", &invite(6));
    assert!(h.last_sip().start_line().starts_with("SIP/2.0 200"));
    h.advance(ms(100));
    h.send(PHONE, &invite(7));
    assert!(
        h.last_sip().start_line().starts_with("SIP/2.0 200"),
        "{}",
        h.transcript()
    );
}

#[test]
fn a_source_holding_its_share_of_calls_gets_503_until_one_ends() {
    let mut h = limited(Limits {
        calls_per_source: 2,
        ..Limits::default()
    });
    let mut first = Dp750::new(0);
    h.send(PHONE, &invite(0));
    first.to_tag = h.response("SIP/2.0 200").to_tag();
    h.send(PHONE, &first.ack(None));
    h.send(PHONE, &invite(1));
    h.send(PHONE, &invite(2));
    assert!(
        h.last_sip().start_line().starts_with("SIP/2.0 503"),
        "{}",
        h.transcript()
    );
    assert_eq!(h.server.stats().refused_source_calls, 1);
    h.send("192.168.1.51:5060", &invite(3));
    assert!(h.last_sip().start_line().starts_with("SIP/2.0 200"));
    let bye = next(&mut first, "BYE", None);
    h.send(PHONE, &bye);
    h.send(PHONE, &invite(4));
    assert!(
        h.last_sip().start_line().starts_with("SIP/2.0 200"),
        "{}",
        h.transcript()
    );
}

/// Transactions in flight are capped per source: a source at its cap gets a stateless 503 for
/// anything new, while another source is answered; once its transactions end (64·T1 on UDP)
/// it is answered again.
#[test]
fn a_source_at_its_transaction_cap_is_refused_statelessly() {
    let mut h = limited(Limits {
        transactions_per_source: 3,
        ..Limits::default()
    });
    let options = |n: u32| Dp750::new(n).request("OPTIONS", None, &[]);
    for n in 0..3 {
        h.send(PHONE, &options(n));
        assert!(h.last_sip().start_line().starts_with("SIP/2.0 200"));
    }
    h.send(PHONE, &options(3));
    assert!(
        h.last_sip().start_line().starts_with("SIP/2.0 503"),
        "{}",
        h.transcript()
    );
    assert_eq!(h.last_sip().header("Retry-After").as_deref(), Some("5"));
    assert_eq!(h.server.occupancy().server_transactions, 3);
    assert_eq!(h.server.stats().refused_transactions, 1);
    h.send("192.168.1.51:5060", &options(4));
    assert!(h.last_sip().start_line().starts_with("SIP/2.0 200"));
    // A retransmission of an answered request is still absorbed by its transaction.
    let sent = h.sip().len();
    h.send(PHONE, &options(0));
    assert_eq!(h.sip().len(), sent + 1);
    assert!(h.last_sip().start_line().starts_with("SIP/2.0 200"));
    h.advance(Duration::from_secs(33));
    assert_eq!(h.server.occupancy().server_transactions, 0);
    assert_eq!(h.server.occupancy().transaction_bytes, 0);
    h.send(PHONE, &options(5));
    assert!(h.last_sip().start_line().starts_with("SIP/2.0 200"));
}

/// Nothing we answer is larger than the request (RFC 3261 §26.3.2.4: a spoofed source must not
/// make us an amplifier): a response to a small request goes without its optional lines. Only
/// a request smaller than its bare answer (no Max-Forwards, no Content-Length) gets up to the
/// To tag, `received` and Content-Length more.
#[test]
fn no_answer_is_larger_than_its_request() {
    let mut h = Harness::new();
    let mut c = Dp750::new(0);
    c.to_tag = Some("ours".into());
    let requests = [
        Dp750::new(1).request("OPTIONS", None, &[]),
        Dp750::new(2).request("FROB", None, &[]), // 405 with Allow
        c.request("INFO", None, &[]),             // 481
        Dp750::new(3).request("OPTIONS", None, &["Require: 100rel"]), // 420
        Dp750::new(4)
            .request("OPTIONS", None, &["Max-Forwards: 0"])
            .replacen("Max-Forwards: 70\r\n", "", 1), // 483
        Dp750::new(5)
            .request("OPTIONS", None, &[])
            .replacen("sip:123@", "im:123@", 1), // 416
    ];
    for (n, request) in requests.iter().enumerate() {
        h.send(PHONE, request);
        let answer = h.last_sip().clone();
        assert!(
            answer.bytes.len() <= request.len(),
            "answer {n} is {} bytes for a request of {}:\n{}",
            answer.bytes.len(),
            request.len(),
            answer.text()
        );
    }
    // The 405 keeps the Allow the RFC requires even when trimmed.
    let small = "FROB sip:a@192.168.1.100 SIP/2.0\r\nVia: SIP/2.0/UDP 192.168.1.50:5060;branch=z9hG4bKs1\r\nFrom: <sip:b@c>;tag=1\r\nTo: <sip:a@d>\r\nCall-ID: s1\r\nCSeq: 1 FROB\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    h.send(PHONE, small);
    let answer = h.last_sip().clone();
    assert!(answer.start_line().starts_with("SIP/2.0 405"));
    assert!(answer.header("Allow").is_some(), "{}", answer.text());
    assert!(answer.header("Server").is_none(), "{}", answer.text());
    // The smallest request we answer: its answer adds at most the To tag, `received` and
    // Content-Length.
    let bare = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 192.168.1.50:5060;branch=z9hG4bKb\r\nFrom: <sip:b@c>;tag=1\r\nTo: <sip:a@d>\r\nCall-ID: b\r\nCSeq: 1 OPTIONS\r\n\r\n";
    h.send(PHONE, bare);
    let answer = h.last_sip().clone();
    assert!(answer.start_line().starts_with("SIP/2.0 200"));
    assert!(answer.bytes.len() <= bare.len() + 80, "{}", answer.text());
}

/// An INVITE from a spoofed source that never ACKs earns a 100, the 200 until `ack_wait` (five
/// in 8 s) and one BYE, each no larger than the INVITE: about 7× its size in all, where RFC
/// 3261's timers alone would send 1 + 11 responses and 11 BYEs.
#[test]
fn an_invite_nobody_acknowledges_earns_a_bounded_reply() {
    let mut h = Harness::new();
    let request = invite(0);
    h.send(PHONE, &request);
    h.advance(Duration::from_secs(70));
    let sip = h.sip();
    let starts: Vec<String> = sip.iter().map(|s| s.start_line()).collect();
    assert_eq!(sip.len(), 7, "{starts:?}");
    let byes = starts.iter().filter(|s| s.starts_with("BYE ")).count();
    assert_eq!(byes, 1, "the BYE goes once: {starts:?}");
    for s in &sip {
        assert!(
            s.bytes.len() <= request.len(),
            "{} bytes for a {}-byte INVITE:\n{}",
            s.bytes.len(),
            request.len(),
            s.text()
        );
    }
    let total: usize = sip.iter().map(|s| s.bytes.len()).sum();
    assert!(total <= 7 * request.len(), "{total} bytes");
}

/// The local and remote address of the call's RTP, from the packets it sent.
fn rtp_path(h: &Harness) -> (SocketAddr, SocketAddr) {
    let p = h.rtp().last().map(|p| p.t).expect("RTP flows");
    (p.local, p.remote)
}

/// ICMP port unreachable for the stream's destination, one a second as Linux rate-limits them,
/// ends the call with BYE after 2 s: nobody listens there, or it was a victim's address.
#[test]
fn a_stream_the_network_calls_unreachable_ends_with_bye() {
    let mut h = Harness::new();
    established(&mut h);
    h.advance(ms(100));
    let (local, remote) = rtp_path(&h);
    for _ in 0..2 {
        h.unreachable(local, remote);
        h.advance(ms(1000));
    }
    assert!(!ended(&h), "not before 2 s of errors: {}", h.transcript());
    h.unreachable(local, remote);
    let reason = h.events.iter().find_map(|(_, e)| match e {
        Event::CallEnded { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    assert_eq!(reason, Some(onhold_core::EndReason::Unreachable));
    assert!(
        h.last_sip().start_line().starts_with("BYE "),
        "{}",
        h.transcript()
    );
    assert_eq!(h.server.stats().unreachable, 3);
    let sent = h.rtp().len();
    h.advance(ms(200));
    assert_eq!(h.rtp().len(), sent, "no RTP after the BYE");
}

/// A lone error, errors far apart, errors for another address, or errors while the caller's
/// own RTP keeps arriving do not end a call.
#[test]
fn icmp_errors_that_do_not_show_a_dead_destination_end_nothing() {
    let mut h = Harness::new();
    established(&mut h);
    h.advance(ms(100));
    let (local, remote) = rtp_path(&h);
    // Far apart: each starts the count again.
    for _ in 0..4 {
        h.unreachable(local, remote);
        h.advance(ms(3000));
    }
    // Another destination (someone else's ICMP).
    let elsewhere: SocketAddr = "192.168.1.77:4000".parse().unwrap();
    for _ in 0..5 {
        h.unreachable(local, elsewhere);
        h.advance(ms(1000));
    }
    // The caller's RTP arrives between the errors: its host is there.
    for _ in 0..5 {
        h.unreachable(local, remote);
        h.rtp_in(remote, local);
        h.advance(ms(1000));
    }
    assert!(!ended(&h), "{}", h.transcript());
}

/// The attack that breaks xoshiro256**, a fast generator that is not a CSPRNG: its output
/// `rotl(s1·5, 7)·9` gives `s1` back, and `s1` at four consecutive steps gives the whole
/// state, so four observed tags predict every later one.
mod xoshiro_attack {
    const INV9: u64 = 0x8e38_e38e_38e3_8e39; // 9⁻¹ mod 2⁶⁴
    const INV5: u64 = 0xcccc_cccc_cccc_cccd; // 5⁻¹ mod 2⁶⁴

    pub struct Xoshiro(pub [u64; 4]);

    impl Xoshiro {
        pub fn next(&mut self) -> u64 {
            let s = &mut self.0;
            let out = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
            let t = s[1] << 17;
            s[2] ^= s[0];
            s[3] ^= s[1];
            s[1] ^= s[2];
            s[0] ^= s[3];
            s[2] ^= t;
            s[3] = s[3].rotate_left(45);
            out
        }
    }

    /// The generator's state after the four outputs, from them alone.
    pub fn recover(out: [u64; 4]) -> Xoshiro {
        let b = out.map(|o| o.wrapping_mul(INV9).rotate_right(7).wrapping_mul(INV5));
        let a0_c0 = b[0] ^ b[1];
        let c0_d0 = b[2] ^ b[1] ^ b[0] ^ (b[0] << 17);
        let c1 = a0_c0 ^ (b[0] << 17);
        let d1 = b[3] ^ b[2] ^ b[1] ^ (b[1] << 17) ^ c1;
        let d0 = d1.rotate_right(45) ^ b[0];
        let c0 = c0_d0 ^ d0;
        let a0 = a0_c0 ^ c0;
        let mut g = Xoshiro([a0, b[0], c0, d0]);
        for _ in 0..4 {
            g.next();
        }
        g
    }
}

/// Tags come from a ChaCha8 keystream: the four tags before a tag do not give it away, as they
/// would from xoshiro256** (and then every tag to come).
#[test]
fn a_tag_cannot_be_predicted_from_the_ones_before() {
    use xoshiro_attack::*;
    // The attack works on xoshiro256**.
    let mut old = Xoshiro([1, 2, 3, 0xdead_beef]);
    let seen = [old.next(), old.next(), old.next(), old.next()];
    assert_eq!(recover(seen).next(), old.next());

    // Each OPTIONS answer carries a new To tag, 64 bits of the generator in hex.
    let mut h = Harness::new();
    let tags: Vec<u64> = (0..40)
        .map(|n| {
            h.send(PHONE, &Dp750::new(n).request("OPTIONS", None, &[]));
            let tag = h.last_sip().to_tag().expect("a To tag");
            u64::from_str_radix(&tag, 16).expect("16 hex digits")
        })
        .collect();
    let predicted = tags
        .windows(5)
        .filter(|w| recover([w[0], w[1], w[2], w[3]]).next() == w[4])
        .count();
    assert_eq!(predicted, 0, "{tags:x?}");
}

/// RTCP goes only to the RTP host: an offer's `a=rtcp` (RFC 3605) naming another address keeps
/// its port, not its address, which the media rules never judged.
#[test]
fn rtcp_goes_only_to_the_rtp_host() {
    let mut h = Harness::new();
    let mut c = Dp750::new(0);
    let sdp = dp750_sdp("192.168.1.50", 5004, "sendrecv").replace(
        "a=sendrecv\r\n",
        "a=sendrecv\r\na=rtcp:7000 IN IP4 127.0.0.1\r\n",
    );
    h.send(PHONE, &c.request("INVITE", Some(&sdp), &[]));
    c.to_tag = h.response("SIP/2.0 200").to_tag();
    h.send(PHONE, &c.ack(None));
    h.advance(Duration::from_secs(12));
    let rtcp: Vec<SocketAddr> = h
        .sent
        .iter()
        .filter(|s| s.t.kind == onhold_core::TransmitKind::Rtcp)
        .map(|s| s.t.remote)
        .collect();
    assert!(!rtcp.is_empty(), "{}", h.transcript());
    assert!(
        rtcp.iter()
            .all(|a| *a == "192.168.1.50:7000".parse().unwrap()),
        "{rtcp:?}"
    );
}

/// A request too large to answer in full from a source already at its transaction cap gets
/// nothing: the 513 would need a transaction, and the stateless 503 would copy every Via.
#[test]
fn a_request_too_large_and_over_the_caps_gets_nothing() {
    let mut h = limited(Limits {
        transactions_per_source: 1,
        ..Limits::default()
    });
    h.send(PHONE, &Dp750::new(0).request("OPTIONS", None, &[]));
    let sent = h.sip().len();
    let vias: Vec<String> = (0..400)
        .map(|n| format!("SIP/2.0/UDP 10.0.1.{}:5060;branch=z9hG4bK{n:06}", n % 250))
        .collect();
    let big = Dp750::new(1).request("OPTIONS", None, &[]).replacen(
        "From:",
        &format!("Via: {}\r\nFrom:", vias.join(", ")),
        1,
    );
    h.send(PHONE, &big);
    assert_eq!(h.sip().len(), sent, "{}", h.transcript());
    assert_eq!(h.server.stats().refused_transactions, 1);
}

/// A runtime that falls behind its calls (every wake 50 ms late, so each packet leaves 30–50 ms
/// after its place on the grid) makes the server refuse new calls with one stateless 503 until
/// it keeps up again, instead of taking more and making every call worse; the calls already up
/// go on.
#[test]
fn new_calls_are_refused_while_the_runtime_falls_behind() {
    let mut h = Harness::new();
    established(&mut h);
    h.advance(ms(500));
    let sdp = dp750_sdp("192.168.1.50", 5004, "sendrecv");
    let before = h.rtp().len();
    for _ in 0..30 {
        h.now += ms(50);
        h.server.handle_timeout(h.now);
        h.drain();
    }
    assert!(h.rtp().len() > before + 60, "the call up goes on");
    h.send(PHONE, &Dp750::new(7).request("INVITE", Some(&sdp), &[]));
    let refused = h.last_sip();
    assert!(
        refused.start_line().starts_with("SIP/2.0 503"),
        "{}",
        h.transcript()
    );
    assert_eq!(refused.header("Retry-After").as_deref(), Some("5"));
    assert_eq!(h.server.stats().refused_overload, 1);
    assert!(h.events.iter().any(|(_, e)| matches!(
        e,
        Event::LimitHit {
            limit: onhold_core::Limit::Overload,
            ..
        }
    )));
    // On time again: after a whole second of it, calls are taken.
    h.advance(Duration::from_secs(2));
    h.send(PHONE, &Dp750::new(8).request("INVITE", Some(&sdp), &[]));
    assert!(
        h.last_sip().start_line().starts_with("SIP/2.0 200"),
        "{}",
        h.transcript()
    );
}

/// Late wake-ups within `overload_lateness` (a busy but coping host) refuse nothing.
#[test]
fn a_little_lateness_refuses_no_calls() {
    let mut h = Harness::new();
    established(&mut h);
    for _ in 0..100 {
        h.now += ms(25);
        h.server.handle_timeout(h.now);
        h.drain();
    }
    let sdp = dp750_sdp("192.168.1.50", 5004, "sendrecv");
    h.send(PHONE, &Dp750::new(9).request("INVITE", Some(&sdp), &[]));
    assert!(
        h.last_sip().start_line().starts_with("SIP/2.0 200"),
        "{}",
        h.transcript()
    );
    assert_eq!(h.server.stats().refused_overload, 0);
}
