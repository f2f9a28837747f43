//! [`Shared`]: the state every connection, the sweeper and the test handle share.
//!
//! One `parking_lot::Mutex` guards all job and worker state ([`State`]); it is held for a few
//! hash-map operations and never across an `.await`.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{Map, Value, json};

use crate::clock::{Clock, Nanos, format_rfc3339_nano, format_utc_time_of_day};
use crate::config::ServerConfig;
use crate::store::{ScanStats, Store};
use crate::workers::Workers;

/// Version reported in INFO: the Faktory release this server imitates.
pub(crate) const FAKTORY_VERSION: &str = "1.10.0";

/// Everything behind the server lock.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) store: Store,
    pub(crate) workers: Workers,
}

/// Server-wide shared state.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    pub(crate) clock: Clock,
    pub(crate) config: ServerConfig,
    /// Known commands executed.
    pub(crate) commands: AtomicU64,
    /// Open sockets (including ones still in the handshake).
    pub(crate) open_sockets: AtomicUsize,
    /// Connections past HELLO (INFO's `connections`).
    pub(crate) connections: AtomicUsize,
    pub(crate) accepted: AtomicU64,
    /// When the server's shared capacity has done the work of every command started so far
    /// (the cost model's server-wide limit; `None` before the first command).
    pub(crate) capacity_free_at: Mutex<Option<tokio::time::Instant>>,
    next_connection_id: AtomicU64,
    started: Nanos,
    last_runs: Mutex<LastRuns>,
}

/// When each periodic task last ran, in virtual time.
#[derive(Debug, Default)]
struct LastRuns {
    scheduler: Nanos,
    reaper: Nanos,
    dead: Nanos,
}

impl Shared {
    pub(crate) fn new(config: ServerConfig) -> Shared {
        let clock = Clock::default();
        let started = clock.now();
        Shared {
            state: Mutex::new(State::default()),
            clock,
            config,
            commands: AtomicU64::new(0),
            open_sockets: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            accepted: AtomicU64::new(0),
            capacity_free_at: Mutex::new(None),
            next_connection_id: AtomicU64::new(1),
            started,
            last_runs: Mutex::new(LastRuns {
                scheduler: started,
                reaper: started,
                dead: started,
            }),
        }
    }

    pub(crate) fn next_connection_id(&self) -> u64 {
        self.next_connection_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Runs the periodic tasks that are due (or all of them when `force`), like Faktory's task
    /// runner: scheduled and retry promotion, dead-set purge, reservation expiry, worker reaping.
    pub(crate) fn run_periodic(&self, force: bool) {
        let now = self.clock.now();
        let due = |last: &mut Nanos, every: Duration| {
            let every = i64::try_from(every.as_nanos()).unwrap_or(i64::MAX);
            if force || now.saturating_sub(*last) >= every {
                *last = now;
                true
            } else {
                false
            }
        };
        let (scheduler, reaper, dead) = {
            let mut runs = self.last_runs.lock();
            (
                due(&mut runs.scheduler, self.config.scheduler_interval),
                due(&mut runs.reaper, self.config.reaper_interval),
                due(&mut runs.dead, Duration::from_secs(60)),
            )
        };
        let mut state = self.state.lock();
        if reaper {
            state.store.reap_reservations(now);
            state.workers.reap(now);
        }
        if scheduler {
            state.store.enqueue_scheduled(now);
            state.store.enqueue_retries(now);
        }
        if dead {
            state.store.purge_dead(now);
        }
    }

    /// The INFO document, with real Faktory's field names.
    pub(crate) fn info(&self) -> Value {
        let now = self.clock.now();
        let state = self.state.lock();
        let store = &state.store;
        let mut queues = Map::new();
        let mut total_enqueued = 0;
        for (name, size) in store.queue_sizes() {
            total_enqueued += size;
            queues.insert(name.to_owned(), json!(size));
        }
        let tasks = json!({
            "Scheduled": scan_stats(store.scheduled_stats, store.scheduled.len()),
            "Retries": scan_stats(store.retries_stats, store.retries.len()),
            "Dead": scan_stats(store.dead_stats, store.dead.len()),
            "Busy": {"size": store.working_len(), "reaped": store.reservations_reaped},
            "Workers": {"size": state.workers.len(), "reaped": state.workers.reaped},
        });
        json!({
            "now": format_rfc3339_nano(now),
            "server_utc_time": format_utc_time_of_day(now),
            "faktory": {
                "total_failures": store.total_failures,
                "total_processed": store.total_processed,
                "total_enqueued": total_enqueued,
                "total_queues": queues.len(),
                "queues": queues,
                "tasks": tasks,
            },
            "server": {
                "description": "Faktory",
                "faktory_version": FAKTORY_VERSION,
                "uptime": (now - self.started).max(0) / 1_000_000_000,
                "connections": self.connections.load(Ordering::Relaxed),
                "command_count": self.commands.load(Ordering::Relaxed),
                "used_memory_mb": used_memory_mb(),
            },
        })
    }
}

fn scan_stats(stats: ScanStats, size: usize) -> Value {
    json!({
        "enqueued": stats.jobs,
        "cycles": stats.cycles,
        "size": size,
        "wall_time_sec": stats.wall_nanos as f64 / 1e9,
    })
}

/// Resident memory of this process in MiB (0 where `/proc` is unavailable).
fn used_memory_mb() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096 / (1024 * 1024)
}
