//! A certificate authority made by the test (rcgen) and the rustls server settings of an HTTPS
//! receiver on 127.0.0.1 whose certificate it issued. Nothing is trusted by the system: a client
//! trusts it only when given the CA's PEM.

use std::path::Path;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

pub struct TestCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        TestCa {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA certificate as PEM (what `webhooks.ca_file` holds).
    pub fn pem(&self) -> &str {
        &self.pem
    }

    pub fn write_pem(&self, path: &Path) {
        std::fs::write(path, &self.pem)
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }

    /// A certificate for `host` issued by this CA and its key, as PEM files (for servers that
    /// are not Rust, e.g. the test SMTP server).
    pub fn write_server_pem(&self, host: &str, cert: &Path, key: &Path) {
        let pair = KeyPair::generate().expect("server key");
        let params = CertificateParams::new(vec![host.to_string()]).expect("server params");
        let c = params.signed_by(&pair, &self.issuer).expect("server cert");
        std::fs::write(cert, c.pem()).expect("write server cert");
        std::fs::write(key, pair.serialize_pem()).expect("write server key");
    }

    /// Server settings with a certificate for `host` (an IP address or a name) issued by this CA.
    pub fn server_config(&self, host: &str) -> Arc<rustls::ServerConfig> {
        let key = KeyPair::generate().expect("server key");
        let params = CertificateParams::new(vec![host.to_string()]).expect("server params");
        let cert = params.signed_by(&key, &self.issuer).expect("server cert");
        let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server certificate and key");
        Arc::new(config)
    }
}
