//! Helpers shared by the SDK's integration tests.
#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod mock_gateway;
pub mod stack;

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
