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
/// How long after a write error, beyond a round trip, the connection is
/// aborted if the other direction has not ended it.
const WRITE_ERROR_LIMIT: Duration = Duration::from_secs(1);

/// What a reader queues for its writer.
enum Segment {
    /// Bytes to deliver.
    Data(Bytes),
    /// The peer shut its writing down: shut ours down.
    Eof,
    /// Reading failed: end the connection.
    Reset,
}

/// Copies `from` to `to`, delivering every chunk `one_way` after it was read,
/// and holding it while `paused` is `true`. Ends after forwarding EOF (a write
/// shutdown) or when `failed` fires. A read error (the peer reset its
/// connection, or died) travels the link like a packet: it fires `failed`
/// once every byte read before it was delivered, as a real network delivers
/// what a peer sent before its reset (and Linux lets a reader take those
/// bytes before it reports the reset). A write error stops this direction;
/// the same socket's read side then reports the error the other way, and in
/// case it never does, `failed` fires after [`WRITE_ERROR_LIMIT`] plus twice
/// the latency.
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
    let reader = read_side(from, tx);
    let writer = write_side(rx, to, one_way, paused, failed.clone());
    tokio::select! {
        _ = failed.cancelled() => {}
        _ = async { tokio::join!(reader, writer) } => {}
    }
}

async fn read_side<R: AsyncRead + Unpin>(mut from: R, tx: mpsc::Sender<(Instant, Segment)>) {
    loop {
        let mut buf = BytesMut::with_capacity(CHUNK);
        // EOF and errors travel as segments so they are delayed like data.
        let (segment, last) = match from.read_buf(&mut buf).await {
            Ok(0) => (Segment::Eof, true),
            Ok(_) => (Segment::Data(buf.freeze()), false),
            Err(_) => (Segment::Reset, true),
        };
        if tx.send((Instant::now(), segment)).await.is_err() || last {
            return;
        }
    }
}

async fn write_side<W: AsyncWrite + Unpin>(
    mut rx: mpsc::Receiver<(Instant, Segment)>,
    mut to: W,
    one_way: Duration,
    mut paused: watch::Receiver<bool>,
    failed: CancellationToken,
) {
    while let Some((read_at, segment)) = rx.recv().await {
        tokio::time::sleep_until(read_at + one_way).await;
        // The sender lives in the emulator; if it is gone, so is the link.
        if paused.wait_for(|paused| !paused).await.is_err() {
            return;
        }
        let chunk = match segment {
            Segment::Data(chunk) => chunk,
            Segment::Eof => break,
            Segment::Reset => {
                failed.cancel();
                return;
            }
        };
        if to.write_all(&chunk).await.is_err() {
            let limit = WRITE_ERROR_LIMIT + 2 * one_way;
            tokio::select! {
                () = failed.cancelled() => {}
                () = tokio::time::sleep(limit) => failed.cancel(),
            }
            return;
        }
    }
    let _ = to.shutdown().await;
}
