//! Destination hashing: a 256-bucket table with the servers in turn (weights play no part
//! but 0 = unavailable); the destination address picks the bucket. An unavailable server
//! means no server. IPVS counterpart: `ip_vs_dh.c`.
//!
//! On a VIP service the destination is always the VIP, so every connection goes to one
//! server: dh is meant for services that see many destinations (caches, firewalls).

use super::sh::{hash_32, TAB_BITS, TAB_SIZE};
use super::{Candidates, Scheduler};
use crate::snapshot::RealServer;

const NONE: u16 = u16::MAX;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationHashing {
    buckets: Box<[u16; TAB_SIZE]>,
}

impl DestinationHashing {
    pub fn new(reals: &[RealServer]) -> Self {
        let mut s = DestinationHashing {
            buckets: Box::new([NONE; TAB_SIZE]),
        };
        s.reassign(reals);
        s
    }

    /// `ip_vs_dh_reassign`: bucket i gets server i mod n.
    fn reassign(&mut self, reals: &[RealServer]) {
        for (i, b) in self.buckets.iter_mut().enumerate() {
            *b = if reals.is_empty() {
                NONE
            } else {
                (i % reals.len()) as u16
            };
        }
    }
}

impl Scheduler for DestinationHashing {
    #[inline]
    fn pick(&mut self, c: &Candidates<'_>) -> Option<usize> {
        let b = hash_32(u32::from(c.dst.addr), TAB_BITS) as usize;
        let d = usize::from(self.buckets[b]);
        (d < c.reals.len() && c.usable(d)).then_some(d)
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

    /// Three servers: bucket b -> b % 3. By hand: 198.51.100.10 hashes to bucket 208 -> B
    /// (208 % 3 = 1); .11 -> 50 -> C; 203.0.113.7 -> 124 -> B. The source does not matter.
    #[test]
    fn ipvs_buckets_and_hash() {
        let mut f = Fixture::new(&[1, 1, 1]);
        let mut s = DestinationHashing::new(&f.reals);
        for (dst, want) in [
            ([198, 51, 100, 10], 1),
            ([198, 51, 100, 11], 2),
            ([203, 0, 113, 7], 1),
        ] {
            f.dst = Endpoint::new(dst.into(), 80);
            for sport in [1, 2, 3] {
                f.src.port = sport;
                assert_eq!(s.pick(&f.candidates()), Some(want), "{dst:?}");
            }
        }
        f.dst = Endpoint::new([198, 51, 100, 10].into(), 80);
        f.loads[1].overloaded = true;
        assert_eq!(s.pick(&f.candidates()), None);
    }

    #[test]
    fn stable_for_the_same_list() {
        let r = reals(&[3, 1, 2]);
        let mut b = DestinationHashing::new(&reals(&[1]));
        b.update(&reals(&[1]), &r);
        assert_eq!(DestinationHashing::new(&r), b);
    }
}
