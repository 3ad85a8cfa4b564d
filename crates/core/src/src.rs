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
//! use siprec_core::src::{CallContext, Event, Reply, SrcConfig, SrcCore};
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
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::Rng;
use rs_metadata::{
    CallMetadata, CallParty, DataMode, Extension, ParticipantStreamAssoc, Recording, EXT_NS,
};
use siprec_sdp::{Direction, Format, OfferBuilder, OfferStream, SessionDescription};
use siprec_sip::dialog::Dialog;
use siprec_sip::message::{
    self, header_tokens, header_value, header_values, make_response, new_branch, new_call_id,
    new_tag, parse_params, split_list, tag_of, uri_of,
};

use siprec_sip::rsip::headers::UntypedHeader;
use siprec_sip::rsip::{self, Header, Method, Request, Response, SipMessage};
use siprec_sip::transaction::{
    ClientKey, Event as TxEvent, Peer, ServerKey, TimerConfig, TransactionLayer, Transmit,
    Transport,
};
use tracing::{debug, info, warn};

use crate::body::{self, BodyError};

// ---------------------------------------------------------------------------------------------
// The node's contract: replies and log lines
// ---------------------------------------------------------------------------------------------

/// Log line of a successful start (siprec-notes §1.1).
pub const LOG_STARTED: &str = "startCallRecording request for a call";
/// Log line per SRS that accepted its recording session (siprec-notes §1.1).
pub const LOG_ESTABLISHED: &str = "successfully established siprec connection";
/// Log line of a start while a recording is active (siprec-notes §1.1).
pub const LOG_DUPLICATE_START: &str = "discarding duplicate startCallRecording request for a call";
/// Log line of a start without a Call Recording Server value (siprec-notes §1.1).
pub const LOG_MISSING_SERVER: &str = "startCallRecording request is missing X-Srs-Url header";
/// Log line of a start where every SRS failed or the value is not a URI list (siprec-notes §1.1).
pub const LOG_START_FAILED: &str = "Error starting SipRec call recording";
/// Log line of a start that no SRS answered in time (siprec-notes §1.1).
pub const LOG_NO_RESPONSE: &str = "No response from SipRec server, return error to feature server";
/// Log line of a stop while not recording (siprec-notes §1.1).
pub const LOG_NOT_RECORDING: &str =
    "discarding stopCallRecording request because we are not recording";
/// Log line of a pause while not recording or already paused (siprec-notes §1.1).
pub const LOG_INVALID_PAUSE: &str = "discarding invalid pauseCallRecording request";
/// Log line of a resume while not paused (siprec-notes §1.1).
pub const LOG_INVALID_RESUME: &str = "discarding invalid resumeCallRecording request";
/// Log line of a stop that was carried out (ours; the contract table has no success line).
pub const LOG_STOPPED: &str = "stopCallRecording request for a call";
/// Log line of a pause that at least one SRS confirmed (ours).
pub const LOG_PAUSED: &str = "pauseCallRecording request for a call";
/// Log line of a resume that at least one SRS confirmed (ours).
pub const LOG_RESUMED: &str = "resumeCallRecording request for a call";
/// Log line of a pause that no SRS confirmed; media is paused all the same (ours).
pub const LOG_PAUSE_FAILED: &str = "Error pausing SipRec call recording";
/// Log line of a resume that no SRS confirmed (ours).
pub const LOG_RESUME_FAILED: &str = "Error resuming SipRec call recording";
/// Per SRS: its recording session could not be established (ours).
pub const LOG_SRS_FAILED: &str = "failed to establish siprec connection";
/// Per SRS: still trying when the start was answered (ours).
pub const LOG_SRS_PENDING: &str = "siprec connection pending";
/// Per SRS: the pending INVITE was cancelled or abandoned (ours).
pub const LOG_SRS_CANCELLED: &str = "siprec connection cancelled";
/// Per SRS: the recording session was ended with BYE (ours).
pub const LOG_SRS_STOPPED: &str = "siprec connection stopped";
/// Per SRS: the SRS ended the recording session itself, or the dialog was lost (ours).
pub const LOG_SRS_ENDED: &str = "siprec connection ended by SipRec server";
/// Per SRS: the pause re-INVITE was accepted (ours).
pub const LOG_SRS_PAUSED: &str = "siprec connection paused";
/// Per SRS: the resume re-INVITE was accepted (ours).
pub const LOG_SRS_RESUMED: &str = "siprec connection resumed";
/// Per SRS: a stop, pause or resume request failed or was not answered (ours).
pub const LOG_SRS_REQUEST_FAILED: &str = "siprec request failed";

/// The four activities of the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activity {
    /// Start recording (needs the Call Recording Server value).
    Start,
    /// Stop recording.
    Stop,
    /// Pause recording.
    Pause,
    /// Resume a paused recording.
    Resume,
}

impl Activity {
    /// `start`, `stop`, `pause`, `resume`.
    pub fn as_str(self) -> &'static str {
        match self {
            Activity::Start => "start",
            Activity::Stop => "stop",
            Activity::Pause => "pause",
            Activity::Resume => "resume",
        }
    }
}

impl fmt::Display for Activity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Activity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "start" => Ok(Activity::Start),
            "stop" => Ok(Activity::Stop),
            "pause" => Ok(Activity::Pause),
            "resume" => Ok(Activity::Resume),
            other => Err(format!(
                "unknown activity {other:?}: expected start, stop, pause or resume"
            )),
        }
    }
}

/// The reply to an activity: the node's wire contract (siprec-notes §1.1). Each value has its
/// reply code ([`Reply::code`]) and its exact log line ([`Reply::log_line`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reply {
    /// 200, [`LOG_STARTED`]: at least one SRS accepted within the start timeout.
    Started,
    /// 400, [`LOG_DUPLICATE_START`]: a recording is active or starting.
    DuplicateStart,
    /// 400, [`LOG_MISSING_SERVER`]: the Call Recording Server value is empty.
    MissingServer,
    /// 503, [`LOG_START_FAILED`]: every SRS failed, or the value is not a `sip:`/`sips:` URI
    /// list.
    StartFailed,
    /// 400, [`LOG_NO_RESPONSE`]: no SRS accepted within the start timeout; everything pending
    /// was cancelled.
    NoResponse,
    /// 200, [`LOG_STOPPED`]: recording stopped (per-SRS results in the reports).
    Stopped,
    /// 400, [`LOG_NOT_RECORDING`].
    NotRecording,
    /// 200, [`LOG_PAUSED`]: at least one SRS confirmed the pause.
    Paused,
    /// 503, [`LOG_PAUSE_FAILED`]: no SRS confirmed the pause (media is paused all the same).
    PauseFailed,
    /// 400, [`LOG_INVALID_PAUSE`]: not recording, or already paused.
    InvalidPause,
    /// 200, [`LOG_RESUMED`]: at least one SRS confirmed the resume.
    Resumed,
    /// 503, [`LOG_RESUME_FAILED`]: no SRS confirmed the resume.
    ResumeFailed,
    /// 400, [`LOG_INVALID_RESUME`]: not paused.
    InvalidResume,
}

impl Reply {
    /// The reply code towards the flow (200, 400 or 503).
    pub fn code(self) -> u16 {
        match self {
            Reply::Started | Reply::Stopped | Reply::Paused | Reply::Resumed => 200,
            Reply::StartFailed | Reply::PauseFailed | Reply::ResumeFailed => 503,
            Reply::DuplicateStart
            | Reply::MissingServer
            | Reply::NoResponse
            | Reply::NotRecording
            | Reply::InvalidPause
            | Reply::InvalidResume => 400,
        }
    }

    /// The exact log line.
    pub fn log_line(self) -> &'static str {
        match self {
            Reply::Started => LOG_STARTED,
            Reply::DuplicateStart => LOG_DUPLICATE_START,
            Reply::MissingServer => LOG_MISSING_SERVER,
            Reply::StartFailed => LOG_START_FAILED,
            Reply::NoResponse => LOG_NO_RESPONSE,
            Reply::Stopped => LOG_STOPPED,
            Reply::NotRecording => LOG_NOT_RECORDING,
            Reply::Paused => LOG_PAUSED,
            Reply::PauseFailed => LOG_PAUSE_FAILED,
            Reply::InvalidPause => LOG_INVALID_PAUSE,
            Reply::Resumed => LOG_RESUMED,
            Reply::ResumeFailed => LOG_RESUME_FAILED,
            Reply::InvalidResume => LOG_INVALID_RESUME,
        }
    }

    /// `true` for the 200 replies.
    pub fn is_success(self) -> bool {
        self.code() == 200
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code(), self.log_line())
    }
}

/// Identifies one activity request of a [`SrcCore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(pub u64);

/// Identifies one recording session (one SRS URI of one start) of a [`SrcCore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RsId(pub u64);

impl fmt::Display for RsId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rs-{}", self.0)
    }
}

/// What happened with one SRS during an activity (or on its own, in [`Event::Srs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrsReport {
    /// The recording session.
    pub rs: RsId,
    /// The entry of the Call Recording Server value, as written (trimmed).
    pub entry: String,
    /// The address last used for it, if any.
    pub target: Option<Target>,
    /// The SIP status of the decisive response, if one came.
    pub status: Option<u16>,
    /// `true` when the step succeeded for this SRS.
    pub ok: bool,
    /// The log line (`LOG_ESTABLISHED`, `LOG_SRS_FAILED`, …).
    pub line: &'static str,
    /// Why, in words (which target, which response).
    pub detail: String,
}

impl fmt::Display for SrsReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self
            .status
            .map_or_else(|| "---".to_string(), |s| s.to_string());
        write!(f, "{} [{}] {}", self.entry, status, self.line)?;
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail)?;
        }
        Ok(())
    }
}

/// The result of one activity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The request it answers.
    pub op: OpId,
    /// Which activity.
    pub activity: Activity,
    /// Reply code and log line.
    pub reply: Reply,
    /// Which entry, why (where the contract allows a reason).
    pub reason: Option<String>,
    /// Per SRS.
    pub srs: Vec<SrsReport>,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.activity, self.reply)?;
        if let Some(r) = &self.reason {
            write!(f, ": {r}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// What can go wrong in the SRC role (configuration and the Call Recording Server value; what
/// SRSs answer is reported in [`Outcome`]s, never as an error).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    // ----- the flow's input is wrong -----
    /// Input: the Call Recording Server value is empty (the "missing X-Srs-Url" case).
    #[error("the Call Recording Server value is empty; {ACCEPTED}")]
    MissingServer,
    /// Input: one entry of the Call Recording Server value is not an accepted SIP URI.
    #[error("invalid Call Recording Server entry {entry:?}: {reason}; {ACCEPTED}")]
    InvalidServer {
        /// The entry as written (trimmed, shortened when very long).
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
    // ----- our configuration is wrong -----
    /// Configuration: the call context cannot describe a call (empty AOR, bad extra header).
    #[error("invalid call context: {0}")]
    InvalidCallContext(String),
}

/// What the error messages say is accepted.
pub const ACCEPTED: &str = "expected sip:HOST[:PORT][;transport=udp|tcp|tls] or sips:HOST[:PORT] \
(HOST a name, an IPv4 address or an [IPv6] address), several separated by commas, \
e.g. sip:siprec.example.com, sip:siprec.example.com:5060, sip:3.208.57.175, \
sips:siprec.example.com, sip:srs1.example.com,sip:srs2.example.com";

// ---------------------------------------------------------------------------------------------
// The Call Recording Server value
// ---------------------------------------------------------------------------------------------

/// Longest Call Recording Server value accepted, in bytes.
pub const MAX_SERVER_VALUE: usize = 4096;
/// Most URIs in one Call Recording Server value.
pub const MAX_SERVERS: usize = 16;
/// Most targets used per URI (after resolution).
pub const MAX_TARGETS: usize = 16;

/// The host of an SRS URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name (lowercased, without a trailing dot).
    Name(String),
    /// An IPv4 or IPv6 literal.
    Ip(IpAddr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(IpAddr::V4(v4)) => write!(f, "{v4}"),
            Host::Ip(IpAddr::V6(v6)) => write!(f, "[{v6}]"),
        }
    }
}

/// One SRS URI of the Call Recording Server value (RFC 3261 §19.1.1, a subset: no password,
/// no URI headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrsUri {
    /// `sips:` (TLS).
    pub secure: bool,
    /// The user part, if any (`srs` in `sip:srs@host`).
    pub user: Option<String>,
    /// Host name or IP literal.
    pub host: Host,
    /// The explicit port, if any.
    pub port: Option<u16>,
    /// The `transport` parameter, if any (`sips:` with `transport=tcp` is TLS).
    pub transport: Option<Transport>,
    /// Other URI parameters, names lowercased, as written otherwise.
    pub params: Vec<(String, Option<String>)>,
}

impl SrsUri {
    /// Parses one entry (already trimmed). The error says what is wrong with it.
    pub fn parse(entry: &str) -> Result<SrsUri, String> {
        parse_uri(entry)
    }

    /// The transport the URI demands: TLS for `sips:`, else its `transport` parameter.
    pub fn required_transport(&self) -> Option<Transport> {
        if self.secure {
            Some(Transport::Tls)
        } else {
            self.transport
        }
    }

    /// 5061 for TLS, else 5060 (RFC 3261 §19.1.2).
    pub fn default_port(&self) -> u16 {
        if self.required_transport() == Some(Transport::Tls) {
            5061
        } else {
            5060
        }
    }

    /// The URI as rsip represents it, for a Request-URI. IPv6 hosts are kept as bracketed text
    /// (rsip cannot parse them, but prints a domain as given).
    pub fn to_rsip(&self) -> rsip::Uri {
        let host = match &self.host {
            Host::Ip(IpAddr::V4(v4)) => rsip::Host::IpAddr(IpAddr::V4(*v4)),
            other => rsip::Host::Domain(other.to_string().into()),
        };
        let mut params = Vec::new();
        if let Some(t) = self.transport {
            params.push(rsip::Param::Other(
                "transport".to_string().into(),
                Some(t.as_str().to_ascii_lowercase().into()),
            ));
        }
        for (n, v) in &self.params {
            params.push(rsip::Param::Other(
                n.clone().into(),
                v.clone().map(Into::into),
            ));
        }
        rsip::Uri {
            scheme: Some(if self.secure {
                rsip::Scheme::Sips
            } else {
                rsip::Scheme::Sip
            }),
            auth: self.user.clone().map(|u| rsip::Auth {
                user: u,
                password: None,
            }),
            host_with_port: rsip::HostWithPort {
                host,
                port: self.port.map(Into::into),
            },
            params,
            headers: Vec::new(),
        }
    }
}

impl fmt::Display for SrsUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "sips:" } else { "sip:" })?;
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        if let Some(t) = self.transport {
            write!(f, ";transport={}", t.as_str().to_ascii_lowercase())?;
        }
        for (n, v) in &self.params {
            match v {
                Some(v) => write!(f, ";{n}={v}")?,
                None => write!(f, ";{n}")?,
            }
        }
        Ok(())
    }
}

/// Parses the Call Recording Server value: comma-separated SIP URIs, each trimmed.
///
/// Accepted (siprec-notes §1.2 and the node page): `sip:host`, `sip:host:port`, `sip:IP`,
/// `sip:[IPv6]:port`, `sips:host`, with an optional user part and URI parameters
/// (`transport=udp|tcp|tls`, others kept). Refused, each with an [`Error::InvalidServer`]
/// naming the entry: `ws://`, `wss://`, `http://`, `https://` URLs, bare host names and IP
/// addresses, other schemes, empty entries, URI headers (`?…`), bad ports, bad hosts. A value
/// that is empty or only blanks is [`Error::MissingServer`].
pub fn parse_server_list(value: &str) -> Result<Vec<SrsUri>, Error> {
    if value.trim().is_empty() {
        return Err(Error::MissingServer);
    }
    if value.len() > MAX_SERVER_VALUE {
        return Err(Error::InvalidServer {
            entry: short(value),
            reason: format!("the value is longer than {MAX_SERVER_VALUE} bytes"),
        });
    }
    let entries: Vec<&str> = value.split(',').map(str::trim).collect();
    if entries.len() > MAX_SERVERS {
        return Err(Error::InvalidServer {
            entry: short(value),
            reason: format!("more than {MAX_SERVERS} URIs"),
        });
    }
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        if entry.is_empty() {
            return Err(Error::InvalidServer {
                entry: String::new(),
                reason: "empty entry (two commas in a row, or a comma at the start or end)".into(),
            });
        }
        let uri = parse_uri(entry).map_err(|reason| Error::InvalidServer {
            entry: short(entry),
            reason,
        })?;
        out.push(uri);
    }
    Ok(out)
}

fn short(s: &str) -> String {
    const MAX: usize = 200;
    let mut out: String = s
        .chars()
        .take(MAX)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().nth(MAX).is_some() {
        out.push('…');
    }
    out
}

fn is_unreserved_user(c: char) -> bool {
    // RFC 3261 §25.1: unreserved / escaped / user-unreserved.
    c.is_ascii_alphanumeric() || "-_.!~*'()%&=+$,;?/".contains(c)
}

fn is_param_char(c: char) -> bool {
    // RFC 3261 §25.1 paramchar: param-unreserved / unreserved / escaped.
    c.is_ascii_alphanumeric() || "-_.!~*'()%[]/:&+$".contains(c)
}

fn parse_uri(entry: &str) -> Result<SrsUri, String> {
    if entry.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains white space".into());
    }
    let lower = entry.to_ascii_lowercase();
    for (prefix, what) in [
        ("wss://", "a WebSocket URL (wss://)"),
        ("ws://", "a WebSocket URL (ws://)"),
        ("https://", "an HTTP URL (https://)"),
        ("http://", "an HTTP URL (http://)"),
    ] {
        if lower.starts_with(prefix) {
            return Err(format!("{what} is not supported: only SIP URIs are"));
        }
    }
    let (secure, rest) = if let Some(r) = strip_prefix_ci(entry, "sips:") {
        (true, r)
    } else if let Some(r) = strip_prefix_ci(entry, "sip:") {
        (false, r)
    } else {
        return Err(no_scheme_reason(entry));
    };
    if rest.starts_with("//") {
        return Err("a SIP URI has no \"//\" after the scheme".into());
    }
    if rest.contains('?') {
        return Err("URI headers (\"?…\") are not allowed".into());
    }
    // user@
    let (user, hostpart) = match rest.rfind('@') {
        Some(at) => {
            let user = rest.get(..at).unwrap_or_default();
            if user.is_empty() {
                return Err("empty user part before \"@\"".into());
            }
            if user.contains(':') {
                return Err("passwords in URIs are not allowed".into());
            }
            if !user.chars().all(is_unreserved_user) {
                return Err(format!("invalid character in user part {user:?}"));
            }
            (
                Some(user.to_string()),
                rest.get(at + 1..).unwrap_or_default(),
            )
        }
        None => (None, rest),
    };
    // host[:port] then ;params
    let (hostport, params_text) = if hostpart.starts_with('[') {
        let close = hostpart
            .find(']')
            .ok_or_else(|| "IPv6 address without closing \"]\"".to_string())?;
        let after = hostpart.get(close + 1..).unwrap_or_default();
        let cut = after.find(';').map_or(hostpart.len(), |i| close + 1 + i);
        (
            hostpart.get(..cut).unwrap_or_default(),
            hostpart.get(cut..).unwrap_or_default(),
        )
    } else {
        match hostpart.find(';') {
            Some(i) => (
                hostpart.get(..i).unwrap_or_default(),
                hostpart.get(i..).unwrap_or_default(),
            ),
            None => (hostpart, ""),
        }
    };
    let (host_text, port_text) = if let Some(r) = hostport.strip_prefix('[') {
        let close = r.find(']').unwrap_or(r.len());
        let inner = r.get(..close).unwrap_or_default();
        let after = r.get(close + 1..).unwrap_or_default();
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| format!("unexpected text {p:?} after the IPv6 address"))?,
            ),
        };
        let v6: Ipv6Addr = inner
            .parse()
            .map_err(|_| format!("{inner:?} is not an IPv6 address"))?;
        (Host::Ip(IpAddr::V6(v6)), port)
    } else {
        let (h, p) = match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        };
        if h.is_empty() {
            return Err("no host".into());
        }
        if h.parse::<Ipv6Addr>().is_ok() || hostport.matches(':').count() > 1 {
            return Err(
                "an IPv6 address must be written in brackets, e.g. sip:[2001:db8::1]:5060".into(),
            );
        }
        (parse_host(h)?, p)
    };
    let port = match port_text {
        None => None,
        Some(p) => {
            let n: u32 = if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) {
                p.parse().unwrap_or(0)
            } else {
                0
            };
            if !(1..=65535).contains(&n) {
                return Err(format!("invalid port {p:?} (1 to 65535)"));
            }
            Some(n as u16)
        }
    };
    let mut transport = None;
    let mut params = Vec::new();
    let mut rest = params_text;
    while let Some(r) = rest.strip_prefix(';') {
        let end = r.find(';').unwrap_or(r.len());
        let item = r.get(..end).unwrap_or_default();
        rest = r.get(end..).unwrap_or_default();
        if item.is_empty() {
            return Err("empty URI parameter".into());
        }
        let (name, value) = match item.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (item, None),
        };
        if name.is_empty() || !name.chars().all(is_param_char) {
            return Err(format!("invalid URI parameter {item:?}"));
        }
        if let Some(v) = value {
            if v.is_empty() || !v.chars().all(is_param_char) {
                return Err(format!("invalid URI parameter {item:?}"));
            }
        }
        let name_l = name.to_ascii_lowercase();
        if name_l == "transport" {
            let v = value.unwrap_or_default().to_ascii_lowercase();
            let t = match v.as_str() {
                "udp" => Transport::Udp,
                "tcp" => Transport::Tcp,
                "tls" => Transport::Tls,
                _ => {
                    return Err(format!(
                        "unsupported transport {:?} (accepted: udp, tcp, tls)",
                        value.unwrap_or_default()
                    ))
                }
            };
            if transport.is_some() {
                return Err("transport given twice".into());
            }
            if secure && t == Transport::Udp {
                return Err("sips: needs TLS; transport=udp is not possible".into());
            }
            transport = Some(t);
        } else {
            if params.len() >= 16 {
                return Err("too many URI parameters".into());
            }
            params.push((name_l, value.map(str::to_string)));
        }
    }
    Ok(SrsUri {
        secure,
        user,
        host: host_text,
        port,
        transport,
        params,
    })
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s.get(prefix.len()..))
        .flatten()
}

fn no_scheme_reason(entry: &str) -> String {
    if let Some(i) = entry.find("://") {
        let scheme = entry.get(..i).unwrap_or_default();
        return format!("unsupported URL scheme {scheme:?}: only sip: and sips: are accepted");
    }
    match entry.split_once(':') {
        Some((scheme, rest))
            if !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                && !rest.chars().next().is_some_and(|c| c.is_ascii_digit())
                && scheme.parse::<Ipv4Addr>().is_err() =>
        {
            format!("unsupported URI scheme {scheme:?}: only sip: and sips: are accepted")
        }
        _ => "a plain host name or IP address without the sip: or sips: scheme".into(),
    }
}

fn parse_host(h: &str) -> Result<Host, String> {
    let h = h.strip_suffix('.').unwrap_or(h);
    if h.is_empty() {
        return Err("no host".into());
    }
    let labels: Vec<&str> = h.split('.').collect();
    let numeric = labels
        .iter()
        .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()));
    if numeric {
        return h
            .parse::<Ipv4Addr>()
            .map(|a| Host::Ip(IpAddr::V4(a)))
            .map_err(|_| format!("{h:?} is not an IPv4 address"));
    }
    if h.len() > 253 {
        return Err("host name longer than 253 characters".into());
    }
    for l in &labels {
        let ok = !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-');
        if !ok {
            return Err(format!("{h:?} is not a valid host name"));
        }
    }
    Ok(Host::Name(h.to_ascii_lowercase()))
}

/// One address to try for an SRS URI: what the driver's resolver returns, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    /// Transport to use.
    pub transport: Transport,
    /// Address and port.
    pub addr: SocketAddr,
}

impl From<Target> for Peer {
    fn from(t: Target) -> Peer {
        Peer {
            transport: t.transport,
            addr: t.addr,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}",
            self.transport.as_str().to_ascii_lowercase(),
            self.addr
        )
    }
}

impl FromStr for Target {
    type Err = String;
    /// `udp:1.2.3.4:5060`, `tcp:[::1]:5060`, `tls:…`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (t, a) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?}: expected udp|tcp|tls:ADDR:PORT"))?;
        let transport = match t.to_ascii_lowercase().as_str() {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            "tls" => Transport::Tls,
            _ => return Err(format!("{s:?}: unknown transport {t:?}")),
        };
        let addr = a
            .parse()
            .map_err(|_| format!("{s:?}: {a:?} is not ADDR:PORT"))?;
        Ok(Target { transport, addr })
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration and call context
// ---------------------------------------------------------------------------------------------

/// Configuration of one [`SrcCore`].
#[derive(Debug, Clone)]
pub struct SrcConfig {
    /// SIP timers (T1 500 ms, T2 4 s, T4 5 s by default).
    pub timers: TimerConfig,
    /// How long a start waits for the first SRS to accept (default 2 s).
    pub start_timeout: Duration,
    /// How long an INVITE waits for any response from one target before the next target of
    /// the same URI is tried (only when there is a next one; default 1 s). The transaction's
    /// Timer B still applies to the last target.
    pub target_timeout: Duration,
    /// How long stop, pause and resume wait for each SRS's answer (default 8 s: long enough
    /// for a 491 back-off and a retry).
    pub request_timeout: Duration,
    /// Our SIP address per transport (Via, Contact); a target of a transport without one is
    /// skipped.
    pub udp: Option<SocketAddr>,
    /// Our TCP listening address (Contact); the connection's own port may differ.
    pub tcp: Option<SocketAddr>,
    /// Our TLS listening address.
    pub tls: Option<SocketAddr>,
    /// Address in the SDP offer's `c=` and `o=` lines.
    pub media_ip: IpAddr,
    /// Our RTP port per leg (caller, callee): the m-line ports of the offer.
    pub rtp_ports: [u16; 2],
    /// Codecs offered, in preference order (PCMU then PCMA by default; the driver sends only
    /// G.711).
    pub codecs: Vec<Format>,
    /// User part of our Contact and From (`src`).
    pub user: String,
    /// `User-Agent` header value.
    pub user_agent: String,
    /// Most 3xx redirects followed per URI (default 3).
    pub max_redirects: u8,
    /// RFC 3261 §18.1.1: a request larger than 1300 bytes (a SIPREC INVITE always is) MUST go
    /// over a congestion-controlled transport. When a target's transport is UDP only because
    /// the URI named none (no `;transport=udp`) and we have TCP, the INVITE goes over TCP to
    /// the same address first, and over UDP if TCP is refused (as §18.1.1 says). Default true.
    pub large_requests_over_tcp: bool,
    /// When to offer SRTP (`RTP/SAVP` with an SDES `a=crypto` key, RFC 4568): by default for
    /// `sips:` SRSs only.
    pub srtp: SrtpOffer,
    /// The SRTP crypto suites offered, in preference order: one `a=crypto` line per suite on
    /// each m-line, tags 1, 2, … (RFC 4568 §7.1.1: the SRS accepts one and answers with its
    /// tag; we then send with our key of that tag). Default `[AES_CM_128_HMAC_SHA1_80,
    /// AES_CM_128_HMAC_SHA1_32]` (RFC 4568 §6.2; `_32` saves 6 bytes per packet). Repeats are
    /// ignored; an empty list offers `_80` alone.
    pub srtp_suites: Vec<siprec_rtp::srtp::SrtpSuite>,
}

/// When an SRC offers SRTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SrtpOffer {
    /// Never: plain RTP.
    Never,
    /// For `sips:` SRS URIs (signalling over TLS keeps the key secret).
    #[default]
    Sips,
    /// Always (the key then travels in clear over UDP/TCP signalling: only for tests or
    /// networks that are otherwise protected).
    Always,
}

/// Our offered SRTP keys per leg (caller, callee): one fresh key per suite, tags 1, 2, … in
/// the order of `suites` (repeats dropped; `_80` when empty).
fn new_srtp_keys(suites: &[siprec_rtp::srtp::SrtpSuite]) -> [Vec<siprec_rtp::srtp::SdesKey>; 2] {
    let mut distinct: Vec<siprec_rtp::srtp::SrtpSuite> = Vec::new();
    for s in suites {
        if !distinct.contains(s) {
            distinct.push(*s);
        }
    }
    if distinct.is_empty() {
        distinct.push(siprec_rtp::srtp::SrtpSuite::AesCm128HmacSha1_80);
    }
    [(); 2].map(|_| {
        (1..)
            .zip(&distinct)
            .map(|(tag, suite)| siprec_rtp::srtp::SdesKey::new(tag, *suite, rand::random()))
            .collect()
    })
}

/// Which of our offered `keys` the SRS accepted on one m-line of its `RTP/SAVP` answer.
///
/// RFC 4568 §7.1.2: the answer carries one `a=crypto` with the tag and suite of the offered
/// line it accepted (and the SRS's own key, for media we never receive). An answer that names
/// a tag we did not offer, or our tag with another suite, accepts nothing. An answer with no
/// `a=crypto` at all (an SRS that forgets it) is taken as accepting our first key.
fn accepted_key<'a>(
    keys: &'a [siprec_rtp::srtp::SdesKey],
    answer: &[String],
) -> Option<&'a siprec_rtp::srtp::SdesKey> {
    if answer.is_empty() {
        return keys.first();
    }
    answer
        .iter()
        .filter_map(|v| siprec_rtp::srtp::SdesKey::parse(v).ok())
        .find_map(|a| keys.iter().find(|k| k.tag == a.tag && k.suite == a.suite))
}

/// RFC 3261 §18.1.1: above this size (path MTU unknown) a request must not go over UDP.
pub const UDP_SIZE_LIMIT: usize = 1300;

impl SrcConfig {
    /// Defaults with our UDP and TCP SIP ports on `ip` (`None` = no such transport) and the
    /// two RTP ports; the media address is `ip` too.
    pub fn new(ip: IpAddr, udp: Option<u16>, tcp: Option<u16>, rtp_ports: [u16; 2]) -> SrcConfig {
        SrcConfig {
            timers: TimerConfig::default(),
            start_timeout: Duration::from_secs(2),
            target_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(8),
            udp: udp.map(|p| SocketAddr::new(ip, p)),
            tcp: tcp.map(|p| SocketAddr::new(ip, p)),
            tls: None,
            media_ip: ip,
            rtp_ports,
            codecs: vec![Format::pcmu(), Format::pcma()],
            user: "src".into(),
            user_agent: concat!("siprec-rs-src/", env!("CARGO_PKG_VERSION")).into(),
            max_redirects: 3,
            large_requests_over_tcp: true,
            srtp: SrtpOffer::Sips,
            srtp_suites: vec![
                siprec_rtp::srtp::SrtpSuite::AesCm128HmacSha1_80,
                siprec_rtp::srtp::SrtpSuite::AesCm128HmacSha1_32,
            ],
        }
    }

    fn local_for(&self, t: Transport) -> Option<SocketAddr> {
        match t {
            Transport::Udp => self.udp,
            Transport::Tcp => self.tcp,
            Transport::Tls => self.tls,
        }
    }
}

/// One party of the recorded call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Party {
    /// Display name, if known.
    pub name: Option<String>,
    /// Address of record, e.g. `sip:+15551230000@example.com` (required).
    pub aor: String,
}

/// Direction of the recorded call, as seen by the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CallDirection {
    /// The caller called into the platform.
    #[default]
    Inbound,
    /// The platform placed the call.
    Outbound,
}

impl CallDirection {
    /// `inbound` / `outbound`.
    pub fn as_str(self) -> &'static str {
        match self {
            CallDirection::Inbound => "inbound",
            CallDirection::Outbound => "outbound",
        }
    }
}

/// Headers that must not be copied from the call onto the RS INVITE (we write them).
const RESERVED_HEADERS: [&str; 22] = [
    "via",
    "from",
    "to",
    "call-id",
    "cseq",
    "contact",
    "max-forwards",
    "route",
    "record-route",
    "require",
    "supported",
    "accept",
    "allow",
    "content-type",
    "content-length",
    "content-disposition",
    "content-encoding",
    "mime-version",
    "user-agent",
    "proxy-require",
    "session-expires",
    "min-se",
];

/// Most extra headers copied onto the RS INVITE.
pub const MAX_EXTRA_HEADERS: usize = 32;

/// The call being recorded: who talks (leg 1 = caller = `a=label:1` = left channel, leg 2 =
/// callee), its ids, and extra headers for the RS INVITE.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallContext {
    /// The call's SIP Call-ID (a `<sipSessionID>` of the metadata when no Session-ID).
    pub call_id: String,
    /// The call's RFC 7989 Session-ID, if known (preferred for `<sipSessionID>`).
    pub session_id: Option<String>,
    /// Inbound or outbound (metadata extension `<direction>`).
    pub direction: CallDirection,
    /// Leg 1.
    pub caller: Party,
    /// Leg 2.
    pub callee: Party,
    /// `X-Call-Sid`: metadata extension `<callsid>` when present.
    pub call_sid: Option<String>,
    /// `X-Account-Sid`: `<accountsid>`.
    pub account_sid: Option<String>,
    /// `X-Application-Sid`: `<applicationsid>`.
    pub application_sid: Option<String>,
    /// Headers copied onto each RS INVITE (name, value). Names must be tokens and not one of
    /// the headers the SRC writes itself (Via, From, To, Contact, Content-Type, …).
    pub extra_headers: Vec<(String, String)>,
}

impl CallContext {
    /// A small example call (Alice calls Bob), for docs and tests.
    pub fn example() -> CallContext {
        CallContext {
            call_id: "call-1@example.com".into(),
            session_id: None,
            direction: CallDirection::Inbound,
            caller: Party {
                name: Some("Alice".into()),
                aor: "sip:alice@example.com".into(),
            },
            callee: Party {
                name: Some("Bob".into()),
                aor: "sip:bob@example.com".into(),
            },
            call_sid: None,
            account_sid: None,
            application_sid: None,
            extra_headers: Vec::new(),
        }
    }

    fn validate(&self) -> Result<(), Error> {
        for (what, p) in [("caller", &self.caller), ("callee", &self.callee)] {
            if p.aor.trim().is_empty() {
                return Err(Error::InvalidCallContext(format!("{what} has no AOR")));
            }
            if p.aor.chars().any(char::is_control) {
                return Err(Error::InvalidCallContext(format!(
                    "{what} AOR has control characters"
                )));
            }
        }
        if self.extra_headers.len() > MAX_EXTRA_HEADERS {
            return Err(Error::InvalidCallContext(format!(
                "more than {MAX_EXTRA_HEADERS} extra headers"
            )));
        }
        for (n, v) in &self.extra_headers {
            let token = !n.is_empty()
                && n.len() <= 64
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b));
            if !token {
                return Err(Error::InvalidCallContext(format!(
                    "extra header name {:?} is not a token",
                    short(n)
                )));
            }
            let long = message::expand_compact_name(n).to_ascii_lowercase();
            if RESERVED_HEADERS.contains(&long.as_str()) {
                return Err(Error::InvalidCallContext(format!(
                    "extra header {n} is written by the SRC itself"
                )));
            }
            if v.len() > 1024 || v.chars().any(|c| c == '\r' || c == '\n') {
                return Err(Error::InvalidCallContext(format!(
                    "extra header {n} has a value that is too long or spans lines"
                )));
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

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
    /// Resolve `uri` (RFC 3263) and call [`SrcCore::resolved`] with the ordered targets.
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

// ---------------------------------------------------------------------------------------------
// Internal state
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
    Idle,
    Starting,
    Recording,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ModKind {
    /// Pause / resume: re-INVITE with the direction.
    Direction(Direction),
    /// Complete metadata after a snapshot request.
    Snapshot,
    /// RFC 4028 refresh.
    Refresh,
}

#[derive(Debug)]
struct InFlight {
    key: ClientKey,
    kind: ModKind,
    method: Method,
    cseq: u32,
}

#[derive(Debug)]
struct Attempt {
    key: ClientKey,
    request: Request,
    target: Target,
    provisional: bool,
    switch_at: Option<Instant>,
    /// The direction offered in this INVITE.
    dir: Direction,
}

#[derive(Debug)]
enum Phase {
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
struct SessionTimer {
    interval: Duration,
    we_refresh: bool,
    /// When to refresh (we refresh) or when the session expires (they refresh).
    at: Instant,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct LegState {
    remote: Option<SocketAddr>,
    format: Option<Format>,
    /// The SRS answered `RTP/SAVP` to our SRTP offer: the tag of our key it accepted
    /// (`Some(None)`: `RTP/SAVP` but none of our keys, so nothing may be sent).
    srtp: Option<Option<u32>>,
}

#[derive(Debug)]
struct Rs {
    id: RsId,
    entry: String,
    uri: SrsUri,
    redirects: u8,
    targets: Vec<Target>,
    next: usize,
    phase: Phase,
    history: Vec<String>,
    status: Option<u16>,
    target: Option<Target>,
    peer: Option<Peer>,
    dialog: Option<Dialog>,
    /// Request-URI for in-dialog requests when rsip cannot represent the SRS's Contact (IPv6).
    target_uri: Option<rsip::Uri>,
    invite_key: Option<ClientKey>,
    ack: Option<Request>,
    sdp_id: u64,
    sdp_version: u64,
    have: Direction,
    want: Direction,
    legs: [LegState; 2],
    /// Our SRTP keys per leg (one per offered suite) when this RS offers SRTP.
    srtp_keys: Option<[Vec<siprec_rtp::srtp::SdesKey>; 2]>,
    in_flight: Option<InFlight>,
    last_reinvite_ack: Option<(ClientKey, Request)>,
    backoff_until: Option<Instant>,
    need_snapshot: bool,
    need_refresh: bool,
    allow_update: bool,
    timer: Option<SessionTimer>,
    /// Our 2xx to the SRS's re-INVITE awaits its ACK (and maybe an SDP answer in it).
    srs_invite: Option<(ServerKey, bool)>,
    last_plan: Option<MediaPlan>,
    /// Ops waiting for this RS: (op, what it waits for).
    waiting: Vec<(OpId, Wait)>,
    /// The start op this RS belongs to, until the start is answered.
    start_op: Option<OpId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    Direction(Direction),
    Close,
}

#[derive(Debug)]
struct PendingOp {
    id: OpId,
    activity: Activity,
    deadline: Instant,
    parts: Vec<(RsId, Option<SrsReport>)>,
}

#[derive(Debug)]
struct StartOp {
    id: OpId,
    deadline: Instant,
    rss: Vec<RsId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Invite,
    Modify,
    Bye,
}

/// The metadata ids of the call, stable across starts.
#[derive(Debug, Clone)]
struct CallIds {
    session_id: String,
    caller_pid: String,
    caller_sid: String,
    callee_pid: String,
    callee_sid: String,
}

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

fn b64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let idx = ((n >> (18 - 6 * i)) & 63) as usize;
                out.push(char::from(T.get(idx).copied().unwrap_or(b'A')));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The RFC 7865 convention for ids: base64 of 16 random bytes.
fn new_md_id() -> String {
    let bytes: [u8; 16] = rand::random();
    b64(&bytes)
}

/// `xs:dateTime` in UTC with milliseconds, e.g. `2024-05-01T10:00:00.250Z`.
pub fn xs_datetime(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

fn bracket(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

fn other(name: &str, value: &str) -> Header {
    Header::Other(name.to_string(), value.to_string())
}

/// Methods we answer in a recording session.
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO";
/// What we accept in bodies from an SRS.
pub const ACCEPT: &str = "application/sdp, application/rs-metadata+xml, \
application/rs-metadata-request, multipart/mixed";

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

    // -----------------------------------------------------------------------------------------
    // Starting: resolution, targets, the INVITE
    // -----------------------------------------------------------------------------------------

    fn try_next_target(&mut self, now: Instant, id: RsId) {
        loop {
            let Some(r) = self.rs(id) else { return };
            let Some(target) = r.targets.get(r.next).copied() else {
                let status = r.status;
                let why = if r.history.is_empty() {
                    "no usable target".to_string()
                } else {
                    r.history.join("; ")
                };
                self.fail_rs(now, id, status, why);
                return;
            };
            let Some(local) = self.config.local_for(target.transport) else {
                if let Some(r) = self.rs_mut(id) {
                    r.next += 1;
                    r.history
                        .push(format!("{target}: no local {} transport", target.transport));
                }
                continue;
            };
            let dir = if self.paused {
                Direction::Inactive
            } else {
                Direction::SendOnly
            };
            let mut request = self.build_invite(id, target, local, dir);
            let mut target = target;
            if let Some(tcp) = self.size_upgrade(id, target, &request) {
                // Try TCP first; the UDP target stays next, for when TCP is refused.
                if let Some(r) = self.rs_mut(id) {
                    r.targets.insert(r.next, tcp);
                }
                target = tcp;
                let local = self.config.tcp.unwrap_or(local);
                request = self.build_invite(id, target, local, dir);
            }
            let more = self.rs(id).is_some_and(|r| r.next + 1 < r.targets.len());
            let peer: Peer = target.into();
            let key = self.layer.send_request(now, peer, request.clone());
            self.owners.insert(key.clone(), (id, Purpose::Invite));
            let switch_at = more.then(|| now + self.config.target_timeout);
            if let Some(r) = self.rs_mut(id) {
                r.next += 1;
                r.target = Some(target);
                r.peer = Some(peer);
                r.invite_key = Some(key.clone());
                r.phase = Phase::Inviting(Box::new(Attempt {
                    key,
                    request,
                    target,
                    provisional: false,
                    switch_at,
                    dir,
                }));
            }
            debug!(rs = %id, %target, "recording session INVITE sent");
            return;
        }
    }

    /// The TCP target to use instead of `target` for this INVITE (RFC 3261 §18.1.1), if any:
    /// UDP only by default (the URI named no transport), the request over
    /// [`UDP_SIZE_LIMIT`], a local TCP transport, and not already tried over TCP.
    fn size_upgrade(&self, id: RsId, target: Target, request: &rsip::Request) -> Option<Target> {
        let r = self.rs(id)?;
        if !self.config.large_requests_over_tcp
            || target.transport != Transport::Udp
            || r.uri.required_transport().is_some()
            || self.config.tcp.is_none()
        {
            return None;
        }
        let tcp = Target {
            transport: Transport::Tcp,
            ..target
        };
        if r.next > 0 && r.targets.get(r.next - 1) == Some(&tcp) {
            return None; // TCP was just tried and failed: this is the UDP retry.
        }
        let len = message::print_message(&SipMessage::Request(request.clone())).len();
        (len > UDP_SIZE_LIMIT).then_some(tcp)
    }

    /// The SDP offer of `r` at its current `o=` version (the initial INVITE's).
    fn offer_sdp(&self, r: &Rs, dir: Direction) -> String {
        self.offer_sdp_at(r, dir, r.sdp_version)
    }

    /// The SDP offer of `r` with `o=` version `version`: one labelled m-line per leg with
    /// our codecs and, when this RS offers SRTP, our `a=crypto` keys.
    fn offer_sdp_at(&self, r: &Rs, dir: Direction, version: u64) -> String {
        let mut b = OfferBuilder::new(self.config.media_ip, r.sdp_id, version);
        b.username = "src".into();
        b.build(&self.streams(dir, r.srtp_keys.as_ref()))
    }

    fn metadata_body(xml: &str) -> (String, Vec<u8>) {
        (
            "application/rs-metadata+xml".into(),
            xml.as_bytes().to_vec(),
        )
    }

    fn multipart(sdp: &str, metadata: &str) -> (String, Vec<u8>) {
        crate::body::recording_session_body(sdp, metadata)
    }

    fn contact_for(&self, local: SocketAddr, transport: Transport) -> String {
        let host = bracket(local.ip());
        let user = &self.config.user;
        match transport {
            Transport::Udp => format!("sip:{user}@{host}:{}", local.port()),
            Transport::Tcp => format!("sip:{user}@{host}:{};transport=tcp", local.port()),
            Transport::Tls => format!("sips:{user}@{host}:{}", local.port()),
        }
    }

    fn build_invite(
        &mut self,
        id: RsId,
        target: Target,
        local: SocketAddr,
        dir: Direction,
    ) -> Request {
        let Some(r) = self.rs(id) else {
            return Request {
                method: Method::Invite,
                uri: rsip::Uri::default(),
                version: rsip::Version::V2,
                headers: Default::default(),
                body: Vec::new(),
            };
        };
        let sdp = self.offer_sdp(r, dir);
        let md = self
            .metadata
            .as_ref()
            .map(Recording::to_xml)
            .unwrap_or_default();
        let (ctype, body) = Self::multipart(&sdp, &md);
        let uri = r.uri.to_rsip();
        let to = format!("<{}>", r.uri);
        let host = bracket(local.ip());
        let contact = self.contact_for(local, target.transport);
        let scheme = if target.transport == Transport::Tls {
            "sips"
        } else {
            "sip"
        };
        let from = format!("<{scheme}:{}@{host}>;tag={}", self.config.user, new_tag());
        let mut headers: Vec<Header> = vec![
            Header::Via(rsip::headers::Via::new(format!(
                "SIP/2.0/{} {host}:{};branch={};rport",
                target.transport,
                local.port(),
                new_branch()
            ))),
            Header::MaxForwards(70u32.into()),
            Header::From(rsip::headers::From::new(from)),
            Header::To(rsip::headers::To::new(to)),
            Header::CallId(rsip::headers::CallId::new(new_call_id(Some(&host)))),
            Header::CSeq(rsip::headers::CSeq::new("1 INVITE")),
            Header::Contact(rsip::headers::Contact::new(format!("<{contact}>;+sip.src"))),
            // RFC 7866 §6.1.1: the SRC MUST include the siprec option tag in Require.
            other("Require", "siprec"),
            other("Supported", "timer"),
            other("Accept", ACCEPT),
            other("Allow", ALLOW),
            other("User-Agent", &self.config.user_agent),
        ];
        for (n, v) in &self.call.extra_headers {
            headers.push(other(n, v));
        }
        headers.push(other("MIME-Version", "1.0"));
        headers.push(Header::ContentType(rsip::headers::ContentType::new(ctype)));
        headers.push(Header::ContentLength((body.len() as u32).into()));
        Request {
            method: Method::Invite,
            uri,
            version: rsip::Version::V2,
            headers: headers.into(),
            body,
        }
    }

    fn build_metadata(&self, now: Instant) -> Result<Recording, rs_metadata::Error> {
        let c = &self.call;
        let sip_ids = match c.session_id.as_deref().map(str::trim) {
            Some(s) if !s.is_empty() => vec![s.to_string()],
            _ if !c.call_id.trim().is_empty() => vec![c.call_id.trim().to_string()],
            _ => Vec::new(),
        };
        let md = CallMetadata {
            session_id: self.ids.session_id.clone(),
            sip_session_ids: sip_ids,
            start_time: xs_datetime(self.wall(now)),
            caller: CallParty {
                participant_id: self.ids.caller_pid.clone(),
                stream_id: self.ids.caller_sid.clone(),
                name: c.caller.name.clone(),
                aor: c.caller.aor.clone(),
            },
            callee: CallParty {
                participant_id: self.ids.callee_pid.clone(),
                stream_id: self.ids.callee_sid.clone(),
                name: c.callee.name.clone(),
                aor: c.callee.aor.clone(),
            },
            recording_id: self.recording_id.clone(),
            call_sid: c.call_sid.clone(),
            account_sid: c.account_sid.clone(),
            application_sid: c.application_sid.clone(),
        };
        let mut rec = md.build()?;
        rec.extensions.push(Extension::text_element(
            EXT_NS,
            "direction",
            c.direction.as_str(),
        ));
        Ok(rec)
    }

    /// RFC 7865 §6 partial document for pause/resume: the two participant-stream
    /// associations end (pause) or start again (resume) at `now`.
    fn partial_metadata(&self, now: Instant, pause: bool) -> String {
        let at = Some(xs_datetime(self.wall(now)));
        let assoc = |pid: &str| ParticipantStreamAssoc {
            participant_id: pid.to_string(),
            send: Vec::new(),
            recv: Vec::new(),
            associate_time: if pause { None } else { at.clone() },
            disassociate_time: if pause { at.clone() } else { None },
        };
        Recording {
            data_mode: DataMode::Partial,
            participant_stream_assocs: vec![
                assoc(&self.ids.caller_pid),
                assoc(&self.ids.callee_pid),
            ],
            ..Recording::default()
        }
        .to_xml()
    }

    fn reports_of(&self, ids: &[RsId]) -> Vec<SrsReport> {
        ids.iter()
            .filter_map(|id| self.rs(*id))
            .map(|r| self.report_now(r))
            .collect()
    }

    /// The state of an RS as a report.
    fn report_now(&self, r: &Rs) -> SrsReport {
        let (ok, line, detail) = match &r.phase {
            Phase::Established => (true, LOG_ESTABLISHED, String::new()),
            Phase::Resolving => (false, LOG_SRS_PENDING, "resolving".to_string()),
            Phase::Inviting(a) => (
                false,
                LOG_SRS_PENDING,
                format!(
                    "INVITE to {} {}",
                    a.target,
                    if a.provisional {
                        "in progress"
                    } else {
                        "not answered yet"
                    }
                ),
            ),
            Phase::Closing { .. } => (false, LOG_SRS_CANCELLED, "closing".to_string()),
            Phase::Done => (false, LOG_SRS_FAILED, r.history.join("; ")),
        };
        SrsReport {
            rs: r.id,
            entry: r.entry.clone(),
            target: r.target,
            status: r.status,
            ok,
            line,
            detail,
        }
    }

    /// The RS could not be established.
    fn fail_rs(&mut self, now: Instant, id: RsId, status: Option<u16>, why: String) {
        let Some(r) = self.rs_mut(id) else { return };
        if matches!(r.phase, Phase::Done) {
            return;
        }
        r.phase = Phase::Done;
        r.status = status.or(r.status);
        if !why.is_empty() && !r.history.contains(&why) {
            r.history.push(why.clone());
        }
        let in_start = r.start_op.is_some();
        let report = SrsReport {
            rs: id,
            entry: r.entry.clone(),
            target: r.target,
            status: r.status,
            ok: false,
            line: LOG_SRS_FAILED,
            detail: why,
        };
        warn!(rs = %id, entry = %report.entry, detail = %report.detail, "{LOG_SRS_FAILED}");
        self.resolve_waiters(id, |_| Some(report.clone()));
        if in_start {
            self.check_start(now);
        } else if self.state == CallState::Recording {
            self.events.push_back(Event::Srs(report));
        }
    }

    fn check_start(&mut self, _now: Instant) {
        let Some(s) = &self.start else { return };
        let all_failed = s
            .rss
            .iter()
            .all(|id| self.rs(*id).is_none_or(|r| matches!(r.phase, Phase::Done)));
        if !all_failed {
            return;
        }
        let Some(s) = self.start.take() else { return };
        let reports = self.reports_of(&s.rss);
        let reason = reports
            .iter()
            .map(|r| format!("{}: {}", r.entry, r.detail))
            .collect::<Vec<_>>()
            .join("; ");
        for id in &s.rss {
            if let Some(r) = self.rs_mut(*id) {
                r.start_op = None;
            }
        }
        self.state = CallState::Idle;
        self.outcome(
            s.id,
            Activity::Start,
            Reply::StartFailed,
            Some(format!("every SRS failed: {reason}")),
            reports,
        );
    }

    fn start_timed_out(&mut self, now: Instant) {
        let Some(s) = self.start.take() else { return };
        let timeout = self.config.start_timeout;
        let mut reports = Vec::new();
        for id in &s.rss {
            let Some(r) = self.rs(*id) else { continue };
            let mut rep = self.report_now(r);
            if !matches!(r.phase, Phase::Done) {
                rep.line = LOG_SRS_CANCELLED;
                rep.detail = format!(
                    "no answer within {} ms; {}",
                    timeout.as_millis(),
                    rep.detail
                );
            }
            reports.push(rep);
        }
        for id in &s.rss {
            if let Some(r) = self.rs_mut(*id) {
                r.start_op = None;
            }
            self.abandon(now, *id);
        }
        self.state = CallState::Idle;
        let pending: Vec<String> = reports
            .iter()
            .filter(|r| r.line == LOG_SRS_CANCELLED)
            .map(|r| r.entry.clone())
            .collect();
        self.outcome(
            s.id,
            Activity::Start,
            Reply::NoResponse,
            Some(format!(
                "no SRS accepted within {} ms (no answer from {})",
                timeout.as_millis(),
                pending.join(", ")
            )),
            reports,
        );
    }

    /// Gives up on an RS that is not established: a pending INVITE is cancelled and any late
    /// 2xx gets ACK + BYE.
    fn abandon(&mut self, now: Instant, id: RsId) {
        let Some(r) = self.rs_mut(id) else { return };
        let phase = std::mem::replace(&mut r.phase, Phase::Done);
        if let Phase::Inviting(a) = phase {
            r.history.push(format!("{}: cancelled", a.target));
            self.owners.remove(&a.key);
            self.orphan(now, a.key, a.target.into(), a.request);
        } else if let Some(r) = self.rs_mut(id) {
            r.phase = phase;
            if matches!(r.phase, Phase::Resolving) {
                r.phase = Phase::Done;
                r.history.push("cancelled while resolving".into());
            }
        }
    }

    fn orphan(&mut self, now: Instant, key: ClientKey, peer: Peer, request: Request) {
        self.owners.remove(&key);
        let _ = self.layer.cancel(now, &key);
        if self.orphans.len() >= 256 {
            // Bound: forget the oldest-looking entry (any); its late 2xx would go unanswered.
            if let Some(k) = self.orphans.keys().next().cloned() {
                self.orphans.remove(&k);
            }
        }
        self.orphans.insert(key, (peer, request));
    }

    // -----------------------------------------------------------------------------------------
    // Responses
    // -----------------------------------------------------------------------------------------

    fn on_response(&mut self, now: Instant, key: ClientKey, resp: Response) {
        let code = resp.status_code.code();
        let Some((id, purpose)) = self.owners.get(&key).copied() else {
            let ours = self
                .rss
                .iter()
                .any(|r| r.invite_key.as_ref() == Some(&key) && r.ack.is_some());
            if key.0.method == Method::Invite && (200..300).contains(&code) && ours {
                self.resend_ack(now, &key);
            } else if key.0.method == Method::Invite && (200..300).contains(&code) {
                if let Some((peer, req)) = self.orphans.get(&key).cloned() {
                    // A late 2xx for an INVITE we gave up on: ACK it, then BYE.
                    info!(code, "late answer to an abandoned INVITE: ACK and BYE");
                    self.ack_and_bye(now, peer, &req, &resp);
                    self.orphans.remove(&key);
                } else {
                    self.resend_ack(now, &key);
                }
            } else if code >= 200 {
                self.orphans.remove(&key);
            }
            return;
        };
        match purpose {
            Purpose::Invite => self.on_invite_response(now, id, key, resp),
            Purpose::Modify => self.on_modify_response(now, id, key, resp),
            Purpose::Bye => {
                if code >= 200 {
                    self.owners.remove(&key);
                    let detail = format!("BYE answered {code} {}", reason_of(&resp));
                    self.finish_close(now, id, Some(code), detail);
                }
            }
        }
    }

    fn resend_ack(&mut self, now: Instant, key: &ClientKey) {
        let ack = self.rss.iter().find_map(|r| {
            if r.invite_key.as_ref() == Some(key) {
                r.ack.clone().zip(r.peer)
            } else {
                r.last_reinvite_ack
                    .as_ref()
                    .filter(|(k, _)| k == key)
                    .map(|(_, a)| a.clone())
                    .zip(r.peer)
            }
        });
        if let Some((ack, peer)) = ack {
            self.layer.send_request(now, peer, ack);
        }
    }

    fn on_invite_response(&mut self, now: Instant, id: RsId, key: ClientKey, resp: Response) {
        let code = resp.status_code.code();
        let Some(r) = self.rs_mut(id) else { return };
        let current = matches!(&r.phase, Phase::Inviting(a) if a.key == key);
        if code < 200 {
            if let Phase::Inviting(a) = &mut r.phase {
                if a.key == key {
                    a.provisional = true;
                    a.switch_at = None;
                }
            }
            return;
        }
        if (200..300).contains(&code) {
            if current {
                self.establish(now, id, resp);
            } else if matches!(r.phase, Phase::Established | Phase::Closing { .. })
                && r.invite_key.as_ref() == Some(&key)
                && r.ack.is_some()
            {
                // A retransmitted 2xx: the ACK again (RFC 3261 §13.2.2.4).
                self.resend_ack(now, &key);
            } else if let Phase::Closing { key: k, .. } = &r.phase {
                if *k == key {
                    // The CANCEL lost the race: ACK and BYE, the close continues with the BYE.
                    let peer = r.peer;
                    let Some(req) = self.invite_request(id) else {
                        return;
                    };
                    self.owners.remove(&key);
                    self.orphans.remove(&key);
                    if let Some(peer) = peer {
                        if let Some(bye_key) = self.ack_and_bye(now, peer, &req, &resp) {
                            self.owners.insert(bye_key.clone(), (id, Purpose::Bye));
                            let deadline = now + self.config.request_timeout;
                            if let Some(r) = self.rs_mut(id) {
                                r.phase = Phase::Closing {
                                    key: bye_key,
                                    deadline,
                                };
                            }
                        }
                    }
                }
            }
            return;
        }
        // A final non-2xx.
        if let Phase::Closing { key: k, .. } = &r.phase {
            if *k == key {
                self.owners.remove(&key);
                self.orphans.remove(&key);
                let detail = format!("INVITE cancelled ({code} {})", reason_of(&resp));
                self.finish_close(now, id, Some(code), detail);
            }
            return;
        }
        if !current {
            return;
        }
        self.owners.remove(&key);
        let Some(r) = self.rs_mut(id) else { return };
        r.status = Some(code);
        let target = r.target.map(|t| t.to_string()).unwrap_or_default();
        let mut what = format!("{target}: {code} {}", reason_of(&resp));
        if code == 420 {
            let u = header_tokens(&resp.headers, "Unsupported").join(", ");
            what.push_str(&format!(
                " (Unsupported: {u}; the server does not support SIPREC)"
            ));
        }
        r.history.push(what.clone());
        match code {
            // RFC 3263 §4.3: 503 → the next target.
            503 => self.try_next_target(now, id),
            300..=399 => self.redirect(now, id, &resp),
            _ => self.fail_rs(now, id, Some(code), what),
        }
    }

    fn invite_request(&self, id: RsId) -> Option<Request> {
        // The INVITE of the current attempt is kept in the Attempt; once closing, rebuild
        // nothing: we keep it in the orphan map instead.
        let r = self.rs(id)?;
        let key = r.invite_key.as_ref()?;
        self.orphans.get(key).map(|(_, req)| req.clone())
    }

    fn redirect(&mut self, now: Instant, id: RsId, resp: &Response) {
        let max = self.config.max_redirects;
        let Some(r) = self.rs_mut(id) else { return };
        if r.redirects >= max {
            let why = format!("more than {max} redirects");
            self.fail_rs(now, id, r_status(resp), why);
            return;
        }
        // RFC 3261 §8.1.3.4: try the Contacts (highest q first; we take them in order).
        let mut next = None;
        for v in header_values(&resp.headers, "Contact") {
            for c in split_list(&v) {
                let uri = uri_of(c);
                if let Ok(u) = SrsUri::parse(uri) {
                    next = Some(u);
                    break;
                }
            }
            if next.is_some() {
                break;
            }
        }
        let Some(uri) = next else {
            let why = "redirect without a sip:/sips: Contact".to_string();
            self.fail_rs(now, id, r_status(resp), why);
            return;
        };
        let Some(r) = self.rs_mut(id) else { return };
        r.redirects += 1;
        r.history.push(format!("redirected to {uri}"));
        r.uri = uri.clone();
        r.targets.clear();
        r.next = 0;
        r.phase = Phase::Resolving;
        self.events.push_back(Event::Resolve { rs: id, uri });
    }

    /// ACKs a 2xx to `invite` and sends BYE; returns the BYE's key.
    fn ack_and_bye(
        &mut self,
        now: Instant,
        peer: Peer,
        invite: &Request,
        resp: &Response,
    ) -> Option<ClientKey> {
        let cseq = message::cseq(&invite.headers).map_or(1, |(n, _)| n);
        let (mut dialog, uri) = match self.dialog_for(invite, resp) {
            Some(x) => x,
            None => {
                debug!("cannot build a dialog from a late 2xx; not answered");
                return None;
            }
        };
        self.set_dialog_via(&mut dialog, peer.transport);
        let mut ack = dialog.make_ack(cseq);
        if let Some(u) = &uri {
            ack.uri = u.clone();
        }
        self.layer.send_request(now, peer, ack);
        let mut bye = dialog.new_request(Method::Bye, None);
        if let Some(u) = uri {
            bye.uri = u;
        }
        Some(self.layer.send_request(now, peer, bye))
    }

    fn set_dialog_via(&self, dialog: &mut Dialog, transport: Transport) {
        if let Some(local) = self.config.local_for(transport) {
            dialog.set_via(local.ip().to_string(), local.port(), transport);
        }
    }

    /// A UAC dialog from our INVITE and its 2xx. rsip cannot represent an IPv6 Contact: then
    /// the dialog is built with a stand-in and the real Request-URI is returned beside it.
    fn dialog_for(&self, invite: &Request, resp: &Response) -> Option<(Dialog, Option<rsip::Uri>)> {
        match Dialog::new_uac(invite, resp) {
            Ok(d) => Some((d, None)),
            Err(e) => {
                let contact = header_value(&resp.headers, "Contact");
                let real = contact
                    .as_deref()
                    .and_then(|c| SrsUri::parse(uri_of(c)).ok())
                    .map(|u| u.to_rsip())
                    .unwrap_or_else(|| invite.uri.clone());
                let mut patched = resp.clone();
                patched.headers.retain(|h| !matches!(h, Header::Contact(_)));
                patched
                    .headers
                    .push(Header::Contact(rsip::headers::Contact::new(
                        "<sip:stand-in.invalid>",
                    )));
                match Dialog::new_uac(invite, &patched) {
                    Ok(d) => Some((d, Some(real))),
                    Err(e2) => {
                        debug!(%e, %e2, "no dialog from 2xx");
                        None
                    }
                }
            }
        }
    }

    fn establish(&mut self, now: Instant, id: RsId, resp: Response) {
        let Some(r) = self.rs_mut(id) else { return };
        if !matches!(r.phase, Phase::Inviting(_)) {
            return;
        }
        let Phase::Inviting(a) = std::mem::replace(&mut r.phase, Phase::Established) else {
            return;
        };
        let peer: Peer = a.target.into();
        let cseq = message::cseq(&a.request.headers).map_or(1, |(n, _)| n);
        let Some((mut dialog, uri)) = self.dialog_for(&a.request, &resp) else {
            self.fail_rs(
                now,
                id,
                Some(200),
                "2xx without a usable dialog (no To tag)".into(),
            );
            return;
        };
        self.set_dialog_via(&mut dialog, peer.transport);
        let mut ack = dialog.make_ack(cseq);
        if let Some(u) = &uri {
            ack.uri = u.clone();
        }
        self.layer.send_request(now, peer, ack.clone());
        // The SDP answer.
        let answer = sdp_of(&resp);
        let offered = a.dir;
        let legs = match answer.as_ref() {
            Some(Ok(sdp)) => self.legs_from_answer(id, sdp),
            _ => Default::default(),
        };
        let usable =
            legs.iter().any(|l: &LegState| l.remote.is_some()) || offered == Direction::Inactive;
        if !usable {
            let why = match answer {
                None => "2xx without an SDP answer".to_string(),
                Some(Err(e)) => format!("unusable SDP answer: {e}"),
                Some(Ok(_)) => "the SRS declined every stream (or no common codec)".to_string(),
            };
            let mut bye = dialog.new_request(Method::Bye, None);
            if let Some(u) = &uri {
                bye.uri = u.clone();
            }
            self.layer.send_request(now, peer, bye);
            if let Some(r) = self.rs_mut(id) {
                r.phase = Phase::Inviting(a);
            }
            let target = peer.addr;
            self.fail_rs(now, id, Some(200), format!("{target}: {why}"));
            return;
        }
        let allow_update = header_tokens(&resp.headers, "Allow")
            .iter()
            .any(|m| m == "update");
        let timer = session_timer(now, &resp.headers, true);
        let Some(r) = self.rs_mut(id) else { return };
        r.status = Some(resp.status_code.code());
        r.dialog = Some(dialog);
        r.target_uri = uri;
        r.ack = Some(ack);
        r.legs = legs;
        r.have = offered;
        r.allow_update = allow_update;
        r.timer = timer;
        r.peer = Some(peer);
        let was_start = r.start_op.take();
        let report = SrsReport {
            rs: id,
            entry: r.entry.clone(),
            target: r.target,
            status: r.status,
            ok: true,
            line: LOG_ESTABLISHED,
            detail: String::new(),
        };
        info!(rs = %id, entry = %report.entry, target = %a.target, "{LOG_ESTABLISHED}");
        let answers_start =
            was_start.is_some_and(|op| self.start.as_ref().is_some_and(|s| s.id == op));
        if !answers_start {
            // A late joiner: news of its own. (The one answering the start is in its outcome.)
            self.events.push_back(Event::Srs(report));
        }
        self.emit_media(id);
        if let Some(op) = was_start {
            if self.start.as_ref().is_some_and(|s| s.id == op) {
                if let Some(s) = self.start.take() {
                    for other in &s.rss {
                        if let Some(o) = self.rs_mut(*other) {
                            o.start_op = None;
                        }
                    }
                    self.state = CallState::Recording;
                    let reports = self.reports_of(&s.rss);
                    self.outcome(s.id, Activity::Start, Reply::Started, None, reports);
                }
            }
        }
        if self.state != CallState::Recording {
            // Answered after the recording was stopped: end it at once.
            self.end_rs(
                now,
                id,
                None,
                "the recording is no longer active".into(),
                true,
            );
        }
    }

    fn legs_from_answer(&self, id: RsId, sdp: &SessionDescription) -> [LegState; 2] {
        let keys = self.rs(id).and_then(|r| r.srtp_keys.as_ref());
        let mut legs: [LegState; 2] = Default::default();
        for (i, leg) in legs.iter_mut().enumerate() {
            let Some(m) = sdp.media.get(i) else { continue };
            if m.port == 0 || !m.media.eq_ignore_ascii_case("audio") {
                continue;
            }
            let Some(format) = m
                .formats
                .iter()
                .find(|f| {
                    self.config.codecs.iter().any(|c| {
                        c.encoding.eq_ignore_ascii_case(&f.encoding) && c.clock_rate == f.clock_rate
                    })
                })
                .cloned()
            else {
                continue;
            };
            leg.format = Some(format);
            if m.is_srtp() {
                let tag = keys
                    .and_then(|k| accepted_key(&k[i], &m.crypto))
                    .map(|k| k.tag);
                if tag.is_none() {
                    warn!(
                        leg = i,
                        "the SRS answered RTP/SAVP without accepting any of our a=crypto keys; \
                         nothing is sent on this stream"
                    );
                }
                leg.srtp = Some(tag);
            }
            // An answer of sendonly/inactive means the SRS takes no media on this line.
            if matches!(m.direction, Direction::RecvOnly | Direction::SendRecv) {
                leg.remote = m.remote_rtp_addr();
            }
        }
        legs
    }

    fn emit_media(&mut self, id: RsId) {
        let paused = self.paused;
        let Some(r) = self.rs_mut(id) else { return };
        if !matches!(r.phase, Phase::Established) {
            return;
        }
        let legs = [0, 1].map(|i| {
            let l = &r.legs[i];
            let offered = r.srtp_keys.as_ref().map(|k| &k[i]);
            let key = match (offered, l.srtp) {
                (Some(keys), Some(Some(tag))) => keys.iter().find(|k| k.tag == tag).cloned(),
                _ => None,
            };
            match (l.remote, &l.format) {
                // We offered SRTP: never send in clear to an SRS that answered RTP/AVP, nor
                // with a key it did not accept.
                (Some(_), Some(_)) if offered.is_some() && key.is_none() => None,
                (Some(remote), Some(format)) => Some(LegMedia {
                    remote,
                    format: format.clone(),
                    srtp: key,
                }),
                _ => None,
            }
        });
        let plan = MediaPlan {
            sending: !paused && r.have == Direction::SendOnly && legs.iter().any(Option::is_some),
            legs,
        };
        if r.last_plan.as_ref() != Some(&plan) {
            r.last_plan = Some(plan.clone());
            self.events.push_back(Event::Media { rs: id, plan });
        }
    }

    // -----------------------------------------------------------------------------------------
    // Modifications (pause/resume/snapshot/refresh)
    // -----------------------------------------------------------------------------------------

    fn reconcile_all(&mut self, now: Instant) {
        let ids: Vec<RsId> = self.rss.iter().map(|r| r.id).collect();
        for id in ids {
            self.reconcile(now, id);
        }
    }

    fn reconcile(&mut self, now: Instant, id: RsId) {
        let Some(r) = self.rs(id) else { return };
        if !matches!(r.phase, Phase::Established)
            || r.in_flight.is_some()
            || r.backoff_until.is_some_and(|t| t > now)
            || r.srs_invite.is_some()
            || r.dialog.is_none()
        {
            return;
        }
        let kind = if r.want != r.have {
            ModKind::Direction(r.want)
        } else if r.need_snapshot {
            ModKind::Snapshot
        } else if r.need_refresh {
            ModKind::Refresh
        } else {
            return;
        };
        let allow_update = r.allow_update;
        let have = r.have;
        let (method, body) = match kind {
            ModKind::Direction(dir) => {
                let sdp = self.offer_sdp_at(r, dir, r.sdp_version + 1);
                let md = self.partial_metadata(now, dir == Direction::Inactive);
                (Method::Invite, Some(Self::multipart(&sdp, &md)))
            }
            ModKind::Snapshot => {
                let md = self
                    .metadata
                    .as_ref()
                    .map(Recording::to_xml)
                    .unwrap_or_default();
                if allow_update {
                    (Method::Update, Some(Self::metadata_body(&md)))
                } else {
                    let sdp = self.offer_sdp(r, have);
                    (Method::Invite, Some(Self::multipart(&sdp, &md)))
                }
            }
            ModKind::Refresh => {
                if allow_update {
                    (Method::Update, None)
                } else {
                    let sdp = self.offer_sdp(r, have);
                    (
                        Method::Invite,
                        Some(("application/sdp".to_string(), sdp.into_bytes())),
                    )
                }
            }
        };
        let Some(peer) = r.peer else { return };
        let target_uri = r.target_uri.clone();
        let timer = r.timer;
        let Some(r) = self.rs_mut(id) else { return };
        if let ModKind::Direction(_) = kind {
            r.sdp_version += 1;
        }
        let Some(dialog) = r.dialog.as_mut() else {
            return;
        };
        let mut req = dialog.new_request(method, body);
        let cseq = dialog.local_seq();
        if let Some(u) = target_uri {
            req.uri = u;
        }
        if body_is_multipart(&req) {
            req.headers.push(other("MIME-Version", "1.0"));
        }
        if let ModKind::Snapshot = kind {
            if method == Method::Update {
                req.headers
                    .push(other("Content-Disposition", "recording-session"));
            }
        }
        if let Some(t) = timer {
            // RFC 4028 §7.4: a refresh carries the interval and who refreshes.
            req.headers.push(other(
                "Session-Expires",
                &format!(
                    "{};refresher={}",
                    t.interval.as_secs(),
                    if t.we_refresh { "uac" } else { "uas" }
                ),
            ));
        }
        let key = self.layer.send_request(now, peer, req);
        self.owners.insert(key.clone(), (id, Purpose::Modify));
        if let Some(r) = self.rs_mut(id) {
            if kind == ModKind::Refresh {
                r.need_refresh = false;
            }
            if kind == ModKind::Snapshot {
                r.need_snapshot = false;
            }
            r.in_flight = Some(InFlight {
                key,
                kind,
                method,
                cseq,
            });
        }
    }

    fn streams(
        &self,
        dir: Direction,
        keys: Option<&[Vec<siprec_rtp::srtp::SdesKey>; 2]>,
    ) -> Vec<OfferStream> {
        [("1", 0usize), ("2", 1usize)]
            .iter()
            .map(|(label, i)| OfferStream {
                port: self.config.rtp_ports.get(*i).copied().unwrap_or(0),
                label: Some((*label).to_string()),
                direction: dir,
                payload_types: self.config.codecs.clone(),
                rtcp_mux: false,
                crypto: keys
                    .map(|k| k[*i].iter().map(|k| k.to_attribute()).collect())
                    .unwrap_or_default(),
            })
            .collect()
    }

    fn on_modify_response(&mut self, now: Instant, id: RsId, key: ClientKey, resp: Response) {
        let code = resp.status_code.code();
        let Some(r) = self.rs_mut(id) else { return };
        let Some(inf) = r.in_flight.as_ref().filter(|f| f.key == key) else {
            // A retransmitted 2xx of an earlier re-INVITE, or the 2xx of a re-INVITE that a
            // stop overtook: it is ACKed all the same (RFC 3261 §13.2.2.4).
            if (200..300).contains(&code) && key.0.method == Method::Invite {
                let stored = r.last_reinvite_ack.as_ref().is_some_and(|(k, _)| *k == key);
                if !stored {
                    let cseq = message::cseq(&resp.headers).map_or(1, |(n, _)| n);
                    if let Some(d) = r.dialog.as_ref() {
                        let mut ack = d.make_ack(cseq);
                        if let Some(u) = &r.target_uri {
                            ack.uri = u.clone();
                        }
                        r.last_reinvite_ack = Some((key.clone(), ack));
                    }
                }
                self.resend_ack(now, &key);
            }
            return;
        };
        if code < 200 {
            return;
        }
        let (kind, method, cseq) = (inf.kind, inf.method, inf.cseq);
        r.in_flight = None;
        let peer = r.peer;
        let entry = r.entry.clone();
        let target = r.target;
        if (200..300).contains(&code) {
            if method == Method::Invite {
                if let (Some(d), Some(peer)) = (r.dialog.as_ref(), peer) {
                    let mut ack = d.make_ack(cseq);
                    if let Some(u) = &r.target_uri {
                        ack.uri = u.clone();
                    }
                    r.last_reinvite_ack = Some((key.clone(), ack.clone()));
                    self.layer.send_request(now, peer, ack);
                }
            }
            let Some(r) = self.rs_mut(id) else { return };
            if let Some(d) = r.dialog.as_mut() {
                let _ = d.refresh_target(&resp.headers);
            }
            if let Some(t) = session_timer(now, &resp.headers, true) {
                r.timer = Some(t);
            } else if let Some(t) = r.timer {
                // Same interval, restarted (RFC 4028 §7.4 / §10).
                r.timer = Some(SessionTimer {
                    at: now
                        + if t.we_refresh {
                            t.interval / 2
                        } else {
                            expiry_margin(t.interval)
                        },
                    ..t
                });
            }
            if let ModKind::Direction(dir) = kind {
                let answer = sdp_of(&resp);
                if let Some(Ok(sdp)) = answer {
                    let legs = self.legs_from_answer(id, &sdp);
                    if let Some(r) = self.rs_mut(id) {
                        r.legs = legs;
                    }
                }
                if let Some(r) = self.rs_mut(id) {
                    r.have = dir;
                }
                let line = if dir == Direction::Inactive {
                    LOG_SRS_PAUSED
                } else {
                    LOG_SRS_RESUMED
                };
                let report = SrsReport {
                    rs: id,
                    entry,
                    target,
                    status: Some(code),
                    ok: true,
                    line,
                    detail: String::new(),
                };
                self.resolve_waiters(id, |w| (w == Wait::Direction(dir)).then(|| report.clone()));
                self.emit_media(id);
            }
            return;
        }
        match code {
            491 => {
                // RFC 3261 §14.1: we own the Call-ID, so wait 2.1–4 s (10 ms units), retry.
                let wait = Duration::from_millis(10 * rand::rng().random_range(210..=400));
                r.backoff_until = Some(now + wait);
                match kind {
                    ModKind::Snapshot => r.need_snapshot = true,
                    ModKind::Refresh => r.need_refresh = true,
                    ModKind::Direction(_) => {}
                }
                debug!(rs = %id, ?wait, "491: re-INVITE glare, backing off");
            }
            481 | 408 => {
                // RFC 3261 §12.2.1.2: the dialog is gone.
                let why = format!("{} answered {code} {}", method, reason_of(&resp));
                self.end_rs(now, id, Some(code), why, false);
            }
            _ => {
                // The session is unchanged (RFC 3261 §14.1); give up this change.
                let why = format!("{} answered {code} {}", method, reason_of(&resp));
                if let ModKind::Direction(dir) = kind {
                    r.want = r.have;
                    let report = SrsReport {
                        rs: id,
                        entry,
                        target,
                        status: Some(code),
                        ok: false,
                        line: LOG_SRS_REQUEST_FAILED,
                        detail: why,
                    };
                    self.resolve_waiters(id, |w| {
                        (w == Wait::Direction(dir)).then(|| report.clone())
                    });
                }
            }
        }
    }

    fn on_tx_timeout(&mut self, now: Instant, key: ClientKey) {
        self.orphans.remove(&key);
        let Some((id, purpose)) = self.owners.remove(&key) else {
            return;
        };
        let Some(r) = self.rs_mut(id) else { return };
        match purpose {
            Purpose::Invite => match &r.phase {
                Phase::Inviting(a) if a.key == key => {
                    r.history
                        .push(format!("{}: no final response (timeout)", a.target));
                    self.try_next_target(now, id);
                }
                Phase::Closing { key: k, .. } if *k == key => {
                    self.finish_close(now, id, None, "INVITE ended without an answer".into());
                }
                _ => {}
            },
            Purpose::Modify => {
                if r.in_flight.as_ref().is_some_and(|f| f.key == key) {
                    r.in_flight = None;
                    let why = "no answer to the re-INVITE/UPDATE (timeout)".to_string();
                    self.end_rs(now, id, Some(408), why, false);
                }
            }
            Purpose::Bye => {
                self.finish_close(now, id, None, "BYE not answered (timeout)".into());
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Ending sessions
    // -----------------------------------------------------------------------------------------

    /// Starts closing an RS for a stop. Returns a report when it is already final.
    fn close_rs(&mut self, now: Instant, id: RsId, why: &str) -> Option<SrsReport> {
        let deadline = now + self.config.request_timeout;
        let r = self.rs_mut(id)?;
        match &r.phase {
            Phase::Resolving => {
                r.phase = Phase::Done;
                r.history.push(format!("{why} before it was contacted"));
                Some(SrsReport {
                    rs: id,
                    entry: r.entry.clone(),
                    target: None,
                    status: None,
                    ok: true,
                    line: LOG_SRS_CANCELLED,
                    detail: format!("{why} before it was contacted"),
                })
            }
            Phase::Inviting(a) => {
                let (key, req, target) = (a.key.clone(), a.request.clone(), a.target);
                // RFC 3261 §9.1: CANCEL (sent once a provisional response came).
                let _ = self.layer.cancel(now, &key);
                self.orphans.insert(key.clone(), (target.into(), req));
                if let Some(r) = self.rs_mut(id) {
                    r.phase = Phase::Closing { key, deadline };
                }
                None
            }
            Phase::Established => {
                let peer = r.peer;
                let uri = r.target_uri.clone();
                let Some(dialog) = r.dialog.as_mut() else {
                    r.phase = Phase::Done;
                    return None;
                };
                let mut bye = dialog.new_request(Method::Bye, None);
                if let Some(u) = uri {
                    bye.uri = u;
                }
                r.in_flight = None;
                let peer = peer?;
                let key = self.layer.send_request(now, peer, bye);
                self.owners.insert(key.clone(), (id, Purpose::Bye));
                if let Some(r) = self.rs_mut(id) {
                    r.phase = Phase::Closing { key, deadline };
                    let entry = r.entry.clone();
                    let target = r.target;
                    let rep = SrsReport {
                        rs: id,
                        entry,
                        target,
                        status: None,
                        ok: false,
                        line: LOG_SRS_REQUEST_FAILED,
                        detail: format!("{why} before it answered"),
                    };
                    self.resolve_waiters(id, |w| {
                        matches!(w, Wait::Direction(_)).then(|| rep.clone())
                    });
                }
                self.events.push_back(Event::MediaStop { rs: id });
                None
            }
            Phase::Closing { .. } => None,
            Phase::Done => None,
        }
    }

    fn finish_close(&mut self, now: Instant, id: RsId, status: Option<u16>, detail: String) {
        let Some(r) = self.rs_mut(id) else { return };
        if !matches!(r.phase, Phase::Closing { .. }) {
            return;
        }
        let was_bye = r.dialog.is_some();
        r.phase = Phase::Done;
        r.status = status.or(r.status);
        let ok = if was_bye {
            status.is_some_and(|s| (200..300).contains(&s))
        } else {
            true
        };
        let report = SrsReport {
            rs: id,
            entry: r.entry.clone(),
            target: r.target,
            status,
            ok,
            line: if was_bye {
                if ok {
                    LOG_SRS_STOPPED
                } else {
                    LOG_SRS_REQUEST_FAILED
                }
            } else {
                LOG_SRS_CANCELLED
            },
            detail,
        };
        self.resolve_waiters(id, |_| Some(report.clone()));
        self.check_ops(now);
    }

    /// The RS ended outside a stop: SRS BYE, a lost dialog, an expired session. With
    /// `send_bye` we end it ourselves.
    fn end_rs(&mut self, now: Instant, id: RsId, status: Option<u16>, why: String, send_bye: bool) {
        let Some(r) = self.rs_mut(id) else { return };
        if !matches!(r.phase, Phase::Established) {
            return;
        }
        if send_bye {
            if let (Some(dialog), Some(peer)) = (r.dialog.as_mut(), r.peer) {
                let mut bye = dialog.new_request(Method::Bye, None);
                if let Some(u) = &r.target_uri {
                    bye.uri = u.clone();
                }
                self.layer.send_request(now, peer, bye);
            }
        }
        let Some(r) = self.rs_mut(id) else { return };
        r.phase = Phase::Done;
        r.in_flight = None;
        r.history.push(why.clone());
        let report = SrsReport {
            rs: id,
            entry: r.entry.clone(),
            target: r.target,
            status,
            ok: false,
            line: LOG_SRS_ENDED,
            detail: why,
        };
        warn!(rs = %id, entry = %report.entry, detail = %report.detail, "{LOG_SRS_ENDED}");
        self.events.push_back(Event::MediaStop { rs: id });
        self.resolve_waiters(id, |_| Some(report.clone()));
        self.events.push_back(Event::Srs(report));
        self.maybe_idle(now);
    }

    /// When the last established RS is gone while recording, the recording is over: pending
    /// INVITEs are cancelled and the state is idle again (a later start is not a duplicate).
    fn maybe_idle(&mut self, now: Instant) {
        if self.state != CallState::Recording {
            return;
        }
        if self
            .rss
            .iter()
            .any(|r| matches!(r.phase, Phase::Established))
        {
            return;
        }
        let ids: Vec<RsId> = self.rss.iter().map(|r| r.id).collect();
        for id in ids {
            self.abandon(now, id);
        }
        self.state = CallState::Idle;
        self.paused = false;
        self.events.push_back(Event::RecordingEnded {
            reason: "every SRS ended its recording session".into(),
        });
    }

    fn resolve_waiters(&mut self, id: RsId, mut f: impl FnMut(Wait) -> Option<SrsReport>) {
        let Some(r) = self.rs_mut(id) else { return };
        let waiting = std::mem::take(&mut r.waiting);
        let mut keep = Vec::new();
        for (op, w) in waiting {
            match f(w) {
                Some(rep) => {
                    if let Some(o) = self.ops.iter_mut().find(|o| o.id == op) {
                        for (rs, slot) in o.parts.iter_mut() {
                            if *rs == id && slot.is_none() {
                                *slot = Some(rep.clone());
                            }
                        }
                    }
                }
                None => keep.push((op, w)),
            }
        }
        if let Some(r) = self.rs_mut(id) {
            r.waiting = keep;
        }
    }

    fn check_ops(&mut self, _now: Instant) {
        let mut i = 0;
        while i < self.ops.len() {
            let done = self
                .ops
                .get(i)
                .is_some_and(|o| o.parts.iter().all(|(_, r)| r.is_some()));
            if !done {
                i += 1;
                continue;
            }
            let o = self.ops.remove(i);
            let reports: Vec<SrsReport> = o.parts.into_iter().filter_map(|(_, r)| r).collect();
            for r in &reports {
                if let Some(rs) = self.rs_mut(r.rs) {
                    rs.waiting.retain(|(op, _)| *op != o.id);
                }
            }
            let any_ok = reports.iter().any(|r| r.ok);
            let reply = match o.activity {
                Activity::Stop => Reply::Stopped,
                Activity::Pause if any_ok || reports.is_empty() => Reply::Paused,
                Activity::Pause => Reply::PauseFailed,
                Activity::Resume if any_ok || reports.is_empty() => Reply::Resumed,
                Activity::Resume => Reply::ResumeFailed,
                Activity::Start => Reply::Started,
            };
            let reason = (!any_ok && !reports.is_empty()).then(|| {
                reports
                    .iter()
                    .map(|r| format!("{}: {}", r.entry, r.detail))
                    .collect::<Vec<_>>()
                    .join("; ")
            });
            self.outcome(o.id, o.activity, reply, reason, reports);
        }
        self.gc();
    }

    // -----------------------------------------------------------------------------------------
    // Requests from the SRS
    // -----------------------------------------------------------------------------------------

    fn respond(&mut self, now: Instant, key: &ServerKey, resp: Response) {
        if let Err(e) = self.layer.respond(now, key, resp) {
            debug!(%e, "respond failed");
        }
    }

    fn simple(
        &mut self,
        now: Instant,
        key: &ServerKey,
        req: &Request,
        code: u16,
        extra: Vec<Header>,
    ) {
        let mut resp = make_response(req, code, None, None);
        for h in extra {
            resp.headers.push(h);
        }
        self.respond(now, key, resp);
    }

    fn find_dialog(&self, req: &Request) -> Option<RsId> {
        self.rss
            .iter()
            .find(|r| {
                matches!(r.phase, Phase::Established | Phase::Closing { .. })
                    && r.dialog.as_ref().is_some_and(|d| d.matches(req))
            })
            .map(|r| r.id)
    }

    fn on_request(&mut self, now: Instant, key: ServerKey, _peer: Peer, req: Request) {
        let to_tag = header_value(&req.headers, "To").and_then(|t| tag_of(&t));
        let Some(id) = self.find_dialog(&req) else {
            match (&req.method, to_tag) {
                (Method::Options, None) => {
                    let extra = vec![
                        other("Allow", ALLOW),
                        other("Accept", ACCEPT),
                        other("Supported", "timer"),
                    ];
                    self.simple(now, &key, &req, 200, extra);
                }
                (Method::Invite, None) => {
                    // A recording client takes no calls.
                    self.simple(now, &key, &req, 403, Vec::new());
                }
                _ => self.simple(now, &key, &req, 481, Vec::new()),
            }
            return;
        };
        let Some(r) = self.rs_mut(id) else { return };
        let closing = matches!(r.phase, Phase::Closing { .. });
        if let Some(d) = r.dialog.as_mut() {
            if !d.accept_remote_cseq(&req) {
                // RFC 3261 §12.2.2: lower CSeq → 500.
                self.simple(now, &key, &req, 500, Vec::new());
                return;
            }
        }
        match req.method {
            Method::Bye => {
                self.simple(now, &key, &req, 200, Vec::new());
                if closing {
                    self.finish_close(now, id, Some(200), "the SRS sent BYE too".into());
                } else {
                    self.end_rs(now, id, None, "the SRS sent BYE".into(), false);
                }
            }
            _ if closing => self.simple(now, &key, &req, 481, Vec::new()),
            Method::Invite | Method::Update => self.on_srs_modify(now, id, key, req),
            Method::Options => {
                let extra = vec![other("Allow", ALLOW), other("Accept", ACCEPT)];
                self.simple(now, &key, &req, 200, extra);
            }
            Method::Info => self.simple(now, &key, &req, 200, Vec::new()),
            _ => self.simple(now, &key, &req, 405, vec![other("Allow", ALLOW)]),
        }
    }

    fn on_srs_modify(&mut self, now: Instant, id: RsId, key: ServerKey, req: Request) {
        let is_invite = req.method == Method::Invite;
        let ct = header_values(&req.headers, "Content-Type");
        let parts = match body::split(ct.first().map(String::as_str), &req.body) {
            Ok(p) => p,
            Err(BodyError::Unsupported(_)) => {
                self.simple(now, &key, &req, 415, vec![other("Accept", ACCEPT)]);
                return;
            }
            Err(BodyError::Malformed(_)) => {
                self.simple(now, &key, &req, 400, Vec::new());
                return;
            }
        };
        let Some(r) = self.rs_mut(id) else { return };
        // RFC 3261 §14.2 / RFC 3311 §5.2: an offer while ours is pending → 491.
        let our_offer_pending = r
            .in_flight
            .as_ref()
            .is_some_and(|f| f.method == Method::Invite);
        if (is_invite && (our_offer_pending || r.srs_invite.is_some()))
            || (parts.sdp.is_some() && our_offer_pending)
        {
            self.simple(now, &key, &req, 491, Vec::new());
            return;
        }
        let offer = match parts.sdp.as_deref().map(siprec_sdp::parse) {
            Some(Err(_)) => {
                self.simple(now, &key, &req, 488, Vec::new());
                return;
            }
            Some(Ok(o)) => Some(o),
            None => None,
        };
        let Some(r) = self.rs_mut(id) else { return };
        if let Some(d) = r.dialog.as_mut() {
            let _ = d.refresh_target(&req.headers);
        }
        if parts.snapshot_request.is_some() {
            // RFC 7866 §9.4 (snapshot): the complete document in a new transaction.
            r.need_snapshot = true;
        }
        let mut body_out: Option<String> = None;
        let mut offer_in_2xx = false;
        if let Some(offer) = offer {
            let answer = self.answer_srs_offer(id, &offer);
            body_out = Some(answer);
        } else if is_invite {
            // Offerless re-INVITE: our offer in the 2xx, the answer in the ACK.
            let Some(r) = self.rs_mut(id) else { return };
            r.sdp_version += 1;
            let dir = r.have;
            let Some(r) = self.rs(id) else { return };
            body_out = Some(self.offer_sdp(r, dir));
            offer_in_2xx = true;
        }
        let mut resp = make_response(&req, 200, None, None);
        let Some(r) = self.rs_mut(id) else { return };
        if let Some(d) = r.dialog.as_ref() {
            resp.headers
                .push(Header::Contact(rsip::headers::Contact::new(format!(
                    "<{}>;+sip.src",
                    d.local_contact()
                ))));
        }
        resp.headers.push(other("Allow", ALLOW));
        resp.headers.push(other("Supported", "timer"));
        // RFC 4028: the SRS refreshes unless it asks us to.
        if let Some(t) = session_timer(now, &req.headers, false) {
            let refresher = if t.we_refresh { "uas" } else { "uac" };
            resp.headers.push(other(
                "Session-Expires",
                &format!("{};refresher={refresher}", t.interval.as_secs()),
            ));
            resp.headers.push(other("Require", "timer"));
            r.timer = Some(t);
        } else if let Some(t) = r.timer {
            if !t.we_refresh {
                // Any re-INVITE/UPDATE from the refresher is a refresh (RFC 4028 §10).
                r.timer = Some(SessionTimer {
                    at: now + expiry_margin(t.interval),
                    ..t
                });
            }
        }
        if let Some(b) = body_out {
            resp.headers
                .push(Header::ContentType(rsip::headers::ContentType::new(
                    "application/sdp",
                )));
            resp.body = b.into_bytes();
        }
        if is_invite {
            r.srs_invite = Some((key.clone(), offer_in_2xx));
        }
        self.respond(now, &key, resp);
        self.emit_media(id);
    }

    /// Our answer to an SDP offer from the SRS: per m-line, our leg's port with its codec,
    /// `sendonly` (or `inactive` while paused or when the SRS does not receive); extra
    /// m-lines declined with port 0.
    fn answer_srs_offer(&mut self, id: RsId, offer: &SessionDescription) -> String {
        let paused = self.paused;
        let codecs = self.config.codecs.clone();
        let media_ip = self.config.media_ip;
        let rtp_ports = self.config.rtp_ports;
        let Some(r) = self.rs_mut(id) else {
            return String::new();
        };
        let mut streams = Vec::new();
        let mut legs: [LegState; 2] = Default::default();
        let mut any_send = false;
        for (i, m) in offer.media.iter().enumerate() {
            let chosen = m
                .formats
                .iter()
                .find(|f| {
                    codecs.iter().any(|c| {
                        c.encoding.eq_ignore_ascii_case(&f.encoding) && c.clock_rate == f.clock_rate
                    })
                })
                .cloned();
            let port = rtp_ports.get(i).copied();
            let usable = m.media.eq_ignore_ascii_case("audio") && m.port != 0;
            match (port, chosen, usable) {
                (Some(port), Some(format), true) => {
                    let receives = matches!(m.direction, Direction::RecvOnly | Direction::SendRecv);
                    let dir = if receives && !paused {
                        any_send = true;
                        Direction::SendOnly
                    } else {
                        Direction::Inactive
                    };
                    if let Some(leg) = legs.get_mut(i) {
                        leg.format = Some(format.clone());
                        leg.remote = if receives { m.remote_rtp_addr() } else { None };
                    }
                    streams.push(OfferStream {
                        port,
                        label: m.label.clone(),
                        direction: dir,
                        payload_types: vec![format],
                        rtcp_mux: false,
                        crypto: Vec::new(),
                    });
                }
                _ => streams.push(OfferStream {
                    port: 0,
                    label: m.label.clone(),
                    direction: Direction::Inactive,
                    payload_types: m
                        .formats
                        .first()
                        .cloned()
                        .or_else(|| Format::from_static_payload_type(0))
                        .into_iter()
                        .collect(),
                    rtcp_mux: false,
                    crypto: Vec::new(),
                }),
            }
        }
        r.legs = legs;
        r.have = if any_send || paused {
            if paused {
                Direction::Inactive
            } else {
                Direction::SendOnly
            }
        } else {
            Direction::Inactive
        };
        r.sdp_version += 1;
        let mut b = OfferBuilder::new(media_ip, r.sdp_id, r.sdp_version);
        b.username = "src".into();
        b.build(&streams)
    }

    fn on_ack(&mut self, now: Instant, req: &Request) {
        let Some(id) = self.find_dialog(req) else {
            return;
        };
        let Some(r) = self.rs_mut(id) else { return };
        let Some((_, offer_in_2xx)) = r.srs_invite.take() else {
            return;
        };
        if offer_in_2xx {
            let ct = header_values(&req.headers, "Content-Type");
            if let Ok(parts) = body::split(ct.first().map(String::as_str), &req.body) {
                if let Some(Ok(sdp)) = parts.sdp.as_deref().map(siprec_sdp::parse) {
                    let legs = self.legs_from_answer(id, &sdp);
                    if let Some(r) = self.rs_mut(id) {
                        r.legs = legs;
                    }
                }
            }
        }
        self.emit_media(id);
        self.reconcile(now, id);
    }
}

fn reason_of(resp: &Response) -> String {
    match &resp.status_code {
        rsip::StatusCode::Other(_, r) if !r.trim().is_empty() && r.trim() != "Other" => {
            short(r.trim())
        }
        known => message::reason_phrase(known.code()).to_string(),
    }
}

fn r_status(resp: &Response) -> Option<u16> {
    Some(resp.status_code.code())
}

fn body_is_multipart(req: &Request) -> bool {
    header_value(&req.headers, "Content-Type")
        .is_some_and(|c| c.to_ascii_lowercase().starts_with("multipart/"))
}

/// The SDP of a message body (plain or inside multipart/mixed).
fn sdp_of(resp: &Response) -> Option<Result<SessionDescription, String>> {
    let ct = header_values(&resp.headers, "Content-Type");
    let parts = match body::split(ct.first().map(String::as_str), &resp.body) {
        Ok(p) => p,
        Err(e) => return Some(Err(format!("{e:?}"))),
    };
    parts
        .sdp
        .map(|b| siprec_sdp::parse(&b).map_err(|e| e.to_string()))
}

/// When the side that does not refresh gives up: RFC 4028 §10, `interval - min(32 s,
/// interval/3)`.
fn expiry_margin(interval: Duration) -> Duration {
    interval.saturating_sub(Duration::from_secs(32).min(interval / 3))
}

/// RFC 4028 Session-Expires of a message. `we_are_uac`: the message is a response to our
/// request (refresher=uac means us) or a request from the peer (refresher=uac means the peer).
fn session_timer(now: Instant, headers: &rsip::Headers, we_are_uac: bool) -> Option<SessionTimer> {
    let v = header_value(headers, "Session-Expires")?;
    let (num, params) = match v.find(';') {
        Some(i) => (
            v.get(..i).unwrap_or_default(),
            v.get(i..).unwrap_or_default(),
        ),
        None => (v.as_str(), ""),
    };
    let secs: u64 = num.trim().parse().ok()?;
    // RFC 4028 §4: at least 90 s is the default minimum; accept what the peer says but
    // never refresh more often than every 30 s.
    let secs = secs.clamp(60, 86_400);
    let refresher = parse_params(params)
        .into_iter()
        .find(|(n, _)| n == "refresher")
        .map(|(_, v)| v.to_ascii_lowercase());
    let interval = Duration::from_secs(secs);
    let we_refresh = match (refresher.as_deref(), we_are_uac) {
        (Some("uac"), true) => true,
        (Some("uas"), false) => true,
        (Some(_), _) => false,
        // RFC 4028 §7.4: a 2xx without refresher… the UAC refreshes by default.
        (None, uac) => uac,
    };
    Some(SessionTimer {
        interval,
        we_refresh,
        at: now
            + if we_refresh {
                interval / 2
            } else {
                expiry_margin(interval)
            },
    })
}

#[cfg(test)]
mod tests {
    //! Scenario tests in virtual time: the SRC core against simulated SRSs on a simulated
    //! network; `now` is stepped from timer to timer, nothing sleeps.

    use super::*;
    use siprec_sdp::AnswerConfig;
    use siprec_sip::message::parse_message;

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
            let ct = header_values(&req.headers, "Content-Type");
            let parts = body::split(ct.first().map(String::as_str), &req.body).ok()?;
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
                                .map_or(
                                    (t, siprec_rtp::srtp::SrtpSuite::AesCm128HmacSha1_80),
                                    |k| (k.tag, k.suite),
                                ),
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
                            if let Some(i) =
                                self.pending_invites.iter().position(|(k, _)| *k == invite)
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
                        let res = self
                            .resolutions
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

    // ----- server string -----------------------------------------------------------------------

    #[test]
    fn server_string_accepts_every_format_of_the_node_page() {
        let ok = [
            (
                "sip:siprec.example.com",
                "sip:siprec.example.com",
                None,
                None,
            ),
            (
                "sip:siprec.example.com:5060",
                "sip:siprec.example.com:5060",
                Some(5060),
                None,
            ),
            ("sip:3.208.57.175", "sip:3.208.57.175", None, None),
            (
                "sips:siprec.example.com",
                "sips:siprec.example.com",
                None,
                Some(Transport::Tls),
            ),
            (
                "SIP:SipRec.Example.COM",
                "sip:siprec.example.com",
                None,
                None,
            ),
            (
                "sip:srs@10.0.0.5:5080;transport=TCP",
                "sip:srs@10.0.0.5:5080;transport=tcp",
                Some(5080),
                Some(Transport::Tcp),
            ),
            ("sip:[2001:db8::1]", "sip:[2001:db8::1]", None, None),
            (
                "sip:[::1]:5062;transport=udp",
                "sip:[::1]:5062;transport=udp",
                Some(5062),
                Some(Transport::Udp),
            ),
            (
                "sips:[2001:db8::7]:5061",
                "sips:[2001:db8::7]:5061",
                Some(5061),
                Some(Transport::Tls),
            ),
            (
                "sip:srs.example.com;transport=tls;lr",
                "sip:srs.example.com;transport=tls;lr",
                None,
                Some(Transport::Tls),
            ),
            (
                "sips:srs.example.com;transport=tcp",
                "sips:srs.example.com;transport=tcp",
                None,
                Some(Transport::Tls),
            ),
            ("sip:srs.example.com.", "sip:srs.example.com", None, None),
        ];
        for (input, printed, port, transport) in ok {
            let v = parse_server_list(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(v.len(), 1, "{input}");
            assert_eq!(v[0].to_string(), printed, "{input}");
            assert_eq!(v[0].port, port, "{input}");
            assert_eq!(v[0].required_transport(), transport, "{input}");
            // The Request-URI prints the same text (IPv6 included, which rsip cannot parse).
            assert_eq!(v[0].to_rsip().to_string(), printed, "{input}");
        }
        let v = parse_server_list("sip:[2001:db8::1]:5070").unwrap();
        assert_eq!(v[0].host, Host::Ip("2001:db8::1".parse().unwrap()));
        assert_eq!(v[0].default_port(), 5060);
        assert_eq!(
            parse_server_list("sips:h.example").unwrap()[0].default_port(),
            5061
        );
        // Multiple parallel recorders, with any white space around the commas.
        let v =
            parse_server_list(" sip:srs1.example.com ,\tsip:srs2.example.com:5070 , sips:[::1] ")
                .unwrap();
        let printed: Vec<String> = v.iter().map(ToString::to_string).collect();
        assert_eq!(
            printed,
            [
                "sip:srs1.example.com",
                "sip:srs2.example.com:5070",
                "sips:[::1]"
            ]
        );
        let v = parse_server_list("sip:srs1.example.com,sip:srs2.example.com").unwrap();
        assert_eq!(v.len(), 2);
    }

    #[test]
    fn server_string_rejects_what_the_node_page_rejects() {
        let bad = [
            ("wss://siprec.example.com", "WebSocket"),
            ("ws://siprec.example.com:8080/x", "WebSocket"),
            ("https://siprec.example.com", "HTTP"),
            ("http://siprec.example.com", "HTTP"),
            ("siprec.example.com", "without the sip: or sips: scheme"),
            ("10.0.0.5", "without the sip: or sips: scheme"),
            ("10.0.0.5:5060", "without the sip: or sips: scheme"),
            (
                "siprec.example.com:5060",
                "without the sip: or sips: scheme",
            ),
            ("tel:+15551234567", "unsupported URI scheme \"tel\""),
            ("ftp://x.example", "unsupported URL scheme \"ftp\""),
            ("sip:", "no host"),
            ("sip://srs.example.com", "no \"//\""),
            ("sip:srs.example.com:0", "invalid port"),
            ("sip:srs.example.com:70000", "invalid port"),
            ("sip:srs.example.com:50a", "invalid port"),
            (
                "sip:srs.example.com;transport=sctp",
                "unsupported transport",
            ),
            ("sip:srs.example.com;transport=ws", "unsupported transport"),
            ("sips:srs.example.com;transport=udp", "sips: needs TLS"),
            ("sip:2001:db8::1", "brackets"),
            ("sip:[2001:db8::1", "closing"),
            ("sip:[not-v6]:5060", "not an IPv6"),
            ("sip:300.1.1.1", "not an IPv4"),
            ("sip:-bad-.example.com", "not a valid host name"),
            ("sip:srs.example.com?Subject=x", "URI headers"),
            ("sip:user:pw@srs.example.com", "passwords"),
            ("sip:srs example.com", "white space"),
            ("sip:srs.example.com;", "empty URI parameter"),
        ];
        for (input, why) in bad {
            match parse_server_list(input) {
                Err(Error::InvalidServer { entry, reason }) => {
                    assert_eq!(entry, input.trim(), "{input}");
                    assert!(reason.contains(why), "{input}: {reason}");
                    let msg = Error::InvalidServer { entry, reason }.to_string();
                    assert!(msg.contains(input.trim()), "{msg}");
                    assert!(
                        msg.contains("sip:siprec.example.com:5060"),
                        "says what is accepted: {msg}"
                    );
                }
                other => panic!("{input}: {other:?}"),
            }
        }
        // Empty entries.
        for input in [
            "sip:a.example,,sip:b.example",
            "sip:a.example,",
            ",sip:a.example",
        ] {
            let e = parse_server_list(input).unwrap_err();
            assert!(e.to_string().contains("empty entry"), "{input}: {e}");
        }
        // One bad entry in a list names that entry.
        let e = parse_server_list("sip:ok.example.com, wss://bad.example.com").unwrap_err();
        assert!(
            matches!(&e, Error::InvalidServer { entry, .. } if entry == "wss://bad.example.com"),
            "{e}"
        );
        // Empty or blank: the "missing X-Srs-Url" case.
        for input in ["", "   ", "\t"] {
            assert_eq!(parse_server_list(input), Err(Error::MissingServer));
        }
        let long = format!("sip:{}", "a".repeat(MAX_SERVER_VALUE));
        assert!(parse_server_list(&long).is_err());
        let many = vec!["sip:a.example"; MAX_SERVERS + 1].join(",");
        assert!(parse_server_list(&many).is_err());
    }

    #[test]
    fn target_text_and_datetime() {
        let t: Target = "tcp:[::1]:5070".parse().unwrap();
        assert_eq!(t.to_string(), "tcp:[::1]:5070");
        assert!("sctp:1.2.3.4:5".parse::<Target>().is_err());
        assert_eq!(
            xs_datetime(UNIX_EPOCH + Duration::from_millis(1_714_557_600_250)),
            "2024-05-01T10:00:00.250Z"
        );
        assert_eq!(xs_datetime(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            xs_datetime(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(b64(&[0xfb, 0xff]), "+/8=");
        assert_eq!(b64(b"sipp-session"), "c2lwcC1zZXNzaW9u");
        assert_eq!(new_md_id().len(), 24);
    }

    // ----- the INVITE -------------------------------------------------------------------------

    #[test]
    fn invite_is_a_siprec_recording_session() {
        let mut net = Net::new(vec![FakeSrs::new(A, InviteMode::Accept)]);
        net.src.call.extra_headers = vec![("X-Call-Sid".into(), "CA42".into())];
        net.src.call.call_sid = Some("CA42".into());
        let op = net.start(&list(&[A]), Some("rec-42"));
        let out = net.outcome(op).unwrap();
        assert_eq!(out.reply, Reply::Started);
        let inv = net.srs[0].received[0].clone();
        let text = String::from_utf8(print_message_of(&inv)).unwrap();
        assert!(
            text.starts_with("INVITE sip:192.0.2.10:5060 SIP/2.0\r\n"),
            "{text}"
        );
        assert!(text.contains("Require: siprec\r\n"), "{text}");
        let contact = header_value(&inv.headers, "Contact").unwrap();
        assert_eq!(contact, "<sip:src@192.0.2.1:5060>;+sip.src");
        assert!(header_value(&inv.headers, "Accept")
            .unwrap()
            .contains("application/sdp"));
        assert_eq!(
            header_value(&inv.headers, "X-Call-Sid").as_deref(),
            Some("CA42")
        );
        let ct = header_value(&inv.headers, "Content-Type").unwrap();
        assert!(ct.starts_with("multipart/mixed;boundary="), "{ct}");
        let mp = siprec_sip::multipart::parse(&ct, &inv.body).unwrap();
        assert_eq!(mp.parts.len(), 2);
        let sdp = mp.part_by_type("application/sdp").unwrap();
        let sdp_text = String::from_utf8(sdp.body.clone()).unwrap();
        assert_eq!(sdp_text.matches("m=audio").count(), 2, "{sdp_text}");
        assert_eq!(sdp_text.matches("a=sendonly").count(), 2);
        assert!(
            sdp_text.contains("m=audio 40000 RTP/AVP 0 8\r\n"),
            "{sdp_text}"
        );
        assert!(sdp_text.contains("a=label:1\r\n") && sdp_text.contains("a=label:2\r\n"));
        let md = mp.part_by_type("application/rs-metadata+xml").unwrap();
        assert_eq!(md.disposition().as_deref(), Some("recording-session"));
        let Ok(rs_metadata::Document::Recording(rec)) = rs_metadata::parse(&md.body) else {
            panic!("metadata does not parse");
        };
        assert_eq!(rec.recording_id().as_deref(), Some("rec-42"));
        assert_eq!(rec.sessions[0].sip_session_ids, ["call-1@example.com"]);
        assert_eq!(
            rec.sessions[0].start_time.as_deref(),
            Some("2024-05-01T10:00:00.000Z")
        );
        // Caller = participant of label 1 (not swapped).
        let s1 = rec.stream_by_label("1").unwrap().stream_id.clone();
        let caller = rec.sender_of_stream(&s1).unwrap().to_string();
        assert_eq!(
            rec.participant_display(&caller),
            (Some("Alice".into()), Some("sip:alice@example.com".into()))
        );
        let xml = String::from_utf8(md.body.clone()).unwrap();
        assert!(xml.contains("urn:ietf:params:xml:ns:recording:1"));
        assert!(xml.contains("<callsid xmlns=\"urn:x-siprec-rs:ext\">CA42</callsid>"));
        assert!(xml.contains(">inbound</direction>"));
        // The SRS got its ACK.
        assert_eq!(net.srs[0].acks.len(), 1);
    }

    /// The SDP part of the first INVITE `srs` received.
    fn offer_of(srs: &FakeSrs) -> String {
        let inv = &srs.received[0];
        let ct = header_value(&inv.headers, "Content-Type").unwrap();
        let mp = siprec_sip::multipart::parse(&ct, &inv.body).unwrap();
        String::from_utf8(mp.part_by_type("application/sdp").unwrap().body.clone()).unwrap()
    }

    #[test]
    fn srtp_is_offered_as_configured_and_never_sent_in_clear() {
        use siprec_rtp::srtp::SrtpSuite;
        // Default (sips only): a sip: SRS gets plain RTP.
        let mut net = Net::new(vec![FakeSrs::new(A, InviteMode::Accept)]);
        net.start(&list(&[A]), None);
        let offer = offer_of(&net.srs[0]);
        assert!(
            offer.contains("RTP/AVP 0 8") && !offer.contains("a=crypto"),
            "{offer}"
        );

        // Always, default suites: both on every m-line (tag 1 `_80`, tag 2 `_32`); the SRS
        // accepts one per m-line and we send with our key of the tag it answered.
        let mut cfg = config();
        cfg.srtp = SrtpOffer::Always;
        let sends_with = |cfg: &SrcConfig, tag: Option<u32>| {
            let mut srs = FakeSrs::new(A, InviteMode::Accept);
            srs.srtp = Some(true);
            srs.srtp_tag = tag;
            let mut net = Net::with_config(vec![srs], cfg.clone());
            let op = net.start(&list(&[A]), None);
            let out = net.outcome(op).unwrap();
            assert_eq!(out.reply, Reply::Started);
            let offer = offer_of(&net.srs[0]);
            assert_eq!(offer.matches("RTP/SAVP 0 8").count(), 2, "{offer}");
            let plan = net.plans(out.srs[0].rs).pop().expect("a media plan");
            let keys: Vec<_> = plan
                .legs
                .iter()
                .filter_map(|l| l.as_ref().and_then(|l| l.srtp.clone()))
                .collect();
            for key in &keys {
                assert!(offer.contains(&key.to_attribute()), "our own offered key");
            }
            let keys: Vec<(u32, SrtpSuite)> = keys.iter().map(|k| (k.tag, k.suite)).collect();
            (offer, plan.sending, keys)
        };
        let (s80, s32) = (
            SrtpSuite::AesCm128HmacSha1_80,
            SrtpSuite::AesCm128HmacSha1_32,
        );
        let (offer, sending, keys) = sends_with(&cfg, None);
        for line in [
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:",
            "a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:",
        ] {
            assert_eq!(offer.matches(line).count(), 2, "{line} per m-line: {offer}");
        }
        assert!(sending);
        assert_eq!(keys, [(1, s80); 2]);
        // The SRS picks the second line: our `_32` key of tag 2 protects the packets.
        let (_, sending, keys) = sends_with(&cfg, Some(2));
        assert!(sending);
        assert_eq!(keys, [(2, s32); 2]);
        // An answer naming a tag we never offered accepts none of our keys: nothing is sent.
        let (_, sending, keys) = sends_with(&cfg, Some(9));
        assert!(!sending && keys.is_empty());
        // One configured suite: one a=crypto line per m-line, tag 1.
        cfg.srtp_suites = vec![s32, s32];
        let (offer, sending, keys) = sends_with(&cfg, None);
        assert_eq!(offer.matches("a=crypto:").count(), 2, "{offer}");
        assert_eq!(
            offer
                .matches("a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:")
                .count(),
            2,
            "{offer}"
        );
        assert!(sending);
        assert_eq!(keys, [(1, s32); 2]);

        // An SRS that answers RTP/AVP to the SRTP offer: nothing is sent in clear.
        let mut srs = FakeSrs::new(A, InviteMode::Accept);
        srs.srtp = Some(false);
        let mut net = Net::with_config(vec![srs], cfg.clone());
        let op = net.start(&list(&[A]), None);
        let rs = net.outcome(op).unwrap().srs[0].rs;
        let plans = net.plans(rs);
        assert!(!plans.is_empty());
        assert!(
            plans
                .iter()
                .all(|p| p.legs.iter().all(Option::is_none) && !p.sending),
            "{plans:?}"
        );

        // Never: plain RTP whatever the URI.
        cfg.srtp = SrtpOffer::Never;
        let mut net = Net::with_config(vec![FakeSrs::new(A, InviteMode::Accept)], cfg);
        net.start(&list(&[A]), None);
        assert!(!offer_of(&net.srs[0]).contains("RTP/SAVP"));
    }

    #[test]
    fn the_accepted_key_is_the_one_whose_tag_and_suite_the_answer_names() {
        use siprec_rtp::srtp::{SdesKey, SrtpSuite};
        let keys = &new_srtp_keys(&[
            SrtpSuite::AesCm128HmacSha1_80,
            SrtpSuite::AesCm128HmacSha1_32,
        ])[0];
        let theirs = |tag, suite| vec![SdesKey::new(tag, suite, [3; 30]).to_attribute()];
        let got = |answer: &[String]| accepted_key(keys, answer).map(|k| (k.tag, k.suite));
        assert_eq!(
            got(&theirs(2, SrtpSuite::AesCm128HmacSha1_32)),
            Some((2, SrtpSuite::AesCm128HmacSha1_32))
        );
        assert_eq!(
            got(&theirs(1, SrtpSuite::AesCm128HmacSha1_80)),
            Some((1, SrtpSuite::AesCm128HmacSha1_80))
        );
        // Our tag 1 with the other suite, a tag we never offered, and garbage: nothing.
        assert_eq!(got(&theirs(1, SrtpSuite::AesCm128HmacSha1_32)), None);
        assert_eq!(got(&theirs(3, SrtpSuite::AesCm128HmacSha1_80)), None);
        assert_eq!(
            got(&["1 F8_128_HMAC_SHA1_80 inline:AAAA".to_string()]),
            None
        );
        // No a=crypto in an RTP/SAVP answer: our first key.
        assert_eq!(got(&[]), Some((1, SrtpSuite::AesCm128HmacSha1_80)));
        // Repeats are dropped, an empty list offers _80.
        assert_eq!(
            new_srtp_keys(&[SrtpSuite::AesCm128HmacSha1_32; 3])[1].len(),
            1
        );
        let only = &new_srtp_keys(&[])[0];
        assert_eq!(
            (only.len(), only[0].suite),
            (1, SrtpSuite::AesCm128HmacSha1_80)
        );
    }

    fn print_message_of(r: &Request) -> Vec<u8> {
        siprec_sip::message::print_message(&SipMessage::Request(r.clone()))
    }

    #[test]
    fn no_recording_id_means_no_recordingid_element() {
        let mut net = Net::new(vec![FakeSrs::new(A, InviteMode::Accept)]);
        net.start(&list(&[A]), Some("  "));
        let body = body_text(&net.srs[0].received[0]);
        assert!(!body.contains("recordingid"), "{body}");
        assert!(!body.contains("undefined"));
    }

    #[test]
    fn tcp_and_tls_targets_get_matching_contact_and_via() {
        let mut net = Net::new(vec![FakeSrs::new(A, InviteMode::Accept)]);
        net.start("sip:192.0.2.10:5060;transport=tcp", None);
        let inv = &net.srs[0].received[0];
        assert_eq!(
            header_value(&inv.headers, "Contact").unwrap(),
            "<sip:src@192.0.2.1:5060;transport=tcp>;+sip.src"
        );
        assert!(header_value(&inv.headers, "Via")
            .unwrap()
            .starts_with("SIP/2.0/TCP 192.0.2.1:5060;"));
        // No TLS transport configured: the target is skipped with a reason.
        let mut net = Net::new(vec![FakeSrs::new(A, InviteMode::Accept)]);
        let op = net.start("sips:192.0.2.10", None);
        let out = net.outcome(op).unwrap();
        assert_eq!(out.reply, Reply::StartFailed);
        assert!(out.reason.unwrap().contains("no local TLS transport"));
    }

    // ----- start ------------------------------------------------------------------------------

    #[test]
    fn parallel_start_200_503_and_silence_is_a_success() {
        let mut net = Net::new(vec![
            FakeSrs::new(A, InviteMode::Delay(Duration::from_millis(100))),
            FakeSrs::new(B, InviteMode::Reject(503)),
            FakeSrs::new(C, InviteMode::Silent),
        ]);
        let start = net.now;
        let op = net.start(&list(&[A, B, C]), Some("rec-1"));
        // Answered when the 200 comes, without waiting for the silent one.
        let out = net.await_outcome(op);
        assert_eq!(net.now - start, Duration::from_millis(100));
        assert_eq!(out.reply, Reply::Started);
        assert_eq!(
            (out.reply.code(), out.reply.log_line()),
            (200, "startCallRecording request for a call")
        );
        assert_eq!(out.srs.len(), 3);
        assert!(
            out.srs[0].ok && out.srs[0].line == LOG_ESTABLISHED && out.srs[0].status == Some(200)
        );
        assert_eq!(out.srs[0].entry, "sip:192.0.2.10:5060");
        assert!(
            !out.srs[1].ok && out.srs[1].status == Some(503),
            "{:?}",
            out.srs[1]
        );
        assert_eq!(out.srs[1].line, LOG_SRS_FAILED);
        assert!(out.srs[1].detail.contains("503"));
        assert_eq!(out.srs[2].line, LOG_SRS_PENDING);
        assert!(net.src.is_recording());
        // No separate news: the start's answer carries the per-SRS lines.
        assert!(net.srs_events().is_empty());
        // Media for A: both legs, PCMU, to the SRS's ports.
        let rs = out.srs[0].rs;
        let plan = net.plans(rs).last().cloned().unwrap();
        assert!(plan.sending);
        let leg = plan.legs[0].clone().unwrap();
        assert_eq!(leg.format, Format::pcmu());
        assert_eq!(leg.remote.ip(), "192.0.2.10".parse::<IpAddr>().unwrap());
        assert!(plan.legs[1].is_some());
        // C never answers: after Timer B its failure is reported on its own.
        net.run_for(Duration::from_secs(40));
        let late: Vec<_> = net
            .srs_events()
            .into_iter()
            .filter(|r| r.entry.contains(".12"))
            .collect();
        assert_eq!(late.len(), 1, "{late:?}");
        assert_eq!(late[0].line, LOG_SRS_FAILED);
        assert!(net.src.is_recording());
    }

    #[test]
    fn start_timeout_is_the_exact_400_and_cancels_what_is_pending() {
        let mut a = FakeSrs::new(A, InviteMode::Trying);
        a.ignore_cancel = false;
        let mut net = Net::new(vec![a, FakeSrs::new(B, InviteMode::Silent)]);
        let start = net.now;
        let op = net.start(&list(&[A, B]), None);
        net.run_for(Duration::from_millis(1999));
        assert!(net.outcome(op).is_none());
        let out = net.await_outcome(op);
        assert_eq!(net.now - start, Duration::from_secs(2));
        assert_eq!(out.reply, Reply::NoResponse);
        assert_eq!(out.reply.code(), 400);
        assert_eq!(
            out.reply.log_line(),
            "No response from SipRec server, return error to feature server"
        );
        assert!(out
            .reason
            .as_deref()
            .unwrap()
            .contains("sip:192.0.2.10:5060"));
        assert!(
            out.srs.iter().all(|r| r.line == LOG_SRS_CANCELLED),
            "{:?}",
            out.srs
        );
        net.run_for(Duration::from_millis(100));
        // A sent 100 Trying, so it got a CANCEL and answered 487.
        assert_eq!(net.srs[0].methods(), ["INVITE", "CANCEL"]);
        assert!(!net.src.is_recording() && !net.src.is_starting());
        // Not a "duplicate" afterwards.
        let op = net.start(&list(&[A]), None);
        assert!(net.outcome(op).is_none(), "a new start is under way");
        assert!(net.src.is_starting());
    }

    #[test]
    fn a_timed_out_start_never_leaves_a_late_srs_recording() {
        let mut a = FakeSrs::new(A, InviteMode::Delay(Duration::from_secs(3)));
        a.ignore_cancel = true;
        let mut net = Net::new(vec![a]);
        let op = net.start(&list(&[A]), None);
        let out = net.await_outcome(op);
        assert_eq!(out.reply, Reply::NoResponse);
        // The SRS answers 200 at 3 s anyway: ACK, then BYE at once.
        net.run_for(Duration::from_secs(2));
        assert_eq!(net.srs[0].methods(), ["INVITE", "CANCEL", "BYE"]);
        assert_eq!(net.srs[0].acks.len(), 1);
        assert!(!net.src.is_recording());
        assert!(!net.events.iter().any(|e| matches!(e, Event::Media { .. })));
    }

    #[test]
    fn a_late_answer_joins_and_streams() {
        let mut net = Net::new(vec![
            FakeSrs::new(A, InviteMode::Accept),
            FakeSrs::new(B, InviteMode::Delay(Duration::from_millis(1500))),
        ]);
        let op = net.start(&list(&[A, B]), None);
        let out = net.outcome(op).unwrap();
        assert_eq!(out.reply, Reply::Started);
        assert_eq!(out.srs[1].line, LOG_SRS_PENDING);
        let b = out.srs[1].rs;
        assert!(net.plans(b).is_empty());
        net.run_for(Duration::from_secs(2));
        let joined: Vec<_> = net.srs_events().into_iter().filter(|r| r.rs == b).collect();
        assert_eq!(joined.len(), 1);
        assert_eq!(joined[0].line, LOG_ESTABLISHED);
        assert!(net.plans(b).last().unwrap().sending);
        assert_eq!(net.src.established().len(), 2);
    }

    #[test]
    fn a_late_joiner_while_paused_is_paused_at_once() {
        let mut net = Net::new(vec![
            FakeSrs::new(A, InviteMode::Accept),
            FakeSrs::new(B, InviteMode::Delay(Duration::from_millis(1500))),
        ]);
        let op = net.start(&list(&[A, B]), None);
        let b = net.outcome(op).unwrap().srs[1].rs;
        let p = net.pause();
        assert_eq!(net.await_outcome(p).reply, Reply::Paused);
        net.run_for(Duration::from_secs(2));
        // B offered sendonly (the INVITE left before the pause), so it gets a re-INVITE.
        assert_eq!(net.srs[1].methods(), ["INVITE", "INVITE"]);
        assert!(body_text(&net.srs[1].received[1]).contains("a=inactive"));
        assert!(net.plans(b).iter().all(|p| !p.sending));
    }

    #[test]
    fn every_srs_failing_is_503_with_the_reasons_and_leaves_nothing_behind() {
        let mut net = Net::new(vec![
            FakeSrs::new(A, InviteMode::Reject(486)),
            FakeSrs::new(B, InviteMode::Reject(420)),
        ]);
        let op = net.start(&list(&[A, B]), None);
        let out = net.outcome(op).unwrap();
        assert_eq!(out.reply, Reply::StartFailed);
        assert_eq!(
            (out.reply.code(), out.reply.log_line()),
            (503, "Error starting SipRec call recording")
        );
        let reason = out.reason.unwrap();
        assert!(
            reason.contains("sip:192.0.2.10:5060: ") && reason.contains("486 Busy Here"),
            "{reason}"
        );
        assert!(
            reason.contains("420") && reason.contains("does not support SIPREC"),
            "{reason}"
        );
        // A later start is a new start, not a duplicate (the reference implementation's bug).
        let op = net.start(&list(&[A]), None);
        assert_eq!(net.outcome(op).unwrap().reply, Reply::StartFailed);
        net.srs[0].mode = InviteMode::Accept;
        let op = net.start(&list(&[A]), None);
        assert_eq!(net.outcome(op).unwrap().reply, Reply::Started);
    }

    #[test]
    fn invalid_and_missing_server_values() {
        let mut net = Net::new(vec![]);
        let op = net.start("", None);
        let out = net.outcome(op).unwrap();
        assert_eq!(out.reply, Reply::MissingServer);
        assert_eq!(
            (out.reply.code(), out.reply.log_line()),
            (
                400,
                "startCallRecording request is missing X-Srs-Url header"
            )
        );
        let op = net.start("sip:ok.example.com, https://srs.example.com/x", None);
        let out = net.outcome(op).unwrap();
        assert_eq!(out.reply, Reply::StartFailed);
        assert_eq!(out.reply.code(), 503);
        let reason = out.reason.unwrap();
        assert!(
            reason.contains("https://srs.example.com/x") && reason.contains("HTTP URL"),
            "{reason}"
        );
        assert!(!net.src.is_starting());
        assert!(!net
            .events
            .iter()
            .any(|e| matches!(e, Event::Resolve { .. })));
    }

    #[test]
    fn duplicate_start_while_starting_and_while_recording() {
        let mut net = Net::new(vec![FakeSrs::new(
            A,
            InviteMode::Delay(Duration::from_millis(500)),
        )]);
        let first = net.start(&list(&[A]), None);
        let dup = net.start(&list(&[A]), None);
        let out = net.outcome(dup).unwrap();
        assert_eq!(out.reply, Reply::DuplicateStart);
        assert_eq!(
            (out.reply.code(), out.reply.log_line()),
            (
                400,
                "discarding duplicate startCallRecording request for a call"
            )
        );
        assert_eq!(net.await_outcome(first).reply, Reply::Started);
        let dup = net.start(&list(&[A]), None);
        assert_eq!(net.outcome(dup).unwrap().reply, Reply::DuplicateStart);
        // Only one INVITE reached the SRS.
        assert_eq!(net.srs[0].methods(), ["INVITE"]);
    }

    #[test]
    fn unresolvable_name_fails_that_srs() {
        let mut net = Net::new(vec![FakeSrs::new(A, InviteMode::Accept)]);
        let op = net.start("sip:srs.invalid, sip:192.0.2.10:5060", None);
        let out = net.outcome(op).unwrap();
        assert_eq!(out.reply, Reply::Started);
        assert!(
            out.srs[0].detail.contains("cannot resolve srs.invalid"),
            "{:?}",
            out.srs[0]
        );
    }

    // ----- failover and redirects -------------------------------------------------------------

    #[test]
    fn failover_on_503_timeout_and_transport_error() {
        let targets = |addrs: &[&str]| -> Result<Vec<Target>, String> {
            Ok(addrs
                .iter()
                .map(|a| format!("udp:{a}").parse().unwrap())
                .collect())
        };
        // 503 → next target.
        let mut net = Net::new(vec![
            FakeSrs::new(A, InviteMode::Reject(503)),
            FakeSrs::new(B, InviteMode::Accept),
        ]);
        net.resolutions
            .insert("sip:srs.example.com".into(), targets(&[A, B]));
        let op = net.start("sip:srs.example.com", None);
        let out = net.outcome(op).unwrap();
        assert_eq!(out.reply, Reply::Started);
        assert_eq!(out.srs[0].target, Some(format!("udp:{B}").parse().unwrap()));
        // Silence → next target after the target timeout, within the start timeout.
        let mut net = Net::new(vec![
            FakeSrs::new(A, InviteMode::Silent),
            FakeSrs::new(B, InviteMode::Accept),
        ]);
        net.resolutions
            .insert("sip:srs.example.com".into(), targets(&[A, B]));
        let start = net.now;
        let op = net.start("sip:srs.example.com", None);
        let out = net.await_outcome(op);
        assert_eq!(out.reply, Reply::Started);
        assert_eq!(net.now - start, Duration::from_secs(1));
        // Transport error → next target at once.
        let mut net = Net::new(vec![FakeSrs::new(B, InviteMode::Accept)]);
        net.unreachable.push(A.parse().unwrap());
        net.resolutions
            .insert("sip:srs.example.com".into(), targets(&[A, B]));
        let op = net.start("sip:srs.example.com", None);
        assert_eq!(net.outcome(op).unwrap().reply, Reply::Started);
        // Every target failing: 503 with the history.
        let mut net = Net::new(vec![FakeSrs::new(B, InviteMode::Reject(503))]);
        net.unreachable.push(A.parse().unwrap());
        net.resolutions
            .insert("sip:srs.example.com".into(), targets(&[A, B]));
        let op = net.start("sip:srs.example.com", None);
        let out = net.outcome(op).unwrap();
        assert_eq!(out.reply, Reply::StartFailed);
        let reason = out.reason.unwrap();
        assert!(
            reason.contains("connection refused") && reason.contains("503"),
            "{reason}"
        );
    }

    #[test]
    fn a_large_invite_goes_over_tcp_unless_the_uri_asks_for_udp() {
        let mut cfg = config();
        cfg.large_requests_over_tcp = true;
        // No transport in the URI: the INVITE (over 1300 bytes) goes over TCP.
        let mut net = Net::with_config(vec![FakeSrs::new(A, InviteMode::Accept)], cfg.clone());
        let op = net.start("sip:192.0.2.10", None);
        let out = net.outcome(op).unwrap();
        assert_eq!(out.reply, Reply::Started);
        assert_eq!(out.srs[0].target, Some(format!("tcp:{A}").parse().unwrap()));
        let inv = &net.srs[0].received[0];
        let len = message::print_message(&SipMessage::Request(inv.clone())).len();
        assert!(len > UDP_SIZE_LIMIT, "{len}");
        assert!(header_value(&inv.headers, "Via")
            .unwrap()
            .starts_with("SIP/2.0/TCP "));
        // TCP refused: UDP to the same address, as §18.1.1 says.
        let mut net = Net::with_config(vec![FakeSrs::new(A, InviteMode::Accept)], cfg.clone());
        net.refuse_tcp.push(A.parse().unwrap());
        let op = net.start("sip:192.0.2.10", None);
        let out = net.outcome(op).unwrap();
        assert_eq!(out.reply, Reply::Started);
        assert_eq!(out.srs[0].target, Some(format!("udp:{A}").parse().unwrap()));
        // An explicit transport=udp is obeyed.
        let mut net = Net::with_config(vec![FakeSrs::new(A, InviteMode::Accept)], cfg.clone());
        let op = net.start("sip:192.0.2.10;transport=udp", None);
        let out = net.outcome(op).unwrap();
        assert_eq!(out.srs[0].target, Some(format!("udp:{A}").parse().unwrap()));
        // Without a local TCP transport there is nothing to switch to.
        cfg.tcp = None;
        let mut net = Net::with_config(vec![FakeSrs::new(A, InviteMode::Accept)], cfg);
        let op = net.start("sip:192.0.2.10", None);
        let out = net.outcome(op).unwrap();
        assert_eq!(out.srs[0].target, Some(format!("udp:{A}").parse().unwrap()));
    }

    #[test]
    fn redirect_to_a_sip_contact() {
        let mut net = Net::new(vec![
            FakeSrs::new(A, InviteMode::Redirect(format!("sip:srs@{B}"))),
            FakeSrs::new(B, InviteMode::Accept),
        ]);
        let op = net.start(&list(&[A]), None);
        let out = net.outcome(op).unwrap();
        assert_eq!(out.reply, Reply::Started);
        assert_eq!(out.srs[0].target.unwrap().addr, B.parse().unwrap());
        assert_eq!(
            net.srs[1].received[0].uri.to_string(),
            format!("sip:srs@{B}")
        );
        // A redirect to something else fails that SRS.
        let mut net = Net::new(vec![FakeSrs::new(
            A,
            InviteMode::Redirect("https://x.example".into()),
        )]);
        let op = net.start(&list(&[A]), None);
        let out = net.outcome(op).unwrap();
        assert_eq!(out.reply, Reply::StartFailed);
        assert!(out
            .reason
            .unwrap()
            .contains("redirect without a sip:/sips: Contact"));
    }

    // ----- stop -------------------------------------------------------------------------------

    #[test]
    fn stop_sends_bye_and_cancels_what_is_pending() {
        let mut net = Net::new(vec![
            FakeSrs::new(A, InviteMode::Accept),
            FakeSrs::new(B, InviteMode::Trying),
        ]);
        let op = net.start(&list(&[A, B]), None);
        let out = net.outcome(op).unwrap();
        let (a, b) = (out.srs[0].rs, out.srs[1].rs);
        let stop = net.stop();
        let out = net.await_outcome(stop);
        assert_eq!(out.reply, Reply::Stopped);
        assert_eq!(out.reply.code(), 200);
        let ra = out.srs.iter().find(|r| r.rs == a).unwrap();
        assert!(
            ra.ok && ra.status == Some(200) && ra.line == LOG_SRS_STOPPED,
            "{ra:?}"
        );
        let rb = out.srs.iter().find(|r| r.rs == b).unwrap();
        assert!(
            rb.ok && rb.status == Some(487) && rb.line == LOG_SRS_CANCELLED,
            "{rb:?}"
        );
        assert_eq!(net.srs[0].methods(), ["INVITE", "BYE"]);
        assert_eq!(net.srs[1].methods(), ["INVITE", "CANCEL"]);
        assert!(net.events.contains(&Event::MediaStop { rs: a }));
        assert!(net.src.is_quiet());
        // Stop again: not recording.
        let again = net.stop();
        let out = net.outcome(again).unwrap();
        assert_eq!(out.reply, Reply::NotRecording);
        assert_eq!(
            (out.reply.code(), out.reply.log_line()),
            (
                400,
                "discarding stopCallRecording request because we are not recording"
            )
        );
    }

    #[test]
    fn stop_during_start_answers_the_start_and_cancels() {
        let mut net = Net::new(vec![FakeSrs::new(A, InviteMode::Trying)]);
        let op = net.start(&list(&[A]), None);
        let stop = net.stop();
        assert_eq!(net.outcome(op).unwrap().reply, Reply::StartFailed);
        let out = net.await_outcome(stop);
        assert_eq!(out.reply, Reply::Stopped);
        assert_eq!(out.srs[0].status, Some(487));
        assert_eq!(net.srs[0].methods(), ["INVITE", "CANCEL"]);
    }

    #[test]
    fn stop_with_an_unanswered_bye_is_reported_after_the_request_timeout() {
        let mut net = Net::new(vec![FakeSrs::new(A, InviteMode::Accept)]);
        let op = net.start(&list(&[A]), None);
        net.outcome(op).unwrap();
        net.srs[0].mode = InviteMode::Silent; // the SRS dies
        let now = net.now;
        let stop = net.stop();
        let out = net.await_outcome(stop);
        assert_eq!(out.reply, Reply::Stopped);
        assert!(!out.srs[0].ok, "{:?}", out.srs[0]);
        assert_eq!(out.srs[0].line, LOG_SRS_REQUEST_FAILED);
        assert!(net.now - now <= Duration::from_secs(8));
    }

    // ----- the SRS's own requests -------------------------------------------------------------

    #[test]
    fn srs_bye_ends_that_session_only() {
        let mut net = Net::new(vec![
            FakeSrs::new(A, InviteMode::Accept),
            FakeSrs::new(B, InviteMode::Accept),
        ]);
        let op = net.start(&list(&[A, B]), None);
        let out = net.outcome(op).unwrap();
        let (a, b) = (out.srs[0].rs, out.srs[1].rs);
        let now = net.now;
        net.srs(0).send(now, Method::Bye, None);
        net.settle();
        assert_eq!(net.srs[0].responses.last().unwrap().status_code.code(), 200);
        let ended: Vec<_> = net
            .srs_events()
            .into_iter()
            .filter(|r| r.line == LOG_SRS_ENDED)
            .collect();
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].rs, a);
        assert!(net.events.contains(&Event::MediaStop { rs: a }));
        assert!(net.src.is_recording());
        assert_eq!(net.src.established(), vec![b]);
        // Pause reaches only B.
        let p = net.pause();
        let out = net.await_outcome(p);
        assert_eq!(out.reply, Reply::Paused);
        assert_eq!(out.srs.len(), 1);
        // B ends too: the recording is over; stop is "not recording"; start is not a duplicate.
        let now = net.now;
        net.srs(1).send(now, Method::Bye, None);
        net.settle();
        assert!(net
            .events
            .iter()
            .any(|e| matches!(e, Event::RecordingEnded { .. })));
        let s = net.stop();
        assert_eq!(net.outcome(s).unwrap().reply, Reply::NotRecording);
        let again = net.start(&list(&[A]), None);
        assert_eq!(net.outcome(again).unwrap().reply, Reply::Started);
    }

    #[test]
    fn snapshot_request_gets_the_complete_metadata_in_a_new_transaction() {
        let mut net = Net::new(vec![FakeSrs::new(A, InviteMode::Accept)]);
        let op = net.start(&list(&[A]), Some("rec-7"));
        net.outcome(op).unwrap();
        let now = net.now;
        let req = rs_metadata::snapshot_request_xml("SRS lost its state");
        net.srs(0).send(
            now,
            Method::Update,
            Some(("application/rs-metadata-request".into(), req.into_bytes())),
        );
        net.settle();
        // 200 to the UPDATE, then our own UPDATE with the complete document.
        let codes: Vec<u16> = net.srs[0]
            .responses
            .iter()
            .map(|r| r.status_code.code())
            .collect();
        assert_eq!(codes, [200]);
        assert_eq!(net.srs[0].methods(), ["INVITE", "UPDATE"]);
        let ours = net.srs[0].received.last().unwrap();
        assert_eq!(
            header_value(&ours.headers, "Content-Type").as_deref(),
            Some("application/rs-metadata+xml")
        );
        let Ok(rs_metadata::Document::Recording(rec)) = rs_metadata::parse(&ours.body) else {
            panic!()
        };
        assert_eq!(rec.data_mode, DataMode::Complete);
        assert_eq!(rec.recording_id().as_deref(), Some("rec-7"));
        assert_eq!(rec.participants.len(), 2);

        // Without UPDATE support, an offerless re-INVITE carrying the request: our 200 holds an
        // SDP offer, the ACK the answer, then a re-INVITE with SDP + complete metadata.
        let mut srs = FakeSrs::new(A, InviteMode::Accept);
        srs.allow_update = false;
        let mut net = Net::new(vec![srs]);
        let op = net.start(&list(&[A]), None);
        net.outcome(op).unwrap();
        let now = net.now;
        let req = rs_metadata::snapshot_request_xml("audit");
        net.srs(0).send(
            now,
            Method::Invite,
            Some(("application/rs-metadata-request".into(), req.into_bytes())),
        );
        net.settle();
        let ok = net.srs[0].responses.last().unwrap().clone();
        assert_eq!(ok.status_code.code(), 200);
        assert!(String::from_utf8_lossy(&ok.body).contains("a=sendonly"));
        // The fake ACKs the 2xx (without an answer; the SDP stays as it was).
        let d = net.srs[0].dialogs.pop().unwrap();
        let ack = d.make_ack(message::cseq(&ok.headers).unwrap().0);
        net.srs[0].dialogs.push(d);
        let peer = net.srs[0].src_peer();
        let now = net.now;
        net.srs[0].layer.send_request(now, peer, ack);
        net.settle();
        let last = net.srs[0].received.last().unwrap();
        assert_eq!(last.method, Method::Invite);
        let text = body_text(last);
        assert!(
            text.contains("application/rs-metadata+xml")
                && text.contains("<datamode>complete</datamode>"),
            "{text}"
        );
    }

    #[test]
    fn srs_reinvite_with_an_offer_is_answered_and_moves_the_media() {
        let mut net = Net::new(vec![FakeSrs::new(A, InviteMode::Accept)]);
        let op = net.start(&list(&[A]), None);
        let rs = net.outcome(op).unwrap().srs[0].rs;
        let offer = "v=0\r\no=srs 1 9 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\nm=audio 31000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=recvonly\r\nm=audio 31002 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=recvonly\r\n";
        let now = net.now;
        net.srs(0).send(
            now,
            Method::Update,
            Some(("application/sdp".into(), offer.into())),
        );
        net.settle();
        let ok = net.srs[0].responses.last().unwrap();
        let answer = String::from_utf8_lossy(&ok.body).to_string();
        assert_eq!(answer.matches("a=sendonly").count(), 2, "{answer}");
        assert!(answer.contains("m=audio 40000 RTP/AVP 8\r\n"), "{answer}");
        let plan = net.plans(rs).last().cloned().unwrap();
        let leg = plan.legs[1].clone().unwrap();
        assert_eq!(leg.remote, "192.0.2.20:31002".parse().unwrap());
        assert_eq!(leg.format, Format::pcma());
        assert!(plan.sending);
        // Unknown dialogs get 481; a new INVITE to the SRC gets 403.
        let bye = "BYE sip:src@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKx\r\nFrom: <sip:srs@x>;tag=a\r\nTo: <sip:src@y>;tag=nope\r\nCall-ID: unknown\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n";
        let from = Peer {
            transport: Transport::Udp,
            addr: A.parse().unwrap(),
        };
        let now = net.now;
        net.src.handle_bytes(now, from, bye.as_bytes());
        let t = net.src.poll_transmit().unwrap();
        assert!(t.payload.starts_with(b"SIP/2.0 481 "));
    }

    #[test]
    fn glare_491_backs_off_and_retries() {
        let mut a = FakeSrs::new(A, InviteMode::Accept);
        a.glare = 1;
        let mut net = Net::new(vec![a]);
        let op = net.start(&list(&[A]), None);
        net.outcome(op).unwrap();
        let paused_at = net.now;
        let p = net.src.pause(paused_at);
        let out = net.await_outcome(p);
        assert_eq!(out.reply, Reply::Paused);
        let waited = net.now - paused_at;
        assert!(
            waited >= Duration::from_millis(2100) && waited <= Duration::from_millis(4100),
            "RFC 3261 §14.1 back-off for the Call-ID owner: {waited:?}"
        );
        assert_eq!(net.srs[0].methods(), ["INVITE", "INVITE", "INVITE"]);
        // Glare the other way: the SRS re-INVITEs while our re-INVITE is pending → 491.
        let now = net.now;
        let r = net.src.resume(now);
        // Our re-INVITE is in flight (not yet delivered): inject the SRS's before settling.
        net.srs(0).send(now, Method::Invite, None);
        // Deliver the SRS's request first.
        while let Some(t) = net.srs[0].layer.poll_transmit() {
            let from = Peer {
                transport: Transport::Udp,
                addr: A.parse().unwrap(),
            };
            net.src.handle_bytes(now, from, &t.payload);
        }
        net.settle();
        assert!(net.srs[0]
            .responses
            .iter()
            .any(|r| r.status_code.code() == 491));
        assert_eq!(net.await_outcome(r).reply, Reply::Resumed);
    }

    // ----- pause and resume -------------------------------------------------------------------

    #[test]
    fn pause_and_resume_reinvite_with_directions_and_partial_metadata() {
        let mut net = Net::new(vec![FakeSrs::new(A, InviteMode::Accept)]);
        let op = net.start(&list(&[A]), None);
        let rs = net.outcome(op).unwrap().srs[0].rs;
        let p = net.pause();
        // Media stops at once.
        assert!(!net.plans(rs).last().unwrap().sending);
        let out = net.await_outcome(p);
        assert_eq!(out.reply, Reply::Paused);
        assert_eq!(out.srs[0].line, LOG_SRS_PAUSED);
        assert_eq!(out.srs[0].status, Some(200));
        let reinv = net.srs[0].received[1].clone();
        assert_eq!(reinv.method, Method::Invite);
        let ct = header_value(&reinv.headers, "Content-Type").unwrap();
        let mp = siprec_sip::multipart::parse(&ct, &reinv.body).unwrap();
        let sdp =
            String::from_utf8(mp.part_by_type("application/sdp").unwrap().body.clone()).unwrap();
        assert_eq!(sdp.matches("a=inactive").count(), 2, "{sdp}");
        assert!(sdp.contains(" 2 IN IP4"), "o= version bumped: {sdp}");
        let md = String::from_utf8(
            mp.part_by_type("application/rs-metadata+xml")
                .unwrap()
                .body
                .clone(),
        )
        .unwrap();
        assert!(
            md.contains("<datamode>partial</datamode>") && md.contains("disassociate-time"),
            "{md}"
        );
        assert!(net.src.is_paused());
        // Invalid: pause twice.
        let again = net.pause();
        let out = net.outcome(again).unwrap();
        assert_eq!(
            (out.reply.code(), out.reply.log_line()),
            (400, "discarding invalid pauseCallRecording request")
        );
        // Resume.
        let now = net.now;
        let r = net.src.resume(now);
        let evs: Vec<Event> = std::iter::from_fn(|| net.src.poll_event()).collect();
        assert!(
            !evs.iter()
                .any(|e| matches!(e, Event::Media { plan, .. } if plan.sending)),
            "media waits for the SRS's 200"
        );
        net.events.extend(evs);
        let out = net.await_outcome(r);
        assert_eq!(out.reply, Reply::Resumed);
        assert!(net.plans(rs).last().unwrap().sending);
        let sdp = body_text(&net.srs[0].received[2]);
        assert_eq!(sdp.matches("a=sendonly").count(), 2);
        assert!(sdp.contains(" 3 IN IP4"));
        assert!(sdp.contains("<associate-time>"));
        // Invalid: resume when not paused.
        let again = net.resume();
        let out = net.outcome(again).unwrap();
        assert_eq!(
            (out.reply.code(), out.reply.log_line()),
            (400, "discarding invalid resumeCallRecording request")
        );
    }

    #[test]
    fn pause_and_resume_when_not_recording_are_invalid() {
        let mut net = Net::new(vec![FakeSrs::new(A, InviteMode::Trying)]);
        let p = net.pause();
        assert_eq!(net.outcome(p).unwrap().reply, Reply::InvalidPause);
        let r = net.resume();
        assert_eq!(net.outcome(r).unwrap().reply, Reply::InvalidResume);
        // While starting, too.
        net.start(&list(&[A]), None);
        let p = net.pause();
        assert_eq!(net.outcome(p).unwrap().reply, Reply::InvalidPause);
        assert_eq!(net.srs[0].methods(), ["INVITE"]);
    }

    #[test]
    fn a_rejected_pause_keeps_media_off_and_reports_503() {
        let mut net = Net::new(vec![FakeSrs::new(A, InviteMode::Accept)]);
        let op = net.start(&list(&[A]), None);
        let rs = net.outcome(op).unwrap().srs[0].rs;
        net.srs[0].reinvite_code = Some(488);
        let p = net.pause();
        let out = net.await_outcome(p);
        assert_eq!(out.reply, Reply::PauseFailed);
        assert_eq!(
            (out.reply.code(), out.reply.log_line()),
            (503, LOG_PAUSE_FAILED)
        );
        assert_eq!(out.srs[0].status, Some(488));
        assert!(out.reason.unwrap().contains("488"));
        assert!(
            !net.plans(rs).last().unwrap().sending,
            "paused locally all the same"
        );
        assert!(net.src.is_paused());
        // No endless retries of the refused change.
        net.run_for(Duration::from_secs(10));
        assert_eq!(net.srs[0].methods(), ["INVITE", "INVITE"]);
        // The SRS never left sendonly: resuming needs no request.
        let r = net.resume();
        let out = net.await_outcome(r);
        assert_eq!(out.reply, Reply::Resumed);
        assert!(net.plans(rs).last().unwrap().sending);
        assert_eq!(net.srs[0].methods(), ["INVITE", "INVITE"]);
        // A 481 means the dialog is gone: that session ends.
        net.srs[0].reinvite_code = Some(481);
        let p = net.pause();
        let out = net.await_outcome(p);
        assert_eq!(out.reply, Reply::PauseFailed);
        assert_eq!(out.srs[0].line, LOG_SRS_ENDED);
        assert!(net.events.contains(&Event::MediaStop { rs }));
        assert!(!net.src.is_recording());
    }

    // ----- session timers ---------------------------------------------------------------------

    #[test]
    fn session_timer_refresh_when_the_srs_asks() {
        let mut a = FakeSrs::new(A, InviteMode::Accept);
        a.session_expires = Some("90;refresher=uac");
        let mut net = Net::new(vec![a]);
        let op = net.start(&list(&[A]), None);
        net.outcome(op).unwrap();
        net.run_for(Duration::from_millis(44_900));
        assert_eq!(net.srs[0].methods(), ["INVITE"]);
        net.run_for(Duration::from_millis(200));
        assert_eq!(net.srs[0].methods(), ["INVITE", "UPDATE"]);
        let upd = net.srs[0].received.last().unwrap();
        assert_eq!(
            header_value(&upd.headers, "Session-Expires").as_deref(),
            Some("90;refresher=uac")
        );
        net.run_for(Duration::from_secs(46));
        assert_eq!(net.srs[0].methods(), ["INVITE", "UPDATE", "UPDATE"]);
        // When the SRS refreshes and stops doing so, we end the session.
        let mut a = FakeSrs::new(A, InviteMode::Accept);
        a.session_expires = Some("90;refresher=uas");
        let mut net = Net::new(vec![a]);
        let op = net.start(&list(&[A]), None);
        net.outcome(op).unwrap();
        net.run_for(Duration::from_secs(61));
        assert_eq!(net.srs[0].methods(), ["INVITE", "BYE"]);
        assert!(net
            .events
            .iter()
            .any(|e| matches!(e, Event::RecordingEnded { .. })));
    }

    #[test]
    fn activity_names_and_replies() {
        for a in [
            Activity::Start,
            Activity::Stop,
            Activity::Pause,
            Activity::Resume,
        ] {
            assert_eq!(a.as_str().parse::<Activity>(), Ok(a));
        }
        assert!("record".parse::<Activity>().is_err());
        assert_eq!(
            Reply::NoResponse.to_string(),
            "400 No response from SipRec server, return error to feature server"
        );
        assert!(Reply::Started.is_success() && !Reply::StartFailed.is_success());
    }

    #[test]
    fn call_context_is_checked() {
        let now = t0();
        let mut c = CallContext::example();
        c.callee.aor = " ".into();
        assert!(SrcCore::new(config(), c, now, SystemTime::UNIX_EPOCH).is_err());
        for (n, v) in [
            ("Via", "x"),
            ("X Bad", "x"),
            ("X-Ok", "a\r\nInjected: 1"),
            ("c", "text/plain"),
        ] {
            let mut c = CallContext::example();
            c.extra_headers = vec![(n.into(), v.into())];
            assert!(
                SrcCore::new(config(), c, now, SystemTime::UNIX_EPOCH).is_err(),
                "{n}"
            );
        }
    }

    #[test]
    fn ipv6_srs_gets_bracketed_request_uris() {
        let now = t0();
        let mut src = SrcCore::new(config(), CallContext::example(), now, UNIX_EPOCH).unwrap();
        src.start(now, "sip:[2001:db8::10]:5070", None);
        let Some(Event::Resolve { rs, uri }) = src.poll_event() else {
            panic!()
        };
        assert_eq!(uri.host, Host::Ip("2001:db8::10".parse().unwrap()));
        let target: Target = "udp:[2001:db8::10]:5070".parse().unwrap();
        src.resolved(now, rs, Ok(vec![target]));
        let t = src.poll_transmit().unwrap();
        assert_eq!(t.peer, Peer::from(target));
        let text = String::from_utf8(t.payload.clone()).unwrap();
        assert!(
            text.starts_with("INVITE sip:[2001:db8::10]:5070 SIP/2.0\r\n"),
            "{text}"
        );
        assert!(
            text.contains("\r\nTo: <sip:[2001:db8::10]:5070>\r\n"),
            "{text}"
        );
        // A 200 from the SRS with an IPv6 Contact (which rsip cannot parse): the dialog still
        // works and in-dialog requests carry the bracketed URI.
        let get = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .unwrap()
                .to_string()
        };
        let sdp = "v=0\r\no=srs 1 1 IN IP6 2001:db8::10\r\ns=-\r\nc=IN IP6 2001:db8::10\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0\r\na=recvonly\r\nm=audio 30002 RTP/AVP 0\r\na=recvonly\r\n";
        let resp = format!(
            "SIP/2.0 200 OK\r\n{}\r\n{}\r\n{};tag=srs1\r\n{}\r\n{}\r\nContact: <sip:srs@[2001:db8::10]:5070>;+sip.srs\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            get("Via:"),
            get("From:"),
            get("To:"),
            get("Call-ID:"),
            get("CSeq:"),
            sdp.len()
        );
        src.handle_bytes(now, target.into(), resp.as_bytes());
        let ack = String::from_utf8(src.poll_transmit().unwrap().payload).unwrap();
        assert!(
            ack.starts_with("ACK sip:srs@[2001:db8::10]:5070 SIP/2.0\r\n"),
            "{ack}"
        );
        let plan = std::iter::from_fn(|| src.poll_event())
            .find_map(|e| match e {
                Event::Media { plan, .. } => Some(plan),
                _ => None,
            })
            .unwrap();
        assert_eq!(
            plan.legs[1].as_ref().unwrap().remote,
            "[2001:db8::10]:30002".parse().unwrap()
        );
        src.stop(now);
        let bye = String::from_utf8(src.poll_transmit().unwrap().payload).unwrap();
        assert!(
            bye.starts_with("BYE sip:srs@[2001:db8::10]:5070 SIP/2.0\r\n"),
            "{bye}"
        );
    }
}
