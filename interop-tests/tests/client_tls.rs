//! siprec-client over TLS (`sips:`): two srs-server instances with `tls:` listeners (a CA and
//! certificate made here with rcgen) record one call in parallel with a pause; a client that
//! does not trust the CA gets the contract's 503 naming the failed handshake.

use std::time::Duration;

use interop_tests::audio::{deinterleave, peak, tone_power};
use interop_tests::read_wav;
use interop_tests::tls::TestPki;
use siprec_client::core::LOG_SRS_STOPPED;
use siprec_client::{CallContext, ClientConfig, Recorder, Reply, ToneSource};
use siprec_sip::transaction::Transport;

async fn tls_server(dir: &std::path::Path, pki: &TestPki, rtp: &str) -> srs_server::Server {
    let cfg = srs_server::Config {
        listen: vec!["tls:127.0.0.1:0".into()],
        tls_cert: Some(pki.cert_file.clone()),
        tls_key: Some(pki.key_file.clone()),
        rtp_ports: rtp.into(),
        storage: dir.join("recordings").display().to_string(),
        spool: dir.join("spool"),
        media_timeout: 10,
        ..srs_server::Config::default()
    };
    srs_server::Server::start(cfg.validate().unwrap())
        .await
        .unwrap()
}

fn tls_addr(s: &srs_server::Server) -> std::net::SocketAddr {
    s.local_addrs()
        .iter()
        .find(|l| l.transport == Transport::Tls)
        .unwrap()
        .addr
}

fn recorder_config(ca: Option<std::path::PathBuf>) -> ClientConfig {
    ClientConfig {
        ca_file: ca,
        ..ClientConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sips_call_recorded_on_two_servers_with_pause() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(&dir.path().join("pki"), "client test CA", &["127.0.0.1"]).unwrap();
    let s1 = tls_server(&dir.path().join("a"), &pki, "34400-34499").await;
    let s2 = tls_server(&dir.path().join("b"), &pki, "34500-34599").await;
    let (mut p1, mut p2) = (s1.subscribe(), s2.subscribe());
    let server = format!("sips:{}, sips:{}", tls_addr(&s1), tls_addr(&s2));

    let rec = Recorder::new(
        recorder_config(Some(pki.ca_file.clone())),
        CallContext::example(),
        Box::new(ToneSource::new(440.0, 8000.0)),
        Box::new(ToneSource::new(880.0, 8000.0)),
    )
    .await
    .unwrap();
    let out = rec.start(&server, Some("REC-client-tls")).await.unwrap();
    assert_eq!(out.reply, Reply::Started, "{out:?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rec.pause().await.unwrap().reply, Reply::Paused);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(rec.resume().await.unwrap().reply, Reply::Resumed);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let out = rec.stop().await.unwrap();
    assert_eq!(out.reply, Reply::Stopped);
    assert_eq!(
        out.srs
            .iter()
            .filter(|r| r.ok && r.line == LOG_SRS_STOPPED)
            .count(),
        2,
        "{out:?}"
    );
    rec.close().await.unwrap();

    for (server, published) in [(&s1, &mut p1), (&s2, &mut p2)] {
        let got = tokio::time::timeout(Duration::from_secs(15), published.recv())
            .await
            .expect("published")
            .unwrap();
        let m = &got.manifest;
        assert_eq!(m.recording_key, "REC-client-tls");
        // sips: → SRTP by default: the SRS decrypted every packet (the tones below prove it).
        for s in &m.streams {
            assert!(s.srtp && s.packets_auth_failed == 0, "{s:?}");
            assert!(s.packets_received > 100, "{s:?}");
        }
        assert_eq!(m.pauses.len(), 1, "{:?}", m.pauses);
        let (_, samples) = read_wav(server, &got.folder).await.unwrap();
        let (left, right) = deinterleave(&samples);
        let l = &left[2400..11_200];
        let r = &right[2400..11_200];
        assert!(tone_power(l, 8000, 440.0) > 100.0 * tone_power(l, 8000, 880.0));
        assert!(tone_power(r, 8000, 880.0) > 100.0 * tone_power(r, 8000, 440.0));
        let p = &m.pauses[0];
        let a = ((p.start + 0.05) * 8000.0) as usize;
        let b = ((p.end - 0.05) * 8000.0) as usize;
        assert_eq!(peak(&left[a..b]), 0);
        assert_eq!(peak(&right[a..b]), 0);
    }
    s1.shutdown().await.unwrap();
    s2.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_srs_certificate_fails_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(&dir.path().join("pki"), "client test CA", &["127.0.0.1"]).unwrap();
    let other = TestPki::generate(&dir.path().join("other"), "another CA", &["127.0.0.1"]).unwrap();
    let srs = tls_server(&dir.path().join("a"), &pki, "34600-34699").await;
    let rec = Recorder::new(
        recorder_config(Some(other.ca_file.clone())),
        CallContext::example(),
        Box::new(ToneSource::new(440.0, 8000.0)),
        Box::new(ToneSource::new(880.0, 8000.0)),
    )
    .await
    .unwrap();
    let out = rec
        .start(&format!("sips:{}", tls_addr(&srs)), None)
        .await
        .unwrap();
    assert_eq!(out.reply, Reply::StartFailed, "{out:?}");
    let reason = out.reason.unwrap();
    assert!(reason.contains("TLS handshake"), "{reason}");
    rec.close().await.unwrap();
    srs.shutdown().await.unwrap();
}
