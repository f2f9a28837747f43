//! Encoding of Faktory command lines into a reused write buffer, and [`FailCommand`].
//!
//! Every encoder appends one complete line (`VERB payload\r\n`) to a `BytesMut` that the
//! connection reuses for every batch, so the hot path (ACK, FETCH, PUSH) allocates nothing per
//! job. JSON payloads are written compactly by serde_json straight into the buffer.

use bytes::{BufMut, BytesMut};
use serde::Serialize;

use super::error::Error;

/// One `FAIL` to send: the job's jid and why it failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailCommand {
    /// The failed job's jid.
    pub jid: String,
    /// The error's type or class name (Faktory shows it in the UI).
    pub errtype: String,
    /// The error message.
    pub message: String,
    /// Backtrace lines, most recent first; may be empty.
    pub backtrace: Vec<String>,
}

const CRLF: &[u8] = b"\r\n";

/// Appends `json` as one line: a raw CR or LF can only be insignificant whitespace in valid JSON
/// (inside strings they must be escaped), so it is replaced by a space instead of ending the
/// command early.
fn put_json_line(buf: &mut BytesMut, json: &[u8]) {
    if json.iter().any(|&b| b == b'\r' || b == b'\n') {
        buf.extend(
            json.iter()
                .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
    } else {
        buf.extend_from_slice(json);
    }
}

fn put_serialized<T: Serialize + ?Sized>(buf: &mut BytesMut, value: &T) {
    // Serializing plain strings and structs of strings into memory cannot fail.
    serde_json::to_writer(buf.writer(), value).expect("serializing to memory cannot fail");
}

/// `PUSH <job>`.
pub(crate) fn push(buf: &mut BytesMut, job_json: &[u8]) {
    buf.extend_from_slice(b"PUSH ");
    put_json_line(buf, job_json);
    buf.extend_from_slice(CRLF);
}

/// `PUSHB [<job>,...]`.
pub(crate) fn push_bulk(buf: &mut BytesMut, jobs_json_array: &[u8]) {
    buf.extend_from_slice(b"PUSHB ");
    put_json_line(buf, jobs_json_array);
    buf.extend_from_slice(CRLF);
}

/// Checks that queue names can be sent on a FETCH line.
pub(crate) fn check_queues(queues: &[String]) -> Result<(), Error> {
    if queues.is_empty() {
        return Err(Error::InvalidInput {
            reason: "fetch needs at least one queue".to_owned(),
        });
    }
    match queues.iter().find(|q| {
        q.is_empty()
            || q.bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    }) {
        Some(bad) => Err(Error::InvalidInput {
            reason: format!("queue name {bad:?} is empty or contains whitespace"),
        }),
        None => Ok(()),
    }
}

/// `depth` copies of `FETCH q1 q2 ...`; the queues must have passed [`check_queues`].
pub(crate) fn fetch(buf: &mut BytesMut, queues: &[String], depth: usize) {
    if depth == 0 {
        return;
    }
    let start = buf.len();
    buf.extend_from_slice(b"FETCH");
    for q in queues {
        buf.put_u8(b' ');
        buf.extend_from_slice(q.as_bytes());
    }
    buf.extend_from_slice(CRLF);
    let end = buf.len();
    buf.reserve((end - start) * depth.saturating_sub(1));
    for _ in 1..depth {
        buf.extend_from_within(start..end);
    }
}

/// `ACK {"jid":...}`.
pub(crate) fn ack(buf: &mut BytesMut, jid: &str) {
    buf.extend_from_slice(b"ACK {\"jid\":");
    put_serialized(buf, jid);
    buf.extend_from_slice(b"}\r\n");
}

/// `FAIL {"jid","errtype","message","backtrace"}`.
pub(crate) fn fail(buf: &mut BytesMut, fail: &FailCommand) {
    buf.extend_from_slice(b"FAIL ");
    put_serialized(buf, fail);
    buf.extend_from_slice(CRLF);
}

/// `BEAT {"wid":...}`.
pub(crate) fn beat(buf: &mut BytesMut, wid: &str) {
    buf.extend_from_slice(b"BEAT {\"wid\":");
    put_serialized(buf, wid);
    buf.extend_from_slice(b"}\r\n");
}

/// `HELLO <payload>`.
pub(crate) fn hello<T: Serialize>(buf: &mut BytesMut, payload: &T) {
    buf.extend_from_slice(b"HELLO ");
    put_serialized(buf, payload);
    buf.extend_from_slice(CRLF);
}

/// A bare command such as `INFO` or `END`.
pub(crate) fn bare(buf: &mut BytesMut, verb: &str) {
    buf.extend_from_slice(verb.as_bytes());
    buf.extend_from_slice(CRLF);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(buf: &BytesMut) -> &str {
        std::str::from_utf8(buf).unwrap()
    }

    #[test]
    fn ack_and_beat_escape_their_strings() {
        let mut buf = BytesMut::new();
        ack(&mut buf, "abc");
        ack(&mut buf, "we\"ird\r\n");
        beat(&mut buf, "w1");
        assert_eq!(
            text(&buf),
            "ACK {\"jid\":\"abc\"}\r\nACK {\"jid\":\"we\\\"ird\\r\\n\"}\r\nBEAT {\"wid\":\"w1\"}\r\n"
        );
    }

    #[test]
    fn fail_is_one_json_line() {
        let mut buf = BytesMut::new();
        fail(
            &mut buf,
            &FailCommand {
                jid: "j1".into(),
                errtype: "RuntimeError".into(),
                message: "boom\nline two".into(),
                backtrace: vec!["a.rs:1".into()],
            },
        );
        assert_eq!(
            text(&buf),
            "FAIL {\"jid\":\"j1\",\"errtype\":\"RuntimeError\",\"message\":\"boom\\nline two\",\"backtrace\":[\"a.rs:1\"]}\r\n"
        );
    }

    #[test]
    fn fetch_repeats_the_line() {
        let mut buf = BytesMut::new();
        fetch(&mut buf, &["critical".into(), "default".into()], 3);
        assert_eq!(text(&buf), "FETCH critical default\r\n".repeat(3));
        buf.clear();
        fetch(&mut buf, &["q".into()], 0);
        assert!(buf.is_empty());
    }

    #[test]
    fn queue_names_are_checked() {
        assert!(check_queues(&[]).is_err());
        assert!(check_queues(&["a b".into()]).is_err());
        assert!(check_queues(&["a\r\nEND".into()]).is_err());
        assert!(check_queues(&["".into()]).is_err());
        assert!(check_queues(&["default".into(), "low-prio.x".into()]).is_ok());
    }

    #[test]
    fn pretty_printed_job_stays_on_one_line() {
        let mut buf = BytesMut::new();
        push(&mut buf, b"{\r\n  \"jid\": \"a\",\n  \"args\": []\n}");
        assert_eq!(text(&buf), "PUSH {    \"jid\": \"a\",   \"args\": [] }\r\n");
        buf.clear();
        push_bulk(&mut buf, b"[]");
        assert_eq!(text(&buf), "PUSHB []\r\n");
    }
}
