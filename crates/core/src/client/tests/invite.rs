//! The INVITE: a SIPREC recording session, its SDP offer (SRTP) and metadata, transports.

use super::*;

#[test]
fn invite_is_a_siprec_recording_session() {
    let mut net = Net::new(vec![FakeSrs::new(A, InviteMode::Accept)]);
    net.src.call.extra_headers = vec![("X-Call-Sid".into(), "CA42".into())];
    net.src.call.call_sid = Some("CA42".into());
    let op = net.start(&list(&[A]), Some("rec-42"));
    let out = net.outcome(op).unwrap();
    assert_eq!(out.reply, Reply::Started);
    let inv = net.srs[0].received[0].clone();
    let text = String::from_utf8(print_message_of(&inv)).unwrap();
    assert!(
        text.starts_with("INVITE sip:192.0.2.10:5060 SIP/2.0\r\n"),
        "{text}"
    );
    assert!(text.contains("Require: siprec\r\n"), "{text}");
    let contact = header_value(&inv.headers, "Contact").unwrap();
    assert_eq!(contact, "<sip:src@192.0.2.1:5060>;+sip.src");
    assert!(header_value(&inv.headers, "Accept")
        .unwrap()
        .contains("application/sdp"));
    assert_eq!(
        header_value(&inv.headers, "X-Call-Sid").as_deref(),
        Some("CA42")
    );
    let ct = header_value(&inv.headers, "Content-Type").unwrap();
    assert!(ct.starts_with("multipart/mixed;boundary="), "{ct}");
    let mp = siprec_sip::multipart::parse(&ct, &inv.body).unwrap();
    assert_eq!(mp.parts.len(), 2);
    let sdp = mp.part_by_type("application/sdp").unwrap();
    let sdp_text = String::from_utf8(sdp.body.clone()).unwrap();
    assert_eq!(sdp_text.matches("m=audio").count(), 2, "{sdp_text}");
    assert_eq!(sdp_text.matches("a=sendonly").count(), 2);
    assert!(
        sdp_text.contains("m=audio 40000 RTP/AVP 0 8\r\n"),
        "{sdp_text}"
    );
    assert!(sdp_text.contains("a=label:1\r\n") && sdp_text.contains("a=label:2\r\n"));
    let md = mp.part_by_type("application/rs-metadata+xml").unwrap();
    assert_eq!(md.disposition().as_deref(), Some("recording-session"));
    let Ok(rs_metadata::Document::Recording(rec)) = rs_metadata::parse(&md.body) else {
        panic!("metadata does not parse");
    };
    assert_eq!(rec.recording_id().as_deref(), Some("rec-42"));
    assert_eq!(rec.sessions[0].sip_session_ids, ["call-1@example.com"]);
    assert_eq!(
        rec.sessions[0].start_time.as_deref(),
        Some("2024-05-01T10:00:00.000Z")
    );
    // Caller = participant of label 1 (not swapped).
    let s1 = rec.stream_by_label("1").unwrap().stream_id.clone();
    let caller = rec.sender_of_stream(&s1).unwrap().to_string();
    assert_eq!(
        rec.participant_display(&caller),
        (Some("Alice".into()), Some("sip:alice@example.com".into()))
    );
    let xml = String::from_utf8(md.body.clone()).unwrap();
    assert!(xml.contains("urn:ietf:params:xml:ns:recording:1"));
    assert!(xml.contains("<callsid xmlns=\"urn:x-siprec-rs:ext\">CA42</callsid>"));
    assert!(xml.contains(">inbound</direction>"));
    // The SRS got its ACK.
    assert_eq!(net.srs[0].acks.len(), 1);
}

/// The SDP part of the first INVITE `srs` received.
fn offer_of(srs: &FakeSrs) -> String {
    let inv = &srs.received[0];
    let ct = header_value(&inv.headers, "Content-Type").unwrap();
    let mp = siprec_sip::multipart::parse(&ct, &inv.body).unwrap();
    String::from_utf8(mp.part_by_type("application/sdp").unwrap().body.clone()).unwrap()
}

#[test]
fn srtp_is_offered_as_configured_and_never_sent_in_clear() {
    use siprec_rtp::srtp::SrtpSuite;
    // Default (sips only): a sip: SRS gets plain RTP.
    let mut net = Net::new(vec![FakeSrs::new(A, InviteMode::Accept)]);
    net.start(&list(&[A]), None);
    let offer = offer_of(&net.srs[0]);
    assert!(
        offer.contains("RTP/AVP 0 8") && !offer.contains("a=crypto"),
        "{offer}"
    );

    // Always, default suites: both on every m-line (tag 1 `_80`, tag 2 `_32`); the SRS
    // accepts one per m-line and we send with our key of the tag it answered.
    let mut cfg = config();
    cfg.srtp = SrtpOffer::Always;
    let sends_with = |cfg: &SrcConfig, tag: Option<u32>| {
        let mut srs = FakeSrs::new(A, InviteMode::Accept);
        srs.srtp = Some(true);
        srs.srtp_tag = tag;
        let mut net = Net::with_config(vec![srs], cfg.clone());
        let op = net.start(&list(&[A]), None);
        let out = net.outcome(op).unwrap();
        assert_eq!(out.reply, Reply::Started);
        let offer = offer_of(&net.srs[0]);
        assert_eq!(offer.matches("RTP/SAVP 0 8").count(), 2, "{offer}");
        let plan = net.plans(out.srs[0].rs).pop().expect("a media plan");
        let keys: Vec<_> = plan
            .legs
            .iter()
            .filter_map(|l| l.as_ref().and_then(|l| l.srtp.clone()))
            .collect();
        for key in &keys {
            assert!(offer.contains(&key.to_attribute()), "our own offered key");
        }
        let keys: Vec<(u32, SrtpSuite)> = keys.iter().map(|k| (k.tag, k.suite)).collect();
        (offer, plan.sending, keys)
    };
    let (s80, s32) = (
        SrtpSuite::AesCm128HmacSha1_80,
        SrtpSuite::AesCm128HmacSha1_32,
    );
    let (offer, sending, keys) = sends_with(&cfg, None);
    for line in [
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:",
        "a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:",
    ] {
        assert_eq!(offer.matches(line).count(), 2, "{line} per m-line: {offer}");
    }
    assert!(sending);
    assert_eq!(keys, [(1, s80); 2]);
    // The SRS picks the second line: our `_32` key of tag 2 protects the packets.
    let (_, sending, keys) = sends_with(&cfg, Some(2));
    assert!(sending);
    assert_eq!(keys, [(2, s32); 2]);
    // An answer naming a tag we never offered accepts none of our keys: nothing is sent.
    let (_, sending, keys) = sends_with(&cfg, Some(9));
    assert!(!sending && keys.is_empty());
    // One configured suite: one a=crypto line per m-line, tag 1.
    cfg.srtp_suites = vec![s32, s32];
    let (offer, sending, keys) = sends_with(&cfg, None);
    assert_eq!(offer.matches("a=crypto:").count(), 2, "{offer}");
    assert_eq!(
        offer
            .matches("a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:")
            .count(),
        2,
        "{offer}"
    );
    assert!(sending);
    assert_eq!(keys, [(1, s32); 2]);

    // An SRS that answers RTP/AVP to the SRTP offer: nothing is sent in clear.
    let mut srs = FakeSrs::new(A, InviteMode::Accept);
    srs.srtp = Some(false);
    let mut net = Net::with_config(vec![srs], cfg.clone());
    let op = net.start(&list(&[A]), None);
    let rs = net.outcome(op).unwrap().srs[0].rs;
    let plans = net.plans(rs);
    assert!(!plans.is_empty());
    assert!(
        plans
            .iter()
            .all(|p| p.legs.iter().all(Option::is_none) && !p.sending),
        "{plans:?}"
    );

    // Never: plain RTP whatever the URI.
    cfg.srtp = SrtpOffer::Never;
    let mut net = Net::with_config(vec![FakeSrs::new(A, InviteMode::Accept)], cfg);
    net.start(&list(&[A]), None);
    assert!(!offer_of(&net.srs[0]).contains("RTP/SAVP"));
}

#[test]
fn the_accepted_key_is_the_one_whose_tag_and_suite_the_answer_names() {
    use siprec_rtp::srtp::{SdesKey, SrtpSuite};
    let keys = &new_srtp_keys(&[
        SrtpSuite::AesCm128HmacSha1_80,
        SrtpSuite::AesCm128HmacSha1_32,
    ])[0];
    let theirs = |tag, suite| vec![SdesKey::new(tag, suite, [3; 30]).to_attribute()];
    let got = |answer: &[String]| accepted_key(keys, answer).map(|k| (k.tag, k.suite));
    assert_eq!(
        got(&theirs(2, SrtpSuite::AesCm128HmacSha1_32)),
        Some((2, SrtpSuite::AesCm128HmacSha1_32))
    );
    assert_eq!(
        got(&theirs(1, SrtpSuite::AesCm128HmacSha1_80)),
        Some((1, SrtpSuite::AesCm128HmacSha1_80))
    );
    // Our tag 1 with the other suite, a tag we never offered, and garbage: nothing.
    assert_eq!(got(&theirs(1, SrtpSuite::AesCm128HmacSha1_32)), None);
    assert_eq!(got(&theirs(3, SrtpSuite::AesCm128HmacSha1_80)), None);
    assert_eq!(
        got(&["1 F8_128_HMAC_SHA1_80 inline:AAAA".to_string()]),
        None
    );
    // No a=crypto in an RTP/SAVP answer: our first key.
    assert_eq!(got(&[]), Some((1, SrtpSuite::AesCm128HmacSha1_80)));
    // Repeats are dropped, an empty list offers _80.
    assert_eq!(
        new_srtp_keys(&[SrtpSuite::AesCm128HmacSha1_32; 3])[1].len(),
        1
    );
    let only = &new_srtp_keys(&[])[0];
    assert_eq!(
        (only.len(), only[0].suite),
        (1, SrtpSuite::AesCm128HmacSha1_80)
    );
}

fn print_message_of(r: &Request) -> Vec<u8> {
    siprec_sip::message::print_message(&SipMessage::Request(r.clone()))
}

#[test]
fn no_recording_id_means_no_recordingid_element() {
    let mut net = Net::new(vec![FakeSrs::new(A, InviteMode::Accept)]);
    net.start(&list(&[A]), Some("  "));
    let body = body_text(&net.srs[0].received[0]);
    assert!(!body.contains("recordingid"), "{body}");
    assert!(!body.contains("undefined"));
}

#[test]
fn tcp_and_tls_targets_get_matching_contact_and_via() {
    let mut net = Net::new(vec![FakeSrs::new(A, InviteMode::Accept)]);
    net.start("sip:192.0.2.10:5060;transport=tcp", None);
    let inv = &net.srs[0].received[0];
    assert_eq!(
        header_value(&inv.headers, "Contact").unwrap(),
        "<sip:src@192.0.2.1:5060;transport=tcp>;+sip.src"
    );
    assert!(header_value(&inv.headers, "Via")
        .unwrap()
        .starts_with("SIP/2.0/TCP 192.0.2.1:5060;"));
    // No TLS transport configured: the target is skipped with a reason.
    let mut net = Net::new(vec![FakeSrs::new(A, InviteMode::Accept)]);
    let op = net.start("sips:192.0.2.10", None);
    let out = net.outcome(op).unwrap();
    assert_eq!(out.reply, Reply::StartFailed);
    assert!(out.reason.unwrap().contains("no local TLS transport"));
}

#[test]
fn ipv6_srs_gets_bracketed_request_uris() {
    let now = t0();
    let mut src = SrcCore::new(config(), CallContext::example(), now, UNIX_EPOCH).unwrap();
    src.start(now, "sip:[2001:db8::10]:5070", None);
    let Some(Event::Resolve { rs, uri }) = src.poll_event() else {
        panic!()
    };
    assert_eq!(uri.host, Host::Ip("2001:db8::10".parse().unwrap()));
    let target: Target = "udp:[2001:db8::10]:5070".parse().unwrap();
    src.resolved(now, rs, Ok(vec![target]));
    let t = src.poll_transmit().unwrap();
    assert_eq!(t.peer, Peer::from(target));
    let text = String::from_utf8(t.payload.clone()).unwrap();
    assert!(
        text.starts_with("INVITE sip:[2001:db8::10]:5070 SIP/2.0\r\n"),
        "{text}"
    );
    assert!(
        text.contains("\r\nTo: <sip:[2001:db8::10]:5070>\r\n"),
        "{text}"
    );
    // A 200 from the SRS with an IPv6 Contact: the dialog takes it and in-dialog requests
    // carry the bracketed URI.
    let get = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap()
            .to_string()
    };
    let sdp = "v=0\r\no=srs 1 1 IN IP6 2001:db8::10\r\ns=-\r\nc=IN IP6 2001:db8::10\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0\r\na=recvonly\r\nm=audio 30002 RTP/AVP 0\r\na=recvonly\r\n";
    let resp = format!(
        "SIP/2.0 200 OK\r\n{}\r\n{}\r\n{};tag=srs1\r\n{}\r\n{}\r\nContact: <sip:srs@[2001:db8::10]:5070>;+sip.srs\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        get("Via:"),
        get("From:"),
        get("To:"),
        get("Call-ID:"),
        get("CSeq:"),
        sdp.len()
    );
    src.handle_bytes(now, target.into(), resp.as_bytes());
    let ack = String::from_utf8(src.poll_transmit().unwrap().payload).unwrap();
    assert!(
        ack.starts_with("ACK sip:srs@[2001:db8::10]:5070 SIP/2.0\r\n"),
        "{ack}"
    );
    let plan = std::iter::from_fn(|| src.poll_event())
        .find_map(|e| match e {
            Event::Media { plan, .. } => Some(plan),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        plan.legs[1].as_ref().unwrap().remote,
        "[2001:db8::10]:30002".parse().unwrap()
    );
    src.stop(now);
    let bye = String::from_utf8(src.poll_transmit().unwrap().payload).unwrap();
    assert!(
        bye.starts_with("BYE sip:srs@[2001:db8::10]:5070 SIP/2.0\r\n"),
        "{bye}"
    );
}
