//! HTTPS for webhooks: which certificate authorities the client trusts, and a rejected
//! certificate (or any failed delivery, webhook or mail: [`chain`]) told in words an admin can
//! act on.
//!
//! Trust is the platform's store (Debian's `/etc/ssl/certs`, via `rustls-native-certs`, which
//! also honours `SSL_CERT_FILE`/`SSL_CERT_DIR`) plus `webhooks.ca_file`, a PEM bundle for a
//! helpdesk behind a private CA. Both are read once, when the worker starts: a changed CA file
//! takes a restart, like every `[webhooks]` key.

use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{CertificateError, RootCertStore};
use thiserror::Error;
use tracing::{info, warn};

/// `webhooks.ca_file` cannot be used; each variant names the file.
#[derive(Debug, Error)]
pub enum CaFileError {
    #[error("cannot read the CA file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the CA file {} is not valid PEM: {reason}", path.display())]
    Pem { path: PathBuf, reason: String },
    #[error(
        "the CA file {} holds no certificate (expected PEM blocks \
         \"-----BEGIN CERTIFICATE-----\")", path.display()
    )]
    Empty { path: PathBuf },
    #[error(
        "the CA file {} holds {found} certificate(s) but none usable as a trust anchor",
        path.display()
    )]
    Unusable { path: PathBuf, found: usize },
}

/// The certificates of the PEM bundle at `path`, each checked usable as a trust anchor. Other
/// PEM blocks (a private key left in the same file) are ignored.
pub fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, CaFileError> {
    let text = std::fs::read(path).map_err(|source| CaFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CaFileError::Pem {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(CaFileError::Empty {
            path: path.to_path_buf(),
        });
    }
    let (usable, _) = RootCertStore::empty().add_parsable_certificates(certs.iter().cloned());
    if usable == 0 {
        return Err(CaFileError::Unusable {
            path: path.to_path_buf(),
            found: certs.len(),
        });
    }
    Ok(certs)
}

/// The TLS settings of the webhook client: the platform's CAs and those of `ca_file`, ring as
/// the crypto provider, HTTP/1.1 only (reqwest is built without HTTP/2).
pub fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, CaFileError> {
    let mut roots = RootCertStore::empty();
    let system = rustls_native_certs::load_native_certs();
    for e in &system.errors {
        // A broken entry in the system store should not stop the webhooks that need only
        // the configured CA; it is worth a line in the log.
        warn!(error = %e, "webhook HTTPS: skipping part of the system CA store");
    }
    let (from_system, _) = roots.add_parsable_certificates(system.certs);
    let mut from_file = 0;
    if let Some(path) = ca_file {
        (from_file, _) = roots.add_parsable_certificates(load_ca_file(path)?);
    }
    if roots.is_empty() {
        warn!(
            "webhook HTTPS: no CA certificates found (install Debian's ca-certificates, or set \
             webhooks.ca_file): every https:// delivery will fail until one is"
        );
    }
    info!(
        system_cas = from_system,
        ca_file = ca_file.map(|p| p.display().to_string()),
        ca_file_cas = from_file,
        "webhook HTTPS trust loaded"
    );
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// The TLS error somewhere in `e`'s chain of causes. hyper and tokio-rustls box it inside an
/// `io::Error`, whose `source()` skips the boxed error itself, so each `io::Error` on the way
/// is opened too.
pub fn find_tls_error<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            && let Some(tls) = find_tls_error(inner)
        {
            return Some(tls);
        }
        cur = err.source();
    }
    None
}

/// An error with its causes ("error sending request: connection refused"), capped in length
/// because it is stored with the row.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    if s.len() > 500 {
        let mut cut = 500;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// One line for the log and the outbox row: what was wrong with the receiver's certificate (or
/// the handshake), at which `host:port`, and what to do about it.
pub fn describe(tls: &rustls::Error, authority: &str) -> String {
    let (what, fix) = match tls {
        rustls::Error::InvalidCertificate(cert) => certificate_problem(cert),
        rustls::Error::AlertReceived(alert) => (
            format!("TLS handshake refused by the receiver ({alert:?} alert)"),
            "check the receiver's TLS settings",
        ),
        other => (
            format!("TLS handshake failed ({other})"),
            "check that the URL's port speaks HTTPS",
        ),
    };
    format!("{what} for {authority} — {fix}")
}

fn certificate_problem(e: &CertificateError) -> (String, &'static str) {
    const SET_CA: &str = "set webhooks.ca_file to the CA that issued it";
    match e {
        CertificateError::UnknownIssuer => {
            ("certificate not trusted (unknown issuer)".into(), SET_CA)
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => (
            "certificate expired".into(),
            "renew the receiver's certificate (or check this host's clock)",
        ),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => (
            "certificate not valid yet".into(),
            "check this host's clock and the receiver's",
        ),
        CertificateError::NotValidForName => (
            "certificate not valid for this host name".into(),
            "use a URL with a name the certificate holds",
        ),
        CertificateError::NotValidForNameContext { presented, .. } => (
            format!(
                "certificate not valid for this host name (it is for {})",
                presented
                    .iter()
                    .map(|p| bare_name(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "use a URL with a name the certificate holds",
        ),
        CertificateError::Revoked => (
            "certificate revoked".into(),
            "the receiver needs a new certificate",
        ),
        CertificateError::BadSignature
        | CertificateError::UnsupportedSignatureAlgorithmContext { .. } => {
            (format!("certificate not trusted ({e:?})"), SET_CA)
        }
        other => (format!("certificate rejected ({other:?})"), SET_CA),
    }
}

/// `DnsName("a.example")` or `IpAddress(127.0.0.2)`, as rustls presents a certificate's
/// names, without the wrapping.
fn bare_name(presented: &str) -> &str {
    presented
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .map_or(presented, |inner| inner.trim_matches('"'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Error)]
    #[error("error sending request")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn the_tls_error_is_found_inside_io_errors() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        let outer = Outer(io);
        let tls = find_tls_error(&outer).expect("found");
        assert_eq!(
            describe(tls, "127.0.0.1:8443"),
            "certificate not trusted (unknown issuer) for 127.0.0.1:8443 — set \
             webhooks.ca_file to the CA that issued it"
        );
        let plain = Outer(std::io::Error::other("connection refused"));
        assert!(find_tls_error(&plain).is_none());
    }

    #[test]
    fn problems_are_named() {
        let msg = |e| describe(&rustls::Error::InvalidCertificate(e), "h:1");
        assert!(msg(CertificateError::Expired).starts_with("certificate expired for h:1"));
        assert!(msg(CertificateError::NotValidForName).contains("not valid for this host"));
        assert_eq!(bare_name("DnsName(\"a.example\")"), "a.example");
        assert_eq!(bare_name("IpAddress(127.0.0.2)"), "127.0.0.2");
    }

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let dir = std::env::temp_dir().join(format!("ivr-ca-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let e = load_ca_file(&missing).unwrap_err();
        assert!(e.to_string().contains("missing.pem"), "{e}");
        let empty = dir.join("key-only.pem");
        std::fs::write(
            &empty,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let e = load_ca_file(&empty).unwrap_err();
        assert!(
            matches!(e, CaFileError::Empty { .. }) && e.to_string().contains("key-only.pem"),
            "{e}"
        );
        let junk = dir.join("junk.pem");
        std::fs::write(
            &junk,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = load_ca_file(&junk).unwrap_err();
        assert!(matches!(e, CaFileError::Unusable { .. }), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
