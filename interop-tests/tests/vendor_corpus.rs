//! The vendor-variant corpus: one SIPp scenario per behaviour of real SRCs
//! (`fixtures/sipp/corpus/`, see its README), each run against its own in-process srs-server.
//! Every test checks both sides: SIPp exits 0 only when the SRS gave the responses the scenario
//! expects (its `recv` and `ereg check_it` elements), and the stored recording is read back:
//! WAV format, duration, where the tones and the silences are, and `recording.json`.
//!
//! Audio comes from the pcaps under `fixtures/rtp/` (`make-fixtures`): 440 Hz to the first
//! m-line, 880 Hz to the second, 600 Hz to the third.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use interop_tests::audio::{assert_tone, deinterleave, peak, tone_power, window};
use interop_tests::{fixtures_dir, read_object, read_wav, require_tool, start_srs};
use siprec_sip::transaction::Transport;
use srs_server::{PublishedRecording, Server};
use tokio::sync::broadcast;

/// SIPp runs allowed at once.
static SIPP_TURNS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// An even port `p` with `p..p+4` all free for UDP on loopback (best effort: bound together,
/// then released).
fn free_media_ports() -> u16 {
    loop {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = s.local_addr().unwrap().port() & !1;
        drop(s);
        if !(1024..=65530).contains(&p) {
            continue;
        }
        let held: Vec<_> = (p..p + 4)
            .map(|q| std::net::UdpSocket::bind(("127.0.0.1", q)))
            .collect();
        if held.iter().all(Result::is_ok) {
            return p;
        }
    }
}

/// One scenario run: the server (still running), its published recordings and the temp dir.
struct Run {
    dir: tempfile::TempDir,
    server: Server,
    published: broadcast::Receiver<PublishedRecording>,
}

/// Starts an srs-server with RTP ports `rtp_base..rtp_base+199` and runs
/// `fixtures/sipp/corpus/{scenario}` against it over UDP; panics with SIPp's output and the
/// messages it exchanged unless SIPp exits 0.
async fn run_sipp(scenario: &str, rtp_base: u16) -> Run {
    let sipp = require_tool("sipp", "install it with `apt-get install sip-tester`");
    let dir = tempfile::tempdir().unwrap();
    let server = start_srs(dir.path(), rtp_base).await.unwrap();
    let published = server.subscribe();
    let srs = server
        .local_addrs()
        .iter()
        .find(|l| l.transport == Transport::Udp)
        .unwrap()
        .addr;
    // A free even media port for SIPp, with the three above it free too (it uses them for
    // its streams' sources).
    let media_port = free_media_ports();
    // At most two SIPp calls at once: the timing checks must hold on a loaded 2-core machine.
    let _turn = SIPP_TURNS.acquire().await.unwrap();
    let errors = dir.path().join("sipp-errors.log");
    let messages = dir.path().join("sipp-messages.log");
    let out = tokio::process::Command::new(sipp)
        .current_dir(fixtures_dir().join("sipp").join("corpus"))
        .args(["-sf", scenario, "-m", "1", "-l", "1", "-t", "u1"])
        .args(["-i", "127.0.0.1", "-p", "0", "-mi", "127.0.0.1"])
        .args(["-mp", &media_port.to_string()])
        .args(["-timeout", "30s", "-timeout_error"])
        .args(["-trace_err", "-error_file"])
        .arg(&errors)
        .args(["-trace_msg", "-message_file"])
        .arg(&messages)
        .arg(srs.to_string())
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    if !out.status.success() {
        let errors = std::fs::read_to_string(&errors).unwrap_or_default();
        let messages = std::fs::read_to_string(&messages).unwrap_or_default();
        panic!(
            "sipp {scenario} failed ({}):\n{}\n{}\n--- errors ---\n{errors}\n--- messages ---\n{messages}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Run {
        dir,
        server,
        published,
    }
}

impl Run {
    /// The next published recording (the SRS publishes once the session has ended).
    async fn recording(&mut self) -> PublishedRecording {
        let rec = tokio::time::timeout(Duration::from_secs(15), self.published.recv())
            .await
            .expect("recording published in time")
            .unwrap();
        // Shown when the test fails.
        eprintln!(
            "recording.json: {}",
            serde_json::to_string_pretty(&rec.manifest).unwrap()
        );
        rec
    }

    /// The recording's WAV as (left, right); checks it is 8 kHz stereo.
    async fn stereo(&self, rec: &PublishedRecording) -> (Vec<i16>, Vec<i16>) {
        let (spec, samples) = read_wav(&self.server, &rec.folder).await.unwrap();
        assert_eq!((spec.channels, spec.sample_rate), (2, 8000), "WAV format");
        assert_eq!(rec.manifest.sample_rate, 8000);
        let (l, r) = deinterleave(&samples);
        assert_eq!(
            l.len() as u64,
            rec.manifest.duration_samples,
            "manifest duration_samples is the WAV's length"
        );
        (l, r)
    }

    /// A stored metadata document, as text.
    async fn metadata(&self, rec: &PublishedRecording, n: usize) -> String {
        let path = format!("{}/metadata/{n:04}.xml", rec.folder);
        String::from_utf8(read_object(&self.server, &path).await.unwrap()).unwrap()
    }

    /// The responses SIPp received, in order: (status code, CSeq value).
    fn responses(&self) -> Vec<(u16, String)> {
        let log = std::fs::read_to_string(self.dir.path().join("sipp-messages.log")).unwrap();
        log.split("UDP message received")
            .skip(1)
            .filter_map(|chunk| {
                let msg = chunk.split_once('\n')?.1.trim_start();
                let msg = msg.split("\n-----").next()?;
                let code = msg.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()?;
                let cseq = msg
                    .lines()
                    .find_map(|l| l.strip_prefix("CSeq:"))?
                    .trim()
                    .to_string();
                Some((code, cseq))
            })
            .collect()
    }

    /// Stops the server and checks that nothing was left recording: the shutdown does not
    /// have to wait for a live session (its grace is 30 s) and the store holds exactly
    /// `recordings` recordings.
    async fn finish(self, recordings: usize) {
        tokio::time::timeout(Duration::from_secs(10), self.server.shutdown())
            .await
            .expect("shutdown without waiting for a live recording session")
            .unwrap();
        let mut found = Vec::new();
        manifests(&self.dir.path().join("recordings"), &mut found);
        assert_eq!(
            found.len(),
            recordings,
            "recordings in the store: {found:?}"
        );
    }
}

/// Every `recording.json` under `dir`.
fn manifests(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            manifests(&p, out);
        } else if p.file_name().is_some_and(|n| n == "recording.json") {
            out.push(p);
        }
    }
}

/// Asserts `want` Hz (and not `other`) in `from..to` seconds of a channel.
fn tone_at(ch: &[i16], from: f64, to: f64, want: f64, other: f64, what: &str) {
    assert_tone(
        window(ch, from, to),
        want,
        other,
        &format!("{what} {from:.2}-{to:.2} s"),
    );
}

/// Asserts digital silence in `from..to` seconds of a channel.
fn silent_at(ch: &[i16], from: f64, to: f64, what: &str) {
    let w = window(ch, from, to);
    assert!(!w.is_empty(), "{what}: window {from:.2}-{to:.2} s is empty");
    assert_eq!(peak(w), 0, "{what}: silence in {from:.2}-{to:.2} s");
}

/// The part of `samples` that one sinusoid of `freq` Hz does not explain, relative to the
/// whole (least squares fit of amplitude and phase): about 1e-3 for a clean G.711 tone, far
/// more when a stretch is misplaced, missing or overwritten by something else.
fn residual(samples: &[i16], freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / 8000.0;
    let (mut ss, mut cc, mut sc, mut xs, mut xc, mut xx) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for (i, &x) in samples.iter().enumerate() {
        let (s, c, x) = ((w * i as f64).sin(), (w * i as f64).cos(), x as f64);
        ss += s * s;
        cc += c * c;
        sc += s * c;
        xs += x * s;
        xc += x * c;
        xx += x * x;
    }
    let det = ss * cc - sc * sc;
    let a = (xs * cc - xc * sc) / det;
    let b = (xc * ss - xs * sc) / det;
    let fitted = a * xs + b * xc;
    (xx - fitted).max(0.0) / xx.max(1.0)
}

/// The checks shared by the plain 3 s calls with two streams (440 Hz left, 880 Hz right).
fn assert_stereo_call(m: &siprec_storage::Manifest, left: &[i16], right: &[i16]) {
    assert_eq!(m.ended_by, "bye-from-src");
    assert!(m.complete);
    assert!(
        (m.duration_seconds - 3.2).abs() < 0.3,
        "duration {:.3} s (SIPp hangs up 3.2 s after the ACK)",
        m.duration_seconds
    );
    assert_eq!(m.streams.len(), 2, "{:?}", m.streams);
    for s in &m.streams {
        assert!(s.packets_received >= 148, "{s:?}");
        assert_eq!(s.packets_lost, 0, "{s:?}");
        assert_eq!(s.codecs, ["PCMU/8000"], "{s:?}");
    }
    tone_at(left, 0.1, 2.9, 440.0, 880.0, "left");
    tone_at(right, 0.1, 2.9, 880.0, 440.0, "right");
    // The capture ends 3 s after the ACK, the BYE comes 0.2 s later: silence in between.
    let end = m.duration_seconds - 0.02;
    silent_at(left, 3.1, end, "left after the capture");
    silent_at(right, 3.1, end, "right after the capture");
}

fn participant<'a>(
    m: &'a siprec_storage::Manifest,
    id: &str,
) -> &'a siprec_storage::ParticipantInfo {
    m.participants
        .iter()
        .find(|p| p.id == id)
        .unwrap_or_else(|| panic!("participant {id} in {:?}", m.participants))
}

// 1 ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7866_invite() {
    let mut run = run_sipp("rfc7866.xml", 40000).await;
    let rec = run.recording().await;
    let m = &rec.manifest;
    let (l, r) = run.stereo(&rec).await;
    assert_stereo_call(m, &l, &r);
    assert_eq!(m.recording_key, "cmZjNzg2Ni1zZXNzaW9u");
    assert_eq!(m.recording_key_source, "session_id");
    assert_eq!(m.recording_id, None);
    assert_eq!(m.session_ids, ["cmZjNzg2Ni1zZXNzaW9u"]);
    assert_eq!(
        m.sip_session_ids,
        ["a1b2c3d4e5f60718293a4b5c6d7e8f90;remote=0f9e8d7c6b5a49382716f5e4d3c2b1a0"]
    );
    assert_eq!(m.participants.len(), 2);
    let alice = participant(m, "cmZjNzg2Ni1hbGljZQ==");
    assert_eq!(alice.name.as_deref(), Some("Alice"));
    assert_eq!(alice.aor.as_deref(), Some("sip:alice@atlanta.example.com"));
    let bob = participant(m, "cmZjNzg2Ni1ib2I=");
    assert_eq!(bob.name.as_deref(), Some("Bob"));
    assert_eq!(bob.aor.as_deref(), Some("sip:bob@biloxi.example.com"));
    let s: Vec<_> = m
        .streams
        .iter()
        .map(|s| (s.label.as_deref(), s.stream_id.as_deref(), s.channel))
        .collect();
    assert_eq!(
        s,
        [
            (Some("10"), Some("cmZjNzg2Ni1zdHJlYW0tYQ=="), Some(0)),
            (Some("11"), Some("cmZjNzg2Ni1zdHJlYW0tYg=="), Some(1)),
        ]
    );
    assert_eq!(m.channels.left.participants, ["cmZjNzg2Ni1hbGljZQ=="]);
    assert_eq!(m.channels.right.participants, ["cmZjNzg2Ni1ib2I="]);
    assert!(
        m.channels.reason.starts_with("participantstreamassoc"),
        "{}",
        m.channels.reason
    );
    assert_eq!(m.metadata_documents, ["metadata/0001.xml"]);
    assert!(m.metadata_errors.is_empty(), "{:?}", m.metadata_errors);
    assert!(m.pauses.is_empty(), "{:?}", m.pauses);
    let md = run.metadata(&rec, 1).await;
    assert!(md.contains("<sessionrecordingassoc"), "{md}");
    run.finish(1).await;
}

// 2 ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_style() {
    let mut run = run_sipp("platform.xml", 40200).await;
    let rec = run.recording().await;
    let m = &rec.manifest;
    let (l, r) = run.stereo(&rec).await;
    assert_stereo_call(m, &l, &r);
    // The Recording ID from the platform's own extension block names the recording.
    assert_eq!(m.recording_key, "rec-platform-0001");
    assert_eq!(m.recording_key_source, "recording_id");
    assert_eq!(m.recording_id.as_deref(), Some("rec-platform-0001"));
    assert_eq!(m.session_ids, ["cGxhdGZvcm0tc2Vzc2lvbg=="]);
    assert_eq!(m.sip_session_ids, ["platform-call-0001@203.0.113.10"]);
    assert_eq!(
        participant(m, "cGxhdGZvcm0tY2FsbGVy").aor.as_deref(),
        Some("sip:+15555550100@example.com")
    );
    assert_eq!(
        m.channels.left.participants,
        ["cGxhdGZvcm0tY2FsbGVy"],
        "caller left"
    );
    assert_eq!(m.channels.right.participants, ["cGxhdGZvcm0tY2FsbGVl"]);
    assert!(m.metadata_errors.is_empty(), "{:?}", m.metadata_errors);
    assert!(run
        .metadata(&rec, 1)
        .await
        .contains("<vp:callsid>CA-corpus-0001</vp:callsid>"));
    run.finish(1).await;
}

// 3 ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_namespace() {
    let mut run = run_sipp("legacy-namespace.xml", 40400).await;
    let rec = run.recording().await;
    let m = &rec.manifest;
    let (l, r) = run.stereo(&rec).await;
    assert_eq!(m.ended_by, "bye-from-src");
    assert!(
        (m.duration_seconds - 3.2).abs() < 0.3,
        "{}",
        m.duration_seconds
    );
    let session = "urn:uuid:5b0c1d2e-3f40-4a51-8b62-7c83d94ea5f6";
    assert_eq!(m.session_ids, [session]);
    assert_eq!(m.recording_key_source, "session_id");
    assert_eq!(
        m.recording_key,
        "urn_uuid_5b0c1d2e-3f40-4a51-8b62-7c83d94ea5f6"
    );
    let callee = "urn:uuid:0a1b2c3d-4e5f-4061-8273-94a5b6c7d8e9";
    let caller = "urn:uuid:f0e1d2c3-b4a5-4968-8776-655443322110";
    assert_eq!(participant(m, callee).name.as_deref(), Some("Callee"));
    assert_eq!(
        participant(m, caller).aor.as_deref(),
        Some("sip:caller@legacy.example.com")
    );
    // <send> inside <participant> maps the streams: the callee (listed first) sends label 2.
    let s: Vec<_> = m
        .streams
        .iter()
        .map(|s| (s.label.as_deref(), s.stream_id.as_deref(), s.channel))
        .collect();
    assert_eq!(
        s,
        [
            (Some("1"), Some("6c65676163792d73747265616d2d31"), Some(1)),
            (
                Some("2"),
                Some("urn:uuid:9e8d7c6b-5a49-4837-a625-140312f0e1d2"),
                Some(0)
            ),
        ]
    );
    assert_eq!(m.channels.left.participants, [callee]);
    assert_eq!(m.channels.right.participants, [caller]);
    assert!(m.metadata_errors.is_empty(), "{:?}", m.metadata_errors);
    tone_at(&l, 0.1, 2.9, 880.0, 440.0, "left (m-line 2)");
    tone_at(&r, 0.1, 2.9, 440.0, 880.0, "right (m-line 1)");
    run.finish(1).await;
}

// 4 ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tns_prefix() {
    let mut run = run_sipp("tns-prefix.xml", 40600).await;
    let rec = run.recording().await;
    let m = &rec.manifest;
    let (l, r) = run.stereo(&rec).await;
    assert_stereo_call(m, &l, &r);
    assert_eq!(m.recording_key, "dG5zLXNlc3Npb24=");
    assert_eq!(m.sip_session_ids, ["tns-call-0001"]);
    let agent = participant(m, "dG5zLWFnZW50");
    assert_eq!(agent.name.as_deref(), Some("Agent 42"));
    assert_eq!(
        agent.aor.as_deref(),
        Some("sip:agent42@contact-center.example.com")
    );
    assert_eq!(
        participant(m, "dG5zLWN1c3RvbWVy").aor.as_deref(),
        Some("tel:+15555550123")
    );
    let ids: Vec<_> = m.streams.iter().map(|s| s.stream_id.as_deref()).collect();
    assert_eq!(
        ids,
        [
            Some("dG5zLWFnZW50LXN0cmVhbQ=="),
            Some("dG5zLWN1c3RvbWVyLXN0cmVhbQ==")
        ]
    );
    assert!(m.channels.reason.starts_with("participantstreamassoc"));
    assert!(m.metadata_errors.is_empty(), "{:?}", m.metadata_errors);
    run.finish(1).await;
}

// 5 ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_first_and_third_part() {
    let mut run = run_sipp("metadata-first.xml", 40800).await;
    let rec = run.recording().await;
    let m = &rec.manifest;
    let (l, r) = run.stereo(&rec).await;
    assert_stereo_call(m, &l, &r);
    assert_eq!(m.recording_key, "bWRmaXJzdC1zZXNzaW9u");
    assert_eq!(m.participants.len(), 2);
    assert!(m.channels.reason.starts_with("participantstreamassoc"));
    // Only the metadata part is stored as metadata; the JSON part is not.
    assert_eq!(m.metadata_documents, ["metadata/0001.xml"]);
    let md = run.metadata(&rec, 1).await;
    assert!(
        md.starts_with("<?xml") && md.contains("bWRmaXJzdC1zZXNzaW9u"),
        "{md}"
    );
    assert!(!md.contains("tenant"), "{md}");
    run.finish(1).await;
}

// 6 ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_mline() {
    let mut run = run_sipp("mixed-mline.xml", 41000).await;
    let rec = run.recording().await;
    let m = &rec.manifest;
    let (l, r) = run.stereo(&rec).await;
    assert_eq!(m.ended_by, "bye-from-src");
    assert!(
        (m.duration_seconds - 3.2).abs() < 0.3,
        "{}",
        m.duration_seconds
    );
    assert_eq!(m.streams.len(), 1, "{:?}", m.streams);
    let s = &m.streams[0];
    assert_eq!(
        (s.label.as_deref(), s.stream_id.as_deref(), s.channel),
        (Some("mix"), Some("bWl4ZWQtc3RyZWFt"), Some(0))
    );
    assert!(s.packets_received >= 148, "{s:?}");
    assert_eq!(m.participants.len(), 2);
    tone_at(&l, 0.1, 2.9, 440.0, 880.0, "left (mixed stream)");
    assert_eq!(peak(&r), 0, "right channel silent: one mixed stream");
    run.finish(1).await;
}

// 7 ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_mlines() {
    let mut run = run_sipp("three-mlines.xml", 41200).await;
    let rec = run.recording().await;
    let m = &rec.manifest;
    let (l, r) = run.stereo(&rec).await;
    assert_eq!(m.ended_by, "bye-from-src");
    assert!(
        (m.duration_seconds - 3.2).abs() < 0.3,
        "{}",
        m.duration_seconds
    );
    assert_eq!(m.streams.len(), 3, "{:?}", m.streams);
    let ch: Vec<_> = m.streams.iter().map(|s| s.channel).collect();
    assert_eq!(ch, [Some(0), Some(1), Some(1)], "first participant left");
    for s in &m.streams {
        assert!(s.packets_received >= 148, "{s:?}");
    }
    assert_eq!(m.participants.len(), 3);
    assert_eq!(m.channels.left.participants, ["dGhyZWUtcDA="]);
    assert_eq!(
        m.channels.right.participants,
        ["dGhyZWUtcDE=", "dGhyZWUtcDI="]
    );
    assert_eq!(m.channels.right.streams, [1, 2]);
    tone_at(&l, 0.1, 2.9, 440.0, 880.0, "left (m-line 1)");
    assert!(
        tone_power(window(&l, 0.1, 2.9), 8000, 600.0) < 1e3,
        "no 600 Hz on the left"
    );
    // Right: m-lines 2 and 3 mixed.
    let rw = window(&r, 0.1, 2.9);
    let (p880, p600, p440) = (
        tone_power(rw, 8000, 880.0),
        tone_power(rw, 8000, 600.0),
        tone_power(rw, 8000, 440.0),
    );
    assert!(
        p880 > 1e5 && p600 > 1e5 && p880 > 100.0 * p440 && p600 > 100.0 * p440,
        "right: 880 Hz {p880:.0}, 600 Hz {p600:.0}, 440 Hz {p440:.0}"
    );
    run.finish(1).await;
}

// 8 ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_metadata() {
    let mut run = run_sipp("no-metadata.xml", 41400).await;
    let rec = run.recording().await;
    let m = &rec.manifest;
    let (l, r) = run.stereo(&rec).await;
    assert_stereo_call(m, &l, &r);
    // No metadata: the recording is named after the Call-ID, channels follow m-line order.
    assert_eq!(m.recording_key_source, "call_id");
    assert_eq!(m.recording_key, siprec_storage::sanitize_key(&m.call_id));
    assert!(!m.call_id.is_empty());
    assert!(m.participants.is_empty() && m.session_ids.is_empty());
    assert!(
        m.metadata_documents.is_empty(),
        "{:?}",
        m.metadata_documents
    );
    assert_eq!(m.channels.reason, "m-line order (no metadata)");
    let ch: Vec<_> = m.streams.iter().map(|s| s.channel).collect();
    assert_eq!(ch, [Some(0), Some(1)]);
    run.finish(1).await;
}

// 9-11 ------------------------------------------------------------------------------------

/// Hold scenarios: 1.5 s of audio, hold for 1.5 s, resume, 1.5 s of audio, BYE.
async fn hold_and_resume(scenario: &str, rtp_base: u16) {
    let mut run = run_sipp(scenario, rtp_base).await;
    let rec = run.recording().await;
    let m = &rec.manifest;
    let (l, r) = run.stereo(&rec).await;
    assert_eq!(m.ended_by, "bye-from-src");
    assert!(m.complete);
    // 1.6 s + 1.5 s + 1.6 s of pauses in the scenario, plus the SIP round trips.
    assert!(
        (m.duration_seconds - 4.7).abs() < 0.4,
        "duration {:.3} s",
        m.duration_seconds
    );
    assert_eq!(m.pauses.len(), 1, "one hold: {:?}", m.pauses);
    let (h0, h1) = (m.pauses[0].start, m.pauses[0].end);
    assert!((h0 - 1.6).abs() < 0.3, "hold starts at {h0:.3} s");
    assert!((h1 - h0 - 1.5).abs() < 0.3, "hold lasts {:.3} s", h1 - h0);
    for s in &m.streams {
        assert_eq!(
            s.packets_received, 150,
            "75 packets before and after: {s:?}"
        );
        assert_eq!(s.packets_lost, 0, "{s:?}");
    }
    // Tone before the hold, silence during it, tone after the resume, on both channels.
    tone_at(&l, 0.1, 1.4, 440.0, 880.0, "left before the hold");
    tone_at(&r, 0.1, 1.4, 880.0, 440.0, "right before the hold");
    silent_at(&l, h0, h1, "left on hold");
    silent_at(&r, h0, h1, "right on hold");
    tone_at(
        &l,
        h1 + 0.2,
        h1 + 1.3,
        440.0,
        880.0,
        "left after the resume",
    );
    tone_at(
        &r,
        h1 + 0.2,
        h1 + 1.3,
        880.0,
        440.0,
        "right after the resume",
    );
    run.finish(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_inactive() {
    hold_and_resume("hold-inactive.xml", 41600).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_zero_addr() {
    hold_and_resume("hold-zero-addr.xml", 41800).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_port_zero() {
    hold_and_resume("hold-port-zero.xml", 42000).await;
}

// 12 --------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_metadata() {
    let mut run = run_sipp("update-metadata.xml", 42200).await;
    let rec = run.recording().await;
    let m = &rec.manifest;
    let (l, r) = run.stereo(&rec).await;
    assert_stereo_call(m, &l, &r);
    assert!(m.pauses.is_empty(), "an UPDATE without SDP is no pause");
    assert_eq!(
        m.metadata_documents,
        ["metadata/0001.xml", "metadata/0002.xml"]
    );
    let first = run.metadata(&rec, 1).await;
    let second = run.metadata(&rec, 2).await;
    assert!(
        first.contains(">Bob<") && !first.contains("Robert"),
        "{first}"
    );
    assert!(second.contains(">Robert Example<"), "{second}");
    // The manifest shows the state after the update.
    let callee = participant(m, "dXBkYXRlLWJvYg==");
    assert_eq!(callee.name.as_deref(), Some("Robert Example"));
    assert!(m.metadata_errors.is_empty(), "{:?}", m.metadata_errors);
    // The UPDATE (at 1 s) does not disturb the audio.
    for (ch, f, o) in [(&l, 440.0, 880.0), (&r, 880.0, 440.0)] {
        let w = window(ch, 0.7, 1.5);
        assert!(residual(w, f) < 0.01, "{f} Hz clean around the UPDATE");
        assert_tone(w, f, o, "around the UPDATE");
    }
    run.finish(1).await;
}

// 13 --------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_transfer() {
    let mut run = run_sipp("partial-transfer.xml", 42400).await;
    let rec = run.recording().await;
    let m = &rec.manifest;
    let (l, r) = run.stereo(&rec).await;
    assert_stereo_call(m, &l, &r);
    assert!(m.pauses.is_empty(), "{:?}", m.pauses);
    assert_eq!(
        m.metadata_documents,
        ["metadata/0001.xml", "metadata/0002.xml"]
    );
    let partial = run.metadata(&rec, 2).await;
    assert!(
        partial.contains("<datamode>partial</datamode>") && partial.contains(">Carol<"),
        "{partial}"
    );
    assert!(m.metadata_errors.is_empty(), "{:?}", m.metadata_errors);
    // The partial document is applied on top of the complete one: Carol joins, Bob stays
    // listed, the session is unchanged.
    let (alice, bob, carol) = (
        "dHJhbnNmZXItYWxpY2U=",
        "dHJhbnNmZXItYm9i",
        "dHJhbnNmZXItY2Fyb2w=",
    );
    assert_eq!(m.participants.len(), 3, "{:?}", m.participants);
    assert_eq!(participant(m, carol).name.as_deref(), Some("Carol"));
    assert_eq!(
        participant(m, carol).aor.as_deref(),
        Some("sip:carol@example.com")
    );
    participant(m, bob);
    assert_eq!(m.session_ids, ["dHJhbnNmZXItc2Vzc2lvbg=="]);
    assert_eq!(m.recording_key, "dHJhbnNmZXItc2Vzc2lvbg==");
    // The streams keep their channels; the right channel carried Bob, then Carol.
    let ch: Vec<_> = m.streams.iter().map(|s| s.channel).collect();
    assert_eq!(ch, [Some(0), Some(1)]);
    assert_eq!(m.channels.left.participants, [alice]);
    assert!(
        m.channels.right.participants.contains(&bob.to_string())
            && m.channels.right.participants.contains(&carol.to_string()),
        "participants heard on the right channel: Bob then Carol, got {:?}",
        m.channels.right.participants
    );
    // The re-INVITE (at 1.5 s, same media) does not disturb the audio.
    for (ch, f) in [(&l, 440.0), (&r, 880.0)] {
        assert!(
            residual(window(ch, 1.2, 2.0), f) < 0.01,
            "{f} Hz clean around the re-INVITE"
        );
    }
    run.finish(1).await;
}

// 14 --------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_before_answer() {
    let mut run = run_sipp("cancel-before-answer.xml", 42600).await;
    // srs-server answers an INVITE at once (100 and 200 together), so the CANCEL finds it
    // answered: 200 without effect (RFC 3261 section 9.2), no 487; SIPp then sends ACK and
    // BYE straight away. The result is one short, complete recording without media.
    let finals: Vec<_> = run
        .responses()
        .into_iter()
        .filter(|(code, _)| *code >= 200)
        .collect();
    let want = [(200, "1 INVITE"), (200, "1 CANCEL"), (200, "2 BYE")];
    assert_eq!(
        finals,
        want.map(|(c, s)| (c, s.to_string())),
        "final responses SIPp received"
    );
    let rec = run.recording().await;
    let m = &rec.manifest;
    let (l, r) = run.stereo(&rec).await;
    assert_eq!(m.ended_by, "bye-from-src");
    assert!(m.complete);
    assert!(m.duration_seconds < 0.5, "{}", m.duration_seconds);
    assert_eq!(m.recording_key, "Y2FuY2VsLXNlc3Npb24=");
    for s in &m.streams {
        assert_eq!(s.packets_received, 0, "{s:?}");
    }
    assert_eq!((peak(&l), peak(&r)), (0, 0));
    run.finish(1).await;
}

// 15 --------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bye_before_ack() {
    let mut run = run_sipp("bye-before-ack.xml", 42800).await;
    let rec = run.recording().await;
    let m = &rec.manifest;
    let (l, r) = run.stereo(&rec).await;
    assert_eq!(m.ended_by, "bye-from-src");
    assert!(m.complete);
    assert!(
        (m.duration_seconds - 1.6).abs() < 0.3,
        "BYE 1.6 s after the 200: {:.3} s",
        m.duration_seconds
    );
    assert_eq!(m.recording_key, "YnllYWNrLXNlc3Npb24=");
    for s in &m.streams {
        assert_eq!(
            s.packets_received, 75,
            "media before the ACK is recorded: {s:?}"
        );
    }
    tone_at(&l, 0.1, 1.4, 440.0, 880.0, "left");
    tone_at(&r, 0.1, 1.4, 880.0, 440.0, "right");
    run.finish(1).await;
}

// 16 --------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtp_impairments() {
    let mut run = run_sipp("rtp-impairments.xml", 43000).await;
    let rec = run.recording().await;
    let m = &rec.manifest;
    let (l, r) = run.stereo(&rec).await;
    assert_eq!(m.ended_by, "bye-from-src");
    assert!(
        (m.duration_seconds - 3.2).abs() < 0.3,
        "duration {:.3} s",
        m.duration_seconds
    );
    assert_eq!(m.streams.len(), 2);
    let (a, b) = (&m.streams[0], &m.streams[1]);
    // 150 packets sent: 5 lost, 1 duplicate (dropped), 2 out of order, 1 SSRC change.
    assert_eq!(
        (
            a.packets_received,
            a.packets_lost,
            a.packets_duplicated,
            a.packets_reordered,
            a.ssrc_changes
        ),
        (145, 5, 1, 2, 1),
        "{a:?}"
    );
    assert_eq!(a.channel, Some(0));
    assert_eq!(
        (
            b.packets_received,
            b.packets_lost,
            b.ssrc_changes,
            b.channel
        ),
        (150, 0, 0, Some(1)),
        "{b:?}"
    );
    // The 440 Hz stays on the left channel, the 880 Hz on the right.
    tone_at(&l, 0.1, 0.75, 440.0, 880.0, "left before the loss");
    tone_at(&l, 0.95, 2.15, 440.0, 880.0, "left after the loss");
    tone_at(&l, 2.3, 2.95, 440.0, 880.0, "left after the SSRC change");
    tone_at(&r, 0.1, 2.95, 880.0, 440.0, "right");
    assert!(residual(window(&r, 0.1, 2.95), 880.0) < 0.01, "right clean");
    // Reordered packets are put back in place: the tone runs on without a seam.
    assert!(
        residual(window(&l, 1.1, 1.5), 440.0) < 0.01,
        "left clean across the swapped packets"
    );
    // The 100 ms lost (0.8-0.9 s) is silence, not something else.
    silent_at(&l, 0.81, 0.89, "left where packets 40-44 were lost");
    run.finish(1).await;
}

// 17 --------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telephone_event() {
    let mut run = run_sipp("telephone-event.xml", 43200).await;
    let rec = run.recording().await;
    let m = &rec.manifest;
    let (l, r) = run.stereo(&rec).await;
    assert_eq!(m.ended_by, "bye-from-src");
    assert!(
        (m.duration_seconds - 3.2).abs() < 0.3,
        "{}",
        m.duration_seconds
    );
    let (a, b) = (&m.streams[0], &m.streams[1]);
    // 150 audio + 12 event packets share the sequence space: nothing is lost, and the
    // event packets count as received (they are accepted, just not decoded).
    assert_eq!(a.packets_lost, 0, "{a:?}");
    assert_eq!(a.packets_received, 162, "{a:?}");
    assert_eq!(
        a.codecs,
        ["PCMU/8000"],
        "telephone-event is not an audio codec"
    );
    assert_eq!(b.packets_received, 150, "{b:?}");
    tone_at(&l, 0.1, 2.9, 440.0, 880.0, "left");
    tone_at(&r, 0.1, 2.9, 880.0, 440.0, "right");
    // Event payloads decoded as PCMU would be bursts near full scale (0x05 and 0x0a/0x8a
    // are loud u-law codes); the tone peaks at 8000.
    let ev = window(&l, 0.9, 1.4);
    assert!(peak(ev) < 8300, "no burst in the event: peak {}", peak(ev));
    assert!(
        residual(ev, 440.0) < 0.01,
        "440 Hz clean through the event: residual {}",
        residual(ev, 440.0)
    );
    for f in [1000.0, 2000.0, 3000.0] {
        let p = tone_power(ev, 8000, f);
        assert!(p < 1e3, "no broadband energy at {f} Hz: {p:.1}");
    }
    run.finish(1).await;
}
