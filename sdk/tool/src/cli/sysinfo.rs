//! What machine a benchmark ran on, read from `/proc` and `/sys` (Linux) so that pasted
//! results say which board, cores, clock policy, OS and C library they came from.
//! Anything unreadable is `None` and printed as `?`, never guessed.

use serde::Serialize;

/// The machine and the build of `prunus` that measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SystemInfo {
    /// Board model (device tree `model`, or DMI product name on PCs).
    pub board: Option<String>,
    /// Cores by kind, e.g. `4x Cortex-A72`.
    pub cpu: Option<String>,
    /// Online logical CPUs.
    pub cpus: usize,
    /// Highest cpufreq maximum over all cores, MHz.
    pub max_mhz: Option<u64>,
    /// cpufreq governor of cpu0 (`ondemand`, `performance`, ...).
    pub governor: Option<String>,
    /// Total memory, MiB.
    pub mem_mib: Option<u64>,
    /// `PRETTY_NAME` of /etc/os-release.
    pub os: Option<String>,
    /// Kernel release.
    pub kernel: Option<String>,
    /// glibc version the process runs with.
    pub glibc: Option<String>,
    /// CPU architecture of this build (`aarch64`, `arm`, `x86_64`).
    pub arch: &'static str,
    /// Whether this build was compiled with NEON enabled for all code (32-bit ARM builds).
    pub neon_baseline: bool,
    /// prunus version.
    pub prunus: &'static str,
}

fn read_trimmed(path: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!text.is_empty()).then(|| text.to_string())
}

/// ARM's main-ID "CPU part" numbers for the cores of the boards we target (and a few more).
fn arm_part_name(implementer: &str, part: &str) -> Option<&'static str> {
    if implementer != "0x41" {
        return None;
    }
    Some(match part {
        "0xc07" => "Cortex-A7",
        "0xc0f" => "Cortex-A15",
        "0xd03" => "Cortex-A53",
        "0xd04" => "Cortex-A35",
        "0xd05" => "Cortex-A55",
        "0xd07" => "Cortex-A57",
        "0xd08" => "Cortex-A72",
        "0xd09" => "Cortex-A73",
        "0xd0a" => "Cortex-A75",
        "0xd0b" => "Cortex-A76",
        "0xd0d" => "Cortex-A77",
        "0xd41" => "Cortex-A78",
        "0xd42" => "Cortex-A78AE",
        "0xd4b" => "Cortex-A78C",
        _ => return None,
    })
}

/// Summarises /proc/cpuinfo: `4x Cortex-A72` (ARM) or `8x <model name>` (x86).
pub fn describe_cpuinfo(cpuinfo: &str) -> Option<String> {
    let mut kinds: Vec<(String, usize)> = Vec::new();
    let mut implementer = String::new();
    for line in cpuinfo.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        let kind = match key {
            "CPU implementer" => {
                implementer = value.to_string();
                continue;
            }
            "CPU part" => arm_part_name(&implementer, value)
                .map(str::to_string)
                .unwrap_or_else(|| format!("ARM part {implementer}/{value}")),
            "model name" if !value.starts_with("ARMv") => value.to_string(),
            _ => continue,
        };
        match kinds.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => kinds.push((kind, 1)),
        }
    }
    let parts: Vec<String> = kinds.iter().map(|(k, n)| format!("{n}x {k}")).collect();
    (!parts.is_empty()).then(|| parts.join(" + "))
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn glibc_version() -> Option<String> {
    // SAFETY: gnu_get_libc_version returns a static NUL-terminated string.
    let version = unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) };
    version.to_str().ok().map(str::to_string)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn glibc_version() -> Option<String> {
    None
}

/// Reads what can be read about this machine.
pub fn collect() -> SystemInfo {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let online = read_trimmed("/sys/devices/system/cpu/online");
    let max_mhz = (0..256)
        .filter_map(|c| {
            read_trimmed(&format!(
                "/sys/devices/system/cpu/cpu{c}/cpufreq/cpuinfo_max_freq"
            ))
        })
        .filter_map(|khz| khz.parse::<u64>().ok())
        .max()
        .map(|khz| (khz + 500) / 1000);
    let board = read_trimmed("/proc/device-tree/model")
        .or_else(|| read_trimmed("/sys/class/dmi/id/product_name"));
    let os = read_trimmed("/etc/os-release").and_then(|t| {
        t.lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_string())
    });
    let mem_mib = read_trimmed("/proc/meminfo").and_then(|t| {
        t.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb / 1024)
    });
    SystemInfo {
        board,
        cpu: std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| describe_cpuinfo(&t)),
        cpus: online
            .as_deref()
            .map(count_cpu_list)
            .filter(|&n| n > 0)
            .unwrap_or(cpus),
        max_mhz,
        governor: read_trimmed("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        mem_mib,
        os,
        kernel: read_trimmed("/proc/sys/kernel/osrelease"),
        glibc: glibc_version(),
        arch: std::env::consts::ARCH,
        neon_baseline: cfg!(target_feature = "neon"),
        prunus: env!("CARGO_PKG_VERSION"),
    }
}

/// Counts a sysfs CPU list such as `0-3,6`.
fn count_cpu_list(list: &str) -> usize {
    list.split(',')
        .filter_map(|part| match part.split_once('-') {
            Some((a, b)) => {
                Some(b.trim().parse::<usize>().ok()? + 1 - a.trim().parse::<usize>().ok()?)
            }
            None => part.trim().parse::<usize>().ok().map(|_| 1),
        })
        .sum()
}

/// Current temperature of thermal zone 0 in °C, where the kernel exposes it.
pub fn temperature_c() -> Option<f64> {
    read_trimmed("/sys/class/thermal/thermal_zone0/temp")?
        .parse::<f64>()
        .ok()
        .map(|milli| milli / 1000.0)
}

/// Returns freed large buffers to the system at once: glibc raises its mmap threshold after
/// a large buffer is freed, so that later large buffers (import copies weights several
/// times) come from the heap and stay resident after they are freed. A fixed threshold
/// keeps the peak RSS of importing MobileNetV3-Large at its heap peak (73 -> 56 MB).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_large_buffers_on_free() {
    // SAFETY: mallopt only changes allocator tuning; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Returns freed large buffers to the system at once (a no-op off glibc).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_large_buffers_on_free() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm_cores_are_named_and_counted() {
        let pi4 = "processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: 0xd08\n\n\
                   processor\t: 1\nCPU implementer\t: 0x41\nCPU part\t: 0xd08\n";
        assert_eq!(describe_cpuinfo(pi4).as_deref(), Some("2x Cortex-A72"));
        let mixed = "CPU implementer : 0x41\nCPU part : 0xd05\nCPU implementer : 0x41\n\
                     CPU part : 0xd0b\nCPU implementer : 0x41\nCPU part : 0xd05\n";
        assert_eq!(
            describe_cpuinfo(mixed).as_deref(),
            Some("2x Cortex-A55 + 1x Cortex-A76")
        );
        let x86 = "model name\t: Some CPU @ 3.00GHz\nmodel name\t: Some CPU @ 3.00GHz\n";
        assert_eq!(
            describe_cpuinfo(x86).as_deref(),
            Some("2x Some CPU @ 3.00GHz")
        );
        assert_eq!(describe_cpuinfo(""), None);
    }

    #[test]
    fn cpu_lists_count() {
        assert_eq!(count_cpu_list("0-3"), 4);
        assert_eq!(count_cpu_list("0-3,6"), 5);
        assert_eq!(count_cpu_list("0"), 1);
    }
}
