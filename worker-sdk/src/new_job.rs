//! [`NewJob`]: a job a producer is about to push (the job a handler receives
//! is [`Job`](crate::Job)).

use std::time::{Duration, SystemTime};

use faktory_gateway_proto::v1;
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::Error;
use crate::trace::{self, TraceParent};

/// Length of the jids made up for new jobs (as long as the gateway's own).
const JID_LEN: usize = 24;

/// A job to push with [`Client::push`](crate::Client::push).
///
/// Its jid is chosen when it is made (random, 24 characters), so pushing the
/// same `NewJob` again after an [`Unavailable`](crate::PushOutcome::Unavailable)
/// answer or a failed call pushes the same job, never a second one.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use faktory_gateway_worker::NewJob;
///
/// # fn main() -> Result<(), faktory_gateway_worker::Error> {
/// #[derive(serde::Serialize)]
/// struct Add { a: i64, b: i64 }
///
/// let job = NewJob::new("add", (Add { a: 1, b: 2 },))? // args: [{"a":1,"b":2}]
///     .queue("critical")
///     .retry(3)
///     .reserve_for(Duration::from_secs(600))
///     .at(SystemTime::now() + Duration::from_secs(60))
///     .custom("tenant", "acme");
/// # let _ = job;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct NewJob {
    jid: String,
    jobtype: String,
    args: Vec<u8>,
    queue: String,
    retry: Option<i32>,
    reserve_for: Option<Duration>,
    at: Option<SystemTime>,
    backtrace: i32,
    custom: Map<String, Value>,
}

impl NewJob {
    /// A job of `jobtype` whose args are `args` serialized to JSON, which
    /// must give an array: a tuple (`(1, 2)` is `[1, 2]`, `(my_struct,)` is
    /// `[{...}]`), a `Vec`, a slice, or a `Vec<serde_json::Value>`. A handler
    /// reads them back with [`Job::args`](crate::Job::args) into the same
    /// tuple.
    ///
    /// Fails when `args` does not serialize, or not to a JSON array.
    pub fn new(jobtype: impl Into<String>, args: impl Serialize) -> Result<NewJob, Error> {
        let value = serde_json::to_value(args).map_err(|e| Error::InvalidJob {
            field: "args",
            reason: "does not serialize to JSON".into(),
            source: Some(e),
        })?;
        if !value.is_array() {
            return Err(Error::InvalidJob {
                field: "args",
                reason: "must serialize to a JSON array (use a tuple or a Vec)".into(),
                source: None,
            });
        }
        Ok(NewJob {
            jid: new_jid(),
            jobtype: jobtype.into(),
            args: value.to_string().into_bytes(),
            queue: String::new(),
            retry: None,
            reserve_for: None,
            at: None,
            backtrace: 0,
            custom: Map::new(),
        })
    }

    /// Uses this jid instead of a random one (8 to 64 printable ASCII
    /// characters without spaces, or the gateway answers
    /// [`Invalid`](crate::PushOutcome::Invalid)).
    pub fn jid(mut self, jid: impl Into<String>) -> Self {
        self.jid = jid.into();
        self
    }

    /// The queue (default: `default`).
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// How many times Faktory retries the job after a failure (default 25);
    /// 0 discards it on its first failure, -1 sends it to the dead set.
    pub fn retry(mut self, retry: i32) -> Self {
        self.retry = Some(retry);
        self
    }

    /// How long a worker may hold the job before Faktory retries it
    /// (default 30 min). Whole seconds; Faktory raises less than 60 s to
    /// 60 s; more than 24 h is invalid.
    pub fn reserve_for(mut self, reserve_for: Duration) -> Self {
        self.reserve_for = Some(reserve_for);
        self
    }

    /// Runs the job no earlier than `at` (a time in the past means now).
    pub fn at(mut self, at: SystemTime) -> Self {
        self.at = Some(at);
        self
    }

    /// How many lines of a failure's backtrace Faktory keeps (default 0).
    pub fn backtrace(mut self, lines: u16) -> Self {
        self.backtrace = i32::from(lines);
        self
    }

    /// Sets `custom[key]`; a handler reads it with
    /// [`Job::custom`](crate::Job::custom).
    pub fn custom(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.custom.insert(key.into(), value.into());
        self
    }

    /// Sets the job's W3C trace context (`custom.traceparent`, e.g.
    /// `00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01`); the
    /// handler's span records it. Jobs pushed from inside a handler get the
    /// running job's trace with a new span id unless they set their own.
    pub fn traceparent(self, traceparent: impl Into<String>) -> Self {
        self.custom(trace::CUSTOM_KEY, traceparent.into())
    }

    /// Sets the trace context unless the job has one.
    pub(crate) fn inherit_trace(&mut self, parent: &TraceParent) {
        if !self.custom.contains_key(trace::CUSTOM_KEY) {
            self.custom
                .insert(trace::CUSTOM_KEY.into(), parent.child().as_str().into());
        }
    }

    /// The job as the contract carries it.
    pub(crate) fn into_proto(self) -> v1::Job {
        v1::Job {
            jid: self.jid,
            jobtype: self.jobtype,
            queue: self.queue,
            args: self.args.into(),
            custom: if self.custom.is_empty() {
                Default::default()
            } else {
                Value::Object(self.custom).to_string().into()
            },
            retry: self.retry,
            reserve_for: self
                .reserve_for
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
            at: self.at.map(rfc3339).unwrap_or_default(),
            backtrace: self.backtrace,
            ..v1::Job::default()
        }
    }
}

/// A random jid.
fn new_jid() -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(JID_LEN)
        .map(char::from)
        .collect()
}

/// `at` as RFC 3339 in UTC with milliseconds, as Faktory reads it.
fn rfc3339(at: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(at).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn args_must_be_a_json_array() {
        let job = NewJob::new("add", (1, "two")).unwrap().into_proto();
        assert_eq!(&job.args[..], br#"[1,"two"]"#);
        let values = NewJob::new("add", vec![serde_json::json!({"a": 1})]).unwrap();
        assert_eq!(&values.into_proto().args[..], br#"[{"a":1}]"#);
        let error = NewJob::new("add", serde_json::json!({"a": 1})).unwrap_err();
        assert!(
            matches!(error, Error::InvalidJob { field: "args", .. }),
            "{error}"
        );
    }

    #[test]
    fn options_reach_the_contract_fields() {
        let at = UNIX_EPOCH + Duration::from_millis(1_893_456_000_250);
        let job = NewJob::new("t", Vec::<i64>::new())
            .unwrap()
            .jid("jid-0001")
            .queue("critical")
            .retry(-1)
            .reserve_for(Duration::from_secs(90))
            .at(at)
            .backtrace(7)
            .custom("tenant", "acme")
            .into_proto();
        assert_eq!(&job.args[..], b"[]");
        assert_eq!(
            (
                job.jid.as_str(),
                job.queue.as_str(),
                job.retry,
                job.reserve_for,
                job.backtrace
            ),
            ("jid-0001", "critical", Some(-1), 90, 7)
        );
        assert_eq!(job.at, "2030-01-01T00:00:00.250Z");
        assert_eq!(&job.custom[..], br#"{"tenant":"acme"}"#);
    }

    #[test]
    fn jids_are_random_and_a_set_trace_is_kept() {
        let a = NewJob::new("t", ((),)).unwrap();
        let b = NewJob::new("t", ((),)).unwrap();
        assert_eq!(a.jid.len(), JID_LEN);
        assert_ne!(a.jid, b.jid);

        let parent =
            TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        let mut inherits = NewJob::new("t", ((),)).unwrap();
        inherits.inherit_trace(&parent);
        let value = inherits.custom[trace::CUSTOM_KEY].as_str().unwrap();
        assert_eq!(
            TraceParent::parse(value).unwrap().trace_id(),
            parent.trace_id()
        );
        let own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let mut keeps = NewJob::new("t", ((),)).unwrap().traceparent(own);
        keeps.inherit_trace(&parent);
        assert_eq!(keeps.custom[trace::CUSTOM_KEY], own);
    }
}
