//! Progress output on stderr: one updating status line on a terminal,
//! plain lines (status updates at most every few seconds) in logs.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a non-terminal gets a status line.
const LOG_STATUS_EVERY: Duration = Duration::from_secs(5);

/// Writes progress to stderr.
pub struct Progress {
    terminal: bool,
    last_status: Mutex<Option<Instant>>,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            terminal: std::io::stderr().is_terminal(),
            last_status: Mutex::new(None),
        }
    }
}

impl Progress {
    /// A line that stays (phase changes, results).
    pub fn line(&self, message: &str) {
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(err, "\r\x1b[K");
        }
        let _ = writeln!(err, "{message}");
    }

    /// A status update that the next one replaces (on a terminal), or that
    /// is printed at most every 5 s (in logs).
    pub fn status(&self, message: &str) {
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(err, "\r\x1b[K{message}");
            let _ = err.flush();
            return;
        }
        let mut last = self.last_status.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|at| at.elapsed() >= LOG_STATUS_EVERY) {
            *last = Some(Instant::now());
            let _ = writeln!(err, "  {message}");
        }
    }
}
