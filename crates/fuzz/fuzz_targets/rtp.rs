//! Any bytes as an RTP packet, then its payload through every decoder (G.711, G.722, Opus)
//! at the recording rates srs-server uses, with resampling.
#![no_main]
use libfuzzer_sys::fuzz_target;
use siprec_rtp::{Codec, Decoder};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = siprec_rtp::parse(data) {
        let mut pcm = [0i16; 8192];
        // The payload type picks the codec and the marker bit the output rate, so one input
        // reaches one decoder (cheaper than all of them for every input).
        let codec = [Codec::Pcmu, Codec::Pcma, Codec::G722, Codec::Opus]
            [usize::from(p.header.payload_type) % 4];
        let rate = if p.header.marker { 16000 } else { 8000 };
        let mut d = Decoder::with_output_rate(codec, rate).expect("valid rate");
        let n = d.decode(p.payload, &mut pcm);
        assert!(n <= pcm.len());
        // A second packet through the same decoder exercises its state.
        let n = d.decode(p.payload, &mut pcm);
        assert!(n <= pcm.len());
    }
});
