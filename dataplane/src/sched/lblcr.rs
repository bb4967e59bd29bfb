//! Locality-based least connection with replication: a destination address keeps a set of
//! servers and goes to the least loaded of them (overhead / weight); when that one is
//! overloaded in lblc's sense, wlc adds a server to the set; a set unchanged for 24 hours
//! sheds its most loaded member. IPVS counterpart: `ip_vs_lblcr.c`.
//!
//! Cache sizing and ageing as lblc. A set holds at most 16 servers (IPVS's list is
//! unbounded): a 17th replaces the most loaded member.

use std::net::Ipv4Addr;

use hashbrown::HashMap;

use super::lblc::{
    cache, is_overloaded, remap, seconds, ENTRY_TIMEOUT_S, EXPIRATION_S, MAX_ENTRIES,
};
use super::{lighter, weighted_least, Candidates, Scheduler};
use crate::snapshot::RealServer;

/// Members a set holds.
pub const MAX_SET: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Set {
    /// Most recently added first, as IPVS's list.
    members: [u16; MAX_SET],
    len: u8,
    lastmod_s: u32,
    lastuse_s: u32,
}

impl Set {
    fn new(d: usize, now: u32) -> Self {
        let mut members = [0; MAX_SET];
        members[0] = d as u16;
        Set {
            members,
            len: 1,
            lastmod_s: now,
            lastuse_s: now,
        }
    }

    fn members(&self) -> impl Iterator<Item = usize> + '_ {
        self.members[..usize::from(self.len)]
            .iter()
            .map(|&m| usize::from(m))
    }

    /// `ip_vs_dest_set_min`: the least overhead per weight, skipping overloaded servers.
    fn min(&self, c: &Candidates<'_>) -> Option<usize> {
        let members = self.members().filter(|&d| d < c.reals.len());
        weighted_least(c, members, |i| c.overhead(i))
    }

    /// `ip_vs_dest_set_max`: the most overhead per weight among servers with weight.
    fn max(&self, c: &Candidates<'_>) -> Option<usize> {
        let mut most: Option<(usize, u64)> = None;
        for d in self
            .members()
            .filter(|&d| d < c.reals.len() && c.weight(d) > 0)
        {
            let oh = c.overhead(d);
            match most {
                None => most = Some((d, oh)),
                // moh / mw < doh / dw
                Some((m, moh)) if lighter(oh, c.weight(d), moh, c.weight(m)) => {
                    most = Some((d, oh))
                }
                _ => {}
            }
        }
        most.map(|(d, _)| d)
    }

    fn erase(&mut self, d: usize, now: u32) {
        let at = self.members().position(|m| m == d);
        if let Some(at) = at {
            let len = usize::from(self.len);
            self.members.copy_within(at + 1..len, at);
            self.len -= 1;
            self.lastmod_s = now;
        }
    }

    /// `ip_vs_dest_set_insert` (with check): at the head, unless already a member.
    fn insert(&mut self, d: usize, now: u32, c: &Candidates<'_>) {
        if self.members().any(|m| m == d) {
            return;
        }
        if usize::from(self.len) == MAX_SET {
            let victim = self
                .max(c)
                .unwrap_or(usize::from(self.members[MAX_SET - 1]));
            self.erase(victim, now);
            if usize::from(self.len) == MAX_SET {
                self.len -= 1;
            }
        }
        let len = usize::from(self.len);
        self.members.copy_within(0..len, 1);
        self.members[0] = d as u16;
        self.len += 1;
        self.lastmod_s = now;
    }
}

#[derive(Debug, Clone)]
pub struct LocalityLeastConnReplicated {
    start: usize,
    cache: HashMap<Ipv4Addr, Set>,
}

impl LocalityLeastConnReplicated {
    pub fn new(_reals: &[RealServer], worker: usize) -> Self {
        LocalityLeastConnReplicated {
            start: worker,
            cache: cache(),
        }
    }

    #[cfg(test)]
    fn set_of(&self, addr: Ipv4Addr) -> Vec<usize> {
        self.cache
            .get(&addr)
            .map(|s| s.members().collect())
            .unwrap_or_default()
    }
}

impl Scheduler for LocalityLeastConnReplicated {
    fn pick(&mut self, c: &Candidates<'_>) -> Option<usize> {
        let now = seconds(c.now_ms);
        let key = c.dst.addr;
        let start = self.start;
        if let Some(set) = self.cache.get_mut(&key) {
            if now.saturating_sub(set.lastuse_s) <= EXPIRATION_S {
                set.lastuse_s = now;
                let dest = set.min(c);
                if set.len > 1 && now.saturating_sub(set.lastmod_s) > EXPIRATION_S {
                    if let Some(m) = set.max(c) {
                        set.erase(m, now);
                    }
                }
                if let Some(d) = dest {
                    if !is_overloaded(c, d) {
                        return Some(d);
                    }
                }
                let d = weighted_least(c, c.rotated(start), |i| c.overhead(i))?;
                set.insert(d, now, c);
                return Some(d);
            }
            self.cache.remove(&key);
        }
        let d = weighted_least(c, c.rotated(start), |i| c.overhead(i))?;
        if self.cache.len() >= MAX_ENTRIES {
            self.cache
                .retain(|_, s| now.saturating_sub(s.lastuse_s) < ENTRY_TIMEOUT_S);
        }
        if self.cache.len() < MAX_ENTRIES {
            self.cache.insert(key, Set::new(d, now));
        }
        Some(d)
    }

    /// Members follow their server to its new position; removed servers leave the sets;
    /// an emptied set is dropped.
    fn update(&mut self, old: &[RealServer], new: &[RealServer]) {
        let map = remap(old, new);
        self.cache.retain(|_, set| {
            let mut kept = [0u16; MAX_SET];
            let mut n = 0;
            for m in set.members() {
                if let Some(&to) = map.get(m) {
                    if to != u16::MAX {
                        kept[n] = to;
                        n += 1;
                    }
                }
            }
            set.members = kept;
            set.len = n as u8;
            n > 0
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Endpoint;
    use crate::sched::testing::Fixture;

    fn to(f: &mut Fixture, last: u8) {
        f.dst = Endpoint::new([203, 0, 113, last].into(), 80);
    }

    /// By hand, weights 2, 2, 2, connections active, one destination X. 1: wlc -> A, set
    /// {A}. 2: A (1 active, not > 2) -> A. 3: A (2, not > 2) -> A. 4: A has 3 > 2 and B (0 × 2
    /// < 2) is under half: overloaded; wlc -> B, set {B, A}. 5: the set's min by overhead
    /// per weight, B 256 < A 768 -> B.
    #[test]
    fn set_grows_when_its_best_is_overloaded() {
        let mut f = Fixture::new(&[2, 2, 2]);
        let mut s = LocalityLeastConnReplicated::new(&f.reals, 0);
        to(&mut f, 1);
        assert_eq!(f.run(&mut s, 4, true), "AAAB");
        assert_eq!(s.set_of(f.dst.addr), vec![1, 0]);
        assert_eq!(f.run(&mut s, 1, true), "B");
    }

    /// A set unchanged for 24 hours drops its most loaded member, after the min is chosen.
    #[test]
    fn old_set_sheds_its_most_loaded() {
        let mut f = Fixture::new(&[2, 2, 2]);
        let mut s = LocalityLeastConnReplicated::new(&f.reals, 0);
        to(&mut f, 1);
        assert_eq!(f.run(&mut s, 5, true), "AAABB"); // A 3, B 2, set {B, A}
        f.loads[2].active = 5; // from here nobody is under half its weight
        let half_day = u64::from(EXPIRATION_S) * 1000 / 2;
        f.now_ms += half_day;
        assert_eq!(f.run(&mut s, 1, true), "B"); // B 512 < A 768 per weight; B 3
        f.now_ms += half_day + 2000;
        // The set last changed over 24 h ago. Min: B 768 ties A 768, B heads the list -> B.
        // Max: tie, the first (B) is erased. B (3 > 2) is not overloaded: nobody is under
        // half. -> B, and the set is {A}.
        assert_eq!(f.run(&mut s, 1, true), "B");
        assert_eq!(s.set_of(f.dst.addr), vec![0]);
    }

    #[test]
    fn update_moves_and_drops_members() {
        let mut f = Fixture::new(&[2, 2, 2]);
        let mut s = LocalityLeastConnReplicated::new(&f.reals, 0);
        to(&mut f, 1);
        f.run(&mut s, 4, true);
        assert_eq!(s.set_of(f.dst.addr), vec![1, 0]);
        let old = f.reals.clone();
        // B removed, C and A swapped: A is now 1.
        let new = vec![old[2].clone(), old[0].clone()];
        s.update(&old, &new);
        assert_eq!(s.set_of(f.dst.addr), vec![1]);
        s.update(&new, &new[..1]);
        assert_eq!(s.set_of(f.dst.addr), Vec::<usize>::new());
    }
}
