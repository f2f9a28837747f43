//! [`connect_with_retry`], which keeps reconnecting to Faktory until it succeeds, hits an error
//! that retrying cannot fix, or is cancelled, waiting between attempts as a [`Backoff`] says.
//!
//! [`Backoff`] itself (exponential with equal jitter: the n-th delay uniform in `[d/2, d]`,
//! `d = min(max, min * 2^n)`) lives in the crate `faktory-gateway-backoff`, which the worker SDK
//! uses too; it is re-exported here as `faktory_gateway::faktory::Backoff`.

use tokio_util::sync::CancellationToken;

pub use faktory_gateway_backoff::Backoff;

use super::connection::{ConnectOptions, Connection};
use super::error::Error;
use super::handshake::Identity;
use super::url::FaktoryUrl;

/// [`connect_with_retry_using`] with [`ConnectOptions::default`].
///
/// # Errors
/// As [`connect_with_retry_using`].
pub async fn connect_with_retry(
    url: &FaktoryUrl,
    identity: Option<&Identity>,
    backoff: &Backoff,
    cancel: &CancellationToken,
) -> Result<Connection, Error> {
    connect_with_retry_using(url, identity, &ConnectOptions::default(), backoff, cancel).await
}

/// Connects, retrying retryable failures ([`Error::is_retryable`]: unreachable server, dropped
/// connection, timeouts) after delays from a copy of `backoff`, until it succeeds or `cancel`
/// fires.
///
/// # Errors
/// [`Error::Cancelled`] when `cancel` fires first; the first non-retryable error (wrong
/// password, bad TLS configuration or certificate, ...) at once.
pub async fn connect_with_retry_using(
    url: &FaktoryUrl,
    identity: Option<&Identity>,
    options: &ConnectOptions,
    backoff: &Backoff,
    cancel: &CancellationToken,
) -> Result<Connection, Error> {
    let mut backoff = backoff.clone();
    loop {
        // Both arms are cancellation-safe: a half-done connect is simply dropped.
        let attempt = tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(Error::Cancelled),
            attempt = Connection::connect_with(url, identity, options) => attempt,
        };
        let error = match attempt {
            Ok(conn) => {
                if backoff.attempts() > 0 {
                    tracing::info!(url = %url, attempts = backoff.attempts(), "reconnected to faktory");
                }
                return Ok(conn);
            }
            Err(e) if !e.is_retryable() => return Err(e),
            Err(e) => e,
        };
        let delay = backoff.next_delay();
        tracing::warn!(url = %url, error = %error, cause = ?std::error::Error::source(&error), ?delay, "cannot connect to faktory; retrying");
        tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(Error::Cancelled),
            () = tokio::time::sleep(delay) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn cancel_stops_retrying() {
        // A port nobody listens on: bind, read the port, drop the listener.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = FaktoryUrl::parse(&format!("tcp://127.0.0.1:{port}")).unwrap();
        let cancel = CancellationToken::new();
        let task = tokio::spawn({
            let cancel = cancel.clone();
            async move { connect_with_retry(&url, None, &Backoff::default(), &cancel).await }
        });
        // Let it fail and back off a few times on virtual time.
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!task.is_finished());
        cancel.cancel();
        let result = task.await.unwrap();
        assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
    }
}
