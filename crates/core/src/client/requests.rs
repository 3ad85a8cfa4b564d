//! Starting: resolution, targets, the INVITE with its SDP offer and metadata, and how a start
//! ends (the first SRS accepts, all fail, or the start times out).

use std::net::{IpAddr, SocketAddr};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rs_metadata::{
    CallMetadata, CallParty, DataMode, Extension, ParticipantStreamAssoc, Recording, EXT_NS,
};
use siprec_sdp::{Direction, OfferBuilder};
use siprec_sip::message::{self, new_branch, new_call_id, new_tag};
use siprec_sip::rsip::headers::UntypedHeader;
use siprec_sip::rsip::{self, Header, Method, Request, SipMessage};
use siprec_sip::transaction::{ClientKey, Peer, Transport};
use time::macros::format_description;
use time::{SignedDuration, UtcDateTime};
use tracing::{debug, warn};

use super::config::UDP_SIZE_LIMIT;
use super::contract::{
    Activity, Reply, RsId, SrsReport, LOG_ESTABLISHED, LOG_SRS_CANCELLED, LOG_SRS_FAILED,
    LOG_SRS_PENDING,
};
use super::events::Event;
use super::server_uri::Target;
use super::state::{Attempt, CallState, Phase, Purpose, Rs};
use super::SrcCore;

/// The RFC 7865 convention for ids: base64 of 16 random bytes.
pub(super) fn new_md_id() -> String {
    let bytes: [u8; 16] = rand::random();
    STANDARD.encode(bytes)
}

/// `xs:dateTime` in UTC with milliseconds, e.g. `2024-05-01T10:00:00.250Z` (the fraction
/// truncated, not rounded). A time before 1970 is written as the epoch, one after year 9999 as
/// the last millisecond of 9999.
pub fn xs_datetime(t: SystemTime) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    let since_epoch = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let since_epoch = SignedDuration::try_from(since_epoch).unwrap_or(SignedDuration::MAX);
    UtcDateTime::UNIX_EPOCH
        .saturating_add(since_epoch)
        .format(&format)
        .unwrap_or_default()
}

pub(super) fn bracket(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

pub(super) fn other(name: &str, value: &str) -> Header {
    Header::Other(name.to_string(), value.to_string())
}

/// Methods we answer in a recording session.
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO";

/// What we accept in bodies from an SRS.
pub const ACCEPT: &str = "application/sdp, application/rs-metadata+xml, \
application/rs-metadata-request, multipart/mixed";

impl SrcCore {
    pub(super) fn try_next_target(&mut self, now: Instant, id: RsId) {
        loop {
            let Some(r) = self.rs(id) else { return };
            let Some(target) = r.targets.get(r.next).copied() else {
                let status = r.status;
                let why = if r.history.is_empty() {
                    "no usable target".to_string()
                } else {
                    r.history.join("; ")
                };
                self.fail_rs(now, id, status, why);
                return;
            };
            let Some(local) = self.config.local_for(target.transport) else {
                if let Some(r) = self.rs_mut(id) {
                    r.next += 1;
                    r.history
                        .push(format!("{target}: no local {} transport", target.transport));
                }
                continue;
            };
            let dir = if self.paused {
                Direction::Inactive
            } else {
                Direction::SendOnly
            };
            let mut request = self.build_invite(id, target, local, dir);
            let mut target = target;
            if let Some(tcp) = self.size_upgrade(id, target, &request) {
                // Try TCP first; the UDP target stays next, for when TCP is refused.
                if let Some(r) = self.rs_mut(id) {
                    r.targets.insert(r.next, tcp);
                }
                target = tcp;
                let local = self.config.tcp.unwrap_or(local);
                request = self.build_invite(id, target, local, dir);
            }
            let more = self.rs(id).is_some_and(|r| r.next + 1 < r.targets.len());
            let peer: Peer = target.into();
            let key = self.layer.send_request(now, peer, request.clone());
            self.owners.insert(key.clone(), (id, Purpose::Invite));
            let switch_at = more.then(|| now + self.config.target_timeout);
            if let Some(r) = self.rs_mut(id) {
                r.next += 1;
                r.target = Some(target);
                r.peer = Some(peer);
                r.invite_key = Some(key.clone());
                r.phase = Phase::Inviting(Box::new(Attempt {
                    key,
                    request,
                    target,
                    provisional: false,
                    switch_at,
                    dir,
                }));
            }
            debug!(rs = %id, %target, "recording session INVITE sent");
            return;
        }
    }

    /// The TCP target to use instead of `target` for this INVITE (RFC 3261 §18.1.1), if any:
    /// UDP only by default (the URI named no transport), the request over
    /// [`UDP_SIZE_LIMIT`], a local TCP transport, and not already tried over TCP.
    pub(super) fn size_upgrade(
        &self,
        id: RsId,
        target: Target,
        request: &rsip::Request,
    ) -> Option<Target> {
        let r = self.rs(id)?;
        if !self.config.large_requests_over_tcp
            || target.transport != Transport::Udp
            || r.uri.required_transport().is_some()
            || self.config.tcp.is_none()
        {
            return None;
        }
        let tcp = Target {
            transport: Transport::Tcp,
            ..target
        };
        if r.next > 0 && r.targets.get(r.next - 1) == Some(&tcp) {
            return None; // TCP was just tried and failed: this is the UDP retry.
        }
        let len = message::print_message(&SipMessage::Request(request.clone())).len();
        (len > UDP_SIZE_LIMIT).then_some(tcp)
    }

    /// The SDP offer of `r` at its current `o=` version (the initial INVITE's).
    pub(super) fn offer_sdp(&self, r: &Rs, dir: Direction) -> String {
        self.offer_sdp_at(r, dir, r.sdp_version)
    }

    /// The SDP offer of `r` with `o=` version `version`: one labelled m-line per leg with
    /// our codecs and, when this RS offers SRTP, our `a=crypto` keys.
    pub(super) fn offer_sdp_at(&self, r: &Rs, dir: Direction, version: u64) -> String {
        let mut b = OfferBuilder::new(self.config.media_ip, r.sdp_id, version);
        b.username = "src".into();
        b.build(&self.streams(dir, r.srtp_keys.as_ref()))
    }

    pub(super) fn metadata_body(xml: &str) -> (String, Vec<u8>) {
        (
            "application/rs-metadata+xml".into(),
            xml.as_bytes().to_vec(),
        )
    }

    pub(super) fn multipart(sdp: &str, metadata: &str) -> (String, Vec<u8>) {
        crate::body::recording_session_body(sdp, metadata)
    }

    pub(super) fn contact_for(&self, local: SocketAddr, transport: Transport) -> String {
        let host = bracket(local.ip());
        let user = &self.config.user;
        match transport {
            Transport::Udp => format!("sip:{user}@{host}:{}", local.port()),
            Transport::Tcp => format!("sip:{user}@{host}:{};transport=tcp", local.port()),
            Transport::Tls => format!("sips:{user}@{host}:{}", local.port()),
        }
    }

    pub(super) fn build_invite(
        &mut self,
        id: RsId,
        target: Target,
        local: SocketAddr,
        dir: Direction,
    ) -> Request {
        let Some(r) = self.rs(id) else {
            return Request {
                method: Method::Invite,
                uri: rsip::Uri::default(),
                version: rsip::Version::V2,
                headers: Default::default(),
                body: Vec::new(),
            };
        };
        let sdp = self.offer_sdp(r, dir);
        let md = self
            .metadata
            .as_ref()
            .map(Recording::to_xml)
            .unwrap_or_default();
        let (ctype, body) = Self::multipart(&sdp, &md);
        let uri = r.uri.to_rsip();
        let to = format!("<{}>", r.uri);
        let host = bracket(local.ip());
        let contact = self.contact_for(local, target.transport);
        let scheme = if target.transport == Transport::Tls {
            "sips"
        } else {
            "sip"
        };
        let from = format!("<{scheme}:{}@{host}>;tag={}", self.config.user, new_tag());
        let mut headers: Vec<Header> = vec![
            Header::Via(rsip::headers::Via::new(format!(
                "SIP/2.0/{} {host}:{};branch={};rport",
                target.transport,
                local.port(),
                new_branch()
            ))),
            Header::MaxForwards(70u32.into()),
            Header::From(rsip::headers::From::new(from)),
            Header::To(rsip::headers::To::new(to)),
            Header::CallId(rsip::headers::CallId::new(new_call_id(Some(&host)))),
            Header::CSeq(rsip::headers::CSeq::new("1 INVITE")),
            Header::Contact(rsip::headers::Contact::new(format!("<{contact}>;+sip.src"))),
            // RFC 7866 §6.1.1: the SRC MUST include the siprec option tag in Require.
            other("Require", "siprec"),
            other("Supported", "timer"),
            other("Accept", ACCEPT),
            other("Allow", ALLOW),
            other("User-Agent", &self.config.user_agent),
        ];
        for (n, v) in &self.call.extra_headers {
            headers.push(other(n, v));
        }
        headers.push(other("MIME-Version", "1.0"));
        headers.push(Header::ContentType(rsip::headers::ContentType::new(ctype)));
        headers.push(Header::ContentLength((body.len() as u32).into()));
        Request {
            method: Method::Invite,
            uri,
            version: rsip::Version::V2,
            headers: headers.into(),
            body,
        }
    }

    pub(super) fn build_metadata(&self, now: Instant) -> Result<Recording, rs_metadata::Error> {
        let c = &self.call;
        let sip_ids = match c.session_id.as_deref().map(str::trim) {
            Some(s) if !s.is_empty() => vec![s.to_string()],
            _ if !c.call_id.trim().is_empty() => vec![c.call_id.trim().to_string()],
            _ => Vec::new(),
        };
        let md = CallMetadata {
            session_id: self.ids.session_id.clone(),
            sip_session_ids: sip_ids,
            start_time: xs_datetime(self.wall(now)),
            caller: CallParty {
                participant_id: self.ids.caller_pid.clone(),
                stream_id: self.ids.caller_sid.clone(),
                name: c.caller.name.clone(),
                aor: c.caller.aor.clone(),
            },
            callee: CallParty {
                participant_id: self.ids.callee_pid.clone(),
                stream_id: self.ids.callee_sid.clone(),
                name: c.callee.name.clone(),
                aor: c.callee.aor.clone(),
            },
            recording_id: self.recording_id.clone(),
            call_sid: c.call_sid.clone(),
            account_sid: c.account_sid.clone(),
            application_sid: c.application_sid.clone(),
        };
        let mut rec = md.build()?;
        rec.extensions.push(Extension::text_element(
            EXT_NS,
            "direction",
            c.direction.as_str(),
        ));
        Ok(rec)
    }

    /// RFC 7865 §6 partial document for pause/resume: the two participant-stream
    /// associations end (pause) or start again (resume) at `now`.
    pub(super) fn partial_metadata(&self, now: Instant, pause: bool) -> String {
        let at = Some(xs_datetime(self.wall(now)));
        let assoc = |pid: &str| ParticipantStreamAssoc {
            participant_id: pid.to_string(),
            send: Vec::new(),
            recv: Vec::new(),
            associate_time: if pause { None } else { at.clone() },
            disassociate_time: if pause { at.clone() } else { None },
        };
        Recording {
            data_mode: DataMode::Partial,
            participant_stream_assocs: vec![
                assoc(&self.ids.caller_pid),
                assoc(&self.ids.callee_pid),
            ],
            ..Recording::default()
        }
        .to_xml()
    }

    pub(super) fn reports_of(&self, ids: &[RsId]) -> Vec<SrsReport> {
        ids.iter()
            .filter_map(|id| self.rs(*id))
            .map(|r| self.report_now(r))
            .collect()
    }

    /// The state of an RS as a report.
    pub(super) fn report_now(&self, r: &Rs) -> SrsReport {
        let (ok, line, detail) = match &r.phase {
            Phase::Established => (true, LOG_ESTABLISHED, String::new()),
            Phase::Resolving => (false, LOG_SRS_PENDING, "resolving".to_string()),
            Phase::Inviting(a) => (
                false,
                LOG_SRS_PENDING,
                format!(
                    "INVITE to {} {}",
                    a.target,
                    if a.provisional {
                        "in progress"
                    } else {
                        "not answered yet"
                    }
                ),
            ),
            Phase::Closing { .. } => (false, LOG_SRS_CANCELLED, "closing".to_string()),
            Phase::Done => (false, LOG_SRS_FAILED, r.history.join("; ")),
        };
        SrsReport {
            rs: r.id,
            entry: r.entry.clone(),
            target: r.target,
            status: r.status,
            ok,
            line,
            detail,
        }
    }

    /// The RS could not be established.
    pub(super) fn fail_rs(&mut self, now: Instant, id: RsId, status: Option<u16>, why: String) {
        let Some(r) = self.rs_mut(id) else { return };
        if matches!(r.phase, Phase::Done) {
            return;
        }
        r.phase = Phase::Done;
        r.status = status.or(r.status);
        if !why.is_empty() && !r.history.contains(&why) {
            r.history.push(why.clone());
        }
        let in_start = r.start_op.is_some();
        let report = SrsReport {
            rs: id,
            entry: r.entry.clone(),
            target: r.target,
            status: r.status,
            ok: false,
            line: LOG_SRS_FAILED,
            detail: why,
        };
        warn!(rs = %id, entry = %report.entry, detail = %report.detail, "{LOG_SRS_FAILED}");
        self.resolve_waiters(id, |_| Some(report.clone()));
        if in_start {
            self.check_start(now);
        } else if self.state == CallState::Recording {
            self.events.push_back(Event::Srs(report));
        }
    }

    pub(super) fn check_start(&mut self, _now: Instant) {
        let Some(s) = &self.start else { return };
        let all_failed = s
            .rss
            .iter()
            .all(|id| self.rs(*id).is_none_or(|r| matches!(r.phase, Phase::Done)));
        if !all_failed {
            return;
        }
        let Some(s) = self.start.take() else { return };
        let reports = self.reports_of(&s.rss);
        let reason = reports
            .iter()
            .map(|r| format!("{}: {}", r.entry, r.detail))
            .collect::<Vec<_>>()
            .join("; ");
        for id in &s.rss {
            if let Some(r) = self.rs_mut(*id) {
                r.start_op = None;
            }
        }
        self.state = CallState::Idle;
        self.outcome(
            s.id,
            Activity::Start,
            Reply::StartFailed,
            Some(format!("every SRS failed: {reason}")),
            reports,
        );
    }

    pub(super) fn start_timed_out(&mut self, now: Instant) {
        let Some(s) = self.start.take() else { return };
        let timeout = self.config.start_timeout;
        let mut reports = Vec::new();
        for id in &s.rss {
            let Some(r) = self.rs(*id) else { continue };
            let mut rep = self.report_now(r);
            if !matches!(r.phase, Phase::Done) {
                rep.line = LOG_SRS_CANCELLED;
                rep.detail = format!(
                    "no answer within {} ms; {}",
                    timeout.as_millis(),
                    rep.detail
                );
            }
            reports.push(rep);
        }
        for id in &s.rss {
            if let Some(r) = self.rs_mut(*id) {
                r.start_op = None;
            }
            self.abandon(now, *id);
        }
        self.state = CallState::Idle;
        let pending: Vec<String> = reports
            .iter()
            .filter(|r| r.line == LOG_SRS_CANCELLED)
            .map(|r| r.entry.clone())
            .collect();
        self.outcome(
            s.id,
            Activity::Start,
            Reply::NoResponse,
            Some(format!(
                "no SRS accepted within {} ms (no answer from {})",
                timeout.as_millis(),
                pending.join(", ")
            )),
            reports,
        );
    }

    /// Gives up on an RS that is not established: a pending INVITE is cancelled and any late
    /// 2xx gets ACK + BYE.
    pub(super) fn abandon(&mut self, now: Instant, id: RsId) {
        let Some(r) = self.rs_mut(id) else { return };
        let phase = std::mem::replace(&mut r.phase, Phase::Done);
        if let Phase::Inviting(a) = phase {
            r.history.push(format!("{}: cancelled", a.target));
            self.owners.remove(&a.key);
            self.orphan(now, a.key, a.target.into(), a.request);
        } else if let Some(r) = self.rs_mut(id) {
            r.phase = phase;
            if matches!(r.phase, Phase::Resolving) {
                r.phase = Phase::Done;
                r.history.push("cancelled while resolving".into());
            }
        }
    }

    pub(super) fn orphan(&mut self, now: Instant, key: ClientKey, peer: Peer, request: Request) {
        self.owners.remove(&key);
        let _ = self.layer.cancel(now, &key);
        if self.orphans.len() >= 256 {
            // Bound: forget the oldest-looking entry (any); its late 2xx would go unanswered.
            if let Some(k) = self.orphans.keys().next().cloned() {
                self.orphans.remove(&k);
            }
        }
        self.orphans.insert(key, (peer, request));
    }
}
