//! Pooled upstream connections that the server closes while idle are closed on the bridge's
//! side too, not left in CLOSE-WAIT until the pool happens to look at them again.

mod support;

use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// How long the server keeps an idle keep-alive connection before closing it.
const SERVER_IDLE: Duration = Duration::from_millis(200);
/// How long the server then waits for the bridge to close its end.
const BRIDGE_MUST_CLOSE_WITHIN: Duration = Duration::from_secs(5);

/// One HTTP/1.1 request's head and body, or `None` at end of stream.
async fn read_request(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, String)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let mut chunk = [0u8; 4096];
                let n = conn.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
            buf.drain(..end + 4 + len);
            return Some((head, body));
        }
        let mut chunk = [0u8; 4096];
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn answer(head: &str, body: &str) -> String {
    let (status, extra, content) = if head.starts_with("GET") {
        ("405 Method Not Allowed", "", String::new())
    } else if body.contains("\"initialize\"") {
        let v: Value = serde_json::from_str(body).unwrap();
        let result = json!({"jsonrpc": "2.0", "id": v["id"], "result": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "serverInfo": {"name": "raw", "version": "1"}}});
        (
            "200 OK",
            "Content-Type: application/json\r\nMcp-Session-Id: raw-1\r\n",
            result.to_string(),
        )
    } else if head.starts_with("DELETE") {
        ("200 OK", "", String::new())
    } else if let Some(id) = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("id").cloned())
    {
        let result = json!({"jsonrpc": "2.0", "id": id, "result": {"tools": []}});
        (
            "200 OK",
            "Content-Type: application/json\r\n",
            result.to_string(),
        )
    } else {
        ("202 Accepted", "", String::new())
    };
    format!(
        "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\n\r\n{content}",
        content.len()
    )
}

/// Serve keep-alive requests; once a connection is idle for [`SERVER_IDLE`], close it and
/// report whether the bridge closed its end too (read returns 0) in time.
async fn serve(conn: TcpStream, closed_by_bridge: mpsc::UnboundedSender<bool>) {
    let mut conn = conn;
    let mut buf = Vec::new();
    loop {
        match tokio::time::timeout(SERVER_IDLE, read_request(&mut conn, &mut buf)).await {
            Ok(Some((head, body))) => {
                if conn
                    .write_all(answer(&head, &body).as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Ok(None) => return, // the bridge closed it while in use: not this test's case
            Err(_) => break,    // idle
        }
    }
    let _ = conn.shutdown().await;
    let mut rest = [0u8; 64];
    let closed = matches!(
        tokio::time::timeout(BRIDGE_MUST_CLOSE_WITHIN, conn.read(&mut rest)).await,
        Ok(Ok(0)) | Ok(Err(_))
    );
    let _ = closed_by_bridge.send(closed);
}

#[actix_rt::test]
async fn idle_connections_closed_by_the_server_are_closed_by_the_bridge() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = format!("http://{}/mcp", listener.local_addr().unwrap());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let server = actix_rt::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            actix_rt::spawn(serve(conn, tx.clone()));
        }
    });
    let bridge = bridge(&upstream, &["--upstream-transport", "streamable"]);
    let client = StreamableClient::new(&bridge.url("/mcp"), &[]);
    client.initialize("2025-06-18").await.unwrap();
    let ex = client.request("tools/list", json!({})).await.unwrap();
    assert!(ex.result().is_some(), "{:?}", ex.response);

    // Every connection the bridge opened goes idle and is closed by the server; each must be
    // closed by the bridge too.
    let first = tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("the server closed an idle connection")
        .unwrap();
    assert!(
        first,
        "the bridge left a connection the server closed open (CLOSE-WAIT)"
    );
    while let Ok(Some(closed)) = tokio::time::timeout(Duration::from_millis(100), rx.recv()).await {
        assert!(
            closed,
            "the bridge left a connection the server closed open (CLOSE-WAIT)"
        );
    }
    server.abort();
}
