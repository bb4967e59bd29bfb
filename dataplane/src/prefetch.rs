//! The one CPU hint the engine gives: start loading a cache line now, use it later. The only
//! `unsafe` in this crate (the intrinsic is an `unsafe fn`); the engine is otherwise plain
//! Rust over byte slices, with no DPDK underneath.
#![allow(unsafe_code)]

/// Asks the CPU to start loading `value`'s cache line (what DPDK's `rte_prefetch0` does), so
/// that a later access does not wait for memory: the engine calls it for a whole burst's
/// connections before it processes the first packet. A hint only: no effect on what the
/// program computes.
#[inline(always)]
pub fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 belongs to SSE, which every x86_64 CPU has; it never faults and
    // changes no architectural state, and `value` is a valid reference in any case.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            (value as *const T).cast(),
        )
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}
