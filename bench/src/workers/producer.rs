//! Producers that feed scenarios straight into Faktory: a feeder that keeps
//! a backlog queued ahead of the workers (throughput phase) and a paced
//! producer that stamps each job as it pushes it (latency phase).
//!
//! They push with the gateway's own Faktory protocol layer
//! ([`faktory_gateway::faktory::Connection`], `TCP_NODELAY`), not the
//! `faktory` crate's client: that client leaves Nagle's algorithm on, and a
//! multi-segment `PUSHB` then waits for the server's delayed ACK (~40 ms)
//! on every batch, which would make direct pushing look far slower than it
//! is.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use faktory_gateway::faktory::{Connection, FaktoryUrl};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::measure::process_stats::unix_micros;
use crate::runs::scenario::Workload;
use crate::workers::probe::{Probe, jobs_array_json, write_job_json};

/// Most jobs in one `PUSHB` of the feeder.
const FEED_BATCH: u64 = 1000;
/// The feeder keeps this many seconds of work queued (at the measured
/// completion rate), so the queue never runs dry even with large prefetch
/// windows, yet drains in about that long once feeding stops.
const BACKLOG_SECONDS: f64 = 1.0;
/// Least backlog the feeder keeps.
const MIN_BACKLOG: u64 = 1000;

/// Opens one authenticated connection to Faktory at `url`.
///
/// Fails when the URL is invalid or the connection cannot be made.
pub async fn connect(url: &str) -> Result<Connection, Error> {
    let url = FaktoryUrl::parse(url).map_err(|e| Error::Protocol(e.to_string()))?;
    Connection::connect(&url, None)
        .await
        .map_err(|e| Error::Protocol(e.to_string()))
}

/// Pushes `count` fresh jobs for `queue` in one `PUSHB`; returns how many
/// Faktory accepted.
///
/// Fails when the connection fails or Faktory refuses the whole batch.
pub async fn push_batch(
    connection: &mut Connection,
    queue: &str,
    workload: Workload,
    count: usize,
) -> Result<u64, Error> {
    let failures = connection
        .push_bulk(&jobs_array_json(queue, workload, count))
        .await
        .map_err(|e| Error::Protocol(e.to_string()))?;
    Ok(count.saturating_sub(failures.len()) as u64)
}

/// Pushes one job for `queue` with `PUSH`, stamped `stamp`.
///
/// Fails when the connection fails or Faktory refuses the job.
pub async fn push_one(
    connection: &mut Connection,
    queue: &str,
    workload: Workload,
    stamp: u64,
) -> Result<(), Error> {
    let mut job = Vec::with_capacity(64 + workload.padding_len());
    write_job_json(&mut job, queue, workload, stamp);
    connection
        .push(&job)
        .await
        .map_err(|e| Error::Protocol(e.to_string()))
}

/// Keeps `queue` stocked while a throughput phase runs.
pub struct Feeder {
    pushed: Arc<AtomicU64>,
    cancel: CancellationToken,
    task: JoinHandle<Result<(), Error>>,
}

impl Feeder {
    /// Connects to Faktory at `url` and starts feeding `queue`, keeping
    /// about a second of work (as `probe` counts completions) queued, at
    /// most `workload.max_backlog()` jobs.
    ///
    /// Fails when the connection cannot be made.
    pub async fn start(
        url: &str,
        queue: &str,
        workload: Workload,
        probe: Arc<Probe>,
    ) -> Result<Feeder, Error> {
        let connection = connect(url).await?;
        let pushed = Arc::new(AtomicU64::new(0));
        let cancel = CancellationToken::new();
        let task = tokio::spawn(feed(
            connection,
            queue.to_owned(),
            workload,
            probe,
            Arc::clone(&pushed),
            cancel.clone(),
        ));
        Ok(Feeder {
            pushed,
            cancel,
            task,
        })
    }

    /// Jobs pushed so far.
    pub fn pushed(&self) -> u64 {
        self.pushed.load(Ordering::Relaxed)
    }

    /// Stops feeding; returns how many jobs were pushed in all.
    ///
    /// Fails when a push failed while feeding.
    pub async fn stop(self) -> Result<u64, Error> {
        self.cancel.cancel();
        match self.task.await {
            Ok(result) => result?,
            Err(join) => return Err(Error::Setup(format!("feeder task: {join}"))),
        }
        Ok(self.pushed.load(Ordering::Relaxed))
    }
}

async fn feed(
    mut connection: Connection,
    queue: String,
    workload: Workload,
    probe: Arc<Probe>,
    pushed: Arc<AtomicU64>,
    cancel: CancellationToken,
) -> Result<(), Error> {
    let mut rate = RateMeter::new(probe.done());
    while !cancel.is_cancelled() {
        let done = probe.done();
        let per_second = rate.update(done);
        let target =
            ((per_second * BACKLOG_SECONDS) as u64 + MIN_BACKLOG).min(workload.max_backlog());
        let backlog = pushed.load(Ordering::Relaxed).saturating_sub(done);
        if backlog >= target {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_millis(5)) => continue,
            }
        }
        let count = (target - backlog).min(FEED_BATCH) as usize;
        // A cancelled push could leave the connection mid-command; the
        // loop checks cancellation between pushes instead.
        let accepted = push_batch(&mut connection, &queue, workload, count).await?;
        pushed.fetch_add(accepted, Ordering::Relaxed);
    }
    Ok(())
}

/// Completion rate over a sliding window of about half a second.
struct RateMeter {
    last: (Instant, u64),
    per_second: f64,
}

impl RateMeter {
    fn new(done: u64) -> RateMeter {
        RateMeter {
            last: (Instant::now(), done),
            per_second: 0.0,
        }
    }

    fn update(&mut self, done: u64) -> f64 {
        let elapsed = self.last.0.elapsed();
        if elapsed >= Duration::from_millis(500) {
            let finished = done.saturating_sub(self.last.1) as f64;
            self.per_second = finished / elapsed.as_secs_f64();
            self.last = (Instant::now(), done);
        }
        self.per_second
    }
}

/// Pushes single stamped jobs to `queue` at `per_second` for `duration`,
/// one `PUSH` at a time on one connection; returns how many it pushed.
///
/// Fails when connecting or a push fails.
pub async fn push_paced(
    url: &str,
    queue: &str,
    workload: Workload,
    per_second: f64,
    duration: Duration,
) -> Result<u64, Error> {
    let mut connection = connect(url).await?;
    let period = Duration::from_secs_f64(1.0 / per_second.max(1.0));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline = Instant::now() + duration;
    let mut pushed = 0;
    while Instant::now() < deadline {
        ticks.tick().await;
        push_one(&mut connection, queue, workload, unix_micros()).await?;
        pushed += 1;
    }
    Ok(pushed)
}
