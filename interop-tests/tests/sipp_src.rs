//! SIPp (Debian package `sip-tester`) as a third-party SRC: it sends a SIPREC INVITE written in
//! `fixtures/sipp/srs-uac-pcap.xml`, plays `fixtures/rtp/pcmu-440hz-3s.pcap` and hangs up; the
//! stored recording is checked like the Rust SRC's.

use std::process::Stdio;
use std::time::Duration;

use interop_tests::audio::{deinterleave, peak, tone_power};
use interop_tests::{fixtures_dir, read_object, read_wav, require_tool, start_srs};
use siprec_sip::transaction::Transport;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_src_call_is_recorded() {
    let sipp = require_tool("sipp", "install it with `apt-get install sip-tester`");
    let dir = tempfile::tempdir().unwrap();
    let server = start_srs(dir.path(), 31800).await.unwrap();
    let mut published = server.subscribe();
    let srs = server
        .local_addrs()
        .iter()
        .find(|l| l.transport == Transport::Udp)
        .unwrap()
        .addr;
    // A free even media port for SIPp.
    let media_port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port() & !1
    };
    let out = tokio::process::Command::new(sipp)
        .current_dir(fixtures_dir().join("sipp"))
        .args(["-sf", "srs-uac-pcap.xml", "-m", "1", "-l", "1", "-t", "u1"])
        .args(["-i", "127.0.0.1", "-p", "0", "-mi", "127.0.0.1"])
        .args([
            "-mp",
            &media_port.to_string(),
            "-timeout",
            "30s",
            "-timeout_error",
        ])
        .args(["-trace_err", "-error_file"])
        .arg(dir.path().join("sipp-errors.log"))
        .arg(srs.to_string())
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let errors = std::fs::read_to_string(dir.path().join("sipp-errors.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "sipp failed ({}):\n{}\n{}\n{errors}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let rec = tokio::time::timeout(Duration::from_secs(15), published.recv())
        .await
        .expect("recording published in time")
        .unwrap();
    let m = &rec.manifest;
    assert_eq!(m.ended_by, "bye-from-src");
    assert_eq!(
        m.recording_key, "c2lwcC1zZXNzaW9u",
        "no Recording ID: RS session id is the key"
    );
    assert_eq!(m.participants.len(), 2);
    assert_eq!(m.streams.len(), 2);
    assert!(m.streams[0].packets_received >= 148, "{:?}", m.streams[0]);
    assert_eq!(m.streams[1].packets_received, 0);
    let md = read_object(&server, &format!("{}/metadata/0001.xml", rec.folder))
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&md).contains("c2lwcC1zZXNzaW9u"));

    let (spec, samples) = read_wav(&server, &rec.folder).await.unwrap();
    assert_eq!((spec.channels, spec.sample_rate), (2, 8000));
    let (left, right) = deinterleave(&samples);
    let secs = left.len() as f64 / 8000.0;
    // SIPp hangs up 3.2 s after the ACK.
    assert!((secs - 3.2).abs() < 0.3, "duration {secs:.3} s");
    let l = &left[1600..(2.8 * 8000.0) as usize];
    let p440 = tone_power(l, 8000, 440.0);
    assert!(
        p440 > 1e5 && p440 > 100.0 * tone_power(l, 8000, 880.0),
        "left 440 Hz {p440}"
    );
    assert_eq!(
        peak(&right),
        0,
        "right channel silent: SIPp sends one stream"
    );
    server.shutdown().await.unwrap();
}
