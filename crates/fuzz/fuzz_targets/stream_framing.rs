//! Any bytes as a TCP/TLS stream, cut into chunks at arbitrary points (the first byte picks
//! the chunk size): Content-Length framing never panics and never yields more than it got.
#![no_main]
use libfuzzer_sys::fuzz_target;
use siprec_sip::framing::StreamFramer;

fuzz_target!(|data: &[u8]| {
    let Some((&step, rest)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    let mut framer = StreamFramer::new(siprec_sip::MAX_MESSAGE_SIZE);
    let mut out = 0usize;
    for chunk in rest.chunks(step) {
        framer.push(chunk);
        while let Some(next) = framer.next_message() {
            match next {
                Ok(m) => {
                    out += m.len();
                    let _ = siprec_sip::parse_message(&m);
                }
                Err(_) => return,
            }
        }
    }
    assert!(out <= rest.len());
});
