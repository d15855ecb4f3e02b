//! Deploying the bridge for real: HTTPS on both sides, CORS for browser clients, bearer
//! tokens with sessions bound to their credential, the upstream header policy, and every
//! limit answered with its status.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use mcp_testkit::pki::{arg, TestPki};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use support::*;

const INIT_2025: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
const LIST: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;

// ---- certificates and TLS plumbing ----------------------------------------------------------

fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS-terminating TCP passthrough in front of `target` (the plain-HTTP fake server), on
/// a thread of its own for the rest of the test process.
fn tls_front(target: SocketAddr, pki: &TestPki) -> SocketAddr {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&pki.cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(&pki.key).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(ring())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A handshake the bridge refuses (unknown CA) just ends here.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    if let Ok(mut up) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                    }
                });
            }
        });
    });
    addr
}

/// An https client that trusts `ca` and speaks HTTP/1.1.
fn https_client(ca: &Path) -> awc::Client {
    https_client_alpn(ca, b"http/1.1")
}

/// An https client that trusts `ca` and offers `alpn` (`h2` or `http/1.1`).
fn https_client_alpn(ca: &Path, alpn: &[u8]) -> awc::Client {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(ring())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    awc::Client::builder()
        .connector(awc::Connector::new().rustls_0_23(Arc::new(cfg)))
        .disable_timeout()
        .finish()
}

/// A header of a plain answer ("" when absent).
fn hv<'a>(r: &'a Raw, name: &str) -> &'a str {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The JSON-RPC messages of a whole (finite) SSE or JSON body.
fn messages(body: &str) -> Vec<Value> {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        return vec![v];
    }
    body.split("\n\n")
        .filter_map(|ev| {
            let data: Vec<&str> = ev
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            serde_json::from_str(&data.join("\n")).ok()
        })
        .collect()
}

// ---- TLS ----------------------------------------------------------------------------------

#[actix_rt::test]
async fn https_client_to_tls_bridge_to_https_upstream() {
    let pki = TestPki::new("deploy");
    let server = FakeServer::start(ServerOptions::streamable());
    let front = tls_front(server.addr(), &pki);
    let bridge = bridge(
        &format!("https://127.0.0.1:{}/mcp", front.port()),
        &[
            "--upstream-transport",
            "streamable",
            "--tls-cert",
            arg(&pki.cert),
            "--tls-key",
            arg(&pki.key),
            "--upstream-ca",
            arg(&pki.ca),
        ],
    );
    let url = format!("https://127.0.0.1:{}/mcp", bridge.addr.port());
    let client = https_client(&pki.ca);
    let post = |body: &'static str, sid: Option<String>| {
        let mut req = client
            .post(&url)
            .insert_header(("content-type", "application/json"))
            .insert_header(("accept", "application/json, text/event-stream"));
        if let Some(sid) = sid {
            req = req.insert_header(("mcp-session-id", sid));
        }
        async move {
            let mut resp = tokio::time::timeout(WAIT, req.send_body(body))
                .await
                .expect("in time")
                .expect("https exchange");
            let body = resp.body().limit(1 << 20).await.expect("body");
            (resp, String::from_utf8_lossy(&body).into_owned())
        }
    };
    let (resp, body) = post(INIT_2025, None).await;
    assert_eq!(resp.status().as_u16(), 200, "{body}");
    let sid = resp
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .expect("session id")
        .to_owned();
    assert_eq!(
        messages(&body)[0]["result"]["serverInfo"]["name"],
        "fake-streamable"
    );
    let (resp, body) = post(LIST, Some(sid)).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(messages(&body)[0]["result"]["tools"].is_array(), "{body}");
    // The upstream saw the bridge's requests, over TLS through the passthrough.
    assert!(server
        .requests()
        .iter()
        .any(|r| r.rpc_method().as_deref() == Some("tools/list")));

    // Plain HTTP to the TLS listener gets no HTTP answer.
    let plain = awc::Client::default()
        .post(format!("http://127.0.0.1:{}/mcp", bridge.addr.port()))
        .send_body(INIT_2025);
    let plain = tokio::time::timeout(WAIT, plain).await.expect("in time");
    assert!(plain.is_err() || plain.is_ok_and(|r| r.status().as_u16() == 400));
}

#[actix_rt::test]
async fn http2_clients_are_served_over_tls() {
    use futures_util::StreamExt;
    let pki = TestPki::new("deploy");
    let server = FakeServer::start(ServerOptions::streamable());
    let bridge = bridge(
        &server.url(),
        &["--tls-cert", arg(&pki.cert), "--tls-key", arg(&pki.key)],
    );
    let base = format!("https://127.0.0.1:{}", bridge.addr.port());
    let client = https_client_alpn(&pki.ca, b"h2");

    // HTTP/2 has no Host header: the Host check reads the request's authority instead.
    let mut resp = client
        .post(format!("{base}/mcp"))
        .insert_header(JSON)
        .insert_header(ACCEPT_BOTH)
        .send_body(INIT_2025)
        .await
        .expect("h2 exchange");
    assert_eq!(resp.version(), awc::http::Version::HTTP_2);
    assert_eq!(resp.status().as_u16(), 200);
    let body = resp.body().limit(1 << 20).await.unwrap();
    let body = String::from_utf8_lossy(&body);
    assert_eq!(
        messages(&body)[0]["result"]["serverInfo"]["name"],
        "fake-streamable"
    );

    // A legacy stream over HTTP/2 gets its endpoint event, and a client that resets the
    // stream ends its session.
    let mut sse = client
        .get(format!("{base}/sse"))
        .insert_header(("accept", "text/event-stream"))
        .send()
        .await
        .expect("h2 stream");
    assert_eq!(sse.status().as_u16(), 200);
    let first = tokio::time::timeout(WAIT, sse.next())
        .await
        .expect("in time")
        .expect("a chunk")
        .unwrap();
    assert!(String::from_utf8_lossy(&first).contains("event: endpoint"));
    assert_eq!(bridge.session_count(), 2);
    drop(sse);
    assert!(eventually(|| bridge.session_count() == 1).await);
}

/// An `initialize` through a fresh bridge with `extra` flags: the answer and the sessions left.
async fn init_through(upstream: &str, extra: &[&str]) -> (Raw, usize) {
    let args = [&["--upstream-transport", "streamable"][..], extra].concat();
    let b = bridge(upstream, &args);
    let r = raw("POST", &b.url("/mcp"), &[JSON, ACCEPT_BOTH], INIT_2025).await;
    (r, b.session_count())
}

#[actix_rt::test]
async fn upstream_certificates_are_verified_unless_explicitly_not() {
    let pki = TestPki::new("deploy");
    let server = FakeServer::start(ServerOptions::streamable());
    let front = tls_front(server.addr(), &pki);
    let upstream = format!("https://127.0.0.1:{}/mcp", front.port());

    // The public web roots do not know the test CA; another private CA does not either.
    for extra in [&[][..], &["--upstream-ca", arg(&pki.other_ca)][..]] {
        let (r, sessions) = init_through(&upstream, extra).await;
        assert_eq!(r.status, 502, "{extra:?}: {}", r.body);
        assert_eq!(r.json()["id"], 1, "the client's initialize gets the error");
        let msg = r.json()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        assert!(msg.contains("cannot reach the upstream"), "{msg}");
        assert_eq!(sessions, 0);
    }

    // The right CA, or (loudly) no verification at all, connects.
    for extra in [
        &["--upstream-ca", arg(&pki.ca)][..],
        &["--upstream-insecure"][..],
    ] {
        let (r, sessions) = init_through(&upstream, extra).await;
        assert_eq!(r.status, 200, "{extra:?}: {}", r.body);
        assert_eq!(
            messages(&r.body)[0]["result"]["serverInfo"]["name"],
            "fake-streamable"
        );
        assert_eq!(sessions, 1);
    }
}

#[test]
fn unreadable_tls_files_stop_the_start() {
    let cfg = mcp_bridge::Config::from_args([
        "mcp-bridge",
        "--upstream",
        "http://127.0.0.1:1/mcp",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        "/nonexistent/cert.pem",
        "--tls-key",
        "/nonexistent/key.pem",
    ])
    .unwrap();
    let err = mcp_bridge::spawn(cfg).err().expect("refuses to start");
    assert!(err.to_string().contains("--tls-cert"), "{err}");
}

// ---- CORS ---------------------------------------------------------------------------------

#[actix_rt::test]
async fn cors_preflight_and_requests_from_allowed_and_refused_origins() {
    let server = FakeServer::start(ServerOptions::streamable());
    let bridge = bridge(
        &server.url(),
        &[
            "--cors-origin",
            "https://app.example",
            "--auth-token",
            "alpha",
        ],
    );
    let app = ("origin", "https://app.example");
    let evil = ("origin", "https://evil.example");
    let ask = [
        ("access-control-request-method", "POST"),
        (
            "access-control-request-headers",
            "authorization, content-type, mcp-session-id, mcp-protocol-version, last-event-id",
        ),
    ];
    for (path, methods) in [
        ("/mcp", "GET, POST, DELETE"),
        ("/sse", "GET"),
        ("/messages", "POST"),
    ] {
        // Preflights carry no token and still succeed for the listed origin.
        let ok = raw("OPTIONS", &bridge.url(path), &[app, ask[0], ask[1]], "").await;
        assert_eq!(ok.status, 204, "{path}");
        let h = |n: &str| {
            ok.headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
        };
        assert_eq!(h("access-control-allow-origin"), "https://app.example");
        assert_eq!(h("access-control-allow-methods"), methods);
        for name in [
            "authorization",
            "content-type",
            "mcp-session-id",
            "mcp-protocol-version",
            "last-event-id",
        ] {
            assert!(
                h("access-control-allow-headers").contains(name),
                "{path}: {name}"
            );
        }
        assert!(ok.headers.get("access-control-allow-credentials").is_none());

        let refused = raw("OPTIONS", &bridge.url(path), &[evil, ask[0], ask[1]], "").await;
        assert_eq!(refused.status, 403, "{path}");
        assert!(refused.headers.get("access-control-allow-origin").is_none());
    }

    // The actual request: the page can read the answer and the session header.
    let auth = ("authorization", "Bearer alpha");
    let r = raw(
        "POST",
        &bridge.url("/mcp"),
        &[app, auth, JSON, ACCEPT_BOTH],
        INIT_2025,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(hv(&r, "access-control-allow-origin"), "https://app.example");
    let exposed = hv(&r, "access-control-expose-headers");
    assert!(exposed.contains("mcp-session-id"), "{exposed}");
    assert!(r.headers.get("mcp-session-id").is_some());

    // A refused 401 is readable by the page too, so it can start authorization.
    let r = raw(
        "POST",
        &bridge.url("/mcp"),
        &[app, JSON, ACCEPT_BOTH],
        INIT_2025,
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(hv(&r, "access-control-allow-origin"), "https://app.example");

    // Another origin is refused by the Origin check and gets no CORS headers.
    let r = raw(
        "POST",
        &bridge.url("/mcp"),
        &[evil, auth, JSON, ACCEPT_BOTH],
        INIT_2025,
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(r.headers.get("access-control-allow-origin").is_none());
    // The upstream never saw a browser Origin.
    assert!(server
        .requests()
        .iter()
        .all(|r| r.header("origin").is_none()));
}

#[actix_rt::test]
async fn cors_star_answers_any_origin_without_credentials() {
    let server = FakeServer::start(ServerOptions::streamable());
    let bridge = bridge(&server.url(), &["--cors-origin", "*"]);
    let r = raw(
        "POST",
        &bridge.url("/mcp"),
        &[("origin", "https://anyone.example"), JSON, ACCEPT_BOTH],
        INIT_2025,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(hv(&r, "access-control-allow-origin"), "*");
    assert!(r.headers.get("access-control-allow-credentials").is_none());
}

// ---- bearer tokens ------------------------------------------------------------------------

#[actix_rt::test]
async fn bearer_tokens_guard_every_endpoint_and_bind_sessions() {
    let pki = TestPki::new("deploy"); // only for its temp dir
    let token_file = pki.file("tokens", "# ops\nbeta\n");
    let server = FakeServer::start(ServerOptions::streamable());
    let bridge = bridge(
        &server.url(),
        &["--auth-token", "alpha", "--auth-token-file", &token_file],
    );
    let alpha = ("authorization", "Bearer alpha");
    let beta = ("authorization", "Bearer beta");
    let wrong = ("authorization", "Bearer gamma");

    let endpoints = [
        ("GET", "/sse", vec![("accept", "text/event-stream")], ""),
        ("POST", "/messages?sessionId=x", vec![JSON], LIST),
        ("POST", "/mcp", vec![JSON, ACCEPT_BOTH], INIT_2025),
        ("GET", "/mcp", vec![("accept", "text/event-stream")], ""),
        ("DELETE", "/mcp", vec![], ""),
    ];
    for (method, path, headers, body) in &endpoints {
        let missing = raw(method, &bridge.url(path), headers, body).await;
        assert_eq!(missing.status, 401, "{method} {path}");
        let challenge = hv(&missing, "www-authenticate");
        assert!(challenge.starts_with("Bearer"), "{challenge}");
        let mut h = headers.clone();
        h.push(wrong);
        let bad = raw(method, &bridge.url(path), &h, body).await;
        assert_eq!(bad.status, 401, "{method} {path}");
        assert!(hv(&bad, "www-authenticate").contains("invalid_token"));
    }
    assert_eq!(bridge.session_count(), 0);

    // The right token works; the session then belongs to it.
    let owner = StreamableClient::new(&bridge.url("/mcp"), &[alpha]);
    owner.initialize("2025-06-18").await.unwrap();
    let sid = owner.session_id().unwrap();
    assert!(owner.request("tools/list", Value::Null).await.is_ok());
    // Another valid credential does not find it, whatever the method.
    let intruder = StreamableClient::new(&bridge.url("/mcp"), &[beta]);
    intruder.set_session_id(Some(&sid));
    intruder.set_protocol_version(Some("2025-06-18"));
    assert_eq!(intruder.post_raw(LIST, &[]).await.unwrap().status, 404);
    assert_eq!(intruder.open_get(None).await.unwrap().status, 404);
    assert_eq!(intruder.delete().await.unwrap(), 404);
    assert_eq!(bridge.session_count(), 1, "the session survived");

    // Legacy: the same binding for the message endpoint.
    let legacy = LegacyClient::connect(&bridge.url("/sse"), &[beta])
        .await
        .unwrap();
    legacy.initialize("2024-11-05").await.unwrap();
    let stolen = legacy
        .post_raw_to(&legacy.endpoint_url(), LIST, &[alpha])
        .await
        .unwrap();
    assert_eq!(stolen.status, 404);

    // The bridge checked the clients' tokens itself: none of them went upstream.
    let reqs = server.requests();
    assert!(!reqs.is_empty());
    assert!(
        reqs.iter().all(|r| r.header("authorization").is_none()),
        "{:?}",
        reqs.iter().map(|r| &r.headers).collect::<Vec<_>>()
    );
}

// ---- header policy ------------------------------------------------------------------------

#[actix_rt::test]
async fn upstream_headers_are_forwarded_added_and_stripped_by_policy() {
    let pki = TestPki::new("deploy");
    let secret = pki.file("api-key", "from-file\n");
    let server = FakeServer::start(ServerOptions::streamable());
    let bridge = bridge(
        &server.url(),
        &[
            "--forward-header",
            "x-tenant",
            "--upstream-header",
            "X-Api-Key: static-key",
            "--upstream-header",
            &format!("X-Secret: @{secret}"),
            "--admin-listen",
            "127.0.0.1:0",
        ],
    );
    let origin = format!("http://{}", bridge.addr);
    let client = StreamableClient::new(
        &bridge.url("/mcp"),
        &[
            ("x-tenant", "t1"),
            ("x-other", "not listed"),
            ("mcp-trace-id", "abc"),
            ("authorization", "Bearer client-token"),
            ("x-api-key", "client-value"),
            ("origin", &origin),
            ("te", "trailers"),
            ("trailer", "x-foo"),
            ("proxy-authorization", "Basic eA=="),
        ],
    );
    client.initialize("2025-06-18").await.unwrap();
    client.request("tools/list", Value::Null).await.unwrap();
    let reqs = server.requests();
    let posts: Vec<_> = reqs.iter().filter(|r| r.method == "POST").collect();
    assert!(posts.len() >= 3, "initialize, initialized, tools/list");
    for r in posts {
        let h = |n: &str| r.header(n);
        assert_eq!(h("x-tenant"), Some("t1"));
        assert_eq!(h("mcp-trace-id"), Some("abc"), "unknown Mcp-* headers pass");
        assert_eq!(h("x-api-key"), Some("static-key"), "configured value wins");
        assert_eq!(h("x-secret"), Some("from-file"));
        for gone in [
            "x-other",
            "authorization",
            "origin",
            "te",
            "trailer",
            "proxy-authorization",
        ] {
            assert_eq!(h(gone), None, "{gone} must not cross");
        }
        assert_eq!(h("host"), Some(&*server.addr().to_string()));
    }
    // The withheld client token is a difference, recorded once for the session.
    let metrics = raw("GET", &bridge.admin_url("/metrics"), &[], "")
        .await
        .body;
    assert!(
        metrics.contains("mcp_bridge_differences_total{kind=\"header_stripped\"} 1"),
        "{metrics}"
    );
}

#[actix_rt::test]
async fn authorization_crosses_only_when_listed_and_static_headers_reach_a_legacy_upstream() {
    let server = FakeServer::start(ServerOptions::legacy());
    let bridge = bridge(
        &server.url(),
        &[
            "--upstream-transport",
            "sse",
            "--forward-header",
            "Authorization",
            "--upstream-header",
            "X-Api-Key: k",
        ],
    );
    let client = StreamableClient::new(
        &bridge.url("/mcp"),
        &[("authorization", "Bearer upstream-issued")],
    );
    client.initialize("2025-06-18").await.unwrap();
    let reqs = server.requests();
    let get = reqs
        .iter()
        .find(|r| r.method == "GET")
        .expect("the SSE GET");
    let post = reqs.iter().find(|r| r.method == "POST").expect("a POST");
    for r in [get, post] {
        assert_eq!(r.header("authorization"), Some("Bearer upstream-issued"));
        assert_eq!(r.header("x-api-key"), Some("k"));
    }
}

// ---- limits -------------------------------------------------------------------------------

fn header<'a>(r: &'a mcp_testkit::StreamableResponse, name: &str) -> &'a str {
    r.header(name).unwrap_or("")
}

#[actix_rt::test]
async fn every_limit_is_answered_with_its_status() {
    let server = FakeServer::start(ServerOptions::streamable());

    // Sessions per credential: 429; another credential still gets one.
    let b = bridge(
        &server.url(),
        &[
            "--auth-token",
            "alpha,beta",
            "--max-sessions-per-credential",
            "1",
            "--admin-listen",
            "127.0.0.1:0",
        ],
    );
    let alpha = [("authorization", "Bearer alpha")];
    StreamableClient::new(&b.url("/mcp"), &alpha)
        .initialize("2025-06-18")
        .await
        .unwrap();
    let second = StreamableClient::new(&b.url("/mcp"), &alpha)
        .post_raw(INIT_2025, &[])
        .await
        .unwrap();
    assert_eq!(second.status, 429);
    assert_eq!(header(&second, "retry-after"), "5");
    let legacy = raw(
        "GET",
        &b.url("/sse"),
        &[alpha[0], ("accept", "text/event-stream")],
        "",
    )
    .await;
    assert_eq!(legacy.status, 429, "the legacy front counts too");
    StreamableClient::new(&b.url("/mcp"), &[("authorization", "Bearer beta")])
        .initialize("2025-06-18")
        .await
        .unwrap();
    // Refusals are counted for the metrics.
    let metrics = raw("GET", &b.admin_url("/metrics"), &[], "").await.body;
    let refusals = metrics
        .lines()
        .find_map(|l| l.strip_prefix("mcp_bridge_refusals_total "))
        .and_then(|n| n.trim().parse::<u64>().ok());
    assert_eq!(refusals, Some(2), "{metrics}");
    drop(b);

    // Sessions in total: 503.
    let b = bridge(&server.url(), &["--max-sessions", "1"]);
    StreamableClient::new(&b.url("/mcp"), &[])
        .initialize("2025-06-18")
        .await
        .unwrap();
    let full = raw("POST", &b.url("/mcp"), &[JSON, ACCEPT_BOTH], INIT_2025).await;
    assert_eq!(full.status, 503);
    assert!(full.headers.get("retry-after").is_some());
    drop(b);

    // Requests in flight per session: 429 while one is running, fine once it is done.
    let b = bridge(
        &server.url(),
        &["--max-requests-per-session", "1", "--max-body", "1KiB"],
    );
    let client = StreamableClient::new(&b.url("/mcp"), &[]);
    client.initialize("2025-06-18").await.unwrap();
    let slow = r#"{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"slow","arguments":{"ms":400}}}"#;
    let running = client.post_raw(slow, &[]).await.unwrap();
    assert_eq!(running.status, 200);
    let busy = client.post_raw(LIST, &[]).await.unwrap();
    assert_eq!(busy.status, 429);
    assert_eq!(header(&busy, "retry-after"), "1");
    let ex = client
        .read_exchange(json!(10), running)
        .await
        .expect("the slow call completes");
    assert_eq!(ex.text(), Some("slept 400 ms"));
    assert!(client.request("tools/list", Value::Null).await.is_ok());
    // Body size: 413.
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{{"name":"big","arguments":{{"pad":"{}"}}}}}}"#,
        "x".repeat(2048)
    );
    assert_eq!(client.post_raw(&big, &[]).await.unwrap().status, 413);
    drop(b);

    // Absolute lifetime: the reaper ends a busy session, which is then gone (404).
    let b = bridge(&server.url(), &["--session-max-lifetime", "300ms"]);
    let client = StreamableClient::new(&b.url("/mcp"), &[]);
    client.initialize("2025-06-18").await.unwrap();
    assert_eq!(b.session_count(), 1);
    assert!(eventually(|| b.session_count() == 0).await);
    assert_eq!(client.post_raw(LIST, &[]).await.unwrap().status, 404);
}

/// A Streamable session waiting for the upstream's answer to its `initialize` already holds
/// its place: initializes sent meanwhile cannot push the bridge past `--max-sessions`.
#[actix_rt::test]
async fn sessions_still_initializing_count_against_the_limit() {
    // An upstream that accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/mcp", silent.local_addr().unwrap());
    let b = bridge(
        &url,
        &["--upstream-transport", "streamable", "--max-sessions", "1"],
    );
    let mcp = b.url("/mcp");
    let first = raw("POST", &mcp, &[JSON, ACCEPT_BOTH], INIT_2025);
    let meanwhile = async {
        assert!(eventually(|| b.session_count() == 1).await);
        let second = raw("POST", &mcp, &[JSON, ACCEPT_BOTH], INIT_2025).await;
        (second, b.session_count())
    };
    let (first, (second, held)) = tokio::join!(first, meanwhile);
    assert_eq!(second.status, 503, "{}", second.body);
    assert_eq!(held, 1);
    assert!(
        first.status >= 500,
        "the silent upstream times out: {}",
        first.status
    );
    assert_eq!(b.session_count(), 0, "the failed session leaves the map");
}
