//! What trickle-load trusts on `https://` and `wss://`: the system's root
//! certificates, plus the certificates of `--ca-file`; or, with
//! `--insecure` (for tests against self-signed endpoints only), any
//! certificate at all. One `Trust` configures both clients, goose's
//! reqwest (HTTP transports) and tokio-tungstenite (WebSocket), so every
//! transport trusts the same servers.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read --ca-file {path}: {reason}")]
    CaFile { path: PathBuf, reason: String },
    #[error("--ca-file {0} holds no PEM certificate")]
    EmptyCaFile(PathBuf),
    #[error("no root certificates found on this system (install ca-certificates) and no --ca-file given")]
    NoRoots,
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("TLS setup of the HTTP client: {0}")]
    Reqwest(#[from] reqwest::Error),
}

/// Which servers the clients accept.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// Extra roots (`--ca-file`), trusted beside the system's.
    extra: Vec<CertificateDer<'static>>,
    /// `--insecure`: no certificate check (signatures are still verified).
    insecure: bool,
}

impl Trust {
    pub fn new(ca_file: Option<&Path>, insecure: bool) -> Result<Self, TlsError> {
        let extra = match ca_file {
            None => Vec::new(),
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| TlsError::CaFile {
                        path: path.to_owned(),
                        reason: e.to_string(),
                    })?;
                if certs.is_empty() {
                    return Err(TlsError::EmptyCaFile(path.to_owned()));
                }
                certs
            }
        };
        Ok(Self { extra, insecure })
    }

    /// Whether goose's own client (system roots only) will do.
    pub fn is_default(&self) -> bool {
        self.extra.is_empty() && !self.insecure
    }

    /// Applies the trust to an HTTP client builder.
    pub fn reqwest(
        &self,
        mut builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, TlsError> {
        for cert in &self.extra {
            builder = builder.add_root_certificate(reqwest::Certificate::from_der(cert)?);
        }
        Ok(builder.tls_danger_accept_invalid_certs(self.insecure))
    }

    /// The rustls configuration of the WebSocket client (`wss://`).
    pub fn rustls(&self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        // The provider is named, not installed process-wide: which crypto
        // backends other crates enable cannot make this panic.
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let config = if self.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth()
        } else {
            let mut roots = rustls::RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
            roots.add_parsable_certificates(self.extra.iter().cloned());
            if roots.is_empty() {
                return Err(TlsError::NoRoots);
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        Ok(Arc::new(config))
    }
}

/// `--insecure`: accepts any certificate for any name, but still checks
/// that the server holds the key of the certificate it presents.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
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
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_file_errors_name_the_file() {
        let missing = Trust::new(Some(Path::new("/nonexistent/ca.pem")), false);
        assert!(
            matches!(&missing, Err(TlsError::CaFile { path, .. }) if path.ends_with("ca.pem")),
            "{missing:?}"
        );
        let dir = std::env::temp_dir().join(format!("trickle-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").ok();
        assert!(matches!(
            Trust::new(Some(&empty), false),
            Err(TlsError::EmptyCaFile(_))
        ));
        assert!(Trust::new(None, false).is_ok_and(|t| t.is_default()));
        assert!(Trust::new(None, true).is_ok_and(|t| !t.is_default()));
    }
}
