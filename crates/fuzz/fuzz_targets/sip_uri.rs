//! Any text as a SIP URI, a `host[:port]` and a name-addr: never a panic, and a URI that
//! parses prints as text that parses back to the same URI (IPv6 references included).
#![no_main]
use libfuzzer_sys::fuzz_target;
use siprec_sip::message::NameAddr;
use siprec_sip::uri::{parse_host_port, SipUri};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(uri) = SipUri::parse(text) {
        let printed = uri.to_string();
        let again = SipUri::parse(&printed).expect("a printed URI parses");
        assert_eq!(again, uri, "{text:?} printed as {printed:?}");
        let _ = SipUri::from_rsip(&uri.to_rsip());
    }
    let _ = parse_host_port(text);
    let _ = NameAddr::parse(text).sip_uri();
});
