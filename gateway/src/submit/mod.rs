//! The submit path: `Push` calls validated, coalesced and sent to Faktory.
//!
//! - [`validate`]: per-job rules and Faktory JSON encoding.

pub mod validate;
