//! The `onhold` binary end to end on loopback (the checks live in support/mod.rs, shared with
//! onhold-mio).

#[macro_use]
mod support;

smoke_tests!(env!("CARGO_BIN_EXE_onhold"), "onhold");
