//! Payload codecs and the per-stream decoder.

use crate::g711;

/// What a negotiated payload format carries, as far as a recorder cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, 8 kHz.
    Pcmu,
    /// G.711 A-law, 8 kHz.
    Pcma,
    /// RFC 4733 telephone-event (DTMF): no audio samples.
    TelephoneEvent,
    /// Comfort noise (`CN`): no audio samples here; the timeline fills silence.
    ComfortNoise,
    /// Anything else (G.722, Opus, G.729, …): not decoded by this crate.
    Other,
}

impl Codec {
    /// The codec for an SDP encoding name (`PCMU`, `pcma`, `telephone-event`, `CN`, …),
    /// ignoring ASCII case.
    pub fn from_encoding(encoding: &str) -> Codec {
        let e = encoding.trim();
        if e.eq_ignore_ascii_case("PCMU") {
            Codec::Pcmu
        } else if e.eq_ignore_ascii_case("PCMA") {
            Codec::Pcma
        } else if e.eq_ignore_ascii_case("telephone-event") {
            Codec::TelephoneEvent
        } else if e.eq_ignore_ascii_case("CN") {
            Codec::ComfortNoise
        } else {
            Codec::Other
        }
    }

    /// True for the codecs whose packets this crate decodes to audio samples (PCMU, PCMA).
    /// Telephone-event and comfort noise carry no samples; `Other` is not decodable here.
    pub fn is_audio(self) -> bool {
        matches!(self, Codec::Pcmu | Codec::Pcma)
    }

    /// Sample rate of the decoded audio (8000 Hz for G.711), `None` when not decodable.
    pub fn sample_rate(self) -> Option<u32> {
        self.is_audio().then_some(8000)
    }
}

/// Decodes the payloads of one stream to 16-bit linear PCM. No allocation.
#[derive(Debug, Clone)]
pub struct Decoder {
    codec: Codec,
}

impl Decoder {
    /// A decoder for `codec`.
    pub fn new(codec: Codec) -> Decoder {
        Decoder { codec }
    }

    /// The codec this decoder was made for.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Decodes one RTP payload into `out`; returns the number of samples written.
    ///
    /// PCMU / PCMA: one 8 kHz sample per payload byte (at most `out.len()`: give a buffer at
    /// least as long as the payload). Telephone-event, comfort noise and `Other`: 0 samples
    /// (the timeline fills the time they cover with silence).
    pub fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> usize {
        match self.codec {
            Codec::Pcmu => g711::decode_ulaw_into(payload, out),
            Codec::Pcma => g711::decode_alaw_into(payload, out),
            Codec::TelephoneEvent | Codec::ComfortNoise | Codec::Other => 0,
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
        assert_eq!(Codec::from_encoding("G722"), Codec::Other);
        assert_eq!(Codec::from_encoding(""), Codec::Other);
        assert!(Codec::Pcmu.is_audio() && Codec::Pcma.is_audio());
        assert!(!Codec::TelephoneEvent.is_audio() && !Codec::ComfortNoise.is_audio());
        assert!(!Codec::Other.is_audio());
        assert_eq!(Codec::Pcma.sample_rate(), Some(8000));
        assert_eq!(Codec::Other.sample_rate(), None);
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
