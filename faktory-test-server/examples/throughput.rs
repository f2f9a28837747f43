//! Throughput of the test server with raw pipelined TCP clients, in-process.
//!
//! ```text
//! cargo run --release -p faktory-test-server --example throughput [-- JOBS CONNECTIONS PIPELINE]
//! ```
//! Defaults: 400000 jobs, 8 connections, pipeline 50. Measures PUSHB (batches of 100) and
//! FETCH+ACK (each connection keeps PIPELINE FETCHes in flight and ACKs what it receives in
//! the same write), then FETCH+ACK with one request at a time on one connection.

mod raw;

use std::time::Instant;

use faktory_test_server::TestServer;
use raw::Client;

const BATCH: usize = 100;
const QUEUE: &str = "bench";

async fn push_all(addr: std::net::SocketAddr, conn: usize, batches: usize, pipeline: usize) {
    let mut client = Client::connect(&addr.to_string()).await;
    let mut payload = Vec::new();
    let mut sent = 0;
    while sent < batches {
        let n = pipeline.min(batches - sent);
        let mut out = Vec::with_capacity(n * BATCH * 80);
        for b in 0..n {
            let prefix = format!("c{conn}-b{}", sent + b);
            raw::push_batch(QUEUE, &prefix, BATCH, &mut out);
        }
        client.write(&out).await;
        for _ in 0..n {
            client.reply(&mut payload).await;
            assert_eq!(payload, b"{}");
        }
        sent += n;
    }
}

async fn fetch_ack_all(addr: std::net::SocketAddr, jobs: usize, pipeline: usize) {
    let mut client = Client::connect(&addr.to_string()).await;
    let fetch = format!("FETCH {QUEUE}\r\n");
    let mut payload = Vec::new();
    let mut out = Vec::new();
    let mut done = 0;
    let first = pipeline.min(jobs);
    for _ in 0..first {
        out.extend_from_slice(fetch.as_bytes());
    }
    client.write(&out).await;
    let mut in_flight = first;
    while in_flight > 0 {
        out.clear();
        for _ in 0..in_flight {
            client.reply(&mut payload).await;
            assert!(!payload.is_empty(), "queue ran dry");
            raw::ack_for(&payload, &mut out);
        }
        let acks = in_flight;
        done += acks;
        let next = pipeline.min(jobs - done);
        for _ in 0..next {
            out.extend_from_slice(fetch.as_bytes());
        }
        client.write(&out).await;
        for _ in 0..acks {
            client.reply(&mut payload).await;
        }
        in_flight = next;
    }
}

fn rate(what: &str, n: usize, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{what:<48} {n:>8} in {secs:>6.2} s = {:>9.0} /s",
        n as f64 / secs
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let jobs = args.first().copied().unwrap_or(400_000);
    let connections = args.get(1).copied().unwrap_or(8);
    let pipeline = args.get(2).copied().unwrap_or(50);
    let jobs = jobs / (connections * BATCH) * connections * BATCH;
    let server = TestServer::start().await.expect("start");
    let addr = server.addr();
    let handle = server.handle();

    let started = Instant::now();
    let batches = jobs / BATCH / connections;
    let tasks: Vec<_> = (0..connections)
        .map(|c| tokio::spawn(push_all(addr, c, batches, pipeline.clamp(1, 8))))
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    rate(
        &format!(
            "PUSHB (batch {BATCH}, {connections} conns, pipeline {})",
            pipeline.clamp(1, 8)
        ),
        jobs,
        started,
    );
    assert_eq!(handle.queue_len(QUEUE), jobs);

    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|_| tokio::spawn(fetch_ack_all(addr, jobs / connections, pipeline)))
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    rate(
        &format!("FETCH+ACK ({connections} conns, pipeline {pipeline})"),
        jobs,
        started,
    );
    assert_eq!(handle.queue_len(QUEUE), 0);
    assert!(handle.reserved_jids().is_empty());

    let single = 20_000.min(jobs);
    push_all(addr, 99, single / BATCH, 1).await;
    let started = Instant::now();
    fetch_ack_all(addr, single, 1).await;
    rate("FETCH+ACK (1 conn, one request at a time)", single, started);
    server.shutdown().await;
}
