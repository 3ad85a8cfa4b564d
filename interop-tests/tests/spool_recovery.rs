//! Nothing is lost: srs-server killed with SIGKILL in the middle of a call publishes the
//! partial recording at its next start; SIGTERM ends live calls after the grace period and
//! exits 0 with everything published; a full spool refuses new calls with 503.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use interop_tests::audio::{deinterleave, tone_power};
use interop_tests::process::{free_port, SrsProcess};
use interop_tests::{TestSrc, TestTransport};
use siprec_storage::Manifest;

fn args(dir: &Path, port: u16, rtp: &str, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "--listen",
        &format!("udp:127.0.0.1:{port}"),
        "--listen",
        &format!("tcp:127.0.0.1:{port}"),
        "--rtp-ports",
        rtp,
        "--storage",
        &dir.join("recordings").display().to_string(),
        "--spool",
        &dir.join("spool").display().to_string(),
        "--instance-id",
        "srs-test",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// Every `recording.json` under a local store, with its folder.
fn manifests(root: &Path) -> Vec<(PathBuf, Manifest)> {
    fn walk(p: &Path, out: &mut Vec<(PathBuf, Manifest)>) {
        let Ok(rd) = std::fs::read_dir(p) else { return };
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.file_name().is_some_and(|n| n == "recording.json") {
                let m = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                out.push((path.parent().unwrap().to_path_buf(), m));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, &mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_call_then_restart_publishes_the_partial_recording() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let a = args(dir.path(), port, "36000-36099", &[]);
    let srs = SrsProcess::spawn(&a, &[]).await.unwrap();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut src = TestSrc::new(TestTransport::Tcp, addr, (0, 440.0), (8, 880.0))
        .await
        .unwrap();
    let offer = src.offer("sendonly");
    let md = src.metadata(Some("REC-killed"));
    let resp = src.invite(&offer, Some(&md)).await.unwrap();
    assert_eq!(resp.status_code.code(), 200, "{resp}");
    let answered = Instant::now();
    src.stream(Duration::from_millis(2500)).await.unwrap();
    let sent = answered.elapsed().as_secs_f64();
    srs.kill9().await.unwrap();
    assert!(
        manifests(&dir.path().join("recordings")).is_empty(),
        "nothing is published by a killed process"
    );

    // Restart on the same spool: the recording is recovered and published.
    let mut srs = SrsProcess::spawn(&a, &[]).await.unwrap();
    srs.wait_for_log("recording stored", Duration::from_secs(20))
        .await
        .unwrap();
    let found = manifests(&dir.path().join("recordings"));
    assert_eq!(found.len(), 1, "{found:?}");
    let (folder, m) = &found[0];
    assert!(folder.ends_with("REC-killed"), "{folder:?}");
    assert!(!m.complete);
    assert_eq!(m.ended_by, "recovered");
    assert_eq!(m.call_id, src.call_id);
    assert_eq!(m.instance_id, "srs-test");
    assert_eq!(m.participants.len(), 2, "metadata survived the crash");
    assert_eq!(m.metadata_documents, vec!["metadata/0001.xml".to_string()]);
    assert!(folder.join("metadata/0001.xml").is_file());
    // The WAV header is valid and agrees with the data; the audio runs to the kill.
    let mut r = hound::WavReader::open(folder.join("audio.wav")).unwrap();
    let samples: Vec<i16> = r.samples::<i16>().map(|s| s.unwrap()).collect();
    let (left, right) = deinterleave(&samples);
    assert_eq!(left.len() as u64, m.duration_samples);
    let secs = left.len() as f64 / 8000.0;
    assert!(
        secs <= sent + 0.02 && secs >= sent - 0.1,
        "recovered {secs:.3} s of audio, {sent:.3} s sent before the kill"
    );
    let mid = |ch: &[i16]| ch[4000..16000].to_vec();
    let (l, rr) = (mid(&left), mid(&right));
    assert!(tone_power(&l, 8000, 440.0) > 100.0 * tone_power(&l, 8000, 880.0));
    assert!(tone_power(&rr, 8000, 880.0) > 100.0 * tone_power(&rr, 8000, 440.0));
    // The spool is empty once storage has it.
    let left_over: Vec<_> = std::fs::read_dir(dir.path().join("spool"))
        .unwrap()
        .flatten()
        .collect();
    assert!(left_over.is_empty(), "{left_over:?}");
    srs.sigterm().unwrap();
    assert_eq!(
        srs.wait_exit(Duration::from_secs(20)).await.unwrap(),
        Some(0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_refuses_new_calls_ends_live_ones_after_the_grace_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let a = args(dir.path(), port, "36100-36199", &["--shutdown-grace", "2"]);
    let mut srs = SrsProcess::spawn(&a, &[]).await.unwrap();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut live = TestSrc::new(TestTransport::Udp, addr, (0, 440.0), (8, 880.0))
        .await
        .unwrap();
    let offer = live.offer("sendonly");
    let md = live.metadata(Some("REC-term"));
    assert_eq!(
        live.invite(&offer, Some(&md))
            .await
            .unwrap()
            .status_code
            .code(),
        200
    );
    live.stream(Duration::from_millis(500)).await.unwrap();
    srs.sigterm().unwrap();
    srs.wait_for_log("shutting down", Duration::from_secs(5))
        .await
        .unwrap();

    // During the grace period: a new call is refused, the live one goes on.
    let mut late = TestSrc::new(TestTransport::Udp, addr, (0, 440.0), (8, 880.0))
        .await
        .unwrap();
    let offer2 = late.offer("sendonly");
    let resp = late.invite(&offer2, Some(&md)).await.unwrap();
    assert_eq!(resp.status_code.code(), 503, "{resp}");
    assert!(resp
        .headers
        .iter()
        .any(|h| h.to_string().starts_with("Retry-After")));
    live.stream(Duration::from_millis(500)).await.unwrap();

    // When the grace period ends, the SRS sends BYE.
    let bye = live.wait_request(Duration::from_secs(5)).await.unwrap();
    assert_eq!(bye.method.to_string(), "BYE");
    assert_eq!(
        srs.wait_exit(Duration::from_secs(20)).await.unwrap(),
        Some(0)
    );
    let found = manifests(&dir.path().join("recordings"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].1.ended_by, "shutdown");
    assert!(found[0].1.complete);
    assert!(
        found[0].1.duration_seconds > 1.5,
        "{}",
        found[0].1.duration_seconds
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_refuses_new_calls_with_503_until_it_drains() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    // 2 MiB already waiting in the spool, limit 1 MiB.
    std::fs::create_dir_all(spool.join("ballast")).unwrap();
    std::fs::write(spool.join("ballast/data"), vec![0u8; 2 << 20]).unwrap();
    let cfg = srs_server::Config {
        listen: vec!["udp:127.0.0.1:0".into()],
        rtp_ports: "36200-36299".into(),
        storage: dir.path().join("recordings").display().to_string(),
        spool: spool.clone(),
        spool_max_mb: 1,
        ..srs_server::Config::default()
    };
    let server = srs_server::Server::start(cfg.validate().unwrap())
        .await
        .unwrap();
    let addr = server.local_addrs()[0].addr;
    let mut src = TestSrc::new(TestTransport::Udp, addr, (0, 440.0), (8, 880.0))
        .await
        .unwrap();
    let offer = src.offer("sendonly");
    let md = src.metadata(None);
    let resp = src.invite(&offer, Some(&md)).await.unwrap();
    assert_eq!(resp.status_code.code(), 503, "{resp}");
    assert!(resp
        .headers
        .iter()
        .any(|h| h.to_string().starts_with("Retry-After")));

    // Space freed: within the next spool check (every second) calls are accepted again.
    std::fs::remove_dir_all(spool.join("ballast")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut src = TestSrc::new(TestTransport::Udp, addr, (0, 440.0), (8, 880.0))
            .await
            .unwrap();
        let offer = src.offer("sendonly");
        let code = src
            .invite(&offer, Some(&md))
            .await
            .unwrap()
            .status_code
            .code();
        if code == 200 {
            src.send_in_dialog("BYE", None, None).await.unwrap();
            break;
        }
        assert_eq!(code, 503);
        assert!(
            Instant::now() < deadline,
            "still refused 5 s after the spool drained"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    server.shutdown().await.unwrap();
}
