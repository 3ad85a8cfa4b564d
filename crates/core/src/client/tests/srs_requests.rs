//! The SRS's own requests: BYE, snapshot requests, re-INVITE with an offer, glare.

use super::*;

#[test]
fn srs_bye_ends_that_session_only() {
    let mut net = Net::new(vec![
        FakeSrs::new(A, InviteMode::Accept),
        FakeSrs::new(B, InviteMode::Accept),
    ]);
    let op = net.start(&list(&[A, B]), None);
    let out = net.outcome(op).unwrap();
    let (a, b) = (out.srs[0].rs, out.srs[1].rs);
    let now = net.now;
    net.srs(0).send(now, Method::Bye, None);
    net.settle();
    assert_eq!(net.srs[0].responses.last().unwrap().status_code.code(), 200);
    let ended: Vec<_> = net
        .srs_events()
        .into_iter()
        .filter(|r| r.line == LOG_SRS_ENDED)
        .collect();
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].rs, a);
    assert!(net.events.contains(&Event::MediaStop { rs: a }));
    assert!(net.src.is_recording());
    assert_eq!(net.src.established(), vec![b]);
    // Pause reaches only B.
    let p = net.pause();
    let out = net.await_outcome(p);
    assert_eq!(out.reply, Reply::Paused);
    assert_eq!(out.srs.len(), 1);
    // B ends too: the recording is over; stop is "not recording"; start is not a duplicate.
    let now = net.now;
    net.srs(1).send(now, Method::Bye, None);
    net.settle();
    assert!(net
        .events
        .iter()
        .any(|e| matches!(e, Event::RecordingEnded { .. })));
    let s = net.stop();
    assert_eq!(net.outcome(s).unwrap().reply, Reply::NotRecording);
    let again = net.start(&list(&[A]), None);
    assert_eq!(net.outcome(again).unwrap().reply, Reply::Started);
}

#[test]
fn snapshot_request_gets_the_complete_metadata_in_a_new_transaction() {
    let mut net = Net::new(vec![FakeSrs::new(A, InviteMode::Accept)]);
    let op = net.start(&list(&[A]), Some("rec-7"));
    net.outcome(op).unwrap();
    let now = net.now;
    let req = rs_metadata::snapshot_request_xml("SRS lost its state");
    net.srs(0).send(
        now,
        Method::Update,
        Some(("application/rs-metadata-request".into(), req.into_bytes())),
    );
    net.settle();
    // 200 to the UPDATE, then our own UPDATE with the complete document.
    let codes: Vec<u16> = net.srs[0]
        .responses
        .iter()
        .map(|r| r.status_code.code())
        .collect();
    assert_eq!(codes, [200]);
    assert_eq!(net.srs[0].methods(), ["INVITE", "UPDATE"]);
    let ours = net.srs[0].received.last().unwrap();
    assert_eq!(
        header_value(&ours.headers, "Content-Type").as_deref(),
        Some("application/rs-metadata+xml")
    );
    let Ok(rs_metadata::Document::Recording(rec)) = rs_metadata::parse(&ours.body) else {
        panic!()
    };
    assert_eq!(rec.data_mode, DataMode::Complete);
    assert_eq!(rec.recording_id().as_deref(), Some("rec-7"));
    assert_eq!(rec.participants.len(), 2);

    // Without UPDATE support, an offerless re-INVITE carrying the request: our 200 holds an
    // SDP offer, the ACK the answer, then a re-INVITE with SDP + complete metadata.
    let mut srs = FakeSrs::new(A, InviteMode::Accept);
    srs.allow_update = false;
    let mut net = Net::new(vec![srs]);
    let op = net.start(&list(&[A]), None);
    net.outcome(op).unwrap();
    let now = net.now;
    let req = rs_metadata::snapshot_request_xml("audit");
    net.srs(0).send(
        now,
        Method::Invite,
        Some(("application/rs-metadata-request".into(), req.into_bytes())),
    );
    net.settle();
    let ok = net.srs[0].responses.last().unwrap().clone();
    assert_eq!(ok.status_code.code(), 200);
    assert!(String::from_utf8_lossy(&ok.body).contains("a=sendonly"));
    // The fake ACKs the 2xx (without an answer; the SDP stays as it was).
    let d = net.srs[0].dialogs.pop().unwrap();
    let ack = d.make_ack(message::cseq(&ok.headers).unwrap().0);
    net.srs[0].dialogs.push(d);
    let peer = net.srs[0].src_peer();
    let now = net.now;
    net.srs[0].layer.send_request(now, peer, ack);
    net.settle();
    let last = net.srs[0].received.last().unwrap();
    assert_eq!(last.method, Method::Invite);
    let text = body_text(last);
    assert!(
        text.contains("application/rs-metadata+xml")
            && text.contains("<datamode>complete</datamode>"),
        "{text}"
    );
}

#[test]
fn srs_reinvite_with_an_offer_is_answered_and_moves_the_media() {
    let mut net = Net::new(vec![FakeSrs::new(A, InviteMode::Accept)]);
    let op = net.start(&list(&[A]), None);
    let rs = net.outcome(op).unwrap().srs[0].rs;
    let offer = "v=0\r\no=srs 1 9 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\nm=audio 31000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=recvonly\r\nm=audio 31002 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=recvonly\r\n";
    let now = net.now;
    net.srs(0).send(
        now,
        Method::Update,
        Some(("application/sdp".into(), offer.into())),
    );
    net.settle();
    let ok = net.srs[0].responses.last().unwrap();
    let answer = String::from_utf8_lossy(&ok.body).to_string();
    assert_eq!(answer.matches("a=sendonly").count(), 2, "{answer}");
    assert!(answer.contains("m=audio 40000 RTP/AVP 8\r\n"), "{answer}");
    let plan = net.plans(rs).last().cloned().unwrap();
    let leg = plan.legs[1].clone().unwrap();
    assert_eq!(leg.remote, "192.0.2.20:31002".parse().unwrap());
    assert_eq!(leg.format, Format::pcma());
    assert!(plan.sending);
    // Unknown dialogs get 481; a new INVITE to the SRC gets 403.
    let bye = "BYE sip:src@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKx\r\nFrom: <sip:srs@x>;tag=a\r\nTo: <sip:src@y>;tag=nope\r\nCall-ID: unknown\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n";
    let from = Peer {
        transport: Transport::Udp,
        addr: A.parse().unwrap(),
    };
    let now = net.now;
    net.src.handle_bytes(now, from, bye.as_bytes());
    let t = net.src.poll_transmit().unwrap();
    assert!(t.payload.starts_with(b"SIP/2.0 481 "));
}

#[test]
fn glare_491_backs_off_and_retries() {
    let mut a = FakeSrs::new(A, InviteMode::Accept);
    a.glare = 1;
    let mut net = Net::new(vec![a]);
    let op = net.start(&list(&[A]), None);
    net.outcome(op).unwrap();
    let paused_at = net.now;
    let p = net.src.pause(paused_at);
    let out = net.await_outcome(p);
    assert_eq!(out.reply, Reply::Paused);
    let waited = net.now - paused_at;
    assert!(
        waited >= Duration::from_millis(2100) && waited <= Duration::from_millis(4100),
        "RFC 3261 §14.1 back-off for the Call-ID owner: {waited:?}"
    );
    assert_eq!(net.srs[0].methods(), ["INVITE", "INVITE", "INVITE"]);
    // Glare the other way: the SRS re-INVITEs while our re-INVITE is pending → 491.
    let now = net.now;
    let r = net.src.resume(now);
    // Our re-INVITE is in flight (not yet delivered): inject the SRS's before settling.
    net.srs(0).send(now, Method::Invite, None);
    // Deliver the SRS's request first.
    while let Some(t) = net.srs[0].layer.poll_transmit() {
        let from = Peer {
            transport: Transport::Udp,
            addr: A.parse().unwrap(),
        };
        net.src.handle_bytes(now, from, &t.payload);
    }
    net.settle();
    assert!(net.srs[0]
        .responses
        .iter()
        .any(|r| r.status_code.code() == 491));
    assert_eq!(net.await_outcome(r).reply, Reply::Resumed);
}
