//! Worker processes (HELLO with a `wid`), their heartbeats and quiet/terminate state.
//!
//! Mirrors Faktory's `server/workers.go`: a wid is registered by its first connection, BEAT
//! refreshes it, the state only moves forward (running → quiet → terminate), a wid that has
//! not beaten for 60 s is reaped and all its connections are closed (its reservations stay),
//! and the entry disappears when its last connection closes.

use std::collections::HashMap;

use tokio_util::sync::CancellationToken;

use crate::clock::{Nanos, secs};

/// How long a worker may go without BEAT before Faktory closes its connections.
const BEAT_TIMEOUT: Nanos = secs(60);

/// A worker process' lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProcessState {
    /// Fetching and working.
    #[default]
    Running,
    /// Told to stop fetching.
    Quiet,
    /// Told to exit.
    Terminate,
}

impl ProcessState {
    fn from_client(text: &str) -> Option<ProcessState> {
        match text {
            "" => None,
            "quiet" => Some(ProcessState::Quiet),
            "terminate" => Some(ProcessState::Terminate),
            _ => Some(ProcessState::Running),
        }
    }

    /// The name BEAT replies with (`{"state":"quiet"}`), `None` while running.
    pub(crate) fn signal_name(self) -> Option<&'static str> {
        match self {
            ProcessState::Running => None,
            ProcessState::Quiet => Some("quiet"),
            ProcessState::Terminate => Some("terminate"),
        }
    }
}

/// What HELLO said about a worker process.
#[derive(Debug, Clone, Default)]
pub(crate) struct HelloInfo {
    pub(crate) wid: String,
    pub(crate) hostname: String,
    pub(crate) pid: i64,
    pub(crate) labels: Vec<String>,
}

#[derive(Debug)]
struct Worker {
    info: HelloInfo,
    state: ProcessState,
    last_beat: Nanos,
    connections: HashMap<u64, CancellationToken>,
}

/// All registered worker processes.
#[derive(Debug, Default)]
pub(crate) struct Workers {
    by_wid: HashMap<String, Worker>,
    pub(crate) reaped: u64,
}

impl Workers {
    /// Registers connection `conn` of worker `info.wid` (first connection creates the entry).
    pub(crate) fn register(
        &mut self,
        info: HelloInfo,
        conn: u64,
        close: CancellationToken,
        now: Nanos,
    ) {
        let worker = self
            .by_wid
            .entry(info.wid.clone())
            .or_insert_with(|| Worker {
                info,
                state: ProcessState::Running,
                last_beat: now,
                connections: HashMap::new(),
            });
        worker.connections.insert(conn, close);
    }

    /// Forgets a closed connection; the worker goes when its last connection does.
    pub(crate) fn remove_connection(&mut self, wid: &str, conn: u64) {
        if let Some(worker) = self.by_wid.get_mut(wid) {
            worker.connections.remove(&conn);
            if worker.connections.is_empty() {
                self.by_wid.remove(wid);
            }
        }
    }

    /// BEAT: refreshes the heartbeat and applies the client's `current_state`. `None` for an
    /// unknown wid.
    pub(crate) fn beat(
        &mut self,
        wid: &str,
        current_state: &str,
        now: Nanos,
    ) -> Option<ProcessState> {
        let worker = self.by_wid.get_mut(wid)?;
        worker.last_beat = now;
        if let Some(state) = ProcessState::from_client(current_state) {
            worker.state = advance(worker.state, state);
        }
        Some(worker.state)
    }

    /// Sends a worker quiet or terminate; `false` if the wid is not registered.
    pub(crate) fn signal(&mut self, wid: &str, state: ProcessState) -> bool {
        match self.by_wid.get_mut(wid) {
            Some(worker) => {
                worker.state = advance(worker.state, state);
                true
            }
            None => false,
        }
    }

    /// The state of `wid` (running when unknown).
    pub(crate) fn state(&self, wid: &str) -> ProcessState {
        self.by_wid
            .get(wid)
            .map_or(ProcessState::Running, |w| w.state)
    }

    /// Closes every connection of workers silent for over 60 s and forgets them.
    pub(crate) fn reap(&mut self, now: Nanos) -> usize {
        let cutoff = now.saturating_sub(BEAT_TIMEOUT);
        let stale: Vec<String> = self
            .by_wid
            .iter()
            .filter(|(_, w)| w.last_beat < cutoff)
            .map(|(wid, _)| wid.clone())
            .collect();
        for wid in &stale {
            if let Some(worker) = self.by_wid.remove(wid) {
                tracing::warn!(wid = %wid, connections = worker.connections.len(), "reaping worker that stopped sending BEAT");
                for token in worker.connections.values() {
                    token.cancel();
                }
            }
        }
        self.reaped += stale.len() as u64;
        stale.len()
    }

    /// Number of registered worker processes.
    pub(crate) fn len(&self) -> usize {
        self.by_wid.len()
    }

    /// Snapshot of registered workers for the test handle; `busy` counts a wid's reservations.
    pub(crate) fn list(&self, busy: impl Fn(&str) -> usize) -> Vec<WorkerInfo> {
        let mut list: Vec<_> = self
            .by_wid
            .values()
            .map(|w| WorkerInfo {
                wid: w.info.wid.clone(),
                hostname: w.info.hostname.clone(),
                pid: w.info.pid,
                labels: w.info.labels.clone(),
                state: w.state,
                connections: w.connections.len(),
                busy: busy(&w.info.wid),
            })
            .collect();
        list.sort_by(|a, b| a.wid.cmp(&b.wid));
        list
    }
}

/// A registered worker process (a HELLO with a `wid`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerInfo {
    /// The worker id from HELLO.
    pub wid: String,
    /// Hostname from HELLO.
    pub hostname: String,
    /// Process id from HELLO.
    pub pid: i64,
    /// Labels from HELLO.
    pub labels: Vec<String>,
    /// Current lifecycle state.
    pub state: ProcessState,
    /// Open connections registered under this wid.
    pub connections: usize,
    /// Jobs currently reserved by this wid's connections.
    pub busy: usize,
}

/// Faktory only lets a worker move forward: running → quiet → terminate.
fn advance(current: ProcessState, wanted: ProcessState) -> ProcessState {
    match (current, wanted) {
        (ProcessState::Running, s) => s,
        (ProcessState::Quiet, ProcessState::Terminate) => ProcessState::Terminate,
        (s, _) => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(wid: &str) -> HelloInfo {
        HelloInfo {
            wid: wid.into(),
            ..HelloInfo::default()
        }
    }

    #[test]
    fn state_only_moves_forward() {
        let mut w = Workers::default();
        w.register(hello("w1"), 1, CancellationToken::new(), 0);
        assert_eq!(w.beat("w1", "", 0), Some(ProcessState::Running));
        assert!(w.signal("w1", ProcessState::Terminate));
        assert!(w.signal("w1", ProcessState::Quiet));
        assert_eq!(w.state("w1"), ProcessState::Terminate);
        assert_eq!(w.beat("nope", "", 0), None);
    }

    #[test]
    fn reap_closes_connections() {
        let mut w = Workers::default();
        let token = CancellationToken::new();
        w.register(hello("w1"), 1, token.clone(), 0);
        assert_eq!(w.reap(secs(60)), 0);
        assert_eq!(w.reap(secs(61)), 1);
        assert!(token.is_cancelled());
        assert_eq!(w.len(), 0);
    }
}
