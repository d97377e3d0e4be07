//! Each trust against real TLS handshakes (in memory, rustls on both sides): the server's own
//! self-signed certificate pinned with `--ca`, a CA that signed it, a certificate from
//! elsewhere (refused), `--insecure` (anything), the system roots (a private certificate
//! refused), and a CA file that cannot be used (a clear error, not a handshake failure).

use std::io::Write as _;
use std::sync::Arc;

use client_tls::{client_config, TlsError, Trust};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConnection, ServerConnection};

/// A server certificate for `localhost` and its key.
struct ServerCert {
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    pem: String,
}

fn self_signed() -> ServerCert {
    let key = KeyPair::generate().expect("key");
    let params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    let cert = params.self_signed(&key).expect("certificate");
    ServerCert {
        pem: cert.pem(),
        cert: cert.der().clone(),
        key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
    }
}

/// A CA (its PEM) and a `localhost` certificate it signed.
fn signed_by_a_ca() -> (String, ServerCert) {
    let ca_key = KeyPair::generate().expect("key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("key");
    let params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    let cert = params.signed_by(&key, &issuer).expect("certificate");
    let server = ServerCert {
        pem: cert.pem(),
        cert: cert.der().clone(),
        key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
    };
    (ca_cert.pem(), server)
}

/// A PEM file, removed when dropped.
struct PemFile(std::path::PathBuf);

impl PemFile {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for PemFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn pem_file(pem: &str) -> PemFile {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("client-tls-test-{}-{n}.pem", std::process::id()));
    let mut file = std::fs::File::create(&path).expect("temp file");
    file.write_all(pem.as_bytes()).expect("write PEM");
    PemFile(path)
}

/// A TLS handshake between a client trusting `trust` and a server presenting `server`, as
/// `localhost`: `Ok` once both sides are done.
fn handshake(trust: &Trust, server: &ServerCert) -> Result<(), rustls::Error> {
    let client_config = Arc::new(client_config(trust).expect("client configuration"));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![server.cert.clone()], server.key.clone_key())
        .expect("server configuration");
    let name = ServerName::try_from("localhost").expect("name");
    let mut client = ClientConnection::new(client_config, name)?;
    let mut server = ServerConnection::new(Arc::new(server_config))?;
    for _ in 0..20 {
        let mut bytes = Vec::new();
        client.write_tls(&mut bytes).expect("client writes");
        server
            .read_tls(&mut bytes.as_slice())
            .expect("server reads");
        server.process_new_packets()?;
        let mut bytes = Vec::new();
        server.write_tls(&mut bytes).expect("server writes");
        client
            .read_tls(&mut bytes.as_slice())
            .expect("client reads");
        client.process_new_packets()?;
        if !client.is_handshaking() && !server.is_handshaking() {
            return Ok(());
        }
    }
    panic!("the handshake did not finish");
}

#[test]
fn a_pinned_self_signed_certificate_is_trusted() {
    let server = self_signed();
    let file = pem_file(&server.pem);
    handshake(&Trust::Ca(file.path().into()), &server).expect("pinned certificate");
}

#[test]
fn a_certificate_signed_by_the_given_ca_is_trusted() {
    let (ca, server) = signed_by_a_ca();
    let file = pem_file(&ca);
    handshake(&Trust::Ca(file.path().into()), &server).expect("certificate of the CA");
}

#[test]
fn a_certificate_from_elsewhere_is_refused() {
    let server = self_signed();
    let file = pem_file(&self_signed().pem);
    let refused = handshake(&Trust::Ca(file.path().into()), &server).unwrap_err();
    assert!(
        matches!(refused, rustls::Error::InvalidCertificate(_)),
        "{refused:?}"
    );
    let (ca, _) = signed_by_a_ca();
    let other_ca = pem_file(&ca);
    let (_, theirs) = signed_by_a_ca();
    let refused = handshake(&Trust::Ca(other_ca.path().into()), &theirs).unwrap_err();
    assert!(
        matches!(refused, rustls::Error::InvalidCertificate(_)),
        "{refused:?}"
    );
}

#[test]
fn insecure_trusts_any_certificate() {
    handshake(&Trust::Insecure, &self_signed()).expect("insecure");
    handshake(&Trust::Insecure, &signed_by_a_ca().1).expect("insecure");
}

#[test]
fn the_system_roots_refuse_a_private_certificate() {
    let refused = handshake(&Trust::SystemRoots, &self_signed()).unwrap_err();
    assert!(
        matches!(refused, rustls::Error::InvalidCertificate(_)),
        "{refused:?}"
    );
}

#[test]
fn an_unusable_ca_file_is_a_clear_error() {
    let missing = Trust::Ca("/nonexistent/ca.pem".into());
    let Err(TlsError::Ca { reason, .. }) = client_config(&missing) else {
        panic!("a missing file is a CA error");
    };
    assert!(!reason.is_empty());
    let not_pem = pem_file("this is not a certificate\n");
    let Err(TlsError::Ca { reason, .. }) = client_config(&Trust::Ca(not_pem.path().into())) else {
        panic!("a file without a certificate is a CA error");
    };
    assert!(reason.contains("no PEM certificate"), "{reason}");
}
