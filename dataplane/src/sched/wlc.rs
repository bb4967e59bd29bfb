//! Weighted least connection: the usable server with the lowest overhead / weight, overhead =
//! active × 256 + inactive; the first in list order on a tie. IPVS counterpart: `ip_vs_wlc.c`.

use super::{weighted_least, Candidates, Scheduler};
use crate::snapshot::RealServer;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedLeastConn {
    start: usize,
}

impl WeightedLeastConn {
    pub fn new(worker: usize) -> Self {
        WeightedLeastConn { start: worker }
    }
}

impl Scheduler for WeightedLeastConn {
    #[inline]
    fn pick(&mut self, c: &Candidates<'_>) -> Option<usize> {
        weighted_least(c, c.rotated(self.start), |i| c.overhead(i))
    }

    fn update(&mut self, _old: &[RealServer], _new: &[RealServer]) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testing::Fixture;

    /// Weights 1, 2, 3, every connection active (overhead 256 each), by hand; a server
    /// replaces the least when loh × w > oh × lw. Overhead per weight before each pick:
    /// all 0 -> A (first); A 256, B 0 -> B; A 256, B 128, C 0 -> C; A 256, B 128, C 85.3
    /// -> C; A 256, B 128, C 170.7 -> B; A 256, B 256 (not strictly less), C 170.7 -> C.
    /// Then A1 B2 C3 is 256 per weight unit each, as at the start: the cycle repeats.
    #[test]
    fn ipvs_sequence_1_2_3() {
        let mut f = Fixture::new(&[1, 2, 3]);
        let mut s = WeightedLeastConn::new(0);
        assert_eq!(f.run(&mut s, 6, true), "ABCCBC");
        // Balanced at 1:2:3, the cycle repeats.
        assert_eq!(f.run(&mut s, 6, true), "ABCCBC");
    }

    /// Inactive connections weigh 1/256 of an active one: A with 255 inactive is still
    /// lighter than B with 1 active at equal weight; at 256 it ties and A (first) wins.
    #[test]
    fn inactive_counts_one_256th() {
        let mut f = Fixture::new(&[1, 1]).with_conns(&[(0, 255), (1, 0)]);
        let mut s = WeightedLeastConn::new(0);
        assert_eq!(f.run(&mut s, 2, false), "AA");
        assert_eq!(f.run(&mut s, 1, false), "B");
    }

    #[test]
    fn quiesced_and_overloaded_never_picked() {
        let mut f = Fixture::new(&[0, 1, 1]);
        f.loads[1].overloaded = true;
        let mut s = WeightedLeastConn::new(0);
        assert_eq!(f.run(&mut s, 3, true), "CCC");
        f.loads[2].overloaded = true;
        assert_eq!(f.run(&mut s, 1, true), "-");
    }
}
