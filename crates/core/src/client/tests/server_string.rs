//! The Call Recording Server value: every form the node page accepts or rejects.

use super::*;

#[test]
fn server_string_accepts_every_format_of_the_node_page() {
    let ok = [
        (
            "sip:siprec.example.com",
            "sip:siprec.example.com",
            None,
            None,
        ),
        (
            "sip:siprec.example.com:5060",
            "sip:siprec.example.com:5060",
            Some(5060),
            None,
        ),
        ("sip:3.208.57.175", "sip:3.208.57.175", None, None),
        (
            "sips:siprec.example.com",
            "sips:siprec.example.com",
            None,
            Some(Transport::Tls),
        ),
        (
            "SIP:SipRec.Example.COM",
            "sip:siprec.example.com",
            None,
            None,
        ),
        (
            "sip:srs@10.0.0.5:5080;transport=TCP",
            "sip:srs@10.0.0.5:5080;transport=tcp",
            Some(5080),
            Some(Transport::Tcp),
        ),
        ("sip:[2001:db8::1]", "sip:[2001:db8::1]", None, None),
        (
            "sip:[::1]:5062;transport=udp",
            "sip:[::1]:5062;transport=udp",
            Some(5062),
            Some(Transport::Udp),
        ),
        (
            "sips:[2001:db8::7]:5061",
            "sips:[2001:db8::7]:5061",
            Some(5061),
            Some(Transport::Tls),
        ),
        (
            "sip:srs.example.com;transport=tls;lr",
            "sip:srs.example.com;transport=tls;lr",
            None,
            Some(Transport::Tls),
        ),
        (
            "sips:srs.example.com;transport=tcp",
            "sips:srs.example.com;transport=tcp",
            None,
            Some(Transport::Tls),
        ),
        ("sip:srs.example.com.", "sip:srs.example.com", None, None),
    ];
    for (input, printed, port, transport) in ok {
        let v = parse_server_list(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(v.len(), 1, "{input}");
        assert_eq!(v[0].to_string(), printed, "{input}");
        assert_eq!(v[0].port, port, "{input}");
        assert_eq!(v[0].required_transport(), transport, "{input}");
        // The Request-URI prints the same text (IPv6 included).
        assert_eq!(v[0].to_rsip().to_string(), printed, "{input}");
    }
    let v = parse_server_list("sip:[2001:db8::1]:5070").unwrap();
    assert_eq!(v[0].host, Host::Ip("2001:db8::1".parse().unwrap()));
    assert_eq!(v[0].default_port(), 5060);
    assert_eq!(
        parse_server_list("sips:h.example").unwrap()[0].default_port(),
        5061
    );
    // Multiple parallel recorders, with any white space around the commas.
    let v = parse_server_list(" sip:srs1.example.com ,\tsip:srs2.example.com:5070 , sips:[::1] ")
        .unwrap();
    let printed: Vec<String> = v.iter().map(ToString::to_string).collect();
    assert_eq!(
        printed,
        [
            "sip:srs1.example.com",
            "sip:srs2.example.com:5070",
            "sips:[::1]"
        ]
    );
    let v = parse_server_list("sip:srs1.example.com,sip:srs2.example.com").unwrap();
    assert_eq!(v.len(), 2);
}

#[test]
fn server_string_rejects_what_the_node_page_rejects() {
    let bad = [
        ("wss://siprec.example.com", "WebSocket"),
        ("ws://siprec.example.com:8080/x", "WebSocket"),
        ("https://siprec.example.com", "HTTP"),
        ("http://siprec.example.com", "HTTP"),
        ("siprec.example.com", "without the sip: or sips: scheme"),
        ("10.0.0.5", "without the sip: or sips: scheme"),
        ("10.0.0.5:5060", "without the sip: or sips: scheme"),
        (
            "siprec.example.com:5060",
            "without the sip: or sips: scheme",
        ),
        ("tel:+15551234567", "unsupported URI scheme \"tel\""),
        ("ftp://x.example", "unsupported URL scheme \"ftp\""),
        ("sip:", "no host"),
        ("sip://srs.example.com", "no \"//\""),
        ("sip:srs.example.com:0", "invalid port"),
        ("sip:srs.example.com:70000", "invalid port"),
        ("sip:srs.example.com:50a", "invalid port"),
        (
            "sip:srs.example.com;transport=sctp",
            "unsupported transport",
        ),
        ("sip:srs.example.com;transport=ws", "unsupported transport"),
        ("sips:srs.example.com;transport=udp", "sips: needs TLS"),
        ("sip:2001:db8::1", "brackets"),
        ("sip:[2001:db8::1", "closing"),
        ("sip:[not-v6]:5060", "not an IPv6"),
        ("sip:300.1.1.1", "not an IPv4"),
        ("sip:-bad-.example.com", "not a valid host name"),
        ("sip:srs.example.com?Subject=x", "URI headers"),
        ("sip:user:pw@srs.example.com", "passwords"),
        ("sip:srs example.com", "white space"),
        ("sip:srs.example.com;", "empty URI parameter"),
    ];
    for (input, why) in bad {
        match parse_server_list(input) {
            Err(Error::InvalidServer { entry, reason }) => {
                assert_eq!(entry, input.trim(), "{input}");
                assert!(reason.to_string().contains(why), "{input}: {reason}");
                let msg = Error::InvalidServer { entry, reason }.to_string();
                assert!(msg.contains(input.trim()), "{msg}");
                assert!(
                    msg.contains("sip:siprec.example.com:5060"),
                    "says what is accepted: {msg}"
                );
            }
            other => panic!("{input}: {other:?}"),
        }
    }
    // Empty entries.
    for input in [
        "sip:a.example,,sip:b.example",
        "sip:a.example,",
        ",sip:a.example",
    ] {
        let e = parse_server_list(input).unwrap_err();
        assert!(e.to_string().contains("empty entry"), "{input}: {e}");
    }
    // One bad entry in a list names that entry.
    let e = parse_server_list("sip:ok.example.com, wss://bad.example.com").unwrap_err();
    assert!(
        matches!(&e, Error::InvalidServer { entry, .. } if entry == "wss://bad.example.com"),
        "{e}"
    );
    // Empty or blank: the "missing X-Srs-Url" case.
    for input in ["", "   ", "\t"] {
        assert_eq!(parse_server_list(input), Err(Error::MissingServer));
    }
    let long = format!("sip:{}", "a".repeat(MAX_SERVER_VALUE));
    assert!(parse_server_list(&long).is_err());
    let many = vec!["sip:a.example"; MAX_SERVERS + 1].join(",");
    assert!(parse_server_list(&many).is_err());
}

#[test]
fn target_text_and_datetime() {
    let t: Target = "tcp:[::1]:5070".parse().unwrap();
    assert_eq!(t.to_string(), "tcp:[::1]:5070");
    assert!("sctp:1.2.3.4:5".parse::<Target>().is_err());
    assert_eq!(
        xs_datetime(UNIX_EPOCH + Duration::from_millis(1_714_557_600_250)),
        "2024-05-01T10:00:00.250Z"
    );
    assert_eq!(xs_datetime(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    assert_eq!(
        xs_datetime(UNIX_EPOCH + Duration::from_secs(951_782_400)),
        "2000-02-29T00:00:00.000Z"
    );
    // Ids are standard base64 (with padding) of 16 bytes.
    let id = new_md_id();
    assert_eq!(id.len(), 24);
    assert_eq!(STANDARD.decode(&id).unwrap().len(), 16);
}

/// `xs:dateTime` in UTC, always three fractional digits (truncated, never rounded), `Z`; a time
/// before the epoch is the epoch.
#[test]
fn xs_datetime_of_fixed_times() {
    let at = |secs: u64, nanos: u32| UNIX_EPOCH + Duration::new(secs, nanos);
    for (t, want) in [
        (at(0, 0), "1970-01-01T00:00:00.000Z"),
        (at(0, 999_999), "1970-01-01T00:00:00.000Z"),
        (at(0, 1_000_000), "1970-01-01T00:00:00.001Z"),
        (at(59, 999_999_999), "1970-01-01T00:00:59.999Z"),
        (at(951_782_399, 500_000_000), "2000-02-28T23:59:59.500Z"),
        (at(1_709_251_199, 0), "2024-02-29T23:59:59.000Z"),
        (at(1_714_557_600, 250_000_000), "2024-05-01T10:00:00.250Z"),
        (at(1_735_689_599, 123_456_789), "2024-12-31T23:59:59.123Z"),
        (at(4_102_444_800, 0), "2100-01-01T00:00:00.000Z"),
        (at(253_402_300_799, 999_999_999), "9999-12-31T23:59:59.999Z"),
        (
            UNIX_EPOCH - Duration::from_secs(1),
            "1970-01-01T00:00:00.000Z",
        ),
    ] {
        assert_eq!(xs_datetime(t), want);
    }
}
