//! The recording client (SRC) role: one call's recording towards one or many recording servers
//! (SRSs), as the "Call Recording Node" drives it — start, stop, pause, resume. No sockets, no
//! clock, no DNS (quinn-proto style).
//!
//! What [`SrcCore`] owns:
//! - the **Call Recording Server** value ([`parse_server_list`]): comma-separated `sip:` /
//!   `sips:` URIs (host name, IPv4 or IPv6 literal, optional port, `transport=udp|tcp|tls`),
//!   entries trimmed; every other form is refused with an error naming the entry;
//! - one **recording session (RS)** per URI, in parallel, each its own dialog (RFC 7866 §6.1):
//!   `Contact: <…>;+sip.src`, `Require: siprec`, `Accept`, a `multipart/mixed` body with the SDP
//!   offer (one `sendonly` m-line per call leg, `a=label:1` and `a=label:2`) and the RFC 7865
//!   metadata (`application/rs-metadata+xml`, `Content-Disposition: recording-session`);
//! - failover across the targets the driver resolved for a URI (RFC 3263 §4.3: on timeout,
//!   transport error or 503), 3xx redirects to a `sip:`/`sips:` Contact;
//! - the outcome of every activity, with the reply code and the log line of the node's
//!   contract ([`Reply`]), and per SRS what happened ([`SrsReport`]);
//! - pause (re-INVITE, every m-line `inactive`, partial metadata), resume (`sendonly`), stop
//!   (BYE, and CANCEL for INVITEs still pending), each awaited per SRS;
//! - what an SRS may do on its own: BYE (that RS ends, the others go on), re-INVITE and UPDATE
//!   (answered; a snapshot request gets the complete metadata in a new transaction, RFC 7866
//!   §9.4), 491 glare with the RFC 3261 §14.1 back-off, RFC 4028 session timers.
//!
//! What the driver owns: sockets, name resolution (it answers [`Event::Resolve`] with
//! [`SrcCore::resolved`]) and the RTP senders ([`Event::Media`] says where each leg goes, in
//! which codec, and whether to send now).
//!
//! Call order, per call:
//! 1. [`SrcCore::new`] with the local SIP and RTP addresses and the call's context;
//! 2. an activity: [`SrcCore::start`], [`SrcCore::stop`], [`SrcCore::pause`],
//!    [`SrcCore::resume`] (each returns an [`OpId`]; its [`Outcome`] comes as an event);
//! 3. bytes in: [`SrcCore::handle_bytes`] (or [`SrcCore::handle_message`]); send errors:
//!    [`SrcCore::handle_transport_error`];
//! 4. drain [`SrcCore::poll_transmit`] onto the sockets and [`SrcCore::poll_event`];
//! 5. sleep until [`SrcCore::poll_timeout`], then [`SrcCore::handle_timeout`].
//!
//! ```
//! use std::time::{Duration, Instant, SystemTime};
//! use siprec_core::client::{CallContext, Event, Reply, SrcConfig, SrcCore};
//!
//! let now = Instant::now();
//! let config = SrcConfig::new("192.0.2.1".parse().unwrap(), Some(5060), None, [40000, 40002]);
//! let mut src = SrcCore::new(config, CallContext::example(), now, SystemTime::now()).unwrap();
//!
//! // An empty Call Recording Server value is the "missing X-Srs-Url" case.
//! let op = src.start(now, " ", None);
//! let Some(Event::Outcome(out)) = src.poll_event() else { panic!() };
//! assert_eq!((out.op, out.reply), (op, Reply::MissingServer));
//! assert_eq!(out.reply.code(), 400);
//! assert_eq!(out.reply.log_line(), "startCallRecording request is missing X-Srs-Url header");
//!
//! // A valid value: the core asks the driver to resolve each URI.
//! src.start(now, "sip:192.0.2.10:5060;transport=udp", Some("rec-1"));
//! let Some(Event::Resolve { rs, uri }) = src.poll_event() else { panic!() };
//! assert_eq!(uri.to_string(), "sip:192.0.2.10:5060;transport=udp");
//! src.resolved(now, rs, Ok(vec!["udp:192.0.2.10:5060".parse().unwrap()]));
//! let invite = src.poll_transmit().unwrap();
//! assert!(invite.payload.starts_with(b"INVITE sip:192.0.2.10:5060;transport=udp SIP/2.0\r\n"));
//!
//! // Nobody answers: after the start timeout (2 s) the contract's 400.
//! src.handle_timeout(now + Duration::from_secs(2));
//! let out = std::iter::from_fn(|| src.poll_event())
//!     .find_map(|e| match e { Event::Outcome(o) => Some(o), _ => None })
//!     .unwrap();
//! assert_eq!(out.reply, Reply::NoResponse);
//! assert_eq!(out.reply.log_line(), "No response from SipRec server, return error to feature server");
//! ```

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::{Instant, SystemTime};

use rs_metadata::Recording;
use siprec_sdp::{Direction, Format};
use siprec_sip::message;
use siprec_sip::rsip::{Request, SipMessage};
use siprec_sip::transaction::{ClientKey, Event as TxEvent, Peer, TransactionLayer, Transmit};
use tracing::{debug, info};

mod close;
mod config;
mod contract;
mod error;
mod events;
mod modify;
mod requests;
mod responses;
mod server_uri;
mod state;
mod uas;

#[cfg(test)]
mod tests;

pub use config::{
    CallContext, CallDirection, Party, SrcConfig, SrtpOffer, MAX_EXTRA_HEADERS, UDP_SIZE_LIMIT,
};
pub use contract::{
    Activity, OpId, Outcome, Reply, RsId, SrsReport, UnknownActivity, LOG_DUPLICATE_START,
    LOG_ESTABLISHED, LOG_INVALID_PAUSE, LOG_INVALID_RESUME, LOG_MISSING_SERVER, LOG_NOT_RECORDING,
    LOG_NO_RESPONSE, LOG_PAUSED, LOG_PAUSE_FAILED, LOG_RESUMED, LOG_RESUME_FAILED,
    LOG_SRS_CANCELLED, LOG_SRS_ENDED, LOG_SRS_FAILED, LOG_SRS_PAUSED, LOG_SRS_PENDING,
    LOG_SRS_REQUEST_FAILED, LOG_SRS_RESUMED, LOG_SRS_STOPPED, LOG_STARTED, LOG_START_FAILED,
    LOG_STOPPED,
};
pub use error::{Error, ACCEPTED};
pub use events::{Event, LegMedia, MediaPlan};
pub use requests::{xs_datetime, ACCEPT, ALLOW};
pub use server_uri::{
    parse_server_list, Host, ServerUriError, SrsUri, Target, TargetError, MAX_SERVERS,
    MAX_SERVER_VALUE, MAX_TARGETS,
};

use config::new_srtp_keys;
use requests::new_md_id;
use state::{
    CallIds, CallState, InFlight, ModKind, PendingOp, Phase, Purpose, Rs, SessionTimer, StartOp,
    Wait,
};

// ---------------------------------------------------------------------------------------------
// The core
// ---------------------------------------------------------------------------------------------

/// The SRC state machine of one call. See the [module docs](self) for the call order.
pub struct SrcCore {
    config: SrcConfig,
    call: CallContext,
    ids: CallIds,
    clock: (Instant, SystemTime),
    layer: TransactionLayer,
    state: CallState,
    paused: bool,
    rss: Vec<Rs>,
    next_rs: u64,
    next_op: u64,
    start: Option<StartOp>,
    ops: Vec<PendingOp>,
    owners: HashMap<ClientKey, (RsId, Purpose)>,
    /// INVITEs we gave up on (start timeout, next target): a late 2xx gets ACK + BYE.
    orphans: HashMap<ClientKey, (Peer, Request)>,
    metadata: Option<Recording>,
    recording_id: Option<String>,
    events: VecDeque<Event>,
}

impl fmt::Debug for SrcCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrcCore")
            .field("state", &self.state)
            .field("paused", &self.paused)
            .field("sessions", &self.rss.len())
            .finish_non_exhaustive()
    }
}

impl SrcCore {
    /// A recorder for one call. `now` and `wall_now` anchor the wall clock used for metadata
    /// times (`wall = wall_now + (t - now)`); the core never reads a clock.
    pub fn new(
        config: SrcConfig,
        call: CallContext,
        now: Instant,
        wall_now: SystemTime,
    ) -> Result<SrcCore, Error> {
        call.validate()?;
        let mut ids = CallIds {
            session_id: new_md_id(),
            caller_pid: new_md_id(),
            caller_sid: new_md_id(),
            callee_pid: new_md_id(),
            callee_sid: new_md_id(),
        };
        while ids.callee_pid == ids.caller_pid || ids.callee_sid == ids.caller_sid {
            ids.callee_pid = new_md_id();
            ids.callee_sid = new_md_id();
        }
        Ok(SrcCore {
            layer: TransactionLayer::new(config.timers),
            config,
            call,
            ids,
            clock: (now, wall_now),
            state: CallState::Idle,
            paused: false,
            rss: Vec::new(),
            next_rs: 1,
            next_op: 1,
            start: None,
            ops: Vec::new(),
            owners: HashMap::new(),
            orphans: HashMap::new(),
            metadata: None,
            recording_id: None,
            events: VecDeque::new(),
        })
    }

    /// The call's codec changed (a re-INVITE in a relayed call): from now on offer `codecs`
    /// (in preference order), and re-INVITE every established recording session with the
    /// same direction and the new list (RFC 3264 §8.3.2: a new offer may change the media
    /// formats). Each answer replaces that session's [`Event::Media`] plan. Sessions still
    /// being set up keep the offer they were sent. An empty or unchanged list does nothing.
    pub fn set_codecs(&mut self, now: Instant, codecs: Vec<Format>) {
        if codecs.is_empty() || codecs == self.config.codecs {
            return;
        }
        self.config.codecs = codecs;
        for r in self.rss.iter_mut() {
            if matches!(r.phase, Phase::Established) {
                r.need_reoffer = true;
            }
        }
        self.reconcile_all(now);
    }

    /// `true` while a start succeeded and no stop came (some SRS may still be joining).
    pub fn is_recording(&self) -> bool {
        self.state == CallState::Recording
    }

    /// `true` while recording and paused.
    pub fn is_paused(&self) -> bool {
        self.state == CallState::Recording && self.paused
    }

    /// `true` while a start waits for its first SRS.
    pub fn is_starting(&self) -> bool {
        self.state == CallState::Starting
    }

    /// Recording sessions currently established.
    pub fn established(&self) -> Vec<RsId> {
        self.rss
            .iter()
            .filter(|r| matches!(r.phase, Phase::Established))
            .map(|r| r.id)
            .collect()
    }

    /// `true` when nothing is in flight: no RS alive, no activity waiting, no transaction.
    /// A driver can finish the call once this holds after a stop.
    pub fn is_quiet(&self) -> bool {
        self.rss.iter().all(|r| matches!(r.phase, Phase::Done))
            && self.ops.is_empty()
            && self.start.is_none()
    }

    fn wall(&self, now: Instant) -> SystemTime {
        let (i, w) = self.clock;
        if now >= i {
            w + (now - i)
        } else {
            w.checked_sub(i - now).unwrap_or(w)
        }
    }

    fn next_op_id(&mut self) -> OpId {
        let id = OpId(self.next_op);
        self.next_op += 1;
        id
    }

    fn outcome(
        &mut self,
        op: OpId,
        activity: Activity,
        reply: Reply,
        reason: Option<String>,
        srs: Vec<SrsReport>,
    ) {
        info!(%activity, code = reply.code(), reason = reason.as_deref().unwrap_or(""), "{}", reply.log_line());
        self.events.push_back(Event::Outcome(Outcome {
            op,
            activity,
            reply,
            reason,
            srs,
        }));
    }

    fn rs_mut(&mut self, id: RsId) -> Option<&mut Rs> {
        self.rss.iter_mut().find(|r| r.id == id)
    }

    fn rs(&self, id: RsId) -> Option<&Rs> {
        self.rss.iter().find(|r| r.id == id)
    }

    // -----------------------------------------------------------------------------------------
    // Activities
    // -----------------------------------------------------------------------------------------

    /// Activity **start** with the raw Call Recording Server value and the optional Call
    /// Recording ID. The [`Outcome`] comes as [`Event::Outcome`]: at once for a duplicate, an
    /// empty or invalid value; else when the first SRS accepts (200), when all failed (503),
    /// or at the start timeout (400, and everything pending is cancelled).
    pub fn start(&mut self, now: Instant, server: &str, recording_id: Option<&str>) -> OpId {
        let op = self.next_op_id();
        if self.state != CallState::Idle {
            let reason = if self.state == CallState::Starting {
                "a start is already in progress"
            } else {
                "the call is already being recorded"
            };
            self.outcome(
                op,
                Activity::Start,
                Reply::DuplicateStart,
                Some(reason.into()),
                Vec::new(),
            );
            return op;
        }
        let uris = match parse_server_list(server) {
            Ok(u) => u,
            Err(Error::MissingServer) => {
                self.outcome(
                    op,
                    Activity::Start,
                    Reply::MissingServer,
                    Some("the Call Recording Server value is empty".into()),
                    Vec::new(),
                );
                return op;
            }
            Err(e) => {
                self.outcome(
                    op,
                    Activity::Start,
                    Reply::StartFailed,
                    Some(e.to_string()),
                    Vec::new(),
                );
                return op;
            }
        };
        let entries: Vec<String> = server.split(',').map(|s| s.trim().to_string()).collect();
        self.recording_id = recording_id
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        match self.build_metadata(now) {
            Ok(md) => self.metadata = Some(md),
            Err(e) => {
                self.outcome(
                    op,
                    Activity::Start,
                    Reply::StartFailed,
                    Some(format!("cannot describe the call: {e}")),
                    Vec::new(),
                );
                return op;
            }
        }
        self.gc();
        self.state = CallState::Starting;
        self.paused = false;
        let mut ids = Vec::new();
        for (uri, entry) in uris.into_iter().zip(entries) {
            let id = RsId(self.next_rs);
            self.next_rs += 1;
            ids.push(id);
            self.events.push_back(Event::Resolve {
                rs: id,
                uri: uri.clone(),
            });
            let srtp_keys = match self.config.srtp {
                SrtpOffer::Always => Some(new_srtp_keys(&self.config.srtp_suites)),
                SrtpOffer::Sips if uri.secure => Some(new_srtp_keys(&self.config.srtp_suites)),
                _ => None,
            };
            self.rss.push(Rs {
                id,
                entry,
                uri,
                redirects: 0,
                targets: Vec::new(),
                next: 0,
                phase: Phase::Resolving,
                history: Vec::new(),
                status: None,
                target: None,
                peer: None,
                dialog: None,
                target_uri: None,
                invite_key: None,
                ack: None,
                sdp_id: u64::from(rand::random::<u32>()),
                sdp_version: 1,
                have: Direction::SendOnly,
                want: Direction::SendOnly,
                legs: Default::default(),
                srtp_keys,
                in_flight: None,
                last_reinvite_ack: None,
                backoff_until: None,
                need_snapshot: false,
                need_reoffer: false,
                need_refresh: false,
                allow_update: false,
                timer: None,
                srs_invite: None,
                last_plan: None,
                waiting: Vec::new(),
                start_op: Some(op),
            });
        }
        self.start = Some(StartOp {
            id: op,
            deadline: now + self.config.start_timeout,
            rss: ids,
        });
        op
    }

    /// Activity **stop**: BYE to every established SRS, CANCEL for pending INVITEs. The
    /// [`Outcome`] ([`Reply::Stopped`], per-SRS results) comes once every SRS answered or
    /// [`SrcConfig::request_timeout`] passed; [`Reply::NotRecording`] at once when idle. A
    /// stop during a start answers that start with 503 first.
    pub fn stop(&mut self, now: Instant) -> OpId {
        let op = self.next_op_id();
        match self.state {
            CallState::Idle => {
                self.outcome(op, Activity::Stop, Reply::NotRecording, None, Vec::new());
                return op;
            }
            CallState::Starting => {
                if let Some(s) = self.start.take() {
                    let reports = self.reports_of(&s.rss);
                    self.outcome(
                        s.id,
                        Activity::Start,
                        Reply::StartFailed,
                        Some("stopped before any SRS accepted".into()),
                        reports,
                    );
                    for id in s.rss {
                        if let Some(r) = self.rs_mut(id) {
                            r.start_op = None;
                        }
                    }
                }
            }
            CallState::Recording => {}
        }
        self.state = CallState::Idle;
        self.paused = false;
        let ids: Vec<RsId> = self
            .rss
            .iter()
            .filter(|r| !matches!(r.phase, Phase::Done))
            .map(|r| r.id)
            .collect();
        let mut parts = Vec::new();
        for id in ids {
            let report = self.close_rs(now, id, "stopped");
            parts.push((id, report));
        }
        self.ops.push(PendingOp {
            id: op,
            activity: Activity::Stop,
            deadline: now + self.config.request_timeout,
            parts,
        });
        for (id, _) in self.ops.last().map(|o| o.parts.clone()).unwrap_or_default() {
            if let Some(r) = self.rs_mut(id) {
                r.waiting.push((op, Wait::Close));
            }
        }
        self.check_ops(now);
        op
    }

    /// Activity **pause**: media stops at once; every established SRS gets a re-INVITE with
    /// all m-lines `inactive` and a partial metadata document. [`Reply::InvalidPause`] when not
    /// recording or already paused.
    pub fn pause(&mut self, now: Instant) -> OpId {
        self.change_direction(now, Activity::Pause)
    }

    /// Activity **resume**: every established SRS gets a re-INVITE with `sendonly` m-lines;
    /// its media restarts when it accepts. [`Reply::InvalidResume`] when not paused.
    pub fn resume(&mut self, now: Instant) -> OpId {
        self.change_direction(now, Activity::Resume)
    }

    fn change_direction(&mut self, now: Instant, activity: Activity) -> OpId {
        let op = self.next_op_id();
        let pause = activity == Activity::Pause;
        let valid = self.state == CallState::Recording && self.paused != pause;
        if !valid {
            let reply = if pause {
                Reply::InvalidPause
            } else {
                Reply::InvalidResume
            };
            let reason = match (self.state, self.paused) {
                (CallState::Recording, true) => "already paused",
                (CallState::Recording, false) => "not paused",
                (CallState::Starting, _) => "the recording is still starting",
                (CallState::Idle, _) => "not recording",
            };
            self.outcome(op, activity, reply, Some(reason.into()), Vec::new());
            return op;
        }
        self.paused = pause;
        let dir = if pause {
            Direction::Inactive
        } else {
            Direction::SendOnly
        };
        let mut parts = Vec::new();
        let ids: Vec<RsId> = self.rss.iter().map(|r| r.id).collect();
        for id in ids {
            let Some(r) = self.rs_mut(id) else { continue };
            match r.phase {
                Phase::Established => {
                    r.want = dir;
                    let changing = matches!(
                        r.in_flight,
                        Some(InFlight {
                            kind: ModKind::Direction(_),
                            ..
                        })
                    );
                    if r.have == dir && !changing {
                        // The SRS is already there (an earlier change was refused).
                        parts.push((
                            id,
                            Some(SrsReport {
                                rs: id,
                                entry: r.entry.clone(),
                                target: r.target,
                                status: None,
                                ok: true,
                                line: if pause {
                                    LOG_SRS_PAUSED
                                } else {
                                    LOG_SRS_RESUMED
                                },
                                detail: format!("already {dir}"),
                            }),
                        ));
                    } else {
                        r.waiting.push((op, Wait::Direction(dir)));
                        parts.push((id, None));
                    }
                }
                Phase::Resolving | Phase::Inviting(_) => r.want = dir,
                Phase::Closing { .. } | Phase::Done => {}
            }
            self.emit_media(id);
        }
        self.ops.push(PendingOp {
            id: op,
            activity,
            deadline: now + self.config.request_timeout,
            parts,
        });
        self.reconcile_all(now);
        self.check_ops(now);
        op
    }

    /// Runs an activity the way the node does: `server` and `recording_id` matter for start
    /// only.
    pub fn activity(
        &mut self,
        now: Instant,
        activity: Activity,
        server: &str,
        recording_id: Option<&str>,
    ) -> OpId {
        match activity {
            Activity::Start => self.start(now, server, recording_id),
            Activity::Stop => self.stop(now),
            Activity::Pause => self.pause(now),
            Activity::Resume => self.resume(now),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Driver input
    // -----------------------------------------------------------------------------------------

    /// The answer to [`Event::Resolve`]: the targets in the order to try (RFC 3263), or why
    /// the name could not be resolved.
    pub fn resolved(&mut self, now: Instant, rs: RsId, result: Result<Vec<Target>, String>) {
        let Some(r) = self.rs_mut(rs) else { return };
        if !matches!(r.phase, Phase::Resolving) {
            return;
        }
        match result {
            Ok(mut targets) if !targets.is_empty() => {
                targets.truncate(MAX_TARGETS);
                r.targets = targets;
                r.next = 0;
                self.try_next_target(now, rs);
            }
            Ok(_) => {
                let why = format!("{} resolved to no address", r.uri.host);
                self.fail_rs(now, rs, None, why);
            }
            Err(e) => {
                let why = format!("cannot resolve {}: {e}", r.uri.host);
                self.fail_rs(now, rs, None, why);
            }
        }
        self.after(now);
    }

    /// One datagram or framed stream message from `peer`. Unparseable bytes are dropped.
    pub fn handle_bytes(&mut self, now: Instant, peer: Peer, bytes: &[u8]) {
        match message::parse_message(bytes) {
            Ok(msg) => self.handle_message(now, peer, msg),
            Err(e) => debug!(%e, peer = %peer.addr, "unparseable SIP message dropped"),
        }
    }

    /// One parsed message from `peer`.
    pub fn handle_message(&mut self, now: Instant, peer: Peer, msg: SipMessage) {
        self.layer.handle_message(now, peer, msg);
        self.after(now);
    }

    /// Sending to `peer` failed (connection refused, no route): INVITEs to it fail over to
    /// the next target; requests in a dialog with it fail.
    pub fn handle_transport_error(&mut self, now: Instant, peer: Peer, reason: &str) {
        let ids: Vec<RsId> = self.rss.iter().map(|r| r.id).collect();
        for id in ids {
            let Some(r) = self.rs_mut(id) else { continue };
            match &r.phase {
                Phase::Inviting(a) if Peer::from(a.target) == peer => {
                    let key = a.key.clone();
                    r.history.push(format!("{}: {reason}", a.target));
                    self.owners.remove(&key);
                    self.try_next_target(now, id);
                }
                Phase::Established if r.peer == Some(peer) && r.in_flight.is_some() => {
                    self.end_rs(now, id, None, format!("transport error: {reason}"), false);
                }
                Phase::Closing { .. } if r.peer == Some(peer) => {
                    self.finish_close(now, id, None, format!("transport error: {reason}"));
                }
                _ => {}
            }
        }
        self.after(now);
    }

    /// Timers: call at (or after) [`SrcCore::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        self.layer.handle_timeout(now);
        self.drive(now);
        // The start timeout.
        if let Some(s) = &self.start {
            if s.deadline <= now {
                self.start_timed_out(now);
            }
        }
        let ids: Vec<RsId> = self.rss.iter().map(|r| r.id).collect();
        for id in ids {
            let Some(r) = self.rs_mut(id) else { continue };
            match &mut r.phase {
                Phase::Inviting(a) if !a.provisional && a.switch_at.is_some_and(|t| t <= now) => {
                    // No answer at all from this target: abandon it, try the next.
                    let (key, req, target) = (a.key.clone(), a.request.clone(), a.target);
                    r.history
                        .push(format!("{target}: no response within the target timeout"));
                    self.orphan(now, key, target.into(), req);
                    self.try_next_target(now, id);
                }
                Phase::Closing { deadline, .. } if *deadline <= now => {
                    self.finish_close(now, id, None, "no answer in time".into());
                }
                Phase::Established => {
                    if r.backoff_until.is_some_and(|t| t <= now) {
                        r.backoff_until = None;
                    }
                    if let Some(t) = r.timer {
                        if t.at <= now {
                            if t.we_refresh {
                                r.need_refresh = true;
                                r.timer = Some(SessionTimer {
                                    at: now + t.interval,
                                    ..t
                                });
                            } else {
                                // RFC 4028 §10: no refresh came; end the session.
                                self.end_rs(
                                    now,
                                    id,
                                    None,
                                    "session expired (no refresh from the SRS)".into(),
                                    true,
                                );
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        // Activities waiting too long.
        let late: Vec<OpId> = self
            .ops
            .iter()
            .filter(|o| o.deadline <= now)
            .map(|o| o.id)
            .collect();
        for op in late {
            let timeout = self.config.request_timeout;
            if let Some(o) = self.ops.iter_mut().find(|o| o.id == op) {
                for (rs, report) in o.parts.iter_mut() {
                    if report.is_none() {
                        let entry = self
                            .rss
                            .iter()
                            .find(|r| r.id == *rs)
                            .map(|r| (r.entry.clone(), r.target))
                            .unwrap_or_default();
                        *report = Some(SrsReport {
                            rs: *rs,
                            entry: entry.0,
                            target: entry.1,
                            status: None,
                            ok: false,
                            line: LOG_SRS_REQUEST_FAILED,
                            detail: format!("no answer within {} ms", timeout.as_millis()),
                        });
                    }
                }
            }
        }
        self.after(now);
    }

    /// When [`SrcCore::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.layer.poll_timeout();
        let mut take = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        take(self.start.as_ref().map(|s| s.deadline));
        for o in &self.ops {
            take(Some(o.deadline));
        }
        for r in &self.rss {
            match &r.phase {
                Phase::Inviting(a) if !a.provisional => take(a.switch_at),
                Phase::Closing { deadline, .. } => take(Some(*deadline)),
                Phase::Established => {
                    take(r.backoff_until);
                    take(r.timer.map(|t| t.at));
                }
                _ => {}
            }
        }
        t
    }

    /// Next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.layer.poll_transmit()
    }

    /// Next event for the driver.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    // -----------------------------------------------------------------------------------------
    // Internals: the loop after each input
    // -----------------------------------------------------------------------------------------

    fn after(&mut self, now: Instant) {
        self.drive(now);
        self.reconcile_all(now);
        self.drive(now);
        self.check_ops(now);
    }

    fn drive(&mut self, now: Instant) {
        // Bounded: each event is handled once; handling may queue more (e.g. an immediate
        // Timeout when the transaction cap is reached), which the loop picks up.
        while let Some(ev) = self.layer.poll_event() {
            match ev {
                TxEvent::Request { key, peer, request } => self.on_request(now, key, peer, request),
                TxEvent::Ack { request, .. } => self.on_ack(now, &request),
                TxEvent::Response { key, response } => self.on_response(now, key, response),
                TxEvent::Timeout { key } => self.on_tx_timeout(now, key),
                TxEvent::AckTimeout { key, .. } => {
                    let id = self
                        .rss
                        .iter()
                        .find(|r| r.srs_invite.as_ref().is_some_and(|(k, _)| *k == key))
                        .map(|r| r.id);
                    if let Some(id) = id {
                        if let Some(r) = self.rs_mut(id) {
                            r.srs_invite = None;
                        }
                        self.end_rs(
                            now,
                            id,
                            None,
                            "no ACK for our 2xx to the SRS's re-INVITE".into(),
                            true,
                        );
                    }
                }
                TxEvent::Cancelled { .. } | TxEvent::ServerTimeout { .. } => {}
            }
        }
    }

    fn gc(&mut self) {
        let referenced = |id: RsId, ops: &[PendingOp], start: &Option<StartOp>| {
            ops.iter().any(|o| o.parts.iter().any(|(r, _)| *r == id))
                || start.as_ref().is_some_and(|s| s.rss.contains(&id))
        };
        let (ops, start) = (&self.ops, &self.start);
        let gone: Vec<RsId> = self
            .rss
            .iter()
            .filter(|r| matches!(r.phase, Phase::Done) && !referenced(r.id, ops, start))
            .map(|r| r.id)
            .collect();
        if gone.is_empty() {
            return;
        }
        self.rss.retain(|r| !gone.contains(&r.id));
        self.owners.retain(|_, (rs, _)| !gone.contains(rs));
    }
}
