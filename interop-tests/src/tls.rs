//! TLS material for tests: a private CA, a server certificate and a client certificate
//! signed by it, made fresh with rcgen and written to a directory (nothing is committed).

use std::path::{Path, PathBuf};

use anyhow::Context;
use siprec_sip_tokio::TlsClient;

/// A CA and one server certificate, as PEM files in a directory.
#[derive(Debug, Clone)]
pub struct TestPki {
    /// The CA certificate (what clients trust).
    pub ca_file: PathBuf,
    /// The server certificate (leaf, then nothing: the CA is the issuer).
    pub cert_file: PathBuf,
    /// The server's private key (PKCS#8).
    pub key_file: PathBuf,
    /// The CA certificate as PEM text.
    pub ca_pem: String,
    /// A client certificate signed by the CA (extended key usage clientAuth), for mutual TLS.
    pub client_cert_file: PathBuf,
    /// Its private key.
    pub client_key_file: PathBuf,
}

impl TestPki {
    /// Makes a CA named `ca_name` and a certificate for `names` (DNS names and IP literals
    /// become DNS and IP subject alternative names), written to `dir` as `ca.pem`,
    /// `srs.pem` and `srs.key`.
    pub fn generate(dir: &Path, ca_name: &str, names: &[&str]) -> anyhow::Result<TestPki> {
        let ca_key = rcgen::KeyPair::generate()?;
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, ca_name);
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key)?;
        let key = rcgen::KeyPair::generate()?;
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            names.first().copied().unwrap_or("srs"),
        );
        let cert = params.signed_by(&key, &ca)?;
        let client_key = rcgen::KeyPair::generate()?;
        let mut client_params = rcgen::CertificateParams::new(vec!["src.test".to_string()])?;
        client_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "siprec test SRC");
        client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = client_params.signed_by(&client_key, &ca)?;
        std::fs::create_dir_all(dir)?;
        let pki = TestPki {
            ca_file: dir.join("ca.pem"),
            cert_file: dir.join("srs.pem"),
            key_file: dir.join("srs.key"),
            ca_pem: ca.pem(),
            client_cert_file: dir.join("src.pem"),
            client_key_file: dir.join("src.key"),
        };
        let write = |p: &Path, s: String| {
            std::fs::write(p, s).with_context(|| format!("writing {}", p.display()))
        };
        write(&pki.ca_file, ca.pem())?;
        write(&pki.cert_file, cert.pem())?;
        write(&pki.key_file, key.serialize_pem())?;
        write(&pki.client_cert_file, client_cert.pem())?;
        write(&pki.client_key_file, client_key.serialize_pem())?;
        Ok(pki)
    }

    /// A TLS client that trusts this CA (through the CA file, as a user would configure it).
    pub fn client(&self) -> anyhow::Result<TlsClient> {
        Ok(TlsClient::new(Some(&self.ca_file))?)
    }

    /// A TLS client that trusts this CA and presents the client certificate (mutual TLS).
    pub fn client_with_cert(&self) -> anyhow::Result<TlsClient> {
        Ok(TlsClient::new(Some(&self.ca_file))?
            .with_client_cert(&self.client_cert_file, &self.client_key_file)?)
    }
}
