//! Legacy front (HTTP+SSE, 2024-11-05): `GET /sse` opens a session and its only stream,
//! whose first event names the message endpoint; `POST /messages?sessionId=…` carries each
//! client message and is answered 202 once the upstream accepted it.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};

use super::body::{read_limited, require_json, sse_response};
use super::policy::owns;
use super::{accepted, forward_headers, forward_one, AppState, Credential};
use crate::config::{path_prefix, Config};
use crate::error::{DownstreamError, Error};
use crate::jsonrpc::{self, Body};
use crate::observe::Difference;
use crate::session::{new_session_id, Front, Session, MAIN_STREAM};
use crate::sse;
use crate::upstream::UpstreamHandle;

/// Both SDK spellings of the query parameter.
const SESSION_PARAMS: [&str; 2] = ["sessionId", "session_id"];

pub fn open(
    req: &HttpRequest,
    app: &AppState,
    who: Option<Credential>,
) -> Result<HttpResponse, Error> {
    let cfg = &app.cfg;
    app.policy.admit_session(&app.sessions, who)?;
    let id = new_session_id();
    let (handle, driver) = UpstreamHandle::new();
    let session = Arc::new(Session::new(
        id.clone(),
        Front::Legacy,
        handle,
        cfg.replay,
        Arc::downgrade(&app.sessions),
        app.observer.clone(),
    ));
    if let Some(who) = who {
        session.set_owner(who.0);
    }
    // The upstream session is created by the client's own `initialize`, not now.
    driver.spawn(Arc::downgrade(&session), app.upstream.clone());
    let endpoint = format!("{}?sessionId={id}", endpoint_base(req, cfg));
    session.push_main_frame(sse::encode(Some("endpoint"), None, endpoint.as_bytes()));
    session.difference(
        Difference::EndpointRewritten,
        None,
        &format!("legacy client is sent the bridge's own endpoint {endpoint}"),
    );
    let slot = session.attach_main();
    app.sessions.insert(session.clone());
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
/// proxy, the prefix and origin the proxy reports.
fn endpoint_base(req: &HttpRequest, cfg: &Config) -> String {
    let forwarded = |name: &str| {
        cfg.trust_forwarded_headers
            .then(|| req.headers().get(name)?.to_str().ok())
            .flatten()
            .map(|v| v.split(',').next().unwrap_or("").trim())
            .filter(|v| !v.is_empty())
    };
    let prefix = forwarded("x-forwarded-prefix")
        .and_then(path_prefix)
        .unwrap_or_else(|| cfg.public_prefix.clone());
    let path = format!("{prefix}{}", cfg.messages_path);
    match forwarded("x-forwarded-host").filter(|h| !h.contains(['/', '?', '#', '@', ' '])) {
        Some(host) => {
            let proto = match forwarded("x-forwarded-proto") {
                Some("https") => "https",
                _ => "http",
            };
            format!("{proto}://{host}{path}")
        }
        None => path,
    }
}

pub async fn post(
    req: &HttpRequest,
    payload: web::Payload,
    app: &AppState,
    who: Option<Credential>,
) -> Result<HttpResponse, Error> {
    require_json(req)?;
    let query = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .unwrap_or_default();
    let sid = query
        .iter()
        .find(|(k, _)| SESSION_PARAMS.contains(&k.as_str()))
        .map(|(_, v)| v.as_str())
        .ok_or(DownstreamError::MissingSessionId)?;
    let session = app
        .sessions
        .get(sid)
        .filter(|s| s.front == Front::Legacy && !s.is_ended() && owns(s, who))
        .ok_or(DownstreamError::UnknownSession)?;
    let body = read_limited(req, payload, app.cfg.max_body).await?;
    let body = jsonrpc::parse_body(body).map_err(DownstreamError::from)?;
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
        forward_one(&session, msg, MAIN_STREAM, &headers).await?;
    }
    Ok(accepted())
}
