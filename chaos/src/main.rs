//! `chaos`: pushes jobs through Faktory Gateways while workers, streams,
//! the gateways themselves and their Faktory connections fail at random
//! (seeded) moments, then checks that nothing was lost and counts, per
//! fault kind, re-runs of finished jobs, other extra runs and jobs left to
//! Faktory's reservation expiry. Bounded in jobs and time; it stops by
//! itself and exits non-zero when the rule in `verify.rs` is broken (a job
//! lost or misplaced, a finished job re-run after anything but a worker
//! abort or a gateway kill, a retry consumed by what the rule does not
//! allow). The numbers are printed either way.
//!
//! ```text
//! cargo run --release -p faktory-gateway-chaos -- [--short] [--jobs N] [--seed S] [--gateways N]
//! FAKTORY_URL=tcp://127.0.0.1:7419 cargo run --release -p faktory-gateway-chaos -- --short
//! cargo run --release -p faktory-gateway-chaos -- --crash-experiment
//! ```
//!
//! Without `FAKTORY_URL` the Faktory is the project's test server, in
//! process, whose clock the run moves on (retries come back at once; at the
//! end reservations nobody can settle are made to expire, so they show up
//! as `ReservationExpired` retries). With `FAKTORY_URL` it is that Faktory,
//! shared with others: the run uses a queue of its own (`chaos-<random>`,
//! which also starts every jid), lets Faktory's own scheduler bring its
//! retries back (see `target.rs` for why not `MUTATE requeue`), skips the
//! test-server-only fault (Faktory listener
//! restart) with a note, does not wait for the 30-minute expiry but counts
//! the jobs still reserved at the end, and removes everything it left
//! (`inventory.rs`). Gateways are child processes (this binary re-executed),
//! so a gateway kill is a real SIGKILL.
//!
//! `--crash-experiment` runs `crash.rs` instead: one worker across a
//! 50 ms link, the gateway SIGKILLed once Faktory has counted a third of
//! the jobs processed, and what that left behind.
//!
//! # Layout
//! - `main.rs`: options, logging, exit code, the gateway-child entry.
//! - `options.rs`: what one run does.
//! - `run.rs`: the run (stack, phases, faults carried out).
//! - `target.rs`: the Faktory under test (test server or `FAKTORY_URL`).
//! - `inventory.rs`: what a real Faktory still holds of a run, and its removal.
//! - `faults.rs`: fault kinds, weighted seeded choice, counts, the fault log.
//! - `plan.rs`: queue, jids, classes, deterministic failure injection.
//! - `fleet.rs`: SDK workers (abort and replace, slow handlers), spread over gateways.
//! - `producer.rs`: pushing with resends.
//! - `gateway.rs`: a gateway child process (graceful stop, SIGKILL, restart on the same port).
//! - `record.rs`: what handlers saw per jid, and when.
//! - `verify.rs`: the end-of-run check, the attribution to faults, the tables.
//! - `crash.rs`: the crash experiment.

mod crash;
mod faults;
mod fleet;
mod gateway;
mod inventory;
mod options;
mod plan;
mod producer;
mod record;
mod run;
mod target;
mod verify;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use faktory_gateway_bench::setup::gateway_process::{CHILD_ARG, child_main};
use faktory_gateway_bench::setup::run_queues::run_prefix;

/// Chaos run against the Faktory Gateway (gateway child processes, the
/// Faktory test server or `FAKTORY_URL`, SDK workers, link emulators).
#[derive(Debug, Parser)]
#[command(name = "chaos")]
struct Cli {
    /// Short run for CI: 5,000 jobs, faults every 150-600 ms, 100 s budget,
    /// one gateway.
    #[arg(long)]
    short: bool,
    /// Jobs to push (default 100,000; 5,000 with --short; 20,000 with
    /// --crash-experiment).
    #[arg(long)]
    jobs: Option<usize>,
    /// Seed of the fault schedule (and part of every jid).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// SDK workers.
    #[arg(long, default_value_t = 8)]
    workers: usize,
    /// Gateways, each with its share of the workers and producers (default
    /// 1 with --short, else 2). Crash experiment: gateways the worker is
    /// given (default 1, restarted after the kill; more: it fails over).
    #[arg(long)]
    gateways: Option<usize>,
    /// Time budget in seconds (default 100 with --short, else 600).
    #[arg(long)]
    budget_secs: Option<u64>,
    /// Only these fault kinds (comma-separated; default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<faults::Fault>,
    /// Run the crash experiment instead (see the crate docs).
    #[arg(long)]
    crash_experiment: bool,
    /// Crash experiment: round-trip time of the worker's link, in ms.
    #[arg(long, default_value_t = 50)]
    rtt_ms: u64,
    /// Crash experiment: the worker's handler concurrency.
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some(CHILD_ARG) {
        // The gateway child (see `gateway.rs`), on the gateway's own runtime.
        return child_main(argv[2..].to_vec());
    }
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(chaos_main()),
        Err(e) => {
            eprintln!("chaos: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The chaos run or the crash experiment, as the options say.
async fn chaos_main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if cli.crash_experiment {
        return crash_experiment(&cli).await;
    }
    let options = options::Options {
        plan: plan::Plan {
            queue: run_prefix("chaos"),
            seed: cli.seed,
            reserve_for: plan::RESERVE_FOR_SECS,
        },
        jobs: cli.jobs.unwrap_or(if cli.short { 5_000 } else { 100_000 }),
        workers: cli.workers.max(1),
        gateways: cli.gateways.unwrap_or(if cli.short { 1 } else { 2 }).max(1),
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

async fn crash_experiment(cli: &Cli) -> ExitCode {
    let options = crash::CrashOptions {
        jobs: cli.jobs.unwrap_or(20_000),
        rtt: Duration::from_millis(cli.rtt_ms),
        concurrency: cli.concurrency.max(1),
        kill_at: 1.0 / 3.0,
        limit: Duration::from_secs(cli.budget_secs.unwrap_or(180)),
        gateways: cli.gateways.unwrap_or(1).max(1),
    };
    match crash::run(options).await {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("crash experiment failed to run: {e:#}");
            ExitCode::from(2)
        }
    }
}
