//! The lenient, bounded reader.
//!
//! Two passes: [`build_tree`] turns the bytes into a small element tree with namespaces
//! resolved (enforcing every limit and rejecting DTDs), then [`interpret`] maps the tree onto
//! the model, matching the known RFC 7865 element and attribute names case-insensitively in
//! any of the recording namespaces (or none) and keeping everything else as [`Extension`]s.

use std::collections::{HashMap, HashSet};

use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::name::PrefixDeclaration;
use quick_xml::reader::Reader;
use quick_xml::XmlVersion;

use crate::model::{
    DataMode, Document, Extension, Group, Name, NameId, Participant, ParticipantSessionAssoc,
    ParticipantStreamAssoc, Recording, Session, SessionRecordingAssoc, Stream,
};
use crate::{Error, MAX_DEPTH, MAX_DOCUMENT_SIZE, MAX_ELEMENTS, NS, NS_LEGACY, NS_SIPREC};

/// The namespace bound to the reserved `xml` prefix.
const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// Parses one metadata document: a `<recording>` (complete or partial) or a
/// `<requestsnapshot>`.
///
/// The reader is lenient about what real SRCs send (see the crate docs) and strict about
/// what could hurt: documents over [`MAX_DOCUMENT_SIZE`] bytes, deeper than [`MAX_DEPTH`],
/// with more than [`MAX_ELEMENTS`] elements, with a DTD, not UTF-8, or not well-formed are
/// rejected with an [`Error`]. It never panics.
///
/// # Errors
/// Every variant of [`Error`] except [`Error::InvalidCallMetadata`].
pub fn parse(xml: &[u8]) -> Result<Document, Error> {
    if xml.len() > MAX_DOCUMENT_SIZE {
        return Err(Error::TooLarge { size: xml.len() });
    }
    let text = std::str::from_utf8(xml).map_err(|_| Error::NotUtf8)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let root = build_tree(text)?;
    interpret(&root, text)
}

// ---------------------------------------------------------------------------------------
// Pass 1: bounded element tree with resolved namespaces.
// ---------------------------------------------------------------------------------------

/// A namespace binding: prefix (`None` = default namespace) and URI (`""` = no namespace).
type Binding = (Option<String>, String);

#[derive(Debug)]
struct Attr {
    /// Written with a prefix (`tns:session_id=…`).
    prefixed: bool,
    local: String,
    value: String,
}

#[derive(Debug)]
enum Content {
    Text(String),
    Elem(Node),
}

#[derive(Debug)]
struct Node {
    /// Resolved namespace URI; `None` for no namespace (or an undeclared prefix).
    ns: Option<String>,
    /// Local name as written.
    local: String,
    /// Attributes other than namespace declarations.
    attrs: Vec<Attr>,
    /// Text and child elements in document order.
    content: Vec<Content>,
    /// Byte range of the whole element in the source text.
    start: usize,
    end: usize,
    /// Byte length of the qualified name in the start tag.
    name_len: usize,
    /// Bindings the element's own name and attributes use, with the URI they resolved to.
    uses: Vec<Binding>,
    /// Prefixes declared on this element (`None` = default namespace).
    declared: Vec<Option<String>>,
}

fn malformed(e: impl std::fmt::Display) -> Error {
    Error::Malformed(e.to_string())
}

/// Rejects characters XML 1.0 does not allow (control characters other than tab, CR, LF,
/// and U+FFFE/U+FFFF), which could only arrive through character references or raw bytes.
fn check_chars(s: &str) -> Result<(), Error> {
    match s.chars().find(|&c| !is_xml_char(c)) {
        Some(c) => Err(Error::Malformed(format!(
            "character U+{:04X} is not allowed in XML",
            c as u32
        ))),
        None => Ok(()),
    }
}

pub(crate) fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Resolves `&name;` / `&#n;`: only the five predefined entities and character references
/// exist (no DTD is ever processed).
fn resolve_ref(r: &BytesRef<'_>, out: &mut String) -> Result<(), Error> {
    if r.is_char_ref() {
        match r.resolve_char_ref() {
            Ok(Some(c)) if is_xml_char(c) => {
                out.push(c);
                Ok(())
            }
            Ok(_) => Err(Error::Malformed(format!(
                "character reference &{}; is not allowed",
                r.as_ref()
            ))),
            Err(e) => Err(malformed(e)),
        }
    } else {
        match quick_xml::escape::resolve_predefined_entity(r.as_ref()) {
            Some(s) => {
                out.push_str(s);
                Ok(())
            }
            None => Err(Error::UndefinedEntity(r.as_ref().to_string())),
        }
    }
}

/// In-scope namespace bindings: a stack of URIs per prefix (`None` = default namespace).
#[derive(Default)]
struct Scopes {
    stacks: HashMap<Option<String>, Vec<String>>,
}

impl Scopes {
    fn declare(&mut self, prefix: Option<String>, uri: String) {
        self.stacks.entry(prefix).or_default().push(uri);
    }

    fn undeclare(&mut self, prefix: &Option<String>) {
        if let Some(stack) = self.stacks.get_mut(prefix) {
            stack.pop();
        }
    }

    /// The URI bound to `prefix`; the default namespace is `""` (no namespace) when not
    /// declared, an undeclared named prefix gives `None`.
    fn lookup(&self, prefix: &Option<String>) -> Option<&str> {
        match self.stacks.get(prefix).and_then(|s| s.last()) {
            Some(uri) => Some(uri.as_str()),
            None if prefix.is_none() => Some(""),
            None => None,
        }
    }
}

/// Reads the start tag `e` found at byte `start`: declares its namespaces and resolves its
/// name. The element's `end` is filled in when it closes.
fn open(e: &BytesStart<'_>, start: usize, scopes: &mut Scopes) -> Result<Node, Error> {
    let mut declared: HashSet<Option<String>> = HashSet::new();
    let mut attrs = Vec::new();
    let mut prefixed_attrs: Vec<String> = Vec::new();
    for attr in e.attributes() {
        let attr = attr.map_err(malformed)?;
        let value =
            attr.normalized_value(XmlVersion::Implicit1_0)
                .map_err(|err| match err {
                    quick_xml::Error::Escape(
                        quick_xml::escape::EscapeError::UnrecognizedEntity(_, name),
                    ) => Error::UndefinedEntity(name),
                    other => malformed(other),
                })?;
        check_chars(&value)?;
        match attr.key.as_namespace_binding() {
            Some(PrefixDeclaration::Default) => {
                if declared.insert(None) {
                    scopes.declare(None, value.trim().to_string());
                }
            }
            Some(PrefixDeclaration::Named(p)) => {
                // `xml` / `xmlns` are reserved, an empty prefix is meaningless: ignored.
                let prefix = Some(p.to_string());
                if !p.is_empty() && p != "xml" && p != "xmlns" && declared.insert(prefix.clone()) {
                    scopes.declare(prefix, value.trim().to_string());
                }
            }
            None => {
                let (local, prefix) = attr.key.decompose();
                if let Some(p) = &prefix {
                    prefixed_attrs.push(p.as_ref().to_string());
                }
                attrs.push(Attr {
                    prefixed: prefix.is_some(),
                    local: local.as_ref().to_string(),
                    value: value.into_owned(),
                });
            }
        }
    }

    let qname = e.name();
    let (local, prefix) = qname.decompose();
    let prefix = prefix.map(|p| p.as_ref().to_string());
    let mut uses: Vec<Binding> = Vec::new();
    let mut used: HashSet<Option<String>> = HashSet::new();
    let ns = if prefix.as_deref() == Some("xml") {
        Some(XML_NS.to_string())
    } else {
        match scopes.lookup(&prefix) {
            Some(uri) => {
                used.insert(prefix.clone());
                uses.push((prefix.clone(), uri.to_string()));
                (!uri.is_empty()).then(|| uri.to_string())
            }
            None => None,
        }
    };
    for p in prefixed_attrs {
        if p == "xml" || p == "xmlns" {
            continue;
        }
        let p = Some(p);
        if let Some(uri) = scopes.lookup(&p) {
            if used.insert(p.clone()) {
                uses.push((p, uri.to_string()));
            }
        }
    }
    Ok(Node {
        ns,
        local: local.as_ref().to_string(),
        attrs,
        content: Vec::new(),
        start,
        end: start,
        name_len: qname.as_ref().len(),
        uses,
        declared: declared.into_iter().collect(),
    })
}

/// Finishes an element: pops its namespace declarations.
fn close(mut node: Node, end: usize, scopes: &mut Scopes) -> Node {
    for p in &node.declared {
        scopes.undeclare(p);
    }
    node.end = end;
    node
}

fn push_text(stack: &mut [Node], s: &str) -> Result<(), Error> {
    match stack.last_mut() {
        Some(top) => {
            check_chars(s)?;
            if let Some(Content::Text(t)) = top.content.last_mut() {
                t.push_str(s);
            } else {
                top.content.push(Content::Text(s.to_string()));
            }
            Ok(())
        }
        None if s.chars().all(|c| c.is_ascii_whitespace()) => Ok(()),
        None => Err(Error::Malformed("text outside the root element".into())),
    }
}

fn check_declaration(d: &quick_xml::events::BytesDecl<'_>) -> Result<(), Error> {
    if let Some(enc) = d.encoding() {
        let enc = enc.map_err(malformed)?;
        let e = enc.trim().to_ascii_lowercase();
        if !matches!(e.as_str(), "utf-8" | "utf8" | "us-ascii" | "ascii") {
            return Err(Error::UnsupportedEncoding(enc.into_owned()));
        }
    }
    Ok(())
}

/// Pass 1: reads `text` into an element tree, enforcing the limits.
fn build_tree(text: &str) -> Result<Node, Error> {
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut scopes = Scopes::default();
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    let mut elements = 0usize;
    loop {
        let before = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let event = reader.read_event().map_err(|e| {
            Error::Malformed(format!("{e} (near byte {})", reader.error_position()))
        })?;
        let after = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        match event {
            Event::DocType(_) => return Err(Error::DtdNotAllowed),
            Event::Decl(d) => check_declaration(&d)?,
            Event::Start(ref e) | Event::Empty(ref e) => {
                if root.is_some() {
                    return Err(Error::Malformed("more than one root element".into()));
                }
                elements += 1;
                if elements > MAX_ELEMENTS {
                    return Err(Error::TooManyElements);
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(Error::TooDeep);
                }
                let node = open(e, before, &mut scopes)?;
                if matches!(event, Event::Start(_)) {
                    stack.push(node);
                } else {
                    let node = close(node, after, &mut scopes);
                    attach(&mut stack, &mut root, node);
                }
            }
            Event::End(_) => {
                let node = stack
                    .pop()
                    .ok_or_else(|| Error::Malformed("end tag without start tag".into()))?;
                let node = close(node, after, &mut scopes);
                attach(&mut stack, &mut root, node);
            }
            Event::Text(t) => push_text(&mut stack, &t.xml10_content())?,
            Event::CData(c) => {
                if stack.is_empty() {
                    return Err(Error::Malformed("CDATA outside the root element".into()));
                }
                push_text(&mut stack, &c.xml10_content())?;
            }
            Event::GeneralRef(r) => {
                let mut s = String::new();
                resolve_ref(&r, &mut s)?;
                if stack.is_empty() {
                    return Err(Error::Malformed(
                        "reference outside the root element".into(),
                    ));
                }
                push_text(&mut stack, &s)?;
            }
            Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.last() {
        return Err(Error::Malformed(format!(
            "document ends inside <{}>",
            open.local
        )));
    }
    root.ok_or_else(|| Error::Malformed("no root element".into()))
}

fn attach(stack: &mut [Node], root: &mut Option<Node>, node: Node) {
    match stack.last_mut() {
        Some(parent) => parent.content.push(Content::Elem(node)),
        None => *root = Some(node),
    }
}

// ---------------------------------------------------------------------------------------
// Pass 2: tree -> model.
// ---------------------------------------------------------------------------------------

impl Node {
    fn children(&self) -> impl Iterator<Item = &Node> {
        self.content.iter().filter_map(|c| match c {
            Content::Elem(n) => Some(n),
            Content::Text(_) => None,
        })
    }

    /// In a recording namespace (any of the three) or in no namespace.
    fn is_ours(&self) -> bool {
        match &self.ns {
            None => true,
            Some(uri) => [NS, NS_LEGACY, NS_SIPREC]
                .iter()
                .any(|n| uri.trim().eq_ignore_ascii_case(n)),
        }
    }

    /// A recording-namespace element with this (case-insensitive) local name.
    fn is(&self, name: &str) -> bool {
        self.is_ours() && self.local.eq_ignore_ascii_case(name)
    }

    /// Text of the element and its descendants, in document order.
    fn deep_text(&self, out: &mut String) {
        for c in &self.content {
            match c {
                Content::Text(t) => out.push_str(t),
                Content::Elem(n) => n.deep_text(out),
            }
        }
    }

    /// Trimmed text content, `None` when empty.
    fn value(&self) -> Option<String> {
        let mut s = String::new();
        self.deep_text(&mut s);
        let t = s.trim();
        (!t.is_empty()).then(|| t.to_string())
    }

    /// The trimmed value of the first attribute among `names` (case-insensitive local
    /// names, tried in order) that is present; unprefixed attributes win over prefixed ones
    /// (`tns:session_id=…`, which some generators write).
    fn attr(&self, names: &[&str]) -> Option<String> {
        [false, true].iter().find_map(|&prefixed| {
            names.iter().find_map(|n| {
                self.attrs
                    .iter()
                    .find(|a| a.prefixed == prefixed && a.local.eq_ignore_ascii_case(n))
                    .map(|a| a.value.trim().to_string())
            })
        })
    }

    fn id(&self, names: &[&str]) -> String {
        self.attr(names).unwrap_or_default()
    }

    /// Bindings the subtree uses that none of its own elements declares: they come from
    /// the ancestors and must be re-declared when the element is taken out of its context.
    fn inherited_bindings(&self) -> Vec<Binding> {
        fn walk<'a>(
            node: &'a Node,
            declared: &mut HashMap<&'a Option<String>, usize>,
            seen: &mut HashSet<&'a Option<String>>,
            out: &mut Vec<Binding>,
        ) {
            for p in &node.declared {
                *declared.entry(p).or_default() += 1;
            }
            for (p, uri) in &node.uses {
                if declared.get(p).copied().unwrap_or(0) == 0 && seen.insert(p) {
                    out.push((p.clone(), uri.clone()));
                }
            }
            for child in node.children() {
                walk(child, declared, seen, out);
            }
            for p in &node.declared {
                if let Some(n) = declared.get_mut(p) {
                    *n = n.saturating_sub(1);
                }
            }
        }
        let mut out = Vec::new();
        walk(self, &mut HashMap::new(), &mut HashSet::new(), &mut out);
        out
    }
}

/// Pass-2 state: the source text, and what is left of the byte budget for namespace
/// declarations re-declared on extensions.
struct Ctx<'s> {
    src: &'s str,
    budget: usize,
}

impl Ctx<'_> {
    /// `node` kept as an extension: raw XML with inherited namespaces re-declared.
    fn ext(&mut self, node: &Node) -> Result<Extension, Error> {
        let mut text = String::new();
        node.deep_text(&mut text);
        Ok(Extension {
            namespace: node.ns.clone(),
            local_name: node.local.clone(),
            xml: self.raw_xml(node)?,
            text,
        })
    }

    fn raw_xml(&mut self, node: &Node) -> Result<String, Error> {
        let raw = self.src.get(node.start..node.end).unwrap_or_default();
        let name_end = 1 + node.name_len;
        let (Some(head), Some(tail)) = (raw.get(..name_end), raw.get(name_end..)) else {
            return Ok(raw.to_string());
        };
        let needs = node.inherited_bindings();
        if needs.is_empty() || !head.starts_with('<') {
            return Ok(raw.to_string());
        }
        let mut decls = String::new();
        for (prefix, uri) in &needs {
            match prefix {
                None => decls.push_str(" xmlns=\""),
                Some(p) => {
                    decls.push_str(" xmlns:");
                    decls.push_str(p);
                    decls.push_str("=\"");
                }
            }
            decls.push_str(&crate::writer::escape_attr(uri));
            decls.push('"');
            if decls.len() > self.budget {
                return Err(Error::ExtensionsTooLarge);
            }
        }
        self.budget -= decls.len();
        Ok(format!("{head}{decls}{tail}"))
    }
}

/// Pass 2: maps the tree onto a [`Document`].
fn interpret(root: &Node, src: &str) -> Result<Document, Error> {
    let cx = &mut Ctx {
        src,
        budget: MAX_DOCUMENT_SIZE,
    };
    if root.is("requestsnapshot") {
        let reason = root
            .children()
            .find(|c| c.is("requestreason"))
            .and_then(Node::value);
        return Ok(Document::SnapshotRequest { reason });
    }
    if !root.is("recording") {
        return Err(Error::UnexpectedRoot(root.local.clone()));
    }
    let mut rec = Recording::default();
    for child in root.children() {
        if !child.is_ours() {
            rec.extensions.push(cx.ext(child)?);
            continue;
        }
        match child.local.to_ascii_lowercase().as_str() {
            "datamode" => {
                rec.data_mode = match child.value() {
                    Some(v) if v.eq_ignore_ascii_case("partial") => DataMode::Partial,
                    // "complete", and anything unrecognisable: RFC 7865's default.
                    _ => DataMode::Complete,
                }
            }
            "group" => rec.groups.push(group(child, cx)?),
            "session" => rec.sessions.push(session(child, cx)?),
            "participant" => {
                let p = participant(child, cx, &mut rec.extensions)?;
                rec.participants.push(p);
            }
            "stream" => rec.streams.push(stream(child, cx)?),
            "sessionrecordingassoc" => {
                let a = session_recording_assoc(child, cx, &mut rec.extensions)?;
                rec.session_recording_assocs.push(a);
            }
            "participantsessionassoc" => {
                let a = participant_session_assoc(child, cx, &mut rec.extensions)?;
                rec.participant_session_assocs.push(a);
            }
            "participantstreamassoc" => {
                let a = participant_stream_assoc(child, cx, &mut rec.extensions)?;
                rec.participant_stream_assocs.push(a);
            }
            // <extensiondata> and unknown recording-namespace elements.
            _ => rec.extensions.push(cx.ext(child)?),
        }
    }
    Ok(Document::Recording(rec))
}

/// Pushes a non-empty value.
fn push_value(list: &mut Vec<String>, node: &Node) {
    if let Some(v) = node.value() {
        list.push(v);
    }
}

fn group(node: &Node, cx: &mut Ctx<'_>) -> Result<Group, Error> {
    let mut g = Group {
        group_id: node.id(&["group_id", "id"]),
        ..Group::default()
    };
    for c in node.children() {
        if c.is("associate-time") {
            g.associate_time = c.value();
        } else if c.is("disassociate-time") {
            g.disassociate_time = c.value();
        } else {
            g.extensions.push(cx.ext(c)?);
        }
    }
    Ok(g)
}

fn session(node: &Node, cx: &mut Ctx<'_>) -> Result<Session, Error> {
    let mut s = Session {
        session_id: node.id(&["session_id", "id"]),
        ..Session::default()
    };
    for c in node.children() {
        if c.is("sipSessionID") {
            push_value(&mut s.sip_session_ids, c);
        } else if c.is("reason") {
            push_value(&mut s.reasons, c);
        } else if c.is("group-ref") {
            s.group_ref = c.value();
        } else if c.is("start-time") {
            s.start_time = c.value();
        } else if c.is("stop-time") {
            s.stop_time = c.value();
        } else {
            s.extensions.push(cx.ext(c)?);
        }
    }
    Ok(s)
}

fn participant(
    node: &Node,
    cx: &mut Ctx<'_>,
    hoisted: &mut Vec<Extension>,
) -> Result<Participant, Error> {
    let mut p = Participant {
        participant_id: node.id(&["participant_id", "id"]),
        ..Participant::default()
    };
    // Legacy SRCs put <aor> and <name> directly in <participant>.
    let mut legacy = NameId::default();
    for c in node.children() {
        if c.is("nameID") {
            p.name_ids.push(name_id(c, cx, hoisted)?);
        } else if c.is("send") {
            push_value(&mut p.send, c);
        } else if c.is("recv") {
            push_value(&mut p.recv, c);
        } else if c.is("aor") && legacy.aor.is_none() {
            legacy.aor = c.value();
        } else if c.is("name") {
            if let Some(n) = name(c) {
                legacy.names.push(n);
            }
        } else {
            p.extensions.push(cx.ext(c)?);
        }
    }
    if legacy.aor.is_some() || !legacy.names.is_empty() {
        p.name_ids.push(legacy);
    }
    Ok(p)
}

fn name(node: &Node) -> Option<Name> {
    node.value().map(|value| Name {
        lang: node.attr(&["lang"]),
        value,
    })
}

fn name_id(node: &Node, cx: &mut Ctx<'_>, hoisted: &mut Vec<Extension>) -> Result<NameId, Error> {
    let mut n = NameId {
        aor: node.attr(&["aor"]).filter(|a| !a.is_empty()),
        names: Vec::new(),
    };
    for c in node.children() {
        if c.is("name") {
            if let Some(v) = name(c) {
                n.names.push(v);
            }
        } else if c.is("aor") && n.aor.is_none() {
            n.aor = c.value();
        } else {
            hoisted.push(cx.ext(c)?);
        }
    }
    Ok(n)
}

fn stream(node: &Node, cx: &mut Ctx<'_>) -> Result<Stream, Error> {
    let mut s = Stream {
        stream_id: node.id(&["stream_id", "id"]),
        session_id: node
            .attr(&["session_id", "session"])
            .filter(|v| !v.is_empty()),
        ..Stream::default()
    };
    for c in node.children() {
        if c.is("label") && s.label.is_none() {
            s.label = c.value();
        } else {
            s.extensions.push(cx.ext(c)?);
        }
    }
    Ok(s)
}

fn session_recording_assoc(
    node: &Node,
    cx: &mut Ctx<'_>,
    hoisted: &mut Vec<Extension>,
) -> Result<SessionRecordingAssoc, Error> {
    let mut a = SessionRecordingAssoc {
        session_id: node.id(&["session_id", "session", "id"]),
        ..SessionRecordingAssoc::default()
    };
    for c in node.children() {
        if c.is("associate-time") {
            a.associate_time = c.value();
        } else if c.is("disassociate-time") {
            a.disassociate_time = c.value();
        } else {
            hoisted.push(cx.ext(c)?);
        }
    }
    Ok(a)
}

fn participant_session_assoc(
    node: &Node,
    cx: &mut Ctx<'_>,
    hoisted: &mut Vec<Extension>,
) -> Result<ParticipantSessionAssoc, Error> {
    let mut a = ParticipantSessionAssoc {
        participant_id: node.id(&["participant_id", "participant", "id"]),
        session_id: node.id(&["session_id", "session"]),
        ..ParticipantSessionAssoc::default()
    };
    for c in node.children() {
        if c.is("associate-time") {
            a.associate_time = c.value();
        } else if c.is("disassociate-time") {
            a.disassociate_time = c.value();
        } else if c.is("param") {
            // RFC 7865: <param pname=… pval=…/>; some SRCs use name/value or text content.
            let pname = c.attr(&["pname", "name"]).unwrap_or_default();
            let pval = c
                .attr(&["pval", "value"])
                .or_else(|| c.value())
                .unwrap_or_default();
            if !pname.is_empty() {
                a.params.push((pname, pval));
            }
        } else {
            hoisted.push(cx.ext(c)?);
        }
    }
    Ok(a)
}

fn participant_stream_assoc(
    node: &Node,
    cx: &mut Ctx<'_>,
    hoisted: &mut Vec<Extension>,
) -> Result<ParticipantStreamAssoc, Error> {
    let mut a = ParticipantStreamAssoc {
        participant_id: node.id(&["participant_id", "participant", "id"]),
        ..ParticipantStreamAssoc::default()
    };
    for c in node.children() {
        if c.is("send") {
            push_value(&mut a.send, c);
        } else if c.is("recv") {
            push_value(&mut a.recv, c);
        } else if c.is("associate-time") {
            a.associate_time = c.value();
        } else if c.is("disassociate-time") {
            a.disassociate_time = c.value();
        } else {
            hoisted.push(cx.ext(c)?);
        }
    }
    Ok(a)
}

/// The trimmed, non-empty text of the first element named `local` (ASCII case-insensitive,
/// any namespace) in the XML fragment `xml`, at any depth. Malformed fragments yield what
/// was found before the error.
pub(crate) fn find_descendant_text(xml: &str, local: &str) -> Option<String> {
    let mut reader = Reader::from_str(xml);
    // Depth inside the current candidate element (0 = not inside one).
    let mut inside = 0usize;
    let mut text = String::new();
    let mut depth = 0usize;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                depth += 1;
                if depth > MAX_DEPTH * 2 {
                    return None;
                }
                if inside > 0 {
                    inside += 1;
                } else if e.local_name().as_ref().eq_ignore_ascii_case(local) {
                    inside = 1;
                    text.clear();
                }
            }
            Ok(Event::End(_)) => {
                depth = depth.saturating_sub(1);
                if inside == 1 {
                    let t = text.trim();
                    if !t.is_empty() {
                        return Some(t.to_string());
                    }
                }
                inside = inside.saturating_sub(1);
            }
            Ok(Event::Text(t)) if inside > 0 => text.push_str(&t.xml10_content()),
            Ok(Event::CData(c)) if inside > 0 => text.push_str(&c.xml10_content()),
            Ok(Event::GeneralRef(r)) if inside > 0 => {
                if resolve_ref(&r, &mut text).is_err() {
                    return None;
                }
            }
            Ok(Event::Eof) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests;
