//! Round robin: the next server after the last one picked, skipping weight 0.
//! IPVS counterpart: `ip_vs_rr.c`.

use super::Scheduler;
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
    fn pick(&mut self, reals: &[RealServer]) -> Option<usize> {
        let n = reals.len();
        for step in 1..=n {
            let i = (self.last + step) % n;
            if reals[i].weight > 0 {
                self.last = i;
                return Some(i);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testing::reals;

    #[test]
    fn cycles_and_skips_quiesced() {
        let r = reals(&[1, 0, 5]);
        let mut s = RoundRobin::new(&r, 0);
        let picks: Vec<_> = (0..5).map(|_| s.pick(&r).unwrap()).collect();
        assert_eq!(picks, vec![0, 2, 0, 2, 0]);
    }

    #[test]
    fn workers_start_apart() {
        let r = reals(&[1, 1, 1]);
        let firsts: Vec<_> = (0..3)
            .map(|w| RoundRobin::new(&r, w).pick(&r).unwrap())
            .collect();
        assert_eq!(firsts, vec![0, 1, 2]);
    }

    #[test]
    fn none_when_all_quiesced_or_empty() {
        assert_eq!(
            RoundRobin::new(&reals(&[0, 0]), 0).pick(&reals(&[0, 0])),
            None
        );
        assert_eq!(RoundRobin::new(&[], 0).pick(&[]), None);
    }
}
