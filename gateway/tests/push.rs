//! End-to-end tests of `Push`: a real gateway (`faktory_gateway::serve`) on
//! 127.0.0.1, a plain tonic client, and the project's Faktory test server (or
//! a real Faktory when `FAKTORY_URL` is set, for the scenarios that need no
//! server-side inspection).

mod common;

use bytes::Bytes;
use common::{Gateway, real_faktory};
use faktory_gateway_proto::v1::{
    Hello, Job, PushRequest, PushResponse, PushStatus, WorkerMessage, worker_message,
};
use faktory_test_server::TestServer;
use futures::future::join_all;
use tokio::net::TcpListener;
use tonic::{Code, Request};

/// One `Push` call with `jobs` that must succeed as a call.
async fn push(gateway: &Gateway, jobs: Vec<Job>) -> PushResponse {
    let request = PushRequest { jobs };
    gateway
        .client()
        .await
        .push(request)
        .await
        .unwrap()
        .into_inner()
}

/// Stops the gateway, which must shut down cleanly.
async fn stop(gateway: Gateway) {
    gateway.stop().await.expect("clean shutdown");
}

fn job(jid: &str) -> Job {
    Job {
        jid: jid.into(),
        jobtype: "e2e".into(),
        args: Bytes::from_static(br#"[1, {"two": 2}]"#),
        ..Job::default()
    }
}

/// A jid unique to this run, so runs against a real Faktory do not collide.
fn jid(tag: &str, i: usize) -> String {
    format!("{tag}-{}-{i:05}", std::process::id())
}

fn statuses(response: &PushResponse) -> Vec<PushStatus> {
    response.results.iter().map(|r| r.status()).collect()
}

/// Valid, invalid-args, missing-jobtype, oversize and valid-with-custom jobs
/// in one call; returns the valid jids.
async fn mixed_batch(gateway: &Gateway) -> Vec<String> {
    let mut bad_args = job(&jid("badargs", 0));
    bad_args.args = Bytes::from_static(b"[1, 2");
    let mut no_type = job(&jid("notype", 0));
    no_type.jobtype.clear();
    let mut oversize = job(&jid("oversize", 0));
    oversize.args = Bytes::from(format!("[\"{}\"]", "x".repeat(4096)));
    let mut with_custom = job(&jid("custom", 0));
    with_custom.custom = Bytes::from_static(br#"{"trace": "abc"}"#);
    with_custom.queue = "e2e-other".into();
    let valid = vec![jid("valid", 0), with_custom.jid.clone()];
    let response = push(
        gateway,
        vec![job(&valid[0]), bad_args, no_type, oversize, with_custom],
    )
    .await;
    use PushStatus::*;
    assert_eq!(
        statuses(&response),
        [Accepted, Invalid, Invalid, Invalid, Accepted],
        "{response:?}"
    );
    let r = &response.results;
    assert_eq!(r[0].jid, valid[0]);
    assert_eq!(r[1].field, "args");
    assert!(r[1].reason.contains("JSON"), "{}", r[1].reason);
    assert_eq!(r[2].field, "jobtype");
    assert_eq!(r[3].field, "args");
    assert!(
        r[3].reason.contains("limit of 1024 bytes"),
        "{}",
        r[3].reason
    );
    assert_eq!(r[4].jid, valid[1]);
    valid
}

#[tokio::test]
async fn mixed_batch_answers_each_job_in_order() {
    let server = TestServer::start().await.unwrap();
    let gateway = Gateway::start(&server.url(), &["--max-job-bytes", "1024"]).await;
    let valid = mixed_batch(&gateway).await;
    let handle = server.handle();
    assert_eq!(
        handle.total_queued(),
        2,
        "only the valid jobs reach Faktory"
    );
    let stored = handle.job(&valid[1]).expect("valid job stored");
    assert_eq!(stored["custom"]["trace"], "abc");
    assert_eq!(stored["args"][1]["two"], 2);
    assert_eq!(handle.queue_len("e2e-other"), 1);
    stop(gateway).await;
    server.shutdown().await;
}

#[tokio::test]
async fn mixed_batch_against_real_faktory() {
    let Some(url) = real_faktory("mixed_batch_against_real_faktory") else {
        return;
    };
    let gateway = Gateway::start(&url, &["--max-job-bytes", "1024"]).await;
    mixed_batch(&gateway).await;
    stop(gateway).await;
}

/// A job between two good ones whose args Faktory cannot decode (a number
/// beyond float64, which the gateway's JSON check lets through): Faktory
/// refuses the whole PUSHB, and the gateway retries job by job so only that
/// job is rejected. Returns the good jids.
async fn undecodable_between_good_jobs(gateway: &Gateway) -> [String; 2] {
    let good = [jid("good", 0), jid("good", 1)];
    let mut undecodable = job(&jid("undecodable", 0));
    undecodable.args = Bytes::from_static(b"[1e400]");
    let response = push(gateway, vec![job(&good[0]), undecodable, job(&good[1])]).await;
    use PushStatus::*;
    assert_eq!(
        statuses(&response),
        [Accepted, Rejected, Accepted],
        "{response:?}"
    );
    let reason = &response.results[1].reason;
    assert!(reason.contains("invalid JSON"), "{reason}");
    good
}

#[tokio::test]
async fn undecodable_job_is_rejected_alone() {
    let server = TestServer::start().await.unwrap();
    let gateway = Gateway::start(&server.url(), &[]).await;
    let good = undecodable_between_good_jobs(&gateway).await;
    let handle = server.handle();
    assert_eq!(handle.total_queued(), 2);
    assert!(good.iter().all(|jid| handle.job(jid).is_some()));
    stop(gateway).await;
    server.shutdown().await;
}

#[tokio::test]
async fn undecodable_job_is_rejected_alone_by_real_faktory() {
    let Some(url) = real_faktory("undecodable_job_is_rejected_alone_by_real_faktory") else {
        return;
    };
    let gateway = Gateway::start(&url, &[]).await;
    undecodable_between_good_jobs(&gateway).await;
    stop(gateway).await;
}

#[tokio::test]
async fn oversize_and_empty_calls_are_refused_whole() {
    let server = TestServer::start().await.unwrap();
    let gateway = Gateway::start(&server.url(), &["--max-jobs-per-push", "5"]).await;
    let mut client = gateway.client().await;
    let jobs = (0..6).map(|i| job(&jid("big", i))).collect();
    let status = client.push(PushRequest { jobs }).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("limit of 5 jobs"),
        "{}",
        status.message()
    );
    let status = client.push(PushRequest { jobs: vec![] }).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(server.handle().total_queued(), 0, "nothing pushed");
    stop(gateway).await;
    server.shutdown().await;
}

/// Sends `calls` concurrent one-job calls (after a warm-up call) and returns
/// how many Faktory commands they took.
async fn commands_for_concurrent_calls(coalesce: bool, calls: usize) -> u64 {
    let server = TestServer::start().await.unwrap();
    let enabled = if coalesce { "true" } else { "false" };
    let gateway = Gateway::start(&server.url(), &["--batch-auto-enabled", enabled]).await;
    let client = gateway.client().await;
    let warm_up = PushRequest {
        jobs: vec![job(&jid("warm", 0))],
    };
    client.clone().push(warm_up).await.unwrap();
    let handle = server.handle();
    let before = handle.counters().commands;
    let pushes = (0..calls).map(|i| {
        let mut client = client.clone();
        async move {
            let request = PushRequest {
                jobs: vec![job(&jid("one", i))],
            };
            client.push(request).await.unwrap().into_inner()
        }
    });
    for response in join_all(pushes).await {
        assert_eq!(statuses(&response), [PushStatus::Accepted]);
    }
    let commands = handle.counters().commands - before;
    assert_eq!(handle.total_queued(), calls + 1);
    stop(gateway).await;
    server.shutdown().await;
    commands
}

#[tokio::test]
async fn concurrent_single_job_calls_are_coalesced() {
    let calls = 200;
    let coalesced = commands_for_concurrent_calls(true, calls).await;
    let separate = commands_for_concurrent_calls(false, calls).await;
    eprintln!(
        "{calls} concurrent calls: {coalesced} faktory commands coalesced, {separate} without"
    );
    assert!(
        separate >= calls as u64,
        "one PUSHB per call when off: {separate}"
    );
    assert!(
        coalesced <= calls as u64 / 2,
        "coalescing should merge calls: {coalesced} commands for {calls} calls"
    );
}

/// Many concurrent small calls on ONE channel must never get the HTTP/2
/// connection cut. Each call's message is one small DATA frame; h2 0.4.20
/// charges such frames against a budget of half the connection receive
/// window until the service reads them, and closes the connection with
/// GOAWAY `too_many_data_frames` (ENHANCE_YOUR_CALM) when it runs out. With
/// the 64 KiB starting window of adaptive flow control, 200 concurrent calls
/// (hyper's stream limit) were enough.
#[tokio::test]
async fn many_concurrent_small_calls_share_one_connection() {
    let server = TestServer::start().await.unwrap();
    let gateway = Gateway::start(&server.url(), &[]).await;
    let client = gateway.client().await;
    let calls = 500;
    for round in 0..3 {
        let pushes = (0..calls).map(|i| {
            let mut client = client.clone();
            async move {
                let request = PushRequest {
                    jobs: vec![job(&jid(&format!("flood{round}"), i))],
                };
                client.push(request).await.map(|r| r.into_inner())
            }
        });
        for response in join_all(pushes).await {
            let response = response.expect("call on a shared connection");
            assert_eq!(statuses(&response), [PushStatus::Accepted]);
        }
    }
    assert_eq!(server.handle().total_queued(), 3 * calls);
    stop(gateway).await;
    server.shutdown().await;
}

#[tokio::test]
async fn faktory_down_answers_unavailable() {
    // A port nobody listens on.
    let free = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("tcp://{}", free.local_addr().unwrap());
    drop(free);
    let gateway = Gateway::start(&url, &["--faktory-timeout-ms", "2000"]).await;
    let response = push(&gateway, vec![job(&jid("down", 0)), job(&jid("down", 1))]).await;
    assert_eq!(
        statuses(&response),
        [PushStatus::Unavailable, PushStatus::Unavailable]
    );
    assert!(
        response.results[0].reason.contains("unreachable"),
        "{response:?}"
    );
    assert_eq!(response.results[0].jid, jid("down", 0));
    stop(gateway).await;
}

fn with_token<T>(message: T, token: Option<&str>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    request
}

#[tokio::test]
async fn tokens_guard_each_rpc_separately() {
    let server = TestServer::start().await.unwrap();
    let gateway = Gateway::start(
        &server.url(),
        &[
            "--producer-token",
            "prod-secret",
            "--worker-token",
            "work-secret",
        ],
    )
    .await;
    let mut client = gateway.client().await;
    let push = |token| {
        with_token(
            PushRequest {
                jobs: vec![job(&jid("auth", 0))],
            },
            token,
        )
    };

    for token in [None, Some("wrong"), Some("work-secret")] {
        let status = client.push(push(token)).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{token:?}");
        assert!(!status.message().contains("secret"), "{}", status.message());
    }
    assert_eq!(server.handle().total_queued(), 0);
    let response = client
        .push(push(Some("prod-secret")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(statuses(&response), [PushStatus::Accepted]);

    for token in [None, Some("prod-secret")] {
        let hello = WorkerMessage {
            kind: Some(worker_message::Kind::Hello(Hello {
                window: 1,
                ..Hello::default()
            })),
        };
        let stream = futures::stream::iter(vec![hello]);
        let status = client.work(with_token(stream, token)).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{token:?}");
    }
    stop(gateway).await;
    server.shutdown().await;
}

/// Throughput of `Push` through the gateway into the test server, for three
/// call shapes. Prints numbers; run with
/// `cargo test -p faktory-gateway --test push -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints numbers"]
async fn push_throughput() {
    for (producers, calls_each, jobs_per_call) in [(64, 200, 1), (8, 50, 100), (4, 5, 1000)] {
        let server = TestServer::start().await.unwrap();
        let gateway = Gateway::start(&server.url(), &[]).await;
        let client = gateway.client().await;
        let started = std::time::Instant::now();
        let tasks = (0..producers).map(|p| {
            let mut client = client.clone();
            tokio::spawn(async move {
                for c in 0..calls_each {
                    let jobs = (0..jobs_per_call)
                        .map(|j| job(&jid(&format!("bench-{p}-{c}"), j)))
                        .collect();
                    let response = client
                        .push(PushRequest { jobs })
                        .await
                        .unwrap()
                        .into_inner();
                    assert!(
                        statuses(&response)
                            .iter()
                            .all(|&s| s == PushStatus::Accepted)
                    );
                }
            })
        });
        for task in join_all(tasks).await {
            task.unwrap();
        }
        let elapsed = started.elapsed();
        let total = producers * calls_each * jobs_per_call;
        assert_eq!(server.handle().total_queued(), total);
        println!(
            "push: {producers} producers x {calls_each} calls x {jobs_per_call} jobs = {total} jobs \
             in {elapsed:.2?}: {:.0} jobs/s, {:.0} calls/s, {} faktory commands",
            total as f64 / elapsed.as_secs_f64(),
            (producers * calls_each) as f64 / elapsed.as_secs_f64(),
            server.handle().counters().commands,
        );
        stop(gateway).await;
        server.shutdown().await;
    }
}
