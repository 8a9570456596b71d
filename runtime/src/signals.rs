//! The signals the runtimes catch, what each asks of the server, and helper threads that never
//! take one.

use std::io;

/// What a signal asks of the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignalAction {
    /// SIGINT, SIGTERM: stop taking calls, BYE every call, exit when drained.
    Shutdown,
    /// SIGHUP: re-read the configuration and the music; calls keep running.
    Reload,
}

/// The signals the runtimes catch.
pub const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

pub fn signal_action(signo: libc::c_int) -> Option<SignalAction> {
    match signo {
        libc::SIGINT | libc::SIGTERM => Some(SignalAction::Shutdown),
        libc::SIGHUP => Some(SignalAction::Reload),
        _ => None,
    }
}

pub fn signal_name(signo: libc::c_int) -> &'static str {
    match signo {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "signal",
    }
}

/// Start a helper thread (logging, reloads) that never takes a signal: every signal is blocked
/// in it from its first instruction, so process-directed signals reach the thread that waits
/// for them (onhold-mio's signalfd needs every other thread to block them, or a SIGTERM would
/// be delivered to a helper and kill the process with the default action).
pub fn spawn_helper<F>(name: &str, f: F) -> io::Result<std::thread::JoinHandle<()>>
where
    F: FnOnce() + Send + 'static,
{
    // SAFETY: sigset_t is plain data, initialised by sigfillset/pthread_sigmask before use; the
    // calling thread's mask is restored right after the spawn, which inherits the full block.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
        let spawned = std::thread::Builder::new().name(name.to_string()).spawn(f);
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        spawned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_map_to_actions() {
        assert_eq!(signal_action(libc::SIGTERM), Some(SignalAction::Shutdown));
        assert_eq!(signal_action(libc::SIGINT), Some(SignalAction::Shutdown));
        assert_eq!(signal_action(libc::SIGHUP), Some(SignalAction::Reload));
        assert_eq!(signal_action(libc::SIGUSR1), None);
    }
}
