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
//! figure (see [`crate::report::CpuCostRow`]).

use std::time::Duration;

use crate::Error;
use crate::load::{Env, Load};
use crate::progress::Progress;
use crate::report::CpuCostRow;
use crate::runner::{measure_window, rate, warm_up};
use crate::scenario::{REFERENCE_SLOTS, Scenario, Timing, WorkerPath, Workload};

const DIRECT_QUEUE: &str = "bench-cpu-direct";
const OTHER_QUEUE: &str = "bench-cpu-other";
const GATEWAY_QUEUE: &str = "bench-cpu-gateway";

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
    let (direct_alone, _) = measure_beside(env, timing, &status, direct, None).await?;
    phase("beside a second direct load");
    let (direct_beside_direct, other_direct) =
        measure_beside(env, timing, &status, direct, Some((direct, OTHER_QUEUE))).await?;
    phase("beside a gateway relaying a load");
    let (direct_with_gateway, gateway_relayed) =
        measure_beside(env, timing, &status, direct, Some((relayed, GATEWAY_QUEUE))).await?;

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

/// Runs `main` on its own queue, with `other` beside it when given, and
/// measures both over the same window; returns (main, other) jobs/s.
async fn measure_beside(
    env: &Env,
    timing: &Timing,
    status: &impl Fn(&str),
    main: Scenario,
    other: Option<(Scenario, &str)>,
) -> Result<(f64, f64), Error> {
    let other = match other {
        Some((scenario, queue)) => Some(Load::start(env, scenario, queue).await?),
        None => None,
    };
    let load = Load::start(env, main, DIRECT_QUEUE).await?;
    if let Some(other) = &other {
        other.wait_ready(timing.settle_limit, status).await;
    }
    load.wait_ready(timing.settle_limit, status).await;
    warm_up(&load, timing, status).await;
    let other_start = other.as_ref().map(Load::sample);
    let start = load.sample();
    let end = measure_window(&load, timing.measure, status).await;
    let other_rate = match (&other, other_start) {
        (Some(other), Some(other_start)) => rate(&other_start, &other.sample()),
        _ => 0.0,
    };
    let stopped = load.stop().await;
    if let Some(other) = other {
        other.stop().await?;
    }
    stopped?;
    Ok((rate(&start, &end), other_rate))
}
