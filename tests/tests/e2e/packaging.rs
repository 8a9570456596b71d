//! What is shipped: `--version`, the systemd unit under `systemd-analyze verify`, the statically
//! linked `onhold` alone in an empty root, and the container image the Dockerfile makes of that
//! binary. The last two answer a call placed by `onhold probe`.
//!
//! Tools: `systemd-analyze` (Debian `systemd`; without it the unit test skips, saying so),
//! `unshare` (util-linux), `podman` with `runc` (or a working Docker engine) and the musl
//! target (`rustup target add x86_64-unknown-linux-musl`); .ci/run installs them. A missing tool
//! fails its test; one that is there but refused by the kernel or the sandbox (no user
//! namespaces, a container engine that does not start) makes it skip with the reason printed.

use std::fs::{self, File};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use onhold_tests::server::options;
use onhold_tests::{binary, ports, static_binary, wait_for, wav, workspace_root, Runtime, TempDir};

/// A command's exit status and what it printed.
struct Ran {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn describe(&self) -> String {
        format!(
            "exit {}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` to completion (stdin null, output to files, so a grandchild holding a pipe open
/// cannot hang the test), killing it after `timeout`.
fn run(cmd: &mut Command, timeout: Duration) -> Result<Ran, String> {
    let what = format!("{cmd:?}");
    let dir = TempDir::new("cmd");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(File::create(dir.join("stdout")).map_err(|e| e.to_string())?)
        .stderr(File::create(dir.join("stderr")).map_err(|e| e.to_string())?)
        .spawn();
    let mut child = child.map_err(|e| format!("{what}: {e}"))?;
    let Some(status) = wait_for(timeout, || child.try_wait().ok().flatten()) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("{what} still running after {timeout:?}"));
    };
    Ok(Ran {
        status,
        stdout: fs::read_to_string(dir.join("stdout")).unwrap_or_default(),
        stderr: fs::read_to_string(dir.join("stderr")).unwrap_or_default(),
    })
}

/// `name` on `PATH`, or in the sbin directories a non-root `PATH` often lacks.
fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `git rev-parse --short=12 HEAD` of the workspace, when it is a git checkout.
fn git_head() -> Option<String> {
    let ran = run(
        Command::new("git")
            .current_dir(workspace_root())
            .args(["rev-parse", "--short=12", "HEAD"]),
        Duration::from_secs(10),
    )
    .ok()?;
    ran.status
        .success()
        .then(|| ran.stdout.trim().to_owned())
        .filter(|c| !c.is_empty())
}

/// Checks one `--version` line: `NAME VERSION (COMMIT)`, COMMIT being the workspace's HEAD
/// when there is one (the build script reruns when HEAD moves), else `unknown` or a hash.
fn check_version_line(line: &str, name: &str) {
    let prefix = format!("{name} {} (", env!("CARGO_PKG_VERSION"));
    let commit = line
        .trim()
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("--version printed {line:?}, expected {prefix}COMMIT)"));
    match git_head() {
        Some(head) => assert_eq!(commit, head, "--version printed {line:?}"),
        None => assert!(
            commit == "unknown" || commit.bytes().all(|b| b.is_ascii_hexdigit()),
            "--version printed {line:?}"
        ),
    }
}

/// Both binaries print `NAME 0.1.0 (COMMIT)` for `--version` and `-V`.
#[test]
fn version_names_the_package_version_and_commit() {
    for rt in Runtime::ALL {
        for flag in ["--version", "-V"] {
            let ran = run(Command::new(binary(rt)).arg(flag), Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(
                ran.status.success(),
                "{} {flag}: {}",
                rt.bin_name(),
                ran.describe()
            );
            check_version_line(&ran.stdout, rt.bin_name());
        }
    }
}

/// `packaging/onhold.service` keeps its hardening and passes `systemd-analyze verify` (on a
/// copy whose ExecStart names the binary just built: verify checks that the program exists).
/// Warnings do not change verify's exit code, so any line naming the unit fails the test too.
#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    let Some(analyze) = find_tool("systemd-analyze") else {
        eprintln!("SKIP systemd_unit_passes_systemd_analyze_verify: no systemd-analyze (Debian package systemd)");
        return;
    };
    let unit = fs::read_to_string(workspace_root().join("packaging/onhold.service"))
        .expect("read packaging/onhold.service");
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    for want in [
        "ExecStart=/usr/local/bin/onhold --config /etc/onhold/onhold.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "LimitNOFILE=65536",
        "DynamicUser=yes",
        "CapabilityBoundingSet=",
        "AmbientCapabilities=",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK",
        "SystemCallFilter=@system-service",
    ] {
        assert!(
            lines.contains(&want),
            "onhold.service lacks the line {want:?}"
        );
    }
    let dir = TempDir::new("unit");
    let built = binary(Runtime::Smol);
    let copy = unit.replace(
        "ExecStart=/usr/local/bin/onhold ",
        &format!("ExecStart={} ", built.display()),
    );
    let path = dir.join("onhold.service");
    fs::write(&path, copy).expect("write the unit's copy");
    let ran = run(
        Command::new(analyze)
            .current_dir(dir.path())
            .args(["verify", "--man=no"])
            .arg(&path),
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let output = format!("{}{}", ran.stdout, ran.stderr);
    assert!(
        ran.status.success(),
        "systemd-analyze verify: {}",
        ran.describe()
    );
    let about_unit: Vec<&str> = output
        .lines()
        .filter(|l| l.contains("onhold.service"))
        .collect();
    assert!(
        about_unit.is_empty(),
        "systemd-analyze verify warned about the unit:\n{}",
        about_unit.join("\n")
    );
    if !output.trim().is_empty() {
        eprintln!("systemd-analyze verify said (about other units):\n{output}");
    }
}

/// `onhold probe URI --calls 1 --duration 3s --json` as `cmd` (which names the program and
/// any prefix), bounded in time; asserts the call was healthy and returns its report.
fn probe_one_call(mut cmd: Command, uri: &str, what: &str) -> serde_json::Value {
    cmd.args(["probe", uri, "--calls", "1", "--duration", "3s"])
        .args(["--json", "--timeout", "5s"]);
    let ran = run(&mut cmd, Duration::from_secs(40)).unwrap_or_else(|e| panic!("{what}: {e}"));
    let report: serde_json::Value = serde_json::from_str(&ran.stdout)
        .unwrap_or_else(|e| panic!("{what}: probe JSON: {e}\n{}", ran.describe()));
    assert!(ran.status.success(), "{what}: {}", ran.describe());
    let num = |key: &str| -> f64 {
        report[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{what}: {key} is not a number in {report}"))
    };
    assert_eq!(num("calls_ok"), 1.0, "{what}: {report}");
    for zero in [
        "calls_failed",
        "seq_errors",
        "ts_errors",
        "marker_errors",
        "ssrc_changes",
        "pt_errors",
        "misdirected_packets",
    ] {
        assert_eq!(num(zero), 0.0, "{what}: {zero} in {report}");
    }
    // 3 s at 20 ms is 150 packets.
    assert!(
        num("packets_received") >= 140.0,
        "{what}: too few packets: {report}"
    );
    report
}

/// Waits until the server on `sip` answers OPTIONS with 200, failing early if `child` exits.
fn wait_answering(child: &mut Child, sip: SocketAddr, timeout: Duration, log: &Path) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            panic!(
                "exited with {st} before answering OPTIONS:\n{}",
                fs::read_to_string(log).unwrap_or_default()
            );
        }
        if let Some(resp) = options(sip, Duration::from_millis(200)) {
            assert!(resp.starts_with("SIP/2.0 200"), "OPTIONS got {resp}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no answer to OPTIONS on {sip} within {timeout:?}:\n{}",
            fs::read_to_string(log).unwrap_or_default()
        );
    }
}

/// A server process of a test, killed if the test ends without stopping it.
struct Running {
    child: Child,
    log: PathBuf,
}

impl Running {
    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_for(timeout, || self.child.try_wait().ok().flatten())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- server log ---\n{}--- end ---",
                fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

/// Runs its command (bounded) when dropped: removes what a test made outside its own
/// processes (an image, a container).
struct Cleanup(Command);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = run(&mut self.0, Duration::from_secs(30));
    }
}

/// The flags every packaged server here runs with: SIP on `sip`, a private RTP range, media
/// and Contact on loopback, a fixed seed (the default, a random one, reads /dev/urandom,
/// which a container and systemd's PrivateDevices provide but the empty root has not), and the
/// control API on a port of the kernel's choosing (tests run side by side on one loopback).
fn server_args(sip: SocketAddr) -> Vec<String> {
    let (low, high) = ports::rtp_range();
    [
        "--listen".to_owned(),
        format!("udp:{sip}"),
        "--rtp-ports".to_owned(),
        format!("{low}-{high}"),
        "--rtp-ip".to_owned(),
        "127.0.0.1".to_owned(),
        "--advertised-address".to_owned(),
        "127.0.0.1".to_owned(),
        "--seed".to_owned(),
        "7".to_owned(),
        "--control-listen".to_owned(),
        "127.0.0.1:0".to_owned(),
    ]
    .into()
}

/// A command with no `ONHOLD_*` or `RUST_LOG` from the test's environment.
fn clean_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_remove("RUST_LOG");
    for (k, _) in std::env::vars() {
        if k.starts_with("ONHOLD_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// The direct children of `pid`, from /proc.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            // /proc/P/stat: "P (comm) S PPID ..."; comm may hold spaces and parentheses.
            fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    let rest = &s[s.rfind(')')? + 1..];
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// The host name the empty root's /etc/hosts gives for 127.0.0.1.
const HOSTS_NAME: &str = "onhold-packaging-test";

/// The `unshare` prefix that runs a command in `root`, in new mount and PID namespaces as
/// root of a new user namespace; `--kill-child` takes the command down with `unshare`.
fn in_empty_root(unshare: &Path, root: &Path) -> Command {
    let mut cmd = clean_command(unshare);
    cmd.args([
        "--mount",
        "--pid",
        "--fork",
        "--map-root-user",
        "--kill-child",
    ])
    .arg(format!("--root={}", root.display()));
    cmd
}

/// The statically linked `onhold` in a root directory holding nothing but itself and
/// /etc/hosts (no dynamic loader, no libc, no /proc): it starts, answers a call placed from
/// outside, and its own probe reaches it by a name from that /etc/hosts (musl's getaddrinfo,
/// with no NSS modules to load). SIGTERM then drains and exits 0.
#[test]
fn static_binary_answers_a_call_alone_in_an_empty_root() {
    let unshare = find_tool("unshare").expect("no unshare (Debian package util-linux)");
    let bin = static_binary();
    let root = TempDir::new("root");
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(
        root.join("etc/hosts"),
        format!("127.0.0.1 localhost {HOSTS_NAME}\n"),
    )
    .unwrap();
    fs::copy(&bin, root.join("onhold")).expect("copy the static binary");

    let tried = run(
        in_empty_root(&unshare, root.path()).args(["/onhold", "--version"]),
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    if !tried.status.success() && tried.stderr.contains("unshare failed") {
        eprintln!(
            "SKIP static_binary_answers_a_call_alone_in_an_empty_root: the kernel refuses the \
             namespaces: {}",
            tried.stderr.trim()
        );
        return;
    }
    assert!(
        tried.status.success(),
        "onhold --version in the empty root: {}",
        tried.describe()
    );
    check_version_line(&tried.stdout, "onhold");

    let logs = TempDir::new("root-log");
    let log = logs.join("stderr");
    let sip: SocketAddr = ([127, 0, 0, 1], ports::free_udp_port()).into();
    let child = in_empty_root(&unshare, root.path())
        .arg("/onhold")
        .args(server_args(sip))
        .stdin(Stdio::null())
        .stdout(File::create(logs.join("stdout")).unwrap())
        .stderr(File::create(&log).unwrap())
        .spawn()
        .expect("spawn unshare");
    let mut server = Running {
        child,
        log: log.clone(),
    };
    wait_answering(&mut server.child, sip, Duration::from_secs(15), &log);

    probe_one_call(
        clean_command(binary(Runtime::Smol)),
        &format!("sip:moh@{sip}"),
        "probe from outside",
    );
    let mut inside = in_empty_root(&unshare, root.path());
    inside.arg("/onhold");
    probe_one_call(
        inside,
        &format!("sip:moh@{HOSTS_NAME}:{}", sip.port()),
        "the static binary's probe, by host name, in the empty root",
    );

    // unshare ignores SIGTERM while it waits; the server is its only child.
    let pids = children_of(server.child.id());
    assert_eq!(pids.len(), 1, "children of unshare: {pids:?}");
    // SAFETY: kill(2) on a process of this test's (the server under unshare).
    assert_eq!(
        unsafe { libc::kill(pids[0] as libc::pid_t, libc::SIGTERM) },
        0
    );
    let status = server
        .wait_exit(Duration::from_secs(15))
        .expect("still running 15 s after SIGTERM");
    assert_eq!(status.code(), Some(0), "exit after SIGTERM: {status}");
}

/// A container engine that runs images here, and the flags `run` needs on this host.
struct Engine {
    program: PathBuf,
    run_flags: Vec<String>,
}

/// Podman when installed (with runc when that is installed too: crun refuses a host whose
/// cgroup v2 hierarchy has controllers beside v1's), else Docker when its daemon answers.
/// `Err` is the reason to skip: an engine is there but cannot work here.
fn container_engine() -> Result<Engine, String> {
    // Root's default limits in a podman container (1,048,576 files, 4,194,304 processes) are
    // above what a process without CAP_SYS_RESOURCE may set, as in some sandboxes: ask for
    // what this process has.
    let mut nofile = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) writes the struct we pass.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut nofile) };
    let nofile = nofile.rlim_max.min(65_536);
    let limits = [
        "--ulimit".to_owned(),
        format!("nofile={nofile}:{nofile}"),
        "--ulimit".to_owned(),
        "nproc=4096:4096".to_owned(),
    ];
    if let Some(podman) = find_tool("podman") {
        let info = run(Command::new(&podman).arg("info"), Duration::from_secs(60))?;
        if !info.status.success() {
            return Err(format!("podman info: {}", info.describe()));
        }
        let mut run_flags = limits.to_vec();
        if let Some(runc) = find_tool("runc") {
            run_flags.push(format!("--runtime={}", runc.display()));
        }
        return Ok(Engine {
            program: podman,
            run_flags,
        });
    }
    let docker = find_tool("docker")
        .expect("no container engine: install podman and runc (Debian packages; .ci/run does)");
    let info = run(Command::new(&docker).arg("info"), Duration::from_secs(60))?;
    if !info.status.success() {
        return Err(format!("docker info: {}", info.describe()));
    }
    Ok(Engine {
        program: docker,
        run_flags: limits.to_vec(),
    })
}

/// The Dockerfile's image, its builder stage stood in for by the static binary built here
/// (`--build-context builder=DIR` with DIR/out/onhold; the real builder needs a Rust image
/// from a registry): one layer, a non-root user, the ports and the /music volume. Run with
/// host networking and music mounted at /music, it answers a call, plays the mounted music,
/// and drains and exits 0 on `stop`.
#[test]
fn container_image_answers_a_call() {
    let engine = match container_engine() {
        Ok(e) => e,
        Err(why) => {
            eprintln!("SKIP container_image_answers_a_call: no working container engine: {why}");
            return;
        }
    };
    let program = &engine.program;
    let bin = static_binary();
    let builder = TempDir::new("builder");
    fs::create_dir_all(builder.join("out")).unwrap();
    fs::copy(&bin, builder.join("out/onhold")).expect("copy the static binary");
    let tag = format!("localhost/onhold-e2e:{}", std::process::id());
    let mut rmi = Command::new(program);
    rmi.args(["rmi", "--force", &tag]);
    let _rmi = Cleanup(rmi);
    let root = workspace_root();
    let built = run(
        Command::new(program)
            .arg("build")
            .arg(format!(
                "--build-context=builder={}",
                builder.path().display()
            ))
            .arg("--file")
            .arg(root.join("Dockerfile"))
            .args(["--tag", &tag])
            .arg(&root),
        Duration::from_secs(300),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(built.status.success(), "image build: {}", built.describe());

    let inspected = run(
        Command::new(program).args(["image", "inspect", "--format", "{{json .}}", &tag]),
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        inspected.status.success(),
        "inspect: {}",
        inspected.describe()
    );
    let image: serde_json::Value =
        serde_json::from_str(&inspected.stdout).expect("image inspect JSON");
    // Podman prints a list of one image here, Docker the image.
    let image = image.get(0).unwrap_or(&image);
    let config = &image["Config"];
    assert_eq!(config["User"], "10001:10001", "{config}");
    assert_eq!(
        config["Entrypoint"],
        serde_json::json!(["/usr/local/bin/onhold"]),
        "{config}"
    );
    for port in ["5060/udp", "5060/tcp"] {
        assert!(
            config["ExposedPorts"].get(port).is_some(),
            "{port}: {config}"
        );
    }
    assert!(config["Volumes"].get("/music").is_some(), "{config}");
    let layers = image["RootFS"]["Layers"].as_array().map_or(0, Vec::len);
    assert_eq!(layers, 1, "FROM scratch and one COPY: {}", image["RootFS"]);

    let version = run(
        Command::new(program)
            .args(["run", "--rm", "--network=host"])
            .args(&engine.run_flags)
            .args([&tag, "--version"]),
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        version.status.success(),
        "--version: {}",
        version.describe()
    );
    check_version_line(&version.stdout, "onhold");

    let music = TempDir::new("music");
    wav::write_sine(&music.join("tone.wav"), 440.0, 2.0);
    let logs = TempDir::new("container-log");
    let log = logs.join("stderr");
    let name = format!("onhold-e2e-{}", std::process::id());
    let sip: SocketAddr = ([127, 0, 0, 1], ports::free_udp_port()).into();
    let child = Command::new(program)
        .args(["run", "--rm", "--network=host", "--name", &name])
        .args(&engine.run_flags)
        .arg(format!("--volume={}:/music:ro", music.path().display()))
        .args(["--env", "ONHOLD_MUSIC=/music", &tag])
        .args(server_args(sip))
        .stdin(Stdio::null())
        .stdout(File::create(logs.join("stdout")).unwrap())
        .stderr(File::create(&log).unwrap())
        .spawn()
        .expect("spawn the container");
    let mut server = Running {
        child,
        log: log.clone(),
    };
    // Declared after `server`, so dropped before it: the container goes, then its `run`.
    let mut rm = Command::new(program);
    rm.args(["rm", "--force", &name]);
    let _rm = Cleanup(rm);
    wait_answering(&mut server.child, sip, Duration::from_secs(60), &log);
    let started = fs::read_to_string(&log).unwrap_or_default();
    assert!(
        started.contains("2.0s of audio"),
        "the server did not load the 2 s file in /music:\n{started}"
    );

    probe_one_call(
        clean_command(binary(Runtime::Smol)),
        &format!("sip:moh@{sip}"),
        "probe against the container",
    );

    let stopped = run(
        Command::new(program).args(["stop", "--time=15", &name]),
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(stopped.status.success(), "stop: {}", stopped.describe());
    let status = server
        .wait_exit(Duration::from_secs(30))
        .expect("the container's run still going 30 s after stop");
    assert_eq!(
        status.code(),
        Some(0),
        "container exit after stop: {status}"
    );
}
