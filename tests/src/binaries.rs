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

fn build() -> Result<PathBuf, String> {
    let (target_dir, profile) = profile_of_this_test()?;
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(workspace_root())
        .args(["build", "--quiet", "-p", "onhold", "-p", "onhold-mio"])
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
                "cargo build of the servers took over {BUILD_TIMEOUT:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = reader.join().unwrap_or_default();
    if !status.success() {
        return Err(format!(
            "cargo build of onhold/onhold-mio failed ({status}):\n{log}"
        ));
    }
    let dir = target_dir.join(&profile);
    for rt in Runtime::ALL {
        let p = dir.join(rt.bin_name());
        if !p.is_file() {
            return Err(format!("built, but {} is missing", p.display()));
        }
    }
    Ok(dir)
}
