//! The connection table: a slab of connection slots, a hash index from each direction's flow
//! key to its slot (`index.rs`: cache-line buckets, prefetchable from the hash), and the timer
//! wheel threaded through the slab.
//!
//! Everything is allocated in [`ConnTable::new`]; afterwards no operation allocates. The index
//! has room for two keys per slot and no tombstones, so it never grows or rebuilds.

use std::mem::size_of;
use std::net::Ipv4Addr;

use super::index::{Entry, FlowIndex};
use super::tcp_state::{next_state, Side};
use super::timer::{self, Link, Linked, Wheel, NIL};
use super::{Conn, ConnId, Direction, FlowKey, ForwardMode, InsertError, TcpState, Timeouts};
use crate::flow::Endpoint;

const TCP: u8 = 6;

/// One connection's storage. `generation` is odd while the slot holds a connection and is
/// bumped on every insert and every free, so a `ConnId` from an earlier life never matches.
/// In this order (`repr(C)`, 44 + 16 + 4 + 8 + 8 = 80 bytes, no padding): a slot spans two
/// cache lines, and the burst prefetches both ends.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
struct Slot {
    conn: Conn,
    /// What the engine's fast path precomputed for this connection ([`FastState`]).
    fast: FastState,
    generation: u32,
    /// Milliseconds; the slot is in a wheel bucket at or before this deadline's tick.
    expires_ms: u64,
    link: Link,
}

/// What the engine's established fast path precomputed for a connection, per direction: the
/// full path writes it after it forwarded a packet of that direction under a snapshot (every
/// check that depends on the snapshot, the ingress port or the direction's addresses passed),
/// and the fast path uses it only under that same snapshot generation and ingress port.
/// 16 bytes; the table keeps it beside the connection, never copies it out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FastState {
    /// Low 32 bits of the snapshot generation it was written under.
    pub generation: u32,
    /// Bit `d` (0 original, 1 reply): direction `d` is ready; bit `2 + d`: its L4 checksum
    /// changes (`l4_delta` applies).
    pub flags: u8,
    /// The ingress port each direction was checked on.
    pub in_port: [u8; 2],
    /// One's-complement sums (folded, RFC 1624's `~m + m'` over every word the rewrite
    /// changes) to add to the IPv4 header checksum (TTL included) and the L4 checksum.
    pub ip_delta: [u16; 2],
    pub l4_delta: [u16; 2],
}

impl FastState {
    pub const fn ready_bit(direction: Direction) -> u8 {
        match direction {
            Direction::Original => 1,
            Direction::Reply => 2,
        }
    }

    pub const fn l4_bit(direction: Direction) -> u8 {
        Self::ready_bit(direction) << 2
    }
}

impl Slot {
    #[inline]
    fn is_live(&self) -> bool {
        self.generation & 1 == 1
    }
}

impl Linked for Slot {
    #[inline]
    fn link(&self) -> &Link {
        &self.link
    }
    #[inline]
    fn link_mut(&mut self) -> &mut Link {
        &mut self.link
    }
}

const UNSPECIFIED: Endpoint = Endpoint::new(Ipv4Addr::UNSPECIFIED, 0);

const VACANT: Conn = Conn {
    protocol: 0,
    client: UNSPECIFIED,
    vip: UNSPECIFIED,
    local: UNSPECIFIED,
    real: UNSPECIFIED,
    mode: ForwardMode::Nat,
    dest: 0,
    template: super::NO_TEMPLATE,
    client_port: 0,
    client_mac: [0; 6],
    state: TcpState::None,
    in_pkts: 0,
    synced: false,
};

#[inline]
fn original_key(conn: &Conn) -> FlowKey {
    FlowKey::new(conn.protocol, conn.client, conn.vip)
}

/// The key a connection is indexed under for `direction`.
#[cfg(test)]
fn key_of(conn: &Conn, direction: Direction) -> Option<FlowKey> {
    match direction {
        Direction::Original => Some(original_key(conn)),
        Direction::Reply => reply_key(conn),
    }
}

#[inline]
fn entry(slot: u32, direction: Direction) -> Entry {
    Entry { slot, direction }
}

/// The key replies arrive under, if they pass through rvs at all.
#[inline]
fn reply_key(conn: &Conn) -> Option<FlowKey> {
    conn.mode
        .sees_replies()
        .then(|| FlowKey::new(conn.protocol, conn.real, conn.local))
}

/// The TCP connections in the order they were created, so that a full table can give the
/// slot of the oldest embryonic one (a SYN that never saw the client's ACK) to a new SYN. A
/// ring of handles; an entry whose connection got established or went away is stale and is
/// skipped when it comes to the front. When the ring is full, the oldest entry makes room
/// (it is `capacity` creations old).
#[derive(Debug)]
struct Embryos {
    ids: Box<[ConnId]>,
    head: usize,
    len: usize,
}

impl Embryos {
    fn new(capacity: usize) -> Self {
        Embryos {
            ids: vec![
                ConnId {
                    index: NIL,
                    generation: 0
                };
                capacity
            ]
            .into_boxed_slice(),
            head: 0,
            len: 0,
        }
    }

    #[inline]
    fn push(&mut self, id: ConnId) {
        let capacity = self.ids.len();
        if capacity == 0 {
            return;
        }
        if self.len == capacity {
            self.pop();
        }
        let mut at = self.head + self.len;
        if at >= capacity {
            at -= capacity;
        }
        self.ids[at] = id;
        self.len += 1;
    }

    #[inline]
    fn pop(&mut self) -> Option<ConnId> {
        if self.len == 0 {
            return None;
        }
        let id = self.ids[self.head];
        self.head += 1;
        if self.head == self.ids.len() {
            self.head = 0;
        }
        self.len -= 1;
        Some(id)
    }
}

/// Entries of the embryonic ring looked at, at most, per eviction: a bounded cost per SYN. The
/// stale entries a look skips are gone for good, so over a flood each entry is looked at once.
const EVICTION_LOOKS: usize = 64;

/// One worker's connections. See the module docs for the layout.
#[derive(Debug)]
pub struct ConnTable {
    slots: Vec<Slot>,
    /// Head of the free slots, chained through `link.next`.
    free: u32,
    len: usize,
    index: FlowIndex,
    wheel: Wheel,
    timeouts: Timeouts,
    embryos: Embryos,
    /// Above this many connections the table is under pressure: a connection entering
    /// SYN_RECV gets [`SYN_RECV_UNDER_PRESSURE_S`] instead of its usual timeout.
    high_water: usize,
    /// Embryonic connections evicted for new SYNs since the start.
    evictions: u64,
}

/// SYN_RECV timeout while the table is above its high-water mark (3/4 full), in seconds: a
/// handshake takes a round trip, not IPVS's 60 s; as IPVS's `secure_tcp` defence, the
/// half-open connections of a flood leave the table sooner.
pub const SYN_RECV_UNDER_PRESSURE_S: u32 = 5;

impl ConnTable {
    /// The largest capacity a table accepts.
    pub const MAX_CAPACITY: usize = timer::MAX_ENTRIES;

    /// Preallocates everything for `capacity` connections (both directions' index included).
    ///
    /// # Panics
    /// If `capacity` exceeds [`ConnTable::MAX_CAPACITY`] (a configuration error, checked once
    /// at start-up).
    pub fn new(capacity: usize, timeouts: Timeouts) -> Self {
        assert!(
            capacity <= Self::MAX_CAPACITY,
            "connection table capacity {capacity} exceeds {}",
            Self::MAX_CAPACITY
        );
        let slots = (0..capacity)
            .map(|i| Slot {
                conn: VACANT,
                fast: FastState::default(),
                expires_ms: 0,
                link: Link {
                    next: if i + 1 < capacity { i as u32 + 1 } else { NIL },
                    prev: NIL,
                },
                generation: 0,
            })
            .collect();
        ConnTable {
            slots,
            free: if capacity > 0 { 0 } else { NIL },
            len: 0,
            index: FlowIndex::new(2 * capacity),
            wheel: Wheel::new(),
            timeouts,
            embryos: Embryos::new(capacity),
            high_water: capacity - capacity / 4,
            evictions: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// Applies to timers set from now on: a connection keeps its deadline until its next
    /// packet.
    pub fn set_timeouts(&mut self, t: Timeouts) {
        self.timeouts = t;
    }

    /// The connection a packet belongs to, and which direction it travels.
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Option<(ConnId, Direction)> {
        let entry = self.find(self.index.hash(key), key)?;
        Some((
            ConnId {
                index: entry.slot,
                generation: self.slots[entry.slot as usize].generation,
            },
            entry.direction,
        ))
    }

    /// The hash the index files `key` under (seeded per table: flow keys come from the
    /// network). The fast path computes it once per packet and passes it on.
    #[inline]
    pub fn hash(&self, key: &FlowKey) -> u64 {
        self.index.hash(key)
    }

    /// [`lookup`](Self::lookup) with the key's [`hash`](Self::hash) already computed: the
    /// slot index and the direction, nothing copied.
    #[inline]
    pub fn find_hashed(&self, hash: u64, key: &FlowKey) -> Option<(u32, Direction)> {
        self.find(hash, key).map(|e| (e.slot, e.direction))
    }

    /// The live connection at slot `index` (from [`find_hashed`](Self::find_hashed)), its
    /// fast-path state and deadline, by reference.
    #[inline]
    pub fn at(&self, index: u32) -> (&Conn, &FastState, u64) {
        let slot = &self.slots[index as usize];
        (&slot.conn, &slot.fast, slot.expires_ms)
    }

    /// The handle of the live connection at slot `index`.
    #[inline]
    pub fn id_at(&self, index: u32) -> ConnId {
        ConnId {
            index,
            generation: self.slots[index as usize].generation,
        }
    }

    /// The fast path's refresh of a connection whose state does not change: a deadline no
    /// sooner than the one it has (checked by the caller) is only written down; the wheel
    /// finds it when it reaches the old one.
    #[inline]
    pub fn extend(&mut self, index: u32, expires_ms: u64) {
        let slot = &mut self.slots[index as usize];
        debug_assert!(slot.is_live() && expires_ms >= slot.expires_ms);
        slot.expires_ms = expires_ms;
    }

    /// Whether `id`'s connection has its fast-path rewrite for `direction` from ingress port
    /// `in_port` under snapshot generation `generation` (low 32 bits).
    #[inline]
    pub fn fast_ready(
        &self,
        id: ConnId,
        direction: Direction,
        generation: u32,
        in_port: usize,
    ) -> bool {
        self.slot(id).is_some_and(|slot| {
            let f = &slot.fast;
            f.generation == generation
                && f.flags & FastState::ready_bit(direction) != 0
                && usize::from(f.in_port[direction as usize]) == in_port
        })
    }

    /// The fast-path state of `id`'s connection, to write (`None` if it is gone).
    #[inline]
    pub fn fast_mut(&mut self, id: ConnId) -> Option<&mut FastState> {
        self.slot(id)?;
        Some(&mut self.slots[id.index as usize].fast)
    }

    /// The index entry of `key` (whose hash is `hash`), confirmed against the slot.
    #[inline]
    fn find(&self, hash: u64, key: &FlowKey) -> Option<Entry> {
        self.index.find(hash, |entry| {
            self.slots.get(entry.slot as usize).is_some_and(|slot| {
                let c = &slot.conn;
                c.protocol == key.protocol
                    && match entry.direction {
                        Direction::Original => c.client == key.src && c.vip == key.dst,
                        Direction::Reply => {
                            c.real == key.src && c.local == key.dst && c.mode.sees_replies()
                        }
                    }
            })
        })
    }

    /// First half of a burst's prefetch: hashes `key` and starts loading its index bucket
    /// (no memory read yet). Returns the hash for [`prefetch_slot`](Self::prefetch_slot).
    #[inline]
    pub fn prefetch_bucket(&self, key: &FlowKey) -> u64 {
        let hash = self.index.hash(key);
        self.index.prefetch(hash);
        hash
    }

    /// [`prefetch_bucket`](Self::prefetch_bucket) for a key already hashed.
    #[inline]
    pub fn prefetch_hashed(&self, hash: u64) {
        self.index.prefetch(hash);
    }

    /// Second half, once every bucket of the burst is on its way: reads the bucket and starts
    /// loading the slot its tag points at.
    #[inline]
    pub fn prefetch_slot(&self, hash: u64) {
        if let Some(slot) = self
            .index
            .candidate(hash)
            .and_then(|entry| self.slots.get(entry.slot as usize))
        {
            // 80 bytes: the first and the last field lie on the slot's two cache lines.
            crate::prefetch::prefetch(&slot.conn);
            crate::prefetch::prefetch(&slot.link);
        }
    }

    /// `None` if `id`'s connection is gone.
    #[inline]
    pub fn get(&self, id: ConnId) -> Option<&Conn> {
        self.slot(id).map(|slot| &slot.conn)
    }

    /// When `id` expires if no packet refreshes it (milliseconds, the `now_ms` clock).
    pub fn expires_at(&self, id: ConnId) -> Option<u64> {
        self.slot(id).map(|slot| slot.expires_ms)
    }

    /// Inserts a new connection, indexed under its original key (protocol, client, vip) and,
    /// if `conn.mode.sees_replies()`, its reply key (protocol, real, local).
    ///
    /// TCP starts in `conn.state` with that state's timeout: the engine passes
    /// `TcpState::None` and then calls [`update`](Self::update) with the first segment's
    /// flags (a SYN moves NONE to SYN_RECV). Any other protocol is handled like UDP: its state
    /// is set to `Established` and its timeout is the UDP one.
    ///
    /// `Err(Full)` at capacity; `Err(Exists)` if either key is taken (or both keys are the
    /// same, which only a client that is also its own real server could produce).
    pub fn insert(&mut self, mut conn: Conn, now_ms: u64) -> Result<ConnId, InsertError> {
        if self.free == NIL {
            return Err(InsertError::Full);
        }
        let original = original_key(&conn);
        let original_hash = self.index.hash(&original);
        let reply = reply_key(&conn).map(|key| (key, self.index.hash(&key)));
        let taken = |(key, hash): (FlowKey, u64)| self.find(hash, &key).is_some();
        if taken((original, original_hash))
            || reply.is_some_and(|reply| reply.0 == original || taken(reply))
        {
            return Err(InsertError::Exists);
        }
        if conn.protocol != TCP {
            conn.state = TcpState::Established;
        }
        if self.len == 0 {
            self.wheel.skip_to(timer::tick_of(now_ms));
        }

        let index = self.free;
        let expires_ms = now_ms.saturating_add(self.timeout_ms(&conn));
        let slot = &mut self.slots[index as usize];
        self.free = slot.link.next;
        slot.generation = slot.generation.wrapping_add(1);
        slot.conn = conn;
        slot.fast = FastState::default();
        slot.expires_ms = expires_ms;
        let generation = slot.generation;
        self.wheel.arm(&mut self.slots, index, expires_ms);
        // Two keys per slot fit by construction (`FlowIndex::new(2 * capacity)`).
        let placed = self
            .index
            .insert(original_hash, entry(index, Direction::Original));
        debug_assert!(placed);
        if let Some((_, hash)) = reply {
            let placed = self.index.insert(hash, entry(index, Direction::Reply));
            debug_assert!(placed);
        }
        self.len += 1;
        let id = ConnId { index, generation };
        if conn.protocol == TCP {
            self.embryos.push(id);
        }
        Ok(id)
    }

    /// Frees the slot of the oldest embryonic connection (TCP in SYN_RECV: the client's SYN
    /// was seen, its ACK never) for a new one, and returns it (its server's counters are the
    /// caller's). `None` if none is found among the next [`EVICTION_LOOKS`] entries of the
    /// creation order: an established connection is never evicted.
    pub fn evict_embryonic(&mut self) -> Option<Conn> {
        for _ in 0..EVICTION_LOOKS {
            let id = self.embryos.pop()?;
            if self
                .slot(id)
                .is_some_and(|slot| slot.conn.state == TcpState::SynRecv)
            {
                self.evictions += 1;
                return Some(self.release(id.index));
            }
        }
        None
    }

    /// Embryonic connections evicted for new SYNs since the table was made.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// A packet of `id` travelling `dir` with TCP flags `tcp_flags` (0 for UDP) at `now_ms`:
    /// IPVS state transition (TCP) and timeout refresh. Returns the new state.
    ///
    /// A later deadline is only written down (the wheel finds it when it reaches the old
    /// one); an earlier one (a FIN or RST shortening the timeout) moves the timer now.
    #[inline]
    pub fn update(
        &mut self,
        id: ConnId,
        dir: Direction,
        tcp_flags: u8,
        now_ms: u64,
    ) -> Option<TcpState> {
        self.slot(id)?;
        let timeouts = &self.timeouts;
        let slot = &mut self.slots[id.index as usize];
        let seconds = if slot.conn.protocol == TCP {
            let side = Side::of(dir, slot.conn.mode);
            slot.conn.state = next_state(slot.conn.state, side, tcp_flags);
            let seconds = timeouts.for_state(slot.conn.state);
            if slot.conn.state == TcpState::SynRecv && self.len > self.high_water {
                seconds.min(SYN_RECV_UNDER_PRESSURE_S)
            } else {
                seconds
            }
        } else {
            timeouts.udp
        };
        let state = slot.conn.state;
        let expires_ms = now_ms.saturating_add(u64::from(seconds) * timer::TICK_MS);
        let sooner = expires_ms < slot.expires_ms;
        slot.expires_ms = expires_ms;
        if sooner {
            self.wheel.rearm(&mut self.slots, id.index, expires_ms);
        }
        Some(state)
    }

    /// The live connection `id`, to change what is not its key (sync's packet count, a
    /// synced connection's client MAC).
    #[inline]
    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.slot(id)?;
        Some(&mut self.slots[id.index as usize].conn)
    }

    /// Sets the deadline of `id` (a synced connection takes the master's timeout).
    pub fn set_expiry(&mut self, id: ConnId, expires_ms: u64) {
        if self.slot(id).is_some() {
            self.slots[id.index as usize].expires_ms = expires_ms;
            self.wheel.rearm(&mut self.slots, id.index, expires_ms);
        }
    }

    /// Whether the reply key `key` is free (the FULLNAT local-port allocator asks this).
    #[inline]
    pub fn reply_key_free(&self, key: &FlowKey) -> bool {
        self.find(self.index.hash(key), key).is_none()
    }

    pub fn remove(&mut self, id: ConnId) -> Option<Conn> {
        self.slot(id)?;
        Some(self.release(id.index))
    }

    /// Expires connections whose timeout passed, visiting at most `budget` timer entries;
    /// amortised, never a full scan. Returns how many were removed. Call once per RX burst.
    ///
    /// The cursor walks tick by tick up to `now_ms`; an entry in a due bucket whose deadline
    /// has passed is removed, one refreshed since it was armed is re-armed at its deadline.
    /// A connection goes at the first call at or after its deadline rounded up to the next
    /// second (given enough budget). When the budget runs out the next call resumes there.
    pub fn expire(&mut self, now_ms: u64, budget: usize) -> usize {
        self.expire_with(now_ms, budget, |_| {})
    }

    /// [`expire`](Self::expire), calling `on_expire` with each connection removed.
    pub fn expire_with(
        &mut self,
        now_ms: u64,
        budget: usize,
        mut on_expire: impl FnMut(&Conn),
    ) -> usize {
        let Some(now_tick) = self.wheel.start_walk(now_ms, self.len == 0) else {
            return 0;
        };
        let (mut visited, mut removed) = (0, 0);
        while let Some(index) = self.wheel.next_due(now_tick) {
            if visited == budget {
                break;
            }
            visited += 1;
            let expires_ms = self.slots[index as usize].expires_ms;
            if expires_ms <= now_ms {
                let conn = self.release(index);
                on_expire(&conn);
                removed += 1;
            } else {
                // Due tick <= now_tick < tick_of(expires_ms): never back into this bucket.
                self.wheel.rearm(&mut self.slots, index, expires_ms);
            }
        }
        removed
    }

    /// Bytes of table memory per connection slot, from the table's own accounting: what the
    /// slab (80 bytes a slot, the fast path's 16 included), the index of both directions' keys
    /// (64-byte buckets of 8 entries, at most half used, a power of two of them: 32 bytes a
    /// slot at best, 64 just past a power of two) and the embryonic ring (8) allocated,
    /// divided by the capacity: 120 at best. The wheel's fixed 16 KiB is not counted.
    pub fn bytes_per_connection(&self) -> usize {
        let slab = self.slots.capacity() * size_of::<Slot>();
        let embryos = self.embryos.ids.len() * size_of::<ConnId>();
        (slab + self.index.allocation_size() + embryos).div_ceil(self.capacity().max(1))
    }

    /// Iterate live connections (control plane / rvsadm -c; not the fast path: it walks the
    /// whole slab).
    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &Conn)> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.is_live())
            .map(|(index, slot)| {
                (
                    ConnId {
                        index: index as u32,
                        generation: slot.generation,
                    },
                    &slot.conn,
                )
            })
    }

    #[inline]
    fn slot(&self, id: ConnId) -> Option<&Slot> {
        self.slots
            .get(id.index as usize)
            .filter(|slot| slot.is_live() && slot.generation == id.generation)
    }

    #[inline]
    fn timeout_ms(&self, conn: &Conn) -> u64 {
        let seconds = if conn.protocol == TCP {
            self.timeouts.for_state(conn.state)
        } else {
            self.timeouts.udp
        };
        u64::from(seconds) * timer::TICK_MS
    }

    /// Frees a live slot: out of the wheel and the index, onto the free list.
    fn release(&mut self, index: u32) -> Conn {
        self.wheel.disarm(&mut self.slots, index);
        let slot = &mut self.slots[index as usize];
        let conn = slot.conn;
        slot.generation = slot.generation.wrapping_add(1);
        slot.link.next = self.free;
        self.free = index;
        self.len -= 1;
        let removed = self.index.remove(
            self.index.hash(&original_key(&conn)),
            entry(index, Direction::Original),
        );
        debug_assert!(removed);
        if let Some(reply) = reply_key(&conn) {
            let removed = self
                .index
                .remove(self.index.hash(&reply), entry(index, Direction::Reply));
            debug_assert!(removed);
        }
        conn
    }

    #[cfg(test)]
    pub(super) fn index_allocation(&self) -> (usize, usize) {
        (self.index.capacity(), self.index.allocation_size())
    }

    #[cfg(test)]
    pub(super) fn slot_size() -> usize {
        size_of::<Slot>()
    }

    /// Every structural invariant, checked the slow way (tests). `latest_ms` is the latest
    /// time the table has been given.
    #[cfg(test)]
    pub(super) fn check_invariants(&self, latest_ms: u64) {
        let live = self.slots.iter().filter(|s| s.is_live()).count();
        assert_eq!(live, self.len, "len");
        let keys: usize = self
            .slots
            .iter()
            .filter(|s| s.is_live())
            .map(|s| 1 + usize::from(reply_key(&s.conn).is_some()))
            .sum();
        assert_eq!(keys, self.index.len(), "index size");
        // Every entry points at a live slot and sits where its key's hash says (tags,
        // overflow counts); every live key finds its own entry.
        self.index.check_overflow(|e| {
            let slot = &self.slots[e.slot as usize];
            assert!(slot.is_live(), "index points at a free slot");
            self.index
                .hash(&key_of(&slot.conn, e.direction).expect("index key"))
        });
        for (index, slot) in self.slots.iter().enumerate() {
            if !slot.is_live() {
                continue;
            }
            for direction in [Direction::Original, Direction::Reply] {
                if let Some(key) = key_of(&slot.conn, direction) {
                    let found = self.find(self.index.hash(&key), &key);
                    assert_eq!(found, Some(entry(index as u32, direction)), "index key");
                }
            }
        }
        let mut free = 0;
        let mut at = self.free;
        while at != NIL {
            assert!(
                !self.slots[at as usize].is_live(),
                "live slot on the free list"
            );
            free += 1;
            at = self.slots[at as usize].link.next;
        }
        assert_eq!(free + self.len, self.capacity(), "free list");
        let cursor = self.wheel.cursor();
        for (index, slot) in self.slots.iter().enumerate() {
            if !slot.is_live() {
                continue;
            }
            let deadline = timer::tick_of(slot.expires_ms);
            if deadline < cursor {
                // Overdue: looked at when the cursor next reaches its bucket, within a turn.
                continue;
            }
            // Otherwise armed no later than its deadline (or the farthest reachable tick), or
            // than the present: after a catch-up over a lag of a whole turn, every bucket is
            // due at once and an entry may sit anywhere up to `now`.
            let last = cursor + timer::SLOTS as u64 - 1;
            let limit = deadline
                .min(last)
                .max((latest_ms / timer::TICK_MS).min(last));
            let bucket = self.wheel.bucket_of(&self.slots, index as u32) as u64;
            let armed = cursor + (bucket.wrapping_sub(cursor) % timer::SLOTS as u64);
            assert!(armed <= limit, "slot {index} armed after its deadline");
        }
    }
}
