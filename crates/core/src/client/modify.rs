//! Modifications (pause/resume/snapshot/refresh): a re-INVITE or UPDATE per RS until it has the
//! direction, metadata and session timer (RFC 4028) the call wants.

use std::time::{Duration, Instant};

use rand::Rng;
use rs_metadata::Recording;
use siprec_sdp::{Direction, OfferStream};
use siprec_sip::message::{self, Refresher};
use siprec_sip::rsip::{self, Method, Request, Response};
use siprec_sip::transaction::ClientKey;
use tracing::debug;

use super::contract::{RsId, SrsReport, LOG_SRS_PAUSED, LOG_SRS_REQUEST_FAILED, LOG_SRS_RESUMED};
use super::requests::other;
use super::responses::{reason_of, sdp_of};
use super::state::{InFlight, ModKind, Phase, Purpose, SessionTimer, Wait};
use super::SrcCore;

impl SrcCore {
    pub(super) fn reconcile_all(&mut self, now: Instant) {
        let ids: Vec<RsId> = self.rss.iter().map(|r| r.id).collect();
        for id in ids {
            self.reconcile(now, id);
        }
    }

    pub(super) fn reconcile(&mut self, now: Instant, id: RsId) {
        let Some(r) = self.rs(id) else { return };
        if !matches!(r.phase, Phase::Established)
            || r.in_flight.is_some()
            || r.backoff_until.is_some_and(|t| t > now)
            || r.srs_invite.is_some()
            || r.dialog.is_none()
        {
            return;
        }
        let kind = if r.want != r.have {
            ModKind::Direction(r.want)
        } else if r.need_snapshot {
            ModKind::Snapshot
        } else if r.need_reoffer {
            ModKind::Reoffer
        } else if r.need_refresh {
            ModKind::Refresh
        } else {
            return;
        };
        let allow_update = r.allow_update;
        let have = r.have;
        let (method, body) = match kind {
            ModKind::Direction(dir) => {
                let sdp = self.offer_sdp_at(r, dir, r.sdp_version + 1);
                let md = self.partial_metadata(now, dir == Direction::Inactive);
                (Method::Invite, Some(Self::multipart(&sdp, &md)))
            }
            ModKind::Snapshot => {
                let md = self
                    .metadata
                    .as_ref()
                    .map(Recording::to_xml)
                    .unwrap_or_default();
                if allow_update {
                    (Method::Update, Some(Self::metadata_body(&md)))
                } else {
                    let sdp = self.offer_sdp(r, have);
                    (Method::Invite, Some(Self::multipart(&sdp, &md)))
                }
            }
            ModKind::Reoffer => {
                let sdp = self.offer_sdp_at(r, have, r.sdp_version + 1);
                (
                    Method::Invite,
                    Some(("application/sdp".to_string(), sdp.into_bytes())),
                )
            }
            ModKind::Refresh => {
                if allow_update {
                    (Method::Update, None)
                } else {
                    let sdp = self.offer_sdp(r, have);
                    (
                        Method::Invite,
                        Some(("application/sdp".to_string(), sdp.into_bytes())),
                    )
                }
            }
        };
        let Some(peer) = r.peer else { return };
        let target_uri = r.target_uri.clone();
        let timer = r.timer;
        let Some(r) = self.rs_mut(id) else { return };
        if matches!(kind, ModKind::Direction(_) | ModKind::Reoffer) {
            r.sdp_version += 1;
        }
        let Some(dialog) = r.dialog.as_mut() else {
            return;
        };
        let mut req = dialog.new_request(method, body);
        let cseq = dialog.local_seq();
        if let Some(u) = target_uri {
            req.uri = u;
        }
        if body_is_multipart(&req) {
            req.headers.push(other("MIME-Version", "1.0"));
        }
        if let ModKind::Snapshot = kind {
            if method == Method::Update {
                req.headers
                    .push(other("Content-Disposition", "recording-session"));
            }
        }
        if let Some(t) = timer {
            // RFC 4028 §7.4: a refresh carries the interval and who refreshes.
            req.headers.push(other(
                "Session-Expires",
                &format!(
                    "{};refresher={}",
                    t.interval.as_secs(),
                    if t.we_refresh { "uac" } else { "uas" }
                ),
            ));
        }
        let key = self.layer.send_request(now, peer, req);
        self.owners.insert(key.clone(), (id, Purpose::Modify));
        if let Some(r) = self.rs_mut(id) {
            if kind == ModKind::Refresh {
                r.need_refresh = false;
            }
            if kind == ModKind::Snapshot {
                r.need_snapshot = false;
            }
            if kind == ModKind::Reoffer {
                r.need_reoffer = false;
            }
            r.in_flight = Some(InFlight {
                key,
                kind,
                method,
                cseq,
            });
        }
    }

    pub(super) fn streams(
        &self,
        dir: Direction,
        keys: Option<&[Vec<siprec_rtp::srtp::SdesKey>; 2]>,
    ) -> Vec<OfferStream> {
        [("1", 0usize), ("2", 1usize)]
            .iter()
            .map(|(label, i)| OfferStream {
                port: self.config.rtp_ports.get(*i).copied().unwrap_or(0),
                label: Some((*label).to_string()),
                direction: dir,
                payload_types: self.config.codecs.clone(),
                rtcp_mux: false,
                crypto: keys
                    .map(|k| k[*i].iter().map(|k| k.to_attribute()).collect())
                    .unwrap_or_default(),
            })
            .collect()
    }

    pub(super) fn on_modify_response(
        &mut self,
        now: Instant,
        id: RsId,
        key: ClientKey,
        resp: Response,
    ) {
        let code = resp.status_code.code();
        let Some(r) = self.rs_mut(id) else { return };
        let Some(inf) = r.in_flight.as_ref().filter(|f| f.key == key) else {
            // A retransmitted 2xx of an earlier re-INVITE, or the 2xx of a re-INVITE that a
            // stop overtook: it is ACKed all the same (RFC 3261 §13.2.2.4).
            if (200..300).contains(&code) && key.0.method == Method::Invite {
                let stored = r.last_reinvite_ack.as_ref().is_some_and(|(k, _)| *k == key);
                if !stored {
                    let cseq = message::cseq(&resp.headers).map_or(1, |(n, _)| n);
                    if let Some(d) = r.dialog.as_ref() {
                        let mut ack = d.make_ack(cseq);
                        if let Some(u) = &r.target_uri {
                            ack.uri = u.clone();
                        }
                        r.last_reinvite_ack = Some((key.clone(), ack));
                    }
                }
                self.resend_ack(now, &key);
            }
            return;
        };
        if code < 200 {
            return;
        }
        let (kind, method, cseq) = (inf.kind, inf.method, inf.cseq);
        r.in_flight = None;
        let peer = r.peer;
        let entry = r.entry.clone();
        let target = r.target;
        if (200..300).contains(&code) {
            if method == Method::Invite {
                if let (Some(d), Some(peer)) = (r.dialog.as_ref(), peer) {
                    let mut ack = d.make_ack(cseq);
                    if let Some(u) = &r.target_uri {
                        ack.uri = u.clone();
                    }
                    r.last_reinvite_ack = Some((key.clone(), ack.clone()));
                    self.layer.send_request(now, peer, ack);
                }
            }
            let Some(r) = self.rs_mut(id) else { return };
            if let Some(d) = r.dialog.as_mut() {
                let _ = d.refresh_target(&resp.headers);
            }
            if let Some(t) = session_timer(now, &resp.headers, true) {
                r.timer = Some(t);
            } else if let Some(t) = r.timer {
                // Same interval, restarted (RFC 4028 §7.4 / §10).
                r.timer = Some(SessionTimer {
                    at: now
                        + if t.we_refresh {
                            t.interval / 2
                        } else {
                            expiry_margin(t.interval)
                        },
                    ..t
                });
            }
            if kind == ModKind::Reoffer {
                if let Some(Ok(sdp)) = sdp_of(&resp) {
                    let legs = self.legs_from_answer(id, &sdp);
                    if let Some(r) = self.rs_mut(id) {
                        r.legs = legs;
                    }
                }
                self.emit_media(id);
            }
            if let ModKind::Direction(dir) = kind {
                let answer = sdp_of(&resp);
                if let Some(Ok(sdp)) = answer {
                    let legs = self.legs_from_answer(id, &sdp);
                    if let Some(r) = self.rs_mut(id) {
                        r.legs = legs;
                    }
                }
                if let Some(r) = self.rs_mut(id) {
                    r.have = dir;
                }
                let line = if dir == Direction::Inactive {
                    LOG_SRS_PAUSED
                } else {
                    LOG_SRS_RESUMED
                };
                let report = SrsReport {
                    rs: id,
                    entry,
                    target,
                    status: Some(code),
                    ok: true,
                    line,
                    detail: String::new(),
                };
                self.resolve_waiters(id, |w| (w == Wait::Direction(dir)).then(|| report.clone()));
                self.emit_media(id);
            }
            return;
        }
        match code {
            491 => {
                // RFC 3261 §14.1: we own the Call-ID, so wait 2.1–4 s (10 ms units), retry.
                let wait = Duration::from_millis(10 * rand::rng().random_range(210..=400));
                r.backoff_until = Some(now + wait);
                match kind {
                    ModKind::Snapshot => r.need_snapshot = true,
                    ModKind::Refresh => r.need_refresh = true,
                    ModKind::Reoffer => r.need_reoffer = true,
                    ModKind::Direction(_) => {}
                }
                debug!(rs = %id, ?wait, "491: re-INVITE glare, backing off");
            }
            481 | 408 => {
                // RFC 3261 §12.2.1.2: the dialog is gone.
                let why = format!("{} answered {code} {}", method, reason_of(&resp));
                self.end_rs(now, id, Some(code), why, false);
            }
            _ => {
                // The session is unchanged (RFC 3261 §14.1); give up this change.
                let why = format!("{} answered {code} {}", method, reason_of(&resp));
                if let ModKind::Direction(dir) = kind {
                    r.want = r.have;
                    let report = SrsReport {
                        rs: id,
                        entry,
                        target,
                        status: Some(code),
                        ok: false,
                        line: LOG_SRS_REQUEST_FAILED,
                        detail: why,
                    };
                    self.resolve_waiters(id, |w| {
                        (w == Wait::Direction(dir)).then(|| report.clone())
                    });
                }
            }
        }
    }
}

pub(super) fn body_is_multipart(req: &Request) -> bool {
    message::content_type(&req.headers).is_some_and(|c| c.is_multipart())
}

/// When the side that does not refresh gives up: RFC 4028 §10, `interval - min(32 s,
/// interval/3)`.
pub(super) fn expiry_margin(interval: Duration) -> Duration {
    interval.saturating_sub(Duration::from_secs(32).min(interval / 3))
}

/// RFC 4028 Session-Expires of a message. `we_are_uac`: the message is a response to our
/// request (refresher=uac means us) or a request from the peer (refresher=uac means the peer).
pub(super) fn session_timer(
    now: Instant,
    headers: &rsip::Headers,
    we_are_uac: bool,
) -> Option<SessionTimer> {
    let se = message::session_expires(headers)?;
    // RFC 4028 §4: at least 90 s is the default minimum; accept what the peer says but
    // never refresh more often than every 30 s.
    let secs = se.delta_seconds.clamp(60, 86_400);
    let interval = Duration::from_secs(secs);
    let we_refresh = match (se.refresher, we_are_uac) {
        (Some(Refresher::Uac), true) => true,
        (Some(Refresher::Uas), false) => true,
        (Some(_), _) => false,
        // RFC 4028 §7.4: a 2xx without refresher… the UAC refreshes by default.
        (None, uac) => uac,
    };
    Some(SessionTimer {
        interval,
        we_refresh,
        at: now
            + if we_refresh {
                interval / 2
            } else {
                expiry_margin(interval)
            },
    })
}
