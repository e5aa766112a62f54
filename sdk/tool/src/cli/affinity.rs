//! CPU affinity for `prunus bench`: which cores are "big" and "little" (from cpufreq's
//! maximum frequencies), and pinning the whole process to one of those sets.
//!
//! Boards such as the Raspberry Pi and Jetson have one kind of core; big.LITTLE boards
//! (RK3399, RK3588, Orange Pi 5) have two, and a benchmark spread over both measures the
//! little ones. Linux only; elsewhere the bench runs unpinned and says so.

use std::collections::BTreeMap;

use clap::ValueEnum;

/// Which cores `--affinity` pins the benchmark to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Affinity {
    /// The cores with the highest maximum frequency.
    Big,
    /// The cores with the lowest maximum frequency.
    Little,
    /// Every core this process may use (no pinning).
    All,
}

impl Affinity {
    /// The `--affinity` value.
    pub fn name(self) -> &'static str {
        match self {
            Affinity::Big => "big",
            Affinity::Little => "little",
            Affinity::All => "all",
        }
    }
}

/// What pinning did: the cores used and a sentence for the report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Pinning {
    /// What was asked for.
    pub requested: Affinity,
    /// The cores the process runs on (its allowed set when unpinned).
    pub cpus: Vec<usize>,
    /// Whether `sched_setaffinity` was applied.
    pub pinned: bool,
    /// Human-readable outcome, e.g. "pinned, 2400 MHz cores (cores differ)" or "unpinned".
    pub note: String,
}

/// Maximum frequency (kHz) of each core in `cpus`, where cpufreq exposes it.
fn max_freqs_khz(cpus: &[usize]) -> BTreeMap<usize, u64> {
    cpus.iter()
        .filter_map(|&cpu| {
            let path = format!("/sys/devices/system/cpu/cpu{cpu}/cpufreq/cpuinfo_max_freq");
            let khz = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
            Some((cpu, khz))
        })
        .collect()
}

/// `[0, 1, 2, 5]` as `0-2,5`.
pub fn format_cpus(cpus: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            cpus[i].to_string()
        } else {
            format!("{}-{}", cpus[i], cpus[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

/// Picks the cores for `requested` among `allowed`, given each core's maximum frequency.
/// `Err` says why no choice could be made (the bench then runs unpinned).
pub fn choose(
    requested: Affinity,
    allowed: &[usize],
    freqs: &BTreeMap<usize, u64>,
) -> Result<(Vec<usize>, String), String> {
    if requested == Affinity::All {
        return Ok((allowed.to_vec(), "all allowed cores".into()));
    }
    if freqs.len() != allowed.len() || allowed.is_empty() {
        return Err(format!(
            "cpufreq maximum frequencies unavailable for {} of {} cores",
            allowed.len() - freqs.len().min(allowed.len()),
            allowed.len()
        ));
    }
    let hi = *freqs.values().max().expect("non-empty");
    let lo = *freqs.values().min().expect("non-empty");
    let target = if requested == Affinity::Big { hi } else { lo };
    let cpus: Vec<usize> = allowed
        .iter()
        .copied()
        .filter(|c| freqs[c] == target)
        .collect();
    let what = if hi == lo {
        "every core is the same"
    } else {
        "cores differ"
    };
    Ok((
        cpus,
        format!("{} MHz cores ({what})", (target + 500) / 1000),
    ))
}

/// Pins the process to the cores `requested` names, or leaves it unpinned with a note.
pub fn apply(requested: Affinity) -> Pinning {
    let allowed = allowed_cpus();
    let fallback = |note: String| Pinning {
        requested,
        cpus: allowed.clone(),
        pinned: false,
        note,
    };
    if allowed.is_empty() {
        return fallback("affinity unsupported on this OS: unpinned".into());
    }
    let (cpus, why) = match choose(requested, &allowed, &max_freqs_khz(&allowed)) {
        Ok(choice) => choice,
        Err(why) => return fallback(format!("{why}: unpinned")),
    };
    if requested == Affinity::All {
        return Pinning {
            requested,
            cpus: allowed,
            pinned: false,
            note: "unpinned".into(),
        };
    }
    match set_process_affinity(&cpus) {
        Ok(()) => Pinning {
            requested,
            cpus: cpus.clone(),
            pinned: true,
            note: format!("pinned, {why}"),
        },
        Err(e) => fallback(format!("sched_setaffinity failed ({e}): unpinned")),
    }
}

/// The cores this process may run on; empty where unknown (off Linux).
pub fn allowed_cpus() -> Vec<usize> {
    prunus::affinity::allowed_cpus()
}

/// Pins every thread of the process (threads started later inherit the mask).
fn set_process_affinity(cpus: &[usize]) -> std::io::Result<()> {
    prunus::affinity::pin_process(&prunus::affinity::CpuMask::of(cpus))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn freqs(pairs: &[(usize, u64)]) -> BTreeMap<usize, u64> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn big_and_little_split_by_max_frequency() {
        let allowed = [0, 1, 2, 3, 4, 5];
        let f = freqs(&[
            (0, 1_800_000),
            (1, 1_800_000),
            (2, 1_800_000),
            (3, 1_800_000),
            (4, 2_400_000),
            (5, 2_400_000),
        ]);
        let (big, note) = choose(Affinity::Big, &allowed, &f).unwrap();
        assert_eq!(big, [4, 5]);
        assert!(note.contains("2400 MHz"), "{note}");
        let (little, _) = choose(Affinity::Little, &allowed, &f).unwrap();
        assert_eq!(little, [0, 1, 2, 3]);
    }

    #[test]
    fn homogeneous_cores_are_all_big_and_all_little() {
        let allowed = [0, 1, 2, 3];
        let f = freqs(&[
            (0, 1_500_000),
            (1, 1_500_000),
            (2, 1_500_000),
            (3, 1_500_000),
        ]);
        let (big, note) = choose(Affinity::Big, &allowed, &f).unwrap();
        assert_eq!(big, allowed);
        assert!(note.contains("same"), "{note}");
    }

    #[test]
    fn missing_cpufreq_is_reported_not_guessed() {
        let err = choose(Affinity::Big, &[0, 1], &freqs(&[(0, 1_000_000)])).unwrap_err();
        assert!(err.contains("unavailable"), "{err}");
        let (all, _) = choose(Affinity::All, &[0, 1], &BTreeMap::new()).unwrap();
        assert_eq!(all, [0, 1]);
    }

    #[test]
    fn cpu_lists_are_compact() {
        assert_eq!(format_cpus(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
        assert_eq!(format_cpus(&[3]), "3");
        assert_eq!(format_cpus(&[]), "");
    }
}
