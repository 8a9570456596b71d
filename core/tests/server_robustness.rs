//! Hostile input through the whole `Server`: mutated and garbage datagrams never panic and get
//! either nothing or a well-formed response; oversized claims end in a drop or a 400.

mod common;

use std::time::Duration;

use common::*;
use onhold_core::TransmitKind;
use proptest::prelude::*;

fn invite() -> String {
    Dp750::new(0).request(
        "INVITE",
        Some(&dp750_sdp("192.168.1.50", 5004, "sendrecv")),
        &[],
    )
}

/// Every SIP datagram the server sent parses with our own parser and is a response or a BYE.
fn assert_well_formed(h: &Harness) {
    for s in h.sent.iter().filter(|s| s.t.kind == TransmitKind::Sip) {
        let msg = onhold_core::sip::parse(&s.bytes)
            .unwrap_or_else(|e| panic!("we sent an unparseable message ({e}):\n{}", s.text()));
        assert!(msg.status().is_some() || msg.method().is_some());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mutated_invites_never_panic(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = invite().into_bytes();
        for (i, b) in flips {
            let i = i.index(bytes.len());
            bytes[i] = b;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        let mut h = Harness::new();
        h.send_bytes(PHONE, &bytes);
        h.advance(Duration::from_secs(40));
        assert_well_formed(&h);
    }

    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let mut h = Harness::new();
        h.send_bytes(PHONE, &bytes);
        h.advance(Duration::from_secs(1));
        assert_well_formed(&h);
    }
}

#[test]
fn huge_inputs_end_in_a_drop_or_400() {
    // 64 KB of garbage
    let mut h = Harness::new();
    let garbage: Vec<u8> = (0..65_536u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    h.send_bytes(PHONE, &garbage);
    assert!(h.sip().is_empty(), "garbage is dropped");

    // 10,000 Via headers
    let inv = invite();
    let (head, rest) = inv.split_once("\r\n").unwrap();
    let mut many = String::from(head);
    many.push_str("\r\n");
    for i in 0..10_000 {
        many.push_str(&format!(
            "Via: SIP/2.0/UDP 10.0.0.{}:5060;branch=z9hG4bK{i}\r\n",
            i % 250
        ));
    }
    many.push_str(rest);
    let mut h = Harness::new();
    h.send(PHONE, &many);
    let sip = h.sip();
    assert!(
        sip.iter().all(|s| s.start_line().starts_with("SIP/2.0 4")),
        "a 4xx or nothing: {:?}",
        sip.iter().map(|s| s.start_line()).collect::<Vec<_>>()
    );
    assert!(h.commands.is_empty(), "no call was set up");

    // a 1 MB Content-Length claim
    let mut h = Harness::new();
    h.send(
        PHONE,
        &invite().replace("Content-Length:   305", "Content-Length: 1048576"),
    );
    assert_eq!(h.last_sip().start_line(), "SIP/2.0 400 Bad Request");
    assert!(h.commands.is_empty());
}

/// A Contact URI with headers (`?…`; a mutated INVITE found this): our requests in the dialog
/// go to it without them, as a Request-URI carries none (RFC 3261 §19.1.1), so the BYE we send
/// when the ACK never comes is a request our own parser, and the phone's, accept.
#[test]
fn contact_headers_stay_out_of_our_request_uri() {
    for (contact, target) in [
        (
            "<sip:201@192.168.1.50:5060?Subject=hold>",
            "sip:201@192.168.1.50:5060",
        ),
        ("<sip:201@192.168.1.?0:5060>", "sip:201@192.168.1."),
    ] {
        let bytes = invite().replace("<sip:201@192.168.1.50:5060>", contact);
        assert!(bytes.contains(contact));
        let mut h = Harness::new();
        h.send_bytes(PHONE, bytes.as_bytes());
        h.advance(Duration::from_secs(40));
        assert_well_formed(&h);
        let bye = h
            .sent
            .iter()
            .map(|s| s.text())
            .find(|t| t.starts_with("BYE "))
            .expect("a BYE after 64·T1 without ACK");
        assert_eq!(
            bye.lines().next(),
            Some(format!("BYE {target} SIP/2.0").as_str()),
            "{contact}"
        );
    }
}
