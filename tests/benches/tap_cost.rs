//! What recording and listening in cost, measured on the real binaries: `CALLS` calls whose
//! callers each send 20 ms PCMU packets for `SECONDS`, run three ways side by side — plain,
//! every call recorded (`record = true`), every call listened to (`GET …/listen`, read as fast
//! as it comes) — and the server's CPU time (utime + stime from `/proc/PID/stat`) over the
//! window, per call-second. The difference from the plain run is the price of the tap.
//!
//! `cargo bench -p onhold-tests --bench tap_cost` (knobs: `CALLS`, default 50; `SECONDS`,
//! default 10).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use onhold_probe::bench::{cpu_ticks, ms_per_tick};
use onhold_tests::caller::Caller;
use onhold_tests::http::get;
use onhold_tests::{RtpReceiver, Runtime, Server, ServerOptions, TempDir};

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Plain,
    Recorded,
    Listened,
}

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The server's CPU time so far (user + system), from `/proc/PID/stat`.
fn cpu(pid: u32) -> Duration {
    let ticks = cpu_ticks(&format!("/proc/{pid}/stat")).expect("stat");
    Duration::from_secs_f64(ticks as f64 * ms_per_tick() / 1000.0)
}

/// CPU milliseconds per call-second of `rt` in `mode`.
fn run(rt: Runtime, mode: Mode, calls: usize, seconds: u64) -> f64 {
    let dir = TempDir::new("tap-cost");
    let config = dir.join("onhold.toml");
    let record = if mode == Mode::Recorded {
        format!(
            "record_dir = {:?}\n[classes.default]\nrecord = true\n",
            dir.join("calls").display().to_string()
        )
    } else {
        String::new()
    };
    std::fs::write(&config, record).unwrap();
    let server = Server::start_with(rt, ServerOptions::default().config(config));
    let rx = RtpReceiver::bind();
    let callers: Vec<Caller> = (0..calls)
        .map(|_| Caller::call(server.sip, rx.addr()))
        .collect();
    let list = get(server.control, "/api/calls").json();
    let calls_json = list["calls"].as_array().unwrap().clone();
    let targets: Vec<SocketAddr> = calls_json
        .iter()
        .map(|c| c["local_rtp"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(targets.len(), calls);
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    if mode == Mode::Listened {
        for c in &calls_json {
            let id = c["id"].as_str().unwrap().to_string();
            let control = server.control;
            let stop = Arc::clone(&stop);
            readers.push(std::thread::spawn(move || {
                let mut s = TcpStream::connect(control).unwrap();
                let head = format!("GET /api/calls/{id}/listen HTTP/1.1\r\nHost: x\r\n\r\n");
                s.write_all(head.as_bytes()).unwrap();
                s.set_read_timeout(Some(Duration::from_millis(200)))
                    .unwrap();
                let mut buf = [0u8; 16384];
                let mut total = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    match s.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => total += n,
                        Err(_) => {}
                    }
                }
                total
            }));
        }
    }
    // One sender for every call: a packet to each every 20 ms, on an absolute schedule.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let payload: Vec<u8> = (0..160).map(|i| if i % 8 < 4 { 0x80 } else { 0 }).collect();
    let start_cpu = cpu(server.pid());
    let t0 = Instant::now();
    let packets = seconds * 50;
    for k in 0..packets {
        for (i, to) in targets.iter().enumerate() {
            let mut p = vec![0x80, 0, (k >> 8) as u8, k as u8];
            p.extend_from_slice(&((k as u32) * 160).to_be_bytes());
            p.extend_from_slice(&(i as u32 + 1).to_be_bytes());
            p.extend_from_slice(&payload);
            let _ = sock.send_to(&p, to);
        }
        let due = t0 + Duration::from_millis(20 * (k + 1));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let used = cpu(server.pid()) - start_cpu;
    let wall = t0.elapsed();
    stop.store(true, Ordering::Relaxed);
    let heard: usize = readers.into_iter().map(|r| r.join().unwrap()).sum();
    if mode == Mode::Listened {
        // 16-bit PCM at 8 kHz: 16,000 bytes a second per call, less what the window missed.
        let expected = calls as f64 * wall.as_secs_f64() * 16_000.0;
        assert!(
            heard as f64 > expected * 0.8,
            "listeners read {heard} bytes, about {expected:.0} were sent"
        );
    }
    for c in &callers {
        c.bye();
    }
    used.as_secs_f64() * 1000.0 / (calls as f64 * wall.as_secs_f64())
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let calls = knob("CALLS", 50) as usize;
    let seconds = knob("SECONDS", 10);
    println!(
        "{calls} calls, callers sending PCMU/20 ms, {seconds} s; server CPU ms per call-second"
    );
    println!(
        "{:<11} {:>8} {:>10} {:>10} {:>10} {:>10}",
        "binary", "plain", "recorded", "Δ", "listened", "Δ"
    );
    for rt in [Runtime::Mio, Runtime::Smol] {
        let plain = run(rt, Mode::Plain, calls, seconds);
        let recorded = run(rt, Mode::Recorded, calls, seconds);
        let listened = run(rt, Mode::Listened, calls, seconds);
        println!(
            "{:<11} {plain:>8.3} {recorded:>10.3} {:>+10.3} {listened:>10.3} {:>+10.3}",
            rt.bin_name(),
            recorded - plain,
            listened - plain,
        );
    }
}
