//! A repeated run (`bench --rounds N`): every throughput scenario is
//! measured N times, the rounds taking turns (round 1 runs each scenario
//! once, then round 2, ...), so that a machine that drifts for a few
//! minutes moves every scenario alike instead of one. [`combine`] turns
//! the rounds into one row per scenario.
//!
//! A row is the median round's row: of the scenario's rounds, the middle
//! one by jobs/s at Faktory (of an even number, the lower middle), so its
//! columns (CPU, latency, connections) are numbers measured together, not
//! medians of different rounds. Two columns are taken over all rounds
//! instead: the reserved peak and its window come from the round in which
//! Faktory's reserved set exceeded the workers' window the most (the
//! bound must hold in every round), and [`ThroughputRow::rounds`] lists the
//! jobs/s of every round in the order they ran.

use crate::output::report::ThroughputRow;

/// One row per scenario, in the order the scenarios first appear, from
/// the rows of all rounds (a scenario missing from a round, because it
/// failed there, is combined from the rounds it has).
pub fn combine(rounds: Vec<Vec<ThroughputRow>>) -> Vec<ThroughputRow> {
    let mut by_scenario: Vec<Vec<ThroughputRow>> = Vec::new();
    for row in rounds.into_iter().flatten() {
        match by_scenario.iter_mut().find(|rows| rows[0].name == row.name) {
            Some(rows) => rows.push(row),
            None => by_scenario.push(vec![row]),
        }
    }
    by_scenario.into_iter().map(median_row).collect()
}

/// The median round's row with the reserved peak of the worst round and
/// the jobs/s of every round.
fn median_row(rows: Vec<ThroughputRow>) -> ThroughputRow {
    let rates: Vec<f64> = rows.iter().map(|row| row.jobs_per_s).collect();
    let worst = rows
        .iter()
        .max_by_key(|row| row.reserved_peak as i64 - row.window_peak as i64)
        .map(|row| (row.reserved_peak, row.window_peak));
    let mut sorted = rows;
    sorted.sort_by(|a, b| a.jobs_per_s.total_cmp(&b.jobs_per_s));
    let middle = (sorted.len() - 1) / 2;
    let mut row = sorted.swap_remove(middle);
    if let Some((reserved, window)) = worst {
        row.reserved_peak = reserved;
        row.window_peak = window;
    }
    row.rounds = rates;
    row
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::runs::scenario::{Scenario, WorkerPath, Workload};

    fn row(slots: usize, jobs_per_s: f64, reserved: u64, window: u64) -> ThroughputRow {
        let scenario = Scenario {
            path: WorkerPath::Direct { slots },
            rtt: Duration::ZERO,
            workload: Workload::Noop,
        };
        ThroughputRow {
            scenario,
            name: scenario.name(),
            concurrency: slots,
            jobs_per_s,
            jobs_per_s_at_worker: jobs_per_s,
            ratio: None,
            reserved_peak: reserved,
            window_peak: window,
            worker_connections: Some(slots),
            gateway_faktory_connections: None,
            gateway_cpu_s_per_100k: Some(jobs_per_s / 1000.0),
            faktory_cpu_s_per_100k: None,
            bench_cpu_s_per_100k: None,
            gateway_peak_rss_mib: None,
            worker_peak_rss_mib: None,
            p50_ms: None,
            p99_ms: None,
            latency_rate: 0.0,
            latency_samples: 0,
            rounds: vec![jobs_per_s],
        }
    }

    #[test]
    fn a_row_is_its_median_round_with_every_rounds_rate() {
        let rounds = vec![
            vec![row(50, 7_000.0, 100, 50), row(200, 6_000.0, 300, 200)],
            vec![row(50, 5_000.0, 900, 50), row(200, 8_000.0, 250, 200)],
            vec![row(50, 6_000.0, 120, 50), row(200, 7_000.0, 210, 200)],
        ];
        let rows = combine(rounds);
        assert_eq!(rows.len(), 2);
        let (first, second) = (&rows[0], &rows[1]);
        assert_eq!(first.concurrency, 50);
        assert_eq!(first.jobs_per_s, 6_000.0);
        // Columns measured with the median round, not medians of their own.
        assert_eq!(first.gateway_cpu_s_per_100k, Some(6.0));
        assert_eq!(first.rounds, vec![7_000.0, 5_000.0, 6_000.0]);
        // The reserved peak is the worst round's, with that round's window.
        assert_eq!((first.reserved_peak, first.window_peak), (900, 50));
        assert_eq!(second.jobs_per_s, 7_000.0);
        assert_eq!((second.reserved_peak, second.window_peak), (300, 200));
    }

    #[test]
    fn an_even_number_of_rounds_takes_the_lower_middle_and_one_round_is_itself() {
        let rows = combine(vec![
            vec![row(50, 7_000.0, 0, 50)],
            vec![row(50, 5_000.0, 0, 50)],
            vec![row(50, 8_000.0, 0, 50)],
            vec![row(50, 6_000.0, 0, 50)],
        ]);
        assert_eq!(rows[0].jobs_per_s, 6_000.0);
        let once = combine(vec![vec![row(50, 4_321.0, 7, 50)]]);
        assert_eq!(once[0].jobs_per_s, 4_321.0);
        assert_eq!(once[0].rounds, vec![4_321.0]);
        assert_eq!(once[0].reserved_peak, 7);
    }

    #[test]
    fn a_scenario_that_failed_in_a_round_is_combined_from_the_others() {
        let rows = combine(vec![
            vec![row(50, 7_000.0, 0, 50), row(200, 6_000.0, 0, 200)],
            vec![row(200, 9_000.0, 0, 200)],
        ]);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].rounds, vec![7_000.0]);
        assert_eq!(rows[1].jobs_per_s, 6_000.0);
        assert_eq!(rows[1].rounds, vec![6_000.0, 9_000.0]);
    }
}
