//! `mcp-testkit`: fake MCP servers and raw clients for testing `mcp-bridge`.
//!
//! - [`FakeServer`] speaks either transport (legacy HTTP+SSE or Streamable HTTP; the latter
//!   also in its sessionless 2026-07-28 revision, [`ServerOptions::modern`]) on its own
//!   thread, behaves like the official SDK servers on the wire, records every request and lets a
//!   test misbehave on purpose (expire sessions, kill streams, drop a POST stream mid-call).
//! - [`LegacyClient`] and [`StreamableClient`] are raw awc clients that show exactly what came
//!   back (statuses, headers, SSE events) and also drive whole exchanges (`request`).
//! - [`McpClient`] is what either client does, so one scenario drives both ([`connect`]).
//! - [`proc`] runs child processes (output collected, killed on drop) and [`pki`] makes a
//!   test CA and server certificate, for the process-level tests and the benchmark.
//! - [`redis_server`] and [`haproxy`] run the real Redis and load balancer the replica tests
//!   need (pinned Debian packages, `tests/infra/install.sh`).
//! - [`sse`] is the testkit's own SSE codec. Nothing here depends on the bridge: the testkit is
//!   an independent check of it.
//!
//! ```no_run
//! use mcp_testkit::{FakeServer, ServerOptions, StreamableClient};
//! use serde_json::json;
//!
//! # async fn demo() -> mcp_testkit::Result<()> {
//! // An upstream that drops each POST stream after 2 events and supports resumption.
//! let server = FakeServer::start(
//!     ServerOptions::streamable().event_ids(true).priming(true).drop_post_stream_after(Some(2)),
//! );
//! let client = StreamableClient::new(&server.url(), &[]);
//! client.initialize("2025-11-25").await?;
//! let params = json!({"name": "progress", "arguments": {"steps": 3},
//!                     "_meta": {"progressToken": "t"}});
//! let ex = client.request("tools/call", params).await?;
//! assert_eq!(ex.notifications.len(), 6);
//! assert_eq!(ex.resumptions, 1);
//! assert_eq!(ex.text(), Some("done 3 steps"));
//! # Ok(()) }
//! ```

pub mod client;
mod error;
pub mod haproxy;
pub mod infra;
mod mcp;
pub mod pki;
pub mod proc;
pub mod redis_server;
pub mod server;
pub mod sse;
pub mod summary;

pub use client::any::{connect, McpClient};
pub use client::legacy::{LegacyClient, LegacyOptions};
pub use client::stream::SseStream;
pub use client::streamable::{ResponseKind, StreamableClient, StreamableResponse};
pub use client::{Exchange, Headers, RawResponse, ROOTS_REPLY, SAMPLING_REPLY_TEXT};
pub use error::{Error, Result};
pub use mcp::{LATEST_VERSION, SUPPORTED_VERSIONS};
pub use server::{EndpointStyle, Era, FakeServer, RecordedRequest, ServerOptions, Transport};
pub use sse::{SseEvent, SseItem, SseParser};
