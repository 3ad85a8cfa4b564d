//! Any bytes as an RTP packet, then G.711 decoding of its payload.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = siprec_rtp::parse(data) {
        let mut pcm = [0i16; 4096];
        for codec in [siprec_rtp::Codec::Pcmu, siprec_rtp::Codec::Pcma] {
            let mut d = siprec_rtp::Decoder::new(codec);
            let n = d.decode(p.payload, &mut pcm);
            assert!(n <= pcm.len());
        }
    }
});
