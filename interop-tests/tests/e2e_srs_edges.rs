//! End to end edge cases on a running srs-server: the media timeout (and its absence while
//! paused), hostile input arriving while another call records, and the source allowlist on
//! every transport.

use std::time::{Duration, Instant};

use interop_tests::{read_wav, TestSrc, TestTransport};
use siprec_sip::rsip::Method;
use siprec_sip::transaction::Transport;

async fn server(dir: &std::path::Path, rtp_base: u16, media_timeout: u64) -> srs_server::Server {
    let cfg = srs_server::Config {
        listen: vec!["udp:127.0.0.1:0".into(), "tcp:127.0.0.1:0".into()],
        rtp_ports: format!("{}-{}", rtp_base, rtp_base + 99),
        storage: dir.join("recordings").display().to_string(),
        spool: dir.join("spool"),
        media_timeout,
        ..srs_server::Config::default()
    };
    srs_server::Server::start(cfg.validate().unwrap())
        .await
        .unwrap()
}

fn addr(s: &srs_server::Server, t: Transport) -> std::net::SocketAddr {
    s.local_addrs()
        .iter()
        .find(|l| l.transport == t)
        .unwrap()
        .addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_timeout_ends_the_session_with_a_bye_from_the_srs() {
    let dir = tempfile::tempdir().unwrap();
    let srs = server(dir.path(), 31600, 1).await;
    let mut published = srs.subscribe();
    let mut src = TestSrc::new(
        TestTransport::Udp,
        addr(&srs, Transport::Udp),
        (0, 440.0),
        (0, 880.0),
    )
    .await
    .unwrap();
    let offer = src.offer("sendonly");
    let md = src.metadata(None);
    let started = Instant::now();
    assert_eq!(
        src.invite(&offer, Some(&md))
            .await
            .unwrap()
            .status_code
            .code(),
        200
    );
    // No RTP at all: the SRS must hang up by itself.
    let bye = src.wait_request(Duration::from_secs(5)).await.unwrap();
    assert_eq!(bye.method, Method::Bye);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900), "BYE after {waited:?}");
    let rec = interop_tests::next_recording(&mut published).await;
    assert_eq!(rec.manifest.ended_by, "media-timeout");
    assert_eq!(rec.manifest.recording_key_source, "session_id");
    // A silent call still gets a file of the right length, all silence.
    let (_, samples) = read_wav(&srs, &rec.folder).await.unwrap();
    let secs = samples.len() as f64 / 2.0 / 8000.0;
    assert!(
        (secs - waited.as_secs_f64()).abs() < 0.2,
        "{secs} vs {waited:?}"
    );
    assert!(samples.iter().all(|s| *s == 0));
    srs.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_media_timeout_while_paused() {
    let dir = tempfile::tempdir().unwrap();
    let srs = server(dir.path(), 31700, 1).await;
    let mut published = srs.subscribe();
    let mut src = TestSrc::new(
        TestTransport::Tcp,
        addr(&srs, Transport::Tcp),
        (0, 440.0),
        (8, 880.0),
    )
    .await
    .unwrap();
    src.start(Some("paused-call")).await;
    src.stream(Duration::from_millis(400)).await.unwrap();
    let off = src.offer("inactive");
    assert_eq!(
        src.invite(&off, None).await.unwrap().status_code.code(),
        200
    );
    // Paused for 2.5 media timeouts: the SRS must stay quiet.
    let quiet = src.wait_request(Duration::from_millis(2500)).await;
    assert!(
        quiet.is_err(),
        "the SRS sent {:?} while paused",
        quiet.map(|r| r.method)
    );
    let on = src.offer("sendonly");
    assert_eq!(src.invite(&on, None).await.unwrap().status_code.code(), 200);
    src.stream(Duration::from_millis(400)).await.unwrap();
    src.hang_up().await;
    let rec = interop_tests::next_recording(&mut published).await;
    assert_eq!(rec.manifest.ended_by, "bye-from-src");
    assert_eq!(rec.manifest.pauses.len(), 1);
    let p = &rec.manifest.pauses[0];
    assert!((p.end - p.start - 2.5).abs() < 0.15, "{p:?}");
    srs.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_gets_answers_while_a_call_keeps_recording() {
    let dir = tempfile::tempdir().unwrap();
    let srs = server(dir.path(), 31500, 10).await;
    let mut published = srs.subscribe();
    let udp = addr(&srs, Transport::Udp);
    let tcp = addr(&srs, Transport::Tcp);
    let mut src = TestSrc::new(TestTransport::Udp, udp, (0, 440.0), (8, 880.0))
        .await
        .unwrap();
    src.start(Some("victim")).await;

    let attacker = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut answers = Vec::new();
        // Sends `bytes` and returns the first final (non-1xx) response, if one comes.
        let ask = |bytes: Vec<u8>| {
            let sock = &sock;
            async move {
                sock.send_to(&bytes, udp).await.unwrap();
                let mut buf = vec![0u8; 65536];
                let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                loop {
                    match tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await {
                        Ok(Ok((n, _))) => {
                            let text = String::from_utf8_lossy(&buf[..n]).to_string();
                            if !text.starts_with("SIP/2.0 1") {
                                return Some(text);
                            }
                        }
                        _ => return None,
                    }
                }
            }
        };
        // Sends `bytes`, then a well-formed OPTIONS; returns the status lines of every final
        // response that came before the OPTIONS' own answer (the answers to `bytes`: the
        // server handles one socket's datagrams in order), or None if the OPTIONS was not
        // answered (the server stopped answering).
        let ask_then_probe = |bytes: Vec<u8>, probe: String| {
            let sock = &sock;
            async move {
                sock.send_to(&bytes, udp).await.unwrap();
                let probe_id = format!("Call-ID: probe-{}\r\n", rand_u32());
                let probe = probe.replacen("Call-ID: ", &format!("{probe_id}X-Was: "), 1);
                sock.send_to(probe.as_bytes(), udp).await.unwrap();
                let mut before = Vec::new();
                let mut buf = vec![0u8; 65536];
                loop {
                    let got =
                        tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf));
                    let Ok(Ok((n, _))) = got.await else {
                        return None;
                    };
                    let text = String::from_utf8_lossy(&buf[..n]).to_string();
                    let status = text.lines().next().unwrap_or("").to_string();
                    if text.contains(&probe_id) {
                        return Some((status, before));
                    }
                    if !status.starts_with("SIP/2.0 1") {
                        before.push(status);
                    }
                }
            }
        };
        let head = |method: &str, extra: &str, cl: usize| {
            format!(
                "{method} sip:srs@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{}\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:srs@127.0.0.1>\r\nCall-ID: evil-{}\r\nCSeq: 1 {method}\r\n{extra}Content-Length: {cl}\r\n\r\n",
                rand_u32(), rand_u32()
            )
        };
        // Wrong Content-Length (longer than the body) → 400.
        answers.push((
            "content-length",
            ask(format!("{}short", head("INVITE", "", 500)).into_bytes()).await,
        ));
        // Unknown dialog → 481.
        answers.push((
            "unknown dialog",
            ask(head("BYE", "", 0)
                .replace("To: <sip:srs@127.0.0.1>", "To: <sip:srs@127.0.0.1>;tag=zz")
                .into_bytes())
            .await,
        ));
        // XML with a DTD, an id like ../../x: the call is accepted, the document stored as is.
        let evil_md = "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY a \"aaaa\">]><recording xmlns=\"urn:ietf:params:xml:ns:recording:1\"><session session_id=\"../../x\"/></recording>";
        let sdp = "v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\na=sendonly\r\n";
        let body = format!("--b\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n--b\r\nContent-Type: application/rs-metadata+xml\r\n\r\n{evil_md}\r\n--b--\r\n");
        answers.push((
            "dtd metadata",
            ask(format!(
                "{}{body}",
                head(
                    "INVITE",
                    "Content-Type: multipart/mixed;boundary=b\r\n",
                    body.len()
                )
            )
            .into_bytes())
            .await,
        ));
        // Metadata nested 2,000 deep: the call is still answered (the document is refused by
        // the parser's depth limit and kept as received).
        let deep_md = format!("{}{}", "<a>".repeat(2_000), "</a>".repeat(2_000));
        let body = format!("--b\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n--b\r\nContent-Type: application/rs-metadata+xml\r\n\r\n{deep_md}\r\n--b--\r\n");
        answers.push((
            "deep metadata",
            ask(format!(
                "{}{body}",
                head(
                    "INVITE",
                    "Content-Type: multipart/mixed;boundary=b\r\n",
                    body.len()
                )
            )
            .into_bytes())
            .await,
        ));
        // Each of these gets a 4xx or nothing, and the server still answers the OPTIONS sent
        // right after it.
        let cut = head("OPTIONS", "", 0);
        let mut many = head("OPTIONS", "", 0);
        many.truncate(many.len() - "Content-Length: 0\r\n\r\n".len());
        for i in 0..10_000 {
            many.push_str(&format!("X-{i}: y\r\n"));
        }
        many.push_str("Content-Length: 0\r\n\r\n");
        let mut binary = head("OPTIONS", "X-Bin: \u{1}\r\n", 0).into_bytes();
        let at = binary.iter().position(|&b| b == 1).unwrap();
        binary.splice(at..=at, [0xff, 0xfe, 0xc3]);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            // A request cut off in the middle of its headers.
            ("truncated", cut.as_bytes()[..cut.len() / 2].to_vec()),
            // Pure garbage, starting with bytes that are not UTF-8.
            ("garbage", b"\xff\xfe\x00garbage".to_vec()),
            // A 60 KB datagram of nothing SIP.
            ("60 KB", vec![b'A'; 60_000]),
            // 10,000 headers over UDP.
            (
                "10,000 headers",
                many.as_bytes()[..many.len().min(65_000)].to_vec(),
            ),
            // A well-framed request with a header value that is not UTF-8.
            ("non-UTF-8 header", binary),
        ];
        let expected_400 = ["10,000 headers", "non-UTF-8 header"];
        let mut outcomes = Vec::new();
        for (name, bytes) in cases {
            let got = ask_then_probe(bytes, head("OPTIONS", "", 0)).await;
            outcomes.push((name, got, expected_400.contains(&name)));
        }
        // TCP: headers that never end (over 64 KiB) → the connection is closed.
        let mut c = tokio::net::TcpStream::connect(tcp).await.unwrap();
        let junk = format!(
            "OPTIONS sip:srs@127.0.0.1 SIP/2.0\r\n{}",
            "X-Junk: 0123456789abcdef\r\n".repeat(4000)
        );
        let _ = c.write_all(junk.as_bytes()).await;
        let mut buf = [0u8; 64];
        let closed = matches!(
            tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        );
        (answers, outcomes, closed)
    });

    src.stream(Duration::from_secs(1)).await.unwrap();
    // RTP from a stranger (another address, same SSRC and payload type) to both of the
    // call's ports, after the SRC's own packets latched them: dropped and counted.
    let stranger = tokio::net::UdpSocket::bind("127.0.0.2:0").await.unwrap();
    for leg in &src.legs {
        for seq in 0..25u16 {
            let mut pkt = [0u8; 172];
            let header = siprec_rtp::RtpHeader {
                marker: false,
                payload_type: leg.pt,
                sequence: 40_000 + seq,
                timestamp: 1_000_000 + u32::from(seq) * 160,
                ssrc: 0x0bad_cafe,
            };
            let n = siprec_rtp::write(&header, &[0x55; 160], &mut pkt).unwrap();
            stranger
                .send_to(&pkt[..n], leg.dest.unwrap())
                .await
                .unwrap();
        }
    }
    src.stream(Duration::from_secs(1)).await.unwrap();
    let (answers, outcomes, tcp_closed) = attacker.await.unwrap();
    src.hang_up().await;

    let status = |name: &str| -> String {
        let a = answers.iter().find(|(n, _)| *n == name).unwrap();
        let text = a.1.clone().unwrap_or_else(|| panic!("{name}: no answer"));
        // Skip a 100 Trying if that is what came first.
        text.lines().next().unwrap().to_string()
    };
    assert!(
        status("content-length").starts_with("SIP/2.0 400"),
        "{}",
        status("content-length")
    );
    assert!(
        status("unknown dialog").starts_with("SIP/2.0 481"),
        "{}",
        status("unknown dialog")
    );
    // Both calls are accepted; their documents are refused by the parser and kept as received
    // (checked in recording.json below).
    assert!(
        status("deep metadata").starts_with("SIP/2.0 200"),
        "{}",
        status("deep metadata")
    );
    assert!(
        status("dtd metadata").starts_with("SIP/2.0 200"),
        "{}",
        status("dtd metadata")
    );
    for (name, got, want_400) in &outcomes {
        eprintln!("{name}: {got:?}");
        let (probe, before) = got
            .as_ref()
            .unwrap_or_else(|| panic!("after {name}: the server stopped answering"));
        assert!(probe.starts_with("SIP/2.0 200"), "after {name}: {probe}");
        assert!(
            before.iter().all(|s| s.starts_with("SIP/2.0 4")),
            "{name}: 4xx or nothing, got {before:?}"
        );
        if *want_400 {
            // Every header a response needs is there: the problem is named in a 400.
            assert_eq!(before.len(), 1, "{name}: {before:?}");
            assert!(before[0].starts_with("SIP/2.0 400"), "{name}: {before:?}");
        }
    }
    assert!(tcp_closed, "oversized TCP headers close the connection");

    // The victim call is intact; the DTD call (never BYE'd) is not needed for this check.
    let rec = loop {
        let r = interop_tests::next_recording(&mut published).await;
        if r.manifest.recording_id.as_deref() == Some("victim") {
            break r;
        }
    };
    for s in &rec.manifest.streams {
        assert_eq!(s.packets_received, 100, "{s:?}");
        assert_eq!(s.packets_lost, 0);
        assert_eq!(
            s.packets_foreign, 25,
            "the stranger's packets are dropped: {s:?}"
        );
        assert_eq!(s.ssrc_changes, 0, "{s:?}");
    }
    let (_, samples) = read_wav(&srs, &rec.folder).await.unwrap();
    assert!((samples.len() as f64 / 2.0 / 8000.0 - 2.0).abs() < 0.25);
    srs.shutdown().await.unwrap();
    // The DTD session was ended by the shutdown: its key cannot leave its folder.
    let root = dir.path().join("recordings");
    for entry in walk(&root) {
        assert!(entry.starts_with(&root), "{entry:?}");
        assert!(!entry.to_string_lossy().contains("/../"), "{entry:?}");
    }
    assert!(!dir.path().join("x").exists());
    // The DTD and the deeply nested documents are listed as metadata errors of their calls.
    let errors: Vec<String> = walk(&root)
        .iter()
        .filter(|p| p.ends_with("recording.json"))
        .flat_map(|p| {
            let m: siprec_storage::Manifest =
                serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
            m.metadata_errors
        })
        .collect();
    for want in ["DOCTYPE / DTD", "nests elements deeper"] {
        assert!(
            errors.iter().any(|e| e.contains(want)),
            "{want} in {errors:?}"
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            }
            out.push(p);
        }
    }
    out
}

fn rand_u32() -> u32 {
    rand::random()
}

/// Without latching, RTP is taken only from the address the SDP offer named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_latching_rtp_comes_only_from_the_sdp_address() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = srs_server::Config {
        listen: vec!["udp:127.0.0.1:0".into()],
        rtp_ports: "31300-31399".into(),
        storage: dir.path().join("recordings").display().to_string(),
        spool: dir.path().join("spool"),
        rtp_latching: false,
        ..srs_server::Config::default()
    };
    let srs = srs_server::Server::start(cfg.validate().unwrap())
        .await
        .unwrap();
    let mut published = srs.subscribe();
    let mut src = TestSrc::new(
        TestTransport::Udp,
        addr(&srs, Transport::Udp),
        (0, 440.0),
        (0, 880.0),
    )
    .await
    .unwrap();
    src.start(Some("no-latching")).await;
    // The stranger (127.0.0.2) sends first: without latching it cannot take the stream.
    let stranger = tokio::net::UdpSocket::bind("127.0.0.2:0").await.unwrap();
    let dest = src.legs[0].dest.unwrap();
    for seq in 0..10u16 {
        let mut pkt = [0u8; 172];
        let h = siprec_rtp::RtpHeader {
            marker: false,
            payload_type: 0,
            sequence: seq,
            timestamp: u32::from(seq) * 160,
            ssrc: 7,
        };
        let n = siprec_rtp::write(&h, &[0x55; 160], &mut pkt).unwrap();
        stranger.send_to(&pkt[..n], dest).await.unwrap();
    }
    src.stream(Duration::from_millis(500)).await.unwrap();
    src.hang_up().await;
    let rec = interop_tests::next_recording(&mut published).await;
    let s = &rec.manifest.streams[0];
    assert_eq!((s.packets_received, s.packets_foreign), (25, 10), "{s:?}");
    assert_eq!(rec.manifest.streams[1].packets_foreign, 0);
    srs.shutdown().await.unwrap();
}

/// `sip_allow` on a running server: a UDP request from outside gets `403` with the reason; a
/// TCP connection from outside is closed at accept, before anything is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_outside_sip_allow_get_403_over_udp_and_a_closed_connection_over_tcp() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let cfg = srs_server::Config {
        listen: vec!["udp:127.0.0.1:0".into(), "tcp:127.0.0.1:0".into()],
        rtp_ports: "31900-31999".into(),
        storage: dir.path().join("recordings").display().to_string(),
        spool: dir.path().join("spool"),
        sip_allow: vec!["192.0.2.0/24".into()],
        ..srs_server::Config::default()
    };
    let srs = srs_server::Server::start(cfg.validate().unwrap())
        .await
        .unwrap();
    let options = |transport: &str| {
        format!(
            "OPTIONS sip:srs@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/{transport} 127.0.0.1:9;branch=z9hG4bK{}\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:srs@127.0.0.1>\r\nCall-ID: allow-{}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
            rand_u32(),
            rand_u32()
        )
    };
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(options("UDP").as_bytes(), addr(&srs, Transport::Udp))
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(text.starts_with("SIP/2.0 403"), "{text}");

    let mut c = tokio::net::TcpStream::connect(addr(&srs, Transport::Tcp))
        .await
        .unwrap();
    let _ = c.write_all(options("TCP").as_bytes()).await;
    let mut b = [0u8; 64];
    let got = tokio::time::timeout(Duration::from_secs(5), c.read(&mut b)).await;
    assert!(
        matches!(got, Ok(Ok(0)) | Ok(Err(_))),
        "closed without an answer: {got:?}"
    );
    srs.shutdown().await.unwrap();
}
