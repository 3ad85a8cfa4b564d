//! Non-blocking sends for the driver of a sans-IO SIP core.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use siprec_sip::transaction::{Peer, Transmit, Transport};
use tokio::sync::mpsc;
use tracing::debug;

use crate::SipTransports;

/// Messages one peer's queue holds; beyond it new messages to that peer are dropped (as a
/// congested network would; the transaction layer retransmits over UDP).
pub(crate) const PEER_QUEUE: usize = 256;

/// A peer's task ends after this long without a message (a new one starts with the next).
pub(crate) const PEER_IDLE: Duration = Duration::from_secs(60);

/// A message an [`Outbox`] could not send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendFailure {
    /// Where it was going.
    pub peer: Peer,
    /// Why it failed (connection refused, connect or handshake timed out, …).
    pub reason: String,
}

/// One send queue and task per peer over [`SipTransports`]: [`Outbox::send`] never waits, so
/// a TCP connect or TLS handshake that stalls towards one peer holds up neither the driver's
/// loop nor any other peer. Messages to one peer keep their order. A TLS peer is connected
/// first with the server name given to [`Outbox::set_server_name`] (else its IP address).
#[derive(Debug)]
pub struct Outbox {
    transports: SipTransports,
    queues: HashMap<Peer, mpsc::Sender<Vec<u8>>>,
    failures: mpsc::UnboundedSender<SendFailure>,
    names: Arc<Mutex<HashMap<SocketAddr, String>>>,
    sends: u64,
}

impl Outbox {
    /// An outbox over `transports`, and the receiver of its send failures.
    pub fn new(transports: SipTransports) -> (Outbox, mpsc::UnboundedReceiver<SendFailure>) {
        let (failures, rx) = mpsc::unbounded_channel();
        let outbox = Outbox {
            transports,
            queues: HashMap::new(),
            failures,
            names: Arc::default(),
            sends: 0,
        };
        (outbox, rx)
    }

    /// The name to verify `peer`'s TLS certificate against (the host of its SIP URI).
    pub fn set_server_name(&self, peer: SocketAddr, name: &str) {
        if let Ok(mut m) = self.names.lock() {
            m.insert(peer, name.to_string());
        }
    }

    /// Queues `t` for its peer. Never waits: a full queue drops the message (logged at debug).
    pub fn send(&mut self, t: Transmit) {
        self.sends += 1;
        if self.sends % 1024 == 0 {
            // Forget the queues of peers whose task ended (idle).
            self.queues.retain(|_, tx| !tx.is_closed());
        }
        let peer = t.peer;
        let mut payload = t.payload;
        for _ in 0..2 {
            let tx = self.queues.entry(peer).or_insert_with(|| {
                let (tx, rx) = mpsc::channel(PEER_QUEUE);
                tokio::spawn(peer_task(
                    peer,
                    self.transports.clone(),
                    rx,
                    self.failures.clone(),
                    Arc::clone(&self.names),
                ));
                tx
            });
            match tx.try_send(payload) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    debug!(peer = %peer.addr, "send queue full; message dropped");
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(p)) => {
                    self.queues.remove(&peer);
                    payload = p;
                }
            }
        }
    }
}

async fn peer_task(
    peer: Peer,
    transports: SipTransports,
    mut rx: mpsc::Receiver<Vec<u8>>,
    failures: mpsc::UnboundedSender<SendFailure>,
    names: Arc<Mutex<HashMap<SocketAddr, String>>>,
) {
    let mut connected = false;
    loop {
        let payload = match tokio::time::timeout(PEER_IDLE, rx.recv()).await {
            Ok(Some(p)) => p,
            Ok(None) | Err(_) => return,
        };
        if peer.transport == Transport::Tls && !connected {
            let name = names
                .lock()
                .ok()
                .and_then(|m| m.get(&peer.addr).cloned())
                .unwrap_or_else(|| peer.addr.ip().to_string());
            match transports.connect(peer.addr, &name).await {
                Ok(_) => connected = true,
                Err(e) => {
                    let _ = failures.send(SendFailure {
                        peer,
                        reason: e.to_string(),
                    });
                    continue;
                }
            }
        }
        if let Err(e) = transports.send(Transmit { peer, payload }).await {
            debug!(peer = %peer.addr, error = %e, "SIP send failed");
            connected = false;
            let _ = failures.send(SendFailure {
                peer,
                reason: e.to_string(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ListenAddr, TlsConfig};
    use std::time::Instant;

    /// A TCP peer that drops our SYNs (a listener with a backlog of 0 whose one slot is taken
    /// and that never accepts: the kernel drops further SYNs, a blackhole on loopback) holds up
    /// neither `send` nor a message to another peer; its failure is reported after
    /// [`crate::CONNECT_TIMEOUT`].
    #[tokio::test]
    async fn a_blackholed_peer_stalls_nobody_else() {
        let hole = tokio::net::TcpSocket::new_v4().unwrap();
        hole.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let hole = hole.listen(0).unwrap();
        let hole_addr = hole.local_addr().unwrap();
        let _slot = std::net::TcpStream::connect(hole_addr).unwrap();

        let listen: Vec<ListenAddr> = vec!["udp:127.0.0.1:0".parse().unwrap()];
        let (server, mut inbound) = SipTransports::bind(&listen, TlsConfig::default())
            .await
            .unwrap();
        let server_addr = server.local_addrs()[0].addr;
        let (client, _) = SipTransports::bind(&listen, TlsConfig::default())
            .await
            .unwrap();
        let (mut outbox, mut failures) = Outbox::new(client);

        let msg = b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n".to_vec();
        let t0 = Instant::now();
        for _ in 0..3 {
            outbox.send(Transmit {
                peer: Peer {
                    transport: Transport::Tcp,
                    addr: hole_addr,
                },
                payload: msg.clone(),
            });
        }
        outbox.send(Transmit {
            peer: Peer {
                transport: Transport::Udp,
                addr: server_addr,
            },
            payload: msg.clone(),
        });
        assert!(t0.elapsed() < Duration::from_millis(50), "send waited");
        let got = tokio::time::timeout(Duration::from_millis(500), inbound.recv())
            .await
            .expect("the healthy peer got its message at once")
            .unwrap();
        assert_eq!(got.bytes, msg);
        let f = tokio::time::timeout(crate::CONNECT_TIMEOUT * 2, failures.recv())
            .await
            .expect("the stalled connect is reported")
            .unwrap();
        assert_eq!(f.peer.addr, hole_addr);
        assert!(f.reason.contains("timed out"), "{}", f.reason);
        assert!(t0.elapsed() >= crate::CONNECT_TIMEOUT);
    }
}
