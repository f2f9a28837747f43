//! The gateway's HTTP/1.1 server (hyper): `GET /metrics` on the metrics
//! port (`--metrics-listen`), and the HTTP/JSON API on `--http-listen`,
//! which serves `/metrics` too (so one port can serve both).
//!
//! - here: [`serve`] (one task per connection, graceful stop) and the
//!   routes.
//! - `push`: `POST /v1/jobs`, the `Push` rpc as JSON.
//! - `workers`: `GET /v1/workers`, the workers listing as JSON.
//! - `reply`: JSON bodies and errors, HTTP statuses of gRPC errors.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::auth::Auth;
use crate::delivery::DeliveryPath;
use crate::metrics::Metrics;
use crate::submit::Submitter;

mod push;
mod reply;
mod workers;

use reply::Reply;

/// How long a client may take to send a request's head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long requests in progress get to finish once the server stops.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// What the HTTP/JSON API needs.
#[derive(Debug, Clone)]
pub(crate) struct Api {
    /// The submit path `POST /v1/jobs` shares with `Push`.
    pub(crate) submitter: Submitter,
    /// The delivery path, for the workers listing.
    pub(crate) delivery: DeliveryPath,
    /// The tokens.
    pub(crate) auth: Arc<Auth>,
    /// Largest request body, in bytes (`--max-message-bytes`, as for gRPC).
    pub(crate) max_body_bytes: usize,
}

/// What one listener serves: always `/metrics`, the API when set.
#[derive(Debug, Clone)]
pub(crate) struct Routes {
    /// The metrics.
    pub(crate) metrics: Arc<Metrics>,
    /// The HTTP/JSON API, on the `--http-listen` port only.
    pub(crate) api: Option<Api>,
}

/// Serves `routes` on `listener` until `stop` is cancelled; then stops
/// accepting, lets requests in progress finish (up to [`STOP_GRACE`]),
/// closes idle connections and returns.
pub(crate) async fn serve(listener: TcpListener, routes: Routes, stop: CancellationToken) {
    let routes = Arc::new(routes);
    let mut connections = JoinSet::new();
    loop {
        // Both arms are cancellation-safe: accept() loses nothing when
        // dropped; join_next() only reaps finished connection tasks.
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _peer)) => {
                let _ = stream.set_nodelay(true);
                connections.spawn(connection(stream, routes.clone(), stop.clone()));
            }
            Err(error) => {
                tracing::warn!(%error, "http accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(STOP_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("http requests still running after the stop grace; closing them");
    }
    // Dropping the set aborts what is left.
}

/// Serves one connection (keep-alive included) until the client closes it
/// or the server stops.
async fn connection(stream: tokio::net::TcpStream, routes: Arc<Routes>, stop: CancellationToken) {
    let service = service_fn(move |request| {
        let routes = routes.clone();
        async move { Ok::<_, Infallible>(routes.answer(request).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    // Both arms are cancellation-safe: the connection future is pinned
    // here and polled again after a stop.
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, "http connection ended with an error");
    }
}

impl Routes {
    async fn answer(&self, request: http::Request<Incoming>) -> Reply {
        let path = request.uri().path().to_owned();
        let get = request.method() == Method::GET;
        let post = request.method() == Method::POST;
        match (path.as_str(), &self.api) {
            ("/metrics", _) if get => reply::text(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                self.metrics.render(),
            ),
            ("/metrics", _) => reply::wrong_method(&path, "GET"),
            ("/v1/jobs", Some(api)) if post => push::handle(api, request).await,
            ("/v1/jobs", Some(_)) => reply::wrong_method(&path, "POST"),
            ("/v1/workers", Some(api)) if get => workers::handle(api, request.headers()),
            ("/v1/workers", Some(_)) => reply::wrong_method(&path, "GET"),
            ("/v1/jobs" | "/v1/workers", None) => reply::error(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!(
                    "{path} is not served on the metrics port; the HTTP API listens on --http-listen (GATEWAY_HTTP_LISTEN)"
                ),
            ),
            _ => reply::error(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("no endpoint {path}; try {}", self.endpoints()),
            ),
        }
    }

    fn endpoints(&self) -> &'static str {
        if self.api.is_some() {
            "POST /v1/jobs, GET /v1/workers or GET /metrics"
        } else {
            "GET /metrics"
        }
    }
}
