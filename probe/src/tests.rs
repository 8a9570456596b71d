//! The probe against fake Music On Hold servers on loopback: one that behaves, and ones with a
//! single fault each, to show the probe notices exactly that fault. Each run lasts ≤ 3 s.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use onhold_core::sdp::{self, AnswerPrefs, LocalMedia};
use onhold_core::Direction;

use super::msg::Message;
use super::*;

/// What the fake does wrong, if anything.
#[derive(Clone, Copy, Debug)]
struct Faults {
    /// Skip one sequence number before this packet index.
    skip_seq_at: Option<u16>,
    /// Keep streaming for 500 ms after answering BYE.
    send_after_bye: bool,
    /// Send RTP to the SIP source instead of the SDP address.
    rtp_to_sip_source: bool,
    /// Ignore this many INVITEs (to exercise retransmission).
    drop_invites: u32,
    /// Final response code to INVITE.
    invite_code: u16,
    /// Leave the To-tag out of the 200.
    no_to_tag: bool,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            skip_seq_at: None,
            send_after_bye: false,
            rtp_to_sip_source: false,
            drop_invites: 0,
            invite_code: 200,
            no_to_tag: false,
        }
    }
}

/// What the fake saw, for assertions about the probe's own messages.
#[derive(Debug, Default)]
struct Seen {
    invites: Vec<String>,
    acks: Vec<String>,
    rtp_destinations: Vec<SocketAddr>,
    sip_sources: Vec<SocketAddr>,
}

struct Fake {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Per-dialog state of the fake.
struct FakeCall {
    call_id: String,
    rtp_to: Option<SocketAddr>,
    to_tag: String,
    stop_media: Arc<AtomicBool>,
    media: Option<JoinHandle<()>>,
}

fn reply(
    req: &Message<'_>,
    code: u16,
    to_tag: Option<&str>,
    port: u16,
    body: Option<&[u8]>,
) -> Vec<u8> {
    let mut m = format!("SIP/2.0 {code} Fake\r\n");
    for (name, value) in &req.headers {
        let lower = name.to_ascii_lowercase();
        if ["via", "from", "call-id", "cseq"].contains(&lower.as_str()) {
            m.push_str(&format!("{name}: {value}\r\n"));
        } else if lower == "to" {
            match to_tag {
                Some(tag) if !value.contains("tag=") => {
                    m.push_str(&format!("{name}: {value};tag={tag}\r\n"))
                }
                _ => m.push_str(&format!("{name}: {value}\r\n")),
            }
        }
    }
    if code == 200 && req.method() == Some("INVITE") {
        m.push_str(&format!("Contact: <sip:moh@127.0.0.1:{port}>\r\n"));
    }
    let body = body.unwrap_or(b"");
    if !body.is_empty() {
        m.push_str("Content-Type: application/sdp\r\n");
    }
    m.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut out = m.into_bytes();
    out.extend_from_slice(body);
    out
}

/// 20 ms PCMU on an absolute grid, to `to`, until `stop` (plus 500 ms if `after_bye`).
fn stream(
    to: SocketAddr,
    stop: Arc<AtomicBool>,
    faults: Faults,
    seen: Arc<Mutex<Seen>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        seen.lock().unwrap().rtp_destinations.push(to);
        let start = Instant::now();
        let mut seq: u16 = 65500; // wraps during the call
        let mut ts: u32 = 1234;
        let mut stopped_at: Option<Instant> = None;
        for k in 0u16..250 {
            let due = start + Duration::from_millis(20 * u64::from(k));
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            if stop.load(Ordering::Relaxed) {
                let at = *stopped_at.get_or_insert_with(Instant::now);
                if !faults.send_after_bye || at.elapsed() > Duration::from_millis(500) {
                    return;
                }
            }
            if faults.skip_seq_at == Some(k) {
                seq = seq.wrapping_add(1);
                ts = ts.wrapping_add(160);
            }
            let mut p = vec![0xffu8; 12 + 160];
            p[0] = 0x80;
            p[1] = if k == 0 { 0x80 } else { 0 };
            p[2..4].copy_from_slice(&seq.to_be_bytes());
            p[4..8].copy_from_slice(&ts.to_be_bytes());
            p[8..12].copy_from_slice(&0x0123_4567u32.to_be_bytes());
            let _ = sock.send_to(&p, to);
            seq = seq.wrapping_add(1);
            ts = ts.wrapping_add(160);
        }
    })
}

fn local_media(port: u16) -> LocalMedia<'static> {
    LocalMedia {
        addr: "127.0.0.1".parse().unwrap(),
        rtp_port: port,
        session_id: 1,
        session_version: 1,
        username: "fake",
    }
}

fn fake(faults: Faults) -> Fake {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let addr = sock.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (stop2, seen2) = (stop.clone(), seen.clone());
    let handle = std::thread::spawn(move || {
        let mut calls: Vec<FakeCall> = Vec::new();
        let mut dropped = 0;
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(10);
        while !stop2.load(Ordering::Relaxed) && Instant::now() < deadline {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let Some(req) = Message::parse(&buf[..n]) else {
                continue;
            };
            let call_id = req.header("Call-ID").unwrap_or("").to_owned();
            let send = |bytes: &[u8]| {
                let _ = sock.send_to(bytes, from);
            };
            match req.method() {
                Some("OPTIONS") => send(&reply(&req, 200, None, addr.port(), None)),
                Some("INVITE") => {
                    if calls.iter().any(|c| c.call_id == call_id) {
                        continue; // a retransmission after our answer: ignore
                    }
                    if dropped < faults.drop_invites {
                        dropped += 1;
                        continue;
                    }
                    seen2
                        .lock()
                        .unwrap()
                        .invites
                        .push(String::from_utf8_lossy(&buf[..n]).into());
                    seen2.lock().unwrap().sip_sources.push(from);
                    send(&reply(&req, 100, None, addr.port(), None));
                    if faults.invite_code != 200 {
                        send(&reply(
                            &req,
                            faults.invite_code,
                            Some("9"),
                            addr.port(),
                            None,
                        ));
                        continue;
                    }
                    send(&reply(&req, 180, Some("77"), addr.port(), None));
                    let mut body = Vec::new();
                    let prefs = AnswerPrefs::default();
                    let rtp_to = if req.body.is_empty() {
                        sdp::write_offer(
                            &local_media(40000),
                            &prefs,
                            20,
                            Direction::SendOnly,
                            &mut body,
                        );
                        None
                    } else {
                        let offer = sdp::parse(&req.body).unwrap();
                        let neg = sdp::answer(&offer, &prefs).unwrap();
                        sdp::write_answer(&offer, &neg, &local_media(40000), &mut body);
                        Some(neg.remote_rtp)
                    };
                    let tag = if faults.no_to_tag { None } else { Some("77") };
                    send(&reply(&req, 200, tag, addr.port(), Some(&body)));
                    calls.push(FakeCall {
                        call_id,
                        rtp_to: if faults.rtp_to_sip_source {
                            Some(from)
                        } else {
                            rtp_to
                        },
                        to_tag: "77".into(),
                        stop_media: Arc::new(AtomicBool::new(false)),
                        media: None,
                    });
                }
                Some("ACK") => {
                    seen2
                        .lock()
                        .unwrap()
                        .acks
                        .push(String::from_utf8_lossy(&buf[..n]).into());
                    let Some(c) = calls.iter_mut().find(|c| c.call_id == call_id) else {
                        continue;
                    };
                    if c.media.is_some() {
                        continue;
                    }
                    if c.rtp_to.is_none() && !req.body.is_empty() {
                        let answer = sdp::parse(&req.body).unwrap();
                        c.rtp_to = Some(
                            sdp::accept_answer(&answer, &AnswerPrefs::default())
                                .unwrap()
                                .remote_rtp,
                        );
                    }
                    if let Some(to) = c.rtp_to {
                        c.media = Some(stream(to, c.stop_media.clone(), faults, seen2.clone()));
                    }
                }
                Some("BYE") => {
                    if let Some(c) = calls.iter().find(|c| c.call_id == call_id) {
                        c.stop_media.store(true, Ordering::Relaxed);
                        send(&reply(&req, 200, Some(&c.to_tag), addr.port(), None));
                    } else {
                        send(&reply(&req, 481, None, addr.port(), None));
                    }
                }
                _ => {}
            }
        }
        for c in &mut calls {
            c.stop_media.store(true, Ordering::Relaxed);
            if let Some(h) = c.media.take() {
                let _ = h.join();
            }
        }
    });
    Fake {
        addr,
        stop,
        seen,
        handle: Some(handle),
    }
}

fn args(fake: &Fake, shape: Shape, duration_ms: u64) -> ProbeArgs {
    ProbeArgs {
        target: format!("sip:123@{}", fake.addr),
        duration: Duration::from_millis(duration_ms),
        calls: 1,
        rate: 10.0,
        shape,
        json: false,
        local_ip: "127.0.0.1".parse().unwrap(),
        held_ip: None,
        timeout: Duration::from_secs(2),
        shared_sip_port: false,
        send_rtp: false,
    }
}

fn assert_clean_media(s: &Summary) {
    assert_eq!(s.options_code, Some(200));
    assert_eq!(
        (
            s.seq_errors,
            s.ts_errors,
            s.marker_errors,
            s.ssrc_changes,
            s.pt_errors
        ),
        (0, 0, 0, 0, 0),
        "{}",
        s.text()
    );
    assert_eq!(s.packets_after_bye, 0, "{}", s.text());
    assert_eq!(s.misdirected_packets, 0, "{}", s.text());
}

#[test]
fn own_address_call_to_a_good_server_is_healthy() {
    let f = fake(Faults::default());
    let s = execute(&args(&f, Shape::Own, 1000)).unwrap();
    assert_clean_media(&s);
    assert!(s.healthy(), "{}", s.text());
    assert_eq!(s.packets_expected, 50);
    assert!(s.packets_received >= 50, "{}", s.text());
    assert!(s.setup_p50_us.is_some());
    let seen = f.seen.lock().unwrap();
    let invite = &seen.invites[0];
    assert!(invite.starts_with(&format!(
        "INVITE sip:123@{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:",
        f.addr
    )));
    assert!(invite.contains(";branch=z9hG4bK") && invite.contains(";rport\r\n"));
    assert!(invite.contains("\r\nUser-Agent: Grandstream DP750 1.0.3.37\r\n"));
    assert!(
        invite.contains("\r\nContent-Length:   3"),
        "padded length: {invite}"
    );
    assert!(invite.contains("\r\na=sendrecv\r\n"));
    // RTP went to the probe's own RTP socket, named in the SDP.
    assert_eq!(seen.rtp_destinations[0].ip(), seen.sip_sources[0].ip());
    assert_ne!(seen.rtp_destinations[0], seen.sip_sources[0]);
}

#[test]
fn held_party_rtp_goes_to_the_held_socket() {
    let f = fake(Faults::default());
    let s = execute(&args(&f, Shape::HeldParty, 600)).unwrap();
    assert_clean_media(&s);
    assert!(s.healthy(), "{}", s.text());
    let seen = f.seen.lock().unwrap();
    assert!(seen.invites[0].contains("\r\na=recvonly\r\n"));
    let sdp_c = seen.invites[0]
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))
        .unwrap()
        .to_owned();
    assert_eq!(seen.rtp_destinations[0].ip().to_string(), sdp_c);
    if UdpSocket::bind("127.0.0.2:0").is_ok() {
        assert_ne!(seen.rtp_destinations[0].ip(), seen.sip_sources[0].ip());
    }
}

#[test]
fn rtp_sent_to_the_sip_source_is_caught() {
    let f = fake(Faults {
        rtp_to_sip_source: true,
        ..Faults::default()
    });
    let s = execute(&args(&f, Shape::HeldParty, 500)).unwrap();
    assert!(!s.healthy());
    assert!(s.misdirected_packets > 10, "{}", s.text());
    assert_eq!(s.packets_received, 0);
    assert_eq!(s.loss_pct, 100.0);
}

#[test]
fn late_offer_is_answered_with_pcmu_in_the_ack() {
    let f = fake(Faults::default());
    let s = execute(&args(&f, Shape::LateOffer, 600)).unwrap();
    assert_clean_media(&s);
    assert!(s.healthy(), "{}", s.text());
    let seen = f.seen.lock().unwrap();
    assert!(seen.invites[0].ends_with("Content-Length:   0\r\n\r\n"));
    let ack = &seen.acks[0];
    assert!(ack.starts_with("ACK sip:moh@127.0.0.1:"), "{ack}");
    assert!(ack.contains(";tag=77\r\n"), "{ack}");
    assert!(ack.contains("\r\nm=audio "), "{ack}");
    assert!(
        ack.contains(" RTP/AVP 0 101\r\na=recvonly\r\na=rtpmap:0 PCMU/8000\r\n"),
        "{ack}"
    );
}

#[test]
fn a_skipped_sequence_number_is_reported() {
    let f = fake(Faults {
        skip_seq_at: Some(10),
        ..Faults::default()
    });
    let s = execute(&args(&f, Shape::Own, 600)).unwrap();
    assert_eq!(s.seq_errors, 1, "{}", s.text());
    assert_eq!(
        s.ts_errors,
        0,
        "the timestamp followed the skip: {}",
        s.text()
    );
    assert!(!s.healthy());
    assert!(
        s.failures[0].1.contains("sequence number errors"),
        "{:?}",
        s.failures
    );
    assert!(s.json().contains("\"seq_errors\":1,"));
}

#[test]
fn media_after_bye_is_reported() {
    let f = fake(Faults {
        send_after_bye: true,
        ..Faults::default()
    });
    let s = execute(&args(&f, Shape::Own, 500)).unwrap();
    // 300 ms of listening at 20 ms, less 50 ms of grace: about 12 packets.
    assert!(s.packets_after_bye >= 5, "{}", s.text());
    assert!(!s.healthy());
    assert!(
        s.failures[0].1.contains("packets after BYE"),
        "{:?}",
        s.failures
    );
}

#[test]
fn lost_invites_are_retransmitted_on_t1() {
    let f = fake(Faults {
        drop_invites: 1,
        ..Faults::default()
    });
    let s = execute(&args(&f, Shape::Own, 400)).unwrap();
    assert!(s.invite_retransmits >= 1, "{}", s.text());
    assert!(s.setup_p50_us.unwrap() >= 500_000, "{}", s.text());
    assert!(s.healthy(), "{}", s.text());
}

#[test]
fn a_488_fails_the_call_and_is_acked() {
    let f = fake(Faults {
        invite_code: 488,
        ..Faults::default()
    });
    let s = execute(&args(&f, Shape::Own, 400)).unwrap();
    assert_eq!(s.calls_failed, 1);
    assert!(
        s.failures[0].1.contains("INVITE answered 488"),
        "{:?}",
        s.failures
    );
    let seen = f.seen.lock().unwrap();
    let ack = &seen.acks[0];
    let invite_branch = seen.invites[0]
        .split(";branch=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    assert!(ack.contains(&format!(";branch={invite_branch};")), "{ack}");
    assert!(ack.contains(";tag=9\r\n"), "{ack}");
}

#[test]
fn a_200_without_to_tag_fails_setup() {
    let f = fake(Faults {
        no_to_tag: true,
        ..Faults::default()
    });
    let s = execute(&args(&f, Shape::Own, 300)).unwrap();
    assert!(!s.healthy());
    assert!(
        s.failures[0].1.contains("200 without To-tag"),
        "{:?}",
        s.failures
    );
}

#[test]
fn several_concurrent_calls_are_judged_separately() {
    let f = fake(Faults::default());
    let mut a = args(&f, Shape::Own, 600);
    a.calls = 3;
    a.rate = 20.0;
    let s = execute(&a).unwrap();
    assert_eq!(s.calls, 3);
    assert_clean_media(&s);
    assert!(s.healthy(), "{}", s.text());
    assert_eq!(s.packets_expected, 90);
    let seen = f.seen.lock().unwrap();
    let mut dests = seen.rtp_destinations.clone();
    dests.sort();
    dests.dedup();
    assert_eq!(dests.len(), 3, "each call has its own RTP socket");
}

#[test]
fn calls_can_share_one_sip_port() {
    let f = fake(Faults::default());
    let mut a = args(&f, Shape::Own, 600);
    a.calls = 3;
    a.rate = 20.0;
    a.shared_sip_port = true;
    let s = execute(&a).unwrap();
    assert_clean_media(&s);
    assert!(s.healthy(), "{}", s.text());
    let seen = f.seen.lock().unwrap();
    assert_eq!(seen.sip_sources.len(), 3);
    assert!(seen.sip_sources.iter().all(|a| *a == seen.sip_sources[0]));
    let mut dests = seen.rtp_destinations.clone();
    dests.sort();
    dests.dedup();
    assert_eq!(dests.len(), 3, "each call still has its own RTP socket");
}

#[test]
fn rtp_at_a_shared_sip_port_is_caught() {
    let f = fake(Faults {
        rtp_to_sip_source: true,
        ..Faults::default()
    });
    let mut a = args(&f, Shape::HeldParty, 400);
    a.shared_sip_port = true;
    let s = execute(&a).unwrap();
    assert!(s.misdirected_packets > 5, "{}", s.text());
    assert!(!s.healthy());
}

#[test]
fn no_server_means_no_options_response() {
    // A bound but silent socket: OPTIONS times out, and the run is unhealthy without calls.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = format!("sip:123@{}", silent.local_addr().unwrap());
    let a = ProbeArgs {
        target,
        duration: Duration::from_millis(100),
        calls: 1,
        rate: 10.0,
        shape: Shape::Own,
        json: true,
        local_ip: "127.0.0.1".parse().unwrap(),
        held_ip: None,
        timeout: Duration::from_millis(600),
        shared_sip_port: false,
        send_rtp: false,
    };
    let s = execute(&a).unwrap();
    assert_eq!(s.options_code, None);
    assert!(!s.healthy());
    assert!(s.json().contains("\"options_status\":null"));
}

#[test]
fn durations_parse() {
    assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
    assert!(parse_duration("10h").is_err());
    assert!(parse_duration("s").is_err());
    assert!(parse_duration("2h").is_err());
}

#[test]
fn bad_arguments_are_errors_not_panics() {
    let f = fake(Faults::default());
    let mut a = args(&f, Shape::Own, 100);
    a.rate = 0.0;
    assert!(execute(&a).is_err());
    let mut a = args(&f, Shape::Own, 100);
    a.target = "http://x".into();
    assert!(execute(&a).is_err());
    let mut a = args(&f, Shape::Own, 100);
    a.local_ip = "::1".parse().unwrap();
    assert!(execute(&a).is_err());
    let mut a = args(&f, Shape::Own, 100);
    a.local_ip = "0.0.0.0".parse().unwrap();
    assert!(execute(&a).unwrap_err().contains("0.0.0.0"));
}

#[test]
fn command_line_parses_as_documented() {
    use clap::{CommandFactory, Parser};
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        probe: ProbeArgs,
    }
    Cli::command().debug_assert();
    let cli = Cli::try_parse_from([
        "probe",
        "sip:123@127.0.0.1:5060",
        "--duration",
        "2s",
        "--calls",
        "5",
        "--rate",
        "2.5",
        "--shape",
        "held-party",
        "--json",
        "--local-ip",
        "127.0.0.1",
        "--shared-sip-port",
    ])
    .unwrap();
    let p = cli.probe;
    assert_eq!(p.target, "sip:123@127.0.0.1:5060");
    assert_eq!(
        (p.duration, p.calls, p.rate),
        (Duration::from_secs(2), 5, 2.5)
    );
    assert_eq!(p.shape, Shape::HeldParty);
    assert!(p.json && p.shared_sip_port);
    let defaults = Cli::try_parse_from(["probe", "sip:moh@10.0.0.1"])
        .unwrap()
        .probe;
    assert_eq!(defaults.duration, Duration::from_secs(10));
    assert_eq!(
        (defaults.calls, defaults.shape, defaults.json),
        (1, Shape::Own, false)
    );
    assert_eq!(defaults.timeout, Duration::from_secs(32));
    assert!(Cli::try_parse_from(["probe", "sip:x@h", "--calls", "0"]).is_err());
    assert!(Cli::try_parse_from(["probe", "sip:x@h", "--shape", "weird"]).is_err());
}
