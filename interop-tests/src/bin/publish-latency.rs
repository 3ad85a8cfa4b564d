//! BYE → `recording.json` visible: how long after the SRC's BYE a recording can be read from
//! storage, measured from outside srs-server through an S3 client of its own.
//!
//! Starts Garage on loopback (`bash .ci/garage-install` installs it) and an srs-server on it,
//! runs `--calls` calls (`--parallel` at a time, `--seconds` of audio each), and for each polls
//! `HEAD .../recording.json` every millisecond from the moment the BYE is sent. Prints
//! p50/p90/p99/max.
//!
//! ```sh
//! cargo run --release -p interop-tests --bin publish-latency -- --calls 50 --parallel 5
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use interop_tests::garage::Garage;
use interop_tests::{TestSrc, TestTransport};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use siprec_storage::{folder_for, Store};

struct Args {
    calls: usize,
    parallel: usize,
    seconds: f64,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        calls: 50,
        parallel: 5,
        seconds: 1.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--calls" => a.calls = val()?.parse()?,
            "--parallel" => a.parallel = val()?.parse()?,
            "--seconds" => a.seconds = val()?.parse()?,
            "-h" | "--help" => {
                println!("publish-latency [--calls 50] [--parallel 5] [--seconds 1]");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}"),
        }
    }
    if a.calls == 0 || a.parallel == 0 {
        bail!("--calls and --parallel must be at least 1");
    }
    Ok(a)
}

async fn one_call(
    addr: std::net::SocketAddr,
    os: Arc<dyn ObjectStore>,
    key: String,
    seconds: f64,
) -> anyhow::Result<Duration> {
    let mut src = TestSrc::new(TestTransport::Udp, addr, (0, 440.0), (8, 880.0)).await?;
    let offer = src.offer("sendonly");
    let md = src.metadata(Some(&key));
    let start = time::OffsetDateTime::now_utc();
    let r = src.invite(&offer, Some(&md)).await?;
    if r.status_code.code() != 200 {
        bail!("INVITE answered {}", r.status_code);
    }
    src.stream(Duration::from_secs_f64(seconds)).await?;
    let path = Path::from(format!("bench/{}/recording.json", folder_for(start, &key)));
    let bye = Instant::now();
    src.send_in_dialog("BYE", None, None).await?;
    loop {
        match os.head(&path).await {
            Ok(_) => return Ok(bye.elapsed()),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        if bye.elapsed() > Duration::from_secs(60) {
            bail!("{path} not visible 60 s after BYE");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let garage = Garage::start("bench").await?;
    let c = garage.credentials();
    let s3 = c.s3_options();
    let dir = tempfile::tempdir()?;
    let cfg = srs_server::Config {
        listen: vec!["udp:127.0.0.1:0".into()],
        rtp_ports: "37000-37999".into(),
        storage: format!("s3://{}/bench", c.bucket),
        s3: s3.clone(),
        spool: dir.path().join("spool"),
        ..srs_server::Config::default()
    };
    let srs = srs_server::Server::start(cfg.validate()?).await?;
    let addr = srs.local_addrs()[0].addr;
    let reader = Store::open_with(&format!("s3://{}", c.bucket), &s3)?
        .object_store()
        .clone();
    let run = format!("{:x}", std::process::id());
    let mut set = tokio::task::JoinSet::new();
    let mut lat = Vec::with_capacity(a.calls);
    for i in 0..a.calls {
        if set.len() == a.parallel {
            lat.push(set.join_next().await.context("join")???);
        }
        set.spawn(one_call(
            addr,
            reader.clone(),
            format!("LAT-{run}-{i}"),
            a.seconds,
        ));
    }
    while let Some(r) = set.join_next().await {
        lat.push(r??);
    }
    lat.sort();
    let q = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "BYE -> recording.json visible on Garage (S3 over loopback), {} calls of {:.1} s, {} in parallel:",
        lat.len(),
        a.seconds,
        a.parallel
    );
    println!(
        "  p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        ms(q(0.50)),
        ms(q(0.90)),
        ms(q(0.99)),
        ms(q(1.0))
    );
    srs.shutdown().await?;
    Ok(())
}
