//! [`McpClient`]: what a test does with a client of either generation (initialize, call,
//! notify, answer, close), so one scenario drives the legacy and the Streamable client alike.

use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use serde_json::Value;

use super::legacy::LegacyClient;
use super::streamable::StreamableClient;
use super::Exchange;
use crate::error::Result;
use crate::server::Transport;

/// One MCP client session. Futures are boxed (and local: awc is single-threaded) so that a
/// test can hold `Box<dyn McpClient>` and pick the generation at run time.
pub trait McpClient {
    /// The transport this client speaks.
    fn transport(&self) -> Transport;
    /// `initialize` then `notifications/initialized`; returns the `InitializeResult`.
    fn initialize<'a>(&'a self, protocol_version: &'a str) -> LocalBoxFuture<'a, Result<Value>>;
    /// One whole call: everything that arrived up to and including its response.
    fn request<'a>(
        &'a self,
        method: &'a str,
        params: Value,
    ) -> LocalBoxFuture<'a, Result<Exchange>>;
    /// Sends a notification; returns the HTTP status.
    fn notify<'a>(&'a self, method: &'a str, params: Value) -> LocalBoxFuture<'a, Result<u16>>;
    /// Answers a server→client request; returns the HTTP status.
    fn respond<'a>(&'a self, id: &'a Value, result: Value) -> LocalBoxFuture<'a, Result<u16>>;
    /// Whether server→client requests are answered automatically during `request`.
    fn set_auto_answer(&self, on: bool);
    /// Deadline of one HTTP exchange or one `request`.
    fn set_timeout(&self, timeout: Duration);
    /// Ends the session as its transport does: a legacy client drops its SSE stream (`None`),
    /// a Streamable client sends `DELETE` (`Some(status)`).
    fn close(&self) -> LocalBoxFuture<'_, Result<Option<u16>>>;
}

/// A client of `transport` for `url` (a legacy client's SSE URL or a Streamable client's
/// MCP URL); the legacy client connects at once.
pub async fn connect(
    transport: Transport,
    url: &str,
    headers: &[(&str, &str)],
) -> Result<Box<dyn McpClient>> {
    Ok(match transport {
        Transport::Legacy => Box::new(LegacyClient::connect(url, headers).await?),
        Transport::Streamable => Box::new(StreamableClient::new(url, headers)),
    })
}

/// The trait methods both clients have under the same name and signature.
macro_rules! forward {
    ($client:ident) => {
        fn initialize<'a>(
            &'a self,
            protocol_version: &'a str,
        ) -> LocalBoxFuture<'a, Result<Value>> {
            Box::pin($client::initialize(self, protocol_version))
        }
        fn request<'a>(
            &'a self,
            method: &'a str,
            params: Value,
        ) -> LocalBoxFuture<'a, Result<Exchange>> {
            Box::pin($client::request(self, method, params))
        }
        fn notify<'a>(&'a self, method: &'a str, params: Value) -> LocalBoxFuture<'a, Result<u16>> {
            Box::pin($client::notify(self, method, params))
        }
        fn respond<'a>(&'a self, id: &'a Value, result: Value) -> LocalBoxFuture<'a, Result<u16>> {
            Box::pin($client::respond(self, id, result))
        }
        fn set_auto_answer(&self, on: bool) {
            $client::set_auto_answer(self, on)
        }
        fn set_timeout(&self, timeout: Duration) {
            $client::set_timeout(self, timeout)
        }
    };
}

impl McpClient for LegacyClient {
    forward!(LegacyClient);
    fn transport(&self) -> Transport {
        Transport::Legacy
    }
    fn close(&self) -> LocalBoxFuture<'_, Result<Option<u16>>> {
        LegacyClient::close(self);
        Box::pin(async { Ok(None) })
    }
}

impl McpClient for StreamableClient {
    forward!(StreamableClient);
    fn transport(&self) -> Transport {
        Transport::Streamable
    }
    fn close(&self) -> LocalBoxFuture<'_, Result<Option<u16>>> {
        Box::pin(async { Ok(Some(self.delete().await?)) })
    }
}
