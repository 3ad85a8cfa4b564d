//! srs-server: the reference SIPREC recording server.
//!
//! The binary is thin: `main` turns flags, environment and TOML into a [`Config`] and calls
//! [`run`]. Everything here is the driver: it moves bytes between sockets and the sans-IO
//! [`siprec_core::SrsCore`], starts a [`recording`] for each accepted session, and publishes
//! finished recordings through [`siprec_storage::Store`].
//!
//! Data path: socket → `siprec-sip-tokio` → `siprec-core` (SRS role) → `siprec-rtp` →
//! `siprec-recorder` → `siprec-storage`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = srs_server::Config { listen: vec!["udp:127.0.0.1:5060".into()], ..Default::default() };
//! let server = srs_server::Server::start(config.validate()?).await?;
//! let mut published = server.subscribe();
//! let rec = published.recv().await?; // one finished recording
//! println!("stored {} at {}", rec.manifest.recording_key, rec.location);
//! server.shutdown().await?;
//! # Ok(()) }
//! ```

pub mod config;
pub mod http;
mod media;
pub mod ports;
pub mod recording;
pub mod spool;
mod spool_io;
pub mod uploader;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use siprec_core::{EndReason, Event, SessionId, SrsConfig, SrsCore};
use siprec_sip_tokio::{AcceptConfig, ListenAddr, SipTransports, TlsConfig};
use siprec_storage::{Manifest, Store};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

pub use config::{Config, ConfigError, Validated};
use media::{MediaNote, Shards, Wakeup};
use ports::PortPool;
use recording::{Recording, RecordingConfig};
use spool::Ready;
use spool_io::{SpoolIo, SpoolWorker};
use uploader::Uploader;

use crate::http::Metrics;

/// A recording that reached storage.
#[derive(Debug, Clone)]
pub struct PublishedRecording {
    /// Folder inside the store (`YYYY/MM/DD/key`).
    pub folder: String,
    /// Store location + folder, for logs.
    pub location: String,
    /// The manifest as written to recording.json.
    pub manifest: Manifest,
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    local: Vec<ListenAddr>,
    media_ip: IpAddr,
    store: Store,
    published: broadcast::Sender<PublishedRecording>,
    pending_uploads: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
    http_addr: Option<SocketAddr>,
    http_task: Option<tokio::task::JoinHandle<()>>,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

/// Why a server could not start, or did not stop cleanly.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The storage location cannot be opened.
    #[error("storage: {0}")]
    Storage(#[from] siprec_storage::Error),
    /// The spool directory cannot be created.
    #[error("cannot create spool directory {}: {source}", path.display())]
    Spool {
        /// The directory.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A SIP listener cannot be bound or set up.
    #[error(transparent)]
    Listen(#[from] siprec_sip_tokio::Error),
    /// A media thread or the spool worker cannot be started.
    #[error("cannot start the media threads: {0}")]
    Media(std::io::Error),
    /// The HTTP listener (`--http`) cannot be bound.
    #[error("cannot listen for HTTP on {addr}: {source}")]
    Http {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The server task panicked or was cancelled.
    #[error("server task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl Server {
    /// Binds the listeners and starts serving.
    pub async fn start(cfg: Validated) -> Result<Server, ServerError> {
        let store = Store::open_with(&cfg.storage, &cfg.s3)?.with_claimant(&cfg.instance_id);
        std::fs::create_dir_all(&cfg.spool).map_err(|source| ServerError::Spool {
            path: cfg.spool.clone(),
            source,
        })?;
        let (published, _) = broadcast::channel(256);
        let metrics = Arc::new(Metrics::new(cfg.upload_retry_max));
        let mut uploader = Uploader::new(
            store.clone(),
            published.clone(),
            cfg.upload_retry_max,
            metrics.clone(),
        );
        recover_spool(&cfg.spool, &mut uploader).await;
        let pending_uploads = uploader.pending();
        let tls = TlsConfig {
            server: cfg.tls.clone(),
            client: None,
        };
        // sip_allow is enforced twice: TCP/TLS connections from elsewhere are closed at
        // accept (no handshake, no buffer), and every message is checked in the SRS core
        // (UDP, and 403 with a reason where an answer can be sent).
        let accept = AcceptConfig {
            allow: cfg.sip_allow.clone(),
            max_connections: cfg.max_connections,
        };
        let (transports, inbound) = SipTransports::bind_with(&cfg.listen, tls, accept).await?;
        let (http_addr, http_task) = match cfg.http {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| ServerError::Http { addr, source })?;
                let bound = listener
                    .local_addr()
                    .map_err(|source| ServerError::Http { addr, source })?;
                let ctx = http::HttpContext {
                    metrics: metrics.clone(),
                    pending_uploads: pending_uploads.clone(),
                    spool: cfg.spool.clone(),
                    store: store.clone(),
                    token: cfg.http_token.clone(),
                };
                (Some(bound), Some(http::spawn(listener, ctx)))
            }
            None => (None, None),
        };
        let local = transports.local_addrs();
        let media_ip = cfg.media_ip.unwrap_or_else(|| guess_media_ip(&cfg.listen));
        let pool = PortPool::new(media_ip, cfg.rtp_ports.0, cfg.rtp_ports.1);
        let core = SrsCore::new(
            SrsConfig {
                media_ip,
                max_sessions: cfg.max_sessions,
                allow_sources: cfg.sip_allow.clone(),
                invite_rate: cfg.invite_rate,
                invite_burst: cfg.invite_burst,
                max_metadata_bytes: cfg.max_metadata_bytes,
                codecs: cfg.codecs.clone(),
                srtp: cfg.srtp,
                ..SrsConfig::default()
            },
            Box::new(pool.clone()),
        );
        let (stop_tx, stop_rx) = oneshot::channel();
        let (ready_tx, ready_rx) = mpsc::unbounded_channel();
        // Each recorded stream holds a socket: 2,000 calls need over 6,000 descriptors.
        siprec_udp::raise_fd_limit();
        let (notes_tx, notes_rx) = mpsc::unbounded_channel();
        let wakeup = cfg.media_sweep.map_or(Wakeup::Epoll, Wakeup::Sweep);
        let shards = Shards::start(cfg.media_threads, wakeup, notes_tx.clone(), metrics.clone())
            .map_err(ServerError::Media)?;
        let (spool_io, spool_worker) = SpoolIo::start().map_err(ServerError::Media)?;
        // SIP goes out through one queue per peer: a TCP connect or TLS handshake that stalls
        // towards one SRC never holds up the SIP loop (or any other SRC).
        let (outbox, mut failures) = siprec_sip_tokio::Outbox::new(transports.clone());
        tokio::spawn(async move {
            while let Some(f) = failures.recv().await {
                warn!(dest = %f.peer.addr, transport = %f.peer.transport, error = %f.reason, "SIP send failed");
            }
        });
        let driver = Driver {
            core,
            transports,
            outbox,
            pool,
            cfg,
            media_ip,
            recordings: HashMap::new(),
            shards,
            spool_io,
            spool_worker,
            notes_tx,
            pending_metadata: HashMap::new(),
            finishing: JoinSet::new(),
            ready_tx,
            uploader,
            metrics: metrics.clone(),
        };
        let task = tokio::spawn(driver.run(inbound, stop_rx, ready_rx, notes_rx));
        Ok(Server {
            local,
            media_ip,
            store,
            published,
            pending_uploads,
            metrics,
            http_addr,
            http_task,
            shutdown: Some(stop_tx),
            task,
        })
    }

    /// The bound SIP addresses (ports resolved).
    pub fn local_addrs(&self) -> &[ListenAddr] {
        &self.local
    }

    /// The address announced in SDP.
    pub fn media_ip(&self) -> IpAddr {
        self.media_ip
    }

    /// The store recordings go to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Finished recordings, as they are published.
    pub fn subscribe(&self) -> broadcast::Receiver<PublishedRecording> {
        self.published.subscribe()
    }

    /// The bound address of the HTTP endpoints (`--http`), if on.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The server's metrics and readiness.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Recordings finished but not yet acknowledged by storage.
    pub fn pending_uploads(&self) -> usize {
        self.pending_uploads.load(Ordering::SeqCst)
    }

    /// Graceful stop: new INVITEs get 503, live sessions get `shutdown_grace` to end, then
    /// BYE; everything publishes (waiting at most `shutdown_upload_wait`; the rest stays in
    /// the spool for the next start).
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        // /readyz says 503 from now on, while the sessions end and the uploads drain.
        self.metrics.health.set_shutting_down();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let r = (&mut self.task).await;
        if let Some(t) = self.http_task.take() {
            t.abort();
        }
        Ok(r?)
    }
}

/// Runs a server until `shutdown` completes, then stops gracefully.
pub async fn run(cfg: Validated, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
    let server = Server::start(cfg).await?;
    let addrs: Vec<String> = server.local_addrs().iter().map(|a| a.to_string()).collect();
    info!(listen = %addrs.join(" "), media_ip = %server.media_ip(), storage = %server.store().object_store(), "srs-server listening");
    shutdown.await;
    info!("shutting down");
    server.shutdown().await
}

struct Driver {
    core: SrsCore,
    transports: SipTransports,
    outbox: siprec_sip_tokio::Outbox,
    pool: PortPool,
    cfg: Validated,
    media_ip: IpAddr,
    recordings: HashMap<SessionId, Recording>,
    /// The media threads.
    shards: Shards,
    /// Spool file operations, in order, off this task.
    spool_io: SpoolIo,
    spool_worker: SpoolWorker,
    notes_tx: mpsc::UnboundedSender<MediaNote>,
    pending_metadata: HashMap<SessionId, (Vec<Vec<u8>>, Vec<String>)>,
    /// Recordings being finished (WAV closed, final manifest written to the spool).
    finishing: JoinSet<()>,
    ready_tx: mpsc::UnboundedSender<(Ready, tracing::Span)>,
    uploader: Uploader,
    metrics: Arc<Metrics>,
}

impl Driver {
    async fn run(
        mut self,
        mut inbound: mpsc::Receiver<siprec_sip_tokio::Inbound>,
        mut stop: oneshot::Receiver<()>,
        mut ready: mpsc::UnboundedReceiver<(Ready, tracing::Span)>,
        mut notes: mpsc::UnboundedReceiver<MediaNote>,
    ) {
        let mut stopping = false;
        let mut grace_end: Option<Instant> = None;
        // The spool is measured (a walk of its files) when it could have reached its limit
        // since the last measurement: every second when near it, up to every 10 s when far.
        let mut spool_check_at = tokio::time::Instant::now() + Duration::from_secs(1);
        let mut spool_full = false;
        // The live recordings' RTP figures for /metrics, refreshed once a second.
        if let Some(limit) = self.cfg.spool_max_bytes {
            // The state at start-up, before the first INVITE (a full spool left by a previous
            // run refuses at once).
            let used = spool::usage_bytes(&self.cfg.spool);
            if used >= limit {
                spool_full = true;
                self.metrics.health.set_spool_full(true);
                error!(
                    used_mb = used >> 20,
                    limit_mb = limit >> 20,
                    "spool full: new INVITEs get 503 until uploads catch up"
                );
                self.core.set_refusal(Some("Spool Full".into()));
            }
        }
        loop {
            let deadline = self.core.poll_timeout();
            tokio::select! {
                msg = inbound.recv() => {
                    let Some(msg) = msg else { break };
                    self.metrics.sip_message(&msg.bytes, false);
                    let local = self.advertised(msg.local);
                    self.core.handle_bytes(Instant::now(), msg.peer, local, &msg.bytes);
                }
                _ = sleep_until(deadline) => {
                    self.core.handle_timeout(Instant::now());
                }
                Some(note) = notes.recv() => self.on_media_note(note),
                Some((r, span)) = ready.recv() => {
                    self.uploader.submit(r, span);
                }
                _ = tokio::time::sleep_until(spool_check_at), if self.cfg.spool_max_bytes.is_some() => {
                    let limit = self.cfg.spool_max_bytes.unwrap_or(u64::MAX);
                    let root = self.cfg.spool.clone();
                    let used = tokio::task::spawn_blocking(move || spool::usage_bytes(&root))
                        .await
                        .unwrap_or(0);
                    spool_check_at = tokio::time::Instant::now()
                        + spool::next_usage_check(used, limit, self.recordings.len());
                    let full = used >= limit;
                    if full != spool_full {
                        spool_full = full;
                        self.metrics.health.set_spool_full(full);
                        let pending = self.uploader.pending().load(Ordering::SeqCst);
                        if full {
                            error!(used_mb = used >> 20, limit_mb = limit >> 20, pending_uploads = pending, "spool full: new INVITEs get 503 until uploads catch up");
                            self.core.set_refusal(Some("Spool Full".into()));
                        } else {
                            info!(used_mb = used >> 20, pending_uploads = pending, "spool below its limit: accepting new sessions");
                            self.core.set_refusal(None);
                        }
                    }
                }
                _ = &mut stop, if !stopping => {
                    stopping = true;
                    self.metrics.health.set_shutting_down();
                    self.core.stop_accepting();
                    let grace = self.cfg.shutdown_grace;
                    info!(active = self.recordings.len(), grace_s = grace.as_secs(), "shutting down: new INVITEs get 503");
                    grace_end = Some(Instant::now() + grace);
                }
                _ = sleep_until(grace_end), if grace_end.is_some() => {
                    grace_end = None;
                    let now = Instant::now();
                    for id in self.core.session_ids() {
                        self.core.end_session(now, id, EndReason::Shutdown);
                    }
                }
            }
            if grace_end.is_some_and(|t| t <= Instant::now()) {
                grace_end = None;
                let now = Instant::now();
                for id in self.core.session_ids() {
                    self.core.end_session(now, id, EndReason::Shutdown);
                }
            }
            self.flush().await;
            if stopping && self.recordings.is_empty() && self.core.poll_timeout().is_none() {
                break;
            }
            if stopping && self.recordings.is_empty() {
                // Give BYE transactions a bounded time to complete.
                let until = Instant::now() + std::time::Duration::from_secs(2);
                while let Some(t) = self.core.poll_timeout() {
                    if t > until {
                        break;
                    }
                    sleep_until(Some(t)).await;
                    self.core.handle_timeout(Instant::now());
                    self.flush().await;
                }
                break;
            }
        }
        self.transports.close();
        while self.finishing.join_next().await.is_some() {}
        // The media threads have finished every session; the spool worker writes the last
        // recording.json files (and hands them on) before it stops.
        let (mut shards, mut worker) = (self.shards, self.spool_worker);
        drop(self.spool_io);
        let _ = tokio::task::spawn_blocking(move || {
            shards.stop();
            worker.stop();
        })
        .await;
        drop(self.ready_tx);
        while let Some((r, span)) = ready.recv().await {
            self.uploader.submit(r, span);
        }
        let wait = self.cfg.shutdown_upload_wait;
        let left = self.uploader.drain(wait).await;
        if left > 0 {
            warn!(pending_uploads = left, spool = %self.cfg.spool.display(), "storage did not take every recording in time: they stay in the spool and are published at the next start");
        }
    }

    fn advertised(&self, local: SocketAddr) -> SocketAddr {
        if local.ip().is_unspecified() {
            SocketAddr::new(self.media_ip, local.port())
        } else {
            local
        }
    }

    async fn flush(&mut self) {
        // Events first: a resume or a new stream reaches the media thread before the SRC reads
        // the 200 OK that lets it send (event handling does no I/O here).
        while let Some(ev) = self.core.poll_event() {
            self.on_event(ev);
        }
        while let Some(t) = self.core.poll_transmit() {
            self.metrics.sip_message(&t.payload, true);
            self.outbox.send(t);
        }
    }

    fn on_media_note(&mut self, note: MediaNote) {
        let now = Instant::now();
        match note {
            MediaNote::TimedOut(id) => {
                if let Some(r) = self.recordings.get(&id) {
                    let _g = r.span.enter();
                    info!(
                        timeout_s = self.cfg.media_timeout.as_secs(),
                        "no RTP: ending session"
                    );
                }
                self.core.end_session(now, id, EndReason::MediaTimeout);
            }
            MediaNote::WriteFailed(id, e) => {
                if let Some(r) = self.recordings.get(&id) {
                    let _g = r.span.enter();
                    error!(error = %e, "spool write failed: the recording keeps what was written up to its last checkpoint");
                }
            }
            MediaNote::StartFailed(id, e) => {
                error!(session = id.0, error = %e, "cannot start recording; ending session");
                self.core.end_session(now, id, EndReason::Shutdown);
            }
        }
    }

    /// Queues the journal write of recording `id` on the spool worker.
    fn write_journal(&self, id: SessionId) {
        let Some(rec) = self.recordings.get(&id) else {
            return;
        };
        let journal = rec.journal(&self.cfg.instance_id);
        let (entry, span) = (rec.spool.clone(), rec.span.clone());
        self.spool_io.run(move || {
            if let Err(e) = entry.write_journal(&journal) {
                let _g = span.enter();
                warn!(error = %e, "cannot write the spool journal");
            }
        });
    }

    /// Queues the store of metadata document `n` of recording `id` on the spool worker.
    fn write_metadata(&self, id: SessionId, n: usize) {
        let Some(rec) = self.recordings.get(&id) else {
            return;
        };
        let Some(doc) = rec.metadata_docs.get(n - 1).cloned() else {
            return;
        };
        let (entry, span) = (rec.spool.clone(), rec.span.clone());
        self.spool_io.run(move || {
            if let Err(e) = entry.add_metadata(n, &doc) {
                let _g = span.enter();
                warn!(error = %e, "cannot write metadata to the spool");
            }
        });
    }

    fn on_event(&mut self, ev: Event) {
        let now = Instant::now();
        match ev {
            Event::Metadata { id, raw, error } => {
                // The initial document arrives before SessionStarted: park it until then.
                let (docs, errs) = match self.recordings.get_mut(&id) {
                    Some(rec) => (&mut rec.metadata_docs, &mut rec.metadata_errors),
                    None => {
                        let e = self.pending_metadata.entry(id).or_default();
                        (&mut e.0, &mut e.1)
                    }
                };
                docs.push(raw);
                if let Some(e) = error {
                    errs.push(e);
                }
                if let Some(n) = self.recordings.get(&id).map(|r| r.metadata_docs.len()) {
                    self.write_metadata(id, n);
                }
            }
            Event::SessionStarted {
                id,
                call_id,
                streams,
                channels,
                metadata,
                paused,
                ..
            } => {
                let shard = self.shards.assign(id);
                let (mut rec, create) = Recording::start(
                    id,
                    call_id,
                    &self.cfg.spool,
                    now,
                    &streams,
                    channels,
                    paused,
                    &self.pool,
                    RecordingConfig {
                        media_timeout: self.cfg.media_timeout,
                        jitter: self.cfg.jitter,
                        checkpoint: self.cfg.checkpoint,
                        media_clock_rate: self.cfg.media_clock_rate,
                        rtp_latching: self.cfg.rtp_latching,
                        recording_rate: self.cfg.recording_rate,
                    },
                    shard,
                    self.notes_tx.clone(),
                );
                if let Some((docs, errs)) = self.pending_metadata.remove(&id) {
                    rec.metadata_docs = docs;
                    rec.metadata_errors = errs;
                }
                rec.metadata = metadata;
                {
                    let _g = rec.span.enter();
                    info!(streams = streams.len(), paused, spool = %rec.spool.dir.display(), "recording started");
                }
                let docs = rec.metadata_docs.len();
                self.recordings.insert(id, rec);
                self.metrics.session_started();
                self.metrics.set_active(self.recordings.len());
                // In order on the spool worker: the entry and its WAV (then the shard starts
                // the session), the metadata documents, the journal.
                self.spool_io.run(create);
                for n in 1..=docs {
                    self.write_metadata(id, n);
                }
                self.write_journal(id);
            }
            Event::MetadataUpdated {
                id,
                metadata,
                channels,
            } => {
                if let Some(rec) = self.recordings.get_mut(&id) {
                    rec.metadata = metadata;
                    rec.channels = channels;
                    self.write_journal(id);
                }
            }
            Event::MediaUpdated {
                id,
                streams,
                paused,
                metadata,
                channels,
            } => {
                if let Some(rec) = self.recordings.get_mut(&id) {
                    {
                        let _g = rec.span.enter();
                        info!(paused, "media updated");
                    }
                    let update = rec.apply_plans(now, &streams, paused, &self.pool);
                    if metadata.is_some() {
                        rec.metadata = metadata;
                    }
                    rec.channels = channels;
                    rec.send_media(&self.spool_io, update);
                    self.write_journal(id);
                }
            }
            Event::SessionEnded { id, reason } => {
                self.pending_metadata.remove(&id);
                let Some(mut rec) = self.recordings.remove(&id) else {
                    return;
                };
                self.shards.forget(id);
                self.metrics.set_active(self.recordings.len());
                self.metrics
                    .session_ended(reason.as_str(), &rec.call_id, now);
                let metrics = self.metrics.clone();
                let instance = self.cfg.instance_id.clone();
                let ready_tx = self.ready_tx.clone();
                let span = rec.span.clone();
                let (finish, report) = rec.finish_control(now);
                rec.send_media(&self.spool_io, finish);
                let spool_io = self.spool_io.clone();
                self.finishing.spawn(async move {
                    let report = match report.await {
                        Ok(Ok(r)) => r,
                        Ok(Err(e)) => {
                            metrics.recording_finished(id, None);
                            let _g = span.enter();
                            error!(error = %e, spool = %rec.spool.dir.display(), "recording could not be finished; kept in the spool for recovery at the next start");
                            return;
                        }
                        Err(_) => {
                            metrics.recording_finished(id, None);
                            let _g = span.enter();
                            error!(spool = %rec.spool.dir.display(), "the recording's media never started (its spool entry could not be created): nothing to publish");
                            return;
                        }
                    };
                    let manifest = rec.final_manifest(&report, reason.as_str(), &instance);
                    metrics.recording_finished(id, Some(&manifest));
                    spool_io.run(move || {
                        let _g = span.enter();
                        if let Err(e) = rec.spool.write_final(&manifest) {
                            warn!(error = %e, "cannot write recording.json to the spool (publishing anyway)");
                        }
                        let ready = Ready {
                            entry: rec.spool.clone(),
                            start_utc: rec.start_utc,
                            manifest,
                            metadata: std::mem::take(&mut rec.metadata_docs),
                        };
                        let _ = ready_tx.send((ready, span.clone()));
                    });
                });
            }
        }
    }
}

/// Queues what a previous process left in the spool: finished recordings as they are,
/// interrupted ones after recovery (see [`spool::recover`]).
async fn recover_spool(root: &std::path::Path, uploader: &mut Uploader) {
    let root = root.to_path_buf();
    let found = tokio::task::spawn_blocking(move || {
        let entries = match spool::scan(&root) {
            Ok(e) => e,
            Err(e) => {
                error!(spool = %root.display(), error = %e, "cannot read the spool");
                return Vec::new();
            }
        };
        entries
            .into_iter()
            .map(|e| {
                let r = spool::recover(&e);
                (e, r)
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    let mut queued = 0;
    for (entry, r) in found {
        match r {
            Ok(ready) => {
                info!(
                    key = %ready.manifest.recording_key,
                    complete = ready.manifest.complete,
                    duration_s = format!("{:.3}", ready.manifest.duration_seconds),
                    spool = %entry.dir.display(),
                    "publishing a recording left in the spool"
                );
                let span = tracing::info_span!("recovered", key = %ready.manifest.recording_key);
                uploader.submit(ready, span);
                queued += 1;
            }
            Err(e) => {
                error!(spool = %entry.dir.display(), error = %e, "cannot recover a spool entry; left in place");
            }
        }
    }
    if queued > 0 {
        info!(
            recordings = queued,
            "recordings from the spool queued for storage"
        );
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

/// The address to announce in SDP when none is configured: the first specific listen address,
/// else this host's first non-loopback address by name, else loopback.
fn guess_media_ip(listen: &[ListenAddr]) -> IpAddr {
    if let Some(l) = listen.iter().find(|l| !l.addr.ip().is_unspecified()) {
        return l.addr.ip();
    }
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    if let Ok(addrs) = (host.trim(), 0).to_socket_addrs() {
        if let Some(a) = addrs
            .into_iter()
            .find(|a| a.is_ipv4() && !a.ip().is_loopback())
        {
            return a.ip();
        }
    }
    warn!("cannot tell this host's address; announcing 127.0.0.1 in SDP (set --media-ip)");
    IpAddr::from([127, 0, 0, 1])
}
