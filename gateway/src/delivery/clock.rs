//! Wall-clock time for the contract's deadlines (the `*_unix_ms` fields of
//! deliveries and drain notices). Everything else in the delivery path runs
//! on tokio's monotonic clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub(crate) fn unix_now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(i64::MAX)
}

/// Milliseconds since the Unix epoch, `after` from now.
pub(crate) fn unix_ms_after(after: Duration) -> i64 {
    unix_now_ms().saturating_add(i64::try_from(after.as_millis()).unwrap_or(i64::MAX))
}
