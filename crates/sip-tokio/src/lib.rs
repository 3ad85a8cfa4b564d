//! Tokio transports for SIP: UDP sockets and TCP connections that only move bytes.
//!
//! This crate owns no protocol logic. It binds the listeners it is given, frames TCP streams
//! with [`siprec_sip::framing::StreamFramer`] (Content-Length, RFC 3261 §18.3), and hands
//! every complete message to the caller as an [`Inbound`] on one channel. Sending takes a
//! [`Transmit`] produced by the sans-IO SIP core: UDP goes out of a bound socket, TCP over the
//! connection the peer opened (or a new one).
//!
//! Call order: [`SipTransports::bind`] → read [`Inbound`]s from the returned receiver and feed
//! them, with `Instant::now()`, into the SIP core → [`SipTransports::send`] each transmit it
//! produces.
//!
//! ```no_run
//! # async fn demo() -> Result<(), siprec_sip_tokio::Error> {
//! use siprec_sip_tokio::{ListenAddr, SipTransports};
//! let (transports, mut inbound) =
//!     SipTransports::bind(&["udp:127.0.0.1:0".parse()?, "tcp:127.0.0.1:0".parse()?]).await?;
//! while let Some(msg) = inbound.recv().await {
//!     println!("{} bytes from {:?}", msg.bytes.len(), msg.peer);
//! }
//! # drop(transports); Ok(()) }
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use siprec_sip::framing::StreamFramer;
use siprec_sip::transaction::{Peer, Transmit, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// Largest SIP message accepted on any transport (bytes). Larger ones are refused without
/// being buffered whole.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Depth of the inbound queue; when the SIP core falls behind, UDP readers wait.
const INBOUND_QUEUE: usize = 1024;

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
    /// Parses `udp:HOST:PORT`, `tcp:HOST:PORT` (IPv6 as `udp:[::1]:5060`).
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
    /// The message bytes (one whole message; TCP already framed).
    pub bytes: Vec<u8>,
}

type ConnMap = Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>>;

/// The bound transports.
#[derive(Debug, Clone)]
pub struct SipTransports {
    udp: Vec<Arc<UdpSocket>>,
    tcp_local: Vec<SocketAddr>,
    conns: ConnMap,
    inbound: mpsc::Sender<Inbound>,
}

impl SipTransports {
    /// Binds every listener and starts its reader tasks.
    pub async fn bind(
        listen: &[ListenAddr],
    ) -> Result<(SipTransports, mpsc::Receiver<Inbound>), Error> {
        let (tx, rx) = mpsc::channel(INBOUND_QUEUE);
        let conns: ConnMap = Arc::default();
        let mut udp = Vec::new();
        let mut tcp_local = Vec::new();
        for l in listen {
            let bind_err = |source| Error::Bind {
                transport: l.transport,
                addr: l.addr,
                source,
            };
            match l.transport {
                Transport::Udp => {
                    let sock = Arc::new(UdpSocket::bind(l.addr).await.map_err(bind_err)?);
                    tokio::spawn(udp_reader(sock.clone(), tx.clone()));
                    udp.push(sock);
                }
                Transport::Tcp => {
                    let lis = TcpListener::bind(l.addr).await.map_err(bind_err)?;
                    tcp_local.push(lis.local_addr().map_err(bind_err)?);
                    tokio::spawn(tcp_acceptor(lis, tx.clone(), conns.clone()));
                }
                Transport::Tls => return Err(Error::NoTransport(Transport::Tls)),
            }
        }
        Ok((
            SipTransports {
                udp,
                tcp_local,
                conns,
                inbound: tx,
            },
            rx,
        ))
    }

    /// The bound addresses, in listen order per transport (ports resolved).
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
        v
    }

    /// Sends one message. UDP uses a bound socket of the destination's address family; TCP
    /// reuses the peer's connection or opens a new one.
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
                let existing = self.conns.lock().ok().and_then(|m| m.get(&dest).cloned());
                let sender = match existing {
                    Some(s) if !s.is_closed() => s,
                    _ => {
                        let stream = TcpStream::connect(dest)
                            .await
                            .map_err(|source| Error::Send { peer: dest, source })?;
                        spawn_connection(stream, dest, self.inbound.clone(), self.conns.clone())
                    }
                };
                sender.send(t.payload).await.map_err(|_| Error::Send {
                    peer: dest,
                    source: std::io::Error::from(std::io::ErrorKind::BrokenPipe),
                })
            }
            Transport::Tls => Err(Error::NoTransport(Transport::Tls)),
        }
    }
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
                if n == 0 || buf[..n].iter().all(|b| b.is_ascii_whitespace()) {
                    continue; // keep-alive
                }
                let msg = Inbound {
                    peer: Peer {
                        transport: Transport::Udp,
                        addr: from,
                    },
                    local,
                    bytes: buf[..n].to_vec(),
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

async fn tcp_acceptor(lis: TcpListener, tx: mpsc::Sender<Inbound>, conns: ConnMap) {
    loop {
        match lis.accept().await {
            Ok((stream, peer)) => {
                spawn_connection(stream, peer, tx.clone(), conns.clone());
            }
            Err(e) => {
                warn!(error = %e, "tcp accept failed");
                if tx.is_closed() {
                    return;
                }
                // Too many open files and the like: back off a little rather than spin.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

fn spawn_connection(
    stream: TcpStream,
    peer: SocketAddr,
    tx: mpsc::Sender<Inbound>,
    conns: ConnMap,
) -> mpsc::Sender<Vec<u8>> {
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(64);
    if let Ok(mut m) = conns.lock() {
        m.insert(peer, out_tx.clone());
    }
    let local = stream.local_addr().unwrap_or(peer);
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    tokio::spawn(async move {
        while let Some(bytes) = out_rx.recv().await {
            if let Err(e) = wr.write_all(&bytes).await {
                debug!(%peer, error = %e, "tcp write failed");
                break;
            }
        }
    });
    let reader_conns = conns.clone();
    let writer_handle = out_tx.clone();
    tokio::spawn(async move {
        let mut framer = StreamFramer::new(MAX_MESSAGE);
        let mut buf = vec![0u8; 16 * 1024];
        'conn: loop {
            let n = match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            framer.push(&buf[..n]);
            while let Some(next) = framer.next_message() {
                match next {
                    Ok(bytes) => {
                        let msg = Inbound {
                            peer: Peer {
                                transport: Transport::Tcp,
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
                        warn!(%peer, error = %e, "closing tcp connection: bad framing");
                        break 'conn;
                    }
                }
            }
        }
        if let Ok(mut m) = reader_conns.lock() {
            if m.get(&peer).is_some_and(|s| s.same_channel(&writer_handle)) {
                m.remove(&peer);
            }
        }
    });
    out_tx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addr_parses_and_prints() {
        for s in ["udp:127.0.0.1:5060", "tcp:0.0.0.0:5070", "udp:[::1]:5060"] {
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
        let (t, mut rx) = SipTransports::bind(&["tcp:127.0.0.1:0".parse().unwrap()])
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
        let (t, mut rx) = SipTransports::bind(&["udp:127.0.0.1:0".parse().unwrap()])
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
}
