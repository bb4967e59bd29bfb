//! Shortest expected delay: the usable server with the lowest (active + 1) / weight
//! (inactive connections do not count); the first in list order on a tie.
//! IPVS counterpart: `ip_vs_sed.c`.

use super::{weighted_least, Candidates, Scheduler};
use crate::snapshot::RealServer;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShortestExpectedDelay {
    start: usize,
}

impl ShortestExpectedDelay {
    pub fn new(worker: usize) -> Self {
        ShortestExpectedDelay { start: worker }
    }
}

/// `ip_vs_sed_dest_overhead`.
#[inline]
pub(crate) fn sed_overhead(c: &Candidates<'_>, i: usize) -> u64 {
    u64::from(c.loads.get(i).active) + 1
}

impl Scheduler for ShortestExpectedDelay {
    #[inline]
    fn pick(&mut self, c: &Candidates<'_>) -> Option<usize> {
        weighted_least(c, c.rotated(self.start), |i| sed_overhead(c, i))
    }

    fn update(&mut self, _old: &[RealServer], _new: &[RealServer]) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testing::Fixture;

    /// Weights 1, 2, 3, every connection active, by hand ((a+1)/w, replace when strictly
    /// lower): 1. A 1, B 0.5, C 0.33 -> C.  2. C 0.67 -> B 0.5.  3. A 1, B 1, C 0.67 -> C.
    /// 4. A 1, B 1, C 1 -> A.  5. A 2, B 1, C 1 -> B.  6. A 2, B 1.5, C 1 -> C.
    /// Unlike wlc, the idle heavy server gets the first connection.
    #[test]
    fn ipvs_sequence_1_2_3() {
        let mut f = Fixture::new(&[1, 2, 3]);
        let mut s = ShortestExpectedDelay::new(0);
        assert_eq!(f.run(&mut s, 6, true), "CBCABC");
    }

    /// Inactive connections are not counted at all.
    #[test]
    fn ignores_inactive() {
        let mut f = Fixture::new(&[1, 1]).with_conns(&[(0, 1000), (1, 0)]);
        let mut s = ShortestExpectedDelay::new(0);
        assert_eq!(f.run(&mut s, 1, false), "A");
    }
}
