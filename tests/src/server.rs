//! A server binary running on loopback, stopped (SIGTERM, then SIGKILL) when dropped.

use std::fs::File;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::{binary, ports, Runtime, TempDir};

/// How long a server may take from exec to answering OPTIONS.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a dropped server gets after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(5);

/// What to start the server with, beyond the loopback addresses the harness chooses.
#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    /// Extra command-line flags.
    pub args: Vec<String>,
    /// A configuration file to pass with `--config`.
    pub config: Option<PathBuf>,
    /// `--log-level` (default `info`).
    pub log_level: Option<String>,
    /// Where the control API listens (default: a free loopback port).
    pub control: Option<SocketAddr>,
}

impl ServerOptions {
    pub fn arg(mut self, a: impl Into<String>) -> ServerOptions {
        self.args.push(a.into());
        self
    }

    pub fn config(mut self, path: PathBuf) -> ServerOptions {
        self.config = Some(path);
        self
    }

    /// Put the control API at `addr` (a server started again where a client knows it).
    pub fn control(mut self, addr: SocketAddr) -> ServerOptions {
        self.control = Some(addr);
        self
    }

    /// Log at `level` (`debug` shows what the runtime does with connections) instead of `info`.
    pub fn log_level(mut self, level: &str) -> ServerOptions {
        self.log_level = Some(level.to_owned());
        self
    }
}

pub struct Server {
    pub runtime: Runtime,
    /// Where it takes SIP over UDP.
    pub sip: SocketAddr,
    /// Its control API (HTTP).
    pub control: SocketAddr,
    pub rtp_ports: (u16, u16),
    child: Child,
    dir: TempDir,
}

impl Server {
    /// Starts `rt` with default options; panics (with its stderr) if it does not come up.
    pub fn start(rt: Runtime) -> Server {
        Server::start_with(rt, ServerOptions::default())
    }

    /// Starts `rt` on a free loopback SIP port and RTP range and waits until it answers OPTIONS.
    /// A port taken between choosing and binding is retried with another one.
    pub fn start_with(rt: Runtime, opts: ServerOptions) -> Server {
        let mut last = String::new();
        for _ in 0..5 {
            match Server::try_start(rt, &opts) {
                Ok(s) => return s,
                Err(e) if e.contains("in use") => last = e,
                Err(e) => panic!("{} did not start: {e}", rt.bin_name()),
            }
        }
        panic!("{} did not start after 5 tries: {last}", rt.bin_name());
    }

    fn try_start(rt: Runtime, opts: &ServerOptions) -> Result<Server, String> {
        let dir = TempDir::new(rt.bin_name());
        let sip: SocketAddr = ([127, 0, 0, 1], ports::free_udp_port()).into();
        let rtp_ports = ports::rtp_range();
        let control = opts
            .control
            .unwrap_or_else(|| ([127, 0, 0, 1], ports::free_tcp_port()).into());
        let mut cmd = Command::new(binary(rt));
        cmd.args(["--listen", &sip.to_string()])
            .args(["--control-listen", &control.to_string()])
            .args(["--rtp-ports", &format!("{}-{}", rtp_ports.0, rtp_ports.1)])
            .args(["--rtp-ip", "127.0.0.1", "--advertised-address", "127.0.0.1"])
            .args(["--seed", "7"])
            .args(["--log-level", opts.log_level.as_deref().unwrap_or("info")]);
        if let Some(c) = &opts.config {
            cmd.arg("--config").arg(c);
        }
        cmd.args(&opts.args)
            // The server's settings come from flags and the file only.
            .env_remove("ONHOLD_CONFIG")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(File::create(dir.join("stdout")).map_err(|e| e.to_string())?)
            .stderr(File::create(dir.join("stderr")).map_err(|e| e.to_string())?);
        for (k, _) in std::env::vars() {
            if k.starts_with("ONHOLD_") {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", binary(rt).display()))?;
        let mut server = Server {
            runtime: rt,
            sip,
            control,
            rtp_ports,
            child,
            dir,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(st) = server.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!(
                    "exited with {st} before answering: {}",
                    server.stderr()
                ));
            }
            if let Some(resp) = options(sip, Duration::from_millis(200)) {
                if resp.starts_with("SIP/2.0 200") {
                    return Ok(server);
                }
                return Err(format!("OPTIONS got {:?}", resp.lines().next()));
            }
        }
        Err(format!(
            "no answer to OPTIONS within {READY_TIMEOUT:?}: {}",
            server.stderr()
        ))
    }

    /// `sip:123@127.0.0.1:PORT`
    pub fn uri(&self, user: &str) -> String {
        format!("sip:{user}@{}", self.sip)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the server wrote to stderr so far (its log).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the pid of our own child, which has not been reaped (we hold it).
        let r = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(r, 0, "kill({}, {sig})", self.child.id());
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        crate::wait_for(timeout, || self.child.try_wait().ok().flatten())
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.is_running() {
            self.signal(libc::SIGTERM);
            if self.wait_exit(TERM_GRACE).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        if std::thread::panicking() {
            eprintln!(
                "--- {} stderr ---\n{}--- end ---",
                self.runtime.bin_name(),
                self.stderr()
            );
        }
    }
}

/// A configuration file in `dir` with the built-in music as class `default` and a class `name`
/// that plays `music`.
pub fn config_with_class(dir: &TempDir, name: &str, music: &std::path::Path) -> PathBuf {
    let config = dir.join("onhold.toml");
    let text = format!(
        "[classes.default]\n\n[classes.{name}]\nmusic = {:?}\n",
        music.display().to_string()
    );
    std::fs::write(&config, text).expect("write the configuration");
    config
}

/// Sends one out-of-dialog OPTIONS and returns the response text, if one came in `timeout`.
pub fn options(to: SocketAddr, timeout: Duration) -> Option<String> {
    request(to, "OPTIONS", timeout)
}

/// Sends one out-of-dialog request of `method` (no body) and returns the response text, if
/// one came in `timeout`.
pub fn request(to: SocketAddr, method: &str, timeout: Duration) -> Option<String> {
    let sock = UdpSocket::bind("127.0.0.1:0").ok()?;
    let me = sock.local_addr().ok()?;
    sock.set_read_timeout(Some(timeout)).ok()?;
    let msg = format!(
        "{method} sip:ping@{to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bK{port}ping;rport\r\n\
         From: <sip:probe@{me}>;tag={port}\r\n\
         To: <sip:ping@{to}>\r\n\
         Call-ID: ready-{port}@127.0.0.1\r\n\
         CSeq: 1 {method}\r\n\
         Max-Forwards: 70\r\n\
         User-Agent: onhold-tests\r\n\
         Content-Length: 0\r\n\r\n",
        port = me.port()
    );
    sock.send_to(msg.as_bytes(), to).ok()?;
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Runs `rt` with `args` (no harness defaults) to completion, bounded by `timeout`;
/// returns its exit status and stderr. For start-up failures (bad config, bad music).
pub fn run_to_exit(rt: Runtime, args: &[&str], timeout: Duration) -> (ExitStatus, String) {
    let dir = TempDir::new("oneshot");
    let mut cmd = Command::new(binary(rt));
    cmd.args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(dir.join("stderr")).expect("stderr file"));
    for (k, _) in std::env::vars() {
        if k.starts_with("ONHOLD_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd.spawn().expect("spawn server");
    let status = crate::wait_for(timeout, || child.try_wait().ok().flatten());
    let status = match status {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} {args:?} still running after {timeout:?}; expected it to exit",
                rt.bin_name()
            );
        }
    };
    let stderr = std::fs::read_to_string(dir.join("stderr")).unwrap_or_default();
    (status, stderr)
}
