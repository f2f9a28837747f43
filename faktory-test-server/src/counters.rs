//! [`Counters`]: cumulative event counts, for tests and benchmarks.

/// Cumulative counts since the server started (FLUSH does not reset them, unlike INFO's
/// `total_processed`/`total_failures`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Jobs accepted by PUSH or PUSHB (queued or scheduled).
    pub pushed: u64,
    /// Jobs handed out by FETCH.
    pub fetched: u64,
    /// ACK commands received, including ACKs of unknown jids.
    pub acked: u64,
    /// ACKs that cleared a reservation (what Faktory counts as processed).
    pub processed: u64,
    /// Failures recorded: FAILs of reserved jobs plus expired reservations.
    pub failed: u64,
    /// Reservations that expired.
    pub expired: u64,
    /// Failed jobs put in the retry set.
    pub retried: u64,
    /// Jobs moved from the retry set back into a queue.
    pub retries_enqueued: u64,
    /// Jobs moved from the scheduled set into a queue.
    pub scheduled_enqueued: u64,
    /// Failed jobs sent to the dead set.
    pub dead: u64,
    /// Failed jobs dropped because their `retry` was 0.
    pub dropped: u64,
    /// Known commands executed (INFO's `command_count`).
    pub commands: u64,
    /// TCP connections accepted.
    pub connections_accepted: u64,
}
