//! RFC 3264 offer/answer rules beyond the DP750 shapes.

use std::net::SocketAddr;

use onhold_core::sdp::{self, AnswerPrefs, LocalMedia, Negotiated, Rejection, SessionDescription};
use onhold_core::{Codec, Direction};

fn local() -> LocalMedia<'static> {
    LocalMedia {
        addr: "10.0.0.1".parse().unwrap(),
        rtp_port: 30000,
        session_id: 42,
        session_version: 3,
        username: "onhold",
    }
}

fn parse(s: &str) -> SessionDescription<'_> {
    sdp::parse(s.as_bytes()).unwrap()
}

fn answer(s: &str) -> Result<Negotiated, Rejection> {
    sdp::answer(&parse(s), &AnswerPrefs::default())
}

fn answer_text(s: &str) -> String {
    let offer = parse(s);
    let neg = sdp::answer(&offer, &AnswerPrefs::default()).unwrap();
    let mut out = Vec::new();
    sdp::write_answer(&offer, &neg, &local(), &mut out);
    String::from_utf8(out).unwrap()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// An offer with one audio line and `extra` lines appended to it.
fn audio(extra: &str) -> String {
    format!("v=0\r\no=a 1 1 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8\r\n{extra}")
}

#[test]
fn savp_is_rejected_as_secure_media() {
    for proto in ["RTP/SAVP", "RTP/SAVPF", "UDP/TLS/RTP/SAVPF"] {
        let offer = format!(
            "v=0\r\nc=IN IP4 10.0.0.2\r\nm=audio 4000 {proto} 0\r\n\
             a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n"
        );
        let r = answer(&offer).unwrap_err();
        assert_eq!(r, Rejection::SecureMediaUnsupported, "{proto}");
        assert_eq!(r.status_code(), 488);
    }
}

#[test]
fn crypto_inside_rtp_avp_is_ignored() {
    let offer =
        audio("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9\r\n");
    assert!(parse(&offer).media[0].crypto);
    let neg = answer(&offer).unwrap();
    assert_eq!(neg.codec, Codec::Pcmu);
    assert!(!answer_text(&offer).contains("crypto"));
}

#[test]
fn best_effort_srtp_pair_takes_the_plain_line() {
    let offer = "v=0\r\nc=IN IP4 10.0.0.2\r\n\
                 m=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\r\n\
                 m=audio 4002 RTP/AVP 0\r\n";
    let neg = answer(offer).unwrap();
    assert_eq!((neg.media_index, neg.media_count), (1, 2));
    assert_eq!(neg.remote_rtp, addr("10.0.0.2:4002"));
    let text = answer_text(offer);
    assert!(
        text.contains("m=audio 0 RTP/SAVP 0\r\nm=audio 30000 RTP/AVP 0\r\n"),
        "{text}"
    );
}

#[test]
fn no_audio_and_only_disabled_audio_are_rejected() {
    let video = "v=0\r\nc=IN IP4 10.0.0.2\r\nm=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";
    assert_eq!(answer(video).unwrap_err(), Rejection::NoAudio);
    let disabled = "v=0\r\nc=IN IP4 10.0.0.2\r\nm=audio 0 RTP/AVP 0\r\n";
    assert_eq!(answer(disabled).unwrap_err(), Rejection::NoAudio);
    assert_eq!(answer("v=0\r\n").unwrap_err(), Rejection::NoAudio);
}

#[test]
fn multi_m_line_offer_answers_video_with_port_0() {
    // Shaped like Ekiga's offer in DTMFsipinfo.pcap: audio then video.
    let offer = "v=0\r\no=- 1 1 IN IP4 10.0.0.2\r\ns=Ekiga\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n\
                 m=audio 5066 RTP/AVP 8 101 120\r\na=sendrecv\r\na=rtpmap:8 PCMA/8000\r\n\
                 a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16,32,36\r\n\
                 a=rtpmap:120 NSE/8000\r\n\
                 m=video 5068 RTP/AVP 115 31\r\na=sendrecv\r\na=rtpmap:115 theora/90000\r\n\
                 a=rtpmap:31 h261/90000\r\n";
    let neg = answer(offer).unwrap();
    assert_eq!(
        (neg.codec, neg.payload_type, neg.dtmf_pt),
        (Codec::Pcma, 8, Some(101))
    );
    assert_eq!((neg.media_index, neg.media_count), (0, 2));
    let text = answer_text(offer);
    assert!(
        text.ends_with("a=sendonly\r\nm=video 0 RTP/AVP 115 31\r\n"),
        "{text}"
    );
    let back = parse(&text);
    assert_eq!(back.media.len(), 2);
    assert_eq!(back.media[1].port, 0);
}

#[test]
fn audio_after_video_is_found_and_order_kept() {
    let offer = "v=0\r\nc=IN IP4 10.0.0.2\r\nm=video 5000 RTP/AVP 96\r\nm=audio 5002 RTP/AVP 9\r\n\
                 m=application 5004 UDP/BFCP *\r\n";
    let neg = answer(offer).unwrap();
    assert_eq!((neg.codec, neg.payload_type), (Codec::G722, 9));
    assert_eq!((neg.media_index, neg.media_count), (1, 3));
    let text = answer_text(offer);
    let back = parse(&text);
    let ports: Vec<u16> = back.media.iter().map(|m| m.port).collect();
    assert_eq!(ports, [0, 30000, 0]);
    assert_eq!(back.media[2].proto, "UDP/BFCP");
    assert_eq!(back.media[2].formats, ["*"]);
}

#[test]
fn media_level_connection_overrides_session_level() {
    // MagicJack's offer has both.
    let offer =
        "v=0\r\nc=IN IP4 192.168.0.10\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 216.234.64.16\r\n\
                 m=audio 0 RTP/AVP 0\r\n";
    assert_eq!(
        answer(offer).unwrap().remote_rtp,
        addr("216.234.64.16:4000")
    );
    let session_only = "v=0\r\nc=IN IP4 192.168.0.10\r\nm=audio 4000 RTP/AVP 0\r\n";
    assert_eq!(
        answer(session_only).unwrap().remote_rtp,
        addr("192.168.0.10:4000")
    );
    let media_only = "v=0\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 192.168.0.11\r\n";
    assert_eq!(
        answer(media_only).unwrap().remote_rtp,
        addr("192.168.0.11:4000")
    );
    let none = "v=0\r\nm=audio 4000 RTP/AVP 0\r\n";
    assert_eq!(answer(none).unwrap_err(), Rejection::MissingConnection);
}

#[test]
fn host_names_and_multicast_are_not_streamed_to() {
    let fqdn = "v=0\r\nc=IN IP4 media.example.com\r\nm=audio 4000 RTP/AVP 0\r\n";
    assert_eq!(answer(fqdn).unwrap_err(), Rejection::UnusableAddress);
    let mcast = "v=0\r\nc=IN IP4 224.2.1.1/127\r\nm=audio 4000 RTP/AVP 0\r\n";
    assert_eq!(answer(mcast).unwrap_err(), Rejection::UnusableAddress);
}

#[test]
fn ipv6_offer_and_answer() {
    let offer =
        "v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8\r\n";
    let neg = answer(offer).unwrap();
    assert_eq!(neg.remote_rtp, addr("[::1]:4000"));
    let off = parse(offer);
    let mut out = Vec::new();
    let l = LocalMedia {
        addr: "2001:db8::5".parse().unwrap(),
        ..local()
    };
    sdp::write_answer(&off, &neg, &l, &mut out);
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("o=onhold 42 3 IN IP6 2001:db8::5\r\n"),
        "{text}"
    );
    assert!(text.contains("c=IN IP6 2001:db8::5\r\n"), "{text}");
}

#[test]
fn line_endings_are_tolerated() {
    let crlf = audio("a=ptime:30\r\na=recvonly");
    let lf = crlf.replace("\r\n", "\n");
    for body in [
        crlf.clone(),
        lf,
        format!("{crlf}\r\n"),
        format!("{crlf}\r\n\r\n"),
    ] {
        let neg = answer(&body).unwrap();
        assert_eq!(neg.ptime_ms, 30, "{body:?}");
        assert_eq!(neg.direction, Direction::SendOnly);
        assert_eq!(neg.remote_rtp, addr("10.0.0.2:4000"));
    }
    // DTMFsipinfo.pcap: the last line `m=video 0 RTP/AVP 119` has no line ending.
    let sems = "v=0\r\nc=IN IP4 10.0.0.2\r\nm=audio 4000 RTP/AVP 8\r\nm=video 0 RTP/AVP 119";
    let sd = parse(sems);
    assert_eq!(sd.media[1].formats, ["119"]);
}

#[test]
fn dynamic_pt_for_pcmu_is_kept() {
    let offer = "v=0\r\nc=IN IP4 10.0.0.2\r\nm=audio 4000 RTP/AVP 97 96\r\n\
                 a=rtpmap:97 pcmu/8000\r\na=rtpmap:96 opus/48000/2\r\n";
    let neg = answer(offer).unwrap();
    assert_eq!((neg.codec, neg.payload_type), (Codec::Pcmu, 97));
    assert!(answer_text(offer).contains("m=audio 30000 RTP/AVP 97\r\na=rtpmap:97 PCMU/8000\r\n"));
}

#[test]
fn dynamic_pt_without_rtpmap_or_wrong_clock_is_not_a_codec() {
    let no_map = "v=0\r\nc=IN IP4 10.0.0.2\r\nm=audio 4000 RTP/AVP 97\r\n";
    assert_eq!(answer(no_map).unwrap_err(), Rejection::NoCommonCodec);
    let wrong_clock =
        "v=0\r\nc=IN IP4 10.0.0.2\r\nm=audio 4000 RTP/AVP 97\r\na=rtpmap:97 PCMU/16000\r\n";
    assert_eq!(answer(wrong_clock).unwrap_err(), Rejection::NoCommonCodec);
    let stereo =
        "v=0\r\nc=IN IP4 10.0.0.2\r\nm=audio 4000 RTP/AVP 97\r\na=rtpmap:97 PCMA/8000/2\r\n";
    assert_eq!(answer(stereo).unwrap_err(), Rejection::NoCommonCodec);
}

#[test]
fn static_pts_need_no_rtpmap() {
    // X-Lite in Asterisk_ZFONE_XLITE.pcap: no rtpmap for 0 and 8, BV32 first.
    let offer = "v=0\r\nc=IN IP4 10.0.0.2\r\nm=audio 4000 RTP/AVP 107 0 8 101\r\n\
                 a=rtpmap:107 BV32/16000\r\na=rtpmap:101 telephone-event/8000\r\n";
    let neg = answer(offer).unwrap();
    assert_eq!(
        (neg.codec, neg.payload_type, neg.dtmf_pt),
        (Codec::Pcmu, 0, Some(101))
    );
}

#[test]
fn g722_first_is_chosen_with_pt_9() {
    let offer = "v=0\r\nc=IN IP4 10.0.0.2\r\nm=audio 4000 RTP/AVP 9 0 8\r\n";
    let neg = answer(offer).unwrap();
    assert_eq!((neg.codec, neg.payload_type), (Codec::G722, 9));
}

#[test]
fn preference_order_beats_offer_order_when_given() {
    let offer = parse("v=0\r\nc=IN IP4 10.0.0.2\r\nm=audio 4000 RTP/AVP 0 8 9\r\n");
    let prefs = AnswerPrefs {
        codecs: vec![Codec::Pcma],
        default_ptime_ms: 20,
    };
    assert_eq!(sdp::answer(&offer, &prefs).unwrap().codec, Codec::Pcma);
    let only_g722 = AnswerPrefs {
        codecs: vec![Codec::G722],
        default_ptime_ms: 20,
    };
    let pcmu_only = parse("v=0\r\nc=IN IP4 10.0.0.2\r\nm=audio 4000 RTP/AVP 0\r\n");
    assert_eq!(
        sdp::answer(&pcmu_only, &only_g722).unwrap_err(),
        Rejection::NoCommonCodec
    );
}

#[test]
fn telephone_event_is_answered_with_its_own_pt() {
    let offer = "v=0\r\nc=IN IP4 10.0.0.2\r\nm=audio 4000 RTP/AVP 8 96 13\r\n\
                 a=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-16\r\na=rtpmap:13 CN/8000\r\n";
    let neg = answer(offer).unwrap();
    assert_eq!(neg.dtmf_pt, Some(96));
    let text = answer_text(offer);
    assert!(text.contains("m=audio 30000 RTP/AVP 8 96\r\n"), "{text}");
    assert!(
        text.contains("a=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-15\r\n"),
        "{text}"
    );
    // telephone-event at another clock rate is not answered.
    let wideband = "v=0\r\nc=IN IP4 10.0.0.2\r\nm=audio 4000 RTP/AVP 9 96\r\n\
                    a=rtpmap:96 telephone-event/16000\r\n";
    assert_eq!(answer(wideband).unwrap().dtmf_pt, None);
}

#[test]
fn ptime_is_honoured_and_bounded() {
    assert_eq!(answer(&audio("a=ptime:30\r\n")).unwrap().ptime_ms, 30);
    assert!(answer_text(&audio("a=ptime:30\r\n")).contains("a=ptime:30\r\n"));
    assert_eq!(answer(&audio("a=ptime:25\r\n")).unwrap().ptime_ms, 30);
    assert_eq!(answer(&audio("a=ptime:120\r\n")).unwrap().ptime_ms, 60);
    assert_eq!(answer(&audio("a=ptime:5\r\n")).unwrap().ptime_ms, 10);
    assert_eq!(answer(&audio("")).unwrap().ptime_ms, 20);
    assert_eq!(answer(&audio("a=maxptime:10\r\n")).unwrap().ptime_ms, 10);
    let prefs = AnswerPrefs {
        codecs: vec![],
        default_ptime_ms: 40,
    };
    let neg = sdp::answer(&parse(&audio("a=maxptime:30\r\n")), &prefs).unwrap();
    assert_eq!(neg.ptime_ms, 30);
}

#[test]
fn direction_table() {
    let table = [
        ("a=sendrecv\r\n", Direction::SendOnly),
        ("a=recvonly\r\n", Direction::SendOnly),
        ("a=sendonly\r\n", Direction::Inactive),
        ("a=inactive\r\n", Direction::Inactive),
        ("", Direction::SendOnly),
    ];
    for (attr, ours) in table {
        let neg = answer(&audio(attr)).unwrap();
        assert_eq!(neg.direction, ours, "{attr:?}");
        assert_eq!(neg.sends(), ours == Direction::SendOnly);
        let text = answer_text(&audio(attr));
        let want = match ours {
            Direction::SendOnly => "a=sendonly\r\n",
            _ => "a=inactive\r\n",
        };
        assert!(text.contains(want), "{attr:?} → {text}");
        // An inactive stream keeps its port (RFC 3264 §6.1): only rejection uses 0.
        assert!(text.contains("m=audio 30000 "), "{text}");
    }
}

#[test]
fn session_level_direction_applies_unless_media_overrides() {
    let session_sendonly = "v=0\r\nc=IN IP4 10.0.0.2\r\na=sendonly\r\nm=audio 4000 RTP/AVP 0\r\n";
    assert_eq!(
        answer(session_sendonly).unwrap().direction,
        Direction::Inactive
    );
    let media_wins =
        "v=0\r\nc=IN IP4 10.0.0.2\r\na=sendonly\r\nm=audio 4000 RTP/AVP 0\r\na=sendrecv\r\n";
    assert_eq!(answer(media_wins).unwrap().direction, Direction::SendOnly);
}

#[test]
fn rfc2543_hold_with_zero_address_is_inactive() {
    let hold = "v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 4000 RTP/AVP 0\r\na=sendrecv\r\n";
    let neg = answer(hold).unwrap();
    assert_eq!(neg.direction, Direction::Inactive);
    assert!(!neg.sends());
}

#[test]
fn rtcp_address_rules() {
    let plain = answer(&audio("")).unwrap();
    assert_eq!(plain.remote_rtcp, addr("10.0.0.2:4001"));
    let rfc3605 = answer(&audio("a=rtcp:4999\r\n")).unwrap();
    assert_eq!(rfc3605.remote_rtcp, addr("10.0.0.2:4999"));
    let elsewhere = answer(&audio("a=rtcp:53020 IN IP4 126.16.64.4\r\n")).unwrap();
    assert_eq!(elsewhere.remote_rtcp, addr("126.16.64.4:53020"));
    let muxed = answer(&audio("a=rtcp-mux\r\na=rtcp:4000\r\n")).unwrap();
    assert!(muxed.rtcp_mux);
    assert_eq!(muxed.remote_rtcp, addr("10.0.0.2:4000"));
    assert!(answer_text(&audio("a=rtcp-mux\r\n")).ends_with("a=sendonly\r\na=rtcp-mux\r\n"));
    assert!(!answer_text(&audio("")).contains("rtcp-mux"));
}

#[test]
fn avpf_is_accepted_and_echoed() {
    let offer = "v=0\r\nc=IN IP4 10.0.0.2\r\nm=audio 4000 RTP/AVPF 0\r\na=rtcp-fb:* nack\r\n";
    assert!(answer(offer).is_ok());
    assert!(answer_text(offer).contains("m=audio 30000 RTP/AVPF 0\r\n"));
}

#[test]
fn bad_usernames_become_a_dash() {
    let text = audio("");
    let offer = parse(&text);
    let neg = sdp::answer(&offer, &AnswerPrefs::default()).unwrap();
    for user in ["", "two words", "tab\there"] {
        let mut out = Vec::new();
        sdp::write_answer(
            &offer,
            &neg,
            &LocalMedia {
                username: user,
                ..local()
            },
            &mut out,
        );
        assert!(
            out.starts_with(b"v=0\r\no=- 42 3 IN IP4 10.0.0.1\r\n"),
            "{user:?}"
        );
    }
}

#[test]
fn parse_write_parse_is_consistent() {
    let offer = parse(
        "v=0\r\nc=IN IP4 10.0.0.2\r\nm=video 5000 RTP/AVP 96\r\n\
         m=audio 4000 RTP/AVP 97 8 101\r\na=rtpmap:97 G722/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
         a=ptime:40\r\na=rtcp-mux\r\na=recvonly\r\n",
    );
    let neg = sdp::answer(&offer, &AnswerPrefs::default()).unwrap();
    let mut out = Vec::new();
    sdp::write_answer(&offer, &neg, &local(), &mut out);
    let back = sdp::parse(&out).unwrap();
    assert_eq!(back.media.len(), offer.media.len());
    let origin = back.origin.as_ref().unwrap();
    assert_eq!((&*origin.username, &*origin.session_id), ("onhold", "42"));
    assert_eq!(origin.session_version, "3");
    let a = &back.media[1];
    assert_eq!(a.port, 30000);
    assert_eq!(a.payload_types().collect::<Vec<_>>(), [97, 101]);
    assert_eq!(a.rtpmap(97).unwrap().encoding, "G722");
    assert_eq!(back.ptime_for(1), Some(40));
    assert_eq!(back.direction_for(1), Direction::SendOnly);
    assert!(a.rtcp_mux);
    // Read by accept_answer as if it answered an offer, our SDP yields the same codec, PT and
    // address; being sendonly, it tells its reader not to send.
    let again = sdp::accept_answer(&back, &AnswerPrefs::default()).unwrap();
    assert_eq!(
        (again.codec, again.payload_type, again.dtmf_pt),
        (Codec::G722, 97, Some(101))
    );
    assert_eq!(again.remote_rtp, addr("10.0.0.1:30000"));
    assert_eq!(again.direction, Direction::Inactive);
}

#[test]
fn accept_answer_direction_and_codec_rules() {
    let prefs = AnswerPrefs::default();
    let base = |attr: &str, fmts: &str| {
        format!("v=0\r\nc=IN IP4 10.0.0.9\r\nm=audio 7000 RTP/AVP {fmts}\r\n{attr}")
    };
    for (attr, ours) in [
        ("a=recvonly\r\n", Direction::SendOnly),
        ("a=sendrecv\r\n", Direction::SendOnly),
        ("", Direction::SendOnly),
        ("a=sendonly\r\n", Direction::Inactive),
        ("a=inactive\r\n", Direction::Inactive),
    ] {
        let neg = sdp::accept_answer(&parse(&base(attr, "0")), &prefs).unwrap();
        assert_eq!(neg.direction, ours, "{attr:?}");
    }
    // The answerer's order wins among our codecs, even against our preference list.
    let ours_first = AnswerPrefs {
        codecs: vec![Codec::Pcmu, Codec::Pcma],
        default_ptime_ms: 20,
    };
    let neg = sdp::accept_answer(&parse(&base("", "8 0")), &ours_first).unwrap();
    assert_eq!(neg.codec, Codec::Pcma);
    // An answer that rejects our stream (port 0) leaves no audio.
    let rejected = "v=0\r\nc=IN IP4 10.0.0.9\r\nm=audio 0 RTP/AVP 0\r\n";
    assert_eq!(
        sdp::accept_answer(&parse(rejected), &prefs).unwrap_err(),
        Rejection::NoAudio
    );
}

#[test]
fn write_offer_follows_prefs_without_duplicates() {
    let prefs = AnswerPrefs {
        codecs: vec![Codec::G722, Codec::Pcmu, Codec::G722],
        default_ptime_ms: 20,
    };
    let mut out = Vec::new();
    sdp::write_offer(&local(), &prefs, 30, Direction::Inactive, &mut out);
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("m=audio 30000 RTP/AVP 9 0 101\r\n"), "{text}");
    assert!(text.contains("a=ptime:30\r\na=inactive\r\n"), "{text}");
    assert!(text.lines().all(|l| !l.is_empty()));
    assert!(!text.replace("\r\n", "").contains('\n'));
}
