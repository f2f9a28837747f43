//! A user-space TCP proxy that delays every byte by a fixed one-way latency in
//! each direction, for tests and benchmarks that need a slow link on a machine
//! without `tc netem`.
//!
//! Each accepted connection is proxied to one upstream address. Per direction a
//! reader task stamps every chunk with the instant it was read and queues it on
//! a bounded channel; a writer task sleeps until `read_at + one_way` and then
//! writes the chunk. Bytes in flight are therefore pipelined: the link adds
//! latency but does not limit throughput to one chunk per latency period, and
//! order is preserved because each direction has exactly one writer.
//!
//! # Layout
//! - [`LinkEmulator`] (this file): the listener, the connection registry and the
//!   chaos controls ([`LinkEmulator::cut_all`], [`LinkEmulator::pause_all`] and
//!   [`LinkEmulator::resume_all`]).
//! - `pipe` (private): one delayed direction of one connection.
//!
//! # Example
//! ```no_run
//! # async fn demo(upstream: std::net::SocketAddr) -> std::io::Result<()> {
//! use std::time::Duration;
//! use link_emulator::LinkEmulator;
//!
//! // Clients connect to `link.addr()` and reach `upstream` 25 ms later (50 ms RTT).
//! let link = LinkEmulator::start(upstream, Duration::from_millis(25)).await?;
//! let _stream = tokio::net::TcpStream::connect(link.addr()).await?;
//! # Ok(()) }
//! ```

mod pipe;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// The controls shared by the connections accepted between two cuts or
/// pauses.
#[derive(Debug)]
struct Generation {
    /// Cancelled by `cut_all`.
    cut: CancellationToken,
    /// `true` while `pause_all` stalls these connections.
    paused: watch::Sender<bool>,
}

impl Generation {
    fn new(shutdown: &CancellationToken) -> Generation {
        Generation {
            cut: shutdown.child_token(),
            paused: watch::Sender::new(false),
        }
    }
}

/// A running delay proxy. Dropping it stops the listener and every connection.
#[derive(Debug)]
pub struct LinkEmulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

/// State shared by the listener task, the connection tasks and the handle.
#[derive(Debug)]
struct Shared {
    /// Cancelled when the emulator is dropped.
    shutdown: CancellationToken,
    /// The generation of connections the next `cut_all` or `pause_all` acts
    /// on. Replaced by a fresh one on every cut or pause so new connections
    /// are not affected by earlier ones.
    generation: Mutex<Generation>,
    /// Pause switches of the generations `pause_all` stalled, until
    /// `resume_all`.
    paused: Mutex<Vec<watch::Sender<bool>>>,
    /// Connections currently open.
    connections: AtomicUsize,
}

impl LinkEmulator {
    /// Binds `127.0.0.1:0` and proxies every accepted connection to `upstream`,
    /// delaying each direction by `one_way`.
    ///
    /// Fails only if the listening socket cannot be bound.
    pub async fn start(upstream: SocketAddr, one_way: Duration) -> std::io::Result<LinkEmulator> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let shared = Arc::new(Shared {
            generation: Mutex::new(Generation::new(&shutdown)),
            paused: Mutex::new(Vec::new()),
            shutdown,
            connections: AtomicUsize::new(0),
        });
        tokio::spawn(accept_loop(listener, upstream, one_way, shared.clone()));
        Ok(LinkEmulator { addr, shared })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Aborts every connection open right now (both sides see the connection
    /// close, bytes still in flight are lost). New connections are accepted as
    /// before.
    pub fn cut_all(&self) {
        self.next_generation().cut.cancel();
    }

    /// Stops forwarding bytes on every connection open right now, in both
    /// directions, without closing anything: a link that silently stalls.
    /// Bytes sent meanwhile queue up (then push back on the sender, like a full
    /// TCP window) and flow again after [`resume_all`](Self::resume_all). New
    /// connections are not paused; [`cut_all`](Self::cut_all) still cuts paused
    /// ones.
    pub fn pause_all(&self) {
        let old = self.next_generation();
        old.paused.send_replace(true);
        self.shared
            .paused
            .lock()
            .expect("paused lock")
            .push(old.paused);
    }

    /// Lets every connection stalled by [`pause_all`](Self::pause_all) forward
    /// again.
    pub fn resume_all(&self) {
        for paused in self.shared.paused.lock().expect("paused lock").drain(..) {
            paused.send_replace(false);
        }
    }

    /// Starts a new generation for connections accepted from now on and
    /// returns the one that ended.
    fn next_generation(&self) -> Generation {
        let mut generation = self.shared.generation.lock().expect("generation lock");
        std::mem::replace(&mut *generation, Generation::new(&self.shared.shutdown))
    }

    /// How many proxied connections are open.
    pub fn connection_count(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

impl Drop for LinkEmulator {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}

/// Accepts clients until shutdown; each one gets its own connection task.
async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    one_way: Duration,
    shared: Arc<Shared>,
) {
    loop {
        // `accept` is cancellation-safe: a lost race drops no connection.
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (client, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                warn!(%error, "link emulator accept failed");
                continue;
            }
        };
        let (cut, paused) = {
            let generation = shared.generation.lock().expect("generation lock");
            (generation.cut.clone(), generation.paused.subscribe())
        };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let guard = ConnectionGuard(shared.clone());
        tokio::spawn(async move {
            let _guard = guard;
            debug!(%peer, %upstream, "link emulator connection");
            proxy(client, upstream, one_way, cut, paused).await;
        });
    }
}

/// Decrements the open-connection count when a connection task ends.
struct ConnectionGuard(Arc<Shared>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Proxies one client until both directions end or `cut` fires; forwards
/// nothing while `paused` is `true`.
async fn proxy(
    client: TcpStream,
    upstream: SocketAddr,
    one_way: Duration,
    cut: CancellationToken,
    paused: watch::Receiver<bool>,
) {
    let server = tokio::select! {
        _ = cut.cancelled() => return,
        server = TcpStream::connect(upstream) => match server {
            Ok(server) => server,
            Err(error) => {
                debug!(%upstream, %error, "link emulator upstream connect failed");
                return;
            }
        },
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    // A peer's reset ends the whole connection once it crossed the link (see
    // `pipe::run`); a cut aborts it at once, like a broken link.
    let failed = cut.child_token();
    let up = pipe::run(
        client_read,
        server_write,
        one_way,
        paused.clone(),
        failed.clone(),
    );
    let down = pipe::run(server_read, client_write, one_way, paused, failed.clone());
    tokio::select! {
        _ = failed.cancelled() => {}
        _ = async { tokio::join!(up, down) } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::time::Instant;

    /// An upstream that echoes every byte back.
    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = socket.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn round_trip_takes_at_least_twice_the_latency() {
        let latency = Duration::from_millis(40);
        let link = LinkEmulator::start(echo_server().await, latency)
            .await
            .unwrap();
        let mut stream = TcpStream::connect(link.addr()).await.unwrap();
        let started = Instant::now();
        stream.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        assert!(started.elapsed() >= 2 * latency, "{:?}", started.elapsed());
        assert_eq!(link.connection_count(), 1);
    }

    #[tokio::test]
    async fn bulk_data_arrives_intact_and_in_order() {
        let link = LinkEmulator::start(echo_server().await, Duration::from_millis(5))
            .await
            .unwrap();
        let stream = TcpStream::connect(link.addr()).await.unwrap();
        let (mut read, mut write) = stream.into_split();
        let data: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
        let expected = data.clone();
        let writer = tokio::spawn(async move {
            for chunk in data.chunks(7_919) {
                write.write_all(chunk).await.unwrap();
            }
            write.shutdown().await.unwrap();
        });
        let mut received = Vec::new();
        read.read_to_end(&mut received).await.unwrap();
        writer.await.unwrap();
        assert_eq!(received.len(), expected.len());
        assert!(received == expected, "bytes reordered or corrupted");
    }

    #[tokio::test]
    async fn cut_all_closes_open_connections_and_accepts_new_ones() {
        let link = LinkEmulator::start(echo_server().await, Duration::from_millis(1))
            .await
            .unwrap();
        let mut stream = TcpStream::connect(link.addr()).await.unwrap();
        stream.write_all(b"x").await.unwrap();
        let mut buf = [0u8; 1];
        stream.read_exact(&mut buf).await.unwrap();
        link.cut_all();
        let mut rest = Vec::new();
        // The cut closes the socket: reading ends (EOF or reset) instead of hanging.
        let _ = stream.read_to_end(&mut rest).await;
        assert!(rest.is_empty());

        let mut again = TcpStream::connect(link.addr()).await.unwrap();
        again.write_all(b"y").await.unwrap();
        again.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"y");
    }

    #[tokio::test]
    async fn bytes_sent_before_a_reset_still_arrive() {
        // An upstream that writes 100 kB and then resets the connection, as a
        // process killed with unread input does.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut hello = [0u8; 5];
            socket.read_exact(&mut hello).await.unwrap();
            socket.write_all(&[7u8; 100_000]).await.unwrap();
            // Unread input, then a zero linger: the close is a reset.
            tokio::time::sleep(Duration::from_millis(20)).await;
            socket.set_zero_linger().unwrap();
            drop(socket);
        });
        let link = LinkEmulator::start(upstream, Duration::from_millis(100))
            .await
            .unwrap();
        let mut stream = TcpStream::connect(link.addr()).await.unwrap();
        stream.write_all(b"hello").await.unwrap();
        stream.write_all(b"unread by the upstream").await.unwrap();
        let mut received = Vec::new();
        let ended = stream.read_to_end(&mut received).await;
        assert_eq!(
            received.len(),
            100_000,
            "bytes in flight were dropped ({ended:?})"
        );
    }

    #[tokio::test]
    async fn pause_all_stalls_open_connections_until_resume_all() {
        let link = LinkEmulator::start(echo_server().await, Duration::from_millis(1))
            .await
            .unwrap();
        let mut stream = TcpStream::connect(link.addr()).await.unwrap();
        let mut buf = [0u8; 4];
        // A round trip first: the emulator has accepted the connection.
        stream.write_all(b"open").await.unwrap();
        stream.read_exact(&mut buf).await.unwrap();
        link.pause_all();
        stream.write_all(b"held").await.unwrap();

        // Connections opened after the pause are not stalled.
        let mut fresh = TcpStream::connect(link.addr()).await.unwrap();
        fresh.write_all(b"new!").await.unwrap();
        fresh.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"new!");
        // That round trip started after "held" was written and took as long
        // as the echo of "held" would have: had it been forwarded, it would be
        // readable by now.
        let mut probe = [0u8; 4];
        let stalled = stream.try_read(&mut probe);
        assert!(
            matches!(&stalled, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "a paused link forwarded bytes: {stalled:?}"
        );

        link.resume_all();
        stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"held", "held bytes flow after resume");
        assert_eq!(link.connection_count(), 2);
    }
}
