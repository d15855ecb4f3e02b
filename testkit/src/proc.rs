//! Child processes for tests and the benchmark: spawned with their output collected (a bounded
//! tail of stdout and stderr, and stdout line by line), waited on by event with a timeout, and
//! killed and reaped when dropped, so a failing assertion never leaks one.
//!
//! ```no_run
//! use std::process::Command;
//! use std::time::Duration;
//! use mcp_testkit::proc::{Proc, ProcOptions};
//!
//! let mut cmd = Command::new("mcp-bridge");
//! cmd.args(["--upstream", "http://127.0.0.1:3000/mcp", "--listen", "127.0.0.1:0"]);
//! let mut bridge = Proc::spawn("bridge", cmd, ProcOptions::default()).unwrap();
//! let line = bridge.wait_line("mcp-bridge listening on ", Duration::from_secs(10)).unwrap();
//! # let _ = line;
//! ```

use std::collections::VecDeque;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How much of a child's output is kept (the tail; older bytes are counted, then dropped).
pub const TAIL_BYTES: usize = 256 * 1024;

/// How a child is started.
#[derive(Default, Clone, Debug)]
pub struct ProcOptions {
    /// Give the child a stdin pipe (`Proc::send_line`); otherwise its stdin is null.
    pub stdin: bool,
    /// Write stderr to this file instead of collecting it.
    pub stderr_log: Option<PathBuf>,
    /// Append `<pid> <name>` to this file, so a supervisor killed mid-run can end the child.
    pub pid_file: Option<PathBuf>,
}

/// A child process whose output is collected; killed and reaped on drop.
pub struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    output: Arc<Output>,
    lines: mpsc::Receiver<String>,
    readers: Vec<thread::JoinHandle<()>>,
}

/// The collected output, with a condition variable signalled on every change (new bytes, or a
/// stream reaching its end) so waiters wake on events instead of polling.
#[derive(Default)]
struct Output {
    state: Mutex<Tail>,
    changed: Condvar,
}

#[derive(Default)]
struct Tail {
    buf: VecDeque<u8>,
    dropped: usize,
    /// Output streams that reached their end.
    ended: usize,
}

impl Output {
    fn push(&self, data: &[u8]) {
        let mut t = self.state.lock().unwrap();
        t.buf.extend(data);
        if t.buf.len() > TAIL_BYTES {
            let excess = t.buf.len() - TAIL_BYTES;
            t.buf.drain(..excess);
            t.dropped += excess;
        }
        self.changed.notify_all();
    }

    fn end(&self) {
        self.state.lock().unwrap().ended += 1;
        self.changed.notify_all();
    }
}

impl Tail {
    fn text(&self) -> String {
        let (a, b) = self.buf.as_slices();
        let s = String::from_utf8_lossy(&[a, b].concat()).into_owned();
        if self.dropped > 0 {
            format!("[... {} earlier bytes dropped ...]\n{s}", self.dropped)
        } else {
            s
        }
    }
}

impl Proc {
    /// Starts `cmd` (stdout always piped). `name` labels errors and reports.
    pub fn spawn(name: &str, mut cmd: Command, opts: ProcOptions) -> Result<Proc, String> {
        cmd.stdin(if opts.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped());
        match &opts.stderr_log {
            Some(path) => {
                let log = fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
                cmd.stderr(Stdio::from(log))
            }
            None => cmd.stderr(Stdio::piped()),
        };
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {name} ({cmd:?}): {e}"))?;
        if let Some(pids) = &opts.pid_file {
            if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(pids) {
                let _ = writeln!(f, "{} {name}", child.id());
            }
        }
        let output = Arc::new(Output::default());
        let (tx, lines) = mpsc::channel();
        let mut readers = vec![read_lines(child.stdout.take(), output.clone(), tx)];
        if let Some(stderr) = child.stderr.take() {
            readers.push(read_bytes(stderr, output.clone()));
        }
        Ok(Proc {
            name: name.to_string(),
            stdin: child.stdin.take(),
            child,
            output,
            lines,
            readers,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if the child has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The collected output so far (stdout and, unless logged to a file, stderr).
    pub fn output(&self) -> String {
        self.output.state.lock().unwrap().text()
    }

    /// The next stdout line starting with `prefix` (earlier lines are passed over), within
    /// `timeout`. Fails at once when stdout ends first (the child is exiting).
    pub fn wait_line(&mut self, prefix: &str, timeout: Duration) -> Result<String, String> {
        let until = Instant::now() + timeout;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => return Ok(l),
                Ok(_) => continue,
                Err(e) => {
                    let why = match e {
                        mpsc::RecvTimeoutError::Timeout => format!("within {timeout:?}"),
                        mpsc::RecvTimeoutError::Disconnected => "before stdout ended".into(),
                    };
                    let status = self.wait_exit(Duration::from_secs(2));
                    return Err(format!(
                        "{}: no {prefix:?} line {why} (exit status {status:?})",
                        self.name
                    ));
                }
            }
        }
    }

    /// Waits until the collected output contains `needle`, within `timeout`. Fails at once when
    /// every output stream has ended without it.
    pub fn wait_output(&mut self, needle: &str, timeout: Duration) -> Result<(), String> {
        let until = Instant::now() + timeout;
        let streams = self.readers.len();
        let mut tail = self.output.state.lock().unwrap();
        loop {
            if tail.text().contains(needle) {
                return Ok(());
            }
            let left = until.saturating_duration_since(Instant::now());
            if tail.ended == streams || left.is_zero() {
                let why = if left.is_zero() {
                    format!("within {timeout:?}")
                } else {
                    "before its output ended".into()
                };
                return Err(format!("{}: no {needle:?} {why}", self.name));
            }
            tail = self.output.changed.wait_timeout(tail, left).unwrap().0;
        }
    }

    /// Waits up to `timeout` for the child to exit by itself; returns its status if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + timeout;
        // Every output stream ending is the event that announces an exit.
        self.output_ended(timeout);
        // The streams may close a moment before the exit can be reaped.
        loop {
            if let Some(st) = self.exited() {
                return Some(st);
            }
            if Instant::now() >= until {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the child (if still running), reaps it and waits for its output to be read in full;
    /// returns the stdout lines not yet consumed by `wait_line`.
    pub fn stop(&mut self) -> Vec<String> {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A grandchild may still hold the pipes open: wait a little for the output to end,
        // then leave the readers to finish on their own.
        if self.output_ended(Duration::from_secs(2)) {
            for r in self.readers.drain(..) {
                let _ = r.join();
            }
        }
        self.readers.clear();
        self.lines.try_iter().collect()
    }

    /// Waits up to `timeout` for every output stream to reach its end.
    fn output_ended(&self, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        let streams = self.readers.len();
        let mut tail = self.output.state.lock().unwrap();
        while tail.ended < streams {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            tail = self.output.changed.wait_timeout(tail, left).unwrap().0;
        }
        true
    }

    /// Writes one line to the child's stdin (started with `ProcOptions::stdin`).
    pub fn send_line(&mut self, line: &str) -> Result<(), String> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| format!("{}: no stdin pipe", self.name))?;
        writeln!(stdin, "{line}")
            .and_then(|_| stdin.flush())
            .map_err(|e| format!("{}: stdin: {e}", self.name))
    }

    /// The last `max_lines` lines of output (ANSI colour codes removed), framed with the name
    /// and pid, for failure messages.
    pub fn report(&self, max_lines: usize) -> String {
        let text = strip_ansi(&self.output());
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(max_lines);
        format!(
            "----- {} (pid {}), last {} of {} lines -----\n{}\n----- end {} -----",
            self.name,
            self.child.id(),
            lines.len() - start,
            lines.len(),
            lines[start..].join("\n"),
            self.name
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reads stdout line by line into the tail and the line channel.
fn read_lines(
    stdout: Option<std::process::ChildStdout>,
    output: Arc<Output>,
    tx: mpsc::Sender<String>,
) -> thread::JoinHandle<()> {
    let stdout = stdout.expect("stdout is piped");
    thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut line = Vec::new();
        while let Ok(n) = r.read_until(b'\n', &mut line) {
            if n == 0 {
                break;
            }
            output.push(&line);
            let _ = tx.send(String::from_utf8_lossy(&line).trim_end().to_string());
            line.clear();
        }
        output.end();
    })
}

/// Reads stderr as it comes (no line buffering: a partial line still shows in a report).
fn read_bytes(
    mut stderr: impl Read + Send + 'static,
    output: Arc<Output>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            output.push(&buf[..n]);
        }
        output.end();
    })
}

/// `s` without ANSI CSI sequences (colour codes in log lines).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            // CSI: parameters and intermediates, then one final byte in @..~
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn ansi_colour_codes_are_stripped() {
        assert_eq!(
            strip_ansi("\u{1b}[2mtime\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m x"),
            "time  INFO x"
        );
    }

    #[test]
    fn waits_for_a_line_and_for_output_on_either_stream() {
        let mut p = Proc::spawn(
            "sh",
            sh("echo one; echo 'ready on stderr' >&2; echo 'url http://x'; sleep 30"),
            ProcOptions::default(),
        )
        .unwrap();
        let line = p.wait_line("url ", Duration::from_secs(10)).unwrap();
        assert_eq!(line, "url http://x");
        p.wait_output("ready on stderr", Duration::from_secs(10))
            .unwrap();
        assert!(p.exited().is_none());
        p.stop();
        assert!(p.exited().is_some(), "stopped means reaped");
    }

    #[test]
    fn an_exit_ends_the_wait_at_once_with_its_status() {
        let mut p = Proc::spawn("sh", sh("echo bye; exit 3"), ProcOptions::default()).unwrap();
        let err = p.wait_line("never", Duration::from_secs(30)).unwrap_err();
        assert!(err.contains("before stdout ended"), "{err}");
        assert_eq!(p.exited().and_then(|s| s.code()), Some(3));
        let err = p.wait_output("never", Duration::from_secs(30)).unwrap_err();
        assert!(err.contains("before its output ended"), "{err}");
        assert!(p.report(5).contains("bye"));
    }

    #[test]
    fn stdin_lines_reach_the_child() {
        let opts = ProcOptions {
            stdin: true,
            ..ProcOptions::default()
        };
        let mut p = Proc::spawn("sh", sh("read l; echo \"got $l\""), opts).unwrap();
        p.send_line("stats").unwrap();
        assert_eq!(
            p.wait_line("got ", Duration::from_secs(10)).unwrap(),
            "got stats"
        );
    }

    #[test]
    fn the_tail_is_bounded() {
        let out = Output::default();
        out.push(&vec![b'a'; TAIL_BYTES + 10]);
        let text = out.state.lock().unwrap().text();
        assert!(text.starts_with("[... 10 earlier bytes dropped ...]"));
    }
}
