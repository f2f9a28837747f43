//! The cost model in virtual time (`start_paused`): commands of one connection are served one
//! after another with replies trickling out, and throughput grows with connections up to the
//! server-wide ceiling. Durations are in milliseconds so the timer slack stays small beside
//! them.

mod common;

use std::time::Duration;

use common::{Raw, Target, job, unique};
use faktory_test_server::{CostModel, ServerConfig};
use serde_json::{Value, json};
use tokio::time::Instant;

const FETCH: Duration = Duration::from_millis(10);
/// The pacer may answer up to its 1 ms slack early, and timers fire on 1 ms ticks.
const TOLERANCE: Duration = Duration::from_millis(2);

/// FETCH costs 10 ms alone; everything else is free.
fn model(sharing: f64) -> CostModel {
    let zero = Duration::ZERO;
    CostModel {
        fetch: FETCH,
        ack: zero,
        fail: zero,
        push: zero,
        push_batch: zero,
        push_batch_job: zero,
        beat: zero,
        info: zero,
        other: zero,
        turnaround: zero,
        sharing,
        crowding: f64::INFINITY,
    }
}

async fn server(sharing: f64) -> Target {
    Target::with_config(ServerConfig {
        cost: Some(model(sharing)),
        ..ServerConfig::default()
    })
    .await
}

async fn fill(target: &Target, queue: &str, jobs: usize) {
    let batch: Vec<Value> = (0..jobs).map(|_| job(queue, json!({}))).collect();
    let mut raw = Raw::connect(target, json!({})).await;
    assert_eq!(
        raw.cmd(&format!("PUSHB {}", json!(batch))).await.json(),
        json!({})
    );
}

fn close_to(actual: Duration, expected: Duration) -> bool {
    actual.abs_diff(expected) <= TOLERANCE
}

#[tokio::test(start_paused = true)]
async fn pipelined_commands_are_served_one_after_another() {
    let target = server(1.0).await;
    let queue = unique("paced");
    fill(&target, &queue, 8).await;
    let mut raw = Raw::connect(&target, json!({})).await;
    raw.send_raw(format!("FETCH {queue}\r\n").repeat(8).as_bytes())
        .await;
    let started = Instant::now();
    for n in 1..=8 {
        assert!(matches!(raw.reply().await, common::Reply::Bulk(_)));
        let at = started.elapsed();
        assert!(close_to(at, FETCH * n), "reply {n} at {at:?}");
    }
}

/// FETCHes done in one virtual second by `connections` connections, each one at a time.
async fn fetches_per_second(connections: usize, sharing: f64) -> usize {
    let target = server(sharing).await;
    let queue = unique("shared");
    fill(&target, &queue, 300 * connections).await;
    let mut clients = Vec::new();
    for _ in 0..connections {
        clients.push(Raw::connect(&target, json!({})).await);
    }
    let until = Instant::now() + Duration::from_secs(1);
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut raw| {
            let queue = queue.clone();
            tokio::spawn(async move {
                let mut done = 0;
                while Instant::now() < until {
                    raw.fetch_job(&queue).await;
                    done += 1;
                }
                done
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    total
}

#[tokio::test(start_paused = true)]
async fn one_connection_is_serial() {
    let done = fetches_per_second(1, 2.0).await;
    // 10 ms each: 100 in a second, give or take the slack at the edges.
    assert!((98..=102).contains(&done), "{done} fetches");
}

#[tokio::test(start_paused = true)]
async fn connections_add_throughput_up_to_the_ceiling() {
    // Processor sharing with sharing = 2: N connections do N / (10 ms * (1 + (N-1)/2)) per
    // second: 100, 160, 188, ... never more than 2 / 10 ms = 200 (plus the slack at the edges).
    let one = fetches_per_second(1, 2.0).await;
    let four = fetches_per_second(4, 2.0).await;
    let sixteen = fetches_per_second(16, 2.0).await;
    assert!(four as f64 > 1.4 * one as f64, "1: {one}, 4: {four}");
    assert!(sixteen > four, "4: {four}, 16: {sixteen}");
    assert!(sixteen <= 210, "16 connections beat the ceiling: {sixteen}");
}
