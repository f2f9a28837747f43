//! Relay connections: the settle pool (up to `--ack-connections` tasks,
//! growing while settlements wait, see `pool.rs`), each task owning one
//! Faktory connection, sending queued settlements in pipelined batches:
//! release copies with one `PUSHB`, then `ACK`s, then `FAIL`s. A batch that
//! could not be sent goes back to the front of the queue and is retried on a
//! fresh connection; nothing is dropped.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, warn};

use super::Shared;
use super::faktory_link::FaktoryLink;
use super::pool::{Member, Next};
use super::settle::{Answered, ERRTYPE_RELEASE_FAILED, Settle, SettleKind};
use crate::faktory::{Connection, Error, FailCommand};
use crate::job::release_copy_json;
use crate::metrics::FaktoryOp;

/// Most settlements sent in one round. Real Faktory answers the commands
/// of one connection one after another (a few thousand a second), so a
/// deeper pipeline does not settle faster; it only keeps more finished jobs
/// waiting on one connection while another could take them. Throughput
/// comes from more relay connections (the pool grows while settlements
/// wait).
pub(crate) const MAX_RELAY_BATCH: usize = 100;

/// How far ahead a release copy is scheduled: Faktory brings it back after
/// this, with its retry budget untouched.
pub(crate) const RELEASE_DELAY: Duration = Duration::from_secs(1);

/// Runs one relay connection of the settle pool until the pool stops (and
/// nothing is left to send) or retires it.
pub(crate) async fn run(shared: Arc<Shared>, mut member: Member) {
    let wake = shared.dispatcher.lock().settle_wake();
    let mut link = FaktoryLink::new(None);
    loop {
        let next = member
            .next(&wake, || {
                let mut d = shared.dispatcher.lock();
                let batch = d.take_settlements(MAX_RELAY_BATCH);
                (!batch.is_empty()).then(|| (batch, d.has_settlements()))
            })
            .await;
        let Next::Work(batch) = next else { break };
        let stop = member.stop().clone();
        let conn = match link.get(&shared.faktory, &stop).await {
            Ok(conn) => conn,
            Err(e) => {
                shared.dispatcher.lock().requeue(batch);
                if stop.is_cancelled() {
                    break;
                }
                warn!(error = %e, "relay connection failed; retrying");
                link.failed(&e, &stop).await;
                continue;
            }
        };
        let Sent { done, unsent } = send(&shared, conn, batch).await;
        let (unsent, error) = unsent.map_or((Vec::new(), None), |(u, e)| (u, Some(e)));
        let unsent_len = unsent.len();
        {
            let mut d = shared.dispatcher.lock();
            d.settled(done);
            if !unsent.is_empty() {
                d.requeue(unsent);
            }
            shared
                .metrics
                .jobs_in_flight
                .set(i64::try_from(d.lease_count()).unwrap_or(i64::MAX));
        }
        match error {
            None => link.succeeded(),
            Some(e) => {
                warn!(error = %e, unsent = unsent_len, "relaying results to faktory failed; will retry");
                link.failed(&e, &stop).await;
            }
        }
    }
    link.end().await;
}

/// What became of one batch.
struct Sent {
    /// Faktory's answer to every settlement it received.
    done: Vec<Answered>,
    /// What is left to send and why (releases already pushed come back as
    /// plain ACKs, so no copy is pushed twice).
    unsent: Option<(Vec<Settle>, Error)>,
}

/// Sends one batch: release copies first (one `PUSHB`), then `ACK`s, then
/// `FAIL`s, each pipelined. Every settlement of `batch` ends up in exactly
/// one of `done` and `unsent`.
async fn send(shared: &Shared, conn: &mut Connection, batch: Vec<Settle>) -> Sent {
    let mut acks = Vec::new();
    let mut fails = Vec::new();
    let mut releases = Vec::new();
    for s in batch {
        match s.kind {
            SettleKind::Ack => acks.push(s),
            SettleKind::Fail { .. } => fails.push(s),
            SettleKind::Release { .. } => releases.push(s),
        }
    }
    let released = releases.len();
    let plain_acks = acks.len() as u64;
    if !releases.is_empty() {
        let (pushed, refused) = match push_copies(shared, conn, &releases).await {
            Ok(result) => result,
            Err(e) => {
                releases.extend(acks);
                releases.extend(fails);
                return Sent {
                    done: Vec::new(),
                    unsent: Some((releases, e)),
                };
            }
        };
        // A pushed copy makes the reservation safe to ACK.
        acks.extend(pushed);
        fails.extend(refused);
    }
    let mut done = Vec::with_capacity(acks.len() + fails.len());
    if !acks.is_empty() {
        let started = Instant::now();
        match conn.ack_each(acks.iter().map(|s| s.jid.as_str())).await {
            Ok(results) => {
                shared
                    .metrics
                    .observe_faktory(FaktoryOp::Ack, started.elapsed());
                shared.metrics.jobs_acked.add(plain_acks);
                for (s, result) in acks.into_iter().zip(results) {
                    let refused = result.err().map(|e| {
                        warn!(jid = %s.jid, error = %e.message, "faktory refused an ack");
                        e.message
                    });
                    done.push(Answered::to(s, refused));
                }
            }
            Err(e) => {
                acks.extend(fails);
                return Sent {
                    done,
                    unsent: Some((acks, e)),
                };
            }
        }
    }
    if !fails.is_empty() {
        let commands: Vec<FailCommand> = fails.iter().map(fail_command).collect();
        let started = Instant::now();
        match conn.fail_many(&commands).await {
            Ok(results) => {
                shared
                    .metrics
                    .observe_faktory(FaktoryOp::Fail, started.elapsed());
                shared.metrics.jobs_failed.add(fails.len() as u64);
                for (s, result) in fails.into_iter().zip(results) {
                    // "Job not found": Faktory no longer holds the job (its
                    // reservation ended and it was retried, or it was
                    // settled before); the worker is told Faktory's words.
                    let refused = result.err().map(|e| {
                        warn!(jid = %s.jid, error = %e.message, "faktory refused a fail");
                        e.message
                    });
                    done.push(Answered::to(s, refused));
                }
            }
            Err(e) => {
                // The ACKs before went through: report them done.
                return Sent {
                    done,
                    unsent: Some((fails, e)),
                };
            }
        }
    }
    debug!(settled = done.len(), released, "relayed results to faktory");
    Sent { done, unsent: None }
}

/// PUSHes the release copies (scheduled [`RELEASE_DELAY`] ahead). Returns the
/// releases now safe to ACK (as ACK settlements) and, for copies Faktory
/// refused, FAILs saying so: the last resort, so the job is not lost.
async fn push_copies(
    shared: &Shared,
    conn: &mut Connection,
    releases: &[Settle],
) -> Result<(Vec<Settle>, Vec<Settle>), Error> {
    let at =
        (chrono::Utc::now() + RELEASE_DELAY).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut array = Vec::with_capacity(releases.len() * 256);
    array.push(b'[');
    let mut pushed = Vec::with_capacity(releases.len());
    let mut refused = Vec::new();
    for s in releases {
        let SettleKind::Release { raw } = &s.kind else {
            continue;
        };
        match release_copy_json(raw, &at) {
            Ok(copy) => {
                if array.len() > 1 {
                    array.push(b',');
                }
                array.extend_from_slice(&copy);
                pushed.push(s);
            }
            Err(e) => refused.push(s.failed_instead(
                ERRTYPE_RELEASE_FAILED,
                format!("the gateway could not build a release copy: {e}"),
            )),
        }
    }
    array.push(b']');
    let mut acks = Vec::with_capacity(pushed.len());
    if !pushed.is_empty() {
        let started = Instant::now();
        let failures = conn.push_bulk(&array).await?;
        shared
            .metrics
            .observe_faktory(FaktoryOp::Push, started.elapsed());
        for s in pushed {
            if let Some(reason) = failures.get(&s.jid) {
                warn!(jid = %s.jid, reason = %reason, "faktory refused a release copy; failing the job instead");
                refused.push(s.failed_instead(
                    ERRTYPE_RELEASE_FAILED,
                    format!("faktory refused the release copy: {reason}"),
                ));
            } else {
                shared.metrics.jobs_released.inc();
                acks.push(s.instead(SettleKind::Ack));
            }
        }
    }
    Ok((acks, refused))
}

fn fail_command(s: &Settle) -> FailCommand {
    let (errtype, message, backtrace) = match &s.kind {
        SettleKind::Fail {
            errtype,
            message,
            backtrace,
        } => (errtype.clone(), message.clone(), backtrace.clone()),
        _ => (String::new(), String::new(), Vec::new()),
    };
    FailCommand {
        jid: s.jid.clone(),
        errtype,
        message,
        backtrace,
    }
}
