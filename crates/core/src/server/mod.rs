//! The recording server (SRS) role: answers recording sessions, tracks their dialogs and media
//! plans, and tells the driver what to record. No sockets, no clock.

use siprec_rtp::srtp::SdesKey;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use rs_metadata::{Document, Recording};
use siprec_sdp::{AnswerConfig, AnsweredMedia, Format, SessionDescription};
use siprec_sip::dialog::Dialog;
use siprec_sip::message::{self, make_response};
use siprec_sip::rsip::{self, prelude::*, Header, Method};
use siprec_sip::transaction::{
    ClientKey, Event as TxEvent, Peer, ServerKey, TimerConfig, TransactionLayer, Transmit,
    Transport,
};
use tracing::{debug, info, warn};

use crate::body::{self, BodyError, ACCEPT};
use crate::channels::{map_channels, ChannelPlan};

/// Methods we answer (RFC 3261 §20.5 `Allow`).
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO";
/// Option tags we support (`siprec`: RFC 7866 §6.2; `timer`: RFC 4028).
pub const SUPPORTED: [&str; 2] = ["siprec", "timer"];

/// Configuration of the SRS core.
///
/// Defaults: RFC 3261 timers (T1 500 ms, T2 4 s, T4 5 s), 1000 sessions, codecs PCMU then PCMA,
/// media address 127.0.0.1 (the driver sets the real one), any source allowed, 100 new
/// sessions per second per source (bursts of 500), metadata up to 32 KiB.
#[derive(Debug, Clone)]
pub struct SrsConfig {
    /// SIP timers.
    pub timers: TimerConfig,
    /// Most recording sessions at once; beyond it INVITEs get 503 + Retry-After.
    pub max_sessions: usize,
    /// Codecs we record, in preference order (encoding names).
    pub codecs: Vec<String>,
    /// Address put in the SDP answer's `c=` line.
    pub media_ip: IpAddr,
    /// `Server` header value.
    pub server_name: String,
    /// Retry-After seconds on 503.
    pub retry_after: u32,
    /// Source networks allowed to send SIP; empty allows any. Requests from elsewhere get
    /// `403 Forbidden (source not allowed)`.
    pub allow_sources: Vec<ipnet::IpNet>,
    /// New recording sessions (initial INVITEs) per second allowed from one source address,
    /// as a token bucket refilled at this rate; 0 = no limit. Beyond it: `503 Rate Limited`
    /// with `Retry-After: 1`.
    pub invite_rate: f64,
    /// Burst size of the INVITE token bucket (INVITEs a source may send at once).
    pub invite_burst: u32,
    /// Largest metadata body part accepted, in bytes; larger gets `413` (RFC 3261 §21.4.11).
    pub max_metadata_bytes: usize,
    /// Whether SRTP (SDES, RFC 4568) streams are taken, and whether plain RTP is.
    pub srtp: SrtpPolicy,
}

/// What the SRS does with SRTP offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SrtpPolicy {
    /// `RTP/SAVP` streams are declined (port 0 with a reason).
    Off,
    /// Both `RTP/AVP` and `RTP/SAVP` (with a usable `a=crypto`) are recorded.
    #[default]
    Optional,
    /// Only `RTP/SAVP` is recorded: `RTP/AVP` streams are declined (an offer with nothing
    /// else gets 488).
    Required,
}

/// Most source addresses whose INVITE buckets are remembered; beyond it full buckets are
/// forgotten first.
const MAX_BUCKETS: usize = 10_000;

impl Default for SrsConfig {
    fn default() -> Self {
        SrsConfig {
            timers: TimerConfig::default(),
            max_sessions: 1000,
            codecs: vec!["PCMU".into(), "PCMA".into()],
            media_ip: IpAddr::from([127, 0, 0, 1]),
            server_name: concat!("siprec-rs-srs/", env!("CARGO_PKG_VERSION")).into(),
            retry_after: 5,
            allow_sources: Vec::new(),
            invite_rate: 100.0,
            invite_burst: 500,
            max_metadata_bytes: 32 * 1024,
            srtp: SrtpPolicy::Optional,
        }
    }
}

/// Hands out local RTP ports. The driver implements it (binding sockets); tests use a counter.
pub trait PortAllocator: Send {
    /// One free RTP port, or `None` when the range is exhausted.
    fn allocate(&mut self) -> Option<u16>;
    /// Gives a port back.
    fn release(&mut self, port: u16);
}

/// Identifies a recording session inside one [`SrsCore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

/// What ended a recording session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The SRC sent BYE.
    ByeFromSrc,
    /// No RTP for the media timeout while not paused; we sent BYE.
    MediaTimeout,
    /// The server is shutting down; we sent BYE.
    Shutdown,
    /// The SRC cancelled the INVITE before we answered.
    Cancelled,
    /// Our 2xx was never acknowledged (RFC 3261 §13.3.1.4); we sent BYE.
    AckTimeout,
}

impl EndReason {
    /// The string used in recording.json `ended_by`.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::ByeFromSrc => "bye-from-src",
            EndReason::MediaTimeout => "media-timeout",
            EndReason::Shutdown => "shutdown",
            EndReason::Cancelled => "cancel",
            EndReason::AckTimeout => "ack-timeout",
        }
    }
}

/// How one m-line is received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPlan {
    /// m-line index, 0-based.
    pub index: usize,
    /// `a=label`, if any.
    pub label: Option<String>,
    /// Our RTP port, `None` when declined.
    pub local_port: Option<u16>,
    /// Where the SRC said it sends from (its `c=`/`m=`), if known.
    pub remote: Option<SocketAddr>,
    /// The negotiated audio codec (the first answered).
    pub format: Option<Format>,
    /// Every audio codec answered on the m-line, `format` first: the sender may switch among
    /// them by payload type.
    pub formats: Vec<Format>,
    /// RFC 4733 telephone-event payload type, if negotiated.
    pub telephone_event_pt: Option<u8>,
    /// RFC 3389 comfort-noise payload type, if offered.
    pub comfort_noise_pt: Option<u8>,
    /// `true` when we answered `recvonly` (media expected).
    pub receiving: bool,
    /// For an SRTP stream: the SRC's key (from the `a=crypto` line we accepted), which
    /// decrypts what it sends.
    pub srtp: Option<siprec_rtp::srtp::SdesKey>,
    /// Channel (0 left, 1 right), `None` when not recorded.
    pub channel: Option<u8>,
}

/// What the driver must act on.
#[derive(Debug, Clone)]
pub enum Event {
    /// A metadata document arrived (initial or update); store it byte for byte.
    Metadata {
        /// Session.
        id: SessionId,
        /// The document as received.
        raw: Vec<u8>,
        /// Parse problem, if any (the document is stored all the same).
        error: Option<String>,
    },
    /// A session was answered 200: open the recording.
    SessionStarted {
        /// Session.
        id: SessionId,
        /// SIP Call-ID of the RS dialog.
        call_id: String,
        /// The SRC.
        peer: Peer,
        /// Per m-line plan.
        streams: Vec<StreamPlan>,
        /// Channel mapping and why.
        channels: ChannelPlan,
        /// Current metadata state (complete + partials applied), if any.
        metadata: Option<Recording>,
        /// Paused from the start (every stream inactive).
        paused: bool,
    },
    /// A re-INVITE or UPDATE changed the media (pause, resume, codec, new stream).
    MediaUpdated {
        /// Session.
        id: SessionId,
        /// Per m-line plan.
        streams: Vec<StreamPlan>,
        /// Every stream inactive / on hold.
        paused: bool,
        /// Current metadata state.
        metadata: Option<Recording>,
        /// Channel mapping (participants heard per channel updated from the metadata).
        channels: ChannelPlan,
    },
    /// A metadata-only re-INVITE or UPDATE changed the metadata state (RFC 7866 §7.2).
    MetadataUpdated {
        /// Session.
        id: SessionId,
        /// Current metadata state (complete + partials applied).
        metadata: Option<Recording>,
        /// Channel mapping (participants heard per channel updated from the metadata).
        channels: ChannelPlan,
    },
    /// The session is over; finish and publish the recording.
    SessionEnded {
        /// Session.
        id: SessionId,
        /// Why.
        reason: EndReason,
    },
}

#[derive(Debug)]
struct RsSession {
    call_id: String,
    local_tag: String,
    peer: Peer,
    local: SocketAddr,
    dialog: Option<Dialog>,
    invite_key: Option<ServerKey>,
    started: bool,
    ended: bool,
    ports: Vec<Option<u16>>,
    offer: Option<SessionDescription>,
    last_answer: Option<String>,
    answer_version: u64,
    sdp_session_id: u64,
    plans: Vec<StreamPlan>,
    channels: ChannelPlan,
    metadata: Option<Recording>,
    reinvite_pending: bool,
    bye_key: Option<ClientKey>,
}

/// The SRS state machine. Feed it messages and time; drain transmits, events and the timeout.
///
/// ```
/// use siprec_core::server::{PortAllocator, SrsConfig, SrsCore};
/// struct Ports(u16);
/// impl PortAllocator for Ports {
///     fn allocate(&mut self) -> Option<u16> { self.0 += 2; Some(self.0) }
///     fn release(&mut self, _: u16) {}
/// }
/// let mut srs = SrsCore::new(SrsConfig::default(), Box::new(Ports(20000)));
/// assert!(srs.poll_transmit().is_none());
/// assert_eq!(srs.active_sessions(), 0);
/// ```
pub struct SrsCore {
    config: SrsConfig,
    layer: TransactionLayer,
    ports: Box<dyn PortAllocator>,
    sessions: HashMap<SessionId, RsSession>,
    by_dialog: HashMap<(String, String), SessionId>,
    by_invite: HashMap<ServerKey, SessionId>,
    by_bye: HashMap<ClientKey, SessionId>,
    events: VecDeque<Event>,
    transmits: VecDeque<Transmit>,
    next_id: u64,
    accepting: bool,
    refusal: Option<String>,
    current_local: SocketAddr,
    /// INVITE token buckets per source address: (tokens, last refill).
    buckets: HashMap<std::net::IpAddr, (f64, Instant)>,
}

impl std::fmt::Debug for SrsCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrsCore")
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

impl SrsCore {
    /// A new core.
    pub fn new(config: SrsConfig, ports: Box<dyn PortAllocator>) -> SrsCore {
        SrsCore {
            layer: TransactionLayer::new(config.timers),
            config,
            ports,
            sessions: HashMap::new(),
            by_dialog: HashMap::new(),
            by_invite: HashMap::new(),
            by_bye: HashMap::new(),
            events: VecDeque::new(),
            transmits: VecDeque::new(),
            next_id: 1,
            accepting: true,
            refusal: None,
            current_local: SocketAddr::from(([127, 0, 0, 1], 5060)),
            buckets: HashMap::new(),
        }
    }

    /// `true` when `ip` may send SIP (the allowlist is empty or contains it).
    fn source_allowed(&self, ip: std::net::IpAddr) -> bool {
        siprec_sip::source::allowed(&self.config.allow_sources, ip)
    }

    /// Takes one token from `ip`'s INVITE bucket; `false` when it is empty.
    fn take_invite_token(&mut self, now: Instant, ip: std::net::IpAddr) -> bool {
        let rate = self.config.invite_rate;
        if rate.is_nan() || rate <= 0.0 {
            return true;
        }
        let burst = f64::from(self.config.invite_burst.max(1));
        if self.buckets.len() >= MAX_BUCKETS && !self.buckets.contains_key(&ip) {
            // Forget sources whose bucket has refilled (idle long enough).
            let full_after = std::time::Duration::from_secs_f64(burst / rate);
            self.buckets
                .retain(|_, (_, last)| now.saturating_duration_since(*last) < full_after);
            if self.buckets.len() >= MAX_BUCKETS {
                return false;
            }
        }
        let (tokens, last) = self.buckets.entry(ip).or_insert((burst, now));
        let refill = now.saturating_duration_since(*last).as_secs_f64() * rate;
        *tokens = (*tokens + refill).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Answers `413` when the metadata part is over the limit (RFC 3261 §21.4.11); `true`
    /// when it did.
    fn refused_metadata_size(
        &mut self,
        now: Instant,
        key: &ServerKey,
        req: &rsip::Request,
        parts: &body::RsBody,
    ) -> bool {
        let max = self.config.max_metadata_bytes;
        let Some(n) = parts.metadata.as_ref().map(Vec::len).filter(|n| *n > max) else {
            return false;
        };
        let reason = format!("Request Entity Too Large (metadata of {n} bytes, at most {max})");
        self.simple(now, key, req, 413, &reason, vec![]);
        true
    }

    /// Sessions not yet ended.
    pub fn active_sessions(&self) -> usize {
        self.sessions.values().filter(|s| !s.ended).count()
    }

    /// Stop accepting new sessions (graceful shutdown): new INVITEs get 503.
    pub fn stop_accepting(&mut self) {
        self.accepting = false;
    }

    /// Refuse new sessions for a while (`Some(reason)`), or accept them again (`None`): while
    /// set, new INVITEs get `503 {reason}` with `Retry-After` (RFC 3261 §21.5.4), and sessions
    /// already established go on. The driver uses it when its spool is full.
    pub fn set_refusal(&mut self, reason: Option<String>) {
        self.refusal = reason;
    }

    /// Ids of sessions not yet ended.
    pub fn session_ids(&self) -> Vec<SessionId> {
        self.sessions
            .iter()
            .filter(|(_, s)| !s.ended)
            .map(|(id, _)| *id)
            .collect()
    }

    /// One datagram or framed stream message from `peer`, received on `local`.
    pub fn handle_bytes(&mut self, now: Instant, peer: Peer, local: SocketAddr, bytes: &[u8]) {
        match message::parse_message(bytes) {
            Ok(msg) => {
                // New dialogs take their Contact from the address the INVITE arrived on.
                self.current_local = local;
                self.layer.handle_message(now, peer, msg);
                self.drive(now);
            }
            Err(e) => {
                debug!(%e, peer = %peer.addr, "unparseable SIP message");
                if let Some(resp) = message::raw_bad_request(bytes, &e.to_string(), "srs") {
                    self.transmits.push_back(Transmit {
                        peer,
                        payload: resp,
                    });
                }
            }
        }
    }

    /// Ends a session from our side (media timeout, shutdown): sends BYE.
    pub fn end_session(&mut self, now: Instant, id: SessionId, reason: EndReason) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        if s.ended {
            return;
        }
        if let Some(dialog) = s.dialog.as_mut() {
            let mut bye = dialog.new_request(Method::Bye, None);
            set_via(&mut bye, s.peer.transport, s.local);
            let key = self.layer.send_request(now, s.peer, bye);
            s.bye_key = Some(key.clone());
            self.by_bye.insert(key, id);
        }
        self.finish(id, reason);
        self.drive(now);
    }

    /// Timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.layer.handle_timeout(now);
        self.drive(now);
    }

    /// When to call [`SrsCore::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.layer.poll_timeout()
    }

    /// Next datagram/segment to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits
            .pop_front()
            .or_else(|| self.layer.poll_transmit())
    }

    /// Next event for the driver.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn drive(&mut self, now: Instant) {
        while let Some(ev) = self.layer.poll_event() {
            match ev {
                TxEvent::Request { key, peer, request } => self.on_request(now, key, peer, request),
                TxEvent::Ack { request, .. } => self.on_ack(&request),
                TxEvent::Cancelled { invite, .. } => self.on_cancelled(now, invite),
                TxEvent::Response { key, response } if response.status_code.code() >= 200 => {
                    self.by_bye.remove(&key);
                }
                TxEvent::Timeout { key } => {
                    if let Some(id) = self.by_bye.remove(&key) {
                        debug!(session = id.0, "BYE timed out");
                    }
                }
                TxEvent::AckTimeout { key, .. } => {
                    if let Some(id) = self.by_invite.get(&key).copied() {
                        warn!(session = id.0, "no ACK for our 200 OK; ending session");
                        self.end_session(now, id, EndReason::AckTimeout);
                    }
                }
                TxEvent::ServerTimeout { key } => {
                    self.by_invite.remove(&key);
                }
                #[allow(unreachable_patterns)]
                _ => {}
            }
        }
        self.gc();
    }

    fn gc(&mut self) {
        let done: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, s)| {
                s.ended
                    && s.bye_key
                        .as_ref()
                        .is_none_or(|k| !self.by_bye.contains_key(k))
            })
            .map(|(id, _)| *id)
            .collect();
        for id in done {
            if let Some(s) = self.sessions.remove(&id) {
                self.by_dialog
                    .remove(&(s.call_id.clone(), s.local_tag.clone()));
                if let Some(k) = s.invite_key {
                    self.by_invite.remove(&k);
                }
                for p in s.ports.into_iter().flatten() {
                    self.ports.release(p);
                }
            }
        }
    }

    fn respond(&mut self, now: Instant, key: &ServerKey, resp: rsip::Response) {
        if let Err(e) = self.layer.respond(now, key, resp) {
            debug!(%e, "respond failed");
        }
    }

    fn simple(
        &mut self,
        now: Instant,
        key: &ServerKey,
        req: &rsip::Request,
        code: u16,
        reason: &str,
        extra: Vec<Header>,
    ) {
        let mut resp = make_response(req, code, Some(reason), None);
        resp.headers.push(Header::Server(rsip::headers::Server::new(
            self.config.server_name.clone(),
        )));
        for h in extra {
            resp.headers.push(h);
        }
        self.respond(now, key, resp);
    }

    fn on_request(&mut self, now: Instant, key: ServerKey, peer: Peer, req: rsip::Request) {
        if !self.source_allowed(peer.addr.ip()) {
            self.simple(
                now,
                &key,
                &req,
                403,
                "Forbidden (source not allowed)",
                vec![],
            );
            return;
        }
        let to_tag = message::to_addr(&req.headers).and_then(|t| t.tag().map(str::to_string));
        let call_id = req
            .call_id_header()
            .map(|c| c.value().to_string())
            .unwrap_or_default();
        match (&req.method, to_tag) {
            (Method::Options, None) => {
                let extra = vec![
                    other("Allow", ALLOW),
                    other("Accept", ACCEPT),
                    other("Supported", &SUPPORTED.join(", ")),
                ];
                self.simple(now, &key, &req, 200, "OK", extra);
            }
            (Method::Invite, None) => self.on_new_invite(now, key, peer, req, call_id),
            (_, None) => {
                let (code, reason) = match req.method {
                    Method::Bye | Method::Update | Method::Info => {
                        (481, "Call/Transaction Does Not Exist")
                    }
                    _ => (405, "Method Not Allowed"),
                };
                self.simple(now, &key, &req, code, reason, vec![other("Allow", ALLOW)]);
            }
            (_, Some(tag)) => {
                let Some(id) = self.by_dialog.get(&(call_id, tag)).copied() else {
                    self.simple(
                        now,
                        &key,
                        &req,
                        481,
                        "Call/Transaction Does Not Exist",
                        vec![],
                    );
                    return;
                };
                self.on_in_dialog(now, id, key, req);
            }
        }
    }

    fn on_new_invite(
        &mut self,
        now: Instant,
        key: ServerKey,
        peer: Peer,
        req: rsip::Request,
        call_id: String,
    ) {
        let local = self.current_local;
        if !self.take_invite_token(now, peer.addr.ip()) {
            self.simple(
                now,
                &key,
                &req,
                503,
                "Rate Limited",
                vec![other("Retry-After", "1")],
            );
            return;
        }
        // RFC 3261 §8.2.2.3: unsupported Require → 420 listing them.
        let unsupported: Vec<String> = message::require(&req.headers)
            .into_iter()
            .filter(|t| !SUPPORTED.contains(&t.as_str()))
            .collect();
        if !unsupported.is_empty() {
            let u = unsupported.join(", ");
            self.simple(
                now,
                &key,
                &req,
                420,
                "Bad Extension",
                vec![other("Unsupported", &u)],
            );
            return;
        }
        if !self.accepting
            || self.refusal.is_some()
            || self.active_sessions() >= self.config.max_sessions
        {
            let ra = self.config.retry_after.to_string();
            let reason = if !self.accepting {
                "Shutting Down".to_string()
            } else if let Some(r) = &self.refusal {
                r.clone()
            } else {
                "Too Many Recording Sessions".to_string()
            };
            let reason = reason.as_str();
            self.simple(
                now,
                &key,
                &req,
                503,
                reason,
                vec![other("Retry-After", &ra)],
            );
            return;
        }
        let Some(parts) = self.body_or_refuse(now, &key, &req) else {
            return;
        };
        let Some(sdp_bytes) = parts.sdp else {
            self.simple(
                now,
                &key,
                &req,
                488,
                "Not Acceptable Here (SDP offer required)",
                vec![],
            );
            return;
        };
        let offer = match siprec_sdp::parse(&sdp_bytes) {
            Ok(o) => o,
            Err(e) => {
                let reason = format!("Not Acceptable Here (bad SDP: {e})");
                self.simple(now, &key, &req, 488, &reason, vec![]);
                return;
            }
        };
        let id = SessionId(self.next_id);
        self.next_id += 1;
        let local_tag = message::new_tag();
        let mut session = RsSession {
            call_id: call_id.clone(),
            local_tag: local_tag.clone(),
            peer,
            local,
            dialog: None,
            invite_key: Some(key.clone()),
            started: false,
            ended: false,
            ports: Vec::new(),
            offer: None,
            last_answer: None,
            answer_version: 1,
            sdp_session_id: rand::random::<u32>() as u64,
            plans: Vec::new(),
            channels: ChannelPlan::default(),
            metadata: None,
            reinvite_pending: false,
            bye_key: None,
        };
        let metadata_raw = parts.metadata;
        if let Some(raw) = &metadata_raw {
            let (state, error) = apply_metadata(None, raw);
            session.metadata = state;
            self.events.push_back(Event::Metadata {
                id,
                raw: raw.clone(),
                error,
            });
        }
        // Ports for recordable m-lines.
        let (cfg, keys) =
            self.answer_config(session.sdp_session_id, session.answer_version, &offer);
        let recordable = siprec_sdp::recordable(&offer, &cfg);
        let mut ports = Vec::with_capacity(offer.media.len());
        let mut exhausted = false;
        for r in &recordable {
            if *r {
                match self.ports.allocate() {
                    Some(p) => ports.push(Some(p)),
                    None => {
                        exhausted = true;
                        ports.push(None);
                    }
                }
            } else {
                ports.push(None);
            }
        }
        if exhausted {
            for p in ports.into_iter().flatten() {
                self.ports.release(p);
            }
            self.drop_metadata_events(id);
            let ra = self.config.retry_after.to_string();
            self.simple(
                now,
                &key,
                &req,
                503,
                "Out of RTP Ports",
                vec![other("Retry-After", &ra)],
            );
            return;
        }
        session.ports = ports;
        let (answer, media) = match siprec_sdp::answer(&offer, &session.ports, &cfg) {
            Ok(a) => a,
            Err(e) => {
                for p in session.ports.iter().flatten() {
                    self.ports.release(*p);
                }
                self.drop_metadata_events(id);
                let reason = format!("Not Acceptable Here ({e})");
                self.simple(now, &key, &req, 488, &reason, vec![]);
                return;
            }
        };
        let accepted: Vec<bool> = media.iter().map(|m| m.accepted).collect();
        session.channels = map_channels(&offer, &accepted, session.metadata.as_ref());
        session.plans = plans(&media, &session.channels, &session.ports, &keys);
        let paused = is_paused(&offer, &media);
        session.offer = Some(offer);
        // Build the 200 OK.
        let mut resp = make_response(&req, 200, Some("OK"), Some(&local_tag));
        self.decorate_2xx(&mut resp, &req, local, peer.transport);
        resp.headers
            .push(Header::ContentType(rsip::headers::ContentType::new(
                "application/sdp",
            )));
        resp.body = answer.clone().into_bytes();
        session.last_answer = Some(answer);
        let contact = contact_uri(local, peer.transport);
        match Dialog::new_uas(&req, &local_tag, contact) {
            Ok(d) => session.dialog = Some(d),
            Err(e) => {
                debug!(%e, "cannot build dialog");
            }
        }
        info!(session = id.0, %call_id, peer = %peer.addr, streams = session.plans.len(), "recording session accepted");
        self.events.push_back(Event::SessionStarted {
            id,
            call_id: call_id.clone(),
            peer,
            streams: session.plans.clone(),
            channels: session.channels.clone(),
            metadata: session.metadata.clone(),
            paused,
        });
        session.started = true;
        self.by_dialog.insert((call_id, local_tag), id);
        self.by_invite.insert(key.clone(), id);
        self.sessions.insert(id, session);
        self.respond(now, &key, resp);
    }

    fn drop_metadata_events(&mut self, id: SessionId) {
        self.events
            .retain(|e| !matches!(e, Event::Metadata { id: i, .. } if *i == id));
    }

    fn decorate_2xx(
        &self,
        resp: &mut rsip::Response,
        req: &rsip::Request,
        local: SocketAddr,
        transport: Transport,
    ) {
        let contact = contact_uri(local, transport);
        resp.headers
            .push(other("Contact", &format!("<{contact}>;+sip.srs")));
        resp.headers.push(other("Allow", ALLOW));
        resp.headers.push(other("Supported", &SUPPORTED.join(", ")));
        resp.headers.push(Header::Server(rsip::headers::Server::new(
            self.config.server_name.clone(),
        )));
        // RFC 4028 §9: echo the interval; the SRC refreshes.
        if let Some(se) = message::session_expires(&req.headers) {
            if let Ok(interval) = u32::try_from(se.delta_seconds) {
                resp.headers.push(other(
                    "Session-Expires",
                    &format!("{interval};refresher=uac"),
                ));
                if message::supported(&req.headers)
                    .iter()
                    .any(|t| t == "timer")
                    || message::require(&req.headers).iter().any(|t| t == "timer")
                {
                    resp.headers.push(other("Require", "timer"));
                }
            }
        }
    }

    /// The answer settings for `offer`, and per m-line the SRC's SRTP key we accept: for each
    /// `RTP/SAVP` m-line the first usable `a=crypto` line, answered with a fresh key of ours
    /// with the same tag and suite (RFC 4568 §7.1.2).
    fn answer_config(
        &self,
        session_id: u64,
        session_version: u64,
        offer: &SessionDescription,
    ) -> (AnswerConfig, Vec<Option<SdesKey>>) {
        let mut local = Vec::with_capacity(offer.media.len());
        let mut remote = Vec::with_capacity(offer.media.len());
        for m in &offer.media {
            let key = (m.is_srtp() && self.config.srtp != SrtpPolicy::Off)
                .then(|| SdesKey::choose(&m.crypto))
                .flatten();
            local.push(
                key.as_ref()
                    .map(|k| SdesKey::new(k.tag, k.suite, rand::random()).to_attribute()),
            );
            remote.push(key);
        }
        let cfg = AnswerConfig {
            local_ip: self.config.media_ip,
            session_id,
            session_version,
            codecs: self.config.codecs.clone(),
            username: "srs".into(),
            srtp: self.config.srtp != SrtpPolicy::Off,
            require_srtp: self.config.srtp == SrtpPolicy::Required,
            local_crypto: local,
        };
        (cfg, remote)
    }

    /// The body of an INVITE, re-INVITE or UPDATE split into SDP and metadata, or `None`
    /// once the request is refused: `415` with `Accept` for a body type we do not take,
    /// `400` for a body that cannot be split (RFC 3261 §21.4.13, §21.4.1), `413` for
    /// metadata over the limit.
    fn body_or_refuse(
        &mut self,
        now: Instant,
        key: &ServerKey,
        req: &rsip::Request,
    ) -> Option<body::RsBody> {
        let ct = message::content_type(&req.headers);
        let parts = match body::split(ct.as_ref(), &req.body) {
            Ok(p) => p,
            Err(BodyError::Unsupported(t)) => {
                let reason = format!("Unsupported Media Type ({t})");
                self.simple(now, key, req, 415, &reason, vec![other("Accept", ACCEPT)]);
                return None;
            }
            Err(BodyError::Malformed(why)) => {
                let reason = format!("Bad Request ({why})");
                self.simple(now, key, req, 400, &reason, vec![]);
                return None;
            }
        };
        if self.refused_metadata_size(now, key, req, &parts) {
            return None;
        }
        Some(parts)
    }

    fn on_ack(&mut self, req: &rsip::Request) {
        let key = dialog_key(req);
        if let Some(id) = key.and_then(|k| self.by_dialog.get(&k).copied()) {
            if let Some(s) = self.sessions.get_mut(&id) {
                if let Some(k) = s.invite_key.take() {
                    self.by_invite.remove(&k);
                }
                s.reinvite_pending = false;
            }
        }
    }

    fn on_cancelled(&mut self, now: Instant, invite: ServerKey) {
        // We answer INVITEs at once, so this only happens if a final answer had not gone out.
        if let Some(id) = self.by_invite.remove(&invite) {
            self.finish(id, EndReason::Cancelled);
        }
        let _ = now;
    }

    fn finish(&mut self, id: SessionId, reason: EndReason) {
        if let Some(s) = self.sessions.get_mut(&id) {
            if !s.ended {
                s.ended = true;
                if s.started {
                    self.events.push_back(Event::SessionEnded { id, reason });
                }
            }
        }
    }

    fn on_in_dialog(&mut self, now: Instant, id: SessionId, key: ServerKey, req: rsip::Request) {
        let ended = self.sessions.get(&id).is_none_or(|s| s.ended);
        if let Some(s) = self.sessions.get_mut(&id) {
            if let Some(d) = s.dialog.as_mut() {
                if !d.accept_remote_cseq(&req) {
                    self.simple(
                        now,
                        &key,
                        &req,
                        500,
                        "Server Internal Error (CSeq out of order)",
                        vec![],
                    );
                    return;
                }
            }
        }
        match req.method {
            Method::Bye => {
                self.simple(now, &key, &req, 200, "OK", vec![]);
                self.finish(id, EndReason::ByeFromSrc);
            }
            _ if ended => {
                self.simple(
                    now,
                    &key,
                    &req,
                    481,
                    "Call/Transaction Does Not Exist",
                    vec![],
                );
            }
            Method::Invite | Method::Update => self.on_modify(now, id, key, req),
            Method::Info | Method::Options => self.simple(now, &key, &req, 200, "OK", vec![]),
            Method::Cancel | Method::Ack => {}
            _ => {
                self.simple(
                    now,
                    &key,
                    &req,
                    405,
                    "Method Not Allowed",
                    vec![other("Allow", ALLOW)],
                );
            }
        }
    }

    /// re-INVITE or UPDATE: pause/resume/codec change/session refresh/metadata update.
    fn on_modify(&mut self, now: Instant, id: SessionId, key: ServerKey, req: rsip::Request) {
        let is_invite = req.method == Method::Invite;
        let Some(parts) = self.body_or_refuse(now, &key, &req) else {
            return;
        };
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        if is_invite && s.reinvite_pending {
            // RFC 3261 §14.2: a re-INVITE while one is in progress → 491.
            self.simple(now, &key, &req, 491, "Request Pending", vec![]);
            return;
        }
        // Parse the SDP first, so a bad offer changes nothing.
        let offer = match parts.sdp.as_deref().map(siprec_sdp::parse) {
            Some(Err(e)) => {
                let reason = format!("Not Acceptable Here (bad SDP: {e})");
                self.simple(now, &key, &req, 488, &reason, vec![]);
                return;
            }
            Some(Ok(o)) => Some(o),
            None => None,
        };
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        if let Some(raw) = &parts.metadata {
            let (state, error) = apply_metadata(s.metadata.take(), raw);
            s.metadata = state;
            self.events.push_back(Event::Metadata {
                id,
                raw: raw.clone(),
                error,
            });
        }
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        let mut body_out: Option<String> = None;
        if let Some(offer) = offer {
            // Keep ports by index; allocate for new recordable m-lines.
            s.answer_version += 1;
            let (sid, version) = (s.sdp_session_id, s.answer_version);
            let (cfg, keys) = self.answer_config(sid, version, &offer);
            let Some(s) = self.sessions.get_mut(&id) else {
                return;
            };
            let recordable = siprec_sdp::recordable(&offer, &cfg);
            let mut ports = s.ports.clone();
            ports.resize(offer.media.len(), None);
            let mut new_ports = Vec::new();
            for (i, r) in recordable.iter().enumerate() {
                if *r && ports[i].is_none() {
                    if let Some(p) = self.ports.allocate() {
                        ports[i] = Some(p);
                        new_ports.push(p);
                    }
                }
            }
            // Offer ports for m-lines on hold by port 0 stay ours: answer with them declined.
            let answer_ports: Vec<Option<u16>> = ports
                .iter()
                .zip(&offer.media)
                .map(|(p, m)| if m.port == 0 { None } else { *p })
                .collect();
            let Some(s) = self.sessions.get_mut(&id) else {
                return;
            };
            match siprec_sdp::answer(&offer, &answer_ports, &cfg) {
                Ok((answer, media)) => {
                    s.ports = ports;
                    let accepted: Vec<bool> = media.iter().map(|m| m.accepted).collect();
                    // Keep the existing mapping; map new m-lines afresh.
                    let fresh = map_channels(&offer, &accepted, s.metadata.as_ref());
                    let mut channels = s.channels.clone();
                    channels.channel_of.resize(offer.media.len(), None);
                    for (i, ch) in fresh.channel_of.iter().enumerate() {
                        if channels.channel_of[i].is_none() {
                            channels.channel_of[i] = *ch;
                        }
                    }
                    if let Some(md) = &s.metadata {
                        channels.add_heard(&offer, md);
                    }
                    s.channels = channels;
                    s.plans = plans(&media, &s.channels, &s.ports, &keys);
                    let paused = is_paused(&offer, &media);
                    s.offer = Some(offer);
                    s.last_answer = Some(answer.clone());
                    body_out = Some(answer);
                    self.events.push_back(Event::MediaUpdated {
                        id,
                        streams: s.plans.clone(),
                        paused,
                        metadata: s.metadata.clone(),
                        channels: s.channels.clone(),
                    });
                }
                Err(e) => {
                    s.answer_version -= 1;
                    for p in new_ports {
                        self.ports.release(p);
                    }
                    // RFC 3264 §8: a rejected modification leaves the session as it was.
                    let reason = format!("Not Acceptable Here ({e})");
                    self.simple(now, &key, &req, 488, &reason, vec![]);
                    return;
                }
            }
        } else {
            if is_invite {
                // Offerless re-INVITE (session refresh, metadata-only): our last SDP is the
                // offer in the 200 (RFC 3261 §14.2); the ACK carries an answer we do not need.
                body_out = s.last_answer.clone();
            }
            if parts.metadata.is_some() {
                if let (Some(o), Some(md)) = (&s.offer, &s.metadata) {
                    s.channels.add_heard(o, md);
                }
                self.events.push_back(Event::MetadataUpdated {
                    id,
                    metadata: s.metadata.clone(),
                    channels: s.channels.clone(),
                });
            }
        }
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        let (local, transport) = (s.local, s.peer.transport);
        let mut resp = make_response(&req, 200, Some("OK"), None);
        self.decorate_2xx(&mut resp, &req, local, transport);
        if let Some(b) = body_out {
            resp.headers
                .push(Header::ContentType(rsip::headers::ContentType::new(
                    "application/sdp",
                )));
            resp.body = b.into_bytes();
        }
        if is_invite {
            if let Some(s) = self.sessions.get_mut(&id) {
                s.reinvite_pending = true;
                s.invite_key = Some(key.clone());
            }
            self.by_invite.insert(key.clone(), id);
        }
        self.respond(now, &key, resp);
    }
}

fn other(name: &str, value: &str) -> Header {
    Header::Other(name.to_string(), value.to_string())
}

fn contact_uri(local: SocketAddr, transport: Transport) -> String {
    let host = match local.ip() {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    };
    match transport {
        Transport::Udp => format!("sip:srs@{host}:{}", local.port()),
        Transport::Tcp => format!("sip:srs@{host}:{};transport=tcp", local.port()),
        Transport::Tls => format!("sips:srs@{host}:{};transport=tls", local.port()),
    }
}

fn set_via(req: &mut rsip::Request, transport: Transport, local: SocketAddr) {
    let t = match transport {
        Transport::Udp => "UDP",
        Transport::Tcp => "TCP",
        Transport::Tls => "TLS",
    };
    req.headers.retain(|h| !matches!(h, Header::Via(_)));
    let via = format!("SIP/2.0/{t} {local};branch={};rport", message::new_branch());
    let mut headers: Vec<Header> = vec![Header::Via(rsip::headers::Via::new(via))];
    headers.extend(req.headers.iter().cloned());
    req.headers = headers.into();
}

/// The dialog key (Call-ID, our tag) of an in-dialog request.
fn dialog_key(req: &rsip::Request) -> Option<(String, String)> {
    let call_id = req.call_id_header().ok()?.value().to_string();
    let tag = message::to_addr(&req.headers)?.tag()?.to_string();
    Some((call_id, tag))
}

/// Applies a received document to the current state. Returns the new state and a parse error
/// to report (the raw document is stored whatever happens).
fn apply_metadata(current: Option<Recording>, raw: &[u8]) -> (Option<Recording>, Option<String>) {
    match rs_metadata::parse(raw) {
        Ok(Document::Recording(doc)) => match current {
            Some(mut cur) => {
                cur.apply(&doc);
                (Some(cur), None)
            }
            None => (Some(doc), None),
        },
        Ok(Document::SnapshotRequest { .. }) => (
            current,
            Some("snapshot request where metadata was expected".into()),
        ),
        Ok(_) => (current, None),
        Err(e) => (current, Some(e.to_string())),
    }
}

fn plans(
    media: &[AnsweredMedia],
    channels: &ChannelPlan,
    ports: &[Option<u16>],
    keys: &[Option<SdesKey>],
) -> Vec<StreamPlan> {
    media
        .iter()
        .map(|m| StreamPlan {
            index: m.index,
            label: m.label.clone(),
            local_port: if m.accepted {
                ports.get(m.index).copied().flatten()
            } else {
                None
            },
            remote: m.remote,
            format: m.format.clone(),
            formats: m.formats.clone(),
            telephone_event_pt: m.telephone_event_pt,
            comfort_noise_pt: m.comfort_noise_pt,
            receiving: m.accepted && m.direction == siprec_sdp::Direction::RecvOnly,
            srtp: if m.accepted && m.srtp {
                keys.get(m.index).cloned().flatten()
            } else {
                None
            },
            channel: if m.accepted {
                channels.channel_of.get(m.index).copied().flatten()
            } else {
                None
            },
        })
        .collect()
}

fn is_paused(offer: &SessionDescription, media: &[AnsweredMedia]) -> bool {
    let accepted: Vec<&AnsweredMedia> = media.iter().filter(|m| m.accepted).collect();
    accepted.is_empty()
        || accepted.iter().all(|m| {
            m.direction == siprec_sdp::Direction::Inactive
                || offer.media.get(m.index).is_some_and(|o| o.is_on_hold())
        })
}

#[cfg(test)]
mod tests;
