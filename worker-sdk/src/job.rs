//! [`Job`]: what a handler receives — one delivered Faktory job, what the
//! gateway knows about its delivery, and the handler's context: its
//! cancellation signal (`cancel.rs`), trace context (`trace.rs`) and the
//! worker's producer client (`client.rs`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use faktory_gateway_proto::v1;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::Client;
use crate::cancel::{CancelReason, Cancellation};
use crate::trace::TraceParent;

/// The arguments of a job could not be decoded into the requested type.
#[derive(Debug, thiserror::Error)]
#[error("job arguments do not match the expected type")]
pub struct ArgsError(#[source] serde_json::Error);

/// One job handed to a handler, with its context. Clones share the context.
#[derive(Debug, Clone)]
pub struct Job {
    job: v1::Job,
    attempt: u32,
    reservation_deadline: SystemTime,
    trace_parent: Option<TraceParent>,
    cancel: Cancellation,
    client: Client,
}

impl Job {
    /// Wraps a delivery; `None` if it carries no job. Jobs it pushes through
    /// [`client`](Self::client) go through `client`, continuing its trace.
    pub(crate) fn from_delivery(delivery: v1::Delivery, client: &Client) -> Option<Job> {
        let job = delivery.job?;
        let millis = u64::try_from(delivery.reservation_deadline_unix_ms).unwrap_or(0);
        let trace_parent = trace_parent(&job.custom);
        Some(Job {
            client: client.continuing(trace_parent.clone()),
            job,
            attempt: delivery.attempt.max(1),
            reservation_deadline: UNIX_EPOCH + Duration::from_millis(millis),
            trace_parent,
            cancel: Cancellation::default(),
        })
    }

    /// Gives the job its cancellation signal when its handler starts.
    pub(crate) fn set_cancellation(&mut self, cancel: Cancellation) {
        self.cancel = cancel;
    }

    /// The reservation deadline, if the gateway gave one.
    pub(crate) fn known_deadline(&self) -> Option<SystemTime> {
        (self.reservation_deadline > UNIX_EPOCH).then_some(self.reservation_deadline)
    }

    /// The job id.
    pub fn jid(&self) -> &str {
        &self.job.jid
    }

    /// The job type the handler was registered for.
    pub fn jobtype(&self) -> &str {
        &self.job.jobtype
    }

    /// The queue the job came from.
    pub fn queue(&self) -> &str {
        if self.job.queue.is_empty() {
            "default"
        } else {
            &self.job.queue
        }
    }

    /// Decodes the JSON argument array into `T`, e.g. `(i64, i64)` for `[1, 2]`
    /// or `(MyArgs,)` for `[{"a": 1}]`.
    ///
    /// Fails when the arguments do not fit `T`; with `?` in a handler that
    /// becomes a job failure with errtype `job::ArgsError`.
    pub fn args<T: DeserializeOwned>(&self) -> Result<T, ArgsError> {
        serde_json::from_slice(self.raw_args()).map_err(ArgsError)
    }

    /// The arguments as JSON text (`[]` when the job has none).
    pub fn raw_args(&self) -> &[u8] {
        if self.job.args.is_empty() {
            b"[]"
        } else {
            &self.job.args
        }
    }

    /// The custom metadata as JSON text, if the job has any.
    pub fn raw_custom(&self) -> Option<&Bytes> {
        (!self.job.custom.is_empty()).then_some(&self.job.custom)
    }

    /// The custom metadata decoded into `T` (`None` if the job has none).
    ///
    /// Fails when the metadata does not fit `T`.
    pub fn custom<T: DeserializeOwned>(&self) -> Result<Option<T>, ArgsError> {
        self.raw_custom()
            .map(|raw| serde_json::from_slice(raw).map_err(ArgsError))
            .transpose()
    }

    /// How many times this job failed before (0 on its first run).
    pub fn failures(&self) -> u32 {
        self.job
            .failure
            .as_ref()
            .map_or(0, |f| u32::try_from(f.retry_count).unwrap_or(0) + 1)
    }

    /// Faktory's `retry_count` of the latest failure (`None` if the job never
    /// failed; 0 after one failure).
    pub fn retry_count(&self) -> Option<i32> {
        self.job.failure.as_ref().map(|f| f.retry_count)
    }

    /// What Faktory remembers of the latest failure, if any.
    pub fn failure(&self) -> Option<&v1::Failure> {
        self.job.failure.as_ref()
    }

    /// The job's retry policy (`None` means Faktory's default of 25).
    pub fn retry(&self) -> Option<i32> {
        self.job.retry
    }

    /// How many backtrace lines Faktory keeps for this job's failures.
    pub fn backtrace_lines(&self) -> usize {
        usize::try_from(self.job.backtrace).unwrap_or(0)
    }

    /// 1 for the first delivery through the gateway, higher when the gateway
    /// redelivered the job after a worker vanished or released it.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// When Faktory's reservation ends; finish well before it, or Faktory
    /// retries the job as `ReservationExpired`.
    pub fn reservation_deadline(&self) -> SystemTime {
        self.reservation_deadline
    }

    /// The job exactly as delivered.
    pub fn raw(&self) -> &v1::Job {
        &self.job
    }

    /// Whether the handler should stop: the worker is shutting down or the
    /// reservation deadline is near ([`cancel_reason`](Self::cancel_reason)
    /// says which). Stopping is up to the handler: return `Ok` if the work
    /// is done or safe to drop, or an error to have Faktory retry the job.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.reason().is_some()
    }

    /// Why the job was cancelled, if it was.
    pub fn cancel_reason(&self) -> Option<CancelReason> {
        self.cancel.reason()
    }

    /// Resolves when the job is cancelled (see [`is_cancelled`](Self::is_cancelled)),
    /// with the reason; for `tokio::select!` against the handler's work.
    pub async fn cancelled(&self) -> CancelReason {
        self.cancel.cancelled().await
    }

    /// The cancellation as a token, to hand to tasks the handler starts:
    /// cancelled when the job is, and at the latest when its handler
    /// returns. Cancelling it yourself cancels only the token.
    pub fn cancellation_token(&self) -> CancellationToken {
        self.cancel.token()
    }

    /// The job's W3C trace context (`custom.traceparent`), if it carries a
    /// valid one; the handler's span records it as `traceparent`.
    pub fn traceparent(&self) -> Option<&str> {
        self.trace_parent.as_ref().map(TraceParent::as_str)
    }

    pub(crate) fn trace_parent(&self) -> Option<&TraceParent> {
        self.trace_parent.as_ref()
    }

    /// The worker's producer client, to push follow-up jobs over the
    /// worker's own gateway connection (with the producer token given to
    /// [`WorkerBuilder::producer_token`](crate::WorkerBuilder::producer_token)).
    /// Jobs pushed through it continue this job's trace: without a
    /// traceparent of their own they get this one's trace id and a new
    /// span id.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

/// The valid `traceparent` of a job's custom JSON, if any.
fn trace_parent(custom: &[u8]) -> Option<TraceParent> {
    #[derive(serde::Deserialize)]
    struct Custom {
        #[serde(rename = "traceparent")]
        value: Option<String>,
    }
    if custom.is_empty() {
        return None;
    }
    let custom: Custom = serde_json::from_slice(custom).ok()?;
    TraceParent::parse(&custom.value?)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn detached_client() -> Client {
        Client::builder()
            .gateway("http://127.0.0.1:1")
            .build()
            .expect("a valid client")
    }

    /// A job whose custom metadata is `custom` (JSON).
    pub(crate) fn job_with_custom(custom: &str) -> Job {
        let mut delivery = v1::Delivery {
            job: Some(job("[]", None).job),
            ..Default::default()
        };
        if let Some(job) = delivery.job.as_mut() {
            job.custom = Bytes::copy_from_slice(custom.as_bytes());
        }
        Job::from_delivery(delivery, &detached_client()).unwrap()
    }

    pub(crate) fn job(args: &str, failure: Option<i32>) -> Job {
        Job::from_delivery(
            v1::Delivery {
                job: Some(v1::Job {
                    jid: "j1".into(),
                    jobtype: "add".into(),
                    args: Bytes::copy_from_slice(args.as_bytes()),
                    failure: failure.map(|retry_count| v1::Failure {
                        retry_count,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                reservation_deadline_unix_ms: 1_000,
                attempt: 2,
            },
            &detached_client(),
        )
        .unwrap()
    }

    #[test]
    fn args_decode_into_tuples_and_structs() {
        #[derive(serde::Deserialize)]
        struct Add {
            a: i64,
            b: i64,
        }
        let (a, b): (i64, i64) = job("[1, 2]", None).args().unwrap();
        assert_eq!(a + b, 3);
        let (add,): (Add,) = job(r#"[{"a": 4, "b": 5}]"#, None).args().unwrap();
        assert_eq!(add.a + add.b, 9);
        assert!(job("[\"x\"]", None).args::<(i64,)>().is_err());
        assert_eq!(job("", None).args::<Vec<i64>>().unwrap(), Vec::<i64>::new());
    }

    #[test]
    fn delivery_facts_are_exposed() {
        let first = job("[]", None);
        assert_eq!((first.failures(), first.retry_count()), (0, None));
        assert_eq!(first.queue(), "default");
        assert_eq!(first.attempt(), 2);
        assert_eq!(
            first.reservation_deadline(),
            UNIX_EPOCH + Duration::from_secs(1)
        );
        let retried = job("[]", Some(0));
        assert_eq!((retried.failures(), retried.retry_count()), (1, Some(0)));
    }
}
