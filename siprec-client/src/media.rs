//! The call's audio: what each leg says, as 16 kHz mono 16-bit samples (wideband: G.722 and
//! Opus carry it whole; G.711 streams are brought down to 8 kHz by their encoder).
//!
//! A [`MediaSource`] is pulled every 20 ms for 320 samples per leg, whether or not any SRS is
//! recording (the call goes on; recording taps it). Implementations: [`WavSource`] (any WAV
//! hound reads: 8/16/24/32-bit integer or 32-bit float, any rate, any channel count; mixed to
//! mono and resampled to 16 kHz once, at load time), [`ToneSource`] and [`Silence`].
//!
//! ```
//! use siprec_client::media::{MediaSource, ToneSource};
//! let mut tone = ToneSource::new(440.0, 8000.0);
//! let mut frame = [0i16; 320];
//! tone.read(&mut frame);
//! assert!(frame.iter().any(|&s| s > 7000));
//! ```

use std::f64::consts::PI;
use std::path::Path;

use crate::Error;

/// The sample rate every source delivers.
pub const RATE: u32 = 16000;

/// Longest WAV accepted, in seconds of audio (a file is held in memory as 16 kHz samples:
/// 2 hours are 230 MB).
pub const MAX_WAV_SECONDS: u64 = 2 * 3600;

/// One leg's audio. `read` must not allocate: it is called on the real-time RTP path.
pub trait MediaSource: Send + std::fmt::Debug + 'static {
    /// Fills `out` with the next samples ([`RATE`], mono); silence once the source has ended.
    fn read(&mut self, out: &mut [i16]);
}

/// Silence.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silence;

impl MediaSource for Silence {
    fn read(&mut self, out: &mut [i16]) {
        out.fill(0);
    }
}

/// A sine tone.
#[derive(Debug, Clone)]
pub struct ToneSource {
    step: f64,
    phase: f64,
    amplitude: f64,
}

impl ToneSource {
    /// A tone of `freq` Hz with peak `amplitude` (0..=32767).
    pub fn new(freq: f64, amplitude: f64) -> ToneSource {
        ToneSource {
            step: 2.0 * PI * freq / f64::from(RATE),
            phase: 0.0,
            amplitude: amplitude.clamp(0.0, 32767.0),
        }
    }
}

impl MediaSource for ToneSource {
    fn read(&mut self, out: &mut [i16]) {
        for s in out.iter_mut() {
            *s = (self.amplitude * self.phase.sin()) as i16;
            self.phase += self.step;
            if self.phase > 2.0 * PI {
                self.phase -= 2.0 * PI;
            }
        }
    }
}

/// What is wrong with a WAV file given as a call leg (reported in [`Error::Wav`]). The file
/// is ours to choose, so every variant means *our configuration is wrong*; nothing here comes
/// from a peer.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    /// hound cannot read it: not a WAV file, an encoding hound does not know, truncated
    /// samples, or the file cannot be read.
    #[error("{0}")]
    Read(#[from] hound::Error),
    /// The header announces no channels or a zero sample rate.
    #[error("no channels or a zero sample rate")]
    NoAudio,
    /// Longer than [`MAX_WAV_SECONDS`].
    #[error("longer than {max_seconds} s")]
    TooLong {
        /// The limit, in seconds.
        max_seconds: u64,
    },
    /// Integer samples of a size other than 1 to 32 bits.
    #[error("{bits}-bit samples are not supported")]
    SampleSize {
        /// Bits per sample in the header.
        bits: u16,
    },
}

/// Samples already at [`RATE`], played once (or looped), then silence.
#[derive(Debug, Clone)]
pub struct WavSource {
    samples: Vec<i16>,
    pos: usize,
    looping: bool,
}

impl WavSource {
    /// Loads a WAV file: mixed to mono, resampled to [`RATE`].
    pub fn open(path: &Path) -> Result<WavSource, Error> {
        let err = |reason: WavError| Error::Wav {
            path: path.display().to_string(),
            reason,
        };
        let reader = hound::WavReader::open(path).map_err(|e| err(e.into()))?;
        Self::from_reader(reader).map_err(err)
    }

    /// Loads WAV bytes (see [`WavSource::open`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<WavSource, Error> {
        let err = |reason: WavError| Error::Wav {
            path: "<memory>".into(),
            reason,
        };
        let reader =
            hound::WavReader::new(std::io::Cursor::new(bytes)).map_err(|e| err(e.into()))?;
        Self::from_reader(reader).map_err(err)
    }

    fn from_reader<R: std::io::Read>(
        mut reader: hound::WavReader<R>,
    ) -> Result<WavSource, WavError> {
        let spec = reader.spec();
        if spec.channels == 0 || spec.sample_rate == 0 {
            return Err(WavError::NoAudio);
        }
        let frames = u64::from(reader.duration());
        if frames / u64::from(spec.sample_rate) > MAX_WAV_SECONDS {
            return Err(WavError::TooLong {
                max_seconds: MAX_WAV_SECONDS,
            });
        }
        let channels = usize::from(spec.channels);
        let mut mono: Vec<f32> = Vec::with_capacity(frames as usize);
        let mut acc = 0.0f32;
        let mut n = 0usize;
        let mut push = |v: f32| {
            acc += v;
            n += 1;
            if n == channels {
                mono.push(acc / channels as f32);
                acc = 0.0;
                n = 0;
            }
        };
        match spec.sample_format {
            hound::SampleFormat::Float => {
                for s in reader.samples::<f32>() {
                    push(s?.clamp(-1.0, 1.0));
                }
            }
            hound::SampleFormat::Int => {
                let bits = spec.bits_per_sample;
                if !(1..=32).contains(&bits) {
                    return Err(WavError::SampleSize { bits });
                }
                let scale = 2f32.powi(i32::from(bits) - 1);
                for s in reader.samples::<i32>() {
                    push(s? as f32 / scale);
                }
            }
        }
        let resampled = resample(&mono, spec.sample_rate, RATE);
        let samples = resampled
            .iter()
            .map(|&v| (v * 32767.0).round().clamp(-32768.0, 32767.0) as i16)
            .collect();
        Ok(WavSource {
            samples,
            pos: 0,
            looping: false,
        })
    }

    /// Plays the file again from the start when it ends.
    pub fn looping(mut self, yes: bool) -> WavSource {
        self.looping = yes;
        self
    }

    /// Length in samples at [`RATE`].
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// `true` for a file without samples.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The converted samples.
    pub fn samples(&self) -> &[i16] {
        &self.samples
    }
}

impl MediaSource for WavSource {
    fn read(&mut self, out: &mut [i16]) {
        let mut filled = 0;
        while filled < out.len() {
            if self.pos >= self.samples.len() {
                if self.looping && !self.samples.is_empty() {
                    self.pos = 0;
                } else {
                    if let Some(rest) = out.get_mut(filled..) {
                        rest.fill(0);
                    }
                    return;
                }
            }
            let n = (out.len() - filled).min(self.samples.len() - self.pos);
            if let (Some(dst), Some(src)) = (
                out.get_mut(filled..filled + n),
                self.samples.get(self.pos..self.pos + n),
            ) {
                dst.copy_from_slice(src);
            }
            filled += n;
            self.pos += n;
        }
    }
}

/// Half-width of the resampling filter, in input samples (at the lower of the two rates).
const TAPS: f64 = 16.0;

/// Band-limited resampling with a Blackman-windowed sinc: the cut-off sits at 95 % of the
/// lower Nyquist frequency, so downsampling does not alias and upsampling does not image.
/// Weights are normalised, so a constant signal stays constant.
pub fn resample(input: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || input.is_empty() {
        return input.to_vec();
    }
    let ratio = f64::from(to) / f64::from(from);
    let out_len = ((input.len() as f64) * ratio).round() as usize;
    // Cut-off relative to the input rate (1.0 = input Nyquist).
    let cutoff = 0.95 * ratio.min(1.0);
    // Filter half-width in input samples.
    let half = TAPS / cutoff;
    let mut out = Vec::with_capacity(out_len);
    let last = input.len() as i64 - 1;
    for n in 0..out_len {
        let t = n as f64 / ratio;
        let lo = (t - half).ceil().max(0.0) as i64;
        let hi = ((t + half).floor() as i64).min(last);
        let (mut acc, mut wsum) = (0.0f64, 0.0f64);
        for k in lo..=hi {
            let x = t - k as f64;
            let arg = cutoff * x;
            let sinc = if arg.abs() < 1e-9 {
                1.0
            } else {
                (PI * arg).sin() / (PI * arg)
            };
            // Blackman window over [-half, half].
            let p = (x / half + 1.0) / 2.0;
            let w = 0.42 - 0.5 * (2.0 * PI * p).cos() + 0.08 * (4.0 * PI * p).cos();
            let h = sinc * w;
            acc += f64::from(input.get(k as usize).copied().unwrap_or(0.0)) * h;
            wsum += h;
        }
        out.push(if wsum.abs() > 1e-12 {
            (acc / wsum) as f32
        } else {
            0.0
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn power(x: &[f32], rate: u32, freq: f64) -> f64 {
        let w = 2.0 * PI * freq / f64::from(rate);
        let coeff = 2.0 * w.cos();
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &v in x {
            let s0 = f64::from(v) + coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (x.len() as f64).powi(2)
    }

    fn sine(freq: f64, rate: u32, secs: f64) -> Vec<f32> {
        (0..(f64::from(rate) * secs) as usize)
            .map(|i| (0.5 * (2.0 * PI * freq * i as f64 / f64::from(rate)).sin()) as f32)
            .collect()
    }

    #[test]
    fn downsampling_keeps_the_band_and_removes_what_would_alias() {
        // 1 kHz survives 48 kHz → 8 kHz with its amplitude.
        let x = sine(1000.0, 48_000, 1.0);
        let y = resample(&x, 48_000, 8000);
        assert_eq!(y.len(), 8000);
        let mid = &y[400..7600];
        let peak = mid.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!((peak - 0.5).abs() < 0.02, "peak {peak}");
        // 7 kHz would alias to 1 kHz at 8 kHz: it must be filtered out.
        let x = sine(7000.0, 48_000, 1.0);
        let y = resample(&x, 48_000, 8000);
        let peak = y[400..7600].iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(peak < 0.01, "aliasing left {peak}");
        // 44.1 kHz → 8 kHz, a non-integer ratio.
        let x = sine(440.0, 44_100, 1.0);
        let y = resample(&x, 44_100, 8000);
        assert_eq!(y.len(), 8000);
        assert!(power(&y[400..7600], 8000, 440.0) > 100.0 * power(&y[400..7600], 8000, 880.0));
    }

    #[test]
    fn upsampling_and_dc() {
        let x = sine(440.0, 4000, 1.0);
        let y = resample(&x, 4000, 8000);
        assert_eq!(y.len(), 8000);
        let peak = y[400..7600].iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!((peak - 0.5).abs() < 0.02, "peak {peak}");
        let dc = vec![0.25f32; 1000];
        assert!(resample(&dc, 16_000, 8000)
            .iter()
            .all(|v| (v - 0.25).abs() < 1e-4));
        assert_eq!(resample(&[1.0, 2.0], 8000, 8000), [1.0, 2.0]);
    }

    fn wav_bytes(
        spec: hound::WavSpec,
        write: impl Fn(&mut hound::WavWriter<std::io::Cursor<&mut Vec<u8>>>),
    ) -> Vec<u8> {
        let mut buf = Vec::new();
        {
            let mut w = hound::WavWriter::new(std::io::Cursor::new(&mut buf), spec).unwrap();
            write(&mut w);
            w.finalize().unwrap();
        }
        buf
    }

    #[test]
    fn wav_any_rate_and_channels_becomes_16k_mono() {
        // 16 kHz stereo, 16-bit: left 440 Hz, right silent → mono at half amplitude.
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 16_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let bytes = wav_bytes(spec, |w| {
            for i in 0..16_000 {
                let v = (16000.0 * (2.0 * PI * 440.0 * f64::from(i) / 16000.0).sin()) as i16;
                w.write_sample(v).unwrap();
                w.write_sample(0i16).unwrap();
            }
        });
        let mut src = WavSource::from_bytes(&bytes).unwrap();
        assert_eq!(src.len(), 16000, "16 kHz passes through");
        let peak = src.samples()[400..15600]
            .iter()
            .map(|s| s.unsigned_abs())
            .max()
            .unwrap();
        assert!((7700..=8300).contains(&peak), "peak {peak}");
        // Reads go past the end as silence.
        let mut frame = [1i16; 320];
        for _ in 0..51 {
            src.read(&mut frame);
        }
        assert!(frame.iter().all(|&s| s == 0));
        // 32-bit float mono at 16 kHz passes through; 24-bit int works too.
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16000,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let bytes = wav_bytes(spec, |w| {
            for _ in 0..800 {
                w.write_sample(0.5f32).unwrap();
            }
        });
        let src = WavSource::from_bytes(&bytes).unwrap();
        assert_eq!(src.len(), 800);
        assert!(src.samples().iter().all(|&s| s == 16384));
        let spec = hound::WavSpec {
            channels: 3,
            sample_rate: 22_050,
            bits_per_sample: 24,
            sample_format: hound::SampleFormat::Int,
        };
        let bytes = wav_bytes(spec, |w| {
            for _ in 0..22_050 * 3 {
                w.write_sample(1 << 20).unwrap();
            }
        });
        let src = WavSource::from_bytes(&bytes).unwrap();
        assert_eq!(src.len(), 16000);
        assert!(src.samples()[100..15900]
            .iter()
            .all(|&s| (s - 4096).abs() <= 2));
        // Looping.
        let mut l = WavSource::from_bytes(&bytes).unwrap().looping(true);
        let mut big = vec![0i16; 40_000];
        l.read(&mut big);
        assert!(big[39_000] != 0);
        assert!(WavSource::from_bytes(b"not a wav").is_err());
    }

    #[test]
    fn tone_and_silence() {
        let mut t = ToneSource::new(1000.0, 10_000.0);
        let mut f = [0i16; 16];
        t.read(&mut f);
        // 1 kHz at 16 kHz: 16 samples per period.
        assert_eq!(f[0], 0);
        assert_eq!(f[4], 10_000);
        assert_eq!(f[12], -10_000);
        let mut s = Silence;
        let mut f = [5i16; 4];
        s.read(&mut f);
        assert_eq!(f, [0; 4]);
    }
}
