//! [`InvalidHeader`]: a header the server needs is missing, repeated or unreadable, with the
//! reason phrase of the 400 that says so. It is the error of the typed readers in `headers.rs`
//! and `via.rs`, which make it with the `bad!`, `missing!` and `multiple!` macros: `concat!`
//! of the header name gives each phrase as a `&'static str`.

use std::fmt;

/// A header the server needs is missing or malformed. `reason` is a ready reason phrase for
/// the 400 (e.g. "Missing Call-ID", "Bad CSeq").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidHeader {
    /// Canonical header name.
    pub header: &'static str,
    pub missing: bool,
    pub reason: &'static str,
}

macro_rules! bad {
    ($h:literal) => {
        InvalidHeader {
            header: $h,
            missing: false,
            reason: concat!("Bad ", $h),
        }
    };
}

macro_rules! missing {
    ($h:literal) => {
        InvalidHeader {
            header: $h,
            missing: true,
            reason: concat!("Missing ", $h),
        }
    };
}

macro_rules! multiple {
    ($h:literal) => {
        InvalidHeader {
            header: $h,
            missing: false,
            reason: concat!("Multiple ", $h),
        }
    };
}

impl fmt::Display for InvalidHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason)
    }
}

impl std::error::Error for InvalidHeader {}

pub(super) use {bad, missing, multiple};
