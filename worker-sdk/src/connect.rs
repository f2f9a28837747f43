//! Reaching one gateway: endpoint options (TLS, HTTP/2 keepalive and
//! flow-control windows sized for slow links, dialling a resolved address
//! under the URL's name), the bearer token, and opening the `Work` stream
//! with its `Hello`/`Welcome` handshake. The worker and the producer client
//! (`client.rs`) build their endpoints here; which gateway the worker chooses
//! lives in `gateways.rs`.

use std::net::SocketAddr;
use std::time::Duration;

use faktory_gateway_proto::v1::{
    self, gateway_client::GatewayClient, gateway_message, worker_message,
};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::http::Uri;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::Error;
use crate::settings::Settings;

/// How long the gateway may take to answer `Hello`.
const WELCOME_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages queued towards the gateway before senders wait.
const OUTBOUND_CAPACITY: usize = 256;
/// HTTP/2 receive windows: large enough for the bandwidth-delay product of
/// slow links, so HTTP/2 flow control never caps throughput. 10 KiB jobs at
/// 20k jobs/s over a 200 ms link are ~41 MB in flight; 8 MiB capped that at
/// ~3.2k jobs/s. The window is credit, not an allocation: what is buffered is
/// bounded by the job window the worker advertises. Measured back to back
/// (bench, gateway-50 rtt=200ms 10KiB): `http2_adaptive_window(true)` 5,375
/// jobs/s, these explicit sizes 8,708 jobs/s.
const H2_STREAM_WINDOW: u32 = 64 << 20;
const H2_CONNECTION_WINDOW: u32 = 64 << 20;

/// How to verify the gateway's TLS certificate.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tls {
    /// A CA (PEM) trusted instead of the public roots; also turns TLS on
    /// for `http://` URLs.
    pub(crate) ca_pem: Option<Vec<u8>>,
    /// The name to verify the certificate against, if not the URL's host.
    pub(crate) domain: Option<String>,
}

/// A bearer token, checked once to be valid in an HTTP header; its `Debug`
/// does not show it.
#[derive(Clone)]
pub(crate) struct Bearer(MetadataValue<Ascii>);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer(..)")
    }
}

impl Bearer {
    /// The `authorization` value for `token`; `name` is the setting it came
    /// from, for the error.
    ///
    /// Fails when the token cannot be sent in an HTTP header.
    pub(crate) fn new(token: &str, name: &'static str) -> Result<Bearer, Error> {
        MetadataValue::try_from(format!("Bearer {token}"))
            .map(Bearer)
            .map_err(|_| Error::InvalidSetting {
                name,
                reason: "not valid in an HTTP header".into(),
            })
    }

    /// Adds `authorization: Bearer <token>` to `request`.
    pub(crate) fn authorize<T>(&self, request: &mut tonic::Request<T>) {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
    }
}

/// An open stream after a successful handshake.
pub(crate) struct Stream {
    /// The connection the stream runs on (the worker's producer client uses
    /// it too).
    pub(crate) channel: Channel,
    pub(crate) outbound: mpsc::Sender<v1::WorkerMessage>,
    pub(crate) inbound: tonic::Streaming<v1::GatewayMessage>,
    pub(crate) welcome: v1::Welcome,
}

/// Why opening a stream failed.
pub(crate) enum ConnectError {
    /// Worth retrying later (gateway down, shutting down, timeout).
    Transient(String),
    /// Retrying cannot help.
    Fatal(Error),
}

/// Builds the endpoint for the gateway at `url`, once per address; then
/// `Endpoint::connect` is called per attempt. With `dial = Some((addr,
/// host))` the connection goes to `addr` (one address `host` resolved to),
/// while requests keep `url` as their authority and TLS verifies `host`
/// (unless a TLS domain is set).
///
/// Fails when the transport rejects the URL or the TLS options.
pub(crate) fn endpoint(
    tls: &Tls,
    url: &str,
    dial: Option<(SocketAddr, &str)>,
) -> Result<Endpoint, Error> {
    let invalid = |source| Error::Endpoint {
        url: url.to_owned(),
        source,
    };
    let mut endpoint = Endpoint::from_shared(url.to_owned()).map_err(invalid)?;
    let mut tls_name = tls.domain.clone();
    if let Some((addr, host)) = dial {
        let origin = endpoint.uri().clone();
        let mut parts = origin.clone().into_parts();
        parts.authority = Some(
            addr.to_string()
                .parse()
                .expect("a socket address is an authority"),
        );
        parts
            .path_and_query
            .get_or_insert_with(|| "/".parse().expect("/ is a path"));
        let uri = Uri::from_parts(parts).expect("the URL with its host replaced is a URI");
        endpoint = Endpoint::from(uri).origin(origin);
        tls_name.get_or_insert_with(|| host.to_owned());
    }
    endpoint = endpoint
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(20))
        .keep_alive_while_idle(true)
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONNECTION_WINDOW);
    if url.starts_with("https://") || tls.ca_pem.is_some() {
        // A caller's CA replaces the public roots: a private CA is the whole
        // trust story, and a public certificate then needs no option at all.
        let mut config = match &tls.ca_pem {
            Some(pem) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)),
            None => ClientTlsConfig::new().with_webpki_roots(),
        };
        if let Some(domain) = tls_name {
            config = config.domain_name(domain);
        }
        endpoint = endpoint.tls_config(config).map_err(invalid)?;
    }
    Ok(endpoint)
}

/// Connects, sends `hello` and waits for the `Welcome`.
pub(crate) async fn open(
    endpoint: &Endpoint,
    settings: &Settings,
    hello: v1::Hello,
) -> Result<Stream, ConnectError> {
    let channel: Channel = endpoint
        .connect()
        .await
        .map_err(|e| ConnectError::Transient(format!("connect: {e}")))?;
    let max = settings.max_message_bytes as usize;
    let mut client = GatewayClient::new(channel.clone())
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);

    let (outbound, rx) = mpsc::channel(OUTBOUND_CAPACITY);
    let hello = v1::WorkerMessage {
        kind: Some(worker_message::Kind::Hello(hello)),
    };
    // The gateway answers the call only after reading the hello, so it must be
    // queued before the call is made.
    outbound
        .send(hello)
        .await
        .map_err(|_| ConnectError::Transient("outbound closed".into()))?;
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    if let Some(token) = &settings.token {
        token.authorize(&mut request);
    }
    let response = tokio::time::timeout(WELCOME_TIMEOUT, client.work(request))
        .await
        .map_err(|_| ConnectError::Transient("no response to hello".into()))?
        .map_err(classify)?;
    let mut inbound = response.into_inner();
    let first = tokio::time::timeout(WELCOME_TIMEOUT, inbound.next())
        .await
        .map_err(|_| ConnectError::Transient("no welcome".into()))?;
    match first {
        Some(Ok(v1::GatewayMessage {
            kind: Some(gateway_message::Kind::Welcome(welcome)),
        })) => Ok(Stream {
            channel,
            outbound,
            inbound,
            welcome,
        }),
        Some(Ok(other)) => Err(ConnectError::Transient(format!(
            "expected welcome, got {other:?}"
        ))),
        Some(Err(status)) => Err(classify(status)),
        None => Err(ConnectError::Transient(
            "stream closed before welcome".into(),
        )),
    }
}

/// Sorts a gRPC status into "retry later" and "give up".
pub(crate) fn classify(status: tonic::Status) -> ConnectError {
    use tonic::Code;
    match status.code() {
        Code::Unauthenticated
        | Code::PermissionDenied
        | Code::InvalidArgument
        | Code::Unimplemented
        | Code::FailedPrecondition => ConnectError::Fatal(Error::Refused { status }),
        _ => ConnectError::Transient(format!("{:?}: {}", status.code(), status.message())),
    }
}
