//! Session timers (RFC 4028) as proxies and phones without timer support meet them: a
//! Session-Expires a proxy added for a caller that has neither `Supported: timer` nor UPDATE in
//! its Allow, refreshes by re-INVITE, what each outcome of a refresh means, glare, and the
//! Require/Supported each message carries.

mod common;

use std::time::Duration;

use common::*;
use onhold_core::{EndReason, Event};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A DP750-shaped INVITE as a proxy passes it on for a phone without session timers: the
/// proxy added `Session-Expires: 90`; the phone's Allow has no UPDATE, its Supported is empty.
fn invite_without_timer_support(c: &Dp750) -> String {
    let sdp = dp750_sdp("192.168.1.50", 5004, "sendrecv");
    c.request("INVITE", Some(&sdp), &["Session-Expires: 90"])
        .replace(
            "Supported: replaces, path, timer, eventlist\r\n",
            "Supported: \r\n",
        )
        .replace(
            "Allow: INVITE, ACK, OPTIONS, CANCEL, BYE, SUBSCRIBE, NOTIFY, INFO, REFER, UPDATE, MESSAGE",
            "Allow: INVITE, ACK, OPTIONS, CANCEL, BYE, INFO",
        )
}

/// The caller's 200 to our re-INVITE, with an SDP answer (recvonly: it listens to the music).
fn ok_with_answer(req: &Sent) -> String {
    let sdp = dp750_sdp("192.168.1.50", 5004, "recvonly");
    let head = req.reply("200 OK");
    let head = head.trim_end_matches("Content-Length: 0\r\n\r\n");
    format!(
        "{head}Contact: <sip:201@192.168.1.50:5060>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

fn requests<'a>(h: &'a Harness, method: &str) -> Vec<&'a Sent> {
    let prefix = format!("{method} ");
    h.sip()
        .into_iter()
        .filter(|s| s.start_line().starts_with(&prefix))
        .collect()
}

fn ended(h: &Harness) -> Option<EndReason> {
    h.events.iter().find_map(|(_, e)| match e {
        Event::CallEnded { reason, .. } => Some(reason.clone()),
        _ => None,
    })
}

/// Establish the call of [`invite_without_timer_support`]; the 200 it got.
fn establish_without_timer_support(h: &mut Harness) -> (Dp750, Sent) {
    let mut c = Dp750::new(7);
    h.send(PHONE, &invite_without_timer_support(&c));
    let ok = h.response("SIP/2.0 200").clone();
    c.to_tag = ok.to_tag();
    h.send(PHONE, &c.ack(None));
    (c, ok)
}

/// The case: we refresh (the caller cannot), by re-INVITE (it has no UPDATE), and the
/// call outlives three intervals. The 200 to the INVITE requires nothing of a caller without
/// timer support.
#[test]
fn a_proxy_added_timer_is_refreshed_by_reinvite_for_three_intervals() {
    let mut h = Harness::new();
    let (_, ok) = establish_without_timer_support(&mut h);
    assert_eq!(
        ok.header("Session-Expires").as_deref(),
        Some("90;refresher=uas")
    );
    assert_eq!(
        ok.header("Require"),
        None,
        "the caller does not support timers"
    );
    for round in 1..=6u64 {
        h.advance(secs(45));
        let invites = requests(&h, "INVITE");
        assert_eq!(invites.len(), round as usize, "{}", h.transcript());
        assert!(
            requests(&h, "UPDATE").is_empty(),
            "the caller has no UPDATE"
        );
        let reinvite = invites[round as usize - 1].clone();
        assert_eq!(reinvite.at, secs(45 * round), "at half the interval");
        assert_eq!(
            reinvite.header("Session-Expires").as_deref(),
            Some("90;refresher=uac")
        );
        assert_eq!(reinvite.header("Supported").as_deref(), Some("timer"));
        assert!(reinvite.header("Contact").is_some(), "a target refresh");
        assert!(reinvite.body().contains("a=sendonly"), "our media as it is");
        h.send(PHONE, &ok_with_answer(&reinvite));
        let ack = h.last_sip().clone();
        assert!(ack.start_line().starts_with("ACK "), "{}", h.transcript());
        let cseq = reinvite.header("CSeq").unwrap().replace("INVITE", "ACK");
        assert_eq!(ack.header("CSeq"), Some(cseq));
        assert_ne!(ack.header("Via"), reinvite.header("Via"), "a new branch");
    }
    assert_eq!(ended(&h), None, "{}", h.transcript());
    assert!(requests(&h, "BYE").is_empty());
    // The music never stopped.
    let last = h.rtp().last().map(|p| p.at).unwrap();
    assert!(last >= secs(270), "RTP until {last:?}");
}

/// A retransmitted 2xx to our re-INVITE gets the same ACK again (RFC 3261 §13.2.2.4).
#[test]
fn a_retransmitted_2xx_is_acknowledged_again() {
    let mut h = Harness::new();
    establish_without_timer_support(&mut h);
    h.advance(secs(45));
    let reinvite = requests(&h, "INVITE")[0].clone();
    let ok = ok_with_answer(&reinvite);
    h.send(PHONE, &ok);
    let first = h.last_sip().clone();
    h.send(PHONE, &ok);
    let second = h.last_sip().clone();
    assert!(second.start_line().starts_with("ACK "));
    assert_eq!(first.bytes, second.bytes);
    assert_eq!(requests(&h, "ACK").len(), 2);
}

/// With a caller that allows UPDATE, we refresh by UPDATE; a 501 to it means the caller does
/// not take UPDATE after all: the refresh goes again at once, by re-INVITE, and the call lives.
#[test]
fn a_501_to_update_refreshes_by_reinvite() {
    let mut h = Harness::new();
    let mut c = Dp750::new(8);
    let sdp = dp750_sdp("192.168.1.50", 5004, "sendrecv");
    h.send(
        PHONE,
        &c.request("INVITE", Some(&sdp), &["Session-Expires: 90;refresher=uas"]),
    );
    c.to_tag = h.response("SIP/2.0 200").to_tag();
    h.send(PHONE, &c.ack(None));
    h.advance(secs(45));
    let update = requests(&h, "UPDATE")[0].clone();
    h.send(PHONE, &update.reply("501 Not Implemented"));
    let reinvite = requests(&h, "INVITE")
        .last()
        .copied()
        .cloned()
        .expect("a re-INVITE");
    assert_eq!(reinvite.at, update.at, "at once");
    h.send(PHONE, &ok_with_answer(&reinvite));
    h.advance(secs(45));
    assert_eq!(requests(&h, "UPDATE").len(), 1, "UPDATE is not tried again");
    assert_eq!(requests(&h, "INVITE").len(), 2, "{}", h.transcript());
    assert_eq!(ended(&h), None);
}

/// RFC 4028 §10: a refresh answered 481 (or 408, or not at all) ends the call with BYE.
#[test]
fn a_481_to_the_refresh_ends_the_call() {
    let mut h = Harness::new();
    establish_without_timer_support(&mut h);
    h.advance(secs(45));
    let reinvite = requests(&h, "INVITE")[0].clone();
    h.send(
        PHONE,
        &reinvite.reply("481 Call/Transaction Does Not Exist"),
    );
    let ack = h
        .sip()
        .into_iter()
        .rev()
        .find(|s| s.start_line().starts_with("ACK "))
        .cloned()
        .expect("the transaction ACKs the error");
    assert_eq!(ack.header("Via"), reinvite.header("Via"), "the same branch");
    assert_eq!(requests(&h, "BYE").len(), 1);
    assert_eq!(ended(&h), Some(EndReason::SessionExpired));
}

/// Any other refusal does not end the call at once: the session runs out an interval after it
/// was last refreshed, and we send BYE min(32 s, interval/3) before that.
#[test]
fn another_refusal_lets_the_session_run_out() {
    let mut h = Harness::new();
    establish_without_timer_support(&mut h);
    h.advance(secs(45));
    let reinvite = requests(&h, "INVITE")[0].clone();
    h.send(PHONE, &reinvite.reply("500 Server Internal Error"));
    assert!(requests(&h, "BYE").is_empty());
    h.advance(secs(14));
    assert!(requests(&h, "BYE").is_empty(), "{}", h.transcript());
    h.advance(secs(1));
    let bye = requests(&h, "BYE")[0].clone();
    assert_eq!(bye.at, secs(90 - 30), "the expiry minus interval/3");
    assert_eq!(bye.header("Supported").as_deref(), Some("timer"));
    assert_eq!(ended(&h), Some(EndReason::SessionExpired));
}

/// 491 (glare at the peer): the refresh is tried again within 2 s (RFC 3261 §14.1).
#[test]
fn a_491_is_retried_after_a_short_random_wait() {
    let mut h = Harness::new();
    establish_without_timer_support(&mut h);
    h.advance(secs(45));
    let reinvite = requests(&h, "INVITE")[0].clone();
    h.send(PHONE, &reinvite.reply("491 Request Pending"));
    // 0 to 2 s in 10 ms steps, both ends included: step just past 2 s.
    h.advance(secs(2) + Duration::from_millis(10));
    // The retry is a new request (its own CSeq), whatever timer A resends of it.
    let retry = requests(&h, "INVITE")
        .into_iter()
        .find(|i| i.header("CSeq") != reinvite.header("CSeq"))
        .map(|i| i.at);
    let log = h.log.clone();
    let retry = retry.unwrap_or_else(|| panic!("no retry: {log}"));
    assert!(retry - reinvite.at <= secs(2));
    assert_eq!(ended(&h), None);
}

/// Glare the other way: the caller's re-INVITE while ours is outstanding gets 491.
#[test]
fn a_reinvite_while_ours_is_outstanding_gets_491() {
    let mut h = Harness::new();
    let (mut c, _) = establish_without_timer_support(&mut h);
    h.advance(secs(45));
    assert_eq!(requests(&h, "INVITE").len(), 1);
    c.cseq += 1;
    c.next_branch();
    let hold = dp750_sdp("192.168.1.50", 5004, "sendonly");
    h.send(PHONE, &c.request("INVITE", Some(&hold), &[]));
    assert!(
        h.last_sip().start_line().starts_with("SIP/2.0 491"),
        "{}",
        h.transcript()
    );
}

/// RFC 4028 §9: when the caller refreshes, our 2xx requires the extension, even if a proxy
/// wrote the refresher and the caller's own Supported says nothing.
#[test]
fn the_2xx_requires_timer_when_the_caller_refreshes() {
    let mut h = Harness::new();
    let c = Dp750::new(9);
    let sdp = dp750_sdp("192.168.1.50", 5004, "sendrecv");
    let invite = c
        .request(
            "INVITE",
            Some(&sdp),
            &["Session-Expires: 120;refresher=uac"],
        )
        .replace(
            "Supported: replaces, path, timer, eventlist\r\n",
            "Supported: \r\n",
        );
    h.send(PHONE, &invite);
    let ok = h.response("SIP/2.0 200").clone();
    assert_eq!(
        ok.header("Session-Expires").as_deref(),
        Some("120;refresher=uac")
    );
    assert_eq!(ok.header("Require").as_deref(), Some("timer"));
}

/// RFC 4028 §9 for a refresh: the caller's UPDATE says `refresher=uac`, so the 200 to it
/// requires the extension too.
#[test]
fn the_200_to_a_refreshing_update_requires_timer() {
    let mut h = Harness::new();
    let mut c = Dp750::new(10);
    let sdp = dp750_sdp("192.168.1.50", 5004, "sendrecv");
    h.send(PHONE, &c.request("INVITE", Some(&sdp), &[]));
    c.to_tag = h.response("SIP/2.0 200").to_tag();
    h.send(PHONE, &c.ack(None));
    c.next_branch();
    c.cseq += 1;
    let update = c.request(
        "UPDATE",
        None,
        &["Session-Expires: 120;refresher=uac", "Supported: timer"],
    );
    h.send(PHONE, &update);
    let ok = h.last_sip().clone();
    assert!(
        ok.start_line().starts_with("SIP/2.0 200"),
        "{}",
        h.transcript()
    );
    assert_eq!(
        ok.header("Session-Expires").as_deref(),
        Some("120;refresher=uac")
    );
    assert_eq!(ok.header("Require").as_deref(), Some("timer"));
}
