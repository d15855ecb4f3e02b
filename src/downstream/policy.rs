//! What the bridge lets a client do, built once at startup from the configuration: who may
//! call (bearer tokens), from which browser origins (CORS), which headers go upstream, and
//! how much one caller or one session may hold at once.

use actix_web::HttpRequest;

use super::auth::{Auth, Credential, TokenFileError};
use super::cors::Cors;
use super::guard::HostAllowList;
use crate::config::{Config, CorsOrigins};
use crate::error::DownstreamError;
use crate::session::{Session, SessionMap};
use crate::upstream::headers::{HeaderFileError, HeaderPolicy};

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error(transparent)]
    TokenFile(#[from] TokenFileError),
    #[error(transparent)]
    HeaderFile(#[from] HeaderFileError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

impl From<PolicyError> for std::io::Error {
    fn from(e: PolicyError) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, e)
    }
}

pub struct Policy {
    auth: Option<Auth>,
    pub cors: Cors,
    pub headers: HeaderPolicy,
    /// The `Host` values the listener answers to.
    pub hosts: HostAllowList,
    max_sessions_per_credential: usize,
    max_requests_per_session: usize,
}

impl Policy {
    /// Reads the token files, `@file` header values and the TLS certificate's names.
    pub fn load(cfg: &Config) -> Result<Policy, PolicyError> {
        let d = &cfg.deploy;
        if d.cors == CorsOrigins::Any {
            tracing::warn!("--cors-origin '*': pages from ANY web origin may call this bridge");
        }
        let auth = Auth::load(d)?;
        if auth.is_none() && !cfg.listen.ip().is_loopback() {
            tracing::warn!(listen = %cfg.listen, "clients are not authenticated (no --auth-token) on a non-loopback address");
        }
        Ok(Policy {
            auth,
            cors: Cors::new(d.cors.clone(), &d.forward_headers),
            headers: HeaderPolicy::load(&d.forward_headers, &d.upstream_headers)?,
            hosts: HostAllowList::new(
                cfg.listen,
                &cfg.allowed_hosts,
                &crate::tls::certificate_names(d)?,
            ),
            max_sessions_per_credential: d.max_sessions_per_credential,
            max_requests_per_session: d.max_requests_per_session,
        })
    }

    /// Whether the bridge checks bearer tokens itself.
    pub fn authenticates(&self) -> bool {
        self.auth.is_some()
    }

    /// The caller's credential; `None` when authentication is off.
    pub fn authenticate(&self, req: &HttpRequest) -> Result<Option<Credential>, DownstreamError> {
        self.auth.as_ref().map(|a| a.check(req)).transpose()
    }

    /// Room for one more session: 503 when the bridge is full, 429 when this credential
    /// already holds its share.
    pub fn admit_session(
        &self,
        sessions: &SessionMap,
        who: Option<Credential>,
    ) -> Result<(), DownstreamError> {
        if !sessions.has_room() {
            return Err(DownstreamError::SessionLimit);
        }
        if let Some(who) = who {
            let held = sessions.count(|s| s.owner() == Some(&who.0));
            if held >= self.max_sessions_per_credential {
                return Err(DownstreamError::CredentialSessionLimit(
                    self.max_sessions_per_credential,
                ));
            }
        }
        Ok(())
    }

    /// Room for `adding` more client requests in flight on `session`, else 429. (Checked
    /// before they are registered: two racing POSTs may overshoot by one batch.)
    pub fn admit_requests(&self, session: &Session, adding: usize) -> Result<(), DownstreamError> {
        if adding > 0 && session.in_flight() + adding > self.max_requests_per_session {
            return Err(DownstreamError::SessionBusy(self.max_requests_per_session));
        }
        Ok(())
    }
}

/// Whether `who` may use `session`: only the credential that created it may (another valid
/// one gets 404, as if the session did not exist — as the SDK servers answer).
pub fn owns(session: &Session, who: Option<Credential>) -> bool {
    session.owner() == who.as_ref().map(|c| &c.0)
}
