//! End to end: a Rust test SRC records a call on a running srs-server over UDP and over TCP,
//! with a pause in the middle, and the stored recording is checked sample by sample.

use std::time::{Duration, Instant};

use interop_tests::audio::{assert_tone, deinterleave, peak, window};
use interop_tests::{read_object, read_wav, start_srs, TestSrc, TestTransport};
use siprec_sip::rsip::prelude::*;
use siprec_sip::transaction::Transport;

const RATE: f64 = 8000.0;

async fn record_call(transport: TestTransport, rtp_base: u16) {
    let dir = tempfile::tempdir().unwrap();
    let server = start_srs(dir.path(), rtp_base).await.unwrap();
    let mut published = server.subscribe();
    let want = match transport {
        TestTransport::Udp => Transport::Udp,
        TestTransport::Tcp => Transport::Tcp,
    };
    let addr = server
        .local_addrs()
        .iter()
        .find(|l| l.transport == want)
        .unwrap()
        .addr;
    let mut src = TestSrc::new(transport, addr, (0, 440.0), (8, 880.0))
        .await
        .unwrap();
    let rec_id = format!("REC-e2e-{transport:?}");
    let offer = src.offer("sendonly");
    let md = src.metadata(Some(&rec_id));

    // Start.
    let resp = src.invite(&offer, Some(&md)).await.unwrap();
    let answered = Instant::now();
    assert_eq!(resp.status_code.code(), 200, "{resp}");
    let contact = resp.contact_header().unwrap().to_string();
    assert!(
        contact.contains("+sip.srs"),
        "Contact without +sip.srs: {contact}"
    );
    let answer = String::from_utf8_lossy(&resp.body).to_string();
    assert_eq!(answer.matches("m=audio").count(), 2, "{answer}");
    assert_eq!(answer.matches("a=recvonly").count(), 2, "{answer}");
    assert!(src.legs.iter().all(|l| l.dest.is_some()));

    // 2.5 s of audio, 1 s pause, 2.5 s of audio.
    src.stream(Duration::from_millis(2500)).await.unwrap();
    let pause = src.offer("inactive");
    let resp = src.invite(&pause, None).await.unwrap();
    assert_eq!(resp.status_code.code(), 200);
    assert!(String::from_utf8_lossy(&resp.body).contains("a=inactive"));
    let paused_at = Instant::now();
    tokio::time::sleep_until((paused_at + Duration::from_secs(1)).into()).await;
    for leg in &mut src.legs {
        leg.skip(paused_at.elapsed());
    }
    let resume = src.offer("sendonly");
    let resp = src.invite(&resume, None).await.unwrap();
    assert_eq!(resp.status_code.code(), 200);
    assert_eq!(
        String::from_utf8_lossy(&resp.body)
            .matches("a=recvonly")
            .count(),
        2
    );
    src.stream(Duration::from_millis(2500)).await.unwrap();
    let resp = src.send_in_dialog("BYE", None, None).await.unwrap();
    let session_len = answered.elapsed().as_secs_f64();
    assert_eq!(resp.status_code.code(), 200);

    // The recording is published: await the event, no sleeping.
    let rec = tokio::time::timeout(Duration::from_secs(15), published.recv())
        .await
        .expect("recording published in time")
        .unwrap();
    let m = &rec.manifest;
    assert_eq!(m.recording_key, rec_id);
    assert_eq!(m.recording_key_source, "recording_id");
    assert!(
        rec.folder.ends_with(&format!("/{rec_id}")),
        "{}",
        rec.folder
    );
    assert_eq!(m.call_id, src.call_id);
    assert_eq!(m.ended_by, "bye-from-src");
    assert!(m.complete);
    assert_eq!(m.participants.len(), 2);
    assert_eq!(m.participants[0].name.as_deref(), Some("Alice"));
    assert_eq!(
        m.participants[1].aor.as_deref(),
        Some("sip:bob@example.com")
    );
    assert_eq!(
        m.channels.left.participants,
        vec!["cGFydC1jYWxsZXI=".to_string()]
    );
    assert_eq!(
        m.channels.right.participants,
        vec!["cGFydC1jYWxsZWU=".to_string()]
    );
    assert!(
        m.channels.reason.starts_with("participantstreamassoc"),
        "{}",
        m.channels.reason
    );
    assert_eq!(m.streams.len(), 2);
    assert_eq!(m.streams[0].codecs, vec!["PCMU/8000".to_string()]);
    assert_eq!(m.streams[1].codecs, vec!["PCMA/8000".to_string()]);
    for s in &m.streams {
        assert_eq!(s.packets_received, 250, "{s:?}");
        assert_eq!(s.packets_lost, 0, "{s:?}");
        assert_eq!(s.packets_duplicated, 0, "{s:?}");
    }
    assert_eq!(m.session_ids, vec!["c2Vzc2lvbi0xMjM0NTY3OA==".to_string()]);
    assert_eq!(m.metadata_documents, vec!["metadata/0001.xml".to_string()]);
    assert!(m.metadata_errors.is_empty(), "{:?}", m.metadata_errors);
    let stored_md = read_object(&server, &format!("{}/metadata/0001.xml", rec.folder))
        .await
        .unwrap();
    assert_eq!(stored_md, md.as_bytes(), "metadata stored byte for byte");
    let json = read_object(&server, &format!("{}/recording.json", rec.folder))
        .await
        .unwrap();
    let on_disk: siprec_storage::Manifest = serde_json::from_slice(&json).unwrap();
    assert_eq!(&on_disk, m);

    // The WAV: stereo 8 kHz 16-bit, as long as the session, tones on the right channels.
    let (spec, samples) = read_wav(&server, &rec.folder).await.unwrap();
    assert_eq!(spec.channels, 2);
    assert_eq!(spec.sample_rate, 8000);
    assert_eq!(spec.bits_per_sample, 16);
    let (left, right) = deinterleave(&samples);
    assert_eq!(left.len(), right.len());
    let secs = left.len() as f64 / RATE;
    assert_eq!(m.duration_samples, left.len() as u64);
    assert!(
        (secs - session_len).abs() < 0.020,
        "WAV {secs:.3} s vs session {session_len:.3} s"
    );
    assert!(
        (secs - 6.0).abs() < 0.25,
        "WAV {secs:.3} s, expected about 6 s"
    );
    assert_tone(window(&left, 0.2, 2.3), 440.0, 880.0, "left before pause");
    assert_tone(window(&right, 0.2, 2.3), 880.0, 440.0, "right before pause");
    assert_tone(window(&left, 3.8, 5.8), 440.0, 880.0, "left after resume");
    assert_tone(window(&right, 3.8, 5.8), 880.0, 440.0, "right after resume");

    // The pause is silent, exactly where the SRS saw it.
    assert_eq!(m.pauses.len(), 1, "{:?}", m.pauses);
    let p = &m.pauses[0];
    assert!(
        (p.start - 2.5).abs() < 0.1 && (p.end - p.start - 1.0).abs() < 0.1,
        "{p:?}"
    );
    assert_eq!(peak(window(&left, p.start + 0.03, p.end - 0.03)), 0);
    assert_eq!(peak(window(&right, p.start + 0.03, p.end - 0.03)), 0);

    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_call_with_pause_is_recorded_in_stereo() {
    record_call(TestTransport::Udp, 31000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_call_with_pause_is_recorded_in_stereo() {
    record_call(TestTransport::Tcp, 31400).await;
}
