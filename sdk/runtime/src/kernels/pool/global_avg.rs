//! Global average pooling on vectors, bit-identical to the portable
//! [`global_avg_pool`](crate::kernels::global_avg_pool): its 8 partial sums are one AVX2
//! vector or two NEON vectors, added in the same order. LLVM left the portable loop scalar
//! on aarch64 (two instructions per value; here five per 8 values): MobileNetV3-Large's
//! squeeze-excite and head pools 1.37 -> 0.57 M instructions per inference.

use super::super::layout_ops::{SUM_LANES, global_avg_pool};
use crate::kernels::simd::{Simd, SimdKernel};

/// Global average pooling of `x` (`[C, hw]`, `C = y.len()`), generic over the ISA; ISAs
/// whose vector is wider than the 8 partial sums, and CPUs without `S`, run the portable
/// kernel.
pub fn global_avg_pool_simd<S: Simd>(hw: usize, x: &[f32], y: &mut [f32]) {
    match S::detect() {
        Some(s) if hw > 0 && SUM_LANES.is_multiple_of(S::LANES) && x.len() == y.len() * hw => {
            s.vectorize(GlobalAvg { hw, x, y })
        }
        _ => global_avg_pool(hw, x, y),
    }
}

/// A checked call: `hw > 0`, `x.len() == y.len() * hw`, `SUM_LANES` a multiple of the
/// lanes.
struct GlobalAvg<'a> {
    hw: usize,
    x: &'a [f32],
    y: &'a mut [f32],
}

impl SimdKernel for GlobalAvg<'_> {
    type Output = ();

    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        let GlobalAvg { hw, x, y } = self;
        let (l, n) = (S::LANES, SUM_LANES / S::LANES);
        for (out, plane) in y.iter_mut().zip(x.chunks_exact(hw)) {
            let (body, tail) = plane.as_chunks::<SUM_LANES>();
            // Partial sum `p` (lane `p % LANES` of vector `p / LANES`) adds elements
            // `p, p + 8, ..` in order, as the portable kernel's lane `p`.
            let mut acc = [s.zero(); SUM_LANES];
            for chunk in body {
                for (v, a) in acc[..n].iter_mut().enumerate() {
                    *a = s.add(*a, s.load(&chunk[v * l..(v + 1) * l]));
                }
            }
            let mut lanes = [0.0f32; SUM_LANES];
            for (v, &a) in acc[..n].iter().enumerate() {
                s.store(a, &mut lanes[v * l..(v + 1) * l]);
            }
            let sum = lanes.iter().chain(tail).fold(0.0f32, |s, &v| s + v);
            *out = sum / hw as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::kernels::activation::test_support::{fill, rng};
    use crate::kernels::{Isa, KernelTable, global_avg_pool};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Every table's kernel gives the portable kernel's bits (itself checked against
        /// an f64 reference in `layout_ops`).
        #[test]
        fn every_isa_gives_the_portable_bits(
            c in 1usize..=19, hw in 1usize..=300, seed in any::<u64>(),
        ) {
            let x = fill(&mut rng(seed), c * hw);
            let mut want = vec![f32::NAN; c];
            global_avg_pool(hw, &x, &mut want);
            for &isa in Isa::available() {
                let mut y = vec![f32::NAN; c];
                (KernelTable::for_isa(isa).global_avg_pool)(hw, &x, &mut y);
                let (y, want): (Vec<u32>, Vec<u32>) = (
                    y.iter().map(|v| v.to_bits()).collect(),
                    want.iter().map(|v| v.to_bits()).collect(),
                );
                prop_assert_eq!(y, want, "{}", isa.name());
            }
        }
    }
}
