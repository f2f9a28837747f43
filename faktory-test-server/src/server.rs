//! [`TestServer`]: binding, the accept loop, the periodic-task ticker, chaos controls.
//!
//! Task layout: one accept task per listener generation, one task per connection (tracked per
//! generation so `stop_listener` can close and await them), one ticker task that runs
//! Faktory's periodic jobs once a second. A root `CancellationToken` ends everything.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::config::ServerConfig;
use crate::connection;
use crate::handle::ServerHandle;
use crate::shared::Shared;

/// How often the periodic tasks are checked (Faktory's task runner ticks every second).
const TICK: Duration = Duration::from_secs(1);

/// A running Faktory stand-in. Dropping it stops it (use [`TestServer::shutdown`] to also wait
/// for every task to end).
pub struct TestServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    tls: Option<TlsAcceptor>,
    root: CancellationToken,
    ticker: Option<JoinHandle<()>>,
    listener: tokio::sync::Mutex<Option<ListenerRun>>,
}

/// One generation of the listening socket and the connections it accepted.
#[derive(Debug)]
struct ListenerRun {
    stop: CancellationToken,
    accept: JoinHandle<()>,
    connections: TaskTracker,
}

impl TestServer {
    /// Starts a server on `127.0.0.1:0` with Faktory's defaults.
    ///
    /// Fails if the port cannot be bound.
    pub async fn start() -> io::Result<TestServer> {
        TestServer::start_with(ServerConfig::default()).await
    }

    /// Starts a server with `config`.
    ///
    /// Fails if the address cannot be bound or the TLS identity is unusable.
    pub async fn start_with(mut config: ServerConfig) -> io::Result<TestServer> {
        // Like Faktory, an empty password means no password.
        if config.password.as_deref() == Some("") {
            config.password = None;
        }
        let tls = match &config.tls {
            Some(identity) => Some(crate::tls::acceptor(identity)?),
            None => None,
        };
        let listener = bind(config.listen)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(config));
        let root = CancellationToken::new();
        let ticker = tokio::spawn(tick(shared.clone(), root.clone()));
        let server = TestServer {
            shared,
            addr,
            tls,
            root,
            ticker: Some(ticker),
            listener: tokio::sync::Mutex::new(None),
        };
        *server.listener.lock().await = Some(server.spawn_listener(listener));
        tracing::info!(addr = %addr, "faktory test server listening");
        Ok(server)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `tcp://127.0.0.1:PORT`, with `:password@` when one is set and `tcp+tls://` with TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "tcp+tls" } else { "tcp" };
        match &self.shared.config.password {
            Some(password) => format!("{scheme}://:{password}@{}", self.addr),
            None => format!("{scheme}://{}", self.addr),
        }
    }

    /// A handle for inspecting and steering the server.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            shared: self.shared.clone(),
        }
    }

    /// Closes the listening socket and every open connection, and waits until they are gone.
    /// Job state is kept (reservations stay, as when a Faktory client's connection drops).
    pub async fn stop_listener(&self) {
        let run = self.listener.lock().await.take();
        if let Some(run) = run {
            run.stop.cancel();
            let _ = run.accept.await;
            run.connections.close();
            run.connections.wait().await;
        }
    }

    /// Binds the same port again after [`stop_listener`](Self::stop_listener). A no-op if the
    /// listener is running.
    ///
    /// # Panics
    /// If the port cannot be bound again (another process took it); see
    /// [`try_restart_listener`](Self::try_restart_listener).
    pub async fn restart_listener(&self) {
        if let Err(e) = self.try_restart_listener().await {
            panic!("cannot rebind {}: {e}", self.addr);
        }
    }

    /// Like [`restart_listener`](Self::restart_listener), returning the bind error instead.
    ///
    /// Fails if the port cannot be bound again.
    pub async fn try_restart_listener(&self) -> io::Result<()> {
        let mut guard = self.listener.lock().await;
        if guard.is_none() {
            let listener = bind(self.addr)?;
            *guard = Some(self.spawn_listener(listener));
        }
        Ok(())
    }

    /// Stops everything and waits for all tasks to end.
    pub async fn shutdown(mut self) {
        self.stop_listener().await;
        self.root.cancel();
        if let Some(ticker) = self.ticker.take() {
            let _ = ticker.await;
        }
    }

    fn spawn_listener(&self, listener: TcpListener) -> ListenerRun {
        let stop = self.root.child_token();
        let connections = TaskTracker::new();
        let accept = tokio::spawn(accept_loop(
            listener,
            self.shared.clone(),
            self.tls.clone(),
            stop.clone(),
            connections.clone(),
        ));
        ListenerRun {
            stop,
            accept,
            connections,
        }
    }
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.root.cancel();
    }
}

/// Binds with `SO_REUSEADDR`, so `restart_listener` can take the same port back at once.
fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true).ok();
    socket.bind(addr)?;
    socket.listen(1024)
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
    stop: CancellationToken,
    connections: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            // Cancellation-safe: accept() either returned a socket or did nothing.
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (socket, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        shared.accepted.fetch_add(1, Ordering::Relaxed);
        let shared = shared.clone();
        let close = stop.child_token();
        let span = tracing::debug_span!("connection", peer = %peer);
        match tls.clone() {
            None => {
                connections.spawn(connection::serve(socket, shared, close).instrument(span));
            }
            Some(acceptor) => {
                connections.spawn(
                    async move {
                        let timeout = shared.config.handshake_timeout;
                        let stream = tokio::select! {
                            _ = close.cancelled() => return,
                            tls = tokio::time::timeout(timeout, acceptor.accept(socket)) => tls,
                        };
                        match stream {
                            Ok(Ok(stream)) => connection::serve(stream, shared, close).await,
                            _ => tracing::debug!("tls handshake failed"),
                        }
                    }
                    .instrument(span),
                );
            }
        }
    }
}

async fn tick(shared: Arc<Shared>, stop: CancellationToken) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = interval.tick() => shared.run_periodic(false),
        }
    }
}
