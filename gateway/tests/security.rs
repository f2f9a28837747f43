//! Security edges of a running gateway: bearer tokens on every RPC (and
//! separate for producers and workers), TLS end to end with certificates
//! generated here (rcgen) on both the gRPC port and the Faktory connection,
//! a Faktory password, and secrets (tokens, the Faktory password) never
//! appearing in logs or error messages.
//!
//! Logs are captured by a process-wide `tracing` subscriber writing into a
//! buffer ([`captured_logs`]); every test in this file uses secrets with
//! distinctive names, and the log test checks the whole capture.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use common::{Gateway, eventually, hello, jobs};
use faktory_gateway_proto::v1::gateway_client::GatewayClient;
use faktory_gateway_proto::v1::{
    Acks, GatewayMessage, Job, PushRequest, PushStatus, WorkerMessage, gateway_message,
    worker_message,
};
use faktory_test_server::{ServerConfig, TestServer, TlsIdentity};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Status, Streaming};

const PRODUCER_TOKEN: &str = "prod-tok-5ecret-a1";
const WORKER_TOKEN: &str = "work-tok-5ecret-b2";
const WRONG_TOKEN: &str = "wrong-tok-5ecret-c3";
const FAKTORY_PASSWORD: &str = "faktory-pw-5ecret-d4";
const WRONG_PASSWORD: &str = "wrong-pw-5ecret-e5";
/// Every secret used in this file: none may appear in any log line or error.
const SECRETS: &[&str] = &[
    PRODUCER_TOKEN,
    WORKER_TOKEN,
    WRONG_TOKEN,
    FAKTORY_PASSWORD,
    WRONG_PASSWORD,
    // The common part, in case one is logged truncated or in pieces.
    "5ecret",
];

/// A `tracing` writer appending to a shared buffer (and, when `RUST_LOG`
/// is set, to stderr too, for debugging a failure).
#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>, bool);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("capture lock").extend_from_slice(buf);
        if self.1 {
            let _ = std::io::stderr().write_all(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs (once) a process-wide subscriber at TRACE for the gateway and
/// DEBUG for everything else, writing into a buffer; returns the buffer.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Capture(buffer.clone(), std::env::var_os("RUST_LOG").is_some());
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "debug,faktory_gateway=trace",
            ))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init()
            .expect("no other subscriber in this test binary");
        buffer
    })
    .clone()
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "{what} contains the secret {secret:?}: {text}"
        );
    }
}

fn with_token<T>(message: T, token: Option<&str>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", token.parse().expect("ascii metadata"));
    }
    request
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn push_request(tag: &str) -> PushRequest {
    PushRequest {
        jobs: jobs(tag, 1, "default", "t"),
    }
}

/// Opens `Work` over `client` with `authorization` metadata (if any) and
/// waits for the welcome; returns the sender and the stream.
async fn open_work(
    client: &mut GatewayClient<Channel>,
    authorization: Option<&str>,
    queue: &str,
) -> Result<(mpsc::Sender<WorkerMessage>, Streaming<GatewayMessage>), Status> {
    let (tx, rx) = mpsc::channel(16);
    tx.send(WorkerMessage {
        kind: Some(worker_message::Kind::Hello(hello("sec", &[queue], 10))),
    })
    .await
    .expect("buffer");
    let mut stream = client
        .work(with_token(ReceiverStream::new(rx), authorization))
        .await?
        .into_inner();
    match stream.message().await? {
        Some(GatewayMessage {
            kind: Some(gateway_message::Kind::Welcome(_)),
        }) => Ok((tx, stream)),
        other => panic!("expected a welcome, got {other:?}"),
    }
}

/// Receives jobs on `stream`, acking each batch, until `n` arrived.
async fn take_and_ack(
    tx: &mpsc::Sender<WorkerMessage>,
    stream: &mut Streaming<GatewayMessage>,
    n: usize,
) -> Vec<String> {
    let mut jids = Vec::new();
    while jids.len() < n {
        let message = stream.message().await.expect("stream").expect("open");
        if let Some(gateway_message::Kind::Jobs(batch)) = message.kind {
            let batch: Vec<String> = batch
                .deliveries
                .into_iter()
                .map(|d| d.job.expect("job").jid)
                .collect();
            tx.send(WorkerMessage {
                kind: Some(worker_message::Kind::Acks(Acks {
                    jids: batch.clone(),
                })),
            })
            .await
            .expect("stream open");
            jids.extend(batch);
        }
    }
    jids
}

fn token_flags() -> [&'static str; 4] {
    [
        "--producer-token",
        PRODUCER_TOKEN,
        "--worker-token",
        WORKER_TOKEN,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_needs_its_own_valid_token() {
    let logs = captured_logs();
    let server = common::faktory().await;
    let handle = server.handle();
    let gateway = Gateway::start(&server.url(), &token_flags()).await;
    let mut client = gateway.client().await;

    let refused_push = [
        None,
        Some(String::new()),
        Some("Bearer".to_owned()),
        Some("Bearer ".to_owned()),
        Some(bearer(WRONG_TOKEN)),
        Some(bearer(WORKER_TOKEN)),
        Some(format!("Basic {PRODUCER_TOKEN}")),
        Some(PRODUCER_TOKEN.to_owned()),
        Some(bearer(&format!("{PRODUCER_TOKEN}x"))),
        Some(bearer(&PRODUCER_TOKEN[..PRODUCER_TOKEN.len() - 1])),
    ];
    for auth in &refused_push {
        let status = client
            .push(with_token(push_request("denied"), auth.as_deref()))
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::Unauthenticated, "{auth:?}: {status:?}");
        assert!(status.message().contains("Push"), "{}", status.message());
        assert_no_secret("a Push refusal", status.message());
    }
    assert_eq!(
        handle.counters().pushed,
        0,
        "no refused job reached faktory"
    );

    let refused_work = [
        None,
        Some(bearer(WRONG_TOKEN)),
        Some(bearer(PRODUCER_TOKEN)),
        Some(format!("Basic {WORKER_TOKEN}")),
    ];
    for auth in &refused_work {
        let status = open_work(&mut client, auth.as_deref(), "default")
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::Unauthenticated, "{auth:?}: {status:?}");
        assert!(status.message().contains("Work"), "{}", status.message());
        assert_no_secret("a Work refusal", status.message());
    }

    // The right tokens open each RPC, and a job goes all the way through.
    let response = client
        .push(with_token(
            push_request("allowed"),
            Some(&bearer(PRODUCER_TOKEN)),
        ))
        .await
        .expect("push with the producer token")
        .into_inner();
    assert_eq!(response.results[0].status(), PushStatus::Accepted);
    let (tx, mut stream) = open_work(&mut client, Some(&bearer(WORKER_TOKEN)), "default")
        .await
        .expect("work with the worker token");
    let jids = take_and_ack(&tx, &mut stream, 1).await;
    eventually("the job is acked", Duration::from_secs(10), || {
        handle.job(&jids[0]).is_none()
    })
    .await;
    drop((tx, stream));
    gateway.stop().await.expect("clean shutdown");
    server.shutdown().await;
    assert_logs_clean(&logs);
}

/// A self-signed certificate for localhost and 127.0.0.1, written to files
/// under `dir`: (cert PEM, cert path, key path).
fn certificate(dir: &Path) -> (String, TlsIdentity, PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).expect("cert dir");
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("generate certificate");
    let cert_pem = certified.cert.pem();
    let key_pem = certified.signing_key.serialize_pem();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, &cert_pem).expect("write cert");
    std::fs::write(&key, &key_pem).expect("write key");
    let identity = TlsIdentity {
        cert_pem: cert_pem.clone(),
        key_pem,
    };
    (cert_pem, identity, cert, key)
}

fn temp_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "security-{name}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_end_to_end_with_tokens_faktory_password_and_faktory_tls() {
    let logs = captured_logs();
    let dir = temp_dir("tls");
    // One certificate for the gateway's gRPC port, another for Faktory.
    let (grpc_pem, _, grpc_cert, grpc_key) = certificate(&dir.join("grpc"));
    let (_, faktory_identity, faktory_ca, _) = certificate(&dir.join("faktory"));
    let server = TestServer::start_with(ServerConfig {
        password: Some(FAKTORY_PASSWORD.to_owned()),
        tls: Some(faktory_identity),
        fetch_block: common::FETCH_BLOCK,
        ..ServerConfig::default()
    })
    .await
    .expect("faktory test server");
    let handle = server.handle();
    assert!(server.url().starts_with("tcp+tls://:"), "password and tls");
    let mut flags = vec![
        "--tls-cert",
        grpc_cert.to_str().unwrap(),
        "--tls-key",
        grpc_key.to_str().unwrap(),
        "--faktory-tls-ca",
        faktory_ca.to_str().unwrap(),
    ];
    flags.extend(token_flags());
    let gateway = Gateway::start(&server.url(), &flags).await;

    let channel = Endpoint::from_shared(format!("https://{}", gateway.addr))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&grpc_pem))
                .domain_name("localhost"),
        )
        .unwrap()
        .connect()
        .await
        .expect("tls connect");
    let mut client = GatewayClient::new(channel);

    // Push over TLS, through to Faktory over TLS with the password.
    let batch = jobs("tls", 20, "secure", "t");
    let response = client
        .push(with_token(
            PushRequest {
                jobs: batch.clone(),
            },
            Some(&bearer(PRODUCER_TOKEN)),
        ))
        .await
        .expect("push over tls")
        .into_inner();
    assert!(
        response
            .results
            .iter()
            .all(|r| r.status() == PushStatus::Accepted),
        "{response:?}"
    );
    assert_eq!(handle.queue_len("secure"), 20);

    // Work over TLS: fetched from Faktory over TLS, acked back.
    let (tx, mut stream) = open_work(&mut client, Some(&bearer(WORKER_TOKEN)), "secure")
        .await
        .expect("work over tls");
    let mut got = take_and_ack(&tx, &mut stream, 20).await;
    got.sort();
    let mut pushed: Vec<String> = batch.into_iter().map(|j| j.jid).collect();
    pushed.sort();
    assert_eq!(got, pushed);
    eventually("20 acks at faktory", Duration::from_secs(10), || {
        handle.counters().acked == 20
    })
    .await;
    assert!(handle.reserved_jids().is_empty());

    // Tokens still apply over TLS.
    let status = client
        .push(with_token(
            push_request("tls-denied"),
            Some(&bearer(WORKER_TOKEN)),
        ))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::Unauthenticated);

    // A client that does not trust the gateway's certificate gets nowhere,
    // and neither does plaintext HTTP/2.
    let (other_pem, ..) = certificate(&dir.join("other"));
    let untrusting = Endpoint::from_shared(format!("https://{}", gateway.addr))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&other_pem))
                .domain_name("localhost"),
        )
        .unwrap()
        .connect()
        .await;
    assert!(untrusting.is_err(), "untrusted certificate accepted");
    if let Ok(plain) = Endpoint::from_shared(format!("http://{}", gateway.addr))
        .unwrap()
        .connect()
        .await
    {
        let result = GatewayClient::new(plain)
            .push(with_token(
                push_request("plain"),
                Some(&bearer(PRODUCER_TOKEN)),
            ))
            .await;
        assert!(result.is_err(), "plaintext call served: {result:?}");
    }
    assert_eq!(handle.counters().pushed, 20);

    drop((tx, stream));
    gateway.stop().await.expect("clean shutdown");
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
    assert_logs_clean(&logs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_logs_or_error_messages() {
    let logs = captured_logs();
    let server = TestServer::start_with(ServerConfig {
        password: Some(FAKTORY_PASSWORD.to_owned()),
        fetch_block: common::FETCH_BLOCK,
        ..ServerConfig::default()
    })
    .await
    .expect("faktory test server");
    let handle = server.handle();

    // A gateway with the right password: push, work, fail (Faktory's
    // failure path), refused calls with wrong tokens.
    let gateway = Gateway::start(&server.url(), &token_flags()).await;
    let mut client = gateway.client().await;
    let mut batch = jobs("logs", 3, "default", "t");
    batch.push(Job {
        args: Bytes::from_static(b"not json"),
        ..jobs("logs-bad", 1, "default", "t").remove(0)
    });
    let response = client
        .push(with_token(
            PushRequest { jobs: batch },
            Some(&bearer(PRODUCER_TOKEN)),
        ))
        .await
        .expect("push")
        .into_inner();
    for result in &response.results {
        assert_no_secret("a push result", &result.reason);
    }
    let status = client
        .push(with_token(
            push_request("logs-denied"),
            Some(&bearer(WRONG_TOKEN)),
        ))
        .await
        .expect_err("refused");
    assert_no_secret("a refusal", status.message());
    let status = open_work(&mut client, Some(&bearer(WRONG_TOKEN)), "default")
        .await
        .expect_err("refused");
    assert_no_secret("a refusal", status.message());
    let (tx, mut stream) = open_work(&mut client, Some(&bearer(WORKER_TOKEN)), "default")
        .await
        .expect("work");
    take_and_ack(&tx, &mut stream, 3).await;
    eventually("3 acks", Duration::from_secs(10), || {
        handle.counters().acked == 3
    })
    .await;
    drop((tx, stream));
    gateway.stop().await.expect("clean shutdown");

    // A gateway with the wrong Faktory password: pushes are UNAVAILABLE,
    // and neither the reason nor the logs show either password.
    let url = server.url().replace(FAKTORY_PASSWORD, WRONG_PASSWORD);
    assert!(url.contains(WRONG_PASSWORD));
    let gateway = Gateway::start(&url, &["--faktory-timeout-ms", "1000"]).await;
    let response = gateway
        .client()
        .await
        .push(push_request("wrong-pw"))
        .await
        .expect("push call")
        .into_inner();
    assert_eq!(response.results[0].status(), PushStatus::Unavailable);
    println!(
        "wrong password push reason: {:?}",
        response.results[0].reason
    );
    assert_no_secret("an unavailable reason", &response.results[0].reason);
    gateway.stop().await.expect("clean shutdown");

    // A gateway whose Faktory (with a password in its URL) is not there.
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let url = format!("tcp://:{FAKTORY_PASSWORD}@127.0.0.1:{port}");
    let gateway = Gateway::start(&url, &["--faktory-timeout-ms", "500"]).await;
    let response = gateway
        .client()
        .await
        .push(push_request("no-faktory"))
        .await
        .expect("push call")
        .into_inner();
    assert_eq!(response.results[0].status(), PushStatus::Unavailable);
    assert_no_secret("an unavailable reason", &response.results[0].reason);
    gateway.stop().await.expect("clean shutdown");
    server.shutdown().await;

    assert_logs_clean(&logs);
}

/// Checks every line captured so far (from all tests in this binary).
fn assert_logs_clean(logs: &Mutex<Vec<u8>>) {
    let text = String::from_utf8_lossy(&logs.lock().expect("capture lock")).into_owned();
    println!("captured {} bytes of logs", text.len());
    assert!(
        text.contains("gateway listening"),
        "the capture works: {} bytes",
        text.len()
    );
    assert!(text.contains("TRACE") || text.contains("DEBUG"));
    for line in text.lines() {
        assert_no_secret("a log line", line);
    }
}
