//! Requests in the established recording session ([`Group::Dialog`](super::Group::Dialog)):
//! `pause`, `resume`, `session-refresh`, `metadata-update`, `partial-metadata`, `bye`.

use std::time::Duration;

use siprec_sdp::Direction;
use siprec_sip::rsip::Method;

use super::probe::{Exchange, Probe};
use super::session::{answer_of, RsSession};
use super::{Check, Run};

/// The in-dialog checks on `s`, in order, each waiting up to `wait` for its final response.
pub(super) async fn in_dialog<F: FnMut(usize, usize, &str)>(
    run: &mut Run<'_, F>,
    probe: &mut Probe,
    s: &mut RsSession,
    wait: Duration,
) {
    // Pause and resume (RFC 7866 §8.1.2): every stream inactive, then sendonly again.
    for (check, dir, want) in [
        (Check::Pause, Direction::Inactive, Direction::Inactive),
        (Check::Resume, Direction::SendOnly, Direction::RecvOnly),
    ] {
        run.begin(check);
        let sdp = s.offer(dir, true);
        let Some(ex) = s.reinvite(probe, sdp, wait).await else {
            run.skip(check, "no dialog");
            continue;
        };
        re_invite_verdict(run, check, &ex, &[want, Direction::Inactive], dir);
    }

    run.begin(Check::SessionRefresh);
    let sdp = s.offer(Direction::SendOnly, false);
    match s.reinvite(probe, sdp, wait).await {
        Some(ex) if ex.is_success() => run.pass(Check::SessionRefresh, ex.seen()),
        Some(ex) => run.fail(
            Check::SessionRefresh,
            "2xx to a re-INVITE repeating the last offer",
            ex.seen(),
        ),
        None => run.skip(Check::SessionRefresh, "no dialog"),
    }

    for (check, xml) in [
        (Check::MetadataUpdate, s.metadata(0)),
        (Check::PartialMetadata, s.partial_metadata()),
    ] {
        run.begin(check);
        let body = ("application/rs-metadata+xml".to_string(), xml.into_bytes());
        let Some(mut req) = s.in_dialog(Method::Update, Some(body)) else {
            run.skip(check, "no dialog");
            continue;
        };
        req.headers.push(siprec_sip::rsip::Header::Other(
            "Content-Disposition".into(),
            "recording-session".into(),
        ));
        let ex = probe.request(req, wait).await;
        if ex.is_success() {
            run.pass(check, ex.seen());
        } else {
            run.fail(check, "2xx to an UPDATE carrying only metadata", ex.seen());
        }
    }

    run.begin(Check::Bye);
    match s.bye(probe, wait).await {
        Some(ex) if ex.is_success() => run.pass(Check::Bye, ex.seen()),
        Some(ex) => run.fail(Check::Bye, "2xx to BYE", ex.seen()),
        None => run.skip(Check::Bye, "no dialog"),
    }
}

/// The verdict on a pause or resume re-INVITE that offered `offered`: a 2xx whose answer
/// has every accepted stream in `allowed` (WARN when a resume leaves everything inactive).
fn re_invite_verdict<F: FnMut(usize, usize, &str)>(
    run: &mut Run<'_, F>,
    check: Check,
    ex: &Exchange,
    allowed: &[Direction],
    offered: Direction,
) {
    let Some(resp) = ex.final_response.as_ref().filter(|_| ex.is_success()) else {
        run.fail(
            check,
            format!("2xx to a re-INVITE with a={}", offered.as_str()),
            ex.seen(),
        );
        return;
    };
    match answer_of(resp) {
        Ok(a) => {
            let bad: Vec<String> = a
                .media
                .iter()
                .filter(|m| m.port != 0 && !allowed.contains(&m.direction))
                .map(|m| format!("m-line {}: a={}", m.index + 1, m.direction.as_str()))
                .collect();
            let dirs: Vec<&str> = a.media.iter().map(|m| m.direction.as_str()).collect();
            let stays_inactive = offered == Direction::SendOnly
                && a.media
                    .iter()
                    .all(|m| m.port == 0 || m.direction == Direction::Inactive);
            if bad.is_empty() && stays_inactive {
                run.warn(
                    check,
                    "a=recvonly on the resumed streams (recording resumes)",
                    format!(
                        "{}, answer {}: nothing is recorded after the resume",
                        ex.seen(),
                        dirs.join(", ")
                    ),
                );
            } else if bad.is_empty() {
                run.pass(check, format!("{}, answer {}", ex.seen(), dirs.join(", ")));
            } else {
                let want: Vec<&str> = allowed.iter().map(|d| d.as_str()).collect();
                run.fail(
                    check,
                    format!(
                        "a={} in the answer to a={}",
                        want.join(" or a="),
                        offered.as_str()
                    ),
                    bad.join("; "),
                );
            }
        }
        Err(e) => run.fail(
            check,
            "an SDP answer in the 2xx to the re-INVITE",
            e.to_string(),
        ),
    }
}
