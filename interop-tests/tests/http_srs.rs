//! srs-server's HTTP endpoints (`--http`) against a running server: metrics move when a call
//! is recorded, readiness flips when the spool is full and during SIGTERM, the token is
//! enforced, paths outside the recordings are refused, Range requests return the right bytes.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use interop_tests::process::{free_port, SrsProcess};
use interop_tests::{TestSrc, TestTransport};

/// One GET: status, content type and body.
async fn get(url: &str, token: Option<&str>, range: Option<&str>) -> (u16, String, Vec<u8>) {
    let client = reqwest::Client::new();
    let mut req = client.get(url);
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    if let Some(r) = range {
        req = req.header("Range", r);
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = resp.bytes().await.unwrap().to_vec();
    (status, ct, body)
}

async fn text(url: &str) -> (u16, String) {
    let (s, _, b) = get(url, None, None).await;
    (s, String::from_utf8(b).unwrap())
}

/// The value of one sample line of the exposition (`name{labels}` exactly), 0 if absent.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.split(' ').next().unwrap().parse().unwrap())
        .unwrap_or(0.0)
}

fn config(dir: &Path, rtp_base: u16) -> srs_server::Config {
    srs_server::Config {
        listen: vec!["udp:127.0.0.1:0".into()],
        rtp_ports: format!("{}-{}", rtp_base, rtp_base + 99),
        storage: dir.join("recordings").display().to_string(),
        spool: dir.join("spool"),
        media_timeout: 10,
        http: Some("127.0.0.1:0".into()),
        ..srs_server::Config::default()
    }
}

fn sip_addr(server: &srs_server::Server) -> SocketAddr {
    server.local_addrs()[0].addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_when_a_call_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let server = srs_server::Server::start(config(dir.path(), 44000).validate().unwrap())
        .await
        .unwrap();
    let base = format!("http://{}", server.http_addr().unwrap());
    assert_eq!(text(&format!("{base}/healthz")).await, (200, "ok\n".into()));
    let (s, ready) = text(&format!("{base}/readyz")).await;
    assert_eq!((s, ready.as_str()), (200, r#"{"ready":true}"#));
    let (s, ct, m) = get(&format!("{base}/metrics"), None, None).await;
    assert_eq!(s, 200);
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    let m = String::from_utf8(m).unwrap();
    for name in [
        "# TYPE srs_sessions_active gauge",
        "# TYPE srs_sessions_started counter",
        "# TYPE srs_recordings_published counter",
        "# TYPE srs_invite_answer_seconds histogram",
        "# TYPE srs_end_to_published_seconds histogram",
        "# TYPE srs_spool_bytes gauge",
        "# TYPE srs_uploads_waiting gauge",
    ] {
        assert!(m.contains(name), "no {name:?} in\n{m}");
    }
    assert_eq!(sample(&m, "srs_sessions_active"), 0.0);

    let mut published = server.subscribe();
    let mut src = test_src(&server).await;
    src.start(Some("REC-metrics")).await;
    src.stream(Duration::from_millis(600)).await.unwrap();
    // Live: the session is active and its packets show within about a second (the driver's
    // snapshot), while packets keep coming.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, m) = text(&format!("{base}/metrics")).await;
        let live = sample(&m, "srs_rtp_packets_received_total{codec=\"PCMU\"}");
        if sample(&m, "srs_sessions_active") == 1.0 && live > 0.0 {
            assert!(sample(&m, "srs_spool_bytes") > 0.0, "{m}");
            break;
        }
        assert!(Instant::now() < deadline, "live RTP never showed:\n{m}");
        src.stream(Duration::from_millis(100)).await.unwrap();
    }
    src.hang_up().await;
    let rec = interop_tests::next_recording(&mut published).await;
    let stream_total = |codec: &str| -> u64 {
        rec.manifest
            .streams
            .iter()
            .filter(|s| s.codecs.first().is_some_and(|c| c.starts_with(codec)))
            .map(|s| s.packets_received)
            .sum()
    };

    let (_, m) = text(&format!("{base}/metrics")).await;
    assert_eq!(sample(&m, "srs_sessions_active"), 0.0, "{m}");
    assert_eq!(sample(&m, "srs_sessions_started_total"), 1.0, "{m}");
    assert_eq!(
        sample(&m, "srs_sessions_ended_total{ended_by=\"bye-from-src\"}"),
        1.0,
        "{m}"
    );
    assert_eq!(sample(&m, "srs_recordings_published_total"), 1.0, "{m}");
    assert_eq!(
        sample(
            &m,
            "srs_sip_requests_total{direction=\"in\",method=\"INVITE\"}"
        ),
        1.0,
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "srs_sip_requests_total{direction=\"in\",method=\"BYE\"}"
        ),
        1.0,
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "srs_sip_responses_total{direction=\"out\",method=\"INVITE\",code=\"200\"}"
        ),
        1.0,
        "{m}"
    );
    assert_eq!(sample(&m, "srs_invite_answer_seconds_count"), 1.0, "{m}");
    assert_eq!(sample(&m, "srs_end_to_published_seconds_count"), 1.0, "{m}");
    // RTP totals are the final manifest's.
    let pcmu = sample(&m, "srs_rtp_packets_received_total{codec=\"PCMU\"}");
    let pcma = sample(&m, "srs_rtp_packets_received_total{codec=\"PCMA\"}");
    assert!(pcmu > 30.0, "{m}");
    assert_eq!(pcmu as u64, stream_total("PCMU"), "{m}");
    assert_eq!(pcma as u64, stream_total("PCMA"), "{m}");
    assert_eq!(sample(&m, "srs_uploads_waiting"), 0.0, "{m}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_says_503_while_the_spool_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let filler = spool.join("filler");
    std::fs::write(&filler, vec![0u8; 2 << 20]).unwrap();
    let cfg = srs_server::Config {
        spool_max_mb: 1,
        ..config(dir.path(), 44100)
    };
    let server = srs_server::Server::start(cfg.validate().unwrap())
        .await
        .unwrap();
    let base = format!("http://{}", server.http_addr().unwrap());
    let (s, body) = text(&format!("{base}/readyz")).await;
    assert_eq!(s, 503, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ready"], false);
    assert!(
        v["reason"].as_str().unwrap().contains("spool full"),
        "{body}"
    );
    // Liveness is not readiness.
    assert_eq!(text(&format!("{base}/healthz")).await.0, 200);
    // Room again: ready within the driver's next spool check.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while text(&format!("{base}/readyz")).await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "still not ready with an empty spool"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_says_503_during_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (sip, http) = (free_port(), free_port());
    let args: Vec<String> = [
        "--listen",
        &format!("udp:127.0.0.1:{sip}"),
        "--rtp-ports",
        "44200-44299",
        "--storage",
        &dir.path().join("recordings").display().to_string(),
        "--spool",
        &dir.path().join("spool").display().to_string(),
        "--shutdown-grace",
        "20",
        "--http",
        &format!("127.0.0.1:{http}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut srs = SrsProcess::spawn(&args, &[]).await.unwrap();
    let base = format!("http://127.0.0.1:{http}");
    assert_eq!(text(&format!("{base}/readyz")).await.0, 200);
    // A live call keeps the server up through the grace period.
    let addr = format!("127.0.0.1:{sip}").parse().unwrap();
    let mut src = TestSrc::new(TestTransport::Udp, addr, (0, 440.0), (8, 880.0))
        .await
        .unwrap();
    src.start(Some("REC-sigterm")).await;
    src.stream(Duration::from_millis(200)).await.unwrap();
    srs.sigterm().unwrap();
    srs.wait_for_log("shutting down", Duration::from_secs(5))
        .await
        .unwrap();
    let (s, body) = text(&format!("{base}/readyz")).await;
    assert_eq!(s, 503, "{body}");
    assert!(body.contains("shutting down"), "{body}");
    assert_eq!(text(&format!("{base}/healthz")).await.0, 200);
    src.hang_up().await;
    assert_eq!(
        srs.wait_exit(Duration::from_secs(20)).await.unwrap(),
        Some(0)
    );
}

/// A test SRC towards `server` over UDP: 440 Hz PCMU on the caller's leg, 880 Hz PCMA on the
/// callee's.
async fn test_src(server: &srs_server::Server) -> TestSrc {
    TestSrc::new(TestTransport::Udp, sip_addr(server), (0, 440.0), (8, 880.0))
        .await
        .unwrap()
}

/// Records one short call with `rec_id` and returns its published folder.
async fn record(
    server: &srs_server::Server,
    rec_id: &str,
    ms: u64,
) -> srs_server::PublishedRecording {
    let mut published = server.subscribe();
    let mut src = test_src(server).await;
    src.start(Some(rec_id)).await;
    src.stream(Duration::from_millis(ms)).await.unwrap();
    src.hang_up().await;
    interop_tests::next_recording(&mut published).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_api_token_traversal_and_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let token = "t0ken-for-tests";
    let cfg = srs_server::Config {
        http_token: Some(token.into()),
        ..config(dir.path(), 44300)
    };
    let server = srs_server::Server::start(cfg.validate().unwrap())
        .await
        .unwrap();
    let base = format!("http://{}", server.http_addr().unwrap());
    let a = record(&server, "REC-http-a", 800).await;
    let b = record(&server, "REC-http-b", 400).await;

    // The token: every route but /healthz.
    assert_eq!(get(&format!("{base}/healthz"), None, None).await.0, 200);
    for path in [
        "/readyz",
        "/metrics",
        "/",
        "/api/recordings",
        &format!("/api/recordings/{}", a.folder),
        &format!("/files/{}/audio.wav", a.folder),
    ] {
        let url = format!("{base}{path}");
        assert_eq!(get(&url, None, None).await.0, 401, "{path} without token");
        assert_eq!(
            get(&url, Some("wrong"), None).await.0,
            401,
            "{path} bad token"
        );
        assert_eq!(
            get(&url, Some(token), None).await.0,
            200,
            "{path} with token"
        );
    }
    let q = format!("{base}/api/recordings?token={token}");
    assert_eq!(get(&q, None, None).await.0, 200, "?token= works for links");

    // The list: newest first, filtered by text and date.
    let (s, ct, body) = get(&format!("{base}/api/recordings"), Some(token), None).await;
    assert_eq!(s, 200);
    assert!(ct.starts_with("application/json"), "{ct}");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{v}");
    assert_eq!(items[0]["key"], "REC-http-b", "newest first: {v}");
    assert_eq!(items[1]["path"], a.folder.as_str());
    assert_eq!(items[1]["participants"].as_array().unwrap().len(), 2, "{v}");
    assert!(items[1]["duration_s"].as_f64().unwrap() > 0.5, "{v}");
    assert!(items[1]["start"].as_str().unwrap().starts_with("20"), "{v}");
    let day = &a.manifest.start_time[..10];
    let url = format!("{base}/api/recordings?q=http-a&from={day}&to={day}");
    let v: serde_json::Value =
        serde_json::from_slice(&get(&url, Some(token), None).await.2).unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["items"][0]["key"], "REC-http-a");
    let url = format!("{base}/api/recordings?to=2000-01-01");
    let v: serde_json::Value =
        serde_json::from_slice(&get(&url, Some(token), None).await.2).unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), 0, "{v}");
    let bad = format!("{base}/api/recordings?from=yesterday");
    let (s, _, body) = get(&bad, Some(token), None).await;
    assert_eq!(s, 400);
    assert!(String::from_utf8_lossy(&body).contains("YYYY-MM-DD"));

    // One recording: manifest and metadata, and its pages.
    let url = format!("{base}/api/recordings/{}", a.folder);
    let v: serde_json::Value =
        serde_json::from_slice(&get(&url, Some(token), None).await.2).unwrap();
    assert_eq!(v["manifest"]["recording_key"], "REC-http-a");
    assert!(
        v["metadata"][0]["xml"]
            .as_str()
            .unwrap()
            .contains("<recording"),
        "{v}"
    );
    let (s, ct, html) = get(
        &format!("{base}/recordings/{}", a.folder),
        Some(token),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert!(ct.starts_with("text/html"), "{ct}");
    let html = String::from_utf8(html).unwrap();
    for p in &a.manifest.participants {
        assert!(html.contains(&p.id), "participant {} missing", p.id);
    }
    assert!(html.contains("<canvas id=\"wave\""));
    let (s, _, peaks) = get(&format!("{base}/api/peaks/{}", a.folder), Some(token), None).await;
    assert_eq!(s, 200);
    let p: serde_json::Value = serde_json::from_slice(&peaks).unwrap();
    assert_eq!(p["channels"], 2);
    assert_eq!(p["frames"].as_u64(), Some(a.manifest.duration_samples));

    // Traversal and anything outside the layout: 404.
    for path in [
        "/recordings/../../etc/passwd",
        "/recordings/..%2F..%2Fetc%2Fpasswd",
        "/files/%2E%2E/%2E%2E/etc/passwd",
        "/api/recordings/2026/01/01/..",
        "/api/recordings/2026/01/01/nothing-here",
        &format!("/files/{}/../../../../spool/x", a.folder),
        &format!("/files/{}/metadata/0009.xml", a.folder),
        &format!("/files/{}/.claim", a.folder),
        "/files/etc/passwd",
    ] {
        let (s, _, _) = get(&format!("{base}{path}"), Some(token), None).await;
        assert_eq!(s, 404, "{path}");
    }

    // Range requests return the right bytes.
    let wav = interop_tests::read_object(&server, &format!("{}/audio.wav", a.folder))
        .await
        .unwrap();
    let url = format!("{base}/files/{}/audio.wav", a.folder);
    let (s, ct, whole) = get(&url, Some(token), None).await;
    assert_eq!((s, ct.as_str()), (200, "audio/wav"));
    assert_eq!(whole, wav);
    let n = wav.len();
    for (range, want) in [
        ("bytes=0-43".to_string(), &wav[0..44]),
        (format!("bytes=1000-{}", n - 1), &wav[1000..]),
        ("bytes=2000-".to_string(), &wav[2000..]),
        ("bytes=-100".to_string(), &wav[n - 100..]),
    ] {
        let (s, _, got) = get(&url, Some(token), Some(&range)).await;
        assert_eq!(s, 206, "{range}");
        assert_eq!(got, want, "{range}");
    }
    let (s, _, _) = get(&url, Some(token), Some(&format!("bytes={n}-"))).await;
    assert_eq!(s, 416);
    // Headers: nosniff everywhere, no-store unless a route says otherwise.
    let client = reqwest::Client::new();
    let r = client
        .get(format!("{base}/api/recordings"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let r = client.get(&url).bearer_auth(token).send().await.unwrap();
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    assert_eq!(r.headers()["cache-control"], "private, max-age=3600");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    // Only GET is served (a large body changes nothing).
    let r = client
        .post(format!("{base}/metrics"))
        .bearer_auth(token)
        .body(vec![b'x'; 64 * 1024])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    let _ = b;
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_says_503_when_storage_fails_longer_than_upload_retry_max() {
    let dir = tempfile::tempdir().unwrap();
    // An S3 endpoint where nothing listens: every upload fails.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let cfg = srs_server::Config {
        storage: "s3://recordings".into(),
        s3: siprec_storage::S3Options {
            endpoint: Some(endpoint),
            region: Some("garage".into()),
            access_key_id: Some("GK0000".into()),
            secret_access_key: Some("secret".into()),
            allow_http: Some(true),
            ..Default::default()
        },
        upload_retry_max: 1,
        shutdown_upload_wait: 0,
        ..config(dir.path(), 44500)
    };
    let server = srs_server::Server::start(cfg.validate().unwrap())
        .await
        .unwrap();
    let base = format!("http://{}", server.http_addr().unwrap());
    assert_eq!(text(&format!("{base}/readyz")).await.0, 200);
    let mut src = test_src(&server).await;
    src.start(Some("REC-no-storage")).await;
    src.stream(Duration::from_millis(200)).await.unwrap();
    src.hang_up().await;
    // The upload fails (object_store's own retries included), is retried, and once storage
    // has been failing for longer than upload_retry_max the server is not ready.
    let deadline = Instant::now() + Duration::from_secs(60);
    let body = loop {
        let (s, body) = text(&format!("{base}/readyz")).await;
        if s == 503 {
            break body;
        }
        assert!(Instant::now() < deadline, "still ready with storage down");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(body.contains("storage failing"), "{body}");
    let (_, m) = text(&format!("{base}/metrics")).await;
    assert!(sample(&m, "srs_upload_failures_total") >= 1.0, "{m}");
    assert_eq!(sample(&m, "srs_uploads_waiting"), 1.0, "{m}");
    assert_eq!(sample(&m, "srs_recordings_published_total"), 0.0, "{m}");
    server.shutdown().await.unwrap();
}

/// A client that never finishes its request head does not hold the server: others are served
/// meanwhile, and its connection is closed after the header timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_is_dropped_and_blocks_nobody() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let server = srs_server::Server::start(config(dir.path(), 44600).validate().unwrap())
        .await
        .unwrap();
    let addr = server.http_addr().unwrap();
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    assert_eq!(text(&format!("http://{addr}/healthz")).await.0, 200);
    let mut buf = Vec::new();
    let limit = srs_server::http::HEADER_TIMEOUT + Duration::from_secs(5);
    let n = tokio::time::timeout(limit, slow.read_to_end(&mut buf))
        .await
        .expect("the slow connection is closed")
        .unwrap_or(0);
    assert!(
        started.elapsed() >= srs_server::http::HEADER_TIMEOUT - Duration::from_secs(1),
        "closed after {:?}",
        started.elapsed()
    );
    // hyper answers 408 or just closes.
    let head = String::from_utf8_lossy(&buf[..n.min(buf.len())]).to_string();
    assert!(
        head.is_empty() || head.starts_with("HTTP/1.1 408"),
        "{head}"
    );
    server.shutdown().await.unwrap();
}
