//! Pushes N `add` jobs (args `[{"a": i, "b": i}]`) through the gateway's
//! `Push` RPC in batches, printing progress.
//!
//! ```text
//! cargo run -p faktory-gateway-worker --example add_producer -- --jobs 100000 --batch 500
//! ```
//! Flags fall back to `GATEWAY_URL` and `PRODUCER_TOKEN`.

use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use faktory_gateway_worker::proto::{Job, PushRequest, PushStatus, gateway_client::GatewayClient};
use tonic::metadata::MetadataValue;

#[derive(Debug, Parser)]
struct Args {
    /// Gateway URL.
    #[arg(long, env = "GATEWAY_URL", default_value = "http://127.0.0.1:7421")]
    gateway: String,
    /// How many jobs to push.
    #[arg(long, default_value_t = 10_000)]
    jobs: usize,
    /// Jobs per `Push` call.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Target queue.
    #[arg(long, default_value = "default")]
    queue: String,
    /// Bearer token, if the gateway requires one for producers.
    #[arg(long, env = "PRODUCER_TOKEN")]
    token: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut client = GatewayClient::connect(args.gateway.clone())
        .await
        .with_context(|| format!("connecting to {}", args.gateway))?
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    let started = Instant::now();
    let (mut accepted, mut refused) = (0usize, 0usize);
    let batch = args.batch.max(1);
    for first in (0..args.jobs).step_by(batch) {
        let jobs = (first..(first + batch).min(args.jobs))
            .map(|i| Job {
                jobtype: "add".into(),
                queue: args.queue.clone(),
                args: format!(r#"[{{"a": {i}, "b": {i}}}]"#).into(),
                ..Job::default()
            })
            .collect();
        let mut request = tonic::Request::new(PushRequest { jobs });
        if let Some(token) = &args.token {
            request.metadata_mut().insert(
                "authorization",
                MetadataValue::try_from(format!("Bearer {token}"))?,
            );
        }
        let response = client.push(request).await.context("push")?.into_inner();
        for result in response.results {
            if result.status() == PushStatus::Accepted {
                accepted += 1;
            } else {
                refused += 1;
                if refused <= 5 {
                    eprintln!(
                        "job {} not accepted: {:?} {}",
                        result.jid,
                        result.status(),
                        result.reason
                    );
                }
            }
        }
        let done = accepted + refused;
        if (done / batch) % 10 == 0 || done == args.jobs {
            let rate = done as f64 / started.elapsed().as_secs_f64();
            println!(
                "pushed {done}/{} ({refused} refused), {rate:.0} jobs/s",
                args.jobs
            );
        }
    }
    println!(
        "done: {accepted} accepted, {refused} refused in {:.2?}",
        started.elapsed()
    );
    Ok(())
}
