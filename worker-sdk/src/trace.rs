//! W3C trace context (`traceparent`) carried from producer to handler in a
//! job's `custom.traceparent`: parsing it, deriving the context of a job
//! pushed from inside a handler (same trace, new span id), and the handler
//! span that records it.
//!
//! Format (<https://www.w3.org/TR/trace-context/#traceparent-header>):
//! `00-<32 hex trace id>-<16 hex parent span id>-<2 hex flags>`.

use rand::Rng;
use tracing::Span;

/// The key of the trace context in a job's `custom` object.
pub(crate) const CUSTOM_KEY: &str = "traceparent";

/// A valid `traceparent` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TraceParent(String);

impl TraceParent {
    /// Parses a `traceparent` value; `None` unless it is version `00` with
    /// a non-zero trace id and span id in lowercase hex.
    pub(crate) fn parse(value: &str) -> Option<TraceParent> {
        let parts: Vec<&str> = value.split('-').collect();
        let [version, trace_id, span_id, flags] = parts.as_slice() else {
            return None;
        };
        let hex = |s: &str, len: usize| {
            s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
        let valid = *version == "00"
            && hex(trace_id, 32)
            && nonzero(trace_id)
            && hex(span_id, 16)
            && nonzero(span_id)
            && hex(flags, 2);
        valid.then(|| TraceParent(value.to_owned()))
    }

    /// The trace id (32 hex digits).
    pub(crate) fn trace_id(&self) -> &str {
        &self.0[3..35]
    }

    /// The context for work caused by this one: the same trace and flags,
    /// a new random span id.
    pub(crate) fn child(&self) -> TraceParent {
        let span_id: u64 = rand::rng().random_range(1..=u64::MAX);
        TraceParent(format!(
            "00-{}-{span_id:016x}-{}",
            self.trace_id(),
            &self.0[53..55]
        ))
    }

    /// The value as sent.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// The span a handler runs in: the job's identity, plus its trace context
/// (`traceparent`, `trace_id`) when the job carries one.
pub(crate) fn job_span(job: &crate::Job) -> Span {
    let span = tracing::info_span!(
        "job",
        jid = %job.jid(),
        jobtype = %job.jobtype(),
        queue = %job.queue(),
        attempt = job.attempt(),
        traceparent = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    if let Some(parent) = job.trace_parent() {
        span.record("traceparent", parent.as_str());
        span.record("trace_id", parent.trace_id());
    }
    span
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing::span::{Attributes, Id, Record};
    use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_only_valid_values() {
        let parent = TraceParent::parse(VALID).unwrap();
        assert_eq!(parent.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }

    /// Records the fields of every span as `name=value` text.
    #[derive(Clone, Default)]
    struct Fields(Arc<Mutex<Vec<String>>>);

    impl tracing::field::Visit for Fields {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            self.0
                .lock()
                .unwrap()
                .push(format!("{}={value:?}", field.name()));
        }
        fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
            self.0
                .lock()
                .unwrap()
                .push(format!("{}={value}", field.name()));
        }
    }

    impl<S: tracing::Subscriber> Layer<S> for Fields {
        fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
            attrs.record(&mut self.clone());
        }
        fn on_record(&self, _: &Id, values: &Record<'_>, _: Context<'_, S>) {
            values.record(&mut self.clone());
        }
    }

    #[test]
    fn the_job_span_records_the_trace_context() {
        let fields = Fields::default();
        let subscriber = tracing_subscriber::registry().with(fields.clone());
        let traced = crate::job::tests::job_with_custom(&format!(r#"{{"traceparent":"{VALID}"}}"#));
        let untraced = crate::job::tests::job_with_custom(r#"{"traceparent":"garbage"}"#);
        tracing::subscriber::with_default(subscriber, || {
            drop(job_span(&traced));
            let recorded = std::mem::take(&mut *fields.0.lock().unwrap());
            assert!(
                recorded.contains(&format!("traceparent={VALID}")),
                "{recorded:?}"
            );
            assert!(
                recorded.contains(&"trace_id=4bf92f3577b34da6a3ce929d0e0e4736".to_owned()),
                "{recorded:?}"
            );
            assert!(recorded.contains(&"jid=j1".to_owned()), "{recorded:?}");
            drop(job_span(&untraced));
            let recorded = fields.0.lock().unwrap();
            assert!(
                !recorded.iter().any(|f| f.starts_with("trace")),
                "{recorded:?}"
            );
        });
        assert_eq!(traced.traceparent(), Some(VALID));
        assert_eq!(untraced.traceparent(), None);
    }

    #[test]
    fn a_child_keeps_the_trace_and_flags_with_a_new_span_id() {
        let parent = TraceParent::parse(VALID).unwrap();
        let child = parent.child();
        assert_eq!(TraceParent::parse(child.as_str()), Some(child.clone()));
        assert_eq!(child.trace_id(), parent.trace_id());
        assert!(child.as_str().ends_with("-01"));
        assert_ne!(&child.as_str()[36..52], &VALID[36..52]);
    }
}
