use super::*;
use crate::message::parse_message;

const T1: Duration = Duration::from_millis(500);

fn peer(transport: Transport) -> Peer {
    Peer {
        transport,
        addr: "192.0.2.1:5060".parse().unwrap(),
    }
}

fn parse(text: &str) -> SipMessage {
    parse_message(text.as_bytes()).unwrap()
}

fn invite(branch: &str) -> String {
    format!(
        "INVITE sip:srs@198.51.100.10 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch};rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:src@example.com>;tag=src1\r\n\
To: <sip:srs@example.net>\r\n\
Call-ID: call-{branch}\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:src@192.0.2.1>;+sip.src\r\n\
Content-Length: 0\r\n\r\n"
    )
}

fn request(method: &str, branch: &str, call_id: &str, cseq: u32, to_tag: Option<&str>) -> String {
    let to = match to_tag {
        Some(t) => format!("<sip:srs@example.net>;tag={t}"),
        None => "<sip:srs@example.net>".to_string(),
    };
    format!(
        "{method} sip:srs@198.51.100.10 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}\r\n\
From: <sip:src@example.com>;tag=src1\r\n\
To: {to}\r\n\
Call-ID: {call_id}\r\n\
CSeq: {cseq} {method}\r\n\
Content-Length: 0\r\n\r\n"
    )
}

fn status(t: &Transmit) -> Option<u16> {
    match parse_message(&t.payload).ok()? {
        SipMessage::Response(r) => Some(r.status_code.code()),
        SipMessage::Request(_) => None,
    }
}

fn method(t: &Transmit) -> Option<Method> {
    match parse_message(&t.payload).ok()? {
        SipMessage::Request(r) => Some(r.method),
        SipMessage::Response(_) => None,
    }
}

fn transmits(l: &mut TransactionLayer) -> Vec<Transmit> {
    std::iter::from_fn(|| l.poll_transmit()).collect()
}

fn events(l: &mut TransactionLayer) -> Vec<Event> {
    std::iter::from_fn(|| l.poll_event()).collect()
}

/// Receives an INVITE, returns its key (checks the 100 Trying).
fn receive_invite(
    l: &mut TransactionLayer,
    now: Instant,
    p: Peer,
    branch: &str,
) -> (ServerKey, Request) {
    transmits(l);
    l.handle_message(now, p, parse(&invite(branch)));
    let out = transmits(l);
    assert_eq!(out.len(), 1);
    assert_eq!(status(&out[0]), Some(100));
    let mut ev = events(l);
    assert_eq!(ev.len(), 1);
    match ev.remove(0) {
        Event::Request { key, request, .. } => (key, request),
        other => panic!("unexpected {other:?}"),
    }
}

/// Advances to the next timer and runs it. Returns the new time.
fn step(l: &mut TransactionLayer) -> Instant {
    let at = l.poll_timeout().expect("a timer");
    l.handle_timeout(at);
    at
}

#[test]
fn invite_retransmission_absorbed() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let now = Instant::now();
    let p = peer(Transport::Udp);
    let (key, req) = receive_invite(&mut l, now, p, "z9hG4bKa");
    // Retransmission before any final: the 100 again, no event.
    l.handle_message(now + T1, p, parse(&invite("z9hG4bKa")));
    let out = transmits(&mut l);
    assert_eq!(out.iter().map(status).collect::<Vec<_>>(), vec![Some(100)]);
    assert!(events(&mut l).is_empty());
    // After a 180, the 180 is resent.
    l.respond(now + T1, &key, make_response(&req, 180, None, Some("t1")))
        .unwrap();
    assert_eq!(status(&transmits(&mut l)[0]), Some(180));
    l.handle_message(now + 2 * T1, p, parse(&invite("z9hG4bKa")));
    assert_eq!(status(&transmits(&mut l)[0]), Some(180));
    assert!(events(&mut l).is_empty());
    // Received/rport were stamped on the Via the TU saw.
    let via = message::top_via(&req.headers).unwrap();
    assert_eq!(via.param("rport"), Some("5060"));
    assert_eq!(via.param("received"), Some("192.0.2.1"));
}

#[test]
fn ok_retransmitted_until_ack() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let p = peer(Transport::Udp);
    let (key, req) = receive_invite(&mut l, t0, p, "z9hG4bKb");
    l.respond(t0, &key, make_response(&req, 200, None, Some("srs")))
        .unwrap();
    assert_eq!(status(&transmits(&mut l)[0]), Some(200));
    let mut times = Vec::new();
    for _ in 0..6 {
        let at = step(&mut l);
        let out = transmits(&mut l);
        assert_eq!(out.len(), 1);
        assert_eq!(status(&out[0]), Some(200));
        times.push(at.duration_since(t0).as_millis());
    }
    // Intervals 500 ms, 1 s, 2 s, 4 s, 4 s, 4 s.
    assert_eq!(times, vec![500, 1500, 3500, 7500, 11500, 15500]);
    // A retransmitted INVITE gets the 200 again, no new event.
    l.handle_message(t0 + Duration::from_secs(16), p, parse(&invite("z9hG4bKb")));
    assert_eq!(status(&transmits(&mut l)[0]), Some(200));
    assert!(events(&mut l).is_empty());
    // The ACK (new branch, same Call-ID and CSeq number) stops it.
    let ack = request("ACK", "z9hG4bKack", "call-z9hG4bKb", 1, Some("srs"));
    l.handle_message(t0 + Duration::from_secs(17), p, parse(&ack));
    let ev = events(&mut l);
    assert!(matches!(ev.as_slice(), [Event::Ack { .. }]));
    // The duplicate ACK is absorbed.
    l.handle_message(t0 + Duration::from_secs(18), p, parse(&ack));
    assert!(events(&mut l).is_empty());
    // No more retransmissions; the transaction ends at 64*T1 without AckTimeout.
    let end = step(&mut l);
    assert_eq!(end.duration_since(t0), Duration::from_secs(32));
    assert!(transmits(&mut l).is_empty());
    assert!(events(&mut l).is_empty());
    assert_eq!(l.len(), 0);
    assert!(l.poll_timeout().is_none());
}

#[test]
fn ack_timeout_after_64_t1() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let p = peer(Transport::Udp);
    let (key, req) = receive_invite(&mut l, t0, p, "z9hG4bKc");
    l.respond(t0, &key, make_response(&req, 200, None, Some("srs")))
        .unwrap();
    transmits(&mut l);
    let mut sent = 0;
    let end = loop {
        let at = step(&mut l);
        sent += transmits(&mut l).len();
        let ev = events(&mut l);
        if !ev.is_empty() {
            match &ev[..] {
                [Event::AckTimeout { key: k, call_id }] => {
                    assert_eq!(k, &key);
                    assert_eq!(call_id, "call-z9hG4bKc");
                }
                other => panic!("unexpected {other:?}"),
            }
            break at;
        }
    };
    assert_eq!(end.duration_since(t0), 64 * T1);
    // 0.5, 1.5, 3.5, 7.5, then every 4 s up to 31.5: 10 retransmissions.
    assert_eq!(sent, 10);
    assert_eq!(l.len(), 0);
}

#[test]
fn reliable_transport_no_retransmissions() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let p = peer(Transport::Tcp);
    let (key, req) = receive_invite(&mut l, t0, p, "z9hG4bKd");
    l.respond(t0, &key, make_response(&req, 200, None, Some("srs")))
        .unwrap();
    assert_eq!(transmits(&mut l).len(), 1);
    // The only timer is the ACK wait at 64*T1.
    assert_eq!(l.poll_timeout(), Some(t0 + 64 * T1));
    let ack = request("ACK", "z9hG4bKack2", "call-z9hG4bKd", 1, Some("srs"));
    l.handle_message(t0 + T1, p, parse(&ack));
    assert!(matches!(events(&mut l).as_slice(), [Event::Ack { .. }]));
    step(&mut l);
    assert!(transmits(&mut l).is_empty());
    assert!(events(&mut l).is_empty());
    // A non-INVITE over TCP: Timer J is zero, the transaction ends with the response.
    let bye = request("BYE", "z9hG4bKbye", "call-z9hG4bKd", 2, Some("srs"));
    l.handle_message(t0, p, parse(&bye));
    let Some(Event::Request {
        key, request: r, ..
    }) = l.poll_event()
    else {
        panic!("no request")
    };
    l.respond(t0, &key, make_response(&r, 200, None, None))
        .unwrap();
    assert_eq!(l.len(), 0);
    // A non-2xx to an INVITE over TCP: no Timer G, ACK ends it at once (Timer I zero).
    let (key, req) = receive_invite(&mut l, t0, p, "z9hG4bKe");
    l.respond(t0, &key, make_response(&req, 486, None, Some("x")))
        .unwrap();
    transmits(&mut l);
    assert_eq!(l.poll_timeout(), Some(t0 + 64 * T1));
    l.handle_message(
        t0 + T1,
        p,
        parse(&request("ACK", "z9hG4bKe", "call-z9hG4bKe", 1, Some("x"))),
    );
    assert_eq!(l.len(), 0);
    assert!(events(&mut l).is_empty());
}

#[test]
fn timer_h_on_non_2xx_without_ack() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let p = peer(Transport::Udp);
    let (key, req) = receive_invite(&mut l, t0, p, "z9hG4bKf");
    l.respond(t0, &key, make_response(&req, 488, None, Some("x")))
        .unwrap();
    transmits(&mut l);
    let mut retransmissions = Vec::new();
    loop {
        let at = step(&mut l);
        for t in transmits(&mut l) {
            assert_eq!(status(&t), Some(488));
            retransmissions.push(at.duration_since(t0).as_millis());
        }
        let ev = events(&mut l);
        if let Some(e) = ev.first() {
            assert!(matches!(e, Event::ServerTimeout { key: k } if k == &key));
            assert_eq!(at.duration_since(t0), 64 * T1);
            break;
        }
    }
    // Timer G: 0.5, 1.5, 3.5, 7.5, 11.5, ... 31.5.
    assert_eq!(&retransmissions[..4], &[500, 1500, 3500, 7500]);
    assert_eq!(retransmissions.len(), 10);
    assert_eq!(l.len(), 0);
}

#[test]
fn non_2xx_ack_absorbed_then_timer_i() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let p = peer(Transport::Udp);
    let (key, req) = receive_invite(&mut l, t0, p, "z9hG4bKg");
    l.respond(t0, &key, make_response(&req, 503, None, Some("x")))
        .unwrap();
    transmits(&mut l);
    let ack = request("ACK", "z9hG4bKg", "call-z9hG4bKg", 1, Some("x"));
    l.handle_message(t0 + T1 / 2, p, parse(&ack));
    l.handle_message(t0 + T1, p, parse(&ack));
    assert!(
        events(&mut l).is_empty(),
        "ACK for a non-2xx never reaches the TU"
    );
    // Timer G stopped; Timer I (T4) ends the transaction.
    let end = step(&mut l);
    assert_eq!(end.duration_since(t0), T1 / 2 + Duration::from_secs(5));
    assert!(transmits(&mut l).is_empty());
    assert!(events(&mut l).is_empty());
    assert_eq!(l.len(), 0);
}

#[test]
fn bye_before_ack() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let p = peer(Transport::Udp);
    let (key, req) = receive_invite(&mut l, t0, p, "z9hG4bKh");
    l.respond(t0, &key, make_response(&req, 200, None, Some("srs")))
        .unwrap();
    transmits(&mut l);
    // BYE arrives while the 2xx is being retransmitted.
    let bye = request("BYE", "z9hG4bKbye", "call-z9hG4bKh", 2, Some("srs"));
    l.handle_message(t0 + Duration::from_millis(100), p, parse(&bye));
    let ev = events(&mut l);
    let [Event::Request {
        key: bye_key,
        request: bye_req,
        ..
    }] = ev.as_slice()
    else {
        panic!("expected the BYE, got {ev:?}")
    };
    assert_eq!(bye_req.method, Method::Bye);
    l.respond(t0, bye_key, make_response(bye_req, 200, None, None))
        .unwrap();
    assert_eq!(status(&transmits(&mut l)[0]), Some(200));
    // The 2xx retransmission goes on.
    let at = step(&mut l);
    assert_eq!(at, t0 + T1);
    let out = transmits(&mut l);
    assert_eq!(out.len(), 1);
    let SipMessage::Response(r) = parse_message(&out[0].payload).unwrap() else {
        panic!()
    };
    assert_eq!(message::cseq(&r.headers), Some((1, Method::Invite)));
    // Then the ACK stops it.
    l.handle_message(
        at,
        p,
        parse(&request(
            "ACK",
            "z9hG4bKa2",
            "call-z9hG4bKh",
            1,
            Some("srs"),
        )),
    );
    assert!(matches!(events(&mut l).as_slice(), [Event::Ack { .. }]));
    while l.poll_timeout().is_some() {
        step(&mut l);
        assert!(transmits(&mut l).is_empty());
    }
    assert_eq!(l.len(), 0);
}

#[test]
fn cancel_on_pending_invite() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let p = peer(Transport::Udp);
    let (key, req) = receive_invite(&mut l, t0, p, "z9hG4bKi");
    let cancel = request("CANCEL", "z9hG4bKi", "call-z9hG4bKi", 1, None);
    l.handle_message(t0 + T1, p, parse(&cancel));
    let out = transmits(&mut l);
    assert_eq!(out.len(), 1);
    assert_eq!(status(&out[0]), Some(200));
    let ev = events(&mut l);
    match ev.as_slice() {
        [Event::Cancelled { invite, cancel, .. }] => {
            assert_eq!(invite, &key);
            assert_eq!(cancel.method, Method::Cancel);
        }
        other => panic!("unexpected {other:?}"),
    }
    // A retransmitted CANCEL gets the same 200, no second event.
    l.handle_message(t0 + 2 * T1, p, parse(&cancel));
    assert_eq!(status(&transmits(&mut l)[0]), Some(200));
    assert!(events(&mut l).is_empty());
    // The TU answers 487; the ACK confirms.
    l.respond(t0 + 2 * T1, &key, make_response(&req, 487, None, Some("x")))
        .unwrap();
    assert_eq!(status(&transmits(&mut l)[0]), Some(487));
    l.handle_message(
        t0 + 3 * T1,
        p,
        parse(&request("ACK", "z9hG4bKi", "call-z9hG4bKi", 1, Some("x"))),
    );
    assert!(events(&mut l).is_empty());
    while l.poll_timeout().is_some() {
        step(&mut l);
    }
    assert!(events(&mut l).is_empty());
    assert_eq!(l.len(), 0);
}

#[test]
fn cancel_after_final_and_unknown_cancel() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let p = peer(Transport::Udp);
    let (key, req) = receive_invite(&mut l, t0, p, "z9hG4bKj");
    l.respond(t0, &key, make_response(&req, 200, None, Some("srs")))
        .unwrap();
    transmits(&mut l);
    // CANCEL races the 200: answered 200 (with our To tag), no Cancelled event.
    l.handle_message(
        t0 + Duration::from_millis(10),
        p,
        parse(&request("CANCEL", "z9hG4bKj", "call-z9hG4bKj", 1, None)),
    );
    let out = transmits(&mut l);
    assert_eq!(out.len(), 1);
    let SipMessage::Response(r) = parse_message(&out[0].payload).unwrap() else {
        panic!()
    };
    assert_eq!(r.status_code.code(), 200);
    assert_eq!(message::cseq(&r.headers), Some((1, Method::Cancel)));
    assert_eq!(
        message::header_value(&r.headers, "To")
            .and_then(|t| tag_of(&t))
            .as_deref(),
        Some("srs")
    );
    assert!(events(&mut l).is_empty());
    // A CANCEL matching nothing: 481.
    l.handle_message(
        t0,
        p,
        parse(&request("CANCEL", "z9hG4bKnone", "other", 1, None)),
    );
    assert_eq!(status(&transmits(&mut l)[0]), Some(481));
    assert!(events(&mut l).is_empty());
}

#[test]
fn non_invite_server_absorbs_and_timer_j() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let p = peer(Transport::Udp);
    let opt = request("OPTIONS", "z9hG4bKo", "opt", 1, None);
    l.handle_message(t0, p, parse(&opt));
    let Some(Event::Request {
        key, request: r, ..
    }) = l.poll_event()
    else {
        panic!()
    };
    assert!(transmits(&mut l).is_empty(), "no 100 for a non-INVITE");
    // Retransmission while Trying: silently absorbed.
    l.handle_message(t0 + T1, p, parse(&opt));
    assert!(transmits(&mut l).is_empty());
    assert!(events(&mut l).is_empty());
    l.respond(t0 + T1, &key, make_response(&r, 200, None, None))
        .unwrap();
    assert_eq!(transmits(&mut l).len(), 1);
    // Retransmission while Completed: the 200 again.
    l.handle_message(t0 + 2 * T1, p, parse(&opt));
    assert_eq!(status(&transmits(&mut l)[0]), Some(200));
    // Second final refused.
    assert!(matches!(
        l.respond(t0, &key, make_response(&r, 500, None, None)),
        Err(Error::InvalidState { code: 500, .. })
    ));
    let end = step(&mut l);
    assert_eq!(end, t0 + T1 + 64 * T1);
    assert_eq!(l.len(), 0);
    assert_eq!(
        l.respond(end, &key, make_response(&r, 200, None, None)),
        Err(Error::UnknownTransaction)
    );
}

#[test]
fn unanswered_non_invite_is_dropped() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    l.handle_message(
        t0,
        peer(Transport::Udp),
        parse(&request("INFO", "z9hG4bKinfo", "c", 1, Some("x"))),
    );
    events(&mut l);
    assert_eq!(step(&mut l), t0 + 64 * T1);
    assert_eq!(l.len(), 0);
}

fn outgoing_bye(branch: &str) -> Request {
    match parse(&request("BYE", branch, "out-1", 5, Some("srs"))) {
        SipMessage::Request(r) => r,
        SipMessage::Response(_) => unreachable!(),
    }
}

fn response_to(req: &Request, code: u16) -> SipMessage {
    let resp = make_response(req, code, None, Some("srs"));
    parse_message(&print_message(&resp.into())).unwrap()
}

#[test]
fn client_bye_timer_e_then_f() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let p = peer(Transport::Udp);
    let key = l.send_request(t0, p, outgoing_bye("z9hG4bKcb"));
    assert_eq!(method(&transmits(&mut l)[0]), Some(Method::Bye));
    let mut times = Vec::new();
    let end = loop {
        let at = step(&mut l);
        for t in transmits(&mut l) {
            assert_eq!(method(&t), Some(Method::Bye));
            times.push(at.duration_since(t0).as_millis());
        }
        let ev = events(&mut l);
        if !ev.is_empty() {
            assert!(matches!(ev.as_slice(), [Event::Timeout { key: k }] if k == &key));
            break at;
        }
    };
    // Timer E: 0.5, 1.5, 3.5, 7.5, 11.5, ... (capped at T2); Timer F at 32 s.
    assert_eq!(&times[..5], &[500, 1500, 3500, 7500, 11500]);
    assert_eq!(times.len(), 10);
    assert_eq!(end.duration_since(t0), 64 * T1);
    assert_eq!(l.len(), 0);
}

#[test]
fn client_bye_answered_then_timer_k() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let p = peer(Transport::Udp);
    let bye = outgoing_bye("z9hG4bKcb2");
    let key = l.send_request(t0, p, bye.clone());
    transmits(&mut l);
    l.handle_message(t0 + T1 / 5, p, response_to(&bye, 200));
    assert!(matches!(events(&mut l).as_slice(), [Event::Response { key: k, .. }] if k == &key));
    // Retransmitted 200 absorbed.
    l.handle_message(t0 + T1, p, response_to(&bye, 200));
    assert!(events(&mut l).is_empty());
    let end = step(&mut l);
    assert_eq!(end, t0 + T1 / 5 + Duration::from_secs(5));
    assert!(transmits(&mut l).is_empty());
    assert_eq!(l.len(), 0);
    // Over TCP: no retransmission, ends with the response.
    let key = l.send_request(t0, peer(Transport::Tcp), bye.clone());
    transmits(&mut l);
    assert_eq!(l.poll_timeout(), Some(t0 + 64 * T1));
    l.handle_message(t0, peer(Transport::Tcp), response_to(&bye, 200));
    assert!(matches!(events(&mut l).as_slice(), [Event::Response { key: k, .. }] if k == &key));
    assert_eq!(l.len(), 0);
}

fn outgoing_invite(branch: &str) -> Request {
    match parse(&invite(branch)) {
        SipMessage::Request(r) => r,
        SipMessage::Response(_) => unreachable!(),
    }
}

#[test]
fn client_invite_non_2xx_acked_by_layer() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let p = peer(Transport::Udp);
    let inv = outgoing_invite("z9hG4bKci");
    let key = l.send_request(t0, p, inv.clone());
    transmits(&mut l);
    // Timer A retransmits at T1, then 2*T1.
    assert_eq!(step(&mut l), t0 + T1);
    assert_eq!(method(&transmits(&mut l)[0]), Some(Method::Invite));
    assert_eq!(step(&mut l), t0 + 3 * T1);
    transmits(&mut l);
    l.handle_message(t0 + 4 * T1, p, response_to(&inv, 100));
    assert!(matches!(
        events(&mut l).as_slice(),
        [Event::Response { .. }]
    ));
    l.handle_message(t0 + 5 * T1, p, response_to(&inv, 503));
    let out = transmits(&mut l);
    assert_eq!(out.len(), 1);
    let SipMessage::Request(ack) = parse_message(&out[0].payload).unwrap() else {
        panic!()
    };
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(message::cseq(&ack.headers), Some((1, Method::Ack)));
    assert_eq!(
        message::top_via(&ack.headers).unwrap().branch.as_deref(),
        Some("z9hG4bKci")
    );
    assert_eq!(
        message::header_value(&ack.headers, "To")
            .and_then(|t| tag_of(&t))
            .as_deref(),
        Some("srs")
    );
    assert!(
        matches!(events(&mut l).as_slice(), [Event::Response { key: k, response }] if k == &key && response.status_code.code() == 503)
    );
    // A retransmitted 503 gets the ACK again, no event.
    l.handle_message(t0 + 6 * T1, p, response_to(&inv, 503));
    assert_eq!(method(&transmits(&mut l)[0]), Some(Method::Ack));
    assert!(events(&mut l).is_empty());
    // Timer D.
    assert_eq!(step(&mut l), t0 + 5 * T1 + Duration::from_secs(32));
    assert_eq!(l.len(), 0);
}

#[test]
fn client_invite_2xx_retransmissions_reach_tu_then_timer_b_case() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let p = peer(Transport::Udp);
    let inv = outgoing_invite("z9hG4bKok");
    let key = l.send_request(t0, p, inv.clone());
    transmits(&mut l);
    l.handle_message(t0 + T1 / 2, p, response_to(&inv, 200));
    l.handle_message(t0 + T1, p, response_to(&inv, 200));
    let ev = events(&mut l);
    assert_eq!(ev.len(), 2, "every 2xx reaches the TU");
    assert!(ev
        .iter()
        .all(|e| matches!(e, Event::Response { key: k, .. } if k == &key)));
    assert!(transmits(&mut l).is_empty(), "the TU sends the 2xx ACK");
    // Timer M, no retransmission of the INVITE.
    assert_eq!(step(&mut l), t0 + T1 / 2 + 64 * T1);
    assert!(transmits(&mut l).is_empty());
    assert_eq!(l.len(), 0);
    // A late 2xx still reaches the TU.
    l.handle_message(t0 + 100 * T1, p, response_to(&inv, 200));
    assert!(matches!(
        events(&mut l).as_slice(),
        [Event::Response { .. }]
    ));

    // Timer B: nobody answers.
    let inv2 = outgoing_invite("z9hG4bKnoanswer");
    let key2 = l.send_request(t0, p, inv2);
    transmits(&mut l);
    let mut n = 0;
    let end = loop {
        let at = step(&mut l);
        n += transmits(&mut l).len();
        if let Some(e) = l.poll_event() {
            assert!(matches!(e, Event::Timeout { key } if key == key2));
            break at;
        }
    };
    assert_eq!(end, t0 + 64 * T1);
    // Timer A at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5.
    assert_eq!(n, 6);
    assert_eq!(l.len(), 0);
}

#[test]
fn client_cancel_waits_for_provisional() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let p = peer(Transport::Tcp);
    let inv = outgoing_invite("z9hG4bKcc");
    let key = l.send_request(t0, p, inv.clone());
    transmits(&mut l);
    let ckey = l.cancel(t0, &key).unwrap();
    assert_eq!(ckey.tx_key().method, Method::Cancel);
    assert_eq!(ckey.tx_key().branch, "z9hG4bKcc");
    assert!(
        transmits(&mut l).is_empty(),
        "no CANCEL before a provisional response"
    );
    assert_eq!(l.cancel(t0, &key), Some(ckey.clone()));
    l.handle_message(t0 + T1, p, response_to(&inv, 180));
    let out = transmits(&mut l);
    assert_eq!(out.len(), 1);
    let SipMessage::Request(cancel) = parse_message(&out[0].payload).unwrap() else {
        panic!()
    };
    assert_eq!(cancel.method, Method::Cancel);
    assert_eq!(message::cseq(&cancel.headers), Some((1, Method::Cancel)));
    assert_eq!(cancel.uri, inv.uri);
    // 200 to the CANCEL, then 487 to the INVITE (ACKed by the layer).
    let c200 = response_to(&cancel, 200);
    l.handle_message(t0 + 2 * T1, p, c200);
    l.handle_message(t0 + 2 * T1, p, response_to(&inv, 487));
    let ev = events(&mut l);
    assert_eq!(ev.len(), 3);
    assert!(matches!(&ev[1], Event::Response { key: k, .. } if k == &ckey));
    assert!(
        matches!(&ev[2], Event::Response { key: k, response } if k == &key && response.status_code.code() == 487)
    );
    assert_eq!(method(&transmits(&mut l)[0]), Some(Method::Ack));
    assert_eq!(l.len(), 0);
}

#[test]
fn client_cancel_without_final_times_out() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let p = peer(Transport::Tcp);
    let inv = outgoing_invite("z9hG4bKcx");
    let key = l.send_request(t0, p, inv.clone());
    l.handle_message(t0, p, response_to(&inv, 183));
    let ckey = l.cancel(t0 + T1, &key).unwrap();
    assert_eq!(
        method(transmits(&mut l).last().unwrap()),
        Some(Method::Cancel)
    );
    events(&mut l);
    l.handle_message(
        t0 + T1,
        p,
        response_to(
            &match parse(&String::from_utf8(print_message(&build_cancel(&inv).into())).unwrap()) {
                SipMessage::Request(r) => r,
                _ => unreachable!(),
            },
            200,
        ),
    );
    assert!(matches!(events(&mut l).as_slice(), [Event::Response { key: k, .. }] if k == &ckey));
    // §9.1: no final response within 64*T1 of the CANCEL → the INVITE is given up.
    assert_eq!(step(&mut l), t0 + T1 + 64 * T1);
    assert!(matches!(events(&mut l).as_slice(), [Event::Timeout { key: k }] if k == &key));
    assert_eq!(l.len(), 0);
    // Nothing to cancel any more.
    assert_eq!(l.cancel(t0, &key), None);
}

#[test]
fn transaction_cap() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    l.set_max_transactions(2);
    let t0 = Instant::now();
    let p = peer(Transport::Udp);
    for i in 0..3 {
        l.handle_message(
            t0,
            p,
            parse(&request("OPTIONS", &format!("z9hG4bKcap{i}"), "c", 1, None)),
        );
    }
    assert_eq!(l.len(), 2);
    assert_eq!(events(&mut l).len(), 2);
    let key = l.send_request(t0, p, outgoing_bye("z9hG4bKcapc"));
    assert!(transmits(&mut l).is_empty());
    assert!(matches!(events(&mut l).as_slice(), [Event::Timeout { key: k }] if k == &key));
}

#[test]
fn unmatched_ack_and_stray_responses() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let p = peer(Transport::Udp);
    l.handle_message(
        t0,
        p,
        parse(&request("ACK", "z9hG4bKlost", "lost", 3, Some("x"))),
    );
    assert!(matches!(events(&mut l).as_slice(), [Event::Ack { .. }]));
    l.handle_message(t0, p, response_to(&outgoing_bye("z9hG4bKstray"), 200));
    assert!(events(&mut l).is_empty());
    assert_eq!(l.len(), 0);
}

#[test]
fn many_sessions_leave_nothing_behind() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let p = peer(Transport::Udp);
    for i in 0..50 {
        let (key, req) = receive_invite(&mut l, t0, p, &format!("z9hG4bKm{i}"));
        l.respond(t0, &key, make_response(&req, 200, None, Some("t")))
            .unwrap();
        if i % 2 == 0 {
            l.handle_message(
                t0 + T1,
                p,
                parse(&request(
                    "ACK",
                    &format!("z9hG4bKma{i}"),
                    &format!("call-z9hG4bKm{i}"),
                    1,
                    Some("t"),
                )),
            );
            assert!(matches!(events(&mut l).as_slice(), [Event::Ack { .. }]));
        }
        l.send_request(t0, p, outgoing_bye(&format!("z9hG4bKmb{i}")));
    }
    while l.poll_timeout().is_some() {
        step(&mut l);
    }
    let ev = events(&mut l);
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, Event::AckTimeout { .. }))
            .count(),
        25
    );
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, Event::Timeout { .. }))
            .count(),
        50
    );
    assert_eq!(l.len(), 0);
    assert!(l.ack_index.is_empty());
}

#[test]
fn layer_answers_487_when_the_tu_ignores_a_cancel() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let p = peer(Transport::Udp);
    let (key, req) = receive_invite(&mut l, t0, p, "z9hG4bKign");
    l.handle_message(
        t0,
        p,
        parse(&request("CANCEL", "z9hG4bKign", "call-z9hG4bKign", 1, None)),
    );
    assert!(matches!(
        events(&mut l).as_slice(),
        [Event::Cancelled { .. }]
    ));
    transmits(&mut l);
    // The TU does nothing. 64*T1 later the layer answers 487 itself.
    let at = step(&mut l);
    assert_eq!(at, t0 + 64 * T1);
    let out = transmits(&mut l);
    assert!(out.iter().any(|t| status(t) == Some(487)), "{out:?}");
    let SipMessage::Response(r) =
        parse_message(&out.iter().find(|t| status(t) == Some(487)).unwrap().payload).unwrap()
    else {
        panic!()
    };
    assert!(message::header_value(&r.headers, "To")
        .and_then(|t| tag_of(&t))
        .is_some());
    // The ACK completes it as usual.
    let ack = request("ACK", "z9hG4bKign", "call-z9hG4bKign", 1, Some("x"));
    l.handle_message(at, p, parse(&ack));
    while l.poll_timeout().is_some() {
        step(&mut l);
    }
    assert_eq!(l.len(), 0);
    assert!(matches!(
        l.respond(at, &key, make_response(&req, 487, None, None)),
        Err(Error::UnknownTransaction)
    ));
}

#[test]
fn layer_answers_408_when_the_tu_never_answers_an_invite() {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let p = peer(Transport::Tcp);
    receive_invite(&mut l, t0, p, "z9hG4bKsilent");
    assert_eq!(step(&mut l), t0 + INVITE_PROCEEDING_LIMIT);
    assert_eq!(status(&transmits(&mut l)[0]), Some(408));
    // No ACK: Timer H, then gone.
    assert_eq!(step(&mut l), t0 + INVITE_PROCEEDING_LIMIT + 64 * T1);
    assert!(matches!(
        events(&mut l).as_slice(),
        [Event::ServerTimeout { .. }]
    ));
    assert_eq!(l.len(), 0);
}
