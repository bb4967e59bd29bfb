//! A DPDK ring of mbufs (single producer, single consumer): the slow-path and redirect
//! channels between threads, and the test harness's way into a `net_ring` port.

use std::ffi::CString;
use std::ptr::NonNull;

use super::{Burst, DpdkError, Mbuf};

#[derive(Debug)]
pub struct MbufRing {
    raw: NonNull<dpdk_sys::rte_ring>,
    /// Mbufs it holds at most (one slot less than its size, as DPDK's rings do).
    capacity: usize,
}

// SAFETY: an SP/SC ring may be used from two threads, one enqueuing and one dequeuing; the
// methods take &self, so callers keep to one producer and one consumer (documented).
unsafe impl Send for MbufRing {}
// SAFETY: see above.
unsafe impl Sync for MbufRing {}

impl MbufRing {
    /// A ring of `count` slots (a power of two), single producer and single consumer.
    pub fn new(name: &str, count: u32) -> Result<MbufRing, DpdkError> {
        let cname = CString::new(name).map_err(|_| DpdkError::new("ring name has a NUL", 22))?;
        let flags = dpdk_sys::RING_F_SP_ENQ | dpdk_sys::RING_F_SC_DEQ;
        // SAFETY: valid C string; EAL is initialised.
        let raw = unsafe {
            dpdk_sys::rte_ring_create(cname.as_ptr(), count, dpdk_sys::SOCKET_ID_ANY, flags)
        };
        NonNull::new(raw)
            .map(|raw| MbufRing {
                raw,
                capacity: count as usize - 1,
            })
            .ok_or_else(|| DpdkError::from_rte_errno(format!("rte_ring_create({name}, {count})")))
    }

    pub fn as_ptr(&self) -> *mut dpdk_sys::rte_ring {
        self.raw.as_ptr()
    }

    /// Enqueues one mbuf; gives it back when the ring is full.
    pub fn enqueue(&self, mbuf: Mbuf) -> Result<(), Mbuf> {
        let raw = mbuf.into_raw();
        let objs = [raw.as_ptr().cast::<std::ffi::c_void>()];
        // SAFETY: one valid object pointer; the ring takes it or not.
        let n = unsafe { dpdk_sys::rvs_ring_enqueue_burst(self.raw.as_ptr(), objs.as_ptr(), 1) };
        if n == 1 {
            Ok(())
        } else {
            // SAFETY: the ring refused it, so we still own it.
            Err(unsafe { Mbuf::from_raw(raw) })
        }
    }

    /// Enqueues as much of `burst` as the ring has room for; what it refused stays in
    /// `burst`. Returns how many went in.
    pub fn enqueue_burst(&self, burst: &mut Burst) -> usize {
        let (slots, len) = burst.filled_raw();
        if len == 0 {
            return 0;
        }
        // SAFETY: `slots` holds `len` owned mbuf pointers; the ring takes the first `n`.
        let n = unsafe {
            dpdk_sys::rvs_ring_enqueue_burst(self.raw.as_ptr(), slots.cast(), len as u32)
        } as usize;
        // SAFETY: the ring owns exactly the first `n` now.
        unsafe { burst.consume_front(n) };
        n
    }

    /// Dequeues up to a burst into an empty `burst`.
    pub fn dequeue_burst(&self, burst: &mut Burst) -> usize {
        let (slots, cap) = burst.spare_raw();
        // SAFETY: `slots` has room for `cap` pointers; every object in this ring is an owned
        // mbuf (only `enqueue` puts objects in).
        let n = unsafe {
            dpdk_sys::rvs_ring_dequeue_burst(self.raw.as_ptr(), slots.cast(), cap as u32)
        };
        // SAFETY: the ring wrote `n` owned mbufs.
        unsafe { burst.set_len(n as usize) };
        n as usize
    }

    pub fn len(&self) -> usize {
        // SAFETY: reading the ring's indices.
        unsafe { dpdk_sys::rvs_ring_count(self.raw.as_ptr()) as usize }
    }

    /// Mbufs it holds at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for MbufRing {
    fn drop(&mut self) {
        let mut burst = Burst::new();
        while self.dequeue_burst(&mut burst) > 0 {
            burst.clear();
        }
        // SAFETY: the ring is empty and no one else holds it (we own the handle).
        unsafe { dpdk_sys::rte_ring_free(self.raw.as_ptr()) };
    }
}
