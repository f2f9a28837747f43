//! Results of one benchmark run: the rows each part produces, the
//! project's performance targets evaluated against them, and their rendering as a text table and
//! as JSON.

use std::fmt::Write as _;

use serde::Serialize;

use crate::runs::scenario::{PushMode, PushSide, Scenario};

/// One throughput scenario's numbers.
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputRow {
    /// What ran.
    pub scenario: Scenario,
    /// Readable name (`path rtt workload`).
    pub name: String,
    /// Handler concurrency (slots for direct workers).
    pub concurrency: usize,
    /// Jobs Faktory processed (acknowledged) per second in the measurement
    /// window: what users see.
    pub jobs_per_s: f64,
    /// Jobs the workers' handlers finished per second in the same window
    /// (ahead of `jobs_per_s` by what is finished but not yet acknowledged).
    pub jobs_per_s_at_worker: f64,
    /// `jobs_per_s` over the co-located direct reference with the same workload.
    pub ratio: Option<f64>,
    /// Largest reserved set Faktory reported during the scenario
    /// (`INFO` `faktory.tasks.Busy.size`, server-wide).
    pub reserved_peak: u64,
    /// Largest window the workers had at the same instants: their slots
    /// (direct) or the SDK's announced concurrency + prefetch (gateway).
    pub window_peak: u64,
    /// TCP connections the workers hold (to Faktory for direct workers, to
    /// the gateway for SDK workers).
    pub worker_connections: Option<usize>,
    /// TCP connections the gateway holds to Faktory (gateway path only).
    pub gateway_faktory_connections: Option<usize>,
    /// Gateway CPU seconds (user + system) per 100k jobs in the window.
    pub gateway_cpu_s_per_100k: Option<f64>,
    /// Faktory CPU seconds per 100k jobs in the window: the test server
    /// when it runs as a child, or the processes `bench --faktory-pid`
    /// names (a local real Faktory and its Redis).
    pub faktory_cpu_s_per_100k: Option<f64>,
    /// The bench process's CPU seconds per 100k jobs in the window: the
    /// workers (direct, or the SDK's), the feeder, the link emulator and,
    /// unless it is a child or a real Faktory is used, the test server.
    pub bench_cpu_s_per_100k: Option<f64>,
    /// Peak RSS of the gateway process during the scenario, MiB.
    pub gateway_peak_rss_mib: Option<f64>,
    /// Peak RSS of the bench process (workers, producer and, by default,
    /// the in-process test server) during the scenario, MiB.
    pub worker_peak_rss_mib: Option<f64>,
    /// Median push → handler start latency in the paced phase, ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile push → handler start latency in the paced phase, ms.
    pub p99_ms: Option<f64>,
    /// Rate of the paced latency phase, jobs/s.
    pub latency_rate: f64,
    /// Stamped jobs observed in the latency phase.
    pub latency_samples: u64,
    /// Jobs/s at Faktory of every round in the order they ran (one entry
    /// unless `bench --rounds`; see [`crate::runs::rounds`]).
    pub rounds: Vec<f64>,
}

/// One push scenario's numbers.
#[derive(Debug, Clone, Serialize)]
pub struct PushRow {
    /// Who pushed.
    pub side: PushSide,
    /// How.
    pub mode: PushMode,
    /// Jobs accepted per second.
    pub jobs_per_s: f64,
    /// Over direct push in the same mode (gateway rows only).
    pub ratio_to_direct: Option<f64>,
    /// Gateway CPU seconds per 100k jobs (gateway rows only).
    pub gateway_cpu_s_per_100k: Option<f64>,
}

/// Direct co-located throughput with and without a gateway relaying a
/// parallel load to co-located SDK workers.
#[derive(Debug, Clone, Serialize)]
pub struct CpuCostRow {
    /// Direct workers alone, jobs/s.
    pub direct_alone: f64,
    /// Direct workers beside a second, equal group of direct workers on
    /// another queue (the same kind of extra load without a gateway), jobs/s.
    pub direct_beside_direct: f64,
    /// What that second direct group did meanwhile, jobs/s.
    pub other_direct: f64,
    /// Direct workers while the gateway relays, jobs/s.
    pub direct_with_gateway: f64,
    /// What the gateway path relayed meanwhile, jobs/s.
    pub gateway_relayed: f64,
}

impl CpuCostRow {
    /// Fraction of the direct workers' own throughput lost while the
    /// gateway relays: `1 - with / alone`. On one machine this includes
    /// Faktory serving the relayed jobs and the CPU of the SDK workers and
    /// producer, so any parallel load costs it (see
    /// [`CpuCostRow::direct_lost_beside_direct`]).
    pub fn direct_lost_beside_gateway(&self) -> f64 {
        1.0 - self.direct_with_gateway / self.direct_alone.max(f64::MIN_POSITIVE)
    }

    /// The same loss beside a second group of direct workers instead.
    pub fn direct_lost_beside_direct(&self) -> f64 {
        1.0 - self.direct_beside_direct / self.direct_alone.max(f64::MIN_POSITIVE)
    }

    /// Faktory's total throughput (every job it served) while the gateway
    /// relays, over its throughput serving the direct workers alone: below
    /// 1.0 when the gateway's CPU takes more from Faktory than the gateway
    /// path's batched FETCH/ACK saves it.
    pub fn faktory_total_beside_gateway(&self) -> f64 {
        (self.direct_with_gateway + self.gateway_relayed) / self.direct_alone.max(f64::MIN_POSITIVE)
    }

    /// The same with a second group of direct workers instead (no gateway).
    pub fn faktory_total_beside_direct(&self) -> f64 {
        (self.direct_beside_direct + self.other_direct) / self.direct_alone.max(f64::MIN_POSITIVE)
    }
}

/// One of the project's performance targets and where it stands.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// The target, in words.
    pub target: String,
    /// The measured value, formatted.
    pub measured: String,
    /// Whether it holds in this run (`None`: not measured).
    pub holds: Option<bool>,
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `full` or `short`.
    pub mode: String,
    /// How many times each throughput scenario ran (`--rounds`); its row
    /// is the median round (see [`crate::runs::rounds`]).
    pub rounds: usize,
    /// CPU model and core count.
    pub machine: String,
    /// What served as Faktory.
    pub faktory: String,
    /// Throughput scenarios.
    pub throughput: Vec<ThroughputRow>,
    /// Push scenarios.
    pub push: Vec<PushRow>,
    /// The CPU-cost comparison, when run.
    pub cpu_cost: Option<CpuCostRow>,
    /// The performance goals (see [`crate::output::goals`]).
    pub targets: Vec<Target>,
}

/// Fills in each row's ratio to the co-located direct reference with the
/// same workload, and each gateway push row's ratio to direct push.
pub fn fill_ratios(throughput: &mut [ThroughputRow], push: &mut [PushRow]) {
    let references: Vec<_> = throughput
        .iter()
        .filter(|row| row.scenario.is_reference())
        .map(|row| (row.scenario.workload, row.jobs_per_s))
        .collect();
    for row in throughput.iter_mut() {
        row.ratio = references
            .iter()
            .find(|(workload, _)| *workload == row.scenario.workload)
            .filter(|(_, reference)| *reference > 0.0)
            .map(|(_, reference)| row.jobs_per_s / reference);
    }
    let direct: Vec<_> = push
        .iter()
        .filter(|row| row.side == PushSide::Direct)
        .map(|row| (row.mode, row.jobs_per_s))
        .collect();
    for row in push.iter_mut().filter(|row| row.side.via_gateway()) {
        row.ratio_to_direct = direct
            .iter()
            .find(|(mode, _)| *mode == row.mode)
            .filter(|(_, rate)| *rate > 0.0)
            .map(|(_, rate)| row.jobs_per_s / rate);
    }
}

impl Report {
    /// The report as an aligned text table with the targets below it.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Faktory Gateway benchmark ({} mode{})",
            self.mode,
            if self.rounds > 1 {
                format!(", {} rounds: each row is its median round", self.rounds)
            } else {
                String::new()
            }
        );
        let _ = writeln!(out, "machine: {}; faktory: {}", self.machine, self.faktory);
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<40} {:>5} {:>10} {:>10} {:>7} {:>13} {:>7} {:>7} {:>7} {:>11} {:>9} {:>9} {:>12} {:>8} {:>9} {:>9} {:>9}",
            "scenario",
            "conc",
            "jobs/s",
            "at worker",
            "ratio",
            "reserved peak",
            "window",
            "w.conns",
            "gw.fconn",
            "gw.cpu/100k",
            "gw.µs/job",
            "fk.µs/job",
            "bench.µs/job",
            "gw.rss",
            "bench.rss",
            "p50 ms",
            "p99 ms"
        );
        for row in &self.throughput {
            let _ = writeln!(
                out,
                "{:<40} {:>5} {:>10.0} {:>10.0} {:>7} {:>13} {:>7} {:>7} {:>7} {:>11} {:>9} {:>9} {:>12} {:>8} {:>9} {:>9} {:>9}",
                row.name,
                row.concurrency,
                row.jobs_per_s,
                row.jobs_per_s_at_worker,
                opt(row.ratio, |r| format!("{r:.2}x")),
                row.reserved_peak,
                row.window_peak,
                opt(row.worker_connections, |c| c.to_string()),
                opt(row.gateway_faktory_connections, |c| c.to_string()),
                opt(row.gateway_cpu_s_per_100k, |c| format!("{c:.2}s")),
                opt(row.gateway_cpu_s_per_100k, |c| format!("{:.1}", c * 10.0)),
                opt(row.faktory_cpu_s_per_100k, |c| format!("{:.1}", c * 10.0)),
                opt(row.bench_cpu_s_per_100k, |c| format!("{:.1}", c * 10.0)),
                opt(row.gateway_peak_rss_mib, |m| format!("{m:.0}M")),
                opt(row.worker_peak_rss_mib, |m| format!("{m:.0}M")),
                opt(row.p50_ms, |l| format!("{l:.1}")),
                opt(row.p99_ms, |l| format!("{l:.1}")),
            );
        }
        if self.rounds > 1 {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "jobs/s at Faktory in each round, in the order they ran:"
            );
            for row in &self.throughput {
                let rates: Vec<String> = row.rounds.iter().map(|r| format!("{r:.0}")).collect();
                let (low, high) = row
                    .rounds
                    .iter()
                    .fold((f64::INFINITY, 0.0_f64), |(lo, hi), r| {
                        (lo.min(*r), hi.max(*r))
                    });
                let _ = writeln!(
                    out,
                    "  {:<40} {}  (median {:.0}, lowest-highest {:.0}%)",
                    row.name,
                    rates.join(" / "),
                    row.jobs_per_s,
                    (high - low) / row.jobs_per_s.max(f64::MIN_POSITIVE) * 100.0
                );
            }
        }
        if !self.push.is_empty() {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "{:<30} {:>10} {:>9} {:>11}",
                "push", "jobs/s", "vs direct", "gw.cpu/100k"
            );
            for row in &self.push {
                let _ = writeln!(
                    out,
                    "{:<30} {:>10.0} {:>9} {:>11}",
                    format!("{} {}", row.side.name(), row.mode.name()),
                    row.jobs_per_s,
                    opt(row.ratio_to_direct, |r| format!("{r:.2}x")),
                    opt(row.gateway_cpu_s_per_100k, |c| format!("{c:.2}s")),
                );
            }
        }
        if let Some(cost) = &self.cpu_cost {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "cpu cost (everything co-located): direct workers alone {:.0} jobs/s.\n  \
                 beside a gateway relaying {:.0} jobs/s: direct {:.0} jobs/s ({:.0}% lost); \
                 Faktory's total {:.0} jobs/s = {:.2}x alone\n  \
                 beside a second direct group doing {:.0} jobs/s: direct {:.0} jobs/s ({:.0}% lost); \
                 Faktory's total {:.0} jobs/s = {:.2}x alone",
                cost.direct_alone,
                cost.gateway_relayed,
                cost.direct_with_gateway,
                cost.direct_lost_beside_gateway() * 100.0,
                cost.direct_with_gateway + cost.gateway_relayed,
                cost.faktory_total_beside_gateway(),
                cost.other_direct,
                cost.direct_beside_direct,
                cost.direct_lost_beside_direct() * 100.0,
                cost.direct_beside_direct + cost.other_direct,
                cost.faktory_total_beside_direct(),
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "targets:");
        for target in &self.targets {
            let verdict = match target.holds {
                Some(true) => "holds",
                Some(false) => "MISSED",
                None => "not measured",
            };
            let _ = writeln!(
                out,
                "  [{verdict:>12}] {}: {}",
                target.target, target.measured
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "columns: conc = handler concurrency (slots); jobs/s = jobs Faktory processed (acked) per second, from its INFO;\n\
             at worker = jobs the workers' handlers finished per second (ahead by what is not yet acked);\n\
             ratio = jobs/s over co-located direct-50, same workload (with --rounds: of the median rounds); reserved peak = peak of Faktory's reserved set\n\
             (INFO tasks.Busy.size, server-wide); window = peak of the workers' window at the same instants (slots, or the\n\
             SDK's concurrency + prefetch); w.conns = worker TCP connections (to Faktory or the gateway); gw.fconn = gateway connections to Faktory;\n\
             gw.cpu/100k = gateway CPU seconds per 100k jobs (gw.µs/job: the same in microseconds per job);\n\
             fk.µs/job = Faktory's CPU per job (the test server with --faktory-child, or the processes of --faktory-pid);\n\
             bench.µs/job = the bench process's CPU per job: workers, feeder, link emulator (and the in-process test server);\n\
             gw.rss = the gateway process's peak RSS in the scenario;\n\
             bench.rss = the bench process's peak RSS: workers, producers, link emulator (and the test server unless\n\
             --faktory-child), plus what the allocator kept from earlier scenarios (not a clean per-worker figure);\n\
             p50/p99 = push -> handler start in a paced phase at half the measured rate (at most 500 jobs/s)."
        );
        out
    }
}

fn opt<T>(value: Option<T>, format: impl Fn(T) -> String) -> String {
    value.map(format).unwrap_or_else(|| "-".to_owned())
}
