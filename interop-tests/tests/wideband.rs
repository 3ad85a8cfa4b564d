//! Codecs end to end: a test SRC sends G.722 and Opus to srs-server, which records at 16 kHz
//! (any wideband stream) and keeps the content above 4 kHz; a narrowband stream in the same
//! call is resampled; configured 8 kHz and 48 kHz recordings still get the tones; comfort
//! noise (RFC 3389) is recorded as silence.

use std::time::Duration;

use interop_tests::audio::{deinterleave, tone_power};
use interop_tests::{read_wav, TestSrc, TestTransport};
use siprec_sip::transaction::Transport;

async fn server(dir: &std::path::Path, rtp: &str, recording_rate: u32) -> srs_server::Server {
    let cfg = srs_server::Config {
        listen: vec!["udp:127.0.0.1:0".into()],
        rtp_ports: rtp.into(),
        storage: dir.join("recordings").display().to_string(),
        spool: dir.join("spool"),
        recording_rate,
        ..srs_server::Config::default()
    };
    srs_server::Server::start(cfg.validate().unwrap())
        .await
        .unwrap()
}

/// Records one call of `secs` with the two legs and returns (rate, left, right, manifest).
async fn record(
    srs: &srs_server::Server,
    leg1: (u8, f64),
    leg2: (u8, f64),
    secs: u64,
) -> (u32, Vec<i16>, Vec<i16>, siprec_storage::Manifest) {
    let mut published = srs.subscribe();
    let udp = srs
        .local_addrs()
        .iter()
        .find(|l| l.transport == Transport::Udp)
        .unwrap()
        .addr;
    let mut src = TestSrc::new(TestTransport::Udp, udp, leg1, leg2)
        .await
        .unwrap();
    let offer = src.offer("sendonly");
    let md = src.metadata(None);
    let r = src.invite(&offer, Some(&md)).await.unwrap();
    assert_eq!(r.status_code.code(), 200);
    src.stream(Duration::from_secs(secs)).await.unwrap();
    src.hang_up().await;
    let rec = interop_tests::next_recording(&mut published).await;
    let (spec, samples) = read_wav(srs, &rec.folder).await.unwrap();
    assert_eq!(spec.channels, 2);
    assert_eq!(rec.manifest.sample_rate, spec.sample_rate);
    let (l, r) = deinterleave(&samples);
    (spec.sample_rate, l, r, rec.manifest)
}

/// `want` Hz dominates `x` (rate `rate`) over each of `others`.
fn assert_tone_at(x: &[i16], rate: u32, want: f64, others: &[f64], what: &str) {
    let pw = tone_power(x, rate, want);
    assert!(pw > 1e5, "{what}: {want} Hz power {pw:.1}");
    for &o in others {
        let po = tone_power(x, rate, o);
        assert!(
            pw > 100.0 * po,
            "{what}: {want} Hz {pw:.1} vs {o} Hz {po:.1}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g722_and_opus_are_recorded_at_16_khz_with_content_above_4_khz() {
    let dir = tempfile::tempdir().unwrap();
    let srs = server(dir.path(), "37200-37299", 0).await;
    // G.722 (payload type 9, RTP clock 8000 but 16 kHz audio) at 6 kHz, Opus at 5 kHz.
    let (rate, l, r, m) = record(&srs, (9, 6000.0), (111, 5000.0), 2).await;
    assert_eq!(rate, 16000, "a wideband stream makes a 16 kHz recording");
    let secs = l.len() as f64 / 16000.0;
    assert!((secs - 2.0).abs() < 0.25, "duration {secs:.3} s");
    let (lw, rw) = (&l[4000..28000], &r[4000..28000]);
    assert_tone_at(lw, rate, 6000.0, &[5000.0, 2000.0], "left (G.722)");
    assert_tone_at(rw, rate, 5000.0, &[6000.0, 2500.0], "right (Opus)");
    assert_eq!(m.streams[0].codecs, ["G722/8000"]);
    assert_eq!(m.streams[1].codecs, ["OPUS/48000"]);
    for s in &m.streams {
        assert_eq!((s.packets_received, s.packets_lost), (100, 0), "{s:?}");
    }
    srs.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn narrowband_and_wideband_mix_and_a_forced_8_khz_rate() {
    let dir = tempfile::tempdir().unwrap();
    // PCMU (440 Hz) with G.722 (1 kHz): recorded at 16 kHz, PCMU resampled.
    let srs = server(&dir.path().join("a"), "37300-37399", 0).await;
    let (rate, l, r, _) = record(&srs, (0, 440.0), (9, 1000.0), 1).await;
    assert_eq!(rate, 16000);
    assert_tone_at(
        &l[3200..12800],
        rate,
        440.0,
        &[1000.0, 880.0],
        "left (PCMU at 16 kHz)",
    );
    assert_tone_at(
        &r[3200..12800],
        rate,
        1000.0,
        &[440.0, 2000.0],
        "right (G.722)",
    );
    srs.shutdown().await.unwrap();

    // recording_rate = 8000: G.722 and Opus are brought down to 8 kHz.
    let srs = server(&dir.path().join("b"), "37400-37499", 8000).await;
    let (rate, l, r, _) = record(&srs, (9, 1000.0), (111, 1500.0), 1).await;
    assert_eq!(rate, 8000);
    assert_tone_at(
        &l[1600..6400],
        rate,
        1000.0,
        &[1500.0, 3000.0],
        "left (G.722 at 8 kHz)",
    );
    assert_tone_at(
        &r[1600..6400],
        rate,
        1500.0,
        &[1000.0, 3000.0],
        "right (Opus at 8 kHz)",
    );
    srs.shutdown().await.unwrap();
}

/// siprec-client's `Recorder` offering only `codec`: srs-server records at 16 kHz and the
/// tones above 4 kHz come through.
async fn client_sends(codec: siprec_sdp::Format, rtp: &str) {
    use siprec_client::{CallContext, ClientConfig, Recorder, Reply, ToneSource};
    let dir = tempfile::tempdir().unwrap();
    let srs = server(dir.path(), rtp, 0).await;
    let mut published = srs.subscribe();
    let udp = srs.local_addrs()[0].addr;
    let name = codec.encoding.clone();
    let rec = Recorder::new(
        ClientConfig {
            codecs: vec![codec],
            ..ClientConfig::default()
        },
        CallContext::example(),
        Box::new(ToneSource::new(6000.0, 8000.0)),
        Box::new(ToneSource::new(5000.0, 8000.0)),
    )
    .await
    .unwrap();
    let out = rec
        .start(&format!("sip:{udp}"), Some("wideband"))
        .await
        .unwrap();
    assert_eq!(out.reply, Reply::Started, "{out:?}");
    // 1.5 s of call (the recorder sends in real time): the length of the recording, not a
    // wait for an event.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rec.stop().await.unwrap().reply, Reply::Stopped);
    rec.close().await.unwrap();
    let got = interop_tests::next_recording(&mut published).await;
    let (spec, samples) = read_wav(&srs, &got.folder).await.unwrap();
    assert_eq!(spec.sample_rate, 16000, "{name}: wideband recording");
    let (l, r) = deinterleave(&samples);
    assert!(l.len() > 16000, "{name}: {} samples", l.len());
    assert_tone_at(
        &l[4000..16000],
        16000,
        6000.0,
        &[5000.0, 2000.0],
        &format!("{name} left"),
    );
    assert_tone_at(
        &r[4000..16000],
        16000,
        5000.0,
        &[6000.0, 2500.0],
        &format!("{name} right"),
    );
    assert!(got
        .manifest
        .streams
        .iter()
        .all(|s| s.codecs[0].starts_with(&name)));
    srs.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_sends_g722_and_opus() {
    client_sends(siprec_sdp::Format::g722(), "37700-37799").await;
    client_sends(siprec_sdp::Format::opus(111), "37800-37899").await;
}

/// A codec change by re-INVITE mid-call (PCMU → G.722 on the caller's leg): the recording
/// (8 kHz, chosen at the start) carries the tone before and after, and recording.json lists
/// both codecs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codec_change_by_reinvite_mid_call() {
    let dir = tempfile::tempdir().unwrap();
    let srs = server(dir.path(), "37900-37999", 0).await;
    let mut published = srs.subscribe();
    let udp = srs.local_addrs()[0].addr;
    let mut src = TestSrc::new(TestTransport::Udp, udp, (0, 1000.0), (8, 700.0))
        .await
        .unwrap();
    src.start(None).await;
    src.stream(Duration::from_secs(1)).await.unwrap();
    src.legs[0].set_payload_type(9).unwrap();
    let offer = src.offer("sendonly");
    let r = src.invite(&offer, None).await.unwrap();
    assert_eq!(r.status_code.code(), 200);
    assert!(String::from_utf8_lossy(&r.body).contains("G722/8000"));
    src.stream(Duration::from_secs(1)).await.unwrap();
    src.hang_up().await;
    let rec = interop_tests::next_recording(&mut published).await;
    assert_eq!(rec.manifest.streams[0].codecs, ["PCMU/8000", "G722/8000"]);
    let (spec, samples) = read_wav(&srs, &rec.folder).await.unwrap();
    assert_eq!(spec.sample_rate, 8000, "the rate chosen at the start stays");
    let (l, r) = deinterleave(&samples);
    assert_tone_at(&l[1600..6400], 8000, 1000.0, &[700.0, 2000.0], "left, PCMU");
    assert_tone_at(
        &l[10400..15200],
        8000,
        1000.0,
        &[700.0, 2000.0],
        "left, G.722",
    );
    assert_tone_at(
        &r[10400..15200],
        8000,
        700.0,
        &[1000.0],
        "right, PCMA throughout",
    );
    srs.shutdown().await.unwrap();
}

/// A payload-type switch within the answered set (PCMU → PCMA, no new offer): the tone goes
/// on and recording.json lists both codecs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_type_switch_within_the_answered_set() {
    let dir = tempfile::tempdir().unwrap();
    let srs = server(dir.path(), "38000-38099", 0).await;
    let mut published = srs.subscribe();
    let udp = srs.local_addrs()[0].addr;
    let mut src = TestSrc::new(TestTransport::Udp, udp, (0, 1000.0), (0, 700.0))
        .await
        .unwrap();
    src.legs[0].also_offer = vec![8];
    let r = src.start(None).await;
    let answer = String::from_utf8_lossy(&r.body).to_string();
    assert!(
        answer.contains("RTP/AVP 0 8 101"),
        "both answered: {answer}"
    );
    src.stream(Duration::from_millis(600)).await.unwrap();
    src.legs[0].set_payload_type(8).unwrap();
    src.stream(Duration::from_millis(600)).await.unwrap();
    src.hang_up().await;
    let rec = interop_tests::next_recording(&mut published).await;
    let s = &rec.manifest.streams[0];
    assert_eq!(s.codecs, ["PCMU/8000", "PCMA/8000"], "{s:?}");
    assert_eq!((s.packets_received, s.packets_lost), (60, 0), "{s:?}");
    let (_, samples) = read_wav(&srs, &rec.folder).await.unwrap();
    let (l, _) = deinterleave(&samples);
    assert_tone_at(&l[1600..4000], 8000, 1000.0, &[700.0], "left, PCMU");
    assert_tone_at(&l[5600..8800], 8000, 1000.0, &[700.0], "left, PCMA");
    srs.shutdown().await.unwrap();
}

/// recording_rate = 48000: Opus (7 kHz) and PCMU (440 Hz) are both brought to 48 kHz.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_48_khz_rate() {
    let dir = tempfile::tempdir().unwrap();
    let srs = server(dir.path(), "38600-38699", 48000).await;
    let (rate, l, r, m) = record(&srs, (111, 7000.0), (0, 440.0), 1).await;
    assert_eq!(rate, 48000);
    let secs = l.len() as f64 / 48000.0;
    assert!((secs - 1.0).abs() < 0.25, "duration {secs:.3} s");
    assert_tone_at(
        &l[9600..38400],
        rate,
        7000.0,
        &[440.0, 3500.0, 14000.0],
        "left (Opus at 48 kHz)",
    );
    assert_tone_at(
        &r[9600..38400],
        rate,
        440.0,
        &[7000.0, 880.0],
        "right (PCMU at 48 kHz)",
    );
    assert_eq!(m.sample_rate, 48000);
    srs.shutdown().await.unwrap();
}

/// RFC 3389 comfort noise with discontinuous transmission in the middle of a stream (a CN
/// packet every 100 ms, nothing else, then a talkspurt with the marker bit) is silence in the
/// file; the tone after it lands where its timestamps say, and both channels keep the call's
/// length.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comfort_noise_is_recorded_as_silence() {
    let dir = tempfile::tempdir().unwrap();
    let srs = server(dir.path(), "38700-38799", 0).await;
    let mut published = srs.subscribe();
    let udp = srs.local_addrs()[0].addr;
    let mut src = TestSrc::new(TestTransport::Udp, udp, (0, 1000.0), (0, 700.0))
        .await
        .unwrap();
    src.legs[0].also_offer = vec![13];
    let r = src.start(None).await;
    let answer = String::from_utf8_lossy(&r.body).to_string();
    assert!(
        answer.contains("a=rtpmap:13 CN/8000"),
        "CN answered: {answer}"
    );
    src.stream(Duration::from_millis(600)).await.unwrap();
    src.legs[0].comfort_noise = true;
    src.stream(Duration::from_millis(600)).await.unwrap();
    src.legs[0].comfort_noise = false;
    src.stream(Duration::from_millis(600)).await.unwrap();
    src.hang_up().await;
    let rec = interop_tests::next_recording(&mut published).await;
    let s = &rec.manifest.streams[0];
    // 30 + 6 CN packets + 30 on the left (the sequence numbers have no gap: DTX).
    assert_eq!((s.packets_received, s.packets_lost), (66, 0), "{s:?}");
    assert_eq!(rec.manifest.streams[1].packets_received, 90);
    assert_eq!(
        s.codecs,
        ["PCMU/8000"],
        "CN is not a codec of the file: {s:?}"
    );
    let (_, samples) = read_wav(&srs, &rec.folder).await.unwrap();
    let (l, r) = deinterleave(&samples);
    assert_eq!(l.len(), r.len());
    assert_tone_at(&l[800..4000], 8000, 1000.0, &[700.0], "left before CN");
    // 4800..9600 is comfort noise; allow 20 ms of arrival jitter at each edge.
    let quiet = &l[4800 + 160..9600 - 160];
    let peak = quiet.iter().map(|x| x.unsigned_abs()).max().unwrap_or(0);
    assert_eq!(peak, 0, "comfort noise is silence");
    assert_tone_at(&l[10_400..13_600], 8000, 1000.0, &[700.0], "left after CN");
    // The talkspurt starts at 1.2 s (sample 9600) on the sender's clock: placed by its
    // timestamp, within a packet of arrival jitter, not re-anchored late.
    let back = 9600 - 160
        + l[9600 - 160..]
            .iter()
            .position(|x| x.unsigned_abs() > 2000)
            .unwrap();
    assert!(back.abs_diff(9600) <= 160, "talkspurt at sample {back}");
    assert_tone_at(&r[5600..8800], 8000, 700.0, &[1000.0], "right all along");
    srs.shutdown().await.unwrap();
}
