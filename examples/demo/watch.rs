//! A client that calls the `process_items` tool and prints every notification the moment it
//! arrives, in either client transport. Shared by the demo and the `client` example.

use std::io::Write;
use std::time::{Duration, Instant};

use mcp_testkit::{LegacyClient, StreamableClient};
use serde_json::{json, Value};

pub const ITEMS: [&str; 5] = ["alpha", "beta", "gamma", "delta", "epsilon"];

fn call_body(id: u64) -> String {
    json!({
        "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "process_items", "arguments": {"items": ITEMS, "delay_ms": 250},
                   "_meta": {"progressToken": "demo"}}
    })
    .to_string()
}

/// Prints one message as it arrives; true when it is the tool's result.
fn show(out: &mut dyn Write, start: Instant, raw: &str) -> bool {
    let v: Value = serde_json::from_str(raw).unwrap_or(Value::Null);
    let t = start.elapsed().as_secs_f32();
    match v["method"].as_str() {
        Some("notifications/progress") => writeln!(
            out,
            "  +{t:.2}s  progress  {}/{}  {}",
            v["params"]["progress"],
            v["params"]["total"],
            v["params"]["message"].as_str().unwrap_or("")
        ),
        Some("notifications/message") => writeln!(
            out,
            "  +{t:.2}s  log       {}",
            v["params"]["data"].as_str().unwrap_or("")
        ),
        Some(other) => writeln!(out, "  +{t:.2}s  {other}"),
        None => {
            let text = v.pointer("/result/content/0/text").and_then(Value::as_str);
            let _ = writeln!(out, "  +{t:.2}s  result    {}", text.unwrap_or(raw));
            return true;
        }
    }
    .ok();
    false
}

/// A Streamable HTTP client of the MCP endpoint `url`: initialize, the call, DELETE.
pub async fn streamable_client(url: &str, out: &mut dyn Write) -> Result<(), String> {
    let client = StreamableClient::new(url, &[]);
    let init = client
        .initialize("2025-06-18")
        .await
        .map_err(|e| e.to_string())?;
    let _ = writeln!(
        out,
        "initialize → {} (protocol {}), Mcp-Session-Id {}",
        init["serverInfo"]["name"],
        init["protocolVersion"],
        client.session_id().unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "tools/call process_items {ITEMS:?} — notifications print as they arrive:"
    );
    let start = Instant::now();
    let resp = client
        .post_raw(&call_body(100), &[])
        .await
        .map_err(|e| e.to_string())?;
    let mut stream = resp
        .into_sse()
        .ok_or("the call was not answered with an SSE stream")?;
    loop {
        let ev = stream
            .next_event(Duration::from_secs(10))
            .await
            .ok_or("stream ended before the result")?;
        if show(out, start, &ev.data) {
            break;
        }
    }
    let status = client.delete().await.map_err(|e| e.to_string())?;
    let _ = writeln!(out, "DELETE session → {status}");
    Ok(())
}

/// A legacy HTTP+SSE client of the SSE endpoint `url`: the stream, initialize, the call, close.
pub async fn legacy_client(url: &str, out: &mut dyn Write) -> Result<(), String> {
    let client = LegacyClient::connect(url, &[])
        .await
        .map_err(|e| e.to_string())?;
    let _ = writeln!(out, "endpoint event → {}", client.endpoint_url());
    let init = client
        .initialize("2024-11-05")
        .await
        .map_err(|e| e.to_string())?;
    let _ = writeln!(
        out,
        "initialize → {} (protocol {})",
        init["serverInfo"]["name"], init["protocolVersion"]
    );
    let _ = writeln!(
        out,
        "tools/call process_items {ITEMS:?} — notifications print as they arrive:"
    );
    let start = Instant::now();
    let posted = client
        .post_raw(&call_body(100))
        .await
        .map_err(|e| e.to_string())?;
    if posted.status != 202 {
        return Err(format!("POST answered {}", posted.status));
    }
    loop {
        let raw = client
            .next_message(Duration::from_secs(10))
            .await
            .ok_or("stream ended before the result")?;
        if show(out, start, &raw) {
            break;
        }
    }
    client.close();
    let _ = writeln!(out, "closed the SSE stream");
    Ok(())
}
