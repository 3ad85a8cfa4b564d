//! Settings of a [`GatewayCore`](crate::GatewayCore).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use siprec_core::client::{SrsUri, SrtpOffer};
use siprec_sip::transaction::{Peer, TimerConfig, Transport};

use crate::Error;

/// Where every incoming call goes (the B leg): the URI written in the Request-URI (with the
/// caller's user part) and the address it resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// `sip:HOST[:PORT][;transport=udp|tcp|tls]` or `sips:HOST[:PORT]`.
    pub uri: SrsUri,
    /// Where B-leg requests are sent.
    pub peer: Peer,
}

impl Forward {
    /// Parses `--forward` and takes `addr` as the address its host resolved to (the driver
    /// resolves names; an IP literal resolves to itself). The transport is the URI's
    /// (`sips:` = TLS), UDP when it names none.
    pub fn new(uri: &str, addr: IpAddr) -> Result<Forward, Error> {
        let uri = SrsUri::parse(uri.trim())
            .map_err(|e| Error::Config(format!("--forward {uri:?}: {e}")))?;
        let transport = uri.required_transport().unwrap_or(Transport::Udp);
        let port = uri.port.unwrap_or_else(|| uri.default_port());
        Ok(Forward {
            peer: Peer {
                transport,
                addr: SocketAddr::new(addr, port),
            },
            uri,
        })
    }
}

/// How recording sessions to SRSs are run (the [`siprec_core::client::SrcConfig`] values the
/// gateway does not derive from the call).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingSettings {
    /// How long a start waits for the first SRS (default 2 s, as the node).
    pub start_timeout: Duration,
    /// How long one target may stay silent before the next of the same URI (default 1 s).
    pub target_timeout: Duration,
    /// How long stop, pause and resume wait for each SRS (default 8 s).
    pub request_timeout: Duration,
    /// When to offer SRTP to SRSs (default: to `sips:` SRSs).
    pub srtp: SrtpOffer,
}

impl Default for RecordingSettings {
    fn default() -> Self {
        RecordingSettings {
            start_timeout: Duration::from_secs(2),
            target_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(8),
            srtp: SrtpOffer::Sips,
        }
    }
}

/// Settings of the B2BUA.
///
/// Defaults (see [`GatewayConfig::new`]): RFC 3261 timers, no record-all, the recording ID
/// of record-all calls from `X-Recording-ID`, INFO commands from any party of the call, 1,000
/// calls at most, 120 s for the B leg to answer.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// SIP timers (T1 500 ms, T2 4 s, T4 5 s).
    pub timers: TimerConfig,
    /// Where calls go.
    pub forward: Forward,
    /// Our SIP address per transport (Via, Contact, and the recording sessions' Contact). A
    /// leg over a transport without one uses the first address.
    pub local: Vec<(Transport, SocketAddr)>,
    /// The address in the SDP the gateway writes (both legs and the SRSs).
    pub media_ip: IpAddr,
    /// Record every call from its answer to its end towards this Call Recording Server value
    /// (`--record-all`).
    pub record_all: Option<String>,
    /// The header of the initial INVITE that carries a record-all call's Recording ID.
    pub record_all_id_header: String,
    /// Who may send recording INFOs; empty = any party of the call.
    pub control_from: Vec<ipnet::IpNet>,
    /// Most calls at once; an INVITE beyond gets `503` with `Retry-After`.
    pub max_calls: usize,
    /// How long the B leg may ring without a final answer before the gateway cancels it and
    /// answers the A leg `480`.
    pub answer_timeout: Duration,
    /// Recording sessions.
    pub recording: RecordingSettings,
    /// `User-Agent` / `Server` header value.
    pub user_agent: String,
}

impl GatewayConfig {
    /// Defaults around the two things without one: where calls go and our SIP addresses.
    pub fn new(forward: Forward, local: Vec<(Transport, SocketAddr)>, media_ip: IpAddr) -> Self {
        GatewayConfig {
            timers: TimerConfig::default(),
            forward,
            local,
            media_ip,
            record_all: None,
            record_all_id_header: "X-Recording-ID".into(),
            control_from: Vec::new(),
            max_calls: 1000,
            answer_timeout: Duration::from_secs(120),
            recording: RecordingSettings::default(),
            user_agent: concat!("siprec-rs-gateway/", env!("CARGO_PKG_VERSION")).into(),
        }
    }

    /// Checks the settings. Errors name the setting.
    pub fn validate(&self) -> Result<(), Error> {
        if self.local.is_empty() {
            return Err(Error::Config("no SIP listen address".into()));
        }
        if self.max_calls == 0 {
            return Err(Error::Config("--max-calls must be at least 1".into()));
        }
        let h = self.record_all_id_header.trim();
        if h.is_empty()
            || !h
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
        {
            return Err(Error::Config(format!(
                "--record-all-id-header {h:?} is not a header name"
            )));
        }
        if let Some(v) = &self.record_all {
            siprec_core::client::parse_server_list(v)
                .map_err(|e| Error::Config(format!("--record-all: {e}")))?;
        }
        if self.media_ip.is_unspecified() {
            return Err(Error::Config(
                "--media-ip must be an address the legs can reach, not 0.0.0.0 or ::".into(),
            ));
        }
        Ok(())
    }

    /// Our address for `transport` (else the first one).
    pub fn local_for(&self, transport: Transport) -> SocketAddr {
        self.local
            .iter()
            .find(|(t, _)| *t == transport)
            .or(self.local.first())
            .map(|(_, a)| *a)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 5060)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_uri_forms() {
        let ip: IpAddr = "192.0.2.5".parse().unwrap();
        let f = Forward::new("sip:192.0.2.5", ip).unwrap();
        assert_eq!(
            f.peer,
            Peer {
                transport: Transport::Udp,
                addr: "192.0.2.5:5060".parse().unwrap()
            }
        );
        let f = Forward::new("sip:pbx.example.com:5070;transport=tcp", ip).unwrap();
        assert_eq!(f.peer.transport, Transport::Tcp);
        assert_eq!(f.peer.addr.port(), 5070);
        let f = Forward::new("sips:pbx.example.com", ip).unwrap();
        assert_eq!(
            (f.peer.transport, f.peer.addr.port()),
            (Transport::Tls, 5061)
        );
        let e = Forward::new("https://pbx", ip).unwrap_err().to_string();
        assert!(e.contains("--forward"), "{e}");
    }

    #[test]
    fn validation_names_the_setting() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let f = Forward::new("sip:127.0.0.1:5070", ip).unwrap();
        let mut c = GatewayConfig::new(
            f,
            vec![(Transport::Udp, "127.0.0.1:5060".parse().unwrap())],
            ip,
        );
        assert!(c.validate().is_ok());
        c.record_all = Some("wss://x".into());
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("--record-all"));
        c.record_all = None;
        c.record_all_id_header = "X Bad".into();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("--record-all-id-header"));
        c.record_all_id_header = "X-Recording-ID".into();
        c.max_calls = 0;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("--max-calls"));
    }
}
