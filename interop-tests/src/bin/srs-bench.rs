//! srs-server's media path under load, measured from outside on loopback, with a bare
//! receiver over the same number of sockets in the same run as the baseline.
//!
//! 1. Baseline: a child process (`--bare-recv`) binds one socket per stream and only counts
//!    what arrives, with `recvmmsg` on epoll (one batch per ready socket) and then on a 50 ms
//!    sweep; the same pacer feeds it. Its CPU per packet is the floor.
//! 2. `srs-server` as a child; N SIPREC calls (two streams each) set up at `--rate` calls/s
//!    (INVITE→200 of the ramp), then every stream gets 20 ms PCMU from a paced sender thread:
//!    one UDP socket, `sendmmsg` batches, the streams spread over the 20 ms cycle in 1 ms slots.
//!    The sender reports its own lateness; a run where it fell behind is marked INVALID.
//! 3. While all calls stream: the server's CPU per packet (`/proc/PID/stat`), RSS per call
//!    (`VmRSS` over the idle server's), kernel UDP receive-buffer drops (`/proc/net/snmp`), and
//!    the INVITE→200 of probe calls set up meanwhile.
//! 4. BYE to every call; BYE→`recording.json` visible in storage; lost and late packets read
//!    back from every `recording.json` against what the sender sent.
//!
//! `cargo build --release -p srs-server -p interop-tests --bins &&
//!  ./target/release/srs-bench --calls 1000 [--seconds 10] [--rate 200] [--server-arg ARG]...`

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket as StdUdp};
use std::os::fd::AsRawFd;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use interop_tests::bench::{cpu_seconds, pace, percentile, spawn_baseline, Flow, PacerStats};
use interop_tests::{TestSrc, TestTransport};
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage};

struct Args {
    calls: usize,
    seconds: u64,
    rate: u32,
    probes: usize,
    server_args: Vec<String>,
    server: std::path::PathBuf,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        calls: 500,
        seconds: 10,
        rate: 200,
        probes: 50,
        server_args: Vec::new(),
        server: std::env::current_exe()?
            .parent()
            .context("exe dir")?
            .join("srs-server"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--calls" => a.calls = v.parse()?,
            "--seconds" => a.seconds = v.parse()?,
            "--rate" => a.rate = v.parse()?,
            "--probes" => a.probes = v.parse()?,
            "--server-arg" => a.server_args.push(v),
            "--server" => a.server = v.into(),
            _ => bail!(
                "unknown flag {flag} (--calls --seconds --rate --probes --server-arg --server)"
            ),
        }
    }
    Ok(a)
}

fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

/// `VmRSS` of `pid`, in KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = s
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("VmRSS")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("VmRSS value")?
        .parse()?)
}

/// UDP datagrams the kernel dropped for a full receive buffer, machine-wide.
fn udp_rcvbuf_errors() -> anyhow::Result<u64> {
    let s = std::fs::read_to_string("/proc/net/snmp")?;
    let mut udp = s.lines().filter(|l| l.starts_with("Udp: "));
    let names: Vec<&str> = udp
        .next()
        .context("Udp header")?
        .split_whitespace()
        .collect();
    let values: Vec<&str> = udp
        .next()
        .context("Udp values")?
        .split_whitespace()
        .collect();
    let i = names
        .iter()
        .position(|n| *n == "RcvbufErrors")
        .context("RcvbufErrors")?;
    Ok(values[i].parse()?)
}

/// The baseline receiver (child mode): `n` sockets, one counting thread per core, `recvmmsg`
/// on epoll (`sweep_ms` 0) or on a timer. Prints `PORTS p0 p1 …`, then receives until killed.
fn bare_recv(n: usize, sweep_ms: u64) -> anyhow::Result<()> {
    use mio::net::UdpSocket as MioUdp;
    use mio::{Events, Interest, Poll, Token};
    use nix::sys::socket::recvmmsg;
    use std::io::IoSliceMut;
    raise_fd_limit();
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let mut groups: Vec<Vec<StdUdp>> = (0..threads).map(|_| Vec::new()).collect();
    let mut ports = Vec::with_capacity(n);
    for j in 0..n {
        let s = StdUdp::bind("127.0.0.1:0")?;
        s.set_nonblocking(true)?;
        ports.push(s.local_addr()?.port().to_string());
        groups[j % threads].push(s);
    }
    println!("PORTS {}", ports.join(" "));
    let mut handles = Vec::new();
    for group in groups {
        handles.push(std::thread::spawn(move || -> anyhow::Result<()> {
            let mut poll = Poll::new()?;
            let mut socks: Vec<MioUdp> = group.into_iter().map(MioUdp::from_std).collect();
            if sweep_ms == 0 {
                for (k, s) in socks.iter_mut().enumerate() {
                    poll.registry().register(s, Token(k), Interest::READABLE)?;
                }
            }
            const B: usize = 16;
            let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(B, None);
            let mut bufs = Box::new([[0u8; 2048]; B]);
            let mut events = Events::with_capacity(1024);
            let mut drain = |s: &MioUdp| loop {
                let mut iovs = bufs.each_mut().map(|b| [IoSliceMut::new(&mut b[..])]);
                let n = match recvmmsg(
                    s.as_raw_fd(),
                    &mut headers,
                    iovs.iter_mut(),
                    MsgFlags::MSG_DONTWAIT,
                    None,
                ) {
                    Ok(r) => r.count(),
                    Err(_) => 0,
                };
                if n < B {
                    break;
                }
            };
            loop {
                if sweep_ms == 0 {
                    poll.poll(&mut events, None)?;
                    for ev in events.iter() {
                        drain(&socks[ev.token().0]);
                    }
                } else {
                    std::thread::sleep(Duration::from_millis(sweep_ms));
                    for s in &socks {
                        drain(s);
                    }
                }
            }
        }));
    }
    for h in handles {
        h.join()
            .map_err(|_| anyhow::anyhow!("receiver thread panicked"))??;
    }
    Ok(())
}

/// After a 1 s settle, `pid`'s CPU seconds and the packets sent over `secs`.
async fn measure(pid: u32, p: &PacerStats, secs: u64) -> anyhow::Result<(f64, u64)> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (c0, n0) = (cpu_seconds(pid)?, p.sent.load(Ordering::Relaxed));
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (c1, n1) = (cpu_seconds(pid)?, p.sent.load(Ordering::Relaxed));
    Ok((c1 - c0, n1 - n0))
}

/// The paced sender thread: one socket, every destination a flow.
fn start_pacer(
    dests: Vec<SocketAddr>,
) -> anyhow::Result<(Arc<PacerStats>, std::thread::JoinHandle<()>)> {
    let sock = StdUdp::bind("127.0.0.1:0")?;
    let flows: Vec<Flow> = dests.into_iter().map(|to| Flow { from: 0, to }).collect();
    let p = PacerStats::running();
    let p2 = Arc::clone(&p);
    let t = std::thread::Builder::new()
        .name("pacer".into())
        .spawn(move || {
            if let Err(e) = pace(&[sock], &flows, &[], &[], &p2) {
                eprintln!("pacer: {e:#}");
            }
        })?;
    Ok((p, t))
}

/// The bare receiver's CPU per packet over `n` sockets.
async fn baseline(n: usize, sweep_ms: u64, secs: u64) -> anyhow::Result<(f64, bool)> {
    let (mut child, pid, ports) =
        spawn_baseline(&["--bare-recv".into(), n.to_string(), sweep_ms.to_string()]).await?;
    let dests = ports
        .into_iter()
        .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
        .collect();
    let (p, t) = start_pacer(dests)?;
    let (cpu, pkts) = measure(pid, &p, secs).await?;
    p.running.store(false, Ordering::Relaxed);
    let _ = t.join();
    let _ = child.kill().await;
    Ok((cpu / pkts.max(1) as f64 * 1e6, p.valid()))
}

async fn setup_call(srs: SocketAddr, n: usize) -> anyhow::Result<(TestSrc, Duration)> {
    let mut s = TestSrc::new(TestTransport::Udp, srs, (0, 440.0), (0, 880.0)).await?;
    let offer = s.offer("sendonly");
    let md = s.metadata(Some(&format!("bench-{n:05}")));
    let t = Instant::now();
    let r = s.invite(&offer, Some(&md)).await?;
    let took = t.elapsed();
    anyhow::ensure!(
        r.status_code.code() == 200,
        "INVITE answered {}",
        r.status_code
    );
    Ok((s, took))
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn pct(v: &mut [Duration]) -> String {
    v.sort();
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples)",
        us(percentile(v, 0.5)) / 1e3,
        us(percentile(v, 0.99)) / 1e3,
        us(v.last().copied().unwrap_or_default()) / 1e3,
        v.len()
    )
}

/// Every `recording.json` under `dir`, with when it was first seen.
fn manifests(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            manifests(&p, out);
        } else if p.file_name().is_some_and(|n| n == "recording.json") {
            out.push(p);
        }
    }
}

fn main() -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("--bare-recv") {
        let n = argv.get(2).context("--bare-recv N SWEEP_MS")?.parse()?;
        let sweep = argv.get(3).map_or(Ok(0), |s| s.parse())?;
        return bare_recv(n, sweep);
    }
    raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(bench())
}

async fn bench() -> anyhow::Result<()> {
    let a = args()?;
    let streams = 2 * a.calls;
    println!(
        "srs-bench: {} calls ({} streams, {} packets/s), {} s measured, setup {} calls/s, on {} cores",
        a.calls,
        streams,
        streams * 50,
        a.seconds,
        a.rate,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    // 1. The floor: a bare receiver over the same socket count.
    let (bare_epoll, ok1) = baseline(streams, 0, a.seconds).await?;
    let (bare_sweep, ok2) = baseline(streams, 50, a.seconds).await?;
    println!(
        "bare recvmmsg receiver: {bare_epoll:.2} us/packet on epoll, {bare_sweep:.2} us/packet on a 50 ms sweep{}",
        if ok1 && ok2 { "" } else { "  [INVALID: the sender fell behind]" }
    );

    // 2. srs-server.
    let dir = tempfile::tempdir()?;
    let port = StdUdp::bind("127.0.0.1:0")?.local_addr()?.port();
    let storage = dir.path().join("rec");
    let mut child = tokio::process::Command::new(&a.server)
        .args(["--listen", &format!("udp:127.0.0.1:{port}")])
        .args(["--rtp-ports", "20000-60000", "--media-timeout", "600"])
        .args(["--invite-rate", "0", "--max-sessions", "20000"])
        .arg("--storage")
        .arg(&storage)
        .arg("--spool")
        .arg(dir.path().join("spool"))
        .args(&a.server_args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", a.server.display()))?;
    let pid = child.id().context("pid")?;
    let srs: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let ready_by = Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = TestSrc::new(TestTransport::Udp, srs, (0, 440.0), (0, 880.0)).await?;
        let options = s.request("OPTIONS", None, None);
        s.send_raw(&options).await?;
        if s.final_response(Duration::from_millis(200)).await.is_ok() {
            break;
        }
        if Instant::now() > ready_by {
            bail!("srs-server did not answer within 10 s");
        }
    }
    let rss_idle = rss_kib(pid)?;

    // The ramp.
    let mut tasks = Vec::with_capacity(a.calls);
    let gap = Duration::from_secs_f64(1.0 / f64::from(a.rate.max(1)));
    let mut tick = tokio::time::interval(gap);
    for i in 0..a.calls {
        tick.tick().await;
        tasks.push(tokio::spawn(setup_call(srs, i)));
    }
    let mut calls = Vec::with_capacity(a.calls);
    let mut ramp = Vec::with_capacity(a.calls);
    for t in tasks {
        let (s, d) = t.await??;
        ramp.push(d);
        calls.push(s);
    }
    println!("INVITE->200 during the ramp: {}", pct(&mut ramp));

    // 3. Streaming.
    let dests: Vec<SocketAddr> = calls
        .iter()
        .flat_map(|c| c.legs.iter().map(|l| l.dest))
        .collect::<Option<Vec<_>>>()
        .context("a call without an RTP destination")?;
    let drops0 = udp_rcvbuf_errors()?;
    let (pacer, pacer_thread) = start_pacer(dests)?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Probe calls while everything streams.
    let probes = {
        let (n, first) = (a.probes, a.calls);
        let every = Duration::from_secs(a.seconds).div_f64(n.max(1) as f64 + 1.0);
        tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut srcs = Vec::new();
            for i in 0..n {
                tokio::time::sleep(every).await;
                if let Ok((s, d)) = setup_call(srs, first + i).await {
                    lat.push(d);
                    srcs.push(s);
                }
            }
            (lat, srcs)
        })
    };
    let (cpu, pkts) = measure(pid, &pacer, a.seconds).await?;
    let rss = rss_kib(pid)?;
    let (mut probe_lat, probe_calls) = probes.await?;
    pacer.running.store(false, Ordering::Relaxed);
    let _ = pacer_thread.join();
    let drops = udp_rcvbuf_errors()? - drops0;
    let sent_per_stream = pacer.cycles.load(Ordering::Relaxed);
    let ok = pacer.valid();
    let per_pkt = cpu / pkts.max(1) as f64 * 1e6;

    // 4. BYE, then what storage got.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut bye_at: HashMap<String, Instant> = HashMap::new();
    let probe_ids: std::collections::HashSet<String> =
        probe_calls.iter().map(|c| c.call_id.clone()).collect();
    // BYEs at the setup rate (a burst of thousands would overflow the SIP socket's receive
    // buffer, and the test SRC does not retransmit).
    let mut byes = Vec::new();
    let mut tick = tokio::time::interval(gap);
    for mut c in calls.into_iter().chain(probe_calls) {
        tick.tick().await;
        byes.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = c.send_in_dialog("BYE", None, None).await;
            (c.call_id.clone(), t, r.is_ok())
        }));
    }
    let mut bye_failed = 0;
    for b in byes {
        let (id, t, ok) = b.await?;
        bye_failed += usize::from(!ok);
        bye_at.insert(id, t);
    }
    if bye_failed > 0 {
        println!("{bye_failed} BYEs got no answer");
    }
    let total = bye_at.len();
    let mut visible: HashMap<std::path::PathBuf, Instant> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while visible.len() < total && Instant::now() < deadline {
        let mut found = Vec::new();
        manifests(&storage, &mut found);
        let now = Instant::now();
        for p in found {
            visible.entry(p).or_insert(now);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut publish = Vec::new();
    let (mut received, mut lost, mut late, mut counted) = (0u64, 0u64, 0u64, 0u64);
    for (path, seen) in &visible {
        let m: serde_json::Value = serde_json::from_slice(&std::fs::read(path)?)?;
        let call_id = m["call_id"].as_str().unwrap_or_default();
        if let Some(t) = bye_at.get(call_id) {
            publish.push(seen.saturating_duration_since(*t));
        }
        if probe_ids.contains(call_id) {
            continue;
        }
        for s in m["streams"].as_array().into_iter().flatten() {
            received += s["packets_received"].as_u64().unwrap_or(0);
            lost += s["packets_lost"].as_u64().unwrap_or(0);
            late += s["packets_late"].as_u64().unwrap_or(0);
            counted += 1;
        }
    }
    // Every stream got the same packets (± the last partial cycle).
    let expected = pacer.sent.load(Ordering::Relaxed) * counted / streams.max(1) as u64;
    let _ = child.kill().await;

    println!(
        "sender: {} cycles of 20 ms, {} late slots, worst {:.1} ms; {:.2} us CPU per packet sent (sendmmsg, loopback delivery included){}",
        sent_per_stream,
        pacer.late_slots.load(Ordering::Relaxed),
        pacer.worst_us.load(Ordering::Relaxed) as f64 / 1e3,
        pacer.cpu_us.load(Ordering::Relaxed) as f64 / pacer.sent.load(Ordering::Relaxed).max(1) as f64,
        if ok {
            ""
        } else {
            "  [INVALID: the sender fell behind]"
        }
    );
    println!(
        "INVITE->200 while {} calls stream: {}",
        a.calls,
        pct(&mut probe_lat)
    );
    println!("BYE->recording.json visible: {}", pct(&mut publish));
    println!(
        "recordings: {}/{} visible; {} streams, {} packets sent, {} recorded, {} missing, {} lost (per sequence), {} late; kernel receive-buffer drops {}",
        visible.len(),
        total,
        counted,
        expected,
        received,
        expected.saturating_sub(received),
        lost,
        late,
        drops
    );
    println!(
        "RSS: {} KiB idle, {} KiB streaming: {:.0} KB per call",
        rss_idle,
        rss,
        (rss.saturating_sub(rss_idle)) as f64 * 1.024 / a.calls.max(1) as f64
    );
    println!(
        "srs-server CPU per RTP packet: {per_pkt:.2} us = {:.2}x the bare receiver on epoll, {:.2}x on a 50 ms sweep ({:.2} cores){}",
        per_pkt / bare_epoll.max(1e-9),
        per_pkt / bare_sweep.max(1e-9),
        cpu / a.seconds as f64,
        if ok { "" } else { "  [INVALID: the sender fell behind]" }
    );
    Ok(())
}
