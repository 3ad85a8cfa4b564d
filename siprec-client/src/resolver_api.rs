//! How the recorder turns an SRS URI into addresses: the [`SrsResolver`] trait, an
//! implementation for IP literals only ([`IpLiteralResolver`]), and the adapter to the RFC 3263
//! DNS resolver of [`crate::resolve`].
//!
//! The sans-IO core asks for a resolution with [`Event::Resolve`](siprec_core::client::Event) and
//! takes back the ordered targets; the driver calls the configured [`SrsResolver`] and fails
//! over along the list (timeout, transport error, 503: RFC 3263 §4.3).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use siprec_client::resolver_api::{IpLiteralResolver, SrsResolver};
//! use siprec_client::SrsUri;
//!
//! let uri = SrsUri::parse("sip:[2001:db8::7];transport=tcp").unwrap();
//! let targets = IpLiteralResolver.resolve(&uri).await.unwrap();
//! assert_eq!(targets[0].target.to_string(), "tcp:[2001:db8::7]:5060");
//! let name = SrsUri::parse("sip:srs.example.com").unwrap();
//! assert!(IpLiteralResolver.resolve(&name).await.is_err());
//! # }
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use siprec_core::client::{Host, SrsUri, Target};
use siprec_sip::transaction::Transport;

use crate::resolve;

/// One resolved target, with the name its TLS certificate must carry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResolvedTarget {
    /// Transport and address.
    pub target: Target,
    /// The name to verify a TLS certificate against (RFC 5922 §4: the URI's host).
    pub server_name: String,
}

/// A boxed future of a resolution.
pub type ResolveFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<ResolvedTarget>, String>> + Send + 'a>>;

/// Turns an SRS URI into the ordered list of targets to try (RFC 3263 §4).
///
/// (The brief called it `Resolver`; the DNS implementation in [`crate::resolve`] is a struct of
/// that name, so the trait is `SrsResolver`.) The error is a sentence naming the problem; it
/// ends up in the start outcome's reason.
pub trait SrsResolver: Send + Sync + std::fmt::Debug {
    /// Resolves `uri`. An empty list counts as a failure.
    fn resolve<'a>(&'a self, uri: &'a SrsUri) -> ResolveFuture<'a>;
}

/// Resolves IP literals only (RFC 3263 §4.1/§4.2 for a numeric host): the URI's port or the
/// default one (5060, 5061 for TLS), the `transport` parameter, else UDP for `sip:` and TLS
/// for `sips:`. Host names are refused.
#[derive(Debug, Clone, Copy, Default)]
pub struct IpLiteralResolver;

/// The target of a URI whose host is an IP literal, or `None` for a host name.
pub fn literal_target(uri: &SrsUri) -> Option<ResolvedTarget> {
    let Host::Ip(ip) = &uri.host else {
        return None;
    };
    let transport = uri.required_transport().unwrap_or(Transport::Udp);
    let port = uri.port.unwrap_or(resolve::default_port(transport));
    Some(ResolvedTarget {
        target: Target {
            transport,
            addr: SocketAddr::new(*ip, port),
        },
        server_name: ip.to_string(),
    })
}

impl SrsResolver for IpLiteralResolver {
    fn resolve<'a>(&'a self, uri: &'a SrsUri) -> ResolveFuture<'a> {
        Box::pin(async move {
            literal_target(uri).map(|t| vec![t]).ok_or_else(|| {
                format!(
                    "{} is a host name and this recorder resolves IP literals only",
                    uri.host
                )
            })
        })
    }
}

impl SrsResolver for resolve::Resolver {
    fn resolve<'a>(&'a self, uri: &'a SrsUri) -> ResolveFuture<'a> {
        Box::pin(async move {
            let host = match &uri.host {
                Host::Name(n) => n.clone(),
                Host::Ip(ip) => ip.to_string(),
            };
            let dest = resolve::Destination::new(uri.secure, host, uri.port, uri.transport);
            let targets = resolve::Resolver::resolve(self, &dest)
                .await
                .map_err(|e| e.to_string())?;
            Ok(targets
                .into_iter()
                .map(|t| ResolvedTarget {
                    target: Target {
                        transport: t.transport,
                        addr: t.addr,
                    },
                    server_name: t.server_name,
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn literals_follow_rfc_3263_defaults() {
        let cases = [
            ("sip:192.0.2.1", "udp:192.0.2.1:5060"),
            ("sip:192.0.2.1:5070", "udp:192.0.2.1:5070"),
            ("sip:192.0.2.1;transport=tcp", "tcp:192.0.2.1:5060"),
            ("sip:192.0.2.1;transport=tls", "tls:192.0.2.1:5061"),
            ("sips:192.0.2.1", "tls:192.0.2.1:5061"),
            ("sips:[::1]:5071", "tls:[::1]:5071"),
        ];
        for (uri, want) in cases {
            let u = SrsUri::parse(uri).unwrap();
            let got = IpLiteralResolver.resolve(&u).await.unwrap();
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].target.to_string(), want, "{uri}");
        }
        let u = SrsUri::parse("sip:srs.example.com").unwrap();
        let e = IpLiteralResolver.resolve(&u).await.unwrap_err();
        assert!(e.contains("srs.example.com"), "{e}");
    }
}
