//! What a co-located gateway costs Faktory: co-located direct workers'
//! throughput alone, then while a gateway (next to Faktory) relays a
//! parallel load to co-located SDK workers on another queue — and, for
//! comparison, while a second group of direct workers runs that parallel
//! load without a gateway.
//!
//! On one machine everything shares the same cores (Faktory, gateway,
//! workers, producers), so the direct workers' own drop includes the CPU
//! the extra workers and producer take and Faktory serving the extra load:
//! any parallel load costs them about half (the direct-beside-direct
//! phase). What isolates the gateway is Faktory's *total* throughput, every
//! job it served: a gateway whose CPU took more from Faktory than its
//! batched FETCH/ACK saves would push that total below the direct-only
//! figure (see [`crate::output::report::CpuCostRow`]).
//!
//! Faktory's total comes from its `INFO` (jobs processed server-wide); the
//! direct workers' share is their own count (a `faktory`-crate slot ACKs
//! before it fetches again, so that count runs at most one job per slot
//! ahead of Faktory's), and the parallel load's share is the rest.

use std::time::Duration;

use crate::Error;
use crate::output::progress::Progress;
use crate::output::report::CpuCostRow;
use crate::runs::load::{Env, Load};
use crate::runs::runner::{measure_window, rate, warm_up, worker_rate};
use crate::runs::scenario::{REFERENCE_SLOTS, Scenario, Timing, WorkerPath, Workload};

/// Runs the three phases (alone, beside a second direct load, beside a
/// gateway-relayed load) and returns the comparison.
///
/// Fails when a load cannot start or fails.
pub async fn run_cpu_cost(
    env: &Env,
    timing: &Timing,
    progress: &Progress,
    label: &str,
) -> Result<CpuCostRow, Error> {
    let direct = Scenario {
        path: WorkerPath::Direct {
            slots: REFERENCE_SLOTS,
        },
        rtt: Duration::ZERO,
        workload: Workload::Noop,
    };
    let relayed = Scenario {
        path: WorkerPath::Gateway {
            concurrency: REFERENCE_SLOTS,
        },
        ..direct
    };
    let phase = |name: &str| progress.line(&format!("{label} cpu cost: direct co-located {name}"));
    let status = |message: &str| progress.status(&format!("{label} cpu cost: {message}"));

    phase("alone");
    let (direct_alone, _) = measure_beside(env, timing, &status, (direct, "alone"), None).await?;
    phase("beside a second direct load");
    let (direct_beside_direct, other_direct) = measure_beside(
        env,
        timing,
        &status,
        (direct, "beside-direct"),
        Some((direct, "other")),
    )
    .await?;
    phase("beside a gateway relaying a load");
    let (direct_with_gateway, gateway_relayed) = measure_beside(
        env,
        timing,
        &status,
        (direct, "beside-gateway"),
        Some((relayed, "gateway")),
    )
    .await?;

    progress.line(&format!(
        "{label} cpu cost: {direct_alone:.0} jobs/s alone, {direct_beside_direct:.0} beside \
         {other_direct:.0} jobs/s of direct load, {direct_with_gateway:.0} beside a gateway \
         relaying {gateway_relayed:.0} jobs/s"
    ));
    Ok(CpuCostRow {
        direct_alone,
        direct_beside_direct,
        other_direct,
        direct_with_gateway,
        gateway_relayed,
    })
}

/// Runs `main` on the queue named by its second part, with `other` beside
/// it on the queue named by its second part when given, and measures both
/// over the same window; returns (main, other) jobs/s. Every phase has
/// queues of its own: a real Faktory hands a job pushed within 2 s of a
/// stopped worker's last `FETCH` to that blocked `FETCH`, connection gone or
/// not, so a queue reused by the next phase lost its first jobs to the
/// previous phase's workers (reserved until the expiry).
async fn measure_beside(
    env: &Env,
    timing: &Timing,
    status: &impl Fn(&str),
    main: (Scenario, &str),
    other: Option<(Scenario, &str)>,
) -> Result<(f64, f64), Error> {
    let (main, main_name) = main;
    let queue = |name: &str| format!("{}-cpu-{name}", env.queue_prefix);
    let mut other = match other {
        Some((scenario, name)) => Some(Load::start(env, scenario, &queue(name)).await?),
        None => None,
    };
    let mut load = Load::start(env, main, &queue(main_name)).await?;
    if let Some(other) = &other {
        other.wait_ready(timing.settle_limit, status).await;
    }
    load.wait_ready(timing.settle_limit, status).await;
    warm_up(&load, timing, status).await;
    let start = load.sample();
    let end = measure_window(&load, timing.measure, status).await;
    let main_rate = worker_rate(&start, &end);
    let other_rate = match &other {
        Some(_) => (rate(&start, &end) - main_rate).max(0.0),
        None => 0.0,
    };
    // Drained before stopping, so the stopped workers leave nothing
    // reserved or queued (see `Load::drain`).
    let drained = load.drain(timing.drain_limit, status).await;
    if let Some(other) = &mut other {
        other.drain(timing.drain_limit, status).await?;
    }
    let stopped = load.stop().await;
    if let Some(other) = other {
        other.stop().await?;
    }
    drained?;
    stopped?;
    Ok((main_rate, other_rate))
}
