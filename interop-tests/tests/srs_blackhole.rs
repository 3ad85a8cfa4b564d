//! One SRC's TCP peer turns into a blackhole while srs-server must reach it; every other call
//! keeps getting `200 OK` in its usual time (the SIP loop hands sends to per-peer queues and a
//! TCP connect gives up after `CONNECT_TIMEOUT`).
//!
//! The blackhole, on loopback: the SRC's TCP connection comes from port P, which is also a
//! listener with a backlog of 0 whose one slot is taken and that never accepts (both sockets
//! use SO_REUSEPORT). The SRC records a session and closes its connection; when srs-server
//! ends the session for lack of media it must connect to P to send its BYE, and the kernel
//! drops its SYNs. Before the send queues, that connect ran on the SIP loop and held up every
//! other call for as long as the kernel retried.

use std::time::{Duration, Instant};

use interop_tests::{TestSrc, TestTransport};
use siprec_sip::transaction::Transport;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackholed_tcp_src_does_not_delay_other_calls() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = srs_server::Config {
        listen: vec!["udp:127.0.0.1:0".into(), "tcp:127.0.0.1:0".into()],
        rtp_ports: "35000-35199".into(),
        storage: dir.path().join("recordings").display().to_string(),
        spool: dir.path().join("spool"),
        media_timeout: 1,
        ..srs_server::Config::default()
    };
    let server = srs_server::Server::start(cfg.validate().unwrap())
        .await
        .unwrap();
    let mut published = server.subscribe();
    let addr = |t: Transport| {
        server
            .local_addrs()
            .iter()
            .find(|l| l.transport == t)
            .unwrap()
            .addr
    };

    // The hole: a listener on P with its one backlog slot taken.
    let hole = tokio::net::TcpSocket::new_v4().unwrap();
    hole.set_reuseport(true).unwrap();
    hole.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let p = hole.local_addr().unwrap();
    let hole = hole.listen(0).unwrap();
    let _slot = std::net::TcpStream::connect(p).unwrap();
    // The SRC's connection from P.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_reuseport(true).unwrap();
    sock.bind(p).unwrap();
    let stream = sock.connect(addr(Transport::Tcp)).await.unwrap();
    let mut doomed = TestSrc::from_tcp(stream, (0, 440.0), (0, 880.0))
        .await
        .unwrap();
    doomed.start(Some("blackholed")).await;
    drop(doomed);

    // The session times out after 1 s without media; srs-server's BYE then has to connect to
    // P. Meanwhile, and for the next seconds, other calls come and go over UDP.
    let udp = addr(Transport::Udp);
    let t0 = Instant::now();
    let mut worst = Duration::ZERO;
    let mut calls = 0;
    while t0.elapsed() < Duration::from_secs(4) {
        let mut src = TestSrc::new(TestTransport::Udp, udp, (0, 440.0), (0, 880.0))
            .await
            .unwrap();
        let t = Instant::now();
        src.start(None).await;
        worst = worst.max(t.elapsed());
        src.hang_up().await;
        calls += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The blackholed session was ended all the same (its BYE failed, the recording is kept).
    let mut keys = Vec::new();
    for _ in 0..=calls {
        keys.push(
            interop_tests::next_recording(&mut published)
                .await
                .manifest
                .recording_key,
        );
    }
    assert!(keys.contains(&"blackholed".to_string()), "{keys:?}");
    assert!(calls >= 10, "only {calls} calls in 4 s");
    assert!(
        worst < Duration::from_millis(500),
        "an INVITE waited {worst:?} for its 200 while srs-server's BYE was stuck"
    );
    drop(hole);
    server.shutdown().await.unwrap();
}
