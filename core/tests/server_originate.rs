//! Calls we place (`Server::originate`, RFC 3261 §13.2): the INVITE and its offer, digest
//! credentials for a 407, the ACK of the 2xx and of a final error, music to the answer's
//! address, the callee's BYE, our BYE at `max_duration`, CANCEL before the answer, and the end
//! reasons.

mod common;

use std::time::Duration;

use common::{addr, Harness, Sent, SERVER};
use md5::Md5;
use onhold_core::media::Library;
use onhold_core::{
    Control, EndReason, Event, Originate, OriginateError, Registration, ServerConfig, Source,
    Transport,
};
use sha2::Digest;

const CALLEE: &str = "192.168.1.60:5070";
const CALLEE_RTP: &str = "192.168.1.60:40000";

fn originate(uri: &str) -> Originate {
    Originate {
        uri: uri.into(),
        dest: addr(CALLEE),
        transport: Transport::Udp,
        local: addr(SERVER),
        contact_ip: None,
        from: None,
        source: None,
        max_duration: None,
    }
}

/// The account whose credentials answer a challenge from the callee's host.
fn account() -> Registration {
    Registration {
        registrar: "sip:192.168.1.60:5070".into(),
        aor: "sip:moh@192.168.1.60".into(),
        auth_user: "moh".into(),
        password: "s3cret".into(),
        expires: Duration::from_secs(3600),
        outbound_proxy: None,
        transport: Transport::Udp,
        local: addr(SERVER),
        contact_ip: None,
    }
}

fn invites(h: &Harness) -> Vec<Sent> {
    h.sip()
        .into_iter()
        .filter(|s| s.start_line().starts_with("INVITE "))
        .cloned()
        .collect()
}

fn requests(h: &Harness, method: &str) -> Vec<Sent> {
    h.sip()
        .into_iter()
        .filter(|s| s.start_line().starts_with(&format!("{method} ")))
        .cloned()
        .collect()
}

/// The callee's response to our INVITE: its tag on the To, and `extra` headers and `body`.
fn respond(h: &mut Harness, invite: &Sent, status: &str, extra: &str, body: &str) {
    let header = |n: &str| invite.header(n).unwrap();
    let to = if status.starts_with("100") {
        header("To")
    } else {
        format!("{};tag=callee1", header("To"))
    };
    let ctype = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".to_string()
    };
    let text = format!(
        "SIP/2.0 {status}\r\nVia: {}\r\nFrom: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\n{extra}{ctype}Content-Length: {}\r\n\r\n{body}",
        header("Via"),
        header("From"),
        header("Call-ID"),
        header("CSeq"),
        body.len()
    );
    h.send(CALLEE, &text);
}

fn answer_sdp() -> String {
    "v=0\r\no=callee 1 1 IN IP4 192.168.1.60\r\ns=-\r\nc=IN IP4 192.168.1.60\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=recvonly\r\n".into()
}

const CONTACT: &str = "Contact: <sip:callee@192.168.1.60:5070>\r\n";

fn ended(h: &Harness) -> Vec<EndReason> {
    h.events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::CallEnded { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

/// A call placed to `sip:200@192.168.1.60:5070` with the default settings: the harness, the
/// call and its INVITE.
fn placed() -> (Harness, onhold_core::CallHandle, Sent) {
    let mut h = Harness::new();
    let call = h
        .server
        .originate(h.now, originate("sip:200@192.168.1.60:5070"))
        .unwrap();
    h.drain();
    let invite = invites(&h).pop().expect("an INVITE");
    (h, call, invite)
}

/// A call placed and answered with 180 then 200: the harness, the INVITE and the call.
fn answered(config: ServerConfig, o: Originate) -> (Harness, Sent, onhold_core::CallHandle) {
    let mut h = Harness::with(config, Library::silence());
    let call = h.server.originate(h.now, o).expect("placed");
    h.drain();
    let invite = invites(&h).pop().expect("an INVITE");
    respond(&mut h, &invite, "180 Ringing", CONTACT, "");
    respond(&mut h, &invite, "200 OK", CONTACT, &answer_sdp());
    (h, invite, call)
}

#[test]
fn the_invite_offers_every_codec_and_the_answer_starts_music_after_the_ack() {
    let (mut h, invite, call) = answered(
        ServerConfig::default(),
        originate("sip:200@192.168.1.60:5070"),
    );
    assert_eq!(
        invite.start_line(),
        "INVITE sip:200@192.168.1.60:5070 SIP/2.0"
    );
    assert_eq!(invite.t.remote, addr(CALLEE));
    assert_eq!(invite.header("CSeq").unwrap(), "1 INVITE");
    assert_eq!(invite.header("To").unwrap(), "<sip:200@192.168.1.60:5070>");
    let from = invite.header("From").unwrap();
    assert!(
        from.starts_with("<sip:onhold@192.168.1.100>;tag="),
        "{from}"
    );
    assert!(invite.header("Contact").is_some());
    let offer = invite.body();
    for codec in ["PCMU/8000", "PCMA/8000", "G722/8000"] {
        assert!(
            offer.contains(codec),
            "{codec} missing from the offer:\n{offer}"
        );
    }
    assert!(offer.contains("a=sendonly"), "{offer}");
    assert!(matches!(
        h.events.first(),
        Some((_, Event::Invited { call: c })) if *c == call
    ));

    // The ACK: the Contact as Request-URI, the callee's tag, the INVITE's CSeq number, a
    // branch of its own.
    let acks = requests(&h, "ACK");
    assert_eq!(acks.len(), 1, "{}", h.transcript());
    let ack = &acks[0];
    assert_eq!(ack.start_line(), "ACK sip:callee@192.168.1.60:5070 SIP/2.0");
    assert_eq!(ack.header("CSeq").unwrap(), "1 ACK");
    assert!(ack.header("To").unwrap().ends_with(";tag=callee1"));
    assert_ne!(ack.header("Via"), invite.header("Via"));
    assert_eq!(h.started_call(), Some(call));

    h.advance(Duration::from_secs(1));
    let rtp = h.rtp();
    assert!(rtp.len() >= 49, "{} packets in a second", rtp.len());
    assert!(rtp
        .iter()
        .all(|p| p.t.remote == addr(CALLEE_RTP) && p.rtp_pt() == 0));

    let info = h.server.call_info(call).expect("the call");
    assert!(info.outbound);
    assert!(info.from.starts_with("<sip:onhold@"), "{}", info.from);
    assert!(info.to.ends_with(";tag=callee1"), "{}", info.to);

    // A retransmitted 200 is acknowledged again (RFC 3261 §13.2.2.4), with the same ACK.
    respond(&mut h, &invite, "200 OK", CONTACT, &answer_sdp());
    let acks = requests(&h, "ACK");
    assert_eq!(acks.len(), 2);
    assert_eq!(acks[0].bytes, acks[1].bytes);
}

#[test]
fn the_callees_bye_ends_the_call() {
    let (mut h, invite, call) = answered(
        ServerConfig::default(),
        originate("sip:200@192.168.1.60:5070"),
    );
    h.advance(Duration::from_millis(500));
    let from = invite.header("From").unwrap();
    let bye = format!(
        "BYE sip:onhold@192.168.1.100:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.168.1.60:5070;branch=z9hG4bKbye1\r\nFrom: {}\r\nTo: {from}\r\nCall-ID: {}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
        format_args!("{};tag=callee1", invite.header("To").unwrap()),
        invite.header("Call-ID").unwrap(),
    );
    h.send(CALLEE, &bye);
    assert!(
        h.last_sip().start_line().starts_with("SIP/2.0 200"),
        "{}",
        h.transcript()
    );
    assert_eq!(ended(&h), vec![EndReason::RemoteBye]);
    assert!(h.server.call_info(call).is_none());
    let sent = h.rtp().len();
    h.advance(Duration::from_secs(1));
    assert_eq!(h.rtp().len(), sent, "RTP after the BYE");
}

#[test]
fn max_duration_sends_bye_to_the_contact_with_the_next_cseq() {
    let o = Originate {
        max_duration: Some(Duration::from_secs(30)),
        ..originate("sip:200@192.168.1.60:5070")
    };
    let (mut h, _, _) = answered(ServerConfig::default(), o);
    h.advance(Duration::from_secs(29));
    assert!(requests(&h, "BYE").is_empty());
    h.advance(Duration::from_secs(2));
    // One BYE, retransmitted on timer E until answered.
    let byes = requests(&h, "BYE");
    assert!(!byes.is_empty(), "{}", h.transcript());
    assert!(byes.iter().all(|b| b.bytes == byes[0].bytes));
    assert_eq!(byes[0].at, Duration::from_secs(30));
    assert_eq!(
        byes[0].start_line(),
        "BYE sip:callee@192.168.1.60:5070 SIP/2.0"
    );
    assert_eq!(byes[0].header("CSeq").unwrap(), "2 BYE");
    assert!(byes[0].header("To").unwrap().ends_with(";tag=callee1"));
    assert_eq!(ended(&h), vec![EndReason::MaxDuration]);
}

#[test]
fn a_407_is_answered_with_digest_credentials_from_the_matching_account() {
    let config = ServerConfig {
        registrations: vec![account()],
        ..ServerConfig::default()
    };
    let mut h = Harness::with(config, Library::silence());
    h.server
        .originate(h.now, originate("sip:200@192.168.1.60:5070"))
        .unwrap();
    h.drain();
    // The account registers with the same host: answer that out of the way.
    for r in requests(&h, "REGISTER") {
        h.send(CALLEE, &r.reply("200 OK"));
    }
    let first = invites(&h).pop().unwrap();
    let challenge = "Proxy-Authenticate: Digest realm=\"pbx\", nonce=\"abc123\", qop=\"auth\"\r\n";
    respond(
        &mut h,
        &first,
        "407 Proxy Authentication Required",
        challenge,
        "",
    );

    // The 407 is acknowledged on the INVITE's branch, with its To (RFC 3261 §17.1.1.3).
    let ack = requests(&h, "ACK").pop().expect("the ACK of the 407");
    assert_eq!(ack.header("Via"), first.header("Via"));
    assert_eq!(ack.header("CSeq").unwrap(), "1 ACK");
    assert!(ack.header("To").unwrap().ends_with(";tag=callee1"));

    let all = invites(&h);
    assert_eq!(all.len(), 2, "{}", h.transcript());
    let second = &all[1];
    assert_eq!(second.header("CSeq").unwrap(), "2 INVITE");
    assert_eq!(second.header("Call-ID"), first.header("Call-ID"));
    assert_eq!(second.header("From"), first.header("From"));
    assert_ne!(second.header("Via"), first.header("Via"));
    assert_eq!(second.body(), first.body(), "the same offer");
    let auth = second.header("Proxy-Authorization").expect("credentials");
    let param = |name: &str| {
        let at = auth.find(&format!("{name}=")).expect(name) + name.len() + 1;
        let rest = &auth[at..];
        match rest.strip_prefix('"') {
            Some(q) => q[..q.find('"').unwrap()].to_string(),
            None => rest[..rest.find(',').unwrap_or(rest.len())]
                .trim()
                .to_string(),
        }
    };
    let hex = |s: &str| -> String {
        Md5::digest(s.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    assert_eq!(param("username"), "moh");
    assert_eq!(param("uri"), "sip:200@192.168.1.60:5070");
    let ha1 = hex("moh:pbx:s3cret");
    let ha2 = hex("INVITE:sip:200@192.168.1.60:5070");
    let expected = hex(&format!(
        "{ha1}:abc123:{}:{}:auth:{ha2}",
        param("nc"),
        param("cnonce")
    ));
    assert_eq!(param("response"), expected);

    // The same nonce refused again is a wrong password: the call ends with that code.
    respond(
        &mut h,
        second,
        "407 Proxy Authentication Required",
        challenge,
        "",
    );
    assert_eq!(invites(&h).len(), 2);
    assert_eq!(ended(&h), vec![EndReason::Rejected(407)]);
}

#[test]
fn a_challenge_without_an_account_for_the_host_ends_the_call() {
    let (mut h, _, invite) = placed();
    let challenge = "WWW-Authenticate: Digest realm=\"pbx\", nonce=\"n\"\r\n";
    respond(&mut h, &invite, "401 Unauthorized", challenge, "");
    assert_eq!(invites(&h).len(), 1);
    assert_eq!(ended(&h), vec![EndReason::Rejected(401)]);
}

#[test]
fn busy_is_acknowledged_and_reported_as_the_end_reason() {
    let (mut h, call, invite) = placed();
    respond(&mut h, &invite, "100 Trying", "", "");
    respond(&mut h, &invite, "486 Busy Here", "", "");
    assert_eq!(requests(&h, "ACK").len(), 1);
    assert_eq!(ended(&h), vec![EndReason::Rejected(486)]);
    assert!(h.server.call_info(call).is_none());
    assert!(h.rtp().is_empty());
    // A retransmitted 486 is acknowledged again by the transaction; nothing else happens.
    respond(&mut h, &invite, "486 Busy Here", "", "");
    assert_eq!(requests(&h, "ACK").len(), 2);
    assert_eq!(ended(&h).len(), 1);
}

#[test]
fn no_answer_retransmits_on_timer_a_and_ends_as_408_at_timer_b() {
    let mut h = Harness::new();
    h.server
        .originate(h.now, originate("sip:200@192.168.1.60:5070"))
        .unwrap();
    h.drain();
    h.advance(Duration::from_secs(31));
    // T1 = 500 ms doubling: 0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s — six by 31 s.
    assert_eq!(invites(&h).len(), 6, "{}", h.transcript());
    assert!(ended(&h).is_empty());
    h.advance(Duration::from_secs(2));
    assert_eq!(ended(&h), vec![EndReason::Rejected(408)]);
    assert!(requests(&h, "CANCEL").is_empty());
}

#[test]
fn hanging_up_before_the_answer_cancels_once_a_provisional_came() {
    let (mut h, call, invite) = placed();
    h.server.control(h.now, Control::Hangup(call));
    h.drain();
    // RFC 3261 §9.1: no CANCEL before a provisional response.
    assert!(requests(&h, "CANCEL").is_empty());
    respond(&mut h, &invite, "180 Ringing", "", "");
    let cancels = requests(&h, "CANCEL");
    assert_eq!(cancels.len(), 1, "{}", h.transcript());
    let cancel = &cancels[0];
    assert_eq!(
        cancel.start_line(),
        "CANCEL sip:200@192.168.1.60:5070 SIP/2.0"
    );
    assert_eq!(cancel.header("Via"), invite.header("Via"));
    assert_eq!(cancel.header("CSeq").unwrap(), "1 CANCEL");
    assert_eq!(cancel.header("To"), invite.header("To"));
    h.send(CALLEE, &cancel.reply("200 OK"));
    assert!(
        ended(&h).is_empty(),
        "the call ends with the INVITE's final response"
    );
    respond(&mut h, &invite, "487 Request Terminated", "", "");
    assert_eq!(requests(&h, "ACK").len(), 1);
    assert_eq!(ended(&h), vec![EndReason::Operator]);
}

#[test]
fn a_200_that_crosses_the_cancel_is_acknowledged_and_ended_with_bye() {
    let (mut h, call, invite) = placed();
    respond(&mut h, &invite, "180 Ringing", "", "");
    h.server.control(h.now, Control::Hangup(call));
    h.drain();
    assert_eq!(requests(&h, "CANCEL").len(), 1);
    respond(&mut h, &invite, "200 OK", CONTACT, &answer_sdp());
    assert_eq!(requests(&h, "ACK").len(), 1);
    assert_eq!(requests(&h, "BYE").len(), 1, "{}", h.transcript());
    assert_eq!(ended(&h), vec![EndReason::Operator]);
    assert!(h.rtp().is_empty());
}

#[test]
fn a_class_source_and_a_from_user_are_used() {
    let o = Originate {
        from: Some("reception".into()),
        source: Some(Source::Class("sales".into())),
        ..originate("sip:200@192.168.1.60:5070")
    };
    let (h, invite, call) = answered(ServerConfig::default(), o);
    let from = invite.header("From").unwrap();
    assert!(
        from.starts_with("<sip:reception@192.168.1.100>;tag="),
        "{from}"
    );
    assert!(invite.header("Contact").unwrap().contains("sip:sales@"));
    assert_eq!(h.server.call_info(call).unwrap().user, "sales");
}

#[test]
fn refusals_say_why() {
    let mut h = Harness::new();
    let bad = h.server.originate(h.now, originate("mailto:x@example.com"));
    assert_eq!(bad.unwrap_err(), OriginateError::BadUri);
    let config = ServerConfig {
        max_calls: 0,
        ..ServerConfig::default()
    };
    let mut full = Harness::with(config, Library::silence());
    let r = full
        .server
        .originate(full.now, originate("sip:200@192.168.1.60"));
    assert_eq!(r.unwrap_err(), OriginateError::Full);
    h.server.control(
        h.now,
        Control::Shutdown {
            grace: Duration::from_secs(1),
        },
    );
    let r = h.server.originate(h.now, originate("sip:200@192.168.1.60"));
    assert_eq!(r.unwrap_err(), OriginateError::Draining);
}

#[test]
fn a_ringing_callee_is_waited_for_past_timer_b_and_cancelled_after_three_minutes() {
    let (mut h, _, invite) = placed();
    respond(&mut h, &invite, "180 Ringing", "", "");
    h.advance(Duration::from_secs(60));
    assert!(
        ended(&h).is_empty(),
        "timer B stops in Proceeding (RFC 3261 §17.1.1.2)"
    );
    assert_eq!(
        invites(&h).len(),
        1,
        "no retransmission after a provisional"
    );
    respond(&mut h, &invite, "180 Ringing", "", "");
    h.advance(Duration::from_secs(180));
    assert!(ended(&h).is_empty());
    h.advance(Duration::from_secs(2));
    assert_eq!(ended(&h), vec![EndReason::Rejected(408)]);
    // One CANCEL (retransmitted on timer E until answered).
    let cancel = requests(&h, "CANCEL");
    assert!(!cancel.is_empty(), "{}", h.transcript());
    assert!(cancel.iter().all(|c| c.bytes == cancel[0].bytes));
    assert_eq!(cancel[0].at, Duration::from_secs(241));
    assert_eq!(cancel[0].header("Via"), invite.header("Via"));
}

#[test]
fn calls_for_an_accounts_host_go_to_its_outbound_proxy_as_resolved() {
    let proxied = Registration {
        outbound_proxy: Some(onhold_core::Hop::Name {
            host: "edge.example.com".into(),
            port: Some(5080),
        }),
        ..account()
    };
    let config = ServerConfig {
        registrations: vec![proxied],
        ..ServerConfig::default()
    };
    let mut h = Harness::with(config, Library::silence());
    h.hosts
        .insert("edge.example.com".into(), "192.168.1.2".parse().unwrap());
    h.advance(Duration::ZERO); // the REGISTER, after the proxy's lookup
    h.server
        .originate(h.now, originate("sip:200@192.168.1.60:5070"))
        .unwrap();
    h.drain();
    let invite = invites(&h).pop().unwrap();
    assert_eq!(invite.t.remote, addr("192.168.1.2:5080"));
    assert_eq!(
        invite.start_line(),
        "INVITE sip:200@192.168.1.60:5070 SIP/2.0"
    );
}
