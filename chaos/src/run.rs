//! The run itself: the Faktory target, a link emulator in front of it, the
//! gateways (child processes) each behind a link of its own for the
//! workers, the workers; push every job while faults strike at random
//! moments; recover; stop everything gracefully; hand the evidence to
//! [`verify`].

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use faktory_gateway_bench::setup::run_queues::clean_up;
use link_emulator::LinkEmulator;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use crate::faults::{self, Fault, FaultCounts, FaultLog};
use crate::fleet::Fleet;
use crate::gateway::Gateway;
use crate::options::Options;
use crate::plan::RESERVE_FOR_SECS;
use crate::producer::{self, PushStats};
use crate::record::Record;
use crate::target::Target;
use crate::verify::{self, Evidence, Summary};

/// Steps that bring retries back while faults run: every 5 s the test
/// server's clock moves on by 12 s (small enough that the gateway's BEAT,
/// every 15 s, never looks 60 s old, so Faktory never reaps it); a real
/// Faktory's retries come back on its own schedule (see
/// [`Target::bring_back_retries`]).
const CLOCK_STEP_DURING_FAULTS: (Duration, Duration) =
    (Duration::from_secs(12), Duration::from_secs(5));
/// The same during recovery (retry backoff is at most ~44 s for a first
/// failure).
const CLOCK_STEP_DURING_RECOVERY: (Duration, Duration) =
    (Duration::from_secs(45), Duration::from_secs(2));
/// How long after a kill the test server's reservations are read: FETCHes
/// Faktory answers a moment after the kill still reserve a job.
const AFTER_KILL: Duration = Duration::from_millis(300);

/// Jobs faults may leave reserved at Faktory with nobody to settle them
/// (counted against the test server only).
#[derive(Debug, Default)]
struct Strandings {
    /// Reserved at Faktory just after a gateway was killed.
    by_kill: HashSet<String>,
    /// FETCHes blocked at Faktory when their connections were cut: each
    /// may strand one job.
    blocked_fetches_cut: u64,
}

/// Everything that runs, in one place.
struct Stack {
    target: Target,
    faktory_link: LinkEmulator,
    gateways: Vec<Gateway>,
    worker_links: Vec<LinkEmulator>,
}

impl Stack {
    /// Stops every gateway gracefully; notes failures.
    async fn stop_gateways(&mut self, notes: &mut Vec<String>) {
        for (i, gateway) in self.gateways.iter_mut().enumerate() {
            if let Err(e) = gateway.stop().await {
                notes.push(format!("gateway {i}: {e:#}"));
            }
        }
    }
}

fn gateway_flags() -> Vec<String> {
    [
        "--redelivery-grace-ms=2000",
        "--heartbeat-interval-ms=1000",
        "--heartbeat-timeout-ms=5000",
        "--faktory-timeout-ms=3000",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

/// Runs the whole thing and checks the outcome.
pub(crate) async fn run(options: Options) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let deadline = started + options.budget;
    let target = Target::from_env().await?;
    let real = target.is_real();
    let mut notes: Vec<String> = Vec::new();
    let fault_kinds: Vec<Fault> = options
        .faults
        .iter()
        .copied()
        .filter(|f| !(real && *f == Fault::RestartFaktoryListener))
        .collect();
    if fault_kinds.len() < options.faults.len() {
        let note = format!(
            "skipped fault: {} (the test server's alone; FAKTORY_URL is set)",
            Fault::RestartFaktoryListener
        );
        println!("note: {note}");
        notes.push(note);
    }
    let faktory_link = LinkEmulator::start(target.addr().await?, Duration::ZERO).await?;
    let mut gateways = Vec::with_capacity(options.gateways);
    let mut worker_links = Vec::with_capacity(options.gateways);
    for _ in 0..options.gateways {
        let gateway = Gateway::start(target.url_via(faktory_link.addr()), gateway_flags()).await?;
        worker_links.push(LinkEmulator::start(gateway.addr(), Duration::from_millis(1)).await?);
        gateways.push(gateway);
    }
    let mut stack = Stack {
        target,
        faktory_link,
        gateways,
        worker_links,
    };
    let queue = options.plan.queue.clone();
    let record = Arc::new(Record::default());
    let mut fleet = Fleet::start(
        stack
            .worker_links
            .iter()
            .map(|link| format!("http://{}", link.addr()))
            .collect(),
        queue.clone(),
        record.clone(),
        options.workers,
    )?;
    let push_stats = Arc::new(PushStats::default());
    let mut producer = tokio::spawn(producer::push_all(
        stack
            .gateways
            .iter()
            .map(|gateway| format!("http://{}", gateway.addr()))
            .collect(),
        options.plan.clone(),
        options.jobs,
        options.producers,
        push_stats.clone(),
    ));

    let expected = options.jobs as u64;
    let mut rng = StdRng::seed_from_u64(options.plan.seed);
    let mut counts = FaultCounts::default();
    let mut log = FaultLog::default();
    let mut stranded = Strandings::default();

    // Phase 1: faults while the jobs flow.
    let faults_end = started + options.budget.mul_f64(0.6);
    let gap = |rng: &mut StdRng| {
        Duration::from_millis(rng.random_range(options.fault_gap_ms.0..=options.fault_gap_ms.1))
    };
    // Abrupt kills happen at seeded points of the run (15% to 70% of the
    // jobs resolved), so that they hit a gateway with jobs in flight; the
    // other faults strike at random moments.
    let random_faults: Vec<Fault> = fault_kinds
        .iter()
        .copied()
        .filter(|f| *f != Fault::KillGateway)
        .collect();
    let mut kill_at: Vec<u64> = if fault_kinds.contains(&Fault::KillGateway) {
        (0..options.max_kills)
            .map(|_| (expected as f64 * rng.random_range(0.15..0.7)) as u64)
            .collect()
    } else {
        Vec::new()
    };
    kill_at.sort_unstable();
    kill_at.reverse();
    let mut next_fault = Instant::now() + gap(&mut rng);
    let mut next_clock = Instant::now() + CLOCK_STEP_DURING_FAULTS.1;
    let mut clock_steps = 0u64;
    while record.resolved() < expected && Instant::now() < faults_end {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = Instant::now();
        if now >= next_clock {
            clock_steps += u64::from(stack.target.bring_back_retries(CLOCK_STEP_DURING_FAULTS.0));
            next_clock = now + CLOCK_STEP_DURING_FAULTS.1;
        }
        let planned_kill = kill_at.last().is_some_and(|&at| record.resolved() >= at);
        if planned_kill {
            kill_at.pop();
        }
        if planned_kill || now >= next_fault {
            let fault = if planned_kill {
                Some(Fault::KillGateway)
            } else {
                faults::pick(&mut rng, &random_faults)
            };
            if let Some(fault) = fault {
                counts.add(fault);
                log.push(Instant::now(), fault);
                tracing::info!(%fault, resolved = record.resolved(), "fault");
                strike(
                    fault,
                    &mut stack,
                    &mut fleet,
                    &mut rng,
                    &mut stranded,
                    &mut notes,
                )
                .await?;
            }
            next_fault = Instant::now() + gap(&mut rng);
        }
    }
    let faults_done = started.elapsed();

    // Phase 2: no more faults; let retries come back until all is resolved.
    let recovery_end = started + options.budget.mul_f64(0.85);
    clock_steps += recover(&record, &stack.target, expected, recovery_end).await;
    let mut final_expiry = false;
    if let Some(handle) = stack.target.handle()
        && record.resolved() < expected
        && Instant::now() < deadline
    {
        // Whatever is still reserved after a graceful stop of the gateways
        // was stranded by an abrupt kill or a cut: only Faktory's expiry
        // frees it. (A real Faktory's 30-minute expiry is not waited for:
        // what is still reserved at the end is counted instead.)
        stack.stop_gateways(&mut notes).await;
        handle.advance_clock(Duration::from_secs(RESERVE_FOR_SECS as u64 + 60));
        final_expiry = true;
        for gateway in &mut stack.gateways {
            gateway.restart().await?;
        }
        clock_steps += recover(&record, &stack.target, expected, deadline).await;
    }

    // Phase 3: stop gracefully and collect the evidence.
    if tokio::time::timeout(Duration::from_secs(5), &mut producer)
        .await
        .is_err()
    {
        producer.abort();
        notes.push("the producers had not pushed every job by the end".to_owned());
    }
    let workers = fleet.len();
    let clean_workers = fleet.stop().await;
    if clean_workers < workers {
        notes.push(format!(
            "{} of {workers} workers did not stop cleanly at the end",
            workers - clean_workers
        ));
    }
    stack.stop_gateways(&mut notes).await;
    if let Some(handle) = stack.target.handle() {
        let settled = Instant::now() + Duration::from_secs(10);
        while !handle.reserved_jids().is_empty() && Instant::now() < settled {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let jids: Vec<String> = (0..options.jobs).map(|i| options.plan.jid(i)).collect();
    let places = stack
        .target
        .places(&queue, &jids)
        .await
        .context("read what faktory holds of the run")?;
    // The inventory emptied the run's queue; a real Faktory still lists it.
    if real && let Err(e) = clean_up(&stack.target.url(), &queue).await {
        notes.push(format!("removing the run's queue: {e}"));
    }
    let evidence = Evidence {
        options: options.clone(),
        real_faktory: real,
        record: &record,
        places,
        push: &push_stats,
        faults: counts,
        log,
        clock_steps,
        final_expiry,
        stranded: &stranded.by_kill,
        blocked_fetches_cut: stranded.blocked_fetches_cut,
        faktory_expired_counter: stack.target.handle().map(|h| h.counters().expired),
        notes,
        started,
        faults_done,
        elapsed: started.elapsed(),
    };
    let summary = verify::verify(evidence);
    drop(stack.worker_links);
    drop(stack.faktory_link);
    stack.target.shutdown().await;
    Ok(summary)
}

/// Carries out one fault.
async fn strike(
    fault: Fault,
    stack: &mut Stack,
    fleet: &mut Fleet,
    rng: &mut StdRng,
    stranded: &mut Strandings,
    notes: &mut Vec<String>,
) -> anyhow::Result<()> {
    match fault {
        Fault::AbortWorker => {
            let index = rng.random_range(0..fleet.len());
            fleet.abort_and_replace(index)?;
        }
        Fault::CutWorkerStreams => {
            for link in &stack.worker_links {
                link.cut_all();
            }
        }
        Fault::RestartGateway => {
            let index = rng.random_range(0..stack.gateways.len());
            let gateway = &mut stack.gateways[index];
            if let Err(e) = gateway.stop().await {
                notes.push(format!("{e:#}"));
            }
            gateway.restart().await?;
        }
        Fault::KillGateway => {
            let index = rng.random_range(0..stack.gateways.len());
            let gateway = &mut stack.gateways[index];
            gateway.kill().await?;
            tokio::time::sleep(AFTER_KILL).await;
            if let Some(handle) = stack.target.handle() {
                stranded.by_kill.extend(handle.reserved_jids());
            }
            gateway.restart().await?;
        }
        Fault::CutFaktoryConnections => {
            // A FETCH blocked at Faktory when its connection is cut can still
            // be handed the next job (as with Faktory's BRPOP): reserved,
            // its reply lost, it waits for the expiry.
            if let Some(handle) = stack.target.handle() {
                stranded.blocked_fetches_cut += handle.blocked_fetches() as u64;
            }
            stack.faktory_link.cut_all();
        }
        Fault::RestartFaktoryListener => {
            if let Target::TestServer(server) = &stack.target {
                server.stop_listener().await;
                tokio::time::sleep(Duration::from_millis(rng.random_range(50..400))).await;
                server.restart_listener().await;
            }
        }
    }
    Ok(())
}

/// Brings retries back until every job is resolved, nothing resolves for
/// the target's stall limit, or `until`; returns how many steps it took.
async fn recover(record: &Record, target: &Target, expected: u64, until: Instant) -> u64 {
    let mut steps = 0;
    let mut last = record.resolved();
    let mut last_change = Instant::now();
    let mut next_clock = Instant::now();
    while record.resolved() < expected && Instant::now() < until {
        let now = Instant::now();
        if now >= next_clock {
            steps += u64::from(target.bring_back_retries(CLOCK_STEP_DURING_RECOVERY.0));
            next_clock = now + CLOCK_STEP_DURING_RECOVERY.1;
        }
        let resolved = record.resolved();
        if resolved != last {
            last = resolved;
            last_change = now;
        } else if now - last_change > target.stall_limit() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    steps
}
