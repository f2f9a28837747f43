//! One running scenario: the feeder filling its queue, the gateway child
//! (gateway path), the link, and the workers — with what is needed to
//! measure it (completion counts at the workers and at Faktory, Faktory's
//! reserved set, connection counts, gateway samples), to drain it, to run
//! the paced latency phase, and to stop it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::Error;
use crate::measure::faktory_stats::{InfoPoller, InfoReading, Peaks};
use crate::measure::process_stats::{
    ProcessSample, established_to_port, sample_process, sample_processes,
};
use crate::runs::scenario::{Scenario, WorkerPath};
use crate::setup::gateway_process::GatewayProcess;
use crate::setup::link::{Link, url_with_addr};
use crate::workers::direct::DirectWorkers;
use crate::workers::gateway_path::{SdkTuning, SdkWorkers};
use crate::workers::probe::Probe;
use crate::workers::producer::{Feeder, push_paced};

/// Where the Faktory is and how to start gateways for it.
#[derive(Debug, Clone)]
pub struct Env {
    /// Faktory URL for producers, direct workers and the gateway.
    pub faktory_url: String,
    /// Faktory's address (the link proxies to it).
    pub faktory_addr: std::net::SocketAddr,
    /// The bench binary, re-executed as the gateway child (see
    /// [`crate::setup::gateway_process`]).
    pub gateway_exe: std::path::PathBuf,
    /// Extra arguments for every gateway child.
    pub gateway_args: Vec<String>,
    /// Overrides of the worker SDK's defaults.
    pub sdk: SdkTuning,
    /// Processes whose CPU counts as Faktory's, sampled with each
    /// measurement: the test server when it runs as a child, or what
    /// `bench --faktory-pid` names (a local real Faktory and its Redis).
    pub faktory_pids: Vec<u32>,
    /// What every queue of this run starts with (see
    /// [`crate::setup::run_queues`]).
    pub queue_prefix: String,
}

enum Workers {
    Direct(DirectWorkers),
    Sdk(SdkWorkers),
}

/// A scenario with everything running.
pub struct Load {
    scenario: Scenario,
    probe: Arc<Probe>,
    info: InfoPoller,
    processed_at_start: u64,
    feeder: Option<Feeder>,
    gateway: Option<GatewayProcess>,
    link: Link,
    workers: Workers,
    expected_worker_connections: usize,
    faktory_baseline: usize,
    faktory_pids: Vec<u32>,
}

/// One point of a measurement window.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// When.
    pub at: Instant,
    /// Jobs the workers finished so far (their handlers returned).
    pub done: u64,
    /// Faktory's latest `INFO` reading (it has its own time: rates at
    /// Faktory are taken between readings).
    pub info: InfoReading,
    /// The gateway child's CPU and peak RSS, gateway path only.
    pub gateway: Option<ProcessSample>,
    /// The CPU of the processes counted as Faktory (see
    /// [`Env::faktory_pids`]; their peak RSS is the largest of them), when
    /// there are any.
    pub faktory: Option<ProcessSample>,
    /// The bench process's own CPU and peak RSS: the workers, the feeder,
    /// the link emulator and the test server when it runs in process (not
    /// as a child, and no `FAKTORY_URL`).
    pub bench: Option<ProcessSample>,
}

impl Load {
    /// Starts the feeder, then (gateway path) a gateway child, the link and
    /// the workers. Returns at once; see [`Load::wait_ready`].
    ///
    /// Fails when any part cannot start.
    pub async fn start(env: &Env, scenario: Scenario, queue: &str) -> Result<Load, Error> {
        let probe = Arc::new(Probe::new(scenario.workload));
        let feeder = Feeder::start(
            &env.faktory_url,
            queue,
            scenario.workload,
            Arc::clone(&probe),
        )
        .await?;
        // Opened before the baseline: the poller's connection is not the
        // workers' or the gateway's.
        let info = InfoPoller::start(&env.faktory_url, queue).await?;
        let processed_at_start = info.latest().counts.processed;
        let faktory_baseline = established_to_port(env.faktory_addr.port()).unwrap_or(0);
        let (gateway, upstream) = match scenario.path {
            WorkerPath::Direct { .. } => (None, env.faktory_addr),
            WorkerPath::Gateway { .. } => {
                let gateway =
                    GatewayProcess::start(&env.gateway_exe, &env.faktory_url, &env.gateway_args)
                        .await?;
                gateway.reset_peak_rss();
                let addr = gateway.addr();
                (Some(gateway), addr)
            }
        };
        let link = Link::start(upstream, scenario.rtt).await?;
        let (workers, expected_worker_connections) = match scenario.path {
            WorkerPath::Direct { slots } => {
                let url = url_with_addr(&env.faktory_url, link.addr());
                let workers = DirectWorkers::start(&url, queue, slots, Arc::clone(&probe));
                let expected = workers.connections();
                // Each slot holds at most the one job it runs.
                info.watch_window(move || slots as u64);
                (Workers::Direct(workers), expected)
            }
            WorkerPath::Gateway { concurrency } => {
                let url = format!("http://{}", link.addr());
                let workers =
                    SdkWorkers::start(&url, queue, concurrency, env.sdk, Arc::clone(&probe))?;
                let stats = workers.stats();
                info.watch_window(move || stats.snapshot().window);
                (Workers::Sdk(workers), 1)
            }
        };
        Ok(Load {
            scenario,
            probe,
            info,
            processed_at_start,
            feeder: Some(feeder),
            gateway,
            link,
            workers,
            expected_worker_connections,
            faktory_baseline,
            faktory_pids: env.faktory_pids.clone(),
        })
    }

    /// The probe every handler of this load reports to.
    pub fn probe(&self) -> &Probe {
        &self.probe
    }

    /// The gateway child, gateway path only.
    pub fn gateway(&self) -> Option<&GatewayProcess> {
        self.gateway.as_ref()
    }

    /// Waits until the workers hold all their connections and have finished
    /// a first job, at most `limit`; `status` is called with a message every
    /// poll. Returns whether they got there.
    pub async fn wait_ready(&self, limit: Duration, status: impl Fn(&str)) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let connections = self.worker_connections().unwrap_or(usize::MAX);
            let done = self.probe.done();
            if connections >= self.expected_worker_connections && done > 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            status(&format!(
                "connecting: {connections}/{} connections, {done} jobs done",
                self.expected_worker_connections
            ));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// TCP connections the workers hold to what they connect to (the
    /// link's port; at RTT 0 that is Faktory or the gateway itself, so at
    /// RTT 0 direct counts include the producers' connections).
    pub fn worker_connections(&self) -> Option<usize> {
        worker_connections(&self.link, self.scenario.path, self.faktory_baseline)
    }

    /// TCP connections the gateway holds to Faktory (gateway path only).
    pub fn gateway_faktory_connections(&self, faktory_port: u16) -> Option<usize> {
        self.gateway.as_ref()?;
        established_to_port(faktory_port).map(|n| n.saturating_sub(self.faktory_baseline))
    }

    /// Peaks of Faktory's reserved set and of the workers' window since the
    /// load started.
    pub fn peaks(&self) -> Peaks {
        self.info.peaks()
    }

    /// A measurement point.
    pub fn sample(&self) -> Sample {
        Sample {
            at: Instant::now(),
            done: self.probe.done(),
            info: self.info.latest(),
            gateway: self.gateway.as_ref().and_then(GatewayProcess::sample),
            faktory: sample_processes(&self.faktory_pids),
            bench: sample_process(None),
        }
    }

    /// Stops the feeder and waits (at most `limit`) until every pushed job
    /// is done and acknowledged. Returns whether the queue drained. Call it
    /// before [`Load::stop`]: stopping `faktory`-crate workers while jobs
    /// are queued leaves jobs reserved at Faktory (a slot's pending `FETCH`
    /// is dropped, its job stays reserved) or failed (running jobs are
    /// FAILed).
    ///
    /// Fails when the feeder had failed.
    pub async fn drain(&mut self, limit: Duration, status: impl Fn(&str)) -> Result<bool, Error> {
        let pushed = match self.feeder.take() {
            Some(feeder) => feeder.stop().await?,
            None => return Ok(true),
        };
        Ok(self.wait_done(pushed, limit, "draining", &status).await)
    }

    /// Pushes stamped single jobs at `per_second` for `duration` and waits
    /// (at most `limit`) until they are done. Call after [`Load::drain`].
    ///
    /// Fails when pushing fails.
    pub async fn latency_phase(
        &self,
        env: &Env,
        queue: &str,
        per_second: f64,
        duration: Duration,
        limit: Duration,
        status: impl Fn(&str),
    ) -> Result<bool, Error> {
        let before = self.probe.done();
        status(&format!("latency phase: {per_second:.0} jobs/s"));
        let pushed = push_paced(
            &env.faktory_url,
            queue,
            self.scenario.workload,
            per_second,
            duration,
        )
        .await?;
        Ok(self
            .wait_done(before + pushed, limit, "latency jobs", &status)
            .await)
    }

    /// Waits until the workers finished `target` jobs, Faktory processed as
    /// many since the load started (the gateway's ACKs may lag far behind
    /// its workers; stopping it early leaves jobs reserved) and its reading
    /// shows the queue empty, then one round trip more for the last ACKs of
    /// direct workers (counted at their handlers, not at Faktory) to arrive.
    async fn wait_done(
        &self,
        target: u64,
        limit: Duration,
        what: &str,
        status: impl Fn(&str),
    ) -> bool {
        let deadline = Instant::now() + limit;
        let asked = Instant::now();
        loop {
            let done = self.probe.done();
            let reading = self.info.latest();
            let acked = reading
                .counts
                .processed
                .saturating_sub(self.processed_at_start);
            // A reading from before the workers finished may predate the
            // queue's last jobs leaving it.
            if done >= target && acked >= target && reading.queued == 0 && reading.at > asked {
                tokio::time::sleep(self.scenario.rtt + ACK_SETTLE).await;
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            status(&format!(
                "{what}: {} jobs left at the workers, {} unacknowledged and {} queued at Faktory",
                target.saturating_sub(done),
                target.saturating_sub(acked),
                reading.queued
            ));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the workers, then the gateway child; the link closes last.
    ///
    /// Fails with the first error any of them reports.
    pub async fn stop(mut self) -> Result<(), Error> {
        let feeder = match self.feeder.take() {
            Some(feeder) => feeder.stop().await.map(drop),
            None => Ok(()),
        };
        let workers = match self.workers {
            Workers::Direct(workers) => workers.stop().await,
            Workers::Sdk(workers) => workers.stop().await,
        };
        // `faktory::Worker` aborts its slot tasks on return; their clients
        // say END and close as the runtime drops them. Wait for that before
        // closing the link (or stopping Faktory): the `faktory` crate
        // panics when END cannot be written.
        let deadline = Instant::now() + CLOSE_LIMIT;
        let closed = |connections: Option<usize>| connections.unwrap_or(0) == 0;
        while !closed(worker_connections(
            &self.link,
            self.scenario.path,
            self.faktory_baseline,
        )) && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let gateway = match self.gateway.take() {
            Some(gateway) => gateway.stop().await,
            None => Ok(()),
        };
        drop(self.link);
        let info = self.info.stop().await;
        feeder.and(workers).and(gateway).and(info)
    }
}

/// How long stopped workers may take to close their connections.
const CLOSE_LIMIT: Duration = Duration::from_secs(5);

/// Beyond one link round trip, how long a worker's last ACK may take to
/// reach Faktory after its handler returned.
const ACK_SETTLE: Duration = Duration::from_millis(100);

fn worker_connections(link: &Link, path: WorkerPath, faktory_baseline: usize) -> Option<usize> {
    let port = link.addr().port();
    match (link.connections(), path) {
        (Some(through_link), _) => Some(through_link),
        (None, WorkerPath::Gateway { .. }) => established_to_port(port),
        (None, WorkerPath::Direct { .. }) => {
            established_to_port(port).map(|n| n.saturating_sub(faktory_baseline))
        }
    }
}
