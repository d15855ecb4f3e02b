//! Raw Streamable HTTP client.
//!
//! `post_raw` / `open_get` / `delete` show exactly what the server answered. The session id
//! (captured from any response carrying `mcp-session-id`, as the TS client does) and the
//! negotiated `mcp-protocol-version` (set by `initialize()`) are sent automatically.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use serde_json::Value;

use super::stream::SseStream;
use super::{
    apply_headers, auto_answer, classify, headers_of, http_client, initialize_params,
    notification_body, owned, read_body, request_body, Exchange, Headers, Inbound, DEFAULT_TIMEOUT,
};
use crate::error::{Error, Result};

/// How many times `request()` resumes a dropped stream with `Last-Event-ID` (SDKs: 2).
const MAX_RESUMPTIONS: usize = 5;

/// What a POST or GET got back.
#[derive(Debug)]
pub struct StreamableResponse {
    pub status: u16,
    pub headers: Headers,
    pub kind: ResponseKind,
}

/// The body of a [`StreamableResponse`], by content type.
// Not boxed: a response is moved once or twice, and tests match on `Sse(stream)` directly.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum ResponseKind {
    /// `application/json`: the whole body.
    Json(String),
    /// `text/event-stream`: the open stream, read at the test's pace.
    Sse(SseStream),
    /// Any other non-empty body (e.g. a plain-text error).
    Text(String),
    /// No body (e.g. 202).
    Empty,
}

impl StreamableResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The JSON body, parsed (None for other kinds).
    pub fn json(&self) -> Option<Value> {
        match &self.kind {
            ResponseKind::Json(s) => serde_json::from_str(s).ok(),
            _ => None,
        }
    }

    pub fn into_sse(self) -> Option<SseStream> {
        match self.kind {
            ResponseKind::Sse(s) => Some(s),
            _ => None,
        }
    }

    /// The body as text (JSON or text kinds; empty otherwise).
    pub fn text(&self) -> &str {
        match &self.kind {
            ResponseKind::Json(s) | ResponseKind::Text(s) => s,
            _ => "",
        }
    }
}

/// A Streamable HTTP client bound to one MCP endpoint URL (and at most one session).
pub struct StreamableClient {
    http: awc::Client,
    url: String,
    headers: Vec<(String, String)>,
    session_id: RefCell<Option<String>>,
    protocol_version: RefCell<Option<String>>,
    next_id: Cell<u64>,
    auto_answer: Cell<bool>,
    timeout: Cell<Duration>,
}

impl StreamableClient {
    /// A client for `mcp_url`; `headers` go on every request (e.g. `authorization`).
    pub fn new(mcp_url: &str, headers: &[(&str, &str)]) -> Self {
        StreamableClient {
            http: http_client(),
            url: mcp_url.to_string(),
            headers: owned(headers),
            session_id: RefCell::new(None),
            protocol_version: RefCell::new(None),
            next_id: Cell::new(1),
            auto_answer: Cell::new(true),
            timeout: Cell::new(DEFAULT_TIMEOUT),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn session_id(&self) -> Option<String> {
        self.session_id.borrow().clone()
    }

    /// Overrides the session id sent (None: send none).
    pub fn set_session_id(&self, id: Option<&str>) {
        *self.session_id.borrow_mut() = id.map(str::to_string);
    }

    pub fn protocol_version(&self) -> Option<String> {
        self.protocol_version.borrow().clone()
    }

    /// Overrides the `mcp-protocol-version` sent (None: send none).
    pub fn set_protocol_version(&self, v: Option<&str>) {
        *self.protocol_version.borrow_mut() = v.map(str::to_string);
    }

    /// Answer `sampling/createMessage`, `roots/list` and `ping` during `request()` (default on).
    pub fn set_auto_answer(&self, on: bool) {
        self.auto_answer.set(on);
    }

    /// Deadline for one HTTP exchange and for one whole `request()` (default 10 s).
    pub fn set_timeout(&self, timeout: Duration) {
        self.timeout.set(timeout);
    }

    /// A fresh integer JSON-RPC id.
    pub fn next_id(&self) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        id
    }

    fn session_headers(&self) -> Vec<(String, String)> {
        let mut h = Vec::with_capacity(2);
        if let Some(id) = self.session_id.borrow().as_ref() {
            h.push(("mcp-session-id".to_string(), id.clone()));
        }
        if let Some(v) = self.protocol_version.borrow().as_ref() {
            h.push(("mcp-protocol-version".to_string(), v.clone()));
        }
        h
    }

    /// POSTs `body` with the Streamable headers (both Accept types, JSON content type, session
    /// and version when known, the client's headers), then `extra_headers` (an empty value
    /// removes a header). SSE bodies are returned unread.
    pub async fn post_raw(
        &self,
        body: &str,
        extra_headers: &[(&str, &str)],
    ) -> Result<StreamableResponse> {
        let defaults = [
            ("accept", "application/json, text/event-stream"),
            ("content-type", "application/json"),
        ];
        let headers = owned(&defaults)
            .into_iter()
            .chain(self.session_headers())
            .chain(self.headers.iter().cloned())
            .chain(owned(extra_headers));
        let req = apply_headers(self.http.post(&self.url), headers);
        self.send(req, Some(body.to_string())).await
    }

    /// Opens a GET stream (the standalone stream, or a resumption with `Last-Event-ID`).
    pub async fn open_get(&self, last_event_id: Option<&str>) -> Result<StreamableResponse> {
        let mut headers = vec![("accept".to_string(), "text/event-stream".to_string())];
        headers.extend(self.session_headers());
        headers.extend(self.headers.iter().cloned());
        if let Some(id) = last_event_id {
            headers.push(("last-event-id".to_string(), id.to_string()));
        }
        let req = apply_headers(self.http.get(&self.url), headers);
        self.send(req, None).await
    }

    /// DELETEs the session; returns the status.
    pub async fn delete(&self) -> Result<u16> {
        let headers = self
            .session_headers()
            .into_iter()
            .chain(self.headers.iter().cloned());
        let req = apply_headers(self.http.delete(&self.url), headers);
        Ok(self.send(req, None).await?.status)
    }

    async fn send(
        &self,
        req: awc::ClientRequest,
        body: Option<String>,
    ) -> Result<StreamableResponse> {
        let timeout = self.timeout.get();
        let sent = match body {
            Some(b) => tokio::time::timeout(timeout, req.send_body(b)).await,
            None => tokio::time::timeout(timeout, req.send()).await,
        };
        let mut resp = sent
            .map_err(|_| Error::Timeout("response headers"))?
            .map_err(|e| Error::Http(e.to_string()))?;
        let status = resp.status().as_u16();
        let headers = headers_of(resp.headers());
        if let Some(id) = headers.get("mcp-session-id") {
            *self.session_id.borrow_mut() = Some(id.clone());
        }
        let content_type = headers
            .get("content-type")
            .map(|c| {
                c.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        let kind = if content_type == "text/event-stream" {
            ResponseKind::Sse(SseStream::new(resp))
        } else {
            let text = read_body(&mut resp, timeout).await?;
            match (text.is_empty(), content_type == "application/json") {
                (true, _) => ResponseKind::Empty,
                (false, true) => ResponseKind::Json(text),
                (false, false) => ResponseKind::Text(text),
            }
        };
        Ok(StreamableResponse {
            status,
            headers,
            kind,
        })
    }

    /// `initialize` (without any session id, as the spec requires), then
    /// `notifications/initialized`. Stores the session id and negotiated version; returns the
    /// `InitializeResult`.
    pub async fn initialize(&self, protocol_version: &str) -> Result<Value> {
        self.set_session_id(None);
        self.set_protocol_version(None);
        let ex = self
            .request("initialize", initialize_params(protocol_version))
            .await?;
        let result = ex
            .result()
            .cloned()
            .ok_or_else(|| Error::Protocol(format!("initialize failed: {}", ex.response)))?;
        let negotiated = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::Protocol("InitializeResult without protocolVersion".into()))?;
        self.set_protocol_version(Some(negotiated));
        let status = self
            .notify("notifications/initialized", Value::Null)
            .await?;
        if status != 202 {
            return Err(Error::Status {
                status,
                body: "notifications/initialized not accepted".into(),
            });
        }
        Ok(result)
    }

    /// POSTs a notification; returns the status (202 expected).
    pub async fn notify(&self, method: &str, params: Value) -> Result<u16> {
        let resp = self
            .post_raw(&notification_body(method, &params), &[])
            .await?;
        Ok(resp.status)
    }

    /// POSTs a response to a server→client request (`id` exactly as the server sent it).
    pub async fn respond(&self, id: &Value, result: Value) -> Result<u16> {
        let body = serde_json::json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string();
        Ok(self.post_raw(&body, &[]).await?.status)
    }

    /// One call: POSTs a request with a fresh id and reads its JSON body or SSE stream up to the
    /// response. Server→client requests on the stream are answered (auto-answer); a stream that
    /// ends early after an event id is resumed with `GET` + `Last-Event-ID`.
    pub async fn request(&self, method: &str, params: Value) -> Result<Exchange> {
        let id = self.next_id();
        let resp = self
            .post_raw(&request_body(id, method, &params), &[])
            .await?;
        self.read_exchange(Value::from(id), resp).await
    }

    /// Reads the answer to request `id` from a response `post_raw` returned.
    pub async fn read_exchange(&self, id: Value, resp: StreamableResponse) -> Result<Exchange> {
        let deadline = tokio::time::Instant::now() + self.timeout.get();
        let status = resp.status;
        if status != 200 {
            // An HTTP-level refusal (404 unknown session, 400, 406...) is an error, even when
            // its body is a JSON-RPC error.
            return Err(Error::Status {
                status,
                body: resp.text().to_string(),
            });
        }
        match resp.kind {
            ResponseKind::Json(text) => {
                let v: Value = serde_json::from_str(&text)
                    .map_err(|e| Error::Protocol(format!("bad JSON body: {e}")))?;
                let found = match v {
                    Value::Array(items) => items.into_iter().find(|m| m.get("id") == Some(&id)),
                    one => Some(one).filter(|m| m.get("id") == Some(&id)),
                };
                let response = found.ok_or(Error::Protocol("no response with our id".into()))?;
                Ok(Exchange {
                    response,
                    ..Exchange::default()
                })
            }
            ResponseKind::Sse(stream) => self.read_stream(id, stream, deadline).await,
            ResponseKind::Text(body) => Err(Error::Status { status, body }),
            ResponseKind::Empty => Err(Error::Status {
                status,
                body: String::new(),
            }),
        }
    }

    async fn read_stream(
        &self,
        id: Value,
        mut stream: SseStream,
        deadline: tokio::time::Instant,
    ) -> Result<Exchange> {
        let mut ex = Exchange::default();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if let Some(event) = stream.next_event(left).await {
                let msg: Value = serde_json::from_str(&event.data)
                    .map_err(|e| Error::Protocol(format!("bad JSON in SSE data: {e}")))?;
                match classify(&msg) {
                    Inbound::Response if msg.get("id") == Some(&id) => {
                        ex.response = msg;
                        // The server closes the stream now; read its end so the connection
                        // goes back to the pool.
                        stream.finish_in_background(Duration::from_secs(1));
                        return Ok(ex);
                    }
                    Inbound::Request if self.auto_answer.get() => {
                        let answer = auto_answer(&msg);
                        ex.observe(msg);
                        self.post_raw(&answer, &[]).await?;
                    }
                    _ => ex.observe(msg),
                }
                continue;
            }
            if !stream.is_closed() {
                return Err(Error::Timeout("response"));
            }
            // Ended without our response: resume if the server gave us a cursor.
            let Some(last) = stream.last_event_id().map(str::to_string) else {
                return Err(Error::Closed("response"));
            };
            if ex.resumptions >= MAX_RESUMPTIONS {
                return Err(Error::Closed("response (resumptions exhausted)"));
            }
            if let Some(ms) = stream.retry() {
                tokio::time::sleep(Duration::from_millis(ms.min(5_000))).await;
            }
            ex.resumptions += 1;
            let resp = self.open_get(Some(&last)).await?;
            let status = resp.status;
            stream = match resp.kind {
                ResponseKind::Sse(s) if status == 200 => s,
                other => {
                    let body = match other {
                        ResponseKind::Json(s) | ResponseKind::Text(s) => s,
                        _ => String::new(),
                    };
                    return Err(Error::Status { status, body });
                }
            };
        }
    }
}
