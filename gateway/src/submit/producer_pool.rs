//! The producer connections: one task per Faktory connection, each taking a
//! [`Batch`] at a time from the batcher, sending it with one `PUSHB`, and
//! answering every part of it.
//!
//! Connections are opened lazily and reopened after a failure, with
//! exponential backoff: while a connection is backing off, batches given to it
//! are answered UNAVAILABLE at once (with the last error) instead of waiting,
//! so producers hear quickly that Faktory is down.
//!
//! A `PUSHB` that fails half-way is not resent: Faktory may already hold the
//! jobs, and a resend would duplicate them. The jobs are answered UNAVAILABLE
//! (safe to retry with the same jid, as the contract says).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::batcher::{Batch, Outcome};
use crate::error::chain;
use crate::faktory::{Backoff, Connection, Endpoint, Error};
use crate::metrics::{FaktoryOp, Metrics};

/// One producer task's state: its connection, or why it has none.
struct Producer {
    endpoint: Arc<Endpoint>,
    metrics: Arc<Metrics>,
    conn: Option<Connection>,
    backoff: Backoff,
    /// While set and in the future, do not try to connect; answer with
    /// `last_error` instead.
    retry_at: Option<Instant>,
    last_error: String,
}

/// Runs one producer: takes batches from `batches` until it closes, answers
/// them, and reports itself idle on `idle` (with `index`) after each.
pub(crate) async fn run_producer(
    index: usize,
    endpoint: Arc<Endpoint>,
    metrics: Arc<Metrics>,
    mut batches: mpsc::Receiver<Batch>,
    idle: mpsc::Sender<usize>,
) {
    let mut producer = Producer {
        endpoint,
        metrics,
        conn: None,
        backoff: Backoff::new(Duration::from_millis(50), Duration::from_secs(5)),
        retry_at: None,
        last_error: String::new(),
    };
    while let Some(batch) = batches.recv().await {
        let outcomes = producer.send(&batch).await;
        batch.answer(outcomes);
        // One message per batch received, so the channel (one slot per
        // producer) never fills; the batcher may be gone during shutdown.
        let _ = idle.send(index).await;
    }
    if let Some(conn) = producer.conn.take()
        && let Err(error) = conn.end().await
    {
        tracing::debug!(%error, "closing producer connection");
    }
}

impl Producer {
    /// Sends `batch`, one outcome per job in batch order.
    async fn send(&mut self, batch: &Batch) -> Vec<Outcome> {
        let jobs = batch.job_count();
        let conn = match self.connection().await {
            Ok(conn) => conn,
            Err(reason) => return vec![Outcome::Unavailable(reason); jobs],
        };
        let body = batch.pushb_body();
        let started = Instant::now();
        let result = conn.push_bulk(&body).await;
        self.metrics
            .observe_faktory(FaktoryOp::Push, started.elapsed());
        self.metrics.pushb_sent.inc();
        match result {
            Ok(refused) => batch
                .jids()
                .map(|jid| match refused.get(jid) {
                    Some(why) => Outcome::Rejected(why.clone()),
                    None => Outcome::Accepted,
                })
                .collect(),
            // Faktory parses the whole array before pushing any of it, so a
            // batch-level refusal pushed nothing: retry job by job to find
            // the culprit without failing its neighbours.
            Err(Error::Server(e)) if jobs > 1 => {
                tracing::warn!(error = %e, jobs, "faktory refused a whole PUSHB; pushing one by one");
                self.send_one_by_one(batch).await
            }
            Err(Error::Server(e)) => vec![Outcome::Rejected(e.to_string())],
            Err(error) => {
                let reason = format!("faktory did not confirm the push: {}", chain(&error));
                tracing::warn!(%reason, jobs, "PUSHB failed");
                self.conn = None;
                vec![Outcome::Unavailable(reason); jobs]
            }
        }
    }

    async fn send_one_by_one(&mut self, batch: &Batch) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(batch.job_count());
        for json in batch.jsons() {
            let conn = match self.connection().await {
                Ok(conn) => conn,
                Err(reason) => {
                    outcomes.push(Outcome::Unavailable(reason));
                    continue;
                }
            };
            outcomes.push(match conn.push(json).await {
                Ok(()) => Outcome::Accepted,
                Err(Error::Server(e)) => Outcome::Rejected(e.to_string()),
                Err(error) => {
                    self.conn = None;
                    Outcome::Unavailable(format!(
                        "faktory did not confirm the push: {}",
                        chain(&error)
                    ))
                }
            });
        }
        outcomes
    }

    /// The open connection, opening one if needed. A lost connection is
    /// reopened at once; a failed connect waits a backoff delay before the
    /// next attempt.
    async fn connection(&mut self) -> Result<&mut Connection, String> {
        if self.conn.as_ref().is_some_and(|c| c.is_broken()) {
            self.conn = None;
        }
        if self.conn.is_none() {
            if self.retry_at.is_some_and(|t| Instant::now() < t) {
                return Err(self.last_error.clone());
            }
            let endpoint = &self.endpoint;
            match Connection::connect_with(&endpoint.url, None, &endpoint.options).await {
                Ok(conn) => {
                    self.conn = Some(conn);
                    self.backoff.reset();
                    self.retry_at = None;
                }
                Err(error) => {
                    let reason = format!("faktory is unreachable: {}", chain(&error));
                    tracing::warn!(%reason, "producer connection failed");
                    self.last_error = reason.clone();
                    self.retry_at = Some(Instant::now() + self.backoff.next_delay());
                    return Err(reason);
                }
            }
        }
        self.conn.as_mut().ok_or_else(|| self.last_error.clone())
    }
}
