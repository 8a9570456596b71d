//! The DP750's SIP dialogues, as SIPp scenarios, with the media each one should produce.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::time::Duration;

use onhold_tests::caller::{dp750_offer, header, invite_without_ack, Caller};
use onhold_tests::rtp::check_stream;
use onhold_tests::{both_runtimes, ports, RtpReceiver, Runtime, Server, ServerOptions, Sipp};

use crate::common::{assert_call_media, assert_flow, sent_at, PAYLOAD, SAMPLES, STOP_SLACK};

both_runtimes!(
    shape_a_own_address_gets_music_info_and_bye_stop_it,
    shape_b_held_party_gets_the_music,
    shape_c_late_offer_answered_in_ack,
    cancel_after_provisional_is_consistent,
    hold_is_silent_and_unhold_resumes_with_marker,
    options_answers_200_with_allow,
    shape_a_over_tcp,
    session_expires_is_echoed_and_too_short_is_422,
    unacked_200_is_retransmitted_and_starts_no_media,
    unknown_method_is_405_with_allow,
);

/// The 200 OK to the INVITE answers PCMU `a=sendonly` with a To-tag and a Contact (without
/// them the DP750 never ACKs).
fn assert_answer(run: &onhold_tests::SippRun, cseq: &str, direction: &str) {
    let ok = run
        .response_to(cseq)
        .filter(|m| m.status() == Some(200))
        .unwrap_or_else(|| panic!("no 200 to {cseq}:\n{}", run.transcript()));
    assert!(
        ok.header("To").is_some_and(|t| t.contains(";tag=")),
        "200 without To-tag:\n{}",
        ok.text
    );
    assert!(
        ok.header("Contact").is_some(),
        "200 without Contact:\n{}",
        ok.text
    );
    assert_eq!(ok.sdp_direction(), Some(direction), "answer:\n{}", ok.text);
    // PCMU is the first offered codec we support: it keeps PT 0; telephone-event (101) is
    // answered because it was offered; nothing else.
    let formats: Vec<&str> = ok
        .body()
        .lines()
        .find_map(|l| l.trim().strip_prefix("m=audio "))
        .map(|m| m.split(' ').skip(2).collect())
        .unwrap_or_default();
    assert_eq!(formats, ["0", "101"], "answer m= line:\n{}", ok.text);
}

fn shape_a_own_address_gets_music_info_and_bye_stop_it(rt: Runtime) {
    let server = Server::start(rt);
    let rx = RtpReceiver::bind();
    let run = Sipp::new("dp750_own_address.xml", server.sip)
        .set("rtp_port", rx.port())
        .run();
    run.assert_success();
    // Packets sent just before the BYE may still be in flight; wait out the slack.
    std::thread::sleep(STOP_SLACK + Duration::from_millis(100));
    assert_flow(
        &run,
        &[
            "→ INVITE (21 INVITE)",
            "← 100 Trying (21 INVITE)",
            "← 200 OK (21 INVITE)",
            "→ ACK (21 ACK)",
            "→ INFO (22 INFO)",
            "← 200 OK (22 INFO)",
            "→ BYE (23 BYE)",
            "← 200 OK (23 BYE)",
        ],
    );
    assert_answer(&run, "21 INVITE", "sendonly");
    let packets = rx.packets();
    let report = assert_call_media(&run, &packets);
    assert_eq!(report.pt, 0);
    assert_eq!(report.markers, vec![0], "marker only on the first packet");
    assert!(
        packets
            .iter()
            .all(|p| p.from.ip() == IpAddr::V4(Ipv4Addr::LOCALHOST)),
        "RTP from an unexpected source"
    );
}

fn shape_b_held_party_gets_the_music(rt: Runtime) {
    let server = Server::start(rt);
    // The held party on another loopback address when the host allows it (Linux does).
    let held_ip: IpAddr = if UdpSocket::bind("127.0.0.2:0").is_ok() {
        [127, 0, 0, 2].into()
    } else {
        [127, 0, 0, 1].into()
    };
    let held = RtpReceiver::bind_ip(held_ip);
    let run = Sipp::new("dp750_held_party.xml", server.sip)
        .set("rtp_port", held.port())
        .set("held_ip", held_ip)
        .run();
    run.assert_success();
    std::thread::sleep(STOP_SLACK + Duration::from_millis(100));
    assert_flow(
        &run,
        &[
            "→ INVITE (21 INVITE)",
            "← 100 Trying (21 INVITE)",
            "← 200 OK (21 INVITE)",
            "→ ACK (21 ACK)",
            "→ BYE (22 BYE)",
            "← 200 OK (22 BYE)",
        ],
    );
    // RFC 3264: the answer to a recvonly offer is sendonly.
    assert_answer(&run, "21 INVITE", "sendonly");
    assert_call_media(&run, &held.packets());
}

fn shape_c_late_offer_answered_in_ack(rt: Runtime) {
    let server = Server::start(rt);
    let rx = RtpReceiver::bind();
    let run = Sipp::new("dp750_late_offer.xml", server.sip)
        .set("rtp_port", rx.port())
        .run();
    run.assert_success();
    std::thread::sleep(STOP_SLACK + Duration::from_millis(100));
    assert_flow(
        &run,
        &[
            "→ INVITE (21 INVITE)",
            "← 100 Trying (21 INVITE)",
            "← 200 OK (21 INVITE)",
            "→ ACK (21 ACK)",
            "→ BYE (22 BYE)",
            "← 200 OK (22 BYE)",
        ],
    );
    let offer = run.response_to("21 INVITE").expect("200");
    assert!(
        offer.body().contains("m=audio ") && offer.body().contains("PCMU/8000"),
        "the 200 to a late-offer INVITE must carry an offer with PCMU:\n{}",
        offer.text
    );
    assert!(
        matches!(
            offer.sdp_direction(),
            Some("sendonly") | Some("sendrecv") | None
        ),
        "offer direction {:?}",
        offer.sdp_direction()
    );
    // The only RTP address the server ever learned is the one in our ACK.
    assert_call_media(&run, &rx.packets());
}

fn cancel_after_provisional_is_consistent(rt: Runtime) {
    let server = Server::start(rt);
    let rx = RtpReceiver::bind();
    let run = Sipp::new("cancel.xml", server.sip)
        .set("rtp_port", rx.port())
        .run();
    run.assert_success();
    std::thread::sleep(STOP_SLACK + Duration::from_millis(100));
    let invite_final = run
        .messages
        .iter()
        .find(|m| !m.sent && m.header("CSeq") == Some("21 INVITE") && m.status() >= Some(200))
        .unwrap_or_else(|| panic!("no final response to the INVITE:\n{}", run.transcript()));
    let cancel_resp = run
        .response_to("21 CANCEL")
        .unwrap_or_else(|| panic!("no response to CANCEL:\n{}", run.transcript()));
    let packets = rx.packets();
    match invite_final.status() {
        // The CANCEL won: 200 to CANCEL, 487 to INVITE, no dialog, never any media.
        Some(487) => {
            assert_eq!(cancel_resp.status(), Some(200), "{}", run.transcript());
            assert!(run.sent("BYE").is_none());
            assert!(
                packets.is_empty(),
                "{} RTP packets for a cancelled call",
                packets.len()
            );
        }
        // The 200 won (RFC 3261 §9.2: a CANCEL after the final response has no effect and
        // is answered 200, or 481 once the transaction is gone): a normal call we end with BYE.
        Some(200) => {
            assert!(
                matches!(cancel_resp.status(), Some(200) | Some(481)),
                "{}",
                run.transcript()
            );
            assert!(run.sent("BYE").is_some());
            let bye = sent_at(&run, "BYE");
            assert!(
                packets.iter().all(|p| p.wall <= bye + STOP_SLACK),
                "RTP after BYE"
            );
            if !packets.is_empty() {
                check_stream(&packets, SAMPLES, PAYLOAD).expect("stream");
            }
        }
        s => panic!("INVITE ended with {s:?}:\n{}", run.transcript()),
    }
    // Whatever happened, the call is gone: no media keeps flowing.
    let before = rx.count();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(rx.count(), before, "RTP still flowing after the call ended");
}

fn hold_is_silent_and_unhold_resumes_with_marker(rt: Runtime) {
    let server = Server::start(rt);
    let rx = RtpReceiver::bind();
    let run = Sipp::new("hold_unhold.xml", server.sip)
        .set("rtp_port", rx.port())
        .run();
    run.assert_success();
    std::thread::sleep(STOP_SLACK + Duration::from_millis(100));
    assert_flow(
        &run,
        &[
            "→ INVITE (21 INVITE)",
            "← 100 Trying (21 INVITE)",
            "← 200 OK (21 INVITE)",
            "→ ACK (21 ACK)",
            "→ INVITE (22 INVITE)",
            "← 200 OK (22 INVITE)",
            "→ ACK (22 ACK)",
            "→ INVITE (23 INVITE)",
            "← 200 OK (23 INVITE)",
            "→ ACK (23 ACK)",
            "→ BYE (24 BYE)",
            "← 200 OK (24 BYE)",
        ],
    );
    assert_answer(&run, "21 INVITE", "sendonly");
    assert_answer(&run, "22 INVITE", "inactive");
    assert_answer(&run, "23 INVITE", "sendonly");

    let held_at = run.response_to("22 INVITE").expect("hold answer").wall;
    let unhold = run
        .messages
        .iter()
        .find(|m| m.sent && m.header("CSeq") == Some("23 INVITE"))
        .expect("unhold sent")
        .wall;
    let packets = rx.packets();
    // The hold answer left the server before any packet it sends after it: allow only what
    // was already in flight.
    let during: Vec<_> = packets
        .iter()
        .filter(|p| p.wall > held_at + Duration::from_millis(40) && p.wall < unhold)
        .collect();
    assert!(
        during.is_empty(),
        "{} RTP packets while held (first seq {})",
        during.len(),
        during[0].seq
    );
    let report = assert_hold_stream(&run, &packets);
    let resume = report.markers[1];
    assert!(
        packets[resume].wall >= unhold,
        "the marker packet arrived before the unhold re-INVITE"
    );
    assert!(
        resume >= 50 && packets.len() - resume >= 50,
        "expected ~75 packets before hold and after unhold, got {resume} and {}",
        packets.len() - resume
    );
}

/// Seq contiguous across the hold (the server sends nothing, so it skips no numbers), marker
/// exactly on the first packet and on the first after unhold.
fn assert_hold_stream(
    run: &onhold_tests::SippRun,
    packets: &[onhold_tests::RtpPacket],
) -> onhold_tests::rtp::StreamReport {
    let report = check_stream(packets, SAMPLES, PAYLOAD)
        .unwrap_or_else(|e| panic!("bad stream across hold: {e}\n{}", run.transcript()));
    assert_eq!(
        report.markers.len(),
        2,
        "marker bits at packets {:?}; expected the first and the first after unhold",
        report.markers
    );
    let bye = sent_at(run, "BYE");
    assert!(
        packets.iter().all(|p| p.wall <= bye + STOP_SLACK),
        "RTP after BYE"
    );
    report
}

fn options_answers_200_with_allow(rt: Runtime) {
    let server = Server::start(rt);
    let run = Sipp::new("options.xml", server.sip).run();
    run.assert_success();
    assert_flow(&run, &["→ OPTIONS (21 OPTIONS)", "← 200 OK (21 OPTIONS)"]);
    let ok = run.response_to("21 OPTIONS").unwrap();
    let allow = ok
        .header("Allow")
        .unwrap_or_else(|| panic!("200 to OPTIONS without Allow:\n{}", ok.text));
    for m in ["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO"] {
        assert!(
            allow.split(',').any(|a| a.trim() == m),
            "Allow lacks {m}: {allow}"
        );
    }
}

/// The same DP750 call over SIP/TCP (RFC 3261 §18.3 framing by Content-Length): same
/// exchange, same media.
fn shape_a_over_tcp(rt: Runtime) {
    let tcp: std::net::SocketAddr = ([127, 0, 0, 1], ports::free_tcp_port()).into();
    // Kept alive (and stopped on drop) for the whole call; SIPp talks to its TCP listener.
    let _server = Server::start_with(
        rt,
        ServerOptions::default()
            .arg("--listen")
            .arg(format!("tcp:{tcp}")),
    );
    let rx = RtpReceiver::bind();
    let run = Sipp::new("dp750_own_address.xml", tcp)
        .tcp()
        .set("rtp_port", rx.port())
        .run();
    run.assert_success();
    std::thread::sleep(STOP_SLACK + Duration::from_millis(100));
    assert_flow(
        &run,
        &[
            "→ INVITE (21 INVITE)",
            "← 100 Trying (21 INVITE)",
            "← 200 OK (21 INVITE)",
            "→ ACK (21 ACK)",
            "→ INFO (22 INFO)",
            "← 200 OK (22 INFO)",
            "→ BYE (23 BYE)",
            "← 200 OK (23 BYE)",
        ],
    );
    assert_answer(&run, "21 INVITE", "sendonly");
    let ok = run.response_to("21 INVITE").unwrap();
    assert!(
        ok.header("Via")
            .is_some_and(|v| v.starts_with("SIP/2.0/TCP")),
        "Via of the answer: {:?}",
        ok.header("Via")
    );
    assert_call_media(&run, &rx.packets());
}

/// RFC 4028: a Session-Expires the server accepts comes back in the 200 with the refresher
/// the caller chose; one below the server's minimum is refused with 422 and a Min-SE.
fn session_expires_is_echoed_and_too_short_is_422(rt: Runtime) {
    let server = Server::start(rt);
    let rx = RtpReceiver::bind();
    let offer = dp750_offer(rx.addr(), "RTP/AVP", "0 101", 20, "sendrecv");
    let c = Caller::invite_with(
        server.sip,
        &offer,
        "Session-Expires: 1800;refresher=uac\r\n",
    );
    assert_eq!(c.status(), 200, "{}", c.answer);
    let se = header(&c.answer, "Session-Expires")
        .unwrap_or_else(|| panic!("200 without Session-Expires:\n{}", c.answer));
    let (secs, params) = se.split_once(';').unwrap_or((&se, ""));
    assert_eq!(secs.trim(), "1800", "{se}");
    assert!(params.replace(' ', "").contains("refresher=uac"), "{se}");
    assert_eq!(c.bye(), 200);

    let short = Caller::invite_with(server.sip, &offer, "Session-Expires: 30\r\n");
    assert_eq!(short.status(), 422, "{}", short.answer);
    let min_se: u64 = header(&short.answer, "Min-SE")
        .and_then(|v| v.split(';').next()?.trim().parse().ok())
        .unwrap_or_else(|| panic!("422 without a numeric Min-SE:\n{}", short.answer));
    assert!(min_se > 30, "Min-SE {min_se} does not explain refusing 30");
}

/// RFC 3261 §13.3.1.4: without an ACK the 200 is retransmitted on T1 doubling (0.5 s, 1 s,
/// …); and media waits for the ACK, so an INVITE whose SDP names a victim gets it no RTP.
fn unacked_200_is_retransmitted_and_starts_no_media(rt: Runtime) {
    // A short grace: on drop the server drains the half-open call and need not wait long.
    let server = Server::start_with(
        rt,
        ServerOptions::default().arg("--shutdown-grace").arg("1s"),
    );
    let victim = RtpReceiver::bind();
    let offer = dp750_offer(victim.addr(), "RTP/AVP", "0 101", 20, "sendrecv");
    let got = invite_without_ack(server.sip, &offer, Duration::from_millis(2300));
    let oks: Vec<std::time::Instant> = got
        .iter()
        .filter(|(_, m)| m.starts_with("SIP/2.0 200"))
        .map(|(t, _)| *t)
        .collect();
    // Sent at 0, +0.5 s, +1.5 s: three within 2.3 s.
    assert_eq!(oks.len(), 3, "200s seen: {}", oks.len());
    let (g1, g2) = (oks[1] - oks[0], oks[2] - oks[1]);
    assert!(
        (300..=800).contains(&g1.as_millis()) && (800..=1300).contains(&g2.as_millis()),
        "retransmission gaps {g1:?}, {g2:?}; expected about 0.5 s then 1 s"
    );
    assert_eq!(victim.count(), 0, "RTP before any ACK");
}

/// A method the server does not implement gets 405 and an Allow listing what it does.
fn unknown_method_is_405_with_allow(rt: Runtime) {
    let server = Server::start(rt);
    let resp = onhold_tests::server::request(server.sip, "PUBLISH", Duration::from_secs(2))
        .expect("no response to PUBLISH");
    assert!(resp.starts_with("SIP/2.0 405"), "{resp}");
    let allow = header(&resp, "Allow").unwrap_or_else(|| panic!("405 without Allow:\n{resp}"));
    assert!(allow.contains("INVITE") && allow.contains("BYE"), "{allow}");
}
