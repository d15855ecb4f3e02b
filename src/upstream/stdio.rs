//! Upstream adapter for stdio servers: one process per session (see [`super::process`]),
//! newline-delimited JSON on its stdin and stdout, its stderr into the session's log.
//!
//! Like a legacy SSE upstream, stdout carries no relation metadata: every message is
//! delivered as `Via::SharedStream`. When the process exits, the session ends.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStderr, ChildStdin, ChildStdout};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{AbortHandle, JoinHandle};

use futures_util::future::LocalBoxFuture;

use super::process::Running;
use super::{Backpressure, Connection, ForwardHeaders, Opening, Sink, UpstreamShared, Via};
use crate::error::UpstreamError;
use crate::jsonrpc::Message;
use crate::observe::Difference;
use crate::transport::Transport;

/// Lines queued for the server's stdin before a client's request waits.
const STDIN_QUEUE: usize = 16;
/// Longest stderr line logged; the rest of the line is cut.
const STDERR_LINE: usize = 1024;
/// Stderr lines kept to explain an exit.
const STDERR_TAIL: usize = 8;
/// Stderr rate limit: a burst of this many lines, then this many per second.
const STDERR_BURST: f64 = 50.0;
const STDERR_PER_SEC: f64 = 20.0;
/// How long an exiting server gets to finish its stderr and exit status, for the log.
const EXIT_REPORT_WAIT: Duration = Duration::from_millis(500);

pub struct Upstream {
    shared: Arc<UpstreamShared>,
    sink: Sink,
    stdin: mpsc::Sender<Line>,
    process: Rc<RefCell<Option<Running>>>,
    tasks: RefCell<Vec<AbortHandle>>,
}

struct Line {
    bytes: Bytes,
    written: oneshot::Sender<std::io::Result<()>>,
}

/// Take a process (warm or new), start relaying its stdout and stderr, and write the
/// session's first message.
pub(super) async fn open(o: &Opening) -> Result<Rc<dyn Connection>, UpstreamError> {
    let up = Upstream::open(o.shared.clone(), o.sink.clone(), o.first.clone()).await?;
    Ok(up)
}

impl Connection for Upstream {
    fn send(
        self: Rc<Self>,
        msg: Message,
        _headers: ForwardHeaders,
    ) -> LocalBoxFuture<'static, Result<(), UpstreamError>> {
        // A process has no headers: the client's stay with the bridge.
        Box::pin(async move { Upstream::send(&self, msg).await })
    }

    fn close(self: Rc<Self>) -> LocalBoxFuture<'static, ()> {
        Upstream::close(&self);
        Box::pin(async {})
    }
}

impl Upstream {
    async fn open(
        shared: Arc<UpstreamShared>,
        session: Sink,
        first: Message,
    ) -> Result<Rc<Upstream>, UpstreamError> {
        let processes = shared
            .processes
            .as_ref()
            .expect("the stdio adapter runs only with --upstream-command");
        let mut running = processes.take().map_err(UpstreamError::Connect)?;
        let pid = running.pid();
        let pipes = pipes(&mut running).map_err(|e| {
            UpstreamError::Connect(format!("cannot attach to the stdio server's pipes: {e}"))
        })?;
        connected(&session, pid);
        let (tx, rx) = mpsc::channel(STDIN_QUEUE);
        let up = Rc::new(Upstream {
            shared: shared.clone(),
            sink: session.clone(),
            stdin: tx,
            process: Rc::new(RefCell::new(Some(running))),
            tasks: RefCell::default(),
        });
        let tail = Rc::new(RefCell::new(VecDeque::new()));
        let stderr = actix_web::rt::spawn(log_stderr(pipes.2, session.clone(), tail.clone()));
        let reader = Reader {
            session,
            max_line: shared.cfg.max_body,
            process: up.process.clone(),
            tail,
        };
        let stderr_task = stderr.abort_handle();
        up.tasks.borrow_mut().extend([
            actix_web::rt::spawn(write_stdin(pipes.0, rx)).abort_handle(),
            actix_web::rt::spawn(reader.run(pipes.1, stderr)).abort_handle(),
            // Ended with the others: a grandchild may hold stderr open forever.
            stderr_task,
        ]);
        Upstream::send(&up, first).await?;
        Ok(up)
    }

    /// Write one message as one line; resolves once it is in the server's stdin.
    async fn send(&self, msg: Message) -> Result<(), UpstreamError> {
        let mut line = Vec::with_capacity(msg.raw().len() + 1);
        line.extend_from_slice(msg.raw());
        // JSON allows line breaks only as whitespace between tokens (never raw inside a
        // string), so a space in their place keeps the message and the one-line framing.
        let breaks = line.iter().filter(|b| matches!(b, b'\n' | b'\r')).count();
        if breaks > 0 {
            for b in line.iter_mut().filter(|b| matches!(b, b'\n' | b'\r')) {
                *b = b' ';
            }
            difference(
                &self.sink,
                Difference::LineBreaksReplaced,
                Some(&msg),
                &format!("{breaks} line break(s) between JSON tokens replaced by spaces: stdio framing is one message per line"),
            );
        }
        line.push(b'\n');
        let (written, done) = oneshot::channel();
        let queued = async {
            self.stdin
                .send(Line {
                    bytes: line.into(),
                    written,
                })
                .await
                .map_err(|_| ())?;
            done.await.map_err(|_| ())
        };
        let timeout = self.shared.cfg.upstream_timeout;
        match tokio::time::timeout(timeout, queued).await {
            Err(_) => Err(UpstreamError::Timeout(timeout)),
            Ok(Err(())) => Err(UpstreamError::Connect(
                "the stdio server is no longer running".into(),
            )),
            Ok(Ok(Err(e))) => Err(UpstreamError::Connect(format!(
                "cannot write to the stdio server's stdin: {e}"
            ))),
            Ok(Ok(Ok(()))) => Ok(()),
        }
    }

    /// End the session's process: its pipes close now (EOF on stdin), the keeper does
    /// the rest (SIGTERM, SIGKILL, reaping).
    fn close(&self) {
        for t in self.tasks.borrow_mut().drain(..) {
            t.abort();
        }
        self.process.borrow_mut().take();
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.close();
    }
}

fn pipes(r: &mut Running) -> std::io::Result<(ChildStdin, ChildStdout, ChildStderr)> {
    let c = r.child_mut();
    let missing = || std::io::Error::other("pipe missing");
    Ok((
        ChildStdin::from_std(c.stdin.take().ok_or_else(missing)?)?,
        ChildStdout::from_std(c.stdout.take().ok_or_else(missing)?)?,
        ChildStderr::from_std(c.stderr.take().ok_or_else(missing)?)?,
    ))
}

async fn write_stdin(mut stdin: ChildStdin, mut lines: mpsc::Receiver<Line>) {
    while let Some(line) = lines.recv().await {
        let result = async {
            stdin.write_all(&line.bytes).await?;
            stdin.flush().await
        }
        .await;
        let failed = result.is_err();
        let _ = line.written.send(result);
        if failed {
            return;
        }
    }
}

/// What one read of a line gave.
#[derive(Debug, PartialEq, Eq)]
enum Read {
    /// A line (without its line break) is in the buffer.
    Line,
    /// The line is longer than the limit; the buffer holds its first `limit` bytes.
    TooLong,
    Eof,
}

/// Read one line of at most `limit` bytes into `buf`, never buffering more than that.
async fn read_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<Read> {
    buf.clear();
    loop {
        let avail = r.fill_buf().await?;
        if avail.is_empty() {
            return Ok(if buf.is_empty() {
                Read::Eof
            } else {
                Read::Line
            });
        }
        let (take, complete) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (avail.len(), false),
        };
        if buf.len() + take > limit {
            let room = limit - buf.len();
            buf.extend_from_slice(&avail[..room]);
            r.consume(room);
            return Ok(Read::TooLong);
        }
        buf.extend_from_slice(&avail[..take]);
        r.consume(take + usize::from(complete));
        if complete {
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(Read::Line);
        }
    }
}

/// Skip the rest of a line that was too long.
async fn skip_line<R: AsyncBufRead + Unpin>(r: &mut R) -> std::io::Result<()> {
    loop {
        let avail = r.fill_buf().await?;
        if avail.is_empty() {
            return Ok(());
        }
        match avail.iter().position(|&b| b == b'\n') {
            Some(i) => {
                r.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = avail.len();
                r.consume(n);
            }
        }
    }
}

/// Relays stdout to the session, one message per line.
struct Reader {
    session: Sink,
    max_line: usize,
    process: Rc<RefCell<Option<Running>>>,
    tail: Rc<RefCell<VecDeque<String>>>,
}

impl Reader {
    async fn run(self, stdout: ChildStdout, stderr: JoinHandle<()>) {
        let mut stdout = BufReader::with_capacity(64 * 1024, stdout);
        let mut buf = Vec::new();
        let mut answered = false;
        let end = loop {
            match read_line(&mut stdout, &mut buf, self.max_line).await {
                Ok(Read::Line) => {
                    if !answered {
                        answered = true;
                        if let Some(p) = self.process.borrow().as_ref() {
                            p.answered();
                        }
                    }
                    if buf.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    match Message::parse(Bytes::copy_from_slice(&buf)) {
                        // Waits while the client's stream is behind: stdout is not read
                        // meanwhile, so a flooding server is held back by its pipe.
                        Ok(m) => match deliver(&self.session, m) {
                            Some(backpressure) => backpressure.await,
                            None => return,
                        },
                        Err(e) => {
                            let shown = String::from_utf8_lossy(&buf[..buf.len().min(200)]);
                            log_warn(&self.session, &format!("stdio server wrote a line that is not JSON-RPC ({e}): {shown:?}"));
                            difference(
                                &self.session,
                                Difference::MessageDropped,
                                None,
                                &format!(
                                    "stdout line of {} bytes is not JSON-RPC ({e}); not forwarded",
                                    buf.len()
                                ),
                            );
                        }
                    }
                }
                Ok(Read::TooLong) => {
                    let why = format!(
                        "the stdio server wrote a line longer than --max-body ({} bytes)",
                        self.max_line
                    );
                    difference(
                        &self.session,
                        Difference::MessageDropped,
                        None,
                        &format!("{why}; the server is stopped"),
                    );
                    break why;
                }
                Ok(Read::Eof) => break self.exit_report(stderr).await,
                Err(e) => break format!("cannot read the stdio server's stdout: {e}"),
            }
        };
        gone(&self.session, &end);
    }

    /// Why the server went, with its exit status and last stderr lines (logged).
    async fn exit_report(&self, stderr: JoinHandle<()>) -> String {
        // Its stderr ends when it exits; a grandchild may hold it open, hence the bound.
        let _ = tokio::time::timeout(EXIT_REPORT_WAIT, stderr).await;
        let until = Instant::now() + EXIT_REPORT_WAIT;
        let status = loop {
            let status = self.process.borrow_mut().as_mut().and_then(Running::exited);
            if status.is_some() || Instant::now() >= until {
                break status;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let why = match status {
            Some(s) => format!("the stdio server exited ({s})"),
            None => "the stdio server closed its stdout".to_owned(),
        };
        let tail: Vec<String> = self.tail.borrow().iter().cloned().collect();
        log_warn(
            &self.session,
            &format!("{why}; its last stderr lines: {tail:?}"),
        );
        why
    }
}

/// Logs the server's stderr line by line in the session's span: lines cut at
/// `STDERR_LINE` bytes, at most `STDERR_PER_SEC` a second after a burst.
async fn log_stderr(stderr: ChildStderr, session: Sink, tail: Rc<RefCell<VecDeque<String>>>) {
    let mut r = BufReader::new(stderr);
    let mut buf = Vec::new();
    let mut tokens = STDERR_BURST;
    let mut last = Instant::now();
    let mut suppressed = 0u64;
    loop {
        let cut = match read_line(&mut r, &mut buf, STDERR_LINE).await {
            Ok(Read::Line) => false,
            Ok(Read::TooLong) => true,
            Ok(Read::Eof) | Err(_) => break,
        };
        if cut && skip_line(&mut r).await.is_err() {
            break;
        }
        let text = String::from_utf8_lossy(&buf).into_owned();
        {
            let mut t = tail.borrow_mut();
            if t.len() == STDERR_TAIL {
                t.pop_front();
            }
            t.push_back(text.clone());
        }
        let now = Instant::now();
        tokens =
            (tokens + now.duration_since(last).as_secs_f64() * STDERR_PER_SEC).min(STDERR_BURST);
        last = now;
        if tokens < 1.0 {
            suppressed += 1;
            continue;
        }
        tokens -= 1.0;
        if suppressed > 0 {
            log_stderr_line(
                &session,
                &format!("({suppressed} stderr lines not logged: rate limit)"),
                false,
            );
            suppressed = 0;
        }
        log_stderr_line(&session, &text, cut);
    }
    if suppressed > 0 {
        log_stderr_line(
            &session,
            &format!("({suppressed} stderr lines not logged: rate limit)"),
            false,
        );
    }
}

// ---- the session, as this adapter uses it (the only place that touches it) ---------------

fn connected(session: &Sink, pid: u32) {
    if let Some(s) = session.upgrade() {
        s.connected(Transport::Stdio, Some(&format!("pid:{pid}")));
    }
}

/// Deliver one message; the future resolves when the next line may be read (the session's
/// backpressure, bounded by `--slow-reader-timeout`). `None`: the session is gone.
fn deliver(session: &Sink, msg: Message) -> Option<Backpressure> {
    Some(session.upgrade()?.deliver(msg, Via::SharedStream))
}

fn difference(session: &Sink, kind: Difference, msg: Option<&Message>, reason: &str) {
    if let Some(s) = session.upgrade() {
        s.difference(kind, msg, reason);
    }
}

fn gone(session: &Sink, why: &str) {
    if let Some(s) = session.upgrade() {
        s.gone(why);
    }
}

fn log_warn(session: &Sink, text: &str) {
    match session.upgrade() {
        Some(s) => tracing::warn!(parent: &s.span(), "{text}"),
        None => tracing::warn!("{text}"),
    }
}

fn log_stderr_line(session: &Sink, line: &str, cut: bool) {
    let span = session.upgrade().map(|s| s.span());
    tracing::info!(target: "mcp_bridge::upstream::stderr", parent: span.as_ref().and_then(|s| s.id()), cut, "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], limit: usize) -> Vec<(Read, String)> {
        let mut r = BufReader::with_capacity(4, input);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        loop {
            let got = read_line(&mut r, &mut buf, limit).await.unwrap();
            let eof = got == Read::Eof;
            let long = got == Read::TooLong;
            out.push((got, String::from_utf8_lossy(&buf).into_owned()));
            if long {
                skip_line(&mut r).await.unwrap();
            }
            if eof {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn lines_are_split_bounded_and_cut() {
        let got = lines(b"{\"a\":1}\r\nabcdefghijk\nxy\nlast", 8).await;
        assert_eq!(
            got,
            [
                (Read::Line, "{\"a\":1}".into()),
                (Read::TooLong, "abcdefgh".into()),
                (Read::Line, "xy".into()),
                (Read::Line, "last".into()),
                (Read::Eof, String::new()),
            ]
        );
    }
}
