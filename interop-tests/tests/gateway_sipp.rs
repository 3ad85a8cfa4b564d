//! `siprec-client gateway` in a live call between two SIPp instances (Debian `sip-tester`):
//! SIPp as the caller runs `fixtures/sipp/gateway-caller.xml` (440 Hz, then the Call Recording
//! Node's INFOs start, pause, resume, stop, then BYE) and SIPp as the callee runs
//! `fixtures/sipp/gateway-callee.xml` (880 Hz); srs-server is the SRS. The test checks every
//! INFO's reply (code and reason phrase, from SIPp's message log), the relayed media, and the
//! stored recording: caller left, callee right, silence while paused, the Recording ID as key;
//! and, counted on the wire with tcpdump, the packets each SIPp received from the relay.

use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::Duration;

use interop_tests::audio::{deinterleave, tone_power};
use interop_tests::{fixtures_dir, read_wav, require_tool, start_srs};
use siprec_client::gateway::{Gateway, GatewayOptions};
use siprec_sip::transaction::Transport;

fn free_even_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap().port() & !1
}

/// tcpdump on loopback counting UDP packets to some ports (Debian `tcpdump`; capturing needs
/// root or CAP_NET_RAW, as CI has).
struct Capture {
    child: tokio::process::Child,
    ports: Vec<u16>,
}

impl Capture {
    async fn start(ports: &[u16]) -> Capture {
        use tokio::io::AsyncBufReadExt;
        let tcpdump = require_tool(
            "tcpdump",
            "install it with `apt-get install tcpdump` (and run as root)",
        );
        let filter = ports
            .iter()
            .map(|p| format!("dst port {p}"))
            .collect::<Vec<_>>()
            .join(" or ");
        let mut child = tokio::process::Command::new(tcpdump)
            .args([
                "-i",
                "lo",
                "-n",
                "-l",
                "-q",
                "--immediate-mode",
                &format!("udp and ({filter})"),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // It prints "listening on lo" on stderr once the capture runs.
        let mut err = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        loop {
            match tokio::time::timeout(Duration::from_secs(10), err.next_line()).await {
                Ok(Ok(Some(l))) if l.contains("listening on") => break,
                Ok(Ok(Some(_))) => continue,
                other => {
                    panic!("tcpdump did not start capturing (needs root or CAP_NET_RAW): {other:?}")
                }
            }
        }
        Capture {
            child,
            ports: ports.to_vec(),
        }
    }

    /// Stops the capture and returns the packets seen per port.
    async fn stop(self) -> Vec<u32> {
        // SIGINT makes tcpdump flush and exit.
        let _ = std::process::Command::new("kill")
            .args(["-INT", &self.child.id().unwrap().to_string()])
            .status();
        let out = self.child.wait_with_output().await.unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        self.ports
            .iter()
            .map(|p| {
                text.lines()
                    .filter(|l| l.contains(&format!("> 127.0.0.1.{p}:")))
                    .count() as u32
            })
            .collect()
    }
}

fn free_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap().port()
}

/// The status lines of the responses to INFO in a SIPp message log, in order.
fn info_replies(log: &str) -> Vec<String> {
    let mut out = Vec::new();
    for block in log.split("\n\n") {
        let Some(start) = block.find("SIP/2.0 ") else {
            continue;
        };
        let msg = &block[start..];
        if msg
            .lines()
            .any(|l| l.to_ascii_lowercase().starts_with("cseq:") && l.contains("INFO"))
        {
            out.push(msg.lines().next().unwrap().trim().to_string());
        }
    }
    out.dedup();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sipp_call_through_the_gateway_is_relayed_and_recorded_on_info() {
    // Over UDP, then the same call with every hop over TCP (caller, B leg, SRS).
    sipp_call(Transport::Udp, 32400, (32800, 32899), "gw-rec-udp").await;
    sipp_call(Transport::Tcp, 33200, (33600, 33699), "gw-rec-tcp").await;
}

async fn sipp_call(t: Transport, srs_rtp: u16, relay_ports: (u16, u16), recid: &str) {
    let sipp = require_tool("sipp", "install it with `apt-get install sip-tester`");
    let (sipp_t, uri_t) = match t {
        Transport::Tcp => ("t1", ";transport=tcp"),
        _ => ("u1", ""),
    };
    let dir = tempfile::tempdir().unwrap();
    let server = start_srs(dir.path(), srs_rtp).await.unwrap();
    let mut published = server.subscribe();
    let srs = server
        .local_addrs()
        .iter()
        .find(|l| l.transport == t)
        .unwrap()
        .addr;

    // What reaches each SIPp's media port is counted on the wire (tcpdump on loopback): the
    // relay is proven at the endpoints, not only by the gateway's own counters.
    let (caller_mp, callee_mp) = (free_even_port(), free_even_port());
    let capture = Capture::start(&[caller_mp, callee_mp]).await;

    // The callee: SIPp as UAS behind --forward.
    let callee_port = free_port();
    let callee_log = dir.path().join("callee-messages.log");
    let callee = tokio::process::Command::new(&sipp)
        .current_dir(fixtures_dir().join("sipp"))
        .args(["-sf", "gateway-callee.xml", "-m", "1", "-t", sipp_t])
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &callee_port.to_string(),
            "-mi",
            "127.0.0.1",
        ])
        .args([
            "-mp",
            &callee_mp.to_string(),
            "-timeout",
            "40s",
            "-timeout_error",
            "-nostdin",
        ])
        .arg("-trace_msg")
        .arg("-message_file")
        .arg(&callee_log)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let gw = Gateway::start(GatewayOptions {
        listen: vec![
            "udp:127.0.0.1:0".parse().unwrap(),
            "tcp:127.0.0.1:0".parse().unwrap(),
        ],
        forward: format!("sip:127.0.0.1:{callee_port}{uri_t}"),
        rtp_ports: relay_ports,
        ..GatewayOptions::default()
    })
    .await
    .unwrap();
    let gw_addr = gw
        .local_addrs()
        .iter()
        .find(|l| l.transport == t)
        .unwrap()
        .addr;

    let caller_log = dir.path().join("caller-messages.log");
    let caller = tokio::process::Command::new(&sipp)
        .current_dir(fixtures_dir().join("sipp"))
        .args([
            "-sf",
            "gateway-caller.xml",
            "-m",
            "1",
            "-l",
            "1",
            "-t",
            sipp_t,
        ])
        .args(["-i", "127.0.0.1", "-p", "0", "-mi", "127.0.0.1"])
        .args([
            "-mp",
            &caller_mp.to_string(),
            "-timeout",
            "40s",
            "-timeout_error",
            "-nostdin",
        ])
        .args(["-set", "srs", &format!("sip:{srs}{uri_t}")])
        .args(["-set", "recid", recid])
        .arg("-trace_msg")
        .arg("-message_file")
        .arg(&caller_log)
        .arg(gw_addr.to_string())
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let caller_msgs = std::fs::read_to_string(&caller_log).unwrap_or_default();
    assert!(
        caller.status.success(),
        "caller SIPp failed ({}):\n{}\n{}\n{caller_msgs}",
        caller.status,
        String::from_utf8_lossy(&caller.stdout),
        String::from_utf8_lossy(&caller.stderr)
    );
    let callee = callee.wait_with_output().await.unwrap();
    assert!(
        callee.status.success(),
        "callee SIPp failed: {}",
        String::from_utf8_lossy(&callee.stdout)
    );

    // Every INFO was answered by the gateway with the contract's reply.
    assert_eq!(
        info_replies(&caller_msgs),
        vec![
            "SIP/2.0 200 startCallRecording request for a call",
            "SIP/2.0 200 pauseCallRecording request for a call",
            "SIP/2.0 200 resumeCallRecording request for a call",
            "SIP/2.0 200 stopCallRecording request for a call",
        ]
    );
    // None reached the callee.
    let callee_msgs = std::fs::read_to_string(&callee_log).unwrap_or_default();
    assert!(
        !callee_msgs.contains("INFO sip:"),
        "a recording INFO was relayed to the callee"
    );

    let rec = interop_tests::next_recording(&mut published).await;
    let m = &rec.manifest;
    assert_eq!(m.recording_key, recid);
    assert_eq!(m.ended_by, "bye-from-src");
    let names: Vec<_> = m
        .participants
        .iter()
        .map(|p| p.name.clone().unwrap_or_default())
        .collect();
    assert!(
        names.contains(&"SIPp Caller".to_string()) && names.contains(&"SIPp Callee".to_string()),
        "{names:?}"
    );
    assert_eq!(m.pauses.len(), 1, "{:?}", m.pauses);
    // Start at 1 s, stop 3 s later (each step 1 s apart): the recording spans start to stop.
    assert!(
        (m.duration_seconds - 3.0).abs() < 0.15,
        "duration {} s",
        m.duration_seconds
    );

    let (spec, samples) = read_wav(&server, &rec.folder).await.unwrap();
    assert_eq!((spec.channels, spec.sample_rate), (2, 8000));
    let (left, right) = deinterleave(&samples);
    let sec = |s: f64| (s * 8000.0) as usize;
    // Recording before the pause (0.1-0.9 s): caller 440 Hz on the left, callee 880 Hz right.
    let (l, r) = (&left[sec(0.1)..sec(0.9)], &right[sec(0.1)..sec(0.9)]);
    assert!(
        tone_power(l, 8000, 440.0) > 100.0 * tone_power(l, 8000, 880.0).max(1.0),
        "left is the caller"
    );
    assert!(
        tone_power(r, 8000, 880.0) > 100.0 * tone_power(r, 8000, 440.0).max(1.0),
        "right is the callee"
    );
    // Paused (1.1-1.9 s): silence on both channels.
    let p = m.pauses[0].clone();
    let (a, b) = (sec(p.start + 0.1), sec(p.end - 0.1));
    assert!(b > a, "pause {p:?}");
    assert!(
        left[a..b]
            .iter()
            .chain(&right[a..b])
            .all(|s| s.unsigned_abs() < 64),
        "silence while paused"
    );
    // After the resume: both tones again.
    let (l, r) = (&left[sec(2.1)..sec(2.9)], &right[sec(2.1)..sec(2.9)]);
    assert!(tone_power(l, 8000, 440.0) > 1e5 && tone_power(r, 8000, 880.0) > 1e5);

    // The relay carried both directions of the whole call: 4.5 s from ACK to BYE, 20 ms
    // packets each way (225 per direction; a few more may have left before the BYE).
    let c = gw.counters();
    let relayed = c.relayed.load(Ordering::Relaxed);
    let forked = c.forked.load(Ordering::Relaxed);
    assert!((2 * 215..=2 * 240).contains(&relayed), "relayed {relayed}");
    // Forked: both legs while recording and not paused (~2 s each).
    assert!((150..=260).contains(&forked), "forked {forked}");
    assert_eq!(c.strangers.load(Ordering::Relaxed), 0);
    // Each SIPp got the other's audio: 4.5 s of 20 ms packets from ACK to BYE (225; the
    // callee starts playing a moment after the caller).
    let got = capture.stop().await;
    let (to_caller, to_callee) = (got[0], got[1]);
    assert!(
        (210..=240).contains(&to_caller),
        "the caller received {to_caller} packets"
    );
    assert!(
        (210..=240).contains(&to_callee),
        "the callee received {to_callee} packets"
    );
    assert_eq!(
        u64::from(to_caller + to_callee),
        relayed,
        "every relayed packet reached its SIPp"
    );
    gw.shutdown().await;
    server.shutdown().await.unwrap();
    tokio::time::sleep(Duration::ZERO).await;
}
