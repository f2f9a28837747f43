//! The job record, shaped like Faktory's Go `client.Job`.
//!
//! Real Faktory decodes every pushed job into its Go struct and re-encodes it, so what a worker
//! FETCHes is normalised: only the known fields survive (in the struct's order), empty optional
//! fields are omitted, `retry` is always present (default 25), JSON `null` in a scalar field
//! reads as the zero value, and a wrongly typed field makes the whole payload "invalid JSON".
//! [`Job`] reproduces those rules with serde.

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Faktory's default retry budget (`client.RetryPolicyDefault`).
pub(crate) const DEFAULT_RETRY: i64 = 25;
/// Reservation used when a job has no `reserve_for` (`manager.DefaultTimeout`).
pub(crate) const DEFAULT_RESERVE_SECS: i64 = 1800;
/// Shortest reservation Faktory grants.
pub(crate) const MIN_RESERVE_SECS: i64 = 60;
/// Longest reservation Faktory accepts (PUSH rejects more).
pub(crate) const MAX_RESERVE_SECS: i64 = 86_400;

/// A job as Faktory stores it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Job {
    #[serde(default, deserialize_with = "null_as_default")]
    pub(crate) jid: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub(crate) queue: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub(crate) jobtype: String,
    #[serde(default)]
    pub(crate) args: Option<Vec<Value>>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub(crate) created_at: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub(crate) enqueued_at: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub(crate) at: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_zero"
    )]
    pub(crate) reserve_for: i64,
    #[serde(default)]
    pub(crate) retry: Option<i64>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_zero"
    )]
    pub(crate) backtrace: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) failure: Option<Failure>,
    #[serde(default, skip_serializing_if = "map_is_empty")]
    pub(crate) custom: Option<Map<String, Value>>,
}

/// The failure record Faktory attaches to a job (`client.Failure`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Failure {
    #[serde(default, deserialize_with = "null_as_default")]
    pub(crate) retry_count: i64,
    /// Faktory names this `remaining` on the wire.
    #[serde(default, deserialize_with = "null_as_default")]
    pub(crate) remaining: i64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub(crate) failed_at: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub(crate) next_at: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub(crate) message: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub(crate) errtype: String,
    #[serde(default, skip_serializing_if = "vec_is_empty")]
    pub(crate) backtrace: Option<Vec<String>>,
}

/// The body of a `FAIL` command (`manager.FailPayload`).
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct FailPayload {
    #[serde(default, deserialize_with = "null_as_default")]
    pub(crate) jid: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub(crate) message: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub(crate) errtype: String,
    #[serde(default)]
    pub(crate) backtrace: Option<Vec<String>>,
}

impl FailPayload {
    /// Faktory's `cleanse`: trim, cap lengths, fill `unknown`.
    pub(crate) fn cleanse(&mut self) {
        self.errtype = cap(self.errtype.trim(), 100);
        if self.errtype.is_empty() {
            self.errtype = "unknown".to_owned();
        }
        self.message = cap(self.message.trim(), 1000);
        if self.message.is_empty() {
            self.message = "unknown".to_owned();
        }
        let backtrace = self.backtrace.get_or_insert_with(Vec::new);
        backtrace.truncate(50);
    }
}

/// Cuts `text` to at most `max` bytes without splitting a character.
fn cap(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// A job plus its wire encoding, encoded once when the job changes, not on every FETCH.
#[derive(Debug, Clone)]
pub(crate) struct StoredJob {
    pub(crate) job: Job,
    pub(crate) json: Bytes,
}

impl StoredJob {
    /// Encodes `job`.
    pub(crate) fn new(job: Job) -> StoredJob {
        // Serialising a struct of strings, integers and JSON values cannot fail.
        let json = serde_json::to_vec(&job).unwrap_or_default();
        StoredJob {
            job,
            json: Bytes::from(json),
        }
    }

    /// The job as a JSON value (for the test handle).
    pub(crate) fn to_value(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }
}

impl Job {
    /// The reservation Faktory grants this job, in seconds.
    pub(crate) fn reservation_secs(&self) -> i64 {
        let secs = if self.reserve_for == 0 {
            DEFAULT_RESERVE_SECS
        } else {
            self.reserve_for
        };
        secs.clamp(MIN_RESERVE_SECS, MAX_RESERVE_SECS)
    }
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

fn map_is_empty(m: &Option<Map<String, Value>>) -> bool {
    m.as_ref().is_none_or(Map::is_empty)
}

fn vec_is_empty(v: &Option<Vec<String>>) -> bool {
    v.as_ref().is_none_or(Vec::is_empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_go() {
        let job: Job = serde_json::from_str(
            r#"{"jid":"abcdefgh","jobtype":"t","args":[1],"priority":5,"queue":null,"custom":{}}"#,
        )
        .unwrap();
        let out = String::from_utf8(StoredJob::new(job).json.to_vec()).unwrap();
        assert_eq!(
            out,
            r#"{"jid":"abcdefgh","queue":"","jobtype":"t","args":[1],"retry":null}"#
        );
    }

    #[test]
    fn wrong_types_are_errors() {
        assert!(serde_json::from_str::<Job>(r#"{"args":{}}"#).is_err());
        assert!(serde_json::from_str::<Job>(r#"{"reserve_for":"60"}"#).is_err());
        assert!(serde_json::from_str::<Job>(r#"{"retry":1.5}"#).is_err());
    }

    #[test]
    fn reservation_bounds() {
        let mut job: Job = serde_json::from_str("{}").unwrap();
        assert_eq!(job.reservation_secs(), 1800);
        job.reserve_for = 5;
        assert_eq!(job.reservation_secs(), 60);
        job.reserve_for = -5;
        assert_eq!(job.reservation_secs(), 60);
    }

    #[test]
    fn cleanse_fills_unknown() {
        let mut f = FailPayload {
            errtype: "  ".into(),
            message: "x".repeat(2000),
            ..FailPayload::default()
        };
        f.cleanse();
        assert_eq!(f.errtype, "unknown");
        assert_eq!(f.message.len(), 1000);
        assert_eq!(f.backtrace, Some(vec![]));
    }
}
