//! The SIPREC INVITE and its answer ([`Group::Invite`](super::Group::Invite)): `invite`,
//! `answer-sdp`, `answer-mlines`, `answer-direction`, `answer-codec`, `answer-ports`,
//! `contact`; and INVITEs the SRS may accept or should refuse: `no-require`, `garbage-body`.

use siprec_sdp::{Direction, SessionDescription};
use siprec_sip::message::contact_addr;
use siprec_sip::rsip::Response;

use super::probe::{self, Probe};
use super::session::{answer_of, InviteShape, RsSession};
use super::{Check, Ctx, Run};

/// `invite`: opens the session the main checks run in. `Err` says why the checks that need
/// it are skipped.
pub(super) async fn invite<F: FnMut(usize, usize, &str)>(
    run: &mut Run<'_, F>,
    probe: &mut Probe,
    ctx: &Ctx<'_>,
) -> Result<(RsSession, Response), &'static str> {
    run.begin(Check::Invite);
    let mut s = match ctx.session(probe).await {
        Ok(s) => s,
        Err(e) => {
            run.skip(Check::Invite, e.to_string());
            return Err("no session");
        }
    };
    let ex = s
        .invite(probe, InviteShape::default(), ctx.cfg.timeout)
        .await;
    let size = s
        .invite
        .as_ref()
        .map(|r| probe::request_bytes(r).len())
        .unwrap_or(0);
    let Some(resp) = ex.final_response.clone().filter(|_| ex.is_success()) else {
        run.fail(
            Check::Invite,
            format!(
                "2xx to a SIPREC INVITE ({size} bytes over {})",
                probe.target.transport.as_str()
            ),
            ex.seen(),
        );
        return Err("the SIPREC INVITE was not accepted");
    };
    run.pass(
        Check::Invite,
        format!(
            "{} ({size}-byte INVITE over {})",
            ex.seen(),
            probe.target.transport.as_str()
        ),
    );
    Ok((s, resp))
}

/// `answer-sdp`, then the checks on the answer against the session's offer (skipped without
/// an answer). Returns the answer.
pub(super) fn answer<F: FnMut(usize, usize, &str)>(
    run: &mut Run<'_, F>,
    s: &RsSession,
    resp: &Response,
) -> Option<SessionDescription> {
    run.begin(Check::AnswerSdp);
    let offer = siprec_sdp::parse(s.last_offer.as_bytes()).ok();
    let answer = match answer_of(resp) {
        Ok(a) => {
            run.pass(
                Check::AnswerSdp,
                format!("application/sdp, {} m-lines", a.media.len()),
            );
            Some(a)
        }
        Err(e) => {
            run.fail(
                Check::AnswerSdp,
                "an application/sdp answer in the 2xx (the INVITE carried the offer)",
                e.to_string(),
            );
            None
        }
    };
    match (&answer, &offer) {
        (Some(a), Some(o)) => judge_answer(
            run,
            o,
            a,
            &[Direction::RecvOnly, Direction::Inactive],
            "answer",
        ),
        _ => run.skip_rest(
            &[
                Check::AnswerMlines,
                Check::AnswerDirection,
                Check::AnswerCodec,
                Check::AnswerPorts,
            ],
            "no SDP answer",
        ),
    }
    answer
}

/// `contact`: the 2xx's Contact and its `+sip.srs` feature tag.
pub(super) fn contact<F: FnMut(usize, usize, &str)>(run: &mut Run<'_, F>, resp: &Response) {
    run.begin(Check::Contact);
    match contact_addr(&resp.headers).map(|c| c.to_string()) {
        None => run.fail(
            Check::Contact,
            "a Contact header in the 2xx to the INVITE",
            "no Contact",
        ),
        Some(c) if c.to_ascii_lowercase().contains("+sip.srs") => run.pass(Check::Contact, c),
        Some(c) => run.warn(Check::Contact, "the +sip.srs feature tag in Contact", c),
    }
}

/// The answer checks: m-lines, directions, codecs, ports.
fn judge_answer<F: FnMut(usize, usize, &str)>(
    run: &mut Run<'_, F>,
    offer: &SessionDescription,
    answer: &SessionDescription,
    allowed: &[Direction],
    what: &str,
) {
    run.begin(Check::AnswerMlines);
    let kinds =
        |sd: &SessionDescription| sd.media.iter().map(|m| m.media.clone()).collect::<Vec<_>>();
    // RFC 4574 labels, where the answer repeats them, must stay on their m-lines.
    let moved: Vec<String> = offer
        .media
        .iter()
        .zip(&answer.media)
        .filter_map(|(o, a)| match (&o.label, &a.label) {
            (Some(x), Some(y)) if x != y => Some(format!(
                "m-line {}: a=label:{y} (offered a=label:{x})",
                a.index + 1
            )),
            _ => None,
        })
        .collect();
    if kinds(offer) == kinds(answer) && !moved.is_empty() {
        run.fail(
            Check::AnswerMlines,
            format!("the offer's m-lines in its order in the {what} (labels in place)"),
            moved.join("; "),
        );
    } else if kinds(offer) == kinds(answer) {
        run.pass(
            Check::AnswerMlines,
            format!("{} m-lines, same order as the offer", answer.media.len()),
        );
    } else {
        run.fail(
            Check::AnswerMlines,
            format!(
                "{} m-lines ({}) in the {what}",
                offer.media.len(),
                kinds(offer).join(", ")
            ),
            format!(
                "{} m-lines ({})",
                answer.media.len(),
                kinds(answer).join(", ")
            ),
        );
    }

    run.begin(Check::AnswerDirection);
    let bad: Vec<String> = answer
        .media
        .iter()
        .filter(|m| m.port != 0 && !allowed.contains(&m.direction))
        .map(|m| format!("m-line {}: a={}", m.index + 1, m.direction.as_str()))
        .collect();
    if bad.is_empty() {
        let dirs: Vec<&str> = answer.media.iter().map(|m| m.direction.as_str()).collect();
        run.pass(Check::AnswerDirection, dirs.join(", "));
    } else {
        let want: Vec<&str> = allowed.iter().map(|d| d.as_str()).collect();
        run.fail(
            Check::AnswerDirection,
            format!("a={} on every accepted stream", want.join(" or a=")),
            bad.join("; "),
        );
    }

    run.begin(Check::AnswerCodec);
    let mut bad = Vec::new();
    let mut chosen = Vec::new();
    for m in answer.media.iter().filter(|m| m.port != 0) {
        let offered = offer.media.get(m.index);
        let first_audio = m
            .formats
            .iter()
            .find(|f| !f.is_telephone_event() && !f.is_comfort_noise());
        match (first_audio, offered) {
            (Some(f), Some(o)) if o.formats.iter().any(|of| of.payload_type == f.payload_type) => {
                chosen.push(format!("{} {}", f.payload_type, f.encoding));
            }
            (Some(f), _) => bad.push(format!(
                "m-line {}: payload type {} {} not offered",
                m.index + 1,
                f.payload_type,
                f.encoding
            )),
            (None, _) => bad.push(format!("m-line {}: no audio codec", m.index + 1)),
        }
    }
    if bad.is_empty() {
        run.pass(Check::AnswerCodec, chosen.join(", "));
    } else {
        run.fail(
            Check::AnswerCodec,
            "a payload type from the offer (PCMU 0, PCMA 8)",
            bad.join("; "),
        );
    }

    run.begin(Check::AnswerPorts);
    let mut bad = Vec::new();
    let mut seen = Vec::new();
    for m in &answer.media {
        if m.port == 0 {
            bad.push(format!("m-line {}: port 0 (stream declined)", m.index + 1));
            continue;
        }
        match m.remote_rtp_addr() {
            Some(a) if a.port() >= 1024 => seen.push(a.to_string()),
            Some(a) => bad.push(format!(
                "m-line {}: privileged port {}",
                m.index + 1,
                a.port()
            )),
            None if m.direction == Direction::Inactive => {
                seen.push(format!("m-line {} inactive", m.index + 1))
            }
            None => bad.push(format!("m-line {}: no usable c= address", m.index + 1)),
        }
    }
    if bad.is_empty() {
        run.pass(Check::AnswerPorts, seen.join(", "));
    } else {
        run.fail(
            Check::AnswerPorts,
            "a connection address and a non-zero port per recorded stream",
            bad.join("; "),
        );
    }
}

/// `no-require`: a SIPREC INVITE without `Require: siprec`, in a session of its own.
pub(super) async fn no_require<F: FnMut(usize, usize, &str)>(
    run: &mut Run<'_, F>,
    probe: &mut Probe,
    ctx: &Ctx<'_>,
) {
    run.begin(Check::NoRequire);
    let mut s = match ctx.session(probe).await {
        Ok(s) => s,
        Err(e) => return run.skip(Check::NoRequire, e.to_string()),
    };
    let shape = InviteShape {
        require_siprec: false,
        ..InviteShape::default()
    };
    let ex = s.invite(probe, shape, ctx.cfg.timeout).await;
    match ex.code() {
        Some(200..=299) => {
            run.pass(
                Check::NoRequire,
                format!(
                    "accepted ({}): the SRS records without Require: siprec",
                    ex.seen()
                ),
            );
            s.hang_up(probe);
        }
        Some(420) => run.pass(Check::NoRequire, format!("refused: {}", ex.seen())),
        Some(_) => run.warn(
            Check::NoRequire,
            "2xx (accepted) or 420 (Unsupported: siprec)",
            ex.seen(),
        ),
        None => run.fail(Check::NoRequire, "a final response (2xx or 420)", ex.seen()),
    }
}

/// `garbage-body`: an INVITE whose multipart body is garbage, in a session of its own.
pub(super) async fn garbage<F: FnMut(usize, usize, &str)>(
    run: &mut Run<'_, F>,
    probe: &mut Probe,
    ctx: &Ctx<'_>,
) {
    run.begin(Check::GarbageBody);
    let mut s = match ctx.session(probe).await {
        Ok(s) => s,
        Err(e) => return run.skip(Check::GarbageBody, e.to_string()),
    };
    let shape = InviteShape {
        garbage_body: true,
        ..InviteShape::default()
    };
    let ex = s.invite(probe, shape, ctx.cfg.timeout).await;
    let expected = "a 4xx naming the problem (400, 415 with Accept, or 488)";
    match ex.code() {
        Some(400..=499) => run.pass(Check::GarbageBody, ex.seen()),
        Some(200..=299) => {
            run.fail(
                Check::GarbageBody,
                expected,
                format!(
                    "{}: a body that is no multipart document was accepted",
                    ex.seen()
                ),
            );
            s.hang_up(probe);
        }
        Some(_) => run.warn(Check::GarbageBody, expected, ex.seen()),
        None => run.fail(
            Check::GarbageBody,
            expected,
            format!("silence: {}", ex.seen()),
        ),
    }
}
