//! End-to-end checks of the benchmark machinery against the in-process test
//! server: each scenario kind runs briefly and must finish jobs and produce
//! a complete row. No numbers are asserted beyond "something ran".

use std::time::Duration;

use faktory_gateway_bench::output::progress::Progress;
use faktory_gateway_bench::runs::load::Env;
use faktory_gateway_bench::runs::push::run_push;
use faktory_gateway_bench::runs::runner::run_throughput;
use faktory_gateway_bench::runs::scenario::{
    PushMode, PushScenario, PushSide, Scenario, Timing, WorkerPath, Workload,
};
use faktory_gateway_bench::setup::gateway_process::GatewayProcess;
use faktory_gateway_bench::setup::run_queues::clean_up;
use faktory_gateway_bench::setup::target::{FaktoryTarget, Pace};

fn timing() -> Timing {
    Timing {
        warmup: Duration::from_millis(200),
        warmup_limit: Duration::from_millis(1500),
        measure: Duration::from_millis(500),
        latency: Duration::from_millis(300),
        settle_limit: Duration::from_secs(20),
        drain_limit: Duration::from_secs(5),
    }
}

async fn env(target: &FaktoryTarget) -> Env {
    Env {
        faktory_url: target.url(),
        faktory_addr: target.addr(),
        gateway_exe: env!("CARGO_BIN_EXE_bench").into(),
        gateway_args: Vec::new(),
        sdk: Default::default(),
        faktory_pids: Vec::new(),
        queue_prefix: "bench-test".to_owned(),
    }
}

/// Nothing the scenario pushed is left queued or reserved.
async fn assert_nothing_left(env: &Env) {
    let cleanup = clean_up(&env.faktory_url, &env.queue_prefix).await.unwrap();
    assert_eq!(cleanup.total(), 0, "{cleanup:?}");
    assert_eq!(cleanup.reserved_after, 0, "{cleanup:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_workers_across_a_link_finish_jobs() {
    let target = FaktoryTarget::in_process(Pace::Fast).await.unwrap();
    let env = env(&target).await;
    let scenario = Scenario {
        path: WorkerPath::Direct { slots: 30 },
        rtt: Duration::from_millis(10),
        workload: Workload::Args100B,
    };
    let row = run_throughput(&env, scenario, &timing(), &Progress::default(), "[test]")
        .await
        .unwrap();
    assert!(row.jobs_per_s > 0.0, "{row:?}");
    assert!(row.jobs_per_s_at_worker > 0.0, "{row:?}");
    assert!(row.latency_samples > 0, "{row:?}");
    assert!(row.p50_ms.is_some());
    assert_eq!(row.window_peak, 30);
    assert!(row.reserved_peak <= 30, "{row:?}");
    // 30 slots in two faktory::Workers: 30 job connections + 2 coordinators.
    assert_eq!(row.worker_connections, Some(32));
    assert_nothing_left(&env).await;
    target.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_path_finishes_jobs_over_one_connection() {
    let target = FaktoryTarget::in_process(Pace::Fast).await.unwrap();
    let env = env(&target).await;
    let scenario = Scenario {
        path: WorkerPath::Gateway { concurrency: 20 },
        rtt: Duration::from_millis(10),
        workload: Workload::Noop,
    };
    let row = run_throughput(&env, scenario, &timing(), &Progress::default(), "[test]")
        .await
        .unwrap();
    assert!(row.jobs_per_s > 0.0, "{row:?}");
    assert!(row.latency_samples > 0, "{row:?}");
    assert!(row.window_peak >= 20, "{row:?}");
    assert!(row.reserved_peak > 0, "{row:?}");
    assert_eq!(row.worker_connections, Some(1));
    assert!(row.gateway_cpu_s_per_100k.is_some());
    assert!(row.gateway_peak_rss_mib.is_some_and(|mib| mib > 0.0));
    assert_nothing_left(&env).await;
    target.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_direct_and_through_the_gateway() {
    let target = FaktoryTarget::in_process(Pace::Fast).await.unwrap();
    let env = env(&target).await;
    let gateway = GatewayProcess::start(&env.gateway_exe, &env.faktory_url, &[])
        .await
        .unwrap();
    // 50 callers: with 200 the gateway's HTTP/2 server sometimes cuts the
    // shared connection (see `push.rs`), which the full benchmark reports.
    for side in [
        PushSide::Direct,
        PushSide::Gateway,
        PushSide::GatewayRefused,
    ] {
        for mode in [
            PushMode::Batch { size: 100 },
            PushMode::Concurrent { callers: 50 },
        ] {
            let scenario = PushScenario { side, mode };
            let row = run_push(
                &env.faktory_url,
                Some(&gateway),
                scenario,
                500,
                &env.queue_prefix,
            )
            .await
            .unwrap();
            assert!(row.jobs_per_s > 0.0, "{row:?}");
        }
    }
    gateway.stop().await.unwrap();
    assert_nothing_left(&env).await;
    target.shutdown().await;
}
