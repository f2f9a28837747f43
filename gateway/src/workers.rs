//! The workers listing: [`WorkerSnapshot`], one open `Work` session as an
//! operator sees it, taken by [`DeliveryPath::workers`](crate::DeliveryPath::workers)
//! from the dispatcher's session registry (`delivery/dispatcher/observe.rs`)
//! and the session's counters (`delivery/session_stats.rs`).
//!
//! Served as JSON by `GET /v1/workers` (`gateway/src/http/`) and as the
//! `Admin.ListWorkers` rpc (`gateway/src/admin.rs`), with the same field names;
//! `faktory-gateway workers` prints the rpc's answer as a table.

use faktory_gateway_proto::v1::WorkerInfo;
use serde::Serialize;

/// One open `Work` session.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerSnapshot {
    /// The session's id, as in its `Welcome` (`<gateway wid>-<n>`).
    pub session_id: String,
    /// The worker's id (from its hello; made up when it gave none).
    pub worker_id: String,
    /// The worker's host name (from its hello; may be empty).
    pub hostname: String,
    /// The worker's labels (from its hello).
    pub labels: Vec<String>,
    /// Queues it takes jobs from, highest priority first.
    pub queues: Vec<String>,
    /// Job types it runs, sorted; empty means any.
    pub jobtypes: Vec<String>,
    /// The window in force.
    pub window: u32,
    /// Jobs that count against the window now: delivered (or assigned) and
    /// not yet finished, plus jobs from an earlier stream its hello listed.
    pub in_flight: u32,
    /// Acks the worker sent on this session.
    pub jobs_done: u64,
    /// Fails the worker sent on this session.
    pub jobs_failed: u64,
    /// Acks and fails per second over the last minute (over the session's
    /// life while it is younger).
    pub jobs_per_second: f64,
    /// Round trip of the latest heartbeat ping, in microseconds; 0 until one
    /// was answered.
    pub heartbeat_rtt_us: u64,
    /// When the session opened, Unix milliseconds.
    pub connected_unix_ms: i64,
    /// Whether the session has been told to drain.
    pub draining: bool,
}

impl From<WorkerSnapshot> for WorkerInfo {
    fn from(w: WorkerSnapshot) -> WorkerInfo {
        WorkerInfo {
            session_id: w.session_id,
            worker_id: w.worker_id,
            hostname: w.hostname,
            labels: w.labels,
            queues: w.queues,
            jobtypes: w.jobtypes,
            window: w.window,
            in_flight: w.in_flight,
            jobs_done: w.jobs_done,
            jobs_failed: w.jobs_failed,
            jobs_per_second: w.jobs_per_second,
            heartbeat_rtt_us: w.heartbeat_rtt_us,
            connected_unix_ms: w.connected_unix_ms,
            draining: w.draining,
        }
    }
}
