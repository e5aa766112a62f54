//! Big/LITTLE core selection: which CPUs a session's runs are pinned to.
//!
//! The kernels run on the thread that calls `prunus_session_run`, so an affinity other than
//! `PRUNUS_AFFINITY_ANY` pins that thread to the chosen cores for the duration of each run
//! and restores its previous CPU mask afterwards. The classes come from sysfs: arm64's
//! `cpu_capacity`, else `cpufreq/cpuinfo_max_freq`. On a machine whose cores are all alike
//! (or where sysfs says nothing) there is nothing to choose and runs are not pinned.

use std::ffi::{c_int, c_ulong};
use std::path::Path;

/// Which cores a session runs on, set with `prunus_options_set_affinity`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PrunusAffinity {
    /// Whatever cores the calling thread may already use (the default; nothing is pinned).
    #[default]
    Any = 0,
    /// The fastest cores of a big.LITTLE CPU (highest capacity or maximum frequency).
    Big = 1,
    /// The most efficient cores of a big.LITTLE CPU (lowest capacity or frequency).
    Little = 2,
}

impl PrunusAffinity {
    /// The affinity with the C value `value`, if there is one.
    pub(crate) fn from_raw(value: c_int) -> Option<Self> {
        [Self::Any, Self::Big, Self::Little]
            .into_iter()
            .find(|a| *a as c_int == value)
    }
}

/// Where Linux describes the CPUs.
pub(crate) const SYSFS_CPUS: &str = "/sys/devices/system/cpu";

/// The CPUs of class `affinity` according to the sysfs tree at `root`; `None` when every
/// CPU is alike (or unknown), so pinning would change nothing.
pub(crate) fn cpus_for(affinity: PrunusAffinity, root: &Path) -> Option<Vec<usize>> {
    if affinity == PrunusAffinity::Any {
        return None;
    }
    let read =
        |path: &Path| -> Option<u64> { std::fs::read_to_string(path).ok()?.trim().parse().ok() };
    let mut cpus: Vec<(usize, u64)> = std::fs::read_dir(root)
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let id: usize = entry
                .file_name()
                .to_str()?
                .strip_prefix("cpu")?
                .parse()
                .ok()?;
            let dir = entry.path();
            let rank = read(&dir.join("cpu_capacity"))
                .or_else(|| read(&dir.join("cpufreq/cpuinfo_max_freq")))?;
            Some((id, rank))
        })
        .collect();
    cpus.sort_unstable();
    let best = cpus.iter().map(|c| c.1).max()?;
    let worst = cpus.iter().map(|c| c.1).min()?;
    if best == worst {
        return None;
    }
    let want = if affinity == PrunusAffinity::Big {
        best
    } else {
        worst
    };
    Some(cpus.iter().filter(|c| c.1 == want).map(|c| c.0).collect())
}

/// A CPU mask in the kernel's layout (an array of `unsigned long`, 1024 CPUs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CpuMask([c_ulong; CpuMask::WORDS]);

impl CpuMask {
    const BITS: usize = c_ulong::BITS as usize;
    const WORDS: usize = 1024 / Self::BITS;

    /// The mask of `cpus` (ids past 1023 are ignored).
    pub(crate) fn of(cpus: &[usize]) -> Self {
        let mut mask = CpuMask([0; Self::WORDS]);
        for &cpu in cpus.iter().filter(|&&c| c < 1024) {
            mask.0[cpu / Self::BITS] |= 1 << (cpu % Self::BITS);
        }
        mask
    }

    fn and(&self, other: &CpuMask) -> CpuMask {
        CpuMask(std::array::from_fn(|i| self.0[i] & other.0[i]))
    }

    fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }

    #[cfg(target_os = "linux")]
    fn current() -> Option<CpuMask> {
        let mut mask = CpuMask([0; Self::WORDS]);
        // SAFETY: the kernel writes at most `size_of_val(&mask.0)` bytes into the array,
        // which is the cpumask layout (unsigned longs); pid 0 is the calling thread.
        let rc = unsafe {
            libc::sched_getaffinity(
                0,
                std::mem::size_of_val(&mask.0),
                mask.0.as_mut_ptr().cast(),
            )
        };
        (rc == 0).then_some(mask)
    }

    #[cfg(target_os = "linux")]
    fn apply(&self) -> bool {
        // SAFETY: the kernel reads `size_of_val(&self.0)` bytes of the array; pid 0 is the
        // calling thread.
        let rc = unsafe {
            libc::sched_setaffinity(0, std::mem::size_of_val(&self.0), self.0.as_ptr().cast())
        };
        rc == 0
    }

    #[cfg(not(target_os = "linux"))]
    fn current() -> Option<CpuMask> {
        None
    }

    #[cfg(not(target_os = "linux"))]
    fn apply(&self) -> bool {
        false
    }
}

/// The calling thread pinned to a mask; dropping it restores the thread's previous mask.
#[derive(Debug)]
pub(crate) struct Pinned {
    previous: CpuMask,
}

impl Drop for Pinned {
    fn drop(&mut self) {
        // Failure to restore leaves the thread pinned to a subset of its cores: not worth a
        // panic in a destructor, and nothing better can be done.
        let _ = self.previous.apply();
    }
}

/// Pins the calling thread to the CPUs of `mask` that it may already use. `None` (and
/// nothing changed) when the mask adds no restriction, leaves no CPU, or the kernel refuses.
pub(crate) fn pin(mask: &CpuMask) -> Option<Pinned> {
    let previous = CpuMask::current()?;
    let target = previous.and(mask);
    if target.is_empty() || target == previous || !target.apply() {
        return None;
    }
    Some(Pinned { previous })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_sysfs(ranks: &[(usize, Option<u64>, Option<u64>)]) -> std::path::PathBuf {
        let root = std::env::temp_dir().join(format!(
            "prunus-ffi-sysfs-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("cpufreq")).unwrap();
        for &(cpu, capacity, freq) in ranks {
            let dir = root.join(format!("cpu{cpu}"));
            std::fs::create_dir_all(dir.join("cpufreq")).unwrap();
            if let Some(c) = capacity {
                std::fs::write(dir.join("cpu_capacity"), format!("{c}\n")).unwrap();
            }
            if let Some(f) = freq {
                std::fs::write(dir.join("cpufreq/cpuinfo_max_freq"), format!("{f}\n")).unwrap();
            }
        }
        root
    }

    #[test]
    fn classes_come_from_capacity_or_frequency() {
        // RK3399-like: 4 little (capacity 485) and 2 big (1024) cores.
        let ranks: Vec<_> = (0..6)
            .map(|c| (c, Some(if c < 4 { 485 } else { 1024 }), None))
            .collect();
        let root = fake_sysfs(&ranks);
        assert_eq!(cpus_for(PrunusAffinity::Big, &root), Some(vec![4, 5]));
        assert_eq!(
            cpus_for(PrunusAffinity::Little, &root),
            Some(vec![0, 1, 2, 3])
        );
        assert_eq!(cpus_for(PrunusAffinity::Any, &root), None);
        // Frequency only, and homogeneous.
        let root = fake_sysfs(&[(0, None, Some(1_800_000)), (1, None, Some(2_400_000))]);
        assert_eq!(cpus_for(PrunusAffinity::Big, &root), Some(vec![1]));
        let root = fake_sysfs(&[(0, None, Some(1_500_000)), (1, None, Some(1_500_000))]);
        assert_eq!(cpus_for(PrunusAffinity::Big, &root), None);
        let _ = std::fs::remove_dir_all(&root);
        assert_eq!(
            cpus_for(PrunusAffinity::Big, Path::new("/nonexistent")),
            None
        );
    }

    #[test]
    fn raw_values_and_masks() {
        assert_eq!(PrunusAffinity::from_raw(1), Some(PrunusAffinity::Big));
        assert_eq!(PrunusAffinity::from_raw(3), None);
        let mask = CpuMask::of(&[0, 65, 5000]);
        assert_eq!(mask.0[0] & 1, 1);
        assert!(!mask.and(&CpuMask::of(&[0])).is_empty());
        assert!(mask.and(&CpuMask::of(&[1])).is_empty());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn pinning_restores_the_previous_mask() {
        let before = CpuMask::current().unwrap();
        let first = (0..1024)
            .find(|&c| !CpuMask::of(&[c]).and(&before).is_empty())
            .unwrap();
        let pinned = pin(&CpuMask::of(&[first]));
        if before != CpuMask::of(&[first]) {
            assert!(pinned.is_some());
            assert_eq!(CpuMask::current().unwrap(), CpuMask::of(&[first]));
        }
        drop(pinned);
        assert_eq!(CpuMask::current().unwrap(), before);
        // A mask outside the allowed CPUs changes nothing.
        assert!(pin(&CpuMask::of(&[])).is_none());
    }
}
