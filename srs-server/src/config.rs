//! srs-server configuration: plain structs with documented defaults, read from TOML, the
//! environment and the command line (in that order, later wins), then validated.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use siprec_sip::transaction::Transport;
use siprec_sip_tokio::{ListenAddr, TlsServer};
use siprec_storage::S3Options;

/// The whole configuration.
///
/// Defaults:
/// - `listen`: `udp:0.0.0.0:5060` and `tcp:0.0.0.0:5060`
/// - `rtp_ports`: `20000-29999`
/// - `storage`: `./recordings` (a directory, through object_store's LocalFileSystem)
/// - `spool`: `./spool`
/// - `media_timeout`: 60 s (never counted while paused)
/// - `media_ip`: the listen address when it is specific, else the address the OS would use
///   to reach the SRC
/// - `max_sessions`: 1000
/// - `max_connections`: 10000 open TCP/TLS connections
/// - `instance_id`: the host name
/// - `tls_cert`, `tls_key`: none (required with a `tls:` listener)
/// - `s3`: empty (an `s3://` storage takes its settings from the `AWS_*` environment)
/// - `spool_max_mb`: 10240 (10 GiB; 0 = no limit)
/// - `shutdown_grace`: 30 s; `shutdown_upload_wait`: 60 s
/// - `upload_retry_max`: 30 s
/// - `jitter_ms`: 60; `checkpoint_ms`: 20
/// - `media_clock_rate`: 1.0
/// - `sip_allow`: empty (any source may send SIP)
/// - `invite_rate`: 100 new sessions per second per source, `invite_burst`: 500
/// - `max_metadata_kb`: 32
/// - `rtp_latching`: true
/// - `tls_client_ca`: none (TLS clients are not asked for a certificate)
/// - `recording_rate`: 0 (auto: 16000 when any stream is G.722 or Opus, else 8000)
/// - `codecs`: PCMU, PCMA, G722, opus
/// - `srtp`: optional (RTP/AVP and RTP/SAVP with SDES keys)
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// SIP listeners, `udp:HOST:PORT` / `tcp:HOST:PORT` / `tls:HOST:PORT`.
    pub listen: Vec<String>,
    /// RTP port range, `LOW-HIGH`.
    pub rtp_ports: String,
    /// Storage location: directory path or `file://` URL.
    pub storage: String,
    /// Spool directory for recordings in progress.
    pub spool: PathBuf,
    /// Seconds without RTP (while not paused) before the SRS ends a session with BYE.
    pub media_timeout: u64,
    /// Address announced in SDP answers.
    pub media_ip: Option<IpAddr>,
    /// Most concurrent recording sessions.
    pub max_sessions: usize,
    /// Most TCP and TLS connections open at once (TLS handshakes included); beyond it new
    /// connections are closed at accept.
    pub max_connections: usize,
    /// Instance identifier written into recording.json.
    pub instance_id: Option<String>,
    /// PEM certificate chain (leaf first) of the `tls:` listeners.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// S3 settings for an `s3://bucket/prefix` storage (TOML table `[s3]`); unset fields come
    /// from `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
    /// `AWS_ALLOW_HTTP`.
    pub s3: S3Options,
    /// Largest spool (recordings in progress plus those waiting for storage), in MiB; beyond
    /// it new INVITEs get `503 Spool Full` with Retry-After. 0 = no limit.
    pub spool_max_mb: u64,
    /// On SIGTERM: seconds live sessions are given to end by themselves before the SRS sends
    /// BYE (new INVITEs get 503 at once).
    pub shutdown_grace: u64,
    /// On SIGTERM: seconds to wait for pending uploads; what is left stays in the spool and
    /// is published at the next start.
    pub shutdown_upload_wait: u64,
    /// Longest wait between two upload attempts while storage fails, in seconds (the wait
    /// starts at 1 s and doubles).
    pub upload_retry_max: u64,
    /// How long audio is held back so late and reordered packets land in place, in ms.
    pub jitter_ms: u64,
    /// How often the spool WAV is made valid on disk (header updated, buffer flushed), in ms
    /// of audio. A process killed with SIGKILL loses at most `jitter_ms + checkpoint_ms`.
    pub checkpoint_ms: u64,
    /// Speed of the media clock relative to the wall clock. 1.0 for real calls; a test or
    /// load generator that sends N seconds of RTP per second sets N, so faster-than-real-time
    /// audio is placed by its RTP timestamps instead of being squeezed.
    pub media_clock_rate: f64,
    /// Source networks (CIDR, e.g. `10.0.0.0/8`, `2001:db8::/32`, or a single address)
    /// allowed to send SIP; empty allows any. Others get `403 Forbidden`.
    pub sip_allow: Vec<String>,
    /// New recording sessions per second allowed from one source address (a token bucket);
    /// 0 = no limit. Beyond it INVITEs get `503 Rate Limited` with `Retry-After: 1`.
    pub invite_rate: f64,
    /// INVITEs one source may send at once before `invite_rate` applies.
    pub invite_burst: u32,
    /// Largest metadata document accepted, in KiB; larger gets `413`.
    pub max_metadata_kb: u64,
    /// RTP latching (for SRCs behind NAT): each stream takes RTP from the first source that
    /// sends it and drops packets from any other (counted as `packets_foreign`). Off: only
    /// RTP from the address the SDP offer named is taken.
    pub rtp_latching: bool,
    /// Mutual TLS: a PEM CA bundle; when set, `tls:` listeners require a client certificate
    /// that chains to it (handshakes without one fail).
    pub tls_client_ca: Option<PathBuf>,
    /// WAV sample rate: 8000, 16000 or 48000; 0 picks 16000 when any recorded stream uses a
    /// wideband codec (G.722, Opus) and 8000 otherwise.
    pub recording_rate: u32,
    /// Codecs accepted in offers (SDP encoding names, optionally `NAME/RATE`); the offer's
    /// order decides among them.
    pub codecs: Vec<String>,
    /// SRTP (SDES, RFC 4568): `optional` records RTP/AVP and RTP/SAVP, `required` answers
    /// RTP/AVP offers 488, `off` declines RTP/SAVP streams.
    pub srtp: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: vec!["udp:0.0.0.0:5060".into(), "tcp:0.0.0.0:5060".into()],
            rtp_ports: "20000-29999".into(),
            storage: "./recordings".into(),
            spool: PathBuf::from("./spool"),
            media_timeout: 60,
            media_ip: None,
            max_sessions: 1000,
            max_connections: siprec_sip_tokio::DEFAULT_MAX_CONNECTIONS,
            instance_id: None,
            tls_cert: None,
            tls_key: None,
            s3: S3Options::default(),
            spool_max_mb: 10 * 1024,
            shutdown_grace: 30,
            shutdown_upload_wait: 60,
            upload_retry_max: 30,
            jitter_ms: 60,
            checkpoint_ms: 20,
            media_clock_rate: 1.0,
            sip_allow: Vec::new(),
            invite_rate: 100.0,
            invite_burst: 500,
            max_metadata_kb: 32,
            rtp_latching: true,
            tls_client_ca: None,
            recording_rate: 0,
            codecs: ["PCMU", "PCMA", "G722", "opus"].map(String::from).to_vec(),
            srtp: "optional".into(),
        }
    }
}

/// A configuration problem, with what to fix.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A listen entry is not `udp:HOST:PORT`, `tcp:HOST:PORT` or `tls:HOST:PORT`.
    #[error(
        "listen {0:?}: expected udp:HOST:PORT, tcp:HOST:PORT or tls:HOST:PORT (e.g. udp:0.0.0.0:5060)"
    )]
    Listen(String),
    /// A `tls:` listener without both a certificate and a key.
    #[error("listen {0:?}: a TLS listener needs --tls-cert FILE and --tls-key FILE (TOML tls_cert/tls_key, env SRS_TLS_CERT/SRS_TLS_KEY)")]
    TlsWithoutCert(String),
    /// Only one of the certificate and the key is set.
    #[error("{given} is set but {missing} is not: give both the TLS certificate and its key")]
    TlsIncomplete {
        /// The setting present.
        given: &'static str,
        /// The setting missing.
        missing: &'static str,
    },
    /// The certificate or key file cannot be read, holds no usable PEM, or the key does not
    /// match the certificate (the message names the file).
    #[error("{0}")]
    Tls(siprec_sip_tokio::Error),
    /// No listener at all.
    #[error("no listen address configured")]
    NoListen,
    /// The RTP range is malformed or empty.
    #[error(
        "rtp-ports {0:?}: expected LOW-HIGH with 1024 <= LOW < HIGH <= 65535, e.g. 20000-29999"
    )]
    RtpPorts(String),
    /// The media timeout is zero.
    #[error("media-timeout must be at least 1 second")]
    MediaTimeout,
    /// max_sessions is zero.
    #[error("max-sessions must be at least 1")]
    MaxSessions,
    /// max_connections is zero.
    #[error("max-connections must be at least 1")]
    MaxConnections,
    /// A timing or size setting is out of range.
    #[error("{name} = {value}: {expected}")]
    Range {
        /// The setting.
        name: &'static str,
        /// Its value.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
    /// The storage location or its S3 settings cannot be used.
    #[error("storage: {0}")]
    Storage(siprec_storage::Error),
    /// A `sip_allow` entry is not an address or a CIDR network.
    #[error("sip_allow {0:?}: expected an address or a network like 10.0.0.0/8 or 2001:db8::/32")]
    Allow(String),
    /// A codec the recorder cannot decode, or none at all.
    #[error("codecs: {0:?} is not one of PCMU, PCMA, G722, opus")]
    Codec(String),
    /// `tls_client_ca` without a TLS listener certificate.
    #[error("tls-client-ca needs a TLS listener (--tls-cert and --tls-key)")]
    ClientCaWithoutTls,
    /// The TOML file cannot be read or parsed.
    #[error("config file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Validated {
    /// Listeners.
    pub listen: Vec<ListenAddr>,
    /// RTP range, inclusive.
    pub rtp_ports: (u16, u16),
    /// Storage location.
    pub storage: String,
    /// Spool directory.
    pub spool: PathBuf,
    /// Media timeout.
    pub media_timeout: Duration,
    /// SDP address override.
    pub media_ip: Option<IpAddr>,
    /// Most concurrent sessions.
    pub max_sessions: usize,
    /// Most open TCP/TLS connections.
    pub max_connections: usize,
    /// Instance id.
    pub instance_id: String,
    /// Certificate and key of the `tls:` listeners (loaded whenever they are configured).
    pub tls: Option<TlsServer>,
    /// S3 settings.
    pub s3: S3Options,
    /// Spool limit in bytes (`None`: no limit).
    pub spool_max_bytes: Option<u64>,
    /// Time live sessions get to end at shutdown.
    pub shutdown_grace: Duration,
    /// Time pending uploads get at shutdown.
    pub shutdown_upload_wait: Duration,
    /// Cap of the upload retry back-off.
    pub upload_retry_max: Duration,
    /// Timeline jitter window.
    pub jitter: Duration,
    /// Spool checkpoint interval.
    pub checkpoint: Duration,
    /// Media clock speed.
    pub media_clock_rate: f64,
    /// Networks allowed to send SIP (empty: any).
    pub sip_allow: Vec<ipnet::IpNet>,
    /// New sessions per second per source (0: no limit).
    pub invite_rate: f64,
    /// INVITE burst per source.
    pub invite_burst: u32,
    /// Largest metadata document, bytes.
    pub max_metadata_bytes: usize,
    /// RTP latching on.
    pub rtp_latching: bool,
    /// WAV rate (0: auto).
    pub recording_rate: u32,
    /// Accepted codecs.
    pub codecs: Vec<String>,
    /// SRTP policy.
    pub srtp: siprec_core::SrtpPolicy,
}

impl Config {
    /// Reads a TOML file (keys as in [`Config`], e.g. `rtp_ports = "20000-20999"`).
    pub fn from_toml_file(path: &std::path::Path) -> Result<Config, ConfigError> {
        let err = |reason: String| ConfigError::File {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        toml::from_str(&text).map_err(|e| err(e.to_string()))
    }

    /// Checks every field and returns the typed form.
    pub fn validate(&self) -> Result<Validated, ConfigError> {
        if self.listen.is_empty() {
            return Err(ConfigError::NoListen);
        }
        let listen = self
            .listen
            .iter()
            .map(|l| l.parse().map_err(|_| ConfigError::Listen(l.clone())))
            .collect::<Result<Vec<ListenAddr>, _>>()?;
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                Some(TlsServer::from_pem_files(cert, key).map_err(ConfigError::Tls)?)
            }
            (Some(_), None) => {
                return Err(ConfigError::TlsIncomplete {
                    given: "tls-cert",
                    missing: "tls-key",
                })
            }
            (None, Some(_)) => {
                return Err(ConfigError::TlsIncomplete {
                    given: "tls-key",
                    missing: "tls-cert",
                })
            }
            (None, None) => None,
        };
        let tls = match (tls, &self.tls_client_ca) {
            (Some(t), Some(ca)) => Some(t.require_client_cert(ca).map_err(ConfigError::Tls)?),
            (None, Some(_)) => return Err(ConfigError::ClientCaWithoutTls),
            (t, None) => t,
        };
        if tls.is_none() {
            if let Some(l) = listen.iter().find(|l| l.transport == Transport::Tls) {
                return Err(ConfigError::TlsWithoutCert(l.to_string()));
            }
        }
        let bad = || ConfigError::RtpPorts(self.rtp_ports.clone());
        let (lo, hi) = self.rtp_ports.split_once('-').ok_or_else(bad)?;
        let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
        let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
        if lo < 1024 || lo >= hi {
            return Err(bad());
        }
        if self.media_timeout == 0 {
            return Err(ConfigError::MediaTimeout);
        }
        if self.max_sessions == 0 {
            return Err(ConfigError::MaxSessions);
        }
        if self.max_connections == 0 {
            return Err(ConfigError::MaxConnections);
        }
        let range = |name, value: String, expected| ConfigError::Range {
            name,
            value,
            expected,
        };
        if self.jitter_ms > 5000 {
            return Err(range(
                "jitter_ms",
                self.jitter_ms.to_string(),
                "expected 0 to 5000",
            ));
        }
        if !(10..=10_000).contains(&self.checkpoint_ms) {
            return Err(range(
                "checkpoint_ms",
                self.checkpoint_ms.to_string(),
                "expected 10 to 10000",
            ));
        }
        if !(self.media_clock_rate.is_finite() && (0.01..=1000.0).contains(&self.media_clock_rate))
        {
            return Err(range(
                "media_clock_rate",
                self.media_clock_rate.to_string(),
                "expected 0.01 to 1000 (1.0 for real calls)",
            ));
        }
        if self.upload_retry_max == 0 {
            return Err(range(
                "upload_retry_max",
                "0".into(),
                "expected at least 1 second",
            ));
        }
        let sip_allow = self
            .sip_allow
            .iter()
            .map(|a| {
                let a = a.trim();
                a.parse::<ipnet::IpNet>()
                    .or_else(|_| a.parse::<IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| ConfigError::Allow(a.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if !(self.invite_rate.is_finite() && self.invite_rate >= 0.0) {
            return Err(range(
                "invite_rate",
                self.invite_rate.to_string(),
                "expected 0 (no limit) or more new sessions per second",
            ));
        }
        if self.invite_burst == 0 {
            return Err(range("invite_burst", "0".into(), "expected at least 1"));
        }
        if !(1..=64).contains(&self.max_metadata_kb) {
            return Err(range(
                "max_metadata_kb",
                self.max_metadata_kb.to_string(),
                "expected 1 to 64 (a SIP message is at most 64 KiB)",
            ));
        }
        if ![0, 8000, 16000, 48000].contains(&self.recording_rate) {
            return Err(range(
                "recording_rate",
                self.recording_rate.to_string(),
                "expected 8000, 16000, 48000, or 0 (auto)",
            ));
        }
        let known = |c: &str| {
            let name = c.split('/').next().unwrap_or("").trim();
            siprec_rtp::Codec::from_encoding(name).is_audio()
        };
        if let Some(bad) = self.codecs.iter().find(|c| !known(c)) {
            return Err(ConfigError::Codec(bad.clone()));
        }
        if self.codecs.is_empty() {
            return Err(ConfigError::Codec(String::new()));
        }
        let srtp = match self.srtp.trim().to_ascii_lowercase().as_str() {
            "off" => siprec_core::SrtpPolicy::Off,
            "optional" => siprec_core::SrtpPolicy::Optional,
            "required" => siprec_core::SrtpPolicy::Required,
            _ => {
                return Err(range(
                    "srtp",
                    self.srtp.clone(),
                    "expected off, optional or required",
                ))
            }
        };
        // An S3 location is opened here so a bad URL or setting stops the start with a clear
        // message (nothing is contacted yet); a directory is created only when serving.
        let storage = self.storage.trim();
        let s3_given = self.s3 != S3Options::default();
        let plain_dir = !storage.is_empty() && !storage.contains("://");
        if s3_given || !(plain_dir || storage.starts_with("file://")) {
            siprec_storage::Store::open_with(storage, &self.s3).map_err(ConfigError::Storage)?;
        }
        let instance_id = self.instance_id.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_string())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "srs".into())
        });
        Ok(Validated {
            listen,
            rtp_ports: (lo, hi),
            storage: self.storage.clone(),
            spool: self.spool.clone(),
            media_timeout: Duration::from_secs(self.media_timeout),
            media_ip: self.media_ip,
            max_sessions: self.max_sessions,
            max_connections: self.max_connections,
            instance_id,
            tls,
            s3: self.s3.clone(),
            spool_max_bytes: (self.spool_max_mb > 0).then(|| self.spool_max_mb * 1024 * 1024),
            shutdown_grace: Duration::from_secs(self.shutdown_grace),
            shutdown_upload_wait: Duration::from_secs(self.shutdown_upload_wait),
            upload_retry_max: Duration::from_secs(self.upload_retry_max),
            jitter: Duration::from_millis(self.jitter_ms),
            checkpoint: Duration::from_millis(self.checkpoint_ms),
            media_clock_rate: self.media_clock_rate,
            sip_allow,
            invite_rate: self.invite_rate,
            invite_burst: self.invite_burst,
            max_metadata_bytes: (self.max_metadata_kb * 1024) as usize,
            rtp_latching: self.rtp_latching,
            recording_rate: self.recording_rate,
            codecs: self.codecs.iter().map(|c| c.trim().to_string()).collect(),
            srtp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_settings_validate_with_clear_errors() {
        let v = Config {
            sip_allow: vec![
                "10.0.0.0/8".into(),
                " 192.0.2.7 ".into(),
                "2001:db8::/32".into(),
            ],
            ..Config::default()
        }
        .validate()
        .unwrap();
        assert_eq!(v.sip_allow.len(), 3);
        assert_eq!(v.max_connections, 10_000);
        let e = Config {
            max_connections: 0,
            ..Config::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.to_string(), "max-connections must be at least 1");
        assert!(v.sip_allow[1].contains(&"192.0.2.7".parse::<IpAddr>().unwrap()));
        assert_eq!(v.max_metadata_bytes, 32 * 1024);
        assert!(v.rtp_latching);
        let e = Config {
            sip_allow: vec!["10.0.0.0/33".into()],
            ..Config::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("sip_allow \"10.0.0.0/33\""), "{e}");
        let e = Config {
            tls_client_ca: Some("/nonexistent/ca.pem".into()),
            ..Config::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("needs a TLS listener"), "{e}");
        for (rate, burst, md) in [(-1.0, 1, 32), (f64::NAN, 1, 32), (1.0, 0, 32), (1.0, 1, 65)] {
            let c = Config {
                invite_rate: rate,
                invite_burst: burst,
                max_metadata_kb: md,
                ..Config::default()
            };
            assert!(c.validate().is_err(), "{rate} {burst} {md}");
        }
    }

    #[test]
    fn defaults_validate() {
        let v = Config::default().validate().unwrap();
        assert_eq!(v.rtp_ports, (20000, 29999));
        assert_eq!(v.listen.len(), 2);
        assert_eq!(v.media_timeout, Duration::from_secs(60));
    }

    #[test]
    fn bad_values_name_the_problem() {
        let c = Config {
            rtp_ports: "30000-20000".into(),
            ..Config::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("30000-20000"));
        let c = Config {
            listen: vec!["ws:0.0.0.0:80".into()],
            ..Config::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("ws:0.0.0.0:80"));
        let c = Config {
            media_timeout: 0,
            ..Config::default()
        };
        assert!(matches!(c.validate(), Err(ConfigError::MediaTimeout)));
    }

    #[test]
    fn tls_listener_needs_a_valid_certificate_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let tls = Config {
            listen: vec!["tls:127.0.0.1:5061".into()],
            ..Config::default()
        };
        let e = tls.validate().unwrap_err();
        assert!(matches!(e, ConfigError::TlsWithoutCert(_)), "{e}");
        assert!(e.to_string().contains("tls:127.0.0.1:5061"), "{e}");
        assert!(e.to_string().contains("--tls-cert"), "{e}");

        let cert = dir.path().join("srs.crt");
        let key = dir.path().join("srs.key");
        let c = Config {
            tls_cert: Some(cert.clone()),
            ..tls.clone()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("tls-key"), "{e}");

        // Unreadable file: the message names it.
        let c = Config {
            tls_cert: Some(cert.clone()),
            tls_key: Some(key.clone()),
            ..tls.clone()
        };
        let e = c.validate().unwrap_err();
        assert!(matches!(e, ConfigError::Tls(_)), "{e}");
        assert!(e.to_string().contains("srs.crt"), "{e}");

        // Invalid PEM.
        std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nnot base64!\n").unwrap();
        std::fs::write(&key, "").unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("srs.crt") && e.contains("PEM"), "{e}");

        // A real certificate and key.
        let ck = rcgen::generate_simple_self_signed(vec!["srs.test".into()]).unwrap();
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("srs.key") && e.contains("private key"), "{e}");
        std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
        let v = c.validate().unwrap();
        assert!(v.tls.is_some());
        assert_eq!(v.listen[0].transport, Transport::Tls);

        let t: Config = toml::from_str(
            "listen = [\"tls:0.0.0.0:5061\"]\ntls_cert = \"a.pem\"\ntls_key = \"b.pem\"\n",
        )
        .unwrap();
        assert_eq!(t.tls_cert.as_deref(), Some(std::path::Path::new("a.pem")));
        assert_eq!(t.tls_key.as_deref(), Some(std::path::Path::new("b.pem")));
    }

    #[test]
    fn toml_round_trip_and_unknown_keys_rejected() {
        let c: Config = toml::from_str("rtp_ports = \"40000-40100\"\nmedia_timeout = 5\n").unwrap();
        assert_eq!(c.rtp_ports, "40000-40100");
        assert_eq!(c.media_timeout, 5);
        assert_eq!(c.storage, "./recordings");
        assert!(toml::from_str::<Config>("rtp_port = \"1-2\"").is_err());
        let c: Config = toml::from_str(
            "storage = \"s3://recordings/srs\"\nspool_max_mb = 5\n[s3]\nendpoint = \"http://127.0.0.1:3900\"\nregion = \"garage\"\nallow_http = true\n",
        )
        .unwrap();
        assert_eq!(c.s3.endpoint.as_deref(), Some("http://127.0.0.1:3900"));
        let v = c.validate().unwrap();
        assert_eq!(v.spool_max_bytes, Some(5 * 1024 * 1024));
        assert!(toml::from_str::<Config>("[s3]\nbucket = \"x\"\n").is_err());
    }

    #[test]
    fn storage_and_ranges_are_checked() {
        let c = Config {
            storage: "s3://".into(),
            ..Config::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("no bucket"), "{e}");
        let c = Config {
            checkpoint_ms: 1,
            ..Config::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("checkpoint_ms"));
        let c = Config {
            media_clock_rate: f64::NAN,
            ..Config::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("media_clock_rate"));
    }
}
