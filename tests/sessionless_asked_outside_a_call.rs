//! A server may ask the client something (here `roots/list`) while a sessionless client's
//! request that cannot answer `input_required` is in flight (`tools/list`; server-everything
//! does so right after `initialized`). The bridge refuses the server's request, as a client
//! with nothing to answer it would, and the request still gets its ordinary result.

mod support;

use support::*;

const V: &str = "2026-07-28";

/// A stdio server that, asked for its tools, first asks the client for its roots and names
/// its only tool after how that was answered.
fn asking_server(dir: &std::path::Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("asking.sh");
    let body = r#"#!/bin/sh
while IFS= read -r line; do
  id=$(printf '%s' "$line" | sed -n 's/.*"id":\([^,}]*\).*/\1/p')
  case "$line" in
    *'"method":"initialize"'*)
      echo '{"jsonrpc":"2.0","id":'"$id"',"result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"asking","version":"1"}}}' ;;
    *'"method":"tools/list"'*)
      pending=$id
      echo '{"jsonrpc":"2.0","id":"ask-1","method":"roots/list"}' ;;
    *'"ask-1"'*)
      case "$line" in *'"error"'*) verdict=refused ;; *) verdict=answered ;; esac
      echo '{"jsonrpc":"2.0","id":'"$pending"',"result":{"tools":[{"name":"'"$verdict"'","inputSchema":{"type":"object"}}]}}' ;;
  esac
done
"#;
    std::fs::write(&path, body).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_string_lossy().into_owned()
}

#[actix_rt::test]
async fn a_server_request_during_tools_list_is_refused_and_the_list_still_comes() {
    init_logs();
    let dir = std::env::temp_dir().join(format!("mcp-bridge-asking-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let command = asking_server(&dir);
    let args = [
        "mcp-bridge",
        "--upstream-command",
        &command,
        "--listen",
        "127.0.0.1:0",
        "--upstream-timeout",
        "5s",
        "--upstream-stop-grace",
        "300ms",
    ];
    let b = mcp_bridge::spawn(mcp_bridge::Config::from_args(args).expect("valid config"))
        .expect("starts");
    let body = json!({
        "jsonrpc": "2.0", "id": 1, "method": "tools/list",
        "params": {"_meta": {
            "io.modelcontextprotocol/protocolVersion": V,
            "io.modelcontextprotocol/clientCapabilities": {"roots": {}},
        }},
    });
    let r = tokio::time::timeout(
        WAIT,
        raw(
            "POST",
            &b.url("/mcp"),
            &[
                JSON,
                ACCEPT_BOTH,
                ("mcp-protocol-version", V),
                ("mcp-method", "tools/list"),
            ],
            &body.to_string(),
        ),
    )
    .await
    .expect("answered in time");
    assert_eq!(r.status, 200, "{}", r.body);
    let data: Vec<&str> = r
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .collect();
    assert_eq!(data.len(), 1, "one message, the result: {}", r.body);
    let answer: Value = serde_json::from_str(data[0]).unwrap();
    assert_eq!(answer["id"], 1, "{answer}");
    assert_ne!(
        answer["result"]["resultType"], "input_required",
        "tools/list cannot answer input_required: {answer}"
    );
    assert_eq!(
        answer["result"]["tools"][0]["name"], "refused",
        "the server's roots/list was refused: {answer}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
