//! [`serve`]: the gateway's gRPC server. The `Gateway` service (`Push` through
//! the submit path, `Work` through the delivery path) and the `Admin` service
//! (`ListWorkers`) behind bearer-token checks, gRPC health and reflection,
//! optional TLS, message size limits, HTTP/2 keepalive and explicit
//! flow-control windows; beside it the HTTP servers (`gateway/src/http/`): the
//! Prometheus endpoint on its own port and, when `--http-listen` is set, the
//! HTTP/JSON API. On shutdown: health goes NOT_SERVING, the delivery path
//! drains, and the servers stop.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use faktory_gateway_proto::FILE_DESCRIPTOR_SET;
use faktory_gateway_proto::v1::admin_server::AdminServer;
use faktory_gateway_proto::v1::gateway_server::{Gateway, GatewayServer};
use faktory_gateway_proto::v1::{GatewayMessage, PushRequest, PushResponse, WorkerMessage};
use futures::Stream;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};
use tonic_health::ServingStatus;
use tracing::{info, warn};

use crate::admin::AdminService;
use crate::auth::{Auth, Role};
use crate::config::{Config, ListenAddr};
use crate::delivery::DeliveryPath;
use crate::error::Error;
use crate::http::{Api, Routes};
use crate::metrics::Metrics;
use crate::submit::Submitter;

/// HTTP/2 PING interval; proxies answer these themselves, so liveness of a
/// worker is judged by application heartbeats, but PINGs keep idle NATs open
/// and detect dead TCP peers.
const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// How long an HTTP/2 PING may go unanswered.
const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// HTTP/2 receive window per stream: covers the bandwidth-delay product of a
/// producer pushing 10 KiB jobs across a 200 ms link. It is a limit, not an
/// allocation: memory is used only while the service lags behind the peer.
const HTTP2_STREAM_WINDOW: u32 = 16 * 1024 * 1024;
/// HTTP/2 receive window per connection. Explicit, not adaptive: h2 allows
/// unread small DATA frames (one per small call or stream message) worth
/// only half this window in bookkeeping before it cuts the connection with
/// GOAWAY `too_many_data_frames`; adaptive flow control starts at 64 KiB,
/// which 200 concurrent one-job `Push` calls on one channel exhausted.
const HTTP2_CONNECTION_WINDOW: u32 = 32 * 1024 * 1024;
/// Longest wait for in-flight calls once the delivery path has drained.
const SERVER_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The `Gateway` service.
struct GatewayService {
    auth: Arc<Auth>,
    delivery: DeliveryPath,
    submitter: Submitter,
}

type WorkStream = Pin<Box<dyn Stream<Item = Result<GatewayMessage, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Gateway for GatewayService {
    async fn push(&self, request: Request<PushRequest>) -> Result<Response<PushResponse>, Status> {
        self.auth.check(Role::Producer, request.metadata())?;
        let response = self.submitter.push(request.into_inner()).await?;
        Ok(Response::new(response))
    }

    type WorkStream = WorkStream;

    async fn work(
        &self,
        request: Request<Streaming<WorkerMessage>>,
    ) -> Result<Response<Self::WorkStream>, Status> {
        self.auth.check(Role::Worker, request.metadata())?;
        let stream = self.delivery.open_session(request.into_inner());
        Ok(Response::new(Box::pin(stream)))
    }
}

/// Runs the gateway on `listener` until `shutdown` resolves, then drains:
/// health NOT_SERVING, fetching stops, workers get a drain notice and the
/// shutdown grace to finish, leftovers are released back to Faktory, Faktory
/// connections end with END. Returns `Ok` after a clean drain.
///
/// Faktory being unreachable is not an error here: connections are retried
/// with backoff (and `Push` answers UNAVAILABLE meanwhile).
///
/// # Errors
/// [`Error::Tls`] when the TLS files cannot be used, [`Error::MetricsListen`]
/// or [`Error::HttpListen`] when the metrics or HTTP API address cannot be
/// bound, [`Error::Transport`] when the
/// gRPC server fails, [`Error::Reflection`] (descriptor set broken).
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let http = HttpListeners::bind(&config).await?;
    serve_with(config, listener, http, shutdown).await
}

/// The HTTP listeners beside the gRPC port: the HTTP/JSON API
/// (`--http-listen`, which serves `/metrics` too) and the metrics-only port
/// (`--metrics-listen`). [`serve`] binds them from the configuration; bind
/// them yourself (port 0, say) and call [`serve_with`] to know their
/// addresses.
#[derive(Debug, Default)]
pub struct HttpListeners {
    /// Where the HTTP/JSON API (and `/metrics`) is served, if anywhere.
    pub api: Option<TcpListener>,
    /// Where `/metrics` alone is served, if anywhere.
    pub metrics: Option<TcpListener>,
}

impl HttpListeners {
    /// Binds the addresses of `config`: `--http-listen` and
    /// `--metrics-listen`, or one listener for both when they are the same.
    ///
    /// # Errors
    /// [`Error::HttpListen`] or [`Error::MetricsListen`] when an address
    /// cannot be bound.
    pub async fn bind(config: &Config) -> Result<HttpListeners, Error> {
        let one_port = matches!(
            (config.http_listen, config.metrics_listen),
            (ListenAddr::Addr(api), ListenAddr::Addr(metrics)) if api == metrics
        );
        let metrics = match config.metrics_listen {
            ListenAddr::Addr(addr) if !one_port => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| Error::MetricsListen { addr, source })?,
            ),
            _ => None,
        };
        let api = match config.http_listen {
            ListenAddr::Off => None,
            ListenAddr::Addr(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| Error::HttpListen { addr, source })?,
            ),
        };
        Ok(HttpListeners { api, metrics })
    }
}

/// As [`serve`], with the HTTP listeners already bound (the addresses in
/// `config` are not used for them).
///
/// # Errors
/// As [`serve`].
pub async fn serve_with(
    config: Config,
    listener: TcpListener,
    http: HttpListeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let metrics = Metrics::new();
    let auth = Arc::new(Auth::from_config(&config));
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            Some(crate::tls::server_tls_config(cert, key).map_err(Error::Tls)?)
        }
        _ => None,
    };
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(Error::Reflection)?;
    let delivery = DeliveryPath::start(&config, metrics.clone());
    let submitter = Submitter::new(&config, metrics.clone());
    // The metrics port serves until the very end; the API stops taking
    // pushes with the gRPC server.
    let metrics_stop = CancellationToken::new();
    let metrics_task = http.metrics.map(|listener| {
        info!(addr = %local_addr(&listener), "metrics listening");
        let routes = Routes {
            metrics: metrics.clone(),
            api: None,
        };
        tokio::spawn(crate::http::serve(listener, routes, metrics_stop.clone()))
    });
    let api_stop = CancellationToken::new();
    let api_task = http.api.map(|listener| {
        info!(addr = %local_addr(&listener), "http api listening (and metrics)");
        let routes = Routes {
            metrics: metrics.clone(),
            api: Some(Api {
                submitter: submitter.clone(),
                delivery: delivery.clone(),
                auth: auth.clone(),
                max_body_bytes: config.max_message_bytes as usize,
            }),
        };
        tokio::spawn(crate::http::serve(listener, routes, api_stop.clone()))
    });
    let admin = AdminServer::new(AdminService {
        auth: auth.clone(),
        delivery: delivery.clone(),
    });
    let service = GatewayService {
        auth,
        delivery: delivery.clone(),
        submitter: submitter.clone(),
    };
    let gateway = GatewayServer::new(service)
        .max_decoding_message_size(config.max_message_bytes as usize)
        // Job batches are cut to each worker's own limit (up to 4 GiB).
        .max_encoding_message_size(u32::MAX as usize);
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<GatewayServer<GatewayService>>().await;
    health.set_serving::<AdminServer<AdminService>>().await;
    health.set_service_status("", ServingStatus::Serving).await;

    let mut builder = Server::builder()
        .http2_keepalive_interval(Some(HTTP2_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(HTTP2_KEEPALIVE_TIMEOUT))
        .initial_stream_window_size(HTTP2_STREAM_WINDOW)
        .initial_connection_window_size(HTTP2_CONNECTION_WINDOW);
    if let Some(tls) = tls {
        builder = builder.tls_config(tls).map_err(Error::Transport)?;
    }
    let local = listener.local_addr().ok();
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let server_stop = CancellationToken::new();
    let mut server = tokio::spawn(
        builder
            .add_service(health_service)
            .add_service(reflection)
            .add_service(gateway)
            .add_service(admin)
            .serve_with_incoming_shutdown(incoming, server_stop.clone().cancelled_owned()),
    );
    info!(addr = ?local, faktory = %config.faktory_url, "gateway listening");

    // Both arms are cancellation-safe: `shutdown` is only polled here, and
    // the server task keeps running when its JoinHandle is polled and dropped.
    let early = tokio::select! {
        () = shutdown => None,
        result = &mut server => Some(result),
    };
    if let Some(result) = early {
        // The server stopped on its own: drain anyway, then report why.
        delivery.shutdown().await;
        stop_http(&api_stop, api_task).await;
        let _ = tokio::time::timeout(SERVER_STOP_TIMEOUT, submitter.close()).await;
        metrics_stop.cancel();
        return match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::Transport(e)),
            Err(e) => Err(Error::ServerTask(e)),
        };
    }
    info!("shutting down");
    health
        .set_not_serving::<GatewayServer<GatewayService>>()
        .await;
    health.set_not_serving::<AdminServer<AdminService>>().await;
    health
        .set_service_status("", ServingStatus::NotServing)
        .await;
    delivery.shutdown().await;
    server_stop.cancel();
    let result = match tokio::time::timeout(SERVER_STOP_TIMEOUT, &mut server).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(e))) => Err(Error::Transport(e)),
        Ok(Err(e)) => Err(Error::ServerTask(e)),
        Err(_) => {
            warn!("calls still open after the drain; closing them");
            server.abort();
            Ok(())
        }
    };
    // The HTTP API's pushes in progress finish; then its Submitter clone
    // is gone too.
    stop_http(&api_stop, api_task).await;
    // The service (and its Submitter clone) is gone with the server: waiting
    // pushes are sent and producer connections end with END.
    let _ = tokio::time::timeout(SERVER_STOP_TIMEOUT, submitter.close()).await;
    stop_http(&metrics_stop, metrics_task).await;
    info!("gateway stopped");
    result
}

/// Where `listener` listens, for logs.
fn local_addr(listener: &TcpListener) -> String {
    listener
        .local_addr()
        .map_or_else(|e| format!("unknown ({e})"), |a| a.to_string())
}

/// Stops an HTTP server task and waits for it (it bounds its own wait for
/// requests in progress).
async fn stop_http(stop: &CancellationToken, task: Option<tokio::task::JoinHandle<()>>) {
    stop.cancel();
    if let Some(task) = task {
        let _ = task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    async fn bind(http: &str, metrics: &str) -> HttpListeners {
        let args = [
            "faktory-gateway",
            "--http-listen",
            http,
            "--metrics-listen",
            metrics,
        ];
        let config = Config::try_parse_from(args).expect("valid flags");
        HttpListeners::bind(&config).await.expect("bind")
    }

    #[tokio::test]
    async fn one_listener_when_the_api_and_metrics_share_an_address() {
        let same = bind("127.0.0.1:0", "127.0.0.1:0").await;
        assert!(same.api.is_some() && same.metrics.is_none());
        let apart = bind("127.0.0.1:0", "127.0.0.2:0").await;
        assert!(apart.api.is_some() && apart.metrics.is_some());
        let metrics_only = bind("off", "127.0.0.1:0").await;
        assert!(metrics_only.api.is_none() && metrics_only.metrics.is_some());
        let none = bind("off", "off").await;
        assert!(none.api.is_none() && none.metrics.is_none());
    }
}
