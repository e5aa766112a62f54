//! Session options: threads, instruction set, which tensors to keep after a run.

use crate::error::Error;
use crate::kernels::Isa;

/// Environment variable that overrides the instruction set (`scalar`, ...).
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
    /// Worker threads (kernels are single-threaded until the threaded kernels land; the
    /// value is validated and recorded).
    pub threads: usize,
    /// Instruction set; `None` picks the best available, or `PRUNUS_ISA` if set.
    pub isa: Option<Isa>,
    /// Which tensors can be read after a run.
    pub retain: Retain,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            threads: 1,
            isa: None,
            retain: Retain::Outputs,
        }
    }
}

impl Isa {
    /// Parses an ISA name (`scalar`, ...) and checks this build and CPU support it.
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
    pub fn select(option: Option<Isa>) -> Result<Isa, Error> {
        if let Some(isa) = option {
            return Ok(isa);
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
    }
}
