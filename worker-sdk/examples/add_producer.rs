//! Pushes N `add` jobs (args `[{"a": i, "b": i}]`) with the SDK's producer
//! [`Client`], one `Push` call per batch, printing progress.
//!
//! ```text
//! cargo run -p faktory-gateway-worker --example add_producer -- --jobs 100000 --batch 500
//! ```
//! Without flags the SDK's variables apply: `GATEWAY_URL` (the first URL of
//! a list is tried first), `GATEWAY_PRODUCER_TOKEN`, `GATEWAY_TLS_CA`,
//! `GATEWAY_TLS_DOMAIN`. `worker-sdk/tests/client.rs` runs this program's
//! [`run`] end to end.

use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use faktory_gateway_worker::{Client, NewJob};
use serde::Serialize;

/// The command line.
#[derive(Debug, Parser)]
pub struct Args {
    /// Gateway URL (default: `GATEWAY_URL`, else http://127.0.0.1:7421).
    #[arg(long)]
    pub gateway: Option<String>,
    /// How many jobs to push.
    #[arg(long, default_value_t = 10_000)]
    pub jobs: usize,
    /// Jobs per `Push` call.
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// Target queue.
    #[arg(long, default_value = "default")]
    pub queue: String,
    /// Producer token, if the gateway requires one (default:
    /// `GATEWAY_PRODUCER_TOKEN`).
    #[arg(long)]
    pub token: Option<String>,
}

/// The `add` job's single argument.
#[derive(Debug, Serialize)]
struct Add {
    a: usize,
    b: usize,
}

/// How a run went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Jobs Faktory holds.
    pub accepted: usize,
    /// Jobs refused (invalid, rejected, unavailable).
    pub refused: usize,
}

/// Pushes the jobs `args` asks for.
///
/// Fails when the client cannot be built or a call fails as a whole.
pub async fn run(args: Args) -> anyhow::Result<Summary> {
    let mut client = Client::builder();
    if let Some(gateway) = &args.gateway {
        client = client.gateway(gateway);
    }
    if let Some(token) = &args.token {
        client = client.token(token);
    }
    let client = client.build().context("producer client")?;
    let started = Instant::now();
    let mut summary = Summary {
        accepted: 0,
        refused: 0,
    };
    let batch = args.batch.max(1);
    for first in (0..args.jobs).step_by(batch) {
        let jobs = (first..(first + batch).min(args.jobs))
            .map(|i| Ok(NewJob::new("add", (Add { a: i, b: i },))?.queue(&args.queue)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let receipts = client.push_many(jobs).await.context("push")?;
        for receipt in receipts {
            if receipt.is_accepted() {
                summary.accepted += 1;
                continue;
            }
            summary.refused += 1;
            if summary.refused <= 5 {
                eprintln!("job {} not accepted: {:?}", receipt.jid, receipt.outcome);
            }
        }
        let done = summary.accepted + summary.refused;
        if (done / batch).is_multiple_of(10) || done == args.jobs {
            let rate = done as f64 / started.elapsed().as_secs_f64();
            println!(
                "pushed {done}/{} ({} refused), {rate:.0} jobs/s",
                args.jobs, summary.refused
            );
        }
    }
    println!(
        "done: {} accepted, {} refused in {:.2?}",
        summary.accepted,
        summary.refused,
        started.elapsed()
    );
    Ok(summary)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    run(Args::parse()).await.map(|_| ())
}
