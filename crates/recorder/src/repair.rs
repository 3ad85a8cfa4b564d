//! Crash recovery for spool files: make the header agree with the data on disk.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::Error;

/// Chunks before `data` that we are willing to walk over (hound writes exactly one, `fmt `).
const MAX_CHUNKS_BEFORE_DATA: usize = 16;

fn format_error(what: &'static str) -> Error {
    Error::Wav(hound::Error::FormatError(what))
}

/// Rewrite the RIFF and data chunk sizes of a spool WAV file to the data actually on disk, and
/// return the number of whole frames it holds.
///
/// For a file left behind by a killed process: its header holds the sizes of the last
/// checkpoint (or 0 if there was none), while more data may follow. The data chunk is taken to
/// run to the end of the file (the layout [`WavSpoolWriter`](crate::WavSpoolWriter) writes);
/// a trailing partial frame is cut off. Only the header chunks are read, so this costs the
/// same for any file size. A file that is already consistent is left as it is (the sizes are
/// rewritten to the same values).
///
/// Errors: [`Error::Io`] if the file cannot be opened or written; [`Error::Wav`] with
/// `hound::Error::FormatError` if it is not a RIFF/WAVE file with a `fmt ` chunk followed by a
/// `data` chunk, or holds more data than a WAV header can describe.
pub fn repair_wav_header(path: &Path) -> Result<u64, Error> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let len = file.metadata()?.len();

    let mut riff = [0u8; 12];
    if len < 12 {
        return Err(format_error("file too short for a RIFF/WAVE header"));
    }
    file.read_exact(&mut riff)?;
    if &riff[0..4] != b"RIFF" || &riff[8..12] != b"WAVE" {
        return Err(format_error("not a RIFF/WAVE file"));
    }

    let mut offset: u64 = 12;
    let mut block_align: Option<u64> = None;
    let mut data_start: Option<u64> = None;
    for _ in 0..MAX_CHUNKS_BEFORE_DATA {
        if offset.saturating_add(8) > len {
            break;
        }
        let mut chunk = [0u8; 8];
        file.seek(SeekFrom::Start(offset))?;
        file.read_exact(&mut chunk)?;
        let size = u64::from(u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]));
        match &chunk[0..4] {
            b"data" => {
                data_start = Some(offset + 8);
                break;
            }
            b"fmt " => {
                if size < 16 || offset + 8 + 16 > len {
                    return Err(format_error("truncated fmt chunk"));
                }
                let mut fmt = [0u8; 16];
                file.read_exact(&mut fmt)?;
                // WAVEFORMAT: tag(2) channels(2) rate(4) bytes/s(4) block align(2) bits(2)
                block_align = Some(u64::from(u16::from_le_bytes([fmt[12], fmt[13]])));
            }
            _ => {}
        }
        // RIFF chunks are padded to an even length.
        offset = offset.saturating_add(8).saturating_add(size + (size & 1));
    }

    let data_start = data_start.ok_or_else(|| format_error("no data chunk found"))?;
    let block_align = match block_align {
        Some(0) => return Err(format_error("fmt chunk has block align 0")),
        Some(b) => b,
        None => return Err(format_error("no fmt chunk before the data chunk")),
    };

    let frames = (len - data_start) / block_align;
    let data_len = frames * block_align;
    // The RIFF size counts everything after its own 8-byte header.
    let riff_size = data_start - 8 + data_len;
    let (Ok(data_len32), Ok(riff_size32)) = (u32::try_from(data_len), u32::try_from(riff_size))
    else {
        return Err(format_error("more data than a WAV header can describe"));
    };

    file.set_len(data_start + data_len)?;
    file.seek(SeekFrom::Start(4))?;
    file.write_all(&riff_size32.to_le_bytes())?;
    file.seek(SeekFrom::Start(data_start - 4))?;
    file.write_all(&data_len32.to_le_bytes())?;
    file.sync_all()?;
    tracing::info!(path = %path.display(), frames, "repaired WAV header");
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FrameSink, WavSpoolWriter};

    fn write_spool(path: &Path, frames: usize) -> Vec<i16> {
        let mut w = WavSpoolWriter::create(path, 8000).unwrap();
        let data: Vec<i16> = (0..frames * 2)
            .map(|i| (i as i16).wrapping_mul(7))
            .collect();
        w.write_frames(&data).unwrap();
        Box::new(w).finalize().unwrap();
        data
    }

    fn zero_sizes(path: &Path) {
        let mut f = OpenOptions::new().write(true).open(path).unwrap();
        f.seek(SeekFrom::Start(4)).unwrap();
        f.write_all(&[0; 4]).unwrap();
        f.seek(SeekFrom::Start(40)).unwrap();
        f.write_all(&[0; 4]).unwrap();
    }

    #[test]
    fn restores_frame_count_of_zero_size_header_and_cuts_partial_frame() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crashed.wav");
        let data = write_spool(&path, 12_345);
        zero_sizes(&path);
        // A partial frame at the end, as a kill in the middle of a write leaves it.
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&[1, 2, 3])
            .unwrap();
        assert_eq!(hound::WavReader::open(&path).unwrap().duration(), 0);

        assert_eq!(repair_wav_header(&path).unwrap(), 12_345);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 44 + 12_345 * 4);
        let mut r = hound::WavReader::open(&path).unwrap();
        assert_eq!(r.duration(), 12_345);
        let got: Vec<i16> = r.samples::<i16>().map(|s| s.unwrap()).collect();
        assert_eq!(got, data);
    }

    #[test]
    fn consistent_file_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ok.wav");
        write_spool(&path, 100);
        let before = std::fs::read(&path).unwrap();
        assert_eq!(repair_wav_header(&path).unwrap(), 100);
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn header_only_file_has_zero_frames() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.wav");
        write_spool(&path, 0);
        assert_eq!(repair_wav_header(&path).unwrap(), 0);
        assert_eq!(hound::WavReader::open(&path).unwrap().duration(), 0);
    }

    #[test]
    fn rejects_non_wav_and_broken_layouts() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [&[u8]; 5] = [
            b"",
            b"hello world, not a wav file at all",
            b"RIFF\0\0\0\0WAVE",
            b"RIFF\0\0\0\0WAVEdata\0\0\0\0\x01\x02",
            b"RIFF\0\0\0\0WAVEfmt \x02\0\0\0abdata\0\0\0\0",
        ];
        for (i, bytes) in cases.iter().enumerate() {
            let path = dir.path().join(format!("bad{i}.wav"));
            std::fs::write(&path, bytes).unwrap();
            assert!(
                matches!(
                    repair_wav_header(&path),
                    Err(Error::Wav(hound::Error::FormatError(_)))
                ),
                "case {i}"
            );
        }
        assert!(matches!(
            repair_wav_header(&dir.path().join("missing.wav")),
            Err(Error::Io(_))
        ));
    }
}
