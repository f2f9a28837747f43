//! What the benchmark runs: workloads, worker paths, link round-trip times,
//! push modes, phase timings, and the full and short plans built from them.

use std::time::Duration;

use serde::Serialize;

/// The job type every benchmark job carries.
pub const JOBTYPE: &str = "bench";

/// What each job asks of its handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    /// Handler returns at once; args are just the stamp.
    Noop,
    /// Handler sleeps 1 ms (timer resolution makes it 1-2 ms).
    Sleep1ms,
    /// Args of about 100 bytes (the background document's typical size).
    Args100B,
    /// Args of about 10 KiB.
    Args10KiB,
}

impl Workload {
    /// Short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Noop => "noop",
            Workload::Sleep1ms => "1ms",
            Workload::Args100B => "100B",
            Workload::Args10KiB => "10KiB",
        }
    }

    /// Length of the padding string added to the args.
    pub fn padding_len(self) -> usize {
        match self {
            Workload::Noop | Workload::Sleep1ms => 0,
            Workload::Args100B => 80,
            Workload::Args10KiB => 10 * 1024 - 20,
        }
    }

    /// How long the handler works.
    pub fn handler_time(self) -> Option<Duration> {
        match self {
            Workload::Sleep1ms => Some(Duration::from_millis(1)),
            _ => None,
        }
    }

    /// The most jobs the producer keeps queued, bounding memory to about
    /// 100 MB of args.
    pub fn max_backlog(self) -> u64 {
        match self {
            Workload::Args10KiB => 10_000,
            _ => 100_000,
        }
    }
}

/// How workers reach Faktory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WorkerPath {
    /// `faktory` crate workers connected straight to Faktory (one
    /// connection per slot), across the link.
    Direct {
        /// Concurrent job slots.
        slots: usize,
    },
    /// Worker-SDK workers on one gRPC stream to the gateway across the link;
    /// the gateway sits next to Faktory.
    Gateway {
        /// Handler concurrency of the SDK worker.
        concurrency: usize,
    },
}

impl WorkerPath {
    /// Handler concurrency, whatever the path.
    pub fn concurrency(self) -> usize {
        match self {
            WorkerPath::Direct { slots } => slots,
            WorkerPath::Gateway { concurrency } => concurrency,
        }
    }

    /// Short name for tables.
    pub fn name(self) -> String {
        match self {
            WorkerPath::Direct { slots } => format!("direct-{slots}"),
            WorkerPath::Gateway { concurrency } => format!("gateway-{concurrency}"),
        }
    }
}

/// One throughput scenario.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Scenario {
    /// How workers reach Faktory.
    pub path: WorkerPath,
    /// Round-trip time of the link between workers and Faktory (direct) or
    /// the gateway (gateway path). Zero means no proxy at all.
    pub rtt: Duration,
    /// What the jobs do.
    pub workload: Workload,
}

impl Scenario {
    /// A unique, readable name (what `--only` matches); the Faktory
    /// ceiling row says so first.
    pub fn name(&self) -> String {
        let name = format!(
            "{} rtt={}ms {}",
            self.path.name(),
            self.rtt.as_millis(),
            self.workload.name()
        );
        if self.is_ceiling() {
            format!("faktory ceiling {name}")
        } else {
            name
        }
    }

    /// A Faktory queue name unique to this scenario within a run whose
    /// queues start with `prefix` (see [`crate::setup::run_queues`]).
    pub fn queue(&self, prefix: &str) -> String {
        format!(
            "{prefix}-{}-{}ms-{}",
            self.path.name(),
            self.rtt.as_millis(),
            self.workload.name()
        )
    }

    /// Whether this is the co-located direct reference for its workload.
    pub fn is_reference(&self) -> bool {
        self.is_co_located_direct(REFERENCE_SLOTS)
    }

    /// Whether this is the Faktory ceiling row: co-located direct workers
    /// with [`CEILING_SLOTS`] connections.
    pub fn is_ceiling(&self) -> bool {
        self.is_co_located_direct(CEILING_SLOTS)
    }

    fn is_co_located_direct(&self, slots: usize) -> bool {
        self.rtt.is_zero() && self.path == WorkerPath::Direct { slots }
    }

    /// The Faktory ceiling row for `workload`.
    pub fn ceiling(workload: Workload) -> Scenario {
        Scenario {
            path: WorkerPath::Direct {
                slots: CEILING_SLOTS,
            },
            rtt: Duration::ZERO,
            workload,
        }
    }
}

/// Slots of the co-located direct reference, and the gateway path's handler
/// concurrency.
pub const REFERENCE_SLOTS: usize = 50;

/// Slots of the Faktory ceiling row: co-located direct workers with this
/// many connections, about where one Faktory 1.10 peaks (see the design
/// brief's reference points), so the row shows what Faktory itself can do.
pub const CEILING_SLOTS: usize = 200;

/// Who pushes in a push scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PushSide {
    /// `PUSHB` (or `PUSH` for single jobs) straight to Faktory.
    Direct,
    /// The gateway's `Push` RPC.
    Gateway,
    /// The gateway's `Push` RPC with jobs it refuses in validation (a bad
    /// queue name): the call's own cost with no Faktory round trip, the
    /// floor under the `Gateway` side.
    GatewayRefused,
}

impl PushSide {
    /// `direct`, `gateway` or `gateway-refused`.
    pub fn name(self) -> &'static str {
        match self {
            PushSide::Direct => "direct",
            PushSide::Gateway => "gateway",
            PushSide::GatewayRefused => "gateway-refused",
        }
    }

    /// Whether the gateway's `Push` is called.
    pub fn via_gateway(self) -> bool {
        self != PushSide::Direct
    }
}

/// How jobs are submitted in a push scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PushMode {
    /// One caller, sequential calls of `size` jobs each.
    Batch {
        /// Jobs per call.
        size: usize,
    },
    /// Many callers at once, each making sequential single-job calls (the
    /// gateway coalesces them into `PUSHB`s; direct callers each use their
    /// own connection).
    Concurrent {
        /// Callers.
        callers: usize,
    },
}

impl PushMode {
    /// Short name for tables.
    pub fn name(self) -> String {
        match self {
            PushMode::Batch { size } => format!("batch {size}"),
            PushMode::Concurrent { callers } => format!("{callers} x single"),
        }
    }
}

/// One push scenario.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PushScenario {
    /// Who pushes.
    pub side: PushSide,
    /// How.
    pub mode: PushMode,
}

impl PushScenario {
    /// A short name, e.g. `push gateway batch 100` (what `--only` matches).
    pub fn name(self) -> String {
        format!("push {} {}", self.side.name(), self.mode.name())
    }
}

/// How long each phase of a scenario lasts.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Timing {
    /// Running before the measurement window opens (prefetch ramps up,
    /// connections settle); at least this long.
    pub warmup: Duration,
    /// Longest warm-up: after `warmup` it goes on while the rate still
    /// changes (see [`crate::runs::runner::warm_up`]).
    pub warmup_limit: Duration,
    /// The throughput measurement window.
    pub measure: Duration,
    /// The paced latency phase.
    pub latency: Duration,
    /// Longest wait for workers to connect.
    pub settle_limit: Duration,
    /// Longest wait for a backlog (or the latency phase's jobs) to finish.
    pub drain_limit: Duration,
}

/// Everything one benchmark invocation runs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `"full"` or `"short"`.
    pub mode: &'static str,
    /// Throughput scenarios, in order.
    pub scenarios: Vec<Scenario>,
    /// Push scenarios, in order.
    pub pushes: Vec<PushScenario>,
    /// Whether to run the CPU-cost comparison.
    pub cpu_cost: bool,
    /// Phase timings.
    pub timing: Timing,
}

const fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

impl Plan {
    /// The full plan: every RTT, path and workload. A few minutes.
    pub fn full() -> Plan {
        let mut scenarios = vec![Scenario::ceiling(Workload::Noop)];
        for rtt in [ms(0), ms(10), ms(50), ms(200)] {
            for path in paths() {
                scenarios.push(Scenario {
                    path,
                    rtt,
                    workload: Workload::Noop,
                });
            }
        }
        for workload in [Workload::Sleep1ms, Workload::Args100B, Workload::Args10KiB] {
            scenarios.push(Scenario {
                path: reference(),
                rtt: ms(0),
                workload,
            });
            for path in paths() {
                scenarios.push(Scenario {
                    path,
                    rtt: ms(50),
                    workload,
                });
            }
            scenarios.push(Scenario {
                path: gateway(),
                rtt: ms(200),
                workload,
            });
        }
        let mut pushes = Vec::new();
        for mode in [
            PushMode::Batch { size: 1 },
            PushMode::Batch { size: 100 },
            PushMode::Batch { size: 1000 },
            PushMode::Concurrent { callers: 200 },
        ] {
            for side in [PushSide::Direct, PushSide::Gateway] {
                pushes.push(PushScenario { side, mode });
            }
        }
        pushes.push(PushScenario {
            side: PushSide::GatewayRefused,
            mode: PushMode::Batch { size: 100 },
        });
        Plan {
            mode: "full",
            scenarios,
            pushes,
            cpu_cost: true,
            timing: Timing {
                warmup: ms(3000),
                warmup_limit: ms(15_000),
                measure: ms(5000),
                latency: ms(2000),
                settle_limit: ms(30_000),
                drain_limit: ms(10_000),
            },
        }
    }

    /// The short plan for CI: the core scenarios with brief phases.
    pub fn short() -> Plan {
        let scenarios = vec![
            Scenario::ceiling(Workload::Noop),
            Scenario {
                path: reference(),
                rtt: ms(0),
                workload: Workload::Noop,
            },
            Scenario {
                path: gateway(),
                rtt: ms(0),
                workload: Workload::Noop,
            },
            Scenario {
                path: reference(),
                rtt: ms(50),
                workload: Workload::Noop,
            },
            Scenario {
                path: WorkerPath::Direct { slots: 500 },
                rtt: ms(50),
                workload: Workload::Noop,
            },
            Scenario {
                path: gateway(),
                rtt: ms(50),
                workload: Workload::Noop,
            },
            Scenario {
                path: gateway(),
                rtt: ms(200),
                workload: Workload::Noop,
            },
        ];
        let pushes = vec![
            PushScenario {
                side: PushSide::Direct,
                mode: PushMode::Batch { size: 100 },
            },
            PushScenario {
                side: PushSide::Gateway,
                mode: PushMode::Batch { size: 100 },
            },
            PushScenario {
                side: PushSide::GatewayRefused,
                mode: PushMode::Batch { size: 100 },
            },
        ];
        Plan {
            mode: "short",
            scenarios,
            pushes,
            cpu_cost: true,
            timing: Timing {
                // The SDK's prefetch window needs a few seconds to ramp up
                // across a 200 ms link; measuring earlier understates it.
                warmup: ms(2000),
                warmup_limit: ms(8000),
                measure: ms(2000),
                latency: ms(500),
                settle_limit: ms(20_000),
                drain_limit: ms(5_000),
            },
        }
    }
}

fn reference() -> WorkerPath {
    WorkerPath::Direct {
        slots: REFERENCE_SLOTS,
    }
}

fn gateway() -> WorkerPath {
    WorkerPath::Gateway {
        concurrency: REFERENCE_SLOTS,
    }
}

fn paths() -> [WorkerPath; 3] {
    [reference(), WorkerPath::Direct { slots: 500 }, gateway()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_workload_has_a_reference_in_each_plan() {
        for plan in [Plan::full(), Plan::short()] {
            for scenario in &plan.scenarios {
                assert!(
                    plan.scenarios
                        .iter()
                        .any(|s| s.is_reference() && s.workload == scenario.workload),
                    "{} lacks a reference",
                    scenario.name()
                );
            }
        }
    }

    #[test]
    fn both_plans_have_the_ceiling_and_a_co_located_gateway() {
        for plan in [Plan::full(), Plan::short()] {
            let names: Vec<_> = plan.scenarios.iter().map(Scenario::name).collect();
            assert!(names.contains(&"faktory ceiling direct-200 rtt=0ms noop".to_owned()));
            assert!(names.contains(&"gateway-50 rtt=0ms noop".to_owned()));
        }
    }

    #[test]
    fn push_names_say_side_and_mode() {
        let gateway_100 = PushScenario {
            side: PushSide::Gateway,
            mode: PushMode::Batch { size: 100 },
        };
        assert_eq!(gateway_100.name(), "push gateway batch 100");
        let direct_callers = PushScenario {
            side: PushSide::Direct,
            mode: PushMode::Concurrent { callers: 200 },
        };
        assert_eq!(direct_callers.name(), "push direct 200 x single");
    }

    #[test]
    fn queues_are_unique() {
        let plan = Plan::full();
        let mut queues: Vec<_> = plan.scenarios.iter().map(|s| s.queue("bench-x")).collect();
        queues.sort();
        queues.dedup();
        assert_eq!(queues.len(), plan.scenarios.len());
    }
}
