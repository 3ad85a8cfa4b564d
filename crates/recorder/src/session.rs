//! One recording's media, sans-IO: what a recording server decides for every RTP packet of a
//! session, around the [`Timeline`].
//!
//! [`MediaSession`] owns the timeline and, per recorded m-line, the receive state: the SRTP
//! context, source latching and the source check, pause gating, the decoder of each answered
//! payload type, sequence tracking, and media-timeout detection. It has no socket, lock or
//! clock: the driver hands it datagrams with their arrival time and calls
//! [`MediaSession::handle_timeout`] when [`MediaSession::poll_timeout`] says so; events come
//! out of [`MediaSession::poll_event`].
//!
//! # Call order
//!
//! 1. [`MediaSession::new`] with a [`FrameSink`] (the spool WAV) and the start instant, then
//!    [`MediaSession::update`] with the answered streams ([`StreamSetup`]) — again after every
//!    re-INVITE (new streams, codecs, keys, addresses, pause state).
//! 2. Per datagram received on stream `index`'s port: [`MediaSession::handle_packet`]. No
//!    allocation, no lock, no log line; decoded audio goes through the caller's [`Scratch`].
//! 3. Whenever [`MediaSession::poll_timeout`] has passed: [`MediaSession::handle_timeout`]
//!    (the timeline advances, silence is written, the media timeout is checked), then
//!    [`MediaSession::poll_event`] until `None`.
//! 4. [`MediaSession::finish`] closes the file and returns the [`SessionReport`];
//!    [`MediaSession::streams`] gives the same per-stream figures at any time.
//!
//! # Example
//!
//! ```
//! use std::time::{Duration, Instant};
//! use siprec_recorder::session::{MediaSession, Payload, Scratch, SessionConfig, StreamSetup};
//! use siprec_recorder::MemorySink;
//!
//! let t0 = Instant::now();
//! let (sink, out) = MemorySink::new();
//! let mut s = MediaSession::new(t0, SessionConfig::default(), Box::new(sink), false).unwrap();
//! s.update(t0, &[StreamSetup::new(0, 0, vec![Payload::new(0, "PCMU", 8000)])], false);
//! let mut scratch = Scratch::new();
//! let from = "127.0.0.1:4000".parse().unwrap();
//! for i in 0..50u16 {
//!     let mut rtp = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
//!     rtp[2..4].copy_from_slice(&i.to_be_bytes());
//!     rtp[4..8].copy_from_slice(&(160 * u32::from(i)).to_be_bytes());
//!     rtp.extend_from_slice(&[0xff; 160]); // PCMU silence
//!     s.handle_packet(0, from, &rtp, t0 + Duration::from_millis(20 * u64::from(i)), &mut scratch);
//! }
//! let report = s.finish(t0 + Duration::from_secs(1)).unwrap();
//! assert_eq!(report.streams[0].rtp.received, 50);
//! assert_eq!(out.frames(), 8000);
//! ```

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use siprec_rtp::srtp::{SdesKey, SrtpReceiver};
use siprec_rtp::{Codec, Decoder, SequenceTracker, StreamStats, Verdict};

use crate::{Error, FrameSink, StreamId, Timeline, TimelineConfig, TimelineStats};

/// Largest RTP datagram a session decrypts (the driver's receive buffers need not be larger).
pub const MAX_DATAGRAM: usize = 4096;
/// Decoded samples per packet at most (an Opus packet of 120 ms at 48 kHz is 5760).
pub const MAX_DECODED: usize = 8192;
/// How often the timeline advances and the media timeout is checked.
pub const TICK: Duration = Duration::from_millis(100);

/// Settings of one session.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SessionConfig {
    /// No RTP for this long (while not paused) raises [`MediaEvent::TimedOut`]. Default 30 s.
    pub media_timeout: Duration,
    /// The timeline's settings (rate, jitter window, checkpoints).
    pub timeline: TimelineConfig,
    /// Media clock speed relative to arrival time (1.0 for real calls; a sender told to send
    /// N times faster than real time is recorded at its media time). Default 1.0.
    pub media_clock_rate: f64,
    /// Latch each stream on the first RTP source (NAT-friendly); else accept only the address
    /// the SDP named. Default on.
    pub rtp_latching: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            media_timeout: Duration::from_secs(30),
            timeline: TimelineConfig::default(),
            media_clock_rate: 1.0,
            rtp_latching: true,
        }
    }
}

/// One answered audio payload type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// RTP payload type number.
    pub pt: u8,
    /// Encoding name from `a=rtpmap` (`PCMU`, `opus`, …).
    pub encoding: String,
    /// RTP clock rate.
    pub clock_rate: u32,
}

impl Payload {
    /// A payload type.
    pub fn new(pt: u8, encoding: &str, clock_rate: u32) -> Payload {
        Payload {
            pt,
            encoding: encoding.to_string(),
            clock_rate,
        }
    }

    /// `ENCODING/CLOCK`, as the manifest lists codecs.
    pub fn name(&self) -> String {
        format!("{}/{}", self.encoding, self.clock_rate)
    }
}

/// What the session must know of one m-line after an offer/answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSetup {
    /// m-line index, 0-based: the key [`MediaSession::handle_packet`] is called with.
    pub index: usize,
    /// `a=label`, if any.
    pub label: Option<String>,
    /// WAV channel (0 left, 1 right); `None`: not recorded.
    pub channel: Option<u8>,
    /// The address the SDP named for the sender (ignored when unspecified).
    pub remote_ip: Option<IpAddr>,
    /// Every answered audio payload type, the negotiated one first. Empty: no audio (yet).
    pub payloads: Vec<Payload>,
    /// The SRC's SDES key when the stream is SRTP (RFC 4568).
    pub srtp: Option<SdesKey>,
}

impl StreamSetup {
    /// A recorded, plain-RTP stream on `channel` with these payload types.
    pub fn new(index: usize, channel: u8, payloads: Vec<Payload>) -> StreamSetup {
        StreamSetup {
            index,
            label: None,
            channel: Some(channel),
            remote_ip: None,
            payloads,
            srtp: None,
        }
    }
}

/// Something the driver must act on.
#[derive(Debug)]
#[non_exhaustive]
pub enum MediaEvent {
    /// No RTP for [`SessionConfig::media_timeout`] while not paused (raised once).
    TimedOut,
    /// Writing the spool file failed; the timeline accepts no more audio (raised once).
    WriteFailed(Error),
}

/// Buffers one driver thread lends to every session it runs, so no session owns (or
/// allocates) a decode or decrypt buffer.
#[derive(Debug)]
pub struct Scratch {
    pcm: Vec<i16>,
    plain: Vec<u8>,
}

impl Scratch {
    /// Buffers for the largest packet and the longest decoded frame.
    pub fn new() -> Scratch {
        Scratch {
            pcm: vec![0; MAX_DECODED],
            plain: vec![0; MAX_DATAGRAM],
        }
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch::new()
    }
}

/// The figures of one stream, for the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamReport {
    /// m-line index.
    pub index: usize,
    /// `a=label`.
    pub label: Option<String>,
    /// WAV channel.
    pub channel: Option<u8>,
    /// Codecs used, in order (`PCMU/8000`, …).
    pub codecs: Vec<String>,
    /// Sequence statistics (received, lost, duplicated, reordered, SSRC changes).
    pub rtp: StreamStats,
    /// Packets whose samples came too late for the timeline (dropped).
    pub late: u64,
    /// Packets from a source other than the latched (or signalled) one, dropped.
    pub foreign: u64,
    /// Whether the stream is SRTP.
    pub srtp: bool,
    /// SRTP packets that failed authentication (or replays), dropped.
    pub auth_failed: u64,
}

/// What [`MediaSession::finish`] returns.
#[derive(Debug, Clone)]
pub struct SessionReport {
    /// The timeline's figures: duration, pauses, per-stream placement.
    pub timeline: TimelineStats,
    /// Per-stream figures, in the order the streams were first set up.
    pub streams: Vec<StreamReport>,
}

/// The decoder of one payload type.
#[derive(Debug)]
struct PtDecoder {
    pt: u8,
    decoder: Decoder,
    name: String,
    /// Listed in `codecs` once used.
    listed: bool,
}

/// Receive state of one m-line.
#[derive(Debug)]
struct StreamRx {
    index: usize,
    label: Option<String>,
    channel: Option<u8>,
    timeline: Option<StreamId>,
    tracker: SequenceTracker,
    decoders: Vec<PtDecoder>,
    codecs: Vec<String>,
    expected_ip: Option<IpAddr>,
    source: Option<SocketAddr>,
    foreign: u64,
    srtp: Option<SrtpReceiver>,
    /// The key `srtp` was made with: a re-INVITE with the same key keeps the context (its
    /// rollover counter and replay window must survive a pause, RFC 3711 §3.3.1).
    srtp_key: Option<SdesKey>,
    auth_failed: u64,
}

/// Maps arrival instants to media instants: the identity for real calls; `rate` times faster
/// for a sender told to send faster than real time.
#[derive(Debug, Clone, Copy)]
struct MediaClock {
    base: Instant,
    rate: f64,
}

impl MediaClock {
    fn map(&self, now: Instant) -> Instant {
        if self.rate == 1.0 {
            return now;
        }
        self.base + now.saturating_duration_since(self.base).mul_f64(self.rate)
    }
}

/// One recording's media: see the [module documentation](self).
#[derive(Debug)]
pub struct MediaSession {
    timeline: Option<Timeline>,
    streams: Vec<StreamRx>,
    paused: bool,
    last_activity: Instant,
    timeout_reported: bool,
    write_failed: bool,
    clock: MediaClock,
    config: SessionConfig,
    next_tick: Instant,
    events: VecDeque<MediaEvent>,
}

impl MediaSession {
    /// A session starting at `now`, writing to `sink`; `paused` when the offer already paused
    /// the recording. Errors: [`Error::InvalidConfig`] for a timeline configuration out of
    /// range.
    pub fn new(
        now: Instant,
        config: SessionConfig,
        sink: Box<dyn FrameSink + Send>,
        paused: bool,
    ) -> Result<MediaSession, Error> {
        let mut timeline = Timeline::new(now, config.timeline, sink)?;
        if paused {
            timeline.set_paused(now, true)?;
        }
        Ok(MediaSession {
            timeline: Some(timeline),
            streams: Vec::new(),
            paused,
            last_activity: now,
            timeout_reported: false,
            write_failed: false,
            clock: MediaClock {
                base: now,
                rate: config.media_clock_rate,
            },
            config,
            next_tick: now + TICK,
            events: VecDeque::with_capacity(2),
        })
    }

    /// Applies the streams of an offer/answer (the initial one or a re-INVITE's) and the pause
    /// state at `now`. A new stream starts; a known one takes its new payload types; a new
    /// SRTP key makes a new context while the same key keeps it; a new sender address in the
    /// SDP makes the stream latch again.
    pub fn update(&mut self, now: Instant, setups: &[StreamSetup], paused: bool) {
        let rate = self.config.timeline.sample_rate;
        for p in setups {
            let pos = self.streams.iter().position(|s| s.index == p.index);
            let rx = match pos {
                Some(i) => &mut self.streams[i],
                None => {
                    self.streams.push(StreamRx {
                        index: p.index,
                        label: p.label.clone(),
                        channel: p.channel,
                        timeline: None,
                        tracker: SequenceTracker::new(),
                        decoders: Vec::new(),
                        codecs: Vec::new(),
                        expected_ip: None,
                        source: None,
                        foreign: 0,
                        srtp: None,
                        srtp_key: None,
                        auth_failed: 0,
                    });
                    let last = self.streams.len() - 1;
                    &mut self.streams[last]
                }
            };
            if p.srtp != rx.srtp_key {
                rx.srtp = match &p.srtp {
                    Some(key) => match SrtpReceiver::new(key) {
                        Ok(r) => Some(r),
                        Err(e) => {
                            tracing::warn!(error = %e, stream = p.index, "SRTP context");
                            None
                        }
                    },
                    None => None,
                };
                rx.srtp_key = p.srtp.clone();
            }
            let expected = p.remote_ip.filter(|ip| !ip.is_unspecified());
            if expected.is_some() && expected != rx.expected_ip {
                rx.expected_ip = expected;
                rx.source = None;
            }
            let Some(first) = p.payloads.first() else {
                continue;
            };
            let name = first.name();
            if !rx.codecs.contains(&name) {
                rx.codecs.push(name);
            }
            rx.decoders = p
                .payloads
                .iter()
                .map(|f| PtDecoder {
                    pt: f.pt,
                    decoder: Decoder::with_output_rate(Codec::from_encoding(&f.encoding), rate)
                        .unwrap_or_else(|_| Decoder::new(Codec::Other)),
                    name: f.name(),
                    listed: false,
                })
                .collect();
            if let Some(tl) = self.timeline.as_mut() {
                match rx.timeline {
                    Some(sid) => tl.set_stream_clock_rate(sid, first.clock_rate),
                    None => {
                        if let Some(ch) = p.channel {
                            rx.timeline = Some(tl.add_stream(ch, first.clock_rate));
                            rx.channel = Some(ch);
                        }
                    }
                }
            }
        }
        if self.paused != paused {
            self.paused = paused;
            let media_now = self.clock.map(now);
            if let Some(tl) = self.timeline.as_mut() {
                if let Err(e) = tl.set_paused(media_now, paused) {
                    self.write_error(e);
                }
            }
            if !paused {
                self.last_activity = now;
            }
        }
    }

    /// One datagram received on stream `index`'s port from `from` at `received_at`. Anything
    /// that is not an accepted, decodable audio packet of this stream is counted or ignored;
    /// nothing here allocates, locks or logs.
    pub fn handle_packet(
        &mut self,
        index: usize,
        from: SocketAddr,
        data: &[u8],
        received_at: Instant,
        scratch: &mut Scratch,
    ) {
        let Some(rx) = self.streams.iter_mut().find(|s| s.index == index) else {
            return;
        };
        let data = match rx.srtp.as_mut() {
            // RTCP (SRTCP) on the RTP port is not audio; anything else must authenticate.
            Some(_) if siprec_rtp::is_rtcp(data) => return,
            Some(ctx) => match ctx.unprotect(data, &mut scratch.plain) {
                Ok(n) => &scratch.plain[..n],
                Err(_) => {
                    rx.auth_failed += 1;
                    return;
                }
            },
            None => data,
        };
        let Ok(pkt) = siprec_rtp::parse(data) else {
            return; // RTCP or garbage: not audio
        };
        // Source check: the latched source (latching, NAT-friendly), else the SDP's address.
        let accepted = match rx.source {
            Some(src) => src == from,
            None if self.config.rtp_latching => true,
            None => rx.expected_ip.is_none_or(|ip| same_ip(ip, from.ip())),
        };
        if !accepted {
            rx.foreign += 1;
            return;
        }
        if self.config.rtp_latching && rx.source.is_none() {
            rx.source = Some(from);
        }
        if self.paused {
            return;
        }
        self.last_activity = received_at;
        let h = pkt.header;
        let Some(dec) = rx.decoders.iter_mut().find(|d| d.pt == h.payload_type) else {
            // telephone-event, comfort noise, or a payload type we did not negotiate: the
            // timeline fills silence.
            let _ = rx.tracker.on_packet(h.ssrc, h.sequence);
            return;
        };
        if let Verdict::Duplicate | Verdict::TooOld = rx.tracker.on_packet(h.ssrc, h.sequence) {
            return;
        }
        if !dec.listed {
            // Once per payload type and setup: a switch within the answered set.
            dec.listed = true;
            if !rx.codecs.contains(&dec.name) {
                rx.codecs.push(dec.name.clone());
            }
        }
        let (Some(sid), Some(tl)) = (rx.timeline, self.timeline.as_mut()) else {
            return;
        };
        let n = dec.decoder.decode(pkt.payload, &mut scratch.pcm);
        if n == 0 {
            return;
        }
        let media_now = self.clock.map(received_at);
        if let Err(e) = tl.push(media_now, sid, h.ssrc, h.timestamp, &scratch.pcm[..n]) {
            self.write_error(e);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due next.
    pub fn poll_timeout(&self) -> Instant {
        self.next_tick
    }

    /// Lets time advance to `now`: the timeline writes what left its jitter window (silence
    /// where nothing came), and the media timeout is checked (never while paused). Does
    /// nothing before [`poll_timeout`](Self::poll_timeout).
    pub fn handle_timeout(&mut self, now: Instant) {
        if now < self.next_tick {
            return;
        }
        self.next_tick = now + TICK;
        let media_now = self.clock.map(now);
        if let Some(tl) = self.timeline.as_mut() {
            if let Err(e) = tl.advance(media_now) {
                self.write_error(e);
            }
        }
        if !self.paused
            && !self.timeout_reported
            && now.saturating_duration_since(self.last_activity) >= self.config.media_timeout
        {
            self.timeout_reported = true;
            self.events.push_back(MediaEvent::TimedOut);
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// Whether the recording is paused.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// The WAV's sample rate.
    pub fn sample_rate(&self) -> u32 {
        self.config.timeline.sample_rate
    }

    /// Per-stream figures so far.
    pub fn streams(&self) -> Vec<StreamReport> {
        self.reports(None)
    }

    /// Ends the session at `now`: the timeline writes exactly `now - start` of audio and the
    /// file is finished. Errors: the sink's ([`Error::Io`], …); the file keeps what was
    /// written up to the failure.
    pub fn finish(mut self, now: Instant) -> Result<SessionReport, Error> {
        let media_now = self.clock.map(now);
        let tl = self.timeline.take().ok_or(Error::Poisoned)?;
        let stats = tl.finish(media_now)?;
        let streams = self.reports(Some(&stats));
        Ok(SessionReport {
            timeline: stats,
            streams,
        })
    }

    fn reports(&self, stats: Option<&TimelineStats>) -> Vec<StreamReport> {
        self.streams
            .iter()
            .map(|s| {
                let late = s.timeline.and_then(|sid| match stats {
                    Some(st) => st.streams.get(sid.0).map(|x| x.late_dropped_packets),
                    None => self
                        .timeline
                        .as_ref()
                        .and_then(|tl| tl.stream_stats(sid))
                        .map(|x| x.late_dropped_packets),
                });
                StreamReport {
                    index: s.index,
                    label: s.label.clone(),
                    channel: s.channel,
                    codecs: s.codecs.clone(),
                    rtp: s.tracker.stats(),
                    late: late.unwrap_or(0),
                    foreign: s.foreign,
                    srtp: s.srtp.is_some(),
                    auth_failed: s.auth_failed,
                }
            })
            .collect()
    }

    fn write_error(&mut self, e: Error) {
        if !self.write_failed {
            self.write_failed = true;
            self.events.push_back(MediaEvent::WriteFailed(e));
        }
    }
}

/// The same address, IPv4-mapped IPv6 and IPv4 alike.
fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    fn canonical(ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        }
    }
    canonical(a) == canonical(b)
}
