//! The C face of [`prunus::Affinity`]: which cores a session's threads run on.

use std::ffi::c_int;

use prunus::Affinity;

/// Which cores a session runs on, set with `prunus_options_set_affinity`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PrunusAffinity {
    /// Whatever cores the threads may already use (the default; nothing is pinned).
    #[default]
    Any = 0,
    /// The fastest cores of a big.LITTLE CPU (highest capacity or maximum frequency).
    Big = 1,
    /// The most efficient cores of a big.LITTLE CPU (lowest capacity or frequency).
    Little = 2,
}

impl PrunusAffinity {
    /// The runtime's affinity for the C value `value`, if there is one.
    pub(crate) fn from_raw(value: c_int) -> Option<Affinity> {
        match value {
            0 => Some(Affinity::Any),
            1 => Some(Affinity::Big),
            2 => Some(Affinity::Little),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_values_match_the_c_enum() {
        for (c, rust) in [
            (PrunusAffinity::Any, Affinity::Any),
            (PrunusAffinity::Big, Affinity::Big),
            (PrunusAffinity::Little, Affinity::Little),
        ] {
            assert_eq!(PrunusAffinity::from_raw(c as c_int), Some(rust));
        }
        assert_eq!(PrunusAffinity::from_raw(3), None);
        assert_eq!(PrunusAffinity::from_raw(-1), None);
    }
}
