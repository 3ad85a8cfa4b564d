//! A new call: the A leg's INVITE forwarded as the B leg's, B's answers relayed to A, CANCEL,
//! and the B leg that never answers.

use super::*;

impl GatewayCore {
    pub(super) fn new_call(&mut self, now: Instant, key: ServerKey, peer: Peer, req: Request) {
        if self.calls.len() >= self.config.max_calls {
            let reason = format!("too many calls ({} at most)", self.config.max_calls);
            self.simple(
                now,
                &key,
                &req,
                503,
                Some(&reason),
                vec![other("Retry-After", "5")],
            );
            return;
        }
        let max_forwards = message::max_forwards(&req.headers).unwrap_or(70);
        if max_forwards == 0 {
            self.simple(now, &key, &req, 483, None, Vec::new());
            return;
        }
        if message::require(&req.headers).iter().any(|t| t != "timer") {
            let unsupported = message::require(&req.headers)
                .into_iter()
                .filter(|t| t != "timer")
                .collect::<Vec<_>>()
                .join(", ");
            self.simple(
                now,
                &key,
                &req,
                420,
                None,
                vec![other("Unsupported", &unsupported)],
            );
            return;
        }
        // An INVITE without a body is a delayed offer (RFC 3261 §13.2.1): B's 2xx will carry
        // the offer and A's ACK the answer.
        let offer = if req.body.is_empty() {
            None
        } else if let Some(o) = sdp_body(&req.headers, &req.body) {
            Some(o)
        } else {
            let extra = vec![other("Accept", "application/sdp")];
            self.simple(
                now,
                &key,
                &req,
                415,
                Some("the INVITE body is not application/sdp"),
                extra,
            );
            return;
        };
        let a_media = match offer.map(media_info).transpose() {
            Ok(m) => m,
            Err(e) => {
                let why = command::phrase(&format!("offer cannot be anchored: {e}"));
                self.simple(now, &key, &req, 488, Some(&why), Vec::new());
                return;
            }
        };
        let context = match call_context(&req) {
            Ok(c) => c,
            Err(why) => {
                let why = why.to_string();
                self.simple(now, &key, &req, 400, Some(&why), Vec::new());
                return;
            }
        };
        let pair = self
            .ports
            .allocate()
            .and_then(|pa| match self.ports.allocate() {
                Some(pb) => Some((pa, pb)),
                None => {
                    self.ports.release(pa);
                    None
                }
            });
        let Some((pa, pb)) = pair else {
            let retry = vec![other("Retry-After", "5")];
            self.simple(now, &key, &req, 503, Some("no relay port free"), retry);
            return;
        };
        let b_offer = match offer
            .map(|o| anchor(o, self.config.media_ip, pb))
            .transpose()
        {
            Ok(b) => b,
            Err(e) => {
                self.ports.release(pa);
                self.ports.release(pb);
                let why = command::phrase(&format!("offer cannot be anchored: {e}"));
                self.simple(now, &key, &req, 488, Some(&why), Vec::new());
                return;
            }
        };
        let id = CallId(self.next_call);
        self.next_call += 1;
        let b_peer = self.config.forward.peer;
        let b_tag = new_tag();
        let b_invite = self.b_invite(&req, &b_tag, max_forwards - 1, b_offer);
        let b_call_id = message::call_id(&b_invite.headers).unwrap_or_default();
        let span = tracing::info_span!("call", call = %id, a_call_id = %context.call_id);
        let _entered = span.clone().entered();
        info!(from = %context.caller.aor, to = %context.callee.aor,
              b_call_id = %b_call_id, "call: INVITE forwarded to the B leg");
        let b_key = self.layer.send_request(now, b_peer, b_invite.clone());
        let a_call_id = context.call_id.clone();
        let call = Call {
            stage: Stage::Calling,
            legs: [
                Leg {
                    peer,
                    call_id: a_call_id,
                    tag: new_tag(),
                    dialog: None,
                    offer_out: false,
                    offer_in: false,
                },
                Leg {
                    peer: b_peer,
                    call_id: b_call_id,
                    tag: b_tag,
                    dialog: None,
                    offer_out: false,
                    offer_in: false,
                },
            ],
            a_invite: req,
            a_key: key.clone(),
            b_invite,
            b_key: b_key.clone(),
            ports: [pa, pb],
            media: [a_media.clone(), None],
            codec: None,
            ring_deadline: Some(now + self.config.answer_timeout),
            end_deadline: None,
            byes: 0,
            context,
            src: None,
            span: span.clone(),
            src_codec: None,
            ack_pending: None,
            last_ack: None,
            commands: HashMap::new(),
        };
        self.calls.insert(id, call);
        self.a_invites.insert(key, id);
        self.clients.insert(b_key, (id, Pending::Initial));
        self.relay(id, RelayUpdate::Open { ports: [pa, pb] });
        if let Some(media) = a_media {
            self.relay(
                id,
                RelayUpdate::Remote {
                    side: Side::A,
                    media,
                },
            );
        }
    }

    pub(super) fn b_invite(
        &self,
        a: &Request,
        b_tag: &str,
        max_forwards: u32,
        sdp: Option<Vec<u8>>,
    ) -> Request {
        let fwd = &self.config.forward;
        let transport = fwd.peer.transport;
        let local = self.config.local_for(transport);
        let host = bracket(local.ip());
        let mut uri = fwd.uri.clone();
        uri.user = a.uri.auth.as_ref().map(|a| a.user.clone()).or(uri.user);
        let from = message::from_value(&a.headers).unwrap_or_default();
        let to = message::to_value(&a.headers).unwrap_or_default();
        let mut headers: Vec<Header> = vec![
            Header::Via(rsip::headers::Via::new(format!(
                "SIP/2.0/{transport} {host}:{};branch={};rport",
                local.port(),
                new_branch()
            ))),
            Header::MaxForwards(max_forwards.into()),
            Header::From(rsip::headers::From::new(format!(
                "{};tag={b_tag}",
                without_tag(&from)
            ))),
            Header::To(rsip::headers::To::new(without_tag(&to))),
            Header::CallId(rsip::headers::CallId::new(new_call_id(Some(&host)))),
            Header::CSeq(rsip::headers::CSeq::new("1 INVITE")),
            Header::Contact(rsip::headers::Contact::new(self.contact(transport))),
            other("Allow", ALLOW),
            other("User-Agent", &self.config.user_agent),
        ];
        let supported: Vec<String> = message::supported(&a.headers)
            .into_iter()
            .filter(|t| t != "100rel")
            .collect();
        if !supported.is_empty() {
            headers.push(other("Supported", &supported.join(", ")));
        }
        headers.extend(copied(&a.headers));
        let mut req = Request {
            method: Method::Invite,
            uri: uri.to_rsip(),
            version: rsip::Version::V2,
            headers: headers.into(),
            body: Vec::new(),
        };
        match sdp {
            Some(sdp) => set_body(&mut req.headers, &mut req.body, Some(sdp)),
            None => req.headers.push(Header::ContentLength(0u32.into())),
        }
        req
    }

    pub(super) fn on_response(&mut self, now: Instant, key: ClientKey, resp: Response) {
        let Some((id, pending)) = self.clients.get(&key).cloned() else {
            return;
        };
        let _span = self.span(id).entered();
        let code = resp.status_code.code();
        // A 2xx to an INVITE may come again (our ACK lost): keep the entry to ACK it again;
        // every other final response ends the transaction's business.
        let invite = match &pending {
            Pending::Initial => true,
            Pending::Relay { request, .. } => request.method == Method::Invite,
            Pending::Bye => false,
        };
        if code >= 300 || (code >= 200 && !invite) {
            self.clients.remove(&key);
        }
        match pending {
            Pending::Initial => self.on_b_answer(now, id, resp),
            Pending::Relay {
                from,
                key: skey,
                request,
            } => self.on_relayed_response(now, id, from, &skey, &request, resp),
            Pending::Bye => {
                if code >= 200 {
                    self.bye_done(id);
                }
            }
        }
    }

    pub(super) fn on_b_answer(&mut self, now: Instant, id: CallId, resp: Response) {
        let code = resp.status_code.code();
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let stage = call.stage;
        if code == 100 {
            return;
        }
        if (200..300).contains(&code) {
            match stage {
                Stage::Answered | Stage::Ending => {
                    // A retransmitted 2xx: our ACK was lost (or, with a delayed offer, still
                    // waits for A's answer).
                    if self.calls.get(&id).is_some_and(|c| c.ack_pending.is_none()) {
                        // The ACK sent before (with A's answer after a delayed offer).
                        self.ack_leg(now, id, Side::B, &resp);
                    }
                    return;
                }
                Stage::Cancelled => {
                    // CANCEL and 200 crossed (RFC 3261 §9.1): take the call and end it.
                    if self.b_dialog(now, id, &resp).is_ok() {
                        self.ack_leg(now, id, Side::B, &resp);
                        self.hangup(now, id, Some(Side::A));
                    } else {
                        self.finish(id);
                    }
                    return;
                }
                Stage::Calling | Stage::Early => {}
            }
            self.on_b_2xx(now, id, resp);
            return;
        }
        if code < 200 {
            if !matches!(stage, Stage::Calling | Stage::Early) {
                return;
            }
            let body = match self.relay_sdp(now, id, Side::B, true, &resp.headers, &resp.body) {
                Ok(b) => b,
                Err(e) => {
                    debug!(error = %e, "provisional SDP not anchored; relayed without it");
                    None
                }
            };
            let Some(call) = self.calls.get_mut(&id) else {
                return;
            };
            call.stage = Stage::Early;
            let a_tag = call.leg(Side::A).tag.clone();
            let reason = message::status_reason(&resp.status_code);
            let mut out = make_response(&call.a_invite, code, Some(&reason), Some(&a_tag));
            let a_key = call.a_key.clone();
            out.headers
                .push(Header::Contact(rsip::headers::Contact::new(contact_of(
                    &self.config,
                    call.leg(Side::A).peer.transport,
                ))));
            out.headers.extend(copied(&resp.headers));
            set_body(&mut out.headers, &mut out.body, body);
            self.respond(now, &a_key, out);
            return;
        }
        // 3xx-6xx: the same final answer on the A leg.
        match stage {
            Stage::Calling | Stage::Early => {
                let reason = message::status_reason(&resp.status_code);
                info!(code, %reason, "call: B leg refused; same answer to the A leg");
                let Some(call) = self.calls.get(&id) else {
                    return;
                };
                let mut out = make_response(
                    &call.a_invite,
                    code,
                    Some(&reason),
                    Some(&call.leg(Side::A).tag.clone()),
                );
                out.headers.extend(copied(&resp.headers));
                let a_key = call.a_key.clone();
                self.respond(now, &a_key, out);
                self.finish(id);
            }
            Stage::Cancelled => self.finish(id),
            Stage::Answered | Stage::Ending => {}
        }
    }

    pub(super) fn b_dialog(
        &mut self,
        _now: Instant,
        id: CallId,
        resp: &Response,
    ) -> Result<(), siprec_sip::Error> {
        let local = self.config.local_for(self.config.forward.peer.transport);
        let Some(call) = self.calls.get_mut(&id) else {
            return Err(siprec_sip::Error::Dialog("the call has ended".into()));
        };
        let mut d = Dialog::new_uac(&call.b_invite, resp)?;
        d.set_via(
            local.ip().to_string(),
            local.port(),
            call.leg(Side::B).peer.transport,
        );
        let leg = call.leg_mut(Side::B);
        self.dialogs
            .insert((leg.call_id.clone(), leg.tag.clone()), (id, Side::B));
        leg.dialog = Some(d);
        Ok(())
    }

    pub(super) fn on_b_2xx(&mut self, now: Instant, id: CallId, resp: Response) {
        if let Err(e) = self.b_dialog(now, id, &resp) {
            warn!(error = %e, "B leg's 200 cannot start a dialog; call refused");
            self.fail_call(now, id, 502, "the B leg's 200 OK cannot start a dialog");
            return;
        }
        // With a delayed offer B's 2xx is the offer and its ACK must carry A's answer: it
        // waits for A's ACK.
        let delayed = self
            .calls
            .get(&id)
            .is_some_and(|c| c.a_invite.body.is_empty());
        if delayed {
            let cseq = message::cseq(&resp.headers).map_or(1, |(n, _)| n);
            if let Some(c) = self.calls.get_mut(&id) {
                c.ack_pending = Some((Side::B, cseq));
            }
        } else {
            self.ack_leg(now, id, Side::B, &resp);
        }
        let body = match self.relay_sdp(now, id, Side::B, !delayed, &resp.headers, &resp.body) {
            Ok(b) => b,
            Err(e) => {
                warn!(error = %e, "B leg's answer cannot be anchored; call ended");
                let why = command::phrase(&format!("the B leg's answer cannot be anchored: {e}"));
                let Some(call) = self.calls.get(&id) else {
                    return;
                };
                let out = make_response(
                    &call.a_invite,
                    488,
                    Some(&why),
                    Some(&call.leg(Side::A).tag.clone()),
                );
                let a_key = call.a_key.clone();
                self.respond(now, &a_key, out);
                self.hangup(now, id, Some(Side::A));
                return;
            }
        };
        let local = self
            .config
            .local_for(self.calls[&id].leg(Side::A).peer.transport);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let code = resp.status_code.code();
        let reason = message::status_reason(&resp.status_code);
        let a_tag = call.leg(Side::A).tag.clone();
        let mut out = make_response(&call.a_invite, code, Some(&reason), Some(&a_tag));
        let transport = call.leg(Side::A).peer.transport;
        let contact = contact_of(&self.config, transport);
        out.headers
            .push(Header::Contact(rsip::headers::Contact::new(
                contact.clone(),
            )));
        out.headers.push(other("Allow", ALLOW));
        out.headers.extend(copied(&resp.headers));
        set_body(&mut out.headers, &mut out.body, body);
        let contact_uri = contact
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_string();
        match Dialog::new_uas(&call.a_invite, &a_tag, &contact_uri) {
            Ok(mut d) => {
                d.set_via(local.ip().to_string(), local.port(), transport);
                let leg = call.leg_mut(Side::A);
                leg.dialog = Some(d);
                self.dialogs
                    .insert((leg.call_id.clone(), leg.tag.clone()), (id, Side::A));
            }
            Err(e) => {
                debug!(error = %e, "no A-leg dialog; in-dialog requests from B cannot be relayed")
            }
        }
        call.stage = Stage::Answered;
        call.ring_deadline = None;
        let a_key = call.a_key.clone();
        info!("call: answered");
        self.respond(now, &a_key, out);
        if let Some(value) = self.config.record_all.clone() {
            let rid = {
                let call = &self.calls[&id];
                message::extension_header(&call.a_invite.headers, &self.config.record_all_id_header)
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty())
            };
            if self.ensure_src(now, id, None).is_ok() {
                if let Some(s) = self.calls.get_mut(&id).and_then(|c| c.src.as_mut()) {
                    let op = s.start(now, &value, rid.as_deref());
                    debug!(?op, "record-all: recording started");
                }
                self.after_src(now, id);
            }
        }
    }

    pub(super) fn on_client_timeout(&mut self, now: Instant, key: ClientKey) {
        let Some((id, pending)) = self.clients.remove(&key) else {
            return;
        };
        let _span = self.span(id).entered();
        match pending {
            Pending::Initial => {
                let stage = self.calls.get(&id).map(|c| c.stage);
                match stage {
                    Some(Stage::Calling) | Some(Stage::Early) => {
                        info!("call: B leg did not answer in time");
                        self.fail_call(now, id, 408, "the B leg did not answer");
                    }
                    Some(Stage::Cancelled) => self.finish(id),
                    _ => {}
                }
            }
            Pending::Relay { from, key, request } => {
                if let Some(call) = self.calls.get_mut(&id) {
                    if matches!(request.method, Method::Invite | Method::Update) {
                        call.leg_mut(from.other()).offer_out = false;
                        call.leg_mut(from).offer_in = false;
                    }
                }
                let why = format!("the {} leg did not answer", from.other().as_str());
                self.simple(now, &key, &request, 408, Some(&why), Vec::new());
            }
            Pending::Bye => self.bye_done(id),
        }
    }

    pub(super) fn on_cancel(&mut self, now: Instant, invite: &ServerKey) {
        let Some(&id) = self.a_invites.get(invite) else {
            return;
        };
        let _span = self.span(id).entered();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if !matches!(call.stage, Stage::Calling | Stage::Early) {
            return;
        }
        info!("call: cancelled by the A leg");
        call.stage = Stage::Cancelled;
        call.ring_deadline = None;
        call.end_deadline = Some(now + self.config.timers.t1x64());
        let b_key = call.b_key.clone();
        let out = make_response(
            &call.a_invite,
            487,
            None,
            Some(&call.leg(Side::A).tag.clone()),
        );
        self.layer.cancel(now, &b_key);
        self.respond(now, invite, out);
    }

    pub(super) fn no_answer(&mut self, now: Instant, id: CallId) {
        let _span = self.span(id).entered();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.ring_deadline = None;
        if !matches!(call.stage, Stage::Calling | Stage::Early) {
            return;
        }
        info!("call: B leg rang too long; cancelled");
        call.stage = Stage::Cancelled;
        call.end_deadline = Some(now + self.config.timers.t1x64());
        let b_key = call.b_key.clone();
        let out = make_response(
            &call.a_invite,
            480,
            Some("the B leg did not answer"),
            Some(&call.leg(Side::A).tag.clone()),
        );
        let a_key = call.a_key.clone();
        self.layer.cancel(now, &b_key);
        self.respond(now, &a_key, out);
    }

    /// Answers the A leg's INVITE with `code` and forgets the call (no dialog was set up).
    pub(super) fn fail_call(&mut self, now: Instant, id: CallId, code: u16, why: &str) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        if matches!(call.stage, Stage::Calling | Stage::Early) {
            let out = make_response(
                &call.a_invite,
                code,
                Some(why),
                Some(&call.leg(Side::A).tag.clone()),
            );
            let a_key = call.a_key.clone();
            self.respond(now, &a_key, out);
        }
        self.finish(id);
    }
}
