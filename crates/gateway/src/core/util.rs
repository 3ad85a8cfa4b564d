//! Small helpers of the B2BUA: header copying, From/To values, bodies, our Contact, the call's
//! parties.

use super::*;

/// Our Contact (with angle brackets) for a leg over `transport`.
pub(super) fn contact_of(config: &GatewayConfig, transport: Transport) -> String {
    let local = config.local_for(transport);
    let host = bracket(local.ip());
    match transport {
        Transport::Udp => format!("<sip:gw@{host}:{}>", local.port()),
        Transport::Tcp => format!("<sip:gw@{host}:{};transport=tcp>", local.port()),
        Transport::Tls => format!("<sips:gw@{host}:{}>", local.port()),
    }
}

/// The call's parties and ids from the A leg's INVITE (From = caller, To = callee). An error
/// means the caller sent something wrong (answered 400).
pub(super) fn call_context(req: &Request) -> Result<CallContext, siprec_sip::Error> {
    let party = |name: &str, addr: Option<NameAddr>| -> Result<Party, siprec_sip::Error> {
        let NameAddr {
            display_name: display,
            uri,
            ..
        } = addr.ok_or_else(|| siprec_sip::Error::MissingHeader(name.to_string()))?;
        let aor = uri.trim().to_string();
        if aor.is_empty() || aor.chars().any(char::is_control) || aor.len() > 512 {
            return Err(siprec_sip::Error::InvalidHeader {
                name: name.to_string(),
                reason: "no usable URI".into(),
            });
        }
        Ok(Party {
            name: display
                .map(|d| {
                    d.chars()
                        .filter(|c| !c.is_control())
                        .take(128)
                        .collect::<String>()
                })
                .filter(|d| !d.trim().is_empty()),
            aor,
        })
    };
    Ok(CallContext {
        call_id: message::call_id(&req.headers)
            .ok_or_else(|| siprec_sip::Error::MissingHeader("Call-ID".into()))?,
        session_id: None,
        direction: CallDirection::Inbound,
        caller: party("From", message::from_addr(&req.headers))?,
        callee: party("To", message::to_addr(&req.headers))?,
        call_sid: None,
        account_sid: None,
        application_sid: None,
        extra_headers: Vec::new(),
    })
}

/// A From/To value without its tag parameter.
pub(super) fn without_tag(value: &str) -> String {
    let (display, uri, params) = split_name_addr(value);
    let kept: String = params
        .split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty() && !p.to_ascii_lowercase().starts_with("tag="))
        .map(|p| format!(";{p}"))
        .collect();
    match display {
        Some(d) if !d.is_empty() => format!("\"{}\" <{uri}>{kept}", d.replace(['"', '\\'], "")),
        _ => format!("<{uri}>{kept}"),
    }
}

/// Every header of `headers` the gateway does not write itself, as it was.
pub(super) fn copied(headers: &rsip::Headers) -> Vec<Header> {
    headers
        .iter()
        .map(header_name_value)
        .filter(|(n, _)| !is_own(n))
        .map(|(n, v)| other(n, v))
        .collect()
}

pub(super) fn set_body(headers: &mut rsip::Headers, body: &mut Vec<u8>, sdp: Option<Vec<u8>>) {
    let Some(sdp) = sdp else { return };
    headers.retain(|h| !matches!(h, Header::ContentLength(_) | Header::ContentType(_)));
    headers.push(Header::ContentType(rsip::headers::ContentType::new(
        "application/sdp",
    )));
    headers.push(Header::ContentLength((sdp.len() as u32).into()));
    *body = sdp;
}

/// The Call-ID of a message the SRC sends.
pub(super) fn transmit_call_id(payload: &[u8]) -> Option<String> {
    match siprec_sip::parse_message(payload).ok()? {
        SipMessage::Request(r) => message::call_id(&r.headers),
        SipMessage::Response(r) => message::call_id(&r.headers),
    }
}
