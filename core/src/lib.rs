//! onhold-core: a deterministic, IO-free Music On Hold SIP server core.
//!
//! Timestamped datagrams and clock ticks go in; SIP messages, RTP/RTCP packets, timer deadlines,
//! events and resource commands come out. Nothing in this crate reads a clock, a socket, a file,
//! the environment or a global RNG: `now` is always a parameter and randomness comes from the
//! seed given to [`Server::new`]. Same inputs and seed, same outputs, byte for byte.

mod ascii;
pub mod codec;
#[cfg(feature = "config")]
pub mod config;
mod handle;
mod hash_index;
mod lanes;
pub mod media;
mod pacing;
pub mod rng;
pub mod rtp;
mod scan;
pub mod sdp;
pub mod server;
pub mod sip;
mod slab;
#[cfg(test)]
mod testing;
mod timers;

pub use codec::Codec;
pub use server::{
    CallHandle, CallInfo, ClassSdp, CodeCounts, Command, Control, Direction, EndReason, Event, Hop,
    Lateness, Limit, LiveInfo, LiveState, MediaInfo, Occupancy, Originate, OriginateError,
    Registration, RegistrationInfo, RegistrationState, Server, ServerConfig, SipCounts, SipTrace,
    Source, Stats, Transmit, TransmitKind, Transport, LATENESS_BOUNDS_US, MAX_DATAGRAM,
    SIP_METHODS,
};
