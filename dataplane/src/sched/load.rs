//! One worker's load on each real server: IPVS's `activeconns`, `inactconns`,
//! `persistconns` and overload flag, kept per worker (share nothing) in a slab that outlives
//! snapshots, so a connection still finds its server's counters after a reload renumbered or
//! removed it.
//!
//! IPVS rules (`ip_vs_bind_dest`, `ip_vs_unbind_dest`, `set_tcp_state`): a new connection
//! counts as inactive; a TCP connection is active while ESTABLISHED (UDP never is); binding a
//! connection sets the overload flag once active + inactive reaches the upper threshold;
//! unbinding clears it below the lower threshold, or below 3/4 of the upper one when there is
//! no lower threshold.

use hashbrown::HashMap;

use crate::flow::Endpoint;

/// "No server": a dest id or index that refers to nothing.
pub const NO_DEST: u32 = u32::MAX;

/// This worker's load on one real server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DestLoad {
    pub active: u32,
    pub inactive: u32,
    /// Persistence templates pointing at the server.
    pub persistent: u32,
    pub overloaded: bool,
    /// This worker's share of the server's upper and lower connection thresholds (0: none).
    pub upper: u32,
    pub lower: u32,
}

impl DestLoad {
    /// IPVS's `ip_vs_dest_conn_overhead`.
    #[inline]
    pub fn overhead(&self) -> u64 {
        (u64::from(self.active) << 8) + u64::from(self.inactive)
    }

    #[inline]
    pub fn total(&self) -> u32 {
        self.active.saturating_add(self.inactive)
    }

    /// A connection starts using the server.
    #[inline]
    pub fn bind(&mut self, active: bool) {
        if active {
            self.active += 1;
        } else {
            self.inactive += 1;
        }
        if self.upper != 0 && self.total() >= self.upper {
            self.overloaded = true;
        }
    }

    /// A connection to the server ended.
    #[inline]
    pub fn unbind(&mut self, active: bool) {
        if active {
            self.active = self.active.saturating_sub(1);
        } else {
            self.inactive = self.inactive.saturating_sub(1);
        }
        let total = u64::from(self.total());
        if self.lower != 0 {
            if total < u64::from(self.lower) {
                self.overloaded = false;
            }
        } else if self.upper != 0 {
            if total * 4 < u64::from(self.upper) * 3 {
                self.overloaded = false;
            }
        } else {
            self.overloaded = false;
        }
    }

    /// A TCP connection entered (`true`) or left ESTABLISHED.
    #[inline]
    pub fn set_active(&mut self, active: bool) {
        if active {
            self.inactive = self.inactive.saturating_sub(1);
            self.active += 1;
        } else {
            self.active = self.active.saturating_sub(1);
            self.inactive += 1;
        }
    }

    /// New thresholds from a reload. As `__ip_vs_update_dest`: removing the upper threshold
    /// or raising it clears the overload flag; the next connection re-evaluates it.
    pub fn set_thresholds(&mut self, upper: u32, lower: u32) {
        if upper == 0 || upper > self.upper {
            self.overloaded = false;
        }
        self.upper = upper;
        self.lower = lower;
    }
}

/// Worker `worker`'s share of a threshold over `workers` workers: the shares add up to the
/// threshold (each worker counts only its own connections). A threshold below the number of
/// workers still lets each worker have one connection; 0 stays "no threshold".
pub fn share_of(threshold: u32, workers: usize, worker: usize) -> u32 {
    if threshold == 0 {
        return 0;
    }
    let workers = workers.max(1) as u32;
    let worker = worker as u32 % workers;
    let share = threshold / workers + u32::from(worker < threshold % workers);
    share.max(1)
}

/// The loads a scheduler sees for one service: `get(i)` is real server `i`'s.
#[derive(Clone, Copy)]
pub struct Loads<'a> {
    table: &'a [DestLoad],
    ids: &'a [u32],
}

impl<'a> Loads<'a> {
    /// `ids[i]` is the slot of real server `i` in `table`.
    pub fn new(table: &'a [DestLoad], ids: &'a [u32]) -> Self {
        Loads { table, ids }
    }

    #[inline]
    pub fn get(&self, i: usize) -> &'a DestLoad {
        &self.table[self.ids[i] as usize]
    }
}

/// IPVS's per-destination totals (`ip_vs_kstats`) as one worker counts them: connections
/// scheduled to the server, and packets and bytes (IP length) both ways.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DestStats {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
}

/// One configured server's slot as the control thread reads it (`rvsadm -L`, metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DestExport {
    pub key: DestKey,
    pub load: DestLoad,
    pub stats: DestStats,
}

/// (protocol, VIP, real server): what identifies a server's counters across reloads.
pub type DestKey = (u8, Endpoint, Endpoint);

#[derive(Debug, Clone, Copy)]
struct Entry {
    key: Option<DestKey>,
    /// Connections and templates using the slot.
    refs: u32,
    /// Position in its service's real servers in the current snapshot, `NO_DEST` if the
    /// server is no longer configured.
    index: u32,
}

/// One worker's [`DestLoad`]s. Slots are created when a snapshot brings a server and freed
/// once the server is gone from the configuration and no connection or template uses it.
/// Only snapshot changes allocate; binding and unbinding never do.
#[derive(Debug, Default)]
pub struct DestTable {
    loads: Vec<DestLoad>,
    /// Indexed like `loads`; a slot's totals start at zero when a server takes it.
    stats: Vec<DestStats>,
    entries: Vec<Entry>,
    index: HashMap<DestKey, u32>,
    free: Vec<u32>,
}

impl DestTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// All slots (indexed by dest id).
    #[inline]
    pub fn loads(&self) -> &[DestLoad] {
        &self.loads
    }

    #[inline]
    pub fn load(&self, id: u32) -> &DestLoad {
        &self.loads[id as usize]
    }

    /// The server a slot counts for, if the slot is in use.
    pub fn key(&self, id: u32) -> Option<DestKey> {
        self.entries.get(id as usize).and_then(|e| e.key)
    }

    /// Live slots (tests, diagnostics).
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The slot's server position in its service in the current snapshot, if configured.
    #[inline]
    pub fn current_index(&self, id: u32) -> Option<usize> {
        let e = self.entries.get(id as usize)?;
        (e.key.is_some() && e.index != NO_DEST).then_some(e.index as usize)
    }

    /// Starts applying a snapshot: every server counts as unconfigured until `attach`ed.
    pub fn begin_sync(&mut self) {
        for e in &mut self.entries {
            e.index = NO_DEST;
        }
    }

    /// The slot of `key`, configured at `index` in its service with these threshold shares.
    pub fn attach(&mut self, key: DestKey, index: usize, upper: u32, lower: u32) -> u32 {
        let id = match self.index.get(&key) {
            Some(&id) => id,
            None => {
                let id = match self.free.pop() {
                    Some(id) => id,
                    None => {
                        self.loads.push(DestLoad::default());
                        self.stats.push(DestStats::default());
                        self.entries.push(Entry {
                            key: None,
                            refs: 0,
                            index: NO_DEST,
                        });
                        (self.entries.len() - 1) as u32
                    }
                };
                self.loads[id as usize] = DestLoad::default();
                self.stats[id as usize] = DestStats::default();
                self.entries[id as usize] = Entry {
                    key: Some(key),
                    refs: 0,
                    index: NO_DEST,
                };
                self.index.insert(key, id);
                id
            }
        };
        self.entries[id as usize].index = index as u32;
        let load = &mut self.loads[id as usize];
        if (load.upper, load.lower) != (upper, lower) {
            load.set_thresholds(upper, lower);
        }
        id
    }

    /// Ends a snapshot: frees unconfigured slots nobody uses; makes room so that freeing a
    /// slot later (on the per-packet path) never allocates.
    pub fn end_sync(&mut self) {
        for id in 0..self.entries.len() as u32 {
            self.free_if_unused(id);
        }
        let room = self.entries.len() - self.free.len();
        self.free.reserve(room);
    }

    /// A connection starts using slot `id`.
    #[inline]
    pub fn bind(&mut self, id: u32, active: bool) {
        self.entries[id as usize].refs += 1;
        self.loads[id as usize].bind(active);
    }

    /// A packet of one of slot `id`'s connections, from the client (`original`) or the
    /// server, `bytes` long (its IP length).
    #[inline]
    pub fn count(&mut self, id: u32, original: bool, bytes: u64) {
        let s = &mut self.stats[id as usize];
        if original {
            s.inpkts += 1;
            s.inbytes += bytes;
        } else {
            s.outpkts += 1;
            s.outbytes += bytes;
        }
    }

    /// A new connection to slot `id`'s server, with its first packet.
    #[inline]
    pub fn count_new(&mut self, id: u32, bytes: u64) {
        self.stats[id as usize].conns += 1;
        self.count(id, true, bytes);
    }

    /// `ipvsadm -Z`: the totals of the servers of services that `which` selects (by protocol
    /// and VIP) start again from zero.
    pub fn zero(&mut self, which: impl Fn(u8, Endpoint) -> bool) {
        for (e, s) in self.entries.iter().zip(&mut self.stats) {
            if let Some((protocol, vip, _)) = e.key {
                if which(protocol, vip) {
                    *s = DestStats::default();
                }
            }
        }
    }

    /// The configured servers' loads and totals (not the per-packet path: it walks the slab
    /// and allocates).
    pub fn export(&self) -> Vec<DestExport> {
        self.entries
            .iter()
            .zip(self.loads.iter().zip(&self.stats))
            .filter(|(e, _)| e.index != NO_DEST)
            .filter_map(|(e, (load, stats))| {
                e.key.map(|key| DestExport {
                    key,
                    load: *load,
                    stats: *stats,
                })
            })
            .collect()
    }

    /// A connection that used slot `id` ended.
    #[inline]
    pub fn unbind(&mut self, id: u32, active: bool) {
        self.loads[id as usize].unbind(active);
        self.release(id);
    }

    #[inline]
    pub fn set_active(&mut self, id: u32, active: bool) {
        self.loads[id as usize].set_active(active);
    }

    /// A persistence template points at slot `id`.
    #[inline]
    pub fn hold_template(&mut self, id: u32) {
        self.entries[id as usize].refs += 1;
        self.loads[id as usize].persistent += 1;
    }

    #[inline]
    pub fn release_template(&mut self, id: u32) {
        let load = &mut self.loads[id as usize];
        load.persistent = load.persistent.saturating_sub(1);
        self.release(id);
    }

    #[inline]
    fn release(&mut self, id: u32) {
        let e = &mut self.entries[id as usize];
        e.refs = e.refs.saturating_sub(1);
        self.free_if_unused(id);
    }

    #[inline]
    fn free_if_unused(&mut self, id: u32) {
        let e = &mut self.entries[id as usize];
        if e.refs == 0 && e.index == NO_DEST {
            if let Some(key) = e.key.take() {
                self.index.remove(&key);
                self.free.push(id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ipvsadm -x 4 -y 2`: overloaded from the 4th connection, back below 2.
    #[test]
    fn thresholds_upper_and_lower() {
        let mut l = DestLoad {
            upper: 4,
            lower: 2,
            ..DestLoad::default()
        };
        for _ in 0..3 {
            l.bind(false);
        }
        assert!(!l.overloaded);
        l.bind(true);
        assert!(l.overloaded, "4 >= upper 4");
        l.unbind(false);
        l.unbind(false);
        assert!(l.overloaded, "2 is not below lower 2");
        l.unbind(false);
        assert!(!l.overloaded, "1 < 2");
    }

    /// Without a lower threshold the flag clears below 3/4 of the upper one.
    #[test]
    fn threshold_upper_only_clears_at_three_quarters() {
        let mut l = DestLoad {
            upper: 8,
            ..DestLoad::default()
        };
        for _ in 0..8 {
            l.bind(false);
        }
        assert!(l.overloaded);
        l.unbind(false);
        l.unbind(false);
        assert!(l.overloaded, "6*4 = 24 is not < 8*3 = 24");
        l.unbind(false);
        assert!(!l.overloaded, "5*4 < 24");
    }

    #[test]
    fn active_moves_between_counts() {
        let mut l = DestLoad::default();
        l.bind(false);
        l.set_active(true);
        assert_eq!((l.active, l.inactive, l.overhead()), (1, 0, 256));
        l.set_active(false);
        l.unbind(false);
        assert_eq!((l.active, l.inactive), (0, 0));
    }

    #[test]
    fn threshold_shares_add_up() {
        for (t, w) in [(10u32, 3usize), (100, 2), (7, 7), (9, 4)] {
            let sum: u32 = (0..w).map(|i| share_of(t, w, i)).sum();
            assert_eq!(sum, t, "{t} over {w}");
        }
        assert_eq!(share_of(0, 4, 1), 0);
        assert_eq!(share_of(1, 2, 1), 1, "never 0 (which would mean none)");
    }

    #[test]
    fn slots_outlive_reconfiguration_while_used() {
        let ep = |d: u8| Endpoint::new([203, 0, 113, d].into(), 80);
        let vip = Endpoint::new([198, 51, 100, 100].into(), 80);
        let mut t = DestTable::new();
        t.begin_sync();
        let a = t.attach((6, vip, ep(11)), 0, 0, 0);
        let b = t.attach((6, vip, ep(12)), 1, 0, 0);
        t.end_sync();
        t.bind(a, false);
        // Reload without server a: its slot stays while its connection lives.
        t.begin_sync();
        assert_eq!(t.attach((6, vip, ep(12)), 0, 0, 0), b);
        t.end_sync();
        assert_eq!(t.current_index(a), None);
        assert_eq!(t.current_index(b), Some(0));
        assert_eq!(t.len(), 2);
        t.unbind(a, false);
        assert_eq!(t.len(), 1);
        // The freed slot is reused, with fresh counters.
        t.begin_sync();
        let c = t.attach((6, vip, ep(13)), 1, 0, 0);
        t.attach((6, vip, ep(12)), 0, 0, 0);
        t.end_sync();
        assert_eq!(c, a);
        assert_eq!(*t.load(c), DestLoad::default());
    }
}
