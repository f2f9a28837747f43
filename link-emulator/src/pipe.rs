//! One direction of one proxied connection: read, stamp, hold for the
//! one-way latency, write.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Largest chunk read at once.
const CHUNK: usize = 64 * 1024;
/// Chunks in flight per direction. Bounds memory; the sender waits when full,
/// which pushes back on the reading side like a full TCP window would.
const IN_FLIGHT: usize = 256;

/// Copies `from` to `to`, delivering every chunk `one_way` after it was read,
/// and holding it while `paused` is `true`. Ends after forwarding EOF (a write
/// shutdown) or when `failed` fires; cancels `failed` itself if either side
/// errors.
pub(crate) async fn run<R, W>(
    from: R,
    to: W,
    one_way: Duration,
    paused: watch::Receiver<bool>,
    failed: CancellationToken,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    let reader = read_side(from, tx, failed.clone());
    let writer = write_side(rx, to, one_way, paused, failed.clone());
    tokio::select! {
        _ = failed.cancelled() => {}
        _ = async { tokio::join!(reader, writer) } => {}
    }
}

async fn read_side<R: AsyncRead + Unpin>(
    mut from: R,
    tx: mpsc::Sender<(Instant, Bytes)>,
    failed: CancellationToken,
) {
    loop {
        let mut buf = BytesMut::with_capacity(CHUNK);
        match from.read_buf(&mut buf).await {
            Ok(0) => {
                // EOF travels as an empty chunk so it is delayed like data.
                let _ = tx.send((Instant::now(), Bytes::new())).await;
                return;
            }
            Ok(_) => {
                if tx.send((Instant::now(), buf.freeze())).await.is_err() {
                    return;
                }
            }
            Err(_) => {
                failed.cancel();
                return;
            }
        }
    }
}

async fn write_side<W: AsyncWrite + Unpin>(
    mut rx: mpsc::Receiver<(Instant, Bytes)>,
    mut to: W,
    one_way: Duration,
    mut paused: watch::Receiver<bool>,
    failed: CancellationToken,
) {
    while let Some((read_at, chunk)) = rx.recv().await {
        tokio::time::sleep_until(read_at + one_way).await;
        // The sender lives in the emulator; if it is gone, so is the link.
        if paused.wait_for(|paused| !paused).await.is_err() {
            return;
        }
        if chunk.is_empty() {
            break;
        }
        if to.write_all(&chunk).await.is_err() {
            failed.cancel();
            return;
        }
    }
    let _ = to.shutdown().await;
}
