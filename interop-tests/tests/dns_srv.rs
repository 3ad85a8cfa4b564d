//! RFC 3263 resolution against a real DNS server (dnsmasq on loopback): SRV priority and
//! weight, NAPTR, the A/AAAA fallback, explicit ports and IP literals; then failover end to
//! end: the first SRV target is down, the second is a running srs-server that records (with
//! the test SRC and with siprec-client's `Recorder`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use interop_tests::audio::{deinterleave, tone_power};
use interop_tests::dns::{Dnsmasq, Record};
use interop_tests::{read_wav, start_srs, TestSrc, TestTransport};
use rand::rngs::StdRng;
use rand::SeedableRng;
use siprec_client::resolve::{Destination, ResolveError, Resolver, ResolverConfig, Target};
use siprec_sip::transaction::Transport;

fn resolver(dns: &Dnsmasq) -> Resolver {
    Resolver::new(ResolverConfig {
        nameserver: Some(dns.addr()),
        ..ResolverConfig::default()
    })
    .unwrap()
}

fn ip(s: &str) -> std::net::IpAddr {
    s.parse().unwrap()
}

fn target(transport: Transport, addr: &str, server_name: &str) -> Target {
    Target {
        transport,
        addr: addr.parse().unwrap(),
        server_name: server_name.into(),
    }
}

/// The zone of the resolution tests.
fn records() -> Vec<Record> {
    vec![
        // srs.test: UDP and TLS SRV, two priorities each; no A record of its own.
        Record::srv("_sip._udp.srs.test", "b.srs.test", 5080, 20, 10),
        Record::srv("_sip._udp.srs.test", "a.srs.test", 5070, 10, 10),
        Record::srv("_sips._tcp.srs.test", "b.srs.test", 5081, 5, 0),
        Record::srv("_sips._tcp.srs.test", "a.srs.test", 5071, 1, 0),
        Record::host("a.srs.test", ip("127.0.0.2")),
        Record::host("b.srs.test", ip("127.0.0.3")),
        Record::host("b.srs.test", ip("::1")),
        // tcp-only.test: only _sip._tcp, found after _sip._udp is not.
        Record::srv("_sip._tcp.tcp-only.test", "a.srs.test", 5090, 0, 0),
        // weights.test: one priority, weights 90 and 10.
        Record::srv("_sip._udp.weights.test", "a.srs.test", 6000, 1, 90),
        Record::srv("_sip._udp.weights.test", "b.srs.test", 6001, 1, 10),
        // naptr.test: NAPTR prefers TCP (order 10) over UDP (order 20).
        Record::naptr("naptr.test", 20, 10, "SIP+D2U", "_sip._udp.naptr.test"),
        Record::naptr("naptr.test", 10, 10, "SIP+D2T", "_sip._tcp.naptr.test"),
        Record::srv("_sip._udp.naptr.test", "a.srs.test", 7000, 1, 1),
        Record::srv("_sip._tcp.naptr.test", "b.srs.test", 7001, 1, 1),
        Record::srv("_sip._tcp.naptr.test", "a.srs.test", 7002, 2, 1),
        // plain.test: an A record and nothing else.
        Record::host("plain.test", ip("127.0.0.4")),
    ]
}

#[tokio::test]
async fn srv_targets_come_in_priority_order_with_the_uri_host_as_server_name() {
    let dns = Dnsmasq::start(&records()).await.unwrap();
    let r = resolver(&dns);

    // sip:srs.test → no NAPTR → _sip._udp: priority 10 (a) before 20 (b, IPv4 then IPv6).
    let got = r
        .resolve(&Destination::new(false, "srs.test", None, None))
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![
            target(Transport::Udp, "127.0.0.2:5070", "srs.test"),
            target(Transport::Udp, "127.0.0.3:5080", "srs.test"),
            target(Transport::Udp, "[::1]:5080", "srs.test"),
        ]
    );

    // sips:srs.test → _sips._tcp, TLS.
    let got = r
        .resolve(&Destination::new(true, "srs.test", None, None))
        .await
        .unwrap();
    assert_eq!(got[0], target(Transport::Tls, "127.0.0.2:5071", "srs.test"));
    assert_eq!(got[1], target(Transport::Tls, "127.0.0.3:5081", "srs.test"));

    // sip:srs.test;transport=tls → _sips._tcp too.
    let got = r
        .resolve(&Destination::new(
            false,
            "srs.test",
            None,
            Some(Transport::Tls),
        ))
        .await
        .unwrap();
    assert_eq!(got[0], target(Transport::Tls, "127.0.0.2:5071", "srs.test"));

    // sip:tcp-only.test → _sip._udp has nothing → _sip._tcp.
    let got = r
        .resolve(&Destination::new(false, "tcp-only.test", None, None))
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![target(Transport::Tcp, "127.0.0.2:5090", "tcp-only.test")]
    );

    // sip:srs.test;transport=tcp → only _sip._tcp, which srs.test lacks, then A/AAAA of
    // srs.test, which has none either: a clear "not found".
    let e = r
        .resolve(&Destination::new(
            false,
            "srs.test",
            None,
            Some(Transport::Tcp),
        ))
        .await
        .unwrap_err();
    assert!(matches!(e, ResolveError::NotFound { .. }), "{e}");
    assert!(e.to_string().contains("srs.test"), "{e}");
    assert!(e.to_string().contains("SRV _sip._tcp.srs.test"), "{e}");
    dns.stop().await;
}

#[tokio::test]
async fn naptr_order_decides_the_transport() {
    let dns = Dnsmasq::start(&records()).await.unwrap();
    let got = resolver(&dns)
        .resolve(&Destination::new(false, "naptr.test", None, None))
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![
            target(Transport::Tcp, "127.0.0.3:7001", "naptr.test"),
            target(Transport::Tcp, "[::1]:7001", "naptr.test"),
            target(Transport::Tcp, "127.0.0.2:7002", "naptr.test"),
            target(Transport::Udp, "127.0.0.2:7000", "naptr.test"),
        ]
    );
    // sips: keeps only SIPS+D2T, which naptr.test lacks: _sips._tcp, then A/AAAA: nothing.
    let e = resolver(&dns)
        .resolve(&Destination::new(true, "naptr.test", None, None))
        .await
        .unwrap_err();
    assert!(matches!(e, ResolveError::NotFound { .. }), "{e}");
}

#[tokio::test]
async fn srv_weights_share_the_first_place() {
    let dns = Dnsmasq::start(&records()).await.unwrap();
    let r = resolver(&dns);
    let d = Destination::new(false, "weights.test", None, None);
    let mut rng = StdRng::seed_from_u64(3263);
    let mut first: HashMap<u16, u32> = HashMap::new();
    let n = 400;
    for _ in 0..n {
        let got = r.resolve_with_rng(&d, &mut rng).await.unwrap();
        assert_eq!(got.len(), 3, "{got:?}");
        *first.entry(got[0].addr.port()).or_default() += 1;
    }
    let heavy = first.get(&6000).copied().unwrap_or(0);
    // Expected 90% of 400 = 360; the seed is fixed, the bounds leave room for other seeds.
    assert!(
        (320..=395).contains(&heavy),
        "weight 90 first {heavy} of {n}"
    );
    // And with the OS random source the light target still comes first sometimes.
    let mut light_first = 0;
    for _ in 0..200 {
        if r.resolve(&d).await.unwrap()[0].addr.port() == 6001 {
            light_first += 1;
        }
    }
    assert!(
        (1..120).contains(&light_first),
        "weight 10 first {light_first} of 200"
    );
}

#[tokio::test]
async fn without_srv_the_a_record_on_the_default_port() {
    let dns = Dnsmasq::start(&records()).await.unwrap();
    let r = resolver(&dns);
    let cases = [
        (false, None, Transport::Udp, "127.0.0.4:5060"),
        (true, None, Transport::Tls, "127.0.0.4:5061"),
        (
            false,
            Some(Transport::Tcp),
            Transport::Tcp,
            "127.0.0.4:5060",
        ),
        (
            false,
            Some(Transport::Tls),
            Transport::Tls,
            "127.0.0.4:5061",
        ),
    ];
    for (secure, t, want_t, want) in cases {
        let got = r
            .resolve(&Destination::new(secure, "plain.test", None, t))
            .await
            .unwrap();
        assert_eq!(
            got,
            vec![target(want_t, want, "plain.test")],
            "{secure} {t:?}"
        );
    }
    let e = r
        .resolve(&Destination::new(false, "missing.test", None, None))
        .await
        .unwrap_err();
    assert!(matches!(e, ResolveError::NotFound { .. }), "{e}");
    assert!(e.to_string().contains("missing.test"), "{e}");
}

#[tokio::test]
async fn explicit_port_and_ip_literal_skip_srv() {
    let dns = Dnsmasq::start(&records()).await.unwrap();
    let r = resolver(&dns);
    // a.srs.test:5999 → A only, SRV of srs.test ignored.
    let got = r
        .resolve(&Destination::new(false, "a.srs.test", Some(5999), None))
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![target(Transport::Udp, "127.0.0.2:5999", "a.srs.test")]
    );
    let got = r
        .resolve(&Destination::new(true, "b.srs.test", Some(6061), None))
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![
            target(Transport::Tls, "127.0.0.3:6061", "b.srs.test"),
            target(Transport::Tls, "[::1]:6061", "b.srs.test"),
        ]
    );
    let got = r
        .resolve(&Destination::new(
            false,
            "127.0.0.9",
            Some(5062),
            Some(Transport::Tcp),
        ))
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![target(Transport::Tcp, "127.0.0.9:5062", "127.0.0.9")]
    );
    let got = r
        .resolve(&Destination::new(false, "[::1]", None, None))
        .await
        .unwrap();
    assert_eq!(got, vec![target(Transport::Udp, "[::1]:5060", "::1")]);
}

/// An srs-server and a zone where `_sip._tcp.rec.test` has two SRV targets on its TCP port:
/// `dead.rec.test` (priority 10, 127.0.0.2, where nothing can listen: the server is bound to
/// 127.0.0.1 only) and `live.rec.test` (priority 20, the server). Returns the server, its TCP
/// address and the DNS server.
async fn srs_behind_a_dead_first_target(
    dir: &std::path::Path,
    rtp_base: u16,
) -> (srs_server::Server, SocketAddr, Dnsmasq) {
    let server = start_srs(dir, rtp_base).await.unwrap();
    let tcp = server
        .local_addrs()
        .iter()
        .find(|l| l.transport == Transport::Tcp)
        .unwrap()
        .addr;
    let dns = Dnsmasq::start(&[
        Record::srv("_sip._tcp.rec.test", "live.rec.test", tcp.port(), 20, 0),
        Record::srv("_sip._tcp.rec.test", "dead.rec.test", tcp.port(), 10, 0),
        Record::host("dead.rec.test", ip("127.0.0.2")),
        Record::host("live.rec.test", ip("127.0.0.1")),
    ])
    .await
    .unwrap();
    (server, tcp, dns)
}

/// The first SRV target (priority 10) is an address where nothing listens, the second
/// (priority 20) a running srs-server: the resolver orders them so, the first attempt is
/// refused, and the call is recorded on the second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_srv_target_down_the_second_records() {
    let dir = tempfile::tempdir().unwrap();
    let (server, tcp, dns) = srs_behind_a_dead_first_target(dir.path(), 35000).await;
    let mut published = server.subscribe();
    let targets = resolver(&dns)
        .resolve(&Destination::new(false, "rec.test", None, None))
        .await
        .unwrap();
    let dead: SocketAddr = format!("127.0.0.2:{}", tcp.port()).parse().unwrap();
    assert_eq!(
        targets,
        vec![
            Target {
                transport: Transport::Tcp,
                addr: dead,
                server_name: "rec.test".into()
            },
            Target {
                transport: Transport::Tcp,
                addr: tcp,
                server_name: "rec.test".into()
            },
        ]
    );

    // Fail over in the resolver's order.
    let mut failures = Vec::new();
    let mut src = None;
    for t in &targets {
        match TestSrc::new(TestTransport::Tcp, t.addr, (0, 440.0), (8, 880.0)).await {
            Ok(s) => {
                src = Some(s);
                break;
            }
            Err(e) => failures.push(format!("{t}: {e}")),
        }
    }
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].contains("127.0.0.2"), "{failures:?}");
    let mut src = src.expect("the second target answers");
    let rec_id = "REC-dns-failover";
    let offer = src.offer("sendonly");
    let md = src.metadata(Some(rec_id));
    let resp = src.invite(&offer, Some(&md)).await.unwrap();
    assert_eq!(resp.status_code.code(), 200, "{resp}");
    let answered = Instant::now();
    src.stream(Duration::from_millis(1500)).await.unwrap();
    let resp = src.send_in_dialog("BYE", None, None).await.unwrap();
    assert_eq!(resp.status_code.code(), 200);
    let session_len = answered.elapsed().as_secs_f64();

    let rec = tokio::time::timeout(Duration::from_secs(15), published.recv())
        .await
        .expect("recording published in time")
        .unwrap();
    assert_eq!(rec.manifest.recording_key, rec_id);
    assert_eq!(rec.manifest.call_id, src.call_id);
    let (spec, samples) = read_wav(&server, &rec.folder).await.unwrap();
    assert_eq!(spec.channels, 2);
    let (left, right) = deinterleave(&samples);
    let secs = left.len() as f64 / 8000.0;
    assert!(
        (secs - session_len).abs() < 0.05,
        "WAV {secs:.3} s vs session {session_len:.3} s"
    );
    let mid = |ch: &[i16]| ch[1600.min(ch.len())..10_400.min(ch.len())].to_vec();
    let (l, r) = (mid(&left), mid(&right));
    assert!(tone_power(&l, 8000, 440.0) > 100.0 * tone_power(&l, 8000, 880.0));
    assert!(tone_power(&r, 8000, 880.0) > 100.0 * tone_power(&r, 8000, 440.0));
    dns.stop().await;
    server.shutdown().await.unwrap();
}

/// The same failover through siprec-client's `Recorder`, as the node would do it: the
/// server string is a bare domain name, the client finds two SRV targets on the loopback
/// DNS server, the first (priority 10) refuses the connection, and the call is recorded by
/// the srs-server behind the second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorder_fails_over_to_the_second_srv_target() {
    use siprec_client::{CallContext, ClientConfig, Recorder, Reply, ToneSource};

    let dir = tempfile::tempdir().unwrap();
    let (server, _, dns) = srs_behind_a_dead_first_target(dir.path(), 35600).await;
    let mut published = server.subscribe();

    let config = ClientConfig {
        dns_server: Some(dns.addr()),
        ..ClientConfig::default()
    };
    let rec = Recorder::new(
        config,
        CallContext::example(),
        Box::new(ToneSource::new(440.0, 8000.0)),
        Box::new(ToneSource::new(880.0, 8000.0)),
    )
    .await
    .unwrap();
    let rec_id = "REC-recorder-dns-failover";
    let out = rec
        .start("sip:rec.test;transport=tcp", Some(rec_id))
        .await
        .unwrap();
    assert_eq!(out.reply, Reply::Started, "{out:?}");
    assert_eq!(out.srs.len(), 1, "{out:?}");
    assert_eq!(out.srs[0].status, Some(200), "{out:?}");
    let answered = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let out = rec.stop().await.unwrap();
    assert_eq!(out.reply, Reply::Stopped, "{out:?}");
    let session_len = answered.elapsed().as_secs_f64();
    rec.close().await.unwrap();

    let got = tokio::time::timeout(Duration::from_secs(15), published.recv())
        .await
        .expect("recording published in time")
        .unwrap();
    assert_eq!(got.manifest.recording_key, rec_id);
    assert_eq!(got.manifest.ended_by, "bye-from-src");
    let (_, samples) = read_wav(&server, &got.folder).await.unwrap();
    let (left, right) = deinterleave(&samples);
    let secs = left.len() as f64 / 8000.0;
    assert!(
        (secs - session_len).abs() < 0.2,
        "WAV {secs:.3} s vs session {session_len:.3} s"
    );
    let mid = |ch: &[i16]| ch[1600.min(ch.len())..9_600.min(ch.len())].to_vec();
    let (l, r) = (mid(&left), mid(&right));
    assert!(tone_power(&l, 8000, 440.0) > 100.0 * tone_power(&l, 8000, 880.0));
    assert!(tone_power(&r, 8000, 880.0) > 100.0 * tone_power(&r, 8000, 440.0));
    dns.stop().await;
    server.shutdown().await.unwrap();
}
