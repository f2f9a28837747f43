//! End-to-end tests of the delivery path (`Work`): a gateway running in this
//! process, plain tonic worker clients, and the Faktory test server (or a real
//! Faktory for the main scenario when `FAKTORY_URL` is set).

mod common;

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Gateway, Received, TestWorker, eventually, hello, jid_of, jobs};
use faktory_gateway_proto::v1::{Hello, worker_message};
use faktory_test_server::{ServerHandle, TestServer};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

/// Pushes `n` jobs to `queue` while one worker with `window` consumes them,
/// holding back half its window unacked to keep the window under pressure.
/// Returns the largest number of unfinished jobs the worker ever held and
/// the jids pushed.
async fn push_and_consume(
    gateway: &Gateway,
    queue: &str,
    n: usize,
    window: u32,
) -> (usize, Vec<String>) {
    let mut worker = TestWorker::connect(gateway, hello("e2e", &[queue], window))
        .await
        .expect("session");
    assert_eq!(worker.welcome.window, window);
    let batch = jobs("e2e", n, queue, "e2e");
    let pushed: Vec<String> = batch.iter().map(|j| j.jid.clone()).collect();
    let producer = {
        let client = gateway.client().await;
        tokio::spawn(async move { common::push_with(client, batch).await })
    };
    let hold = window as usize / 2;
    let mut delivered: HashSet<String> = HashSet::new();
    let mut unfinished: VecDeque<String> = VecDeque::new();
    let mut most_unfinished = 0;
    let mut acked = 0;
    while acked < n {
        for delivery in worker.jobs().await {
            assert_eq!(delivery.attempt, 1);
            assert!(delivery.reservation_deadline_unix_ms > 0);
            let jid = jid_of(&delivery);
            assert!(delivered.insert(jid.clone()), "{jid} delivered twice");
            unfinished.push_back(jid);
        }
        most_unfinished = most_unfinished.max(unfinished.len());
        assert!(
            unfinished.len() <= window as usize,
            "worker holds {} unfinished jobs, window {window}",
            unfinished.len()
        );
        let keep = if delivered.len() == n { 0 } else { hold };
        let mut results = Vec::new();
        while unfinished.len() > keep {
            results.push(unfinished.pop_front().expect("non-empty"));
        }
        acked += results.len();
        if !results.is_empty() {
            worker.ack(results).await;
        }
    }
    producer.await.expect("producer task");
    assert_eq!(delivered.len(), n);
    assert!(worker.sync(u64::MAX).await.is_empty());
    drop(worker);
    (most_unfinished, pushed)
}

fn assert_all_gone(handle: &ServerHandle, jids: &[String]) {
    assert_eq!(handle.total_queued(), 0, "queues");
    assert!(handle.reserved_jids().is_empty(), "reservations");
    assert_eq!(handle.scheduled_len(), 0, "scheduled");
    assert!(handle.retries().is_empty(), "retries");
    assert!(handle.dead().is_empty(), "dead");
    for jid in jids {
        assert!(handle.job(jid).is_none(), "{jid} still at faktory");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_jobs_flow_through_a_window_of_500() {
    let server = common::faktory().await;
    let handle = server.handle();
    let gateway = Gateway::start(&server.url(), &["--fetch-concurrency", "4"]).await;
    let started = Instant::now();
    let (most, pushed) = push_and_consume(&gateway, "default", 10_000, 500).await;
    let elapsed = started.elapsed();
    gateway.stop().await.expect("clean shutdown");
    println!(
        "10000 jobs pushed and consumed in {:.2?} ({:.0} jobs/s), most unfinished at the worker: {most}",
        elapsed,
        10_000.0 / elapsed.as_secs_f64()
    );
    assert!(most <= 500);
    let counters = handle.counters();
    assert_eq!(counters.pushed, 10_000);
    assert_eq!(counters.acked, 10_000, "every jid acked exactly once");
    assert_eq!(counters.failed, 0);
    assert_all_gone(&handle, &pushed);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_jobs_against_real_faktory() {
    let Some(url) = common::real_faktory("ten_thousand_jobs_against_real_faktory") else {
        return;
    };
    let queue = format!("gateway-e2e-{}", std::process::id());
    let gateway = Gateway::start(&url, &["--fetch-concurrency", "4"]).await;
    let (most, _) = push_and_consume(&gateway, &queue, 10_000, 500).await;
    gateway.stop().await.expect("clean shutdown");
    assert!(most <= 500);
    let url = faktory_gateway::faktory::FaktoryUrl::parse(&url).expect("FAKTORY_URL");
    let mut conn = faktory_gateway::faktory::Connection::connect(&url, None)
        .await
        .expect("connect to faktory");
    let info = conn.info().await.expect("INFO");
    let left = info["faktory"]["queues"][&queue].as_u64().unwrap_or(0);
    assert_eq!(left, 0, "jobs left in {queue}: {info}");
}

/// Collects deliveries from `worker` until it holds `n`.
async fn receive(worker: &mut TestWorker, n: usize) -> Vec<faktory_gateway_proto::v1::Delivery> {
    let mut got = Vec::new();
    while got.len() < n {
        got.extend(worker.jobs().await);
    }
    assert_eq!(got.len(), n, "no more than the window");
    got
}

/// A test server, a gateway for it started with `flags`, and `n` jobs of
/// type `t` pushed to `default`; returns the pushed jids too.
async fn scenario(tag: &str, n: usize, flags: &[&str]) -> (TestServer, Gateway, Vec<String>) {
    let server = common::faktory().await;
    let gateway = Gateway::start(&server.url(), flags).await;
    let pushed = jobs(tag, n, "default", "t");
    let jids = pushed.iter().map(|j| j.jid.clone()).collect();
    common::push_with(gateway.client().await, pushed).await;
    (server, gateway, jids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_stream_redelivers_to_another_worker_without_a_retry() {
    let (server, gateway, jids) = scenario("cut", 200, &[]).await;
    let handle = server.handle();

    let mut a = TestWorker::connect(&gateway, hello("a", &["default"], 100))
        .await
        .unwrap();
    let at_a: HashSet<String> = receive(&mut a, 100).await.iter().map(jid_of).collect();
    let mut b = TestWorker::connect(&gateway, hello("b", &["default"], 500))
        .await
        .unwrap();
    let fresh = receive(&mut b, 100).await;
    assert!(
        fresh
            .iter()
            .all(|d| d.attempt == 1 && !at_a.contains(&jid_of(d)))
    );
    b.ack(fresh.iter().map(jid_of).collect()).await;

    let cut_at = Instant::now();
    a.cut();
    let again = receive(&mut b, 100).await;
    println!(
        "a cut worker's 100 jobs reached the other worker in {:.2?}",
        cut_at.elapsed()
    );
    let again_jids: HashSet<String> = again.iter().map(jid_of).collect();
    assert_eq!(again_jids, at_a, "exactly the cut worker's jobs");
    assert!(again.iter().all(|d| d.attempt == 2));
    b.ack(again_jids.into_iter().collect()).await;
    assert!(b.sync(1).await.is_empty());
    drop(b);
    gateway.stop().await.expect("clean shutdown");

    let counters = handle.counters();
    assert_eq!(counters.acked, 200);
    assert_eq!(counters.failed, 0, "no retry used");
    assert_eq!(counters.expired, 0);
    assert_all_gone(&handle, &jids);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn released_jobs_go_to_another_worker() {
    let (server, gateway, _) = scenario("rel", 10, &[]).await;
    let handle = server.handle();
    let mut a = TestWorker::connect(&gateway, hello("a", &["default"], 10))
        .await
        .unwrap();
    let held: Vec<String> = receive(&mut a, 10).await.iter().map(jid_of).collect();
    let mut b = TestWorker::connect(&gateway, hello("b", &["default"], 10))
        .await
        .unwrap();
    a.release(held.clone()).await;
    let again = receive(&mut b, 10).await;
    assert!(again.iter().all(|d| d.attempt == 2));
    b.ack(again.iter().map(jid_of).collect()).await;
    assert!(b.sync(1).await.is_empty());
    drop((a, b));
    gateway.stop().await.expect("clean shutdown");
    assert_eq!(handle.counters().failed, 0);
    assert_all_gone(&handle, &held);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_mid_run_acks_or_returns_every_job_with_its_retries() {
    let (server, gateway, jids) = scenario("stop", 300, &["--shutdown-grace-ms", "1000"]).await;
    let handle = server.handle();
    let mut worker = TestWorker::connect(&gateway, hello("w", &["default"], 200))
        .await
        .unwrap();
    let held: Vec<String> = receive(&mut worker, 200).await.iter().map(jid_of).collect();
    let done: Vec<String> = held[..50].to_vec();
    worker.ack(done.clone()).await;
    // Make sure the acks were applied before the shutdown starts.
    let more = worker.sync(1).await;
    assert!(more.len() <= 50);

    let gateway_addr = gateway.addr;
    let started = Instant::now();
    let stopping = tokio::spawn(gateway.stop());
    // Jobs for the 50 reopened slots may still arrive before the drain
    // notice; the worker sits on everything it holds until the gateway gives
    // up on it.
    loop {
        match worker.recv().await {
            Received::Jobs(more) => assert!(more.len() <= 50),
            Received::Drain(drain) => {
                assert_eq!(drain.reason, "shutdown");
                break;
            }
            other => panic!("expected a drain notice, got {other:?}"),
        }
    }
    assert_eq!(health(&gateway_addr, "").await, ServingStatus::NotServing);
    match worker.recv().await {
        Received::End(Some(status)) => assert_eq!(status.code(), Code::Unavailable),
        other => panic!("expected the stream to end, got {other:?}"),
    }
    stopping
        .await
        .unwrap()
        .expect("serve returns Ok after the drain");
    println!(
        "serve returned {:.2?} after shutdown began (grace 1 s)",
        started.elapsed()
    );

    assert!(handle.reserved_jids().is_empty(), "nothing left reserved");
    assert!(handle.retries().is_empty(), "no retry used");
    assert!(handle.dead().is_empty());
    // Release copies come back a second later; let the scheduler run.
    handle.advance_clock(Duration::from_secs(2));
    assert_eq!(handle.total_queued(), 250);
    for jid in &jids {
        let job = handle.job(jid);
        if done.contains(jid) {
            assert!(job.is_none(), "{jid} was acked");
        } else {
            let job = job.unwrap_or_else(|| panic!("{jid} lost"));
            assert!(
                job.get("failure").is_none_or(|f| f.is_null()),
                "{jid}: {job}"
            );
        }
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_hellos_get_precise_errors() {
    let server = common::faktory().await;
    let gateway = Gateway::start(&server.url(), &["--hello-timeout-ms", "300"]).await;

    let status = TestWorker::connect(&gateway, hello("w", &["default"], 0))
        .await
        .err()
        .expect("refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("hello.window"),
        "{}",
        status.message()
    );

    let status = TestWorker::connect(&gateway, hello("w", &["no spaces"], 5))
        .await
        .err()
        .expect("refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("hello.queues"),
        "{}",
        status.message()
    );

    let too_many_labels = Hello {
        labels: vec!["l".into(); 33],
        ..hello("w", &["default"], 5)
    };
    let status = TestWorker::connect(&gateway, too_many_labels)
        .await
        .err()
        .expect("refused");
    assert!(
        status.message().contains("hello.labels"),
        "{}",
        status.message()
    );

    let status = TestWorker::connect_raw(&gateway, worker_message::Kind::Acks(Default::default()))
        .await
        .err()
        .expect("refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("first message must be a hello"),
        "{}",
        status.message()
    );

    let status = TestWorker::connect_with(&gateway, None)
        .await
        .err()
        .expect("refused");
    assert_eq!(status.code(), Code::DeadlineExceeded);

    gateway.stop().await.expect("clean shutdown");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_results_are_rejected_and_the_stream_stays_open() {
    let (server, gateway, _) = scenario("res", 2, &[]).await;
    let handle = server.handle();
    let mut worker = TestWorker::connect(&gateway, hello("w", &["default"], 5))
        .await
        .unwrap();
    let got: Vec<String> = receive(&mut worker, 2).await.iter().map(jid_of).collect();

    worker.release(vec!["never-delivered".into()]).await;
    match worker.recv().await {
        Received::Rejected(r) => {
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].jid, "never-delivered");
            assert_eq!(r[0].reason, "unknown jid");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    worker.fail(&got[0], "").await;
    match worker.recv().await {
        Received::Rejected(r) => assert_eq!(r[0].reason, "errtype is required"),
        other => panic!("expected a rejection, got {other:?}"),
    }
    worker.ping(9).await;
    assert!(
        matches!(worker.recv().await, Received::Pong(9)),
        "stream still open"
    );

    worker.fail(&got[0], "Boom").await;
    worker.ack(vec![got[1].clone()]).await;
    let failed = got[0].clone();
    eventually(
        "the failure reaches faktory",
        Duration::from_secs(10),
        || handle.retries().len() == 1,
    )
    .await;
    let job = handle.job(&failed).expect("in retries");
    assert_eq!(job["failure"]["errtype"], "Boom");
    worker.until_settled(&got[1..]).await;
    // Failed again after Faktory took the first failure: it says so.
    worker.fail(&failed, "Again").await;
    match worker.recv().await {
        Received::Rejected(r) => assert!(r[0].reason.contains("not found"), "{}", r[0].reason),
        other => panic!("expected Faktory's refusal, got {other:?}"),
    }
    drop(worker);
    gateway.stop().await.expect("clean shutdown");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_no_worker_can_take_are_failed_with_a_reason() {
    let server = common::faktory().await;
    let handle = server.handle();
    let gateway = Gateway::start(&server.url(), &["--unknown-jobtype-grace-ms", "300"]).await;
    let mut batch = jobs("kind", 3, "default", "known");
    batch[1].jobtype = "mystery".into();
    batch[2].args = Bytes::from(format!("[\"{}\"]", "x".repeat(3000)));
    let (known, mystery, large) = (
        batch[0].jid.clone(),
        batch[1].jid.clone(),
        batch[2].jid.clone(),
    );
    common::push_with(gateway.client().await, batch).await;
    let mut worker = TestWorker::connect(
        &gateway,
        Hello {
            jobtypes: vec!["known".into()],
            max_message_bytes: 2048,
            ..hello("w", &["default"], 10)
        },
    )
    .await
    .unwrap();
    let got = worker.jobs().await;
    assert_eq!(
        got.iter().map(jid_of).collect::<Vec<_>>(),
        vec![known.clone()]
    );
    worker.ack(vec![known]).await;
    eventually(
        "both refused jobs are failed",
        Duration::from_secs(10),
        || handle.retries().len() == 2,
    )
    .await;
    let errtypes: HashMap<String, String> = [mystery, large]
        .into_iter()
        .map(|jid| {
            let job = handle.job(&jid).expect("in retries");
            (
                jid,
                job["failure"]["errtype"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    let mut kinds: Vec<&str> = errtypes.values().map(String::as_str).collect();
    kinds.sort_unstable();
    assert_eq!(kinds, vec!["JobTooLarge", "NoWorkerForJobtype"]);
    assert!(worker.sync(1).await.is_empty());
    drop(worker);
    gateway.stop().await.expect("clean shutdown");
    server.shutdown().await;
}

async fn channel(addr: &std::net::SocketAddr) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("valid uri")
        .connect()
        .await
        .expect("connect")
}

/// The gateway's health status for `service` ("" = the whole server).
async fn health(addr: &std::net::SocketAddr, service: &str) -> ServingStatus {
    let mut client = HealthClient::new(channel(addr).await);
    let response = client
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .expect("health check");
    response.into_inner().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_are_served() {
    let server = common::faktory().await;
    let gateway = Gateway::start(&server.url(), &[]).await;
    assert_eq!(health(&gateway.addr, "").await, ServingStatus::Serving);
    assert_eq!(
        health(&gateway.addr, "faktory_gateway.v1.Gateway").await,
        ServingStatus::Serving
    );

    let mut reflection = ServerReflectionClient::new(channel(&gateway.addr).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection call")
        .into_inner();
    let response = responses
        .message()
        .await
        .expect("reply")
        .expect("one reply");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("expected a service list, got {response:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.iter().any(|n| n == "faktory_gateway.v1.Gateway"),
        "{names:?}"
    );
    gateway.stop().await.expect("clean shutdown");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_worker_loses_its_jobs_to_another() {
    let (server, gateway, jids) = scenario(
        "quiet",
        20,
        &[
            "--heartbeat-interval-ms",
            "100",
            "--heartbeat-timeout-ms",
            "500",
        ],
    )
    .await;
    let handle = server.handle();
    // `a` takes every job, then neither reads nor answers pings.
    let mut a = TestWorker::connect(&gateway, hello("a", &["default"], 20))
        .await
        .unwrap();
    let at_a: HashSet<String> = receive(&mut a, 20).await.iter().map(jid_of).collect();
    let mut b = TestWorker::connect(&gateway, hello("b", &["default"], 20))
        .await
        .unwrap();
    let again = receive(&mut b, 20).await;
    assert!(again.iter().all(|d| d.attempt == 2));
    assert_eq!(again.iter().map(jid_of).collect::<HashSet<_>>(), at_a);
    b.ack(again.iter().map(jid_of).collect()).await;
    assert!(b.sync(1).await.is_empty());
    match a.recv().await {
        Received::End(Some(status)) => assert_eq!(status.code(), Code::DeadlineExceeded),
        other => panic!("expected the silent stream to end, got {other:?}"),
    }
    drop((a, b));
    gateway.stop().await.expect("clean shutdown");
    assert_eq!(handle.counters().failed, 0);
    assert_all_gone(&handle, &jids);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_get_only_their_queues() {
    let server = common::faktory().await;
    let gateway = Gateway::start(&server.url(), &[]).await;
    let mut mixed = jobs("qa", 30, "alpha", "t");
    mixed.extend(jobs("qb", 30, "beta", "t"));
    common::push_with(gateway.client().await, mixed).await;
    let mut a = TestWorker::connect(&gateway, hello("a", &["alpha"], 50))
        .await
        .unwrap();
    let mut b = TestWorker::connect(&gateway, hello("b", &["beta", "alpha"], 50))
        .await
        .unwrap();
    let mut queues: HashMap<&str, Vec<String>> = HashMap::new();
    let mut total = 0;
    // Between them they take all 60; `a` never sees a beta job.
    while total < 60 {
        tokio::select! {
            got = a.jobs() => {
                for d in &got {
                    assert_eq!(d.job.as_ref().unwrap().queue, "alpha");
                }
                total += got.len();
                queues.entry("a").or_default().extend(got.iter().map(jid_of));
                a.ack(got.iter().map(jid_of).collect()).await;
            }
            got = b.jobs() => {
                total += got.len();
                queues.entry("b").or_default().extend(got.iter().map(jid_of));
                b.ack(got.iter().map(jid_of).collect()).await;
            }
        }
    }
    assert_eq!(total, 60);
    assert!(a.sync(1).await.is_empty());
    assert!(b.sync(2).await.is_empty());
    drop((a, b));
    gateway.stop().await.expect("clean shutdown");
    let handle = server.handle();
    assert_eq!(handle.counters().acked, 60);
    assert_eq!(handle.total_queued(), 0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_streams_run_over_tls() {
    let dir = std::env::temp_dir().join(format!("fg-work-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert_pem = certified.cert.pem();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();

    let (server, gateway, jids) = scenario_tls(&cert, &key).await;
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(&cert_pem))
        .domain_name("localhost");
    let channel = tonic::transport::Endpoint::from_shared(format!("https://{}", gateway.addr))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .expect("tls connect");
    let mut worker = TestWorker::connect_via(
        faktory_gateway_proto::v1::gateway_client::GatewayClient::new(channel),
        hello("tls", &["default"], 10),
    )
    .await
    .expect("session over tls");
    let got = receive(&mut worker, jids.len()).await;
    worker.ack(got.iter().map(jid_of).collect()).await;
    assert!(worker.sync(1).await.is_empty());
    drop(worker);
    // Plaintext clients are not served.
    let plain = tonic::transport::Endpoint::from_shared(format!("http://{}", gateway.addr))
        .unwrap()
        .connect()
        .await;
    if let Ok(channel) = plain {
        let mut client = faktory_gateway_proto::v1::gateway_client::GatewayClient::new(channel);
        let push = client
            .push(faktory_gateway_proto::v1::PushRequest::default())
            .await;
        assert!(push.is_err());
    }
    gateway.stop().await.expect("clean shutdown");
    assert_all_gone(&server.handle(), &jids);
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Like [`scenario`] with TLS on the gateway's port; jobs are pushed over
/// a direct Faktory connection (the gateway's port needs TLS).
async fn scenario_tls(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> (TestServer, Gateway, Vec<String>) {
    let server = common::faktory().await;
    let gateway = Gateway::start(
        &server.url(),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    )
    .await;
    let url = faktory_gateway::faktory::FaktoryUrl::parse(&server.url()).unwrap();
    let mut conn = faktory_gateway::faktory::Connection::connect(&url, None)
        .await
        .unwrap();
    let mut jids = Vec::new();
    for job in jobs("tls", 5, "default", "t") {
        conn.push(&faktory_gateway::job::to_faktory_json(&job).unwrap())
            .await
            .unwrap();
        jids.push(job.jid);
    }
    (server, gateway, jids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_survive_faktory_connections_dropping() {
    let (server, gateway, jids) = scenario("chaos", 600, &[]).await;
    let handle = server.handle();
    let mut worker = TestWorker::connect(&gateway, hello("w", &["default"], 100))
        .await
        .unwrap();
    let mut done = HashSet::new();
    let mut dropped = false;
    let mut carried = Vec::new();
    while done.len() < jids.len() {
        let mut got = std::mem::take(&mut carried);
        if got.is_empty() {
            got = worker.jobs().await;
        }
        let got: Vec<String> = got.iter().map(jid_of).collect();
        for jid in &got {
            assert!(done.insert(jid.clone()), "{jid} delivered twice");
        }
        worker.ack(got).await;
        if !dropped && done.len() >= 200 {
            // Every Faktory connection of the gateway drops while results
            // are on their way; they must be retried on new connections.
            dropped = true;
            server.stop_listener().await;
            carried = worker.sync(1).await;
            server.restart_listener().await;
        }
    }
    assert!(worker.sync(2).await.is_empty());
    drop(worker);
    gateway.stop().await.expect("clean shutdown");
    assert_eq!(handle.counters().failed, 0);
    assert_all_gone(&handle, &jids);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_registers_with_faktory_as_one_process() {
    let server = common::faktory().await;
    let handle = server.handle();
    let wid = format!("gw-{}", std::process::id());
    let gateway = Gateway::start(&server.url(), &["--wid", &wid, "--labels", "gateway,test"]).await;
    eventually(
        "the gateway's HELLO and first BEAT",
        Duration::from_secs(10),
        || handle.workers().iter().any(|w| w.wid == wid),
    )
    .await;
    let me = handle
        .workers()
        .into_iter()
        .find(|w| w.wid == wid)
        .expect("registered");
    assert_eq!(me.labels, vec!["gateway", "test"]);
    assert_eq!(me.connections, 1, "one presence connection");
    gateway.stop().await.expect("clean shutdown");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_waits_for_a_worker_of_its_type_within_the_grace() {
    let server = common::faktory().await;
    let handle = server.handle();
    let gateway = Gateway::start(&server.url(), &["--unknown-jobtype-grace-ms", "60000"]).await;
    let mut x = TestWorker::connect(
        &gateway,
        Hello {
            jobtypes: vec!["x".into()],
            ..hello("x", &["default"], 5)
        },
    )
    .await
    .unwrap();
    let pushed = jobs("late", 1, "default", "y");
    let jid = pushed[0].jid.clone();
    common::push_with(gateway.client().await, pushed).await;
    // The y job is fetched for x's open window but x does not run it; it
    // waits in the gateway instead of being failed at once.
    eventually(
        "the gateway fetched the y job",
        Duration::from_secs(10),
        || handle.reserved_jids().contains(&jid),
    )
    .await;
    assert!(x.sync(1).await.is_empty());
    let mut y = TestWorker::connect(
        &gateway,
        Hello {
            jobtypes: vec!["y".into()],
            ..hello("y", &["default"], 5)
        },
    )
    .await
    .unwrap();
    let got = y.jobs().await;
    assert_eq!(
        got.iter().map(jid_of).collect::<Vec<_>>(),
        vec![jid.clone()]
    );
    y.ack(vec![jid.clone()]).await;
    assert!(y.sync(1).await.is_empty());
    drop((x, y));
    gateway.stop().await.expect("clean shutdown");
    assert_eq!(handle.counters().failed, 0);
    assert_all_gone(&handle, &[jid]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_larger_window_brings_more_jobs() {
    let (server, gateway, jids) = scenario("win", 10, &[]).await;
    let mut worker = TestWorker::connect(&gateway, hello("w", &["default"], 4))
        .await
        .unwrap();
    let mut held: Vec<String> = receive(&mut worker, 4).await.iter().map(jid_of).collect();
    worker
        .send(worker_message::Kind::Window(
            faktory_gateway_proto::v1::WindowUpdate { window: 10 },
        ))
        .await;
    held.extend(receive(&mut worker, 6).await.iter().map(jid_of));
    worker.ack(held).await;
    assert!(worker.sync(1).await.is_empty());
    drop(worker);
    gateway.stop().await.expect("clean shutdown");
    assert_all_gone(&server.handle(), &jids);
    server.shutdown().await;
}

/// A test server, a gateway registered as `wid` that BEATs every 100 ms
/// (plus `flags`), and `n` jobs of type `t` pushed to `default`; waits until
/// the gateway is registered, so that the server can signal it.
async fn presence_scenario(
    tag: &str,
    wid: &str,
    n: usize,
    flags: &[&str],
) -> (TestServer, Gateway, Vec<String>) {
    let mut all = vec!["--wid", wid, "--beat-interval-ms", "100"];
    all.extend_from_slice(flags);
    let (server, gateway, jids) = scenario(tag, n, &all).await;
    let handle = server.handle();
    eventually("the gateway's HELLO", Duration::from_secs(10), || {
        handle.workers().iter().any(|w| w.wid == wid)
    })
    .await;
    (server, gateway, jids)
}

/// The next message that is not a job batch must be a drain notice; returns
/// it (jobs arriving before it are counted into `jobs`).
async fn drain_notice(
    worker: &mut TestWorker,
    jobs: &mut usize,
) -> faktory_gateway_proto::v1::Drain {
    loop {
        match worker.recv().await {
            Received::Jobs(more) => *jobs += more.len(),
            Received::Drain(drain) => return drain,
            other => panic!("expected a drain notice, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faktory_quiet_stops_fetching_and_drains_workers() {
    let wid = format!("gw-quiet-{}", std::process::id());
    let (server, gateway, _) = presence_scenario("fq", &wid, 20, &[]).await;
    let handle = server.handle();
    let mut worker = TestWorker::connect(&gateway, hello("w", &["default"], 5))
        .await
        .unwrap();
    let held: Vec<String> = receive(&mut worker, 5).await.iter().map(jid_of).collect();

    assert!(handle.set_quiet(&wid), "the gateway is registered");
    let mut extra = 0;
    let drain = drain_notice(&mut worker, &mut extra).await;
    assert_eq!(drain.reason, "faktory_quiet");
    assert!(drain.deadline_unix_ms > 0);
    assert_eq!(extra, 0, "the window was full");
    // Acks still reach Faktory, but the slots they reopen are not refilled.
    worker.ack(held).await;
    assert!(worker.sync(1).await.is_empty(), "no jobs after quiet");
    eventually("acks relayed", Duration::from_secs(10), || {
        handle.counters().acked == 5
    })
    .await;
    // Let the gateway BEAT a few more times (each BEAT is a command at the
    // server) and check it fetched nothing meanwhile.
    let commands = handle.counters().commands;
    eventually("three more BEATs", Duration::from_secs(10), || {
        handle.counters().commands >= commands + 3
    })
    .await;
    assert!(worker.sync(2).await.is_empty(), "no jobs after quiet");
    assert_eq!(handle.counters().fetched, 5, "no FETCH after quiet");
    assert_eq!(handle.total_queued(), 15);
    assert!(handle.reserved_jids().is_empty());
    // A worker that connects now is told at once and gets nothing.
    let mut late = TestWorker::connect(&gateway, hello("late", &["default"], 5))
        .await
        .unwrap();
    let mut jobs = 0;
    assert_eq!(
        drain_notice(&mut late, &mut jobs).await.reason,
        "faktory_quiet"
    );
    assert!(late.sync(3).await.is_empty());
    assert_eq!(jobs, 0);
    drop((worker, late));
    gateway.stop().await.expect("clean shutdown");
    assert_eq!(
        handle.total_queued(),
        15,
        "the quiet gateway left the queue alone"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faktory_terminate_releases_held_jobs_after_the_grace() {
    let wid = format!("gw-term-{}", std::process::id());
    let (server, gateway, jids) =
        presence_scenario("ft", &wid, 10, &["--shutdown-grace-ms", "500"]).await;
    let handle = server.handle();
    let mut worker = TestWorker::connect(&gateway, hello("w", &["default"], 4))
        .await
        .unwrap();
    receive(&mut worker, 4).await;
    assert_eq!(handle.reserved_jids().len(), 4);

    assert!(handle.set_terminate(&wid), "the gateway is registered");
    let mut extra = 0;
    let drain = drain_notice(&mut worker, &mut extra).await;
    assert_eq!(drain.reason, "faktory_terminate");
    assert_eq!(extra, 0, "the window was full");
    // The worker sits on its jobs; after the grace the gateway takes them
    // back and ends the stream.
    loop {
        match worker.recv().await {
            Received::End(_) => break,
            Received::Pong(_) => {}
            other => panic!("expected the stream to end, got {other:?}"),
        }
    }
    eventually(
        "held jobs released back to faktory",
        Duration::from_secs(10),
        || handle.reserved_jids().is_empty() && handle.scheduled_len() == 4,
    )
    .await;
    assert_eq!(handle.counters().failed, 0);
    assert!(handle.retries().is_empty(), "no retry used");
    assert!(handle.dead().is_empty());
    // Release copies are scheduled 1 s ahead; let the scheduler run.
    handle.advance_clock(Duration::from_secs(2));
    assert_eq!(handle.total_queued(), 10, "every job back in its queue");
    for jid in &jids {
        let job = handle.job(jid).unwrap_or_else(|| panic!("{jid} lost"));
        assert!(
            job.get("failure").is_none_or(|f| f.is_null()),
            "{jid}: {job}"
        );
    }
    gateway.stop().await.expect("clean shutdown");
    assert_eq!(handle.total_queued(), 10);
    server.shutdown().await;
}

/// A test server whose FETCHes on empty queues block until a job arrives
/// (for as long as the gateway waits), a gateway with one fetch connection
/// and `flags`, and a worker with window 1 whose FETCH is parked at the
/// server.
async fn parked_fetch_scenario(flags: &[&str]) -> (TestServer, Gateway, TestWorker) {
    let server = TestServer::start_with(faktory_test_server::ServerConfig {
        fetch_block: Duration::from_secs(3600),
        ..faktory_test_server::ServerConfig::default()
    })
    .await
    .expect("start the faktory test server");
    let handle = server.handle();
    let mut all = vec!["--fetch-concurrency", "1"];
    all.extend_from_slice(flags);
    let gateway = Gateway::start(&server.url(), &all).await;
    let worker = TestWorker::connect(&gateway, hello("w", &["default"], 1))
        .await
        .unwrap();
    eventually(
        "a FETCH parked at the server",
        Duration::from_secs(10),
        || handle.blocked_fetches() == 1,
    )
    .await;
    (server, gateway, worker)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_from_a_fetch_in_flight_at_shutdown_is_released() {
    let (server, gateway, mut worker) =
        parked_fetch_scenario(&["--shutdown-grace-ms", "300"]).await;
    let handle = server.handle();
    let stopping = tokio::spawn(gateway.stop());
    // The drain notice is sent after fetching stopped (and reaches a worker
    // that holds nothing, too, before its stream ends).
    match worker.recv().await {
        Received::Drain(drain) => assert_eq!(drain.reason, "shutdown"),
        other => panic!("expected a drain notice, got {other:?}"),
    }
    // Now a job arrives, and Faktory hands it to the FETCH in flight.
    let url = faktory_gateway::faktory::FaktoryUrl::parse(&server.url()).unwrap();
    let mut conn = faktory_gateway::faktory::Connection::connect(&url, None)
        .await
        .unwrap();
    let job = jobs("late", 1, "default", "t").remove(0);
    conn.push(&faktory_gateway::job::to_faktory_json(&job).unwrap())
        .await
        .unwrap();
    stopping
        .await
        .unwrap()
        .expect("serve returns Ok after the drain");
    drop(worker);

    assert_eq!(handle.counters().fetched, 1, "the FETCH in flight got it");
    assert!(
        handle.reserved_jids().is_empty(),
        "released, not left to its reservation"
    );
    assert_eq!(handle.counters().failed, 0);
    assert!(handle.retries().is_empty(), "no retry used");
    // The release copy comes back a second later.
    handle.advance_clock(Duration::from_secs(2));
    assert_eq!(handle.total_queued(), 1);
    let back = handle.job(&job.jid).expect("back at faktory");
    assert!(back.get("failure").is_none_or(|f| f.is_null()), "{back}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_when_faktory_never_answers_a_fetch() {
    // The FETCH's deadline is the Faktory timeout plus 2 s per FETCH; the
    // shutdown waits for it and no longer.
    let (server, gateway, worker) =
        parked_fetch_scenario(&["--shutdown-grace-ms", "100", "--faktory-timeout-ms", "300"]).await;
    let started = Instant::now();
    gateway.stop().await.expect("clean shutdown");
    println!(
        "shutdown with a FETCH never answered took {:.2?}",
        started.elapsed()
    );
    drop(worker);
    assert_eq!(server.handle().counters().fetched, 0);
    server.shutdown().await;
}
