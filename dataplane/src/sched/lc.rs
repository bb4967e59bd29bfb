//! Least connection: the usable server with the lowest overhead, active × 256 + inactive;
//! the first in list order on a tie. IPVS counterpart: `ip_vs_lc.c`.

use super::{Candidates, Scheduler};
use crate::snapshot::RealServer;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeastConn {
    /// Where this worker's walk of the list starts (ties go to the first).
    start: usize,
}

impl LeastConn {
    pub fn new(worker: usize) -> Self {
        LeastConn { start: worker }
    }
}

impl Scheduler for LeastConn {
    #[inline]
    fn pick(&mut self, c: &Candidates<'_>) -> Option<usize> {
        let mut least: Option<(usize, u64)> = None;
        for i in c.rotated(self.start) {
            if !c.usable(i) {
                continue;
            }
            let oh = c.overhead(i);
            if least.is_none_or(|(_, loh)| oh < loh) {
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

    /// Weights play no part beyond 0 = quiesced. Loads A 1 active, B 0, C 2 inactive:
    /// overheads 256, 0, 2 -> B; B becomes 256 -> C (2); C 3 ... C wins until it reaches
    /// 256 (254 more picks), then A (first of A, B, C at 256).
    #[test]
    fn lowest_overhead_first_on_tie() {
        let mut f = Fixture::new(&[1, 5, 1]).with_conns(&[(1, 0), (0, 0), (0, 2)]);
        let mut s = LeastConn::new(0);
        assert_eq!(f.run(&mut s, 1, true), "B");
        assert_eq!(f.run(&mut s, 254, false), "C".repeat(254));
        assert_eq!(f.run(&mut s, 1, false), "A");
    }

    /// Active connections as they would be for established TCP: A B C A B C...; a weight-0
    /// server is skipped, an overloaded one too.
    #[test]
    fn cycles_when_equal_and_skips_unusable() {
        let mut f = Fixture::new(&[1, 0, 1, 1]);
        let mut s = LeastConn::new(0);
        assert_eq!(f.run(&mut s, 6, true), "ACDACD");
        f.loads[2].overloaded = true;
        assert_eq!(f.run(&mut s, 2, true), "AD");
    }

    #[test]
    fn workers_start_apart() {
        let f = Fixture::new(&[1, 1, 1]);
        let firsts: Vec<_> = (0..3)
            .map(|w| LeastConn::new(w).pick(&f.candidates()).unwrap())
            .collect();
        assert_eq!(firsts, vec![0, 1, 2]);
    }
}
