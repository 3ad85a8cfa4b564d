use super::*;

#[tokio::test]
async fn close_stops_every_task_and_frees_the_ports() {
    let listen: Vec<ListenAddr> = vec![
        "udp:127.0.0.1:0".parse().unwrap(),
        "tcp:127.0.0.1:0".parse().unwrap(),
    ];
    let (t, mut rx) = SipTransports::bind(&listen, TlsConfig::default())
        .await
        .unwrap();
    let tcp = t.local_addrs()[1].addr;
    // An accepted connection has its own tasks too.
    let _client = TcpStream::connect(tcp).await.unwrap();
    t.close();
    drop(t);
    // Every task held a sender of the inbound channel: it ends when all are gone.
    assert!(rx.recv().await.is_none());
    assert!(TcpStream::connect(tcp).await.is_err(), "listener closed");
}

/// Reads until the peer closes (true) or 2 s pass (false).
async fn closed_by_peer(c: &mut TcpStream) -> bool {
    let mut b = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(2), c.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test]
async fn connections_from_outside_the_allowlist_and_over_the_limit_are_closed_at_accept() {
    let listen = ["tcp:127.0.0.1:0".parse().unwrap()];
    let only_elsewhere = AcceptConfig {
        allow: vec!["192.0.2.0/24".parse().unwrap()],
        ..AcceptConfig::default()
    };
    let (t, mut rx) = SipTransports::bind_with(&listen, TlsConfig::default(), only_elsewhere)
        .await
        .unwrap();
    let addr = t.local_addrs()[0].addr;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let _ = c.write_all(OPTIONS).await;
    assert!(closed_by_peer(&mut c).await, "closed at accept");
    assert_eq!(t.refused_connections().not_allowed, 1);
    assert!(rx.try_recv().is_err(), "nothing was read from it");
    t.close();

    let two = AcceptConfig {
        allow: vec!["127.0.0.0/8".parse().unwrap()],
        max_connections: 2,
    };
    let (t, mut rx) = SipTransports::bind_with(&listen, TlsConfig::default(), two)
        .await
        .unwrap();
    let addr = t.local_addrs()[0].addr;
    let mut a = TcpStream::connect(addr).await.unwrap();
    let mut b = TcpStream::connect(addr).await.unwrap();
    a.write_all(OPTIONS).await.unwrap();
    b.write_all(OPTIONS).await.unwrap();
    // Both are read (so both were accepted and hold their slots) ...
    rx.recv().await.unwrap();
    rx.recv().await.unwrap();
    // ... and the third is closed at once.
    let mut c = TcpStream::connect(addr).await.unwrap();
    assert!(closed_by_peer(&mut c).await, "over the limit");
    assert_eq!(t.refused_connections().over_limit, 1);
    // A closed connection gives its slot back.
    drop(a);
    let mut d = loop {
        let mut d = TcpStream::connect(addr).await.unwrap();
        d.write_all(OPTIONS).await.unwrap();
        match tokio::time::timeout(Duration::from_secs(2), rx.recv()).await {
            Ok(Some(_)) => break d,
            // The reader of `a` may not have seen its end yet: this one was refused.
            _ => assert!(closed_by_peer(&mut d).await),
        }
    };
    d.write_all(OPTIONS).await.unwrap();
    assert!(rx.recv().await.is_some());
    drop(b);
    t.close();
}

#[test]
fn listen_addr_parses_and_prints() {
    for s in [
        "udp:127.0.0.1:5060",
        "tcp:0.0.0.0:5070",
        "udp:[::1]:5060",
        "tls:127.0.0.1:5061",
    ] {
        let l: ListenAddr = s.parse().unwrap();
        assert_eq!(l.to_string(), s);
    }
    for bad in [
        "127.0.0.1:5060",
        "sctp:1.2.3.4:5",
        "udp:host:5060",
        "udp:1.2.3.4",
    ] {
        assert!(bad.parse::<ListenAddr>().is_err(), "{bad}");
    }
}

const OPTIONS: &[u8] = b"OPTIONS sip:srs@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:srs@127.0.0.1>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";

#[tokio::test]
async fn tcp_frames_split_messages_and_replies_on_same_connection() {
    let (t, mut rx) =
        SipTransports::bind(&["tcp:127.0.0.1:0".parse().unwrap()], TlsConfig::default())
            .await
            .unwrap();
    let addr = t.local_addrs()[0].addr;
    let mut c = TcpStream::connect(addr).await.unwrap();
    // Two messages, written in awkward chunks.
    let mut wire = OPTIONS.to_vec();
    wire.extend_from_slice(OPTIONS);
    for chunk in wire.chunks(7) {
        c.write_all(chunk).await.unwrap();
    }
    let a = rx.recv().await.unwrap();
    let b = rx.recv().await.unwrap();
    assert_eq!(a.bytes, OPTIONS);
    assert_eq!(b.bytes, OPTIONS);
    t.send(Transmit {
        peer: a.peer,
        payload: b"SIP/2.0 200 OK\r\n\r\n".to_vec(),
    })
    .await
    .unwrap();
    let mut got = [0u8; 18];
    c.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"SIP/2.0 200 OK\r\n\r\n");
}

#[tokio::test]
async fn udp_round_trip() {
    let (t, mut rx) =
        SipTransports::bind(&["udp:127.0.0.1:0".parse().unwrap()], TlsConfig::default())
            .await
            .unwrap();
    let addr = t.local_addrs()[0].addr;
    let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    c.send_to(OPTIONS, addr).await.unwrap();
    let m = rx.recv().await.unwrap();
    assert_eq!(m.bytes, OPTIONS);
    assert_eq!(m.peer.addr, c.local_addr().unwrap());
    t.send(Transmit {
        peer: m.peer,
        payload: b"pong".to_vec(),
    })
    .await
    .unwrap();
    let mut buf = [0u8; 16];
    let (n, _) = c.recv_from(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"pong");
}

/// A CA and a server certificate for `localhost` and 127.0.0.1 signed by it, made fresh.
struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn pki(name: &str) -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    Pki {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

async fn tls_server(p: &Pki) -> (SipTransports, mpsc::Receiver<Inbound>, SocketAddr) {
    let tls = TlsConfig {
        server: Some(TlsServer::from_pem(p.cert_pem.as_bytes(), p.key_pem.as_bytes()).unwrap()),
        client: None,
    };
    let (t, rx) = SipTransports::bind(&["tls:127.0.0.1:0".parse().unwrap()], tls)
        .await
        .unwrap();
    let l = t.local_addrs()[0];
    assert_eq!(l.transport, Transport::Tls);
    (t, rx, l.addr)
}

async fn tls_client(ca_pem: &str) -> (SipTransports, mpsc::Receiver<Inbound>) {
    let tls = TlsConfig {
        server: None,
        client: Some(TlsClient::from_ca_pem(ca_pem.as_bytes()).unwrap()),
    };
    SipTransports::bind(&[], tls).await.unwrap()
}

fn tls_to(addr: SocketAddr, payload: &[u8]) -> Transmit {
    Transmit {
        peer: Peer {
            transport: Transport::Tls,
            addr,
        },
        payload: payload.to_vec(),
    }
}

#[tokio::test]
async fn tls_round_trip_by_name_reuses_the_connection_both_ways() {
    let p = pki("test CA");
    let (server, mut srx, addr) = tls_server(&p).await;
    let (client, mut crx) = tls_client(&p.ca_pem).await;
    let local = client.connect(addr, "localhost").await.unwrap();
    assert_eq!(local.ip(), addr.ip());
    assert_eq!(client.connect(addr, "localhost").await.unwrap(), local);

    client.send(tls_to(addr, OPTIONS)).await.unwrap();
    let got = srx.recv().await.unwrap();
    assert_eq!(got.bytes, OPTIONS);
    assert_eq!(got.peer.transport, Transport::Tls);
    assert_eq!(
        got.peer.addr, local,
        "one connection, the one connect() opened"
    );
    assert_eq!(got.local, addr);

    // The reply goes back over the same connection.
    let reply = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n";
    server.send(tls_to(got.peer.addr, reply)).await.unwrap();
    let back = crx.recv().await.unwrap();
    assert_eq!(back.bytes, reply);
    assert_eq!(back.peer.transport, Transport::Tls);
    assert_eq!(back.peer.addr, addr);
    assert_eq!(back.local, local);
}

#[tokio::test]
async fn tls_send_to_an_unnamed_peer_verifies_its_ip_address() {
    let p = pki("test CA");
    let (_server, mut srx, addr) = tls_server(&p).await;
    let (client, _crx) = tls_client(&p.ca_pem).await;
    // No connect(): the certificate must name 127.0.0.1, and it does.
    client.send(tls_to(addr, OPTIONS)).await.unwrap();
    assert_eq!(srx.recv().await.unwrap().bytes, OPTIONS);
}

#[tokio::test]
async fn tls_with_the_wrong_ca_or_name_is_refused() {
    let p = pki("test CA");
    let other = pki("some other CA");
    let (_server, _srx, addr) = tls_server(&p).await;

    let (client, _crx) = tls_client(&other.ca_pem).await;
    let e = client.connect(addr, "localhost").await.unwrap_err();
    assert!(matches!(e, Error::Handshake { .. }), "{e}");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    let e = client.send(tls_to(addr, OPTIONS)).await.unwrap_err();
    assert!(matches!(e, Error::Handshake { .. }), "{e}");

    // Right CA, wrong name.
    let (client, _crx) = tls_client(&p.ca_pem).await;
    let e = client.connect(addr, "srs.example.com").await.unwrap_err();
    assert!(matches!(e, Error::Handshake { .. }), "{e}");
    let e = client.connect(addr, "not a name").await.unwrap_err();
    assert!(matches!(e, Error::InvalidServerName(_)), "{e}");
}

#[tokio::test]
async fn tls_frames_split_messages() {
    let p = pki("test CA");
    let (_server, mut srx, addr) = tls_server(&p).await;
    // A raw rustls client writing two messages in 7-byte records.
    let client = TlsClient::from_ca_pem(p.ca_pem.as_bytes()).unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut c = TlsConnector::from(client.config.clone())
        .connect(tls::server_name("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let mut wire = OPTIONS.to_vec();
    wire.extend_from_slice(OPTIONS);
    for chunk in wire.chunks(7) {
        c.write_all(chunk).await.unwrap();
        c.flush().await.unwrap();
    }
    let a = srx.recv().await.unwrap();
    let b = srx.recv().await.unwrap();
    assert_eq!(a.bytes, OPTIONS);
    assert_eq!(b.bytes, OPTIONS);
    assert_eq!(a.peer.transport, Transport::Tls);
}

#[tokio::test]
async fn tls_listener_without_certificate_is_a_configuration_error() {
    let e = SipTransports::bind(&["tls:127.0.0.1:0".parse().unwrap()], TlsConfig::default())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::TlsConfig { .. }), "{e}");
    assert!(e.to_string().contains("tls:127.0.0.1:0"), "{e}");
    assert!(e.to_string().contains("certificate"), "{e}");
}

#[tokio::test]
async fn a_peer_that_never_finishes_the_handshake_does_not_block_others() {
    let p = pki("test CA");
    let (_server, mut srx, addr) = tls_server(&p).await;
    // A TCP connection that says nothing: its handshake waits on its own task.
    let _silent = TcpStream::connect(addr).await.unwrap();
    let (client, _crx) = tls_client(&p.ca_pem).await;
    client.send(tls_to(addr, OPTIONS)).await.unwrap();
    assert_eq!(srx.recv().await.unwrap().bytes, OPTIONS);
}
