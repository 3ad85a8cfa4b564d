//! The spool worker: one thread that runs every spool file operation of live recordings, in
//! the order the SIP driver queued them — creating an entry and its WAV file, storing metadata
//! documents, rewriting journals, writing `recording.json` — so none of them runs on the SIP
//! driver task or on a media shard. Controls for a recording's media session are queued here
//! too, behind the creation of its files: a shard never hears of a session before its spool
//! entry exists.

use std::sync::mpsc;
use std::thread::JoinHandle;

type Job = Box<dyn FnOnce() + Send>;

/// A handle on the spool worker; clones queue onto the same thread.
#[derive(Debug, Clone)]
pub(crate) struct SpoolIo {
    tx: mpsc::Sender<Job>,
}

/// The worker thread, joined by [`SpoolWorker::stop`].
#[derive(Debug)]
pub(crate) struct SpoolWorker {
    thread: Option<JoinHandle<()>>,
}

impl SpoolIo {
    /// Starts the worker.
    pub(crate) fn start() -> std::io::Result<(SpoolIo, SpoolWorker)> {
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("spool-io".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    job();
                }
            })?;
        Ok((
            SpoolIo { tx },
            SpoolWorker {
                thread: Some(thread),
            },
        ))
    }

    /// Queues `job`. (After the worker stopped, the job is dropped unrun.)
    pub(crate) fn run(&self, job: impl FnOnce() + Send + 'static) {
        let _ = self.tx.send(Box::new(job));
    }
}

impl SpoolWorker {
    /// Waits for the queued jobs to finish, once every [`SpoolIo`] handle is dropped.
    pub(crate) fn stop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
