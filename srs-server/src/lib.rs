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
//! # async fn demo() -> anyhow::Result<()> {
//! let config = srs_server::Config { listen: vec!["udp:127.0.0.1:5060".into()], ..Default::default() };
//! let server = srs_server::Server::start(config.validate()?).await?;
//! let mut published = server.subscribe();
//! let rec = published.recv().await?; // one finished recording
//! println!("stored {} at {}", rec.manifest.recording_key, rec.location);
//! server.shutdown().await?;
//! # Ok(()) }
//! ```

pub mod config;
pub mod ports;
pub mod recording;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Instant;

use siprec_core::{EndReason, Event, SessionId, SrsConfig, SrsCore};
use siprec_sip_tokio::{ListenAddr, SipTransports, TlsConfig};
use siprec_storage::{Manifest, Publication, Store};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::{error, info, warn, Instrument};

pub use config::{Config, ConfigError, Validated};
use ports::PortPool;
use recording::{MediaTimedOut, Recording};

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
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Server {
    /// Binds the listeners and starts serving.
    pub async fn start(cfg: Validated) -> anyhow::Result<Server> {
        let store = Store::open(&cfg.storage)?;
        std::fs::create_dir_all(&cfg.spool).map_err(|e| {
            anyhow::anyhow!("cannot create spool directory {}: {e}", cfg.spool.display())
        })?;
        let tls = TlsConfig {
            server: cfg.tls.clone(),
            client: None,
        };
        let (transports, inbound) = SipTransports::bind(&cfg.listen, tls).await?;
        let local = transports.local_addrs();
        let media_ip = cfg.media_ip.unwrap_or_else(|| guess_media_ip(&cfg.listen));
        let pool = PortPool::new(media_ip, cfg.rtp_ports.0, cfg.rtp_ports.1);
        let core = SrsCore::new(
            SrsConfig {
                media_ip,
                max_sessions: cfg.max_sessions,
                ..SrsConfig::default()
            },
            Box::new(pool.clone()),
        );
        let (published, _) = broadcast::channel(256);
        let (stop_tx, stop_rx) = oneshot::channel();
        let driver = Driver {
            core,
            transports,
            pool,
            store: store.clone(),
            cfg,
            media_ip,
            recordings: HashMap::new(),
            pending_metadata: HashMap::new(),
            publishing: JoinSet::new(),
            published: published.clone(),
        };
        let task = tokio::spawn(driver.run(inbound, stop_rx));
        Ok(Server {
            local,
            media_ip,
            store,
            published,
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

    /// Graceful stop: new INVITEs get 503, live sessions end with BYE, everything publishes.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await?
    }
}

/// Runs a server until `shutdown` completes, then stops gracefully.
pub async fn run(cfg: Validated, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
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
    pool: PortPool,
    store: Store,
    cfg: Validated,
    media_ip: IpAddr,
    recordings: HashMap<SessionId, Recording>,
    pending_metadata: HashMap<SessionId, (Vec<Vec<u8>>, Vec<String>)>,
    publishing: JoinSet<()>,
    published: broadcast::Sender<PublishedRecording>,
}

impl Driver {
    async fn run(
        mut self,
        mut inbound: mpsc::Receiver<siprec_sip_tokio::Inbound>,
        mut stop: oneshot::Receiver<()>,
    ) -> anyhow::Result<()> {
        let (timeouts_tx, mut timeouts) = mpsc::unbounded_channel::<MediaTimedOut>();
        let mut stopping = false;
        loop {
            let deadline = self.core.poll_timeout();
            tokio::select! {
                msg = inbound.recv() => {
                    let Some(msg) = msg else { break };
                    let local = self.advertised(msg.local);
                    self.core.handle_bytes(Instant::now(), msg.peer, local, &msg.bytes);
                }
                _ = sleep_until(deadline) => {
                    self.core.handle_timeout(Instant::now());
                }
                Some(MediaTimedOut(id)) = timeouts.recv() => {
                    if let Some(r) = self.recordings.get(&id) {
                        let _g = r.span.enter();
                        info!(timeout_s = self.cfg.media_timeout.as_secs(), "no RTP: ending session");
                    }
                    self.core.end_session(Instant::now(), id, EndReason::MediaTimeout);
                }
                _ = &mut stop, if !stopping => {
                    stopping = true;
                    self.core.stop_accepting();
                    let now = Instant::now();
                    for id in self.core.session_ids() {
                        self.core.end_session(now, id, EndReason::Shutdown);
                    }
                }
            }
            self.flush(&timeouts_tx).await;
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
                    self.flush(&timeouts_tx).await;
                }
                break;
            }
        }
        while self.publishing.join_next().await.is_some() {}
        Ok(())
    }

    fn advertised(&self, local: SocketAddr) -> SocketAddr {
        if local.ip().is_unspecified() {
            SocketAddr::new(self.media_ip, local.port())
        } else {
            local
        }
    }

    async fn flush(&mut self, timeouts: &mpsc::UnboundedSender<MediaTimedOut>) {
        while let Some(t) = self.core.poll_transmit() {
            let dest = t.peer.addr;
            if let Err(e) = self.transports.send(t).await {
                warn!(%dest, error = %e, "SIP send failed");
            }
        }
        while let Some(ev) = self.core.poll_event() {
            self.on_event(ev, timeouts);
        }
        // Events may have produced more output (none today, but keep the loop honest).
        while let Some(t) = self.core.poll_transmit() {
            let dest = t.peer.addr;
            if let Err(e) = self.transports.send(t).await {
                warn!(%dest, error = %e, "SIP send failed");
            }
        }
    }

    fn on_event(&mut self, ev: Event, timeouts: &mpsc::UnboundedSender<MediaTimedOut>) {
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
                match Recording::start(
                    id,
                    call_id,
                    &self.cfg.spool,
                    now,
                    &streams,
                    channels,
                    paused,
                    &self.pool,
                    self.cfg.media_timeout,
                    timeouts.clone(),
                ) {
                    Ok(mut rec) => {
                        if let Some((docs, errs)) = self.pending_metadata.remove(&id) {
                            rec.metadata_docs = docs;
                            rec.metadata_errors = errs;
                        }
                        rec.metadata = metadata;
                        {
                            let _g = rec.span.enter();
                            info!(streams = streams.len(), paused, "recording started");
                        }
                        self.recordings.insert(id, rec);
                    }
                    Err(e) => {
                        error!(session = id.0, error = %e, "cannot start recording; ending session");
                        self.core.end_session(now, id, EndReason::Shutdown);
                    }
                }
            }
            Event::MediaUpdated {
                id,
                streams,
                paused,
                metadata,
            } => {
                if let Some(rec) = self.recordings.get_mut(&id) {
                    {
                        let _g = rec.span.enter();
                        info!(paused, "media updated");
                    }
                    rec.apply_plans(now, &streams, paused, &self.pool);
                    if metadata.is_some() {
                        rec.metadata = metadata;
                    }
                }
            }
            Event::SessionEnded { id, reason } => {
                self.pending_metadata.remove(&id);
                let Some(mut rec) = self.recordings.remove(&id) else {
                    return;
                };
                let store = self.store.clone();
                let instance = self.cfg.instance_id.clone();
                let published = self.published.clone();
                let span = rec.span.clone();
                self.publishing.spawn(
                    async move {
                        let manifest = match rec.finish(now, reason.as_str(), &instance) {
                            Ok(m) => m,
                            Err(e) => {
                                error!(error = %e, spool = %rec.spool_path.display(), "recording could not be finished; spool file kept");
                                return;
                            }
                        };
                        publish(store, rec, manifest, published).await;
                    }
                    .instrument(span),
                );
            }
        }
    }
}

async fn publish(
    store: Store,
    rec: Recording,
    manifest: Manifest,
    published: broadcast::Sender<PublishedRecording>,
) {
    let spool: PathBuf = rec.spool_path.clone();
    let p = Publication {
        start: rec.start_utc,
        key: &manifest.recording_key,
        audio: &spool,
        metadata: &rec.metadata_docs,
        manifest: &manifest,
    };
    match store.publish(&p).await {
        Ok(done) => {
            info!(
                key = %done.manifest.recording_key,
                duration_s = format!("{:.3}", manifest.duration_seconds),
                ended_by = %manifest.ended_by,
                stored = %done.location,
                "recording stored"
            );
            if let Err(e) = std::fs::remove_file(&spool) {
                warn!(error = %e, spool = %spool.display(), "cannot remove published spool file");
            }
            let _ = published.send(PublishedRecording {
                folder: done.folder,
                location: done.location,
                manifest: done.manifest,
            });
        }
        Err(e) => {
            error!(error = %e, spool = %spool.display(), "publication failed; spool file kept");
        }
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
