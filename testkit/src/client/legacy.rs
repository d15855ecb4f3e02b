//! Raw legacy HTTP+SSE client.
//!
//! A background task reads the GET stream with the testkit's SSE parser. Responses to
//! `request()` calls in flight are routed to them by id, and progress notifications by their
//! `progressToken`; other messages seen while calls are in flight are attached to every such
//! call (in order); messages seen while none is in flight are queued for `next_message`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use awc::http::Uri;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, Notify};

use super::{
    apply_headers, auto_answer, classify, headers_of, http_client, initialize_params,
    notification_body, owned, read_body, request_body, Exchange, Inbound, RawResponse,
    DEFAULT_TIMEOUT,
};
use crate::error::{Error, Result};
use crate::sse::{SseItem, SseParser};

/// Connection options for [`LegacyClient::connect_with`].
#[derive(Debug, Clone)]
pub struct LegacyOptions {
    /// Deadline for the GET's headers and the `endpoint` event.
    pub endpoint_timeout: Duration,
    /// Keep every SSE item for [`LegacyClient::raw_events`] (turn off under load).
    pub record_raw_events: bool,
    /// Answer `sampling/createMessage`, `roots/list` and `ping` from the server.
    pub auto_answer: bool,
}

impl Default for LegacyOptions {
    fn default() -> Self {
        LegacyOptions {
            endpoint_timeout: DEFAULT_TIMEOUT,
            record_raw_events: true,
            auto_answer: true,
        }
    }
}

struct Pending {
    ex: Exchange,
    /// `params._meta.progressToken` of the call: its progress goes to it alone.
    progress_token: Option<Value>,
    done: oneshot::Sender<Exchange>,
}

/// State shared between the client and its reader task (same thread: `Rc<RefCell>`, never
/// borrowed across an await).
struct Reader {
    http: awc::Client,
    headers: Vec<(String, String)>,
    sse_url: String,
    record: bool,
    auto_answer: Cell<bool>,
    items: RefCell<Vec<SseItem>>,
    endpoint: RefCell<Option<String>>,
    endpoint_error: RefCell<Option<String>>,
    pending: RefCell<HashMap<String, Pending>>,
    queue: mpsc::UnboundedSender<String>,
    closed: Cell<bool>,
    error: RefCell<Option<String>>,
    changed: Notify,
}

/// A legacy HTTP+SSE session: one GET stream plus POSTs to the announced endpoint.
pub struct LegacyClient {
    reader: Rc<Reader>,
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<String>>,
    task: tokio::task::JoinHandle<()>,
    next_id: Cell<u64>,
    timeout: Cell<Duration>,
}

impl LegacyClient {
    /// GETs `sse_url` and waits (10 s) for the `endpoint` event.
    pub async fn connect(sse_url: &str, headers: &[(&str, &str)]) -> Result<LegacyClient> {
        Self::connect_with(sse_url, headers, LegacyOptions::default()).await
    }

    pub async fn connect_with(
        sse_url: &str,
        headers: &[(&str, &str)],
        opts: LegacyOptions,
    ) -> Result<LegacyClient> {
        let http = http_client();
        let headers = owned(headers);
        let get = apply_headers(
            http.get(sse_url),
            std::iter::once(("accept".to_string(), "text/event-stream".to_string()))
                .chain(headers.iter().cloned()),
        );
        let deadline = tokio::time::Instant::now() + opts.endpoint_timeout;
        let mut resp = tokio::time::timeout_at(deadline, get.send())
            .await
            .map_err(|_| Error::Timeout("SSE response headers"))?
            .map_err(|e| Error::Http(e.to_string()))?;
        let status = resp.status().as_u16();
        if status != 200 {
            let body = read_body(&mut resp, opts.endpoint_timeout)
                .await
                .unwrap_or_default();
            return Err(Error::Status { status, body });
        }
        let ct = headers_of(resp.headers())
            .remove("content-type")
            .unwrap_or_default();
        if !ct.starts_with("text/event-stream") {
            return Err(Error::Protocol(format!(
                "GET answered with content type {ct:?}"
            )));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let reader = Rc::new(Reader {
            http,
            headers,
            sse_url: sse_url.to_string(),
            record: opts.record_raw_events,
            auto_answer: Cell::new(opts.auto_answer),
            items: RefCell::new(Vec::new()),
            endpoint: RefCell::new(None),
            endpoint_error: RefCell::new(None),
            pending: RefCell::new(HashMap::new()),
            queue: tx,
            closed: Cell::new(false),
            error: RefCell::new(None),
            changed: Notify::new(),
        });
        let task = actix_rt::spawn(read_loop(resp, reader.clone()));
        let client = LegacyClient {
            reader,
            queue: tokio::sync::Mutex::new(rx),
            task,
            next_id: Cell::new(1),
            timeout: Cell::new(DEFAULT_TIMEOUT),
        };
        client.wait_endpoint(deadline).await?;
        Ok(client)
    }

    async fn wait_endpoint(&self, deadline: tokio::time::Instant) -> Result<()> {
        loop {
            let changed = self.reader.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.reader.endpoint.borrow().is_some() {
                return Ok(());
            }
            if let Some(e) = self.reader.endpoint_error.borrow().clone() {
                return Err(Error::Protocol(e));
            }
            if self.reader.closed.get() {
                return Err(Error::Closed("endpoint event"));
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Err(Error::Timeout("endpoint event"));
            }
        }
    }

    /// The resolved POST URL from the latest `endpoint` event.
    pub fn endpoint_url(&self) -> String {
        self.reader.endpoint.borrow().clone().unwrap_or_default()
    }

    /// Every SSE item received so far, in order (when `record_raw_events`).
    pub fn raw_events(&self) -> Vec<SseItem> {
        self.reader.items.borrow().clone()
    }

    /// The GET stream has ended.
    pub fn is_closed(&self) -> bool {
        self.reader.closed.get()
    }

    /// Why the GET stream ended abnormally, if it did.
    pub fn stream_error(&self) -> Option<String> {
        self.reader.error.borrow().clone()
    }

    /// Waits until the GET stream ends; returns whether it did before `timeout`.
    pub async fn wait_closed(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.reader.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.reader.closed.get() {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return self.reader.closed.get();
            }
        }
    }

    pub fn set_auto_answer(&self, on: bool) {
        self.reader.auto_answer.set(on);
    }

    /// Deadline for one POST and for one whole `request()` (default 10 s).
    pub fn set_timeout(&self, timeout: Duration) {
        self.timeout.set(timeout);
    }

    pub fn next_id(&self) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        id
    }

    /// POSTs `body` to the endpoint URL (JSON content type plus the client's headers).
    pub async fn post_raw(&self, body: &str) -> Result<RawResponse> {
        let url = self.endpoint_url();
        self.post_raw_to(&url, body, &[]).await
    }

    /// POSTs `body` to any URL (e.g. a tampered endpoint), with extra headers (empty value
    /// removes one).
    pub async fn post_raw_to(
        &self,
        url: &str,
        body: &str,
        extra_headers: &[(&str, &str)],
    ) -> Result<RawResponse> {
        let headers = std::iter::once(("content-type".to_string(), "application/json".to_string()))
            .chain(self.reader.headers.iter().cloned())
            .chain(owned(extra_headers));
        let req = apply_headers(self.reader.http.post(url), headers);
        post(req, body.to_string(), self.timeout.get()).await
    }

    /// The raw data of the next `message` event not consumed by a `request()`, in order.
    pub async fn next_message(&self, timeout: Duration) -> Option<String> {
        let mut queue = self.queue.lock().await;
        tokio::time::timeout(timeout, queue.recv())
            .await
            .ok()
            .flatten()
    }

    /// One call: POSTs a request with a fresh integer id (expects 202) and waits for the
    /// response on the stream, collecting what arrived before it.
    pub async fn request(&self, method: &str, params: Value) -> Result<Exchange> {
        if self.is_closed() {
            return Err(Error::Closed("request (stream already closed)"));
        }
        let id = self.next_id();
        let key = id.to_string();
        let (done, rx) = oneshot::channel();
        let pending = Pending {
            ex: Exchange::default(),
            progress_token: params.pointer("/_meta/progressToken").cloned(),
            done,
        };
        self.reader
            .pending
            .borrow_mut()
            .insert(key.clone(), pending);
        let forget = || self.reader.pending.borrow_mut().remove(&key);
        match self.post_raw(&request_body(id, method, &params)).await {
            Ok(r) if (200..300).contains(&r.status) => {}
            Ok(r) => {
                forget();
                return Err(Error::Status {
                    status: r.status,
                    body: r.body,
                });
            }
            Err(e) => {
                forget();
                return Err(e);
            }
        }
        match tokio::time::timeout(self.timeout.get(), rx).await {
            Ok(Ok(ex)) => Ok(ex),
            Ok(Err(_)) => Err(Error::Closed("response")),
            Err(_) => {
                forget();
                Err(Error::Timeout("response"))
            }
        }
    }

    /// POSTs a notification; returns the status (202 expected).
    pub async fn notify(&self, method: &str, params: Value) -> Result<u16> {
        Ok(self
            .post_raw(&notification_body(method, &params))
            .await?
            .status)
    }

    /// POSTs a response to a server→client request (`id` exactly as the server sent it).
    pub async fn respond(&self, id: &Value, result: Value) -> Result<u16> {
        let body = serde_json::json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string();
        Ok(self.post_raw(&body).await?.status)
    }

    /// `initialize` then `notifications/initialized`; returns the `InitializeResult`.
    pub async fn initialize(&self, protocol_version: &str) -> Result<Value> {
        let ex = self
            .request("initialize", initialize_params(protocol_version))
            .await?;
        let result = ex
            .result()
            .cloned()
            .ok_or_else(|| Error::Protocol(format!("initialize failed: {}", ex.response)))?;
        let status = self
            .notify("notifications/initialized", Value::Null)
            .await?;
        if !(200..300).contains(&status) {
            return Err(Error::Status {
                status,
                body: "notifications/initialized not accepted".into(),
            });
        }
        Ok(result)
    }

    /// Drops the GET stream (the server ends the session).
    pub fn close(&self) {
        self.task.abort();
    }
}

impl Drop for LegacyClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn post(req: awc::ClientRequest, body: String, timeout: Duration) -> Result<RawResponse> {
    let mut resp = tokio::time::timeout(timeout, req.send_body(body))
        .await
        .map_err(|_| Error::Timeout("POST response"))?
        .map_err(|e| Error::Http(e.to_string()))?;
    let body = read_body(&mut resp, timeout).await?;
    Ok(RawResponse {
        status: resp.status().as_u16(),
        headers: headers_of(resp.headers()),
        body,
    })
}

async fn read_loop(mut resp: awc::ClientResponse, reader: Rc<Reader>) {
    let mut parser = SseParser::new();
    let mut items = Vec::new();
    while let Some(chunk) = resp.next().await {
        match chunk {
            Ok(chunk) => parser.push(&chunk, &mut items),
            Err(e) => {
                *reader.error.borrow_mut() = Some(e.to_string());
                break;
            }
        }
        for item in items.drain(..) {
            reader.on_item(item);
        }
        reader.changed.notify_waiters();
    }
    reader.closed.set(true);
    // Calls still waiting fail with `Closed` when their senders drop.
    reader.pending.borrow_mut().clear();
    reader.changed.notify_waiters();
}

impl Reader {
    fn on_item(self: &Rc<Self>, item: SseItem) {
        if self.record {
            self.items.borrow_mut().push(item.clone());
        }
        let SseItem::Event(event) = item else {
            return;
        };
        match event.event_type() {
            // A repeated endpoint replaces the previous one.
            "endpoint" => match resolve_endpoint(&self.sse_url, &event.data) {
                Ok(url) => *self.endpoint.borrow_mut() = Some(url),
                Err(e) => *self.endpoint_error.borrow_mut() = Some(e),
            },
            "message" => self.on_message(event.data),
            _ => {}
        }
    }

    fn on_message(self: &Rc<Self>, data: String) {
        let Ok(msg) = serde_json::from_str::<Value>(&data) else {
            let _ = self.queue.send(data);
            return;
        };
        let kind = classify(&msg);
        if let Inbound::Response = kind {
            let key = msg.get("id").map(Value::to_string).unwrap_or_default();
            if let Some(mut p) = self.pending.borrow_mut().remove(&key) {
                p.ex.response = msg;
                let _ = p.done.send(p.ex);
                return;
            }
        }
        if let Inbound::Request = kind {
            if self.auto_answer.get() {
                self.answer(auto_answer(&msg));
            }
        }
        let mut pending = self.pending.borrow_mut();
        let token = match msg.get("method").and_then(Value::as_str) {
            Some("notifications/progress") => msg.pointer("/params/progressToken"),
            _ => None,
        };
        if let Some(owner) = token.and_then(|t| {
            pending
                .values_mut()
                .find(|p| p.progress_token.as_ref() == Some(t))
        }) {
            owner.ex.observe(msg);
        } else if pending.is_empty() {
            let _ = self.queue.send(data);
        } else {
            for p in pending.values_mut() {
                p.ex.observe(msg.clone());
            }
        }
    }

    /// Posts an answer without stalling the reader.
    fn answer(self: &Rc<Self>, body: String) {
        let Some(url) = self.endpoint.borrow().clone() else {
            return;
        };
        let headers = std::iter::once(("content-type".to_string(), "application/json".to_string()))
            .chain(self.headers.iter().cloned());
        let req = apply_headers(self.http.post(&url), headers);
        actix_rt::spawn(async move {
            let _ = post(req, body, DEFAULT_TIMEOUT).await;
        });
    }
}

/// Resolves the `endpoint` data against the SSE URL; it must stay on the same origin (as both
/// SDK clients require).
pub(crate) fn resolve_endpoint(sse_url: &str, data: &str) -> std::result::Result<String, String> {
    let base: Uri = sse_url.parse().map_err(|e| format!("bad SSE URL: {e}"))?;
    let scheme = base.scheme_str().unwrap_or("http");
    let authority = base.authority().map(|a| a.as_str()).unwrap_or_default();
    let origin = format!("{scheme}://{authority}");
    let data = data.trim();
    let resolved = if data.contains("://") {
        data.to_string()
    } else if let Some(rest) = data.strip_prefix("//") {
        format!("{scheme}://{rest}")
    } else if data.starts_with('/') {
        format!("{origin}{data}")
    } else {
        let path = base.path();
        if data.starts_with('?') {
            format!("{origin}{path}{data}")
        } else {
            let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
            let dir = if dir.is_empty() { "/" } else { dir };
            format!("{origin}{dir}{data}")
        }
    };
    let uri: Uri = resolved
        .parse()
        .map_err(|e| format!("bad endpoint {data:?}: {e}"))?;
    let same_origin = uri
        .scheme_str()
        .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
        && uri
            .authority()
            .is_some_and(|a| a.as_str().eq_ignore_ascii_case(authority));
    if same_origin {
        Ok(resolved)
    } else {
        Err(format!(
            "endpoint {data:?} is not on the origin of {sse_url}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::resolve_endpoint;

    #[test]
    fn endpoint_resolution() {
        let base = "http://127.0.0.1:9/prefix/sse";
        assert_eq!(
            resolve_endpoint(base, "/messages?sessionId=a").unwrap(),
            "http://127.0.0.1:9/messages?sessionId=a"
        );
        assert_eq!(
            resolve_endpoint(base, "messages/?session_id=b").unwrap(),
            "http://127.0.0.1:9/prefix/messages/?session_id=b"
        );
        assert_eq!(
            resolve_endpoint(base, "http://127.0.0.1:9/m?x=1").unwrap(),
            "http://127.0.0.1:9/m?x=1"
        );
        assert_eq!(
            resolve_endpoint(base, "//127.0.0.1:9/m").unwrap(),
            "http://127.0.0.1:9/m"
        );
        assert!(resolve_endpoint(base, "http://evil.example/m").is_err());
        assert!(resolve_endpoint(base, "https://127.0.0.1:9/m").is_err());
        assert!(resolve_endpoint(base, "//127.0.0.1:10/m").is_err());
    }
}
