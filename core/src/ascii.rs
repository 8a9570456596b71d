//! Numbers and addresses as ASCII without `core::fmt`: every response and SDP body carries a
//! handful of them (CSeq, ports, `received=`, `c=`, tags), written here directly instead of
//! through `fmt`'s dispatch and padding logic.
//!
//! The output is byte for byte what `Display` writes; the tests compare against it.

use std::net::{AddrParseError, IpAddr, Ipv4Addr};

/// `v` in decimal, written into the end of `buf`.
pub(crate) fn decimal(v: u64, buf: &mut [u8; 20]) -> &str {
    ascii_str(decimal_bytes(v, buf))
}

/// [`decimal`] as bytes (no UTF-8 check: the digits are ASCII).
pub(crate) fn decimal_bytes(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
    // Two digits per division: SDP session ids and versions have ten.
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    let mut i = buf.len();
    while v >= 100 {
        let pair = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if v >= 10 {
        let pair = v as usize * 2;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        i -= 1;
        buf[i] = b'0' + v as u8;
    }
    &buf[i..]
}

/// `v` as 16 lower-case hex digits (`{:016x}`): every INVITE gets a To tag of these. Each half
/// of `v` has its eight nibbles spread into the eight bytes of a word, most significant first,
/// and all sixteen become digits at once: `'0' + n`, plus `'a' - '0' - 10` where `n >= 10`
/// (exactly the bytes to which adding 6 carries into bit 4).
pub(crate) fn hex16(v: u64, buf: &mut [u8; 16]) -> &str {
    const LOW_NIBBLES: u64 = 0x0f0f_0f0f_0f0f_0f0f;
    let spread = |half: u64| {
        let x = (half | half << 16) & 0x0000_ffff_0000_ffff;
        let x = (x | x << 8) & 0x00ff_00ff_00ff_00ff;
        (x | x << 4) & LOW_NIBBLES
    };
    let digits = |n: u64| {
        let letters = ((n + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
        n + 0x3030_3030_3030_3030 + letters * (b'a' - b'0' - 10) as u64
    };
    buf[..8].copy_from_slice(&digits(spread(v >> 32)).to_be_bytes());
    buf[8..].copy_from_slice(&digits(spread(v & 0xffff_ffff)).to_be_bytes());
    ascii_str(buf)
}

/// `v` in decimal appended to `out`. Below 10^16 (every number a message carries but a u64
/// from the API) the digits are made eight at a time in one word ([`digits8`]) and appended
/// as that word, cut back to their count: no division per digit, and a fixed-size copy instead
/// of a `memcpy` call for a few bytes.
/// Up to 255 (a CSeq, a ptime) the digits are one look-up ([`push_octet`]).
pub(crate) fn push_decimal(out: &mut Vec<u8>, v: u64) {
    if v <= u64::from(u8::MAX) {
        push_octet(out, v as u8);
    } else if v < EIGHT_DIGITS {
        push_digits(out, digits8(v as u32), false);
    } else {
        push_long(out, v);
    }
}

const EIGHT_DIGITS: u64 = 100_000_000;

/// [`push_decimal`] from 10^8 on (SDP session ids and versions), apart so that the short
/// numbers' path saves no registers for it.
#[inline(never)]
fn push_long(out: &mut Vec<u8>, v: u64) {
    if v < EIGHT_DIGITS * EIGHT_DIGITS {
        // Ten digits (a u32) have at most two before the last eight.
        match v / EIGHT_DIGITS {
            high @ ..=0xff => push_octet(out, high as u8),
            high => push_digits(out, digits8(high as u32), false),
        }
        push_digits(out, digits8((v % EIGHT_DIGITS) as u32), true);
    } else {
        out.extend_from_slice(decimal_bytes(v, &mut [0; 20]));
    }
}

/// The eight decimal digits of `n` (below 10^8, leading zeros included) as the bytes of a
/// little-endian word, the first digit in the lowest byte, each byte a digit's value (0–9).
/// The word is split in two four-digit halves, each lane then divided by 100 and the results
/// by 10 with multiply-and-shift steps exact for these ranges, all lanes at once (checked
/// against `format!` for every `n` when written; the tests check a spread of them).
#[inline(always)]
fn digits8(n: u32) -> u64 {
    let merged = u64::from(n / 10_000) | u64::from(n % 10_000) << 32;
    let hundreds = ((merged * 10_486) >> 20) & (0x7f << 32 | 0x7f);
    let pairs = (merged - 100 * hundreds) << 16 | hundreds;
    let tens = ((pairs * 103) >> 10) & 0x000f_000f_000f_000f;
    (pairs - 10 * tens) << 8 | tens
}

/// The digits of a [`digits8`] word appended as ASCII: all eight when `all`, else without
/// leading zeros (one digit at least).
#[inline(always)]
fn push_digits(out: &mut Vec<u8>, digits: u64, all: bool) {
    // Leading zero digits are the lowest bytes that are zero.
    let skip = if all {
        0
    } else {
        (digits.trailing_zeros() / 8).min(7) as usize
    };
    let ascii = (digits + 0x3030_3030_3030_3030) >> (8 * skip);
    out.extend_from_slice(&ascii.to_le_bytes());
    out.truncate(out.len() - skip);
}

/// `prefix` and `v` in decimal appended to `out`, as one 4-byte piece cut back to their length
/// (` 101` in an m-line).
#[inline]
pub(crate) fn push_octet_after(out: &mut Vec<u8>, prefix: u8, v: u8) {
    let entry = OCTETS[v as usize];
    let piece = (entry & 0xff_ffff) << 8 | u32::from(prefix);
    out.extend_from_slice(&piece.to_le_bytes());
    out.truncate(out.len() - 3 + (entry >> 24) as usize);
}

/// `v` in decimal appended to `out`, as one 4-byte piece cut back to its digits (payload types,
/// the octets of an address).
#[inline]
pub(crate) fn push_octet(out: &mut Vec<u8>, v: u8) {
    let entry = OCTETS[v as usize];
    out.extend_from_slice(&entry.to_le_bytes());
    out.truncate(out.len() - 4 + (entry >> 24) as usize);
}

/// Room for the longest address text (`ffff:…:255.255.255.255`, 45 bytes).
pub(crate) type IpBuf = [u8; 48];

/// An IP address as `Display` writes it. IPv4 is written here; IPv6 (rare, and with the
/// RFC 5952 compression rules) still goes through `fmt`.
pub(crate) fn ip(addr: IpAddr, buf: &mut IpBuf) -> &str {
    ascii_str(ip_bytes(addr, buf))
}

/// Each octet's decimal digits, first digit in the lowest byte, with the digit count in the top
/// byte: an address is then four look-ups and four 4-byte stores, no division.
const OCTETS: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut v = 0u32;
    while v < 256 {
        let (hundreds, tens, ones) = (
            b'0' as u32 + v / 100,
            b'0' as u32 + v / 10 % 10,
            b'0' as u32 + v % 10,
        );
        table[v as usize] = if v >= 100 {
            hundreds | tens << 8 | ones << 16 | 3 << 24
        } else if v >= 10 {
            tens | ones << 8 | 2 << 24
        } else {
            ones | 1 << 24
        };
        v += 1;
    }
    table
};

/// [`ip`] as bytes (no UTF-8 check: the callers copy or compare them).
pub(crate) fn ip_bytes(addr: IpAddr, buf: &mut IpBuf) -> &[u8] {
    let len = match addr {
        IpAddr::V4(v4) => {
            let mut len = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                let entry = OCTETS[octet as usize];
                let (mut text, mut n) = (entry & 0xff_ffff, (entry >> 24) as usize);
                if i > 0 {
                    text = text << 8 | b'.' as u32;
                    n += 1;
                }
                // Four bytes stored, `n` kept: the next octet overwrites the rest.
                buf[len..len + 4].copy_from_slice(&text.to_le_bytes());
                len += n;
            }
            len
        }
        IpAddr::V6(v6) => {
            use std::io::Write as _;
            let mut rest: &mut [u8] = &mut buf[..];
            let _ = write!(rest, "{v6}");
            let left = rest.len();
            buf.len() - left
        }
    };
    &buf[..len]
}

/// `s.parse::<IpAddr>()`. A plain dotted quad (four 1–3 digit decimals up to 255, no leading
/// zeros: a form the std parser accepts, with the same value) is read here; everything else,
/// IPv6 and errors included, goes to the std parser.
pub(crate) fn parse_ip(s: &str) -> Result<IpAddr, AddrParseError> {
    match dotted_quad(s.as_bytes()) {
        Some(v4) => Ok(IpAddr::V4(v4)),
        None => s.parse(),
    }
}

/// `host.trim_start_matches('[').trim_end_matches(']')` by bytes: an IPv6 reference without its
/// brackets (both are ASCII, so the cuts are on char boundaries).
pub(crate) fn unbracketed(host: &str) -> &str {
    let b = host.as_bytes();
    let start = b.iter().position(|&c| c != b'[').unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|&c| c != b']')
        .map_or(start, |p| (p + 1).max(start));
    &host[start..end]
}

/// A plain dotted quad, the whole of `b` (see [`parse_ip`]): each octet read digit by digit
/// with no loop (an address is read for every INVITE's Via, Request-URI and SDP `c=`).
pub(crate) fn dotted_quad(b: &[u8]) -> Option<Ipv4Addr> {
    // Seven to fifteen bytes: anything else is not four octets of 1–3 digits.
    if !(7..=15).contains(&b.len()) {
        return None;
    }
    let digit = |i: usize| match b.get(i) {
        Some(&c) if c.is_ascii_digit() => Some(u32::from(c - b'0')),
        _ => None,
    };
    let mut octets = [0u8; 4];
    let mut i = 0;
    for (n, octet) in octets.iter_mut().enumerate() {
        if n > 0 {
            if b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        let mut v = digit(i)?;
        i += 1;
        // A second or third digit, unless the first is a leading zero.
        if let Some(d) = digit(i) {
            if v == 0 {
                return None;
            }
            v = v * 10 + d;
            i += 1;
            if let Some(d) = digit(i) {
                v = v * 10 + d;
                i += 1;
            }
        }
        *octet = u8::try_from(v).ok()?;
    }
    (i == b.len()).then(|| Ipv4Addr::from(octets))
}

/// The digits written above are ASCII, so this never takes the fallback.
fn ascii_str(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_display() {
        for v in [
            0u64,
            1,
            9,
            10,
            99,
            100,
            5060,
            65535,
            u32::MAX as u64,
            u64::MAX,
        ] {
            assert_eq!(decimal(v, &mut [0; 20]), v.to_string());
            assert_eq!(hex16(v, &mut [0; 16]), format!("{v:016x}"));
        }
        // Every digit count, and the edges of the fixed-size piece.
        let mut p = 1u64;
        for _ in 0..20 {
            for v in [
                p - 1,
                p,
                p + 1,
                p.saturating_mul(7),
                p.wrapping_mul(10).wrapping_sub(1),
            ] {
                let mut out = b"x".to_vec();
                push_decimal(&mut out, v);
                assert_eq!(out, format!("x{v}").as_bytes());
            }
            p = p.saturating_mul(10);
        }
        // Every four-digit half, beside each digit count; a spread of eight-digit words.
        for v in (0..10_000u64).chain((0..100_000_000).step_by(9_973)) {
            for v in [
                v,
                v * 10_000,
                v + 12_340_000,
                v * 100_000_000 + 5,
                v * 10_000_000_001,
            ] {
                let mut out = b"x".to_vec();
                push_decimal(&mut out, v);
                assert_eq!(out, format!("x{v}").as_bytes());
            }
        }
        for v in 0..=u8::MAX {
            let mut out = b"x".to_vec();
            push_octet(&mut out, v);
            push_octet_after(&mut out, b' ', v);
            assert_eq!(out, format!("x{v} {v}").as_bytes());
        }
    }

    #[test]
    fn addresses_match_display() {
        for a in [
            "0.0.0.0",
            "1.20.100.109",
            "99.9.10.200",
            "192.168.1.50",
            "10.0.0.255",
            "255.255.255.255",
            "::1",
            "2001:db8::7",
            "::ffff:1.2.3.4",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            let addr: IpAddr = a.parse().unwrap();
            assert_eq!(ip(addr, &mut [0; 48]), addr.to_string());
            assert_eq!(ip_bytes(addr, &mut [0; 48]), addr.to_string().as_bytes());
        }
    }

    /// Every octet value in every position (the look-up table and the overlapping stores).
    #[test]
    fn every_ipv4_octet_matches_display() {
        for v in 0..=255u8 {
            for addr in [
                Ipv4Addr::new(v, 0, 0, 0),
                Ipv4Addr::new(1, v, 22, 255),
                Ipv4Addr::new(255, 100, v, 9),
                Ipv4Addr::new(9, 99, 199, v),
                Ipv4Addr::new(v, v, v, v),
            ] {
                let addr = IpAddr::V4(addr);
                assert_eq!(ip(addr, &mut [0; 48]), addr.to_string());
            }
        }
    }

    #[test]
    fn parse_ip_matches_std() {
        for a in [
            "0.0.0.0",
            "1.2.3.4",
            "255.255.255.255",
            "256.1.1.1",
            "01.1.1.1",
            "1.2.3",
            "1.2.3.4.",
            "1.2.3.4.5",
            "1..2.3",
            "",
            ".",
            "1.2.3.04",
            "1234.1.1.1",
            "1.2.3.4 ",
            " 1.2.3.4",
            "::1",
            "::ffff:1.2.3.4",
            "[::1]",
            "host",
            "1.2.3.a",
            "9.99.199.249",
        ] {
            assert_eq!(parse_ip(a).ok(), a.parse::<IpAddr>().ok(), "{a:?}");
        }
    }

    #[test]
    fn unbracketed_matches_the_trims() {
        for h in [
            "", "[", "]", "[]", "][", "[[::1]]", "[::1]", "::1", "a]", "[a", "]a[", "1.2.3.4",
        ] {
            let want = h.trim_start_matches('[').trim_end_matches(']');
            assert_eq!(unbracketed(h), want, "{h:?}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(20_000))]

        /// The word-wise hex digits are `{:016x}`'s.
        #[test]
        fn hex16_matches_format(v in proptest::prelude::any::<u64>()) {
            let mut buf = [0; 16];
            proptest::prop_assert_eq!(hex16(v, &mut buf), format!("{v:016x}"));
        }

        #[test]
        fn unbracketed_matches_the_trims_on_any_text(h in "[\\[\\]a:é]{0,8}") {
            proptest::prop_assert_eq!(unbracketed(&h), h.trim_start_matches('[').trim_end_matches(']'));
        }

        /// The digit-by-digit read agrees with std on anything made of digits and dots.
        #[test]
        fn parse_ip_matches_std_on_any_digits(a in "[0-9.]{0,17}|([0-9]{1,4}\\.){3}[0-9]{1,4}") {
            proptest::prop_assert_eq!(parse_ip(&a).ok(), a.parse::<IpAddr>().ok(), "{:?}", a);
        }
    }
}
