//! Unit tests of the submit path against a fake Faktory backend.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;
use faktory_gateway_proto::v1::Job;
use futures::future::{BoxFuture, join_all};
use parking_lot::Mutex;

use super::producer_pool::PushConnection;
use super::*;
use crate::faktory::{Error, ServerError};

/// A fake Faktory: records every PUSHB, refuses jids starting with
/// `refuse-`, refuses a whole PUSHB holding `poison`, and can be "down".
#[derive(Default)]
struct Fake {
    down: AtomicBool,
    connects: AtomicUsize,
    pushb_sizes: Mutex<Vec<usize>>,
    single_pushes: AtomicUsize,
    latency: Duration,
}

struct FakeConn(Arc<Fake>);

impl PushBackend for Arc<Fake> {
    fn connect(&self) -> BoxFuture<'_, Result<Box<dyn PushConnection>, Error>> {
        Box::pin(async move {
            self.connects.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                return Err(Error::Io(std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    "connection refused",
                )));
            }
            Ok(Box::new(FakeConn(self.clone())) as Box<dyn PushConnection>)
        })
    }
}

impl PushConnection for FakeConn {
    fn push_bulk<'a>(
        &'a mut self,
        body: &'a [u8],
    ) -> BoxFuture<'a, Result<HashMap<String, String>, Error>> {
        Box::pin(async move {
            tokio::time::sleep(self.0.latency).await;
            if self.0.down.load(Ordering::SeqCst) {
                return Err(Error::Closed);
            }
            let jobs: Vec<serde_json::Value> = serde_json::from_slice(body).expect("array");
            self.0.pushb_sizes.lock().push(jobs.len());
            if body.windows(6).any(|w| w == b"poison") {
                return Err(Error::Server(ServerError {
                    kind: "ERR".into(),
                    message: "invalid JSON".into(),
                }));
            }
            Ok(jobs
                .iter()
                .filter_map(|j| j["jid"].as_str())
                .filter(|jid| jid.starts_with("refuse-"))
                .map(|jid| (jid.to_owned(), "jobs must be nice".to_owned()))
                .collect())
        })
    }

    fn push<'a>(&'a mut self, job: &'a [u8]) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            self.0.single_pushes.fetch_add(1, Ordering::SeqCst);
            if job.windows(6).any(|w| w == b"poison") {
                return Err(Error::Server(ServerError {
                    kind: "ERR".into(),
                    message: "poisoned".into(),
                }));
            }
            Ok(())
        })
    }

    fn is_broken(&self) -> bool {
        false
    }

    fn end(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

fn settings() -> SubmitSettings {
    SubmitSettings {
        max_jobs_per_push: 1000,
        max_job_bytes: 1024,
        batch_max_size: 100,
        batch_max_bytes: 64 * 1024,
        batch_max_delay: Duration::from_millis(5),
        batch_auto_enabled: true,
        producer_connections: 4,
    }
}

fn submitter(fake: &Arc<Fake>, settings: SubmitSettings) -> Submitter {
    Submitter::with_backend(settings, Arc::new(fake.clone()), Metrics::new())
}

fn job(jid: &str) -> Job {
    Job {
        jid: jid.into(),
        jobtype: "work".into(),
        args: Bytes::from_static(b"[1]"),
        ..Job::default()
    }
}

fn request(jobs: Vec<Job>) -> PushRequest {
    PushRequest { jobs }
}

fn statuses(response: &PushResponse) -> Vec<PushStatus> {
    response.results.iter().map(|r| r.status()).collect()
}

#[tokio::test]
async fn each_job_gets_its_own_answer_in_order() {
    let fake = Arc::new(Fake::default());
    let s = submitter(&fake, settings());
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
            job("refuse-001"),
            huge,
            job(""),
        ]))
        .await
        .unwrap();
    use PushStatus::*;
    assert_eq!(
        statuses(&response),
        [Accepted, Invalid, Invalid, Rejected, Invalid, Accepted]
    );
    let r = &response.results;
    assert_eq!(r[0].jid, "good-0001");
    assert_eq!(
        (r[1].field.as_str(), r[1].jid.as_str()),
        ("args", "bad-args-1")
    );
    assert_eq!(r[2].field, "jobtype");
    assert_eq!(r[3].reason, "jobs must be nice");
    assert_eq!(r[4].field, "args");
    assert!(
        r[4].reason.contains("limit of 1024 bytes"),
        "{}",
        r[4].reason
    );
    assert_eq!(r[5].jid.len(), 24, "generated jid");
    // Only the three valid jobs went to Faktory, in one PUSHB.
    assert_eq!(*fake.pushb_sizes.lock(), vec![3]);
}

#[tokio::test]
async fn empty_and_oversize_calls_are_refused_whole() {
    let fake = Arc::new(Fake::default());
    let s = submitter(
        &fake,
        SubmitSettings {
            max_jobs_per_push: 3,
            ..settings()
        },
    );
    let empty = s.push(request(vec![])).await.unwrap_err();
    assert_eq!(empty.code(), tonic::Code::InvalidArgument);
    let many = s
        .push(request(
            (0..4).map(|i| job(&format!("job-{i:06}"))).collect(),
        ))
        .await
        .unwrap_err();
    assert_eq!(many.code(), tonic::Code::InvalidArgument);
    assert!(
        many.message().contains("limit of 3 jobs"),
        "{}",
        many.message()
    );
    assert_eq!(fake.connects.load(Ordering::SeqCst), 0, "nothing pushed");
}

#[tokio::test(start_paused = true)]
async fn concurrent_small_calls_share_pushbs() {
    let fake = Arc::new(Fake {
        latency: Duration::from_millis(1),
        ..Fake::default()
    });
    let s = submitter(&fake, settings());
    let calls = (0..300).map(|i| {
        let s = s.clone();
        async move { s.push(request(vec![job(&format!("job-{i:06}"))])).await }
    });
    for response in join_all(calls).await {
        assert_eq!(statuses(&response.unwrap()), [PushStatus::Accepted]);
    }
    let sizes = fake.pushb_sizes.lock().clone();
    assert_eq!(sizes.iter().sum::<usize>(), 300);
    assert!(
        sizes.len() <= 10,
        "300 calls took {} PUSHBs: {sizes:?}",
        sizes.len()
    );
    assert!(sizes.iter().all(|&n| n <= 100));
}

#[tokio::test(start_paused = true)]
async fn without_coalescing_each_call_is_its_own_pushb() {
    let fake = Arc::new(Fake::default());
    let s = submitter(
        &fake,
        SubmitSettings {
            batch_auto_enabled: false,
            ..settings()
        },
    );
    let calls = (0..20).map(|i| {
        let s = s.clone();
        async move { s.push(request(vec![job(&format!("job-{i:06}"))])).await }
    });
    join_all(calls).await;
    assert_eq!(*fake.pushb_sizes.lock(), vec![1; 20]);
}

#[tokio::test]
async fn large_calls_are_split_by_count_and_bytes() {
    let fake = Arc::new(Fake::default());
    let s = submitter(&fake, settings());
    let jobs = (0..250).map(|i| job(&format!("job-{i:06}"))).collect();
    let response = s.push(request(jobs)).await.unwrap();
    assert!(
        statuses(&response)
            .iter()
            .all(|&st| st == PushStatus::Accepted)
    );
    let mut sizes = fake.pushb_sizes.lock().clone();
    sizes.sort_unstable();
    assert_eq!(sizes, vec![50, 100, 100]);

    let fake = Arc::new(Fake::default());
    let s = submitter(
        &fake,
        SubmitSettings {
            batch_max_bytes: 2000,
            ..settings()
        },
    );
    let jobs: Vec<Job> = (0..20).map(|i| job(&format!("job-{i:06}"))).collect();
    let one = validate::validate(
        jobs[0].clone(),
        &Limits {
            max_job_bytes: 1024,
        },
    )
    .unwrap()
    .json
    .len()
        + 1;
    s.push(request(jobs)).await.unwrap();
    let sizes = fake.pushb_sizes.lock().clone();
    assert_eq!(sizes.iter().sum::<usize>(), 20);
    assert!(
        sizes.iter().all(|&n| n * one <= 2000),
        "{sizes:?} of {one} bytes"
    );
}

#[tokio::test(start_paused = true)]
async fn faktory_down_answers_unavailable_then_recovers() {
    let fake = Arc::new(Fake::default());
    fake.down.store(true, Ordering::SeqCst);
    let s = submitter(
        &fake,
        SubmitSettings {
            producer_connections: 1,
            ..settings()
        },
    );
    let response = s.push(request(vec![job("job-000001")])).await.unwrap();
    assert_eq!(statuses(&response), [PushStatus::Unavailable]);
    assert!(
        response.results[0].reason.contains("unreachable"),
        "{}",
        response.results[0].reason
    );
    // Backing off: answered at once without another connect.
    let response = s.push(request(vec![job("job-000002")])).await.unwrap();
    assert_eq!(statuses(&response), [PushStatus::Unavailable]);
    assert_eq!(fake.connects.load(Ordering::SeqCst), 1);

    fake.down.store(false, Ordering::SeqCst);
    let mut accepted = false;
    for _ in 0..200 {
        let response = s.push(request(vec![job("job-000003")])).await.unwrap();
        if statuses(&response) == [PushStatus::Accepted] {
            accepted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(accepted, "never recovered");
}

#[tokio::test]
async fn a_refused_pushb_is_retried_job_by_job() {
    let fake = Arc::new(Fake::default());
    let s = submitter(&fake, settings());
    let mut poison = job("poison-001");
    poison.custom = Bytes::from_static(br#"{"x":"poison"}"#);
    let response = s
        .push(request(vec![job("good-00001"), poison, job("good-00002")]))
        .await
        .unwrap();
    use PushStatus::*;
    assert_eq!(statuses(&response), [Accepted, Rejected, Accepted]);
    assert!(response.results[1].reason.contains("poisoned"));
    assert_eq!(fake.single_pushes.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn close_waits_for_the_pool() {
    let fake = Arc::new(Fake::default());
    let s = submitter(&fake, settings());
    s.push(request(vec![job("job-000001")])).await.unwrap();
    s.close().await;
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
