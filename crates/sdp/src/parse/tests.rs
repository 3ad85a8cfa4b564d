use super::*;
use crate::fixtures;

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

#[test]
fn two_sendonly_streams() {
    let sdp = parse(fixtures::TWO_STREAMS).unwrap();
    assert_eq!(sdp.origin_username, "SRC");
    assert_eq!(sdp.origin_session_id, 2890844526);
    assert_eq!(sdp.origin_version, 2890844526);
    assert_eq!(sdp.origin_address, "198.51.100.1");
    assert_eq!(sdp.media.len(), 2);
    for (i, m) in sdp.media.iter().enumerate() {
        assert_eq!(m.index, i);
        assert_eq!(m.media, "audio");
        assert_eq!(m.proto, "RTP/AVP");
        assert_eq!(m.direction, Direction::SendOnly);
        assert_eq!(m.connection, ip("198.51.100.1"));
        assert_eq!(m.ptime, Some(20));
        assert!(!m.rtcp_mux && m.crypto.is_empty() && !m.is_on_hold());
        assert_eq!(m.format_tokens, ["0", "8", "101"]);
        assert_eq!(
            m.formats,
            vec![Format::pcmu(), Format::pcma(), Format::telephone_event(101)]
        );
    }
    assert_eq!(sdp.media[0].port, 49170);
    assert_eq!(sdp.media[1].port, 49172);
    assert_eq!(sdp.media[0].label.as_deref(), Some("1"));
    assert_eq!(sdp.media[1].label.as_deref(), Some("2"));
    assert_eq!(
        sdp.media[1].remote_rtp_addr(),
        Some("198.51.100.1:49172".parse().unwrap())
    );
}

#[test]
fn lf_only_line_ends_parse_the_same() {
    let crlf = parse(fixtures::TWO_STREAMS).unwrap();
    let text = std::str::from_utf8(fixtures::TWO_STREAMS).unwrap();
    let lf = parse(text.replace("\r\n", "\n").as_bytes()).unwrap();
    assert_eq!(crlf, lf);
}

#[test]
fn static_payload_types_without_rtpmap() {
    let sdp = parse(fixtures::THREE_STREAMS).unwrap();
    assert_eq!(sdp.media.len(), 3);
    // Third m-line lists 9 and 13 with no rtpmap lines.
    let m = &sdp.media[2];
    assert_eq!(m.format_tokens, ["9", "0", "13"]);
    let names: Vec<&str> = m.formats.iter().map(|f| f.encoding.as_str()).collect();
    assert_eq!(names, ["G722", "PCMU", "CN"]);
    assert!(m.formats.iter().all(|f| f.clock_rate == 8000));
}

#[test]
fn hold_by_zero_address_and_by_port_zero() {
    let sdp = parse(fixtures::HOLD_ZERO_ADDR).unwrap();
    assert!(sdp.media.iter().all(|m| m.is_on_hold()));
    assert!(sdp.media.iter().all(|m| m.remote_rtp_addr().is_none()));
    assert_eq!(sdp.media[0].connection, ip("0.0.0.0"));
    assert_eq!(sdp.media[0].direction, Direction::SendOnly);

    let sdp = parse(fixtures::HOLD_PORT_ZERO).unwrap();
    assert_eq!(sdp.media[0].port, 0);
    assert!(sdp.media[0].is_on_hold());
    assert!(!sdp.media[1].is_on_hold());
}

#[test]
fn inactive_pause() {
    let sdp = parse(fixtures::PAUSE_INACTIVE).unwrap();
    assert_eq!(sdp.origin_version, 2890844527);
    assert!(sdp
        .media
        .iter()
        .all(|m| m.direction == Direction::Inactive && m.is_on_hold()));
}

#[test]
fn missing_labels_and_session_level_direction() {
    let sdp = parse(fixtures::NO_LABELS).unwrap();
    assert_eq!(sdp.media.len(), 2);
    assert!(sdp.media.iter().all(|m| m.label.is_none()));
    assert!(sdp.media.iter().all(|m| m.direction == Direction::SendOnly));
}

#[test]
fn crypto_lines_are_kept_raw() {
    let sdp = parse(fixtures::SRTP_SDES).unwrap();
    let m = &sdp.media[0];
    assert_eq!(m.proto, "RTP/SAVP");
    assert!(m.is_srtp());
    assert_eq!(
        m.crypto,
        [
            "1 AES_CM_128_HMAC_SHA1_80 inline:r3RV78ZUL1qoKU6WTgNvGIQV3VMklbTU25c/sHv3|2^20|1:32",
            "2 AES_CM_128_HMAC_SHA1_32 inline:JDdSOSHzVmJxIgNq8IkvpEQXN7cuKIxaEl6RwuqX|2^20|1:32",
        ]
    );
    assert_eq!(sdp.media[1].crypto.len(), 1);
}

#[test]
fn ipv6_addresses() {
    let sdp = parse(fixtures::IPV6).unwrap();
    assert_eq!(sdp.origin_address, "2001:db8::1");
    assert_eq!(sdp.media[0].connection, ip("2001:db8::1"));
    assert_eq!(
        sdp.media[0].remote_rtp_addr(),
        Some("[2001:db8::1]:49170".parse().unwrap())
    );
    // Media-level c= overrides the session level.
    assert_eq!(sdp.media[1].connection, ip("2001:db8::2"));
}

#[test]
fn missing_timing_and_lines_webrtc_sdp_rejects() {
    // No t=, e= and p= lines, unknown attributes, a=ptime at session level, a bad rtpmap,
    // a telephone-event fmtp webrtc-sdp would reformat.
    let sdp = parse(fixtures::NO_TIMING).unwrap();
    assert_eq!(sdp.media.len(), 2);
    let m = &sdp.media[0];
    assert_eq!(m.ptime, Some(30), "session-level ptime");
    assert_eq!(m.label.as_deref(), Some("caller"));
    let te = m.formats.iter().find(|f| f.is_telephone_event()).unwrap();
    assert_eq!(te.fmtp.as_deref(), Some("0-15"));
    // Lower-case encoding name upper-cased; dynamic PT for PCMU.
    assert_eq!(m.formats[0], Format::new(96, "PCMU", 8000));
    assert_eq!(sdp.media[1].ptime, Some(20), "media-level ptime wins");
}

#[test]
fn unknown_transport_keeps_m_line_order() {
    let sdp = parse(fixtures::UNKNOWN_PROTO).unwrap();
    assert_eq!(sdp.media.len(), 3);
    let image = &sdp.media[1];
    assert_eq!(image.index, 1);
    assert_eq!(image.media, "image");
    assert_eq!(image.port, 49300);
    assert_eq!(image.proto, "udptl");
    assert_eq!(image.format_tokens, ["t38"]);
    assert!(image.formats.is_empty());
    // The attributes of the image section did not leak into the audio ones.
    assert_eq!(sdp.media[0].label.as_deref(), Some("1"));
    assert_eq!(sdp.media[2].label.as_deref(), Some("2"));
    assert_eq!(sdp.media[0].direction, Direction::SendOnly);
    assert_eq!(sdp.media[2].port, 49172);
}

#[test]
fn same_label_on_two_m_lines() {
    let sdp = parse(fixtures::SAME_LABEL).unwrap();
    assert_eq!(sdp.media.len(), 2);
    assert!(sdp.media.iter().all(|m| m.label.as_deref() == Some("1")));
}

#[test]
fn media_level_connections_only() {
    // No session c=; a disabled video section has no c= at all.
    let sdp = parse(fixtures::MEDIA_LEVEL_CONNECTION).unwrap();
    assert_eq!(sdp.media[0].connection, ip("192.0.2.20"));
    assert_eq!(sdp.media[1].connection, ip("192.0.2.21"));
    assert_eq!(sdp.media[2].media, "video");
    assert_eq!(sdp.media[2].connection, None);
    assert_eq!(sdp.media[2].port, 0);
}

#[test]
fn mixed_single_stream_with_rtcp_mux() {
    let sdp = parse(fixtures::MIXED_SINGLE).unwrap();
    assert_eq!(sdp.media.len(), 1);
    assert!(sdp.media[0].rtcp_mux);
    assert_eq!(sdp.media[0].label.as_deref(), Some("mixed"));
}

#[test]
fn video_m_line() {
    let sdp = parse(fixtures::VIDEO_DECLINED).unwrap();
    let v = &sdp.media[1];
    assert_eq!(v.media, "video");
    assert_eq!(
        v.formats,
        vec![Format::new(96, "H264", 90000)]
            .into_iter()
            .map(|mut f| {
                f.fmtp = Some("profile-level-id=42e01f;packetization-mode=1".into());
                f
            })
            .collect::<Vec<_>>()
    );
}

#[test]
fn rejects_what_a_recorder_cannot_use() {
    assert_eq!(parse(b"\xff\xfe"), Err(Error::NotUtf8));
    let big = vec![b'a'; MAX_SDP_LEN + 1];
    assert!(matches!(parse(&big), Err(Error::TooLarge { .. })));
    assert!(matches!(parse(b""), Err(Error::Malformed(_))));
    assert!(matches!(
        parse(b"v=0\r\ns=-\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\n"),
        Err(Error::Malformed(_))
    ));
    assert!(matches!(
        parse(b"v=1\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n"),
        Err(Error::Malformed(_))
    ));
    assert!(matches!(
        parse(b"v=0\r\no=- x 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n"),
        Err(Error::Malformed(_))
    ));
    let mut many =
        String::from("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n");
    for _ in 0..=MAX_MEDIA {
        many.push_str("m=audio 4000 RTP/AVP 0\r\n");
    }
    assert_eq!(
        parse(many.as_bytes()),
        Err(Error::TooManyMedia { limit: MAX_MEDIA })
    );
}

#[test]
fn minimal_and_odd_bodies() {
    // Shorter than webrtc-sdp's minimum, no media.
    let sdp = parse(b"v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n").unwrap();
    assert!(sdp.media.is_empty());
    // Garbage lines, an m-line with extra spaces and a port webrtc-sdp refuses.
    let sdp = parse(
        b"v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\nhello\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n\
          m=audio   4000  RTP/AVP  0\r\nm=audio 70000 RTP/AVP 0\r\n",
    )
    .unwrap();
    assert_eq!(sdp.media.len(), 2);
    assert_eq!(sdp.media[0].port, 4000);
    assert_eq!(sdp.media[0].formats, vec![Format::pcmu()]);
    assert_eq!(sdp.media[1].port, 0);
}

#[test]
fn webrtc_sdp_alone_fails_on_these_fixtures() {
    // Why the normaliser exists: raw webrtc-sdp on real-SRC bodies.
    let raw = |b: &[u8]| webrtc_sdp::parse_sdp(std::str::from_utf8(b).unwrap(), false);
    assert!(
        raw(fixtures::NO_TIMING).is_err(),
        "no t=, e=, p=, session ptime"
    );
    assert!(
        raw(fixtures::MEDIA_LEVEL_CONNECTION).is_err(),
        "section without c="
    );
    // The udptl m-line is dropped: 2 m-lines instead of 3, attributes moved.
    assert_eq!(raw(fixtures::UNKNOWN_PROTO).unwrap().media.len(), 2);
    // a=crypto is dropped silently.
    let srtp = raw(fixtures::SRTP_SDES).unwrap();
    assert!(srtp.media[0]
        .get_attributes()
        .iter()
        .all(|a| !a.to_string().starts_with("crypto")));
}

#[test]
fn mangled_fixtures_never_panic() {
    // Deterministic xorshift mutations: byte flips, inserted separators, deletions.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    const NOISE: &[u8] = b" =:/\r\n0123456789amcotv-*\xff";
    for (_, body) in fixtures::ALL {
        for _ in 0..300 {
            let mut b = body.to_vec();
            for _ in 0..(1 + next() % 6) {
                let at = (next() % b.len() as u64) as usize;
                let noise = NOISE[(next() % NOISE.len() as u64) as usize];
                match next() % 3 {
                    0 => b[at] = noise,
                    1 => b.insert(at, noise),
                    _ => {
                        b.remove(at);
                    }
                }
            }
            let _ = parse(&b);
        }
    }
}

#[test]
fn every_prefix_of_every_fixture_is_handled() {
    for (name, body) in fixtures::ALL {
        for len in 0..=body.len() {
            let _ = parse(&body[..len]);
        }
        assert!(parse(body).is_ok(), "{name}");
    }
}
