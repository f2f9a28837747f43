//! End-to-end tests of the HTTP/JSON push, `POST /v1/jobs`: a real gateway
//! with its HTTP API on 127.0.0.1, requests over real sockets, and the
//! project's Faktory test server (or a real Faktory when `FAKTORY_URL` is
//! set, for the scenario that cleans up after itself).

mod common;

use common::{Gateway, HttpResponse, TestWorker, http_request, jid_of, real_faktory};
use faktory_test_server::TestServer;
use serde_json::{Value, json};

const JSON: (&str, &str) = ("content-type", "application/json");

/// `POST /v1/jobs` with `body` and `headers`.
async fn post(gateway: &Gateway, headers: &[(&str, &str)], body: &str) -> HttpResponse {
    http_request(
        gateway.http_addr(),
        "POST",
        "/v1/jobs",
        headers,
        body.as_bytes(),
    )
    .await
}

/// The `error` object of a JSON error reply with `status`.
fn error_of(response: &HttpResponse, status: u16) -> Value {
    assert_eq!(response.status, status, "{response:?}");
    assert_eq!(response.header("content-type"), Some("application/json"));
    response.json()["error"].clone()
}

/// A queue unique to this run, so runs against a real Faktory do not
/// collide.
fn queue(tag: &str) -> String {
    format!("gw-http-{tag}-{}", std::process::id())
}

#[tokio::test]
async fn the_readme_curl_line_is_accepted_and_faktory_holds_the_job() {
    let server = TestServer::start().await.unwrap();
    let gateway = Gateway::start_http(&server.url(), &[]).await;
    // Exactly what the README's curl line sends.
    let response = post(
        &gateway,
        &[JSON],
        r#"{"jobs":[{"jobtype":"add","args":[1,2]}]}"#,
    )
    .await;
    assert_eq!(response.status, 200, "{response:?}");
    let results = response.json()["results"].clone();
    assert_eq!(results.as_array().unwrap().len(), 1, "{results}");
    assert_eq!(results[0]["status"], "ACCEPTED");
    let jid = results[0]["jid"].as_str().unwrap();
    assert_eq!(jid.len(), 24, "a generated jid");
    assert!(
        results[0].get("reason").is_none(),
        "empty fields are left out"
    );
    let stored = server.handle().job(jid).expect("faktory holds the job");
    assert_eq!(stored["jobtype"], "add");
    assert_eq!(stored["args"], json!([1, 2]));
    assert_eq!(stored["queue"], "default");
    gateway.stop().await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn every_push_field_passes_and_validation_is_the_same_as_push() {
    let server = TestServer::start().await.unwrap();
    let gateway = Gateway::start_http(&server.url(), &[]).await;
    let body = json!({"jobs": [
        {"jid": "http-full-0001", "jobtype": "mail", "queue": "http-q",
         "args": [{"to": "a@example.com"}], "custom": {"trace": "t-1"},
         "retry": 3, "reserve_for": 120, "at": "2099-01-01T00:00:00Z", "backtrace": 4},
        {"jobtype": "add", "args": {"not": "an array"}},
        {"jobtype": "", "args": []},
        {"jobtype": "add", "queue": "bad queue"},
    ]});
    let response = post(&gateway, &[JSON], &body.to_string()).await;
    assert_eq!(response.status, 200, "{response:?}");
    let results = response.json()["results"].clone();
    let statuses: Vec<&str> = results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["ACCEPTED", "INVALID", "INVALID", "INVALID"]);
    assert_eq!(results[0]["jid"], "http-full-0001");
    assert_eq!(results[1]["field"], "args");
    assert_eq!(results[2]["field"], "jobtype");
    assert_eq!(results[3]["field"], "queue");
    assert!(results[1]["reason"].as_str().unwrap().contains("array"));
    // A scheduled job: Faktory keeps it with all its fields.
    let stored = server
        .handle()
        .job("http-full-0001")
        .expect("faktory holds it");
    assert_eq!(stored["custom"]["trace"], "t-1");
    assert_eq!(stored["args"][0]["to"], "a@example.com");
    assert_eq!(
        (stored["retry"].as_i64(), stored["reserve_for"].as_i64()),
        (Some(3), Some(120))
    );
    assert_eq!(server.handle().scheduled_len(), 1);
    gateway.stop().await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_a_specific_4xx_and_push_nothing() {
    let server = TestServer::start().await.unwrap();
    let gateway = Gateway::start_http(&server.url(), &["--max-message-bytes", "2048"]).await;

    let e = error_of(
        &post(&gateway, &[JSON], r#"{"jobs": [{"jobtype": "add""#).await,
        400,
    );
    assert_eq!(e["code"], "invalid_json");
    assert!(
        e["message"].as_str().unwrap().contains("not valid JSON"),
        "{e}"
    );

    let unknown = r#"{"jobs": [{"jobtype": "add", "args": [1], "colour": "red"}]}"#;
    let e = error_of(&post(&gateway, &[JSON], unknown).await, 400);
    assert_eq!(e["code"], "invalid_job");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.starts_with("jobs[0]: unknown field `colour`, expected one of"),
        "{message}"
    );

    let e = error_of(
        &post(&gateway, &[JSON], r#"{"jobs": [{"args": [1, 2]}]}"#).await,
        400,
    );
    let message = e["message"].as_str().unwrap();
    assert!(
        message.starts_with("jobs[0]: missing field `jobtype`"),
        "{message}"
    );

    let e = error_of(&post(&gateway, &[JSON], r#"{"job": []}"#).await, 400);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `job`"),
        "{e}"
    );

    let e = error_of(&post(&gateway, &[JSON], r#"{"jobs": []}"#).await, 400);
    assert!(
        e["message"].as_str().unwrap().contains("holds no jobs"),
        "{e}"
    );

    let form = ("content-type", "application/x-www-form-urlencoded");
    let e = error_of(&post(&gateway, &[form], r#"{"jobs": []}"#).await, 415);
    assert!(
        e["message"].as_str().unwrap().contains("application/json"),
        "{e}"
    );
    let e = error_of(&post(&gateway, &[], r#"{"jobs": []}"#).await, 415);
    assert!(e["message"].as_str().unwrap().contains("has none"), "{e}");

    let big = format!(
        r#"{{"jobs": [{{"jobtype": "add", "args": ["{}"]}}]}}"#,
        "x".repeat(4096)
    );
    let e = error_of(&post(&gateway, &[JSON], &big).await, 413);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("limit of 2048 bytes"),
        "{e}"
    );

    let wrong = http_request(gateway.http_addr(), "GET", "/v1/jobs", &[], b"").await;
    error_of(&wrong, 405);
    assert_eq!(wrong.header("allow"), Some("POST"));
    let nowhere = http_request(gateway.http_addr(), "GET", "/v2/jobs", &[], b"").await;
    let e = error_of(&nowhere, 404);
    assert!(
        e["message"].as_str().unwrap().contains("POST /v1/jobs"),
        "{e}"
    );

    assert_eq!(server.handle().total_queued(), 0, "nothing pushed");
    gateway.stop().await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn tokens_guard_http_push_and_the_workers_listing() {
    let server = TestServer::start().await.unwrap();
    let flags = ["--producer-token", "p-token", "--worker-token", "w-token"];
    let gateway = Gateway::start_http(&server.url(), &flags).await;
    let body = r#"{"jobs":[{"jobtype":"add","args":[1,2]}]}"#;

    let response = post(&gateway, &[JSON], body).await;
    let e = error_of(&response, 401);
    assert_eq!(response.header("www-authenticate"), Some("Bearer"));
    assert!(
        e["message"].as_str().unwrap().contains("requires a token"),
        "{e}"
    );
    for wrong in ["Bearer w-token", "Bearer nope", "Basic p-token"] {
        let response = post(&gateway, &[JSON, ("authorization", wrong)], body).await;
        let e = error_of(&response, 401);
        assert!(
            !e.to_string().contains("nope"),
            "never echoes the token: {e}"
        );
    }
    let response = post(&gateway, &[JSON, ("authorization", "Bearer p-token")], body).await;
    assert_eq!(response.status, 200, "{response:?}");

    // Without an admin token, the producer or worker token opens the listing.
    let list = |token: &'static str| {
        let addr = gateway.http_addr();
        async move {
            let auth = [("authorization", token)];
            http_request(addr, "GET", "/v1/workers", &auth, b"").await
        }
    };
    assert_eq!(list("Bearer w-token").await.status, 200);
    assert_eq!(list("Bearer p-token").await.status, 200);
    error_of(&list("Bearer other").await, 401);
    gateway.stop().await.unwrap();

    let flags = ["--producer-token", "p-token", "--admin-token", "a-token"];
    let gateway = Gateway::start_http(&server.url(), &flags).await;
    let list = |token: &'static str| {
        let addr = gateway.http_addr();
        async move {
            let auth = [("authorization", token)];
            http_request(addr, "GET", "/v1/workers", &auth, b"").await
        }
    };
    error_of(&list("Bearer p-token").await, 401);
    let ok = list("Bearer a-token").await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(ok.json(), json!({"workers": []}));
    gateway.stop().await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn the_metrics_port_serves_metrics_only_and_points_to_the_api() {
    let server = TestServer::start().await.unwrap();
    let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = metrics.local_addr().unwrap();
    let listeners = faktory_gateway::HttpListeners {
        api: None,
        metrics: Some(metrics),
    };
    let gateway = Gateway::start_with(&server.url(), &[], listeners).await;
    let ok = http_request(addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(ok.header("content-type"), Some("text/plain; version=0.0.4"));
    assert!(
        ok.body
            .contains("# TYPE faktory_gateway_jobs_pushed_total counter\n")
    );
    let body = br#"{"jobs":[{"jobtype":"add"}]}"#;
    let api = http_request(addr, "POST", "/v1/jobs", &[JSON], body).await;
    let e = error_of(&api, 404);
    assert!(
        e["message"].as_str().unwrap().contains("--http-listen"),
        "{e}"
    );
    error_of(&http_request(addr, "POST", "/metrics", &[], b"").await, 405);
    assert_eq!(server.handle().total_queued(), 0);
    gateway.stop().await.unwrap();
    server.shutdown().await;
}

/// Pushes two jobs over HTTP to a queue of this run, runs them through a
/// `Work` stream and checks the per-queue counters on `/metrics`; leaves
/// nothing behind in Faktory.
async fn push_run_and_count(faktory_url: &str) {
    let gateway = Gateway::start_http(faktory_url, &[]).await;
    let q = queue("count");
    let body = json!({"jobs": [
        {"jobtype": "add", "args": [1, 2], "queue": q},
        {"jobtype": "add", "args": [3, 4], "queue": q},
    ]});
    let response = post(&gateway, &[JSON], &body.to_string()).await;
    assert_eq!(response.status, 200, "{response:?}");
    let results = response.json()["results"].clone();
    assert!(
        results
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "ACCEPTED"),
        "{results}"
    );

    let mut worker = TestWorker::connect(&gateway, common::hello("http-w", &[&q], 10))
        .await
        .expect("welcome");
    let mut jids = Vec::new();
    while jids.len() < 2 {
        jids.extend(worker.jobs().await.iter().map(jid_of));
    }
    worker.ack(jids.clone()).await;
    worker.until_settled(&jids).await;

    let metrics = http_request(gateway.http_addr(), "GET", "/metrics", &[], b"").await;
    assert_eq!(metrics.status, 200);
    for (what, n) in [("pushed", 2), ("delivered", 2), ("acked", 2)] {
        let line = format!("faktory_gateway_queue_jobs_{what}_total{{queue=\"{q}\"}} {n}\n");
        assert!(metrics.body.contains(&line), "{line} in {}", metrics.body);
    }
    worker.cut();
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn pushed_jobs_run_and_are_counted_per_queue() {
    let server = common::faktory().await;
    push_run_and_count(&server.url()).await;
    assert_eq!(server.handle().total_queued(), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn pushed_jobs_run_and_are_counted_per_queue_with_real_faktory() {
    let Some(url) = real_faktory("pushed_jobs_run_and_are_counted_per_queue_with_real_faktory")
    else {
        return;
    };
    push_run_and_count(&url).await;
}
