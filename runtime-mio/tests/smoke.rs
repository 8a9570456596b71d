//! The `onhold-mio` binary end to end on loopback, with the same checks as `onhold`.

#[macro_use]
#[path = "../../runtime/tests/support/mod.rs"]
mod support;

smoke_tests!(env!("CARGO_BIN_EXE_onhold-mio"), "onhold-mio");
