//! The benchmark: every scenario of the plan in one invocation, so ratios
//! compare numbers from the same run.
//!
//! ```text
//! cargo build --release -p faktory-gateway-bench
//! cargo run --release -p faktory-gateway-bench --bin bench -- [--short] [--json out.json]
//! ```
//!
//! Uses the in-process Faktory test server unless `FAKTORY_URL` is set.
//! Progress goes to stderr, the table to stdout, the JSON to `--json`
//! (default `bench-results/bench-<mode>.json`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use faktory_gateway::error::chain;
use faktory_gateway_bench::output::goals::evaluate;
use faktory_gateway_bench::output::progress::Progress;
use faktory_gateway_bench::output::report::{Report, fill_ratios};
use faktory_gateway_bench::runs::cpu_cost::run_cpu_cost;
use faktory_gateway_bench::runs::load::Env;
use faktory_gateway_bench::runs::push::run_push;
use faktory_gateway_bench::runs::rounds::combine;
use faktory_gateway_bench::runs::runner::run_throughput;
use faktory_gateway_bench::runs::scenario::{Plan, PushMode};
use faktory_gateway_bench::setup::gateway_process::{CHILD_ARG, GatewayProcess, child_main};
use faktory_gateway_bench::setup::run_queues::{clean_up, run_prefix};
use faktory_gateway_bench::setup::target::{
    FaktoryTarget, Pace, TEST_SERVER_CHILD_ARG, run_test_server_child,
};
use faktory_gateway_bench::workers::gateway_path::SdkTuning;

/// Name of the CPU-cost step, for `--only`.
const CPU_COST_STEP: &str = "cpu cost";

/// Faktory Gateway benchmark: gateway-path workers against direct Faktory
/// workers across emulated link latencies.
#[derive(Debug, Parser)]
#[command(name = "bench")]
struct Args {
    /// The short plan (core scenarios, brief phases; for CI).
    #[arg(long)]
    short: bool,
    /// Where to write the JSON report (default bench-results/bench-<mode>.json).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Only run the steps whose name contains one of these comma-separated
    /// texts: throughput scenarios (e.g. `direct-50 rtt=0ms,gateway-50`),
    /// push comparisons (`push`, `push gateway batch 100`) and `cpu cost`.
    #[arg(long)]
    only: Option<String>,
    /// Measure every throughput scenario this many times, the rounds taking
    /// turns (all scenarios once, then all again, ...); each row shows the
    /// median round and the table lists every round's jobs/s. On a noisy
    /// machine single rows move by +-20% between runs. The push and CPU-cost
    /// steps run once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    /// Skip the push comparisons and the CPU-cost comparison.
    #[arg(long)]
    throughput_only: bool,
    /// Extra argument for every gateway (repeat), e.g. `--gateway-arg=--fetch-concurrency=8`;
    /// the last of a repeated option wins, so this also overrides the bench's own options
    /// (`--metrics-listen=off`).
    #[arg(long = "gateway-arg", allow_hyphen_values = true)]
    gateway_args: Vec<String>,
    /// Override the worker SDK's prefetch cap (default: the SDK's own).
    #[arg(long)]
    sdk_max_prefetch: Option<u32>,
    /// Run the Faktory test server in a child process (its CPU per job is
    /// reported, and the bench process's RSS excludes it). Ignored when
    /// FAKTORY_URL is set.
    #[arg(long)]
    faktory_child: bool,
    /// Run the test server in its fast mode (no Faktory cost model): measures
    /// the gateway's own cost. By default it answers at Faktory 1.10's pace.
    /// Ignored when FAKTORY_URL is set.
    #[arg(long)]
    fast_test_server: bool,
    /// A process whose CPU counts as Faktory's (repeat): with a local real
    /// Faktory, its pid and its Redis's, e.g.
    /// `--faktory-pid $(pgrep -x faktory) --faktory-pid $(pgrep -x redis-server)`;
    /// the table then shows Faktory's CPU per job beside the gateway's and the bench's.
    #[arg(long = "faktory-pid")]
    faktory_pids: Vec<u32>,
    /// Override the worker SDK's ack batching delay, ms (default: the SDK's own).
    #[arg(long)]
    sdk_result_delay_ms: Option<u64>,
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some(CHILD_ARG) {
        return child_main(argv[2..].to_vec());
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if argv.get(1).map(String::as_str) == Some(TEST_SERVER_CHILD_ARG) {
        return match runtime.block_on(run_test_server_child(&argv[2..])) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("test server child: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let args = Args::parse();
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the plan; returns whether every scenario completed.
async fn run(args: Args) -> anyhow::Result<bool> {
    let plan = if args.short {
        Plan::short()
    } else {
        Plan::full()
    };
    let progress = Progress::default();
    let exe = std::env::current_exe().context("locate the bench binary")?;
    let external = std::env::var("FAKTORY_URL").is_ok_and(|url| !url.trim().is_empty());
    let pace = Pace::from_fast_flag(args.fast_test_server);
    let target = if args.faktory_child && !external {
        FaktoryTarget::child(&exe, pace).await
    } else {
        FaktoryTarget::from_env(pace).await
    }
    .context("faktory")?;
    let env = Env {
        faktory_url: target.url(),
        faktory_addr: target.addr(),
        gateway_exe: exe.clone(),
        gateway_args: args.gateway_args.clone(),
        sdk: SdkTuning {
            max_prefetch: args.sdk_max_prefetch,
            result_batch_delay: args
                .sdk_result_delay_ms
                .map(std::time::Duration::from_millis),
        },
        faktory_pids: target
            .child_pid()
            .into_iter()
            .chain(args.faktory_pids.iter().copied())
            .collect(),
        queue_prefix: run_prefix("bench"),
    };
    let selected = |name: &str| {
        args.only
            .as_ref()
            .is_none_or(|only| only.split(',').any(|part| name.contains(part.trim())))
    };
    let scenarios: Vec<_> = plan
        .scenarios
        .iter()
        .copied()
        .filter(|s| selected(&s.name()))
        .collect();
    let pushes: Vec<_> = plan
        .pushes
        .iter()
        .copied()
        .filter(|p| !args.throughput_only && selected(&p.name()))
        .collect();
    let cpu_cost_step = plan.cpu_cost && !args.throughput_only && selected(CPU_COST_STEP);
    let rounds = args.rounds as usize;
    let throughput_steps = scenarios.len() * rounds;
    let steps = throughput_steps + pushes.len() + usize::from(cpu_cost_step);
    progress.line(&format!(
        "bench ({} mode): {steps} steps against {}, queues {}-*{}",
        plan.mode,
        target.describe(),
        env.queue_prefix,
        if rounds > 1 {
            format!(", {rounds} rounds of the throughput scenarios")
        } else {
            String::new()
        }
    ));

    let load_at_start = load_average();
    let mut all_ok = true;
    let mut measured_rounds = Vec::new();
    let mut step = 0;
    for round in 1..=rounds {
        let mut rows = Vec::new();
        for scenario in &scenarios {
            step += 1;
            let label = if rounds > 1 {
                format!("[{step}/{steps} round {round}/{rounds}]")
            } else {
                format!("[{step}/{steps}]")
            };
            match run_throughput(&env, *scenario, &plan.timing, &progress, &label).await {
                Ok(row) => rows.push(row),
                Err(e) => {
                    all_ok = false;
                    progress.line(&format!(
                        "{label} {} FAILED: {}",
                        scenario.name(),
                        chain(&e)
                    ));
                }
            }
        }
        measured_rounds.push(rows);
    }
    let mut throughput = combine(measured_rounds);

    let mut push = Vec::new();
    let mut cpu_cost = None;
    if !pushes.is_empty() {
        let gateway =
            GatewayProcess::start(&env.gateway_exe, &env.faktory_url, &env.gateway_args).await?;
        for scenario in &pushes {
            step += 1;
            let label = format!("[{step}/{steps}]");
            let name = scenario.name();
            progress.line(&format!("{label} {name}"));
            let total = push_total(plan.mode, scenario.mode);
            let pushed = run_push(
                &env.faktory_url,
                Some(&gateway),
                *scenario,
                total,
                &env.queue_prefix,
            );
            match pushed.await {
                Ok(row) => {
                    progress.line(&format!("{label} {name}: {:.0} jobs/s", row.jobs_per_s));
                    push.push(row);
                }
                Err(e) => {
                    all_ok = false;
                    progress.line(&format!("{label} {name} FAILED: {}", chain(&e)));
                }
            }
        }
        if let Err(e) = gateway.stop().await {
            progress.line(&format!("push gateway did not stop cleanly: {}", chain(&e)));
        }
    }
    if cpu_cost_step {
        let label = format!("[{steps}/{steps}]");
        match run_cpu_cost(&env, &plan.timing, &progress, &label).await {
            Ok(row) => cpu_cost = Some(row),
            Err(e) => {
                all_ok = false;
                progress.line(&format!("{label} cpu cost FAILED: {}", chain(&e)));
            }
        }
    }

    fill_ratios(&mut throughput, &mut push);
    let targets = evaluate(&throughput, &push, cpu_cost.as_ref());
    let report = Report {
        mode: plan.mode.to_owned(),
        rounds,
        machine: format!(
            "{}; load average {load_at_start} at start, {} at end",
            machine(),
            load_average()
        ),
        faktory: target.describe(),
        throughput,
        push,
        cpu_cost,
        targets,
    };
    println!("{}", report.to_table());
    let json_path = args
        .json
        .unwrap_or_else(|| PathBuf::from(format!("bench-results/bench-{}.json", plan.mode)));
    if let Some(dir) = json_path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    std::fs::write(&json_path, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("write {}", json_path.display()))?;
    progress.line(&format!("json written to {}", json_path.display()));
    match clean_up(&env.faktory_url, &env.queue_prefix).await {
        Ok(cleanup) => progress.line(&format!("clean-up: {}", cleanup.describe())),
        Err(e) => {
            all_ok = false;
            progress.line(&format!("clean-up FAILED: {}", chain(&e)));
        }
    }
    target.shutdown().await;
    Ok(all_ok)
}

/// Jobs per push scenario: enough for a stable rate, few enough that the
/// unconsumed jobs stay small in the server's memory.
fn push_total(mode: &str, push: PushMode) -> usize {
    let short = mode == "short";
    match push {
        PushMode::Batch { size: 1 } | PushMode::Concurrent { .. } => {
            if short {
                5_000
            } else {
                20_000
            }
        }
        PushMode::Batch { .. } => {
            if short {
                100_000
            } else {
                300_000
            }
        }
    }
}

fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown cpu".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cores} cores")
}

/// The 1-minute load average: other work on the machine skews every number.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}
