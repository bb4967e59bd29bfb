//! The CPU features this binary was compiled to use, checked against the CPU it runs on, so
//! that a machine below rvs's baseline (`.cargo/config.toml`: x86-64-v2, what Debian's DPDK
//! 22.11 is built for) gets one clear line at start instead of an illegal instruction.

/// The features of the baseline, each compiled in or not.
#[cfg(target_arch = "x86_64")]
fn compiled() -> [(&'static str, bool, bool); 7] {
    macro_rules! feature {
        ($name:tt) => {
            (
                $name,
                cfg!(target_feature = $name),
                std::arch::is_x86_feature_detected!($name),
            )
        };
    }
    [
        feature!("sse3"),
        feature!("ssse3"),
        feature!("sse4.1"),
        feature!("sse4.2"),
        feature!("popcnt"),
        feature!("cmpxchg16b"),
        feature!("avx2"),
    ]
}

/// The features this binary was compiled to use that this CPU lacks (empty: it can run).
pub fn missing_features() -> Vec<&'static str> {
    #[cfg(target_arch = "x86_64")]
    {
        compiled()
            .into_iter()
            .filter(|&(_, built, present)| built && !present)
            .map(|(name, _, _)| name)
            .collect()
    }
    #[cfg(not(target_arch = "x86_64"))]
    Vec::new()
}

/// The baseline features compiled in, for the start-up line ("sse3 ssse3 ... popcnt").
pub fn baseline() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        compiled()
            .into_iter()
            .filter(|&(_, built, _)| built)
            .map(|(name, _, _)| name)
            .collect::<Vec<_>>()
            .join(" ")
    }
    #[cfg(not(target_arch = "x86_64"))]
    String::new()
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_machine_runs_what_it_built() {
        assert_eq!(super::missing_features(), Vec::<&str>::new());
        #[cfg(target_arch = "x86_64")]
        assert!(
            super::baseline().contains("sse4.2"),
            "{}",
            super::baseline()
        );
    }
}
