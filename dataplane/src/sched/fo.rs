//! Weighted failover: the usable server with the highest weight; the first in list order on
//! a tie. IPVS counterpart: `ip_vs_fo.c`.

use super::{Candidates, Scheduler};
use crate::snapshot::RealServer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightedFailover;

impl Scheduler for WeightedFailover {
    #[inline]
    fn pick(&mut self, c: &Candidates<'_>) -> Option<usize> {
        let mut best: Option<(usize, u32)> = None;
        for i in 0..c.reals.len() {
            let w = c.weight(i);
            if !c.loads.get(i).overloaded && w > best.map_or(0, |(_, hw)| hw) {
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

    /// All traffic to the heaviest (B, 5; C ties at 5 but comes later); when B is
    /// overloaded, C; when both are, A; weight 0 never.
    #[test]
    fn highest_weight_not_overloaded() {
        let mut f = Fixture::new(&[1, 5, 5, 0]);
        assert_eq!(f.run(&mut WeightedFailover, 3, true), "BBB");
        f.loads[1].overloaded = true;
        assert_eq!(f.run(&mut WeightedFailover, 2, true), "CC");
        f.loads[2].overloaded = true;
        assert_eq!(f.run(&mut WeightedFailover, 1, true), "A");
        f.loads[0].overloaded = true;
        assert_eq!(f.run(&mut WeightedFailover, 1, true), "-");
    }
}
