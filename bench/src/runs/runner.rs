//! Runs throughput scenarios one after another and turns each into a
//! [`ThroughputRow`]: start the load, wait until ready, warm up, measure a
//! window, drain, run the paced latency phase, stop.
//!
//! Jobs/s is what users see: jobs Faktory counts as processed (acknowledged),
//! from its `INFO` (see [`crate::measure::faktory_stats`]); what the workers' handlers
//! finished is reported beside it.

use std::time::Duration;

use crate::Error;
use crate::measure::process_stats::{ProcessSample, reset_peak_rss, sample_process};
use crate::output::progress::Progress;
use crate::output::report::ThroughputRow;
use crate::runs::load::{Env, Load, Sample};
use crate::runs::scenario::{Scenario, Timing};

/// The paced latency phase runs at this fraction of the measured rate...
const LATENCY_LOAD: f64 = 0.5;
/// ...but never faster than this many jobs/s (one producer, single PUSHes).
const LATENCY_MAX_RATE: f64 = 500.0;
/// ...and never slower than this.
const LATENCY_MIN_RATE: f64 = 10.0;

/// Length of the windows compared to decide that the rate holds steady.
const STEADY_WINDOW: Duration = Duration::from_millis(500);
/// Two consecutive windows within this fraction of each other are steady.
const STEADY_TOLERANCE: f64 = 0.05;

/// Runs `scenario` and measures it. `label` prefixes progress lines.
///
/// Fails when a part of the scenario cannot start or fails while running.
pub async fn run_throughput(
    env: &Env,
    scenario: Scenario,
    timing: &Timing,
    progress: &Progress,
    label: &str,
) -> Result<ThroughputRow, Error> {
    let name = scenario.name();
    let queue = scenario.queue(&env.queue_prefix);
    let status = |message: &str| progress.status(&format!("{label} {name}: {message}"));
    progress.line(&format!("{label} {name}: starting"));
    reset_peak_rss(None);
    let mut load = Load::start(env, scenario, &queue).await?;
    if !load.wait_ready(timing.settle_limit, status).await {
        progress.line(&format!(
            "{label} {name}: workers not fully connected after {:?}; measuring anyway",
            timing.settle_limit
        ));
    }
    warm_up(&load, timing, &status).await;

    let start = load.sample();
    let end = measure_window(&load, timing.measure, &status).await;
    let worker_connections = load.worker_connections();
    let gateway_faktory_connections = load.gateway_faktory_connections(env.faktory_addr.port());
    let jobs_per_s = rate(&start, &end);
    let jobs_per_s_at_worker = worker_rate(&start, &end);

    if !load.drain(timing.drain_limit, status).await? {
        progress.line(&format!(
            "{label} {name}: backlog did not drain; latency includes it"
        ));
    }
    let latency_rate = (jobs_per_s * LATENCY_LOAD).clamp(LATENCY_MIN_RATE, LATENCY_MAX_RATE);
    let samples_before = load.probe().latency().count();
    load.latency_phase(
        env,
        &queue,
        latency_rate,
        timing.latency,
        timing.settle_limit,
        status,
    )
    .await?;
    let latency = load.probe().latency();
    let p50_ms = latency.quantile(0.5).map(|d| d.as_secs_f64() * 1000.0);
    let p99_ms = latency.quantile(0.99).map(|d| d.as_secs_f64() * 1000.0);
    let latency_samples = latency.count() - samples_before;

    let gateway_cpu_s_per_100k = cpu_per_100k(&start, &end, |s| s.gateway);
    let faktory_cpu_s_per_100k = cpu_per_100k(&start, &end, |s| s.faktory);
    let bench_cpu_s_per_100k = cpu_per_100k(&start, &end, |s| s.bench);
    let gateway_peak_rss_mib = load
        .gateway()
        .and_then(|gateway| gateway.sample())
        .map(|sample| mib(sample.peak_rss_bytes));
    let worker_peak_rss_mib = sample_process(None).map(|sample| mib(sample.peak_rss_bytes));
    // Before stopping: stopped workers release what they hold.
    let peaks = load.peaks();
    load.stop().await?;

    progress.line(&format!(
        "{label} {name}: {jobs_per_s:.0} jobs/s at Faktory ({jobs_per_s_at_worker:.0} at the \
         workers), reserved peak {} (window {}), p50 {} ms, p99 {} ms",
        peaks.reserved,
        peaks.window,
        p50_ms.map_or("-".into(), |v| format!("{v:.1}")),
        p99_ms.map_or("-".into(), |v| format!("{v:.1}")),
    ));
    Ok(ThroughputRow {
        scenario,
        name,
        concurrency: scenario.path.concurrency(),
        jobs_per_s,
        jobs_per_s_at_worker,
        ratio: None,
        reserved_peak: peaks.reserved,
        window_peak: peaks.window,
        worker_connections,
        gateway_faktory_connections,
        gateway_cpu_s_per_100k,
        faktory_cpu_s_per_100k,
        bench_cpu_s_per_100k,
        gateway_peak_rss_mib,
        worker_peak_rss_mib,
        p50_ms,
        p99_ms,
        latency_rate,
        latency_samples,
        rounds: vec![jobs_per_s],
    })
}

/// Waits `length`, showing the running rate once a second; returns the
/// closing sample.
pub async fn measure_window(load: &Load, length: Duration, status: impl Fn(&str)) -> Sample {
    let start = load.sample();
    let deadline = start.at + length;
    let mut previous = start;
    loop {
        let now = tokio::time::Instant::now().into_std();
        if now >= deadline {
            return load.sample();
        }
        let step = (deadline - now).min(Duration::from_secs(1));
        tokio::time::sleep(step).await;
        let current = load.sample();
        status(&format!(
            "measuring: {:.0} jobs/s at Faktory, {:.0} at the workers ({} done)",
            rate(&previous, &current),
            worker_rate(&previous, &current),
            current.done - start.done
        ));
        previous = current;
    }
}

/// Waits `timing.warmup`, then until the completion rate holds steady (two
/// consecutive [`STEADY_WINDOW`]s within [`STEADY_TOLERANCE`]) or
/// `timing.warmup_limit` has passed in all. Across a 200 ms link the worker
/// SDK's window takes several seconds to grow to its size; measuring while
/// it still grows would understate the path.
pub async fn warm_up(load: &Load, timing: &Timing, status: impl Fn(&str)) {
    let started = tokio::time::Instant::now();
    status("warming up");
    tokio::time::sleep(timing.warmup).await;
    let mut last = load.sample();
    let mut previous_rate: Option<f64> = None;
    while started.elapsed() < timing.warmup_limit {
        tokio::time::sleep(STEADY_WINDOW).await;
        let current = load.sample();
        let current_rate = rate(&last, &current);
        last = current;
        status(&format!("warming up: {current_rate:.0} jobs/s"));
        if let Some(previous) = previous_rate
            && (current_rate - previous).abs() <= STEADY_TOLERANCE * previous.max(current_rate)
        {
            return;
        }
        previous_rate = Some(current_rate);
    }
}

/// Jobs per second Faktory processed between two samples' `INFO`
/// readings.
pub fn rate(start: &Sample, end: &Sample) -> f64 {
    per_second(
        end.info
            .counts
            .processed
            .saturating_sub(start.info.counts.processed),
        end.info.at.saturating_duration_since(start.info.at),
    )
}

/// Jobs per second the workers' handlers finished between two samples.
pub fn worker_rate(start: &Sample, end: &Sample) -> f64 {
    per_second(end.done.saturating_sub(start.done), end.at - start.at)
}

fn per_second(jobs: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds <= 0.0 {
        return 0.0;
    }
    jobs as f64 / seconds
}

/// CPU seconds per 100k jobs processed at Faktory of the process `which`
/// picks (gateway, Faktory or the bench itself) between two samples: its CPU per
/// second over its jobs per second, each over its own interval (the `INFO`
/// readings have their own times).
pub fn cpu_per_100k(
    start: &Sample,
    end: &Sample,
    which: impl Fn(&Sample) -> Option<ProcessSample>,
) -> Option<f64> {
    let (before, after) = (which(start)?, which(end)?);
    let seconds = Some((end.at - start.at).as_secs_f64()).filter(|s| *s > 0.0)?;
    let cpu_per_second = (after.cpu_seconds - before.cpu_seconds) / seconds;
    let jobs_per_second = Some(rate(start, end)).filter(|rate| *rate > 0.0)?;
    Some(cpu_per_second / jobs_per_second * 100_000.0)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
