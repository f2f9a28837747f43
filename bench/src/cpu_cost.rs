//! What a co-located gateway costs Faktory: co-located direct workers'
//! throughput alone, then again while a gateway (next to Faktory) relays a
//! parallel load to co-located SDK workers on another queue.
//!
//! On one machine everything shares the same cores (Faktory, gateway,
//! workers, producers), so the drop also includes the CPU the extra
//! workers and producer take, and Faktory serving the extra load itself:
//! it is an upper bound on the gateway's own cost.

use std::time::Duration;

use crate::Error;
use crate::load::{Env, Load};
use crate::progress::Progress;
use crate::report::CpuCostRow;
use crate::runner::{measure_window, rate};
use crate::scenario::{REFERENCE_SLOTS, Scenario, Timing, WorkerPath, Workload};

const DIRECT_QUEUE: &str = "bench-cpu-direct";
const GATEWAY_QUEUE: &str = "bench-cpu-gateway";

/// Runs both phases and returns the comparison.
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
    let status = |message: &str| progress.status(&format!("{label} cpu cost: {message}"));

    progress.line(&format!("{label} cpu cost: direct co-located alone"));
    let alone = Load::start(env, direct, DIRECT_QUEUE).await?;
    alone.wait_ready(timing.settle_limit, status).await;
    tokio::time::sleep(timing.warmup).await;
    let start = alone.sample();
    let end = measure_window(&alone, timing.measure, status).await;
    let direct_alone = rate(&start, &end);
    alone.stop().await?;

    progress.line(&format!(
        "{label} cpu cost: direct co-located while the gateway relays"
    ));
    let gateway = Load::start(env, relayed, GATEWAY_QUEUE).await?;
    let beside = Load::start(env, direct, DIRECT_QUEUE).await?;
    gateway.wait_ready(timing.settle_limit, status).await;
    beside.wait_ready(timing.settle_limit, status).await;
    tokio::time::sleep(timing.warmup).await;
    let (direct_start, gateway_start) = (beside.sample(), gateway.sample());
    let direct_end = measure_window(&beside, timing.measure, status).await;
    let gateway_end = gateway.sample();
    let direct_with_gateway = rate(&direct_start, &direct_end);
    let gateway_relayed = rate(&gateway_start, &gateway_end);
    let stopped = beside.stop().await;
    gateway.stop().await?;
    stopped?;

    let cost_fraction = if direct_alone > 0.0 {
        1.0 - direct_with_gateway / direct_alone
    } else {
        0.0
    };
    progress.line(&format!(
        "{label} cpu cost: {direct_alone:.0} jobs/s alone, {direct_with_gateway:.0} jobs/s beside a gateway relaying {gateway_relayed:.0} jobs/s"
    ));
    Ok(CpuCostRow {
        direct_alone,
        direct_with_gateway,
        gateway_relayed,
        cost_fraction,
    })
}
