//! The recording timeline: placement, jitter window, mixing, pause, flushing.

use std::fmt;
use std::time::{Duration, Instant};

use crate::sink::CHANNELS;
use crate::{Error, FrameSink};

/// Room in each stream's ring beyond the jitter window: the longest packet (and the furthest
/// ahead of its arrival time) a stream can place without being re-anchored or cut.
pub const RING_HEADROOM: Duration = Duration::from_millis(250);

/// Largest accepted [`TimelineConfig::jitter_window`] (bounds the per-stream ring).
pub const MAX_JITTER_WINDOW: Duration = Duration::from_secs(5);

/// Smallest accepted [`TimelineConfig::checkpoint_interval`].
pub const MIN_CHECKPOINT_INTERVAL: Duration = Duration::from_millis(10);

/// Accepted [`TimelineConfig::sample_rate`] range, in Hz.
pub const SAMPLE_RATE_RANGE: std::ops::RangeInclusive<u32> = 1_000..=192_000;

/// At most this many pause intervals are kept for [`TimelineStats::pauses`]; later ones still
/// silence the recording but are not listed ([`TimelineStats::pauses_truncated`]).
pub const MAX_RECORDED_PAUSES: usize = 4096;

/// Frames mixed and handed to the sink per `write_frames` call, at most.
const CHUNK_FRAMES: usize = 1024;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Samples (at `rate`) in `d`, rounded down, saturating.
fn samples_in(d: Duration, rate: u32) -> u64 {
    let n = d.as_nanos().saturating_mul(u128::from(rate)) / NANOS_PER_SEC;
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Settings of one [`Timeline`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineConfig {
    /// Recording (output) sample rate in Hz; the caller decodes every stream to this rate.
    /// Default 8000. Range [`SAMPLE_RATE_RANGE`].
    pub sample_rate: u32,
    /// How long samples are held back before being written, so late and reordered packets
    /// still land in their place. Default 300 ms. At most [`MAX_JITTER_WINDOW`]; may be 0.
    pub jitter_window: Duration,
    /// When a stream's timestamp-derived position and its arrival-derived position disagree by
    /// more than this, the stream is re-anchored at its arrival position (a timestamp jump).
    /// Default 1 s. Must not be zero.
    pub max_skew: Duration,
    /// The file is made a valid WAV on disk (header updated, buffer flushed) every time this
    /// much audio has been written (at exact multiples of it). Default 1 s. At least
    /// [`MIN_CHECKPOINT_INTERVAL`].
    pub checkpoint_interval: Duration,
}

impl Default for TimelineConfig {
    fn default() -> Self {
        Self {
            sample_rate: 8000,
            jitter_window: Duration::from_millis(300),
            max_skew: Duration::from_secs(1),
            checkpoint_interval: Duration::from_secs(1),
        }
    }
}

impl TimelineConfig {
    /// Check the ranges documented on each field.
    pub fn validate(&self) -> Result<(), Error> {
        if !SAMPLE_RATE_RANGE.contains(&self.sample_rate) {
            return Err(Error::InvalidConfig(format!(
                "sample_rate {} Hz outside {}..={} Hz",
                self.sample_rate,
                SAMPLE_RATE_RANGE.start(),
                SAMPLE_RATE_RANGE.end()
            )));
        }
        if self.jitter_window > MAX_JITTER_WINDOW {
            return Err(Error::InvalidConfig(format!(
                "jitter_window {:?} above the maximum {:?}",
                self.jitter_window, MAX_JITTER_WINDOW
            )));
        }
        if self.max_skew.is_zero() {
            return Err(Error::InvalidConfig("max_skew must not be zero".into()));
        }
        if self.checkpoint_interval < MIN_CHECKPOINT_INTERVAL {
            return Err(Error::InvalidConfig(format!(
                "checkpoint_interval {:?} below the minimum {:?}",
                self.checkpoint_interval, MIN_CHECKPOINT_INTERVAL
            )));
        }
        Ok(())
    }

    /// Length in samples of each stream's ring: `jitter_window + RING_HEADROOM` at
    /// `sample_rate`. This is the whole per-stream audio memory, fixed for the session.
    pub fn ring_len(&self) -> usize {
        let n = samples_in(
            self.jitter_window.saturating_add(RING_HEADROOM),
            self.sample_rate,
        );
        usize::try_from(n).unwrap_or(usize::MAX).max(1)
    }
}

/// Handle of a stream on a [`Timeline`], returned by [`Timeline::add_stream`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub usize);

/// Per-stream counters. All sample counts are at the recording rate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamTimelineStats {
    /// Samples that arrived for positions already written to the file (late beyond the
    /// jitter window), plus stragglers of a previous SSRC; dropped.
    pub late_dropped_samples: u64,
    /// Packets dropped whole for being late (their every sample is in
    /// `late_dropped_samples`); a packet cut at the written edge is placed in part and not
    /// counted here.
    pub late_dropped_packets: u64,
    /// Times the stream was re-anchored at its arrival position (SSRC change, resume after
    /// pause, clock-rate change, timestamp jump, too far ahead, persistently late). The first
    /// anchor is not counted.
    pub reanchors: u32,
    /// Samples written into the timeline (a duplicate packet counts each time it is written).
    pub samples_placed: u64,
    /// Samples pushed while paused, or landing inside a pause after the resume; dropped.
    pub ignored_while_paused: u64,
    /// Samples cut off because a single packet reached further ahead than the ring holds
    /// ([`RING_HEADROOM`] past its arrival position); dropped.
    pub oversize_dropped_samples: u64,
    /// Times the stream was shifted to follow its sender's clock drift: after each 2 s window
    /// whose smallest lag (arrival position minus timestamp position) was more than 10 ms
    /// either way, by that lag.
    pub drift_corrections: u32,
}

/// Over each window of this length, a stream's smallest lag (arrival position minus
/// timestamp position) is taken as its clock offset; when it exceeds [`DRIFT_STEP`] either
/// way the stream's anchor moves by that much (a sender whose clock runs fast or slow stays
/// within a few tens of milliseconds of the other channel over hours, instead of drifting
/// until a re-anchor at `max_skew`). The smallest lag ignores jitter: the least-delayed
/// packet of the window shows the true offset.
pub(crate) const DRIFT_WINDOW: Duration = Duration::from_secs(2);
/// The offset beyond which a stream is shifted to follow its sender's clock.
pub(crate) const DRIFT_STEP: Duration = Duration::from_millis(10);

/// What [`Timeline::finish`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineStats {
    /// Frames in the file: the wall-clock length of the session, `finish - start`.
    pub duration_samples: u64,
    /// The recording sample rate.
    pub sample_rate: u32,
    /// Pause intervals `[start, end)` in samples, in order (at most [`MAX_RECORDED_PAUSES`]).
    pub pauses: Vec<(u64, u64)>,
    /// More than [`MAX_RECORDED_PAUSES`] pauses happened; the later ones are not listed.
    pub pauses_truncated: bool,
    /// Per stream, indexed by [`StreamId`].
    pub streams: Vec<StreamTimelineStats>,
}

impl TimelineStats {
    /// `duration_samples` as a `Duration`.
    pub fn duration(&self) -> Duration {
        let rate = u64::from(self.sample_rate.max(1));
        let secs = self.duration_samples / rate;
        let rem = self.duration_samples % rate;
        Duration::from_secs(secs) + Duration::from_nanos(rem * 1_000_000_000 / rate)
    }
}

/// Why a stream is (re-)anchored at its arrival position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Anchoring {
    /// First packet of the stream.
    Initial,
    /// A new SSRC (RFC 3550 §5.1: a new source starts a new, random timestamp base).
    SsrcChange,
    /// Resume after pause, or clock-rate change.
    Requested,
    /// Timestamp and arrival disagree by more than `max_skew`.
    Skew,
    /// The packet would reach beyond the ring.
    AheadOfRing,
    /// Every packet has been entirely late for a whole jitter window.
    PersistentlyLate,
}

/// A stream's mapping from RTP timestamp to timeline position. Timestamps are extended to 64
/// bits relative to the anchor packet (extended timestamp 0), following the highest one seen.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    /// Timeline position (samples since start) of the anchor packet's first sample.
    pos: i64,
    /// Highest timestamp seen since anchoring, and its extended value.
    ref_ts: u32,
    ref_ext: i64,
}

struct StreamState {
    channel: usize,
    clock_rate: u32,
    /// Samples for positions `[flushed, flushed + ring.len())`, at index `pos % ring.len()`;
    /// zero where nothing was written. Zeroed again as it is flushed.
    ring: Box<[i16]>,
    anchor: Option<Anchor>,
    ssrc: u32,
    /// The SSRC before the last change and when it changed: its stragglers are dropped.
    prev_ssrc: Option<(u32, Instant)>,
    need_anchor: bool,
    /// Since when every packet was entirely late.
    late_since: Option<Instant>,
    /// Smallest lag (arrival position minus timestamp position) in the current drift
    /// window, and when the window started.
    lag_min: i64,
    lag_since: Option<Instant>,
    stats: StreamTimelineStats,
}

/// One recording session's stereo timeline, writing to a [`FrameSink`].
///
/// See the [crate docs](crate) for the placement rules and the call order. Memory is fixed
/// once the streams are added: one ring of [`TimelineConfig::ring_len`] samples per stream
/// plus two mixing buffers of 1024 frames. `push` does not allocate.
pub struct Timeline {
    start: Instant,
    config: TimelineConfig,
    sink: Box<dyn FrameSink + Send>,
    jitter_samples: u64,
    skew_samples: u64,
    checkpoint_samples: u64,
    ring_len: usize,
    streams: Vec<StreamState>,
    /// Frames written to the sink.
    flushed: u64,
    /// `Some(pause start position)` while paused.
    paused_at: Option<u64>,
    /// Position of the last resume: samples before it are never written again.
    resume_floor: u64,
    pauses: Vec<(u64, u64)>,
    pauses_truncated: bool,
    mix: Box<[i32]>,
    out: Box<[i16]>,
    /// No channel has two streams: flushing interleaves instead of summing.
    one_stream_per_channel: bool,
    poisoned: bool,
}

impl fmt::Debug for Timeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeline")
            .field("config", &self.config)
            .field("streams", &self.streams.len())
            .field("position", &self.flushed)
            .field("paused_at", &self.paused_at)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl Timeline {
    /// A timeline whose position 0 is `start` (normally the moment the recording session
    /// starts), writing into `sink`. Fails only on an invalid `config`.
    pub fn new(
        start: Instant,
        config: TimelineConfig,
        sink: Box<dyn FrameSink + Send>,
    ) -> Result<Self, Error> {
        config.validate()?;
        let rate = config.sample_rate;
        Ok(Self {
            start,
            config,
            sink,
            jitter_samples: samples_in(config.jitter_window, rate),
            skew_samples: samples_in(config.max_skew, rate),
            checkpoint_samples: samples_in(config.checkpoint_interval, rate).max(1),
            ring_len: config.ring_len(),
            streams: Vec::new(),
            flushed: 0,
            paused_at: None,
            resume_floor: 0,
            pauses: Vec::new(),
            pauses_truncated: false,
            mix: vec![0; CHUNK_FRAMES * usize::from(CHANNELS)].into_boxed_slice(),
            out: vec![0; CHUNK_FRAMES * usize::from(CHANNELS)].into_boxed_slice(),
            one_stream_per_channel: true,
            poisoned: false,
        })
    }

    /// Add a stream on `channel` (0 = left, 1 = right; anything else is treated as 1) whose RTP
    /// clock runs at `clock_rate` Hz (0 is treated as the recording rate). Allocates the
    /// stream's ring. Streams may be added at any time; a stream added late starts with
    /// silence. The number of streams is the caller's to bound (one per recorded m-line).
    pub fn add_stream(&mut self, channel: u8, clock_rate: u32) -> StreamId {
        if channel > 1 {
            tracing::warn!(channel, "timeline channel out of range, using 1 (right)");
        }
        let id = StreamId(self.streams.len());
        let channel = usize::from(channel.min(1));
        if self.streams.iter().any(|s| s.channel == channel) {
            self.one_stream_per_channel = false;
        }
        self.streams.push(StreamState {
            channel,
            clock_rate: self.checked_clock_rate(clock_rate),
            ring: vec![0; self.ring_len].into_boxed_slice(),
            anchor: None,
            ssrc: 0,
            prev_ssrc: None,
            need_anchor: false,
            late_since: None,
            lag_min: i64::MAX,
            lag_since: None,
            stats: StreamTimelineStats::default(),
        });
        id
    }

    fn checked_clock_rate(&self, clock_rate: u32) -> u32 {
        if clock_rate == 0 {
            tracing::warn!("RTP clock rate 0, using the recording rate");
            self.config.sample_rate
        } else {
            clock_rate
        }
    }

    /// Change a stream's RTP clock rate (codec change). The stream re-anchors at its next
    /// packet's arrival. An unknown stream is ignored (logged); 0 means the recording rate.
    pub fn set_stream_clock_rate(&mut self, stream: StreamId, clock_rate: u32) {
        let clock_rate = self.checked_clock_rate(clock_rate);
        let Some(st) = self.streams.get_mut(stream.0) else {
            tracing::warn!(stream = stream.0, "set_stream_clock_rate: unknown stream");
            return;
        };
        if st.clock_rate != clock_rate {
            st.clock_rate = clock_rate;
            st.need_anchor = st.anchor.is_some();
        }
    }

    /// Place one packet's samples (decoded to the recording rate) that arrived at `now`.
    ///
    /// Calls [`advance`](Self::advance)`(now)` first. Peer timing problems are never errors:
    /// they are absorbed and counted in the stream's [`StreamTimelineStats`]. Errors:
    /// [`Error::UnknownStream`], and sink failures ([`Error::Io`], [`Error::Wav`],
    /// [`Error::WavFull`], then [`Error::Poisoned`]).
    pub fn push(
        &mut self,
        now: Instant,
        stream: StreamId,
        ssrc: u32,
        rtp_timestamp: u32,
        samples: &[i16],
    ) -> Result<(), Error> {
        if stream.0 >= self.streams.len() {
            return Err(Error::UnknownStream);
        }
        self.advance(now)?;

        let now_pos = to_i64(self.pos_at(now));
        let flushed = to_i64(self.flushed);
        let limit = flushed.saturating_add(to_i64(self.ring_len as u64));
        let floor = to_i64(self.resume_floor).clamp(flushed, limit);
        let paused = self.paused_at.is_some();
        let sample_rate = self.config.sample_rate;
        let jitter_window = self.config.jitter_window;
        let skew = self.skew_samples;
        let drift_step = samples_in(DRIFT_STEP, sample_rate);

        let Some(st) = self.streams.get_mut(stream.0) else {
            return Err(Error::UnknownStream);
        };
        let n = samples.len() as u64;
        if paused {
            st.stats.ignored_while_paused += n;
            return Ok(());
        }
        if samples.is_empty() {
            return Ok(());
        }
        let len = to_i64(n);

        let mut pos = now_pos;
        let anchoring = match st.anchor {
            None => Some(Anchoring::Initial),
            Some(_) if ssrc != st.ssrc => {
                if let Some((old, at)) = st.prev_ssrc {
                    if old == ssrc && now.saturating_duration_since(at) <= jitter_window {
                        // A straggler from before the SSRC change: it belongs to the past.
                        st.stats.late_dropped_samples += n;
                        st.stats.late_dropped_packets += 1;
                        return Ok(());
                    }
                }
                Some(Anchoring::SsrcChange)
            }
            Some(_) if st.need_anchor => Some(Anchoring::Requested),
            Some(mut a) => {
                // Signed distance to the highest timestamp seen handles 32-bit wrap and
                // reordering (RFC 3550 §5.1: the timestamp counts sampling instants modulo 2^32).
                let ext = a
                    .ref_ext
                    .saturating_add(i64::from(rtp_timestamp.wrapping_sub(a.ref_ts) as i32));
                let offset = (i128::from(ext) * i128::from(sample_rate))
                    .div_euclid(i128::from(st.clock_rate));
                let p = a
                    .pos
                    .saturating_add(i64::try_from(offset).unwrap_or(if offset < 0 {
                        i64::MIN
                    } else {
                        i64::MAX
                    }));
                let end = p.saturating_add(len);
                if p.abs_diff(now_pos) > skew {
                    Some(Anchoring::Skew)
                } else if end > limit && p > now_pos {
                    Some(Anchoring::AheadOfRing)
                } else if end <= flushed {
                    match st.late_since {
                        Some(t) if now.saturating_duration_since(t) >= jitter_window => {
                            Some(Anchoring::PersistentlyLate)
                        }
                        _ => {
                            st.late_since.get_or_insert(now);
                            st.stats.late_dropped_samples += n;
                            st.stats.late_dropped_packets += 1;
                            return Ok(());
                        }
                    }
                } else {
                    if ext > a.ref_ext {
                        a.ref_ext = ext;
                        a.ref_ts = rtp_timestamp;
                    }
                    pos = p;
                    // Drift: follow the sender's clock by the window's smallest lag.
                    st.lag_min = st.lag_min.min(now_pos.saturating_sub(p));
                    let since = *st.lag_since.get_or_insert(now);
                    if now.saturating_duration_since(since) >= DRIFT_WINDOW {
                        if st.lag_min.unsigned_abs() > drift_step {
                            a.pos = a.pos.saturating_add(st.lag_min);
                            pos = p.saturating_add(st.lag_min);
                            st.stats.drift_corrections += 1;
                        }
                        st.lag_min = i64::MAX;
                        st.lag_since = Some(now);
                    }
                    st.anchor = Some(a);
                    None
                }
            }
        };

        if let Some(why) = anchoring {
            if why == Anchoring::SsrcChange {
                st.prev_ssrc = Some((st.ssrc, now));
            }
            if why != Anchoring::Initial {
                st.stats.reanchors += 1;
                tracing::debug!(
                    stream = stream.0,
                    reason = ?why,
                    old_ssrc = st.ssrc,
                    ssrc,
                    position = now_pos,
                    "re-anchoring stream at its arrival position"
                );
            }
            st.ssrc = ssrc;
            st.need_anchor = false;
            st.lag_min = i64::MAX;
            st.lag_since = None;
            st.anchor = Some(Anchor {
                pos: now_pos,
                ref_ts: rtp_timestamp,
                ref_ext: 0,
            });
            pos = now_pos;
        }
        st.late_since = None;
        place(st, samples, pos, flushed, floor, limit);
        Ok(())
    }

    /// Pause (`true`) or resume (`false`) the recording at `now`.
    ///
    /// From the pause position on, the recording is silence: audio already queued for later
    /// positions is cleared and pushes are ignored (counted). On resume every stream
    /// re-anchors at its next packet's arrival, whatever its timestamps did meanwhile. The
    /// interval is recorded in [`TimelineStats::pauses`]. Setting the current state again is a
    /// no-op. Calls [`advance`](Self::advance)`(now)` first.
    pub fn set_paused(&mut self, now: Instant, paused: bool) -> Result<(), Error> {
        self.advance(now)?;
        let pos = self.pos_at(now).max(self.flushed);
        match (self.paused_at, paused) {
            (None, true) => {
                tracing::info!(position = pos, "recording paused");
                self.paused_at = Some(pos);
                let end = self.flushed.saturating_add(self.ring_len as u64);
                for st in &mut self.streams {
                    ring_fill_zero(&mut st.ring, pos, end);
                }
            }
            (Some(start), false) => {
                tracing::info!(position = pos, "recording resumed");
                self.paused_at = None;
                self.resume_floor = pos.max(start);
                self.record_pause(start, pos);
                for st in &mut self.streams {
                    st.need_anchor = st.anchor.is_some();
                    st.late_since = None;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Whether the recording is paused.
    pub fn is_paused(&self) -> bool {
        self.paused_at.is_some()
    }

    /// Let time advance to `now`: write out everything older than `now - jitter_window`,
    /// silence where no audio arrived. Call it periodically (every 20-100 ms) so that silent
    /// and one-way calls are written too; `push` and `set_paused` call it themselves.
    /// Checkpoints the sink once, after the last frame, when the frames written crossed a
    /// multiple of `checkpoint_interval`. A `now` earlier than a previous one writes nothing.
    pub fn advance(&mut self, now: Instant) -> Result<(), Error> {
        let target = self.pos_at(now).saturating_sub(self.jitter_samples);
        self.flush_to(target)
    }

    /// Frames written to the sink so far (the file position, in samples per channel).
    pub fn position(&self) -> u64 {
        self.flushed
    }

    /// Make what was written so far durable now (see [`FrameSink::checkpoint`]), besides the
    /// automatic checkpoints.
    pub fn checkpoint(&mut self) -> Result<(), Error> {
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        if let Err(e) = self.sink.checkpoint() {
            self.poison(&e);
            return Err(e);
        }
        Ok(())
    }

    /// End the session at `now`: write everything up to exactly `now - start` (audio placed
    /// beyond it is discarded, silence fills what is missing), close an open pause, finalize
    /// the sink, and report. On a sink error the sink is still finalized (best effort) and
    /// the error returned.
    pub fn finish(mut self, now: Instant) -> Result<TimelineStats, Error> {
        let total = self.pos_at(now).max(self.flushed);
        if let Err(e) = self.flush_to(total) {
            if let Err(fin) = self.sink.finalize() {
                tracing::warn!(error = %fin, "finalizing the sink after a write error failed");
            }
            return Err(e);
        }
        if let Some(start) = self.paused_at.take() {
            self.record_pause(start, total);
        }
        let stats = TimelineStats {
            duration_samples: self.flushed,
            sample_rate: self.config.sample_rate,
            pauses: std::mem::take(&mut self.pauses),
            pauses_truncated: self.pauses_truncated,
            streams: self.streams.iter().map(|s| s.stats).collect(),
        };
        self.sink.finalize()?;
        tracing::debug!(frames = stats.duration_samples, "timeline finished");
        Ok(stats)
    }

    /// Counters of one stream so far.
    pub fn stream_stats(&self, stream: StreamId) -> Option<StreamTimelineStats> {
        self.streams.get(stream.0).map(|s| s.stats)
    }

    /// Pause intervals closed so far.
    pub fn pauses(&self) -> &[(u64, u64)] {
        &self.pauses
    }

    /// Number of streams added.
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// Samples in each stream's ring (fixed for the session).
    pub fn ring_len(&self) -> usize {
        self.ring_len
    }

    /// The configuration.
    pub fn config(&self) -> &TimelineConfig {
        &self.config
    }

    /// The instant of position 0.
    pub fn start(&self) -> Instant {
        self.start
    }

    fn pos_at(&self, now: Instant) -> u64 {
        samples_in(
            now.saturating_duration_since(self.start),
            self.config.sample_rate,
        )
    }

    fn record_pause(&mut self, start: u64, end: u64) {
        if end <= start {
            return;
        }
        if self.pauses.len() < MAX_RECORDED_PAUSES {
            self.pauses.push((start, end));
        } else {
            self.pauses_truncated = true;
        }
    }

    fn poison(&mut self, e: &Error) {
        tracing::error!(error = %e, position = self.flushed, "spool sink failed; timeline closed");
        self.poisoned = true;
    }

    /// Mix and write frames `[flushed, target)`.
    fn flush_to(&mut self, target: u64) -> Result<(), Error> {
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        let ring_len = self.ring_len as u64;
        let ch = usize::from(CHANNELS);
        // One checkpoint per call at most, after the last frame: a call that crosses several
        // checkpoint positions (a tick after a silent stretch) makes one `write`, not several.
        let next_checkpoint = (self.flushed / self.checkpoint_samples)
            .saturating_add(1)
            .saturating_mul(self.checkpoint_samples);
        while self.flushed < target {
            let start = (self.flushed % ring_len) as usize;
            // Lossless: bounded by CHUNK_FRAMES.
            let n = (target - self.flushed)
                .min(CHUNK_FRAMES as u64)
                .min(ring_len - start as u64) as usize;
            let out = &mut self.out[..n * ch];
            if self.one_stream_per_channel {
                // The usual case (one stream each way): interleave, nothing to sum.
                if self.streams.len() < ch {
                    out.fill(0);
                }
                for st in &mut self.streams {
                    let c = st.channel;
                    let seg = &mut st.ring[start..start + n];
                    for (frame, s) in out.chunks_exact_mut(ch).zip(seg.iter()) {
                        frame[c] = *s;
                    }
                    seg.fill(0);
                }
            } else {
                let mix = &mut self.mix[..n * ch];
                mix.fill(0);
                for st in &mut self.streams {
                    let c = st.channel;
                    let seg = &mut st.ring[start..start + n];
                    for (frame, s) in mix.chunks_exact_mut(ch).zip(seg.iter()) {
                        frame[c] += i32::from(*s);
                    }
                    seg.fill(0);
                }
                for (o, m) in out.iter_mut().zip(mix.iter()) {
                    // Mixing sums across streams; the sum saturates to i16.
                    *o = (*m).clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
                }
            }
            if let Err(e) = self.sink.write_frames(out) {
                self.poison(&e);
                return Err(e);
            }
            self.flushed += n as u64;
        }
        if self.flushed >= next_checkpoint {
            self.checkpoint()?;
        }
        Ok(())
    }
}

/// Write `samples` at timeline position `pos` into the stream's ring: positions before
/// `flushed` are late, before `floor` inside a pause, from `limit` on beyond the ring.
fn place(st: &mut StreamState, samples: &[i16], pos: i64, flushed: i64, floor: i64, limit: i64) {
    let len = to_i64(samples.len() as u64);
    let end = pos.saturating_add(len);
    let count = |a: i64, b: i64| u64::try_from(b.saturating_sub(a)).unwrap_or(0);

    st.stats.late_dropped_samples += count(pos, end.min(flushed));
    st.stats.ignored_while_paused += count(pos.max(flushed), end.min(floor));
    st.stats.oversize_dropped_samples += count(pos.max(limit), end);

    let a = pos.max(floor);
    let b = end.min(limit);
    if a >= b {
        return;
    }
    // floor >= flushed >= 0 and b - a <= limit - flushed = ring length.
    let (Ok(a_pos), Ok(from), Ok(to)) = (
        u64::try_from(a),
        usize::try_from(a - pos),
        usize::try_from(b - pos),
    ) else {
        return;
    };
    let Some(src) = samples.get(from..to) else {
        return;
    };
    ring_write(&mut st.ring, a_pos, src);
    st.stats.samples_placed += src.len() as u64;
}

/// Copy `src` (at most `ring.len()` samples) to the ring slots of positions `pos..`.
fn ring_write(ring: &mut [i16], pos: u64, src: &[i16]) {
    let cap = ring.len();
    let i = (pos % cap as u64) as usize;
    let first = src.len().min(cap - i);
    let (head, tail) = src.split_at(first);
    ring[i..i + first].copy_from_slice(head);
    let tail_len = tail.len().min(i);
    ring[..tail_len].copy_from_slice(&tail[..tail_len]);
}

/// Zero the ring slots of positions `[from, to)` (at most one ring length).
fn ring_fill_zero(ring: &mut [i16], from: u64, to: u64) {
    let cap = ring.len();
    let n = usize::try_from(to.saturating_sub(from))
        .unwrap_or(usize::MAX)
        .min(cap);
    let i = (from % cap as u64) as usize;
    let first = n.min(cap - i);
    ring[i..i + first].fill(0);
    ring[..n - first].fill(0);
}

#[cfg(test)]
mod tests;
