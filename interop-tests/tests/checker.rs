//! `siprec-client check` against srs-server (no FAIL, no WARN), against seeded faulty SRSs
//! (a relay in front of srs-server breaking one rule each: the checker flags exactly the
//! checks that exercise that rule), and over TLS.

use std::net::SocketAddr;
use std::time::Duration;

use interop_tests::fault_relay::{Fault, FaultRelay};
use interop_tests::process::free_port;
use interop_tests::tls::TestPki;
use siprec_client::check::{run, CheckConfig, Report, Status};
use siprec_client::cli::{check, parse_check_args};
use siprec_sip::transaction::Transport;

fn addr(s: &srs_server::Server, t: Transport) -> SocketAddr {
    s.local_addrs()
        .iter()
        .find(|l| l.transport == t)
        .unwrap()
        .addr
}

/// srs-server on loopback with UDP and TCP on one port, as a real SRS listens (another
/// free port is tried if one is taken between the probe and the bind).
async fn start_srs(dir: &std::path::Path, rtp_base: u16) -> srs_server::Server {
    let mut last = None;
    for _ in 0..10 {
        let port = free_port();
        let cfg = srs_server::Config {
            listen: vec![
                format!("udp:127.0.0.1:{port}"),
                format!("tcp:127.0.0.1:{port}"),
            ],
            rtp_ports: format!("{}-{}", rtp_base, rtp_base + 199),
            storage: dir.join("recordings").display().to_string(),
            spool: dir.join("spool"),
            // Sessions a fault left up (an ignored BYE) end at shutdown without the 30 s grace.
            shutdown_grace: 0,
            ..srs_server::Config::default()
        };
        match srs_server::Server::start(cfg.validate().unwrap()).await {
            Ok(s) => return s,
            Err(e) => last = Some(e),
        }
    }
    panic!("no free port for srs-server: {last:?}");
}

fn quick(uri: String) -> CheckConfig {
    CheckConfig {
        uri,
        sessions: 3,
        local_ip: Some([127, 0, 0, 1].into()),
        timeout: Duration::from_secs(2),
        audio: Duration::from_secs(1),
        ..CheckConfig::default()
    }
}

fn not_passed(r: &Report) -> Vec<String> {
    r.checks
        .iter()
        .filter(|c| c.status != Status::Pass && c.id != "tls")
        .map(|c| {
            format!(
                "{} {}: {:?} / {}",
                c.status.as_str(),
                c.id,
                c.expected,
                c.seen
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srs_server_passes_every_check_and_the_cli_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let srs = start_srs(dir.path(), 22000).await;
    let uri = format!("sip:{}", addr(&srs, Transport::Udp));

    // The full battery with its defaults (10 parallel sessions, 3 s of audio).
    let cfg = CheckConfig {
        uri: uri.clone(),
        local_ip: Some([127, 0, 0, 1].into()),
        ..CheckConfig::default()
    };
    let mut steps = Vec::new();
    let r = run(&cfg, |step, total, id| {
        steps.push((step, total, id.to_string()))
    })
    .await
    .unwrap();
    assert!(not_passed(&r).is_empty(), "{:#?}", not_passed(&r));
    assert_eq!(r.get("tls").unwrap().status, Status::Skip);
    assert_eq!(r.checks.len(), siprec_client::check::Check::ALL.len());
    assert_eq!(steps.len(), r.checks.len(), "one progress call per check");
    assert!(r.get("parallel").unwrap().seen.starts_with("10/10"));
    assert!(r.get("audio").unwrap().seen.contains("0 ICMP errors"));

    // The CLI: JSON on stdout, JUnit in a file.
    let junit = dir.path().join("check.xml");
    let args = parse_check_args(&[
        &uri,
        "--json",
        "--junit",
        junit.to_str().unwrap(),
        "--sessions",
        "2",
        "--audio",
        "1s",
        "--local-ip",
        "127.0.0.1",
    ])
    .unwrap();
    let mut out = Vec::new();
    let r = check(args, &mut out, false).await.unwrap();
    assert!(!r.has_failures());
    let j: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(j["summary"]["fail"], 0);
    assert_eq!(j["summary"]["pass"], r.checks.len() - 1);
    assert_eq!(j["checks"][2]["id"], "invite");
    let x = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(x.matches("<testcase ").count(), r.checks.len());
    assert!(x.contains("failures=\"0\" skipped=\"1\""));

    // The text report: summary first.
    let args = parse_check_args(&[&uri, "--sessions", "1", "--audio", "1s"]).unwrap();
    let mut out = Vec::new();
    check(args, &mut out, false).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.lines()
            .next()
            .unwrap()
            .ends_with("23 passed, 0 failed, 0 warnings, 1 skipped"),
        "{text}"
    );
    srs.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_seeded_fault_is_flagged_exactly() {
    let cases: &[(Fault, &[&str])] = &[
        (Fault::None, &[]),
        (Fault::SendRecv, &["answer-direction"]),
        (Fault::MissingMline, &["answer-mlines"]),
        (Fault::NoSdp, &["answer-sdp"]),
        // The unknown-dialog check sends a BYE too.
        (Fault::IgnoreBye, &["bye", "unknown-dialog"]),
        (Fault::Reinvite500, &["pause", "resume", "session-refresh"]),
        (Fault::DropUpdate, &["metadata-update", "partial-metadata"]),
        (Fault::NoContact, &["contact"]),
        (Fault::ClosedRtpPort, &["audio"]),
        (Fault::DropAck, &["ack"]),
        (Fault::SwappedMlines, &["answer-mlines"]),
        // A slow SRS breaks nothing; the CANCEL then ends the INVITE with 487 (checked below).
        (Fault::SlowAnswer, &[]),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut runs = Vec::new();
    for (i, (fault, expected)) in cases.iter().enumerate() {
        let d = dir.path().join(format!("{i}"));
        let rtp = 40000 + 200 * i as u16;
        runs.push(async move {
            let srs = start_srs(&d, rtp).await;
            let relay = FaultRelay::start(
                addr(&srs, Transport::Udp),
                addr(&srs, Transport::Tcp),
                *fault,
            )
            .await
            .unwrap();
            let r = run(&quick(format!("sip:{}", relay.udp)), |_, _, _| {})
                .await
                .unwrap();
            drop(relay);
            // Not awaited: with the BYE fault the server's own BYEs at shutdown go to a
            // checker that has gone, and would wait out Timer F (32 s).
            tokio::spawn(srs.shutdown());
            (*fault, *expected, r)
        });
    }
    for (fault, expected, r) in futures::future::join_all(runs).await {
        let mut failed = r.failed();
        failed.sort_unstable();
        let mut want = expected.to_vec();
        want.sort_unstable();
        assert_eq!(
            failed,
            want,
            "{fault:?}: {}",
            siprec_client::check::report::text(&r, false)
        );
        assert_eq!(
            r.count(Status::Warn),
            0,
            "{fault:?}: {}",
            siprec_client::check::report::text(&r, false)
        );
        if fault == Fault::SlowAnswer {
            let c = r.get("cancel").unwrap();
            assert!(c.seen.contains("INVITE ended 487"), "{c:?}");
        }
        // Every failure says what was expected and what was seen.
        for c in r.checks.iter().filter(|c| c.status == Status::Fail) {
            assert!(c.expected.is_some() && !c.seen.is_empty(), "{c:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sips_uri_is_checked_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(&dir.path().join("pki"), "check test CA", &["127.0.0.1"]).unwrap();
    let cfg = srs_server::Config {
        listen: vec!["tls:127.0.0.1:0".into()],
        tls_cert: Some(pki.cert_file.clone()),
        tls_key: Some(pki.key_file.clone()),
        rtp_ports: "22200-22399".into(),
        storage: dir.path().join("recordings").display().to_string(),
        spool: dir.path().join("spool"),
        ..srs_server::Config::default()
    };
    let srs = srs_server::Server::start(cfg.validate().unwrap())
        .await
        .unwrap();
    let mut cfg = quick(format!("sips:{}", addr(&srs, Transport::Tls)));
    cfg.ca = Some(pki.ca_file.clone());
    let r = run(&cfg, |_, _, _| {}).await.unwrap();
    assert_eq!(r.get("tls").unwrap().status, Status::Pass, "{r:#?}");
    assert!(r.target.starts_with("tls:"));
    assert!(
        !r.has_failures(),
        "{}",
        siprec_client::check::report::text(&r, false)
    );
    for id in ["large-udp", "large-tcp"] {
        assert_eq!(r.get(id).unwrap().status, Status::Skip);
    }
    assert_eq!(r.get("bye").unwrap().status, Status::Pass);

    // Without the CA the handshake fails: one FAIL naming it, everything else skipped.
    cfg.ca = None;
    let r = run(&cfg, |_, _, _| {}).await.unwrap();
    assert_eq!(r.failed(), ["tls"]);
    assert_eq!(r.count(Status::Skip), r.checks.len() - 1);
    srs.shutdown().await.unwrap();
}

/// The binary's exit status: 0 when every check passes, 1 on a FAIL, 2 when the check
/// cannot run (here: a URI that is not a SIP URI).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_exits_0_1_or_2() {
    let bin = interop_tests::process::workspace_bin("siprec-client").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let srs = start_srs(dir.path(), 42600).await;
    let relay = FaultRelay::start(
        addr(&srs, Transport::Udp),
        addr(&srs, Transport::Tcp),
        Fault::NoContact,
    )
    .await
    .unwrap();
    let exit = |uri: String| {
        let bin = bin.clone();
        async move {
            let out = tokio::process::Command::new(&bin)
                .args([
                    "check",
                    &uri,
                    "--sessions",
                    "1",
                    "--audio",
                    "1s",
                    "--timeout",
                    "2s",
                ])
                .args(["--local-ip", "127.0.0.1"])
                .output()
                .await
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            (
                out.status.code(),
                text,
                String::from_utf8_lossy(&out.stderr).to_string(),
            )
        }
    };
    let (code, text, _) = exit(format!("sip:{}", addr(&srs, Transport::Udp))).await;
    assert_eq!(code, Some(0), "{text}");
    let (code, text, _) = exit(format!("sip:{}", relay.udp)).await;
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("FAIL  contact"), "{text}");
    let (code, _, err) = exit("https://srs.example.com".into()).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("https://"), "names the problem: {err}");
    drop(relay);
    srs.shutdown().await.unwrap();
}
