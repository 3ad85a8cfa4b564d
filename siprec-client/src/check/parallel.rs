//! Several recording sessions at once ([`Group::Parallel`](super::Group::Parallel)):
//! `parallel`.

use std::time::Duration;

use super::probe::Probe;
use super::session::InviteShape;
use super::{Check, Ctx, Run};

/// `parallel`: [`CheckConfig::sessions`](super::CheckConfig::sessions) SIPREC INVITEs sent
/// at once, all answered within one timeout, then hung up.
pub(super) async fn parallel<F: FnMut(usize, usize, &str)>(
    run: &mut Run<'_, F>,
    probe: &mut Probe,
    ctx: &Ctx<'_>,
) {
    run.begin(Check::Parallel);
    let n = ctx.cfg.sessions.max(1);
    let mut sessions = Vec::with_capacity(n);
    for _ in 0..n {
        match ctx.session(probe).await {
            Ok(s) => sessions.push(s),
            Err(e) => return run.skip(Check::Parallel, e.to_string()),
        }
    }
    let keys: Vec<_> = sessions
        .iter_mut()
        .map(|s| {
            let req = s.build_invite(InviteShape::default());
            probe.start(req)
        })
        .collect();
    let deadline = tokio::time::Instant::now() + ctx.cfg.timeout;
    let mut codes = Vec::with_capacity(n);
    for (s, key) in sessions.iter_mut().zip(keys.iter()) {
        // One deadline for the whole batch.
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let ex = probe.finish(key, left.max(Duration::from_millis(1))).await;
        if ex.is_success() {
            s.established(probe, ex.final_response.as_ref()).await;
        }
        codes.push(ex);
    }
    let ok = codes.iter().filter(|e| e.is_success()).count();
    for s in &mut sessions {
        s.hang_up(probe);
    }
    if ok == n {
        run.pass(Check::Parallel, format!("{ok}/{n} sessions accepted"));
    } else {
        let mut tally: std::collections::BTreeMap<String, usize> = Default::default();
        for e in codes.iter().filter(|e| !e.is_success()) {
            *tally.entry(e.seen()).or_default() += 1;
        }
        let others: Vec<String> = tally.iter().map(|(k, v)| format!("{v}× {k}")).collect();
        run.fail(
            Check::Parallel,
            format!("{n}/{n} sessions accepted"),
            format!("{ok}/{n} accepted; {}", others.join(", ")),
        );
    }
}
