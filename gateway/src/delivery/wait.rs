//! [`wait`]: waiting on a [`Notify`] for a condition without losing a wake.
//!
//! The callers read their condition under the dispatcher lock; the wakes
//! come from `notify_one`/`notify_waiters` elsewhere. Each round creates and
//! arms the `Notified` ([`Notified::enable`]) before checking, so a wake
//! sent between the check and the wait still wakes this wait: an armed
//! `Notified` is in the waiter list, so a `notify_one` reaches it rather
//! than becoming a permit that another task's wait could take. Nothing is
//! allocated per round: the `Notified`, the sleep and the cancellation
//! future live in the caller's future.
//!
//! [`Notified::enable`]: tokio::sync::futures::Notified::enable

use std::future::pending;

use tokio::sync::Notify;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

/// How a [`wait`] ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Waited<T> {
    /// The condition held and gave this.
    Ready(T),
    /// `stop` was cancelled and the condition still did not hold.
    Stopped,
    /// The deadline passed first.
    Deadline,
}

/// Waits until `check` gives a value, `stop` (if any) is cancelled, or the
/// deadline passes. Each round: arm a wake from `notify`, call `check` and
/// return what it gives; return [`Waited::Stopped`] when `stop` is
/// cancelled; else wait for the wake, `stop` or `deadline()` (called once a
/// round, right before waiting, so it may change between rounds) and go
/// round again (after the deadline: return [`Waited::Deadline`]). `stop`
/// firing while waiting leads to one more `check` before it returns.
pub(crate) async fn wait<T>(
    notify: &Notify,
    stop: Option<&CancellationToken>,
    mut check: impl FnMut() -> Option<T>,
    mut deadline: impl FnMut() -> Instant,
) -> Waited<T> {
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(value) = check() {
            return Waited::Ready(value);
        }
        if stop.is_some_and(CancellationToken::is_cancelled) {
            return Waited::Stopped;
        }
        // All three arms are cancellation-safe.
        tokio::select! {
            () = notified => {}
            () = cancelled(stop) => {}
            () = sleep_until(deadline()) => return Waited::Deadline,
        }
    }
}

/// Completes when `stop` is cancelled; never without one.
async fn cancelled(stop: Option<&CancellationToken>) {
    match stop {
        Some(stop) => stop.cancelled().await,
        None => pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::time::Duration;

    use super::*;

    const LONG: Duration = Duration::from_secs(3600);

    #[tokio::test(start_paused = true)]
    async fn a_wake_sent_while_checking_is_not_lost() {
        let notify = Notify::new();
        let rounds = Cell::new(0);
        let got = wait(
            &notify,
            None,
            || {
                rounds.set(rounds.get() + 1);
                match rounds.get() {
                    1 => notify.notify_waiters(),
                    2 => notify.notify_one(),
                    n => return Some(n),
                }
                None
            },
            || Instant::now() + LONG,
        )
        .await;
        assert_eq!(got, Waited::Ready(3));
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_and_stop_end_the_wait() {
        let notify = Notify::new();
        let started = Instant::now();
        let got = wait(
            &notify,
            None,
            || None::<()>,
            || started + Duration::from_secs(2),
        )
        .await;
        assert_eq!(got, Waited::Deadline);
        assert_eq!(started.elapsed(), Duration::from_secs(2));

        let stop = CancellationToken::new();
        let checks = Cell::new(0);
        let waiting = wait(
            &notify,
            Some(&stop),
            || {
                checks.set(checks.get() + 1);
                None::<()>
            },
            || Instant::now() + LONG,
        );
        tokio::pin!(waiting);
        assert!(futures::poll!(waiting.as_mut()).is_pending());
        stop.cancel();
        assert_eq!(waiting.await, Waited::Stopped);
        assert_eq!(checks.get(), 2, "checked once more after the stop");
    }
}
