//! Any bytes as an SDP offer: parse, and answer what parses (one port per m-line).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(offer) = siprec_sdp::parse(data) {
        let ports: Vec<Option<u16>> = (0..offer.media.len())
            .map(|i| Some(20_000 + 2 * i as u16))
            .collect();
        let cfg = siprec_sdp::AnswerConfig::new([127, 0, 0, 1].into(), 1, 1);
        let _ = siprec_sdp::answer(&offer, &ports, &cfg);
    }
});
