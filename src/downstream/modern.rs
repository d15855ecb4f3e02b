//! The 2026-07-28 side of the dual-era `/mcp`: sessionless clients, served in front of any
//! upstream. A POST is theirs when it says so (a modern `MCP-Protocol-Version`, or a modern
//! `_meta` version in its body) and names no session; everything else is the 2025 path,
//! unchanged.
//!
//! Each request is validated as a modern server must, then carried by an upstream session
//! the bridge keeps (see [`crate::sessionless`]): `server/discover` is answered from that
//! session's `initialize`; other requests pass byte for byte and their answers come back as
//! an SSE stream with `resultType` spliced in; a server-to-client request (sampling,
//! elicitation, roots) ends the response with `input_required` and a sealed `requestState`
//! that the client's retry redeems, while the upstream call waits.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::stream;

use super::{header_str, AppState, Credential};
use crate::era::codes::{self, MODERN_VERSION};
use crate::era::discover::{self, CacheHint};
use crate::era::listen::{self, SubscriptionFilter};
use crate::era::meta;
use crate::era::mrtr::{self, InputRequiredBuilder};
use crate::era::result;
use crate::era::splice;
use crate::era::validate::{self, ServerFacts};
use crate::error::{DownstreamError, Error};
use crate::jsonrpc::{Id, Kind, Message};
use crate::observe::Difference;
use crate::session::SUPPORTED_VERSIONS;
use crate::sessionless::{Inbox, Key, LendError, Lent, Listening, Pinned, Pool};
use crate::sse;

const VERSION_HEADER: &str = "mcp-protocol-version";
const SESSION_HEADER: &str = "mcp-session-id";

/// The methods a modern client may call through the bridge (the rest: 404 -32601).
const METHODS: [&str; 10] = [
    "server/discover",
    "subscriptions/listen",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "prompts/list",
    "prompts/get",
    "completion/complete",
];

/// Whether a POST without a session belongs to the modern era.
pub fn claims(req: &HttpRequest, body: &[u8]) -> bool {
    if header_str(req, SESSION_HEADER).is_some() {
        return false;
    }
    match header_str(req, VERSION_HEADER) {
        Some(v) => !SUPPORTED_VERSIONS.contains(&v.trim()),
        None => meta::read(body).is_ok_and(|m| m.is_modern()),
    }
}

/// A modern client's GET or DELETE: the era has neither.
pub fn refuses(req: &HttpRequest) -> bool {
    header_str(req, SESSION_HEADER).is_none()
        && header_str(req, VERSION_HEADER).is_some_and(|v| !SUPPORTED_VERSIONS.contains(&v.trim()))
}

pub async fn serve(
    req: &HttpRequest,
    body: Bytes,
    app: &AppState,
    who: Option<Credential>,
) -> Result<HttpResponse, Error> {
    let since = std::time::Instant::now();
    let msg = Message::parse(body.clone()).map_err(DownstreamError::Parse)?;
    if msg.kind != Kind::Request {
        // Cancelling is closing the response stream in this era: nothing else to carry.
        return Ok(super::accepted());
    }
    let known = |m: &str| METHODS.contains(&m);
    let no_tool_headers = |_: &str| None;
    let facts = ServerFacts {
        supported: &[MODERN_VERSION],
        knows_method: &known,
        tool_headers: &no_tool_headers,
    };
    let accepted = match validate::validate(&body, req.headers(), &facts) {
        Ok(a) => a,
        Err(rejection) => {
            let status = actix_web::http::StatusCode::from_u16(rejection.status)
                .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
            return Ok(HttpResponse::build(status)
                .content_type("application/json")
                .body(rejection.body()));
        }
    };
    let id = msg.id.clone().expect("validated requests have ids");
    let credential = who.map(|c| c.0);
    let headers = app.policy.headers.select(req.headers());
    let pool = app.sessionless.clone();
    let retry = mrtr::read_retry(&body)
        .ok()
        .filter(|r| r.request_state.is_some());
    if let Some(retry) = retry {
        let state = retry.request_state.as_deref().unwrap_or_default();
        if let Some(holder) = pool.sealer.held_by(state) {
            // The call waits on another replica: the retry goes there.
            return match super::replicated::relay_to_holder(req, app, holder, &body).await? {
                Some(answered) => Ok(answered),
                None => Ok(rpc_error(
                    400,
                    &id,
                    codes::INVALID_PARAMS,
                    "unknown or expired requestState (the replica holding the call is gone)",
                )),
            };
        }
        let ticket = pool.sealer.open(state, credential.as_ref());
        // Every input request must be answered: the server waits for each (the call stays
        // pinned, so a corrected retry with the same state still works).
        let missing: Vec<String> = ticket
            .and_then(|t| pool.asked(t))
            .unwrap_or_default()
            .into_iter()
            .filter(|k| !retry.input_responses.iter().any(|(got, _)| got == k))
            .collect();
        if !missing.is_empty() {
            return Ok(rpc_error(
                400,
                &id,
                codes::INVALID_PARAMS,
                &format!("inputResponses must answer every input request; missing {missing:?}"),
            ));
        }
        let Some(pinned) = ticket.and_then(|t| pool.unpin(t)) else {
            return Ok(rpc_error(
                400,
                &id,
                codes::INVALID_PARAMS,
                "unknown or expired requestState",
            ));
        };
        // The answers go upstream as responses to the server's own requests.
        for (key, result) in &retry.input_responses {
            let Some(answer) = mrtr::legacy_response(key, result) else {
                continue;
            };
            let answer = Message::parse(answer.into()).expect("well formed");
            if let Err(e) = pinned.lent.send(answer, &headers).await {
                pool.discard(&pinned.lent);
                return Err(Error::upstream(e, Some(id)));
            }
        }
        let level = log_rank(accepted.envelope.log_level.as_deref());
        let serving = Serving {
            pool,
            lent: Some(pinned.lent),
            key: pinned.key,
            inbox: Some(pinned.inbox),
            upstream_id: pinned.upstream_id,
            upstream_token: pinned.progress_token,
            client_token: msg.progress_token.clone(),
            client_id: id,
            method: pinned.method,
            level,
            credential,
            since,
        };
        return Ok(serving.respond());
    }
    let key = Key::new(credential, &accepted.envelope);
    let lent = match pool.lend(&key, &accepted.envelope, &headers).await {
        Ok(l) => l,
        Err(LendError::Busy(n)) => {
            tracing::warn!(
                open = n,
                "every upstream session kept for sessionless clients is lent"
            );
            let mut busy = rpc_error(
                503,
                &id,
                -32000,
                "every upstream session kept for sessionless clients is in use",
            );
            busy.headers_mut().insert(
                header::RETRY_AFTER,
                actix_web::http::header::HeaderValue::from_static("1"),
            );
            return Ok(busy);
        }
        Err(LendError::Upstream(e)) => return Err(Error::upstream(e, Some(id))),
    };
    if accepted.method == discover::METHOD {
        let result = match discover::discover_result(
            lent.init_result(),
            &[MODERN_VERSION],
            CacheHint::default(),
        ) {
            Ok(r) => r,
            Err(e) => {
                pool.give_back(key, lent);
                return Err(Error::upstream(
                    crate::error::UpstreamError::Protocol(format!(
                        "the upstream's initialize result: {e}"
                    )),
                    Some(id),
                ));
            }
        };
        lent.difference(
            Difference::HandshakeTranslated,
            Some(&msg),
            "a sessionless client's server/discover, answered from the initialize of an upstream session the bridge keeps",
        );
        lent.answered(discover::METHOD, since);
        pool.give_back(key, lent);
        return Ok(HttpResponse::Ok()
            .content_type("application/json")
            .body(Message::result_response(&id, &result).raw().clone()));
    }
    if accepted.method == listen::METHOD {
        let asked = SubscriptionFilter::from_request(&body).unwrap_or_default();
        let listening = Listening::open(pool, key, lent, id.clone(), &asked, headers)
            .await
            .map_err(|e| Error::upstream(e, Some(id)))?;
        return Ok(sse_response(stream::unfold(
            listening,
            |mut l| async move {
                let frame = l.next().await?;
                Some((Ok::<_, actix_web::Error>(frame), l))
            },
        )));
    }
    let msg_token = msg.progress_token.clone();
    let inbox = lent.begin();
    if let Err(e) = lent.send(msg, &headers).await {
        pool.discard(&lent);
        return Err(Error::upstream(e, Some(id)));
    }
    let serving = Serving {
        pool,
        lent: Some(lent),
        key,
        inbox: Some(inbox),
        upstream_id: id.clone(),
        upstream_token: msg_token.clone(),
        client_token: msg_token,
        client_id: id,
        method: accepted.method.into(),
        level: log_rank(accepted.envelope.log_level.as_deref()),
        credential,
        since,
    };
    Ok(serving.respond())
}

/// One request being answered from its lent upstream session.
struct Serving {
    pool: Arc<Pool>,
    /// Given back (or pinned) once the answer is out; a request cut short discards it.
    lent: Option<Arc<Lent>>,
    key: Key,
    inbox: Option<Inbox>,
    upstream_id: Id,
    /// The progress token the upstream call was made with (the first attempt's), and the
    /// one this HTTP request carries: a retry names its own, and gets the call's progress
    /// under it.
    upstream_token: Option<Id>,
    client_token: Option<Id>,
    client_id: Id,
    method: Box<str>,
    /// Least log severity the client asked for; `None`: it asked for none.
    level: Option<usize>,
    credential: Option<[u8; 32]>,
    /// When this HTTP request came in (its answer's latency).
    since: std::time::Instant,
}

impl Serving {
    fn respond(self) -> HttpResponse {
        sse_response(stream::unfold(self, |mut s| async move {
            let frame = s.next().await?;
            Some((Ok::<_, actix_web::Error>(frame), s))
        }))
    }

    /// The next SSE frame for the client; `None` after the answer.
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            let lent = self.lent.clone()?;
            let m = self.inbox.as_mut()?.recv().await;
            let Some(m) = m else {
                // The upstream session broke under the request.
                self.finish(false);
                let err = Message::error_response(
                    Some(&self.client_id),
                    -32603,
                    "the upstream session ended before the answer",
                );
                return Some(frame(err.raw()));
            };
            match m.kind {
                Kind::Response if m.id.as_ref() == Some(&self.upstream_id) => {
                    let m = if self.client_id.json() != self.upstream_id.json() {
                        m.with_id_text(&self.client_id)
                    } else {
                        m
                    };
                    let body = result::modernize_response(m.raw(), &self.method, CacheHint::default())
                        .unwrap_or_else(|_| m.raw().to_vec());
                    lent.answered(&self.method, self.since);
                    self.finish(true);
                    return Some(frame(&body));
                }
                Kind::Response => lent.difference(
                    Difference::MessageDropped,
                    Some(&m),
                    "a response to no request of this sessionless client",
                ),
                Kind::Notification if m.method() == Some("notifications/message") => {
                    if self.level.is_some_and(|min| log_rank(level_of(&m).as_deref()).unwrap_or(0) >= min) {
                        return Some(frame(m.raw()));
                    }
                }
                Kind::Notification if m.method() == Some("notifications/progress") => {
                    return Some(frame(&self.readdress_progress(&lent, &m)));
                }
                Kind::Notification => lent.difference(
                    Difference::MessageDropped,
                    Some(&m),
                    "an unsolicited notification: a sessionless client gets those only on a listen stream",
                ),
                Kind::Request => {
                    if let Some(f) = self.input_required(&lent, &m).await {
                        return Some(f);
                    }
                }
            }
        }
    }

    /// A server-to-client request during the call: the response ends `input_required`,
    /// the upstream call waits for the client's retry. Requests with no such form (`ping`)
    /// are answered here.
    async fn input_required(&mut self, lent: &Arc<Lent>, m: &Message) -> Option<Bytes> {
        let mut builder = InputRequiredBuilder::new();
        // Only these methods may answer input_required (the spec); during any other the
        // server's request is refused, as a client with nothing to answer it would.
        let can_ask = mrtr::MRTR_METHODS.contains(&&*self.method);
        let asked = builder
            .push_legacy_request(m.raw())
            .ok()
            .filter(|_| can_ask);
        let Some(asked) = asked else {
            if let Some(id) = &m.id {
                let reply = if m.method() == Some("ping") {
                    Message::result_response(id, "{}")
                } else {
                    lent.difference(
                        Difference::AnsweredLocally,
                        Some(m),
                        &format!(
                            "the upstream asked the client ({}) during {} {}: refused by the bridge (a sessionless client can be asked only during {:?})",
                            m.method().unwrap_or_default(),
                            self.method,
                            self.client_id,
                            mrtr::MRTR_METHODS
                        ),
                    );
                    Message::error_response(
                        Some(id),
                        -32601,
                        "a sessionless client takes no such request here",
                    )
                };
                let _ = lent.send(reply, &Vec::new()).await;
            }
            return None;
        };
        let pinned = Pinned {
            lent: self.lent.take()?,
            key: self.key.clone(),
            inbox: self.inbox.take()?,
            upstream_id: self.upstream_id.clone(),
            progress_token: self.upstream_token.clone(),
            method: self.method.clone(),
            asked: vec![asked],
            since: std::time::Instant::now(),
        };
        let ticket = self.pool.pin(pinned);
        let state = self.pool.sealer.seal(ticket, self.credential.as_ref());
        let result = builder.build(Some(&state)).ok()?;
        lent.difference(
            Difference::InputRequired,
            Some(m),
            &format!(
                "the upstream asked the client ({}) during request {}: answered input_required; the upstream call waits for the retry",
                m.method().unwrap_or_default(),
                self.client_id
            ),
        );
        lent.answered(&self.method, self.since);
        Some(frame(
            Message::result_response(&self.client_id, &result).raw(),
        ))
    }

    /// A progress notification of the call, under the token this HTTP request carries: after
    /// a retry the upstream still names the first attempt's token (a splice).
    fn readdress_progress(&self, lent: &Lent, m: &Message) -> Vec<u8> {
        let (Some(up), Some(client)) = (&self.upstream_token, &self.client_token) else {
            return m.raw().to_vec();
        };
        if up.json() == client.json() || m.progress_token.as_ref() != Some(up) {
            return m.raw().to_vec();
        }
        let Some(spliced) = with_progress_token(m.raw(), client.json()) else {
            return m.raw().to_vec();
        };
        lent.difference(
            Difference::InputRequired,
            Some(m),
            &format!(
                "progress of the call begun with token {up}, re-addressed to the retry's token {client}"
            ),
        );
        spliced
    }

    /// The answer is out: the session serves the next request, or is closed if it broke.
    fn finish(&mut self, healthy: bool) {
        self.inbox = None;
        if let Some(lent) = self.lent.take() {
            if healthy {
                self.pool.give_back(self.key.clone(), lent);
            } else {
                self.pool.discard(&lent);
            }
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        // The client went away before its answer (the era's cancellation): the upstream
        // request is cancelled, and the session that carried it is closed rather than lent
        // again, so that nothing late of this call can reach another request.
        let Some(lent) = self.lent.take() else { return };
        let pool = self.pool.clone();
        let cancel = Message::parse(
            format!(
                r#"{{"jsonrpc":"2.0","method":"notifications/cancelled","params":{{"requestId":{},"reason":"the client closed its response stream"}}}}"#,
                self.upstream_id.json()
            )
            .into(),
        )
        .expect("well formed");
        if tokio::runtime::Handle::try_current().is_err() {
            // Dropped outside the workers (shutdown): no cancellation to send.
            return pool.discard(&lent);
        }
        actix_web::rt::spawn(async move {
            let _ = lent.send(cancel, &Vec::new()).await;
            pool.discard(&lent);
        });
    }
}

/// `params.progressToken` of a progress notification set to `token_json`, by splice.
fn with_progress_token(raw: &[u8], token_json: &str) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(raw).ok()?;
    splice::validate(text).ok()?;
    let params = splice::find(text, splice::root(text), "params")?;
    Some(splice::set(text, params.start, "progressToken", token_json).into_bytes())
}

fn sse_response(
    frames: impl futures_util::Stream<Item = Result<Bytes, actix_web::Error>> + 'static,
) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .streaming(frames)
}

fn frame(body: &[u8]) -> Bytes {
    sse::encode(Some("message"), None, body)
}

fn rpc_error(status: u16, id: &Id, code: i64, message: &str) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
    HttpResponse::build(status)
        .content_type("application/json")
        .body(codes::error_body(Some(id.json()), code, message, None))
}

/// Severity rank of a `LoggingLevel` (debug = 0 … emergency = 7).
fn log_rank(level: Option<&str>) -> Option<usize> {
    const LEVELS: [&str; 8] = [
        "debug",
        "info",
        "notice",
        "warning",
        "error",
        "critical",
        "alert",
        "emergency",
    ];
    LEVELS.iter().position(|l| Some(*l) == level)
}

fn level_of(m: &Message) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct N {
        params: Option<P>,
    }
    #[derive(serde::Deserialize)]
    struct P {
        level: Option<String>,
    }
    serde_json::from_slice::<N>(m.raw()).ok()?.params?.level
}
