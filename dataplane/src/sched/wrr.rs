//! Weighted round robin, IPVS's interleaving: the current weight `cw` steps down by the gcd
//! of the weights each time the walk wraps, and a usable server with `weight >= cw` is picked.
//! IPVS counterpart: `ip_vs_wrr.c`.

use super::{gcd, Candidates, Scheduler};
use crate::snapshot::RealServer;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedRoundRobin {
    /// Index of the last server considered; `None` is IPVS's list head (before the first).
    cl: Option<usize>,
    /// Current weight.
    cw: i64,
    /// Maximum weight less (gcd - 1), as IPVS's `mw`.
    mw: i64,
    /// Gcd of the positive weights (`di`).
    di: i64,
}

/// (mw, di) of a server list, as `ip_vs_wrr_init_svc` / `ip_vs_wrr_dest_changed`.
fn marks(reals: &[RealServer]) -> (i64, i64) {
    let di = reals
        .iter()
        .map(|r| r.weight)
        .filter(|w| *w > 0)
        .fold(0, gcd)
        .max(1);
    let max = reals.iter().map(|r| r.weight).max().unwrap_or(0);
    let di = i64::from(di);
    (i64::from(max) - (di - 1), di)
}

impl WeightedRoundRobin {
    pub fn new(reals: &[RealServer], worker: usize) -> Self {
        let (mw, di) = marks(reals);
        let mut s = WeightedRoundRobin {
            cl: None,
            cw: mw,
            mw,
            di,
        };
        // Stagger workers: worker w starts w picks into the same sequence.
        for _ in 0..worker % reals.len().max(1) {
            s.walk(reals, |i| reals[i].weight > 0);
        }
        s
    }

    /// IPVS's walk: from after `cl` (from the first server when `cl` is the head), lowering
    /// `cw` by `di` each time it wraps past the last server (back to `mw` below 1), until a
    /// server passes; at most one descent of `cw` over every server.
    #[inline]
    fn walk(&mut self, reals: &[RealServer], usable: impl Fn(usize) -> bool) -> Option<usize> {
        let n = reals.len();
        if self.mw <= 0 || n == 0 {
            return None;
        }
        let bound = n as u64 * (self.mw / self.di + 2) as u64;
        let mut i = self.cl;
        for _ in 0..bound {
            let next = match i {
                Some(j) if j + 1 < n => j + 1,
                Some(_) => {
                    // Wrapped past the last server: lower the current weight.
                    self.cw -= self.di;
                    if self.cw <= 0 {
                        self.cw = self.mw;
                    }
                    0
                }
                None => 0,
            };
            i = Some(next);
            if usable(next) && i64::from(reals[next].weight) >= self.cw {
                self.cl = i;
                return i;
            }
        }
        self.cl = i;
        None
    }
}

impl Scheduler for WeightedRoundRobin {
    #[inline]
    fn pick(&mut self, c: &Candidates<'_>) -> Option<usize> {
        self.walk(c.reals, |i| !c.loads.get(i).overloaded)
    }

    /// `ip_vs_wrr_dest_changed`: new mw and di, the walk restarts at the head, and cw is
    /// clamped to mw (or realigned to the new gcd).
    fn update(&mut self, _old: &[RealServer], new: &[RealServer]) {
        let (mw, di) = marks(new);
        self.mw = mw;
        self.di = di;
        self.cl = None;
        if self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if self.di > 1 {
            self.cw = (self.cw / self.di) * self.di + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testing::{reals, Fixture};

    /// Weights 4, 3, 2 (gcd 1, mw 4), derived by hand from the rule: from the head with
    /// cw = 4: A; cw = 3: A B; cw = 2: A B C; cw = 1: A B C; then cw = 4 again.
    #[test]
    fn ipvs_interleaving_4_3_2() {
        let mut f = Fixture::new(&[4, 3, 2]);
        let mut s = WeightedRoundRobin::new(&f.reals, 0);
        assert_eq!(f.run(&mut s, 18, false), "AABABCABC".repeat(2));
    }

    /// Weights 1, 2, 3 over 6000 picks give exactly 1000/2000/3000.
    #[test]
    fn proportions_1_2_3() {
        let mut f = Fixture::new(&[1, 2, 3]);
        let mut s = WeightedRoundRobin::new(&f.reals, 0);
        let picks = f.run(&mut s, 6000, false);
        let count = |c| picks.chars().filter(|x| *x == c).count();
        assert_eq!((count('A'), count('B'), count('C')), (1000, 2000, 3000));
    }

    /// gcd stepping: weights 100 and 50 (di 50, mw 51): cw = 51: A; cw = 1: A B.
    #[test]
    fn gcd_step() {
        let mut f = Fixture::new(&[100, 50]);
        let mut s = WeightedRoundRobin::new(&f.reals, 0);
        assert_eq!(f.run(&mut s, 6, false), "AABAAB");
    }

    /// An overloaded server is passed over at every cw; weight 0 never qualifies.
    #[test]
    fn overloaded_and_quiesced() {
        let mut f = Fixture::new(&[0, 3, 2]);
        let mut s = WeightedRoundRobin::new(&f.reals, 0);
        // cw 3: B; cw 2: B C; cw 1: B C.
        assert_eq!(f.run(&mut s, 5, false), "BBCBC");
        f.loads[1].overloaded = true;
        assert_eq!(f.run(&mut s, 3, false), "CCC");
        let mut none = Fixture::new(&[0]);
        assert_eq!(
            none.run(&mut WeightedRoundRobin::new(&none.reals, 0), 1, false),
            "-"
        );
    }

    #[test]
    fn workers_start_apart() {
        let f = Fixture::new(&[1, 1, 1]);
        let firsts: Vec<_> = (0..3)
            .map(|w| {
                WeightedRoundRobin::new(&f.reals, w)
                    .pick(&f.candidates())
                    .unwrap()
            })
            .collect();
        assert_eq!(firsts, vec![0, 1, 2]);
    }

    /// Reweighting 4,3,2 to 4,4,2 after A A B A (cw 2): di 2, mw 4 - 1 = 3; cw 2 is kept
    /// but realigned to the new gcd, 2/2*2+1 = 3, and the walk restarts at the head:
    /// cw 3: A B; cw 1: A B C; cw 3: A B; cw 1: A...
    #[test]
    fn update_recomputes_marks() {
        let mut f = Fixture::new(&[4, 3, 2]);
        let mut s = WeightedRoundRobin::new(&f.reals, 0);
        assert_eq!(f.run(&mut s, 4, false), "AABA"); // now cw = 2, at A
        let new = reals(&[4, 4, 2]);
        s.update(&f.reals, &new);
        f.reals = new;
        assert_eq!((s.cw, s.mw, s.di), (3, 3, 2));
        assert_eq!(f.run(&mut s, 8, false), "ABABCABA");
    }
}
