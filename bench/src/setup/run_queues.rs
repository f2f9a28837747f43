//! The queues of one bench or demo run: every queue it uses starts with a
//! prefix unique to the run (`bench-<random>`), so a run against a shared
//! Faktory touches nobody else's jobs, and at the end whatever the run left
//! on them is fetched and acknowledged and the emptied queues removed
//! (never `FLUSH`: others use the server).

use faktory_gateway::faktory::{Connection, Reply};
use faktory_gateway::job::from_faktory_json;
use serde_json::Value;

use crate::Error;
use crate::measure::faktory_stats::{InfoCounts, info, queue_size};
use crate::measure::process_stats::unix_micros;
use crate::workers::producer::connect;

/// Most jobs fetched in one pipelined round of the clean-up.
const CLEANUP_BATCH: u64 = 100;

/// A queue-name prefix unique to this run: `<kind>-<6 hex digits>`.
pub fn run_prefix(kind: &str) -> String {
    let random = unix_micros() ^ (u64::from(std::process::id()) << 20);
    format!("{kind}-{:06x}", random & 0xff_ffff)
}

/// What the clean-up found.
#[derive(Debug, Clone, Default)]
pub struct Cleanup {
    /// Jobs found queued on the run's queues and acknowledged, by queue.
    pub drained: Vec<(String, u64)>,
    /// Faktory's reserved set afterwards (server-wide: jobs some worker
    /// fetched and has not acknowledged).
    pub reserved_after: u64,
}

impl Cleanup {
    /// Jobs drained over all queues.
    pub fn total(&self) -> u64 {
        self.drained.iter().map(|(_, jobs)| jobs).sum()
    }

    /// A one-line account for progress output.
    pub fn describe(&self) -> String {
        let queues: Vec<String> = self
            .drained
            .iter()
            .map(|(queue, jobs)| format!("{jobs} on {queue}"))
            .collect();
        let drained = if queues.is_empty() {
            "nothing was left queued".to_owned()
        } else {
            format!(
                "fetched and acked {} left-over jobs ({})",
                self.total(),
                queues.join(", ")
            )
        };
        format!(
            "{drained}; Faktory's reserved set afterwards: {} (server-wide)",
            self.reserved_after
        )
    }
}

/// Empties every queue whose name starts with `prefix` with plain
/// `FETCH` + `ACK` rounds (never blocking on an empty queue: each round
/// fetches at most what `INFO` says is queued), then removes those queues.
///
/// Fails when connecting or a command fails.
pub async fn clean_up(url: &str, prefix: &str) -> Result<Cleanup, Error> {
    let mut connection = connect(url).await?;
    let mut cleanup = Cleanup::default();
    let document = info(&mut connection).await?;
    let queues = run_queues(&document, prefix);
    for queue in &queues {
        let drained = drain_queue(&mut connection, queue, |_| {}).await?;
        if drained > 0 {
            cleanup.drained.push((queue.clone(), drained));
        }
    }
    // Faktory 1.10 keeps emptied queues listed in INFO (at 0) until they
    // are removed; they are this run's, so nobody else's jobs go with them.
    if !queues.is_empty() {
        let line = format!("QUEUE REMOVE {}", queues.join(" "));
        let reply = connection
            .call(line.as_bytes())
            .await
            .map_err(|e| Error::Protocol(format!("QUEUE REMOVE: {e}")))?;
        if let Reply::Error(error) = reply {
            return Err(Error::Protocol(format!(
                "QUEUE REMOVE: {}",
                String::from_utf8_lossy(&error)
            )));
        }
    }
    let document = info(&mut connection).await?;
    cleanup.reserved_after = InfoCounts::parse(&document).map_or(0, |counts| counts.reserved);
    let _ = connection.end().await;
    Ok(cleanup)
}

fn run_queues(info: &Value, prefix: &str) -> Vec<String> {
    info.pointer("/faktory/queues")
        .and_then(Value::as_object)
        .map(|queues| {
            queues
                .keys()
                .filter(|name| name.starts_with(prefix))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Fetches and acknowledges every job queued on `queue` (never blocking on
/// an empty queue: each round fetches at most what `INFO` says is queued),
/// showing each job's Faktory JSON to `on_job` first; returns how many.
///
/// Fails when a command fails.
pub async fn drain_queue(
    connection: &mut Connection,
    queue: &str,
    mut on_job: impl FnMut(&[u8]),
) -> Result<u64, Error> {
    let queues = [queue.to_owned()];
    let mut drained = 0;
    loop {
        let queued = queue_size(&info(connection).await?, queue);
        if queued == 0 {
            return Ok(drained);
        }
        let jobs = connection
            .fetch(&queues, queued.min(CLEANUP_BATCH) as usize)
            .await
            .map_err(|e| Error::Protocol(format!("FETCH {queue}: {e}")))?;
        let jids: Vec<String> = jobs
            .into_iter()
            .filter_map(|job| {
                on_job(&job);
                from_faktory_json(job).ok().map(|job| job.jid().to_owned())
            })
            .collect();
        connection
            .ack_many(&jids)
            .await
            .map_err(|e| Error::Protocol(format!("ACK: {e}")))?;
        drained += jids.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::scenario::Workload;
    use crate::workers::producer::push_batch;

    #[test]
    fn prefixes_name_the_kind() {
        let prefix = run_prefix("bench");
        assert!(prefix.starts_with("bench-"));
        assert_eq!(prefix.len(), "bench-".len() + 6);
    }

    #[tokio::test]
    async fn cleans_only_the_runs_queues() {
        let server = faktory_test_server::TestServer::start().await.unwrap();
        let mut connection = connect(&server.url()).await.unwrap();
        push_batch(&mut connection, "bench-abc-one", Workload::Noop, 250)
            .await
            .unwrap();
        push_batch(&mut connection, "someone-else", Workload::Noop, 5)
            .await
            .unwrap();
        let cleanup = clean_up(&server.url(), "bench-abc").await.unwrap();
        assert_eq!(cleanup.drained, [("bench-abc-one".to_owned(), 250)]);
        assert_eq!(cleanup.reserved_after, 0);
        let handle = server.handle();
        assert_eq!(handle.queue_len("bench-abc-one"), 0);
        assert_eq!(handle.queue_len("someone-else"), 5);
        server.shutdown().await;
    }
}
