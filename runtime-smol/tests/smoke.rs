//! The `onhold` binary end to end on loopback (the checks live in
//! runtime/tests/support/mod.rs, shared with onhold-mio).

#[macro_use]
#[path = "../../runtime/tests/support/mod.rs"]
mod support;

smoke_tests!(env!("CARGO_BIN_EXE_onhold"), "onhold");
