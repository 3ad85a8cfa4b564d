//! Transaction and dialog matching ([`Group::Transaction`](super::Group::Transaction)):
//! `ack` (the SRS takes our ACK), `cancel` (CANCEL before the answer), `unknown-dialog`
//! (481 to a request for no dialog).

use std::time::Duration;

use siprec_sip::message::{call_id, cseq, new_branch, new_call_id, new_tag};

use super::probe::{self, request_from_text, Probe};
use super::session::{InviteShape, RsSession};
use super::{host_port, Check, Ctx, Run};

/// `ack`: whether the SRS sent its 2xx to the main session's INVITE again well after our ACK
/// (run once a second or more has passed since the ACK).
pub(super) fn ack<F: FnMut(usize, usize, &str)>(
    run: &mut Run<'_, F>,
    probe: &Probe,
    s: &RsSession,
) {
    run.begin(Check::Ack);
    let invite_key = s
        .invite
        .as_ref()
        .and_then(|r| call_id(&r.headers).zip(cseq(&r.headers).map(|(n, _)| n)));
    match invite_key {
        Some((call, n)) => match probe.retransmitted_after_ack(&call, n) {
            0 => run.pass(Check::Ack, "no 2xx retransmission after the ACK"),
            k => run.fail(
                Check::Ack,
                "no copy of the 2xx once the ACK has arrived",
                format!(
                    "the 2xx was sent {k} more time(s) more than {} ms after our ACK",
                    probe::ACK_CROSSING.as_millis()
                ),
            ),
        },
        None => run.skip(Check::Ack, "no INVITE"),
    }
}

/// `cancel`: a SIPREC INVITE cancelled as soon as a provisional response allows, in a
/// session of its own.
pub(super) async fn cancel<F: FnMut(usize, usize, &str)>(
    run: &mut Run<'_, F>,
    probe: &mut Probe,
    ctx: &Ctx<'_>,
) {
    run.begin(Check::Cancel);
    let mut s = match ctx.session(probe).await {
        Ok(s) => s,
        Err(e) => return run.skip(Check::Cancel, e.to_string()),
    };
    let req = s.build_invite(InviteShape::default());
    let key = probe.start(req);
    let cancel_key = probe.cancel(&key);
    let ex = probe.finish(&key, ctx.cfg.timeout).await;
    if ex.is_success() {
        // ACK the 2xx at once (the CANCEL, if sent, changes nothing now).
        s.established(probe, ex.final_response.as_ref()).await;
    }
    // The CANCEL went out only if a provisional response came first (RFC 3261 §9.1).
    let cancel_sent = !ex.provisional.is_empty();
    let cancel_ex = match &cancel_key {
        Some(k) if cancel_sent => Some(
            probe
                .finish(k, ctx.cfg.timeout.min(Duration::from_secs(2)))
                .await,
        ),
        _ => None,
    };
    let cancel_seen = match &cancel_ex {
        Some(c) if c.final_response.is_some() => format!("CANCEL answered {}", c.seen()),
        Some(c) => format!("CANCEL not answered: {}", c.seen()),
        None => "CANCEL not sent (no provisional response came first, RFC 3261 §9.1)".into(),
    };
    match ex.code() {
        Some(487) => run.pass(Check::Cancel, format!("INVITE ended 487, {cancel_seen}")),
        Some(200..=299) => {
            run.pass(
                Check::Cancel,
                format!(
                    "the SRS answered {} before the CANCEL took effect; {cancel_seen}",
                    ex.seen()
                ),
            );
            s.hang_up(probe);
        }
        Some(_) => run.warn(
            Check::Cancel,
            "487 Request Terminated (or a 2xx that came first)",
            format!("{}; {cancel_seen}", ex.seen()),
        ),
        None => run.fail(
            Check::Cancel,
            "a final response to the cancelled INVITE",
            ex.seen(),
        ),
    }
}

/// `unknown-dialog`: a BYE with a fresh Call-ID and tags, for a dialog the SRS never had.
pub(super) async fn unknown_dialog<F: FnMut(usize, usize, &str)>(
    run: &mut Run<'_, F>,
    probe: &mut Probe,
    ctx: &Ctx<'_>,
) {
    run.begin(Check::UnknownDialog);
    let hp = host_port(probe.local);
    let text = format!(
        "BYE {uri} SIP/2.0\r\nVia: SIP/2.0/{t} {hp};branch={b};rport\r\nMax-Forwards: 70\r\n\
         From: <sip:check@{hp}>;tag={tag}\r\nTo: <{uri}>;tag={tag2}\r\nCall-ID: {cid}\r\nCSeq: 7 BYE\r\n\
         Content-Length: 0\r\n\r\n",
        uri = ctx.request_uri,
        t = probe.target.transport.as_str(),
        b = new_branch(),
        tag = new_tag(),
        tag2 = new_tag(),
        cid = new_call_id(None),
    );
    let Ok(req) = request_from_text(&text) else {
        return run.skip(Check::UnknownDialog, "could not build the request");
    };
    let ex = probe.request(req, ctx.cfg.timeout).await;
    match ex.code() {
        Some(481) => run.pass(Check::UnknownDialog, ex.seen()),
        Some(_) => run.fail(
            Check::UnknownDialog,
            "481 Call/Transaction Does Not Exist to a BYE for no dialog",
            ex.seen(),
        ),
        None => run.fail(
            Check::UnknownDialog,
            "481 Call/Transaction Does Not Exist",
            ex.seen(),
        ),
    }
}
