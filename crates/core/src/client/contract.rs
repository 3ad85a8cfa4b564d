//! The node's contract: replies and log lines.

use std::fmt;
use std::str::FromStr;

use super::server_uri::Target;

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

/// An activity name other than start, stop, pause, resume (the input is wrong).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown activity {0:?}: expected start, stop, pause or resume")]
pub struct UnknownActivity(pub String);

impl FromStr for Activity {
    type Err = UnknownActivity;
    fn from_str(s: &str) -> Result<Self, UnknownActivity> {
        match s.trim().to_ascii_lowercase().as_str() {
            "start" => Ok(Activity::Start),
            "stop" => Ok(Activity::Stop),
            "pause" => Ok(Activity::Pause),
            "resume" => Ok(Activity::Resume),
            other => Err(UnknownActivity(other.to_string())),
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

/// Identifies one activity request of a [`SrcCore`](super::SrcCore).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(pub u64);

/// Identifies one recording session (one SRS URI of one start) of a [`SrcCore`](super::SrcCore).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RsId(pub u64);

impl fmt::Display for RsId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rs-{}", self.0)
    }
}

/// What happened with one SRS during an activity (or on its own, in
/// [`Event::Srs`](super::Event::Srs)).
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
