//! What produces and consumes a run's jobs: direct workers, worker-SDK
//! workers through the gateway, the producers, and the handler body all of
//! them run.

pub mod direct;
pub mod gateway_path;
pub mod probe;
pub mod producer;
