//! `recording.json`: what a published recording is, in a form people and tools can read.

use serde::{Deserialize, Serialize};

/// The manifest of one recording, written as `recording.json` next to `audio.wav`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Manifest {
    /// Folder name: the Recording ID, else the RS session id, else the Call-ID (sanitised).
    pub recording_key: String,
    /// Where the key came from: `recording_id`, `session_id` or `call_id`.
    pub recording_key_source: String,
    /// The Recording ID as the metadata carried it (unsanitised), if any.
    pub recording_id: Option<String>,
    /// SIP Call-ID of the recording session dialog.
    pub call_id: String,
    /// `false` when the recording was recovered after a crash.
    pub complete: bool,
    /// Identifier of the srs-server instance that recorded it.
    pub instance_id: String,
    /// Recorded-session ids from the metadata (`<session session_id=…>`).
    pub session_ids: Vec<String>,
    /// SIP Session-IDs / Call-IDs of the recorded call (`<sipSessionID>`).
    pub sip_session_ids: Vec<String>,
    /// Participants from the metadata.
    pub participants: Vec<ParticipantInfo>,
    /// Which participant and streams went to which channel, and why.
    pub channels: ChannelMapping,
    /// One entry per SDP m-line of the recording session.
    pub streams: Vec<StreamInfo>,
    /// Start of the recording (UTC, RFC 3339).
    pub start_time: String,
    /// End of the recording (UTC, RFC 3339).
    pub stop_time: String,
    /// Pauses, in seconds from the start of the audio.
    pub pauses: Vec<PauseInterval>,
    /// Audio sample rate in Hz.
    pub sample_rate: u32,
    /// Length of `audio.wav` in samples per channel.
    pub duration_samples: u64,
    /// Length of `audio.wav` in seconds.
    pub duration_seconds: f64,
    /// What ended the recording: `bye-from-src`, `bye-from-srs`, `media-timeout`,
    /// `cancel`, `ack-timeout`, `shutdown`, `recovered`.
    pub ended_by: String,
    /// Names of the metadata documents stored under `metadata/`, in arrival order.
    pub metadata_documents: Vec<String>,
    /// Problems found in the metadata documents (they are stored as received all the same).
    pub metadata_errors: Vec<String>,
}

/// A participant of the recorded call.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ParticipantInfo {
    /// `participant_id` from the metadata.
    pub id: String,
    /// Display name, if any.
    pub name: Option<String>,
    /// Address of record, if any.
    pub aor: Option<String>,
}

/// Left/right mapping of the stereo file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ChannelMapping {
    /// Channel 0.
    pub left: ChannelInfo,
    /// Channel 1.
    pub right: ChannelInfo,
    /// Why this mapping: e.g. `participantstreamassoc send -> stream label -> m-line`,
    /// or `m-line order (no usable metadata)`.
    pub reason: String,
}

/// One channel of the stereo file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ChannelInfo {
    /// Participant ids heard on this channel.
    pub participants: Vec<String>,
    /// m-line indexes (0-based) mixed into this channel.
    pub streams: Vec<usize>,
}

/// One recorded stream (SDP m-line).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct StreamInfo {
    /// m-line index, 0-based.
    pub index: usize,
    /// `a=label` value, if any.
    pub label: Option<String>,
    /// Metadata `stream_id` bound to this label, if any.
    pub stream_id: Option<String>,
    /// Channel (0 left, 1 right), `None` when the stream was declined.
    pub channel: Option<u8>,
    /// Codecs used, e.g. `["PCMU/8000"]` (several after a codec change).
    pub codecs: Vec<String>,
    /// RTP packets accepted.
    pub packets_received: u64,
    /// RTP packets lost (RFC 3550 A.3).
    pub packets_lost: u64,
    /// Duplicate RTP packets dropped.
    pub packets_duplicated: u64,
    /// RTP packets that arrived out of order (and were placed correctly).
    pub packets_reordered: u64,
    /// Packets that came too late for the jitter window and were dropped.
    pub packets_late: u64,
    /// SSRC changes seen.
    pub ssrc_changes: u32,
    /// RTP packets from a source other than the stream's (the latched one, or the SDP's
    /// address without latching), dropped.
    pub packets_foreign: u64,
    /// The stream was SRTP (SDES keys).
    pub srtp: bool,
    /// SRTP packets that failed authentication or were replays, dropped.
    pub packets_auth_failed: u64,
}

/// A pause, in seconds from the start of the audio.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct PauseInterval {
    /// Start, seconds.
    pub start: f64,
    /// End, seconds.
    pub end: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trips_and_tolerates_missing_fields() {
        let m = Manifest {
            recording_key: "k".into(),
            complete: true,
            pauses: vec![PauseInterval {
                start: 1.0,
                end: 2.5,
            }],
            ..Manifest::default()
        };
        let s = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<Manifest>(&s).unwrap(), m);
        let partial: Manifest = serde_json::from_str(r#"{"recording_key":"x"}"#).unwrap();
        assert_eq!(partial.recording_key, "x");
    }
}
