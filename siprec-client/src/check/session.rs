//! One recording session as the checker drives it: the SIPREC INVITE (written as it travels,
//! so a check can leave a header out or break the body), the dialog once answered, and the
//! two RTP legs it offers.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rs_metadata::{CallMetadata, CallParty, DataMode, ParticipantStreamAssoc, Recording};
use siprec_sdp::{Direction, Format, OfferBuilder, OfferStream, SessionDescription};
use siprec_sip::dialog::Dialog;
use siprec_sip::message::{
    contact_addr, content_type_value, new_branch, new_call_id, new_tag, MediaType,
};
use siprec_sip::multipart::new_boundary;
use siprec_sip::rsip::{self, prelude::UntypedHeader, Method, Request, Response};
use siprec_sip::transaction::Transport;
use tokio::net::UdpSocket;

use super::probe::{Exchange, Probe, ProbeError};

/// An RTP leg: an even RTP port and the RTCP port above it (RFC 3550 §11), both bound.
/// The audio check connects the RTP socket to the SRS's port so ICMP errors reach it.
#[derive(Debug)]
pub struct Leg {
    /// RTP socket (connected to the SRS's port by the audio check).
    pub rtp: UdpSocket,
    /// RTCP socket: receiver reports from the SRS land here.
    pub rtcp: UdpSocket,
}

impl Leg {
    /// Binds an even/odd port pair on `ip`.
    pub async fn bind(ip: IpAddr) -> std::io::Result<Leg> {
        for _ in 0..64 {
            let rtp = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
            let port = rtp.local_addr()?.port();
            if port % 2 != 0 || port == u16::MAX {
                continue;
            }
            if let Ok(rtcp) = UdpSocket::bind(SocketAddr::new(ip, port + 1)).await {
                return Ok(Leg { rtp, rtcp });
            }
        }
        Err(std::io::Error::other("no free even/odd UDP port pair"))
    }

    /// The RTP port.
    pub fn port(&self) -> u16 {
        self.rtp.local_addr().map(|a| a.port()).unwrap_or(0)
    }
}

/// What goes into an INVITE.
#[derive(Debug, Clone, Copy)]
pub struct InviteShape {
    /// `Require: siprec` (RFC 7866 §6.1.1).
    pub require_siprec: bool,
    /// Replace the body by bytes that are no multipart document at all.
    pub garbage_body: bool,
    /// Pad the metadata so the whole request is at least this many bytes.
    pub min_size: usize,
}

impl Default for InviteShape {
    fn default() -> Self {
        InviteShape {
            require_siprec: true,
            garbage_body: false,
            min_size: 0,
        }
    }
}

/// One recording session (RS) of the checker.
#[derive(Debug)]
pub struct RsSession {
    /// Call-ID of the RS dialog.
    pub call_id: String,
    from_tag: String,
    request_uri: String,
    transport: Transport,
    local: SocketAddr,
    media_ip: IpAddr,
    sdp_id: u64,
    sdp_version: u64,
    /// The INVITE as sent.
    pub invite: Option<Request>,
    /// The last SDP offer sent.
    pub last_offer: String,
    /// The dialog once a 2xx came.
    pub dialog: Option<Dialog>,
    /// The two legs (caller label 1, callee label 2).
    pub legs: Vec<Leg>,
    /// Ids of the metadata.
    ids: [String; 5],
}

fn hex_id() -> String {
    format!(
        "{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

impl RsSession {
    /// A session towards `request_uri` from a probe at `local`, offering two legs.
    pub async fn new(
        probe: &Probe,
        request_uri: &str,
        media_ip: IpAddr,
    ) -> std::io::Result<RsSession> {
        let legs = vec![Leg::bind(media_ip).await?, Leg::bind(media_ip).await?];
        Ok(RsSession {
            call_id: new_call_id(Some(&probe.local.ip().to_string())),
            from_tag: new_tag(),
            request_uri: request_uri.to_string(),
            transport: probe.target.transport,
            local: probe.local,
            media_ip,
            sdp_id: rand::random::<u32>() as u64,
            sdp_version: 1,
            invite: None,
            last_offer: String::new(),
            dialog: None,
            legs,
            ids: [hex_id(), hex_id(), hex_id(), hex_id(), hex_id()],
        })
    }

    fn host_port(&self) -> String {
        match self.local.ip() {
            IpAddr::V6(ip) => format!("[{ip}]:{}", self.local.port()),
            IpAddr::V4(ip) => format!("{ip}:{}", self.local.port()),
        }
    }

    fn contact(&self) -> String {
        match self.transport {
            Transport::Udp => format!("<sip:check@{}>;+sip.src", self.host_port()),
            Transport::Tcp => format!("<sip:check@{};transport=tcp>;+sip.src", self.host_port()),
            Transport::Tls => format!("<sips:check@{}>;+sip.src", self.host_port()),
        }
    }

    /// The SDP offer: one `m=audio` per leg, `direction` on each, labels 1 and 2. `bump`
    /// makes it a new version (RFC 3264 §8); a session refresh repeats the last one.
    pub fn offer(&mut self, direction: Direction, bump: bool) -> String {
        if bump {
            self.sdp_version += 1;
        }
        let streams: Vec<OfferStream> = self
            .legs
            .iter()
            .enumerate()
            .map(|(i, leg)| OfferStream {
                port: leg.port(),
                label: Some((i + 1).to_string()),
                direction,
                payload_types: vec![Format::pcmu(), Format::pcma(), Format::telephone_event(101)],
                rtcp_mux: false,
                crypto: Vec::new(),
            })
            .collect();
        let mut b = OfferBuilder::new(self.media_ip, self.sdp_id, self.sdp_version);
        b.username = "check".into();
        b.build(&streams)
    }

    /// A complete RFC 7865 document for the two legs, with `padding` bytes of extra
    /// `<sipSessionID>` text to make the request large.
    pub fn metadata(&self, padding: usize) -> String {
        let [session, caller, callee, s1, s2] = self.ids.clone();
        let mut sip_session_ids = vec![self.call_id.clone()];
        if padding > 0 {
            sip_session_ids.push("0".repeat(padding));
        }
        let md = CallMetadata {
            session_id: session,
            sip_session_ids,
            start_time: "2026-01-01T00:00:00Z".into(),
            caller: CallParty {
                participant_id: caller,
                stream_id: s1,
                name: Some("Checker Caller".into()),
                aor: "sip:caller@check.invalid".into(),
            },
            callee: CallParty {
                participant_id: callee,
                stream_id: s2,
                name: Some("Checker Callee".into()),
                aor: "sip:callee@check.invalid".into(),
            },
            recording_id: Some(format!("check-{}", &self.ids[0][..8])),
            ..CallMetadata::default()
        };
        md.build().map(|r| r.to_xml()).unwrap_or_default()
    }

    /// A partial document (RFC 7865 §6): the callee's stream association ends, as at a
    /// transfer.
    pub fn partial_metadata(&self) -> String {
        Recording {
            data_mode: DataMode::Partial,
            participant_stream_assocs: vec![ParticipantStreamAssoc {
                participant_id: self.ids[2].clone(),
                send: Vec::new(),
                recv: Vec::new(),
                associate_time: None,
                disassociate_time: Some("2026-01-01T00:00:05Z".into()),
            }],
            ..Recording::default()
        }
        .to_xml()
    }

    /// `multipart/mixed` of SDP and metadata, as RFC 7866 §6.1.1 describes.
    pub fn multipart(sdp: &str, metadata: &str) -> (String, Vec<u8>) {
        siprec_core::body::recording_session_body(sdp, metadata)
    }

    /// The initial INVITE of this session.
    pub fn build_invite(&mut self, shape: InviteShape) -> Request {
        let sdp = self.offer(Direction::SendOnly, false);
        self.last_offer = sdp.clone();
        let mut padding = 0;
        loop {
            let (ctype, body) = if shape.garbage_body {
                (
                    format!("multipart/mixed;boundary={}", new_boundary()),
                    b"\x00\x01 this is not a multipart body { <xml? \xff\xfe ]]>".to_vec(),
                )
            } else {
                Self::multipart(&sdp, &self.metadata(padding))
            };
            let text = self.invite_text(&ctype, body.len(), shape.require_siprec);
            if !shape.garbage_body
                && text.len() + body.len() < shape.min_size
                && padding < 64 * 1024
            {
                padding = shape.min_size - text.len() - body.len() + 16;
                continue;
            }
            let mut wire = text.into_bytes();
            wire.extend_from_slice(&body);
            let req = match siprec_sip::message::parse_message(&wire) {
                Ok(rsip::SipMessage::Request(r)) => r,
                _ => Request {
                    method: Method::Invite,
                    uri: rsip::Uri::default(),
                    version: rsip::Version::V2,
                    headers: Default::default(),
                    body: Vec::new(),
                },
            };
            self.invite = Some(req.clone());
            return req;
        }
    }

    fn invite_text(&self, ctype: &str, body_len: usize, require: bool) -> String {
        let t = self.transport.as_str();
        let mut s = format!(
            "INVITE {uri} SIP/2.0\r\n\
             Via: SIP/2.0/{t} {hp};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: \"siprec-client check\" <sip:check@{hp}>;tag={tag}\r\n\
             To: <{uri}>\r\n\
             Call-ID: {cid}\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: {contact}\r\n",
            uri = self.request_uri,
            hp = self.host_port(),
            branch = new_branch(),
            tag = self.from_tag,
            cid = self.call_id,
            contact = self.contact(),
        );
        if require {
            s.push_str("Require: siprec\r\n");
        }
        s.push_str(&format!(
            "Accept: application/sdp, application/rs-metadata+xml\r\n\
             Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE\r\n\
             User-Agent: siprec-client-check/{}\r\n\
             Content-Type: {ctype}\r\n\
             Content-Length: {body_len}\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        ));
        s
    }

    /// Sends the INVITE (built with `shape`), waits for its final response and ACKs a 2xx;
    /// on a 2xx the dialog is set up (with the Request-URI as remote target when the SRS
    /// left Contact out, so the rest of the battery can still run).
    pub async fn invite(
        &mut self,
        probe: &mut Probe,
        shape: InviteShape,
        wait: Duration,
    ) -> Exchange {
        let req = self.build_invite(shape);
        let ex = probe.request(req, wait).await;
        if ex.is_success() {
            self.established(probe, ex.final_response.as_ref()).await;
        }
        ex
    }

    /// Sets up the dialog from a 2xx to the INVITE and sends the ACK.
    pub async fn established(&mut self, probe: &mut Probe, response: Option<&Response>) {
        let (Some(invite), Some(resp)) = (self.invite.as_ref(), response) else {
            return;
        };
        let mut resp = resp.clone();
        if contact_addr(&resp.headers).is_none() {
            resp.headers
                .push(rsip::Header::Contact(rsip::headers::Contact::new(format!(
                    "<{}>",
                    self.request_uri
                ))));
        }
        if let Ok(mut d) = Dialog::new_uac(invite, &resp) {
            d.set_via(
                self.local.ip().to_string(),
                self.local.port(),
                self.transport,
            );
            let ack = d.make_ack(1);
            probe.ack(ack).await;
            self.dialog = Some(d);
        }
    }

    /// A request in the dialog (`None` before it exists).
    pub fn in_dialog(
        &mut self,
        method: Method,
        body: Option<(String, Vec<u8>)>,
    ) -> Option<Request> {
        self.dialog.as_mut().map(|d| d.new_request(method, body))
    }

    /// A re-INVITE with an SDP offer, waits for the answer and ACKs a 2xx.
    pub async fn reinvite(
        &mut self,
        probe: &mut Probe,
        sdp: String,
        wait: Duration,
    ) -> Option<Exchange> {
        let req = self.in_dialog(
            Method::Invite,
            Some(("application/sdp".into(), sdp.into_bytes())),
        )?;
        let seq = siprec_sip::message::cseq(&req.headers)
            .map(|(n, _)| n)
            .unwrap_or(0);
        let ex = probe.request(req, wait).await;
        if ex.is_success() {
            if let Some(d) = &self.dialog {
                probe.ack(d.make_ack(seq)).await;
            }
        }
        Some(ex)
    }

    /// Sends BYE and waits for its answer.
    pub async fn bye(&mut self, probe: &mut Probe, wait: Duration) -> Option<Exchange> {
        let req = self.in_dialog(Method::Bye, None)?;
        Some(probe.request(req, wait).await)
    }

    /// Sends BYE without waiting (clean-up after a check).
    pub fn hang_up(&mut self, probe: &mut Probe) {
        if let Some(req) = self.in_dialog(Method::Bye, None) {
            probe.start(req);
        }
    }
}

/// The parsed SDP answer of a response, or why there is none.
pub fn answer_of(resp: &Response) -> Result<SessionDescription, ProbeError> {
    let ctype = content_type_value(&resp.headers).unwrap_or_default();
    if resp.body.is_empty() {
        return Err(ProbeError::NoBody);
    }
    if !MediaType::parse(&ctype).is_some_and(|c| c.is("application/sdp")) {
        return Err(ProbeError::NotSdp(ctype));
    }
    siprec_sdp::parse(&resp.body).map_err(ProbeError::Sdp)
}
