//! Ending a call: BYE to the legs, the recording stopped, the call forgotten.

use super::*;

impl GatewayCore {
    /// Ends an established call: BYE to every leg but `from` (who sent one), the recording
    /// stopped (BYE to each SRS), then the call is forgotten.
    pub(super) fn hangup(&mut self, now: Instant, id: CallId, from: Option<Side>) {
        let _span = self.span(id).entered();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.stage == Stage::Ending {
            return;
        }
        call.stage = Stage::Ending;
        call.ring_deadline = None;
        call.end_deadline = Some(now + self.config.timers.t1x64() + Duration::from_secs(2));
        let mut byes = Vec::new();
        for side in [Side::A, Side::B] {
            if Some(side) == from {
                continue;
            }
            let peer = call.leg(side).peer;
            if let Some(d) = call.leg_mut(side).dialog.as_mut() {
                byes.push((peer, d.new_request(Method::Bye, None)));
            }
        }
        call.byes = byes.len();
        if let Some(s) = call.src.as_mut() {
            if s.is_recording() || s.is_starting() {
                s.stop(now);
            }
        }
        for (peer, bye) in byes {
            let key = self.layer.send_request(now, peer, bye);
            self.clients.insert(key, (id, Pending::Bye));
        }
        self.after_src(now, id);
        self.maybe_finish(id);
    }

    pub(super) fn bye_done(&mut self, id: CallId) {
        if let Some(call) = self.calls.get_mut(&id) {
            call.byes = call.byes.saturating_sub(1);
        }
        self.maybe_finish(id);
    }

    pub(super) fn maybe_finish(&mut self, id: CallId) {
        let done = self.calls.get(&id).is_some_and(|c| {
            c.stage == Stage::Ending && c.byes == 0 && c.src.as_ref().is_none_or(SrcCore::is_quiet)
        });
        if done {
            self.finish(id);
        }
    }

    /// Forgets the call: its dialogs, transactions, recording sessions and relay ports.
    pub(super) fn finish(&mut self, id: CallId) {
        let _span = self.span(id).entered();
        let Some(call) = self.calls.remove(&id) else {
            return;
        };
        for leg in &call.legs {
            self.dialogs.remove(&(leg.call_id.clone(), leg.tag.clone()));
        }
        self.a_invites.retain(|_, c| *c != id);
        self.clients.retain(|_, (c, _)| *c != id);
        self.rs_calls.retain(|_, c| *c != id);
        for p in call.ports {
            self.ports.release(p);
        }
        info!("call: ended");
        self.relay(id, RelayUpdate::Close);
        self.events.push_back(Event::CallEnded { call: id });
    }
}
