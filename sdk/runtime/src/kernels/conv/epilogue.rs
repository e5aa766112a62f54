//! The fused activation of the row-vectorised convolutions' register tiles.

use crate::kernels::simd::{Simd, VecActivation};
use prunus_format::Activation;

/// `act` on a whole tile, in one call: the `match` is outside loops of constant trip count,
/// which LLVM unrolls, keeping the tile in registers (a call per row kept it in memory, a
/// store per FMA). ReLU and Clip are done here with plain loops: `VecActivation` maps them
/// with `for_each` closures, which LLVM sometimes leaves un-inlined in large kernels, and a
/// closure outside the `#[target_feature]` function calls `max` as a function.
#[inline(always)]
pub(crate) fn activate<S: Simd>(s: S, act: &VecActivation<S>, vs: &mut [S::V]) {
    match act.activation() {
        Activation::None => {}
        Activation::Relu => {
            let zero = s.zero();
            for v in vs {
                *v = s.max(*v, zero);
            }
        }
        Activation::Clip { min, max } => {
            let (lo, hi) = (s.splat(min), s.splat(max));
            for v in vs {
                *v = s.min(s.max(*v, lo), hi);
            }
        }
        _ => act.apply_all(s, vs),
    }
}
