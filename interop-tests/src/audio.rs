//! Tones and their detection.

/// `n` samples of a sine at `freq` Hz, amplitude `amp`, starting at sample `offset`.
pub fn tone(freq: f64, rate: u32, offset: u64, n: usize, amp: f64) -> Vec<i16> {
    (0..n)
        .map(|i| {
            let t = (offset + i as u64) as f64 / rate as f64;
            (amp * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16
        })
        .collect()
}

/// Power of `freq` in `samples` (Goertzel), normalised by length.
pub fn tone_power(samples: &[i16], rate: u32, freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / rate as f64;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = x as f64 + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let p = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    p / (samples.len().max(1) as f64).powi(2)
}

/// Splits interleaved stereo into (left, right).
pub fn deinterleave(samples: &[i16]) -> (Vec<i16>, Vec<i16>) {
    let l = samples.iter().step_by(2).copied().collect();
    let r = samples.iter().skip(1).step_by(2).copied().collect();
    (l, r)
}

/// Largest absolute sample value.
pub fn peak(samples: &[i16]) -> i32 {
    samples.iter().map(|s| (*s as i32).abs()).max().unwrap_or(0)
}

/// Samples `from_s..to_s` seconds of an 8 kHz channel (clamped to its length).
pub fn window(ch: &[i16], from_s: f64, to_s: f64) -> &[i16] {
    let a = ((from_s * 8000.0) as usize).min(ch.len());
    let b = ((to_s * 8000.0) as usize).min(ch.len());
    &ch[a..b]
}

/// Asserts that an 8 kHz signal carries `want` Hz (clearly above noise) and not `other` Hz
/// (at least 20 dB below).
pub fn assert_tone(ch: &[i16], want: f64, other: f64, what: &str) {
    let pw = tone_power(ch, 8000, want);
    let po = tone_power(ch, 8000, other);
    assert!(
        pw > 100.0 * po && pw > 1e5,
        "{what}: {want} Hz power {pw:.1} vs {other} Hz {po:.1}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goertzel_tells_tones_apart() {
        let t = tone(440.0, 8000, 0, 8000, 8000.0);
        assert!(tone_power(&t, 8000, 440.0) > 100.0 * tone_power(&t, 8000, 880.0));
    }
}
