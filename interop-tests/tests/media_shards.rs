//! srs-server's media threads: calls spread over several threads (epoll), and the timed sweep
//! (`--media-sweep-ms`), each recorded whole: every packet counted, each tone on its channel.

use std::time::Duration;

use interop_tests::audio::{assert_tone, deinterleave, window};
use interop_tests::{next_recording, read_wav, TestSrc, TestTransport};

async fn server(
    dir: &std::path::Path,
    rtp_base: u16,
    threads: usize,
    sweep_ms: u64,
) -> srs_server::Server {
    let cfg = srs_server::Config {
        listen: vec!["udp:127.0.0.1:0".into()],
        rtp_ports: format!("{}-{}", rtp_base, rtp_base + 199),
        storage: dir.join("recordings").display().to_string(),
        spool: dir.join("spool"),
        media_timeout: 10,
        media_threads: threads,
        media_sweep_ms: sweep_ms,
        ..srs_server::Config::default()
    };
    srs_server::Server::start(cfg.validate().unwrap())
        .await
        .unwrap()
}

/// `calls` concurrent calls of 2 s each; every recording has 100 packets per stream and its
/// tones on the right channels.
async fn record(server: &srs_server::Server, calls: usize) {
    let addr = server.local_addrs()[0].addr;
    let mut published = server.subscribe();
    let mut tasks = Vec::new();
    for i in 0..calls {
        tasks.push(tokio::spawn(async move {
            let mut src = TestSrc::new(TestTransport::Udp, addr, (0, 440.0), (0, 880.0))
                .await
                .unwrap();
            let offer = src.offer("sendonly");
            let md = src.metadata(Some(&format!("REC-shard-{i}")));
            let r = src.invite(&offer, Some(&md)).await.unwrap();
            assert_eq!(r.status_code.code(), 200);
            src.stream(Duration::from_secs(2)).await.unwrap();
            let r = src.send_in_dialog("BYE", None, None).await.unwrap();
            assert_eq!(r.status_code.code(), 200);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for _ in 0..calls {
        let rec = next_recording(&mut published).await;
        let m = &rec.manifest;
        assert!(m.complete);
        for s in &m.streams {
            assert_eq!(s.packets_received, 100, "{}: {s:?}", m.recording_key);
            assert_eq!(s.packets_lost + s.packets_late, 0, "{s:?}");
        }
        let (_, samples) = read_wav(server, &rec.folder).await.unwrap();
        let (left, right) = deinterleave(&samples);
        assert_tone(window(&left, 0.2, 1.8), 440.0, 880.0, "left");
        assert_tone(window(&right, 0.2, 1.8), 880.0, 440.0, "right");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_spread_over_three_media_threads_are_recorded_whole() {
    let dir = tempfile::tempdir().unwrap();
    let srs = server(dir.path(), 39200, 3, 0).await;
    record(&srs, 4).await;
    srs.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_sweep_records_every_packet() {
    let dir = tempfile::tempdir().unwrap();
    let srs = server(dir.path(), 39400, 1, 20).await;
    record(&srs, 2).await;
    srs.shutdown().await.unwrap();
}
