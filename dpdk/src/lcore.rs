//! Pinning a worker thread to its core and registering it with EAL, so that it has an lcore
//! id and therefore its own per-lcore mempool cache (no shared ring per mbuf alloc/free).

use super::DpdkError;

/// Held by a worker thread for as long as it uses DPDK; unregisters on drop.
#[derive(Debug)]
pub struct LcoreRegistration {
    lcore_id: u32,
    // Registration is per thread: the guard must stay on the thread that made it.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl LcoreRegistration {
    /// Pins the calling thread to `core` and registers it with EAL.
    pub fn pin_and_register(core: usize) -> Result<LcoreRegistration, DpdkError> {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
            return Err(DpdkError::new(format!("pin thread to core {core}"), 22));
        }
        // SAFETY: called on the current thread after EAL init; registers this thread only.
        let ret = unsafe { dpdk_sys::rte_thread_register() };
        if ret < 0 {
            return Err(DpdkError::from_rte_errno(format!(
                "rte_thread_register (worker on core {core})"
            )));
        }
        // SAFETY: reads this thread's lcore id, set by the registration above.
        let lcore_id = unsafe { dpdk_sys::rvs_lcore_id() };
        Ok(LcoreRegistration {
            lcore_id,
            _not_send: std::marker::PhantomData,
        })
    }

    pub fn lcore_id(&self) -> u32 {
        self.lcore_id
    }
}

impl Drop for LcoreRegistration {
    fn drop(&mut self) {
        // SAFETY: this thread registered itself in `pin_and_register` (the guard is !Send).
        unsafe { dpdk_sys::rte_thread_unregister() };
    }
}
