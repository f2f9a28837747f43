//! Bad input: garbage, invalid JSON, odd bytes and over-long lines get `-ERR` (or, for an
//! over-long line, `-ERR` and a closed connection), never a panic or a hang, and the server
//! keeps serving.

mod common;

use std::time::Duration;

use common::{Raw, Reply, Target};
use faktory_test_server::ServerConfig;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;

/// Verbs (and near misses) to prefix random arguments with.
const VERBS: &[&str] = &[
    "PUSH ", "PUSHB ", "ACK ", "FAIL ", "BEAT ", "FETCH ", "INFO", "FLUSH", "BATCH ", "TRACK ",
    "QUEUE ", "MUTATE ", "HELLO ", "push ", "", " ", "PUSH", "FAIL", "ACK",
];

fn quick_fetch() -> ServerConfig {
    // FETCH of a random queue would otherwise block 2 s per case.
    ServerConfig {
        fetch_block: Duration::from_millis(5),
        ..ServerConfig::default()
    }
}

#[test]
fn random_lines_always_get_a_reply() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let target = rt.block_on(Target::with_config(quick_fetch()));
    let raw = std::cell::RefCell::new(rt.block_on(Raw::connect(&target, json!({}))));
    let arg = prop_oneof![
        proptest::collection::vec(any::<u8>().prop_filter("one line", |b| *b != b'\n'), 0..200),
        "[\\[\\]{}\":,0-9a-z_\\- ]{0,80}".prop_map(String::into_bytes),
        "\\{\"jid\":\"[a-z0-9]{0,12}\",\"jobtype\":\"[a-z]{0,3}\",\"args\":[\\[\\]{}0-9\"]{0,6}(,\"(retry|reserve_for|at|queue|custom|failure)\":[0-9a-z\"\\[\\]{}-]{0,8})?\\}"
            .prop_map(String::into_bytes),
    ];
    let strategy = (0..VERBS.len(), arg);
    let mut runner = TestRunner::new(Config {
        cases: 400,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&strategy, |(verb, arg)| {
            let mut line = VERBS[verb].as_bytes().to_vec();
            line.extend_from_slice(&arg);
            line.extend_from_slice(b"\r\n");
            let mut raw = raw.borrow_mut();
            let reply = rt.block_on(async {
                raw.send_raw(&line).await;
                raw.reply().await
            });
            prop_assert!(
                !matches!(reply, Reply::Closed),
                "connection closed after {:?}",
                String::from_utf8_lossy(&line)
            );
            Ok(())
        })
        .unwrap();
    // Still healthy, and a fresh connection works too.
    let mut raw = raw.into_inner();
    rt.block_on(async {
        raw.cmd("INFO").await.json();
        let mut other = Raw::connect(&target, json!({})).await;
        other.cmd("INFO").await.json();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_and_odd_lines() {
    let target = Target::with_config(quick_fetch()).await;
    let mut raw = Raw::connect(&target, json!({})).await;
    raw.send_raw(
        b"\r\n\n \r\nFETCH \xff\xfe\r\nPUSH {\"jid\":\"\xff\xff\xff\xff\xff\xff\xff\xff\"}\r\n",
    )
    .await;
    raw.reply().await.assert_err("unknown command");
    raw.reply().await.assert_err("unknown command");
    raw.reply().await.assert_err("unknown command");
    assert_eq!(raw.reply().await, Reply::Null);
    raw.reply().await.assert_err("invalid JSON");
    // Deeply nested JSON is refused by the parser's recursion limit, not by a stack overflow.
    let deep = format!("PUSH {}{}", "[".repeat(100_000), "]".repeat(100_000));
    raw.cmd(&deep).await.assert_err("invalid JSON");
    raw.cmd("INFO").await.json();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn line_over_16_mib_is_refused_and_closed() {
    let target = Target::test_server().await;
    let mut raw = Raw::connect(&target, json!({})).await;
    let mut huge = b"PUSHB [".to_vec();
    huge.resize(17 * 1024 * 1024, b' ');
    // The server may stop reading once it has refused the line; a failed write is fine.
    let writer = raw.send_raw(&huge);
    let _ = tokio::time::timeout(Duration::from_secs(30), writer).await;
    raw.reply().await.assert_err("command line longer than");
    assert_eq!(raw.reply().await, Reply::Closed);
    let mut other = Raw::connect(&target, json!({})).await;
    other.cmd("INFO").await.json();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_valid_pushb_is_fine() {
    let target = Target::test_server().await;
    let mut raw = Raw::connect(&target, json!({})).await;
    let jobs: Vec<_> = (0..2000)
        .map(|i| common::job("big", json!({"args": ["x".repeat(1000), i]})))
        .collect();
    let reply = raw.cmd(&format!("PUSHB {}", json!(jobs))).await;
    assert_eq!(reply, Reply::Bulk(b"{}".to_vec()));
    assert_eq!(target.handle().unwrap().queue_len("big"), 2000);
}
