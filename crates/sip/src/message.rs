//! SIP messages: parsing (with compact-form and Content-Length handling), printing, header
//! look-ups, responses built from requests, branch/tag generation and transaction keys.
//!
//! One parse per message: [`parse_message`] tokenises the bytes itself (sizes, unfolding,
//! compact names, Content-Length, mandatory headers, start line; the Request-URI through
//! [`crate::uri::SipUri`], IPv6 references included) and fills rsip's message types directly.
//! rsip holds and prints messages; it never parses received bytes.

use std::hash::{Hash, Hasher};

use rand::Rng;
pub use rsip;
use rsip::headers::UntypedHeader;
use rsip::{Header, Headers, Method, Request, Response, SipMessage, StatusCode};

use crate::error::{excerpt, Error};
use crate::uri::{parse_host_port, Host, SipUri, UriError};

/// Largest message [`parse_message`] accepts, in bytes (64 KiB, the largest UDP datagram).
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024;

/// Most header fields (after unfolding) a message may carry.
pub const MAX_HEADERS: usize = 256;

/// The RFC 3261 branch magic cookie (§8.1.1.7).
pub const BRANCH_MAGIC_COOKIE: &str = "z9hG4bK";

/// Compact header forms: RFC 3261 §7.3.3 and the IANA SIP header registry.
const COMPACT_FORMS: [(&str, &str); 20] = [
    ("i", "Call-ID"),
    ("m", "Contact"),
    ("f", "From"),
    ("t", "To"),
    ("v", "Via"),
    ("l", "Content-Length"),
    ("c", "Content-Type"),
    ("e", "Content-Encoding"),
    ("k", "Supported"),
    ("s", "Subject"),
    ("o", "Event"),
    ("r", "Refer-To"),
    ("b", "Referred-By"),
    ("x", "Session-Expires"),
    ("u", "Allow-Events"),
    ("a", "Accept-Contact"),
    ("j", "Reject-Contact"),
    ("d", "Request-Disposition"),
    ("y", "Identity"),
    ("n", "Identity-Info"),
];

/// The long name of a compact header name (`"i"` → `"Call-ID"`, case-insensitive); any other
/// name is returned unchanged.
pub fn expand_compact_name(name: &str) -> &str {
    if name.len() == 1 {
        for (short, long) in COMPACT_FORMS {
            if short.eq_ignore_ascii_case(name) {
                return long;
            }
        }
    }
    name
}

/// RFC 3261 §25.1 `token` characters.
pub(crate) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

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

enum StartLine {
    Request(Method, rsip::Uri),
    Response(StatusCode),
}

/// RFC 3261 §7.1 `SIP-Version`: only `SIP/2.0` (case-insensitive, §7.1) is accepted.
fn is_sip_2_0(v: &str) -> bool {
    v.eq_ignore_ascii_case("SIP/2.0")
}

/// Reads the start line: RFC 3261 §7.1 `Request-Line = Method SP Request-URI SP SIP-Version`
/// or §7.2 `Status-Line = SIP-Version SP Status-Code SP Reason-Phrase`.
fn parse_start_line(line: &str) -> Result<StartLine, Error> {
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
fn request_uri(text: &str) -> Result<rsip::Uri, Error> {
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

// ---------------------------------------------------------------------------------------------
// Printing
// ---------------------------------------------------------------------------------------------

/// The RFC 3261 §21 (and extensions') reason phrase of a status code; `"Unknown"` for codes
/// without one.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        199 => "Early Dialog Terminated",
        200 => "OK",
        202 => "Accepted",
        204 => "No Notification",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Conditional Request Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        417 => "Unknown Resource-Priority",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        424 => "Bad Location Information",
        428 => "Use Identity Header",
        429 => "Provide Referrer Identity",
        433 => "Anonymity Disallowed",
        436 => "Bad Identity-Info",
        437 => "Unsupported Certificate",
        438 => "Invalid Identity Header",
        439 => "First Hop Lacks Outbound Support",
        440 => "Max-Breadth Exceeded",
        469 => "Bad Info Package",
        470 => "Consent Needed",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        493 => "Undecipherable",
        494 => "Security Agreement Required",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        580 => "Precondition Failure",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        607 => "Unwanted",
        _ => "Unknown",
    }
}

/// Removes characters that would break a start line or header line.
fn sanitize_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// A status code with a reason phrase.
///
/// rsip keeps no reason phrase for the codes it knows, so a custom phrase is stored as
/// `StatusCode::Other(code, phrase)`; the standard phrase gives the named variant. Compare
/// responses with [`StatusCode::code`], not with `==` on the variant.
pub fn status_code(code: u16, reason: Option<&str>) -> StatusCode {
    let known = StatusCode::from(code);
    let named = !matches!(known, StatusCode::Other(..));
    let custom = reason.map(sanitize_line).filter(|r| {
        let standard = named && r == reason_phrase(code);
        !r.is_empty() && !standard
    });
    match custom {
        Some(r) => StatusCode::Other(code, r),
        None if named => known,
        None => StatusCode::Other(code, reason_phrase(code).to_string()),
    }
}

/// The reason phrase of a status: the one received (sanitised), else the standard one.
pub fn status_reason(status: &StatusCode) -> String {
    match status {
        StatusCode::Other(code, reason) => {
            let r = sanitize_line(reason);
            if r.is_empty() || r == "Other" {
                reason_phrase(*code).to_string()
            } else {
                r
            }
        }
        known => reason_phrase(known.code()).to_string(),
    }
}

fn push_line(out: &mut Vec<u8>, line: &str) {
    out.extend(
        line.bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

/// Serialises a message for the wire.
///
/// Headers are printed in order; every Content-Length header is dropped and one with the real
/// body length is written last. Known status codes get their RFC reason phrase (rsip's own
/// `Display` would print `487 RequestTerminated`). CR and LF inside header values are replaced
/// by spaces so a value can never inject a header.
pub fn print_message(msg: &SipMessage) -> Vec<u8> {
    let (start, headers, body) = match msg {
        SipMessage::Request(r) => (
            format!("{} {} {}", r.method, r.uri, r.version),
            &r.headers,
            &r.body,
        ),
        SipMessage::Response(r) => (
            format!(
                "{} {} {}",
                r.version,
                r.status_code.code(),
                status_reason(&r.status_code)
            ),
            &r.headers,
            &r.body,
        ),
    };
    let mut out = Vec::with_capacity(512 + body.len());
    push_line(&mut out, &start);
    for h in headers.iter() {
        if !matches!(h, Header::ContentLength(_)) {
            push_line(&mut out, &h.to_string());
        }
    }
    push_line(&mut out, &format!("Content-Length: {}", body.len()));
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

// ---------------------------------------------------------------------------------------------
// Header look-ups
// ---------------------------------------------------------------------------------------------

/// One table for both directions between rsip's named headers and their names: the
/// variant a received name is stored in ([`make_header`]) and the name a header prints with
/// ([`header_name_value`]).
macro_rules! named_headers {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// The name (as printed) and raw value of any header, `Header::Other` included.
        pub fn header_name_value(h: &Header) -> (&str, &str) {
            match h {
                Header::Other(name, value) => (name.as_str(), value.as_str()),
                $(Header::$variant(inner) => ($name, inner.value()),)*
            }
        }

        /// The rsip header for a received name (long form, any case) and value. The value is
        /// stored as received (rsip's headers are text until `.typed()`); only the name chooses
        /// the variant.
        fn make_header(name: &str, value: String) -> Header {
            $(if name.eq_ignore_ascii_case($name) {
                return Header::$variant(rsip::headers::$variant::new(value));
            })*
            Header::Other(name.to_string(), value)
        }
    };
}

named_headers!(
    Accept => "Accept",
    AcceptEncoding => "Accept-Encoding",
    AcceptLanguage => "Accept-Language",
    AlertInfo => "Alert-Info",
    Allow => "Allow",
    AuthenticationInfo => "Authentication-Info",
    Authorization => "Authorization",
    CSeq => "CSeq",
    CallId => "Call-ID",
    CallInfo => "Call-Info",
    Contact => "Contact",
    ContentDisposition => "Content-Disposition",
    ContentEncoding => "Content-Encoding",
    ContentLanguage => "Content-Language",
    ContentLength => "Content-Length",
    ContentType => "Content-Type",
    Date => "Date",
    ErrorInfo => "Error-Info",
    Event => "Event",
    Expires => "Expires",
    From => "From",
    InReplyTo => "In-Reply-To",
    MaxForwards => "Max-Forwards",
    MimeVersion => "MIME-Version",
    MinExpires => "Min-Expires",
    Organization => "Organization",
    Priority => "Priority",
    ProxyAuthenticate => "Proxy-Authenticate",
    ProxyAuthorization => "Proxy-Authorization",
    ProxyRequire => "Proxy-Require",
    RecordRoute => "Record-Route",
    ReplyTo => "Reply-To",
    Require => "Require",
    RetryAfter => "Retry-After",
    Route => "Route",
    Server => "Server",
    Subject => "Subject",
    SubscriptionState => "Subscription-State",
    Supported => "Supported",
    Timestamp => "Timestamp",
    To => "To",
    Unsupported => "Unsupported",
    UserAgent => "User-Agent",
    Via => "Via",
    Warning => "Warning",
    WwwAuthenticate => "WWW-Authenticate",
);

/// The raw values of every header called `name` (case-insensitive; compact forms match their
/// long names), in message order. Works for rsip's named headers and `Header::Other` alike.
/// One entry per header line: comma-separated lists are not split.
pub fn header_values(headers: &Headers, name: &str) -> Vec<String> {
    let want = expand_compact_name(name);
    headers
        .iter()
        .map(header_name_value)
        .filter(|(n, _)| expand_compact_name(n).eq_ignore_ascii_case(want))
        .map(|(_, v)| v.trim().to_string())
        .collect()
}

/// The first value of the header called `name`, if any (see [`header_values`]).
pub fn header_value(headers: &Headers, name: &str) -> Option<String> {
    let want = expand_compact_name(name);
    headers
        .iter()
        .map(header_name_value)
        .find(|(n, _)| expand_compact_name(n).eq_ignore_ascii_case(want))
        .map(|(_, v)| v.trim().to_string())
}

/// The option tags or methods of comma-separated headers such as Require, Supported, Allow
/// and Unsupported: every value of every such header, split on commas, trimmed, lowercased,
/// empties dropped.
pub fn header_tokens(headers: &Headers, name: &str) -> Vec<String> {
    header_values(headers, name)
        .iter()
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// The option tags of Require (RFC 3261 §20.32), lowercased, from every Require header.
pub fn require(headers: &Headers) -> Vec<String> {
    header_tokens(headers, "Require")
}

/// The option tags of Supported (`k` in compact form, RFC 3261 §20.37), lowercased.
pub fn supported(headers: &Headers) -> Vec<String> {
    header_tokens(headers, "Supported")
}

/// The option tags of Unsupported (RFC 3261 §20.40), lowercased.
pub fn unsupported(headers: &Headers) -> Vec<String> {
    header_tokens(headers, "Unsupported")
}

/// The methods of Allow (RFC 3261 §20.5), lowercased.
pub fn allow(headers: &Headers) -> Vec<String> {
    header_tokens(headers, "Allow")
}

// ---------------------------------------------------------------------------------------------
// Header value helpers (name-addr, params, lists)
// ---------------------------------------------------------------------------------------------

/// Splits a header value on the commas that separate list elements (RFC 3261 §7.3.1), leaving
/// commas inside quoted strings and `<...>` alone. Elements are trimmed; empties dropped.
pub fn split_list(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut escaped, mut angle) = (false, false, false);
    let mut start = 0;
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                out.push(value.get(start..i).unwrap_or_default().trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(value.get(start..).unwrap_or_default().trim());
    out.retain(|s| !s.is_empty());
    out
}

/// Splits on `sep` outside quoted strings (empty pieces kept).
pub(crate) fn split_unquoted(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = find_unquoted(rest, sep) {
        out.push(rest.get(..i).unwrap_or_default());
        rest = rest.get(i + sep.len_utf8()..).unwrap_or_default();
    }
    out.push(rest);
    out
}

/// Position of the first `c` outside quoted strings.
fn find_unquoted(s: &str, wanted: char) -> Option<usize> {
    let (mut quoted, mut escaped) = (false, false);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == wanted && !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// Splits a name-addr or addr-spec header value (From, To, Contact, Route, Record-Route) into
/// display name, URI and the header-parameter text after it (starting at `;` or empty).
/// For the addr-spec form (no `<>`) parameters after the URI are header parameters
/// (RFC 3261 §20.10).
pub fn split_name_addr(value: &str) -> (Option<String>, &str, &str) {
    let value = value.trim();
    if let Some(lt) = find_unquoted(value, '<') {
        let display = value.get(..lt).unwrap_or_default().trim();
        let rest = value.get(lt + 1..).unwrap_or_default();
        let (uri, params) = match rest.find('>') {
            Some(gt) => (
                rest.get(..gt).unwrap_or_default(),
                rest.get(gt + 1..).unwrap_or_default(),
            ),
            None => (rest, ""),
        };
        let display = if display.is_empty() {
            None
        } else {
            Some(unquote(display))
        };
        (display, uri.trim(), params.trim())
    } else {
        match value.find(';') {
            Some(semi) => (
                None,
                value.get(..semi).unwrap_or_default().trim(),
                value.get(semi..).unwrap_or_default(),
            ),
            None => (None, value, ""),
        }
    }
}

/// Removes surrounding double quotes and backslash escapes from a quoted string; other
/// text is returned trimmed.
pub fn unquote(s: &str) -> String {
    let s = s.trim();
    match s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut escaped = false;
            for c in inner.chars() {
                if escaped {
                    out.push(c);
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else {
                    out.push(c);
                }
            }
            out
        }
        None => s.to_string(),
    }
}

/// Parses `;name=value;flag` parameter text into (lowercased name, unquoted value) pairs; a
/// flag parameter has an empty value.
pub fn parse_params(params: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = params.trim();
    while let Some(r) = rest.strip_prefix(';') {
        let end = find_unquoted(r, ';').unwrap_or(r.len());
        let item = r.get(..end).unwrap_or_default().trim();
        rest = r.get(end..).unwrap_or_default();
        if item.is_empty() {
            continue;
        }
        let (name, value) = match item.split_once('=') {
            Some((n, v)) => (n.trim(), unquote(v)),
            None => (item, String::new()),
        };
        out.push((name.to_ascii_lowercase(), value));
        if out.len() >= 64 {
            break;
        }
    }
    out
}

/// The value of header parameter `name` (case-insensitive) of a name-addr / addr-spec value
/// (From, To, Contact, ...): `Some("")` for a flag parameter such as `;+sip.src`.
pub fn header_param(value: &str, name: &str) -> Option<String> {
    let (_, _, params) = split_name_addr(value);
    parse_params(params)
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// The `tag` parameter of a From or To value, if non-empty.
pub fn tag_of(value: &str) -> Option<String> {
    header_param(value, "tag").filter(|t| !t.is_empty())
}

/// The URI inside a name-addr / addr-spec value, without URI headers (`?...`).
pub fn uri_of(value: &str) -> &str {
    let (_, uri, _) = split_name_addr(value);
    match uri.find('?') {
        Some(q) => uri.get(..q).unwrap_or(uri),
        None => uri,
    }
}

/// A name-addr or addr-spec header value (From, To, Contact, Route, Record-Route) taken
/// apart (RFC 3261 §20.10, §20.20, §20.39). Parameters after an addr-spec without angle
/// brackets are header parameters, not URI parameters (§20.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name, unquoted, if any.
    pub display_name: Option<String>,
    /// The URI as written (without `<>`).
    pub uri: String,
    /// Header parameters in order, names lowercased (flags have empty values).
    pub params: Vec<(String, String)>,
}

impl NameAddr {
    /// Takes one element of a From, To or Contact value apart. Never fails: a value without a
    /// URI gives an empty [`NameAddr::uri`], which [`NameAddr::sip_uri`] refuses.
    pub fn parse(value: &str) -> NameAddr {
        let (display_name, uri, params) = split_name_addr(value);
        NameAddr {
            display_name,
            uri: uri.to_string(),
            params: parse_params(params),
        }
    }

    /// The value of a header parameter (`Some("")` for a flag).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `tag` parameter (RFC 3261 §19.3), if present and non-empty.
    pub fn tag(&self) -> Option<&str> {
        self.param("tag").filter(|t| !t.is_empty())
    }

    /// The URI as a sip:/sips: URI (IPv6 references included).
    pub fn sip_uri(&self) -> Result<SipUri, UriError> {
        SipUri::parse(&self.uri)
    }

    /// The header parameters printed as `;name=value...` (empty when there are none; values
    /// quoted where needed, flags bare).
    pub fn params_text(&self) -> String {
        Params {
            params: &self.params,
            hosts: true,
        }
        .to_string()
    }

    /// The URI without URI headers (`?...`), as [`uri_of`] gives it: what a Contact names as
    /// a remote target.
    pub fn uri_without_headers(&self) -> &str {
        match self.uri.find('?') {
            Some(q) => self.uri.get(..q).unwrap_or(&self.uri),
            None => &self.uri,
        }
    }
}

/// Prints `"display" <uri>;name=value...` (the display name quoted, `<>` always), which
/// [`NameAddr::parse`] reads back to the same value.
impl std::fmt::Display for NameAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(d) = &self.display_name {
            let quoted = d.replace('\\', "\\\\").replace('"', "\\\"");
            write!(f, "\"{quoted}\" ")?;
        }
        let params = Params {
            params: &self.params,
            hosts: true,
        };
        write!(f, "<{}>{params}", self.uri)
    }
}

/// The From header value as written (trimmed), RFC 3261 §20.20: for a dialog's local or
/// remote party, which is copied into later requests unchanged (§12.1.1, §12.1.2).
pub fn from_value(headers: &Headers) -> Option<String> {
    header_value(headers, "From")
}

/// The To header value as written (trimmed), RFC 3261 §20.39 (see [`from_value`]).
pub fn to_value(headers: &Headers) -> Option<String> {
    header_value(headers, "To")
}

/// The From header of a message, taken apart.
pub fn from_addr(headers: &Headers) -> Option<NameAddr> {
    from_value(headers).map(|v| NameAddr::parse(&v))
}

/// The To header of a message, taken apart.
pub fn to_addr(headers: &Headers) -> Option<NameAddr> {
    to_value(headers).map(|v| NameAddr::parse(&v))
}

/// The From tag (RFC 3261 §19.3), if present and non-empty.
pub fn from_tag(headers: &Headers) -> Option<String> {
    from_addr(headers).and_then(|a| a.tag().map(str::to_string))
}

/// The To tag (RFC 3261 §19.3), if present and non-empty.
pub fn to_tag(headers: &Headers) -> Option<String> {
    to_addr(headers).and_then(|a| a.tag().map(str::to_string))
}

/// The first Contact of a message (first element of the first Contact header), taken apart.
pub fn contact_addr(headers: &Headers) -> Option<NameAddr> {
    contact_elements(headers).next()
}

/// Every Contact of a message, RFC 3261 §20.10: each element of each Contact header (`m` in
/// compact form), in message order, taken apart. A `*` Contact (REGISTER only) is an element
/// whose URI is `*`.
pub fn contacts(headers: &Headers) -> Vec<NameAddr> {
    contact_elements(headers).collect()
}

fn contact_elements(headers: &Headers) -> impl Iterator<Item = NameAddr> + '_ {
    headers
        .iter()
        .map(header_name_value)
        .filter(|(n, _)| expand_compact_name(n).eq_ignore_ascii_case("Contact"))
        .flat_map(|(_, v)| {
            split_list(v)
                .into_iter()
                .map(NameAddr::parse)
                .collect::<Vec<_>>()
        })
}

/// Every Record-Route entry of a message, RFC 3261 §20.30: each element of each Record-Route
/// header, in message order, as written (a dialog's route set keeps them unchanged, §12.1).
pub fn record_routes(headers: &Headers) -> Vec<String> {
    header_values(headers, "Record-Route")
        .iter()
        .flat_map(|v| {
            split_list(v)
                .into_iter()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The top Via of a message (the first element of the first Via header), taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopVia {
    /// Transport of the sent-protocol, uppercased (`UDP`, `TCP`, `TLS`, ...).
    pub transport: String,
    /// The sent-by `host[:port]`, as written.
    pub sent_by: String,
    /// The `branch` parameter, if present and non-empty.
    pub branch: Option<String>,
    /// All parameters, names lowercased (flags have empty values, e.g. `("rport", "")`).
    pub params: Vec<(String, String)>,
}

impl TopVia {
    /// Parses one Via element such as `SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776;rport`.
    pub fn parse(element: &str) -> Option<TopVia> {
        let element = element.trim();
        let (head, params) = match element.find(';') {
            Some(i) => (
                element.get(..i).unwrap_or_default(),
                element.get(i..).unwrap_or_default(),
            ),
            None => (element, ""),
        };
        let head = head.trim();
        let sent_by = head.rsplit([' ', '\t']).next()?.trim();
        let protocol: String = head
            .get(..head.len().saturating_sub(sent_by.len()))
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if sent_by.is_empty() || protocol.is_empty() {
            return None;
        }
        let transport = protocol.rsplit('/').next()?.to_ascii_uppercase();
        let params = parse_params(params);
        let branch = params
            .iter()
            .find(|(n, _)| n == "branch")
            .map(|(_, v)| v.clone())
            .filter(|b| !b.is_empty());
        Some(TopVia {
            transport,
            sent_by: sent_by.to_string(),
            branch,
            params,
        })
    }

    /// The value of a parameter (`Some("")` for a flag).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The host part of sent-by, without port and IPv6 brackets.
    pub fn host(&self) -> &str {
        host_of(&self.sent_by)
    }

    /// The sent-by, typed (RFC 3261 §20.42 `sent-by = host [ COLON port ]`, IPv6 in
    /// brackets as in `SIP/2.0/UDP [2001:db8::1]:5070`).
    pub fn sent_by(&self) -> Result<(Host, Option<u16>), UriError> {
        parse_host_port(&self.sent_by)
    }

    /// The `received` parameter as an address (RFC 3261 §18.2.1; an IPv6 address may be
    /// written with or without brackets, RFC 5118 §4.5).
    pub fn received(&self) -> Option<std::net::IpAddr> {
        Host::parse_lenient(self.param("received")?).ok()?.ip()
    }

    /// The `rport` parameter (RFC 3581): `Some(None)` for the bare flag a client sends,
    /// `Some(Some(port))` once a server filled it in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.param("rport").map(|p| p.parse().ok())
    }
}

/// The host of `host[:port]` / `[v6]:port`, without brackets.
pub(crate) fn host_of(host_port: &str) -> &str {
    if let Some(rest) = host_port.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    match host_port.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host_port,
    }
}

/// The top Via of these headers.
pub fn top_via(headers: &Headers) -> Option<TopVia> {
    headers.iter().find_map(|h| match h {
        Header::Via(v) => split_list(v.value()).first().and_then(|e| TopVia::parse(e)),
        _ => None,
    })
}

/// The Call-ID value.
pub fn call_id(headers: &Headers) -> Option<String> {
    header_value(headers, "Call-ID").filter(|c| !c.is_empty())
}

/// The CSeq number and method.
pub fn cseq(headers: &Headers) -> Option<(u32, Method)> {
    let v = header_value(headers, "CSeq")?;
    let (n, m) = parse_cseq(&v)?;
    Some((n, m.parse().ok()?))
}

/// RFC 3261 §20.22 Max-Forwards (`1*DIGIT`), if present and readable.
pub fn max_forwards(headers: &Headers) -> Option<u32> {
    parse_digits(&header_value(headers, "Max-Forwards")?)
}

/// `1*DIGIT` as a number; `None` for anything else (signs, spaces inside, overflow).
fn parse_digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `;name=value` parameter text for printing: values that are not tokens are quoted (with
/// `hosts`, an IPv6 reference such as `[2001:db8::1]` is not: RFC 3261 §25.1 `gen-value =
/// token / host / quoted-string`); flags (empty values) are printed bare.
struct Params<'a> {
    params: &'a [(String, String)],
    hosts: bool,
}

impl std::fmt::Display for Params<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (name, value) in self.params {
            let v6 = self.hosts
                && value
                    .strip_prefix('[')
                    .and_then(|v| v.strip_suffix(']'))
                    .is_some_and(|v| {
                        v.bytes()
                            .all(|b| b.is_ascii_hexdigit() || b".:".contains(&b))
                    });
            let plain = v6 || value.bytes().all(is_token_byte);
            if value.is_empty() {
                write!(f, ";{name}")?;
            } else if plain {
                write!(f, ";{name}={value}")?;
            } else {
                let quoted = value.replace('\\', "\\\\").replace('"', "\\\"");
                write!(f, ";{name}=\"{quoted}\"")?;
            }
        }
        Ok(())
    }
}

/// A Content-Type value, RFC 3261 §20.15 (`media-type` of §25.1, RFC 2045 §5.1):
/// `type/subtype` (lowercased) and its parameters (names lowercased, values unquoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    /// The top-level type, lowercased (`application`, `multipart`).
    pub type_: String,
    /// The subtype, lowercased (`sdp`, `mixed`, `rs-metadata+xml`).
    pub subtype: String,
    /// Parameters in order, names lowercased, values unquoted (e.g. `("boundary", "b:1")`).
    pub params: Vec<(String, String)>,
}

impl MediaType {
    /// Parses a Content-Type value such as `multipart/mixed;boundary="b:1"`. `None` unless
    /// both type and subtype are tokens (whitespace around the `/` is allowed, §25.1 SLASH).
    pub fn parse(value: &str) -> Option<MediaType> {
        let value = value.trim();
        let (essence, params) = match value.find(';') {
            Some(i) => (value.get(..i)?, value.get(i..)?),
            None => (value, ""),
        };
        let (type_, subtype) = essence.split_once('/')?;
        let (type_, subtype) = (type_.trim(), subtype.trim());
        let token = |s: &str| !s.is_empty() && s.bytes().all(is_token_byte);
        if !token(type_) || !token(subtype) {
            return None;
        }
        Some(MediaType {
            type_: type_.to_ascii_lowercase(),
            subtype: subtype.to_ascii_lowercase(),
            params: parse_params(params),
        })
    }

    /// `type/subtype`, lowercased, without parameters.
    pub fn essence(&self) -> String {
        format!("{}/{}", self.type_, self.subtype)
    }

    /// `true` when this is `essence` (`"application/sdp"`, case-insensitive), whatever the
    /// parameters.
    pub fn is(&self, essence: &str) -> bool {
        essence.split_once('/').is_some_and(|(t, s)| {
            t.trim().eq_ignore_ascii_case(&self.type_)
                && s.trim().eq_ignore_ascii_case(&self.subtype)
        })
    }

    /// `true` for any `multipart/*` type (RFC 2046 §5.1).
    pub fn is_multipart(&self) -> bool {
        self.type_ == "multipart"
    }

    /// The value of a parameter (name case-insensitive; `Some("")` for a flag).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The multipart `boundary` parameter (RFC 2046 §5.1.1), if present and non-empty.
    pub fn boundary(&self) -> Option<&str> {
        self.param("boundary").filter(|b| !b.is_empty())
    }
}

/// Prints `type/subtype;name=value...` (lowercased names, values quoted where needed), which
/// [`MediaType::parse`] reads back to the same value.
impl std::fmt::Display for MediaType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let params = Params {
            params: &self.params,
            hosts: false,
        };
        write!(f, "{}/{}{params}", self.type_, self.subtype)
    }
}

/// The Content-Type of a message (`c` in compact form), RFC 3261 §20.15; `None` when missing
/// or unreadable.
pub fn content_type(headers: &Headers) -> Option<MediaType> {
    MediaType::parse(&content_type_value(headers)?)
}

/// The Content-Type value as written (trimmed), RFC 3261 §20.15: for relaying a body that is
/// not read (a B2BUA passes it on with its type unchanged). Everything else reads
/// [`content_type`].
pub fn content_type_value(headers: &Headers) -> Option<String> {
    header_value(headers, "Content-Type")
}

/// The `refresher` parameter of Session-Expires (RFC 4028 §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refresher {
    /// `refresher=uac`.
    Uac,
    /// `refresher=uas`.
    Uas,
    /// Any other value (lowercased): present, but names neither side.
    Other(String),
}

/// A Session-Expires value, RFC 4028 §4: `delta-seconds *(SEMI se-params)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionExpires {
    /// The session interval in seconds, as sent (no bounds applied).
    pub delta_seconds: u64,
    /// The `refresher` parameter, if present.
    pub refresher: Option<Refresher>,
    /// Every parameter, names lowercased (the `refresher` one included).
    pub params: Vec<(String, String)>,
}

impl SessionExpires {
    /// Parses a Session-Expires value such as `1800;refresher=uac`; `None` unless it starts
    /// with delta-seconds.
    pub fn parse(value: &str) -> Option<SessionExpires> {
        let value = value.trim();
        let (num, params) = match value.find(';') {
            Some(i) => (value.get(..i)?, value.get(i..)?),
            None => (value, ""),
        };
        let delta_seconds = parse_digits(num)?;
        let params = parse_params(params);
        let refresher = params.iter().find(|(n, _)| n == "refresher").map(|(_, v)| {
            match v.to_ascii_lowercase().as_str() {
                "uac" => Refresher::Uac,
                "uas" => Refresher::Uas,
                other => Refresher::Other(other.to_string()),
            }
        });
        Some(SessionExpires {
            delta_seconds,
            refresher,
            params,
        })
    }
}

/// The Session-Expires of a message (`x` in compact form), RFC 4028 §4; `None` when missing
/// or unreadable.
pub fn session_expires(headers: &Headers) -> Option<SessionExpires> {
    SessionExpires::parse(&header_value(headers, "Session-Expires")?)
}

/// The value of an extension header, as written and trimmed: the first header called `name`
/// (case-insensitive). For headers no RFC gives a meaning and this module has no accessor
/// for: `X-` headers such as `X-Reason` or `X-Srs-Url`, or a header name taken from the
/// configuration. Headers with a meaning (From, To, Contact, Content-Type, Session-Expires,
/// Max-Forwards, ...) are read with their typed accessors in this module instead.
pub fn extension_header(headers: &Headers, name: &str) -> Option<String> {
    header_value(headers, name)
}

// ---------------------------------------------------------------------------------------------
// Responses, branches, tags
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Transaction keys
// ---------------------------------------------------------------------------------------------

/// Identifies a transaction: branch of the top Via, method, and (server side) sent-by.
///
/// - Server side (RFC 3261 §17.2.3): branch + sent-by + method, where an ACK takes the method
///   `INVITE` so that the ACK for a non-2xx final response finds its INVITE transaction.
/// - Client side (RFC 3261 §17.1.3): branch + CSeq method; `sent_by` is empty.
///
/// A top Via without a branch (RFC 2543 peers) gets a stand-in branch made of Call-ID, CSeq
/// number and From tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxKey {
    /// Branch parameter (or the RFC 2543 stand-in).
    pub branch: String,
    /// Method (`INVITE` for ACK on the server side).
    pub method: Method,
    /// Top Via sent-by, lowercased (empty for client keys).
    pub sent_by: String,
}

impl Hash for TxKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.branch.hash(state);
        std::mem::discriminant(&self.method).hash(state);
        self.sent_by.hash(state);
    }
}

impl std::fmt::Display for TxKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.sent_by.is_empty() {
            write!(f, "{} {}", self.method, self.branch)
        } else {
            write!(f, "{} {} {}", self.method, self.branch, self.sent_by)
        }
    }
}

fn branch_or_stand_in(headers: &Headers, via: &TopVia) -> Option<String> {
    if let Some(b) = &via.branch {
        return Some(b.clone());
    }
    let call_id = call_id(headers)?;
    let (seq, _) = cseq(headers)?;
    let from_tag = from_tag(headers).unwrap_or_default();
    Some(format!("rfc2543:{call_id}:{seq}:{from_tag}"))
}

impl TxKey {
    /// The server-transaction key of a received request (RFC 3261 §17.2.3).
    pub fn for_request(req: &Request) -> Option<TxKey> {
        let via = top_via(&req.headers)?;
        Some(TxKey {
            branch: branch_or_stand_in(&req.headers, &via)?,
            method: match req.method {
                Method::Ack => Method::Invite,
                m => m,
            },
            sent_by: via.sent_by.to_ascii_lowercase(),
        })
    }

    /// The client-transaction key of a request we send (RFC 3261 §17.1.3).
    pub fn for_sent_request(req: &Request) -> Option<TxKey> {
        let via = top_via(&req.headers)?;
        Some(TxKey {
            branch: branch_or_stand_in(&req.headers, &via)?,
            method: req.method,
            sent_by: String::new(),
        })
    }

    /// The client-transaction key a received response belongs to (RFC 3261 §17.1.3).
    pub fn for_response(resp: &Response) -> Option<TxKey> {
        let via = top_via(&resp.headers)?;
        let (_, method) = cseq(&resp.headers)?;
        Some(TxKey {
            branch: branch_or_stand_in(&resp.headers, &via)?,
            method,
            sent_by: String::new(),
        })
    }
}

#[cfg(test)]
mod tests;
