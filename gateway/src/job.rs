//! Conversion between the wire `Job` (`faktory_gateway_proto::v1::Job`) and
//! Faktory's job JSON, in both directions.
//!
//! - [`to_faktory_json`]: a (validated) proto job to the bytes sent with
//!   `PUSH`/`PUSHB`. `args` and `custom` are spliced in as the caller's JSON
//!   text, never re-encoded.
//! - [`from_faktory_json`]: the raw bytes of a fetched job to a [`FetchedJob`]:
//!   the proto job for delivery, the effective reservation length, and the
//!   untouched raw bytes (which keep fields the gateway does not know about).
//!   Jobs as Faktory writes them are read in one pass by `job/scan.rs`; serde
//!   reads the rest and is the reference the scan is tested against.
//! - [`release_copy_json`]: the raw job with `at` replaced, for releasing a
//!   reserved job back to Faktory by pushing a copy (see docs/architecture.md,
//!   "Why release is PUSH-copy + ACK").
//! - [`generate_jid`]: a random 24-character job id.
//! - [`check_queue`]: the queue-name rule, for pushed jobs and for the queues
//!   a worker asks for.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use faktory_gateway_proto::v1::{Failure, Job};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

mod scan;

/// Faktory's reservation length when a job sets none (or 0), in seconds.
pub const DEFAULT_RESERVE_FOR_SECS: u64 = 1800;
/// Faktory raises shorter reservations to this, in seconds.
pub const MIN_RESERVE_FOR_SECS: u64 = 60;
/// Faktory rejects longer reservations, in seconds.
pub const MAX_RESERVE_FOR_SECS: u64 = 86_400;
/// Longest queue name the gateway accepts, in bytes.
pub const MAX_QUEUE_LEN: usize = 128;
/// Length of the job ids the gateway generates.
pub const GENERATED_JID_LEN: usize = 24;

/// Why a job could not be converted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// A JSON field of the proto job (`args` or `custom`) is not valid JSON.
    #[error("{field} is not valid JSON")]
    InvalidJson {
        /// The proto field name.
        field: &'static str,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// A fetched job is not a JSON object of the expected shape.
    #[error("fetched job is not valid Faktory job JSON")]
    InvalidFetched(#[source] serde_json::Error),
    /// A fetched job has no jid.
    #[error("fetched job has no jid")]
    MissingJid,
    /// The job JSON could not be serialized.
    #[error("could not serialize job JSON")]
    Serialize(#[source] serde_json::Error),
}

/// Faktory's job JSON as the gateway writes it on push.
#[derive(Serialize)]
struct OutgoingJob<'a> {
    jid: &'a str,
    #[serde(rename = "jobtype")]
    jobtype: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    queue: &'a str,
    args: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    custom: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry: Option<i32>,
    #[serde(skip_serializing_if = "is_zero_i64")]
    reserve_for: i64,
    #[serde(skip_serializing_if = "str::is_empty")]
    at: &'a str,
    #[serde(skip_serializing_if = "is_zero_i32")]
    backtrace: i32,
}

fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}

fn is_zero_i32(v: &i32) -> bool {
    *v == 0
}

/// Parses `bytes` as one JSON value without building it, or `None` when empty.
fn raw_json<'a>(field: &'static str, bytes: &'a [u8]) -> Result<Option<&'a RawValue>, JobError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice::<&RawValue>(bytes)
        .map(Some)
        .map_err(|source| JobError::InvalidJson { field, source })
}

/// Serializes a proto job as Faktory job JSON, for `PUSH` and `PUSHB`.
///
/// `args` and `custom` are spliced in verbatim (empty `args` becomes `[]`,
/// empty `custom` is omitted); fields Faktory sets itself (`created_at`,
/// `enqueued_at`, `failure`) are not sent. Semantic checks (array vs object,
/// ranges, names) belong to `submit::validate`; this function only refuses
/// text that is not JSON, so it never emits a broken document.
///
/// # Errors
/// [`JobError::InvalidJson`] when `args` or `custom` is not valid JSON.
pub fn to_faktory_json(job: &Job) -> Result<Vec<u8>, JobError> {
    let mut out = Vec::with_capacity(96 + job.args.len() + job.custom.len());
    write_faktory_json(job, &mut out)?;
    Ok(out)
}

/// Like [`to_faktory_json`], appending to `out` (used to build a `PUSHB`
/// array without copying each job twice). On error `out` may hold a partial
/// document; callers discard it.
///
/// # Errors
/// As [`to_faktory_json`].
pub fn write_faktory_json(job: &Job, out: &mut Vec<u8>) -> Result<(), JobError> {
    let empty_array: &RawValue = serde_json::from_str("[]").expect("literal is JSON");
    let args = raw_json("args", &job.args)?.unwrap_or(empty_array);
    let custom = raw_json("custom", &job.custom)?;
    let outgoing = OutgoingJob {
        jid: &job.jid,
        jobtype: &job.jobtype,
        queue: &job.queue,
        args,
        custom,
        retry: job.retry,
        reserve_for: job.reserve_for,
        at: &job.at,
        backtrace: job.backtrace,
    };
    serde_json::to_writer(out, &outgoing).map_err(JobError::Serialize)
}

/// A job fetched from Faktory, ready for delivery.
#[derive(Debug, Clone)]
pub struct FetchedJob {
    /// The job as it goes to workers. `args` and `custom` share memory with
    /// `raw`.
    pub job: Job,
    /// How long Faktory reserves the job from the moment it was fetched, with
    /// Faktory's rules applied: absent or 0 means 1800 s, less than 60 s
    /// means 60 s.
    pub reserve_for: Duration,
    /// The job exactly as Faktory sent it, unknown fields included; what a
    /// release pushes back (see [`release_copy_json`]).
    pub raw: Bytes,
}

impl FetchedJob {
    /// The job id.
    pub fn jid(&self) -> &str {
        &self.job.jid
    }

    /// The queue the job came from (`default` when Faktory named none).
    pub fn queue(&self) -> &str {
        &self.job.queue
    }

    /// The job type.
    pub fn jobtype(&self) -> &str {
        &self.job.jobtype
    }
}

/// Faktory's job JSON as the gateway reads it on fetch. Unknown fields are
/// ignored here and survive in `FetchedJob::raw`.
#[derive(Deserialize)]
struct IncomingJob<'a> {
    #[serde(default)]
    jid: Option<String>,
    #[serde(default, rename = "jobtype")]
    jobtype: Option<String>,
    #[serde(default)]
    queue: Option<String>,
    #[serde(default, borrow)]
    args: Option<&'a RawValue>,
    #[serde(default, borrow)]
    custom: Option<&'a RawValue>,
    #[serde(default)]
    retry: Option<serde_json::Number>,
    #[serde(default)]
    reserve_for: Option<serde_json::Number>,
    #[serde(default)]
    at: Option<String>,
    #[serde(default)]
    backtrace: Option<serde_json::Number>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    enqueued_at: Option<String>,
    #[serde(default)]
    failure: Option<IncomingFailure>,
}

#[derive(Deserialize)]
struct IncomingFailure {
    #[serde(default)]
    retry_count: Option<serde_json::Number>,
    #[serde(default)]
    retry_remaining: Option<serde_json::Number>,
    #[serde(default)]
    errtype: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    failed_at: Option<String>,
    #[serde(default)]
    backtrace: Option<Vec<String>>,
}

/// Reads a JSON number as an integer, truncating floats and saturating.
fn number_to_i64(n: &serde_json::Number) -> i64 {
    n.as_i64().unwrap_or_else(|| {
        n.as_u64()
            .map(|u| i64::try_from(u).unwrap_or(i64::MAX))
            .or_else(|| n.as_f64().map(|f| f as i64))
            .unwrap_or(0)
    })
}

fn number_to_i32(n: &serde_json::Number) -> i32 {
    saturate_i32(number_to_i64(n))
}

fn saturate_i32(v: i64) -> i32 {
    i32::try_from(v).unwrap_or(if v < 0 { i32::MIN } else { i32::MAX })
}

impl IncomingFailure {
    fn into_proto(self) -> Failure {
        Failure {
            retry_count: self.retry_count.as_ref().map_or(0, number_to_i32),
            retry_remaining: self.retry_remaining.as_ref().map_or(0, number_to_i32),
            errtype: self.errtype.unwrap_or_default(),
            message: self.message.unwrap_or_default(),
            failed_at: self.failed_at.unwrap_or_default(),
            backtrace: self.backtrace.unwrap_or_default(),
        }
    }
}

/// The reservation Faktory applies for a job's `reserve_for` value.
pub fn effective_reserve_for(reserve_for: i64) -> Duration {
    let secs = if reserve_for == 0 {
        DEFAULT_RESERVE_FOR_SECS
    } else {
        u64::try_from(reserve_for)
            .unwrap_or(0)
            .clamp(MIN_RESERVE_FOR_SECS, MAX_RESERVE_FOR_SECS)
    };
    Duration::from_secs(secs)
}

/// A sub-slice of `raw` holding the JSON text `value` (a slice of `raw`), without copying;
/// empty for `null`.
fn share(raw: &Bytes, value: Option<&str>) -> Bytes {
    match value {
        Some(v) if v != "null" => raw.slice_ref(v.as_bytes()),
        _ => Bytes::new(),
    }
}

/// Parses a job fetched from Faktory.
///
/// `args: null` (as the Go client sends for no arguments) becomes `[]`; a
/// missing queue becomes `default`. The returned job's `args`/`custom` point
/// into `raw`.
///
/// Jobs as Faktory writes them take a fast path (`job/scan.rs`); whatever it does not handle
/// is read with serde, which alone decides what is refused, so both read any input alike.
///
/// # Errors
/// [`JobError::InvalidFetched`] when `raw` is not a JSON object of Faktory's
/// job shape; [`JobError::MissingJid`] when it has no jid.
pub fn from_faktory_json(raw: Bytes) -> Result<FetchedJob, JobError> {
    if let Some(job) = scan::scan(&raw).and_then(|fields| from_fields(&raw, fields)) {
        return Ok(job);
    }
    from_faktory_json_serde(raw)
}

/// The job the scanned `fields` of `raw` describe; `None` when its `failure` does not parse
/// on its own (then the serde path reads the whole job).
fn from_fields(raw: &Bytes, fields: scan::Fields<'_>) -> Option<FetchedJob> {
    let failure = match fields.failure {
        Some(text) => Some(serde_json::from_str::<IncomingFailure>(text).ok()?),
        None => None,
    };
    let reserve_for_value = fields.reserve_for.unwrap_or(0);
    let mut args = share(raw, fields.args);
    if args.is_empty() {
        args = Bytes::from_static(b"[]");
    }
    let text = |field: Option<&str>| field.unwrap_or_default().to_owned();
    let job = Job {
        jid: text(fields.jid),
        jobtype: text(fields.jobtype),
        queue: text(fields.queue.filter(|q| !q.is_empty()).or(Some("default"))),
        args,
        custom: share(raw, fields.custom),
        retry: fields.retry.map(saturate_i32),
        reserve_for: reserve_for_value,
        at: text(fields.at),
        backtrace: fields.backtrace.map_or(0, saturate_i32),
        created_at: text(fields.created_at),
        enqueued_at: text(fields.enqueued_at),
        failure: failure.map(IncomingFailure::into_proto),
    };
    Some(FetchedJob {
        job,
        reserve_for: effective_reserve_for(reserve_for_value),
        raw: raw.clone(),
    })
}

/// [`from_faktory_json`] by serde alone: the reference the fast path agrees with.
fn from_faktory_json_serde(raw: Bytes) -> Result<FetchedJob, JobError> {
    let incoming: IncomingJob<'_> =
        serde_json::from_slice(&raw).map_err(JobError::InvalidFetched)?;
    let jid = incoming
        .jid
        .filter(|j| !j.is_empty())
        .ok_or(JobError::MissingJid)?;
    let reserve_for_value = incoming.reserve_for.as_ref().map_or(0, number_to_i64);
    let mut args = share(&raw, incoming.args.map(RawValue::get));
    if args.is_empty() {
        args = Bytes::from_static(b"[]");
    }
    let job = Job {
        jid,
        jobtype: incoming.jobtype.unwrap_or_default(),
        queue: incoming
            .queue
            .filter(|q| !q.is_empty())
            .unwrap_or_else(|| "default".to_owned()),
        args,
        custom: share(&raw, incoming.custom.map(RawValue::get)),
        retry: incoming.retry.as_ref().map(number_to_i32),
        reserve_for: reserve_for_value,
        at: incoming.at.unwrap_or_default(),
        backtrace: incoming.backtrace.as_ref().map_or(0, number_to_i32),
        created_at: incoming.created_at.unwrap_or_default(),
        enqueued_at: incoming.enqueued_at.unwrap_or_default(),
        failure: incoming.failure.map(IncomingFailure::into_proto),
    };
    Ok(FetchedJob {
        job,
        reserve_for: effective_reserve_for(reserve_for_value),
        raw,
    })
}

/// The raw job JSON with `at` set to `at_rfc3339`, every other field (unknown
/// ones included, `failure` included) kept verbatim: the copy that releases a
/// reserved job back to Faktory without using a retry (PUSH the copy, then
/// ACK the reservation).
///
/// # Errors
/// [`JobError::InvalidFetched`] when `raw` is not a JSON object.
pub fn release_copy_json(raw: &[u8], at_rfc3339: &str) -> Result<Vec<u8>, JobError> {
    let mut fields: BTreeMap<String, Box<RawValue>> =
        serde_json::from_slice(raw).map_err(JobError::InvalidFetched)?;
    let at = serde_json::value::to_raw_value(at_rfc3339).map_err(JobError::Serialize)?;
    fields.insert("at".to_owned(), at);
    serde_json::to_vec(&fields).map_err(JobError::Serialize)
}

/// A random job id: 24 lowercase hex characters (96 random bits).
pub fn generate_jid() -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    // One draw from the thread's CSPRNG; 96 of its 128 bits are used. Built
    // digit by digit into one allocation (this runs for every pushed job
    // without a jid).
    let bits: u128 = rand::random();
    (0..GENERATED_JID_LEN)
        .map(|i| char::from(DIGITS[((bits >> (4 * i)) & 0xf) as usize]))
        .collect()
}

/// Whether `queue` is a sane queue name: `[A-Za-z0-9._:-]`, 1 to 128 bytes.
/// Checked for pushed jobs (`submit/validate.rs`) and for the queues a
/// worker's hello names (`delivery/hello.rs`).
pub fn check_queue(queue: &str) -> Result<(), String> {
    if queue.is_empty() || queue.len() > MAX_QUEUE_LEN {
        return Err(format!(
            "must be 1 to {MAX_QUEUE_LEN} bytes, got {}",
            queue.len()
        ));
    }
    if let Some(bad) = queue
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
    {
        return Err(format!(
            "may hold only letters, digits, '.', '_', ':' and '-', found {bad:?}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn job(args: &str, custom: &str) -> Job {
        Job {
            jid: "j1".into(),
            jobtype: "add".into(),
            args: Bytes::copy_from_slice(args.as_bytes()),
            custom: Bytes::copy_from_slice(custom.as_bytes()),
            ..Job::default()
        }
    }

    #[test]
    fn to_json_splices_args_verbatim() {
        let bytes = to_faktory_json(&job(r#"[1, {"a":  2.50}]"#, "")).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains(r#""args":[1, {"a":  2.50}]"#), "{text}");
        assert!(!text.contains("custom"));
        assert!(!text.contains("queue"));
        assert!(!text.contains("retry"));
    }

    #[test]
    fn to_json_writes_every_set_field() {
        let mut j = job("", r#"{"t":"x"}"#);
        j.queue = "critical".into();
        j.retry = Some(0);
        j.reserve_for = 600;
        j.at = "2030-01-01T00:00:00Z".into();
        j.backtrace = 5;
        j.created_at = "ignored".into();
        let v: Value = serde_json::from_slice(&to_faktory_json(&j).unwrap()).unwrap();
        assert_eq!(
            v,
            json!({"jid":"j1","jobtype":"add","queue":"critical","args":[],"custom":{"t":"x"},
                   "retry":0,"reserve_for":600,"at":"2030-01-01T00:00:00Z","backtrace":5})
        );
    }

    #[test]
    fn to_json_refuses_broken_json() {
        let err = to_faktory_json(&job("[1,", "")).unwrap_err();
        assert!(matches!(err, JobError::InvalidJson { field: "args", .. }));
        let err = to_faktory_json(&job("[]", "{")).unwrap_err();
        assert!(matches!(
            err,
            JobError::InvalidJson {
                field: "custom",
                ..
            }
        ));
        // Two values are not one document: no smuggling of extra fields.
        assert!(to_faktory_json(&job("[] , \"x\"", "")).is_err());
    }

    #[test]
    fn round_trip_through_faktory_json() {
        let mut j = job(r#"[{"k":[1,2]}]"#, r#"{"a":1}"#);
        j.queue = "q".into();
        j.retry = Some(3);
        j.reserve_for = 120;
        let fetched = from_faktory_json(to_faktory_json(&j).unwrap().into()).unwrap();
        assert_eq!(fetched.job, j);
        assert_eq!(fetched.reserve_for, Duration::from_secs(120));
        assert_eq!(fetched.jid(), "j1");
        assert_eq!(fetched.queue(), "q");
        assert_eq!(fetched.jobtype(), "add");
    }

    #[test]
    fn from_json_reads_faktory_fields() {
        let raw = br#"{"jid":"abc","jobtype":"t","queue":"default","args":null,"retry":25,
            "created_at":"2026-01-01T00:00:00.1Z","enqueued_at":"2026-01-01T00:00:01Z",
            "failure":{"retry_count":1,"retry_remaining":24,"failed_at":"x","next_at":"y",
                       "message":"boom","errtype":"E","backtrace":["a","b"]},
            "unknown_field":{"kept":true}}"#;
        let fetched = from_faktory_json(Bytes::from_static(raw)).unwrap();
        assert_eq!(&fetched.job.args[..], b"[]");
        assert!(fetched.job.custom.is_empty());
        assert_eq!(fetched.job.retry, Some(25));
        assert_eq!(fetched.reserve_for, Duration::from_secs(1800));
        let f = fetched.job.failure.as_ref().unwrap();
        assert_eq!((f.retry_count, f.retry_remaining), (1, 24));
        assert_eq!(f.errtype, "E");
        assert_eq!(f.backtrace, vec!["a", "b"]);
        assert_eq!(fetched.job.created_at, "2026-01-01T00:00:00.1Z");
        assert_eq!(&fetched.raw[..], &raw[..]);
    }

    #[test]
    fn from_json_defaults_queue_and_needs_jid() {
        let fetched =
            from_faktory_json(Bytes::from_static(br#"{"jid":"a","jobtype":"t"}"#)).unwrap();
        assert_eq!(fetched.queue(), "default");
        assert!(matches!(
            from_faktory_json(Bytes::from_static(br#"{"jobtype":"t"}"#)),
            Err(JobError::MissingJid)
        ));
        assert!(matches!(
            from_faktory_json(Bytes::from_static(b"[1]")),
            Err(JobError::InvalidFetched(_))
        ));
    }

    #[test]
    fn reserve_for_follows_faktory_rules() {
        let secs = |v| effective_reserve_for(v).as_secs();
        assert_eq!(secs(0), 1800);
        assert_eq!(secs(1), 60);
        assert_eq!(secs(-5), 60);
        assert_eq!(secs(59), 60);
        assert_eq!(secs(60), 60);
        assert_eq!(secs(3600), 3600);
        assert_eq!(secs(1_000_000), 86_400);
        let fetched =
            from_faktory_json(Bytes::from_static(br#"{"jid":"a","reserve_for":30.0}"#)).unwrap();
        assert_eq!(fetched.reserve_for, Duration::from_secs(60));
    }

    #[test]
    fn release_copy_keeps_everything_but_at() {
        let raw = br#"{"jid":"a","jobtype":"t","args":[1.50],"at":"old","failure":{"retry_count":0},"zz":1}"#;
        let copy = release_copy_json(raw, "2030-01-01T00:00:01Z").unwrap();
        let text = String::from_utf8(copy).unwrap();
        assert!(text.contains(r#""args":[1.50]"#), "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["at"], "2030-01-01T00:00:01Z");
        assert_eq!(v["zz"], 1);
        assert_eq!(v["failure"]["retry_count"], 0);
    }

    #[test]
    fn jobs_as_faktory_writes_them_take_the_fast_path() {
        let jobs: [&[u8]; 4] = [
            br#"{"retry":25,"jid":"DtjKwtGBi8BNEA1abcdefghi","queue":"profcpu","jobtype":"add","args":[{"a":1,"b":1}],"created_at":"2026-12-01T19:17:15.123456789Z","enqueued_at":"2026-12-01T19:17:15.123456789Z"}"#,
            br#"{"jid":"a","jobtype":"t","args":["say \"hi\"\n",null,true,-1.5e3],"custom":{"k":[{}]},"reserve_for":600,"at":"","backtrace":3}"#,
            br#" { "jid" : "a" , "queue" : "" , "args" : null , "zz" : {"x":[1,2,{"y":"\u00e9"}]} } "#,
            br#"{"jid":"a","retry":0,"failure":{"retry_count":1,"errtype":"E","backtrace":["b"]}}"#,
        ];
        for raw in jobs {
            let raw = Bytes::from_static(raw);
            let fast = scan::scan(&raw).and_then(|fields| from_fields(&raw, fields));
            let fast = fast.unwrap_or_else(|| panic!("no fast path for {raw:?}"));
            let slow = from_faktory_json_serde(raw.clone()).unwrap();
            assert_eq!(fast.job, slow.job);
            assert_eq!(fast.reserve_for, slow.reserve_for);
        }
    }

    #[test]
    fn the_fast_path_leaves_what_it_does_not_handle_to_serde() {
        let cases: [&[u8]; 10] = [
            br#"{"jid":"a\u0062"}"#,
            br#"{"j\u0069d":"a"}"#,
            br#"{"jid":"a","retry":1e2}"#,
            br#"{"jid":"a","retry":9223372036854775807}"#,
            br#"{"jid":"a","retry":12345678901234567890}"#,
            br#"{"jid":"a","retry":-0}"#,
            br#"{"jid":"a","jid":"b"}"#,
            br#"{"jid":""}"#,
            br#"["a"]"#,
            br#"{"jid":"a","args":[1,]}"#,
        ];
        for raw in cases {
            assert_eq!(scan::scan(raw), None, "{}", String::from_utf8_lossy(raw));
        }
        // And serde still reads the ones that are jobs.
        let fetched = from_faktory_json(Bytes::from_static(br#"{"jid":"a\u0062","retry":1e2}"#));
        let fetched = fetched.unwrap();
        assert_eq!((fetched.jid(), fetched.job.retry), ("ab", Some(100)));
    }

    #[test]
    fn generated_jids_are_24_hex_chars_and_differ() {
        let a = generate_jid();
        assert_eq!(a.len(), GENERATED_JID_LEN);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, generate_jid());
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        fn faktory_ish() -> impl Strategy<Value = Vec<u8>> {
            let field = "(jobtype|args|custom|retry|reserve_for|failure|queue|at)";
            let value = r#"(null|1|-7|1e99|"x"|\[\]|\{\}|\[1,\{\}\]|\{"retry_count":"a"\})"#;
            let pattern = format!(r#"\{{"jid":"[a-z]{{0,5}}"(,"{field}":{value}){{0,6}}\}}"#);
            proptest::string::string_regex(&pattern)
                .expect("valid regex")
                .prop_map(String::into_bytes)
        }

        /// Objects of known and unknown fields with values of every JSON kind, valid or not
        /// (escapes, lone surrogates, odd numbers, nesting, whitespace, duplicates, trailing
        /// junk).
        fn json_objects() -> impl Strategy<Value = Vec<u8>> {
            let key = prop_oneof![
                Just("jid"),
                Just("jobtype"),
                Just("queue"),
                Just("args"),
                Just("custom"),
                Just("retry"),
                Just("reserve_for"),
                Just("at"),
                Just("backtrace"),
                Just("created_at"),
                Just("enqueued_at"),
                Just("failure"),
                Just("zz"),
                Just("j\\u0069d"),
            ];
            let value = prop_oneof![
                r#""([a-zA-Z0-9 :.-]|\\["\\/bfnrtx]|\\u[0-9a-fA-F]{4}|\\u[dD][89abAB][0-9a-f]{2}|é|\t){0,6}""#,
                r"-?(0|[1-9][0-9]{0,20})(\.[0-9]{0,2})?([eE][+-]?[0-9]{0,3})?",
                "(null|true|false|nul|tru)",
                r#"\[( ?(1|"a"|\{\}|\[\]|null|-0.5) ?,?){0,3}\]"#,
                r#"\{("[a-z_]{1,11}" ?: ?(1|"a"|\[\]|\{\}|null|\["x"\]|"\\u00e9") ?,?){0,3}\}"#,
            ];
            let member = (key, value, "[ \t\n]{0,1}");
            (
                prop::collection::vec(member, 0..8),
                "(| |x|,)",
                prop::bool::ANY,
            )
                .prop_map(|(members, tail, with_jid)| {
                    let mut text = String::from("{");
                    if with_jid {
                        text.push_str(r#""jid":"j1""#);
                    }
                    for (i, (key, value, ws)) in members.iter().enumerate() {
                        if with_jid || i > 0 {
                            text.push(',');
                        }
                        text.push_str(&format!("{ws}\"{key}\"{ws}:{ws}{value}{ws}"));
                    }
                    text.push('}');
                    text.push_str(&tail);
                    text.into_bytes()
                })
        }

        proptest! {
            /// The fast path answers only for what serde reads to the very same job.
            #[test]
            fn the_fast_path_agrees_with_serde(
                raw in prop_oneof![any::<Vec<u8>>(), faktory_ish(), json_objects()]
            ) {
                let raw = Bytes::from(raw);
                if let Some(fast) = scan::scan(&raw).and_then(|fields| from_fields(&raw, fields)) {
                    let slow = from_faktory_json_serde(raw.clone());
                    prop_assert!(slow.is_ok(), "serde refuses {:?}: {:?}", raw, slow.err());
                    let slow = slow.unwrap();
                    prop_assert_eq!(fast.job, slow.job);
                    prop_assert_eq!(fast.reserve_for, slow.reserve_for);
                    prop_assert_eq!(fast.raw, slow.raw);
                }
            }

            /// Whatever arrives as a fetched job, parsing never panics, and a
            /// parsed job has a jid and a reservation of at least 60 s.
            #[test]
            fn fetched_garbage_never_panics(
                raw in prop_oneof![any::<Vec<u8>>(), faktory_ish()]
            ) {
                if let Ok(fetched) = from_faktory_json(Bytes::from(raw.clone())) {
                    prop_assert!(!fetched.jid().is_empty());
                    prop_assert!(fetched.reserve_for.as_secs() >= MIN_RESERVE_FOR_SECS);
                    prop_assert!(release_copy_json(&raw, "2030-01-01T00:00:00Z").is_ok());
                }
            }
        }
    }
}
