//! A packet buffer the engine may grow or shrink at either end: an mbuf on the fast path, a
//! plain vector with headroom in tests. Growing is what TUN encapsulation (20 bytes in front)
//! and ICMP errors (a new header around a quote) need.

/// One single-segment packet: bytes plus room around them.
pub trait Frame {
    fn bytes(&self) -> &[u8];
    fn bytes_mut(&mut self) -> &mut [u8];
    /// Grows the packet by `n` bytes at the front; `false` (unchanged) without headroom.
    fn prepend(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the front; `false` (unchanged) if shorter.
    fn adj(&mut self, n: usize) -> bool;
    /// Sets the length, growing into tailroom or cutting; `false` (unchanged) without room.
    fn set_len(&mut self, len: usize) -> bool;
    /// What the port said of the IPv4 header checksum when it received the packet: `Some(true)`
    /// verified good, `Some(false)` bad, `None` not checked (the engine verifies it itself).
    #[inline]
    fn rx_ip_checksum(&self) -> Option<bool> {
        None
    }
}

/// A test frame: `headroom` spare bytes before the data and `tailroom` after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VecFrame {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl VecFrame {
    /// Headroom and tailroom of an mbuf from a default DPDK pool (128 bytes of headroom).
    pub fn new(bytes: &[u8]) -> Self {
        Self::with_room(bytes, 128, 2048)
    }

    pub fn with_room(bytes: &[u8], headroom: usize, tailroom: usize) -> Self {
        let mut buf = vec![0u8; headroom + bytes.len() + tailroom];
        buf[headroom..headroom + bytes.len()].copy_from_slice(bytes);
        VecFrame {
            buf,
            start: headroom,
            end: headroom + bytes.len(),
        }
    }
}

impl VecFrame {
    /// Refills the frame with `bytes` after `headroom` bytes, reusing its buffer (no
    /// allocation: benchmarks replay one buffer). `false` if the buffer is too small.
    #[inline]
    pub fn refill(&mut self, headroom: usize, bytes: &[u8]) -> bool {
        let end = headroom + bytes.len();
        if end > self.buf.len() {
            return false;
        }
        self.buf[headroom..end].copy_from_slice(bytes);
        self.start = headroom;
        self.end = end;
        true
    }
}

impl Frame for VecFrame {
    #[inline]
    fn bytes(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    #[inline]
    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.end]
    }

    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.start {
            return false;
        }
        self.start -= n;
        true
    }

    #[inline]
    fn adj(&mut self, n: usize) -> bool {
        if n > self.end - self.start {
            return false;
        }
        self.start += n;
        true
    }

    #[inline]
    fn set_len(&mut self, len: usize) -> bool {
        if self.start + len > self.buf.len() {
            return false;
        }
        self.end = self.start + len;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_shrinks_within_its_room() {
        let mut f = VecFrame::with_room(&[1, 2, 3], 2, 1);
        assert!(f.prepend(2));
        assert_eq!(f.bytes(), &[0, 0, 1, 2, 3]);
        assert!(!f.prepend(1));
        assert!(f.adj(2));
        assert!(f.set_len(4));
        assert_eq!(f.bytes(), &[1, 2, 3, 0]);
        assert!(!f.set_len(5));
        assert!(f.set_len(1));
        assert_eq!(f.bytes(), &[1]);
        assert!(!f.adj(2));
        assert!(f.refill(1, &[7, 8]));
        assert_eq!(f.bytes(), &[7, 8]);
        assert!(!f.refill(5, &[7, 8]));
    }
}
