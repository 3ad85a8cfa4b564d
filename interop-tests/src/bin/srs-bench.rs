//! Measures srs-server from outside, as a separate process on loopback:
//! 1. INVITE→200 latency over UDP (sequential sessions; each is set up then torn down);
//! 2. CPU time per RTP packet: N concurrent sessions stream G.711 in real time; the server's
//!    CPU time (utime+stime from /proc) is compared with the same sessions held idle (paused).
//!
//! `cargo build --release -p srs-server -p interop-tests --bins &&
//!  ./target/release/srs-bench [--sessions 20] [--seconds 10] [--invites 200]`

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use interop_tests::bench::{cpu_seconds, percentile};
use interop_tests::{TestSrc, TestTransport};

struct Args {
    sessions: usize,
    seconds: u64,
    invites: usize,
    server: std::path::PathBuf,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        sessions: 20,
        seconds: 10,
        invites: 200,
        server: std::env::current_exe()?
            .parent()
            .context("exe dir")?
            .join("srs-server"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--sessions" => a.sessions = v.parse()?,
            "--seconds" => a.seconds = v.parse()?,
            "--invites" => a.invites = v.parse()?,
            "--server" => a.server = v.into(),
            _ => bail!("unknown flag {flag}"),
        }
    }
    Ok(a)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let mut child = tokio::process::Command::new(&a.server)
        .args(["--listen", &format!("udp:127.0.0.1:{port}")])
        .args(["--rtp-ports", "36000-37999", "--media-timeout", "600"])
        .arg("--storage")
        .arg(dir.path().join("rec"))
        .arg("--spool")
        .arg(dir.path().join("spool"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", a.server.display()))?;
    let pid = child.id().context("pid")?;
    let srs = format!("127.0.0.1:{port}").parse()?;

    // Ready when it answers an INVITE; retry until then (the server may still be binding).
    let ready_by = Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = TestSrc::new(TestTransport::Udp, srs, (0, 440.0), (8, 880.0)).await?;
        let offer = s.offer("sendonly");
        let sent = s.request("OPTIONS", None, None);
        s.send_raw(&sent).await?;
        if s.final_response(Duration::from_millis(200)).await.is_ok() {
            let _ = offer;
            break;
        }
        if Instant::now() > ready_by {
            bail!("srs-server did not answer within 10 s");
        }
    }

    // 1. INVITE → 200 latency.
    let mut lat = Vec::with_capacity(a.invites);
    for _ in 0..a.invites {
        let mut s = TestSrc::new(TestTransport::Udp, srs, (0, 440.0), (8, 880.0)).await?;
        let offer = s.offer("sendonly");
        let md = s.metadata(None);
        let t = Instant::now();
        let r = s.invite(&offer, Some(&md)).await?;
        lat.push(t.elapsed());
        anyhow::ensure!(
            r.status_code.code() == 200,
            "INVITE answered {}",
            r.status_code
        );
        s.send_in_dialog("BYE", None, None).await?;
    }
    lat.sort();
    println!(
        "INVITE->200 over UDP, {} sessions: p50 {:.0} us, p90 {:.0} us, p99 {:.0} us, max {:.0} us",
        lat.len(),
        percentile(&lat, 0.5).as_secs_f64() * 1e6,
        percentile(&lat, 0.9).as_secs_f64() * 1e6,
        percentile(&lat, 0.99).as_secs_f64() * 1e6,
        lat.last().unwrap_or(&Duration::ZERO).as_secs_f64() * 1e6,
    );

    // The recordings of step 1 are being published: wait until the spool is empty, so the
    // baseline below measures idle sessions, not uploads.
    let spool = dir.path().join("spool");
    let drained_by = Instant::now() + Duration::from_secs(120);
    while std::fs::read_dir(&spool)?
        .flatten()
        .any(|e| e.path().is_dir())
    {
        if Instant::now() > drained_by {
            bail!("the recordings of the INVITE phase were not published within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // 2. CPU per RTP packet.
    let mut srcs = Vec::new();
    for _ in 0..a.sessions {
        let mut s = TestSrc::new(TestTransport::Udp, srs, (0, 440.0), (8, 880.0)).await?;
        let offer = s.offer("sendonly");
        let md = s.metadata(None);
        anyhow::ensure!(s.invite(&offer, Some(&md)).await?.status_code.code() == 200);
        srcs.push(s);
    }
    let d = Duration::from_secs(a.seconds);
    // Idle baseline: the same sessions, no RTP (timers and tickers only).
    let c0 = cpu_seconds(pid)?;
    tokio::time::sleep(d).await;
    let idle = cpu_seconds(pid)? - c0;
    // Streaming.
    let c1 = cpu_seconds(pid)?;
    let mut tasks = Vec::new();
    for mut s in srcs {
        tasks.push(tokio::spawn(async move { s.stream(d).await.map(|_| s) }));
    }
    let mut srcs = Vec::new();
    let mut packets = 0u64;
    for t in tasks {
        let s = t.await??;
        packets += s.legs.iter().map(|l| l.sent).sum::<u64>();
        srcs.push(s);
    }
    let busy = cpu_seconds(pid)? - c1;
    for s in &mut srcs {
        s.send_in_dialog("BYE", None, None).await?;
    }
    println!(
        "RTP: {} sessions x 2 legs x {} s = {} packets; server CPU {:.2} s streaming vs {:.2} s idle",
        a.sessions, a.seconds, packets, busy, idle
    );
    println!(
        "CPU per RTP packet: {:.2} us all-in, {:.2} us above idle (receive, sequence check, G.711 decode, timeline, WAV write)",
        busy / packets as f64 * 1e6,
        (busy - idle).max(0.0) / packets as f64 * 1e6
    );
    child.kill().await.ok();
    Ok(())
}
