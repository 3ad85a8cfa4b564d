//! Parses the wire fixtures in `fixtures/sip/` (see its README).

use rsip::{Method, SipMessage};

use crate::framing::StreamFramer;
use crate::message::{
    self, header_param, header_tokens, header_value, parse_message, print_message, tag_of,
};
use crate::multipart;

const FIXTURES: [&str; 7] = [
    "invite-siprec-rfc7866.sip",
    "invite-compact.sip",
    "options.sip",
    "bye.sip",
    "response-200-srs.sip",
    "invite-ipv6.sip",
    "response-200-ipv6.sip",
];

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../../fixtures/sip/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn request(name: &str) -> rsip::Request {
    match parse_message(&fixture(name)).unwrap() {
        SipMessage::Request(r) => r,
        SipMessage::Response(_) => panic!("{name} is not a request"),
    }
}

#[test]
fn every_fixture_parses_and_round_trips() {
    for name in FIXTURES {
        let bytes = fixture(name);
        assert!(
            bytes.windows(2).any(|w| w == b"\r\n"),
            "{name} lost its CRs"
        );
        let msg = parse_message(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        // Content-Length is exact: the whole tail is the body.
        let (_, tail) = message::split_head(&bytes);
        assert_eq!(msg.body(), tail, "{name}");
        let again = parse_message(&print_message(&msg)).unwrap();
        assert_eq!(msg, again, "{name}");
    }
}

fn check_siprec_body(req: &rsip::Request) -> multipart::Multipart {
    let ct = header_value(&req.headers, "Content-Type").unwrap();
    assert_eq!(multipart::media_type(&ct), "multipart/mixed");
    let mp = multipart::parse(&ct, &req.body).unwrap();
    let sdp = mp.part_by_type("application/sdp").expect("SDP part");
    let sdp = String::from_utf8(sdp.body.clone()).unwrap();
    assert_eq!(sdp.matches("m=audio").count(), 2);
    assert_eq!(sdp.matches("a=sendonly").count(), 2);
    assert!(sdp.contains("a=label:1\r\n") && sdp.ends_with("a=label:2"));
    let meta = mp
        .parts
        .iter()
        .find(|p| p.disposition().as_deref() == Some("recording-session"))
        .expect("metadata part");
    let meta_text = String::from_utf8(meta.body.clone()).unwrap();
    assert!(meta_text.starts_with("<?xml"));
    assert!(meta_text.contains("<label>1</label>") && meta_text.contains("<label>2</label>"));
    assert!(meta_text.ends_with("</recording>"));
    mp
}

#[test]
fn siprec_invite() {
    let req = request("invite-siprec-rfc7866.sip");
    assert_eq!(req.method, Method::Invite);
    assert_eq!(header_tokens(&req.headers, "Require"), vec!["siprec"]);
    let contact = header_value(&req.headers, "Contact").unwrap();
    assert_eq!(header_param(&contact, "+sip.src").as_deref(), Some(""));
    let mp = check_siprec_body(&req);
    assert_eq!(mp.parts.len(), 2);
    assert_eq!(
        mp.parts[1].content_type().as_deref(),
        Some("application/rs-metadata+xml")
    );
    assert_eq!(
        mp.parts[0].disposition_param("handling").as_deref(),
        Some("required")
    );
}

#[test]
fn compact_invite() {
    let req = request("invite-compact.sip");
    assert_eq!(
        message::call_id(&req.headers).as_deref(),
        Some("compact-call-1@198.51.100.1")
    );
    assert_eq!(
        header_tokens(&req.headers, "Supported"),
        vec!["timer", "replaces"]
    );
    assert_eq!(
        header_value(&req.headers, "Session-Expires").as_deref(),
        Some("90")
    );
    let via = message::top_via(&req.headers).unwrap();
    assert_eq!(via.branch.as_deref(), Some("z9hG4bK-compact-1"));
    let mp = check_siprec_body(&req);
    assert_eq!(mp.boundary, "OSS-boundary:2");
    assert_eq!(mp.parts.len(), 3);
    assert_eq!(
        mp.parts[0].content_type().as_deref(),
        Some("application/rs-metadata")
    );
    assert_eq!(mp.parts[1].content_type().as_deref(), Some("text/plain"));
}

#[test]
fn options_bye_and_response() {
    let opt = request("options.sip");
    assert_eq!(opt.method, Method::Options);
    assert!(opt.body.is_empty());
    let bye = request("bye.sip");
    assert_eq!(bye.method, Method::Bye);
    assert_eq!(
        header_value(&bye.headers, "To")
            .and_then(|t| tag_of(&t))
            .as_deref(),
        Some("srs-7d3a")
    );
    let SipMessage::Response(ok) = parse_message(&fixture("response-200-srs.sip")).unwrap() else {
        panic!("not a response")
    };
    assert_eq!(ok.status_code.code(), 200);
    assert_eq!(message::cseq(&ok.headers), Some((101, Method::Invite)));
    let contact = header_value(&ok.headers, "Contact").unwrap();
    assert_eq!(header_param(&contact, "+sip.srs").as_deref(), Some(""));
    let body = String::from_utf8(ok.body.clone()).unwrap();
    assert_eq!(body.matches("a=recvonly").count(), 2);
}

#[test]
fn fixtures_through_the_stream_framer() {
    let mut wire = Vec::new();
    for name in FIXTURES {
        wire.extend(fixture(name));
        wire.extend(b"\r\n\r\n"); // keep-alive between messages
    }
    for chunk in [1, 7, 100, 1500, wire.len()] {
        let mut f = StreamFramer::new(message::MAX_MESSAGE_SIZE);
        let mut got = Vec::new();
        for c in wire.chunks(chunk) {
            f.push(c);
            while let Some(m) = f.next_message() {
                got.push(m.unwrap());
            }
        }
        let want: Vec<Vec<u8>> = FIXTURES.iter().map(|n| fixture(n)).collect();
        assert_eq!(got, want, "chunk size {chunk}");
    }
}

#[test]
fn ipv6_invite_and_response() {
    use crate::dialog::Dialog;
    use crate::uri::{Host, SipUri};
    let v6 = |s: &str| Host::V6(s.parse().unwrap());

    let req = request("invite-ipv6.sip");
    assert_eq!(req.method, Method::Invite);
    assert_eq!(req.uri.to_string(), "sip:srs@[2001:db8::10]:5060");
    let uri = SipUri::from_rsip(&req.uri).unwrap();
    assert_eq!((uri.host, uri.port), (v6("2001:db8::10"), Some(5060)));
    let via = message::top_via(&req.headers).unwrap();
    assert_eq!(via.sent_by().unwrap(), (v6("2001:db8::1"), Some(5070)));
    assert_eq!(via.host(), "2001:db8::1");
    assert_eq!(via.rport(), Some(None));
    let from = message::from_addr(&req.headers).unwrap();
    assert_eq!(from.display_name.as_deref(), Some("SRC"));
    assert_eq!(from.tag(), Some("v6-src-1"));
    assert_eq!(from.sip_uri().unwrap().host, v6("2001:db8::1"));
    let contact = message::contact_addr(&req.headers).unwrap();
    assert_eq!(contact.param("+sip.src"), Some(""));
    assert_eq!(contact.sip_uri().unwrap().host_port(), "[2001:db8::1]:5070");
    let uas = Dialog::new_uas(&req, "srs-v6", "sip:srs@[2001:db8::10]:5060").unwrap();
    assert_eq!(
        uas.remote_target().to_string(),
        "sip:src@[2001:db8::1]:5070"
    );

    let SipMessage::Response(ok) = parse_message(&fixture("response-200-ipv6.sip")).unwrap() else {
        panic!("not a response")
    };
    let via = message::top_via(&ok.headers).unwrap();
    assert_eq!(via.received(), Some("2001:db8::1".parse().unwrap()));
    assert_eq!(via.rport(), Some(Some(5070)));
    assert_eq!(message::to_addr(&ok.headers).unwrap().tag(), Some("srs-v6"));
    let uac = Dialog::new_uac(&req, &ok).unwrap();
    let target = SipUri::from_rsip(uac.remote_target()).unwrap();
    assert_eq!(target.host, v6("2001:db8::10"));
    assert_eq!(target.transport().as_deref(), Some("udp"));
    // In-dialog requests go to the IPv6 Contact, with the Via of our Contact.
    let mut uac = uac;
    let bye = uac.new_request(Method::Bye, None);
    let printed = String::from_utf8(print_message(&SipMessage::Request(bye))).unwrap();
    assert!(
        printed.starts_with("BYE sip:srs@[2001:db8::10]:5060;transport=udp SIP/2.0\r\n"),
        "{printed}"
    );
    assert!(
        printed.contains("Via: SIP/2.0/UDP [2001:db8::1]:5070;branch=z9hG4bK"),
        "{printed}"
    );
}

/// Rejected as peers send them: an IPv6 Request-URI without brackets (RFC 5118 §4.2), an
/// unclosed reference, a bad port; each is an error, never a panic.
#[test]
fn invalid_ipv6_request_uris_are_errors() {
    let wire = String::from_utf8(fixture("invite-ipv6.sip")).unwrap();
    for bad in [
        "sip:srs@2001:db8::10",
        "sip:srs@[2001:db8::10",
        "sip:srs@[2001:db8::10]:70000",
    ] {
        let bytes = wire.replacen("sip:srs@[2001:db8::10]:5060", bad, 1);
        let err = parse_message(bytes.as_bytes()).unwrap_err();
        assert!(
            matches!(err, crate::Error::Malformed(ref m) if m.contains("Request-URI")),
            "{bad}: {err}"
        );
        // ... and answered 400 from the raw bytes.
        let resp = message::raw_bad_request(bytes.as_bytes(), &err.to_string(), "srs").unwrap();
        assert!(resp.starts_with(b"SIP/2.0 400 Bad Request\r\n"));
    }
}
