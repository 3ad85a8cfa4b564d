//! Printing messages: [`print_message`].

use super::*;

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
pub(super) fn sanitize_line(s: &str) -> String {
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

pub(super) fn push_line(out: &mut Vec<u8>, line: &str) {
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
