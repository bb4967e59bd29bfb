//! Maglev hashing: a prime-sized lookup table filled from each server's permutation
//! (offset, skip) in turns proportional to its weight; the client address (plus its port
//! with `mh-port`) picks the entry. An unavailable server (weight 0, overloaded) gets
//! nothing, or with `mh-fallback` the next available one in a probe sequence. IPVS
//! counterpart: `ip_vs_mh.c` (Eisenbud et al., "Maglev", NSDI 2016).
//!
//! The table is laid out over the service's members ([`crate::snapshot::Service::members`]) in
//! canonical order (address, port) with fixed seeds, so every node of a cluster given the same
//! configuration builds the same table, whatever the order of its list or of the edits that
//! made it: a flow the routers move to another node finds the same server there. A member
//! that failed its checks keeps its entries; its flows alone probe on to the next usable
//! server (as if IPVS had rebuilt the table without it, but moving nobody else). Unlike IPVS,
//! the table does not remember a quiesced server's last weight (that would depend on each
//! node's history): a server configured at weight 0 has no entries. The size is 65521 (IPVS's
//! `CONFIG_IP_VS_MH_TAB_INDEX` 16; its build default is 12, 4093 entries, which leaves 100
//! servers 41 entries each, ±2.4% apart; 65521 leaves them ±0.15%).
//!
//! The table is built once per snapshot by the control thread and shared read-only by the
//! workers (it is 128 KiB and takes milliseconds to fill, which a worker must not spend).
//! The hash is not IPVS's hsiphash: flows map to other entries than on Linux.

use std::sync::Arc;

use super::{canonical, gcd, member_map, Candidates, Member, SchedFlags, Scheduler, GONE};
use crate::flow::Endpoint;
use crate::snapshot::RealServer;

/// Entries in the lookup table (a prime).
pub const MH_TABLE_SIZE: usize = 65521;
/// IPVS's `IP_VS_MH_TAB_BITS` for that size (`CONFIG_IP_VS_MH_TAB_INDEX / 2`): weights are
/// shifted so that the largest one (over the gcd) fits in this many bits.
const TAB_BITS: u32 = 8;
const NONE: u16 = u16::MAX;
const SEED_OFFSET: u64 = 0x9e37_79b9_7f4a_7c15;
const SEED_SKIP: u64 = 0xc2b2_ae3d_27d4_eb4f;

/// splitmix64's finaliser: a full-avalanche 64-bit mix.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The hash of an address and port with a seed and a probe offset.
#[inline]
fn hashkey(ep: Endpoint, seed: u64, offset: u64) -> u64 {
    let v = (u64::from(u32::from(ep.addr)) << 16) | u64::from(ep.port);
    mix(v.wrapping_add(offset) ^ seed)
}

/// One server's permutation, as `ip_vs_mh_dest_setup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup {
    pub offset: usize,
    pub skip: usize,
    /// Entries the server takes per round (0: none).
    pub turns: u32,
}

/// A filled lookup table: entry -> index of the member (canonical order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaglevTable {
    lookup: Box<[u16]>,
    /// What it was built from: (server, weight used), canonical.
    servers: Vec<Member>,
}

impl MaglevTable {
    /// The table for the members `(server, weight)`, put in canonical order first: the same
    /// set gives the same table. Lists longer than 65535 servers are refused by configuration.
    pub fn build(members: &[Member], size: usize) -> Self {
        let servers = canonical(members);
        let g = servers.iter().map(|s| s.1).filter(|w| *w > 0).fold(0, gcd);
        let max = servers.iter().map(|s| s.1).max().unwrap_or(0);
        let setups: Vec<Setup> = match max.checked_div(g) {
            None => Vec::new(),
            Some(mw) => {
                // ip_vs_mh_shift_weight.
                let fls = 32 - mw.leading_zeros();
                let shift = fls.saturating_sub(TAB_BITS);
                servers
                    .iter()
                    .map(|&(ep, w)| Setup {
                        offset: (hashkey(ep, SEED_OFFSET, 0) % size as u64) as usize,
                        skip: (hashkey(ep, SEED_SKIP, 0) % (size as u64 - 1) + 1) as usize,
                        turns: match (w / g) >> shift {
                            0 => u32::from(w != 0),
                            t => t,
                        },
                    })
                    .collect()
            }
        };
        MaglevTable {
            lookup: populate(size, &setups).into_boxed_slice(),
            servers,
        }
    }

    /// A table for `reals` with their current weights.
    pub fn for_reals(reals: &[RealServer]) -> Self {
        let servers: Vec<Member> = reals.iter().map(|r| (r.addr, r.weight)).collect();
        Self::build(&servers, MH_TABLE_SIZE)
    }

    /// The (server, weight) list it was built from, canonical.
    pub fn servers(&self) -> &[Member] {
        &self.servers
    }

    pub fn size(&self) -> usize {
        self.lookup.len()
    }

    /// The member at entry `i`.
    #[inline]
    pub fn entry(&self, i: usize) -> Option<usize> {
        let d = self.lookup[i];
        (d != NONE).then_some(usize::from(d))
    }

    /// The entry a client maps to (probe `offset` 0 is the first choice).
    #[inline]
    pub fn slot(&self, client: Endpoint, offset: u64) -> usize {
        (hashkey(client, SEED_OFFSET ^ SEED_SKIP, offset) % self.lookup.len() as u64) as usize
    }
}

/// `ip_vs_mh_populate`: servers in turn, each taking `turns` entries per round, every entry
/// the next free one of its permutation `offset + j × skip (mod size)`.
pub fn populate(size: usize, setups: &[Setup]) -> Vec<u16> {
    let mut table = vec![NONE; size];
    if size == 0 || setups.iter().all(|s| s.turns == 0) {
        return table;
    }
    let mut perm: Vec<usize> = setups.iter().map(|s| s.offset % size).collect();
    let mut filled = 0;
    loop {
        for (d, s) in setups.iter().enumerate() {
            for _ in 0..s.turns {
                let mut c = perm[d];
                while table[c] != NONE {
                    perm[d] = (perm[d] + s.skip) % size;
                    c = perm[d];
                }
                table[c] = d as u16;
                filled += 1;
                if filled == size {
                    return table;
                }
            }
        }
    }
}

/// A worker's view: the shared table, where its members are in the service's list, and the
/// service's flags.
#[derive(Debug, Clone)]
pub struct Maglev {
    table: Arc<MaglevTable>,
    /// Member -> index in the real servers (or GONE).
    map: Box<[u16]>,
    flags: SchedFlags,
}

impl Maglev {
    pub fn flags(&self) -> SchedFlags {
        self.flags
    }

    pub fn new(table: Arc<MaglevTable>, reals: &[RealServer], flags: SchedFlags) -> Self {
        let map = member_map(table.servers(), reals);
        Maglev { table, map, flags }
    }

    /// The real server (index) of member `m`, if it is among them.
    #[inline]
    fn real(&self, m: usize, c: &Candidates<'_>) -> Option<usize> {
        let r = usize::from(*self.map.get(m)?);
        (self.map[m] != GONE && r < c.reals.len()).then_some(r)
    }
}

impl Scheduler for Maglev {
    #[inline]
    fn pick(&mut self, c: &Candidates<'_>) -> Option<usize> {
        let client = Endpoint::new(c.src.addr, if self.flags.port { c.src.port } else { 0 });
        let ihash = self.table.slot(client, 0);
        let m = self.table.entry(ihash)?;
        match self.real(m, c) {
            Some(r) if c.usable(r) => return Some(r),
            // Quiesced or overloaded: IPVS drops the flow unless mh-fallback.
            Some(_) if !self.flags.fallback => return None,
            // Failed its checks (not among the real servers): its flows always go on.
            _ => {}
        }
        let size = self.table.size() as u64;
        for offset in 0..size {
            let roffset = (offset + ihash as u64) % size;
            let m = self.table.entry(self.table.slot(client, roffset))?;
            if let Some(r) = self.real(m, c).filter(|&r| c.usable(r)) {
                return Some(r);
            }
        }
        None
    }

    /// The engine gives a changed service a new `Maglev` with the snapshot's table.
    fn update(&mut self, _old: &[RealServer], _new: &[RealServer]) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testing::Fixture;

    /// The Maglev paper's example (table 1), by hand: size 7; B0 offset 3 skip 4
    /// (3 0 4 1 5 2 6), B1 offset 0 skip 2 (0 2 4 6 1 3 5), B2 offset 3 skip 1
    /// (3 4 5 6 0 1 2). Rounds: B0 3, B1 0, B2 4 (3 taken); B0 1, B1 2, B2 5; B0 6.
    #[test]
    fn paper_example() {
        let s = |offset, skip| Setup {
            offset,
            skip,
            turns: 1,
        };
        let t = populate(7, &[s(3, 4), s(0, 2), s(3, 1)]);
        assert_eq!(t, vec![1, 0, 1, 0, 2, 2, 0]);
    }

    /// IPVS's turns: a server of weight 2 takes two consecutive entries of its
    /// permutation per round. B0 (turns 2) 3, 0; B1 2 (0 taken); B0 4, 1; B1 6; B0 5.
    #[test]
    fn turns_follow_weight() {
        let t = populate(
            7,
            &[
                Setup {
                    offset: 3,
                    skip: 4,
                    turns: 2,
                },
                Setup {
                    offset: 0,
                    skip: 2,
                    turns: 1,
                },
            ],
        );
        assert_eq!(t, vec![0, 0, 1, 0, 0, 0, 1]);
    }

    #[test]
    fn no_weight_no_table() {
        let f = Fixture::new(&[0, 0]);
        let t = MaglevTable::for_reals(&f.reals);
        assert_eq!(t.entry(0), None);
    }

    fn flows(n: usize) -> impl Iterator<Item = Endpoint> {
        // A fixed xorshift sequence: the same "random" clients every run.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        (0..n).map(move |_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Endpoint::new(Ipv4Addr::from((x >> 16) as u32), 0)
        })
    }
    use std::net::Ipv4Addr;

    fn servers(n: usize, weight: impl Fn(usize) -> u32) -> Vec<(Endpoint, u32)> {
        (0..n)
            .map(|i| {
                (
                    Endpoint::new(
                        Ipv4Addr::new(203, 0, 113 + (i / 250) as u8, (i % 250) as u8 + 1),
                        80,
                    ),
                    weight(i),
                )
            })
            .collect()
    }

    /// 100 servers, 1M random flows: removing one server moves at most 1.2% of the flows
    /// that were not on it (measured figures printed), and each server's share of entries is
    /// within 1% of its weight share; of flows, within 5 standard deviations.
    #[test]
    fn remap_and_distribution_100_servers_1m_flows() {
        let all = servers(100, |_| 1);
        let before = MaglevTable::build(&all, MH_TABLE_SIZE);
        let removed = 37;
        let mut rest = all.clone();
        rest.remove(removed);
        let after = MaglevTable::build(&rest, MH_TABLE_SIZE);
        let (mut moved, mut kept_total) = (0u64, 0u64);
        let mut per_server = [0u64; 100];
        const N: usize = 1_000_000;
        for client in flows(N) {
            let slot = before.slot(client, 0);
            let a = before.entry(slot).unwrap();
            per_server[a] += 1;
            if a == removed {
                continue;
            }
            kept_total += 1;
            let b = after.entry(after.slot(client, 0)).unwrap();
            // Indices after the removed one shift down by one.
            let b_in_old = if b >= removed { b + 1 } else { b };
            if b_in_old != a {
                moved += 1;
            }
        }
        let remap = moved as f64 / kept_total as f64;
        println!(
            "mh: 100 servers, 1M flows, one removed: {moved} of {kept_total} others moved ({:.3}%)",
            remap * 100.0
        );
        assert!(remap <= 0.012, "remapped {:.3}%", remap * 100.0);

        let mut entries = [0u64; 100];
        for i in 0..before.size() {
            entries[before.entry(i).unwrap()] += 1;
        }
        let share = MH_TABLE_SIZE as f64 / 100.0;
        let worst_entries = entries
            .iter()
            .map(|&e| (e as f64 - share).abs() / share)
            .fold(0.0, f64::max);
        let expect = N as f64 / 100.0;
        let sigma = (expect * 0.99).sqrt();
        let worst_flows = per_server
            .iter()
            .map(|&c| (c as f64 - expect).abs())
            .fold(0.0, f64::max);
        println!(
            "mh: entries per server within {:.3}% of the share; flows within {:.2}% ({:.1} sigma)",
            worst_entries * 100.0,
            worst_flows / expect * 100.0,
            worst_flows / sigma
        );
        assert!(worst_entries <= 0.01);
        assert!(worst_flows <= 5.0 * sigma);
    }

    /// Weights 1..=4 over 100 servers: entries in proportion within 1%.
    #[test]
    fn weighted_shares() {
        let all = servers(100, |i| 1 + (i % 4) as u32);
        let t = MaglevTable::build(&all, MH_TABLE_SIZE);
        let mut entries = [0u64; 100];
        for i in 0..t.size() {
            entries[t.entry(i).unwrap()] += 1;
        }
        let total_weight: u32 = all.iter().map(|s| s.1).sum();
        for (i, &(_, w)) in all.iter().enumerate() {
            let share = MH_TABLE_SIZE as f64 * f64::from(w) / f64::from(total_weight);
            assert!(
                ((entries[i] as f64) - share).abs() / share <= 0.01,
                "server {i}: {} vs {share:.1}",
                entries[i]
            );
        }
    }

    /// Quiesced (weight 0, same table): no flow moves but the quiesced server's; those are
    /// dropped, or with mh-fallback sent elsewhere.
    #[test]
    fn quiesce_and_fallback() {
        let mut f = Fixture::new(&[1, 1, 1]);
        let table = Arc::new(MaglevTable::for_reals(&f.reals));
        let mut plain = Maglev::new(table.clone(), &f.reals, SchedFlags::default());
        let mut fb = Maglev::new(
            table,
            &f.reals,
            SchedFlags {
                port: false,
                fallback: true,
            },
        );
        let clients: Vec<Endpoint> = flows(3000).collect();
        let before: Vec<Option<usize>> = clients
            .iter()
            .map(|c| {
                f.src = *c;
                plain.pick(&f.candidates())
            })
            .collect();
        f.reals[1].weight = 0;
        for (c, b) in clients.iter().zip(&before) {
            f.src = *c;
            let p = plain.pick(&f.candidates());
            let q = fb.pick(&f.candidates());
            if *b == Some(1) {
                assert_eq!(p, None);
                assert!(matches!(q, Some(0) | Some(2)));
            } else {
                assert_eq!(p, *b);
                assert_eq!(q, *b);
            }
        }
    }
}
