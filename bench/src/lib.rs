//! rvs's benchmark tools: the traffic generator's sans-IO core (`gen`); the generator itself
//! (`rvs-gen`) and the instruction counter's harness (`rvs-instr`) are binaries of this crate,
//! the engine and scheduler micro-benchmarks are its criterion benches.

pub mod frames;
pub mod gen;
