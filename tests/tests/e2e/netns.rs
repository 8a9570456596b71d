//! onhold on a real link, which loopback hides: network namespaces made by the test itself
//! (`ip netns`, veth pairs, and a MASQUERADE NAT in a namespace of its own).
//!
//! - The server listens on `0.0.0.0`; the caller, in another namespace, calls
//!   `sip:moh@onhold.test` (a name its /etc/hosts maps to the server's address on that link).
//!   The answer's Contact must name the address the INVITE was sent to (read from IP_PKTINFO),
//!   or the ACK goes nowhere and no music plays.
//! - The caller sits behind a NAT and names its private address in SDP; it sends RTP as a phone
//!   does (`onhold probe --send-rtp`). The server latches to where that RTP comes from (the
//!   NAT), the only way its music gets back through.
//!
//! Needs root (CAP_NET_ADMIN) and `ip`/`iptables`; where the kernel refuses to make a namespace
//! the tests say so and pass without running.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use onhold_tests::{binary, both_runtimes, wait_for, Runtime, TempDir};

both_runtimes!(
    a_caller_on_another_host_calling_a_name_hears_the_music,
    a_caller_behind_a_nat_hears_the_music_through_latching,
);

fn ip(args: &[&str]) -> Result<(), String> {
    run("ip", args)
}

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Network namespaces, removed (with their veths and /etc/netns files) on drop.
struct Namespaces {
    names: Vec<String>,
}

impl Namespaces {
    /// `count` new namespaces with loopback up, or why the kernel refused.
    fn new(tag: &str, count: usize) -> Result<Namespaces, String> {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let mut ns = Namespaces { names: Vec::new() };
        for k in 0..count {
            let name = format!("oh{tag}{}-{n}-{k}", std::process::id());
            ip(&["netns", "add", &name])?;
            ns.names.push(name.clone());
            ip(&["-n", &name, "link", "set", "lo", "up"])?;
        }
        Ok(ns)
    }

    fn name(&self, k: usize) -> &str {
        &self.names[k]
    }

    /// A veth pair between namespaces `a` and `b`, addressed `a_addr` and `b_addr` (CIDR).
    fn link(&self, a: usize, a_addr: &str, b: usize, b_addr: &str) -> Result<(), String> {
        let (va, vb) = (
            format!("v{}a{a}{b}", self.id()),
            format!("v{}b{a}{b}", self.id()),
        );
        ip(&[
            "link",
            "add",
            &va,
            "netns",
            self.name(a),
            "type",
            "veth",
            "peer",
            "name",
            &vb,
            "netns",
            self.name(b),
        ])?;
        for (ns, dev, addr) in [(a, &va, a_addr), (b, &vb, b_addr)] {
            ip(&["-n", self.name(ns), "addr", "add", addr, "dev", dev])?;
            ip(&["-n", self.name(ns), "link", "set", dev, "up"])?;
        }
        Ok(())
    }

    /// A short id for device names (at most 15 bytes each).
    fn id(&self) -> String {
        let name = &self.names[0];
        let h = name
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
        format!("{:x}", h % 0xfffff)
    }

    /// Run `program args` inside namespace `k`, stderr to `log`.
    fn spawn(&self, k: usize, program: &PathBuf, args: &[String], log: &PathBuf) -> Child {
        Command::new("ip")
            .args(["netns", "exec", self.name(k)])
            .arg(program)
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).expect("log file"))
            .spawn()
            .expect("ip netns exec")
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = ip(&["netns", "del", name]);
            let _ = std::fs::remove_dir_all(format!("/etc/netns/{name}"));
        }
    }
}

/// Namespaces, or `None` after printing why this machine cannot make them.
fn namespaces(tag: &str, count: usize) -> Option<Namespaces> {
    match Namespaces::new(tag, count) {
        Ok(ns) => Some(ns),
        Err(e) => {
            eprintln!("skipped: cannot make network namespaces here ({e})");
            None
        }
    }
}

/// The server, in namespace `k`, on `0.0.0.0:5060`; waits for its start-up line.
fn start_server(ns: &Namespaces, k: usize, rt: Runtime, dir: &TempDir) -> (Child, PathBuf) {
    let log = dir.join("server.log");
    let args: Vec<String> = [
        "--listen",
        "udp:0.0.0.0:5060",
        "--rtp-ports",
        "20000-20099",
        "--log-level",
        "debug",
        "--seed",
        "7",
    ]
    .map(String::from)
    .to_vec();
    let mut child = ns.spawn(k, &binary(rt), &args, &log);
    let up = wait_for(Duration::from_secs(10), || {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|l| l.contains("listening"))
    });
    if up.is_none() {
        let _ = child.kill();
        panic!(
            "server did not start:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    (child, log)
}

/// `onhold probe TARGET ARGS…` in namespace `k`, bounded; its JSON report and the exit status.
fn probe(ns: &Namespaces, k: usize, target: &str, args: &[&str], dir: &TempDir) -> (bool, String) {
    let mut all = vec![
        "probe".to_string(),
        target.to_string(),
        "--duration".into(),
        "3s".into(),
        "--timeout".into(),
        "5s".into(),
        "--json".into(),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    let mut child = ns.spawn(k, &binary(Runtime::Smol), &all, &dir.join("probe.log"));
    let start = Instant::now();
    let status = wait_for(Duration::from_secs(30), || child.try_wait().ok().flatten());
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("probe still running after {:?}", start.elapsed());
    };
    let mut json = String::new();
    if let Some(mut out) = child.stdout.take() {
        use std::io::Read;
        let _ = out.read_to_string(&mut json);
    }
    (status.success(), json)
}

/// SIGTERM (the log is flushed on the way out), then SIGKILL if it has not exited in 10 s; the
/// server's log.
fn stop(mut server: Child, log: &PathBuf) -> String {
    let _ = run("kill", &["-TERM", &server.id().to_string()]);
    if wait_for(Duration::from_secs(10), || server.try_wait().ok().flatten()).is_none() {
        let _ = server.kill();
        let _ = server.wait();
    }
    std::fs::read_to_string(log).unwrap_or_default()
}

/// The probe's call was healthy and heard at least 2 s of music (3 s placed).
fn assert_heard_music(ok: bool, json: &str, log: &str) {
    assert!(ok, "probe failed: {json}\nserver log:\n{log}");
    let report: serde_json::Value = serde_json::from_str(json).expect("probe JSON");
    assert_eq!(report["calls_ok"], 1, "{json}");
    assert!(report["packets_received"].as_u64() >= Some(100), "{json}");
}

/// Two namespaces on one link; the caller's /etc/hosts maps `onhold.test` to the server.
fn a_caller_on_another_host_calling_a_name_hears_the_music(rt: Runtime) {
    let Some(ns) = namespaces("l", 2) else {
        return;
    };
    // Each test's namespaces are network stacks of their own: the addresses never collide.
    let (server_ip, caller_ip) = ("10.77.0.1".to_string(), "10.77.0.2".to_string());
    ns.link(0, &format!("{server_ip}/24"), 1, &format!("{caller_ip}/24"))
        .expect("veth link");
    let hosts = PathBuf::from(format!("/etc/netns/{}", ns.name(1)));
    std::fs::create_dir_all(&hosts).expect("/etc/netns");
    std::fs::write(
        hosts.join("hosts"),
        format!("127.0.0.1 localhost\n{server_ip} onhold.test\n"),
    )
    .expect("hosts");
    let dir = TempDir::new("netns-name");
    let (server, log) = start_server(&ns, 0, rt, &dir);
    let (ok, json) = probe(
        &ns,
        1,
        "sip:moh@onhold.test:5060",
        &["--local-ip", &caller_ip],
        &dir,
    );
    let log = stop(server, &log);
    assert_heard_music(ok, &json, &log);
    // The call started: the ACK reached the Contact, which named the address the INVITE was
    // sent to (a Contact of 127.0.0.1 would have left the call waiting for its ACK).
    assert!(
        log.contains("call started") && log.contains(&format!("remote_sip={caller_ip}")),
        "{log}"
    );
    assert!(!log.contains("AckTimeout"), "{log}");
}

/// Caller (192.168.77.2) — NAT (MASQUERADE) — server: the SDP names the private address, which
/// the server cannot reach; the caller's RTP arrives from the NAT, and the stream latches there.
fn a_caller_behind_a_nat_hears_the_music_through_latching(rt: Runtime) {
    let Some(ns) = namespaces("n", 3) else {
        return;
    };
    let (server_ip, nat_ip) = ("10.78.0.1".to_string(), "10.78.0.2".to_string());
    ns.link(0, &format!("{server_ip}/24"), 1, &format!("{nat_ip}/24"))
        .expect("server–NAT link");
    ns.link(1, "192.168.77.1/24", 2, "192.168.77.2/24")
        .expect("NAT–caller link");
    ip(&[
        "-n",
        ns.name(2),
        "route",
        "add",
        "default",
        "via",
        "192.168.77.1",
    ])
    .expect("route");
    let nat = ns.name(1);
    run(
        "ip",
        &[
            "netns",
            "exec",
            nat,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ],
    )
    .expect("forwarding");
    if let Err(e) = run(
        "ip",
        &[
            "netns",
            "exec",
            nat,
            "iptables",
            "-t",
            "nat",
            "-A",
            "POSTROUTING",
            "-s",
            "192.168.77.0/24",
            "-j",
            "MASQUERADE",
        ],
    ) {
        eprintln!("skipped: no NAT here ({e})");
        return;
    }
    let dir = TempDir::new("netns-nat");
    let (server, log) = start_server(&ns, 0, rt, &dir);
    let target = format!("sip:moh@{server_ip}:5060");
    let (ok, json) = probe(
        &ns,
        2,
        &target,
        &["--local-ip", "192.168.77.2", "--send-rtp"],
        &dir,
    );
    let log = stop(server, &log);
    assert_heard_music(ok, &json, &log);
    assert!(
        log.contains("latched") && log.contains(&format!("remote_rtp={nat_ip}:")),
        "the stream latched to the NAT's address:\n{log}"
    );
}
