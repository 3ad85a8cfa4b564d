//! Recording commands carried by in-dialog `INFO` requests, as the voice platform's "Call
//! Recording Node" sends them to its SBC (siprec-notes §1.1):
//!
//! | header | value |
//! |---|---|
//! | `X-Reason` | `startCallRecording`, `stopCallRecording`, `pauseCallRecording`, `resumeCallRecording` |
//! | `X-Srs-Url` | the Call Recording Server value (start only) |
//! | `X-Srs-Recording-ID` | the Call Recording ID (start only, optional) |
//! | `X-Call-Sid` | the call's id on the platform (optional, into the metadata) |
//!
//! An `INFO` without `X-Reason` is not a command (it is relayed to the other leg); one with
//! an `X-Reason` the gateway does not know is answered `400` naming it.

use siprec_core::client::{Outcome, Reply};
use siprec_sip::message::extension_header;
use siprec_sip::rsip::Request;

/// Longest `X-Srs-Recording-ID` or `X-Call-Sid` value taken (they name a recording and go into
/// its metadata).
pub const MAX_ID_LEN: usize = 256;

/// Longest reason phrase the gateway writes (a 503 lists every SRS and why).
pub const MAX_REASON_PHRASE: usize = 240;

/// One recording command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Which of the four.
    pub activity: siprec_core::client::Activity,
    /// `X-Reason` as sent.
    pub reason: String,
    /// `X-Srs-Url` (empty when missing: the "missing X-Srs-Url" case of a start).
    pub server: String,
    /// `X-Srs-Recording-ID`, when present and not empty.
    pub recording_id: Option<String>,
    /// `X-Call-Sid`, when present and not empty.
    pub call_sid: Option<String>,
}

/// What an INFO is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Info {
    /// No `X-Reason`: an ordinary INFO (DTMF, application data) to relay.
    Relay,
    /// A recording command.
    Command(Command),
    /// `X-Reason` names something else, or a header value is unusable: answer `400` with this
    /// reason phrase.
    Refused(String),
}

/// Classifies an INFO request. See the [module docs](self).
pub fn classify(req: &Request) -> Info {
    let Some(reason) = extension_header(&req.headers, "X-Reason") else {
        return Info::Relay;
    };
    use siprec_core::client::Activity;
    let activity = match reason.trim() {
        r if r.eq_ignore_ascii_case("startCallRecording") => Activity::Start,
        r if r.eq_ignore_ascii_case("stopCallRecording") => Activity::Stop,
        r if r.eq_ignore_ascii_case("pauseCallRecording") => Activity::Pause,
        r if r.eq_ignore_ascii_case("resumeCallRecording") => Activity::Resume,
        other => {
            return Info::Refused(phrase(&format!(
                "unknown X-Reason {other:?}: expected startCallRecording, stopCallRecording, \
                 pauseCallRecording or resumeCallRecording"
            )))
        }
    };
    let non_empty = |name: &str| {
        extension_header(&req.headers, name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let recording_id = non_empty("X-Srs-Recording-ID");
    let call_sid = non_empty("X-Call-Sid");
    for (name, value) in [
        ("X-Srs-Recording-ID", &recording_id),
        ("X-Call-Sid", &call_sid),
    ] {
        if value.as_ref().is_some_and(|v| v.len() > MAX_ID_LEN) {
            return Info::Refused(format!("{name} is longer than {MAX_ID_LEN} bytes"));
        }
    }
    Info::Command(Command {
        activity,
        reason: reason.trim().to_string(),
        server: extension_header(&req.headers, "X-Srs-Url").unwrap_or_default(),
        recording_id,
        call_sid,
    })
}

/// The reply code and reason phrase of an INFO command's answer: the contract's code and log
/// line, then `: ` and the outcome's reason when it has one (which SRS failed and why).
pub fn reply_of(outcome: &Outcome) -> (u16, String) {
    (
        outcome.reply.code(),
        reply_phrase(outcome.reply, outcome.reason.as_deref()),
    )
}

/// The reason phrase for `reply` with an optional detail. See [`reply_of`].
pub fn reply_phrase(reply: Reply, detail: Option<&str>) -> String {
    match detail.map(str::trim).filter(|d| !d.is_empty()) {
        Some(d) => phrase(&format!("{}: {d}", reply.log_line())),
        None => reply.log_line().to_string(),
    }
}

/// `text` made safe for a reason phrase: no control characters, at most
/// [`MAX_REASON_PHRASE`] bytes (cut on a character boundary).
pub fn phrase(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_REASON_PHRASE));
    for c in text.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if out.len() + c.len_utf8() > MAX_REASON_PHRASE {
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use siprec_core::client::Activity;
    use siprec_sip::rsip::SipMessage;

    fn info(extra: &str) -> Request {
        let text = format!(
            "INFO sip:gw@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK1\r\n\
From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\nCall-ID: c1\r\nCSeq: 2 INFO\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        match siprec_sip::parse_message(text.as_bytes()).unwrap() {
            SipMessage::Request(r) => r,
            SipMessage::Response(_) => unreachable!(),
        }
    }

    #[test]
    fn the_four_commands_and_their_headers() {
        let Info::Command(c) = classify(&info(
            "X-Reason: startCallRecording\r\nX-Srs-Url: sip:a, sip:b\r\nX-Srs-Recording-ID: r-1\r\nX-Call-Sid: cs-9\r\n",
        )) else {
            panic!()
        };
        assert_eq!(c.activity, Activity::Start);
        assert_eq!(c.server, "sip:a, sip:b");
        assert_eq!(c.recording_id.as_deref(), Some("r-1"));
        assert_eq!(c.call_sid.as_deref(), Some("cs-9"));
        for (r, a) in [
            ("stopCallRecording", Activity::Stop),
            ("pauseCallRecording", Activity::Pause),
            ("resumeCallRecording", Activity::Resume),
        ] {
            let Info::Command(c) = classify(&info(&format!("X-Reason: {r}\r\n"))) else {
                panic!()
            };
            assert_eq!(
                (c.activity, c.server.as_str(), c.recording_id),
                (a, "", None)
            );
        }
    }

    #[test]
    fn no_reason_is_relayed_and_an_unknown_one_is_named() {
        assert_eq!(classify(&info("")), Info::Relay);
        let long = format!(
            "X-Reason: startCallRecording\r\nX-Call-Sid: {}\r\n",
            "s".repeat(300)
        );
        let Info::Refused(p) = classify(&info(&long)) else {
            panic!()
        };
        assert_eq!(p, "X-Call-Sid is longer than 256 bytes");
        let Info::Refused(p) = classify(&info("X-Reason: rewindCallRecording\r\n")) else {
            panic!()
        };
        assert!(
            p.starts_with("unknown X-Reason \"rewindCallRecording\""),
            "{p}"
        );
    }

    #[test]
    fn phrases_are_bounded_and_single_line() {
        let p = reply_phrase(Reply::StartFailed, Some(&"x\u{1}".repeat(500)));
        assert!(p.starts_with("Error starting SipRec call recording: x x"));
        assert!(p.len() <= MAX_REASON_PHRASE && !p.chars().any(char::is_control));
        assert_eq!(
            reply_phrase(Reply::NotRecording, None),
            "discarding stopCallRecording request because we are not recording"
        );
    }
}
