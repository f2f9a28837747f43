//! Registered job handlers: async ones run on the runtime, blocking ones on
//! the blocking pool; both are wrapped so a panic becomes a [`JobError`].

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::{Job, JobError};

/// A type-erased handler: takes a job, eventually yields its result.
pub(crate) type Handler =
    Arc<dyn Fn(Job) -> BoxFuture<'static, Result<(), JobError>> + Send + Sync>;

/// Handlers by jobtype.
pub(crate) type Handlers = HashMap<String, Handler>;

/// Wraps an async handler.
pub(crate) fn from_async<F, Fut>(f: F) -> Handler
where
    F: Fn(Job) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), JobError>> + Send + 'static,
{
    Arc::new(move |job| f(job).boxed())
}

/// Wraps a blocking handler so it runs on tokio's blocking pool.
pub(crate) fn from_blocking<F>(f: F) -> Handler
where
    F: Fn(Job) -> Result<(), JobError> + Send + Sync + 'static,
{
    let f = Arc::new(f);
    Arc::new(move |job| {
        let f = f.clone();
        async move {
            match tokio::task::spawn_blocking(move || f(job)).await {
                Ok(result) => result,
                Err(error) if error.is_panic() => {
                    Err(JobError::from_panic(error.into_panic().as_ref()))
                }
                Err(_) => Err(JobError::new("Cancelled", "blocking handler was cancelled")),
            }
        }
        .boxed()
    })
}

/// Runs `handler` on `job`, turning a panic (in the call or in the future)
/// into a failure so the worker keeps running.
pub(crate) async fn run(handler: Handler, job: Job) -> Result<(), JobError> {
    catch_panic(async move { handler(job).await }).await
}

/// Awaits `run`, turning a panic into a failure with errtype `panic`.
pub(crate) async fn catch_panic<F>(run: F) -> Result<(), JobError>
where
    F: Future<Output = Result<(), JobError>>,
{
    match AssertUnwindSafe(run).catch_unwind().await {
        Ok(result) => result,
        Err(payload) => Err(JobError::from_panic(payload.as_ref())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        crate::job::tests::job("[]", None)
    }

    #[tokio::test]
    async fn panics_become_failures() {
        let sync_panic = from_async(|_job| -> futures::future::Ready<Result<(), JobError>> {
            panic!("before the future")
        });
        let error = run(sync_panic, job()).await.unwrap_err();
        assert_eq!(
            (error.errtype(), error.message()),
            ("panic", "before the future")
        );

        let async_panic = from_async(|_job| async { panic!("inside {}", "the future") });
        let error = run(async_panic, job()).await.unwrap_err();
        assert_eq!(error.message(), "inside the future");

        let blocking_panic = from_blocking(|_job| panic!("on the pool"));
        let error = run(blocking_panic, job()).await.unwrap_err();
        assert_eq!(error.message(), "on the pool");
    }

    #[tokio::test]
    async fn results_pass_through() {
        let ok = from_blocking(|_job| Ok(()));
        assert!(run(ok, job()).await.is_ok());
        let failing = from_async(|_job| async { Err(JobError::new("Nope", "no")) });
        assert_eq!(run(failing, job()).await.unwrap_err().errtype(), "Nope");
    }
}
