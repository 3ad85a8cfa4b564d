//! End to end: siprec-client's `Recorder` records one call in parallel on two srs-server
//! instances, with a pause and a resume, over UDP and over TCP. Both stored recordings are
//! checked: key = Recording ID, tones on the right channels, silence during the pause.

use std::time::Duration;

use interop_tests::audio::{assert_tone, deinterleave, peak, window};
use interop_tests::{read_wav, start_srs};
use siprec_client::core::{LOG_ESTABLISHED, LOG_SRS_PAUSED, LOG_SRS_RESUMED, LOG_SRS_STOPPED};
use siprec_client::{CallContext, ClientConfig, ClientEvent, Recorder, Reply, Silence, ToneSource};
use siprec_sip::transaction::Transport;

const RATE: f64 = 8000.0;

fn addr(s: &srs_server::Server, t: Transport) -> std::net::SocketAddr {
    s.local_addrs()
        .iter()
        .find(|l| l.transport == t)
        .expect("listener")
        .addr
}

async fn record_on_two_servers(transport: Transport, rtp1: u16, rtp2: u16) {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let s1 = start_srs(d1.path(), rtp1).await.unwrap();
    let s2 = start_srs(d2.path(), rtp2).await.unwrap();
    let (mut p1, mut p2) = (s1.subscribe(), s2.subscribe());
    let t = transport.as_str().to_ascii_lowercase();
    // Spaces around the comma on purpose: entries are trimmed.
    let server = format!(
        "sip:{};transport={t} ,  sip:{};transport={t}",
        addr(&s1, transport),
        addr(&s2, transport)
    );
    let rec_id = format!("REC-client-{t}");
    let rec = Recorder::new(
        ClientConfig::default(),
        CallContext::example(),
        Box::new(ToneSource::new(440.0, 8000.0)),
        Box::new(ToneSource::new(880.0, 8000.0)),
    )
    .await
    .unwrap();
    let mut news = rec.subscribe();

    let out = rec.start(&server, Some(&rec_id)).await.unwrap();
    assert_eq!(out.reply, Reply::Started, "{out:?}");
    // Both SRSs connect (the second may answer just after the start was answered: then its
    // line comes as news).
    let mut established = out.srs.iter().filter(|r| r.line == LOG_ESTABLISHED).count();
    while established < 2 {
        let ev = tokio::time::timeout(Duration::from_secs(5), news.recv())
            .await
            .expect("both SRSs connect")
            .unwrap();
        if let ClientEvent::Srs(r) = ev {
            assert_eq!(r.line, LOG_ESTABLISHED, "{r:?}");
            assert_eq!(r.status, Some(200));
            established += 1;
        }
    }

    // 2.5 s of audio, 1 s paused, 2.5 s of audio.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let out = rec.pause().await.unwrap();
    assert_eq!(out.reply, Reply::Paused, "{out:?}");
    assert_eq!(out.srs.len(), 2);
    assert!(out
        .srs
        .iter()
        .all(|r| r.ok && r.line == LOG_SRS_PAUSED && r.status == Some(200)));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let out = rec.resume().await.unwrap();
    assert_eq!(out.reply, Reply::Resumed, "{out:?}");
    assert!(out.srs.iter().all(|r| r.ok && r.line == LOG_SRS_RESUMED));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let stats = rec.media_stats().await;
    assert_eq!(stats.len(), 4, "two legs to each of two SRSs: {stats:?}");
    let out = rec.stop().await.unwrap();
    assert_eq!(out.reply, Reply::Stopped, "{out:?}");
    assert_eq!(out.srs.len(), 2);
    assert!(
        out.srs
            .iter()
            .all(|r| r.ok && r.line == LOG_SRS_STOPPED && r.status == Some(200)),
        "{out:?}"
    );
    // Stop again: the contract's 400.
    assert_eq!(rec.stop().await.unwrap().reply, Reply::NotRecording);
    rec.close().await.unwrap();

    for (server, published) in [(&s1, &mut p1), (&s2, &mut p2)] {
        let got = tokio::time::timeout(Duration::from_secs(15), published.recv())
            .await
            .expect("recording published in time")
            .unwrap();
        let m = &got.manifest;
        assert_eq!(m.recording_key, rec_id);
        assert_eq!(m.recording_key_source, "recording_id");
        assert_eq!(m.ended_by, "bye-from-src");
        assert_eq!(m.participants.len(), 2);
        assert_eq!(m.participants[0].name.as_deref(), Some("Alice"));
        assert_eq!(
            m.participants[1].aor.as_deref(),
            Some("sip:bob@example.com")
        );
        assert!(
            m.channels.reason.starts_with("participantstreamassoc"),
            "{}",
            m.channels.reason
        );
        assert!(m.metadata_errors.is_empty(), "{:?}", m.metadata_errors);
        // Initial document + the pause and resume partial documents.
        assert_eq!(m.metadata_documents.len(), 3, "{:?}", m.metadata_documents);
        for s in &m.streams {
            assert_eq!(s.codecs, vec!["PCMU/8000".to_string()]);
            assert!(
                (240..=255).contains(&s.packets_received),
                "5 s of 20 ms packets: {s:?}"
            );
            assert_eq!(s.packets_lost, 0, "{s:?}");
        }

        let (spec, samples) = read_wav(server, &got.folder).await.unwrap();
        assert_eq!((spec.channels, spec.sample_rate), (2, 8000));
        let (left, right) = deinterleave(&samples);
        let secs = left.len() as f64 / RATE;
        assert!(
            (secs - 6.0).abs() < 0.3,
            "WAV {secs:.3} s, expected about 6 s"
        );
        assert_tone(
            window(&left, 0.3, 2.3),
            440.0,
            880.0,
            "left before the pause",
        );
        assert_tone(
            window(&right, 0.3, 2.3),
            880.0,
            440.0,
            "right before the pause",
        );
        assert_tone(
            window(&left, 3.9, 5.7),
            440.0,
            880.0,
            "left after the resume",
        );
        assert_tone(
            window(&right, 3.9, 5.7),
            880.0,
            440.0,
            "right after the resume",
        );
        assert_eq!(m.pauses.len(), 1, "{:?}", m.pauses);
        let p = &m.pauses[0];
        assert!(
            (p.start - 2.5).abs() < 0.2 && (p.end - p.start - 1.0).abs() < 0.2,
            "{p:?}"
        );
        assert_eq!(peak(window(&left, p.start + 0.05, p.end - 0.05)), 0);
        assert_eq!(peak(window(&right, p.start + 0.05, p.end - 0.05)), 0);
    }
    s1.shutdown().await.unwrap();
    s2.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_call_recorded_on_two_servers_with_pause() {
    record_on_two_servers(Transport::Udp, 32000, 32400).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_call_recorded_on_two_servers_with_pause() {
    record_on_two_servers(Transport::Tcp, 32800, 33200).await;
}

/// One SRS down (TCP connection refused) and one up: the start succeeds on the live one; a
/// start timeout against a silent UDP SRS is the contract's 400; a failed start never makes
/// the next start a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_and_silent_servers_follow_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let srs = start_srs(dir.path(), 33600).await.unwrap();
    let mut published = srs.subscribe();
    // A bound UDP socket that never answers, and a TCP port nobody listens on.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let rec = Recorder::new(
        ClientConfig::default(),
        CallContext::example(),
        Box::new(ToneSource::new(440.0, 8000.0)),
        Box::new(Silence),
    )
    .await
    .unwrap();

    let started = std::time::Instant::now();
    let out = rec
        .start(&format!("sip:{silent_addr};transport=udp"), None)
        .await
        .unwrap();
    assert_eq!(out.reply, Reply::NoResponse, "{out:?}");
    assert_eq!(
        out.reply.log_line(),
        "No response from SipRec server, return error to feature server"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1900) && waited < Duration::from_millis(3000),
        "{waited:?}"
    );

    let out = rec
        .start(&format!("sip:{closed};transport=tcp"), None)
        .await
        .unwrap();
    assert_eq!(out.reply, Reply::StartFailed, "{out:?}");
    assert!(out.reason.as_deref().unwrap().contains(&closed.to_string()));

    let live = addr(&srs, Transport::Tcp);
    let out = rec
        .start(
            &format!("sip:{closed};transport=tcp,sip:{live};transport=tcp"),
            Some("after-failures"),
        )
        .await
        .unwrap();
    assert_eq!(out.reply, Reply::Started, "{out:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let out = rec.stop().await.unwrap();
    assert_eq!(out.reply, Reply::Stopped);
    rec.close().await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(15), published.recv())
        .await
        .expect("published")
        .unwrap();
    assert_eq!(got.manifest.recording_key, "after-failures");
    drop(silent);
    srs.shutdown().await.unwrap();
}
