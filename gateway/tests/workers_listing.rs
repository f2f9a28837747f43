//! End-to-end tests of the workers listing: two workers built with the
//! worker SDK connect to a real gateway; `GET /v1/workers`, the
//! `Admin.ListWorkers` rpc and the `faktory-gateway workers` subcommand each
//! show both, with hostnames, labels, queues, results and heartbeat round
//! trips. Faktory is the project's test server, and a real one too when
//! `FAKTORY_URL` is set (the workers serve queues of this run only).

mod common;

use std::time::Duration;

use common::{Gateway, http_request, real_faktory};
use faktory_gateway_proto::v1::admin_client::AdminClient;
use faktory_gateway_proto::v1::{ListWorkersRequest, WorkerInfo};
use faktory_gateway_worker::{Job, Worker};
use serde_json::{Value, json};
use tokio::process::Command;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::Request;

const BINARY: &str = env!("CARGO_BIN_EXE_faktory-gateway");
const ADMIN: &str = "Bearer admin-token";

/// An SDK worker running in this process until `stop` fires.
struct SdkWorker {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl SdkWorker {
    fn start(gateway: &Gateway, id: &str, labels: &[&str], queues: &[&str]) -> SdkWorker {
        let (stop, stopped) = oneshot::channel::<()>();
        let worker = Worker::builder()
            .gateway(format!("http://{}", gateway.addr))
            .worker_id(id)
            .labels(labels.iter().copied())
            .queues(queues.iter().copied())
            .concurrency(4)
            .register("add", |_job: Job| async { Ok(()) })
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .build()
            .expect("a valid worker");
        let task = tokio::spawn(async move {
            worker.run().await.expect("the worker stops cleanly");
        });
        SdkWorker { stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("worker task");
    }
}

/// `GET /v1/workers` with the admin token.
async fn listing(gateway: &Gateway) -> Vec<Value> {
    let response = http_request(
        gateway.http_addr(),
        "GET",
        "/v1/workers",
        &[("authorization", ADMIN)],
        b"",
    )
    .await;
    assert_eq!(response.status, 200, "{response:?}");
    response.json()["workers"]
        .as_array()
        .expect("a list")
        .clone()
}

/// Polls the listing until `done` holds for it (the workers connect, run
/// jobs and answer pings on their own schedule); panics after 10 s.
async fn listing_until(
    gateway: &Gateway,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let workers = listing(gateway).await;
        if done(&workers) {
            return workers;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {workers:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn by_id<'a>(workers: &'a [Value], id: &str) -> &'a Value {
    workers
        .iter()
        .find(|w| w["worker_id"] == id)
        .unwrap_or_else(|| panic!("{id} listed: {workers:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sdk_workers_are_listed_over_http_grpc_and_the_subcommand() {
    let server = common::faktory().await;
    two_workers_listed(&server.url()).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sdk_workers_are_listed_with_real_faktory() {
    let Some(url) = real_faktory("two_sdk_workers_are_listed_with_real_faktory") else {
        return;
    };
    two_workers_listed(&url).await;
}

/// Two SDK workers on queues of this run, three jobs for the first; the
/// listing seen three ways.
async fn two_workers_listed(faktory_url: &str) {
    let flags = [
        "--admin-token",
        "admin-token",
        "--heartbeat-interval-ms",
        "100",
    ];
    let gateway = Gateway::start_http(faktory_url, &flags).await;
    let pid = std::process::id();
    let (queue_a, queue_b, queue_b2) = (
        format!("list-a-{pid}"),
        format!("list-b-{pid}"),
        format!("list-b2-{pid}"),
    );
    let a = SdkWorker::start(&gateway, "sdk-a", &["region:eu", "tier:1"], &[&queue_a]);
    let b = SdkWorker::start(&gateway, "sdk-b", &["region:us"], &[&queue_b, &queue_b2]);

    // Three jobs for worker a; both answer pings.
    let body = json!({"jobs": (0..3).map(|i| json!({"jobtype": "add", "args": [i], "queue": queue_a})).collect::<Vec<_>>()});
    let pushed = http_request(
        gateway.http_addr(),
        "POST",
        "/v1/jobs",
        &[("content-type", "application/json")],
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(pushed.status, 200, "{pushed:?}");
    let workers = listing_until(&gateway, "both workers, a done, both pinged", |ws| {
        ws.len() == 2
            && ws.iter().all(|w| w["heartbeat_rtt_us"].as_u64() > Some(0))
            && ws
                .iter()
                .any(|w| w["worker_id"] == "sdk-a" && w["jobs_done"] == 3)
    })
    .await;

    let host = hostname::get().unwrap().to_string_lossy().into_owned();
    let (wa, wb) = (by_id(&workers, "sdk-a"), by_id(&workers, "sdk-b"));
    assert_eq!(wa["hostname"], host.as_str());
    assert_eq!(wb["hostname"], host.as_str());
    assert_eq!(wa["labels"], json!(["region:eu", "tier:1"]));
    assert_eq!(wb["labels"], json!(["region:us"]));
    assert_eq!(wa["queues"], json!([queue_a]));
    assert_eq!(wb["queues"], json!([queue_b, queue_b2]));
    assert_eq!(wa["jobtypes"], json!(["add"]));
    assert_eq!(
        (wa["jobs_failed"].as_u64(), wa["in_flight"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(wa["jobs_per_second"].as_f64().unwrap() > 0.0, "{wa}");
    assert!(
        wa["window"].as_u64().unwrap() >= 4,
        "at least the concurrency: {wa}"
    );
    assert_eq!(wb["jobs_done"], 0);
    assert_eq!(wa["draining"], false);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let age = now_ms - wa["connected_unix_ms"].as_i64().unwrap();
    assert!((0..60_000).contains(&age), "connected {age} ms ago");

    // The rpc answers the same sessions with the same fields.
    let mut admin = AdminClient::connect(format!("http://{}", gateway.addr))
        .await
        .unwrap();
    let refused = admin.list_workers(ListWorkersRequest {}).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    let mut request = Request::new(ListWorkersRequest {});
    request
        .metadata_mut()
        .insert("authorization", ADMIN.parse().unwrap());
    let listed: Vec<WorkerInfo> = admin
        .list_workers(request)
        .await
        .unwrap()
        .into_inner()
        .workers;
    assert_eq!(listed.len(), 2);
    for info in &listed {
        let json = by_id(&workers, &info.worker_id);
        assert_eq!(json["session_id"], info.session_id.as_str());
        assert_eq!(json["hostname"], info.hostname.as_str());
        assert_eq!(json["labels"], json!(info.labels));
        assert_eq!(json["queues"], json!(info.queues));
        assert_eq!(json["jobtypes"], json!(info.jobtypes));
        assert_eq!(json["window"], info.window);
        assert_eq!(json["connected_unix_ms"], info.connected_unix_ms);
        assert!(info.heartbeat_rtt_us > 0);
    }
    let a_info = listed.iter().find(|w| w.worker_id == "sdk-a").unwrap();
    assert_eq!(a_info.jobs_done, 3);

    // The subcommand prints both, and says why when the token is missing.
    let addr = format!("http://{}", gateway.addr);
    let output = Command::new(BINARY)
        .args(["workers", "--addr", &addr, "--token", "admin-token"])
        .env_remove("GATEWAY_ADMIN_TOKEN")
        .output()
        .await
        .expect("run faktory-gateway workers");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout} {:?}", output.stderr);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "a header and one line per worker: {stdout}");
    assert!(
        lines[0].starts_with("WORKER") && lines[0].contains("RTT"),
        "{stdout}"
    );
    let line_a = lines
        .iter()
        .find(|l| l.starts_with("sdk-a"))
        .expect("sdk-a");
    let line_b = lines
        .iter()
        .find(|l| l.starts_with("sdk-b"))
        .expect("sdk-b");
    assert!(
        line_a.contains(&host) && line_a.contains("region:eu,tier:1"),
        "{stdout}"
    );
    assert!(
        line_a.contains(&queue_a) && line_a.contains("add"),
        "{stdout}"
    );
    assert!(line_a.contains("ms") && line_a.contains("ago"), "{stdout}");
    assert!(
        line_b.contains("region:us") && line_b.contains(&format!("{queue_b},{queue_b2}")),
        "{stdout}"
    );
    let refused = Command::new(BINARY)
        .args(["workers", "--addr", &addr])
        .env_remove("GATEWAY_ADMIN_TOKEN")
        .output()
        .await
        .expect("run faktory-gateway workers");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("ListWorkers requires a token"), "{stderr}");

    // A worker that leaves is no longer listed.
    b.stop().await;
    listing_until(&gateway, "only sdk-a", |ws| {
        ws.len() == 1 && ws[0]["worker_id"] == "sdk-a"
    })
    .await;
    a.stop().await;
    gateway.stop().await.unwrap();
}
