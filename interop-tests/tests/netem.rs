//! A simulated network between the SRC and srs-server (the sender schedules every packet
//! itself): 1 % loss and 0-30 ms of jitter on both legs, and an SSRC change with a new
//! timestamp base on one leg mid-call. The two channels stay aligned within 20 ms: tone
//! onsets sent at the same instant on both legs land within 160 samples of each other, at
//! the start and again after the SSRC change.

use std::time::Duration;

use interop_tests::audio::deinterleave;
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
