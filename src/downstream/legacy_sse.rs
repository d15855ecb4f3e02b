//! Legacy front (HTTP+SSE, 2024-11-05): `GET /sse` opens a session and its only stream,
//! whose first event names the message endpoint; `POST /messages?sessionId=…` carries each
//! client message and is answered 202 once the upstream accepted it.

use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;

use super::body::{parse_client_body, read_limited, require_json, sse_response};
use super::forwarded;
use super::replicated;
use super::{accepted, forward_headers, open_session, AppState, Credential};
use crate::error::{DownstreamError, Error};
use crate::jsonrpc::Body;
use crate::observe::Difference;
use crate::session::{Phase, MAIN_STREAM};
use crate::sse;
use crate::transport::Transport;

/// Both SDK spellings of the query parameter.
const SESSION_PARAMS: [&str; 2] = ["sessionId", "session_id"];

pub async fn open(
    req: &HttpRequest,
    app: &AppState,
    who: Option<Credential>,
) -> Result<HttpResponse, Error> {
    let cfg = &app.cfg;
    app.policy.admit_session(&app.sessions, who)?;
    replicated::admit(app)?;
    // The upstream session is created by the client's own `initialize`, not now.
    let session = open_session(app, Transport::LegacySse, who);
    // Findable from every replica before the client can POST anywhere.
    replicated::register(app, &session, who, Bytes::new()).await?;
    let id = &session.id;
    let endpoint = format!("{}?sessionId={id}", endpoint_base(req, app));
    session.push_main_frame(sse::encode(Some("endpoint"), None, endpoint.as_bytes()));
    session.difference(
        Difference::EndpointRewritten,
        None,
        &format!("legacy client is sent the bridge's own endpoint {endpoint}"),
    );
    let slot = session.attach_main();
    tracing::info!(parent: &session.span, "legacy client connected; endpoint {endpoint}");
    Ok(sse_response(
        HttpResponse::Ok(),
        session,
        slot,
        cfg.keepalive,
    ))
}

/// Where legacy clients POST: an absolute path on the client's own origin, with the public
/// prefix that restores what a path-stripping reverse proxy removed — or, behind a trusted
/// proxy, the prefix and origin the proxy reports, when they are well formed.
fn endpoint_base(req: &HttpRequest, app: &AppState) -> String {
    let cfg = &app.cfg;
    let forwarded = |name: &str| {
        cfg.trust_forwarded_headers
            .then(|| req.headers().get(name)?.to_str().ok())
            .flatten()
            .and_then(forwarded::first_value)
    };
    let ignored = |name: &str, value: &str| {
        app.observer.metrics.refusal();
        tracing::warn!(
            reason = "bad_forwarded_header",
            header = name,
            value,
            "ignoring a malformed forwarded header"
        );
    };
    let prefix = match forwarded("x-forwarded-prefix") {
        Some(v) => forwarded::prefix(v).unwrap_or_else(|| {
            ignored("x-forwarded-prefix", v);
            cfg.public_prefix.clone()
        }),
        None => cfg.public_prefix.clone(),
    };
    let path = format!("{prefix}{}", cfg.messages_path);
    let host = forwarded("x-forwarded-host").and_then(|v| {
        let host = forwarded::host(v);
        if host.is_none() {
            ignored("x-forwarded-host", v);
        }
        host
    });
    match host {
        Some(host) => {
            let scheme = forwarded::scheme(forwarded("x-forwarded-proto"));
            format!("{scheme}://{host}{path}")
        }
        None => path,
    }
}

/// The session id of a legacy POST's query string (either SDK spelling).
pub(crate) fn session_id(query: &str) -> Option<String> {
    web::Query::<Vec<(String, String)>>::from_query(query)
        .ok()?
        .into_inner()
        .into_iter()
        .find(|(k, _)| SESSION_PARAMS.contains(&k.as_str()))
        .map(|(_, v)| v)
}

pub async fn post(
    req: &HttpRequest,
    payload: web::Payload,
    app: &AppState,
    who: Option<Credential>,
) -> Result<HttpResponse, Error> {
    require_json(req)?;
    // The session is checked before the body is read: a stranger's body is never held.
    let sid = session_id(req.query_string()).ok_or(DownstreamError::MissingSessionId)?;
    let found = replicated::find(req, app, who, &sid, Transport::LegacySse).await?;
    let body = read_limited(req, payload, app.cfg.max_body, app.cfg.body_timeout).await?;
    let client = Transport::LegacySse;
    let session = match replicated::resolve(req, app, who, &sid, client, found, Some(&body)).await?
    {
        Ok(s) => s,
        Err(answered_elsewhere) => return Ok(answered_elsewhere),
    };
    let body = parse_client_body(body)?;
    if let Body::Batch(b) = &body {
        session.difference(
            Difference::BatchSplit,
            None,
            &format!("batch of {} messages forwarded one by one", b.len()),
        );
    }
    let messages = body.into_messages();
    app.policy
        .admit_requests(&session, messages.iter().filter(|m| m.is_request()).count())?;
    let headers = forward_headers(req, app, &session);
    for msg in messages {
        session
            .forward_one(msg, MAIN_STREAM, &headers, Phase::Forwarding)
            .await?;
    }
    Ok(accepted())
}
