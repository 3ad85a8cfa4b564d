//! Splitting a recording-session request body into its SDP and metadata parts.

use siprec_sip::message::MediaType;
use siprec_sip::multipart;

/// Media types we accept as metadata (RFC 7866 §9; older SRCs omit `+xml`).
pub const METADATA_TYPES: [&str; 2] = ["application/rs-metadata+xml", "application/rs-metadata"];
/// Media type of a snapshot request (RFC 7866 §9.4; sent by an SRS).
pub const SNAPSHOT_REQUEST_TYPE: &str = "application/rs-metadata-request";
/// What we put in `Accept` on responses and on 415.
pub const ACCEPT: &str =
    "application/sdp, application/rs-metadata+xml, application/rs-metadata, multipart/mixed";

/// The parts of a recording-session body that matter.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RsBody {
    /// The SDP part, if any.
    pub sdp: Option<Vec<u8>>,
    /// The metadata part, if any (byte for byte).
    pub metadata: Option<Vec<u8>>,
    /// A snapshot request part, if any.
    pub snapshot_request: Option<Vec<u8>>,
    /// How many parts we did not use (kept by the parser, ignored here).
    pub ignored_parts: usize,
}

/// Why a body cannot be used (the peer sent it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The body type is not one we understand: answer 415 with `Accept`.
    #[error("unsupported body type {0}")]
    Unsupported(String),
    /// The body claims a type we understand but cannot be parsed: answer 400.
    #[error("malformed body: {0}")]
    Malformed(String),
}

/// A recording-session body (RFC 7866 §6.1.1): `multipart/mixed` with the SDP part
/// (`Content-Disposition: session;handling=required`) and the metadata part
/// (`application/rs-metadata+xml`, `Content-Disposition: recording-session`). Returns the
/// `Content-Type` value (with a fresh boundary) and the body.
pub fn recording_session_body(sdp: &str, metadata: &str) -> (String, Vec<u8>) {
    let mut mp = multipart::Multipart::new(multipart::new_boundary());
    mp.push(
        "application/sdp",
        vec![(
            "Content-Disposition".into(),
            "session;handling=required".into(),
        )],
        sdp.as_bytes().to_vec(),
    );
    mp.push(
        METADATA_TYPES[0],
        vec![("Content-Disposition".into(), "recording-session".into())],
        metadata.as_bytes().to_vec(),
    );
    (mp.content_type_value(), mp.to_bytes())
}

/// Splits a body by its Content-Type ([`siprec_sip::message::content_type`]; `None` when
/// missing or unreadable). An empty body gives an empty [`RsBody`].
pub fn split(content_type: Option<&MediaType>, body: &[u8]) -> Result<RsBody, BodyError> {
    let mut out = RsBody::default();
    if body.is_empty() {
        return Ok(out);
    }
    let Some(ct) = content_type else {
        return Err(BodyError::Unsupported("body without Content-Type".into()));
    };
    let media = ct.essence();
    match media.as_str() {
        "application/sdp" => out.sdp = Some(body.to_vec()),
        m if METADATA_TYPES.contains(&m) => out.metadata = Some(body.to_vec()),
        SNAPSHOT_REQUEST_TYPE => out.snapshot_request = Some(body.to_vec()),
        "multipart/mixed" => {
            let mp = multipart::parse_typed(ct, body)
                .map_err(|e| BodyError::Malformed(format!("multipart body: {e}")))?;
            for part in mp.parts {
                let pt = part.content_type().unwrap_or_default();
                let slot = match pt.as_str() {
                    "application/sdp" => &mut out.sdp,
                    m if METADATA_TYPES.contains(&m) => &mut out.metadata,
                    SNAPSHOT_REQUEST_TYPE => &mut out.snapshot_request,
                    _ => {
                        out.ignored_parts += 1;
                        continue;
                    }
                };
                if slot.is_some() {
                    // A second part of the same kind: keep the first, count the rest.
                    out.ignored_parts += 1;
                } else {
                    *slot = Some(part.body);
                }
            }
        }
        other => return Err(BodyError::Unsupported(other.to_string())),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mp(parts: &[(&str, &str)]) -> (String, Vec<u8>) {
        let mut m = multipart::Multipart::new("b0undary".to_string());
        for (ct, body) in parts {
            m.push(ct, Vec::new(), body.as_bytes().to_vec());
        }
        (m.content_type_value(), m.to_bytes())
    }

    #[test]
    fn multipart_any_order_and_extra_parts() {
        let (ct, body) = mp(&[
            ("application/rs-metadata+xml", "<recording/>"),
            ("text/plain", "hello"),
            ("application/sdp", "v=0\r\n"),
        ]);
        let b = split(MediaType::parse(&ct).as_ref(), &body).unwrap();
        assert_eq!(b.sdp.as_deref(), Some(&b"v=0\r\n"[..]));
        assert_eq!(b.metadata.as_deref(), Some(&b"<recording/>"[..]));
        assert_eq!(b.ignored_parts, 1);
    }

    #[test]
    fn legacy_metadata_type_and_plain_sdp() {
        let (ct, body) = mp(&[
            ("application/rs-metadata", "<r/>"),
            ("application/sdp", "v=0"),
        ]);
        assert!(split(MediaType::parse(&ct).as_ref(), &body)
            .unwrap()
            .metadata
            .is_some());
        let b = split(MediaType::parse("application/sdp").as_ref(), b"v=0").unwrap();
        assert!(b.sdp.is_some() && b.metadata.is_none());
    }

    #[test]
    fn unsupported_and_malformed() {
        let ct = |v: &str| MediaType::parse(v).unwrap();
        assert!(matches!(
            split(Some(&ct("text/html")), b"<p>"),
            Err(BodyError::Unsupported(_))
        ));
        assert!(matches!(split(None, b"x"), Err(BodyError::Unsupported(_))));
        assert!(matches!(
            split(Some(&ct("multipart/mixed")), b"no boundary"),
            Err(BodyError::Malformed(_))
        ));
        assert_eq!(split(None, b"").unwrap(), RsBody::default());
    }
}
