//! TLS on both sides, with rustls and ONE crypto provider: ring (it builds without cmake;
//! aws-lc-rs is kept out of the dependency tree). Certificates are read once, at startup.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

use crate::config::{Deploy, TlsFiles};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{flag} {path}: {reason}")]
    File {
        flag: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

impl From<TlsError> for std::io::Error {
    fn from(e: TlsError) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, e)
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Make ring the process-wide default too, for any rustls config built without an explicit
/// provider. Idempotent: a second bridge in the same process (tests) finds it installed.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The listener's TLS configuration, when `--tls-cert`/`--tls-key` are given.
pub fn server_config(deploy: &Deploy) -> Result<Option<ServerConfig>, TlsError> {
    let Some(TlsFiles { cert, key }) = &deploy.tls else {
        return Ok(None);
    };
    install_provider();
    let file_err = |flag, path: &Path, reason: String| TlsError::File {
        flag,
        path: path.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| file_err("--tls-cert", cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(file_err("--tls-cert", cert, "no certificate in it".into()));
    }
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| file_err("--tls-key", key, e.to_string()))?;
    // actix offers h2 and http/1.1 by ALPN itself. HTTP/2 matters to browsers: over HTTP/1.1
    // they allow six connections per origin, and every open SSE stream holds one.
    let cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(Some(cfg))
}

/// The DNS names (subject alternative names, wildcards included) of the listener's
/// certificate: clients reach the bridge by these, so `Host` may carry them.
pub fn certificate_names(deploy: &Deploy) -> Result<Vec<String>, TlsError> {
    let Some(TlsFiles { cert, .. }) = &deploy.tls else {
        return Ok(Vec::new());
    };
    let file_err = |reason: String| TlsError::File {
        flag: "--tls-cert",
        path: cert.clone(),
        reason,
    };
    let leaf = CertificateDer::pem_file_iter(cert)
        .and_then(|mut it| it.next().transpose())
        .map_err(|e| file_err(e.to_string()))?
        .ok_or_else(|| file_err("no certificate in it".into()))?;
    let leaf = webpki::EndEntityCert::try_from(&leaf).map_err(|e| file_err(e.to_string()))?;
    Ok(leaf.valid_dns_names().map(str::to_owned).collect())
}

/// The upstream client's TLS configuration: the public web roots plus `--upstream-ca`, or —
/// only when asked with `--upstream-insecure` — no verification at all.
pub fn client_config(deploy: &Deploy) -> Result<Arc<ClientConfig>, TlsError> {
    install_provider();
    let builder =
        ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let mut cfg = if deploy.upstream_insecure {
        tracing::warn!(
            "--upstream-insecure: upstream TLS certificates are NOT verified; anyone on the \
             network path can impersonate the upstream. Use only for tests."
        );
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider())))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        for path in &deploy.upstream_ca {
            let file_err = |reason: String| TlsError::File {
                flag: "--upstream-ca",
                path: path.clone(),
                reason,
            };
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| file_err(e.to_string()))?;
            if certs.is_empty() {
                return Err(file_err("no certificate in it".into()));
            }
            for c in certs {
                roots.add(c).map_err(|e| file_err(e.to_string()))?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    // One HTTP/1.1 connection per stream, as over plain HTTP.
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// `--upstream-insecure`: any certificate, any name. Handshake signatures are still checked,
/// so the peer holds the key of the certificate it showed — it is just not trusted.
#[derive(Debug)]
struct AcceptAnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
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
