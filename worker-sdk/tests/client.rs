//! The producer client end to end over real sockets: a real gateway
//! (`faktory_gateway::serve`) requiring a producer token, the Faktory test
//! server (or a real Faktory when `FAKTORY_URL` is set; each test keeps to a
//! queue of its own), the `add_producer` example's own code, and a handler
//! that pushes a follow-up job through its job's client, continuing the
//! producer's trace.

mod support;

#[path = "../examples/add_producer.rs"]
#[allow(dead_code, unreachable_pub)]
mod add_producer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use clap::Parser;
use faktory_gateway_worker::{Client, Error, Job, JobError, NewJob, PushOutcome};
use support::spawn;
use support::stack::worker_on;
use support::stack::{Gateway, eventually, faktory_url, free_addr, unique_queue};
use tonic::Code;

const PRODUCER_TOKEN: &str = "producer-5ecret";
const TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

async fn gateway(faktory_url: &str) -> Gateway {
    gateway_with(faktory_url, &[]).await
}

async fn gateway_with(faktory_url: &str, extra: &[&str]) -> Gateway {
    let mut flags = vec![
        "--producer-token",
        PRODUCER_TOKEN,
        "--redelivery-grace-ms",
        "0",
        "--shutdown-grace-ms",
        "5000",
    ];
    flags.extend_from_slice(extra);
    Gateway::start(faktory_url, &flags).await
}

fn client(gateway: &Gateway) -> Client {
    Client::builder()
        .gateway(gateway.url())
        .token(PRODUCER_TOKEN)
        .build()
        .expect("valid client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_many_answers_each_job_and_a_wrong_token_fails_the_call() {
    let (url, _server) = faktory_url().await;
    let gateway = gateway(&url).await;
    let queue = unique_queue("receipts");

    let wrong = Client::builder()
        .gateway(gateway.url())
        .token("not-the-token")
        .build()
        .unwrap();
    let job = NewJob::new("noop", Vec::<i64>::new())
        .unwrap()
        .queue(&queue);
    match wrong.push(job).await {
        Err(Error::Push { status }) => assert_eq!(status.code(), Code::Unauthenticated),
        other => panic!("expected an unauthenticated call, got {other:?}"),
    }

    let client = client(&gateway);
    // A time in the past means now: the job runs, and its `at` passed the
    // gateway's RFC 3339 check.
    let earlier = SystemTime::now() - Duration::from_secs(60);
    let jobs = vec![
        NewJob::new("noop", (1, "two")).unwrap().queue(&queue),
        NewJob::new("noop", ((),)).unwrap().queue("not a queue!"),
        NewJob::new("noop", Vec::<i64>::new())
            .unwrap()
            .queue(&queue)
            .jid("short"),
        NewJob::new("noop", (2, "three"))
            .unwrap()
            .queue(&queue)
            .at(earlier)
            .retry(0)
            .reserve_for(Duration::from_secs(120))
            .custom("tenant", "acme"),
    ];
    let receipts = client.push_many(jobs).await.expect("push call");
    assert_eq!(receipts.len(), 4);
    assert!(receipts[0].is_accepted(), "{:?}", receipts[0]);
    assert_eq!(receipts[0].jid.len(), 24, "the client chose the jid");
    assert!(
        matches!(&receipts[1].outcome, PushOutcome::Invalid { field, .. } if field == "queue"),
        "{:?}",
        receipts[1]
    );
    assert!(
        matches!(&receipts[2].outcome, PushOutcome::Invalid { field, .. } if field == "jid"),
        "{:?}",
        receipts[2]
    );
    assert!(receipts[3].is_accepted(), "{:?}", receipts[3]);

    // The accepted jobs reach a worker, args intact.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let (_stats, stop, task) = spawn(worker_on(&gateway, &queue).register(
        "noop",
        move |job: Job| {
            let record = record.clone();
            async move {
                let args: (i64, String) = job.args()?;
                record.lock().unwrap().push((job.jid().to_owned(), args));
                Ok(())
            }
        },
    ));
    eventually("the accepted jobs ran", || seen.lock().unwrap().len() >= 2).await;
    stop.send(()).unwrap();
    task.await.unwrap();
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_by_key(|(_, (n, _))| *n);
    assert_eq!(
        seen,
        [
            (receipts[0].jid.clone(), (1, "two".to_owned())),
            (receipts[3].jid.clone(), (2, "three".to_owned()))
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_push_is_split_at_the_gateway_limit_and_skips_a_dead_gateway() {
    let (url, _server) = faktory_url().await;
    let gateway = gateway_with(&url, &["--max-jobs-per-push", "100"]).await;
    let queue = unique_queue("split");
    let dead = format!("http://{}", free_addr());
    let client = Client::builder()
        .gateways([dead, gateway.url()])
        .token(PRODUCER_TOKEN)
        .max_jobs_per_push(100)
        .build()
        .unwrap();
    let jids: Vec<String> = (0..250).map(|i| format!("{queue}-{i:04}")).collect();
    let jobs = jids
        .iter()
        .enumerate()
        .map(|(i, jid)| NewJob::new("count", (i,)).unwrap().queue(&queue).jid(jid));
    let receipts = client.push_many(jobs).await.expect("split push");
    assert_eq!(
        receipts.iter().map(|r| r.jid.clone()).collect::<Vec<_>>(),
        jids,
        "one receipt per job, in order"
    );
    assert!(receipts.iter().all(|r| r.is_accepted()), "{receipts:?}");

    let ran = Arc::new(Mutex::new(Vec::new()));
    let record = ran.clone();
    let (_stats, stop, task) = spawn(worker_on(&gateway, &queue).concurrency(20).register(
        "count",
        move |job: Job| {
            record.lock().unwrap().push(job.jid().to_owned());
            async { Ok(()) }
        },
    ));
    eventually("every job ran", || ran.lock().unwrap().len() >= 250).await;
    stop.send(()).unwrap();
    task.await.unwrap();
    let mut ran = ran.lock().unwrap().clone();
    ran.sort();
    assert_eq!(ran, jids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_producer_pushes_jobs_a_worker_runs() {
    let (url, _server) = faktory_url().await;
    let gateway = gateway(&url).await;
    let queue = unique_queue("add-producer");
    let gateway_url = gateway.url();
    let args = add_producer::Args::try_parse_from([
        "add_producer",
        "--gateway",
        &gateway_url,
        "--jobs",
        "300",
        "--batch",
        "70",
        "--queue",
        &queue,
        "--token",
        PRODUCER_TOKEN,
    ])
    .unwrap();
    let summary = add_producer::run(args).await.expect("add_producer runs");
    assert_eq!(
        summary,
        add_producer::Summary {
            accepted: 300,
            refused: 0
        }
    );

    #[derive(serde::Deserialize)]
    struct Add {
        a: u64,
        b: u64,
    }
    let sums = Arc::new(Mutex::new(Vec::new()));
    let record = sums.clone();
    let (_stats, stop, task) = spawn(worker_on(&gateway, &queue).concurrency(20).register(
        "add",
        move |job: Job| {
            let record = record.clone();
            async move {
                let (Add { a, b },) = job.args()?;
                record.lock().unwrap().push(a + b);
                Ok(())
            }
        },
    ));
    eventually("every add job ran", || sums.lock().unwrap().len() >= 300).await;
    stop.send(()).unwrap();
    task.await.unwrap();
    let mut sums = sums.lock().unwrap().clone();
    sums.sort_unstable();
    assert_eq!(sums, (0..300).map(|i| 2 * i).collect::<Vec<u64>>());
}

/// What the follow-up test's handlers saw.
#[derive(Default)]
struct Seen {
    /// traceparent by jobtype.
    traceparents: HashMap<String, Option<String>>,
    /// The follow-up's receipt as the first handler got it.
    follow_up: Option<faktory_gateway_worker::PushReceipt>,
    /// The follow-up job's jid as it ran.
    follow_up_ran: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_pushes_a_follow_up_that_continues_the_trace() {
    let (url, _server) = faktory_url().await;
    let gateway = gateway(&url).await;
    let queue = unique_queue("follow-up");
    let seen = Arc::new(Mutex::new(Seen::default()));

    let (first_seen, second_seen) = (seen.clone(), seen.clone());
    let follow_up_queue = queue.clone();
    let (_stats, stop, task) = spawn(
        worker_on(&gateway, &queue)
            .producer_token(PRODUCER_TOKEN)
            .register("order", move |job: Job| {
                let (seen, queue) = (first_seen.clone(), follow_up_queue.clone());
                async move {
                    let (order,): (u32,) = job.args()?;
                    let follow_up = NewJob::new("receipt", (order,))?.queue(queue);
                    let receipt = job
                        .client()
                        .push(follow_up)
                        .await
                        .map_err(|e| JobError::new("PushFailed", e.to_string()))?;
                    let mut seen = seen.lock().unwrap();
                    seen.traceparents
                        .insert("order".into(), job.traceparent().map(str::to_owned));
                    seen.follow_up = Some(receipt);
                    Ok(())
                }
            })
            .register("receipt", move |job: Job| {
                let seen = second_seen.clone();
                async move {
                    let (order,): (u32,) = job.args()?;
                    assert_eq!(order, 42);
                    let mut seen = seen.lock().unwrap();
                    seen.traceparents
                        .insert("receipt".into(), job.traceparent().map(str::to_owned));
                    seen.follow_up_ran = Some(job.jid().to_owned());
                    Ok(())
                }
            }),
    );

    let order = NewJob::new("order", (42,))
        .unwrap()
        .queue(&queue)
        .traceparent(TRACE);
    let receipt = client(&gateway).push(order).await.expect("push call");
    assert!(receipt.is_accepted(), "{receipt:?}");
    eventually("the follow-up job ran", || {
        seen.lock().unwrap().follow_up_ran.is_some()
    })
    .await;
    stop.send(()).unwrap();
    task.await.unwrap();

    let seen = seen.lock().unwrap();
    let follow_up = seen.follow_up.as_ref().expect("the order handler pushed");
    assert!(follow_up.is_accepted(), "{follow_up:?}");
    assert_eq!(seen.follow_up_ran.as_ref(), Some(&follow_up.jid));
    assert_eq!(seen.traceparents["order"].as_deref(), Some(TRACE));
    let child = seen.traceparents["receipt"]
        .as_deref()
        .expect("the follow-up carries a traceparent");
    let parts: Vec<&str> = child.split('-').collect();
    let parent: Vec<&str> = TRACE.split('-').collect();
    assert_eq!(parts.len(), 4, "{child}");
    assert_eq!(
        (parts[0], parts[1], parts[3]),
        (parent[0], parent[1], parent[3])
    );
    assert_ne!(parts[2], parent[2], "a new span id");
}
