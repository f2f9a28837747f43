//! The one-command demo:
//!
//! ```text
//! cargo run --release -p faktory-gateway-bench --bin demo
//! ```
//!
//! Starts the Faktory test server in this process (or uses the Faktory at
//! `FAKTORY_URL`), a gateway beside it, one worker-SDK worker behind an
//! emulated slow link, and a producer pushing through the gateway; shows
//! live progress; then runs a direct `faktory`-crate worker with the same
//! concurrency across the same link for comparison, and exits.
//!
//! A job counts as done when Faktory has its `ACK` (its `INFO`
//! `total_processed`, server-wide, so nothing else should run against the
//! same Faktory meanwhile). The demo uses queues of its own
//! (`demo-<random>`) and leaves nothing queued on them.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use faktory_gateway_bench::measure::faktory_stats::InfoPoller;
use faktory_gateway_bench::output::progress::Progress;
use faktory_gateway_bench::runs::load::{Env, Load};
use faktory_gateway_bench::runs::push::{gateway_client, push_via_gateway, wire_job};
use faktory_gateway_bench::runs::runner::{measure_window, rate};
use faktory_gateway_bench::runs::scenario::{Scenario, WorkerPath, Workload};
use faktory_gateway_bench::setup::link::Link;
use faktory_gateway_bench::setup::run_queues::{clean_up, run_prefix};
use faktory_gateway_bench::setup::target::{FaktoryTarget, Pace};
use faktory_gateway_bench::workers::direct::connections_for;
use faktory_gateway_bench::workers::gateway_path::{SdkTuning, SdkWorkers};
use faktory_gateway_bench::workers::probe::Probe;
use tokio_util::sync::CancellationToken;

/// Faktory Gateway demo: a remote worker through the gateway against a
/// direct Faktory worker, across the same emulated link.
#[derive(Debug, Parser)]
#[command(name = "demo")]
struct Args {
    /// Jobs to push through the gateway.
    #[arg(long, default_value_t = 20_000)]
    jobs: u64,
    /// Round-trip time of the emulated link between the worker and the
    /// gateway (and between the direct worker and Faktory), milliseconds.
    #[arg(long, default_value_t = 50)]
    latency_ms: u64,
    /// Handler concurrency of both workers (slots of the direct worker).
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// How long the direct worker's comparison run lasts, seconds.
    #[arg(long, default_value_t = 5)]
    compare_seconds: u64,
    /// Run the built-in test server in its fast mode (no Faktory cost
    /// model). By default it answers at Faktory 1.10's pace. Ignored when
    /// FAKTORY_URL is set.
    #[arg(long)]
    fast_test_server: bool,
}

const PUSH_BATCH: u64 = 1000;
/// The gateway run gives up after this long.
const GATEWAY_RUN_LIMIT: Duration = Duration::from_secs(120);
/// Longest wait for the direct worker to finish the jobs queued for it
/// before it stops (stopping it with jobs queued would leave some reserved).
const DIRECT_DRAIN_LIMIT: Duration = Duration::from_secs(60);

fn main() -> ExitCode {
    let args = Args::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("demo: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let progress = Progress::default();
    let rtt = Duration::from_millis(args.latency_ms);
    let pace = Pace::from_fast_flag(args.fast_test_server);
    let target = FaktoryTarget::from_env(pace).await.context("faktory")?;
    let prefix = run_prefix("demo");
    let queue = format!("{prefix}-gateway");
    progress.line(&format!(
        "faktory: {}; queues {prefix}-*",
        target.describe()
    ));
    let info = InfoPoller::start(&target.url(), &queue).await?;

    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let gateway_addr = listener.local_addr()?;
    let config = <faktory_gateway::Config as clap::Parser>::try_parse_from([
        "faktory-gateway",
        "--faktory-url",
        &target.url(),
        "--metrics-listen=off",
        // The worker has stopped before the gateway; no long drain needed.
        "--shutdown-grace-ms=3000",
    ])
    .context("gateway configuration")?;
    let gateway = tokio::spawn(faktory_gateway::serve(
        config,
        listener,
        shutdown.clone().cancelled_owned(),
    ));
    progress.line(&format!(
        "gateway: listening on {gateway_addr}, next to Faktory"
    ));

    let link = Link::start(gateway_addr, rtt).await?;
    let probe = Arc::new(Probe::new(Workload::Noop));
    let worker = SdkWorkers::start(
        &format!("http://{}", link.addr()),
        &queue,
        args.concurrency,
        SdkTuning::default(),
        Arc::clone(&probe),
    )?;
    let stats = worker.stats();
    info.watch_window(move || stats.snapshot().window);
    progress.line(&format!(
        "worker: 1 SDK worker, concurrency {}, {} ms round trip from the gateway",
        args.concurrency, args.latency_ms
    ));

    let pushed = Arc::new(AtomicU64::new(0));
    let producer = tokio::spawn(produce(
        format!("http://{gateway_addr}"),
        queue.clone(),
        args.jobs,
        Arc::clone(&pushed),
    ));
    progress.line(&format!(
        "producer: pushing {} jobs through the gateway",
        args.jobs
    ));

    let started = Instant::now();
    let processed_before = info.latest().counts.processed;
    let acked = || {
        info.latest()
            .counts
            .processed
            .saturating_sub(processed_before)
    };
    let mut last = (Instant::now(), 0);
    let mut at_worker = None;
    while acked() < args.jobs {
        if started.elapsed() > GATEWAY_RUN_LIMIT {
            bail!(
                "only {} of {} jobs acknowledged at Faktory after {GATEWAY_RUN_LIMIT:?}",
                acked(),
                args.jobs
            );
        }
        if producer.is_finished() && pushed.load(Ordering::Relaxed) < args.jobs {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        if at_worker.is_none() && probe.done() >= args.jobs {
            at_worker = Some(started.elapsed());
        }
        let done = acked();
        let now = Instant::now();
        let current = done.saturating_sub(last.1) as f64 / (now - last.0).as_secs_f64();
        last = (now, done);
        progress.status(&format!(
            "pushed {:>6}/{}  done at worker {:>6}  acked at Faktory {:>6}  rate {:>6.0} jobs/s",
            pushed.load(Ordering::Relaxed),
            args.jobs,
            probe.done(),
            done,
            current
        ));
    }
    producer.await.context("producer task")??;
    let gateway_seconds = started.elapsed().as_secs_f64();
    let gateway_rate = acked() as f64 / gateway_seconds;
    let peaks = info.peaks();
    progress.line(&format!(
        "gateway path: {} jobs acknowledged at Faktory in {gateway_seconds:.1} s = \
         {gateway_rate:.0} jobs/s over 1 connection (all finished at the worker after {}); \
         Faktory's reserved set peaked at {} (the worker's window at most {})",
        acked(),
        at_worker.map_or("-".to_owned(), |d| format!("{:.1} s", d.as_secs_f64())),
        peaks.reserved,
        peaks.window
    ));
    info.stop().await?;
    worker.stop().await?;
    drop(link);
    // The gateway drains while the direct comparison runs.
    shutdown.cancel();

    progress.line(&format!(
        "direct: a faktory-crate worker with {} slots across the same {} ms link, for {} s...",
        args.concurrency, args.latency_ms, args.compare_seconds
    ));
    let env = Env {
        faktory_url: target.url(),
        faktory_addr: target.addr(),
        gateway_exe: std::env::current_exe()?,
        gateway_args: Vec::new(),
        sdk: SdkTuning::default(),
        faktory_pids: Vec::new(),
        queue_prefix: prefix.clone(),
    };
    let direct = Scenario {
        path: WorkerPath::Direct {
            slots: args.concurrency,
        },
        rtt,
        workload: Workload::Noop,
    };
    let mut load = Load::start(&env, direct, &direct.queue(&prefix)).await?;
    load.wait_ready(Duration::from_secs(60), |m| {
        progress.status(&format!("direct: {m}"))
    })
    .await;
    let start = load.sample();
    let end = measure_window(&load, Duration::from_secs(args.compare_seconds), |m| {
        progress.status(&format!("direct: {m}"))
    })
    .await;
    let direct_rate = rate(&start, &end);
    let drained = load
        .drain(DIRECT_DRAIN_LIMIT, |m| {
            progress.status(&format!("direct: {m}"))
        })
        .await?;
    if !drained {
        progress.line(&format!(
            "direct: jobs still queued after {DIRECT_DRAIN_LIMIT:?}; the clean-up takes them"
        ));
    }
    load.stop().await?;
    gateway.await.context("gateway task")?.context("gateway")?;
    let cleanup = clean_up(&target.url(), &prefix).await?;
    progress.line(&format!("clean-up: {}", cleanup.describe()));
    target.shutdown().await;

    progress.line("");
    progress.line(&format!("across a {} ms round-trip link:", args.latency_ms));
    progress.line(&format!(
        "  through the gateway  {gateway_rate:>8.0} jobs/s   1 TCP connection, concurrency {}",
        args.concurrency
    ));
    progress.line(&format!(
        "  direct to Faktory    {direct_rate:>8.0} jobs/s   {} TCP connections, {} slots",
        connections_for(args.concurrency),
        args.concurrency
    ));
    if direct_rate > 0.0 {
        progress.line(&format!(
            "  speed-up             {:>8.1}x",
            gateway_rate / direct_rate
        ));
    }
    Ok(())
}

/// Pushes `total` jobs for `queue` through the gateway's `Push` in batches.
async fn produce(
    url: String,
    queue: String,
    total: u64,
    pushed: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let mut client = gateway_client(&url).await?;
    let mut sent = 0;
    while sent < total {
        let count = PUSH_BATCH.min(total - sent);
        let jobs = (0..count)
            .map(|_| wire_job(&queue, Workload::Noop, 0))
            .collect();
        let accepted = push_via_gateway(&mut client, jobs).await?;
        if accepted < count {
            bail!("gateway accepted only {accepted} of {count} jobs");
        }
        sent += count;
        pushed.store(sent, Ordering::Relaxed);
    }
    Ok(())
}
