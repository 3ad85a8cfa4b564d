//! Scenario tests of the SRS role in virtual time: requests in as wire bytes, responses and
//! events out, `now` stepped by hand.

use std::time::{Duration, Instant};

use super::*;
use siprec_sip::rsip::SipMessage;

const FIXTURE_INVITE: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/sip/invite-siprec-rfc7866.sip"
));
const FIXTURE_COMPACT: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/sip/invite-compact.sip"
));

/// Hands out ports from a counter; `limit` of them at most.
struct Ports {
    next: u16,
    left: usize,
    released: std::sync::Arc<std::sync::Mutex<Vec<u16>>>,
}

impl PortAllocator for Ports {
    fn allocate(&mut self) -> Option<u16> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        self.next += 2;
        Some(self.next)
    }
    fn release(&mut self, port: u16) {
        self.released.lock().unwrap().push(port);
        self.left += 1;
    }
}

struct Harness {
    srs: SrsCore,
    now: Instant,
    peer: Peer,
    local: SocketAddr,
    released: std::sync::Arc<std::sync::Mutex<Vec<u16>>>,
}

impl Harness {
    fn new(transport: Transport, ports: usize, config: SrsConfig) -> Harness {
        let released = std::sync::Arc::default();
        let srs = SrsCore::new(
            config,
            Box::new(Ports {
                next: 20000,
                left: ports,
                released: std::sync::Arc::clone(&released),
            }),
        );
        Harness {
            srs,
            now: Instant::now(),
            peer: Peer {
                transport,
                addr: "192.0.2.1:5060".parse().unwrap(),
            },
            local: "192.0.2.10:5060".parse().unwrap(),
            released,
        }
    }

    fn udp() -> Harness {
        Harness::new(Transport::Udp, 100, SrsConfig::default())
    }

    fn send(&mut self, bytes: &[u8]) {
        self.srs
            .handle_bytes(self.now, self.peer, self.local, bytes);
    }

    fn responses(&mut self) -> Vec<rsip::Response> {
        let mut out = Vec::new();
        while let Some(t) = self.srs.poll_transmit() {
            assert_eq!(t.peer, self.peer);
            match message::parse_message(&t.payload).unwrap() {
                SipMessage::Response(r) => out.push(r),
                SipMessage::Request(r) => panic!("unexpected request {r}"),
            }
        }
        out
    }

    fn transmits(&mut self) -> Vec<SipMessage> {
        let mut out = Vec::new();
        while let Some(t) = self.srs.poll_transmit() {
            out.push(message::parse_message(&t.payload).unwrap());
        }
        out
    }

    fn final_response(&mut self) -> rsip::Response {
        let rs = self.responses();
        rs.into_iter()
            .rfind(|r| r.status_code.code() >= 200)
            .expect("a final response")
    }

    /// The status line of the last final response, as sent.
    fn final_status_line(&mut self) -> String {
        std::iter::from_fn(|| self.srs.poll_transmit())
            .map(|t| {
                String::from_utf8_lossy(&t.payload)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .filter(|l| l.starts_with("SIP/2.0 ") && !l.starts_with("SIP/2.0 1"))
            .last()
            .expect("a final response")
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.srs.poll_event()).collect()
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.srs.handle_timeout(self.now);
    }
}

const OFFER: &str = "v=0\r\no=src 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=label:1\r\na=sendonly\r\n\
m=audio 40002 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=label:2\r\na=sendonly\r\n";

const METADATA: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="urn:ietf:params:xml:ns:recording:1"><datamode>complete</datamode>
<session session_id="U0VTUw=="/>
<participant participant_id="QUFB"><nameID aor="sip:a@x"/></participant>
<participant participant_id="QkJC"><nameID aor="sip:b@x"/></participant>
<stream stream_id="UzE=" session_id="U0VTUw=="><label>1</label></stream>
<stream stream_id="UzI=" session_id="U0VTUw=="><label>2</label></stream>
<participantstreamassoc participant_id="QkJC"><send>UzE=</send></participantstreamassoc>
<participantstreamassoc participant_id="QUFB"><send>UzI=</send></participantstreamassoc>
</recording>"#;

/// A request from the SRC; `to_tag` makes it in-dialog.
fn request(
    method: &str,
    cseq: u32,
    to_tag: Option<&str>,
    extra: &str,
    body: Option<(&str, String)>,
) -> Vec<u8> {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    let (ct, body) = match body {
        Some((ct, b)) => (format!("Content-Type: {ct}\r\n"), b),
        None => (String::new(), String::new()),
    };
    format!(
        "{method} sip:srs@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-{method}-{cseq}\r\n\
From: <sip:src@192.0.2.1>;tag=src1\r\nTo: <sip:srs@192.0.2.10>{to_tag}\r\nCall-ID: call-1@192.0.2.1\r\n\
CSeq: {cseq} {method}\r\nContact: <sip:src@192.0.2.1>;+sip.src\r\nMax-Forwards: 70\r\n{extra}{ct}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn multipart(sdp: &str, md: &str) -> (&'static str, String) {
    (
        "multipart/mixed;boundary=XyZ",
        format!(
            "--XyZ\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n--XyZ\r\nContent-Type: application/rs-metadata+xml\r\nContent-Disposition: recording-session\r\n\r\n{md}\r\n--XyZ--\r\n"
        ),
    )
}

fn to_tag(r: &rsip::Response) -> String {
    r.to_header()
        .unwrap()
        .tag()
        .unwrap()
        .unwrap()
        .value()
        .to_string()
}

/// Runs an accepted INVITE + ACK; returns our To tag.
fn establish(h: &mut Harness) -> String {
    h.send(&request(
        "INVITE",
        1,
        None,
        "Require: siprec\r\n",
        Some(multipart(OFFER, METADATA)),
    ));
    let ok = h.final_response();
    assert_eq!(ok.status_code.code(), 200, "{ok}");
    let tag = to_tag(&ok);
    h.send(&request("ACK", 1, Some(&tag), "", None));
    tag
}

#[test]
fn fixture_invite_is_answered_with_recvonly_and_srs_contact() {
    let mut h = Harness::new(Transport::Tcp, 10, SrsConfig::default());
    h.send(FIXTURE_INVITE);
    let rs = h.responses();
    assert_eq!(rs[0].status_code.code(), 100, "100 Trying first");
    let ok = rs.last().unwrap();
    assert_eq!(ok.status_code.code(), 200);
    let contact = message::header_value(&ok.headers, "Contact").unwrap();
    assert!(
        contact.contains("+sip.srs") && contact.contains("transport=tcp"),
        "{contact}"
    );
    assert!(message::header_value(&ok.headers, "Session-Expires").is_some());
    let answer = String::from_utf8(ok.body.clone()).unwrap();
    assert_eq!(answer.matches("m=audio ").count(), 2);
    assert_eq!(answer.matches("a=recvonly").count(), 2);
    assert!(answer.contains("a=label:1") && answer.contains("a=label:2"));
    let evs = h.events();
    assert!(
        matches!(&evs[0], Event::Metadata { error: None, .. }),
        "{evs:?}"
    );
    let Event::SessionStarted {
        streams,
        channels,
        paused,
        metadata,
        ..
    } = &evs[1]
    else {
        panic!("{evs:?}");
    };
    assert!(!paused);
    assert_eq!(streams.len(), 2);
    assert!(streams
        .iter()
        .all(|s| s.receiving && s.local_port.is_some()));
    assert_eq!(channels.channel_of, vec![Some(0), Some(1)]);
    assert!(
        channels.reason.starts_with("participantstreamassoc"),
        "{}",
        channels.reason
    );
    assert!(metadata.is_some());
}

#[test]
fn compact_headers_metadata_first_and_extra_part_are_accepted() {
    let mut h = Harness::udp();
    h.send(FIXTURE_COMPACT);
    assert_eq!(h.final_response().status_code.code(), 200);
    let evs = h.events();
    assert!(evs
        .iter()
        .any(|e| matches!(e, Event::SessionStarted { .. })));
}

#[test]
fn channel_mapping_follows_participantstreamassoc_not_mline_order() {
    // In METADATA participant B (listed second) sends stream label 1 and A sends label 2:
    // A is the first participant, so A's stream (m-line 1) goes left.
    let mut h = Harness::udp();
    establish(&mut h);
    let evs = h.events();
    let Event::SessionStarted { channels, .. } = &evs[1] else {
        panic!("{evs:?}")
    };
    assert_eq!(channels.channel_of, vec![Some(1), Some(0)]);
    assert_eq!(channels.left_participants, vec!["QUFB".to_string()]);
    assert_eq!(channels.right_participants, vec!["QkJC".to_string()]);
}

#[test]
fn without_metadata_mline_order_decides() {
    let mut h = Harness::udp();
    h.send(&request(
        "INVITE",
        1,
        None,
        "",
        Some(("application/sdp", OFFER.to_string())),
    ));
    assert_eq!(h.final_response().status_code.code(), 200);
    let evs = h.events();
    let Event::SessionStarted { channels, .. } = &evs[0] else {
        panic!("{evs:?}")
    };
    assert_eq!(channels.channel_of, vec![Some(0), Some(1)]);
    assert_eq!(channels.reason, "m-line order (no metadata)");
}

#[test]
fn unsupported_require_gets_420_with_unsupported() {
    let mut h = Harness::udp();
    h.send(&request(
        "INVITE",
        1,
        None,
        "Require: siprec, 100rel, foo\r\n",
        Some(multipart(OFFER, METADATA)),
    ));
    let r = h.final_response();
    assert_eq!(r.status_code.code(), 420);
    assert_eq!(
        message::header_value(&r.headers, "Unsupported").as_deref(),
        Some("100rel, foo")
    );
    assert!(h.events().is_empty());
}

#[test]
fn unusable_body_gets_415_with_accept() {
    let mut h = Harness::udp();
    h.send(&request(
        "INVITE",
        1,
        None,
        "",
        Some(("text/html", "<p>hi</p>".into())),
    ));
    let r = h.final_response();
    assert_eq!(r.status_code.code(), 415);
    assert!(message::header_value(&r.headers, "Accept")
        .unwrap()
        .contains("application/sdp"));
}

#[test]
fn malformed_multipart_gets_400_with_reason() {
    let mut h = Harness::udp();
    h.send(&request(
        "INVITE",
        1,
        None,
        "",
        Some(("multipart/mixed", "no boundary".into())),
    ));
    let r = h.final_response();
    assert_eq!(r.status_code.code(), 400);
}

#[test]
fn no_sdp_or_no_usable_stream_gets_488() {
    let mut h = Harness::udp();
    h.send(&request("INVITE", 1, None, "", None));
    assert_eq!(h.final_response().status_code.code(), 488);
    let video = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=video 4000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";
    h.send(&request(
        "INVITE",
        2,
        None,
        "",
        Some(("application/sdp", video.into())),
    ));
    assert_eq!(h.final_response().status_code.code(), 488);
    h.send(&request(
        "INVITE",
        3,
        None,
        "",
        Some(("application/sdp", "garbage".into())),
    ));
    assert_eq!(h.final_response().status_code.code(), 488);
    assert!(h.events().is_empty());
}

#[test]
fn out_of_ports_gets_503_retry_after_and_releases_partial_allocation() {
    let mut h = Harness::new(Transport::Udp, 1, SrsConfig::default());
    h.send(&request(
        "INVITE",
        1,
        None,
        "",
        Some(multipart(OFFER, METADATA)),
    ));
    let r = h.final_response();
    assert_eq!(r.status_code.code(), 503);
    assert!(message::header_value(&r.headers, "Retry-After").is_some());
    assert_eq!(
        h.released.lock().unwrap().len(),
        1,
        "the one port taken is given back"
    );
    assert!(
        h.events().is_empty(),
        "no metadata event for a rejected session"
    );
}

/// An INVITE for another call (other Call-ID and branch) than `request("INVITE", 1, …)`.
fn second_call_invite() -> String {
    String::from_utf8(request(
        "INVITE",
        1,
        None,
        "",
        Some(multipart(OFFER, METADATA)),
    ))
    .unwrap()
    .replace("call-1@", "call-2@")
    .replace("INVITE-1", "INVITE-2nd")
}

#[test]
fn max_sessions_gets_503() {
    let cfg = SrsConfig {
        max_sessions: 1,
        ..SrsConfig::default()
    };
    let mut h = Harness::new(Transport::Udp, 100, cfg);
    establish(&mut h);
    let second = second_call_invite();
    h.send(second.as_bytes());
    let r = h.final_response();
    assert_eq!(r.status_code.code(), 503);
    // RFC 3261 §21.5.4: the SRC may retry (or fail over) after this many seconds.
    let ra = message::header_value(&r.headers, "Retry-After");
    assert_eq!(ra.as_deref(), Some("5"), "{r}");
}

#[test]
fn refusal_gets_503_with_reason_and_retry_after_until_lifted() {
    let mut h = Harness::udp();
    h.srs.set_refusal(Some("Spool Full".into()));
    h.send(&request(
        "INVITE",
        1,
        None,
        "",
        Some(multipart(OFFER, METADATA)),
    ));
    // The reason phrase as it goes on the wire (a parsed response only keeps the code).
    let wire: Vec<Vec<u8>> = std::iter::from_fn(|| h.srs.poll_transmit())
        .map(|t| t.payload.to_vec())
        .collect();
    let last = wire.last().expect("a response");
    assert!(
        last.starts_with(b"SIP/2.0 503 Spool Full\r\n"),
        "{}",
        String::from_utf8_lossy(last)
    );
    let r = match message::parse_message(last).unwrap() {
        SipMessage::Response(r) => r,
        other => panic!("{other}"),
    };
    assert_eq!(
        message::header_value(&r.headers, "Retry-After").as_deref(),
        Some("5")
    );
    h.srs.set_refusal(None);
    let again = second_call_invite();
    h.send(again.as_bytes());
    assert_eq!(h.final_response().status_code.code(), 200);
}

#[test]
fn unknown_dialog_gets_481_and_unknown_method_405() {
    let mut h = Harness::udp();
    h.send(&request("BYE", 2, Some("nope"), "", None));
    assert_eq!(h.final_response().status_code.code(), 481);
    h.send(&request("UPDATE", 3, None, "", None));
    assert_eq!(h.final_response().status_code.code(), 481);
    h.send(&request("MESSAGE", 4, None, "", None));
    assert_eq!(h.final_response().status_code.code(), 405);
}

#[test]
fn options_lists_allow_accept_supported() {
    let mut h = Harness::udp();
    h.send(&request("OPTIONS", 1, None, "", None));
    let r = h.final_response();
    assert_eq!(r.status_code.code(), 200);
    for name in ["Allow", "Accept", "Supported"] {
        assert!(message::header_value(&r.headers, name).is_some(), "{name}");
    }
}

#[test]
fn unparseable_request_gets_400_when_it_can_be_answered() {
    let mut h = Harness::udp();
    let bad = b"INVITE sip:srs@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:srs@c>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 500\r\n\r\nshort";
    h.send(bad);
    let r = h.final_response();
    assert_eq!(r.status_code.code(), 400);
    h.send(b"\x00\x01garbage that is not SIP at all");
    assert!(h.transmits().is_empty(), "nothing to answer");
    // A header value that is not UTF-8: still answered, with the reason.
    let binary = b"OPTIONS sip:srs@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK2\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:srs@c>\r\nCall-ID: y\r\nCSeq: 1 OPTIONS\r\nX-Bin: \xff\xfe\r\nContent-Length: 0\r\n\r\n";
    h.send(binary);
    let r = h.final_response();
    assert_eq!(r.status_code.code(), 400);
    let warning = message::header_value(&r.headers, "Warning").unwrap_or_default();
    assert!(warning.contains("UTF-8"), "{warning}");
    // Not UTF-8 in the Call-ID: it cannot be echoed, so nothing is sent.
    let in_call_id = b"OPTIONS sip:srs@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK3\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:srs@c>\r\nCall-ID: \xff\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    h.send(in_call_id);
    assert!(
        h.transmits().is_empty(),
        "a Call-ID that is not UTF-8 is not echoed"
    );
}

#[test]
fn retransmitted_invite_starts_one_session() {
    let mut h = Harness::udp();
    let inv = request("INVITE", 1, None, "", Some(multipart(OFFER, METADATA)));
    h.send(&inv);
    let first = h.final_response();
    h.send(&inv);
    let again = h.final_response();
    assert_eq!(to_tag(&first), to_tag(&again), "the same 200 is resent");
    let started = h
        .events()
        .iter()
        .filter(|e| matches!(e, Event::SessionStarted { .. }))
        .count();
    assert_eq!(started, 1);
    assert_eq!(h.srs.active_sessions(), 1);
}

#[test]
fn pause_and_resume_by_reinvite() {
    let mut h = Harness::udp();
    let tag = establish(&mut h);
    h.events();
    let paused = OFFER.replace("a=sendonly", "a=inactive");
    h.send(&request(
        "INVITE",
        2,
        Some(&tag),
        "",
        Some(("application/sdp", paused)),
    ));
    let r = h.final_response();
    assert_eq!(r.status_code.code(), 200);
    let answer = String::from_utf8(r.body.clone()).unwrap();
    assert_eq!(answer.matches("a=inactive").count(), 2, "{answer}");
    h.send(&request("ACK", 2, Some(&tag), "", None));
    let evs = h.events();
    assert!(
        matches!(&evs[..], [Event::MediaUpdated { paused: true, .. }]),
        "{evs:?}"
    );
    // Hold by c=0.0.0.0 also pauses.
    let held = OFFER.replace("c=IN IP4 192.0.2.1", "c=IN IP4 0.0.0.0");
    h.send(&request(
        "INVITE",
        3,
        Some(&tag),
        "",
        Some(("application/sdp", held)),
    ));
    assert_eq!(h.final_response().status_code.code(), 200);
    h.send(&request("ACK", 3, Some(&tag), "", None));
    assert!(matches!(
        &h.events()[..],
        [Event::MediaUpdated { paused: true, .. }]
    ));
    h.send(&request(
        "INVITE",
        4,
        Some(&tag),
        "",
        Some(("application/sdp", OFFER.into())),
    ));
    let r = h.final_response();
    assert_eq!(
        String::from_utf8_lossy(&r.body)
            .matches("a=recvonly")
            .count(),
        2
    );
    h.send(&request("ACK", 4, Some(&tag), "", None));
    let evs = h.events();
    let [Event::MediaUpdated {
        paused: false,
        streams,
        ..
    }] = &evs[..]
    else {
        panic!("{evs:?}")
    };
    // Same ports as before: resuming needs no new sockets.
    assert_eq!(streams[0].local_port, Some(20002));
    assert_eq!(streams[1].local_port, Some(20004));
}

#[test]
fn codec_change_by_reinvite_updates_the_plan() {
    let mut h = Harness::udp();
    let tag = establish(&mut h);
    h.events();
    let pcma = OFFER
        .replace("RTP/AVP 0 101", "RTP/AVP 8 101")
        .replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000");
    h.send(&request(
        "INVITE",
        2,
        Some(&tag),
        "",
        Some(("application/sdp", pcma)),
    ));
    assert_eq!(h.final_response().status_code.code(), 200);
    let evs = h.events();
    let [Event::MediaUpdated { streams, .. }] = &evs[..] else {
        panic!("{evs:?}")
    };
    assert_eq!(streams[0].format.as_ref().unwrap().encoding, "PCMA");
}

#[test]
fn second_reinvite_while_pending_gets_491() {
    let mut h = Harness::udp();
    let tag = establish(&mut h);
    h.send(&request(
        "INVITE",
        2,
        Some(&tag),
        "",
        Some(("application/sdp", OFFER.into())),
    ));
    assert_eq!(h.final_response().status_code.code(), 200);
    // No ACK yet: a new re-INVITE is glare.
    h.send(&request(
        "INVITE",
        3,
        Some(&tag),
        "",
        Some(("application/sdp", OFFER.into())),
    ));
    assert_eq!(h.final_response().status_code.code(), 491);
}

#[test]
fn offerless_reinvite_gets_current_sdp_and_metadata_update_is_reported() {
    let mut h = Harness::udp();
    let tag = establish(&mut h);
    h.events();
    h.send(&request(
        "INVITE",
        2,
        Some(&tag),
        "Session-Expires: 900\r\n",
        None,
    ));
    let r = h.final_response();
    assert_eq!(r.status_code.code(), 200);
    assert!(String::from_utf8_lossy(&r.body).contains("m=audio"));
    assert_eq!(
        message::header_value(&r.headers, "Session-Expires").as_deref(),
        Some("900;refresher=uac")
    );
    h.send(&request("ACK", 2, Some(&tag), "", None));
    let partial = METADATA.replace("complete", "partial");
    h.send(&request(
        "UPDATE",
        3,
        Some(&tag),
        "",
        Some(("application/rs-metadata+xml", partial.clone())),
    ));
    let r = h.final_response();
    assert_eq!(r.status_code.code(), 200);
    assert!(
        r.body.is_empty(),
        "no SDP in an UPDATE answer without offer"
    );
    let evs = h.events();
    let [Event::Metadata {
        raw, error: None, ..
    }, Event::MetadataUpdated {
        metadata: Some(md),
        channels,
        ..
    }] = &evs[..]
    else {
        panic!("{evs:?}")
    };
    assert_eq!(raw, partial.as_bytes());
    // The driver gets the state with the partial document applied, and who each channel
    // carries.
    assert_eq!(md.participants.len(), 2);
    assert_eq!(md.participant_stream_assocs.len(), 2);
    assert!(!channels.left_participants.is_empty());
}

#[test]
fn malformed_metadata_does_not_fail_the_call() {
    let mut h = Harness::udp();
    h.send(&request(
        "INVITE",
        1,
        None,
        "",
        Some(multipart(OFFER, "<recording><oops")),
    ));
    assert_eq!(h.final_response().status_code.code(), 200);
    let evs = h.events();
    assert!(
        matches!(&evs[0], Event::Metadata { error: Some(_), .. }),
        "{evs:?}"
    );
    let Event::SessionStarted { channels, .. } = &evs[1] else {
        panic!("{evs:?}")
    };
    assert!(channels.reason.starts_with("m-line order"));
}

#[test]
fn bye_ends_the_session_and_frees_ports() {
    let mut h = Harness::udp();
    let tag = establish(&mut h);
    h.events();
    h.send(&request("BYE", 2, Some(&tag), "", None));
    assert_eq!(h.final_response().status_code.code(), 200);
    let evs = h.events();
    assert!(
        matches!(
            &evs[..],
            [Event::SessionEnded {
                reason: EndReason::ByeFromSrc,
                ..
            }]
        ),
        "{evs:?}"
    );
    assert_eq!(h.srs.active_sessions(), 0);
    let mut released = h.released.lock().unwrap().clone();
    released.sort();
    assert_eq!(released, vec![20002, 20004]);
    // A BYE retransmission is absorbed, a request after the end gets 481.
    h.send(&request("BYE", 2, Some(&tag), "", None));
    assert_eq!(h.final_response().status_code.code(), 200);
    h.send(&request("INFO", 3, Some(&tag), "", None));
    assert_eq!(h.final_response().status_code.code(), 481);
}

#[test]
fn bye_before_ack_ends_the_session() {
    let mut h = Harness::udp();
    h.send(&request(
        "INVITE",
        1,
        None,
        "",
        Some(multipart(OFFER, METADATA)),
    ));
    let tag = to_tag(&h.final_response());
    h.send(&request("BYE", 2, Some(&tag), "", None));
    assert_eq!(h.final_response().status_code.code(), 200);
    assert!(h.events().iter().any(|e| matches!(
        e,
        Event::SessionEnded {
            reason: EndReason::ByeFromSrc,
            ..
        }
    )));
}

#[test]
fn srs_bye_on_media_timeout_goes_to_the_src_in_dialog() {
    let mut h = Harness::udp();
    let tag = establish(&mut h);
    let id = match &h.events()[1] {
        Event::SessionStarted { id, .. } => *id,
        e => panic!("{e:?}"),
    };
    h.srs.end_session(h.now, id, EndReason::MediaTimeout);
    let out = h.transmits();
    let [SipMessage::Request(bye)] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(bye.method, Method::Bye);
    assert_eq!(
        bye.from_header().unwrap().tag().unwrap().unwrap().value(),
        tag
    );
    assert_eq!(
        bye.to_header().unwrap().tag().unwrap().unwrap().value(),
        "src1"
    );
    assert!(matches!(
        &h.events()[..],
        [Event::SessionEnded {
            reason: EndReason::MediaTimeout,
            ..
        }]
    ));
    // Unanswered over UDP: retransmitted (Timer E), then given up (Timer F); nothing leaks.
    h.advance(Duration::from_millis(500));
    assert_eq!(h.transmits().len(), 1);
    for _ in 0..80 {
        h.advance(Duration::from_millis(500));
    }
    h.transmits();
    assert!(h.srs.poll_timeout().is_none(), "no timers left");
    assert_eq!(h.srs.active_sessions(), 0);
}

#[test]
fn missing_ack_ends_the_session_with_bye_after_64_t1() {
    let mut h = Harness::udp();
    h.send(&request(
        "INVITE",
        1,
        None,
        "",
        Some(multipart(OFFER, METADATA)),
    ));
    h.final_response();
    h.events();
    let mut retransmits = 0;
    let mut bye = None;
    for _ in 0..70 {
        h.advance(Duration::from_millis(500));
        for m in h.transmits() {
            match m {
                SipMessage::Response(r) if r.status_code.code() == 200 => retransmits += 1,
                SipMessage::Request(r) if r.method == Method::Bye => bye = Some(r),
                other => panic!("{other}"),
            }
        }
        if bye.is_some() {
            break;
        }
    }
    assert!(
        retransmits >= 7,
        "2xx retransmitted until giving up ({retransmits})"
    );
    assert!(bye.is_some(), "BYE after the ACK timeout");
    assert!(h.events().iter().any(|e| matches!(
        e,
        Event::SessionEnded {
            reason: EndReason::AckTimeout,
            ..
        }
    )));
}

#[test]
fn stop_accepting_refuses_new_sessions() {
    let mut h = Harness::udp();
    h.srs.stop_accepting();
    h.send(&request(
        "INVITE",
        1,
        None,
        "",
        Some(multipart(OFFER, METADATA)),
    ));
    let r = h.final_response();
    assert_eq!(r.status_code.code(), 503);
    assert!(message::header_value(&r.headers, "Retry-After").is_some());
}

/// The same INVITE as `request` but with its own Call-ID and branch.
fn invite_n(n: u32) -> Vec<u8> {
    let (ct, body) = multipart(OFFER, METADATA);
    String::from_utf8(request(
        "INVITE",
        1,
        None,
        "Require: siprec\r\n",
        Some((ct, body)),
    ))
    .unwrap()
    .replace("call-1@", &format!("call-{n}@"))
    .replace("z9hG4bK-INVITE-1", &format!("z9hG4bK-INVITE-n{n}"))
    .into_bytes()
}

#[test]
fn sources_outside_the_allowlist_get_403() {
    let config = SrsConfig {
        allow_sources: vec![
            "198.51.100.0/24".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ],
        ..SrsConfig::default()
    };
    let mut h = Harness::new(Transport::Udp, 100, config);
    h.send(&invite_n(1));
    assert_eq!(
        h.final_status_line(),
        "SIP/2.0 403 Forbidden (source not allowed)"
    );
    assert!(h.events().is_empty(), "nothing recorded");
    h.send(&request("OPTIONS", 1, None, "", None));
    assert_eq!(h.final_response().status_code.code(), 403);
    // From inside the network (an IPv4-mapped IPv6 source counts as IPv4): recorded.
    h.peer.addr = "[::ffff:198.51.100.7]:5060".parse().unwrap();
    h.send(&invite_n(2));
    assert_eq!(h.final_response().status_code.code(), 200);
}

#[test]
fn invites_beyond_the_rate_get_503_until_the_bucket_refills() {
    let config = SrsConfig {
        invite_rate: 2.0,
        invite_burst: 3,
        ..SrsConfig::default()
    };
    let mut h = Harness::new(Transport::Udp, 100, config);
    let codes: Vec<u16> = (1..=5)
        .map(|n| {
            h.send(&invite_n(n));
            h.final_response().status_code.code()
        })
        .collect();
    assert_eq!(codes, [200, 200, 200, 503, 503]);
    h.send(&invite_n(10));
    assert_eq!(h.final_status_line(), "SIP/2.0 503 Rate Limited");
    h.send(&invite_n(6));
    let r = h.final_response();
    assert_eq!(
        message::header_value(&r.headers, "Retry-After").as_deref(),
        Some("1")
    );
    // Half a second refills one token at 2/s; another source has its own bucket.
    h.now += Duration::from_millis(500);
    h.send(&invite_n(7));
    assert_eq!(h.final_response().status_code.code(), 200);
    h.send(&invite_n(8));
    assert_eq!(h.final_response().status_code.code(), 503);
    h.peer.addr = "192.0.2.99:5060".parse().unwrap();
    h.send(&invite_n(9));
    assert_eq!(h.final_response().status_code.code(), 200);
}

#[test]
fn oversized_metadata_gets_413_and_no_session() {
    let config = SrsConfig {
        max_metadata_bytes: 1024,
        ..SrsConfig::default()
    };
    let mut h = Harness::new(Transport::Udp, 100, config);
    let big = METADATA.replace(
        "<session session_id=\"U0VTUw==\"/>",
        &format!(
            "<session session_id=\"U0VTUw==\"><sipSessionID>{}</sipSessionID></session>",
            "a".repeat(2000)
        ),
    );
    h.send(&request(
        "INVITE",
        1,
        None,
        "Require: siprec\r\n",
        Some(multipart(OFFER, &big)),
    ));
    let line = h.final_status_line();
    assert!(
        line.starts_with("SIP/2.0 413 Request Entity Too Large (metadata of "),
        "{line}"
    );
    assert!(line.ends_with("bytes, at most 1024)"), "{line}");
    assert!(h.events().is_empty());
}

const SRTP_OFFER: &str =
    "v=0\r\no=src 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
m=audio 40000 RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\na=label:1\r\na=sendonly\r\n\
a=crypto:1 F8_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n\
a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNk|2^31\r\n\
m=audio 40002 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=label:2\r\na=sendonly\r\n";

#[test]
fn srtp_offer_is_answered_with_our_own_key_and_the_plan_carries_theirs() {
    let mut h = Harness::udp();
    h.send(&request(
        "INVITE",
        1,
        None,
        "Require: siprec\r\n",
        Some(multipart(SRTP_OFFER, METADATA)),
    ));
    let r = h.final_response();
    assert_eq!(r.status_code.code(), 200);
    let body = String::from_utf8_lossy(&r.body).to_string();
    // The offer's first usable line is tag 2 (F8 is not supported): same tag and suite, our key.
    let ours: Vec<&str> = body
        .lines()
        .filter(|l| l.starts_with("a=crypto:"))
        .collect();
    assert_eq!(ours.len(), 1, "{body}");
    assert!(
        ours[0].starts_with("a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:"),
        "{body}"
    );
    assert!(
        !ours[0].contains("MDEyMzQ1Njc4OWFiY2RlZjAx"),
        "a key of our own"
    );
    assert!(body.contains("m=audio 20002 RTP/SAVP 0"), "{body}");
    let evs = h.events();
    let plans = evs
        .iter()
        .find_map(|e| match e {
            Event::SessionStarted { streams, .. } => Some(streams.clone()),
            _ => None,
        })
        .unwrap();
    let theirs = plans[0].srtp.as_ref().expect("SRTP key in the plan");
    assert_eq!(theirs.tag, 2);
    assert!(plans[1].srtp.is_none(), "plain RTP on the second stream");
}

#[test]
fn srtp_required_refuses_plain_rtp_and_off_declines_srtp() {
    let mut h = Harness::new(
        Transport::Udp,
        100,
        SrsConfig {
            srtp: SrtpPolicy::Required,
            ..SrsConfig::default()
        },
    );
    h.send(&request(
        "INVITE",
        1,
        None,
        "Require: siprec\r\n",
        Some(multipart(OFFER, METADATA)),
    ));
    let line = h.final_status_line();
    assert!(line.starts_with("SIP/2.0 488"), "{line}");
    assert!(h.events().is_empty());
    // SRTP off: the SAVP stream is declined, the plain one recorded.
    let mut h = Harness::new(
        Transport::Udp,
        100,
        SrsConfig {
            srtp: SrtpPolicy::Off,
            ..SrsConfig::default()
        },
    );
    h.send(&request(
        "INVITE",
        1,
        None,
        "Require: siprec\r\n",
        Some(multipart(SRTP_OFFER, METADATA)),
    ));
    let r = h.final_response();
    assert_eq!(r.status_code.code(), 200);
    let body = String::from_utf8_lossy(&r.body).to_string();
    assert!(body.contains("m=audio 0 RTP/SAVP"), "{body}");
    assert!(!body.contains("a=crypto"), "{body}");
}
