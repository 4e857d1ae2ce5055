//! TLS for the Postgres connection with libpq's meaning of `sslmode` and `sslrootcert`, on
//! rustls with the ring provider (tokio-postgres-rustls carries the rustls stream into
//! tokio-postgres, with SCRAM channel binding).
//!
//! libpq's rules, which existing URLs rely on, with one exception: a URL without `sslmode` gets
//! `require`, not libpq's `prefer` (which falls back to plain text without a word):
//! - `disable`: plain. `allow`: plain, then TLS if the server refuses plain. `prefer`: TLS if
//!   the server offers it, else plain. `require`: TLS or nothing.
//! - In those modes the certificate is not checked, unless `sslrootcert` names a file: then the
//!   chain must lead to one of its CAs (libpq's "require with a root file is verify-ca").
//! - `verify-ca`: the chain must lead to a trusted CA; the host name is not checked.
//!   `verify-full`: the chain and the host name (DNS or IP subject alternative name).
//! - `sslrootcert=system` (libpq 16): the system CAs, and then only `verify-full` is allowed.
//!
//! One deviation: without `sslrootcert`, `verify-ca` and `verify-full` trust the system CAs
//! (libpq would look for `~/.postgresql/root.crt`, which a FROM-scratch image has no home for).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// libpq's `sslmode`, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where trusted CAs come from (`sslrootcert`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// Not given.
    Unset,
    /// `sslrootcert=system`.
    System,
    File(PathBuf),
}

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// Encryption only: any certificate (its handshake signature is still checked).
    None,
    /// The chain leads to a trusted CA.
    Chain,
    /// The chain, and the name matches the host.
    ChainAndName,
}

impl Verification {
    /// What libpq checks for this mode and root-certificate setting.
    pub fn for_mode(mode: SslMode, root_cert: &RootCert) -> Self {
        match (mode, root_cert) {
            (SslMode::VerifyFull, _) => Verification::ChainAndName,
            (SslMode::VerifyCa, _) => Verification::Chain,
            (_, RootCert::File(_)) => Verification::Chain,
            _ => Verification::None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read sslrootcert file {}: {source}", .path.display())]
    RootFile {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("sslrootcert file {} holds no usable CA certificate", .path.display())]
    NoRootInFile { path: PathBuf },
    #[error("no system CA certificates were found (install a CA bundle or give sslrootcert)")]
    NoSystemRoots,
    #[error("cannot set up TLS: {0}")]
    Setup(#[from] rustls::Error),
}

/// The rustls client configuration for `verification` against `root_cert`.
pub fn client_config(
    verification: Verification,
    root_cert: &RootCert,
) -> Result<ClientConfig, TlsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let config = match verification {
        Verification::None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly {
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth(),
        Verification::Chain => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnly {
                roots: Arc::new(roots(root_cert)?),
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth(),
        Verification::ChainAndName => builder
            .with_root_certificates(roots(root_cert)?)
            .with_no_client_auth(),
    };
    Ok(config)
}

/// The process's provider (the kit installs ring), or ring itself in unit tests.
fn provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

fn roots(root_cert: &RootCert) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    match root_cert {
        RootCert::File(path) => {
            let certs = read_pem_certificates(path)?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(TlsError::NoRootInFile { path: path.clone() });
            }
        }
        RootCert::Unset | RootCert::System => {
            let found = rustls_native_certs::load_native_certs();
            for error in &found.errors {
                tracing::debug!("while loading system CA certificates: {error}");
            }
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err(TlsError::NoSystemRoots);
            }
        }
    }
    Ok(store)
}

fn read_pem_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let to_error = |source| TlsError::RootFile {
        path: path.to_owned(),
        source,
    };
    CertificateDer::pem_file_iter(path)
        .map_err(to_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(to_error)
}

/// `require` (and `prefer`, `allow`) without a root file: the channel is encrypted and the
/// handshake signed by the certificate's key, but who holds the certificate is not checked.
#[derive(Debug)]
struct EncryptOnly {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted CA; the name is not checked.
#[derive(Debug)]
struct ChainOnly {
    roots: Arc<RootCertStore>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_follows_libpq() {
        let file = RootCert::File("ca.pem".into());
        let cases = [
            (SslMode::Prefer, RootCert::Unset, Verification::None),
            (SslMode::Require, RootCert::Unset, Verification::None),
            (SslMode::Require, file.clone(), Verification::Chain),
            (SslMode::Prefer, file.clone(), Verification::Chain),
            (SslMode::VerifyCa, RootCert::Unset, Verification::Chain),
            (SslMode::VerifyCa, file.clone(), Verification::Chain),
            (SslMode::VerifyFull, file, Verification::ChainAndName),
            (
                SslMode::VerifyFull,
                RootCert::System,
                Verification::ChainAndName,
            ),
        ];
        for (mode, root, expected) in cases {
            assert_eq!(
                Verification::for_mode(mode, &root),
                expected,
                "{mode:?} {root:?}"
            );
        }
    }

    #[test]
    fn modes_parse_and_order() {
        for name in [
            "disable",
            "allow",
            "prefer",
            "require",
            "verify-ca",
            "verify-full",
        ] {
            assert_eq!(SslMode::parse(name).unwrap().as_str(), name);
        }
        assert_eq!(SslMode::parse("verify_full"), None);
        assert!(SslMode::Require < SslMode::VerifyCa);
    }

    #[test]
    fn a_missing_or_empty_root_file_is_named() {
        let err = client_config(
            Verification::Chain,
            &RootCert::File("/nonexistent/ca.pem".into()),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read sslrootcert file /nonexistent/ca.pem"),
            "{err}"
        );
        let dir = std::env::temp_dir().join(format!("pg-job-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err =
            client_config(Verification::ChainAndName, &RootCert::File(empty.clone())).unwrap_err();
        assert!(matches!(err, TlsError::NoRootInFile { .. }), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
