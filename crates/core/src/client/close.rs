//! Ending sessions: stop (BYE, CANCEL), an RS ended by the SRS or lost, and the activities
//! waiting on them.

use std::time::Instant;

use siprec_sip::rsip::Method;
use tracing::warn;

use super::contract::{
    Activity, Reply, RsId, SrsReport, LOG_SRS_CANCELLED, LOG_SRS_ENDED, LOG_SRS_REQUEST_FAILED,
    LOG_SRS_STOPPED,
};
use super::events::Event;
use super::state::{CallState, Phase, Purpose, Wait};
use super::SrcCore;

impl SrcCore {
    /// Starts closing an RS for a stop. Returns a report when it is already final.
    pub(super) fn close_rs(&mut self, now: Instant, id: RsId, why: &str) -> Option<SrsReport> {
        let deadline = now + self.config.request_timeout;
        let r = self.rs_mut(id)?;
        match &r.phase {
            Phase::Resolving => {
                r.phase = Phase::Done;
                r.history.push(format!("{why} before it was contacted"));
                Some(SrsReport {
                    rs: id,
                    entry: r.entry.clone(),
                    target: None,
                    status: None,
                    ok: true,
                    line: LOG_SRS_CANCELLED,
                    detail: format!("{why} before it was contacted"),
                })
            }
            Phase::Inviting(a) => {
                let (key, req, target) = (a.key.clone(), a.request.clone(), a.target);
                // RFC 3261 §9.1: CANCEL (sent once a provisional response came).
                let _ = self.layer.cancel(now, &key);
                self.orphans.insert(key.clone(), (target.into(), req));
                if let Some(r) = self.rs_mut(id) {
                    r.phase = Phase::Closing { key, deadline };
                }
                None
            }
            Phase::Established => {
                let peer = r.peer;
                let uri = r.target_uri.clone();
                let Some(dialog) = r.dialog.as_mut() else {
                    r.phase = Phase::Done;
                    return None;
                };
                let mut bye = dialog.new_request(Method::Bye, None);
                if let Some(u) = uri {
                    bye.uri = u;
                }
                r.in_flight = None;
                let peer = peer?;
                let key = self.layer.send_request(now, peer, bye);
                self.owners.insert(key.clone(), (id, Purpose::Bye));
                if let Some(r) = self.rs_mut(id) {
                    r.phase = Phase::Closing { key, deadline };
                    let entry = r.entry.clone();
                    let target = r.target;
                    let rep = SrsReport {
                        rs: id,
                        entry,
                        target,
                        status: None,
                        ok: false,
                        line: LOG_SRS_REQUEST_FAILED,
                        detail: format!("{why} before it answered"),
                    };
                    self.resolve_waiters(id, |w| {
                        matches!(w, Wait::Direction(_)).then(|| rep.clone())
                    });
                }
                self.events.push_back(Event::MediaStop { rs: id });
                None
            }
            Phase::Closing { .. } => None,
            Phase::Done => None,
        }
    }

    pub(super) fn finish_close(
        &mut self,
        now: Instant,
        id: RsId,
        status: Option<u16>,
        detail: String,
    ) {
        let Some(r) = self.rs_mut(id) else { return };
        if !matches!(r.phase, Phase::Closing { .. }) {
            return;
        }
        let was_bye = r.dialog.is_some();
        r.phase = Phase::Done;
        r.status = status.or(r.status);
        let ok = if was_bye {
            status.is_some_and(|s| (200..300).contains(&s))
        } else {
            true
        };
        let report = SrsReport {
            rs: id,
            entry: r.entry.clone(),
            target: r.target,
            status,
            ok,
            line: if was_bye {
                if ok {
                    LOG_SRS_STOPPED
                } else {
                    LOG_SRS_REQUEST_FAILED
                }
            } else {
                LOG_SRS_CANCELLED
            },
            detail,
        };
        self.resolve_waiters(id, |_| Some(report.clone()));
        self.check_ops(now);
    }

    /// The RS ended outside a stop: SRS BYE, a lost dialog, an expired session. With
    /// `send_bye` we end it ourselves.
    pub(super) fn end_rs(
        &mut self,
        now: Instant,
        id: RsId,
        status: Option<u16>,
        why: String,
        send_bye: bool,
    ) {
        let Some(r) = self.rs_mut(id) else { return };
        if !matches!(r.phase, Phase::Established) {
            return;
        }
        if send_bye {
            if let (Some(dialog), Some(peer)) = (r.dialog.as_mut(), r.peer) {
                let mut bye = dialog.new_request(Method::Bye, None);
                if let Some(u) = &r.target_uri {
                    bye.uri = u.clone();
                }
                self.layer.send_request(now, peer, bye);
            }
        }
        let Some(r) = self.rs_mut(id) else { return };
        r.phase = Phase::Done;
        r.in_flight = None;
        r.history.push(why.clone());
        let report = SrsReport {
            rs: id,
            entry: r.entry.clone(),
            target: r.target,
            status,
            ok: false,
            line: LOG_SRS_ENDED,
            detail: why,
        };
        warn!(rs = %id, entry = %report.entry, detail = %report.detail, "{LOG_SRS_ENDED}");
        self.events.push_back(Event::MediaStop { rs: id });
        self.resolve_waiters(id, |_| Some(report.clone()));
        self.events.push_back(Event::Srs(report));
        self.maybe_idle(now);
    }

    /// When the last established RS is gone while recording, the recording is over: pending
    /// INVITEs are cancelled and the state is idle again (a later start is not a duplicate).
    pub(super) fn maybe_idle(&mut self, now: Instant) {
        if self.state != CallState::Recording {
            return;
        }
        if self
            .rss
            .iter()
            .any(|r| matches!(r.phase, Phase::Established))
        {
            return;
        }
        let ids: Vec<RsId> = self.rss.iter().map(|r| r.id).collect();
        for id in ids {
            self.abandon(now, id);
        }
        self.state = CallState::Idle;
        self.paused = false;
        self.events.push_back(Event::RecordingEnded {
            reason: "every SRS ended its recording session".into(),
        });
    }

    pub(super) fn resolve_waiters(
        &mut self,
        id: RsId,
        mut f: impl FnMut(Wait) -> Option<SrsReport>,
    ) {
        let Some(r) = self.rs_mut(id) else { return };
        let waiting = std::mem::take(&mut r.waiting);
        let mut keep = Vec::new();
        for (op, w) in waiting {
            match f(w) {
                Some(rep) => {
                    if let Some(o) = self.ops.iter_mut().find(|o| o.id == op) {
                        for (rs, slot) in o.parts.iter_mut() {
                            if *rs == id && slot.is_none() {
                                *slot = Some(rep.clone());
                            }
                        }
                    }
                }
                None => keep.push((op, w)),
            }
        }
        if let Some(r) = self.rs_mut(id) {
            r.waiting = keep;
        }
    }

    pub(super) fn check_ops(&mut self, _now: Instant) {
        let mut i = 0;
        while i < self.ops.len() {
            let done = self
                .ops
                .get(i)
                .is_some_and(|o| o.parts.iter().all(|(_, r)| r.is_some()));
            if !done {
                i += 1;
                continue;
            }
            let o = self.ops.remove(i);
            let reports: Vec<SrsReport> = o.parts.into_iter().filter_map(|(_, r)| r).collect();
            for r in &reports {
                if let Some(rs) = self.rs_mut(r.rs) {
                    rs.waiting.retain(|(op, _)| *op != o.id);
                }
            }
            let any_ok = reports.iter().any(|r| r.ok);
            let reply = match o.activity {
                Activity::Stop => Reply::Stopped,
                Activity::Pause if any_ok || reports.is_empty() => Reply::Paused,
                Activity::Pause => Reply::PauseFailed,
                Activity::Resume if any_ok || reports.is_empty() => Reply::Resumed,
                Activity::Resume => Reply::ResumeFailed,
                Activity::Start => Reply::Started,
            };
            let reason = (!any_ok && !reports.is_empty()).then(|| {
                reports
                    .iter()
                    .map(|r| format!("{}: {}", r.entry, r.detail))
                    .collect::<Vec<_>>()
                    .join("; ")
            });
            self.outcome(o.id, o.activity, reply, reason, reports);
        }
        self.gc();
    }
}
