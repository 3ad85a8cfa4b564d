//! The Call Recording Node's INFO commands and the call's SRC: answering the commands, making
//! the SRC, and moving its output (transmits, relay changes, replies) out.

use super::*;

impl GatewayCore {
    pub(super) fn command(
        &mut self,
        now: Instant,
        id: CallId,
        key: ServerKey,
        peer: Peer,
        req: Request,
        c: command::Command,
    ) {
        if !siprec_sip::source::allowed(&self.config.control_from, peer.addr.ip()) {
            let why = command::phrase(&format!(
                "{} may not control recording (not in --control-from)",
                peer.addr.ip()
            ));
            info!(x_reason = %c.reason, code = 403, "{why}");
            self.simple(now, &key, &req, 403, Some(&why), Vec::new());
            self.events.push_back(Event::Command {
                call: id,
                reason: c.reason,
                code: 403,
            });
            return;
        }
        let refusal = {
            let call = &self.calls[&id];
            let srtp = call.media.iter().flatten().any(|m| m.srtp);
            if call.stage != Stage::Answered {
                Some((400, "the call is not answered yet".to_string()))
            } else if c.activity == src::Activity::Start && srtp && !self.is_recording(id) {
                Some((503, command::reply_phrase(src::Reply::StartFailed, Some(
                    "the call's media is SRTP end to end (RTP/SAVP): the gateway relays it but cannot record it",
                ))))
            } else if c.activity == src::Activity::Start
                && call.codec.is_none()
                && !self.is_recording(id)
            {
                Some((
                    503,
                    command::reply_phrase(
                        src::Reply::StartFailed,
                        Some("the call has no audio codec yet"),
                    ),
                ))
            } else {
                None
            }
        };
        if let Some((code, why)) = refusal {
            info!(x_reason = %c.reason, code, "{why}");
            self.simple(now, &key, &req, code, Some(&why), Vec::new());
            self.events.push_back(Event::Command {
                call: id,
                reason: c.reason,
                code,
            });
            return;
        }
        if let Err(why) = self.ensure_src(now, id, c.call_sid.as_deref()) {
            let why = command::phrase(&why.to_string());
            self.simple(now, &key, &req, 500, Some(&why), Vec::new());
            self.events.push_back(Event::Command {
                call: id,
                reason: c.reason,
                code: 500,
            });
            return;
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(s) = call.src.as_mut() else { return };
        let op = s.activity(now, c.activity, &c.server, c.recording_id.as_deref());
        call.commands.insert(
            op,
            Command {
                key,
                request: Box::new(req),
                reason: c.reason,
            },
        );
        self.after_src(now, id);
    }

    /// The call's SRC, made on first use (with the call's codec), or made anew when the codec
    /// changed while no recording was running.
    pub(super) fn ensure_src(
        &mut self,
        now: Instant,
        id: CallId,
        call_sid: Option<&str>,
    ) -> Result<(), SrcSetupError> {
        let wall = self.wall(now);
        let cfg = &self.config;
        let Some(call) = self.calls.get_mut(&id) else {
            return Err(SrcSetupError::NoSuchCall);
        };
        let codec = call.codec.clone();
        let stale = call.src.as_ref().is_some_and(|s| {
            s.is_quiet() && !s.is_recording() && !s.is_starting() && codec != call.src_codec
        });
        if call.src.is_some() && !stale {
            return Ok(());
        }
        let find = |t: Transport| cfg.local.iter().find(|(x, _)| *x == t).map(|(_, a)| *a);
        let mut sc = SrcConfig::new(cfg.media_ip, None, None, call.ports);
        sc.timers = cfg.timers;
        sc.udp = find(Transport::Udp);
        sc.tcp = find(Transport::Tcp);
        sc.tls = find(Transport::Tls).or(sc.tcp);
        sc.start_timeout = cfg.recording.start_timeout;
        sc.target_timeout = cfg.recording.target_timeout;
        sc.request_timeout = cfg.recording.request_timeout;
        sc.srtp = cfg.recording.srtp;
        sc.user_agent = cfg.user_agent.clone();
        let codec_offered = codec.clone();
        if let Some(c) = codec {
            sc.codecs = vec![c];
        }
        let mut ctx = call.context.clone();
        if let Some(sid) = call_sid {
            ctx.call_sid = Some(sid.to_string());
        }
        let core = SrcCore::new(sc, ctx, now, wall).map_err(SrcSetupError::Core)?;
        call.src = Some(core);
        call.src_codec = codec_offered;
        Ok(())
    }

    /// Moves the SRC's output of `id` out: transmits (learning each recording session's
    /// Call-ID), relay changes, resolutions, and the answers to waiting INFOs.
    pub(super) fn after_src(&mut self, now: Instant, id: CallId) {
        let _span = self.span(id).entered();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(s) = call.src.as_mut() else { return };
        while let Some(t) = s.poll_transmit() {
            if let Some(cid) = transmit_call_id(&t.payload) {
                self.rs_calls.entry(cid).or_insert(id);
            }
            self.transmits.push_back(t);
        }
        let mut answers = Vec::new();
        while let Some(ev) = s.poll_event() {
            match ev {
                src::Event::Resolve { rs, uri } => {
                    self.events.push_back(Event::Resolve { call: id, rs, uri })
                }
                src::Event::Media { rs, plan } => self.events.push_back(Event::Relay {
                    call: id,
                    update: RelayUpdate::Fork { rs, plan },
                }),
                src::Event::MediaStop { rs } => self.events.push_back(Event::Relay {
                    call: id,
                    update: RelayUpdate::ForkStop { rs },
                }),
                src::Event::Srs(report) => {
                    info!(srs = %report.entry, status = ?report.status, detail = %report.detail, "{}", report.line);
                }
                src::Event::Outcome(o) => answers.push(o),
                src::Event::RecordingEnded { reason } => {
                    warn!(%reason, "recording ended");
                }
            }
        }
        for o in answers {
            let Some(call) = self.calls.get_mut(&id) else {
                return;
            };
            // The SRC core has logged the contract's line (inside this call's span).
            let (code, phrase) = command::reply_of(&o);
            if let Some(cmd) = call.commands.remove(&o.op) {
                let resp = make_response(&cmd.request, code, Some(&phrase), None);
                self.respond(now, &cmd.key, resp);
                self.events.push_back(Event::Command {
                    call: id,
                    reason: cmd.reason,
                    code,
                });
            }
        }
        if self
            .calls
            .get(&id)
            .is_some_and(|c| c.stage == Stage::Ending)
        {
            self.maybe_finish(id);
        }
    }
}

/// Why a call's SRC could not be made (answered `500` to the node's INFO, with this text).
#[derive(Debug, thiserror::Error)]
pub(super) enum SrcSetupError {
    /// Our state: the call ended while the command was on its way.
    #[error("no such call")]
    NoSuchCall,
    /// Our configuration or the call's context (from the node) is unusable for an SRC.
    #[error("{0}")]
    Core(siprec_core::client::Error),
}
