//! The printer: [`Recording::to_xml`] and [`snapshot_request_xml`].

use std::fmt::Write as _;

use crate::model::{DataMode, Extension, Recording};
use crate::NS;

const DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

/// Escapes character data: `&`, `<`, `>`, and `\r` (as `&#13;`, which would otherwise be
/// lost to end-of-line normalisation). Characters XML 1.0 cannot carry at all (most control
/// characters) become U+FFFD.
pub(crate) fn escape_text(s: &str) -> String {
    escape(s, false)
}

/// Escapes an attribute value for double quotes: like [`escape_text`], plus `"` and the
/// tab / line feed that attribute-value normalisation would turn into spaces.
pub(crate) fn escape_attr(s: &str) -> String {
    escape(s, true)
}

fn escape(s: &str, attr: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            '"' if attr => out.push_str("&quot;"),
            '\n' if attr => out.push_str("&#10;"),
            '\t' if attr => out.push_str("&#9;"),
            c if crate::reader::is_xml_char(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
    out
}

/// Writes `<name>text</name>` on its own line at `indent` levels.
fn element(out: &mut String, indent: usize, name: &str, text: &str) {
    let _ = writeln!(
        out,
        "{:w$}<{name}>{}</{name}>",
        "",
        escape_text(text),
        w = indent * 2
    );
}

fn opt_element(out: &mut String, indent: usize, name: &str, text: &Option<String>) {
    if let Some(t) = text {
        element(out, indent, name, t);
    }
}

fn extensions(out: &mut String, indent: usize, exts: &[Extension]) {
    for e in exts {
        let _ = writeln!(out, "{:w$}{}", "", e.xml, w = indent * 2);
    }
}

/// Opens `<name attr="v" …>`, or writes `<name …/>` and returns `false` when `empty`.
fn open(out: &mut String, indent: usize, name: &str, attrs: &[(&str, &str)], empty: bool) -> bool {
    let _ = write!(out, "{:w$}<{name}", "", w = indent * 2);
    for (k, v) in attrs {
        let _ = write!(out, " {k}=\"{}\"", escape_attr(v));
    }
    out.push_str(if empty { "/>\n" } else { ">\n" });
    !empty
}

fn close(out: &mut String, indent: usize, name: &str) {
    let _ = writeln!(out, "{:w$}</{name}>", "", w = indent * 2);
}

impl Recording {
    /// Prints the document: XML declaration, `<recording>` in the RFC 7865 namespace as the
    /// default namespace, `<datamode>`, then groups, sessions, participants, streams,
    /// session-recording, participant-session and participant-stream associations in the
    /// order of the RFC 7865 schema, each element's extensions last inside it, and the root's
    /// extensions last. Extensions are printed from their raw XML.
    ///
    /// Text and attributes are escaped; [`parse`](crate::parse) reads the output back to an
    /// equal `Recording`.
    pub fn to_xml(&self) -> String {
        let mut o = String::with_capacity(1024);
        o.push_str(DECLARATION);
        let _ = writeln!(o, "<recording xmlns=\"{NS}\">");
        let mode = match self.data_mode {
            DataMode::Complete => "complete",
            DataMode::Partial => "partial",
        };
        element(&mut o, 1, "datamode", mode);
        for g in &self.groups {
            let empty = g.associate_time.is_none()
                && g.disassociate_time.is_none()
                && g.extensions.is_empty();
            if open(&mut o, 1, "group", &[("group_id", &g.group_id)], empty) {
                opt_element(&mut o, 2, "associate-time", &g.associate_time);
                opt_element(&mut o, 2, "disassociate-time", &g.disassociate_time);
                extensions(&mut o, 2, &g.extensions);
                close(&mut o, 1, "group");
            }
        }
        for s in &self.sessions {
            let empty = s.sip_session_ids.is_empty()
                && s.reasons.is_empty()
                && s.group_ref.is_none()
                && s.start_time.is_none()
                && s.stop_time.is_none()
                && s.extensions.is_empty();
            if open(
                &mut o,
                1,
                "session",
                &[("session_id", &s.session_id)],
                empty,
            ) {
                for id in &s.sip_session_ids {
                    element(&mut o, 2, "sipSessionID", id);
                }
                for r in &s.reasons {
                    element(&mut o, 2, "reason", r);
                }
                opt_element(&mut o, 2, "group-ref", &s.group_ref);
                opt_element(&mut o, 2, "start-time", &s.start_time);
                opt_element(&mut o, 2, "stop-time", &s.stop_time);
                extensions(&mut o, 2, &s.extensions);
                close(&mut o, 1, "session");
            }
        }
        for p in &self.participants {
            let empty = p.name_ids.is_empty()
                && p.send.is_empty()
                && p.recv.is_empty()
                && p.extensions.is_empty();
            let attrs = [("participant_id", p.participant_id.as_str())];
            if open(&mut o, 1, "participant", &attrs, empty) {
                for n in &p.name_ids {
                    let attrs: Vec<(&str, &str)> =
                        n.aor.as_deref().map(|a| ("aor", a)).into_iter().collect();
                    if open(&mut o, 2, "nameID", &attrs, n.names.is_empty()) {
                        for name in &n.names {
                            let _ = write!(o, "{:6}<name", "");
                            if let Some(lang) = &name.lang {
                                let _ = write!(o, " xml:lang=\"{}\"", escape_attr(lang));
                            }
                            let _ = writeln!(o, ">{}</name>", escape_text(&name.value));
                        }
                        close(&mut o, 2, "nameID");
                    }
                }
                // Legacy children, kept so that a parsed legacy document prints back.
                for id in &p.send {
                    element(&mut o, 2, "send", id);
                }
                for id in &p.recv {
                    element(&mut o, 2, "recv", id);
                }
                extensions(&mut o, 2, &p.extensions);
                close(&mut o, 1, "participant");
            }
        }
        for s in &self.streams {
            let mut attrs = vec![("stream_id", s.stream_id.as_str())];
            if let Some(sid) = &s.session_id {
                attrs.push(("session_id", sid));
            }
            let empty = s.label.is_none() && s.extensions.is_empty();
            if open(&mut o, 1, "stream", &attrs, empty) {
                opt_element(&mut o, 2, "label", &s.label);
                extensions(&mut o, 2, &s.extensions);
                close(&mut o, 1, "stream");
            }
        }
        for a in &self.session_recording_assocs {
            let empty = a.associate_time.is_none() && a.disassociate_time.is_none();
            let attrs = [("session_id", a.session_id.as_str())];
            if open(&mut o, 1, "sessionrecordingassoc", &attrs, empty) {
                opt_element(&mut o, 2, "associate-time", &a.associate_time);
                opt_element(&mut o, 2, "disassociate-time", &a.disassociate_time);
                close(&mut o, 1, "sessionrecordingassoc");
            }
        }
        for a in &self.participant_session_assocs {
            let empty =
                a.associate_time.is_none() && a.disassociate_time.is_none() && a.params.is_empty();
            let attrs = [
                ("participant_id", a.participant_id.as_str()),
                ("session_id", a.session_id.as_str()),
            ];
            if open(&mut o, 1, "participantsessionassoc", &attrs, empty) {
                opt_element(&mut o, 2, "associate-time", &a.associate_time);
                opt_element(&mut o, 2, "disassociate-time", &a.disassociate_time);
                for (name, value) in &a.params {
                    open(
                        &mut o,
                        2,
                        "param",
                        &[("pname", name), ("pval", value)],
                        true,
                    );
                }
                close(&mut o, 1, "participantsessionassoc");
            }
        }
        for a in &self.participant_stream_assocs {
            let empty = a.send.is_empty()
                && a.recv.is_empty()
                && a.associate_time.is_none()
                && a.disassociate_time.is_none();
            let attrs = [("participant_id", a.participant_id.as_str())];
            if open(&mut o, 1, "participantstreamassoc", &attrs, empty) {
                for id in &a.send {
                    element(&mut o, 2, "send", id);
                }
                for id in &a.recv {
                    element(&mut o, 2, "recv", id);
                }
                opt_element(&mut o, 2, "associate-time", &a.associate_time);
                opt_element(&mut o, 2, "disassociate-time", &a.disassociate_time);
                close(&mut o, 1, "participantstreamassoc");
            }
        }
        extensions(&mut o, 1, &self.extensions);
        o.push_str("</recording>\n");
        o
    }
}

/// A snapshot request body (`application/rs-metadata-request`): the SRS asks the SRC for a
/// complete metadata document.
///
/// ```
/// let body = rs_metadata::snapshot_request_xml("SRS lost its state");
/// assert!(body.contains("<requestreason>SRS lost its state</requestreason>"));
/// ```
pub fn snapshot_request_xml(reason: &str) -> String {
    format!(
        "{DECLARATION}<requestsnapshot xmlns=\"{NS}\">\n  <requestreason>{}</requestreason>\n</requestsnapshot>\n",
        escape_text(reason)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;
    use crate::parse;

    fn reparse(r: &Recording) -> Recording {
        match parse(r.to_xml().as_bytes()) {
            Ok(Document::Recording(r)) => r,
            other => panic!("printed document does not parse: {other:?}"),
        }
    }

    #[test]
    fn header_namespace_and_schema_order() {
        let md = match parse(fixture!("complete.xml").as_bytes()) {
            Ok(Document::Recording(r)) => r,
            other => panic!("{other:?}"),
        };
        let xml = md.to_xml();
        assert!(xml.starts_with(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<recording xmlns=\"urn:ietf:params:xml:ns:recording:1\">\n  <datamode>complete</datamode>\n"
        ));
        let order = [
            "<datamode>",
            "<group ",
            "<session ",
            "<participant ",
            "<stream ",
            "<sessionrecordingassoc ",
            "<participantsessionassoc ",
            "<participantstreamassoc ",
            "<recordingid ",
            "</recording>",
        ];
        let positions: Vec<usize> = order.iter().map(|t| xml.find(t).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{xml}");
        // Inside a session: sipSessionID, reason, group-ref, start-time, stop-time, extensions.
        let s = Session {
            session_id: "s".into(),
            sip_session_ids: vec!["id".into()],
            reasons: vec!["r".into()],
            group_ref: Some("g".into()),
            start_time: Some("t0".into()),
            stop_time: Some("t1".into()),
            extensions: vec![Extension::text_element("urn:x", "x", "e")],
        };
        let xml = Recording {
            sessions: vec![s],
            ..Recording::default()
        }
        .to_xml();
        let order = [
            "<sipSessionID>",
            "<reason>",
            "<group-ref>",
            "<start-time>",
            "<stop-time>",
            "<x ",
        ];
        let positions: Vec<usize> = order.iter().map(|t| xml.find(t).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{xml}");
    }

    #[test]
    fn partial_mode_printed() {
        let md = Recording {
            data_mode: DataMode::Partial,
            ..Recording::default()
        };
        assert!(md.to_xml().contains("<datamode>partial</datamode>"));
        assert_eq!(reparse(&md), md);
    }

    #[test]
    fn escaping_round_trips() {
        let nasty = "a&b <c> \"d\" 'e' \t tab\nline\r\ncrlf ]]> &amp; é 张";
        let md = Recording {
            participants: vec![Participant {
                participant_id: nasty.into(),
                name_ids: vec![NameId {
                    aor: Some(nasty.into()),
                    names: vec![Name {
                        lang: Some(nasty.into()),
                        value: "x&y<z>".into(),
                    }],
                }],
                ..Participant::default()
            }],
            participant_session_assocs: vec![ParticipantSessionAssoc {
                participant_id: "p".into(),
                session_id: "s".into(),
                params: vec![("k\"".into(), nasty.into())],
                ..ParticipantSessionAssoc::default()
            }],
            streams: vec![Stream {
                stream_id: "s".into(),
                label: Some("<1>&".into()),
                ..Stream::default()
            }],
            ..Recording::default()
        };
        let back = reparse(&md);
        // Attribute values are trimmed when read, the rest is kept exactly.
        assert_eq!(back.participants[0].participant_id, nasty.trim());
        assert_eq!(
            back.participants[0].name_ids[0].aor.as_deref(),
            Some(nasty.trim())
        );
        assert_eq!(
            back.participants[0].name_ids[0].names[0].lang.as_deref(),
            Some(nasty.trim())
        );
        assert_eq!(back.participants[0].name_ids[0].names[0].value, "x&y<z>");
        assert_eq!(back.participant_session_assocs[0].params[0].0, "k\"");
        assert_eq!(back.participant_session_assocs[0].params[0].1, nasty.trim());
        assert_eq!(back.streams[0].label.as_deref(), Some("<1>&"));
    }

    #[test]
    fn characters_xml_cannot_carry_are_replaced() {
        assert_eq!(
            escape_text("a\u{0}b\u{1b}c\u{FFFE}"),
            "a\u{FFFD}b\u{FFFD}c\u{FFFD}"
        );
        let md = Recording {
            streams: vec![Stream {
                stream_id: "s\u{7}".into(),
                label: Some("l\u{0}".into()),
                ..Stream::default()
            }],
            ..Recording::default()
        };
        let back = reparse(&md);
        assert_eq!(back.streams[0].stream_id, "s\u{FFFD}");
        assert_eq!(back.streams[0].label.as_deref(), Some("l\u{FFFD}"));
    }

    #[test]
    fn text_element_extension() {
        let e = Extension::text_element("urn:a\"b", "callsid", "CA<1>&");
        assert_eq!(
            e.xml,
            "<callsid xmlns=\"urn:a&quot;b\">CA&lt;1&gt;&amp;</callsid>"
        );
        let md = Recording {
            extensions: vec![e.clone()],
            ..Recording::default()
        };
        assert_eq!(reparse(&md).extensions, [e]);
    }

    #[test]
    fn snapshot_request_round_trip() {
        let body = snapshot_request_xml("lost <state> & more");
        assert!(body.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<requestsnapshot xmlns=\"urn:ietf:params:xml:ns:recording:1\">"));
        assert_eq!(
            parse(body.as_bytes()),
            Ok(Document::SnapshotRequest {
                reason: Some("lost <state> & more".into())
            })
        );
        assert_eq!(
            parse(snapshot_request_xml("").as_bytes()),
            Ok(Document::SnapshotRequest { reason: None })
        );
    }
}
