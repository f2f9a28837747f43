//! A handler's context end to end over real sockets (real gateway, the
//! Faktory test server or a real Faktory when `FAKTORY_URL` is set; each
//! test keeps to a queue of its own): middleware around every handler in
//! registration order, start/quiet/stop hooks, and cancellation on shutdown
//! and ahead of the reservation deadline.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use faktory_gateway_worker::{CancelReason, Job, JobError, NewJob, Next, StopReason};
use support::spawn;
use support::stack::worker_on;
use support::stack::{Gateway, eventually, faktory_url, unique_queue};

/// A shared, ordered log of what happened.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, entry: impl Into<String>) {
        self.0.lock().unwrap().push(entry.into());
    }
    fn entries(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

async fn stack() -> (Option<faktory_test_server::TestServer>, Gateway, String) {
    let (url, server) = faktory_url().await;
    let gateway = Gateway::start(
        &url,
        &["--redelivery-grace-ms", "0", "--shutdown-grace-ms", "5000"],
    )
    .await;
    (server, gateway, url)
}

async fn push(gateway: &Gateway, jobs: Vec<NewJob>) -> Vec<String> {
    let client = faktory_gateway_worker::Client::builder()
        .gateway(gateway.url())
        .build()
        .unwrap();
    let receipts = client.push_many(jobs).await.expect("push call");
    receipts
        .into_iter()
        .map(|r| {
            assert!(r.is_accepted(), "{r:?}");
            r.jid
        })
        .collect()
}

/// A middleware that logs `<name> > jid` before and `<name> < jid: outcome`
/// after the rest of the chain.
fn logging(
    name: &'static str,
    log: &Log,
) -> impl Fn(Job, Next) -> futures::future::BoxFuture<'static, Result<(), JobError>>
+ Send
+ Sync
+ 'static {
    let log = log.clone();
    move |job: Job, next: Next| {
        let log = log.clone();
        Box::pin(async move {
            let jid = job.jid().to_owned();
            log.push(format!("{name} > {jid}"));
            let result = next.run(job).await;
            let outcome = match &result {
                Ok(()) => "ok".to_owned(),
                Err(e) => e.errtype().to_owned(),
            };
            log.push(format!("{name} < {jid}: {outcome}"));
            result
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn middleware_wraps_every_handler_in_order_and_hooks_fire() {
    let (_server, gateway, _) = stack().await;
    let queue = unique_queue("middleware");
    let mut jobs = Vec::new();
    for i in 0..10 {
        jobs.push(NewJob::new("ok", (i,)).unwrap().queue(&queue));
    }
    for jobtype in ["fail", "panic"] {
        for i in 0..3 {
            jobs.push(NewJob::new(jobtype, (i,)).unwrap().queue(&queue).retry(0));
        }
    }
    let jids = push(&gateway, jobs).await;

    let log = Log::default();
    let (handler_log, start, quiet, stop_hook) =
        (log.clone(), log.clone(), log.clone(), log.clone());
    let (_stats, stop, task) = spawn(
        worker_on(&gateway, &queue)
            .concurrency(4)
            .on_start(move || start.push("hook start"))
            .on_quiet(move || quiet.push("hook quiet"))
            .on_stop(move || stop_hook.push("hook stop"))
            .middleware(logging("outer", &log))
            .middleware(logging("inner", &log))
            .register("ok", move |job: Job| {
                handler_log.push(format!("handler {}", job.jid()));
                async { Ok(()) }
            })
            .register("fail", |_job: Job| async {
                Err(JobError::new("Boom", "it broke"))
            })
            .register_blocking("panic", |_job: Job| panic!("on the pool")),
    );
    let finished = |log: &Log| {
        log.entries()
            .iter()
            .filter(|e| e.starts_with("outer <"))
            .count()
    };
    eventually("every job passed the middleware", || finished(&log) == 16).await;
    stop.send(()).unwrap();
    assert_eq!(task.await.unwrap(), StopReason::Shutdown);

    let entries = log.entries();
    assert_eq!(entries.first().map(String::as_str), Some("hook start"));
    assert_eq!(
        entries[entries.len() - 2..],
        ["hook quiet".to_owned(), "hook stop".to_owned()]
    );
    let mut by_job: HashMap<String, Vec<String>> = HashMap::new();
    for entry in &entries[1..entries.len() - 2] {
        // "handler JID", "outer > JID", "inner < JID: outcome"
        let words: Vec<&str> = entry.split(' ').collect();
        let jid = match words[0] {
            "handler" => words[1],
            _ => words[2].trim_end_matches(':'),
        };
        by_job
            .entry(jid.to_owned())
            .or_default()
            .push(entry.clone());
    }
    assert_eq!(by_job.len(), 16, "{entries:#?}");
    for (i, jid) in jids.iter().enumerate() {
        let outcome = match i {
            0..10 => "ok",
            10..13 => "Boom",
            _ => "panic",
        };
        let mut expected = vec![format!("outer > {jid}"), format!("inner > {jid}")];
        if outcome == "ok" {
            expected.push(format!("handler {jid}"));
        }
        expected.push(format!("inner < {jid}: {outcome}"));
        expected.push(format!("outer < {jid}: {outcome}"));
        assert_eq!(by_job[jid], expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_handlers_see_shutdown_before_the_timeout() {
    let (_server, gateway, _) = stack().await;
    let queue = unique_queue("shutdown");
    let jobs = (0..3)
        .map(|i| NewJob::new("long", (i,)).unwrap().queue(&queue))
        .collect();
    push(&gateway, jobs).await;

    let reasons = Arc::new(Mutex::new(Vec::new()));
    let record = reasons.clone();
    let log = Log::default();
    let quiet = log.clone();
    let (stats, stop, task) = spawn(
        worker_on(&gateway, &queue)
            .concurrency(3)
            // Long enough that only the cancellation can end these jobs
            // before the timeout would.
            .shutdown_timeout(Duration::from_secs(120))
            .on_quiet(move || quiet.push("quiet"))
            .register("long", move |job: Job| {
                let record = record.clone();
                async move {
                    record.lock().unwrap().push(None);
                    // Work on another task, stopped by the job's token.
                    let token = job.cancellation_token();
                    tokio::spawn(async move { token.cancelled().await })
                        .await
                        .expect("the task ran");
                    assert!(job.is_cancelled());
                    record.lock().unwrap().push(job.cancel_reason());
                    Ok(())
                }
            }),
    );
    eventually("three jobs running", || reasons.lock().unwrap().len() == 3).await;
    assert!(log.entries().is_empty(), "not quiet before the signal");
    stop.send(()).unwrap();
    assert_eq!(task.await.unwrap(), StopReason::Shutdown);
    let reasons = reasons.lock().unwrap();
    assert_eq!(
        reasons[3..],
        [Some(CancelReason::Shutdown); 3],
        "every handler saw the shutdown"
    );
    assert_eq!(log.entries(), ["quiet"]);
    let s = stats.snapshot();
    assert_eq!((s.succeeded, s.failed), (3, 0), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_sees_its_reservation_deadline_coming() {
    let (_server, gateway, _) = stack().await;
    let queue = unique_queue("deadline");
    // Faktory's shortest reservation (60 s) is inside the worker's margin
    // below, the longest is far outside it.
    let jobs = vec![
        NewJob::new("watch", ("short",))
            .unwrap()
            .queue(&queue)
            .reserve_for(Duration::from_secs(60)),
        NewJob::new("watch", ("long",))
            .unwrap()
            .queue(&queue)
            .reserve_for(Duration::from_secs(86_400)),
    ];
    push(&gateway, jobs).await;

    let seen = Arc::new(Mutex::new(HashMap::new()));
    let record = seen.clone();
    let (_stats, stop, task) = spawn(
        worker_on(&gateway, &queue)
            .concurrency(2)
            .deadline_margin(Duration::from_secs(600))
            .register("watch", move |job: Job| {
                let record = record.clone();
                async move {
                    let (which,): (String,) = job.args()?;
                    let reason = if which == "short" {
                        // A liveness bound, not a measurement: without the
                        // deadline watch this job would wait forever.
                        tokio::time::timeout(Duration::from_secs(30), job.cancelled())
                            .await
                            .ok()
                    } else {
                        job.cancel_reason()
                    };
                    record.lock().unwrap().insert(which, reason);
                    Ok(())
                }
            }),
    );
    eventually("both jobs ran", || seen.lock().unwrap().len() == 2).await;
    stop.send(()).unwrap();
    assert_eq!(task.await.unwrap(), StopReason::Shutdown);
    let seen = seen.lock().unwrap();
    assert_eq!(seen["short"], Some(CancelReason::Deadline));
    assert_eq!(seen["long"], None);
}
