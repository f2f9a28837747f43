//! Gateway-path workers: one worker-SDK worker process-equivalent (one
//! `faktory_gateway_worker::Worker`, one gRPC stream) with a given handler
//! concurrency, connected to the gateway across the link. Latency is hidden
//! by the SDK's prefetch window, not by extra slots.

use std::sync::Arc;

use faktory_gateway_worker::{JobError, StatsHandle, Worker};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::runs::scenario::JOBTYPE;
use crate::workers::probe::Probe;

/// Overrides of the worker SDK's defaults (`None`: the SDK's own).
#[derive(Debug, Clone, Copy, Default)]
pub struct SdkTuning {
    /// Largest prefetch beyond the handler concurrency.
    pub max_prefetch: Option<u32>,
    /// Longest wait before a partial batch of acks is sent.
    pub result_batch_delay: Option<std::time::Duration>,
}

/// A running SDK worker.
pub struct SdkWorkers {
    cancel: CancellationToken,
    stats: StatsHandle,
    task: JoinHandle<Result<(), Error>>,
}

impl SdkWorkers {
    /// Starts one SDK worker with `concurrency` handler slots serving
    /// `queue` through the gateway at `gateway_url`, each job handled by
    /// `probe`; `tuning` overrides SDK defaults. Connects in the background.
    ///
    /// Fails when the SDK rejects the configuration.
    pub fn start(
        gateway_url: &str,
        queue: &str,
        concurrency: usize,
        tuning: SdkTuning,
        probe: Arc<Probe>,
    ) -> Result<SdkWorkers, Error> {
        let cancel = CancellationToken::new();
        let mut builder = Worker::builder();
        if let Some(max_prefetch) = tuning.max_prefetch {
            builder = builder.max_prefetch(max_prefetch);
        }
        if let Some(delay) = tuning.result_batch_delay {
            builder = builder.result_batch_delay(delay);
        }
        let worker = builder
            .gateway(gateway_url)
            .queues([queue])
            .concurrency(concurrency)
            .register(JOBTYPE, move |job| {
                let probe = Arc::clone(&probe);
                async move {
                    probe.run_raw(job.raw_args()).await;
                    Ok::<(), JobError>(())
                }
            })
            .with_graceful_shutdown(cancel.clone().cancelled_owned())
            .build()
            .map_err(|e| Error::Sdk(e.to_string()))?;
        let stats = worker.stats();
        let task = tokio::spawn(async move {
            worker
                .run()
                .await
                .map(drop)
                .map_err(|e| Error::Sdk(e.to_string()))
        });
        Ok(SdkWorkers {
            cancel,
            stats,
            task,
        })
    }

    /// The worker's counters, including the window it last announced
    /// (concurrency + prefetch).
    pub fn stats(&self) -> StatsHandle {
        self.stats.clone()
    }

    /// Shuts the worker down gracefully and waits for it.
    ///
    /// Fails when the worker reported an error.
    pub async fn stop(self) -> Result<(), Error> {
        self.cancel.cancel();
        self.task
            .await
            .map_err(|e| Error::Setup(format!("sdk worker task: {e}")))?
    }
}
