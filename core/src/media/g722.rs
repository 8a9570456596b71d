//! ITU-T G.722 at 64 kbit/s (mode 1): 16 kHz linear PCM in, one byte per two samples out.
//!
//! Written from the description in Recommendation G.722 (§3 encoder, §4 decoder) with the
//! 16-bit fixed-point arithmetic of the ITU-T G.191 reference tools, so that the bit stream is
//! what any conforming decoder expects:
//! - a 24-tap quadrature mirror filter splits the band into 0–4 kHz and 4–8 kHz at 8 kHz each;
//! - the lower band is coded with 6-bit adaptive differential PCM, the upper band with 2 bits;
//! - both bands predict with a pole-zero predictor (2 poles, 6 zeros) adapted by sign-sign LMS,
//!   and scale the quantiser by a log-domain step size with leakage.
//!
//! Each octet carries the 2 upper-band bits in bits 7–6 and the 6 lower-band bits in bits 5–0
//! (RFC 3551 §4.5.2 packs them into RTP as-is). The decoder exists for tests and tools.

/// QMF coefficients h(0)..h(23) of G.722 Table 11 scaled by 2^13 (symmetric: h(i) = h(23-i)).
const QMF: [i32; 24] = [
    3, -11, -11, 53, 12, -156, 32, 362, -210, -805, 951, 3876, 3876, 951, -805, -210, 362, 32,
    -156, 12, 53, -11, -11, 3,
];

/// Lower-band 6-bit quantiser decision levels (G.722 Table 6), in units of the scale factor / 8.
const Q6: [i32; 31] = [
    0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940,
    1023, 1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919, 3200,
];
/// [`Q6`]'s levels 1..=29 at indices 1..=29, repeated at 30 and 31 so that a search of 31
/// sorted entries covers them (index 0 is never read).
const Q6_SEARCH: [i32; 32] = {
    let mut t = [0; 32];
    let mut i = 1;
    while i < 32 {
        t[i] = Q6[if i < 30 { i } else { 29 }];
        i += 1;
    }
    t
};

/// How many of the lower-band decision levels 1..=29, scaled by the step size `det`, are at or
/// below the magnitude `wd`. The scaled levels never decrease, so this is a binary search:
/// five halvings of [`Q6_SEARCH`], each a comparison the compiler turns into a conditional
/// move (the outcome is as unpredictable as the music, so a branch would often be mispredicted).
#[inline]
fn levels_at_or_below(wd: i32, det: i32) -> usize {
    let mut n = 0;
    for half in [16, 8, 4, 2, 1] {
        let q = Q6_SEARCH[n + half];
        n += if ((q << 3) * det) >> 15 <= wd {
            half
        } else {
            0
        };
    }
    n.min(29)
}

/// Codeword for a positive difference falling in interval `m` (1..=30) of [`Q6`].
const IL_POS: [u8; 31] = [
    0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39,
    38, 37, 36, 35, 34, 33, 32,
];
/// Codeword for a negative difference falling in interval `m` (1..=30) of [`Q6`].
const IL_NEG: [u8; 31] = [
    0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11,
    10, 9, 8, 7, 6, 5, 4,
];

/// 4-bit inverse quantiser used for adaptation in both encoder and decoder (Table 7): the index
/// into [`OQ4`] and the sign for each 4-bit code (the top four bits of the 6-bit code).
const RIL4: [usize; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];
const NEG4: [bool; 16] = [
    false, true, true, true, true, true, true, true, false, false, false, false, false, false,
    false, false,
];
const OQ4: [i32; 8] = [0, 150, 323, 530, 786, 1121, 1612, 2557];
/// Log scale factor multipliers of the lower band (Table 8).
const WL: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];

/// 6-bit inverse quantiser of the lower-band decoder output (Table 6), index and sign per code.
const RIL6: [usize; 64] = [
    1, 1, 1, 1, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10,
    9, 8, 7, 6, 5, 4, 3, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13,
    12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 2, 1,
];
const OQ6: [i32; 31] = [
    0, 17, 54, 91, 130, 170, 211, 254, 300, 347, 396, 447, 501, 558, 618, 682, 750, 822, 899, 982,
    1072, 1170, 1279, 1399, 1535, 1689, 1873, 2088, 2376, 2738, 3101,
];

/// Upper band: 2-bit codes. Magnitude index and sign per code, output levels, log multipliers.
const IH2: [usize; 4] = [2, 1, 2, 1];
const NEGH: [bool; 4] = [true, true, false, false];
const OQ2: [i32; 3] = [0, 202, 926];
const WH: [i32; 3] = [0, -214, 798];
const Q2: i32 = 564;

/// 2^(i/32) in Q11 (G.722 Table 9's antilog table, `ILB`), used to turn the log scale factor
/// into a linear step size.
const ILB: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
    2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];

// 16-bit saturating arithmetic, as the Recommendation's fixed-point description requires.
#[inline]
fn sat(x: i32) -> i32 {
    x.clamp(-32768, 32767)
}
#[inline]
fn add(a: i32, b: i32) -> i32 {
    sat(a + b)
}
#[inline]
fn sub(a: i32, b: i32) -> i32 {
    sat(a - b)
}
/// Q15 multiply: floor(a·b / 2^15), saturated.
#[inline]
fn mult(a: i32, b: i32) -> i32 {
    sat((a * b) >> 15)
}
/// The sign of a 16-bit quantity as the Recommendation tests it: -1 for negative, 0 otherwise.
#[inline]
fn sgn(x: i32) -> i32 {
    x >> 31
}
/// Magnitude as the quantisers see it: one's complement for negative values.
#[inline]
fn fold(x: i32) -> i32 {
    x ^ (x >> 31)
}
/// Clamp a reconstructed sub-band sample to the 15-bit range.
#[inline]
fn limit(x: i32) -> i32 {
    x.clamp(-16384, 16383)
}

/// Linear step size from a log scale factor (`wd` = the factor's top 9 bits, biased so that
/// 320 means 2^0): 4·2^(wd/32 − 10) in the Recommendation's integer form.
#[inline]
fn step_from_log(wd: i32) -> i32 {
    let base = ILB[(wd & 31) as usize];
    let shift = (wd >> 5) - 10;
    let lin = if shift >= 0 {
        base << shift
    } else {
        base >> -shift
    };
    lin << 2
}

/// The adaptive predictor and scale factor shared by both bands (blocks PARREC, RECONS, UPPOL1,
/// UPPOL2, UPZERO, FILTEP, FILTEZ, PREDIC).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Band {
    /// Predicted signal s, its pole part sp and zero part sz.
    s: i32,
    sz: i32,
    /// Log scale factor and linear step size.
    nb: i32,
    det: i32,
    /// Pole coefficients a1, a2 (index 0 unused) and zero coefficients b1..b6.
    a: [i32; 3],
    b: [i32; 7],
    /// Quantised differences d(n)..d(n-6), partial reconstructions p(n)..p(n-2), and
    /// reconstructed signals r(n)..r(n-2).
    d: [i32; 7],
    p: [i32; 3],
    r: [i32; 3],
}

impl Band {
    fn new(det: i32) -> Band {
        Band {
            s: 0,
            sz: 0,
            nb: 0,
            det,
            a: [0; 3],
            b: [0; 7],
            d: [0; 7],
            p: [0; 3],
            r: [0; 3],
        }
    }

    /// Update the predictor after a new quantised difference `d` (already computed with the
    /// old step size) and the new step size.
    fn adapt(&mut self, d: i32) {
        self.d[0] = d;
        self.p[0] = add(d, self.sz);
        self.r[0] = add(self.s, d);

        // UPZERO: sign-sign LMS on the zero coefficients with leakage 1 - 2^-8, then shift d.
        // Neither operation can saturate: a 16-bit b times 32640 / 2^15 lies in
        // [-32640, 32639], and ±128 keeps that within 16 bits.
        let g = if d == 0 { 0 } else { 128 };
        let s0 = sgn(d);
        for i in (1..7).rev() {
            // +g when the signs agree, −g when they differ (a conditional negate, no branch).
            let differ = s0 ^ sgn(self.d[i]);
            let step = (g ^ differ) - differ;
            self.b[i] = step + ((self.b[i] * 32640) >> 15);
            self.d[i] = self.d[i - 1];
        }

        // UPPOL2 then UPPOL1: pole coefficients with the stability constraints of §3.6.
        let (s0, s1, s2) = (sgn(self.p[0]), sgn(self.p[1]), sgn(self.p[2]));
        let w = sat(self.a[1] << 2);
        // −w when p(n) and p(n−1) agree in sign (saturating: −(−32768) is 32767).
        let w = (if s0 == s1 { sub(0, w) } else { w }) >> 7;
        let w2 = if s0 == s2 { 128 } else { -128 };
        let a2 = add(add(w, w2), mult(self.a[2], 32512)).clamp(-12288, 12288);
        self.a[2] = a2;

        let w = if s0 == s1 { 192 } else { -192 };
        let a1 = add(w, mult(self.a[1], 32640));
        let bound = sub(15360, a2);
        self.a[1] = a1.clamp(-bound, bound);
        self.p[2] = self.p[1];
        self.p[1] = self.p[0];

        // FILTEZ, FILTEP, PREDIC. A quantised difference is at most 10,228 in magnitude (the
        // largest step size, 16,384, times the largest output level, 2557·8, over 2^15), so
        // 2·d and 2·d·b / 2^15 stay within 16 bits; only the running sum needs saturating.
        let mut sz = 0;
        for i in (1..7).rev() {
            sz = add(sz, (2 * self.d[i] * self.b[i]) >> 15);
        }
        self.r[2] = self.r[1];
        self.r[1] = self.r[0];
        let sp = add(
            mult(self.a[1], add(self.r[1], self.r[1])),
            mult(self.a[2], add(self.r[2], self.r[2])),
        );
        self.sz = sz;
        self.s = add(sp, sz);
    }

    fn adapt_low(&mut self, code6: u8) {
        let c4 = (code6 >> 2) as usize;
        let d = mult(self.det, signed(OQ4[RIL4[c4]] << 3, NEG4[c4]));
        self.nb = (mult(self.nb, 32512) + WL[RIL4[c4]]).clamp(0, 18432);
        self.det = step_from_log(((self.nb >> 6) & 511) + 64);
        self.adapt(d);
    }

    fn adapt_high(&mut self, code2: u8) {
        let c = code2 as usize;
        let d = mult(signed(OQ2[IH2[c]] << 3, NEGH[c]), self.det);
        self.nb = (mult(self.nb, 32512) + WH[IH2[c]]).clamp(0, 22528);
        self.det = step_from_log((self.nb >> 6) & 511);
        self.adapt(d);
    }
}

#[inline]
fn signed(v: i32, negative: bool) -> i32 {
    if negative {
        -v
    } else {
        v
    }
}

/// The 24-sample delay line of a QMF, newest sample first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Qmf {
    x: [i32; 24],
}

impl Qmf {
    /// Push two samples (older first) and return the even and odd polyphase sums.
    #[inline]
    fn push(&mut self, older: i32, newer: i32) -> (i32, i32) {
        self.x.copy_within(0..22, 2);
        self.x[0] = newer;
        self.x[1] = older;
        let mut even = 0i32;
        let mut odd = 0i32;
        for i in 0..12 {
            even += QMF[2 * i] * self.x[2 * i];
            odd += QMF[2 * i + 1] * self.x[2 * i + 1];
        }
        (even, odd)
    }
}

/// A G.722 encoder (64 kbit/s). Keep one per continuous stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoder {
    qmf: Qmf,
    low: Band,
    high: Band,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder::new()
    }
}

impl Encoder {
    pub fn new() -> Encoder {
        Encoder {
            qmf: Qmf::default(),
            low: Band::new(32),
            high: Band::new(8),
        }
    }

    /// Encode two consecutive 16 kHz samples into one octet.
    pub fn encode_pair(&mut self, first: i16, second: i16) -> u8 {
        let (even, odd) = self.qmf.push(first as i32, second as i32);
        // Sub-band signals in 15 bits: h is in Q13, the sum of the two polyphase halves in Q13
        // has unity DC gain, and G.722 carries the 16-bit input halved.
        let xl = limit(sat((even + odd) >> 14));
        let xh = limit(sat((even - odd) >> 14));

        // Lower band: 6-bit quantisation of the prediction error (QUANTL).
        let el = sub(xl, self.low.s);
        let wd = fold(el);
        // The interval: the first m in 1..30 whose scaled decision level exceeds |el|, else 30,
        // i.e. one more than the number of levels 1..=29 at or below |el|.
        let m = 1 + levels_at_or_below(wd, self.low.det);
        let il = if el < 0 { IL_NEG[m] } else { IL_POS[m] };
        self.low.adapt_low(il);

        // Upper band: 2-bit quantisation (QUANTH).
        let eh = sub(xh, self.high.s);
        let big = fold(eh) >= mult(Q2 << 3, self.high.det);
        let ih = match (eh < 0, big) {
            (false, false) => 3,
            (false, true) => 2,
            (true, false) => 1,
            (true, true) => 0,
        };
        self.high.adapt_high(ih);

        (ih << 6) | il
    }

    /// Encode `2 · out.len()` 16 kHz samples of `pcm` into `out`, one octet per pair (octets
    /// beyond the samples given are left as they are).
    pub fn encode_into(&mut self, pcm: &[i16], out: &mut [u8]) {
        for (octet, pair) in out.iter_mut().zip(pcm.chunks_exact(2)) {
            *octet = self.encode_pair(pair[0], pair[1]);
        }
    }

    /// Encode 16 kHz samples (an even count; a trailing odd sample is ignored), appending one
    /// octet per pair to `out`.
    pub fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) {
        out.reserve(pcm.len() / 2);
        for pair in pcm.chunks_exact(2) {
            out.push(self.encode_pair(pair[0], pair[1]));
        }
    }
}

/// A G.722 decoder (64 kbit/s), for tests and offline checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoder {
    qmf: Qmf,
    low: Band,
    high: Band,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder {
            qmf: Qmf::default(),
            low: Band::new(32),
            high: Band::new(8),
        }
    }

    /// Decode one octet into two 16 kHz samples (in time order).
    pub fn decode_octet(&mut self, octet: u8) -> [i16; 2] {
        let il = octet & 0x3F;
        let ih = octet >> 6;

        let c = il as usize;
        let dl = mult(
            self.low.det,
            signed(OQ6[RIL6[c]] << 3, !(32..62).contains(&c)),
        );
        let rl = limit(add(self.low.s, dl));
        self.low.adapt_low(il);

        self.high.adapt_high(ih);
        let rh = limit(self.high.r[0]);

        // Receive QMF: the sum and difference of the bands feed the two polyphase branches.
        let (even, odd) = self.qmf.push(add(rl, rh), sub(rl, rh));
        // Gain: each polyphase half of the Q13 filter sums to 2^12, times 2 to undo the
        // transmit halving.
        let first = sat(even >> 11) as i16;
        let second = sat(odd >> 11) as i16;
        [first, second]
    }

    /// Decode octets, appending two samples per octet to `out`.
    pub fn decode(&mut self, octets: &[u8], out: &mut Vec<i16>) {
        out.reserve(octets.len() * 2);
        for &o in octets {
            out.extend_from_slice(&self.decode_octet(o));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_size_table_matches_the_recommendation_endpoints() {
        // Lower band: minimum log factor 0 gives step 32 (its reset value), maximum 18432 gives
        // the largest step; upper band: 0 gives 8.
        assert_eq!(step_from_log(64), 32);
        assert_eq!(step_from_log((18432 >> 6) + 64), 16384);
        assert_eq!(step_from_log(0), 8);
    }

    /// Two seconds of a loud 440 Hz tone with a softer third partial, at 16 kHz.
    fn tone() -> Vec<i16> {
        let tau = 2.0 * std::f64::consts::PI;
        (0..32_000)
            .map(|i| {
                let t = i as f64 / 16000.0;
                (20000.0 * (tau * 440.0 * t).sin() + 6000.0 * (tau * 1320.0 * t).sin()) as i16
            })
            .collect()
    }

    /// Why a pre-encoded stream has a seam wherever a caller's decoder arrives in another state
    /// than the bytes were encoded from (see `media::Encoded`).
    #[test]
    fn encoders_in_different_states_never_meet_but_decoders_fed_the_same_bytes_do() {
        let pcm = tone();
        // Two encoders of the same audio, one started a quarter second late: they choose
        // different octets for most of it and never reach the same state.
        let mut a = Encoder::new();
        a.encode(&pcm[..8000], &mut Vec::new());
        let mut b = Encoder::new();
        let (mut same, mut met) = (0, false);
        for pair in pcm[8000..].chunks_exact(2) {
            same += usize::from(a.encode_pair(pair[0], pair[1]) == b.encode_pair(pair[0], pair[1]));
            met |= a == b;
        }
        assert!(!met, "the encoders met");
        assert!(same < 12_000 / 4, "{same} of 12000 octets alike");

        // Two decoders of the same bytes, one started a quarter second late: they reach the
        // same state, exactly, well within 0.7 s, and stay there.
        let mut bytes = Vec::new();
        Encoder::new().encode(&pcm, &mut bytes);
        let mut c = Decoder::new();
        c.decode(&bytes[..4000], &mut Vec::new());
        let mut d = Decoder::new();
        let mut met = None;
        for (i, &octet) in bytes[4000..].iter().enumerate() {
            let (x, y) = (c.decode_octet(octet), d.decode_octet(octet));
            if met.is_some() {
                assert_eq!(x, y, "octet {i}");
            } else if c == d {
                met = Some(i);
            }
        }
        let met = met.expect("the decoders never met");
        println!("encoders alike on {same} of 12000 octets; decoders met after {met}");
        assert!(met < 5600, "the decoders met after {met} octets");
    }

    #[test]
    fn silence_stays_silent() {
        let mut enc = Encoder::new();
        let mut dec = Decoder::new();
        let mut bytes = Vec::new();
        enc.encode(&[0i16; 320], &mut bytes);
        let mut pcm = Vec::new();
        dec.decode(&bytes, &mut pcm);
        assert!(pcm.iter().all(|&s| s.abs() < 64), "{pcm:?}");
    }
}
