//! The three DP750 INVITE shapes (bodies copied from shared/dp750/*.sip, CRLF as sent) and the
//! FreeSWITCH-style offers seen in shared/captures.

use std::net::SocketAddr;

use onhold_core::sdp::{self, AnswerPrefs, LocalMedia, Rejection};
use onhold_core::{Codec, Direction};

/// shared/dp750/invite-own-address.sip, body (305 bytes).
const DP750_OWN_ADDRESS: &str = "v=0\r\n\
o=201 8000 8000 IN IP4 192.168.1.50\r\n\
s=SIP Call\r\n\
c=IN IP4 192.168.1.50\r\n\
t=0 0\r\n\
m=audio 5004 RTP/AVP 0 8 9 18 101\r\n\
a=sendrecv\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=ptime:20\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:18 G729/8000\r\n\
a=fmtp:18 annexb=no\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n";

/// shared/dp750/invite-held-party.sip, body (304 bytes).
const DP750_HELD_PARTY: &str = "v=0\r\n\
o=201 8000 8000 IN IP4 203.0.113.7\r\n\
s=SIP Call\r\n\
c=IN IP4 203.0.113.7\r\n\
t=0 0\r\n\
m=audio 18232 RTP/AVP 0 8 9 18 101\r\n\
a=recvonly\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=ptime:20\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:18 G729/8000\r\n\
a=fmtp:18 annexb=no\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n";

/// The SDP of sip-rtp-g711.pcap call 1 (byte for byte): SIPp offering PCMU only, recvonly, to
/// FreeSWITCH.
const FREESWITCH_RECVONLY_PCMU: &str = "v=0\r\n\
o=- 42 42 IN IP4 10.0.2.20\r\n\
s=-\r\n\
c=IN IP4 10.0.2.20\r\n\
t=0 0\r\n\
m=audio 6000 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=recvonly\r\n";

/// sip-rtp-opus.pcap's offer (byte for byte): Opus only.
const OPUS_ONLY: &str = "v=0\r\n\
o=- 42 42 IN IP4 10.0.2.20\r\n\
s=-\r\n\
c=IN IP4 10.0.2.20\r\n\
t=0 0\r\n\
m=audio 6000 RTP/AVP 99\r\n\
a=rtpmap:99 opus/48000/2\r\n\
a=recvonly\r\n";

fn local() -> LocalMedia<'static> {
    LocalMedia {
        addr: "192.168.1.100".parse().unwrap(),
        rtp_port: 40000,
        session_id: 7,
        session_version: 1,
        username: "onhold",
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn bodies_match_the_content_length_of_the_captures() {
    assert_eq!(DP750_OWN_ADDRESS.len(), 305);
    assert_eq!(DP750_HELD_PARTY.len(), 304);
}

#[test]
fn dp750_own_address_sendrecv() {
    let offer = sdp::parse(DP750_OWN_ADDRESS.as_bytes()).unwrap();
    let neg = sdp::answer(&offer, &AnswerPrefs::default()).unwrap();
    assert_eq!(neg.codec, Codec::Pcmu);
    assert_eq!(neg.payload_type, 0);
    assert_eq!(neg.dtmf_pt, Some(101));
    assert_eq!(neg.ptime_ms, 20);
    assert_eq!(neg.remote_rtp, addr("192.168.1.50:5004"));
    assert_eq!(neg.remote_rtcp, addr("192.168.1.50:5005"));
    assert!(!neg.rtcp_mux);
    assert_eq!(neg.direction, Direction::SendOnly);
    assert!(neg.sends());
    assert_eq!((neg.media_index, neg.media_count), (0, 1));

    let mut out = Vec::new();
    sdp::write_answer(&offer, &neg, &local(), &mut out);
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        text,
        "v=0\r\n\
         o=onhold 7 1 IN IP4 192.168.1.100\r\n\
         s=onhold\r\n\
         c=IN IP4 192.168.1.100\r\n\
         t=0 0\r\n\
         m=audio 40000 RTP/AVP 0 101\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-15\r\n\
         a=ptime:20\r\n\
         a=sendonly\r\n"
    );
}

#[test]
fn dp750_held_party_recvonly_streams_to_the_held_party() {
    let offer = sdp::parse(DP750_HELD_PARTY.as_bytes()).unwrap();
    let neg = sdp::answer(&offer, &AnswerPrefs::default()).unwrap();
    assert_eq!(neg.remote_rtp, addr("203.0.113.7:18232"));
    assert_eq!(neg.direction, Direction::SendOnly);
    assert_eq!(neg.codec, Codec::Pcmu);
}

#[test]
fn dp750_offer_with_g722_preferred_keeps_pt_9() {
    let offer = sdp::parse(DP750_OWN_ADDRESS.as_bytes()).unwrap();
    let prefs = AnswerPrefs {
        codecs: vec![Codec::G722, Codec::Pcmu],
        default_ptime_ms: 20,
    };
    let neg = sdp::answer(&offer, &prefs).unwrap();
    assert_eq!((neg.codec, neg.payload_type), (Codec::G722, 9));
    let mut out = Vec::new();
    sdp::write_answer(&offer, &neg, &local(), &mut out);
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("m=audio 40000 RTP/AVP 9 101\r\n"), "{text}");
    assert!(text.contains("a=rtpmap:9 G722/8000\r\n"), "{text}");
}

#[test]
fn dp750_late_offer_round_trip() {
    // shared/dp750/invite-late-offer.sip has no body: we offer in the 200 OK.
    let prefs = AnswerPrefs::default();
    let mut offer = Vec::new();
    sdp::write_offer(&local(), &prefs, 20, Direction::SendOnly, &mut offer);
    let text = std::str::from_utf8(&offer).unwrap();
    assert!(
        text.contains("m=audio 40000 RTP/AVP 0 8 9 101\r\n"),
        "{text}"
    );
    assert!(text.contains("a=rtpmap:8 PCMA/8000\r\n"));
    assert!(text.contains("a=rtpmap:9 G722/8000\r\n"));
    assert!(text.contains("a=fmtp:101 0-15\r\n"));
    assert!(text.ends_with("a=ptime:20\r\na=sendonly\r\n"));

    // Our own offer parses back to what we meant.
    let ours = sdp::parse(&offer).unwrap();
    assert_eq!(
        ours.media[0].payload_types().collect::<Vec<_>>(),
        [0, 8, 9, 101]
    );
    assert_eq!(ours.direction_for(0), Direction::SendOnly);

    // The DP750 answers in the ACK, choosing PCMA, receive only.
    let answer = "v=0\r\no=201 8000 8001 IN IP4 192.168.1.50\r\ns=SIP Call\r\n\
                  c=IN IP4 192.168.1.50\r\nt=0 0\r\nm=audio 5004 RTP/AVP 8 101\r\n\
                  a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
                  a=fmtp:101 0-15\r\na=ptime:20\r\na=recvonly\r\n";
    let neg = sdp::accept_answer(&sdp::parse(answer.as_bytes()).unwrap(), &prefs).unwrap();
    assert_eq!((neg.codec, neg.payload_type), (Codec::Pcma, 8));
    assert_eq!(neg.dtmf_pt, Some(101));
    assert_eq!(neg.remote_rtp, addr("192.168.1.50:5004"));
    assert_eq!(neg.direction, Direction::SendOnly);
}

#[test]
fn freeswitch_style_recvonly_pcmu_only() {
    let offer = sdp::parse(FREESWITCH_RECVONLY_PCMU.as_bytes()).unwrap();
    let prefs = AnswerPrefs {
        codecs: vec![Codec::G722, Codec::Pcma, Codec::Pcmu],
        default_ptime_ms: 20,
    };
    let neg = sdp::answer(&offer, &prefs).unwrap();
    assert_eq!((neg.codec, neg.payload_type), (Codec::Pcmu, 0));
    assert_eq!(neg.dtmf_pt, None);
    assert_eq!(neg.direction, Direction::SendOnly);
    assert_eq!(neg.remote_rtp, addr("10.0.2.20:6000"));
    let mut out = Vec::new();
    sdp::write_answer(&offer, &neg, &local(), &mut out);
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("m=audio 40000 RTP/AVP 0\r\n"), "{text}");
    assert!(!text.contains("telephone-event"), "{text}");
}

#[test]
fn opus_only_is_rejected_with_488() {
    let offer = sdp::parse(OPUS_ONLY.as_bytes()).unwrap();
    let r = sdp::answer(&offer, &AnswerPrefs::default()).unwrap_err();
    assert_eq!(r, Rejection::NoCommonCodec);
    assert_eq!(r.status_code(), 488);
}
