//! The client-facing side: one actix handler that routes every request by path and method
//! (the one place routing is decided), the security guard, and the two fronts.

mod body;
mod guard;
mod legacy_sse;
mod streamable;

use std::sync::Arc;

use actix_web::http::{header, Method};
use actix_web::{web, HttpRequest, HttpResponse};

use crate::config::Config;
use crate::error::{DownstreamError, Error, UpstreamError};
use crate::jsonrpc::Message;
use crate::observe::Observer;
use crate::session::{Session, SessionMap, StreamNo};
use crate::upstream::{ForwardHeaders, UpstreamShared};

/// Everything the handlers share; built once, outside `HttpServer::new`.
pub struct AppState {
    pub cfg: Arc<Config>,
    pub sessions: Arc<SessionMap>,
    pub upstream: Arc<UpstreamShared>,
    pub observer: Arc<Observer>,
}

pub async fn dispatch(
    req: HttpRequest,
    payload: web::Payload,
    app: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    guard::check(&req, &app.cfg)?;
    let cfg = &app.cfg;
    // Every path is accepted with or without a trailing slash.
    let path = req.path().trim_end_matches('/');
    let m = req.method();
    if path == cfg.sse_path {
        match *m {
            Method::GET => legacy_sse::open(&req, &app),
            _ => Err(DownstreamError::MethodNotAllowed("GET").into()),
        }
    } else if path == cfg.messages_path {
        match *m {
            Method::POST => legacy_sse::post(&req, payload, &app).await,
            _ => Err(DownstreamError::MethodNotAllowed("POST").into()),
        }
    } else if path == cfg.mcp_path {
        match *m {
            Method::POST => streamable::post(&req, payload, &app).await,
            Method::GET => streamable::get(&req, &app),
            Method::DELETE => streamable::delete(&req, &app),
            _ => Err(DownstreamError::MethodNotAllowed("GET, POST, DELETE").into()),
        }
    } else {
        Err(DownstreamError::NotFound.into())
    }
}

/// The client headers that cross to the upstream.
fn forward_headers(req: &HttpRequest) -> ForwardHeaders {
    req.headers()
        .get(header::AUTHORIZATION)
        .map(|v| vec![(header::AUTHORIZATION, v.clone())])
        .unwrap_or_default()
}

/// Forward one client message. A request whose upstream leg fails gets a JSON-RPC error on
/// its stream (the HTTP exchange itself succeeded); 401/403 go back as HTTP so the client
/// can authenticate; a failed notification or response can only be reported as HTTP.
async fn forward_one(
    session: &Session,
    msg: Message,
    stream: StreamNo,
    headers: &ForwardHeaders,
) -> Result<(), Error> {
    session.client_message(&msg, stream);
    let id = msg.is_request().then(|| msg.id.clone()).flatten();
    match session.forward(msg, headers.clone()).await {
        Ok(()) => Ok(()),
        Err(e @ UpstreamError::Auth { .. }) => {
            if let Some(id) = &id {
                session.forget_request(id);
            }
            Err(Error::upstream(e, id))
        }
        Err(e) => match id {
            Some(id) => {
                session.fail_request(&id, &e);
                Ok(())
            }
            None => Err(Error::upstream(e, None)),
        },
    }
}

fn header_str<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

pub fn accepted() -> HttpResponse {
    HttpResponse::Accepted().body("Accepted")
}
