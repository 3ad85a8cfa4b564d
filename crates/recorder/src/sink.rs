//! Where the timeline's frames go: the [`FrameSink`] trait, the WAV spool writer, and an
//! in-memory sink for tests.

use std::fmt;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::Error;

/// Channels in every file this crate writes (0 = left, 1 = right).
pub const CHANNELS: u16 = 2;

/// Size of the `BufWriter` between hound and the spool file: file writes are batched in
/// blocks of this size.
pub const SPOOL_BUFFER_BYTES: usize = 64 * 1024;

/// The most frames one spool file can hold: the RIFF size (`data length + 36` for the
/// 44-byte PCM header hound writes) must fit in 32 bits, 4 bytes per stereo 16-bit frame.
pub const MAX_WAV_FRAMES: u64 = (u32::MAX as u64 - 36) / 4;

/// Largest block handed to hound's `SampleWriter16` at once (its buffer is allocated once, at
/// this size, on the first write).
const WRITE_BLOCK_SAMPLES: usize = 4096;

/// Receiver of the timeline's output: interleaved stereo 16-bit frames, in order.
///
/// The [`Timeline`](crate::Timeline) only ever hands over whole frames (an even number of
/// samples, left first) and at most a few thousand frames per call.
pub trait FrameSink {
    /// Append frames. `interleaved` is `[l0, r0, l1, r1, ...]`; its length is even.
    fn write_frames(&mut self, interleaved: &[i16]) -> Result<(), Error>;

    /// Make everything written so far durable as a valid file (for the WAV writer: update the
    /// header and flush the buffer to the OS). Writing may continue afterwards.
    fn checkpoint(&mut self) -> Result<(), Error>;

    /// Finish the file. Called once, by [`Timeline::finish`](crate::Timeline::finish).
    fn finalize(self: Box<Self>) -> Result<(), Error>;
}

/// The spool file: a 2-channel 16-bit PCM WAV written incrementally through hound's
/// [`hound::WavWriter`] over a [`SPOOL_BUFFER_BYTES`] `BufWriter`.
///
/// [`checkpoint`](FrameSink::checkpoint) calls `WavWriter::flush`, which rewrites the RIFF and
/// data chunk sizes, so after a checkpoint the file on disk is a valid WAV holding the frames
/// written so far. (It does not `fsync`: the data survives a crash of this process, not
/// necessarily a power loss.) A file left behind by a killed process can be fixed with
/// [`repair_wav_header`](crate::repair_wav_header).
pub struct WavSpoolWriter {
    writer: hound::WavWriter<BufWriter<File>>,
    frames: u64,
    path: PathBuf,
}

impl WavSpoolWriter {
    /// Create (or truncate) `path` and write the WAV header for 2 channels, 16-bit,
    /// `sample_rate` Hz.
    pub fn create(path: &Path, sample_rate: u32) -> Result<Self, Error> {
        if sample_rate == 0 {
            return Err(Error::InvalidConfig("WAV sample rate must not be 0".into()));
        }
        let file = File::create(path)?;
        let buffered = BufWriter::with_capacity(SPOOL_BUFFER_BYTES, file);
        let spec = hound::WavSpec {
            channels: CHANNELS,
            sample_rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut writer = hound::WavWriter::new(buffered, spec)?;
        // Allocate hound's sample buffer now, at its final size, so writes never allocate.
        // (An unflushed `SampleWriter16` writes nothing and has no `Drop`.)
        let _ = writer.get_i16_writer(WRITE_BLOCK_SAMPLES as u32);
        Ok(Self {
            writer,
            frames: 0,
            path: path.to_path_buf(),
        })
    }

    /// Frames accepted so far (not all of them are on disk before the next checkpoint).
    pub fn frames_written(&self) -> u64 {
        self.frames
    }

    /// The spool file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Debug for WavSpoolWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WavSpoolWriter")
            .field("path", &self.path)
            .field("sample_rate", &self.writer.spec().sample_rate)
            .field("frames", &self.frames)
            .finish()
    }
}

impl FrameSink for WavSpoolWriter {
    fn write_frames(&mut self, interleaved: &[i16]) -> Result<(), Error> {
        if interleaved.len() % usize::from(CHANNELS) != 0 {
            return Err(Error::Wav(hound::Error::UnfinishedSample));
        }
        let frames = (interleaved.len() / usize::from(CHANNELS)) as u64;
        if self.frames.saturating_add(frames) > MAX_WAV_FRAMES {
            return Err(Error::WavFull {
                max_frames: MAX_WAV_FRAMES,
            });
        }
        for block in interleaved.chunks(WRITE_BLOCK_SAMPLES) {
            // `block.len() <= WRITE_BLOCK_SAMPLES`, so the cast is lossless; exactly that many
            // samples are written before `flush`, as `SampleWriter16` requires.
            let mut w = self.writer.get_i16_writer(block.len() as u32);
            for &s in block {
                w.write_sample(s);
            }
            w.flush()?;
        }
        self.frames += frames;
        Ok(())
    }

    fn checkpoint(&mut self) -> Result<(), Error> {
        self.writer.flush()?;
        Ok(())
    }

    fn finalize(self: Box<Self>) -> Result<(), Error> {
        let this = *self;
        this.writer.finalize()?;
        Ok(())
    }
}

/// What a [`MemorySink`] has received; shared with the sink, readable after
/// [`Timeline::finish`](crate::Timeline::finish) consumed it.
#[derive(Debug, Clone, Default)]
pub struct MemoryOutput {
    inner: Arc<Mutex<MemoryState>>,
}

#[derive(Debug, Default)]
struct MemoryState {
    samples: Vec<i16>,
    checkpoints: u32,
    finalized: bool,
    largest_write: usize,
}

impl MemoryOutput {
    fn lock(&self) -> MutexGuard<'_, MemoryState> {
        // A panic elsewhere while holding the lock leaves plain data behind; keep reading it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// All interleaved samples received so far.
    pub fn interleaved(&self) -> Vec<i16> {
        self.lock().samples.clone()
    }

    /// One channel (0 = left, 1 = right) of what was received so far.
    pub fn channel(&self, channel: usize) -> Vec<i16> {
        self.lock()
            .samples
            .iter()
            .skip(channel)
            .step_by(usize::from(CHANNELS))
            .copied()
            .collect()
    }

    /// Frames received so far.
    pub fn frames(&self) -> u64 {
        (self.lock().samples.len() / usize::from(CHANNELS)) as u64
    }

    /// How many times `checkpoint` was called.
    pub fn checkpoints(&self) -> u32 {
        self.lock().checkpoints
    }

    /// Whether `finalize` was called.
    pub fn is_finalized(&self) -> bool {
        self.lock().finalized
    }

    /// The largest single `write_frames` call, in samples.
    pub fn largest_write(&self) -> usize {
        self.lock().largest_write
    }
}

/// A [`FrameSink`] that keeps every frame in memory. For tests and examples only: it grows
/// without bound, which is exactly what the real spool writer avoids.
#[derive(Debug, Default)]
pub struct MemorySink {
    out: MemoryOutput,
}

impl MemorySink {
    /// A new sink and the handle through which its output is read.
    pub fn new() -> (Self, MemoryOutput) {
        let out = MemoryOutput::default();
        (Self { out: out.clone() }, out)
    }
}

impl FrameSink for MemorySink {
    fn write_frames(&mut self, interleaved: &[i16]) -> Result<(), Error> {
        if interleaved.len() % usize::from(CHANNELS) != 0 {
            return Err(Error::Wav(hound::Error::UnfinishedSample));
        }
        let mut st = self.out.lock();
        st.samples.extend_from_slice(interleaved);
        st.largest_write = st.largest_write.max(interleaved.len());
        Ok(())
    }

    fn checkpoint(&mut self) -> Result<(), Error> {
        self.out.lock().checkpoints += 1;
        Ok(())
    }

    fn finalize(self: Box<Self>) -> Result<(), Error> {
        self.out.lock().finalized = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spool_writer_roundtrip_and_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        let mut w = WavSpoolWriter::create(&path, 16000).unwrap();
        let frames: Vec<i16> = (0..20_000).map(|i| (i % 3000) as i16 - 1500).collect();
        w.write_frames(&frames).unwrap();
        w.checkpoint().unwrap();
        assert_eq!(w.frames_written(), 10_000);
        {
            let r = hound::WavReader::open(&path).unwrap();
            assert_eq!(r.spec().channels, 2);
            assert_eq!(r.spec().sample_rate, 16000);
            assert_eq!(r.duration(), 10_000);
        }
        w.write_frames(&frames[..400]).unwrap();
        Box::new(w).finalize().unwrap();
        let mut r = hound::WavReader::open(&path).unwrap();
        assert_eq!(r.duration(), 10_200);
        let got: Vec<i16> = r.samples::<i16>().map(|s| s.unwrap()).collect();
        assert_eq!(&got[..20_000], &frames[..]);
        assert_eq!(&got[20_000..], &frames[..400]);
    }

    #[test]
    fn odd_sample_count_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = WavSpoolWriter::create(&dir.path().join("b.wav"), 8000).unwrap();
        assert!(matches!(
            w.write_frames(&[1, 2, 3]),
            Err(Error::Wav(hound::Error::UnfinishedSample))
        ));
        let (mut m, _) = MemorySink::new();
        assert!(m.write_frames(&[1]).is_err());
    }

    #[test]
    fn wav_size_limit_is_an_error_not_an_overflow() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = WavSpoolWriter::create(&dir.path().join("c.wav"), 8000).unwrap();
        w.frames = MAX_WAV_FRAMES - 1;
        assert!(matches!(
            w.write_frames(&[0; 4]),
            Err(Error::WavFull { .. })
        ));
        w.write_frames(&[0; 2]).unwrap();
        assert_eq!(w.frames_written(), MAX_WAV_FRAMES);
        assert!(MAX_WAV_FRAMES * 4 + 36 <= u64::from(u32::MAX));
    }

    #[test]
    fn zero_rate_rejected() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            WavSpoolWriter::create(&dir.path().join("d.wav"), 0),
            Err(Error::InvalidConfig(_))
        ));
    }
}
