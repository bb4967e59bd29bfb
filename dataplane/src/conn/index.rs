//! The connection table's index: flow-key hash -> (slot, direction), in buckets of one cache
//! line each, so that a packet's bucket can be prefetched from its hash alone, before any
//! memory is read (hashbrown's buckets cannot be reached without a dependent load).
//!
//! A bucket holds 8 entries: a 16-bit tag of the hash each (0 = empty) and the entry itself
//! (slot index, direction in the top bit). Keys are not stored: a tag match is confirmed by
//! the caller against the connection in the slot, which it reads anyway. A key lives in its
//! home bucket (`hash & mask`) or, when that is full, in the next bucket with room; every
//! bucket passed on the way counts one more overflow, and a lookup goes on past a bucket only
//! while that count is not zero (as F14's outbound overflow count). A removal takes the count
//! back on the same path, so there are no tombstones and nothing ever needs rebuilding.
//! Buckets are sized for at most half their entries in use: nearly every key is at home.

use std::hash::BuildHasher;

use super::Direction;
use crate::flow::FlowKey;

const WAYS: usize = 8;
const REPLY_BIT: u32 = 1 << 31;

#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(64))]
struct Bucket {
    tags: [u16; WAYS],
    entries: [u32; WAYS],
    /// Keys whose home is at or before this bucket and that live after it.
    overflow: u32,
}

/// An index entry: the slot and which of its keys this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Entry {
    pub slot: u32,
    pub direction: Direction,
}

impl Entry {
    fn pack(self) -> u32 {
        debug_assert!(self.slot < REPLY_BIT);
        match self.direction {
            Direction::Original => self.slot,
            Direction::Reply => self.slot | REPLY_BIT,
        }
    }

    fn unpack(raw: u32) -> Entry {
        Entry {
            slot: raw & !REPLY_BIT,
            direction: if raw & REPLY_BIT == 0 {
                Direction::Original
            } else {
                Direction::Reply
            },
        }
    }
}

#[derive(Debug)]
pub(super) struct FlowIndex {
    buckets: Vec<Bucket>,
    mask: usize,
    len: usize,
    /// Seeded per table (hashbrown's default, foldhash): flow keys come from the network.
    hasher: hashbrown::DefaultHashBuilder,
}

/// The ways of a bucket whose tag is `t`, as a mask to walk with [`next_way`]: the eight
/// tags compared four at a time in two 64-bit words (SWAR, exact: no false match).
#[inline(always)]
fn matching(tags: &[u16; WAYS], t: u16) -> u64 {
    const LOW15: u64 = 0x7fff_7fff_7fff_7fff;
    let word = |w: &[u16]| {
        u64::from(w[0]) | u64::from(w[1]) << 16 | u64::from(w[2]) << 32 | u64::from(w[3]) << 48
    };
    let broadcast = u64::from(t) * 0x0001_0001_0001_0001;
    // Bit 15 of each 16-bit lane set exactly where the lane is zero, i.e. the tag is `t`.
    let zero_lanes = |x: u64| !((((x & LOW15) + LOW15) | x) | LOW15);
    let (lo, hi) = (word(&tags[..4]) ^ broadcast, word(&tags[4..]) ^ broadcast);
    // Way k of the first four at bit 16k, way 4 + k at bit 16k + 1.
    (zero_lanes(lo) >> 15) | (zero_lanes(hi) >> 14)
}

/// The lowest way left in a [`matching`] mask.
#[inline(always)]
fn next_way(ways: u64) -> usize {
    let bit = ways.trailing_zeros() as usize;
    (bit >> 4) | ((bit & 1) << 2)
}

#[inline]
fn tag(hash: u64) -> u16 {
    ((hash >> 48) as u16).max(1)
}

impl FlowIndex {
    /// Room for `keys` keys at most; all memory allocated here.
    pub fn new(keys: usize) -> Self {
        let buckets = (keys * 2).div_ceil(WAYS).next_power_of_two().max(1);
        FlowIndex {
            buckets: vec![Bucket::default(); buckets],
            mask: buckets - 1,
            len: 0,
            hasher: hashbrown::DefaultHashBuilder::default(),
        }
    }

    #[inline]
    pub fn hash(&self, key: &FlowKey) -> u64 {
        self.hasher.hash_one(key)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Keys it holds at most (half its entries).
    pub fn capacity(&self) -> usize {
        self.buckets.len() * WAYS / 2
    }

    pub fn allocation_size(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<Bucket>()
    }

    /// Starts loading the home bucket of `hash` into the cache.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        crate::prefetch::prefetch(&self.buckets[hash as usize & self.mask]);
    }

    /// The first entry of the home bucket whose tag matches: the likely answer, unconfirmed
    /// (for prefetching its slot).
    #[inline]
    pub fn candidate(&self, hash: u64) -> Option<Entry> {
        let bucket = &self.buckets[hash as usize & self.mask];
        let ways = matching(&bucket.tags, tag(hash));
        (ways != 0).then(|| Entry::unpack(bucket.entries[next_way(ways) & (WAYS - 1)]))
    }

    /// The entry for `hash` that `is_key` confirms. A bucket's eight tags are compared at once
    /// (the compiler makes one vector compare of the fold), then only the matching ways are
    /// confirmed; past the home bucket only while its overflow count says so.
    #[inline(always)]
    pub fn find(&self, hash: u64, mut is_key: impl FnMut(Entry) -> bool) -> Option<Entry> {
        let t = tag(hash);
        let mut at = hash as usize & self.mask;
        for _ in 0..self.buckets.len() {
            let bucket = &self.buckets[at];
            let mut ways = matching(&bucket.tags, t);
            while ways != 0 {
                let way = next_way(ways);
                ways &= ways - 1;
                let entry = Entry::unpack(bucket.entries[way & (WAYS - 1)]);
                if is_key(entry) {
                    return Some(entry);
                }
            }
            if bucket.overflow == 0 {
                return None;
            }
            at = (at + 1) & self.mask;
        }
        None
    }

    /// Adds an entry (the caller knows its key is not in the index). `false` when full.
    pub fn insert(&mut self, hash: u64, entry: Entry) -> bool {
        if self.len == self.capacity() {
            return false;
        }
        let t = tag(hash);
        let home = hash as usize & self.mask;
        let mut at = home;
        loop {
            let bucket = &mut self.buckets[at];
            if let Some(way) = bucket.tags.iter().position(|&x| x == 0) {
                bucket.tags[way] = t;
                bucket.entries[way] = entry.pack();
                break;
            }
            at = (at + 1) & self.mask;
        }
        // Count the overflow on every bucket passed, now that the key has a place.
        let mut passed = home;
        while passed != at {
            self.buckets[passed].overflow += 1;
            passed = (passed + 1) & self.mask;
        }
        self.len += 1;
        true
    }

    /// Removes `entry`, filed under `hash`. `false` if it is not there.
    pub fn remove(&mut self, hash: u64, entry: Entry) -> bool {
        let (t, raw) = (tag(hash), entry.pack());
        let home = hash as usize & self.mask;
        let mut at = home;
        for _ in 0..self.buckets.len() {
            let bucket = &mut self.buckets[at];
            if let Some(way) = (0..WAYS).find(|&w| bucket.tags[w] == t && bucket.entries[w] == raw)
            {
                bucket.tags[way] = 0;
                let mut passed = home;
                while passed != at {
                    self.buckets[passed].overflow -= 1;
                    passed = (passed + 1) & self.mask;
                }
                self.len -= 1;
                return true;
            }
            if bucket.overflow == 0 {
                return false;
            }
            at = (at + 1) & self.mask;
        }
        false
    }

    /// Overflow counts recomputed from the entries' homes equal the stored ones (tests).
    #[cfg(test)]
    pub fn check_overflow(&self, home_of: impl Fn(Entry) -> u64) {
        let mut expected = vec![0u32; self.buckets.len()];
        let mut live = 0;
        for (at, bucket) in self.buckets.iter().enumerate() {
            for way in 0..WAYS {
                if bucket.tags[way] == 0 {
                    continue;
                }
                live += 1;
                let hash = home_of(Entry::unpack(bucket.entries[way]));
                assert_eq!(bucket.tags[way], tag(hash), "tag");
                let mut passed = hash as usize & self.mask;
                while passed != at {
                    expected[passed] += 1;
                    passed = (passed + 1) & self.mask;
                }
            }
        }
        assert_eq!(live, self.len, "index len");
        for (bucket, want) in self.buckets.iter().zip(expected) {
            assert_eq!(bucket.overflow, want, "overflow count");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The SWAR tag match finds exactly the ways a plain compare finds, in order.
        #[test]
        fn tag_match_is_exact(tags in proptest::array::uniform8(0u16..6), t in 0u16..6,
                              wide in proptest::array::uniform8(proptest::num::u16::ANY)) {
            for tags in [tags, wide] {
                let mut ways = matching(&tags, t);
                let mut found = Vec::new();
                while ways != 0 {
                    found.push(next_way(ways));
                    ways &= ways - 1;
                }
                found.sort_unstable();
                let expected: Vec<usize> = (0..WAYS).filter(|&w| tags[w] == t).collect();
                proptest::prop_assert_eq!(found, expected);
            }
        }
    }

    fn e(slot: u32) -> Entry {
        Entry {
            slot,
            direction: if slot.is_multiple_of(2) {
                Direction::Original
            } else {
                Direction::Reply
            },
        }
    }

    #[test]
    fn a_bucket_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Bucket>(), 64);
        assert_eq!(std::mem::align_of::<Bucket>(), 64);
    }

    #[test]
    fn colliding_keys_spill_over_and_come_back() {
        // 20 keys all at home 1 with distinct tags: 8 stay, 12 spill over.
        let mut ix = FlowIndex::new(20);
        assert_eq!(ix.capacity(), 32, "8 buckets");
        let hashes: Vec<u64> = (0..20u64).map(|i| ((i + 1) << 48) | 1).collect();
        for (i, &h) in hashes.iter().enumerate() {
            assert!(ix.insert(h, e(i as u32)));
        }
        let home_of = |entry: Entry| hashes[entry.slot as usize];
        ix.check_overflow(home_of);
        for (i, &h) in hashes.iter().enumerate() {
            assert_eq!(ix.find(h, |x| x == e(i as u32)), Some(e(i as u32)));
        }
        assert_eq!(ix.find(hashes[3], |_| false), None, "unconfirmed");
        for i in (0..20).step_by(3) {
            assert!(ix.remove(hashes[i], e(i as u32)));
            assert!(!ix.remove(hashes[i], e(i as u32)), "gone");
        }
        ix.check_overflow(home_of);
        for (i, &h) in hashes.iter().enumerate() {
            let want = (i % 3 != 0).then_some(e(i as u32));
            assert_eq!(ix.find(h, |x| x == e(i as u32)), want, "{i}");
        }
    }

    #[test]
    fn refuses_past_half_its_entries() {
        let mut ix = FlowIndex::new(4);
        let n = ix.capacity();
        for i in 0..n as u32 {
            assert!(ix.insert(u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15), e(i)));
        }
        assert!(!ix.insert(7, e(99)));
        assert_eq!(ix.len(), n);
    }

    #[test]
    fn random_churn_matches_a_model() {
        let mut ix = FlowIndex::new(1000);
        let mut model: std::collections::HashMap<u32, u64> = Default::default();
        let mut x = 0x1234_5678_9abc_def1u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..200_000u32 {
            let r = next();
            if model.len() < 1000 && (r % 3 != 0 || model.is_empty()) {
                // 16 homes for up to 1000 keys: long overflow chains get exercised.
                let h = next() & 0xffff_0000_0000_000f;
                assert!(ix.insert(h, e(round)));
                model.insert(round, h);
            } else {
                let (&slot, &h) = model.iter().nth(r as usize % model.len()).unwrap();
                assert!(ix.remove(h, e(slot)));
                model.remove(&slot);
            }
            if round % 10_000 == 0 {
                ix.check_overflow(|entry| model[&entry.slot]);
                for (&slot, &h) in &model {
                    assert_eq!(ix.find(h, |x| x == e(slot)), Some(e(slot)));
                }
            }
        }
        assert_eq!(ix.len(), model.len());
    }
}
