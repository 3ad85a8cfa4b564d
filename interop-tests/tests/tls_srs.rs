//! SIP over TLS end to end: srs-server with a `tls:` listener (a CA and certificate made here
//! with rcgen), a SIPREC call from a test SRC over `siprec-sip-tokio`'s TLS client, with a
//! pause, recorded and checked sample by sample; a client that trusts another CA is refused.

use std::time::{Duration, Instant};

use interop_tests::audio::{assert_tone, deinterleave, peak, window};
use interop_tests::tls::TestPki;
use interop_tests::{read_wav, TestSrc};
use siprec_sip::rsip::prelude::*;
use siprec_sip::transaction::Transport;

const RATE: f64 = 8000.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_call_with_pause_is_recorded_in_stereo() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(&dir.path().join("tls"), "SIPREC test CA", &["srs.test"]).unwrap();
    let cfg = srs_server::Config {
        listen: vec!["tls:127.0.0.1:0".into()],
        tls_cert: Some(pki.cert_file.clone()),
        tls_key: Some(pki.key_file.clone()),
        rtp_ports: "35400-35599".into(),
        storage: dir.path().join("recordings").display().to_string(),
        spool: dir.path().join("spool"),
        media_timeout: 10,
        ..srs_server::Config::default()
    };
    let server = srs_server::Server::start(cfg.validate().unwrap())
        .await
        .unwrap();
    let mut published = server.subscribe();
    let addr = server.local_addrs()[0];
    assert_eq!(addr.transport, Transport::Tls);
    let addr = addr.addr;

    // A client that trusts another CA never gets to send anything.
    let other = TestPki::generate(&dir.path().join("other"), "Other CA", &["srs.test"]).unwrap();
    let e = TestSrc::new_tls(
        addr,
        "srs.test",
        other.client().unwrap(),
        (0, 440.0),
        (8, 880.0),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("TLS handshake"), "{e}");
    // Nor does one that expects another name.
    let e = TestSrc::new_tls(
        addr,
        "other.test",
        pki.client().unwrap(),
        (0, 440.0),
        (8, 880.0),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("TLS handshake"), "{e}");

    let mut src = TestSrc::new_tls(
        addr,
        "srs.test",
        pki.client().unwrap(),
        (0, 440.0),
        (8, 880.0),
    )
    .await
    .unwrap();
    let rec_id = "REC-e2e-tls";
    let offer = src.offer("sendonly");
    let md = src.metadata(Some(rec_id));
    let resp = src.invite(&offer, Some(&md)).await.unwrap();
    let answered = Instant::now();
    assert_eq!(resp.status_code.code(), 200, "{resp}");
    let contact = resp.contact_header().unwrap().to_string();
    assert!(contact.contains("+sip.srs"), "{contact}");
    assert!(
        contact.contains("sips:") && contact.contains("transport=tls"),
        "TLS dialog Contact: {contact}"
    );
    assert!(src.legs.iter().all(|l| l.dest.is_some()));

    // 2 s of audio, 1 s pause, 2 s of audio, BYE: every request over the one TLS connection.
    src.stream(Duration::from_millis(2000)).await.unwrap();
    let pause = src.offer("inactive");
    let resp = src.invite(&pause, None).await.unwrap();
    assert_eq!(resp.status_code.code(), 200);
    let paused_at = Instant::now();
    tokio::time::sleep_until((paused_at + Duration::from_secs(1)).into()).await;
    for leg in &mut src.legs {
        leg.skip(paused_at.elapsed());
    }
    let resume = src.offer("sendonly");
    let resp = src.invite(&resume, None).await.unwrap();
    assert_eq!(resp.status_code.code(), 200);
    src.stream(Duration::from_millis(2000)).await.unwrap();
    let resp = src.send_in_dialog("BYE", None, None).await.unwrap();
    assert_eq!(resp.status_code.code(), 200);
    let session_len = answered.elapsed().as_secs_f64();

    let rec = tokio::time::timeout(Duration::from_secs(15), published.recv())
        .await
        .expect("recording published in time")
        .unwrap();
    let m = &rec.manifest;
    assert_eq!(m.recording_key, rec_id);
    assert_eq!(m.call_id, src.call_id);
    assert_eq!(m.ended_by, "bye-from-src");
    assert!(m.complete);
    for s in &m.streams {
        assert_eq!(s.packets_received, 200, "{s:?}");
        assert_eq!(s.packets_lost, 0, "{s:?}");
    }

    let (spec, samples) = read_wav(&server, &rec.folder).await.unwrap();
    assert_eq!(spec.channels, 2);
    assert_eq!(spec.sample_rate, 8000);
    let (left, right) = deinterleave(&samples);
    assert_eq!(left.len(), right.len());
    let secs = left.len() as f64 / RATE;
    assert!(
        (secs - session_len).abs() < 0.020,
        "WAV {secs:.3} s vs session {session_len:.3} s"
    );
    assert_tone(window(&left, 0.2, 1.8), 440.0, 880.0, "left before pause");
    assert_tone(window(&right, 0.2, 1.8), 880.0, 440.0, "right before pause");
    assert_tone(window(&left, 3.2, 4.8), 440.0, 880.0, "left after resume");
    assert_tone(window(&right, 3.2, 4.8), 880.0, 440.0, "right after resume");
    assert_eq!(m.pauses.len(), 1, "{:?}", m.pauses);
    let p = &m.pauses[0];
    assert!(
        (p.start - 2.0).abs() < 0.1 && (p.end - p.start - 1.0).abs() < 0.1,
        "{p:?}"
    );
    assert_eq!(peak(window(&left, p.start + 0.03, p.end - 0.03)), 0);
    assert_eq!(peak(window(&right, p.start + 0.03, p.end - 0.03)), 0);

    server.shutdown().await.unwrap();
}

/// Mutual TLS (`tls_client_ca`): a client without a certificate, or with one from another
/// CA, records nothing; one with a certificate from the configured CA records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_requires_a_client_certificate_from_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(&dir.path().join("tls"), "mTLS CA", &["srs.test"]).unwrap();
    let other = TestPki::generate(&dir.path().join("other"), "Other CA", &["srs.test"]).unwrap();
    let cfg = srs_server::Config {
        listen: vec!["tls:127.0.0.1:0".into()],
        tls_cert: Some(pki.cert_file.clone()),
        tls_key: Some(pki.key_file.clone()),
        tls_client_ca: Some(pki.ca_file.clone()),
        rtp_ports: "37000-37199".into(),
        storage: dir.path().join("recordings").display().to_string(),
        spool: dir.path().join("spool"),
        media_timeout: 10,
        ..srs_server::Config::default()
    };
    let server = srs_server::Server::start(cfg.validate().unwrap())
        .await
        .unwrap();
    let mut published = server.subscribe();
    let addr = server.local_addrs()[0].addr;

    // No certificate, then a certificate the SRS's CA did not sign: no INVITE gets through
    // (TLS 1.3 finishes the client's side of the handshake before the server checks the
    // certificate, so the refusal shows as a dead connection).
    // Trusts the SRS's CA but presents a certificate from another CA.
    let foreign = siprec_sip_tokio::TlsClient::new(Some(&pki.ca_file))
        .unwrap()
        .with_client_cert(&other.client_cert_file, &other.client_key_file)
        .unwrap();
    for client in [pki.client().unwrap(), foreign] {
        let refused = match TestSrc::new_tls(addr, "srs.test", client, (0, 440.0), (8, 880.0)).await
        {
            Err(e) => e.to_string(),
            Ok(mut src) => {
                let offer = src.offer("sendonly");
                let md = src.metadata(None);
                match src.invite(&offer, Some(&md)).await {
                    Ok(r) => panic!("INVITE answered {r}"),
                    Err(e) => e.to_string(),
                }
            }
        };
        assert!(!refused.is_empty());
    }

    let mut src = TestSrc::new_tls(
        addr,
        "srs.test",
        pki.client_with_cert().unwrap(),
        (0, 440.0),
        (8, 880.0),
    )
    .await
    .unwrap();
    src.start(Some("mtls-call")).await;
    src.stream(Duration::from_millis(500)).await.unwrap();
    src.hang_up().await;
    let rec = interop_tests::next_recording(&mut published).await;
    assert_eq!(rec.manifest.recording_id.as_deref(), Some("mtls-call"));
    assert!(rec
        .manifest
        .streams
        .iter()
        .all(|s| s.packets_received >= 24));
    server.shutdown().await.unwrap();
}

/// SRTP (SDES) over TLS: both suites recorded and decrypted (tones on the right channels), a
/// packet with a bad authentication tag dropped and counted; with `srtp = "required"` a
/// plain RTP offer gets 488.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srtp_over_tls_is_decrypted_and_bad_tags_are_counted() {
    use siprec_rtp::srtp::SrtpSuite;
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(&dir.path().join("tls"), "SRTP CA", &["srs.test"]).unwrap();
    let cfg = srs_server::Config {
        listen: vec!["tls:127.0.0.1:0".into()],
        tls_cert: Some(pki.cert_file.clone()),
        tls_key: Some(pki.key_file.clone()),
        rtp_ports: "37500-37699".into(),
        storage: dir.path().join("recordings").display().to_string(),
        spool: dir.path().join("spool"),
        srtp: "required".into(),
        ..srs_server::Config::default()
    };
    let server = srs_server::Server::start(cfg.validate().unwrap())
        .await
        .unwrap();
    let mut published = server.subscribe();
    let addr = server.local_addrs()[0].addr;

    // Plain RTP to a recorder that requires SRTP: 488.
    let mut plain = TestSrc::new_tls(
        addr,
        "srs.test",
        pki.client().unwrap(),
        (0, 440.0),
        (8, 880.0),
    )
    .await
    .unwrap();
    let offer = plain.offer("sendonly");
    let md = plain.metadata(None);
    assert_eq!(
        plain
            .invite(&offer, Some(&md))
            .await
            .unwrap()
            .status_code
            .code(),
        488
    );

    let mut src = TestSrc::new_tls(
        addr,
        "srs.test",
        pki.client().unwrap(),
        (0, 440.0),
        (8, 880.0),
    )
    .await
    .unwrap();
    src.legs[0]
        .enable_srtp(SrtpSuite::AesCm128HmacSha1_80)
        .unwrap();
    src.legs[1]
        .enable_srtp(SrtpSuite::AesCm128HmacSha1_32)
        .unwrap();
    let offer = src.offer("sendonly");
    let md = src.metadata(Some("srtp-call"));
    let r = src.invite(&offer, Some(&md)).await.unwrap();
    assert_eq!(r.status_code.code(), 200);
    let answer = String::from_utf8_lossy(&r.body).to_string();
    assert_eq!(answer.matches("RTP/SAVP").count(), 2, "{answer}");
    assert!(
        answer.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"),
        "{answer}"
    );
    assert!(
        answer.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:"),
        "{answer}"
    );
    // The caller's sequence numbers wrap 36 packets in; a pause and a resume (re-INVITEs
    // with the same keys) follow: the SRS must keep its SRTP context (rollover counter),
    // or every packet after the resume fails authentication.
    src.legs[0].set_sequence(65_500);
    src.stream(Duration::from_millis(1000)).await.unwrap();
    for _ in 0..5 {
        src.legs[0].send_corrupt_frame().await.unwrap();
    }
    let paused = src.offer("inactive");
    assert_eq!(
        src.invite(&paused, None).await.unwrap().status_code.code(),
        200
    );
    let resumed = src.offer("sendonly");
    assert_eq!(
        src.invite(&resumed, None).await.unwrap().status_code.code(),
        200
    );
    src.stream(Duration::from_millis(1000)).await.unwrap();
    src.hang_up().await;
    let rec = interop_tests::next_recording(&mut published).await;
    let m = &rec.manifest;
    assert!(m.streams.iter().all(|s| s.srtp), "{:?}", m.streams);
    assert_eq!(m.streams[0].packets_auth_failed, 5, "{:?}", m.streams[0]);
    assert_eq!(m.streams[0].packets_received, 100, "{:?}", m.streams[0]);
    assert_eq!(m.streams[1].packets_auth_failed, 0);
    assert_eq!(m.streams[1].packets_received, 100);
    let (_, samples) = read_wav(&server, &rec.folder).await.unwrap();
    let (l, r) = deinterleave(&samples);
    // Decrypted audio: the tones, not noise.
    assert_tone(window(&l, 0.2, 0.9), 440.0, 880.0, "left (SRTP 80)");
    assert_tone(window(&r, 0.2, 0.9), 880.0, 440.0, "right (SRTP 32)");
    server.shutdown().await.unwrap();
}
