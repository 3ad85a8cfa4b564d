//! Scenario tests of the B2BUA core in virtual time: a caller (A), the callee behind
//! `--forward` (B) and a recording server (the project's own `SrsCore`) exchange real SIP
//! bytes with the gateway over a simulated network; time only moves when a test says so.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rsip::headers::UntypedHeader;
use rsip::{Header, Method, Request, Response, SipMessage};
use siprec_gateway::{
    CallId, Event, Forward, GatewayConfig, GatewayCore, PortAllocator, RelayUpdate, Side,
};
use siprec_sip::dialog::Dialog;
use siprec_sip::message::{header_value, make_response, parse_message};
use siprec_sip::rsip;
use siprec_sip::transaction::{
    ClientKey, Event as TxEvent, Peer, ServerKey, TransactionLayer, Transport,
};

const GW: &str = "192.0.2.1:5060";
const A: &str = "192.0.2.10:5060";
const B: &str = "192.0.2.20:5060";
const SRS: &str = "192.0.2.30:5060";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn udp(s: &str) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: addr(s),
    }
}

fn other(n: &str, v: &str) -> Header {
    Header::Other(n.into(), v.into())
}

struct Ports {
    next: u16,
    released: Arc<Mutex<Vec<u16>>>,
}

impl PortAllocator for Ports {
    fn allocate(&mut self) -> Option<u16> {
        self.next += 2;
        Some(self.next)
    }
    fn release(&mut self, port: u16) {
        self.released.lock().unwrap().push(port);
    }
}

/// A phone: a transaction layer and what it received.
struct Ua {
    addr: SocketAddr,
    layer: TransactionLayer,
    requests: Vec<(ServerKey, Request)>,
    responses: Vec<(ClientKey, Response)>,
    acks: Vec<Request>,
    /// Status lines as received, with the CSeq they answer (rsip keeps no custom phrase of a
    /// known code).
    status_lines: Vec<(String, String)>,
}

impl Ua {
    fn new(a: &str) -> Ua {
        Ua {
            addr: addr(a),
            layer: TransactionLayer::new(Default::default()),
            requests: Vec::new(),
            responses: Vec::new(),
            acks: Vec::new(),
            status_lines: Vec::new(),
        }
    }

    fn deliver(&mut self, now: Instant, bytes: &[u8]) {
        if let Ok(SipMessage::Response(r)) = parse_message(bytes) {
            let line = String::from_utf8_lossy(bytes)
                .lines()
                .next()
                .unwrap_or("")
                .to_string();
            self.status_lines
                .push((header_value(&r.headers, "CSeq").unwrap_or_default(), line));
        }
        self.layer
            .handle_message(now, udp(GW), parse_message(bytes).unwrap());
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(ev) = self.layer.poll_event() {
            match ev {
                TxEvent::Request { key, request, .. } => self.requests.push((key, request)),
                TxEvent::Response { key, response } => self.responses.push((key, response)),
                TxEvent::Ack { request, .. } => self.acks.push(request),
                _ => {}
            }
        }
    }

    fn codes(&self, key: &ClientKey) -> Vec<u16> {
        self.responses
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, r)| r.status_code.code())
            .collect()
    }

    fn last(&self, key: &ClientKey) -> Response {
        self.responses
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, r)| r.clone())
            .expect("a response")
    }

    fn take_requests(&mut self, m: Method) -> Vec<(ServerKey, Request)> {
        let (hit, rest) = std::mem::take(&mut self.requests)
            .into_iter()
            .partition(|(_, r)| r.method == m);
        self.requests = rest;
        hit
    }
}

#[derive(Clone, Copy, PartialEq)]
enum BMode {
    /// 180 then 200 at once.
    Answer,
    /// 180 only.
    Ring,
    /// Nothing at all.
    Silent,
    /// This final code.
    Refuse(u16),
}

fn sdp(ip: &str, port: u16, codecs: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP {codecs}\r\n\
a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
    )
}

fn with_body(mut headers: Vec<Header>, body: &str) -> (rsip::Headers, Vec<u8>) {
    headers.push(Header::ContentType(rsip::headers::ContentType::new(
        "application/sdp",
    )));
    headers.push(Header::ContentLength((body.len() as u32).into()));
    (headers.into(), body.as_bytes().to_vec())
}

struct Net {
    now: Instant,
    gw: GatewayCore,
    a: Ua,
    b: Ua,
    srs: Option<siprec_core::SrsCore>,
    srs_events: Vec<siprec_core::Event>,
    b_mode: BMode,
    b_dialog: Option<Dialog>,
    /// In-dialog requests B received (answered 200).
    b_seen: Vec<Request>,
    /// Initial INVITEs B received.
    b_invites: Vec<Request>,
    /// The INVITE B is ringing on (BMode::Ring), to answer it by hand.
    b_ringing: Option<(ServerKey, Request)>,
    events: Vec<Event>,
    released: Arc<Mutex<Vec<u16>>>,
    /// Messages from the gateway to nobody (a dead SRS or B).
    lost: usize,
    /// B's host is down: nothing reaches it.
    b_dead: bool,
}

impl Net {
    fn with(config: impl FnOnce(&mut GatewayConfig)) -> Net {
        let now = Instant::now();
        let forward = Forward::new("sip:192.0.2.20:5060", "192.0.2.20".parse().unwrap()).unwrap();
        let mut cfg = GatewayConfig::new(
            forward,
            vec![(Transport::Udp, addr(GW))],
            "192.0.2.1".parse().unwrap(),
        );
        config(&mut cfg);
        let released = Arc::new(Mutex::new(Vec::new()));
        let ports = Ports {
            next: 30000,
            released: Arc::clone(&released),
        };
        let srs_ports = Ports {
            next: 50000,
            released: Arc::default(),
        };
        let srs_cfg = siprec_core::SrsConfig {
            media_ip: "192.0.2.30".parse().unwrap(),
            ..Default::default()
        };
        Net {
            now,
            gw: GatewayCore::new(cfg, Box::new(ports), now, SystemTime::now()).unwrap(),
            a: Ua::new(A),
            b: Ua::new(B),
            srs: Some(siprec_core::SrsCore::new(srs_cfg, Box::new(srs_ports))),
            srs_events: Vec::new(),
            b_mode: BMode::Answer,
            b_dialog: None,
            b_seen: Vec::new(),
            b_invites: Vec::new(),
            b_ringing: None,
            events: Vec::new(),
            released,
            lost: 0,
            b_dead: false,
        }
    }

    fn new() -> Net {
        Net::with(|_| {})
    }

    /// Moves every message and event until nothing moves (no time passes).
    fn run(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            while let Some(t) = self.gw.poll_transmit() {
                moved = true;
                match t.peer.addr {
                    a if a == self.a.addr => self.a.deliver(self.now, &t.payload),
                    b if b == self.b.addr && !self.b_dead => self.b.deliver(self.now, &t.payload),
                    s if s == addr(SRS) && self.srs.is_some() => self
                        .srs
                        .as_mut()
                        .unwrap()
                        .handle_bytes(self.now, udp(GW), addr(SRS), &t.payload),
                    _ => self.lost += 1,
                }
            }
            while let Some(e) = self.gw.poll_event() {
                moved = true;
                if let Event::Resolve { call, rs, uri } = &e {
                    let target = format!("udp:{}:{}", uri.host, uri.port.unwrap_or(5060))
                        .parse()
                        .unwrap();
                    self.gw.resolved(self.now, *call, *rs, Ok(vec![target]));
                }
                self.events.push(e);
            }
            for (ua, from) in [(&mut self.a, A), (&mut self.b, B)] {
                while let Some(t) = ua.layer.poll_transmit() {
                    moved = true;
                    assert_eq!(t.peer.addr, addr(GW), "phones only talk to the gateway");
                    self.gw.handle_bytes(self.now, udp(from), &t.payload);
                }
            }
            if let Some(srs) = self.srs.as_mut() {
                while let Some(t) = srs.poll_transmit() {
                    moved = true;
                    self.gw.handle_bytes(self.now, udp(SRS), &t.payload);
                }
                while let Some(e) = srs.poll_event() {
                    moved = true;
                    self.srs_events.push(e);
                }
            }
            moved |= self.answer_b();
            if !moved {
                return;
            }
        }
        panic!("the network never settles");
    }

    /// B's behaviour towards new INVITEs and in-dialog requests.
    fn answer_b(&mut self) -> bool {
        let invites = self.b.take_requests(Method::Invite);
        let mut moved = false;
        for (key, req) in invites {
            moved = true;
            let initial = header_value(&req.headers, "To").is_some_and(|t| !t.contains("tag="));
            if initial {
                self.b_invites.push(req.clone());
            } else {
                let mut ok = make_response(&req, 200, None, None);
                let (h, body) = with_body(vec![], &sdp("192.0.2.20", 6000, "8 101"));
                ok.headers.extend(h.iter().cloned().collect::<Vec<_>>());
                ok.body = body;
                self.b.layer.respond(self.now, &key, ok).unwrap();
                continue;
            }
            match self.b_mode {
                BMode::Silent => {}
                BMode::Refuse(code) => {
                    let r = make_response(&req, code, None, Some("b-tag"));
                    self.b.layer.respond(self.now, &key, r).unwrap();
                }
                BMode::Ring | BMode::Answer => {
                    let ring = make_response(&req, 180, None, Some("b-tag"));
                    self.b.layer.respond(self.now, &key, ring).unwrap();
                    if self.b_mode == BMode::Ring {
                        self.b_ringing = Some((key.clone(), req.clone()));
                    }
                    if self.b_mode == BMode::Answer {
                        let mut ok = make_response(&req, 200, None, Some("b-tag"));
                        ok.headers
                            .push(other("Contact", "<sip:bob@192.0.2.20:5060>"));
                        let (h, body) = with_body(vec![], &sdp("192.0.2.20", 6000, "0 101"));
                        ok.headers
                            .retain(|h| !matches!(h, Header::ContentLength(_)));
                        ok.headers.extend(h.iter().cloned().collect::<Vec<_>>());
                        ok.body = body;
                        self.b_dialog = Some(
                            Dialog::new_uas(&req, "b-tag", "sip:bob@192.0.2.20:5060").unwrap(),
                        );
                        self.b.layer.respond(self.now, &key, ok).unwrap();
                    }
                }
            }
        }
        for m in [Method::Bye, Method::Info, Method::Update] {
            for (key, req) in self.b.take_requests(m) {
                moved = true;
                let ok = make_response(&req, 200, None, None);
                let _ = self.b.layer.respond(self.now, &key, ok);
                self.b_seen.push(req);
            }
        }
        moved
    }

    fn next_timeout(&self) -> Option<Instant> {
        [
            self.gw.poll_timeout(),
            self.a.layer.poll_timeout(),
            self.b.layer.poll_timeout(),
            self.srs.as_ref().and_then(|s| s.poll_timeout()),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        while let Some(t) = self.next_timeout().filter(|t| *t <= until) {
            self.now = t.max(self.now);
            self.tick();
        }
        self.now = until;
        self.tick();
    }

    fn tick(&mut self) {
        let now = self.now;
        self.gw.handle_timeout(now);
        self.a.layer.handle_timeout(now);
        self.a.drain();
        self.b.layer.handle_timeout(now);
        self.b.drain();
        if let Some(s) = self.srs.as_mut() {
            s.handle_timeout(now);
        }
        self.run();
    }
}

/// A's side of one call.
struct CallA {
    invite: Request,
    key: ClientKey,
    dialog: Option<Dialog>,
}

impl Net {
    fn invite_a(&mut self, extra: Vec<Header>) -> CallA {
        let mut headers = vec![
            Header::Via(rsip::headers::Via::new(
                "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-a1;rport",
            )),
            Header::MaxForwards(70u32.into()),
            Header::From(rsip::headers::From::new(
                "\"Alice\" <sip:alice@example.com>;tag=a-tag",
            )),
            Header::To(rsip::headers::To::new("<sip:+15551230000@example.com>")),
            Header::CallId(rsip::headers::CallId::new("call-a@192.0.2.10")),
            Header::CSeq(rsip::headers::CSeq::new("1 INVITE")),
            other("Contact", "<sip:alice@192.0.2.10:5060>"),
        ];
        headers.extend(extra);
        let (headers, body) = with_body(headers, &sdp("192.0.2.10", 4000, "0 8 101"));
        let invite = Request {
            method: Method::Invite,
            uri: rsip::Uri::try_from("sip:+15551230000@192.0.2.1:5060").unwrap(),
            version: rsip::Version::V2,
            headers,
            body,
        };
        let key = self.a.layer.send_request(self.now, udp(GW), invite.clone());
        self.run();
        CallA {
            invite,
            key,
            dialog: None,
        }
    }

    /// A's call, answered and ACKed.
    fn answered_call(&mut self) -> CallA {
        let mut c = self.invite_a(vec![]);
        let ok = self.a.last(&c.key);
        assert_eq!(ok.status_code.code(), 200);
        let mut d = Dialog::new_uac(&c.invite, &ok).unwrap();
        d.set_via("192.0.2.10", 5060, Transport::Udp);
        let ack = d.make_ack(1);
        self.a.layer.send_request(self.now, udp(GW), ack);
        c.dialog = Some(d);
        self.run();
        c
    }

    fn a_request(
        &mut self,
        c: &mut CallA,
        m: Method,
        headers: Vec<Header>,
        body: Option<String>,
    ) -> ClientKey {
        let d = c.dialog.as_mut().expect("A's dialog");
        let mut req = d.new_request(
            m,
            body.map(|b| ("application/sdp".to_string(), b.into_bytes())),
        );
        req.headers.extend(headers);
        let key = self.a.layer.send_request(self.now, udp(GW), req);
        self.run();
        key
    }

    fn info(&mut self, c: &mut CallA, headers: &[(&str, &str)]) -> (u16, String) {
        let h = headers.iter().map(|(n, v)| other(n, v)).collect();
        let key = self.a_request(c, Method::Info, h, None);
        self.final_of(&key)
    }

    fn final_of(&mut self, key: &ClientKey) -> (u16, String) {
        // A start waits for its SRS (at most the start timeout): let time pass until answered.
        for _ in 0..100 {
            if let Some(r) = self
                .a
                .responses
                .iter()
                .rev()
                .find(|(k, r)| k == key && r.status_code.code() >= 200)
            {
                let cseq = header_value(&r.1.headers, "CSeq").unwrap_or_default();
                let code = r.1.status_code.code();
                let line = self
                    .a
                    .status_lines
                    .iter()
                    .rev()
                    .find(|(c, l)| *c == cseq && l.starts_with(&format!("SIP/2.0 {code} ")))
                    .map(|(_, l)| l.clone())
                    .expect("the status line as sent");
                let phrase = line.splitn(3, ' ').nth(2).unwrap_or("").to_string();
                return (code, phrase);
            }
            self.advance(Duration::from_millis(100));
        }
        panic!("no final response");
    }

    fn relay_updates(&self) -> Vec<RelayUpdate> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Relay { update, .. } => Some(update.clone()),
                _ => None,
            })
            .collect()
    }

    fn ended(&self) -> Vec<CallId> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::CallEnded { call } => Some(*call),
                _ => None,
            })
            .collect()
    }
}

/// The reply is `code` with the contract's log line as the reason phrase (a reason may follow
/// after ": ").
#[track_caller]
fn reply(got: (u16, String), code: u16, line: &str) {
    assert_eq!(got.0, code, "{}", got.1);
    assert!(
        got.1 == line || got.1.starts_with(&format!("{line}: ")),
        "{:?} is not {line:?}",
        got.1
    );
}

/// The payload types of the call's codec, in the order the relay was told.
fn codec_pts(ups: &[RelayUpdate]) -> Vec<u8> {
    ups.iter()
        .filter_map(|u| match u {
            RelayUpdate::Codec { format } => format.as_ref().map(|f| f.payload_type),
            _ => None,
        })
        .collect()
}

fn fork_codecs(ups: &[RelayUpdate]) -> Vec<String> {
    ups.iter()
        .filter_map(|u| match u {
            RelayUpdate::Fork { plan, .. } => {
                plan.legs[0].as_ref().map(|l| l.format.encoding.clone())
            }
            _ => None,
        })
        .collect()
}

fn body_text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}

#[test]
fn a_call_is_relayed_with_its_media_anchored_and_ends_on_bye() {
    let mut net = Net::new();
    let mut c = net.answered_call();
    // A saw 100 (from the gateway), 180 and 200 relayed.
    assert_eq!(net.a.codes(&c.key), vec![100, 180, 200]);
    let ok = net.a.last(&c.key);
    let a_sdp = body_text(&ok.body);
    assert!(
        a_sdp.contains("c=IN IP4 192.0.2.1\r\n") && a_sdp.contains("m=audio 30002 "),
        "{a_sdp}"
    );
    assert!(
        !a_sdp.contains("192.0.2.20"),
        "B's address leaked to A: {a_sdp}"
    );
    // B got a new dialog: own Call-ID, From tag, Via, Contact, and an SDP pointing at the gateway.
    assert_eq!(net.b_invites.len(), 1);
    let ups = net.relay_updates();
    assert_eq!(
        ups[0],
        RelayUpdate::Open {
            ports: [30002, 30004]
        }
    );
    let remotes: Vec<_> = ups
        .iter()
        .filter_map(|u| match u {
            RelayUpdate::Remote { side, media } => Some((*side, media.rtp)),
            _ => None,
        })
        .collect();
    assert_eq!(
        remotes,
        vec![
            (Side::A, Some(addr("192.0.2.10:4000"))),
            (Side::B, Some(addr("192.0.2.20:6000")))
        ]
    );
    assert!(codec_pts(&ups).contains(&0));
    // The gateway ACKed B's 200 itself.
    assert_eq!(net.b.acks.len(), 1);
    // A hangs up: A gets 200, B gets BYE, the call is forgotten and its ports released.
    let bye = net.a_request(&mut c, Method::Bye, vec![], None);
    assert_eq!(net.a.codes(&bye), vec![200]);
    assert!(net.b_seen.iter().any(|r| r.method == Method::Bye));
    assert_eq!(net.ended().len(), 1);
    assert_eq!(net.gw.calls(), 0);
    let mut released = net.released.lock().unwrap().clone();
    released.sort();
    assert_eq!(released, vec![30002, 30004]);
    assert!(net.relay_updates().contains(&RelayUpdate::Close));
}

#[test]
fn the_b_legs_invite_is_a_new_dialog_towards_forward() {
    let mut net = Net::new();
    net.b_mode = BMode::Silent;
    net.invite_a(vec![
        other("X-Recording-ID", "rec-77"),
        other("Supported", "100rel, timer"),
    ]);
    let inv = net.b_invites.pop().expect("B got an INVITE");
    assert_eq!(inv.uri.to_string(), "sip:+15551230000@192.0.2.20:5060");
    let h = |n: &str| header_value(&inv.headers, n).unwrap_or_default();
    assert_ne!(h("Call-ID"), "call-a@192.0.2.10");
    assert!(
        h("From").starts_with("\"Alice\" <sip:alice@example.com>;tag=")
            && !h("From").contains("a-tag"),
        "{}",
        h("From")
    );
    assert_eq!(h("To"), "<sip:+15551230000@example.com>");
    assert!(
        h("Via").starts_with("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK"),
        "{}",
        h("Via")
    );
    assert_eq!(h("Contact"), "<sip:gw@192.0.2.1:5060>");
    assert_eq!(h("Max-Forwards"), "69");
    assert_eq!(h("X-Recording-ID"), "rec-77");
    assert_eq!(
        h("Supported"),
        "timer",
        "100rel is not offered: the gateway does not relay PRACK"
    );
    let offer = body_text(&inv.body);
    assert!(
        offer.contains("c=IN IP4 192.0.2.1\r\n") && offer.contains("m=audio 30004 RTP/AVP 0 8 101"),
        "{offer}"
    );
}

#[test]
fn a_refusal_on_the_b_leg_is_the_a_legs_answer() {
    let mut net = Net::new();
    net.b_mode = BMode::Refuse(486);
    let c = net.invite_a(vec![]);
    assert_eq!(net.a.codes(&c.key), vec![100, 486]);
    assert_eq!(net.gw.calls(), 0);
    assert_eq!(net.released.lock().unwrap().len(), 2);
}

#[test]
fn cancel_before_the_answer_cancels_the_b_leg() {
    let mut net = Net::new();
    net.b_mode = BMode::Ring;
    let c = net.invite_a(vec![]);
    assert_eq!(net.a.codes(&c.key), vec![100, 180]);
    let cancel = net.a.layer.cancel(net.now, &c.key).unwrap();
    net.run();
    assert_eq!(net.a.codes(&cancel), vec![200]);
    assert_eq!(net.a.codes(&c.key), vec![100, 180, 487]);
    // B's layer saw the CANCEL (its INVITE transaction answered 487 by the layer after 64*T1
    // at the latest): the gateway forgets the call once B's INVITE is over.
    net.advance(Duration::from_secs(40));
    assert_eq!(net.gw.calls(), 0);
}

#[test]
fn a_b_leg_that_never_answers_gets_408_on_the_a_leg() {
    let mut net = Net::new();
    net.b_dead = true;
    let c = net.invite_a(vec![]);
    net.advance(Duration::from_secs(31));
    assert_eq!(net.a.codes(&c.key), vec![100]);
    net.advance(Duration::from_secs(2));
    assert_eq!(net.a.codes(&c.key), vec![100, 408]);
    assert_eq!(net.gw.calls(), 0);
}

#[test]
fn a_ringing_b_leg_is_cancelled_after_the_answer_timeout() {
    let mut net = Net::with(|c| c.answer_timeout = Duration::from_secs(10));
    net.b_mode = BMode::Ring;
    let c = net.invite_a(vec![]);
    net.advance(Duration::from_secs(11));
    assert_eq!(net.a.codes(&c.key), vec![100, 180, 480]);
}

#[test]
fn recording_commands_get_the_contract_replies() {
    let mut net = Net::new();
    let mut c = net.answered_call();
    let srs = "sip:192.0.2.30:5060";
    reply(
        net.info(&mut c, &[("X-Reason", "stopCallRecording")]),
        400,
        "discarding stopCallRecording request because we are not recording",
    );
    reply(
        net.info(&mut c, &[("X-Reason", "pauseCallRecording")]),
        400,
        "discarding invalid pauseCallRecording request",
    );
    reply(
        net.info(&mut c, &[("X-Reason", "startCallRecording")]),
        400,
        "startCallRecording request is missing X-Srs-Url header",
    );
    let (code, phrase) = net.info(
        &mut c,
        &[
            ("X-Reason", "startCallRecording"),
            ("X-Srs-Url", "wss://srs.example.com"),
        ],
    );
    assert_eq!(code, 503);
    assert!(
        phrase.starts_with("Error starting SipRec call recording: "),
        "{phrase}"
    );
    reply(
        net.info(
            &mut c,
            &[
                ("X-Reason", "startCallRecording"),
                ("X-Srs-Url", srs),
                ("X-Srs-Recording-ID", "rec-9"),
                ("X-Call-Sid", "cs-1"),
            ],
        ),
        200,
        "startCallRecording request for a call",
    );
    // The SRS has a session whose metadata names the A leg's parties and Call-ID.
    let started = net
        .srs_events
        .iter()
        .any(|e| matches!(e, siprec_core::Event::SessionStarted { .. }));
    assert!(started, "{:?}", net.srs_events);
    let forks: Vec<_> = net
        .relay_updates()
        .into_iter()
        .filter_map(|u| match u {
            RelayUpdate::Fork { plan, .. } => Some(plan),
            _ => None,
        })
        .collect();
    let plan = forks.last().expect("a fork plan");
    assert!(plan.sending);
    assert_eq!(
        plan.legs[0].as_ref().unwrap().format.payload_type,
        0,
        "the call's codec"
    );
    reply(
        net.info(
            &mut c,
            &[("X-Reason", "startCallRecording"), ("X-Srs-Url", srs)],
        ),
        400,
        "discarding duplicate startCallRecording request for a call",
    );
    reply(
        net.info(&mut c, &[("X-Reason", "pauseCallRecording")]),
        200,
        "pauseCallRecording request for a call",
    );
    reply(
        net.info(&mut c, &[("X-Reason", "pauseCallRecording")]),
        400,
        "discarding invalid pauseCallRecording request",
    );
    reply(
        net.info(&mut c, &[("X-Reason", "resumeCallRecording")]),
        200,
        "resumeCallRecording request for a call",
    );
    reply(
        net.info(&mut c, &[("X-Reason", "resumeCallRecording")]),
        400,
        "discarding invalid resumeCallRecording request",
    );
    reply(
        net.info(&mut c, &[("X-Reason", "stopCallRecording")]),
        200,
        "stopCallRecording request for a call",
    );
    assert!(net
        .srs_events
        .iter()
        .any(|e| matches!(e, siprec_core::Event::SessionEnded { .. })));
    let (code, phrase) = net.info(&mut c, &[("X-Reason", "rewindCallRecording")]);
    assert_eq!(code, 400);
    assert!(phrase.contains("rewindCallRecording"), "{phrase}");
    // None of these reached B.
    assert!(!net.b_seen.iter().any(|r| r.method == Method::Info));
    // An INFO without X-Reason is the call's own business: relayed to B.
    let (code, _) = net.info(&mut c, &[("Content-Type", "application/dtmf-relay")]);
    assert_eq!(code, 200);
    assert_eq!(
        net.b_seen
            .iter()
            .filter(|r| r.method == Method::Info)
            .count(),
        1
    );
}

#[test]
fn a_dead_srs_gets_the_no_response_400_and_the_call_goes_on() {
    let mut net = Net::new();
    let mut c = net.answered_call();
    net.srs = None;
    let (code, phrase) = net.info(
        &mut c,
        &[
            ("X-Reason", "startCallRecording"),
            ("X-Srs-Url", "sip:192.0.2.30:5060"),
        ],
    );
    reply(
        (code, phrase.clone()),
        400,
        "No response from SipRec server, return error to feature server",
    );
    assert!(
        phrase.contains("sip:192.0.2.30:5060"),
        "the reason names the SRS: {phrase}"
    );
    assert!(net.lost > 0);
    // The call is unharmed: a re-INVITE still goes through, BYE ends it.
    let re = net.a_request(
        &mut c,
        Method::Invite,
        vec![],
        Some(sdp("192.0.2.10", 4100, "0 101")),
    );
    assert_eq!(net.a.codes(&re), vec![100, 200]);
    let bye = net.a_request(&mut c, Method::Bye, vec![], None);
    assert_eq!(net.a.codes(&bye), vec![200]);
    net.advance(Duration::from_secs(40));
    assert_eq!(net.gw.calls(), 0);
}

#[test]
fn commands_from_outside_control_from_are_403() {
    let mut net = Net::with(|c| c.control_from = vec!["198.51.100.0/24".parse().unwrap()]);
    let mut c = net.answered_call();
    let (code, phrase) = net.info(
        &mut c,
        &[
            ("X-Reason", "startCallRecording"),
            ("X-Srs-Url", "sip:192.0.2.30"),
        ],
    );
    assert_eq!(code, 403);
    assert!(phrase.contains("192.0.2.10"), "{phrase}");
}

#[test]
fn requests_for_unknown_dialogs_are_481() {
    let mut net = Net::new();
    let mut c = net.answered_call();
    let d = c.dialog.as_mut().unwrap();
    let mut info = d.new_request(Method::Info, None);
    info.headers.retain(|h| !matches!(h, Header::CallId(_)));
    info.headers
        .push(Header::CallId(rsip::headers::CallId::new("nobody-knows")));
    info.headers.push(other("X-Reason", "startCallRecording"));
    let key = net.a.layer.send_request(net.now, udp(GW), info);
    net.run();
    assert_eq!(net.a.codes(&key), vec![481]);
}

#[test]
fn a_reinvite_is_relayed_with_its_sdp_anchored_and_glare_gets_491() {
    let mut net = Net::new();
    let mut c = net.answered_call();
    // Hold from A: relayed to B, answered, A's new address known to the relay.
    let hold = sdp("192.0.2.10", 4200, "0 101").replace("a=sendrecv", "a=sendonly");
    let re = net.a_request(&mut c, Method::Invite, vec![], Some(hold));
    assert_eq!(net.a.codes(&re), vec![100, 200]);
    let answer = body_text(&net.a.last(&re).body);
    assert!(
        answer.contains("m=audio 30002 ") && answer.contains("c=IN IP4 192.0.2.1"),
        "{answer}"
    );
    assert!(
        answer.contains("RTP/AVP 8 101"),
        "B's new codec relayed: {answer}"
    );
    assert!(codec_pts(&net.relay_updates()).contains(&8));
    // Glare: B's re-INVITE reaches the gateway and is relayed to A, who does not answer yet;
    // A's own re-INVITE meanwhile gets 491 (RFC 3261 §14.2).
    let bd = net.b_dialog.as_mut().unwrap();
    bd.set_via("192.0.2.20", 5060, Transport::Udp);
    let mut b_re = bd.new_request(
        Method::Invite,
        Some((
            "application/sdp".into(),
            sdp("192.0.2.20", 6100, "0").into_bytes(),
        )),
    );
    b_re.headers.push(other("X-Test", "b-reinvite"));
    net.b.layer.send_request(net.now, udp(GW), b_re);
    net.run();
    let (_, relayed) = net
        .a
        .take_requests(Method::Invite)
        .pop()
        .expect("B's re-INVITE relayed to A");
    assert_eq!(
        header_value(&relayed.headers, "X-Test").as_deref(),
        Some("b-reinvite")
    );
    assert!(
        body_text(&relayed.body).contains("m=audio 30002 "),
        "anchored towards A"
    );
    let glare = net.a_request(
        &mut c,
        Method::Invite,
        vec![],
        Some(sdp("192.0.2.10", 4300, "0")),
    );
    assert_eq!(net.a.codes(&glare), vec![100, 491]);
}

#[test]
fn record_all_records_from_the_answer_with_the_id_header() {
    let mut net = Net::with(|c| c.record_all = Some("sip:192.0.2.30:5060".into()));
    let mut c = net.invite_a(vec![other("X-Recording-ID", "rec-77")]);
    let ok = net.a.last(&c.key);
    let mut d = Dialog::new_uac(&c.invite, &ok).unwrap();
    d.set_via("192.0.2.10", 5060, Transport::Udp);
    net.a.layer.send_request(net.now, udp(GW), d.make_ack(1));
    c.dialog = Some(d);
    net.run();
    let meta = net.srs_events.iter().find_map(|e| match e {
        siprec_core::Event::SessionStarted { .. } => Some(format!("{e:?}")),
        _ => None,
    });
    let meta = meta.expect("the SRS has a session at the answer");
    assert!(meta.contains("rec-77"), "{meta}");
    // INFO still works on such a call.
    reply(
        net.info(&mut c, &[("X-Reason", "pauseCallRecording")]),
        200,
        "pauseCallRecording request for a call",
    );
    // The call's end stops the recording: BYE to the SRS.
    net.a_request(&mut c, Method::Bye, vec![], None);
    net.advance(Duration::from_secs(1));
    assert!(net
        .srs_events
        .iter()
        .any(|e| matches!(e, siprec_core::Event::SessionEnded { .. })));
    assert_eq!(net.gw.calls(), 0);
}

#[test]
fn a_codec_change_mid_call_reinvites_the_srs_with_the_new_codec() {
    let mut net = Net::new();
    let mut c = net.answered_call();
    reply(
        net.info(
            &mut c,
            &[
                ("X-Reason", "startCallRecording"),
                ("X-Srs-Url", "sip:192.0.2.30:5060"),
            ],
        ),
        200,
        "startCallRecording request for a call",
    );
    assert_eq!(
        fork_codecs(&net.relay_updates()).last().map(String::as_str),
        Some("PCMU")
    );
    let srs_sessions = |net: &Net| {
        net.srs_events
            .iter()
            .filter(|e| matches!(e, siprec_core::Event::MediaUpdated { .. }))
            .count()
    };
    let before = srs_sessions(&net);
    // A re-INVITE whose answer moves the call to PCMA.
    let re = net.a_request(
        &mut c,
        Method::Invite,
        vec![],
        Some(sdp("192.0.2.10", 4000, "0 8 101")),
    );
    assert_eq!(net.a.codes(&re), vec![100, 200]);
    assert_eq!(
        codec_pts(&net.relay_updates()),
        vec![0, 8],
        "the offer alone changes nothing"
    );
    assert!(
        srs_sessions(&net) > before,
        "the SRS saw a new offer: {:?}",
        net.srs_events
    );
    assert_eq!(
        fork_codecs(&net.relay_updates()).last().map(String::as_str),
        Some("PCMA")
    );
    reply(
        net.info(&mut c, &[("X-Reason", "stopCallRecording")]),
        200,
        "stopCallRecording request for a call",
    );
}

#[test]
fn a_delayed_offer_gets_its_answer_from_the_a_legs_ack() {
    let mut net = Net::new();
    let mut c = net.invite_a(vec![]);
    // Re-send the INVITE without a body (delayed offer, RFC 3261 §13.2.1) as a second call.
    let mut invite = c.invite.clone();
    invite.body.clear();
    invite.headers.retain(|h| {
        !matches!(
            h,
            Header::ContentType(_) | Header::ContentLength(_) | Header::Via(_) | Header::CallId(_)
        )
    });
    invite.headers.push(Header::Via(rsip::headers::Via::new(
        "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-a2;rport",
    )));
    invite
        .headers
        .push(Header::CallId(rsip::headers::CallId::new(
            "call-delayed@192.0.2.10",
        )));
    invite.headers.push(Header::ContentLength(0u32.into()));
    let key = net.a.layer.send_request(net.now, udp(GW), invite.clone());
    net.run();
    let b_invite = net.b_invites.last().unwrap().clone();
    assert!(
        b_invite.body.is_empty(),
        "B gets the delayed offer as it is"
    );
    assert_eq!(net.a.codes(&key), vec![100, 180, 200]);
    let ok = net.a.last(&key);
    let offer = body_text(&ok.body);
    assert!(
        offer.contains("m=audio 30006 ") && offer.contains("c=IN IP4 192.0.2.1"),
        "B's offer anchored towards A: {offer}"
    );
    let acks_before = net.b.acks.len();
    // The ACK for the first call carried nothing; B's ACK for this call waits for A's answer.
    let mut d = Dialog::new_uac(&invite, &ok).unwrap();
    d.set_via("192.0.2.10", 5060, Transport::Udp);
    let mut ack = d.make_ack(1);
    let answer = sdp("192.0.2.10", 4400, "8 101");
    let (h, body) = with_body(vec![], &answer);
    ack.headers
        .retain(|h| !matches!(h, Header::ContentLength(_)));
    ack.headers.extend(h.iter().cloned().collect::<Vec<_>>());
    ack.body = body;
    net.a.layer.send_request(net.now, udp(GW), ack);
    net.run();
    assert_eq!(net.b.acks.len(), acks_before + 1);
    let b_ack = net.b.acks.last().unwrap();
    let text = body_text(&b_ack.body);
    assert!(
        text.contains("m=audio 30008 RTP/AVP 8 101") && text.contains("c=IN IP4 192.0.2.1"),
        "A's answer anchored towards B: {text}"
    );
    assert!(
        codec_pts(&net.relay_updates()).contains(&8),
        "the codec comes from A's answer"
    );
    c.dialog = None;
}

#[test]
fn an_unparseable_request_gets_400_with_the_reason() {
    let mut net = Net::new();
    let bad = b"INVITE sip:x@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-bad\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: bad-1\r\nCSeq: one INVITE\r\nContent-Length: 0\r\n\r\n";
    net.gw.handle_bytes(net.now, udp(A), bad);
    let t = net.gw.poll_transmit().expect("an answer");
    let text = String::from_utf8_lossy(&t.payload);
    assert!(text.starts_with("SIP/2.0 400 Bad Request\r\n"), "{text}");
    assert!(text.contains("Warning: 399 gateway \""), "{text}");
    assert_eq!(net.gw.calls(), 0);
}

#[test]
fn a_200_crossing_the_cancel_is_acked_and_ended_with_bye() {
    let mut net = Net::new();
    net.b_mode = BMode::Ring;
    let c = net.invite_a(vec![]);
    let (bkey, breq) = net.b_ringing.take().expect("B rings");
    // A cancels: A gets 487 at once and the gateway CANCELs B ...
    let cancel = net.a.layer.cancel(net.now, &c.key).unwrap();
    net.run();
    assert_eq!(net.a.codes(&cancel), vec![200]);
    assert_eq!(net.a.codes(&c.key), vec![100, 180, 487]);
    // ... but B had answered already (RFC 3261 §9.1: the 200 and the CANCEL cross).
    let mut ok = make_response(&breq, 200, None, Some("b-tag"));
    ok.headers
        .push(other("Contact", "<sip:bob@192.0.2.20:5060>"));
    let (h, body) = with_body(vec![], &sdp("192.0.2.20", 6000, "0"));
    ok.headers
        .retain(|h| !matches!(h, Header::ContentLength(_)));
    ok.headers.extend(h.iter().cloned().collect::<Vec<_>>());
    ok.body = body;
    net.b.layer.respond(net.now, &bkey, ok).unwrap();
    net.run();
    // The gateway takes B's call only to end it: ACK, then BYE; A never sees a 200.
    assert_eq!(net.b.acks.len(), 1);
    assert!(net.b_seen.iter().any(|r| r.method == Method::Bye));
    assert!(!net.a.codes(&c.key).contains(&200));
    assert_eq!(net.gw.calls(), 0);
    assert_eq!(net.released.lock().unwrap().len(), 2);
}

#[test]
fn both_legs_hanging_up_at_once_end_the_call_once() {
    let mut net = Net::new();
    let mut c = net.answered_call();
    // B's BYE and A's BYE cross in the gateway.
    let bd = net.b_dialog.as_mut().unwrap();
    bd.set_via("192.0.2.20", 5060, Transport::Udp);
    let b_bye = bd.new_request(Method::Bye, None);
    let b_key = net.b.layer.send_request(net.now, udp(GW), b_bye);
    let d = c.dialog.as_mut().unwrap();
    let a_bye = d.new_request(Method::Bye, None);
    let a_key = net.a.layer.send_request(net.now, udp(GW), a_bye);
    net.run();
    assert_eq!(net.a.codes(&a_key), vec![200]);
    assert_eq!(net.b.codes(&b_key), vec![200]);
    net.advance(Duration::from_secs(1));
    assert_eq!(net.gw.calls(), 0);
    assert_eq!(net.ended().len(), 1, "the call ends once");
}

#[test]
fn a_reinvite_without_sdp_gets_its_answer_from_the_requesters_ack() {
    let mut net = Net::new();
    let mut c = net.answered_call();
    let acks_before = net.b.acks.len();
    // A re-INVITE without SDP (delayed offer): B's 200 carries the offer.
    let re = net.a_request(&mut c, Method::Invite, vec![], None);
    assert_eq!(net.a.codes(&re), vec![100, 200]);
    let ok = net.a.last(&re);
    let offer = body_text(&ok.body);
    assert!(
        offer.contains("m=audio 30002 RTP/AVP 8 101"),
        "B's offer anchored towards A: {offer}"
    );
    assert_eq!(
        net.b.acks.len(),
        acks_before,
        "B's ACK waits for A's answer"
    );
    // A's ACK with the answer completes B's ACK.
    let cseq = siprec_sip::message::cseq(&ok.headers).unwrap().0;
    let d = c.dialog.as_mut().unwrap();
    let mut ack = d.make_ack(cseq);
    let (h, body) = with_body(vec![], &sdp("192.0.2.10", 4500, "8 101"));
    ack.headers
        .retain(|h| !matches!(h, Header::ContentLength(_)));
    ack.headers.extend(h.iter().cloned().collect::<Vec<_>>());
    ack.body = body;
    net.a.layer.send_request(net.now, udp(GW), ack);
    net.run();
    assert_eq!(net.b.acks.len(), acks_before + 1);
    let text = body_text(&net.b.acks.last().unwrap().body);
    assert!(
        text.contains("m=audio 30004 RTP/AVP 8 101"),
        "A's answer anchored towards B: {text}"
    );
    assert!(
        codec_pts(&net.relay_updates()).ends_with(&[8]),
        "the codec comes from A's answer"
    );
}
