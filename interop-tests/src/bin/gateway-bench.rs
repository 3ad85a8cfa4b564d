//! Measures `siprec-client gateway` from outside, as a separate process on loopback.
//!
//! The bench is the caller, the callee and the SRS at once: it sets up N calls through the
//! gateway (INVITE, 200, ACK; the callee answers from this process), then streams 20 ms G.711
//! packets both ways on every call for `--seconds` (phase 1: relay only), starts recording on
//! every call with the Call Recording Node's INFO towards a sink SRS (the project's `SrsCore`,
//! every stream answered on one sink socket) measuring INFO→200, and streams again (phase 2:
//! relay plus one fork per direction). For each phase it prints the gateway's CPU time per
//! relayed packet (utime+stime from /proc), packets lost end to end, and the copies the SRS
//! received; the ratio of the two phases is the cost of the fork. The baseline, measured first
//! in the same run with the same pacer and socket count: a bare relay process (this binary with
//! `--bare-relay N`: the calls' sockets on one epoll thread per core, as the gateway's relay
//! threads hold them, each packet forwarded to the other side's source, with no SIP, no SDP,
//! no fork, no counters), so the gateway's figure is also a ratio to the least a relay of this
//! shape costs. A second baseline runs the same bare relay paced (`--bare-relay N 10`: at
//! most one epoll wait every 10 ms, so each wait returns many ready sockets): the least any
//! relay costs here once wake-ups are amortised, whatever latency it may add. The last
//! column is the pacer's own CPU per datagram it sent or read (`sendmmsg`/`recvmmsg`, up to 64
//! per call, loopback delivery included): what this kernel charges for a datagram at best,
//! so a relayed packet with one fork copy (one receive, two sends) costs at least three of
//! them. The pacer reports how many 20 ms ticks it started late: when it fell behind, the
//! run is marked invalid.
//!
//! `cargo build --release -p siprec-client -p interop-tests --bins &&
//!  ./target/release/gateway-bench [--calls 200] [--seconds 10] [--rate 200]`

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket as StdUdp};
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use interop_tests::bench::{cpu_seconds, pace, percentile, spawn_baseline, Flow, PacerStats};
use siprec_sip::message::{call_id, cseq, header_value, make_response, parse_message, tag_of};
use siprec_sip::rsip::{self, headers::UntypedHeader, Header, Response, SipMessage};
use siprec_sip::transaction::{Peer, Transport};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

struct Args {
    calls: usize,
    seconds: u64,
    rate: u32,
    gateway: std::path::PathBuf,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        calls: 200,
        seconds: 10,
        rate: 200,
        gateway: std::env::current_exe()?
            .parent()
            .context("exe dir")?
            .join("siprec-client"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--calls" => a.calls = v.parse()?,
            "--seconds" => a.seconds = v.parse()?,
            "--rate" => a.rate = v.parse()?,
            "--gateway" => a.gateway = v.into(),
            _ => bail!("unknown flag {flag} (--calls, --seconds, --rate, --gateway)"),
        }
    }
    if a.calls == 0 || a.calls > 2400 {
        bail!("--calls: 1 to 2400 (four relay ports per call in 40000-49999)");
    }
    Ok(a)
}

fn sdp(port: u16) -> String {
    format!(
        "v=0\r\no=bench 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    )
}

fn sdp_port(body: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(body).ok()?;
    let m = text.lines().find(|l| l.starts_with("m=audio "))?;
    m.split_whitespace().nth(1)?.parse().ok()
}

/// Responses to the caller, by (Call-ID, CSeq number).
type Waiters = Arc<Mutex<HashMap<(String, u32), oneshot::Sender<Response>>>>;

/// The callee: answers every INVITE 200 with the SDP of that call's callee socket (found by
/// the `X-Bench-Call` header the gateway copies), and BYE with 200. Records each call's
/// B-facing relay port.
async fn callee(sock: UdpSocket, ports: Vec<u16>, pb: Arc<Mutex<Vec<Option<SocketAddr>>>>) {
    let mut buf = vec![0u8; 65536];
    while let Ok((n, from)) = sock.recv_from(&mut buf).await {
        let Ok(SipMessage::Request(req)) = parse_message(&buf[..n]) else {
            continue;
        };
        let resp = match req.method {
            rsip::Method::Invite => {
                let i: usize = header_value(&req.headers, "X-Bench-Call")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(usize::MAX);
                let Some(&port) = ports.get(i) else { continue };
                if let (Some(p), Ok(mut v)) = (sdp_port(&req.body), pb.lock()) {
                    v[i] = Some(SocketAddr::from(([127, 0, 0, 1], p)));
                }
                let mut ok = make_response(&req, 200, None, Some(&format!("callee{i}")));
                let body = sdp(port);
                ok.headers
                    .retain(|h| !matches!(h, Header::ContentLength(_)));
                ok.headers.push(Header::Other(
                    "Contact".into(),
                    format!("<sip:callee@{}>", sock.local_addr().unwrap()),
                ));
                ok.headers
                    .push(Header::ContentType(rsip::headers::ContentType::new(
                        "application/sdp",
                    )));
                ok.headers
                    .push(Header::ContentLength((body.len() as u32).into()));
                ok.body = body.into_bytes();
                ok
            }
            rsip::Method::Ack => continue,
            _ => make_response(&req, 200, None, None),
        };
        let _ = sock
            .send_to(&siprec_sip::print_message(&resp.into()), from)
            .await;
    }
}

/// The SRS: the project's SrsCore, each stream answered on a sink socket of its own (taken in
/// turn from `sink_ports`; one socket for all would overflow its receive buffer between the
/// pacer's drains and under-count the copies).
async fn srs(sock: UdpSocket, sink_ports: Vec<u16>, max: usize) {
    struct Sink(Vec<u16>, usize);
    impl siprec_core::PortAllocator for Sink {
        fn allocate(&mut self) -> Option<u16> {
            self.1 += 1;
            self.0.get(self.1 % self.0.len()).copied()
        }
        fn release(&mut self, _: u16) {}
    }
    let cfg = siprec_core::SrsConfig {
        media_ip: "127.0.0.1".parse().unwrap(),
        max_sessions: max,
        invite_rate: 0.0,
        ..Default::default()
    };
    let mut core = siprec_core::SrsCore::new(cfg, Box::new(Sink(sink_ports, 0)));
    let local = sock.local_addr().unwrap();
    let mut buf = vec![0u8; 65536];
    loop {
        let wake = core.poll_timeout();
        let sleep = async {
            match wake {
                Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = sock.recv_from(&mut buf) => {
                let Ok((n, from)) = r else { return };
                core.handle_bytes(Instant::now(), Peer { transport: Transport::Udp, addr: from }, local, &buf[..n]);
            }
            _ = sleep => core.handle_timeout(Instant::now()),
        }
        while let Some(t) = core.poll_transmit() {
            let _ = sock.send_to(&t.payload, t.peer.addr).await;
        }
        while core.poll_event().is_some() {}
    }
}

/// The caller's SIP: requests out, responses to whoever waits for them.
struct Caller {
    sock: Arc<UdpSocket>,
    gw: SocketAddr,
    waiters: Waiters,
}

impl Caller {
    async fn request(&self, call: &str, n: u32, text: String) -> anyhow::Result<Response> {
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .unwrap()
            .insert((call.to_string(), n), tx);
        self.sock.send_to(text.as_bytes(), self.gw).await?;
        Ok(tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .context("no final response in 10 s")??)
    }
}

async fn caller_reader(sock: Arc<UdpSocket>, waiters: Waiters) {
    let mut buf = vec![0u8; 65536];
    while let Ok((n, _)) = sock.recv_from(&mut buf).await {
        let Ok(SipMessage::Response(r)) = parse_message(&buf[..n]) else {
            continue;
        };
        if r.status_code.code() < 200 {
            continue;
        }
        let (Some(cid), Some((num, _))) = (call_id(&r.headers), cseq(&r.headers)) else {
            continue;
        };
        if let Some(tx) = waiters.lock().unwrap().remove(&(cid, num)) {
            let _ = tx.send(r);
        }
    }
}

struct Dialog {
    call: String,
    from: String,
    to: String,
    target: String,
}

fn in_dialog(
    d: &Dialog,
    method: &str,
    n: u32,
    branch: &str,
    local: SocketAddr,
    extra: &str,
) -> String {
    format!(
        "{method} {} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-{branch};rport\r\nFrom: {}\r\nTo: {}\r\n\
Call-ID: {}\r\nCSeq: {n} {method}\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n",
        d.target, d.from, d.to, d.call
    )
}

async fn setup(c: &Caller, i: usize, rtp_port: u16) -> anyhow::Result<(Dialog, SocketAddr)> {
    let local = c.sock.local_addr()?;
    let call = format!("bench-{i}@127.0.0.1");
    let body = sdp(rtp_port);
    let from = format!("<sip:caller{i}@bench.invalid>;tag=c{i}");
    let invite = format!(
        "INVITE sip:callee{i}@{gw} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-b{i}-1;rport\r\n\
From: {from}\r\nTo: <sip:callee{i}@bench.invalid>\r\nCall-ID: {call}\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:caller{i}@{local}>\r\nMax-Forwards: 70\r\nX-Bench-Call: {i}\r\n\
Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len(),
        gw = c.gw,
    );
    let ok = c.request(&call, 1, invite).await?;
    if ok.status_code.code() != 200 {
        bail!("call {i}: INVITE answered {}", ok.status_code);
    }
    let to = header_value(&ok.headers, "To").context("To")?;
    tag_of(&to).context("To tag")?;
    let target = header_value(&ok.headers, "Contact")
        .map(|c| siprec_sip::message::uri_of(&c).to_string())
        .context("Contact")?;
    let pa = SocketAddr::from(([127, 0, 0, 1], sdp_port(&ok.body).context("SDP port")?));
    let d = Dialog {
        call,
        from,
        to,
        target,
    };
    c.sock
        .send_to(
            in_dialog(&d, "ACK", 1, &format!("b{i}-ack"), local, "").as_bytes(),
            c.gw,
        )
        .await?;
    Ok((d, pa))
}

/// The bare relay's CPU per relayed packet with the same pacer and socket count.
async fn bare_baseline(
    n: usize,
    gap_ms: u64,
    a: &StdUdp,
    b: &StdUdp,
    secs: u64,
) -> anyhow::Result<Phase> {
    let (mut child, pid, ports) =
        spawn_baseline(&["--bare-relay".into(), n.to_string(), gap_ms.to_string()]).await?;
    let at = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    let flows: Vec<Flow> = (0..n)
        .flat_map(|j| {
            [
                Flow {
                    from: 0,
                    to: at(ports[2 * j]),
                },
                Flow {
                    from: 1,
                    to: at(ports[2 * j + 1]),
                },
            ]
        })
        .collect();
    let stats = PacerStats::running();
    let pacer = start_pacer([a.try_clone()?, b.try_clone()?], flows, None, &stats)?;
    let phase = measure(pid, &stats, secs).await?;
    stats.running.store(false, Ordering::Relaxed);
    let _ = pacer.join();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = child.kill().await;
    // Drain what is still in flight so the gateway phases start clean.
    let mut buf = [0u8; 2048];
    for s in [a, b] {
        while s.recv_from(&mut buf).is_ok() {}
    }
    Ok(phase)
}

/// The pacer thread: the caller's and the callee's media from one socket each (the gateway
/// and the bare relay latch every call on them), the SRS copies counted on `sink`.
fn start_pacer(
    sockets: [StdUdp; 2],
    flows: Vec<Flow>,
    sink: Option<StdUdp>,
    stats: &Arc<PacerStats>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let receive = [sockets[0].try_clone()?, sockets[1].try_clone()?];
    let stats = Arc::clone(stats);
    Ok(std::thread::Builder::new()
        .name("pacer".into())
        .spawn(move || {
            let sink: Vec<StdUdp> = sink.into_iter().collect();
            if let Err(e) = pace(&sockets, &flows, &receive, &sink, &stats) {
                eprintln!("pacer: {e:#}");
            }
        })?)
}

struct Phase {
    cpu: f64,
    /// The pacer thread's CPU and the datagrams it sent and read (relay's and SRS's).
    pacer_cpu: f64,
    pacer_dgrams: u64,
    received: u64,
    sink: u64,
    ticks: u64,
    late: u64,
}

async fn measure(pid: u32, m: &PacerStats, secs: u64) -> anyhow::Result<Phase> {
    // Let the relay settle one second, then measure.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let snap = |m: &PacerStats| {
        (
            m.received.load(Ordering::Relaxed),
            m.sink.load(Ordering::Relaxed),
            m.cycles.load(Ordering::Relaxed),
            m.late_slots.load(Ordering::Relaxed),
            m.cpu_us.load(Ordering::Relaxed),
            m.sent.load(Ordering::Relaxed),
        )
    };
    let c0 = cpu_seconds(pid)?;
    let a = snap(m);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let c1 = cpu_seconds(pid)?;
    let b = snap(m);
    Ok(Phase {
        cpu: c1 - c0,
        pacer_cpu: (b.4 - a.4) as f64 / 1e6,
        pacer_dgrams: (b.5 - a.5) + (b.0 - a.0) + (b.1 - a.1),
        received: b.0 - a.0,
        sink: b.1 - a.1,
        ticks: (b.2 - a.2) * 20,
        late: b.3 - a.3,
    })
}

/// The baseline: `n` calls of two sockets each, spread over as many epoll threads as the
/// gateway has relay threads (one per core); a packet on one side goes out of the other to the
/// source last seen there, with nothing else (no SIP, no SDP, no fork, no counters). Prints the
/// ports (`PORTS a0 b0 a1 b1 …`), then relays until killed.
fn bare_relay(n: usize, gap_ms: u64) -> anyhow::Result<()> {
    use mio::net::UdpSocket as MioUdp;
    use mio::{Events, Interest, Poll, Token};
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get().min(4));
    let mut ports = Vec::with_capacity(2 * n);
    let mut groups: Vec<Vec<(StdUdp, StdUdp)>> = (0..threads).map(|_| Vec::new()).collect();
    for j in 0..n {
        let a = StdUdp::bind("127.0.0.1:0")?;
        let b = StdUdp::bind("127.0.0.1:0")?;
        a.set_nonblocking(true)?;
        b.set_nonblocking(true)?;
        ports.push(a.local_addr()?.port());
        ports.push(b.local_addr()?.port());
        groups[j % threads].push((a, b));
    }
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    println!("PORTS {}", list.join(" "));
    let mut handles = Vec::new();
    for group in groups {
        handles.push(std::thread::spawn(move || -> anyhow::Result<()> {
            let mut poll = Poll::new()?;
            let mut socks: Vec<[MioUdp; 2]> = Vec::with_capacity(group.len());
            for (k, (a, b)) in group.into_iter().enumerate() {
                let mut pair = [MioUdp::from_std(a), MioUdp::from_std(b)];
                poll.registry()
                    .register(&mut pair[0], Token(2 * k), Interest::READABLE)?;
                poll.registry()
                    .register(&mut pair[1], Token(2 * k + 1), Interest::READABLE)?;
                socks.push(pair);
            }
            let mut src: Vec<[Option<SocketAddr>; 2]> = vec![[None, None]; socks.len()];
            let mut events = Events::with_capacity(1024);
            let mut buf = [0u8; 2048];
            let gap = Duration::from_millis(gap_ms);
            let mut last = Instant::now();
            loop {
                // Paced (gap > 0): at most one wait per gap, so a wait returns many sockets.
                let due = last + gap;
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                last = Instant::now();
                poll.poll(&mut events, None)?;
                for ev in events.iter() {
                    let (k, side) = (ev.token().0 / 2, ev.token().0 % 2);
                    while let Ok((len, from)) = socks[k][side].recv_from(&mut buf) {
                        src[k][side].get_or_insert(from);
                        if let Some(d) = src[k][1 - side] {
                            let _ = socks[k][1 - side].send_to(&buf[..len], d);
                        }
                    }
                }
            }
        }));
    }
    for h in handles {
        h.join()
            .map_err(|_| anyhow::anyhow!("relay thread panicked"))??;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("--bare-relay") {
        let n = argv.get(2).context("--bare-relay N [GAP_MS]")?.parse()?;
        let gap_ms = argv.get(3).map_or(Ok(0), |g| g.parse())?;
        return bare_relay(n, gap_ms);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(bench())
}

async fn bench() -> anyhow::Result<()> {
    let a = args()?;
    let n = a.calls;
    let uas = UdpSocket::bind("127.0.0.1:0").await?;
    let uas_addr = uas.local_addr()?;
    let srs_sock = UdpSocket::bind("127.0.0.1:0").await?;
    let srs_addr = srs_sock.local_addr()?;
    // Every recording copy lands on one sink socket, drained by the pacer each millisecond.
    let sink = StdUdp::bind("127.0.0.1:0")?;
    sink.set_nonblocking(true)?;
    let sink_ports = vec![sink.local_addr()?.port()];
    let gw_port = StdUdp::bind("127.0.0.1:0")?.local_addr()?.port();
    let gw: SocketAddr = ([127, 0, 0, 1], gw_port).into();
    let mut child = tokio::process::Command::new(&a.gateway)
        .args(["gateway", "--listen", &format!("udp:127.0.0.1:{gw_port}")])
        .args(["--forward", &format!("sip:{uas_addr}")])
        .args([
            "--rtp-ports",
            "40000-49999",
            "--max-calls",
            &(n + 10).to_string(),
        ])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| {
            format!(
                "cannot start {} (build it: cargo build --release -p siprec-client)",
                a.gateway.display()
            )
        })?;
    let pid = child.id().context("gateway pid")?;

    // Media: every caller sends from one socket, every callee from another (each call's relay
    // latches on them); the pacer sends with sendmmsg and drains with recvmmsg.
    let a_sock = StdUdp::bind("127.0.0.1:0")?;
    let b_sock = StdUdp::bind("127.0.0.1:0")?;
    a_sock.set_nonblocking(true)?;
    b_sock.set_nonblocking(true)?;
    let baseline = bare_baseline(n, 0, &a_sock, &b_sock, a.seconds).await?;
    let paced = bare_baseline(n, 10, &a_sock, &b_sock, a.seconds).await?;
    let callee_ports = vec![b_sock.local_addr()?.port(); n];
    let pb = Arc::new(Mutex::new(vec![None; n]));
    tokio::spawn(callee(uas, callee_ports, Arc::clone(&pb)));
    tokio::spawn(srs(srs_sock, sink_ports, 2 * n + 10));
    let csock = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
    let waiters: Waiters = Arc::default();
    tokio::spawn(caller_reader(Arc::clone(&csock), Arc::clone(&waiters)));
    let caller = Arc::new(Caller {
        sock: csock,
        gw,
        waiters,
    });

    // The gateway answers OPTIONS once it listens.
    let mut up = false;
    for k in 0..100 {
        let probe = format!(
            "OPTIONS sip:gw@{gw} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-probe{k}\r\nFrom: <sip:bench@x>;tag=p\r\n\
To: <sip:gw@x>\r\nCall-ID: probe-{k}\r\nCSeq: {} OPTIONS\r\nContent-Length: 0\r\n\r\n",
            caller.sock.local_addr()?, k + 1
        );
        if tokio::time::timeout(
            Duration::from_millis(100),
            caller.request(&format!("probe-{k}"), k + 1, probe),
        )
        .await
        .is_ok_and(|r| r.is_ok())
        {
            up = true;
            break;
        }
    }
    if !up {
        bail!("the gateway did not answer OPTIONS within 10 s");
    }

    // Calls, set up at --rate per second.
    let t = Instant::now();
    let gap = Duration::from_secs_f64(1.0 / f64::from(a.rate.max(1)));
    let mut tasks = Vec::with_capacity(n);
    let port = a_sock.local_addr()?.port();
    for i in 0..n {
        let c = Arc::clone(&caller);
        tasks.push(tokio::spawn(async move { setup(&c, i, port).await }));
        tokio::time::sleep(gap).await;
    }
    let mut dialogs = Vec::with_capacity(n);
    let mut pas = Vec::with_capacity(n);
    for task in tasks {
        let (d, pa) = task.await??;
        dialogs.push(d);
        pas.push(pa);
    }
    let setup_s = t.elapsed().as_secs_f64();
    let pbs: Vec<SocketAddr> = pb
        .lock()
        .unwrap()
        .iter()
        .map(|p| p.context("callee's relay port"))
        .collect::<anyhow::Result<_>>()?;
    println!("gateway-bench: {n} calls set up in {setup_s:.2} s through the gateway (pid {pid}); {} s per phase", a.seconds);

    let media = PacerStats::running();
    let flows: Vec<Flow> = pas
        .iter()
        .zip(&pbs)
        .flat_map(|(&pa, &pb)| [Flow { from: 0, to: pa }, Flow { from: 1, to: pb }])
        .collect();
    let pacer = start_pacer(
        [a_sock.try_clone()?, b_sock.try_clone()?],
        flows,
        Some(sink),
        &media,
    )?;

    let relay_only = measure(pid, &media, a.seconds).await?;

    // Start recording on every call: INFO → 200, timed.
    let mut lat = Vec::with_capacity(n);
    let local = caller.sock.local_addr()?;
    let srs_url = format!("X-Reason: startCallRecording\r\nX-Srs-Url: sip:{srs_addr}\r\n");
    let mut infos = Vec::with_capacity(n);
    for (i, d) in dialogs.iter().enumerate() {
        let text = in_dialog(
            d,
            "INFO",
            2,
            &format!("b{i}-start"),
            local,
            &format!("{srs_url}X-Srs-Recording-ID: bench-{i}\r\n"),
        );
        let c = Arc::clone(&caller);
        let call = d.call.clone();
        infos.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = c.request(&call, 2, text).await;
            (t.elapsed(), r)
        }));
        tokio::time::sleep(gap).await;
    }
    let mut refused = 0;
    for task in infos {
        let (d, r) = task.await?;
        match r {
            Ok(r) if r.status_code.code() == 200 => lat.push(d),
            _ => refused += 1,
        }
    }
    lat.sort();
    let forked = measure(pid, &media, a.seconds).await?;

    media.running.store(false, Ordering::Relaxed);
    pacer
        .join()
        .map_err(|_| anyhow::anyhow!("pacer panicked"))?;
    // What is still in flight arrives; then every packet sent is either received or lost.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut buf = [0u8; 2048];
    let mut late_arrivals = 0u64;
    for s in [&a_sock, &b_sock] {
        while s.recv_from(&mut buf).is_ok() {
            late_arrivals += 1;
        }
    }
    let total_sent = media.sent.load(Ordering::Relaxed);
    let total_lost =
        total_sent.saturating_sub(media.received.load(Ordering::Relaxed) + late_arrivals);
    for (i, d) in dialogs.iter().enumerate() {
        let text = in_dialog(d, "BYE", 3, &format!("b{i}-bye"), local, "");
        let _ = caller.sock.send_to(text.as_bytes(), gw).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = child.kill().await;

    let per = |p: &Phase| {
        if p.received == 0 {
            f64::NAN
        } else {
            p.cpu * 1e6 / p.received as f64
        }
    };
    println!();
    println!(
        "{:<24} {:>12} {:>12} {:>14} {:>12} {:>11} {:>16}",
        "phase",
        "relayed pps",
        "relay CPU",
        "µs/packet",
        "SRS got pps",
        "late ticks",
        "pacer µs/dgram"
    );
    for (name, p) in [
        ("bare relay (baseline)", &baseline),
        ("bare relay, 10 ms paced", &paced),
        ("gateway, relay only", &relay_only),
        ("gateway, relay + fork", &forked),
    ] {
        let secs = a.seconds as f64;
        println!(
            "{:<24} {:>12.0} {:>7.3} core {:>14.2} {:>12.0} {:>5} of {:<4} {:>11.2}",
            name,
            p.received as f64 / secs,
            p.cpu / secs,
            per(p),
            p.sink as f64 / secs,
            p.late,
            p.ticks,
            p.pacer_cpu * 1e6 / p.pacer_dgrams.max(1) as f64
        );
    }
    println!(
        "ratios: relay only {:.2}x the bare relay; relay + fork {:.2}x the bare relay, {:.2}x relay only",
        per(&relay_only) / per(&baseline),
        per(&forked) / per(&baseline),
        per(&forked) / per(&relay_only)
    );
    println!(
        "INFO startCallRecording → 200: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} answered 200, {refused} not)",
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        lat.len()
    );
    println!(
        "end to end through the gateway: {total_sent} packets sent, {total_lost} lost ({:.3} %)",
        100.0 * total_lost as f64 / total_sent.max(1) as f64
    );
    let (ticks, late) = (
        baseline.ticks + paced.ticks + relay_only.ticks + forked.ticks,
        baseline.late + paced.late + relay_only.late + forked.late,
    );
    if late * 100 > ticks {
        println!(
            "INVALID RUN: the pacer started {late} of {ticks} 1 ms slots more than 5 ms late (the load \
             generator fell behind; a phase with late slots measured less than its load)"
        );
    } else {
        println!("pacer: {late} of {ticks} 1 ms slots more than 5 ms late (valid: at most 1 %)");
    }
    Ok(())
}
