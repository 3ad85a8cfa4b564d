//! The little of a SIP message the metrics need: request method or status code, the `CSeq`
//! method and the `Call-ID`, read without parsing the whole message.

/// What [`first_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SipLine {
    /// A request.
    Request {
        method: &'static str,
        /// `Call-ID CSeq-number`: the transaction.
        call_id: Option<String>,
    },
    /// A response to a request of `method` (from `CSeq`).
    Response {
        code: u16,
        method: &'static str,
        /// `Call-ID CSeq-number`: the transaction.
        call_id: Option<String>,
    },
}

/// Method names as labels: the known ones, everything else `other` (a peer cannot create
/// label values).
const METHODS: &[&str] = &[
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "INFO",
    "UPDATE",
    "PRACK",
    "REGISTER",
    "SUBSCRIBE",
    "NOTIFY",
    "MESSAGE",
    "REFER",
    "PUBLISH",
];

fn method_label(m: &str) -> &'static str {
    METHODS
        .iter()
        .find(|k| **k == m)
        .copied()
        .unwrap_or("other")
}

/// Reads the start line and the `CSeq` and `Call-ID` headers of a SIP message; `None` when it
/// is not one (a keep-alive, garbage).
pub(crate) fn first_line(bytes: &[u8]) -> Option<SipLine> {
    let head_end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(bytes.len().min(8192));
    let head = std::str::from_utf8(&bytes[..head_end]).ok()?;
    let mut lines = head.split("\r\n");
    let start = lines.next()?;
    let mut cseq_method = None;
    let mut cseq_num = "";
    let mut call_id = None;
    for l in lines {
        let Some((name, value)) = l.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.eq_ignore_ascii_case("cseq") {
            let mut parts = value.split_whitespace();
            cseq_num = parts.next().unwrap_or("");
            cseq_method = parts.next().map(method_label);
        } else if name.eq_ignore_ascii_case("call-id") || name.eq_ignore_ascii_case("i") {
            call_id = Some(value.trim());
        }
    }
    let call_id = call_id.map(|c| format!("{c} {cseq_num}"));
    if let Some(rest) = start.strip_prefix("SIP/2.0 ") {
        let code: u16 = rest.get(..3)?.parse().ok()?;
        if !(100..700).contains(&code) {
            return None;
        }
        return Some(SipLine::Response {
            code,
            method: cseq_method.unwrap_or("other"),
            call_id,
        });
    }
    let mut parts = start.split(' ');
    let method = parts.next()?;
    if parts.nth(1)? != "SIP/2.0" {
        return None;
    }
    Some(SipLine::Request {
        method: method_label(method),
        call_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_requests_and_responses() {
        let inv = b"INVITE sip:srs@x SIP/2.0\r\nCall-ID: abc\r\nCSeq: 1 INVITE\r\n\r\nv=0";
        assert_eq!(
            first_line(inv),
            Some(SipLine::Request {
                method: "INVITE",
                call_id: Some("abc 1".into())
            })
        );
        let ok = b"SIP/2.0 200 OK\r\ni: abc\r\nCSeq: 1 INVITE\r\n\r\n";
        assert_eq!(
            first_line(ok),
            Some(SipLine::Response {
                code: 200,
                method: "INVITE",
                call_id: Some("abc 1".into())
            })
        );
        let odd = b"FOO sip:x SIP/2.0\r\n\r\n";
        assert!(matches!(
            first_line(odd),
            Some(SipLine::Request {
                method: "other",
                ..
            })
        ));
        assert_eq!(first_line(b"\r\n\r\n"), None);
        assert_eq!(first_line(b"SIP/2.0 999 X\r\n\r\n"), None);
        assert_eq!(first_line(b"hello"), None);
    }
}
