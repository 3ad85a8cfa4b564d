//! Payload codecs and the per-stream decoder.

use crate::g711;
use crate::Error;

/// What a negotiated payload format carries, as far as a recorder cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, 8 kHz.
    Pcmu,
    /// G.711 A-law, 8 kHz.
    Pcma,
    /// G.722 (ITU-T G.722, 64 kbit/s): 16 kHz audio, although its RTP clock and its SDP
    /// rtpmap say 8000 (RFC 3551 §4.5.2, a historical error kept for compatibility).
    G722,
    /// Opus (RFC 7587): RTP clock 48 kHz whatever the audio bandwidth; decoded to mono.
    Opus,
    /// RFC 4733 telephone-event (DTMF): no audio samples.
    TelephoneEvent,
    /// Comfort noise (`CN`, RFC 3389): no audio samples here; the timeline fills silence.
    ComfortNoise,
    /// Anything else (G.729, …): not decoded by this crate.
    Other,
}

impl Codec {
    /// The codec for an SDP encoding name (`PCMU`, `pcma`, `G722`, `opus`,
    /// `telephone-event`, `CN`, …), ignoring ASCII case.
    pub fn from_encoding(encoding: &str) -> Codec {
        let e = encoding.trim();
        let is = |name: &str| e.eq_ignore_ascii_case(name);
        if is("PCMU") {
            Codec::Pcmu
        } else if is("PCMA") {
            Codec::Pcma
        } else if is("G722") {
            Codec::G722
        } else if is("opus") {
            Codec::Opus
        } else if is("telephone-event") {
            Codec::TelephoneEvent
        } else if is("CN") {
            Codec::ComfortNoise
        } else {
            Codec::Other
        }
    }

    /// True for the codecs whose packets this crate decodes to audio samples.
    /// Telephone-event and comfort noise carry no samples; `Other` is not decodable here.
    pub fn is_audio(self) -> bool {
        matches!(self, Codec::Pcmu | Codec::Pcma | Codec::G722 | Codec::Opus)
    }

    /// True for codecs that carry more than telephone band (G.722, Opus).
    pub fn is_wideband(self) -> bool {
        matches!(self, Codec::G722 | Codec::Opus)
    }

    /// Sample rate of the decoded audio before any resampling (8000 Hz for G.711, 16000 for
    /// G.722, 48000 for Opus), `None` when not decodable.
    pub fn sample_rate(self) -> Option<u32> {
        match self {
            Codec::Pcmu | Codec::Pcma => Some(8000),
            Codec::G722 => Some(16000),
            Codec::Opus => Some(48000),
            _ => None,
        }
    }
}

/// Sample rates Opus decodes to natively (RFC 6716 §2).
const OPUS_RATES: [u32; 5] = [8000, 12000, 16000, 24000, 48000];
/// Largest Opus frame: 120 ms at 48 kHz (RFC 6716 §3.2.5).
const OPUS_MAX_SAMPLES: usize = 5760;
/// Largest G.711/G.722 payload decoded (bytes); longer ones are cut.
const MAX_PAYLOAD: usize = 2048;

enum Inner {
    G711,
    G722(Box<audio_codec::g722::G722Decoder>),
    Opus(Box<opus::Decoder>),
    Silent,
}

/// Decodes the payloads of one stream to 16-bit linear PCM at an output rate (the
/// recording's), resampling with a polyphase FIR filter when the codec's rate differs.
/// The decoder state and the buffers are allocated once, in the constructor; decoding
/// allocates nothing.
pub struct Decoder {
    codec: Codec,
    inner: Inner,
    output_rate: u32,
    /// Converts the codec's rate to `output_rate`, when they differ.
    resampler: Option<audio_codec::resampler::BoxedResampler>,
    /// Decoded audio before resampling.
    scratch: Vec<i16>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("codec", &self.codec)
            .field("output_rate", &self.output_rate)
            .field("resampling", &self.resampler.is_some())
            .finish()
    }
}

impl Decoder {
    /// A decoder for `codec` at the codec's own rate ([`Codec::sample_rate`]; 8000 for the
    /// codecs that carry no audio).
    pub fn new(codec: Codec) -> Decoder {
        let rate = codec.sample_rate().unwrap_or(8000);
        Decoder::with_output_rate(codec, rate).unwrap_or_else(|_| Decoder {
            codec,
            inner: Inner::Silent,
            output_rate: rate,
            resampler: None,
            scratch: Vec::new(),
        })
    }

    /// A decoder for `codec` whose output is at `output_rate` Hz (8000, 16000 or 48000 for
    /// a recording). Opus decodes at that rate directly; the others are resampled.
    ///
    /// # Errors
    /// [`Error::Codec`] when the rate is 0 or the codec library refuses it.
    pub fn with_output_rate(codec: Codec, output_rate: u32) -> Result<Decoder, Error> {
        if output_rate == 0 {
            return Err(Error::Codec("output rate 0"));
        }
        let (inner, native) = match codec {
            Codec::Pcmu | Codec::Pcma => (Inner::G711, 8000),
            Codec::G722 => (
                Inner::G722(Box::new(audio_codec::g722::G722Decoder::new())),
                16000,
            ),
            Codec::Opus => {
                let rate = if OPUS_RATES.contains(&output_rate) {
                    output_rate
                } else {
                    48000
                };
                let d = opus::Decoder::new(rate, opus::Channels::Mono)
                    .map_err(|_| Error::Codec("the Opus decoder cannot be created"))?;
                (Inner::Opus(Box::new(d)), rate)
            }
            _ => (Inner::Silent, output_rate),
        };
        let resampler = if native != output_rate {
            Some(
                audio_codec::resampler::BoxedResampler::new(native as usize, output_rate as usize)
                    .map_err(|_| Error::Codec("unsupported resampling ratio"))?,
            )
        } else {
            None
        };
        let scratch_len = match codec {
            Codec::Opus => OPUS_MAX_SAMPLES,
            Codec::G722 => 2 * MAX_PAYLOAD,
            _ => MAX_PAYLOAD,
        };
        Ok(Decoder {
            codec,
            inner,
            output_rate,
            resampler,
            scratch: vec![0; scratch_len],
        })
    }

    /// The codec this decoder was made for.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The rate of the samples [`Decoder::decode`] writes.
    pub fn output_rate(&self) -> u32 {
        self.output_rate
    }

    /// Decodes one RTP payload into `out` at [`Decoder::output_rate`]; returns the number of
    /// samples written (at most `out.len()`). A payload the codec rejects (a corrupt Opus
    /// packet) gives 0 samples: the timeline fills the time it covered with silence, as it
    /// does for telephone-event, comfort noise and `Other`.
    pub fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> usize {
        let payload = &payload[..payload.len().min(MAX_PAYLOAD)];
        let (buf, n) = match &mut self.inner {
            Inner::G711 => {
                let dst: &mut [i16] = match self.resampler {
                    Some(_) => &mut self.scratch,
                    None => out,
                };
                let n = match self.codec {
                    Codec::Pcmu => g711::decode_ulaw_into(payload, dst),
                    _ => g711::decode_alaw_into(payload, dst),
                };
                if self.resampler.is_none() {
                    return n;
                }
                (&self.scratch, n)
            }
            Inner::G722(d) => {
                use audio_codec::Decoder as _;
                let n = d.decode_into(payload, &mut self.scratch).unwrap_or(0);
                (&self.scratch, n)
            }
            Inner::Opus(d) => {
                if payload.is_empty() {
                    return 0;
                }
                let n = d.decode(payload, &mut self.scratch, false).unwrap_or(0);
                (&self.scratch, n)
            }
            Inner::Silent => return 0,
        };
        match &mut self.resampler {
            Some(r) => r.resample_into(&buf[..n], out).unwrap_or(0),
            None => {
                let n = n.min(out.len());
                out[..n].copy_from_slice(&buf[..n]);
                n
            }
        }
    }
}

/// RTP clock rate of a codec's timestamps (RFC 3551 §4.5; RFC 7587 §4.1 for Opus): 8000
/// for G.711 and G.722, 48000 for Opus.
pub fn rtp_clock_rate(codec: Codec) -> u32 {
    match codec {
        Codec::Opus => 48000,
        _ => 8000,
    }
}

enum EncInner {
    G711,
    G722(Box<audio_codec::g722::G722Encoder>),
    Opus(Box<opus::Encoder>),
}

/// Encodes 16-bit PCM at an input rate into payloads of one codec (the sending side: the
/// recording client and test senders). Buffers are allocated once; encoding allocates
/// nothing.
pub struct Encoder {
    codec: Codec,
    inner: EncInner,
    input_rate: u32,
    resampler: Option<audio_codec::resampler::BoxedResampler>,
    scratch: Vec<i16>,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("codec", &self.codec)
            .field("input_rate", &self.input_rate)
            .finish()
    }
}

impl Encoder {
    /// An encoder for `codec` fed with audio at `input_rate` Hz (G.711 is fed 8 kHz, G.722
    /// 16 kHz and Opus any of 8/12/16/24/48 kHz directly; other rates are resampled).
    /// Opus runs in VoIP mode at 32 kbit/s, mono.
    ///
    /// # Errors
    /// [`Error::Codec`] for a codec without an encoder here, a rate of 0, or a rate the
    /// codec library refuses.
    pub fn with_input_rate(codec: Codec, input_rate: u32) -> Result<Encoder, Error> {
        if input_rate == 0 {
            return Err(Error::Codec("input rate 0"));
        }
        let (inner, native) = match codec {
            Codec::Pcmu | Codec::Pcma => (EncInner::G711, 8000),
            Codec::G722 => (
                EncInner::G722(Box::new(audio_codec::g722::G722Encoder::new())),
                16000,
            ),
            Codec::Opus => {
                let rate = if OPUS_RATES.contains(&input_rate) {
                    input_rate
                } else {
                    48000
                };
                let mut e = opus::Encoder::new(rate, opus::Channels::Mono, opus::Application::Voip)
                    .map_err(|_| Error::Codec("the Opus encoder cannot be created"))?;
                e.set_bitrate(opus::Bitrate::Bits(32000))
                    .map_err(|_| Error::Codec("Opus bitrate"))?;
                (EncInner::Opus(Box::new(e)), rate)
            }
            _ => return Err(Error::Codec("no encoder for this codec")),
        };
        let resampler = if native != input_rate {
            Some(
                audio_codec::resampler::BoxedResampler::new(input_rate as usize, native as usize)
                    .map_err(|_| Error::Codec("unsupported resampling ratio"))?,
            )
        } else {
            None
        };
        Ok(Encoder {
            codec,
            inner,
            input_rate,
            resampler,
            scratch: vec![0; OPUS_MAX_SAMPLES],
        })
    }

    /// The codec.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Encodes one frame (20 ms of audio is the usual RTP packet) into `out`; returns the
    /// payload length (0 when the codec refuses the frame, e.g. an Opus frame of a length
    /// it does not allow).
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> usize {
        let pcm: &[i16] = match &mut self.resampler {
            Some(r) => {
                let n = r.resample_into(pcm, &mut self.scratch).unwrap_or(0);
                &self.scratch[..n]
            }
            None => pcm,
        };
        match &mut self.inner {
            EncInner::G711 => {
                let n = pcm.len().min(out.len());
                if self.codec == Codec::Pcmu {
                    g711::encode_ulaw_into(&pcm[..n], &mut out[..n]);
                } else {
                    g711::encode_alaw_into(&pcm[..n], &mut out[..n]);
                }
                n
            }
            EncInner::G722(e) => {
                use audio_codec::Encoder as _;
                e.encode_into(pcm, out).unwrap_or(0)
            }
            EncInner::Opus(e) => e.encode(pcm, out).unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_from_encoding() {
        assert_eq!(Codec::from_encoding("PCMU"), Codec::Pcmu);
        assert_eq!(Codec::from_encoding("pcma"), Codec::Pcma);
        assert_eq!(
            Codec::from_encoding("TELEPHONE-EVENT"),
            Codec::TelephoneEvent
        );
        assert_eq!(Codec::from_encoding("cn"), Codec::ComfortNoise);
        assert_eq!(Codec::from_encoding("G722"), Codec::G722);
        assert_eq!(Codec::from_encoding("OPUS"), Codec::Opus);
        assert_eq!(Codec::from_encoding("G729"), Codec::Other);
        assert_eq!(Codec::from_encoding(""), Codec::Other);
        assert!(Codec::Pcmu.is_audio() && Codec::Pcma.is_audio());
        assert!(!Codec::TelephoneEvent.is_audio() && !Codec::ComfortNoise.is_audio());
        assert!(!Codec::Other.is_audio());
        assert_eq!(Codec::Pcma.sample_rate(), Some(8000));
        assert_eq!(Codec::Other.sample_rate(), None);
    }

    /// Power of `freq` in `x` (Goertzel), normalised by length.
    fn tone_power(x: &[i16], rate: f64, freq: f64) -> f64 {
        let w = 2.0 * std::f64::consts::PI * freq / rate;
        let (mut s1, mut s2) = (0.0, 0.0);
        for &v in x {
            let s = f64::from(v) + 2.0 * w.cos() * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        (s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2) / x.len() as f64
    }

    fn tone(freq: f64, rate: u32, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                (8000.0 * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin())
                    as i16
            })
            .collect()
    }

    /// Encodes 1 s of `freq` in 20 ms frames at `in_rate`, decodes at `out_rate`.
    fn round_trip(codec: Codec, freq: f64, in_rate: u32, out_rate: u32) -> Vec<i16> {
        let mut enc = Encoder::with_input_rate(codec, in_rate).unwrap();
        let mut dec = Decoder::with_output_rate(codec, out_rate).unwrap();
        let pcm = tone(freq, in_rate, in_rate as usize);
        let frame = (in_rate / 50) as usize;
        let mut out = Vec::new();
        let (mut payload, mut buf) = ([0u8; 1500], [0i16; 8192]);
        for chunk in pcm.chunks(frame) {
            let n = enc.encode(chunk, &mut payload);
            assert!(n > 0, "{codec:?} encoded nothing");
            let m = dec.decode(&payload[..n], &mut buf);
            out.extend_from_slice(&buf[..m]);
        }
        out
    }

    #[test]
    fn wideband_codecs_keep_content_above_4_khz() {
        for codec in [Codec::G722, Codec::Opus] {
            let out = round_trip(codec, 6000.0, 16000, 16000);
            assert!(
                (15_000..=16_100).contains(&out.len()),
                "{codec:?} {}",
                out.len()
            );
            let tail = &out[4000..];
            let p = tone_power(tail, 16000.0, 6000.0);
            assert!(p > 100.0 * tone_power(tail, 16000.0, 2000.0), "{codec:?}");
            assert!(p > 1e5, "{codec:?} 6 kHz power {p}");
        }
        // The same tone through G.711 is gone (8 kHz audio has nothing above 4 kHz).
        let out = round_trip(Codec::Pcmu, 6000.0, 16000, 16000);
        let p = tone_power(&out[4000..], 16000.0, 6000.0);
        assert!(p < 1e4, "PCMU 6 kHz power {p}");
    }

    #[test]
    fn decoders_resample_to_the_recording_rate() {
        // G.722 (16 kHz) recorded at 8 kHz, G.711 at 16 kHz, Opus at 48 and 8 kHz.
        for (codec, in_rate, out_rate, freq) in [
            (Codec::G722, 16000, 8000, 1000.0),
            (Codec::Pcma, 8000, 16000, 1000.0),
            (Codec::Opus, 48000, 48000, 1000.0),
            (Codec::Opus, 16000, 8000, 1000.0),
        ] {
            let out = round_trip(codec, freq, in_rate, out_rate);
            let want = out_rate as usize;
            assert!(
                out.len().abs_diff(want) <= want / 50,
                "{codec:?} {} vs {want}",
                out.len()
            );
            let tail = &out[want / 4..];
            let p = tone_power(tail, f64::from(out_rate), freq);
            assert!(
                p > 100.0 * tone_power(tail, f64::from(out_rate), freq * 2.5),
                "{codec:?} {in_rate}->{out_rate}"
            );
        }
        assert_eq!(rtp_clock_rate(Codec::G722), 8000, "the G.722 trap");
        assert_eq!(rtp_clock_rate(Codec::Opus), 48000);
        assert!(Decoder::with_output_rate(Codec::Opus, 0).is_err());
        assert!(Encoder::with_input_rate(Codec::TelephoneEvent, 8000).is_err());
    }

    #[test]
    fn corrupt_opus_gives_no_samples() {
        let mut d = Decoder::with_output_rate(Codec::Opus, 16000).unwrap();
        let mut out = [0i16; 8192];
        assert_eq!(d.decode(&[], &mut out), 0);
        // A TOC byte announcing a code-3 packet with an impossible frame count.
        assert_eq!(d.decode(&[0xff, 0xff, 0xff], &mut out), 0);
    }

    #[test]
    fn decoder_outputs() {
        let mut out = [0i16; 160];
        let mut d = Decoder::new(Codec::Pcmu);
        assert_eq!(d.decode(&[0xff; 160], &mut out), 160);
        assert!(out.iter().all(|&s| s == 0));
        let mut d = Decoder::new(Codec::Pcma);
        assert_eq!(d.decode(&[0xd5; 200], &mut out), 160, "bounded by out");
        assert!(out.iter().all(|&s| s == 8));
        for c in [Codec::TelephoneEvent, Codec::ComfortNoise, Codec::Other] {
            let mut d = Decoder::new(c);
            assert_eq!(d.decode(&[1, 2, 3, 4], &mut out), 0);
            assert_eq!(d.codec(), c);
        }
    }
}
