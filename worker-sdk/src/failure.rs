//! [`JobError`]: what a handler returns when a job fails, and how errors and
//! panics become Faktory failures (errtype, message, backtrace lines).

use std::any::Any;
use std::fmt;

/// A job failure as Faktory records it.
///
/// Any `std::error::Error` converts into it with `?`: the errtype is the
/// error's type name (`io::Error`, `my_crate::AddError`), the message is its
/// `Display`, and the backtrace lines are its chain of `source()`s. Choose your
/// own errtype with [`JobError::new`].
///
/// ```
/// use faktory_gateway_worker::JobError;
///
/// fn parse(s: &str) -> Result<i64, JobError> {
///     let n: i64 = s.parse()?; // errtype "ParseIntError"
///     if n < 0 {
///         return Err(JobError::new("NegativeInput", format!("{n} is negative")));
///     }
///     Ok(n)
/// }
/// assert_eq!(parse("x").unwrap_err().errtype(), "num::ParseIntError");
/// assert_eq!(parse("-1").unwrap_err().errtype(), "NegativeInput");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobError {
    errtype: String,
    message: String,
    backtrace: Vec<String>,
}

impl JobError {
    /// A failure with a caller-chosen errtype (e.g. `TimeoutError`) and message.
    pub fn new(errtype: impl Into<String>, message: impl Into<String>) -> JobError {
        let errtype = errtype.into();
        JobError {
            errtype: if errtype.is_empty() {
                "Error".to_owned()
            } else {
                errtype
            },
            message: message.into(),
            backtrace: Vec::new(),
        }
    }

    /// A failure with errtype `Error` and the given message.
    pub fn msg(message: impl Into<String>) -> JobError {
        JobError::new("Error", message)
    }

    /// Replaces the backtrace lines (innermost first). Faktory keeps as many as
    /// the job's `backtrace` field allows.
    pub fn with_backtrace(mut self, lines: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.backtrace = lines.into_iter().map(Into::into).collect();
        self
    }

    /// The error class reported to Faktory.
    pub fn errtype(&self) -> &str {
        &self.errtype
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The backtrace lines.
    pub fn backtrace(&self) -> &[String] {
        &self.backtrace
    }

    /// The failure of a handler that panicked with `payload`.
    pub(crate) fn from_panic(payload: &(dyn Any + Send)) -> JobError {
        let message = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "handler panicked".to_owned()
        };
        JobError::new("panic", message)
    }

    /// Consumes the error into its parts, keeping at most `keep` backtrace lines.
    pub(crate) fn into_parts(self, keep: usize) -> (String, String, Vec<String>) {
        let mut backtrace = self.backtrace;
        backtrace.truncate(keep);
        (self.errtype, self.message, backtrace)
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.errtype, self.message)
    }
}

impl<E: std::error::Error + 'static> From<E> for JobError {
    fn from(error: E) -> JobError {
        let mut backtrace = Vec::new();
        let mut source = error.source();
        while let Some(cause) = source {
            backtrace.push(format!("caused by: {cause}"));
            source = cause.source();
        }
        JobError {
            errtype: short_type_name(std::any::type_name::<E>()),
            message: error.to_string(),
            backtrace,
        }
    }
}

/// Shortens a Rust type path to a readable error class: the type and its
/// nearest module, skipping private `error` modules and generic parameters
/// (`std::io::error::Error` becomes `io::Error`).
fn short_type_name(full: &str) -> String {
    let path = full.split('<').next().unwrap_or(full);
    let segments: Vec<&str> = path.split("::").collect();
    let Some((last, modules)) = segments.split_last() else {
        return full.to_owned();
    };
    match modules.iter().rev().find(|m| **m != "error") {
        Some(module) => format!("{module}::{last}"),
        None => (*last).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_are_shortened() {
        assert_eq!(short_type_name("std::io::error::Error"), "io::Error");
        assert_eq!(
            short_type_name("serde_json::error::Error"),
            "serde_json::Error"
        );
        assert_eq!(
            short_type_name("core::num::error::ParseIntError"),
            "num::ParseIntError"
        );
        assert_eq!(short_type_name("my_app::jobs::AddError"), "jobs::AddError");
        assert_eq!(short_type_name("Local"), "Local");
        assert_eq!(short_type_name("a::Wrapper<b::Error>"), "a::Wrapper");
    }

    #[test]
    fn std_errors_convert_with_their_source_chain() {
        let inner = std::io::Error::other("disk on fire");
        let outer = std::io::Error::new(std::io::ErrorKind::InvalidData, Wrapped(inner));
        let error = JobError::from(outer);
        assert_eq!(error.errtype(), "io::Error");
        assert_eq!(error.message(), "wrapped");
        assert_eq!(error.backtrace(), ["caused by: disk on fire"]);
    }

    #[test]
    fn panics_keep_their_message_and_backtraces_are_truncated() {
        let payload: Box<dyn Any + Send> = Box::new(format!("boom {}", 7));
        let error = JobError::from_panic(payload.as_ref());
        assert_eq!((error.errtype(), error.message()), ("panic", "boom 7"));
        let (_, _, lines) = JobError::msg("x")
            .with_backtrace(["a", "b", "c"])
            .into_parts(2);
        assert_eq!(lines, ["a", "b"]);
    }

    #[derive(Debug)]
    struct Wrapped(std::io::Error);
    impl fmt::Display for Wrapped {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("wrapped")
        }
    }
    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
}
