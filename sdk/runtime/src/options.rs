//! Session options: threads, instruction set, which tensors to keep after a run.

use crate::affinity::Affinity;
use crate::error::Error;
use crate::kernels::Isa;

/// Environment variable that overrides the instruction set: `scalar`, `avx2`, `avx512`
/// (x86-64) or `neon` (aarch64); an ISA this build or CPU lacks is an error.
pub const ISA_ENV: &str = "PRUNUS_ISA";

/// Which tensors keep their values after [`crate::Session::run`]. Others share memory and
/// are overwritten by later layers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Retain {
    /// Only the graph outputs (least memory).
    #[default]
    Outputs,
    /// Every tensor (debugging, calibration).
    All,
    /// The graph outputs and these tensors, by name.
    Named(Vec<String>),
}

/// How a session runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Threads that run a session's kernels (0 and 1: the calling thread only; at most
    /// [`crate::thread_pool::MAX_THREADS`]). Above 1, the session starts `threads - 1`
    /// workers, and convolutions (pointwise, depthwise, grouped, full, sparse) and Gemms
    /// large enough to pay for it are split over output channels between them; results are
    /// bitwise identical for any count.
    pub threads: usize,
    /// Instruction set; `None` picks the best available, or `PRUNUS_ISA` if set.
    pub isa: Option<Isa>,
    /// Which tensors can be read after a run.
    pub retain: Retain,
    /// Which cores the session's threads run on (big or little cores of a big.LITTLE CPU);
    /// see [`crate::affinity`].
    pub affinity: Affinity,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            threads: 1,
            isa: None,
            retain: Retain::Outputs,
            affinity: Affinity::Any,
        }
    }
}

impl Isa {
    /// Parses an ISA name (`scalar`, `avx2`, `avx512`, `neon`; any case) and checks this
    /// build and CPU support it.
    pub fn parse(name: &str) -> Result<Isa, Error> {
        Isa::available()
            .iter()
            .copied()
            .find(|isa| isa.name().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| Error::Isa {
                requested: name.to_string(),
                available: Isa::available()
                    .iter()
                    .map(|i| i.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The ISA a session uses: the option, else `PRUNUS_ISA`, else the best available.
    /// An option naming an ISA this CPU lacks is an error, like the variable.
    pub fn select(option: Option<Isa>) -> Result<Isa, Error> {
        if let Some(isa) = option {
            return Isa::parse(isa.name());
        }
        match std::env::var(ISA_ENV) {
            Ok(name) if !name.is_empty() => Isa::parse(&name),
            _ => Ok(Isa::available()[0]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_and_rejects_unknown_isa() {
        assert_eq!(Isa::parse("Scalar").unwrap(), Isa::Scalar);
        let err = Isa::parse("sve9").unwrap_err().to_string();
        assert!(err.contains("sve9") && err.contains("scalar"), "{err}");
        // Another architecture's ISA is unknown to this build.
        #[cfg(target_arch = "x86_64")]
        assert!(Isa::parse("neon").is_err());
        #[cfg(target_arch = "aarch64")]
        assert!(Isa::parse("avx2").is_err());
    }

    #[test]
    fn available_lists_scalar_last_and_parses_every_entry() {
        let all = Isa::available();
        assert_eq!(all.last(), Some(&Isa::Scalar));
        for &isa in all {
            assert_eq!(Isa::parse(&isa.name().to_uppercase()).unwrap(), isa);
            assert_eq!(Isa::select(Some(isa)).unwrap(), isa);
        }
        // NEON is baseline on aarch64: it must be detected (also under qemu).
        #[cfg(target_arch = "aarch64")]
        assert_eq!(all[0], Isa::Neon);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn simd_isas_follow_cpu_detection() {
        let avx2 = std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma");
        assert_eq!(Isa::available().contains(&Isa::Avx2), avx2);
        assert_eq!(Isa::parse("avx2").is_ok(), avx2);
        let avx512 = avx2 && std::arch::is_x86_feature_detected!("avx512f");
        assert_eq!(Isa::available().contains(&Isa::Avx512), avx512);
    }
}
