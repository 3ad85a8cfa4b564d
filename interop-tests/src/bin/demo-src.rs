//! Records one demonstration call on a running SRS: 2 s of 440 Hz (caller, PCMU) and 880 Hz
//! (callee, PCMA), a 1 s pause, 2 s more, then BYE.
//!
//! `cargo run -p interop-tests --bin demo-src -- [udp|tcp] [HOST:PORT] [RECORDING-ID]`

use std::time::Duration;

use anyhow::Context;
use interop_tests::{TestSrc, TestTransport};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let transport = match args.next().as_deref() {
        None | Some("udp") => TestTransport::Udp,
        Some("tcp") => TestTransport::Tcp,
        Some(other) => anyhow::bail!("transport {other:?}: expected udp or tcp"),
    };
    let srs = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:5060".into())
        .parse()
        .context("SRS address: expected HOST:PORT, e.g. 127.0.0.1:5060")?;
    let rec_id = args.next().unwrap_or_else(|| "demo-call".into());
    let mut src = TestSrc::new(transport, srs, (0, 440.0), (8, 880.0)).await?;
    let offer = src.offer("sendonly");
    let md = src.metadata(Some(&rec_id));
    let r = src.invite(&offer, Some(&md)).await?;
    println!("INVITE -> {} {}", r.status_code.code(), r.status_code);
    anyhow::ensure!(
        r.status_code.code() == 200,
        "the SRS did not accept the recording session"
    );
    src.stream(Duration::from_secs(2)).await?;
    let off = src.offer("inactive");
    let r = src.invite(&off, None).await?;
    println!("pause (re-INVITE inactive) -> {}", r.status_code.code());
    tokio::time::sleep(Duration::from_secs(1)).await;
    for leg in &mut src.legs {
        leg.skip(Duration::from_secs(1));
    }
    let on = src.offer("sendonly");
    let r = src.invite(&on, None).await?;
    println!("resume (re-INVITE sendonly) -> {}", r.status_code.code());
    src.stream(Duration::from_secs(2)).await?;
    let r = src.send_in_dialog("BYE", None, None).await?;
    println!("BYE -> {}", r.status_code.code());
    println!("recorded call {} with Recording ID {rec_id}", src.call_id);
    Ok(())
}
