//! [`Cancellation`]: how a running handler learns that it should stop —
//! the worker is shutting down, or the job's reservation deadline is near.
//! Cancellation is cooperative: the handler decides what to do, and the
//! worker's shutdown timeout still ends handlers that ignore it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// reaches it in time.
    Deadline,
}

/// A job's cancellation signal; clones share it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cancellation {
    token: CancellationToken,
    deadline_passed: Arc<AtomicBool>,
}

impl Cancellation {
    /// A signal that fires with `shutdown` (a child of the worker's shutdown
    /// token) or when the deadline passes.
    pub(crate) fn new(token: CancellationToken) -> Cancellation {
        Cancellation {
            token,
            deadline_passed: Arc::default(),
        }
    }

    /// The token, for `select!` or for passing to other tasks; cancelling it
    /// cancels only this job's signal.
    pub(crate) fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Why it fired, if it did.
    pub(crate) fn reason(&self) -> Option<CancelReason> {
        if !self.token.is_cancelled() {
            return None;
        }
        Some(if self.deadline_passed.load(Ordering::Acquire) {
            CancelReason::Deadline
        } else {
            CancelReason::Shutdown
        })
    }

    /// Waits until it fires; says why.
    pub(crate) async fn cancelled(&self) -> CancelReason {
        self.token.cancelled().await;
        self.reason().unwrap_or(CancelReason::Shutdown)
    }

    /// Fires with [`CancelReason::Deadline`] `margin` before `deadline`
    /// (at once if that has passed), unless the signal fired first; returns
    /// then. Never returns when the job has no deadline. Run beside the
    /// handler.
    pub(crate) async fn fire_before(&self, deadline: Option<SystemTime>, margin: Duration) {
        let Some(deadline) = deadline else {
            return std::future::pending().await;
        };
        let left = deadline
            .duration_since(SystemTime::now())
            .unwrap_or_default()
            .saturating_sub(margin);
        tokio::select! {
            // Shutdown fired first: its reason stands.
            () = self.token.cancelled() => {}
            () = tokio::time::sleep_until(Instant::now() + left) => {
                self.deadline_passed.store(true, Ordering::Release);
                self.token.cancel();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn fires_the_margin_before_the_deadline() {
        let cancel = Cancellation::default();
        let deadline = SystemTime::now() + Duration::from_secs(60);
        let started = Instant::now();
        cancel
            .fire_before(Some(deadline), Duration::from_secs(10))
            .await;
        let waited = started.elapsed();
        assert!(
            waited > Duration::from_secs(49) && waited <= Duration::from_secs(50),
            "{waited:?}"
        );
        assert_eq!(cancel.reason(), Some(CancelReason::Deadline));
        assert_eq!(cancel.cancelled().await, CancelReason::Deadline);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_first_keeps_its_reason() {
        let shutdown = CancellationToken::new();
        let cancel = Cancellation::new(shutdown.child_token());
        assert_eq!(cancel.reason(), None);
        shutdown.cancel();
        let deadline = SystemTime::now() + Duration::from_secs(60);
        cancel
            .fire_before(Some(deadline), Duration::from_secs(10))
            .await;
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert_eq!(cancel.reason(), Some(CancelReason::Shutdown));
    }

    #[tokio::test(start_paused = true)]
    async fn a_passed_deadline_fires_at_once_and_no_deadline_never() {
        let late = Cancellation::default();
        late.fire_before(Some(SystemTime::now()), Duration::from_secs(5))
            .await;
        assert_eq!(late.reason(), Some(CancelReason::Deadline));

        let never = Cancellation::default();
        tokio::select! {
            () = never.fire_before(None, Duration::ZERO) => unreachable!("never returns"),
            () = tokio::time::sleep(Duration::from_secs(86_400)) => {}
        }
        assert_eq!(never.reason(), None);
    }
}
