//! Mbuf ownership. An [`Mbuf`] owns one packet buffer: it is freed exactly once, when it is
//! dropped, unless ownership is handed back to DPDK (TX, a ring) with [`Mbuf::into_raw`]. The
//! type system therefore rules out both the leak and the double free.

use std::mem::MaybeUninit;
use std::ptr::NonNull;

/// Packets moved per RX/TX call.
pub const BURST_SIZE: usize = 32;

/// One owned packet buffer (single segment on the rvs fast path).
#[repr(transparent)]
#[derive(Debug)]
pub struct Mbuf(NonNull<dpdk_sys::rte_mbuf>);

// SAFETY: an mbuf is plain memory in a shared mempool; the owner may hand it to another thread
// (rings do exactly that) and freeing it from any registered or unregistered thread is allowed.
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `raw` must be a valid mbuf that nothing else owns or will free.
    pub unsafe fn from_raw(raw: NonNull<dpdk_sys::rte_mbuf>) -> Mbuf {
        Mbuf(raw)
    }

    /// Gives up ownership; the caller must hand the pointer to DPDK or to `from_raw`.
    pub fn into_raw(self) -> NonNull<dpdk_sys::rte_mbuf> {
        let raw = self.0;
        std::mem::forget(self);
        raw
    }

    fn header(&self) -> &dpdk_sys::rte_mbuf {
        // SAFETY: we own a valid mbuf for our whole lifetime.
        unsafe { self.0.as_ref() }
    }

    /// Bytes of the first segment.
    #[inline]
    pub fn data(&self) -> &[u8] {
        let m = self.header();
        // SAFETY: buf_addr + data_off .. + data_len lies within the mbuf's buffer, which we
        // own; the slice borrows self so the buffer cannot be freed meanwhile.
        unsafe {
            let start = (m.buf_addr as *const u8).add(usize::from(m.data_off));
            std::slice::from_raw_parts(start, usize::from(m.data_len))
        }
    }

    /// Mutable bytes of the first segment. rvs owns every mbuf it receives outright
    /// (refcount 1, direct), so writing in place is sound.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let m = self.header();
        debug_assert_eq!(m.refcnt, 1, "in-place rewrite of a shared mbuf");
        let (addr, off, len) = (m.buf_addr as *mut u8, m.data_off, m.data_len);
        // SAFETY: as `data`, and the exclusive borrow of self makes the slice unique.
        unsafe { std::slice::from_raw_parts_mut(addr.add(usize::from(off)), usize::from(len)) }
    }

    /// Total packet length over all segments.
    pub fn pkt_len(&self) -> u32 {
        self.header().pkt_len
    }

    pub fn segments(&self) -> u16 {
        self.header().nb_segs
    }

    /// Port the packet was received on.
    pub fn port(&self) -> u16 {
        self.header().port
    }

    /// Records the port the packet was received on (not every driver does: `net_ring` leaves
    /// the field as the mbuf was allocated), so that whoever it is handed to knows.
    pub fn set_port(&mut self, port: u16) {
        // SAFETY: we own the mbuf exclusively (&mut self); `port` is a plain field.
        unsafe { self.0.as_mut().port = port };
    }

    /// Grows the packet by `len` bytes at its end; `None` when the tailroom is short.
    pub fn append(&mut self, len: u16) -> Option<&mut [u8]> {
        // SAFETY: we own the mbuf; rte_pktmbuf_append checks the tailroom itself.
        let ptr = unsafe { dpdk_sys::rvs_pktmbuf_append(self.0.as_ptr(), len) };
        let ptr = NonNull::new(ptr as *mut u8)?;
        // SAFETY: DPDK just reserved `len` bytes at ptr inside our buffer.
        Some(unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr(), usize::from(len)) })
    }

    /// Shrinks the packet by `len` bytes from its end; `false` if it is shorter.
    pub fn trim(&mut self, len: u16) -> bool {
        // SAFETY: we own the mbuf; rte_pktmbuf_trim checks the length itself.
        unsafe { dpdk_sys::rvs_pktmbuf_trim(self.0.as_ptr(), len) == 0 }
    }
}

impl dataplane::frame::Frame for Mbuf {
    #[inline]
    fn bytes(&self) -> &[u8] {
        self.data()
    }

    /// The driver's verdict on the IPv4 header checksum (`RTE_MBUF_F_RX_IP_CKSUM_*`): GOOD
    /// and BAD are trusted; UNKNOWN and NONE (not checked, or the header not seen) leave it to
    /// the engine.
    #[inline]
    fn rx_ip_checksum(&self) -> Option<bool> {
        let flags = self.header().ol_flags & u64::from(dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_MASK);
        if flags == u64::from(dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_GOOD) {
            Some(true)
        } else if flags == u64::from(dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_BAD) {
            Some(false)
        } else {
            None
        }
    }

    #[inline]
    fn bytes_mut(&mut self) -> &mut [u8] {
        self.data_mut()
    }

    /// Single-segment mbufs only (rvs refuses chains before the engine sees them).
    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        // SAFETY: we own the mbuf exclusively (&mut self); only its length fields change, and
        // only within the buffer (n <= data_off).
        let m = unsafe { self.0.as_mut() };
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        if n > m.data_off {
            return false;
        }
        m.data_off -= n;
        m.data_len += n;
        m.pkt_len += u32::from(n);
        true
    }

    #[inline]
    fn adj(&mut self, n: usize) -> bool {
        // SAFETY: as `prepend`; n <= data_len keeps data_off inside the buffer.
        let m = unsafe { self.0.as_mut() };
        let Ok(n) = u16::try_from(n) else {
            return false;
        };
        if n > m.data_len {
            return false;
        }
        m.data_off += n;
        m.data_len -= n;
        m.pkt_len -= u32::from(n);
        true
    }

    #[inline]
    fn set_len(&mut self, len: usize) -> bool {
        // SAFETY: as `prepend`; data_off + len <= buf_len keeps the data inside the buffer.
        let m = unsafe { self.0.as_mut() };
        let Ok(len) = u16::try_from(len) else {
            return false;
        };
        if usize::from(m.data_off) + usize::from(len) > usize::from(m.buf_len) {
            return false;
        }
        m.data_len = len;
        m.pkt_len = u32::from(len);
        true
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf and this is the only place it is freed.
        unsafe { dpdk_sys::rvs_pktmbuf_free(self.0.as_ptr()) };
    }
}

/// Up to [`BURST_SIZE`] owned mbufs in the layout DPDK's burst calls take (`rte_mbuf **`).
/// What is left in a burst when it is dropped is freed.
pub struct Burst {
    len: usize,
    slots: [MaybeUninit<Mbuf>; BURST_SIZE],
}

impl Default for Burst {
    fn default() -> Self {
        Burst {
            len: 0,
            slots: [const { MaybeUninit::uninit() }; BURST_SIZE],
        }
    }
}

impl Burst {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_full(&self) -> bool {
        self.len == BURST_SIZE
    }

    /// Adds an mbuf; gives it back when the burst is full.
    #[inline]
    pub fn push(&mut self, mbuf: Mbuf) -> Result<(), Mbuf> {
        if self.len == BURST_SIZE {
            return Err(mbuf);
        }
        self.slots[self.len].write(mbuf);
        self.len += 1;
        Ok(())
    }

    /// The mbufs in the burst, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Mbuf> {
        // SAFETY: slots [0, len) are initialised.
        self.slots[..self.len]
            .iter()
            .map(|slot| unsafe { slot.assume_init_ref() })
    }

    /// The mbufs in the burst, in order, to change in place.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Mbuf> {
        // SAFETY: slots [0, len) are initialised.
        self.slots[..self.len]
            .iter_mut()
            .map(|slot| unsafe { slot.assume_init_mut() })
    }

    /// Takes the mbufs out in order, leaving the burst empty.
    #[inline]
    pub fn drain(&mut self) -> Drain<'_> {
        let len = std::mem::replace(&mut self.len, 0);
        Drain {
            burst: self,
            next: 0,
            len,
        }
    }

    /// Frees every mbuf in the burst.
    pub fn clear(&mut self) {
        drop(self.drain());
    }

    /// The raw slot array for an RX call to fill; `set_len` must follow.
    pub(crate) fn spare_raw(&mut self) -> (*mut *mut dpdk_sys::rte_mbuf, usize) {
        debug_assert_eq!(self.len, 0);
        (self.slots.as_mut_ptr().cast(), BURST_SIZE)
    }

    /// # Safety
    /// The first `len` slots must hold owned, valid mbufs (just written by DPDK).
    pub(crate) unsafe fn set_len(&mut self, len: usize) {
        debug_assert!(len <= BURST_SIZE);
        self.len = len;
    }

    /// The filled slots for a TX call; `consume_front` must follow with what DPDK took.
    pub(crate) fn filled_raw(&mut self) -> (*mut *mut dpdk_sys::rte_mbuf, usize) {
        (self.slots.as_mut_ptr().cast(), self.len)
    }

    /// Forgets the first `taken` mbufs (DPDK owns them now) and moves the rest to the front.
    ///
    /// # Safety
    /// DPDK must have taken ownership of exactly the first `taken` mbufs.
    pub(crate) unsafe fn consume_front(&mut self, taken: usize) {
        debug_assert!(taken <= self.len);
        let rest = self.len - taken;
        if rest > 0 && taken > 0 {
            // SAFETY: both ranges lie within the array; `copy` handles the overlap; the
            // moved-from slots are treated as uninitialised afterwards.
            std::ptr::copy(
                self.slots.as_ptr().add(taken),
                self.slots.as_mut_ptr(),
                rest,
            );
        }
        self.len = rest;
    }
}

impl Drop for Burst {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Iterator over the mbufs taken out of a [`Burst`]; frees any not consumed.
pub struct Drain<'a> {
    burst: &'a mut Burst,
    next: usize,
    len: usize,
}

impl Iterator for Drain<'_> {
    type Item = Mbuf;

    #[inline]
    fn next(&mut self) -> Option<Mbuf> {
        if self.next == self.len {
            return None;
        }
        // SAFETY: slots [next, len) were initialised and not yet read; each is read once.
        let mbuf = unsafe { self.burst.slots[self.next].assume_init_read() };
        self.next += 1;
        Some(mbuf)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.len - self.next;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Drain<'_> {}

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        for mbuf in self.by_ref() {
            drop(mbuf);
        }
    }
}
