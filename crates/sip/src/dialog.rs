//! Dialogs (RFC 3261 §12): identity, in-dialog request matching, CSeq ordering, and building
//! in-dialog requests (BYE, re-INVITE, UPDATE, INFO, ACK for a 2xx).

use rsip::headers::UntypedHeader;
use rsip::{Header, Method, Request, Response};

use crate::uri::SipUri;

use crate::error::Error;
use crate::message::{self, new_branch, split_name_addr, tag_of, uri_of, NameAddr};
use crate::transaction::Transport;

/// A dialog's identity (RFC 3261 §12): Call-ID, local tag, remote tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    /// The Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The peer's tag (empty for an RFC 2543 peer that sends none).
    pub remote_tag: String,
}

impl DialogId {
    /// The identity as seen by the UAS receiving `req`: local tag from To, remote tag from
    /// From. For an initial request (no To tag yet) `local_tag` is empty. `None` without a
    /// Call-ID.
    pub fn for_uas(req: &Request) -> Option<DialogId> {
        Some(DialogId {
            call_id: message::call_id(&req.headers)?,
            local_tag: message::to_tag(&req.headers).unwrap_or_default(),
            remote_tag: message::from_tag(&req.headers).unwrap_or_default(),
        })
    }

    /// The identity as seen by the UAC receiving `resp`: local tag from From, remote tag from
    /// To (empty when the response has none). `None` without a Call-ID.
    pub fn for_uac(resp: &Response) -> Option<DialogId> {
        Some(DialogId {
            call_id: message::call_id(&resp.headers)?,
            local_tag: message::from_tag(&resp.headers).unwrap_or_default(),
            remote_tag: message::to_tag(&resp.headers).unwrap_or_default(),
        })
    }

    /// The identity of a request received by either side inside an established dialog:
    /// same as [`DialogId::for_uas`] (our tag is in To).
    pub fn for_incoming(req: &Request) -> Option<DialogId> {
        Self::for_uas(req)
    }
}

impl std::fmt::Display for DialogId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{};local={};remote={}",
            self.call_id, self.local_tag, self.remote_tag
        )
    }
}

/// Dialog state (RFC 3261 §12.1): identity, sequence numbers, remote target, route set and
/// the From/To values used for requests we send.
#[derive(Debug, Clone)]
pub struct Dialog {
    id: DialogId,
    local_seq: u32,
    remote_seq: Option<u32>,
    /// From value of requests we send (our URI and tag).
    local_party: String,
    /// To value of requests we send (the peer's URI and tag).
    remote_party: String,
    remote_target: rsip::Uri,
    /// The remote target as the peer wrote it (used in a strict-routing Route).
    remote_target_raw: String,
    route_set: Vec<String>,
    local_contact: String,
    contact_params: String,
    via: Option<(String, u16, Transport)>,
}

/// A Contact or Record-Route URI (RFC 3261 §19.1.1), IPv6 references included (RFC 5118).
fn parse_uri(uri: &str, what: &str) -> Result<rsip::Uri, Error> {
    SipUri::parse(uri)
        .map(|u| u.to_rsip())
        .map_err(|e| Error::Dialog(format!("{what} {}: {e}", crate::error::excerpt(uri.trim()))))
}

/// The route set entries of a message's Record-Route headers (at most 32).
fn route_values(headers: &rsip::Headers) -> Vec<String> {
    message::record_routes(headers)
        .into_iter()
        .take(32)
        .collect()
}

/// The URI of a Contact (without URI headers), with its header parameters (e.g. `;+sip.src`).
fn contact_parts(contact: &NameAddr) -> (String, String) {
    (
        contact.uri_without_headers().to_string(),
        contact.params_text(),
    )
}

fn with_tag(value: &str, tag: &str) -> String {
    if tag_of(value).is_some() || tag.is_empty() {
        value.trim().to_string()
    } else {
        format!("{};tag={tag}", value.trim())
    }
}

impl Dialog {
    /// The UAS side of a dialog created by `request` (an INVITE we answer 2xx), RFC 3261
    /// §12.1.1: route set from Record-Route (in order), remote target from Contact, remote
    /// CSeq from the request. `local_tag` is the tag put in our response's To;
    /// `local_contact` our Contact URI (a `String` or an `rsip::Uri`).
    pub fn new_uas(
        request: &Request,
        local_tag: &str,
        local_contact: impl std::fmt::Display,
    ) -> Result<Dialog, Error> {
        let call_id = message::call_id(&request.headers)
            .ok_or_else(|| Error::MissingHeader("Call-ID".into()))?;
        let from = message::from_value(&request.headers)
            .ok_or_else(|| Error::MissingHeader("From".into()))?;
        let to =
            message::to_value(&request.headers).ok_or_else(|| Error::MissingHeader("To".into()))?;
        let contact = message::contact_addr(&request.headers)
            .ok_or_else(|| Error::MissingHeader("Contact".into()))?;
        let (target, _) = contact_parts(&contact);
        let remote_target = parse_uri(&target, "Contact")?;
        let (seq, _) = message::cseq(&request.headers).ok_or_else(|| Error::InvalidHeader {
            name: "CSeq".into(),
            reason: "unreadable".into(),
        })?;
        Ok(Dialog {
            id: DialogId {
                call_id,
                local_tag: local_tag.to_string(),
                remote_tag: tag_of(&from).unwrap_or_default(),
            },
            local_seq: 0,
            remote_seq: Some(seq),
            local_party: with_tag(&to, local_tag),
            remote_party: from,
            remote_target,
            remote_target_raw: target,
            route_set: route_values(&request.headers),
            local_contact: strip_angles(&local_contact.to_string()),
            contact_params: String::new(),
            via: None,
        })
    }

    /// The UAC side of a dialog created by `response` (a 2xx, or a 1xx with a To tag) to our
    /// `request`, RFC 3261 §12.1.2: route set from Record-Route in reverse order, remote
    /// target from the response's Contact, local CSeq from the request. Our Contact (and its
    /// parameters, e.g. `;+sip.src`) is taken from the request.
    pub fn new_uac(request: &Request, response: &Response) -> Result<Dialog, Error> {
        let call_id = message::call_id(&request.headers)
            .ok_or_else(|| Error::MissingHeader("Call-ID".into()))?;
        let from = message::from_value(&request.headers)
            .ok_or_else(|| Error::MissingHeader("From".into()))?;
        let local_tag =
            tag_of(&from).ok_or_else(|| Error::Dialog("our request has no From tag".into()))?;
        let to = message::to_value(&response.headers)
            .ok_or_else(|| Error::MissingHeader("To".into()))?;
        let remote_tag =
            tag_of(&to).ok_or_else(|| Error::Dialog("the response has no To tag".into()))?;
        let contact = message::contact_addr(&response.headers)
            .ok_or_else(|| Error::MissingHeader("Contact".into()))?;
        let (target, _) = contact_parts(&contact);
        let remote_target = parse_uri(&target, "Contact")?;
        let (local_contact, contact_params) = message::contact_addr(&request.headers)
            .map(|c| contact_parts(&c))
            .unwrap_or_default();
        let (seq, _) = message::cseq(&request.headers).ok_or_else(|| Error::InvalidHeader {
            name: "CSeq".into(),
            reason: "unreadable".into(),
        })?;
        let mut route_set = route_values(&response.headers);
        route_set.reverse();
        Ok(Dialog {
            id: DialogId {
                call_id,
                local_tag,
                remote_tag,
            },
            local_seq: seq,
            remote_seq: None,
            local_party: from,
            remote_party: to,
            remote_target,
            remote_target_raw: target,
            route_set,
            local_contact,
            contact_params,
            via: None,
        })
    }

    /// Call-ID and tags.
    pub fn id(&self) -> &DialogId {
        &self.id
    }

    /// Our last CSeq number.
    pub fn local_seq(&self) -> u32 {
        self.local_seq
    }

    /// The peer's last CSeq number, once known.
    pub fn remote_seq(&self) -> Option<u32> {
        self.remote_seq
    }

    /// Where in-dialog requests go (the peer's Contact).
    pub fn remote_target(&self) -> &rsip::Uri {
        &self.remote_target
    }

    /// The route set, first hop first.
    pub fn route_set(&self) -> &[String] {
        &self.route_set
    }

    /// Our Contact URI.
    pub fn local_contact(&self) -> &str {
        &self.local_contact
    }

    /// Header parameters appended to our Contact in requests we send (e.g. `;+sip.src` for an
    /// SRC, RFC 7866 §6.1.1).
    pub fn set_contact_params(&mut self, params: &str) {
        let p = params.trim();
        self.contact_params = if p.is_empty() || p.starts_with(';') {
            p.to_string()
        } else {
            format!(";{p}")
        };
    }

    /// The sent-by (`host`, `port`) and transport of the Via put on requests from
    /// [`Dialog::new_request`] and [`Dialog::make_ack`]. Without it the Via is built from our
    /// Contact URI.
    pub fn set_via(&mut self, host: impl Into<String>, port: u16, transport: Transport) {
        self.via = Some((host.into(), port, transport));
    }

    /// `true` when `req` belongs to this dialog: same Call-ID, our tag in To, the peer's tag
    /// in From.
    pub fn matches(&self, req: &Request) -> bool {
        DialogId::for_incoming(req).is_some_and(|id| id == self.id)
    }

    /// RFC 3261 §12.2.2: checks and records the CSeq of a request received in the dialog.
    /// Returns `false` when it is lower than the last one (answer 500). ACK and CANCEL carry
    /// the CSeq number of their INVITE and are always accepted without changing it.
    pub fn accept_remote_cseq(&mut self, req: &Request) -> bool {
        let Some((seq, _)) = message::cseq(&req.headers) else {
            return false;
        };
        if matches!(req.method, Method::Ack | Method::Cancel) {
            return true;
        }
        match self.remote_seq {
            Some(last) if seq < last => false,
            _ => {
                self.remote_seq = Some(seq);
                true
            }
        }
    }

    /// Target refresh (RFC 3261 §12.2): a re-INVITE or UPDATE (or its 2xx) with a Contact
    /// changes where later requests go. Returns `Ok(false)` when there is no Contact.
    pub fn refresh_target(&mut self, headers: &rsip::Headers) -> Result<bool, Error> {
        let Some(contact) = message::contact_addr(headers) else {
            return Ok(false);
        };
        let (target, _) = contact_parts(&contact);
        self.remote_target = parse_uri(&target, "Contact")?;
        self.remote_target_raw = target;
        Ok(true)
    }

    fn via_header(&self) -> Header {
        let (sent_by, transport) = match &self.via {
            Some((host, port, t)) => {
                let host = if host.contains(':') && !host.starts_with('[') {
                    format!("[{host}]")
                } else {
                    host.clone()
                };
                (format!("{host}:{port}"), *t)
            }
            None => {
                let uri = SipUri::parse(&self.local_contact).ok();
                let transport = match uri.as_ref().and_then(SipUri::transport).as_deref() {
                    _ if uri.as_ref().is_some_and(|u| u.secure) => Transport::Tls,
                    Some("tcp") => Transport::Tcp,
                    Some("tls") => Transport::Tls,
                    _ => Transport::Udp,
                };
                let sent_by = uri
                    .map(|u| u.host_port())
                    .unwrap_or_else(|| "invalid.invalid".into());
                (sent_by, transport)
            }
        };
        Header::Via(rsip::headers::Via::new(format!(
            "SIP/2.0/{transport} {sent_by};branch={};rport",
            new_branch()
        )))
    }

    /// Request-URI and Route headers per RFC 3261 §12.2.1.1 (loose or strict routing).
    fn request_target(&self) -> (rsip::Uri, Vec<Header>) {
        let route = |v: &str| Header::Route(rsip::headers::Route::new(v.to_string()));
        let Some(first) = self.route_set.first() else {
            return (self.remote_target.clone(), Vec::new());
        };
        let loose = message::parse_params(split_name_addr(first).1)
            .iter()
            .any(|(n, _)| n == "lr")
            || uri_of(first).to_ascii_lowercase().contains(";lr");
        if loose {
            return (
                self.remote_target.clone(),
                self.route_set.iter().map(|r| route(r)).collect(),
            );
        }
        // Strict routing: the first route becomes the Request-URI, the remote target the
        // last Route.
        match parse_uri(uri_of(first), "Record-Route") {
            Ok(uri) => {
                let mut routes: Vec<Header> =
                    self.route_set.iter().skip(1).map(|r| route(r)).collect();
                routes.push(route(&format!("<{}>", self.remote_target_raw)));
                (uri, routes)
            }
            Err(_) => (
                self.remote_target.clone(),
                self.route_set.iter().map(|r| route(r)).collect(),
            ),
        }
    }

    fn build(&self, method: Method, seq: u32, body: Option<(String, Vec<u8>)>) -> Request {
        let (uri, routes) = self.request_target();
        let mut headers: Vec<Header> = vec![self.via_header(), Header::MaxForwards(70u32.into())];
        headers.extend(routes);
        headers.push(Header::From(rsip::headers::From::new(
            self.local_party.clone(),
        )));
        headers.push(Header::To(rsip::headers::To::new(
            self.remote_party.clone(),
        )));
        headers.push(Header::CallId(rsip::headers::CallId::new(
            self.id.call_id.clone(),
        )));
        headers.push(Header::CSeq(rsip::headers::CSeq::new(format!(
            "{seq} {method}"
        ))));
        let wants_contact = matches!(
            method,
            Method::Invite | Method::Update | Method::Subscribe | Method::Notify | Method::Refer
        );
        if wants_contact && !self.local_contact.is_empty() {
            headers.push(Header::Contact(rsip::headers::Contact::new(format!(
                "<{}>{}",
                self.local_contact, self.contact_params
            ))));
        }
        let body = match body {
            Some((ct, bytes)) => {
                headers.push(Header::ContentType(rsip::headers::ContentType::new(ct)));
                bytes
            }
            None => Vec::new(),
        };
        headers.push(Header::ContentLength((body.len() as u32).into()));
        Request {
            method,
            uri,
            version: rsip::Version::V2,
            headers: headers.into(),
            body,
        }
    }

    /// A new request in the dialog (RFC 3261 §12.2.1.1): Request-URI and Route from the remote
    /// target and route set, From/To/Call-ID of the dialog, CSeq one higher than the last
    /// (not for ACK or CANCEL), a Via with a fresh branch (see [`Dialog::set_via`]),
    /// Max-Forwards 70, our Contact for INVITE/UPDATE/SUBSCRIBE/NOTIFY/REFER, and the body
    /// with its Content-Type.
    pub fn new_request(&mut self, method: Method, body: Option<(String, Vec<u8>)>) -> Request {
        if !matches!(method, Method::Ack | Method::Cancel) {
            self.local_seq = self.local_seq.saturating_add(1).min(i32::MAX as u32);
        }
        self.build(method, self.local_seq, body)
    }

    /// The ACK for a 2xx to the INVITE with CSeq number `invite_cseq` (RFC 3261 §13.2.2.4):
    /// same dialog routing, CSeq `invite_cseq ACK`, a fresh branch, no body.
    pub fn make_ack(&self, invite_cseq: u32) -> Request {
        self.build(Method::Ack, invite_cseq, None)
    }
}

fn strip_angles(s: &str) -> String {
    let s = s.trim();
    s.strip_prefix('<')
        .and_then(|r| r.strip_suffix('>'))
        .unwrap_or(s)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{parse_message, print_message};
    use rsip::SipMessage;

    fn request(text: &str) -> Request {
        match parse_message(text.as_bytes()).unwrap() {
            SipMessage::Request(r) => r,
            SipMessage::Response(_) => panic!("not a request"),
        }
    }

    const INVITE: &str = "INVITE sip:srs@198.51.100.10 SIP/2.0\r\n\
Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bKinv\r\n\
From: \"SRC\" <sip:src@example.com>;tag=src-tag\r\n\
To: <sip:srs@example.net>\r\n\
Call-ID: dlg-1\r\n\
CSeq: 10 INVITE\r\n\
Contact: <sip:src@192.0.2.1:5060;transport=tcp>;+sip.src\r\n\
Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n\
Content-Length: 0\r\n\r\n";

    #[test]
    fn uas_dialog_builds_bye_and_checks_cseq() {
        let inv = request(INVITE);
        let mut d = Dialog::new_uas(&inv, "srs-tag", "sip:srs@198.51.100.10:5060").unwrap();
        assert_eq!(
            d.id(),
            &DialogId {
                call_id: "dlg-1".into(),
                local_tag: "srs-tag".into(),
                remote_tag: "src-tag".into()
            }
        );
        // The remote target prints as the peer wrote it.
        assert_eq!(
            d.remote_target().to_string(),
            "sip:src@192.0.2.1:5060;transport=tcp"
        );
        assert_eq!(d.route_set().len(), 2);
        d.set_via("198.51.100.10", 5060, Transport::Tcp);
        let bye = d.new_request(Method::Bye, None);
        let text = String::from_utf8(print_message(&bye.clone().into())).unwrap();
        assert!(
            text.starts_with("BYE sip:src@192.0.2.1:5060;transport=tcp SIP/2.0\r\n"),
            "{text}"
        );
        assert!(text.contains("Via: SIP/2.0/TCP 198.51.100.10:5060;branch=z9hG4bK"));
        assert!(
            text.contains("Route: <sip:p1.example.com;lr>\r\nRoute: <sip:p2.example.com;lr>\r\n")
        );
        assert!(text.contains("From: <sip:srs@example.net>;tag=srs-tag\r\n"));
        assert!(text.contains("To: \"SRC\" <sip:src@example.com>;tag=src-tag\r\n"));
        assert!(text.contains("CSeq: 1 BYE\r\n"));
        assert!(!text.contains("Contact"));
        // Parses back.
        parse_message(text.as_bytes()).unwrap();

        // In-dialog request from the SRC.
        let mut reinv = request(
            &INVITE
                .replace(
                    "To: <sip:srs@example.net>",
                    "To: <sip:srs@example.net>;tag=srs-tag",
                )
                .replace("CSeq: 10", "CSeq: 11"),
        );
        assert!(d.matches(&reinv));
        assert!(d.accept_remote_cseq(&reinv));
        assert_eq!(d.remote_seq(), Some(11));
        reinv = request(
            &INVITE
                .replace(
                    "To: <sip:srs@example.net>",
                    "To: <sip:srs@example.net>;tag=srs-tag",
                )
                .replace("CSeq: 10", "CSeq: 9"),
        );
        assert!(!d.accept_remote_cseq(&reinv));
        let mut ack = reinv.clone();
        ack.method = Method::Ack;
        assert!(d.accept_remote_cseq(&ack));
        let other = request(&INVITE.replace(
            "To: <sip:srs@example.net>",
            "To: <sip:srs@example.net>;tag=other",
        ));
        assert!(!d.matches(&other));
    }

    #[test]
    fn uac_dialog_reinvite_and_ack() {
        let inv = request(INVITE);
        let resp_text = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bKinv\r\n\
From: \"SRC\" <sip:src@example.com>;tag=src-tag\r\n\
To: <sip:srs@example.net>;tag=srs-tag\r\n\
Call-ID: dlg-1\r\n\
CSeq: 10 INVITE\r\n\
Contact: <sip:srs@198.51.100.10:5070>;+sip.srs\r\n\
Record-Route: <sip:p2.example.com;lr>\r\n\
Record-Route: <sip:p1.example.com;lr>\r\n\
Content-Length: 0\r\n\r\n";
        let resp = match parse_message(resp_text.as_bytes()).unwrap() {
            SipMessage::Response(r) => r,
            SipMessage::Request(_) => panic!(),
        };
        let mut d = Dialog::new_uac(&inv, &resp).unwrap();
        assert_eq!(d.id().local_tag, "src-tag");
        assert_eq!(d.id().remote_tag, "srs-tag");
        assert_eq!(DialogId::for_uac(&resp).as_ref(), Some(d.id()));
        assert_eq!(
            d.route_set(),
            ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
        );
        let ack = d.make_ack(10);
        let text = String::from_utf8(print_message(&ack.into())).unwrap();
        assert!(text.starts_with("ACK sip:srs@198.51.100.10:5070 SIP/2.0\r\n"));
        assert!(text.contains("CSeq: 10 ACK\r\n"));
        // Via from our Contact when set_via was not called.
        assert!(
            text.contains("Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK"),
            "{text}"
        );
        let reinv = d.new_request(
            Method::Invite,
            Some(("application/sdp".into(), b"v=0\r\n".to_vec())),
        );
        let text = String::from_utf8(print_message(&reinv.into())).unwrap();
        assert!(text.contains("CSeq: 11 INVITE\r\n"));
        assert!(text.contains("Contact: <sip:src@192.0.2.1:5060;transport=tcp>;+sip.src\r\n"));
        assert!(text.contains("Content-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n"));
        // An in-dialog BYE from the SRS matches the UAC dialog.
        let bye = request("BYE sip:src@192.0.2.1:5060 SIP/2.0\r\nVia: SIP/2.0/TCP 198.51.100.10:5070;branch=z9hG4bKb\r\nFrom: <sip:srs@example.net>;tag=srs-tag\r\nTo: \"SRC\" <sip:src@example.com>;tag=src-tag\r\nCall-ID: dlg-1\r\nCSeq: 1 BYE\r\n\r\n");
        assert!(d.matches(&bye));
        assert!(d.accept_remote_cseq(&bye));
        // Target refresh.
        let mut h = rsip::Headers::default();
        h.push(Header::Contact(rsip::headers::Contact::new(
            "<sip:srs@198.51.100.11>",
        )));
        assert!(d.refresh_target(&h).unwrap());
        assert_eq!(d.remote_target().to_string(), "sip:srs@198.51.100.11");
    }

    #[test]
    fn strict_routing_and_errors() {
        let inv = request(&INVITE.replace(
            "Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>",
            "Record-Route: <sip:strict.example.com>",
        ));
        let mut d = Dialog::new_uas(&inv, "t", "sip:srs@h").unwrap();
        let bye = d.new_request(Method::Bye, None);
        assert_eq!(bye.uri.to_string(), "sip:strict.example.com");
        let text = String::from_utf8(print_message(&bye.into())).unwrap();
        assert!(text.contains("Route: <sip:src@192.0.2.1:5060;transport=tcp>\r\n"));
        // No Contact → error.
        let no_contact = request(&INVITE.replace(
            "Contact: <sip:src@192.0.2.1:5060;transport=tcp>;+sip.src\r\n",
            "",
        ));
        assert_eq!(
            Dialog::new_uas(&no_contact, "t", "sip:srs@h").unwrap_err(),
            Error::MissingHeader("Contact".into())
        );
        let tel =
            request(&INVITE.replace("<sip:src@192.0.2.1:5060;transport=tcp>", "<tel:+15551234>"));
        assert!(matches!(
            Dialog::new_uas(&tel, "t", "sip:srs@h"),
            Err(Error::Dialog(_))
        ));
    }
}
