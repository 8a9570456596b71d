//! The server binaries under test, built once per test process.
//!
//! `cargo test` does not build other packages' binaries for this crate, so the first test that
//! needs one runs `cargo build -p onhold -p onhold-mio` for the profile and target directory the
//! test executable itself was built in (`target/<profile>/deps/<test>-<hash>`). Cargo releases
//! the build-directory lock before it runs test executables, so this nested build does not
//! deadlock (checked with `cargo test --release`); when nothing changed it takes a fraction of a
//! second.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::{workspace_root, Runtime};

/// Upper bound for the nested build (a cold release build of the workspace on 2 cores takes
/// a few minutes).
const BUILD_TIMEOUT: Duration = Duration::from_secs(1200);

/// The path of `rt`'s binary, built (once per process) for the current profile.
pub fn binary(rt: Runtime) -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BUILT.get_or_init(build) {
        Ok(dir) => dir.join(rt.bin_name()),
        Err(e) => panic!("{e}"),
    }
}

/// `(target dir, profile dir name)` of the running test executable.
fn profile_of_this_test() -> Result<(PathBuf, String), String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("{} is not in target/<profile>/deps", exe.display()))?;
    let target_dir = profile_dir
        .parent()
        .ok_or_else(|| format!("{} has no target dir", profile_dir.display()))?;
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("odd profile dir {}", profile_dir.display()))?;
    Ok((target_dir.to_path_buf(), profile.to_owned()))
}

/// The target of the statically linked `onhold` that the Dockerfile ships.
pub const STATIC_TARGET: &str = "x86_64-unknown-linux-musl";

static STATIC_BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// The path of `onhold` built for [`STATIC_TARGET`] (statically linked, as in the container
/// image) for the current profile. Needs the target's standard library (`rustup target add
/// x86_64-unknown-linux-musl`; .ci/run adds it).
///
/// Where that is installed, the build runs together with the servers' (in [`binary`]), before
/// any end-to-end test starts a server: a cold build takes minutes of both cores, and the tests
/// that judge packet timing must not run beside it.
pub fn static_binary() -> PathBuf {
    binary(Runtime::Smol);
    match STATIC_BUILT.get_or_init(build_static) {
        Ok(p) => p.clone(),
        Err(e) => panic!("{e}"),
    }
}

fn build_static() -> Result<PathBuf, String> {
    let dir = build_into(
        &["-p", "onhold", "--target", STATIC_TARGET],
        Some(STATIC_TARGET),
    )
    .map_err(|e| format!("{e}\n(the static build needs `rustup target add {STATIC_TARGET}`)"))?;
    let p = dir.join("onhold");
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!("built, but {} is missing", p.display()))
    }
}

/// Whether rustc has the standard library for [`STATIC_TARGET`].
fn static_target_installed() -> bool {
    let out = Command::new("rustc")
        .current_dir(workspace_root())
        .args(["--print", "target-libdir", "--target", STATIC_TARGET])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => {
            Path::new(String::from_utf8_lossy(&o.stdout).trim()).is_dir()
        }
        _ => false,
    }
}

fn build() -> Result<PathBuf, String> {
    let dir = build_into(&["-p", "onhold", "-p", "onhold-mio"], None)?;
    for rt in Runtime::ALL {
        let p = dir.join(rt.bin_name());
        if !p.is_file() {
            return Err(format!("built, but {} is missing", p.display()));
        }
    }
    if static_target_installed() {
        STATIC_BUILT.get_or_init(build_static);
    }
    Ok(dir)
}

/// Runs `cargo build ARGS` for this test's profile and target directory; returns the directory
/// the binaries land in (`target/[TARGET/]PROFILE`).
fn build_into(args: &[&str], target: Option<&str>) -> Result<PathBuf, String> {
    let (target_dir, profile) = profile_of_this_test()?;
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(workspace_root())
        .args(["build", "--quiet"])
        .args(args)
        .arg("--target-dir")
        .arg(&target_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    match profile.as_str() {
        // `dev` and `test` build into debug/, `release` and `bench` into release/.
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        p => {
            cmd.args(["--profile", p]);
        }
    }
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run cargo build: {e}"))?;
    let stderr = child.stderr.take();
    // Drain stderr on a thread so a chatty build cannot block on a full pipe.
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut e) = stderr {
            let _ = std::io::Read::read_to_string(&mut e, &mut s);
        }
        s
    });
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            break st;
        }
        if started.elapsed() > BUILD_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "cargo build {} took over {BUILD_TIMEOUT:?}",
                args.join(" ")
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = reader.join().unwrap_or_default();
    if !status.success() {
        return Err(format!(
            "cargo build {} failed ({status}):\n{log}",
            args.join(" ")
        ));
    }
    let dir = match target {
        Some(t) => target_dir.join(t),
        None => target_dir,
    };
    Ok(dir.join(&profile))
}
