//! The binary's command line: bad configuration fails fast with one line; env twins work;
//! SIGTERM closes upstream sessions.

mod support;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Command, Stdio};

fn bridge() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mcp-bridge"));
    // Only what each test sets.
    for (k, _) in std::env::vars() {
        if k.starts_with("MCP_BRIDGE_") {
            c.env_remove(k);
        }
    }
    c
}

#[test]
fn invalid_configuration_exits_2_with_one_line_before_binding() {
    // Hold a port: a bridge that got as far as binding would fail differently.
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    for args in [
        vec!["--upstream", "ftp://example.com/", "--listen", &addr],
        vec![
            "--upstream",
            "http://127.0.0.1:1/mcp",
            "--listen",
            &addr,
            "--keepalive",
            "0s",
        ],
        vec![
            "--upstream",
            "http://127.0.0.1:1/mcp",
            "--listen",
            &addr,
            "--sse-path",
            "nope",
        ],
        vec!["--listen", &addr],
    ] {
        let out = bridge().args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(!lines.is_empty(), "{args:?}: a reason is given");
        assert!(
            lines[0].contains("invalid") || lines[0].contains("error"),
            "{args:?}: {stderr}"
        );
    }
    let cfg_line = bridge()
        .args(["--upstream", "http://127.0.0.1:1/mcp", "--replay-age", "0s"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&cfg_line.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.starts_with("mcp-bridge: invalid configuration: --replay-age"),
        "{stderr}"
    );
}

#[test]
fn environment_twins_configure_the_bridge() {
    let mut child = support::ChildGuard(
        bridge()
            .env("MCP_BRIDGE_UPSTREAM", "http://127.0.0.1:1/mcp")
            .env("MCP_BRIDGE_LISTEN", "127.0.0.1:0")
            .env("MCP_BRIDGE_LOG_LEVEL", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("mcp-bridge listening on http://127.0.0.1:"),
        "{line}"
    );
}

#[actix_rt::test]
async fn sigterm_closes_upstream_sessions_before_exit() {
    use support::{spawn_binary, FakeServer, LegacyClient, ServerOptions};
    let server = FakeServer::start(ServerOptions::streamable());
    let (mut child, base) = spawn_binary(&[
        "--upstream",
        &server.url(),
        "--listen",
        "127.0.0.1:0",
        "--log-level",
        "info",
    ]);
    let client = LegacyClient::connect(&format!("{base}/sse"), &[])
        .await
        .unwrap();
    client.initialize("2025-06-18").await.unwrap();
    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        server
            .wait_until(|s| s.deletes() == 1, std::time::Duration::from_secs(10))
            .await,
        "upstream session closed on shutdown"
    );
    let mut stderr = child.0.stderr.take().unwrap();
    let exit = tokio::task::spawn_blocking(move || child.0.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    assert!(
        client.wait_closed(std::time::Duration::from_secs(5)).await,
        "client stream ended"
    );
    // The log (a pipe here, not a terminal) has the summary line and no colour codes.
    let mut log = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut log).unwrap();
    assert!(
        log.contains("session ended") && log.contains("ended=\"shutdown\""),
        "{log}"
    );
    assert!(
        !log.contains('\x1b'),
        "ANSI escapes in a piped log: {log:?}"
    );
}
