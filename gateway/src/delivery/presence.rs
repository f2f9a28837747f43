//! Faktory presence: the gateway is one Faktory worker process. A dedicated
//! connection says HELLO with the gateway's wid and BEATs every 15 s; when
//! Faktory answers `quiet` the gateway stops fetching and drains its workers,
//! and on `terminate` it also releases every job it holds once the drain
//! grace has passed.

use std::sync::Arc;
use std::time::Duration;

use faktory_gateway_proto::v1::Drain;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Shared;
use super::lease::unix_now_ms;
use super::link::Link;
use crate::faktory::{BeatState, Identity};
use crate::metrics::FaktoryOp;

/// How often the gateway BEATs (Faktory's own workers use 15 s; 60 s without
/// one and Faktory drops the process).
pub(crate) const BEAT_INTERVAL: Duration = Duration::from_secs(15);

/// Runs the presence connection until `stop` fires, then ENDs it.
pub(crate) async fn run(shared: Arc<Shared>, identity: Identity, stop: CancellationToken) {
    let wid = identity.wid.clone();
    let mut link = Link::new(Some(identity));
    let mut state = BeatState::Ok;
    while !stop.is_cancelled() {
        let conn = match link.get(&shared.faktory, &stop).await {
            Ok(conn) => conn,
            Err(e) => {
                if !stop.is_cancelled() {
                    warn!(error = %e, "cannot register the gateway with faktory; presence stopped");
                }
                return;
            }
        };
        let started = Instant::now();
        match conn.beat(&wid).await {
            Ok(now) => {
                link.succeeded();
                shared
                    .metrics
                    .observe_faktory(FaktoryOp::Beat, started.elapsed());
                if now != state {
                    state = now;
                    react(&shared, now);
                }
                // Both arms are cancellation-safe.
                tokio::select! {
                    () = tokio::time::sleep(BEAT_INTERVAL) => {}
                    () = stop.cancelled() => {}
                }
            }
            Err(e) => {
                warn!(error = %e, "beat failed; reconnecting");
                link.failed(&e, &stop).await;
            }
        }
    }
    link.end().await;
}

/// Passes Faktory's quiet/terminate on to the workers.
fn react(shared: &Arc<Shared>, state: BeatState) {
    let grace = shared.settings.shutdown_grace;
    let reason = match state {
        BeatState::Ok => return,
        BeatState::Quiet => "faktory_quiet",
        BeatState::Terminate => "faktory_terminate",
    };
    info!(
        reason,
        "faktory asked the gateway to stop; draining workers"
    );
    {
        let mut d = shared.dispatcher.lock();
        d.stop_fetching();
        d.drain_sessions(
            Drain {
                deadline_unix_ms: unix_now_ms()
                    .saturating_add(i64::try_from(grace.as_millis()).unwrap_or(i64::MAX)),
                reason: reason.to_owned(),
            },
            false,
        );
    }
    if state == BeatState::Terminate {
        // Jobs waiting in the gateway go back now; jobs at workers once the
        // workers had the drain grace to finish them.
        let shared = shared.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            shared.dispatcher.lock().release_everything();
            shared.sessions_stop.cancel();
        });
    }
}
