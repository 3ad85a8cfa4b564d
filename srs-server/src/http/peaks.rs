//! Waveform peaks of a stored `audio.wav`: per channel, the minimum and maximum sample of each
//! of [`BINS`] equal slices, computed in one pass over the WAV as it streams from the store
//! (an hour-long call is never held in memory).

use futures::{Stream, StreamExt};
use serde::Serialize;

/// Slices per channel.
pub const BINS: usize = 1000;

/// The peaks of one recording.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Peaks {
    /// Sample rate, Hz.
    pub sample_rate: u32,
    /// Channels in the file (1 or 2).
    pub channels: u16,
    /// Samples per channel.
    pub frames: u64,
    /// Samples per channel in each slice.
    pub frames_per_bin: u64,
    /// Left channel: `[min, max]` per slice.
    pub left: Vec<[i16; 2]>,
    /// Right channel: `[min, max]` per slice (the left one again for a mono file).
    pub right: Vec<[i16; 2]>,
}

/// Why a WAV cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum PeaksError {
    /// Reading failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Not a 16-bit PCM WAV of 1 or 2 channels.
    #[error("not a 16-bit PCM WAV: {0}")]
    Format(&'static str),
}

impl Peaks {
    /// Reads a WAV of `size` bytes from `stream`.
    pub async fn from_stream<S>(stream: S, size: u64) -> Result<Peaks, PeaksError>
    where
        S: Stream<Item = Result<bytes::Bytes, std::io::Error>> + Unpin,
    {
        let mut stream = stream;
        let mut buf: Vec<u8> = Vec::new();
        // The header: RIFF, then chunks up to "data".
        let (rate, channels, data_len) = loop {
            if let Some(h) = parse_header(&buf)? {
                buf.drain(..h.3);
                break (h.0, h.1, h.2);
            }
            match stream.next().await {
                Some(chunk) => buf.extend_from_slice(&chunk?),
                None => return Err(PeaksError::Format("no data chunk")),
            }
            if buf.len() > 1 << 20 {
                return Err(PeaksError::Format("header too long"));
            }
        };
        let frame = 2 * channels as u64;
        // A data length of 0 or past the end (a WAV being written): what the file holds.
        let data_len = if data_len == 0 || data_len > size {
            size.saturating_sub(44)
        } else {
            data_len
        };
        let frames = data_len / frame;
        let per_bin = frames.div_ceil(BINS as u64).max(1);
        let bins = frames.div_ceil(per_bin) as usize;
        let mut ch = [vec![[0i16; 2]; bins], vec![[0i16; 2]; bins]];
        let mut i: u64 = 0;
        let mut feed = |bytes: &[u8], i: &mut u64| -> usize {
            let whole = bytes.len() / frame as usize * frame as usize;
            for f in bytes[..whole].chunks_exact(frame as usize) {
                if *i >= frames {
                    break;
                }
                let bin = (*i / per_bin) as usize;
                for (c, bins) in ch.iter_mut().enumerate() {
                    let at = if channels == 2 { 2 * c } else { 0 };
                    let v = i16::from_le_bytes([f[at], f[at + 1]]);
                    let p = &mut bins[bin];
                    p[0] = p[0].min(v);
                    p[1] = p[1].max(v);
                }
                *i += 1;
            }
            whole
        };
        let used = feed(&buf, &mut i);
        buf.drain(..used);
        while let Some(chunk) = stream.next().await {
            buf.extend_from_slice(&chunk?);
            let used = feed(&buf, &mut i);
            buf.drain(..used);
            if i >= frames {
                break;
            }
        }
        let [left, right] = ch;
        Ok(Peaks {
            sample_rate: rate,
            channels,
            frames,
            frames_per_bin: per_bin,
            left,
            right,
        })
    }
}

/// `(rate, channels, data length, offset of the data)` once the header is complete.
fn parse_header(b: &[u8]) -> Result<Option<(u32, u16, u64, usize)>, PeaksError> {
    if b.len() < 12 {
        return Ok(None);
    }
    if &b[0..4] != b"RIFF" || &b[8..12] != b"WAVE" {
        return Err(PeaksError::Format("no RIFF/WAVE header"));
    }
    let mut at = 12;
    let mut fmt: Option<(u32, u16)> = None;
    while at + 8 <= b.len() {
        let id = &b[at..at + 4];
        let len = u32::from_le_bytes([b[at + 4], b[at + 5], b[at + 6], b[at + 7]]) as usize;
        if id == b"data" {
            let (rate, channels) = fmt.ok_or(PeaksError::Format("data before fmt"))?;
            return Ok(Some((rate, channels, len as u64, at + 8)));
        }
        if at + 8 + len > b.len() {
            return Ok(None);
        }
        if id == b"fmt " {
            let c = &b[at + 8..at + 8 + len];
            if c.len() < 16 {
                return Err(PeaksError::Format("short fmt chunk"));
            }
            let format = u16::from_le_bytes([c[0], c[1]]);
            let channels = u16::from_le_bytes([c[2], c[3]]);
            let rate = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
            let bits = u16::from_le_bytes([c[14], c[15]]);
            if !(format == 1 || format == 0xFFFE) || bits != 16 || !(1..=2).contains(&channels) {
                return Err(PeaksError::Format("only 16-bit PCM, 1 or 2 channels"));
            }
            fmt = Some((rate, channels));
        }
        at += 8 + len + (len & 1);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn peaks_of_a_stereo_wav_in_small_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        // 2 s: left loud then silent, right silent then loud.
        for i in 0..16000 {
            let loud = if i % 2 == 0 { 1000 } else { -1000 };
            let (l, r) = if i < 8000 { (loud, 0) } else { (0, loud * 2) };
            w.write_sample(l as i16).unwrap();
            w.write_sample(r as i16).unwrap();
        }
        w.finalize().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let size = bytes.len() as u64;
        let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = bytes
            .chunks(777)
            .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
            .collect();
        let p = Peaks::from_stream(futures::stream::iter(chunks), size)
            .await
            .unwrap();
        assert_eq!((p.sample_rate, p.channels, p.frames), (8000, 2, 16000));
        assert_eq!(p.frames_per_bin, 16);
        assert_eq!(p.left.len(), 1000);
        assert_eq!(p.left[0], [-1000, 1000]);
        assert_eq!(p.left[999], [0, 0]);
        assert_eq!(p.right[0], [0, 0]);
        assert_eq!(p.right[999], [-2000, 2000]);
        let bad = futures::stream::iter(vec![Ok(bytes::Bytes::from_static(b"RIFX0000WAVE"))]);
        assert!(Peaks::from_stream(bad, 12).await.is_err());
    }
}
