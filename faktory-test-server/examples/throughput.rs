//! Throughput of the test server with raw pipelined TCP clients, in-process.
//!
//! ```text
//! cargo run --release -p faktory-test-server --example throughput [-- JOBS CONNECTIONS PIPELINE]
//! ```
//! Defaults: 400000 jobs, 8 connections, pipeline 50. Measures PUSHB (batches of 100) and
//! FETCH+ACK (each connection keeps PIPELINE FETCHes in flight and ACKs what it receives in
//! the same write), then FETCH+ACK with one request at a time on one connection.

use std::time::Instant;

use faktory_test_server::TestServer;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const BATCH: usize = 100;
const QUEUE: &str = "bench";

struct Client {
    stream: BufReader<TcpStream>,
    line: Vec<u8>,
}

impl Client {
    async fn connect(addr: std::net::SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).unwrap();
        let mut client = Client {
            stream: BufReader::with_capacity(256 * 1024, stream),
            line: Vec::new(),
        };
        client.read_line().await; // +HI
        client.write(b"HELLO {\"v\":2}\r\n").await;
        client.read_line().await; // +OK
        client
    }

    async fn write(&mut self, bytes: &[u8]) {
        self.stream.get_mut().write_all(bytes).await.expect("write");
    }

    async fn read_line(&mut self) -> &[u8] {
        self.line.clear();
        self.stream
            .read_until(b'\n', &mut self.line)
            .await
            .expect("read");
        &self.line
    }

    /// Reads one reply; returns the bulk payload (empty for simple strings and `$-1`).
    async fn reply(&mut self, payload: &mut Vec<u8>) {
        payload.clear();
        let line = self.read_line().await;
        if line.first() == Some(&b'$') && line.get(1) != Some(&b'-') {
            let len: usize = std::str::from_utf8(&line[1..line.len() - 2])
                .unwrap()
                .parse()
                .unwrap();
            payload.resize(len + 2, 0);
            self.stream.read_exact(payload).await.expect("payload");
            payload.truncate(len);
        } else {
            assert!(
                line.first() != Some(&b'-'),
                "server error: {}",
                String::from_utf8_lossy(line)
            );
        }
    }
}

fn jid_of(job: &[u8]) -> &[u8] {
    let key = b"\"jid\":\"";
    let start = job.windows(key.len()).position(|w| w == key).expect("jid") + key.len();
    let len = job[start..]
        .iter()
        .position(|&b| b == b'"')
        .expect("jid end");
    &job[start..start + len]
}

async fn push_all(addr: std::net::SocketAddr, conn: usize, batches: usize, pipeline: usize) {
    let mut client = Client::connect(addr).await;
    let mut payload = Vec::new();
    let mut sent = 0;
    while sent < batches {
        let n = pipeline.min(batches - sent);
        let mut out = Vec::with_capacity(n * BATCH * 80);
        for b in 0..n {
            out.extend_from_slice(b"PUSHB [");
            for j in 0..BATCH {
                if j > 0 {
                    out.push(b',');
                }
                let jid = format!("c{conn}-b{}-j{j}", sent + b);
                out.extend_from_slice(
                    format!(r#"{{"jid":"{jid}","jobtype":"bench","args":[1],"queue":"{QUEUE}","reserve_for":600}}"#)
                        .as_bytes(),
                );
            }
            out.extend_from_slice(b"]\r\n");
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
    let mut client = Client::connect(addr).await;
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
            out.extend_from_slice(b"ACK {\"jid\":\"");
            out.extend_from_slice(jid_of(&payload));
            out.extend_from_slice(b"\"}\r\n");
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
