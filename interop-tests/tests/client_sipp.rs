//! SIPp (Debian package `sip-tester`) as a third-party SRS: it runs
//! `fixtures/sipp/siprec-srs-uas.xml` (answer the recording session, wait for BYE) and logs
//! every message (`-trace_msg -message_file`). siprec-client records a short call on it; the
//! test reads the INVITE SIPp received from its message log and checks it is an RFC 7866
//! recording session.

use std::process::Stdio;
use std::time::Duration;

use interop_tests::{fixtures_dir, require_tool};
use siprec_client::core::LOG_SRS_STOPPED;
use siprec_client::{CallContext, ClientConfig, Recorder, Reply, ToneSource};
use siprec_sip::rsip::{self, SipMessage};

/// The first INVITE in a SIPp message log (SIPp writes each message as received, between
/// separator lines).
fn invite_from_log(log: &str) -> String {
    let start = log
        .find("INVITE sip:")
        .expect("an INVITE in the message log");
    let rest = &log[start..];
    let end = rest.find("\n----------").unwrap_or(rest.len());
    rest[..end].trim_end_matches(['\n', '\r']).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_as_srs_receives_a_siprec_invite() {
    let sipp = require_tool("sipp", "install it with `apt-get install sip-tester`");
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let media_port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port() & !1
    };
    let messages = dir.path().join("sipp-messages.log");
    let errors = dir.path().join("sipp-errors.log");
    let child = tokio::process::Command::new(sipp)
        .current_dir(fixtures_dir().join("sipp"))
        .args(["-sf", "siprec-srs-uas.xml", "-m", "1", "-t", "u1"])
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-mi",
            "127.0.0.1",
        ])
        .args(["-mp", &media_port.to_string()])
        .args(["-timeout", "30s", "-timeout_error", "-nostdin"])
        .arg("-trace_msg")
        .arg("-message_file")
        .arg(&messages)
        .arg("-trace_err")
        .arg("-error_file")
        .arg(&errors)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let rec = Recorder::new(
        ClientConfig {
            // SIPp may still be starting: UDP retransmissions (T1 = 500 ms) cover that.
            start_timeout: Duration::from_secs(5),
            ..ClientConfig::default()
        },
        CallContext::example(),
        Box::new(ToneSource::new(440.0, 8000.0)),
        Box::new(ToneSource::new(880.0, 8000.0)),
    )
    .await
    .unwrap();
    let server = format!("sip:srs@127.0.0.1:{port};transport=udp");
    let out = rec.start(&server, Some("sipp-rec-1")).await.unwrap();
    assert_eq!(out.reply, Reply::Started, "{out:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stats = rec.media_stats().await;
    assert_eq!(stats.len(), 2, "{stats:?}");
    assert!(stats.iter().all(|s| s.packets >= 40 && s.payload_type == 0));
    let out = rec.stop().await.unwrap();
    assert_eq!(out.reply, Reply::Stopped);
    assert!(
        out.srs[0].ok && out.srs[0].line == LOG_SRS_STOPPED,
        "{out:?}"
    );
    rec.close().await.unwrap();

    let done = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("sipp exits after the call")
        .unwrap();
    let err_log = std::fs::read_to_string(&errors).unwrap_or_default();
    assert!(
        done.status.success(),
        "sipp failed ({}):\n{}\n{}\n{err_log}",
        done.status,
        String::from_utf8_lossy(&done.stdout),
        String::from_utf8_lossy(&done.stderr)
    );

    // The INVITE as SIPp received it.
    let log = std::fs::read_to_string(&messages).unwrap();
    let text = invite_from_log(&log);
    let text = if text.contains("\r\n") {
        text
    } else {
        text.replace('\n', "\r\n")
    };
    let msg = siprec_sip::parse_message(format!("{text}\r\n").as_bytes())
        .unwrap_or_else(|e| panic!("{e}: {text}"));
    let SipMessage::Request(inv) = msg else {
        panic!("not a request")
    };
    let h = |n: &str| siprec_sip::message::header_value(&inv.headers, n).unwrap_or_default();
    assert_eq!(inv.method, rsip::Method::Invite);
    // (rsip prints the transport value in its own case.)
    assert!(
        inv.uri.to_string().eq_ignore_ascii_case(&server),
        "{}",
        inv.uri
    );
    assert_eq!(
        siprec_sip::message::header_tokens(&inv.headers, "Require"),
        ["siprec"]
    );
    assert!(h("Contact").ends_with(";+sip.src"), "{}", h("Contact"));
    assert!(h("Accept").contains("application/sdp"), "{}", h("Accept"));
    let ct = h("Content-Type");
    assert!(ct.starts_with("multipart/mixed;boundary="), "{ct}");
    let mp = siprec_sip::multipart::parse(&ct, &inv.body).unwrap();
    assert_eq!(mp.parts.len(), 2);
    let sdp = String::from_utf8(mp.part_by_type("application/sdp").unwrap().body.clone()).unwrap();
    assert_eq!(sdp.matches("m=audio ").count(), 2, "{sdp}");
    assert_eq!(sdp.matches("a=sendonly").count(), 2, "{sdp}");
    assert!(
        sdp.contains("a=label:1\r\n") && sdp.contains("a=label:2\r\n"),
        "{sdp}"
    );
    let md_part = mp.part_by_type("application/rs-metadata+xml").unwrap();
    assert_eq!(md_part.disposition().as_deref(), Some("recording-session"));
    let md = String::from_utf8(md_part.body.clone()).unwrap();
    assert!(
        md.contains("xmlns=\"urn:ietf:params:xml:ns:recording:1\""),
        "{md}"
    );
    assert!(md.contains(">sipp-rec-1</recordingid>"), "{md}");
    assert_eq!(md.matches("<participant ").count(), 2, "{md}");
    assert_eq!(md.matches("<stream ").count(), 2, "{md}");
    let Ok(rs_metadata::Document::Recording(rec)) = rs_metadata::parse(md.as_bytes()) else {
        panic!("metadata does not parse: {md}")
    };
    assert_eq!(rec.recording_id().as_deref(), Some("sipp-rec-1"));
    // Label 1 is the caller's stream.
    let s1 = rec.stream_by_label("1").unwrap().stream_id.clone();
    let caller = rec.sender_of_stream(&s1).unwrap().to_string();
    assert_eq!(rec.participant_display(&caller).0.as_deref(), Some("Alice"));
    // SIPp saw our ACK and BYE too.
    assert!(log.contains("ACK sip:srs@127.0.0.1"), "{log}");
    assert!(log.contains("BYE sip:srs@127.0.0.1"), "{log}");
}
