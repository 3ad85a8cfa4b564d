//! The SRC side: the complete document describing one recorded two-party call.

use crate::model::{
    DataMode, Extension, Name, NameId, Participant, ParticipantSessionAssoc,
    ParticipantStreamAssoc, Recording, Session, SessionRecordingAssoc, Stream,
};
use crate::Error;

/// Namespace of this project's own extension elements (`<recordingid>`, `<callsid>`, …).
pub const EXT_NS: &str = "urn:x-siprec-rs:ext";

/// One party of a recorded call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallParty {
    /// `participant_id` (the RFC's convention: base64 of 16 random bytes).
    pub participant_id: String,
    /// `stream_id` of the stream this party sends.
    pub stream_id: String,
    /// Display name, if known (an empty name is left out).
    pub name: Option<String>,
    /// Address of record, e.g. `sip:+15551230000@example.com`.
    pub aor: String,
}

/// Everything needed to describe one recorded call; [`CallMetadata::build`] turns it into the
/// complete document an SRC sends in its recording-session INVITE.
///
/// The crate has no clock and no randomness: the caller generates the ids (base64 of 16
/// random bytes is the RFC's convention) and formats `start_time` (an `xs:dateTime`, e.g.
/// `2024-05-01T10:00:00Z`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallMetadata {
    /// `session_id` of the communication session (the call).
    pub session_id: String,
    /// `<sipSessionID>` values (RFC 7989 Session-ID of the call), possibly none.
    pub sip_session_ids: Vec<String>,
    /// Start of the call; also used as every `associate-time`.
    pub start_time: String,
    /// Participant 1, the caller: sends the stream labelled `1`, receives `2`.
    pub caller: CallParty,
    /// Participant 2, the callee: sends the stream labelled `2`, receives `1`.
    pub callee: CallParty,
    /// Recording ID (`X-Srs-Recording-ID`): `<recordingid>` extension, left out when `None`
    /// or blank (never sent as a placeholder text).
    pub recording_id: Option<String>,
    /// `X-Call-Sid`: `<callsid>` extension when present.
    pub call_sid: Option<String>,
    /// `X-Account-Sid`: `<accountsid>` extension when present.
    pub account_sid: Option<String>,
    /// `X-Application-Sid`: `<applicationsid>` extension when present.
    pub application_sid: Option<String>,
}

/// SDP `a=label` of the caller's stream (first m-line).
pub const CALLER_LABEL: &str = "1";
/// SDP `a=label` of the callee's stream (second m-line).
pub const CALLEE_LABEL: &str = "2";

impl CallMetadata {
    /// Builds the complete document: one `<session>` (sipSessionIDs, start-time), two
    /// `<participant>`s (`<nameID aor>` with the name), two `<stream>`s labelled
    /// [`CALLER_LABEL`] and [`CALLEE_LABEL`], a `<sessionrecordingassoc>`, one
    /// `<participantsessionassoc>` per party, and one `<participantstreamassoc>` per party
    /// (the caller sends stream 1 and receives stream 2, and vice versa), all with
    /// `associate-time` = `start_time`; then the [`EXT_NS`] extensions that were given.
    ///
    /// # Errors
    /// [`Error::InvalidCallMetadata`] when an id, the start time or an AOR is blank, or when
    /// the two participants (or the two streams) share an id.
    pub fn build(&self) -> Result<Recording, Error> {
        let blank = |s: &str| s.trim().is_empty();
        if blank(&self.session_id) {
            return Err(Error::InvalidCallMetadata("empty session id"));
        }
        if blank(&self.start_time) {
            return Err(Error::InvalidCallMetadata("empty start time"));
        }
        for p in [&self.caller, &self.callee] {
            if blank(&p.participant_id) {
                return Err(Error::InvalidCallMetadata("empty participant id"));
            }
            if blank(&p.stream_id) {
                return Err(Error::InvalidCallMetadata("empty stream id"));
            }
            if blank(&p.aor) {
                return Err(Error::InvalidCallMetadata("empty participant aor"));
            }
        }
        if self.caller.participant_id.trim() == self.callee.participant_id.trim() {
            return Err(Error::InvalidCallMetadata(
                "both participants have the same id",
            ));
        }
        if self.caller.stream_id.trim() == self.callee.stream_id.trim() {
            return Err(Error::InvalidCallMetadata("both streams have the same id"));
        }

        let sid = self.session_id.trim().to_string();
        let at = Some(self.start_time.trim().to_string());
        let parties = [(&self.caller, CALLER_LABEL), (&self.callee, CALLEE_LABEL)];
        let mut rec = Recording {
            data_mode: DataMode::Complete,
            sessions: vec![Session {
                session_id: sid.clone(),
                sip_session_ids: self
                    .sip_session_ids
                    .iter()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect(),
                start_time: at.clone(),
                ..Session::default()
            }],
            session_recording_assocs: vec![SessionRecordingAssoc {
                session_id: sid.clone(),
                associate_time: at.clone(),
                disassociate_time: None,
            }],
            ..Recording::default()
        };
        for (i, (p, label)) in parties.iter().enumerate() {
            let pid = p.participant_id.trim().to_string();
            let other = &parties[1 - i].0;
            rec.participants.push(Participant {
                participant_id: pid.clone(),
                name_ids: vec![NameId {
                    aor: Some(p.aor.trim().to_string()),
                    names: p
                        .name
                        .as_deref()
                        .map(str::trim)
                        .filter(|n| !n.is_empty())
                        .map(|n| Name {
                            lang: None,
                            value: n.to_string(),
                        })
                        .into_iter()
                        .collect(),
                }],
                ..Participant::default()
            });
            rec.streams.push(Stream {
                stream_id: p.stream_id.trim().to_string(),
                session_id: Some(sid.clone()),
                label: Some((*label).to_string()),
                extensions: Vec::new(),
            });
            rec.participant_session_assocs
                .push(ParticipantSessionAssoc {
                    participant_id: pid.clone(),
                    session_id: sid.clone(),
                    associate_time: at.clone(),
                    ..ParticipantSessionAssoc::default()
                });
            rec.participant_stream_assocs.push(ParticipantStreamAssoc {
                participant_id: pid,
                send: vec![p.stream_id.trim().to_string()],
                recv: vec![other.stream_id.trim().to_string()],
                associate_time: at.clone(),
                disassociate_time: None,
            });
        }
        let exts = [
            ("recordingid", &self.recording_id),
            ("callsid", &self.call_sid),
            ("accountsid", &self.account_sid),
            ("applicationsid", &self.application_sid),
        ];
        for (name, value) in exts {
            if let Some(v) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                rec.extensions
                    .push(Extension::text_element(EXT_NS, name, v));
            }
        }
        Ok(rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse, Document};

    fn call() -> CallMetadata {
        CallMetadata {
            session_id: "B5Xic2dRYzGMVrle7+5nbw==".into(),
            sip_session_ids: vec!["ab30317f1a784dc48ff824d0d3715d86".into(), " ".into()],
            start_time: "2024-03-11T09:14:02Z".into(),
            caller: CallParty {
                participant_id: "Htao/1vuRqoEqVuDsoNugQ==".into(),
                stream_id: "/G5t25kw4xCGI7Hy6e2B/Q==".into(),
                name: Some("Alice".into()),
                aor: "sip:+15551230001@example.com".into(),
            },
            callee: CallParty {
                participant_id: "BeNIjHFEN3CTS9j6iHHO2w==".into(),
                stream_id: "c8ceuvCB3Ug+HMO99GtCxQ==".into(),
                name: Some("  ".into()),
                aor: "sip:+15551230002@example.com".into(),
            },
            ..CallMetadata::default()
        }
    }

    #[test]
    fn builds_the_complete_document() {
        let md = call().build().unwrap();
        assert_eq!(md.data_mode, DataMode::Complete);
        let s = &md.sessions[0];
        assert_eq!(s.session_id, "B5Xic2dRYzGMVrle7+5nbw==");
        assert_eq!(s.sip_session_ids, ["ab30317f1a784dc48ff824d0d3715d86"]);
        assert_eq!(s.start_time.as_deref(), Some("2024-03-11T09:14:02Z"));
        assert_eq!(md.participants.len(), 2);
        assert_eq!(
            md.participant_display("Htao/1vuRqoEqVuDsoNugQ=="),
            (
                Some("Alice".into()),
                Some("sip:+15551230001@example.com".into())
            )
        );
        assert_eq!(
            md.participant_display("BeNIjHFEN3CTS9j6iHHO2w=="),
            (None, Some("sip:+15551230002@example.com".into()))
        );
        let labels: Vec<_> = md.streams.iter().map(|s| s.label.as_deref()).collect();
        assert_eq!(labels, [Some("1"), Some("2")]);
        assert!(md
            .streams
            .iter()
            .all(|s| s.session_id.as_deref() == Some("B5Xic2dRYzGMVrle7+5nbw==")));
        // Caller sends 1 and receives 2, callee the other way round.
        let st1 = &md.stream_by_label(CALLER_LABEL).unwrap().stream_id;
        let st2 = &md.stream_by_label(CALLEE_LABEL).unwrap().stream_id;
        assert_eq!(md.sender_of_stream(st1), Some("Htao/1vuRqoEqVuDsoNugQ=="));
        assert_eq!(md.sender_of_stream(st2), Some("BeNIjHFEN3CTS9j6iHHO2w=="));
        assert_eq!(
            &md.participant_stream_assocs[0].recv,
            std::slice::from_ref(st2)
        );
        assert_eq!(
            &md.participant_stream_assocs[1].recv,
            std::slice::from_ref(st1)
        );
        assert!(md
            .participant_stream_assocs
            .iter()
            .all(|a| a.associate_time.as_deref() == Some("2024-03-11T09:14:02Z")));
        assert_eq!(md.participant_session_assocs.len(), 2);
        assert!(md
            .participant_session_assocs
            .iter()
            .all(|a| a.associate_time.as_deref() == Some("2024-03-11T09:14:02Z")));
        assert_eq!(md.session_recording_assocs.len(), 1);
        // No extension given: none printed, no placeholder text.
        assert!(md.extensions.is_empty());
        assert_eq!(md.recording_id(), None);
        let xml = md.to_xml();
        assert!(!xml.contains("undefined") && !xml.contains(EXT_NS));
        assert_eq!(parse(xml.as_bytes()), Ok(Document::Recording(md)));
    }

    #[test]
    fn extensions_only_when_given() {
        let mut c = call();
        c.recording_id = Some(" rec-42 ".into());
        c.call_sid = Some("CA123".into());
        c.account_sid = Some("".into());
        c.application_sid = Some("AP9".into());
        let md = c.build().unwrap();
        let names: Vec<_> = md
            .extensions
            .iter()
            .map(|e| e.local_name.as_str())
            .collect();
        assert_eq!(names, ["recordingid", "callsid", "applicationsid"]);
        assert_eq!(
            md.extensions[0].xml,
            "<recordingid xmlns=\"urn:x-siprec-rs:ext\">rec-42</recordingid>"
        );
        assert_eq!(md.recording_id().as_deref(), Some("rec-42"));
        let xml = md.to_xml();
        assert!(xml.contains("<callsid xmlns=\"urn:x-siprec-rs:ext\">CA123</callsid>"));
        assert_eq!(parse(xml.as_bytes()), Ok(Document::Recording(md)));
    }

    #[test]
    fn rejects_unusable_input() {
        type Change = fn(&mut CallMetadata);
        let cases: [(Change, &str); 7] = [
            (|c| c.session_id = " ".into(), "empty session id"),
            (|c| c.start_time.clear(), "empty start time"),
            (|c| c.caller.participant_id.clear(), "empty participant id"),
            (|c| c.callee.stream_id = "\t".into(), "empty stream id"),
            (|c| c.callee.aor.clear(), "empty participant aor"),
            (
                |c| c.callee.participant_id = c.caller.participant_id.clone(),
                "both participants have the same id",
            ),
            (
                |c| c.callee.stream_id = format!(" {} ", c.caller.stream_id),
                "both streams have the same id",
            ),
        ];
        for (change, why) in cases {
            let mut c = call();
            change(&mut c);
            assert_eq!(c.build(), Err(Error::InvalidCallMetadata(why)));
        }
    }
}
