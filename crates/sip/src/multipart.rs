//! `multipart/mixed` bodies (RFC 2046 §5.1), as carried by recording-session INVITEs
//! (RFC 7866: an SDP part and an `application/rs-metadata+xml` part).
//!
//! Parsing is lenient where real SRCs are sloppy: LF-only line ends, transport padding after a
//! delimiter, a missing close delimiter, parts in any order, extra unknown parts (kept). It is
//! strict where it matters: the boundary must come from the Content-Type, and the number of
//! parts and part headers is bounded.

use crate::error::{excerpt, Error};
use crate::message::{
    expand_compact_name, is_token_byte, parse_params, random_token, split_head, MediaType,
};

/// Most parts [`parse`] accepts.
pub const MAX_PARTS: usize = 16;
/// Most header fields in one part.
pub const MAX_PART_HEADERS: usize = 32;
/// Longest boundary accepted (RFC 2046 §5.1.1 allows 70 characters; we are a bit lenient).
pub const MAX_BOUNDARY: usize = 200;

/// One body part: its headers as written (names not normalised) and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Part headers, in order, values trimmed.
    pub headers: Vec<(String, String)>,
    /// Part body, byte for byte (the CRLF before the next delimiter is not included).
    pub body: Vec<u8>,
}

impl Part {
    /// The first header called `name`, case-insensitive; compact forms match their long names
    /// (`c` for Content-Type).
    pub fn header(&self, name: &str) -> Option<&str> {
        let want = expand_compact_name(name);
        self.headers
            .iter()
            .find(|(n, _)| expand_compact_name(n).eq_ignore_ascii_case(want))
            .map(|(_, v)| v.as_str())
    }

    /// The part's media type, lowercased, without parameters (`application/sdp`).
    pub fn content_type(&self) -> Option<String> {
        self.header("Content-Type")
            .map(media_type)
            .filter(|t| !t.is_empty())
    }

    /// The Content-Disposition type, lowercased, without parameters (`session`,
    /// `recording-session`).
    pub fn disposition(&self) -> Option<String> {
        self.header("Content-Disposition")
            .map(media_type)
            .filter(|t| !t.is_empty())
    }

    /// A Content-Disposition parameter, e.g. `handling` (`Some("")` for a flag).
    pub fn disposition_param(&self, name: &str) -> Option<String> {
        self.header("Content-Disposition")
            .and_then(|v| content_type_param(v, name))
    }
}

/// A multipart body: boundary and parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Multipart {
    /// The boundary (without the leading `--`).
    pub boundary: String,
    /// The parts, in body order.
    pub parts: Vec<Part>,
}

impl Multipart {
    /// An empty body with this boundary (see [`new_boundary`]).
    pub fn new(boundary: impl Into<String>) -> Multipart {
        Multipart {
            boundary: boundary.into(),
            parts: Vec::new(),
        }
    }

    /// Appends a part with `Content-Type: content_type` (omitted when empty) followed by
    /// `headers` (e.g. `("Content-Disposition", "recording-session")`).
    pub fn push(&mut self, content_type: &str, headers: Vec<(String, String)>, body: Vec<u8>) {
        let mut all = Vec::with_capacity(headers.len() + 1);
        if !content_type.is_empty() {
            all.push(("Content-Type".to_string(), content_type.to_string()));
        }
        all.extend(headers);
        self.parts.push(Part { headers: all, body });
    }

    /// The first part with this media type (case-insensitive).
    pub fn part_by_type(&self, media: &str) -> Option<&Part> {
        self.parts.iter().find(|p| {
            p.content_type()
                .is_some_and(|t| t.eq_ignore_ascii_case(media))
        })
    }

    /// The body bytes: every part after `--boundary CRLF`, then `--boundary--CRLF`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for part in &self.parts {
            out.extend_from_slice(b"--");
            out.extend_from_slice(self.boundary.as_bytes());
            out.extend_from_slice(b"\r\n");
            for (n, v) in &part.headers {
                out.extend_from_slice(n.as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(v.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&part.body);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"--");
        out.extend_from_slice(self.boundary.as_bytes());
        out.extend_from_slice(b"--\r\n");
        out
    }

    /// The Content-Type value for the message: `multipart/mixed;boundary=...` (quoted when the
    /// boundary is not a token).
    pub fn content_type_value(&self) -> String {
        let plain = !self.boundary.is_empty()
            && self
                .boundary
                .bytes()
                .all(|b| is_token_byte(b) && !b"'`!%*~".contains(&b));
        if plain {
            format!("multipart/mixed;boundary={}", self.boundary)
        } else {
            format!(
                "multipart/mixed;boundary=\"{}\"",
                self.boundary.replace('\\', "\\\\").replace('"', "\\\"")
            )
        }
    }
}

/// A fresh random boundary.
pub fn new_boundary() -> String {
    format!("siprec-{}", random_token(24))
}

/// The media type of a Content-Type value, lowercased, without parameters:
/// `Multipart/Mixed; boundary=x` → `multipart/mixed`.
pub fn media_type(content_type_value: &str) -> String {
    content_type_value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// A parameter of a Content-Type (or Content-Disposition) value, name case-insensitive, value
/// unquoted.
pub fn content_type_param(value: &str, name: &str) -> Option<String> {
    let semi = value.find(';')?;
    parse_params(value.get(semi..).unwrap_or_default())
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn find_from(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Index where the line ending just before `idx` starts (the CRLF or LF before a delimiter
/// belongs to the delimiter, RFC 2046 §5.1.1).
fn strip_line_end_before(body: &[u8], idx: usize) -> usize {
    if idx >= 2 && body.get(idx - 2..idx) == Some(b"\r\n") {
        idx - 2
    } else if idx >= 1 && body.get(idx - 1) == Some(&b'\n') {
        idx - 1
    } else {
        idx
    }
}

/// Splits a multipart body. `content_type_value` is the message's Content-Type value; the
/// boundary comes from its `boundary` parameter (quoted or not, parameter name in any case).
///
/// RFC 2046 §5.1.1: the preamble before the first delimiter and the epilogue after the close
/// delimiter are ignored; the CRLF before each delimiter belongs to the delimiter; whitespace
/// (transport padding) may follow a delimiter. LF-only line ends are accepted, and a missing
/// close delimiter ends the last part at the end of the body.
pub fn parse(content_type_value: &str, body: &[u8]) -> Result<Multipart, Error> {
    match MediaType::parse(content_type_value) {
        Some(mt) => parse_typed(&mt, body),
        None => Err(not_multipart(&media_type(content_type_value))),
    }
}

fn not_multipart(media: &str) -> Error {
    Error::Multipart(format!("not a multipart type: {}", excerpt(media)))
}

/// [`parse`] for a Content-Type already read ([`crate::message::content_type`]).
pub fn parse_typed(content_type: &MediaType, body: &[u8]) -> Result<Multipart, Error> {
    if !content_type.is_multipart() {
        return Err(not_multipart(&content_type.essence()));
    }
    let boundary = content_type
        .boundary()
        .map(str::to_string)
        .ok_or_else(|| Error::Multipart("no boundary parameter".into()))?;
    if boundary.len() > MAX_BOUNDARY {
        return Err(Error::Multipart(format!(
            "boundary longer than {MAX_BOUNDARY} bytes"
        )));
    }
    let delimiter = format!("--{boundary}").into_bytes();

    let mut parts = Vec::new();
    let mut part_start: Option<usize> = None;
    let mut search = 0;
    let mut closed = false;
    while let Some(idx) = find_from(body, &delimiter, search) {
        let after = idx + delimiter.len();
        let at_line_start = idx == 0 || body.get(idx - 1) == Some(&b'\n');
        let is_close = body.get(after..after + 2) == Some(b"--");
        let mut j = if is_close { after + 2 } else { after };
        while matches!(body.get(j), Some(b' ' | b'\t')) {
            j += 1;
        }
        let line_end = if body.get(j..j + 2) == Some(b"\r\n") {
            Some(j + 2)
        } else if body.get(j) == Some(&b'\n') {
            Some(j + 1)
        } else if j >= body.len() || is_close {
            Some(j.min(body.len()))
        } else {
            None // the boundary is only the prefix of a longer line
        };
        let Some(line_end) = line_end.filter(|_| at_line_start) else {
            search = idx + 1;
            continue;
        };
        if let Some(start) = part_start {
            let end = strip_line_end_before(body, idx).max(start);
            parts.push(parse_part(body.get(start..end).unwrap_or_default())?);
            if parts.len() > MAX_PARTS {
                return Err(Error::TooManyParts { max: MAX_PARTS });
            }
        }
        if is_close {
            closed = true;
            break;
        }
        part_start = Some(line_end);
        search = line_end;
    }
    match (part_start, closed) {
        (None, _) => {
            return Err(Error::Multipart(
                "no delimiter line for the boundary".into(),
            ))
        }
        (Some(start), false) => {
            // No close delimiter: the last part runs to the end of the body.
            let mut end = body.len();
            if body.get(..end).is_some_and(|b| b.ends_with(b"\r\n")) {
                end -= 2;
            } else if body.get(..end).is_some_and(|b| b.ends_with(b"\n")) {
                end -= 1;
            }
            parts.push(parse_part(
                body.get(start..end.max(start)).unwrap_or_default(),
            )?);
            if parts.len() > MAX_PARTS {
                return Err(Error::TooManyParts { max: MAX_PARTS });
            }
        }
        (Some(_), true) => {}
    }
    if parts.is_empty() {
        return Err(Error::Multipart("no body parts".into()));
    }
    Ok(Multipart { boundary, parts })
}

/// One part: headers up to the first empty line, then the body. A part whose first line is
/// not a header has no headers (its whole content is the body).
fn parse_part(bytes: &[u8]) -> Result<Part, Error> {
    if let Some(rest) = bytes
        .strip_prefix(b"\r\n")
        .or_else(|| bytes.strip_prefix(b"\n"))
    {
        return Ok(Part {
            headers: Vec::new(),
            body: rest.to_vec(),
        });
    }
    let (head, body) = split_head(bytes);
    let text = String::from_utf8_lossy(head);
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)) {
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = headers.last_mut() {
                let more = line.trim();
                if !more.is_empty() {
                    v.push(' ');
                    v.push_str(more);
                }
                continue;
            }
        }
        let header = line.split_once(':').and_then(|(n, v)| {
            let n = n.trim_end();
            (!n.is_empty() && n.bytes().all(is_token_byte))
                .then(|| (n.to_string(), v.trim().to_string()))
        });
        match header {
            Some(h) => {
                if headers.len() >= MAX_PART_HEADERS {
                    return Err(Error::Multipart(format!(
                        "more than {MAX_PART_HEADERS} headers in a part"
                    )));
                }
                headers.push(h);
            }
            None => {
                // Not a header block after all: the part has no headers.
                return Ok(Part {
                    headers: Vec::new(),
                    body: bytes.to_vec(),
                });
            }
        }
    }
    Ok(Part {
        headers,
        body: body.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDP: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=sendonly\r\na=label:1\r\n";
    const XML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<recording xmlns=\"urn:ietf:params:xml:ns:recording:1\"><datamode>complete</datamode></recording>\r\n";

    #[test]
    fn round_trip() {
        let mut m = Multipart::new("OSS-unique-boundary-42");
        m.push("application/sdp", Vec::new(), SDP.as_bytes().to_vec());
        m.push(
            "application/rs-metadata+xml",
            vec![("Content-Disposition".into(), "recording-session".into())],
            XML.as_bytes().to_vec(),
        );
        let ct = m.content_type_value();
        assert_eq!(ct, "multipart/mixed;boundary=OSS-unique-boundary-42");
        let bytes = m.to_bytes();
        let back = parse(&ct, &bytes).unwrap();
        assert_eq!(back, m);
        assert_eq!(
            back.parts[1].disposition().as_deref(),
            Some("recording-session")
        );
        assert_eq!(
            back.part_by_type("APPLICATION/SDP").unwrap().body,
            SDP.as_bytes()
        );
    }

    #[test]
    fn quoted_boundary_any_case_any_order_unknown_part_kept() {
        let body = format!(
            "preamble to ignore\r\n--b:1\r\nContent-Type: application/rs-metadata+xml\r\nContent-Disposition: recording-session\r\n\r\n{XML}\r\n--b:1  \r\nc: text/plain\r\n\r\nextra\r\n--b:1\r\nContent-Type: application/sdp\r\nContent-Disposition: session;handling=required\r\n\r\n{SDP}\r\n--b:1--\r\nepilogue\r\n"
        );
        let m = parse("Multipart/Mixed; BOUNDARY=\"b:1\"", body.as_bytes()).unwrap();
        assert_eq!(m.boundary, "b:1");
        assert_eq!(m.parts.len(), 3);
        assert_eq!(
            m.parts[0].content_type().as_deref(),
            Some("application/rs-metadata+xml")
        );
        assert_eq!(m.parts[0].body, XML.as_bytes());
        assert_eq!(m.parts[1].content_type().as_deref(), Some("text/plain"));
        assert_eq!(m.parts[1].body, b"extra");
        assert_eq!(m.parts[2].body, SDP.as_bytes());
        assert_eq!(m.parts[2].disposition().as_deref(), Some("session"));
        assert_eq!(
            m.parts[2].disposition_param("HANDLING").as_deref(),
            Some("required")
        );
        // A quoted boundary is printed quoted.
        assert_eq!(
            Multipart::new("b:1").content_type_value(),
            "multipart/mixed;boundary=\"b:1\""
        );
    }

    #[test]
    fn lf_only_and_missing_close_delimiter() {
        let body = "--xyz\nContent-Type: application/sdp\n\nv=0\no=-\n--xyz\nContent-Type: application/rs-metadata\n\n<recording/>\n";
        let m = parse("multipart/mixed;boundary=xyz", body.as_bytes()).unwrap();
        assert_eq!(m.parts.len(), 2);
        assert_eq!(m.parts[0].body, b"v=0\no=-");
        assert_eq!(m.parts[1].body, b"<recording/>");
    }

    #[test]
    fn boundary_prefix_inside_content_is_not_a_delimiter() {
        let body =
            "--abc\r\nContent-Type: text/plain\r\n\r\nline\r\n--abcdef is text\r\n--abc--\r\n";
        let m = parse("multipart/mixed;boundary=abc", body.as_bytes()).unwrap();
        assert_eq!(m.parts.len(), 1);
        assert_eq!(m.parts[0].body, b"line\r\n--abcdef is text");
    }

    #[test]
    fn part_without_headers() {
        let body = "--q\r\n\r\nraw\r\n--q--";
        let m = parse("multipart/mixed;boundary=q", body.as_bytes()).unwrap();
        assert!(m.parts[0].headers.is_empty());
        assert_eq!(m.parts[0].body, b"raw");
        assert_eq!(m.parts[0].content_type(), None);
    }

    #[test]
    fn errors() {
        assert!(matches!(
            parse("application/sdp", b"v=0"),
            Err(Error::Multipart(_))
        ));
        assert!(matches!(
            parse("multipart/mixed", b"--x\r\n\r\n--x--"),
            Err(Error::Multipart(_))
        ));
        assert!(matches!(
            parse("multipart/mixed;boundary=x", b"no delimiter here"),
            Err(Error::Multipart(_))
        ));
        assert!(matches!(
            parse("multipart/mixed;boundary=x", b"--x--\r\n"),
            Err(Error::Multipart(_))
        ));
        let mut many = String::new();
        for _ in 0..(MAX_PARTS + 1) {
            many.push_str("--x\r\n\r\np\r\n");
        }
        many.push_str("--x--\r\n");
        assert_eq!(
            parse("multipart/mixed;boundary=x", many.as_bytes()),
            Err(Error::TooManyParts { max: MAX_PARTS })
        );
    }

    #[test]
    fn never_panics() {
        let body = format!("--x\r\nContent-Type: a/b\r\n\r\n{SDP}\r\n--x--\r\n").into_bytes();
        for n in 0..body.len() {
            let _ = parse("multipart/mixed;boundary=x", &body[..n]);
            let _ = parse("multipart/mixed;boundary=x", &body[n..]);
        }
        let _ = parse("multipart/mixed;boundary=\"", b"--\"");
        let _ = parse("multipart/mixed;boundary=;", b"--");
    }

    #[test]
    fn helpers() {
        assert_eq!(media_type(" Application/SDP ; x=y"), "application/sdp");
        assert_eq!(
            content_type_param("multipart/mixed; Boundary = \"a b\"", "boundary").as_deref(),
            Some("a b")
        );
        assert!(new_boundary().starts_with("siprec-"));
    }
}
