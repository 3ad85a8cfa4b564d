//! RFC 3261 §17 transactions, sans-IO (in the style of quinn-proto): the layer is fed
//! messages and time, and is polled for transmits, events and its next timeout.
//!
//! What the layer does on its own:
//! - INVITE server transactions answer `100 Trying` at once (§17.2.1), absorb request
//!   retransmissions by resending the last response, retransmit a non-2xx final response on
//!   Timer G until the ACK (unreliable transports only), give up on Timer H and linger for
//!   Timer I.
//! - A 2xx to an INVITE is retransmitted by the layer acting as UAS core (§13.3.1.4): T1, 2T1,
//!   4T1, … capped at T2, over unreliable transports, until an ACK with the same Call-ID and
//!   CSeq number arrives; after 64*T1 without one, [`Event::AckTimeout`]. The transaction then
//!   lingers until 64*T1 after the 2xx to absorb retransmitted INVITEs and ACKs (the
//!   "Accepted" state of RFC 6026).
//! - Non-INVITE server transactions: Trying, Proceeding, Completed, Timer J (§17.2.2).
//! - CANCEL (§9.2) is matched to its INVITE by branch; the layer answers it (200, or 481 when
//!   nothing matches) and reports [`Event::Cancelled`] only when the INVITE has not had a
//!   final response yet. The TU then answers the INVITE with 487.
//! - INVITE client transactions: Timer A/B, the ACK for a non-2xx final response (§17.1.1.3),
//!   Timer D; 2xx responses (retransmissions included) go to the TU, which sends the ACK.
//! - Non-INVITE client transactions: Timer E/F/K (§17.1.2).
//!
//! Responses go back to the address the request came from (for UDP that is the source
//! address, which also honours `rport`, RFC 3581); `received`/`rport` values are added to the
//! top Via of received requests (RFC 3261 §18.2.1, RFC 3581 §4).
//!
//! Bounds: at most [`DEFAULT_MAX_TRANSACTIONS`] live transactions (settable); requests beyond
//! that are dropped. A non-INVITE server transaction the TU never answers is dropped after
//! 64*T1. An INVITE server transaction the TU never answers finally is answered by the layer:
//! `487 Request Terminated` 64*T1 after a CANCEL, `408 Request Timeout` after
//! [`INVITE_PROCEEDING_LIMIT`]. An INVITE client transaction stuck after a provisional
//! response times out after [`INVITE_PROCEEDING_LIMIT`].

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rsip::headers::UntypedHeader;
use rsip::{Header, Method, Request, Response, SipMessage};
use tracing::{debug, trace, warn};

use crate::error::Error;
use crate::message::{
    self, make_response, new_branch, print_message, split_list, split_unquoted, tag_of, TopVia,
    TxKey,
};

/// Default cap on live transactions.
pub const DEFAULT_MAX_TRANSACTIONS: usize = 10_000;

/// How long an INVITE client transaction waits for a final response after a provisional one
/// before reporting [`Event::Timeout`], and how long an INVITE server transaction waits for
/// the TU's final response before the layer answers 408 itself. RFC 3261 leaves this to the
/// TU (a proxy uses Timer C, more than 3 minutes, §16.6); the layer bounds it so neither a
/// silent peer nor a forgetful TU can pin a transaction.
pub const INVITE_PROCEEDING_LIMIT: Duration = Duration::from_secs(180);

/// Timer D for unreliable transports (RFC 3261 §17.1.1.2: at least 32 s).
const TIMER_D: Duration = Duration::from_secs(32);

/// Transport protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP: unreliable, the layer retransmits.
    Udp,
    /// TCP: reliable.
    Tcp,
    /// TLS over TCP: reliable.
    Tls,
}

impl Transport {
    /// `true` for TCP and TLS: no retransmissions, zero-length linger timers (RFC 3261 §17).
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    /// The Via transport token: `UDP`, `TCP`, `TLS`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The other end of a message: transport and address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    /// Transport the message came in on / must go out on.
    pub transport: Transport,
    /// Remote address (for UDP the datagram source; for TCP/TLS the connection's peer).
    pub addr: SocketAddr,
}

/// Bytes to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub peer: Peer,
    /// One whole SIP message.
    pub payload: Vec<u8>,
}

/// RFC 3261 timer values (§17.1.1.1, Appendix A).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate, 500 ms by default.
    pub t1: Duration,
    /// Longest retransmit interval for non-INVITE requests and INVITE responses, 4 s.
    pub t2: Duration,
    /// Longest time a message stays in the network, 5 s.
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerConfig {
    /// 64*T1: Timers B, F, H, J and the 2xx retransmission limit.
    pub fn t1x64(&self) -> Duration {
        self.t1.saturating_mul(64)
    }
}

/// A server transaction (a request we received).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerKey(pub TxKey);

impl ServerKey {
    /// The branch / method / sent-by triple.
    pub fn tx_key(&self) -> &TxKey {
        &self.0
    }
}

impl std::fmt::Display for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "server {}", self.0)
    }
}

/// A client transaction (a request we sent).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey(pub TxKey);

impl ClientKey {
    /// The branch / method pair.
    pub fn tx_key(&self) -> &TxKey {
        &self.0
    }
}

impl std::fmt::Display for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "client {}", self.0)
    }
}

/// What the transaction user (TU) must act on.
#[derive(Debug, Clone)]
pub enum Event {
    /// A new request (never a retransmission, an ACK or a CANCEL): answer it with
    /// [`TransactionLayer::respond`] using `key`.
    Request {
        /// Its server transaction.
        key: ServerKey,
        /// Who sent it.
        peer: Peer,
        /// The request (top Via stamped with `received`/`rport`).
        request: Request,
    },
    /// An ACK for a 2xx (the first one; it stopped the 2xx retransmissions), or an ACK that
    /// matches nothing the layer knows.
    Ack {
        /// Who sent it.
        peer: Peer,
        /// The ACK.
        request: Request,
    },
    /// A CANCEL matched a pending INVITE server transaction (RFC 3261 §9.2). The layer has
    /// already answered the CANCEL with 200; the TU should now answer `invite` with 487.
    Cancelled {
        /// The INVITE's server transaction.
        invite: ServerKey,
        /// Who sent the CANCEL.
        peer: Peer,
        /// The CANCEL.
        cancel: Request,
    },
    /// A response to one of our requests: provisional or final. 2xx responses to an INVITE
    /// arrive each time (retransmissions and forks included); the TU sends (or re-sends) the
    /// ACK with [`TransactionLayer::send_stateless`].
    Response {
        /// Our client transaction.
        key: ClientKey,
        /// The response.
        response: Response,
    },
    /// No final response in time (Timer B or F, the CANCEL grace period of §9.1, or
    /// [`INVITE_PROCEEDING_LIMIT`]). The transaction is gone.
    Timeout {
        /// Our client transaction.
        key: ClientKey,
    },
    /// Our 2xx to an INVITE was retransmitted for 64*T1 without an ACK (RFC 3261
    /// §13.3.1.4): the TU should end the dialog with BYE.
    AckTimeout {
        /// The INVITE's server transaction.
        key: ServerKey,
        /// The dialog's Call-ID.
        call_id: String,
    },
    /// Timer H fired: no ACK for our non-2xx final response to an INVITE.
    ServerTimeout {
        /// The INVITE's server transaction.
        key: ServerKey,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerState {
    /// Non-INVITE, no response yet.
    Trying,
    /// A provisional response was sent.
    Proceeding,
    /// A final (INVITE: non-2xx) response was sent.
    Completed,
    /// INVITE: the ACK for the non-2xx final arrived.
    Confirmed,
    /// INVITE: a 2xx was sent (RFC 6026 "Accepted").
    Accepted,
}

impl ServerState {
    fn name(self) -> &'static str {
        match self {
            ServerState::Trying => "Trying",
            ServerState::Proceeding => "Proceeding",
            ServerState::Completed => "Completed",
            ServerState::Confirmed => "Confirmed",
            ServerState::Accepted => "Accepted",
        }
    }
}

#[derive(Debug)]
struct ServerTx {
    peer: Peer,
    invite: bool,
    state: ServerState,
    /// The last response sent, resent on request retransmissions and timers.
    last_response: Option<Vec<u8>>,
    /// To tag of the last response (for the 200 to a CANCEL, §9.2).
    to_tag: Option<String>,
    /// Call-ID and CSeq number of the request (2xx ACK matching).
    call_id: String,
    cseq: u32,
    acked: bool,
    /// INVITE: the 100 Trying, used as the template of a final response the layer may have
    /// to send itself.
    template: Option<Response>,
    /// INVITE: a CANCEL matched while no final response had been sent.
    cancelled: bool,
    retransmit_at: Option<Instant>,
    retransmit_interval: Duration,
    timeout_at: Option<Instant>,
}

impl ServerTx {
    fn deadline(&self) -> Option<Instant> {
        earliest(self.retransmit_at, self.timeout_at)
    }
}

/// The earlier of two optional instants.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What a transaction's two timers ask for at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Due {
    /// The timeout (Timer B/F/H/J/K/L/M or the 2xx's 64*T1): it wins over a retransmission
    /// due at the same time or later.
    Timeout,
    /// A retransmission (Timer A/E/G or the 2xx's), due before the timeout.
    Retransmit,
    /// Nothing yet.
    Nothing,
}

fn due(now: Instant, timeout_at: Option<Instant>, retransmit_at: Option<Instant>) -> Due {
    let timeout_due = timeout_at.is_some_and(|t| t <= now);
    let retransmit_due = retransmit_at.is_some_and(|t| t <= now);
    let timeout_first = match (timeout_at, retransmit_at) {
        (Some(t), Some(r)) => t <= r,
        _ => true,
    };
    if timeout_due && (timeout_first || !retransmit_due) {
        Due::Timeout
    } else if retransmit_due {
        Due::Retransmit
    } else {
        Due::Nothing
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientState {
    /// INVITE: Calling; non-INVITE: Trying.
    Calling,
    Proceeding,
    /// INVITE: 2xx received (RFC 6026 "Accepted"), Timer M running.
    Accepted,
    Completed,
}

#[derive(Debug)]
struct ClientTx {
    peer: Peer,
    invite: bool,
    state: ClientState,
    request: Request,
    bytes: Vec<u8>,
    /// The ACK for a non-2xx final response, resent on response retransmissions.
    ack: Option<Vec<u8>>,
    /// A CANCEL waiting for the first provisional response (§9.1).
    pending_cancel: Option<Request>,
    /// The CANCEL, once requested.
    cancel_key: Option<ClientKey>,
    retransmit_at: Option<Instant>,
    retransmit_interval: Duration,
    timeout_at: Option<Instant>,
}

impl ClientTx {
    fn deadline(&self) -> Option<Instant> {
        earliest(self.retransmit_at, self.timeout_at)
    }
}

/// The transaction layer. See the [module docs](self) for what it does by itself.
///
/// Call order: feed [`handle_message`](Self::handle_message) and
/// [`handle_timeout`](Self::handle_timeout); after each call drain
/// [`poll_event`](Self::poll_event) (answering requests with [`respond`](Self::respond)) and
/// [`poll_transmit`](Self::poll_transmit); sleep until [`poll_timeout`](Self::poll_timeout).
#[derive(Debug)]
pub struct TransactionLayer {
    config: TimerConfig,
    max_transactions: usize,
    servers: HashMap<ServerKey, ServerTx>,
    clients: HashMap<ClientKey, ClientTx>,
    /// (Call-ID, CSeq number) of INVITEs answered 2xx → their server transaction.
    ack_index: HashMap<(String, u32), ServerKey>,
    events: VecDeque<Event>,
    transmits: VecDeque<Transmit>,
}

impl TransactionLayer {
    /// A layer with these timers and [`DEFAULT_MAX_TRANSACTIONS`]. Timer values are clamped
    /// to 1 ms ..= 10 min so that no timer arithmetic can overflow.
    pub fn new(config: TimerConfig) -> Self {
        let clamp = |d: Duration| d.clamp(Duration::from_millis(1), Duration::from_secs(600));
        let config = TimerConfig {
            t1: clamp(config.t1),
            t2: clamp(config.t2),
            t4: clamp(config.t4),
        };
        TransactionLayer {
            config,
            max_transactions: DEFAULT_MAX_TRANSACTIONS,
            servers: HashMap::new(),
            clients: HashMap::new(),
            ack_index: HashMap::new(),
            events: VecDeque::new(),
            transmits: VecDeque::new(),
        }
    }

    /// Changes the cap on live transactions (at least 1).
    pub fn set_max_transactions(&mut self, max: usize) {
        self.max_transactions = max.max(1);
    }

    /// The timers in use.
    pub fn config(&self) -> TimerConfig {
        self.config
    }

    /// Live transactions (server and client).
    pub fn len(&self) -> usize {
        self.servers.len() + self.clients.len()
    }

    /// `true` when no transaction is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Next event for the TU.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next, if any timer runs.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let s = self.servers.values().filter_map(ServerTx::deadline).min();
        let c = self.clients.values().filter_map(ClientTx::deadline).min();
        match (s, c) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn send(&mut self, peer: Peer, payload: Vec<u8>) {
        self.transmits.push_back(Transmit { peer, payload });
    }

    /// Sends a message outside any transaction (the ACK for a 2xx, RFC 3261 §13.2.2.4, or a
    /// stateless response).
    pub fn send_stateless(&mut self, peer: Peer, msg: SipMessage) {
        let payload = print_message(&msg);
        self.send(peer, payload);
    }

    // -----------------------------------------------------------------------------------------
    // Incoming
    // -----------------------------------------------------------------------------------------

    /// A message parsed from `peer` (see [`crate::message::parse_message`]).
    pub fn handle_message(&mut self, now: Instant, peer: Peer, msg: SipMessage) {
        match msg {
            SipMessage::Request(req) => self.on_request(now, peer, req),
            SipMessage::Response(resp) => self.on_response(now, resp),
        }
    }

    fn at_capacity(&self) -> bool {
        self.len() >= self.max_transactions
    }

    fn on_request(&mut self, now: Instant, peer: Peer, mut req: Request) {
        stamp_via(&mut req, peer.addr);
        let Some(key) = TxKey::for_request(&req) else {
            debug!(peer = %peer.addr, "request without a usable Via; dropped");
            return;
        };
        match req.method {
            Method::Ack => self.on_ack(now, peer, ServerKey(key), req),
            Method::Cancel => self.on_cancel(now, peer, ServerKey(key), req),
            _ => {
                let key = ServerKey(key);
                if let Some(tx) = self.servers.get(&key) {
                    // A retransmission: resend the last response, if any (§17.2.1, §17.2.2).
                    trace!(%key, "request retransmission absorbed");
                    if let Some(bytes) = tx.last_response.clone() {
                        let to = tx.peer;
                        self.send(to, bytes);
                    }
                    return;
                }
                if self.at_capacity() {
                    warn!(%key, "transaction limit reached; request dropped");
                    return;
                }
                let invite = req.method == Method::Invite;
                let (call_id, cseq) = call_id_cseq(&req.headers);
                let mut tx = ServerTx {
                    peer,
                    invite,
                    state: ServerState::Trying,
                    last_response: None,
                    to_tag: None,
                    call_id,
                    cseq,
                    acked: false,
                    template: None,
                    cancelled: false,
                    retransmit_at: None,
                    retransmit_interval: self.config.t1,
                    timeout_at: None,
                };
                if invite {
                    // RFC 3261 §17.2.1: 100 Trying at once.
                    let template = make_response(&req, 100, None, None);
                    let trying = print_message(&template.clone().into());
                    tx.state = ServerState::Proceeding;
                    tx.last_response = Some(trying.clone());
                    tx.template = Some(template);
                    tx.timeout_at = Some(now + INVITE_PROCEEDING_LIMIT);
                    self.send(peer, trying);
                } else {
                    // Bound: a TU that never answers does not pin the transaction forever.
                    tx.timeout_at = Some(now + self.config.t1x64());
                }
                self.servers.insert(key.clone(), tx);
                self.events.push_back(Event::Request {
                    key,
                    peer,
                    request: req,
                });
            }
        }
    }

    fn on_ack(&mut self, now: Instant, peer: Peer, invite_key: ServerKey, req: Request) {
        // ACK with the INVITE's branch: the ACK for a non-2xx final (§17.2.1), or a 2xx ACK
        // from a peer that reuses the branch.
        if let Some(tx) = self.servers.get_mut(&invite_key) {
            match tx.state {
                ServerState::Completed => {
                    tx.state = ServerState::Confirmed;
                    tx.retransmit_at = None;
                    if tx.peer.transport.is_reliable() {
                        self.servers.remove(&invite_key);
                    } else {
                        tx.timeout_at = Some(now + self.config.t4); // Timer I
                    }
                    return;
                }
                ServerState::Confirmed => return,
                ServerState::Accepted => {
                    if !tx.acked {
                        tx.acked = true;
                        tx.retransmit_at = None;
                        self.events.push_back(Event::Ack { peer, request: req });
                    }
                    return;
                }
                ServerState::Trying | ServerState::Proceeding => {}
            }
        }
        // ACK for a 2xx: its own branch; matched by Call-ID and CSeq number (§13.3.1.4).
        let (call_id, cseq) = call_id_cseq(&req.headers);
        if let Some(key) = self.ack_index.get(&(call_id, cseq)).cloned() {
            if let Some(tx) = self.servers.get_mut(&key) {
                if !tx.acked {
                    tx.acked = true;
                    tx.retransmit_at = None;
                    self.events.push_back(Event::Ack { peer, request: req });
                }
                return;
            }
        }
        self.events.push_back(Event::Ack { peer, request: req });
    }

    fn on_cancel(&mut self, now: Instant, peer: Peer, key: ServerKey, req: Request) {
        if let Some(tx) = self.servers.get(&key) {
            if let Some(bytes) = tx.last_response.clone() {
                let to = tx.peer;
                self.send(to, bytes);
            }
            return;
        }
        if self.at_capacity() {
            warn!(%key, "transaction limit reached; CANCEL dropped");
            return;
        }
        // RFC 3261 §9.2: the CANCEL matches the INVITE with the same branch (and sent-by).
        let invite_key = ServerKey(TxKey {
            method: Method::Invite,
            ..key.0.clone()
        });
        let t1x64 = self.config.t1x64();
        let (code, cancelled, to_tag) = match self.servers.get_mut(&invite_key) {
            Some(inv) if inv.invite => {
                let pending = matches!(inv.state, ServerState::Proceeding);
                if pending && !inv.cancelled {
                    // The TU should answer 487 now; if it does not, the layer will.
                    inv.cancelled = true;
                    let limit = now + t1x64;
                    inv.timeout_at = Some(inv.timeout_at.map_or(limit, |t| t.min(limit)));
                }
                (200, pending, inv.to_tag.clone())
            }
            _ => (481, false, None),
        };
        let resp = print_message(&make_response(&req, code, None, to_tag.as_deref()).into());
        let (call_id, cseq) = call_id_cseq(&req.headers);
        let reliable = peer.transport.is_reliable();
        if !reliable {
            self.servers.insert(
                key,
                ServerTx {
                    peer,
                    invite: false,
                    state: ServerState::Completed,
                    last_response: Some(resp.clone()),
                    to_tag,
                    call_id,
                    cseq,
                    acked: false,
                    template: None,
                    cancelled: false,
                    retransmit_at: None,
                    retransmit_interval: self.config.t1,
                    timeout_at: Some(now + self.config.t1x64()), // Timer J
                },
            );
        }
        self.send(peer, resp);
        if cancelled {
            self.events.push_back(Event::Cancelled {
                invite: invite_key,
                peer,
                cancel: req,
            });
        }
    }

    fn on_response(&mut self, now: Instant, resp: Response) {
        let Some(key) = TxKey::for_response(&resp).map(ClientKey) else {
            debug!("response without a usable Via/CSeq; dropped");
            return;
        };
        let code = resp.status_code.code();
        let config = self.config;
        let Some(tx) = self.clients.get_mut(&key) else {
            if key.0.method == Method::Invite && (200..300).contains(&code) {
                // A late 2xx (after Timer M): the TU must still ACK it (§13.2.2.4).
                self.events.push_back(Event::Response {
                    key,
                    response: resp,
                });
            } else {
                trace!(%key, code, "stray response dropped");
            }
            return;
        };
        let reliable = tx.peer.transport.is_reliable();
        if tx.invite {
            match tx.state {
                ClientState::Calling | ClientState::Proceeding => {
                    tx.retransmit_at = None;
                    if code < 200 {
                        tx.state = ClientState::Proceeding;
                        let cancel = tx.pending_cancel.take();
                        tx.timeout_at = match (&cancel, &tx.cancel_key) {
                            // §9.1: the CANCEL may go now; give the INVITE 64*T1 to end.
                            (Some(_), _) => Some(now + config.t1x64()),
                            // A CANCEL is already out: keep its deadline.
                            (None, Some(_)) => tx.timeout_at,
                            (None, None) => Some(now + INVITE_PROCEEDING_LIMIT),
                        };
                        let peer = tx.peer;
                        self.events.push_back(Event::Response {
                            key,
                            response: resp,
                        });
                        if let Some(cancel) = cancel {
                            self.start_client(now, peer, cancel);
                        }
                    } else if code < 300 {
                        tx.state = ClientState::Accepted;
                        tx.pending_cancel = None;
                        tx.timeout_at = Some(now + config.t1x64()); // Timer M (RFC 6026)
                        self.events.push_back(Event::Response {
                            key,
                            response: resp,
                        });
                    } else {
                        // §17.1.1.3: the transaction ACKs a non-2xx final itself.
                        let ack = print_message(&build_ack(&tx.request, &resp).into());
                        let peer = tx.peer;
                        tx.state = ClientState::Completed;
                        tx.pending_cancel = None;
                        tx.ack = Some(ack.clone());
                        if reliable {
                            self.clients.remove(&key);
                        } else {
                            tx.timeout_at = Some(now + TIMER_D.max(config.t1x64()));
                        }
                        self.send(peer, ack);
                        self.events.push_back(Event::Response {
                            key,
                            response: resp,
                        });
                    }
                }
                ClientState::Accepted => {
                    if (200..300).contains(&code) {
                        self.events.push_back(Event::Response {
                            key,
                            response: resp,
                        });
                    }
                }
                ClientState::Completed => {
                    if code >= 300 {
                        if let Some(ack) = tx.ack.clone() {
                            let peer = tx.peer;
                            self.send(peer, ack);
                        }
                    }
                }
            }
        } else {
            match tx.state {
                ClientState::Calling | ClientState::Proceeding => {
                    if code < 200 {
                        tx.state = ClientState::Proceeding;
                    } else {
                        tx.state = ClientState::Completed;
                        tx.retransmit_at = None;
                        if reliable {
                            self.clients.remove(&key);
                        } else {
                            tx.timeout_at = Some(now + config.t4); // Timer K
                        }
                    }
                    self.events.push_back(Event::Response {
                        key,
                        response: resp,
                    });
                }
                ClientState::Accepted | ClientState::Completed => {}
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // TU actions
    // -----------------------------------------------------------------------------------------

    /// Sends `response` in server transaction `key` to the peer the request came from.
    ///
    /// Provisional responses keep the transaction open; a final one completes it. For an
    /// INVITE, a 2xx starts the 2xx retransmission (unreliable transports) and the ACK wait; a
    /// further 2xx in that state replaces the one being retransmitted. Errors:
    /// [`Error::UnknownTransaction`], or [`Error::InvalidState`] for a response the
    /// transaction can no longer send.
    pub fn respond(
        &mut self,
        now: Instant,
        key: &ServerKey,
        response: Response,
    ) -> Result<(), Error> {
        let config = self.config;
        let tx = self.servers.get_mut(key).ok_or(Error::UnknownTransaction)?;
        let code = response.status_code.code();
        let refuse = || Error::InvalidState {
            code,
            state: tx.state.name(),
        };
        if !(100..700).contains(&code) {
            return Err(refuse());
        }
        let allowed = match tx.state {
            ServerState::Trying | ServerState::Proceeding => true,
            ServerState::Accepted => (200..300).contains(&code),
            ServerState::Completed | ServerState::Confirmed => false,
        };
        if !allowed {
            return Err(refuse());
        }
        if let Some(tag) = message::to_tag(&response.headers) {
            tx.to_tag = Some(tag);
        }
        let unreliable = !tx.peer.transport.is_reliable();
        if code >= 200 {
            tx.template = None;
        }
        let bytes = print_message(&response.into());
        tx.last_response = Some(bytes.clone());
        let peer = tx.peer;
        if code < 200 {
            tx.state = ServerState::Proceeding;
        } else if tx.invite && code < 300 {
            // §13.3.1.4: retransmit the 2xx until the ACK; give up after 64*T1.
            if tx.state != ServerState::Accepted {
                tx.state = ServerState::Accepted;
                tx.acked = false;
                tx.retransmit_interval = config.t1;
                tx.timeout_at = Some(now + config.t1x64());
                self.ack_index
                    .insert((tx.call_id.clone(), tx.cseq), key.clone());
            }
            tx.retransmit_at = (unreliable && !tx.acked).then(|| now + tx.retransmit_interval);
        } else if tx.invite {
            // §17.2.1: Timer G (unreliable) and Timer H.
            tx.state = ServerState::Completed;
            tx.retransmit_interval = config.t1;
            tx.retransmit_at = unreliable.then(|| now + config.t1);
            tx.timeout_at = Some(now + config.t1x64());
        } else {
            // §17.2.2: Timer J, zero on reliable transports.
            tx.state = ServerState::Completed;
            tx.retransmit_at = None;
            if unreliable {
                tx.timeout_at = Some(now + config.t1x64());
            } else {
                self.servers.remove(key);
            }
        }
        self.send(peer, bytes);
        Ok(())
    }

    /// Sends `request` to `peer` in a new client transaction (INVITE or non-INVITE) and
    /// returns its key. The request must carry a top Via with a fresh branch (one is added
    /// when missing). An ACK is sent statelessly (no transaction). When the transaction cap
    /// is reached nothing is sent and [`Event::Timeout`] is reported for the key.
    pub fn send_request(&mut self, now: Instant, peer: Peer, mut request: Request) -> ClientKey {
        ensure_branch(&mut request, peer.transport);
        let key = match TxKey::for_sent_request(&request) {
            Some(k) => ClientKey(k),
            None => ClientKey(TxKey {
                branch: new_branch(),
                method: request.method,
                sent_by: String::new(),
            }),
        };
        if request.method == Method::Ack {
            self.send_stateless(peer, request.into());
            return key;
        }
        if self.at_capacity() && !self.clients.contains_key(&key) {
            warn!(%key, "transaction limit reached; request not sent");
            self.events.push_back(Event::Timeout { key: key.clone() });
            return key;
        }
        self.start_client(now, peer, request)
    }

    fn start_client(&mut self, now: Instant, peer: Peer, request: Request) -> ClientKey {
        let key = ClientKey(TxKey::for_sent_request(&request).unwrap_or_else(|| TxKey {
            branch: new_branch(),
            method: request.method,
            sent_by: String::new(),
        }));
        let bytes = print_message(&request.clone().into());
        let unreliable = !peer.transport.is_reliable();
        let tx = ClientTx {
            peer,
            invite: request.method == Method::Invite,
            state: ClientState::Calling,
            request,
            bytes: bytes.clone(),
            ack: None,
            pending_cancel: None,
            cancel_key: None,
            // Timer A (INVITE) or E (non-INVITE).
            retransmit_at: unreliable.then(|| now + self.config.t1),
            retransmit_interval: self.config.t1,
            // Timer B or F.
            timeout_at: Some(now + self.config.t1x64()),
        };
        self.clients.insert(key.clone(), tx);
        self.send(peer, bytes);
        key
    }

    /// Cancels a pending INVITE client transaction (RFC 3261 §9.1): builds the CANCEL (same
    /// Request-URI, Call-ID, From, To, CSeq number and top Via as the INVITE) and sends it in
    /// its own transaction, whose key is returned. If no provisional response has arrived
    /// yet, the CANCEL waits for one (§9.1 forbids sending it earlier); if the INVITE ends
    /// first it is never sent. Once sent, the INVITE gets 64*T1 to end before
    /// [`Event::Timeout`]. Returns `None` when `key` is not an INVITE awaiting a final
    /// response; calling it twice returns the same CANCEL key.
    pub fn cancel(&mut self, now: Instant, key: &ClientKey) -> Option<ClientKey> {
        let t1x64 = self.config.t1x64();
        let tx = self.clients.get_mut(key)?;
        if !tx.invite || !matches!(tx.state, ClientState::Calling | ClientState::Proceeding) {
            return None;
        }
        if let Some(k) = &tx.cancel_key {
            return Some(k.clone());
        }
        let cancel = build_cancel(&tx.request);
        let cancel_key = ClientKey(TxKey::for_sent_request(&cancel).unwrap_or_else(|| TxKey {
            method: Method::Cancel,
            ..key.0.clone()
        }));
        tx.cancel_key = Some(cancel_key.clone());
        if tx.state == ClientState::Calling {
            tx.pending_cancel = Some(cancel);
            return Some(cancel_key);
        }
        tx.timeout_at = Some(now + t1x64);
        let peer = tx.peer;
        Some(self.start_client(now, peer, cancel))
    }

    // -----------------------------------------------------------------------------------------
    // Timers
    // -----------------------------------------------------------------------------------------

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<ServerKey> = self
            .servers
            .iter()
            .filter(|(_, tx)| tx.deadline().is_some_and(|d| d <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            self.server_timers(now, &key);
        }
        let due: Vec<ClientKey> = self
            .clients
            .iter()
            .filter(|(_, tx)| tx.deadline().is_some_and(|d| d <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            self.client_timers(now, &key);
        }
    }

    fn server_timers(&mut self, now: Instant, key: &ServerKey) {
        let config = self.config;
        // A few rounds at most: a late call may find several retransmissions due.
        for _ in 0..16 {
            let Some(tx) = self.servers.get_mut(key) else {
                return;
            };
            let what = due(now, tx.timeout_at, tx.retransmit_at);
            if what == Due::Timeout {
                if tx.invite && tx.state == ServerState::Proceeding {
                    self.final_by_layer(now, key);
                    continue;
                }
                let Some(tx) = self.servers.remove(key) else {
                    return;
                };
                match tx.state {
                    ServerState::Completed if tx.invite => {
                        debug!(%key, "Timer H: no ACK for the final response");
                        self.events
                            .push_back(Event::ServerTimeout { key: key.clone() });
                    }
                    ServerState::Accepted => {
                        let index = (tx.call_id.clone(), tx.cseq);
                        if self.ack_index.get(&index) == Some(key) {
                            self.ack_index.remove(&index);
                        }
                        if !tx.acked {
                            debug!(%key, "no ACK for the 2xx within 64*T1");
                            self.events.push_back(Event::AckTimeout {
                                key: key.clone(),
                                call_id: tx.call_id,
                            });
                        }
                    }
                    ServerState::Trying | ServerState::Proceeding => {
                        debug!(%key, "TU never answered; transaction dropped");
                    }
                    _ => {}
                }
                return;
            }
            if what == Due::Nothing {
                return;
            }
            // Timer G, or the 2xx retransmission: interval doubles up to T2.
            tx.retransmit_interval = (tx.retransmit_interval * 2).min(config.t2);
            tx.retransmit_at = Some(now + tx.retransmit_interval);
            let (peer, bytes) = (tx.peer, tx.last_response.clone());
            if let Some(bytes) = bytes {
                self.send(peer, bytes);
            }
        }
    }

    /// The TU never sent a final response to an INVITE: answer 487 (after a CANCEL) or 408,
    /// then run the transaction as if the TU had sent it.
    fn final_by_layer(&mut self, now: Instant, key: &ServerKey) {
        let Some(tx) = self.servers.get_mut(key) else {
            return;
        };
        let code = if tx.cancelled { 487 } else { 408 };
        let Some(mut resp) = tx.template.take() else {
            self.servers.remove(key);
            return;
        };
        warn!(%key, code, "no final response from the TU; the layer answers");
        resp.status_code = message::status_code(code, None);
        if let Some(Header::To(to)) = resp.headers.iter_mut().find(|h| matches!(h, Header::To(_))) {
            if tag_of(to.value()).is_none() {
                let tagged = format!("{};tag={}", to.value(), message::new_tag());
                to.replace(tagged);
            }
        }
        // Never fails: the transaction exists and is in Proceeding.
        if self.respond(now, key, resp).is_err() {
            self.servers.remove(key);
        }
    }

    fn client_timers(&mut self, now: Instant, key: &ClientKey) {
        let config = self.config;
        for _ in 0..16 {
            let Some(tx) = self.clients.get_mut(key) else {
                return;
            };
            let what = due(now, tx.timeout_at, tx.retransmit_at);
            if what == Due::Timeout {
                let Some(tx) = self.clients.remove(key) else {
                    return;
                };
                if matches!(tx.state, ClientState::Calling | ClientState::Proceeding) {
                    debug!(%key, "client transaction timed out");
                    self.events.push_back(Event::Timeout { key: key.clone() });
                }
                return;
            }
            if what == Due::Nothing {
                return;
            }
            tx.retransmit_interval = if tx.invite {
                // Timer A doubles without a cap (§17.1.1.2).
                tx.retransmit_interval * 2
            } else if tx.state == ClientState::Proceeding {
                // §17.1.2.2: in Proceeding, Timer E fires every T2.
                config.t2
            } else {
                (tx.retransmit_interval * 2).min(config.t2)
            };
            tx.retransmit_at = Some(now + tx.retransmit_interval);
            let (peer, bytes) = (tx.peer, tx.bytes.clone());
            self.send(peer, bytes);
        }
    }
}

/// Call-ID and CSeq number of a message (empty / 0 when absent).
fn call_id_cseq(headers: &rsip::Headers) -> (String, u32) {
    (
        message::call_id(headers).unwrap_or_default(),
        message::cseq(headers).map(|(n, _)| n).unwrap_or_default(),
    )
}

/// RFC 3261 §18.2.1 / RFC 3581 §4: note where the request really came from in its top Via
/// (`received=` when the sent-by host differs from the source address, `rport=` when the
/// client asked for it). Other parameters are kept as written.
fn stamp_via(req: &mut Request, from: SocketAddr) {
    let Some(Header::Via(via)) = req.headers.iter_mut().find(|h| matches!(h, Header::Via(_)))
    else {
        return;
    };
    let value = via.value().to_string();
    let elements = split_list(&value);
    let Some(top) = elements.first().copied() else {
        return;
    };
    let Some(parsed) = TopVia::parse(top) else {
        return;
    };
    let ip = from.ip().to_string();
    let wants_rport = parsed.param("rport").is_some_and(str::is_empty);
    if !wants_rport && parsed.host() == ip {
        return;
    }
    let mut items = split_unquoted(top, ';').into_iter();
    let mut new_top = items.next().unwrap_or_default().trim_end().to_string();
    for item in items {
        let name = item.split('=').next().unwrap_or_default().trim();
        if name.eq_ignore_ascii_case("received") {
            continue;
        }
        if name.eq_ignore_ascii_case("rport") && wants_rport {
            new_top.push_str(&format!(";rport={}", from.port()));
        } else {
            new_top.push(';');
            new_top.push_str(item.trim());
        }
    }
    new_top.push_str(&format!(";received={ip}"));
    let mut all = vec![new_top];
    all.extend(elements.iter().skip(1).map(|s| s.to_string()));
    via.replace(all.join(", "));
}

/// Adds a branch to the top Via (or a whole Via) when the TU forgot it.
fn ensure_branch(req: &mut Request, transport: Transport) {
    match message::top_via(&req.headers) {
        Some(v) if v.branch.is_some() => {}
        Some(_) => {
            if let Some(Header::Via(via)) =
                req.headers.iter_mut().find(|h| matches!(h, Header::Via(_)))
            {
                let value = via.value().to_string();
                let mut elements: Vec<String> =
                    split_list(&value).iter().map(|s| s.to_string()).collect();
                if let Some(top) = elements.first_mut() {
                    top.push_str(&format!(";branch={}", new_branch()));
                }
                via.replace(elements.join(", "));
            }
        }
        None => {
            let via = Header::Via(rsip::headers::Via::new(format!(
                "SIP/2.0/{transport} invalid.invalid;branch={};rport",
                new_branch()
            )));
            let mut headers = vec![via];
            headers.extend(req.headers.iter().cloned());
            req.headers = headers.into();
        }
    }
}

/// The top Via element of a request, as a header.
fn top_via_header(req: &Request) -> Option<Header> {
    req.headers.iter().find_map(|h| match h {
        Header::Via(v) => split_list(v.value())
            .first()
            .map(|top| Header::Via(rsip::headers::Via::new(top.to_string()))),
        _ => None,
    })
}

fn first_of(req: &Request, pick: fn(&Header) -> bool) -> Option<Header> {
    req.headers.iter().find(|h| pick(h)).cloned()
}

/// RFC 3261 §17.1.1.3: the ACK for a non-2xx final response.
fn build_ack(invite: &Request, resp: &Response) -> Request {
    let mut headers: Vec<Header> = Vec::new();
    headers.extend(top_via_header(invite));
    headers.push(Header::MaxForwards(70u32.into()));
    headers.extend(
        invite
            .headers
            .iter()
            .filter(|h| matches!(h, Header::Route(_)))
            .cloned(),
    );
    headers.extend(first_of(invite, |h| matches!(h, Header::From(_))));
    headers.extend(
        resp.headers
            .iter()
            .find(|h| matches!(h, Header::To(_)))
            .cloned()
            .or_else(|| first_of(invite, |h| matches!(h, Header::To(_)))),
    );
    headers.extend(first_of(invite, |h| matches!(h, Header::CallId(_))));
    let seq = message::cseq(&invite.headers).map(|(n, _)| n).unwrap_or(1);
    headers.push(Header::CSeq(rsip::headers::CSeq::new(format!("{seq} ACK"))));
    headers.push(Header::ContentLength(0u32.into()));
    Request {
        method: Method::Ack,
        uri: invite.uri.clone(),
        version: rsip::Version::V2,
        headers: headers.into(),
        body: Vec::new(),
    }
}

/// RFC 3261 §9.1: the CANCEL for an INVITE.
fn build_cancel(invite: &Request) -> Request {
    let mut headers: Vec<Header> = Vec::new();
    headers.extend(top_via_header(invite));
    headers.push(Header::MaxForwards(70u32.into()));
    headers.extend(
        invite
            .headers
            .iter()
            .filter(|h| matches!(h, Header::Route(_)))
            .cloned(),
    );
    headers.extend(first_of(invite, |h| matches!(h, Header::From(_))));
    headers.extend(first_of(invite, |h| matches!(h, Header::To(_))));
    headers.extend(first_of(invite, |h| matches!(h, Header::CallId(_))));
    let seq = message::cseq(&invite.headers).map(|(n, _)| n).unwrap_or(1);
    headers.push(Header::CSeq(rsip::headers::CSeq::new(format!(
        "{seq} CANCEL"
    ))));
    headers.push(Header::ContentLength(0u32.into()));
    Request {
        method: Method::Cancel,
        uri: invite.uri.clone(),
        version: rsip::Version::V2,
        headers: headers.into(),
        body: Vec::new(),
    }
}

#[cfg(test)]
mod tests;
