//! Registering to Debian's Kamailio as a registrar with digest authentication
//! (`onhold_tests::kamailio::Proxy::registrar`): the account registers (Kamailio saves the
//! binding and logs it), `/health`, `/metrics` and the `registration` event say so, a call to
//! the account reaches us through the registrar's location lookup and hears the music, and
//! the binding is removed (`Expires: 0`) at shutdown; a wrong password leaves `/health` degraded
//! with the reason.

use std::time::Duration;

use crate::common::with_tcp;
use onhold_tests::caller::{dp750_offer, Caller};
use onhold_tests::http::{get, EventStream};
use onhold_tests::kamailio::{Proxy, REGISTERED, TO_CONTACT};
use onhold_tests::Transport;
use onhold_tests::{both_runtimes, wait_for, RtpReceiver, Runtime, Server, ServerOptions, TempDir};

both_runtimes!(
    registers_with_sha256_digest_and_unregisters_at_shutdown,
    a_wrong_password_leaves_health_degraded,
    registers_over_tcp,
    an_md5_binding_is_refreshed_and_comes_back_after_a_registrar_restart,
);

const PASSWORD: &str = "moh-secret-7";

fn config(dir: &TempDir, registrar: &Proxy, password: &str) -> std::path::PathBuf {
    let path = dir.join("onhold.toml");
    let text = format!(
        "[[register]]\nregistrar = \"sip:{}\"\naor = \"sip:moh@onhold.test\"\n\
         password = \"{password}\"\nexpires = \"120s\"\n",
        registrar.front
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// `/health` once the account is in `state` (within 10 s).
fn health_once(server: &Server, registrar: &Proxy, state: &str) -> serde_json::Value {
    let c = server.control;
    wait_for(Duration::from_secs(10), || {
        let h = get(c, "/health").json();
        (h["registrations"][0]["state"] == state).then_some(h)
    })
    .unwrap_or_else(|| {
        let health = get(c, "/health").body;
        panic!("not {state}: {health}\n{}", registrar.log())
    })
}

fn registers_with_sha256_digest_and_unregisters_at_shutdown(rt: Runtime) {
    let registrar = Proxy::registrar("moh", PASSWORD, "SHA-256");
    let dir = TempDir::new("register");
    let mut server = Server::start_with(
        rt,
        ServerOptions::default().config(config(&dir, &registrar, PASSWORD)),
    );
    let c = server.control;
    // From the first event on: the registration may be done before we connect.
    let events = EventStream::open_after(c, "/api/events", 0);
    let health = health_once(&server, &registrar, "registered");
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["registrations"][0]["aor"], "sip:moh@onhold.test");
    let log = registrar.log();
    let saved = format!(
        "{REGISTERED} sip:moh@onhold.test contact <sip:moh@127.0.0.1:{}>",
        server.sip.port()
    );
    assert!(log.contains(&saved), "{log}");
    assert!(log.contains("expires 120"), "{log}");
    // A call to the account reaches us through the registrar's location lookup.
    let rx = RtpReceiver::bind();
    let offer = dp750_offer(rx.addr(), "RTP/AVP", "0 8 101", 20, "sendrecv");
    let call = Caller::invite_to(registrar.front, "sip:moh@onhold.test", &offer, "");
    assert_eq!(call.status(), 200, "{}\n{}", call.answer, registrar.log());
    let relayed = format!("{TO_CONTACT} sip:moh@127.0.0.1:{}", server.sip.port());
    assert!(registrar.log().contains(&relayed), "{}", registrar.log());
    assert!(rx.wait_packets(10, Duration::from_secs(5)), "no music");
    assert_eq!(call.bye(), 200);
    let ev = events
        .wait_for(Duration::from_secs(5), |e| e.name == "registration")
        .expect("a registration event");
    assert_eq!(ev.data["state"], "registered", "{:?}", ev.data);
    let metrics = get(c, "/metrics").body;
    assert!(
        metrics.contains(r#"onhold_registrations{aor="sip:moh@onhold.test",state="registered"} 1"#),
        "{metrics}"
    );
    // Nothing we print shows the password.
    assert!(!server.stderr().contains(PASSWORD));
    assert!(!get(c, "/health").body.contains(PASSWORD));

    server.signal(libc::SIGTERM);
    assert!(
        server.wait_exit(Duration::from_secs(10)).is_some(),
        "did not exit"
    );
    let log = registrar.log();
    assert!(log.contains("expires 0"), "no removal at shutdown:\n{log}");
}

/// `transport = "tcp"`: the REGISTER goes over a TCP connection we open to the registrar,
/// our Contact says `;transport=tcp`, and the binding is removed at shutdown the same way.
fn registers_over_tcp(rt: Runtime) {
    let registrar = Proxy::registrar_over(Transport::Tcp, "moh", PASSWORD, "MD5");
    let dir = TempDir::new("register-tcp");
    let path = config(&dir, &registrar, PASSWORD);
    let text = std::fs::read_to_string(&path).unwrap() + "transport = \"tcp\"\n";
    std::fs::write(&path, text).unwrap();
    let (mut server, tcp) = with_tcp(rt, ServerOptions::default().config(path));
    health_once(&server, &registrar, "registered");
    let log = registrar.log();
    let saved = format!(
        "{REGISTERED} sip:moh@onhold.test contact <sip:moh@127.0.0.1:{};transport=tcp>",
        tcp.port()
    );
    assert!(log.contains(&saved), "{log}");
    assert!(log.contains("over tcp"), "{log}");
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(10)).is_some());
    let log = registrar.log();
    assert!(
        log.contains("expires 0 over tcp"),
        "no removal at shutdown:\n{log}"
    );
}

/// The registrar grants 10 s of the 120 s asked: we refresh before they run out (at 90 %),
/// and after the registrar restarts (bindings forgotten) the next refresh registers again, so
/// calls through its location lookup reach us again.
fn an_md5_binding_is_refreshed_and_comes_back_after_a_registrar_restart(rt: Runtime) {
    let mut registrar = Proxy::registrar_capped("moh", PASSWORD, "MD5", 10);
    let dir = TempDir::new("register-refresh");
    let server = Server::start_with(
        rt,
        ServerOptions::default().config(config(&dir, &registrar, PASSWORD)),
    );
    health_once(&server, &registrar, "registered");
    let saved = |p: &Proxy| p.log().matches(REGISTERED).count();
    let refreshed = wait_for(Duration::from_secs(15), || {
        (saved(&registrar) >= 2).then_some(())
    });
    assert!(
        refreshed.is_some(),
        "no refresh within 15 s:\n{}",
        registrar.log()
    );

    registrar.restart();
    let again = wait_for(Duration::from_secs(15), || {
        (saved(&registrar) >= 1).then_some(())
    });
    assert!(
        again.is_some(),
        "not registered again:\n{}",
        registrar.log()
    );
    let rx = RtpReceiver::bind();
    let offer = dp750_offer(rx.addr(), "RTP/AVP", "0 8 101", 20, "sendrecv");
    let call = Caller::invite_to(registrar.front, "sip:moh@onhold.test", &offer, "");
    assert_eq!(call.status(), 200, "{}\n{}", call.answer, registrar.log());
    assert!(rx.wait_packets(10, Duration::from_secs(5)), "no music");
    assert_eq!(call.bye(), 200);
    assert_eq!(get(server.control, "/health").json()["status"], "ok");
}

fn a_wrong_password_leaves_health_degraded(rt: Runtime) {
    let registrar = Proxy::registrar("moh", PASSWORD, "MD5");
    let dir = TempDir::new("register");
    let server = Server::start_with(
        rt,
        ServerOptions::default().config(config(&dir, &registrar, "not-the-password")),
    );
    let health = health_once(&server, &registrar, "failed");
    assert_eq!(health["status"], "degraded", "{health}");
    let reasons = health["reasons"].to_string();
    assert!(
        reasons.contains("sip:moh@onhold.test is not registered"),
        "{reasons}"
    );
    assert!(reasons.contains("credentials refused"), "{reasons}");
    assert!(!registrar.log().contains(REGISTERED));
    // Retried after 5 s, then 10 s (each less up to a quarter), with the credentials at once:
    // the first attempt is two REGISTERs (challenged, refused), each retry one or two. A tight
    // loop would be hundreds.
    std::thread::sleep(Duration::from_secs(12));
    let registers = registrar.log().matches("REGISTER sip:").count();
    assert!(
        (3..=6).contains(&registers),
        "{registers} REGISTERs in 12 s:\n{}",
        registrar.log()
    );
    assert!(!server.stderr().contains("not-the-password"));
}
