//! Stdio server processes: starting them, the warm pool, the stop sequence and reaping.
//!
//! One pool for the whole bridge, kept by one plain thread (the keeper), holding std
//! handles. A session takes a process on its actix worker and turns the pipes into tokio
//! handles there (`from_std`), since tokio pipes belong to the runtime that registers them.
//! Why not one pool per worker: it would keep `--upstream-pool` processes warm on EVERY
//! worker, idle on workers that get no sessions; and forking, polling `waitpid` and sleeping
//! through grace periods belong on a thread of their own, not on the async workers.
//!
//! A process is used by one session only. When the session lets go of it (or its task is
//! dropped, e.g. at shutdown), it goes back to the keeper, which closes nothing more (the
//! session's pipes are already gone, so the server has seen EOF on stdin) and waits: after
//! the grace period SIGTERM, after another SIGKILL, and always `waitpid`, so no zombie stays.

use std::collections::{HashSet, VecDeque};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::StdioCommand;

/// The bridge's own variables a stdio server inherits; everything else (tokens, cloud
/// credentials, MCP_BRIDGE_*) stays out unless given with `--upstream-env`.
const INHERITED: [&str; 7] = ["PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR"];

/// A warm process unused for this long is replaced (servers may hold stale state or tokens).
const POOL_MAX_IDLE: Duration = Duration::from_secs(300);
/// How often the keeper looks at warm processes (did one die?) when nothing is stopping.
const POOL_CHECK: Duration = Duration::from_millis(250);
/// How often a stopping process is polled for its exit.
const STOP_POLL: Duration = Duration::from_millis(10);
/// Retry delays after a start failed or a warm process died: doubling up to the maximum.
const BACKOFF_FIRST: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A warm process up this long shows the command works (failures are forgotten).
const HEALTHY_AFTER: Duration = Duration::from_secs(1);
/// The longest a refill waits for a taken process's first answer (see `State::first_exchange`).
const REFILL_HOLD: Duration = Duration::from_secs(1);
/// Stderr bytes kept from a process that died while warm (for the log).
const DEAD_STDERR: usize = 2048;

/// The processes of one `--upstream-command`.
pub struct Processes {
    inner: Arc<Inner>,
    keeper: Mutex<Option<JoinHandle<()>>>,
}

struct Inner {
    cmd: StdioCommand,
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    pool: VecDeque<Warm>,
    stopping: Vec<Stopping>,
    /// Pids of processes held by sessions.
    in_use: HashSet<u32>,
    /// Processes just handed out whose server has not answered yet, with the time the refill
    /// stops waiting for them: a process start (node: hundreds of ms of CPU) would compete
    /// with the new session's first exchange, and the pool is refilled right after it.
    first_exchange: Vec<(u32, Instant)>,
    /// Why the last start did not give a usable process (for `/readyz`); `None` once one did.
    problem: Option<String>,
    failures: u32,
    retry_at: Option<Instant>,
    shutting_down: bool,
}

struct Warm {
    child: Child,
    since: Instant,
}

struct Stopping {
    child: Child,
    step: Step,
    deadline: Instant,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Step {
    /// Stdin closed; waiting for the server to exit by itself.
    Closed,
    Terminated,
    Killed,
}

/// A process a session holds. Dropping it hands it to the keeper for the stop sequence.
pub struct Running {
    child: Option<Child>,
    inner: Arc<Inner>,
}

impl Processes {
    /// Start the keeper, which fills the pool at once.
    pub fn start(cmd: StdioCommand) -> std::io::Result<Processes> {
        let inner = Arc::new(Inner {
            cmd,
            state: Mutex::default(),
            wake: Condvar::new(),
        });
        let keeper = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name("mcp-bridge-stdio".into())
                .spawn(move || inner.keep())?
        };
        Ok(Processes {
            inner,
            keeper: Mutex::new(Some(keeper)),
        })
    }

    /// A process for a new session: a warm one, or one started now. Blocking only when the
    /// pool is empty (one fork/exec on the caller's thread).
    pub fn take(&self) -> Result<Running, String> {
        loop {
            let warm = {
                let mut st = self.inner.lock();
                if st.shutting_down {
                    return Err("the bridge is shutting down".into());
                }
                let warm = st.pool.pop_front();
                // Held under the same lock, so that the keeper cannot refill in between.
                if let Some(w) = &warm {
                    st.first_exchange
                        .push((w.child.id(), Instant::now() + REFILL_HOLD));
                }
                warm
            };
            self.inner.wake.notify_one(); // refill (once the first exchange is done)
            let mut child = match warm {
                Some(w) => w.child,
                None => break,
            };
            match child.try_wait() {
                Ok(None) => return Ok(self.inner.clone().hand_out(child)),
                // Died while warm: the keeper would have noticed soon; try the next one.
                Ok(Some(status)) => {
                    self.inner.first_exchange_done(child.id());
                    self.inner.died_warm(child, status);
                }
                Err(_) => self.inner.first_exchange_done(child.id()),
            }
        }
        match self.inner.cmd.spawn() {
            Ok(child) => {
                if self.inner.cmd.pool == 0 {
                    // No warm process will ever prove the command healthy: this start does.
                    self.inner.lock().problem = None;
                }
                Ok(self.inner.clone().hand_out(child))
            }
            Err(e) => {
                let why = self.inner.cmd.start_error(&e);
                self.inner.lock().problem = Some(why.clone());
                Err(why)
            }
        }
    }

    /// Why no process can start right now (`None`: they do).
    pub fn problem(&self) -> Option<String> {
        self.inner.lock().problem.clone()
    }

    /// Stop every process (warm, stopping, and still held by sessions, after a grace
    /// period) and wait until all are reaped. Called once the server has stopped.
    pub fn shutdown(&self) {
        self.inner.lock().shutting_down = true;
        self.inner.wake.notify_one();
        let keeper = self.keeper.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(k) = keeper {
            let _ = k.join();
        }
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child().id()
    }

    pub fn child(&self) -> &Child {
        self.child.as_ref().expect("held until dropped")
    }

    pub fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("held until dropped")
    }

    /// The server answered (wrote its first line): the pool may refill now.
    pub fn answered(&self) {
        self.inner.first_exchange_done(self.pid());
    }

    /// The exit status, if the process has exited (it is reaped then).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child_mut().try_wait().ok().flatten()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            self.inner.stop(child);
        }
    }
}

impl StdioCommand {
    /// Start one process: piped stdio, its own process group (signals reach what it
    /// starts, e.g. `npx` → node), the allow-listed environment.
    fn spawn(&self) -> std::io::Result<Child> {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .env_clear()
            .envs(inherited_env())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        #[cfg(target_os = "linux")]
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent. If the bridge
        // is killed outright, the kernel kills its servers rather than leave them running.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        cmd.spawn()
    }

    fn start_error(&self, e: &std::io::Error) -> String {
        format!("cannot start the stdio server {:?}: {e}", self.program)
    }
}

fn inherited_env() -> impl Iterator<Item = (String, String)> {
    std::env::vars().filter(|(k, _)| INHERITED.contains(&k.as_str()) || k.starts_with("LC_"))
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn hand_out(self: Arc<Self>, child: Child) -> Running {
        {
            let mut st = self.lock();
            let pid = child.id();
            st.in_use.insert(pid);
            if !st.first_exchange.iter().any(|(p, _)| *p == pid) {
                st.first_exchange.push((pid, Instant::now() + REFILL_HOLD));
            }
        }
        Running {
            child: Some(child),
            inner: self,
        }
    }

    fn first_exchange_done(&self, pid: u32) {
        self.lock().first_exchange.retain(|(p, _)| *p != pid);
        self.wake.notify_one();
    }

    fn stop(&self, child: Child) {
        {
            let mut st = self.lock();
            st.in_use.remove(&child.id());
            st.first_exchange.retain(|(p, _)| *p != child.id());
            st.stopping.push(Stopping {
                child,
                step: Step::Closed,
                deadline: Instant::now() + self.cmd.stop_grace,
            });
        }
        self.wake.notify_one();
    }

    /// A warm process exited before any session used it: the command does not run.
    fn died_warm(&self, mut child: Child, status: ExitStatus) {
        let stderr = child.stderr.take().map(drain_stderr).unwrap_or_default();
        let why = format!(
            "the stdio server {:?} exited before use ({status})",
            self.cmd.program
        );
        self.failed(why, stderr.trim_end());
    }

    /// A start failed: retry later (backing off), and tell `/readyz`. Logged as a warning
    /// when the reason is new, so a broken command does not flood the log.
    fn failed(&self, why: String, stderr: &str) {
        let mut st = self.lock();
        if st.problem.as_deref() == Some(why.as_str()) {
            tracing::debug!(stderr, failures = st.failures + 1, "{why}");
        } else {
            tracing::warn!(stderr, "{why}");
        }
        st.failures += 1;
        let backoff = BACKOFF_FIRST
            .saturating_mul(1 << st.failures.min(8))
            .min(BACKOFF_MAX);
        st.retry_at = Some(Instant::now() + backoff);
        st.problem = Some(why);
    }

    /// The keeper's loop: stop sequences, pool health and refill.
    fn keep(&self) {
        let mut shutdown_since: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let (refill, wait) = {
                let mut st = self.lock();
                if st.shutting_down {
                    let since = *shutdown_since.get_or_insert(now);
                    self.shut(&mut st, since, now);
                    if st.stopping.is_empty() && st.in_use.is_empty() {
                        return;
                    }
                }
                self.advance_stopping(&mut st, now);
                let dead = self.check_pool(&mut st, now);
                drop(st);
                for (child, status) in dead {
                    self.died_warm(child, status);
                }
                let mut st = self.lock();
                st.first_exchange.retain(|(_, until)| now < *until);
                let held = st.first_exchange.iter().map(|(_, until)| *until).min();
                let due = st.retry_at.is_none_or(|t| now >= t) && held.is_none();
                let refill = !st.shutting_down && st.pool.len() < self.cmd.pool && due;
                let wait = if !st.stopping.is_empty() || st.shutting_down {
                    STOP_POLL
                } else if st.pool.len() < self.cmd.pool && !due {
                    let until = st.retry_at.into_iter().chain(held).max();
                    until.map_or(POOL_CHECK, |t| t - now).min(POOL_CHECK)
                } else {
                    POOL_CHECK
                };
                (refill, wait)
            };
            if refill {
                self.refill_one();
                continue;
            }
            let st = self.lock();
            let _ = self.wake.wait_timeout(st, wait);
        }
    }

    fn refill_one(&self) {
        match self.cmd.spawn() {
            Ok(child) => {
                // Healthy only once it has stayed up a while (see `check_pool`): a command
                // that starts and dies at once must keep backing off.
                self.lock().pool.push_back(Warm {
                    child,
                    since: Instant::now(),
                });
            }
            Err(e) => {
                self.failed(self.cmd.start_error(&e), "");
            }
        }
    }

    /// Warm processes that died (returned) and those idle too long (stopped and replaced).
    fn check_pool(&self, st: &mut State, now: Instant) -> Vec<(Child, ExitStatus)> {
        let mut dead = Vec::new();
        let mut keep = VecDeque::with_capacity(st.pool.len());
        while let Some(mut w) = st.pool.pop_front() {
            match w.child.try_wait() {
                Ok(Some(status)) => dead.push((w.child, status)),
                Ok(None) if now.duration_since(w.since) > POOL_MAX_IDLE => {
                    drop(w.child.stdin.take());
                    st.stopping.push(Stopping {
                        child: w.child,
                        step: Step::Closed,
                        deadline: now + self.cmd.stop_grace,
                    });
                }
                Ok(None) => {
                    if now.duration_since(w.since) >= HEALTHY_AFTER {
                        st.failures = 0;
                        st.retry_at = None;
                        st.problem = None;
                    }
                    keep.push_back(w)
                }
                Err(_) => {}
            }
        }
        st.pool = keep;
        dead
    }

    fn advance_stopping(&self, st: &mut State, now: Instant) {
        let grace = self.cmd.stop_grace;
        st.stopping.retain_mut(|s| {
            // The pipes a session held are gone; those of a warm process go now.
            drop(s.child.stdin.take());
            match s.child.try_wait() {
                Ok(Some(status)) => {
                    tracing::debug!(pid = s.child.id(), %status, step = ?s.step, "stdio server reaped");
                    false
                }
                Err(_) => false,
                Ok(None) if now < s.deadline => true,
                Ok(None) => {
                    let (signal, next) = match s.step {
                        Step::Closed => (libc::SIGTERM, Step::Terminated),
                        Step::Terminated | Step::Killed => (libc::SIGKILL, Step::Killed),
                    };
                    if s.step != next {
                        tracing::debug!(pid = s.child.id(), ?next, "stdio server did not exit in time");
                    }
                    signal_group(&s.child, signal);
                    s.step = next;
                    s.deadline = now + grace;
                    true
                }
            }
        });
    }

    /// Shutdown: warm processes stop now; processes sessions still hold (their tasks were
    /// not dropped in time) are killed after one grace period, and reaped.
    fn shut(&self, st: &mut State, since: Instant, now: Instant) {
        while let Some(mut w) = st.pool.pop_front() {
            drop(w.child.stdin.take());
            st.stopping.push(Stopping {
                child: w.child,
                step: Step::Closed,
                deadline: now + self.cmd.stop_grace,
            });
        }
        if now.duration_since(since) > self.cmd.stop_grace && !st.in_use.is_empty() {
            for pid in st.in_use.drain() {
                tracing::warn!(pid, "stdio server still held at shutdown: killed");
                // SAFETY: plain syscalls on a pid that is our unreaped child (a zombie at
                // worst), so it cannot have been reused.
                unsafe {
                    libc::kill(-(pid as i32), libc::SIGKILL);
                    libc::waitpid(pid as i32, std::ptr::null_mut(), 0);
                }
            }
        }
    }
}

fn signal_group(child: &Child, signal: libc::c_int) {
    // SAFETY: the child is not reaped yet (try_wait said so), so its pid (= its process
    // group) is still ours.
    unsafe {
        libc::kill(-(child.id() as i32), signal);
    }
}

/// What a dead process left on its stderr (it cannot block: the fd is made non-blocking).
fn drain_stderr(mut stderr: std::process::ChildStderr) -> String {
    use std::os::fd::AsRawFd;
    // SAFETY: fcntl on an fd we own.
    unsafe {
        let fd = stderr.as_raw_fd();
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = Vec::new();
    while let Ok(n) = stderr.read(&mut buf) {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    let tail = &got[got.len().saturating_sub(DEAD_STDERR)..];
    String::from_utf8_lossy(tail).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(line: &str, grace_ms: u64) -> StdioCommand {
        let mut words = shlex::split(line).unwrap().into_iter();
        StdioCommand {
            line: line.into(),
            program: words.next().unwrap(),
            args: words.collect(),
            env: vec![("GIVEN".into(), "yes".into())],
            cwd: None,
            pool: 0,
            stop_grace: Duration::from_millis(grace_ms),
        }
    }

    #[test]
    fn the_environment_is_the_allow_list_plus_what_was_given() {
        std::env::set_var("MCP_BRIDGE_SECRET_FOR_TEST", "s3cret");
        let p = Processes::start(command("sh -c 'env; exit 0'", 200)).unwrap();
        let mut r = p.take().unwrap();
        let mut out = String::new();
        r.child_mut()
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert!(out.contains("GIVEN=yes"), "{out}");
        assert!(!out.contains("s3cret"), "{out}");
        assert!(
            out.lines().all(|l| {
                let k = l.split('=').next().unwrap();
                k == "GIVEN"
                    || k == "PWD"
                    || k == "SHLVL"
                    || k == "_"
                    || INHERITED.contains(&k)
                    || k.starts_with("LC_")
            }),
            "{out}"
        );
    }

    #[test]
    fn a_command_that_does_not_exist_is_a_clear_error() {
        let p = Processes::start(command("/nonexistent/server --x", 200)).unwrap();
        let err = p.take().err().expect("cannot start");
        assert!(err.contains("/nonexistent/server"), "{err}");
        assert!(p.problem().is_some());
    }

    #[test]
    fn without_a_pool_readiness_follows_the_last_start() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("mcp-bridge-pool0-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let server = dir.join("server.sh");
        let _ = std::fs::remove_file(&server);
        let p = Processes::start(command(server.to_str().unwrap(), 100)).unwrap();
        assert!(p.take().is_err());
        assert!(p.problem().is_some());
        // The server gets installed: the next start works, and readiness says so.
        std::fs::write(&server, "#!/bin/sh\nexec cat\n").unwrap();
        std::fs::set_permissions(&server, std::fs::Permissions::from_mode(0o755)).unwrap();
        let running = p.take().expect("starts now");
        assert_eq!(p.problem(), None);
        drop(running);
    }

    #[test]
    fn a_command_that_dies_at_once_stays_not_ready_while_it_is_retried() {
        let mut cmd = command("sh -c 'exit 1'", 100);
        cmd.pool = 1;
        let p = Processes::start(cmd).unwrap();
        let until = Instant::now() + Duration::from_secs(10);
        while p.problem().is_none() {
            assert!(Instant::now() < until, "the first death is noticed");
            std::thread::sleep(Duration::from_millis(10));
        }
        // Several restarts happen in this window (the first retries come within a second);
        // a start that worked must not count as healthy while its process dies at once.
        let window = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < window {
            assert!(p.problem().is_some(), "ready flapped back on");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_server_that_ignores_sigterm_is_killed_and_reaped() {
        let p = Processes::start(command(
            "sh -c 'trap \"\" TERM; while :; do sleep 1; done'",
            100,
        ))
        .unwrap();
        let r = p.take().unwrap();
        let pid = r.pid();
        drop(r);
        p.shutdown();
        // Reaped: the pid is no child of ours any more.
        let gone = unsafe { libc::waitpid(pid as i32, std::ptr::null_mut(), libc::WNOHANG) };
        assert_eq!(gone, -1, "pid {pid} was not reaped");
    }
}
