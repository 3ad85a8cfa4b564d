//! The spool: every recording lives in its own directory on local disk from its first packet
//! until storage has acknowledged it, so a crash or a storage outage never loses it.
//!
//! ```text
//! {spool}/{uuid}/audio.wav        the WAV being written (valid at every checkpoint)
//! {spool}/{uuid}/journal.json     which recording this is: start, key, call, streams, channel
//!                                  mapping, pauses, metadata count (rewritten on each change)
//! {spool}/{uuid}/metadata/0001.xml  every metadata document, as it arrives
//! {spool}/{uuid}/recording.json   the final manifest: present = finished, ready to publish
//! {spool}/{uuid}/folder           the storage folder claimed for it (kept across retries)
//! ```
//!
//! At start-up [`scan`] finds what a previous process left: finished recordings are published
//! as they are; interrupted ones (no `recording.json`) are recovered by [`recover`]: the WAV
//! header is repaired to the data on disk and the journal becomes a manifest with
//! `"complete": false` and `"ended_by": "recovered"`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use siprec_storage::Manifest;

const JOURNAL: &str = "journal.json";
const FINAL: &str = "recording.json";
const FOLDER: &str = "folder";
const AUDIO: &str = "audio.wav";

/// What the journal records about a live recording.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Journal {
    /// Format version (1).
    pub version: u32,
    /// Start of the recording, UTC, RFC 3339.
    pub start_utc: String,
    /// The manifest as far as it is known (no duration or stop time yet).
    pub manifest: Manifest,
}

/// A recording ready for storage.
#[derive(Debug, Clone)]
pub struct Ready {
    /// Its spool directory.
    pub entry: SpoolEntry,
    /// Start (selects the day folder).
    pub start_utc: time::OffsetDateTime,
    /// The final manifest.
    pub manifest: Manifest,
    /// Every metadata document, in order.
    pub metadata: Vec<Vec<u8>>,
}

/// One recording's spool directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolEntry {
    /// The directory.
    pub dir: PathBuf,
}

/// Write-then-rename: a reader (the next start after a crash) sees the old or the new file,
/// never half of one. No fsync: what the spool guards against is the process dying (the page
/// cache survives it); an fsync per journal update would stall the SIP driver.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    drop(f);
    std::fs::rename(&tmp, path)
}

impl SpoolEntry {
    /// Creates a new entry under `root`.
    pub fn create(root: &Path) -> std::io::Result<SpoolEntry> {
        let e = SpoolEntry::named_in(root);
        e.create_dirs()?;
        Ok(e)
    }

    /// A new entry's name under `root`, without touching the disk (the SIP driver names it;
    /// the spool worker creates it with [`SpoolEntry::create_dirs`]).
    pub fn named_in(root: &Path) -> SpoolEntry {
        SpoolEntry {
            dir: root.join(uuid::Uuid::new_v4().simple().to_string()),
        }
    }

    /// Creates the entry's directories.
    pub fn create_dirs(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(self.dir.join("metadata"))
    }

    /// The WAV file.
    pub fn audio(&self) -> PathBuf {
        self.dir.join(AUDIO)
    }

    /// Stores metadata document number `n` (1-based).
    pub fn add_metadata(&self, n: usize, doc: &[u8]) -> std::io::Result<()> {
        write_atomic(&self.dir.join("metadata").join(format!("{n:04}.xml")), doc)
    }

    /// Rewrites the journal.
    pub fn write_journal(&self, j: &Journal) -> std::io::Result<()> {
        write_atomic(
            &self.dir.join(JOURNAL),
            &serde_json::to_vec_pretty(j).map_err(std::io::Error::other)?,
        )
    }

    /// Marks the recording finished: its final manifest.
    pub fn write_final(&self, m: &Manifest) -> std::io::Result<()> {
        write_atomic(
            &self.dir.join(FINAL),
            &serde_json::to_vec_pretty(m).map_err(std::io::Error::other)?,
        )
    }

    /// The storage folder claimed for it, if any.
    pub fn folder(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.join(FOLDER))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }

    /// Remembers the claimed storage folder.
    pub fn set_folder(&self, folder: &str) -> std::io::Result<()> {
        write_atomic(&self.dir.join(FOLDER), folder.as_bytes())
    }

    /// Deletes the entry (after storage acknowledged it).
    pub fn remove(&self) -> std::io::Result<()> {
        std::fs::remove_dir_all(&self.dir)
    }

    fn metadata_docs(&self) -> std::io::Result<Vec<Vec<u8>>> {
        let mut names: Vec<PathBuf> = match std::fs::read_dir(self.dir.join("metadata")) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "xml"))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        names.sort();
        names.iter().map(std::fs::read).collect()
    }
}

/// Parses an RFC 3339 time as the journal writes it.
pub fn parse_time(s: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// Formats a time for the journal and the manifest.
pub fn format_time(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The spool entries left in `root` (directories holding a journal or a final manifest).
pub fn scan(root: &Path) -> std::io::Result<Vec<SpoolEntry>> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for e in rd.flatten() {
        let dir = e.path();
        if dir.is_dir() && (dir.join(JOURNAL).is_file() || dir.join(FINAL).is_file()) {
            out.push(SpoolEntry { dir });
        }
    }
    out.sort_by(|a, b| a.dir.cmp(&b.dir));
    Ok(out)
}

/// Why [`recover`] cannot turn a spool entry into a recording ready for storage.
///
/// The first group means *the files left in the spool are wrong* (damaged, truncated or
/// written by something else); the second means *our environment failed* (the disk).
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    // ----- the spool's files are wrong -----
    /// `journal.json` or `recording.json` is not the JSON we write.
    #[error("{file}: {source}")]
    Json {
        /// The file's name in the entry.
        file: &'static str,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A time in `journal.json` or `recording.json` is not RFC 3339.
    #[error("{file}: bad {field}")]
    BadTime {
        /// The file's name in the entry.
        file: &'static str,
        /// The field holding the time.
        field: &'static str,
    },
    /// The WAV file cannot be repaired (not a WAV file we wrote, or unreadable).
    #[error("{}: {source}", path.display())]
    Audio {
        /// The WAV file.
        path: PathBuf,
        /// What the repair reported.
        source: siprec_recorder::Error,
    },
    // ----- our environment failed -----
    /// Reading `journal.json` or `recording.json` failed.
    #[error("{file}: {source}")]
    Read {
        /// The file's name in the entry.
        file: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Reading the entry's metadata documents failed.
    #[error("metadata documents: {0}")]
    Metadata(std::io::Error),
    /// Writing the recovered manifest as `recording.json` failed.
    #[error("writing recording.json: {0}")]
    WriteFinal(std::io::Error),
}

/// Turns a leftover entry into a recording ready for storage. A finished one (with
/// `recording.json`) is taken as it is. An interrupted one is recovered: the WAV header is
/// repaired to the frames on disk, and the journal's manifest gets the real duration, the
/// file's last write as stop time, `complete: false` and `ended_by: "recovered"`; that
/// manifest is written as `recording.json` first, so recovery runs once.
pub fn recover(entry: &SpoolEntry) -> Result<Ready, RecoverError> {
    let read_json = |file: &'static str| -> Result<Vec<u8>, RecoverError> {
        std::fs::read(entry.dir.join(file)).map_err(|source| RecoverError::Read { file, source })
    };
    let metadata = entry.metadata_docs().map_err(RecoverError::Metadata)?;
    if entry.dir.join(FINAL).is_file() {
        let m: Manifest =
            serde_json::from_slice(&read_json(FINAL)?).map_err(|source| RecoverError::Json {
                file: FINAL,
                source,
            })?;
        let start = parse_time(&m.start_time).ok_or(RecoverError::BadTime {
            file: FINAL,
            field: "start_time",
        })?;
        return Ok(Ready {
            entry: entry.clone(),
            start_utc: start,
            manifest: m,
            metadata,
        });
    }
    let j: Journal =
        serde_json::from_slice(&read_json(JOURNAL)?).map_err(|source| RecoverError::Json {
            file: JOURNAL,
            source,
        })?;
    let start = parse_time(&j.start_utc).ok_or(RecoverError::BadTime {
        file: JOURNAL,
        field: "start_utc",
    })?;
    let audio = entry.audio();
    let frames =
        siprec_recorder::repair_wav_header(&audio).map_err(|source| RecoverError::Audio {
            path: audio.clone(),
            source,
        })?;
    let stop = std::fs::metadata(&audio)
        .and_then(|m| m.modified())
        .map(time::OffsetDateTime::from)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    let mut m = j.manifest;
    let rate = m.sample_rate.max(1);
    m.complete = false;
    m.ended_by = "recovered".into();
    m.duration_samples = frames;
    m.duration_seconds = frames as f64 / f64::from(rate);
    m.stop_time = format_time(stop);
    m.start_time = format_time(start);
    m.metadata_documents = (1..=metadata.len())
        .map(|i| format!("metadata/{i:04}.xml"))
        .collect();
    let secs = m.duration_seconds;
    for p in &mut m.pauses {
        // A pause still open at the crash ends where the audio ends.
        if p.end <= p.start {
            p.end = secs;
        }
    }
    entry.write_final(&m).map_err(RecoverError::WriteFinal)?;
    Ok(Ready {
        entry: entry.clone(),
        start_utc: start,
        manifest: m,
        metadata,
    })
}

/// The most one recording adds to the spool per second: a 48 kHz stereo 16-bit WAV, with
/// room for its metadata and journal.
const MAX_GROWTH_PER_RECORDING: u64 = 48_000 * 4 * 5 / 4;

/// When to measure the spool again after [`usage_bytes`] found `used` of `limit` with
/// `recordings` in progress: half the time the spool needs to fill at the fastest rate those
/// recordings (and as many new ones) can write, between 1 and 10 s. A walk of every file
/// costs a `stat` each, so a large spool far from its limit is not walked every second.
pub(crate) fn next_usage_check(used: u64, limit: u64, recordings: usize) -> Duration {
    let recordings = u64::try_from(recordings).unwrap_or(u64::MAX);
    let rate = recordings
        .saturating_mul(2)
        .saturating_add(1)
        .saturating_mul(MAX_GROWTH_PER_RECORDING);
    let secs = limit.saturating_sub(used) / rate / 2;
    Duration::from_secs(secs.clamp(1, 10))
}

/// Bytes used by the spool (every file in every entry).
pub fn usage_bytes(root: &Path) -> u64 {
    fn walk(p: &Path, depth: u32) -> u64 {
        let Ok(rd) = std::fs::read_dir(p) else {
            return 0;
        };
        rd.flatten()
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() && depth < 3 => walk(&e.path(), depth + 1),
                Ok(m) if m.is_file() => m.len(),
                _ => 0,
            })
            .sum()
    }
    walk(root, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal() -> Journal {
        Journal {
            version: 1,
            start_utc: "2026-11-28T10:00:00Z".into(),
            manifest: Manifest {
                recording_key: "REC-1".into(),
                call_id: "c@h".into(),
                complete: true,
                sample_rate: 8000,
                ended_by: String::new(),
                pauses: vec![siprec_storage::PauseInterval {
                    start: 0.5,
                    end: 0.0,
                }],
                ..Manifest::default()
            },
        }
    }

    /// A WAV as a killed writer leaves it: header from an early checkpoint, more data after.
    fn killed_wav(path: &Path, frames: usize) {
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for _ in 0..8 {
            w.write_sample(1i16).unwrap();
        }
        w.flush().unwrap();
        drop(w);
        let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        f.write_all(&vec![0u8; frames * 4 - 16 + 3]).unwrap();
    }

    #[test]
    fn an_interrupted_recording_is_recovered_once() {
        let root = tempfile::tempdir().unwrap();
        let e = SpoolEntry::create(root.path()).unwrap();
        e.write_journal(&journal()).unwrap();
        e.add_metadata(1, b"<recording/>").unwrap();
        e.add_metadata(2, b"<recording>2</recording>").unwrap();
        killed_wav(&e.audio(), 8000);
        assert_eq!(scan(root.path()).unwrap(), vec![e.clone()]);
        let r = recover(&e).unwrap();
        assert_eq!(r.manifest.duration_samples, 8000);
        assert!(!r.manifest.complete);
        assert_eq!(r.manifest.ended_by, "recovered");
        assert_eq!(r.manifest.recording_key, "REC-1");
        assert_eq!(r.metadata.len(), 2);
        assert_eq!(r.metadata[1], b"<recording>2</recording>");
        assert_eq!(
            r.manifest.pauses[0].end, 1.0,
            "an open pause ends with the audio"
        );
        let reader = hound::WavReader::open(e.audio()).unwrap();
        assert_eq!(reader.duration(), 8000);
        // The recovered manifest is now final: a second recovery reads it back unchanged.
        let again = recover(&e).unwrap();
        assert_eq!(again.manifest, r.manifest);
    }

    #[test]
    fn a_finished_recording_is_taken_as_it_is_and_keeps_its_folder() {
        let root = tempfile::tempdir().unwrap();
        let e = SpoolEntry::create(root.path()).unwrap();
        let mut m = journal().manifest;
        m.start_time = "2026-11-28T10:00:00Z".into();
        m.ended_by = "bye-from-src".into();
        e.write_final(&m).unwrap();
        e.set_folder("2026/11/28/REC-1").unwrap();
        let r = recover(&e).unwrap();
        assert_eq!(r.manifest, m);
        assert_eq!(e.folder().as_deref(), Some("2026/11/28/REC-1"));
        e.remove().unwrap();
        assert!(scan(root.path()).unwrap().is_empty());
    }

    #[test]
    fn garbage_in_the_spool_is_an_error_not_a_panic() {
        let root = tempfile::tempdir().unwrap();
        let e = SpoolEntry::create(root.path()).unwrap();
        std::fs::write(e.dir.join(JOURNAL), b"{not json").unwrap();
        assert!(recover(&e)
            .unwrap_err()
            .to_string()
            .contains("journal.json"));
        e.write_journal(&journal()).unwrap();
        std::fs::write(e.audio(), b"RIFF").unwrap();
        assert!(recover(&e).unwrap_err().to_string().contains("audio.wav"));
        assert!(usage_bytes(root.path()) > 0);
    }

    #[test]
    fn the_spool_is_measured_more_often_as_it_nears_its_limit() {
        let gib = 1u64 << 30;
        // Far from the limit with a few recordings: the longest interval.
        assert_eq!(next_usage_check(0, 10 * gib, 10), Duration::from_secs(10));
        // 2,000 recordings and as many new ones can write ~960 MB/s at 48 kHz: 5 GiB of room
        // lasts ~5.6 s, measured again after half of that.
        assert_eq!(
            next_usage_check(5 * gib, 10 * gib, 2000),
            Duration::from_secs(2)
        );
        // At or beyond the limit (and past it): every second, to see it drain.
        assert_eq!(
            next_usage_check(10 * gib, 10 * gib, 0),
            Duration::from_secs(1)
        );
        assert_eq!(
            next_usage_check(11 * gib, 10 * gib, 5),
            Duration::from_secs(1)
        );
        assert_eq!(
            next_usage_check(0, u64::MAX, usize::MAX),
            Duration::from_secs(1)
        );
    }
}
