//! Complete SIP exchanges through `Server` on virtual time: the DP750's three INVITE shapes,
//! hold/unhold, CANCEL, BYE both ways, lost ACKs, retransmissions, and every rejection.

mod common;

use std::time::Duration;

use common::*;
use onhold_core::{Control, EndReason, Event, ServerConfig};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// INVITE → 100 → 200 → ACK for a DP750 call of the given shape; returns the call's identity.
fn establish(h: &mut Harness, n: u32, body: Option<&str>, ack_body: Option<&str>) -> Dp750 {
    let mut c = Dp750::new(n);
    h.send(PHONE, &c.request("INVITE", body, &[]));
    let ok = h.response("SIP/2.0 200");
    c.to_tag = ok.to_tag();
    assert!(c.to_tag.is_some(), "200 without To tag");
    h.advance(ms(30));
    let before = h.rtp().len();
    h.send(PHONE, &c.ack(ack_body));
    assert!(
        h.rtp()[..before]
            .iter()
            .all(|p| p.t.local.port() != h.rtp()[h.rtp().len() - 1].t.local.port()),
        "no RTP before the ACK"
    );
    c
}

#[test]
fn shape_a_own_address_sendrecv() {
    let mut h = Harness::new();
    let mut c = establish(
        &mut h,
        0,
        Some(&dp750_sdp("192.168.1.50", 5004, "sendrecv")),
        None,
    );
    let ok = h.response("SIP/2.0 200").clone();
    assert!(ok
        .header("Contact")
        .unwrap()
        .contains("sip:123@192.168.1.100:5060"));
    assert!(ok.body().contains("a=sendonly"));
    assert!(ok.body().contains("m=audio "));
    assert!(
        ok.body().contains(" RTP/AVP 0 101\r\n"),
        "PCMU (first offered) plus telephone-event: {}",
        ok.body()
    );
    h.advance(ms(1000));
    let rtp = h.rtp();
    assert_eq!(rtp.len(), 51, "packets at 0, 20, …, 1000 ms after the ACK");
    insta::assert_snapshot!("shape_a_200_ok", ok.text());
    assert!(rtp.iter().all(|p| p.t.remote == addr("192.168.1.50:5004")));
    assert!(rtp[0].rtp_marker() && !rtp[1].rtp_marker());
    for w in rtp.windows(2) {
        assert_eq!(w[1].rtp_seq(), w[0].rtp_seq().wrapping_add(1));
        assert_eq!(w[1].rtp_ts(), w[0].rtp_ts().wrapping_add(160));
        assert_eq!(w[1].at - w[0].at, ms(20), "paced on the 20 ms grid");
        assert_eq!(w[1].rtp_ssrc(), w[0].rtp_ssrc());
    }
    c.next_branch();
    c.cseq += 1;
    h.send(PHONE, &c.request("BYE", None, &[]));
    assert!(h.last_sip().start_line().starts_with("SIP/2.0 200"));
    let before = h.rtp().len();
    h.advance(ms(1000));
    assert_eq!(h.rtp().len(), before, "no RTP after BYE");
    assert!(h.events.iter().any(|(_, e)| matches!(
        e,
        Event::CallEnded {
            reason: EndReason::RemoteBye,
            ..
        }
    )));
    insta::assert_snapshot!(h.transcript());
}

#[test]
fn shape_b_held_party_address_recvonly() {
    let mut h = Harness::new();
    establish(
        &mut h,
        1,
        Some(&dp750_sdp("203.0.113.7", 18232, "recvonly")),
        None,
    );
    assert!(h.response("SIP/2.0 200").body().contains("a=sendonly"));
    h.advance(ms(100));
    let rtp = h.rtp();
    assert!(!rtp.is_empty());
    assert!(
        rtp.iter().all(|p| p.t.remote == addr("203.0.113.7:18232")),
        "RTP goes to the SDP address, never the SIP source"
    );
    insta::assert_snapshot!(h.transcript());
}

#[test]
fn shape_c_late_offer_answer_in_ack() {
    let mut h = Harness::new();
    let answer = dp750_sdp("192.168.1.50", 5004, "recvonly")
        .replace("RTP/AVP 0 8 9 18 101", "RTP/AVP 8 101");
    establish(&mut h, 2, None, Some(&answer));
    let offer = h.response("SIP/2.0 200").body();
    assert!(
        offer.contains("RTP/AVP 0 8 9 101"),
        "we offer every codec we send: {offer}"
    );
    assert!(offer.contains("a=sendonly"));
    h.advance(ms(100));
    let rtp = h.rtp();
    assert!(!rtp.is_empty());
    assert!(rtp.iter().all(|p| p.rtp_pt() == 8), "the answer chose PCMA");
    insta::assert_snapshot!(h.transcript());
}

#[test]
fn cancel_before_answer_gets_200_and_487() {
    let mut h = Harness::new();
    h.hold_binds = true;
    let c = Dp750::new(3);
    h.send(
        PHONE,
        &c.request(
            "INVITE",
            Some(&dp750_sdp("192.168.1.50", 5004, "sendrecv")),
            &[],
        ),
    );
    assert!(h.last_sip().start_line().starts_with("SIP/2.0 100"));
    h.advance(ms(200));
    h.send(PHONE, &c.request("CANCEL", None, &[]));
    assert!(h.sip().iter().any(
        |s| s.start_line() == "SIP/2.0 200 OK" && s.header("CSeq").unwrap().ends_with("CANCEL")
    ));
    let r487 = h.response("SIP/2.0 487");
    assert_eq!(r487.header("CSeq").unwrap(), "21 INVITE");
    h.release_binds();
    h.advance(ms(2000));
    assert!(h.rtp().is_empty());
    assert!(h.events.iter().any(|(_, e)| matches!(
        e,
        Event::CallEnded {
            reason: EndReason::Cancelled,
            ..
        }
    )));
    // the 487 is retransmitted until the ACK (timer G), then absorbed
    let n487 = h
        .sip()
        .iter()
        .filter(|s| s.start_line().starts_with("SIP/2.0 487"))
        .count();
    assert!(n487 >= 2, "487 retransmitted on timer G");
    h.send(PHONE, &c.request("ACK", None, &[]));
    let after_ack = h.sip().len();
    h.advance(ms(10000));
    assert_eq!(
        h.sip().len(),
        after_ack,
        "no 487 retransmission after the ACK"
    );
    insta::assert_snapshot!(h.transcript());
}

#[test]
fn cancel_for_nothing_is_481() {
    let mut h = Harness::new();
    let c = Dp750::new(4);
    h.send(PHONE, &c.request("CANCEL", None, &[]));
    assert!(h.last_sip().start_line().starts_with("SIP/2.0 481"));
}

#[test]
fn reinvite_hold_and_unhold() {
    let mut h = Harness::new();
    let mut c = establish(
        &mut h,
        5,
        Some(&dp750_sdp("192.168.1.50", 5004, "sendrecv")),
        None,
    );
    h.advance(ms(1000));
    let first = h.rtp().len();
    c.cseq += 1;
    c.next_branch();
    h.send(
        PHONE,
        &c.request(
            "INVITE",
            Some(&dp750_sdp("192.168.1.50", 5004, "sendonly")),
            &[],
        ),
    );
    let ok = h.last_sip().clone();
    assert!(ok.start_line().starts_with("SIP/2.0 200"));
    assert!(
        ok.body().contains("a=inactive"),
        "hold answered inactive: {}",
        ok.body()
    );
    h.send(PHONE, &c.ack(None));
    h.advance(ms(2000));
    assert_eq!(h.rtp().len(), first, "no RTP while held");
    c.cseq += 1;
    c.next_branch();
    h.send(
        PHONE,
        &c.request(
            "INVITE",
            Some(&dp750_sdp("192.168.1.50", 5004, "sendrecv")),
            &[],
        ),
    );
    assert!(h.last_sip().body().contains("a=sendonly"));
    h.send(PHONE, &c.ack(None));
    h.advance(ms(100));
    let rtp = h.rtp();
    let resumed = &rtp[first..];
    assert_eq!(resumed.len(), 6, "0, 20, …, 100 ms after the ACK");
    assert!(resumed[0].rtp_marker(), "marker on resume");
    assert_eq!(
        resumed[0].rtp_seq(),
        rtp[first - 1].rtp_seq().wrapping_add(1),
        "seq continues"
    );
    assert_eq!(resumed[0].rtp_ssrc(), rtp[0].rtp_ssrc(), "same SSRC");
    // origin version increments with every new answer
    let versions: Vec<String> = h
        .sip()
        .iter()
        .filter(|s| {
            s.start_line().starts_with("SIP/2.0 200")
                && s.header("CSeq").unwrap().contains("INVITE")
        })
        .map(|s| {
            s.body()
                .lines()
                .find(|l| l.starts_with("o="))
                .unwrap()
                .to_string()
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        versions.len(),
        3,
        "three distinct o= versions: {versions:?}"
    );
    insta::assert_snapshot!(h.transcript());
}

#[test]
fn options_in_and_out_of_dialog() {
    let mut h = Harness::new();
    let c = Dp750::new(6);
    h.send(
        PHONE,
        &c.request("OPTIONS", None, &["Accept: application/sdp"]),
    );
    let r = h.last_sip();
    assert!(r.start_line().starts_with("SIP/2.0 200"));
    assert_eq!(
        r.header("Allow").unwrap(),
        "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE"
    );
    assert_eq!(r.header("Accept").unwrap(), "application/sdp");
    assert_eq!(r.header("Supported").unwrap(), "timer");
    assert!(r.to_tag().is_some());
    let mut d = establish(
        &mut h,
        7,
        Some(&dp750_sdp("192.168.1.50", 5004, "sendrecv")),
        None,
    );
    d.cseq += 1;
    d.next_branch();
    h.send(PHONE, &d.request("OPTIONS", None, &[]));
    assert!(h.last_sip().start_line().starts_with("SIP/2.0 200"));
    insta::assert_snapshot!(h.transcript());
}

#[test]
fn info_dtmf_in_dialog_is_200_and_outside_is_481() {
    let mut h = Harness::new();
    let mut c = establish(
        &mut h,
        8,
        Some(&dp750_sdp("192.168.1.50", 5004, "sendrecv")),
        None,
    );
    c.cseq += 1;
    c.next_branch();
    h.send(
        PHONE,
        &c.request(
            "INFO",
            Some("Signal=5\r\nDuration=160\r\n"),
            &["Content-Type: application/dtmf-relay"],
        ),
    );
    assert!(h.last_sip().start_line().starts_with("SIP/2.0 200"));
    let stray = Dp750 {
        to_tag: Some("nope".into()),
        ..Dp750::new(9)
    };
    h.send(PHONE, &stray.request("INFO", None, &[]));
    assert!(h.last_sip().start_line().starts_with("SIP/2.0 481"));
}

#[test]
fn bye_from_us_on_control_and_max_duration() {
    let config = ServerConfig {
        max_call_duration: Some(Duration::from_secs(5)),
        ..ServerConfig::default()
    };
    let mut h = Harness::with(config, onhold_core::media::Library::silence());
    establish(
        &mut h,
        10,
        Some(&dp750_sdp("192.168.1.50", 5004, "sendrecv")),
        None,
    );
    h.advance(Duration::from_secs(5));
    let bye = h
        .sip()
        .into_iter()
        .find(|s| s.start_line().starts_with("BYE "))
        .expect("BYE at max duration")
        .clone();
    assert_eq!(bye.at, ms(5030), "5 s after the ACK at +0.030");
    assert_eq!(
        bye.start_line(),
        "BYE sip:201@192.168.1.50:5060 SIP/2.0",
        "to the remote target"
    );
    assert!(bye.header("From").unwrap().contains("tag="));
    assert!(bye.header("To").unwrap().contains("tag=402719342"));
    assert!(bye.header("CSeq").unwrap().ends_with(" BYE"));
    assert!(h.events.iter().any(|(_, e)| matches!(
        e,
        Event::CallEnded {
            reason: EndReason::MaxDuration,
            ..
        }
    )));
    let rtp_at_bye = h.rtp().len();
    assert!(
        (249..=251).contains(&rtp_at_bye),
        "5 s of RTP: {rtp_at_bye}"
    );
    // the BYE is retransmitted (timer E) until answered
    h.advance(ms(500));
    let byes = h
        .sip()
        .iter()
        .filter(|s| s.start_line().starts_with("BYE "))
        .count();
    assert_eq!(byes, 2);
    h.send(PHONE, &bye.reply("200 OK"));
    h.advance(ms(10000));
    assert_eq!(
        h.sip()
            .iter()
            .filter(|s| s.start_line().starts_with("BYE "))
            .count(),
        2,
        "answered: no more retransmissions"
    );
    insta::assert_snapshot!(h.transcript());

    // Control::Hangup
    let mut h = Harness::new();
    establish(
        &mut h,
        11,
        Some(&dp750_sdp("192.168.1.50", 5004, "sendrecv")),
        None,
    );
    let call = h.started_call();
    h.server.control(h.now, Control::Hangup(call.unwrap()));
    h.drain();
    assert!(h.last_sip().start_line().starts_with("BYE "));
}

/// RFC 3261 §13.3.1.4: the 2xx goes again on T1 doubling up to T2 until the ACK, and without
/// one the call ends with BYE — after 64·T1, or sooner for a new call: `ack_wait` (8 s by
/// default) bounds how long an INVITE nobody ACKs holds an RTP port.
#[test]
fn lost_ack_retransmits_200_on_t1_doubling_then_byes() {
    lost_ack(
        "lost_ack_ends_a_new_call_after_ack_wait",
        ServerConfig::default(),
        &[0, 500, 1500, 3500, 7500],
        Duration::from_secs(8),
    );
    let rfc = ServerConfig {
        ack_wait: Duration::from_secs(32),
        ..ServerConfig::default()
    };
    lost_ack(
        "lost_ack_retransmits_200_on_t1_doubling_then_byes",
        rfc,
        &[
            0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500,
        ],
        Duration::from_secs(32),
    );
}

fn lost_ack(snapshot: &str, config: ServerConfig, sent_at: &[u64], bye_at: Duration) {
    let mut h = Harness::with(config, onhold_core::media::Library::silence());
    let c = Dp750::new(12);
    h.send(
        PHONE,
        &c.request(
            "INVITE",
            Some(&dp750_sdp("192.168.1.50", 5004, "sendrecv")),
            &[],
        ),
    );
    h.advance(Duration::from_secs(40));
    let times: Vec<u64> = h
        .sip()
        .iter()
        .filter(|s| s.start_line().starts_with("SIP/2.0 200"))
        .map(|s| s.at.as_millis() as u64)
        .collect();
    assert_eq!(times, sent_at);
    let bye = h
        .sip()
        .into_iter()
        .find(|s| s.start_line().starts_with("BYE "))
        .expect("BYE without an ACK");
    assert_eq!(bye.at, bye_at);
    assert!(h.rtp().is_empty(), "no media without an ACK");
    assert!(h.events.iter().any(|(_, e)| matches!(
        e,
        Event::CallEnded {
            reason: EndReason::AckTimeout,
            ..
        }
    )));
    insta::assert_snapshot!(snapshot, h.transcript());
}

#[test]
fn retransmitted_invite_is_absorbed() {
    let mut h = Harness::new();
    let c = Dp750::new(13);
    let invite = c.request(
        "INVITE",
        Some(&dp750_sdp("192.168.1.50", 5004, "sendrecv")),
        &[],
    );
    h.send(PHONE, &invite);
    h.advance(ms(500));
    h.send(PHONE, &invite);
    let oks: Vec<_> = h
        .sip()
        .into_iter()
        .filter(|s| s.start_line().starts_with("SIP/2.0 200"))
        .collect();
    assert!(oks.len() >= 2);
    assert!(
        oks.iter().all(|s| s.to_tag() == oks[0].to_tag()),
        "same dialog, same tag"
    );
    assert_eq!(
        h.commands
            .iter()
            .filter(|(_, c)| matches!(c, onhold_core::Command::BindRtp { .. }))
            .count(),
        1,
        "one call only"
    );
    insta::assert_snapshot!(h.transcript());
}

#[test]
fn two_dialogs_from_one_address() {
    let mut h = Harness::new();
    let mut a = establish(
        &mut h,
        14,
        Some(&dp750_sdp("192.168.1.50", 5004, "sendrecv")),
        None,
    );
    establish(
        &mut h,
        15,
        Some(&dp750_sdp("192.168.1.50", 5006, "sendrecv")),
        None,
    );
    h.advance(ms(100));
    let to_a = h.rtp().iter().filter(|p| p.t.remote.port() == 5004).count();
    let to_b = h.rtp().iter().filter(|p| p.t.remote.port() == 5006).count();
    // A was ACKed 30 ms before B: A sent at 0..=130 ms, B at 0..=100 ms after their ACKs.
    assert_eq!((to_a, to_b), (7, 6));
    let ports: std::collections::BTreeSet<u16> = h.rtp().iter().map(|p| p.t.local.port()).collect();
    assert_eq!(ports.len(), 2, "each call has its own RTP port");
    a.cseq += 1;
    a.next_branch();
    h.send(PHONE, &a.request("BYE", None, &[]));
    h.advance(ms(100));
    let late_a = h.rtp().iter().filter(|p| p.t.remote.port() == 5004).count();
    let late_b = h.rtp().iter().filter(|p| p.t.remote.port() == 5006).count();
    assert_eq!(late_a, to_a, "A stopped");
    assert_eq!(late_b, to_b + 5, "B goes on");
    insta::assert_snapshot!(h.transcript());
}

/// Every rejection and its exact status line.
#[test]
fn rejections() {
    let mut out = String::new();
    let sdp = dp750_sdp("192.168.1.50", 5004, "sendrecv");
    let mut case = |name: &str, msgs: Vec<String>| {
        let mut h = Harness::new();
        for m in &msgs {
            h.send(PHONE, m);
        }
        if h.sip().is_empty() {
            out.push_str(&format!("{name:<28} (dropped)\n"));
            return String::new();
        }
        let last = h.last_sip();
        out.push_str(&format!("{name:<28} {}\n", last.start_line()));
        for hdr in [
            "Unsupported",
            "Allow",
            "Min-SE",
            "Warning",
            "Accept",
            "Retry-After",
            "Reason",
        ] {
            if let Some(v) = last.header(hdr) {
                out.push_str(&format!("{:<28}   {hdr}: {v}\n", ""));
            }
        }
        last.start_line()
    };
    let c = Dp750::new(20);
    let mut merged = Dp750::new(20);
    merged.next_branch();
    case(
        "merged request",
        vec![
            c.request("INVITE", Some(&sdp), &[]),
            merged.request("INVITE", Some(&sdp), &[]),
        ],
    );
    case(
        "max-forwards 0",
        vec![c
            .request("INVITE", Some(&sdp), &[])
            .replace("Max-Forwards: 70", "Max-Forwards: 0")],
    );
    case(
        "unknown require",
        vec![c.request("INVITE", Some(&sdp), &["Require: 100rel, foo"])],
    );
    case("unknown method", vec![c.request("FROB", None, &[])]);
    case("subscribe", vec![c.request("SUBSCRIBE", None, &[])]);
    case("refer", vec![c.request("REFER", None, &[])]);
    case(
        "message",
        vec![c.request("MESSAGE", Some("hi"), &["Content-Type: text/plain"])],
    );
    let stray = Dp750 {
        to_tag: Some("999".into()),
        ..Dp750::new(21)
    };
    case("bye outside dialog", vec![stray.request("BYE", None, &[])]);
    case(
        "re-invite outside dialog",
        vec![stray.request("INVITE", Some(&sdp), &[])],
    );
    case(
        "session-expires too small",
        vec![c.request("INVITE", Some(&sdp), &["Session-Expires: 30"])],
    );
    case(
        "savp offer",
        vec![c.request("INVITE", Some(&sdp.replace("RTP/AVP", "RTP/SAVP")), &[])],
    );
    let opus = sdp
        .replace("RTP/AVP 0 8 9 18 101", "RTP/AVP 111")
        .replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:111 opus/48000/2");
    let opus: String = opus
        .lines()
        .filter(|l| !l.starts_with("a=rtpmap:8") && !l.starts_with("a=rtpmap:9 "))
        .map(|l| format!("{l}\r\n"))
        .collect();
    case("opus only", vec![c.request("INVITE", Some(&opus), &[])]);
    case(
        "not sdp",
        vec![c.request("INVITE", Some("<xml/>"), &["Content-Type: application/xml"])],
    );
    case(
        "missing call-id",
        vec![c
            .request("OPTIONS", None, &[])
            .replace(&format!("Call-ID: {}\r\n", c.call_id), "")],
    );
    case(
        "cseq method mismatch",
        vec![c
            .request("OPTIONS", None, &[])
            .replace("CSeq: 21 OPTIONS", "CSeq: 21 INVITE")],
    );
    case(
        "content-length too big",
        vec![c
            .request("OPTIONS", Some("x"), &[])
            .replace("Content-Length:   1", "Content-Length: 1000000")],
    );
    insta::assert_snapshot!(out);
}

#[test]
fn lower_cseq_in_dialog_is_500() {
    let mut h = Harness::new();
    let mut c = establish(
        &mut h,
        30,
        Some(&dp750_sdp("192.168.1.50", 5004, "sendrecv")),
        None,
    );
    c.cseq -= 1;
    c.next_branch();
    h.send(PHONE, &c.request("BYE", None, &[]));
    assert!(
        h.last_sip().start_line().starts_with("SIP/2.0 500"),
        "{}",
        h.transcript()
    );
}

#[test]
fn shutdown_refuses_new_calls_and_byes_every_call() {
    let mut h = Harness::new();
    establish(
        &mut h,
        31,
        Some(&dp750_sdp("192.168.1.50", 5004, "sendrecv")),
        None,
    );
    establish(
        &mut h,
        32,
        Some(&dp750_sdp("192.168.1.50", 5006, "sendrecv")),
        None,
    );
    h.server.control(
        h.now,
        Control::Shutdown {
            grace: Duration::from_secs(5),
        },
    );
    h.drain();
    let byes = h
        .sip()
        .iter()
        .filter(|s| s.start_line().starts_with("BYE "))
        .count();
    assert_eq!(byes, 2);
    h.send(
        PHONE,
        &Dp750::new(33).request(
            "INVITE",
            Some(&dp750_sdp("192.168.1.50", 5008, "sendrecv")),
            &[],
        ),
    );
    assert!(h.last_sip().start_line().starts_with("SIP/2.0 503"));
    assert!(
        !h.events.iter().any(|(_, e)| *e == Event::Drained),
        "BYEs not answered yet"
    );
    h.advance(Duration::from_secs(6));
    assert!(
        h.events.iter().any(|(_, e)| *e == Event::Drained),
        "drained at the grace deadline"
    );
}

#[test]
fn session_timer_expiry_sends_bye() {
    let mut h = Harness::new();
    let sdp = dp750_sdp("192.168.1.50", 5004, "sendrecv");
    let mut c = Dp750::new(40);
    h.send(
        PHONE,
        &c.request("INVITE", Some(&sdp), &["Session-Expires: 90;refresher=uac"]),
    );
    let ok = h.response("SIP/2.0 200").clone();
    assert_eq!(ok.header("Session-Expires").unwrap(), "90;refresher=uac");
    assert_eq!(ok.header("Require").unwrap(), "timer");
    c.to_tag = ok.to_tag();
    h.send(PHONE, &c.ack(None));
    // a refresh by UPDATE at 40 s resets the timer
    h.advance(Duration::from_secs(40));
    c.cseq += 1;
    c.next_branch();
    h.send(
        PHONE,
        &c.request("UPDATE", None, &["Session-Expires: 90;refresher=uac"]),
    );
    assert!(h.last_sip().start_line().starts_with("SIP/2.0 200"));
    h.advance(Duration::from_secs(59));
    assert!(
        !h.sip().iter().any(|s| s.start_line().starts_with("BYE")),
        "refreshed at 40 s: alive at 99 s"
    );
    h.advance(Duration::from_secs(2));
    let bye = h
        .sip()
        .into_iter()
        .find(|s| s.start_line().starts_with("BYE"))
        .expect("BYE when the refresh is missed");
    assert_eq!(
        bye.at,
        Duration::from_secs(40 + 60),
        "expiry minus min(32, 90/3)"
    );
    assert!(h.events.iter().any(|(_, e)| matches!(
        e,
        Event::CallEnded {
            reason: EndReason::SessionExpired,
            ..
        }
    )));
}

#[test]
fn busy_port_is_skipped() {
    let mut h = Harness::new();
    h.refuse_binds = 2;
    establish(
        &mut h,
        50,
        Some(&dp750_sdp("192.168.1.50", 5004, "sendrecv")),
        None,
    );
    let binds: Vec<_> = h
        .commands
        .iter()
        .filter(|(_, c)| matches!(c, onhold_core::Command::BindRtp { .. }))
        .collect();
    assert_eq!(binds.len(), 3);
    h.advance(ms(40));
    let port = h.rtp()[0].t.local.port();
    let sdp_port = h
        .response("SIP/2.0 200")
        .body()
        .lines()
        .find(|l| l.starts_with("m=audio"))
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse::<u16>()
        .unwrap();
    assert_eq!(port, sdp_port, "the SDP names the port that was bound");
}

/// RFC 4028 with `refresher=uas`: we refresh with UPDATE at half the interval; a failed refresh
/// ends the call with BYE.
#[test]
fn session_timer_we_refresh_with_update() {
    let mut h = Harness::new();
    let sdp = dp750_sdp("192.168.1.50", 5004, "sendrecv");
    let mut c = Dp750::new(41);
    h.send(
        PHONE,
        &c.request(
            "INVITE",
            Some(&sdp),
            &["Session-Expires: 120;refresher=uas"],
        ),
    );
    let ok = h.response("SIP/2.0 200").clone();
    assert_eq!(ok.header("Session-Expires").unwrap(), "120;refresher=uas");
    c.to_tag = ok.to_tag();
    h.send(PHONE, &c.ack(None));
    h.advance(Duration::from_secs(59));
    assert!(!h.sip().iter().any(|s| s.start_line().starts_with("UPDATE")));
    h.advance(Duration::from_secs(1));
    let update = h
        .sip()
        .into_iter()
        .find(|s| s.start_line().starts_with("UPDATE"))
        .expect("UPDATE at S/2")
        .clone();
    assert_eq!(update.at, Duration::from_secs(60));
    // In our refresh, we are its UAC and we refresh (RFC 4028 §7.1, §7.4).
    assert_eq!(
        update.header("Session-Expires").unwrap(),
        "120;refresher=uac"
    );
    assert_eq!(update.header("Supported").as_deref(), Some("timer"));
    assert!(update.header("CSeq").unwrap().ends_with(" UPDATE"));
    // answer it: the next refresh comes 60 s later
    h.send(PHONE, &update.reply("200 OK"));
    h.advance(Duration::from_secs(60));
    let updates: Vec<_> = h
        .sip()
        .into_iter()
        .filter(|s| s.start_line().starts_with("UPDATE"))
        .map(|s| s.at)
        .collect();
    assert_eq!(
        updates[updates.len() - 1],
        Duration::from_secs(120),
        "second refresh at 120 s: {updates:?}"
    );
    // leave the second unanswered: after 64·T1 the transaction times out and we hang up
    h.advance(Duration::from_secs(33));
    assert!(
        h.sip().iter().any(|s| s.start_line().starts_with("BYE")),
        "BYE after a failed refresh"
    );
    assert!(h.events.iter().any(|(_, e)| matches!(
        e,
        Event::CallEnded {
            reason: EndReason::SessionExpired,
            ..
        }
    )));
}

/// SIGHUP's new settings apply to the next call; the call already up keeps its codec.
#[test]
fn reconfigure_applies_to_new_calls() {
    let mut h = Harness::new();
    establish(
        &mut h,
        60,
        Some(&dp750_sdp("192.168.1.50", 5004, "sendrecv")),
        None,
    );
    let config = ServerConfig {
        codecs: vec![onhold_core::Codec::G722],
        max_calls: 2,
        ..ServerConfig::default()
    };
    h.server
        .control(h.now, Control::Reconfigure(Box::new(config)));
    establish(
        &mut h,
        61,
        Some(&dp750_sdp("192.168.1.50", 5006, "sendrecv")),
        None,
    );
    assert!(
        h.response("SIP/2.0 200").body().contains("RTP/AVP 9 101"),
        "G.722 preferred now"
    );
    h.advance(ms(40));
    assert!(
        h.rtp()
            .iter()
            .filter(|p| p.t.remote.port() == 5004)
            .all(|p| p.rtp_pt() == 0),
        "the first call keeps PCMU"
    );
    h.send(
        PHONE,
        &Dp750::new(62).request(
            "INVITE",
            Some(&dp750_sdp("192.168.1.50", 5008, "sendrecv")),
            &[],
        ),
    );
    let full = h.last_sip();
    assert!(
        full.start_line().starts_with("SIP/2.0 503"),
        "the new max_calls applies"
    );
    // RFC 3261 §21.5.4: a server that is full says when to try again (a proxy may fail over).
    assert_eq!(full.header("Retry-After").as_deref(), Some("10"));
}

#[test]
fn reinvite_with_a_body_we_cannot_read_is_415_with_accept() {
    let mut h = Harness::new();
    let mut c = establish(
        &mut h,
        70,
        Some(&dp750_sdp("192.168.1.50", 5004, "sendrecv")),
        None,
    );
    c.cseq += 1;
    c.next_branch();
    h.send(
        PHONE,
        &c.request("INVITE", Some("<xml/>"), &["Content-Type: application/xml"]),
    );
    let r = h.last_sip();
    assert!(r.start_line().starts_with("SIP/2.0 415"));
    assert_eq!(r.header("Accept").unwrap(), "application/sdp");
    // the call goes on, and the refused request used up its CSeq
    c.cseq += 1;
    c.next_branch();
    h.send(PHONE, &c.request("BYE", None, &[]));
    assert!(h.last_sip().start_line().starts_with("SIP/2.0 200"));
}

/// A refused RTP bind makes the core ask for another port at once; until the runtime takes
/// that command, `poll_timeout` says "now", so no call waits for an unrelated wake-up.
#[test]
fn queued_commands_make_poll_timeout_due_now() {
    let mut h = Harness::new();
    h.hold_binds = true;
    h.send(
        PHONE,
        &Dp750::new(80).request(
            "INVITE",
            Some(&dp750_sdp("192.168.1.50", 5004, "sendrecv")),
            &[],
        ),
    );
    let port = h
        .commands
        .iter()
        .find_map(|(_, c)| match c {
            onhold_core::Command::BindRtp { port, .. } => Some(*port),
            _ => None,
        })
        .expect("a BindRtp");
    h.server.rtp_bind_result(h.now, port, false);
    assert!(
        h.server.poll_timeout().is_some_and(|t| t <= h.now),
        "the retry is work for now"
    );
    h.hold_binds = false;
    h.drain();
    assert!(
        h.last_sip().start_line().starts_with("SIP/2.0 200"),
        "the next port was bound and answered"
    );
}

/// A softphone's account on this server registers: 200 naming its Contact with the expiry we
/// grant (60–3600 s), nothing stored; removal and query get 200 naming no binding; with
/// `accept_register = false`, 405.
#[test]
fn register_is_answered_without_a_binding_store() {
    let mut h = Harness::new();
    let cases = [
        (
            vec!["Expires: 600"],
            Some("<sip:201@192.168.1.50:5060>;expires=600"),
            "600",
        ),
        (
            vec!["Expires: 5"],
            Some("<sip:201@192.168.1.50:5060>;expires=60"),
            "60",
        ),
        (
            vec![],
            Some("<sip:201@192.168.1.50:5060>;expires=3600"),
            "3600",
        ),
        (vec!["Expires: 0"], None, "0"),
    ];
    for (n, (extra, contact, expires)) in cases.into_iter().enumerate() {
        let c = Dp750::new(40 + n as u32);
        h.send(PHONE, &c.request("REGISTER", None, &extra));
        let r = h.last_sip().clone();
        assert!(r.start_line().starts_with("SIP/2.0 200"), "{}", r.text());
        assert_eq!(r.header("Contact").as_deref(), contact, "{}", r.text());
        assert_eq!(r.header("Expires").as_deref(), Some(expires));
        assert!(r.to_tag().is_some());
    }
    assert!(h.server.occupancy().calls == 0);

    let config = ServerConfig {
        accept_register: false,
        ..ServerConfig::default()
    };
    let mut h = Harness::with(config, onhold_core::media::Library::silence());
    h.send(PHONE, &Dp750::new(45).request("REGISTER", None, &[]));
    assert!(h.last_sip().start_line().starts_with("SIP/2.0 405"));
}
