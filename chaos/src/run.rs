//! The run itself: start the test server, the links, a gateway and the
//! workers; push every job while faults strike at random moments; recover;
//! stop everything gracefully; hand the evidence to [`verify`].

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use faktory_test_server::{ServerConfig, TestServer};
use link_emulator::LinkEmulator;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use crate::faults::{self, Fault, FaultCounts};
use crate::fleet::Fleet;
use crate::gateway::GatewayProcess;
use crate::plan::RESERVE_FOR_SECS;
use crate::producer::{self, PushStats};
use crate::record::Record;
use crate::verify::{self, Evidence, Summary};

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// Jobs to push.
    pub(crate) jobs: usize,
    /// RNG seed (fault timing and choice; also part of every jid).
    pub(crate) seed: u64,
    /// SDK workers.
    pub(crate) workers: usize,
    /// Concurrent producers.
    pub(crate) producers: usize,
    /// Time budget for the whole run.
    pub(crate) budget: Duration,
    /// Pause between faults: uniformly random in this range (ms).
    pub(crate) fault_gap_ms: (u64, u64),
    /// Most abrupt gateway kills.
    pub(crate) max_kills: u64,
    /// The fault kinds to inject.
    pub(crate) faults: Vec<Fault>,
}

/// How long Faktory's blocking FETCH waits on empty queues in the run.
const FETCH_BLOCK: Duration = Duration::from_millis(250);
/// Faktory clock steps while faults run: small enough that the gateway's
/// BEAT (every 15 s) never looks 60 s old, so Faktory never reaps it.
const CLOCK_STEP_DURING_FAULTS: (Duration, Duration) =
    (Duration::from_secs(12), Duration::from_secs(5));
/// Faktory clock steps during recovery (retry backoff is at most ~44 s for
/// a first failure).
const CLOCK_STEP_DURING_RECOVERY: (Duration, Duration) =
    (Duration::from_secs(45), Duration::from_secs(2));
/// Recovery gives up when nothing resolves for this long.
const STALL_LIMIT: Duration = Duration::from_secs(15);

/// Jobs faults may leave reserved at Faktory with nobody to settle them.
#[derive(Debug, Default)]
struct Strandings {
    /// Reserved at Faktory when a gateway was killed (exact).
    by_kill: HashSet<String>,
    /// FETCHes blocked at Faktory when their connections were cut: each
    /// may strand one job.
    blocked_fetches_cut: u64,
}

/// Everything that runs, in one place.
struct Stack {
    server: TestServer,
    faktory_link: LinkEmulator,
    gateway: GatewayProcess,
    worker_link: LinkEmulator,
}

fn gateway_flags(faktory: &LinkEmulator) -> Vec<String> {
    [
        "--faktory-url",
        &format!("tcp://{}", faktory.addr()),
        "--metrics-listen",
        "off",
        "--redelivery-grace-ms",
        "2000",
        "--shutdown-grace-ms",
        "2000",
        "--heartbeat-interval-ms",
        "1000",
        "--heartbeat-timeout-ms",
        "5000",
        "--faktory-timeout-ms",
        "3000",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

/// Runs the whole thing and checks the outcome.
pub(crate) async fn run(options: Options) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let deadline = started + options.budget;
    let server = TestServer::start_with(ServerConfig {
        fetch_block: FETCH_BLOCK,
        ..ServerConfig::default()
    })
    .await
    .context("start the faktory test server")?;
    let handle = server.handle();
    let faktory_link = LinkEmulator::start(server.addr(), Duration::ZERO).await?;
    let gateway = GatewayProcess::start(gateway_flags(&faktory_link)).await?;
    let worker_link = LinkEmulator::start(gateway.addr(), Duration::from_millis(1)).await?;
    let mut stack = Stack {
        server,
        faktory_link,
        gateway,
        worker_link,
    };
    let record = Arc::new(Record::default());
    let mut fleet = Fleet::start(
        format!("http://{}", stack.worker_link.addr()),
        record.clone(),
        options.workers,
    )?;
    let push_stats = Arc::new(PushStats::default());
    let mut producer = tokio::spawn(producer::push_all(
        format!("http://{}", stack.gateway.addr()),
        options.seed,
        options.jobs,
        options.producers,
        push_stats.clone(),
    ));

    let expected = options.jobs as u64;
    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut counts = FaultCounts::default();
    let mut stranded = Strandings::default();
    let mut notes: Vec<String> = Vec::new();

    // Phase 1: faults while the jobs flow.
    let faults_end = started + options.budget.mul_f64(0.6);
    let gap = |rng: &mut StdRng| {
        Duration::from_millis(rng.random_range(options.fault_gap_ms.0..=options.fault_gap_ms.1))
    };
    // Abrupt kills happen at seeded points of the run (15% to 70% of the
    // jobs resolved), so that they hit a gateway with jobs in flight; the
    // other faults strike at random moments.
    let random_faults: Vec<Fault> = options
        .faults
        .iter()
        .copied()
        .filter(|f| *f != Fault::KillGateway)
        .collect();
    let mut kill_at: Vec<u64> = if options.faults.contains(&Fault::KillGateway) {
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
            handle.advance_clock(CLOCK_STEP_DURING_FAULTS.0);
            clock_steps += 1;
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
    clock_steps += recover(&record, &handle, expected, recovery_end).await;
    let mut final_expiry = false;
    if record.resolved() < expected && Instant::now() < deadline {
        // Whatever is still reserved after a graceful stop of the gateway
        // was stranded by an abrupt kill: only Faktory's expiry frees it.
        if let Err(e) = stack.gateway.stop().await {
            notes.push(format!(
                "graceful stop before the final expiry failed: {e:#}"
            ));
        }
        handle.advance_clock(Duration::from_secs(RESERVE_FOR_SECS as u64 + 60));
        final_expiry = true;
        stack.gateway.restart().await?;
        clock_steps += recover(&record, &handle, expected, deadline).await;
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
    if let Err(e) = stack.gateway.stop().await {
        notes.push(format!("final graceful gateway stop failed: {e:#}"));
    }
    let settled = Instant::now() + Duration::from_secs(10);
    while !handle.reserved_jids().is_empty() && Instant::now() < settled {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let evidence = Evidence {
        options: options.clone(),
        record: &record,
        handle: &handle,
        push: &push_stats,
        faults: counts,
        clock_steps,
        final_expiry,
        stranded: &stranded.by_kill,
        blocked_fetches_cut: stranded.blocked_fetches_cut,
        notes,
        faults_done,
        elapsed: started.elapsed(),
    };
    let summary = verify::verify(evidence);
    drop(stack.worker_link);
    drop(stack.faktory_link);
    stack.server.shutdown().await;
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
        Fault::CutWorkerStreams => stack.worker_link.cut_all(),
        Fault::RestartGateway => {
            if let Err(e) = stack.gateway.stop().await {
                notes.push(format!("graceful gateway stop failed: {e:#}"));
            }
            stack.gateway.restart().await?;
        }
        Fault::KillGateway => {
            stack.gateway.kill();
            // One gateway at a time: every reservation until the restart is
            // the dead one's, including FETCHes Faktory answers a moment
            // after the kill (it reserves even when the reply cannot land).
            tokio::time::sleep(Duration::from_millis(300)).await;
            stranded
                .by_kill
                .extend(stack.server.handle().reserved_jids());
            stack.gateway.restart().await?;
        }
        Fault::CutFaktoryConnections => {
            // A FETCH blocked at Faktory when its connection is cut can still
            // be handed the next job (as with Faktory's BRPOP): reserved,
            // its reply lost, it waits for the expiry.
            stranded.blocked_fetches_cut += stack.server.handle().blocked_fetches() as u64;
            stack.faktory_link.cut_all();
        }
        Fault::RestartFaktoryListener => {
            stack.server.stop_listener().await;
            tokio::time::sleep(Duration::from_millis(rng.random_range(50..400))).await;
            stack.server.restart_listener().await;
        }
    }
    Ok(())
}

/// Moves Faktory's clock on (bringing retries back) until every job is
/// resolved, nothing resolves for [`STALL_LIMIT`], or `until`; returns how
/// many clock steps it took.
async fn recover(
    record: &Record,
    handle: &faktory_test_server::ServerHandle,
    expected: u64,
    until: Instant,
) -> u64 {
    let mut steps = 0;
    let mut last = record.resolved();
    let mut last_change = Instant::now();
    let mut next_clock = Instant::now();
    while record.resolved() < expected && Instant::now() < until {
        let now = Instant::now();
        if now >= next_clock {
            handle.advance_clock(CLOCK_STEP_DURING_RECOVERY.0);
            steps += 1;
            next_clock = now + CLOCK_STEP_DURING_RECOVERY.1;
        }
        let resolved = record.resolved();
        if resolved != last {
            last = resolved;
            last_change = now;
        } else if now - last_change > STALL_LIMIT {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    steps
}
