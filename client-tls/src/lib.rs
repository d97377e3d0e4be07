//! TLS trust of the SFU's own clients (the `monitor` CLI, `loadgen`): the system's roots, a
//! PEM file given with `--ca` (a CA, or the server's own self-signed certificate pinned), or
//! `--insecure` (any certificate; handshake signatures are still checked).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;

/// How to trust a server's certificate.
#[derive(Clone, Debug)]
pub enum Trust {
    /// The system's root certificates.
    SystemRoots,
    /// The certificates of a PEM file (the server's own, or its CA).
    Ca(PathBuf),
    /// Anything (for tests and first setup).
    Insecure,
}

/// Why no client configuration could be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA file cannot be used.
    #[error("cannot read the CA certificate {path}: {reason}")]
    Ca {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// rustls refused the setup.
    #[error("TLS setup: {0}")]
    Setup(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The client configuration for `trust`.
pub fn client_config(trust: &Trust) -> Result<rustls::ClientConfig, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    match trust {
        Trust::Insecure => {
            let verifier = Verifier {
                pinned: None,
                provider: provider(),
            };
            return Ok(builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth());
        }
        Trust::SystemRoots => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
        Trust::Ca(path) => {
            let ca_error = |reason: String| TlsError::Ca {
                path: path.clone(),
                reason,
            };
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| ca_error(e.to_string()))?
                .collect::<Result<_, _>>()
                .map_err(|e| ca_error(e.to_string()))?;
            if certs.is_empty() {
                return Err(ca_error("no PEM certificate in it".into()));
            }
            for cert in &certs {
                roots
                    .add(cert.clone())
                    .map_err(|e| ca_error(e.to_string()))?;
            }
            let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .build()
            .map_err(|e| ca_error(e.to_string()))?;
            let verifier = Verifier {
                pinned: Some((certs, webpki)),
                provider: provider(),
            };
            return Ok(builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth());
        }
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// The checks of a non-default trust: `--insecure` accepts any certificate; `--ca FILE`
/// accepts the file's certificates themselves (a self-signed certificate as `openssl req
/// -x509` makes, which WebPKI refuses as an end entity because it is marked as a CA) and
/// what they signed. Handshake signatures are checked either way.
#[derive(Debug)]
struct Verifier {
    /// `None`: any certificate.
    pinned: Option<(
        Vec<CertificateDer<'static>>,
        Arc<rustls::client::WebPkiServerVerifier>,
    )>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some((pinned, webpki)) = &self.pinned else {
            return Ok(ServerCertVerified::assertion());
        };
        if pinned
            .iter()
            .any(|cert| cert.as_ref() == end_entity.as_ref())
        {
            return Ok(ServerCertVerified::assertion());
        }
        webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
