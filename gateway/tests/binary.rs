//! Tests of the `faktory-gateway` binary itself: it starts, serves, and on
//! SIGTERM drains and exits 0; a bad option value exits non-zero naming the
//! variable.

mod common;

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const BINARY: &str = env!("CARGO_BIN_EXE_faktory-gateway");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_zero() {
    let server = common::faktory().await;
    let mut child = Command::new(BINARY)
        .args([
            "--faktory-url",
            &server.url(),
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "off",
            "--shutdown-grace-ms",
            "1000",
        ])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn faktory-gateway");
    // The log line says the server is up (and the signal handlers with it).
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    loop {
        let line = lines
            .next_line()
            .await
            .expect("read stdout")
            .expect("gateway exited before listening");
        if line.contains("gateway listening") {
            break;
        }
    }
    let pid = child.id().expect("running").to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("run kill");
    assert!(killed.success());
    let mut saw_stop = false;
    while let Some(line) = lines.next_line().await.expect("read stdout") {
        saw_stop |= line.contains("gateway stopped");
    }
    let status = child.wait().await.expect("wait for the gateway");
    assert!(status.success(), "exit status {status}");
    assert!(saw_stop, "the gateway logged its clean stop");
    server.shutdown().await;
}

#[tokio::test]
async fn bad_option_values_exit_nonzero_naming_the_variable() {
    let output = Command::new(BINARY)
        .env("FETCH_CONCURRENCY", "lots")
        .output()
        .await
        .expect("run faktory-gateway");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("FETCH_CONCURRENCY"), "{stderr}");
}
