//! `MediaSession` in virtual time: every per-packet decision of a recording (source latching
//! and the source check, pause gating, decoder choice, duplicates, SRTP and its context across
//! re-INVITEs, re-latching, media timeout), driven packet by packet with made-up instants.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use siprec_recorder::session::{
    MediaEvent, MediaSession, Payload, Scratch, SessionConfig, StreamSetup,
};
use siprec_recorder::{MemoryOutput, MemorySink, TimelineConfig};
use siprec_rtp::g711::{alaw_encode, ulaw_encode};
use siprec_rtp::srtp::{SdesKey, SrtpSender, SrtpSuite};
use siprec_rtp::RtpHeader;

const MS20: Duration = Duration::from_millis(20);

struct Harness {
    t0: Instant,
    session: Option<MediaSession>,
    out: MemoryOutput,
    scratch: Scratch,
}

fn config() -> SessionConfig {
    SessionConfig {
        media_timeout: Duration::from_secs(2),
        timeline: TimelineConfig {
            jitter_window: Duration::from_millis(60),
            checkpoint_interval: Duration::from_millis(20),
            ..TimelineConfig::default()
        },
        ..SessionConfig::default()
    }
}

impl Harness {
    fn new(config: SessionConfig, setups: &[StreamSetup]) -> Harness {
        let t0 = Instant::now();
        let (sink, out) = MemorySink::new();
        let mut s = MediaSession::new(t0, config, Box::new(sink), false).unwrap();
        s.update(t0, setups, false);
        Harness {
            t0,
            session: Some(s),
            out,
            scratch: Scratch::new(),
        }
    }

    fn s(&mut self) -> &mut MediaSession {
        self.session.as_mut().unwrap()
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn feed(&mut self, index: usize, from: SocketAddr, pkt: &[u8], ms: u64) {
        let now = self.at(ms);
        let s = self.session.as_mut().unwrap();
        s.handle_packet(index, from, pkt, now, &mut self.scratch);
        s.handle_timeout(now);
    }

    fn finish(&mut self, ms: u64) -> siprec_recorder::session::SessionReport {
        let now = self.at(ms);
        self.session.take().unwrap().finish(now).unwrap()
    }
}

fn pcmu() -> Vec<Payload> {
    vec![Payload::new(0, "PCMU", 8000), Payload::new(8, "PCMA", 8000)]
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A 20 ms G.711 packet of constant `level` (PCMU for pt 0, PCMA for pt 8).
fn rtp(pt: u8, seq: u16, level: i16) -> Vec<u8> {
    let code = if pt == 8 {
        alaw_encode(level)
    } else {
        ulaw_encode(level)
    };
    let h = RtpHeader {
        marker: false,
        payload_type: pt,
        sequence: seq,
        timestamp: 1000 + 160 * u32::from(seq),
        ssrc: 0x5555,
    };
    let mut out = vec![0u8; 12 + 160];
    let n = siprec_rtp::write(&h, &[code; 160], &mut out).unwrap();
    out.truncate(n);
    out
}

#[test]
fn two_streams_land_on_their_channels_for_the_whole_duration() {
    let mut h = Harness::new(
        config(),
        &[
            StreamSetup::new(0, 0, pcmu()),
            StreamSetup::new(1, 1, pcmu()),
        ],
    );
    let a = addr("10.0.0.1:4000");
    for i in 0..50u16 {
        h.feed(0, a, &rtp(0, i, 1000), u64::from(i) * 20);
        h.feed(1, a, &rtp(8, i, -2000), u64::from(i) * 20 + 1);
    }
    let r = h.finish(1000);
    assert_eq!(r.timeline.duration_samples, 8000);
    assert_eq!(r.streams[0].rtp.received, 50);
    assert_eq!(r.streams[1].codecs, ["PCMU/8000", "PCMA/8000"]);
    let (left, right) = (h.out.channel(0), h.out.channel(1));
    assert_eq!(left.len(), 8000);
    assert!((left[4000] - 1000).abs() < 40, "left {}", left[4000]);
    assert!((right[4000] + 2000).abs() < 80, "right {}", right[4000]);
}

#[test]
fn latching_takes_the_first_source_and_counts_the_rest() {
    let mut h = Harness::new(config(), &[StreamSetup::new(0, 0, pcmu())]);
    let (first, other) = (addr("10.0.0.1:4000"), addr("10.0.0.9:4000"));
    for i in 0..10u16 {
        h.feed(0, first, &rtp(0, i, 1000), u64::from(i) * 20);
        h.feed(0, other, &rtp(0, i + 100, 1000), u64::from(i) * 20);
    }
    let r = h.finish(200);
    assert_eq!(r.streams[0].rtp.received, 10);
    assert_eq!(r.streams[0].foreign, 10);
}

#[test]
fn without_latching_only_the_sdp_address_is_accepted_and_a_new_address_relatches() {
    let cfg = SessionConfig {
        rtp_latching: false,
        ..config()
    };
    let mut setup = StreamSetup::new(0, 0, pcmu());
    setup.remote_ip = Some("10.0.0.1".parse().unwrap());
    let mut h = Harness::new(cfg, std::slice::from_ref(&setup));
    h.feed(0, addr("10.0.0.1:4000"), &rtp(0, 0, 1000), 0);
    h.feed(0, addr("10.0.0.1:4002"), &rtp(0, 1, 1000), 20); // same IP, any port
    h.feed(0, addr("10.0.0.2:4000"), &rtp(0, 2, 1000), 40);
    // A re-INVITE moves the SRC's media to 10.0.0.2.
    setup.remote_ip = Some("10.0.0.2".parse().unwrap());
    let now = h.at(50);
    h.s().update(now, &[setup], false);
    h.feed(0, addr("10.0.0.2:4000"), &rtp(0, 3, 1000), 60);
    let r = h.finish(100);
    assert_eq!(r.streams[0].rtp.received, 3);
    assert_eq!(r.streams[0].foreign, 1);
}

#[test]
fn paused_packets_are_not_recorded_and_pause_never_times_out() {
    let mut h = Harness::new(config(), &[StreamSetup::new(0, 0, pcmu())]);
    let a = addr("10.0.0.1:4000");
    for i in 0..25u16 {
        h.feed(0, a, &rtp(0, i, 1000), u64::from(i) * 20);
    }
    let now = h.at(500);
    h.s().update(now, &[StreamSetup::new(0, 0, pcmu())], true);
    assert!(h.s().is_paused());
    // Packets while paused, then 5 s of nothing: longer than the 2 s media timeout.
    for i in 25..50u16 {
        h.feed(0, a, &rtp(0, i, 1000), u64::from(i) * 20);
    }
    for t in (1000..6000).step_by(100) {
        let now = h.at(t);
        h.s().handle_timeout(now);
    }
    assert!(h.s().poll_event().is_none(), "timed out while paused");
    let now = h.at(6000);
    h.s().update(now, &[StreamSetup::new(0, 0, pcmu())], false);
    for i in 0..25u16 {
        h.feed(0, a, &rtp(0, 300 + i, 1000), 6000 + u64::from(i) * 20);
    }
    let r = h.finish(6500);
    assert_eq!(r.timeline.pauses.len(), 1);
    let (start, end) = r.timeline.pauses[0];
    assert_eq!((start, end), (4000, 48000));
    let left = h.out.channel(0);
    assert!(
        left[4400..47600].iter().all(|&s| s == 0),
        "audio in the pause"
    );
    assert!((left[48800] - 1000).abs() < 40);
}

#[test]
fn silence_times_out_once() {
    let mut h = Harness::new(config(), &[StreamSetup::new(0, 0, pcmu())]);
    h.feed(0, addr("10.0.0.1:4000"), &rtp(0, 0, 1000), 0);
    let mut events = 0;
    let mut at = None;
    let mut t = 0;
    while t < 5000 {
        let next = h.s().poll_timeout();
        t = next.duration_since(h.t0).as_millis() as u64;
        h.s().handle_timeout(next);
        while let Some(e) = h.s().poll_event() {
            assert!(matches!(e, MediaEvent::TimedOut));
            events += 1;
            at.get_or_insert(t);
        }
    }
    assert_eq!(events, 1);
    let at = at.unwrap();
    assert!((2000..=2100).contains(&at), "timed out at {at} ms");
}

#[test]
fn duplicates_and_unanswered_payload_types_are_not_decoded() {
    let mut h = Harness::new(config(), &[StreamSetup::new(0, 0, pcmu())]);
    let a = addr("10.0.0.1:4000");
    h.feed(0, a, &rtp(0, 0, 1000), 0);
    h.feed(0, a, &rtp(0, 0, 1000), 1);
    h.feed(0, a, &rtp(101, 1, 1000), 20); // telephone-event: counted, not decoded
    h.feed(0, a, &rtp(0, 2, 1000), 40);
    h.feed(0, a, b"\x81\xc8garbage", 41); // RTCP on the RTP port
    let r = h.finish(100);
    let s = &r.streams[0];
    assert_eq!(s.rtp.duplicated, 1);
    assert_eq!(s.codecs, ["PCMU/8000"]);
    assert_eq!(r.timeline.streams[0].samples_placed, 320);
}

fn key(tag: u32, byte: u8) -> SdesKey {
    SdesKey::new(tag, SrtpSuite::AesCm128HmacSha1_80, [byte; 30])
}

fn protect(tx: &mut SrtpSender, pkt: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; pkt.len() + 16];
    let n = tx.protect(pkt, &mut out).unwrap();
    out.truncate(n);
    out
}

#[test]
fn srtp_is_decrypted_and_the_context_survives_a_reinvite_with_the_same_key() {
    let mut setup = StreamSetup::new(0, 0, pcmu());
    setup.srtp = Some(key(1, 7));
    let mut h = Harness::new(config(), std::slice::from_ref(&setup));
    let mut tx = SrtpSender::new(&key(1, 7)).unwrap();
    let a = addr("10.0.0.1:4000");
    for i in 0..10u16 {
        let p = protect(&mut tx, &rtp(0, i, 1000));
        h.feed(0, a, &p, u64::from(i) * 20);
    }
    // Same key again (a pause re-INVITE): a replayed packet must still be refused, so the
    // replay window (the context) was kept.
    let replay = protect(&mut SrtpSender::new(&key(1, 7)).unwrap(), &rtp(0, 3, 1000));
    let now = h.at(200);
    h.s().update(now, std::slice::from_ref(&setup), false);
    h.feed(0, a, &replay, 200);
    // A stranger's key does not authenticate.
    let forged = protect(&mut SrtpSender::new(&key(1, 9)).unwrap(), &rtp(0, 11, 1000));
    h.feed(0, a, &forged, 220);
    // A new key makes a new context.
    setup.srtp = Some(key(2, 8));
    let now = h.at(230);
    h.s().update(now, std::slice::from_ref(&setup), false);
    let mut tx2 = SrtpSender::new(&key(2, 8)).unwrap();
    for i in 12..20u16 {
        let p = protect(&mut tx2, &rtp(0, i, 1000));
        h.feed(0, a, &p, u64::from(i) * 20);
    }
    let r = h.finish(400);
    let s = &r.streams[0];
    assert!(s.srtp);
    assert_eq!(s.auth_failed, 2, "the replay and the forged packet");
    assert_eq!(s.rtp.received, 18);
}

#[test]
fn a_failing_sink_is_reported_once() {
    struct Broken;
    impl siprec_recorder::FrameSink for Broken {
        fn write_frames(&mut self, _: &[i16]) -> Result<(), siprec_recorder::Error> {
            Err(std::io::Error::other("disk full").into())
        }
        fn checkpoint(&mut self) -> Result<(), siprec_recorder::Error> {
            Ok(())
        }
        fn finalize(self: Box<Self>) -> Result<(), siprec_recorder::Error> {
            Ok(())
        }
    }
    let t0 = Instant::now();
    let mut s = MediaSession::new(t0, config(), Box::new(Broken), false).unwrap();
    s.update(t0, &[StreamSetup::new(0, 0, pcmu())], false);
    let mut scratch = Scratch::new();
    for i in 0..50u16 {
        let now = t0 + MS20 * u32::from(i);
        s.handle_packet(0, addr("10.0.0.1:1"), &rtp(0, i, 1), now, &mut scratch);
        s.handle_timeout(now);
    }
    assert!(matches!(s.poll_event(), Some(MediaEvent::WriteFailed(_))));
    assert!(s.poll_event().is_none());
}
