//! Shared state and settings for the delivery path's unit tests.

use super::*;

/// Shared state for session tests (no Faktory behind it).
pub(crate) fn shared() -> Arc<Shared> {
    Shared::new(
        settings(),
        Endpoint {
            url: crate::faktory::FaktoryUrl::parse("tcp://127.0.0.1:1").expect("valid url"),
            options: crate::faktory::ConnectOptions::default(),
        },
        Metrics::new(),
    )
}

/// Test settings: short heartbeats, default-ish graces.
pub(crate) fn settings() -> Settings {
    Settings {
        wid: "test-gw".into(),
        hello_timeout: Duration::from_secs(2),
        heartbeat_interval: Duration::from_secs(1),
        heartbeat_timeout: Duration::from_secs(3),
        max_window: 100,
        max_inbound_bytes: 4 << 20,
        shutdown_grace: Duration::from_secs(5),
        beat_interval: Duration::from_secs(15),
        rules: Rules {
            redelivery_grace: Duration::from_secs(5),
            unknown_jobtype_grace: Duration::from_secs(30),
            lease_margin: Duration::from_secs(10),
            reconnect_grace: Duration::from_secs(2),
            max_window: 100,
            max_fetch_depth: TEST_FETCH_DEPTH,
            max_fetches_in_flight: 1024,
            max_settle_backlog: 500,
        },
    }
}
