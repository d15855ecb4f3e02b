//! Lean MCP clients for load: one shared awc client (connection pool) per thread, borrowed
//! JSON parsing, nothing recorded but what a benchmark checks. SSE is decoded with the test
//! kit's independent parser (`mcp_testkit::sse`).
//!
//! Why not the test kit's `LegacyClient`/`StreamableClient`: each of those owns its own awc
//! pool, so every idle session would keep a spare keep-alive connection open — with 10,000
//! idle sessions that is 10,000 extra sockets in the bridge, past this machine's 20,000
//! file-descriptor limit. Here all sessions of a thread share one pool.

use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use awc::http::StatusCode;
use futures_util::StreamExt;
use mcp_testkit::sse::{SseItem, SseParser};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::oneshot;

pub type Res<T> = Result<T, String>;

/// Which transport a client speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientKind {
    /// Legacy HTTP+SSE (2024-11-05): GET the SSE URL, POST to the announced endpoint.
    Legacy,
    /// Streamable HTTP (2025-06-18): POST/GET/DELETE on the MCP URL.
    Streamable,
    /// Streamable HTTP of 2026-07-28: sessionless POSTs, each request stamped with `_meta`
    /// and the era's headers (a raw modern client; only as a direct baseline).
    Modern,
}

impl ClientKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientKind::Legacy => "legacy",
            ClientKind::Streamable => "streamable",
            ClientKind::Modern => "modern",
        }
    }
    /// The path this transport's endpoint has on the bridge.
    pub fn bridge_path(self) -> &'static str {
        match self {
            ClientKind::Legacy => "/sse",
            ClientKind::Streamable | ClientKind::Modern => "/mcp",
        }
    }
}

const BODY_LIMIT: usize = 64 << 20;

/// One awc client per thread: no client-side timeouts (deadlines are explicit), no pool limit.
pub fn http_client() -> awc::Client {
    awc::Client::builder()
        .disable_timeout()
        .disable_redirects()
        .connector(awc::Connector::new().limit(0))
        .finish()
}

/// The envelope of a JSON-RPC message, borrowed from the event data.
#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ProgressParams<'a> {
    #[serde(rename = "progressToken", borrow, default)]
    token: Option<&'a RawValue>,
    #[serde(default)]
    progress: Option<f64>,
}

#[derive(Deserialize)]
struct LogParams {
    #[serde(default)]
    data: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ToolResult {
    #[serde(rename = "isError", default)]
    is_error: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoteKind {
    /// `notifications/message` (the fake server's log line per step).
    Log,
    /// `notifications/progress` carrying this call's token.
    Progress,
    /// Anything else, or progress for another token, or a server→client request.
    Unexpected,
}

/// One notification as the benchmark sees it: its kind and its step number (`step N` in a
/// log line, `progress` in a progress notification), for the order check.
#[derive(Clone, Copy, Debug)]
pub struct Note {
    pub kind: NoteKind,
    pub step: Option<u64>,
}

fn note_of(method: &str, params: Option<&RawValue>, token: Option<&str>) -> Note {
    let unexpected = Note {
        kind: NoteKind::Unexpected,
        step: None,
    };
    match method {
        "notifications/progress" => {
            let Some(p) = params.and_then(|p| serde_json::from_str::<ProgressParams>(p.get()).ok())
            else {
                return unexpected;
            };
            if p.token.map(RawValue::get) != token {
                return unexpected;
            }
            Note {
                kind: NoteKind::Progress,
                step: p.progress.filter(|v| *v >= 0.0).map(|v| v as u64),
            }
        }
        "notifications/message" => {
            let step = params
                .and_then(|p| serde_json::from_str::<LogParams>(p.get()).ok())
                .and_then(|l| l.data?.as_str()?.strip_prefix("step ")?.parse::<u64>().ok());
            Note {
                kind: NoteKind::Log,
                step,
            }
        }
        _ => unexpected,
    }
}

/// What one call got: when its response arrived, the notifications before it, in order, and
/// the size of its result.
#[derive(Debug)]
pub struct Outcome {
    pub done_at: Instant,
    pub notes: Vec<Note>,
    pub result_bytes: usize,
}

/// Checks a response for our id; Ok(Some(result bytes)) when it is ours and successful.
fn check_response(w: &Wire<'_>, id: &str) -> Option<Res<usize>> {
    if w.method.is_some() || w.id.map(RawValue::get) != Some(id) {
        return None;
    }
    if let Some(e) = w.error {
        return Some(Err(format!("JSON-RPC error {}", truncate(e.get()))));
    }
    let Some(r) = w.result else {
        return Some(Err("response without result".into()));
    };
    match serde_json::from_str::<ToolResult>(r.get()) {
        Ok(t) if t.is_error => Some(Err(format!("tool error {}", truncate(r.get())))),
        _ => Some(Ok(r.get().len())),
    }
}

fn truncate(s: &str) -> String {
    let mut end = s.len().min(200);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

fn request_body(id: u64, method: &str, params: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#)
}

/// A 2026-07-28 request: `_meta` spliced into `params` (a JSON object without `_meta`), and
/// the `Mcp-Name` value of a `tools/call` (plain ASCII names only: the bench's tools).
fn modern_request(id: u64, method: &str, params: &str) -> Res<(String, Option<String>)> {
    #[derive(Deserialize)]
    struct Named<'a> {
        #[serde(borrow, default)]
        name: Option<Cow<'a, str>>,
    }
    let rest = params
        .trim_start()
        .strip_prefix('{')
        .ok_or("params must be an object")?;
    if params.contains("\"_meta\"") {
        return Err("the modern client stamps its own _meta (no progress tokens)".into());
    }
    let sep = if rest.trim_start().starts_with('}') {
        ""
    } else {
        ","
    };
    let stamped = format!(r#"{{"_meta":{MODERN_META}{sep}{rest}"#);
    let name = match method {
        "tools/call" | "prompts/get" => serde_json::from_str::<Named<'_>>(params)
            .map_err(|e| format!("params: {e}"))?
            .name
            .map(Cow::into_owned),
        _ => None,
    };
    Ok((request_body(id, method, &stamped), name))
}

pub fn initialize_params(version: &str) -> String {
    format!(
        r#"{{"protocolVersion":"{version}","capabilities":{{}},"clientInfo":{{"name":"mcp-bridge-loadgen","version":"0.1"}}}}"#
    )
}

/// `params` of a `tools/call` with `_meta.progressToken` spliced in (params is a JSON object).
pub fn with_token(params: &str, token: &str) -> String {
    let rest = params.trim_start().strip_prefix('{').unwrap_or("}");
    let sep = if rest.trim_start().starts_with('}') {
        ""
    } else {
        ","
    };
    format!(r#"{{"_meta":{{"progressToken":{token}}}{sep}{rest}"#)
}

// ------------------------------------------------------------------------------------------
// Streamable HTTP
// ------------------------------------------------------------------------------------------

pub struct Streamable {
    http: awc::Client,
    url: Rc<str>,
    session: Option<String>,
    version: Option<String>,
    next_id: u64,
    /// Speak 2026-07-28: stamp every request (see [`ClientKind::Modern`]).
    modern: bool,
}

/// The `_meta` a 2026-07-28 client puts on every request.
const MODERN_META: &str = r#"{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"mcp-bridge-loadgen","version":"0.1"}}"#;

impl Streamable {
    pub fn new(http: awc::Client, url: Rc<str>) -> Streamable {
        Streamable {
            http,
            url,
            session: None,
            version: None,
            next_id: 1,
            modern: false,
        }
    }

    /// A 2026-07-28 client: no session; `server/discover` instead of `initialize`.
    pub async fn modern(http: awc::Client, url: Rc<str>) -> Res<Streamable> {
        let mut c = Streamable {
            modern: true,
            version: Some("2026-07-28".into()),
            ..Streamable::new(http, url)
        };
        c.request("server/discover", "{}", None).await?;
        Ok(c)
    }

    fn with_session(&self, mut req: awc::ClientRequest) -> awc::ClientRequest {
        if let Some(s) = &self.session {
            req = req.insert_header(("mcp-session-id", s.as_str()));
        }
        if let Some(v) = &self.version {
            req = req.insert_header(("mcp-protocol-version", v.as_str()));
        }
        req
    }

    async fn post(&mut self, body: String) -> Res<awc::ClientResponse> {
        self.post_with(body, &[]).await
    }

    async fn post_with(
        &mut self,
        body: String,
        headers: &[(&str, &str)],
    ) -> Res<awc::ClientResponse> {
        let mut req = self
            .with_session(self.http.post(&*self.url))
            .insert_header(("accept", "application/json, text/event-stream"))
            .insert_header(("content-type", "application/json"));
        for h in headers {
            req = req.insert_header(*h);
        }
        let resp = req
            .send_body(body)
            .await
            .map_err(|e| format!("POST: {e}"))?;
        if let Some(id) = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
        {
            if self.session.as_deref() != Some(id) {
                self.session = Some(id.to_string());
            }
        }
        Ok(resp)
    }

    /// `initialize` + `notifications/initialized`.
    pub async fn initialize(&mut self, version: &str) -> Res<()> {
        self.session = None;
        self.version = None;
        self.request("initialize", &initialize_params(version), None)
            .await?;
        self.version = Some(version.to_string());
        let mut resp = self
            .post(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.into())
            .await?;
        let _ = resp.body().limit(BODY_LIMIT).await;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(format!(
                "notifications/initialized answered {}",
                resp.status()
            ));
        }
        Ok(())
    }

    /// One request; `token` is the progress token (JSON) its notifications must carry.
    pub async fn request(
        &mut self,
        method: &str,
        params: &str,
        token: Option<&str>,
    ) -> Res<Outcome> {
        let id = self.next_id;
        self.next_id += 1;
        let id_s = id.to_string();
        let mut resp = if self.modern {
            let (body, name) = modern_request(id, method, params)?;
            let mut headers = vec![("mcp-method", method)];
            if let Some(name) = name.as_deref() {
                headers.push(("mcp-name", name));
            }
            self.post_with(body, &headers).await?
        } else {
            self.post(request_body(id, method, params)).await?
        };
        let status = resp.status();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if status != StatusCode::OK {
            let body = resp.body().limit(BODY_LIMIT).await.unwrap_or_default();
            return Err(format!(
                "HTTP {status}: {}",
                truncate(&String::from_utf8_lossy(&body))
            ));
        }
        if ct.starts_with("application/json") {
            let body = resp
                .body()
                .limit(BODY_LIMIT)
                .await
                .map_err(|e| format!("body: {e}"))?;
            let done_at = Instant::now();
            let text = std::str::from_utf8(&body).map_err(|_| "body not UTF-8".to_string())?;
            let msgs: Vec<Wire<'_>> = if text.trim_start().starts_with('[') {
                serde_json::from_str(text).map_err(|e| format!("bad JSON: {e}"))?
            } else {
                vec![serde_json::from_str(text).map_err(|e| format!("bad JSON: {e}"))?]
            };
            for w in &msgs {
                if let Some(r) = check_response(w, &id_s) {
                    return r.map(|result_bytes| Outcome {
                        done_at,
                        notes: Vec::new(),
                        result_bytes,
                    });
                }
            }
            return Err("JSON body without our response".into());
        }
        if !ct.starts_with("text/event-stream") {
            return Err(format!("unexpected content type {ct:?}"));
        }
        let mut parser = SseParser::new();
        let mut items = Vec::new();
        let mut notes = Vec::new();
        while let Some(chunk) = resp.next().await {
            let chunk = chunk.map_err(|e| format!("SSE body: {e}"))?;
            parser.push(&chunk, &mut items);
            for item in items.drain(..) {
                let SseItem::Event(ev) = item else { continue };
                let w: Wire<'_> = serde_json::from_str(&ev.data)
                    .map_err(|e| format!("bad JSON in SSE event: {e}"))?;
                if let Some(r) = check_response(&w, &id_s) {
                    let done_at = Instant::now();
                    let result_bytes = r?;
                    // The server ends the stream now: read to its end so the connection goes
                    // back to the pool (not counted in the latency).
                    let drain = async { while let Some(Ok(_)) = resp.next().await {} };
                    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
                    return Ok(Outcome {
                        done_at,
                        notes,
                        result_bytes,
                    });
                }
                match (&w.method, w.id) {
                    (Some(m), None) => notes.push(note_of(m, w.params, token)),
                    _ => notes.push(Note {
                        kind: NoteKind::Unexpected,
                        step: None,
                    }),
                }
            }
        }
        Err("SSE stream ended before the response".into())
    }

    /// Opens the standalone GET stream and returns it unread (idle sessions that listen).
    pub async fn open_get(&self) -> Res<awc::ClientResponse> {
        let req = self
            .with_session(self.http.get(&*self.url))
            .insert_header(("accept", "text/event-stream"));
        let resp = req.send().await.map_err(|e| format!("GET: {e}"))?;
        if resp.status() != StatusCode::OK {
            return Err(format!("GET answered {}", resp.status()));
        }
        Ok(resp)
    }

    pub async fn delete(&self) -> Res<()> {
        if self.session.is_none() {
            return Ok(());
        }
        let mut resp = self
            .with_session(self.http.delete(&*self.url))
            .send()
            .await
            .map_err(|e| format!("DELETE: {e}"))?;
        let _ = resp.body().limit(BODY_LIMIT).await;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("DELETE answered {}", resp.status()))
        }
    }
}

// ------------------------------------------------------------------------------------------
// Legacy HTTP+SSE
// ------------------------------------------------------------------------------------------

struct Waiting {
    id: String,
    token: Option<String>,
    notes: Vec<Note>,
    done: oneshot::Sender<Res<Outcome>>,
}

#[derive(Default)]
struct LegacyState {
    endpoint: Option<oneshot::Sender<Res<String>>>,
    waiting: Option<Waiting>,
    closed: Option<String>,
    /// Messages that arrived while no call was in flight.
    stray: u64,
}

pub struct Legacy {
    http: awc::Client,
    endpoint: String,
    state: Rc<RefCell<LegacyState>>,
    reader: tokio::task::JoinHandle<()>,
    next_id: u64,
}

impl Drop for Legacy {
    fn drop(&mut self) {
        // Drops the GET response: the connection closes and the server ends the session.
        self.reader.abort();
    }
}

impl Legacy {
    /// GET the SSE URL and wait for the `endpoint` event.
    pub async fn connect(http: awc::Client, sse_url: &str) -> Res<Legacy> {
        let resp = http
            .get(sse_url)
            .insert_header(("accept", "text/event-stream"))
            .send()
            .await
            .map_err(|e| format!("GET: {e}"))?;
        if resp.status() != StatusCode::OK {
            return Err(format!("GET answered {}", resp.status()));
        }
        let (tx, rx) = oneshot::channel();
        let state = Rc::new(RefCell::new(LegacyState {
            endpoint: Some(tx),
            ..LegacyState::default()
        }));
        let reader = actix_rt::spawn(read_loop(resp, state.clone(), sse_url.to_string()));
        let endpoint = match rx.await {
            Ok(r) => r?,
            Err(_) => return Err("SSE stream ended before the endpoint event".into()),
        };
        Ok(Legacy {
            http,
            endpoint,
            state,
            reader,
            next_id: 1,
        })
    }

    pub fn stray(&self) -> u64 {
        self.state.borrow().stray
    }

    async fn post(&self, body: String) -> Res<()> {
        let mut resp = self
            .http
            .post(&self.endpoint)
            .insert_header(("content-type", "application/json"))
            .send_body(body)
            .await
            .map_err(|e| format!("POST: {e}"))?;
        let body = resp.body().limit(BODY_LIMIT).await.unwrap_or_default();
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!(
                "POST answered {}: {}",
                resp.status(),
                truncate(&String::from_utf8_lossy(&body))
            ))
        }
    }

    pub async fn initialize(&mut self, version: &str) -> Res<()> {
        self.request("initialize", &initialize_params(version), None)
            .await?;
        self.post(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.into())
            .await
    }

    /// One request at a time per session (the benchmark's sessions are sequential).
    pub async fn request(
        &mut self,
        method: &str,
        params: &str,
        token: Option<&str>,
    ) -> Res<Outcome> {
        let id = self.next_id;
        self.next_id += 1;
        let (done, rx) = oneshot::channel();
        {
            let mut st = self.state.borrow_mut();
            if let Some(why) = &st.closed {
                return Err(format!("SSE stream closed: {why}"));
            }
            st.waiting = Some(Waiting {
                id: id.to_string(),
                token: token.map(str::to_string),
                notes: Vec::new(),
                done,
            });
        }
        if let Err(e) = self.post(request_body(id, method, params)).await {
            self.state.borrow_mut().waiting = None;
            return Err(e);
        }
        match rx.await {
            Ok(r) => r,
            Err(_) => Err("call abandoned".into()),
        }
    }
}

async fn read_loop(
    mut resp: awc::ClientResponse,
    state: Rc<RefCell<LegacyState>>,
    sse_url: String,
) {
    let mut parser = SseParser::new();
    let mut items = Vec::new();
    let why = loop {
        match resp.next().await {
            Some(Ok(chunk)) => parser.push(&chunk, &mut items),
            Some(Err(e)) => break format!("SSE body: {e}"),
            None => break "SSE stream ended".to_string(),
        }
        for item in items.drain(..) {
            let SseItem::Event(ev) = item else { continue };
            let mut st = state.borrow_mut();
            match ev.event_type() {
                "endpoint" => {
                    if let Some(tx) = st.endpoint.take() {
                        let _ = tx.send(resolve(&sse_url, &ev.data));
                    }
                }
                "message" => on_message(&mut st, &ev.data),
                _ => {}
            }
        }
    };
    let mut st = state.borrow_mut();
    if let Some(tx) = st.endpoint.take() {
        let _ = tx.send(Err(why.clone()));
    }
    if let Some(w) = st.waiting.take() {
        let _ = w.done.send(Err(why.clone()));
    }
    st.closed = Some(why);
}

fn on_message(st: &mut LegacyState, data: &str) {
    let w: Wire<'_> = match serde_json::from_str(data) {
        Ok(w) => w,
        Err(e) => {
            if let Some(wt) = st.waiting.take() {
                let _ = wt.done.send(Err(format!("bad JSON in SSE event: {e}")));
            }
            return;
        }
    };
    let Some(waiting) = st.waiting.as_mut() else {
        st.stray += 1;
        return;
    };
    if let Some(r) = check_response(&w, &waiting.id) {
        let done_at = Instant::now();
        let wt = st.waiting.take().expect("checked");
        let _ = wt.done.send(r.map(|result_bytes| Outcome {
            done_at,
            notes: wt.notes,
            result_bytes,
        }));
        return;
    }
    match (&w.method, w.id) {
        (Some(m), None) => {
            let note = note_of(m, w.params, waiting.token.as_deref());
            waiting.notes.push(note);
        }
        _ => waiting.notes.push(Note {
            kind: NoteKind::Unexpected,
            step: None,
        }),
    }
}

/// The POST URL from the `endpoint` event's data, on the SSE URL's origin.
fn resolve(sse_url: &str, data: &str) -> Res<String> {
    let data = data.trim();
    if data.contains("://") {
        return Ok(data.to_string());
    }
    let after_scheme = sse_url
        .find("://")
        .map(|i| i + 3)
        .ok_or_else(|| format!("bad SSE URL {sse_url}"))?;
    let origin_end = sse_url[after_scheme..]
        .find('/')
        .map_or(sse_url.len(), |i| after_scheme + i);
    let origin = &sse_url[..origin_end];
    if data.starts_with('/') {
        Ok(format!("{origin}{data}"))
    } else {
        let path = &sse_url[origin_end..];
        let path = path.split(['?', '#']).next().unwrap_or("");
        let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
        let dir = if dir.is_empty() { "/" } else { dir };
        Ok(format!("{origin}{dir}{data}"))
    }
}

// ------------------------------------------------------------------------------------------
// Either
// ------------------------------------------------------------------------------------------

pub enum Session {
    Legacy(Legacy),
    Streamable(Streamable, Option<awc::ClientResponse>),
}

impl Session {
    /// A new, initialised session.
    pub async fn open(kind: ClientKind, http: awc::Client, url: Rc<str>) -> Res<Session> {
        match kind {
            ClientKind::Legacy => {
                let mut c = Legacy::connect(http, &url).await?;
                c.initialize("2024-11-05").await?;
                Ok(Session::Legacy(c))
            }
            ClientKind::Streamable => {
                let mut c = Streamable::new(http, url);
                c.initialize("2025-06-18").await?;
                Ok(Session::Streamable(c, None))
            }
            ClientKind::Modern => Ok(Session::Streamable(
                Streamable::modern(http, url).await?,
                None,
            )),
        }
    }

    pub async fn call(&mut self, method: &str, params: &str, token: Option<&str>) -> Res<Outcome> {
        match self {
            Session::Legacy(c) => c.request(method, params, token).await,
            Session::Streamable(c, _) => c.request(method, params, token).await,
        }
    }

    /// Streamable only: also hold the standalone GET stream open, as SDK clients do.
    pub async fn listen(&mut self) -> Res<()> {
        if let Session::Streamable(c, get) = self {
            *get = Some(c.open_get().await?);
        }
        Ok(())
    }

    /// Legacy: drop the stream; Streamable: DELETE.
    pub async fn close(self) -> Res<()> {
        match self {
            Session::Legacy(c) => {
                drop(c);
                Ok(())
            }
            Session::Streamable(c, _) if c.modern => Ok(()),
            Session::Streamable(c, get) => {
                drop(get);
                c.delete().await
            }
        }
    }

    pub fn stray(&self) -> u64 {
        match self {
            Session::Legacy(c) => c.stray(),
            Session::Streamable(..) => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_splice() {
        assert_eq!(
            with_token(r#"{"name":"p"}"#, r#""t""#),
            r#"{"_meta":{"progressToken":"t"},"name":"p"}"#
        );
        assert_eq!(with_token("{}", "1"), r#"{"_meta":{"progressToken":1}}"#);
    }

    #[test]
    fn modern_stamp() {
        let (body, name) =
            modern_request(3, "tools/call", r#"{"name":"echo","arguments":{}}"#).unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"],
            "2026-07-28"
        );
        assert_eq!(v["params"]["name"], "echo");
        assert_eq!(name.as_deref(), Some("echo"));
        let (body, name) = modern_request(4, "server/discover", "{}").unwrap();
        assert!(
            serde_json::from_str::<serde_json::Value>(&body).is_ok(),
            "{body}"
        );
        assert_eq!(name, None);
    }

    #[test]
    fn endpoint_resolution() {
        let u = "http://127.0.0.1:9/a/sse";
        assert_eq!(
            resolve(u, "/messages?x=1").unwrap(),
            "http://127.0.0.1:9/messages?x=1"
        );
        assert_eq!(
            resolve(u, "messages/?x=1").unwrap(),
            "http://127.0.0.1:9/a/messages/?x=1"
        );
        assert_eq!(resolve(u, "http://h/m").unwrap(), "http://h/m");
    }
}
