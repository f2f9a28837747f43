//! Validation of pushed jobs: every rule a job must meet before the gateway
//! sends it to Faktory, each failure naming the offending `Job` field and why.
//!
//! [`validate`] turns a proto job into a [`ValidJob`] (its jid, generated when
//! empty, and its Faktory JSON) or an [`Invalid`]. It never panics, whatever
//! the input: JSON nesting is bounded before anything parses it.

use faktory_gateway_proto::v1::Job;

use crate::job::{self, MAX_RESERVE_FOR_SECS, check_queue};

/// Faktory refuses jids shorter than this ("jobs must have a reasonable jid").
pub const MIN_JID_LEN: usize = 8;
/// Longest jid the gateway accepts.
pub const MAX_JID_LEN: usize = 64;
/// Longest jobtype the gateway accepts, in bytes.
pub const MAX_JOBTYPE_LEN: usize = 256;
/// Deepest nesting of arrays and objects accepted in `args` and `custom`.
pub const MAX_JSON_DEPTH: usize = 64;

/// Limits that come from configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes of one job's Faktory JSON.
    pub max_job_bytes: usize,
}

/// A job that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidJob {
    /// The job id (given or generated).
    pub jid: String,
    /// The job as Faktory JSON, ready for PUSHB.
    pub json: Vec<u8>,
}

/// Why a job is invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The job id to report: the given one, the generated one, or empty when
    /// the given jid was itself invalid.
    pub jid: String,
    /// The offending field of `Job`, e.g. `args`.
    pub field: &'static str,
    /// What is wrong, for humans.
    pub reason: String,
}

/// Checks one job and encodes it as Faktory JSON.
///
/// An empty jid is replaced by a generated one, an empty queue by `default`,
/// empty `args` by `[]`.
///
/// # Errors
/// [`Invalid`] naming the first rule the job breaks.
pub fn validate(mut job: Job, limits: &Limits) -> Result<ValidJob, Invalid> {
    if job.jid.is_empty() {
        job.jid = job::generate_jid();
    } else if let Err(reason) = check_jid(&job.jid) {
        return Err(Invalid {
            jid: String::new(),
            field: "jid",
            reason,
        });
    }
    let checked = check_fields(&mut job, limits);
    let invalid = |field: &'static str, reason: String| Invalid {
        jid: job.jid.clone(),
        field,
        reason,
    };
    if let Err((field, reason)) = checked {
        return Err(invalid(field, reason));
    }
    let json = job::to_faktory_json(&job).map_err(|e| match e {
        job::JobError::InvalidJson { field, source } => {
            invalid(field, format!("must be valid JSON: {source}"))
        }
        other => invalid("args", other.to_string()),
    })?;
    if json.len() > limits.max_job_bytes {
        return Err(invalid(
            largest_payload_field(&job),
            too_big(json.len(), limits.max_job_bytes),
        ));
    }
    Ok(ValidJob { jid: job.jid, json })
}

type FieldError = (&'static str, String);

/// Every check but the jid's, in field order; fills in the queue default.
fn check_fields(job: &mut Job, limits: &Limits) -> Result<(), FieldError> {
    check_jobtype(&job.jobtype).map_err(|r| ("jobtype", r))?;
    if job.queue.is_empty() {
        job.queue = "default".to_owned();
    }
    check_queue(&job.queue).map_err(|r| ("queue", r))?;
    if let Some(retry) = job.retry
        && retry < -1
    {
        return Err(("retry", format!("must be -1 or more, got {retry}")));
    }
    if !(0..=MAX_RESERVE_FOR_SECS as i64).contains(&job.reserve_for) {
        return Err((
            "reserve_for",
            format!(
                "must be between 0 and {MAX_RESERVE_FOR_SECS} seconds, got {}",
                job.reserve_for
            ),
        ));
    }
    if job.backtrace < 0 {
        return Err((
            "backtrace",
            format!("must be 0 or more, got {}", job.backtrace),
        ));
    }
    if !job.at.is_empty() && !is_rfc3339(&job.at) {
        return Err((
            "at",
            format!("must be an RFC 3339 time, got {:?}", shorten(&job.at)),
        ));
    }
    // Refuse oversize payloads before parsing them.
    let payload = job.args.len() + job.custom.len();
    if payload > limits.max_job_bytes {
        return Err((
            largest_payload_field(job),
            too_big(payload, limits.max_job_bytes),
        ));
    }
    check_json_shape(&job.args, b'[', "a JSON array").map_err(|r| ("args", r))?;
    check_json_shape(&job.custom, b'{', "a JSON object").map_err(|r| ("custom", r))?;
    Ok(())
}

/// RFC 3339 as Faktory (Go's `time.RFC3339Nano`) reads it: chrono's parser,
/// plus Go's stricter `T` separator and upper-case `Z`.
fn is_rfc3339(at: &str) -> bool {
    at.as_bytes().get(10) == Some(&b'T')
        && !at.ends_with('z')
        && chrono::DateTime::parse_from_rfc3339(at).is_ok()
}

fn too_big(size: usize, limit: usize) -> String {
    format!("job is {size} bytes, more than the limit of {limit} bytes")
}

fn largest_payload_field(job: &Job) -> &'static str {
    if job.custom.len() > job.args.len() {
        "custom"
    } else {
        "args"
    }
}

fn check_jid(jid: &str) -> Result<(), String> {
    if !(MIN_JID_LEN..=MAX_JID_LEN).contains(&jid.len()) {
        return Err(format!(
            "must be {MIN_JID_LEN} to {MAX_JID_LEN} characters (or empty to generate one), got {}",
            jid.len()
        ));
    }
    if !jid.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be printable ASCII without spaces".to_owned());
    }
    Ok(())
}

fn check_jobtype(jobtype: &str) -> Result<(), String> {
    if jobtype.trim().is_empty() {
        return Err("is required".to_owned());
    }
    if jobtype.len() > MAX_JOBTYPE_LEN {
        return Err(format!(
            "must be at most {MAX_JOBTYPE_LEN} bytes, got {}",
            jobtype.len()
        ));
    }
    if jobtype.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    Ok(())
}

/// Checks that `bytes` (when not empty) is one JSON value opening with `open`
/// and nested no deeper than [`MAX_JSON_DEPTH`]. Full syntax is checked when
/// the job is encoded.
fn check_json_shape(bytes: &[u8], open: u8, what: &str) -> Result<(), String> {
    let Some(&first) = bytes.iter().find(|b| !b.is_ascii_whitespace()) else {
        return Ok(());
    };
    if first != open {
        return Err(format!("must be {what}"));
    }
    let depth = max_json_depth(bytes);
    if depth > MAX_JSON_DEPTH {
        return Err(format!("JSON nests deeper than {MAX_JSON_DEPTH} levels"));
    }
    Ok(())
}

/// The deepest nesting of `[`/`{` in `bytes`, ignoring brackets inside strings.
/// Linear and non-recursive, so it is safe on hostile input.
fn max_json_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

fn shorten(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;

    const LIMITS: Limits = Limits {
        max_job_bytes: 4096,
    };

    fn good() -> Job {
        Job {
            jobtype: "send_email".into(),
            args: Bytes::from_static(br#"[1, "two", {"three": [3]}]"#),
            ..Job::default()
        }
    }

    fn field_of(job: Job) -> (&'static str, String) {
        let e = validate(job, &LIMITS).unwrap_err();
        (e.field, e.reason)
    }

    #[test]
    fn valid_job_gets_jid_and_default_queue() {
        let v = validate(good(), &LIMITS).unwrap();
        assert_eq!(v.jid.len(), 24);
        let json: serde_json::Value = serde_json::from_slice(&v.json).unwrap();
        assert_eq!(json["jid"], v.jid.as_str());
        assert_eq!(json["queue"], "default");
        assert_eq!(json["jobtype"], "send_email");
        assert_eq!(json["args"][2]["three"][0], 3);
    }

    #[test]
    fn given_jid_is_kept_and_checked() {
        let mut j = good();
        j.jid = "order-12345".into();
        assert_eq!(validate(j.clone(), &LIMITS).unwrap().jid, "order-12345");
        for bad in [
            "short",
            "has space 123",
            "tab\t12345678",
            &"x".repeat(65),
            "ünïcödé-jid",
        ] {
            j.jid = bad.into();
            let e = validate(j.clone(), &LIMITS).unwrap_err();
            assert_eq!((e.field, e.jid.as_str()), ("jid", ""), "{bad}");
        }
    }

    type Mutation = fn(&mut Job);

    #[test]
    fn each_rule_names_its_field() {
        let cases: Vec<(Mutation, &str)> = vec![
            (|j| j.jobtype = String::new(), "jobtype"),
            (|j| j.jobtype = "x".repeat(257), "jobtype"),
            (|j| j.queue = "no spaces".into(), "queue"),
            (|j| j.queue = "q".repeat(129), "queue"),
            (|j| j.args = Bytes::from_static(b"{}"), "args"),
            (|j| j.args = Bytes::from_static(b"[1,"), "args"),
            (|j| j.args = Bytes::from_static(b"\"text\""), "args"),
            (|j| j.args = Bytes::from_static(b"[1] [2]"), "args"),
            (|j| j.args = Bytes::from_static(b"[\"\xff\"]"), "args"),
            (|j| j.custom = Bytes::from_static(b"[]"), "custom"),
            (|j| j.custom = Bytes::from_static(b"{\"a\":}"), "custom"),
            (|j| j.retry = Some(-2), "retry"),
            (|j| j.reserve_for = -1, "reserve_for"),
            (|j| j.reserve_for = 86_401, "reserve_for"),
            (|j| j.backtrace = -1, "backtrace"),
            (|j| j.at = "tomorrow".into(), "at"),
            (|j| j.at = "2030-01-01 00:00:00Z".into(), "at"),
            (|j| j.at = "2030-01-01T00:00:00z".into(), "at"),
            (
                |j| j.args = Bytes::from(format!("[\"{}\"]", "x".repeat(5000))),
                "args",
            ),
            (
                |j| j.custom = Bytes::from(format!("{{\"k\":\"{}\"}}", "x".repeat(5000))),
                "custom",
            ),
        ];
        for (mutate, field) in cases {
            let mut j = good();
            mutate(&mut j);
            let (got, reason) = field_of(j);
            assert_eq!(got, field, "{reason}");
            assert!(!reason.is_empty());
        }
    }

    #[test]
    fn accepted_edge_values() {
        let mut j = good();
        j.args = Bytes::new();
        j.custom = Bytes::from_static(b" {\"k\": 1} ");
        j.retry = Some(-1);
        j.reserve_for = 86_400;
        j.at = "2030-01-01T00:00:00.5+02:00".into();
        j.queue = "a.b_c:d-E9".into();
        let v = validate(j, &LIMITS).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&v.json).unwrap();
        assert_eq!(json["args"], serde_json::json!([]));
        assert_eq!(json["custom"]["k"], 1);
    }

    #[test]
    fn oversize_reason_names_sizes() {
        let mut j = good();
        j.args = Bytes::from(format!("[\"{}\"]", "x".repeat(4080)));
        let (field, reason) = field_of(j);
        assert_eq!(field, "args");
        assert!(reason.contains("limit of 4096 bytes"), "{reason}");
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let mut j = good();
        j.args = Bytes::from(format!("{}{}", "[".repeat(2000), "]".repeat(2000)));
        let (field, reason) = field_of(j.clone());
        assert_eq!(field, "args");
        assert!(reason.contains("deeper"), "{reason}");
        j.args = Bytes::from(format!("{}{}", "[".repeat(64), "]".repeat(64)));
        validate(j, &LIMITS).unwrap();
    }

    #[test]
    fn depth_ignores_brackets_in_strings() {
        assert_eq!(max_json_depth(br#"["[[[\"{{{", {"a": [1]}]"#), 3);
    }

    fn arb_json_bytes() -> impl Strategy<Value = Bytes> {
        prop_oneof![
            any::<Vec<u8>>().prop_map(Bytes::from),
            "[\\[\\]{}\",:0-9a-z\\\\ ]{0,40}".prop_map(Bytes::from),
            Just(Bytes::from_static(b"[]")),
            Just(Bytes::from_static(b"{}")),
        ]
    }

    fn arb_job() -> impl Strategy<Value = Job> {
        (
            prop_oneof![Just(String::new()), "[ -~]{0,70}", any::<String>()],
            prop_oneof![Just("t".to_owned()), any::<String>()],
            prop_oneof![Just(String::new()), "[a-z:. ]{0,10}", any::<String>()],
            arb_json_bytes(),
            arb_json_bytes(),
            any::<Option<i32>>(),
            prop_oneof![any::<i64>(), 0..90_000i64],
            prop_oneof![Just(String::new()), any::<String>()],
            any::<i32>(),
        )
            .prop_map(
                |(jid, jobtype, queue, args, custom, retry, reserve_for, at, backtrace)| Job {
                    jid,
                    jobtype,
                    queue,
                    args,
                    custom,
                    retry,
                    reserve_for,
                    at,
                    backtrace,
                    ..Job::default()
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Arbitrary jobs never panic; whatever passes is a JSON object
        /// within the size limit carrying the reported jid.
        #[test]
        fn arbitrary_jobs_never_panic(job in arb_job()) {
            match validate(job, &LIMITS) {
                Ok(v) => {
                    prop_assert!(v.json.len() <= LIMITS.max_job_bytes);
                    let value: serde_json::Value = serde_json::from_slice(&v.json).unwrap();
                    prop_assert_eq!(value["jid"].as_str(), Some(v.jid.as_str()));
                    prop_assert!(value["args"].is_array());
                }
                Err(e) => prop_assert!(!e.reason.is_empty()),
            }
        }
    }
}
