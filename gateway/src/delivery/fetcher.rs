//! The fetch engine: the fetch pool (up to `FETCH_CONCURRENCY` tasks,
//! growing while claims are left over, see `pool.rs`), each task owning one
//! Faktory connection, fetching only what the dispatcher claims against open
//! window, with the pipeline depth the dispatcher adapts (deep while every
//! FETCH returns a job, 1 when the queues run dry).

use std::sync::Arc;

use tokio::time::Instant;
use tracing::{debug, warn};

use super::Shared;
use super::clock::unix_now_ms;
use super::faktory_link::FaktoryLink;
use super::pool::{Member, Next};
use crate::job::from_faktory_json;
use crate::metrics::FaktoryOp;

/// Runs one fetch connection of the fetch pool until the pool stops or
/// retires it. No FETCH is written once the dispatcher has stopped fetching
/// (checked under its lock right before writing). A FETCH already written
/// is always read to its end, never cancelled half-way: the jobs it returns
/// are reserved at Faktory and must reach the dispatcher, which releases
/// them at once when fetching has stopped. The read is bounded by the
/// connection's own limit ([`crate::faktory::ConnectOptions::fetch_limit`]).
pub(crate) async fn run(shared: Arc<Shared>, mut member: Member) {
    let wake = shared.dispatcher.lock().fetch_wake();
    let mut link = FaktoryLink::new(None);
    loop {
        let next = member
            .next(&wake, || {
                let claim = shared.dispatcher.lock().claim_fetch()?;
                let more = claim.more;
                Some((claim, more))
            })
            .await;
        let Next::Work(claim) = next else { break };
        let stop = member.stop().clone();
        let conn = match link.get(&shared.faktory, &stop).await {
            Ok(conn) => conn,
            Err(e) => {
                shared.dispatcher.lock().fetch_failed(&claim, 0);
                if !stop.is_cancelled() {
                    warn!(error = %e, "fetch connection failed; retrying");
                    link.failed(&e, &stop).await;
                }
                continue;
            }
        };
        {
            // Shutdown (or Faktory's quiet) may have begun while this task
            // was connecting: no FETCH goes out after that.
            let mut d = shared.dispatcher.lock();
            if !d.is_fetching() {
                d.fetch_failed(&claim, 0);
                continue;
            }
        }
        let started = Instant::now();
        let started_unix_ms = unix_now_ms();
        let mut handed = 0;
        let result = conn
            .fetch_each(&claim.queues, claim.depth, |raw| {
                handed += 1;
                let job = from_faktory_json(raw);
                shared
                    .dispatcher
                    .lock()
                    .fetched_job(&claim, job, started, started_unix_ms);
            })
            .await;
        match result {
            Ok(got) => {
                link.succeeded();
                shared
                    .metrics
                    .observe_faktory(FaktoryOp::Fetch, started.elapsed());
                shared.metrics.jobs_fetched.add(got as u64);
                debug!(queues = ?claim.queues, depth = claim.depth, got, "fetched");
                shared.dispatcher.lock().fetch_done(&claim, got);
            }
            Err(e) => {
                // Jobs handed over before the error are recorded already.
                shared.dispatcher.lock().fetch_failed(&claim, handed);
                warn!(error = %e, queues = ?claim.queues, "fetch failed");
                link.failed(&e, &stop).await;
            }
        }
    }
    link.end().await;
}
