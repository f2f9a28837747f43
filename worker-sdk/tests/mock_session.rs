//! The SDK's session logic against a scripted gateway (`support::mock_gateway`):
//! windows, result batching and confirmation, panics, drain, shutdown and
//! reconnects, without Faktory or the real gateway.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use faktory_gateway_worker::{Job, JobError, StopReason, Worker, WorkerBuilder};
use link_emulator::LinkEmulator;
use support::mock_gateway::MockGateway;
use support::{Concurrent, gated};
use tokio::sync::{Semaphore, oneshot};

fn builder(mock: &MockGateway) -> WorkerBuilder {
    support::init_tracing();
    Worker::builder()
        .gateway(mock.url())
        .reconnect_backoff(Duration::from_millis(10), Duration::from_millis(100))
}

#[tokio::test]
async fn every_job_is_acked_once_within_the_window() {
    let mock = MockGateway::start().await;
    let jids = mock.push("noop", "[]", 1000);
    let gauge = Arc::new(Concurrent::default());
    let g = gauge.clone();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let worker = builder(&mock)
        .concurrency(10)
        .max_prefetch(5)
        .register("noop", move |_job: Job| {
            let g = g.clone();
            async move {
                g.enter();
                tokio::task::yield_now().await;
                g.exit();
                Ok(())
            }
        })
        .with_graceful_shutdown(stop_rx)
        .build()
        .unwrap();
    let stats = worker.stats();
    let run = tokio::spawn(worker.run());
    mock.wait_for(|r| r.acked.len() == 1000).await;
    stop_tx.send(()).unwrap();
    assert_eq!(run.await.unwrap().unwrap(), StopReason::Shutdown);

    mock.with(|r| {
        let acked: HashSet<_> = r.acked.iter().cloned().collect();
        assert_eq!(acked.len(), 1000, "no duplicates");
        assert_eq!(acked, jids.into_iter().collect());
        assert!(
            r.max_unfinished <= 15,
            "window exceeded: {}",
            r.max_unfinished
        );
        assert!(r.windows.iter().all(|w| *w <= 15), "{:?}", r.windows);
        assert_eq!(r.hellos[0].jobtypes, ["noop"]);
        assert_eq!(r.rejected, 0);
    });
    assert!(gauge.peak() <= 10);
    let snapshot = stats.snapshot();
    assert_eq!((snapshot.succeeded, snapshot.running), (1000, 0));
}

#[tokio::test]
async fn errors_and_panics_become_failures_and_the_worker_keeps_going() {
    let mock = MockGateway::start().await;
    mock.push("fail", "[]", 3);
    mock.push("panic", "[]", 3);
    mock.push("bad_args", r#"["x"]"#, 1);
    mock.push("ok", "[]", 3);
    let worker = builder(&mock)
        .concurrency(2)
        .register("fail", |_job: Job| async {
            Err(JobError::new("Boom", "it broke").with_backtrace(["frame 1", "frame 2"]))
        })
        .register("panic", |job: Job| async move {
            panic!("panicked on {}", job.jid());
        })
        .register_blocking("bad_args", |job: Job| {
            let (_n,): (i64,) = job.args()?;
            Ok(())
        })
        .register("ok", |_job: Job| async { Ok(()) })
        .build()
        .unwrap();
    let run = tokio::spawn(worker.run());
    mock.wait_for(|r| r.acked.len() == 3 && r.failed.len() == 7)
        .await;
    run.abort();

    mock.with(|r| {
        let boom: Vec<_> = r.failed.iter().filter(|f| f.errtype == "Boom").collect();
        assert_eq!(boom.len(), 3);
        assert_eq!(boom[0].message, "it broke");
        assert_eq!(boom[0].backtrace, ["frame 1", "frame 2"]);
        let panics: Vec<_> = r.failed.iter().filter(|f| f.errtype == "panic").collect();
        assert_eq!(panics.len(), 3);
        assert!(
            panics[0].message.starts_with("panicked on panic-"),
            "{}",
            panics[0].message
        );
        let args = r
            .failed
            .iter()
            .find(|f| f.jid.starts_with("bad_args"))
            .unwrap();
        assert_eq!(args.errtype, "job::ArgsError");
        assert_eq!(
            args.backtrace.len(),
            1,
            "serde's cause: {:?}",
            args.backtrace
        );
    });
}

#[tokio::test]
async fn shutdown_releases_unstarted_jobs_and_lets_running_ones_finish() {
    let mock = MockGateway::start().await;
    mock.push("slow", "[]", 50);
    let gate = Arc::new(Semaphore::new(0));
    let started = Arc::new(Concurrent::default());
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let worker = builder(&mock)
        .concurrency(4)
        .max_prefetch(10)
        .register("slow", gated(&gate, &started))
        .with_graceful_shutdown(stop_rx)
        .build()
        .unwrap();
    let stats = worker.stats();
    let run = tokio::spawn(worker.run());
    // Four running, the rest of the window prefetched.
    mock.wait_for(|r| r.deliveries >= 4).await;
    while started.started() < 4 {
        tokio::task::yield_now().await;
    }
    stop_tx.send(()).unwrap();
    mock.wait_for(|r| r.unfinished.values().map(|u| u.len()).sum::<usize>() == 4)
        .await;
    gate.add_permits(4);
    assert_eq!(run.await.unwrap().unwrap(), StopReason::Shutdown);

    mock.with(|r| {
        assert_eq!(r.acked.len(), 4, "running jobs finished");
        assert_eq!(r.acked.len() + r.queue.len(), 50, "none lost");
        let released: HashSet<_> = r.released.iter().collect();
        assert!(
            r.acked.iter().all(|jid| !released.contains(jid)),
            "none both run and released"
        );
    });
    assert_eq!(started.started(), 4, "nothing started after shutdown");
    assert_eq!(
        stats.snapshot().released as usize,
        mock.with(|r| r.released.len())
    );
}

#[tokio::test]
async fn jobs_still_running_at_the_timeout_fail_with_a_clear_errtype() {
    let mock = MockGateway::start().await;
    mock.push("stuck", "[]", 2);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let worker = builder(&mock)
        .concurrency(2)
        .shutdown_timeout(Duration::from_millis(200))
        .register("stuck", |_job: Job| std::future::pending())
        .with_graceful_shutdown(stop_rx)
        .build()
        .unwrap();
    let run = tokio::spawn(worker.run());
    mock.wait_for(|r| r.deliveries == 2).await;
    stop_tx.send(()).unwrap();
    let reason = run.await.unwrap().unwrap();
    assert_eq!(
        reason,
        StopReason::ShutdownTimedOut {
            abandoned: 2,
            unconfirmed: 0
        }
    );
    mock.with(|r| {
        assert_eq!(r.failed.len(), 2);
        assert!(
            r.failed
                .iter()
                .all(|f| f.errtype == "WorkerShutdownTimeout")
        );
    });
}

#[tokio::test]
async fn a_cut_stream_reconnects_and_every_job_completes() {
    let mock = MockGateway::start().await;
    mock.push("work", "[]", 300);
    let release = Arc::new(Semaphore::new(0));
    let worker = builder(&mock)
        .concurrency(20)
        .register("work", gated(&release, &Arc::default()))
        .build()
        .unwrap();
    let stats = worker.stats();
    let run = tokio::spawn(worker.run());
    release.add_permits(100);
    mock.wait_for(|r| r.acked.len() >= 50).await;
    mock.cut();
    // Jobs keep running and finishing while the worker reconnects.
    release.add_permits(1000);
    mock.wait_for(|r| {
        r.acked.len() + r.rejected >= 300
            && r.queue.is_empty()
            && r.unfinished.values().all(|u| u.is_empty())
    })
    .await;
    run.abort();
    assert!(stats.snapshot().sessions >= 2);
    mock.with(|r| {
        let acked: HashSet<_> = r.acked.iter().collect();
        assert_eq!(acked.len(), 300, "every job completed");
        assert_eq!(r.acked.len(), 300, "each acked once");
    });
}

#[tokio::test]
async fn a_gateway_drain_releases_prefetched_jobs_and_reconnects() {
    let mock = MockGateway::start().await;
    mock.push("wait", "[]", 30);
    let gate = Arc::new(Semaphore::new(0));
    let worker = builder(&mock)
        .concurrency(2)
        .max_prefetch(5)
        .register("wait", gated(&gate, &Arc::default()))
        .build()
        .unwrap();
    let stats = worker.stats();
    let run = tokio::spawn(worker.run());
    mock.wait_for(|r| r.deliveries >= 2).await;
    mock.drain();
    gate.add_permits(1000);
    mock.wait_for(|r| r.acked.len() == 30).await;
    run.abort();
    assert!(
        stats.snapshot().sessions >= 2,
        "reconnected after the drain"
    );
    mock.with(|r| assert_eq!(r.acked.iter().collect::<HashSet<_>>().len(), 30));
}

#[tokio::test]
async fn a_silent_stream_is_torn_down_and_reopened() {
    let mock = MockGateway::start().await;
    mock.push("work", "[]", 20);
    let gate = Arc::new(Semaphore::new(0));
    let worker = builder(&mock)
        .concurrency(5)
        .register("work", gated(&gate, &Arc::default()))
        .build()
        .unwrap();
    let stats = worker.stats();
    let run = tokio::spawn(worker.run());
    mock.wait_for(|r| r.deliveries >= 5).await;
    // The gateway goes silent; the worker notices after the heartbeat timeout
    // (500 ms in the mock's welcome) and opens a new stream.
    mock.mute();
    mock.wait_for(|r| r.hellos.len() >= 2).await;
    gate.add_permits(1000);
    mock.wait_for(|r| r.acked.iter().collect::<HashSet<_>>().len() == 20)
        .await;
    run.abort();
    assert!(stats.snapshot().sessions >= 2);
}

#[tokio::test]
async fn slow_handlers_give_their_buffer_back() {
    let mock = MockGateway::start().await;
    // A 20 ms round trip makes prefetch worth having, so the window grows.
    let link = LinkEmulator::start(mock.addr(), Duration::from_millis(10))
        .await
        .unwrap();
    mock.push("fast", "[]", 3000);
    mock.push("slow", "[]", 100);
    let gate = Arc::new(Semaphore::new(0));
    let worker = builder(&mock)
        .gateway(format!("http://{}", link.addr()))
        .concurrency(4)
        .register("fast", |_job: Job| async { Ok(()) })
        .register("slow", gated(&gate, &Arc::default()))
        .build()
        .unwrap();
    let stats = worker.stats();
    let run = tokio::spawn(worker.run());
    mock.wait_for(|r| r.acked.len() == 3000).await;
    // The fast jobs grew the window, so slow jobs filled the buffer. With the
    // handlers stuck, the buffer goes back to the gateway after a second.
    let held_before = mock.with(|r| r.unfinished.values().map(|u| u.len()).sum::<usize>());
    mock.wait_for(|r| !r.released.is_empty()).await;
    let held_after = mock.with(|r| r.unfinished.values().map(|u| u.len()).sum::<usize>());
    assert!(held_before > 4, "the window had grown: {held_before}");
    assert!(held_after < held_before, "{held_after} >= {held_before}");
    gate.add_permits(1000);
    mock.wait_for(|r| r.acked.len() == 3100).await;
    run.abort();
    mock.with(|r| assert_eq!(r.acked.iter().collect::<HashSet<_>>().len(), 3100));
    assert!(stats.snapshot().released > 0);
}
