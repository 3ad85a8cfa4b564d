//! The two roles of this crate against each other, in virtual time (quinn-proto's `Pair` style):
//! an [`SrcCore`] records a call on an [`SrsCore`] through a simulated UDP network that delays,
//! drops and reorders datagrams. Time jumps to the next thing that happens (a timer of either
//! core, or a datagram's arrival); nothing sleeps.
//!
//! The network's choices (which datagram is lost, which is held back and for how long) come
//! from a seeded RNG, so a failing seed replays. With loss, every step of the call (INVITE,
//! 200, ACK, the re-INVITEs, BYE) only gets through because the transaction layers retransmit
//! and the cores absorb the copies: a broken retransmission (of a request, of a 2xx, or of the
//! ACK for a retransmitted 2xx) or a core that mishandles duplicates or late messages fails
//! these runs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use siprec_core::client::{
    self, Activity, CallContext, OpId, Outcome, Reply, SrcConfig, SrcCore, Target,
};
use siprec_core::server::{self, EndReason, PortAllocator, SrsConfig, SrsCore};
use siprec_sip::transaction::{Peer, Transmit, Transport};

const SRC: &str = "192.0.2.1:5060";
const SRS: &str = "192.0.2.10:5060";
const SRS_URI: &str = "sip:192.0.2.10:5060;transport=udp";

/// One-way delay of every datagram.
const LATENCY: Duration = Duration::from_millis(20);
/// Longest a run may take in virtual time before it counts as stuck.
const GIVE_UP: Duration = Duration::from_secs(120);

/// RTP ports from a counter; what was handed out and given back is kept for the leak check.
#[derive(Clone, Default)]
struct Ports(Arc<Mutex<PortBook>>);

#[derive(Default)]
struct PortBook {
    given: Vec<u16>,
    back: Vec<u16>,
}

impl PortAllocator for Ports {
    fn allocate(&mut self) -> Option<u16> {
        let mut book = self.0.lock().unwrap();
        let port = 30_000 + 2 * u16::try_from(book.given.len()).unwrap();
        book.given.push(port);
        Some(port)
    }
    fn release(&mut self, port: u16) {
        self.0.lock().unwrap().back.push(port);
    }
}

/// How the network treats datagrams.
#[derive(Debug, Clone, Copy)]
struct Conditions {
    /// Probability that a datagram is lost.
    loss: f64,
    /// Probability that a datagram is held back by up to `jitter` more (and so overtaken by
    /// later ones).
    reorder: f64,
    jitter: Duration,
}

const CLEAN: Conditions = Conditions {
    loss: 0.0,
    reorder: 0.0,
    jitter: Duration::ZERO,
};

const LOSSY: Conditions = Conditions {
    loss: 0.15,
    reorder: 0.2,
    jitter: Duration::from_millis(400),
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Side {
    Src,
    Srs,
}

/// A datagram on the wire (in [`Pair::wire`], keyed by arrival time and send order).
struct Datagram {
    to: Side,
    payload: Vec<u8>,
}

/// The SRS's events that describe the session, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SrsSaw {
    Started { paused: bool },
    Media { paused: bool },
    Ended(EndReason),
}

struct Pair {
    now: Instant,
    started_at: Instant,
    src: SrcCore,
    srs: SrsCore,
    ports: Ports,
    src_addr: SocketAddr,
    srs_addr: SocketAddr,
    rng: StdRng,
    net: Conditions,
    wire: BTreeMap<(Instant, u64), Datagram>,
    next_seq: u64,
    /// Every datagram sent: who sent it and its first line.
    sent: Vec<(Side, String)>,
    dropped: usize,
    /// Datagrams that arrived after one sent later than them.
    overtaken: usize,
    last_delivered: u64,
    outcomes: Vec<Outcome>,
    /// Media plans the SRC was told to follow: `sending` per plan, then `None` for MediaStop.
    plans: Vec<Option<bool>>,
    /// Any other SRC event (an SRS report outside an activity, the recording ending on its
    /// own): a recording that goes as planned has none.
    unexpected: Vec<client::Event>,
    srs_saw: Vec<SrsSaw>,
}

impl Pair {
    fn new(seed: u64, net: Conditions) -> Pair {
        let now = Instant::now();
        let src_addr: SocketAddr = SRC.parse().unwrap();
        let mut config = SrcConfig::new(src_addr.ip(), Some(src_addr.port()), None, [40000, 40002]);
        // The node's 2 s is for a healthy network; with loss the INVITE and its 200 may need
        // a few retransmissions (Timer A: 0.5 s, 1 s, 2 s, …).
        config.start_timeout = Duration::from_secs(16);
        let src = SrcCore::new(config, CallContext::example(), now, SystemTime::now()).unwrap();
        let ports = Ports::default();
        let srs = SrsCore::new(SrsConfig::default(), Box::new(ports.clone()));
        Pair {
            now,
            started_at: now,
            src,
            srs,
            ports,
            src_addr,
            srs_addr: SRS.parse().unwrap(),
            rng: StdRng::seed_from_u64(seed),
            net,
            wire: BTreeMap::new(),
            next_seq: 0,
            sent: Vec::new(),
            dropped: 0,
            overtaken: 0,
            last_delivered: 0,
            outcomes: Vec::new(),
            plans: Vec::new(),
            unexpected: Vec::new(),
            srs_saw: Vec::new(),
        }
    }

    /// Puts a datagram on the wire: lost, or delivered after the latency (and maybe a random
    /// extra delay that lets later datagrams overtake it).
    fn send(&mut self, from: Side, t: Transmit) {
        let (to, expected) = match from {
            Side::Src => (Side::Srs, self.srs_addr),
            Side::Srs => (Side::Src, self.src_addr),
        };
        assert_eq!(t.peer.addr, expected, "{from:?} sent to an unknown address");
        assert_eq!(t.peer.transport, Transport::Udp);
        let first = String::from_utf8_lossy(&t.payload)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        self.sent.push((from, first));
        if self.rng.random_bool(self.net.loss) {
            self.dropped += 1;
            return;
        }
        let mut delay = LATENCY;
        if self.rng.random_bool(self.net.reorder) {
            delay += self.net.jitter.mul_f64(self.rng.random::<f64>());
        }
        self.next_seq += 1;
        self.wire.insert(
            (self.now + delay, self.next_seq),
            Datagram {
                to,
                payload: t.payload,
            },
        );
    }

    /// Drains both cores: transmits onto the wire, events into the record (answering the
    /// SRC's resolution requests with the SRS's address).
    fn flush(&mut self) {
        loop {
            let mut progress = false;
            while let Some(t) = self.src.poll_transmit() {
                self.send(Side::Src, t);
                progress = true;
            }
            while let Some(t) = self.srs.poll_transmit() {
                self.send(Side::Srs, t);
                progress = true;
            }
            while let Some(e) = self.src.poll_event() {
                progress = true;
                match e {
                    client::Event::Resolve { rs, uri } => {
                        assert_eq!(uri.to_string(), SRS_URI);
                        let target = Target {
                            transport: Transport::Udp,
                            addr: self.srs_addr,
                        };
                        self.src.resolved(self.now, rs, Ok(vec![target]));
                    }
                    client::Event::Outcome(o) => self.outcomes.push(o),
                    client::Event::Media { plan, .. } => self.plans.push(Some(plan.sending)),
                    client::Event::MediaStop { .. } => self.plans.push(None),
                    other => self.unexpected.push(other),
                }
            }
            while let Some(e) = self.srs.poll_event() {
                progress = true;
                match e {
                    server::Event::SessionStarted { paused, .. } => {
                        self.srs_saw.push(SrsSaw::Started { paused });
                    }
                    server::Event::MediaUpdated { paused, .. } => {
                        self.srs_saw.push(SrsSaw::Media { paused });
                    }
                    server::Event::SessionEnded { reason, .. } => {
                        self.srs_saw.push(SrsSaw::Ended(reason));
                    }
                    server::Event::Metadata { .. } | server::Event::MetadataUpdated { .. } => {}
                }
            }
            if !progress {
                return;
            }
        }
    }

    /// The next moment anything happens: a timer of either core or a datagram's arrival.
    fn next_wakeup(&self) -> Option<Instant> {
        [
            self.src.poll_timeout(),
            self.srs.poll_timeout(),
            self.wire.keys().next().map(|k| k.0),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Jumps to the next wake-up and handles what is due there. `false` when nothing is left
    /// to happen.
    fn step(&mut self) -> bool {
        self.flush();
        let Some(at) = self.next_wakeup() else {
            return false;
        };
        self.now = self.now.max(at);
        assert!(
            self.now - self.started_at < GIVE_UP,
            "no end in sight after {GIVE_UP:?}"
        );
        while let Some(entry) = self.wire.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            let seq = entry.key().1;
            let d = entry.remove();
            if seq < self.last_delivered {
                self.overtaken += 1;
            }
            self.last_delivered = self.last_delivered.max(seq);
            match d.to {
                Side::Srs => {
                    let peer = Peer {
                        transport: Transport::Udp,
                        addr: self.src_addr,
                    };
                    self.srs
                        .handle_bytes(self.now, peer, self.srs_addr, &d.payload);
                }
                Side::Src => {
                    let peer = Peer {
                        transport: Transport::Udp,
                        addr: self.srs_addr,
                    };
                    self.src.handle_bytes(self.now, peer, &d.payload);
                }
            }
            self.flush();
        }
        if self.src.poll_timeout().is_some_and(|t| t <= self.now) {
            self.src.handle_timeout(self.now);
        }
        if self.srs.poll_timeout().is_some_and(|t| t <= self.now) {
            self.srs.handle_timeout(self.now);
        }
        self.flush();
        true
    }

    /// Steps until the outcome of `op` is in, and returns it.
    fn outcome(&mut self, op: OpId) -> Outcome {
        loop {
            if let Some(o) = self.outcomes.iter().find(|o| o.op == op) {
                return o.clone();
            }
            assert!(self.step(), "{op:?}: nothing left to happen and no outcome");
        }
    }

    /// Lets `d` of virtual time pass (the call goes on; retransmissions settle).
    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        loop {
            self.flush();
            if self.next_wakeup().is_none_or(|t| t > until) {
                break;
            }
            self.step();
        }
        self.now = self.now.max(until);
    }

    /// Steps until neither core has anything left to do.
    fn settle(&mut self) {
        while self.step() {}
    }
}

/// Records one call: start, pause, resume, stop, each a few seconds apart. Returns the pair
/// for the caller's own checks.
fn record_one_call(seed: u64, net: Conditions) -> Pair {
    let mut p = Pair::new(seed, net);
    let ctx = |what: &str| format!("seed {seed}: {what}");

    let op = p.src.start(p.now, SRS_URI, Some("rec-1"));
    let o = p.outcome(op);
    assert_eq!(o.activity, Activity::Start);
    assert_eq!(o.reply, Reply::Started, "{}", ctx(&o.to_string()));
    assert_eq!(o.reply.code(), 200);
    assert!(o.srs.iter().all(|r| r.ok && r.status == Some(200)), "{o}");
    assert!(p.src.is_recording() && !p.src.is_paused());
    p.run_for(Duration::from_secs(3));

    let op = p.src.pause(p.now);
    let o = p.outcome(op);
    assert_eq!(o.reply, Reply::Paused, "{}", ctx(&o.to_string()));
    assert!(p.src.is_paused());
    p.run_for(Duration::from_secs(3));

    let op = p.src.resume(p.now);
    let o = p.outcome(op);
    assert_eq!(o.reply, Reply::Resumed, "{}", ctx(&o.to_string()));
    assert!(!p.src.is_paused());
    p.run_for(Duration::from_secs(3));

    let op = p.src.stop(p.now);
    let o = p.outcome(op);
    assert_eq!(o.reply, Reply::Stopped, "{}", ctx(&o.to_string()));
    assert_eq!(o.srs.len(), 1);
    assert!(o.srs[0].ok, "{}", ctx(&o.to_string()));
    assert!(!p.src.is_recording());

    p.settle();
    // What each side saw, once: every retransmission and late copy was absorbed.
    assert_eq!(
        p.srs_saw,
        [
            SrsSaw::Started { paused: false },
            SrsSaw::Media { paused: true },
            SrsSaw::Media { paused: false },
            SrsSaw::Ended(EndReason::ByeFromSrc),
        ],
        "{}",
        ctx("the SRS's view of the session")
    );
    // Pause stops the media at once and again with the SRS's answer; resume sends again
    // once the SRS accepted it; stop ends it.
    assert_eq!(
        p.plans,
        [Some(true), Some(false), Some(false), Some(true), None],
        "{}",
        ctx("the SRC's media plans")
    );
    assert_eq!(p.outcomes.len(), 4, "{}", ctx("one outcome per activity"));
    assert!(
        p.unexpected.is_empty(),
        "{}: {:?}",
        ctx("events"),
        p.unexpected
    );
    // Both sides are done: no session, nothing in flight, no timer left, every port back.
    assert!(p.src.is_quiet(), "{}", ctx("SRC quiet"));
    assert_eq!(p.srs.active_sessions(), 0);
    assert_eq!(p.src.poll_timeout(), None);
    assert_eq!(p.srs.poll_timeout(), None);
    assert!(p.wire.is_empty());
    let (mut given, mut back) = {
        let book = p.ports.0.lock().unwrap();
        (book.given.clone(), book.back.clone())
    };
    given.sort_unstable();
    back.sort_unstable();
    assert!(!given.is_empty());
    assert_eq!(given, back, "{}", ctx("RTP ports given back"));
    p
}

#[test]
fn a_clean_network_carries_the_call_in_fourteen_messages() {
    let p = record_one_call(0, CLEAN);
    assert_eq!(p.dropped, 0);
    let sent: Vec<(Side, &str)> = p.sent.iter().map(|(s, l)| (*s, l.as_str())).collect();
    // The INVITE goes to the URI; everything else to the SRS's Contact (in its dialog).
    let invite = "INVITE sip:192.0.2.10:5060;transport=udp SIP/2.0";
    let reinvite = "INVITE sip:srs@192.0.2.10:5060 SIP/2.0";
    let ack = "ACK sip:srs@192.0.2.10:5060 SIP/2.0";
    let bye = "BYE sip:srs@192.0.2.10:5060 SIP/2.0";
    let (trying, ok) = ("SIP/2.0 100 Trying", "SIP/2.0 200 OK");
    #[rustfmt::skip]
    let expected = [
        // start
        (Side::Src, invite), (Side::Srs, trying), (Side::Srs, ok), (Side::Src, ack),
        // pause
        (Side::Src, reinvite), (Side::Srs, trying), (Side::Srs, ok), (Side::Src, ack),
        // resume
        (Side::Src, reinvite), (Side::Srs, trying), (Side::Srs, ok), (Side::Src, ack),
        // stop
        (Side::Src, bye), (Side::Srs, ok),
    ];
    assert_eq!(sent, expected);
}

#[test]
fn loss_and_reordering_never_change_what_either_side_sees() {
    let clean = record_one_call(0, CLEAN).sent.len();
    let (mut dropped, mut overtaken, mut retransmitted) = (0, 0, 0);
    for seed in 1..=20 {
        let p = record_one_call(seed, LOSSY);
        dropped += p.dropped;
        overtaken += p.overtaken;
        if p.sent.len() > clean {
            retransmitted += 1;
        }
    }
    // The runs did exercise loss, reordering and retransmission.
    assert!(dropped >= 20, "only {dropped} datagrams dropped in 20 runs");
    assert!(
        overtaken >= 5,
        "only {overtaken} datagrams overtaken in 20 runs"
    );
    assert!(
        retransmitted >= 10,
        "only {retransmitted} of 20 runs retransmitted"
    );
}
