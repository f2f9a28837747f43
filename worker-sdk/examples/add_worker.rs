//! A worker for the `add` job: args `[{"a": 1, "b": 2}]`.
//!
//! ```text
//! cargo run -p faktory-gateway-worker --example add_worker -- --gateway http://127.0.0.1:7421 --concurrency 50
//! ```
//! Without flags the SDK's variables apply (`GATEWAY_URL`,
//! `GATEWAY_WORKER_TOKEN`, `GATEWAY_TLS_CA`, `GATEWAY_TLS_DOMAIN`,
//! `WORKER_CONCURRENCY`, `WORKER_QUEUES`, `WORKER_LABELS`,
//! `WORKER_MAX_PREFETCH`, `WORKER_ID`; see the worker-sdk README). Ctrl-C
//! drains: running jobs finish, prefetched ones go back.

use std::time::Duration;

use clap::Parser;
use faktory_gateway_worker::{Job, JobError, Worker};
use serde::Deserialize;
use tracing::info;

/// The command line; every flag overrides its environment variable.
#[derive(Debug, Parser)]
struct Args {
    /// Gateway URLs (comma separated; the worker spreads over them and fails
    /// over from one to the next).
    #[arg(long, value_delimiter = ',')]
    gateway: Option<Vec<String>>,
    /// Handlers running at once.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Most jobs prefetched beyond `concurrency` (0 = off).
    #[arg(long)]
    max_prefetch: Option<u32>,
    /// Queues, highest priority first (comma separated).
    #[arg(long, value_delimiter = ',')]
    queues: Option<Vec<String>>,
    /// Worker token, if the gateway requires one.
    #[arg(long)]
    token: Option<String>,
    /// Seconds running jobs get to finish on Ctrl-C.
    #[arg(long, default_value_t = 30)]
    shutdown_timeout: u64,
}

/// The `add` job's single argument.
#[derive(Debug, Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

async fn add(job: Job) -> Result<(), JobError> {
    let (Add { a, b },) = job.args()?;
    let sum = a
        .checked_add(b)
        .ok_or_else(|| JobError::new("Overflow", format!("{a} + {b} does not fit in i64")))?;
    tracing::debug!(a, b, sum, "added");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let mut builder = Worker::builder()
        .shutdown_timeout(Duration::from_secs(args.shutdown_timeout))
        .register("add", add)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        });
    if let Some(gateways) = args.gateway {
        builder = builder.gateways(gateways);
    }
    if let Some(n) = args.concurrency {
        builder = builder.concurrency(n);
    }
    if let Some(n) = args.max_prefetch {
        builder = builder.max_prefetch(n);
    }
    if let Some(queues) = args.queues {
        builder = builder.queues(queues);
    }
    if let Some(token) = args.token {
        builder = builder.token(token);
    }
    let worker = builder.build()?;
    let stats = worker.stats();
    let reporter = tokio::spawn(async move {
        let mut last = 0;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let s = stats.snapshot();
            let done = s.succeeded + s.failed;
            info!(
                jobs_per_s = done - last,
                done,
                failed = s.failed,
                running = s.running,
                prefetched = s.prefetched,
                window = s.window,
                rtt = ?s.rtt,
                "progress"
            );
            last = done;
        }
    });
    let reason = worker.run().await?;
    reporter.abort();
    info!(?reason, "worker stopped");
    Ok(())
}
