//! Responses built from requests, branches, tags and Call-IDs.

use super::*;

/// Builds a response to `req` (RFC 3261 §8.2.6.2): every Via (in order), From, To, Call-ID and
/// CSeq copied; `;tag=to_tag` added to To when given and To has no tag yet;
/// `Content-Length: 0`. A 100 also copies Timestamp (§8.2.6.1); a 101–299 response to an
/// INVITE or SUBSCRIBE copies Record-Route (§12.1.1). `reason` overrides the standard phrase
/// (see [`status_code`]).
pub fn make_response(
    req: &Request,
    code: u16,
    reason: Option<&str>,
    to_tag: Option<&str>,
) -> Response {
    let mut headers: Vec<Header> = req
        .headers
        .iter()
        .filter(|h| matches!(h, Header::Via(_)))
        .cloned()
        .collect();
    let first = |pick: fn(&Header) -> bool| req.headers.iter().find(|h| pick(h)).cloned();
    if let Some(h) = first(|h| matches!(h, Header::From(_))) {
        headers.push(h);
    }
    if let Some(h) = first(|h| matches!(h, Header::To(_))) {
        let to = match (&h, to_tag.map(str::trim).filter(|t| !t.is_empty())) {
            (Header::To(to), Some(tag)) if tag_of(to.value()).is_none() => Header::To(
                rsip::headers::To::new(format!("{};tag={}", to.value().trim(), tag)),
            ),
            _ => h,
        };
        headers.push(to);
    }
    for pick in [
        (|h: &Header| matches!(h, Header::CallId(_))) as fn(&Header) -> bool,
        |h: &Header| matches!(h, Header::CSeq(_)),
    ] {
        if let Some(h) = first(pick) {
            headers.push(h);
        }
    }
    if code == 100 {
        if let Some(h) = first(|h| matches!(h, Header::Timestamp(_))) {
            headers.push(h);
        }
    }
    if (101..300).contains(&code) && matches!(req.method, Method::Invite | Method::Subscribe) {
        headers.extend(
            req.headers
                .iter()
                .filter(|h| matches!(h, Header::RecordRoute(_)))
                .cloned(),
        );
    }
    headers.push(Header::ContentLength(0u32.into()));
    Response {
        status_code: status_code(code, reason),
        version: rsip::Version::V2,
        headers: headers.into(),
        body: Vec::new(),
    }
}

/// Builds a 400 for bytes rsip could not parse, when the headers a response needs can be found
/// (RFC 3261 §8.1.3.1 needs Via, From, To, Call-ID, CSeq). Responses are never answered.
/// Bytes that are not UTF-8 elsewhere in the message (a header value, the body) do not stop
/// the answer; in one of those five headers they do (they would be echoed). The reason goes
/// into a `Warning: 399 <agent> "…"` header (RFC 3261 §20.43).
pub fn raw_bad_request(bytes: &[u8], why: &str, agent: &str) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(bytes.get(..bytes.len().min(8192))?);
    let mut lines = text.split("\r\n");
    let first = lines.next()?;
    if first.starts_with("SIP/") || !first.ends_with("SIP/2.0") {
        return None;
    }
    let mut out = String::from("SIP/2.0 400 Bad Request\r\n");
    let mut have = [false; 5];
    for line in lines.take(256) {
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let n = name.trim().to_ascii_lowercase();
        let idx = match n.as_str() {
            "via" | "v" => 0,
            "from" | "f" => 1,
            "to" | "t" => 2,
            "call-id" | "i" => 3,
            "cseq" => 4,
            _ => continue,
        };
        if value.contains(char::REPLACEMENT_CHARACTER) {
            return None;
        }
        have[idx] = true;
        let canonical = ["Via", "From", "To", "Call-ID", "CSeq"][idx];
        out.push_str(&format!("{canonical}: {}\r\n", value.trim()));
    }
    if !have.iter().all(|h| *h) {
        return None;
    }
    let why: String = why.chars().filter(|c| !c.is_control()).take(200).collect();
    out.push_str(&format!(
        "Warning: 399 {agent} \"{}\"\r\nContent-Length: 0\r\n\r\n",
        why.replace('"', "'")
    ));
    Some(out.into_bytes())
}

pub(crate) fn random_token(len: usize) -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// A fresh Via branch: the RFC 3261 magic cookie `z9hG4bK` followed by 22 random
/// alphanumerics (§8.1.1.7).
pub fn new_branch() -> String {
    format!("{BRANCH_MAGIC_COOKIE}{}", random_token(22))
}

/// A fresh From/To tag: 16 random alphanumerics (≥ 32 bits of randomness, RFC 3261 §19.3).
pub fn new_tag() -> String {
    random_token(16)
}

/// A fresh Call-ID: 24 random alphanumerics, `@host` appended when `host` is given.
pub fn new_call_id(host: Option<&str>) -> String {
    match host {
        Some(h) if !h.is_empty() => format!("{}@{h}", random_token(24)),
        _ => random_token(24),
    }
}
