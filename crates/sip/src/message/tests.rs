use super::*;
use rsip::prelude::*;

const INVITE: &str = "INVITE sip:srs@198.51.100.10:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK74bf9;rport\r\n\
Via: SIP/2.0/UDP 192.0.2.200:5070;branch=z9hG4bKproxy;received=203.0.113.7\r\n\
Max-Forwards: 70\r\n\
From: \"Session Recording Client\" <sip:src@example.com>;tag=9fxced76sl\r\n\
To: <sip:srs@example.net>\r\n\
Call-ID: 3848276298220188511@src.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:src@192.0.2.1:5060>;+sip.src\r\n\
Record-Route: <sip:proxy.example.com;lr>\r\n\
Require: siprec\r\n\
Supported: timer, replaces\r\n\
Session-Expires: 1800;refresher=uac\r\n\
Content-Type: multipart/mixed;boundary=foobar\r\n\
Content-Length: 4\r\n\
\r\n\
abcd";

fn req(msg: SipMessage) -> Request {
    match msg {
        SipMessage::Request(r) => r,
        SipMessage::Response(_) => panic!("expected a request"),
    }
}

fn resp(msg: SipMessage) -> Response {
    match msg {
        SipMessage::Response(r) => r,
        SipMessage::Request(_) => panic!("expected a response"),
    }
}

#[test]
fn parses_invite_and_every_header_type() {
    let r = req(parse_message(INVITE.as_bytes()).unwrap());
    assert_eq!(r.method, Method::Invite);
    assert_eq!(r.uri.to_string(), "sip:srs@198.51.100.10:5060");
    assert_eq!(r.body, b"abcd");
    let via = top_via(&r.headers).unwrap();
    assert_eq!(via.transport, "UDP");
    assert_eq!(via.sent_by, "192.0.2.1:5060");
    assert_eq!(via.branch.as_deref(), Some("z9hG4bK74bf9"));
    assert_eq!(via.param("rport"), Some(""));
    assert_eq!(via.host(), "192.0.2.1");
    let vias = header_values(&r.headers, "via");
    assert_eq!(vias.len(), 2);
    assert_eq!(
        TopVia::parse(&vias[1]).unwrap().param("received"),
        Some("203.0.113.7")
    );
    // rsip's typed Via agrees.
    let typed = r.via_header().unwrap().typed().unwrap();
    assert_eq!(typed.branch().unwrap().to_string(), "z9hG4bK74bf9");
    let from = header_value(&r.headers, "From").unwrap();
    assert_eq!(tag_of(&from).as_deref(), Some("9fxced76sl"));
    assert_eq!(
        split_name_addr(&from).0.as_deref(),
        Some("Session Recording Client")
    );
    assert_eq!(
        r.from_header().unwrap().display_name().unwrap().as_deref(),
        Some("\"Session Recording Client\"")
    );
    assert_eq!(tag_of(&header_value(&r.headers, "To").unwrap()), None);
    assert_eq!(
        call_id(&r.headers).as_deref(),
        Some("3848276298220188511@src.example.com")
    );
    assert_eq!(cseq(&r.headers), Some((314159, Method::Invite)));
    let contact = header_value(&r.headers, "m").unwrap();
    assert_eq!(header_param(&contact, "+sip.src").as_deref(), Some(""));
    assert_eq!(uri_of(&contact), "sip:src@192.0.2.1:5060");
    assert_eq!(header_tokens(&r.headers, "Require"), vec!["siprec"]);
    assert_eq!(header_tokens(&r.headers, "k"), vec!["timer", "replaces"]);
    assert_eq!(require(&r.headers), vec!["siprec"]);
    assert_eq!(supported(&r.headers), vec!["timer", "replaces"]);
    assert_eq!(
        header_value(&r.headers, "x").as_deref(),
        Some("1800;refresher=uac")
    );
    assert_eq!(
        header_value(&r.headers, "Max-Forwards").as_deref(),
        Some("70")
    );
    assert_eq!(
        uri_of(&header_value(&r.headers, "Record-Route").unwrap()),
        "sip:proxy.example.com;lr"
    );
    let ct = header_value(&r.headers, "content-type").unwrap();
    assert_eq!(crate::multipart::media_type(&ct), "multipart/mixed");
    assert_eq!(
        header_value(&r.headers, "Content-Length").as_deref(),
        Some("4")
    );
}

#[test]
fn header_print_parse_pairs() {
    use rsip::param::{Branch, OtherParam, Received, Tag};
    use rsip::{typed, Param};
    let host = |h: &str, port: Option<u16>| rsip::HostWithPort {
        host: h.into(),
        port: port.map(Into::into),
    };
    let uri = |user: &str, h: &str, port: Option<u16>| rsip::Uri {
        scheme: Some(rsip::Scheme::Sip),
        auth: Some(rsip::Auth {
            user: user.into(),
            password: None,
        }),
        host_with_port: host(h, port),
        ..Default::default()
    };
    let via = typed::Via {
        version: rsip::Version::V2,
        transport: rsip::Transport::Udp,
        uri: rsip::Uri {
            host_with_port: host("192.0.2.1", Some(5060)),
            ..Default::default()
        },
        params: vec![
            Param::Branch(Branch::new("z9hG4bKpair")),
            Param::Other(OtherParam::new("rport"), None),
            Param::Received(Received::new("203.0.113.9")),
        ],
    };
    let from = typed::From {
        display_name: Some("Alice".into()),
        uri: uri("alice", "atlanta.example.com", None),
        params: vec![Param::Tag(Tag::new("1928301774"))],
    };
    let contact = |feature: &str| typed::Contact {
        display_name: None,
        uri: uri("rec", "192.0.2.1", Some(5060)),
        params: vec![Param::Other(OtherParam::new(feature), None)],
    };
    let cases: Vec<(Header, &str, &str)> = vec![
        (
            via.into(),
            "Via",
            "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKpair;rport;received=203.0.113.9",
        ),
        (
            from.into(),
            "From",
            "Alice <sip:alice@atlanta.example.com>;tag=1928301774",
        ),
        (
            Header::To(rsip::headers::To::new(
                "\"Bob B.\" <sip:bob@biloxi.example.com>;tag=a6c85cf",
            )),
            "To",
            "\"Bob B.\" <sip:bob@biloxi.example.com>;tag=a6c85cf",
        ),
        (
            Header::CallId("a84b4c76e66710@pc33.atlanta.example.com".into()),
            "Call-ID",
            "a84b4c76e66710@pc33.atlanta.example.com",
        ),
        (
            typed::CSeq::from((4711, Method::Invite)).into(),
            "CSeq",
            "4711 INVITE",
        ),
        (
            contact("+sip.src").into(),
            "Contact",
            "<sip:rec@192.0.2.1:5060>;+sip.src",
        ),
        (
            contact("+sip.srs").into(),
            "Contact",
            "<sip:rec@192.0.2.1:5060>;+sip.srs",
        ),
        (
            Header::ContentType("multipart/mixed;boundary=\"b:1\"".into()),
            "Content-Type",
            "multipart/mixed;boundary=\"b:1\"",
        ),
        (Header::Require("siprec".into()), "Require", "siprec"),
        (
            Header::Supported("timer, replaces".into()),
            "Supported",
            "timer, replaces",
        ),
        (Header::MaxForwards(70u32.into()), "Max-Forwards", "70"),
        (
            Header::Other("Session-Expires".into(), "1800;refresher=uac".into()),
            "Session-Expires",
            "1800;refresher=uac",
        ),
        (
            Header::RecordRoute("<sip:p1.example.com;lr>".into()),
            "Record-Route",
            "<sip:p1.example.com;lr>",
        ),
    ];
    let req = Request {
        method: Method::Invite,
        uri: uri("srs", "198.51.100.10", None),
        version: rsip::Version::V2,
        headers: cases
            .iter()
            .map(|(h, _, _)| h.clone())
            .collect::<Vec<_>>()
            .into(),
        body: b"x".to_vec(),
    };
    let printed = print_message(&req.clone().into());
    let text = String::from_utf8(printed.clone()).unwrap();
    for (_, name, value) in &cases {
        assert!(
            text.contains(&format!("\r\n{name}: {value}\r\n")),
            "{name} printed as:\n{text}"
        );
    }
    assert!(text.ends_with("\r\nContent-Length: 1\r\n\r\nx"));
    let back = match parse_message(&printed).unwrap() {
        SipMessage::Request(r) => r,
        SipMessage::Response(_) => unreachable!(),
    };
    for (_, name, value) in &cases {
        assert!(
            header_values(&back.headers, name)
                .iter()
                .any(|v| v == value),
            "{name}: {value}"
        );
    }
    // The typed forms read back what was written.
    let via = back.via_header().unwrap().typed().unwrap();
    assert_eq!(via.branch().unwrap().to_string(), "z9hG4bKpair");
    assert_eq!(
        via.received().unwrap(),
        Some("203.0.113.9".parse().unwrap())
    );
    let from = back.from_header().unwrap().typed().unwrap();
    assert_eq!(from.display_name.as_deref(), Some("Alice"));
    assert_eq!(from.tag().unwrap().to_string(), "1928301774");
    assert_eq!(back.cseq_header().unwrap().typed().unwrap().seq, 4711);
    let contacts = back.contact_headers();
    assert_eq!(contacts.len(), 2);
    let c = contacts[0].typed().unwrap();
    assert!(matches!(&c.params[..], [Param::Other(n, None)] if n.to_string() == "+sip.src"));
    // The same message written with compact names parses to the same headers.
    let compact = text
        .replace("\r\nVia:", "\r\nv:")
        .replace("\r\nFrom:", "\r\nf:")
        .replace("\r\nTo:", "\r\nt:")
        .replace("\r\nCall-ID:", "\r\ni:")
        .replace("\r\nContact:", "\r\nm:")
        .replace("\r\nContent-Type:", "\r\nc:")
        .replace("\r\nSupported:", "\r\nk:")
        .replace("\r\nSession-Expires:", "\r\nx:")
        .replace("\r\nContent-Length:", "\r\nl:");
    assert!(compact.contains("\r\nv: SIP/2.0/UDP"));
    assert_eq!(
        parse_message(compact.as_bytes()).unwrap(),
        SipMessage::Request(back)
    );
}

#[test]
fn print_parse_round_trip() {
    let r = parse_message(INVITE.as_bytes()).unwrap();
    let printed = print_message(&r);
    let again = parse_message(&printed).unwrap();
    assert_eq!(r, again);
    let text = String::from_utf8(printed).unwrap();
    assert!(text.starts_with("INVITE sip:srs@198.51.100.10:5060 SIP/2.0\r\n"));
    assert!(text.contains("\r\nCall-ID: 3848276298220188511@src.example.com\r\n"));
    assert!(text.contains("\r\nContact: <sip:src@192.0.2.1:5060>;+sip.src\r\n"));
    assert!(text.contains("\r\nSession-Expires: 1800;refresher=uac\r\n"));
    assert!(text.ends_with("Content-Length: 4\r\n\r\nabcd"));
    assert_eq!(text.matches("Content-Length").count(), 1);
}

#[test]
fn print_fixes_content_length_and_reason() {
    let mut r = resp(
        parse_message(
            b"SIP/2.0 487 Request Terminated\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\
Content-Length: 0\r\n\r\n",
        )
        .unwrap(),
    );
    assert_eq!(r.status_code.code(), 487);
    r.body = b"hello".to_vec();
    let text = String::from_utf8(print_message(&r.clone().into())).unwrap();
    assert!(
        text.starts_with("SIP/2.0 487 Request Terminated\r\n"),
        "{text}"
    );
    assert!(text.ends_with("Content-Length: 5\r\n\r\nhello"));
}

#[test]
fn compact_forms_are_expanded() {
    let msg = b"BYE sip:srs@192.0.2.9 SIP/2.0\r\n\
v: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bKc1\r\n\
f: <sip:src@example.com>;tag=a\r\n\
T : <sip:srs@example.net>;tag=b\r\n\
I:call-1\r\n\
CSeq: 2 BYE\r\n\
m: <sip:src@192.0.2.1>\r\n\
k: timer\r\n\
x: 90\r\n\
c: text/plain\r\n\
l: 2\r\n\
\r\n\
hi";
    let r = req(parse_message(msg).unwrap());
    assert!(matches!(r.headers.iter().next(), Some(Header::Via(_))));
    assert_eq!(r.call_id_header().unwrap().value(), "call-1");
    assert_eq!(r.to_header().unwrap().tag().unwrap().unwrap().value(), "b");
    assert!(r.contact_header().is_ok());
    assert_eq!(header_tokens(&r.headers, "Supported"), vec!["timer"]);
    assert_eq!(
        header_value(&r.headers, "Session-Expires").as_deref(),
        Some("90")
    );
    assert!(matches!(
        r.headers
            .iter()
            .find(|h| matches!(h, Header::ContentType(_))),
        Some(Header::ContentType(_))
    ));
    assert_eq!(r.body, b"hi");
    // Only the name at line start is rewritten: a value that looks like "i: " stays.
    let msg2 = b"OPTIONS sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bKx\r\nf: <sip:a@b>;tag=1\r\nt: <sip:a@b>\r\ni: x\r\nCSeq: 1 OPTIONS\r\nSubject: i: not a header\r\n\r\n";
    let r2 = req(parse_message(msg2).unwrap());
    assert_eq!(
        header_value(&r2.headers, "Subject").as_deref(),
        Some("i: not a header")
    );
}

#[test]
fn folding_lf_only_and_leading_crlf() {
    let msg = b"\r\n\r\nOPTIONS sip:srs@example.net SIP/2.0\n\
Via: SIP/2.0/UDP 192.0.2.1:5060\n ;branch=z9hG4bKfold\n\
From: <sip:a@example.com>;tag=1\n\
To: <sip:srs@example.net>\n\
Call-ID: fold\n\
CSeq: 7 OPTIONS\n\
\n";
    let r = req(parse_message(msg).unwrap());
    assert_eq!(
        top_via(&r.headers).unwrap().branch.as_deref(),
        Some("z9hG4bKfold")
    );
    assert!(r.body.is_empty());
}

#[test]
fn content_length_rules() {
    let base = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n";
    // Longer body: cut (RFC 3261 §18.3).
    let m = format!("{base}Content-Length: 3\r\n\r\nabcdef");
    assert_eq!(parse_message(m.as_bytes()).unwrap().body(), b"abc");
    // Shorter body: error.
    let m = format!("{base}Content-Length: 10\r\n\r\nabc");
    assert_eq!(
        parse_message(m.as_bytes()).unwrap_err(),
        Error::ContentLengthMismatch {
            declared: 10,
            actual: 3
        }
    );
    // No Content-Length: the rest.
    let m = format!("{base}\r\nxyz");
    assert_eq!(parse_message(m.as_bytes()).unwrap().body(), b"xyz");
    // Garbage Content-Length.
    let m = format!("{base}Content-Length: -1\r\n\r\n");
    assert!(matches!(
        parse_message(m.as_bytes()),
        Err(Error::InvalidContentLength(_))
    ));
    let m = format!("{base}Content-Length: 1\r\nl: 2\r\n\r\nab");
    assert!(matches!(
        parse_message(m.as_bytes()),
        Err(Error::InvalidContentLength(_))
    ));
}

#[test]
fn limits_and_mandatory_headers() {
    let big = vec![b'a'; MAX_MESSAGE_SIZE + 1];
    assert!(matches!(
        parse_message(&big),
        Err(Error::MessageTooLarge { .. })
    ));
    let mut flood = String::from("OPTIONS sip:a@b SIP/2.0\r\n");
    for i in 0..300 {
        flood.push_str(&format!("X-H{i}: v\r\n"));
    }
    flood.push_str("\r\n");
    assert_eq!(
        parse_message(flood.as_bytes()).unwrap_err(),
        Error::TooManyHeaders { max: MAX_HEADERS }
    );
    let no_via = b"OPTIONS sip:a@b SIP/2.0\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n";
    assert_eq!(
        parse_message(no_via).unwrap_err(),
        Error::MissingHeader("Via".into())
    );
    let bad_cseq = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: one OPTIONS\r\n\r\n";
    assert!(matches!(
        parse_message(bad_cseq),
        Err(Error::InvalidHeader { .. })
    ));
}

#[test]
fn never_panics_on_garbage() {
    let samples: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"\r\n\r\n".to_vec(),
            b"INVITE".to_vec(),
            b"INVITE sip:a SIP/2.0".to_vec(),
            b"SIP/2.0 200\r\n\r\n".to_vec(),
            b"SIP/2.0 2\r\nVia: x\r\n\r\n".to_vec(),
            b": value\r\n\r\n".to_vec(),
            vec![0xff, 0xfe, b'\r', b'\n', b'\r', b'\n'],
            b"INVITE sip:[::1 SIP/2.0\r\nVia: SIP/2.0/UDP [::1;branch=z\r\nFrom: <\r\nTo: >\r\nCall-ID: \r\nCSeq: 4294967296 INVITE\r\n\r\n".to_vec(),
            b"FOO sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nFrom: a\r\nTo: b\r\nCall-ID: c\r\nCSeq: 1 FOO\r\n\r\n".to_vec(),
        ];
    for s in &samples {
        let _ = parse_message(s);
    }
    // Every prefix of a valid message, and single-byte corruptions of it.
    let valid = INVITE.as_bytes();
    for n in 0..valid.len() {
        let _ = parse_message(&valid[..n]);
    }
    let mut x: u32 = 12345;
    for _ in 0..2000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let mut m = valid.to_vec();
        let at = (x as usize >> 3) % m.len();
        m[at] = (x >> 16) as u8;
        let _ = parse_message(&m);
    }
}

#[test]
fn status_line_without_reason_phrase() {
    let m = b"SIP/2.0 180\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n";
    assert_eq!(resp(parse_message(m).unwrap()).status_code.code(), 180);
}

#[test]
fn make_response_copies_headers() {
    let r = req(parse_message(INVITE.as_bytes()).unwrap());
    let resp = make_response(&r, 200, None, Some("srs-tag"));
    let text = String::from_utf8(print_message(&resp.clone().into())).unwrap();
    assert!(text.starts_with("SIP/2.0 200 OK\r\n"));
    assert_eq!(header_values(&resp.headers, "Via").len(), 2);
    let to = header_value(&resp.headers, "To").unwrap();
    assert_eq!(tag_of(&to).as_deref(), Some("srs-tag"));
    assert_eq!(
        header_value(&resp.headers, "From").unwrap(),
        header_value(&r.headers, "From").unwrap()
    );
    assert_eq!(cseq(&resp.headers), Some((314159, Method::Invite)));
    assert_eq!(header_values(&resp.headers, "Record-Route").len(), 1);
    assert!(text.contains("Content-Length: 0\r\n\r\n"));
    // An existing tag is kept.
    let again = make_response(&r, 200, None, Some("other"));
    let mut r2 = r.clone();
    r2.headers = again.headers.clone();
    let resp2 = make_response(&r2, 487, None, Some("third"));
    assert_eq!(
        tag_of(&header_value(&resp2.headers, "To").unwrap()).as_deref(),
        Some("other")
    );
    assert_eq!(header_values(&resp2.headers, "Record-Route").len(), 0);
    // Custom reason phrase.
    let custom = make_response(&r, 488, Some("Not Acceptable Here (no\r\ncodec)"), None);
    assert_eq!(custom.status_code.code(), 488);
    let text = String::from_utf8(print_message(&custom.into())).unwrap();
    assert!(
        text.starts_with("SIP/2.0 488 Not Acceptable Here (no  codec)\r\n"),
        "{text}"
    );
    let std_reason = make_response(&r, 200, Some("OK"), None);
    assert_eq!(std_reason.status_code, StatusCode::OK);
    let odd = make_response(&r, 299, None, None);
    let text = String::from_utf8(print_message(&odd.into())).unwrap();
    assert!(text.starts_with("SIP/2.0 299 Unknown\r\n"));
}

#[test]
fn branches_and_tags_are_fresh() {
    let a = new_branch();
    assert!(a.starts_with("z9hG4bK") && a.len() == 29);
    assert_ne!(a, new_branch());
    assert_ne!(new_tag(), new_tag());
    assert!(new_call_id(Some("h")).ends_with("@h"));
}

#[test]
fn transaction_keys() {
    let r = req(parse_message(INVITE.as_bytes()).unwrap());
    let k = TxKey::for_request(&r).unwrap();
    assert_eq!(k.branch, "z9hG4bK74bf9");
    assert_eq!(k.sent_by, "192.0.2.1:5060");
    assert_eq!(k.method, Method::Invite);
    let mut ack = r.clone();
    ack.method = Method::Ack;
    assert_eq!(TxKey::for_request(&ack).unwrap(), k);
    let resp = make_response(&r, 180, None, None);
    let ck = TxKey::for_response(&resp).unwrap();
    assert_eq!(ck, TxKey::for_sent_request(&r).unwrap());
    // RFC 2543 stand-in.
    let old = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h:5060\r\nFrom: <sip:a@b>;tag=ft\r\nTo: <sip:a@b>\r\nCall-ID: c1\r\nCSeq: 9 OPTIONS\r\n\r\n";
    let k = TxKey::for_request(&req(parse_message(old).unwrap())).unwrap();
    assert_eq!(k.branch, "rfc2543:c1:9:ft");
}

#[test]
fn list_and_param_helpers() {
    assert_eq!(
        split_list("\"a, b\" <sip:x@y>;p=1, <sip:z,w@v>, c"),
        vec!["\"a, b\" <sip:x@y>;p=1", "<sip:z,w@v>", "c"]
    );
    assert_eq!(
        parse_params(";a=1; B = \"x;y\" ;flag"),
        vec![
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "x;y".to_string()),
            ("flag".to_string(), String::new())
        ]
    );
    assert_eq!(uri_of("sip:a@b;tag=1"), "sip:a@b");
    assert_eq!(tag_of("sip:a@b;tag=1").as_deref(), Some("1"));
    assert_eq!(
        uri_of("<sip:a@b;transport=tcp?subject=x>;expires=3"),
        "sip:a@b;transport=tcp"
    );
    assert_eq!(host_of("[2001:db8::1]:5060"), "2001:db8::1");
    assert_eq!(host_of("example.com"), "example.com");
    assert_eq!(expand_compact_name("I"), "Call-ID");
    assert_eq!(expand_compact_name("Via"), "Via");
}

/// A request with the given extra header lines (CRLF-terminated), parsed.
fn with_headers(extra: &str) -> Request {
    let text = format!(
        "OPTIONS sip:srs@192.0.2.9 SIP/2.0\r\nv: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKt\r\n\
         f: <sip:a@b>;tag=1\r\nt: <sip:c@d>\r\ni: typed-1\r\nCSeq: 1 OPTIONS\r\n{extra}\r\n"
    );
    req(parse_message(text.as_bytes()).unwrap())
}

#[test]
fn content_type_print_parse_pairs() {
    let cases = [
        ("application/sdp", "application/sdp"),
        ("Application/SDP", "application/sdp"),
        (
            "multipart/mixed;boundary=\"b:1\"",
            "multipart/mixed;boundary=\"b:1\"",
        ),
        (
            "Multipart/Mixed ; Boundary=unique-42 ; x=\"a b\"",
            "multipart/mixed;boundary=unique-42;x=\"a b\"",
        ),
        ("application/rs-metadata+xml", "application/rs-metadata+xml"),
        ("text / plain;charset=utf-8", "text/plain;charset=utf-8"),
    ];
    for (written, printed) in cases {
        for name in ["Content-Type", "c", "content-type"] {
            let r = with_headers(&format!("{name}: {written}\r\n"));
            let ct = content_type(&r.headers).unwrap_or_else(|| panic!("{name}: {written}"));
            assert_eq!(ct.to_string(), printed, "{written}");
            assert_eq!(MediaType::parse(printed), Some(ct.clone()), "{printed}");
        }
    }
    let mp = MediaType::parse("Multipart/Mixed;BOUNDARY=\"b:1\"").unwrap();
    assert_eq!(
        (mp.type_.as_str(), mp.subtype.as_str()),
        ("multipart", "mixed")
    );
    assert_eq!(mp.essence(), "multipart/mixed");
    assert!(mp.is("multipart/mixed") && mp.is("MULTIPART/Mixed") && mp.is_multipart());
    assert!(!mp.is("multipart/alternative") && !mp.is("multipart"));
    assert_eq!(mp.boundary(), Some("b:1"));
    assert_eq!(mp.param("Boundary"), Some("b:1"));
    let sdp = MediaType::parse("application/sdp").unwrap();
    assert!(sdp.is("application/sdp") && !sdp.is_multipart());
    assert_eq!(sdp.boundary(), None);
    assert_eq!(
        MediaType::parse("multipart/mixed;boundary=")
            .unwrap()
            .boundary(),
        None
    );
    // As written, for relaying.
    let r = with_headers("c: Application/DTMF-Relay ; x=1\r\n");
    assert_eq!(
        content_type_value(&r.headers).as_deref(),
        Some("Application/DTMF-Relay ; x=1")
    );
    // Missing or unreadable: None, never a panic.
    assert_eq!(content_type(&with_headers("").headers), None);
    assert_eq!(content_type_value(&with_headers("").headers), None);
    for bad in [
        "",
        "text",
        "/sdp",
        "application/",
        "application/sdp/x",
        "app lication/sdp",
        ";boundary=x",
        "application/sd\"p",
        "\u{e9}/sdp",
    ] {
        assert_eq!(MediaType::parse(bad), None, "{bad:?}");
        let r = with_headers(&format!("Content-Type: {bad}\r\n"));
        assert_eq!(content_type(&r.headers), None, "{bad:?}");
    }
}

#[test]
fn contacts_print_parse_pairs() {
    let r = with_headers(
        "Contact: \"Rec, Inc.\" <sip:rec@192.0.2.1:5060;transport=tcp>;+sip.src, \
         <sip:rec2@192.0.2.2>;expires=60\r\n\
         m: <sip:src@[2001:db8::1]:5070?subject=x>;+sip.src;q=0.5\r\n\
         Contact: sip:plain@example.com;expires=3\r\n",
    );
    let all = contacts(&r.headers);
    let printed: Vec<String> = all.iter().map(ToString::to_string).collect();
    assert_eq!(
        printed,
        vec![
            "\"Rec, Inc.\" <sip:rec@192.0.2.1:5060;transport=tcp>;+sip.src",
            "<sip:rec2@192.0.2.2>;expires=60",
            "<sip:src@[2001:db8::1]:5070?subject=x>;+sip.src;q=0.5",
            "<sip:plain@example.com>;expires=3",
        ]
    );
    for (c, p) in all.iter().zip(&printed) {
        assert_eq!(&NameAddr::parse(p), c, "{p}");
    }
    assert_eq!(all[0].display_name.as_deref(), Some("Rec, Inc."));
    assert_eq!(all[0].param("+sip.src"), Some(""));
    assert_eq!(all[0].params_text(), ";+sip.src");
    assert_eq!(all[1].param("expires"), Some("60"));
    // IPv6, with URI headers left out of the target.
    assert_eq!(all[2].uri_without_headers(), "sip:src@[2001:db8::1]:5070");
    assert_eq!(all[2].sip_uri().unwrap().host_port(), "[2001:db8::1]:5070");
    assert_eq!(all[2].params_text(), ";+sip.src;q=0.5");
    let v6 = NameAddr::parse("<sip:a@b>;received=[2001:db8::1];x=a:b");
    assert_eq!(v6.params_text(), ";received=[2001:db8::1];x=\"a:b\"");
    // addr-spec: the parameters are header parameters (RFC 3261 §20.10).
    assert_eq!(all[3].uri, "sip:plain@example.com");
    assert_eq!(all[3].param("expires"), Some("3"));
    // contact_addr is the first of them.
    assert_eq!(contact_addr(&r.headers), all.first().cloned());
    // A value needing quotes is printed quoted and read back.
    let q = NameAddr::parse("<sip:a@b>;+sip.instance=\"<urn:uuid:1>\";x=\"q\\\"uote\"");
    assert_eq!(
        q.to_string(),
        "<sip:a@b>;+sip.instance=\"<urn:uuid:1>\";x=\"q\\\"uote\""
    );
    assert_eq!(NameAddr::parse(&q.to_string()), q);
    // None, never a panic.
    assert!(contacts(&with_headers("").headers).is_empty());
    assert_eq!(contact_addr(&with_headers("").headers), None);
    for bad in [
        ",,,",
        "<",
        ">",
        "\"unclosed <sip:a@b>",
        "<sip:a@b",
        ";;;",
        "*",
    ] {
        let r = with_headers(&format!("Contact: {bad}\r\n"));
        for c in contacts(&r.headers) {
            let _ = (c.to_string(), c.sip_uri(), c.uri_without_headers());
        }
    }
    assert_eq!(
        contacts(&with_headers("Contact: *\r\n").headers)[0].uri,
        "*"
    );
}

#[test]
fn session_expires_and_max_forwards_print_parse_pairs() {
    let cases = [
        (
            "Session-Expires: 1800;refresher=uac",
            1800,
            Some(Refresher::Uac),
        ),
        ("x: 90", 90, None),
        (
            "session-expires: 4000 ; Refresher=UAS",
            4000,
            Some(Refresher::Uas),
        ),
        (
            "Session-Expires: 120;refresher=proxy;foo",
            120,
            Some(Refresher::Other("proxy".into())),
        ),
        ("Session-Expires: 99999999999", 99_999_999_999, None),
    ];
    for (line, secs, refresher) in cases {
        let se = session_expires(&with_headers(&format!("{line}\r\n")).headers)
            .unwrap_or_else(|| panic!("{line}"));
        assert_eq!(
            (se.delta_seconds, se.refresher),
            (secs, refresher),
            "{line}"
        );
    }
    let se = SessionExpires::parse("120;refresher=uac;foo").unwrap();
    assert_eq!(
        se.params,
        vec![
            ("refresher".to_string(), "uac".to_string()),
            ("foo".to_string(), String::new())
        ]
    );
    assert_eq!(session_expires(&with_headers("").headers), None);
    for bad in [
        "",
        "abc",
        "-5",
        "+90",
        "9 0",
        ";refresher=uac",
        "1e3",
        "99999999999999999999999",
    ] {
        assert_eq!(SessionExpires::parse(bad), None, "{bad:?}");
        let r = with_headers(&format!("Session-Expires: {bad}\r\n"));
        assert_eq!(session_expires(&r.headers), None, "{bad:?}");
    }

    for (value, want) in [("70", Some(70)), ("0", Some(0)), (" 69 ", Some(69))] {
        let r = with_headers(&format!("Max-Forwards: {value}\r\n"));
        assert_eq!(max_forwards(&r.headers), want, "{value:?}");
    }
    let mut r = with_headers("");
    r.headers.push(Header::MaxForwards(42u32.into()));
    let printed = print_message(&r.into());
    assert_eq!(
        max_forwards(&req(parse_message(&printed).unwrap()).headers),
        Some(42)
    );
    assert_eq!(max_forwards(&with_headers("").headers), None);
    for bad in ["", "-1", "abc", "+7", "4294967296", "7 0"] {
        let r = with_headers(&format!("Max-Forwards: {bad}\r\n"));
        assert_eq!(max_forwards(&r.headers), None, "{bad:?}");
    }
}

#[test]
fn party_route_and_extension_accessors() {
    let r = with_headers(
        "Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n\
         Record-Route: <sip:[2001:db8::9];lr>\r\n\
         x-reason:  startCallRecording \r\n\
         X-Srs-Url: sip:srs@example.com\r\n",
    );
    assert_eq!(
        record_routes(&r.headers),
        vec![
            "<sip:p1.example.com;lr>",
            "<sip:p2.example.com;lr>",
            "<sip:[2001:db8::9];lr>"
        ]
    );
    assert!(record_routes(&with_headers("").headers).is_empty());
    assert_eq!(from_value(&r.headers).as_deref(), Some("<sip:a@b>;tag=1"));
    assert_eq!(to_value(&r.headers).as_deref(), Some("<sip:c@d>"));
    assert_eq!(
        extension_header(&r.headers, "X-Reason").as_deref(),
        Some("startCallRecording")
    );
    assert_eq!(
        extension_header(&r.headers, "x-srs-url").as_deref(),
        Some("sip:srs@example.com")
    );
    assert_eq!(extension_header(&r.headers, "X-Call-Sid"), None);
}

#[test]
fn option_tag_and_method_lists_read_every_header_and_element() {
    let wire = "SIP/2.0 420 Bad Extension\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n\
From: <sip:src@example.com>;tag=a\r\n\
To: <sip:srs@example.net>;tag=b\r\n\
Call-ID: opt-1\r\n\
CSeq: 1 INVITE\r\n\
Unsupported: Foo, ,bar\r\n\
Allow: INVITE, ACK,BYE\r\n\
Allow: update\r\n\
Content-Length: 0\r\n\r\n";
    let r = resp(parse_message(wire.as_bytes()).unwrap());
    assert_eq!(unsupported(&r.headers), vec!["foo", "bar"]);
    assert_eq!(allow(&r.headers), vec!["invite", "ack", "bye", "update"]);
    assert!(require(&r.headers).is_empty());
    assert!(supported(&r.headers).is_empty());
}
