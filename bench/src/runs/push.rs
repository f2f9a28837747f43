//! Push comparisons: `PUSHB`/`PUSH` straight to Faktory (with the same
//! protocol layer the gateway uses, see [`crate::workers::producer`]) against the
//! gateway's `Push` RPC, in sequential batches and as many concurrent
//! single-job callers (which the gateway coalesces). Producers are
//! co-located with Faktory and the gateway (no link). A third side calls
//! `Push` with jobs the gateway refuses in validation: the call's own cost
//! without any Faktory round trip, the floor under the gateway side.

use std::time::Instant;

use faktory_gateway::faktory::Connection;
use faktory_gateway_proto::v1::gateway_client::GatewayClient;
use faktory_gateway_proto::v1::{Job as WireJob, PushRequest, PushStatus};
use tokio::task::JoinSet;
use tonic::transport::Channel;

use crate::Error;
use crate::output::report::PushRow;
use crate::runs::scenario::{JOBTYPE, PushMode, PushScenario, PushSide, Workload};
use crate::setup::gateway_process::GatewayProcess;
use crate::workers::probe::job_args;
use crate::workers::producer::{connect, push_batch, push_one};

/// The queue push scenarios of a run whose queues start with `prefix`
/// fill (nobody consumes it; it is emptied after each scenario).
pub fn push_queue(prefix: &str) -> String {
    format!("{prefix}-push")
}

/// A queue name the gateway refuses in validation (a space is not allowed).
const REFUSED_QUEUE: &str = "refused queue";

/// Largest gRPC message either side of the bench accepts.
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// Connects a `Gateway` client to `url` with large message limits.
///
/// Fails when the connection cannot be made.
pub async fn gateway_client(url: &str) -> Result<GatewayClient<Channel>, Error> {
    let channel = Channel::from_shared(url.to_owned())
        .map_err(|e| Error::Setup(format!("gateway url {url}: {e}")))?
        .connect()
        .await?;
    Ok(GatewayClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE))
}

/// A wire job for the gateway's `Push` (jid left for the gateway to make).
pub fn wire_job(queue: &str, workload: Workload, stamp: u64) -> WireJob {
    let args = serde_json::to_vec(&job_args(workload, stamp)).unwrap_or_default();
    WireJob {
        jobtype: JOBTYPE.to_owned(),
        queue: queue.to_owned(),
        args: args.into(),
        ..WireJob::default()
    }
}

/// Pushes `jobs` through the gateway in one call; returns how many were
/// accepted.
///
/// Fails when the call fails as a whole.
pub async fn push_via_gateway(
    client: &mut GatewayClient<Channel>,
    jobs: Vec<WireJob>,
) -> Result<u64, Error> {
    push_expecting(client, jobs, PushStatus::Accepted).await
}

/// Pushes `jobs` through the gateway in one call; returns how many got
/// `expected`.
async fn push_expecting(
    client: &mut GatewayClient<Channel>,
    jobs: Vec<WireJob>,
    expected: PushStatus,
) -> Result<u64, Error> {
    let response = client.push(PushRequest { jobs }).await?.into_inner();
    Ok(response
        .results
        .iter()
        .filter(|result| result.status == expected as i32)
        .count() as u64)
}

/// Runs one push scenario of `total` jobs; returns its row (ratio filled in
/// later). `gateway` must be running for gateway scenarios.
///
/// Fails when connecting or pushing fails, or a job is not accepted.
pub async fn run_push(
    faktory_url: &str,
    gateway: Option<&GatewayProcess>,
    scenario: PushScenario,
    total: usize,
    queue_prefix: &str,
) -> Result<PushRow, Error> {
    let queue = push_queue(queue_prefix);
    let cpu_before = gateway.and_then(GatewayProcess::sample);
    let started = Instant::now();
    let answered = if scenario.side.via_gateway() {
        let gateway =
            gateway.ok_or_else(|| Error::Setup("gateway push without a gateway".into()))?;
        via_gateway(&gateway.url(), &queue, scenario, total).await?
    } else {
        direct(faktory_url, &queue, scenario.mode, total).await?
    };
    let seconds = started.elapsed().as_secs_f64();
    if answered < total as u64 {
        return Err(Error::Setup(format!(
            "only {answered} of {total} pushed jobs were answered as expected ({})",
            if scenario.side == PushSide::GatewayRefused {
                "invalid"
            } else {
                "accepted"
            }
        )));
    }
    let cpu_after = gateway.and_then(GatewayProcess::sample);
    let gateway_cpu_s_per_100k = match (scenario.side.via_gateway(), cpu_before, cpu_after) {
        (true, Some(before), Some(after)) => {
            Some((after.cpu_seconds - before.cpu_seconds) * 100_000.0 / total as f64)
        }
        _ => None,
    };
    clear_queue(faktory_url, &queue).await;
    Ok(PushRow {
        side: scenario.side,
        mode: scenario.mode,
        jobs_per_s: answered as f64 / seconds,
        ratio_to_direct: None,
        gateway_cpu_s_per_100k,
    })
}

/// Splits `total` jobs into calls of at most `size`.
fn call_sizes(total: usize, size: usize) -> impl Iterator<Item = usize> {
    let size = size.max(1);
    (0..total.div_ceil(size)).map(move |call| size.min(total - call * size))
}

async fn direct(url: &str, queue: &str, mode: PushMode, total: usize) -> Result<u64, Error> {
    match mode {
        PushMode::Batch { size } => {
            let mut connection = connect(url).await?;
            direct_calls(&mut connection, queue, total, size).await
        }
        PushMode::Concurrent { callers } => {
            let mut clients = Vec::with_capacity(callers);
            for _ in 0..callers {
                clients.push(connect(url).await?);
            }
            let mut tasks = JoinSet::new();
            for (caller, mut connection) in clients.into_iter().enumerate() {
                let share = share_of(total, callers, caller);
                let queue = queue.to_owned();
                tasks.spawn(async move { direct_calls(&mut connection, &queue, share, 1).await });
            }
            sum_tasks(tasks).await
        }
    }
}

async fn direct_calls(
    connection: &mut Connection,
    queue: &str,
    total: usize,
    size: usize,
) -> Result<u64, Error> {
    let mut accepted = 0;
    for count in call_sizes(total, size) {
        if count == 1 {
            push_one(connection, queue, Workload::Noop, 0).await?;
            accepted += 1;
        } else {
            accepted += push_batch(connection, queue, Workload::Noop, count).await?;
        }
    }
    Ok(accepted)
}

async fn via_gateway(
    url: &str,
    queue: &str,
    scenario: PushScenario,
    total: usize,
) -> Result<u64, Error> {
    let client = gateway_client(url).await?;
    let side = scenario.side;
    match scenario.mode {
        PushMode::Batch { size } => {
            gateway_calls(client, queue.to_owned(), side, total, size).await
        }
        PushMode::Concurrent { callers } => {
            // One HTTP/2 connection shared by all callers, as a gRPC client
            // in one process would have. One call first, so the client knows
            // the server's settings before the burst. A cut connection is
            // reported as a failed scenario rather than hidden (the gateway's
            // explicit HTTP/2 windows keep h2's small-frame budget large
            // enough for hundreds of concurrent calls).
            let mut answered = gateway_calls(client.clone(), queue.to_owned(), side, 1, 1).await?;
            let rest = total.saturating_sub(1);
            let mut tasks = JoinSet::new();
            for caller in 0..callers {
                let share = share_of(rest, callers, caller);
                tasks.spawn(gateway_calls(
                    client.clone(),
                    queue.to_owned(),
                    side,
                    share,
                    1,
                ));
            }
            answered += sum_tasks(tasks).await?;
            Ok(answered)
        }
    }
}

/// Sequential calls of `size` jobs; returns how many jobs got the answer
/// `side` expects (accepted, or invalid for [`PushSide::GatewayRefused`]).
async fn gateway_calls(
    mut client: GatewayClient<Channel>,
    queue: String,
    side: PushSide,
    total: usize,
    size: usize,
) -> Result<u64, Error> {
    let (queue, expected) = if side == PushSide::GatewayRefused {
        (REFUSED_QUEUE, PushStatus::Invalid)
    } else {
        (queue.as_str(), PushStatus::Accepted)
    };
    let mut answered = 0;
    for count in call_sizes(total, size) {
        let jobs = (0..count)
            .map(|_| wire_job(queue, Workload::Noop, 0))
            .collect();
        answered += push_expecting(&mut client, jobs, expected).await?;
    }
    Ok(answered)
}

fn share_of(total: usize, callers: usize, caller: usize) -> usize {
    total / callers + usize::from(caller < total % callers)
}

async fn sum_tasks(mut tasks: JoinSet<Result<u64, Error>>) -> Result<u64, Error> {
    let mut accepted = 0;
    while let Some(joined) = tasks.join_next().await {
        accepted += joined.map_err(|e| Error::Setup(format!("push task: {e}")))??;
    }
    Ok(accepted)
}

/// Best effort: empties the push queue so pushed jobs do not pile up in
/// the server between scenarios (`QUEUE REMOVE` of the run's own queue).
async fn clear_queue(url: &str, queue: &str) {
    if let Ok(mut client) = faktory::Client::connect_to(url).await {
        let _ = client.queue_remove(&[queue]).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_sizes_cover_the_total() {
        assert_eq!(call_sizes(250, 100).collect::<Vec<_>>(), [100, 100, 50]);
        assert_eq!(call_sizes(3, 1).collect::<Vec<_>>(), [1, 1, 1]);
        assert_eq!((0..7).map(|c| share_of(100, 7, c)).sum::<usize>(), 100);
    }
}
