//! Smoke tests shared by both server binaries (`onhold` and `onhold-mio` include this file):
//! start the real binary on a loopback port chosen by the OS, talk SIP to it, signal it, and
//! check exit codes and the one-line configuration errors. Every wait is bounded.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use onhold_probe::msg::Message;

/// A running server whose stderr lines are collected on a thread.
pub struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Server {
    /// Start `bin` on `127.0.0.1:0` and wait (≤ 10 s) for its start-up line.
    pub fn start(bin: &str, extra: &[&str]) -> (Server, SocketAddr) {
        let mut child = Command::new(bin)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            // By environment, so that a test's own flags override them; the control API on a
            // port of the kernel's choosing (the tests run side by side).
            .env("ONHOLD_SHUTDOWN_GRACE", "0s")
            .env("ONHOLD_CONTROL_LISTEN", "127.0.0.1:0")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the server binary");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            lines: rx,
            seen: Vec::new(),
        };
        let line = server
            .wait_for_line("listening udp:", Duration::from_secs(10))
            .unwrap_or_else(|| panic!("no start-up line; stderr: {:?}", server.seen));
        let addr = line
            .split("listening udp:")
            .nth(1)
            .and_then(|rest| rest.split([' ', ';']).next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no bound address in {line:?}"));
        (server, addr)
    }

    pub fn wait_for_line(&mut self, needle: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return Some(l.clone());
        }
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(needle) {
                        return Some(l);
                    }
                }
                Err(_) => return None,
            }
        }
        None
    }

    pub fn signal(&self, signo: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, signo) };
        assert_eq!(rc, 0, "kill failed");
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Wait ≤ `limit` for the exit; kill and fail the test if it does not come.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "server did not exit within {limit:?}; stderr: {:?}",
                    self.seen
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn options(to: SocketAddr, from: SocketAddr, call_id: &str) -> String {
    format!(
        "OPTIONS sip:moh@{to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {from};branch=z9hG4bK{call_id};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:smoke@{from}>;tag=1928301774\r\n\
         To: <sip:moh@{to}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Accept: application/sdp\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// Start, send garbage and an OPTIONS, then SIGTERM: the server must still be up after the
/// garbage, answer the OPTIONS with 200 from the listen address, and exit 0 soon after the signal.
pub fn options_then_sigterm_exits_zero(bin: &str) {
    let (mut server, addr) = Server::start(bin, &[]);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    client.send_to(b"\x00\x01 not sip at all", addr).unwrap();
    let call_id = format!("smoke-{}", std::process::id());
    let request = options(addr, client.local_addr().unwrap(), &call_id);
    client.send_to(request.as_bytes(), addr).unwrap();
    let mut buf = [0u8; 4096];
    let (n, from) = client
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("no OPTIONS answer ({e}); stderr: {:?}", server.seen));
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert_eq!(from, addr, "answer comes from the listen address");
    assert!(
        answer.starts_with("SIP/2.0 200"),
        "OPTIONS answer: {answer}"
    );
    assert!(
        answer.contains(&call_id),
        "answer echoes the Call-ID: {answer}"
    );
    assert!(
        server.is_running(),
        "server died on input: {:?}",
        server.seen
    );
    server.signal(libc::SIGTERM);
    let status = server.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "stderr: {:?}", server.seen);
    assert!(
        server
            .wait_for_line("SIGTERM", Duration::from_secs(1))
            .is_some(),
        "the shutdown is logged: {:?}",
        server.seen
    );
}

/// The text of the first SIP message `want` accepts, waiting at most `limit`.
fn recv_sip(
    sock: &UdpSocket,
    limit: Duration,
    mut want: impl FnMut(&Message<'_>) -> bool,
) -> String {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 8192];
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_else(|| panic!("no awaited SIP message within {limit:?}"));
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            if Message::parse(&buf[..n]).is_some_and(|m| want(&m)) {
                return String::from_utf8_lossy(&buf[..n]).into_owned();
            }
        }
    }
}

/// A whole call through the real loop: INVITE with SDP → 200 with an answer naming an RTP port
/// the runtime bound → ACK → paced PCMU on our RTP socket (contiguous seq, one SSRC) → SIGTERM →
/// the server BYEs the call, we answer, it reports drained and exits 0.
pub fn call_gets_paced_rtp_and_shutdown_byes_it(bin: &str) {
    let dir = temp_dir(bin, "call");
    let music = dir.join("tone.wav");
    std::fs::write(&music, wav_tone(16000, 16000)).unwrap();
    let (mut server, addr) = Server::start(
        bin,
        &[
            "--rtp-ip",
            "127.0.0.1",
            "--shutdown-grace",
            "3s",
            "--music",
            music.to_str().unwrap(),
        ],
    );
    let sip = UdpSocket::bind("127.0.0.1:0").unwrap();
    let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = sip.local_addr().unwrap();
    let rtp_port = rtp.local_addr().unwrap().port();
    let call_id = format!("smoke-call-{}@127.0.0.1", std::process::id());
    let sdp = format!(
        "v=0\r\no=smoke 8000 8000 IN IP4 127.0.0.1\r\ns=SIP Call\r\nc=IN IP4 127.0.0.1\r\n\
         t=0 0\r\nm=audio {rtp_port} RTP/AVP 0 101\r\na=sendrecv\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\n"
    );
    let invite = format!(
        "INVITE sip:moh@{addr} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bK1001;rport\r\n\
         From: <sip:smoke@{me}>;tag=1001\r\n\
         To: <sip:moh@{addr}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:smoke@{me}>\r\n\
         Max-Forwards: 70\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    sip.send_to(invite.as_bytes(), addr).unwrap();
    let ok = recv_sip(&sip, Duration::from_secs(5), |m| m.code() == Some(200));
    let answer = Message::parse(ok.as_bytes()).expect("the 200 is SIP");
    let to = answer.header("To").expect("To");
    assert!(to.contains("tag="), "200 carries a To-tag: {ok}");
    let m_line = ok
        .lines()
        .find(|l| l.starts_with("m=audio "))
        .expect("SDP answer");
    let server_rtp: u16 = m_line.split(' ').nth(1).unwrap().parse().unwrap();
    assert_ne!(server_rtp, 0, "{ok}");
    let target = answer.contact_uri().expect("Contact");
    let ack = format!(
        "ACK {target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bK1002;rport\r\n\
         From: <sip:smoke@{me}>;tag=1001\r\n\
         To: {to}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 ACK\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    );
    sip.send_to(ack.as_bytes(), addr).unwrap();

    // One second of media.
    rtp.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut packets: Vec<(u16, u32, u32, u8)> = Vec::new();
    let mut payload_bytes = std::collections::BTreeSet::new();
    let mut buf = [0u8; 2048];
    let start = Instant::now();
    let mut last_error = None;
    while start.elapsed() < Duration::from_secs(1) {
        let (n, from) = match rtp.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                last_error = Some(e);
                break;
            }
        };
        assert_eq!(
            from.port(),
            server_rtp,
            "RTP comes from the port in the answer"
        );
        assert!(n >= 12 + 160, "a 20 ms PCMU frame: {n} bytes");
        assert_eq!(buf[0] >> 6, 2, "RTP version 2");
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let ts = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        packets.push((seq, ts, ssrc, buf[1] & 0x7f));
        payload_bytes.extend(buf[12..n].iter().copied());
    }
    // 50 are due; a loaded 2-core CI box may lose a few to scheduling, never most of them.
    assert!(
        packets.len() >= 30,
        "only {} RTP packets in 1 s (receive error: {last_error:?}); stderr: {:?}",
        packets.len(),
        server.seen
    );
    assert!(
        packets.len() <= 60,
        "{} RTP packets in 1 s: pacing runs fast",
        packets.len()
    );
    for w in packets.windows(2) {
        assert_eq!(
            w[1].0,
            w[0].0.wrapping_add(1),
            "contiguous sequence numbers"
        );
        assert_eq!(w[1].2, w[0].2, "one SSRC per call");
        assert_eq!(
            w[1].1.wrapping_sub(w[0].1) % 160,
            0,
            "timestamps on the 20 ms grid"
        );
        assert_eq!(w[1].3, 0, "PCMU, the offered payload type");
    }

    // The configured tone, not the built-in music or silence: a 440 Hz sine in µ-law takes
    // many distinct byte values.
    assert!(
        payload_bytes.len() > 20,
        "payload looks like silence: {payload_bytes:?}"
    );

    server.signal(libc::SIGTERM);
    let bye = recv_sip(&sip, Duration::from_secs(3), |m| m.method() == Some("BYE"));
    let bye = Message::parse(bye.as_bytes()).expect("the BYE is SIP");
    assert_eq!(bye.call_id(), Some(call_id.as_str()));
    let mut reply = String::from("SIP/2.0 200 OK\r\n");
    for h in ["Via", "From", "To", "Call-ID", "CSeq"] {
        for v in bye.headers_named(h) {
            reply.push_str(&format!("{h}: {v}\r\n"));
        }
    }
    reply.push_str("Content-Length: 0\r\n\r\n");
    sip.send_to(reply.as_bytes(), addr).unwrap();
    let status = server.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "stderr: {:?}", server.seen);
    assert!(
        server
            .wait_for_line("every call has ended", Duration::from_secs(1))
            .is_some(),
        "exit after Drained, not after the grace: {:?}",
        server.seen
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// SIP over TCP: a CRLFCRLF keep-alive gets a CRLF pong (RFC 5626 §3.5.1), and an OPTIONS
/// split across two writes is reassembled and answered with 200 on the same connection.
/// Another program holds most of the RTP range: the core asks for port after port until one
/// binds, and the 200 names that one (no INVITE waits for an unrelated wake-up).
pub fn rtp_ports_held_by_other_programs_are_skipped(bin: &str) {
    // Eight ports (four RTP/RTCP pairs); the first three pairs held by us. Retry elsewhere if
    // some other process has one of them.
    let (base, _held) = (0..50)
        .find_map(|i| {
            let base = 20_000 + ((std::process::id() as u16 % 500) * 16 + i * 16) % 10_000;
            let held: Option<Vec<UdpSocket>> = (0..6)
                .map(|k| UdpSocket::bind(("127.0.0.1", base + k)).ok())
                .collect();
            let free_pair = UdpSocket::bind(("127.0.0.1", base + 6)).is_ok()
                && UdpSocket::bind(("127.0.0.1", base + 7)).is_ok();
            held.filter(|_| free_pair).map(|h| (base, h))
        })
        .expect("a free block of eight ports");
    let range = format!("{base}-{}", base + 7);
    let (mut server, addr) = Server::start(bin, &["--rtp-ip", "127.0.0.1", "--rtp-ports", &range]);
    let sip = UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = sip.local_addr().unwrap();
    let sdp = "v=0\r\no=t 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
               m=audio 9 RTP/AVP 0\r\na=recvonly\r\n";
    let invite = format!(
        "INVITE sip:moh@{addr} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK77;rport\r\n\
         From: <sip:t@{me}>;tag=77\r\nTo: <sip:moh@{addr}>\r\nCall-ID: ports-{}@t\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:t@{me}>\r\nMax-Forwards: 70\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        std::process::id(),
        sdp.len()
    );
    sip.send_to(invite.as_bytes(), addr).unwrap();
    let ok = recv_sip(&sip, Duration::from_secs(5), |m| m.code() == Some(200));
    let m_line = ok
        .lines()
        .find(|l| l.starts_with("m=audio "))
        .expect("SDP answer");
    assert_eq!(
        m_line.split(' ').nth(1),
        Some((base + 6).to_string().as_str()),
        "{ok}"
    );
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(10)).success());
}

pub fn tcp_options_and_keepalive(bin: &str) {
    use std::io::{Read, Write};
    let (mut server, _) = Server::start(bin, &["--listen", "tcp:127.0.0.1:0"]);
    let line = server
        .wait_for_line("listening udp:", Duration::from_secs(1))
        .unwrap();
    let tcp_addr: SocketAddr = line
        .split(" tcp:")
        .nth(1)
        .and_then(|rest| rest.split([' ', ';']).next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no tcp address in {line:?}"));
    let mut conn = std::net::TcpStream::connect(tcp_addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let me = conn.local_addr().unwrap();
    let call_id = format!("smoke-tcp-{}", std::process::id());
    let request = options(tcp_addr, me, &call_id).replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    conn.write_all(b"\r\n\r\n").unwrap();
    conn.write_all(&request.as_bytes()[..40]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    conn.write_all(&request.as_bytes()[40..]).unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
        let text = String::from_utf8_lossy(&got);
        if text.contains("Content-Length") && text.ends_with("\r\n\r\n") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(
        text.starts_with("\r\nSIP/2.0 200"),
        "pong, then 200: {text:?}"
    );
    assert!(text.contains(&call_id), "{text}");
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(5)).code(), Some(0));
}

/// SIGTERM while garbage floods the SIP port: the signal must not wait behind the datagrams.
pub fn sigterm_during_a_flood_still_exits(bin: &str) {
    let (mut server, addr) = Server::start(bin, &[]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flooders: Vec<_> = (0..2)
        .map(|_| {
            let stop = std::sync::Arc::clone(&stop);
            std::thread::spawn(move || {
                let s = UdpSocket::bind("127.0.0.1:0").unwrap();
                let junk = [b'x'; 200];
                let deadline = Instant::now() + Duration::from_secs(10);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline
                {
                    let _ = s.send_to(&junk, addr);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    server.signal(libc::SIGTERM);
    let status = server.wait_exit(Duration::from_secs(5));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for f in flooders {
        f.join().unwrap();
    }
    assert_eq!(status.code(), Some(0), "stderr: {:?}", server.seen);
}

/// SIGHUP re-reads `log_level` from the file: debug lines appear only after the reload.
pub fn sighup_applies_log_level(bin: &str) {
    let dir = temp_dir(bin, "loglevel");
    let file = dir.join("onhold.toml");
    std::fs::write(&file, "log_level = \"info\"\n").unwrap();
    let (mut server, addr) = Server::start(bin, &["--config", file.to_str().unwrap()]);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.send_to(b"garbage before", addr).unwrap();
    assert!(
        server
            .wait_for_line("DEBUG", Duration::from_millis(300))
            .is_none(),
        "no debug lines at info: {:?}",
        server.seen
    );
    std::fs::write(&file, "log_level = \"debug\"\n").unwrap();
    server.signal(libc::SIGHUP);
    assert!(
        server
            .wait_for_line("reload: music:", Duration::from_secs(5))
            .is_some(),
        "{:?}",
        server.seen
    );
    // Any datagram now produces a debug line (the core reports the drop).
    client.send_to(b"garbage after", addr).unwrap();
    assert!(
        server
            .wait_for_line("DEBUG", Duration::from_secs(3))
            .is_some(),
        "debug lines after the reload: {:?}",
        server.seen
    );
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(5)).code(), Some(0));
    let _ = std::fs::remove_dir_all(dir);
}

/// SIGHUP reloads the music; with the music file gone: one error line, the old music stays,
/// and the server still shuts down cleanly afterwards.
pub fn failed_reload_keeps_running(bin: &str) {
    let dir = temp_dir(bin, "reload");
    let music = dir.join("hold.wav");
    std::fs::write(&music, wav_tone(8000, 4000)).unwrap();
    let (mut server, _) = Server::start(bin, &["--music", music.to_str().unwrap()]);
    // A good reload first: the file is read again and the new music reported.
    std::fs::write(&music, wav_tone(8000, 8000)).unwrap();
    server.signal(libc::SIGHUP);
    let ok = server.wait_for_line("reload: music:", Duration::from_secs(5));
    assert!(ok.is_some(), "no reload line: {:?}", server.seen);
    std::fs::remove_file(&music).unwrap();
    server.signal(libc::SIGHUP);
    let line = server.wait_for_line("reload failed", Duration::from_secs(5));
    let line = line.unwrap_or_else(|| panic!("no reload failure line: {:?}", server.seen));
    assert!(
        line.contains("keeping the old music") && line.contains("hold.wav"),
        "{line}"
    );
    assert!(server.is_running());
    server.signal(libc::SIGINT);
    assert_eq!(server.wait_exit(Duration::from_secs(5)).code(), Some(0));
    let _ = std::fs::remove_dir_all(dir);
}

/// A bad flag, a bad file and a bad environment value each exit 2 with exactly one line.
pub fn bad_config_exits_two_with_one_line(bin: &str) {
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = Command::new(bin)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["--ptime", "7"], &[]);
    assert_eq!(code, Some(2));
    assert_eq!(
        err,
        "config: ptime = 7: must be 10–60 ms in steps of 10 (from --ptime)\n"
    );

    let dir = temp_dir(bin, "badconf");
    let file = dir.join("onhold.toml");
    std::fs::write(&file, "listen = [\"127.0.0.1:0\"]\nlog_format = \"xml\"\n").unwrap();
    let (code, err) = run(&["--config", file.to_str().unwrap()], &[]);
    assert_eq!(code, Some(2));
    assert_eq!(
        err,
        format!(
            "config: log_format = \"xml\": must be human or json (in {})\n",
            file.display()
        )
    );

    let (code, err) = run(
        &["--listen", "127.0.0.1:0"],
        &[("ONHOLD_MAX_CALLS", "none")],
    );
    assert_eq!(code, Some(2));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("config: max_calls = none: "), "{err}");

    let missing = dir.join("absent.toml");
    let (code, err) = run(&["--config", missing.to_str().unwrap()], &[]);
    assert_eq!(code, Some(2));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("config: config = ") && err.contains("absent.toml"),
        "{err}"
    );

    let (code, err) = run(
        &[
            "--music",
            dir.join("nope").to_str().unwrap(),
            "--check-config",
        ],
        &[],
    );
    assert_eq!(code, Some(2));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("music: ") && err.contains("nope"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

/// `--check-config` prints every key (flags > env > file > defaults) and exits 0.
pub fn check_config_prints_effective_configuration(bin: &str) {
    let dir = temp_dir(bin, "check");
    let file = dir.join("onhold.toml");
    std::fs::write(&file, "ptime = 30\nmax_calls = 5\n").unwrap();
    let out = Command::new(bin)
        .args([
            "--config",
            file.to_str().unwrap(),
            "--check-config",
            "--max-calls",
            "9",
        ])
        .env("ONHOLD_PTIME", "40")
        .env("ONHOLD_PTME", "20")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: ignoring unknown environment variable ONHOLD_PTME"),
        "a misspelt variable is pointed out: {stderr}"
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("ptime = 40"), "{text}");
    assert!(text.contains("max_calls = 9"), "{text}");
    for key in [
        "listen",
        "rtp_ports",
        "codecs",
        "shutdown_grace",
        "seed",
        "log_format",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{key} = "))),
            "{key}: {text}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A mono 16-bit PCM WAV of `samples` samples of a 440 Hz tone at `rate`.
pub fn wav_tone(rate: u32, samples: u32) -> Vec<u8> {
    let data_len = samples * 2;
    let mut w = Vec::with_capacity(44 + data_len as usize);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data_len).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes()); // PCM
    w.extend_from_slice(&1u16.to_le_bytes()); // mono
    w.extend_from_slice(&rate.to_le_bytes());
    w.extend_from_slice(&(rate * 2).to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..samples {
        let phase = 2.0 * std::f64::consts::PI * 440.0 * f64::from(i) / f64::from(rate);
        w.extend_from_slice(&((phase.sin() * 8000.0) as i16).to_le_bytes());
    }
    w
}

fn temp_dir(bin: &str, tag: &str) -> PathBuf {
    let name = std::path::Path::new(bin)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let d = std::env::temp_dir().join(format!("{name}-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The smoke tests for one binary: `smoke_tests!(env!("CARGO_BIN_EXE_<name>"), "<name>")`.
#[macro_export]
macro_rules! smoke_tests {
    ($bin:expr, $name:literal) => {
        const BIN: &str = $bin;

        #[test]
        fn rtp_ports_held_by_other_programs_are_skipped() {
            support::rtp_ports_held_by_other_programs_are_skipped(BIN);
        }

        #[test]
        fn options_then_sigterm_exits_zero() {
            support::options_then_sigterm_exits_zero(BIN);
        }

        #[test]
        fn call_gets_paced_rtp_and_shutdown_byes_it() {
            support::call_gets_paced_rtp_and_shutdown_byes_it(BIN);
        }

        #[test]
        fn tcp_options_and_keepalive() {
            support::tcp_options_and_keepalive(BIN);
        }

        #[test]
        fn sigterm_during_a_flood_still_exits() {
            support::sigterm_during_a_flood_still_exits(BIN);
        }

        #[test]
        fn sighup_applies_log_level() {
            support::sighup_applies_log_level(BIN);
        }

        #[test]
        fn failed_reload_keeps_running() {
            support::failed_reload_keeps_running(BIN);
        }

        #[test]
        fn bad_config_exits_two_with_one_line() {
            support::bad_config_exits_two_with_one_line(BIN);
        }

        #[test]
        fn check_config_prints_effective_configuration() {
            support::check_config_prints_effective_configuration(BIN);
        }

        #[test]
        fn version_names_the_binary() {
            let out = std::process::Command::new(BIN)
                .arg("--version")
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(0));
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(text.starts_with(concat!($name, " ")), "{text}");
        }

        #[test]
        fn probe_is_a_subcommand() {
            let out = std::process::Command::new(BIN)
                .args(["probe", "--help"])
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(0));
            let help = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(help.contains(concat!("Usage: ", $name, " probe")), "{help}");
        }
    };
}
