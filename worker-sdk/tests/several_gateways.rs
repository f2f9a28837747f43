//! Several gateways beside one Faktory, over real sockets: a worker given a
//! gateway that is down uses the next; a worker whose gateway is stopped
//! (drain) or killed (runtime shut down, as a crash) streams to another
//! within a liveness bound, and every job is processed.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use faktory_gateway_worker::{StopReason, Worker, WorkerBuilder};
use support::stack::{Gateway, Stack, eventually, free_addr, push, within};
use support::{Running, Runs, all_ran_and_faktory_empty, brief, recording, spawn};

/// Generous: failing over takes well under a second on loopback; this only
/// catches a worker that does not move.
const FAILOVER_BOUND: Duration = Duration::from_secs(10);

fn worker(urls: &[String]) -> WorkerBuilder {
    Worker::builder()
        .gateways(urls.iter().cloned())
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_is_down_is_skipped_for_the_next() {
    let stack = Stack::start(&[]).await;
    let down = format!("http://{}", free_addr());
    let up = stack.gateway.url();
    // The same worker id starts at the same index of both lists, so one of
    // the two workers tries the gateway that is down first.
    for urls in [[down.clone(), up.clone()], [up.clone(), down.clone()]] {
        let jids = push(&up, "noop", "[]", None, 200).await;
        let runs = Runs::default();
        let (stats, stop, task) = spawn(
            worker(&urls)
                .worker_id("same-id")
                .register("noop", recording(&runs)),
        );
        all_ran_and_faktory_empty(&stack.faktory.handle(), &runs, &jids).await;
        stop.send(()).unwrap();
        assert_eq!(task.await.unwrap(), StopReason::Shutdown);
        assert_eq!(stats.snapshot().sessions, 1, "{urls:?}");
    }
}

/// A worker given gateways A (the stack's) and B, streaming to A with some
/// jobs done. B starts only once the worker streams to A, so A is where it is.
struct OnA {
    jids: Vec<String>,
    runs: Runs,
    running: Running,
    b: Gateway,
}

async fn worker_on_a_with_b_beside(stack: &Stack) -> OnA {
    let b_addr = free_addr();
    let urls = [stack.gateway.url(), format!("http://{b_addr}")];
    let jids = push(&urls[0], "work", "[]", None, 3_000).await;
    let runs = Runs::default();
    let running = spawn(worker(&urls).concurrency(20).register("work", brief(&runs)));
    eventually("some progress on A", || runs.distinct() >= 300).await;
    let b = stack.another_gateway(b_addr).await;
    OnA {
        jids,
        runs,
        running,
        b,
    }
}

/// After A went away: the worker opened another stream (to B, the only one
/// left) and jobs run again, within the failover bound.
async fn runs_on_b(on_a: &OnA) {
    let ran_on_a = on_a.runs.distinct();
    let started = std::time::Instant::now();
    within(FAILOVER_BOUND, "jobs run through B", || {
        on_a.running.0.snapshot().sessions >= 2 && on_a.runs.distinct() > ran_on_a
    })
    .await;
    // Printed, not asserted: how long the move took on this machine.
    eprintln!(
        "jobs ran through B {:?} after A went away",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_moves_to_the_other_gateway_when_its_gateway_drains() {
    let mut stack = Stack::start(&[]).await;
    let on_a = worker_on_a_with_b_beside(&stack).await;
    stack.gateway.stop().await;
    runs_on_b(&on_a).await;
    let OnA {
        jids,
        runs,
        running: (stats, stop, task),
        b: _b,
    } = on_a;
    all_ran_and_faktory_empty(&stack.faktory.handle(), &runs, &jids).await;
    stop.send(()).unwrap();
    assert_eq!(task.await.unwrap(), StopReason::Shutdown);
    assert!(
        runs.snapshot().values().all(|n| *n == 1),
        "a drain costs no second run: {:?}",
        stats.snapshot()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_fails_over_when_its_gateway_is_killed_and_every_job_is_processed() {
    let mut stack = Stack::start(&[]).await;
    let on_a = worker_on_a_with_b_beside(&stack).await;
    stack.gateway.kill();
    runs_on_b(&on_a).await;
    let OnA {
        jids,
        runs,
        running: (_stats, stop, task),
        b: _b,
    } = on_a;
    // Jobs the killed gateway held stay reserved at Faktory until their
    // reservation expires (at least once: some of them ran already). Once
    // nothing else is left and the reserved set stops changing, the clock
    // is moved past their reservation so that B gets them.
    let faktory = stack.faktory.handle();
    let mut last_reserved = HashSet::new();
    let mut unchanged_polls = 0;
    eventually("every job ran and Faktory is empty", || {
        let reserved: HashSet<String> = faktory.reserved_jids().into_iter().collect();
        let idle = faktory.total_queued() == 0 && faktory.scheduled_len() == 0;
        unchanged_polls = if reserved == last_reserved {
            unchanged_polls + 1
        } else {
            0
        };
        last_reserved = reserved;
        if idle && !last_reserved.is_empty() && unchanged_polls >= 100 {
            faktory.advance_clock(Duration::from_secs(1801));
            unchanged_polls = 0;
        }
        if faktory.scheduled_len() > 0 || !faktory.retries().is_empty() {
            faktory.advance_clock(Duration::from_secs(60));
        }
        idle && last_reserved.is_empty()
            && faktory.retries().is_empty()
            && runs.distinct() == jids.len()
    })
    .await;
    let ran: HashSet<String> = runs.snapshot().into_keys().collect();
    assert_eq!(ran, jids.iter().cloned().collect(), "every job ran");
    assert!(faktory.dead().is_empty(), "no job died");
    stop.send(()).unwrap();
    assert_eq!(task.await.unwrap(), StopReason::Shutdown);
}
