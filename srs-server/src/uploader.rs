//! Publication of finished recordings, off the SIP and RTP paths: each recording ready in the
//! spool is uploaded by its own task (at most [`PARALLEL_UPLOADS`] at once), retried with
//! exponential back-off while storage fails, and removed from the spool only once storage has
//! acknowledged `recording.json`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use siprec_storage::{Publication, Store};
use tokio::sync::{broadcast, Semaphore};
use tokio::task::JoinSet;
use tracing::{error, info, warn, Instrument};

use crate::http::Metrics;
use crate::spool::Ready;
use crate::PublishedRecording;

/// Why one upload attempt failed (it is retried with back-off).
///
/// Nothing here comes from a peer: a recording in the spool is ours. Both variants mean *our
/// environment failed* (storage unreachable or refusing, the local disk).
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// Storage refused or failed the reservation or the publication.
    #[error(transparent)]
    Storage(#[from] siprec_storage::Error),
    /// Recording the claimed folder in the spool entry failed.
    #[error("spool: {0}")]
    Spool(std::io::Error),
}

/// Uploads running at once.
pub const PARALLEL_UPLOADS: usize = 8;

/// First wait after a failed upload; it doubles up to the configured cap.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// Hands recordings to storage.
#[derive(Debug)]
pub struct Uploader {
    store: Store,
    published: broadcast::Sender<PublishedRecording>,
    pending: Arc<AtomicUsize>,
    storage_down: Arc<AtomicBool>,
    permits: Arc<Semaphore>,
    retry_max: Duration,
    metrics: Arc<Metrics>,
    tasks: JoinSet<()>,
}

impl Uploader {
    /// A new uploader publishing to `store`, counting in `metrics`.
    pub fn new(
        store: Store,
        published: broadcast::Sender<PublishedRecording>,
        retry_max: Duration,
        metrics: Arc<Metrics>,
    ) -> Uploader {
        Uploader {
            store,
            published,
            pending: Arc::default(),
            storage_down: Arc::default(),
            permits: Arc::new(Semaphore::new(PARALLEL_UPLOADS)),
            retry_max,
            metrics,
            tasks: JoinSet::new(),
        }
    }

    /// Recordings waiting for storage (queued, uploading or retrying).
    pub fn pending(&self) -> Arc<AtomicUsize> {
        self.pending.clone()
    }

    /// Queues one recording; it is retried until storage takes it.
    pub fn submit(&mut self, ready: Ready, span: tracing::Span) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        let job = Job {
            store: self.store.clone(),
            published: self.published.clone(),
            pending: self.pending.clone(),
            storage_down: self.storage_down.clone(),
            permits: self.permits.clone(),
            retry_max: self.retry_max,
            metrics: self.metrics.clone(),
        };
        self.tasks.spawn(job.run(ready).instrument(span));
        // Reap finished tasks so the set does not grow with the server's lifetime.
        while self.tasks.try_join_next().is_some() {}
    }

    /// Waits for every queued upload, at most `wait`. Returns how many are still pending
    /// (they stay in the spool and are published at the next start).
    pub async fn drain(mut self, wait: Duration) -> usize {
        let all = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(wait, all).await.is_err() {
            self.tasks.abort_all();
        }
        self.pending.load(Ordering::SeqCst)
    }
}

struct Job {
    store: Store,
    published: broadcast::Sender<PublishedRecording>,
    pending: Arc<AtomicUsize>,
    storage_down: Arc<AtomicBool>,
    permits: Arc<Semaphore>,
    retry_max: Duration,
    metrics: Arc<Metrics>,
}

impl Job {
    async fn run(self, ready: Ready) {
        let mut wait = FIRST_RETRY;
        let mut first = true;
        loop {
            if !std::mem::take(&mut first) {
                self.metrics.upload_retry();
            }
            let attempt = {
                let Ok(_permit) = self.permits.acquire().await else {
                    return;
                };
                self.attempt(&ready).await
            };
            match attempt {
                Ok(done) => {
                    // The spool entry goes first: once "recording stored" is logged, counted
                    // or announced, the spool no longer holds it.
                    if let Err(e) = ready.entry.remove() {
                        warn!(error = %e, spool = %ready.entry.dir.display(), "cannot remove published spool entry");
                    }
                    let left = self.pending.fetch_sub(1, Ordering::SeqCst) - 1;
                    if self.storage_down.swap(false, Ordering::SeqCst) {
                        info!(pending_uploads = left, "storage is back; uploading");
                    }
                    info!(
                        key = %done.manifest.recording_key,
                        duration_s = format!("{:.3}", done.manifest.duration_seconds),
                        ended_by = %done.manifest.ended_by,
                        complete = done.manifest.complete,
                        stored = %done.location,
                        "recording stored"
                    );
                    self.metrics.recording_published(&done.manifest);
                    let _ = self.published.send(done);
                    return;
                }
                Err(e) => {
                    self.metrics.upload_failed();
                    let pending = self.pending.load(Ordering::SeqCst);
                    if !self.storage_down.swap(true, Ordering::SeqCst) {
                        error!(error = %e, pending_uploads = pending, retry_in_s = wait.as_secs(), store = %self.store.display(), "storage unavailable: recordings stay in the spool and are retried");
                    } else {
                        warn!(error = %e, pending_uploads = pending, retry_in_s = wait.as_secs(), "upload failed; retrying");
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(self.retry_max);
                }
            }
        }
    }

    async fn attempt(&self, ready: &Ready) -> Result<PublishedRecording, UploadError> {
        let folder = match ready.entry.folder() {
            Some(f) => f,
            None => {
                let f = self
                    .store
                    .reserve(ready.start_utc, &ready.manifest.recording_key)
                    .await?;
                ready.entry.set_folder(&f).map_err(UploadError::Spool)?;
                f
            }
        };
        let audio = ready.entry.audio();
        let p = Publication {
            start: ready.start_utc,
            key: &ready.manifest.recording_key,
            folder: Some(&folder),
            audio: &audio,
            metadata: &ready.metadata,
            manifest: &ready.manifest,
        };
        let done = self.store.publish(&p).await?;
        Ok(PublishedRecording {
            folder: done.folder,
            location: done.location,
            manifest: done.manifest,
        })
    }
}
