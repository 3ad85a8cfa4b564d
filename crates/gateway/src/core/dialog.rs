//! Inside the dialogs: requests relayed between the legs (re-INVITE, UPDATE, INFO, …), their
//! answers, ACKs and delayed offers, and each side's SDP anchored on the way.

use super::*;

impl GatewayCore {
    /// `side`'s SDP in a message: updates the relay and returns the body rewritten for the
    /// other side (`None` when there is no SDP).
    pub(super) fn relay_sdp(
        &mut self,
        now: Instant,
        id: CallId,
        side: Side,
        answer: bool,
        headers: &rsip::Headers,
        body: &[u8],
    ) -> Result<Option<Vec<u8>>, Error> {
        let Some(sdp) = sdp_body(headers, body) else {
            return Ok(None);
        };
        let info = media_info(sdp)?;
        let Some(call) = self.calls.get_mut(&id) else {
            return Ok(None);
        };
        let out = anchor(sdp, self.config.media_ip, call.port_facing(side.other()))?;
        call.media[side.index()] = Some(info.clone());
        // An answer (from B to an A offer, or from A to a B offer) fixes the codec: its first
        // audio format. An offer changes nothing until it is answered.
        let codec = info.codec().cloned();
        let changed = answer && codec.is_some() && codec != call.codec;
        let mut reoffer = false;
        if changed {
            call.codec = codec.clone();
            if let (Some(s), Some(c)) = (call.src.as_mut(), codec.clone()) {
                if s.is_recording() || s.is_starting() {
                    // The SRSs are re-INVITEd with the call's new codec.
                    info!(codec = %c.encoding, "codec changed mid-call; re-offering it to the SRSs");
                    s.set_codecs(now, vec![c.clone()]);
                    call.src_codec = Some(c);
                    reoffer = true;
                }
            }
        }
        self.relay(id, RelayUpdate::Remote { side, media: info });
        if changed {
            self.relay(id, RelayUpdate::Codec { format: codec });
        }
        if reoffer {
            self.after_src(now, id);
        }
        Ok(Some(out))
    }

    pub(super) fn on_relayed_response(
        &mut self,
        now: Instant,
        id: CallId,
        from: Side,
        skey: &ServerKey,
        sreq: &Request,
        resp: Response,
    ) {
        let code = resp.status_code.code();
        if code == 100 {
            return;
        }
        let to = from.other();
        let method = sreq.method;
        if let Some(call) = self.calls.get_mut(&id) {
            if code >= 200 && matches!(method, Method::Invite | Method::Update) {
                call.leg_mut(to).offer_out = false;
                call.leg_mut(from).offer_in = false;
            }
        } else {
            return;
        }
        // A re-INVITE without SDP is a delayed offer: the 2xx is the offer, and our ACK waits
        // for the requester's answer (in its ACK).
        let delayed = method == Method::Invite && sreq.body.is_empty();
        if (200..300).contains(&code) && method == Method::Invite {
            let cseq = message::cseq(&resp.headers).map_or(1, |(n, _)| n);
            let Some(call) = self.calls.get_mut(&id) else {
                return;
            };
            let acked = call
                .last_ack
                .as_ref()
                .is_some_and(|(s, n, _)| *s == to && *n == cseq);
            if delayed && !acked {
                if call.ack_pending.is_none() {
                    call.ack_pending = Some((to, cseq));
                }
            } else {
                self.ack_leg(now, id, to, &resp);
            }
        }
        let body = if code < 300 {
            match self.relay_sdp(now, id, to, !delayed, &resp.headers, &resp.body) {
                Ok(b) => b,
                Err(e) => {
                    debug!(error = %e, "SDP in a relayed response not anchored");
                    None
                }
            }
        } else {
            None
        };
        let reason = message::status_reason(&resp.status_code);
        let mut out = make_response(sreq, code, Some(&reason), None);
        out.headers.extend(copied(&resp.headers));
        if let Some(call) = self.calls.get(&id) {
            if (101..300).contains(&code) && matches!(method, Method::Invite | Method::Update) {
                out.headers
                    .push(Header::Contact(rsip::headers::Contact::new(
                        self.contact(call.leg(from).peer.transport),
                    )));
            }
        }
        set_body(&mut out.headers, &mut out.body, body);
        self.respond(now, skey, out);
    }

    /// A leg's ACK for our 2xx. After a delayed offer it carries that leg's answer, which
    /// completes our ACK to the other leg; without an answer the call cannot have media and is
    /// ended.
    pub(super) fn on_ack(&mut self, now: Instant, ack: Request) {
        let Some(tag) = siprec_sip::message::to_tag(&ack.headers) else {
            return;
        };
        let call_id = message::call_id(&ack.headers).unwrap_or_default();
        let Some(&(id, from)) = self.dialogs.get(&(call_id, tag)) else {
            return;
        };
        let to = from.other();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some((side, cseq)) = call.ack_pending.filter(|(s, _)| *s == to) else {
            return;
        };
        call.ack_pending = None;
        let _span = self.span(id).entered();
        let answer = self.relay_sdp(now, id, from, true, &ack.headers, &ack.body);
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let Some(d) = call.leg(side).dialog.as_ref() else {
            return;
        };
        let mut out = d.make_ack(cseq);
        let peer = call.leg(side).peer;
        match answer {
            Ok(Some(sdp)) => {
                set_body(&mut out.headers, &mut out.body, Some(sdp));
                self.layer.send_request(now, peer, out);
            }
            Ok(None) | Err(_) => {
                warn!(
                    side = from.as_str(),
                    "delayed offer: the ACK has no usable answer; call ended"
                );
                self.layer.send_request(now, peer, out);
                self.hangup(now, id, None);
            }
        }
    }

    /// ACKs `side`'s 2xx `resp`: the ACK sent before for the same CSeq again (it may carry a
    /// delayed offer's answer), else a new one.
    pub(super) fn ack_leg(&mut self, now: Instant, id: CallId, side: Side, resp: &Response) {
        let cseq = message::cseq(&resp.headers).map_or(1, |(n, _)| n);
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let peer = call.leg(side).peer;
        let ack = match &call.last_ack {
            Some((s, n, ack)) if *s == side && *n == cseq => (**ack).clone(),
            _ => {
                let Some(d) = call.leg(side).dialog.as_ref() else {
                    return;
                };
                d.make_ack(cseq)
            }
        };
        self.send_ack(now, id, side, cseq, ack, peer);
    }

    pub(super) fn send_ack(
        &mut self,
        now: Instant,
        id: CallId,
        side: Side,
        cseq: u32,
        ack: Request,
        peer: Peer,
    ) {
        if let Some(call) = self.calls.get_mut(&id) {
            call.last_ack = Some((side, cseq, Box::new(ack.clone())));
        }
        self.layer.send_request(now, peer, ack);
    }

    pub(super) fn in_dialog(
        &mut self,
        now: Instant,
        id: CallId,
        side: Side,
        key: ServerKey,
        peer: Peer,
        req: Request,
    ) {
        let _span = self.span(id).entered();
        let Some(call) = self.calls.get_mut(&id) else {
            self.simple(now, &key, &req, 481, None, Vec::new());
            return;
        };
        if let Some(d) = call.leg_mut(side).dialog.as_mut() {
            if !d.accept_remote_cseq(&req) {
                // RFC 3261 §12.2.2: a lower CSeq gets 500.
                self.simple(now, &key, &req, 500, Some("CSeq out of order"), Vec::new());
                return;
            }
        }
        let ending = call.stage == Stage::Ending;
        match req.method {
            Method::Bye => {
                self.simple(now, &key, &req, 200, None, Vec::new());
                if !ending {
                    info!(side = side.as_str(), "call: BYE");
                    self.hangup(now, id, Some(side));
                }
            }
            _ if ending => self.simple(now, &key, &req, 481, None, Vec::new()),
            Method::Info => match command::classify(&req) {
                Info::Relay => self.relay_request(now, id, side, key, req),
                Info::Refused(why) => {
                    let reason =
                        message::extension_header(&req.headers, "X-Reason").unwrap_or_default();
                    info!(x_reason = %reason, code = 400, "{why}");
                    self.simple(now, &key, &req, 400, Some(&why), Vec::new());
                    self.events.push_back(Event::Command {
                        call: id,
                        reason,
                        code: 400,
                    });
                }
                Info::Command(c) => self.command(now, id, key, peer, req, c),
            },
            Method::Invite | Method::Update => {
                let call = &self.calls[&id];
                if call.stage != Stage::Answered {
                    self.simple(now, &key, &req, 491, None, Vec::new());
                } else if call.leg(side).offer_out {
                    // RFC 3261 §14.2: we have an offer of our own towards this leg pending.
                    self.simple(now, &key, &req, 491, None, Vec::new());
                } else if call.leg(side).offer_in {
                    // RFC 3261 §14.2: a second offer while the first is unanswered.
                    let retry = other("Retry-After", "1");
                    self.simple(
                        now,
                        &key,
                        &req,
                        500,
                        Some("an earlier offer is still pending"),
                        vec![retry],
                    );
                } else {
                    self.relay_request(now, id, side, key, req);
                }
            }
            _ => self.relay_request(now, id, side, key, req),
        }
    }

    pub(super) fn relay_request(
        &mut self,
        now: Instant,
        id: CallId,
        from: Side,
        key: ServerKey,
        req: Request,
    ) {
        let to = from.other();
        let body = match self.relay_sdp(now, id, from, false, &req.headers, &req.body) {
            Ok(Some(sdp)) => Some(("application/sdp".to_string(), sdp)),
            Ok(None) if req.body.is_empty() => None,
            Ok(None) => {
                let ct = message::content_type_value(&req.headers)
                    .unwrap_or_else(|| "application/octet-stream".into());
                Some((ct, req.body.clone()))
            }
            Err(e) => {
                let why = command::phrase(&format!("offer cannot be anchored: {e}"));
                self.simple(now, &key, &req, 488, Some(&why), Vec::new());
                return;
            }
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let peer = call.leg(to).peer;
        let Some(d) = call.leg_mut(to).dialog.as_mut() else {
            self.simple(
                now,
                &key,
                &req,
                481,
                Some("the other leg has no dialog"),
                Vec::new(),
            );
            return;
        };
        let mut out = d.new_request(req.method, body);
        out.headers.extend(copied(&req.headers));
        if matches!(req.method, Method::Invite | Method::Update) {
            call.leg_mut(to).offer_out = true;
            call.leg_mut(from).offer_in = true;
        }
        debug!(method = %req.method, from = from.as_str(), "relayed");
        let ckey = self.layer.send_request(now, peer, out);
        self.clients.insert(
            ckey,
            (
                id,
                Pending::Relay {
                    from,
                    key,
                    request: Box::new(req),
                },
            ),
        );
    }
}
