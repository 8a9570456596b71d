//! Random SDP-ish input never panics, and every accepted offer yields a well-formed answer.

use onhold_core::sdp::{self, AnswerPrefs, LocalMedia};
use onhold_core::Codec;
use proptest::prelude::*;

/// Lines that look like SDP, with plausible and implausible values mixed in.
fn sdp_line() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just("v=0".to_string()),
        1 => "o=[a-z0-9 ]{0,30}",
        1 => "c=IN IP[46] [0-9a-f.:/]{0,20}",
        1 => Just("c=IN IP4 0.0.0.0".to_string()),
        1 => Just("c=IN IP6 ::1".to_string()),
        4 => m_line(),
        1 => "m=(audio|video) [0-9/]{0,7} [A-Z/]{0,9}( [0-9*]{1,3}){0,6}",
        1 => "a=rtpmap:[0-9]{1,3} (PCMU|pcma|G722|telephone-event|opus|x)/[0-9]{0,6}(/[0-9]{1,2})?",
        1 => "a=fmtp:[0-9]{0,3} [ -~]{0,12}",
        1 => "a=(ptime|maxptime):[0-9.]{0,12}",
        1 => "a=(sendrecv|sendonly|recvonly|inactive|rtcp-mux|crypto:1 x)",
        1 => "a=rtcp:[0-9]{0,6}( IN IP4 [0-9.]{0,15})?",
        1 => "[ -~]{0,40}",
    ]
}

/// A well-formed m-line, so that generated offers get past parsing and into negotiation.
fn m_line() -> impl Strategy<Value = String> {
    (
        prop_oneof![4 => Just("audio"), 1 => Just("video"), 1 => Just("AUDIO")],
        prop_oneof![1 => Just(0u16), 4 => 1u16..=65535],
        prop_oneof![
            4 => Just("RTP/AVP"),
            1 => Just("RTP/AVPF"),
            1 => Just("RTP/SAVP"),
            1 => Just("udp")
        ],
        proptest::collection::vec(
            prop_oneof![Just(0u8), Just(8), Just(9), 0u8..20, 90u8..130],
            0..6,
        ),
    )
        .prop_map(|(media, port, proto, pts)| {
            let fmts: String = pts.iter().map(|pt| format!(" {pt}")).collect();
            format!("m={media} {port} {proto}{fmts}")
        })
}

fn local() -> LocalMedia<'static> {
    LocalMedia {
        addr: "127.0.0.1".parse().unwrap(),
        rtp_port: 20000,
        session_id: 1,
        session_version: 1,
        username: "onhold",
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(sd) = sdp::parse(&body) {
            let _ = sdp::answer(&sd, &AnswerPrefs::default());
        }
    }

    #[test]
    fn sdp_like_offers_answer_consistently(
        lines in proptest::collection::vec(sdp_line(), 0..24),
        session_c in proptest::option::weighted(0.8, Just("c=IN IP4 192.0.2.1")),
        lf_only in any::<bool>(),
        prefs in proptest::sample::subsequence(Codec::ALL.to_vec(), 0..=3),
        default_ptime in 0u32..200,
    ) {
        let sep = if lf_only { "\n" } else { "\r\n" };
        let body = format!("v=0{sep}{}{sep}{}", session_c.unwrap_or(""), lines.join(sep));
        let Ok(offer) = sdp::parse(body.as_bytes()) else { return Ok(()) };
        let prefs = AnswerPrefs { codecs: prefs, default_ptime_ms: default_ptime };
        let Ok(neg) = sdp::answer(&offer, &prefs) else { return Ok(()) };
        prop_assert!(neg.ptime_ms % 10 == 0 && (10..=60).contains(&neg.ptime_ms));
        prop_assert!(prefs.codecs.is_empty() || prefs.codecs.contains(&neg.codec));
        prop_assert_eq!(neg.media_count, offer.media.len());
        let mut out = Vec::new();
        sdp::write_answer(&offer, &neg, &local(), &mut out);
        let back = sdp::parse(&out).expect("our answer parses");
        prop_assert_eq!(back.media.len(), offer.media.len());
        for (i, m) in back.media.iter().enumerate() {
            prop_assert_eq!(m.port == 0, i != neg.media_index);
        }
        let chosen = &back.media[neg.media_index];
        prop_assert_eq!(chosen.payload_types().next(), Some(neg.payload_type));
    }
}
