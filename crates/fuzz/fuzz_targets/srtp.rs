//! SRTP: any text as an SDES `a=crypto` value (print/parse must round-trip what parses), any
//! bytes through a receiver (nothing but a clean refusal or a packet no longer than the
//! input), and any bytes protected then unprotected with one key (the same bytes back).
#![no_main]
use libfuzzer_sys::fuzz_target;
use siprec_rtp::srtp::{SdesKey, SrtpReceiver, SrtpSender, SrtpSuite};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(k) = SdesKey::parse(text) {
            assert_eq!(SdesKey::parse(&k.to_attribute()).unwrap(), k);
        }
    }
    let suite = if data.first().is_some_and(|b| b & 1 == 1) {
        SrtpSuite::AesCm128HmacSha1_32
    } else {
        SrtpSuite::AesCm128HmacSha1_80
    };
    let key = SdesKey::new(1, suite, *b"0123456789abcdef0123456789abcd");
    let mut out = [0u8; 2048];
    let mut rx = SrtpReceiver::new(&key).unwrap();
    if let Ok(n) = rx.unprotect(data, &mut out) {
        assert!(n <= data.len());
    }
    // A valid RTP packet made of the input round-trips through protect/unprotect.
    if data.len() >= 12
        && data.len() <= 1500
        && siprec_rtp::parse(data).is_ok()
        && data[0] & 0x30 == 0
    {
        let mut tx = SrtpSender::new(&key).unwrap();
        let mut rx = SrtpReceiver::new(&key).unwrap();
        let mut wire = [0u8; 2048];
        if let Ok(n) = tx.protect(data, &mut wire) {
            let m = rx
                .unprotect(&wire[..n], &mut out)
                .expect("own packet authenticates");
            assert_eq!(&out[..m], data);
        }
    }
});
