//! The node's contract (activity names, replies) and the call context checks.

use super::*;

#[test]
fn activity_names_and_replies() {
    for a in [
        Activity::Start,
        Activity::Stop,
        Activity::Pause,
        Activity::Resume,
    ] {
        assert_eq!(a.as_str().parse::<Activity>(), Ok(a));
    }
    assert!("record".parse::<Activity>().is_err());
    assert_eq!(
        Reply::NoResponse.to_string(),
        "400 No response from SipRec server, return error to feature server"
    );
    assert!(Reply::Started.is_success() && !Reply::StartFailed.is_success());
}

#[test]
fn call_context_is_checked() {
    let now = t0();
    let mut c = CallContext::example();
    c.callee.aor = " ".into();
    assert!(SrcCore::new(config(), c, now, SystemTime::UNIX_EPOCH).is_err());
    for (n, v) in [
        ("Via", "x"),
        ("X Bad", "x"),
        ("X-Ok", "a\r\nInjected: 1"),
        ("c", "text/plain"),
    ] {
        let mut c = CallContext::example();
        c.extra_headers = vec![(n.into(), v.into())];
        assert!(
            SrcCore::new(config(), c, now, SystemTime::UNIX_EPOCH).is_err(),
            "{n}"
        );
    }
}
