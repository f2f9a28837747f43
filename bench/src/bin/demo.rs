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

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use faktory_gateway_bench::direct::connections_for;
use faktory_gateway_bench::gateway_path::{SdkTuning, SdkWorkers};
use faktory_gateway_bench::link::Link;
use faktory_gateway_bench::load::{Env, Load};
use faktory_gateway_bench::probe::Probe;
use faktory_gateway_bench::progress::Progress;
use faktory_gateway_bench::push::{gateway_client, push_via_gateway, wire_job};
use faktory_gateway_bench::runner::{measure_window, rate};
use faktory_gateway_bench::scenario::{Scenario, WorkerPath, Workload};
use faktory_gateway_bench::target::FaktoryTarget;
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
}

const QUEUE: &str = "demo";
const DIRECT_QUEUE: &str = "demo-direct";
const PUSH_BATCH: u64 = 1000;
/// The gateway run gives up after this long.
const GATEWAY_RUN_LIMIT: Duration = Duration::from_secs(120);

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
    let target = FaktoryTarget::from_env().await.context("faktory")?;
    progress.line(&format!("faktory: {}", target.describe()));

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
        QUEUE,
        args.concurrency,
        SdkTuning::default(),
        Arc::clone(&probe),
    )?;
    progress.line(&format!(
        "worker: 1 SDK worker, concurrency {}, {} ms round trip from the gateway",
        args.concurrency, args.latency_ms
    ));

    let pushed = Arc::new(AtomicU64::new(0));
    let producer = tokio::spawn(produce(
        format!("http://{gateway_addr}"),
        args.jobs,
        Arc::clone(&pushed),
    ));
    progress.line(&format!(
        "producer: pushing {} jobs through the gateway",
        args.jobs
    ));

    let started = Instant::now();
    let mut last = (Instant::now(), 0);
    while probe.done() < args.jobs {
        if started.elapsed() > GATEWAY_RUN_LIMIT {
            bail!(
                "only {} of {} jobs done after {GATEWAY_RUN_LIMIT:?}",
                probe.done(),
                args.jobs
            );
        }
        if producer.is_finished() && pushed.load(Ordering::Relaxed) < args.jobs {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        let done = probe.done();
        let now = Instant::now();
        let current = (done - last.1) as f64 / (now - last.0).as_secs_f64();
        last = (now, done);
        progress.status(&format!(
            "pushed {:>6}/{}  done {:>6}  rate {:>6.0} jobs/s",
            pushed.load(Ordering::Relaxed),
            args.jobs,
            done,
            current
        ));
    }
    producer.await.context("producer task")??;
    let gateway_seconds = started.elapsed().as_secs_f64();
    let gateway_rate = probe.done() as f64 / gateway_seconds;
    progress.line(&format!(
        "gateway path: {} jobs in {gateway_seconds:.1} s = {gateway_rate:.0} jobs/s over 1 connection",
        probe.done()
    ));
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
        faktory_pid: None,
    };
    let direct = Scenario {
        path: WorkerPath::Direct {
            slots: args.concurrency,
        },
        rtt,
        workload: Workload::Noop,
    };
    let load = Load::start(&env, direct, DIRECT_QUEUE).await?;
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
    load.stop().await?;
    gateway.await.context("gateway task")?.context("gateway")?;
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

/// Pushes `total` jobs through the gateway's `Push` in batches.
async fn produce(url: String, total: u64, pushed: Arc<AtomicU64>) -> anyhow::Result<()> {
    let mut client = gateway_client(&url).await?;
    let mut sent = 0;
    while sent < total {
        let count = PUSH_BATCH.min(total - sent);
        let jobs = (0..count)
            .map(|_| wire_job(QUEUE, Workload::Noop, 0))
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
