//! `chaos`: pushes jobs through a Faktory Gateway while workers, streams,
//! the gateway itself and its Faktory connections fail at random (seeded)
//! moments, then checks that nothing was lost. Bounded in jobs and time; it
//! stops by itself and exits non-zero when a job was lost or misplaced, or a
//! Faktory retry was consumed by a gateway-side event.
//!
//! ```text
//! cargo run --release -p faktory-gateway-chaos -- [--short] [--jobs N] [--seed S]
//! ```
//!
//! # Layout
//! - `main.rs`: options, logging, exit code.
//! - `run.rs`: the run (stack, phases, faults carried out).
//! - `faults.rs`: fault kinds, weighted seeded choice, counts.
//! - `plan.rs`: jids, classes, deterministic failure injection.
//! - `fleet.rs`: SDK workers (abort and replace, slow handlers).
//! - `producer.rs`: pushing with resends.
//! - `gateway.rs`: a gateway on its own runtime (graceful stop, kill, restart on the same port).
//! - `record.rs`: what handlers saw per jid.
//! - `verify.rs`: the end-of-run check and summary table.

mod faults;
mod fleet;
mod gateway;
mod plan;
mod producer;
mod record;
mod run;
mod verify;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

/// Chaos run against the Faktory Gateway (in-process gateway, Faktory test
/// server, SDK workers, link emulators).
#[derive(Debug, Parser)]
#[command(name = "chaos")]
struct Cli {
    /// Short run for CI: 5,000 jobs, faults every 150-600 ms, 100 s budget.
    #[arg(long)]
    short: bool,
    /// Jobs to push (default 100,000; 5,000 with --short).
    #[arg(long)]
    jobs: Option<usize>,
    /// Seed of the fault schedule (and part of every jid).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// SDK workers.
    #[arg(long, default_value_t = 8)]
    workers: usize,
    /// Time budget in seconds (default 100 with --short, else 600).
    #[arg(long)]
    budget_secs: Option<u64>,
    /// Only these fault kinds (comma-separated; default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<faults::Fault>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let options = run::Options {
        jobs: cli.jobs.unwrap_or(if cli.short { 5_000 } else { 100_000 }),
        seed: cli.seed,
        workers: cli.workers.max(1),
        producers: 4,
        budget: Duration::from_secs(cli.budget_secs.unwrap_or(if cli.short { 100 } else { 600 })),
        fault_gap_ms: if cli.short { (150, 600) } else { (300, 1500) },
        max_kills: if cli.short { 1 } else { 3 },
        faults: if cli.only.is_empty() {
            faults::Fault::ALL.to_vec()
        } else {
            cli.only
        },
    };
    match run::run(options).await {
        Ok(summary) => {
            println!("{summary}");
            if summary.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("chaos run failed to run: {e:#}");
            ExitCode::from(2)
        }
    }
}
