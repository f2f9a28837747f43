//! The crash experiment (`chaos --crash-experiment`): what a gateway crash
//! costs. Jobs are pushed through a gateway child process, one SDK worker
//! runs them across an emulated link, and once Faktory has counted a third
//! of them processed the gateway is killed with SIGKILL and started again
//! on the same port. The worker reconnects and carries on. At the end (a
//! bounded wait, never Faktory's 30-minute reservation expiry) the run
//! reports what became of the jobs: processed at Faktory, finished by the
//! worker, finished but still reserved at Faktory, reserved and never
//! finished, re-runs of finished jobs.
//!
//! With `--gateways N` (N > 1) the worker is given all N gateways, each
//! behind its own link; the gateway its stream is on is killed and not
//! restarted, and the report says how long the worker took to open a
//! stream to another one and to have a result settled through it.
//!
//! Against a real Faktory (`FAKTORY_URL`) what is still reserved is found
//! by [`inventory`](crate::inventory) (which also removes everything the
//! run left); without it the in-process test server stands in and its
//! tables are read directly (see [`Target`]).

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use faktory_gateway_bench::measure::faktory_stats::{InfoCounts, InfoPoller};
use faktory_gateway_bench::setup::run_queues::{clean_up, run_prefix};
use faktory_gateway_worker::{Job, JobError, StatsHandle, Worker};
use link_emulator::LinkEmulator;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::gateway::Gateway;
use crate::inventory::Place;
use crate::plan::{JOBTYPE, Plan, RESERVATION_EXPIRED};
use crate::producer::{self, PushStats};
use crate::record::Record;
use crate::target::Target;

/// Concurrent producers pushing the jobs.
const PRODUCERS: usize = 4;
/// The end waits no longer than this without a job finishing.
const STALL_LIMIT: Duration = Duration::from_secs(15);
/// Once the worker is done, how long Faktory's counts must stay still to
/// call the run settled (at most [`SETTLE_LIMIT`]).
const SETTLE_QUIET: Duration = Duration::from_secs(2);
/// See [`SETTLE_QUIET`].
const SETTLE_LIMIT: Duration = Duration::from_secs(20);
/// How long the worker may take to stop at the end.
const WORKER_STOP_LIMIT: Duration = Duration::from_secs(30);

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct CrashOptions {
    /// Jobs to push.
    pub(crate) jobs: usize,
    /// Round-trip time of the emulated link between worker and gateway.
    pub(crate) rtt: Duration,
    /// The worker's handler concurrency (its window is this plus the
    /// prefetch the SDK sizes itself).
    pub(crate) concurrency: usize,
    /// The kill comes once Faktory has counted this share of the jobs
    /// processed.
    pub(crate) kill_at: f64,
    /// Longest wait for the worker to finish every job.
    pub(crate) limit: Duration,
    /// Gateways beside Faktory: 1 restarts the killed one on its port;
    /// more leave it dead and the worker fails over to the others.
    pub(crate) gateways: usize,
}

/// How long the worker took to move to another gateway after the kill.
#[derive(Debug, Clone, Copy, Default)]
struct Failover {
    /// Until the worker had a new stream open.
    new_stream: Option<Duration>,
    /// Until a result of the worker's was settled through the new stream.
    first_settled: Option<Duration>,
}

/// The moment of the kill.
#[derive(Debug, Clone, Copy)]
struct AtKill {
    processed: u64,
    finished: u64,
    window: u64,
    reserved_server_wide: u64,
    /// Jobs the worker had received (`Stats::delivered`).
    delivered: u64,
}

/// What the experiment found; printed as a table.
#[derive(Debug)]
pub(crate) struct CrashReport {
    options: CrashOptions,
    real: bool,
    pushed: u64,
    window_peak: u64,
    at_kill: AtKill,
    processed: u64,
    failures: u64,
    finished: u64,
    handler_runs: u64,
    reruns_of_finished: u64,
    rerun_jids: u64,
    finished_reserved: u64,
    unfinished_reserved: u64,
    expired_retries: u64,
    left_elsewhere: u64,
    lost: u64,
    reserved_before: u64,
    reserved_end: u64,
    results_resent: u64,
    results_rejected: u64,
    sessions: u64,
    failover: Failover,
    ended: &'static str,
    notes: Vec<String>,
    elapsed: Duration,
}

/// Runs the experiment.
///
/// Fails when a part cannot be started or the kill point is not reached
/// within the time limit.
pub(crate) async fn run(options: CrashOptions) -> anyhow::Result<CrashReport> {
    let started = Instant::now();
    let target = Target::from_env().await?;
    let url = target.url();
    let plan = Plan {
        queue: run_prefix("crash"),
        seed: 1,
        reserve_for: 0,
    };
    let jids: Vec<String> = (0..options.jobs).map(|i| plan.jid(i)).collect();
    let poller = InfoPoller::start(&url, &plan.queue)
        .await
        .context("poll faktory's INFO")?;
    let before = poller.latest().counts;
    let count = options.gateways.max(1);
    let mut gateways = Vec::with_capacity(count);
    let mut links = Vec::with_capacity(count);
    for _ in 0..count {
        let gateway = Gateway::start(url.clone(), Vec::new()).await?;
        links.push(LinkEmulator::start(gateway.addr(), options.rtt / 2).await?);
        gateways.push(gateway);
    }

    let push_stats = Arc::new(PushStats::default());
    producer::push_all(
        gateways
            .iter()
            .map(|g| format!("http://{}", g.addr()))
            .collect(),
        plan.clone(),
        options.jobs,
        PRODUCERS,
        push_stats.clone(),
    )
    .await;

    let record = Arc::new(Record::default());
    let stop = CancellationToken::new();
    let worker = worker(
        links
            .iter()
            .map(|l| format!("http://{}", l.addr()))
            .collect(),
        &plan.queue,
        options.concurrency,
        record.clone(),
        stop.clone(),
    )?;
    let stats = worker.stats();
    let task = tokio::spawn(worker.run());
    let mut window_peak = 0;
    let processed_since = |counts: InfoCounts| counts.processed.saturating_sub(before.processed);

    let kill_point = (options.jobs as f64 * options.kill_at) as u64;
    let give_up = started + options.limit;
    while processed_since(poller.latest().counts) < kill_point {
        if Instant::now() > give_up {
            bail!("faktory had not processed {kill_point} jobs by the time limit");
        }
        window_peak = window_peak.max(stats.snapshot().window);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let reading = poller.latest().counts;
    let worker_at_kill = stats.snapshot();
    let at_kill = AtKill {
        processed: processed_since(reading),
        finished: record.finished(),
        window: worker_at_kill.window,
        reserved_server_wide: reading.reserved,
        delivered: worker_at_kill.delivered,
    };
    // The worker's stream is the only connection through the links.
    let on = links
        .iter()
        .position(|l| l.connection_count() > 0)
        .unwrap_or(0);
    let before_kill = stats.snapshot();
    let killed_at = Instant::now();
    gateways[on].kill().await?;
    let killed_stays_down = gateways.len() > 1;
    let failover = if killed_stays_down {
        watch_failover(&stats, before_kill, killed_at, give_up).await
    } else {
        gateways[on].restart().await?;
        Failover::default()
    };

    let ended = wait_for_the_end(&record, &stats, &mut window_peak, options.jobs, give_up).await;
    settle(&poller).await;
    let mut notes = Vec::new();
    stop.cancel();
    match tokio::time::timeout(WORKER_STOP_LIMIT, task).await {
        Ok(Ok(Ok(_))) => {}
        Ok(Ok(Err(e))) => notes.push(format!("the worker stopped with an error: {e}")),
        Ok(Err(e)) => notes.push(format!("the worker task failed: {e}")),
        Err(_) => notes.push("the worker did not stop in time".to_owned()),
    }
    let worker_stats = stats.snapshot();
    for (index, gateway) in gateways.iter_mut().enumerate() {
        if index == on && killed_stays_down {
            continue;
        }
        if let Err(e) = gateway.stop().await {
            notes.push(format!("{e:#}"));
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = poller.latest().counts;
    if let Err(e) = poller.stop().await {
        notes.push(format!("INFO poller: {e}"));
    }
    drop(links);

    let places = target
        .places(&plan.queue, &jids)
        .await
        .context("the end-of-run inventory")?;
    // The inventory emptied the run's queue; a real Faktory still lists it.
    if target.is_real()
        && let Err(e) = clean_up(&url, &plan.queue).await
    {
        notes.push(format!("removing the run's queue: {e}"));
    }

    let mut report = CrashReport {
        options: options.clone(),
        real: target.is_real(),
        pushed: push_stats
            .accepted
            .load(std::sync::atomic::Ordering::Relaxed),
        window_peak,
        at_kill,
        processed: processed_since(after),
        failures: after.failures.saturating_sub(before.failures),
        finished: record.finished(),
        handler_runs: record.runs(),
        reruns_of_finished: 0,
        rerun_jids: 0,
        finished_reserved: 0,
        unfinished_reserved: 0,
        expired_retries: 0,
        left_elsewhere: 0,
        lost: 0,
        reserved_before: before.reserved,
        reserved_end: after.reserved,
        results_resent: worker_stats.results_resent,
        results_rejected: worker_stats.results_rejected,
        sessions: worker_stats.sessions,
        failover,
        ended,
        notes,
        elapsed: Duration::ZERO,
    };
    let mut expired: HashSet<&str> = HashSet::new();
    for jid in &jids {
        let seen = record.get(jid);
        let reruns = seen.reruns_after_finish().count() as u64;
        report.reruns_of_finished += reruns;
        report.rerun_jids += u64::from(reruns > 0);
        if seen
            .foreign_errtypes
            .iter()
            .any(|e| e == RESERVATION_EXPIRED)
        {
            expired.insert(jid);
        }
        let finished = seen.successes > 0;
        match places.get(jid) {
            Some(Place::Reserved) if finished => report.finished_reserved += 1,
            Some(Place::Reserved) => report.unfinished_reserved += 1,
            Some(Place::Retry(errtype) | Place::Dead(errtype)) => {
                if errtype == RESERVATION_EXPIRED {
                    expired.insert(jid);
                }
                report.left_elsewhere += 1;
            }
            Some(Place::Queued | Place::Scheduled) => report.left_elsewhere += 1,
            None if finished => {}
            None => report.lost += 1,
        }
    }
    report.expired_retries = expired.len() as u64;
    report.elapsed = started.elapsed();
    target.shutdown().await;
    Ok(report)
}

/// Watches the worker after the kill until it has a new stream and a
/// result settled through it, or `give_up`.
async fn watch_failover(
    stats: &StatsHandle,
    before: faktory_gateway_worker::Stats,
    killed_at: Instant,
    give_up: Instant,
) -> Failover {
    let mut failover = Failover::default();
    while Instant::now() < give_up && failover.first_settled.is_none() {
        let now = stats.snapshot();
        if failover.new_stream.is_none() && now.sessions > before.sessions {
            failover.new_stream = Some(killed_at.elapsed());
        }
        if failover.new_stream.is_some() && now.results_settled > before.results_settled {
            failover.first_settled = Some(killed_at.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    failover
}

/// The experiment's one worker: records every run, succeeds at once.
fn worker(
    gateway_urls: Vec<String>,
    queue: &str,
    concurrency: usize,
    record: Arc<Record>,
    stop: CancellationToken,
) -> anyhow::Result<Worker> {
    Worker::builder()
        .gateways(gateway_urls)
        .worker_id("crash-experiment-worker")
        .queues([queue.to_owned()])
        .concurrency(concurrency)
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(500))
        .shutdown_timeout(Duration::from_secs(10))
        .register(JOBTYPE, move |job: Job| {
            let record = record.clone();
            async move {
                let errtype = job.failure().map(|f| f.errtype.clone());
                record.start(job.jid(), errtype.as_deref());
                record.succeeded(job.jid());
                Ok::<(), JobError>(())
            }
        })
        .with_graceful_shutdown(stop.cancelled_owned())
        .build()
        .context("build the worker")
}

/// Waits until the worker has finished every job, nothing finishes for
/// [`STALL_LIMIT`], or `give_up`; says which.
async fn wait_for_the_end(
    record: &Record,
    stats: &StatsHandle,
    window_peak: &mut u64,
    jobs: usize,
    give_up: Instant,
) -> &'static str {
    let mut last = record.finished();
    let mut last_change = Instant::now();
    loop {
        let finished = record.finished();
        *window_peak = (*window_peak).max(stats.snapshot().window);
        if finished >= jobs as u64 {
            return "every job finished";
        }
        if finished != last {
            last = finished;
            last_change = Instant::now();
        } else if last_change.elapsed() > STALL_LIMIT {
            return "nothing finished for 15 s";
        }
        if Instant::now() > give_up {
            return "time limit";
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until Faktory's processed count and reserved set stay still for
/// [`SETTLE_QUIET`] (results still on their way), at most [`SETTLE_LIMIT`].
async fn settle(poller: &InfoPoller) {
    let end = Instant::now() + SETTLE_LIMIT;
    let mut last = poller.latest().counts;
    let mut since = Instant::now();
    while Instant::now() < end && since.elapsed() < SETTLE_QUIET {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = poller.latest().counts;
        if (now.processed, now.reserved) != (last.processed, last.reserved) {
            last = now;
            since = Instant::now();
        }
    }
}

impl fmt::Display for CrashReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let row = |f: &mut fmt::Formatter<'_>, name: &str, value: String| {
            writeln!(f, "| {name:<58} | {value:>10} |")
        };
        writeln!(
            f,
            "crash experiment: {} jobs, {}, one worker (concurrency {}) across a {} ms RTT link, \
             its gateway SIGKILLed at {:.0}% processed, against {}",
            self.options.jobs,
            if self.options.gateways > 1 {
                format!(
                    "{} gateways (the killed one stays down)",
                    self.options.gateways
                )
            } else {
                "one gateway (restarted on its port)".to_owned()
            },
            self.options.concurrency,
            self.options.rtt.as_millis(),
            self.options.kill_at * 100.0,
            if self.real {
                "FAKTORY_URL"
            } else {
                "the in-process test server"
            }
        )?;
        writeln!(f, "| {:<58} | {:>10} |", "what", "count")?;
        writeln!(f, "|{:-<60}|{:-<12}|", "", "")?;
        row(f, "jobs pushed (accepted)", self.pushed.to_string())?;
        row(
            f,
            "worker window reached (concurrency + prefetch)",
            self.window_peak.to_string(),
        )?;
        row(
            f,
            "at the kill: processed at faktory",
            self.at_kill.processed.to_string(),
        )?;
        row(
            f,
            "at the kill: finished by the worker",
            self.at_kill.finished.to_string(),
        )?;
        row(
            f,
            "at the kill: worker window",
            self.at_kill.window.to_string(),
        )?;
        row(
            f,
            "at the kill: received by the worker",
            self.at_kill.delivered.to_string(),
        )?;
        row(
            f,
            "at the kill: reserved at faktory (Busy, server-wide)",
            self.at_kill.reserved_server_wide.to_string(),
        )?;
        row(
            f,
            "processed at faktory (total_processed delta)",
            self.processed.to_string(),
        )?;
        row(
            f,
            "failures at faktory (total_failures delta)",
            self.failures.to_string(),
        )?;
        row(f, "jobs the worker finished", self.finished.to_string())?;
        row(f, "handler runs", self.handler_runs.to_string())?;
        row(
            f,
            "FINISHED JOBS STILL RESERVED at faktory",
            self.finished_reserved.to_string(),
        )?;
        row(
            f,
            "reserved, never finished by the worker",
            self.unfinished_reserved.to_string(),
        )?;
        row(
            f,
            "ReservationExpired retries",
            self.expired_retries.to_string(),
        )?;
        row(
            f,
            "LEFT TO RESERVATION EXPIRY (never finished + expired)",
            (self.unfinished_reserved + self.expired_retries).to_string(),
        )?;
        row(
            f,
            "re-runs of finished jobs",
            self.reruns_of_finished.to_string(),
        )?;
        row(
            f,
            "  jids re-run after finishing",
            self.rerun_jids.to_string(),
        )?;
        row(
            f,
            "left queued / scheduled / in retries or dead",
            self.left_elsewhere.to_string(),
        )?;
        row(
            f,
            "lost (gone from faktory, never finished)",
            self.lost.to_string(),
        )?;
        row(
            f,
            "reserved at faktory before / at the end (server-wide)",
            format!("{} / {}", self.reserved_before, self.reserved_end),
        )?;
        row(
            f,
            "worker: streams opened / results resent / rejected",
            format!(
                "{} / {} / {}",
                self.sessions, self.results_resent, self.results_rejected
            ),
        )?;
        if self.options.gateways > 1 {
            let ms = |d: Option<Duration>| {
                d.map_or("never".to_owned(), |d| format!("{} ms", d.as_millis()))
            };
            row(
                f,
                "failover: a new stream / a result settled through it",
                format!(
                    "{} / {}",
                    ms(self.failover.new_stream),
                    ms(self.failover.first_settled)
                ),
            )?;
        }
        row(
            f,
            "whole run (s)",
            format!("{:.1}", self.elapsed.as_secs_f64()),
        )?;
        writeln!(f, "end of the wait: {}", self.ended)?;
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        Ok(())
    }
}
