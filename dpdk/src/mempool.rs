//! Packet-buffer pools (`rte_pktmbuf_pool_create`), with per-lcore caches for registered
//! threads.

use std::ffi::{CStr, CString};
use std::ptr::NonNull;

use super::{Burst, DpdkError, Mbuf};

/// A pool of packet buffers. Shared by reference between threads (DPDK's mempool is
/// multi-producer/multi-consumer); must outlive every port and mbuf that uses it.
#[derive(Debug)]
pub struct Mempool {
    raw: NonNull<dpdk_sys::rte_mempool>,
    size: u32,
}

// SAFETY: rte_mempool get/put are thread-safe (lock-free ring plus per-lcore caches); the
// handle is a plain pointer to shared memory that lives until `Drop`.
unsafe impl Send for Mempool {}
// SAFETY: as above; &Mempool only permits thread-safe operations.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// `size` mbufs of `data_room` bytes each (plus headroom), `cache` per lcore.
    pub fn new(
        name: &str,
        size: u32,
        cache: u32,
        data_room: u16,
        socket: i32,
    ) -> Result<Self, DpdkError> {
        let cname = CString::new(name).map_err(|_| DpdkError::new("mempool name has a NUL", 22))?;
        // SAFETY: cname is a valid C string for the call; EAL is initialised (callers hold Eal).
        let raw = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(cname.as_ptr(), size, cache, 0, data_room, socket)
        };
        NonNull::new(raw)
            .map(|raw| Mempool { raw, size })
            .ok_or_else(|| {
                DpdkError::from_rte_errno(format!(
                    "rte_pktmbuf_pool_create({name}, {size} mbufs of {data_room} bytes)"
                ))
            })
    }

    pub fn as_ptr(&self) -> *mut dpdk_sys::rte_mempool {
        self.raw.as_ptr()
    }

    pub fn name(&self) -> String {
        // SAFETY: the pool is alive; `name` is a NUL-terminated array inside it.
        unsafe { CStr::from_ptr(self.raw.as_ref().name.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    }

    pub fn size(&self) -> u32 {
        self.size
    }

    /// Mbufs free in the pool, including those in per-lcore caches.
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is alive; the count is a read of shared counters.
        unsafe { dpdk_sys::rte_mempool_avail_count(self.raw.as_ptr()) }
    }

    /// Mbufs handed out and not yet returned (held by NIC rings, workers or the application).
    pub fn in_use(&self) -> u32 {
        // SAFETY: as `available`.
        unsafe { dpdk_sys::rte_mempool_in_use_count(self.raw.as_ptr()) }
    }

    /// One empty mbuf, or `None` when the pool is exhausted.
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is alive; a non-null result is a fresh mbuf that we now own.
        let raw = unsafe { dpdk_sys::rvs_pktmbuf_alloc(self.raw.as_ptr()) };
        // SAFETY: raw is either null or an mbuf owned by no one else.
        NonNull::new(raw).map(|raw| unsafe { Mbuf::from_raw(raw) })
    }

    /// Fills the empty `burst` with `n` (at most a burst) fresh mbufs, all or none: one call
    /// into the pool instead of `n` (a generator's send path). `false` when the pool is short.
    pub fn alloc_bulk(&self, burst: &mut Burst, n: usize) -> bool {
        assert!(burst.is_empty(), "alloc_bulk fills an empty burst");
        let (slots, room) = burst.spare_raw();
        let n = n.min(room);
        // SAFETY: the pool is alive; `slots` has room for `room >= n` pointers, which the call
        // fills with mbufs we then own (or leaves untouched on failure).
        let ret = unsafe { dpdk_sys::rvs_pktmbuf_alloc_bulk(self.raw.as_ptr(), slots, n as u32) };
        if ret != 0 {
            return false;
        }
        // SAFETY: the first n slots now hold owned, valid mbufs.
        unsafe { burst.set_len(n) };
        true
    }

    /// A new mbuf holding a copy of `bytes` (tests, the control plane; not the fast path).
    pub fn alloc_with(&self, bytes: &[u8]) -> Option<Mbuf> {
        let mut mbuf = self.alloc()?;
        let len = u16::try_from(bytes.len()).ok()?;
        mbuf.append(len)?.copy_from_slice(bytes);
        Some(mbuf)
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // Freeing a pool whose mbufs are still out (in a ring, a queue, a forgotten Mbuf)
        // would turn them into dangling pointers: leak it instead, rvs is exiting anyway.
        if self.in_use() != 0 {
            return;
        }
        // SAFETY: no mbuf of this pool is outstanding, and ports using it are closed first.
        unsafe { dpdk_sys::rte_mempool_free(self.raw.as_ptr()) };
    }
}
