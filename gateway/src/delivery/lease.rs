//! A lease: what the gateway knows about one job it has fetched from Faktory
//! and not yet settled (acked, failed or released there): the job itself, its
//! reservation deadline, its delivery attempt and who holds it now.

use std::time::Duration;

use faktory_gateway_proto::v1::Delivery;
use prost::Message;
use tokio::time::Instant;

use crate::job::FetchedJob;

/// Field number of `Delivery.job` in the contract.
const DELIVERY_JOB_FIELD: u32 = 1;

/// Who holds a leased job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Holder {
    /// Waiting in the gateway for a session with room, since `since`.
    Pending {
        /// When it started waiting (fetch, or its worker vanished).
        since: Instant,
    },
    /// Assigned to this session (queued for sending or delivered).
    Session(u64),
    /// Delivered on a stream that broke at `since`: kept for its worker's
    /// reconnect (which claims it in its hello) until the reconnect grace
    /// ends, then redelivered.
    Away {
        /// When the stream broke.
        since: Instant,
    },
    /// Its ack, fail or release is on its way to Faktory.
    Settling,
}

/// One job reserved at Faktory on the gateway's behalf.
#[derive(Debug)]
pub(crate) struct Lease {
    /// The job as fetched.
    pub(crate) job: FetchedJob,
    /// Distinguishes this lease from an earlier one of the same jid (a
    /// released job fetched again before its release settled).
    pub(crate) seq: u64,
    /// When Faktory's reservation ends, on the gateway's clock.
    pub(crate) deadline: Instant,
    /// The same deadline in Unix milliseconds, for the worker.
    pub(crate) deadline_unix_ms: i64,
    /// 1 for the first delivery, raised on every redelivery.
    pub(crate) attempt: u32,
    /// Who holds it now.
    pub(crate) holder: Holder,
    /// Encoded size of its `Delivery` message, for batch sizing.
    pub(crate) delivery_len: usize,
}

impl Lease {
    /// A lease for a job fetched by a FETCH sent at `fetched_at`
    /// (`fetched_unix_ms` on the wall clock). The reservation is counted from
    /// the moment the FETCH was sent, which is no later than Faktory's own
    /// start, so the deadline is never late.
    pub(crate) fn new(
        job: FetchedJob,
        seq: u64,
        fetched_at: Instant,
        fetched_unix_ms: i64,
    ) -> Lease {
        let reserve = job.reserve_for;
        let mut lease = Lease {
            job,
            seq,
            deadline: fetched_at + reserve,
            deadline_unix_ms: fetched_unix_ms
                .saturating_add(i64::try_from(reserve.as_millis()).unwrap_or(i64::MAX)),
            attempt: 1,
            holder: Holder::Pending { since: fetched_at },
            delivery_len: 0,
        };
        // Sized without building the message: building it clones the job.
        let shell = Delivery {
            job: None,
            reservation_deadline_unix_ms: lease.deadline_unix_ms,
            attempt: lease.attempt,
        };
        lease.delivery_len = shell.encoded_len()
            + prost::encoding::message::encoded_len(DELIVERY_JOB_FIELD, &lease.job.job);
        lease
    }

    /// Reservation time left at `now`.
    pub(crate) fn remaining(&self, now: Instant) -> Duration {
        self.deadline.saturating_duration_since(now)
    }

    /// The job's jid.
    pub(crate) fn jid(&self) -> &str {
        self.job.jid()
    }

    /// The message that hands the job to a worker.
    pub(crate) fn delivery(&self) -> Delivery {
        Delivery {
            job: Some(self.job.job.clone()),
            reservation_deadline_unix_ms: self.deadline_unix_ms,
            attempt: self.attempt,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::from_faktory_json;

    #[tokio::test(start_paused = true)]
    async fn deadline_is_fetch_time_plus_reservation() {
        let job = from_faktory_json(bytes::Bytes::from_static(
            br#"{"jid":"a","jobtype":"t","queue":"q","args":[1],"reserve_for":120}"#,
        ))
        .unwrap();
        let now = Instant::now();
        let lease = Lease::new(job, 1, now, 1_000);
        assert_eq!(lease.deadline_unix_ms, 121_000);
        assert_eq!(lease.remaining(now), Duration::from_secs(120));
        assert_eq!(
            lease.remaining(now + Duration::from_secs(200)),
            Duration::ZERO
        );
        let delivery = lease.delivery();
        assert_eq!(delivery.attempt, 1);
        assert_eq!(delivery.job.unwrap().jid, "a");
        assert_eq!(lease.delivery_len, lease.delivery().encoded_len());
        assert!(matches!(lease.holder, Holder::Pending { .. }));
    }
}
