//! IPv6 end to end: srs-server listening on `udp:[::1]:PORT` and `tcp:[::1]:PORT` records a
//! call from the `siprec-client record` binary given `--server 'sip:[::1]:PORT'` (UDP) and
//! `'sip:[::1]:PORT;transport=tcp'`: SIP over IPv6 (IPv6 Request-URI, Via sent-by, Contact),
//! SDP with `c=IN IP6 ::1` and RTP between sockets bound on `::1`. Each stored recording has
//! the caller's tone on the left channel and the callee's on the right.

use std::path::{Path, PathBuf};
use std::time::Duration;

use interop_tests::audio::{assert_tone, deinterleave, window};
use interop_tests::process::{workspace_bin, SrsProcess};

/// A port free on `[::1]` for both UDP and TCP (best effort: bound, then released).
fn free_v6_port() -> u16 {
    loop {
        let t = std::net::TcpListener::bind("[::1]:0").expect("bind [::1]");
        let port = t.local_addr().expect("addr").port();
        if std::net::UdpSocket::bind(("::1", port)).is_ok() {
            return port;
        }
    }
}

/// The folder of the stored recording `key` under a local store (`YYYY/MM/DD/key`).
fn stored(root: &Path, key: &str) -> Option<PathBuf> {
    let rd = std::fs::read_dir(root).ok()?;
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == key) && p.join("recording.json").is_file() {
                return Some(p);
            }
            if let Some(found) = stored(&p, key) {
                return Some(found);
            }
        }
    }
    None
}

/// Runs `siprec-client record --server SERVER` for 2 s; asserts it exits 0 having stopped
/// cleanly.
async fn record(server: &str, key: &str) {
    let bin = workspace_bin("siprec-client").unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(&bin)
            .args(["record", "--server", server])
            .args(["--recording-id", key, "--duration", "2s"])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("siprec-client record did not finish within 30 s")
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}\n{err}");
    assert!(
        text.contains(&format!("stopped cleanly on {server}")),
        "{text}\n{err}"
    );
}

/// Left channel 440 Hz (caller), right channel 880 Hz (callee), as `record` sends by default.
fn assert_both_channels(folder: &Path) {
    let mut r = hound::WavReader::open(folder.join("audio.wav")).unwrap();
    assert_eq!(r.spec().channels, 2);
    let samples: Vec<i16> = r.samples::<i16>().map(|s| s.unwrap()).collect();
    let (left, right) = deinterleave(&samples);
    assert!(left.len() >= 12_000, "{} samples per channel", left.len());
    assert_tone(window(&left, 0.3, 1.5), 440.0, 880.0, "left (caller)");
    assert_tone(window(&right, 0.3, 1.5), 880.0, 440.0, "right (callee)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srs_on_ipv6_records_a_call_from_siprec_client_over_udp_and_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_v6_port();
    let store = dir.path().join("recordings");
    let args: Vec<String> = vec![
        "--listen".to_string(),
        format!("udp:[::1]:{port}"),
        "--listen".to_string(),
        format!("tcp:[::1]:{port}"),
        "--rtp-ports".to_string(),
        "38300-38399".to_string(),
        "--storage".to_string(),
        store.display().to_string(),
        "--spool".to_string(),
        dir.path().join("spool").display().to_string(),
    ];
    let mut srs = SrsProcess::spawn(&args, &[]).await.unwrap();

    for (n, (server, key)) in [
        (format!("sip:[::1]:{port}"), "v6-udp"),
        (format!("sip:[::1]:{port};transport=tcp"), "v6-tcp"),
    ]
    .iter()
    .enumerate()
    {
        record(server, key).await;
        srs.wait_for_count("recording stored", n + 1, Duration::from_secs(20))
            .await
            .unwrap();
        let folder = stored(&store, key).unwrap_or_else(|| panic!("no stored {key}"));
        assert_both_channels(&folder);
    }
    // The calls came over IPv6: the SRS saw the client at [::1].
    let accepted: Vec<&String> = srs
        .log
        .iter()
        .filter(|l| l.contains("recording session accepted"))
        .collect();
    assert_eq!(accepted.len(), 2, "{:#?}", srs.log);
    assert!(
        accepted.iter().all(|l| l.contains("peer=[::1]:")),
        "{accepted:#?}"
    );
    srs.sigterm().unwrap();
    assert_eq!(
        srs.wait_exit(Duration::from_secs(20)).await.unwrap(),
        Some(0)
    );
}
