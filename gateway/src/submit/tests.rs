//! Unit tests of the submit path against the project's Faktory test server.
//!
//! PUSHBs are counted with the server's command counter: producer connections
//! send nothing but `PUSHB` (and `PUSH` when a whole `PUSHB` is refused) until
//! they close.

use bytes::Bytes;
use clap::Parser;
use faktory_gateway_proto::v1::Job;
use faktory_test_server::{ServerHandle, TestServer};
use futures::future::join_all;

use super::*;

/// A test server and a submitter for it, with the gateway's default settings
/// changed by `flags`.
async fn start(flags: &[&str]) -> (TestServer, ServerHandle, Submitter) {
    let server = TestServer::start().await.expect("test server starts");
    let url = server.url();
    let mut args = vec!["faktory-gateway", "--faktory-url", &url];
    args.extend_from_slice(flags);
    let config = Config::try_parse_from(args).expect("valid flags");
    let submitter = Submitter::new(&config, Metrics::new());
    let handle = server.handle();
    (server, handle, submitter)
}

fn job(jid: &str) -> Job {
    Job {
        jid: jid.into(),
        jobtype: "work".into(),
        args: Bytes::from_static(b"[1]"),
        ..Job::default()
    }
}

/// A job that passes validation but that Faktory cannot decode: Go (and the
/// test server) refuse a number out of float64's range, so a `PUSHB` holding
/// it is refused whole with `invalid JSON`.
fn undecodable(jid: &str) -> Job {
    Job {
        args: Bytes::from_static(b"[1e400]"),
        ..job(jid)
    }
}

fn jobs(tag: &str, n: usize) -> Vec<Job> {
    (0..n).map(|i| job(&format!("{tag}-{i:06}"))).collect()
}

fn request(jobs: Vec<Job>) -> PushRequest {
    PushRequest { jobs }
}

fn statuses(response: &PushResponse) -> Vec<PushStatus> {
    response.results.iter().map(|r| r.status()).collect()
}

/// Commands the server has executed: the PUSHBs (and PUSHes) sent so far.
fn commands(handle: &ServerHandle) -> u64 {
    handle.counters().commands
}

/// Sends `calls` one-job calls at once; every one must be accepted.
async fn concurrent_single_job_calls(s: &Submitter, calls: usize) {
    let pushes = (0..calls).map(|i| {
        let s = s.clone();
        async move { s.push(request(vec![job(&format!("job-{i:06}"))])).await }
    });
    for response in join_all(pushes).await {
        assert_eq!(statuses(&response.unwrap()), [PushStatus::Accepted]);
    }
}

#[tokio::test]
async fn each_job_gets_its_own_answer_in_order() {
    let (server, handle, s) = start(&["--max-job-bytes", "1024"]).await;
    let mut bad_args = job("bad-args-1");
    bad_args.args = Bytes::from_static(b"[1,");
    let mut no_type = job("no-type-01");
    no_type.jobtype.clear();
    let mut huge = job("huge-job-1");
    huge.args = Bytes::from(format!("[\"{}\"]", "x".repeat(2000)));
    let response = s
        .push(request(vec![
            job("good-0001"),
            bad_args,
            no_type,
            huge,
            job(""),
        ]))
        .await
        .unwrap();
    use PushStatus::*;
    assert_eq!(
        statuses(&response),
        [Accepted, Invalid, Invalid, Invalid, Accepted]
    );
    let r = &response.results;
    assert_eq!(r[0].jid, "good-0001");
    assert_eq!(
        (r[1].field.as_str(), r[1].jid.as_str()),
        ("args", "bad-args-1")
    );
    assert_eq!(r[2].field, "jobtype");
    assert_eq!(r[3].field, "args");
    assert!(
        r[3].reason.contains("limit of 1024 bytes"),
        "{}",
        r[3].reason
    );
    assert_eq!(r[4].jid.len(), 24, "generated jid");
    // Only the two valid jobs went to Faktory, in one PUSHB.
    assert_eq!(commands(&handle), 1);
    assert_eq!(handle.total_queued(), 2);
    assert!(handle.job("good-0001").is_some());
    assert!(
        handle.job(&r[4].jid).is_some(),
        "stored under its generated jid"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn empty_and_oversize_calls_are_refused_whole() {
    let (server, handle, s) = start(&["--max-jobs-per-push", "3"]).await;
    let empty = s.push(request(vec![])).await.unwrap_err();
    assert_eq!(empty.code(), tonic::Code::InvalidArgument);
    let many = s.push(request(jobs("job", 4))).await.unwrap_err();
    assert_eq!(many.code(), tonic::Code::InvalidArgument);
    assert!(
        many.message().contains("limit of 3 jobs"),
        "{}",
        many.message()
    );
    let counters = handle.counters();
    assert_eq!(
        (counters.connections_accepted, counters.pushed),
        (0, 0),
        "nothing pushed"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn concurrent_small_calls_share_pushbs() {
    let (server, handle, s) = start(&[]).await;
    concurrent_single_job_calls(&s, 300).await;
    assert_eq!(handle.total_queued(), 300);
    let pushbs = commands(&handle);
    // At most 100 jobs per PUSHB, so at least 3.
    assert!((3..=10).contains(&pushbs), "300 calls took {pushbs} PUSHBs");
    server.shutdown().await;
}

#[tokio::test]
async fn without_coalescing_each_call_is_its_own_pushb() {
    let (server, handle, s) = start(&["--batch-auto-enabled", "false"]).await;
    concurrent_single_job_calls(&s, 20).await;
    assert_eq!(handle.total_queued(), 20);
    assert_eq!(commands(&handle), 20);
    server.shutdown().await;
}

#[tokio::test]
async fn large_calls_are_split_by_count() {
    let flags = ["--batch-max-size", "100", "--producer-connections", "1"];
    let (server, handle, s) = start(&flags).await;
    let response = s.push(request(jobs("job", 250))).await.unwrap();
    assert!(
        statuses(&response)
            .iter()
            .all(|&st| st == PushStatus::Accepted)
    );
    assert_eq!(handle.total_queued(), 250);
    assert_eq!(commands(&handle), 3, "100 + 100 + 50");
    server.shutdown().await;
}

#[tokio::test]
async fn a_full_batch_spreads_over_the_producer_connections() {
    let (server, handle, s) = start(&["--producer-connections", "4"]).await;
    let response = s.push(request(jobs("job", 100))).await.unwrap();
    assert_eq!(statuses(&response), [PushStatus::Accepted; 100]);
    assert_eq!(handle.total_queued(), 100);
    assert_eq!(commands(&handle), 4, "four PUSHBs of 25");
    // Never below 25 jobs a PUSHB, never above the batch limit.
    assert_eq!(spread_size(100, 100, 16), 25);
    assert_eq!(spread_size(1000, 100, 4), 100);
    assert_eq!(spread_size(60, 50, 4), 25);
    assert_eq!(spread_size(10, 100, 4), 100, "a shared call is merged");
    server.shutdown().await;
}

#[tokio::test]
async fn without_coalescing_a_full_batch_is_one_pushb() {
    let flags = [
        "--producer-connections",
        "4",
        "--batch-auto-enabled",
        "false",
    ];
    let (server, handle, s) = start(&flags).await;
    s.push(request(jobs("job", 100))).await.unwrap();
    assert_eq!(commands(&handle), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn large_calls_are_split_by_bytes() {
    const MAX_BYTES: usize = 1024;
    let (server, handle, s) = start(&["--batch-max-bytes", &MAX_BYTES.to_string()]).await;
    let mut jobs = jobs("job", 20);
    for job in &mut jobs {
        job.args = Bytes::from(format!("[\"{}\"]", "x".repeat(100)));
    }
    // Every job has the same size; a PUSHB counts one separator per job.
    let limits = Limits {
        max_job_bytes: MAX_BYTES,
    };
    let one = validate::validate(jobs[0].clone(), &limits)
        .unwrap()
        .json
        .len()
        + 1;
    let per_pushb = MAX_BYTES / one;
    assert!(per_pushb < 20, "jobs too small to split: {one} bytes");
    let response = s.push(request(jobs)).await.unwrap();
    assert_eq!(statuses(&response), [PushStatus::Accepted; 20]);
    assert_eq!(handle.total_queued(), 20);
    assert_eq!(commands(&handle), 20usize.div_ceil(per_pushb) as u64);
    server.shutdown().await;
}

#[tokio::test]
async fn a_refused_pushb_is_retried_job_by_job() {
    let (server, handle, s) = start(&[]).await;
    let response = s
        .push(request(vec![
            job("good-00001"),
            undecodable("bad-000001"),
            job("good-00002"),
        ]))
        .await
        .unwrap();
    use PushStatus::*;
    assert_eq!(statuses(&response), [Accepted, Rejected, Accepted]);
    let reason = &response.results[1].reason;
    assert!(reason.contains("invalid JSON"), "{reason}");
    // One refused PUSHB, then one PUSH per job.
    assert_eq!(commands(&handle), 4);
    assert!(handle.job("good-00001").is_some() && handle.job("good-00002").is_some());
    assert!(handle.job("bad-000001").is_none());

    // A one-job PUSHB refused whole is that job's rejection; no retry.
    let response = s
        .push(request(vec![undecodable("bad-000002")]))
        .await
        .unwrap();
    assert_eq!(statuses(&response), [Rejected]);
    assert_eq!(commands(&handle), 5);
    assert_eq!(handle.total_queued(), 2);
    server.shutdown().await;
}

#[tokio::test]
async fn faktory_down_answers_unavailable_then_recovers() {
    let (server, handle, s) = start(&["--producer-connections", "1"]).await;
    server.stop_listener().await;
    // Frozen time: the backoff after the failed connect cannot run out
    // before the second call.
    tokio::time::pause();
    let response = s.push(request(vec![job("job-000001")])).await.unwrap();
    assert_eq!(statuses(&response), [PushStatus::Unavailable]);
    let reason = &response.results[0].reason;
    assert!(reason.contains("unreachable"), "{reason}");

    // Backing off: answered at once, without trying Faktory (now back).
    server.restart_listener().await;
    let response = s.push(request(vec![job("job-000002")])).await.unwrap();
    assert_eq!(statuses(&response), [PushStatus::Unavailable]);
    assert_eq!(handle.counters().connections_accepted, 0);

    // Past the longest backoff, the next call connects.
    tokio::time::advance(Duration::from_secs(10)).await;
    tokio::time::resume();
    let response = s.push(request(vec![job("job-000003")])).await.unwrap();
    assert_eq!(statuses(&response), [PushStatus::Accepted]);
    assert_eq!(handle.counters().connections_accepted, 1);
    assert_eq!(handle.total_queued(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn a_lost_connection_answers_unavailable_then_reconnects() {
    let (server, handle, s) = start(&["--producer-connections", "1"]).await;
    let response = s.push(request(vec![job("job-000001")])).await.unwrap();
    assert_eq!(statuses(&response), [PushStatus::Accepted]);

    // Faktory goes away under the open connection: the PUSHB is not
    // confirmed, so the job is UNAVAILABLE (not resent).
    server.stop_listener().await;
    let response = s.push(request(vec![job("job-000002")])).await.unwrap();
    assert_eq!(statuses(&response), [PushStatus::Unavailable]);

    // A lost connection is reopened at once, without backoff.
    server.restart_listener().await;
    let response = s.push(request(vec![job("job-000003")])).await.unwrap();
    assert_eq!(statuses(&response), [PushStatus::Accepted]);
    assert_eq!(handle.counters().connections_accepted, 2);
    assert!(handle.job("job-000002").is_none());
    assert_eq!(handle.total_queued(), 2);
    server.shutdown().await;
}

#[tokio::test]
async fn close_waits_for_the_pool() {
    let (server, handle, s) = start(&[]).await;
    s.push(request(vec![job("job-000001")])).await.unwrap();
    s.close().await;
    assert_eq!(handle.total_queued(), 1);
    server.shutdown().await;
}

#[test]
fn split_respects_both_limits() {
    let jobs = |n: usize, size: usize| -> Vec<ValidJob> {
        (0..n)
            .map(|i| ValidJob {
                jid: i.to_string(),
                json: vec![b'x'; size],
            })
            .collect()
    };
    let sizes = |chunks: Vec<Vec<ValidJob>>| chunks.iter().map(Vec::len).collect::<Vec<_>>();
    assert_eq!(sizes(split(jobs(7, 9), 3, 1000)), [3, 3, 1]);
    assert_eq!(sizes(split(jobs(7, 9), 100, 30)), [3, 3, 1]);
    assert_eq!(
        sizes(split(jobs(2, 100), 100, 30)),
        [1, 1],
        "one big job still goes"
    );
}
