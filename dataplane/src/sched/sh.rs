//! Source hashing: a 256-bucket table filled round robin, each server taking `weight`
//! consecutive buckets; the client address (plus its port with `sh-port`) picks the bucket.
//! An unavailable server (weight 0, overloaded) gets nothing, or with `sh-fallback` the next
//! available one in a probe sequence. IPVS counterpart: `ip_vs_sh.c`.
//!
//! The table depends only on the server list, so every worker and every reload that leaves
//! the list alone send a client to the same server.

use super::{Candidates, SchedFlags, Scheduler};
use crate::snapshot::RealServer;
use std::net::Ipv4Addr;

/// `CONFIG_IP_VS_SH_TAB_BITS` (default 8).
pub(crate) const TAB_BITS: u32 = 8;
pub(crate) const TAB_SIZE: usize = 1 << TAB_BITS;
const NONE: u16 = u16::MAX;

/// The kernel's `hash_32`: multiply by the 32-bit golden ratio, keep the top `bits`.
#[inline]
pub(crate) fn hash_32(v: u32, bits: u32) -> u32 {
    v.wrapping_mul(0x61C8_8647) >> (32 - bits)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceHashing {
    buckets: Box<[u16; TAB_SIZE]>,
    flags: SchedFlags,
}

/// `ip_vs_sh_hashkey`.
#[inline]
fn hashkey(addr: Ipv4Addr, port: u16, offset: u32) -> usize {
    (offset.wrapping_add(hash_32(
        u32::from(port).wrapping_add(u32::from(addr)),
        TAB_BITS,
    )) as usize)
        % TAB_SIZE
}

impl SourceHashing {
    pub fn flags(&self) -> SchedFlags {
        self.flags
    }

    pub fn new(reals: &[RealServer], flags: SchedFlags) -> Self {
        let mut s = SourceHashing {
            buckets: Box::new([NONE; TAB_SIZE]),
            flags,
        };
        s.reassign(reals);
        s
    }

    /// `ip_vs_sh_reassign`: bucket by bucket, the current server, which moves on after
    /// `weight` buckets (after one if its weight is 0).
    fn reassign(&mut self, reals: &[RealServer]) {
        if reals.is_empty() {
            self.buckets.fill(NONE);
            return;
        }
        let (mut d, mut count) = (0usize, 0u32);
        for b in self.buckets.iter_mut() {
            *b = d as u16;
            count += 1;
            if count >= reals[d].weight {
                d = (d + 1) % reals.len();
                count = 0;
            }
        }
    }

    /// The table (tests).
    #[cfg(test)]
    pub(crate) fn bucket(&self, i: usize) -> Option<usize> {
        (self.buckets[i] != NONE).then_some(self.buckets[i] as usize)
    }
}

impl Scheduler for SourceHashing {
    #[inline]
    fn pick(&mut self, c: &Candidates<'_>) -> Option<usize> {
        let addr = c.src.addr;
        let port = if self.flags.port { c.src.port } else { 0 };
        let ihash = hashkey(addr, port, 0);
        let d = self.buckets[ihash];
        if d == NONE || usize::from(d) >= c.reals.len() {
            return None;
        }
        if c.usable(usize::from(d)) {
            return Some(usize::from(d));
        }
        if !self.flags.fallback {
            return None;
        }
        for offset in 0..TAB_SIZE as u32 {
            let roffset = (offset + ihash as u32) % TAB_SIZE as u32;
            let d = self.buckets[hashkey(addr, port, roffset)];
            if d == NONE || usize::from(d) >= c.reals.len() {
                break;
            }
            if c.usable(usize::from(d)) {
                return Some(usize::from(d));
            }
        }
        None
    }

    fn update(&mut self, _old: &[RealServer], new: &[RealServer]) {
        self.reassign(new);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Endpoint;
    use crate::sched::testing::{reals, Fixture};

    fn client(last: u8, port: u16) -> Endpoint {
        Endpoint::new([198, 51, 100, last].into(), port)
    }

    /// Weights 2, 1: buckets A A B A A B ..., so bucket b is B iff b % 3 == 2. By hand:
    /// 198.51.100.10 = 0xc633640a; × 0x61c88647 mod 2^32, top 8 bits = 208 -> A;
    /// .11 -> 50 -> B; .12 -> 147 -> A; with sh-port, .10:40000 hashes 0xc633640a + 40000
    /// -> 116 -> B.
    #[test]
    fn ipvs_buckets_and_hash() {
        let mut f = Fixture::new(&[2, 1]);
        let mut s = SourceHashing::new(&f.reals, SchedFlags::default());
        assert_eq!(
            (0..6).map(|i| s.bucket(i).unwrap()).collect::<Vec<_>>(),
            vec![0, 0, 1, 0, 0, 1]
        );
        for (last, want) in [(10, 0), (11, 1), (12, 0)] {
            f.src = client(last, 40000);
            assert_eq!(s.pick(&f.candidates()), Some(want), ".{last}");
        }
        let mut with_port = SourceHashing::new(
            &f.reals,
            SchedFlags {
                port: true,
                fallback: false,
            },
        );
        f.src = client(10, 40000);
        assert_eq!(with_port.pick(&f.candidates()), Some(1));
    }

    /// A weight-0 server keeps its one bucket per turn and is unavailable: .11 (bucket 50,
    /// B) is dropped without sh-fallback; with it, the probe at offset 50 hashes to bucket
    /// (50 + 50) % 256 = 100 -> 100 % 3 = 1 -> A.
    #[test]
    fn unavailable_server_and_fallback() {
        let mut f = Fixture::new(&[2, 1]);
        let s = SourceHashing::new(&f.reals, SchedFlags::default());
        f.reals[1].weight = 0;
        f.src = client(11, 1);
        assert_eq!(s.clone().pick(&f.candidates()), None);
        let mut fb = SourceHashing::new(
            &reals(&[2, 1]),
            SchedFlags {
                port: false,
                fallback: true,
            },
        );
        assert_eq!(fb.pick(&f.candidates()), Some(0));
        f.loads[0].overloaded = true;
        assert_eq!(fb.pick(&f.candidates()), None, "nothing available");
    }

    /// Weight 0 in the table itself: one bucket, then the next server.
    #[test]
    fn zero_weight_takes_one_bucket() {
        let s = SourceHashing::new(&reals(&[0, 2]), SchedFlags::default());
        assert_eq!(
            (0..6).map(|i| s.bucket(i).unwrap()).collect::<Vec<_>>(),
            vec![0, 1, 1, 0, 1, 1]
        );
    }

    /// Same list, same table: rebuilding (another worker, a reload) changes nothing.
    #[test]
    fn stable_for_the_same_list() {
        let r = reals(&[3, 1, 2]);
        let a = SourceHashing::new(&r, SchedFlags::default());
        let mut b = SourceHashing::new(&reals(&[1]), SchedFlags::default());
        b.update(&reals(&[1]), &r);
        assert_eq!(a, b);
    }
}
