//! siprec-recorder: the recording timeline of a SIPREC recording session.
//!
//! # What it owns
//!
//! A recording session carries N RTP streams. The caller decodes each packet to 16-bit PCM at
//! the recording rate and hands it to a [`Timeline`], which places every stream on **one**
//! timeline and writes an interleaved 2-channel 16-bit WAV, incrementally, to a spool file
//! ([`WavSpoolWriter`]) — a call is never held whole in memory. It is sans-IO for time: every
//! call takes `now: Instant`, the packet's arrival time; nothing here reads a clock or sleeps.
//!
//! - **Placement.** Within a stream, by RTP timestamp:
//!   `position = anchor_position + (ts - anchor_ts) * sample_rate / clock_rate`, across the
//!   32-bit wrap. Between streams, by arrival time: a stream is anchored at its first packet's
//!   arrival (`now - start`, in samples). It is re-anchored at the arrival position when its
//!   SSRC changes, after a resume, after a clock-rate change, when timestamp and arrival
//!   disagree by more than [`TimelineConfig::max_skew`], when a packet would land beyond the
//!   ring, and when all its packets have been too late for a whole jitter window.
//! - **Channels.** Each stream goes to channel 0 (left) or 1 (right); several streams on one
//!   channel are summed, saturating to i16. A stream writing the same position twice
//!   overwrites its own contribution (each stream has its own ring; the sum is only across
//!   streams), so a duplicate packet is harmless.
//! - **Jitter window.** Samples wait in the stream's fixed ring until they fall behind
//!   `now - jitter_window`; then they are mixed and written. Reordering inside the window
//!   costs nothing; positions nobody wrote are silence; samples for positions already written
//!   are dropped and counted.
//! - **Pause.** Silence from the pause position to the resume position, exactly; pushes
//!   meanwhile are ignored and counted; the intervals are reported.
//! - **Time always advances.** [`Timeline::advance`] writes silence where no audio came, so
//!   silent and one-way calls still get a file, and [`Timeline::finish`] writes exactly
//!   `finish - start` of audio: the file is as long as the session, never longer.
//! - **Durability.** Every [`TimelineConfig::checkpoint_interval`] of audio the buffered frames
//!   go to the file with one `write` (the header follows at most a second later, see
//!   [`WavSpoolWriter`]). [`repair_wav_header`] fixes the header of a file left by a killed
//!   process.
//! - **One recording's media** ([`session::MediaSession`]): the per-packet decisions of a
//!   recording server around the timeline (SRTP, source latching, pause gating, decoder
//!   choice, sequence tracking, media timeout), sans-IO too.
//!
//! # Memory
//!
//! Fixed per session: each stream owns one ring of [`TimelineConfig::ring_len`] samples
//! (`jitter_window` + [`RING_HEADROOM`]; 4400 samples = 8.8 KB at the defaults), allocated by
//! `add_stream`; the mixer owns two 1024-frame buffers; the spool writer a buffer of one
//! checkpoint's audio (at most [`SPOOL_BUFFER_BYTES`]). Nothing grows with the call's length,
//! and `push` does not allocate. (The rings are per stream rather than per channel so that a stream writing a
//! position twice replaces its own samples; streams are summed only when frames are written.)
//!
//! For tests, [`MemorySink`] collects the frames in memory instead of a file.
//!
//! # Call order
//!
//! 1. [`WavSpoolWriter::create`] (or any [`FrameSink`]), then [`Timeline::new`] with the
//!    session's start instant.
//! 2. [`Timeline::add_stream`] per recorded stream (any time; also
//!    [`Timeline::set_stream_clock_rate`] on a codec change).
//! 3. Per RTP packet, decoded: [`Timeline::push`]. Every 20-100 ms, whether packets come or
//!    not: [`Timeline::advance`]. On pause/resume: [`Timeline::set_paused`].
//! 4. At the end: [`Timeline::finish`], which finalizes the file and returns
//!    [`TimelineStats`].
//!
//! # Example
//!
//! ```
//! use std::time::{Duration, Instant};
//! use siprec_recorder::{Timeline, TimelineConfig, WavSpoolWriter};
//!
//! # fn main() -> Result<(), siprec_recorder::Error> {
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("call.wav");
//! let t0 = Instant::now();
//! let config = TimelineConfig::default(); // 8 kHz, 300 ms jitter window
//! let sink = WavSpoolWriter::create(&path, config.sample_rate)?;
//! let mut timeline = Timeline::new(t0, config, Box::new(sink))?;
//!
//! let caller = timeline.add_stream(0, 8000); // left
//! let callee = timeline.add_stream(1, 8000); // right, never sends: a one-way call
//! for i in 0..50u32 {
//!     let now = t0 + Duration::from_millis(20 * u64::from(i));
//!     // 20 ms of PCMU decoded to 8 kHz PCM
//!     timeline.push(now, caller, 0x1234_5678, 4000 + 160 * i, &[1000; 160])?;
//! }
//! let stats = timeline.finish(t0 + Duration::from_secs(1))?;
//! assert_eq!(stats.duration_samples, 8000);
//! assert_eq!(stats.streams[callee.0].samples_placed, 0);
//!
//! let mut wav = hound::WavReader::open(&path)?;
//! assert_eq!(wav.spec().channels, 2);
//! assert_eq!(wav.duration(), 8000);
//! let first: Vec<i16> = wav.samples::<i16>().take(2).collect::<Result<_, _>>()?;
//! assert_eq!(first, [1000, 0]);
//! # Ok(())
//! # }
//! ```

mod error;
mod repair;
pub mod session;
mod sink;
mod timeline;

pub use error::Error;
pub use repair::repair_wav_header;
pub use sink::{
    FrameSink, MemoryOutput, MemorySink, WavSpoolWriter, CHANNELS, MAX_WAV_FRAMES,
    SPOOL_BUFFER_BYTES, WAV_HEADER_BYTES,
};
pub use timeline::{
    StreamId, StreamTimelineStats, Timeline, TimelineConfig, TimelineStats, MAX_JITTER_WINDOW,
    MAX_RECORDED_PAUSES, MIN_CHECKPOINT_INTERVAL, RING_HEADROOM, SAMPLE_RATE_RANGE,
};
