//! The client-facing side: one actix handler that routes every request by path and method
//! (the one place routing is decided), the security guard, the deployment policy (tokens,
//! CORS, limits), and the two fronts.

mod auth;
pub(crate) mod body;
mod cors;
pub(crate) mod forwarded;
mod guard;
pub(crate) mod legacy_sse;
mod modern;
mod policy;
mod replicated;
mod streamable;

pub use auth::Credential;
pub use guard::{parse_host, HostAllowList};
pub use policy::{Policy, PolicyError};

use std::sync::Arc;

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::config::Config;
use crate::error::{DownstreamError, Error};
use crate::observe::{Difference, Observer};
use crate::session::{new_session_id, Session, SessionMap};
use crate::transport::Transport;
use crate::upstream::{ForwardHeaders, UpstreamHandle, UpstreamShared, UpstreamSink};

/// Everything the handlers share; built once, outside `HttpServer::new`.
pub struct AppState {
    pub cfg: Arc<Config>,
    pub sessions: Arc<SessionMap>,
    pub upstream: Arc<UpstreamShared>,
    pub observer: Arc<Observer>,
    pub policy: Arc<Policy>,
    /// Upstream sessions kept for sessionless (2026-07-28) clients.
    pub sessionless: Arc<crate::sessionless::Pool>,
    /// This replica's membership in the group (`--redis`); `None`: a single process.
    pub replicas: Option<Arc<crate::replica::membership::Membership>>,
}

pub async fn dispatch(
    req: HttpRequest,
    payload: web::Payload,
    app: web::Data<AppState>,
) -> HttpResponse {
    let mut res = match route(&req, payload, &app).await {
        Ok(res) => res,
        Err(e) => {
            if let Error::Downstream(d) = &e {
                if let Some(reason) = d.refusal() {
                    app.observer.metrics.refusal();
                    tracing::warn!(reason, method = %req.method(), path = req.path(), "refused: {d}");
                }
            }
            HttpResponse::from_error(e)
        }
    };
    // Errors too, so that a page can read a 401 and start authorization.
    app.policy.cors.decorate(&req, &mut res);
    res
}

/// The client-facing endpoints.
#[derive(Clone, Copy)]
enum Endpoint {
    LegacyStream,
    LegacyMessages,
    Mcp,
}

impl Endpoint {
    fn methods(self) -> &'static str {
        match self {
            Endpoint::LegacyStream => "GET",
            Endpoint::LegacyMessages => "POST",
            Endpoint::Mcp => "GET, POST, DELETE",
        }
    }
}

async fn route(
    req: &HttpRequest,
    payload: web::Payload,
    app: &AppState,
) -> Result<HttpResponse, Error> {
    // A request another replica relayed was checked there; its signature is checked here.
    let relayed = match &app.replicas {
        Some(m) => m.hop.inbound(req).map_err(|e| {
            tracing::warn!(why = ?e, "refused a request with a bad replica signature");
            DownstreamError::ForgedHop
        })?,
        None if req.headers().contains_key(crate::replica::hop::HOP_HEADER) => {
            return Err(DownstreamError::ForgedHop.into())
        }
        None => false,
    };
    if !relayed {
        guard::check(req, &app.policy.hosts, &app.cfg.allowed_origins)?;
    }
    let cfg = &app.cfg;
    // Every path is accepted with or without a trailing slash.
    let path = req.path().trim_end_matches('/');
    let endpoint = if path == cfg.sse_path {
        Endpoint::LegacyStream
    } else if path == cfg.messages_path {
        Endpoint::LegacyMessages
    } else if path == cfg.mcp_path {
        Endpoint::Mcp
    } else {
        return Err(DownstreamError::NotFound.into());
    };
    // Preflights carry no credentials: answered before authentication.
    if req.method() == Method::OPTIONS {
        return Ok(app.policy.cors.preflight(req, endpoint.methods()));
    }
    let who = app.policy.authenticate(req)?;
    match (endpoint, req.method().clone()) {
        (Endpoint::LegacyStream, Method::GET) => legacy_sse::open(req, app, who).await,
        (Endpoint::LegacyMessages, Method::POST) => legacy_sse::post(req, payload, app, who).await,
        (Endpoint::Mcp, Method::POST) => streamable::post(req, payload, app, who).await,
        // The 2026-07-28 era has no GET stream and no sessions to end.
        (Endpoint::Mcp, Method::GET | Method::DELETE) if modern::refuses(req) => {
            Err(DownstreamError::MethodNotAllowed("POST").into())
        }
        (Endpoint::Mcp, Method::GET) => streamable::get(req, app, who).await,
        (Endpoint::Mcp, Method::DELETE) => streamable::delete(req, app, who).await,
        _ => Err(DownstreamError::MethodNotAllowed(endpoint.methods()).into()),
    }
}

/// The client headers that cross to the upstream, plus the configured ones. A client token
/// kept back is recorded as a difference once per session.
fn forward_headers(req: &HttpRequest, app: &AppState, session: &Session) -> ForwardHeaders {
    let policy = &app.policy.headers;
    if policy.withholds_authorization(req.headers())
        && session.difference_count(Difference::HeaderStripped) == 0
    {
        let why = if app.policy.authenticates() {
            "client Authorization checked by the bridge (--auth-token), not forwarded"
        } else {
            "client Authorization not forwarded (not listed in --forward-header)"
        };
        session.difference(Difference::HeaderStripped, None, why);
    }
    policy.select(req.headers())
}

/// Create a session for a client of `client` (legacy GET, Streamable `initialize`): in the
/// map at once, so that it counts against the limits, with its upstream driver started on
/// this worker. The upstream session opens with the client's first message.
fn open_session(app: &AppState, client: Transport, who: Option<Credential>) -> Arc<Session> {
    open_session_as(app, new_session_id(), client, who)
}

/// [`open_session`] under a given id (a session taken over from another replica).
fn open_session_as(
    app: &AppState,
    id: Arc<str>,
    client: Transport,
    who: Option<Credential>,
) -> Arc<Session> {
    let (handle, driver) = UpstreamHandle::new();
    let session = Arc::new(Session::new(
        id,
        client,
        handle,
        app.cfg.replay,
        Arc::downgrade(&app.sessions),
        app.observer.clone(),
    ));
    if let Some(who) = who {
        session.set_owner(who.0);
    }
    app.sessions.insert(session.clone());
    let sink: Arc<dyn UpstreamSink> = session.clone();
    driver.spawn(Arc::downgrade(&sink), app.upstream.clone());
    session
}

fn header_str<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

pub fn accepted() -> HttpResponse {
    HttpResponse::Accepted().body("Accepted")
}
