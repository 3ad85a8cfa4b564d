//! SIP and SIPS URIs (RFC 3261 §19.1, §25.1) with IPv6 references (RFC 3261 §25.1 `IPv6reference`,
//! RFC 5118), and `host[:port]` as in a Via `sent-by` (RFC 3261 §20.42).
//!
//! This is the one URI parser of the project: the Request-URI of every received request and
//! the URIs of Contact, Record-Route and Route values go through [`SipUri::parse`]. rsip only
//! holds the result ([`SipUri::to_rsip`]); it never parses received text. rsip prints an
//! [`rsip::Host::IpAddr`] IPv6 address without brackets, so [`SipUri::to_rsip`] stores an IPv6
//! host as the bracketed text (`rsip::Host::Domain("[::1]")`), which rsip prints as given.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use thiserror::Error;

/// Why a URI or a `host[:port]` could not be read. Every variant means the text (usually
/// from a peer) is not a valid SIP URI.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum UriError {
    /// The scheme is not `sip:` or `sips:`.
    #[error("not a sip: or sips: URI")]
    Scheme,
    /// The host is missing or is not a host name, an IPv4 address or a bracketed IPv6
    /// address.
    #[error("invalid host {0:?}")]
    Host(String),
    /// `[` without `]`, or text other than `:port` after `]`.
    #[error("invalid IPv6 reference {0:?}")]
    Ipv6Reference(String),
    /// An IPv6 address outside brackets (RFC 3261 §25.1 requires `[...]` in URIs and sent-by).
    #[error("IPv6 address outside brackets: {0:?}")]
    BareIpv6(String),
    /// The port is not a number from 0 to 65535.
    #[error("invalid port {0:?}")]
    Port(String),
}

/// The host of a URI or sent-by (RFC 3261 §25.1 `host`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A host name, as written.
    Name(String),
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 address (written in brackets).
    V6(Ipv6Addr),
}

impl Host {
    /// Parses `name`, `192.0.2.1` or `[2001:db8::1]`. A bare IPv6 address is refused (RFC 3261
    /// §25.1: `IPv6reference = "[" IPv6address "]"`); use [`Host::parse_lenient`] where a bare
    /// address is acceptable.
    pub fn parse(text: &str) -> Result<Host, UriError> {
        if let Some(inner) = text.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| UriError::Ipv6Reference(crate::error::excerpt(text)))?;
            // RFC 3261 §25.1 `IPv6reference`: no zone identifier (`%eth0`) in a SIP URI.
            return inner
                .parse::<Ipv6Addr>()
                .map(Host::V6)
                .map_err(|_| UriError::Ipv6Reference(crate::error::excerpt(text)));
        }
        if text.contains(':') {
            return Err(UriError::BareIpv6(crate::error::excerpt(text)));
        }
        if text.is_empty()
            || !text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return Err(UriError::Host(crate::error::excerpt(text)));
        }
        if text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return text
                .parse::<Ipv4Addr>()
                .map(Host::V4)
                .map_err(|_| UriError::Host(crate::error::excerpt(text)));
        }
        Ok(Host::Name(text.to_string()))
    }

    /// As [`Host::parse`], but a bare IPv6 address is accepted too (for a Via `received`
    /// parameter, RFC 3261 §18.2.1, whose IPv6 form is written without brackets).
    pub fn parse_lenient(text: &str) -> Result<Host, UriError> {
        match text.parse::<Ipv6Addr>() {
            Ok(v6) => Ok(Host::V6(v6)),
            Err(_) => Host::parse(text),
        }
    }

    /// The address, for an IP literal.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Name(_) => None,
            Host::V4(v4) => Some(IpAddr::V4(*v4)),
            Host::V6(v6) => Some(IpAddr::V6(*v6)),
        }
    }

    /// The host as rsip holds it: IPv6 as bracketed text, which rsip prints as given.
    pub fn to_rsip(&self) -> rsip::Host {
        match self {
            Host::V4(v4) => rsip::Host::IpAddr(IpAddr::V4(*v4)),
            other => rsip::Host::Domain(other.to_string().into()),
        }
    }

    /// Case-insensitive host equality (RFC 3261 §19.1.4), addresses compared as addresses.
    pub fn matches(&self, other: &Host) -> bool {
        match (self, other) {
            (Host::Name(a), Host::Name(b)) => a.eq_ignore_ascii_case(b),
            (a, b) => a == b,
        }
    }
}

impl From<IpAddr> for Host {
    fn from(ip: IpAddr) -> Host {
        match ip {
            IpAddr::V4(v4) => Host::V4(v4),
            IpAddr::V6(v6) => Host::V6(v6),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::V4(v4) => write!(f, "{v4}"),
            Host::V6(v6) => write!(f, "[{v6}]"),
        }
    }
}

/// Parses `host[:port]` (RFC 3261 §25.1 `hostport`, the Via `sent-by` of §20.42):
/// `example.com`, `192.0.2.1:5060`, `[2001:db8::1]:5070`.
pub fn parse_host_port(text: &str) -> Result<(Host, Option<u16>), UriError> {
    let text = text.trim();
    let (host, port) = if text.starts_with('[') {
        let end = text
            .find(']')
            .ok_or_else(|| UriError::Ipv6Reference(crate::error::excerpt(text)))?;
        let (host, rest) = text.split_at(end + 1);
        match rest {
            "" => (host, None),
            _ => match rest.strip_prefix(':') {
                Some(p) => (host, Some(p)),
                None => return Err(UriError::Ipv6Reference(crate::error::excerpt(text))),
            },
        }
    } else if text.matches(':').count() > 1 {
        return Err(UriError::BareIpv6(crate::error::excerpt(text)));
    } else {
        match text.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => Some(parse_port(p)?),
    };
    Ok((Host::parse(host)?, port))
}

fn parse_port(p: &str) -> Result<u16, UriError> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UriError::Port(crate::error::excerpt(p)));
    }
    p.parse()
        .map_err(|_| UriError::Port(crate::error::excerpt(p)))
}

/// A `sip:` or `sips:` URI (RFC 3261 §19.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    /// `sips:`.
    pub secure: bool,
    /// The user part, as written (escapes kept), if any.
    pub user: Option<String>,
    /// The password after `user:`, if any (RFC 3261 §19.1.1 advises against it).
    pub password: Option<String>,
    /// Host name or IP literal.
    pub host: Host,
    /// The explicit port, if any.
    pub port: Option<u16>,
    /// URI parameters in order, names as written; flags (`;lr`) have no value.
    pub params: Vec<(String, Option<String>)>,
    /// The headers component after `?`, as written, if any.
    pub headers: Option<String>,
}

impl SipUri {
    /// Parses a `sip:` or `sips:` URI (scheme case-insensitive, RFC 3261 §19.1.4). The host may
    /// be a name, an IPv4 address or a bracketed IPv6 address (`sip:[2001:db8::1]:5060`,
    /// RFC 5118 §4.1). Never panics.
    pub fn parse(text: &str) -> Result<SipUri, UriError> {
        let text = text.trim();
        let (scheme, rest) = text.split_once(':').ok_or(UriError::Scheme)?;
        let secure = if scheme.eq_ignore_ascii_case("sip") {
            false
        } else if scheme.eq_ignore_ascii_case("sips") {
            true
        } else {
            return Err(UriError::Scheme);
        };
        // The userinfo ends at the first '@' (the user part has no unescaped '@'); an '@'
        // after a '?' belongs to the headers component.
        let at = rest
            .find('@')
            .filter(|&at| rest.find('?').is_none_or(|q| at < q));
        let (userinfo, hostpart) = match at {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((u, p)) => (Some(u.to_string()), Some(p.to_string())),
                None => (Some(u.to_string()), None),
            },
        };
        let (hostpart, headers) = match hostpart.split_once('?') {
            Some((h, q)) => (h, Some(q.to_string())),
            None => (hostpart, None),
        };
        // The host-port ends at the first ';' (after the brackets of an IPv6 reference).
        let search_from = if hostpart.starts_with('[') {
            hostpart.find(']').unwrap_or(0)
        } else {
            0
        };
        let (hostport, params) = match hostpart[search_from..].find(';') {
            Some(i) => hostpart.split_at(search_from + i),
            None => (hostpart, ""),
        };
        let (host, port) = parse_host_port(hostport)?;
        let params = params
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((n, v)) => (n.trim().to_string(), Some(v.trim().to_string())),
                None => (p.to_string(), None),
            })
            .collect();
        Ok(SipUri {
            secure,
            user,
            password,
            host,
            port,
            params,
            headers,
        })
    }

    /// The value of a URI parameter (case-insensitive name): `Some(None)` for a flag.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    /// The `transport` parameter, lowercased (RFC 3261 §19.1.1).
    pub fn transport(&self) -> Option<String> {
        self.param("transport")
            .flatten()
            .map(|t| t.to_ascii_lowercase())
    }

    /// `host[:port]` as written in a Via sent-by (IPv6 in brackets).
    pub fn host_port(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.to_string(),
        }
    }

    /// The URI as rsip holds it (for a Request-URI), printing as [`SipUri`]'s `Display` does
    /// but without the headers component (rsip has no place for it); an IPv6 host is kept as
    /// bracketed text, parameters as written.
    pub fn to_rsip(&self) -> rsip::Uri {
        // Parameters stay as written (rsip would print a known transport in upper case).
        let params = self
            .params
            .iter()
            .map(|(n, v)| rsip::Param::Other(n.clone().into(), v.clone().map(Into::into)))
            .collect();
        rsip::Uri {
            scheme: Some(if self.secure {
                rsip::Scheme::Sips
            } else {
                rsip::Scheme::Sip
            }),
            auth: self.user.clone().map(|user| rsip::Auth {
                user,
                password: self.password.clone(),
            }),
            host_with_port: rsip::HostWithPort {
                host: self.host.to_rsip(),
                port: self.port.map(Into::into),
            },
            params,
            headers: Vec::new(),
        }
    }

    /// Reads back a URI rsip holds (one built by [`SipUri::to_rsip`] or by hand).
    pub fn from_rsip(uri: &rsip::Uri) -> Result<SipUri, UriError> {
        SipUri::parse(&uri.to_string())
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "sips:" } else { "sip:" })?;
        if let Some(u) = &self.user {
            f.write_str(u)?;
            if let Some(p) = &self.password {
                write!(f, ":{p}")?;
            }
            f.write_str("@")?;
        }
        f.write_str(&self.host_port())?;
        for (n, v) in &self.params {
            match v {
                Some(v) => write!(f, ";{n}={v}")?,
                None => write!(f, ";{n}")?,
            }
        }
        if let Some(h) = &self.headers {
            write!(f, "?{h}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for SipUri {
    type Err = UriError;
    fn from_str(s: &str) -> Result<SipUri, UriError> {
        SipUri::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses, prints, parses again: both parses agree and the print is `printed`.
    fn round_trip(text: &str, printed: &str) -> SipUri {
        let uri = SipUri::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(uri.to_string(), printed);
        assert_eq!(SipUri::parse(printed).unwrap(), uri);
        // rsip holds it and prints the same text (without URI headers).
        let via_rsip = SipUri::from_rsip(&uri.to_rsip()).unwrap();
        assert_eq!(via_rsip.host, uri.host);
        assert_eq!(via_rsip.port, uri.port);
        // rsip prints a known transport in upper case (values compare case-insensitively,
        // RFC 3261 §19.1.4).
        let lower = |u: &SipUri| -> Vec<(String, Option<String>)> {
            u.params
                .iter()
                .map(|(n, v)| {
                    (
                        n.to_ascii_lowercase(),
                        v.as_ref().map(|v| v.to_ascii_lowercase()),
                    )
                })
                .collect()
        };
        assert_eq!(lower(&via_rsip), lower(&uri));
        uri
    }

    #[test]
    fn ipv6_references_print_and_parse() {
        let u = round_trip("sip:[::1]:5060", "sip:[::1]:5060");
        assert_eq!(u.host, Host::V6(Ipv6Addr::LOCALHOST));
        assert_eq!(u.port, Some(5060));
        let u = round_trip(
            "sip:srs@[2001:db8::10]:5070;transport=TCP;lr",
            "sip:srs@[2001:db8::10]:5070;transport=TCP;lr",
        );
        assert_eq!(u.user.as_deref(), Some("srs"));
        assert_eq!(u.transport().as_deref(), Some("tcp"));
        assert_eq!(u.param("lr"), Some(None));
        assert_eq!(
            u.to_rsip().to_string(),
            "sip:srs@[2001:db8::10]:5070;transport=TCP;lr"
        );
        // RFC 5118 §4.9: an IPv4-mapped IPv6 address in a reference.
        let u = round_trip("sips:[::ffff:192.0.2.1]", "sips:[::ffff:192.0.2.1]");
        assert!(u.secure);
        assert_eq!(u.port, None);
        // RFC 5118 §4.3 / §4.4: a port inside the brackets is part of the address; only
        // `]:port` is a port.
        let u = round_trip("sip:[2001:db8::10:5070]", "sip:[2001:db8::10:5070]");
        assert_eq!(u.port, None);
        let u = round_trip("sip:[2001:db8::10]:5070", "sip:[2001:db8::10]:5070");
        assert_eq!(u.port, Some(5070));
        // The same address written two ways is the same host.
        let a = SipUri::parse("sip:[2001:db8::9:1]").unwrap();
        let b = SipUri::parse("sip:[2001:db8:0:0:0:0:9:1]").unwrap();
        assert!(a.host.matches(&b.host));
        let u = round_trip(
            "sip:user:pw@[::1];maddr=[::2]?subject=x@y",
            "sip:user:pw@[::1];maddr=[::2]?subject=x@y",
        );
        assert_eq!(u.password.as_deref(), Some("pw"));
        assert_eq!(u.param("maddr"), Some(Some("[::2]")));
        assert_eq!(u.headers.as_deref(), Some("subject=x@y"));
    }

    #[test]
    fn names_and_ipv4() {
        let u = round_trip(
            "SIP:alice@Example.COM;transport=udp",
            "sip:alice@Example.COM;transport=udp",
        );
        assert_eq!(u.host, Host::Name("Example.COM".into()));
        let u = round_trip("sip:192.0.2.1:5060", "sip:192.0.2.1:5060");
        assert_eq!(u.host.ip(), Some("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn invalid_uris_are_errors() {
        for bad in [
            "sip:::1",              // RFC 5118 §4.2: IPv6 without brackets
            "sip:2001:db8::1:5060", // likewise
            "sip:[::1",             // unclosed reference
            "sip:[::1]x",           // text after ]
            "sip:[::1]:99999",      // port out of range
            "sip:[fe80::1%eth0]",   // zone identifier
            "sip:[not-v6]",
            "sip:",
            "sip:host:",
            "tel:+15551234",
            "http://example.com",
            "sip:ex ample.com",
            "",
        ] {
            assert!(SipUri::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    /// The property the `sip_uri` fuzz target checks, on random text over the characters
    /// that matter: what parses prints as text that parses back to the same URI.
    #[test]
    fn what_parses_prints_and_parses_back() {
        use rand::{Rng, SeedableRng};
        let alphabet: Vec<char> = "sip:S@[]:;=?.-ab1f0 \u{2003}%/".chars().collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut parsed = 0;
        for _ in 0..200_000 {
            let len = rng.random_range(0..24);
            let mut text = String::from(if rng.random_bool(0.5) {
                "sip:"
            } else {
                "sips:"
            });
            for _ in 0..len {
                text.push(alphabet[rng.random_range(0..alphabet.len())]);
            }
            if let Ok(uri) = SipUri::parse(&text) {
                parsed += 1;
                let printed = uri.to_string();
                assert_eq!(
                    SipUri::parse(&printed).as_ref(),
                    Ok(&uri),
                    "{text:?} → {printed:?}"
                );
            }
            let _ = parse_host_port(&text[4..]);
        }
        assert!(parsed > 1000, "only {parsed} parsed");
    }

    #[test]
    fn host_port_sent_by() {
        assert_eq!(
            parse_host_port("[::1]:5070").unwrap(),
            (Host::V6(Ipv6Addr::LOCALHOST), Some(5070))
        );
        assert_eq!(
            parse_host_port("[2001:db8::1]").unwrap(),
            (Host::V6("2001:db8::1".parse().unwrap()), None)
        );
        assert_eq!(
            parse_host_port("192.0.2.1").unwrap(),
            (Host::V4("192.0.2.1".parse().unwrap()), None)
        );
        assert!(parse_host_port("::1").is_err());
        assert!(parse_host_port("[::1]5060").is_err());
        assert_eq!(
            Host::parse_lenient("2001:db8::1").unwrap(),
            Host::V6("2001:db8::1".parse().unwrap())
        );
    }
}
