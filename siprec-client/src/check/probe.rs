//! The checker's user agent: one SIP transport set ([`SipTransports`]) and one RFC 3261
//! transaction layer ([`TransactionLayer`]) driven from the checker's own task. It sends what
//! a check asks for, answers what the SRS sends on its own (200 to BYE, OPTIONS, UPDATE…),
//! and keeps every response it saw so a check can look at messages sent outside any
//! transaction (deliberately broken requests).
//!
//! Every request goes to the address the SRS URI resolved to, over the chosen transport (the
//! Request-URI of in-dialog requests is the SRS's Contact, as RFC 3261 §12.2.1.1 says; only
//! the next hop is pinned, which is what a checker aimed at one SRS wants).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use siprec_sip::message::{
    call_id, cseq, make_response, parse_message, print_message, status_reason,
};
use siprec_sip::rsip::{self, Method, Request, Response, SipMessage};
use siprec_sip::transaction::{
    ClientKey, Event, Peer, TimerConfig, TransactionLayer, Transmit, Transport,
};
use siprec_sip_tokio::{Inbound, ListenAddr, SipTransports, TlsClient, TlsConfig};
use tokio::sync::mpsc;

use crate::Error;

/// A copy of a 2xx arriving this soon after our ACK may have crossed it on the wire; later
/// ones mean the ACK was not taken (the first retransmission is due T1 = 500 ms after the 2xx).
pub const ACK_CROSSING: Duration = Duration::from_millis(200);

/// An ACK we sent for a 2xx, kept to answer the 2xx's retransmissions.
#[derive(Debug)]
struct SentAck {
    /// The ACK as last sent.
    request: Request,
    /// When it was first sent.
    first_sent: std::time::Instant,
    /// Copies of its 2xx that came more than [`ACK_CROSSING`] after it (the SRS did not
    /// take the ACK).
    late_copies: u32,
}

/// What came back for one request.
#[derive(Debug, Clone, Default)]
pub struct Exchange {
    /// Provisional responses, in order.
    pub provisional: Vec<Response>,
    /// The final response, if one came in time.
    pub final_response: Option<Response>,
    /// Why there is no final response: a timeout or a transport error.
    pub error: Option<String>,
}

impl Exchange {
    /// The final status code, if any.
    pub fn code(&self) -> Option<u16> {
        self.final_response.as_ref().map(|r| r.status_code.code())
    }

    /// `true` for a 2xx final response.
    pub fn is_success(&self) -> bool {
        self.code().is_some_and(|c| (200..300).contains(&c))
    }

    /// "200 OK", "no response within 5 s" or the transport error, for reports.
    pub fn seen(&self) -> String {
        match (&self.final_response, &self.error) {
            (Some(r), _) => status_line(r),
            (None, Some(e)) => e.clone(),
            (None, None) => "no final response".to_string(),
        }
    }
}

/// `"488 Not Acceptable Here"`.
pub fn status_line(r: &Response) -> String {
    format!("{} {}", r.status_code.code(), status_reason(&r.status_code))
}

/// The checker's SIP user agent towards one SRS address.
pub struct Probe {
    transports: SipTransports,
    inbound: mpsc::Receiver<Inbound>,
    layer: TransactionLayer,
    /// Where every request goes.
    pub target: Peer,
    /// Our address for Via and Contact.
    pub local: SocketAddr,
    /// Every response seen, in arrival order.
    pub responses: Vec<Response>,
    /// Requests the SRS sent us (each answered), in arrival order.
    pub from_srs: Vec<Request>,
    /// Responses to our client transactions, by transaction.
    by_key: HashMap<ClientKey, Vec<Response>>,
    /// Transactions that ended without a final response.
    timed_out: Vec<ClientKey>,
    /// ACKs sent for 2xx responses, by (Call-ID, CSeq number): re-sent when the 2xx is.
    acks: HashMap<(String, u32), SentAck>,
    /// Transport errors on send.
    send_errors: Vec<String>,
    /// Longest a send may take (a TCP or TLS connect to a host that drops SYNs).
    pub send_timeout: Duration,
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe")
            .field("target", &self.target)
            .field("local", &self.local)
            .finish()
    }
}

impl Probe {
    /// A user agent on `local_ip` (UDP and TCP listeners on free ports, so the SRS can reach
    /// our Contact) sending to `target`. For TLS the connection is opened here, verifying
    /// the certificate against `server_name`.
    pub async fn open(
        local_ip: IpAddr,
        target: Peer,
        server_name: &str,
        tls: Option<TlsClient>,
    ) -> Result<Probe, Error> {
        let listen: Vec<ListenAddr> = ["udp", "tcp"]
            .iter()
            .map(|t| format!("{t}:{}", SocketAddr::new(local_ip, 0)).parse())
            .collect::<Result<_, _>>()
            .map_err(Error::Transport)?;
        let cfg = TlsConfig {
            server: None,
            client: tls,
        };
        let (transports, inbound) = SipTransports::bind(&listen, cfg)
            .await
            .map_err(Error::Transport)?;
        let addr_of = |t: Transport| {
            transports
                .local_addrs()
                .iter()
                .find(|l| l.transport == t)
                .map(|l| l.addr)
        };
        let local = match target.transport {
            Transport::Udp => addr_of(Transport::Udp),
            Transport::Tcp => addr_of(Transport::Tcp),
            Transport::Tls => Some(
                transports
                    .connect(target.addr, server_name)
                    .await
                    .map_err(Error::Transport)?,
            ),
        }
        .ok_or_else(|| Error::Usage("no local address for the SIP transport".into()))?;
        Ok(Probe {
            transports,
            inbound,
            layer: TransactionLayer::new(TimerConfig::default()),
            target,
            local,
            responses: Vec::new(),
            from_srs: Vec::new(),
            by_key: HashMap::new(),
            timed_out: Vec::new(),
            acks: HashMap::new(),
            send_errors: Vec::new(),
            send_timeout: Duration::from_secs(5),
        })
    }

    /// Sends `request` in a client transaction (retransmitted over UDP, RFC 3261 §17.1) and
    /// waits up to `wait` for its final response.
    pub async fn request(&mut self, request: Request, wait: Duration) -> Exchange {
        let key = self.start(request);
        self.finish(&key, wait).await
    }

    /// Starts a client transaction; [`Probe::finish`] waits for it.
    pub fn start(&mut self, request: Request) -> ClientKey {
        self.layer
            .send_request(Instant::now(), self.target, request)
    }

    /// Cancels a pending INVITE (RFC 3261 §9.1; the CANCEL waits for a provisional response).
    pub fn cancel(&mut self, invite: &ClientKey) -> Option<ClientKey> {
        self.layer.cancel(Instant::now(), invite)
    }

    /// Waits up to `wait` for the final response of `key`.
    pub async fn finish(&mut self, key: &ClientKey, wait: Duration) -> Exchange {
        let deadline = tokio::time::Instant::now() + wait;
        let errors_before = self.send_errors.len();
        loop {
            self.flush().await;
            let got = self.by_key.get(key).cloned().unwrap_or_default();
            let (prov, fin): (Vec<Response>, Vec<Response>) =
                got.into_iter().partition(|r| r.status_code.code() < 200);
            if let Some(f) = fin.into_iter().next() {
                return Exchange {
                    provisional: prov,
                    final_response: Some(f),
                    error: None,
                };
            }
            let error = if self.timed_out.contains(key) {
                Some("no final response (transaction timed out)".to_string())
            } else if self.send_errors.len() > errors_before {
                self.send_errors.last().cloned()
            } else if tokio::time::Instant::now() >= deadline {
                Some(format!("no final response within {}", secs(wait)))
            } else {
                None
            };
            if let Some(error) = error {
                return Exchange {
                    provisional: prov,
                    final_response: None,
                    error: Some(error),
                };
            }
            self.pump(deadline).await;
        }
    }

    /// Sends an ACK for a 2xx (and re-sends it when the 2xx is retransmitted).
    pub async fn ack(&mut self, ack: Request) {
        if let Some(id) = call_id(&ack.headers) {
            if let Some((n, _)) = cseq(&ack.headers) {
                self.acks
                    .entry((id, n))
                    .and_modify(|a| a.request = ack.clone())
                    .or_insert_with(|| SentAck {
                        request: ack.clone(),
                        first_sent: std::time::Instant::now(),
                        late_copies: 0,
                    });
            }
        }
        self.layer.send_request(Instant::now(), self.target, ack);
        self.flush().await;
    }

    /// Sends bytes outside any transaction (a deliberately broken request).
    pub async fn send_raw(&mut self, payload: Vec<u8>) -> Result<(), ProbeError> {
        let send = self.transports.send(Transmit {
            peer: self.target,
            payload,
        });
        match tokio::time::timeout(self.send_timeout, send).await {
            Ok(r) => r.map_err(ProbeError::Send),
            Err(_) => Err(ProbeError::SendTimeout),
        }
    }

    /// Waits up to `wait` for a final response with this Call-ID and CSeq number (to a
    /// request sent with [`Probe::send_raw`]).
    pub async fn wait_response(
        &mut self,
        call: &str,
        seq: u32,
        wait: Duration,
    ) -> Option<Response> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let found = self.responses.iter().find(|r| {
                r.status_code.code() >= 200
                    && call_id(&r.headers).as_deref() == Some(call)
                    && cseq(&r.headers).map(|(n, _)| n) == Some(seq)
            });
            if let Some(r) = found {
                return Some(r.clone());
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            self.pump(deadline).await;
        }
    }

    /// Keeps the user agent running (answering the SRS, absorbing retransmissions) for `d`.
    pub async fn idle(&mut self, d: Duration) {
        let deadline = tokio::time::Instant::now() + d;
        while tokio::time::Instant::now() < deadline {
            self.flush().await;
            self.pump(deadline).await;
        }
        self.flush().await;
    }

    /// Requests of `method` the SRS sent in the dialog with this Call-ID.
    pub fn srs_requests(&self, call: &str, method: Method) -> usize {
        self.from_srs
            .iter()
            .filter(|r| r.method == method && call_id(&r.headers).as_deref() == Some(call))
            .count()
    }

    /// Stops every socket and task.
    pub fn close(&self) {
        self.transports.close();
    }

    /// Sends what the transaction layer queued.
    async fn flush(&mut self) {
        while let Some(t) = self.layer.poll_transmit() {
            match tokio::time::timeout(self.send_timeout, self.transports.send(t)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => self.send_errors.push(format!("cannot send: {e}")),
                Err(_) => self.send_errors.push(format!(
                    "cannot send: no connection within {}",
                    secs(self.send_timeout)
                )),
            }
        }
    }

    /// Waits for one inbound message or the next timer (at most until `deadline`) and
    /// handles it.
    async fn pump(&mut self, deadline: tokio::time::Instant) {
        let timer = self
            .layer
            .poll_timeout()
            .map(|t| tokio::time::Instant::from_std(t).min(deadline))
            .unwrap_or(deadline);
        tokio::select! {
            msg = self.inbound.recv() => {
                let Some(msg) = msg else {
                    // Transports closed: nothing more will come.
                    tokio::time::sleep_until(timer).await;
                    return;
                };
                let Ok(parsed) = parse_message(&msg.bytes) else {
                    return;
                };
                if let SipMessage::Response(r) = &parsed {
                    self.responses.push(r.clone());
                }
                self.layer.handle_message(Instant::now(), msg.peer, parsed);
            }
            _ = tokio::time::sleep_until(timer) => {
                self.layer.handle_timeout(Instant::now());
            }
        }
        self.drain_events().await;
    }

    async fn drain_events(&mut self) {
        while let Some(event) = self.layer.poll_event() {
            match event {
                Event::Response { key, response } => {
                    let code = response.status_code.code();
                    if key.tx_key().method == Method::Invite && (200..300).contains(&code) {
                        self.resend_ack(&response);
                    }
                    let seen = self.by_key.entry(key).or_default();
                    // A retransmitted 2xx is not a second answer.
                    if !seen.iter().any(|r| r.status_code.code() >= 200) || code < 200 {
                        seen.push(response);
                    }
                }
                Event::Timeout { key } => self.timed_out.push(key),
                Event::Request { key, request, .. } => {
                    let code = if request.method == Method::Invite {
                        // The checker never takes an offer from the SRS.
                        488
                    } else {
                        200
                    };
                    let resp = make_response(&request, code, None, None);
                    let _ = self.layer.respond(Instant::now(), &key, resp);
                    self.from_srs.push(request);
                }
                _ => {}
            }
        }
        self.flush().await;
    }

    /// Copies of the 2xx to INVITE (`call`, `cseq`) that came more than [`ACK_CROSSING`]
    /// after our ACK: an SRS that took the ACK stops retransmitting (RFC 3261 §13.3.1.4).
    pub fn retransmitted_after_ack(&self, call: &str, cseq: u32) -> u32 {
        self.acks
            .get(&(call.to_string(), cseq))
            .map_or(0, |a| a.late_copies)
    }

    fn resend_ack(&mut self, response: &Response) {
        let key = call_id(&response.headers).zip(cseq(&response.headers).map(|(n, _)| n));
        let Some(sent) = key.and_then(|k| self.acks.get_mut(&k)) else {
            return;
        };
        if sent.first_sent.elapsed() > ACK_CROSSING {
            sent.late_copies += 1;
        }
        let ack = SipMessage::Request(sent.request.clone());
        self.layer.send_stateless(self.target, ack);
    }
}

/// Why a probe step could not be taken. The checks report it as the detail of a failed or
/// skipped check, so its text is what the user reads.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    // ----- the SRS (the peer) sent something wrong, or is not reachable -----
    /// The response has no body where an SDP answer is expected.
    #[error("no body")]
    NoBody,
    /// The response's body is not `application/sdp`.
    #[error("Content-Type {0}")]
    NotSdp(String),
    /// The SDP answer cannot be parsed.
    #[error("unreadable SDP: {0}")]
    Sdp(siprec_sdp::Error),
    /// Sending to the SRS failed (connection refused or reset, TLS handshake).
    #[error("{0}")]
    Send(siprec_sip_tokio::Error),
    /// No connection to the SRS within the send timeout.
    #[error("no connection in time")]
    SendTimeout,
    // ----- our environment or our own text is wrong -----
    /// The RTP ports of a session could not be bound.
    #[error("cannot bind RTP ports: {0}")]
    RtpPorts(std::io::Error),
    /// A request the checker wrote as text is not a SIP message (a bug in a check).
    #[error("{0}")]
    Text(siprec_sip::Error),
    /// A request the checker wrote as text is a response (a bug in a check).
    #[error("not a request")]
    NotARequest,
}

/// A request from its text (the checker writes requests as they travel).
pub fn request_from_text(text: &str) -> Result<Request, ProbeError> {
    match parse_message(text.as_bytes()) {
        Ok(SipMessage::Request(r)) => Ok(r),
        Ok(SipMessage::Response(_)) => Err(ProbeError::NotARequest),
        Err(e) => Err(ProbeError::Text(e)),
    }
}

/// The bytes of a request.
pub fn request_bytes(r: &Request) -> Vec<u8> {
    print_message(&rsip::SipMessage::Request(r.clone()))
}

/// "5 s", "2.5 s".
pub fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s:.1} s")
    }
}
