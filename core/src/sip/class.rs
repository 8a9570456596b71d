//! The byte classes of the one-pass readers of the usual header values, the From/To tag
//! (`name_addr.rs`) and the top Via (`via.rs`): one table, one lookup per byte.

use crate::scan::run_of;

/// Byte classes for the one-pass readers `name_addr_tag_fast` (`name_addr.rs`) and
/// `top_via_branch_rport_fast` (`via.rs`), as bit flags in one table.
pub(super) const TOKEN: u8 = 1;
/// Bytes of RFC 3261 `user` that are neither `%` (escapes) nor `;` `?` `/` (which could be
/// read as parameters or headers): alphanumerics, `mark` and `& = + $ ,`.
pub(super) const USER: u8 = 2;
/// SP, which may separate the words of an unquoted display name.
pub(super) const SP: u8 = 4;
// Hosts (`scan::is_host_byte`) and the inside of a quoted display name without escapes (any
// byte but DQUOTE and `\`) have scans of their own: `run_of_host` and `run_of_qtext`.

pub(super) static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let alnum = b.is_ascii_alphanumeric();
        let mut f = 0;
        if alnum
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            )
        {
            f |= TOKEN;
        }
        if alnum
            || matches!(
                b,
                b'-' | b'_'
                    | b'.'
                    | b'!'
                    | b'~'
                    | b'*'
                    | b'\''
                    | b'('
                    | b')'
                    | b'&'
                    | b'='
                    | b'+'
                    | b'$'
                    | b','
            )
        {
            f |= USER;
        }
        if b == b' ' {
            f |= SP;
        }
        t[i] = f;
        i += 1;
    }
    t
};

/// The end of the run of `class` bytes ([`CLASS`]) in `b` from `from`.
#[inline(always)]
pub(super) fn run_of_class(b: &[u8], from: usize, class: u8) -> usize {
    run_of(b, from, |c| CLASS[c as usize] & class != 0)
}
