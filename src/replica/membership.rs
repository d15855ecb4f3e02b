//! This replica's part in the group (`--redis`): it registers and heartbeats, keeps a record
//! in the directory for every session it owns (created before the client learns the session
//! id, refreshed, deleted when the session ends — or kept, on a clean exit, for another
//! replica to take over), and answers where a session it does not hold lives: at a live
//! owner (relay there), nowhere, or here after a takeover from a dead owner.
//!
//! Redis is reached from a small runtime of its own (one thread): the multiplexed connection's
//! driver task must outlive whichever actix worker made a call, and Redis latency never
//! stalls a worker's event loop. While Redis is unreachable, lookups fail at once (the
//! caller answers 503) and the heartbeat keeps probing; when it answers again, every record
//! this replica owns is written back (a restarted Redis has lost them).

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::{mpsc, watch};
use url::Url;

use super::hop::HopKey;
use super::{Directory, DirectoryError, Keys, OwnerSeen, RedisTarget, SessionRecord, Takeover};
use super::{Transport, Ttls};
use crate::config::Replicas;
use crate::session::{EndReason, Ended, SessionMap};

/// Deadline for one directory operation seen from a request (Redis' own timeouts retry).
const OP_DEADLINE: Duration = Duration::from_secs(2);
/// How long a session's owner, once looked up, is relayed to without asking Redis again. A
/// stale route corrects itself: a dead owner refuses the connection, and an owner that no
/// longer holds the session answers 404, on which the caller looks again ([`Membership::forget_route`]).
/// A draining replica keeps accepting for longer than this after it left, so that no route
/// to it is left when it closes its listener.
pub const ROUTE_TTL: Duration = Duration::from_secs(2);

/// A looked-up owner, for the requests of the same client that follow.
#[derive(Clone)]
struct Route {
    owner: String,
    address: Url,
    credential: Option<String>,
    client: Transport,
    at: std::time::Instant,
}

/// Where a session this replica does not hold is.
pub enum Located {
    /// A live replica owns it: relay the request there.
    Owner { id: String, address: Url },
    /// Its owner is gone and this replica now owns it: rebuild it from the record.
    Adopt(Adoption),
    /// Another request on this replica is adopting it right now: look again after
    /// [`Membership::settled`].
    Busy,
    /// No such session for this client (ended, expired, another credential's, or a legacy
    /// session whose replica is gone): 404.
    Nowhere,
}

/// A won takeover, until the session is rebuilt here. Dropping it (rebuilt or not) lets
/// requests waiting in [`Membership::settled`] go on.
pub struct Adoption {
    pub record: SessionRecord,
    membership: Arc<Membership>,
    done: watch::Sender<bool>,
}

impl Adoption {
    /// The session runs here now: its record is this replica's to keep alive.
    pub fn finish(self) {
        let id: Arc<str> = self.record.id.as_str().into();
        self.membership.owned.insert(id, self.record.clone());
    }
}

impl Drop for Adoption {
    fn drop(&mut self) {
        self.membership.adopting.remove(self.record.id.as_str());
        let _ = self.done.send(true);
    }
}

pub struct Membership {
    /// This replica's id in the directory (random per process).
    pub id: Arc<str>,
    address: Url,
    dir: Directory,
    rt: RedisRuntime,
    pub hop: HopKey,
    /// The shared secret, for the keys derived from it.
    secret: Vec<u8>,
    /// The records of the sessions this replica owns, to write back after Redis lost them.
    owned: DashMap<Arc<str>, SessionRecord>,
    /// Owners of sessions held elsewhere, as last looked up.
    routes: DashMap<Arc<str>, Route>,
    /// Sessions being rebuilt here after a takeover; receivers learn when that is over.
    adopting: DashMap<Arc<str>, watch::Receiver<bool>>,
    redis_ok: AtomicBool,
    draining: AtomicBool,
    drain_timeout: Duration,
    /// Where Streamable sessions' replay logs are copied (`--redis-replay`).
    mirror: Option<Arc<super::replay::RedisMirror>>,
    /// The heartbeat task, stopped before leaving (a beat in flight must not register
    /// this replica again after it left).
    heartbeat: std::sync::Mutex<Option<tokio::task::AbortHandle>>,
    /// The heartbeat and ended-session tasks, stopped by [`Membership::stop`].
    tasks: std::sync::Mutex<Vec<tokio::task::AbortHandle>>,
}

/// Why this replica cannot take new sessions or reach other replicas' ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unready {
    RedisUnreachable,
    Draining,
}

impl Unready {
    pub fn as_str(self) -> &'static str {
        match self {
            Unready::RedisUnreachable => "redis unreachable",
            Unready::Draining => "draining",
        }
    }
}

impl Membership {
    /// Read the secret files, connect to Redis, register, and start the heartbeat, the
    /// record refresher and the listener for ended sessions. Fails when Redis is
    /// unreachable at startup.
    /// `replay_cap`: entries kept per session with `--redis-replay`.
    pub fn start(
        cfg: &Replicas,
        sessions: Arc<SessionMap>,
        replay_cap: usize,
    ) -> std::io::Result<Arc<Membership>> {
        let secret = read_secret(&cfg.secret_file, "--replica-secret-file")?;
        if secret.len() < 16 {
            return Err(std::io::Error::other(
                "--replica-secret-file: the secret must be at least 16 bytes",
            ));
        }
        let password = match &cfg.redis_password_file {
            Some(p) => Some(
                String::from_utf8_lossy(&read_secret(p, "--redis-password-file")?).into_owned(),
            ),
            None => None,
        };
        let rt = RedisRuntime::new()?;
        let target = RedisTarget {
            url: cfg.redis.clone(),
            password,
            timeout: Duration::from_secs(1),
        };
        let ttls = Ttls::default();
        let keys = Keys::new(&cfg.key_prefix);
        let id: Arc<str> = crate::hex::random(8).into();
        let address = cfg.address.as_str().trim_end_matches('/').to_owned();
        let dir = rt
            .block_on({
                let (id, address) = (id.clone(), address.clone());
                async move {
                    let dir = Directory::connect(&target, keys, ttls).await?;
                    dir.heartbeat(&id, &address).await?;
                    Ok::<_, DirectoryError>(dir)
                }
            })
            .map_err(|e| std::io::Error::other(format!("--redis: {e}")))?;
        let (mirror, writer) = match cfg.replay {
            true => {
                let (m, w) = super::replay::RedisMirror::new(dir.clone(), replay_cap);
                (Some(m), Some(w))
            }
            false => (None, None),
        };
        let m = Arc::new(Membership {
            id,
            address: cfg.address.clone(),
            dir,
            rt,
            hop: HopKey::new(&secret),
            secret: secret.clone(),
            owned: DashMap::new(),
            routes: DashMap::new(),
            adopting: DashMap::new(),
            redis_ok: AtomicBool::new(true),
            draining: AtomicBool::new(false),
            drain_timeout: cfg.drain_timeout,
            mirror,
            heartbeat: std::sync::Mutex::new(None),
            tasks: std::sync::Mutex::new(Vec::new()),
        });
        tracing::info!(replica = %m.id, address = %m.address, "registered in the replica directory");
        let heartbeat =
            m.rt.spawn(Membership::heartbeat_loop(m.clone(), sessions.clone()));
        *m.heartbeat.lock().expect("not poisoned") = Some(heartbeat.abort_handle());
        let mut tasks = vec![
            heartbeat,
            m.rt.spawn(Membership::ended_loop(m.clone(), sessions.watch_ends())),
        ];
        tasks.extend(writer.map(|w| m.rt.spawn(w)));
        *m.tasks.lock().expect("not poisoned") = tasks.iter().map(|t| t.abort_handle()).collect();
        Ok(m)
    }

    /// Why new sessions are refused here, if they are.
    pub fn unready(&self) -> Option<Unready> {
        if self.draining.load(Ordering::Relaxed) {
            Some(Unready::Draining)
        } else if !self.redis_ok.load(Ordering::Relaxed) {
            Some(Unready::RedisUnreachable)
        } else {
            None
        }
    }

    /// Run `op` against the directory on the Redis runtime, failing fast while Redis is
    /// known to be down.
    async fn on_redis<T: Send + 'static>(
        &self,
        op: impl Future<Output = Result<T, DirectoryError>> + Send + 'static,
    ) -> Result<T, DirectoryError> {
        if !self.redis_ok.load(Ordering::Relaxed) {
            return Err(unreachable());
        }
        let joined = tokio::time::timeout(OP_DEADLINE, self.rt.spawn(op)).await;
        let result = match joined {
            Ok(Ok(r)) => r,
            Ok(Err(_)) | Err(_) => Err(unreachable()),
        };
        if let Err(e) = &result {
            if self.redis_ok.swap(false, Ordering::Relaxed) {
                tracing::warn!("replica directory unreachable: {e}");
            }
        }
        result
    }

    /// Record a new session owned here, before its client learns its id.
    pub async fn register(&self, record: SessionRecord) -> Result<(), DirectoryError> {
        let dir = self.dir.clone();
        let rec = record.clone();
        self.on_redis(async move { dir.create_session(&rec).await })
            .await?;
        self.owned.insert(record.id.as_str().into(), record);
        Ok(())
    }

    /// The client's `notifications/initialized`, for a takeover to replay (best effort: a
    /// lost write only means a taken-over upstream session does not hear it again).
    pub fn remember_initialized(&self, id: &str, raw: bytes::Bytes) {
        let Some(mut rec) = self.owned.get_mut(id) else {
            return;
        };
        rec.initialized = Some(raw.clone());
        let (dir, owner, id) = (self.dir.clone(), self.id.clone(), id.to_owned());
        self.rt.spawn(async move {
            let update = super::SessionUpdate::Initialized(raw);
            if let Err(e) = dir.update_session(&id, &owner, update).await {
                tracing::warn!(session = %id, "recording notifications/initialized failed: {e}");
            }
        });
    }

    /// Wait while a takeover of `id` is being completed on this replica.
    pub async fn settled(&self, id: &str) {
        let Some(mut rx) = self.adopting.get(id).map(|r| r.value().clone()) else {
            return;
        };
        let _ = tokio::time::timeout(OP_DEADLINE * 10, rx.wait_for(|done| *done)).await;
    }

    /// Where session `id` of a `client` client holding `credential` (hex digest) lives.
    pub async fn locate(
        self: &Arc<Self>,
        id: &str,
        credential: Option<String>,
        client: Transport,
    ) -> Result<Located, DirectoryError> {
        if let Some(r) = self.routes.get(id) {
            if r.credential == credential && r.client == client && r.at.elapsed() < ROUTE_TTL {
                return Ok(Located::Owner {
                    id: r.owner.clone(),
                    address: r.address.clone(),
                });
            }
        }
        for _ in 0..3 {
            let dir = self.dir.clone();
            let sid = id.to_owned();
            let Some(rec) = self
                .on_redis(async move { dir.lookup_session(&sid).await })
                .await?
            else {
                return Ok(Located::Nowhere);
            };
            if rec.credential != credential || rec.client_transport != client {
                return Ok(Located::Nowhere);
            }
            if *rec.owner == *self.id {
                if self.draining.load(Ordering::Relaxed) {
                    // Ended here by the drain, its record kept: a live replica takes it over.
                    return self.any_peer().await;
                }
                // Ours, yet not here: it ended a moment ago (its record is on its way out).
                return Ok(Located::Nowhere);
            }
            let dir = self.dir.clone();
            let owner = rec.owner.clone();
            let address = self
                .on_redis(async move { dir.replica_address(&owner).await })
                .await?;
            if let Some(address) = address {
                return match Url::parse(&address) {
                    Ok(address) => {
                        let route = Route {
                            owner: rec.owner.clone(),
                            address: address.clone(),
                            credential,
                            client,
                            at: std::time::Instant::now(),
                        };
                        self.routes.insert(id.into(), route);
                        Ok(Located::Owner {
                            id: rec.owner,
                            address,
                        })
                    }
                    Err(e) => Err(DirectoryError::BadRecord {
                        key: format!("replica {}", rec.owner),
                        why: format!("address {address:?}: {e}"),
                    }),
                };
            }
            if client == Transport::Legacy {
                // Its one stream died with its replica; the client reconnects.
                return Ok(Located::Nowhere);
            }
            match self.claim(rec, OwnerSeen::Expired).await? {
                Located::Busy | Located::Owner { .. } => continue,
                found => return Ok(found),
            }
        }
        Ok(Located::Nowhere)
    }

    /// The route to `id` proved wrong (its owner refused the connection, or answered 404).
    pub fn forget_route(&self, id: &str) {
        self.routes.remove(id);
    }

    /// Some live replica other than this one.
    async fn any_peer(&self) -> Result<Located, DirectoryError> {
        let dir = self.dir.clone();
        let live = self
            .on_redis(async move { dir.live_replicas().await })
            .await?;
        let peer = live.into_iter().find(|r| *r.id != *self.id);
        Ok(
            match peer.and_then(|r| Some((Url::parse(&r.address).ok()?, r.id))) {
                Some((address, id)) => Located::Owner { id, address },
                None => Located::Nowhere,
            },
        )
    }

    /// `--drain-timeout`.
    pub fn drain_timeout(&self) -> Duration {
        self.drain_timeout
    }

    /// Whether this replica is draining (SIGTERM).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// The owner `owner` refused a relayed request's connection: take `id` over if it still
    /// owns it.
    pub async fn owner_unreachable(
        self: &Arc<Self>,
        id: &str,
        owner: &str,
        credential: Option<String>,
    ) -> Result<Located, DirectoryError> {
        let dir = self.dir.clone();
        let sid = id.to_owned();
        let rec = self
            .on_redis(async move { dir.lookup_session(&sid).await })
            .await?;
        match rec {
            Some(rec)
                if rec.owner == owner
                    && rec.credential == credential
                    && rec.client_transport == Transport::Streamable =>
            {
                self.claim(rec, OwnerSeen::Unreachable).await
            }
            // Someone took it over since this replica last looked: follow it there.
            Some(rec) if rec.owner != owner => {
                self.locate(id, credential, rec.client_transport).await
            }
            _ => Ok(Located::Nowhere),
        }
    }

    /// Take `rec` over from its dead owner, atomically.
    async fn claim(
        self: &Arc<Self>,
        mut rec: SessionRecord,
        seen: OwnerSeen,
    ) -> Result<Located, DirectoryError> {
        let key: Arc<str> = rec.id.as_str().into();
        let (done, rx) = watch::channel(false);
        if self.adopting.insert(key.clone(), rx).is_some() {
            return Ok(Located::Busy);
        }
        // From here on, dropping the adoption unblocks waiters, whatever happens.
        let dead = rec.owner.clone();
        rec.owner = self.id.to_string();
        let adoption = Adoption {
            record: rec,
            membership: self.clone(),
            done,
        };
        let (dir, id, me) = (self.dir.clone(), key.to_string(), self.id.clone());
        let outcome = self
            .on_redis(async move { dir.take_over(&id, &dead, &me, seen).await })
            .await?;
        match outcome {
            Takeover::Taken { epoch } => {
                let mut adoption = adoption;
                adoption.record.epoch = epoch;
                tracing::info!(session = %key, epoch, "took the session over from a replica that is gone");
                Ok(Located::Adopt(adoption))
            }
            Takeover::OwnerAlive | Takeover::OwnerChanged { .. } => Ok(Located::Busy),
            Takeover::Gone => Ok(Located::Nowhere),
        }
    }

    /// An adopted session could not be rebuilt: its record goes, and its client starts over.
    pub fn abandon(&self, id: &str) {
        self.forget(id.into(), EndReason::UpstreamGone, Transport::Streamable);
    }

    /// Stop taking new sessions (SIGTERM); the readiness probe says so.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Leave the group (a clean exit): other replicas see this one gone at once and take
    /// its Streamable sessions over at their next request.
    pub async fn leave(&self) {
        let beating = self
            .heartbeat
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(h) = beating {
            h.abort();
        }
        let (dir, id) = (self.dir.clone(), self.id.clone());
        match self
            .on_redis(async move { dir.deregister(&id).await })
            .await
        {
            Ok(()) => tracing::info!(replica = %self.id, "left the replica directory"),
            Err(e) => tracing::warn!("leaving the replica directory failed: {e}"),
        }
    }

    /// The sealer of sessionless `requestState`s: they name this replica, and every replica
    /// can check them (a retry landing elsewhere is relayed here).
    pub fn state_sealer(&self) -> crate::sessionless::Sealer {
        crate::sessionless::Sealer::shared(&self.secret, &self.id)
    }

    /// Where another replica is reached, if it is alive.
    pub async fn address_of(&self, replica: &str) -> Result<Option<Url>, DirectoryError> {
        let (dir, id) = (self.dir.clone(), replica.to_owned());
        let address = self
            .on_redis(async move { dir.replica_address(&id).await })
            .await?;
        Ok(address.and_then(|a| Url::parse(&a).ok()))
    }

    /// Where a Streamable session owned here copies its replay log (`--redis-replay`).
    pub fn mirror(&self) -> Option<Arc<dyn crate::session::Mirror>> {
        self.mirror
            .clone()
            .map(|m| m as Arc<dyn crate::session::Mirror>)
    }

    /// The replay log another replica kept for `id` (empty without `--redis-replay`).
    pub async fn mirrored(&self, id: &str) -> Result<crate::session::Mirrored, DirectoryError> {
        if self.mirror.is_none() {
            return Ok(crate::session::Mirrored::default());
        }
        let (dir, id) = (self.dir.clone(), id.to_owned());
        self.on_redis(async move { super::replay::read(&dir, &id).await })
            .await
    }

    /// Stop heartbeating and listening (the process, or an embedded bridge, is done).
    pub fn stop(&self) {
        for t in self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            t.abort();
        }
    }

    /// A session ended here: its record goes — except a Streamable session ended by this
    /// replica's shutdown, whose record stays for another replica to take over.
    fn forget(&self, id: Arc<str>, reason: EndReason, client: Transport) {
        if self.owned.remove(&id).is_none() {
            return;
        }
        if reason == EndReason::Shutdown && client == Transport::Streamable {
            return;
        }
        let (dir, owner, mirrored) = (self.dir.clone(), self.id.clone(), self.mirror.is_some());
        self.rt.spawn(async move {
            if let Err(e) = dir.delete_session(&id, &owner).await {
                tracing::warn!(session = %id, "deleting the session record failed: {e}");
            }
            if mirrored {
                if let Err(e) = super::replay::remove(&dir, &id).await {
                    tracing::warn!(session = %id, "deleting the session's replay log failed: {e}");
                }
            }
        });
    }

    async fn ended_loop(self: Arc<Self>, mut ends: mpsc::UnboundedReceiver<Ended>) {
        while let Some(e) = ends.recv().await {
            let client = match e.client {
                crate::transport::Transport::LegacySse => Transport::Legacy,
                _ => Transport::Streamable,
            };
            self.forget(e.id, e.reason, client);
        }
    }

    /// Heartbeat a few times per replica TTL; refresh every record a few times per session
    /// TTL, and at once after Redis was unreachable (it may have restarted empty).
    async fn heartbeat_loop(self: Arc<Self>, sessions: Arc<SessionMap>) {
        let ttls = self.dir.ttls();
        let beat = ttls.replica / 3;
        let refresh_every = (ttls.session / 3).as_secs().max(1) / beat.as_secs().max(1);
        let address = self.address.as_str().trim_end_matches('/').to_owned();
        let mut tick = tokio::time::interval(beat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut beats: u64 = 0;
        loop {
            tick.tick().await;
            if self.draining.load(Ordering::Relaxed) {
                return;
            }
            beats += 1;
            self.routes.retain(|_, r| r.at.elapsed() < ROUTE_TTL);
            // Our own registration gone although we kept it alive: Redis restarted empty
            // between two beats (an outage too short for a beat to fail).
            let beat = async {
                let registered = self.dir.is_alive(&self.id).await?;
                self.dir.heartbeat(&self.id, &address).await?;
                Ok::<_, DirectoryError>(registered)
            };
            let (ok, lost) = match tokio::time::timeout(OP_DEADLINE, beat).await {
                Ok(Ok(registered)) => (true, !registered),
                _ => (false, false),
            };
            let was_ok = self.redis_ok.swap(ok, Ordering::Relaxed);
            match (was_ok, ok) {
                (true, false) => tracing::warn!("replica directory unreachable: heartbeat failed"),
                (false, true) => {
                    tracing::info!(
                        "replica directory reachable again: writing back session records"
                    );
                    self.refresh_all(&sessions).await;
                }
                (true, true) if lost => {
                    tracing::warn!(
                        "the replica directory lost this replica's keys (Redis restarted?): writing back session records"
                    );
                    self.refresh_all(&sessions).await;
                }
                (true, true) if beats.is_multiple_of(refresh_every.max(1)) => {
                    self.refresh_all(&sessions).await
                }
                _ => {}
            }
        }
    }

    /// Keep every owned record alive; write back a lost one; drop a session another replica
    /// has taken over (fencing).
    async fn refresh_all(&self, sessions: &SessionMap) {
        let owned: Vec<(Arc<str>, SessionRecord)> = self
            .owned
            .iter()
            .map(|r| (r.key().clone(), r.value().clone()))
            .collect();
        for (id, rec) in owned {
            let result = async {
                if self.mirror.is_some() {
                    super::replay::keep(&self.dir, &id).await?;
                }
                if self.dir.refresh_session(&id, &self.id).await? {
                    return Ok(true);
                }
                match self.dir.lookup_session(&id).await? {
                    None => self.dir.create_session(&rec).await.map(|_| true),
                    Some(now) => Ok(now.owner == *self.id),
                }
            }
            .await;
            match result {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(session = %id, "another replica took this session over: ending it here");
                    self.owned.remove(&id);
                    if let Some(s) = sessions.get(&id) {
                        s.end(EndReason::TakenOver);
                    }
                }
                Err(e) => {
                    tracing::warn!(session = %id, "refreshing the session record failed: {e}");
                    return;
                }
            }
        }
    }
}

fn unreachable() -> DirectoryError {
    DirectoryError::Redis(redis::RedisError::from((
        redis::ErrorKind::Io,
        "replica directory unreachable",
    )))
}

fn read_secret(path: &Path, flag: &str) -> std::io::Result<Vec<u8>> {
    let raw = std::fs::read(path)
        .map_err(|e| std::io::Error::other(format!("{flag} {}: {e}", path.display())))?;
    Ok(raw.trim_ascii().to_vec())
}

/// A one-thread tokio runtime for Redis I/O, shut down without blocking when dropped (it
/// may be dropped inside another runtime).
struct RedisRuntime(Option<tokio::runtime::Runtime>);

impl RedisRuntime {
    fn new() -> std::io::Result<RedisRuntime> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("mcp-bridge-redis")
            .enable_all()
            .build()?;
        Ok(RedisRuntime(Some(rt)))
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.0.as_ref().expect("running").handle()
    }

    fn spawn<F>(&self, fut: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle().spawn(fut)
    }

    /// Run `fut` to completion from synchronous code, even inside another runtime (startup).
    fn block_on<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let handle = self.handle().clone();
        std::thread::scope(|s| {
            s.spawn(move || handle.block_on(fut))
                .join()
                .expect("startup task panicked")
        })
    }
}

impl Drop for RedisRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}
