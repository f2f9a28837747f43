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
fn model(capacity: f64) -> CostModel {
    let zero = Duration::ZERO;
    model_waking(capacity, zero)
}

/// As [`model`], and a command that follows a wait for the client costs `wake` more.
fn model_waking(capacity: f64, wake: Duration) -> CostModel {
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
        wake,
        capacity,
    }
}

async fn server(capacity: f64) -> Target {
    server_with(model(capacity)).await
}

async fn server_with(model: CostModel) -> Target {
    Target::with_config(ServerConfig {
        cost: Some(model),
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
    for (n, at) in (1..).zip(eight_pipelined_fetches(&target, &queue).await) {
        assert!(close_to(at, FETCH * n), "reply {n} at {at:?}");
    }
}

/// Writes eight FETCHes of `queue` at once; when each reply came, from the write.
async fn eight_pipelined_fetches(target: &Target, queue: &str) -> Vec<Duration> {
    let mut raw = Raw::connect(target, json!({})).await;
    raw.send_raw(format!("FETCH {queue}\r\n").repeat(8).as_bytes())
        .await;
    let started = Instant::now();
    let mut times = Vec::new();
    for _ in 0..8 {
        assert!(matches!(raw.reply().await, common::Reply::Bulk(_)));
        times.push(started.elapsed());
    }
    times
}

#[tokio::test(start_paused = true)]
async fn only_a_command_after_a_wait_pays_the_wake_work() {
    const WAKE: Duration = Duration::from_millis(5);
    // Eight FETCHes written at once: the first follows the wait for the client, the other
    // seven are already in the buffer when their turn comes.
    let target = server_with(model_waking(1.0, WAKE)).await;
    let queue = unique("woken");
    fill(&target, &queue, 8).await;
    for (n, at) in (1..).zip(eight_pipelined_fetches(&target, &queue).await) {
        assert!(close_to(at, FETCH * n + WAKE), "reply {n} at {at:?}");
    }
    // One at a time, every FETCH follows a wait: 15 ms each, and with four connections on a
    // capacity of 1 the wake work is the server's too: 1 / 15 ms = 66 a second, not 100.
    let one = fetches_per_second_on(model_waking(1.0, WAKE), 1, Duration::ZERO).await;
    let four = fetches_per_second_on(model_waking(1.0, WAKE), 4, Duration::ZERO).await;
    assert!((64..=69).contains(&one), "1 connection: {one}");
    assert!((64..=72).contains(&four), "4 connections: {four}");
}

/// FETCHes done in one virtual second by `connections` connections, each one at a time,
/// each client waiting `think` after every reply before it sends the next FETCH.
async fn fetches_per_second(connections: usize, capacity: f64, think: Duration) -> usize {
    fetches_per_second_on(model(capacity), connections, think).await
}

/// [`fetches_per_second`] on a server with `model`.
async fn fetches_per_second_on(model: CostModel, connections: usize, think: Duration) -> usize {
    let target = server_with(model).await;
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
                    tokio::time::sleep(think).await;
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
    let done = fetches_per_second(1, 2.0, Duration::ZERO).await;
    // 10 ms each: 100 in a second, give or take the slack at the edges.
    assert!((98..=102).contains(&done), "{done} fetches");
}

#[tokio::test(start_paused = true)]
async fn connections_add_throughput_up_to_the_capacity() {
    // Capacity 2: one connection does 100 a second (10 ms each, serially), two do 200, and
    // then the server is busy: 2 / 10 ms = 200 a second however many connections ask (each
    // connection may finish one FETCH it started before the second was over).
    let one = fetches_per_second(1, 2.0, Duration::ZERO).await;
    let two = fetches_per_second(2, 2.0, Duration::ZERO).await;
    let sixteen = fetches_per_second(16, 2.0, Duration::ZERO).await;
    assert!(two as f64 > 1.9 * one as f64, "1: {one}, 2: {two}");
    assert!(
        (190..=216).contains(&sixteen),
        "16 connections: {sixteen}, the capacity is 200"
    );
}

#[tokio::test(start_paused = true)]
async fn slow_clients_leave_capacity_to_others() {
    // Each client waits 30 ms after every reply: a FETCH every 40 ms per connection, 25 a
    // second. Four of them ask for 100 a second, half the capacity, and get all of it: a
    // client's own pace does not slow the server down.
    let four = fetches_per_second(4, 2.0, Duration::from_millis(30)).await;
    assert!((94..=104).contains(&four), "{four} fetches, 100 asked for");
}
