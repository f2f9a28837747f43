//! A lazily (re)connected Faktory connection for one delivery task: connects
//! on first use with backoff, forgets a connection an error broke, pauses
//! between failed attempts, and ENDs the connection when the task stops.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::faktory::{Backoff, Connection, Endpoint, Error, Identity, connect_with_retry_using};

/// One task's connection to Faktory.
#[derive(Debug)]
pub(crate) struct FaktoryLink {
    conn: Option<Connection>,
    backoff: Backoff,
    identity: Option<Identity>,
}

impl FaktoryLink {
    /// Not yet connected; `identity` registers a worker process (presence).
    pub(crate) fn new(identity: Option<Identity>) -> FaktoryLink {
        FaktoryLink {
            conn: None,
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(5)),
            identity,
        }
    }

    /// The connection, connecting (with retries) when there is none.
    ///
    /// # Errors
    /// `Cancelled` when `stop` fires first; a non-retryable connect error
    /// (wrong password, bad TLS set-up).
    pub(crate) async fn get(
        &mut self,
        target: &Endpoint,
        stop: &CancellationToken,
    ) -> Result<&mut Connection, Error> {
        if self.conn.is_none() {
            let conn = connect_with_retry_using(
                &target.url,
                self.identity.as_ref(),
                &target.options,
                &self.backoff,
                stop,
            )
            .await?;
            self.conn = Some(conn);
        }
        Ok(self.conn.as_mut().expect("connected above"))
    }

    /// Records a success: the next failure waits the shortest delay again.
    pub(crate) fn succeeded(&mut self) {
        self.backoff.reset();
    }

    /// Records a failure: drops the connection if `error` broke it, then
    /// waits a backoff delay (or until `stop`).
    pub(crate) async fn failed(&mut self, error: &Error, stop: &CancellationToken) {
        if error.breaks_connection() {
            self.conn = None;
        }
        let delay = self.backoff.next_delay();
        // Both arms are cancellation-safe.
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stop.cancelled() => {}
        }
    }

    /// Says END on the connection, if there is one.
    pub(crate) async fn end(self) {
        if let Some(conn) = self.conn {
            let _ = conn.end().await;
        }
    }
}
