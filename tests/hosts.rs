//! DNS rebinding protection on every listener: `Host` must name the bridge (its address,
//! localhost on loopback, its certificate's names, `--allowed-host`), and the bridge's own
//! origin is only ever a validated `Host`. Only 127.0.0.1 is bound here; other binds are
//! checked through the decision itself.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use mcp_bridge::downstream::HostAllowList;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use support::*;

fn list(listen: &str, allowed: &[&str], cert: &[&str]) -> HostAllowList {
    let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    HostAllowList::new(
        listen.parse::<SocketAddr>().unwrap(),
        &own(allowed),
        &own(cert),
    )
}

#[test]
fn an_unspecified_bind_refuses_names_it_was_not_given() {
    for listen in ["0.0.0.0:8080", "[::]:8080"] {
        let l = list(listen, &["bridge.example"], &[]);
        for foreign in [
            "evil.example",
            "evil.example:8080",
            "bridge.example.evil.example",
        ] {
            assert!(!l.admits(foreign), "{listen}: {foreign}");
        }
        // Addresses cannot be rebound: any IP literal reaches the listener legitimately.
        for ip in [
            "10.1.2.3:8080",
            "192.0.2.7",
            "[2001:db8::1]:8080",
            "127.0.0.1:8080",
        ] {
            assert!(l.admits(ip), "{listen}: {ip}");
        }
        for named in ["bridge.example", "BRIDGE.example.:8080", "localhost:8080"] {
            assert!(l.admits(named), "{listen}: {named}");
        }
    }
}

#[test]
fn a_specific_address_answers_to_itself_and_its_listed_names() {
    let l = list("192.0.2.10:443", &["mcp.example", "198.51.100.4"], &[]);
    for ok in [
        "192.0.2.10",
        "192.0.2.10:443",
        "mcp.example:443",
        "198.51.100.4",
    ] {
        assert!(l.admits(ok), "{ok}");
    }
    for refused in [
        "evil.example",
        "localhost",
        "127.0.0.1",
        "192.0.2.11",
        "",
        ":443",
    ] {
        assert!(!l.admits(refused), "{refused:?}");
    }
}

#[test]
fn certificate_names_are_admitted() {
    let l = list("0.0.0.0:443", &[], &["bridge.test", "*.wild.test"]);
    assert!(l.admits("bridge.test:443"));
    assert!(l.admits("api.wild.test"));
    assert!(!l.admits("wild.test"));
    assert!(!l.admits("evil.example"));
}

#[actix_rt::test]
async fn a_loopback_listener_with_an_allow_list_refuses_foreign_hosts_and_origins() {
    let server = FakeServer::start(ServerOptions::streamable());
    let bridge = bridge(&server.url(), &["--allowed-host", "bridge.example"]);
    let port = bridge.addr.port();
    let post = |host: String, origin: Option<String>| {
        let url = bridge.url("/mcp");
        async move {
            let mut h = vec![JSON, ACCEPT_BOTH, ("host", host.as_str())];
            if let Some(o) = &origin {
                h.push(("origin", o.as_str()));
            }
            raw("POST", &url, &h, INIT).await.status
        }
    };
    assert_eq!(post(format!("evil.example:{port}"), None).await, 421);
    assert_eq!(
        post(
            format!("evil.example:{port}"),
            Some(format!("http://evil.example:{port}"))
        )
        .await,
        421
    );
    assert_eq!(
        post(
            format!("bridge.example:{port}"),
            Some(format!("http://evil.example:{port}"))
        )
        .await,
        403
    );
    assert_eq!(
        post(
            format!("bridge.example:{port}"),
            Some(format!("http://bridge.example:{port}"))
        )
        .await,
        200
    );
    assert_eq!(post(format!("127.0.0.1:{port}"), None).await, 200);
}

/// A self-signed certificate for `names`, written beside the test binary's temp files.
fn self_signed(names: &[&str]) -> (tempdir::Dir, String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap()
            .self_signed(&key)
            .unwrap();
    let dir = tempdir::Dir::new();
    let cert_path = dir.write("cert.pem", &cert.pem());
    let key_path = dir.write("key.pem", &key.serialize_pem());
    (dir, cert_path, key_path)
}

mod tempdir {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new() -> Dir {
            static N: AtomicUsize = AtomicUsize::new(0);
            let p = std::env::temp_dir().join(format!(
                "mcp-bridge-hosts-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }

        pub fn write(&self, name: &str, text: &str) -> String {
            let p = self.0.join(name);
            std::fs::write(&p, text).unwrap();
            p.to_string_lossy().into_owned()
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[actix_rt::test]
async fn a_tls_listener_answers_to_its_certificate_names() {
    let (_dir, cert, key) = self_signed(&["bridge.test", "127.0.0.1"]);
    let server = FakeServer::start(ServerOptions::streamable());
    let bridge = bridge(&server.url(), &["--tls-cert", &cert, "--tls-key", &key]);
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let client = awc::Client::builder()
        .connector(awc::Connector::new().rustls_0_23(Arc::new(tls)))
        .finish();
    let url = format!("https://127.0.0.1:{}/mcp", bridge.addr.port());
    let status = |host: &'static str| {
        let req = client
            .post(&url)
            .insert_header(JSON)
            .insert_header(ACCEPT_BOTH)
            .insert_header(("host", host));
        async move {
            let resp = tokio::time::timeout(WAIT, req.send_body(INIT))
                .await
                .expect("in time")
                .expect("exchange");
            resp.status().as_u16()
        }
    };
    assert_eq!(status("bridge.test").await, 200);
    assert_eq!(status("evil.example").await, 421);
}
