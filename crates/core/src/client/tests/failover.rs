//! Failover across targets and redirects.

use super::*;

#[test]
fn failover_on_503_timeout_and_transport_error() {
    let targets = |addrs: &[&str]| -> Result<Vec<Target>, String> {
        Ok(addrs
            .iter()
            .map(|a| format!("udp:{a}").parse().unwrap())
            .collect())
    };
    // 503 → next target.
    let mut net = Net::new(vec![
        FakeSrs::new(A, InviteMode::Reject(503)),
        FakeSrs::new(B, InviteMode::Accept),
    ]);
    net.resolutions
        .insert("sip:srs.example.com".into(), targets(&[A, B]));
    let op = net.start("sip:srs.example.com", None);
    let out = net.outcome(op).unwrap();
    assert_eq!(out.reply, Reply::Started);
    assert_eq!(out.srs[0].target, Some(format!("udp:{B}").parse().unwrap()));
    // Silence → next target after the target timeout, within the start timeout.
    let mut net = Net::new(vec![
        FakeSrs::new(A, InviteMode::Silent),
        FakeSrs::new(B, InviteMode::Accept),
    ]);
    net.resolutions
        .insert("sip:srs.example.com".into(), targets(&[A, B]));
    let start = net.now;
    let op = net.start("sip:srs.example.com", None);
    let out = net.await_outcome(op);
    assert_eq!(out.reply, Reply::Started);
    assert_eq!(net.now - start, Duration::from_secs(1));
    // Transport error → next target at once.
    let mut net = Net::new(vec![FakeSrs::new(B, InviteMode::Accept)]);
    net.unreachable.push(A.parse().unwrap());
    net.resolutions
        .insert("sip:srs.example.com".into(), targets(&[A, B]));
    let op = net.start("sip:srs.example.com", None);
    assert_eq!(net.outcome(op).unwrap().reply, Reply::Started);
    // Every target failing: 503 with the history.
    let mut net = Net::new(vec![FakeSrs::new(B, InviteMode::Reject(503))]);
    net.unreachable.push(A.parse().unwrap());
    net.resolutions
        .insert("sip:srs.example.com".into(), targets(&[A, B]));
    let op = net.start("sip:srs.example.com", None);
    let out = net.outcome(op).unwrap();
    assert_eq!(out.reply, Reply::StartFailed);
    let reason = out.reason.unwrap();
    assert!(
        reason.contains("connection refused") && reason.contains("503"),
        "{reason}"
    );
}

#[test]
fn a_large_invite_goes_over_tcp_unless_the_uri_asks_for_udp() {
    let mut cfg = config();
    cfg.large_requests_over_tcp = true;
    // No transport in the URI: the INVITE (over 1300 bytes) goes over TCP.
    let mut net = Net::with_config(vec![FakeSrs::new(A, InviteMode::Accept)], cfg.clone());
    let op = net.start("sip:192.0.2.10", None);
    let out = net.outcome(op).unwrap();
    assert_eq!(out.reply, Reply::Started);
    assert_eq!(out.srs[0].target, Some(format!("tcp:{A}").parse().unwrap()));
    let inv = &net.srs[0].received[0];
    let len = message::print_message(&SipMessage::Request(inv.clone())).len();
    assert!(len > UDP_SIZE_LIMIT, "{len}");
    assert!(header_value(&inv.headers, "Via")
        .unwrap()
        .starts_with("SIP/2.0/TCP "));
    // TCP refused: UDP to the same address, as §18.1.1 says.
    let mut net = Net::with_config(vec![FakeSrs::new(A, InviteMode::Accept)], cfg.clone());
    net.refuse_tcp.push(A.parse().unwrap());
    let op = net.start("sip:192.0.2.10", None);
    let out = net.outcome(op).unwrap();
    assert_eq!(out.reply, Reply::Started);
    assert_eq!(out.srs[0].target, Some(format!("udp:{A}").parse().unwrap()));
    // An explicit transport=udp is obeyed.
    let mut net = Net::with_config(vec![FakeSrs::new(A, InviteMode::Accept)], cfg.clone());
    let op = net.start("sip:192.0.2.10;transport=udp", None);
    let out = net.outcome(op).unwrap();
    assert_eq!(out.srs[0].target, Some(format!("udp:{A}").parse().unwrap()));
    // Without a local TCP transport there is nothing to switch to.
    cfg.tcp = None;
    let mut net = Net::with_config(vec![FakeSrs::new(A, InviteMode::Accept)], cfg);
    let op = net.start("sip:192.0.2.10", None);
    let out = net.outcome(op).unwrap();
    assert_eq!(out.srs[0].target, Some(format!("udp:{A}").parse().unwrap()));
}

#[test]
fn redirect_to_a_sip_contact() {
    let mut net = Net::new(vec![
        FakeSrs::new(A, InviteMode::Redirect(format!("sip:srs@{B}"))),
        FakeSrs::new(B, InviteMode::Accept),
    ]);
    let op = net.start(&list(&[A]), None);
    let out = net.outcome(op).unwrap();
    assert_eq!(out.reply, Reply::Started);
    assert_eq!(out.srs[0].target.unwrap().addr, B.parse().unwrap());
    assert_eq!(
        net.srs[1].received[0].uri.to_string(),
        format!("sip:srs@{B}")
    );
    // A redirect to something else fails that SRS.
    let mut net = Net::new(vec![FakeSrs::new(
        A,
        InviteMode::Redirect("https://x.example".into()),
    )]);
    let op = net.start(&list(&[A]), None);
    let out = net.outcome(op).unwrap();
    assert_eq!(out.reply, Reply::StartFailed);
    assert!(out
        .reason
        .unwrap()
        .contains("redirect without a sip:/sips: Contact"));
}
