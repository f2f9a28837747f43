//! Pushing the run's jobs through the gateway's `Push`, by several
//! concurrent producers, each retrying whatever was not accepted (the call
//! failed, or a job came back UNAVAILABLE) until every job is in.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use faktory_gateway_proto::v1::gateway_client::GatewayClient;
use faktory_gateway_proto::v1::{Job, PushRequest, PushStatus};
use tonic::transport::Endpoint;

use crate::plan::Plan;

/// Jobs per `Push` call.
const CALL_SIZE: usize = 500;
/// Wait before resending what was not accepted.
const RETRY_DELAY: Duration = Duration::from_millis(100);

/// What the producers went through.
#[derive(Debug, Default)]
pub(crate) struct PushStats {
    /// Jobs Faktory took.
    pub(crate) accepted: AtomicU64,
    /// Calls that failed as a whole (gateway down, stream cut).
    pub(crate) failed_calls: AtomicU64,
    /// Jobs answered UNAVAILABLE (resent).
    pub(crate) unavailable: AtomicU64,
    /// Jobs answered REJECTED on a resend: Faktory already held them (a
    /// retried push whose first answer was lost).
    pub(crate) rejected: AtomicU64,
    /// When each jid was answered ACCEPTED (or REJECTED as already held).
    pub(crate) accepted_at: Mutex<HashMap<String, Instant>>,
    /// When each jid that had to be sent again last had its call fail or
    /// was answered UNAVAILABLE. Faktory may hold such a job all the same
    /// (its PUSHB went out, the reply was lost), and then the resend pushes
    /// it a second time.
    pub(crate) resent_at: Mutex<HashMap<String, Instant>>,
}

/// Pushes jobs `0..jobs` of `plan` with `producers` concurrent callers,
/// producer `p` to the gateway at `urls[p % urls.len()]`; returns when all
/// are in.
pub(crate) async fn push_all(
    urls: Vec<String>,
    plan: Plan,
    jobs: usize,
    producers: usize,
    stats: Arc<PushStats>,
) {
    let channels: Vec<_> = urls
        .into_iter()
        .map(|url| {
            Endpoint::from_shared(url)
                .expect("gateway url")
                .connect_timeout(Duration::from_secs(1))
                .connect_lazy()
        })
        .collect();
    let tasks: Vec<_> = (0..producers)
        .map(|p| {
            let client = GatewayClient::new(channels[p % channels.len()].clone());
            let stats = stats.clone();
            let plan = plan.clone();
            let mine: Vec<usize> = (p..jobs).step_by(producers).collect();
            tokio::spawn(async move {
                let mut client = client;
                for chunk in mine.chunks(CALL_SIZE) {
                    let batch = chunk.iter().map(|&i| plan.job(i)).collect();
                    push_until_in(&mut client, batch, &stats).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("producer task");
    }
}

async fn push_until_in(
    client: &mut GatewayClient<tonic::transport::Channel>,
    mut batch: Vec<Job>,
    stats: &PushStats,
) {
    let mut resend = false;
    while !batch.is_empty() {
        if resend {
            tokio::time::sleep(RETRY_DELAY).await;
        }
        resend = true;
        let response = match client
            .push(PushRequest {
                jobs: batch.clone(),
            })
            .await
        {
            Ok(response) => response.into_inner(),
            Err(_) => {
                stats.failed_calls.fetch_add(1, Ordering::Relaxed);
                let now = Instant::now();
                let mut resent_at = stats.resent_at.lock();
                for job in &batch {
                    resent_at.insert(job.jid.clone(), now);
                }
                continue;
            }
        };
        let mut again = Vec::new();
        let now = Instant::now();
        let mut accepted_at = stats.accepted_at.lock();
        for (job, result) in batch.into_iter().zip(response.results) {
            match result.status() {
                PushStatus::Accepted => {
                    stats.accepted.fetch_add(1, Ordering::Relaxed);
                    accepted_at.insert(job.jid, now);
                }
                PushStatus::Rejected => {
                    tracing::warn!(jid = %job.jid, reason = %result.reason, "push rejected");
                    stats.rejected.fetch_add(1, Ordering::Relaxed);
                    accepted_at.entry(job.jid).or_insert(now);
                }
                PushStatus::Unavailable => {
                    stats.unavailable.fetch_add(1, Ordering::Relaxed);
                    stats.resent_at.lock().insert(job.jid.clone(), now);
                    again.push(job);
                }
                other => panic!("job {} answered {other:?}: {}", job.jid, result.reason),
            }
        }
        drop(accepted_at);
        batch = again;
    }
}
