//! `POST /v1/jobs`: the `Push` rpc over HTTP/JSON. The body
//! `{"jobs": [{"jobtype": "add", "args": [1, 2], "queue": "default"}]}`
//! becomes a `PushRequest` (`args` and `custom` as plain JSON, passed on as
//! their text) and goes through the same submit path as gRPC pushes
//! ([`Submitter::push`]): the same validation, coalescing and per-job
//! results, answered as `{"results": [{"jid": "...", "status": "ACCEPTED"}]}`
//! with `200 OK` once Faktory holds the accepted jobs.
//!
//! The request itself is refused, with nothing pushed, when the token is
//! missing or wrong (401), the content type is not JSON (415), the body is
//! larger than `--max-message-bytes` (413), or the body is not JSON, has an
//! unknown field, or a job lacks `jobtype` (400, naming the job).

use bytes::Bytes;
use faktory_gateway_proto::v1::{Job, PushRequest, PushResponse};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::Api;
use super::reply::{self, Reply};
use crate::auth::Role;

/// The endpoint, as named in messages.
const ENDPOINT: &str = "POST /v1/jobs";

/// The request body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JobsBody {
    /// Each job, parsed one by one so that errors name the job.
    jobs: Vec<Box<RawValue>>,
}

/// One job: the fields of the contract's `Job` that a push takes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonJob {
    #[serde(default)]
    jid: String,
    jobtype: String,
    #[serde(default)]
    queue: String,
    #[serde(default)]
    args: Option<Box<RawValue>>,
    #[serde(default)]
    custom: Option<Box<RawValue>>,
    #[serde(default)]
    retry: Option<i32>,
    #[serde(default)]
    reserve_for: i64,
    #[serde(default)]
    at: String,
    #[serde(default)]
    backtrace: i32,
}

impl From<JsonJob> for Job {
    fn from(j: JsonJob) -> Job {
        let text = |raw: Option<Box<RawValue>>| {
            raw.map_or_else(Bytes::new, |r| Bytes::from(r.get().to_owned()))
        };
        Job {
            jid: j.jid,
            jobtype: j.jobtype,
            queue: j.queue,
            args: text(j.args),
            custom: text(j.custom),
            retry: j.retry,
            reserve_for: j.reserve_for,
            at: j.at,
            backtrace: j.backtrace,
            ..Job::default()
        }
    }
}

#[derive(Serialize)]
struct ResultsBody<'a> {
    results: Vec<JsonResult<'a>>,
}

#[derive(Serialize)]
struct JsonResult<'a> {
    jid: &'a str,
    status: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    field: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: &'a str,
}

/// Handles one `POST /v1/jobs`.
pub(super) async fn handle(api: &Api, request: http::Request<Incoming>) -> Reply {
    let (parts, body) = request.into_parts();
    if let Err(status) = api
        .auth
        .check_header(Role::Producer, &parts.headers, ENDPOINT)
    {
        return reply::status(&status);
    }
    if let Err(message) = check_content_type(&parts.headers) {
        return reply::error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            &message,
        );
    }
    let limit = api.max_body_bytes;
    let too_large = || {
        reply::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            &format!(
                "the request body is larger than the limit of {limit} bytes (--max-message-bytes)"
            ),
        )
    };
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return too_large();
    }
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
        Err(e) => {
            return reply::error(
                StatusCode::BAD_REQUEST,
                "unreadable_body",
                &format!("cannot read the request body: {e}"),
            );
        }
    };
    let request = match parse(&bytes) {
        Ok(request) => request,
        Err((code, message)) => return reply::error(StatusCode::BAD_REQUEST, code, &message),
    };
    match api.submitter.push(request).await {
        Ok(response) => reply::json(StatusCode::OK, &results(&response)),
        Err(status) => reply::status(&status),
    }
}

/// Accepts `application/json`, with parameters (`; charset=utf-8`) or not;
/// `Err` says what is wrong, for a 415.
fn check_content_type(headers: &HeaderMap) -> Result<(), String> {
    let value = headers.get(CONTENT_TYPE).map(|v| v.to_str().unwrap_or(""));
    let media = value.map(|v| v.split(';').next().unwrap_or("").trim());
    match media {
        Some(m) if m.eq_ignore_ascii_case("application/json") => Ok(()),
        Some(_) => Err(format!(
            "{ENDPOINT} takes content-type application/json, not {:?}",
            value.unwrap_or_default()
        )),
        None => Err(format!(
            "{ENDPOINT} takes content-type application/json; the request has none"
        )),
    }
}

/// The push request in `body`, or the error code and message for a 400.
fn parse(body: &[u8]) -> Result<PushRequest, (&'static str, String)> {
    let outer: JobsBody = serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            ("invalid_request", format!("request body: {e}"))
        } else {
            (
                "invalid_json",
                format!("the request body is not valid JSON: {e}"),
            )
        }
    })?;
    let mut jobs = Vec::with_capacity(outer.jobs.len());
    for (i, raw) in outer.jobs.iter().enumerate() {
        let job: JsonJob = serde_json::from_str(raw.get()).map_err(|e| {
            (
                "invalid_job",
                format!("jobs[{i}]: {}", without_position(&e)),
            )
        })?;
        jobs.push(Job::from(job));
    }
    Ok(PushRequest { jobs })
}

/// serde_json's message without its " at line L column C": inside one job
/// the position counts from the job's own start, which would mislead.
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    text.strip_suffix(&suffix).unwrap_or(&text).to_owned()
}

fn results(response: &PushResponse) -> ResultsBody<'_> {
    let results = response
        .results
        .iter()
        .map(|r| {
            let name = r.status().as_str_name();
            JsonResult {
                jid: &r.jid,
                status: name.strip_prefix("PUSH_STATUS_").unwrap_or(name),
                field: &r.field,
                reason: &r.reason,
            }
        })
        .collect();
    ResultsBody { results }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_json_args_and_custom() {
        let request = parse(
            br#"{"jobs":[{"jobtype":"add","args":[1, {"a": 2}],"custom":{"t":"x"},
                "queue":"q","jid":"j-12345678","retry":3,"reserve_for":120,
                "at":"2030-01-01T00:00:00Z","backtrace":5},{"jobtype":"b","args":null}]}"#,
        )
        .unwrap();
        let job = &request.jobs[0];
        assert_eq!(job.jobtype, "add");
        assert_eq!(&job.args[..], br#"[1, {"a": 2}]"#);
        assert_eq!(&job.custom[..], br#"{"t":"x"}"#);
        assert_eq!(
            (job.retry, job.reserve_for, job.backtrace),
            (Some(3), 120, 5)
        );
        assert_eq!(job.at, "2030-01-01T00:00:00Z");
        assert!(request.jobs[1].args.is_empty(), "null means absent");
    }

    #[test]
    fn refusals_are_specific() {
        let (code, message) = parse(b"{\"jobs\": [").unwrap_err();
        assert_eq!(code, "invalid_json");
        assert!(message.contains("not valid JSON"), "{message}");
        let (code, message) =
            parse(br#"{"jobs":[{"jobtype":"a"},{"jobtype":"b","args":[],"colour":1}]}"#)
                .unwrap_err();
        assert_eq!(code, "invalid_job");
        assert!(
            message.starts_with("jobs[1]: unknown field `colour`"),
            "{message}"
        );
        assert!(!message.contains("column"), "{message}");
        let (_, message) = parse(br#"{"jobs":[{"args":[1]}]}"#).unwrap_err();
        assert!(
            message.starts_with("jobs[0]: missing field `jobtype`"),
            "{message}"
        );
        let (code, message) = parse(br#"{"job":[]}"#).unwrap_err();
        assert_eq!(code, "invalid_request");
        assert!(message.contains("unknown field `job`"), "{message}");
        let (_, message) = parse(br#"{"jobs":[{"jobtype":"a","retry":"x"}]}"#).unwrap_err();
        assert!(message.contains("jobs[0]: invalid type"), "{message}");
    }
}
