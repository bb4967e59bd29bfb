//! rvs-gen's sans-IO core: packets ([`packet`]), what to send next and the accounting of
//! every packet ([`traffic`]), and the one-second samples and their percentiles ([`samples`]).
//! The DPDK loop around them is `src/bin/rvs-gen.rs`.

pub mod packet;
pub mod samples;
pub mod traffic;
