//! The project's performance goals (README, "Performance"), evaluated
//! against one run's rows.

use std::time::Duration;

use crate::output::report::{CpuCostRow, PushRow, Target, ThroughputRow};
use crate::runs::scenario::{PushMode, PushSide, WorkerPath, Workload};

/// Evaluates every target; a target whose scenarios did not run is
/// "not measured".
pub fn evaluate(
    throughput: &[ThroughputRow],
    push: &[PushRow],
    cpu_cost: Option<&CpuCostRow>,
) -> Vec<Target> {
    let find = |rtt_ms: u64, path: fn(WorkerPath) -> bool| {
        throughput.iter().find(|row| {
            row.scenario.rtt == Duration::from_millis(rtt_ms)
                && row.scenario.workload == Workload::Noop
                && path(row.scenario.path)
        })
    };
    let is_gateway = |path| matches!(path, WorkerPath::Gateway { .. });
    let is_direct_500 = |path| path == WorkerPath::Direct { slots: 500 };

    let mut targets = Vec::new();
    let gateway_50 = find(50, is_gateway);
    targets.push(ratio_target(
        "50 ms RTT: gateway path >= 1.0x co-located direct (noop)",
        gateway_50.and_then(|row| row.ratio),
        1.0,
    ));
    let versus_500 = gateway_50
        .zip(find(50, is_direct_500))
        .filter(|(_, direct)| direct.jobs_per_s > 0.0)
        .map(|(gateway, direct)| gateway.jobs_per_s / direct.jobs_per_s);
    targets.push(ratio_target(
        "50 ms RTT: gateway path >= 3x direct with 500 slots (noop)",
        versus_500,
        3.0,
    ));
    targets.push(ratio_target(
        "200 ms RTT: gateway path >= 0.9x co-located direct (noop)",
        find(200, is_gateway).and_then(|row| row.ratio),
        0.9,
    ));
    let ceiling = throughput
        .iter()
        .find(|row| row.scenario.is_ceiling() && row.scenario.workload == Workload::Noop)
        .filter(|row| row.jobs_per_s > 0.0);
    for rtt_ms in [50, 200] {
        let versus_ceiling = find(rtt_ms, is_gateway)
            .zip(ceiling)
            .map(|(gateway, ceiling)| gateway.jobs_per_s / ceiling.jobs_per_s);
        targets.push(ratio_target(
            &format!("{rtt_ms} ms RTT: gateway path >= 0.9x the faktory ceiling (noop)"),
            versus_ceiling,
            0.9,
        ));
    }
    targets.push(ratio_target(
        "co-located gateway path >= 1.0x co-located direct (noop)",
        find(0, is_gateway).and_then(|row| row.ratio),
        1.0,
    ));
    targets.push(reserved_target(throughput));
    targets.push(connection_target(throughput));
    const CPU_TARGET: &str =
        "a co-located gateway relaying a parallel load costs Faktory < 20% of its throughput";
    targets.push(match cpu_cost {
        Some(cost) => {
            let total = cost.faktory_total_beside_gateway();
            Target {
                target: CPU_TARGET.to_owned(),
                measured: format!(
                    "Faktory served {total:.2}x its direct-only jobs/s (the direct workers \
                     themselves lost {:.0}%, {:.0}% beside a second direct group)",
                    cost.direct_lost_beside_gateway() * 100.0,
                    cost.direct_lost_beside_direct() * 100.0
                ),
                holds: Some(total >= 0.8),
            }
        }
        None => not_measured(CPU_TARGET),
    });
    let push_100 = push
        .iter()
        .find(|row| row.side == PushSide::Gateway && row.mode == PushMode::Batch { size: 100 });
    targets.push(ratio_target(
        "gateway Push >= 0.9x direct PUSHB at batch 100",
        push_100.and_then(|row| row.ratio_to_direct),
        0.9,
    ));
    targets
}

fn ratio_target(name: &str, ratio: Option<f64>, threshold: f64) -> Target {
    match ratio {
        Some(ratio) => Target {
            target: name.to_owned(),
            measured: format!("{ratio:.2}x"),
            holds: Some(ratio >= threshold),
        },
        None => not_measured(name),
    }
}

/// How far Faktory's reserved set may exceed the workers' window: jobs in
/// transit (fetched for a window slot, or finished and on their way to
/// `ACK`), not a backlog of unacknowledged work.
const RESERVED_SLACK: u64 = 1_000;

fn reserved_target(throughput: &[ThroughputRow]) -> Target {
    const NAME: &str = "Faktory's reserved set <= the workers' window + 1,000 in every scenario";
    let excess = |row: &&ThroughputRow| row.reserved_peak as i64 - row.window_peak as i64;
    let Some(worst) = throughput.iter().max_by_key(excess) else {
        return not_measured(NAME);
    };
    Target {
        target: NAME.to_owned(),
        measured: format!(
            "worst {}: peak {} against a window of {} (the largest the workers announced)",
            worst.name, worst.reserved_peak, worst.window_peak
        ),
        holds: Some(
            throughput
                .iter()
                .all(|row| row.reserved_peak <= row.window_peak + RESERVED_SLACK),
        ),
    }
}

fn connection_target(throughput: &[ThroughputRow]) -> Target {
    const NAME: &str = "one TCP connection per worker process on the gateway path";
    let counts: Vec<usize> = throughput
        .iter()
        .filter(|row| matches!(row.scenario.path, WorkerPath::Gateway { .. }))
        .filter_map(|row| row.worker_connections)
        .collect();
    if counts.is_empty() {
        return not_measured(NAME);
    }
    let max = counts.iter().copied().max().unwrap_or(0);
    Target {
        target: NAME.to_owned(),
        measured: format!("at most {max} per worker process"),
        holds: Some(max == 1),
    }
}

fn not_measured(name: &str) -> Target {
    Target {
        target: name.to_owned(),
        measured: "-".to_owned(),
        holds: None,
    }
}
