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
mod tests;
