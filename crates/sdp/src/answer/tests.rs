use super::*;
use crate::fixtures;
use crate::parse::parse;
use crate::types::negotiated_format;

fn config() -> AnswerConfig {
    AnswerConfig::new("192.0.2.10".parse().unwrap(), 1000, 1)
}

/// Answers `offer` with ports 20000, 20002, … for the recordable m-lines.
fn answer_fixture(offer: &[u8]) -> Result<(SessionDescription, String, Vec<AnsweredMedia>), Error> {
    let offer = parse(offer).unwrap();
    let cfg = config();
    let ports: Vec<Option<u16>> = recordable(&offer, &cfg)
        .iter()
        .enumerate()
        .map(|(i, r)| r.then_some(20000 + 2 * i as u16))
        .collect();
    let (text, media) = answer(&offer, &ports, &cfg)?;
    Ok((offer, text, media))
}

#[test]
fn two_sendonly_streams_exact_text() {
    let (_, text, media) = answer_fixture(fixtures::TWO_STREAMS).unwrap();
    let expected = "v=0\r\n\
o=srs 1000 1 IN IP4 192.0.2.10\r\n\
s=-\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 20000 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=label:1\r\n\
a=ptime:20\r\n\
a=recvonly\r\n\
m=audio 20002 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=label:2\r\n\
a=ptime:20\r\n\
a=recvonly\r\n";
    assert_eq!(text, expected);
    assert_eq!(media.len(), 2);
    // PCMA is answered too: the sender may switch to it by payload type.
    assert!(media
        .iter()
        .all(|m| m.formats == [Format::pcmu(), Format::pcma()]));
    for (i, m) in media.iter().enumerate() {
        assert_eq!(m.index, i);
        assert!(m.accepted && m.reason.is_none() && !m.srtp);
        assert_eq!(m.direction, Direction::RecvOnly);
        assert_eq!(m.format, Some(Format::pcmu()));
        assert_eq!(m.telephone_event_pt, Some(101));
        assert_eq!(m.comfort_noise_pt, None);
    }
    assert_eq!(media[0].label.as_deref(), Some("1"));
    assert_eq!(media[0].remote, Some("198.51.100.1:49170".parse().unwrap()));
    assert_eq!(media[1].remote, Some("198.51.100.1:49172".parse().unwrap()));
}

#[test]
fn answer_parses_back() {
    // Print/parse pair: the answer text read back with our own parser.
    for (name, body) in fixtures::ALL {
        let Ok((offer, text, media)) = answer_fixture(body) else {
            continue;
        };
        let back = parse(text.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(back.media.len(), offer.media.len(), "{name}");
        assert_eq!(back.origin_session_id, 1000);
        assert_eq!(back.origin_version, 1);
        assert_eq!(back.origin_address, "192.0.2.10");
        for ((a, o), am) in back.media.iter().zip(&offer.media).zip(&media) {
            assert_eq!(a.media, o.media, "{name}");
            assert_eq!(a.proto, o.proto, "{name}");
            assert_eq!(a.port == 0, !am.accepted, "{name}");
            if am.accepted {
                assert_eq!(a.direction, am.direction, "{name}");
                assert_eq!(a.label, o.label, "{name}");
                assert_eq!(negotiated_format(a), am.format.as_ref(), "{name}");
                assert_eq!(a.rtcp_mux, o.rtcp_mux, "{name}");
                assert_eq!(a.connection, Some("192.0.2.10".parse().unwrap()));
            }
        }
    }
}

#[test]
fn three_streams_offerer_preference_and_static_types() {
    let (_, text, media) = answer_fixture(fixtures::THREE_STREAMS).unwrap();
    // Offerer listed PCMA first.
    assert_eq!(media[0].format, Some(Format::pcma()));
    assert_eq!(media[0].telephone_event_pt, Some(101));
    assert_eq!(media[1].format, Some(Format::pcmu()));
    assert_eq!(media[1].telephone_event_pt, None);
    // G722 is not in our list: PCMU, plus CN (static 13) alongside.
    assert_eq!(media[2].format, Some(Format::pcmu()));
    assert_eq!(media[2].comfort_noise_pt, Some(13));
    assert!(text.contains("m=audio 20004 RTP/AVP 0 13\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:13 CN/8000\r\na=label:conference\r\na=recvonly\r\n"));
    assert!(media.iter().all(|m| m.direction == Direction::RecvOnly));
}

#[test]
fn codec_preference_list_is_configurable() {
    let offer = parse(fixtures::THREE_STREAMS).unwrap();
    let mut cfg = config();
    cfg.codecs = vec!["g722/8000".into()];
    assert_eq!(recordable(&offer, &cfg), [false, false, true]);
    let (_, media) = answer(&offer, &[None, None, Some(4000)], &cfg).unwrap();
    assert_eq!(
        media[2].format.as_ref().map(|f| f.encoding.as_str()),
        Some("G722")
    );
    cfg.codecs = vec!["G722/16000".into()];
    assert_eq!(recordable(&offer, &cfg), [false, false, false]);
}

#[test]
fn mixed_single_stream() {
    let (_, text, media) = answer_fixture(fixtures::MIXED_SINGLE).unwrap();
    assert_eq!(media.len(), 1);
    assert!(media[0].accepted);
    assert!(text.contains("a=label:mixed\r\na=rtcp-mux\r\na=recvonly\r\n"));
}

#[test]
fn video_declined_with_port_zero() {
    let (_, text, media) = answer_fixture(fixtures::VIDEO_DECLINED).unwrap();
    assert!(media[0].accepted);
    assert_eq!(media[0].format, Some(Format::pcma()));
    assert!(!media[1].accepted);
    assert_eq!(media[1].reason, Some(decline::NOT_AUDIO));
    assert_eq!(media[1].label.as_deref(), Some("2"));
    assert!(text.ends_with("a=recvonly\r\nm=video 0 RTP/AVP 96\r\n"));
}

#[test]
fn no_common_codec_declines_that_m_line() {
    let (_, text, media) = answer_fixture(fixtures::NO_COMMON_CODEC).unwrap();
    assert!(!media[0].accepted);
    assert_eq!(media[0].reason, Some(decline::NO_CODEC));
    assert!(text.contains("m=audio 0 RTP/AVP 18\r\n"));
    assert!(media[1].accepted);
    assert_eq!(media[1].format, Some(Format::pcma()));
}

#[test]
fn nothing_usable_is_an_error() {
    assert_eq!(
        answer_fixture(fixtures::ALL_UNSUPPORTED).unwrap_err(),
        Error::NoUsableStream
    );
    // Recordable m-lines, but the caller allocated no port: declined, so an error too.
    let offer = parse(fixtures::TWO_STREAMS).unwrap();
    assert_eq!(
        answer(&offer, &[None, None], &config()).unwrap_err(),
        Error::NoUsableStream
    );
}

#[test]
fn inactive_offer_gets_inactive_answer_with_ports() {
    let (_, text, media) = answer_fixture(fixtures::PAUSE_INACTIVE).unwrap();
    assert!(media
        .iter()
        .all(|m| m.accepted && m.direction == Direction::Inactive));
    assert!(text.contains("m=audio 20000 RTP/AVP 0 8 101\r\n"));
    assert!(text.contains("m=audio 20002 RTP/AVP 0 8 101\r\n"));
    assert_eq!(text.matches("a=inactive\r\n").count(), 2);
    assert!(!text.contains("recvonly"));
}

#[test]
fn recvonly_offer_gets_inactive_answer() {
    let text = std::str::from_utf8(fixtures::TWO_STREAMS)
        .unwrap()
        .replace("a=sendonly", "a=recvonly");
    let offer = parse(text.as_bytes()).unwrap();
    let (_, media) = answer(&offer, &[Some(4000), Some(4002)], &config()).unwrap();
    assert!(media.iter().all(|m| m.direction == Direction::Inactive));
}

#[test]
fn hold_by_zero_address_keeps_recording_direction() {
    // RFC 3264 §8.4: the answerer does not put the stream on hold in turn.
    let (offer, text, media) = answer_fixture(fixtures::HOLD_ZERO_ADDR).unwrap();
    assert!(offer.media.iter().all(MediaDescription::is_on_hold));
    assert!(media
        .iter()
        .all(|m| m.accepted && m.direction == Direction::RecvOnly && m.remote.is_none()));
    assert_eq!(text.matches("a=recvonly").count(), 2);
}

#[test]
fn hold_by_port_zero() {
    let (_, text, media) = answer_fixture(fixtures::HOLD_PORT_ZERO).unwrap();
    assert!(!media[0].accepted);
    assert_eq!(media[0].reason, Some(decline::DISABLED));
    assert!(text.contains("m=audio 0 RTP/AVP 0\r\n"));
    assert!(media[1].accepted);
    // Every m-line at port 0 (some SRCs pause like this): an all-declined answer, not 488.
    let all_zero = std::str::from_utf8(fixtures::HOLD_PORT_ZERO)
        .unwrap()
        .replace("m=audio 49172", "m=audio 0");
    let offer = parse(all_zero.as_bytes()).unwrap();
    assert_eq!(recordable(&offer, &config()), [false, false]);
    let (text, media) = answer(&offer, &[None, None], &config()).unwrap();
    assert!(media.iter().all(|m| !m.accepted));
    assert_eq!(text.matches(" 0 RTP/AVP 0\r\n").count(), 2);
}

#[test]
fn labels_missing() {
    let (_, text, media) = answer_fixture(fixtures::NO_LABELS).unwrap();
    assert!(media.iter().all(|m| m.accepted && m.label.is_none()));
    assert!(!text.contains("a=label"));
    // Session-level a=sendonly applies to both m-lines.
    assert_eq!(text.matches("a=recvonly").count(), 2);
    assert!(media.iter().all(|m| m.format == Some(Format::pcma())));
}

#[test]
fn srtp_declined_unless_enabled() {
    let offer = parse(fixtures::SRTP_SDES).unwrap();
    assert_eq!(recordable(&offer, &config()), [false, false]);
    let err = answer(&offer, &[None, None], &config()).unwrap_err();
    assert_eq!(err, Error::NoUsableStream);
}

#[test]
fn srtp_echoed_and_flagged() {
    let offer = parse(fixtures::SRTP_SDES).unwrap();
    let ours = "1 AES_CM_128_HMAC_SHA1_80 inline:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNk";
    let cfg = AnswerConfig {
        srtp: true,
        local_crypto: vec![Some(ours.into()), Some(ours.into())],
        ..config()
    };
    let (text, media) = answer(&offer, &[Some(20000), Some(20002)], &cfg).unwrap();
    assert!(media.iter().all(|m| m.accepted && m.srtp));
    assert_eq!(text.matches("RTP/SAVP").count(), 2);
    assert_eq!(text.matches(&format!("a=crypto:{ours}\r\n")).count(), 2);
    // No usable key for the second stream: it is declined.
    let one = AnswerConfig {
        local_crypto: vec![Some(ours.into()), None],
        ..cfg.clone()
    };
    let (_, media) = answer(&offer, &[Some(20000), Some(20002)], &one).unwrap();
    assert_eq!(media[1].reason, Some(decline::SRTP_NO_USABLE_KEY));
    // require_srtp declines plain RTP.
    let plain = parse(fixtures::TWO_STREAMS).unwrap();
    let req = AnswerConfig {
        require_srtp: true,
        ..cfg.clone()
    };
    assert_eq!(
        answer(&plain, &[Some(20000), Some(20002)], &req).unwrap_err(),
        Error::NoUsableStream
    );
    // SAVP without keys is declined.
    let no_keys: String = std::str::from_utf8(fixtures::SRTP_SDES)
        .unwrap()
        .split("\r\n")
        .filter(|l| !l.starts_with("a=crypto"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    let offer = parse(no_keys.as_bytes()).unwrap();
    assert_eq!(recordable(&offer, &cfg), [false, false]);
    let err = answer(&offer, &[None, None], &cfg).unwrap_err();
    assert_eq!(err, Error::NoUsableStream);
}

#[test]
fn ipv6_answer() {
    let offer = parse(fixtures::IPV6).unwrap();
    let cfg = AnswerConfig::new("2001:db8::10".parse().unwrap(), 7, 8);
    let (text, media) = answer(&offer, &[Some(5000), Some(5002)], &cfg).unwrap();
    assert!(text.contains("o=srs 7 8 IN IP6 2001:db8::10\r\n"));
    assert!(text.contains("c=IN IP6 2001:db8::10\r\n"));
    assert_eq!(
        media[1].remote,
        Some("[2001:db8::2]:49172".parse().unwrap())
    );
    let back = parse(text.as_bytes()).unwrap();
    assert_eq!(
        back.media[0].connection,
        Some("2001:db8::10".parse().unwrap())
    );
}

#[test]
fn m_line_order_preserved_with_unknown_transport() {
    let (_, text, media) = answer_fixture(fixtures::UNKNOWN_PROTO).unwrap();
    let m_lines: Vec<&str> = text.lines().filter(|l| l.starts_with("m=")).collect();
    assert_eq!(
        m_lines,
        [
            "m=audio 20000 RTP/AVP 0",
            "m=image 0 udptl t38",
            "m=audio 20004 RTP/AVP 0"
        ]
    );
    assert_eq!(media[1].reason, Some(decline::NOT_AUDIO));
    assert_eq!(media.iter().map(|m| m.index).collect::<Vec<_>>(), [0, 1, 2]);
}

#[test]
fn same_label_twice_is_echoed_twice() {
    let (_, text, _) = answer_fixture(fixtures::SAME_LABEL).unwrap();
    assert_eq!(text.matches("a=label:1\r\n").count(), 2);
}

#[test]
fn telephone_event_kept_only_at_the_codec_clock_rate() {
    let (_, text, media) = answer_fixture(fixtures::NO_TIMING).unwrap();
    assert_eq!(media[0].format, Some(Format::new(96, "PCMU", 8000)));
    assert_eq!(media[0].telephone_event_pt, Some(101));
    assert!(text.contains(
        "a=rtpmap:96 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
    ));
    // Opus at 48 kHz with telephone-event/48000 when opus is acceptable.
    let offer = parse(fixtures::ALL_UNSUPPORTED).unwrap();
    let mut cfg = config();
    cfg.codecs = vec!["opus".into()];
    let (text, media) = answer(&offer, &[None, Some(6000), None], &cfg).unwrap();
    assert_eq!(media[1].telephone_event_pt, Some(101));
    assert!(text.contains("a=rtpmap:111 opus/48000/2\r\na=rtpmap:101 telephone-event/48000\r\n"));
}

#[test]
fn wrong_calls_are_config_errors() {
    let offer = parse(fixtures::TWO_STREAMS).unwrap();
    let cfg = config();
    assert_eq!(
        answer(&offer, &[Some(4000)], &cfg).unwrap_err(),
        Error::PortCountMismatch {
            expected: 2,
            got: 1
        }
    );
    assert!(matches!(
        answer(&offer, &[Some(0), Some(4000)], &cfg),
        Err(Error::InvalidConfig(_))
    ));
    let mut bad = cfg.clone();
    bad.codecs.clear();
    assert!(matches!(
        answer(&offer, &[Some(4000), Some(4002)], &bad),
        Err(Error::InvalidConfig(_))
    ));
    let mut bad = cfg;
    bad.username = "a b".into();
    assert!(matches!(
        answer(&offer, &[Some(4000), Some(4002)], &bad),
        Err(Error::InvalidConfig(_))
    ));
}

#[test]
fn port_given_for_a_declined_m_line_is_ignored() {
    let offer = parse(fixtures::VIDEO_DECLINED).unwrap();
    let (text, media) = answer(&offer, &[Some(4000), Some(4002)], &config()).unwrap();
    assert!(!media[1].accepted);
    assert!(text.contains("m=video 0 RTP/AVP 96\r\n"));
    assert!(!text.contains("4002"));
}
