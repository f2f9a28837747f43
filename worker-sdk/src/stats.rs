//! Counters a caller can read while the worker runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A cheap, cloneable view of a worker's counters; obtain it with
/// [`Worker::stats`](crate::Worker::stats) before calling `run`.
#[derive(Debug, Clone, Default)]
pub struct StatsHandle {
    inner: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    delivered: AtomicU64,
    started: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    panicked: AtomicU64,
    released: AtomicU64,
    timed_out: AtomicU64,
    running: AtomicU64,
    prefetched: AtomicU64,
    window: AtomicU64,
    rtt_micros: AtomicU64,
    sessions: AtomicU64,
    results_resent: AtomicU64,
    results_rejected: AtomicU64,
    results_settled: AtomicU64,
    expired: AtomicU64,
}

/// A snapshot of a worker's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Jobs received from the gateway (duplicates included).
    pub delivered: u64,
    /// Handler runs started.
    pub started: u64,
    /// Handler runs that returned `Ok` (reported as acks).
    pub succeeded: u64,
    /// Handler runs that returned an error or panicked (reported as fails).
    pub failed: u64,
    /// Of `failed`, the runs that panicked.
    pub panicked: u64,
    /// Jobs given back to the gateway without running them.
    pub released: u64,
    /// Jobs still running when the shutdown timeout ran out.
    pub timed_out: u64,
    /// Handlers running now.
    pub running: u64,
    /// Delivered jobs waiting for a free handler slot now.
    pub prefetched: u64,
    /// The window last sent to the gateway (concurrency + prefetch).
    pub window: u64,
    /// Smoothed round-trip time to the gateway, if measured.
    pub rtt: Option<Duration>,
    /// Streams opened (1 + reconnects).
    pub sessions: u64,
    /// Results sent again after a reconnect because they were not confirmed.
    pub results_resent: u64,
    /// Results the gateway answered with `ResultRejected`.
    pub results_rejected: u64,
    /// Results the gateway confirmed with `Settled` (Faktory has them).
    pub results_settled: u64,
    /// Buffered jobs not started because their reservation ended while the
    /// worker was disconnected (Faktory retries them).
    pub expired: u64,
}

/// Which counter to bump.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Counter {
    Delivered,
    Started,
    Succeeded,
    Failed,
    Panicked,
    Released,
    TimedOut,
    Sessions,
    ResultsResent,
    ResultsRejected,
    ResultsSettled,
    Expired,
}

/// Which gauge to set.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Gauge {
    Running,
    Prefetched,
    Window,
}

impl StatsHandle {
    /// Reads all counters.
    pub fn snapshot(&self) -> Stats {
        let c = &self.inner;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let rtt = load(&c.rtt_micros);
        Stats {
            delivered: load(&c.delivered),
            started: load(&c.started),
            succeeded: load(&c.succeeded),
            failed: load(&c.failed),
            panicked: load(&c.panicked),
            released: load(&c.released),
            timed_out: load(&c.timed_out),
            running: load(&c.running),
            prefetched: load(&c.prefetched),
            window: load(&c.window),
            rtt: (rtt > 0).then(|| Duration::from_micros(rtt)),
            sessions: load(&c.sessions),
            results_resent: load(&c.results_resent),
            results_rejected: load(&c.results_rejected),
            results_settled: load(&c.results_settled),
            expired: load(&c.expired),
        }
    }

    pub(crate) fn add(&self, counter: Counter, n: u64) {
        let c = &self.inner;
        let atomic = match counter {
            Counter::Delivered => &c.delivered,
            Counter::Started => &c.started,
            Counter::Succeeded => &c.succeeded,
            Counter::Failed => &c.failed,
            Counter::Panicked => &c.panicked,
            Counter::Released => &c.released,
            Counter::TimedOut => &c.timed_out,
            Counter::Sessions => &c.sessions,
            Counter::ResultsResent => &c.results_resent,
            Counter::ResultsRejected => &c.results_rejected,
            Counter::ResultsSettled => &c.results_settled,
            Counter::Expired => &c.expired,
        };
        atomic.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn set(&self, gauge: Gauge, value: u64) {
        let c = &self.inner;
        let atomic = match gauge {
            Gauge::Running => &c.running,
            Gauge::Prefetched => &c.prefetched,
            Gauge::Window => &c.window,
        };
        atomic.store(value, Ordering::Relaxed);
    }

    pub(crate) fn set_rtt(&self, rtt: Duration) {
        let micros = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX).max(1);
        self.inner.rtt_micros.store(micros, Ordering::Relaxed);
    }
}
