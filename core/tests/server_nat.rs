//! A caller on a real network: behind a NAT its RTP comes from another address than its SDP
//! names (symmetric RTP, `rtp_latching`), and a caller that vanishes is noticed (its RTP stops:
//! `media_timeout`; it stops answering: `keepalive_interval`; or the call just lasts too long:
//! `max_call_duration`, 4 h by default).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use onhold_core::server::{Latching, ListenerAdvertised, Network};
use onhold_core::{EndReason, Event, ServerConfig, Transport};

/// A phone behind a NAT: its SIP and RTP come from the NAT's public address.
const NAT: &str = "203.0.113.5:5060";
const NAT_RTP: &str = "203.0.113.5:40000";

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn everyone(config: ServerConfig) -> Harness {
    let config = ServerConfig {
        allow: vec![
            Network::parse("0.0.0.0/0").unwrap(),
            Network::parse("::/0").unwrap(),
        ],
        ..config
    };
    Harness::with(config, onhold_core::media::Library::silence())
}

/// INVITE (its SDP naming 192.168.1.50:5004) from `from`, 200, ACK: the call's local RTP
/// address.
fn call(h: &mut Harness, from: &str) -> (Dp750, SocketAddr) {
    let mut c = Dp750::new(0);
    let sdp = dp750_sdp("192.168.1.50", 5004, "sendrecv");
    h.send(from, &c.request("INVITE", Some(&sdp), &[]));
    c.to_tag = h.response("SIP/2.0 200").to_tag();
    h.send(from, &c.ack(None));
    h.advance(Duration::from_millis(100));
    let local = h.rtp().last().expect("RTP flows").t.local;
    (c, local)
}

fn rtp_dest(h: &Harness) -> SocketAddr {
    h.rtp().last().expect("RTP").t.remote
}

fn latched(h: &Harness) -> Vec<(SocketAddr, SocketAddr)> {
    h.events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Latched {
                sdp_rtp,
                remote_rtp,
                ..
            } => Some((*sdp_rtp, *remote_rtp)),
            _ => None,
        })
        .collect()
}

fn end_reason(h: &Harness) -> Option<(Duration, EndReason)> {
    h.events.iter().find_map(|(at, e)| match e {
        Event::CallEnded { reason, .. } => Some((*at, reason.clone())),
        _ => None,
    })
}

/// An RTP packet of payload type `pt` from `from`.
fn rtp_packet(h: &mut Harness, from: &str, local: SocketAddr, pt: u8) {
    let packet = [0x80, pt, 0, 1, 0, 0, 0, 160, 1, 2, 3, 4];
    h.server.handle_datagram(
        h.now(),
        onhold_core::Transport::Udp,
        local,
        addr(from),
        &packet,
    );
    h.drain();
}

/// The request `c` would send next, with a new branch and CSeq.
fn next(c: &mut Dp750, method: &str, body: Option<&str>) -> String {
    c.next_branch();
    c.cseq += 1;
    c.request(method, body, &[])
}

#[test]
fn a_natted_callers_stream_follows_its_rtp_once() {
    let mut h = everyone(ServerConfig::default());
    let (_, local) = call(&mut h, NAT);
    assert_eq!(rtp_dest(&h), addr("192.168.1.50:5004"), "the SDP's, first");
    // Not the call's media, or not from the caller's address: nothing moves.
    rtp_packet(&mut h, NAT_RTP, local, 96);
    rtp_packet(&mut h, "203.0.113.99:40000", local, 0);
    h.advance(Duration::from_millis(100));
    assert!(latched(&h).is_empty(), "{}", h.transcript());
    // The caller's PCMU from its NAT: the stream goes there, RTCP to the port above.
    rtp_packet(&mut h, NAT_RTP, local, 0);
    assert_eq!(
        latched(&h),
        vec![(addr("192.168.1.50:5004"), addr(NAT_RTP))]
    );
    h.advance(Duration::from_millis(30));
    let first = h
        .rtp()
        .into_iter()
        .find(|p| p.t.remote == addr(NAT_RTP))
        .cloned();
    assert!(
        first.expect("RTP to the NAT").rtp_marker(),
        "the receiver's first packet has the marker"
    );
    h.advance(secs(12));
    assert_eq!(rtp_dest(&h), addr(NAT_RTP));
    let rtcp = h
        .sent
        .iter()
        .rev()
        .find(|s| s.t.kind == onhold_core::TransmitKind::Rtcp);
    assert_eq!(
        rtcp.expect("an RTCP report").t.remote,
        addr("203.0.113.5:40001")
    );
    // Once: a later packet from another port of the same host does not move it again.
    rtp_packet(&mut h, "203.0.113.5:40200", local, 0);
    h.advance(Duration::from_millis(100));
    assert_eq!(latched(&h).len(), 1);
    assert_eq!(rtp_dest(&h), addr(NAT_RTP));
}

#[test]
fn a_refresh_repeating_the_private_address_keeps_the_latch_and_a_new_one_moves_it() {
    let mut h = everyone(ServerConfig::default());
    let (mut c, local) = call(&mut h, NAT);
    rtp_packet(&mut h, NAT_RTP, local, 0);
    let same = dp750_sdp("192.168.1.50", 5004, "sendrecv");
    h.send(NAT, &next(&mut c, "INVITE", Some(&same)));
    h.send(NAT, &c.ack(None));
    h.advance(Duration::from_millis(200));
    assert_eq!(rtp_dest(&h), addr(NAT_RTP), "{}", h.transcript());
    let moved = dp750_sdp("192.168.1.51", 6000, "sendrecv");
    h.send(NAT, &next(&mut c, "INVITE", Some(&moved)));
    h.send(NAT, &c.ack(None));
    h.advance(Duration::from_millis(200));
    assert_eq!(rtp_dest(&h), addr("192.168.1.51:6000"));
}

/// A phone on the server's own network (private SDP, private SIP source, a Via naming its own
/// address) is not latched unless `rtp_latching = "always"`; `"off"` never latches.
#[test]
fn latching_follows_the_setting() {
    for (latching, from, expect) in [
        (Latching::Auto, PHONE, false),
        (Latching::Always, PHONE, true),
        (Latching::Off, NAT, false),
        (Latching::Auto, NAT, true),
    ] {
        let mut h = everyone(ServerConfig {
            rtp_latching: latching,
            ..ServerConfig::default()
        });
        let (_, local) = call(&mut h, from);
        let source = SocketAddr::new(addr(from).ip(), 41000).to_string();
        rtp_packet(&mut h, &source, local, 0);
        assert_eq!(!latched(&h).is_empty(), expect, "{latching:?} from {from}");
    }
}

/// A caller that was sending RTP and stops is hung up `media_timeout` (60 s) after its last
/// packet; one that never sent is not judged by it.
#[test]
fn a_caller_whose_rtp_stops_is_hung_up_after_the_media_timeout() {
    let mut h = Harness::new();
    let (_, local) = call(&mut h, PHONE);
    let caller = "192.168.1.50:5004";
    for _ in 0..5 {
        rtp_packet(&mut h, caller, local, 0);
        h.advance(secs(1));
    }
    let last = h.elapsed() - secs(1);
    h.advance(secs(58));
    assert_eq!(end_reason(&h), None, "{}", h.transcript());
    h.advance(secs(3));
    let (at, reason) = end_reason(&h).expect("ended");
    assert_eq!(reason, EndReason::MediaTimeout);
    assert!(at >= last + secs(60) && at <= last + secs(61), "{at:?}");
    assert!(h.sip().last().unwrap().start_line().starts_with("BYE "));

    let mut quiet = Harness::new();
    call(&mut quiet, PHONE);
    quiet.advance(secs(300));
    assert_eq!(
        end_reason(&quiet),
        None,
        "a caller that never sent is not timed out"
    );
}

/// On hold the caller sends nothing by design: no media timeout while held, and after the
/// resume the watch starts again from its next packet.
#[test]
fn no_media_timeout_while_on_hold() {
    let mut h = Harness::new();
    let (mut c, local) = call(&mut h, PHONE);
    rtp_packet(&mut h, "192.168.1.50:5004", local, 0);
    let hold = dp750_sdp("192.168.1.50", 5004, "sendonly");
    h.send(PHONE, &next(&mut c, "INVITE", Some(&hold)));
    h.send(PHONE, &c.ack(None));
    h.advance(secs(200));
    assert_eq!(end_reason(&h), None, "{}", h.transcript());
    let resume = dp750_sdp("192.168.1.50", 5004, "sendrecv");
    h.send(PHONE, &next(&mut c, "INVITE", Some(&resume)));
    h.send(PHONE, &c.ack(None));
    h.advance(secs(30));
    assert_eq!(end_reason(&h), None);
    rtp_packet(&mut h, "192.168.1.50:5004", local, 0);
    h.advance(secs(61));
    assert_eq!(end_reason(&h).map(|e| e.1), Some(EndReason::MediaTimeout));
}

/// With `keepalive_interval`, an OPTIONS goes inside the call that often: an answer keeps the
/// call, 481 or no answer at all ends it with BYE.
#[test]
fn keepalive_options_end_a_call_whose_caller_is_gone() {
    let config = ServerConfig {
        keepalive_interval: Some(secs(30)),
        ..ServerConfig::default()
    };
    let mut h = Harness::with(config.clone(), onhold_core::media::Library::silence());
    call(&mut h, PHONE);
    h.advance(secs(30));
    let ping = h.sip().last().map(|s| (*s).clone()).unwrap();
    assert!(
        ping.start_line()
            .starts_with("OPTIONS sip:201@192.168.1.50"),
        "{}",
        h.transcript()
    );
    h.send(PHONE, &ping.reply("200 OK"));
    h.advance(secs(30));
    assert!(h.sip().last().unwrap().start_line().starts_with("OPTIONS "));
    // No answer: the OPTIONS times out (64·T1) and the call ends.
    h.advance(secs(33));
    let (_, reason) = end_reason(&h).expect("ended");
    assert_eq!(reason, EndReason::KeepAliveFailed);
    assert!(h.sip().last().unwrap().start_line().starts_with("BYE "));

    let mut h = Harness::with(config, onhold_core::media::Library::silence());
    call(&mut h, PHONE);
    h.advance(secs(30));
    let ping = h.sip().last().map(|s| (*s).clone()).unwrap();
    h.send(PHONE, &ping.reply("481 Call/Transaction Does Not Exist"));
    assert_eq!(
        end_reason(&h).map(|e| e.1),
        Some(EndReason::KeepAliveFailed)
    );
}

/// A call nobody ends is hung up after 4 h by default (held here, so no RTP piles up).
#[test]
fn a_call_ends_after_four_hours_by_default() {
    let mut h = Harness::new();
    let (mut c, _) = call(&mut h, PHONE);
    let hold = dp750_sdp("192.168.1.50", 5004, "inactive");
    h.send(PHONE, &next(&mut c, "INVITE", Some(&hold)));
    h.send(PHONE, &c.ack(None));
    h.advance(secs(4 * 3600 - 10));
    assert_eq!(end_reason(&h), None);
    h.advance(secs(20));
    assert_eq!(end_reason(&h).map(|e| e.1), Some(EndReason::MaxDuration));
}

/// The 200's Contact host and the SDP's `c=` and `o=` addresses for an INVITE that reached a
/// fresh server with `config` at `local`.
fn answered_as(config: &ServerConfig, local: &str) -> (String, String, String) {
    let mut h = Harness::with(config.clone(), onhold_core::media::Library::silence());
    let c = Dp750::new(0);
    let sdp = dp750_sdp("192.168.1.50", 5004, "sendrecv");
    h.send_to(
        local,
        PHONE,
        c.request("INVITE", Some(&sdp), &[]).as_bytes(),
    );
    let ok = h.last_sip();
    assert!(
        ok.start_line().starts_with("SIP/2.0 200"),
        "{}",
        h.transcript()
    );
    let contact = ok.header("Contact").expect("Contact");
    let host = contact
        .split('@')
        .nth(1)
        .and_then(|r| r.split([':', '>', ';']).next())
        .expect("Contact host")
        .to_string();
    let body = ok.body();
    let field = |prefix: &str| {
        body.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .unwrap_or_else(|| panic!("no {prefix} in {body}"))
            .to_string()
    };
    let c_line = field("c=");
    let o_line = field("o=");
    (host, c_line, o_line)
}

fn triple(ip: &str) -> (String, String, String) {
    (ip.to_string(), ip.to_string(), ip.to_string())
}

fn listener(listen: &str, advertised: &str) -> ListenerAdvertised {
    ListenerAdvertised {
        transport: Transport::Udp,
        listen: addr(listen),
        advertised: advertised.parse().unwrap(),
    }
}

/// Each listener's own advertised address goes into the Contact, `c=` and `o=` of the calls
/// that arrived on it; a listener without one uses the global address.
#[test]
fn each_listener_advertises_its_own_address() {
    let config = ServerConfig {
        advertised: Some("192.0.2.1".parse().unwrap()),
        listeners: vec![
            listener("10.0.0.2:5060", "203.0.113.5"),
            listener("10.0.1.2:5060", "198.51.100.7"),
        ],
        ..ServerConfig::default()
    };
    for (local, advertised) in [
        ("10.0.0.2:5060", "203.0.113.5"),
        ("10.0.1.2:5060", "198.51.100.7"),
        // Another local address, or another port of a listener's IP: the global address.
        ("10.0.2.2:5060", "192.0.2.1"),
        ("10.0.0.2:5070", "192.0.2.1"),
    ] {
        assert_eq!(
            answered_as(&config, local),
            triple(advertised),
            "at {local}"
        );
    }
}

/// A wildcard listener answers for every local address of its family; a listener on the
/// specific address beside it is the socket the kernel delivers to, so its address wins. Port 0
/// stands for whatever port the runtime bound.
#[test]
fn a_specific_listener_wins_over_the_wildcard() {
    let config = ServerConfig {
        listeners: vec![
            listener("0.0.0.0:5060", "203.0.113.5"),
            listener("10.0.0.2:5060", "198.51.100.7"),
            listener("10.0.9.9:0", "198.51.100.9"),
        ],
        ..ServerConfig::default()
    };
    for (local, advertised) in [
        ("10.0.0.2:5060", "198.51.100.7"),
        ("10.0.5.5:5060", "203.0.113.5"),
        ("10.0.9.9:40312", "198.51.100.9"),
    ] {
        assert_eq!(
            answered_as(&config, local),
            triple(advertised),
            "at {local}"
        );
    }
}

/// Without a listener's own or a global address (`auto`): the Request-URI host the caller used
/// (an IP literal here, 192.168.1.100), and with a specific `rtp_ip` the SDP names that.
#[test]
fn without_an_advertised_address_the_request_decides() {
    let mut config = ServerConfig {
        listeners: vec![listener("10.0.0.2:5060", "203.0.113.5")],
        ..ServerConfig::default()
    };
    assert_eq!(
        answered_as(&config, "10.0.1.2:5060"),
        triple("192.168.1.100")
    );
    config.rtp_ip = "10.0.1.2".parse().unwrap();
    let sdp_at_rtp_ip = (
        "192.168.1.100".to_string(),
        "10.0.1.2".to_string(),
        "10.0.1.2".to_string(),
    );
    assert_eq!(answered_as(&config, "10.0.1.2:5060"), sdp_at_rtp_ip);
    // A configured address is one the callers can reach; it wins over `rtp_ip` in the SDP.
    assert_eq!(answered_as(&config, "10.0.0.2:5060"), triple("203.0.113.5"));
}

/// One PCMU RTP packet from the caller: timestamp `ts`, 160 samples of `byte`.
fn caller_rtp(ts: u32, byte: u8) -> Vec<u8> {
    let mut p = vec![0x80, 0, 0, 7];
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&[9, 9, 9, 9]);
    p.extend(std::iter::repeat_n(byte, 160));
    p
}

/// A tapped call reports what its caller sends, decoded, in order; a lost packet becomes
/// silence of its length, a late one is dropped, and untapped nothing is reported.
#[test]
fn a_tapped_call_reports_the_callers_audio_decoded() {
    let mut h = Harness::new();
    let (_, local) = call(&mut h, PHONE);
    let call = h.started_call().expect("the call started");
    let from = addr("192.168.1.50:5004");
    let heard = |h: &Harness| -> Vec<(u32, Vec<i16>)> {
        h.events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Heard { rate, pcm, .. } => Some((*rate, pcm.clone())),
                _ => None,
            })
            .collect()
    };
    h.server
        .handle_datagram(h.now, Transport::Udp, local, from, &caller_rtp(0, 0x00));
    h.drain();
    assert!(heard(&h).is_empty(), "not tapped: nothing reported");
    assert!(h.server.set_tap(call, true));
    for (ts, byte) in [(160, 0x00), (480, 0x80), (320, 0x00)] {
        h.server
            .handle_datagram(h.now, Transport::Udp, local, from, &caller_rtp(ts, byte));
        h.drain();
    }
    let got = heard(&h);
    assert_eq!(
        got.len(),
        2,
        "the late packet (ts 320 after 480) is dropped"
    );
    assert_eq!(got[0].0, 8000);
    assert_eq!(
        got[0].1,
        vec![onhold_core::media::g711::ulaw_to_linear(0x00); 160]
    );
    assert_eq!(
        got[1].1.len(),
        320,
        "160 samples of silence for the lost packet, then 160"
    );
    assert!(got[1].1[..160].iter().all(|&s| s == 0));
    assert!(got[1].1[160..]
        .iter()
        .all(|&s| s == onhold_core::media::g711::ulaw_to_linear(0x80)));
    assert!(h.server.set_tap(call, false));
    h.server
        .handle_datagram(h.now, Transport::Udp, local, from, &caller_rtp(640, 0x00));
    h.drain();
    assert_eq!(heard(&h).len(), 2, "untapped again");
}
