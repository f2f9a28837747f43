//! Faktory presence: the gateway is one Faktory worker process. A dedicated
//! connection says HELLO with the gateway's wid and BEATs every
//! `GATEWAY_BEAT_INTERVAL_MS` (default 15 s, as Faktory's own workers); when
//! Faktory answers `quiet` the gateway stops fetching and drains its workers,
//! and on `terminate` it also releases every job it holds once the drain
//! grace has passed.

use std::sync::Arc;

use super::dispatcher::drain_notice;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Shared;
use super::faktory_link::FaktoryLink;
use crate::faktory::{BeatState, Identity};
use crate::metrics::FaktoryOp;

/// Runs the presence connection until `stop` fires, then ENDs it.
pub(crate) async fn run(shared: Arc<Shared>, identity: Identity, stop: CancellationToken) {
    let wid = identity.wid.clone();
    let mut link = FaktoryLink::new(Some(identity));
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
                    () = tokio::time::sleep(shared.settings.beat_interval) => {}
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
        d.drain_sessions(drain_notice(reason, grace), false);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::hello::SessionSpec;
    use crate::delivery::tests_support::shared as new_shared;

    fn spec() -> SessionSpec {
        SessionSpec {
            worker_id: "w".into(),
            hostname: String::new(),
            labels: Vec::new(),
            queues: vec!["q".into()],
            jobtypes: Default::default(),
            window: 5,
            max_message_bytes: 1 << 20,
            holding: Vec::new(),
        }
    }

    #[tokio::test]
    async fn quiet_stops_fetching_and_drains_workers() {
        let shared = new_shared();
        let ticket = shared.dispatcher.lock().register(spec()).unwrap();
        react(&shared, BeatState::Quiet);
        let mut d = shared.dispatcher.lock();
        assert_eq!(d.claim_fetch(), None);
        let drain = d.take_outgoing(ticket.id).drain.expect("drain notice");
        assert_eq!(drain.reason, "faktory_quiet");
        // Workers that connect later are told at once.
        let late = d.register(spec()).expect("still accepted");
        assert_eq!(
            d.take_outgoing(late.id).drain.unwrap().reason,
            "faktory_quiet"
        );
        assert!(!shared.sessions_stop.is_cancelled());
    }

    #[tokio::test(start_paused = true)]
    async fn terminate_also_releases_held_jobs_after_the_grace() {
        let shared = new_shared();
        let ticket = shared.dispatcher.lock().register(spec()).unwrap();
        {
            let mut d = shared.dispatcher.lock();
            let claim = d.claim_fetch().unwrap();
            let raw = bytes::Bytes::from_static(br#"{"jid":"j1","jobtype":"t","queue":"q"}"#);
            d.fetched(&claim, vec![raw], Instant::now(), 0);
            assert_eq!(d.take_outgoing(ticket.id).deliveries.len(), 1);
        }
        react(&shared, BeatState::Terminate);
        shared.sessions_stop.cancelled().await;
        let mut d = shared.dispatcher.lock();
        assert!(!d.sessions_busy());
        assert_eq!(d.take_settlements(10).len(), 1, "released");
    }
}
