//! What the benchmark runs: the plans, one running scenario, the three
//! kinds of measurement (throughput, push, CPU cost), and how the rounds of
//! a repeated run combine.

pub mod cpu_cost;
pub mod load;
pub mod push;
pub mod rounds;
pub mod runner;
pub mod scenario;
