//! A call through a real record-routing proxy (Debian's Kamailio, `onhold_tests::kamailio`)
//! from a caller that knows neither session timers nor UPDATE (`tests/sipp/proxied_caller.xml`),
//! to which the proxy adds `Session-Expires: 90`.
//!
//! What it proves, for both runtimes over UDP and over TCP (caller → proxy → server on one
//! transport): the server refreshes the session itself (RFC 4028 §9: the caller does not
//! support timers, so `refresher=uas`) every 45 s, by re-INVITE because the caller's Allow has
//! no UPDATE (RFC 3311 §5.1), and never sends UPDATE; its in-dialog requests follow the
//! Record-Route, which names the proxy only as `localhost:PORT`, so they reach the proxy on
//! that port only if the runtime resolved the name (its fallback would be the INVITE's source,
//! another port); over TCP it opens that connection itself. The call outlives two session
//! intervals (without the refreshes the session would expire and the server would hang up after
//! 58 s), and the BYE at `max_call_duration` reaches the caller through the proxy. Music flows
//! the whole time.
//!
//! Each variant takes `max_call_duration` (190 s); the four run at once, in one test.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use onhold_probe::msg::param;
use onhold_tests::kamailio::{require_kamailio, Proxy, RECEIVED_HEADER, SESSION_EXPIRES};
use onhold_tests::rtp::by_ssrc;
use onhold_tests::sipp::require_sipp;
use onhold_tests::{
    ports, wait_for, RtpReceiver, Runtime, Server, ServerOptions, SipMessage, Sipp, Transport,
};

use crate::common::STOP_SLACK;

/// The server hangs up after this: a little over two session intervals.
const MAX_CALL: Duration = Duration::from_secs(190);

#[test]
fn kamailio_record_routed_call_is_refreshed_by_reinvite_until_max_duration() {
    require_sipp();
    require_kamailio();
    let mut running = Vec::new();
    for rt in Runtime::ALL {
        for transport in Transport::ALL {
            let name = format!("{}-{}", rt.bin_name(), transport.name());
            let thread = std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || proxied_call(rt, transport))
                .expect("spawn a variant's thread");
            running.push((name, thread));
        }
    }
    // Each thread is bounded by SIPp's timeout; its own panic message says what failed.
    let failed: Vec<String> = running
        .into_iter()
        .filter_map(|(name, t)| t.join().is_err().then_some(name))
        .collect();
    assert!(failed.is_empty(), "failed: {}", failed.join(", "));
}

fn proxied_call(rt: Runtime, transport: Transport) {
    let tcp: SocketAddr = ([127, 0, 0, 1], ports::free_tcp_port()).into();
    let mut opts = ServerOptions::default()
        .arg("--max-call-duration")
        .arg(format!("{}s", MAX_CALL.as_secs()));
    if transport == Transport::Tcp {
        opts = opts.arg("--listen").arg(format!("tcp:{tcp}"));
    }
    let server = Server::start_with(rt, opts);
    let server_addr = match transport {
        Transport::Udp => server.sip,
        Transport::Tcp => tcp,
    };
    let proxy = Proxy::start(transport, server_addr);
    let rx = RtpReceiver::bind();
    let mut sipp = Sipp::new("proxied_caller.xml", proxy.front)
        .set("rtp_port", rx.port())
        .timeout(MAX_CALL + Duration::from_secs(40));
    if transport == Transport::Tcp {
        sipp = sipp.tcp();
    }
    let run = sipp.run();
    run.assert_success();
    let transcript = run.transcript();

    // The 200 to the INVITE: the server refreshes, since the caller does not support timers.
    let ok = run
        .response_to("21 INVITE")
        .filter(|m| m.status() == Some(200))
        .unwrap_or_else(|| panic!("no 200 to the INVITE:\n{transcript}"));
    let se = ok
        .header("Session-Expires")
        .unwrap_or_else(|| panic!("200 without Session-Expires:\n{}", ok.text));
    assert_eq!(
        se.split(';').next().map(str::trim),
        Some(SESSION_EXPIRES.to_string().as_str()),
        "{se}"
    );
    assert_eq!(param(se, "refresher"), Some("uas"), "{se}");
    let rr = format!("localhost:{}", proxy.rr_port);
    assert!(
        ok.msg.record_routes().iter().any(|r| r.contains(&rr)),
        "the 200 does not carry the proxy's Record-Route {rr}:\n{}",
        ok.text
    );
    let answered = ok.wall;

    // Every request the server sent came through the proxy, on the port only the resolved
    // Record-Route names.
    let requests: Vec<&SipMessage> = run
        .messages
        .iter()
        .filter(|m| !m.sent && m.method().is_some())
        .collect();
    for m in &requests {
        assert_via_proxy(m, &proxy, server_addr);
    }
    assert!(
        requests.iter().all(|m| m.method() != Some("UPDATE")),
        "the server sent UPDATE, which the caller's Allow does not list:\n{transcript}"
    );

    let byes: Vec<&&SipMessage> = requests
        .iter()
        .filter(|m| m.method() == Some("BYE"))
        .collect();
    assert_eq!(byes.len(), 1, "BYEs received:\n{transcript}");
    let bye = byes[0];
    let lasted = since(answered, bye.wall);
    let interval = Duration::from_secs(SESSION_EXPIRES);
    assert!(
        lasted > 2 * interval && lasted + Duration::from_secs(1) >= MAX_CALL,
        "BYE {lasted:?} after the 200: before max_call_duration {MAX_CALL:?}\n{transcript}"
    );
    assert!(
        lasted <= MAX_CALL + Duration::from_secs(10),
        "BYE {lasted:?} after the 200, long after max_call_duration {MAX_CALL:?}"
    );

    // The refreshes: re-INVITEs every half interval, with an offer and the session timer.
    let refreshes: Vec<&&SipMessage> = requests
        .iter()
        .filter(|m| m.method() == Some("INVITE"))
        .collect();
    let times: Vec<Duration> = refreshes.iter().map(|m| since(answered, m.wall)).collect();
    let by_two_intervals = times.iter().filter(|t| **t <= 2 * interval).count();
    assert!(
        by_two_intervals >= 3,
        "{by_two_intervals} refreshes within {:?} of the 200 (at {times:?}); expected one \
         every {:?}\n{transcript}",
        2 * interval,
        interval / 2
    );
    let mut last = Duration::ZERO;
    for (m, t) in refreshes.iter().zip(&times) {
        assert!(
            *t - last <= interval / 2 + Duration::from_secs(5),
            "a refresh {t:?} after the 200, {:?} after the one before: {times:?}",
            *t - last
        );
        last = *t;
        let se = m
            .header("Session-Expires")
            .unwrap_or_else(|| panic!("refresh without Session-Expires:\n{}", m.text));
        assert_eq!(param(se, "refresher"), Some("uac"), "{se}");
        assert!(
            m.body().contains("m=audio "),
            "refresh without an SDP offer:\n{}",
            m.text
        );
    }
    assert!(
        lasted - last <= interval / 2 + Duration::from_secs(5),
        "no refresh in the {:?} before the BYE: {times:?}",
        lasted - last
    );

    // The server logged why the call ended.
    let ended = wait_for(Duration::from_secs(5), || {
        server
            .stderr()
            .lines()
            .any(|l| l.contains("call ended") && l.contains("reason=MaxDuration"))
            .then_some(())
    });
    assert!(
        ended.is_some(),
        "no 'call ended … reason=MaxDuration' in the log:\n{}",
        server.stderr()
    );

    // Music: one stream, about one packet per 20 ms for the whole call, still flowing after
    // the last refresh, and stopped at the BYE.
    std::thread::sleep(STOP_SLACK + Duration::from_millis(100));
    let packets = rx.packets();
    let streams = by_ssrc(&packets);
    assert_eq!(streams.len(), 1, "RTP streams (SSRCs): {}", streams.len());
    let expected = lasted.as_millis() as usize / 20;
    assert!(
        packets.len() >= expected * 9 / 10 && packets.len() <= expected + 10,
        "{} RTP packets in a {lasted:?} call, expected about {expected}",
        packets.len()
    );
    let last_refresh = refreshes.last().map_or(answered, |m| m.wall);
    let after = packets
        .iter()
        .filter(|p| p.wall > last_refresh + Duration::from_secs(1) && p.wall < bye.wall)
        .count();
    let expected_after = since(last_refresh, bye.wall).as_millis() as usize / 20;
    assert!(
        after + 60 >= expected_after,
        "{after} RTP packets between the last refresh and the BYE, expected about \
         {expected_after}"
    );
    assert!(
        packets.iter().all(|p| p.wall <= bye.wall + STOP_SLACK),
        "RTP after the BYE"
    );
}

/// `m`, a request the server sent, came through the proxy: the proxy's Via on top (it relays
/// in-dialog requests from the port it advertises as `localhost`), the server's below, and it
/// reached the proxy on that port.
fn assert_via_proxy(m: &SipMessage, proxy: &Proxy, server: SocketAddr) {
    let vias: Vec<&str> = m
        .msg
        .headers_named("Via")
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let proto = proxy.transport.name().to_ascii_uppercase();
    assert!(
        vias.len() == 2
            && vias[0].starts_with(&format!("SIP/2.0/{proto} localhost:{}", proxy.rr_port))
            && vias[1].starts_with(&format!("SIP/2.0/{proto} {server}")),
        "{} did not come from the server through the proxy:\n{}",
        m.start_line(),
        m.text
    );
    assert_eq!(
        m.header(RECEIVED_HEADER),
        Some(proxy.received_on_rr().as_str()),
        "{} reached the proxy elsewhere than the Record-Route's localhost:{}:\n{}",
        m.start_line(),
        proxy.rr_port,
        m.text
    );
}

/// `later - earlier` on the wall clock (zero if the clock says otherwise).
fn since(earlier: SystemTime, later: SystemTime) -> Duration {
    later.duration_since(earlier).unwrap_or_default()
}
