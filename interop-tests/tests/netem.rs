//! A lossy, jittery network between the SRC and srs-server.
//!
//! 1. The test SRC schedules every packet itself: 1 % loss and 0-30 ms of jitter on both
//!    legs, and an SSRC change with a new timestamp base on one leg mid-call.
//! 2. siprec-client's `Recorder` sends through a network shim (a relay in front of
//!    srs-server that routes each stream's RTP through a [`Netem`] socket): 1 % loss, 0-30 ms
//!    of jitter and 1 % of the packets 200 ms late (beyond the 60 ms jitter window).
//!
//! In both the two channels stay aligned within 20 ms: tone onsets sent at the same instant
//! on both legs land within 160 samples of each other.

use std::time::Duration;

use interop_tests::audio::deinterleave;
use interop_tests::fault_relay::FaultRelay;
use interop_tests::netem::Netem;
use interop_tests::{read_wav, start_srs, TestSrc, TestTransport};
use siprec_sip::transaction::Transport;

/// Frames (20 ms) with audio: silent for the first 0.5 s and for 150..160 (3.0-3.2 s).
fn audible(k: u64) -> bool {
    !(k < 25 || (150..160).contains(&k))
}

/// First sample at or after `from` louder than a quiet floor.
fn onset(ch: &[i16], from: usize) -> usize {
    from + ch[from..]
        .iter()
        .position(|x| x.unsigned_abs() > 2000)
        .expect("an onset")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loss_jitter_and_an_ssrc_change_keep_the_channels_aligned() {
    let dir = tempfile::tempdir().unwrap();
    let srs = start_srs(dir.path(), 22400).await.unwrap();
    let mut published = srs.subscribe();
    let udp = srs
        .local_addrs()
        .iter()
        .find(|l| l.transport == Transport::Udp)
        .unwrap()
        .addr;
    let mut src = TestSrc::new(TestTransport::Udp, udp, (0, 440.0), (0, 880.0))
        .await
        .unwrap();
    src.start(Some("netem")).await;

    // The network: 1 % of packets lost (never an onset frame), 0-30 ms of delay each, so
    // packets overtake each other; leg 1 changes SSRC and timestamp base at frame 100 (2 s).
    let frames = 250u64;
    let mut schedule = Vec::new();
    let mut lost = [0u32; 2];
    for (leg, lost) in lost.iter_mut().enumerate() {
        for k in 0..frames {
            let drop = (k * 37 + leg as u64 * 11) % 100 == 3 && k != 25 && k != 160;
            if drop {
                *lost += 1;
                continue;
            }
            let jitter = Duration::from_millis((k * 7 + leg as u64 * 13) % 31);
            let change = (leg == 0).then_some(100);
            let pkt = src.legs[leg].frame_packet(k, change, audible).unwrap();
            schedule.push((Duration::from_millis(20 * k) + jitter, leg, pkt));
        }
    }
    schedule.sort_by_key(|(t, _, _)| *t);
    let start = tokio::time::Instant::now();
    for (t, leg, pkt) in &schedule {
        tokio::time::sleep_until(start + *t).await;
        src.legs[*leg].send_bytes(pkt).await.unwrap();
    }
    src.hang_up().await;
    let rec = interop_tests::next_recording(&mut published).await;
    let m = &rec.manifest;
    assert_eq!(m.streams[0].ssrc_changes, 1, "{:?}", m.streams[0]);
    for (s, l) in m.streams.iter().zip(lost) {
        assert_eq!(s.packets_received, frames - u64::from(l), "{s:?}");
        assert!(
            s.packets_reordered > 0,
            "the jitter reorders packets: {s:?}"
        );
    }
    let (_, samples) = read_wav(&srs, &rec.folder).await.unwrap();
    let (l, r) = deinterleave(&samples);
    for (what, from) in [("start", 0usize), ("after the SSRC change", 2900 * 8)] {
        let (a, b) = (onset(&l, from), onset(&r, from));
        let apart_ms = a.abs_diff(b) as f64 / 8.0;
        eprintln!("{what}: channels {apart_ms} ms apart");
        assert!(
            apart_ms <= 20.0,
            "{what}: channels {apart_ms} ms apart ({a} vs {b})"
        );
    }
    srs.shutdown().await.unwrap();
}

/// 300 ms of a tone at the start of every second, silence for the rest (16 kHz source).
#[derive(Debug)]
struct Bursts {
    tone: siprec_client::ToneSource,
    pos: u64,
}

impl siprec_client::MediaSource for Bursts {
    fn read(&mut self, out: &mut [i16]) {
        self.tone.read(out);
        for s in out.iter_mut() {
            if self.pos % 16_000 >= 4_800 {
                *s = 0;
            }
            self.pos += 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_through_a_lossy_jittery_network_keeps_the_channels_aligned() {
    use siprec_client::{CallContext, ClientConfig, Recorder, Reply, ToneSource};
    let dir = tempfile::tempdir().unwrap();
    let srs = start_srs(dir.path(), 22600).await.unwrap();
    let mut published = srs.subscribe();
    let addr = |t| {
        srs.local_addrs()
            .iter()
            .find(|l| l.transport == t)
            .unwrap()
            .addr
    };
    let netem = Netem::lossy_jittery();
    let (relay, shim) =
        FaultRelay::start_with_netem(addr(Transport::Udp), addr(Transport::Tcp), netem)
            .await
            .unwrap();
    let bursts = |freq| Bursts {
        tone: ToneSource::new(freq, 8000.0),
        pos: 0,
    };
    let rec = Recorder::new(
        ClientConfig::default(),
        CallContext::example(),
        Box::new(bursts(440.0)),
        Box::new(bursts(880.0)),
    )
    .await
    .unwrap();
    let out = rec
        .start(
            &format!("sip:{};transport=udp", relay.udp),
            Some("netem-client"),
        )
        .await
        .unwrap();
    assert_eq!(out.reply, Reply::Started, "{out:?}");
    // The call's length (the recorder sends in real time), not a wait for an event.
    tokio::time::sleep(Duration::from_millis(5200)).await;
    assert_eq!(rec.stop().await.unwrap().reply, Reply::Stopped);
    rec.close().await.unwrap();
    let got = interop_tests::next_recording(&mut published).await;
    let m = &got.manifest;
    assert_eq!(m.streams.len(), 2);
    for (i, s) in m.streams.iter().enumerate() {
        let (through, dropped, late) = shim.stream(i).expect("the shim carried the stream");
        eprintln!("stream {i}: shim {through} in, {dropped} dropped, {late} late; srs {s:?}");
        assert!(through > 240, "about 5 s of packets: {through}");
        assert!(
            dropped >= 2 && late >= 2,
            "the schedule hit the stream: {dropped} {late}"
        );
        // The shim still holds the last packet or two (up to 30 ms) when the BYE ends the
        // session.
        let forwarded = through - dropped;
        assert!(
            (forwarded - 2..=forwarded).contains(&s.packets_received),
            "{forwarded} forwarded: {s:?}"
        );
        assert_eq!(s.packets_lost, dropped, "{s:?}");
        // Every packet the shim held back is late; a stall of this (shared) machine beyond
        // the 60 ms window may make one or two more.
        assert!(
            (late..=late + 2).contains(&s.packets_late),
            "{late} held back beyond the jitter window: {s:?}"
        );
        assert!(
            s.packets_reordered > 0,
            "the jitter reorders packets: {s:?}"
        );
    }
    let (_, samples) = read_wav(&srs, &got.folder).await.unwrap();
    let (l, r) = deinterleave(&samples);
    // Onsets of the bursts after the first 2 s drift window (the first packet's own delay
    // anchors each stream; the timeline then follows each sender's least-delayed packets).
    for from in [2500 * 8usize, 3500 * 8] {
        let (a, b) = (onset(&l, from), onset(&r, from));
        let apart_ms = a.abs_diff(b) as f64 / 8.0;
        eprintln!("burst after {} ms: channels {apart_ms} ms apart", from / 8);
        assert!(
            apart_ms <= 20.0,
            "channels {apart_ms} ms apart ({a} vs {b})"
        );
    }
    drop(relay);
    srs.shutdown().await.unwrap();
}
