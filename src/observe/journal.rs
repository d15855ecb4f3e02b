//! The wire journal: one JSON object per line for every message (and every difference and
//! session end), written by a thread of its own. Producers never wait: a full queue drops
//! the line and counts it.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub struct Journal {
    tx: Mutex<Option<SyncSender<String>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    pub bodies: bool,
}

impl Journal {
    /// Start the writer thread. The file is opened by that thread, so a slow or blocking
    /// destination (a pipe nobody reads) never stalls the bridge.
    pub fn start(path: &Path, bodies: bool, queue: usize) -> Journal {
        let (tx, rx) = sync_channel(queue);
        let path = path.to_owned();
        let writer = std::thread::Builder::new()
            .name("mcp-bridge-journal".into())
            .spawn(move || write_loop(&path, rx))
            .expect("spawn journal thread");
        Journal {
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            bodies,
        }
    }

    /// Queue one line; false when it was dropped (queue full or journal closed).
    pub fn push(&self, line: String) -> bool {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        match tx.as_ref().map(|t| t.try_send(line)) {
            Some(Ok(())) => true,
            Some(Err(TrySendError::Full(_) | TrySendError::Disconnected(_))) | None => false,
        }
    }

    /// Flush everything queued and stop the writer (at shutdown).
    pub fn close(&self) {
        drop(self.tx.lock().unwrap_or_else(|p| p.into_inner()).take());
        if let Some(w) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = w.join();
        }
    }
}

fn write_loop(path: &PathBuf, rx: Receiver<String>) {
    let file = match File::options().create(true).append(true).open(path) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!("journal {}: {e}; journal disabled", path.display());
            return;
        }
    };
    let mut out = BufWriter::with_capacity(64 * 1024, file);
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let _ = out.write_all(line.as_bytes());
                let _ = out.write_all(b"\n");
            }
            // Idle: make what was written visible to readers.
            Err(RecvTimeoutError::Timeout) => {
                let _ = out.flush();
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    let _ = out.flush();
}

/// Seconds since the Unix epoch, with microseconds.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A JSON string literal.
pub fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_reach_the_file_and_close_flushes() {
        let dir = std::env::temp_dir().join(format!("mcp-bridge-journal-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let j = Journal::start(&dir, false, 16);
        assert!(j.push("{\"a\":1}".into()));
        j.close();
        assert!(!j.push("late".into()), "closed journal drops");
        assert_eq!(std::fs::read_to_string(&dir).unwrap(), "{\"a\":1}\n");
        let _ = std::fs::remove_file(&dir);
    }
}
