//! A hashed timer wheel of one-second ticks whose lists are threaded through the connection
//! slab: each slot carries its own `next`/`prev`, so arming and disarming are O(1) and never
//! allocate.
//!
//! A deadline of `ms` belongs to tick `ceil(ms / 1000)`; tick `t` lives in bucket
//! `t % SLOTS`. The wheel reaches `SLOTS - 1` ticks past its cursor: a later deadline parks in
//! the farthest bucket and is looked at again when the cursor gets there. An entry may sit in
//! an earlier bucket than its deadline (refreshes are lazy), never in a later one, so the
//! cursor finds every deadline in time (if the owner stops advancing the wheel for a whole
//! turn, every entry is due and the catch-up visits them all); the owner decides, per visited
//! entry, whether it is due or must be re-armed.

/// Ticks the wheel spans (4096 s, about 68 minutes); a power of two.
pub(super) const SLOTS: usize = 4096;
const MASK: u64 = SLOTS as u64 - 1;
pub const TICK_MS: u64 = 1000;

/// End of a list.
pub(super) const NIL: u32 = u32::MAX;
/// Set in `prev` of a bucket's first entry, whose low bits then name the bucket. Slot indices
/// stay below it.
const HEAD: u32 = 1 << 31;
/// The largest slab the wheel can thread.
pub(super) const MAX_ENTRIES: usize = (HEAD - 1) as usize;

/// Where a slot sits in its list (a wheel bucket when live, the free list when not).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Link {
    pub(super) next: u32,
    pub(super) prev: u32,
}

impl Link {
    pub(super) const UNLINKED: Link = Link {
        next: NIL,
        prev: NIL,
    };
}

/// What the wheel needs from a slab entry.
pub(super) trait Linked {
    fn link(&self) -> &Link;
    fn link_mut(&mut self) -> &mut Link;
}

/// The tick a deadline falls due at (rounded up: an entry is never looked at too early to go).
#[inline]
pub(super) fn tick_of(ms: u64) -> u64 {
    ms.div_ceil(TICK_MS)
}

#[derive(Debug)]
pub(super) struct Wheel {
    heads: Box<[u32]>,
    /// The next tick to process; every tick before it has been emptied.
    cursor: u64,
}

impl Wheel {
    pub(super) fn new() -> Self {
        Wheel {
            heads: vec![NIL; SLOTS].into_boxed_slice(),
            cursor: 0,
        }
    }

    /// The next tick to process (tests: the tables' invariant checks).
    #[cfg(test)]
    pub(super) fn cursor(&self) -> u64 {
        self.cursor
    }

    /// First entry of the bucket of the cursor's tick, or `NIL`.
    #[inline]
    pub(super) fn due_head(&self) -> u32 {
        self.heads[(self.cursor & MASK) as usize]
    }

    /// Starts a walk of the due entries up to `now_ms` and returns its tick: with nothing
    /// armed (`empty`), skips the empty buckets and returns `None`; otherwise bounds the walk
    /// to one turn ([`catch_up`](Self::catch_up)). Then [`next_due`](Self::next_due).
    #[inline]
    pub(super) fn start_walk(&mut self, now_ms: u64, empty: bool) -> Option<u64> {
        let now_tick = now_ms / TICK_MS;
        if empty {
            self.skip_to(now_tick + 1);
            return None;
        }
        self.catch_up(now_tick);
        Some(now_tick)
    }

    /// The first entry of the earliest due bucket at or before `now_tick`, moving the cursor
    /// past empty buckets; `None` once the cursor is past `now_tick`. The caller must take
    /// the entry out of its bucket (disarm or re-arm it) before asking again.
    #[inline]
    pub(super) fn next_due(&mut self, now_tick: u64) -> Option<u32> {
        while self.cursor <= now_tick {
            let head = self.due_head();
            if head != NIL {
                return Some(head);
            }
            self.advance();
        }
        None
    }

    /// Moves past the cursor's tick; its bucket must be empty.
    #[inline]
    pub(super) fn advance(&mut self) {
        debug_assert_eq!(self.due_head(), NIL);
        self.cursor += 1;
    }

    /// With nothing armed, starts at `tick` without walking the empty buckets before it.
    #[inline]
    pub(super) fn skip_to(&mut self, tick: u64) {
        self.cursor = self.cursor.max(tick);
    }

    /// Bounds the walk up to `now_tick` to one turn of the wheel. When the cursor lags a whole
    /// turn or more, every armed entry is due for a look, whichever bucket it is in: moving
    /// the cursor whole buckets ahead only looks at them sooner than it would have.
    #[inline]
    pub(super) fn catch_up(&mut self, now_tick: u64) {
        if now_tick.saturating_sub(self.cursor) >= SLOTS as u64 {
            self.cursor = now_tick + 1 - SLOTS as u64;
        }
    }

    /// Links `index` into the bucket of `deadline_ms`, clamped to the span the cursor reaches.
    #[inline]
    pub(super) fn arm<T: Linked>(&mut self, slab: &mut [T], index: u32, deadline_ms: u64) {
        let tick = tick_of(deadline_ms).clamp(self.cursor, self.cursor + MASK);
        let bucket = (tick & MASK) as u32;
        let head = self.heads[bucket as usize];
        *slab[index as usize].link_mut() = Link {
            next: head,
            prev: HEAD | bucket,
        };
        if head != NIL {
            slab[head as usize].link_mut().prev = index;
        }
        self.heads[bucket as usize] = index;
    }

    /// Unlinks `index` from whichever bucket holds it.
    #[inline]
    pub(super) fn disarm<T: Linked>(&mut self, slab: &mut [T], index: u32) {
        let Link { next, prev } = *slab[index as usize].link();
        if prev & HEAD != 0 {
            self.heads[(prev & !HEAD) as usize] = next;
        } else {
            slab[prev as usize].link_mut().next = next;
        }
        if next != NIL {
            slab[next as usize].link_mut().prev = prev;
        }
        *slab[index as usize].link_mut() = Link::UNLINKED;
    }

    /// Moves `index` to the bucket of `deadline_ms`.
    #[inline]
    pub(super) fn rearm<T: Linked>(&mut self, slab: &mut [T], index: u32, deadline_ms: u64) {
        self.disarm(slab, index);
        self.arm(slab, index, deadline_ms);
    }

    /// The bucket `index` sits in (tests).
    #[cfg(test)]
    pub(super) fn bucket_of<T: Linked>(&self, slab: &[T], index: u32) -> usize {
        let mut at = index;
        loop {
            let prev = slab[at as usize].link().prev;
            if prev & HEAD != 0 {
                return (prev & !HEAD) as usize;
            }
            at = prev;
        }
    }

    /// The bucket a tick maps to (tests).
    #[cfg(test)]
    pub(super) fn bucket_of_tick(tick: u64) -> usize {
        (tick & MASK) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy)]
    struct Entry(Link);

    impl Linked for Entry {
        fn link(&self) -> &Link {
            &self.0
        }
        fn link_mut(&mut self) -> &mut Link {
            &mut self.0
        }
    }

    fn list(wheel: &Wheel, slab: &[Entry]) -> Vec<u32> {
        let mut out = Vec::new();
        let mut at = wheel.due_head();
        while at != NIL {
            out.push(at);
            at = slab[at as usize].0.next;
        }
        out
    }

    #[test]
    fn ticks_round_up() {
        assert_eq!(tick_of(0), 0);
        assert_eq!(tick_of(1), 1);
        assert_eq!(tick_of(999), 1);
        assert_eq!(tick_of(1000), 1);
        assert_eq!(tick_of(1001), 2);
        assert_eq!(tick_of(u64::MAX), u64::MAX / 1000 + 1);
    }

    #[test]
    fn arm_disarm_keeps_lists_consistent() {
        let mut slab = vec![Entry(Link::UNLINKED); 8];
        let mut wheel = Wheel::new();
        for index in 0..4 {
            wheel.arm(&mut slab, index, 0);
        }
        assert_eq!(list(&wheel, &slab), [3, 2, 1, 0]);
        wheel.disarm(&mut slab, 2); // middle
        assert_eq!(list(&wheel, &slab), [3, 1, 0]);
        wheel.disarm(&mut slab, 3); // head
        assert_eq!(list(&wheel, &slab), [1, 0]);
        wheel.disarm(&mut slab, 0); // tail
        assert_eq!(list(&wheel, &slab), [1]);
        wheel.rearm(&mut slab, 1, 5_000);
        assert_eq!(list(&wheel, &slab), [] as [u32; 0]);
        assert_eq!(wheel.bucket_of(&slab, 1), 5);
    }

    #[test]
    fn deadlines_clamp_to_the_reachable_span() {
        let mut slab = vec![Entry(Link::UNLINKED); 2];
        let mut wheel = Wheel::new();
        wheel.skip_to(100);
        wheel.arm(&mut slab, 0, 3_000); // in the past: the cursor's own bucket
        assert_eq!(wheel.bucket_of(&slab, 0), Wheel::bucket_of_tick(100));
        wheel.arm(&mut slab, 1, 10_000_000); // past the horizon: the farthest bucket
        assert_eq!(
            wheel.bucket_of(&slab, 1),
            Wheel::bucket_of_tick(100 + SLOTS as u64 - 1)
        );
    }

    #[test]
    fn catch_up_bounds_the_walk() {
        let mut wheel = Wheel::new();
        wheel.catch_up(10);
        assert_eq!(wheel.cursor(), 0);
        wheel.catch_up(1_000_000);
        assert_eq!(wheel.cursor(), 1_000_001 - SLOTS as u64);
    }
}
