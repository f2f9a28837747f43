//! Validation of a worker's `Hello`: what a session is allowed to ask for.
//! Every refusal names the offending field, for the INVALID_ARGUMENT status.

use crate::fast_hash::Set;

use faktory_gateway_proto::v1::Hello;

use crate::job::check_queue;

/// Most labels a hello may carry.
pub(crate) const MAX_LABELS: usize = 32;
/// Most queues a hello may name.
pub(crate) const MAX_QUEUES: usize = 64;
/// Most job types a hello may name.
pub(crate) const MAX_JOBTYPES: usize = 1024;
/// Longest worker id, in bytes.
pub(crate) const MAX_WORKER_ID_BYTES: usize = 128;
/// Longest job type, in bytes.
pub(crate) const MAX_JOBTYPE_BYTES: usize = 256;
/// Most jids a hello may list as held.
pub(crate) const MAX_HOLDING: usize = 100_000;
/// Longest jid a hello may list as held, in bytes.
pub(crate) const MAX_HELD_JID_BYTES: usize = 256;
/// What `max_message_bytes: 0` means.
pub(crate) const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// The smallest `max_message_bytes` a worker may state: below this not even a
/// small job fits.
pub(crate) const MIN_MAX_MESSAGE_BYTES: usize = 1024;

/// What a valid hello asks for.
#[derive(Debug, Clone)]
pub(crate) struct SessionSpec {
    /// The worker's id (made up when it gave none).
    pub(crate) worker_id: String,
    /// The worker's host name, for logs and the workers listing.
    pub(crate) hostname: String,
    /// The worker's labels, for the workers listing.
    pub(crate) labels: Vec<String>,
    /// Queues in priority order (never empty).
    pub(crate) queues: Vec<String>,
    /// Job types it runs; empty means any.
    pub(crate) jobtypes: Set<String>,
    /// Requested window (at least 1, not yet clamped).
    pub(crate) window: u32,
    /// Largest gateway -> worker message, in bytes.
    pub(crate) max_message_bytes: usize,
    /// Jids of jobs from earlier streams the worker still holds.
    pub(crate) holding: Vec<String>,
}

impl SessionSpec {
    /// Whether this worker takes jobs of `queue`.
    pub(crate) fn serves_queue(&self, queue: &str) -> bool {
        self.queues.iter().any(|q| q == queue)
    }

    /// Whether this worker runs jobs of `jobtype`.
    pub(crate) fn runs(&self, jobtype: &str) -> bool {
        self.jobtypes.is_empty() || self.jobtypes.contains(jobtype)
    }
}

/// Why a hello was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("hello.{field}: {reason}")]
pub(crate) struct HelloError {
    /// The offending field of `Hello`.
    pub(crate) field: &'static str,
    /// What is wrong with it.
    pub(crate) reason: String,
}

fn refuse(field: &'static str, reason: impl Into<String>) -> HelloError {
    HelloError {
        field,
        reason: reason.into(),
    }
}

/// Checks a hello; `session_seq` makes up a worker id when none is given.
///
/// # Errors
/// A [`HelloError`] naming the first offending field.
pub(crate) fn validate(hello: Hello, session_seq: u64) -> Result<SessionSpec, HelloError> {
    if hello.window == 0 {
        return Err(refuse("window", "must be at least 1"));
    }
    if hello.worker_id.len() > MAX_WORKER_ID_BYTES {
        return Err(refuse(
            "worker_id",
            format!("longer than {MAX_WORKER_ID_BYTES} bytes"),
        ));
    }
    if hello.labels.len() > MAX_LABELS {
        return Err(refuse("labels", format!("more than {MAX_LABELS} labels")));
    }
    if hello.queues.len() > MAX_QUEUES {
        return Err(refuse("queues", format!("more than {MAX_QUEUES} queues")));
    }
    for queue in &hello.queues {
        if let Err(reason) = check_queue(queue) {
            return Err(refuse("queues", format!("queue {queue:?}: {reason}")));
        }
    }
    if hello.jobtypes.len() > MAX_JOBTYPES {
        return Err(refuse(
            "jobtypes",
            format!("more than {MAX_JOBTYPES} job types"),
        ));
    }
    if let Some(bad) = hello
        .jobtypes
        .iter()
        .find(|t| t.is_empty() || t.len() > MAX_JOBTYPE_BYTES)
    {
        return Err(refuse(
            "jobtypes",
            format!("invalid job type {bad:?} (1 to {MAX_JOBTYPE_BYTES} bytes)"),
        ));
    }
    if hello.holding.len() > MAX_HOLDING {
        return Err(refuse("holding", format!("more than {MAX_HOLDING} jids")));
    }
    if let Some(bad) = hello
        .holding
        .iter()
        .find(|j| j.is_empty() || j.len() > MAX_HELD_JID_BYTES)
    {
        return Err(refuse(
            "holding",
            format!("invalid jid {bad:?} (1 to {MAX_HELD_JID_BYTES} bytes)"),
        ));
    }
    let max_message_bytes = match hello.max_message_bytes as usize {
        0 => DEFAULT_MAX_MESSAGE_BYTES,
        n if n < MIN_MAX_MESSAGE_BYTES => {
            return Err(refuse(
                "max_message_bytes",
                format!("must be 0 or at least {MIN_MAX_MESSAGE_BYTES}"),
            ));
        }
        n => n,
    };
    let mut queues = Vec::with_capacity(hello.queues.len().max(1));
    for q in hello.queues {
        if !queues.contains(&q) {
            queues.push(q);
        }
    }
    if queues.is_empty() {
        queues.push("default".to_owned());
    }
    let worker_id = if hello.worker_id.is_empty() {
        format!("anonymous-{session_seq}")
    } else {
        hello.worker_id
    };
    Ok(SessionSpec {
        worker_id,
        hostname: hello.hostname,
        labels: hello.labels,
        queues,
        jobtypes: hello.jobtypes.into_iter().collect(),
        window: hello.window,
        max_message_bytes,
        holding: hello.holding,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> Hello {
        Hello {
            worker_id: "w1".into(),
            window: 10,
            ..Hello::default()
        }
    }

    #[test]
    fn defaults_queue_size_and_id() {
        let spec = validate(
            Hello {
                worker_id: String::new(),
                ..hello()
            },
            7,
        )
        .unwrap();
        assert_eq!(spec.queues, vec!["default"]);
        assert_eq!(spec.max_message_bytes, DEFAULT_MAX_MESSAGE_BYTES);
        assert_eq!(spec.worker_id, "anonymous-7");
        assert!(spec.runs("anything"));
        assert!(spec.serves_queue("default"));
        assert!(!spec.serves_queue("other"));
    }

    #[test]
    fn keeps_queue_order_without_duplicates() {
        let spec = validate(
            Hello {
                queues: vec!["a".into(), "b".into(), "a".into()],
                jobtypes: vec!["x".into()],
                ..hello()
            },
            1,
        )
        .unwrap();
        assert_eq!(spec.queues, vec!["a", "b"]);
        assert!(spec.runs("x"));
        assert!(!spec.runs("y"));
    }

    #[test]
    fn refusals_name_the_field() {
        let field = |h: Hello| validate(h, 1).unwrap_err().field;
        assert_eq!(
            field(Hello {
                window: 0,
                ..hello()
            }),
            "window"
        );
        assert_eq!(
            field(Hello {
                queues: vec!["bad queue".into()],
                ..hello()
            }),
            "queues"
        );
        assert_eq!(
            field(Hello {
                queues: vec![String::new()],
                ..hello()
            }),
            "queues"
        );
        assert_eq!(
            field(Hello {
                labels: vec!["l".into(); MAX_LABELS + 1],
                ..hello()
            }),
            "labels"
        );
        assert_eq!(
            field(Hello {
                worker_id: "w".repeat(MAX_WORKER_ID_BYTES + 1),
                ..hello()
            }),
            "worker_id"
        );
        assert_eq!(
            field(Hello {
                jobtypes: vec![String::new()],
                ..hello()
            }),
            "jobtypes"
        );
        assert_eq!(
            field(Hello {
                max_message_bytes: 10,
                ..hello()
            }),
            "max_message_bytes"
        );
        assert_eq!(
            field(Hello {
                holding: vec![String::new()],
                ..hello()
            }),
            "holding"
        );
        assert_eq!(
            field(Hello {
                holding: vec!["j".into(); MAX_HOLDING + 1],
                ..hello()
            }),
            "holding"
        );
        let message = validate(
            Hello {
                window: 0,
                ..hello()
            },
            1,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(message, "hello.window: must be at least 1");
    }
}
