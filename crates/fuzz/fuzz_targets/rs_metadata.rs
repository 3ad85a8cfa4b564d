//! Any bytes as an RFC 7865 metadata document.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rs_metadata::parse(data);
});
