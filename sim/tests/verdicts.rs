//! The verdict checkers on hand-made wire traces: a well-behaved call passes, and each broken
//! behaviour is caught and named (call, packet or message, expected, got).

use std::net::SocketAddr;
use std::time::Duration;

use onhold_sim::engine::{Kind, Trace, Way, WirePacket};
use onhold_sim::verdict::{judge, Finding, Rules};

const CALL: &str = "4711-5060-7@BJC.BGI.B.FA";

fn core_sip() -> SocketAddr {
    "192.168.1.100:5060".parse().unwrap()
}
fn phone_sip() -> SocketAddr {
    "192.168.1.50:5060".parse().unwrap()
}
fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn sdp(port: u16, dir: &str) -> String {
    format!("v=0\r\no=x 1 1 IN IP4 192.168.1.50\r\ns=-\r\nc=IN IP4 192.168.1.50\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na={dir}\r\n")
}

fn request(
    method: &str,
    cseq: u32,
    to_tag: Option<&str>,
    branch: &str,
    body: Option<&str>,
) -> Vec<u8> {
    let to = match to_tag {
        Some(t) => format!("<sip:123@192.168.1.100>;tag={t}"),
        None => "<sip:123@192.168.1.100>".to_string(),
    };
    let body = body.unwrap_or("");
    let ctype = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "{method} sip:123@192.168.1.100:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 192.168.1.50:5060;branch={branch};rport\r\nFrom: <sip:201@192.168.1.10>;tag=99\r\nTo: {to}\r\nCall-ID: {CALL}\r\nCSeq: {cseq} {method}\r\nContact: <sip:201@192.168.1.50:5060>\r\n{ctype}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn response(
    code: u16,
    reason: &str,
    cseq: u32,
    method: &str,
    branch: &str,
    body: Option<&str>,
) -> Vec<u8> {
    let body = body.unwrap_or("");
    let ctype = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    let tag = if code > 100 { ";tag=core1" } else { "" };
    format!(
        "SIP/2.0 {code} {reason}\r\nVia: SIP/2.0/UDP 192.168.1.50:5060;branch={branch};rport=5060\r\nFrom: <sip:201@192.168.1.10>;tag=99\r\nTo: <sip:123@192.168.1.100>{tag}\r\nCall-ID: {CALL}\r\nCSeq: {cseq} {method}\r\nContact: <sip:123@192.168.1.100:5060>\r\n{ctype}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn sip(at: Duration, way: Way, bytes: Vec<u8>) -> WirePacket {
    WirePacket {
        at,
        way,
        kind: Kind::Sip,
        local: core_sip(),
        remote: phone_sip(),
        bytes,
    }
}

fn rtp(at: Duration, seq: u16, ts: u32, marker: bool) -> WirePacket {
    let mut b = vec![0x80, if marker { 0x80 } else { 0 }];
    b.extend_from_slice(&seq.to_be_bytes());
    b.extend_from_slice(&ts.to_be_bytes());
    b.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    b.extend_from_slice(&[0xff; 160]);
    WirePacket {
        at,
        way: Way::Out,
        kind: Kind::Rtp,
        local: "192.168.1.100:10000".parse().unwrap(),
        remote: "192.168.1.50:5004".parse().unwrap(),
        bytes: b,
    }
}

/// INVITE (sendrecv) → 100, 200 (sendonly) → ACK at `ack` → RTP every 20 ms from the ACK.
struct Call {
    wire: Vec<WirePacket>,
}

impl Call {
    fn answered(ack: Duration) -> Call {
        let mut wire = vec![
            sip(
                ms(0),
                Way::In,
                request("INVITE", 1, None, "z9hG4bK1", Some(&sdp(5004, "sendrecv"))),
            ),
            sip(
                ms(0),
                Way::Out,
                response(100, "Trying", 1, "INVITE", "z9hG4bK1", None),
            ),
            sip(
                ms(0),
                Way::Out,
                response(
                    200,
                    "OK",
                    1,
                    "INVITE",
                    "z9hG4bK1",
                    Some(&sdp(10000, "sendonly")),
                ),
            ),
        ];
        let mut t = ms(500);
        let mut interval = ms(500);
        while t < ack {
            wire.push(sip(
                t,
                Way::Out,
                response(
                    200,
                    "OK",
                    1,
                    "INVITE",
                    "z9hG4bK1",
                    Some(&sdp(10000, "sendonly")),
                ),
            ));
            interval = (interval * 2).min(ms(4000));
            t += interval;
        }
        wire.push(sip(
            ack,
            Way::In,
            request("ACK", 1, Some("core1"), "z9hG4bK2", None),
        ));
        Call { wire }
    }

    /// `n` packets on the 20 ms grid from `start`, seq from 1000, ts from 0.
    fn rtp(mut self, start: Duration, n: u16) -> Call {
        for k in 0..n {
            self.wire.push(rtp(
                start + ms(20) * k as u32,
                1000 + k,
                160 * k as u32,
                k == 0,
            ));
        }
        self
    }

    fn trace(mut self, end: Duration) -> Trace {
        self.wire.sort_by_key(|p| p.at);
        Trace {
            wire: self.wire,
            events: Vec::new(),
            end,
            media_packets: 0,
            stalls: Vec::new(),
        }
    }
}

fn findings(t: &Trace) -> Vec<Finding> {
    judge(t, &Rules::default())
}

fn assert_one(found: &[Finding], verdict: &str, needle: &str) {
    assert!(
        found
            .iter()
            .any(|f| f.verdict == verdict && f.call_id == CALL && f.to_string().contains(needle)),
        "expected a {verdict} finding naming {CALL} with {needle:?}; got {found:#?}"
    );
}

#[test]
fn a_well_behaved_call_passes() {
    let t = Call::answered(ms(10)).rtp(ms(10), 50).trace(ms(1500));
    assert_eq!(findings(&t), Vec::<Finding>::new());
}

#[test]
fn a_packet_one_millisecond_late_is_named() {
    let mut c = Call::answered(ms(10)).rtp(ms(10), 50);
    let p = c
        .wire
        .iter_mut()
        .find(|p| p.kind == Kind::Rtp && p.bytes[2..4] == 1010u16.to_be_bytes())
        .unwrap();
    p.at += ms(1);
    let f = findings(&c.trace(ms(1500)));
    assert_one(&f, "pacing", "RTP seq 1010");
    assert_one(&f, "pacing", "late by 1ms");
}

#[test]
fn a_sequence_gap_is_named() {
    let mut c = Call::answered(ms(10)).rtp(ms(10), 50);
    for p in c.wire.iter_mut().filter(|p| p.kind == Kind::Rtp) {
        let seq = u16::from_be_bytes([p.bytes[2], p.bytes[3]]);
        if seq >= 1020 {
            p.bytes[2..4].copy_from_slice(&(seq + 1).to_be_bytes());
        }
    }
    let f = findings(&c.trace(ms(1500)));
    assert_one(&f, "pacing", "expected seq 1020; got seq 1021");
}

#[test]
fn rtp_before_the_ack_is_named() {
    let t = Call::answered(ms(100)).rtp(ms(0), 20).trace(ms(1500));
    assert_one(&findings(&t), "pacing", "before the ACK");
}

#[test]
fn a_missing_2xx_retransmission_is_named() {
    // ACK at 2 s: copies due at +0.5 and +1.5; drop the second.
    let mut c = Call::answered(ms(2000)).rtp(ms(2000), 10);
    let i = c
        .wire
        .iter()
        .position(|p| p.at == ms(1500) && p.way == Way::Out)
        .unwrap();
    c.wire.remove(i);
    let f = findings(&c.trace(ms(3000)));
    assert_one(&f, "dialog", "200 OK (CSeq 1 INVITE) retransmission #2");
    assert_one(&f, "dialog", "a copy at +1.500000");
}

#[test]
fn no_bye_after_64_t1_without_ack_is_named() {
    let mut c = Call::answered(ms(40_000));
    c.wire
        .retain(|p| !(p.way == Way::In && p.bytes.starts_with(b"ACK")));
    c.wire.retain(|p| p.at <= ms(32_000));
    let f = findings(&c.trace(ms(40_000)));
    assert_one(&f, "dialog", "expected BYE at +32.000000");
}

#[test]
fn rtp_while_on_hold_is_named() {
    let mut c = Call::answered(ms(10)).rtp(ms(10), 50);
    // Hold at 0.5 s: the answer is right (inactive) but RTP goes on.
    c.wire.push(sip(
        ms(500),
        Way::In,
        request(
            "INVITE",
            2,
            Some("core1"),
            "z9hG4bK3",
            Some(&sdp(5004, "sendonly")),
        ),
    ));
    c.wire.push(sip(
        ms(500),
        Way::Out,
        response(
            200,
            "OK",
            2,
            "INVITE",
            "z9hG4bK3",
            Some(&sdp(10000, "inactive")),
        ),
    ));
    c.wire.push(sip(
        ms(501),
        Way::In,
        request("ACK", 2, Some("core1"), "z9hG4bK4", None),
    ));
    let f = findings(&c.trace(ms(1500)));
    assert_one(&f, "pacing", "while on hold");
}

#[test]
fn a_wrong_direction_in_an_answer_is_named() {
    let mut c = Call::answered(ms(10)).rtp(ms(10), 20);
    c.wire.push(sip(
        ms(500),
        Way::In,
        request(
            "INVITE",
            2,
            Some("core1"),
            "z9hG4bK3",
            Some(&sdp(5004, "sendonly")),
        ),
    ));
    c.wire.push(sip(
        ms(500),
        Way::Out,
        response(
            200,
            "OK",
            2,
            "INVITE",
            "z9hG4bK3",
            Some(&sdp(10000, "sendonly")),
        ),
    ));
    c.wire.push(sip(
        ms(501),
        Way::In,
        request("ACK", 2, Some("core1"), "z9hG4bK4", None),
    ));
    let f = findings(&c.trace(ms(1500)));
    assert_one(
        &f,
        "dialog",
        "expected a=inactive in answer to a=sendonly; got a=sendonly",
    );
}

#[test]
fn a_missing_marker_after_resume_is_named() {
    let mut c = Call::answered(ms(10)).rtp(ms(10), 10);
    c.wire.push(sip(
        ms(300),
        Way::In,
        request(
            "INVITE",
            2,
            Some("core1"),
            "z9hG4bK3",
            Some(&sdp(5004, "sendonly")),
        ),
    ));
    c.wire.push(sip(
        ms(300),
        Way::Out,
        response(
            200,
            "OK",
            2,
            "INVITE",
            "z9hG4bK3",
            Some(&sdp(10000, "inactive")),
        ),
    ));
    c.wire.push(sip(
        ms(600),
        Way::In,
        request(
            "INVITE",
            3,
            Some("core1"),
            "z9hG4bK5",
            Some(&sdp(5004, "sendrecv")),
        ),
    ));
    c.wire.push(sip(
        ms(600),
        Way::Out,
        response(
            200,
            "OK",
            3,
            "INVITE",
            "z9hG4bK5",
            Some(&sdp(10000, "sendonly")),
        ),
    ));
    // Resume at 0.6 s, seq and ts continuing, but no marker.
    c.wire.push(rtp(ms(610), 1010, 1600 + 4800, false));
    let f = findings(&c.trace(ms(1500)));
    assert_one(&f, "pacing", "marker bit set");
}

#[test]
fn a_response_to_an_ack_is_named() {
    let mut c = Call::answered(ms(10));
    c.wire.push(sip(
        ms(11),
        Way::Out,
        response(200, "OK", 1, "ACK", "z9hG4bK2", None),
    ));
    let f = findings(&c.trace(ms(1500)));
    assert_one(&f, "dialog", "no response to an ACK");
}

#[test]
fn a_skipped_slot_not_counted_as_late_is_named() {
    let mut c = Call::answered(ms(10)).rtp(ms(10), 50);
    // Drop slot 20 and shift the rest back: seq stays contiguous, the timestamp jumps by one
    // frame, as a late runtime would — but no Event::Late says so.
    c.wire
        .retain(|p| !(p.kind == Kind::Rtp && p.bytes[2..4] == 1020u16.to_be_bytes()));
    for p in c.wire.iter_mut().filter(|p| p.kind == Kind::Rtp) {
        let seq = u16::from_be_bytes([p.bytes[2], p.bytes[3]]);
        if seq > 1020 {
            p.bytes[2..4].copy_from_slice(&(seq - 1).to_be_bytes());
        }
    }
    let f = findings(&c.trace(ms(1500)));
    assert_one(
        &f,
        "pacing",
        "no skipped slots beyond the 0 counted as Late",
    );
    assert_one(&f, "pacing", "1 slots skipped");
}

#[test]
fn a_2xx_without_to_tag_or_contact_is_named() {
    let mut c = Call::answered(ms(10)).rtp(ms(10), 5);
    for p in c
        .wire
        .iter_mut()
        .filter(|p| p.bytes.starts_with(b"SIP/2.0 200"))
    {
        let text = String::from_utf8(p.bytes.clone()).unwrap();
        p.bytes = text
            .replace(";tag=core1", "")
            .replace("Contact: <sip:123@192.168.1.100:5060>\r\n", "")
            .into_bytes();
    }
    let f = findings(&c.trace(ms(1500)));
    assert_one(&f, "dialog", "a To-tag on the 2xx");
    assert_one(&f, "dialog", "a Contact on the 2xx");
}

#[test]
fn cancel_of_a_pending_invite_needs_487() {
    let invite = request("INVITE", 1, None, "z9hG4bK1", Some(&sdp(5004, "sendrecv")));
    let cancel = request("CANCEL", 1, None, "z9hG4bK1", None);
    let base = vec![
        sip(ms(0), Way::In, invite),
        sip(
            ms(0),
            Way::Out,
            response(100, "Trying", 1, "INVITE", "z9hG4bK1", None),
        ),
        sip(ms(800), Way::In, cancel),
        sip(
            ms(800),
            Way::Out,
            response(200, "OK", 1, "CANCEL", "z9hG4bK1", None),
        ),
    ];
    let mut good = base.clone();
    good.push(sip(
        ms(800),
        Way::Out,
        response(487, "Request Terminated", 1, "INVITE", "z9hG4bK1", None),
    ));
    good.push(sip(
        ms(801),
        Way::In,
        request("ACK", 1, Some("core1"), "z9hG4bK1", None),
    ));
    assert_eq!(
        findings(&Trace {
            wire: good,
            events: Vec::new(),
            end: ms(5000),
            media_packets: 0,
            stalls: Vec::new()
        }),
        Vec::<Finding>::new()
    );
    let mut bad = base;
    bad.push(sip(
        ms(900),
        Way::Out,
        response(
            200,
            "OK",
            1,
            "INVITE",
            "z9hG4bK1",
            Some(&sdp(10000, "sendonly")),
        ),
    ));
    let f = findings(&Trace {
        wire: bad,
        events: Vec::new(),
        end: ms(5000),
        media_packets: 0,
        stalls: Vec::new(),
    });
    assert_one(&f, "dialog", "expected 487 Request Terminated");
}

fn rtcp_sr(at: Duration) -> WirePacket {
    let mut b = vec![0x80, 200, 0, 6];
    b.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    b.extend_from_slice(&[0; 20]);
    WirePacket {
        at,
        way: Way::Out,
        kind: Kind::Rtcp,
        local: "192.168.1.100:10001".parse().unwrap(),
        remote: "192.168.1.50:5005".parse().unwrap(),
        bytes: b,
    }
}

#[test]
fn rtcp_sender_reports_keep_their_cadence() {
    let ok = Call::answered(ms(10)).rtp(ms(10), 1000);
    let mut good = ok.wire.clone();
    good.extend([rtcp_sr(ms(4000)), rtcp_sr(ms(9000)), rtcp_sr(ms(15_500))]);
    good.sort_by_key(|p| p.at);
    assert_eq!(
        findings(&Trace {
            wire: good,
            events: Vec::new(),
            end: ms(21_000),
            media_packets: 0,
            stalls: Vec::new()
        }),
        Vec::<Finding>::new()
    );
    // 1 s between two reports: faster than 0.5 × 5 s.
    let mut fast = ok.wire.clone();
    fast.extend([
        rtcp_sr(ms(4000)),
        rtcp_sr(ms(5000)),
        rtcp_sr(ms(9000)),
        rtcp_sr(ms(15_000)),
    ]);
    fast.sort_by_key(|p| p.at);
    let f = findings(&Trace {
        wire: fast,
        events: Vec::new(),
        end: ms(21_000),
        media_packets: 0,
        stalls: Vec::new(),
    });
    assert_one(
        &f,
        "pacing",
        "RTCP SR: expected 2.5s–7.5s after the previous SR",
    );
    // None at all over 20 s of media.
    let f = findings(&ok.trace(ms(21_000)));
    assert_one(
        &f,
        "pacing",
        "a sender report within 7.5s of media starting at +0.010000",
    );
}

#[test]
fn rtp_after_bye_is_named() {
    let mut c = Call::answered(ms(10)).rtp(ms(10), 50);
    c.wire.push(sip(
        ms(500),
        Way::In,
        request("BYE", 2, Some("core1"), "z9hG4bK7", None),
    ));
    c.wire.push(sip(
        ms(500),
        Way::Out,
        response(200, "OK", 2, "BYE", "z9hG4bK7", None),
    ));
    let f = findings(&c.trace(ms(1500)));
    assert_one(&f, "pacing", "RTP after the BYE");
}

#[test]
fn an_out_of_order_request_needs_500() {
    let mut c = Call::answered(ms(10)).rtp(ms(10), 5);
    // INFO CSeq 3 overtook INFO CSeq 2 on the link.
    c.wire.push(sip(
        ms(300),
        Way::In,
        request("INFO", 3, Some("core1"), "z9hG4bK8", None),
    ));
    c.wire.push(sip(
        ms(300),
        Way::Out,
        response(200, "OK", 3, "INFO", "z9hG4bK8", None),
    ));
    c.wire.push(sip(
        ms(310),
        Way::In,
        request("INFO", 2, Some("core1"), "z9hG4bK9", None),
    ));
    let mut right = c.wire.clone();
    right.push(sip(
        ms(310),
        Way::Out,
        response(500, "Server Internal Error", 2, "INFO", "z9hG4bK9", None),
    ));
    right.sort_by_key(|p| p.at);
    assert_eq!(
        findings(&Trace {
            wire: right,
            events: Vec::new(),
            end: ms(1500),
            media_packets: 0,
            stalls: Vec::new()
        }),
        Vec::<Finding>::new()
    );
    c.wire.push(sip(
        ms(310),
        Way::Out,
        response(200, "OK", 2, "INFO", "z9hG4bK9", None),
    ));
    let f = findings(&c.trace(ms(1500)));
    assert_one(
        &f,
        "dialog",
        "500: a higher CSeq of this dialog arrived first",
    );
}

fn started(at: Duration) -> (Duration, onhold_core::Event) {
    (
        at,
        onhold_core::Event::CallStarted {
            call: onhold_core::CallHandle(1),
            call_id: CALL.into(),
            user: "123".into(),
            remote_sip: phone_sip(),
            remote_rtp: "192.168.1.50:5004".parse().unwrap(),
            local_rtp: "192.168.1.100:10000".parse().unwrap(),
            codec: onhold_core::Codec::Pcmu,
            payload_type: 0,
            ptime_ms: 20,
            direction: onhold_core::Direction::SendOnly,
        },
    )
}

/// Packets 10..=50 on the grid, except that the runtime slept from slot 20's deadline until
/// `wake`: the packets due meanwhile go out at `wake` (the newest `sent` of them), the older
/// ones are skipped.
fn stalled_call(wake_slot: u16, sent: u16) -> Trace {
    let start = ms(10);
    let mut c = Call::answered(start);
    let wake = start + ms(20) * wake_slot as u32 + ms(5);
    let mut seq = 1000;
    for k in 0..50u16 {
        let due = start + ms(20) * k as u32;
        let at = if (20..=wake_slot).contains(&k) {
            wake
        } else {
            due
        };
        if (20..=wake_slot).contains(&k) && wake_slot - k >= sent {
            continue; // skipped
        }
        c.wire.push(rtp(at, seq, 160 * k as u32, k == 0));
        seq += 1;
    }
    let mut t = c.trace(ms(1500));
    t.stalls.push((start + ms(20) * 20, wake));
    t
}

#[test]
fn catch_up_after_a_stall_is_accepted_within_its_bound() {
    // Slots 20..=23 overdue at the wake-up: the oldest plus three more, all sent at once.
    assert_eq!(findings(&stalled_call(23, 4)), Vec::<Finding>::new());
}

#[test]
fn catch_up_beyond_the_bound_is_named() {
    // Slots 20..=24 overdue and all five sent at once: one more than 1 + max_catchup_frames.
    let f = findings(&stalled_call(24, 5));
    assert_one(&f, "pacing", "at most 4 overdue frames sent at one wake-up");
}

#[test]
fn skipped_frames_must_be_counted_as_late() {
    // Slots 20..=26 overdue, the newest four sent, three skipped.
    let mut t = stalled_call(26, 4);
    assert_one(&findings(&t), "pacing", "3 slots skipped");
    t.events.push(started(ms(10)));
    t.events.push((
        ms(535),
        onhold_core::Event::Late {
            call: onhold_core::CallHandle(1),
            skipped: 3,
        },
    ));
    assert_eq!(findings(&t), Vec::<Finding>::new());
}

#[test]
fn a_2xx_copy_delayed_by_a_runtime_stall_is_accepted_only_with_the_stall() {
    // ACK at 2 s; the copy due at +1.5 goes out at +1.6.
    let mut c = Call::answered(ms(2000)).rtp(ms(2000), 10);
    let p = c
        .wire
        .iter_mut()
        .find(|p| p.at == ms(1500) && p.way == Way::Out)
        .unwrap();
    p.at = ms(1600);
    let mut without = c.trace(ms(3000));
    assert_one(&findings(&without), "dialog", "retransmission #2");
    without.stalls.push((ms(1500), ms(1600)));
    assert_eq!(findings(&without), Vec::<Finding>::new());
}

/// 50 packets from 10 ms; from packet 20 (at 410 ms) they go to the NAT's address, that first
/// one with the marker set when `marker`.
fn latched_call(marker: bool) -> Trace {
    let mut c = Call::answered(ms(10)).rtp(ms(10), 50);
    let nat: SocketAddr = "203.0.113.5:40000".parse().unwrap();
    for p in c.wire.iter_mut().filter(|p| p.kind == Kind::Rtp) {
        if p.at >= ms(410) {
            p.remote = nat;
            if p.at == ms(410) && marker {
                p.bytes[1] |= 0x80;
            }
        }
    }
    c.trace(ms(1500))
}

fn latched_at(at: Duration) -> (Duration, onhold_core::Event) {
    (
        at,
        onhold_core::Event::Latched {
            call: onhold_core::CallHandle(1),
            sdp_rtp: "192.168.1.50:5004".parse().unwrap(),
            remote_rtp: "203.0.113.5:40000".parse().unwrap(),
        },
    )
}

#[test]
fn rtp_follows_a_latch_the_core_reported_with_the_marker_on_its_first_packet() {
    let mut t = latched_call(true);
    // Without the core saying it latched, another address is a broken rule.
    assert_one(
        &findings(&t),
        "pacing",
        "RTP to the SDP address 192.168.1.50:5004",
    );
    t.events.push(started(ms(10)));
    t.events.push(latched_at(ms(400)));
    assert_eq!(findings(&t), Vec::<Finding>::new());
    // A packet back at the SDP's address after the latch is named.
    let back = t
        .wire
        .iter_mut()
        .find(|p| p.kind == Kind::Rtp && p.at == ms(810))
        .unwrap();
    back.remote = "192.168.1.50:5004".parse().unwrap();
    assert_one(
        &findings(&t),
        "pacing",
        "RTP to the caller's RTP source (latched) 203.0.113.5:40000",
    );
}

#[test]
fn the_first_packet_to_a_latched_address_needs_the_marker() {
    let mut t = latched_call(false);
    t.events.push(started(ms(10)));
    t.events.push(latched_at(ms(400)));
    assert_one(&findings(&t), "pacing", "first to a latched address");
}
