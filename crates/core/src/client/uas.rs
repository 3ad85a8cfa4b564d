//! Requests from the SRS: BYE, re-INVITE and UPDATE (offers, snapshot requests), ACK.

use std::time::Instant;

use siprec_sdp::{Direction, Format, OfferBuilder, OfferStream, SessionDescription};
use siprec_sip::message::{content_type, make_response};
use siprec_sip::rsip::headers::UntypedHeader;
use siprec_sip::rsip::{self, Header, Method, Request, Response};
use siprec_sip::transaction::{Peer, ServerKey};
use tracing::debug;

use crate::body::{self, BodyError};

use super::contract::RsId;
use super::modify::{expiry_margin, session_timer};
use super::requests::{other, ACCEPT, ALLOW};
use super::state::{LegState, Phase, SessionTimer};
use super::SrcCore;

impl SrcCore {
    pub(super) fn respond(&mut self, now: Instant, key: &ServerKey, resp: Response) {
        if let Err(e) = self.layer.respond(now, key, resp) {
            debug!(%e, "respond failed");
        }
    }

    pub(super) fn simple(
        &mut self,
        now: Instant,
        key: &ServerKey,
        req: &Request,
        code: u16,
        extra: Vec<Header>,
    ) {
        let mut resp = make_response(req, code, None, None);
        for h in extra {
            resp.headers.push(h);
        }
        self.respond(now, key, resp);
    }

    pub(super) fn find_dialog(&self, req: &Request) -> Option<RsId> {
        self.rss
            .iter()
            .find(|r| {
                matches!(r.phase, Phase::Established | Phase::Closing { .. })
                    && r.dialog.as_ref().is_some_and(|d| d.matches(req))
            })
            .map(|r| r.id)
    }

    pub(super) fn on_request(&mut self, now: Instant, key: ServerKey, _peer: Peer, req: Request) {
        let to_tag = siprec_sip::message::to_tag(&req.headers);
        let Some(id) = self.find_dialog(&req) else {
            match (&req.method, to_tag) {
                (Method::Options, None) => {
                    let extra = vec![
                        other("Allow", ALLOW),
                        other("Accept", ACCEPT),
                        other("Supported", "timer"),
                    ];
                    self.simple(now, &key, &req, 200, extra);
                }
                (Method::Invite, None) => {
                    // A recording client takes no calls.
                    self.simple(now, &key, &req, 403, Vec::new());
                }
                _ => self.simple(now, &key, &req, 481, Vec::new()),
            }
            return;
        };
        let Some(r) = self.rs_mut(id) else { return };
        let closing = matches!(r.phase, Phase::Closing { .. });
        if let Some(d) = r.dialog.as_mut() {
            if !d.accept_remote_cseq(&req) {
                // RFC 3261 §12.2.2: lower CSeq → 500.
                self.simple(now, &key, &req, 500, Vec::new());
                return;
            }
        }
        match req.method {
            Method::Bye => {
                self.simple(now, &key, &req, 200, Vec::new());
                if closing {
                    self.finish_close(now, id, Some(200), "the SRS sent BYE too".into());
                } else {
                    self.end_rs(now, id, None, "the SRS sent BYE".into(), false);
                }
            }
            _ if closing => self.simple(now, &key, &req, 481, Vec::new()),
            Method::Invite | Method::Update => self.on_srs_modify(now, id, key, req),
            Method::Options => {
                let extra = vec![other("Allow", ALLOW), other("Accept", ACCEPT)];
                self.simple(now, &key, &req, 200, extra);
            }
            Method::Info => self.simple(now, &key, &req, 200, Vec::new()),
            _ => self.simple(now, &key, &req, 405, vec![other("Allow", ALLOW)]),
        }
    }

    pub(super) fn on_srs_modify(&mut self, now: Instant, id: RsId, key: ServerKey, req: Request) {
        let is_invite = req.method == Method::Invite;
        let ct = content_type(&req.headers);
        let parts = match body::split(ct.as_ref(), &req.body) {
            Ok(p) => p,
            Err(BodyError::Unsupported(_)) => {
                self.simple(now, &key, &req, 415, vec![other("Accept", ACCEPT)]);
                return;
            }
            Err(BodyError::Malformed(_)) => {
                self.simple(now, &key, &req, 400, Vec::new());
                return;
            }
        };
        let Some(r) = self.rs_mut(id) else { return };
        // RFC 3261 §14.2 / RFC 3311 §5.2: an offer while ours is pending → 491.
        let our_offer_pending = r
            .in_flight
            .as_ref()
            .is_some_and(|f| f.method == Method::Invite);
        if (is_invite && (our_offer_pending || r.srs_invite.is_some()))
            || (parts.sdp.is_some() && our_offer_pending)
        {
            self.simple(now, &key, &req, 491, Vec::new());
            return;
        }
        let offer = match parts.sdp.as_deref().map(siprec_sdp::parse) {
            Some(Err(_)) => {
                self.simple(now, &key, &req, 488, Vec::new());
                return;
            }
            Some(Ok(o)) => Some(o),
            None => None,
        };
        let Some(r) = self.rs_mut(id) else { return };
        if let Some(d) = r.dialog.as_mut() {
            let _ = d.refresh_target(&req.headers);
        }
        if parts.snapshot_request.is_some() {
            // RFC 7866 §9.4 (snapshot): the complete document in a new transaction.
            r.need_snapshot = true;
        }
        let mut body_out: Option<String> = None;
        let mut offer_in_2xx = false;
        if let Some(offer) = offer {
            let answer = self.answer_srs_offer(id, &offer);
            body_out = Some(answer);
        } else if is_invite {
            // Offerless re-INVITE: our offer in the 2xx, the answer in the ACK.
            let Some(r) = self.rs_mut(id) else { return };
            r.sdp_version += 1;
            let dir = r.have;
            let Some(r) = self.rs(id) else { return };
            body_out = Some(self.offer_sdp(r, dir));
            offer_in_2xx = true;
        }
        let mut resp = make_response(&req, 200, None, None);
        let Some(r) = self.rs_mut(id) else { return };
        if let Some(d) = r.dialog.as_ref() {
            resp.headers
                .push(Header::Contact(rsip::headers::Contact::new(format!(
                    "<{}>;+sip.src",
                    d.local_contact()
                ))));
        }
        resp.headers.push(other("Allow", ALLOW));
        resp.headers.push(other("Supported", "timer"));
        // RFC 4028: the SRS refreshes unless it asks us to.
        if let Some(t) = session_timer(now, &req.headers, false) {
            let refresher = if t.we_refresh { "uas" } else { "uac" };
            resp.headers.push(other(
                "Session-Expires",
                &format!("{};refresher={refresher}", t.interval.as_secs()),
            ));
            resp.headers.push(other("Require", "timer"));
            r.timer = Some(t);
        } else if let Some(t) = r.timer {
            if !t.we_refresh {
                // Any re-INVITE/UPDATE from the refresher is a refresh (RFC 4028 §10).
                r.timer = Some(SessionTimer {
                    at: now + expiry_margin(t.interval),
                    ..t
                });
            }
        }
        if let Some(b) = body_out {
            resp.headers
                .push(Header::ContentType(rsip::headers::ContentType::new(
                    "application/sdp",
                )));
            resp.body = b.into_bytes();
        }
        if is_invite {
            r.srs_invite = Some((key.clone(), offer_in_2xx));
        }
        self.respond(now, &key, resp);
        self.emit_media(id);
    }

    /// Our answer to an SDP offer from the SRS: per m-line, our leg's port with its codec,
    /// `sendonly` (or `inactive` while paused or when the SRS does not receive); extra
    /// m-lines declined with port 0.
    pub(super) fn answer_srs_offer(&mut self, id: RsId, offer: &SessionDescription) -> String {
        let paused = self.paused;
        let codecs = self.config.codecs.clone();
        let media_ip = self.config.media_ip;
        let rtp_ports = self.config.rtp_ports;
        let Some(r) = self.rs_mut(id) else {
            return String::new();
        };
        let mut streams = Vec::new();
        let mut legs: [LegState; 2] = Default::default();
        let mut any_send = false;
        for (i, m) in offer.media.iter().enumerate() {
            let chosen = m
                .formats
                .iter()
                .find(|f| {
                    codecs.iter().any(|c| {
                        c.encoding.eq_ignore_ascii_case(&f.encoding) && c.clock_rate == f.clock_rate
                    })
                })
                .cloned();
            let port = rtp_ports.get(i).copied();
            let usable = m.media.eq_ignore_ascii_case("audio") && m.port != 0;
            match (port, chosen, usable) {
                (Some(port), Some(format), true) => {
                    let receives = matches!(m.direction, Direction::RecvOnly | Direction::SendRecv);
                    let dir = if receives && !paused {
                        any_send = true;
                        Direction::SendOnly
                    } else {
                        Direction::Inactive
                    };
                    if let Some(leg) = legs.get_mut(i) {
                        leg.format = Some(format.clone());
                        leg.remote = if receives { m.remote_rtp_addr() } else { None };
                    }
                    streams.push(OfferStream {
                        port,
                        label: m.label.clone(),
                        direction: dir,
                        payload_types: vec![format],
                        rtcp_mux: false,
                        crypto: Vec::new(),
                    });
                }
                _ => streams.push(OfferStream {
                    port: 0,
                    label: m.label.clone(),
                    direction: Direction::Inactive,
                    payload_types: m
                        .formats
                        .first()
                        .cloned()
                        .or_else(|| Format::from_static_payload_type(0))
                        .into_iter()
                        .collect(),
                    rtcp_mux: false,
                    crypto: Vec::new(),
                }),
            }
        }
        r.legs = legs;
        r.have = if any_send || paused {
            if paused {
                Direction::Inactive
            } else {
                Direction::SendOnly
            }
        } else {
            Direction::Inactive
        };
        r.sdp_version += 1;
        let mut b = OfferBuilder::new(media_ip, r.sdp_id, r.sdp_version);
        b.username = "src".into();
        b.build(&streams)
    }

    pub(super) fn on_ack(&mut self, now: Instant, req: &Request) {
        let Some(id) = self.find_dialog(req) else {
            return;
        };
        let Some(r) = self.rs_mut(id) else { return };
        let Some((_, offer_in_2xx)) = r.srs_invite.take() else {
            return;
        };
        if offer_in_2xx {
            let ct = content_type(&req.headers);
            if let Ok(parts) = body::split(ct.as_ref(), &req.body) {
                if let Some(Ok(sdp)) = parts.sdp.as_deref().map(siprec_sdp::parse) {
                    let legs = self.legs_from_answer(id, &sdp);
                    if let Some(r) = self.rs_mut(id) {
                        r.legs = legs;
                    }
                }
            }
        }
        self.emit_media(id);
        self.reconcile(now, id);
    }
}
