//! Idle sessions: open many initialised sessions (bounded concurrency), hold them, close them.

use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::client::{ClientKind, Session};

pub struct Opened {
    pub sessions: Vec<Session>,
    pub errors: u64,
    pub error_samples: Vec<String>,
    pub elapsed: Duration,
}

/// Opens `n` sessions, `concurrency` at a time, each initialised (and, with `listen`, with
/// its Streamable standalone GET stream open). Gives up on the rest after `deadline`.
pub async fn open(
    kind: ClientKind,
    url: &str,
    n: usize,
    concurrency: usize,
    listen: bool,
    deadline: Duration,
) -> Opened {
    let http = crate::client::http_client();
    let url: Rc<str> = url.into();
    let start = Instant::now();
    let give_up = start + deadline;
    let mut out = Opened {
        sessions: Vec::with_capacity(n),
        errors: 0,
        error_samples: Vec::new(),
        elapsed: Duration::ZERO,
    };
    let mut results = futures_util::stream::iter(0..n)
        .map(|_| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                if Instant::now() > give_up {
                    return Err("gave up: open deadline passed".to_string());
                }
                let left = give_up.saturating_duration_since(Instant::now());
                let open = async {
                    let mut s = Session::open(kind, http, url).await?;
                    if listen {
                        s.listen().await?;
                    }
                    Ok::<_, String>(s)
                };
                tokio::time::timeout(left.max(Duration::from_secs(1)), open)
                    .await
                    .unwrap_or_else(|_| Err("open timed out".into()))
            }
        })
        .buffer_unordered(concurrency.max(1));
    while let Some(r) = results.next().await {
        match r {
            Ok(s) => out.sessions.push(s),
            Err(e) => {
                out.errors += 1;
                if out.error_samples.len() < 5 {
                    out.error_samples.push(e);
                }
            }
        }
    }
    out.elapsed = start.elapsed();
    out
}

/// Closes every session (legacy: drop the stream; Streamable: DELETE). Returns the errors.
pub async fn close(sessions: Vec<Session>, concurrency: usize) -> (u64, Vec<String>, Duration) {
    let start = Instant::now();
    let mut errors = 0;
    let mut samples = Vec::new();
    let mut results = futures_util::stream::iter(sessions)
        .map(|s| async move {
            tokio::time::timeout(Duration::from_secs(10), s.close())
                .await
                .unwrap_or_else(|_| Err("close timed out".into()))
        })
        .buffer_unordered(concurrency.max(1));
    while let Some(r) = results.next().await {
        if let Err(e) = r {
            errors += 1;
            if samples.len() < 5 {
                samples.push(e);
            }
        }
    }
    (errors, samples, start.elapsed())
}
