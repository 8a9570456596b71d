//! End-to-end tests: the real `onhold` and `onhold-mio` binaries on loopback, driven by SIPp,
//! `onhold probe` and `onhold bench`, judged by a Rust RTP receiver. Every test runs against
//! both binaries (`smol::NAME` and `mio::NAME`), except the bench test, which runs
//! `onhold bench` against `onhold-mio`, the parity test, which compares them, the proxy test,
//! which runs both at once, and the packaging tests, which run what is shipped (the static
//! `onhold`, its container image, the systemd unit).
//!
//! Needs `sipp` (Debian `sip-tester`) and, for the proxy and register tests, `kamailio`
//! (Debian `kamailio`); the tests fail, saying so, without them. The packaging tests need more (`packaging.rs`
//! says what); the Linphone test needs `linphonec` (Debian `linphone-cli`), and outside CI
//! skips, saying so, without it.

mod bench;
mod cluster;
mod codecs;
mod common;
mod control;
mod flood;
mod linphone;
mod live;
mod media;
mod netns;
mod originate;
mod packaging;
mod page;
mod parity;
mod process;
mod proxy;
mod record;
mod register;
mod sip;
mod tcp_bye;
mod tcp_limits;
mod unreachable;
