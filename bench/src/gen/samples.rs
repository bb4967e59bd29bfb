//! One-second samples and their percentiles. Packet rates between the two cores of a small VM
//! are bimodal (a cross-core cache line costs either ~60 ns or ~330 ns, flipping every few
//! seconds or minutes), so a run keeps every second and reports the median and the 90th
//! percentile rather than a mean.

/// The value at percentile `p` (0..=100) of `values`, nearest rank; 0 for none.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Counts taken at second boundaries; each sample is the difference over one second,
/// scaled to the exact time that passed.
#[derive(Debug, Default)]
pub struct Sampler {
    last_ns: u64,
    last: [u64; 3],
    /// Per second: packets that arrived (= forwarded by the device), client packets sent,
    /// connections completed.
    pub samples: Vec<[f64; 3]>,
}

impl Sampler {
    pub fn start(&mut self, now_ns: u64, counts: [u64; 3]) {
        self.last_ns = now_ns;
        self.last = counts;
        self.samples.clear();
    }

    /// Takes a sample when a second has passed; returns it.
    pub fn tick(&mut self, now_ns: u64, counts: [u64; 3]) -> Option<[f64; 3]> {
        let elapsed = now_ns.saturating_sub(self.last_ns);
        if elapsed < 1_000_000_000 {
            return None;
        }
        let secs = elapsed as f64 / 1e9;
        let mut sample = [0.0; 3];
        for i in 0..3 {
            sample[i] = (counts[i] - self.last[i]) as f64 / secs;
        }
        self.last_ns = now_ns;
        self.last = counts;
        self.samples.push(sample);
        Some(sample)
    }

    /// Percentile `p` of column `i`.
    pub fn percentile(&self, i: usize, p: f64) -> f64 {
        let column: Vec<f64> = self.samples.iter().map(|s| s[i]).collect();
        percentile(&column, p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 5.0);
        assert_eq!(percentile(&v, 90.0), 9.0);
        assert_eq!(percentile(&v, 100.0), 10.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn samples_are_per_second_rates() {
        let mut s = Sampler::default();
        s.start(0, [0, 0, 0]);
        assert_eq!(s.tick(500_000_000, [10, 10, 1]), None);
        assert_eq!(
            s.tick(2_000_000_000, [400, 200, 2]),
            Some([200.0, 100.0, 1.0])
        );
        assert_eq!(s.percentile(0, 50.0), 200.0);
    }
}
