//! A music class's own SDP settings (`ServerConfig::class_sdp`): its codec order and default
//! ptime in the answer, `b=AS`/`b=TIAS` on our stream and its session and media attributes —
//! for callers of that class only; every other caller gets the global answer.

mod common;

use common::*;
use onhold_core::media::{ClassSpec, Library, LibrarySpec, MusicSource, Order, PlayMode};
use onhold_core::sdp::Extras;
use onhold_core::{ClassSdp, Codec, ServerConfig};

/// Two classes, `default` and `sales`, each a second of silence.
fn library() -> Library {
    let class = |name: &str| ClassSpec {
        name: name.into(),
        sources: vec![MusicSource {
            name: format!("{name}.wav"),
            bytes: wav(8000, &[0; 8000]),
        }],
        from_directory: false,
        order: Order::Sorted,
        mode: PlayMode::PerCall,
        announcement: None,
        live: None,
    };
    let spec = LibrarySpec {
        classes: vec![class("default"), class("sales")],
        normalize: false,
        gain_db: 0.0,
        g722: true,
    };
    Library::build(&spec, 1).expect("builds").0
}

fn config() -> ServerConfig {
    ServerConfig {
        class_sdp: vec![ClassSdp {
            class: "sales".into(),
            codecs: vec![Codec::Pcma, Codec::Pcmu],
            ptime_ms: Some(30),
            extras: Extras {
                bandwidth_as: Some(64),
                bandwidth_tias: Some(64000),
                session_attributes: vec!["tool:onhold-test".into()],
                media_attributes: vec!["label:moh".into()],
            },
        }],
        ..ServerConfig::default()
    }
}

/// The SDP of our 200 to an INVITE for `user` offering PCMU then PCMA without a ptime.
fn answer_for(user: &str) -> String {
    let mut h = Harness::with(config(), library());
    let c = Dp750 {
        user: user.into(),
        ..Dp750::new(1)
    };
    let offer = "v=0\r\no=201 8000 8000 IN IP4 192.168.1.50\r\ns=SIP Call\r\nc=IN IP4 192.168.1.50\r\nt=0 0\r\nm=audio 5004 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n";
    h.send(PHONE, &c.request("INVITE", Some(offer), &[]));
    h.response("SIP/2.0 200").body()
}

#[test]
fn the_class_answer_has_its_codec_ptime_bandwidth_and_attributes() {
    let sdp = answer_for("sales");
    let lines: Vec<&str> = sdp.lines().collect();
    let at = |prefix: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{sdp}"))
    };
    // The class prefers PCMA though the offer lists PCMU first.
    assert!(lines[at("m=audio")].ends_with(" RTP/AVP 8"), "{sdp}");
    assert_eq!(lines[at("a=ptime:")], "a=ptime:30");
    // RFC 8866 §5 order: session a= after t=; b= right after m= (no media c=), before a=.
    assert!(at("t=") < at("a=tool:onhold-test") && at("a=tool:") < at("m=audio"));
    assert_eq!(at("b=AS:64"), at("m=audio") + 1);
    assert_eq!(at("b=TIAS:64000"), at("m=audio") + 2);
    assert_eq!(*lines.last().unwrap(), "a=label:moh");
    assert!(at("a=sendonly") < at("a=label:moh"));
}

#[test]
fn other_classes_keep_the_global_answer() {
    let sdp = answer_for("123");
    assert!(
        sdp.contains("m=audio") && sdp.contains(" RTP/AVP 0\r\n"),
        "{sdp}"
    );
    assert!(sdp.contains("a=ptime:20"), "{sdp}");
    for absent in ["b=AS", "b=TIAS", "a=tool:", "a=label:"] {
        assert!(!sdp.contains(absent), "{absent} in\n{sdp}");
    }
}
