//! The admin listener: `/healthz` (the process is up), `/readyz` (the upstream is reachable,
//! with its detected transport) and `/metrics` (Prometheus text). Off unless
//! `--admin-listen` is given; keep it on loopback or a private network.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpResponse};

use super::metrics::Snapshot;
use super::Observer;
use crate::config::Config;
use crate::session::SessionMap;
use crate::upstream::UpstreamShared;

pub struct Admin {
    pub cfg: Arc<Config>,
    pub observer: Arc<Observer>,
    pub sessions: Arc<SessionMap>,
    pub upstream: Arc<UpstreamShared>,
    /// This replica's membership (`--redis`): not ready while draining or cut off from Redis.
    pub replicas: Option<Arc<crate::replica::membership::Membership>>,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/healthz",
        web::get().to(|| async { HttpResponse::Ok().body("ok\n") }),
    )
    .route("/readyz", web::get().to(readyz))
    .route("/metrics", web::get().to(metrics));
}

async fn metrics(admin: web::Data<Admin>) -> HttpResponse {
    let snap = Snapshot {
        sessions: admin.sessions.by_transport_pair(),
        buffered_bytes: admin.sessions.buffered_bytes(),
    };
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(admin.observer.metrics.render(&snap))
}

/// Ready when a TCP connection to the upstream succeeds within a second (stdio: when the
/// last attempt to start the server worked).
async fn readyz(admin: web::Data<Admin>) -> HttpResponse {
    if let Some(why) = admin.replicas.as_ref().and_then(|m| m.unready()) {
        return HttpResponse::ServiceUnavailable().json(serde_json::json!({
            "ready": false,
            "replica": &*admin.replicas.as_ref().expect("checked").id,
            "error": why.as_str(),
        }));
    }
    let Some(url) = admin.cfg.upstream.url() else {
        return stdio_ready(&admin);
    };
    let host = url
        .host_str()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    let reachable = tokio::time::timeout(
        Duration::from_secs(1),
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    let body = serde_json::json!({
        "ready": reachable,
        "upstream": url.as_str(),
        "transport": admin.upstream.transport().map_or("unknown", |t| t.as_str()),
    });
    if reachable {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

fn stdio_ready(admin: &Admin) -> HttpResponse {
    let problem = admin.upstream.stdio_problem();
    let body = serde_json::json!({
        "ready": problem.is_none(),
        "upstream": admin.cfg.upstream.to_string(),
        "transport": "stdio",
        "error": problem,
    });
    match problem {
        None => HttpResponse::Ok().json(body),
        Some(_) => HttpResponse::ServiceUnavailable().json(body),
    }
}
