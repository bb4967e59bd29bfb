//! Weighted round robin, IPVS's interleaving: the current weight `cw` steps down by the gcd
//! of the weights each time the index wraps, and a server is picked when `weight >= cw`.
//! IPVS counterpart: `ip_vs_wrr.c`.

use super::Scheduler;
use crate::snapshot::RealServer;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedRoundRobin {
    /// Index of the last server considered (`None` before the first pick).
    index: Option<usize>,
    current_weight: i64,
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl WeightedRoundRobin {
    pub fn new(reals: &[RealServer], worker: usize) -> Self {
        let mut s = WeightedRoundRobin {
            index: None,
            current_weight: 0,
        };
        // Stagger workers by letting each skip `worker` picks of the same sequence.
        for _ in 0..worker % reals.len().max(1) {
            s.pick(reals);
        }
        s
    }
}

impl Scheduler for WeightedRoundRobin {
    fn pick(&mut self, reals: &[RealServer]) -> Option<usize> {
        let n = reals.len();
        let max_weight = reals.iter().map(|r| r.weight).max().unwrap_or(0);
        if max_weight == 0 {
            return None;
        }
        let step = i64::from(
            reals
                .iter()
                .map(|r| r.weight)
                .filter(|w| *w > 0)
                .fold(0, gcd),
        );
        // At most one full descent of cw from max to step over all n servers.
        let bound = n * (max_weight as usize / step as usize + 1) + n;
        let mut i = self.index.map_or(n - 1, |i| i.min(n - 1));
        for _ in 0..bound {
            i = (i + 1) % n;
            if i == 0 {
                self.current_weight -= step;
                if self.current_weight <= 0 {
                    self.current_weight = i64::from(max_weight);
                }
            }
            if i64::from(reals[i].weight) >= self.current_weight {
                self.index = Some(i);
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

    /// IPVS's sequence for weights 4, 3, 2 (gcd 1), derived by hand from the rule:
    /// cw=4: A; cw=3: A B; cw=2: A B C; cw=1: A B C; then again.
    #[test]
    fn ipvs_interleaving_4_3_2() {
        let r = reals(&[4, 3, 2]);
        let mut s = WeightedRoundRobin::new(&r, 0);
        let picks: Vec<_> = (0..18).map(|_| s.pick(&r).unwrap()).collect();
        let cycle = [0, 0, 1, 0, 1, 2, 0, 1, 2];
        assert_eq!(picks[..9], cycle);
        assert_eq!(picks[9..], cycle);
    }

    /// Weights 1, 2, 3 over 6000 picks give exactly 1000/2000/3000.
    #[test]
    fn proportions_1_2_3() {
        let r = reals(&[1, 2, 3]);
        let mut s = WeightedRoundRobin::new(&r, 0);
        let mut counts = [0; 3];
        for _ in 0..6000 {
            counts[s.pick(&r).unwrap()] += 1;
        }
        assert_eq!(counts, [1000, 2000, 3000]);
    }

    /// gcd stepping: weights 100 and 50 alternate as 2:1 without 50 idle rounds.
    #[test]
    fn gcd_step() {
        let r = reals(&[100, 50]);
        let mut s = WeightedRoundRobin::new(&r, 0);
        let picks: Vec<_> = (0..6).map(|_| s.pick(&r).unwrap()).collect();
        assert_eq!(picks, vec![0, 0, 1, 0, 0, 1]);
    }

    #[test]
    fn quiesced_and_empty() {
        let r = reals(&[0, 3]);
        let mut s = WeightedRoundRobin::new(&r, 0);
        assert!((0..5).all(|_| s.pick(&r) == Some(1)));
        assert_eq!(
            WeightedRoundRobin::new(&reals(&[0]), 0).pick(&reals(&[0])),
            None
        );
        assert_eq!(WeightedRoundRobin::new(&[], 0).pick(&[]), None);
    }
}
