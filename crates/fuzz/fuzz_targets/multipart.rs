//! A Content-Type value (the first line) and a body: the multipart codec and the SIPREC body
//! split (SDP + rs-metadata parts) never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (ct, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let ct = String::from_utf8_lossy(ct);
    let _ = siprec_sip::multipart::parse(&ct, body);
    let media = siprec_sip::message::MediaType::parse(&ct);
    let _ = siprec_core::body::split(media.as_ref(), body);
});
