//! Where the timeline's frames go: the [`FrameSink`] trait, the WAV spool writer, and an
//! in-memory sink for tests.

use std::fmt;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::Error;

/// Channels in every file this crate writes (0 = left, 1 = right).
pub const CHANNELS: u16 = 2;

/// The most bytes of audio the spool writer holds between two file writes: frames are kept in
/// memory until the next checkpoint, or until this much is waiting (a long checkpoint interval
/// at a high rate), then written with one `write`. The buffer grows to what the checkpoint
/// interval needs (640 bytes for 20 ms at 8 kHz) and never beyond this.
pub const SPOOL_BUFFER_BYTES: usize = 16 * 1024;

/// The size of the canonical PCM WAV header the spool writer writes (RIFF, `fmt `, `data`).
pub const WAV_HEADER_BYTES: usize = 44;

/// The most frames one spool file can hold: the RIFF size (`data length + 36` for the
/// 44-byte PCM header) must fit in 32 bits, 4 bytes per stereo 16-bit frame.
pub const MAX_WAV_FRAMES: u64 = (u32::MAX as u64 - 36) / 4;

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

/// The spool file: a 2-channel 16-bit PCM WAV written incrementally, with as few system calls
/// as the durability promise allows.
///
/// - Frames are kept in a small buffer (at most [`SPOOL_BUFFER_BYTES`]) and appended to the
///   file with **one `write` per [`checkpoint`](FrameSink::checkpoint)**, so after a checkpoint
///   every frame written so far is in the file (in the OS; there is no `fsync`: the data
///   survives a crash of this process, not necessarily a power loss).
/// - The header's two size fields are rewritten in place (`pwrite`, no seek) at the first
///   checkpoint after each further second of audio and when the file is finished, so a reader
///   of a live file sees a valid WAV at most one second behind. A file left by a killed
///   process holds all the audio up to its last checkpoint; its header is brought up to date
///   by [`repair_wav_header`](crate::repair_wav_header), which spool recovery always runs.
pub struct WavSpoolWriter {
    file: File,
    /// Audio waiting for the next write, little-endian bytes.
    buf: Vec<u8>,
    /// Frames accepted (written or buffered).
    frames: u64,
    /// Frames the header on disk describes.
    header_frames: u64,
    sample_rate: u32,
    path: PathBuf,
}

/// The 44-byte header of a 2-channel 16-bit PCM WAV holding `frames` frames.
fn wav_header(sample_rate: u32, frames: u64) -> [u8; WAV_HEADER_BYTES] {
    let block_align = u32::from(CHANNELS) * 2;
    // `frames <= MAX_WAV_FRAMES`, so both sizes fit in 32 bits.
    let data_len = u32::try_from(frames * u64::from(block_align)).unwrap_or(u32::MAX - 36);
    let mut h = [0u8; WAV_HEADER_BYTES];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&(data_len + 36).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&CHANNELS.to_le_bytes());
    h[24..28].copy_from_slice(&sample_rate.to_le_bytes());
    h[28..32].copy_from_slice(&(sample_rate * block_align).to_le_bytes());
    h[32..34].copy_from_slice(&(block_align as u16).to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_len.to_le_bytes());
    h
}

impl WavSpoolWriter {
    /// Create (or truncate) `path` and write the WAV header for 2 channels, 16-bit,
    /// `sample_rate` Hz.
    pub fn create(path: &Path, sample_rate: u32) -> Result<Self, Error> {
        if sample_rate == 0 {
            return Err(Error::InvalidConfig("WAV sample rate must not be 0".into()));
        }
        let mut file = File::create(path)?;
        file.write_all(&wav_header(sample_rate, 0))?;
        Ok(Self {
            file,
            buf: Vec::new(),
            frames: 0,
            header_frames: 0,
            sample_rate,
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

    /// Appends the buffered audio to the file (one `write`).
    fn write_out(&mut self) -> Result<(), Error> {
        if !self.buf.is_empty() {
            self.file.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Rewrites the header for the frames in the file (one `pwrite`).
    fn write_header(&mut self) -> Result<(), Error> {
        self.file
            .write_all_at(&wav_header(self.sample_rate, self.frames), 0)?;
        self.header_frames = self.frames;
        Ok(())
    }
}

impl fmt::Debug for WavSpoolWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WavSpoolWriter")
            .field("path", &self.path)
            .field("sample_rate", &self.sample_rate)
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
        // At most SPOOL_BUFFER_BYTES of samples at a time; the buffer is written when full.
        for block in interleaved.chunks(SPOOL_BUFFER_BYTES / 2) {
            if self.buf.len() + 2 * block.len() > SPOOL_BUFFER_BYTES {
                self.write_out()?;
            }
            let at = self.buf.len();
            self.buf.resize(at + 2 * block.len(), 0);
            for (dst, s) in self.buf[at..].chunks_exact_mut(2).zip(block) {
                dst.copy_from_slice(&s.to_le_bytes());
            }
        }
        self.frames += frames;
        Ok(())
    }

    fn checkpoint(&mut self) -> Result<(), Error> {
        self.write_out()?;
        if self.frames.saturating_sub(self.header_frames) >= u64::from(self.sample_rate) {
            self.write_header()?;
        }
        Ok(())
    }

    fn finalize(self: Box<Self>) -> Result<(), Error> {
        let mut this = *self;
        this.write_out()?;
        this.write_header()?;
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
        let frames: Vec<i16> = (0..40_000).map(|i| (i % 3000) as i16 - 1500).collect();
        w.write_frames(&frames).unwrap();
        w.checkpoint().unwrap();
        assert_eq!(w.frames_written(), 20_000);
        {
            // More than a second of audio since the last header: the header is current.
            let r = hound::WavReader::open(&path).unwrap();
            assert_eq!(r.spec().channels, 2);
            assert_eq!(r.spec().sample_rate, 16000);
            assert_eq!(r.duration(), 20_000);
        }
        w.write_frames(&frames[..400]).unwrap();
        Box::new(w).finalize().unwrap();
        let mut r = hound::WavReader::open(&path).unwrap();
        assert_eq!(r.duration(), 20_200);
        let got: Vec<i16> = r.samples::<i16>().map(|s| s.unwrap()).collect();
        assert_eq!(&got[..40_000], &frames[..]);
        assert_eq!(&got[40_000..], &frames[..400]);
    }

    #[test]
    fn a_checkpoint_puts_every_frame_in_the_file_and_repair_finds_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.wav");
        let mut w = WavSpoolWriter::create(&path, 8000).unwrap();
        // 20 ms checkpoints: each one appends its 160 frames; the header waits for a second.
        for i in 0..10i16 {
            w.write_frames(&[i; 320]).unwrap();
            w.checkpoint().unwrap();
            let len = std::fs::metadata(&path).unwrap().len();
            assert_eq!(len, WAV_HEADER_BYTES as u64 + 640 * (i as u64 + 1));
        }
        assert_eq!(hound::WavReader::open(&path).unwrap().duration(), 0);
        // Frames after the last checkpoint are not in the file; a killed process loses them.
        w.write_frames(&[7; 320]).unwrap();
        drop(w);
        assert_eq!(crate::repair_wav_header(&path).unwrap(), 1600);
        let mut r = hound::WavReader::open(&path).unwrap();
        assert_eq!(r.duration(), 1600);
        let got: Vec<i16> = r.samples::<i16>().map(|s| s.unwrap()).collect();
        assert_eq!(got[0], 0);
        assert_eq!(got[3199], 9);
    }

    #[test]
    fn the_buffer_never_exceeds_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.wav");
        let mut w = WavSpoolWriter::create(&path, 48000).unwrap();
        let block = vec![1i16; 9600]; // 100 ms of 48 kHz stereo
        for _ in 0..10 {
            w.write_frames(&block).unwrap();
            assert!(w.buf.capacity() <= SPOOL_BUFFER_BYTES);
        }
        // Without a checkpoint, full buffers went to the file all the same.
        let len = std::fs::metadata(&path).unwrap().len();
        assert!(len >= (10 * 9600 * 2 - SPOOL_BUFFER_BYTES) as u64);
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
