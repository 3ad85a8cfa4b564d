//! Locating an SRS: RFC 3263 server location (NAPTR → SRV → A/AAAA) with hickory-resolver.
//!
//! Input: a SIP URI's scheme, host, port and `transport` parameter ([`Destination`]).
//! Output: the ordered list of [`Target`]s to try, first to last; the caller fails over to
//! the next one on a timeout, a transport error or a 503 (RFC 3263 §4.3).
//!
//! The rules (RFC 3263 §4.1 and §4.2):
//! - IP literal: that address, the port of the URI or the default port (5060, 5061 for TLS);
//!   transport from the `transport` parameter, else UDP for `sip:` and TLS for `sips:`.
//! - Host name with a port: A/AAAA of the host, on that port, same transport choice.
//! - Host name without a port and with a `transport` parameter: the SRV records of that
//!   transport (`_sip._udp`, `_sip._tcp`, `_sips._tcp`).
//! - Host name without a port nor a transport: NAPTR records (`SIP+D2U`, `SIP+D2T`,
//!   `SIPS+D2T`; only `SIPS+D2T` for `sips:`) in order/preference, each followed by its SRV
//!   records; without NAPTR, SRV `_sips._tcp` for `sips:`, else `_sip._udp` then `_sip._tcp`.
//! - SRV records in ascending priority, weight-randomised within a priority (RFC 2782), then
//!   A/AAAA of each SRV target.
//! - No SRV record: A/AAAA of the host on 5060 (UDP) or 5061 (TLS for `sips:`).
//!
//! The server name of every target, for TLS certificate checks, is the host of the URI (RFC
//! 5922 §4: the SIP domain, never the SRV target).
//!
//! Ordering rules are plain functions ([`order_srv`], [`naptr_services`],
//! [`default_port`]) so they are tested without a network.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), siprec_client::resolve::ResolveError> {
//! use siprec_client::resolve::{Destination, Resolver, ResolverConfig};
//! use siprec_sip::transaction::Transport;
//!
//! let resolver = Resolver::new(ResolverConfig {
//!     nameserver: Some("127.0.0.1:53".parse().unwrap()),
//!     ..ResolverConfig::default()
//! })?;
//! // An IP literal needs no DNS at all.
//! let targets = resolver.resolve(&Destination::new(true, "192.0.2.7", None, None)).await?;
//! assert_eq!(targets[0].transport, Transport::Tls);
//! assert_eq!(targets[0].addr, "192.0.2.7:5061".parse().unwrap());
//! assert_eq!(targets[0].server_name, "192.0.2.7");
//! # Ok(()) }
//! ```

use std::cmp::Ordering;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig as HickoryConfig,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::{Name, TokioResolver};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use siprec_sip::transaction::Transport;

/// Most targets one resolution returns (a hostile zone cannot make the failover list huge).
pub const MAX_TARGETS: usize = 32;

/// Most SRV records used from one answer.
const MAX_SRV: usize = 32;

/// Errors of resolution.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// Our input is wrong: the destination cannot be resolved as given (empty or invalid host
    /// name, `sips:` with `transport=udp`).
    #[error("cannot resolve {host:?}: {reason}")]
    InvalidDestination {
        /// The host as given.
        host: String,
        /// What is wrong.
        reason: String,
    },
    /// Our configuration is wrong: the system resolver configuration (`/etc/resolv.conf`)
    /// cannot be read.
    #[error("DNS resolver configuration: {0}")]
    Config(String),
    /// DNS answered, but has no usable record for the host (no SRV, no A/AAAA).
    #[error("no DNS record for {host} (tried {tried})")]
    NotFound {
        /// The host.
        host: String,
        /// The queries made, e.g. `NAPTR, SRV _sip._udp, SRV _sip._tcp, A/AAAA`.
        tried: String,
    },
    /// DNS failed (timeout, server failure, refused) and nothing usable was found.
    #[error("DNS lookup for {host} failed: {reason}")]
    Dns {
        /// The host.
        host: String,
        /// The last failure.
        reason: String,
    },
    /// The whole resolution took longer than [`ResolverConfig::total_timeout`].
    #[error("DNS resolution of {host} took longer than {after:?}")]
    Timeout {
        /// The host.
        host: String,
        /// The limit.
        after: Duration,
    },
}

/// What to resolve: the parts of a `sip:`/`sips:` URI that matter for server location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// `true` for a `sips:` URI (TLS only).
    pub secure: bool,
    /// Host name, IPv4 literal, or IPv6 literal (with or without brackets).
    pub host: String,
    /// Port of the URI, if any.
    pub port: Option<u16>,
    /// The URI's `transport` parameter, if any.
    pub transport: Option<Transport>,
}

impl Destination {
    /// A destination from its parts.
    pub fn new(
        secure: bool,
        host: impl Into<String>,
        port: Option<u16>,
        transport: Option<Transport>,
    ) -> Destination {
        Destination {
            secure,
            host: host.into(),
            port,
            transport,
        }
    }

    fn bare_host(&self) -> &str {
        self.host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&self.host)
    }
}

/// One place to send the request to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// Transport to use.
    pub transport: Transport,
    /// Address and port.
    pub addr: SocketAddr,
    /// Name the server's TLS certificate must carry: the URI host (or IP literal).
    pub server_name: String,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = match self.transport {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        };
        write!(f, "{t}:{} ({})", self.addr, self.server_name)
    }
}

/// Resolver settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverConfig {
    /// Ask only this DNS server, over UDP (no hosts file, no search domains). `None` uses
    /// the system configuration (`/etc/resolv.conf`, `/etc/hosts`).
    pub nameserver: Option<SocketAddr>,
    /// Timeout of one DNS query attempt. Default 1 s.
    pub query_timeout: Duration,
    /// Attempts per query. Default 2.
    pub attempts: usize,
    /// Bound on a whole resolution (all its queries). Default 5 s.
    pub total_timeout: Duration,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        ResolverConfig {
            nameserver: None,
            query_timeout: Duration::from_secs(1),
            attempts: 2,
            total_timeout: Duration::from_secs(5),
        }
    }
}

/// The default port of a transport: 5060 for UDP and TCP, 5061 for TLS (RFC 3261 §19.1.2).
pub fn default_port(transport: Transport) -> u16 {
    match transport {
        Transport::Tls => 5061,
        Transport::Udp | Transport::Tcp => 5060,
    }
}

/// The transport the URI fixes without DNS: its `transport` parameter (TLS for any
/// `sips:` one). `sips:` with `transport=udp` is an error (RFC 3261 §26.2.2: SIPS means TLS).
fn explicit_transport(d: &Destination) -> Result<Option<Transport>, ResolveError> {
    match (d.secure, d.transport) {
        (true, Some(Transport::Udp)) => Err(ResolveError::InvalidDestination {
            host: d.host.clone(),
            reason: "a sips: URI cannot use transport=udp (sips means TLS)".into(),
        }),
        (true, Some(_)) => Ok(Some(Transport::Tls)),
        (_, t) => Ok(t),
    }
}

/// RFC 3263 §4.1: with no transport parameter and no DNS guidance, UDP for `sip:`, TLS over
/// TCP for `sips:`.
fn fallback_transport(secure: bool) -> Transport {
    if secure {
        Transport::Tls
    } else {
        Transport::Udp
    }
}

/// The SRV owner-name prefix of a transport (RFC 3263 §4.1).
pub fn srv_prefix(transport: Transport) -> &'static str {
    match transport {
        Transport::Udp => "_sip._udp",
        Transport::Tcp => "_sip._tcp",
        Transport::Tls => "_sips._tcp",
    }
}

/// One SRV record (RFC 2782).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    /// Lower is tried first.
    pub priority: u16,
    /// Relative share within a priority.
    pub weight: u16,
    /// Port on the target.
    pub port: u16,
    /// Target host name (`.` means "no service here").
    pub target: String,
}

/// Orders SRV records for trying (RFC 2782): ascending priority; within a priority, a
/// weighted random order (zero weights first in the running sum, so they are picked rarely).
/// Records whose target is `.` are dropped (the service is decidedly not available).
pub fn order_srv<R: Rng + ?Sized>(records: &[SrvRecord], rng: &mut R) -> Vec<SrvRecord> {
    let mut recs: Vec<SrvRecord> = records
        .iter()
        .filter(|r| r.target != "." && !r.target.is_empty())
        .take(MAX_SRV)
        .cloned()
        .collect();
    // Stable sort: zero weights first within each priority, as RFC 2782 asks.
    recs.sort_by(|a, b| {
        a.priority
            .cmp(&b.priority)
            .then_with(|| match (a.weight == 0, b.weight == 0) {
                (true, false) => Ordering::Less,
                (false, true) => Ordering::Greater,
                _ => Ordering::Equal,
            })
    });
    let mut out = Vec::with_capacity(recs.len());
    let mut i = 0;
    while i < recs.len() {
        let prio = recs.get(i).map(|r| r.priority);
        let end = recs
            .iter()
            .skip(i)
            .position(|r| Some(r.priority) != prio)
            .map_or(recs.len(), |n| i + n);
        let mut group: Vec<SrvRecord> = recs.get(i..end).map(<[_]>::to_vec).unwrap_or_default();
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.weight)).sum();
            let pick = rng.random_range(0..=total);
            let mut running = 0u32;
            let idx = group
                .iter()
                .position(|r| {
                    running += u32::from(r.weight);
                    running >= pick
                })
                .unwrap_or(0);
            out.push(group.remove(idx));
        }
        i = end;
    }
    out
}

/// One NAPTR record (RFC 3403), as far as SIP uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NaptrRecord {
    /// Lower is used first.
    pub order: u16,
    /// Lower is preferred among equal orders.
    pub preference: u16,
    /// `S` for SIP: the replacement is an SRV owner name.
    pub flags: String,
    /// `SIP+D2U`, `SIP+D2T`, `SIPS+D2T`, …
    pub services: String,
    /// The SRV owner name to query.
    pub replacement: String,
}

/// The usable NAPTR records, in order then preference, as (transport, SRV name): flag `S`,
/// service `SIP+D2U` (UDP), `SIP+D2T` (TCP) or `SIPS+D2T` (TLS), and for a `sips:` URI only
/// `SIPS+D2T` (RFC 3263 §4.1). Other services (SCTP, WebSocket, ENUM…) are skipped.
pub fn naptr_services(records: &[NaptrRecord], secure: bool) -> Vec<(Transport, String)> {
    let mut recs: Vec<&NaptrRecord> = records.iter().collect();
    recs.sort_by_key(|r| (r.order, r.preference));
    let mut out: Vec<(Transport, String)> = Vec::new();
    for r in recs {
        if !r.flags.eq_ignore_ascii_case("s") {
            continue;
        }
        let transport = match r.services.to_ascii_uppercase().as_str() {
            "SIP+D2U" if !secure => Transport::Udp,
            "SIP+D2T" if !secure => Transport::Tcp,
            "SIPS+D2T" => Transport::Tls,
            _ => continue,
        };
        let name = r.replacement.trim_end_matches('.');
        if name.is_empty() {
            continue;
        }
        let entry = (transport, name.to_string());
        if !out.contains(&entry) {
            out.push(entry);
        }
    }
    out
}

/// RFC 3263 resolver over hickory-resolver.
#[derive(Debug, Clone)]
pub struct Resolver {
    dns: TokioResolver,
    cfg: ResolverConfig,
}

/// Accumulates what was asked and the last DNS failure, for the final error.
#[derive(Default)]
struct Trace {
    tried: Vec<String>,
    failure: Option<String>,
}

impl Resolver {
    /// A resolver with these settings. Reads the system configuration when no nameserver is
    /// given.
    pub fn new(cfg: ResolverConfig) -> Result<Resolver, ResolveError> {
        let provider = TokioConnectionProvider::default();
        let mut builder = match cfg.nameserver {
            Some(ns) => {
                let servers = vec![NameServerConfig::new(ns, Protocol::Udp)];
                let config = HickoryConfig::from_parts(None, vec![], servers);
                TokioResolver::builder_with_config(config, provider)
            }
            None => {
                TokioResolver::builder(provider).map_err(|e| ResolveError::Config(e.to_string()))?
            }
        };
        let opts = builder.options_mut();
        opts.timeout = cfg.query_timeout;
        opts.attempts = cfg.attempts;
        opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        if cfg.nameserver.is_some() {
            opts.use_hosts_file = ResolveHosts::Never;
            opts.ndots = 0;
        }
        Ok(Resolver {
            dns: builder.build(),
            cfg,
        })
    }

    /// The ordered targets for `d` (at most [`MAX_TARGETS`], duplicates removed).
    pub async fn resolve(&self, d: &Destination) -> Result<Vec<Target>, ResolveError> {
        let mut rng = StdRng::from_os_rng();
        self.resolve_with_rng(d, &mut rng).await
    }

    /// [`Resolver::resolve`] with the random source for the SRV weight order given (tests
    /// pass a seeded one).
    pub async fn resolve_with_rng<R: Rng + Send>(
        &self,
        d: &Destination,
        rng: &mut R,
    ) -> Result<Vec<Target>, ResolveError> {
        let after = self.cfg.total_timeout;
        match tokio::time::timeout(after, self.resolve_inner(d, rng)).await {
            Ok(r) => r,
            Err(_) => Err(ResolveError::Timeout {
                host: d.host.clone(),
                after,
            }),
        }
    }

    async fn resolve_inner<R: Rng + Send>(
        &self,
        d: &Destination,
        rng: &mut R,
    ) -> Result<Vec<Target>, ResolveError> {
        let host = d.bare_host();
        let explicit = explicit_transport(d)?;
        if host.is_empty() {
            return Err(ResolveError::InvalidDestination {
                host: d.host.clone(),
                reason: "empty host".into(),
            });
        }
        let bracketed = host.len() != d.host.len();
        if bracketed && host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(ResolveError::InvalidDestination {
                host: d.host.clone(),
                reason: "brackets are for IPv6 literals only".into(),
            });
        }
        // RFC 3263 §4.2: a numeric IP needs no lookup.
        if let Ok(ip) = host.parse::<IpAddr>() {
            let transport = explicit.unwrap_or_else(|| fallback_transport(d.secure));
            let port = d.port.unwrap_or_else(|| default_port(transport));
            return Ok(vec![Target {
                transport,
                addr: SocketAddr::new(ip, port),
                server_name: ip.to_string(),
            }]);
        }
        let fqdn = fqdn(host).map_err(|e| ResolveError::InvalidDestination {
            host: d.host.clone(),
            reason: format!("not a valid host name: {e}"),
        })?;
        let server_name = host.trim_end_matches('.').to_string();
        let mut trace = Trace::default();
        let mut targets = Vec::new();

        // Explicit port: A/AAAA on that port.
        if let Some(port) = d.port {
            let transport = explicit.unwrap_or_else(|| fallback_transport(d.secure));
            self.push_addresses(
                &mut targets,
                &mut trace,
                &fqdn,
                port,
                transport,
                &server_name,
            )
            .await;
            return finish(targets, trace, d);
        }

        // No port: SRV names from NAPTR, or per transport.
        let mut srv_names: Vec<(Transport, String)> = Vec::new();
        if let Some(t) = explicit {
            srv_names.push((t, format!("{}.{}", srv_prefix(t), fqdn)));
        } else {
            let naptr = self.naptr(&fqdn, &mut trace).await;
            srv_names = naptr_services(&naptr, d.secure)
                .into_iter()
                .map(|(t, n)| (t, format!("{n}.")))
                .collect();
        }
        let from_naptr = !srv_names.is_empty() && explicit.is_none();
        targets = self
            .srv_targets(&srv_names, &server_name, &mut trace, rng)
            .await;
        if targets.is_empty() && explicit.is_none() {
            // No NAPTR (or its SRV names gave nothing): SRV per transport.
            let fallback: Vec<(Transport, String)> = if d.secure {
                vec![Transport::Tls]
            } else {
                vec![Transport::Udp, Transport::Tcp]
            }
            .into_iter()
            .map(|t| (t, format!("{}.{}", srv_prefix(t), fqdn)))
            .filter(|n| !(from_naptr && srv_names.contains(n)))
            .collect();
            targets = self
                .srv_targets(&fallback, &server_name, &mut trace, rng)
                .await;
        }
        if targets.is_empty() {
            // RFC 3263 §4.2: no SRV, A/AAAA of the host on the default port.
            let transport = explicit.unwrap_or_else(|| fallback_transport(d.secure));
            self.push_addresses(
                &mut targets,
                &mut trace,
                &fqdn,
                default_port(transport),
                transport,
                &server_name,
            )
            .await;
        }
        finish(targets, trace, d)
    }

    async fn naptr(&self, fqdn: &str, trace: &mut Trace) -> Vec<NaptrRecord> {
        trace.tried.push("NAPTR".into());
        match self.dns.lookup(fqdn, RecordType::NAPTR).await {
            Ok(lookup) => lookup
                .iter()
                .filter_map(|r| match r {
                    RData::NAPTR(n) => Some(NaptrRecord {
                        order: n.order(),
                        preference: n.preference(),
                        flags: String::from_utf8_lossy(n.flags()).into_owned(),
                        services: String::from_utf8_lossy(n.services()).into_owned(),
                        replacement: n.replacement().to_ascii(),
                    }),
                    _ => None,
                })
                .collect(),
            Err(e) => {
                note_failure(trace, &e);
                Vec::new()
            }
        }
    }

    /// SRV lookups of `names` in turn, each ordered by RFC 2782, then A/AAAA of each target.
    async fn srv_targets<R: Rng + Send>(
        &self,
        names: &[(Transport, String)],
        server_name: &str,
        trace: &mut Trace,
        rng: &mut R,
    ) -> Vec<Target> {
        let mut out = Vec::new();
        for (transport, name) in names {
            trace
                .tried
                .push(format!("SRV {}", name.trim_end_matches('.')));
            let records: Vec<SrvRecord> = match self.dns.srv_lookup(name.as_str()).await {
                Ok(l) => l
                    .iter()
                    .map(|s| SrvRecord {
                        priority: s.priority(),
                        weight: s.weight(),
                        port: s.port(),
                        target: s.target().to_ascii(),
                    })
                    .collect(),
                Err(e) => {
                    note_failure(trace, &e);
                    continue;
                }
            };
            for r in order_srv(&records, rng) {
                let Ok(target) = fqdn(&r.target) else {
                    continue;
                };
                self.push_addresses(&mut out, trace, &target, r.port, *transport, server_name)
                    .await;
                if out.len() >= MAX_TARGETS {
                    return out;
                }
            }
        }
        out
    }

    async fn push_addresses(
        &self,
        out: &mut Vec<Target>,
        trace: &mut Trace,
        fqdn: &str,
        port: u16,
        transport: Transport,
        server_name: &str,
    ) {
        let what = "A/AAAA".to_string();
        if !trace.tried.contains(&what) {
            trace.tried.push(what);
        }
        match self.dns.lookup_ip(fqdn).await {
            Ok(ips) => {
                for ip in ips.iter() {
                    let t = Target {
                        transport,
                        addr: SocketAddr::new(ip, port),
                        server_name: server_name.to_string(),
                    };
                    if out.len() < MAX_TARGETS && !out.contains(&t) {
                        out.push(t);
                    }
                }
            }
            Err(e) => note_failure(trace, &e),
        }
    }
}

fn note_failure(trace: &mut Trace, e: &hickory_resolver::ResolveError) {
    if !e.is_no_records_found() {
        trace.failure = Some(e.to_string());
    }
}

fn finish(
    targets: Vec<Target>,
    trace: Trace,
    d: &Destination,
) -> Result<Vec<Target>, ResolveError> {
    if !targets.is_empty() {
        return Ok(targets);
    }
    let host = d.bare_host().to_string();
    Err(match trace.failure {
        Some(reason) => ResolveError::Dns { host, reason },
        None => ResolveError::NotFound {
            host,
            tried: trace.tried.join(", "),
        },
    })
}

/// The absolute form (`name.`) of a host name, checked by hickory's parser (whose error says
/// what is wrong with the name).
fn fqdn(host: &str) -> Result<String, hickory_resolver::proto::ProtoError> {
    let abs = if host.ends_with('.') {
        host.to_string()
    } else {
        format!("{host}.")
    };
    Name::from_ascii(&abs)?;
    Ok(abs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srv(priority: u16, weight: u16, target: &str) -> SrvRecord {
        SrvRecord {
            priority,
            weight,
            port: 5060,
            target: target.into(),
        }
    }

    fn naptr(order: u16, pref: u16, flags: &str, services: &str, repl: &str) -> NaptrRecord {
        NaptrRecord {
            order,
            preference: pref,
            flags: flags.into(),
            services: services.into(),
            replacement: repl.into(),
        }
    }

    #[test]
    fn srv_priority_ascending_then_weighted() {
        let mut rng = StdRng::seed_from_u64(7);
        let recs = [
            srv(20, 0, "c.example."),
            srv(10, 5, "a.example."),
            srv(30, 1, "."),
            srv(10, 5, "b.example."),
        ];
        for _ in 0..50 {
            let o = order_srv(&recs, &mut rng);
            let names: Vec<&str> = o.iter().map(|r| r.target.as_str()).collect();
            assert_eq!(names.len(), 3, "`.` dropped: {names:?}");
            assert!(names[..2].contains(&"a.example.") && names[..2].contains(&"b.example."));
            assert_eq!(names[2], "c.example.");
        }
    }

    #[test]
    fn srv_weights_are_honoured_statistically() {
        let mut rng = StdRng::seed_from_u64(42);
        let recs = [
            srv(1, 80, "heavy."),
            srv(1, 20, "light."),
            srv(1, 0, "zero."),
        ];
        let (mut heavy, mut light, mut zero) = (0, 0, 0);
        let n = 10_000;
        for _ in 0..n {
            let o = order_srv(&recs, &mut rng);
            assert_eq!(o.len(), 3);
            match o[0].target.as_str() {
                "heavy." => heavy += 1,
                "light." => light += 1,
                _ => zero += 1,
            }
        }
        // Expected: 80/101, 20/101, 1/101 (a zero weight wins only on a 0 draw).
        assert!((7600..8200).contains(&heavy), "heavy first {heavy}");
        assert!((1700..2300).contains(&light), "light first {light}");
        assert!(zero < 300, "zero-weight first {zero}");
    }

    #[test]
    fn srv_all_zero_weights_still_ordered_and_complete() {
        let mut rng = StdRng::seed_from_u64(1);
        let recs = [srv(5, 0, "a."), srv(5, 0, "b."), srv(1, 0, "first.")];
        let o = order_srv(&recs, &mut rng);
        assert_eq!(o[0].target, "first.");
        assert_eq!(o.len(), 3);
    }

    #[test]
    fn naptr_filters_and_orders() {
        let recs = [
            naptr(20, 10, "s", "SIP+D2U", "_sip._udp.example.com."),
            naptr(10, 20, "s", "SIP+D2T", "_sip._tcp.example.com."),
            naptr(10, 10, "S", "SIPS+D2T", "_sips._tcp.example.com."),
            naptr(5, 10, "s", "SIP+D2S", "_sip._sctp.example.com."),
            naptr(5, 10, "s", "SIPS+D2W", "_sips._ws.example.com."),
            naptr(5, 10, "u", "SIP+D2U", "."),
            naptr(1, 1, "s", "E2U+sip", "x.example.com."),
        ];
        assert_eq!(
            naptr_services(&recs, false),
            vec![
                (Transport::Tls, "_sips._tcp.example.com".to_string()),
                (Transport::Tcp, "_sip._tcp.example.com".to_string()),
                (Transport::Udp, "_sip._udp.example.com".to_string()),
            ]
        );
        assert_eq!(
            naptr_services(&recs, true),
            vec![(Transport::Tls, "_sips._tcp.example.com".to_string())]
        );
        assert!(naptr_services(&[], false).is_empty());
    }

    #[test]
    fn defaults_follow_rfc_3263() {
        assert_eq!(default_port(Transport::Udp), 5060);
        assert_eq!(default_port(Transport::Tcp), 5060);
        assert_eq!(default_port(Transport::Tls), 5061);
        assert_eq!(fallback_transport(false), Transport::Udp);
        assert_eq!(fallback_transport(true), Transport::Tls);
        assert_eq!(srv_prefix(Transport::Tls), "_sips._tcp");
        let d = |secure, t| Destination::new(secure, "h.example", None, t);
        assert_eq!(explicit_transport(&d(false, None)).unwrap(), None);
        assert_eq!(
            explicit_transport(&d(false, Some(Transport::Tls))).unwrap(),
            Some(Transport::Tls)
        );
        assert_eq!(
            explicit_transport(&d(true, Some(Transport::Tcp))).unwrap(),
            Some(Transport::Tls)
        );
        assert!(explicit_transport(&d(true, Some(Transport::Udp))).is_err());
        assert!(fqdn("bad host!").is_err());
        assert_eq!(fqdn("srs.example.com").unwrap(), "srs.example.com.");
    }

    /// A nameserver address where nothing answers: IP-literal paths must not query it.
    fn offline() -> Resolver {
        Resolver::new(ResolverConfig {
            nameserver: Some("127.0.0.1:9".parse().unwrap()),
            query_timeout: Duration::from_millis(100),
            attempts: 1,
            total_timeout: Duration::from_secs(1),
        })
        .unwrap()
    }

    #[tokio::test]
    async fn ip_literals_need_no_dns() {
        let r = offline();
        let cases = [
            (
                false,
                "192.0.2.1",
                None,
                None,
                Transport::Udp,
                "192.0.2.1:5060",
            ),
            (
                true,
                "192.0.2.1",
                None,
                None,
                Transport::Tls,
                "192.0.2.1:5061",
            ),
            (
                false,
                "192.0.2.1",
                None,
                Some(Transport::Tcp),
                Transport::Tcp,
                "192.0.2.1:5060",
            ),
            (
                false,
                "192.0.2.1",
                None,
                Some(Transport::Tls),
                Transport::Tls,
                "192.0.2.1:5061",
            ),
            (
                false,
                "[2001:db8::1]",
                Some(5070),
                None,
                Transport::Udp,
                "[2001:db8::1]:5070",
            ),
            (
                true,
                "2001:db8::1",
                None,
                None,
                Transport::Tls,
                "[2001:db8::1]:5061",
            ),
        ];
        for (secure, host, port, t, want_t, want_addr) in cases {
            let got = r
                .resolve(&Destination::new(secure, host, port, t))
                .await
                .unwrap();
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].transport, want_t, "{host}");
            assert_eq!(got[0].addr, want_addr.parse::<SocketAddr>().unwrap());
            assert_eq!(got[0].server_name, host.trim_matches(['[', ']']));
        }
        let e = r
            .resolve(&Destination::new(
                true,
                "192.0.2.1",
                None,
                Some(Transport::Udp),
            ))
            .await
            .unwrap_err();
        assert!(matches!(e, ResolveError::InvalidDestination { .. }), "{e}");
        for bad in ["[srs.example.com]", "[192.0.2.1]", "", "bad host!"] {
            let e = r
                .resolve(&Destination::new(false, bad, None, None))
                .await
                .unwrap_err();
            assert!(
                matches!(e, ResolveError::InvalidDestination { .. }),
                "{bad}: {e}"
            );
        }
    }

    #[tokio::test]
    async fn an_unreachable_nameserver_is_a_bounded_dns_failure() {
        let r = offline();
        let started = std::time::Instant::now();
        let e = r
            .resolve(&Destination::new(false, "srs.example.com", None, None))
            .await
            .unwrap_err();
        assert!(
            matches!(e, ResolveError::Dns { .. } | ResolveError::Timeout { .. }),
            "{e}"
        );
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
