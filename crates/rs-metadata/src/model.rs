//! The RFC 7865 metadata model, the queries an SRS needs, and partial-update merging.
//!
//! Every id, time and label is kept as the text the peer sent (trimmed): ids may be base64,
//! hex or `urn:uuid:` strings, times are `xs:dateTime` text that is never parsed here.

use std::collections::{HashMap, HashSet};

/// `<datamode>`: whether a document describes the whole recording or only what changed.
///
/// RFC 7865: an absent `<datamode>` means `complete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DataMode {
    /// The document is a full snapshot of the metadata.
    #[default]
    Complete,
    /// The document only carries elements that changed; see [`Recording::apply`].
    Partial,
}

/// The root `<recording>` element: one metadata document.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recording {
    /// `<datamode>`; [`DataMode::Complete`] when absent.
    pub data_mode: DataMode,
    /// `<group>` elements (communication session groups).
    pub groups: Vec<Group>,
    /// `<session>` elements (communication sessions).
    pub sessions: Vec<Session>,
    /// `<participant>` elements.
    pub participants: Vec<Participant>,
    /// `<stream>` elements.
    pub streams: Vec<Stream>,
    /// `<sessionrecordingassoc>` elements.
    pub session_recording_assocs: Vec<SessionRecordingAssoc>,
    /// `<participantsessionassoc>` elements.
    pub participant_session_assocs: Vec<ParticipantSessionAssoc>,
    /// `<participantstreamassoc>` elements.
    pub participant_stream_assocs: Vec<ParticipantStreamAssoc>,
    /// Elements of other namespaces (and unknown or `<extensiondata>` elements of the
    /// recording namespace) found directly under `<recording>`, plus those found inside
    /// elements that have no `extensions` of their own (associations, `<nameID>`).
    pub extensions: Vec<Extension>,
}

/// `<group group_id=…>`: a communication session group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Group {
    /// `group_id` (or `id`) attribute.
    pub group_id: String,
    /// `<associate-time>`.
    pub associate_time: Option<String>,
    /// `<disassociate-time>`.
    pub disassociate_time: Option<String>,
    /// Extension elements inside the group.
    pub extensions: Vec<Extension>,
}

/// `<session session_id=…>`: a communication session (the recorded call).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Session {
    /// `session_id` (or `id`) attribute.
    pub session_id: String,
    /// `<sipSessionID>` values (RFC 7989 Session-ID header values).
    pub sip_session_ids: Vec<String>,
    /// `<reason>` texts (why the session ended).
    pub reasons: Vec<String>,
    /// `<group-ref>`: the `group_id` this session belongs to.
    pub group_ref: Option<String>,
    /// `<start-time>`.
    pub start_time: Option<String>,
    /// `<stop-time>`.
    pub stop_time: Option<String>,
    /// Extension elements inside the session.
    pub extensions: Vec<Extension>,
}

/// `<sessionrecordingassoc session_id=…>`: when a session joined/left this recording.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionRecordingAssoc {
    /// `session_id` (or `session` / `id`) attribute.
    pub session_id: String,
    /// `<associate-time>`.
    pub associate_time: Option<String>,
    /// `<disassociate-time>`.
    pub disassociate_time: Option<String>,
}

/// `<participant participant_id=…>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Participant {
    /// `participant_id` (or `id`) attribute.
    pub participant_id: String,
    /// `<nameID>` elements (also built from legacy `<aor>`/`<name>` children).
    pub name_ids: Vec<NameId>,
    /// Legacy `<send>` stream ids inside `<participant>` (pre-RFC SRCs).
    pub send: Vec<String>,
    /// Legacy `<recv>` stream ids inside `<participant>` (pre-RFC SRCs).
    pub recv: Vec<String>,
    /// Extension elements inside the participant.
    pub extensions: Vec<Extension>,
}

/// `<nameID aor=…>`: an address of record and display names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NameId {
    /// `aor` attribute (a SIP/tel URI).
    pub aor: Option<String>,
    /// `<name>` children.
    pub names: Vec<Name>,
}

/// `<name xml:lang=…>`: a display name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Name {
    /// `xml:lang` attribute.
    pub lang: Option<String>,
    /// The name text.
    pub value: String,
}

/// `<participantsessionassoc participant_id=… session_id=…>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParticipantSessionAssoc {
    /// `participant_id` (or `participant` / `id`) attribute.
    pub participant_id: String,
    /// `session_id` (or `session`) attribute.
    pub session_id: String,
    /// `<associate-time>`.
    pub associate_time: Option<String>,
    /// `<disassociate-time>`.
    pub disassociate_time: Option<String>,
    /// `<param pname=… pval=…/>` pairs, as `(pname, pval)`.
    pub params: Vec<(String, String)>,
}

/// `<stream stream_id=… session_id=…>`: one media stream; its label ties it to an SDP
/// `a=label` m-line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stream {
    /// `stream_id` (or `id`) attribute.
    pub stream_id: String,
    /// `session_id` (or `session`) attribute.
    pub session_id: Option<String>,
    /// `<label>`: matches an `a=label:` of the recording session's SDP.
    pub label: Option<String>,
    /// Extension elements inside the stream.
    pub extensions: Vec<Extension>,
}

/// `<participantstreamassoc participant_id=…>`: which streams a participant sends and
/// receives.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParticipantStreamAssoc {
    /// `participant_id` (or `participant` / `id`) attribute.
    pub participant_id: String,
    /// `<send>` stream ids.
    pub send: Vec<String>,
    /// `<recv>` stream ids.
    pub recv: Vec<String>,
    /// `<associate-time>`.
    pub associate_time: Option<String>,
    /// `<disassociate-time>`.
    pub disassociate_time: Option<String>,
}

/// An element this crate does not model, kept verbatim.
///
/// When parsed, `xml` is the element's text exactly as received, except that namespace
/// declarations it relied on from its ancestors are re-declared on its start tag, so the
/// fragment stands alone and can be printed anywhere. When built by hand, `xml` must be a
/// well-formed element that declares its own namespaces (see [`Extension::text_element`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Extension {
    /// The element's namespace URI; `None` for no namespace.
    pub namespace: Option<String>,
    /// The element's local name, as written.
    pub local_name: String,
    /// The element's raw XML (see above).
    pub xml: String,
    /// Concatenated text content of the element and its descendants (entities resolved).
    pub text: String,
}

/// A parsed metadata body: `application/rs-metadata+xml` carries a [`Recording`],
/// `application/rs-metadata-request` carries a snapshot request.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Document {
    /// A `<recording>` document (complete or partial).
    Recording(Recording),
    /// A `<requestsnapshot>` document: the SRS asks the SRC for a complete document.
    SnapshotRequest {
        /// Trimmed `<requestreason>` text, if any.
        reason: Option<String>,
    },
}

impl Extension {
    /// Builds a text-only extension element `<local_name xmlns="namespace">text</local_name>`,
    /// with the text escaped.
    ///
    /// `local_name` must be a valid XML name (no spaces, no `<`, …); it is not checked.
    pub fn text_element(namespace: &str, local_name: &str, text: &str) -> Extension {
        Extension {
            namespace: Some(namespace.to_string()),
            local_name: local_name.to_string(),
            xml: format!(
                "<{local_name} xmlns=\"{}\">{}</{local_name}>",
                crate::writer::escape_attr(namespace),
                crate::writer::escape_text(text)
            ),
            text: text.to_string(),
        }
    }
}

impl Recording {
    /// Merges `update` into `self` (RFC 7865 partial updates).
    ///
    /// * A [`DataMode::Complete`] update replaces `self` entirely.
    /// * A [`DataMode::Partial`] update is merged: groups, sessions, participants, streams
    ///   and associations are matched by their id (`participantsessionassoc` by participant
    ///   *and* session id); unmatched ones (and ones with an empty id) are appended.
    ///   In a matched element, optional fields present in the update overwrite
    ///   (`associate-time`, `disassociate-time`, `start-time`, `label` …) and absent ones
    ///   keep their value, so the association history is kept; `<nameID>`s are replaced when
    ///   the update has any; id lists (`sipSessionID`, `reason`, `send`, `recv`) gain the
    ///   update's values not already present, so past streams keep their sender; params are
    ///   merged by name; extensions are appended, skipping exact duplicates.
    ///   `self.data_mode` is left unchanged.
    ///
    /// Bounded: merging never makes a list (elements, id lists, params, extensions) grow
    /// beyond [`MAX_ELEMENTS`](crate::MAX_ELEMENTS) entries; further new entries are dropped,
    /// so endless partial updates from a peer cannot grow the state without limit.
    pub fn apply(&mut self, update: &Recording) {
        if update.data_mode == DataMode::Complete {
            *self = update.clone();
            return;
        }
        merge_by_key(
            &mut self.groups,
            &update.groups,
            |g| g.group_id.clone(),
            |cur, g| {
                overwrite(&mut cur.associate_time, &g.associate_time);
                overwrite(&mut cur.disassociate_time, &g.disassociate_time);
                append_extensions(&mut cur.extensions, &g.extensions);
            },
        );
        merge_by_key(
            &mut self.sessions,
            &update.sessions,
            |s| s.session_id.clone(),
            |cur, s| {
                union(&mut cur.sip_session_ids, &s.sip_session_ids);
                union(&mut cur.reasons, &s.reasons);
                overwrite(&mut cur.group_ref, &s.group_ref);
                overwrite(&mut cur.start_time, &s.start_time);
                overwrite(&mut cur.stop_time, &s.stop_time);
                append_extensions(&mut cur.extensions, &s.extensions);
            },
        );
        merge_by_key(
            &mut self.participants,
            &update.participants,
            |p| p.participant_id.clone(),
            |cur, p| {
                if !p.name_ids.is_empty() {
                    cur.name_ids = p.name_ids.clone();
                }
                union(&mut cur.send, &p.send);
                union(&mut cur.recv, &p.recv);
                append_extensions(&mut cur.extensions, &p.extensions);
            },
        );
        merge_by_key(
            &mut self.streams,
            &update.streams,
            |s| s.stream_id.clone(),
            |cur, s| {
                overwrite(&mut cur.session_id, &s.session_id);
                overwrite(&mut cur.label, &s.label);
                append_extensions(&mut cur.extensions, &s.extensions);
            },
        );
        merge_by_key(
            &mut self.session_recording_assocs,
            &update.session_recording_assocs,
            |a| a.session_id.clone(),
            |cur, a| {
                overwrite(&mut cur.associate_time, &a.associate_time);
                overwrite(&mut cur.disassociate_time, &a.disassociate_time);
            },
        );
        merge_by_key(
            &mut self.participant_session_assocs,
            &update.participant_session_assocs,
            |a| {
                if a.participant_id.is_empty() {
                    String::new()
                } else {
                    // '\n' cannot appear in a trimmed attribute value's ends, and keeps
                    // ("a", "bc") apart from ("ab", "c").
                    format!("{}\n{}", a.participant_id, a.session_id)
                }
            },
            |cur, a| {
                overwrite(&mut cur.associate_time, &a.associate_time);
                overwrite(&mut cur.disassociate_time, &a.disassociate_time);
                for (name, value) in &a.params {
                    if let Some(slot) = cur.params.iter_mut().find(|(n, _)| n == name) {
                        slot.1.clone_from(value);
                    } else if cur.params.len() < MAX_MERGED {
                        cur.params.push((name.clone(), value.clone()));
                    }
                }
            },
        );
        merge_by_key(
            &mut self.participant_stream_assocs,
            &update.participant_stream_assocs,
            |a| a.participant_id.clone(),
            |cur, a| {
                union(&mut cur.send, &a.send);
                union(&mut cur.recv, &a.recv);
                overwrite(&mut cur.associate_time, &a.associate_time);
                overwrite(&mut cur.disassociate_time, &a.disassociate_time);
            },
        );
        append_extensions(&mut self.extensions, &update.extensions);
    }

    /// The Recording ID an SRC put in the metadata: the trimmed, non-empty text of the first
    /// extension element whose local name is `recordingid` (ASCII case-insensitive, any
    /// namespace), searched at any depth, including inside `<extensiondata>` blocks and
    /// inside the extensions of groups, sessions, participants and streams.
    pub fn recording_id(&self) -> Option<String> {
        self.all_extensions().find_map(find_recording_id)
    }

    /// Stream ids `participant_id` sends (or has sent): `<send>` of its
    /// `<participantstreamassoc>` elements, then legacy `<send>` inside its `<participant>`,
    /// without duplicates, in document order.
    pub fn streams_sent_by(&self, participant_id: &str) -> Vec<&str> {
        let pid = participant_id.trim();
        let mut out: Vec<&str> = Vec::new();
        let from_assocs = self
            .participant_stream_assocs
            .iter()
            .filter(|a| a.participant_id == pid)
            .flat_map(|a| a.send.iter());
        let legacy = self
            .participants
            .iter()
            .filter(|p| p.participant_id == pid)
            .flat_map(|p| p.send.iter());
        for s in from_assocs.chain(legacy) {
            if !out.contains(&s.as_str()) {
                out.push(s);
            }
        }
        out
    }

    /// The participant that sends `stream_id`.
    ///
    /// Looks at `<participantstreamassoc>` `<send>` first, preferring an association without
    /// a `disassociate-time` and, among equals, the latest one (a transfer appends the new
    /// sender after the old one); then at legacy `<send>` inside `<participant>`.
    pub fn sender_of_stream(&self, stream_id: &str) -> Option<&str> {
        let sid = stream_id.trim();
        let sends = |a: &&ParticipantStreamAssoc| a.send.iter().any(|s| s == sid);
        let assocs = &self.participant_stream_assocs;
        assocs
            .iter()
            .rev()
            .filter(sends)
            .find(|a| a.disassociate_time.is_none())
            .or_else(|| assocs.iter().rev().find(sends))
            .map(|a| a.participant_id.as_str())
            .or_else(|| {
                self.participants
                    .iter()
                    .find(|p| p.send.iter().any(|s| s == sid))
                    .map(|p| p.participant_id.as_str())
            })
    }

    /// The first `<stream>` whose `<label>` equals `label` (both trimmed).
    pub fn stream_by_label(&self, label: &str) -> Option<&Stream> {
        let label = label.trim();
        self.streams
            .iter()
            .find(|s| s.label.as_deref() == Some(label))
    }

    /// Display name and AOR of a participant: the first non-empty `<name>` and the first
    /// `aor` across its `<nameID>`s. `(None, None)` when the participant is unknown.
    pub fn participant_display(&self, participant_id: &str) -> (Option<String>, Option<String>) {
        let pid = participant_id.trim();
        let Some(p) = self.participants.iter().find(|p| p.participant_id == pid) else {
            return (None, None);
        };
        let name = p
            .name_ids
            .iter()
            .flat_map(|n| n.names.iter())
            .map(|n| n.value.trim())
            .find(|v| !v.is_empty())
            .map(str::to_string);
        let aor = p
            .name_ids
            .iter()
            .filter_map(|n| n.aor.as_deref())
            .map(str::trim)
            .find(|v| !v.is_empty())
            .map(str::to_string);
        (name, aor)
    }

    /// Every extension of the document, root ones first.
    fn all_extensions(&self) -> impl Iterator<Item = &Extension> {
        self.extensions
            .iter()
            .chain(self.groups.iter().flat_map(|g| g.extensions.iter()))
            .chain(self.sessions.iter().flat_map(|s| s.extensions.iter()))
            .chain(self.participants.iter().flat_map(|p| p.extensions.iter()))
            .chain(self.streams.iter().flat_map(|s| s.extensions.iter()))
    }
}

/// The `recordingid` inside one extension (the extension itself or a descendant).
fn find_recording_id(ext: &Extension) -> Option<String> {
    if ext.local_name.eq_ignore_ascii_case("recordingid") {
        let t = ext.text.trim();
        if !t.is_empty() {
            return Some(t.to_string());
        }
    }
    crate::reader::find_descendant_text(&ext.xml, "recordingid")
}

/// Upper bound of every list [`Recording::apply`] grows, so that a peer sending endless
/// partial updates cannot make the merged state grow without limit.
pub(crate) const MAX_MERGED: usize = crate::MAX_ELEMENTS;

/// Merges `new` into `cur`: an item whose key (non-empty) matches an item of `cur` is merged
/// into it, others are appended (up to [`MAX_MERGED`] items).
fn merge_by_key<T: Clone>(
    cur: &mut Vec<T>,
    new: &[T],
    key: impl Fn(&T) -> String,
    merge: impl Fn(&mut T, &T),
) {
    let mut index: HashMap<String, usize> = HashMap::new();
    for (i, item) in cur.iter().enumerate() {
        let k = key(item);
        if !k.is_empty() {
            index.entry(k).or_insert(i);
        }
    }
    for item in new {
        let k = key(item);
        match index.get(&k).and_then(|&i| cur.get_mut(i)) {
            Some(existing) if !k.is_empty() => merge(existing, item),
            _ => {
                if cur.len() >= MAX_MERGED {
                    continue;
                }
                if !k.is_empty() {
                    index.insert(k, cur.len());
                }
                cur.push(item.clone());
            }
        }
    }
}

fn overwrite(cur: &mut Option<String>, new: &Option<String>) {
    if new.is_some() {
        cur.clone_from(new);
    }
}

/// Appends the values of `new` not already in `cur` (up to [`MAX_MERGED`] values).
fn union(cur: &mut Vec<String>, new: &[String]) {
    let mut seen: HashSet<String> = cur.iter().cloned().collect();
    for v in new {
        if cur.len() >= MAX_MERGED {
            break;
        }
        if seen.insert(v.clone()) {
            cur.push(v.clone());
        }
    }
}

/// Appends the extensions of `new` that are not exact duplicates of one in `cur` (up to
/// [`MAX_MERGED`] extensions).
fn append_extensions(cur: &mut Vec<Extension>, new: &[Extension]) {
    let mut seen: HashSet<&str> = HashSet::new();
    let mut add = Vec::new();
    {
        seen.extend(cur.iter().map(|e| e.xml.as_str()));
        for e in new {
            if seen.insert(e.xml.as_str()) {
                add.push(e.clone());
            }
        }
    }
    for e in add {
        if cur.len() >= MAX_MERGED {
            break;
        }
        cur.push(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    fn rec(xml: &str) -> Recording {
        match parse(xml.as_bytes()) {
            Ok(Document::Recording(r)) => r,
            other => panic!("expected a recording, got {other:?}"),
        }
    }

    const S: &str = "B5Xic2dRYzGMVrle7+5nbw==";
    const ALICE: &str = "Htao/1vuRqoEqVuDsoNugQ==";
    const BOB: &str = "BeNIjHFEN3CTS9j6iHHO2w==";
    const CAROL: &str = "D6WWNdiknzJxAsQtUiopKg==";
    const ST1: &str = "/G5t25kw4xCGI7Hy6e2B/Q==";
    const ST2: &str = "c8ceuvCB3Ug+HMO99GtCxQ==";
    const T0: &str = "2024-03-11T09:14:02Z";
    const T1: &str = "2024-03-11T09:20:45Z";

    #[test]
    fn apply_partial_transfer() {
        let mut md = rec(fixture!("complete.xml"));
        let before = md.clone();
        md.apply(&rec(fixture!("partial-transfer.xml")));

        assert_eq!(md.data_mode, DataMode::Complete);
        // Carol appended, the others untouched.
        let ids: Vec<_> = md
            .participants
            .iter()
            .map(|p| p.participant_id.as_str())
            .collect();
        assert_eq!(ids, [ALICE, BOB, CAROL]);
        assert_eq!(md.participants[..2], before.participants[..]);
        assert_eq!(
            md.participant_display(CAROL),
            (
                Some("Carol".into()),
                Some("sip:carol@chicago.example.com".into())
            )
        );
        // Bob's session association keeps its associate-time and gains a disassociate-time.
        let bob = md
            .participant_session_assocs
            .iter()
            .find(|a| a.participant_id == BOB)
            .unwrap();
        assert_eq!(bob.associate_time.as_deref(), Some(T0));
        assert_eq!(bob.disassociate_time.as_deref(), Some(T1));
        assert_eq!(bob.params.len(), 1, "params kept");
        let carol = md.participant_session_assocs.last().unwrap();
        assert_eq!(carol.participant_id, CAROL);
        assert_eq!(carol.session_id, S);
        assert_eq!(carol.associate_time.as_deref(), Some(T1));
        assert_eq!(md.participant_session_assocs.len(), 3);
        // Stream associations: Bob's keeps its streams and times, Carol's is new.
        let bob = &md.participant_stream_assocs[1];
        assert_eq!(bob.participant_id, BOB);
        assert_eq!(bob.send, [ST2]);
        assert_eq!(bob.recv, [ST1]);
        assert_eq!(bob.associate_time.as_deref(), Some(T0));
        assert_eq!(bob.disassociate_time.as_deref(), Some(T1));
        assert_eq!(md.participant_stream_assocs.len(), 3);
        // Stream 2 is now sent by Carol; Bob still has sent it.
        assert_eq!(md.sender_of_stream(ST2), Some(CAROL));
        assert_eq!(md.sender_of_stream(ST1), Some(ALICE));
        assert_eq!(md.streams_sent_by(BOB), [ST2]);
        assert_eq!(md.streams_sent_by(CAROL), [ST2]);
        // Everything else unchanged.
        assert_eq!(md.sessions, before.sessions);
        assert_eq!(md.streams, before.streams);
        assert_eq!(md.extensions, before.extensions);
        assert_eq!(md.recording_id().as_deref(), Some("rec-20240311-0001"));
        // The merged state prints and parses back.
        assert_eq!(rec(&md.to_xml()), md);
    }

    #[test]
    fn apply_partial_stop_then_same_update_again() {
        let mut md = rec(fixture!("complete.xml"));
        let stop = rec(fixture!("partial-stop.xml"));
        md.apply(&stop);
        let s = &md.sessions[0];
        assert_eq!(s.start_time.as_deref(), Some(T0));
        assert_eq!(s.stop_time.as_deref(), Some("2024-03-11T09:31:10Z"));
        assert_eq!(s.reasons, ["normal call clearing"]);
        assert_eq!(s.group_ref.as_deref(), Some("JOV3g4NwQf3fsl23dS0XUg=="));
        assert_eq!(s.sip_session_ids.len(), 1);
        let a = &md.session_recording_assocs[0];
        assert_eq!(a.associate_time.as_deref(), Some(T0));
        assert_eq!(a.disassociate_time.as_deref(), Some("2024-03-11T09:31:10Z"));
        // Idempotent.
        let once = md.clone();
        md.apply(&stop);
        assert_eq!(md, once);
    }

    #[test]
    fn apply_complete_replaces() {
        let mut md = rec(fixture!("complete.xml"));
        let other = rec(fixture!("legacy-namespace.xml"));
        md.apply(&other);
        assert_eq!(md, other);
    }

    #[test]
    fn apply_merges_fields_lists_params_and_extensions() {
        let mut md = rec(concat!(
            "<recording xmlns='urn:ietf:params:xml:ns:recording:1'>",
            "<group group_id='g'/>",
            "<session session_id='s'><sipSessionID>a</sipSessionID></session>",
            "<participant participant_id='p'><nameID aor='sip:old@x'/><send>s1</send></participant>",
            "<stream stream_id='st' session_id='s'><label>1</label></stream>",
            "<participantsessionassoc participant_id='p' session_id='s'>",
            "<param pname='k' pval='1'/></participantsessionassoc>",
            "<e xmlns='urn:e'>1</e>",
            "</recording>"
        ));
        md.apply(&rec(concat!(
            "<recording xmlns='urn:ietf:params:xml:ns:recording:1'><datamode>partial</datamode>",
            "<group group_id='g'><disassociate-time>t9</disassociate-time><x:g xmlns:x='urn:x'/></group>",
            "<session session_id='s'><sipSessionID>a</sipSessionID><sipSessionID>b</sipSessionID></session>",
            "<participant participant_id='p'><nameID aor='sip:new@x'><name>New</name></nameID><send>s2</send><recv>s1</recv></participant>",
            "<stream stream_id='st'><label>9</label></stream>",
            "<stream stream_id='st2'/>",
            "<participantsessionassoc participant_id='p' session_id='s'>",
            "<param pname='k' pval='2'/><param pname='j' pval='3'/></participantsessionassoc>",
            "<participantsessionassoc participant_id='p' session_id='other'/>",
            "<e xmlns='urn:e'>1</e><e xmlns='urn:e'>2</e>",
            "</recording>"
        )));
        assert_eq!(md.data_mode, DataMode::Complete);
        assert_eq!(md.groups[0].disassociate_time.as_deref(), Some("t9"));
        assert_eq!(md.groups[0].extensions.len(), 1);
        assert_eq!(md.sessions[0].sip_session_ids, ["a", "b"]);
        let p = &md.participants[0];
        assert_eq!(p.name_ids[0].aor.as_deref(), Some("sip:new@x"));
        assert_eq!(p.name_ids.len(), 1);
        assert_eq!(p.send, ["s1", "s2"]);
        assert_eq!(p.recv, ["s1"]);
        assert_eq!(md.streams.len(), 2);
        assert_eq!(md.streams[0].label.as_deref(), Some("9"));
        assert_eq!(
            md.streams[0].session_id.as_deref(),
            Some("s"),
            "absent attribute kept"
        );
        assert_eq!(
            md.participant_session_assocs[0].params,
            [
                ("k".to_string(), "2".to_string()),
                ("j".to_string(), "3".to_string())
            ]
        );
        assert_eq!(md.participant_session_assocs.len(), 2);
        let texts: Vec<_> = md.extensions.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(texts, ["1", "2"], "duplicate extension skipped");
    }

    #[test]
    fn apply_keeps_empty_ids_apart() {
        let mut md =
            rec("<recording><participant><nameID aor='sip:a@x'/></participant></recording>");
        md.apply(&rec(
            "<recording><datamode>partial</datamode><participant><nameID aor='sip:b@x'/></participant></recording>",
        ));
        assert_eq!(md.participants.len(), 2);
    }

    #[test]
    fn apply_is_bounded() {
        let mut md = Recording::default();
        let update = Recording {
            data_mode: DataMode::Partial,
            participants: (0..MAX_MERGED + 5)
                .map(|i| Participant {
                    participant_id: format!("p{i}"),
                    ..Participant::default()
                })
                .collect(),
            participant_stream_assocs: vec![ParticipantStreamAssoc {
                participant_id: "p0".into(),
                send: (0..MAX_MERGED).map(|i| format!("s{i}")).collect(),
                ..ParticipantStreamAssoc::default()
            }],
            ..Recording::default()
        };
        md.apply(&update);
        md.apply(&update);
        let mut more = update.clone();
        more.participants = vec![Participant {
            participant_id: "new".into(),
            ..Participant::default()
        }];
        more.participant_stream_assocs[0].send = vec!["another".into()];
        md.apply(&more);
        assert_eq!(md.participants.len(), MAX_MERGED);
        assert_eq!(md.participant_stream_assocs[0].send.len(), MAX_MERGED);
    }

    #[test]
    fn sender_prefers_active_then_latest_then_legacy() {
        let md = Recording {
            participants: vec![Participant {
                participant_id: "legacy".into(),
                send: vec!["s3".into()],
                ..Participant::default()
            }],
            participant_stream_assocs: vec![
                ParticipantStreamAssoc {
                    participant_id: "a".into(),
                    send: vec!["s1".into(), "s2".into()],
                    ..ParticipantStreamAssoc::default()
                },
                ParticipantStreamAssoc {
                    participant_id: "b".into(),
                    send: vec!["s1".into()],
                    disassociate_time: Some("t".into()),
                    ..ParticipantStreamAssoc::default()
                },
                ParticipantStreamAssoc {
                    participant_id: "c".into(),
                    send: vec!["s2".into()],
                    disassociate_time: Some("t".into()),
                    ..ParticipantStreamAssoc::default()
                },
                ParticipantStreamAssoc {
                    participant_id: "d".into(),
                    send: vec!["s4".into()],
                    disassociate_time: Some("t".into()),
                    ..ParticipantStreamAssoc::default()
                },
            ],
            ..Recording::default()
        };
        assert_eq!(
            md.sender_of_stream("s1"),
            Some("a"),
            "active wins over later inactive"
        );
        assert_eq!(md.sender_of_stream(" s2 "), Some("a"));
        assert_eq!(
            md.sender_of_stream("s4"),
            Some("d"),
            "inactive when nothing else"
        );
        assert_eq!(md.sender_of_stream("s3"), Some("legacy"));
        assert_eq!(md.sender_of_stream("nope"), None);
        assert_eq!(md.streams_sent_by("a"), ["s1", "s2"]);
        assert_eq!(md.streams_sent_by("legacy"), ["s3"]);
        assert!(md.streams_sent_by("nobody").is_empty());
    }

    #[test]
    fn display_and_label_queries() {
        let md = rec(concat!(
            "<recording><participant id='p'>",
            "<nameID><name xml:lang='fr'>  </name></nameID>",
            "<nameID aor=' sip:p@x '><name xml:lang='en'>Pat</name><name>Patricia</name></nameID>",
            "</participant><participant id='q'/>",
            "<stream id='a'><label>1</label></stream><stream id='b'><label>2</label></stream>",
            "</recording>"
        ));
        assert_eq!(
            md.participant_display("p"),
            (Some("Pat".into()), Some("sip:p@x".into()))
        );
        assert_eq!(md.participant_display("q"), (None, None));
        assert_eq!(md.participant_display("unknown"), (None, None));
        assert_eq!(
            md.stream_by_label("2").map(|s| s.stream_id.as_str()),
            Some("b")
        );
        assert!(md.stream_by_label("3").is_none());
    }

    #[test]
    fn recording_id_from_hand_built_extensions() {
        let mut md = Recording::default();
        assert_eq!(md.recording_id(), None);
        md.streams.push(Stream {
            stream_id: "s".into(),
            extensions: vec![Extension::text_element("urn:v", "RecordingID", " R-9 ")],
            ..Stream::default()
        });
        assert_eq!(md.recording_id().as_deref(), Some("R-9"));
        // A broken hand-made fragment is skipped, not a panic.
        md.extensions.push(Extension {
            local_name: "x".into(),
            xml: "<x><recordingid>unterminated".into(),
            ..Extension::default()
        });
        assert_eq!(md.recording_id().as_deref(), Some("R-9"));
    }
}
