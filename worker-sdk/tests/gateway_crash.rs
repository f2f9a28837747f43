//! A gateway that dies mid-flight (its runtime shut down, as in a crash)
//! costs no finished work: the worker keeps its unconfirmed results and the
//! jobs it holds, and settles them through the restarted gateway, which sends
//! them to Faktory by jid. Only jobs the dead gateway had fetched and not yet
//! delivered are left to Faktory's reservation expiry.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use faktory_gateway_worker::{StopReason, Worker};
use link_emulator::LinkEmulator;
use support::stack::{Stack, eventually, push};
use support::{Runs, brief, spawn};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_gateway_leaves_no_finished_job_reserved_and_runs_nothing_twice() {
    let mut stack = Stack::start(&[]).await;
    // A few milliseconds of latency, so that the worker buffers jobs.
    let link = LinkEmulator::start(stack.gateway.addr(), Duration::from_millis(5))
        .await
        .unwrap();
    let jids = push(&stack.gateway.url(), "work", "[]", None, 3_000).await;
    let all: HashSet<String> = jids.iter().cloned().collect();
    let runs = Runs::default();
    let (stats, stop, task) = spawn(
        Worker::builder()
            .gateway(format!("http://{}", link.addr()))
            .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
            .concurrency(20)
            .register("work", brief(&runs)),
    );
    eventually("some progress", || runs.distinct() >= 500).await;
    stack.gateway.kill();
    stack.gateway.restart().await;

    // Every job either ran or is still reserved at Faktory, never both: a job
    // the worker finished is not left reserved.
    let faktory = stack.faktory.handle();
    let mut reserved = HashSet::new();
    eventually("finished jobs settled and the rest reserved", || {
        reserved = faktory.reserved_jids().into_iter().collect();
        let ran: HashSet<String> = runs.snapshot().into_keys().collect();
        faktory.total_queued() == 0
            && ran.is_disjoint(&reserved)
            && ran.union(&reserved).cloned().collect::<HashSet<_>>() == all
    })
    .await;
    let stranded = reserved.len();
    eprintln!(
        "left to reservation expiry: {stranded} of {} jobs; worker: {:?}",
        jids.len(),
        stats.snapshot()
    );
    assert!(
        runs.snapshot().values().all(|n| *n == 1),
        "a job ran twice: {:?}",
        stats.snapshot()
    );

    // The stranded ones come back after their reservation, with a retry used.
    faktory.advance_clock(Duration::from_secs(1801));
    eventually("every job ran", || {
        if faktory.scheduled_len() > 0 || !faktory.retries().is_empty() {
            faktory.advance_clock(Duration::from_secs(60));
        }
        runs.distinct() == jids.len()
            && faktory.total_queued() == 0
            && faktory.reserved_jids().is_empty()
            && faktory.retries().is_empty()
    })
    .await;
    assert!(runs.snapshot().values().all(|n| *n == 1), "still once each");
    assert!(faktory.dead().is_empty());
    stop.send(()).unwrap();
    assert_eq!(task.await.unwrap(), StopReason::Shutdown);
}
