//! The Faktory Gateway wire contract: `proto/faktory_gateway/v1/gateway.proto`
//! (package `faktory_gateway.v1`, services `Gateway` and `Admin`) and the Rust code tonic
//! and prost generate from it at build time.
//!
//! # Layout
//! - [`v1`]: messages, the `Gateway` client (`v1::gateway_client`) and server
//!   (`v1::gateway_server`), and the operators' `Admin` client
//!   (`v1::admin_client`) and server (`v1::admin_server`), for the
//!   `faktory_gateway.v1` package.
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors, for gRPC reflection.
//!
//! # Example
//! ```
//! use faktory_gateway_proto::v1::{Job, PushRequest};
//!
//! let request = PushRequest {
//!     jobs: vec![Job {
//!         jobtype: "add".into(),
//!         args: br#"[{"a": 1, "b": 2}]"#.to_vec().into(),
//!         ..Job::default()
//!     }],
//! };
//! assert_eq!(request.jobs.len(), 1);
//! ```

/// Generated code for the `faktory_gateway.v1` package.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("faktory_gateway.v1");
}

/// The encoded `FileDescriptorSet` of the contract, for
/// `tonic_reflection::server::Builder::register_encoded_file_descriptor_set`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/faktory_gateway_descriptor.bin"));
