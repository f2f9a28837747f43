//! Bad input against a running gateway: malformed protobuf frames, invalid
//! UTF-8, bad JSON, calls and messages past the limits, misbehaving workers
//! (unknown or repeated acks, never acking, odd windows, silence). Each case
//! names the status or bounded outcome it expects, and every test ends by
//! checking that the gateway still serves (health SERVING, a job still flows
//! from `Push` to `Work`).
//!
//! Malformed frames are sent with [`RawCodec`]: a tonic codec that passes
//! bytes through untouched, so the gateway's own decoder meets the garbage.

mod common;

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use common::{Gateway, Received, TestWorker, eventually, hello, jid_of, jobs};
use faktory_gateway_proto::v1::{
    GatewayMessage, Job, PushRequest, PushStatus, WorkerMessage, worker_message,
};
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const PUSH: &str = "/faktory_gateway.v1.Gateway/Push";
const WORK: &str = "/faktory_gateway.v1.Gateway/Work";

/// A codec that sends and receives message bodies as raw bytes.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

async fn raw_client(gateway: &Gateway) -> tonic::client::Grpc<Channel> {
    let channel = Channel::from_shared(format!("http://{}", gateway.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    tonic::client::Grpc::new(channel)
}

/// One `Push` call whose body is `body`, byte for byte.
async fn raw_push(gateway: &Gateway, body: Bytes) -> Result<Bytes, Status> {
    let mut grpc = raw_client(gateway).await;
    grpc.ready().await.expect("ready");
    grpc.unary(
        Request::new(body),
        PathAndQuery::from_static(PUSH),
        RawCodec,
    )
    .await
    .map(tonic::Response::into_inner)
}

/// Opens a `Work` stream whose messages are `frames`, byte for byte, and
/// returns what the gateway sent back: decoded messages until the end, and
/// the final status (`None`: ended cleanly).
async fn raw_work(gateway: &Gateway, frames: Vec<Bytes>) -> (Vec<GatewayMessage>, Option<Status>) {
    let mut grpc = raw_client(gateway).await;
    grpc.ready().await.expect("ready");
    // Keep our side open until the gateway ends the stream, so that its
    // reaction to the frames (not to our half-close) is what we observe.
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(frames.len() + 1);
    for frame in frames {
        tx.send(frame).await.expect("buffer");
    }
    let outbound = tokio_stream::wrappers::ReceiverStream::new(rx);
    let response = grpc
        .streaming(
            Request::new(outbound),
            PathAndQuery::from_static(WORK),
            RawCodec,
        )
        .await;
    let mut inbound = match response {
        Ok(response) => response.into_inner(),
        Err(status) => return (Vec::new(), Some(status)),
    };
    let mut got = Vec::new();
    let end = loop {
        match inbound.message().await {
            Ok(Some(bytes)) => got.push(GatewayMessage::decode(bytes).expect("gateway message")),
            Ok(None) => break None,
            Err(status) => break Some(status),
        }
    };
    drop(tx);
    (got, end)
}

fn encode<M: Message>(message: &M) -> Bytes {
    Bytes::from(message.encode_to_vec())
}

/// A protobuf field header plus length-delimited payload (hand encoding).
fn field(number: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::encode_key(number, prost::encoding::WireType::LengthDelimited, &mut out);
    prost::encoding::encode_varint(payload.len() as u64, &mut out);
    out.extend_from_slice(payload);
    out
}

/// Bytes no protobuf decoder accepts: field 1, length-delimited, claiming
/// far more bytes than follow.
const GARBAGE: &[u8] = &[0x0a, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3];

fn assert_status(status: &Status, code: Code, fragment: &str) {
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().contains(fragment),
        "expected {fragment:?} in {:?}",
        status.message()
    );
}

/// The gateway still serves: health says SERVING and one job goes from
/// `Push` through `Work` and is acked at Faktory.
async fn assert_healthy(gateway: &Gateway, handle: &faktory_test_server::ServerHandle, tag: &str) {
    let channel = Channel::from_shared(format!("http://{}", gateway.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let status = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health check")
        .into_inner()
        .status();
    assert_eq!(status, ServingStatus::Serving);

    let queue = format!("healthy-{tag}");
    let job = jobs(tag, 1, &queue, "t");
    let jid = job[0].jid.clone();
    common::push_with(gateway.client().await, job).await;
    let mut worker = TestWorker::connect(gateway, hello("healthy", &[&queue], 1))
        .await
        .expect("session");
    let got = worker.jobs().await;
    assert_eq!(got.len(), 1);
    assert_eq!(jid_of(&got[0]), jid);
    worker.ack(vec![jid.clone()]).await;
    eventually("the health job is acked", Duration::from_secs(10), || {
        handle.job(&jid).is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_push_frames_are_internal_decode_errors() {
    let server = common::faktory().await;
    let handle = server.handle();
    let gateway = Gateway::start(&server.url(), &[]).await;

    // Truncated length-delimited field: tonic's prost decoder refuses it.
    let status = raw_push(&gateway, Bytes::from_static(GARBAGE))
        .await
        .unwrap_err();
    assert_status(&status, Code::Internal, "failed to decode Protobuf message");

    // A lone byte that is not even a complete field key.
    let status = raw_push(&gateway, Bytes::from_static(&[0xff]))
        .await
        .unwrap_err();
    assert_status(&status, Code::Internal, "failed to decode Protobuf message");

    // Wrong wire type for `jobs` (a varint where a message belongs).
    let status = raw_push(&gateway, Bytes::from_static(&[0x08, 0x01]))
        .await
        .unwrap_err();
    assert_status(&status, Code::Internal, "failed to decode Protobuf message");

    // An empty body is a valid, empty PushRequest: refused as holding no jobs.
    let status = raw_push(&gateway, Bytes::new()).await.unwrap_err();
    assert_status(&status, Code::InvalidArgument, "holds no jobs");

    assert_eq!(handle.counters().pushed, 0, "nothing reached faktory");
    assert_healthy(&gateway, &handle, "push-frames").await;
    gateway.stop().await.expect("clean shutdown");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_in_a_string_field_is_refused() {
    let server = common::faktory().await;
    let handle = server.handle();
    let gateway = Gateway::start(&server.url(), &[]).await;

    // Job { jid: "abcdefg\xff", jobtype: "t" } inside PushRequest.jobs.
    let mut job = field(1, b"abcdefg\xff");
    job.extend(field(2, b"t"));
    let request = field(1, &job);
    let status = raw_push(&gateway, Bytes::from(request)).await.unwrap_err();
    assert_status(&status, Code::Internal, "UTF-8");

    // The same hand encoding with valid UTF-8 is accepted: the refusal above
    // was the byte, not the encoding.
    let mut job = field(1, b"abcdefgh-utf8");
    job.extend(field(2, b"t"));
    let body = raw_push(&gateway, Bytes::from(field(1, &job)))
        .await
        .expect("valid push");
    let response = faktory_gateway_proto::v1::PushResponse::decode(body).expect("response");
    assert_eq!(response.results[0].status(), PushStatus::Accepted);
    assert_eq!(response.results[0].jid, "abcdefgh-utf8");

    // Invalid UTF-8 inside args JSON is the gateway's own check: INVALID, args.
    let response = gateway
        .client()
        .await
        .push(PushRequest {
            jobs: vec![Job {
                jobtype: "t".into(),
                args: Bytes::from_static(b"[\"\xff\"]"),
                ..Job::default()
            }],
        })
        .await
        .expect("call")
        .into_inner();
    assert_eq!(response.results[0].status(), PushStatus::Invalid);
    assert_eq!(response.results[0].field, "args");

    assert_eq!(handle.counters().pushed, 1);
    assert_healthy(&gateway, &handle, "utf8").await;
    gateway.stop().await.expect("clean shutdown");
    server.shutdown().await;
}

/// A hello frame for `raw_work`.
fn hello_frame() -> Bytes {
    encode(&WorkerMessage {
        kind: Some(worker_message::Kind::Hello(hello("raw", &["default"], 5))),
    })
}

/// A `Work` frame holding a hello whose worker_id is not UTF-8.
fn non_utf8_hello_frame() -> Bytes {
    let mut hello_bytes = field(1, b"w\xff");
    prost::encoding::encode_key(6, prost::encoding::WireType::Varint, &mut hello_bytes);
    prost::encoding::encode_varint(5, &mut hello_bytes);
    Bytes::from(field(1, &hello_bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_work_frames_end_the_stream_without_a_session() {
    let server = common::faktory().await;
    let handle = server.handle();
    let gateway = Gateway::start(&server.url(), &["--hello-timeout-ms", "5000"]).await;
    common::push_with(gateway.client().await, jobs("rawwork", 5, "default", "t")).await;

    // Garbage as the first frame, or a hello with a non-UTF-8 string: no
    // welcome, and the stream ends at once (well before the hello timeout,
    // which would answer DEADLINE_EXCEEDED).
    for frame in [Bytes::from_static(GARBAGE), non_utf8_hello_frame()] {
        let (got, end) = raw_work(&gateway, vec![frame]).await;
        assert!(got.is_empty(), "{got:?}");
        if let Some(status) = end {
            assert_ne!(status.code(), Code::DeadlineExceeded, "{status:?}");
        }
    }

    // A valid hello, then garbage: the stream ends (`raw_work` returns only
    // then); whatever it was handed goes to the next worker below.
    let _ = raw_work(&gateway, vec![hello_frame(), Bytes::from_static(GARBAGE)]).await;

    // The five jobs are still there for a real worker, none burned a retry.
    let mut worker = TestWorker::connect(&gateway, hello("after", &["default"], 10))
        .await
        .expect("session");
    let mut got = Vec::new();
    while got.len() < 5 {
        got.extend(worker.jobs().await.iter().map(jid_of));
    }
    worker.ack(got).await;
    assert!(worker.sync(1).await.is_empty());
    drop(worker);
    assert_eq!(handle.counters().failed, 0);

    assert_healthy(&gateway, &handle, "work-frames").await;
    gateway.stop().await.expect("clean shutdown");
    server.shutdown().await;
}

/// A `Work` frame the gateway cannot decode ends the stream with an error
/// status naming the problem (the decoder's own code, as `Push` answers:
/// INTERNAL for a malformed message, OUT_OF_RANGE for one over the size
/// limit), before and after the hello; not with OK as if the worker had
/// closed cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_work_frames_get_an_error_status() {
    let server = common::faktory().await;
    let gateway = Gateway::start(&server.url(), &["--max-message-bytes", "4096"]).await;
    let oversize_acks = encode(&WorkerMessage {
        kind: Some(worker_message::Kind::Acks(
            faktory_gateway_proto::v1::Acks {
                jids: (0..1000).map(|i| format!("never-given-{i:08}")).collect(),
            },
        )),
    });
    for frames in [
        vec![Bytes::from_static(GARBAGE)],
        vec![non_utf8_hello_frame()],
        vec![hello_frame(), Bytes::from_static(GARBAGE)],
        vec![hello_frame(), oversize_acks],
    ] {
        let (_, end) = raw_work(&gateway, frames).await;
        let status = end.expect("an error status, not a clean end");
        assert!(
            matches!(
                status.code(),
                Code::Internal | Code::InvalidArgument | Code::OutOfRange | Code::ResourceExhausted
            ),
            "{status:?}"
        );
        assert!(
            status
                .message()
                .starts_with("undecodable message from the worker: "),
            "the message names the problem: {status:?}"
        );
    }
    gateway.stop().await.expect("clean shutdown");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_json_is_invalid_per_job_and_spares_the_neighbours() {
    let server = common::faktory().await;
    let handle = server.handle();
    let gateway = Gateway::start(&server.url(), &[]).await;
    let base = |jid: &str| Job {
        jid: jid.into(),
        jobtype: "t".into(),
        ..Job::default()
    };
    let cases: Vec<(Job, &str, &str)> = vec![
        (
            Job {
                args: Bytes::from_static(br#"{"a": 1}"#),
                ..base("args-object")
            },
            "args",
            "must be a JSON array",
        ),
        (
            Job {
                args: Bytes::from_static(b"42"),
                ..base("args-number")
            },
            "args",
            "must be a JSON array",
        ),
        (
            Job {
                args: Bytes::from_static(b"[1, 2"),
                ..base("args-truncated")
            },
            "args",
            "valid JSON",
        ),
        (
            Job {
                args: Bytes::from(format!("{}{}", "[".repeat(10_000), "]".repeat(10_000))),
                ..base("args-deep")
            },
            "args",
            "deeper",
        ),
        (
            Job {
                custom: Bytes::from(format!(
                    "{{\"k\":{}1{}}}",
                    "{\"k\":".repeat(5_000),
                    "}".repeat(5_000)
                )),
                ..base("custom-deep")
            },
            "custom",
            "deeper",
        ),
        (
            Job {
                custom: Bytes::from_static(b"[1]"),
                ..base("custom-array")
            },
            "custom",
            "must be a JSON object",
        ),
    ];
    let mut request = vec![base("good-before")];
    request.extend(cases.iter().map(|(job, _, _)| job.clone()));
    request.push(base("good-after"));
    let response = gateway
        .client()
        .await
        .push(PushRequest { jobs: request })
        .await
        .expect("call")
        .into_inner();
    assert_eq!(response.results.len(), cases.len() + 2);
    assert_eq!(response.results[0].status(), PushStatus::Accepted);
    assert_eq!(
        response.results.last().unwrap().status(),
        PushStatus::Accepted
    );
    for ((job, field, fragment), result) in cases.iter().zip(&response.results[1..]) {
        assert_eq!(result.status(), PushStatus::Invalid, "{}", job.jid);
        assert_eq!(result.field, *field, "{}", job.jid);
        assert!(
            result.reason.contains(fragment),
            "{}: expected {fragment:?} in {:?}",
            job.jid,
            result.reason
        );
        assert!(handle.job(&job.jid).is_none());
    }
    assert_eq!(handle.counters().pushed, 2, "only the two good jobs");
    assert_healthy(&gateway, &handle, "json").await;
    gateway.stop().await.expect("clean shutdown");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_and_jobs_past_the_limits_are_refused() {
    let server = common::faktory().await;
    let handle = server.handle();
    let gateway = Gateway::start(
        &server.url(),
        &[
            "--max-jobs-per-push",
            "100",
            "--max-job-bytes",
            "2048",
            "--max-message-bytes",
            "65536",
        ],
    )
    .await;
    let mut client = gateway.client().await;

    // Too many jobs in one call: INVALID_ARGUMENT naming the limit.
    let status = client
        .push(PushRequest {
            jobs: jobs("many", 101, "default", "t"),
        })
        .await
        .unwrap_err();
    assert_status(&status, Code::InvalidArgument, "limit of 100 jobs per call");

    // One job over the per-job byte limit: INVALID for that job only.
    let mut big = jobs("bigjob", 2, "default", "t");
    big[0].args = Bytes::from(format!("[\"{}\"]", "x".repeat(4000)));
    let response = client
        .push(PushRequest { jobs: big })
        .await
        .expect("call")
        .into_inner();
    assert_eq!(response.results[0].status(), PushStatus::Invalid);
    assert_eq!(response.results[0].field, "args");
    assert!(
        response.results[0].reason.contains("limit of 2048 bytes"),
        "{:?}",
        response.results[0].reason
    );
    assert_eq!(response.results[1].status(), PushStatus::Accepted);

    // A request message over the gateway's decode limit is refused whole,
    // naming the limit (its code: `oversize_push_message_code`).
    let status = oversize_push(&mut client).await;
    assert!(
        status.message().contains("the limit is: 65536 bytes"),
        "the message names the limit: {:?}",
        status.message()
    );

    assert_eq!(handle.counters().pushed, 1);
    assert_healthy(&gateway, &handle, "limits").await;
    gateway.stop().await.expect("clean shutdown");
    server.shutdown().await;
}

/// 50 jobs of 1.5 KB each: about 77 KB, over a 64 KiB decode limit.
async fn oversize_push(
    client: &mut faktory_gateway_proto::v1::gateway_client::GatewayClient<Channel>,
) -> Status {
    let mut huge = jobs("huge", 50, "default", "t");
    for job in &mut huge {
        job.args = Bytes::from(format!("[\"{}\"]", "y".repeat(1500)));
    }
    client.push(PushRequest { jobs: huge }).await.unwrap_err()
}

/// The contract (gateway.proto, `Push`): a request over the maximum message
/// size (`--max-message-bytes`) is OUT_OF_RANGE, as tonic's decoder answers
/// it. (The contract used to promise RESOURCE_EXHAUSTED, which the gateway
/// never answered.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_push_message_code() {
    let server = common::faktory().await;
    let gateway = Gateway::start(&server.url(), &["--max-message-bytes", "65536"]).await;
    let status = oversize_push(&mut gateway.client().await).await;
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    gateway.stop().await.expect("clean shutdown");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_work_message_ends_the_stream() {
    let server = common::faktory().await;
    let handle = server.handle();
    let gateway = Gateway::start(&server.url(), &["--max-message-bytes", "4096"]).await;
    common::push_with(gateway.client().await, jobs("held", 3, "default", "t")).await;
    let mut worker = TestWorker::connect(&gateway, hello("big", &["default"], 5))
        .await
        .expect("session");
    assert_eq!(worker.welcome.max_message_bytes, 4096);
    let mut held = Vec::new();
    while held.len() < 3 {
        held.extend(worker.jobs().await.iter().map(jid_of));
    }
    // 1000 acks of 20-byte jids: about 22 KB, over the 4 KiB limit.
    let jids = (0..1000).map(|i| format!("never-given-{i:08}")).collect();
    worker.ack(jids).await;
    match worker.recv().await {
        // The code is checked by `malformed_work_frames_get_an_error_status`.
        Received::End(status) => assert!(status.is_some(), "an error status, not OK"),
        other => panic!("expected the stream to end, got {other:?}"),
    }
    drop(worker);
    // The jobs it held go to the next worker, attempt raised, no retry used.
    let mut next = TestWorker::connect(&gateway, hello("next", &["default"], 5))
        .await
        .expect("session");
    let mut again = Vec::new();
    while again.len() < 3 {
        let batch = next.jobs().await;
        assert!(batch.iter().all(|d| d.attempt == 2), "{batch:?}");
        again.extend(batch.iter().map(jid_of));
    }
    held.sort();
    again.sort();
    assert_eq!(again, held);
    next.ack(again).await;
    assert!(next.sync(1).await.is_empty());
    drop(next);
    assert_eq!(handle.counters().failed, 0);
    assert_healthy(&gateway, &handle, "work-limit").await;
    gateway.stop().await.expect("clean shutdown");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_repeated_results_go_to_faktory_by_jid() {
    let server = common::faktory().await;
    let handle = server.handle();
    let gateway = Gateway::start(&server.url(), &[]).await;
    common::push_with(gateway.client().await, jobs("acks", 3, "default", "t")).await;
    let mut worker = TestWorker::connect(&gateway, hello("w", &["default"], 3))
        .await
        .expect("session");
    let mut got = Vec::new();
    while got.len() < 3 {
        got.extend(worker.jobs().await.iter().map(jid_of));
    }

    // Twice in one batch, and never given here (as for a job another
    // gateway delivered): all go to Faktory, which takes an ACK whether or
    // not it holds the job, and each is confirmed.
    worker
        .ack(vec![got[0].clone(), got[0].clone(), "never-given-1".into()])
        .await;
    let extra = worker
        .until_settled(&[got[0].clone(), got[0].clone(), "never-given-1".into()])
        .await;
    assert!(extra.is_empty());
    // Failed after acking: Faktory no longer holds it, and says so.
    worker.fail(&got[0], "Late").await;
    match worker.recv().await {
        Received::Rejected(r) => {
            assert_eq!(r[0].jid, got[0]);
            assert!(r[0].reason.contains("not found"), "{}", r[0].reason);
        }
        other => panic!("expected Faktory's refusal, got {other:?}"),
    }
    // A release needs the job itself: only the gateway that delivered it can.
    worker.release(vec!["never-given-2".into()]).await;
    assert!(
        matches!(worker.recv().await, Received::Rejected(r) if r[0].jid == "never-given-2" && r[0].reason == "unknown jid")
    );

    // The real ones still work; Faktory holds nothing any more.
    worker.ack(got[1..].to_vec()).await;
    worker.until_settled(&got[1..]).await;
    assert!(handle.reserved_jids().is_empty());
    assert_eq!(handle.counters().acked, 5, "every ACK went to Faktory");
    drop(worker);
    assert_healthy(&gateway, &handle, "acks").await;
    gateway.stop().await.expect("clean shutdown");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_never_acks_gets_its_window_and_no_more() {
    let server = common::faktory().await;
    let handle = server.handle();
    let gateway = Gateway::start(&server.url(), &[]).await;
    let pushed = jobs("hoard", 20, "default", "t");
    common::push_with(gateway.client().await, pushed).await;

    let mut hoarder = TestWorker::connect(&gateway, hello("hoarder", &["default"], 5))
        .await
        .expect("session");
    let mut held = Vec::new();
    while held.len() < 5 {
        held.extend(hoarder.jobs().await.iter().map(jid_of));
    }
    assert_eq!(held.len(), 5, "exactly the window");

    // Another worker drains the rest, proving jobs were there to be had.
    let mut other = TestWorker::connect(&gateway, hello("other", &["default"], 100))
        .await
        .expect("session");
    let mut rest = Vec::new();
    while rest.len() < 15 {
        let batch: Vec<String> = other.jobs().await.iter().map(jid_of).collect();
        other.ack(batch.clone()).await;
        rest.extend(batch);
    }
    // Everything the gateway sent the hoarder before this pong is in hand:
    // still exactly its window.
    assert!(hoarder.sync(1).await.is_empty(), "nothing past the window");
    eventually(
        "the other's acks reach faktory",
        Duration::from_secs(10),
        || handle.counters().acked == 15,
    )
    .await;
    assert_eq!(handle.reserved_jids().len(), 5, "only the hoarder's window");

    // The hoarder vanishes: its jobs go to the other worker, retries intact.
    hoarder.cut();
    let mut again = Vec::new();
    while again.len() < 5 {
        for delivery in other.jobs().await {
            assert_eq!(delivery.attempt, 2);
            again.push(jid_of(&delivery));
        }
    }
    again.sort();
    held.sort();
    assert_eq!(again, held);
    other.ack(again).await;
    assert!(other.sync(2).await.is_empty());
    eventually("all 20 acked", Duration::from_secs(10), || {
        handle.counters().acked == 20
    })
    .await;
    assert_eq!(handle.counters().failed, 0);
    drop(other);
    assert_healthy(&gateway, &handle, "hoard").await;
    gateway.stop().await.expect("clean shutdown");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_zero_absurd_and_silent_streams() {
    let server = common::faktory().await;
    let handle = server.handle();
    let gateway = Gateway::start(
        &server.url(),
        &[
            "--max-window",
            "50",
            "--hello-timeout-ms",
            "300",
            "--heartbeat-timeout-ms",
            "500",
            "--heartbeat-interval-ms",
            "100",
        ],
    )
    .await;

    // Window 0: INVALID_ARGUMENT naming the field.
    let status = TestWorker::connect(&gateway, hello("zero", &["default"], 0))
        .await
        .err()
        .expect("refused");
    assert_status(&status, Code::InvalidArgument, "hello.window");

    // Absurd window: clamped, and the welcome says so.
    let mut huge = TestWorker::connect(&gateway, hello("huge", &["default"], u32::MAX))
        .await
        .expect("session");
    assert_eq!(huge.welcome.window, 50);
    assert_eq!(huge.welcome.max_window, 50);
    // ... and the clamp is what applies: 60 jobs, 50 delivered.
    common::push_with(gateway.client().await, jobs("clamp", 60, "default", "t")).await;
    let mut got = Vec::new();
    while got.len() < 50 {
        got.extend(huge.jobs().await.iter().map(jid_of));
    }
    assert_eq!(got.len(), 50);
    assert!(
        huge.sync(1).await.is_empty(),
        "no more than the clamped window"
    );
    // Window update to 0 mid-stream: INVALID_ARGUMENT ends the stream.
    huge.send(worker_message::Kind::Window(
        faktory_gateway_proto::v1::WindowUpdate { window: 0 },
    ))
    .await;
    match huge.recv().await {
        Received::End(Some(status)) => {
            assert_status(&status, Code::InvalidArgument, "window");
        }
        other => panic!("expected the stream to end, got {other:?}"),
    }

    // A stream that sends nothing: DEADLINE_EXCEEDED after the hello timeout.
    let status = TestWorker::connect_with(&gateway, None)
        .await
        .err()
        .expect("refused");
    assert_status(&status, Code::DeadlineExceeded, "no hello within 300 ms");

    // A stream that says hello, then nothing (not even heartbeats): ended
    // after the heartbeat timeout, its jobs redelivered.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(WorkerMessage {
        kind: Some(worker_message::Kind::Hello(hello("mute", &["default"], 60))),
    })
    .await
    .unwrap();
    let mut client = gateway.client().await;
    let mut mute = client
        .work(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("stream")
        .into_inner();
    let status = loop {
        match mute.message().await {
            Ok(Some(_)) => {} // welcome, the redelivered jobs, pings (unanswered)
            Ok(None) => panic!("ended without a status"),
            Err(status) => break status,
        }
    };
    assert_status(
        &status,
        Code::DeadlineExceeded,
        "no message from the worker",
    );
    drop(tx);

    assert_healthy(&gateway, &handle, "windows").await;
    gateway.stop().await.expect("clean shutdown");
    server.shutdown().await;
}
