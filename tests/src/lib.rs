//! Helpers for end-to-end tests: the real `onhold` and `onhold-mio` binaries on loopback, driven
//! by SIPp scenarios (`tests/sipp/*.xml`) and `onhold probe`, with a Rust RTP receiver so the
//! tests judge the media themselves.
//!
//! Every wait here is bounded; every spawned process is killed when its handle drops.

pub mod binaries;
pub mod caller;
pub mod http;
pub mod kamailio;
pub mod ports;
pub mod rtp;
pub mod server;
pub mod sipp;
pub mod tcp;
pub mod wav;
pub mod webdriver;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub use binaries::{binary, static_binary};
pub use rtp::{RtpPacket, RtpReceiver};
pub use server::{Server, ServerOptions};
pub use sipp::{SipMessage, Sipp, SippRun};

/// The two server binaries; every end-to-end test runs against both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    Smol,
    Mio,
}

impl Runtime {
    pub const ALL: [Runtime; 2] = [Runtime::Smol, Runtime::Mio];

    pub fn bin_name(self) -> &'static str {
        match self {
            Runtime::Smol => "onhold",
            Runtime::Mio => "onhold-mio",
        }
    }
}

/// A SIP transport, for helpers that speak either.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub const ALL: [Transport; 2] = [Transport::Udp, Transport::Tcp];

    /// `udp` or `tcp`, as in a `transport=` URI parameter.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

/// Writes `#[test]` functions `smol::NAME` and `mio::NAME` that call `NAME(Runtime)` of the
/// enclosing module, so each end-to-end test is written once and run against both binaries.
#[macro_export]
macro_rules! both_runtimes {
    ($($name:ident),* $(,)?) => {
        mod smol {
            $( #[test] fn $name() { super::$name($crate::Runtime::Smol) } )*
        }
        mod mio {
            $( #[test] fn $name() { super::$name($crate::Runtime::Mio) } )*
        }
    };
}

/// The workspace root (where `Cargo.toml` with `[workspace]` lives).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A scratch directory removed on drop (kept when the test panics, to read the logs in it).
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("onhold-e2e-{}-{n}-{label}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept {} for inspection", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Polls `f` every 10 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
