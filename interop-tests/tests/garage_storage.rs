//! srs-server on a real S3-compatible store: Garage on loopback (see `interop_tests::garage`;
//! install it with `bash .ci/garage-install`). Every test here fails, never skips, when
//! Garage is missing.
//!
//! - a call recorded into Garage and read back through the S3 API (objects, Content-Type);
//! - Garage stopped while 3 calls finish and started again 30 s later: all 3 recordings
//!   appear, byte for byte what the spool held for them;
//! - a 10-minute call (sent 20 times faster than real time, with the server told so) is
//!   uploaded in multipart parts while the server's memory stays flat;
//! - two srs-server instances sharing one bucket behind DNS SRV: 20 calls from siprec-client
//!   with one Recording ID all land, spread over both, in 20 distinct folders.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use interop_tests::audio::{deinterleave, tone_power};
use interop_tests::dns::{Dnsmasq, Record};
use interop_tests::garage::{Garage, S3Credentials};
use interop_tests::process::{free_port, SrsProcess};
use interop_tests::{TestSrc, TestTransport};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use siprec_storage::{Manifest, Store};

/// An S3 client of its own (not the server's), on the whole bucket.
fn bucket(c: &S3Credentials) -> Arc<dyn ObjectStore> {
    Store::open_with(&format!("s3://{}", c.bucket), &c.s3_options())
        .unwrap()
        .object_store()
        .clone()
}

async fn get(os: &Arc<dyn ObjectStore>, key: &str) -> Vec<u8> {
    os.get(&Path::from(key))
        .await
        .unwrap_or_else(|e| panic!("{key}: {e}"))
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

async fn list(os: &Arc<dyn ObjectStore>, prefix: &str) -> Vec<String> {
    let p = Path::from(prefix);
    let mut v: Vec<String> = os
        .list(Some(&p))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    v.sort();
    v
}

async fn server(
    dir: &std::path::Path,
    c: &S3Credentials,
    prefix: &str,
    rtp: &str,
    instance: &str,
) -> srs_server::Server {
    let cfg = srs_server::Config {
        listen: vec!["udp:127.0.0.1:0".into(), "tcp:127.0.0.1:0".into()],
        rtp_ports: rtp.into(),
        storage: format!("s3://{}/{prefix}", c.bucket),
        s3: c.s3_options(),
        spool: dir.join("spool"),
        instance_id: Some(instance.into()),
        upload_retry_max: 2,
        shutdown_grace: 0,
        ..srs_server::Config::default()
    };
    srs_server::Server::start(cfg.validate().unwrap())
        .await
        .unwrap()
}

fn udp(s: &srs_server::Server) -> std::net::SocketAddr {
    s.local_addrs()
        .iter()
        .find(|l| l.transport == siprec_sip::transaction::Transport::Udp)
        .unwrap()
        .addr
}

async fn call(addr: std::net::SocketAddr, rec_id: &str) -> TestSrc {
    let mut src = TestSrc::new(TestTransport::Udp, addr, (0, 440.0), (8, 880.0))
        .await
        .unwrap();
    let offer = src.offer("sendonly");
    let md = src.metadata(Some(rec_id));
    let resp = src.invite(&offer, Some(&md)).await.unwrap();
    assert_eq!(resp.status_code.code(), 200, "{resp}");
    src
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_recorded_into_garage_reads_back_through_s3() {
    let garage = Garage::start("recordings").await.unwrap();
    let c = garage.credentials();
    let dir = tempfile::tempdir().unwrap();
    let srs = server(dir.path(), &c, "srs", "36300-36399", "srs-1").await;
    let mut published = srs.subscribe();
    let mut src = call(udp(&srs), "REC-garage-1").await;
    src.stream(Duration::from_millis(2000)).await.unwrap();
    src.send_in_dialog("BYE", None, None).await.unwrap();
    let rec = tokio::time::timeout(Duration::from_secs(30), published.recv())
        .await
        .expect("published")
        .unwrap();
    assert!(rec.folder.ends_with("/REC-garage-1"), "{}", rec.folder);
    assert!(
        rec.location.starts_with("s3://recordings/srs/"),
        "{}",
        rec.location
    );

    let os = bucket(&c);
    let keys = list(&os, &format!("srs/{}", rec.folder)).await;
    let base = format!("srs/{}", rec.folder);
    assert_eq!(
        keys,
        vec![
            format!("{base}/audio.wav"),
            format!("{base}/metadata/0001.xml"),
            format!("{base}/recording.json"),
        ],
        "no claim object or anything else is left"
    );
    let json = get(&os, &format!("{base}/recording.json")).await;
    let m: Manifest = serde_json::from_slice(&json).unwrap();
    assert_eq!(m, rec.manifest);
    assert!(m.complete);
    assert_eq!(m.instance_id, "srs-1");
    assert_eq!(m.recording_key, "REC-garage-1");
    let got = os
        .get(&Path::from(format!("{base}/audio.wav")))
        .await
        .unwrap();
    assert_eq!(
        got.attributes
            .get(&object_store::Attribute::ContentType)
            .map(|v| v.to_string()),
        Some("audio/wav".to_string())
    );
    let wav = got.bytes().await.unwrap();
    let mut r = hound::WavReader::new(std::io::Cursor::new(wav.to_vec())).unwrap();
    let samples: Vec<i16> = r.samples::<i16>().map(|s| s.unwrap()).collect();
    let (l, rr) = deinterleave(&samples);
    assert_eq!(l.len() as u64, m.duration_samples);
    let mid = |ch: &[i16]| ch[2000..12000].to_vec();
    assert!(tone_power(&mid(&l), 8000, 440.0) > 100.0 * tone_power(&mid(&l), 8000, 880.0));
    assert!(tone_power(&mid(&rr), 8000, 880.0) > 100.0 * tone_power(&mid(&rr), 8000, 440.0));
    srs.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_calls_finishing_during_a_storage_outage_all_appear_when_it_is_back() {
    let mut garage = Garage::start("recordings").await.unwrap();
    let c = garage.credentials();
    let dir = tempfile::tempdir().unwrap();
    let srs = server(dir.path(), &c, "outage", "36400-36499", "srs-1").await;
    let mut published = srs.subscribe();
    let addr = udp(&srs);
    let mut a = call(addr, "REC-outage-a").await;
    let mut b = call(addr, "REC-outage-b").await;
    a.stream(Duration::from_millis(500)).await.unwrap();
    b.stream(Duration::from_millis(500)).await.unwrap();

    garage.stop().await.unwrap();
    // Storage is down: a new call is still accepted and spooled.
    let mut cc = call(addr, "REC-outage-c").await;
    for s in [&mut a, &mut b, &mut cc] {
        s.stream(Duration::from_millis(500)).await.unwrap();
        let r = s.send_in_dialog("BYE", None, None).await.unwrap();
        assert_eq!(r.status_code.code(), 200);
    }
    // All three finish into the spool and wait there.
    let deadline = Instant::now() + Duration::from_secs(20);
    let spool = dir.path().join("spool");
    let finished = || {
        std::fs::read_dir(&spool)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.path().join("recording.json").is_file())
                    .count()
            })
            .unwrap_or(0)
    };
    while finished() < 3 {
        assert!(Instant::now() < deadline, "the 3 recordings never finished");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(srs.pending_uploads(), 3);
    assert!(
        published.try_recv().is_err(),
        "nothing published while down"
    );
    // What a run without the outage publishes: the spooled audio and manifest of each.
    let mut expected: BTreeMap<String, (Vec<u8>, Manifest)> = BTreeMap::new();
    for e in std::fs::read_dir(&spool).unwrap().flatten() {
        let m: Manifest =
            serde_json::from_slice(&std::fs::read(e.path().join("recording.json")).unwrap())
                .unwrap();
        let audio = std::fs::read(e.path().join("audio.wav")).unwrap();
        expected.insert(m.recording_key.clone(), (audio, m));
    }

    // The outage lasts 30 s (the scenario of the issue), then storage comes back.
    tokio::time::sleep(Duration::from_secs(30)).await;
    garage.start_again().await.unwrap();
    let mut got = Vec::new();
    while got.len() < 3 {
        let r = tokio::time::timeout(Duration::from_secs(60), published.recv())
            .await
            .expect("all three published once storage is back")
            .unwrap();
        got.push(r);
    }
    assert_eq!(srs.pending_uploads(), 0);
    let os = bucket(&c);
    for r in &got {
        let (audio, m) = &expected[&r.manifest.recording_key];
        let base = format!("outage/{}", r.folder);
        assert_eq!(&get(&os, &format!("{base}/audio.wav")).await, audio);
        let stored: Manifest =
            serde_json::from_slice(&get(&os, &format!("{base}/recording.json")).await).unwrap();
        assert_eq!(&stored, m);
        assert!(stored.complete);
        assert_eq!(stored.ended_by, "bye-from-src");
    }
    assert_eq!(
        std::fs::read_dir(&spool).unwrap().count(),
        0,
        "spool emptied"
    );
    srs.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_minute_call_uploads_in_parts_with_flat_memory() {
    const RATE: f64 = 20.0;
    let garage = Garage::start("recordings").await.unwrap();
    let c = garage.credentials();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let args: Vec<String> = [
        "--listen",
        &format!("udp:127.0.0.1:{port}"),
        "--rtp-ports",
        "36500-36599",
        "--storage",
        &format!("s3://{}/long", c.bucket),
        "--spool",
        &dir.path().join("spool").display().to_string(),
        "--media-clock-rate",
        "20",
        // 2 s of media time is 100 ms of wall time at 20x: room for the sender's batches and
        // scheduling delays.
        "--jitter-ms",
        "2000",
        "--instance-id",
        "srs-long",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut srs = SrsProcess::spawn(&args, &garage.env()).await.unwrap();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut src = call(addr, "REC-long").await;
    // One minute of audio, then the baseline; nine more minutes, sampling memory.
    src.stream_fast(Duration::from_secs(60), RATE)
        .await
        .unwrap();
    let (base_rss, _) = srs.rss_kib().unwrap();
    let mut max_rss = base_rss;
    for _ in 0..9 {
        src.stream_fast(Duration::from_secs(60), RATE)
            .await
            .unwrap();
        max_rss = max_rss.max(srs.rss_kib().unwrap().0);
    }
    let r = src.send_in_dialog("BYE", None, None).await.unwrap();
    assert_eq!(r.status_code.code(), 200);
    srs.wait_for_log("recording stored", Duration::from_secs(60))
        .await
        .unwrap();
    let (_, peak) = srs.rss_kib().unwrap();
    eprintln!(
        "RSS after 1 min of audio {base_rss} KiB, max during the call {max_rss} KiB, peak incl. upload {peak} KiB"
    );
    assert!(
        max_rss < base_rss + 4 * 1024,
        "memory grew with the call: {base_rss} -> {max_rss} KiB"
    );
    // Parts of 5 MiB, at most two in flight: far less than the 19 MB file.
    assert!(
        peak < base_rss + 20 * 1024,
        "upload peak {peak} KiB vs {base_rss} KiB before"
    );

    let os = bucket(&c);
    let keys = list(&os, "long").await;
    let audio = keys.iter().find(|k| k.ends_with("/audio.wav")).unwrap();
    let meta = os.head(&Path::from(audio.as_str())).await.unwrap();
    let secs = (meta.size - 44) as f64 / 4.0 / 8000.0;
    assert!((secs - 600.0).abs() < 1.0, "{secs} s of audio");
    // S3 gives a multipart object an ETag ending in -<parts>.
    let etag = meta.e_tag.unwrap_or_default();
    assert!(etag.trim_matches('"').ends_with("-4"), "ETag {etag}");
    let json = keys
        .iter()
        .find(|k| k.ends_with("/recording.json"))
        .unwrap();
    let m: Manifest = serde_json::from_slice(&get(&os, json).await).unwrap();
    assert!(
        (m.duration_seconds - 600.0).abs() < 1.0,
        "{}",
        m.duration_seconds
    );
    for s in &m.streams {
        assert_eq!(s.packets_received, 30_000, "{s:?}");
        assert_eq!(s.packets_lost, 0, "{s:?}");
        assert_eq!(s.packets_late, 0, "{s:?}");
    }
    srs.sigterm().unwrap();
    assert_eq!(
        srs.wait_exit(Duration::from_secs(30)).await.unwrap(),
        Some(0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_behind_srv_share_one_bucket_without_collisions() {
    use siprec_client::{CallContext, ClientConfig, Recorder, Reply, ToneSource};
    let garage = Garage::start("recordings").await.unwrap();
    let c = garage.credentials();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let s1 = server(d1.path(), &c, "cluster", "36600-36799", "srs-a").await;
    let s2 = server(d2.path(), &c, "cluster", "36800-36999", "srs-b").await;
    let (mut p1, mut p2) = (s1.subscribe(), s2.subscribe());
    let dns = Dnsmasq::start(&[
        Record::srv("_sip._udp.rec.test", "a.rec.test", udp(&s1).port(), 10, 50),
        Record::srv("_sip._udp.rec.test", "b.rec.test", udp(&s2).port(), 10, 50),
        Record::host("a.rec.test", "127.0.0.1".parse().unwrap()),
        Record::host("b.rec.test", "127.0.0.1".parse().unwrap()),
    ])
    .await
    .unwrap();

    // 20 calls, 5 at a time, all with the same Recording ID.
    let mut set = tokio::task::JoinSet::new();
    for i in 0..20u32 {
        if set.len() == 5 {
            set.join_next().await.unwrap().unwrap();
        }
        let dns_addr = dns.addr();
        set.spawn(async move {
            let rec = Recorder::new(
                ClientConfig {
                    dns_server: Some(dns_addr),
                    ..ClientConfig::default()
                },
                CallContext::example(),
                Box::new(ToneSource::new(440.0, 8000.0)),
                Box::new(ToneSource::new(880.0, 8000.0)),
            )
            .await
            .unwrap();
            let out = rec.start("sip:rec.test", Some("REC-shared")).await.unwrap();
            assert_eq!(out.reply, Reply::Started, "call {i}: {out:?}");
            tokio::time::sleep(Duration::from_millis(400)).await;
            assert_eq!(rec.stop().await.unwrap().reply, Reply::Stopped);
            rec.close().await.unwrap();
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    let mut per_instance: BTreeMap<String, usize> = BTreeMap::new();
    let mut folders = HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while folders.len() < 20 {
        let r = tokio::select! {
            r = p1.recv() => r.unwrap(),
            r = p2.recv() => r.unwrap(),
            _ = tokio::time::sleep_until(deadline) => panic!("only {} of 20 published", folders.len()),
        };
        *per_instance
            .entry(r.manifest.instance_id.clone())
            .or_default() += 1;
        assert!(
            folders.insert(r.folder.clone()),
            "folder {} used twice",
            r.folder
        );
    }
    assert_eq!(per_instance.len(), 2, "spread over both: {per_instance:?}");
    // In the bucket: 20 recordings, one per folder, no claim left.
    let os = bucket(&c);
    let keys = list(&os, "cluster").await;
    let manifests: Vec<&String> = keys
        .iter()
        .filter(|k| k.ends_with("/recording.json"))
        .collect();
    assert_eq!(manifests.len(), 20, "{keys:#?}");
    assert!(keys.iter().all(|k| !k.contains(".claim-")), "{keys:#?}");
    let names: HashSet<String> = folders
        .iter()
        .map(|f| f.rsplit('/').next().unwrap().to_string())
        .collect();
    assert!(names.contains("REC-shared"));
    assert_eq!(names.len(), 20);
    dns.stop().await;
    s1.shutdown().await.unwrap();
    s2.shutdown().await.unwrap();
}
