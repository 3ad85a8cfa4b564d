//! The B2BUA state machine. See the [crate docs](crate) for what it does and the call order.
//!
//! This file holds the types, the public API and the transaction layer's dispatch; the rest is
//! split by what it handles: `invite` (a new call and the B leg's answers, CANCEL, no answer),
//! `dialog` (requests relayed inside the dialogs, ACKs, delayed offers, SDP anchoring),
//! `recording` (the INFO commands and the call's SRC), `ending` (hang-up and forgetting a
//! call), `util` (header copying, From/To values, bodies).

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
    self, header_name_value, make_response, new_branch, new_call_id, new_tag, split_name_addr,
    NameAddr,
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

mod dialog;
mod ending;
mod invite;
mod recording;
mod util;

use util::{call_context, contact_of, copied, set_body, transmit_call_id, without_tag};

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
    message::content_type(headers)
        .is_some_and(|c| c.is("application/sdp"))
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
        let to_tag = siprec_sip::message::to_tag(&req.headers);
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

    fn contact(&self, transport: Transport) -> String {
        contact_of(&self.config, transport)
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

    fn relay(&mut self, call: CallId, update: RelayUpdate) {
        self.events.push_back(Event::Relay { call, update });
    }
}
