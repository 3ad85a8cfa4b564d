//! The async recorder of one call: the tokio driver around the sans-IO
//! [`SrcCore`].
//!
//! [`Recorder::new`] binds the SIP transports (UDP and TCP; TLS connections are opened on
//! demand for `sips:`) and two RTP sockets (one per leg), and starts two tasks: the driver,
//! which moves SIP bytes, timers, name resolution and activity requests in and out of the
//! core, and the [`RtpSender`], which plays the call's legs to
//! every SRS the core says. Each activity ([`Recorder::start`], [`Recorder::stop`],
//! [`Recorder::pause`], [`Recorder::resume`], or [`Recorder::run`] with the node's
//! parameters) returns the core's [`Outcome`] once it is decided; per-SRS news (late joins,
//! SRS BYEs) come on [`Recorder::subscribe`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use siprec_core::client::{
    Activity, CallContext, Event, OpId, Outcome, RsId, SrcConfig, SrcCore, SrsReport, SrsUri,
};
use siprec_sip::transaction::{Transmit, Transport};
use siprec_sip_tokio::{
    Inbound, ListenAddr, Outbox, SendFailure, SipTransports, TlsClient, TlsConfig,
};
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::media::MediaSource;
use crate::resolver_api::{IpLiteralResolver, ResolvedTarget, SrsResolver};
use crate::rtp_sender::{MediaCommand, RtpSender, StreamStats};
use crate::Error;

/// Settings of a [`Recorder`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Our address: SIP and RTP sockets bind to it, and it is announced in Via, Contact and
    /// SDP. Default 127.0.0.1.
    pub local_ip: IpAddr,
    /// SIP port for UDP and TCP (0 = any free port, the default).
    pub sip_port: u16,
    /// How long a start waits for the first SRS (default 2 s, as the node).
    pub start_timeout: Duration,
    /// How long one target may stay silent before the next of the same URI is tried
    /// (default 1 s).
    pub target_timeout: Duration,
    /// How long stop, pause and resume wait for each SRS (default 8 s).
    pub request_timeout: Duration,
    /// Bound on one name resolution (default 5 s).
    pub resolve_timeout: Duration,
    /// CA file (PEM) for verifying `sips:` SRSs; `None` uses the system roots.
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain and key (PEM) presented to SRSs that require mutual TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// When to offer SRTP (SDES keys): for `sips:` SRSs by default.
    pub srtp: siprec_core::client::SrtpOffer,
    /// The SRTP suites offered, in preference order (one `a=crypto` line each, tags 1, 2, …):
    /// `AES_CM_128_HMAC_SHA1_80` then `_32` by default.
    pub srtp_suites: Vec<siprec_rtp::srtp::SrtpSuite>,
    /// Codecs offered, in preference order (default PCMU, PCMA; G.722 and Opus are sent
    /// too when an SRS picks them).
    pub codecs: Vec<siprec_sdp::Format>,
    /// DNS server for RFC 3263 resolution (`None`: the system's).
    pub dns_server: Option<SocketAddr>,
    /// A resolver of your own; `None` uses the RFC 3263 DNS resolver of [`crate::resolve`]
    /// (configured with [`ClientConfig::dns_server`]), or IP literals only when it cannot be
    /// created.
    pub resolver: Option<Arc<dyn SrsResolver>>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            local_ip: IpAddr::from([127, 0, 0, 1]),
            sip_port: 0,
            start_timeout: Duration::from_secs(2),
            target_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(8),
            resolve_timeout: Duration::from_secs(5),
            ca_file: None,
            client_cert: None,
            srtp: siprec_core::client::SrtpOffer::Sips,
            srtp_suites: vec![
                siprec_rtp::srtp::SrtpSuite::AesCm128HmacSha1_80,
                siprec_rtp::srtp::SrtpSuite::AesCm128HmacSha1_32,
            ],
            codecs: vec![siprec_sdp::Format::pcmu(), siprec_sdp::Format::pcma()],
            dns_server: None,
            resolver: None,
        }
    }
}

/// The node's parameters: Activity, Call Recording Server (raw), Call Recording ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRequest {
    /// Start, stop, pause or resume.
    pub activity: Activity,
    /// The Call Recording Server value as the flow evaluated it (start only).
    pub server: String,
    /// The Call Recording ID (start only; empty = none).
    pub recording_id: Option<String>,
}

/// What a [`Recorder`] reports besides activity answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// One SRS: joined late, ended its session, failed after the start was answered.
    Srs(SrsReport),
    /// Every SRS ended: the recording is off without a stop.
    RecordingEnded {
        /// Why.
        reason: String,
    },
    /// An activity was answered (also returned to its caller).
    Outcome(Outcome),
}

enum Command {
    Activity {
        request: NodeRequest,
        reply: oneshot::Sender<Outcome>,
    },
    Close {
        reply: oneshot::Sender<()>,
    },
}

/// The recorder of one call. See the [module docs](self).
#[derive(Debug)]
pub struct Recorder {
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<ClientEvent>,
    media: mpsc::UnboundedSender<MediaCommand>,
    sip: Vec<ListenAddr>,
    rtp: [SocketAddr; 2],
    driver: Option<JoinHandle<()>>,
    sender: Option<JoinHandle<()>>,
}

impl Recorder {
    /// Binds the sockets and starts the call's media (the legs play from now on, recorded
    /// or not). `caller` is leg 1 (label 1, left channel), `callee` leg 2.
    pub async fn new(
        config: ClientConfig,
        call: CallContext,
        caller: Box<dyn MediaSource>,
        callee: Box<dyn MediaSource>,
    ) -> Result<Recorder, Error> {
        let ip = config.local_ip;
        let listen = [
            ListenAddr {
                transport: Transport::Udp,
                addr: SocketAddr::new(ip, config.sip_port),
            },
            ListenAddr {
                transport: Transport::Tcp,
                addr: SocketAddr::new(ip, config.sip_port),
            },
        ];
        let client = match (&config.ca_file, &config.client_cert) {
            (ca, Some((cert, key))) => Some(
                TlsClient::new(ca.as_deref())
                    .and_then(|c| c.with_client_cert(cert, key))
                    .map_err(Error::Transport)?,
            ),
            (Some(path), None) => Some(TlsClient::new(Some(path)).map_err(Error::Transport)?),
            (None, None) => None,
        };
        let tls = TlsConfig {
            server: None,
            client,
        };
        let (transports, inbound) = SipTransports::bind(&listen, tls)
            .await
            .map_err(Error::Transport)?;
        let sip = transports.local_addrs();
        let port_of = |t: Transport| sip.iter().find(|l| l.transport == t).map(|l| l.addr);
        let rtp1 = Arc::new(UdpSocket::bind(SocketAddr::new(ip, 0)).await?);
        let rtp2 = Arc::new(UdpSocket::bind(SocketAddr::new(ip, 0)).await?);
        let rtp = [rtp1.local_addr()?, rtp2.local_addr()?];
        let mut core_cfg = SrcConfig::new(ip, None, None, [rtp[0].port(), rtp[1].port()]);
        core_cfg.udp = port_of(Transport::Udp);
        core_cfg.tcp = port_of(Transport::Tcp);
        // No TLS listener of our own: the SRS answers over the connection we open.
        core_cfg.tls = port_of(Transport::Tcp);
        core_cfg.start_timeout = config.start_timeout;
        core_cfg.target_timeout = config.target_timeout;
        core_cfg.request_timeout = config.request_timeout;
        core_cfg.srtp = config.srtp;
        core_cfg.srtp_suites.clone_from(&config.srtp_suites);
        if !config.codecs.is_empty() {
            core_cfg.codecs = config.codecs.clone();
        }
        let core = SrcCore::new(core_cfg, call, Instant::now(), SystemTime::now())?;
        let resolver: Arc<dyn SrsResolver> = match config.resolver.clone() {
            Some(r) => r,
            None => match crate::resolve::Resolver::new(crate::resolve::ResolverConfig {
                nameserver: config.dns_server,
                ..Default::default()
            }) {
                Ok(r) => Arc::new(r),
                Err(e) => {
                    warn!(error = %e, "no DNS resolver; IP literals only");
                    Arc::new(IpLiteralResolver)
                }
            },
        };
        let (media_tx, media_rx) = mpsc::unbounded_channel();
        let sender = RtpSender::new([caller, callee], [rtp1, rtp2]);
        let sender = tokio::spawn(sender.run(media_rx));
        let (cmd_tx, cmd_rx) = mpsc::channel(16);
        let (events, _) = broadcast::channel(256);
        let (resolved_tx, resolved_rx) = mpsc::unbounded_channel();
        let (outbox, errors_rx) = Outbox::new(transports.clone());
        let driver = Driver {
            core,
            transports,
            media: media_tx.clone(),
            resolver,
            resolve_timeout: config.resolve_timeout,
            resolved_tx,
            outbox,
            waiting: HashMap::new(),
            events: events.clone(),
        };
        let driver = tokio::spawn(driver.run(cmd_rx, inbound, resolved_rx, errors_rx));
        Ok(Recorder {
            commands: cmd_tx,
            events,
            media: media_tx,
            sip,
            rtp,
            driver: Some(driver),
            sender: Some(sender),
        })
    }

    /// Runs one activity with the node's parameters and returns its outcome.
    pub async fn run(&self, request: NodeRequest) -> Result<Outcome, Error> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Activity { request, reply })
            .await
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)
    }

    /// Activity start.
    pub async fn start(&self, server: &str, recording_id: Option<&str>) -> Result<Outcome, Error> {
        self.run(NodeRequest {
            activity: Activity::Start,
            server: server.to_string(),
            recording_id: recording_id.map(str::to_string),
        })
        .await
    }

    /// Activity stop.
    pub async fn stop(&self) -> Result<Outcome, Error> {
        self.simple(Activity::Stop).await
    }

    /// Activity pause.
    pub async fn pause(&self) -> Result<Outcome, Error> {
        self.simple(Activity::Pause).await
    }

    /// Activity resume.
    pub async fn resume(&self) -> Result<Outcome, Error> {
        self.simple(Activity::Resume).await
    }

    async fn simple(&self, activity: Activity) -> Result<Outcome, Error> {
        self.run(NodeRequest {
            activity,
            server: String::new(),
            recording_id: None,
        })
        .await
    }

    /// Per-SRS news and every outcome, as they happen.
    pub fn subscribe(&self) -> broadcast::Receiver<ClientEvent> {
        self.events.subscribe()
    }

    /// Our SIP listening addresses.
    pub fn sip_addrs(&self) -> &[ListenAddr] {
        &self.sip
    }

    /// Our RTP addresses (leg 1, leg 2).
    pub fn rtp_addrs(&self) -> [SocketAddr; 2] {
        self.rtp
    }

    /// RTP packets sent so far, per live (session, leg) stream.
    pub async fn media_stats(&self) -> Vec<StreamStats> {
        let (tx, rx) = oneshot::channel();
        if self.media.send(MediaCommand::Stats(tx)).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Ends the call: a recording still active is stopped (BYE, CANCEL), the recorder waits
    /// until every SRS is done (bounded), then the tasks end.
    pub async fn close(mut self) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        if self.commands.send(Command::Close { reply }).await.is_ok() {
            let _ = rx.await;
        }
        if let Some(d) = self.driver.take() {
            let _ = d.await;
        }
        if let Some(s) = self.sender.take() {
            s.abort();
            let _ = s.await;
        }
        Ok(())
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // Dropping without close: the driver stops the recording on its own when it sees the
        // command channel close; the media task ends with it.
        if let Some(s) = self.sender.take() {
            s.abort();
        }
    }
}

/// How long [`Recorder::close`] waits for SRSs to answer the final BYE/CANCEL.
const CLOSE_GRACE: Duration = Duration::from_secs(10);

struct Driver {
    core: SrcCore,
    transports: SipTransports,
    media: mpsc::UnboundedSender<MediaCommand>,
    resolver: Arc<dyn SrsResolver>,
    resolve_timeout: Duration,
    resolved_tx: mpsc::UnboundedSender<(RsId, Result<Vec<ResolvedTarget>, String>)>,
    /// One send queue per peer: a slow TCP connect or TLS handshake never blocks the driver.
    outbox: Outbox,
    waiting: HashMap<OpId, oneshot::Sender<Outcome>>,
    events: broadcast::Sender<ClientEvent>,
}

fn now() -> Instant {
    Instant::now()
}

impl Driver {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut inbound: mpsc::Receiver<Inbound>,
        mut resolved: mpsc::UnboundedReceiver<(RsId, Result<Vec<ResolvedTarget>, String>)>,
        mut errors: mpsc::UnboundedReceiver<SendFailure>,
    ) {
        let mut closing: Option<(Instant, Option<oneshot::Sender<()>>)> = None;
        loop {
            if let Some((until, _)) = &closing {
                if self.core.is_quiet() || now() >= *until {
                    break;
                }
            }
            let deadline = self.core.poll_timeout();
            let close_at = closing.as_ref().map(|(t, _)| *t);
            let wake = match (deadline, close_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let sleep = async {
                match wake {
                    Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                cmd = commands.recv(), if closing.is_none() => match cmd {
                    Some(Command::Activity { request, reply }) => {
                        let op = self.core.activity(
                            now(),
                            request.activity,
                            &request.server,
                            request.recording_id.as_deref(),
                        );
                        self.waiting.insert(op, reply);
                    }
                    Some(Command::Close { reply }) => {
                        self.begin_close();
                        closing = Some((now() + CLOSE_GRACE, Some(reply)));
                    }
                    None => {
                        self.begin_close();
                        closing = Some((now() + CLOSE_GRACE, None));
                    }
                },
                Some(msg) = inbound.recv() => {
                    self.core.handle_bytes(now(), msg.peer, &msg.bytes);
                }
                Some((rs, result)) = resolved.recv() => {
                    let result = result.map(|targets| {
                        for t in &targets {
                            self.outbox.set_server_name(t.target.addr, &t.server_name);
                        }
                        targets.into_iter().map(|t| t.target).collect()
                    });
                    self.core.resolved(now(), rs, result);
                }
                Some(f) = errors.recv() => {
                    self.core.handle_transport_error(now(), f.peer, &f.reason);
                }
                _ = sleep => {
                    self.core.handle_timeout(now());
                }
            }
            self.flush();
        }
        // Sockets, connections and their tasks go with the recorder.
        self.transports.close();
        if let Some((_, Some(reply))) = closing {
            let _ = reply.send(());
        }
        debug!("recorder driver finished");
    }

    fn begin_close(&mut self) {
        if self.core.is_recording() || self.core.is_starting() {
            let op = self.core.stop(now());
            debug!(?op, "closing: stopping the recording");
        }
        self.flush();
    }

    fn flush(&mut self) {
        while let Some(t) = self.core.poll_transmit() {
            self.send(t);
        }
        while let Some(ev) = self.core.poll_event() {
            match ev {
                Event::Resolve { rs, uri } => self.resolve(rs, uri),
                Event::Media { rs, plan } => {
                    let _ = self.media.send(MediaCommand::Plan {
                        rs,
                        plan: Box::new(plan),
                    });
                }
                Event::MediaStop { rs } => {
                    let _ = self.media.send(MediaCommand::Stop { rs });
                }
                Event::Srs(report) => {
                    info!(srs = %report.entry, status = ?report.status, detail = %report.detail, "{}", report.line);
                    let _ = self.events.send(ClientEvent::Srs(report));
                }
                Event::Outcome(outcome) => {
                    let _ = self.events.send(ClientEvent::Outcome(outcome.clone()));
                    if let Some(reply) = self.waiting.remove(&outcome.op) {
                        let _ = reply.send(outcome);
                    }
                }
                Event::RecordingEnded { reason } => {
                    warn!(%reason, "recording ended");
                    let _ = self.events.send(ClientEvent::RecordingEnded { reason });
                }
            }
        }
        // Transmits produced while handling events (none today, but cheap to check).
        while let Some(t) = self.core.poll_transmit() {
            self.send(t);
        }
    }

    fn resolve(&self, rs: RsId, uri: SrsUri) {
        let resolver = Arc::clone(&self.resolver);
        let tx = self.resolved_tx.clone();
        let limit = self.resolve_timeout;
        tokio::spawn(async move {
            let result = match tokio::time::timeout(limit, resolver.resolve(&uri)).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {} ms", limit.as_millis())),
            };
            let _ = tx.send((rs, result));
        });
    }

    fn send(&mut self, t: Transmit) {
        self.outbox.send(t);
    }
}
