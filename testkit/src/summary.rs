//! Comparing an interop client's scenario summary through the bridge with the same client's
//! summary directly, where the two legitimately differ by protocol era.

use serde_json::{json, Value};

/// A 2026-07-28 client (Python `mcp` 2.x `Client`) probes `server/discover`: a 2025 server
/// refuses it and the client falls back to `initialize`, while the bridge serves the probe
/// and the client stays modern. What the era itself changes is checked here and set aside:
/// the negotiated version; log messages (a modern request gets them only when it asks, and
/// the interop clients do not); and the unsolicited requests and logs a sessionless client
/// cannot receive (the bridge refuses the server's request, recorded; the roots a 2025 server
/// would have fetched after the handshake are asked for during the call instead, so the
/// client answers as often either way). Everything else must still be identical.
///
/// Takes whole summaries (with `meta`). `Ok(false)`: the client did not go modern, nothing
/// set aside.
pub fn set_aside_era_differences(bridged: &mut Value, direct: &mut Value) -> Result<bool, String> {
    let negotiation = |v: &Value| v["meta"]["negotiation"].clone();
    if negotiation(bridged) != json!("discover") {
        return Ok(false);
    }
    if negotiation(direct) == json!("discover") {
        return Err("the direct server answered server/discover: not a 2025 server".into());
    }
    if bridged["protocolVersion"] != json!("2026-07-28") {
        return Err(format!(
            "through the bridge the client should stay in its own era, got {}",
            bridged["protocolVersion"]
        ));
    }
    for v in [bridged, direct] {
        let unsolicited = v["preambleRootsRequests"].as_u64().unwrap_or(0);
        if let Some(n) = v["roots"]["requests"].as_u64() {
            v["roots"]["requests"] = json!(n + unsolicited);
        }
        if let Some(events) = v["progress"]["events"].as_array_mut() {
            events.retain(|e| e["kind"] != json!("log"));
        }
        if let Some(o) = v.as_object_mut() {
            for k in ["protocolVersion", "preambleLogs", "preambleRootsRequests"] {
                o.remove(k);
            }
        }
    }
    Ok(true)
}
