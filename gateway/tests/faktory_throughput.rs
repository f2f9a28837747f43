//! Throughput of the Faktory protocol layer: prints numbers, asserts only correctness.
//!
//! Ignored by default (it is a benchmark, not a test). Run it in release mode:
//! `cargo test -p faktory-gateway --release --test faktory_throughput -- --ignored --nocapture`
//! It runs against the project's test server, and against a real Faktory as well when
//! `FAKTORY_URL` is set.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use faktory_gateway::faktory::{Connection, FaktoryUrl, Reply, ReplyParser};
use faktory_test_server::TestServer;

const JOBS: usize = 100_000;
const BATCH: usize = 1_000;
const FETCH_DEPTH: usize = 100;

fn rate(what: &str, target: &str, n: usize, took: Duration) {
    println!(
        "{what:<40} {target:<12} {n:>8} in {:>8.1} ms = {:>10.0}/s",
        took.as_secs_f64() * 1e3,
        n as f64 / took.as_secs_f64()
    );
}

#[test]
#[ignore = "benchmark; run with --ignored --nocapture in release mode"]
fn parse_fetched_job_replies() {
    let job = Bytes::from(
        br#"{"jid":"0123456789abcdef01234567","queue":"default","jobtype":"Bench","args":[1,2,3],"created_at":"2026-01-01T00:00:00.000000Z","enqueued_at":"2026-01-01T00:00:00.000000Z","retry":25}"#
            .to_vec(),
    );
    let mut wire = Vec::new();
    for _ in 0..JOBS {
        Reply::Bulk(Some(job.clone())).encode(&mut wire);
    }
    let parser = ReplyParser::default();
    let mut buf = BytesMut::from(&wire[..]);
    let started = Instant::now();
    let mut n = 0;
    while let Some(reply) = parser.parse(&mut buf).unwrap() {
        assert_eq!(reply.text().map(Bytes::len), Some(job.len()));
        n += 1;
    }
    rate("parse bulk replies (in memory)", "-", n, started.elapsed());
    assert_eq!(n, JOBS);
}

fn batches(queue: &str) -> Vec<Vec<u8>> {
    (0..JOBS / BATCH)
        .map(|b| {
            let jobs: Vec<String> = (0..BATCH)
                .map(|i| {
                    format!(
                        r#"{{"jid":"bench-{queue}-{:08}","jobtype":"Bench","queue":"{queue}","args":[1]}}"#,
                        b * BATCH + i
                    )
                })
                .collect();
            format!("[{}]", jobs.join(",")).into_bytes()
        })
        .collect()
}

async fn push_fetch_ack(url: &FaktoryUrl, target: &str) {
    let queue = format!("bench{:08x}", rand::random::<u32>());
    let bodies = batches(&queue);
    let mut conn = Connection::connect(url, None).await.expect("connect");

    let started = Instant::now();
    for body in &bodies {
        assert!(conn.push_bulk(body).await.unwrap().is_empty());
    }
    rate(
        "PUSHB, 1000 per batch, 1 connection",
        target,
        JOBS,
        started.elapsed(),
    );

    let queues = [queue];
    let started = Instant::now();
    let mut done = 0;
    while done < JOBS {
        let depth = FETCH_DEPTH.min(JOBS - done);
        let jobs = conn.fetch(&queues, depth).await.unwrap();
        assert_eq!(jobs.len(), depth);
        let jids: Vec<String> = jobs
            .iter()
            .map(|j| {
                let v: serde_json::Value = serde_json::from_slice(j).unwrap();
                v["jid"].as_str().unwrap().to_owned()
            })
            .collect();
        assert!(
            conn.ack_many(&jids)
                .await
                .unwrap()
                .iter()
                .all(Result::is_ok)
        );
        done += depth;
    }
    rate(
        "FETCH x100 pipelined + ACK batch, 1 conn",
        target,
        JOBS,
        started.elapsed(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run with --ignored --nocapture in release mode"]
async fn push_fetch_ack_round_trips() {
    let server = TestServer::start().await.unwrap();
    push_fetch_ack(&FaktoryUrl::parse(&server.url()).unwrap(), "test-server").await;
    server.shutdown().await;
    match std::env::var("FAKTORY_URL") {
        Ok(url) if !url.trim().is_empty() => {
            push_fetch_ack(&FaktoryUrl::parse(&url).unwrap(), "faktory").await;
        }
        _ => println!("FAKTORY_URL not set: skipping the real-Faktory run"),
    }
}
