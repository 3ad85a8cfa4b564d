//! Activity start: parallel SRSs, timeouts, late answers, failures, duplicates.

use super::*;

#[test]
fn parallel_start_200_503_and_silence_is_a_success() {
    let mut net = Net::new(vec![
        FakeSrs::new(A, InviteMode::Delay(Duration::from_millis(100))),
        FakeSrs::new(B, InviteMode::Reject(503)),
        FakeSrs::new(C, InviteMode::Silent),
    ]);
    let start = net.now;
    let op = net.start(&list(&[A, B, C]), Some("rec-1"));
    // Answered when the 200 comes, without waiting for the silent one.
    let out = net.await_outcome(op);
    assert_eq!(net.now - start, Duration::from_millis(100));
    assert_eq!(out.reply, Reply::Started);
    assert_eq!(
        (out.reply.code(), out.reply.log_line()),
        (200, "startCallRecording request for a call")
    );
    assert_eq!(out.srs.len(), 3);
    assert!(out.srs[0].ok && out.srs[0].line == LOG_ESTABLISHED && out.srs[0].status == Some(200));
    assert_eq!(out.srs[0].entry, "sip:192.0.2.10:5060");
    assert!(
        !out.srs[1].ok && out.srs[1].status == Some(503),
        "{:?}",
        out.srs[1]
    );
    assert_eq!(out.srs[1].line, LOG_SRS_FAILED);
    assert!(out.srs[1].detail.contains("503"));
    assert_eq!(out.srs[2].line, LOG_SRS_PENDING);
    assert!(net.src.is_recording());
    // No separate news: the start's answer carries the per-SRS lines.
    assert!(net.srs_events().is_empty());
    // Media for A: both legs, PCMU, to the SRS's ports.
    let rs = out.srs[0].rs;
    let plan = net.plans(rs).last().cloned().unwrap();
    assert!(plan.sending);
    let leg = plan.legs[0].clone().unwrap();
    assert_eq!(leg.format, Format::pcmu());
    assert_eq!(leg.remote.ip(), "192.0.2.10".parse::<IpAddr>().unwrap());
    assert!(plan.legs[1].is_some());
    // C never answers: after Timer B its failure is reported on its own.
    net.run_for(Duration::from_secs(40));
    let late: Vec<_> = net
        .srs_events()
        .into_iter()
        .filter(|r| r.entry.contains(".12"))
        .collect();
    assert_eq!(late.len(), 1, "{late:?}");
    assert_eq!(late[0].line, LOG_SRS_FAILED);
    assert!(net.src.is_recording());
}

#[test]
fn start_timeout_is_the_exact_400_and_cancels_what_is_pending() {
    let mut a = FakeSrs::new(A, InviteMode::Trying);
    a.ignore_cancel = false;
    let mut net = Net::new(vec![a, FakeSrs::new(B, InviteMode::Silent)]);
    let start = net.now;
    let op = net.start(&list(&[A, B]), None);
    net.run_for(Duration::from_millis(1999));
    assert!(net.outcome(op).is_none());
    let out = net.await_outcome(op);
    assert_eq!(net.now - start, Duration::from_secs(2));
    assert_eq!(out.reply, Reply::NoResponse);
    assert_eq!(out.reply.code(), 400);
    assert_eq!(
        out.reply.log_line(),
        "No response from SipRec server, return error to feature server"
    );
    assert!(out
        .reason
        .as_deref()
        .unwrap()
        .contains("sip:192.0.2.10:5060"));
    assert!(
        out.srs.iter().all(|r| r.line == LOG_SRS_CANCELLED),
        "{:?}",
        out.srs
    );
    net.run_for(Duration::from_millis(100));
    // A sent 100 Trying, so it got a CANCEL and answered 487.
    assert_eq!(net.srs[0].methods(), ["INVITE", "CANCEL"]);
    assert!(!net.src.is_recording() && !net.src.is_starting());
    // Not a "duplicate" afterwards.
    let op = net.start(&list(&[A]), None);
    assert!(net.outcome(op).is_none(), "a new start is under way");
    assert!(net.src.is_starting());
}

#[test]
fn a_timed_out_start_never_leaves_a_late_srs_recording() {
    let mut a = FakeSrs::new(A, InviteMode::Delay(Duration::from_secs(3)));
    a.ignore_cancel = true;
    let mut net = Net::new(vec![a]);
    let op = net.start(&list(&[A]), None);
    let out = net.await_outcome(op);
    assert_eq!(out.reply, Reply::NoResponse);
    // The SRS answers 200 at 3 s anyway: ACK, then BYE at once.
    net.run_for(Duration::from_secs(2));
    assert_eq!(net.srs[0].methods(), ["INVITE", "CANCEL", "BYE"]);
    assert_eq!(net.srs[0].acks.len(), 1);
    assert!(!net.src.is_recording());
    assert!(!net.events.iter().any(|e| matches!(e, Event::Media { .. })));
}

#[test]
fn a_late_answer_joins_and_streams() {
    let mut net = Net::new(vec![
        FakeSrs::new(A, InviteMode::Accept),
        FakeSrs::new(B, InviteMode::Delay(Duration::from_millis(1500))),
    ]);
    let op = net.start(&list(&[A, B]), None);
    let out = net.outcome(op).unwrap();
    assert_eq!(out.reply, Reply::Started);
    assert_eq!(out.srs[1].line, LOG_SRS_PENDING);
    let b = out.srs[1].rs;
    assert!(net.plans(b).is_empty());
    net.run_for(Duration::from_secs(2));
    let joined: Vec<_> = net.srs_events().into_iter().filter(|r| r.rs == b).collect();
    assert_eq!(joined.len(), 1);
    assert_eq!(joined[0].line, LOG_ESTABLISHED);
    assert!(net.plans(b).last().unwrap().sending);
    assert_eq!(net.src.established().len(), 2);
}

#[test]
fn a_late_joiner_while_paused_is_paused_at_once() {
    let mut net = Net::new(vec![
        FakeSrs::new(A, InviteMode::Accept),
        FakeSrs::new(B, InviteMode::Delay(Duration::from_millis(1500))),
    ]);
    let op = net.start(&list(&[A, B]), None);
    let b = net.outcome(op).unwrap().srs[1].rs;
    let p = net.pause();
    assert_eq!(net.await_outcome(p).reply, Reply::Paused);
    net.run_for(Duration::from_secs(2));
    // B offered sendonly (the INVITE left before the pause), so it gets a re-INVITE.
    assert_eq!(net.srs[1].methods(), ["INVITE", "INVITE"]);
    assert!(body_text(&net.srs[1].received[1]).contains("a=inactive"));
    assert!(net.plans(b).iter().all(|p| !p.sending));
}

#[test]
fn every_srs_failing_is_503_with_the_reasons_and_leaves_nothing_behind() {
    let mut net = Net::new(vec![
        FakeSrs::new(A, InviteMode::Reject(486)),
        FakeSrs::new(B, InviteMode::Reject(420)),
    ]);
    let op = net.start(&list(&[A, B]), None);
    let out = net.outcome(op).unwrap();
    assert_eq!(out.reply, Reply::StartFailed);
    assert_eq!(
        (out.reply.code(), out.reply.log_line()),
        (503, "Error starting SipRec call recording")
    );
    let reason = out.reason.unwrap();
    assert!(
        reason.contains("sip:192.0.2.10:5060: ") && reason.contains("486 Busy Here"),
        "{reason}"
    );
    assert!(
        reason.contains("420") && reason.contains("does not support SIPREC"),
        "{reason}"
    );
    // A later start is a new start, not a duplicate (the reference implementation's bug).
    let op = net.start(&list(&[A]), None);
    assert_eq!(net.outcome(op).unwrap().reply, Reply::StartFailed);
    net.srs[0].mode = InviteMode::Accept;
    let op = net.start(&list(&[A]), None);
    assert_eq!(net.outcome(op).unwrap().reply, Reply::Started);
}

#[test]
fn invalid_and_missing_server_values() {
    let mut net = Net::new(vec![]);
    let op = net.start("", None);
    let out = net.outcome(op).unwrap();
    assert_eq!(out.reply, Reply::MissingServer);
    assert_eq!(
        (out.reply.code(), out.reply.log_line()),
        (
            400,
            "startCallRecording request is missing X-Srs-Url header"
        )
    );
    let op = net.start("sip:ok.example.com, https://srs.example.com/x", None);
    let out = net.outcome(op).unwrap();
    assert_eq!(out.reply, Reply::StartFailed);
    assert_eq!(out.reply.code(), 503);
    let reason = out.reason.unwrap();
    assert!(
        reason.contains("https://srs.example.com/x") && reason.contains("HTTP URL"),
        "{reason}"
    );
    assert!(!net.src.is_starting());
    assert!(!net
        .events
        .iter()
        .any(|e| matches!(e, Event::Resolve { .. })));
}

#[test]
fn duplicate_start_while_starting_and_while_recording() {
    let mut net = Net::new(vec![FakeSrs::new(
        A,
        InviteMode::Delay(Duration::from_millis(500)),
    )]);
    let first = net.start(&list(&[A]), None);
    let dup = net.start(&list(&[A]), None);
    let out = net.outcome(dup).unwrap();
    assert_eq!(out.reply, Reply::DuplicateStart);
    assert_eq!(
        (out.reply.code(), out.reply.log_line()),
        (
            400,
            "discarding duplicate startCallRecording request for a call"
        )
    );
    assert_eq!(net.await_outcome(first).reply, Reply::Started);
    let dup = net.start(&list(&[A]), None);
    assert_eq!(net.outcome(dup).unwrap().reply, Reply::DuplicateStart);
    // Only one INVITE reached the SRS.
    assert_eq!(net.srs[0].methods(), ["INVITE"]);
}

#[test]
fn unresolvable_name_fails_that_srs() {
    let mut net = Net::new(vec![FakeSrs::new(A, InviteMode::Accept)]);
    let op = net.start("sip:srs.invalid, sip:192.0.2.10:5060", None);
    let out = net.outcome(op).unwrap();
    assert_eq!(out.reply, Reply::Started);
    assert!(
        out.srs[0].detail.contains("cannot resolve srs.invalid"),
        "{:?}",
        out.srs[0]
    );
}
