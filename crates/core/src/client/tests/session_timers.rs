//! Session timers (RFC 4028).

use super::*;

#[test]
fn session_timer_refresh_when_the_srs_asks() {
    let mut a = FakeSrs::new(A, InviteMode::Accept);
    a.session_expires = Some("90;refresher=uac");
    let mut net = Net::new(vec![a]);
    let op = net.start(&list(&[A]), None);
    net.outcome(op).unwrap();
    net.run_for(Duration::from_millis(44_900));
    assert_eq!(net.srs[0].methods(), ["INVITE"]);
    net.run_for(Duration::from_millis(200));
    assert_eq!(net.srs[0].methods(), ["INVITE", "UPDATE"]);
    let upd = net.srs[0].received.last().unwrap();
    assert_eq!(
        header_value(&upd.headers, "Session-Expires").as_deref(),
        Some("90;refresher=uac")
    );
    net.run_for(Duration::from_secs(46));
    assert_eq!(net.srs[0].methods(), ["INVITE", "UPDATE", "UPDATE"]);
    // When the SRS refreshes and stops doing so, we end the session.
    let mut a = FakeSrs::new(A, InviteMode::Accept);
    a.session_expires = Some("90;refresher=uas");
    let mut net = Net::new(vec![a]);
    let op = net.start(&list(&[A]), None);
    net.outcome(op).unwrap();
    net.run_for(Duration::from_secs(61));
    assert_eq!(net.srs[0].methods(), ["INVITE", "BYE"]);
    assert!(net
        .events
        .iter()
        .any(|e| matches!(e, Event::RecordingEnded { .. })));
}
