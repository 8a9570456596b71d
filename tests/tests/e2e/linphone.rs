//! Linphone as a user sets it up: an account on onhold (it registers), a call to
//! `sip:123@…`, the music heard, the call hung up — `linphonec` (Debian `linphone-cli`) driven
//! headless through its command prompt.
//!
//! linphonec runs with a HOME of its own and "soundcard use files": what it plays to the
//! speaker (the RTP it received, decoded) is recorded to a WAV file, which must not be silent.
//! Without linphonec the test says so and passes, except under `CI=true`, where `.ci/run`
//! installs it and its absence is a failure.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use onhold_tests::wav::read_pcm16;
use onhold_tests::{both_runtimes, ports, wait_for, Runtime, Server, TempDir};

both_runtimes!(linphone_registers_calls_hears_the_music_and_hangs_up);

/// The `linphonec` on PATH, or `None` when the test may skip (not found, and not in CI).
fn linphonec() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("linphonec"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "linphonec is not installed (Debian package linphone-cli); CI must run this test"
        );
        eprintln!("skipping: linphonec is not installed (Debian package linphone-cli)");
    }
    found
}

/// A running linphonec: commands go to its prompt, its answers to `stdout` in `dir`.
struct Linphone {
    child: Child,
    stdin: ChildStdin,
    dir: PathBuf,
}

impl Linphone {
    /// linphonec with an account on `server` (registering at once), its SIP on `sip_port`.
    fn start(bin: &Path, dir: &Path, server: &Server, sip_port: u16) -> Linphone {
        let home = dir.join("home");
        // Its call history and chat database live here; without the folder it starts anyway,
        // logging an error for every call.
        std::fs::create_dir_all(home.join(".local/share/linphone")).unwrap();
        let rc = dir.join("linphonerc");
        std::fs::write(
            &rc,
            format!(
                "[sip]\nsip_port={sip_port}\nsip_tcp_port=0\nsip_tls_port=0\ndefault_proxy=0\n\
                 register_only_when_network_is_up=0\n\
                 [rtp]\naudio_rtp_port=-1\n\
                 [sound]\nechocancellation=0\n\
                 [proxy_0]\nreg_proxy=<sip:{sip};transport=udp>\n\
                 reg_identity=sip:alice@{ip}\nreg_expires=3600\nreg_sendregister=1\npublish=0\n",
                sip = server.sip,
                ip = server.sip.ip(),
            ),
        )
        .unwrap();
        let mut child = Command::new(bin)
            .arg("-c")
            .arg(&rc)
            .args(["-d", "4", "-l"])
            .arg(dir.join("linphone.log"))
            .env("HOME", &home)
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .stdin(Stdio::piped())
            .stdout(File::create(dir.join("stdout")).unwrap())
            .stderr(File::create(dir.join("stderr")).unwrap())
            .spawn()
            .expect("spawn linphonec");
        let stdin = child.stdin.take().expect("piped stdin");
        Linphone {
            child,
            stdin,
            dir: dir.to_path_buf(),
        }
    }

    fn send(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").expect("linphonec takes commands");
        self.stdin.flush().unwrap();
    }

    fn output(&self) -> String {
        std::fs::read_to_string(self.dir.join("stdout")).unwrap_or_default()
    }

    /// Waits up to `timeout` for `needle` in what linphonec printed.
    fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        wait_for(timeout, || self.output().contains(needle).then_some(())).is_some()
    }

    fn transcript(&self) -> String {
        format!(
            "--- linphonec stdout ---\n{}\n--- linphonec log: {} ---",
            self.output(),
            self.dir.join("linphone.log").display()
        )
    }
}

impl Drop for Linphone {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        let exited = wait_for(Duration::from_secs(5), || {
            self.child.try_wait().ok().flatten()
        });
        if exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn linphone_registers_calls_hears_the_music_and_hangs_up(rt: Runtime) {
    let Some(bin) = linphonec() else {
        return;
    };
    let server = Server::start(rt);
    let dir = TempDir::new("linphone");
    let mut phone = Linphone::start(&bin, dir.path(), &server, ports::free_udp_port());
    let recording = dir.join("heard.wav");
    phone.send("soundcard use files");
    phone.send(&format!("record {}", recording.display()));

    // Registered: onhold answered the REGISTER 200 (`registered=-1` until then, 0 on failure).
    let registered = wait_for(Duration::from_secs(10), || {
        phone.send("status register");
        std::thread::sleep(Duration::from_millis(200));
        phone
            .output()
            .contains("registered, identity=sip:alice@")
            .then_some(())
    });
    assert!(
        registered.is_some(),
        "not registered\n{}",
        phone.transcript()
    );

    phone.send(&format!("call {}", server.uri("123")));
    assert!(
        phone.wait_for("connected.", Duration::from_secs(10)),
        "the call was not answered\n{}",
        phone.transcript()
    );
    // Our answer is sendonly: to the phone the far end holds the call and plays to it.
    assert!(
        phone.wait_for("has been paused by", Duration::from_secs(5)),
        "{}",
        phone.transcript()
    );
    std::thread::sleep(Duration::from_secs(3));
    phone.send("terminate");
    assert!(
        phone.wait_for("ended (", Duration::from_secs(10)),
        "the call did not end\n{}",
        phone.transcript()
    );
    // The server saw the caller's BYE (the log line comes from the logging thread).
    let ended = wait_for(Duration::from_secs(3), || {
        server.stderr().contains("reason=RemoteBye").then_some(())
    });
    assert!(ended.is_some(), "server log:\n{}", server.stderr());
    drop(phone);

    // Over 3 s of a call at 8 kHz or more; the built-in music is loud, silence (or comfort
    // noise) is not.
    let samples = read_pcm16(&recording).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        samples.len() >= 2 * 8000,
        "only {} samples recorded",
        samples.len()
    );
    let mean_square =
        samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / samples.len() as f64;
    let rms = mean_square.sqrt();
    assert!(
        rms > 1000.0,
        "the recording is (nearly) silent: RMS {rms:.0}"
    );
}
