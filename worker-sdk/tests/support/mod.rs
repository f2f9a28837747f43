//! Helpers shared by the SDK's integration tests.
#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod stack;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use faktory_gateway_worker::{Job, JobError};
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::Semaphore;

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Counts handlers that started, those running now, and the peak.
#[derive(Debug, Default)]
pub struct Concurrent {
    started: AtomicUsize,
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl Concurrent {
    pub fn enter(&self) {
        self.started.fetch_add(1, Ordering::SeqCst);
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
    }

    pub fn exit(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }

    pub fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }

    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

/// A handler that counts itself in `concurrent` and succeeds once it gets a
/// permit from `gate` (each permit lets one job finish).
pub fn gated(
    gate: &Arc<Semaphore>,
    concurrent: &Arc<Concurrent>,
) -> impl Fn(Job) -> BoxFuture<'static, Result<(), JobError>> + Send + Sync + 'static {
    let (gate, concurrent) = (gate.clone(), concurrent.clone());
    move |_job: Job| {
        let (gate, concurrent) = (gate.clone(), concurrent.clone());
        async move {
            concurrent.enter();
            gate.acquire().await.expect("gate open").forget();
            concurrent.exit();
            Ok(())
        }
        .boxed()
    }
}
