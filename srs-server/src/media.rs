//! The media path: a few threads ("shards", `--media-threads`, one per core by default), each
//! owning the RTP sockets and the [`MediaSession`]s of its recordings. A shard waits on its
//! sockets with one epoll set (mio, edge-triggered) — or, with `--media-sweep-ms`, wakes on a
//! timer and reads every socket — and drains a readable socket with `recvmmsg` batches,
//! handing each datagram to its session with the wake-up's instant. No task, timer, lock,
//! allocation or log line per packet or per stream; the sessions' ticks (timeline advance,
//! media timeout) run from the shard's loop every [`TICK`](siprec_recorder::session::TICK) / 2.
//!
//! The SIP driver never touches a session: it sends [`Control`]s through the [spool
//! worker](crate::spool_io) (so a session's spool files exist before its first control, in
//! order), and the shards report [`MediaNote`]s back on a channel.

use std::collections::HashMap;
use std::net::UdpSocket;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token, Waker};
use siprec_core::SessionId;
use siprec_recorder::session::{
    MediaEvent, MediaSession, Scratch, SessionReport, StreamSetup, TICK,
};
use tokio::sync::{mpsc as tmpsc, oneshot};
use tracing::{debug, warn};

use crate::http::Metrics;

use siprec_udp::{RecvBatch, BATCH};

/// The waker's token (socket tokens are `slot << 8 | socket`).
const WAKE: Token = Token(usize::MAX);
/// Sockets per session a token can name (one per recorded m-line).
const MAX_SOCKETS: usize = 256;
/// How often a shard reports its sessions' live RTP figures to the metrics.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// What a shard tells the SIP driver.
#[derive(Debug)]
pub(crate) enum MediaNote {
    /// No RTP for the media timeout (not paused): end the session.
    TimedOut(SessionId),
    /// The spool file could not be written; the recording keeps what was written.
    WriteFailed(SessionId, String),
    /// The recording could not start (spool directory or file); end the session.
    StartFailed(SessionId, String),
}

/// An instruction for a shard.
pub(crate) enum Control {
    /// Starts a session on its sockets (`(m-line index, socket)`).
    Open {
        id: SessionId,
        session: Box<MediaSession>,
        sockets: Vec<(usize, UdpSocket)>,
        span: tracing::Span,
    },
    /// A re-INVITE's streams and pause state; sockets of streams new to the session.
    Update {
        id: SessionId,
        now: Instant,
        setups: Vec<StreamSetup>,
        paused: bool,
        sockets: Vec<(usize, UdpSocket)>,
    },
    /// Ends a session at `now` and closes its file; the report goes to `reply`.
    Finish {
        id: SessionId,
        now: Instant,
        reply: oneshot::Sender<Result<SessionReport, siprec_recorder::Error>>,
    },
    Stop,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Control::Open { id, .. } => write!(f, "Open({})", id.0),
            Control::Update { id, .. } => write!(f, "Update({})", id.0),
            Control::Finish { id, .. } => write!(f, "Finish({})", id.0),
            Control::Stop => write!(f, "Stop"),
        }
    }
}

/// How a shard learns that a socket has data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wakeup {
    /// epoll, edge-triggered: one `recvmmsg` batch per ready socket.
    Epoll,
    /// A timer: every interval, every socket is read until it is empty.
    Sweep(Duration),
}

/// A handle on one shard: its control channel and waker.
#[derive(Debug, Clone)]
pub(crate) struct ShardHandle {
    tx: mpsc::Sender<Control>,
    waker: Arc<Waker>,
}

impl ShardHandle {
    /// Sends `c`; false when the shard has stopped.
    pub(crate) fn send(&self, c: Control) -> bool {
        if self.tx.send(c).is_err() {
            return false;
        }
        let _ = self.waker.wake();
        true
    }
}

/// The media threads. Sessions are spread over them in turn.
#[derive(Debug)]
pub(crate) struct Shards {
    handles: Vec<ShardHandle>,
    threads: Vec<std::thread::JoinHandle<()>>,
    of: HashMap<SessionId, usize>,
    next: usize,
}

impl Shards {
    /// `n` media threads (at least one).
    pub(crate) fn start(
        n: usize,
        wakeup: Wakeup,
        notes: tmpsc::UnboundedSender<MediaNote>,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Shards> {
        let mut handles = Vec::new();
        let mut threads = Vec::new();
        for i in 0..n.max(1) {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
            let (tx, rx) = mpsc::channel();
            let notes = notes.clone();
            let metrics = Arc::clone(&metrics);
            let thread = std::thread::Builder::new()
                .name(format!("media-{i}"))
                .spawn(move || ShardLoop::new(poll, rx, notes, wakeup, metrics).run())?;
            handles.push(ShardHandle { tx, waker });
            threads.push(thread);
        }
        Ok(Shards {
            handles,
            threads,
            of: HashMap::new(),
            next: 0,
        })
    }

    /// The shard that runs (or will run) `id`; a new session gets the next shard in turn.
    pub(crate) fn assign(&mut self, id: SessionId) -> ShardHandle {
        let n = self.handles.len();
        let next = &mut self.next;
        let i = *self.of.entry(id).or_insert_with(|| {
            let i = *next % n;
            *next = next.wrapping_add(1);
            i
        });
        self.handles[i].clone()
    }

    /// Forgets `id` (after its `Finish` was sent).
    pub(crate) fn forget(&mut self, id: SessionId) {
        self.of.remove(&id);
    }

    /// Stops every thread; sessions still open are dropped (their files stay in the spool,
    /// valid up to the last checkpoint, for recovery).
    pub(crate) fn stop(&mut self) {
        for h in &self.handles {
            h.send(Control::Stop);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Shards {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One session on a shard.
struct Slot {
    id: SessionId,
    session: MediaSession,
    /// `(m-line index, socket)`.
    sockets: Vec<(usize, mio::net::UdpSocket)>,
    span: tracing::Span,
}

struct ShardLoop {
    poll: Poll,
    rx: mpsc::Receiver<Control>,
    notes: tmpsc::UnboundedSender<MediaNote>,
    wakeup: Wakeup,
    /// Live RTP figures go here once a second per session.
    metrics: Arc<Metrics>,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    index: HashMap<SessionId, usize>,
    batch: RecvBatch,
    scratch: Scratch,
}

impl ShardLoop {
    fn new(
        poll: Poll,
        rx: mpsc::Receiver<Control>,
        notes: tmpsc::UnboundedSender<MediaNote>,
        wakeup: Wakeup,
        metrics: Arc<Metrics>,
    ) -> ShardLoop {
        ShardLoop {
            poll,
            rx,
            notes,
            wakeup,
            metrics,
            slots: Vec::new(),
            free: Vec::new(),
            index: HashMap::new(),
            batch: RecvBatch::new(),
            scratch: Scratch::new(),
        }
    }

    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let tick = TICK / 2;
        let mut next_tick = Instant::now() + tick;
        let mut next_sweep = Instant::now();
        let mut next_report = Instant::now() + REPORT_EVERY;
        loop {
            let now = Instant::now();
            let mut deadline = next_tick;
            if let Wakeup::Sweep(_) = self.wakeup {
                deadline = deadline.min(next_sweep);
            }
            let wait = deadline.saturating_duration_since(now);
            if let Err(e) = self.poll.poll(&mut events, Some(wait)) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    warn!(error = %e, "media shard: poll failed");
                }
                continue;
            }
            let now = Instant::now();
            let mut control = false;
            for ev in events.iter() {
                if ev.token() == WAKE {
                    control = true;
                    continue;
                }
                let t = ev.token().0;
                self.drain(t >> 8, t & (MAX_SOCKETS - 1), now);
            }
            if let Wakeup::Sweep(every) = self.wakeup {
                if now >= next_sweep {
                    self.sweep(now);
                    next_sweep = now + every;
                }
            }
            if control && self.controls() {
                return;
            }
            if now >= next_tick {
                self.tick(now);
                next_tick = now + tick;
            }
            if now >= next_report {
                // Before a session's `Finish` reply, so its final figures replace these.
                for slot in self.slots.iter().flatten() {
                    self.metrics
                        .set_live_reports(slot.id, &slot.session.streams());
                }
                next_report = now + REPORT_EVERY;
            }
        }
    }

    /// Reads socket `k` of slot `s` (see [`read_socket`]).
    fn drain(&mut self, s: usize, k: usize, now: Instant) {
        let Some(Some(slot)) = self.slots.get_mut(s) else {
            return;
        };
        slot.read(k, &mut self.batch, &mut self.scratch, now);
    }

    /// Sweep mode: every socket of every session, until empty.
    fn sweep(&mut self, now: Instant) {
        for s in 0..self.slots.len() {
            let n = self.slots[s].as_ref().map_or(0, |x| x.sockets.len());
            for k in 0..n {
                self.drain(s, k, now);
            }
        }
    }

    /// Every session's tick: timeline advance, media timeout; their events go to the driver.
    fn tick(&mut self, now: Instant) {
        for slot in self.slots.iter_mut().flatten() {
            slot.session.handle_timeout(now);
            while let Some(ev) = slot.session.poll_event() {
                let note = match ev {
                    MediaEvent::TimedOut => MediaNote::TimedOut(slot.id),
                    MediaEvent::WriteFailed(e) => MediaNote::WriteFailed(slot.id, e.to_string()),
                    _ => continue,
                };
                let _ = self.notes.send(note);
            }
        }
    }

    /// Applies every queued control; true on `Stop`.
    fn controls(&mut self) -> bool {
        while let Ok(c) = self.rx.try_recv() {
            match c {
                Control::Open {
                    id,
                    session,
                    sockets,
                    span,
                } => {
                    let s = self.free.pop().unwrap_or_else(|| {
                        self.slots.push(None);
                        self.slots.len() - 1
                    });
                    self.slots[s] = Some(Slot {
                        id,
                        session: *session,
                        sockets: Vec::new(),
                        span,
                    });
                    self.index.insert(id, s);
                    self.add_sockets(s, sockets);
                }
                Control::Update {
                    id,
                    now,
                    setups,
                    paused,
                    sockets,
                } => {
                    let Some(&s) = self.index.get(&id) else {
                        continue;
                    };
                    if let Some(slot) = self.slots[s].as_mut() {
                        slot.session.update(now, &setups, paused);
                    }
                    self.add_sockets(s, sockets);
                }
                Control::Finish { id, now, reply } => {
                    let Some(s) = self.index.remove(&id) else {
                        continue; // never opened: dropping `reply` says so
                    };
                    let Some(mut slot) = self.slots[s].take() else {
                        continue;
                    };
                    self.free.push(s);
                    for (_, sock) in &mut slot.sockets {
                        let _ = self.poll.registry().deregister(sock);
                    }
                    // What was queued before the end still counts.
                    for k in 0..slot.sockets.len() {
                        slot.read(k, &mut self.batch, &mut self.scratch, now);
                    }
                    let _ = reply.send(slot.session.finish(now));
                }
                Control::Stop => return true,
            }
        }
        false
    }

    fn add_sockets(&mut self, s: usize, sockets: Vec<(usize, UdpSocket)>) {
        for (index, std_sock) in sockets {
            let Some(slot) = self.slots[s].as_mut() else {
                return;
            };
            let k = slot.sockets.len();
            if k >= MAX_SOCKETS {
                let _g = slot.span.enter();
                warn!(
                    stream = index,
                    "too many streams in one session; not receiving"
                );
                continue;
            }
            let mut sock = mio::net::UdpSocket::from_std(std_sock);
            if self.wakeup == Wakeup::Epoll {
                if let Err(e) =
                    self.poll
                        .registry()
                        .register(&mut sock, Token(s << 8 | k), Interest::READABLE)
                {
                    let _g = slot.span.enter();
                    warn!(stream = index, error = %e, "cannot watch an RTP socket");
                    continue;
                }
            }
            slot.sockets.push((index, sock));
            // Whatever arrived before registration is read now (edge-triggered).
            self.drain(s, k, Instant::now());
        }
    }
}

impl Slot {
    /// Reads socket `k` in batches until one comes back short (see [`RecvBatch::recv`] for why
    /// that is enough with edge-triggered epoll), handing every datagram to the session with
    /// the instant `now`.
    fn read(&mut self, k: usize, batch: &mut RecvBatch, scratch: &mut Scratch, now: Instant) {
        let Some((index, sock)) = self.sockets.get(k) else {
            return;
        };
        let mut errors = 0;
        loop {
            let n = match batch.recv(sock) {
                Ok(n) => n,
                Err(e) => {
                    // An ICMP error queued on the socket (reading it clears it); go on, a few
                    // times at most.
                    let _g = self.span.enter();
                    debug!(error = %e, "rtp receive error");
                    errors += 1;
                    if errors > 4 {
                        return;
                    }
                    continue;
                }
            };
            for i in 0..n {
                if let Some((data, from)) = batch.get(i) {
                    self.session.handle_packet(*index, from, data, now, scratch);
                }
            }
            if n < BATCH {
                return;
            }
        }
    }
}
