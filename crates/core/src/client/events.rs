//! Events for the driver.

use std::net::SocketAddr;

use siprec_sdp::Format;

use super::contract::{Outcome, RsId, SrsReport};
use super::server_uri::SrsUri;

/// Where and how one leg's RTP goes to one SRS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegMedia {
    /// The SRS's RTP address for this m-line.
    pub remote: SocketAddr,
    /// The codec the SRS answered (payload type from its answer).
    pub format: Format,
    /// SRTP: our key (offered in `a=crypto` and accepted): protect every packet with it.
    pub srtp: Option<siprec_rtp::srtp::SdesKey>,
}

/// The media plan of one recording session: per leg (caller, callee) where RTP goes, and
/// whether to send now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaPlan {
    /// Leg 1 (caller, label 1) and leg 2 (callee, label 2); `None` when the SRS declined the
    /// m-line or put it on hold.
    pub legs: [Option<LegMedia>; 2],
    /// `false` while paused: keep the RTP clock running but send nothing.
    pub sending: bool,
}

/// What the driver must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Resolve `uri` (RFC 3263) and call [`SrcCore::resolved`](super::SrcCore::resolved) with the
    /// ordered targets.
    Resolve {
        /// The recording session waiting for it.
        rs: RsId,
        /// The URI (the entry, or a redirect's Contact).
        uri: SrsUri,
    },
    /// Send (or stop sending) this RS's copy of the call's legs as described. Replaces any
    /// earlier plan of the RS.
    Media {
        /// The recording session.
        rs: RsId,
        /// The plan.
        plan: MediaPlan,
    },
    /// The RS is over: stop its RTP and forget it.
    MediaStop {
        /// The recording session.
        rs: RsId,
    },
    /// Something happened to one SRS outside an activity's answer (a late SRS joined, an SRS
    /// ended its session, a pending one failed).
    Srs(SrsReport),
    /// The answer to an activity.
    Outcome(Outcome),
    /// The recording ended without a stop: every SRS ended or lost its session.
    RecordingEnded {
        /// Why.
        reason: String,
    },
}
