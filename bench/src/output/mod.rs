//! What a run prints: result rows, the goals evaluated against them, and
//! progress.

pub mod goals;
pub mod progress;
pub mod report;
