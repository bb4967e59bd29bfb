//! Persistence templates (IPVS's `IP_VS_CONN_F_TEMPLATE` entries): per (protocol, VIP,
//! client network) the real server the client's connections go to. Per worker, like the
//! connection table, and like it allocated once: a slab, a hash index that never grows, and
//! the same one-second timer wheel.
//!
//! IPVS's rules (`ip_vs_sched_persist`, `ip_vs_conn_expire`): every connection a template
//! starts restarts its timer at the persistence timeout; a template due while connections it
//! started still live is kept 60 seconds more, again and again, so it outlives them all.

use std::net::Ipv4Addr;

use hashbrown::HashMap;

use super::timer::{self, Link, Linked, Wheel, NIL};
use crate::flow::Endpoint;

/// What a template is looked up by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TemplateKey {
    pub protocol: u8,
    pub vip: Endpoint,
    /// The client address under the service's persistence netmask.
    pub client_net: Ipv4Addr,
}

/// One template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    pub key: TemplateKey,
    /// The worker's dest slot of the real server (see `sched::DestTable`).
    pub dest: u32,
    /// Connections started under it that are still alive.
    pub controlled: u32,
}

/// IPVS re-arms a template that still controls connections for another 60 s.
const EXPIRE_LATER_MS: u64 = 60_000;

#[derive(Debug, Clone, Copy)]
struct Slot {
    template: Template,
    expires_ms: u64,
    link: Link,
    live: bool,
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

/// The table is full: IPVS drops the connection when it cannot create its template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplatesFull;

#[derive(Debug)]
pub struct TemplateTable {
    slots: Vec<Slot>,
    free: u32,
    len: usize,
    /// Sized for twice the capacity: hashbrown then clears tombstones in place instead of
    /// growing, so no operation after `new` allocates.
    index: HashMap<TemplateKey, u32>,
    wheel: Wheel,
}

impl TemplateTable {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.min(timer::MAX_ENTRIES);
        let vacant = Template {
            key: TemplateKey {
                protocol: 0,
                vip: Endpoint::new(Ipv4Addr::UNSPECIFIED, 0),
                client_net: Ipv4Addr::UNSPECIFIED,
            },
            dest: 0,
            controlled: 0,
        };
        TemplateTable {
            slots: (0..capacity)
                .map(|i| Slot {
                    template: vacant,
                    expires_ms: 0,
                    link: Link {
                        next: if i + 1 < capacity { i as u32 + 1 } else { NIL },
                        prev: NIL,
                    },
                    live: false,
                })
                .collect(),
            free: if capacity > 0 { 0 } else { NIL },
            len: 0,
            index: HashMap::with_capacity(2 * capacity + 2),
            wheel: Wheel::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Live templates with their expiry (control plane / `rvsadm -c`: walks the slab).
    pub fn iter(&self) -> impl Iterator<Item = (&Template, u64)> {
        self.slots
            .iter()
            .filter(|slot| slot.live)
            .map(|slot| (&slot.template, slot.expires_ms))
    }

    #[inline]
    pub fn lookup(&self, key: &TemplateKey) -> Option<u32> {
        self.index.get(key).copied()
    }

    #[inline]
    pub fn get(&self, id: u32) -> &Template {
        &self.slots[id as usize].template
    }

    /// A new template pointing at `dest`, due `timeout_ms` from `now_ms`.
    pub fn insert(
        &mut self,
        key: TemplateKey,
        dest: u32,
        timeout_ms: u64,
        now_ms: u64,
    ) -> Result<u32, TemplatesFull> {
        if self.free == NIL {
            return Err(TemplatesFull);
        }
        if self.len == 0 {
            self.wheel.skip_to(timer::tick_of(now_ms));
        }
        let id = self.free;
        let slot = &mut self.slots[id as usize];
        self.free = slot.link.next;
        slot.template = Template {
            key,
            dest,
            controlled: 0,
        };
        slot.live = true;
        slot.expires_ms = now_ms.saturating_add(timeout_ms);
        let expires = slot.expires_ms;
        self.wheel.arm(&mut self.slots, id, expires);
        self.index.insert(key, id);
        self.len += 1;
        Ok(id)
    }

    /// The template's server is gone: point it at `dest` instead.
    #[inline]
    pub fn retarget(&mut self, id: u32, dest: u32) {
        self.slots[id as usize].template.dest = dest;
    }

    /// A connection starts under `id`: it counts as controlled, and the timer restarts.
    #[inline]
    pub fn control(&mut self, id: u32, timeout_ms: u64, now_ms: u64) {
        let slot = &mut self.slots[id as usize];
        slot.template.controlled += 1;
        let expires = now_ms.saturating_add(timeout_ms);
        let sooner = expires < slot.expires_ms;
        slot.expires_ms = expires;
        if sooner {
            self.wheel.rearm(&mut self.slots, id, expires);
        }
    }

    /// Sets `id`'s deadline to `timeout_ms` from `now_ms` (a synced template), controlling
    /// nothing more.
    pub fn refresh(&mut self, id: u32, timeout_ms: u64, now_ms: u64) {
        let slot = &mut self.slots[id as usize];
        let expires = now_ms.saturating_add(timeout_ms);
        slot.expires_ms = expires;
        self.wheel.rearm(&mut self.slots, id, expires);
    }

    /// A connection started under `id` ended.
    #[inline]
    pub fn release(&mut self, id: u32) {
        let t = &mut self.slots[id as usize].template;
        t.controlled = t.controlled.saturating_sub(1);
    }

    /// Frees templates past their deadline that control no connection (calling `on_free` for
    /// each), visiting at most `budget` timer entries. Returns how many were freed.
    pub fn expire(
        &mut self,
        now_ms: u64,
        budget: usize,
        mut on_free: impl FnMut(&Template),
    ) -> usize {
        let Some(now_tick) = self.wheel.start_walk(now_ms, self.len == 0) else {
            return 0;
        };
        let (mut visited, mut freed) = (0, 0);
        while let Some(id) = self.wheel.next_due(now_tick) {
            if visited == budget {
                break;
            }
            visited += 1;
            let slot = &mut self.slots[id as usize];
            if slot.expires_ms > now_ms || slot.template.controlled > 0 {
                // Refreshed since armed; or due but still starting connections' owner:
                // IPVS keeps it another 60 s.
                if slot.expires_ms <= now_ms {
                    slot.expires_ms = now_ms + EXPIRE_LATER_MS;
                }
                let at = slot.expires_ms;
                self.wheel.rearm(&mut self.slots, id, at);
                continue;
            }
            self.wheel.disarm(&mut self.slots, id);
            let slot = &mut self.slots[id as usize];
            slot.live = false;
            slot.link.next = self.free;
            self.free = id;
            self.len -= 1;
            let t = slot.template;
            self.index.remove(&t.key);
            on_free(&t);
            freed += 1;
        }
        freed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000_000;
    const S: u64 = 1000;

    fn key(last: u8) -> TemplateKey {
        TemplateKey {
            protocol: 6,
            vip: Endpoint::new([198, 51, 100, 100].into(), 80),
            client_net: [198, 51, 100, last].into(),
        }
    }

    fn run(t: &mut TemplateTable, from: u64, to: u64) -> Vec<(u64, TemplateKey)> {
        let mut gone = Vec::new();
        let mut now = from;
        while now <= to {
            t.expire(now, 64, |tpl| gone.push((now, tpl.key)));
            now += S;
        }
        gone
    }

    /// A template goes `timeout` after it was last used, once no connection it started lives.
    #[test]
    fn expires_after_timeout_once_unused() {
        let mut t = TemplateTable::new(8);
        let id = t.insert(key(1), 7, 300 * S, T0).unwrap();
        t.control(id, 300 * S, T0);
        t.control(id, 300 * S, T0 + 100 * S); // a second connection restarts the timer
        t.release(id);
        // The other connection still lives at T0 + 400 s: kept, 60 s at a time.
        assert!(run(&mut t, T0, T0 + 460 * S).is_empty());
        t.release(id);
        let gone = run(&mut t, T0 + 461 * S, T0 + 600 * S);
        assert_eq!(gone.len(), 1);
        assert!(
            gone[0].0 <= T0 + 521 * S,
            "within 60 s of the last release: {gone:?}"
        );
        assert_eq!(t.lookup(&key(1)), None);
        assert!(t.is_empty());
    }

    #[test]
    fn unused_template_goes_at_its_timeout() {
        let mut t = TemplateTable::new(8);
        t.insert(key(1), 0, 10 * S, T0).unwrap();
        let gone = run(&mut t, T0, T0 + 20 * S);
        assert_eq!(gone, vec![(T0 + 10 * S, key(1))]);
    }

    #[test]
    fn full_table_refuses_and_slots_are_reused() {
        let mut t = TemplateTable::new(2);
        t.insert(key(1), 0, S, T0).unwrap();
        t.insert(key(2), 0, S, T0).unwrap();
        assert_eq!(t.insert(key(3), 0, S, T0), Err(TemplatesFull));
        run(&mut t, T0, T0 + 2 * S);
        assert!(t.insert(key(3), 0, S, T0 + 2 * S).is_ok());
        assert_eq!(t.len(), 1);
    }
}
