//! [`Cancellation`]: how a running handler learns that it should stop —
//! the worker is shutting down, or the job's reservation deadline is near.
//! Cancellation is cooperative: the handler decides what to do, and the
//! worker's shutdown timeout still ends handlers that ignore it.
//!
//! No timer, task or token is made per job unless a handler asks (one small
//! allocation is): `is_cancelled` reads the worker's shutdown token and the
//! clock, `cancelled` waits on both, and only a handler that asks for a
//! token gets a small task that fires it.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Why a job's cancellation fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CancelReason {
    /// The worker started shutting down (its shutdown signal fired); the
    /// handler has until the shutdown timeout to finish.
    Shutdown,
    /// The job's reservation deadline is near (within the worker's deadline
    /// margin): Faktory retries the job as `ReservationExpired` if no result
    /// reaches it in time. Reported over `Shutdown` when both apply.
    Deadline,
}

/// A job's cancellation signal; clones share it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cancellation {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The worker's shutdown token; `None` for a job no worker runs.
    shutdown: Option<Arc<CancellationToken>>,
    /// When the deadline margin begins; `None` without a known deadline.
    fire_at: Option<Instant>,
    /// A token handed to the handler, made on first request.
    token: OnceLock<CancellationToken>,
}

impl Cancellation {
    /// A signal that fires with the worker's `shutdown`, or `margin` before
    /// `deadline` (at once if that has passed).
    pub(crate) fn new(
        shutdown: Arc<CancellationToken>,
        deadline: Option<SystemTime>,
        margin: Duration,
    ) -> Cancellation {
        let fire_at = deadline.map(|deadline| {
            let left = deadline
                .duration_since(SystemTime::now())
                .unwrap_or_default()
                .saturating_sub(margin);
            Instant::now() + left
        });
        Cancellation {
            inner: Arc::new(Inner {
                shutdown: Some(shutdown),
                fire_at,
                token: OnceLock::new(),
            }),
        }
    }

    /// Why it fired, if it did.
    pub(crate) fn reason(&self) -> Option<CancelReason> {
        if self.inner.fire_at.is_some_and(|at| Instant::now() >= at) {
            return Some(CancelReason::Deadline);
        }
        let shutdown = self.inner.shutdown.as_ref();
        shutdown
            .is_some_and(|token| token.is_cancelled())
            .then_some(CancelReason::Shutdown)
    }

    /// Waits until it fires; says why.
    pub(crate) async fn cancelled(&self) -> CancelReason {
        let shutdown = async {
            match &self.inner.shutdown {
                Some(token) => token.cancelled().await,
                None => std::future::pending().await,
            }
        };
        let deadline = async {
            match self.inner.fire_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shutdown => {}
            () = deadline => {}
        }
        self.reason().unwrap_or(CancelReason::Shutdown)
    }

    /// A token that is cancelled when the signal fires, and at the latest
    /// when the handler returns ([`finish`](Self::finish)). Needs a tokio
    /// runtime (handlers, blocking ones included, have one).
    pub(crate) fn token(&self) -> CancellationToken {
        self.inner
            .token
            .get_or_init(|| {
                let token = CancellationToken::new();
                let (watch, fire) = (self.clone(), token.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        _ = watch.cancelled() => fire.cancel(),
                        () = fire.cancelled() => {}
                    }
                });
                token
            })
            .clone()
    }

    /// The handler returned: a token handed out is cancelled, which also
    /// ends the task that watched for it.
    pub(crate) fn finish(&self) {
        if let Some(token) = self.inner.token.get() {
            token.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shutdown() -> Arc<CancellationToken> {
        Arc::new(CancellationToken::new())
    }

    #[tokio::test(start_paused = true)]
    async fn fires_the_margin_before_the_deadline() {
        let deadline = SystemTime::now() + Duration::from_secs(60);
        let cancel = Cancellation::new(shutdown(), Some(deadline), Duration::from_secs(10));
        let started = Instant::now();
        let token = cancel.token();
        assert_eq!(cancel.reason(), None);
        assert_eq!(cancel.cancelled().await, CancelReason::Deadline);
        let waited = started.elapsed();
        assert!(
            waited > Duration::from_secs(49) && waited <= Duration::from_secs(50),
            "{waited:?}"
        );
        assert_eq!(cancel.reason(), Some(CancelReason::Deadline));
        token.cancelled().await;
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_fires_it_and_a_handed_out_token() {
        let worker = shutdown();
        let deadline = SystemTime::now() + Duration::from_secs(600);
        let cancel = Cancellation::new(worker.clone(), Some(deadline), Duration::from_secs(10));
        let token = cancel.token();
        worker.cancel();
        assert_eq!(cancel.reason(), Some(CancelReason::Shutdown));
        assert_eq!(cancel.cancelled().await, CancelReason::Shutdown);
        token.cancelled().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_passed_deadline_fires_at_once_and_no_deadline_never() {
        let late = Cancellation::new(shutdown(), Some(SystemTime::now()), Duration::from_secs(5));
        assert_eq!(late.reason(), Some(CancelReason::Deadline));

        let never = Cancellation::new(shutdown(), None, Duration::ZERO);
        tokio::select! {
            _ = never.cancelled() => unreachable!("nothing fires it"),
            () = tokio::time::sleep(Duration::from_secs(86_400)) => {}
        }
        assert_eq!(never.reason(), None);
        assert_eq!(Cancellation::default().reason(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn finishing_the_job_cancels_a_handed_out_token() {
        let cancel = Cancellation::new(shutdown(), None, Duration::ZERO);
        let token = cancel.token();
        assert!(!token.is_cancelled());
        cancel.finish();
        assert!(token.is_cancelled());
        assert_eq!(cancel.reason(), None, "the job itself was not cancelled");
    }
}
