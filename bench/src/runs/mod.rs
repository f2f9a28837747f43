//! What the benchmark runs: the plans, one running scenario, and the three
//! kinds of measurement (throughput, push, CPU cost).

pub mod cpu_cost;
pub mod load;
pub mod push;
pub mod runner;
pub mod scenario;
