//! Tokio transports for SIP: UDP sockets, TCP connections and TLS connections that only move
//! bytes.
//!
//! This crate owns no protocol logic. It binds the listeners it is given, frames TCP and TLS
//! streams with [`siprec_sip::framing::StreamFramer`] (Content-Length, RFC 3261 §18.3), and
//! hands every complete message to the caller as an [`Inbound`] on one channel. Sending takes
//! a [`Transmit`] produced by the sans-IO SIP core: UDP goes out of a bound socket, TCP and
//! TLS over the connection the peer opened (or a new one).
//!
//! TLS (RFC 3261 §26.3.1, RFC 5922) uses rustls with the *ring* provider. `tls:` listeners
//! need a [`TlsServer`] (certificate chain and key). Outgoing TLS connections verify the
//! server's certificate with a [`TlsClient`] (a CA file or the system roots) against the name
//! given to [`SipTransports::connect`] (the host of the SIP URI), or against the peer's IP
//! address when a message is sent to a peer nobody named.
//!
//! Call order: [`SipTransports::bind`] → read [`Inbound`]s from the returned receiver and feed
//! them, with `Instant::now()`, into the SIP core → hand each transmit it produces to an
//! [`Outbox`] (one queue and task per peer, so a slow connect or TLS handshake towards one
//! peer never holds up the driver or other peers; failures come back as [`SendFailure`]s), or
//! await [`SipTransports::send`] where blocking is fine.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), siprec_sip_tokio::Error> {
//! use siprec_sip::transaction::{Peer, Transmit, Transport};
//! use siprec_sip_tokio::{ListenAddr, SipTransports, TlsConfig};
//!
//! let (server, mut inbound) = SipTransports::bind(
//!     &["udp:127.0.0.1:0".parse()?, "tcp:127.0.0.1:0".parse()?],
//!     TlsConfig::default(),
//! )
//! .await?;
//! let tcp = server.local_addrs()[1];
//! // A client with no listener of its own opens a connection by sending.
//! let (client, _replies) = SipTransports::bind(&[], TlsConfig::default()).await?;
//! let ping = b"OPTIONS sip:srs@127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n".to_vec();
//! client
//!     .send(Transmit { peer: Peer { transport: Transport::Tcp, addr: tcp.addr }, payload: ping.clone() })
//!     .await?;
//! let msg = inbound.recv().await.expect("one message");
//! assert_eq!(msg.bytes, ping);
//! assert_eq!(msg.peer.transport, Transport::Tcp);
//! # Ok(()) }
//! ```

mod outbox;
mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::ServerName;
use siprec_sip::framing::StreamFramer;
use siprec_sip::transaction::{Peer, Transmit, Transport};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, OnceCell};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tracing::{debug, warn};

pub use outbox::{Outbox, SendFailure};
pub use tls::{TlsClient, TlsServer};

/// Largest SIP message accepted on any transport (bytes). Larger ones are refused without
/// being buffered whole.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Depth of the inbound queue; when the SIP core falls behind, UDP readers wait.
const INBOUND_QUEUE: usize = 1024;

/// Longest a TLS handshake may take (either side), and an outgoing TLS connection's TCP
/// connect: a peer that stalls cannot hold a connection slot longer.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest an outgoing TCP connect may take (a peer that drops our SYNs): the send fails
/// with a timed-out error instead of waiting for the kernel's ~2 minutes.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors of this crate.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Our configuration is wrong: a listen address could not be parsed.
    #[error(
        "invalid listen address {0:?}: expected udp:HOST:PORT, tcp:HOST:PORT or tls:HOST:PORT"
    )]
    InvalidListen(String),
    /// Our configuration is wrong: binding a socket failed.
    #[error("cannot bind {transport:?} {addr}: {source}")]
    Bind {
        /// Transport of the listener.
        transport: Transport,
        /// Address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Our configuration is wrong: a certificate, key or CA file cannot be read or used, or a
    /// `tls:` listener has no certificate.
    #[error("{what}: {reason}")]
    TlsConfig {
        /// What is wrong (the file, the listener).
        what: String,
        /// Why.
        reason: String,
    },
    /// Our configuration is wrong: a TLS server name that is neither a DNS name nor an IP
    /// address.
    #[error("invalid TLS server name {0:?}: expected a DNS name or an IP address")]
    InvalidServerName(String),
    /// No socket of this transport can reach the peer.
    #[error("no {0:?} transport bound for this destination")]
    NoTransport(Transport),
    /// Sending failed (connection refused, closed, network unreachable).
    #[error("send to {peer}: {source}")]
    Send {
        /// The destination.
        peer: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The peer failed the TLS handshake: its certificate is not trusted or does not name
    /// the server, it speaks no common protocol version, or it did not finish in
    /// [`TLS_HANDSHAKE_TIMEOUT`].
    #[error("TLS handshake with {peer}: {source}")]
    Handshake {
        /// The destination.
        peer: SocketAddr,
        /// What rustls (or the OS) reported.
        source: std::io::Error,
    },
}

/// One listener: transport and local address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr {
    /// The transport.
    pub transport: Transport,
    /// The local address (port 0 picks a free one).
    pub addr: SocketAddr,
}

impl FromStr for ListenAddr {
    type Err = Error;
    /// Parses `udp:HOST:PORT`, `tcp:HOST:PORT`, `tls:HOST:PORT` (IPv6 as `udp:[::1]:5060`).
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::InvalidListen(s.to_string());
        let (t, rest) = s.split_once(':').ok_or_else(bad)?;
        let transport = match t.to_ascii_lowercase().as_str() {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            "tls" => Transport::Tls,
            _ => return Err(bad()),
        };
        let addr = rest.parse().map_err(|_| bad())?;
        Ok(ListenAddr { transport, addr })
    }
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = match self.transport {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        };
        write!(f, "{t}:{}", self.addr)
    }
}

/// A complete SIP message as it arrived.
#[derive(Debug)]
pub struct Inbound {
    /// Who sent it, and over what.
    pub peer: Peer,
    /// The local address it arrived on.
    pub local: SocketAddr,
    /// The message bytes (one whole message; TCP and TLS already framed).
    pub bytes: Vec<u8>,
}

/// TLS settings of [`SipTransports::bind`].
#[derive(Debug, Clone, Default)]
pub struct TlsConfig {
    /// Certificate and key of the `tls:` listeners; required when one is configured.
    pub server: Option<TlsServer>,
    /// Trust anchors of outgoing TLS connections; `None` loads the system roots when the
    /// first outgoing TLS connection is opened.
    pub client: Option<TlsClient>,
}

/// Who may open stream (TCP, TLS) connections to the listeners, and how many may be open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptConfig {
    /// Networks whose hosts may connect; empty allows any. A connection from elsewhere is
    /// closed as soon as it is accepted, before any TLS handshake or read.
    pub allow: Vec<ipnet::IpNet>,
    /// Most accepted connections open at once (TLS handshakes in progress count); beyond it a
    /// new connection is closed at once. Default [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: usize,
}

/// Default [`AcceptConfig::max_connections`]: well under a default `ulimit -n` of 65536 once
/// RTP sockets and spool files are counted, far above what a recorder's SRCs open.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

impl Default for AcceptConfig {
    fn default() -> Self {
        AcceptConfig {
            allow: Vec::new(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

impl AcceptConfig {
    fn allows(&self, ip: std::net::IpAddr) -> bool {
        siprec_sip::source::allowed(&self.allow, ip)
    }
}

/// Connections refused at accept, by reason (see [`SipTransports::refused_connections`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefusedConnections {
    /// From a source outside [`AcceptConfig::allow`].
    pub not_allowed: u64,
    /// Beyond [`AcceptConfig::max_connections`].
    pub over_limit: u64,
}

/// Accept-side state shared by the acceptors: the policy, the open count, the refusals.
#[derive(Debug, Default)]
struct Gate {
    config: AcceptConfig,
    open: std::sync::atomic::AtomicUsize,
    not_allowed: std::sync::atomic::AtomicU64,
    over_limit: std::sync::atomic::AtomicU64,
}

/// One accepted connection's place in [`Gate::open`], given back when dropped.
#[derive(Debug)]
struct Slot(Arc<Gate>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0
            .open
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Gate {
    /// Admits a connection from `peer`, or counts why not.
    fn admit(self: &Arc<Self>, peer: SocketAddr) -> Option<Slot> {
        use std::sync::atomic::Ordering;
        if !self.config.allows(peer.ip()) {
            self.not_allowed.fetch_add(1, Ordering::Relaxed);
            debug!(%peer, "connection refused: source not allowed");
            return None;
        }
        let before = self.open.fetch_add(1, Ordering::Relaxed);
        let slot = Slot(self.clone());
        if before >= self.config.max_connections {
            self.over_limit.fetch_add(1, Ordering::Relaxed);
            debug!(%peer, open = before, "connection refused: too many open");
            return None; // the slot's drop takes the count back
        }
        Some(slot)
    }
}

/// An open stream connection: where to queue outgoing bytes, and its local address.
#[derive(Debug, Clone)]
struct Conn {
    tx: mpsc::Sender<Vec<u8>>,
    local: SocketAddr,
}

/// Open stream connections and every task this transport set started (so
/// [`SipTransports::close`] can stop them all).
#[derive(Debug, Default)]
struct Registry {
    conns: Mutex<HashMap<(Transport, SocketAddr), Conn>>,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Registry {
    /// Keeps the handle of a task (and forgets those that have finished).
    fn track(&self, h: tokio::task::JoinHandle<()>) {
        if let Ok(mut t) = self.tasks.lock() {
            t.retain(|a| !a.is_finished());
            t.push(h.abort_handle());
        }
    }
}

type ConnMap = Arc<Registry>;

/// The bound transports.
#[derive(Debug, Clone)]
pub struct SipTransports {
    udp: Vec<Arc<UdpSocket>>,
    tcp_local: Vec<SocketAddr>,
    tls_local: Vec<SocketAddr>,
    conns: ConnMap,
    inbound: mpsc::Sender<Inbound>,
    tls_client: Arc<OnceCell<TlsClient>>,
    server_names: Arc<Mutex<HashMap<SocketAddr, ServerName<'static>>>>,
    gate: Arc<Gate>,
}

impl SipTransports {
    /// Binds every listener and starts its reader tasks. A `tls:` listener needs
    /// `tls.server`; an empty `listen` gives a client that only opens connections. Stream
    /// connections are accepted from anyone, up to [`DEFAULT_MAX_CONNECTIONS`].
    pub async fn bind(
        listen: &[ListenAddr],
        tls: TlsConfig,
    ) -> Result<(SipTransports, mpsc::Receiver<Inbound>), Error> {
        Self::bind_with(listen, tls, AcceptConfig::default()).await
    }

    /// [`SipTransports::bind`] with an accept policy for the TCP and TLS listeners.
    pub async fn bind_with(
        listen: &[ListenAddr],
        tls: TlsConfig,
        accept: AcceptConfig,
    ) -> Result<(SipTransports, mpsc::Receiver<Inbound>), Error> {
        let gate = Arc::new(Gate {
            config: accept,
            ..Gate::default()
        });
        let (tx, rx) = mpsc::channel(INBOUND_QUEUE);
        let conns: ConnMap = Arc::default();
        let mut udp = Vec::new();
        let mut tcp_local = Vec::new();
        let mut tls_local = Vec::new();
        for l in listen {
            let bind_err = |source| Error::Bind {
                transport: l.transport,
                addr: l.addr,
                source,
            };
            match l.transport {
                Transport::Udp => {
                    let sock = Arc::new(UdpSocket::bind(l.addr).await.map_err(bind_err)?);
                    conns.track(tokio::spawn(udp_reader(sock.clone(), tx.clone())));
                    udp.push(sock);
                }
                Transport::Tcp => {
                    let lis = TcpListener::bind(l.addr).await.map_err(bind_err)?;
                    tcp_local.push(lis.local_addr().map_err(bind_err)?);
                    conns.track(tokio::spawn(stream_acceptor(
                        lis,
                        None,
                        tx.clone(),
                        conns.clone(),
                        gate.clone(),
                    )));
                }
                Transport::Tls => {
                    let server = tls.server.as_ref().ok_or_else(|| Error::TlsConfig {
                        what: format!("listener {l}"),
                        reason: "a TLS listener needs a certificate and a private key".into(),
                    })?;
                    let lis = TcpListener::bind(l.addr).await.map_err(bind_err)?;
                    tls_local.push(lis.local_addr().map_err(bind_err)?);
                    let acceptor = TlsAcceptor::from(server.config.clone());
                    conns.track(tokio::spawn(stream_acceptor(
                        lis,
                        Some(acceptor),
                        tx.clone(),
                        conns.clone(),
                        gate.clone(),
                    )));
                }
            }
        }
        let tls_client = Arc::new(match tls.client {
            Some(c) => OnceCell::new_with(Some(c)),
            None => OnceCell::new(),
        });
        Ok((
            SipTransports {
                udp,
                tcp_local,
                tls_local,
                conns,
                inbound: tx,
                tls_client,
                server_names: Arc::default(),
                gate,
            },
            rx,
        ))
    }

    /// Stream connections closed at accept so far, by reason.
    pub fn refused_connections(&self) -> RefusedConnections {
        use std::sync::atomic::Ordering;
        RefusedConnections {
            not_allowed: self.gate.not_allowed.load(Ordering::Relaxed),
            over_limit: self.gate.over_limit.load(Ordering::Relaxed),
        }
    }

    /// The bound addresses, in listen order per transport (ports resolved): UDP, then TCP,
    /// then TLS.
    pub fn local_addrs(&self) -> Vec<ListenAddr> {
        let mut v: Vec<ListenAddr> = self
            .udp
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .map(|addr| ListenAddr {
                transport: Transport::Udp,
                addr,
            })
            .collect();
        v.extend(self.tcp_local.iter().map(|&addr| ListenAddr {
            transport: Transport::Tcp,
            addr,
        }));
        v.extend(self.tls_local.iter().map(|&addr| ListenAddr {
            transport: Transport::Tls,
            addr,
        }));
        v
    }

    /// Stops every listener, connection and task of this transport set and closes their
    /// sockets (the inbound channel then ends). Sends after `close` fail.
    pub fn close(&self) {
        if let Ok(mut t) = self.conns.tasks.lock() {
            for h in t.drain(..) {
                h.abort();
            }
        }
        if let Ok(mut c) = self.conns.conns.lock() {
            c.clear();
        }
    }

    /// Opens a TLS connection to `peer` unless one is already open, verifying the server's
    /// certificate against `server_name` (the host of the SIP URI: a DNS name or an IP
    /// literal; RFC 5922 §7.1). The name is remembered for `peer`: when the connection
    /// drops, the next [`SipTransports::send`] reconnects with it. Returns the connection's
    /// local address (for Via and Contact).
    pub async fn connect(&self, peer: SocketAddr, server_name: &str) -> Result<SocketAddr, Error> {
        let name = tls::server_name(server_name)?;
        if let Ok(mut m) = self.server_names.lock() {
            m.insert(peer, name.clone());
        }
        if let Some(c) = self.open_conn(Transport::Tls, peer) {
            return Ok(c.local);
        }
        Ok(self.open_tls(peer, name).await?.local)
    }

    /// Sends one message. UDP uses a bound socket of the destination's address family; TCP
    /// and TLS reuse the peer's connection or open a new one (TLS verifies the name given to
    /// [`SipTransports::connect`] for this peer, else the peer's IP address).
    pub async fn send(&self, t: Transmit) -> Result<(), Error> {
        let dest = t.peer.addr;
        match t.peer.transport {
            Transport::Udp => {
                let sock = self
                    .udp
                    .iter()
                    .find(|s| {
                        s.local_addr()
                            .map(|a| a.is_ipv4() == dest.is_ipv4())
                            .unwrap_or(false)
                    })
                    .ok_or(Error::NoTransport(Transport::Udp))?;
                sock.send_to(&t.payload, dest)
                    .await
                    .map_err(|source| Error::Send { peer: dest, source })?;
                Ok(())
            }
            Transport::Tcp => {
                let conn = match self.open_conn(Transport::Tcp, dest) {
                    Some(c) => c,
                    None => {
                        let stream =
                            tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(dest))
                                .await
                                .map_err(|_| Error::Send {
                                    peer: dest,
                                    source: std::io::Error::new(
                                        std::io::ErrorKind::TimedOut,
                                        "connect timed out",
                                    ),
                                })?
                                .map_err(|source| Error::Send { peer: dest, source })?;
                        let _ = stream.set_nodelay(true);
                        let local = stream.local_addr().unwrap_or(dest);
                        spawn_connection(
                            stream,
                            Transport::Tcp,
                            dest,
                            local,
                            self.inbound.clone(),
                            self.conns.clone(),
                            None,
                        )
                    }
                };
                queue(conn, dest, t.payload).await
            }
            Transport::Tls => {
                let conn = match self.open_conn(Transport::Tls, dest) {
                    Some(c) => c,
                    None => {
                        let named = self
                            .server_names
                            .lock()
                            .ok()
                            .and_then(|m| m.get(&dest).cloned());
                        let name = named.unwrap_or_else(|| ServerName::IpAddress(dest.ip().into()));
                        self.open_tls(dest, name).await?
                    }
                };
                queue(conn, dest, t.payload).await
            }
        }
    }

    fn open_conn(&self, transport: Transport, peer: SocketAddr) -> Option<Conn> {
        let conns = self.conns.conns.lock().ok()?;
        conns
            .get(&(transport, peer))
            .filter(|c| !c.tx.is_closed())
            .cloned()
    }

    async fn open_tls(&self, peer: SocketAddr, name: ServerName<'static>) -> Result<Conn, Error> {
        let client = self
            .tls_client
            .get_or_try_init(|| async { TlsClient::system_roots() })
            .await?;
        let connector = TlsConnector::from(client.config.clone());
        let timed_out = || std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out");
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(peer))
            .await
            .map_err(|_| Error::Send {
                peer,
                source: timed_out(),
            })?
            .map_err(|source| Error::Send { peer, source })?;
        let _ = tcp.set_nodelay(true);
        let local = tcp.local_addr().unwrap_or(peer);
        let stream = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, connector.connect(name, tcp))
            .await
            .map_err(|_| Error::Handshake {
                peer,
                source: timed_out(),
            })?
            .map_err(|source| Error::Handshake { peer, source })?;
        Ok(spawn_connection(
            stream,
            Transport::Tls,
            peer,
            local,
            self.inbound.clone(),
            self.conns.clone(),
            None,
        ))
    }
}

async fn queue(conn: Conn, peer: SocketAddr, payload: Vec<u8>) -> Result<(), Error> {
    conn.tx.send(payload).await.map_err(|_| Error::Send {
        peer,
        source: std::io::Error::from(std::io::ErrorKind::BrokenPipe),
    })
}

async fn udp_reader(sock: Arc<UdpSocket>, tx: mpsc::Sender<Inbound>) {
    let local = match sock.local_addr() {
        Ok(a) => a,
        Err(_) => return,
    };
    // One datagram can be up to 64 KiB; anything larger is truncated by the OS and then
    // fails Content-Length checks in the parser.
    let mut buf = vec![0u8; 65_536];
    loop {
        match sock.recv_from(&mut buf).await {
            Ok((n, from)) => {
                let Some(data) = buf.get(..n) else { continue };
                if n == 0 || data.iter().all(|b| b.is_ascii_whitespace()) {
                    continue; // keep-alive
                }
                let msg = Inbound {
                    peer: Peer {
                        transport: Transport::Udp,
                        addr: from,
                    },
                    local,
                    bytes: data.to_vec(),
                };
                if tx.send(msg).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                // ICMP port unreachable surfaces here on Linux; it is not fatal.
                debug!(error = %e, "udp recv error");
            }
        }
    }
}

/// Accepts the connections of one TCP listener, or of one TLS listener when `tls` is given
/// (the handshake then runs on its own task, bounded by [`TLS_HANDSHAKE_TIMEOUT`], so a slow
/// peer never blocks accept). A connection the gate refuses is closed at once.
async fn stream_acceptor(
    lis: TcpListener,
    tls: Option<TlsAcceptor>,
    tx: mpsc::Sender<Inbound>,
    conns: ConnMap,
    gate: Arc<Gate>,
) {
    let transport = if tls.is_some() {
        Transport::Tls
    } else {
        Transport::Tcp
    };
    loop {
        let (stream, peer) = match lis.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                warn!(%transport, error = %e, "accept failed");
                if tx.is_closed() {
                    return;
                }
                // Too many open files and the like: back off a little rather than spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = gate.admit(peer) else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().unwrap_or(peer);
        let (tx, conns) = (tx.clone(), conns.clone());
        let Some(acceptor) = tls.clone() else {
            spawn_connection(stream, transport, peer, local, tx, conns, Some(slot));
            continue;
        };
        tokio::spawn(async move {
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    spawn_connection(tls, transport, peer, local, tx, conns, Some(slot));
                }
                Ok(Err(e)) => debug!(%peer, error = %e, "tls handshake failed"),
                Err(_) => debug!(%peer, "tls handshake timed out"),
            }
        });
    }
}

/// Starts the reader and writer tasks of one stream connection (TCP or TLS) and registers
/// it under `(transport, peer)`. An accepted connection holds its `slot` until it closes.
fn spawn_connection<S>(
    stream: S,
    transport: Transport,
    peer: SocketAddr,
    local: SocketAddr,
    tx: mpsc::Sender<Inbound>,
    conns: ConnMap,
    slot: Option<Slot>,
) -> Conn
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(64);
    let conn = Conn {
        tx: out_tx.clone(),
        local,
    };
    if let Ok(mut m) = conns.conns.lock() {
        m.insert((transport, peer), conn.clone());
    }
    let (mut rd, mut wr) = tokio::io::split(stream);
    let writer = tokio::spawn(async move {
        while let Some(bytes) = out_rx.recv().await {
            // TLS buffers records inside the session: flush after every message.
            if let Err(e) = async {
                wr.write_all(&bytes).await?;
                wr.flush().await
            }
            .await
            {
                debug!(%peer, ?transport, error = %e, "stream write failed");
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    conns.track(writer);
    let reader_conns = conns.clone();
    let writer_handle = out_tx;
    let reader = tokio::spawn(async move {
        let _slot = slot;
        let mut framer = StreamFramer::new(MAX_MESSAGE);
        let mut buf = vec![0u8; 16 * 1024];
        'conn: loop {
            let n = match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let Some(data) = buf.get(..n) else { break };
            framer.push(data);
            while let Some(next) = framer.next_message() {
                match next {
                    Ok(bytes) => {
                        let msg = Inbound {
                            peer: Peer {
                                transport,
                                addr: peer,
                            },
                            local,
                            bytes,
                        };
                        if tx.send(msg).await.is_err() {
                            break 'conn;
                        }
                    }
                    Err(e) => {
                        warn!(%peer, ?transport, error = %e, "closing connection: bad framing");
                        break 'conn;
                    }
                }
            }
        }
        if let Ok(mut m) = reader_conns.conns.lock() {
            let key = (transport, peer);
            if m.get(&key)
                .is_some_and(|c| c.tx.same_channel(&writer_handle))
            {
                m.remove(&key);
            }
        }
    });
    conns.track(reader);
    conn
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn close_stops_every_task_and_frees_the_ports() {
        let listen: Vec<ListenAddr> = vec![
            "udp:127.0.0.1:0".parse().unwrap(),
            "tcp:127.0.0.1:0".parse().unwrap(),
        ];
        let (t, mut rx) = SipTransports::bind(&listen, TlsConfig::default())
            .await
            .unwrap();
        let tcp = t.local_addrs()[1].addr;
        // An accepted connection has its own tasks too.
        let _client = TcpStream::connect(tcp).await.unwrap();
        t.close();
        drop(t);
        // Every task held a sender of the inbound channel: it ends when all are gone.
        assert!(rx.recv().await.is_none());
        assert!(TcpStream::connect(tcp).await.is_err(), "listener closed");
    }

    /// Reads until the peer closes (true) or 2 s pass (false).
    async fn closed_by_peer(c: &mut TcpStream) -> bool {
        let mut b = [0u8; 64];
        matches!(
            tokio::time::timeout(Duration::from_secs(2), c.read(&mut b)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    #[tokio::test]
    async fn connections_from_outside_the_allowlist_and_over_the_limit_are_closed_at_accept() {
        let listen = ["tcp:127.0.0.1:0".parse().unwrap()];
        let only_elsewhere = AcceptConfig {
            allow: vec!["192.0.2.0/24".parse().unwrap()],
            ..AcceptConfig::default()
        };
        let (t, mut rx) = SipTransports::bind_with(&listen, TlsConfig::default(), only_elsewhere)
            .await
            .unwrap();
        let addr = t.local_addrs()[0].addr;
        let mut c = TcpStream::connect(addr).await.unwrap();
        let _ = c.write_all(OPTIONS).await;
        assert!(closed_by_peer(&mut c).await, "closed at accept");
        assert_eq!(t.refused_connections().not_allowed, 1);
        assert!(rx.try_recv().is_err(), "nothing was read from it");
        t.close();

        let two = AcceptConfig {
            allow: vec!["127.0.0.0/8".parse().unwrap()],
            max_connections: 2,
        };
        let (t, mut rx) = SipTransports::bind_with(&listen, TlsConfig::default(), two)
            .await
            .unwrap();
        let addr = t.local_addrs()[0].addr;
        let mut a = TcpStream::connect(addr).await.unwrap();
        let mut b = TcpStream::connect(addr).await.unwrap();
        a.write_all(OPTIONS).await.unwrap();
        b.write_all(OPTIONS).await.unwrap();
        // Both are read (so both were accepted and hold their slots) ...
        rx.recv().await.unwrap();
        rx.recv().await.unwrap();
        // ... and the third is closed at once.
        let mut c = TcpStream::connect(addr).await.unwrap();
        assert!(closed_by_peer(&mut c).await, "over the limit");
        assert_eq!(t.refused_connections().over_limit, 1);
        // A closed connection gives its slot back.
        drop(a);
        let mut d = loop {
            let mut d = TcpStream::connect(addr).await.unwrap();
            d.write_all(OPTIONS).await.unwrap();
            match tokio::time::timeout(Duration::from_secs(2), rx.recv()).await {
                Ok(Some(_)) => break d,
                // The reader of `a` may not have seen its end yet: this one was refused.
                _ => assert!(closed_by_peer(&mut d).await),
            }
        };
        d.write_all(OPTIONS).await.unwrap();
        assert!(rx.recv().await.is_some());
        drop(b);
        t.close();
    }

    #[test]
    fn listen_addr_parses_and_prints() {
        for s in [
            "udp:127.0.0.1:5060",
            "tcp:0.0.0.0:5070",
            "udp:[::1]:5060",
            "tls:127.0.0.1:5061",
        ] {
            let l: ListenAddr = s.parse().unwrap();
            assert_eq!(l.to_string(), s);
        }
        for bad in [
            "127.0.0.1:5060",
            "sctp:1.2.3.4:5",
            "udp:host:5060",
            "udp:1.2.3.4",
        ] {
            assert!(bad.parse::<ListenAddr>().is_err(), "{bad}");
        }
    }

    const OPTIONS: &[u8] = b"OPTIONS sip:srs@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:srs@127.0.0.1>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";

    #[tokio::test]
    async fn tcp_frames_split_messages_and_replies_on_same_connection() {
        let (t, mut rx) =
            SipTransports::bind(&["tcp:127.0.0.1:0".parse().unwrap()], TlsConfig::default())
                .await
                .unwrap();
        let addr = t.local_addrs()[0].addr;
        let mut c = TcpStream::connect(addr).await.unwrap();
        // Two messages, written in awkward chunks.
        let mut wire = OPTIONS.to_vec();
        wire.extend_from_slice(OPTIONS);
        for chunk in wire.chunks(7) {
            c.write_all(chunk).await.unwrap();
        }
        let a = rx.recv().await.unwrap();
        let b = rx.recv().await.unwrap();
        assert_eq!(a.bytes, OPTIONS);
        assert_eq!(b.bytes, OPTIONS);
        t.send(Transmit {
            peer: a.peer,
            payload: b"SIP/2.0 200 OK\r\n\r\n".to_vec(),
        })
        .await
        .unwrap();
        let mut got = [0u8; 18];
        c.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"SIP/2.0 200 OK\r\n\r\n");
    }

    #[tokio::test]
    async fn udp_round_trip() {
        let (t, mut rx) =
            SipTransports::bind(&["udp:127.0.0.1:0".parse().unwrap()], TlsConfig::default())
                .await
                .unwrap();
        let addr = t.local_addrs()[0].addr;
        let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        c.send_to(OPTIONS, addr).await.unwrap();
        let m = rx.recv().await.unwrap();
        assert_eq!(m.bytes, OPTIONS);
        assert_eq!(m.peer.addr, c.local_addr().unwrap());
        t.send(Transmit {
            peer: m.peer,
            payload: b"pong".to_vec(),
        })
        .await
        .unwrap();
        let mut buf = [0u8; 16];
        let (n, _) = c.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"pong");
    }

    /// A CA and a server certificate for `localhost` and 127.0.0.1 signed by it, made fresh.
    struct Pki {
        ca_pem: String,
        cert_pem: String,
        key_pem: String,
    }

    fn pki(name: &str) -> Pki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();
        Pki {
            ca_pem: ca.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    async fn tls_server(p: &Pki) -> (SipTransports, mpsc::Receiver<Inbound>, SocketAddr) {
        let tls = TlsConfig {
            server: Some(TlsServer::from_pem(p.cert_pem.as_bytes(), p.key_pem.as_bytes()).unwrap()),
            client: None,
        };
        let (t, rx) = SipTransports::bind(&["tls:127.0.0.1:0".parse().unwrap()], tls)
            .await
            .unwrap();
        let l = t.local_addrs()[0];
        assert_eq!(l.transport, Transport::Tls);
        (t, rx, l.addr)
    }

    async fn tls_client(ca_pem: &str) -> (SipTransports, mpsc::Receiver<Inbound>) {
        let tls = TlsConfig {
            server: None,
            client: Some(TlsClient::from_ca_pem(ca_pem.as_bytes()).unwrap()),
        };
        SipTransports::bind(&[], tls).await.unwrap()
    }

    fn tls_to(addr: SocketAddr, payload: &[u8]) -> Transmit {
        Transmit {
            peer: Peer {
                transport: Transport::Tls,
                addr,
            },
            payload: payload.to_vec(),
        }
    }

    #[tokio::test]
    async fn tls_round_trip_by_name_reuses_the_connection_both_ways() {
        let p = pki("test CA");
        let (server, mut srx, addr) = tls_server(&p).await;
        let (client, mut crx) = tls_client(&p.ca_pem).await;
        let local = client.connect(addr, "localhost").await.unwrap();
        assert_eq!(local.ip(), addr.ip());
        assert_eq!(client.connect(addr, "localhost").await.unwrap(), local);

        client.send(tls_to(addr, OPTIONS)).await.unwrap();
        let got = srx.recv().await.unwrap();
        assert_eq!(got.bytes, OPTIONS);
        assert_eq!(got.peer.transport, Transport::Tls);
        assert_eq!(
            got.peer.addr, local,
            "one connection, the one connect() opened"
        );
        assert_eq!(got.local, addr);

        // The reply goes back over the same connection.
        let reply = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        server.send(tls_to(got.peer.addr, reply)).await.unwrap();
        let back = crx.recv().await.unwrap();
        assert_eq!(back.bytes, reply);
        assert_eq!(back.peer.transport, Transport::Tls);
        assert_eq!(back.peer.addr, addr);
        assert_eq!(back.local, local);
    }

    #[tokio::test]
    async fn tls_send_to_an_unnamed_peer_verifies_its_ip_address() {
        let p = pki("test CA");
        let (_server, mut srx, addr) = tls_server(&p).await;
        let (client, _crx) = tls_client(&p.ca_pem).await;
        // No connect(): the certificate must name 127.0.0.1, and it does.
        client.send(tls_to(addr, OPTIONS)).await.unwrap();
        assert_eq!(srx.recv().await.unwrap().bytes, OPTIONS);
    }

    #[tokio::test]
    async fn tls_with_the_wrong_ca_or_name_is_refused() {
        let p = pki("test CA");
        let other = pki("some other CA");
        let (_server, _srx, addr) = tls_server(&p).await;

        let (client, _crx) = tls_client(&other.ca_pem).await;
        let e = client.connect(addr, "localhost").await.unwrap_err();
        assert!(matches!(e, Error::Handshake { .. }), "{e}");
        assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
        let e = client.send(tls_to(addr, OPTIONS)).await.unwrap_err();
        assert!(matches!(e, Error::Handshake { .. }), "{e}");

        // Right CA, wrong name.
        let (client, _crx) = tls_client(&p.ca_pem).await;
        let e = client.connect(addr, "srs.example.com").await.unwrap_err();
        assert!(matches!(e, Error::Handshake { .. }), "{e}");
        let e = client.connect(addr, "not a name").await.unwrap_err();
        assert!(matches!(e, Error::InvalidServerName(_)), "{e}");
    }

    #[tokio::test]
    async fn tls_frames_split_messages() {
        let p = pki("test CA");
        let (_server, mut srx, addr) = tls_server(&p).await;
        // A raw rustls client writing two messages in 7-byte records.
        let client = TlsClient::from_ca_pem(p.ca_pem.as_bytes()).unwrap();
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut c = TlsConnector::from(client.config.clone())
            .connect(tls::server_name("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let mut wire = OPTIONS.to_vec();
        wire.extend_from_slice(OPTIONS);
        for chunk in wire.chunks(7) {
            c.write_all(chunk).await.unwrap();
            c.flush().await.unwrap();
        }
        let a = srx.recv().await.unwrap();
        let b = srx.recv().await.unwrap();
        assert_eq!(a.bytes, OPTIONS);
        assert_eq!(b.bytes, OPTIONS);
        assert_eq!(a.peer.transport, Transport::Tls);
    }

    #[tokio::test]
    async fn tls_listener_without_certificate_is_a_configuration_error() {
        let e = SipTransports::bind(&["tls:127.0.0.1:0".parse().unwrap()], TlsConfig::default())
            .await
            .unwrap_err();
        assert!(matches!(e, Error::TlsConfig { .. }), "{e}");
        assert!(e.to_string().contains("tls:127.0.0.1:0"), "{e}");
        assert!(e.to_string().contains("certificate"), "{e}");
    }

    #[tokio::test]
    async fn a_peer_that_never_finishes_the_handshake_does_not_block_others() {
        let p = pki("test CA");
        let (_server, mut srx, addr) = tls_server(&p).await;
        // A TCP connection that says nothing: its handshake waits on its own task.
        let _silent = TcpStream::connect(addr).await.unwrap();
        let (client, _crx) = tls_client(&p.ca_pem).await;
        client.send(tls_to(addr, OPTIONS)).await.unwrap();
        assert_eq!(srx.recv().await.unwrap().bytes, OPTIONS);
    }
}
