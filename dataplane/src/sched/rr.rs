//! Round robin: the next usable server after the last one picked (weight 0 or overloaded are
//! skipped). IPVS counterpart: `ip_vs_rr.c`.

use super::{Candidates, Scheduler};
use crate::snapshot::RealServer;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundRobin {
    /// Index of the last server picked (the next pick starts after it).
    last: usize,
}

impl RoundRobin {
    pub fn new(reals: &[RealServer], worker: usize) -> Self {
        let n = reals.len().max(1);
        // Worker w starts so that its first pick is server w mod n.
        RoundRobin {
            last: (worker % n + n - 1) % n,
        }
    }
}

impl Scheduler for RoundRobin {
    #[inline]
    fn pick(&mut self, c: &Candidates<'_>) -> Option<usize> {
        let n = c.reals.len();
        for step in 1..=n {
            let i = (self.last + step) % n;
            if c.usable(i) {
                self.last = i;
                return Some(i);
            }
        }
        None
    }

    /// As IPVS, which keeps its cursor on the list node: continue after the same server if
    /// it is still there, else from the same position.
    fn update(&mut self, old: &[RealServer], new: &[RealServer]) {
        let n = new.len().max(1);
        self.last = old
            .get(self.last)
            .and_then(|r| new.iter().position(|x| x.addr == r.addr))
            .unwrap_or(self.last % n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testing::{reals, Fixture};

    /// IPVS rule: next server after the last, skipping weight 0 (B) and overloaded ones.
    #[test]
    fn cycles_and_skips_quiesced_and_overloaded() {
        let mut f = Fixture::new(&[1, 0, 5, 1]);
        let mut s = RoundRobin::new(&f.reals, 0);
        assert_eq!(f.run(&mut s, 6, false), "ACDACD");
        f.loads[3].overloaded = true;
        assert_eq!(f.run(&mut s, 4, false), "ACAC");
    }

    #[test]
    fn workers_start_apart() {
        let f = Fixture::new(&[1, 1, 1]);
        let firsts: Vec<_> = (0..3)
            .map(|w| RoundRobin::new(&f.reals, w).pick(&f.candidates()).unwrap())
            .collect();
        assert_eq!(firsts, vec![0, 1, 2]);
    }

    #[test]
    fn none_when_all_quiesced() {
        let mut f = Fixture::new(&[0, 0]);
        let mut s = RoundRobin::new(&f.reals, 0);
        assert_eq!(f.run(&mut s, 2, false), "--");
    }

    #[test]
    fn update_continues_after_the_same_server() {
        let mut f = Fixture::new(&[1, 1, 1]);
        let mut s = RoundRobin::new(&f.reals, 0);
        assert_eq!(f.run(&mut s, 2, false), "AB");
        // C is removed and a new D goes first: the next pick after B is still after B.
        let old = f.reals.clone();
        let mut new = reals(&[1, 1, 1]);
        new[0].addr.addr = [203, 0, 113, 99].into();
        new[1].addr = old[0].addr;
        new[2].addr = old[1].addr;
        s.update(&old, &new);
        f.reals = new;
        // New order: D A B; after B comes D.
        assert_eq!(f.run(&mut s, 3, false), "ABC");
    }
}
