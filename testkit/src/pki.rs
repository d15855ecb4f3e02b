//! A test PKI made at run time: a CA, a server certificate it signed for 127.0.0.1 and
//! localhost, and an unrelated CA, as PEM files in a temporary folder removed on drop.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

pub struct TestPki {
    dir: PathBuf,
    /// The CA that signed `cert`.
    pub ca: PathBuf,
    /// A CA that signed nothing here: trusting only it must fail.
    pub other_ca: PathBuf,
    /// The server certificate, for 127.0.0.1 and localhost.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

impl TestPki {
    /// `label` names the temporary folder (`mcp-bridge-<label>-<pid>-<n>`).
    pub fn new(label: &str) -> TestPki {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mcp-bridge-{label}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temporary folder");
        let (ca_cert, ca_key) = self_signed_ca("mcp-bridge test CA");
        let (other_cert, _) = self_signed_ca("someone else's CA");
        let leaf_key = KeyPair::generate().expect("key pair");
        let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()])
            .expect("certificate parameters");
        // Python 3.13+ verifies with VERIFY_X509_STRICT, which wants the AKI.
        leaf.use_authority_key_identifier_extension = true;
        let leaf = leaf
            .signed_by(&leaf_key, &ca_cert, &ca_key)
            .expect("server certificate");
        let write = |name: &str, pem: String| {
            let p = dir.join(name);
            std::fs::write(&p, pem).expect("write PEM");
            p
        };
        TestPki {
            ca: write("ca.pem", ca_cert.pem()),
            other_ca: write("other-ca.pem", other_cert.pem()),
            cert: write("cert.pem", leaf.pem()),
            key: write("key.pem", leaf_key.serialize_pem()),
            dir,
        }
    }

    /// Writes another file (token list, API key …) beside the certificates; returns its path.
    pub fn file(&self, name: &str, text: &str) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, text).expect("write file");
        p.to_string_lossy().into_owned()
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A path as a command-line argument (the test paths are UTF-8).
pub fn arg(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn self_signed_ca(name: &str) -> (Certificate, KeyPair) {
    let key = KeyPair::generate().expect("key pair");
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = p.self_signed(&key).expect("CA certificate");
    (cert, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_exist_while_the_pki_lives() {
        let pki = TestPki::new("pki-unit");
        for p in [&pki.ca, &pki.other_ca, &pki.cert, &pki.key] {
            let pem = std::fs::read_to_string(p).unwrap();
            assert!(pem.starts_with("-----BEGIN "), "{}", p.display());
        }
        assert_ne!(
            std::fs::read(&pki.ca).unwrap(),
            std::fs::read(&pki.other_ca).unwrap()
        );
        let dir = pki.dir.clone();
        drop(pki);
        assert!(!dir.exists(), "removed on drop");
    }
}
