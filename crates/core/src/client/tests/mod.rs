//! Scenario tests in virtual time: the SRC core against simulated SRSs on a simulated
//! network; `now` is stepped from timer to timer, nothing sleeps.

mod contract;
mod failover;
mod invite;
mod pause_resume;
mod server_string;
mod session_timers;
mod srs_requests;
mod start;
mod stop;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rs_metadata::DataMode;
use siprec_sdp::{AnswerConfig, Format};
use siprec_sip::dialog::Dialog;
use siprec_sip::message::{
    self, content_type, header_value, make_response, new_tag, parse_message, tag_of,
};
use siprec_sip::rsip::headers::UntypedHeader;
use siprec_sip::rsip::{self, Header, Method, Request, Response, SipMessage};
use siprec_sip::transaction::{
    Event as TxEvent, Peer, ServerKey, TimerConfig, TransactionLayer, Transport,
};

use crate::body;

use super::config::{accepted_key, new_srtp_keys};
use super::requests::{new_md_id, other};
use super::*;

const SRC_ADDR: &str = "192.0.2.1:5060";

fn t0() -> Instant {
    Instant::now()
}

/// How a simulated SRS answers the initial INVITE.
#[derive(Debug, Clone, PartialEq)]
enum InviteMode {
    /// 200 at once.
    Accept,
    /// This final status at once.
    Reject(u16),
    /// Nothing at all (not even 100 Trying): a dead host.
    Silent,
    /// 100 Trying, then nothing.
    Trying,
    /// 100 Trying, 200 after the delay.
    Delay(Duration),
    /// 302 to this Contact.
    Redirect(String),
}

struct FakeSrs {
    addr: SocketAddr,
    layer: TransactionLayer,
    mode: InviteMode,
    ignore_cancel: bool,
    glare: usize,
    reinvite_code: Option<u16>,
    session_expires: Option<&'static str>,
    allow_update: bool,
    dialogs: Vec<Dialog>,
    received: Vec<Request>,
    responses: Vec<Response>,
    acks: Vec<Request>,
    scheduled: Vec<(Instant, ServerKey, Response)>,
    pending_invites: Vec<(ServerKey, Request)>,
    version: u64,
    /// How SRTP offers are answered: `None` declined (the SRS cannot decrypt),
    /// `Some(true)` accepted with a key of the same tag and suite, `Some(false)` answered
    /// `RTP/AVP` (a broken SRS that would take the audio in clear).
    srtp: Option<bool>,
    /// With `srtp: Some(true)`: accept the offered `a=crypto` of this tag instead of the
    /// first supported one (a tag that was not offered is answered as is, suite `_80`).
    srtp_tag: Option<u32>,
}

impl FakeSrs {
    fn new(addr: &str, mode: InviteMode) -> FakeSrs {
        FakeSrs {
            addr: addr.parse().unwrap(),
            layer: TransactionLayer::new(TimerConfig::default()),
            mode,
            ignore_cancel: false,
            glare: 0,
            reinvite_code: None,
            session_expires: None,
            allow_update: true,
            dialogs: Vec::new(),
            received: Vec::new(),
            responses: Vec::new(),
            acks: Vec::new(),
            scheduled: Vec::new(),
            pending_invites: Vec::new(),
            version: 1,
            srtp: None,
            srtp_tag: None,
        }
    }

    fn src_peer(&self) -> Peer {
        Peer {
            transport: Transport::Udp,
            addr: SRC_ADDR.parse().unwrap(),
        }
    }

    fn handle(&mut self, now: Instant, from: Peer, bytes: &[u8]) {
        if self.mode == InviteMode::Silent {
            return;
        }
        let msg = parse_message(bytes).unwrap();
        self.layer.handle_message(now, from, msg);
        self.drive(now);
    }

    fn answer(&mut self, req: &Request) -> Option<String> {
        let ct = content_type(&req.headers);
        let parts = body::split(ct.as_ref(), &req.body).ok()?;
        let mut sdp = String::from_utf8(parts.sdp?).ok()?;
        if self.srtp == Some(false) {
            sdp = sdp.replace("RTP/SAVP", "RTP/AVP");
        }
        let offer = siprec_sdp::parse(sdp.as_bytes()).ok()?;
        self.version += 1;
        let mut cfg = AnswerConfig::new(self.addr.ip(), 7, self.version);
        if self.srtp == Some(true) {
            cfg.srtp = true;
            cfg.local_crypto = offer
                .media
                .iter()
                .map(|m| {
                    let offered = siprec_rtp::srtp::SdesKey::choose(&m.crypto);
                    let (tag, suite) = match self.srtp_tag {
                        None => (offered.as_ref()?.tag, offered.as_ref()?.suite),
                        Some(t) => m
                            .crypto
                            .iter()
                            .filter_map(|v| siprec_rtp::srtp::SdesKey::parse(v).ok())
                            .find(|k| k.tag == t)
                            .map_or((t, siprec_rtp::srtp::SrtpSuite::AesCm128HmacSha1_80), |k| {
                                (k.tag, k.suite)
                            }),
                    };
                    Some(siprec_rtp::srtp::SdesKey::new(tag, suite, [7; 30]).to_attribute())
                })
                .collect();
        }
        let ports: Vec<Option<u16>> = (0..offer.media.len())
            .map(|i| Some(30000 + 2 * i as u16 + self.addr.port() % 100 * 10))
            .collect();
        siprec_sdp::answer(&offer, &ports, &cfg)
            .ok()
            .map(|(a, _)| a)
    }

    fn ok_for(&mut self, req: &Request, tag: Option<&str>) -> Response {
        let mut resp = make_response(req, 200, None, tag);
        resp.headers.push(other(
            "Contact",
            &format!("<sip:srs@{}>;+sip.srs", self.addr),
        ));
        if self.allow_update {
            resp.headers.push(other("Allow", ALLOW));
        } else {
            resp.headers
                .push(other("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS"));
        }
        if let Some(se) = self.session_expires {
            resp.headers.push(other("Session-Expires", se));
            resp.headers.push(other("Require", "timer"));
        }
        if let Some(a) = self.answer(req) {
            resp.headers
                .push(Header::ContentType(rsip::headers::ContentType::new(
                    "application/sdp",
                )));
            resp.body = a.into_bytes();
        }
        resp
    }

    fn drive(&mut self, now: Instant) {
        while let Some(ev) = self.layer.poll_event() {
            match ev {
                TxEvent::Request { key, request, .. } => self.on_request(now, key, request),
                TxEvent::Ack { request, .. } => self.acks.push(request),
                TxEvent::Response { response, .. } => self.responses.push(response),
                TxEvent::Cancelled { invite, cancel, .. } => {
                    self.received.push(cancel);
                    if !self.ignore_cancel {
                        if let Some(i) = self.pending_invites.iter().position(|(k, _)| *k == invite)
                        {
                            let (k, req) = self.pending_invites.remove(i);
                            self.scheduled.retain(|(_, sk, _)| *sk != k);
                            let resp = make_response(&req, 487, None, Some("srs-tag"));
                            self.layer.respond(now, &k, resp).unwrap();
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn on_request(&mut self, now: Instant, key: ServerKey, req: Request) {
        self.received.push(req.clone());
        let in_dialog = header_value(&req.headers, "To")
            .and_then(|t| tag_of(&t))
            .is_some();
        match (req.method, in_dialog) {
            (Method::Invite, false) => match self.mode.clone() {
                InviteMode::Accept => {
                    let tag = new_tag();
                    let resp = self.ok_for(&req, Some(&tag));
                    self.dialogs
                        .push(Dialog::new_uas(&req, &tag, "sip:srs@192.0.2.99").unwrap());
                    self.layer.respond(now, &key, resp).unwrap();
                }
                InviteMode::Reject(code) => {
                    let mut resp = make_response(&req, code, None, Some("srs-tag"));
                    if code == 420 {
                        resp.headers.push(other("Unsupported", "siprec"));
                    }
                    self.layer.respond(now, &key, resp).unwrap();
                }
                InviteMode::Redirect(contact) => {
                    let mut resp = make_response(&req, 302, None, Some("srs-tag"));
                    resp.headers.push(other("Contact", &format!("<{contact}>")));
                    self.layer.respond(now, &key, resp).unwrap();
                }
                InviteMode::Delay(d) => {
                    let tag = new_tag();
                    let resp = self.ok_for(&req, Some(&tag));
                    self.dialogs
                        .push(Dialog::new_uas(&req, &tag, "sip:srs@192.0.2.99").unwrap());
                    self.scheduled.push((now + d, key.clone(), resp));
                    self.pending_invites.push((key, req));
                }
                InviteMode::Trying => self.pending_invites.push((key, req)),
                InviteMode::Silent => {}
            },
            (Method::Invite, true) if self.reinvite_code.is_some() => {
                let code = self.reinvite_code.unwrap_or(500);
                let resp = make_response(&req, code, None, None);
                self.layer.respond(now, &key, resp).unwrap();
            }
            (Method::Invite, true) if self.glare > 0 => {
                self.glare -= 1;
                let resp = make_response(&req, 491, None, None);
                self.layer.respond(now, &key, resp).unwrap();
            }
            (Method::Invite | Method::Update, true) => {
                let resp = self.ok_for(&req, None);
                self.layer.respond(now, &key, resp).unwrap();
            }
            _ => {
                let resp = make_response(&req, 200, None, None);
                self.layer.respond(now, &key, resp).unwrap();
            }
        }
    }

    fn fire(&mut self, now: Instant) {
        let due: Vec<_> = self
            .scheduled
            .iter()
            .filter(|(t, _, _)| *t <= now)
            .cloned()
            .collect();
        self.scheduled.retain(|(t, _, _)| *t > now);
        for (_, key, resp) in due {
            self.pending_invites.retain(|(k, _)| *k != key);
            let _ = self.layer.respond(now, &key, resp);
        }
        self.layer.handle_timeout(now);
        self.drive(now);
    }

    fn next_timeout(&self) -> Option<Instant> {
        let s = self.scheduled.iter().map(|(t, _, _)| *t).min();
        match (s, self.layer.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Sends an in-dialog request from the SRS (BYE, UPDATE, re-INVITE).
    fn send(&mut self, now: Instant, method: Method, body: Option<(String, Vec<u8>)>) {
        let mut d = self.dialogs.pop().unwrap();
        d.set_via(self.addr.ip().to_string(), self.addr.port(), Transport::Udp);
        let req = d.new_request(method, body);
        self.dialogs.push(d);
        let peer = self.src_peer();
        self.layer.send_request(now, peer, req);
    }

    fn methods(&self) -> Vec<String> {
        self.received.iter().map(|r| r.method.to_string()).collect()
    }
}

struct Net {
    now: Instant,
    src: SrcCore,
    srs: Vec<FakeSrs>,
    events: Vec<Event>,
    resolutions: HashMap<String, Result<Vec<Target>, String>>,
    unreachable: Vec<SocketAddr>,
    /// Addresses that refuse TCP connections only.
    refuse_tcp: Vec<SocketAddr>,
}

/// The scenarios' configuration. The RFC 3261 §18.1.1 size rule (a SIPREC INVITE over
/// TCP when the URI names no transport) is off here so the scenarios stay on the transport
/// they name; `a_large_invite_goes_over_tcp_unless_the_uri_asks_for_udp` tests it.
fn config() -> SrcConfig {
    let mut c = SrcConfig::new(
        "192.0.2.1".parse().unwrap(),
        Some(5060),
        Some(5060),
        [40000, 40002],
    );
    c.large_requests_over_tcp = false;
    c
}

impl Net {
    fn new(srs: Vec<FakeSrs>) -> Net {
        Net::with_config(srs, config())
    }

    fn with_config(srs: Vec<FakeSrs>, config: SrcConfig) -> Net {
        let now = t0();
        let src = SrcCore::new(
            config,
            CallContext::example(),
            now,
            UNIX_EPOCH + Duration::from_secs(1_714_557_600),
        )
        .unwrap();
        Net {
            now,
            src,
            srs,
            events: Vec::new(),
            resolutions: HashMap::new(),
            unreachable: Vec::new(),
            refuse_tcp: Vec::new(),
        }
    }

    fn srs(&mut self, i: usize) -> &mut FakeSrs {
        &mut self.srs[i]
    }

    /// Moves every message and event until the network is quiet at `self.now`.
    fn settle(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            while let Some(ev) = self.src.poll_event() {
                moved = true;
                if let Event::Resolve { rs, uri } = &ev {
                    let key = uri.to_string();
                    let res =
                        self.resolutions
                            .get(&key)
                            .cloned()
                            .unwrap_or_else(|| match &uri.host {
                                Host::Ip(ip) => Ok(vec![Target {
                                    transport: uri.required_transport().unwrap_or(Transport::Udp),
                                    addr: SocketAddr::new(*ip, uri.port.unwrap_or(5060)),
                                }]),
                                Host::Name(n) => Err(format!("no DNS for {n}")),
                            });
                    let (rs, now) = (*rs, self.now);
                    self.events.push(ev);
                    self.src.resolved(now, rs, res);
                    continue;
                }
                self.events.push(ev);
            }
            while let Some(t) = self.src.poll_transmit() {
                moved = true;
                if self.unreachable.contains(&t.peer.addr)
                    || (t.peer.transport == Transport::Tcp
                        && self.refuse_tcp.contains(&t.peer.addr))
                {
                    let now = self.now;
                    self.src
                        .handle_transport_error(now, t.peer, "connection refused");
                    continue;
                }
                let from = Peer {
                    transport: t.peer.transport,
                    addr: SRC_ADDR.parse().unwrap(),
                };
                let now = self.now;
                if let Some(s) = self.srs.iter_mut().find(|s| s.addr == t.peer.addr) {
                    s.handle(now, from, &t.payload);
                }
            }
            for i in 0..self.srs.len() {
                while let Some(t) = self.srs[i].layer.poll_transmit() {
                    moved = true;
                    let from = Peer {
                        transport: t.peer.transport,
                        addr: self.srs[i].addr,
                    };
                    let now = self.now;
                    self.src.handle_bytes(now, from, &t.payload);
                }
            }
            if !moved {
                return;
            }
        }
        panic!("network never settles");
    }

    /// Runs timers until `until` (inclusive).
    fn run_until(&mut self, until: Instant) {
        self.settle();
        loop {
            let mut next = self.src.poll_timeout();
            for s in &self.srs {
                if let Some(t) = s.next_timeout() {
                    next = Some(next.map_or(t, |n| n.min(t)));
                }
            }
            match next {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    let now = self.now;
                    self.src.handle_timeout(now);
                    for s in &mut self.srs {
                        s.fire(now);
                    }
                    self.settle();
                }
                _ => {
                    self.now = until;
                    self.settle();
                    return;
                }
            }
        }
    }

    /// Runs the next timer (of the SRC or any SRS), at most a minute ahead.
    fn step(&mut self) {
        self.settle();
        let mut next = self.src.poll_timeout();
        for s in &self.srs {
            if let Some(t) = s.next_timeout() {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        let limit = self.now + Duration::from_secs(60);
        let until = next.unwrap_or(limit).min(limit).max(self.now);
        self.run_until(until);
    }

    fn stop(&mut self) -> OpId {
        let now = self.now;
        let op = self.src.stop(now);
        self.settle();
        op
    }

    fn pause(&mut self) -> OpId {
        let now = self.now;
        let op = self.src.pause(now);
        self.settle();
        op
    }

    fn resume(&mut self) -> OpId {
        let now = self.now;
        let op = self.src.resume(now);
        self.settle();
        op
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    fn start(&mut self, server: &str, id: Option<&str>) -> OpId {
        let now = self.now;
        let op = self.src.start(now, server, id);
        self.settle();
        op
    }

    fn outcome(&mut self, op: OpId) -> Option<Outcome> {
        self.events.iter().find_map(|e| match e {
            Event::Outcome(o) if o.op == op => Some(o.clone()),
            _ => None,
        })
    }

    /// Runs until the outcome of `op` is there (at most a minute of virtual time).
    fn await_outcome(&mut self, op: OpId) -> Outcome {
        let deadline = self.now + Duration::from_secs(60);
        while self.now < deadline {
            if let Some(o) = self.outcome(op) {
                return o;
            }
            self.step();
        }
        panic!("no outcome for {op:?}: {:#?}", self.events);
    }

    fn srs_events(&self) -> Vec<SrsReport> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Srs(r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    }

    fn plans(&self, rs: RsId) -> Vec<MediaPlan> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Media { rs: r, plan } if *r == rs => Some(plan.clone()),
                _ => None,
            })
            .collect()
    }
}

const A: &str = "192.0.2.10:5060";
const B: &str = "192.0.2.11:5060";
const C: &str = "192.0.2.12:5060";

fn list(addrs: &[&str]) -> String {
    addrs
        .iter()
        .map(|a| format!("sip:{a}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn body_text(r: &Request) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}
