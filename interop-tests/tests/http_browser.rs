//! The recordings browser in a real browser: Debian's headless `chromium` driven over the
//! WebDriver protocol by `chromedriver` (package `chromium-driver`). Two calls are recorded,
//! the list is filtered by a Recording ID, the recording's page is opened, and the waveform,
//! the audio player and the metadata tables are checked as the browser shows them. A
//! screenshot of each page is kept under the test's output directory
//! (`target/tmp/http_browser/`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine;
use interop_tests::process::free_port;
use interop_tests::{require_tool, TestSrc, TestTransport};
use serde_json::{json, Value};

const INSTALL: &str = "install Debian's headless browser and its WebDriver: \
                       sudo apt-get install -y chromium chromium-driver (or bash .ci/deps)";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A WebDriver session on a chromedriver child process.
struct Browser {
    http: reqwest::Client,
    base: String,
    _driver: tokio::process::Child,
}

impl Browser {
    async fn start(chromium: &Path, chromedriver: &Path) -> Browser {
        let port = free_port();
        let driver = tokio::process::Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::new();
        let root = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.get(format!("{root}/status")).send().await {
                let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
                if v["value"]["ready"] == true {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver not ready in 20 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1100",
                         "--autoplay-policy=no-user-gesture-required", "--mute-audio"]
            }
        }}});
        let r = http
            .post(format!("{root}/session"))
            .body(caps.to_string())
            .header("Content-Type", "application/json")
            .send()
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        let id = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {v}"));
        Browser {
            http,
            base: format!("{root}/session/{id}"),
            _driver: driver,
        }
    }

    async fn cmd(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self
                .http
                .post(&url)
                .header("Content-Type", "application/json")
                .body(body.to_string()),
        };
        let r = req.send().await.unwrap();
        let v: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        if v["value"]["error"].is_string() {
            panic!("WebDriver {method} {path}: {v}");
        }
        v["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.cmd("POST", "/url", json!({ "url": url })).await;
    }

    async fn js(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            json!({ "script": script, "args": [] }),
        )
        .await
    }

    async fn element(&self, css: &str) -> String {
        let v = self
            .cmd(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v[ELEMENT].as_str().unwrap().to_string()
    }

    /// Polls `script` until it returns `true` (20 s at most).
    async fn wait_for(&self, script: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.js(script).await != Value::Bool(true) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn screenshot(&self, file: &Path) {
        let v = self.cmd("GET", "/screenshot", Value::Null).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        std::fs::write(file, png).unwrap();
        eprintln!("screenshot: {}", file.display());
    }

    async fn quit(&self) {
        self.cmd("DELETE", "", Value::Null).await;
    }
}

fn out_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("http_browser");
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browse_filter_open_and_play_a_recording_in_chromium() {
    let chromium = require_tool("chromium", INSTALL);
    let chromedriver = require_tool("chromedriver", INSTALL);
    let dir = tempfile::tempdir().unwrap();
    let token = "browser-test-token";
    let cfg = srs_server::Config {
        listen: vec!["udp:127.0.0.1:0".into()],
        rtp_ports: "44400-44499".into(),
        storage: dir.path().join("recordings").display().to_string(),
        spool: dir.path().join("spool"),
        http: Some("127.0.0.1:0".into()),
        http_token: Some(token.into()),
        ..srs_server::Config::default()
    };
    let server = srs_server::Server::start(cfg.validate().unwrap())
        .await
        .unwrap();
    let sip = server.local_addrs()[0].addr;
    let mut recs = Vec::new();
    for (id, ms) in [("REC-browser-first", 2000), ("REC-browser-second", 1000)] {
        let mut published = server.subscribe();
        let mut src = TestSrc::new(TestTransport::Udp, sip, (0, 440.0), (8, 880.0))
            .await
            .unwrap();
        src.start(Some(id)).await;
        src.stream(Duration::from_millis(ms)).await.unwrap();
        src.hang_up().await;
        recs.push(interop_tests::next_recording(&mut published).await);
    }
    let want = &recs[0];
    let base = format!("http://{}", server.http_addr().unwrap());
    let out = out_dir();
    let b = Browser::start(&chromium, &chromedriver).await;

    // The list: both recordings.
    b.go(&format!("{base}/?token={token}")).await;
    b.wait_for(
        "return document.querySelectorAll('#recordings a.rec').length === 2",
        "two recordings listed",
    )
    .await;
    b.screenshot(&out.join("1-list.png")).await;

    // Filter by the first one's Recording ID, typed into the search box.
    let q = b.element("#q").await;
    b.cmd(
        "POST",
        &format!("/element/{q}/value"),
        json!({"text": "REC-browser-first"}),
    )
    .await;
    let button = b.element("#filter button").await;
    b.cmd("POST", &format!("/element/{button}/click"), json!({}))
        .await;
    b.wait_for(
        "const a = document.querySelectorAll('#recordings a.rec'); \
         return a.length === 1 && a[0].textContent === 'REC-browser-first'",
        "the filtered list",
    )
    .await;
    b.screenshot(&out.join("2-filtered.png")).await;

    // Open it.
    let link = b.element("#recordings a.rec").await;
    b.cmd("POST", &format!("/element/{link}/click"), json!({}))
        .await;
    b.wait_for(
        "const c = document.getElementById('wave'); return !!c && c.dataset.channelsDrawn === '2'",
        "the waveform drawn",
    )
    .await;
    // Both halves of the canvas carry their channel's colour.
    let drawn = b
        .js("const c = document.getElementById('wave'), g = c.getContext('2d'); \
             const count = (y0, r, gr, bl) => { const d = g.getImageData(0, y0, c.width, c.height / 2).data; \
               let n = 0; for (let i = 0; i < d.length; i += 4) \
                 if (d[i] === r && d[i + 1] === gr && d[i + 2] === bl) n++; return n; }; \
             return [count(0, 0x1f, 0x6f, 0xb2), count(c.height / 2, 0x2e, 0x9b, 0x4f)];")
        .await;
    let (left, right) = (drawn[0].as_u64().unwrap(), drawn[1].as_u64().unwrap());
    assert!(
        left > 1000 && right > 1000,
        "left {left} px, right {right} px"
    );

    // The player knows the duration and plays.
    let duration = want.manifest.duration_seconds;
    b.wait_for(
        "const a = document.getElementById('player'); return a.readyState >= 1 && a.duration > 0",
        "the audio metadata",
    )
    .await;
    let d = b
        .js("return document.getElementById('player').duration")
        .await
        .as_f64()
        .unwrap();
    assert!(
        (d - duration).abs() < 0.05,
        "<audio> says {d} s, manifest {duration} s"
    );
    b.js("document.getElementById('player').play(); return true")
        .await;
    b.wait_for(
        "const a = document.getElementById('player'); return !a.paused && a.currentTime > 0.2",
        "the audio playing",
    )
    .await;

    // The metadata tables: both participants, with their channels.
    let rows = b
        .js(
            "return Array.from(document.querySelectorAll('#participants tr')).slice(1) \
             .map(r => Array.from(r.cells).map(c => c.textContent))",
        )
        .await;
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    for p in &want.manifest.participants {
        assert!(
            rows.iter().any(|r| r[0] == p.id.as_str()),
            "participant {} not shown: {rows:?}",
            p.id
        );
    }
    let channels: Vec<&str> = rows.iter().map(|r| r[3].as_str().unwrap()).collect();
    assert!(
        channels.contains(&"left") && channels.contains(&"right"),
        "{channels:?}"
    );
    let docs = b
        .js("return document.querySelectorAll('pre.metadata').length")
        .await;
    assert_eq!(docs, json!(want.manifest.metadata_documents.len()));
    b.screenshot(&out.join("3-recording.png")).await;
    b.quit().await;
    server.shutdown().await.unwrap();
}
