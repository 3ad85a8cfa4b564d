//! Activity stop.

use super::*;

#[test]
fn stop_sends_bye_and_cancels_what_is_pending() {
    let mut net = Net::new(vec![
        FakeSrs::new(A, InviteMode::Accept),
        FakeSrs::new(B, InviteMode::Trying),
    ]);
    let op = net.start(&list(&[A, B]), None);
    let out = net.outcome(op).unwrap();
    let (a, b) = (out.srs[0].rs, out.srs[1].rs);
    let stop = net.stop();
    let out = net.await_outcome(stop);
    assert_eq!(out.reply, Reply::Stopped);
    assert_eq!(out.reply.code(), 200);
    let ra = out.srs.iter().find(|r| r.rs == a).unwrap();
    assert!(
        ra.ok && ra.status == Some(200) && ra.line == LOG_SRS_STOPPED,
        "{ra:?}"
    );
    let rb = out.srs.iter().find(|r| r.rs == b).unwrap();
    assert!(
        rb.ok && rb.status == Some(487) && rb.line == LOG_SRS_CANCELLED,
        "{rb:?}"
    );
    assert_eq!(net.srs[0].methods(), ["INVITE", "BYE"]);
    assert_eq!(net.srs[1].methods(), ["INVITE", "CANCEL"]);
    assert!(net.events.contains(&Event::MediaStop { rs: a }));
    assert!(net.src.is_quiet());
    // Stop again: not recording.
    let again = net.stop();
    let out = net.outcome(again).unwrap();
    assert_eq!(out.reply, Reply::NotRecording);
    assert_eq!(
        (out.reply.code(), out.reply.log_line()),
        (
            400,
            "discarding stopCallRecording request because we are not recording"
        )
    );
}

#[test]
fn stop_during_start_answers_the_start_and_cancels() {
    let mut net = Net::new(vec![FakeSrs::new(A, InviteMode::Trying)]);
    let op = net.start(&list(&[A]), None);
    let stop = net.stop();
    assert_eq!(net.outcome(op).unwrap().reply, Reply::StartFailed);
    let out = net.await_outcome(stop);
    assert_eq!(out.reply, Reply::Stopped);
    assert_eq!(out.srs[0].status, Some(487));
    assert_eq!(net.srs[0].methods(), ["INVITE", "CANCEL"]);
}

#[test]
fn stop_with_an_unanswered_bye_is_reported_after_the_request_timeout() {
    let mut net = Net::new(vec![FakeSrs::new(A, InviteMode::Accept)]);
    let op = net.start(&list(&[A]), None);
    net.outcome(op).unwrap();
    net.srs[0].mode = InviteMode::Silent; // the SRS dies
    let now = net.now;
    let stop = net.stop();
    let out = net.await_outcome(stop);
    assert_eq!(out.reply, Reply::Stopped);
    assert!(!out.srs[0].ok, "{:?}", out.srs[0]);
    assert_eq!(out.srs[0].line, LOG_SRS_REQUEST_FAILED);
    assert!(net.now - now <= Duration::from_secs(8));
}
