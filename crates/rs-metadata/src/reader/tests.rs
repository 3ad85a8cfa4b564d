use super::*;

fn rec(xml: &str) -> Recording {
    match parse(xml.as_bytes()) {
        Ok(Document::Recording(r)) => r,
        other => panic!("expected a recording, got {other:?}"),
    }
}

/// parse → print → parse gives the same model, and printing is stable.
fn assert_round_trip(xml: &str) -> Recording {
    let first = rec(xml);
    let printed = first.to_xml();
    let second = rec(&printed);
    assert_eq!(
        first, second,
        "round trip changed the model; printed:\n{printed}"
    );
    assert_eq!(printed, second.to_xml(), "printing is not stable");
    first
}

const S: &str = "B5Xic2dRYzGMVrle7+5nbw==";
const ALICE: &str = "Htao/1vuRqoEqVuDsoNugQ==";
const BOB: &str = "BeNIjHFEN3CTS9j6iHHO2w==";
const ST1: &str = "/G5t25kw4xCGI7Hy6e2B/Q==";
const ST2: &str = "c8ceuvCB3Ug+HMO99GtCxQ==";
const T0: &str = "2024-03-11T09:14:02Z";

#[test]
fn complete_document() {
    let r = assert_round_trip(fixture!("complete.xml"));
    assert_eq!(r.data_mode, DataMode::Complete);
    assert_eq!(r.groups.len(), 1);
    assert_eq!(r.groups[0].group_id, "JOV3g4NwQf3fsl23dS0XUg==");
    assert_eq!(r.groups[0].associate_time.as_deref(), Some(T0));

    let s = &r.sessions[0];
    assert_eq!(s.session_id, S);
    assert_eq!(
        s.sip_session_ids,
        ["ab30317f1a784dc48ff824d0d3715d86;remote=47755a9de7794ba387653f2099600ef2"]
    );
    assert_eq!(s.group_ref.as_deref(), Some("JOV3g4NwQf3fsl23dS0XUg=="));
    assert_eq!(s.start_time.as_deref(), Some(T0));
    assert_eq!(s.stop_time, None);
    assert_eq!(s.extensions.len(), 1);
    let queue = &s.extensions[0];
    assert_eq!(
        queue.namespace.as_deref(),
        Some("http://example.com/acme-contact-center")
    );
    assert_eq!(queue.local_name, "queue");
    assert_eq!(queue.text, "billing & claims");
    assert_eq!(
        queue.xml,
        r#"<ac:queue xmlns:ac="http://example.com/acme-contact-center">billing &amp; claims</ac:queue>"#
    );

    assert_eq!(r.participants.len(), 2);
    let a = &r.participants[0];
    assert_eq!(a.participant_id, ALICE);
    assert_eq!(
        a.name_ids,
        [NameId {
            aor: Some("sip:alice@atlanta.example.com".into()),
            names: vec![Name {
                lang: Some("en".into()),
                value: "Alice".into()
            }],
        }]
    );
    assert!(a.send.is_empty() && a.recv.is_empty() && a.extensions.is_empty());

    assert_eq!(r.streams.len(), 2);
    assert_eq!(r.streams[0].stream_id, ST1);
    assert_eq!(r.streams[0].session_id.as_deref(), Some(S));
    assert_eq!(r.streams[0].label.as_deref(), Some("1"));
    assert_eq!(r.streams[1].label.as_deref(), Some("2"));

    assert_eq!(r.session_recording_assocs.len(), 1);
    assert_eq!(r.session_recording_assocs[0].session_id, S);
    assert_eq!(r.participant_session_assocs.len(), 2);
    let psa = &r.participant_session_assocs[1];
    assert_eq!(
        (psa.participant_id.as_str(), psa.session_id.as_str()),
        (BOB, S)
    );
    assert_eq!(
        psa.params,
        [(
            "+sip.instance".to_string(),
            "<urn:uuid:0f2c37ef-b38d-4a68-b8a1-9f4fc491aeb5>".to_string()
        )]
    );
    assert_eq!(r.participant_stream_assocs.len(), 2);
    assert_eq!(r.participant_stream_assocs[0].send, [ST1]);
    assert_eq!(r.participant_stream_assocs[0].recv, [ST2]);
    assert_eq!(
        r.participant_stream_assocs[0].associate_time.as_deref(),
        Some(T0)
    );

    assert_eq!(r.extensions.len(), 1);
    assert_eq!(r.recording_id().as_deref(), Some("rec-20240311-0001"));
    assert_eq!(r.sender_of_stream(ST2), Some(BOB));
    assert_eq!(r.streams_sent_by(ALICE), [ST1]);
}

#[test]
fn partial_documents_round_trip() {
    let t = assert_round_trip(fixture!("partial-transfer.xml"));
    assert_eq!(t.data_mode, DataMode::Partial);
    assert_eq!(t.participants.len(), 1);
    assert_eq!(
        t.participant_session_assocs[0].disassociate_time.as_deref(),
        Some("2024-03-11T09:20:45Z")
    );
    assert_eq!(t.participant_session_assocs[0].associate_time, None);
    let s = assert_round_trip(fixture!("partial-stop.xml"));
    assert_eq!(s.data_mode, DataMode::Partial);
    assert_eq!(s.sessions[0].reasons, ["normal call clearing"]);
    assert_eq!(s.sessions[0].start_time, None);
}

#[test]
fn legacy_namespace_and_legacy_participant_children() {
    let r = assert_round_trip(fixture!("legacy-namespace.xml"));
    let sid = "urn:uuid:60360678-19e4-459f-88ff-fe5e745dfe94";
    let alice = "urn:uuid:0f2c37ef-b38d-4a68-b8a1-9f4fc491aeb5";
    let bob = "urn:uuid:0a85ebb9-5d38-42d0-9ab1-ddcc790700f6";
    let st1 = "urn:uuid:7d4adce2-d955-4c2d-bb9f-2b2defac4e4f";
    let st2 = "dc1212788f874da988cc0335f317cfd9";
    assert_eq!(r.data_mode, DataMode::Complete);
    assert_eq!(r.sessions[0].session_id, sid);
    assert_eq!(
        r.sessions[0].start_time.as_deref(),
        Some("2024-03-11T09:14:02")
    );
    assert_eq!(r.participants[0].participant_id, alice);
    assert_eq!(r.participants[0].send, [st1]);
    // <extensiondata> inside a participant, kept with its prefix declaration and the
    // inherited (legacy) default namespace re-declared.
    let ext = &r.participants[0].extensions[0];
    assert_eq!(ext.local_name, "extensiondata");
    assert_eq!(ext.namespace.as_deref(), Some(NS_LEGACY));
    assert!(ext.xml.starts_with(
            "<extensiondata xmlns=\"urn:ietf:params:xml:ns:recording\" xmlns:vnd=\"http://example.com/sbc-vendor/extensiondata\">"
        ));
    assert!(ext.text.contains("00001038741710148243"));
    // <aor>/<name> directly in <participant>.
    assert_eq!(
        r.participant_display(bob),
        (Some("Bob".into()), Some("sip:bob@192.0.2.20".into()))
    );
    assert_eq!(
        r.participant_display(alice),
        (Some("Alice".into()), Some("sip:alice@192.0.2.10".into()))
    );
    assert_eq!(r.participants[1].recv, [st1]);
    // Streams: id= and session= attributes; unknown <mode> kept as an extension.
    assert_eq!(r.streams[0].stream_id, st1);
    assert_eq!(r.streams[0].session_id.as_deref(), Some(sid));
    assert_eq!(r.streams[0].extensions[0].local_name, "mode");
    assert_eq!(r.streams[1].stream_id, st2);
    // No association elements: legacy <send> drives the stream mapping.
    assert!(r.participant_stream_assocs.is_empty());
    assert!(r.participant_session_assocs.is_empty());
    assert_eq!(r.sender_of_stream(st2), Some(bob));
    assert_eq!(r.streams_sent_by(alice), [st1]);
    assert_eq!(
        r.stream_by_label("11").map(|s| s.stream_id.as_str()),
        Some(st2)
    );
}

#[test]
fn siprec_namespace_with_id_attributes() {
    let r = assert_round_trip(fixture!("siprec-namespace.xml"));
    let g = "e237e617-96a9-4adc-a86f-fba6ed0c4c91";
    let s = "7d5280e5-4fb5-40f8-aaa0-3f73f78cb626";
    let p = "3882475c-9dff-4518-a26c-64dc5e960bd5";
    assert_eq!(r.groups[0].group_id, g);
    assert_eq!(r.sessions[0].session_id, s);
    assert_eq!(r.sessions[0].group_ref.as_deref(), Some(g));
    assert_eq!(r.participants[0].participant_id, p);
    assert_eq!(
        r.participant_display(p),
        (None, Some("tel:+15551230001".into()))
    );
    assert_eq!(r.streams[0].session_id.as_deref(), Some(s));
    assert_eq!(r.participant_stream_assocs[0].participant_id, p);
    assert_eq!(r.participant_session_assocs[0].participant_id, p);
    assert_eq!(r.participant_session_assocs[0].session_id, s);
    assert_eq!(r.session_recording_assocs[0].session_id, s);
    assert_eq!(r.sender_of_stream("NYGUtesW6j1w8G9bhF/jaA=="), Some(p));
}

#[test]
fn no_namespace() {
    let r = assert_round_trip(fixture!("no-namespace.xml"));
    assert_eq!(r.data_mode, DataMode::Partial);
    assert_eq!(r.sessions[0].session_id, "iokuZ7hNUgHL88WS5aH0ZA==");
    assert_eq!(r.streams[0].label.as_deref(), Some("1"));
    assert_eq!(r.extensions.len(), 1);
    assert_eq!(r.extensions[0].namespace, None);
    // Printed inside a namespaced root, it must stay in no namespace.
    assert!(r.extensions[0]
        .xml
        .starts_with("<extensiondata xmlns=\"\">"));
    assert_eq!(r.recording_id().as_deref(), Some("no-ns-recording"));
}

#[test]
fn tns_prefix_and_inherited_prefix_redeclared() {
    let r = assert_round_trip(fixture!("prefixed-tns.xml"));
    assert_eq!(r.data_mode, DataMode::Complete);
    // The unprefixed session_id wins over tns:session_id.
    assert_eq!(r.sessions[0].session_id, "iokuZ7hNUgHL88WS5aH0ZA==");
    assert_eq!(
        r.sessions[0].start_time.as_deref(),
        Some("2024-03-11T10:00:00Z")
    );
    assert_eq!(
        r.participant_display("NYGUtesW6j1w8G9bhF/jaA=="),
        (
            Some("Agent 7".into()),
            Some("sip:agent7@acme.example.com".into())
        )
    );
    assert_eq!(r.streams[0].label.as_deref(), Some("1"));
    assert_eq!(
        r.sender_of_stream("ZZGME522aY171TydEiWb0w=="),
        Some("NYGUtesW6j1w8G9bhF/jaA==")
    );
    let ext = &r.extensions[0];
    assert_eq!(ext.namespace.as_deref(), Some("http://example.com/acme"));
    assert_eq!(ext.local_name, "tenant");
    assert_eq!(
        ext.xml,
        r#"<acme:tenant xmlns:acme="http://example.com/acme" acme:tier="gold">blue</acme:tenant>"#
    );
}

#[test]
fn rs_prefix_with_foreign_default_namespace() {
    let r = assert_round_trip(fixture!("prefixed-rs.xml"));
    assert_eq!(r.sessions[0].session_id, "iokuZ7hNUgHL88WS5aH0ZA==");
    assert_eq!(r.streams[0].label.as_deref(), Some("7"));
    let note = &r.extensions[0];
    assert_eq!(note.namespace.as_deref(), Some("http://example.com/notes"));
    assert_eq!(note.text, "customer asked for callback");
    assert_eq!(
        note.xml,
        r#"<note xmlns="http://example.com/notes" lang="en">customer asked for <b>callback</b></note>"#
    );
}

#[test]
fn any_order_case_whitespace_and_unknown_elements() {
    let r = assert_round_trip(fixture!("any-order.xml"));
    let p = "9f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e";
    let st = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
    assert_eq!(r.data_mode, DataMode::Partial);
    assert_eq!(r.participant_stream_assocs[0].participant_id, p);
    assert_eq!(r.participant_stream_assocs[0].send, [st]);
    assert_eq!(r.streams[0].stream_id, st);
    assert_eq!(r.streams[0].session_id.as_deref(), Some("0011223344556677"));
    assert_eq!(r.streams[0].label.as_deref(), Some("1"));
    assert_eq!(r.participants[0].participant_id, p);
    assert_eq!(r.participant_display(p).0.as_deref(), Some("Dave"));
    assert_eq!(r.sessions[0].session_id, "0011223344556677");
    assert_eq!(
        r.sessions[0].sip_session_ids,
        ["ab30317f1a784dc48ff824d0d3715d86"]
    );
    assert_eq!(
        r.sessions[0].start_time.as_deref(),
        Some("2024-03-11 10:00:00.250+01:00")
    );
    assert_eq!(r.extensions.len(), 1);
    assert_eq!(r.extensions[0].local_name, "futureElement");
    assert_eq!(r.extensions[0].namespace.as_deref(), Some(NS));
    assert_eq!(r.extensions[0].text, "kept, not an error");
    let label = r.stream_by_label(" 1 ").map(|s| s.stream_id.as_str());
    assert_eq!(label, Some(st));
    assert_eq!(r.sender_of_stream(st), Some(p));
}

#[test]
fn empty_recording_and_empty_elements() {
    let r = rec(r#"<recording xmlns="urn:ietf:params:xml:ns:recording:1"/>"#);
    assert_eq!(r, Recording::default());
    let r = rec(concat!(
        "<recording><participant participant_id=''><nameID aor=''><name> </name></nameID>",
        "<send/></participant><stream stream_id='s' session_id=''><label></label></stream>",
        "<datamode>sometimes</datamode></recording>"
    ));
    assert_eq!(r.data_mode, DataMode::Complete);
    assert_eq!(r.participants[0].participant_id, "");
    assert_eq!(r.participants[0].name_ids, [NameId::default()]);
    assert!(r.participants[0].send.is_empty());
    assert_eq!(r.streams[0].session_id, None);
    assert_eq!(r.streams[0].label, None);
    assert_round_trip(&r.to_xml());
}

#[test]
fn extensions_inside_associations_are_kept_at_the_root() {
    let r = assert_round_trip(concat!(
        r#"<recording xmlns="urn:ietf:params:xml:ns:recording:1" xmlns:x="urn:x">"#,
        r#"<participantstreamassoc participant_id="p"><send>s</send><x:a>1</x:a></participantstreamassoc>"#,
        r#"<participant participant_id="p"><nameID aor="sip:p@x"><x:b>2</x:b></nameID></participant>"#,
        r#"</recording>"#
    ));
    let names: Vec<_> = r.extensions.iter().map(|e| e.local_name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(r.extensions[0].xml, r#"<x:a xmlns:x="urn:x">1</x:a>"#);
}

#[test]
fn snapshot_request() {
    let d = parse(fixture!("snapshot-request.xml").as_bytes()).unwrap();
    assert_eq!(
        d,
        Document::SnapshotRequest {
            reason: Some("SRS lost its state after a restart".into())
        }
    );
    let d = parse(b"<rs:RequestSnapshot xmlns:rs='urn:ietf:params:xml:ns:recording'/>");
    assert_eq!(d, Ok(Document::SnapshotRequest { reason: None }));
}

#[test]
fn recording_id_variants() {
    let r = rec(fixture!("recordingid-extensiondata.xml"));
    assert_eq!(r.recording_id().as_deref(), Some("vnd-rec-7781"));
    let r = rec(fixture!("recordingid-deep.xml"));
    assert_eq!(r.recording_id().as_deref(), Some("deep-rec-9"));
    let r = rec(fixture!("no-namespace.xml"));
    assert_eq!(r.recording_id().as_deref(), Some("no-ns-recording"));
    // Upper case, no namespace, directly in a participant.
    let r = rec(
        "<recording><participant id='p'><RECORDINGID> P-1 </RECORDINGID></participant></recording>",
    );
    assert_eq!(r.recording_id().as_deref(), Some("P-1"));
    // In a stream, prefixed.
    let r = rec("<recording xmlns:q='urn:q'><stream id='s'><q:RecordingId>S-1</q:RecordingId></stream></recording>");
    assert_eq!(r.recording_id().as_deref(), Some("S-1"));
    // Root extensions come first.
    let r = rec(concat!(
        "<recording><session id='s'><recordingid>from-session</recordingid></session>",
        "<recordingid xmlns='urn:x-siprec-rs:ext'>from-root</recordingid></recording>"
    ));
    assert_eq!(r.recording_id().as_deref(), Some("from-root"));
    // Blank or absent: none (never a placeholder).
    let r = rec("<recording><recordingid>  </recordingid><extensiondata/></recording>");
    assert_eq!(r.recording_id(), None);
    assert_eq!(
        rec(fixture!("complete.xml")).recording_id().as_deref(),
        Some("rec-20240311-0001")
    );
    assert_eq!(rec(fixture!("legacy-namespace.xml")).recording_id(), None);
}

#[test]
fn dtd_is_rejected() {
    for doc in [
        fixture!("doctype-entity.xml"),
        fixture!("billion-laughs.xml"),
        fixture!("external-entity.xml"),
    ] {
        assert_eq!(parse(doc.as_bytes()), Err(Error::DtdNotAllowed));
    }
}

#[test]
fn undefined_entities_are_rejected() {
    assert_eq!(
        parse(fixture!("undefined-entity.xml").as_bytes()),
        Err(Error::UndefinedEntity("who".into()))
    );
    assert_eq!(
        parse(b"<recording><stream id='&who;'/></recording>"),
        Err(Error::UndefinedEntity("who".into()))
    );
    // The five predefined entities and character references are fine.
    let r = rec("<recording><stream id='&lt;&#65;&amp;&#x42;&gt;'><label>&apos;&quot;</label></stream></recording>");
    assert_eq!(r.streams[0].stream_id, "<A&B>");
    assert_eq!(r.streams[0].label.as_deref(), Some("'\""));
}

#[test]
fn encodings() {
    assert_eq!(
        parse(fixture!("latin1-declared.xml").as_bytes()),
        Err(Error::UnsupportedEncoding("ISO-8859-1".into()))
    );
    let latin1 = b"<?xml version='1.0' encoding='ISO-8859-1'?><recording><participant id='p'><nameID><name>Zo\xeb</name></nameID></participant></recording>";
    assert_eq!(parse(latin1), Err(Error::NotUtf8));
    let utf16 = b"\xff\xfe<\0r\0/\0>\0";
    assert_eq!(parse(utf16), Err(Error::NotUtf8));
    // UTF-8 with a BOM and non-ASCII text.
    let r = rec("\u{feff}<?xml version='1.0' encoding='utf-8'?><recording><participant id='p'><nameID><name>Zoë 张</name></nameID></participant></recording>");
    assert_eq!(r.participant_display("p").0.as_deref(), Some("Zoë 张"));
    assert!(parse(b"<?xml version='1.0' encoding='US-ASCII'?><recording/>").is_ok());
}

#[test]
fn size_limit() {
    let mut big = String::from("<recording>");
    while big.len() <= MAX_DOCUMENT_SIZE {
        big.push_str("<!-- padding padding padding padding padding padding -->");
    }
    big.push_str("</recording>");
    assert_eq!(
        parse(big.as_bytes()),
        Err(Error::TooLarge { size: big.len() })
    );
    let exact = format!(
        "<recording>{}</recording>",
        " ".repeat(MAX_DOCUMENT_SIZE - 23)
    );
    assert_eq!(exact.len(), MAX_DOCUMENT_SIZE);
    assert!(parse(exact.as_bytes()).is_ok());
}

fn nested(depth: usize) -> String {
    let mut s = String::from("<recording>");
    for _ in 1..depth {
        s.push_str("<x:e xmlns:x='urn:x'>");
    }
    for _ in 1..depth {
        s.push_str("</x:e>");
    }
    s.push_str("</recording>");
    s
}

#[test]
fn depth_limit() {
    assert!(parse(nested(MAX_DEPTH).as_bytes()).is_ok());
    assert_eq!(parse(nested(MAX_DEPTH + 1).as_bytes()), Err(Error::TooDeep));
    // A deep but unclosed document is still reported as too deep, not read further.
    let open_only = "<a>".repeat(MAX_DEPTH * 100);
    assert_eq!(parse(open_only.as_bytes()), Err(Error::TooDeep));
}

#[test]
fn element_count_limit() {
    let doc = |n: usize| format!("<recording>{}</recording>", "<e/>".repeat(n - 1));
    let r = rec(&doc(MAX_ELEMENTS));
    assert_eq!(r.extensions.len(), MAX_ELEMENTS - 1);
    assert_eq!(
        parse(doc(MAX_ELEMENTS + 1).as_bytes()),
        Err(Error::TooManyElements)
    );
}

#[test]
fn unexpected_root() {
    assert_eq!(
        parse(fixture!("unexpected-root.xml").as_bytes()),
        Err(Error::UnexpectedRoot("conference-info".into()))
    );
    // The right name in a foreign namespace is not a recording.
    assert_eq!(
        parse(b"<recording xmlns='urn:example:other'/>"),
        Err(Error::UnexpectedRoot("recording".into()))
    );
}

#[test]
fn malformed_documents() {
    for doc in [
        "",
        "   ",
        "<!-- only a comment -->",
        "<recording>",
        "<recording></session>",
        "<recording/><recording/>",
        "<recording/>trailing text",
        "text<recording/>",
        "<recording a='1' a='2'/>",
        "<recording><stream id='1></recording>",
        "<recording>&#1;</recording>",
        "<recording>&#xFFFF;</recording>",
        "<recording>\u{1}</recording>",
        "<recording><label>&#xZZ;</label></recording>",
        "<recording>&amp</recording>",
        "</recording>",
    ] {
        match parse(doc.as_bytes()) {
            Err(Error::Malformed(_)) => {}
            other => panic!("{doc:?}: expected Malformed, got {other:?}"),
        }
    }
}

#[test]
fn namespace_redeclaration_is_bounded() {
    // Ten extensions each relying on a 100 KB namespace URI declared on the root.
    let uri = format!("urn:{}", "x".repeat(100_000));
    let doc = format!(
        "<recording xmlns:p='{uri}'>{}</recording>",
        "<p:a/>".repeat(10)
    );
    assert!(doc.len() < MAX_DOCUMENT_SIZE);
    assert_eq!(parse(doc.as_bytes()), Err(Error::ExtensionsTooLarge));
    // Two of them fit.
    let doc = format!("<recording xmlns:p='{uri}'><p:a/><p:a/></recording>");
    let r = rec(&doc);
    assert_eq!(r.extensions.len(), 2);
    assert!(r.extensions[1].xml.starts_with("<p:a xmlns:p=\"urn:xxx"));
}

#[test]
fn many_prefixes_in_deep_extensions() {
    // Thousands of prefixes declared on the root, used 30 levels down.
    let n = 4000;
    let mut doc = String::from("<recording");
    for i in 0..n {
        doc.push_str(&format!(" xmlns:p{i}='u'"));
    }
    doc.push('>');
    doc.push_str(&"<w:x xmlns:w='w'>".repeat(30));
    for i in 0..n {
        doc.push_str(&format!("<p{i}:a/>"));
    }
    doc.push_str(&"</w:x>".repeat(30));
    doc.push_str("</recording>");
    let r = rec(&doc);
    assert_eq!(r.extensions.len(), 1);
    assert!(r.extensions[0].xml.contains(" xmlns:p3999=\"u\""));
    assert_eq!(rec(&r.to_xml()), r);
}

/// Every prefix of a valid document parses to Ok or Err, never panics.
#[test]
fn truncated_prefixes_never_panic() {
    let docs = [
            fixture!("complete.xml"),
            fixture!("legacy-namespace.xml"),
            fixture!("prefixed-rs.xml"),
            "<recording><participant id='p'><nameID aor='sip:zoë@x'><name>Zoë 张 &amp; co</name></nameID></participant></recording>",
        ];
    for doc in docs {
        let bytes = doc.as_bytes();
        for n in 0..=bytes.len() {
            let _ = parse(&bytes[..n]);
        }
        assert!(parse(bytes).is_ok());
    }
}

/// Deterministic byte mutations of a valid document: Ok or Err, never a panic.
#[test]
fn mutated_documents_never_panic() {
    let base = fixture!("complete.xml").as_bytes();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet = b"<>/=&;'\"!?[]-: xa#\x00\xff\xc3";
    for _ in 0..2000 {
        let mut doc = base.to_vec();
        for _ in 0..(next() % 4 + 1) {
            let i = (next() as usize) % doc.len();
            match next() % 3 {
                0 => doc[i] = alphabet[(next() as usize) % alphabet.len()],
                1 => {
                    doc.remove(i);
                }
                _ => doc.insert(i, alphabet[(next() as usize) % alphabet.len()]),
            }
        }
        if let Ok(Document::Recording(r)) = parse(&doc) {
            // Whatever was accepted prints to something that parses again.
            assert!(parse(r.to_xml().as_bytes()).is_ok());
        }
    }
}
