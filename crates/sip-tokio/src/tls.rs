//! TLS settings: the server certificate of `tls:` listeners and the trust anchors of outgoing
//! TLS connections.
//!
//! Both sides use rustls with the *ring* provider named explicitly
//! ([`rustls::ServerConfig::builder_with_provider`]): the process-wide default provider is never
//! consulted, so another crate enabling aws-lc-rs changes nothing here.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::Error;

/// Largest PEM file read (certificate chain, key or CA bundle). System bundles are ~250 KiB.
const MAX_PEM_FILE: u64 = 4 * 1024 * 1024;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn config_err(what: impl Into<String>, reason: impl fmt::Display) -> Error {
    Error::TlsConfig {
        what: what.into(),
        reason: reason.to_string(),
    }
}

fn read_pem_file(what: &str, path: &Path) -> Result<Vec<u8>, Error> {
    let what = format!("{what} {}", path.display());
    let meta = std::fs::metadata(path).map_err(|e| config_err(&what, e))?;
    if meta.len() > MAX_PEM_FILE {
        return Err(config_err(
            &what,
            format!("larger than {MAX_PEM_FILE} bytes; not a PEM file?"),
        ));
    }
    std::fs::read(path).map_err(|e| config_err(&what, e))
}

fn parse_certs(what: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| config_err(what, format!("invalid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(config_err(
            what,
            "no `-----BEGIN CERTIFICATE-----` block found",
        ));
    }
    Ok(certs)
}

fn parse_key(what: &str, pem: &[u8]) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => config_err(
            what,
            "no private key found (expected a PKCS#8 `PRIVATE KEY`, PKCS#1 `RSA PRIVATE KEY` or SEC1 `EC PRIVATE KEY` block)",
        ),
        e => config_err(what, format!("invalid PEM: {e}")),
    })
}

/// Certificate chain and private key of the `tls:` listeners (server side), and optionally
/// the CA that client certificates must chain to (mutual TLS).
#[derive(Clone)]
pub struct TlsServer {
    pub(crate) config: Arc<rustls::ServerConfig>,
    certs: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
}

impl fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsServer").finish_non_exhaustive()
    }
}

impl TlsServer {
    /// Reads a PEM certificate chain (leaf first, then intermediates) and a PEM private key.
    ///
    /// Errors name the file and what is wrong with it (unreadable, no certificate block,
    /// no key, key not matching the certificate).
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<TlsServer, Error> {
        let cert_what = format!("TLS certificate file {}", cert.display());
        let key_what = format!("TLS key file {}", key.display());
        let certs = parse_certs(&cert_what, &read_pem_file("TLS certificate file", cert)?)?;
        let key = parse_key(&key_what, &read_pem_file("TLS key file", key)?)?;
        Self::build(certs, key, &cert_what)
    }

    /// Same as [`TlsServer::from_pem_files`] from PEM text in memory.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<TlsServer, Error> {
        let certs = parse_certs("TLS certificate", cert_pem)?;
        let key = parse_key("TLS key", key_pem)?;
        Self::build(certs, key, "TLS certificate")
    }

    fn build(
        certs: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        what: &str,
    ) -> Result<TlsServer, Error> {
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| config_err(what, e))?
            .with_no_client_auth()
            .with_single_cert(certs.clone(), key.clone_key())
            .map_err(|e| config_err(what, format!("certificate and key unusable: {e}")))?;
        Ok(TlsServer {
            config: Arc::new(config),
            certs,
            key: Arc::new(key),
        })
    }

    /// Mutual TLS: every client must present a certificate chaining to one in the PEM CA
    /// file `ca` (RFC 5922 §7.3 allows mutual authentication); handshakes without one fail.
    pub fn require_client_cert(self, ca: &Path) -> Result<TlsServer, Error> {
        let what = format!("TLS client CA file {}", ca.display());
        let pem = read_pem_file("TLS client CA file", ca)?;
        self.require_client_cert_pem(&pem, &what)
    }

    /// [`TlsServer::require_client_cert`] with the CA certificates as PEM text.
    pub fn require_client_cert_pem(self, ca_pem: &[u8], what: &str) -> Result<TlsServer, Error> {
        let mut roots = rustls::RootCertStore::empty();
        for c in parse_certs(what, ca_pem)? {
            roots
                .add(c)
                .map_err(|e| config_err(what, format!("unusable CA certificate: {e}")))?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .map_err(|e| config_err(what, e))?;
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| config_err(what, e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.certs.clone(), self.key.clone_key())
            .map_err(|e| config_err(what, format!("certificate and key unusable: {e}")))?;
        Ok(TlsServer {
            config: Arc::new(config),
            ..self
        })
    }
}

/// Trust anchors for outgoing TLS connections (client side): the server's certificate must
/// chain to one of them and name the server (RFC 5922 §7.1: the SIP domain of the URI, or
/// the IP literal).
#[derive(Clone)]
pub struct TlsClient {
    pub(crate) config: Arc<rustls::ClientConfig>,
    roots: Arc<rustls::RootCertStore>,
}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClient").finish_non_exhaustive()
    }
}

impl TlsClient {
    /// Trusts the certificates of a PEM CA file, or the system's roots when `ca_file` is
    /// `None` (`/etc/ssl/certs` on Debian, overridable with `SSL_CERT_FILE`/`SSL_CERT_DIR`).
    pub fn new(ca_file: Option<&Path>) -> Result<TlsClient, Error> {
        match ca_file {
            Some(path) => {
                let what = format!("TLS CA file {}", path.display());
                let certs = parse_certs(&what, &read_pem_file("TLS CA file", path)?)?;
                Self::from_roots(certs, &what)
            }
            None => Self::system_roots(),
        }
    }

    /// Trusts the certificates of PEM text in memory.
    pub fn from_ca_pem(pem: &[u8]) -> Result<TlsClient, Error> {
        let certs = parse_certs("TLS CA certificates", pem)?;
        Self::from_roots(certs, "TLS CA certificates")
    }

    /// Trusts the operating system's root certificates.
    pub fn system_roots() -> Result<TlsClient, Error> {
        let found = rustls_native_certs::load_native_certs();
        let mut roots = rustls::RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            let why = found
                .errors
                .first()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default();
            return Err(config_err(
                "system TLS roots",
                format!("no usable root certificate found{why}; install ca-certificates or give a CA file"),
            ));
        }
        Self::with_store(roots, "system TLS roots")
    }

    fn from_roots(certs: Vec<CertificateDer<'static>>, what: &str) -> Result<TlsClient, Error> {
        let mut roots = rustls::RootCertStore::empty();
        for c in certs {
            roots
                .add(c)
                .map_err(|e| config_err(what, format!("unusable CA certificate: {e}")))?;
        }
        Self::with_store(roots, what)
    }

    fn with_store(roots: rustls::RootCertStore, what: &str) -> Result<TlsClient, Error> {
        let roots = Arc::new(roots);
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| config_err(what, e))?
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        Ok(TlsClient {
            config: Arc::new(config),
            roots,
        })
    }

    /// Presents this certificate chain (leaf first) and key to servers that ask for one
    /// (mutual TLS).
    pub fn with_client_cert(self, cert: &Path, key: &Path) -> Result<TlsClient, Error> {
        let cert_pem = read_pem_file("TLS client certificate file", cert)?;
        let key_pem = read_pem_file("TLS client key file", key)?;
        self.with_client_cert_pem(&cert_pem, &key_pem)
    }

    /// [`TlsClient::with_client_cert`] from PEM text.
    pub fn with_client_cert_pem(self, cert_pem: &[u8], key_pem: &[u8]) -> Result<TlsClient, Error> {
        let what = "TLS client certificate";
        let certs = parse_certs(what, cert_pem)?;
        let key = parse_key("TLS client key", key_pem)?;
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| config_err(what, e))?
            .with_root_certificates(self.roots.clone())
            .with_client_auth_cert(certs, key)
            .map_err(|e| config_err(what, format!("certificate and key unusable: {e}")))?;
        Ok(TlsClient {
            config: Arc::new(config),
            roots: self.roots,
        })
    }
}

/// The name a server certificate is checked against: a DNS name, or an IP literal (IPv6 with
/// or without brackets).
pub(crate) fn server_name(name: &str) -> Result<ServerName<'static>, Error> {
    let bare = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    ServerName::try_from(bare.to_string()).map_err(|_| Error::InvalidServerName(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_accept_dns_names_and_ip_literals() {
        assert!(matches!(
            server_name("srs.example.com").unwrap(),
            ServerName::DnsName(_)
        ));
        assert!(matches!(
            server_name("127.0.0.1").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("[::1]").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("bad name!"),
            Err(Error::InvalidServerName(_))
        ));
    }

    #[test]
    fn pem_errors_name_the_file_and_the_problem() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, "not a certificate\n").unwrap();
        std::fs::write(&key, "nor a key\n").unwrap();
        let e = TlsServer::from_pem_files(&cert, &key)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cert.pem") && e.contains("no `-----BEGIN CERTIFICATE"),
            "{e}"
        );

        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        let e = TlsServer::from_pem_files(&cert, &key)
            .unwrap_err()
            .to_string();
        assert!(e.contains("key.pem") && e.contains("no private key"), "{e}");

        let missing = dir.join("missing.pem");
        let e = TlsServer::from_pem_files(&missing, &key)
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.pem"), "{e}");

        // A key that is not the certificate's.
        let other = rcgen::KeyPair::generate().unwrap();
        std::fs::write(&key, other.serialize_pem()).unwrap();
        let e = TlsServer::from_pem_files(&cert, &key)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cert.pem"), "{e}");

        std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
        TlsServer::from_pem_files(&cert, &key).unwrap();

        let e = TlsClient::new(Some(&key)).unwrap_err().to_string();
        assert!(e.contains("TLS CA file") && e.contains("key.pem"), "{e}");
        TlsClient::new(Some(&cert)).unwrap();
    }
}
