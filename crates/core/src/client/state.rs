//! Internal state: the call, its recording sessions, the activities in flight.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use siprec_sdp::{Direction, Format};
use siprec_sip::dialog::Dialog;
use siprec_sip::rsip::{self, Method, Request};
use siprec_sip::transaction::{ClientKey, Peer, ServerKey};

use super::contract::{Activity, OpId, RsId, SrsReport};
use super::events::MediaPlan;
use super::server_uri::{SrsUri, Target};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CallState {
    Idle,
    Starting,
    Recording,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ModKind {
    /// Pause / resume: re-INVITE with the direction.
    Direction(Direction),
    /// Complete metadata after a snapshot request.
    Snapshot,
    /// RFC 4028 refresh.
    Refresh,
    /// The call's codec changed ([`SrcCore::set_codecs`](super::SrcCore::set_codecs)): a new
    /// offer with the same direction and the new codec list.
    Reoffer,
}

#[derive(Debug)]
pub(super) struct InFlight {
    pub(super) key: ClientKey,
    pub(super) kind: ModKind,
    pub(super) method: Method,
    pub(super) cseq: u32,
}

#[derive(Debug)]
pub(super) struct Attempt {
    pub(super) key: ClientKey,
    pub(super) request: Request,
    pub(super) target: Target,
    pub(super) provisional: bool,
    pub(super) switch_at: Option<Instant>,
    /// The direction offered in this INVITE.
    pub(super) dir: Direction,
}

#[derive(Debug)]
pub(super) enum Phase {
    Resolving,
    Inviting(Box<Attempt>),
    Established,
    /// BYE sent, or CANCEL sent for the pending INVITE; waiting for the end.
    Closing {
        /// The BYE, or the INVITE being cancelled.
        key: ClientKey,
        deadline: Instant,
    },
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SessionTimer {
    pub(super) interval: Duration,
    pub(super) we_refresh: bool,
    /// When to refresh (we refresh) or when the session expires (they refresh).
    pub(super) at: Instant,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct LegState {
    pub(super) remote: Option<SocketAddr>,
    pub(super) format: Option<Format>,
    /// The SRS answered `RTP/SAVP` to our SRTP offer: the tag of our key it accepted
    /// (`Some(None)`: `RTP/SAVP` but none of our keys, so nothing may be sent).
    pub(super) srtp: Option<Option<u32>>,
}

#[derive(Debug)]
pub(super) struct Rs {
    pub(super) id: RsId,
    pub(super) entry: String,
    pub(super) uri: SrsUri,
    pub(super) redirects: u8,
    pub(super) targets: Vec<Target>,
    pub(super) next: usize,
    pub(super) phase: Phase,
    pub(super) history: Vec<String>,
    pub(super) status: Option<u16>,
    pub(super) target: Option<Target>,
    pub(super) peer: Option<Peer>,
    pub(super) dialog: Option<Dialog>,
    /// Request-URI for in-dialog requests when the SRS's Contact is unusable (see
    /// `dialog_for`).
    pub(super) target_uri: Option<rsip::Uri>,
    pub(super) invite_key: Option<ClientKey>,
    pub(super) ack: Option<Request>,
    pub(super) sdp_id: u64,
    pub(super) sdp_version: u64,
    pub(super) have: Direction,
    pub(super) want: Direction,
    pub(super) legs: [LegState; 2],
    /// Our SRTP keys per leg (one per offered suite) when this RS offers SRTP.
    pub(super) srtp_keys: Option<[Vec<siprec_rtp::srtp::SdesKey>; 2]>,
    pub(super) in_flight: Option<InFlight>,
    pub(super) last_reinvite_ack: Option<(ClientKey, Request)>,
    pub(super) backoff_until: Option<Instant>,
    pub(super) need_snapshot: bool,
    /// A new offer is owed (the codecs changed).
    pub(super) need_reoffer: bool,
    pub(super) need_refresh: bool,
    pub(super) allow_update: bool,
    pub(super) timer: Option<SessionTimer>,
    /// Our 2xx to the SRS's re-INVITE awaits its ACK (and maybe an SDP answer in it).
    pub(super) srs_invite: Option<(ServerKey, bool)>,
    pub(super) last_plan: Option<MediaPlan>,
    /// Ops waiting for this RS: (op, what it waits for).
    pub(super) waiting: Vec<(OpId, Wait)>,
    /// The start op this RS belongs to, until the start is answered.
    pub(super) start_op: Option<OpId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wait {
    Direction(Direction),
    Close,
}

#[derive(Debug)]
pub(super) struct PendingOp {
    pub(super) id: OpId,
    pub(super) activity: Activity,
    pub(super) deadline: Instant,
    pub(super) parts: Vec<(RsId, Option<SrsReport>)>,
}

#[derive(Debug)]
pub(super) struct StartOp {
    pub(super) id: OpId,
    pub(super) deadline: Instant,
    pub(super) rss: Vec<RsId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    Invite,
    Modify,
    Bye,
}

/// The metadata ids of the call, stable across starts.
#[derive(Debug, Clone)]
pub(super) struct CallIds {
    pub(super) session_id: String,
    pub(super) caller_pid: String,
    pub(super) caller_sid: String,
    pub(super) callee_pid: String,
    pub(super) callee_sid: String,
}
