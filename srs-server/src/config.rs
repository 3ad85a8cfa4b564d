//! srs-server configuration: plain structs with documented defaults, read from TOML, the
//! environment and the command line (in that order, later wins), then validated.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use siprec_sip_tokio::ListenAddr;

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
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// SIP listeners, `udp:HOST:PORT` / `tcp:HOST:PORT`.
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
        }
    }
}

/// A configuration problem, with what to fix.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A listen entry is not `udp:HOST:PORT` or `tcp:HOST:PORT`.
    #[error("listen {0:?}: expected udp:HOST:PORT or tcp:HOST:PORT (e.g. udp:0.0.0.0:5060)")]
    Listen(String),
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
    fn toml_round_trip_and_unknown_keys_rejected() {
        let c: Config = toml::from_str("rtp_ports = \"40000-40100\"\nmedia_timeout = 5\n").unwrap();
        assert_eq!(c.rtp_ports, "40000-40100");
        assert_eq!(c.media_timeout, 5);
        assert_eq!(c.storage, "./recordings");
        assert!(toml::from_str::<Config>("rtp_port = \"1-2\"").is_err());
    }
}
