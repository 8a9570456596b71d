//! End-to-end tests: the real `onhold` and `onhold-mio` binaries on loopback, driven by SIPp
//! and `onhold probe`, judged by a Rust RTP receiver. Every test runs against both binaries
//! (`smol::NAME` and `mio::NAME`), except the parity test, which compares them.
//!
//! Needs `sipp` (Debian `sip-tester`); the tests fail, saying so, without it.

mod codecs;
mod common;
mod media;
mod parity;
mod process;
mod sip;
mod tcp_bye;
