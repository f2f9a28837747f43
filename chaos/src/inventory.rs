//! What a real Faktory still holds of one run, read over its protocol
//! alone, at the end of the run (gateways and workers stopped), leaving
//! nothing of the run behind.
//!
//! Faktory has no command that lists reservations or reads the retry, dead
//! or scheduled sets, so the inventory takes each in turn:
//! - **queued**: every job on the run's queue is fetched (its JSON read)
//!   and acknowledged;
//! - **scheduled, retries, dead**: `MUTATE requeue` moves the run's jobs of
//!   that set (matched by the run's queue name, which starts every jid) to
//!   the queue, where they are fetched, read (their `failure` record says
//!   which errtype consumed the retry) and acknowledged;
//! - **reserved**: every jid of the run not found so far is `FAIL`ed with
//!   errtype [`PROBE_ERRTYPE`]: Faktory answers `Job not found` for a jid it
//!   holds no reservation for, and `OK` for one it does (the FAIL then moves
//!   that job to the retry or dead set, from which `MUTATE discard` removes
//!   it).
//!
//! A jid found nowhere is gone from Faktory: acknowledged (or dropped).

use std::collections::HashMap;

use anyhow::{Context, bail};
use faktory_gateway::faktory::{Connection, FailCommand, Reply};
use faktory_gateway_bench::setup::run_queues::drain_queue;
use faktory_gateway_bench::workers::producer::connect;
use serde_json::Value;

/// The errtype of the end-of-run reservation probe's FAILs.
pub(crate) const PROBE_ERRTYPE: &str = "ChaosReservationProbe";
/// FAILs per pipelined probe batch.
const PROBE_BATCH: usize = 500;

/// Where a job of the run was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Place {
    /// On the run's queue.
    Queued,
    /// In the scheduled set (a released copy due a second later).
    Scheduled,
    /// In the retry set, with the errtype of its failure record.
    Retry(String),
    /// In the dead set, with the errtype of its failure record.
    Dead(String),
    /// Reserved: fetched by someone and never acknowledged or failed.
    Reserved,
}

/// Every job of the run Faktory still held, by jid; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct Inventory {
    pub(crate) places: HashMap<String, Place>,
}

/// Takes the inventory of `jids` (all on `queue`) at the Faktory at `url`,
/// emptying everything the run left there.
///
/// Fails when a connection or command fails, including `MUTATE` (the
/// project's test server does not implement it).
pub(crate) async fn take(url: &str, queue: &str, jids: &[String]) -> anyhow::Result<Inventory> {
    let mut connection = connect(url).await.context("connect for the inventory")?;
    let mut inventory = Inventory::default();
    collect(&mut connection, queue, &mut inventory, |_| Place::Queued).await?;
    for target in ["scheduled", "retries", "dead"] {
        mutate(&mut connection, "requeue", target, queue).await?;
        collect(
            &mut connection,
            queue,
            &mut inventory,
            |errtype| match target {
                "scheduled" => Place::Scheduled,
                "retries" => Place::Retry(errtype),
                _ => Place::Dead(errtype),
            },
        )
        .await?;
    }
    let unseen: Vec<String> = jids
        .iter()
        .filter(|jid| !inventory.places.contains_key(*jid))
        .cloned()
        .collect();
    for jid in probe_reserved(&mut connection, &unseen).await? {
        inventory.places.insert(jid, Place::Reserved);
    }
    discard_probed(&mut connection, queue).await?;
    let _ = connection.end().await;
    Ok(inventory)
}

/// Drains `queue`, placing each job by the errtype of its failure record.
async fn collect(
    connection: &mut Connection,
    queue: &str,
    inventory: &mut Inventory,
    place: impl Fn(String) -> Place,
) -> anyhow::Result<()> {
    drain_queue(connection, queue, |raw| {
        let Ok(job) = serde_json::from_slice::<Value>(raw) else {
            return;
        };
        let Some(jid) = job["jid"].as_str() else {
            return;
        };
        let errtype = job["failure"]["errtype"].as_str().unwrap_or("").to_owned();
        inventory.places.insert(jid.to_owned(), place(errtype));
    })
    .await
    .with_context(|| format!("drain {queue}"))?;
    Ok(())
}

/// The jids among `jids` that Faktory holds reserved, found by FAILing each
/// with [`PROBE_ERRTYPE`] (see the module docs: the reserved ones move to
/// the retry or dead set).
///
/// Fails when the connection fails or Faktory answers a FAIL with anything
/// but `OK` or `Job not found`.
pub(crate) async fn probe_reserved(
    connection: &mut Connection,
    jids: &[String],
) -> anyhow::Result<Vec<String>> {
    let mut reserved = Vec::new();
    for chunk in jids.chunks(PROBE_BATCH) {
        let fails: Vec<FailCommand> = chunk
            .iter()
            .map(|jid| FailCommand {
                jid: jid.clone(),
                errtype: PROBE_ERRTYPE.to_owned(),
                message: "chaos: end-of-run reservation probe".to_owned(),
                backtrace: Vec::new(),
            })
            .collect();
        let replies = connection.fail_many(&fails).await.context("probe FAILs")?;
        for (jid, reply) in chunk.iter().zip(replies) {
            match reply {
                Ok(()) => reserved.push(jid.clone()),
                Err(e) if e.message.contains("not found") => {}
                Err(e) => bail!("probe FAIL {jid}: {e}"),
            }
        }
    }
    Ok(reserved)
}

/// Removes the run's jobs from the retry and dead sets (where the probe's
/// FAILs put the reserved ones).
///
/// Fails when a `MUTATE` fails.
pub(crate) async fn discard_probed(connection: &mut Connection, queue: &str) -> anyhow::Result<()> {
    for target in ["retries", "dead"] {
        mutate(connection, "discard", target, queue).await?;
    }
    Ok(())
}

/// `MUTATE` `cmd` on `target` for the jobs whose JSON contains `queue`
/// (the run's queue name, which also starts every jid).
///
/// Fails when the connection fails or Faktory refuses the command (the
/// project's test server does not implement `MUTATE`).
pub(crate) async fn mutate(
    connection: &mut Connection,
    cmd: &str,
    target: &str,
    queue: &str,
) -> anyhow::Result<()> {
    let operation = serde_json::json!({
        "cmd": cmd,
        "target": target,
        "filter": {"regexp": format!("*{queue}*")},
    });
    let line = format!("MUTATE {operation}");
    match connection
        .call(line.as_bytes())
        .await
        .with_context(|| format!("MUTATE {cmd} {target}"))?
    {
        Reply::Error(error) => bail!("MUTATE {cmd} {target}: {}", String::from_utf8_lossy(&error)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use faktory_gateway_bench::setup::run_queues::run_prefix;

    use super::*;

    /// Against a real Faktory only (`FAKTORY_URL`): the test server has no
    /// `MUTATE`.
    #[tokio::test]
    async fn finds_queued_and_reserved_jobs_and_leaves_nothing() {
        let Ok(url) = std::env::var("FAKTORY_URL") else {
            eprintln!("skipped: FAKTORY_URL is not set");
            return;
        };
        let queue = run_prefix("chaos-test");
        let jids: Vec<String> = (0..3).map(|i| format!("{queue}-{i}")).collect();
        let jobs: Vec<Value> = jids
            .iter()
            .map(|jid| serde_json::json!({"jid": jid, "jobtype": "t", "args": [], "queue": queue}))
            .collect();
        let mut connection = connect(&url).await.unwrap();
        let refused = connection
            .push_bulk(serde_json::to_string(&jobs).unwrap().as_bytes())
            .await
            .unwrap();
        assert!(refused.is_empty(), "{refused:?}");
        let fetched = connection
            .fetch(std::slice::from_ref(&queue), 2)
            .await
            .unwrap();
        assert_eq!(fetched.len(), 2);
        let first: Value = serde_json::from_slice(&fetched[0]).unwrap();
        let acked = first["jid"].as_str().unwrap().to_owned();
        connection
            .ack_many(std::slice::from_ref(&acked))
            .await
            .unwrap();

        let inventory = take(&url, &queue, &jids).await.unwrap();
        assert_eq!(inventory.places.get(&acked), None);
        let mut places: Vec<&Place> = inventory.places.values().collect();
        places.sort_by_key(|place| format!("{place:?}"));
        assert_eq!(places, [&Place::Queued, &Place::Reserved]);
        let again = take(&url, &queue, &jids).await.unwrap();
        assert!(again.places.is_empty(), "{:?}", again.places);
        faktory_gateway_bench::setup::run_queues::clean_up(&url, &queue)
            .await
            .unwrap();
    }
}
