//! Puts the git commit into `--version` (`onhold 0.1.0 (0123456789ab)`): `ONHOLD_BUILD_COMMIT`
//! for the crate is `git rev-parse --short=12 HEAD`, or, where that fails (a source tarball, a
//! Docker build without `.git`), the `ONHOLD_GIT_COMMIT` environment variable, else `unknown`.
//!
//! The script reruns only when `HEAD`, the branch it points to or `packed-refs` changes (or the
//! variable does), so an ordinary edit does not rebuild the runtime for it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn main() {
    println!("cargo:rerun-if-env-changed=ONHOLD_GIT_COMMIT");
    let commit = git(&["rev-parse", "--short=12", "HEAD"])
        .filter(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_hexdigit()))
        .or_else(|| {
            std::env::var("ONHOLD_GIT_COMMIT")
                .ok()
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    for path in watched_git_files() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    println!("cargo:rustc-env=ONHOLD_BUILD_COMMIT={commit}");
}

/// `HEAD`, the loose ref it names (or, before that ref has a file of its own, the directory it
/// will appear in) and `packed-refs`: what a commit, checkout or fetch rewrites. A path that does
/// not exist would make cargo rerun the script on every build, so only existing ones are given.
fn watched_git_files() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    let Some(head) = git_path("HEAD") else {
        return paths;
    };
    paths.push(head);
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(r) = git_path(&branch) {
            if r.exists() {
                paths.push(r);
            } else if let Some(dir) = r.parent().filter(|d| d.exists()) {
                paths.push(dir.to_path_buf());
            }
        }
    }
    paths.extend(git_path("packed-refs"));
    paths.retain(|p| p.exists());
    paths
}

/// Where git keeps `name` (`.git/…`, or the shared directory of a worktree), as an absolute path.
fn git_path(name: &str) -> Option<PathBuf> {
    let p = PathBuf::from(git(&["rev-parse", "--git-path", name])?);
    if p.is_absolute() {
        Some(p)
    } else {
        // Relative to the directory git ran in: this package's.
        Some(Path::new(&std::env::var_os("CARGO_MANIFEST_DIR")?).join(p))
    }
}

/// One line of git's output, or `None` when git is missing or fails (no repository).
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8(out.stdout).ok()?.trim().to_owned())
}
