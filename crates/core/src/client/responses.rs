//! Responses, each routed to its RS, and transactions that timed out: for the INVITE,
//! failover, redirects and establishing the RS (dialog, ACK, the media plan from the answer).

use std::time::Instant;

use siprec_sdp::{Direction, SessionDescription};
use siprec_sip::dialog::Dialog;
use siprec_sip::message;
use siprec_sip::rsip::headers::UntypedHeader;
use siprec_sip::rsip::{self, Header, Method, Request, Response};
use siprec_sip::transaction::{ClientKey, Peer, Transport};
use tracing::{debug, info, warn};

use crate::body;

use super::config::accepted_key;
use super::contract::{Activity, Reply, RsId, SrsReport, LOG_ESTABLISHED};
use super::events::{Event, LegMedia, MediaPlan};
use super::modify::session_timer;
use super::server_uri::{short, SrsUri};
use super::state::{CallState, LegState, Phase, Purpose};
use super::SrcCore;

impl SrcCore {
    pub(super) fn on_response(&mut self, now: Instant, key: ClientKey, resp: Response) {
        let code = resp.status_code.code();
        let Some((id, purpose)) = self.owners.get(&key).copied() else {
            let ours = self
                .rss
                .iter()
                .any(|r| r.invite_key.as_ref() == Some(&key) && r.ack.is_some());
            if key.0.method == Method::Invite && (200..300).contains(&code) && ours {
                self.resend_ack(now, &key);
            } else if key.0.method == Method::Invite && (200..300).contains(&code) {
                if let Some((peer, req)) = self.orphans.get(&key).cloned() {
                    // A late 2xx for an INVITE we gave up on: ACK it, then BYE.
                    info!(code, "late answer to an abandoned INVITE: ACK and BYE");
                    self.ack_and_bye(now, peer, &req, &resp);
                    self.orphans.remove(&key);
                } else {
                    self.resend_ack(now, &key);
                }
            } else if code >= 200 {
                self.orphans.remove(&key);
            }
            return;
        };
        match purpose {
            Purpose::Invite => self.on_invite_response(now, id, key, resp),
            Purpose::Modify => self.on_modify_response(now, id, key, resp),
            Purpose::Bye => {
                if code >= 200 {
                    self.owners.remove(&key);
                    let detail = format!("BYE answered {code} {}", reason_of(&resp));
                    self.finish_close(now, id, Some(code), detail);
                }
            }
        }
    }

    pub(super) fn on_tx_timeout(&mut self, now: Instant, key: ClientKey) {
        self.orphans.remove(&key);
        let Some((id, purpose)) = self.owners.remove(&key) else {
            return;
        };
        let Some(r) = self.rs_mut(id) else { return };
        match purpose {
            Purpose::Invite => match &r.phase {
                Phase::Inviting(a) if a.key == key => {
                    r.history
                        .push(format!("{}: no final response (timeout)", a.target));
                    self.try_next_target(now, id);
                }
                Phase::Closing { key: k, .. } if *k == key => {
                    self.finish_close(now, id, None, "INVITE ended without an answer".into());
                }
                _ => {}
            },
            Purpose::Modify => {
                if r.in_flight.as_ref().is_some_and(|f| f.key == key) {
                    r.in_flight = None;
                    let why = "no answer to the re-INVITE/UPDATE (timeout)".to_string();
                    self.end_rs(now, id, Some(408), why, false);
                }
            }
            Purpose::Bye => {
                self.finish_close(now, id, None, "BYE not answered (timeout)".into());
            }
        }
    }

    pub(super) fn resend_ack(&mut self, now: Instant, key: &ClientKey) {
        let ack = self.rss.iter().find_map(|r| {
            if r.invite_key.as_ref() == Some(key) {
                r.ack.clone().zip(r.peer)
            } else {
                r.last_reinvite_ack
                    .as_ref()
                    .filter(|(k, _)| k == key)
                    .map(|(_, a)| a.clone())
                    .zip(r.peer)
            }
        });
        if let Some((ack, peer)) = ack {
            self.layer.send_request(now, peer, ack);
        }
    }

    pub(super) fn on_invite_response(
        &mut self,
        now: Instant,
        id: RsId,
        key: ClientKey,
        resp: Response,
    ) {
        let code = resp.status_code.code();
        let Some(r) = self.rs_mut(id) else { return };
        let current = matches!(&r.phase, Phase::Inviting(a) if a.key == key);
        if code < 200 {
            if let Phase::Inviting(a) = &mut r.phase {
                if a.key == key {
                    a.provisional = true;
                    a.switch_at = None;
                }
            }
            return;
        }
        if (200..300).contains(&code) {
            if current {
                self.establish(now, id, resp);
            } else if matches!(r.phase, Phase::Established | Phase::Closing { .. })
                && r.invite_key.as_ref() == Some(&key)
                && r.ack.is_some()
            {
                // A retransmitted 2xx: the ACK again (RFC 3261 §13.2.2.4).
                self.resend_ack(now, &key);
            } else if let Phase::Closing { key: k, .. } = &r.phase {
                if *k == key {
                    // The CANCEL lost the race: ACK and BYE, the close continues with the BYE.
                    let peer = r.peer;
                    let Some(req) = self.invite_request(id) else {
                        return;
                    };
                    self.owners.remove(&key);
                    self.orphans.remove(&key);
                    if let Some(peer) = peer {
                        if let Some(bye_key) = self.ack_and_bye(now, peer, &req, &resp) {
                            self.owners.insert(bye_key.clone(), (id, Purpose::Bye));
                            let deadline = now + self.config.request_timeout;
                            if let Some(r) = self.rs_mut(id) {
                                r.phase = Phase::Closing {
                                    key: bye_key,
                                    deadline,
                                };
                            }
                        }
                    }
                }
            }
            return;
        }
        // A final non-2xx.
        if let Phase::Closing { key: k, .. } = &r.phase {
            if *k == key {
                self.owners.remove(&key);
                self.orphans.remove(&key);
                let detail = format!("INVITE cancelled ({code} {})", reason_of(&resp));
                self.finish_close(now, id, Some(code), detail);
            }
            return;
        }
        if !current {
            return;
        }
        self.owners.remove(&key);
        let Some(r) = self.rs_mut(id) else { return };
        r.status = Some(code);
        let target = r.target.map(|t| t.to_string()).unwrap_or_default();
        let mut what = format!("{target}: {code} {}", reason_of(&resp));
        if code == 420 {
            let u = message::unsupported(&resp.headers).join(", ");
            what.push_str(&format!(
                " (Unsupported: {u}; the server does not support SIPREC)"
            ));
        }
        r.history.push(what.clone());
        match code {
            // RFC 3263 §4.3: 503 → the next target.
            503 => self.try_next_target(now, id),
            300..=399 => self.redirect(now, id, &resp),
            _ => self.fail_rs(now, id, Some(code), what),
        }
    }

    pub(super) fn invite_request(&self, id: RsId) -> Option<Request> {
        // The INVITE of the current attempt is kept in the Attempt; once closing, rebuild
        // nothing: we keep it in the orphan map instead.
        let r = self.rs(id)?;
        let key = r.invite_key.as_ref()?;
        self.orphans.get(key).map(|(_, req)| req.clone())
    }

    pub(super) fn redirect(&mut self, now: Instant, id: RsId, resp: &Response) {
        let max = self.config.max_redirects;
        let Some(r) = self.rs_mut(id) else { return };
        if r.redirects >= max {
            let why = format!("more than {max} redirects");
            self.fail_rs(now, id, r_status(resp), why);
            return;
        }
        // RFC 3261 §8.1.3.4: try the Contacts (highest q first; we take them in order).
        let mut next = None;
        for c in message::contacts(&resp.headers) {
            if let Ok(u) = SrsUri::parse(c.uri_without_headers()) {
                next = Some(u);
                break;
            }
        }
        let Some(uri) = next else {
            let why = "redirect without a sip:/sips: Contact".to_string();
            self.fail_rs(now, id, r_status(resp), why);
            return;
        };
        let Some(r) = self.rs_mut(id) else { return };
        r.redirects += 1;
        r.history.push(format!("redirected to {uri}"));
        r.uri = uri.clone();
        r.targets.clear();
        r.next = 0;
        r.phase = Phase::Resolving;
        self.events.push_back(Event::Resolve { rs: id, uri });
    }

    /// ACKs a 2xx to `invite` and sends BYE; returns the BYE's key.
    pub(super) fn ack_and_bye(
        &mut self,
        now: Instant,
        peer: Peer,
        invite: &Request,
        resp: &Response,
    ) -> Option<ClientKey> {
        let cseq = message::cseq(&invite.headers).map_or(1, |(n, _)| n);
        let (mut dialog, uri) = match self.dialog_for(invite, resp) {
            Some(x) => x,
            None => {
                debug!("cannot build a dialog from a late 2xx; not answered");
                return None;
            }
        };
        self.set_dialog_via(&mut dialog, peer.transport);
        let mut ack = dialog.make_ack(cseq);
        if let Some(u) = &uri {
            ack.uri = u.clone();
        }
        self.layer.send_request(now, peer, ack);
        let mut bye = dialog.new_request(Method::Bye, None);
        if let Some(u) = uri {
            bye.uri = u;
        }
        Some(self.layer.send_request(now, peer, bye))
    }

    pub(super) fn set_dialog_via(&self, dialog: &mut Dialog, transport: Transport) {
        if let Some(local) = self.config.local_for(transport) {
            dialog.set_via(local.ip().to_string(), local.port(), transport);
        }
    }

    /// A UAC dialog from our INVITE and its 2xx (IPv6 Contacts included). When the SRS's
    /// Contact is missing or not a sip:/sips: URI the dialog is built with a stand-in, and the
    /// Request-URI for in-dialog requests (the INVITE's) is returned beside it.
    pub(super) fn dialog_for(
        &self,
        invite: &Request,
        resp: &Response,
    ) -> Option<(Dialog, Option<rsip::Uri>)> {
        match Dialog::new_uac(invite, resp) {
            Ok(d) => Some((d, None)),
            Err(e) => {
                let contact = message::contact_addr(&resp.headers);
                let real = contact
                    .as_ref()
                    .and_then(|c| SrsUri::parse(c.uri_without_headers()).ok())
                    .map(|u| u.to_rsip())
                    .unwrap_or_else(|| invite.uri.clone());
                let mut patched = resp.clone();
                patched.headers.retain(|h| !matches!(h, Header::Contact(_)));
                patched
                    .headers
                    .push(Header::Contact(rsip::headers::Contact::new(
                        "<sip:stand-in.invalid>",
                    )));
                match Dialog::new_uac(invite, &patched) {
                    Ok(d) => Some((d, Some(real))),
                    Err(e2) => {
                        debug!(%e, %e2, "no dialog from 2xx");
                        None
                    }
                }
            }
        }
    }

    pub(super) fn establish(&mut self, now: Instant, id: RsId, resp: Response) {
        let Some(r) = self.rs_mut(id) else { return };
        if !matches!(r.phase, Phase::Inviting(_)) {
            return;
        }
        let Phase::Inviting(a) = std::mem::replace(&mut r.phase, Phase::Established) else {
            return;
        };
        let peer: Peer = a.target.into();
        let cseq = message::cseq(&a.request.headers).map_or(1, |(n, _)| n);
        let Some((mut dialog, uri)) = self.dialog_for(&a.request, &resp) else {
            self.fail_rs(
                now,
                id,
                Some(200),
                "2xx without a usable dialog (no To tag)".into(),
            );
            return;
        };
        self.set_dialog_via(&mut dialog, peer.transport);
        let mut ack = dialog.make_ack(cseq);
        if let Some(u) = &uri {
            ack.uri = u.clone();
        }
        self.layer.send_request(now, peer, ack.clone());
        // The SDP answer.
        let answer = sdp_of(&resp);
        let offered = a.dir;
        let legs = match answer.as_ref() {
            Some(Ok(sdp)) => self.legs_from_answer(id, sdp),
            _ => Default::default(),
        };
        let usable =
            legs.iter().any(|l: &LegState| l.remote.is_some()) || offered == Direction::Inactive;
        if !usable {
            let why = match answer {
                None => "2xx without an SDP answer".to_string(),
                Some(Err(e)) => format!("unusable SDP answer: {e}"),
                Some(Ok(_)) => "the SRS declined every stream (or no common codec)".to_string(),
            };
            let mut bye = dialog.new_request(Method::Bye, None);
            if let Some(u) = &uri {
                bye.uri = u.clone();
            }
            self.layer.send_request(now, peer, bye);
            if let Some(r) = self.rs_mut(id) {
                r.phase = Phase::Inviting(a);
            }
            let target = peer.addr;
            self.fail_rs(now, id, Some(200), format!("{target}: {why}"));
            return;
        }
        let allow_update = message::allow(&resp.headers).iter().any(|m| m == "update");
        let timer = session_timer(now, &resp.headers, true);
        let Some(r) = self.rs_mut(id) else { return };
        r.status = Some(resp.status_code.code());
        r.dialog = Some(dialog);
        r.target_uri = uri;
        r.ack = Some(ack);
        r.legs = legs;
        r.have = offered;
        r.allow_update = allow_update;
        r.timer = timer;
        r.peer = Some(peer);
        let was_start = r.start_op.take();
        let report = SrsReport {
            rs: id,
            entry: r.entry.clone(),
            target: r.target,
            status: r.status,
            ok: true,
            line: LOG_ESTABLISHED,
            detail: String::new(),
        };
        info!(rs = %id, entry = %report.entry, target = %a.target, "{LOG_ESTABLISHED}");
        let answers_start =
            was_start.is_some_and(|op| self.start.as_ref().is_some_and(|s| s.id == op));
        if !answers_start {
            // A late joiner: news of its own. (The one answering the start is in its outcome.)
            self.events.push_back(Event::Srs(report));
        }
        self.emit_media(id);
        if let Some(op) = was_start {
            if self.start.as_ref().is_some_and(|s| s.id == op) {
                if let Some(s) = self.start.take() {
                    for other in &s.rss {
                        if let Some(o) = self.rs_mut(*other) {
                            o.start_op = None;
                        }
                    }
                    self.state = CallState::Recording;
                    let reports = self.reports_of(&s.rss);
                    self.outcome(s.id, Activity::Start, Reply::Started, None, reports);
                }
            }
        }
        if self.state != CallState::Recording {
            // Answered after the recording was stopped: end it at once.
            self.end_rs(
                now,
                id,
                None,
                "the recording is no longer active".into(),
                true,
            );
        }
    }

    pub(super) fn legs_from_answer(&self, id: RsId, sdp: &SessionDescription) -> [LegState; 2] {
        let keys = self.rs(id).and_then(|r| r.srtp_keys.as_ref());
        let mut legs: [LegState; 2] = Default::default();
        for (i, leg) in legs.iter_mut().enumerate() {
            let Some(m) = sdp.media.get(i) else { continue };
            if m.port == 0 || !m.media.eq_ignore_ascii_case("audio") {
                continue;
            }
            let Some(format) = m
                .formats
                .iter()
                .find(|f| {
                    self.config.codecs.iter().any(|c| {
                        c.encoding.eq_ignore_ascii_case(&f.encoding) && c.clock_rate == f.clock_rate
                    })
                })
                .cloned()
            else {
                continue;
            };
            leg.format = Some(format);
            if m.is_srtp() {
                let tag = keys
                    .and_then(|k| accepted_key(&k[i], &m.crypto))
                    .map(|k| k.tag);
                if tag.is_none() {
                    warn!(
                        leg = i,
                        "the SRS answered RTP/SAVP without accepting any of our a=crypto keys; \
                         nothing is sent on this stream"
                    );
                }
                leg.srtp = Some(tag);
            }
            // An answer of sendonly/inactive means the SRS takes no media on this line.
            if matches!(m.direction, Direction::RecvOnly | Direction::SendRecv) {
                leg.remote = m.remote_rtp_addr();
            }
        }
        legs
    }

    pub(super) fn emit_media(&mut self, id: RsId) {
        let paused = self.paused;
        let Some(r) = self.rs_mut(id) else { return };
        if !matches!(r.phase, Phase::Established) {
            return;
        }
        let legs = [0, 1].map(|i| {
            let l = &r.legs[i];
            let offered = r.srtp_keys.as_ref().map(|k| &k[i]);
            let key = match (offered, l.srtp) {
                (Some(keys), Some(Some(tag))) => keys.iter().find(|k| k.tag == tag).cloned(),
                _ => None,
            };
            match (l.remote, &l.format) {
                // We offered SRTP: never send in clear to an SRS that answered RTP/AVP, nor
                // with a key it did not accept.
                (Some(_), Some(_)) if offered.is_some() && key.is_none() => None,
                (Some(remote), Some(format)) => Some(LegMedia {
                    remote,
                    format: format.clone(),
                    srtp: key,
                }),
                _ => None,
            }
        });
        let plan = MediaPlan {
            sending: !paused && r.have == Direction::SendOnly && legs.iter().any(Option::is_some),
            legs,
        };
        if r.last_plan.as_ref() != Some(&plan) {
            r.last_plan = Some(plan.clone());
            self.events.push_back(Event::Media { rs: id, plan });
        }
    }
}

pub(super) fn reason_of(resp: &Response) -> String {
    match &resp.status_code {
        rsip::StatusCode::Other(_, r) if !r.trim().is_empty() && r.trim() != "Other" => {
            short(r.trim())
        }
        known => message::reason_phrase(known.code()).to_string(),
    }
}

pub(super) fn r_status(resp: &Response) -> Option<u16> {
    Some(resp.status_code.code())
}

/// Why an SRS's SDP answer cannot be used (the SRS sent it).
#[derive(Debug, Clone, thiserror::Error)]
pub(super) enum AnswerError {
    /// The body cannot be split.
    #[error(transparent)]
    Body(#[from] body::BodyError),
    /// The SDP does not parse.
    #[error(transparent)]
    Sdp(#[from] siprec_sdp::Error),
}

/// The SDP of a message body (plain or inside multipart/mixed).
pub(super) fn sdp_of(resp: &Response) -> Option<Result<SessionDescription, AnswerError>> {
    let ct = message::content_type(&resp.headers);
    let parts = match body::split(ct.as_ref(), &resp.body) {
        Ok(p) => p,
        Err(e) => return Some(Err(e.into())),
    };
    parts
        .sdp
        .map(|b| siprec_sdp::parse(&b).map_err(AnswerError::from))
}
