//! Source hashing: a 256-bucket table filled round robin, each server taking `weight`
//! consecutive buckets; the client address (plus its port with `sh-port`) picks the bucket.
//! An unavailable server (weight 0, overloaded) gets nothing, or with `sh-fallback` the next
//! available one in a probe sequence. IPVS counterpart: `ip_vs_sh.c`.
//!
//! The table is laid out over the service's members in canonical order (address, port), so
//! it depends only on the set of servers and their weights: every worker, every reload that
//! leaves the set alone and every node of a cluster given the same configuration send a
//! client to the same server. A member that failed its checks keeps its buckets; its clients
//! alone probe on to the next usable server.

use super::{canonical, member_map, Candidates, Member, SchedFlags, Scheduler, GONE};
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
    /// Bucket -> member (canonical order).
    buckets: Box<[u16; TAB_SIZE]>,
    /// Member -> index in the real servers (or GONE).
    map: Box<[u16]>,
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

    /// The table over `members` (put in canonical order), for the service's `reals`.
    pub fn new(members: &[Member], reals: &[RealServer], flags: SchedFlags) -> Self {
        let mut s = SourceHashing {
            buckets: Box::new([NONE; TAB_SIZE]),
            map: Box::new([]),
            flags,
        };
        s.reassign(&canonical(members), reals);
        s
    }

    /// `ip_vs_sh_reassign`: bucket by bucket, the current member, which moves on after
    /// `weight` buckets (after one if its weight is 0).
    fn reassign(&mut self, members: &[Member], reals: &[RealServer]) {
        self.map = member_map(members, reals);
        if members.is_empty() {
            self.buckets.fill(NONE);
            return;
        }
        let (mut d, mut count) = (0usize, 0u32);
        for b in self.buckets.iter_mut() {
            *b = d as u16;
            count += 1;
            if count >= members[d].1 {
                d = (d + 1) % members.len();
                count = 0;
            }
        }
    }

    /// The real server (index) in bucket `b`: `Err(true)` when its member is not among the
    /// real servers (failed), `Err(false)` when the bucket is empty.
    #[inline]
    fn real(&self, b: usize, c: &Candidates<'_>) -> Result<usize, bool> {
        let m = self.buckets[b];
        if m == NONE {
            return Err(false);
        }
        match self.map.get(usize::from(m)) {
            Some(&r) if r != GONE && usize::from(r) < c.reals.len() => Ok(usize::from(r)),
            _ => Err(true),
        }
    }

    /// The table (tests).
    #[cfg(test)]
    pub(crate) fn bucket(&self, i: usize) -> Option<usize> {
        let m = *self.buckets.get(i)?;
        (m != NONE).then(|| usize::from(self.map[usize::from(m)]))
    }
}

impl Scheduler for SourceHashing {
    #[inline]
    fn pick(&mut self, c: &Candidates<'_>) -> Option<usize> {
        let addr = c.src.addr;
        let port = if self.flags.port { c.src.port } else { 0 };
        let ihash = hashkey(addr, port, 0);
        match self.real(ihash, c) {
            Ok(r) if c.usable(r) => return Some(r),
            // Quiesced or overloaded: IPVS drops the flow unless sh-fallback.
            Ok(_) if !self.flags.fallback => return None,
            Err(false) => return None,
            // Failed its checks (not among the real servers): its clients always go on.
            _ => {}
        }
        for offset in 0..TAB_SIZE as u32 {
            let roffset = (offset + ihash as u32) % TAB_SIZE as u32;
            match self.real(hashkey(addr, port, roffset), c) {
                Err(false) => break,
                Ok(r) if c.usable(r) => return Some(r),
                _ => {}
            }
        }
        None
    }

    /// Without the service's members at hand: the real servers with their weights (the
    /// engine builds a new state from the service instead).
    fn update(&mut self, _old: &[RealServer], new: &[RealServer]) {
        let members: Vec<Member> = new.iter().map(|r| (r.addr, r.weight)).collect();
        self.reassign(&canonical(&members), new);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Endpoint;
    use crate::sched::testing::{reals, Fixture};

    fn members(reals: &[RealServer]) -> Vec<Member> {
        reals.iter().map(|r| (r.addr, r.weight)).collect()
    }

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
        let mut s = SourceHashing::new(&members(&f.reals), &f.reals, SchedFlags::default());
        assert_eq!(
            (0..6).map(|i| s.bucket(i).unwrap()).collect::<Vec<_>>(),
            vec![0, 0, 1, 0, 0, 1]
        );
        for (last, want) in [(10, 0), (11, 1), (12, 0)] {
            f.src = client(last, 40000);
            assert_eq!(s.pick(&f.candidates()), Some(want), ".{last}");
        }
        let mut with_port = SourceHashing::new(
            &members(&f.reals),
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
        let s = SourceHashing::new(&members(&f.reals), &f.reals, SchedFlags::default());
        f.reals[1].weight = 0;
        f.src = client(11, 1);
        assert_eq!(s.clone().pick(&f.candidates()), None);
        let mut fb = SourceHashing::new(
            &members(&reals(&[2, 1])),
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
        let s = SourceHashing::new(
            &members(&reals(&[0, 2])),
            &reals(&[0, 2]),
            SchedFlags::default(),
        );
        assert_eq!(
            (0..6).map(|i| s.bucket(i).unwrap()).collect::<Vec<_>>(),
            vec![0, 1, 1, 0, 1, 1]
        );
    }

    /// Same list, same table: rebuilding (another worker, a reload) changes nothing.
    #[test]
    fn stable_for_the_same_list() {
        let r = reals(&[3, 1, 2]);
        let a = SourceHashing::new(&members(&r), &r, SchedFlags::default());
        let mut b = SourceHashing::new(&members(&reals(&[1])), &reals(&[1]), SchedFlags::default());
        b.update(&reals(&[1]), &r);
        assert_eq!(a, b);
    }
}
