//! Byte scans the SIP and SDP readers are built on: find a byte, find where a run of one byte
//! class ends, ask whether a class occurs at all.
//!
//! The readers above are one implementation each; what speed they need comes from these few
//! primitives. Each vector primitive has two versions chosen when the crate is built:
//!
//! - `sse2`: sixteen bytes per step. SSE2 is part of the x86-64 baseline, so every x86-64 build
//!   has it.
//! - `scalar`: no vector instructions (a word at a time where that is simple, else a byte at a
//!   time). Every other target runs it, and so does any target when onhold-core is built with
//!   the `scalar` feature, which is how CI tests it on x86-64.
//!
//! The proptests below check each `sse2` primitive against its `scalar` one, and the scalar ones
//! against the obvious byte-by-byte reading. [`run_of`], [`eq_word`] and [`has_cr_or_lf`] use
//! no vector instructions and have one version on every target.

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "sse2",
    not(feature = "scalar")
))]
use sse2 as chosen;

#[cfg(not(all(
    target_arch = "x86_64",
    target_feature = "sse2",
    not(feature = "scalar")
)))]
use scalar as chosen;

/// Position of the first `needle` in `hay`. The header section is searched for line ends on
/// every datagram, and SDP bodies for theirs.
#[inline]
pub fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    chosen::find_byte(hay, needle)
}

/// The end of the run of host-name bytes ([`is_host_byte`]) starting at `i` (`i` itself when
/// `i` is past the end). Hosts are the longest runs the readers take: an IPv4 address in the
/// Via, From, To, Contact and Request-URI of every request.
#[inline(always)]
pub(crate) fn run_of_host(b: &[u8], i: usize) -> usize {
    chosen::run_of_host(b, i)
}

/// The end of the run of bytes that are neither `"` nor `\` starting at `i`: the inside of a
/// quoted display name without escapes.
#[inline(always)]
pub(crate) fn run_of_qtext(b: &[u8], i: usize) -> usize {
    chosen::run_of_qtext(b, i)
}

/// True when a byte of `b` is SP or below (white space or a control byte): what a Call-ID may
/// not hold.
#[inline(always)]
pub(crate) fn has_space_or_control(b: &[u8]) -> bool {
    chosen::has_space_or_control(b)
}

/// Host name or IPv4 address characters. `_` is not in RFC 3261's `hostname` but real devices
/// send it in Via and Contact hosts, and it harms nothing to accept.
#[inline(always)]
pub(crate) fn is_host_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_')
}

/// Bytes that may be inside a quoted string without ending it or escaping the next byte.
#[inline(always)]
fn is_qtext(c: u8) -> bool {
    c != b'"' && c != b'\\'
}

/// The end of the run of bytes starting at `i` for which `f` holds (`i` itself when `i` is past
/// the end). Four bytes a round, with one end check per round.
#[inline(always)]
pub(crate) fn run_of(b: &[u8], i: usize, f: impl Fn(u8) -> bool) -> usize {
    let Some(rest) = b.get(i..) else {
        return i;
    };
    let mut chunks = rest.chunks_exact(4);
    let mut n = i;
    for four in &mut chunks {
        if !f(four[0]) {
            return n;
        }
        if !f(four[1]) {
            return n + 1;
        }
        if !f(four[2]) {
            return n + 2;
        }
        if !f(four[3]) {
            return n + 3;
        }
        n += 4;
    }
    for &c in chunks.remainder() {
        if !f(c) {
            return n;
        }
        n += 1;
    }
    n
}

/// `b.eq_ignore_ascii_case(word)` for a lower-case `word` of up to eight bytes (a parameter
/// name, a scheme), as one compare of two words: OR 0x20 on the letters of `word` takes only
/// the two cases of each letter to it, and every other byte compares exactly.
///
/// `word` is an array, so its length is a constant where this is inlined and both loads have a
/// fixed size.
#[inline(always)]
pub(crate) fn eq_word<const N: usize>(b: &[u8], word: &[u8; N]) -> bool {
    debug_assert!(N <= 8 && !word.iter().any(u8::is_ascii_uppercase));
    let Some(b) = b.first_chunk::<N>().filter(|_| b.len() == N) else {
        return false;
    };
    let load = |s: &[u8; N]| {
        let mut w = [0u8; 8];
        w[..N].copy_from_slice(s);
        u64::from_le_bytes(w)
    };
    let case = word.iter().rev().fold(0u64, |m, c| {
        (m << 8) | if c.is_ascii_lowercase() { 0x20 } else { 0 }
    });
    load(b) | case == load(word)
}

/// Does `bytes` hold a CR or LF? Every value the SIP writer copies is checked (a CR or LF in a
/// value would start a header line of the peer's choosing), so a word (eight bytes) at a time,
/// two per step, in two passes.
///
/// The first pass asks a broader question of each word: is any byte below 0x0E (CR is 0x0D,
/// LF 0x0A)? `(v - 0x0E..) & !v & 0x80..` is non-zero exactly when one is (a borrow only starts
/// at such a byte, and a byte at or above 0x0E without one leaves its top bit clear). Header
/// values almost never hold such a byte (a TAB is the usual one), so the exact test runs only
/// then: a word holds a CR (LF) byte exactly when xor-ing it with a word of CRs (LFs) leaves a
/// zero byte, and `(v - 0x01..) & !v & 0x80..` is non-zero exactly when `v` has a zero byte.
#[inline]
pub(crate) fn has_cr_or_lf(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const BELOW: u64 = u64::from_ne_bytes([0x0e; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const CRS: u64 = u64::from_ne_bytes([b'\r'; 8]);
    const LFS: u64 = u64::from_ne_bytes([b'\n'; 8]);
    if bytes.len() < 4 {
        return bytes.iter().any(|&b| b == b'\r' || b == b'\n');
    }
    // Each test's flags are the top bits of its bytes; the other bits are masked off once, at
    // the end.
    let zeros = |v: u64| v.wrapping_sub(ONES) & !v;
    let low = |w: u64| w.wrapping_sub(BELOW) & !w;
    let cr_or_lf = |w: u64| zeros(w ^ CRS) | zeros(w ^ LFS);
    any_word(bytes, low) & HIGHS != 0 && any_word(bytes, cr_or_lf) & HIGHS != 0
}

/// `hit` of every word of `bytes` (at least four long; see [`has_cr_or_lf`]), or-ed together,
/// two words per step. The last step may overlap the one before it (it ends at the last byte),
/// which an "any byte" test does not mind; four to seven bytes are read as two overlapping
/// halves of one word.
#[inline(always)]
fn any_word(bytes: &[u8], hit: impl Fn(u64) -> u64) -> u64 {
    let word = |b: &[u8]| u64::from_ne_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
    let half = |b: &[u8]| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as u64;
    let pair = |b: &[u8]| hit(word(&b[..8])) | hit(word(&b[8..16]));
    let n = bytes.len();
    if n >= 16 {
        let all = (bytes.chunks_exact(16)).fold(0, |acc, c| acc | pair(c));
        if n % 16 != 0 {
            all | pair(&bytes[n - 16..])
        } else {
            all
        }
    } else if n >= 8 {
        hit(word(bytes)) | hit(word(&bytes[n - 8..]))
    } else {
        hit(half(bytes) << 32 | half(&bytes[n - 4..]))
    }
}

/// Vector versions are compiled on x86-64 (for tests even under `scalar`, so that the
/// differential tests still compare them with the fallbacks).
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "sse2",
    any(test, not(feature = "scalar"))
))]
mod sse2 {
    use super::{is_host_byte, is_qtext, run_of};
    use std::arch::x86_64::{
        __m128i, _mm_add_epi8, _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_min_epu8,
        _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8, _mm_set_epi64x,
    };

    /// Sixteen bytes per step: a compare and a mask. The bytes after the last whole step are
    /// read as one more step ending at the end of `hay` (its bytes already searched hold no
    /// match), and a `hay` of 8 to 15 bytes as its first and last eight bytes; only one
    /// shorter than 8 goes byte by byte.
    pub(super) fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
        // Eight bytes of `b` from `at` as a little-endian word, as the intrinsics take it.
        let word = |b: &[u8], at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[at..at + 8]);
            i64::from_le_bytes(w)
        };
        // Bit `i` set when byte `i` of `lo` then `hi` is `needle`.
        let hits = |lo: i64, hi: i64| {
            // SAFETY: these intrinsics need only SSE2, which this build enables (see the
            // module's `cfg`: every x86-64 target does); they touch no memory.
            unsafe {
                let pattern = _mm_set1_epi8(needle as i8);
                _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_set_epi64x(hi, lo), pattern)) as u32
            }
        };
        let len = hay.len();
        if len < 16 {
            if len < 8 {
                return hay.iter().position(|&b| b == needle);
            }
            // Bytes 0..8, then len-8..len (which overlap the first when len < 16).
            let m = hits(word(hay, 0), word(hay, len - 8));
            return match m & 0xff {
                0 => (m != 0).then(|| len + m.trailing_zeros() as usize - 16),
                low => Some(low.trailing_zeros() as usize),
            };
        }
        let mut base = 0;
        while base + 16 <= len {
            let m = hits(word(hay, base), word(hay, base + 8));
            if m != 0 {
                return Some(base + m.trailing_zeros() as usize);
            }
            base += 16;
        }
        if base == len {
            return None;
        }
        let last = len - 16;
        let m = hits(word(hay, last), word(hay, last + 8));
        (m != 0).then(|| last + m.trailing_zeros() as usize)
    }

    /// The first sixteen bytes from `i` classified at once when there are as many, the rest
    /// by [`run_of`].
    #[inline(always)]
    pub(super) fn run_of_host(b: &[u8], i: usize) -> usize {
        match b.get(i..).and_then(|r| r.first_chunk::<16>()) {
            Some(sixteen) => match !host_mask(sixteen) & 0xffff {
                0 => run_of(b, i + 16, is_host_byte),
                outside => i + outside.trailing_zeros() as usize,
            },
            None => run_of(b, i, is_host_byte),
        }
    }

    /// As [`run_of_host`], for the inside of a quoted string.
    #[inline(always)]
    pub(super) fn run_of_qtext(b: &[u8], i: usize) -> usize {
        match b.get(i..).and_then(|r| r.first_chunk::<16>()) {
            Some(sixteen) => match quote_mask(sixteen) {
                0 => run_of(b, i + 16, is_qtext),
                stop => i + stop.trailing_zeros() as usize,
            },
            None => run_of(b, i, is_qtext),
        }
    }

    /// Sixteen bytes a step where there are as many, the last step ending at the end of `b`
    /// (it may overlap the one before); the scalar fallback below that.
    #[inline(always)]
    pub(super) fn has_space_or_control(b: &[u8]) -> bool {
        if b.len() < 16 {
            return super::scalar::has_space_or_control(b);
        }
        let mut end = 16;
        loop {
            if let Some(sixteen) = b[end - 16..end].first_chunk::<16>() {
                if space_mask(sixteen) != 0 {
                    return true;
                }
            }
            if end == b.len() {
                return false;
            }
            end = (end + 16).min(b.len());
        }
    }

    /// The sixteen bytes in a vector register.
    #[inline(always)]
    fn load(sixteen: &[u8; 16]) -> __m128i {
        // SAFETY: SSE2 is enabled in this build (the module's `cfg`), and the unaligned load
        // reads exactly the sixteen bytes of the array it is given.
        unsafe { _mm_loadu_si128(sixteen.as_ptr().cast()) }
    }

    /// Bit `k` set when byte `k` of `sixteen` is a host-name byte ([`is_host_byte`]).
    ///
    /// Ranges by signed compares: adding `0x80 - lo` takes `lo..=hi` (and only it) to the
    /// lowest signed bytes, `-128..=-128 + (hi - lo)`, so one "less than" tells the range.
    /// Letters are ORed with 0x20 first, which takes only `A..=Z` and `a..=z` to `a..=z`.
    #[inline(always)]
    fn host_mask(sixteen: &[u8; 16]) -> u32 {
        let v = load(sixteen);
        // SAFETY: these intrinsics need only SSE2, which this build enables; they touch no
        // memory.
        unsafe {
            let in_range = |x, lo: u8, len: u8| {
                let shifted = _mm_add_epi8(x, _mm_set1_epi8(0x80u8.wrapping_sub(lo) as i8));
                _mm_cmplt_epi8(shifted, _mm_set1_epi8((0x80u8 + len) as i8))
            };
            let digit = in_range(v, b'0', 10);
            let letter = in_range(_mm_or_si128(v, _mm_set1_epi8(0x20)), b'a', 26);
            let is = |c: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(c as i8));
            let mark = _mm_or_si128(_mm_or_si128(is(b'-'), is(b'.')), is(b'_'));
            _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(digit, letter), mark)) as u32
        }
    }

    /// Bit `k` set when byte `k` of `sixteen` is SP or below: the unsigned minimum with SP is
    /// the byte itself exactly then.
    #[inline(always)]
    fn space_mask(sixteen: &[u8; 16]) -> u32 {
        let v = load(sixteen);
        // SAFETY: as in `host_mask`.
        unsafe {
            _mm_movemask_epi8(_mm_cmpeq_epi8(
                _mm_min_epu8(v, _mm_set1_epi8(b' ' as i8)),
                v,
            )) as u32
        }
    }

    /// Bit `k` set when byte `k` of `sixteen` is `"` or `\`.
    #[inline(always)]
    fn quote_mask(sixteen: &[u8; 16]) -> u32 {
        let v = load(sixteen);
        // SAFETY: as in `host_mask`.
        unsafe {
            let is = |c: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(c as i8));
            _mm_movemask_epi8(_mm_or_si128(is(b'"'), is(b'\\'))) as u32
        }
    }
}

/// The versions without vector instructions. An x86-64 build uses them only in tests (and
/// under `scalar`).
#[cfg_attr(
    all(
        target_arch = "x86_64",
        target_feature = "sse2",
        not(feature = "scalar"),
        not(test)
    ),
    allow(dead_code)
)]
mod scalar {
    use super::{is_host_byte, is_qtext, run_of};

    /// Eight bytes at a time, with the classic "has a zero byte" word trick on `word ^ needle`.
    pub(super) fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
        const LO: u64 = 0x0101_0101_0101_0101;
        const HI: u64 = 0x8080_8080_8080_8080;
        let pattern = LO * u64::from(needle);
        let mut chunks = hay.chunks_exact(8);
        let mut base = 0;
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let x = u64::from_le_bytes(word) ^ pattern;
            // The lowest flagged byte is always a true match; only bytes above one can be false.
            let found = x.wrapping_sub(LO) & !x & HI;
            if found != 0 {
                return Some(base + (found.trailing_zeros() / 8) as usize);
            }
            base += 8;
        }
        chunks
            .remainder()
            .iter()
            .position(|&b| b == needle)
            .map(|i| base + i)
    }

    #[inline(always)]
    pub(super) fn run_of_host(b: &[u8], i: usize) -> usize {
        run_of(b, i, is_host_byte)
    }

    #[inline(always)]
    pub(super) fn run_of_qtext(b: &[u8], i: usize) -> usize {
        run_of(b, i, is_qtext)
    }

    /// The smallest byte tells, in a loop the compiler vectorizes where it can (an early-exit
    /// `any` goes byte by byte).
    #[inline(always)]
    pub(super) fn has_space_or_control(b: &[u8]) -> bool {
        b.iter().fold(u8::MAX, |m, &c| m.min(c)) <= b' '
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The byte-by-byte readings every version must agree with.
    mod obvious {
        pub(super) fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
            hay.iter().position(|&b| b == needle)
        }

        pub(super) fn run(b: &[u8], i: usize, f: impl Fn(u8) -> bool) -> usize {
            b.get(i..).map_or(i, |rest| {
                i + rest.iter().position(|&c| !f(c)).unwrap_or(rest.len())
            })
        }

        pub(super) fn has_space_or_control(b: &[u8]) -> bool {
            b.iter().any(|&c| c <= b' ')
        }

        pub(super) fn has_cr_or_lf(b: &[u8]) -> bool {
            b.iter().any(|&c| c == b'\r' || c == b'\n')
        }
    }

    /// Bytes near the classes the primitives tell apart, with every byte value now and then.
    fn class_bytes() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![
            4 => prop::sample::select(b"09azAZ-._\"\\@:;>/ `{[\r\n\t\x00\x1f\x80\xff".to_vec()),
            1 => any::<u8>(),
        ];
        prop::collection::vec(byte, 0..70)
    }

    fn needle() -> impl Strategy<Value = u8> {
        prop_oneof![
            4 => prop::sample::select(b"\n\r:;,\"\x00\x80".to_vec()),
            1 => any::<u8>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        /// The version this build uses and the scalar one agree with the obvious readings.
        #[test]
        fn primitives_match_the_obvious_readings(b in class_bytes(), i in 0usize..74, n in needle()) {
            prop_assert_eq!(find_byte(&b, n), obvious::find_byte(&b, n));
            prop_assert_eq!(scalar::find_byte(&b, n), obvious::find_byte(&b, n));
            let host = obvious::run(&b, i, is_host_byte);
            prop_assert_eq!(run_of_host(&b, i), host);
            prop_assert_eq!(scalar::run_of_host(&b, i), host);
            prop_assert_eq!(run_of(&b, i, is_host_byte), host);
            let qtext = obvious::run(&b, i, is_qtext);
            prop_assert_eq!(run_of_qtext(&b, i), qtext);
            prop_assert_eq!(scalar::run_of_qtext(&b, i), qtext);
            let tail = b.get(i..).unwrap_or_default();
            let low = obvious::has_space_or_control(tail);
            prop_assert_eq!(has_space_or_control(tail), low);
            prop_assert_eq!(scalar::has_space_or_control(tail), low);
            prop_assert_eq!(has_cr_or_lf(tail), obvious::has_cr_or_lf(tail));
        }
    }

    /// Every vector primitive against its scalar fallback.
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    mod sse2_against_scalar {
        use super::super::{scalar, sse2};
        use super::{class_bytes, needle};
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(20_000))]

            #[test]
            fn sse2_matches_scalar(b in class_bytes(), i in 0usize..74, n in needle()) {
                prop_assert_eq!(sse2::find_byte(&b, n), scalar::find_byte(&b, n));
                prop_assert_eq!(sse2::run_of_host(&b, i), scalar::run_of_host(&b, i));
                prop_assert_eq!(sse2::run_of_qtext(&b, i), scalar::run_of_qtext(&b, i));
                let tail = b.get(i..).unwrap_or_default();
                prop_assert_eq!(
                    sse2::has_space_or_control(tail),
                    scalar::has_space_or_control(tail)
                );
            }
        }

        /// Every byte value in every position of a sixteen-byte block, and every length
        /// around the block size.
        #[test]
        fn sse2_takes_exactly_the_class_bytes() {
            for c in 0..=255u8 {
                for at in 0..20 {
                    let mut b = [b'a'; 40];
                    b[at] = c;
                    for len in at + 1..=b.len() {
                        let b = &b[..len];
                        assert_eq!(
                            sse2::find_byte(b, c),
                            scalar::find_byte(b, c),
                            "{c:#x} {at} {len}"
                        );
                        assert_eq!(
                            sse2::run_of_host(b, 0),
                            scalar::run_of_host(b, 0),
                            "{c:#x} {at}"
                        );
                        assert_eq!(
                            sse2::run_of_qtext(b, 0),
                            scalar::run_of_qtext(b, 0),
                            "{c:#x} {at}"
                        );
                        assert_eq!(
                            sse2::has_space_or_control(b),
                            scalar::has_space_or_control(b),
                            "{c:#x} {at} {len}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn find_byte_finds_the_first_of_several() {
        let hay: Vec<u8> = (0..=255u8).chain(0..=255u8).collect();
        for needle in [0u8, 1, 10, 13, 0x7f, 0x80, 0xff] {
            for start in 0..20 {
                for end in (start..start + 40).chain([hay.len()]) {
                    let h = &hay[start..end.min(hay.len())];
                    assert_eq!(find_byte(h, needle), obvious::find_byte(h, needle));
                    assert_eq!(scalar::find_byte(h, needle), obvious::find_byte(h, needle));
                }
            }
        }
        assert_eq!(find_byte(b"\x01\x00\n", b'\n'), Some(2));
        assert_eq!(find_byte(b"\x0b\x0a", b'\n'), Some(1));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        /// Words up to eight bytes against `eq_ignore_ascii_case`, near the letters' other case
        /// and the bytes that differ from them in bit 0x20 only.
        #[test]
        fn eq_word_is_eq_ignore_ascii_case(
            b in prop::collection::vec(prop::sample::select(b"tagTAG@A\x01!aAgG\x07".to_vec()), 0..5),
        ) {
            prop_assert_eq!(eq_word(&b, b"tag"), b.eq_ignore_ascii_case(b"tag"));
            prop_assert_eq!(eq_word(&b, b"a!g"), b.eq_ignore_ascii_case(b"a!g"));
            prop_assert_eq!(eq_word(&b, b""), b.is_empty());
        }
    }

    /// The word-at-a-time check against the byte-by-byte one: every position of a CR or LF
    /// (and of their neighbours 0x0b, 0x0c, 0x8a, 0x8d, 0x00, 0xff) in every length up to 40.
    #[test]
    fn has_cr_or_lf_matches_the_bytewise_check() {
        for len in 0..40 {
            for fill in [b'a', 0x00, 0xff, 0x0b, 0x0c, 0x09, 0x8a, 0x8d, 0x0e] {
                let mut buf = vec![fill; len];
                assert_eq!(has_cr_or_lf(&buf), obvious::has_cr_or_lf(&buf));
                for at in 0..len {
                    for probe in [b'\r', b'\n', 0x0b, 0x0c, 0x8a, 0x8d, 0x00, 0x01, 0xff] {
                        let keep = buf[at];
                        buf[at] = probe;
                        assert_eq!(has_cr_or_lf(&buf), obvious::has_cr_or_lf(&buf), "{buf:?}");
                        buf[at] = keep;
                    }
                }
            }
        }
    }

    #[test]
    fn host_bytes_are_the_rfc_3261_ones_and_underscore() {
        for c in 0..=255u8 {
            let host = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_');
            assert_eq!(is_host_byte(c), host, "{c:#x}");
        }
    }
}
