//! Any bytes as an RTP packet, then its payload through every decoder (G.711, G.722, Opus)
//! at the recording rates srs-server uses, with resampling. The decoders live across inputs,
//! as they do across the packets of a stream (and building an Opus decoder and a resampler
//! per input would cost more than the decoding).
#![no_main]
use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use siprec_rtp::{Codec, Decoder};

thread_local! {
    static DECODERS: RefCell<Vec<Decoder>> = RefCell::new(
        [Codec::Pcmu, Codec::Pcma, Codec::G722, Codec::Opus]
            .iter()
            .flat_map(|&c| [8000, 16000].map(move |rate| (c, rate)))
            .map(|(c, rate)| Decoder::with_output_rate(c, rate).expect("valid rate"))
            .collect()
    );
}

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = siprec_rtp::parse(data) {
        let mut pcm = [0i16; 8192];
        // The payload type picks the codec and the marker bit the output rate.
        let i = usize::from(p.header.payload_type) % 4 * 2 + usize::from(p.header.marker);
        DECODERS.with(|d| {
            let mut d = d.borrow_mut();
            let n = d[i].decode(p.payload, &mut pcm);
            assert!(n <= pcm.len());
        });
    }
});
