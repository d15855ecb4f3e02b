//! `server/discover` ⇄ `initialize`: what a bridge answers to one era from what the other
//! era's server said, and the envelope ⇄ handshake parameters.
//!
//! Sources: `schema/2026-07-28/schema.ts` (`DiscoverRequest`, `DiscoverResult extends
//! CacheableResult`: `supportedVersions`, `capabilities`, `instructions?`, `ttlMs`,
//! `cacheScope`, `resultType`; server info in `_meta["io.modelcontextprotocol/serverInfo"]`),
//! `basic/versioning.mdx` (`server/discover` is MUST), and for the legacy side the
//! 2025-11-25 `InitializeRequest`/`InitializeResult` (`protocolVersion`, `capabilities`,
//! `clientInfo`/`serverInfo`, `instructions?`).

use serde::Deserialize;
use serde_json::value::RawValue;

use super::codes::LEGACY_VERSIONS;
use super::meta::{self, Envelope};
use super::splice;

/// The discovery method (MUST be implemented by modern servers).
pub const METHOD: &str = "server/discover";

/// Why a result could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("result is not the expected shape: {0}")]
    Shape(#[from] serde_json::Error),
    #[error("result lacks `{0}`")]
    Missing(&'static str),
}

/// `cacheScope` of a `CacheableResult`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheScope {
    Public,
    /// Cached only within the same authorization context.
    #[default]
    Private,
}

impl CacheScope {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheScope::Public => "public",
            CacheScope::Private => "private",
        }
    }
}

/// `ttlMs` and `cacheScope`, required on `server/discover`, the list methods and
/// `resources/read` results. The default is the TypeScript SDK's conservative one
/// (`packages/core/src/shared/resultCacheHints.ts`): `0` (immediately stale), `private`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheHint {
    pub ttl_ms: u64,
    pub scope: CacheScope,
}

/// A `server/discover` request carrying `env` (the request must carry `_meta` like any other).
pub fn discover_request(id_json: &str, env: &Envelope) -> String {
    let bare = format!("{{\"jsonrpc\":\"2.0\",\"id\":{id_json},\"method\":\"{METHOD}\"}}");
    let stamped = meta::stamp(bare.as_bytes(), env).expect("a well-formed request");
    String::from_utf8(stamped).expect("UTF-8 in, UTF-8 out")
}

/// The fields of a `DiscoverResult` a bridge uses, as raw JSON text where they are passed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    pub supported_versions: Vec<String>,
    /// `ServerCapabilities` object.
    pub capabilities: String,
    /// A JSON string, when present.
    pub instructions: Option<String>,
    /// `Implementation` object from `_meta["io.modelcontextprotocol/serverInfo"]`, when present.
    pub server_info: Option<String>,
}

impl Discovered {
    /// The first of `ours` (in our order of preference) that the server supports.
    pub fn pick_version<'a>(&self, ours: &[&'a str]) -> Option<&'a str> {
        ours.iter()
            .copied()
            .find(|v| self.supported_versions.iter().any(|s| s == v))
    }
}

/// Read a `DiscoverResult` (the `result` member's JSON text).
pub fn parse_discover_result(result: &str) -> Result<Discovered, ConvertError> {
    #[derive(Deserialize)]
    struct R<'a> {
        #[serde(rename = "supportedVersions")]
        supported_versions: Option<Vec<String>>,
        #[serde(borrow)]
        capabilities: Option<&'a RawValue>,
        #[serde(borrow)]
        instructions: Option<&'a RawValue>,
        #[serde(rename = "_meta", borrow)]
        meta: Option<ResultMeta<'a>>,
    }
    #[derive(Deserialize)]
    struct ResultMeta<'a> {
        #[serde(rename = "io.modelcontextprotocol/serverInfo", borrow)]
        server_info: Option<&'a RawValue>,
    }
    let r: R<'_> = serde_json::from_str(result)?;
    Ok(Discovered {
        supported_versions: r
            .supported_versions
            .ok_or(ConvertError::Missing("supportedVersions"))?,
        capabilities: r
            .capabilities
            .ok_or(ConvertError::Missing("capabilities"))?
            .get()
            .to_owned(),
        instructions: r.instructions.map(|i| i.get().to_owned()),
        server_info: r
            .meta
            .and_then(|m| m.server_info)
            .map(|i| i.get().to_owned()),
    })
}

/// The protocol version to answer an old client's `initialize` with: its own when the
/// bridge speaks it to old clients, else the newest legacy version (2025-11-25 lifecycle:
/// "respond with another protocol version it supports … the latest").
pub fn legacy_version_for(requested: &str) -> &'static str {
    LEGACY_VERSIONS
        .iter()
        .copied()
        .find(|v| *v == requested)
        .unwrap_or(LEGACY_VERSIONS[0])
}

/// An `InitializeResult` for an old client, from a modern server's discover result.
/// `capabilities` and `instructions` pass on byte for byte; `serverInfo` comes from the
/// result's `_meta` or, when the server sent none (it is only a SHOULD there, but required in
/// `InitializeResult`), from `fallback_server_info` (an `Implementation` object).
pub fn initialize_result(
    found: &Discovered,
    requested: &str,
    fallback_server_info: &str,
) -> String {
    let version = serde_json::to_string(legacy_version_for(requested)).expect("a string");
    let server_info = found.server_info.as_deref().unwrap_or(fallback_server_info);
    let instructions = found
        .instructions
        .as_deref()
        .map(|i| format!(",\"instructions\":{i}"))
        .unwrap_or_default();
    format!(
        "{{\"protocolVersion\":{version},\"capabilities\":{},\"serverInfo\":{server_info}{instructions}}}",
        found.capabilities
    )
}

/// A `DiscoverResult` for a modern client, from a legacy server's `InitializeResult`
/// (`result` JSON text): `capabilities` and `instructions` pass on byte for byte,
/// `serverInfo` moves into `_meta["io.modelcontextprotocol/serverInfo"]` (kept beside any
/// other `_meta` keys), and the required `resultType`, `supportedVersions`, `ttlMs` and
/// `cacheScope` are added. `supported` is what the bridge serves modern clients.
pub fn discover_result(
    init_result: &str,
    supported: &[&str],
    hint: CacheHint,
) -> Result<String, ConvertError> {
    #[derive(Deserialize)]
    struct R<'a> {
        #[serde(borrow)]
        capabilities: Option<&'a RawValue>,
        #[serde(rename = "serverInfo", borrow)]
        server_info: Option<&'a RawValue>,
        #[serde(borrow)]
        instructions: Option<&'a RawValue>,
        #[serde(rename = "_meta", borrow)]
        meta: Option<&'a RawValue>,
    }
    let r: R<'_> = serde_json::from_str(init_result)?;
    let capabilities = r
        .capabilities
        .ok_or(ConvertError::Missing("capabilities"))?;
    let server_info = r.server_info.ok_or(ConvertError::Missing("serverInfo"))?;
    let meta = match r.meta.map(RawValue::get) {
        Some(m) if m.starts_with('{') => splice::set(m, 0, meta::SERVER_INFO, server_info.get()),
        _ => format!(
            "{{{}:{}}}",
            serde_json::to_string(meta::SERVER_INFO).expect("a string"),
            server_info.get()
        ),
    };
    let instructions = r
        .instructions
        .map(|i| format!(",\"instructions\":{}", i.get()))
        .unwrap_or_default();
    Ok(format!(
        "{{\"resultType\":\"complete\",\"supportedVersions\":{},\"capabilities\":{}{instructions},\"ttlMs\":{},\"cacheScope\":\"{}\",\"_meta\":{meta}}}",
        serde_json::to_string(supported).expect("strings"),
        capabilities.get(),
        hint.ttl_ms,
        hint.scope.as_str(),
    ))
}

/// The envelope to stamp on an old client's requests, from its `initialize` params:
/// `capabilities` and `clientInfo` as it wrote them, and the modern `version` the upstream
/// speaks. A missing `capabilities` becomes `{}` (no optional capabilities).
pub fn envelope_from_initialize(
    init_params: &str,
    version: &str,
) -> Result<Envelope, ConvertError> {
    #[derive(Deserialize)]
    struct P<'a> {
        #[serde(borrow)]
        capabilities: Option<&'a RawValue>,
        #[serde(rename = "clientInfo", borrow)]
        client_info: Option<&'a RawValue>,
    }
    let p: P<'_> = serde_json::from_str(init_params)?;
    Ok(Envelope {
        protocol_version: version.to_owned(),
        client_capabilities: p.capabilities.map_or("{}", RawValue::get).to_owned(),
        client_info: p.client_info.map(|i| i.get().to_owned()),
        log_level: None,
    })
}

/// The level of an old client's `logging/setLevel` params (`{"level":"info"}`): the
/// request is gone in 2026-07-28; the level rides on later requests as
/// `_meta["io.modelcontextprotocol/logLevel"]`.
pub fn log_level_from_set_level(params: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct P {
        level: String,
    }
    serde_json::from_str::<P>(params).ok().map(|p| p.level)
}

/// An `initialize` request for a legacy server on behalf of a modern client, from the
/// envelope of that client's request. `clientInfo` is required there; `fallback_client_info`
/// stands in when the client sent none.
pub fn initialize_request(
    id_json: &str,
    env: &Envelope,
    legacy_version: &str,
    fallback_client_info: &str,
) -> String {
    format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":{id_json},\"method\":\"initialize\",\"params\":{{\"protocolVersion\":{},\"capabilities\":{},\"clientInfo\":{}}}}}",
        serde_json::to_string(legacy_version).expect("a string"),
        env.client_capabilities,
        env.client_info.as_deref().unwrap_or(fallback_client_info),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    const FALLBACK: &str = r#"{"name":"mcp-bridge","version":"0.1.0"}"#;

    // As the Python SDK 2.3 answers (PEERS.md: supportedVersions ["2026-07-28"]).
    const DISCOVER: &str = r#"{"resultType":"complete","supportedVersions":["2026-07-28"],"capabilities":{"tools":{"listChanged":true},"logging":{}},"instructions":"Use add for sums.","ttlMs":0,"cacheScope":"private","_meta":{"io.modelcontextprotocol/serverInfo":{"name":"demo","version":"2.3.0"}}}"#;

    #[test]
    fn initialize_result_from_discover() {
        let found = parse_discover_result(DISCOVER).unwrap();
        assert_eq!(found.pick_version(&["2026-07-28"]), Some("2026-07-28"));
        assert_eq!(found.pick_version(&["2027-01-01"]), None);
        assert_eq!(
            initialize_result(&found, "2025-06-18", FALLBACK),
            r#"{"protocolVersion":"2025-06-18","capabilities":{"tools":{"listChanged":true},"logging":{}},"serverInfo":{"name":"demo","version":"2.3.0"},"instructions":"Use add for sums."}"#
        );
        // A version the bridge does not speak to old clients: the newest legacy one.
        let r: Value =
            serde_json::from_str(&initialize_result(&found, "2099-01-01", FALLBACK)).unwrap();
        assert_eq!(r["protocolVersion"], "2025-11-25");
    }

    #[test]
    fn missing_server_info_falls_back_and_missing_fields_are_errors() {
        let bare = r#"{"resultType":"complete","supportedVersions":["2026-07-28"],"capabilities":{},"ttlMs":0,"cacheScope":"public"}"#;
        let found = parse_discover_result(bare).unwrap();
        let r: Value =
            serde_json::from_str(&initialize_result(&found, "2024-11-05", FALLBACK)).unwrap();
        assert_eq!(
            r,
            json!({"protocolVersion":"2024-11-05","capabilities":{},"serverInfo":{"name":"mcp-bridge","version":"0.1.0"}})
        );
        assert!(matches!(
            parse_discover_result(r#"{"capabilities":{}}"#),
            Err(ConvertError::Missing("supportedVersions"))
        ));
    }

    #[test]
    fn discover_result_from_initialize() {
        // A 2025-11-25 server's InitializeResult (server-everything shape).
        let init = r#"{"protocolVersion":"2025-11-25","capabilities":{"prompts":{},"resources":{"subscribe":true},"tools":{}},"serverInfo":{"name":"example-servers/everything","version":"1.0.0"},"instructions":"Testing server."}"#;
        let out = discover_result(init, &["2026-07-28"], CacheHint::default()).unwrap();
        assert_eq!(
            out,
            r#"{"resultType":"complete","supportedVersions":["2026-07-28"],"capabilities":{"prompts":{},"resources":{"subscribe":true},"tools":{}},"instructions":"Testing server.","ttlMs":0,"cacheScope":"private","_meta":{"io.modelcontextprotocol/serverInfo":{"name":"example-servers/everything","version":"1.0.0"}}}"#
        );
        // Existing `_meta` keys stay; server info joins them.
        let with_meta = r#"{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"s","version":"1"},"_meta":{"x.y/z":1}}"#;
        let hint = CacheHint {
            ttl_ms: 60000,
            scope: CacheScope::Public,
        };
        let v: Value =
            serde_json::from_str(&discover_result(with_meta, &["2026-07-28"], hint).unwrap())
                .unwrap();
        assert_eq!(
            v["_meta"],
            json!({"x.y/z":1,"io.modelcontextprotocol/serverInfo":{"name":"s","version":"1"}})
        );
        assert_eq!(
            (v["ttlMs"].clone(), v["cacheScope"].clone()),
            (json!(60000), json!("public"))
        );
        assert!(v.get("instructions").is_none());
        assert!(matches!(
            discover_result(r#"{"capabilities":{}}"#, &[], hint),
            Err(ConvertError::Missing("serverInfo"))
        ));
    }

    #[test]
    fn envelope_from_an_old_clients_initialize_and_back() {
        let params = r#"{"protocolVersion":"2025-06-18","capabilities":{"roots":{"listChanged":true},"sampling":{}},"clientInfo":{"name":"inspector","version":"0.9"}}"#;
        let env = envelope_from_initialize(params, "2026-07-28").unwrap();
        assert_eq!(
            env.client_capabilities,
            r#"{"roots":{"listChanged":true},"sampling":{}}"#
        );
        assert_eq!(
            env.client_info.as_deref(),
            Some(r#"{"name":"inspector","version":"0.9"}"#)
        );
        let req = discover_request("\"mcp-bridge-1\"", &env);
        assert_eq!(
            req,
            r#"{"jsonrpc":"2.0","id":"mcp-bridge-1","method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"roots":{"listChanged":true},"sampling":{}},"io.modelcontextprotocol/clientInfo":{"name":"inspector","version":"0.9"}}}}"#
        );
        let init = initialize_request("1", &env, "2025-11-25", FALLBACK);
        assert_eq!(
            init,
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"roots":{"listChanged":true},"sampling":{}},"clientInfo":{"name":"inspector","version":"0.9"}}}"#
        );
        let bare =
            envelope_from_initialize(r#"{"protocolVersion":"2024-11-05"}"#, "2026-07-28").unwrap();
        assert_eq!(bare.client_capabilities, "{}");
        assert!(initialize_request("2", &bare, "2025-11-25", FALLBACK).contains(FALLBACK));
    }

    #[test]
    fn set_level_becomes_a_log_level() {
        assert_eq!(
            log_level_from_set_level(r#"{"level":"warning"}"#).as_deref(),
            Some("warning")
        );
        assert_eq!(log_level_from_set_level("{}"), None);
    }
}
