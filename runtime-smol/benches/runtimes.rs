//! Both runtimes side by side in one run: `onhold probe` places 200 calls × 10 s against
//! `onhold` (smol) and then `onhold-mio`, and this prints the probe's pacing figures and the
//! server's CPU time per stream-second from /proc/PID/stat.
//!
//! `cargo bench -p onhold --bench runtimes` (env ONHOLD_BENCH_CALLS / ONHOLD_BENCH_SECS to
//! change the load). Loopback only; every wait is bounded.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `onhold-mio` lives in another package: build it (release) next to `onhold`.
fn mio_binary(onhold: &str) -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "-p",
            "onhold-mio",
            "--bin",
            "onhold-mio",
        ])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building onhold-mio failed");
    PathBuf::from(onhold).with_file_name("onhold-mio")
}

/// (utime, stime) of a process, in milliseconds.
fn cpu_ms(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // fields after the parenthesised command name; utime and stime are fields 14 and 15
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let ms = |i: usize| f[i].parse::<f64>().unwrap() * 1000.0 / hz;
    (ms(11), ms(12))
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
    }
}

fn json_number(json: &serde_json::Value, key: &str) -> f64 {
    json[key]
        .as_f64()
        .unwrap_or_else(|| panic!("probe JSON lacks a number {key}: {json}"))
}

struct Figures {
    healthy: bool,
    calls_ok: f64,
    loss_pct: f64,
    p99_us: f64,
    max_us: f64,
    cpu_ms_per_stream_s: f64,
    /// The user-space part: on loopback the kernel part also carries the receiver's delivery
    /// (softirq) and wake-ups, which a real network moves to another host.
    user_ms_per_stream_s: f64,
}

fn measure(binary: &str, onhold: &str, calls: u64, secs: u64, base_port: u16) -> Figures {
    let port = free_udp_port();
    let sip: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let child = Command::new(binary)
        .args([
            "--listen",
            &sip.to_string(),
            "--rtp-ports",
            &format!("{base_port}-{}", base_port + 2 * calls as u16 + 100),
        ])
        .args([
            "--max-calls",
            &(calls + 10).to_string(),
            "--log-level",
            "warn",
            // Measured alone; 127.0.0.1:8080 may be another server's.
            "--control-listen",
            "off",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("server starts");
    let server = Server(child);
    std::thread::sleep(Duration::from_millis(500));
    let before = cpu_ms(server.0.id());
    let rate = (calls / 4).max(1);
    let out = Command::new(onhold)
        .args([
            "probe",
            &format!("sip:123@{sip}"),
            "--calls",
            &calls.to_string(),
            "--rate",
            &rate.to_string(),
        ])
        .args(["--duration", &format!("{secs}s"), "--json"])
        .stderr(Stdio::null())
        .output()
        .expect("probe runs");
    let after = cpu_ms(server.0.id());
    drop(server);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("probe JSON: {e}: {}", String::from_utf8_lossy(&out.stdout)));
    Figures {
        healthy: json["healthy"] == true,
        calls_ok: json_number(&json, "calls_ok"),
        loss_pct: json_number(&json, "loss_pct"),
        p99_us: json_number(&json, "interarrival_p99_us"),
        max_us: json_number(&json, "interarrival_max_us"),
        // the CPU window also covers call set-up and teardown: a slight overestimate
        cpu_ms_per_stream_s: (after.0 + after.1 - before.0 - before.1) / (calls * secs) as f64,
        user_ms_per_stream_s: (after.0 - before.0) / (calls * secs) as f64,
    }
}

fn main() {
    let calls = env_or("ONHOLD_BENCH_CALLS", 200);
    let secs = env_or("ONHOLD_BENCH_SECS", 10);
    let onhold = env!("CARGO_BIN_EXE_onhold");
    let mio = mio_binary(onhold);
    println!("{calls} calls × {secs} s on loopback, measured by `onhold probe` (|inter-arrival − ptime|)");
    println!(
        "{:<12} {:>8} {:>8} {:>10} {:>10} {:>16} {:>17} {:>8}",
        "runtime",
        "calls ok",
        "loss %",
        "p99 µs",
        "max µs",
        "CPU ms/stream-s",
        "user ms/stream-s",
        "healthy"
    );
    let mut rows = Vec::new();
    for (name, bin, port) in [
        ("onhold", onhold.to_string(), 40000u16),
        ("onhold-mio", mio.display().to_string(), 44000),
    ] {
        let f = measure(&bin, onhold, calls, secs, port);
        println!(
            "{:<12} {:>8} {:>8.3} {:>10} {:>10} {:>16.4} {:>17.4} {:>8}",
            name,
            f.calls_ok,
            f.loss_pct,
            f.p99_us,
            f.max_us,
            f.cpu_ms_per_stream_s,
            f.user_ms_per_stream_s,
            f.healthy
        );
        rows.push(f);
    }
    println!(
        "ratio smol/mio: p99 {:.2}×, CPU per stream-second {:.2}×, user CPU {:.2}×",
        rows[0].p99_us / rows[1].p99_us.max(1.0),
        rows[0].cpu_ms_per_stream_s / rows[1].cpu_ms_per_stream_s.max(1e-9),
        rows[0].user_ms_per_stream_s / rows[1].user_ms_per_stream_s.max(1e-9)
    );
}
