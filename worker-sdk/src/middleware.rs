//! Middleware: code that wraps every handler run (tracing, metrics, error
//! reporting), registered with [`WorkerBuilder::middleware`]. The first
//! registered is the outermost: it runs first before the handler and last
//! after it. [`Next`] is the rest of the chain.

use std::future::Future;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::handler::{self, Handler};
use crate::{Job, JobError};

/// A type-erased middleware.
pub(crate) type Middleware =
    Arc<dyn Fn(Job, Next) -> BoxFuture<'static, Result<(), JobError>> + Send + Sync>;

/// Middleware in registration order (outermost first).
pub(crate) type Chain = Arc<[Middleware]>;

/// Wraps an async middleware function.
pub(crate) fn from_fn<F, Fut>(f: F) -> Middleware
where
    F: Fn(Job, Next) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), JobError>> + Send + 'static,
{
    Arc::new(move |job, next| f(job, next).boxed())
}

/// The rest of the middleware chain and, at its end, the job's handler.
/// A middleware calls [`run`](Self::run) once to go on, or returns without
/// it to skip the handler (the job then gets the middleware's result).
pub struct Next {
    chain: Chain,
    index: usize,
    handler: Handler,
}

impl std::fmt::Debug for Next {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Next")
            .field("remaining_middleware", &(self.chain.len() - self.index))
            .finish_non_exhaustive()
    }
}

impl Next {
    /// Runs the rest of the chain on `job`. A panic in the handler comes
    /// back as a [`JobError`] with errtype `panic`, so every middleware
    /// sees every failure.
    pub fn run(self, job: Job) -> BoxFuture<'static, Result<(), JobError>> {
        match self.chain.get(self.index).cloned() {
            Some(middleware) => middleware(
                job,
                Next {
                    index: self.index + 1,
                    ..self
                },
            ),
            None => handler::run(self.handler, job).boxed(),
        }
    }
}

/// Runs `job` through `chain` and `handler`; a panicking middleware fails
/// the job like a panicking handler. Without middleware the handler runs
/// as it is (no boxed chain, one panic catch).
pub(crate) async fn run(chain: Chain, handler: Handler, job: Job) -> Result<(), JobError> {
    if chain.is_empty() {
        return handler::run(handler, job).await;
    }
    let next = Next {
        chain,
        index: 0,
        handler,
    };
    handler::catch_panic(next.run(job)).await
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::job::tests::job;

    #[tokio::test]
    async fn the_first_registered_is_outermost_and_sees_handler_panics() {
        let log = Arc::new(Mutex::new(Vec::<String>::new()));
        let layer = |name: &'static str| {
            let log = log.clone();
            from_fn(move |job: Job, next: Next| {
                let log = log.clone();
                async move {
                    log.lock().unwrap().push(format!("{name} before"));
                    let result = next.run(job).await;
                    let outcome = match &result {
                        Ok(()) => "ok".to_owned(),
                        Err(e) => e.errtype().to_owned(),
                    };
                    log.lock().unwrap().push(format!("{name} after: {outcome}"));
                    result
                }
            })
        };
        let chain: Chain = vec![layer("outer"), layer("inner")].into();
        let handler = handler::from_async(|_job: Job| async { panic!("boom") });
        let error = run(chain, handler, job("[]", None)).await.unwrap_err();
        assert_eq!(error.errtype(), "panic");
        assert_eq!(
            *log.lock().unwrap(),
            [
                "outer before",
                "inner before",
                "inner after: panic",
                "outer after: panic"
            ]
        );
    }

    #[tokio::test]
    async fn a_middleware_may_skip_the_handler_and_its_panic_is_a_failure() {
        let skip: Chain = vec![from_fn(|_job: Job, _next: Next| async {
            Err(JobError::new("Skipped", "not today"))
        })]
        .into();
        let handler = handler::from_async(|_job: Job| async { panic!("must not run") });
        let error = run(skip, handler.clone(), job("[]", None))
            .await
            .unwrap_err();
        assert_eq!(error.errtype(), "Skipped");

        let panics: Chain = vec![from_fn(|_job: Job, _next: Next| async {
            panic!("in middleware")
        })]
        .into();
        let error = run(panics, handler, job("[]", None)).await.unwrap_err();
        assert_eq!(
            (error.errtype(), error.message()),
            ("panic", "in middleware")
        );
    }
}
