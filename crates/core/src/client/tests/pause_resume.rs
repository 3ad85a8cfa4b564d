//! Activities pause and resume.

use super::*;

#[test]
fn pause_and_resume_reinvite_with_directions_and_partial_metadata() {
    let mut net = Net::new(vec![FakeSrs::new(A, InviteMode::Accept)]);
    let op = net.start(&list(&[A]), None);
    let rs = net.outcome(op).unwrap().srs[0].rs;
    let p = net.pause();
    // Media stops at once.
    assert!(!net.plans(rs).last().unwrap().sending);
    let out = net.await_outcome(p);
    assert_eq!(out.reply, Reply::Paused);
    assert_eq!(out.srs[0].line, LOG_SRS_PAUSED);
    assert_eq!(out.srs[0].status, Some(200));
    let reinv = net.srs[0].received[1].clone();
    assert_eq!(reinv.method, Method::Invite);
    let ct = header_value(&reinv.headers, "Content-Type").unwrap();
    let mp = siprec_sip::multipart::parse(&ct, &reinv.body).unwrap();
    let sdp = String::from_utf8(mp.part_by_type("application/sdp").unwrap().body.clone()).unwrap();
    assert_eq!(sdp.matches("a=inactive").count(), 2, "{sdp}");
    assert!(sdp.contains(" 2 IN IP4"), "o= version bumped: {sdp}");
    let md = String::from_utf8(
        mp.part_by_type("application/rs-metadata+xml")
            .unwrap()
            .body
            .clone(),
    )
    .unwrap();
    assert!(
        md.contains("<datamode>partial</datamode>") && md.contains("disassociate-time"),
        "{md}"
    );
    assert!(net.src.is_paused());
    // Invalid: pause twice.
    let again = net.pause();
    let out = net.outcome(again).unwrap();
    assert_eq!(
        (out.reply.code(), out.reply.log_line()),
        (400, "discarding invalid pauseCallRecording request")
    );
    // Resume.
    let now = net.now;
    let r = net.src.resume(now);
    let evs: Vec<Event> = std::iter::from_fn(|| net.src.poll_event()).collect();
    assert!(
        !evs.iter()
            .any(|e| matches!(e, Event::Media { plan, .. } if plan.sending)),
        "media waits for the SRS's 200"
    );
    net.events.extend(evs);
    let out = net.await_outcome(r);
    assert_eq!(out.reply, Reply::Resumed);
    assert!(net.plans(rs).last().unwrap().sending);
    let sdp = body_text(&net.srs[0].received[2]);
    assert_eq!(sdp.matches("a=sendonly").count(), 2);
    assert!(sdp.contains(" 3 IN IP4"));
    assert!(sdp.contains("<associate-time>"));
    // Invalid: resume when not paused.
    let again = net.resume();
    let out = net.outcome(again).unwrap();
    assert_eq!(
        (out.reply.code(), out.reply.log_line()),
        (400, "discarding invalid resumeCallRecording request")
    );
}

#[test]
fn pause_and_resume_when_not_recording_are_invalid() {
    let mut net = Net::new(vec![FakeSrs::new(A, InviteMode::Trying)]);
    let p = net.pause();
    assert_eq!(net.outcome(p).unwrap().reply, Reply::InvalidPause);
    let r = net.resume();
    assert_eq!(net.outcome(r).unwrap().reply, Reply::InvalidResume);
    // While starting, too.
    net.start(&list(&[A]), None);
    let p = net.pause();
    assert_eq!(net.outcome(p).unwrap().reply, Reply::InvalidPause);
    assert_eq!(net.srs[0].methods(), ["INVITE"]);
}

#[test]
fn a_rejected_pause_keeps_media_off_and_reports_503() {
    let mut net = Net::new(vec![FakeSrs::new(A, InviteMode::Accept)]);
    let op = net.start(&list(&[A]), None);
    let rs = net.outcome(op).unwrap().srs[0].rs;
    net.srs[0].reinvite_code = Some(488);
    let p = net.pause();
    let out = net.await_outcome(p);
    assert_eq!(out.reply, Reply::PauseFailed);
    assert_eq!(
        (out.reply.code(), out.reply.log_line()),
        (503, LOG_PAUSE_FAILED)
    );
    assert_eq!(out.srs[0].status, Some(488));
    assert!(out.reason.unwrap().contains("488"));
    assert!(
        !net.plans(rs).last().unwrap().sending,
        "paused locally all the same"
    );
    assert!(net.src.is_paused());
    // No endless retries of the refused change.
    net.run_for(Duration::from_secs(10));
    assert_eq!(net.srs[0].methods(), ["INVITE", "INVITE"]);
    // The SRS never left sendonly: resuming needs no request.
    let r = net.resume();
    let out = net.await_outcome(r);
    assert_eq!(out.reply, Reply::Resumed);
    assert!(net.plans(rs).last().unwrap().sending);
    assert_eq!(net.srs[0].methods(), ["INVITE", "INVITE"]);
    // A 481 means the dialog is gone: that session ends.
    net.srs[0].reinvite_code = Some(481);
    let p = net.pause();
    let out = net.await_outcome(p);
    assert_eq!(out.reply, Reply::PauseFailed);
    assert_eq!(out.srs[0].line, LOG_SRS_ENDED);
    assert!(net.events.contains(&Event::MediaStop { rs }));
    assert!(!net.src.is_recording());
}

#[test]
fn a_codec_change_reoffers_every_session_with_the_same_direction() {
    let mut net = Net::new(vec![FakeSrs::new(A, InviteMode::Accept)]);
    let op = net.start(&list(&[A]), None);
    let rs = net.outcome(op).unwrap().srs[0].rs;
    assert_eq!(
        net.plans(rs).last().unwrap().legs[0]
            .as_ref()
            .unwrap()
            .format
            .encoding,
        "PCMU"
    );
    let now = net.now;
    net.src.set_codecs(now, vec![siprec_sdp::Format::pcma()]);
    net.settle();
    let reoffer = net.srs[0].received.last().unwrap().clone();
    assert_eq!(reoffer.method, Method::Invite);
    let sdp = body_text(&reoffer);
    assert!(
        sdp.contains("RTP/AVP 8\r\n") && !sdp.contains("PCMU"),
        "{sdp}"
    );
    assert_eq!(
        sdp.matches("a=sendonly").count(),
        2,
        "same direction: {sdp}"
    );
    assert!(sdp.contains(" 2 IN IP4"), "o= version bumped: {sdp}");
    let plan = net.plans(rs).last().unwrap().clone();
    assert!(plan.sending);
    for leg in &plan.legs {
        assert_eq!(
            leg.as_ref().unwrap().format.encoding,
            "PCMA",
            "the new answer's codec"
        );
    }
    // The same list again: nothing sent.
    let n = net.srs[0].received.len();
    net.src.set_codecs(now, vec![siprec_sdp::Format::pcma()]);
    net.settle();
    assert_eq!(net.srs[0].received.len(), n);
}
