//! Test helpers for end-to-end and third-party interop tests.
//!
//! - [`TestSrc`]: a minimal recording client (SRC) that speaks raw SIP over UDP, TCP or TLS and
//!   streams G.711 RTP in real time, so srs-server can be exercised the way a real SBC would.
//! - [`audio`]: tone generation and frequency checks on recorded WAVs (Goertzel).
//! - [`pcap`]: writes classic libpcap files of RTP (for SIPp's `play_pcap_audio`).
//! - [`require_tool`]: fails a test with install instructions when a peer tool is missing.
//! - [`dns`]: a private dnsmasq on loopback serving SRV/NAPTR/A records for resolver tests.
//! - [`tls`]: a CA and server certificate made with rcgen for TLS tests.
//! - [`fault_relay`]: seeded faulty SRSs (a relay in front of srs-server breaking one rule)
//!   for testing `siprec-client check`; with [`netem`], a lossy, jittery network for the RTP
//!   between an SRC and srs-server.

pub mod audio;
pub mod bench;
pub mod dns;
pub mod fault_relay;
pub mod garage;
pub mod netem;
pub mod pcap;
pub mod process;
pub mod src;
pub mod tls;

pub use src::{TestSrc, TestTransport};

/// Path of the repository's `fixtures/` folder.
pub fn fixtures_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("fixtures")
}

/// Returns the tool's path or panics with how to install it: tests never skip silently.
pub fn require_tool(name: &str, install: &str) -> std::path::PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("`{name}` is required by this test but not installed: {install}");
}

/// Starts an srs-server on loopback with ephemeral SIP ports, a private RTP range and temporary
/// storage and spool directories.
pub async fn start_srs(dir: &std::path::Path, rtp_base: u16) -> anyhow::Result<srs_server::Server> {
    let cfg = srs_server::Config {
        listen: vec!["udp:127.0.0.1:0".into(), "tcp:127.0.0.1:0".into()],
        rtp_ports: format!("{}-{}", rtp_base, rtp_base + 199),
        storage: dir.join("recordings").display().to_string(),
        spool: dir.join("spool"),
        media_timeout: 10,
        ..srs_server::Config::default()
    };
    Ok(srs_server::Server::start(cfg.validate()?).await?)
}

/// The next recording the server publishes (panics after 10 s).
pub async fn next_recording(
    published: &mut tokio::sync::broadcast::Receiver<srs_server::PublishedRecording>,
) -> srs_server::PublishedRecording {
    tokio::time::timeout(std::time::Duration::from_secs(10), published.recv())
        .await
        .expect("a recording published within 10 s")
        .expect("the server is running")
}

/// Reads a WAV from the server's store.
pub async fn read_wav(
    server: &srs_server::Server,
    folder: &str,
) -> anyhow::Result<(hound::WavSpec, Vec<i16>)> {
    let bytes = read_object(server, &format!("{folder}/audio.wav")).await?;
    let mut r = hound::WavReader::new(std::io::Cursor::new(bytes))?;
    let spec = r.spec();
    let samples = r.samples::<i16>().collect::<Result<Vec<_>, _>>()?;
    Ok((spec, samples))
}

/// Reads any object from the server's store.
pub async fn read_object(server: &srs_server::Server, path: &str) -> anyhow::Result<Vec<u8>> {
    use object_store::ObjectStoreExt;
    let os = server.store().object_store();
    let got = os.get(&object_store::path::Path::from(path)).await?;
    Ok(got.bytes().await?.to_vec())
}
