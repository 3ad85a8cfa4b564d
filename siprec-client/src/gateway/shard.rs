//! The gateway's media path: a few relay threads ("shards"), each owning the relay sockets of
//! its calls and waiting on them with one epoll set (mio, edge-triggered). A readable socket is
//! drained in `recvmmsg` batches until one comes back short; each packet goes through the call's [`Relay`] decisions and
//! out with one `send_to` per destination (the other leg, then every recording copy). No task,
//! timer, lock, allocation or log line per packet; counters are folded into the shared
//! [`GatewayCounters`] once a second and when a call closes.
//!
//! The driver talks to a shard through a channel and a [`mio::Waker`]: open a call (its four
//! sockets), apply a [`RelayUpdate`], close it.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use siprec_core::client::RsId;
use siprec_gateway::relay::{Channel, Relay, RelayStats, Side};
use siprec_gateway::{CallId, RelayUpdate};
use siprec_rtp::srtp::SrtpSender;
use siprec_udp::{RecvBatch, BATCH};
use tracing::{debug, warn};

use super::GatewayCounters;

/// Largest RTP/RTCP datagram relayed.
const MAX_PACKET: usize = siprec_udp::DATAGRAM;
/// The waker's token (socket tokens are `slot * 4 + socket`).
const WAKE: Token = Token(usize::MAX);
/// How often per-call counts are folded into the shared counters.
const FOLD_EVERY: Duration = Duration::from_secs(1);

enum Control {
    Open {
        call: CallId,
        sockets: Box<[std::net::UdpSocket; 4]>,
    },
    Update {
        call: CallId,
        update: Box<RelayUpdate>,
    },
    Close {
        call: CallId,
    },
    Stop,
}

struct Shard {
    tx: mpsc::Sender<Control>,
    waker: Arc<Waker>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The relay threads. Calls are spread over them in turn.
pub(super) struct Shards {
    shards: Vec<Shard>,
    of_call: HashMap<CallId, usize>,
    next: usize,
}

impl Shards {
    /// `n` relay threads (at least one).
    pub(super) fn new(n: usize, counters: &Arc<GatewayCounters>) -> std::io::Result<Shards> {
        let mut shards = Vec::with_capacity(n.max(1));
        for i in 0..n.max(1) {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
            let (tx, rx) = mpsc::channel();
            let counters = Arc::clone(counters);
            let thread = std::thread::Builder::new()
                .name(format!("relay-{i}"))
                .spawn(move || ShardLoop::new(poll, rx, counters).run())?;
            shards.push(Shard {
                tx,
                waker,
                thread: Some(thread),
            });
        }
        Ok(Shards {
            shards,
            of_call: HashMap::new(),
            next: 0,
        })
    }

    fn send(&self, shard: usize, c: Control) {
        if let Some(s) = self.shards.get(shard) {
            if s.tx.send(c).is_ok() {
                let _ = s.waker.wake();
            }
        }
    }

    /// Starts relaying `call` on its four sockets (A-facing RTP, RTCP; B-facing RTP, RTCP).
    pub(super) fn open(&mut self, call: CallId, sockets: [std::net::UdpSocket; 4]) {
        let shard = self.next % self.shards.len();
        self.next = self.next.wrapping_add(1);
        self.of_call.insert(call, shard);
        self.send(
            shard,
            Control::Open {
                call,
                sockets: Box::new(sockets),
            },
        );
    }

    /// Applies a change to `call`'s relay.
    pub(super) fn update(&mut self, call: CallId, update: RelayUpdate) {
        if let RelayUpdate::Close = update {
            if let Some(shard) = self.of_call.remove(&call) {
                self.send(shard, Control::Close { call });
            }
            return;
        }
        if let Some(&shard) = self.of_call.get(&call) {
            self.send(
                shard,
                Control::Update {
                    call,
                    update: Box::new(update),
                },
            );
        }
    }

    /// Stops every thread (calls still open are dropped, their counts folded).
    pub(super) fn stop(&mut self) {
        for s in &self.shards {
            if s.tx.send(Control::Stop).is_ok() {
                let _ = s.waker.wake();
            }
        }
        for s in &mut self.shards {
            if let Some(t) = s.thread.take() {
                let _ = t.join();
            }
        }
    }
}

impl Drop for Shards {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One call on a shard.
struct CallRelay {
    call: CallId,
    /// A-facing RTP, RTCP; B-facing RTP, RTCP.
    sockets: [UdpSocket; 4],
    relay: Relay,
    srtp: Vec<(RsId, usize, SrtpSender)>,
    last: RelayStats,
}

struct ShardLoop {
    poll: Poll,
    rx: mpsc::Receiver<Control>,
    counters: Arc<GatewayCounters>,
    slots: Vec<Option<CallRelay>>,
    free: Vec<usize>,
    index: HashMap<CallId, usize>,
    batch: RecvBatch,
    scratch: Box<[u8; MAX_PACKET + 64]>,
    protected: Box<[u8; MAX_PACKET + 64]>,
}

fn side_channel(socket: usize) -> (Side, Channel) {
    let side = if socket < 2 { Side::A } else { Side::B };
    let channel = if socket % 2 == 0 {
        Channel::Rtp
    } else {
        Channel::Rtcp
    };
    (side, channel)
}

impl ShardLoop {
    fn new(poll: Poll, rx: mpsc::Receiver<Control>, counters: Arc<GatewayCounters>) -> ShardLoop {
        ShardLoop {
            poll,
            rx,
            counters,
            slots: Vec::new(),
            free: Vec::new(),
            index: HashMap::new(),
            batch: RecvBatch::new(),
            scratch: Box::new([0; MAX_PACKET + 64]),
            protected: Box::new([0; MAX_PACKET + 64]),
        }
    }

    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut folded = Instant::now();
        loop {
            if let Err(e) = self.poll.poll(&mut events, Some(FOLD_EVERY)) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                warn!(error = %e, "relay shard: poll failed; stopping");
                break;
            }
            // The driver's changes first: a call's addresses are known before the packets that
            // its SIP answer let the parties send.
            if !self.control() {
                break;
            }
            for ev in events.iter() {
                if ev.token() == WAKE {
                    continue;
                }
                let (slot, socket) = (ev.token().0 / 4, ev.token().0 % 4);
                self.drain(slot, socket);
            }
            if folded.elapsed() >= FOLD_EVERY {
                folded = Instant::now();
                for slot in 0..self.slots.len() {
                    self.fold(slot);
                }
            }
        }
        for slot in 0..self.slots.len() {
            self.fold(slot);
        }
    }

    /// Applies the driver's messages; `false` on Stop.
    fn control(&mut self) -> bool {
        while let Ok(c) = self.rx.try_recv() {
            match c {
                Control::Stop => return false,
                Control::Open { call, sockets } => self.open(call, *sockets),
                Control::Update { call, update } => {
                    if let Some(&slot) = self.index.get(&call) {
                        self.apply(slot, *update);
                    }
                }
                Control::Close { call } => {
                    if let Some(slot) = self.index.remove(&call) {
                        self.fold(slot);
                        if let Some(mut c) = self.slots[slot].take() {
                            for s in &mut c.sockets {
                                let _ = self.poll.registry().deregister(s);
                            }
                        }
                        self.free.push(slot);
                    }
                }
            }
        }
        true
    }

    fn open(&mut self, call: CallId, sockets: [std::net::UdpSocket; 4]) {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        let mut socks = sockets.map(UdpSocket::from_std);
        for (i, s) in socks.iter_mut().enumerate() {
            if let Err(e) =
                self.poll
                    .registry()
                    .register(s, Token(slot * 4 + i), Interest::READABLE)
            {
                warn!(%call, error = %e, "relay socket cannot be watched; the call's media is not relayed");
                self.free.push(slot);
                return;
            }
        }
        self.slots[slot] = Some(CallRelay {
            call,
            sockets: socks,
            relay: Relay::new(),
            srtp: Vec::new(),
            last: RelayStats::default(),
        });
        self.index.insert(call, slot);
    }

    fn apply(&mut self, slot: usize, u: RelayUpdate) {
        let Some(c) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        match u {
            RelayUpdate::Remote { side, media } => c.relay.set_remote(side, &media),
            RelayUpdate::Codec { format } => c.relay.set_codec(format),
            RelayUpdate::Fork { rs, plan } => {
                c.srtp.retain(|(r, _, _)| *r != rs);
                for (leg, m) in plan.legs.iter().enumerate() {
                    if let Some(key) = m.as_ref().and_then(|m| m.srtp.as_ref()) {
                        match SrtpSender::new(key) {
                            Ok(s) => c.srtp.push((rs, leg, s)),
                            Err(e) => debug!(error = %e, "SRTP context for a fork"),
                        }
                    }
                }
                c.relay.set_fork(rs, &plan);
            }
            RelayUpdate::ForkStop { rs } => {
                c.srtp.retain(|(r, _, _)| *r != rs);
                c.relay.remove_fork(rs);
            }
            RelayUpdate::Open { .. } | RelayUpdate::Close => {}
        }
    }

    /// Reads `socket` of the call in `slot` in `recvmmsg` batches until one comes back short
    /// (see [`RecvBatch::recv`]), relaying every packet.
    fn drain(&mut self, slot: usize, socket: usize) {
        let Some(c) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let (side, channel) = side_channel(socket);
        let mut errors = 0;
        loop {
            let n = match self.batch.recv(&c.sockets[socket]) {
                Ok(n) => n,
                // ICMP errors of earlier sends surface here (reading one clears it); the
                // socket stays usable.
                Err(_) if errors < 4 => {
                    errors += 1;
                    continue;
                }
                Err(_) => return,
            };
            for i in 0..n {
                if let Some((data, from)) = self.batch.get(i) {
                    packet(
                        c,
                        side,
                        channel,
                        data,
                        from,
                        &mut self.scratch,
                        &mut self.protected,
                    );
                }
            }
            if n < BATCH {
                return;
            }
        }
    }

    /// Adds what the call in `slot` counted since the last fold to the shared counters.
    fn fold(&mut self, slot: usize) {
        let Some(c) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let now = c.relay.stats();
        let d = |a: u64, b: u64| a.saturating_sub(b);
        let k = &self.counters;
        k.relayed.fetch_add(
            d(
                now.relayed[0] + now.relayed[1],
                c.last.relayed[0] + c.last.relayed[1],
            ),
            Ordering::Relaxed,
        );
        k.forked.fetch_add(
            d(
                now.forked[0] + now.forked[1],
                c.last.forked[0] + c.last.forked[1],
            ),
            Ordering::Relaxed,
        );
        k.strangers
            .fetch_add(d(now.strangers, c.last.strangers), Ordering::Relaxed);
        c.last = now;
        let _ = c.call;
    }
}

/// One packet of `side`'s `channel`: to the other leg, and (audio of the call's codec) to every
/// recording server that takes it, SRTP-protected where agreed.
fn packet(
    c: &mut CallRelay,
    side: Side,
    channel: Channel,
    packet: &[u8],
    from: SocketAddr,
    scratch: &mut [u8; MAX_PACKET + 64],
    protected: &mut [u8; MAX_PACKET + 64],
) {
    let other = side.other().index() * 2 + usize::from(channel == Channel::Rtcp);
    if let Some(dest) = c.relay.route(side, channel, from) {
        // A full socket buffer drops the packet, as the network would.
        let _ = c.sockets[other].send_to(packet, dest);
    }
    if channel == Channel::Rtcp || packet.len() < 12 || packet[0] >> 6 != 2 {
        return;
    }
    let pt = packet[1] & 0x7f;
    let leg = side.index();
    let own = side.index() * 2;
    let srtp = &mut c.srtp;
    let sockets = &c.sockets;
    for (rs, f) in c.relay.forks(side, pt) {
        let mut bytes: &[u8] = packet;
        if f.payload_type != pt {
            let n = packet.len();
            scratch[..n].copy_from_slice(packet);
            scratch[1] = (packet[1] & 0x80) | (f.payload_type & 0x7f);
            bytes = &scratch[..n];
        }
        if f.srtp.is_some() {
            let Some((_, _, ctx)) = srtp.iter_mut().find(|(r, l, _)| *r == rs && *l == leg) else {
                continue;
            };
            match ctx.protect(bytes, &mut protected[..]) {
                Ok(m) => bytes = &protected[..m],
                Err(_) => continue,
            }
        }
        // The copy leaves from the port facing this leg: the one the SRS was offered.
        let _ = sockets[own].send_to(bytes, f.dest);
    }
}
