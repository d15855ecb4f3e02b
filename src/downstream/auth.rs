//! Inbound bearer tokens (`--auth-token`, `--auth-token-file`). Only SHA-256 digests of the
//! accepted tokens are kept; a presented token is hashed and compared against every one of
//! them in constant time, so timing says nothing about how close a guess was.

use std::path::Path;

use actix_web::http::header::AUTHORIZATION;
use actix_web::HttpRequest;
use ring::digest::{digest, SHA256};

use crate::config::{check_token, Deploy};
use crate::error::DownstreamError;

/// Who made a request: the digest of the token it presented. Sessions are bound to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Credential(pub [u8; 32]);

impl Credential {
    fn of(token: &[u8]) -> Credential {
        let mut out = [0u8; 32];
        out.copy_from_slice(digest(&SHA256, token).as_ref());
        Credential(out)
    }

    /// Constant-time equality: every byte is looked at whatever the first difference.
    fn ct_eq(&self, other: &Credential) -> bool {
        let diff = self
            .0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("--auth-token-file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("--auth-token-file {path}, line {line}: {reason}")]
    Bad {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("--auth-token-file {0}: no token in it")]
    Empty(String),
}

/// The accepted tokens.
pub struct Auth {
    accepted: Vec<Credential>,
}

impl Auth {
    /// `None` when no token is configured: clients are not authenticated.
    pub fn load(deploy: &Deploy) -> Result<Option<Auth>, TokenFileError> {
        if !deploy.auth_required() {
            return Ok(None);
        }
        let mut accepted: Vec<Credential> = deploy
            .auth_tokens
            .iter()
            .map(|t| Credential::of(t.0.as_bytes()))
            .collect();
        for path in &deploy.auth_token_files {
            accepted.extend(read_token_file(path)?);
        }
        Ok(Some(Auth { accepted }))
    }

    /// The request's credential, or why it has none: 401 for a missing, malformed or
    /// unknown `Authorization: Bearer` token.
    pub fn check(&self, req: &HttpRequest) -> Result<Credential, DownstreamError> {
        let mut values = req.headers().get_all(AUTHORIZATION);
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(DownstreamError::MissingToken);
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or(DownstreamError::InvalidToken)?;
        let presented = Credential::of(token.as_bytes());
        // Compare against every accepted token: no early exit on a match.
        let matched = self
            .accepted
            .iter()
            .fold(false, |hit, c| hit | c.ct_eq(&presented));
        if matched {
            Ok(presented)
        } else {
            Err(DownstreamError::InvalidToken)
        }
    }
}

fn read_token_file(path: &Path) -> Result<Vec<Credential>, TokenFileError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
        path: shown.clone(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        check_token(t).map_err(|e| TokenFileError::Bad {
            path: shown.clone(),
            line: i + 1,
            reason: e.to_string(),
        })?;
        out.push(Credential::of(t.as_bytes()));
    }
    if out.is_empty() {
        return Err(TokenFileError::Empty(shown));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn auth(extra: &[&str]) -> Auth {
        let mut args = vec!["mcp-bridge", "--upstream", "http://127.0.0.1:1/mcp"];
        args.extend_from_slice(extra);
        let cfg = crate::Config::from_args(args).unwrap();
        Auth::load(&cfg.deploy).unwrap().unwrap()
    }

    fn with(value: &str) -> HttpRequest {
        TestRequest::default()
            .insert_header(("authorization", value))
            .to_http_request()
    }

    #[test]
    fn bearer_tokens_are_checked() {
        let a = auth(&["--auth-token", "alpha,beta"]);
        let alpha = a.check(&with("Bearer alpha")).unwrap();
        assert_eq!(a.check(&with("bearer  alpha ")).unwrap(), alpha);
        assert_ne!(a.check(&with("Bearer beta")).unwrap(), alpha);
        for bad in ["Bearer gamma", "Basic alpha", "Bearer", "alpha"] {
            assert!(
                matches!(a.check(&with(bad)), Err(DownstreamError::InvalidToken)),
                "{bad}"
            );
        }
        assert!(matches!(
            a.check(&TestRequest::default().to_http_request()),
            Err(DownstreamError::MissingToken)
        ));
    }

    #[test]
    fn token_files_skip_comments_and_reject_garbage() {
        let dir = std::env::temp_dir().join(format!("mcp-bridge-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good");
        std::fs::write(&good, "# team A\n\nfile-token\n").unwrap();
        let a = auth(&["--auth-token-file", good.to_str().unwrap()]);
        assert!(a.check(&with("Bearer file-token")).is_ok());
        let bad = dir.join("bad");
        std::fs::write(&bad, "ok\nnot ok\n").unwrap();
        let mut args = vec!["mcp-bridge", "--upstream", "http://127.0.0.1:1/mcp"];
        args.extend(["--auth-token-file", bad.to_str().unwrap()]);
        let cfg = crate::Config::from_args(args).unwrap();
        let err = Auth::load(&cfg.deploy).err().unwrap().to_string();
        assert!(err.contains("line 2"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
