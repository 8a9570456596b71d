//! ITU-T G.711 µ-law (PCMU) and A-law (PCMA) for 16-bit linear PCM.
//!
//! Follows the conventions of the ITU-T G.191 reference tools: negative inputs are folded with the
//! one's complement (`!x`), so `x` and `!x` encode to mirror-image codes, µ-law works on the top 14
//! bits and A-law on the top 13. The encoders find the segment with a leading-zero count instead of
//! a search loop; `core/tests/media_g711.rs` checks all 65,536 inputs against a formula-based
//! reference.

/// Encode one 16-bit sample to µ-law.
#[inline]
pub fn linear_to_ulaw(x: i16) -> u8 {
    // Fold to a magnitude and a sign bit (0x80 = positive in the transmitted code).
    let (mag, sign) = if x < 0 {
        ((!x) as u16 >> 2, 0x00u8)
    } else {
        (x as u16 >> 2, 0x80u8)
    };
    // 14-bit magnitude plus the µ-law bias of 33, clipped to 13 bits.
    let biased = (mag as u32 + 33).min(0x1FFF);
    // Segment = position of the highest set bit above bit 5 (biased >= 33 has bit 5 set).
    let seg = (31 - biased.leading_zeros()) - 5; // 0..=7
    let mantissa = (biased >> (seg + 1)) & 0x0F;
    (!(((seg << 4) | mantissa) as u8) & 0x7F) | sign
}

/// Decode one µ-law code to 16-bit linear.
#[inline]
pub fn ulaw_to_linear(code: u8) -> i16 {
    let c = !code;
    let seg = (c >> 4) & 0x07;
    let mantissa = (c & 0x0F) as i32;
    // Reconstruction level of the 14-bit quantiser, scaled to 16 bits.
    let mag = ((((2 * mantissa + 33) << seg) - 33) * 4) as i16;
    if c & 0x80 != 0 {
        -mag
    } else {
        mag
    }
}

/// Encode one 16-bit sample to A-law.
#[inline]
pub fn linear_to_alaw(x: i16) -> u8 {
    let (mag, sign) = if x < 0 {
        ((!x) as u16 >> 4, 0x00u8)
    } else {
        (x as u16 >> 4, 0x80u8)
    };
    // `mag` is 11 bits; segment 0 and 1 share a step size, segments 2..7 double it each time.
    let code = if mag < 16 {
        mag as u8
    } else {
        let exp = 31 - (mag as u32).leading_zeros() - 3; // 1..=7
        let mantissa = (mag as u32 >> (exp - 1)) & 0x0F;
        ((exp << 4) | mantissa) as u8
    };
    (code | sign) ^ 0x55
}

/// Decode one A-law code to 16-bit linear.
#[inline]
pub fn alaw_to_linear(code: u8) -> i16 {
    let c = code ^ 0x55;
    let exp = (c >> 4) & 0x07;
    let mut mantissa = (c & 0x0F) as i32;
    if exp > 0 {
        mantissa += 16;
    }
    let mut mag = (mantissa << 4) + 8;
    if exp > 1 {
        mag <<= exp - 1;
    }
    let mag = mag as i16;
    if c & 0x80 != 0 {
        mag
    } else {
        -mag
    }
}

/// Encode a block of 8 kHz samples to µ-law, one byte per sample.
pub fn encode_ulaw(pcm: &[i16], out: &mut Vec<u8>) {
    out.extend(pcm.iter().map(|&s| linear_to_ulaw(s)));
}

/// Encode a block of 8 kHz samples to A-law, one byte per sample.
pub fn encode_alaw(pcm: &[i16], out: &mut Vec<u8>) {
    out.extend(pcm.iter().map(|&s| linear_to_alaw(s)));
}
