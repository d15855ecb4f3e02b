//! Sessions across replicas (`--redis`; without it every function here is the single-process
//! answer). A request naming a session this replica does not hold is relayed to the replica
//! that owns it, or — when that owner is gone — the session is taken over and rebuilt here
//! from its record: the client's cached `initialize` (and `notifications/initialized`) are
//! replayed upstream, and the request goes on as if nothing happened. Legacy sessions are
//! never taken over: their one stream died with their replica, and the client reconnects.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use bytes::Bytes;
use url::Url;

use super::policy::owns;
use super::{forward_headers, open_session_as, AppState, Credential};
use crate::error::{DownstreamError, Error, UpstreamError};
use crate::jsonrpc::Message;
use crate::observe::Difference;
use crate::replica::hop::{self, Relayed, HOP_HEADER};
use crate::replica::membership::{Adoption, Located};
use crate::replica::{self, SessionRecord};
use crate::session::{EndReason, Phase, Poll, Session, WriterSlot, MAIN_STREAM};
use crate::transport::Transport;

/// Where the session a request names is.
pub enum Found {
    Here(Arc<Session>),
    /// At this live replica: relay the request there.
    Owner {
        id: String,
        address: Url,
    },
}

/// Whether another replica relayed this request here (its signature was checked on arrival).
fn relayed(req: &HttpRequest) -> bool {
    req.headers().contains_key(HOP_HEADER)
}

fn credential_hex(who: Option<Credential>) -> Option<String> {
    who.map(|c| crate::hex::encode(&c.0))
}

fn credential_of(hex: Option<&str>) -> Option<Credential> {
    let bytes = crate::hex::decode(hex?)?;
    Some(Credential(bytes.try_into().ok()?))
}

fn recorded(client: Transport) -> replica::Transport {
    match client {
        Transport::LegacySse => replica::Transport::Legacy,
        _ => replica::Transport::Streamable,
    }
}

fn unavailable(e: replica::DirectoryError) -> Error {
    tracing::warn!("replica directory: {e}");
    DownstreamError::ReplicasUnavailable("the replica directory (Redis) is unreachable").into()
}

/// Whether a new session may start here: not while draining, nor while the directory that
/// makes it reachable from the other replicas is unreachable.
pub fn admit(app: &AppState) -> Result<(), DownstreamError> {
    match app.replicas.as_ref().and_then(|m| m.unready()) {
        Some(why) => Err(DownstreamError::ReplicasUnavailable(why.as_str())),
        None => Ok(()),
    }
}

/// Record a new session in the directory before its client learns its id (`initialize`:
/// the client's, for a takeover to replay; a legacy session has none yet and needs none).
pub async fn register(
    app: &AppState,
    session: &Session,
    who: Option<Credential>,
    initialize: Bytes,
) -> Result<(), Error> {
    let Some(m) = &app.replicas else {
        return Ok(());
    };
    let record = SessionRecord {
        id: session.id.to_string(),
        owner: m.id.to_string(),
        epoch: 0,
        client_transport: recorded(session.client),
        upstream_transport: None,
        credential: credential_hex(who),
        upstream_session: None,
        initialize,
        initialized: None,
    };
    if let Err(e) = m.register(record).await {
        session.end(EndReason::Shutdown);
        return Err(unavailable(e));
    }
    if session.client.resumable() {
        if let Some(mirror) = m.mirror() {
            session.set_mirror(mirror);
        }
    }
    Ok(())
}

/// The client's `notifications/initialized`, kept for a takeover.
pub fn remember(app: &AppState, session: &Session, msg: &Message) {
    if let Some(m) = &app.replicas {
        if msg.method() == Some("notifications/initialized") {
            m.remember_initialized(&session.id, msg.raw().clone());
        }
    }
}

/// The session `sid` of a `client` client: here, at its live owner, or taken over from a
/// dead owner and rebuilt here.
pub async fn find(
    req: &HttpRequest,
    app: &AppState,
    who: Option<Credential>,
    sid: &str,
    client: Transport,
) -> Result<Found, Error> {
    let here = || {
        let s = app
            .sessions
            .get(sid)
            .filter(|s| s.client == client && !s.is_ended() && owns(s, who))?;
        // A draining replica ends only sessions quiet for a moment: this one is not.
        s.touch();
        Some(s)
    };
    let Some(m) = &app.replicas else {
        return here()
            .map(Found::Here)
            .ok_or(DownstreamError::UnknownSession.into());
    };
    for _ in 0..3 {
        // A session being rebuilt here is in the map before its upstream is ready.
        m.settled(sid).await;
        if let Some(s) = here() {
            return Ok(Found::Here(s));
        }
        match m
            .locate(sid, credential_hex(who), recorded(client))
            .await
            .map_err(unavailable)?
        {
            // Never relayed twice — the replica that sent it here believed this one owns it
            // — unless this one is draining and ended the session: then a live replica
            // takes it over (one that does not drain never sends it on; no loop).
            Located::Owner { .. } if relayed(req) && !m.is_draining() => break,
            Located::Owner { id, address } => return Ok(Found::Owner { id, address }),
            Located::Adopt(a) => return adopt(req, app, a).await.map(Found::Here),
            Located::Busy => continue,
            Located::Nowhere => break,
        }
    }
    Err(DownstreamError::UnknownSession.into())
}

/// A sessionless retry whose `requestState` names another replica: relayed there, where
/// the call waits. `None` when that replica is gone (the call died with it).
pub async fn relay_to_holder(
    req: &HttpRequest,
    app: &AppState,
    holder: &str,
    body: &Bytes,
) -> Result<Option<HttpResponse>, Error> {
    let Some(m) = &app.replicas else {
        return Ok(None);
    };
    if relayed(req) {
        return Ok(None); // never twice
    }
    let Some(address) = m.address_of(holder).await.map_err(unavailable)? else {
        return Ok(None);
    };
    let client = crate::upstream::http::client(&app.upstream);
    let deadline = app.cfg.upstream_timeout + Duration::from_secs(2);
    match hop::relay(&client, req, Some(body.clone()), &address, &m.hop, deadline).await {
        Relayed::Answer(res) => {
            app.observer.metrics.relay("answered");
            Ok(Some(res))
        }
        Relayed::OwnerUnreachable(_) => Ok(None),
        Relayed::Failed(why) => {
            app.observer.metrics.relay("failed");
            Err(DownstreamError::RelayFailed(why).into())
        }
    }
}

/// The session `found` (after the request's body, if any, arrived), or the owner's answer.
/// A session found here may have ended meanwhile (a draining replica ends its idle
/// sessions): it is looked up once more, and followed to wherever it went.
pub async fn resolve(
    req: &HttpRequest,
    app: &AppState,
    who: Option<Credential>,
    sid: &str,
    client: Transport,
    found: Found,
    body: Option<&Bytes>,
) -> Result<Result<Arc<Session>, HttpResponse>, Error> {
    let found = match found {
        Found::Here(s) if s.is_ended() && app.replicas.is_some() => {
            find(req, app, who, sid, client).await?
        }
        other => other,
    };
    match found {
        Found::Here(s) if s.is_ended() => Err(DownstreamError::UnknownSession.into()),
        Found::Here(s) => Ok(Ok(s)),
        Found::Owner { id, address } => {
            match relay(req, app, who, sid, client, (id, address), body.cloned()).await? {
                Relay::Answered(res) => Ok(Err(res)),
                Relay::TakenOver(s) => Ok(Ok(s)),
            }
        }
    }
}

/// What relaying to the owner gave.
pub enum Relay {
    Answered(HttpResponse),
    /// The owner is gone and this replica took the session over: serve it here.
    TakenOver(Arc<Session>),
}

/// Relay `req` (its `body` already read) to the owner. If the owner cannot be reached, a
/// Streamable session is taken over; if it answers 404 (the session moved, e.g. its owner is
/// draining), the session is looked up once more and followed.
pub async fn relay(
    req: &HttpRequest,
    app: &AppState,
    who: Option<Credential>,
    sid: &str,
    client: Transport,
    owner: (String, Url),
    body: Option<Bytes>,
) -> Result<Relay, Error> {
    let m = app.replicas.as_ref().expect("only replicas relay");
    let http = crate::upstream::http::client(&app.upstream);
    let deadline = app.cfg.upstream_timeout + Duration::from_secs(2);
    let (mut owner_id, mut address) = owner;
    let mut followed = false;
    // Bounded: each turn follows the session to a new owner or takes it over.
    for _ in 0..3 {
        let relayed = hop::relay(&http, req, body.clone(), &address, &m.hop, deadline).await;
        let located = match relayed {
            Relayed::Answer(res) if res.status() != StatusCode::NOT_FOUND || followed => {
                app.observer.metrics.relay("answered");
                return Ok(Relay::Answered(res));
            }
            Relayed::Answer(res) => {
                m.forget_route(sid);
                followed = true;
                match m
                    .locate(sid, credential_hex(who), recorded(client))
                    .await
                    .map_err(unavailable)?
                {
                    Located::Owner { id, .. } if id == owner_id => return Ok(Relay::Answered(res)),
                    other => other,
                }
            }
            Relayed::Failed(why) => {
                app.observer.metrics.relay("failed");
                tracing::warn!(session = sid, owner = %owner_id, "relay to the owning replica failed: {why}");
                return Err(DownstreamError::RelayFailed(why).into());
            }
            Relayed::OwnerUnreachable(why) => {
                tracing::warn!(session = sid, owner = %owner_id, "owning replica unreachable ({why}): taking the session over");
                m.forget_route(sid);
                m.owner_unreachable(sid, &owner_id, credential_hex(who))
                    .await
                    .map_err(unavailable)?
            }
        };
        match located {
            Located::Adopt(a) => {
                app.observer.metrics.relay("taken_over");
                return adopt(req, app, a).await.map(Relay::TakenOver);
            }
            Located::Owner { id, address: next } if !followed || id != owner_id => {
                (owner_id, address) = (id, next);
                followed = true;
            }
            // Someone else is taking it over right now: the client retries shortly.
            Located::Busy | Located::Owner { .. } => {
                return Err(DownstreamError::ReplicasUnavailable("the session is moving").into())
            }
            Located::Nowhere => return Err(DownstreamError::UnknownSession.into()),
        }
    }
    Err(DownstreamError::ReplicasUnavailable("the session is moving").into())
}

/// Rebuild a taken-over session here: same id, same credential, its upstream session
/// re-initialised with the client's own handshake.
async fn adopt(
    req: &HttpRequest,
    app: &AppState,
    adoption: Adoption,
) -> Result<Arc<Session>, Error> {
    let rec = adoption.record.clone();
    let who = credential_of(rec.credential.as_deref());
    let m = app.replicas.as_ref().expect("only replicas adopt");
    // The replay log first: a resume may name any stream the lost replica had.
    let mirrored = m.mirrored(&rec.id).await.unwrap_or_else(|e| {
        tracing::warn!(session = %rec.id, "reading the replay log failed: {e}");
        Default::default()
    });
    let session = open_session_as(app, rec.id.as_str().into(), Transport::Streamable, who);
    let (streams, events, failed) = session.restore(mirrored);
    if let Some(mirror) = m.mirror() {
        session.set_mirror(mirror);
    }
    let headers = forward_headers(req, app, &session);
    match replay_handshake(&session, &rec, &headers, app.cfg.upstream_timeout).await {
        Ok(()) => {
            let restored = match m.mirror() {
                Some(_) => format!("; {events} event(s) of {streams} stream(s) restored from Redis for Last-Event-ID, {failed} unanswered request(s) answered with an error"),
                None => String::new(),
            };
            session.difference(
                Difference::SessionTakenOver,
                None,
                &format!(
                    "session taken over from a replica that is gone (epoch {}); upstream re-initialised from the client's initialize{restored}",
                    rec.epoch
                ),
            );
            adoption.finish();
            Ok(session)
        }
        Err(e) => {
            tracing::warn!(session = %rec.id, "re-initialising a taken-over session failed: {e}");
            session.end(EndReason::UpstreamGone);
            if let Some(m) = &app.replicas {
                m.abandon(&rec.id);
            }
            Err(e)
        }
    }
}

/// Send the cached `initialize` (its answer is dropped: the client had it long ago) and
/// `notifications/initialized`.
async fn replay_handshake(
    session: &Arc<Session>,
    rec: &SessionRecord,
    headers: &crate::upstream::ForwardHeaders,
    deadline: Duration,
) -> Result<(), Error> {
    let init = Message::parse(rec.initialize.clone()).map_err(DownstreamError::Parse)?;
    let slot = session.open_request_stream(1);
    if let Err(e) = session
        .forward_one(init, slot.stream, headers, Phase::Opening)
        .await
    {
        session.abandon_stream(&slot);
        return Err(e);
    }
    let answered = tokio::time::timeout(deadline, drain(session, &slot)).await;
    session.detach_writer(&slot);
    if answered.is_err() {
        return Err(Error::upstream(UpstreamError::Timeout(deadline), None));
    }
    if let Some(raw) = &rec.initialized {
        let msg = Message::parse(raw.clone()).map_err(DownstreamError::Parse)?;
        session
            .forward_one(msg, MAIN_STREAM, headers, Phase::Forwarding)
            .await?;
    }
    Ok(())
}

/// Read a stream to its end, discarding what it carries.
async fn drain(session: &Session, slot: &WriterSlot) {
    loop {
        let polled = std::future::poll_fn(|cx| match session.poll_writer(slot, cx.waker()) {
            Poll::Wait => std::task::Poll::Pending,
            other => std::task::Poll::Ready(other),
        })
        .await;
        if matches!(polled, Poll::End) {
            return;
        }
    }
}
