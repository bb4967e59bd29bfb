//! Never queue: the first usable server with no active connection; if every one is busy,
//! shortest expected delay ((active + 1) / weight). IPVS counterpart: `ip_vs_nq.c`.

use super::sed::sed_overhead;
use super::{lighter, Candidates, Scheduler};
use crate::snapshot::RealServer;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeverQueue {
    start: usize,
}

impl NeverQueue {
    pub fn new(worker: usize) -> Self {
        NeverQueue { start: worker }
    }
}

impl Scheduler for NeverQueue {
    #[inline]
    fn pick(&mut self, c: &Candidates<'_>) -> Option<usize> {
        let mut least: Option<(usize, u64)> = None;
        for i in c.rotated(self.start) {
            if !c.usable(i) {
                continue;
            }
            if c.loads.get(i).active == 0 {
                return Some(i);
            }
            let oh = sed_overhead(c, i);
            if least.is_none_or(|(l, loh)| lighter(loh, c.weight(l), oh, c.weight(i))) {
                least = Some((i, oh));
            }
        }
        least.map(|(i, _)| i)
    }

    fn update(&mut self, _old: &[RealServer], _new: &[RealServer]) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testing::Fixture;

    /// Weights 1, 2, 3, every connection active, by hand: idle servers first in list order
    /// (A, B, C); then sed, (active + 1) / weight: A 2, B 1, C 0.67 -> C; A 2, B 1, C 1 -> B
    /// (C is not strictly lower); A 2, B 1.5, C 1 -> C; A 2, B 1.5, C 1.33 -> C.
    #[test]
    fn ipvs_sequence_1_2_3() {
        let mut f = Fixture::new(&[1, 2, 3]);
        let mut s = NeverQueue::new(0);
        assert_eq!(f.run(&mut s, 7, true), "ABCCBCC");
    }

    /// Inactive connections do not make a server busy.
    #[test]
    fn idle_means_no_active() {
        let mut f = Fixture::new(&[5, 1]).with_conns(&[(1, 0), (0, 40)]);
        let mut s = NeverQueue::new(0);
        assert_eq!(f.run(&mut s, 1, true), "B");
    }
}
