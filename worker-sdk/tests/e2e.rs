//! End to end over real sockets: the Faktory test server, the gateway
//! (`faktory_gateway::serve`) and this SDK: the issue's done-when list, plus
//! the session's edges (shutdown timeout, gateway drain, a silent link, slow
//! handlers giving their buffer back), with faults injected through the
//! gateway's own shutdown and the `link-emulator` between SDK and gateway.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use faktory_gateway_worker::proto;
use faktory_gateway_worker::proto::gateway_client::GatewayClient;
use faktory_gateway_worker::{
    Error, Job, JobError, StatsHandle, StopReason, Worker, WorkerBuilder,
};
use faktory_test_server::ServerHandle;
use link_emulator::LinkEmulator;
use support::stack::{Stack, eventually, job, push, push_like, push_via};
use support::{
    Concurrent, Running, Runs, all_ran_and_faktory_empty, brief, gated, recording, spawn,
};
use tokio::sync::Semaphore;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

fn worker(stack: &Stack) -> WorkerBuilder {
    Worker::builder()
        .gateway(stack.gateway.url())
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
}

/// A handler that records its run, then waits for a permit from `gate` (each
/// permit lets one job finish).
fn held(
    runs: &Runs,
    gate: &Arc<Semaphore>,
) -> impl Fn(Job) -> futures::future::BoxFuture<'static, Result<(), JobError>> + Send + Sync + 'static
{
    let (runs, gate) = (runs.clone(), gate.clone());
    move |job: Job| {
        runs.record(job.jid());
        let gate = gate.clone();
        Box::pin(async move {
            gate.acquire().await.expect("gate open").forget();
            Ok(())
        })
    }
}

/// After a fault that made the worker reconnect: waits until every job ran
/// with Faktory empty, stops the worker, and checks it reconnected and ran no
/// job twice (jobs caught by the fault were redelivered to the reconnected
/// worker; those it had finished were answered from its memory).
async fn all_ran_once_after_reconnecting(
    faktory: &ServerHandle,
    runs: &Runs,
    jids: &[String],
    (stats, stop, task): Running,
) {
    all_ran_and_faktory_empty(faktory, runs, jids).await;
    stop.send(()).unwrap();
    assert_eq!(task.await.unwrap(), StopReason::Shutdown);
    let s = stats.snapshot();
    assert!(s.sessions >= 2, "the worker reconnected: {s:?}");
    assert!(
        runs.snapshot().values().all(|n| *n == 1),
        "a job ran twice: {s:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_jobs_with_concurrency_200_are_each_acked_once() {
    let stack = Stack::start(&[]).await;
    let jids = push(&stack.gateway.url(), "noop", "[]", None, 20_000).await;
    let runs = Runs::default();
    let (stats, stop, task) = spawn(
        worker(&stack)
            .concurrency(200)
            .register("noop", recording(&runs)),
    );
    let faktory = stack.faktory.handle();
    eventually("20,000 acks reach Faktory", || {
        faktory.counters().processed >= 20_000
    })
    .await;
    stop.send(()).unwrap();
    assert_eq!(task.await.unwrap(), StopReason::Shutdown);

    let ran = runs.snapshot();
    assert_eq!(ran.len(), 20_000);
    assert!(ran.values().all(|n| *n == 1), "a job ran twice");
    assert_eq!(
        ran.keys().cloned().collect::<HashSet<_>>(),
        jids.into_iter().collect()
    );
    assert_eq!(faktory.counters().processed, 20_000);
    assert_eq!(faktory.total_queued(), 0);
    assert!(faktory.reserved_jids().is_empty());
    assert!(faktory.retries().is_empty() && faktory.dead().is_empty());
    assert_eq!(faktory.scheduled_len(), 0);
    let s = stats.snapshot();
    assert_eq!((s.succeeded, s.failed, s.released), (20_000, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_and_panics_become_faktory_failures_retried_per_the_job() {
    let stack = Stack::start(&[]).await;
    let url = stack.gateway.url();
    let keep_5_lines = |jobtype, args| proto::Job {
        backtrace: 5,
        ..job(jobtype, args, Some(1))
    };
    push_like(&url, &keep_5_lines("fail", "[]"), 5).await;
    push(&url, "panic", "[]", Some(1), 5).await;
    push_like(&url, &keep_5_lines("bad_args", r#"["x"]"#), 1).await;
    let ok = push(&url, "ok", "[]", None, 20).await;
    let runs = Runs::default();
    let (stats, stop, task) = spawn(
        worker(&stack)
            .concurrency(4)
            .register("fail", |_job: Job| async {
                Err(JobError::new("Boom", "it broke").with_backtrace(["frame 1", "frame 2"]))
            })
            .register_blocking("bad_args", |job: Job| {
                let (_n,): (i64,) = job.args()?;
                Ok(())
            })
            .register("panic", |job: Job| async move {
                panic!("panicked on {}", job.jid());
            })
            .register("ok", recording(&runs)),
    );
    let faktory = stack.faktory.handle();
    eventually("first failures recorded", || faktory.retries().len() == 11).await;
    for retry in faktory.retries() {
        let failure = &retry["failure"];
        match retry["jobtype"].as_str().unwrap() {
            "fail" => {
                assert_eq!(
                    (failure["errtype"].as_str(), failure["message"].as_str()),
                    (Some("Boom"), Some("it broke"))
                );
                assert_eq!(
                    failure["backtrace"],
                    serde_json::json!(["frame 1", "frame 2"])
                );
            }
            "bad_args" => {
                assert_eq!(failure["errtype"], "job::ArgsError");
                let lines = failure["backtrace"].as_array().expect("backtrace");
                assert_eq!(lines.len(), 1, "serde's cause: {failure}");
            }
            "panic" => {
                assert_eq!(failure["errtype"], "panic");
                assert!(
                    failure["message"]
                        .as_str()
                        .unwrap()
                        .starts_with("panicked on "),
                    "{failure}"
                );
            }
            other => panic!("unexpected retry of {other}"),
        }
    }
    // Retry backoff for the first failure is at most 15 + 29 s.
    faktory.advance_clock(Duration::from_secs(45));
    eventually("second failures: retry budget of 1 used, jobs dead", || {
        faktory.dead().len() == 11
    })
    .await;
    eventually("ok jobs done", || runs.distinct() == 20).await;
    stop.send(()).unwrap();
    assert_eq!(task.await.unwrap(), StopReason::Shutdown);

    assert_eq!(
        runs.snapshot().keys().cloned().collect::<HashSet<_>>(),
        ok.into_iter().collect()
    );
    let s = stats.snapshot();
    assert_eq!((s.failed, s.panicked, s.succeeded), (22, 10, 20), "{s:?}");
    assert_eq!(faktory.total_queued(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_restart_mid_run_costs_a_pause_not_jobs() {
    let mut stack = Stack::start(&[]).await;
    let jids = push(&stack.gateway.url(), "work", "[]", None, 3_000).await;
    let runs = Runs::default();
    let (stats, stop, task) = spawn(
        worker(&stack)
            .concurrency(50)
            .register("work", brief(&runs)),
    );
    eventually("some progress", || runs.distinct() >= 500).await;
    stack.gateway.restart().await;
    all_ran_and_faktory_empty(&stack.faktory.handle(), &runs, &jids).await;
    stop.send(()).unwrap();
    assert_eq!(task.await.unwrap(), StopReason::Shutdown);
    assert!(stats.snapshot().sessions >= 2, "the worker reconnected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_connection_costs_a_pause_not_jobs() {
    // The gateway keeps the cut worker's jobs for its reconnect (the
    // reconnect grace), and the worker lists what it holds in its hello.
    let stack = Stack::start(&[]).await;
    let link = LinkEmulator::start(stack.gateway.addr(), Duration::from_millis(1))
        .await
        .unwrap();
    let jids = push(&stack.gateway.url(), "work", "[]", None, 2_000).await;
    let runs = Runs::default();
    let running = spawn(
        worker(&stack)
            .gateway(format!("http://{}", link.addr()))
            .concurrency(20)
            .register("work", brief(&runs)),
    );
    eventually("some progress", || runs.distinct() >= 300).await;
    link.cut_all();
    let stats = running.0.clone();
    all_ran_once_after_reconnecting(&stack.faktory.handle(), &runs, &jids, running).await;
    let s = stats.snapshot();
    assert_eq!(
        s.delivered,
        jids.len() as u64,
        "no job the worker held was delivered again: {s:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_under_load_finishes_running_jobs_and_releases_the_rest() {
    let stack = Stack::start(&[]).await;
    // A 20 ms round trip makes the worker prefetch, so there is a buffer to
    // release when shutdown comes.
    let link = LinkEmulator::start(stack.gateway.addr(), Duration::from_millis(10))
        .await
        .unwrap();
    let jids = push(&stack.gateway.url(), "work", "[]", None, 2_000).await;
    let runs = Runs::default();
    let finished = Runs::default();
    let (r, f) = (runs.clone(), finished.clone());
    let worker = worker(&stack).gateway(format!("http://{}", link.addr()));
    let (stats, stop, task) = spawn(worker.concurrency(50).register("work", move |job: Job| {
        let (r, f) = (r.clone(), f.clone());
        async move {
            r.record(job.jid());
            tokio::time::sleep(Duration::from_millis(5)).await;
            f.record(job.jid());
            Ok(())
        }
    }));
    eventually("under load", || {
        runs.distinct() >= 300 && stats.snapshot().prefetched > 0
    })
    .await;
    stop.send(()).unwrap();
    assert_eq!(task.await.unwrap(), StopReason::Shutdown);

    let ran = runs.snapshot();
    assert_eq!(ran, finished.snapshot(), "every started job finished");
    assert!(ran.values().all(|n| *n == 1), "no job ran twice");
    assert!(ran.len() < 2_000, "shutdown came before the end");
    assert!(
        stats.snapshot().released > 0,
        "prefetched jobs were released"
    );
    let faktory = stack.faktory.handle();
    let settled = || {
        faktory.reserved_jids().is_empty()
            && jids
                .iter()
                .all(|jid| faktory.job(jid).is_some() != ran.contains_key(jid))
    };
    if tokio::time::timeout(Duration::from_secs(30), async {
        while !settled() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .is_err()
    {
        let wrong: Vec<_> = jids
            .iter()
            .filter(|jid| faktory.job(jid).is_some() == ran.contains_key(*jid))
            .map(|jid| (jid, ran.contains_key(jid), faktory.job(jid)))
            .take(5)
            .collect();
        panic!(
            "not settled: reserved {:?}, wrong {wrong:?}, stats {:?}",
            faktory.reserved_jids(),
            stats.snapshot()
        );
    }
    assert_eq!(
        faktory.total_queued() + faktory.scheduled_len() + ran.len(),
        2_000,
        "none lost"
    );
    assert!(faktory.retries().is_empty() && faktory.dead().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_10_and_max_prefetch_5_never_hold_more_than_15() {
    let stack = Stack::start(&[]).await;
    push(&stack.gateway.url(), "gated", "[]", None, 1_000).await;
    let gate = Arc::new(Semaphore::new(0));
    let concurrent = Arc::new(Concurrent::default());
    let (stats, stop, task) = spawn(
        worker(&stack)
            .concurrency(10)
            .max_prefetch(5)
            .register("gated", gated(&gate, &concurrent)),
    );
    let faktory = stack.faktory.handle();
    let mut peak_reserved = 0;
    for done in (0..1_000u64).step_by(10) {
        // Quiescent point: all earlier acks applied, ten handlers blocked.
        // Everything Faktory has reserved now is held for this worker.
        eventually("ten handlers running", || {
            faktory.counters().processed == done && stats.snapshot().running == 10
        })
        .await;
        let reserved = faktory.reserved_jids().len();
        assert!(
            reserved <= 15,
            "{reserved} jobs reserved for a window of 10 + 5"
        );
        peak_reserved = peak_reserved.max(reserved);
        gate.add_permits(10);
    }
    eventually("all done", || faktory.counters().processed == 1_000).await;
    stop.send(()).unwrap();
    assert_eq!(task.await.unwrap(), StopReason::Shutdown);
    assert!(concurrent.peak() <= 10);
    let s = stats.snapshot();
    assert!(s.window <= 15, "{s:?}");
    assert_eq!((s.succeeded, s.results_rejected), (1_000, 0), "{s:?}");
    eprintln!("peak reserved at quiescent points: {peak_reserved}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_a_worker_token() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "sdk-tls-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_pem = certified.cert.pem();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let stack = Stack::start(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--worker-token",
        "s3cret",
    ])
    .await;
    let url = format!("https://localhost:{}", stack.gateway.addr().port());
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&cert_pem))
        .domain_name("localhost");
    let channel = Endpoint::from_shared(url.clone())
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let jids = push_via(&mut GatewayClient::new(channel), "secure", "[]", None, 100).await;

    let tls_worker = || {
        Worker::builder()
            .gateway(url.clone())
            .tls_ca_pem(cert_pem.clone())
            .tls_domain("localhost")
            .register("secure", |_job: Job| async { Ok(()) })
    };
    let refused = tls_worker().build().unwrap().run().await;
    assert!(
        matches!(&refused, Err(Error::Refused { status }) if status.code() == tonic::Code::Unauthenticated),
        "{refused:?}"
    );

    let runs = Runs::default();
    let (_, stop, task) = spawn(
        tls_worker()
            .token("s3cret")
            .register("secure", recording(&runs)),
    );
    eventually("all jobs ran over TLS", || runs.distinct() == 100).await;
    stop.send(()).unwrap();
    assert_eq!(task.await.unwrap(), StopReason::Shutdown);
    let ran: HashSet<String> = runs.snapshot().into_keys().collect();
    assert_eq!(ran, jids.into_iter().collect());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_still_running_at_the_shutdown_timeout_fail_with_a_clear_errtype() {
    let stack = Stack::start(&[]).await;
    let jids = push(&stack.gateway.url(), "stuck", "[]", Some(1), 2).await;
    let (stats, stop, task) = spawn(
        worker(&stack)
            .concurrency(2)
            .shutdown_timeout(Duration::from_millis(200))
            .register("stuck", |_job: Job| {
                std::future::pending::<Result<(), JobError>>()
            }),
    );
    eventually("both jobs running", || stats.snapshot().running == 2).await;
    stop.send(()).unwrap();
    assert_eq!(
        task.await.unwrap(),
        StopReason::ShutdownTimedOut {
            abandoned: 2,
            unconfirmed: 0
        }
    );
    let faktory = stack.faktory.handle();
    eventually("both failures reach Faktory", || {
        faktory.retries().len() == 2 && faktory.reserved_jids().is_empty()
    })
    .await;
    let failed: HashSet<String> = faktory
        .retries()
        .iter()
        .map(|retry| {
            assert_eq!(retry["failure"]["errtype"], "WorkerShutdownTimeout");
            retry["jid"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(failed, jids.into_iter().collect());
    assert_eq!(stats.snapshot().timed_out, 2);
}

/// Pushes `fast` no-op jobs, then `held` ones, and runs a worker across a
/// 20 ms round trip: the fast jobs grow its window, so held ones fill its
/// buffer. Returns the link (keep it alive), the fast and the held jids, and
/// the worker.
async fn window_grown_then_held(
    stack: &Stack,
    fast: usize,
    held_jobs: usize,
    runs: &Runs,
    gate: &Arc<Semaphore>,
    tune: impl FnOnce(WorkerBuilder) -> WorkerBuilder,
) -> (LinkEmulator, Vec<String>, HashSet<String>, Running) {
    let link = LinkEmulator::start(stack.gateway.addr(), Duration::from_millis(10))
        .await
        .unwrap();
    let url = stack.gateway.url();
    let fast = push(&url, "fast", "[]", None, fast).await;
    let held_jids = push(&url, "held", "[]", None, held_jobs).await;
    let worker = worker(stack)
        .gateway(format!("http://{}", link.addr()))
        .register("fast", recording(runs))
        .register("held", held(runs, gate));
    (
        link,
        fast,
        held_jids.into_iter().collect(),
        spawn(tune(worker)),
    )
}

/// Whether all `slots` run held jobs and more jobs wait in the buffer.
fn slots_held_and_buffered(
    slots: u64,
    stats: &StatsHandle,
    runs: &Runs,
    held: &HashSet<String>,
) -> bool {
    let s = stats.snapshot();
    let started = runs
        .snapshot()
        .keys()
        .filter(|jid| held.contains(*jid))
        .count();
    s.running == slots && started as u64 == slots && s.prefetched > 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_drain_releases_prefetched_jobs_and_the_worker_comes_back() {
    let mut stack = Stack::start(&[]).await;
    let (runs, gate) = (Runs::default(), Arc::new(Semaphore::new(0)));
    let (_link, mut jids, held, running) =
        window_grown_then_held(&stack, 500, 30, &runs, &gate, |w| {
            w.concurrency(2).max_prefetch(5)
        })
        .await;
    eventually("two held jobs running, more prefetched", || {
        slots_held_and_buffered(2, &running.0, &runs, &held)
    })
    .await;
    let stats = &running.0;
    let released_before = stats.snapshot().released;
    // The gateway shuts down (drain notice, grace) and comes back on the same
    // port; the running jobs finish once the prefetched ones were given back.
    let finish_after_release = async {
        eventually("prefetched jobs released on the drain notice", || {
            stats.snapshot().released > released_before
        })
        .await;
        gate.add_permits(1_000);
    };
    tokio::join!(stack.gateway.restart(), finish_after_release);
    jids.extend(held);
    // Released jobs had not started, so none ran twice.
    all_ran_once_after_reconnecting(&stack.faktory.handle(), &runs, &jids, running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_link_is_torn_down_and_reopened() {
    // Heartbeats every 100 ms, silence for 500 ms ends a stream; the gateway
    // keeps a vanished worker's jobs for it.
    let stack = Stack::start(&[
        "--heartbeat-interval-ms",
        "100",
        "--heartbeat-timeout-ms",
        "500",
        "--redelivery-grace-ms",
        "10000",
    ])
    .await;
    let link = LinkEmulator::start(stack.gateway.addr(), Duration::from_millis(1))
        .await
        .unwrap();
    let jids = push(&stack.gateway.url(), "work", "[]", None, 20).await;
    let (runs, gate) = (Runs::default(), Arc::new(Semaphore::new(0)));
    let running = spawn(
        worker(&stack)
            .gateway(format!("http://{}", link.addr()))
            .concurrency(5)
            .register("work", held(&runs, &gate)),
    );
    let stats = &running.0;
    eventually("five jobs running", || stats.snapshot().running == 5).await;
    // The link stalls without closing: only the silence tells.
    link.pause_all();
    eventually("the worker opened a new stream", || {
        stats.snapshot().sessions >= 2
    })
    .await;
    gate.add_permits(1_000);
    all_ran_once_after_reconnecting(&stack.faktory.handle(), &runs, &jids, running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_handlers_give_their_buffer_back() {
    let stack = Stack::start(&[]).await;
    let (runs, gate) = (Runs::default(), Arc::new(Semaphore::new(0)));
    let (_link, mut jids, held, (stats, stop, task)) =
        window_grown_then_held(&stack, 2_000, 100, &runs, &gate, |w| w.concurrency(4)).await;
    let faktory = stack.faktory.handle();
    eventually("held jobs in every slot, more buffered", || {
        slots_held_and_buffered(4, &stats, &runs, &held)
    })
    .await;
    // Seen from the gateway's side: what Faktory has reserved for it.
    let reserved_before = faktory.reserved_jids().len();
    assert!(
        reserved_before > 4,
        "the window had grown: {reserved_before}"
    );
    // With the handlers stuck, the buffer goes back after a second.
    eventually("the buffer went back to Faktory", || {
        stats.snapshot().released > 0 && faktory.reserved_jids().len() < reserved_before
    })
    .await;
    gate.add_permits(1_000);
    jids.extend(held);
    all_ran_and_faktory_empty(&faktory, &runs, &jids).await;
    stop.send(()).unwrap();
    assert_eq!(task.await.unwrap(), StopReason::Shutdown);
}
