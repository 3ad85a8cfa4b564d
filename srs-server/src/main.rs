//! srs-server command line: flags, environment and TOML → [`srs_server::Config`] → `run`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// SIPREC recording server (RFC 7865/7866): records each recording session to a stereo WAV
/// (one participant per channel) and publishes audio, metadata and recording.json to storage.
///
/// Settings come from, in increasing priority: built-in defaults, the TOML file (--config),
/// environment variables, flags.
#[derive(Debug, Parser)]
#[command(name = "srs-server", version)]
struct Cli {
    /// TOML configuration file (keys: listen, rtp_ports, storage, spool, media_timeout,
    /// media_ip, max_sessions, max_connections, instance_id, tls_cert, tls_key, tls_client_ca, sip_allow,
    /// invite_rate, invite_burst, max_metadata_kb, rtp_latching, recording_rate, codecs, srtp,
    /// spool_max_mb, shutdown_grace,
    /// shutdown_upload_wait, upload_retry_max, jitter_ms, checkpoint_ms, media_clock_rate,
    /// and an [s3] table: endpoint, region, access_key_id, secret_access_key, allow_http,
    /// virtual_hosted_style).
    #[arg(long, env = "SRS_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// SIP listener, repeatable: udp:HOST:PORT, tcp:HOST:PORT or tls:HOST:PORT (TLS needs
    /// --tls-cert and --tls-key). [default: udp:0.0.0.0:5060 and tcp:0.0.0.0:5060]
    #[arg(
        long,
        env = "SRS_LISTEN",
        value_delimiter = ',',
        value_name = "TRANSPORT:HOST:PORT"
    )]
    listen: Vec<String>,
    /// RTP port range, LOW-HIGH. [default: 20000-29999]
    #[arg(long, env = "SRS_RTP_PORTS", value_name = "LOW-HIGH")]
    rtp_ports: Option<String>,
    /// Where recordings are published: a directory, a file:// URL, or s3://BUCKET[/PREFIX]
    /// (S3 settings from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_REGION, AWS_ALLOW_HTTP, or the [s3] table of --config). [default: ./recordings]
    #[arg(long, env = "SRS_STORAGE", value_name = "PATH_OR_URL")]
    storage: Option<String>,
    /// Spool directory for recordings in progress. [default: ./spool]
    #[arg(long, env = "SRS_SPOOL", value_name = "DIR")]
    spool: Option<PathBuf>,
    /// Seconds without RTP (never counted while paused) before the SRS ends the session
    /// with BYE. [default: 60]
    #[arg(long, env = "SRS_MEDIA_TIMEOUT", value_name = "SECS")]
    media_timeout: Option<u64>,
    /// Address announced in SDP answers. [default: the listen address if specific, else
    /// this host's address]
    #[arg(long, env = "SRS_MEDIA_IP", value_name = "IP")]
    media_ip: Option<std::net::IpAddr>,
    /// Most concurrent recording sessions; beyond it INVITEs get 503 + Retry-After.
    /// [default: 1000]
    #[arg(long, env = "SRS_MAX_SESSIONS", value_name = "N")]
    max_sessions: Option<usize>,
    /// Most TCP/TLS connections open at once; beyond it new ones are closed at accept.
    /// [default: 10000]
    #[arg(long, env = "SRS_MAX_CONNECTIONS", value_name = "N")]
    max_connections: Option<usize>,
    /// Instance id written into recording.json. [default: host name]
    #[arg(long, env = "SRS_INSTANCE_ID", value_name = "ID")]
    instance_id: Option<String>,
    /// PEM certificate chain (leaf first) for tls: listeners.
    #[arg(long, env = "SRS_TLS_CERT", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, env = "SRS_TLS_KEY", value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Largest spool in MiB (recordings in progress and waiting for storage); beyond it new
    /// INVITEs get 503 Spool Full. 0 = no limit. [default: 10240]
    #[arg(long, env = "SRS_SPOOL_MAX_MB", value_name = "MIB")]
    spool_max_mb: Option<u64>,
    /// On SIGTERM, seconds live sessions get to end before the SRS sends BYE. [default: 30]
    #[arg(long, env = "SRS_SHUTDOWN_GRACE", value_name = "SECS")]
    shutdown_grace: Option<u64>,
    /// On SIGTERM, seconds to wait for pending uploads (the rest stays in the spool).
    /// [default: 60]
    #[arg(long, env = "SRS_SHUTDOWN_UPLOAD_WAIT", value_name = "SECS")]
    shutdown_upload_wait: Option<u64>,
    /// Longest wait between upload retries while storage fails. [default: 30]
    #[arg(long, env = "SRS_UPLOAD_RETRY_MAX", value_name = "SECS")]
    upload_retry_max: Option<u64>,
    /// Jitter window: audio is held back this long so late packets land in place. [default: 60]
    #[arg(long, env = "SRS_JITTER_MS", value_name = "MS")]
    jitter_ms: Option<u64>,
    /// The spool WAV is made valid on disk every this many ms of audio. [default: 20]
    #[arg(long, env = "SRS_CHECKPOINT_MS", value_name = "MS")]
    checkpoint_ms: Option<u64>,
    /// Media clock speed for test senders that send faster than real time (N seconds of RTP
    /// per second). Leave at 1 for real calls. [default: 1]
    #[arg(long, env = "SRS_MEDIA_CLOCK_RATE", value_name = "RATE")]
    media_clock_rate: Option<f64>,
    /// Source network allowed to send SIP (CIDR or address), repeatable; none = any source.
    /// Others get 403. [default: any]
    #[arg(
        long = "sip-allow",
        env = "SRS_SIP_ALLOW",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    sip_allow: Vec<String>,
    /// New recording sessions per second from one source (token bucket); 0 = no limit.
    /// [default: 100]
    #[arg(long, env = "SRS_INVITE_RATE", value_name = "N")]
    invite_rate: Option<f64>,
    /// INVITEs one source may send at once. [default: 500]
    #[arg(long, env = "SRS_INVITE_BURST", value_name = "N")]
    invite_burst: Option<u32>,
    /// Largest metadata document in KiB (larger gets 413). [default: 32]
    #[arg(long, env = "SRS_MAX_METADATA_KB", value_name = "KIB")]
    max_metadata_kb: Option<u64>,
    /// RTP latching: take each stream's RTP from the first source that sends it (NAT);
    /// false takes RTP only from the address the SDP named. [default: true]
    #[arg(long, env = "SRS_RTP_LATCHING", value_name = "BOOL")]
    rtp_latching: Option<bool>,
    /// Mutual TLS: CA bundle (PEM) that TLS clients' certificates must chain to; clients
    /// without a valid certificate are refused. [default: no client certificate asked]
    #[arg(long, env = "SRS_TLS_CLIENT_CA", value_name = "FILE")]
    tls_client_ca: Option<PathBuf>,
    /// WAV sample rate: 8000, 16000, 48000, or 0 = 16000 when any stream is G.722 or Opus,
    /// else 8000. [default: 0]
    #[arg(long, env = "SRS_RECORDING_RATE", value_name = "HZ")]
    recording_rate: Option<u32>,
    /// Codecs accepted in offers, comma-separated (the offer's order decides among them).
    /// [default: PCMU,PCMA,G722,opus]
    #[arg(long, env = "SRS_CODECS", value_name = "LIST", value_delimiter = ',')]
    codecs: Vec<String>,
    /// SRTP with SDES keys: optional (RTP/AVP and RTP/SAVP), required (RTP/AVP gets 488) or
    /// off (RTP/SAVP streams declined). [default: optional]
    #[arg(long, env = "SRS_SRTP", value_name = "POLICY")]
    srtp: Option<String>,
}

impl Cli {
    fn into_config(self) -> anyhow::Result<srs_server::Config> {
        let mut c = match &self.config {
            Some(f) => srs_server::Config::from_toml_file(f)?,
            None => srs_server::Config::default(),
        };
        if !self.listen.is_empty() {
            c.listen = self.listen;
        }
        if let Some(v) = self.rtp_ports {
            c.rtp_ports = v;
        }
        if let Some(v) = self.storage {
            c.storage = v;
        }
        if let Some(v) = self.spool {
            c.spool = v;
        }
        if let Some(v) = self.media_timeout {
            c.media_timeout = v;
        }
        if self.media_ip.is_some() {
            c.media_ip = self.media_ip;
        }
        if let Some(v) = self.max_sessions {
            c.max_sessions = v;
        }
        if let Some(v) = self.max_connections {
            c.max_connections = v;
        }
        if self.instance_id.is_some() {
            c.instance_id = self.instance_id;
        }
        if self.tls_cert.is_some() {
            c.tls_cert = self.tls_cert;
        }
        if self.tls_key.is_some() {
            c.tls_key = self.tls_key;
        }
        if let Some(v) = self.spool_max_mb {
            c.spool_max_mb = v;
        }
        if let Some(v) = self.shutdown_grace {
            c.shutdown_grace = v;
        }
        if let Some(v) = self.shutdown_upload_wait {
            c.shutdown_upload_wait = v;
        }
        if let Some(v) = self.upload_retry_max {
            c.upload_retry_max = v;
        }
        if let Some(v) = self.jitter_ms {
            c.jitter_ms = v;
        }
        if let Some(v) = self.checkpoint_ms {
            c.checkpoint_ms = v;
        }
        if let Some(v) = self.media_clock_rate {
            c.media_clock_rate = v;
        }
        if !self.sip_allow.is_empty() {
            c.sip_allow = self.sip_allow;
        }
        if let Some(v) = self.invite_rate {
            c.invite_rate = v;
        }
        if let Some(v) = self.invite_burst {
            c.invite_burst = v;
        }
        if let Some(v) = self.max_metadata_kb {
            c.max_metadata_kb = v;
        }
        if let Some(v) = self.rtp_latching {
            c.rtp_latching = v;
        }
        if self.tls_client_ca.is_some() {
            c.tls_client_ca = self.tls_client_ca;
        }
        if let Some(v) = self.recording_rate {
            c.recording_rate = v;
        }
        if !self.codecs.is_empty() {
            c.codecs = self.codecs;
        }
        if let Some(v) = self.srtp {
            c.srtp = v;
        }
        Ok(c)
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colours only on a terminal: log files and journald get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cfg = Cli::parse()
        .into_config()?
        .validate()
        .context("invalid configuration")?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(srs_server::run(cfg, shutdown_signal()))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return ctrl_c.await.unwrap_or(()),
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
