//! The Call Recording Server value: the SRS URIs of a start, and the targets they resolve to.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use siprec_sip::rsip;
use siprec_sip::transaction::{Peer, Transport};
use siprec_sip::uri::{self, SipUri};

use super::error::Error;

/// Longest Call Recording Server value accepted, in bytes.
pub const MAX_SERVER_VALUE: usize = 4096;
/// Most URIs in one Call Recording Server value.
pub const MAX_SERVERS: usize = 16;
/// Most targets used per URI (after resolution).
pub const MAX_TARGETS: usize = 16;

/// The host of an SRS URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name (lowercased, without a trailing dot).
    Name(String),
    /// An IPv4 or IPv6 literal.
    Ip(IpAddr),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(IpAddr::V4(v4)) => write!(f, "{v4}"),
            Host::Ip(IpAddr::V6(v6)) => write!(f, "[{v6}]"),
        }
    }
}

/// Why one entry of a Call Recording Server value is not an accepted SRS URI (RFC 3261
/// §19.1.1, the subset of [`SrsUri`]). The entry comes from whoever starts the recording, so
/// every variant means *the input is wrong*; the texts name what is accepted instead.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerUriError {
    /// A WebSocket or HTTP URL (`what` says which).
    #[error("{what} is not supported: only SIP URIs are")]
    NotSip {
        /// E.g. "a WebSocket URL (wss://)".
        what: &'static str,
    },
    /// A URL of another scheme (`scheme://…`).
    #[error("unsupported URL scheme {0:?}: only sip: and sips: are accepted")]
    UrlScheme(String),
    /// A URI of another scheme (`tel:…`).
    #[error("unsupported URI scheme {0:?}: only sip: and sips: are accepted")]
    UriScheme(String),
    /// A host name or address without a scheme.
    #[error("a plain host name or IP address without the sip: or sips: scheme")]
    NoScheme,
    /// `sip://…`.
    #[error("a SIP URI has no \"//\" after the scheme")]
    DoubleSlash,
    /// White space inside the entry.
    #[error("contains white space")]
    WhiteSpace,
    /// A headers component (`?…`).
    #[error("URI headers (\"?…\") are not allowed")]
    Headers,
    /// `sip:@host`.
    #[error("empty user part before \"@\"")]
    EmptyUser,
    /// `sip:user:password@host`.
    #[error("passwords in URIs are not allowed")]
    Password,
    /// A user part with a character outside RFC 3261 §25.1 `user`.
    #[error("invalid character in user part {0:?}")]
    User(String),
    /// `[` without `]`.
    #[error("IPv6 address without closing \"]\"")]
    UnclosedIpv6,
    /// Text other than `:port` after `]`.
    #[error("unexpected text {0:?} after the IPv6 address")]
    AfterIpv6(String),
    /// Brackets around something that is not an IPv6 address.
    #[error("{0:?} is not an IPv6 address")]
    Ipv6(String),
    /// An IPv6 address without brackets (RFC 3261 §25.1 `IPv6reference`).
    #[error("an IPv6 address must be written in brackets, e.g. sip:[2001:db8::1]:5060")]
    BareIpv6,
    /// No host.
    #[error("no host")]
    NoHost,
    /// Digits and dots that are not an IPv4 address.
    #[error("{0:?} is not an IPv4 address")]
    Ipv4(String),
    /// A host name over 253 characters.
    #[error("host name longer than 253 characters")]
    HostTooLong,
    /// A host name with an invalid label (letters, digits and inner hyphens, at most 63).
    #[error("{0:?} is not a valid host name")]
    HostName(String),
    /// A port outside 1..=65535.
    #[error("invalid port {0:?} (1 to 65535)")]
    Port(String),
    /// `;;`.
    #[error("empty URI parameter")]
    EmptyParam,
    /// A parameter with characters outside RFC 3261 §25.1 `paramchar`.
    #[error("invalid URI parameter {0:?}")]
    Param(String),
    /// A `transport` other than udp, tcp, tls.
    #[error("unsupported transport {0:?} (accepted: udp, tcp, tls)")]
    Transport(String),
    /// `transport` twice.
    #[error("transport given twice")]
    TransportTwice,
    /// `sips:` with `transport=udp` (a sips: URI needs TLS, RFC 3261 §26.2.2).
    #[error("sips: needs TLS; transport=udp is not possible")]
    SipsUdp,
    /// More than 16 other parameters.
    #[error("too many URI parameters")]
    TooManyParams,
    // ----- the value as a whole -----
    /// The whole Call Recording Server value is over [`MAX_SERVER_VALUE`] bytes.
    #[error("the value is longer than {max} bytes")]
    ValueTooLong {
        /// The limit, in bytes.
        max: usize,
    },
    /// More than [`MAX_SERVERS`] URIs in the value.
    #[error("more than {max} URIs")]
    TooManyUris {
        /// The limit.
        max: usize,
    },
    /// An empty entry between commas.
    #[error("empty entry (two commas in a row, or a comma at the start or end)")]
    EmptyEntry,
}

/// One SRS URI of the Call Recording Server value (RFC 3261 §19.1.1, a subset: no password,
/// no URI headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrsUri {
    /// `sips:` (TLS).
    pub secure: bool,
    /// The user part, if any (`srs` in `sip:srs@host`).
    pub user: Option<String>,
    /// Host name or IP literal.
    pub host: Host,
    /// The explicit port, if any.
    pub port: Option<u16>,
    /// The `transport` parameter, if any (`sips:` with `transport=tcp` is TLS).
    pub transport: Option<Transport>,
    /// Other URI parameters, names lowercased, as written otherwise.
    pub params: Vec<(String, Option<String>)>,
}

impl SrsUri {
    /// Parses one entry (already trimmed). The error says what is wrong with it.
    pub fn parse(entry: &str) -> Result<SrsUri, ServerUriError> {
        parse_uri(entry)
    }

    /// The transport the URI demands: TLS for `sips:`, else its `transport` parameter.
    pub fn required_transport(&self) -> Option<Transport> {
        if self.secure {
            Some(Transport::Tls)
        } else {
            self.transport
        }
    }

    /// 5061 for TLS, else 5060 (RFC 3261 §19.1.2).
    pub fn default_port(&self) -> u16 {
        if self.required_transport() == Some(Transport::Tls) {
            5061
        } else {
            5060
        }
    }

    /// The URI as rsip represents it, for a Request-URI. IPv6 hosts are kept as bracketed text
    /// (rsip prints an IP address without brackets, but a domain as given), as
    /// [`siprec_sip::uri::SipUri::to_rsip`] does.
    pub fn to_rsip(&self) -> rsip::Uri {
        self.to_sip_uri().to_rsip()
    }

    /// The URI as the SIP layer's [`SipUri`] (`transport` first among the parameters).
    pub fn to_sip_uri(&self) -> SipUri {
        let host = match &self.host {
            Host::Name(n) => uri::Host::Name(n.clone()),
            Host::Ip(ip) => uri::Host::from(*ip),
        };
        let transport = self.transport.map(|t| {
            (
                "transport".to_string(),
                Some(t.as_str().to_ascii_lowercase()),
            )
        });
        SipUri {
            secure: self.secure,
            user: self.user.clone(),
            password: None,
            host,
            port: self.port,
            params: transport.into_iter().chain(self.params.clone()).collect(),
            headers: None,
        }
    }
}

impl fmt::Display for SrsUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "sips:" } else { "sip:" })?;
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        if let Some(t) = self.transport {
            write!(f, ";transport={}", t.as_str().to_ascii_lowercase())?;
        }
        for (n, v) in &self.params {
            match v {
                Some(v) => write!(f, ";{n}={v}")?,
                None => write!(f, ";{n}")?,
            }
        }
        Ok(())
    }
}

/// Parses the Call Recording Server value: comma-separated SIP URIs, each trimmed.
///
/// Accepted (siprec-notes §1.2 and the node page): `sip:host`, `sip:host:port`, `sip:IP`,
/// `sip:[IPv6]:port`, `sips:host`, with an optional user part and URI parameters
/// (`transport=udp|tcp|tls`, others kept). Refused, each with an [`Error::InvalidServer`]
/// naming the entry: `ws://`, `wss://`, `http://`, `https://` URLs, bare host names and IP
/// addresses, other schemes, empty entries, URI headers (`?…`), bad ports, bad hosts. A value
/// that is empty or only blanks is [`Error::MissingServer`].
pub fn parse_server_list(value: &str) -> Result<Vec<SrsUri>, Error> {
    if value.trim().is_empty() {
        return Err(Error::MissingServer);
    }
    if value.len() > MAX_SERVER_VALUE {
        return Err(Error::InvalidServer {
            entry: short(value),
            reason: ServerUriError::ValueTooLong {
                max: MAX_SERVER_VALUE,
            },
        });
    }
    let entries: Vec<&str> = value.split(',').map(str::trim).collect();
    if entries.len() > MAX_SERVERS {
        return Err(Error::InvalidServer {
            entry: short(value),
            reason: ServerUriError::TooManyUris { max: MAX_SERVERS },
        });
    }
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        if entry.is_empty() {
            return Err(Error::InvalidServer {
                entry: String::new(),
                reason: ServerUriError::EmptyEntry,
            });
        }
        let uri = parse_uri(entry).map_err(|reason| Error::InvalidServer {
            entry: short(entry),
            reason,
        })?;
        out.push(uri);
    }
    Ok(out)
}

/// A value shortened for an error message (200 characters, control characters as spaces).
pub(super) fn short(s: &str) -> String {
    siprec_sip::excerpt_chars(s, 200)
}

pub(super) fn is_unreserved_user(c: char) -> bool {
    // RFC 3261 §25.1: unreserved / escaped / user-unreserved.
    c.is_ascii_alphanumeric() || "-_.!~*'()%&=+$,;?/".contains(c)
}

pub(super) fn is_param_char(c: char) -> bool {
    // RFC 3261 §25.1 paramchar: param-unreserved / unreserved / escaped.
    c.is_ascii_alphanumeric() || "-_.!~*'()%[]/:&+$".contains(c)
}

pub(super) fn parse_uri(entry: &str) -> Result<SrsUri, ServerUriError> {
    if entry.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ServerUriError::WhiteSpace);
    }
    let lower = entry.to_ascii_lowercase();
    for (prefix, what) in [
        ("wss://", "a WebSocket URL (wss://)"),
        ("ws://", "a WebSocket URL (ws://)"),
        ("https://", "an HTTP URL (https://)"),
        ("http://", "an HTTP URL (http://)"),
    ] {
        if lower.starts_with(prefix) {
            return Err(ServerUriError::NotSip { what });
        }
    }
    let (secure, rest) = if let Some(r) = strip_prefix_ci(entry, "sips:") {
        (true, r)
    } else if let Some(r) = strip_prefix_ci(entry, "sip:") {
        (false, r)
    } else {
        return Err(no_scheme_reason(entry));
    };
    if rest.starts_with("//") {
        return Err(ServerUriError::DoubleSlash);
    }
    if rest.contains('?') {
        return Err(ServerUriError::Headers);
    }
    // user@
    let (user, hostpart) = match rest.rfind('@') {
        Some(at) => {
            let user = rest.get(..at).unwrap_or_default();
            if user.is_empty() {
                return Err(ServerUriError::EmptyUser);
            }
            if user.contains(':') {
                return Err(ServerUriError::Password);
            }
            if !user.chars().all(is_unreserved_user) {
                return Err(ServerUriError::User(user.to_string()));
            }
            (
                Some(user.to_string()),
                rest.get(at + 1..).unwrap_or_default(),
            )
        }
        None => (None, rest),
    };
    // host[:port] then ;params
    let (hostport, params_text) = if hostpart.starts_with('[') {
        let close = hostpart.find(']').ok_or(ServerUriError::UnclosedIpv6)?;
        let after = hostpart.get(close + 1..).unwrap_or_default();
        let cut = after.find(';').map_or(hostpart.len(), |i| close + 1 + i);
        (
            hostpart.get(..cut).unwrap_or_default(),
            hostpart.get(cut..).unwrap_or_default(),
        )
    } else {
        match hostpart.find(';') {
            Some(i) => (
                hostpart.get(..i).unwrap_or_default(),
                hostpart.get(i..).unwrap_or_default(),
            ),
            None => (hostpart, ""),
        }
    };
    let (host_text, port_text) = if let Some(r) = hostport.strip_prefix('[') {
        let close = r.find(']').unwrap_or(r.len());
        let inner = r.get(..close).unwrap_or_default();
        let after = r.get(close + 1..).unwrap_or_default();
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| ServerUriError::AfterIpv6(p.to_string()))?,
            ),
        };
        let v6: Ipv6Addr = inner
            .parse()
            .map_err(|_| ServerUriError::Ipv6(inner.to_string()))?;
        (Host::Ip(IpAddr::V6(v6)), port)
    } else {
        let (h, p) = match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        };
        if h.is_empty() {
            return Err(ServerUriError::NoHost);
        }
        if h.parse::<Ipv6Addr>().is_ok() || hostport.matches(':').count() > 1 {
            return Err(ServerUriError::BareIpv6);
        }
        (parse_host(h)?, p)
    };
    let port = match port_text {
        None => None,
        Some(p) => {
            let n: u32 = if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) {
                p.parse().unwrap_or(0)
            } else {
                0
            };
            if !(1..=65535).contains(&n) {
                return Err(ServerUriError::Port(p.to_string()));
            }
            Some(n as u16)
        }
    };
    let mut transport = None;
    let mut params = Vec::new();
    let mut rest = params_text;
    while let Some(r) = rest.strip_prefix(';') {
        let end = r.find(';').unwrap_or(r.len());
        let item = r.get(..end).unwrap_or_default();
        rest = r.get(end..).unwrap_or_default();
        if item.is_empty() {
            return Err(ServerUriError::EmptyParam);
        }
        let (name, value) = match item.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (item, None),
        };
        if name.is_empty() || !name.chars().all(is_param_char) {
            return Err(ServerUriError::Param(item.to_string()));
        }
        if let Some(v) = value {
            if v.is_empty() || !v.chars().all(is_param_char) {
                return Err(ServerUriError::Param(item.to_string()));
            }
        }
        let name_l = name.to_ascii_lowercase();
        if name_l == "transport" {
            let v = value.unwrap_or_default().to_ascii_lowercase();
            let t = match v.as_str() {
                "udp" => Transport::Udp,
                "tcp" => Transport::Tcp,
                "tls" => Transport::Tls,
                _ => {
                    return Err(ServerUriError::Transport(
                        value.unwrap_or_default().to_string(),
                    ))
                }
            };
            if transport.is_some() {
                return Err(ServerUriError::TransportTwice);
            }
            if secure && t == Transport::Udp {
                return Err(ServerUriError::SipsUdp);
            }
            transport = Some(t);
        } else {
            if params.len() >= 16 {
                return Err(ServerUriError::TooManyParams);
            }
            params.push((name_l, value.map(str::to_string)));
        }
    }
    Ok(SrsUri {
        secure,
        user,
        host: host_text,
        port,
        transport,
        params,
    })
}

pub(super) fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s.get(prefix.len()..))
        .flatten()
}

pub(super) fn no_scheme_reason(entry: &str) -> ServerUriError {
    if let Some(i) = entry.find("://") {
        return ServerUriError::UrlScheme(entry.get(..i).unwrap_or_default().to_string());
    }
    match entry.split_once(':') {
        Some((scheme, rest))
            if !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                && !rest.chars().next().is_some_and(|c| c.is_ascii_digit())
                && scheme.parse::<Ipv4Addr>().is_err() =>
        {
            ServerUriError::UriScheme(scheme.to_string())
        }
        _ => ServerUriError::NoScheme,
    }
}

pub(super) fn parse_host(h: &str) -> Result<Host, ServerUriError> {
    let h = h.strip_suffix('.').unwrap_or(h);
    if h.is_empty() {
        return Err(ServerUriError::NoHost);
    }
    let labels: Vec<&str> = h.split('.').collect();
    let numeric = labels
        .iter()
        .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()));
    if numeric {
        return h
            .parse::<Ipv4Addr>()
            .map(|a| Host::Ip(IpAddr::V4(a)))
            .map_err(|_| ServerUriError::Ipv4(h.to_string()));
    }
    if h.len() > 253 {
        return Err(ServerUriError::HostTooLong);
    }
    for l in &labels {
        let ok = !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-');
        if !ok {
            return Err(ServerUriError::HostName(h.to_string()));
        }
    }
    Ok(Host::Name(h.to_ascii_lowercase()))
}

/// One address to try for an SRS URI: what the driver's resolver returns, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    /// Transport to use.
    pub transport: Transport,
    /// Address and port.
    pub addr: SocketAddr,
}

impl From<Target> for Peer {
    fn from(t: Target) -> Peer {
        Peer {
            transport: t.transport,
            addr: t.addr,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}",
            self.transport.as_str().to_ascii_lowercase(),
            self.addr
        )
    }
}

/// Why a `TRANSPORT:ADDR:PORT` target cannot be read (the input is wrong).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// No `:` after the transport.
    #[error("{0:?}: expected udp|tcp|tls:ADDR:PORT")]
    Syntax(String),
    /// A transport other than udp, tcp, tls.
    #[error("{text:?}: unknown transport {transport:?}")]
    Transport {
        /// The whole target.
        text: String,
        /// The transport as written.
        transport: String,
    },
    /// The address is not `ADDR:PORT` (IPv6 as `[ADDR]:PORT`).
    #[error("{text:?}: {addr:?} is not ADDR:PORT")]
    Addr {
        /// The whole target.
        text: String,
        /// The address as written.
        addr: String,
    },
}

impl FromStr for Target {
    type Err = TargetError;
    /// `udp:1.2.3.4:5060`, `tcp:[::1]:5060`, `tls:…`.
    fn from_str(s: &str) -> Result<Self, TargetError> {
        let (t, a) = s
            .split_once(':')
            .ok_or_else(|| TargetError::Syntax(s.to_string()))?;
        let transport = match t.to_ascii_lowercase().as_str() {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            "tls" => Transport::Tls,
            _ => {
                return Err(TargetError::Transport {
                    text: s.to_string(),
                    transport: t.to_string(),
                })
            }
        };
        let addr = a.parse().map_err(|_| TargetError::Addr {
            text: s.to_string(),
            addr: a.to_string(),
        })?;
        Ok(Target { transport, addr })
    }
}
