//! Streamable HTTP front (2025-03-26, 2025-06-18, 2025-11-25) on the MCP endpoint.
//!
//! - POST: requests are answered on their own SSE stream (related notifications and server
//!   requests, then the response, then the stream closes); notifications and responses get
//!   202. `initialize` without a session creates one and returns `Mcp-Session-Id`.
//! - GET: the standalone stream. A second GET on the same session takes the stream over (the
//!   older response ends): a proxy that dropped the old connection without closing it must
//!   not lock the client out with 409s. With `Last-Event-ID`, the named stream is replayed.
//! - DELETE: ends the session and its upstream session.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};

use super::body::{accepts, parse_client_body, read_limited, require_json, sse_response};
use super::replicated;
use super::{accepted, forward_headers, header_str, open_session, AppState, Credential};
use crate::error::{DownstreamError, Error};
use crate::jsonrpc::Body;
use crate::observe::Difference;
use crate::session::{EndReason, Phase, Session, MAIN_STREAM, SUPPORTED_VERSIONS};
use crate::transport::Transport;

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";

fn check_version(req: &HttpRequest) -> Result<(), DownstreamError> {
    match header_str(req, VERSION_HEADER) {
        Some(v) if !SUPPORTED_VERSIONS.contains(&v.trim()) => {
            Err(DownstreamError::UnsupportedProtocolVersion(v.to_owned()))
        }
        _ => Ok(()),
    }
}

/// The session a GET or DELETE names: here, or answered by the replica that owns it.
async fn existing_session(
    req: &HttpRequest,
    app: &AppState,
    who: Option<Credential>,
) -> Result<Result<Arc<Session>, HttpResponse>, Error> {
    let sid = header_str(req, SESSION_HEADER).ok_or(DownstreamError::MissingSessionId)?;
    let client = Transport::Streamable;
    let found = replicated::find(req, app, who, sid, client).await?;
    replicated::resolve(req, app, who, sid, client, found, None).await
}

pub async fn post(
    req: &HttpRequest,
    payload: web::Payload,
    app: &AppState,
    who: Option<Credential>,
) -> Result<HttpResponse, Error> {
    if !(accepts(req, "application/json") && accepts(req, "text/event-stream")) {
        return Err(
            DownstreamError::NotAcceptable("application/json and text/event-stream").into(),
        );
    }
    require_json(req)?;
    // What the headers decide is decided before the body is read: a POST for an unknown
    // session never gets to make the bridge hold its body.
    let found = match header_str(req, SESSION_HEADER) {
        Some(sid) => {
            check_version(req)?;
            Some(replicated::find(req, app, who, sid, Transport::Streamable).await?)
        }
        None => None,
    };
    let body = read_limited(req, payload, app.cfg.max_body, app.cfg.body_timeout).await?;
    let existing = match found {
        Some(found) => {
            let sid = header_str(req, SESSION_HEADER).unwrap_or_default();
            let client = Transport::Streamable;
            match replicated::resolve(req, app, who, sid, client, found, Some(&body)).await? {
                Ok(s) => Some(s),
                Err(answered_elsewhere) => return Ok(answered_elsewhere),
            }
        }
        None => None,
    };
    if existing.is_none() && super::modern::claims(req, &body) {
        return super::modern::serve(req, body, app, who).await;
    }
    let body = parse_client_body(body)?;
    let batch_len = match &body {
        Body::Batch(b) => Some(b.len()),
        Body::Single(_) => None,
    };
    let messages = body.into_messages();
    let first_request = messages
        .iter()
        .find(|m| m.is_request())
        .and_then(|m| m.id.clone());
    let wants_init = messages.iter().any(|m| m.is_initialize());
    let new_session = existing.is_none();
    if new_session {
        // Only a lone `initialize` may come without a session (a batch holding one was
        // refused above). Anything else — e.g. the `server/discover` probe of newer
        // clients — gets a prompt 400 so the client falls back to `initialize`.
        if !(wants_init && messages.len() == 1) {
            return Err(DownstreamError::NotInitialized(first_request).into());
        }
        app.policy.admit_session(&app.sessions, who)?;
        replicated::admit(app)?;
    }
    let session = if let Some(s) = existing {
        if wants_init {
            return Err(DownstreamError::AlreadyInitialized(first_request).into());
        }
        s
    } else {
        open_session(app, Transport::Streamable, who)
    };
    if let Some(n) = batch_len {
        session.difference(
            Difference::BatchSplit,
            None,
            &format!("batch of {n} messages forwarded one by one; responses on one stream"),
        );
    }
    let headers = forward_headers(req, app, &session);
    let requests = messages.iter().filter(|m| m.is_request()).count();
    app.policy.admit_requests(&session, requests)?;
    if requests == 0 {
        for msg in messages {
            replicated::remember(app, &session, &msg);
            session
                .forward_one(msg, MAIN_STREAM, &headers, Phase::Forwarding)
                .await?;
        }
        return Ok(accepted());
    }
    let initialize = new_session.then(|| messages[0].raw().clone());
    let slot = session.open_request_stream(requests);
    // No session exists for the client until the upstream accepted its initialize.
    let phase = if new_session {
        Phase::Opening
    } else {
        Phase::Forwarding
    };
    for msg in messages {
        if let Err(e) = session.forward_one(msg, slot.stream, &headers, phase).await {
            session.abandon_stream(&slot);
            return Err(e);
        }
    }
    if let Some(initialize) = initialize {
        if let Err(e) = replicated::register(app, &session, who, initialize).await {
            session.abandon_stream(&slot);
            return Err(e);
        }
        let mut res = HttpResponse::Ok();
        res.insert_header((SESSION_HEADER, &*session.id));
        return Ok(sse_response(res, session, slot, app.cfg.keepalive));
    }
    Ok(sse_response(
        HttpResponse::Ok(),
        session,
        slot,
        app.cfg.keepalive,
    ))
}

pub async fn get(
    req: &HttpRequest,
    app: &AppState,
    who: Option<Credential>,
) -> Result<HttpResponse, Error> {
    if !accepts(req, "text/event-stream") {
        return Err(DownstreamError::NotAcceptable("text/event-stream").into());
    }
    check_version(req)?;
    let session = match existing_session(req, app, who).await? {
        Ok(s) => s,
        Err(relayed) => return Ok(relayed),
    };
    let slot = match header_str(req, "last-event-id") {
        Some(last) => match session.resume(last) {
            Some(slot) => slot,
            None => {
                session.difference(
                    Difference::MessageDropped,
                    None,
                    &format!("cannot replay after unknown or expired event id {last:?}; opened the standalone stream instead"),
                );
                session.attach_main()
            }
        },
        None => session.attach_main(),
    };
    Ok(sse_response(
        HttpResponse::Ok(),
        session,
        slot,
        app.cfg.keepalive,
    ))
}

pub async fn delete(
    req: &HttpRequest,
    app: &AppState,
    who: Option<Credential>,
) -> Result<HttpResponse, Error> {
    let session = match existing_session(req, app, who).await? {
        Ok(s) => s,
        Err(relayed) => return Ok(relayed),
    };
    session.end(EndReason::ClientDelete);
    Ok(HttpResponse::Ok().finish())
}
