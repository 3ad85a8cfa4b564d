//! The B2BUA state machine. See the [crate docs](crate) for what it does and the call order.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use rsip::headers::UntypedHeader;
use rsip::{Header, Method, Request, Response, SipMessage};
use siprec_core::client::{
    self as src, CallContext, CallDirection, OpId, Party, RsId, SrcConfig, SrcCore, SrsUri, Target,
};
use siprec_sdp::Format;
use siprec_sip::dialog::Dialog;
use siprec_sip::message::{
    self, header_name_value, header_tokens, header_value, make_response, new_branch, new_call_id,
    new_tag, split_name_addr, tag_of,
};
use siprec_sip::rsip;
use siprec_sip::transaction::{
    ClientKey, Event as TxEvent, Peer, ServerKey, TransactionLayer, Transmit, Transport,
};
use tracing::{debug, info, warn};

use crate::command::{self, Info};
use crate::relay::Side;
use crate::sdp::{anchor, media_info, MediaInfo};
use crate::{Error, GatewayConfig, PortAllocator};

/// Identifies one relayed call inside a [`GatewayCore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

impl std::fmt::Display for CallId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "call-{}", self.0)
    }
}

/// A change to one call's media relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayUpdate {
    /// Start relaying on these ports: `[A-facing, B-facing]` RTP ports (RTCP on each + 1),
    /// bound by the [`PortAllocator`].
    Open {
        /// A-facing and B-facing RTP ports.
        ports: [u16; 2],
    },
    /// `side`'s SDP names where it receives media ([`crate::Relay::set_remote`]).
    Remote {
        /// Whose.
        side: Side,
        /// What its SDP says.
        media: MediaInfo,
    },
    /// The call's audio codec ([`crate::Relay::set_codec`]).
    Codec {
        /// `None`: nothing to fork.
        format: Option<Format>,
    },
    /// A recording session's plan ([`crate::Relay::set_fork`]).
    Fork {
        /// The session.
        rs: RsId,
        /// Where each leg goes.
        plan: src::MediaPlan,
    },
    /// A recording session is over ([`crate::Relay::remove_fork`]).
    ForkStop {
        /// The session.
        rs: RsId,
    },
    /// The call is over: stop relaying (its ports are released).
    Close,
}

/// What the driver acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Apply `update` to `call`'s relay.
    Relay {
        /// The call.
        call: CallId,
        /// What changes.
        update: RelayUpdate,
    },
    /// Resolve an SRS URI (RFC 3263) for one of `call`'s recording sessions and answer with
    /// [`GatewayCore::resolved`].
    Resolve {
        /// The call.
        call: CallId,
        /// Its recording session.
        rs: RsId,
        /// The URI.
        uri: SrsUri,
    },
    /// An INFO recording command was answered (already sent and logged).
    Command {
        /// The call.
        call: CallId,
        /// Its `X-Reason`.
        reason: String,
        /// The reply code.
        code: u16,
    },
    /// A call ended and is forgotten.
    CallEnded {
        /// The call.
        call: CallId,
    },
}

/// Methods the gateway takes.
pub(crate) const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO";

/// Headers the gateway writes itself on each leg; every other header is copied across.
const OWN_HEADERS: [&str; 20] = [
    "via",
    "from",
    "to",
    "call-id",
    "cseq",
    "contact",
    "max-forwards",
    "route",
    "record-route",
    "content-length",
    "content-type",
    "content-disposition",
    "mime-version",
    "allow",
    "supported",
    "require",
    "proxy-require",
    "rseq",
    "rack",
    "user-agent",
];

fn is_own(name: &str) -> bool {
    let long = message::expand_compact_name(name).to_ascii_lowercase();
    OWN_HEADERS.contains(&long.as_str()) || long == "server"
}

fn other(name: &str, value: &str) -> Header {
    Header::Other(name.to_string(), value.to_string())
}

fn bracket(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// The body of `headers`/`body` when it is SDP.
fn sdp_body<'a>(headers: &rsip::Headers, body: &'a [u8]) -> Option<&'a [u8]> {
    if body.is_empty() {
        return None;
    }
    let ct = header_value(headers, "Content-Type").unwrap_or_default();
    ct.to_ascii_lowercase()
        .starts_with("application/sdp")
        .then_some(body)
}

#[derive(Debug, Clone)]
enum Pending {
    /// The B leg's INVITE.
    Initial,
    /// A request from `from` relayed to the other leg; its answer goes back on `key`.
    Relay {
        from: Side,
        key: ServerKey,
        request: Box<Request>,
    },
    /// A BYE the gateway sent to end the call.
    Bye,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// B leg invited, no provisional yet.
    Calling,
    /// B leg ringing.
    Early,
    /// Both legs up.
    Answered,
    /// A cancelled (or B never answered): waiting for B's final response.
    Cancelled,
    /// Hanging up: BYEs and the recording's end in flight.
    Ending,
}

#[derive(Debug)]
struct Leg {
    peer: Peer,
    call_id: String,
    /// Our tag in this leg's dialog.
    tag: String,
    dialog: Option<Dialog>,
    /// An INVITE/UPDATE the gateway sent to this leg awaits its answer (glare, RFC 3261 §14.1).
    offer_out: bool,
    /// An INVITE/UPDATE from this leg is being relayed.
    offer_in: bool,
}

#[derive(Debug)]
struct Command {
    key: ServerKey,
    request: Box<Request>,
    reason: String,
}

#[derive(Debug)]
struct Call {
    stage: Stage,
    legs: [Leg; 2],
    a_invite: Request,
    a_key: ServerKey,
    b_invite: Request,
    b_key: ClientKey,
    /// `[A-facing, B-facing]` relay RTP ports.
    ports: [u16; 2],
    media: [Option<MediaInfo>; 2],
    codec: Option<Format>,
    ring_deadline: Option<Instant>,
    end_deadline: Option<Instant>,
    byes: usize,
    context: CallContext,
    src: Option<SrcCore>,
    /// One tracing span per call (its id and the A leg's Call-ID): every log line about the
    /// call, its INFO commands and its recording sessions is inside it.
    span: tracing::Span,
    /// The codec the SRC offers its SRSs.
    src_codec: Option<Format>,
    /// Delayed offer (RFC 3261 §13.2.1), in the initial INVITE or a re-INVITE: the 2xx of the
    /// leg we sent it to carries the offer and the other leg's ACK the answer, so our ACK to
    /// that leg (its side and the INVITE's CSeq number) waits for it.
    ack_pending: Option<(Side, u32)>,
    /// The last ACK sent to a leg for a 2xx (its side and CSeq number), sent again as it was
    /// when that 2xx comes again (our ACK was lost; RFC 3261 §13.2.2.4).
    last_ack: Option<(Side, u32, Box<Request>)>,
    commands: HashMap<OpId, Command>,
}

impl Call {
    fn leg(&self, side: Side) -> &Leg {
        &self.legs[side.index()]
    }
    fn leg_mut(&mut self, side: Side) -> &mut Leg {
        &mut self.legs[side.index()]
    }
    /// The relay port facing `side` (written in the SDP sent to `side`).
    fn port_facing(&self, side: Side) -> u16 {
        self.ports[side.index()]
    }
}

/// The B2BUA. See the [crate docs](crate).
pub struct GatewayCore {
    config: GatewayConfig,
    layer: TransactionLayer,
    ports: Box<dyn PortAllocator>,
    clock: (Instant, SystemTime),
    calls: HashMap<CallId, Call>,
    next_call: u64,
    /// (Call-ID, our tag) of each leg's dialog.
    dialogs: HashMap<(String, String), (CallId, Side)>,
    a_invites: HashMap<ServerKey, CallId>,
    clients: HashMap<ClientKey, (CallId, Pending)>,
    /// Call-IDs of recording sessions, to route SRS messages to their call's SRC.
    rs_calls: HashMap<String, CallId>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

impl std::fmt::Debug for GatewayCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayCore")
            .field("calls", &self.calls.len())
            .field("transactions", &self.layer.len())
            .finish_non_exhaustive()
    }
}

impl GatewayCore {
    /// A gateway with no calls. `now` and `wall_now` anchor the wall clock of recording
    /// metadata. Errors: the configuration's ([`GatewayConfig::validate`]).
    pub fn new(
        config: GatewayConfig,
        ports: Box<dyn PortAllocator>,
        now: Instant,
        wall_now: SystemTime,
    ) -> Result<GatewayCore, Error> {
        config.validate()?;
        let layer = TransactionLayer::new(config.timers);
        Ok(GatewayCore {
            config,
            layer,
            ports,
            clock: (now, wall_now),
            calls: HashMap::new(),
            next_call: 1,
            dialogs: HashMap::new(),
            a_invites: HashMap::new(),
            clients: HashMap::new(),
            rs_calls: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        })
    }

    /// Calls in progress (ringing, up or ending).
    pub fn calls(&self) -> usize {
        self.calls.len()
    }

    /// `true` while `call` is recording (or starting to) towards at least one SRS.
    pub fn is_recording(&self, call: CallId) -> bool {
        self.calls
            .get(&call)
            .and_then(|c| c.src.as_ref())
            .is_some_and(|s| s.is_recording() || s.is_starting())
    }

    // -----------------------------------------------------------------------------------------
    // Input
    // -----------------------------------------------------------------------------------------

    /// One SIP message as received (a UDP datagram, or a message framed off a TCP/TLS
    /// stream). A request that does not parse gets `400` with the reason in a `Warning` when
    /// its Via, From, To, Call-ID and CSeq can be found; anything else is dropped.
    pub fn handle_bytes(&mut self, now: Instant, peer: Peer, bytes: &[u8]) {
        match siprec_sip::parse_message(bytes) {
            Ok(msg) => self.handle_message(now, peer, msg),
            Err(e) => {
                debug!(peer = %peer.addr, error = %e, "unparseable SIP message");
                if let Some(resp) = message::raw_bad_request(bytes, &e.to_string(), "gateway") {
                    self.transmits.push_back(Transmit {
                        peer,
                        payload: resp,
                    });
                }
            }
        }
    }

    /// One parsed SIP message.
    pub fn handle_message(&mut self, now: Instant, peer: Peer, msg: SipMessage) {
        let call_id = match &msg {
            SipMessage::Request(r) => message::call_id(&r.headers),
            SipMessage::Response(r) => message::call_id(&r.headers),
        };
        if let Some(call) = call_id.and_then(|c| self.rs_calls.get(&c).copied()) {
            let _span = self.span(call).entered();
            if let Some(s) = self.calls.get_mut(&call).and_then(|c| c.src.as_mut()) {
                s.handle_message(now, peer, msg);
            }
            self.after_src(now, call);
            return;
        }
        self.layer.handle_message(now, peer, msg);
        self.process(now);
    }

    /// A message to `peer` could not be sent (connection refused, TLS failure, …).
    pub fn handle_transport_error(&mut self, now: Instant, peer: Peer, reason: &str) {
        let ids: Vec<CallId> = self.calls.keys().copied().collect();
        for id in ids {
            let _span = self.span(id).entered();
            let Some(call) = self.calls.get_mut(&id) else {
                continue;
            };
            if let Some(s) = call.src.as_mut() {
                s.handle_transport_error(now, peer, reason);
            }
            let b_down = call.leg(Side::B).peer == peer
                && matches!(call.stage, Stage::Calling | Stage::Early);
            self.after_src(now, id);
            if b_down {
                let why = command::phrase(&format!("B leg unreachable: {reason}"));
                self.fail_call(now, id, 503, &why);
            }
        }
    }

    /// The answer to [`Event::Resolve`].
    pub fn resolved(
        &mut self,
        now: Instant,
        call: CallId,
        rs: RsId,
        result: Result<Vec<Target>, String>,
    ) {
        let _span = self.span(call).entered();
        if let Some(s) = self.calls.get_mut(&call).and_then(|c| c.src.as_mut()) {
            s.resolved(now, rs, result);
        }
        self.after_src(now, call);
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.layer.handle_timeout(now);
        self.process(now);
        let ids: Vec<CallId> = self.calls.keys().copied().collect();
        for id in ids {
            let _span = self.span(id).entered();
            let Some(call) = self.calls.get_mut(&id) else {
                continue;
            };
            if let Some(s) = call.src.as_mut() {
                if s.poll_timeout().is_some_and(|t| t <= now) {
                    s.handle_timeout(now);
                }
            }
            let ring = call.ring_deadline.is_some_and(|t| t <= now);
            let end = call.end_deadline.is_some_and(|t| t <= now);
            self.after_src(now, id);
            if ring {
                self.no_answer(now, id);
            }
            if end {
                debug!("ending grace over");
                self.finish(id);
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Output
    // -----------------------------------------------------------------------------------------

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits
            .pop_front()
            .or_else(|| self.layer.poll_transmit())
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`GatewayCore::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next = self.layer.poll_timeout();
        let mut fold = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        for c in self.calls.values() {
            fold(c.src.as_ref().and_then(SrcCore::poll_timeout));
            fold(c.ring_deadline);
            fold(c.end_deadline);
        }
        next
    }

    // -----------------------------------------------------------------------------------------
    // The transaction layer's events
    // -----------------------------------------------------------------------------------------

    fn process(&mut self, now: Instant) {
        while let Some(ev) = self.layer.poll_event() {
            match ev {
                TxEvent::Request { key, peer, request } => self.on_request(now, key, peer, request),
                TxEvent::Ack { request, .. } => self.on_ack(now, request),
                TxEvent::Cancelled { invite, .. } => self.on_cancel(now, &invite),
                TxEvent::Response { key, response } => self.on_response(now, key, response),
                TxEvent::Timeout { key } => self.on_client_timeout(now, key),
                TxEvent::AckTimeout { key, .. } => {
                    if let Some(&id) = self.a_invites.get(&key) {
                        warn!("no ACK for the A leg's 200; hanging up");
                        if let Some((side, cseq)) =
                            self.calls.get_mut(&id).and_then(|c| c.ack_pending.take())
                        {
                            let call = &self.calls[&id];
                            if let Some(d) = call.leg(side).dialog.as_ref() {
                                let ack = d.make_ack(cseq);
                                let peer = call.leg(side).peer;
                                self.layer.send_request(now, peer, ack);
                            }
                        }
                        self.hangup(now, id, None);
                    }
                }
                TxEvent::ServerTimeout { .. } => {}
            }
        }
    }

    fn respond(&mut self, now: Instant, key: &ServerKey, resp: Response) {
        if let Err(e) = self.layer.respond(now, key, resp) {
            debug!(%key, error = %e, "response not sent");
        }
    }

    fn simple(
        &mut self,
        now: Instant,
        key: &ServerKey,
        req: &Request,
        code: u16,
        reason: Option<&str>,
        extra: Vec<Header>,
    ) {
        let mut resp = make_response(req, code, reason, None);
        resp.headers.extend(extra);
        self.respond(now, key, resp);
    }

    fn on_request(&mut self, now: Instant, key: ServerKey, peer: Peer, req: Request) {
        let to_tag = header_value(&req.headers, "To").and_then(|t| tag_of(&t));
        let Some(tag) = to_tag else {
            match req.method {
                Method::Invite => self.new_call(now, key, peer, req),
                Method::Options => {
                    let extra = vec![
                        other("Allow", ALLOW),
                        other("Accept", "application/sdp"),
                        other("Server", &self.config.user_agent.clone()),
                    ];
                    self.simple(now, &key, &req, 200, None, extra);
                }
                Method::Bye | Method::Info | Method::Update | Method::Notify => {
                    self.simple(now, &key, &req, 481, None, Vec::new())
                }
                _ => self.simple(now, &key, &req, 405, None, vec![other("Allow", ALLOW)]),
            }
            return;
        };
        let call_id = message::call_id(&req.headers).unwrap_or_default();
        let Some(&(id, side)) = self.dialogs.get(&(call_id, tag)) else {
            self.simple(now, &key, &req, 481, None, Vec::new());
            return;
        };
        self.in_dialog(now, id, side, key, peer, req);
    }

    // -----------------------------------------------------------------------------------------
    // A new call
    // -----------------------------------------------------------------------------------------

    fn new_call(&mut self, now: Instant, key: ServerKey, peer: Peer, req: Request) {
        if self.calls.len() >= self.config.max_calls {
            let reason = format!("too many calls ({} at most)", self.config.max_calls);
            self.simple(
                now,
                &key,
                &req,
                503,
                Some(&reason),
                vec![other("Retry-After", "5")],
            );
            return;
        }
        let max_forwards = header_value(&req.headers, "Max-Forwards")
            .and_then(|v| v.trim().parse::<u32>().ok())
            .unwrap_or(70);
        if max_forwards == 0 {
            self.simple(now, &key, &req, 483, None, Vec::new());
            return;
        }
        if header_tokens(&req.headers, "Require")
            .iter()
            .any(|t| t != "timer")
        {
            let unsupported = header_tokens(&req.headers, "Require")
                .into_iter()
                .filter(|t| t != "timer")
                .collect::<Vec<_>>()
                .join(", ");
            self.simple(
                now,
                &key,
                &req,
                420,
                None,
                vec![other("Unsupported", &unsupported)],
            );
            return;
        }
        // An INVITE without a body is a delayed offer (RFC 3261 §13.2.1): B's 2xx will carry
        // the offer and A's ACK the answer.
        let offer = if req.body.is_empty() {
            None
        } else if let Some(o) = sdp_body(&req.headers, &req.body) {
            Some(o)
        } else {
            let extra = vec![other("Accept", "application/sdp")];
            self.simple(
                now,
                &key,
                &req,
                415,
                Some("the INVITE body is not application/sdp"),
                extra,
            );
            return;
        };
        let a_media = match offer.map(media_info).transpose() {
            Ok(m) => m,
            Err(e) => {
                let why = command::phrase(&format!("offer cannot be anchored: {e}"));
                self.simple(now, &key, &req, 488, Some(&why), Vec::new());
                return;
            }
        };
        let context = match call_context(&req) {
            Ok(c) => c,
            Err(why) => {
                self.simple(now, &key, &req, 400, Some(&why), Vec::new());
                return;
            }
        };
        let pair = self
            .ports
            .allocate()
            .and_then(|pa| match self.ports.allocate() {
                Some(pb) => Some((pa, pb)),
                None => {
                    self.ports.release(pa);
                    None
                }
            });
        let Some((pa, pb)) = pair else {
            let retry = vec![other("Retry-After", "5")];
            self.simple(now, &key, &req, 503, Some("no relay port free"), retry);
            return;
        };
        let b_offer = match offer
            .map(|o| anchor(o, self.config.media_ip, pb))
            .transpose()
        {
            Ok(b) => b,
            Err(e) => {
                self.ports.release(pa);
                self.ports.release(pb);
                let why = command::phrase(&format!("offer cannot be anchored: {e}"));
                self.simple(now, &key, &req, 488, Some(&why), Vec::new());
                return;
            }
        };
        let id = CallId(self.next_call);
        self.next_call += 1;
        let b_peer = self.config.forward.peer;
        let b_tag = new_tag();
        let b_invite = self.b_invite(&req, &b_tag, max_forwards - 1, b_offer);
        let b_call_id = message::call_id(&b_invite.headers).unwrap_or_default();
        let span = tracing::info_span!("call", call = %id, a_call_id = %context.call_id);
        let _entered = span.clone().entered();
        info!(from = %context.caller.aor, to = %context.callee.aor,
              b_call_id = %b_call_id, "call: INVITE forwarded to the B leg");
        let b_key = self.layer.send_request(now, b_peer, b_invite.clone());
        let a_call_id = context.call_id.clone();
        let call = Call {
            stage: Stage::Calling,
            legs: [
                Leg {
                    peer,
                    call_id: a_call_id,
                    tag: new_tag(),
                    dialog: None,
                    offer_out: false,
                    offer_in: false,
                },
                Leg {
                    peer: b_peer,
                    call_id: b_call_id,
                    tag: b_tag,
                    dialog: None,
                    offer_out: false,
                    offer_in: false,
                },
            ],
            a_invite: req,
            a_key: key.clone(),
            b_invite,
            b_key: b_key.clone(),
            ports: [pa, pb],
            media: [a_media.clone(), None],
            codec: None,
            ring_deadline: Some(now + self.config.answer_timeout),
            end_deadline: None,
            byes: 0,
            context,
            src: None,
            span: span.clone(),
            src_codec: None,
            ack_pending: None,
            last_ack: None,
            commands: HashMap::new(),
        };
        self.calls.insert(id, call);
        self.a_invites.insert(key, id);
        self.clients.insert(b_key, (id, Pending::Initial));
        self.relay(id, RelayUpdate::Open { ports: [pa, pb] });
        if let Some(media) = a_media {
            self.relay(
                id,
                RelayUpdate::Remote {
                    side: Side::A,
                    media,
                },
            );
        }
    }

    fn contact(&self, transport: Transport) -> String {
        contact_of(&self.config, transport)
    }

    fn b_invite(
        &self,
        a: &Request,
        b_tag: &str,
        max_forwards: u32,
        sdp: Option<Vec<u8>>,
    ) -> Request {
        let fwd = &self.config.forward;
        let transport = fwd.peer.transport;
        let local = self.config.local_for(transport);
        let host = bracket(local.ip());
        let mut uri = fwd.uri.clone();
        uri.user = a.uri.auth.as_ref().map(|a| a.user.clone()).or(uri.user);
        let from = header_value(&a.headers, "From").unwrap_or_default();
        let to = header_value(&a.headers, "To").unwrap_or_default();
        let mut headers: Vec<Header> = vec![
            Header::Via(rsip::headers::Via::new(format!(
                "SIP/2.0/{transport} {host}:{};branch={};rport",
                local.port(),
                new_branch()
            ))),
            Header::MaxForwards(max_forwards.into()),
            Header::From(rsip::headers::From::new(format!(
                "{};tag={b_tag}",
                without_tag(&from)
            ))),
            Header::To(rsip::headers::To::new(without_tag(&to))),
            Header::CallId(rsip::headers::CallId::new(new_call_id(Some(&host)))),
            Header::CSeq(rsip::headers::CSeq::new("1 INVITE")),
            Header::Contact(rsip::headers::Contact::new(self.contact(transport))),
            other("Allow", ALLOW),
            other("User-Agent", &self.config.user_agent),
        ];
        let supported: Vec<String> = header_tokens(&a.headers, "Supported")
            .into_iter()
            .filter(|t| t != "100rel")
            .collect();
        if !supported.is_empty() {
            headers.push(other("Supported", &supported.join(", ")));
        }
        headers.extend(copied(&a.headers));
        let mut req = Request {
            method: Method::Invite,
            uri: uri.to_rsip(),
            version: rsip::Version::V2,
            headers: headers.into(),
            body: Vec::new(),
        };
        match sdp {
            Some(sdp) => set_body(&mut req.headers, &mut req.body, Some(sdp)),
            None => req.headers.push(Header::ContentLength(0u32.into())),
        }
        req
    }

    // -----------------------------------------------------------------------------------------
    // Responses
    // -----------------------------------------------------------------------------------------

    fn on_response(&mut self, now: Instant, key: ClientKey, resp: Response) {
        let Some((id, pending)) = self.clients.get(&key).cloned() else {
            return;
        };
        let _span = self.span(id).entered();
        let code = resp.status_code.code();
        // A 2xx to an INVITE may come again (our ACK lost): keep the entry to ACK it again;
        // every other final response ends the transaction's business.
        let invite = match &pending {
            Pending::Initial => true,
            Pending::Relay { request, .. } => request.method == Method::Invite,
            Pending::Bye => false,
        };
        if code >= 300 || (code >= 200 && !invite) {
            self.clients.remove(&key);
        }
        match pending {
            Pending::Initial => self.on_b_answer(now, id, resp),
            Pending::Relay {
                from,
                key: skey,
                request,
            } => self.on_relayed_response(now, id, from, &skey, &request, resp),
            Pending::Bye => {
                if code >= 200 {
                    self.bye_done(id);
                }
            }
        }
    }

    fn on_b_answer(&mut self, now: Instant, id: CallId, resp: Response) {
        let code = resp.status_code.code();
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let stage = call.stage;
        if code == 100 {
            return;
        }
        if (200..300).contains(&code) {
            match stage {
                Stage::Answered | Stage::Ending => {
                    // A retransmitted 2xx: our ACK was lost (or, with a delayed offer, still
                    // waits for A's answer).
                    if self.calls.get(&id).is_some_and(|c| c.ack_pending.is_none()) {
                        // The ACK sent before (with A's answer after a delayed offer).
                        self.ack_leg(now, id, Side::B, &resp);
                    }
                    return;
                }
                Stage::Cancelled => {
                    // CANCEL and 200 crossed (RFC 3261 §9.1): take the call and end it.
                    if self.b_dialog(now, id, &resp).is_ok() {
                        self.ack_leg(now, id, Side::B, &resp);
                        self.hangup(now, id, Some(Side::A));
                    } else {
                        self.finish(id);
                    }
                    return;
                }
                Stage::Calling | Stage::Early => {}
            }
            self.on_b_2xx(now, id, resp);
            return;
        }
        if code < 200 {
            if !matches!(stage, Stage::Calling | Stage::Early) {
                return;
            }
            let body = match self.relay_sdp(now, id, Side::B, true, &resp.headers, &resp.body) {
                Ok(b) => b,
                Err(e) => {
                    debug!(error = %e, "provisional SDP not anchored; relayed without it");
                    None
                }
            };
            let Some(call) = self.calls.get_mut(&id) else {
                return;
            };
            call.stage = Stage::Early;
            let a_tag = call.leg(Side::A).tag.clone();
            let reason = message::status_reason(&resp.status_code);
            let mut out = make_response(&call.a_invite, code, Some(&reason), Some(&a_tag));
            let a_key = call.a_key.clone();
            out.headers
                .push(Header::Contact(rsip::headers::Contact::new(contact_of(
                    &self.config,
                    call.leg(Side::A).peer.transport,
                ))));
            out.headers.extend(copied(&resp.headers));
            set_body(&mut out.headers, &mut out.body, body);
            self.respond(now, &a_key, out);
            return;
        }
        // 3xx-6xx: the same final answer on the A leg.
        match stage {
            Stage::Calling | Stage::Early => {
                let reason = message::status_reason(&resp.status_code);
                info!(code, %reason, "call: B leg refused; same answer to the A leg");
                let Some(call) = self.calls.get(&id) else {
                    return;
                };
                let mut out = make_response(
                    &call.a_invite,
                    code,
                    Some(&reason),
                    Some(&call.leg(Side::A).tag.clone()),
                );
                out.headers.extend(copied(&resp.headers));
                let a_key = call.a_key.clone();
                self.respond(now, &a_key, out);
                self.finish(id);
            }
            Stage::Cancelled => self.finish(id),
            Stage::Answered | Stage::Ending => {}
        }
    }

    fn b_dialog(&mut self, _now: Instant, id: CallId, resp: &Response) -> Result<(), String> {
        let local = self.config.local_for(self.config.forward.peer.transport);
        let Some(call) = self.calls.get_mut(&id) else {
            return Err("no call".into());
        };
        let mut d = Dialog::new_uac(&call.b_invite, resp).map_err(|e| e.to_string())?;
        d.set_via(
            local.ip().to_string(),
            local.port(),
            call.leg(Side::B).peer.transport,
        );
        let leg = call.leg_mut(Side::B);
        self.dialogs
            .insert((leg.call_id.clone(), leg.tag.clone()), (id, Side::B));
        leg.dialog = Some(d);
        Ok(())
    }

    fn on_b_2xx(&mut self, now: Instant, id: CallId, resp: Response) {
        if let Err(e) = self.b_dialog(now, id, &resp) {
            warn!(error = %e, "B leg's 200 cannot start a dialog; call refused");
            self.fail_call(now, id, 502, "the B leg's 200 OK cannot start a dialog");
            return;
        }
        // With a delayed offer B's 2xx is the offer and its ACK must carry A's answer: it
        // waits for A's ACK.
        let delayed = self
            .calls
            .get(&id)
            .is_some_and(|c| c.a_invite.body.is_empty());
        if delayed {
            let cseq = message::cseq(&resp.headers).map_or(1, |(n, _)| n);
            if let Some(c) = self.calls.get_mut(&id) {
                c.ack_pending = Some((Side::B, cseq));
            }
        } else {
            self.ack_leg(now, id, Side::B, &resp);
        }
        let body = match self.relay_sdp(now, id, Side::B, !delayed, &resp.headers, &resp.body) {
            Ok(b) => b,
            Err(e) => {
                warn!(error = %e, "B leg's answer cannot be anchored; call ended");
                let why = command::phrase(&format!("the B leg's answer cannot be anchored: {e}"));
                let Some(call) = self.calls.get(&id) else {
                    return;
                };
                let out = make_response(
                    &call.a_invite,
                    488,
                    Some(&why),
                    Some(&call.leg(Side::A).tag.clone()),
                );
                let a_key = call.a_key.clone();
                self.respond(now, &a_key, out);
                self.hangup(now, id, Some(Side::A));
                return;
            }
        };
        let local = self
            .config
            .local_for(self.calls[&id].leg(Side::A).peer.transport);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let code = resp.status_code.code();
        let reason = message::status_reason(&resp.status_code);
        let a_tag = call.leg(Side::A).tag.clone();
        let mut out = make_response(&call.a_invite, code, Some(&reason), Some(&a_tag));
        let transport = call.leg(Side::A).peer.transport;
        let contact = contact_of(&self.config, transport);
        out.headers
            .push(Header::Contact(rsip::headers::Contact::new(
                contact.clone(),
            )));
        out.headers.push(other("Allow", ALLOW));
        out.headers.extend(copied(&resp.headers));
        set_body(&mut out.headers, &mut out.body, body);
        let contact_uri = contact
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_string();
        match Dialog::new_uas(&call.a_invite, &a_tag, &contact_uri) {
            Ok(mut d) => {
                d.set_via(local.ip().to_string(), local.port(), transport);
                let leg = call.leg_mut(Side::A);
                leg.dialog = Some(d);
                self.dialogs
                    .insert((leg.call_id.clone(), leg.tag.clone()), (id, Side::A));
            }
            Err(e) => {
                debug!(error = %e, "no A-leg dialog; in-dialog requests from B cannot be relayed")
            }
        }
        call.stage = Stage::Answered;
        call.ring_deadline = None;
        let a_key = call.a_key.clone();
        info!("call: answered");
        self.respond(now, &a_key, out);
        if let Some(value) = self.config.record_all.clone() {
            let rid = {
                let call = &self.calls[&id];
                header_value(&call.a_invite.headers, &self.config.record_all_id_header)
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty())
            };
            if self.ensure_src(now, id, None).is_ok() {
                if let Some(s) = self.calls.get_mut(&id).and_then(|c| c.src.as_mut()) {
                    let op = s.start(now, &value, rid.as_deref());
                    debug!(?op, "record-all: recording started");
                }
                self.after_src(now, id);
            }
        }
    }

    /// `side`'s SDP in a message: updates the relay and returns the body rewritten for the
    /// other side (`None` when there is no SDP).
    fn relay_sdp(
        &mut self,
        now: Instant,
        id: CallId,
        side: Side,
        answer: bool,
        headers: &rsip::Headers,
        body: &[u8],
    ) -> Result<Option<Vec<u8>>, Error> {
        let Some(sdp) = sdp_body(headers, body) else {
            return Ok(None);
        };
        let info = media_info(sdp)?;
        let Some(call) = self.calls.get_mut(&id) else {
            return Ok(None);
        };
        let out = anchor(sdp, self.config.media_ip, call.port_facing(side.other()))?;
        call.media[side.index()] = Some(info.clone());
        // An answer (from B to an A offer, or from A to a B offer) fixes the codec: its first
        // audio format. An offer changes nothing until it is answered.
        let codec = info.codec().cloned();
        let changed = answer && codec.is_some() && codec != call.codec;
        let mut reoffer = false;
        if changed {
            call.codec = codec.clone();
            if let (Some(s), Some(c)) = (call.src.as_mut(), codec.clone()) {
                if s.is_recording() || s.is_starting() {
                    // The SRSs are re-INVITEd with the call's new codec.
                    info!(codec = %c.encoding, "codec changed mid-call; re-offering it to the SRSs");
                    s.set_codecs(now, vec![c.clone()]);
                    call.src_codec = Some(c);
                    reoffer = true;
                }
            }
        }
        self.relay(id, RelayUpdate::Remote { side, media: info });
        if changed {
            self.relay(id, RelayUpdate::Codec { format: codec });
        }
        if reoffer {
            self.after_src(now, id);
        }
        Ok(Some(out))
    }

    fn on_relayed_response(
        &mut self,
        now: Instant,
        id: CallId,
        from: Side,
        skey: &ServerKey,
        sreq: &Request,
        resp: Response,
    ) {
        let code = resp.status_code.code();
        if code == 100 {
            return;
        }
        let to = from.other();
        let method = sreq.method;
        if let Some(call) = self.calls.get_mut(&id) {
            if code >= 200 && matches!(method, Method::Invite | Method::Update) {
                call.leg_mut(to).offer_out = false;
                call.leg_mut(from).offer_in = false;
            }
        } else {
            return;
        }
        // A re-INVITE without SDP is a delayed offer: the 2xx is the offer, and our ACK waits
        // for the requester's answer (in its ACK).
        let delayed = method == Method::Invite && sreq.body.is_empty();
        if (200..300).contains(&code) && method == Method::Invite {
            let cseq = message::cseq(&resp.headers).map_or(1, |(n, _)| n);
            let Some(call) = self.calls.get_mut(&id) else {
                return;
            };
            let acked = call
                .last_ack
                .as_ref()
                .is_some_and(|(s, n, _)| *s == to && *n == cseq);
            if delayed && !acked {
                if call.ack_pending.is_none() {
                    call.ack_pending = Some((to, cseq));
                }
            } else {
                self.ack_leg(now, id, to, &resp);
            }
        }
        let body = if code < 300 {
            match self.relay_sdp(now, id, to, !delayed, &resp.headers, &resp.body) {
                Ok(b) => b,
                Err(e) => {
                    debug!(error = %e, "SDP in a relayed response not anchored");
                    None
                }
            }
        } else {
            None
        };
        let reason = message::status_reason(&resp.status_code);
        let mut out = make_response(sreq, code, Some(&reason), None);
        out.headers.extend(copied(&resp.headers));
        if let Some(call) = self.calls.get(&id) {
            if (101..300).contains(&code) && matches!(method, Method::Invite | Method::Update) {
                out.headers
                    .push(Header::Contact(rsip::headers::Contact::new(
                        self.contact(call.leg(from).peer.transport),
                    )));
            }
        }
        set_body(&mut out.headers, &mut out.body, body);
        self.respond(now, skey, out);
    }

    /// A leg's ACK for our 2xx. After a delayed offer it carries that leg's answer, which
    /// completes our ACK to the other leg; without an answer the call cannot have media and is
    /// ended.
    fn on_ack(&mut self, now: Instant, ack: Request) {
        let Some(tag) = header_value(&ack.headers, "To").and_then(|t| tag_of(&t)) else {
            return;
        };
        let call_id = message::call_id(&ack.headers).unwrap_or_default();
        let Some(&(id, from)) = self.dialogs.get(&(call_id, tag)) else {
            return;
        };
        let to = from.other();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some((side, cseq)) = call.ack_pending.filter(|(s, _)| *s == to) else {
            return;
        };
        call.ack_pending = None;
        let _span = self.span(id).entered();
        let answer = self.relay_sdp(now, id, from, true, &ack.headers, &ack.body);
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let Some(d) = call.leg(side).dialog.as_ref() else {
            return;
        };
        let mut out = d.make_ack(cseq);
        let peer = call.leg(side).peer;
        match answer {
            Ok(Some(sdp)) => {
                set_body(&mut out.headers, &mut out.body, Some(sdp));
                self.layer.send_request(now, peer, out);
            }
            Ok(None) | Err(_) => {
                warn!(
                    side = from.as_str(),
                    "delayed offer: the ACK has no usable answer; call ended"
                );
                self.layer.send_request(now, peer, out);
                self.hangup(now, id, None);
            }
        }
    }

    /// ACKs `side`'s 2xx `resp`: the ACK sent before for the same CSeq again (it may carry a
    /// delayed offer's answer), else a new one.
    fn ack_leg(&mut self, now: Instant, id: CallId, side: Side, resp: &Response) {
        let cseq = message::cseq(&resp.headers).map_or(1, |(n, _)| n);
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let peer = call.leg(side).peer;
        let ack = match &call.last_ack {
            Some((s, n, ack)) if *s == side && *n == cseq => (**ack).clone(),
            _ => {
                let Some(d) = call.leg(side).dialog.as_ref() else {
                    return;
                };
                d.make_ack(cseq)
            }
        };
        self.send_ack(now, id, side, cseq, ack, peer);
    }

    fn send_ack(
        &mut self,
        now: Instant,
        id: CallId,
        side: Side,
        cseq: u32,
        ack: Request,
        peer: Peer,
    ) {
        if let Some(call) = self.calls.get_mut(&id) {
            call.last_ack = Some((side, cseq, Box::new(ack.clone())));
        }
        self.layer.send_request(now, peer, ack);
    }

    fn on_client_timeout(&mut self, now: Instant, key: ClientKey) {
        let Some((id, pending)) = self.clients.remove(&key) else {
            return;
        };
        let _span = self.span(id).entered();
        match pending {
            Pending::Initial => {
                let stage = self.calls.get(&id).map(|c| c.stage);
                match stage {
                    Some(Stage::Calling) | Some(Stage::Early) => {
                        info!("call: B leg did not answer in time");
                        self.fail_call(now, id, 408, "the B leg did not answer");
                    }
                    Some(Stage::Cancelled) => self.finish(id),
                    _ => {}
                }
            }
            Pending::Relay { from, key, request } => {
                if let Some(call) = self.calls.get_mut(&id) {
                    if matches!(request.method, Method::Invite | Method::Update) {
                        call.leg_mut(from.other()).offer_out = false;
                        call.leg_mut(from).offer_in = false;
                    }
                }
                let why = format!("the {} leg did not answer", from.other().as_str());
                self.simple(now, &key, &request, 408, Some(&why), Vec::new());
            }
            Pending::Bye => self.bye_done(id),
        }
    }

    fn on_cancel(&mut self, now: Instant, invite: &ServerKey) {
        let Some(&id) = self.a_invites.get(invite) else {
            return;
        };
        let _span = self.span(id).entered();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if !matches!(call.stage, Stage::Calling | Stage::Early) {
            return;
        }
        info!("call: cancelled by the A leg");
        call.stage = Stage::Cancelled;
        call.ring_deadline = None;
        call.end_deadline = Some(now + self.config.timers.t1x64());
        let b_key = call.b_key.clone();
        let out = make_response(
            &call.a_invite,
            487,
            None,
            Some(&call.leg(Side::A).tag.clone()),
        );
        self.layer.cancel(now, &b_key);
        self.respond(now, invite, out);
    }

    fn no_answer(&mut self, now: Instant, id: CallId) {
        let _span = self.span(id).entered();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.ring_deadline = None;
        if !matches!(call.stage, Stage::Calling | Stage::Early) {
            return;
        }
        info!("call: B leg rang too long; cancelled");
        call.stage = Stage::Cancelled;
        call.end_deadline = Some(now + self.config.timers.t1x64());
        let b_key = call.b_key.clone();
        let out = make_response(
            &call.a_invite,
            480,
            Some("the B leg did not answer"),
            Some(&call.leg(Side::A).tag.clone()),
        );
        let a_key = call.a_key.clone();
        self.layer.cancel(now, &b_key);
        self.respond(now, &a_key, out);
    }

    /// Answers the A leg's INVITE with `code` and forgets the call (no dialog was set up).
    fn fail_call(&mut self, now: Instant, id: CallId, code: u16, why: &str) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        if matches!(call.stage, Stage::Calling | Stage::Early) {
            let out = make_response(
                &call.a_invite,
                code,
                Some(why),
                Some(&call.leg(Side::A).tag.clone()),
            );
            let a_key = call.a_key.clone();
            self.respond(now, &a_key, out);
        }
        self.finish(id);
    }

    // -----------------------------------------------------------------------------------------
    // In-dialog requests
    // -----------------------------------------------------------------------------------------

    fn in_dialog(
        &mut self,
        now: Instant,
        id: CallId,
        side: Side,
        key: ServerKey,
        peer: Peer,
        req: Request,
    ) {
        let _span = self.span(id).entered();
        let Some(call) = self.calls.get_mut(&id) else {
            self.simple(now, &key, &req, 481, None, Vec::new());
            return;
        };
        if let Some(d) = call.leg_mut(side).dialog.as_mut() {
            if !d.accept_remote_cseq(&req) {
                // RFC 3261 §12.2.2: a lower CSeq gets 500.
                self.simple(now, &key, &req, 500, Some("CSeq out of order"), Vec::new());
                return;
            }
        }
        let ending = call.stage == Stage::Ending;
        match req.method {
            Method::Bye => {
                self.simple(now, &key, &req, 200, None, Vec::new());
                if !ending {
                    info!(side = side.as_str(), "call: BYE");
                    self.hangup(now, id, Some(side));
                }
            }
            _ if ending => self.simple(now, &key, &req, 481, None, Vec::new()),
            Method::Info => match command::classify(&req) {
                Info::Relay => self.relay_request(now, id, side, key, req),
                Info::Refused(why) => {
                    let reason = header_value(&req.headers, "X-Reason").unwrap_or_default();
                    info!(x_reason = %reason, code = 400, "{why}");
                    self.simple(now, &key, &req, 400, Some(&why), Vec::new());
                    self.events.push_back(Event::Command {
                        call: id,
                        reason,
                        code: 400,
                    });
                }
                Info::Command(c) => self.command(now, id, key, peer, req, c),
            },
            Method::Invite | Method::Update => {
                let call = &self.calls[&id];
                if call.stage != Stage::Answered {
                    self.simple(now, &key, &req, 491, None, Vec::new());
                } else if call.leg(side).offer_out {
                    // RFC 3261 §14.2: we have an offer of our own towards this leg pending.
                    self.simple(now, &key, &req, 491, None, Vec::new());
                } else if call.leg(side).offer_in {
                    // RFC 3261 §14.2: a second offer while the first is unanswered.
                    let retry = other("Retry-After", "1");
                    self.simple(
                        now,
                        &key,
                        &req,
                        500,
                        Some("an earlier offer is still pending"),
                        vec![retry],
                    );
                } else {
                    self.relay_request(now, id, side, key, req);
                }
            }
            _ => self.relay_request(now, id, side, key, req),
        }
    }

    fn relay_request(
        &mut self,
        now: Instant,
        id: CallId,
        from: Side,
        key: ServerKey,
        req: Request,
    ) {
        let to = from.other();
        let body = match self.relay_sdp(now, id, from, false, &req.headers, &req.body) {
            Ok(Some(sdp)) => Some(("application/sdp".to_string(), sdp)),
            Ok(None) if req.body.is_empty() => None,
            Ok(None) => {
                let ct = header_value(&req.headers, "Content-Type")
                    .unwrap_or_else(|| "application/octet-stream".into());
                Some((ct, req.body.clone()))
            }
            Err(e) => {
                let why = command::phrase(&format!("offer cannot be anchored: {e}"));
                self.simple(now, &key, &req, 488, Some(&why), Vec::new());
                return;
            }
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let peer = call.leg(to).peer;
        let Some(d) = call.leg_mut(to).dialog.as_mut() else {
            self.simple(
                now,
                &key,
                &req,
                481,
                Some("the other leg has no dialog"),
                Vec::new(),
            );
            return;
        };
        let mut out = d.new_request(req.method, body);
        out.headers.extend(copied(&req.headers));
        if matches!(req.method, Method::Invite | Method::Update) {
            call.leg_mut(to).offer_out = true;
            call.leg_mut(from).offer_in = true;
        }
        debug!(method = %req.method, from = from.as_str(), "relayed");
        let ckey = self.layer.send_request(now, peer, out);
        self.clients.insert(
            ckey,
            (
                id,
                Pending::Relay {
                    from,
                    key,
                    request: Box::new(req),
                },
            ),
        );
    }

    // -----------------------------------------------------------------------------------------
    // Recording commands
    // -----------------------------------------------------------------------------------------

    fn command(
        &mut self,
        now: Instant,
        id: CallId,
        key: ServerKey,
        peer: Peer,
        req: Request,
        c: command::Command,
    ) {
        if !siprec_sip::source::allowed(&self.config.control_from, peer.addr.ip()) {
            let why = command::phrase(&format!(
                "{} may not control recording (not in --control-from)",
                peer.addr.ip()
            ));
            info!(x_reason = %c.reason, code = 403, "{why}");
            self.simple(now, &key, &req, 403, Some(&why), Vec::new());
            self.events.push_back(Event::Command {
                call: id,
                reason: c.reason,
                code: 403,
            });
            return;
        }
        let refusal = {
            let call = &self.calls[&id];
            let srtp = call.media.iter().flatten().any(|m| m.srtp);
            if call.stage != Stage::Answered {
                Some((400, "the call is not answered yet".to_string()))
            } else if c.activity == src::Activity::Start && srtp && !self.is_recording(id) {
                Some((503, command::reply_phrase(src::Reply::StartFailed, Some(
                    "the call's media is SRTP end to end (RTP/SAVP): the gateway relays it but cannot record it",
                ))))
            } else if c.activity == src::Activity::Start
                && call.codec.is_none()
                && !self.is_recording(id)
            {
                Some((
                    503,
                    command::reply_phrase(
                        src::Reply::StartFailed,
                        Some("the call has no audio codec yet"),
                    ),
                ))
            } else {
                None
            }
        };
        if let Some((code, why)) = refusal {
            info!(x_reason = %c.reason, code, "{why}");
            self.simple(now, &key, &req, code, Some(&why), Vec::new());
            self.events.push_back(Event::Command {
                call: id,
                reason: c.reason,
                code,
            });
            return;
        }
        if let Err(why) = self.ensure_src(now, id, c.call_sid.as_deref()) {
            let why = command::phrase(&why);
            self.simple(now, &key, &req, 500, Some(&why), Vec::new());
            self.events.push_back(Event::Command {
                call: id,
                reason: c.reason,
                code: 500,
            });
            return;
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(s) = call.src.as_mut() else { return };
        let op = s.activity(now, c.activity, &c.server, c.recording_id.as_deref());
        call.commands.insert(
            op,
            Command {
                key,
                request: Box::new(req),
                reason: c.reason,
            },
        );
        self.after_src(now, id);
    }

    /// The call's SRC, made on first use (with the call's codec), or made anew when the codec
    /// changed while no recording was running.
    fn ensure_src(
        &mut self,
        now: Instant,
        id: CallId,
        call_sid: Option<&str>,
    ) -> Result<(), String> {
        let wall = self.wall(now);
        let cfg = &self.config;
        let Some(call) = self.calls.get_mut(&id) else {
            return Err("no such call".into());
        };
        let codec = call.codec.clone();
        let stale = call.src.as_ref().is_some_and(|s| {
            s.is_quiet() && !s.is_recording() && !s.is_starting() && codec != call.src_codec
        });
        if call.src.is_some() && !stale {
            return Ok(());
        }
        let find = |t: Transport| cfg.local.iter().find(|(x, _)| *x == t).map(|(_, a)| *a);
        let mut sc = SrcConfig::new(cfg.media_ip, None, None, call.ports);
        sc.timers = cfg.timers;
        sc.udp = find(Transport::Udp);
        sc.tcp = find(Transport::Tcp);
        sc.tls = find(Transport::Tls).or(sc.tcp);
        sc.start_timeout = cfg.recording.start_timeout;
        sc.target_timeout = cfg.recording.target_timeout;
        sc.request_timeout = cfg.recording.request_timeout;
        sc.srtp = cfg.recording.srtp;
        sc.user_agent = cfg.user_agent.clone();
        let codec_offered = codec.clone();
        if let Some(c) = codec {
            sc.codecs = vec![c];
        }
        let mut ctx = call.context.clone();
        if let Some(sid) = call_sid {
            ctx.call_sid = Some(sid.to_string());
        }
        let core = SrcCore::new(sc, ctx, now, wall).map_err(|e| e.to_string())?;
        call.src = Some(core);
        call.src_codec = codec_offered;
        Ok(())
    }

    /// The call's span (none once it is gone).
    fn span(&self, id: CallId) -> tracing::Span {
        self.calls
            .get(&id)
            .map_or_else(tracing::Span::none, |c| c.span.clone())
    }

    fn wall(&self, now: Instant) -> SystemTime {
        let (t0, w0) = self.clock;
        match now.checked_duration_since(t0) {
            Some(d) => w0 + d,
            None => w0 - t0.duration_since(now),
        }
    }

    /// Moves the SRC's output of `id` out: transmits (learning each recording session's
    /// Call-ID), relay changes, resolutions, and the answers to waiting INFOs.
    fn after_src(&mut self, now: Instant, id: CallId) {
        let _span = self.span(id).entered();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(s) = call.src.as_mut() else { return };
        while let Some(t) = s.poll_transmit() {
            if let Some(cid) = transmit_call_id(&t.payload) {
                self.rs_calls.entry(cid).or_insert(id);
            }
            self.transmits.push_back(t);
        }
        let mut answers = Vec::new();
        while let Some(ev) = s.poll_event() {
            match ev {
                src::Event::Resolve { rs, uri } => {
                    self.events.push_back(Event::Resolve { call: id, rs, uri })
                }
                src::Event::Media { rs, plan } => self.events.push_back(Event::Relay {
                    call: id,
                    update: RelayUpdate::Fork { rs, plan },
                }),
                src::Event::MediaStop { rs } => self.events.push_back(Event::Relay {
                    call: id,
                    update: RelayUpdate::ForkStop { rs },
                }),
                src::Event::Srs(report) => {
                    info!(srs = %report.entry, status = ?report.status, detail = %report.detail, "{}", report.line);
                }
                src::Event::Outcome(o) => answers.push(o),
                src::Event::RecordingEnded { reason } => {
                    warn!(%reason, "recording ended");
                }
            }
        }
        for o in answers {
            let Some(call) = self.calls.get_mut(&id) else {
                return;
            };
            // The SRC core has logged the contract's line (inside this call's span).
            let (code, phrase) = command::reply_of(&o);
            if let Some(cmd) = call.commands.remove(&o.op) {
                let resp = make_response(&cmd.request, code, Some(&phrase), None);
                self.respond(now, &cmd.key, resp);
                self.events.push_back(Event::Command {
                    call: id,
                    reason: cmd.reason,
                    code,
                });
            }
        }
        if self
            .calls
            .get(&id)
            .is_some_and(|c| c.stage == Stage::Ending)
        {
            self.maybe_finish(id);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Ending
    // -----------------------------------------------------------------------------------------

    /// Ends an established call: BYE to every leg but `from` (who sent one), the recording
    /// stopped (BYE to each SRS), then the call is forgotten.
    fn hangup(&mut self, now: Instant, id: CallId, from: Option<Side>) {
        let _span = self.span(id).entered();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.stage == Stage::Ending {
            return;
        }
        call.stage = Stage::Ending;
        call.ring_deadline = None;
        call.end_deadline = Some(now + self.config.timers.t1x64() + Duration::from_secs(2));
        let mut byes = Vec::new();
        for side in [Side::A, Side::B] {
            if Some(side) == from {
                continue;
            }
            let peer = call.leg(side).peer;
            if let Some(d) = call.leg_mut(side).dialog.as_mut() {
                byes.push((peer, d.new_request(Method::Bye, None)));
            }
        }
        call.byes = byes.len();
        if let Some(s) = call.src.as_mut() {
            if s.is_recording() || s.is_starting() {
                s.stop(now);
            }
        }
        for (peer, bye) in byes {
            let key = self.layer.send_request(now, peer, bye);
            self.clients.insert(key, (id, Pending::Bye));
        }
        self.after_src(now, id);
        self.maybe_finish(id);
    }

    fn bye_done(&mut self, id: CallId) {
        if let Some(call) = self.calls.get_mut(&id) {
            call.byes = call.byes.saturating_sub(1);
        }
        self.maybe_finish(id);
    }

    fn maybe_finish(&mut self, id: CallId) {
        let done = self.calls.get(&id).is_some_and(|c| {
            c.stage == Stage::Ending && c.byes == 0 && c.src.as_ref().is_none_or(SrcCore::is_quiet)
        });
        if done {
            self.finish(id);
        }
    }

    /// Forgets the call: its dialogs, transactions, recording sessions and relay ports.
    fn finish(&mut self, id: CallId) {
        let _span = self.span(id).entered();
        let Some(call) = self.calls.remove(&id) else {
            return;
        };
        for leg in &call.legs {
            self.dialogs.remove(&(leg.call_id.clone(), leg.tag.clone()));
        }
        self.a_invites.retain(|_, c| *c != id);
        self.clients.retain(|_, (c, _)| *c != id);
        self.rs_calls.retain(|_, c| *c != id);
        for p in call.ports {
            self.ports.release(p);
        }
        info!("call: ended");
        self.relay(id, RelayUpdate::Close);
        self.events.push_back(Event::CallEnded { call: id });
    }

    fn relay(&mut self, call: CallId, update: RelayUpdate) {
        self.events.push_back(Event::Relay { call, update });
    }
}

/// Our Contact (with angle brackets) for a leg over `transport`.
fn contact_of(config: &GatewayConfig, transport: Transport) -> String {
    let local = config.local_for(transport);
    let host = bracket(local.ip());
    match transport {
        Transport::Udp => format!("<sip:gw@{host}:{}>", local.port()),
        Transport::Tcp => format!("<sip:gw@{host}:{};transport=tcp>", local.port()),
        Transport::Tls => format!("<sips:gw@{host}:{}>", local.port()),
    }
}

/// The call's parties and ids from the A leg's INVITE (From = caller, To = callee).
fn call_context(req: &Request) -> Result<CallContext, String> {
    let party = |name: &str| -> Result<Party, String> {
        let v = header_value(&req.headers, name).ok_or(format!("no {name} header"))?;
        let (display, uri, _) = split_name_addr(&v);
        let aor = uri.trim().to_string();
        if aor.is_empty() || aor.chars().any(char::is_control) || aor.len() > 512 {
            return Err(format!("the {name} header has no usable URI"));
        }
        Ok(Party {
            name: display
                .map(|d| {
                    d.chars()
                        .filter(|c| !c.is_control())
                        .take(128)
                        .collect::<String>()
                })
                .filter(|d| !d.trim().is_empty()),
            aor,
        })
    };
    Ok(CallContext {
        call_id: message::call_id(&req.headers).ok_or("no Call-ID header")?,
        session_id: None,
        direction: CallDirection::Inbound,
        caller: party("From")?,
        callee: party("To")?,
        call_sid: None,
        account_sid: None,
        application_sid: None,
        extra_headers: Vec::new(),
    })
}

/// A From/To value without its tag parameter.
fn without_tag(value: &str) -> String {
    let (display, uri, params) = split_name_addr(value);
    let kept: String = params
        .split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty() && !p.to_ascii_lowercase().starts_with("tag="))
        .map(|p| format!(";{p}"))
        .collect();
    match display {
        Some(d) if !d.is_empty() => format!("\"{}\" <{uri}>{kept}", d.replace(['"', '\\'], "")),
        _ => format!("<{uri}>{kept}"),
    }
}

/// Every header of `headers` the gateway does not write itself, as it was.
fn copied(headers: &rsip::Headers) -> Vec<Header> {
    headers
        .iter()
        .map(header_name_value)
        .filter(|(n, _)| !is_own(n))
        .map(|(n, v)| other(n, v))
        .collect()
}

fn set_body(headers: &mut rsip::Headers, body: &mut Vec<u8>, sdp: Option<Vec<u8>>) {
    let Some(sdp) = sdp else { return };
    headers.retain(|h| !matches!(h, Header::ContentLength(_) | Header::ContentType(_)));
    headers.push(Header::ContentType(rsip::headers::ContentType::new(
        "application/sdp",
    )));
    headers.push(Header::ContentLength((sdp.len() as u32).into()));
    *body = sdp;
}

/// The Call-ID of a message the SRC sends.
fn transmit_call_id(payload: &[u8]) -> Option<String> {
    match siprec_sip::parse_message(payload).ok()? {
        SipMessage::Request(r) => message::call_id(&r.headers),
        SipMessage::Response(r) => message::call_id(&r.headers),
    }
}
