//! HTTPS/WSS certificates: the pair from files, checked to belong together, served through a
//! resolver so that SIGHUP swaps in renewed files without dropping a connection.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Why the TLS configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// The certificate file cannot be read or holds no certificate.
    #[error("cannot use TLS_CERT_PATH {path}: {reason}")]
    Cert {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The key file cannot be read or holds no private key.
    #[error("cannot use TLS_KEY_PATH {path}: {reason}")]
    Key {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The key is not the certificate's, or rustls refuses them.
    #[error("TLS_CERT_PATH and TLS_KEY_PATH do not go together: {0}")]
    Mismatch(String),
}

/// Reads the PEM certificate chain and private key and checks that they belong together.
pub fn load_certified_key(
    cert_path: &Path,
    key_path: &Path,
) -> Result<CertifiedKey, TlsConfigError> {
    let cert_err = |reason: String| TlsConfigError::Cert {
        path: cert_path.display().to_string(),
        reason,
    };
    let key_err = |reason: String| TlsConfigError::Key {
        path: key_path.display().to_string(),
        reason,
    };
    let pem = std::fs::read(cert_path).map_err(|e| cert_err(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(format!("not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(cert_err("no CERTIFICATE in the file".into()));
    }
    let pem = std::fs::read(key_path).map_err(|e| key_err(e.to_string()))?;
    let key =
        PrivateKeyDer::from_pem_slice(&pem).map_err(|e| key_err(format!("no private key: {e}")))?;
    CertifiedKey::from_der(certs, key, &provider())
        .map_err(|e| TlsConfigError::Mismatch(e.to_string()))
}

fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The certificate served, replaced by [`CertStore::reload`] (on SIGHUP) while connections
/// made with the old one go on.
#[derive(Debug)]
pub struct CertStore {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertStore {
    /// Loads the pair at `cert_path` and `key_path`.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, TlsConfigError> {
        let key = load_certified_key(cert_path, key_path)?;
        Ok(Self {
            cert_path: cert_path.to_path_buf(),
            key_path: key_path.to_path_buf(),
            current: RwLock::new(Arc::new(key)),
        })
    }

    /// Reads the files again; a pair that cannot be used is refused and the old one kept.
    pub fn reload(&self) -> Result<(), TlsConfigError> {
        let key = load_certified_key(&self.cert_path, &self.key_path)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(key);
        Ok(())
    }

    /// When the served leaf certificate expires, in Unix seconds (0 when its validity cannot
    /// be read, which makes the expiry alert fire: better a page than a silent expiry).
    pub fn not_after(&self) -> i64 {
        let current = self
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        current
            .cert
            .first()
            .and_then(|leaf| x509_parser::parse_x509_certificate(leaf).ok())
            .map_or(0, |(_, leaf)| leaf.validity().not_after.timestamp())
    }

    /// A server configuration that always serves the current pair.
    pub fn server_config(self: &Arc<Self>) -> Result<rustls::ServerConfig, TlsConfigError> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsConfigError::Mismatch(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

/// Reloads `store` at every SIGHUP (certificates renew every 60–90 days), logging the outcome
/// and telling `metrics` the new expiry.
pub async fn reload_on_sighup(store: Arc<CertStore>, metrics: crate::monitoring::metrics::Metrics) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(e) => {
            tracing::warn!("cannot listen for SIGHUP, certificates will not reload: {e}");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        match store.reload() {
            Ok(()) => {
                let not_after = store.not_after();
                metrics.tls_certificate_expires(not_after);
                tracing::info!(
                    cert = %store.cert_path.display(),
                    not_after,
                    "SIGHUP: reloaded the TLS certificate; new connections get it"
                )
            }
            Err(e) => {
                tracing::error!("SIGHUP: refused the new TLS certificate, keeping the old one: {e}")
            }
        }
    }
}
