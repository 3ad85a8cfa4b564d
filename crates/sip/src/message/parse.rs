//! SIP message parsing: [`parse_message`] and what it needs.

use super::*;

/// Splits a message into its header section (start line included, blank line excluded) and
/// the bytes after the blank line. LF-only line ends are tolerated. Without a blank line the
/// whole input is the header section.
pub(crate) fn split_head(buf: &[u8]) -> (&[u8], &[u8]) {
    let mut from = 0;
    while let Some(p) = buf
        .get(from..)
        .and_then(|s| s.iter().position(|&b| b == b'\n'))
    {
        let nl = from + p;
        let rest = buf.get(nl + 1..).unwrap_or_default();
        let skip = if rest.starts_with(b"\n") {
            Some(2)
        } else if rest.starts_with(b"\r\n") {
            Some(3)
        } else {
            None
        };
        if let Some(skip) = skip {
            return (
                buf.get(..nl).unwrap_or_default(),
                buf.get(nl + skip..).unwrap_or_default(),
            );
        }
        from = nl + 1;
    }
    (buf, &[])
}

/// Parses `Content-Length`-style values: ASCII digits only, at most 10 of them.
pub(crate) fn parse_length(v: &str) -> Option<usize> {
    let v = v.trim();
    if v.is_empty() || v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// Parses a `CSeq` value into its number and method text (RFC 3261 §20.16).
pub fn parse_cseq(value: &str) -> Option<(u32, &str)> {
    let mut it = value.split_ascii_whitespace();
    let num = it.next()?;
    let method = it.next()?;
    if it.next().is_some() || num.len() > 10 || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !method.bytes().all(is_token_byte) {
        return None;
    }
    Some((num.parse().ok()?, method))
}

/// Parses one SIP message (a UDP datagram, or one message cut out of a stream by
/// [`crate::framing::StreamFramer`]).
///
/// It is read in one pass, straight into rsip's types:
/// - messages over [`MAX_MESSAGE_SIZE`] and header sections over [`MAX_HEADERS`] fields are
///   refused;
/// - CRLFs before the start line are skipped (RFC 3261 §7.5), LF-only line ends are accepted,
///   continuation lines are unfolded (§7.3.1) and whitespace before a header colon is removed;
/// - compact header names are expanded (§7.3.3, IANA registry): `i:` becomes `Call-ID:`;
/// - Content-Length is enforced: a longer body is cut to it (datagram rule, RFC 3261 §18.3), a
///   shorter one is [`Error::ContentLengthMismatch`]; without Content-Length the body is the
///   rest of the input;
/// - Via, From, To, Call-ID and CSeq must be present (§8.1.1) and CSeq must be readable;
/// - the start line is a Request-Line or Status-Line of `SIP/2.0` (§7.1, §7.2) and a sip: or
///   sips: Request-URI must be valid, IPv6 references included (§19.1.1, RFC 5118).
///
/// Never panics, whatever the input.
pub fn parse_message(buf: &[u8]) -> Result<SipMessage, Error> {
    if buf.len() > MAX_MESSAGE_SIZE {
        return Err(Error::MessageTooLarge {
            size: buf.len(),
            max: MAX_MESSAGE_SIZE,
        });
    }
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .ok_or_else(|| Error::Malformed("empty message".into()))?;
    let (head, body) = split_head(buf.get(start..).unwrap_or_default());
    let head = std::str::from_utf8(head)
        .map_err(|_| Error::Malformed("header section is not UTF-8".into()))?;

    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let start_line = lines.next().unwrap_or_default().trim_end();
    if start_line.is_empty() {
        return Err(Error::Malformed("empty start line".into()));
    }
    let mut fields: Vec<(&str, String)> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            // RFC 3261 §7.3.1: a line starting with whitespace continues the previous one.
            let Some((_, value)) = fields.last_mut() else {
                return Err(Error::Malformed(
                    "continuation line before the first header".into(),
                ));
            };
            let more = line.trim();
            if !more.is_empty() {
                if !value.is_empty() {
                    value.push(' ');
                }
                value.push_str(more);
            }
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        if fields.len() >= MAX_HEADERS {
            return Err(Error::TooManyHeaders { max: MAX_HEADERS });
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(Error::Malformed(format!(
                "header line without a colon: {}",
                excerpt(line)
            )));
        };
        let name = name.trim_end_matches([' ', '\t']);
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(Error::Malformed(format!(
                "invalid header name {:?}",
                excerpt(name)
            )));
        }
        fields.push((expand_compact_name(name), value.trim().to_string()));
    }

    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        if !fields.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            return Err(Error::MissingHeader(name.into()));
        }
    }
    for (_, v) in fields
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("CSeq"))
    {
        let ok = parse_cseq(v).is_some_and(|(_, m)| m.parse::<Method>().is_ok());
        if !ok {
            return Err(Error::InvalidHeader {
                name: "CSeq".into(),
                reason: format!("cannot read {:?}", excerpt(v)),
            });
        }
    }

    let mut declared: Option<usize> = None;
    for (_, v) in fields
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("Content-Length"))
    {
        let len = parse_length(v).ok_or_else(|| Error::InvalidContentLength(excerpt(v)))?;
        if declared.is_some_and(|d| d != len) {
            return Err(Error::InvalidContentLength(
                "several different values".into(),
            ));
        }
        declared = Some(len);
    }
    let body = match declared {
        // RFC 3261 §18.3: bytes beyond Content-Length in a datagram are discarded.
        Some(len) => body.get(..len).ok_or(Error::ContentLengthMismatch {
            declared: len,
            actual: body.len(),
        })?,
        None => body,
    };

    let headers: Vec<Header> = fields
        .into_iter()
        .map(|(name, value)| make_header(name, value))
        .collect();
    let headers = Headers::from(headers);
    let body = body.to_vec();
    match parse_start_line(start_line)? {
        StartLine::Request(method, uri) => Ok(SipMessage::Request(Request {
            method,
            uri,
            version: rsip::Version::V2,
            headers,
            body,
        })),
        StartLine::Response(status_code) => Ok(SipMessage::Response(Response {
            status_code,
            version: rsip::Version::V2,
            headers,
            body,
        })),
    }
}

pub(super) enum StartLine {
    Request(Method, rsip::Uri),
    Response(StatusCode),
}

/// RFC 3261 §7.1 `SIP-Version`: only `SIP/2.0` (case-insensitive, §7.1) is accepted.
pub(super) fn is_sip_2_0(v: &str) -> bool {
    v.eq_ignore_ascii_case("SIP/2.0")
}

/// Reads the start line: RFC 3261 §7.1 `Request-Line = Method SP Request-URI SP SIP-Version`
/// or §7.2 `Status-Line = SIP-Version SP Status-Code SP Reason-Phrase`.
pub(super) fn parse_start_line(line: &str) -> Result<StartLine, Error> {
    let bad = |why: &str| Error::Malformed(format!("{why}: {}", excerpt(line)));
    if line
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
    {
        let mut parts = line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        let code = parts.next().unwrap_or_default();
        let reason = parts.next().unwrap_or_default().trim();
        if !is_sip_2_0(version) {
            return Err(bad("unsupported SIP version"));
        }
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("invalid status code"));
        }
        let code: u16 = code.parse().map_err(|_| bad("invalid status code"))?;
        if !(100..=699).contains(&code) {
            return Err(bad("status code outside 100..=699"));
        }
        // A known code takes its named variant (compare with `code()`); an unknown one keeps
        // the phrase the peer sent.
        let status = match StatusCode::from(code) {
            StatusCode::Other(code, _) => StatusCode::Other(code, sanitize_line(reason)),
            named => named,
        };
        return Ok(StartLine::Response(status));
    }
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("invalid request line"));
    };
    if !is_sip_2_0(version) {
        return Err(bad("unsupported SIP version"));
    }
    if method.is_empty() || !method.bytes().all(is_token_byte) {
        return Err(bad("invalid method"));
    }
    let method: Method = method.parse().map_err(|_| bad("unknown method"))?;
    Ok(StartLine::Request(method, request_uri(uri)?))
}

/// The Request-URI (RFC 3261 §19.1: sip/sips, IPv6 references included, through
/// [`SipUri`]); an absolute URI of another scheme (§25.1 `absoluteURI`, e.g. `tel:`) is kept
/// verbatim.
pub(super) fn request_uri(text: &str) -> Result<rsip::Uri, Error> {
    let bad = |e: &dyn std::fmt::Display| {
        Error::Malformed(format!("invalid Request-URI {}: {e}", excerpt(text)))
    };
    match SipUri::parse(text) {
        Ok(uri) => Ok(uri.to_rsip()),
        Err(UriError::Scheme) => {
            let (scheme, rest) = text.split_once(':').ok_or_else(|| bad(&"no scheme"))?;
            let scheme_ok = scheme
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic())
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
            if !scheme_ok || rest.is_empty() {
                return Err(bad(&"not an absolute URI"));
            }
            // rsip has no field for an opaque URI: the whole text is kept as the host, which
            // rsip prints as given.
            Ok(rsip::Uri {
                host_with_port: rsip::HostWithPort {
                    host: rsip::Host::Domain(text.to_string().into()),
                    port: None,
                },
                ..Default::default()
            })
        }
        Err(e) => Err(bad(&e)),
    }
}
