//! One live recording: RTP sockets → sequence tracking → G.711 decode → stereo timeline →
//! spool WAV; then publication. The protocol rules live in the sans-IO crates; this module only
//! moves packets and time.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use siprec_core::channels::ChannelPlan;
use siprec_core::{SessionId, StreamPlan};
use siprec_recorder::{StreamId, Timeline, TimelineConfig, WavSpoolWriter};
use siprec_rtp::{Codec, Decoder, SequenceTracker, Verdict};
use siprec_storage::{
    ChannelInfo, ChannelMapping, Manifest, ParticipantInfo, PauseInterval, StreamInfo,
};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tracing::{debug, warn, Instrument, Span};

use crate::ports::PortPool;
use crate::spool::{format_time, Journal, SpoolEntry};

/// Recording settings from the server configuration.
#[derive(Debug, Clone, Copy)]
pub struct RecordingConfig {
    /// No RTP for this long (not paused) ends the session.
    pub media_timeout: Duration,
    /// Timeline jitter window.
    pub jitter: Duration,
    /// Spool checkpoint interval.
    pub checkpoint: Duration,
    /// Media clock speed.
    pub media_clock_rate: f64,
    /// Latch each stream on the first RTP source (else: only the SDP's address).
    pub rtp_latching: bool,
    /// WAV sample rate; 0 picks 16000 when any stream's codec is wideband, else 8000.
    pub recording_rate: u32,
}

/// Largest RTP datagram we read; larger ones are truncated (and then fail to parse).
const RTP_BUF: usize = 4096;
/// Decoded samples per packet at most (an Opus packet of 120 ms at 48 kHz is 5760).
const PCM_BUF: usize = 8192;
/// How often the timeline advances and the media timeout is checked.
pub const TICK: Duration = Duration::from_millis(100);

/// The decoder of one payload type.
#[derive(Debug)]
struct PtDecoder {
    pt: u8,
    decoder: Decoder,
    /// `ENCODING/CLOCK`, listed in the manifest once the payload type is used.
    name: String,
    listed: bool,
}

/// Per m-line receive state.
#[derive(Debug)]
struct StreamRx {
    index: usize,
    label: Option<String>,
    channel: Option<u8>,
    timeline: Option<StreamId>,
    tracker: SequenceTracker,
    /// One decoder per answered audio payload type (the sender may switch among them).
    decoders: Vec<PtDecoder>,
    /// Codecs used, in order (`PCMU/8000`, …).
    codecs: Vec<String>,
    local_port: Option<u16>,
    receiver: Option<JoinHandle<()>>,
    /// The address the SDP offer named for this stream.
    expected_ip: Option<IpAddr>,
    /// The source RTP is taken from (latched on the first valid packet).
    source: Option<SocketAddr>,
    /// Packets from any other source, dropped.
    foreign: u64,
    /// SRTP: the SRC's key, decrypting what it sends.
    srtp: Option<siprec_rtp::srtp::SrtpReceiver>,
    /// The key `srtp` was made with: a re-INVITE with the same key keeps the context (its
    /// rollover counter and replay window must survive a pause, RFC 3711 §3.3.1).
    srtp_key: Option<siprec_rtp::srtp::SdesKey>,
    /// SRTP packets that failed authentication (or replays), dropped.
    auth_failed: u64,
}

/// State shared by the receive loops, the ticker and the driver.
#[derive(Debug)]
pub struct RecState {
    timeline: Option<Timeline>,
    streams: Vec<StreamRx>,
    paused: bool,
    last_activity: Instant,
    timeout_reported: bool,
    error: Option<String>,
    clock: MediaClock,
    latching: bool,
    /// The WAV's sample rate: every decoder outputs at it.
    sample_rate: u32,
    /// Decrypted SRTP packet (allocated once).
    plain: Vec<u8>,
}

/// Maps wall-clock instants to media-clock instants for the timeline: the identity for real
/// calls; `rate` times faster for a sender told to send faster than real time.
#[derive(Debug, Clone, Copy)]
pub struct MediaClock {
    base: Instant,
    rate: f64,
}

impl MediaClock {
    /// A clock starting at `base` running `rate` times as fast as the wall clock.
    pub fn new(base: Instant, rate: f64) -> MediaClock {
        MediaClock { base, rate }
    }

    /// The media instant of wall-clock instant `now`.
    pub fn map(&self, now: Instant) -> Instant {
        if self.rate == 1.0 {
            return now;
        }
        self.base + now.saturating_duration_since(self.base).mul_f64(self.rate)
    }
}

impl RecState {
    /// The RTP seam: one datagram for stream `index` from `from`, received at `now`. No
    /// allocation, no logging per packet. (A batched `recvmmsg` reader would call this once
    /// per datagram.)
    pub fn on_packet(
        &mut self,
        index: usize,
        data: &[u8],
        from: SocketAddr,
        now: Instant,
        pcm: &mut [i16],
    ) {
        let Some(rx) = self.streams.iter_mut().find(|s| s.index == index) else {
            return;
        };
        let data = match rx.srtp.as_mut() {
            // RTCP (SRTCP) on the RTP port is not audio; anything else must authenticate.
            Some(_) if siprec_rtp::is_rtcp(data) => return,
            Some(ctx) => match ctx.unprotect(data, &mut self.plain) {
                Ok(n) => &self.plain[..n],
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
            None if self.latching => true,
            None => rx.expected_ip.is_none_or(|ip| same_ip(ip, from.ip())),
        };
        if !accepted {
            rx.foreign += 1;
            return;
        }
        if self.latching && rx.source.is_none() {
            rx.source = Some(from);
        }
        if self.paused {
            return;
        }
        self.last_activity = now;
        let h = pkt.header;
        let Some(dec) = rx.decoders.iter_mut().find(|d| d.pt == h.payload_type) else {
            // telephone-event, comfort noise, or a payload type we did not negotiate:
            // the timeline fills silence.
            let _ = rx.tracker.on_packet(h.ssrc, h.sequence);
            return;
        };
        match rx.tracker.on_packet(h.ssrc, h.sequence) {
            Verdict::Duplicate | Verdict::TooOld => return,
            _ => {}
        }
        if !dec.listed {
            // Once per payload type and plan: a switch within the answered set.
            dec.listed = true;
            if !rx.codecs.contains(&dec.name) {
                rx.codecs.push(dec.name.clone());
            }
        }
        let (Some(sid), Some(tl)) = (rx.timeline, self.timeline.as_mut()) else {
            return;
        };
        let n = dec.decoder.decode(pkt.payload, pcm);
        if n == 0 {
            return;
        }
        if let Err(e) = tl.push(self.clock.map(now), sid, h.ssrc, h.timestamp, &pcm[..n]) {
            if self.error.is_none() {
                self.error = Some(e.to_string());
            }
        }
    }
}

/// What the driver keeps per recording.
#[derive(Debug)]
pub struct Recording {
    /// The recording session in the SRS core.
    pub id: SessionId,
    /// SIP Call-ID of the recording session's dialog; the storage key's last fallback (see
    /// [`recording_key`]).
    pub call_id: String,
    /// The `recording` tracing span (session id, Call-ID) of the receive loops, the ticker and
    /// the driver's log lines about this recording.
    pub span: Span,
    /// The spool directory: WAV, metadata documents, journal.
    pub spool: SpoolEntry,
    /// Wall-clock start, written to the journal and the manifest.
    pub start_utc: time::OffsetDateTime,
    start: Instant,
    /// Pauses in seconds since the start (wall clock), for the journal; the final manifest
    /// takes the timeline's exact ones.
    pause_log: Vec<(f64, Option<f64>)>,
    /// Timeline and per-stream receive state, shared with the receive loops and the ticker.
    pub state: Arc<Mutex<RecState>>,
    /// The task that advances the timeline every [`TICK`] and reports the media timeout;
    /// aborted by [`Recording::finish`].
    pub ticker: Option<JoinHandle<()>>,
    /// The metadata documents (RFC 7865) as received, in order, byte for byte.
    pub metadata_docs: Vec<Vec<u8>>,
    /// Parse problems of those documents (they are stored all the same).
    pub metadata_errors: Vec<String>,
    /// The current metadata state (complete document plus partial updates), if any.
    pub metadata: Option<rs_metadata::Recording>,
    /// Which stream goes to which WAV channel, and the participants heard on each.
    pub channels: ChannelPlan,
    /// The WAV's sample rate, in Hz (see [`recording_rate`]).
    pub sample_rate: u32,
}

/// Sent by a recording's ticker when its media timed out.
#[derive(Debug)]
pub struct MediaTimedOut(pub SessionId);

#[allow(clippy::too_many_arguments)]
impl Recording {
    /// Opens the spool entry and starts receiving on the plan's ports.
    pub fn start(
        id: SessionId,
        call_id: String,
        spool_dir: &std::path::Path,
        now: Instant,
        streams: &[StreamPlan],
        channels: ChannelPlan,
        paused: bool,
        pool: &PortPool,
        rc: RecordingConfig,
        timeouts: tokio::sync::mpsc::UnboundedSender<MediaTimedOut>,
    ) -> Result<Recording, String> {
        let media_timeout = rc.media_timeout;
        let span = tracing::info_span!("recording", session = id.0, call_id = %call_id);
        let spool = SpoolEntry::create(spool_dir)
            .map_err(|e| format!("spool directory {}: {e}", spool_dir.display()))?;
        let spool_path = spool.audio();
        let cfg = TimelineConfig {
            jitter_window: rc.jitter,
            checkpoint_interval: rc.checkpoint,
            sample_rate: recording_rate(rc.recording_rate, streams),
            ..TimelineConfig::default()
        };
        let sample_rate = cfg.sample_rate;
        let writer = WavSpoolWriter::create(&spool_path, cfg.sample_rate)
            .map_err(|e| format!("spool file {}: {e}", spool_path.display()))?;
        let clock = MediaClock::new(now, rc.media_clock_rate);
        let mut timeline =
            Timeline::new(now, cfg, Box::new(writer)).map_err(|e| format!("timeline: {e}"))?;
        if paused {
            let _ = timeline.set_paused(now, true);
        }
        let state = Arc::new(Mutex::new(RecState {
            timeline: Some(timeline),
            streams: Vec::new(),
            paused,
            last_activity: now,
            timeout_reported: false,
            error: None,
            clock,
            latching: rc.rtp_latching,
            sample_rate,
            plain: vec![0; RTP_BUF],
        }));
        let mut rec = Recording {
            id,
            call_id,
            span,
            spool,
            start_utc: time::OffsetDateTime::now_utc(),
            start: now,
            pause_log: if paused {
                vec![(0.0, None)]
            } else {
                Vec::new()
            },
            state,
            ticker: None,
            metadata_docs: Vec::new(),
            metadata_errors: Vec::new(),
            metadata: None,
            channels,
            sample_rate,
        };
        rec.apply_plans(now, streams, paused, pool);
        let st = rec.state.clone();
        let ticker = tokio::spawn(
            async move {
                let mut iv = tokio::time::interval(TICK);
                iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    iv.tick().await;
                    let now = Instant::now();
                    let Ok(mut g) = st.lock() else { return };
                    let media_now = g.clock.map(now);
                    if let Some(tl) = g.timeline.as_mut() {
                        if let Err(e) = tl.advance(media_now) {
                            warn!(error = %e, "timeline write failed");
                        }
                    }
                    // RFC-less but essential: never time out while paused.
                    if !g.paused
                        && !g.timeout_reported
                        && now.saturating_duration_since(g.last_activity) >= media_timeout
                    {
                        g.timeout_reported = true;
                        let _ = timeouts.send(MediaTimedOut(id));
                    }
                }
            }
            .instrument(rec.span.clone()),
        );
        rec.ticker = Some(ticker);
        Ok(rec)
    }

    /// Applies a (new) media plan: new streams start receiving, codecs and pause state change.
    pub fn apply_plans(
        &mut self,
        now: Instant,
        plans: &[StreamPlan],
        paused: bool,
        pool: &PortPool,
    ) {
        let Ok(mut g) = self.state.lock() else { return };
        let g = &mut *g;
        for p in plans {
            let pos = g.streams.iter().position(|s| s.index == p.index);
            let rx = match pos {
                Some(i) => &mut g.streams[i],
                None => {
                    g.streams.push(StreamRx {
                        index: p.index,
                        label: p.label.clone(),
                        channel: p.channel,
                        timeline: None,
                        tracker: SequenceTracker::new(),
                        decoders: Vec::new(),
                        codecs: Vec::new(),
                        local_port: None,
                        receiver: None,
                        expected_ip: None,
                        source: None,
                        foreign: 0,
                        srtp: None,
                        srtp_key: None,
                        auth_failed: 0,
                    });
                    let last = g.streams.len() - 1;
                    &mut g.streams[last]
                }
            };
            // A (new) SRTP key from the offer: a new receive context.
            if p.srtp != rx.srtp_key {
                rx.srtp = match &p.srtp {
                    Some(key) => match siprec_rtp::srtp::SrtpReceiver::new(key) {
                        Ok(r) => Some(r),
                        Err(e) => {
                            warn!(error = %e, "SRTP context");
                            None
                        }
                    },
                    None => None,
                };
                rx.srtp_key = p.srtp.clone();
            }
            let expected = p.remote.map(|a| a.ip()).filter(|ip| !ip.is_unspecified());
            if expected.is_some() && expected != rx.expected_ip {
                // The SRC moved its media (re-INVITE): latch again.
                rx.expected_ip = expected;
                rx.source = None;
            }
            if let Some(f) = &p.format {
                let name = format!("{}/{}", f.encoding, f.clock_rate);
                if !rx.codecs.contains(&name) {
                    rx.codecs.push(name);
                }
                let formats = if p.formats.is_empty() {
                    std::slice::from_ref(f)
                } else {
                    &p.formats[..]
                };
                rx.decoders = formats
                    .iter()
                    .map(|f| PtDecoder {
                        pt: f.payload_type,
                        decoder: Decoder::with_output_rate(
                            Codec::from_encoding(&f.encoding),
                            g.sample_rate,
                        )
                        .unwrap_or_else(|_| Decoder::new(Codec::Other)),
                        name: format!("{}/{}", f.encoding, f.clock_rate),
                        listed: false,
                    })
                    .collect();
                if let (Some(tl), Some(sid)) = (g.timeline.as_mut(), rx.timeline) {
                    tl.set_stream_clock_rate(sid, f.clock_rate);
                }
                if rx.timeline.is_none() {
                    if let (Some(ch), Some(tl)) = (p.channel, g.timeline.as_mut()) {
                        rx.timeline = Some(tl.add_stream(ch, f.clock_rate));
                        rx.channel = Some(ch);
                    }
                }
            }
            if rx.receiver.is_none() && p.channel.is_some() {
                if let Some(port) = p.local_port {
                    if let Some(sock) = pool.take_socket(port) {
                        rx.local_port = Some(port);
                        match UdpSocket::from_std(sock) {
                            Ok(sock) => {
                                rx.receiver = Some(tokio::spawn(
                                    recv_loop(sock, p.index, self.state.clone())
                                        .instrument(self.span.clone()),
                                ));
                            }
                            Err(e) => warn!(port, error = %e, "cannot use RTP socket"),
                        }
                    }
                }
            }
        }
        if g.paused != paused {
            g.paused = paused;
            let media_now = g.clock.map(now);
            if let Some(tl) = g.timeline.as_mut() {
                let _ = tl.set_paused(media_now, paused);
            }
            let at = media_now
                .saturating_duration_since(self.start)
                .as_secs_f64();
            if paused {
                self.pause_log.push((at, None));
            } else if let Some(last) = self.pause_log.last_mut() {
                last.1.get_or_insert(at);
            }
            if !paused {
                g.last_activity = now;
            }
        }
    }

    /// Stops receiving and finishes the WAV. Returns the final manifest.
    pub fn finish(
        &mut self,
        now: Instant,
        ended_by: &str,
        instance_id: &str,
    ) -> Result<Manifest, String> {
        if let Some(t) = self.ticker.take() {
            t.abort();
        }
        let state = self.state.clone();
        let mut g = state
            .lock()
            .map_err(|_| "recording state poisoned".to_string())?;
        for s in &mut g.streams {
            if let Some(r) = s.receiver.take() {
                r.abort();
            }
        }
        let media_now = g.clock.map(now);
        let tl = g.timeline.take().ok_or("recording already finished")?;
        let stats = tl
            .finish(media_now)
            .map_err(|e| format!("finishing WAV: {e}"))?;
        Ok(self.manifest(&g, Some(&stats), ended_by, instance_id))
    }

    /// The streams' packet statistics so far (for `/metrics`, about once a second; the one
    /// place the HTTP side reads live RTP figures from).
    pub fn live_streams(&self) -> Vec<StreamInfo> {
        match self.state.lock() {
            Ok(g) => self.manifest(&g, None, "", "").streams,
            Err(_) => Vec::new(),
        }
    }

    /// Writes the journal: the manifest as far as it is known now, for crash recovery.
    pub fn write_journal(&self, instance_id: &str) -> std::io::Result<()> {
        let m = {
            let g = self
                .state
                .lock()
                .map_err(|_| std::io::Error::other("recording state poisoned"))?;
            self.manifest(&g, None, "recovered", instance_id)
        };
        self.spool.write_journal(&Journal {
            version: 1,
            start_utc: format_time(self.start_utc),
            manifest: m,
        })
    }

    /// The manifest from the current state; `stats` when the timeline has finished.
    fn manifest(
        &self,
        g: &RecState,
        stats: Option<&siprec_recorder::TimelineStats>,
        ended_by: &str,
        instance_id: &str,
    ) -> Manifest {
        let md = self.metadata.as_ref();
        let stop_utc = time::OffsetDateTime::now_utc();
        let rate = self.sample_rate.max(1) as f64;
        let (key, key_source, recording_id) = recording_key(md, &self.call_id);
        let streams = g
            .streams
            .iter()
            .map(|s| {
                let t = s.tracker.stats();
                let late = s
                    .timeline
                    .and_then(|sid| stats.and_then(|st| st.streams.get(sid.0)))
                    .map(|x| x.late_dropped_packets)
                    .unwrap_or(0);
                StreamInfo {
                    index: s.index,
                    label: s.label.clone(),
                    stream_id: s.label.as_deref().and_then(|l| {
                        md.and_then(|m| m.stream_by_label(l))
                            .map(|st| st.stream_id.clone())
                    }),
                    channel: s.channel,
                    codecs: s.codecs.clone(),
                    packets_received: t.received,
                    packets_lost: t.lost,
                    packets_duplicated: t.duplicated,
                    packets_reordered: t.reordered,
                    packets_late: late,
                    ssrc_changes: t.ssrc_changes,
                    packets_foreign: s.foreign,
                    srtp: s.srtp.is_some(),
                    packets_auth_failed: s.auth_failed,
                }
            })
            .collect();
        let participants = md
            .map(|m| {
                m.participants
                    .iter()
                    .map(|p| {
                        let (name, aor) = m.participant_display(&p.participant_id);
                        ParticipantInfo {
                            id: p.participant_id.clone(),
                            name,
                            aor,
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut left = ChannelInfo {
            participants: self.channels.left_participants.clone(),
            streams: Vec::new(),
        };
        let mut right = ChannelInfo {
            participants: self.channels.right_participants.clone(),
            streams: Vec::new(),
        };
        for s in &g.streams {
            match s.channel {
                Some(0) => left.streams.push(s.index),
                Some(_) => right.streams.push(s.index),
                None => {}
            }
        }
        let pauses = match stats {
            Some(st) => st
                .pauses
                .iter()
                .map(|(a, b)| PauseInterval {
                    start: *a as f64 / rate,
                    end: *b as f64 / rate,
                })
                .collect(),
            // Journal: an open pause has end 0 (recovery closes it at the end of the audio).
            None => self
                .pause_log
                .iter()
                .map(|(a, b)| PauseInterval {
                    start: *a,
                    end: b.unwrap_or(0.0),
                })
                .collect(),
        };
        let duration_samples = stats.map(|s| s.duration_samples).unwrap_or(0);
        Manifest {
            recording_key: key,
            recording_key_source: key_source.into(),
            recording_id,
            call_id: self.call_id.clone(),
            complete: stats.is_some(),
            instance_id: instance_id.to_string(),
            session_ids: md
                .map(|m| m.sessions.iter().map(|s| s.session_id.clone()).collect())
                .unwrap_or_default(),
            sip_session_ids: md
                .map(|m| {
                    m.sessions
                        .iter()
                        .flat_map(|s| s.sip_session_ids.iter().cloned())
                        .collect()
                })
                .unwrap_or_default(),
            participants,
            channels: ChannelMapping {
                left,
                right,
                reason: self.channels.reason.clone(),
            },
            streams,
            start_time: format_time(self.start_utc),
            stop_time: if stats.is_some() {
                format_time(stop_utc)
            } else {
                String::new()
            },
            pauses,
            sample_rate: self.sample_rate,
            duration_samples,
            duration_seconds: duration_samples as f64 / rate,
            ended_by: ended_by.to_string(),
            metadata_documents: (1..=self.metadata_docs.len())
                .map(|i| format!("metadata/{i:04}.xml"))
                .collect(),
            metadata_errors: self.metadata_errors.clone(),
        }
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        if let Some(t) = self.ticker.take() {
            t.abort();
        }
        if let Ok(mut g) = self.state.lock() {
            for s in &mut g.streams {
                if let Some(r) = s.receiver.take() {
                    r.abort();
                }
            }
        }
    }
}

/// The recording key: Recording ID from the metadata, else the RS session id, else the
/// Call-ID. Returns (key, source, raw recording id). Sanitised later by the storage crate.
pub fn recording_key(
    md: Option<&rs_metadata::Recording>,
    call_id: &str,
) -> (String, &'static str, Option<String>) {
    if let Some(id) = md.and_then(|m| m.recording_id()) {
        return (id.clone(), "recording_id", Some(id));
    }
    if let Some(s) = md.and_then(|m| m.sessions.first()) {
        if !s.session_id.trim().is_empty() {
            return (s.session_id.clone(), "session_id", None);
        }
    }
    (call_id.to_string(), "call_id", None)
}

/// The WAV rate: the configured one, else 16 kHz when any recorded stream is wideband
/// (G.722, Opus), else 8 kHz.
pub fn recording_rate(configured: u32, streams: &[StreamPlan]) -> u32 {
    if configured != 0 {
        return configured;
    }
    let wideband = streams.iter().any(|p| {
        p.channel.is_some()
            && p.format
                .as_ref()
                .is_some_and(|f| Codec::from_encoding(&f.encoding).is_wideband())
    });
    if wideband {
        16000
    } else {
        8000
    }
}

/// The same address, IPv4-mapped IPv6 and IPv4 alike.
fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    use siprec_sip::source::canonical_ip;
    canonical_ip(a) == canonical_ip(b)
}

async fn recv_loop(sock: UdpSocket, index: usize, state: Arc<Mutex<RecState>>) {
    let mut buf = [0u8; RTP_BUF];
    let mut pcm = [0i16; PCM_BUF];
    loop {
        let (n, from): (usize, SocketAddr) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                debug!(error = %e, "rtp recv error");
                continue;
            }
        };
        let now = Instant::now();
        let Ok(mut g) = state.lock() else { return };
        g.on_packet(index, &buf[..n], from, now, &mut pcm);
    }
}
