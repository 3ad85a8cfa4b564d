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
mod tests {
    use super::*;

    fn rec(xml: &str) -> Recording {
        match parse(xml.as_bytes()) {
            Ok(Document::Recording(r)) => r,
            other => panic!("expected a recording, got {other:?}"),
        }
    }

    /// parse → print → parse gives the same model, and printing is stable.
    fn assert_round_trip(xml: &str) -> Recording {
        let first = rec(xml);
        let printed = first.to_xml();
        let second = rec(&printed);
        assert_eq!(
            first, second,
            "round trip changed the model; printed:\n{printed}"
        );
        assert_eq!(printed, second.to_xml(), "printing is not stable");
        first
    }

    const S: &str = "B5Xic2dRYzGMVrle7+5nbw==";
    const ALICE: &str = "Htao/1vuRqoEqVuDsoNugQ==";
    const BOB: &str = "BeNIjHFEN3CTS9j6iHHO2w==";
    const ST1: &str = "/G5t25kw4xCGI7Hy6e2B/Q==";
    const ST2: &str = "c8ceuvCB3Ug+HMO99GtCxQ==";
    const T0: &str = "2024-03-11T09:14:02Z";

    #[test]
    fn complete_document() {
        let r = assert_round_trip(fixture!("complete.xml"));
        assert_eq!(r.data_mode, DataMode::Complete);
        assert_eq!(r.groups.len(), 1);
        assert_eq!(r.groups[0].group_id, "JOV3g4NwQf3fsl23dS0XUg==");
        assert_eq!(r.groups[0].associate_time.as_deref(), Some(T0));

        let s = &r.sessions[0];
        assert_eq!(s.session_id, S);
        assert_eq!(
            s.sip_session_ids,
            ["ab30317f1a784dc48ff824d0d3715d86;remote=47755a9de7794ba387653f2099600ef2"]
        );
        assert_eq!(s.group_ref.as_deref(), Some("JOV3g4NwQf3fsl23dS0XUg=="));
        assert_eq!(s.start_time.as_deref(), Some(T0));
        assert_eq!(s.stop_time, None);
        assert_eq!(s.extensions.len(), 1);
        let queue = &s.extensions[0];
        assert_eq!(
            queue.namespace.as_deref(),
            Some("http://example.com/acme-contact-center")
        );
        assert_eq!(queue.local_name, "queue");
        assert_eq!(queue.text, "billing & claims");
        assert_eq!(
            queue.xml,
            r#"<ac:queue xmlns:ac="http://example.com/acme-contact-center">billing &amp; claims</ac:queue>"#
        );

        assert_eq!(r.participants.len(), 2);
        let a = &r.participants[0];
        assert_eq!(a.participant_id, ALICE);
        assert_eq!(
            a.name_ids,
            [NameId {
                aor: Some("sip:alice@atlanta.example.com".into()),
                names: vec![Name {
                    lang: Some("en".into()),
                    value: "Alice".into()
                }],
            }]
        );
        assert!(a.send.is_empty() && a.recv.is_empty() && a.extensions.is_empty());

        assert_eq!(r.streams.len(), 2);
        assert_eq!(r.streams[0].stream_id, ST1);
        assert_eq!(r.streams[0].session_id.as_deref(), Some(S));
        assert_eq!(r.streams[0].label.as_deref(), Some("1"));
        assert_eq!(r.streams[1].label.as_deref(), Some("2"));

        assert_eq!(r.session_recording_assocs.len(), 1);
        assert_eq!(r.session_recording_assocs[0].session_id, S);
        assert_eq!(r.participant_session_assocs.len(), 2);
        let psa = &r.participant_session_assocs[1];
        assert_eq!(
            (psa.participant_id.as_str(), psa.session_id.as_str()),
            (BOB, S)
        );
        assert_eq!(
            psa.params,
            [(
                "+sip.instance".to_string(),
                "<urn:uuid:0f2c37ef-b38d-4a68-b8a1-9f4fc491aeb5>".to_string()
            )]
        );
        assert_eq!(r.participant_stream_assocs.len(), 2);
        assert_eq!(r.participant_stream_assocs[0].send, [ST1]);
        assert_eq!(r.participant_stream_assocs[0].recv, [ST2]);
        assert_eq!(
            r.participant_stream_assocs[0].associate_time.as_deref(),
            Some(T0)
        );

        assert_eq!(r.extensions.len(), 1);
        assert_eq!(r.recording_id().as_deref(), Some("rec-20240311-0001"));
        assert_eq!(r.sender_of_stream(ST2), Some(BOB));
        assert_eq!(r.streams_sent_by(ALICE), [ST1]);
    }

    #[test]
    fn partial_documents_round_trip() {
        let t = assert_round_trip(fixture!("partial-transfer.xml"));
        assert_eq!(t.data_mode, DataMode::Partial);
        assert_eq!(t.participants.len(), 1);
        assert_eq!(
            t.participant_session_assocs[0].disassociate_time.as_deref(),
            Some("2024-03-11T09:20:45Z")
        );
        assert_eq!(t.participant_session_assocs[0].associate_time, None);
        let s = assert_round_trip(fixture!("partial-stop.xml"));
        assert_eq!(s.data_mode, DataMode::Partial);
        assert_eq!(s.sessions[0].reasons, ["normal call clearing"]);
        assert_eq!(s.sessions[0].start_time, None);
    }

    #[test]
    fn legacy_namespace_and_legacy_participant_children() {
        let r = assert_round_trip(fixture!("legacy-namespace.xml"));
        let sid = "urn:uuid:60360678-19e4-459f-88ff-fe5e745dfe94";
        let alice = "urn:uuid:0f2c37ef-b38d-4a68-b8a1-9f4fc491aeb5";
        let bob = "urn:uuid:0a85ebb9-5d38-42d0-9ab1-ddcc790700f6";
        let st1 = "urn:uuid:7d4adce2-d955-4c2d-bb9f-2b2defac4e4f";
        let st2 = "dc1212788f874da988cc0335f317cfd9";
        assert_eq!(r.data_mode, DataMode::Complete);
        assert_eq!(r.sessions[0].session_id, sid);
        assert_eq!(
            r.sessions[0].start_time.as_deref(),
            Some("2024-03-11T09:14:02")
        );
        assert_eq!(r.participants[0].participant_id, alice);
        assert_eq!(r.participants[0].send, [st1]);
        // <extensiondata> inside a participant, kept with its prefix declaration and the
        // inherited (legacy) default namespace re-declared.
        let ext = &r.participants[0].extensions[0];
        assert_eq!(ext.local_name, "extensiondata");
        assert_eq!(ext.namespace.as_deref(), Some(NS_LEGACY));
        assert!(ext.xml.starts_with(
            "<extensiondata xmlns=\"urn:ietf:params:xml:ns:recording\" xmlns:vnd=\"http://example.com/sbc-vendor/extensiondata\">"
        ));
        assert!(ext.text.contains("00001038741710148243"));
        // <aor>/<name> directly in <participant>.
        assert_eq!(
            r.participant_display(bob),
            (Some("Bob".into()), Some("sip:bob@192.0.2.20".into()))
        );
        assert_eq!(
            r.participant_display(alice),
            (Some("Alice".into()), Some("sip:alice@192.0.2.10".into()))
        );
        assert_eq!(r.participants[1].recv, [st1]);
        // Streams: id= and session= attributes; unknown <mode> kept as an extension.
        assert_eq!(r.streams[0].stream_id, st1);
        assert_eq!(r.streams[0].session_id.as_deref(), Some(sid));
        assert_eq!(r.streams[0].extensions[0].local_name, "mode");
        assert_eq!(r.streams[1].stream_id, st2);
        // No association elements: legacy <send> drives the stream mapping.
        assert!(r.participant_stream_assocs.is_empty());
        assert!(r.participant_session_assocs.is_empty());
        assert_eq!(r.sender_of_stream(st2), Some(bob));
        assert_eq!(r.streams_sent_by(alice), [st1]);
        assert_eq!(
            r.stream_by_label("11").map(|s| s.stream_id.as_str()),
            Some(st2)
        );
    }

    #[test]
    fn siprec_namespace_with_id_attributes() {
        let r = assert_round_trip(fixture!("siprec-namespace.xml"));
        let g = "e237e617-96a9-4adc-a86f-fba6ed0c4c91";
        let s = "7d5280e5-4fb5-40f8-aaa0-3f73f78cb626";
        let p = "3882475c-9dff-4518-a26c-64dc5e960bd5";
        assert_eq!(r.groups[0].group_id, g);
        assert_eq!(r.sessions[0].session_id, s);
        assert_eq!(r.sessions[0].group_ref.as_deref(), Some(g));
        assert_eq!(r.participants[0].participant_id, p);
        assert_eq!(
            r.participant_display(p),
            (None, Some("tel:+15551230001".into()))
        );
        assert_eq!(r.streams[0].session_id.as_deref(), Some(s));
        assert_eq!(r.participant_stream_assocs[0].participant_id, p);
        assert_eq!(r.participant_session_assocs[0].participant_id, p);
        assert_eq!(r.participant_session_assocs[0].session_id, s);
        assert_eq!(r.session_recording_assocs[0].session_id, s);
        assert_eq!(r.sender_of_stream("NYGUtesW6j1w8G9bhF/jaA=="), Some(p));
    }

    #[test]
    fn no_namespace() {
        let r = assert_round_trip(fixture!("no-namespace.xml"));
        assert_eq!(r.data_mode, DataMode::Partial);
        assert_eq!(r.sessions[0].session_id, "iokuZ7hNUgHL88WS5aH0ZA==");
        assert_eq!(r.streams[0].label.as_deref(), Some("1"));
        assert_eq!(r.extensions.len(), 1);
        assert_eq!(r.extensions[0].namespace, None);
        // Printed inside a namespaced root, it must stay in no namespace.
        assert!(r.extensions[0]
            .xml
            .starts_with("<extensiondata xmlns=\"\">"));
        assert_eq!(r.recording_id().as_deref(), Some("no-ns-recording"));
    }

    #[test]
    fn tns_prefix_and_inherited_prefix_redeclared() {
        let r = assert_round_trip(fixture!("prefixed-tns.xml"));
        assert_eq!(r.data_mode, DataMode::Complete);
        // The unprefixed session_id wins over tns:session_id.
        assert_eq!(r.sessions[0].session_id, "iokuZ7hNUgHL88WS5aH0ZA==");
        assert_eq!(
            r.sessions[0].start_time.as_deref(),
            Some("2024-03-11T10:00:00Z")
        );
        assert_eq!(
            r.participant_display("NYGUtesW6j1w8G9bhF/jaA=="),
            (
                Some("Agent 7".into()),
                Some("sip:agent7@acme.example.com".into())
            )
        );
        assert_eq!(r.streams[0].label.as_deref(), Some("1"));
        assert_eq!(
            r.sender_of_stream("ZZGME522aY171TydEiWb0w=="),
            Some("NYGUtesW6j1w8G9bhF/jaA==")
        );
        let ext = &r.extensions[0];
        assert_eq!(ext.namespace.as_deref(), Some("http://example.com/acme"));
        assert_eq!(ext.local_name, "tenant");
        assert_eq!(
            ext.xml,
            r#"<acme:tenant xmlns:acme="http://example.com/acme" acme:tier="gold">blue</acme:tenant>"#
        );
    }

    #[test]
    fn rs_prefix_with_foreign_default_namespace() {
        let r = assert_round_trip(fixture!("prefixed-rs.xml"));
        assert_eq!(r.sessions[0].session_id, "iokuZ7hNUgHL88WS5aH0ZA==");
        assert_eq!(r.streams[0].label.as_deref(), Some("7"));
        let note = &r.extensions[0];
        assert_eq!(note.namespace.as_deref(), Some("http://example.com/notes"));
        assert_eq!(note.text, "customer asked for callback");
        assert_eq!(
            note.xml,
            r#"<note xmlns="http://example.com/notes" lang="en">customer asked for <b>callback</b></note>"#
        );
    }

    #[test]
    fn any_order_case_whitespace_and_unknown_elements() {
        let r = assert_round_trip(fixture!("any-order.xml"));
        let p = "9f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e";
        let st = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
        assert_eq!(r.data_mode, DataMode::Partial);
        assert_eq!(r.participant_stream_assocs[0].participant_id, p);
        assert_eq!(r.participant_stream_assocs[0].send, [st]);
        assert_eq!(r.streams[0].stream_id, st);
        assert_eq!(r.streams[0].session_id.as_deref(), Some("0011223344556677"));
        assert_eq!(r.streams[0].label.as_deref(), Some("1"));
        assert_eq!(r.participants[0].participant_id, p);
        assert_eq!(r.participant_display(p).0.as_deref(), Some("Dave"));
        assert_eq!(r.sessions[0].session_id, "0011223344556677");
        assert_eq!(
            r.sessions[0].sip_session_ids,
            ["ab30317f1a784dc48ff824d0d3715d86"]
        );
        assert_eq!(
            r.sessions[0].start_time.as_deref(),
            Some("2024-03-11 10:00:00.250+01:00")
        );
        assert_eq!(r.extensions.len(), 1);
        assert_eq!(r.extensions[0].local_name, "futureElement");
        assert_eq!(r.extensions[0].namespace.as_deref(), Some(NS));
        assert_eq!(r.extensions[0].text, "kept, not an error");
        let label = r.stream_by_label(" 1 ").map(|s| s.stream_id.as_str());
        assert_eq!(label, Some(st));
        assert_eq!(r.sender_of_stream(st), Some(p));
    }

    #[test]
    fn empty_recording_and_empty_elements() {
        let r = rec(r#"<recording xmlns="urn:ietf:params:xml:ns:recording:1"/>"#);
        assert_eq!(r, Recording::default());
        let r = rec(concat!(
            "<recording><participant participant_id=''><nameID aor=''><name> </name></nameID>",
            "<send/></participant><stream stream_id='s' session_id=''><label></label></stream>",
            "<datamode>sometimes</datamode></recording>"
        ));
        assert_eq!(r.data_mode, DataMode::Complete);
        assert_eq!(r.participants[0].participant_id, "");
        assert_eq!(r.participants[0].name_ids, [NameId::default()]);
        assert!(r.participants[0].send.is_empty());
        assert_eq!(r.streams[0].session_id, None);
        assert_eq!(r.streams[0].label, None);
        assert_round_trip(&r.to_xml());
    }

    #[test]
    fn extensions_inside_associations_are_kept_at_the_root() {
        let r = assert_round_trip(concat!(
            r#"<recording xmlns="urn:ietf:params:xml:ns:recording:1" xmlns:x="urn:x">"#,
            r#"<participantstreamassoc participant_id="p"><send>s</send><x:a>1</x:a></participantstreamassoc>"#,
            r#"<participant participant_id="p"><nameID aor="sip:p@x"><x:b>2</x:b></nameID></participant>"#,
            r#"</recording>"#
        ));
        let names: Vec<_> = r.extensions.iter().map(|e| e.local_name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(r.extensions[0].xml, r#"<x:a xmlns:x="urn:x">1</x:a>"#);
    }

    #[test]
    fn snapshot_request() {
        let d = parse(fixture!("snapshot-request.xml").as_bytes()).unwrap();
        assert_eq!(
            d,
            Document::SnapshotRequest {
                reason: Some("SRS lost its state after a restart".into())
            }
        );
        let d = parse(b"<rs:RequestSnapshot xmlns:rs='urn:ietf:params:xml:ns:recording'/>");
        assert_eq!(d, Ok(Document::SnapshotRequest { reason: None }));
    }

    #[test]
    fn recording_id_variants() {
        let r = rec(fixture!("recordingid-extensiondata.xml"));
        assert_eq!(r.recording_id().as_deref(), Some("vnd-rec-7781"));
        let r = rec(fixture!("recordingid-deep.xml"));
        assert_eq!(r.recording_id().as_deref(), Some("deep-rec-9"));
        let r = rec(fixture!("no-namespace.xml"));
        assert_eq!(r.recording_id().as_deref(), Some("no-ns-recording"));
        // Upper case, no namespace, directly in a participant.
        let r = rec("<recording><participant id='p'><RECORDINGID> P-1 </RECORDINGID></participant></recording>");
        assert_eq!(r.recording_id().as_deref(), Some("P-1"));
        // In a stream, prefixed.
        let r = rec("<recording xmlns:q='urn:q'><stream id='s'><q:RecordingId>S-1</q:RecordingId></stream></recording>");
        assert_eq!(r.recording_id().as_deref(), Some("S-1"));
        // Root extensions come first.
        let r = rec(concat!(
            "<recording><session id='s'><recordingid>from-session</recordingid></session>",
            "<recordingid xmlns='urn:x-siprec-rs:ext'>from-root</recordingid></recording>"
        ));
        assert_eq!(r.recording_id().as_deref(), Some("from-root"));
        // Blank or absent: none (never a placeholder).
        let r = rec("<recording><recordingid>  </recordingid><extensiondata/></recording>");
        assert_eq!(r.recording_id(), None);
        assert_eq!(
            rec(fixture!("complete.xml")).recording_id().as_deref(),
            Some("rec-20240311-0001")
        );
        assert_eq!(rec(fixture!("legacy-namespace.xml")).recording_id(), None);
    }

    #[test]
    fn dtd_is_rejected() {
        for doc in [
            fixture!("doctype-entity.xml"),
            fixture!("billion-laughs.xml"),
            fixture!("external-entity.xml"),
        ] {
            assert_eq!(parse(doc.as_bytes()), Err(Error::DtdNotAllowed));
        }
    }

    #[test]
    fn undefined_entities_are_rejected() {
        assert_eq!(
            parse(fixture!("undefined-entity.xml").as_bytes()),
            Err(Error::UndefinedEntity("who".into()))
        );
        assert_eq!(
            parse(b"<recording><stream id='&who;'/></recording>"),
            Err(Error::UndefinedEntity("who".into()))
        );
        // The five predefined entities and character references are fine.
        let r = rec("<recording><stream id='&lt;&#65;&amp;&#x42;&gt;'><label>&apos;&quot;</label></stream></recording>");
        assert_eq!(r.streams[0].stream_id, "<A&B>");
        assert_eq!(r.streams[0].label.as_deref(), Some("'\""));
    }

    #[test]
    fn encodings() {
        assert_eq!(
            parse(fixture!("latin1-declared.xml").as_bytes()),
            Err(Error::UnsupportedEncoding("ISO-8859-1".into()))
        );
        let latin1 = b"<?xml version='1.0' encoding='ISO-8859-1'?><recording><participant id='p'><nameID><name>Zo\xeb</name></nameID></participant></recording>";
        assert_eq!(parse(latin1), Err(Error::NotUtf8));
        let utf16 = b"\xff\xfe<\0r\0/\0>\0";
        assert_eq!(parse(utf16), Err(Error::NotUtf8));
        // UTF-8 with a BOM and non-ASCII text.
        let r = rec("\u{feff}<?xml version='1.0' encoding='utf-8'?><recording><participant id='p'><nameID><name>Zoë 张</name></nameID></participant></recording>");
        assert_eq!(r.participant_display("p").0.as_deref(), Some("Zoë 张"));
        assert!(parse(b"<?xml version='1.0' encoding='US-ASCII'?><recording/>").is_ok());
    }

    #[test]
    fn size_limit() {
        let mut big = String::from("<recording>");
        while big.len() <= MAX_DOCUMENT_SIZE {
            big.push_str("<!-- padding padding padding padding padding padding -->");
        }
        big.push_str("</recording>");
        assert_eq!(
            parse(big.as_bytes()),
            Err(Error::TooLarge { size: big.len() })
        );
        let exact = format!(
            "<recording>{}</recording>",
            " ".repeat(MAX_DOCUMENT_SIZE - 23)
        );
        assert_eq!(exact.len(), MAX_DOCUMENT_SIZE);
        assert!(parse(exact.as_bytes()).is_ok());
    }

    fn nested(depth: usize) -> String {
        let mut s = String::from("<recording>");
        for _ in 1..depth {
            s.push_str("<x:e xmlns:x='urn:x'>");
        }
        for _ in 1..depth {
            s.push_str("</x:e>");
        }
        s.push_str("</recording>");
        s
    }

    #[test]
    fn depth_limit() {
        assert!(parse(nested(MAX_DEPTH).as_bytes()).is_ok());
        assert_eq!(parse(nested(MAX_DEPTH + 1).as_bytes()), Err(Error::TooDeep));
        // A deep but unclosed document is still reported as too deep, not read further.
        let open_only = "<a>".repeat(MAX_DEPTH * 100);
        assert_eq!(parse(open_only.as_bytes()), Err(Error::TooDeep));
    }

    #[test]
    fn element_count_limit() {
        let doc = |n: usize| format!("<recording>{}</recording>", "<e/>".repeat(n - 1));
        let r = rec(&doc(MAX_ELEMENTS));
        assert_eq!(r.extensions.len(), MAX_ELEMENTS - 1);
        assert_eq!(
            parse(doc(MAX_ELEMENTS + 1).as_bytes()),
            Err(Error::TooManyElements)
        );
    }

    #[test]
    fn unexpected_root() {
        assert_eq!(
            parse(fixture!("unexpected-root.xml").as_bytes()),
            Err(Error::UnexpectedRoot("conference-info".into()))
        );
        // The right name in a foreign namespace is not a recording.
        assert_eq!(
            parse(b"<recording xmlns='urn:example:other'/>"),
            Err(Error::UnexpectedRoot("recording".into()))
        );
    }

    #[test]
    fn malformed_documents() {
        for doc in [
            "",
            "   ",
            "<!-- only a comment -->",
            "<recording>",
            "<recording></session>",
            "<recording/><recording/>",
            "<recording/>trailing text",
            "text<recording/>",
            "<recording a='1' a='2'/>",
            "<recording><stream id='1></recording>",
            "<recording>&#1;</recording>",
            "<recording>&#xFFFF;</recording>",
            "<recording>\u{1}</recording>",
            "<recording><label>&#xZZ;</label></recording>",
            "<recording>&amp</recording>",
            "</recording>",
        ] {
            match parse(doc.as_bytes()) {
                Err(Error::Malformed(_)) => {}
                other => panic!("{doc:?}: expected Malformed, got {other:?}"),
            }
        }
    }

    #[test]
    fn namespace_redeclaration_is_bounded() {
        // Ten extensions each relying on a 100 KB namespace URI declared on the root.
        let uri = format!("urn:{}", "x".repeat(100_000));
        let doc = format!(
            "<recording xmlns:p='{uri}'>{}</recording>",
            "<p:a/>".repeat(10)
        );
        assert!(doc.len() < MAX_DOCUMENT_SIZE);
        assert_eq!(parse(doc.as_bytes()), Err(Error::ExtensionsTooLarge));
        // Two of them fit.
        let doc = format!("<recording xmlns:p='{uri}'><p:a/><p:a/></recording>");
        let r = rec(&doc);
        assert_eq!(r.extensions.len(), 2);
        assert!(r.extensions[1].xml.starts_with("<p:a xmlns:p=\"urn:xxx"));
    }

    #[test]
    fn many_prefixes_in_deep_extensions() {
        // Thousands of prefixes declared on the root, used 30 levels down.
        let n = 4000;
        let mut doc = String::from("<recording");
        for i in 0..n {
            doc.push_str(&format!(" xmlns:p{i}='u'"));
        }
        doc.push('>');
        doc.push_str(&"<w:x xmlns:w='w'>".repeat(30));
        for i in 0..n {
            doc.push_str(&format!("<p{i}:a/>"));
        }
        doc.push_str(&"</w:x>".repeat(30));
        doc.push_str("</recording>");
        let r = rec(&doc);
        assert_eq!(r.extensions.len(), 1);
        assert!(r.extensions[0].xml.contains(" xmlns:p3999=\"u\""));
        assert_eq!(rec(&r.to_xml()), r);
    }

    /// Every prefix of a valid document parses to Ok or Err, never panics.
    #[test]
    fn truncated_prefixes_never_panic() {
        let docs = [
            fixture!("complete.xml"),
            fixture!("legacy-namespace.xml"),
            fixture!("prefixed-rs.xml"),
            "<recording><participant id='p'><nameID aor='sip:zoë@x'><name>Zoë 张 &amp; co</name></nameID></participant></recording>",
        ];
        for doc in docs {
            let bytes = doc.as_bytes();
            for n in 0..=bytes.len() {
                let _ = parse(&bytes[..n]);
            }
            assert!(parse(bytes).is_ok());
        }
    }

    /// Deterministic byte mutations of a valid document: Ok or Err, never a panic.
    #[test]
    fn mutated_documents_never_panic() {
        let base = fixture!("complete.xml").as_bytes();
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"<>/=&;'\"!?[]-: xa#\x00\xff\xc3";
        for _ in 0..2000 {
            let mut doc = base.to_vec();
            for _ in 0..(next() % 4 + 1) {
                let i = (next() as usize) % doc.len();
                match next() % 3 {
                    0 => doc[i] = alphabet[(next() as usize) % alphabet.len()],
                    1 => {
                        doc.remove(i);
                    }
                    _ => doc.insert(i, alphabet[(next() as usize) % alphabet.len()]),
                }
            }
            if let Ok(Document::Recording(r)) = parse(&doc) {
                // Whatever was accepted prints to something that parses again.
                assert!(parse(r.to_xml().as_bytes()).is_ok());
            }
        }
    }
}
