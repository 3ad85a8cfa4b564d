//! The crate's one error type.

/// Everything that can go wrong in this crate.
///
/// Nothing a peer sends is an error here: bad timing from the network (late, lost, reordered,
/// duplicated packets, timestamp jumps, SSRC changes) is absorbed by the timeline and counted in
/// [`TimelineStats`](crate::TimelineStats). What remains is local: our disk, our configuration,
/// and calls that break the API contract.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // --- our disk / our files -------------------------------------------------------------
    /// Reading or writing the spool file failed (disk full, permissions, file vanished, ...).
    #[error("spool file I/O: {0}")]
    Io(#[from] std::io::Error),

    /// hound reported a WAV error while writing, or a file handed to
    /// [`repair_wav_header`](crate::repair_wav_header) is not a WAV file we can repair
    /// (`hound::Error::FormatError`). An odd number of interleaved samples handed to
    /// [`FrameSink::write_frames`](crate::FrameSink::write_frames) is reported as
    /// `hound::Error::UnfinishedSample`.
    #[error("WAV: {0}")]
    Wav(#[from] hound::Error),

    /// The spool file reached the WAV format's size limit (the data chunk length is a 32-bit
    /// field): no more frames fit. At 8 kHz stereo 16-bit that is about 37 hours.
    #[error("WAV file full: at most {max_frames} frames fit in one WAV file")]
    WavFull {
        /// The largest number of frames one spool file can hold.
        max_frames: u64,
    },

    /// An earlier write to the sink failed; the timeline accepts no more audio. What was written
    /// before the failure stays on disk up to the last checkpoint.
    #[error("an earlier write to the spool sink failed; the timeline is closed")]
    Poisoned,

    // --- our configuration / caller bugs ------------------------------------------------------
    /// The [`TimelineConfig`](crate::TimelineConfig) is out of range (our configuration is wrong).
    #[error("invalid timeline configuration: {0}")]
    InvalidConfig(String),

    /// A [`StreamId`](crate::StreamId) that this timeline's `add_stream` did not hand out.
    #[error("unknown stream id")]
    UnknownStream,
}
