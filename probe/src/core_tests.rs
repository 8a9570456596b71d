//! The probe against the real core `Server` on loopback: the fakes show the probe catches
//! faults, these show it and the core agree on all three DP750 shapes.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::*;

/// The real core (`onhold_core::Server`) on loopback sockets, driven the way a runtime would:
/// every datagram and timeout in, every transmit out. RTP ports are acknowledged without being
/// bound (all RTP leaves from one socket: the probe judges the stream, not the source port).
struct CoreServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for CoreServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn core_server() -> CoreServer {
    use onhold_core::media::Library;
    use onhold_core::{Command, Server, ServerConfig, TransmitKind, Transport, MAX_DATAGRAM};
    use std::time::SystemTime;

    let sip = UdpSocket::bind("127.0.0.1:0").unwrap();
    let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sip.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let handle = std::thread::spawn(move || {
        let config = ServerConfig {
            advertised: Some(addr.ip()),
            rtp_ip: addr.ip(),
            ..ServerConfig::default()
        };
        let mut server = Server::new(
            config,
            Arc::new(Library::silence()),
            7,
            Instant::now(),
            SystemTime::now(),
        );
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut out = vec![0u8; MAX_DATAGRAM];
        let deadline = Instant::now() + Duration::from_secs(10);
        while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
            let now = Instant::now();
            let wait = server
                .poll_timeout()
                .map_or(Duration::from_millis(5), |t| {
                    t.saturating_duration_since(now)
                })
                .clamp(Duration::from_micros(200), Duration::from_millis(5));
            sip.set_read_timeout(Some(wait)).unwrap();
            if let Ok((n, from)) = sip.recv_from(&mut buf) {
                server.handle_datagram(Instant::now(), Transport::Udp, addr, from, &buf[..n]);
            }
            let now = Instant::now();
            if server.poll_timeout().is_some_and(|t| t <= now) {
                server.handle_timeout(now);
            }
            while let Some(cmd) = server.poll_command() {
                if let Command::BindRtp { port, .. } = cmd {
                    server.rtp_bind_result(now, port, true);
                }
            }
            while let Some(t) = server.poll_transmit(now, &mut out) {
                let sock = match t.kind {
                    TransmitKind::Sip => &sip,
                    _ => &rtp,
                };
                let _ = sock.send_to(&out[..t.len], t.remote);
            }
            while server.poll_event().is_some() {}
        }
    });
    CoreServer {
        addr,
        stop,
        handle: Some(handle),
    }
}

fn core_args(server: &CoreServer, shape: Shape) -> ProbeArgs {
    ProbeArgs {
        target: format!("sip:moh@{}", server.addr),
        duration: Duration::from_millis(800),
        calls: 2,
        rate: 20.0,
        shape,
        json: false,
        local_ip: "127.0.0.1".parse().unwrap(),
        held_ip: None,
        timeout: Duration::from_secs(2),
        shared_sip_port: false,
        send_rtp: false,
    }
}

#[test]
fn the_core_server_passes_the_probe_own_address() {
    let server = core_server();
    let s = execute(&core_args(&server, Shape::Own)).unwrap();
    assert!(s.healthy(), "{}", s.text());
}

#[test]
fn the_core_server_passes_the_probe_held_party() {
    let server = core_server();
    let s = execute(&core_args(&server, Shape::HeldParty)).unwrap();
    assert!(s.healthy(), "{}", s.text());
}

#[test]
fn the_core_server_tells_dialogs_from_one_sip_port_apart() {
    let server = core_server();
    let mut a = core_args(&server, Shape::Own);
    a.calls = 3;
    a.shared_sip_port = true;
    let s = execute(&a).unwrap();
    assert!(s.healthy(), "{}", s.text());
}

#[test]
fn the_core_server_passes_the_probe_late_offer() {
    let server = core_server();
    let s = execute(&core_args(&server, Shape::LateOffer)).unwrap();
    assert!(s.healthy(), "{}", s.text());
}
