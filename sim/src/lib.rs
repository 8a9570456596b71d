//! onhold-sim: drives onhold-core on virtual time.
//!
//! - [`pcap`]: captures in and out;
//! - [`sip`]: the little SIP/SDP the simulator reads (until the core parser lands);
//! - [`engine`]: the discrete-event loop, the virtual network link, the observed wire;
//! - [`replay`]: the caller side of a capture, played against the core;
//! - [`verdict`]: pacing and dialog judgements of what the core sent;
//! - [`generate`]: synthetic DP750 captures;
//! - [`report`]: text and JSON reports.

pub mod engine;
pub mod pcap;
pub mod replay;
pub mod sip;
pub mod verdict;
