//! Weighted overflow: the highest-weight server whose active connections do not exceed its
//! weight (IPVS skips a server only when `active > weight`: at `active == weight` it still
//! takes one more); the first in list order on a tie. IPVS counterpart: `ip_vs_ovf.c`.

use super::{Candidates, Scheduler};
use crate::snapshot::RealServer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightedOverflow;

impl Scheduler for WeightedOverflow {
    #[inline]
    fn pick(&mut self, c: &Candidates<'_>) -> Option<usize> {
        let mut best: Option<(usize, u32)> = None;
        for i in 0..c.reals.len() {
            let w = c.weight(i);
            let load = c.loads.get(i);
            if load.overloaded || load.active > w || w == 0 {
                continue;
            }
            if best.is_none_or(|(_, hw)| w > hw) {
                best = Some((i, w));
            }
        }
        best.map(|(i, _)| i)
    }

    fn update(&mut self, _old: &[RealServer], _new: &[RealServer]) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testing::Fixture;

    /// Weights 2, 3, by hand: B (3) takes connections while active <= 3, i.e. 4 of
    /// them (active 0, 1, 2, 3 at pick time); then A (2) takes 3 (active 0, 1, 2); then
    /// nothing is left.
    #[test]
    fn overflows_in_weight_order() {
        let mut f = Fixture::new(&[2, 3]);
        assert_eq!(f.run(&mut WeightedOverflow, 8, true), "BBBBAAA-");
        // One of B's connections ends: B again.
        f.loads[1].active -= 1;
        assert_eq!(f.run(&mut WeightedOverflow, 1, true), "B");
    }

    /// Inactive connections do not count toward the overflow.
    #[test]
    fn inactive_do_not_count() {
        let mut f = Fixture::new(&[1, 2]).with_conns(&[(0, 0), (0, 100)]);
        assert_eq!(f.run(&mut WeightedOverflow, 1, false), "B");
    }
}
