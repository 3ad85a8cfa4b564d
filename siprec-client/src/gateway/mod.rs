//! `siprec-client gateway`: the tokio driver of the live-call B2BUA
//! ([`siprec_gateway::GatewayCore`]).
//!
//! [`Gateway::start`] binds the SIP listeners, resolves `--forward` once, and runs the driver,
//! which moves SIP bytes, timers and name resolutions in and out of the core (sending through
//! one queue per peer, so a slow TCP connect never stalls other calls), and a few relay threads
//! (`shard`): each owns the four relay sockets (RTP and RTCP facing each leg) of its share of
//! the calls, waits on all of them with one epoll set, relays every packet to the other leg and
//! copies the audio to the recording servers as the core's [`RelayUpdate`]s say. The media
//! path does no allocation, locking or logging per packet.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use siprec_core::client::{RsId, SrsUri};
use siprec_gateway::{
    CallId, Event, Forward, GatewayConfig, GatewayCore, PortAllocator, RelayUpdate,
};
use siprec_sip::transaction::{Transmit, Transport};
use siprec_sip_tokio::{
    Inbound, ListenAddr, Outbox, SendFailure, SipTransports, TlsClient, TlsConfig, TlsServer,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

mod http;
mod shard;

use crate::cli::ValueError;
use crate::resolver_api::{IpLiteralResolver, ResolvedTarget, SrsResolver};
use crate::Error;
use shard::Shards;

/// Settings of a [`Gateway`] (the CLI's flags).
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// SIP listeners (`udp:HOST:PORT`, `tcp:…`, `tls:…`); the first one's address is the
    /// default media address.
    pub listen: Vec<ListenAddr>,
    /// Certificate chain and key (PEM) of `tls:` listeners.
    pub tls_server: Option<(PathBuf, PathBuf)>,
    /// Where every call goes: `sip:HOST[:PORT][;transport=udp|tcp|tls]`.
    pub forward: String,
    /// Relay ports (even RTP port, RTCP above it), inclusive range.
    pub rtp_ports: (u16, u16),
    /// The address written in SDP (default: the first listener's).
    pub media_ip: Option<IpAddr>,
    /// Record every call towards this Call Recording Server value.
    pub record_all: Option<String>,
    /// The INVITE header with a record-all call's Recording ID.
    pub record_all_id_header: String,
    /// Who may send recording INFOs (empty: any party of the call).
    pub control_from: Vec<ipnet::IpNet>,
    /// Most calls at once.
    pub max_calls: usize,
    /// CA file to verify `sips:` SRSs and a `sips:` forward target (default: system roots).
    pub ca: Option<PathBuf>,
    /// DNS server for SRS names (default: the system's).
    pub dns: Option<SocketAddr>,
    /// How long a start waits for the first SRS (default 2 s).
    pub start_timeout: Duration,
    /// Relay threads (the media path; default: one per core, at most 4).
    pub relay_threads: usize,
    /// Serve `/metrics` and `/healthz` on this address (default: off).
    pub http: Option<SocketAddr>,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        GatewayOptions {
            listen: Vec::new(),
            tls_server: None,
            forward: String::new(),
            rtp_ports: (20000, 29999),
            media_ip: None,
            record_all: None,
            record_all_id_header: "X-Recording-ID".into(),
            control_from: Vec::new(),
            max_calls: 1000,
            ca: None,
            dns: None,
            start_timeout: Duration::from_secs(2),
            relay_threads: std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
            http: None,
        }
    }
}

/// Packet counts over every call, for tests and the summary line.
#[derive(Debug, Default)]
pub struct GatewayCounters {
    /// Packets relayed between the legs.
    pub relayed: AtomicU64,
    /// Copies sent to recording servers.
    pub forked: AtomicU64,
    /// Packets from neither party, dropped.
    pub strangers: AtomicU64,
    /// Calls that ended.
    pub calls_ended: AtomicU64,
}

/// A running gateway. Dropping it stops it; [`Gateway::shutdown`] waits for the tasks.
#[derive(Debug)]
pub struct Gateway {
    sip: Vec<ListenAddr>,
    counters: Arc<GatewayCounters>,
    http_addr: Option<SocketAddr>,
    http_task: Option<JoinHandle<()>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Gateway {
    /// Binds everything and starts the driver. Errors name the flag that is wrong.
    pub async fn start(opts: GatewayOptions) -> Result<Gateway, Error> {
        if opts.listen.is_empty() {
            return Err(Error::Usage("gateway: give at least one --listen".into()));
        }
        let tls_server = match &opts.tls_server {
            Some((cert, key)) => {
                Some(TlsServer::from_pem_files(cert, key).map_err(Error::Transport)?)
            }
            None if opts.listen.iter().any(|l| l.transport == Transport::Tls) => {
                return Err(Error::Usage(
                    "a tls: listener needs --tls-cert and --tls-key".into(),
                ))
            }
            None => None,
        };
        let client = Some(TlsClient::new(opts.ca.as_deref()).map_err(Error::Transport)?);
        let (transports, inbound) = SipTransports::bind(
            &opts.listen,
            TlsConfig {
                server: tls_server,
                client,
            },
        )
        .await
        .map_err(Error::Transport)?;
        let sip = transports.local_addrs();
        let media_ip = opts.media_ip.unwrap_or_else(|| sip[0].addr.ip());
        if media_ip.is_unspecified() {
            return Err(Error::Usage(
                "--media-ip is needed when listening on 0.0.0.0 or :: (the address the legs send RTP to)".into(),
            ));
        }
        let forward_ip = forward_address(&opts.forward).await?;
        let forward =
            Forward::new(&opts.forward, forward_ip).map_err(|e| Error::Usage(e.to_string()))?;
        let local = sip.iter().map(|l| (l.transport, l.addr)).collect();
        let mut config = GatewayConfig::new(forward, local, media_ip);
        config.record_all = opts.record_all.clone();
        config.record_all_id_header = opts.record_all_id_header.clone();
        config.control_from = opts.control_from.clone();
        config.max_calls = opts.max_calls;
        config.recording.start_timeout = opts.start_timeout;
        let (lo, hi) = opts.rtp_ports;
        if lo >= hi || hi - lo < 3 {
            return Err(Error::Usage(format!(
                "--rtp-ports {lo}-{hi}: need a range of at least 4 ports"
            )));
        }
        let pool = RelayPorts::new(media_ip_for_bind(media_ip, &sip), lo, hi);
        let core = GatewayCore::new(
            config,
            Box::new(pool.clone()),
            Instant::now(),
            SystemTime::now(),
        )
        .map_err(|e| Error::Usage(e.to_string()))?;
        let resolver: Arc<dyn SrsResolver> =
            match crate::resolve::Resolver::new(crate::resolve::ResolverConfig {
                nameserver: opts.dns,
                ..Default::default()
            }) {
                Ok(r) => Arc::new(r),
                Err(e) => {
                    warn!(error = %e, "no DNS resolver; IP literals only");
                    Arc::new(IpLiteralResolver)
                }
            };
        let counters = Arc::new(GatewayCounters::default());
        // Four sockets per call: a thousand calls need more descriptors than the usual soft limit.
        siprec_udp::raise_fd_limit();
        let shards = Shards::new(opts.relay_threads, &counters)?;
        let metrics = Arc::new(http::GatewayMetrics::new(Arc::clone(&counters)));
        let (http_addr, http_task) = match opts.http {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| Error::Usage(format!("--http {addr}: cannot listen: {e}")))?;
                let bound = listener.local_addr()?;
                info!(http = %bound, "siprec-client gateway: /metrics and /healthz");
                (
                    Some(bound),
                    Some(http::spawn(listener, Arc::clone(&metrics))),
                )
            }
            None => (None, None),
        };
        let (resolved_tx, resolved_rx) = mpsc::unbounded_channel();
        let (outbox, errors_rx) = Outbox::new(transports.clone());
        let driver = Driver {
            core,
            transports,
            pool,
            resolver,
            resolved_tx,
            outbox,
            shards,
            counters: Arc::clone(&counters),
            metrics,
        };
        let (stop_tx, stop_rx) = oneshot::channel();
        for l in &sip {
            info!(listen = %l, forward = %opts.forward, %media_ip, "siprec-client gateway listening");
        }
        let task = tokio::spawn(driver.run(inbound, resolved_rx, errors_rx, stop_rx));
        Ok(Gateway {
            sip,
            counters,
            http_addr,
            http_task,
            stop: Some(stop_tx),
            task: Some(task),
        })
    }

    /// The SIP listeners' addresses (ports resolved).
    pub fn local_addrs(&self) -> &[ListenAddr] {
        &self.sip
    }

    /// The bound address of `/metrics` and `/healthz` (`--http`), if on.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Counts over every call so far.
    pub fn counters(&self) -> &GatewayCounters {
        &self.counters
    }

    /// Stops the driver and every relay (calls in progress are dropped without BYE).
    pub async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        if let Some(t) = self.http_task.take() {
            t.abort();
        }
    }

    /// Runs until the driver ends (Ctrl-C in the CLI).
    pub async fn wait(mut self) {
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        if let Some(t) = self.http_task.take() {
            t.abort();
        }
    }
}

/// `--forward`'s host as an address: an IP literal as is, a name through the system resolver.
async fn forward_address(forward: &str) -> Result<IpAddr, Error> {
    let uri = SrsUri::parse(forward.trim())
        .map_err(|e| Error::Usage(format!("--forward {forward:?}: {e}")))?;
    match &uri.host {
        siprec_core::client::Host::Ip(ip) => Ok(*ip),
        siprec_core::client::Host::Name(name) => {
            let port = uri.port.unwrap_or_else(|| uri.default_port());
            let mut addrs = tokio::net::lookup_host((name.as_str(), port))
                .await
                .map_err(|e| {
                    Error::Usage(format!(
                        "--forward {forward:?}: {name} does not resolve: {e}"
                    ))
                })?;
            addrs.next().map(|a| a.ip()).ok_or_else(|| {
                Error::Usage(format!("--forward {forward:?}: {name} has no address"))
            })
        }
    }
}

/// Relay sockets bind where the SIP listener does when it is a wildcard, else on the media
/// address.
fn media_ip_for_bind(media_ip: IpAddr, sip: &[ListenAddr]) -> IpAddr {
    if sip.iter().any(|l| l.addr.ip().is_unspecified()) {
        sip[0].addr.ip()
    } else {
        media_ip
    }
}

/// The relay's RTP/RTCP port pairs, as the gateway core's [`PortAllocator`]; one clone goes
/// into the core, one stays with the driver.
#[derive(Debug, Clone)]
struct RelayPorts(siprec_udp::PortPool);

impl RelayPorts {
    fn new(ip: IpAddr, lo: u16, hi: u16) -> RelayPorts {
        RelayPorts(siprec_udp::PortPool::new(
            ip,
            lo,
            hi,
            siprec_udp::Binding::RtpAndRtcp,
        ))
    }

    /// The RTP and RTCP sockets bound for `port` (once).
    fn take(&self, port: u16) -> Option<[std::net::UdpSocket; 2]> {
        let b = self.0.take(port)?;
        Some([b.rtp, b.rtcp?])
    }
}

impl PortAllocator for RelayPorts {
    fn allocate(&mut self) -> Option<u16> {
        self.0.allocate()
    }

    fn release(&mut self, port: u16) {
        self.0.release(port);
    }
}

struct Driver {
    core: GatewayCore,
    transports: SipTransports,
    pool: RelayPorts,
    resolver: Arc<dyn SrsResolver>,
    resolved_tx: mpsc::UnboundedSender<(CallId, RsId, Result<Vec<ResolvedTarget>, String>)>,
    /// One send queue per peer: a slow TCP connect or TLS handshake never blocks the driver.
    outbox: Outbox,
    /// The relay threads (the media path).
    shards: Shards,
    counters: Arc<GatewayCounters>,
    metrics: Arc<http::GatewayMetrics>,
}

impl Driver {
    async fn run(
        mut self,
        mut inbound: mpsc::Receiver<Inbound>,
        mut resolved: mpsc::UnboundedReceiver<(CallId, RsId, Result<Vec<ResolvedTarget>, String>)>,
        mut errors: mpsc::UnboundedReceiver<SendFailure>,
        mut stop: oneshot::Receiver<()>,
    ) {
        loop {
            let wake = self.core.poll_timeout();
            let sleep = async {
                match wake {
                    Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut stop => break,
                msg = inbound.recv() => match msg {
                    Some(msg) => self.core.handle_bytes(Instant::now(), msg.peer, &msg.bytes),
                    None => break,
                },
                Some((call, rs, result)) = resolved.recv() => {
                    let result = result.map(|targets| {
                        for t in &targets {
                            self.outbox.set_server_name(t.target.addr, &t.server_name);
                        }
                        targets.into_iter().map(|t| t.target).collect()
                    });
                    self.core.resolved(Instant::now(), call, rs, result);
                }
                Some(f) = errors.recv() => {
                    self.core.handle_transport_error(Instant::now(), f.peer, &f.reason);
                }
                _ = sleep => self.core.handle_timeout(Instant::now()),
            }
            self.flush();
        }
        self.shards.stop();
        self.transports.close();
        debug!("gateway driver finished");
    }

    fn flush(&mut self) {
        loop {
            let mut idle = true;
            // Relay changes before the messages: a 200 that lets a party send media leaves
            // after the relay knows the party's address.
            while let Some(ev) = self.core.poll_event() {
                idle = false;
                match ev {
                    Event::Relay { call, update } => {
                        match &update {
                            RelayUpdate::Open { .. } => self.metrics.call_relayed(),
                            RelayUpdate::Fork { rs, .. } => self.metrics.session_forked(call, *rs),
                            RelayUpdate::ForkStop { rs } => self.metrics.session_stopped(call, *rs),
                            _ => {}
                        }
                        self.relay(call, update)
                    }
                    Event::Resolve { call, rs, uri } => {
                        self.metrics.session_resolving(call, rs, &uri.to_string());
                        self.resolve(call, rs, uri)
                    }
                    Event::Command { reason, code, .. } => {
                        self.metrics.info_command(&reason, code);
                    }
                    Event::CallEnded { call } => {
                        self.counters.calls_ended.fetch_add(1, Ordering::Relaxed);
                        self.metrics.call_ended(call);
                    }
                }
            }
            while let Some(t) = self.core.poll_transmit() {
                idle = false;
                self.send(t);
            }
            if idle {
                break;
            }
        }
        self.metrics.set_active(self.core.calls());
    }

    fn relay(&mut self, call: CallId, update: RelayUpdate) {
        match update {
            RelayUpdate::Open { ports } => {
                let (Some([a0, a1]), Some([b0, b1])) =
                    (self.pool.take(ports[0]), self.pool.take(ports[1]))
                else {
                    warn!(%call, "relay sockets missing; the call's media is not relayed");
                    return;
                };
                self.shards.open(call, [a0, a1, b0, b1]);
            }
            other => self.shards.update(call, other),
        }
    }

    fn resolve(&self, call: CallId, rs: RsId, uri: SrsUri) {
        let resolver = Arc::clone(&self.resolver);
        let tx = self.resolved_tx.clone();
        tokio::spawn(async move {
            let limit = Duration::from_secs(5);
            let result = match tokio::time::timeout(limit, resolver.resolve(&uri)).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {} ms", limit.as_millis())),
            };
            let _ = tx.send((call, rs, result));
        });
    }

    fn send(&mut self, t: Transmit) {
        self.outbox.send(t);
    }
}

/// Help text after `siprec-client gateway --help`.
pub const GATEWAY_HELP: &str = "\
The gateway sits in a live call as a B2BUA: every INVITE on a --listen address is answered
100 Trying and forwarded to --forward as a new dialog; responses, ACK, BYE, CANCEL, re-INVITE,
UPDATE and INFO are relayed between the legs, and both legs' SDP point at the gateway's relay
ports (RTP relayed unchanged, RTCP alongside).

Recording commands are in-dialog INFOs from either leg, answered by the gateway (not relayed):
  X-Reason: startCallRecording | stopCallRecording | pauseCallRecording | resumeCallRecording
  X-Srs-Url: <Call Recording Server value>      (start)
  X-Srs-Recording-ID: <Recording ID>            (start, optional)
  X-Call-Sid: <the platform's call id>          (optional, into the metadata)
The reply is the Call Recording Node's contract: 200 / 400 / 503 with the contract's log line as
the reason phrase (see siprec-client record --help for the Call Recording Server formats).

Examples:
  siprec-client gateway --listen udp:0.0.0.0:5060 --media-ip 192.0.2.1 --forward sip:10.0.0.5:5060
  siprec-client gateway --listen udp:127.0.0.1:5080 --forward sip:127.0.0.1:5090 \\
      --record-all sip:127.0.0.1:5060 --record-all-id-header X-Recording-ID";

/// Arguments of `gateway`.
#[derive(Debug, Clone, clap::Args)]
pub struct GatewayArgs {
    /// A SIP listener: udp:HOST:PORT, tcp:HOST:PORT or tls:HOST:PORT (repeat for several).
    #[arg(long, value_name = "TRANSPORT:HOST:PORT", required = true)]
    pub listen: Vec<ListenAddr>,
    /// Certificate chain (PEM) of the tls: listeners.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Where every incoming call goes (the B leg): sip:HOST or sip:HOST:PORT, optionally with
    /// ;transport=udp, tcp or tls (sips: for TLS).
    #[arg(long, value_name = "URI")]
    pub forward: String,
    /// Relay port range (even RTP ports, RTCP on the port above).
    #[arg(long, value_name = "LOW-HIGH", default_value = "20000-29999", value_parser = parse_port_range)]
    pub rtp_ports: (u16, u16),
    /// The address written in SDP for the relay (default: the first --listen address).
    #[arg(long, value_name = "IP")]
    pub media_ip: Option<IpAddr>,
    /// Record every call from its answer to its end towards this Call Recording Server value.
    #[arg(long, value_name = "VALUE", allow_hyphen_values = true)]
    pub record_all: Option<String>,
    /// The initial INVITE's header that carries a record-all call's Recording ID.
    #[arg(long, value_name = "HEADER", default_value = "X-Recording-ID")]
    pub record_all_id_header: String,
    /// Who may send recording INFOs (repeat; default: any party of the call).
    #[arg(long, value_name = "CIDR")]
    pub control_from: Vec<ipnet::IpNet>,
    /// Most calls at once (more get 503 with Retry-After).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub max_calls: usize,
    /// CA file (PEM) to verify sips: SRSs and a sips: --forward (default: the system roots).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// DNS server for SRS host names (default: the system's).
    #[arg(long, value_name = "HOST:PORT", value_parser = crate::cli::parse_host_port)]
    pub dns: Option<SocketAddr>,
    /// Relay threads, each owning the RTP sockets of its share of the calls (default: one per
    /// core, at most 4).
    #[arg(long, value_name = "N")]
    pub relay_threads: Option<usize>,
    /// Serve /metrics (Prometheus) and /healthz on this address, e.g. 127.0.0.1:9100.
    #[arg(long, value_name = "IP:PORT")]
    pub http: Option<SocketAddr>,
    /// Log lines as JSON (one object per line) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `LOW-HIGH`.
pub fn parse_port_range(s: &str) -> Result<(u16, u16), ValueError> {
    let (lo, hi) = s
        .split_once('-')
        .ok_or_else(|| ValueError::NotARange(s.to_string()))?;
    let p = |v: &str| {
        v.trim()
            .parse::<u16>()
            .map_err(|_| ValueError::NotAPort(v.to_string()))
    };
    let (lo, hi) = (p(lo)?, p(hi)?);
    if lo == 0 || hi < lo.saturating_add(3) {
        return Err(ValueError::TooFewPorts(s.to_string()));
    }
    Ok((lo, hi))
}

impl GatewayArgs {
    /// The options these arguments say.
    pub fn options(&self) -> GatewayOptions {
        GatewayOptions {
            listen: self.listen.clone(),
            tls_server: self.tls_cert.clone().zip(self.tls_key.clone()),
            forward: self.forward.clone(),
            rtp_ports: self.rtp_ports,
            media_ip: self.media_ip,
            record_all: self.record_all.clone(),
            record_all_id_header: self.record_all_id_header.clone(),
            control_from: self.control_from.clone(),
            max_calls: self.max_calls,
            ca: self.ca.clone(),
            dns: self.dns,
            relay_threads: self
                .relay_threads
                .unwrap_or_else(|| GatewayOptions::default().relay_threads),
            http: self.http,
            ..GatewayOptions::default()
        }
    }
}

/// Runs `gateway` until Ctrl-C or SIGTERM.
pub async fn run(args: GatewayArgs) -> Result<(), Error> {
    let gw = Gateway::start(args.options()).await?;
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    let c = gw.counters();
    info!(
        relayed = c.relayed.load(Ordering::Relaxed),
        forked = c.forked.load(Ordering::Relaxed),
        strangers = c.strangers.load(Ordering::Relaxed),
        calls = c.calls_ended.load(Ordering::Relaxed),
        "siprec-client gateway stopping"
    );
    gw.shutdown().await;
    Ok(())
}
