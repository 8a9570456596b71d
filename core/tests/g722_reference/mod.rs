//! A G.722 (64 kbit/s, mode 1) decoder for the tests, written apart from `media::g722` so that a
//! test decoding the server's bytes does not judge the encoder with its own twin. It follows the
//! block structure of ITU-T G.722 §4 and its G.191 reference code (INVQAL, LOGSCL, SCALEL,
//! RECONS, PARREC, UPPOL1/2, UPZERO, FILTEP, FILTEZ, PREDIC, the receive QMF), with the inverse
//! quantiser tables indexed by code with their sign, as the Recommendation tabulates them. It is
//! checked sample for sample against ffmpeg's decoder on the fixture in `media_codecs.rs`.
#![allow(dead_code)]

/// Lower-band inverse quantiser outputs for the 6-bit code, sign included (Table 6 × 8).
const QM6: [i32; 64] = [
    -136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232,
    -9360, -8576, -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776,
    -2400, -2032, -1688, -1360, -1040, -728, 24808, 21904, 19008, 16704, 14984, 13512, 12280,
    11192, 10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456, 4944, 4464, 4008, 3576, 3168, 2776,
    2400, 2032, 1688, 1360, 1040, 728, 432, 136, -432, -136,
];
/// Lower-band 4-bit inverse quantiser for adaptation (Table 7 × 8), by the code's top 4 bits.
const QM4: [i32; 16] = [
    0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584,
    1200, 0,
];
/// The 4-bit code's magnitude class for the log scale factor update, and its multipliers (Table 8).
const RL42: [usize; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];
const WL: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];
/// Upper band: inverse quantiser outputs by 2-bit code (Table 5 × 8), magnitude classes and
/// multipliers.
const QM2: [i32; 4] = [-7408, -1616, 7408, 1616];
const RH2: [usize; 4] = [2, 1, 2, 1];
const WH: [i32; 3] = [0, -214, 798];
/// Antilog table of SCALEL/SCALEH (Table 9).
const ILB: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
    2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];
/// QMF coefficients h(0)..h(23) (Table 11).
const H: [i32; 24] = [
    3, -11, -11, 53, 12, -156, 32, 362, -210, -805, 951, 3876, 3876, 951, -805, -210, 362, 32,
    -156, 12, 53, -11, -11, 3,
];

fn saturate(x: i32) -> i32 {
    x.clamp(-32768, 32767)
}

/// The adaptive predictor state of one sub-band (G.722 §3.6, blocks 4L/4H).
#[derive(Clone, Default)]
struct Predictor {
    nb: i32,
    det: i32,
    s: i32,
    sp: i32,
    sz: i32,
    a: [i32; 3],
    b: [i32; 7],
    d: [i32; 7],
    p: [i32; 3],
    r: [i32; 3],
}

impl Predictor {
    fn new(det: i32) -> Predictor {
        Predictor {
            det,
            ..Predictor::default()
        }
    }

    /// Blocks RECONS, PARREC, UPPOL2, UPPOL1, UPZERO, DELAYA, FILTEP, FILTEZ, PREDIC for one
    /// quantised difference signal `dx`.
    fn block4(&mut self, dx: i32) {
        let r0 = saturate(self.s + dx);
        let p0 = saturate(self.sz + dx);
        let negative = |v: i32| v < 0;

        // UPPOL2
        let wd1 = saturate(self.a[1] * 4);
        let wd2 = if negative(p0) == negative(self.p[1]) {
            saturate(-wd1)
        } else {
            wd1
        };
        let wd3 = if negative(p0) == negative(self.p[2]) {
            128
        } else {
            -128
        };
        let ap2 = saturate((wd2 >> 7) + wd3 + ((self.a[2] * 32512) >> 15)).clamp(-12288, 12288);

        // UPPOL1
        let wd1 = if negative(p0) == negative(self.p[1]) {
            192
        } else {
            -192
        };
        let limit = saturate(15360 - ap2);
        let ap1 = saturate(wd1 + ((self.a[1] * 32640) >> 15)).clamp(-limit, limit);

        // UPZERO
        let step = if dx == 0 { 0 } else { 128 };
        let mut bp = [0i32; 7];
        for ((bp, &b), &d) in bp.iter_mut().zip(&self.b).zip(&self.d).skip(1) {
            let wd2 = if negative(d) == negative(dx) {
                step
            } else {
                -step
            };
            *bp = saturate(wd2 + ((b * 32640) >> 15));
        }

        // DELAYA
        for i in (1..7).rev() {
            self.d[i] = self.d[i - 1];
        }
        self.d[1] = dx;
        self.b = bp;
        self.r = [0, r0, self.r[1]];
        self.p = [0, p0, self.p[1]];
        self.a = [0, ap1, ap2];

        // FILTEP, FILTEZ, PREDIC
        let wd1 = (self.a[1] * saturate(self.r[1] + self.r[1])) >> 15;
        let wd2 = (self.a[2] * saturate(self.r[2] + self.r[2])) >> 15;
        self.sp = saturate(wd1 + wd2);
        let mut sz = 0;
        for i in 1..7 {
            sz = saturate(sz + ((self.b[i] * saturate(self.d[i] + self.d[i])) >> 15));
        }
        self.sz = sz;
        self.s = saturate(self.sp + self.sz);
    }

    /// LOGSCL/LOGSCH then SCALEL/SCALEH: the log scale factor after a code of magnitude class
    /// `w` (a multiplier), its ceiling, and the bias of the antilog.
    fn scale(&mut self, w: i32, ceiling: i32, bias: i32) {
        self.nb = (((self.nb * 127) >> 7) + w).clamp(0, ceiling);
        let wd1 = ((self.nb >> 6) & 31) as usize;
        let wd2 = bias - (self.nb >> 11);
        let wd3 = if wd2 < 0 {
            ILB[wd1] << -wd2
        } else {
            ILB[wd1] >> wd2
        };
        self.det = wd3 << 2;
    }
}

/// A G.722 decoder at 64 kbit/s.
#[derive(Clone)]
pub struct ReferenceDecoder {
    low: Predictor,
    high: Predictor,
    /// Receive QMF delay line, oldest first.
    x: [i32; 24],
}

impl Default for ReferenceDecoder {
    fn default() -> Self {
        ReferenceDecoder::new()
    }
}

impl ReferenceDecoder {
    /// A decoder in the reset state of G.722 §4.
    pub fn new() -> ReferenceDecoder {
        ReferenceDecoder {
            low: Predictor::new(32),
            high: Predictor::new(8),
            x: [0; 24],
        }
    }

    /// Decode octets (bits 7–6 upper band, 5–0 lower band, RFC 3551 §4.5.2), appending two
    /// 16 kHz samples per octet.
    pub fn decode(&mut self, octets: &[u8], out: &mut Vec<i16>) {
        for &code in octets {
            let ilr = (code & 0x3F) as usize;
            let ih = (code >> 6) as usize;

            // Lower band: INVQBL, RECONS, LIMIT; INVQAL for adaptation.
            let rlow = (self.low.s + ((self.low.det * QM6[ilr]) >> 15)).clamp(-16384, 16383);
            let ilr4 = ilr >> 2;
            let dlowt = (self.low.det * QM4[ilr4]) >> 15;
            self.low.scale(WL[RL42[ilr4]], 18432, 8);
            self.low.block4(dlowt);

            // Upper band: INVQAH, RECONS, LIMIT.
            let dhigh = (self.high.det * QM2[ih]) >> 15;
            let rhigh = (dhigh + self.high.s).clamp(-16384, 16383);
            self.high.scale(WH[RH2[ih]], 22528, 10);
            self.high.block4(dhigh);

            // Receive QMF (§4.4): two new inputs, then the two output samples.
            self.x.copy_within(2.., 0);
            self.x[22] = rlow + rhigh;
            self.x[23] = rlow - rhigh;
            let (mut xout1, mut xout2) = (0i32, 0i32);
            for i in 0..12 {
                xout2 += self.x[2 * i] * H[2 * i];
                xout1 += self.x[2 * i + 1] * H[2 * i + 1];
            }
            out.push(saturate(xout1 >> 11) as i16);
            out.push(saturate(xout2 >> 11) as i16);
        }
    }
}
