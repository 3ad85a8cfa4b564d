//! Any bytes as one SIP message (a UDP datagram): parse, and what parses prints and parses
//! again.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = siprec_sip::parse_message(data) {
        let wire = siprec_sip::print_message(&msg);
        let _ = siprec_sip::parse_message(&wire);
    }
});
