//! Big/LITTLE core selection ([`Options::affinity`](crate::Options::affinity)).
//!
//! A session with an affinity other than [`Affinity::Any`] pins its worker threads to the
//! chosen cores when they start, and pins the thread that calls [`crate::Session::run`] for
//! the duration of each run (restoring its previous CPU mask afterwards). The classes come
//! from sysfs: arm64's `cpu_capacity`, else `cpufreq/cpuinfo_max_freq`. On a machine whose
//! cores are all alike (or where sysfs says nothing) there is nothing to choose and nothing
//! is pinned. Linux only; elsewhere affinity is ignored.

use std::path::Path;

/// Which cores a session runs on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Affinity {
    /// Whatever cores the threads may already use (nothing is pinned).
    #[default]
    Any,
    /// The fastest cores of a big.LITTLE CPU (highest capacity or maximum frequency).
    Big,
    /// The most efficient cores of a big.LITTLE CPU (lowest capacity or frequency).
    Little,
}

/// Where Linux describes the CPUs.
pub const SYSFS_CPUS: &str = "/sys/devices/system/cpu";

/// Each CPU's rank from the sysfs tree at `root` (`cpuN/cpu_capacity`, else
/// `cpuN/cpufreq/cpuinfo_max_freq`), sorted by CPU id; CPUs with neither are left out.
pub fn cpu_ranks(root: &Path) -> Vec<(usize, u64)> {
    let read =
        |path: &Path| -> Option<u64> { std::fs::read_to_string(path).ok()?.trim().parse().ok() };
    let Ok(dir) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut cpus: Vec<(usize, u64)> = dir
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
    cpus
}

/// The CPUs of class `affinity` according to the sysfs tree at `root`; `None` when every
/// CPU is alike (or unknown), so pinning would change nothing.
pub fn cpus_for(affinity: Affinity, root: &Path) -> Option<Vec<usize>> {
    if affinity == Affinity::Any {
        return None;
    }
    let cpus = cpu_ranks(root);
    let best = cpus.iter().map(|c| c.1).max()?;
    let worst = cpus.iter().map(|c| c.1).min()?;
    if best == worst {
        return None;
    }
    let want = if affinity == Affinity::Big {
        best
    } else {
        worst
    };
    Some(cpus.iter().filter(|c| c.1 == want).map(|c| c.0).collect())
}

/// The cores this process's calling thread may run on (`sched_getaffinity`); empty where
/// unknown.
pub fn allowed_cpus() -> Vec<usize> {
    CpuMask::current().map_or_else(Vec::new, |m| m.cpus())
}

#[cfg(target_os = "linux")]
type Word = libc::c_ulong;
#[cfg(not(target_os = "linux"))]
type Word = u64;

/// A CPU mask in the kernel's layout (an array of `unsigned long`, 1024 CPUs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuMask([Word; CpuMask::WORDS]);

impl CpuMask {
    const BITS: usize = Word::BITS as usize;
    const WORDS: usize = 1024 / Self::BITS;

    /// The mask of `cpus` (ids past 1023 are ignored).
    pub fn of(cpus: &[usize]) -> Self {
        let mut mask = CpuMask([0; Self::WORDS]);
        for &cpu in cpus.iter().filter(|&&c| c < 1024) {
            mask.0[cpu / Self::BITS] |= 1 << (cpu % Self::BITS);
        }
        mask
    }

    /// The CPUs in the mask, ascending.
    pub fn cpus(&self) -> Vec<usize> {
        (0..1024)
            .filter(|&c| self.0[c / Self::BITS] & (1 << (c % Self::BITS)) != 0)
            .collect()
    }

    fn and(&self, other: &CpuMask) -> CpuMask {
        CpuMask(std::array::from_fn(|i| self.0[i] & other.0[i]))
    }

    fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }

    /// The calling thread's current mask.
    #[cfg(target_os = "linux")]
    pub fn current() -> Option<CpuMask> {
        let mut mask = CpuMask([0; Self::WORDS]);
        // SAFETY: OS call. The kernel writes at most `size_of_val(&mask.0)` bytes into the
        // array, which is the cpumask layout (unsigned longs); pid 0 is the calling thread.
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
        self.apply_to(0).is_ok()
    }

    /// Sets the mask of thread `tid` (0: the calling thread).
    #[cfg(target_os = "linux")]
    fn apply_to(&self, tid: i32) -> std::io::Result<()> {
        // SAFETY: OS call. The kernel reads `size_of_val(&self.0)` bytes of the array.
        let rc = unsafe {
            libc::sched_setaffinity(tid, std::mem::size_of_val(&self.0), self.0.as_ptr().cast())
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// The calling thread's current mask (unknown off Linux).
    #[cfg(not(target_os = "linux"))]
    pub fn current() -> Option<CpuMask> {
        None
    }

    #[cfg(not(target_os = "linux"))]
    fn apply(&self) -> bool {
        false
    }

    #[cfg(not(target_os = "linux"))]
    fn apply_to(&self, _tid: i32) -> std::io::Result<()> {
        Err(std::io::Error::other(
            "CPU affinity is only supported on Linux",
        ))
    }
}

/// Pins every thread of the process to the CPUs of `mask` (threads started later inherit
/// the mask of the thread that starts them). Linux only.
pub fn pin_process(mask: &CpuMask) -> std::io::Result<()> {
    let mut tids: Vec<i32> = std::fs::read_dir("/proc/self/task")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    if tids.is_empty() {
        tids.push(0); // the calling thread
    }
    tids.into_iter().try_for_each(|tid| mask.apply_to(tid))
}

/// The calling thread pinned to a mask; dropping it restores the thread's previous mask.
#[derive(Debug)]
pub struct Pinned {
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
pub fn pin(mask: &CpuMask) -> Option<Pinned> {
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

    fn fake_sysfs(tag: &str, ranks: &[(usize, Option<u64>, Option<u64>)]) -> std::path::PathBuf {
        let root = std::env::temp_dir().join(format!("prunus-sysfs-{}-{tag}", std::process::id()));
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
        let root = fake_sysfs("capacity", &ranks);
        assert_eq!(cpus_for(Affinity::Big, &root), Some(vec![4, 5]));
        assert_eq!(cpus_for(Affinity::Little, &root), Some(vec![0, 1, 2, 3]));
        assert_eq!(cpus_for(Affinity::Any, &root), None);
        let _ = std::fs::remove_dir_all(&root);
        // Frequency only, and homogeneous.
        let root = fake_sysfs(
            "freq",
            &[(0, None, Some(1_800_000)), (1, None, Some(2_400_000))],
        );
        assert_eq!(cpus_for(Affinity::Big, &root), Some(vec![1]));
        let _ = std::fs::remove_dir_all(&root);
        let root = fake_sysfs(
            "same",
            &[(0, None, Some(1_500_000)), (1, None, Some(1_500_000))],
        );
        assert_eq!(cpus_for(Affinity::Big, &root), None);
        let _ = std::fs::remove_dir_all(&root);
        assert_eq!(cpus_for(Affinity::Big, Path::new("/nonexistent")), None);
    }

    #[test]
    fn masks() {
        let mask = CpuMask::of(&[0, 65, 5000]);
        assert_eq!(mask.cpus(), vec![0, 65]);
        assert!(!mask.and(&CpuMask::of(&[0])).is_empty());
        assert!(mask.and(&CpuMask::of(&[1])).is_empty());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn pinning_restores_the_previous_mask() {
        let before = CpuMask::current().unwrap();
        let first = before.cpus()[0];
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
