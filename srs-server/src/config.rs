//! srs-server configuration: plain structs with documented defaults, read from TOML, the
//! environment and the command line (in that order, later wins), then validated.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use siprec_sip::transaction::Transport;
use siprec_sip_tokio::{ListenAddr, TlsServer};

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
/// - `instance_id`: the host name
/// - `tls_cert`, `tls_key`: none (required with a `tls:` listener)
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
    /// Instance identifier written into recording.json.
    pub instance_id: Option<String>,
    /// PEM certificate chain (leaf first) of the `tls:` listeners.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
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
            instance_id: None,
            tls_cert: None,
            tls_key: None,
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
    /// Instance id.
    pub instance_id: String,
    /// Certificate and key of the `tls:` listeners (loaded whenever they are configured).
    pub tls: Option<TlsServer>,
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
            instance_id,
            tls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
