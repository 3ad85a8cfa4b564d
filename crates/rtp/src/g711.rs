//! ITU-T G.711 µ-law (PCMU) and A-law (PCMA) ↔ 16-bit linear PCM.
//!
//! Decoding is a lookup in a table computed at compile time; encoding is a few integer
//! operations (segment = position of the highest set bit). Neither allocates. Decoded
//! values are the usual 16-bit reconstruction levels (the middle of each G.711 decision
//! interval, as in the widely used `g711.c` reference code): µ-law reaches ±32124, A-law
//! ±32256. Encoding picks the interval that contains the sample; encode(decode(c)) == c
//! for every code (µ-law's negative zero 0x7f comes back as 0xff).
//!
//! Why this module and not the `audio-codec` crate's `pcmu`/`pcma` (already a dependency, for
//! G.722 and resampling): `cargo run --release -p siprec-rtp --example codec_bench` compares
//! them. On the 2-core AMD EPYC VM, per 20 ms packet: decoding (what srs-server does per
//! packet) 0.06 µs here against 0.09 µs (PCMU) and 0.08 against 0.12 µs (PCMA); encoding 0.29
//! and 0.34 µs here against 0.11 and 0.10 µs there (a 64 KiB table per law). Every figure is
//! under 0.002 % of the 20 ms a packet lasts, so speed decides nothing. Output does: µ-law is
//! identical in both directions (all 256 codes, all 65,536 samples), but `audio-codec`'s A-law
//! encoder maps 897 negative samples (between -31751 and -1) to other codes than the interval
//! that contains them (it offsets negative values by 8 and sends -8..=-1 to 0xD5), so
//! switching would change the PCMA bytes siprec-client sends. This module also works on
//! slices without a `Box<dyn Decoder>` or an error path, and keeps no 128 KiB of tables.

/// µ-law bias added before segment search (0x84 = 132 on the 16-bit scale).
const ULAW_BIAS: i32 = 0x84;
/// Largest magnitude µ-law encodes without clipping (before the bias).
const ULAW_CLIP: i32 = 32635;

const fn ulaw_to_linear(code: u8) -> i16 {
    let u = !code;
    let t = ((((u & 0x0f) as i32) << 3) + ULAW_BIAS) << ((u & 0x70) >> 4);
    (if u & 0x80 != 0 {
        ULAW_BIAS - t
    } else {
        t - ULAW_BIAS
    }) as i16
}

const fn alaw_to_linear(code: u8) -> i16 {
    let a = code ^ 0x55;
    let mut t = ((a & 0x0f) as i32) << 4;
    let segment = ((a & 0x70) >> 4) as i32;
    match segment {
        0 => t += 8,
        1 => t += 0x108,
        _ => t = (t + 0x108) << (segment - 1),
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

const fn table(alaw: bool) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if alaw {
            alaw_to_linear(i as u8)
        } else {
            ulaw_to_linear(i as u8)
        };
        i += 1;
    }
    t
}

/// µ-law code → linear sample.
const ULAW_TABLE: [i16; 256] = table(false);
/// A-law code → linear sample.
const ALAW_TABLE: [i16; 256] = table(true);

/// Decodes one µ-law (PCMU) code to a 16-bit linear sample.
#[inline]
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_TABLE[usize::from(code)]
}

/// Decodes one A-law (PCMA) code to a 16-bit linear sample.
#[inline]
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_TABLE[usize::from(code)]
}

/// Encodes a 16-bit linear sample to µ-law (PCMU). Magnitudes above 32635 clip.
#[inline]
pub fn ulaw_encode(sample: i16) -> u8 {
    let mut v = i32::from(sample);
    let mask: u8 = if v < 0 {
        v = -v;
        0x7f
    } else {
        0xff
    };
    v = v.min(ULAW_CLIP) + ULAW_BIAS; // 0x84..=0x7fff: highest set bit is 7..=14
    let segment = (31 - v.leading_zeros()) as i32 - 7;
    let mantissa = (v >> (segment + 3)) & 0x0f;
    (((segment << 4) | mantissa) as u8) ^ mask
}

/// Encodes a 16-bit linear sample to A-law (PCMA). Magnitudes above 32767 / 32768 clip.
#[inline]
pub fn alaw_encode(sample: i16) -> u8 {
    let mut v = i32::from(sample) >> 3; // 13-bit magnitude scale
    let mask: u8 = if v >= 0 {
        0xd5
    } else {
        v = -v - 1;
        0x55
    };
    // v is 0..=0xfff here; segment 0 covers 0..=0x1f, segment s >= 1 covers
    // 0x10 << s ..= (0x20 << s) - 1.
    let segment = if v <= 0x1f {
        0
    } else {
        (31 - v.leading_zeros()) as i32 - 4
    };
    let mantissa = if segment < 2 {
        (v >> 1) & 0x0f
    } else {
        (v >> segment) & 0x0f
    };
    (((segment << 4) | mantissa) as u8) ^ mask
}

/// Decodes µ-law codes into `out`; returns the number of samples written
/// (`min(input.len(), out.len())`).
pub fn decode_ulaw_into(input: &[u8], out: &mut [i16]) -> usize {
    let n = input.len().min(out.len());
    for (o, &c) in out.iter_mut().zip(input) {
        *o = ulaw_decode(c);
    }
    n
}

/// Decodes A-law codes into `out`; returns the number of samples written
/// (`min(input.len(), out.len())`).
pub fn decode_alaw_into(input: &[u8], out: &mut [i16]) -> usize {
    let n = input.len().min(out.len());
    for (o, &c) in out.iter_mut().zip(input) {
        *o = alaw_decode(c);
    }
    n
}

/// Encodes samples to µ-law into `out`; returns the number of codes written
/// (`min(input.len(), out.len())`).
pub fn encode_ulaw_into(input: &[i16], out: &mut [u8]) -> usize {
    let n = input.len().min(out.len());
    for (o, &s) in out.iter_mut().zip(input) {
        *o = ulaw_encode(s);
    }
    n
}

/// Encodes samples to A-law into `out`; returns the number of codes written
/// (`min(input.len(), out.len())`).
pub fn encode_alaw_into(input: &[i16], out: &mut [u8]) -> usize {
    let n = input.len().min(out.len());
    for (o, &s) in out.iter_mut().zip(input) {
        *o = alaw_encode(s);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_known_values() {
        // Silence (both zeros), smallest steps, full scale.
        assert_eq!(ulaw_decode(0xff), 0);
        assert_eq!(ulaw_decode(0x7f), 0);
        assert_eq!(ulaw_decode(0xfe), 8);
        assert_eq!(ulaw_decode(0x7e), -8);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(0xf0), 120);
        assert_eq!(ulaw_decode(0xef), 132);
        assert_eq!(ulaw_decode(0xe0), 372);
        assert_eq!(ulaw_decode(0x8f), 16764);
        assert_eq!(ulaw_encode(0), 0xff);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(ulaw_encode(-1), 0x7f);
        assert_eq!(ulaw_encode(8), 0xfe);
        assert_eq!(ulaw_encode(-8), 0x7e);
    }

    #[test]
    fn alaw_known_values() {
        assert_eq!(alaw_decode(0xd5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0xaa), 32256);
        assert_eq!(alaw_decode(0x2a), -32256);
        assert_eq!(alaw_decode(0x80), 5504);
        assert_eq!(alaw_decode(0x00), -5504);
        assert_eq!(alaw_decode(0xd4), 24);
        assert_eq!(alaw_decode(0xc5), 264);
        assert_eq!(alaw_decode(0xf5), 528);
        assert_eq!(alaw_decode(0xe5), 1056);
        assert_eq!(alaw_encode(0), 0xd5);
        assert_eq!(alaw_encode(-1), 0x55);
        assert_eq!(alaw_encode(i16::MAX), 0xaa);
        assert_eq!(alaw_encode(i16::MIN), 0x2a);
    }

    #[test]
    fn all_256_codes_round_trip() {
        for code in 0..=255u8 {
            let expected_ulaw = if code == 0x7f { 0xff } else { code }; // -0 encodes as +0
            assert_eq!(
                ulaw_encode(ulaw_decode(code)),
                expected_ulaw,
                "ulaw {code:#04x}"
            );
            assert_eq!(alaw_encode(alaw_decode(code)), code, "alaw {code:#04x}");
        }
    }

    #[test]
    fn decode_tables_are_monotonic_per_sign() {
        // Positive µ-law codes 0xff down to 0x80 grow; negative ones 0x7f down to 0x00 fall.
        for c in 0x81..=0xffu8 {
            assert!(ulaw_decode(c - 1) > ulaw_decode(c));
        }
        for c in 0x01..=0x7fu8 {
            assert!(ulaw_decode(c - 1) < ulaw_decode(c));
        }
        // A-law: sort all 256 values; they are distinct.
        let mut v: Vec<i16> = (0..=255u8).map(alaw_decode).collect();
        v.sort_unstable();
        v.dedup();
        assert_eq!(v.len(), 256);
    }

    #[test]
    fn quantisation_error_is_bounded_for_every_sample() {
        for x in i16::MIN..=i16::MAX {
            let m = i32::from(x).abs();
            let eu = (i32::from(ulaw_decode(ulaw_encode(x))) - i32::from(x)).abs();
            assert!(eu <= (m + ULAW_BIAS) / 32 + 1, "ulaw {x}: error {eu}");
            let ea = (i32::from(alaw_decode(alaw_encode(x))) - i32::from(x)).abs();
            assert!(ea <= m / 32 + 16, "alaw {x}: error {ea}");
        }
    }

    #[test]
    fn slice_helpers() {
        let pcm = [0i16, 1000, -1000, 32000, -32000];
        let mut codes = [0u8; 8];
        assert_eq!(encode_ulaw_into(&pcm, &mut codes), 5);
        let mut back = [0i16; 3];
        assert_eq!(decode_ulaw_into(&codes[..5], &mut back), 3);
        assert_eq!(back[0], 0);
        assert_eq!(encode_alaw_into(&pcm, &mut codes[..2]), 2);
        let mut back = [0i16; 5];
        assert_eq!(decode_alaw_into(&codes[..2], &mut back), 2);
        assert_eq!(back[0], 8);
    }
}
