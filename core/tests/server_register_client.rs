//! Registering to a PBX or trunk (`ServerConfig::registrations`): the REGISTER at start, digest
//! answers to challenges (RFC 7616, RFC 8760), refresh, back-off, and removal at shutdown.

mod common;

use std::time::Duration;

use common::{addr, Harness, Sent, SERVER};
use md5::Md5;
use onhold_core::media::Library;
use onhold_core::{Control, Event, Registration, RegistrationState, ServerConfig, Transport};
use sha2::{Digest, Sha256};

const REGISTRAR: &str = "192.168.1.1:5060";

fn account() -> Registration {
    Registration {
        registrar: "sip:192.168.1.1".into(),
        aor: "sip:moh@pbx.example.com".into(),
        auth_user: "moh".into(),
        password: "s3cret".into(),
        expires: Duration::from_secs(3600),
        outbound_proxy: None,
        transport: Transport::Udp,
        local: addr(SERVER),
        contact_ip: None,
    }
}

fn harness() -> Harness {
    harness_for(account(), |_| {})
}

/// A server with the one account, `setup` done to the harness before its first REGISTER.
fn harness_for(account: Registration, setup: impl FnOnce(&mut Harness)) -> Harness {
    let config = ServerConfig {
        registrations: vec![account],
        ..ServerConfig::default()
    };
    let mut h = Harness::with(config, Library::silence());
    setup(&mut h);
    h.advance(Duration::ZERO);
    h
}

/// The account at another registrar.
fn at(registrar: &str) -> Registration {
    Registration {
        registrar: registrar.into(),
        ..account()
    }
}

fn registers(h: &Harness) -> Vec<&Sent> {
    h.sip()
        .into_iter()
        .filter(|s| s.start_line().starts_with("REGISTER "))
        .collect()
}

/// Distinct REGISTERs (by CSeq): retransmissions counted once.
fn attempts(h: &Harness) -> Vec<(Duration, Sent)> {
    let mut out: Vec<(Duration, Sent)> = Vec::new();
    for s in registers(h) {
        if out
            .last()
            .is_none_or(|(_, l)| l.header("CSeq") != s.header("CSeq"))
        {
            out.push((s.at, s.clone()));
        }
    }
    out
}

fn last_register(h: &Harness) -> Sent {
    (*registers(h).last().expect("a REGISTER")).clone()
}

fn answer(h: &mut Harness, req: &Sent, status: &str, extra: &str) {
    let reply = req.reply(status);
    let reply = reply.replacen(
        "Content-Length: 0\r\n",
        &format!("{extra}Content-Length: 0\r\n"),
        1,
    );
    h.send(REGISTRAR, &reply);
}

fn shutdown(h: &mut Harness) {
    let grace = Duration::from_secs(5);
    h.server.control(h.now, Control::Shutdown { grace });
    h.drain();
}

/// The removal is answered: the drain waited for it, and the account is unregistered.
fn removal_answered(h: &mut Harness, removal: &Sent) {
    let drained = |h: &Harness| h.events.iter().any(|(_, e)| *e == Event::Drained);
    assert!(!drained(h));
    answer(h, removal, "200 OK", "");
    assert!(drained(h));
    let state = h.server.registrations()[0].state;
    assert_eq!(state, RegistrationState::Unregistered);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The digest parameter `name` of an Authorization value.
fn param(auth: &str, name: &str) -> String {
    let at = auth.find(&format!("{name}=")).expect(name) + name.len() + 1;
    let rest = &auth[at..];
    match rest.strip_prefix('"') {
        Some(q) => q[..q.find('"').unwrap()].to_string(),
        None => rest[..rest.find(',').unwrap_or(rest.len())]
            .trim()
            .to_string(),
    }
}

fn states(h: &Harness) -> Vec<RegistrationState> {
    h.events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Registration { state, .. } => Some(*state),
            _ => None,
        })
        .collect()
}

#[test]
fn a_register_goes_out_at_start() {
    let h = harness();
    let r = last_register(&h);
    assert_eq!(r.start_line(), "REGISTER sip:192.168.1.1 SIP/2.0");
    assert_eq!(r.t.remote, addr(REGISTRAR));
    assert_eq!(r.t.local, addr(SERVER));
    assert_eq!(r.header("To").unwrap(), "<sip:moh@pbx.example.com>");
    assert!(r
        .header("From")
        .unwrap()
        .starts_with("<sip:moh@pbx.example.com>;tag="));
    assert_eq!(
        r.header("Contact").unwrap(),
        "<sip:moh@192.168.1.100:5060>;expires=3600"
    );
    assert_eq!(r.header("Expires").unwrap(), "3600");
    assert!(r.header("Authorization").is_none());
    let info = h.server.registrations();
    assert_eq!(info[0].state, RegistrationState::Pending);
}

fn challenged(algorithm: &str, hash: fn(&str) -> String) {
    let mut h = harness();
    let first = last_register(&h);
    let challenge = format!(
        "WWW-Authenticate: Digest realm=\"pbx\", nonce=\"abc123\", qop=\"auth\", algorithm={algorithm}, opaque=\"op\"\r\n"
    );
    answer(&mut h, &first, "401 Unauthorized", &challenge);
    let second = last_register(&h);
    let auth = second.header("Authorization").expect("credentials");
    assert_ne!(second.header("CSeq"), first.header("CSeq"));
    assert_eq!(second.header("Call-ID"), first.header("Call-ID"));
    assert_eq!(param(&auth, "username"), "moh");
    assert_eq!(param(&auth, "realm"), "pbx");
    assert_eq!(param(&auth, "nonce"), "abc123");
    assert_eq!(param(&auth, "uri"), "sip:192.168.1.1");
    assert_eq!(param(&auth, "algorithm"), algorithm);
    assert_eq!(param(&auth, "qop"), "auth");
    assert_eq!(param(&auth, "nc"), "00000001");
    assert_eq!(param(&auth, "opaque"), "op");
    let cnonce = param(&auth, "cnonce");
    // RFC 7616 §3.4.1, computed here on its own.
    let ha1 = hash("moh:pbx:s3cret");
    let ha2 = hash("REGISTER:sip:192.168.1.1");
    let expected = hash(&format!("{ha1}:abc123:00000001:{cnonce}:auth:{ha2}"));
    assert_eq!(param(&auth, "response"), expected);
    answer(&mut h, &second, "200 OK", "");
    assert_eq!(
        h.server.registrations()[0].state,
        RegistrationState::Registered
    );
    assert_eq!(
        states(&h),
        [RegistrationState::Registered],
        "a first challenge is no failure"
    );
}

#[test]
fn a_sha256_challenge_is_answered() {
    challenged("SHA-256", |s| hex(&Sha256::digest(s.as_bytes())));
}

#[test]
fn an_md5_challenge_is_answered() {
    challenged("MD5", |s| hex(&Md5::digest(s.as_bytes())));
}

#[test]
fn sha256_is_chosen_over_md5() {
    let mut h = harness();
    let first = last_register(&h);
    let challenge = "WWW-Authenticate: Digest realm=\"pbx\", nonce=\"n1\", qop=\"auth\", algorithm=MD5\r\n\
                     WWW-Authenticate: Digest realm=\"pbx\", nonce=\"n2\", qop=\"auth\", algorithm=SHA-256\r\n";
    answer(&mut h, &first, "401 Unauthorized", challenge);
    let auth = last_register(&h).header("Authorization").unwrap();
    assert_eq!(param(&auth, "algorithm"), "SHA-256");
    assert_eq!(param(&auth, "nonce"), "n2");
}

#[test]
fn the_granted_expiry_is_refreshed_at_ninety_percent() {
    let mut h = harness();
    let first = last_register(&h);
    answer(
        &mut h,
        &first,
        "200 OK",
        "Contact: <sip:moh@192.168.1.100:5060>;expires=60\r\n",
    );
    let info = &h.server.registrations()[0];
    assert_eq!(info.state, RegistrationState::Registered);
    assert_eq!(info.expires_at, Some(h.now + Duration::from_secs(60)));
    h.advance(Duration::from_secs(53));
    assert_eq!(attempts(&h).len(), 1);
    h.advance(Duration::from_secs(2));
    let all = attempts(&h);
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].0, Duration::from_secs(54));
    assert_eq!(all[1].1.header("Call-ID"), first.header("Call-ID"));
}

#[test]
fn a_stale_nonce_is_retried_at_once_without_failing() {
    let mut h = harness();
    let first = last_register(&h);
    let challenge = |nonce: &str, stale: bool| {
        format!(
            "WWW-Authenticate: Digest realm=\"pbx\", nonce=\"{nonce}\", qop=\"auth\"{}\r\n",
            if stale { ", stale=true" } else { "" }
        )
    };
    answer(&mut h, &first, "401 Unauthorized", &challenge("old", false));
    let second = last_register(&h);
    answer(&mut h, &second, "401 Unauthorized", &challenge("new", true));
    let third = last_register(&h);
    assert_ne!(third.header("CSeq"), second.header("CSeq"));
    let auth = third.header("Authorization").unwrap();
    assert_eq!(param(&auth, "nonce"), "new");
    assert_eq!(param(&auth, "nc"), "00000001");
    assert!(states(&h).is_empty(), "no state change: {:?}", states(&h));
    answer(&mut h, &third, "200 OK", "");
    assert_eq!(states(&h), [RegistrationState::Registered]);
}

#[test]
fn refused_credentials_fail() {
    let mut h = harness();
    let first = last_register(&h);
    let challenge = "WWW-Authenticate: Digest realm=\"pbx\", nonce=\"n\", qop=\"auth\"\r\n";
    answer(&mut h, &first, "401 Unauthorized", challenge);
    let second = last_register(&h);
    answer(&mut h, &second, "401 Unauthorized", challenge);
    let info = &h.server.registrations()[0];
    assert_eq!(info.state, RegistrationState::Failed);
    assert!(info
        .last_error
        .as_deref()
        .unwrap()
        .contains("credentials refused"));
    assert_eq!(attempts(&h).len(), 2, "no tight loop");
}

#[test]
fn a_403_fails_and_backs_off_increasingly() {
    let mut h = harness();
    let mut answered = 0;
    for _ in 0..400 {
        h.advance(Duration::from_secs(1));
        let all = attempts(&h);
        if all.len() > answered {
            answered = all.len();
            let (_, r) = all.last().unwrap().clone();
            answer(&mut h, &r, "403 Forbidden", "");
        }
    }
    let info = &h.server.registrations()[0];
    assert_eq!(info.state, RegistrationState::Failed);
    assert_eq!(info.last_error.as_deref(), Some("403 Forbidden"));
    let times: Vec<Duration> = attempts(&h).iter().map(|(t, _)| *t).collect();
    // 5, 10, 20, 40, 80, 160 s less up to a quarter each: 7 attempts in 400 s.
    assert_eq!(times.len(), 7, "{times:?}");
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.windows(2).all(|g| g[1] > g[0]), "{gaps:?}");
    assert!(
        gaps[0] >= Duration::from_secs(3) && gaps[0] <= Duration::from_secs(6),
        "{gaps:?}"
    );
    assert_eq!(states(&h), [RegistrationState::Failed]);
}

#[test]
fn an_unanswered_register_times_out_and_is_retried() {
    let mut h = harness();
    h.advance(Duration::from_secs(33));
    let info = &h.server.registrations()[0];
    assert_eq!(info.state, RegistrationState::Failed);
    // Timer E: 0.5, 1, 2, 4, 4, … s between retransmissions of the one request.
    assert!(registers(&h).len() > 5);
    assert_eq!(attempts(&h).len(), 1);
    h.advance(Duration::from_secs(6));
    assert_eq!(attempts(&h).len(), 2);
}

#[test]
fn shutdown_removes_the_binding() {
    let mut h = harness();
    let first = last_register(&h);
    answer(&mut h, &first, "200 OK", "Expires: 120\r\n");
    shutdown(&mut h);
    let removal = last_register(&h);
    assert_eq!(removal.header("Expires").unwrap(), "0");
    assert_eq!(
        removal.header("Contact").unwrap(),
        "<sip:moh@192.168.1.100:5060>;expires=0"
    );
    removal_answered(&mut h, &removal);
    h.advance(Duration::from_secs(600));
    assert_eq!(attempts(&h).len(), 2, "nothing after the removal");
}

#[test]
fn a_registrar_name_is_resolved() {
    let h = harness_for(at("sip:pbx.example.com:5070"), |h| {
        h.hosts
            .insert("pbx.example.com".into(), "192.168.1.1".parse().unwrap());
    });
    assert_eq!(last_register(&h).t.remote, addr("192.168.1.1:5070"));
}

#[test]
fn the_password_is_not_in_debug_output() {
    let text = format!("{:?}", account());
    assert!(!text.contains("s3cret"), "{text}");
}

#[test]
fn a_registrar_outside_allow_is_still_heard() {
    let mut h = harness_for(at("sip:203.0.113.5"), |_| {});
    let r = last_register(&h);
    assert_eq!(r.t.remote, addr("203.0.113.5:5060"));
    h.send("203.0.113.5:5060", &r.reply("200 OK"));
    assert_eq!(
        h.server.registrations()[0].state,
        RegistrationState::Registered
    );
    // From elsewhere, the same response is not ours to read.
    let mut h = harness_for(at("sip:203.0.113.5"), |_| {});
    let r = last_register(&h);
    h.send("203.0.113.6:5060", &r.reply("200 OK"));
    assert_eq!(
        h.server.registrations()[0].state,
        RegistrationState::Pending
    );
}

#[test]
fn shutdown_while_registering_removes_once_the_binding_is_made() {
    let mut h = harness();
    let first = last_register(&h);
    shutdown(&mut h);
    assert_eq!(
        attempts(&h).len(),
        1,
        "the removal waits for the REGISTER's answer"
    );
    answer(&mut h, &first, "200 OK", "");
    let removal = last_register(&h);
    assert_eq!(removal.header("Expires").unwrap(), "0");
    removal_answered(&mut h, &removal);
}

#[test]
fn a_proxy_challenge_is_answered_with_proxy_authorization() {
    let mut h = harness();
    let first = last_register(&h);
    let challenge = "Proxy-Authenticate: Digest realm=\"trunk\", nonce=\"p1\", algorithm=MD5\r\n";
    answer(
        &mut h,
        &first,
        "407 Proxy Authentication Required",
        challenge,
    );
    let second = last_register(&h);
    assert!(second.header("Authorization").is_none());
    let auth = second
        .header("Proxy-Authorization")
        .expect("proxy credentials");
    // No qop offered: the RFC 2069 form, without cnonce or nc.
    let h1 = |s: &str| hex(&Md5::digest(s.as_bytes()));
    let expected = h1(&format!(
        "{}:p1:{}",
        h1("moh:trunk:s3cret"),
        h1("REGISTER:sip:192.168.1.1")
    ));
    assert_eq!(param(&auth, "response"), expected);
    assert!(!auth.contains("cnonce"), "{auth}");
}

#[test]
fn interval_too_brief_asks_again_with_min_expires() {
    let mut h = harness();
    let first = last_register(&h);
    answer(
        &mut h,
        &first,
        "423 Interval Too Brief",
        "Min-Expires: 7200\r\n",
    );
    let second = last_register(&h);
    assert_eq!(second.header("Expires").unwrap(), "7200");
    assert!(states(&h).is_empty());
}

#[test]
fn a_grant_longer_than_asked_is_refreshed_as_if_asked() {
    let mut h = harness();
    let first = last_register(&h);
    answer(&mut h, &first, "200 OK", "Expires: 4294967295\r\n");
    let info = &h.server.registrations()[0];
    assert_eq!(info.expires_at, Some(h.now + Duration::from_secs(3600)));
    h.advance(Duration::from_secs(3240));
    assert_eq!(attempts(&h).len(), 2);
}

#[test]
fn a_reload_keeps_named_accounts_removes_dropped_ones_and_registers_new_ones() {
    let mut h = harness();
    let first = last_register(&h);
    answer(&mut h, &first, "200 OK", "");
    assert_eq!(
        h.server.registrations()[0].state,
        RegistrationState::Registered
    );
    let reconfigure = |h: &mut Harness, accounts: Vec<Registration>| {
        let config = ServerConfig {
            registrations: accounts,
            ..ServerConfig::default()
        };
        h.server
            .control(h.now, Control::Reconfigure(Box::new(config)));
        // A new account's first REGISTER is due now, as at start.
        h.advance(Duration::ZERO);
    };

    // The same account plus a second: the first sends nothing, the second registers now.
    let before = registers(&h).len();
    let other = Registration {
        aor: "sip:moh2@pbx.example.com".into(),
        ..account()
    };
    reconfigure(&mut h, vec![account(), other.clone()]);
    let new: Vec<Sent> = registers(&h)[before..]
        .iter()
        .map(|s| (*s).clone())
        .collect();
    assert_eq!(new.len(), 1, "{}", h.transcript());
    assert_eq!(new[0].header("To").unwrap(), "<sip:moh2@pbx.example.com>");
    answer(&mut h, &new[0], "200 OK", "");
    let info = h.server.registrations();
    assert_eq!(info.len(), 2);
    assert!(info
        .iter()
        .all(|i| i.state == RegistrationState::Registered));

    // The first dropped: its binding is removed (same Call-ID, Expires: 0), and it goes.
    reconfigure(&mut h, vec![other]);
    let removal = last_register(&h);
    assert_eq!(removal.header("Call-ID"), first.header("Call-ID"));
    assert_eq!(removal.header("Expires").unwrap(), "0");
    let info = h.server.registrations();
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].aor, "sip:moh2@pbx.example.com");
    answer(&mut h, &removal, "200 OK", "");
    // Refreshes go on for the one left, at 90 % of 3600 s, and only for it.
    let before = registers(&h).len();
    h.advance(Duration::from_secs(3300));
    let refreshes: Vec<Sent> = registers(&h)[before..]
        .iter()
        .map(|s| (*s).clone())
        .collect();
    assert_eq!(
        refreshes[0].at,
        Duration::from_secs(3240),
        "{}",
        h.transcript()
    );
    assert!(refreshes
        .iter()
        .all(|r| r.header("To").unwrap() == "<sip:moh2@pbx.example.com>"));
}

#[test]
fn an_outbound_proxy_named_by_host_is_looked_up_and_used() {
    let named = Registration {
        outbound_proxy: Some(onhold_core::Hop::Name {
            host: "edge.example.com".into(),
            port: Some(5080),
        }),
        ..account()
    };
    let h = harness_for(named, |h| {
        h.hosts
            .insert("edge.example.com".into(), "192.168.1.2".parse().unwrap());
    });
    let r = last_register(&h);
    // Sent to the proxy; the Request-URI is still the registrar's.
    assert_eq!(r.t.remote, addr("192.168.1.2:5080"));
    assert_eq!(r.start_line(), "REGISTER sip:192.168.1.1 SIP/2.0");
}
