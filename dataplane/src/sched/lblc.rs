//! Locality-based least connection: a destination address keeps the server it was given
//! while that server has weight and is not overloaded in lblc's sense (more active
//! connections than its weight while another server is under half of its weight); otherwise
//! wlc picks anew and the cache follows. IPVS counterpart: `ip_vs_lblc.c`.
//!
//! The cache is per worker and sized as IPVS's (16 Ki destinations); an entry unused for
//! 24 hours (`lblc_expiration`) counts as gone; when the cache is full, entries unused for
//! 6 minutes are collected, and if none are, the new destination is served uncached.

use std::net::Ipv4Addr;

use hashbrown::HashMap;

use super::{weighted_least, Candidates, Scheduler};
use crate::snapshot::RealServer;

/// IPVS's `IP_VS_LBLC_TAB_SIZE * 16`.
pub(crate) const MAX_ENTRIES: usize = 1024 * 16;
/// `DEFAULT_EXPIRATION`: 24 hours.
pub(crate) const EXPIRATION_S: u32 = 24 * 60 * 60;
/// `ENTRY_TIMEOUT`: what a full cache collects.
pub(crate) const ENTRY_TIMEOUT_S: u32 = 6 * 60;

#[inline]
pub(crate) fn seconds(now_ms: u64) -> u32 {
    (now_ms / 1000) as u32
}

/// lblc's and lblcr's `is_overloaded`: more active connections than weight while some server
/// has fewer than half its weight.
#[inline]
pub(crate) fn is_overloaded(c: &Candidates<'_>, d: usize) -> bool {
    if c.loads.get(d).active <= c.weight(d) {
        return false;
    }
    (0..c.reals.len()).any(|i| u64::from(c.loads.get(i).active) * 2 < u64::from(c.weight(i)))
}

/// Old index -> new index of the same server (`u16::MAX`: gone).
pub(crate) fn remap(old: &[RealServer], new: &[RealServer]) -> Vec<u16> {
    let at: HashMap<_, usize> = new.iter().enumerate().map(|(i, r)| (r.addr, i)).collect();
    old.iter()
        .map(|r| at.get(&r.addr).map_or(u16::MAX, |&i| i as u16))
        .collect()
}

/// A cache that never reallocates: room for twice the entries it admits, so that hashbrown
/// always rehashes tombstones in place instead of growing.
pub(crate) fn cache<V>() -> HashMap<Ipv4Addr, V> {
    HashMap::with_capacity(2 * MAX_ENTRIES)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    dest: u16,
    lastuse_s: u32,
}

#[derive(Debug, Clone)]
pub struct LocalityLeastConn {
    start: usize,
    cache: HashMap<Ipv4Addr, Entry>,
}

impl LocalityLeastConn {
    pub fn new(_reals: &[RealServer], worker: usize) -> Self {
        LocalityLeastConn {
            start: worker,
            cache: cache(),
        }
    }

    #[cfg(test)]
    pub(crate) fn cached(&self, addr: Ipv4Addr) -> Option<usize> {
        self.cache.get(&addr).map(|e| usize::from(e.dest))
    }
}

impl Scheduler for LocalityLeastConn {
    fn pick(&mut self, c: &Candidates<'_>) -> Option<usize> {
        let now = seconds(c.now_ms);
        let key = c.dst.addr;
        if let Some(e) = self.cache.get_mut(&key) {
            if now.saturating_sub(e.lastuse_s) <= EXPIRATION_S {
                e.lastuse_s = now;
                let d = usize::from(e.dest);
                if d < c.reals.len() && c.weight(d) > 0 && !is_overloaded(c, d) {
                    return Some(d);
                }
            }
        }
        let d = weighted_least(c, c.rotated(self.start), |i| c.overhead(i))?;
        let entry = Entry {
            dest: d as u16,
            lastuse_s: now,
        };
        if let Some(e) = self.cache.get_mut(&key) {
            *e = entry;
        } else {
            if self.cache.len() >= MAX_ENTRIES {
                self.cache
                    .retain(|_, e| now.saturating_sub(e.lastuse_s) < ENTRY_TIMEOUT_S);
            }
            if self.cache.len() < MAX_ENTRIES {
                self.cache.insert(key, entry);
            }
        }
        Some(d)
    }

    /// Entries follow their server to its new position; a removed server's are dropped.
    fn update(&mut self, old: &[RealServer], new: &[RealServer]) {
        let map = remap(old, new);
        self.cache
            .retain(|_, e| match map.get(usize::from(e.dest)) {
                Some(&to) if to != u16::MAX => {
                    e.dest = to;
                    true
                }
                _ => false,
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

    /// By hand, weights 1, 1, 1, connections active: destination X gets wlc's A; X again
    /// stays on A though A is now busier; Y gets B (least), Z gets C; X stays on A.
    #[test]
    fn destination_sticks_to_its_server() {
        let mut f = Fixture::new(&[1, 1, 1]);
        let mut s = LocalityLeastConn::new(&f.reals, 0);
        let mut seq = String::new();
        for d in [1, 1, 2, 3, 1] {
            to(&mut f, d);
            seq += &f.run(&mut s, 1, true);
        }
        assert_eq!(seq, "AABCA");
    }

    /// The cached server A becomes overloaded in lblc's sense once its active connections
    /// (3) exceed its weight (2) while another server (C, none active) is under half its
    /// weight: wlc picks anew (C) and the cache follows. A cached server busier than its
    /// weight stays while nobody is under half (C 5 > 2, but A 6 and B 4 are not < 2).
    #[test]
    fn overloaded_destination_moves() {
        let mut f = Fixture::new(&[2, 2, 2]).with_conns(&[(0, 0), (2, 0), (3, 0)]);
        let mut s = LocalityLeastConn::new(&f.reals, 0);
        to(&mut f, 1);
        assert_eq!(f.run(&mut s, 1, true), "A");
        f.loads[0].active = 3;
        f.loads[2].active = 0;
        assert_eq!(f.run(&mut s, 1, true), "C");
        assert_eq!(s.cached(f.dst.addr), Some(2));
        f.loads[2].active = 5;
        assert_eq!(f.run(&mut s, 1, true), "C");
    }

    /// Weight 0 sends the destination elsewhere; after 24 h unused the entry is forgotten.
    #[test]
    fn quiesced_and_expired() {
        let mut f = Fixture::new(&[1, 1]);
        let mut s = LocalityLeastConn::new(&f.reals, 0);
        to(&mut f, 1);
        assert_eq!(f.run(&mut s, 1, true), "A");
        f.reals[0].weight = 0;
        assert_eq!(f.run(&mut s, 1, true), "B");
        f.reals[0].weight = 1;
        f.loads[1].active = 5;
        assert_eq!(f.run(&mut s, 1, true), "B", "cached, not overloaded");
        f.now_ms += u64::from(EXPIRATION_S + 1) * 1000;
        assert_eq!(f.run(&mut s, 1, true), "A", "expired: wlc again");
    }

    /// A reload that reorders servers keeps the destination on its server.
    #[test]
    fn update_follows_the_server() {
        let mut f = Fixture::new(&[1, 1]);
        let mut s = LocalityLeastConn::new(&f.reals, 0);
        to(&mut f, 1);
        f.loads[0].active = 1;
        assert_eq!(f.run(&mut s, 1, true), "B");
        let old = f.reals.clone();
        let new = vec![old[1].clone(), old[0].clone()];
        s.update(&old, &new);
        assert_eq!(s.cached(f.dst.addr), Some(0));
        s.update(&new, &new[1..]);
        assert_eq!(s.cached(f.dst.addr), None);
    }

    /// A full cache collects idle entries, never growing its allocation (`capacity()` is not
    /// the measure: tombstones lower it without any reallocation).
    #[test]
    fn full_cache_collects_idle_entries() {
        let mut f = Fixture::new(&[1]);
        let mut s = LocalityLeastConn::new(&f.reals, 0);
        let bytes = s.cache.allocation_size();
        for i in 0..MAX_ENTRIES as u32 {
            f.dst = Endpoint::new(Ipv4Addr::from(0x0a00_0000 + i), 80);
            s.pick(&f.candidates());
        }
        assert_eq!(s.cache.len(), MAX_ENTRIES);
        f.dst = Endpoint::new([11, 0, 0, 1].into(), 80);
        s.pick(&f.candidates());
        assert_eq!(
            s.cache.len(),
            MAX_ENTRIES,
            "full and nothing idle: served uncached"
        );
        f.now_ms += u64::from(ENTRY_TIMEOUT_S) * 1000;
        s.pick(&f.candidates());
        assert_eq!(s.cache.len(), 1, "idle ones collected");
        // Filling it again over the tombstones rehashes in place.
        for i in 0..MAX_ENTRIES as u32 {
            f.dst = Endpoint::new(Ipv4Addr::from(0x0c00_0000 + i), 80);
            s.pick(&f.candidates());
        }
        assert_eq!(s.cache.len(), MAX_ENTRIES);
        assert_eq!(s.cache.allocation_size(), bytes, "no reallocation");
    }
}
