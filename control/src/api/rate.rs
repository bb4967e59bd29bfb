//! IPVS's rate estimator (`net/netfilter/ipvs/ip_vs_est.c`), sans-IO: the caller samples the
//! totals every 2 s and reads the rates `ipvsadm --rate` shows.
//!
//! The kernel's arithmetic, exactly: every 2 s the growth of each counter since the last
//! sample is scaled (connections and packets by 2^10, bytes by 2^5) and halved for the 2 s
//! (`delta << 9`, `delta << 4`); each average moves a quarter of the way to that rate
//! (`avg += (rate - avg) >> 2`, an arithmetic shift, so a rate decays to exactly 0); reading
//! rounds (`(avg + 0x1FF) >> 10`, `(avg + 0xF) >> 5`). A steady rate therefore shows a
//! quarter of itself after the first sample and the whole of it after about a minute (27
//! samples for 1000 conn/s).
//!
//! A new estimator starts from zero totals, as the kernel's does for a new service or real
//! server (its counters start at zero too). One difference: the kernel's totals never go
//! back, rvs's may (its counters restart from zero after `-Z`); a total below the last
//! sample counts as restarted from zero, so its delta is the new total.

use std::collections::HashMap;
use std::hash::Hash;

use super::state::{Rates, Stats};

/// How often the caller samples (the kernel's `2 * HZ`).
pub const INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// One service's or real server's estimator (the kernel's `struct ip_vs_estimator`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Estimator {
    last: Stats,
    /// Scaled by 2^10.
    cps: u64,
    inpps: u64,
    outpps: u64,
    /// Scaled by 2^5.
    inbps: u64,
    outbps: u64,
}

/// The growth of a counter since the last sample; a counter below its last value restarted
/// from zero.
fn delta(now: u64, last: u64) -> u64 {
    if now >= last {
        now - last
    } else {
        now
    }
}

/// `avg += ((s64)rate - (s64)avg) >> 2`, in the kernel's two's complement.
fn average(avg: u64, rate: u64) -> u64 {
    avg.wrapping_add(((rate as i64).wrapping_sub(avg as i64) >> 2) as u64)
}

impl Estimator {
    /// An estimator whose totals start at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// One sample of the totals (every [`INTERVAL`]).
    pub fn sample(&mut self, totals: Stats) {
        let l = self.last;
        // Scaled by 2^10, but divided 2 seconds.
        self.cps = average(self.cps, delta(totals.conns, l.conns).wrapping_shl(9));
        self.inpps = average(self.inpps, delta(totals.inpkts, l.inpkts).wrapping_shl(9));
        self.outpps = average(
            self.outpps,
            delta(totals.outpkts, l.outpkts).wrapping_shl(9),
        );
        // Scaled by 2^5, but divided 2 seconds.
        self.inbps = average(self.inbps, delta(totals.inbytes, l.inbytes).wrapping_shl(4));
        self.outbps = average(
            self.outbps,
            delta(totals.outbytes, l.outbytes).wrapping_shl(4),
        );
        self.last = totals;
    }

    /// The rates per second, rounded as `ip_vs_read_estimator` does.
    pub fn rates(&self) -> Rates {
        Rates {
            cps: self.cps.wrapping_add(0x1FF) >> 10,
            inpps: self.inpps.wrapping_add(0x1FF) >> 10,
            outpps: self.outpps.wrapping_add(0x1FF) >> 10,
            inbps: self.inbps.wrapping_add(0xF) >> 5,
            outbps: self.outbps.wrapping_add(0xF) >> 5,
        }
    }

    /// `-Z` (the kernel's `ip_vs_zero_estimator`): the rates back to zero, and `totals` (the
    /// counters as they are now, zero when `-Z` zeroes them) the point the next sample
    /// counts from.
    pub fn zero(&mut self, totals: Stats) {
        *self = Estimator {
            last: totals,
            ..Estimator::default()
        };
    }

    /// The totals of the last sample.
    pub fn last(&self) -> Stats {
        self.last
    }
}

/// The estimators of many services or real servers, by key.
#[derive(Debug, Clone)]
pub struct Estimators<K> {
    map: HashMap<K, (Estimator, u64)>,
    /// Counts samples: an entry not touched by the latest one is gone.
    round: u64,
}

impl<K> Default for Estimators<K> {
    fn default() -> Self {
        Estimators {
            map: HashMap::new(),
            round: 0,
        }
    }
}

impl<K: Eq + Hash> Estimators<K> {
    pub fn new() -> Self {
        Self::default()
    }

    /// One sample (every [`INTERVAL`]) of every key's totals. A key seen for the first time
    /// gets a new estimator (totals from zero); a key absent from `totals` is forgotten (its
    /// service or real server is gone: if it comes back, it starts anew, as in the kernel).
    pub fn sample<I: IntoIterator<Item = (K, Stats)>>(&mut self, totals: I) {
        self.round = self.round.wrapping_add(1);
        let round = self.round;
        for (key, t) in totals {
            let entry = self.map.entry(key).or_insert((Estimator::new(), round));
            entry.0.sample(t);
            entry.1 = round;
        }
        self.map.retain(|_, (_, seen)| *seen == round);
    }

    /// A key's rates; zero for a key not sampled yet.
    pub fn rates(&self, key: &K) -> Rates {
        self.map
            .get(key)
            .map(|(e, _)| e.rates())
            .unwrap_or_default()
    }

    /// A key's estimator, if sampled.
    pub fn get(&self, key: &K) -> Option<&Estimator> {
        self.map.get(key).map(|(e, _)| e)
    }

    /// `-Z` for one key: see [`Estimator::zero`]. Nothing for a key not sampled yet.
    pub fn zero(&mut self, key: &K, totals: Stats) {
        if let Some((e, _)) = self.map.get_mut(key) {
            e.zero(totals);
        }
    }

    /// `-Z` for all: every rate to zero, each key counting from `totals(key)`.
    pub fn zero_all(&mut self, mut totals: impl FnMut(&K) -> Stats) {
        for (k, (e, _)) in &mut self.map {
            e.zero(totals(k));
        }
    }

    /// Forgets a key now (a deleted service), without waiting for the next sample.
    pub fn remove(&mut self, key: &K) {
        self.map.remove(key);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conns(n: u64) -> Stats {
        Stats {
            conns: n,
            ..Stats::default()
        }
    }

    /// Steady traffic of `per_s` of each counter, `bytes_per_s` bytes each way.
    fn steady(samples: u64, per_s: u64, bytes_per_s: u64) -> Vec<Rates> {
        let mut e = Estimator::new();
        (1..=samples)
            .map(|n| {
                let t = 2 * n;
                e.sample(Stats {
                    conns: per_s * t,
                    inpkts: per_s * t,
                    outpkts: per_s * t,
                    inbytes: bytes_per_s * t,
                    outbytes: bytes_per_s * t,
                });
                e.rates()
            })
            .collect()
    }

    #[test]
    fn steady_1000_per_second_climbs_as_the_kernel_computes() {
        let r = steady(40, 1000, 0);
        let cps: Vec<u64> = r.iter().map(|r| r.cps).collect();
        // avg: 256000, 448000, 592000, 700000, 781000, ... (rate 2000 << 9 = 1024000).
        assert_eq!(
            &cps[..13],
            &[250, 437, 578, 684, 763, 822, 867, 900, 925, 944, 958, 968, 976]
        );
        // 1000 first at the 27th sample (avg 1023565, rounds up from 999.57), and it stays.
        assert_eq!(cps[25], 999);
        assert!(cps[26..].iter().all(|c| *c == 1000));
        assert!(r.iter().all(|r| r.inpps == r.cps && r.outpps == r.cps));
    }

    #[test]
    fn bytes_are_scaled_by_2_to_the_5() {
        // 1 MB/s: 2000000 << 4 = 32000000; a quarter of it after one sample, 250000 B/s.
        let r = steady(60, 0, 1_000_000);
        assert_eq!(r[0].inbps, 250_000);
        assert_eq!(r[1].inbps, 437_500);
        assert_eq!(r[0].outbps, 250_000);
        assert_eq!(r[59].inbps, 1_000_000);
        assert_eq!(r[59].cps, 0);
        // 1 MB/s shows whole from the 51st sample (avg 31999985).
        assert_eq!(r[49].inbps, 999_999);
        assert_eq!(r[50].inbps, 1_000_000);
        // 1 B/s: 2 bytes in 2 s, 2 << 4 = 32, a quarter is 8: (8 + 15) >> 5 = 0.
        let mut e = Estimator::new();
        e.sample(Stats {
            inbytes: 2,
            ..Stats::default()
        });
        assert_eq!(e.rates().inbps, 0);
        e.sample(Stats {
            inbytes: 4,
            ..Stats::default()
        });
        // 8 + (32 - 8) >> 2 = 14: (14 + 15) >> 5 = 0; the third sample: 14 + 4 = 18 -> 1.
        assert_eq!(e.rates().inbps, 0);
        e.sample(Stats {
            inbytes: 6,
            ..Stats::default()
        });
        assert_eq!(e.rates().inbps, 1);
    }

    #[test]
    fn first_sample_counts_from_zero() {
        // A new service that took 10 connections in its first 2 s: 10 << 9 = 5120, a
        // quarter is 1280: (1280 + 511) >> 10 = 1.
        let mut e = Estimator::new();
        e.sample(conns(10));
        assert_eq!(e.rates().cps, 1);
        // 1 connection: 512 >> 2 = 128; (128 + 511) >> 10 = 0.
        let mut e = Estimator::new();
        e.sample(conns(1));
        assert_eq!(e.rates().cps, 0);
        assert_eq!(e.last(), conns(1));
    }

    #[test]
    fn idle_decays_to_exactly_zero() {
        let mut e = Estimator::new();
        for n in 1..=40 {
            e.sample(conns(2000 * n));
        }
        assert_eq!(e.rates().cps, 1000);
        let mut shown = Vec::new();
        for _ in 0..60 {
            e.sample(conns(80_000));
            shown.push(e.rates().cps);
        }
        // avg 1023988: 767991 -> 750, then 575993 -> 562, 431994 -> 422, ...
        assert_eq!(&shown[..3], &[750, 562, 422]);
        assert_eq!(*shown.last().unwrap(), 0);
        // The arithmetic shift takes the last units away too: the average itself is 0.
        assert_eq!(e.cps, 0);
    }

    #[test]
    fn a_counter_that_went_back_restarted_from_zero() {
        let mut e = Estimator::new();
        e.sample(conns(1_000_000));
        // 1000000 << 9 >> 2.
        assert_eq!(e.cps, 128_000_000);
        // Zeroed behind the estimator's back, then 4000 new connections: delta 4000, rate
        // 2048000, the average moves by (2048000 - 128000000) >> 2 = -31488000.
        e.sample(conns(4000));
        assert_eq!(e.cps, 96_512_000);
        assert_eq!(e.rates().cps, 94_250);
        assert_eq!(e.last(), conns(4000));
    }

    #[test]
    fn zero_resets_rates_and_counts_from_the_given_totals() {
        let mut e = Estimator::new();
        for n in 1..=30 {
            e.sample(conns(2000 * n));
        }
        assert_eq!(e.rates().cps, 1000);
        // -Z with the counters zeroed: rates 0, the next sample counts from 0.
        e.zero(Stats::default());
        assert_eq!(e.rates(), Rates::default());
        e.sample(conns(2000));
        assert_eq!(e.rates().cps, 250);
        // -Z keeping raw totals (the kernel's way): counts from them.
        e.zero(conns(2000));
        e.sample(conns(4000));
        assert_eq!(e.rates().cps, 250);
    }

    #[test]
    fn keyed_samples_forget_and_zero() {
        let mut set: Estimators<&str> = Estimators::new();
        set.sample([("a", conns(2000)), ("b", conns(20))]);
        assert_eq!(set.len(), 2);
        assert_eq!(set.rates(&"a").cps, 250);
        // 20 << 9 >> 2 = 2560: (2560 + 511) >> 10 = 2.
        assert_eq!(set.rates(&"b").cps, 2);
        assert_eq!(set.rates(&"c"), Rates::default());
        // "b" vanished: forgotten. "c" is new: from zero.
        set.sample([("a", conns(4000)), ("c", conns(2000))]);
        assert_eq!(set.len(), 2);
        assert!(set.get(&"b").is_none());
        assert_eq!(set.rates(&"a").cps, 437);
        assert_eq!(set.rates(&"c").cps, 250);
        // "b" back: anew, from zero totals.
        set.sample([("a", conns(6000)), ("b", conns(40)), ("c", conns(4000))]);
        assert_eq!(set.rates(&"b").cps, 5);
        // -Z of one key only.
        set.zero(&"a", Stats::default());
        assert_eq!(set.rates(&"a"), Rates::default());
        assert_eq!(set.rates(&"c").cps, 437);
        set.sample([("a", conns(2000)), ("b", conns(80)), ("c", conns(6000))]);
        assert_eq!(set.rates(&"a").cps, 250);
        set.zero_all(|_| Stats::default());
        assert!(["a", "b", "c"]
            .iter()
            .all(|k| set.rates(k) == Rates::default()));
        set.remove(&"a");
        assert_eq!(set.len(), 2);
        set.sample(std::iter::empty());
        assert!(set.is_empty());
    }
}
